//! What the emulation helpers share: the forked helper itself (one forking thread, a
//! deadline, asynchronous reaping), and kernel ABI definitions libc does not provide
//! (capget/capset, openat2).

use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `struct __user_cap_header_struct`.
#[repr(C)]
pub(super) struct CapHeader {
    pub(super) version: u32,
    pub(super) pid: i32,
}

/// `struct __user_cap_data_struct` (two of them for version 3).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct CapData {
    pub(super) effective: u32,
    pub(super) permitted: u32,
    pub(super) inheritable: u32,
}

pub(super) const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// Capability numbers (also their bit positions in `CapEff`).
pub(super) use linux_raw_sys::general::{CAP_MKNOD, CAP_SYS_ADMIN, CAP_SYS_CHROOT};

/// `struct open_how` (openat2, 5.6).
#[repr(C)]
pub(super) struct OpenHow {
    pub(super) flags: u64,
    pub(super) mode: u64,
    pub(super) resolve: u64,
}

pub(super) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(super) const RESOLVE_IN_ROOT: u64 = 0x10;

/// How long an emulation helper may take, in milliseconds ([`set_helper_limits`]).
static HELPER_TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_HELPER_TIMEOUT.as_millis() as u64);
/// Whether a helper stuck past its deadline may have the caller's stalled FUSE connection
/// aborted ([`set_helper_limits`]).
static ABORT_STALLED_FUSE: AtomicBool = AtomicBool::new(false);

/// The default deadline of an emulation helper.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest deadline accepted: LXC's seccomp proxy answers ENOSYS itself after 30 s.
pub const MAX_HELPER_TIMEOUT: Duration = Duration::from_secs(25);

/// Set, for the whole process, how long an emulation helper may take and whether a helper
/// stuck past it may have the caller's stalled FUSE connections aborted.
pub fn set_helper_limits(timeout: Duration, abort_stalled_fuse: bool) {
    let ms = timeout.min(MAX_HELPER_TIMEOUT).as_millis().max(1);
    HELPER_TIMEOUT_MS.store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    ABORT_STALLED_FUSE.store(abort_stalled_fuse, Ordering::Relaxed);
}

/// Why a helper gave no result.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot start the helper: {0}")]
    Start(std::io::Error),
    #[error("the helper died without a result")]
    Died,
    /// Past its deadline (a path on a stalled file system, typically): killed, reaped later.
    #[error("the helper did not finish within {}{}", humantime::format_duration(*after), if aborted.is_empty() { String::new() } else { format!("; aborted the stalled FUSE connection(s) {}", aborted.join(", ")) })]
    TimedOut {
        after: Duration,
        aborted: Vec<String>,
    },
}

/// A job for the forking thread: the function the child runs (never dropped in the child,
/// which must not free memory), the fds it keeps, and where the fork's outcome goes.
struct ForkRequest {
    job: Box<dyn FnMut() -> i32 + Send + 'static>,
    keep: Vec<RawFd>,
    reply: std::sync::mpsc::SyncSender<std::io::Result<Forked>>,
}

/// A forked helper, seen from the parent.
struct Forked {
    pidfd: OwnedFd,
    /// The read end of the pipe the child writes its errno to.
    result: OwnedFd,
}

/// The thread every helper is forked from. It lives as long as the process, so the helpers'
/// `PR_SET_PDEATHSIG` (which fires when the forking *thread* exits) fires exactly when
/// auditor dies — never when a pool thread retires.
fn forker() -> &'static std::sync::mpsc::Sender<ForkRequest> {
    static FORKER: OnceLock<std::sync::mpsc::Sender<ForkRequest>> = OnceLock::new();
    FORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<ForkRequest>();
        let spawned = std::thread::Builder::new()
            .name("auditor-forker".into())
            .spawn(move || {
                for mut req in rx {
                    let r = fork_one(&mut req.job, &req.keep);
                    // The job's captures are the requester's borrows: drop it before the
                    // requester may return (it waits for this reply).
                    drop(req.job);
                    let _ = req.reply.send(r);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the helper-forking thread; emulations will fail");
        }
        tx
    })
}

