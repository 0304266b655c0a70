//! A short probe in a forked child, for facts a process can only learn by changing itself
//! irreversibly (installing a seccomp filter, entering a new namespace).

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// How a probe child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `_exit` with what the probe returned.
    Exited(i32),
    Killed(Signal),
}

/// Run `probe` in a forked child, which `_exit`s with what it returns (0 to 255), and reap it.
///
/// # Safety
/// `probe` runs in the copy a `fork` makes of a possibly multi-threaded process: it must make
/// only async-signal-safe calls (raw syscalls; no allocation, no locks) on memory prepared
/// before the call.
pub unsafe fn probe_in_child(probe: impl FnOnce() -> i32) -> Result<Ended, nix::Error> {
    // SAFETY: the caller guarantees that the child only makes async-signal-safe calls; it
    // leaves through _exit, running none of the parent's exit handlers.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = probe();
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Ended::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Ended::Killed(sig)),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e),
            }
        },
    }
}
