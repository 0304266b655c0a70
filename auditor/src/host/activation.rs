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

/// Take the sockets passed to this process, if any, and remove the variables (children must
/// not take them for their own). Fds are taken only when `LISTEN_PID` is this process.
pub fn take() -> Result<Vec<Inherited>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // (Before any thread starts: nothing reads the environment concurrently.)
        std::env::remove_var(v);
    }
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let Some(count) = count.filter(|_| ours) else {
        return Ok(Vec::new());
    };
    let n: RawFd = count
        .parse()
        .ok()
        .filter(|n| (0..=64).contains(n))
        .ok_or(ActivationError::BadCount(count))?;
    (FIRST_FD..FIRST_FD + n)
        .map(|fd| {
            // SAFETY: the service manager passed fds 3..3+n to this process for it to own;
            // each is taken once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let kind = getsockopt(&owned, sockopt::SockType)
                .map_err(|source| ActivationError::NotASocket { fd, source })?;
            // Passed fds are inherited without O_CLOEXEC: keep them from the helpers.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            Ok(Inherited { fd: owned, kind })
        })
        .collect()
}
