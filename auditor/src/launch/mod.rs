//! Spawning workloads. The child is forked and held before `execve` until the parent has set
//! up what must be in place first (tracking now; the seccomp filter and listener hand-over with
//! enforcement), so that nothing the workload does is missed and nothing of auditor's counts.
//!
//! Everything the child needs is prepared before `fork`; between `fork` and `execve` the child
//! makes only async-signal-safe raw calls (read, write, execve, _exit; with [`Options`] also
//! unshare, mount, prctl, seccomp and the one notified hand-over call).
//!
//! With [`Options::filter`] the child installs a seccomp filter just before `execve` and the
//! parent takes its listener fd with `pidfd_getfd` ([`filter`]); with [`Options::userns`] it
//! runs as an unprivileged container ([`userns`]).

mod child;
pub mod filter;
mod handover;
pub mod userns;

pub use child::{Child, Exit};
use handover::{read_msg, take_over};

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
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
    #[error("cannot execute {}: the container's root (host uid {uid}) cannot search {} (mode {mode:o}, owner uid {owner}); put the program where any user can reach it (e.g. /usr/local/bin or /tmp), or let others search that directory (`chmod o+x {}`)", path.display(), dir.display(), dir.display())]
    Unreachable {
        path: PathBuf,
        /// The first directory on the way that the mapped root cannot search.
        dir: PathBuf,
        mode: u32,
        owner: u32,
        /// The host uid of the container's root.
        uid: u32,
    },
    #[error("{op} failed: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error(
        "setting up the workload failed: {stage} (`auditor doctor` shows what this host lacks)"
    )]
    Setup {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the workload's seccomp listener did not arrive: {why}")]
    NoListener { why: String },
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
}

/// The first directory on the way to `path` (outermost first) that `uid`/`gid`, holding no
/// capability, cannot search: its path, mode and owner.
pub fn unsearchable(path: &Path, uid: u32, gid: u32) -> Option<(PathBuf, u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    dirs.into_iter().find_map(|d| {
        let m = std::fs::metadata(d).ok()?;
        let mode = m.mode();
        let can = if m.uid() == uid {
            mode & 0o100 != 0
        } else if m.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!can).then(|| (d.to_path_buf(), mode & 0o7777, m.uid()))
    })
}

/// Steps of the child's set-up, reported to the parent with the errno when one fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Exec = 1,
    NoNewPrivs = 2,
    Seccomp = 3,
    HandOver = 4,
    Unshare = 5,
    SetId = 6,
    Fork = 7,
    MountSlave = 8,
    MountProc = 9,
    Rootfs = 10,
    Stdio = 11,
}

impl Stage {
    const ALL: [Stage; 11] = [
        Stage::Exec,
        Stage::NoNewPrivs,
        Stage::Seccomp,
        Stage::HandOver,
        Stage::Unshare,
        Stage::SetId,
        Stage::Fork,
        Stage::MountSlave,
        Stage::MountProc,
        Stage::Rootfs,
        Stage::Stdio,
    ];

    fn describe(self) -> &'static str {
        match self {
            Stage::Exec => "execve",
            Stage::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::HandOver => "handing the seccomp listener over to auditor",
            Stage::Unshare => "unshare(user, mount, pid, uts, ipc namespaces)",
            Stage::SetId => "becoming root inside the user namespace",
            Stage::Fork => "forking the container's init",
            Stage::MountSlave => "making mounts recursively slave",
            Stage::MountProc => "mounting the container's /proc",
            Stage::Rootfs => "switching to --rootfs (pivot_root)",
            Stage::Stdio => "redirecting the workload's standard streams (dup2)",
        }
    }
}

/// Messages on the status pipe (child to parent), 8 bytes each: tag, value.
/// The signals auditor forwards to a workload it started ([`Child::signal`]); the workload
/// starts with their default dispositions, whatever auditor inherited.
pub const FORWARDED_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// How long a workload asked to stop (SIGINT, SIGTERM) gets before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

const MSG_UNSHARED: u32 = 0x1;
const MSG_WORKLOAD_PID: u32 = 0x2;
/// The fd number the seccomp listener is about to get in the workload.
const MSG_LISTENER_FD: u32 = 0x3;
const MSG_FAILED: u32 = 0x100;

