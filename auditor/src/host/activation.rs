//! Sockets passed by a service manager (systemd socket activation, `sd_listen_fds(3)`):
//! `LISTEN_PID` names this process and `LISTEN_FDS` fds follow from fd 3.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

use nix::sys::socket::{getsockopt, sockopt, SockType};

/// The first fd a service manager passes.
const FIRST_FD: RawFd = 3;

/// A passed listening socket and its type.
#[derive(Debug)]
pub struct Inherited {
    pub fd: OwnedFd,
    pub kind: SockType,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_FDS={0:?} is not a number of sockets")]
    BadCount(String),
    #[error("fd {fd} passed by the service manager is not a socket")]
    NotASocket {
        fd: RawFd,
        #[source]
        source: nix::Error,
    },
}

/// What a service manager passed: listening sockets (socket activation), and fds the
/// process stored earlier (`FDSTORE=1`) under names of its own (`auditor-…`).
#[derive(Debug, Default)]
pub struct Passed {
    pub sockets: Vec<Inherited>,
    pub stored: Vec<(String, OwnedFd)>,
}

/// Take the fds passed to this process, if any, and remove the variables (children must not
/// take them for their own). Fds are taken only when `LISTEN_PID` is this process. Sockets are
/// sockets whatever their name; an fd that is no socket must bear a name starting `auditor-`
/// (`LISTEN_FDNAMES`: one of the agent's stored fds).
pub fn take() -> Result<Passed, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // (Before any thread starts: nothing reads the environment concurrently.)
        std::env::remove_var(v);
    }
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let Some(count) = count.filter(|_| ours) else {
        return Ok(Passed::default());
    };
    let n: RawFd = count
        .parse()
        .ok()
        .filter(|n| (0..=8192).contains(n))
        .ok_or(ActivationError::BadCount(count))?;
    let names: Vec<String> = names
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut passed = Passed::default();
    for fd in FIRST_FD..FIRST_FD + n {
        // SAFETY: the service manager passed fds 3..3+n to this process for it to own; each
        // is taken once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Passed fds are inherited without O_CLOEXEC: keep them from the helpers.
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        let name = names
            .get((fd - FIRST_FD) as usize)
            .cloned()
            .unwrap_or_default();
        match getsockopt(&owned, sockopt::SockType) {
            Ok(kind) => passed.sockets.push(Inherited { fd: owned, kind }),
            Err(_) if name.starts_with("auditor-") => passed.stored.push((name, owned)),
            Err(source) => return Err(ActivationError::NotASocket { fd, source }),
        }
    }
    Ok(passed)
}
