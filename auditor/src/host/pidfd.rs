//! pidfds (5.3): a stable handle on a process, and through it its fds (5.6).

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

/// A pidfd for the thread group `tgid` (5.3).
pub fn open(tgid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tgid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A duplicate of the process's fd `fd` (5.6; needs ptrace access, which host root has).
pub fn getfd(pidfd: &OwnedFd, fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a target fd number and flags; the result is a new fd
    // we own (O_CLOEXEC is set by the kernel).
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// The pid a pidfd refers to (its fdinfo's `Pid:` line; `-1` there once it has exited).
pub fn pid_of(pidfd: &OwnedFd) -> Option<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_of_ourselves_names_us_and_gives_our_fds() {
        let me = std::process::id();
        let p = open(me).expect("pidfd of ourselves");
        assert_eq!(pid_of(&p), Some(me));
        let f = std::fs::File::open("/proc/self/status").expect("a file");
        let dup = getfd(&p, f.as_raw_fd()).expect("pidfd_getfd of our own fd");
        assert_eq!(
            super::super::proc::fd_path(dup.as_raw_fd()).ok(),
            Some(format!("/proc/{me}/status"))
        );
    }
}