/// What the held child sets up before `execve`, beyond waiting for release.
#[derive(Debug, Default)]
pub struct Options {
    /// A seccomp filter to install just before `execve`; its listener fd (if the program can
    /// notify) comes back from [`Held::release_with_listener`].
    pub filter: Option<filter::Filter>,
    /// Run as an unprivileged container.
    pub userns: Option<userns::Userns>,
    /// The workload's standard streams, instead of auditor's own (e.g. with `--tui`, where
    /// its output must not land on the UI).
    pub stdio: Option<Stdio>,
}

/// Standard streams for the workload, opened before `fork` (close-on-exec is fine: `dup2`
/// clears it on the copies) and put in place with `dup2` in the child.
#[derive(Debug)]
pub struct Stdio {
    /// Becomes fd 0.
    pub stdin: OwnedFd,
    /// Becomes fds 1 and 2.
    pub output: OwnedFd,
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
        Self::new_in(argv, None)
    }

    /// As [`Command::new`], for a workload that runs with `rootfs` as its root (`--rootfs`):
    /// `argv[0]` is looked for there (a path as it will be inside; a bare name in the `PATH`
    /// directories under it), never on the host.
    pub fn new_in(argv: &[String], rootfs: Option<&Path>) -> Result<Self, LaunchError> {
        let first = argv.first().ok_or(LaunchError::Empty)?;
        let path = match rootfs {
            None => resolve(first)?,
            Some(root) => resolve_in(root, first)?,
        };
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| LaunchError::Nul(first.clone()))?;
        let c_argv = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| LaunchError::Nul(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Command {
            path,
            argv: argv.to_vec(),
            c_path,
            c_argv,
        })
    }
}

/// `cmd` as a path (when it has a slash) or searched in `PATH`, executable.
pub(crate) fn resolve(cmd: &str) -> Result<PathBuf, LaunchError> {
    let is_exec =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return if is_exec(&p) {
            Ok(p)
        } else {
            Err(LaunchError::NotFound(cmd.into()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| is_exec(p))
        .ok_or_else(|| LaunchError::NotFound(cmd.into()))
}

/// `cmd` as the workload will find it with `root` as its root: the path inside the root.
/// Symlinks are not followed here (an absolute one points into the root, not the host);
/// `execve` after the switch is the final word, and reports its own error.
fn resolve_in(root: &Path, cmd: &str) -> Result<PathBuf, LaunchError> {
    let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let present = |p: &Path| std::fs::symlink_metadata(inside(p)).is_ok();
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        if !p.is_absolute() {
            // The workload starts in the root's `/`.
            return Ok(Path::new("/").join(p));
        }
        return if present(&p) {
            Ok(p)
        } else {
            Err(LaunchError::NotFound(format!(
                "{cmd} (in {})",
                root.display()
            )))
        };
    }
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(cmd))
    .find(|p| present(p))
    .ok_or_else(|| LaunchError::NotFound(format!("{cmd} (in {})", root.display())))
}

/// A forked child waiting before `execve`.
pub struct Held {
    pid: Pid,
    go: OwnedFd,
    status: OwnedFd,
    path: PathBuf,
    /// The filter has a listener to take over.
    listener: bool,
    userns: Option<userns::IdRange>,
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| LaunchError::Sys {
        op: "pipe2",
        source,
    })
}

/// Fork a child that waits for [`Held::release`] and then executes `cmd`.
pub fn spawn_held(cmd: &Command) -> Result<Held, LaunchError> {
    spawn_held_with(cmd, &Options::default())
}

