//! What this kernel's seccomp user notification supports, probed (never guessed from the
//! version): a forked child installs an allow-everything filter and tries each feature on its
//! own listener, reporting one bit per feature in its exit status.

use crate::seccomp::notify::{
    self, SeccompNotifAddfd, SockFilter, SockFprog, BPF_RET_K, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_IOCTL_NOTIF_ADDFD,
    SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_RET_ALLOW, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
};

/// The seccomp notification features auditor uses, each with the kernel that added it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NotifyFeatures {
    /// A seccomp filter can be installed at all (3.5).
    pub filter: bool,
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: user notification (5.0).
    pub new_listener: bool,
    /// `SECCOMP_IOCTL_NOTIF_ADDFD`: installing an fd in the caller (5.9).
    pub addfd: bool,
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a received call waits killable (5.19).
    pub wait_killable_recv: bool,
    /// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`: same-CPU wake-up of the supervisor (6.6).
    pub sync_wake_up: bool,
}

const FILTER: i32 = 1;
const NEW_LISTENER: i32 = 2;
const ADDFD: i32 = 4;
const WAIT_KILLABLE: i32 = 8;
const SYNC_WAKE_UP: i32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot fork the seccomp probe")]
    Fork(#[source] nix::Error),
    #[error("waiting for the seccomp probe")]
    Wait(#[source] nix::Error),
    #[error("the seccomp probe ended abnormally ({0})")]
    Abnormal(String),
}

/// Probe the running kernel.
pub fn probe() -> Result<NotifyFeatures, ProbeError> {
    let prog = [SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ALLOW,
    }];
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: the child makes only raw, async-signal-safe calls (prctl, seccomp, ioctl,
    // _exit) on memory prepared before the fork, then exits.
    match unsafe { nix::unistd::fork() }.map_err(ProbeError::Fork)? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: as above; `fprog` points to `prog`, alive in the child's copy.
            let bits = unsafe { child(&fprog) };
            // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
            unsafe { libc::_exit(bits) }
        }
        nix::unistd::ForkResult::Parent { child } => loop {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, bits)) => {
                    return Ok(NotifyFeatures {
                        filter: bits & FILTER != 0,
                        new_listener: bits & NEW_LISTENER != 0,
                        addfd: bits & ADDFD != 0,
                        wait_killable_recv: bits & WAIT_KILLABLE != 0,
                        sync_wake_up: bits & SYNC_WAKE_UP != 0,
                    })
                }
                Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                    return Err(ProbeError::Abnormal(format!("killed by {sig}")))
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(ProbeError::Wait(e)),
            }
        },
    }
}

/// The probe in the forked child: the feature bits.
///
/// # Safety
/// Only in a single-threaded forked child that exits right after.
unsafe fn child(fprog: &SockFprog) -> i32 {
    let mut bits = 0;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return bits;
    }
    // A task may hold one listener: ask for the killable wait first, then without it.
    // SAFETY: `fprog` points to a valid one-instruction program.
    let mut listener = unsafe {
        notify::install_filter_raw(
            fprog,
            SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        )
    };
    if listener >= 0 {
        bits |= WAIT_KILLABLE;
    } else {
        // SAFETY: as above.
        listener = unsafe { notify::install_filter_raw(fprog, SECCOMP_FILTER_FLAG_NEW_LISTENER) };
    }
    if listener < 0 {
        // No notification: is there seccomp filtering at all?
        // SAFETY: as above.
        if unsafe { notify::install_filter_raw(fprog, 0) } == 0 {
            bits |= FILTER;
        }
        return bits;
    }
    bits |= FILTER | NEW_LISTENER;
    let fd = listener as libc::c_int;
    // ADDFD for a notification that does not exist: ENOENT where the ioctl is known.
    let mut addfd = SeccompNotifAddfd {
        id: u64::MAX,
        ..SeccompNotifAddfd::default()
    };
    // SAFETY: `addfd` is a valid seccomp_notif_addfd on our stack.
    let r = unsafe { libc::ioctl(fd, SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) };
    // SAFETY: reading errno right after the call.
    if r < 0 && unsafe { *libc::__errno_location() } == libc::ENOENT {
        bits |= ADDFD;
    }
    // SAFETY: SET_FLAGS takes the flag word itself as its argument.
    let r = unsafe {
        libc::ioctl(
            fd,
            SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if r == 0 {
        bits |= SYNC_WAKE_UP;
    }
    bits
}

/// `(major, minor)` of a kernel release string such as `6.18.44-fc-v1252`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine kind runs Linux 6.18: every feature is there.
    #[test]
    fn this_kernel_has_every_notification_feature() {
        let f = probe().expect("probe");
        assert!(f.filter && f.new_listener && f.addfd, "{f:?}");
        let release = nix::sys::utsname::uname().expect("uname");
        let release = release.release().to_string_lossy().into_owned();
        let (major, minor) = kernel_version(&release).expect("version");
        assert_eq!(
            f.wait_killable_recv,
            (major, minor) >= (5, 19),
            "{f:?} on {release}"
        );
        assert_eq!(
            f.sync_wake_up,
            (major, minor) >= (6, 6),
            "{f:?} on {release}"
        );
    }
}
