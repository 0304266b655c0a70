//! The parent's side of the listener hand-over: follow the child's status pipe, take the
//! workload's seccomp listener with `pidfd_getfd` once its filter is in place, and answer the
//! child's hand-over call so that it goes on to `execve`.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{filter, LaunchError, MSG_LISTENER_FD, MSG_UNSHARED, MSG_WORKLOAD_PID};

/// Read one status message; `None` at end of file (every copy of the write end closed).
pub(super) fn read_msg(fd: &OwnedFd) -> Result<Option<(u32, i32)>, LaunchError> {
    let mut buf = [0u8; 8];
    let mut got = 0;
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                got += n;
                if got == 8 {
                    let tag = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let value = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    return Ok(Some((tag, value)));
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(source) => return Err(LaunchError::Sys { op: "read", source }),
        }
    }
}

/// How long the parent waits for the child to install its filter and make the hand-over call.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `fd` becomes readable within `ms` milliseconds.
fn readable_within(fd: &OwnedFd, ms: i32) -> Result<bool, LaunchError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on our stack.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = nix::Error::last();
        return if e == nix::Error::EINTR {
            Ok(false)
        } else {
            Err(LaunchError::Sys {
                op: "poll",
                source: e,
            })
        };
    }
    Ok(r > 0)
}

/// The workload's fd `n`, if it is a seccomp listener (before the child's `seccomp()` the
/// number is free: EBADF).
fn take_listener(pidfd: &OwnedFd, n: i32) -> Option<OwnedFd> {
    let fd = crate::host::pidfd::getfd(pidfd, n).ok()?;
    crate::seccomp::notify::check_listener(std::os::fd::AsFd::as_fd(&fd))
        .is_ok()
        .then_some(fd)
}

/// Answer the child's hand-over call (the first notification of its filter) so that it goes on
/// to `execve`.
fn answer_handover(
    listener: &OwnedFd,
    workload: Pid,
    fd_number: i32,
    deadline: Instant,
) -> Result<(), LaunchError> {
    use crate::seccomp::notify::{NotifyFd, Response};
    let no = |why: String| LaunchError::NoListener { why };
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no(
                "the child did not make its hand-over call in time".into()
            ));
        }
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: one valid pollfd on our stack.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 && nix::Error::last() != nix::Error::EINTR {
            return Err(LaunchError::Sys {
                op: "poll",
                source: nix::Error::last(),
            });
        }
        if pfd.revents & libc::POLLIN != 0 {
            break;
        }
        if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Err(no("the child exited after installing its filter".into()));
        }
    }
    // Borrow the fd as a NotifyFd for the two ioctls, without taking it over.
    let dup = listener.try_clone().map_err(|e| LaunchError::Setup {
        stage: "dup of the seccomp listener",
        source: e,
    })?;
    let nfd = NotifyFd::new(dup);
    let n = nfd
        .recv()
        .map_err(|e| no(format!("receiving the hand-over call: {e}")))?;
    let expected = n.data.nr == filter::HANDOVER_NR as i32
        && n.pid == workload.as_raw() as u32
        && n.data.args[0] == fd_number as u64;
    if !expected {
        let _ = nfd.send(n.id, Response::Errno(libc::ENOSYS));
        return Err(no(format!(
            "the first notification was not the hand-over call (pid {}, nr {}, arg {})",
            n.pid, n.data.nr, n.data.args[0]
        )));
    }
    nfd.send(n.id, Response::Value(0))
        .map_err(|e| no(format!("answering the hand-over call: {e}")))
}

/// The parent's side of the hand-over: follow the status pipe until the child announces its
/// listener's fd number, take the fd as soon as the filter is in place, answer the hand-over
/// call. Returns the workload's pid and the listener.
pub(super) fn take_over(
    status: &OwnedFd,
    pid: Pid,
    in_userns: bool,
    stage_error: &dyn Fn(u32, i32) -> LaunchError,
) -> Result<(Pid, OwnedFd), LaunchError> {
    let deadline = Instant::now() + HANDOVER_TIMEOUT;
    let no = |why: &str| LaunchError::NoListener { why: why.into() };
    // With a user namespace the workload is the reaper's child; its pid comes first.
    let mut workload = (!in_userns).then_some(pid);
    let mut number: Option<i32> = None;
    let mut pidfd: Option<OwnedFd> = None;
    loop {
        if let (Some(w), Some(n)) = (workload, number) {
            if pidfd.is_none() {
                let fd = crate::host::pidfd::open(w.as_raw() as u32).map_err(|e| {
                    LaunchError::Setup {
                        stage: "pidfd_open of the workload",
                        source: e,
                    }
                })?;
                pidfd = Some(fd);
            }
            if let Some(fd) = pidfd.as_ref().and_then(|p| take_listener(p, n)) {
                answer_handover(&fd, w, n, deadline)?;
                return Ok((w, fd));
            }
        }
        if Instant::now() >= deadline {
            return Err(no("the child did not install its filter in time"));
        }
        // Between the announcement and seccomp() there are only a few instructions: poll
        // briefly then.
        let wait_ms = if number.is_some() { 1 } else { 100 };
        if !readable_within(status, wait_ms)? {
            continue;
        }
        match read_msg(status)? {
            None => return Err(no("the child exited before installing its filter")),
            Some((MSG_UNSHARED, _)) => {}
            Some((MSG_WORKLOAD_PID, p)) => workload = Some(Pid::from_raw(p)),
            Some((MSG_LISTENER_FD, n)) => number = Some(n),
            Some((tag, e)) => return Err(stage_error(tag, e)),
        }
    }
}