/// Fork one helper (on the forking thread).
fn fork_one(
    job: &mut Box<dyn FnMut() -> i32 + Send + 'static>,
    keep: &[RawFd],
) -> std::io::Result<Forked> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // Negative entries stand for "no fd" (an optional one the job does not have).
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= 0).collect();
    keep.push(w.as_raw_fd());
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: a plain fork (SIGCHLD, no shared state); the child makes only raw syscalls on
    // data prepared before the fork and ends with _exit; the parent continues normally.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: raw syscalls only (prctl, getppid, close_range, write, _exit) on data
        // prepared before the fork; the job follows the same contract (see fork_helper).
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Nothing but what the job needs: no other container's listener, socket or file.
            let mut from: u32 = 3;
            for &fd in &keep {
                let fd = fd as u32;
                if fd > from {
                    libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
                }
                from = from.max(fd.saturating_add(1));
            }
            libc::syscall(libc::SYS_close_range, from, u32::MAX, 0);
            let e = (**job)();
            let b = e.to_ne_bytes();
            libc::write(w.as_raw_fd(), b.as_ptr().cast(), 4);
            libc::_exit(0)
        }
    }
    drop(w);
    // Our own unreaped child: its pid cannot be reused before we take the pidfd.
    match crate::host::pidfd::open(pid as u32) {
        Ok(pidfd) => Ok(Forked { pidfd, result: r }),
        Err(e) => {
            // SAFETY: kill and waitpid on our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
            Err(e)
        }
    }
}

/// Reap helpers that missed their deadline, whenever they end (one thread for all, polling
/// their pidfds once a second): none is waited for by a broker, none is left a zombie.
fn reaper() -> &'static std::sync::mpsc::Sender<OwnedFd> {
    static REAPER: OnceLock<std::sync::mpsc::Sender<OwnedFd>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<OwnedFd>();
        let spawned = std::thread::Builder::new().name("auditor-reaper".into()).spawn(move || {
            let mut pending: Vec<OwnedFd> = Vec::new();
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(fd) => pending.push(fd),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                pending.retain(|fd| !reaped(fd, false));
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the helper-reaping thread; stuck helpers stay zombies");
        }
        tx
    })
}

/// `waitid(P_PIDFD)`: whether the helper has ended and is reaped (`block`: wait for it).
fn reaped(pidfd: &OwnedFd, block: bool) -> bool {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        // SAFETY: a zeroed siginfo is a valid out-buffer.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
        // SAFETY: waitid on a live pidfd of our own child into a live siginfo.
        let r = unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        if r == 0 {
            // SAFETY: waitid filled the siginfo; si_pid is 0 while the child runs (WNOHANG).
            return unsafe { info.si_pid() } != 0;
        }
        match errno() {
            libc::EINTR => continue,
            // Already reaped (ECHILD) or not a child: nothing to wait for.
            _ => return true,
        }
    }
}

/// Run `child` in a forked copy of this process (forked by the one forking thread, with only
/// the fds in `keep` open, dying with auditor) and return the errno it reports (0: done) —
/// or, past the deadline ([`set_helper_limits`]), give up on it at once: it is killed and
/// reaped later, and its stalled FUSE connection aborted when that is allowed.
///
/// The helper is how a handler acts as the caller: it enters the caller's mount namespace and
/// root and takes its file-system identity, which a thread of a threaded process cannot do
/// (setns(CLONE_NEWNS) needs an unshared fs_struct) and must not do to the broker itself.
///
/// # Safety
/// `child` runs in the fork of a threaded process: it must make only raw syscalls on data
/// prepared before the call — no allocation, no locks, no panics — and return.
pub(super) unsafe fn fork_helper(
    keep: &[RawFd],
    child: impl FnMut() -> i32,
) -> Result<i32, HelperError> {
    /// The job crosses to the forking thread only to be forked: no thread of this process
    /// ever calls it (only the forked child does, alone in its copy of the address space).
    struct OnlyInTheChild<F>(F);
    // SAFETY: see above — the value is moved to the forking thread and dropped there, never
    // called or borrowed by it; `F`'s captures are the requester's borrows and raw pointers,
    // which nothing in this process touches meanwhile.
    unsafe impl<F> Send for OnlyInTheChild<F> {}
    let timeout = Duration::from_millis(HELPER_TIMEOUT_MS.load(Ordering::Relaxed));
    let deadline = Instant::now() + timeout;
    impl<F: FnMut() -> i32> OnlyInTheChild<F> {
        fn call(&mut self) -> i32 {
            (self.0)()
        }
    }
    let mut wrapped = OnlyInTheChild(child);
    let job: Box<dyn FnMut() -> i32 + Send + '_> = Box::new(move || wrapped.call());
    // SAFETY: only the lifetime changes. The forking thread calls the job only in the forked
    // child (a copy of this address space taken while we wait below) and drops it before it
    // replies; we do not return before the reply, so every borrow the job holds outlives
    // every use of it.
    let job: Box<dyn FnMut() -> i32 + Send + 'static> = unsafe { std::mem::transmute(job) };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    forker()
        .send(ForkRequest {
            job,
            keep: keep.to_vec(),
            reply: tx,
        })
        .map_err(|_| {
            HelperError::Start(std::io::Error::other("the helper-forking thread is gone"))
        })?;
    let forked = rx
        .recv()
        .map_err(|_| {
            HelperError::Start(std::io::Error::other("the helper-forking thread is gone"))
        })?
        .map_err(HelperError::Start)?;
    let mut buf = [0u8; 4];
    let mut got = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: forked.result.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return Err(give_up(forked.pidfd, timeout));
        }
        // SAFETY: read into the rest of a live buffer.
        let r = unsafe {
            libc::read(
                forked.result.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                4 - got,
            )
        };
        match r {
            r if r > 0 => {
                got += r as usize;
                if got == 4 {
                    break;
                }
            }
            0 => break,
            _ if errno() == libc::EINTR => {}
            _ => break,
        }
    }
    // The child wrote its result and exits at once.
    reaped(&forked.pidfd, true);
    if got == 4 {
        Ok(i32::from_ne_bytes(buf))
    } else {
        Err(HelperError::Died)
    }
}

