//! A running workload: its pids, waiting for its end, forwarding signals to it.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::LaunchError;

/// A running workload.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// Our direct child (with a user namespace: the reaper that relays the exit status).
    pub(super) pid: Pid,
    /// The workload itself, in our pid namespace.
    pub(super) workload: Pid,
}

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The exit status a shell would report: the code, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// The workload's pid in our pid namespace (differs from [`Child::pid`] with a user
    /// namespace, where the workload is pid 1 of its own).
    pub fn workload_pid(&self) -> u32 {
        self.workload.as_raw() as u32
    }

    /// Block until the child ends.
    pub fn wait(&self) -> Result<Exit, LaunchError> {
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(source) => {
                    return Err(LaunchError::Sys {
                        op: "waitpid",
                        source,
                    })
                }
            }
        }
    }

    /// Send a signal to the workload (errors such as "already gone" are ignored).
    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::kill(self.workload, sig);
    }
}
