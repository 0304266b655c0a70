//! Spawning workloads. The child is forked and held before `execve` until the parent has set
//! up what must be in place first (tracking now; the seccomp filter and listener hand-over with
//! enforcement), so that nothing the workload does is missed and nothing of auditor's counts.
//!
//! Everything the child needs is prepared before `fork`; between `fork` and `execve` the child
//! makes only async-signal-safe raw calls (read, write, execve, _exit).

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no command given: put it after `--`, e.g. `auditor learn -- /bin/ls -l`")]
    Empty,
    #[error("command not found: `{0}` (not an executable file, nor found in PATH)")]
    NotFound(String),
    #[error("`{0}` contains a NUL byte")]
    Nul(String),
    #[error("cannot execute {path}: {source}")]
    Exec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} failed: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// A command resolved and encoded for `execve`.
#[derive(Debug, Clone)]
pub struct Command {
    pub path: PathBuf,
    pub argv: Vec<String>,
    c_path: CString,
    c_argv: Vec<CString>,
}

impl Command {
    /// Resolve `argv[0]` (through PATH when it has no slash), so that the workload makes exactly
    /// one execve and a missing command is reported before anything starts.
    pub fn new(argv: &[String]) -> Result<Self, LaunchError> {
        let first = argv.first().ok_or(LaunchError::Empty)?;
        let path = resolve(first)?;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| LaunchError::Nul(first.clone()))?;
        let c_argv = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| LaunchError::Nul(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Command { path, argv: argv.to_vec(), c_path, c_argv })
    }
}

fn resolve(cmd: &str) -> Result<PathBuf, LaunchError> {
    let is_exec = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file()
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if is_exec(&p) { Ok(p) } else { Err(LaunchError::NotFound(cmd.into())) };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| is_exec(p))
        .ok_or_else(|| LaunchError::NotFound(cmd.into()))
}

/// A forked child waiting before `execve`.
pub struct Held {
    pid: Pid,
    go: OwnedFd,
    status: OwnedFd,
    path: PathBuf,
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| LaunchError::Sys { op: "pipe2", source })
}

/// Fork a child that waits for [`Held::release`] and then executes `cmd`.
pub fn spawn_held(cmd: &Command) -> Result<Held, LaunchError> {
    let (go_r, go_w) = pipe_cloexec()?;
    let (st_r, st_w) = pipe_cloexec()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = cmd.c_argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: after fork the child only calls async-signal-safe functions (close, read, execve,
    // write, _exit) on data prepared before the fork; the parent continues normally.
    match unsafe { nix::unistd::fork() }.map_err(|source| LaunchError::Sys { op: "fork", source })? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: raw syscalls only; see above.
            unsafe {
                libc::close(go_w.as_raw_fd());
                libc::close(st_r.as_raw_fd());
                let mut b = 0u8;
                let n = libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                if n != 1 {
                    // The parent went away or gave up: never run the workload untracked.
                    libc::_exit(127);
                }
                libc::execve(cmd.c_path.as_ptr(), argv_ptrs.as_ptr(), environ);
                let errno = *libc::__errno_location();
                let bytes = errno.to_ne_bytes();
                libc::write(st_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(go_r);
            drop(st_w);
            Ok(Held { pid: child, go: go_w, status: st_r, path: cmd.path.clone() })
        }
    }
}

impl Held {
    /// The child's pid (host pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Let the child execute. Returns once `execve` has succeeded, or its error.
    pub fn release(self) -> Result<Child, LaunchError> {
        let Held { pid, go, status, path } = self;
        nix::unistd::write(&go, &[1u8]).map_err(|source| LaunchError::Sys { op: "write", source })?;
        drop(go);
        let mut buf = [0u8; 4];
        let mut got = 0;
        // EOF (the CLOEXEC pipe closed by a successful execve) or the child's errno.
        loop {
            match nix::unistd::read(status.as_raw_fd(), &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == 4 {
                        break;
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(LaunchError::Sys { op: "read", source }),
            }
        }
        if got == 4 {
            let _ = waitpid(pid, None);
            return Err(LaunchError::Exec {
                path,
                source: std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)),
            });
        }
        Ok(Child { pid })
    }

    /// Abandon the child (it exits without running anything).
    pub fn abort(self) {
        let pid = self.pid;
        drop(self);
        let _ = waitpid(pid, None);
    }
}

/// A running workload.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    pid: Pid,
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

    /// Block until the child ends.
    pub fn wait(&self) -> Result<Exit, LaunchError> {
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(source) => return Err(LaunchError::Sys { op: "waitpid", source }),
            }
        }
    }

    /// Send a signal (errors such as "already gone" are ignored).
    pub fn signal(&self, sig: Signal) {
        let _ = nix::sys::signal::kill(self.pid, sig);
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_path_and_rejects_missing() {
        let c = Command::new(&["sh".into(), "-c".into(), "true".into()]);
        assert!(c.is_ok_and(|c| c.path.is_absolute()));
        assert!(matches!(Command::new(&["no-such-command-xyz".into()]), Err(LaunchError::NotFound(_))));
        assert!(matches!(Command::new(&[]), Err(LaunchError::Empty)));
        assert!(matches!(Command::new(&["/etc/passwd".into()]), Err(LaunchError::NotFound(_))));
    }

    #[test]
    fn held_child_runs_only_after_release_and_reports_status() -> Result<(), LaunchError> {
        let cmd = Command::new(&["sh".into(), "-c".into(), "exit 7".into()])?;
        let held = spawn_held(&cmd)?;
        let child = held.release()?;
        assert_eq!(child.wait()?, Exit::Code(7));
        Ok(())
    }

    #[test]
    fn abandoned_child_never_runs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("ran");
        let cmd = Command::new(&["sh".into(), "-c".into(), format!("touch {}", marker.display())])?;
        spawn_held(&cmd)?.abort();
        assert!(!marker.exists());
        Ok(())
    }
}