/// A helper past its deadline: kill it (it may sleep where SIGKILL cannot reach it, e.g. in
/// a FUSE request its server has read), abort the stalled FUSE connections of its mount
/// namespace when allowed, and leave the reaping to the reaper.
fn give_up(pidfd: OwnedFd, after: Duration) -> HelperError {
    let mut aborted = Vec::new();
    if ABORT_STALLED_FUSE.load(Ordering::Relaxed) {
        // The helper's pid, from the pidfd's fdinfo (the helper is not reaped yet).
        if let Some(pid) = crate::host::pidfd::pid_of(&pidfd) {
            aborted = abort_stalled_fuse(pid);
        }
    }
    // SAFETY: pidfd_send_signal on our own child's live pidfd, no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<u8>(),
            0,
        )
    };
    if !reaped(&pidfd, false) {
        let _ = reaper().send(pidfd);
    }
    HelperError::TimedOut { after, aborted }
}

/// Abort the FUSE connections a stuck helper may be waiting on: those mounted in its mount
/// namespace (the caller's) with requests waiting, except any the host's own mount namespace
/// also shows (a host FUSE file system bind-mounted into containers, such as lxcfs, is never
/// aborted for one container). Returns the connections aborted.
fn abort_stalled_fuse(pid: u32) -> Vec<String> {
    const CONNECTIONS: &str = "/sys/fs/fuse/connections";
    let fuse_devs = |mountinfo: &str| -> Vec<String> {
        mountinfo
            .lines()
            .filter(|l| {
                l.split(" - ").nth(1).is_some_and(|t| {
                    t.starts_with("fuse ") || t.starts_with("fuse.") || t.starts_with("fuseblk")
                })
            })
            .filter_map(|l| l.split(' ').nth(2).map(str::to_owned))
            .collect()
    };
    let Ok(theirs) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return Vec::new();
    };
    let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ours = fuse_devs(&ours);
    if !std::path::Path::new(CONNECTIONS).join(".").exists()
        || std::fs::read_dir(CONNECTIONS).is_ok_and(|mut d| d.next().is_none())
    {
        // fusectl not mounted yet: mount it where the kernel expects it (EBUSY: it is).
        let _ = nix::mount::mount(
            Some("fusectl"),
            CONNECTIONS,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let mut aborted = Vec::new();
    for dev in fuse_devs(&theirs) {
        if ours.contains(&dev) || aborted.contains(&dev) {
            continue;
        }
        // A FUSE superblock's device is anonymous (major 0): its connection is the minor.
        let Some(("0", minor)) = dev.split_once(':') else {
            continue;
        };
        let dir = std::path::Path::new(CONNECTIONS).join(minor);
        let waiting: u64 = std::fs::read_to_string(dir.join("waiting"))
            .ok()
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0);
        if waiting > 0 && std::fs::write(dir.join("abort"), "1").is_ok() {
            tracing::warn!(connection = %minor, helper = pid, "aborted a stalled FUSE connection a helper was stuck on");
            aborted.push(dev);
        }
    }
    aborted
}

