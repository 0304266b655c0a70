//! auditor's own stderr while an in-process UI is open: pointed at the workload's log file, so
//! that nothing is written over the UI, and put back when the UI closes (or panics).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// auditor's stderr while the UI has it pointed at the log file, else -1.
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);

/// Put auditor's stderr back on what it was before the UI opened (idempotent; also called by
/// the UI's panic hook so that a panic message reaches the terminal).
pub fn restore_stderr() {
    let saved = SAVED_STDERR.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the fd `redirect_stderr` dup'ed and nobody else owns; dup2 and
        // close have no memory preconditions.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}

/// Point fd 2 at `log`, keeping a copy of the old one for [`restore_stderr`].
pub(super) fn redirect_stderr(log: RawFd) -> std::io::Result<()> {
    // SAFETY: dup/dup2 on open fds; the copy is owned by SAVED_STDERR until restored.
    let saved = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if saved < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::dup2(log, 2) } < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our own copy, unused.
        unsafe { libc::close(saved) };
        return Err(e);
    }
    SAVED_STDERR.store(saved, Ordering::SeqCst);
    Ok(())
}
