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
    #[error("cannot run the seccomp probe in a child")]
    Fork(#[source] nix::Error),
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
    use crate::host::child::{probe_in_child, Ended};
    // SAFETY: the child makes only raw, async-signal-safe calls (prctl, seccomp, ioctl) on
    // memory prepared before the fork; `fprog` points to `prog`, alive in the child's copy.
    let ended = unsafe { probe_in_child(|| child(&fprog)) }.map_err(ProbeError::Fork)?;
    match ended {
        Ended::Exited(bits) => Ok(NotifyFeatures {
            filter: bits & FILTER != 0,
            new_listener: bits & NEW_LISTENER != 0,
            addfd: bits & ADDFD != 0,
            wait_killable_recv: bits & WAIT_KILLABLE != 0,
            sync_wake_up: bits & SYNC_WAKE_UP != 0,
        }),
        Ended::Killed(sig) => Err(ProbeError::Abnormal(format!("killed by {sig}"))),
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
        let (major, minor) =
            crate::policy::formats::parse_kernel_version(&release).expect("version");
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