/// `self/fd/N` as a C string without allocating (for a forked helper whose working
/// directory is auditor's own `/proc`).
pub(super) struct FdPath([u8; 32]);

impl FdPath {
    pub(super) fn new(fd: RawFd) -> FdPath {
        let mut b = [0u8; 32];
        let prefix = b"self/fd/";
        b[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut i = 0;
        loop {
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            i += 1;
            if n == 0 {
                break;
            }
        }
        for (j, d) in digits[..i].iter().rev().enumerate() {
            b[prefix.len() + j] = *d;
        }
        FdPath(b)
    }

    pub(super) fn as_ptr(&self) -> *const libc::c_char {
        self.0.as_ptr().cast()
    }
}

/// The calling thread's errno.
pub(super) fn errno() -> i32 {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// In a [`fork_helper`] child: enter the mount namespace `mntns` and make `root` the root
/// (and the working directory). `Err(errno)` on failure.
pub(super) fn enter_root(mntns: std::os::fd::RawFd, root: std::os::fd::RawFd) -> Result<(), i32> {
    let dot = c".";
    // SAFETY: raw syscalls on fds the caller keeps open and a static C string.
    unsafe {
        if libc::setns(mntns, libc::CLONE_NEWNS) != 0 {
            return Err(errno());
        }
        if libc::fchdir(root) != 0 || libc::chroot(dot.as_ptr()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// In a [`fork_helper`] child: take the caller's supplementary groups and fsuid/fsgid, and
/// confirm both ids took (setfsuid reports the previous value, so ask again). Holding an fsuid
/// other than 0 drops the file capabilities (CAP_DAC_OVERRIDE …) until it is 0 again.
pub(super) fn take_fs_identity(groups: &[libc::gid_t], fsuid: u32, fsgid: u32) -> Result<(), i32> {
    // SAFETY: raw syscalls; `groups` is a live slice of its length.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            return Err(errno());
        }
        libc::syscall(libc::SYS_setfsgid, fsgid);
        libc::syscall(libc::SYS_setfsuid, fsuid);
        if libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32 != fsuid
            || libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32 != fsgid
        {
            return Err(libc::EPERM);
        }
    }
    Ok(())
}

/// In a [`fork_helper`] child: set this thread's capabilities to exactly `effective` and
/// `permitted` (bit masks of the low 32 capabilities), nothing inheritable.
pub(super) fn set_caps(effective: u32, permitted: u32) -> Result<(), i32> {
    set_caps_full(u64::from(effective), u64::from(permitted))
}

/// Set this thread's capabilities to exactly `effective` and `permitted` (all 64 bits),
/// nothing inheritable.
pub(super) fn set_caps_full(effective: u64, permitted: u64) -> Result<(), i32> {
    capset(&[
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ])
}

/// This thread's capabilities (capget, version 3).
pub(super) fn capget() -> Result<[CapData; 2], i32> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget writes a live header and two live data structs (version 3).
    if unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } != 0
    {
        return Err(errno());
    }
    Ok(data)
}

/// Set this thread's capabilities (capset, version 3: the raw syscall changes only the calling
/// thread).
pub(super) fn capset(data: &[CapData; 2]) -> Result<(), i32> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads a live header and two live data structs (version 3).
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// In a [`fork_helper`] child: whether the identity it took may access the file `fd` refers
/// to with `mode` (`W_OK`, …), as the kernel checks it for that identity: `faccessat2`
/// (5.8) with `AT_EACCESS | AT_EMPTY_PATH`.
pub(super) fn access(fd: RawFd, mode: libc::c_int) -> Result<(), i32> {
    // SAFETY: raw syscall on a live fd and a static empty C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd,
            c"".as_ptr(),
            mode,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(errno());
    }
    Ok(())
}

/// In a [`fork_helper`] child: `openat2(from, path, how)`, the fd or `Err(errno)`.
pub(super) fn openat2(
    from: std::os::fd::RawFd,
    path: *const libc::c_char,
    how: &OpenHow,
) -> Result<std::os::fd::RawFd, i32> {
    // SAFETY: `path` is a live C string (or null for the caller's own reasons, which the
    // kernel refuses with EFAULT); `how` is a live open_how of its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            from,
            path,
            how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    Ok(fd as std::os::fd::RawFd)
}