/// Write one status message; async-signal-safe.
///
/// # Safety
/// Raw write on a valid fd.
unsafe fn report(fd: RawFd, tag: u32, value: i32) {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&tag.to_ne_bytes());
    b[4..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: writes 8 bytes from our stack buffer.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

fn errno() -> i32 {
    // SAFETY: reading this thread's errno slot is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

/// Fork a child that waits for [`Held::release`], sets up what `options` ask for and then
/// executes `cmd`.
pub fn spawn_held_with(cmd: &Command, options: &Options) -> Result<Held, LaunchError> {
    let (go_r, go_w) = pipe_cloexec()?;
    let (st_r, st_w) = pipe_cloexec()?;
    let prepared_filter = match &options.filter {
        Some(f) => Some(filter::prepare(f)?),
        None => None,
    };
    let prepared_userns = match &options.userns {
        Some(u) => Some(u.prepare()?),
        None => None,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = cmd.c_argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: after fork the child only calls async-signal-safe functions (close, read, execve,
    // write, _exit, and the raw set-up calls of `filter` and `userns`) on data prepared before
    // the fork; the parent continues normally.
    match unsafe { nix::unistd::fork() }
        .map_err(|source| LaunchError::Sys { op: "fork", source })?
    {
        nix::unistd::ForkResult::Child => {
            // SAFETY: raw syscalls only; see above.
            unsafe {
                libc::close(go_w.as_raw_fd());
                libc::close(st_r.as_raw_fd());
                let st = st_w.as_raw_fd();
                // Rust ignores SIGPIPE; the workload should get the default, as with a shell.
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                // auditor forwards SIGINT and SIGTERM to the workload, so the workload must be
                // able to receive them: an ignored disposition survives execve, and auditor
                // may have inherited one (a command started with `&` by a non-interactive
                // shell ignores SIGINT and SIGQUIT). A workload may still ignore them itself;
                // callers escalate to SIGKILL after a grace period. No signal stays blocked.
                for sig in FORWARDED_SIGNALS {
                    libc::signal(sig, libc::SIG_DFL);
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                if let Some(io) = &options.stdio {
                    let (i, o) = (io.stdin.as_raw_fd(), io.output.as_raw_fd());
                    if libc::dup2(i, 0) < 0 || libc::dup2(o, 1) < 0 || libc::dup2(o, 2) < 0 {
                        report(st, MSG_FAILED | Stage::Stdio as u32, errno());
                        libc::_exit(126);
                    }
                }
                if prepared_userns.is_some() {
                    // Drop host supplementary groups while we still may (after unshare,
                    // setgroups is denied), then unshare and let the parent write the maps.
                    if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0 {
                        report(st, MSG_FAILED | Stage::SetId as u32, errno());
                        libc::_exit(126);
                    }
                    if libc::unshare(userns::UNSHARE_FLAGS) != 0 {
                        report(st, MSG_FAILED | Stage::Unshare as u32, errno());
                        libc::_exit(126);
                    }
                    report(st, MSG_UNSHARED, 0);
                }
                let mut b = 0u8;
                let n = libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                if n != 1 {
                    // The parent went away or gave up: never run the workload untracked.
                    libc::_exit(127);
                }
                if let Some(u) = &prepared_userns {
                    if libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
                        || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
                    {
                        report(st, MSG_FAILED | Stage::SetId as u32, errno());
                        libc::_exit(126);
                    }
                    // A plain fork (no atfork handlers): the workload becomes pid 1 of the
                    // new pid namespace.
                    let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0);
                    if pid < 0 {
                        report(st, MSG_FAILED | Stage::Fork as u32, errno());
                        libc::_exit(126);
                    }
                    if pid > 0 {
                        relay(pid as libc::pid_t, st);
                    }
                    if let Err((stage, e)) = u.set_up_mounts() {
                        report(st, MSG_FAILED | stage as u32, e);
                        libc::_exit(126);
                    }
                }
                if let Some(f) = &prepared_filter {
                    if let Err((stage, e)) = f.install_and_hand_over(st) {
                        report(st, MSG_FAILED | stage as u32, e);
                        libc::_exit(126);
                    }
                }
                libc::execve(cmd.c_path.as_ptr(), argv_ptrs.as_ptr(), environ);
                report(st, MSG_FAILED | Stage::Exec as u32, errno());
                libc::_exit(127);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(go_r);
            drop(st_w);
            Ok(Held {
                pid: child,
                go: go_w,
                status: st_r,
                path: cmd.path.clone(),
                listener: options
                    .filter
                    .as_ref()
                    .is_some_and(filter::Filter::needs_listener),
                userns: options.userns.as_ref().map(|u| u.range),
            })
        }
    }
}

/// The held child after forking the container's init: tell the parent its pid, then wait for
/// it and end the same way. Never returns.
///
/// # Safety
/// Only in the forked child (raw syscalls only).
unsafe fn relay(workload: libc::pid_t, status_fd: RawFd) -> ! {
    // SAFETY: raw syscalls on fds we own and our stack.
    unsafe {
        report(status_fd, MSG_WORKLOAD_PID, workload);
        libc::close(status_fd);
        // Terminal signals reach the whole process group; auditor forwards what it gets to
        // the workload itself, so this reaper must not die of them first.
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let mut wstatus = 0;
        loop {
            let r = libc::waitpid(workload, &mut wstatus, 0);
            if r == workload {
                break;
            }
            if r < 0 && errno() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(wstatus) {
            libc::_exit(libc::WEXITSTATUS(wstatus));
        }
        let sig = libc::WTERMSIG(wstatus);
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
}

impl Held {
    /// The child's pid (host pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Let the child execute. Returns once `execve` has succeeded, or its error.
    pub fn release(self) -> Result<Child, LaunchError> {
        self.release_with_listener().map(|(child, _)| child)
    }

    /// Let the child set up and execute. Returns once `execve` has succeeded, with the seccomp
    /// listener fd if the filter has one.
    pub fn release_with_listener(self) -> Result<(Child, Option<OwnedFd>), LaunchError> {
        let Held {
            pid,
            go,
            status,
            path,
            listener: want_listener,
            userns,
        } = self;
        let fail = |e: LaunchError| {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            e
        };
        let stage_error = |tag: u32, errno: i32| {
            let source = std::io::Error::from_raw_os_error(errno);
            match Stage::ALL
                .into_iter()
                .find(|s| *s as u32 == tag & !MSG_FAILED)
            {
                Some(Stage::Exec) => match (errno, userns) {
                    // In a user namespace the workload runs as the mapped root, an unprivileged
                    // host uid: say which directory keeps it from the program.
                    (libc::EACCES, Some(range)) => {
                        match unsearchable(&path, range.host, range.host) {
                            Some((dir, mode, owner)) => LaunchError::Unreachable {
                                path: path.clone(),
                                dir,
                                mode,
                                owner,
                                uid: range.host,
                            },
                            None => LaunchError::Exec {
                                path: path.clone(),
                                source,
                            },
                        }
                    }
                    _ => LaunchError::Exec {
                        path: path.clone(),
                        source,
                    },
                },
                Some(stage) => LaunchError::Setup {
                    stage: stage.describe(),
                    source,
                },
                None => LaunchError::Setup {
                    stage: "unknown step",
                    source,
                },
            }
        };
        if let Some(range) = userns {
            match read_msg(&status)? {
                Some((MSG_UNSHARED, _)) => {}
                Some((tag, e)) => return Err(fail(stage_error(tag, e))),
                None => {
                    return Err(fail(LaunchError::Setup {
                        stage: "unshare",
                        source: std::io::Error::other("the child exited"),
                    }))
                }
            }
            if let Err(e) = userns::write_maps(pid.as_raw(), range) {
                return Err(fail(e.into()));
            }
        }
        nix::unistd::write(&go, &[1u8]).map_err(|source| LaunchError::Sys {
            op: "write",
            source,
        })?;
        drop(go);
        let mut workload = pid;
        let mut listener = None;
        if want_listener {
            match take_over(&status, pid, userns.is_some(), &stage_error) {
                Ok((w, fd)) => {
                    workload = w;
                    listener = Some(fd);
                }
                Err(e) => {
                    // The workload too: with a user namespace it is not our child.
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    return Err(fail(e));
                }
            }
        }
        // Until EOF (every CLOEXEC copy closed by a successful execve, the reaper's closed by
        // hand) or a failure report.
        loop {
            match read_msg(&status)? {
                None => break,
                Some((MSG_WORKLOAD_PID, p)) => workload = Pid::from_raw(p),
                Some((MSG_LISTENER_FD, _)) => {}
                Some((tag, e)) => {
                    let _ = waitpid(pid, None);
                    return Err(stage_error(tag, e));
                }
            }
        }
        Ok((Child { pid, workload }, listener))
    }

    /// Abandon the child (it exits without running anything).
    pub fn abort(self) {
        let pid = self.pid;
        drop(self);
        let _ = waitpid(pid, None);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod resolve_in_tests {
    use super::*;

    #[test]
    fn commands_are_looked_for_in_the_rootfs_not_on_the_host() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::write(root.path().join("bin/tool"), "").unwrap();
        std::fs::write(root.path().join("init"), "").unwrap();
        let r = root.path();
        assert_eq!(resolve_in(r, "tool").unwrap(), Path::new("/bin/tool"));
        assert_eq!(resolve_in(r, "/init").unwrap(), Path::new("/init"));
        assert_eq!(resolve_in(r, "./init").unwrap(), Path::new("/./init"));
        // The host has /bin/sh; the root does not.
        assert!(matches!(
            resolve_in(r, "/bin/sh"),
            Err(LaunchError::NotFound(_))
        ));
        assert!(matches!(resolve_in(r, "sh"), Err(LaunchError::NotFound(_))));
    }
}
