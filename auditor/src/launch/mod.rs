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

pub mod filter;
pub mod userns;

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    #[error("setting up the workload failed: {stage}")]
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
        let first = argv.first().ok_or(LaunchError::Empty)?;
        let path = resolve(first)?;
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

fn resolve(cmd: &str) -> Result<PathBuf, LaunchError> {
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

/// Read one status message; `None` at end of file (every copy of the write end closed).
fn read_msg(fd: &OwnedFd) -> Result<Option<(u32, i32)>, LaunchError> {
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
fn take_over(
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

/// A running workload.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// Our direct child (with a user namespace: the reaper that relays the exit status).
    pid: Pid,
    /// The workload itself, in our pid namespace.
    workload: Pid,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_directory_the_mapped_root_cannot_search() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().expect("tempdir");
        let closed = t.path().join("closed");
        std::fs::create_dir_all(closed.join("bin")).expect("mkdir");
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let prog = closed.join("bin/prog");
        let (dir, mode, _) = unsearchable(&prog, 100_000, 100_000).expect("unreachable");
        assert_eq!((dir, mode), (closed.clone(), 0o700));
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        assert_eq!(unsearchable(&prog, 100_000, 100_000), None);
        // Its owner may search it.
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&closed).expect("stat"));
        assert_eq!(unsearchable(&prog, owner, u32::MAX), None);
    }

    #[test]
    fn resolves_through_path_and_rejects_missing() {
        let c = Command::new(&["sh".into(), "-c".into(), "true".into()]);
        assert!(c.is_ok_and(|c| c.path.is_absolute()));
        assert!(matches!(
            Command::new(&["no-such-command-xyz".into()]),
            Err(LaunchError::NotFound(_))
        ));
        assert!(matches!(Command::new(&[]), Err(LaunchError::Empty)));
        assert!(matches!(
            Command::new(&["/etc/passwd".into()]),
            Err(LaunchError::NotFound(_))
        ));
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
    fn stdio_goes_where_options_say() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("out.log");
        let cmd = Command::new(&[
            "sh".into(),
            "-c".into(),
            "read x || echo eof; echo out; echo err >&2".into(),
        ])?;
        let options = Options {
            stdio: Some(Stdio {
                stdin: std::fs::File::open("/dev/null")?.into(),
                output: std::fs::File::create(&log)?.into(),
            }),
            ..Options::default()
        };
        let child = spawn_held_with(&cmd, &options)?.release()?;
        assert_eq!(child.wait()?, Exit::Code(0));
        assert_eq!(std::fs::read_to_string(&log)?, "eof\nout\nerr\n");
        Ok(())
    }

    #[test]
    fn abandoned_child_never_runs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let marker = dir.path().join("ran");
        let cmd = Command::new(&[
            "sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ])?;
        spawn_held(&cmd)?.abort();
        assert!(!marker.exists());
        Ok(())
    }
}