/// The signal that interrupts the broker thread's blocking receive (see `watch` in the
/// broker): SIGURG, ignored by default and used by nothing else in auditor, so a stray one is
/// harmless.
const INTERRUPT: nix::sys::signal::Signal = nix::sys::signal::Signal::SIGURG;

extern "C" fn interrupted(_: libc::c_int) {}

/// Install the (empty) handler of [`INTERRUPT`], without `SA_RESTART`, so that the signal
/// makes a blocking `SECCOMP_IOCTL_NOTIF_RECV` return `EINTR`. Idempotent.
pub(super) fn install_interrupt() -> std::io::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    static INSTALLED: std::sync::OnceLock<Result<(), nix::errno::Errno>> =
        std::sync::OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        let action = SigAction::new(
            SigHandler::Handler(interrupted),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, so it is async-signal-safe; no other code of
        // auditor handles or relies on this signal's default disposition.
        unsafe { sigaction(INTERRUPT, &action) }.map(|_| ())
    });
    r.map_err(std::io::Error::from)
}

/// Interrupt thread `thread`'s blocking syscall with [`INTERRUPT`]. `thread` must not have
/// been joined yet.
pub(super) fn interrupt(thread: libc::pthread_t) {
    if let Err(e) = nix::sys::pthread::pthread_kill(thread, INTERRUPT) {
        tracing::debug!(error = %e, "cannot interrupt the broker thread");
    }
}

/// How far below the broker threads the record and audit-log threads run (`nice` steps): far
/// enough that a quiet container's broker thread, woken on a CPU where a flood's records are
/// being formatted, runs at once; near enough that the writers keep up with the broker
/// threads whenever a CPU is idle (and when none is, the broker threads wait for room, which
/// frees one).
const BACKGROUND_NICE: libc::c_int = 10;

/// Make the calling thread a background one: `SCHED_BATCH` (its wake-ups never preempt the
/// thread running on their CPU) at [`BACKGROUND_NICE`]. Best effort: said at debug level.
pub(super) fn background(what: &str) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        tracing::debug!(thread = what, error = %std::io::Error::last_os_error(), "no SCHED_BATCH");
    }
    // On Linux a nice value is a thread's own: PRIO_PROCESS with the thread's id. Relative to
    // the one it inherited, so that an agent started under `nice` keeps its writers below it.
    // SAFETY: gettid has no preconditions; getpriority and setpriority only read their
    // arguments (errno is cleared first: -1 is a valid nice value).
    let r = unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + BACKGROUND_NICE).min(19))
    };
    if r != 0 {
        tracing::debug!(thread = what, error = %std::io::Error::last_os_error(), "no background nice value");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the calling thread becomes a background one.
    #[test]
    fn background_threads_are_batch_and_nice_and_alone() {
        // SAFETY: gettid/getpriority/sched_getscheduler only read the calling thread's state.
        let mine = || unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
            (nice, libc::sched_getscheduler(0))
        };
        let before = mine();
        let theirs = std::thread::spawn(move || {
            background("test");
            mine()
        })
        .join()
        .expect("thread");
        assert_eq!(theirs.0, (before.0 + BACKGROUND_NICE).min(19), "{before:?}");
        assert_eq!(theirs.1, libc::SCHED_BATCH);
        assert_eq!(mine(), before);
    }

    #[test]
    fn fd_paths() {
        assert_eq!(&FdPath::new(7).0[..10], b"self/fd/7\0");
        assert_eq!(&FdPath::new(1234).0[..13], b"self/fd/1234\0");
    }

    /// A helper sees the fds it keeps and none of the others (another container's listener,
    /// say), whatever the forking process has open.
    #[test]
    fn helpers_inherit_only_the_fds_they_keep() {
        let kept = std::fs::File::open("/proc/self/status").expect("file");
        let other = std::fs::File::open("/proc/self/stat").expect("file");
        let (k, o) = (kept.as_raw_fd(), other.as_raw_fd());
        // SAFETY: the job makes raw fcntl calls only.
        let r = unsafe {
            fork_helper(&[k, -1], || {
                let open = |fd| libc::fcntl(fd, libc::F_GETFD) >= 0;
                match (open(k), open(o)) {
                    (true, false) => 0,
                    (false, _) => 1,
                    (true, true) => 2,
                }
            })
        };
        assert_eq!(
            r.expect("helper"),
            0,
            "1: the kept fd was closed, 2: another fd stayed open"
        );
    }
}
