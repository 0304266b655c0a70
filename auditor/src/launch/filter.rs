//! The seccomp filter a held child installs just before `execve`, and how its listener fd
//! reaches auditor.
//!
//! Everything is prepared before `fork`: the program and the `sock_fprog` that points to it.
//! In the child, [`Prepared::install_and_hand_over`] makes only raw, async-signal-safe calls.
//!
//! The hand-over needs no syscall the policy has to allow. The child tells auditor (on the
//! status pipe, before the filter exists) which fd number the listener will get — the lowest
//! free one —, installs the filter, and then makes one call that a short prefix of the program
//! always notifies: [`HANDOVER_NR`], a number no kernel assigns. It blocks there; auditor takes
//! the listener out of the child's fd table with `pidfd_getfd` (5.6), receives that first
//! notification and answers it, and only then does the child `execve`. So a generated policy
//! is enforced as it is, in every mode, and the workload never runs before the broker listens.

use std::os::fd::RawFd;

use crate::seccomp::notify::{
    self, SockFilter, SockFprog, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
};
pub use crate::seccomp::program::{Filter, FilterError, HANDOVER_NR};

/// What a failed step in the child reports: the step and errno.
pub(crate) type ChildFailure = (super::Stage, i32);

/// The filter, ready for the child.
pub(crate) struct Prepared {
    prog: Vec<SockFilter>,
    listener: bool,
}

/// Everything the child needs, prepared before `fork`.
pub(crate) fn prepare(filter: &Filter) -> Result<Prepared, FilterError> {
    Ok(Prepared {
        prog: filter.program()?,
        listener: filter.needs_listener(),
    })
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot; reading it is
    // async-signal-safe.
    unsafe { *libc::__errno_location() }
}

impl Prepared {
    /// In the forked child, just before `execve`: no new privileges, the filter, and (if the
    /// program can notify) the hand-over of its listener: the fd number to `status_fd` before
    /// the filter exists, then the one notified [`HANDOVER_NR`] call, which returns once
    /// auditor holds the listener.
    ///
    /// # Safety
    /// Call only in a single-threaded forked child that is about to `execve`: it makes raw
    /// syscalls, and relies on nothing else allocating fds between its calls.
    pub(crate) unsafe fn install_and_hand_over(
        &self,
        status_fd: RawFd,
    ) -> Result<(), ChildFailure> {
        use super::Stage;
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err((Stage::NoNewPrivs, errno()));
        }
        let fprog = SockFprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr(),
        };
        if !self.listener {
            // SAFETY: fprog points to self.prog, alive for the call.
            let r = unsafe { notify::install_filter_raw(&fprog, 0) };
            return if r < 0 {
                Err((Stage::Seccomp, -r as i32))
            } else {
                Ok(())
            };
        }
        // The listener gets the lowest free fd number: find it (dup, then close) and tell the
        // parent while the status pipe is still certainly writable (no filter yet).
        // SAFETY: fcntl and close on fds of our own table.
        let predicted = unsafe { libc::fcntl(status_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if predicted < 0 {
            return Err((Stage::HandOver, errno()));
        }
        // SAFETY: as above; `predicted` was just created.
        unsafe {
            libc::close(predicted);
            super::report(status_fd, super::MSG_LISTENER_FD, predicted);
        }
        let flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        // SAFETY: fprog points to self.prog, alive for the call.
        let mut r = unsafe { notify::install_filter_raw(&fprog, flags) };
        if r == -libc::c_long::from(libc::EINVAL) {
            // Before 5.19 the kernel does not know WAIT_KILLABLE_RECV.
            // SAFETY: as above.
            r = unsafe { notify::install_filter_raw(&fprog, SECCOMP_FILTER_FLAG_NEW_LISTENER) };
        }
        if r < 0 {
            return Err((Stage::Seccomp, -r as i32));
        }
        // Blocks until auditor, holding the listener, answers. The fd number goes along so
        // that auditor can check it took the right fd. The listener is O_CLOEXEC: execve
        // closes the child's copy.
        // SAFETY: a syscall no kernel implements; our filter notifies it before the kernel
        // would look at the number.
        let answer = unsafe { libc::syscall(libc::c_long::from(HANDOVER_NR as i32), r) };
        if answer != 0 {
            return Err((
                Stage::HandOver,
                if answer < 0 { errno() } else { libc::EIO },
            ));
        }
        Ok(())
    }
}
