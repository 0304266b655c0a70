//! Spawning workloads. The child is forked and held before `execve` until the parent has set
//! up what must be in place first (tracking now; the seccomp filter and listener hand-over with
//! enforcement), so that nothing the workload does is missed and nothing of auditor's counts.
//!
//! Everything the child needs is prepared before `fork`; between `fork` and `execve` the child
//! makes only async-signal-safe raw calls (read, write, execve, _exit; with [`Options`] also
//! unshare, mount, prctl, seccomp, sendmsg).
//!
//! With [`Options::filter`] the child installs a seccomp filter just before `execve` and hands
//! its listener fd to the parent ([`filter`]); with [`Options::userns`] it runs as an
//! unprivileged container ([`userns`]).

pub mod filter;
pub mod userns;

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
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
    #[error("setting up the workload failed: {stage}")]
    Setup {
        stage: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the workload's seccomp listener did not arrive (the child exited before handing it over)")]
    NoListener,
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error(transparent)]
    Userns(#[from] userns::UsernsError),
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
}

impl Stage {
    const ALL: [Stage; 10] = [
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
    ];

    fn describe(self) -> &'static str {
        match self {
            Stage::Exec => "execve",
            Stage::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::HandOver => {
                "handing the seccomp listener over with sendmsg (the policy must allow sendmsg)"
            }
            Stage::Unshare => "unshare(user, mount, pid, uts, ipc namespaces)",
            Stage::SetId => "becoming root inside the user namespace",
            Stage::Fork => "forking the container's init",
            Stage::MountSlave => "making mounts recursively slave",
            Stage::MountProc => "mounting the container's /proc",
            Stage::Rootfs => "switching to --rootfs (pivot_root)",
        }
    }
}

/// Messages on the status pipe (child to parent), 8 bytes each: tag, value.
const MSG_UNSHARED: u32 = 0x1;
const MSG_WORKLOAD_PID: u32 = 0x2;
const MSG_FAILED: u32 = 0x100;

/// What the held child sets up before `execve`, beyond waiting for release.
#[derive(Debug, Default)]
pub struct Options {
    /// A seccomp filter to install just before `execve`; its listener fd (if the program can
    /// notify) comes back from [`Held::release_with_listener`].
    pub filter: Option<filter::Filter>,
    /// Run as an unprivileged container.
    pub userns: Option<userns::Userns>,
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
    /// Our end of the socketpair the listener fd comes back on.
    handover: Option<OwnedFd>,
    userns: Option<userns::IdRange>,
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| LaunchError::Sys { op: "pipe2", source })
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
    let handover = match &options.filter {
        Some(f) if f.needs_listener() => {
            let mut fds = [-1 as RawFd; 2];
            // SAFETY: socketpair writes two fds into the array on success.
            let r = unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    fds.as_mut_ptr(),
                )
            };
            if r != 0 {
                return Err(LaunchError::Sys { op: "socketpair", source: nix::Error::last() });
            }
            // SAFETY: both fds were just created and are owned by nobody else.
            Some(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
        }
        _ => None,
    };
    let child_sock = handover.as_ref().map_or(-1, |(_, t)| t.as_raw_fd());
    let mut prepared_filter = match &options.filter {
        Some(f) => Some(f.prepare(child_sock)?),
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
    match unsafe { nix::unistd::fork() }.map_err(|source| LaunchError::Sys { op: "fork", source })? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: raw syscalls only; see above.
            unsafe {
                libc::close(go_w.as_raw_fd());
                libc::close(st_r.as_raw_fd());
                if let Some((ours, _)) = &handover {
                    libc::close(ours.as_raw_fd());
                }
                let st = st_w.as_raw_fd();
                // Rust ignores SIGPIPE; the workload should get the default, as with a shell.
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
                        relay(pid as libc::pid_t, st, child_sock);
                    }
                    if let Err((stage, e)) = u.set_up_mounts() {
                        report(st, MSG_FAILED | stage as u32, e);
                        libc::_exit(126);
                    }
                }
                if let Some(f) = &mut prepared_filter {
                    if let Err((stage, e)) = f.install_and_hand_over() {
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
            let handover = handover.map(|(ours, theirs)| {
                drop(theirs);
                ours
            });
            Ok(Held {
                pid: child,
                go: go_w,
                status: st_r,
                path: cmd.path.clone(),
                handover,
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
unsafe fn relay(workload: libc::pid_t, status_fd: RawFd, sock: RawFd) -> ! {
    // SAFETY: raw syscalls on fds we own and our stack.
    unsafe {
        report(status_fd, MSG_WORKLOAD_PID, workload);
        libc::close(status_fd);
        if sock >= 0 {
            libc::close(sock);
        }
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

/// Receive the listener fd sent with SCM_RIGHTS, without waiting.
fn recv_fd(sock: &OwnedFd) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cmsg = vec![0u64; space.div_ceil(8)];
    // SAFETY: the msghdr points to live local buffers; the control buffer is u64-aligned and
    // CMSG_SPACE bytes long; the fd read from it was installed in our table by the kernel.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len() * 8;
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n != 1 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
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
        let Held { pid, go, status, path, handover, userns } = self;
        let fail = |e: LaunchError| {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            e
        };
        let stage_error = |tag: u32, errno: i32| {
            let source = std::io::Error::from_raw_os_error(errno);
            match Stage::ALL.into_iter().find(|s| *s as u32 == tag & !MSG_FAILED) {
                Some(Stage::Exec) => LaunchError::Exec { path: path.clone(), source },
                Some(stage) => LaunchError::Setup { stage: stage.describe(), source },
                None => LaunchError::Setup { stage: "unknown step", source },
            }
        };
        if let Some(range) = userns {
            match read_msg(&status)? {
                Some((MSG_UNSHARED, _)) => {}
                Some((tag, e)) => return Err(fail(stage_error(tag, e))),
                None => return Err(fail(LaunchError::Setup {
                    stage: "unshare",
                    source: std::io::Error::other("the child exited"),
                })),
            }
            if let Err(e) = userns::write_maps(pid.as_raw(), range) {
                return Err(fail(e.into()));
            }
        }
        nix::unistd::write(&go, &[1u8]).map_err(|source| LaunchError::Sys { op: "write", source })?;
        drop(go);
        let mut workload = pid;
        // Until EOF (every CLOEXEC copy closed by a successful execve, the reaper's closed by
        // hand) or a failure report.
        loop {
            match read_msg(&status)? {
                None => break,
                Some((MSG_WORKLOAD_PID, p)) => workload = Pid::from_raw(p),
                Some((tag, e)) => {
                    let _ = waitpid(pid, None);
                    return Err(stage_error(tag, e));
                }
            }
        }
        let listener = match &handover {
            Some(sock) => match recv_fd(sock) {
                Some(fd) => Some(fd),
                None => {
                    let _ = nix::sys::signal::kill(workload, Signal::SIGKILL);
                    return Err(fail(LaunchError::NoListener));
                }
            },
            None => None,
        };
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
                Err(source) => return Err(LaunchError::Sys { op: "waitpid", source }),
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
