//! What the emulation helpers share: the helper processes themselves — spawned sharing
//! auditor's memory ([`spawn_helper`], for mknod and setxattr) or forked from one forking
//! thread ([`fork_helper`], for the rest) —, their deadline and asynchronous reaping, the raw
//! system calls they make (errors by value, never `errno`), and kernel ABI definitions libc
//! does not provide (capget/capset, openat2).

use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use syscalls::{syscall, Sysno};

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

/// The fds a helper keeps, sorted and once each; negative entries stand for "no fd" (an
/// optional one the job does not have).
fn kept(keep: impl IntoIterator<Item = RawFd>) -> Vec<RawFd> {
    let mut keep: Vec<RawFd> = keep.into_iter().filter(|&fd| fd >= 0).collect();
    keep.sort_unstable();
    keep.dedup();
    keep
}

/// First thing in a new helper, forked or spawned: die with auditor (`PR_SET_PDEATHSIG`;
/// `false` if auditor, `parent`, is already gone) and close every fd but `keep` (sorted, as
/// [`kept`] makes it) — no other container's listener, socket or file. Raw syscalls only.
///
/// # Safety
/// Only in a new helper: it closes the process's fds.
unsafe fn start_helper(parent: libc::pid_t, keep: &[RawFd]) -> bool {
    // SAFETY: raw syscalls on scalars; closing fds is this helper's own business.
    unsafe {
        let _ = syscall!(Sysno::prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if syscall!(Sysno::getppid) != Ok(parent as usize) {
            return false;
        }
        let mut from: u32 = 3;
        for &fd in keep {
            let fd = fd as u32;
            if fd > from {
                let _ = syscall!(Sysno::close_range, from, fd - 1, 0);
            }
            from = from.max(fd.saturating_add(1));
        }
        let _ = syscall!(Sysno::close_range, from, u32::MAX, 0);
    }
    true
}

/// Wait until `fd` is readable (`true`) or `deadline` passes (`false`).
fn readable_before(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return n > 0;
    }
}

/// Fork one helper (on the forking thread).
fn fork_one(
    job: &mut Box<dyn FnMut() -> i32 + Send + 'static>,
    keep: &[RawFd],
) -> std::io::Result<Forked> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let keep = kept(keep.iter().copied().chain([w.as_raw_fd()]));
    // SAFETY: a plain fork (SIGCHLD, no shared state); the child makes only raw syscalls on
    // data prepared before the fork and ends with _exit; the parent continues normally.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: raw syscalls only (see `start_helper`; write, _exit) on data prepared before
        // the fork; the job follows the same contract (see fork_helper).
        unsafe {
            if !start_helper(parent, &keep) {
                libc::_exit(1);
            }
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

/// A helper given up on: its pidfd, and what it may still use until it has ended (a spawned
/// helper's stack and job, which share this process's memory).
struct Abandoned {
    pidfd: OwnedFd,
    _held: Option<Box<dyn Send>>,
}

/// Reap helpers that missed their deadline, whenever they end (one thread for all, polling
/// their pidfds once a second): none is waited for by a broker, none is left a zombie, and
/// what a spawned one uses is freed only once it has ended.
fn reaper() -> &'static std::sync::mpsc::Sender<Abandoned> {
    static REAPER: OnceLock<std::sync::mpsc::Sender<Abandoned>> = OnceLock::new();
    REAPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Abandoned>();
        let spawned = std::thread::Builder::new().name("auditor-reaper".into()).spawn(move || {
            let mut pending: Vec<Abandoned> = Vec::new();
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(a) => pending.push(a),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                pending.retain(|a| !reaped(&a.pidfd, false));
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
        // __WALL: a spawned helper has no exit signal (a "clone" child).
        let flags = libc::WEXITED | libc::__WALL | if block { 0 } else { libc::WNOHANG };
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
        if !readable_before(&forked.result, deadline) {
            return Err(give_up(forked.pidfd, timeout, None));
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

/// Whether helpers are forked per call instead of spawned (`AUDITOR_HELPER=fork`): the design
/// before [`spawn_helper`], kept as a fallback and for `cargo xtask bench-emulate`, which
/// measures both in one run.
fn fork_per_call() -> bool {
    static FORK: OnceLock<bool> = OnceLock::new();
    *FORK.get_or_init(|| std::env::var_os("AUDITOR_HELPER").is_some_and(|v| v == "fork"))
}

/// The stack of a spawned helper: an anonymous mapping with a guard page below it, unmapped
/// on drop.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; moving it to another thread (the pool, the
// reaper) moves the duty to unmap it.
unsafe impl Send for Stack {}

impl Stack {
    /// Enough for the helpers' raw syscalls in an unoptimised build, with room to spare.
    const SIZE: usize = 256 * 1024;
    const GUARD: usize = 4096;

    fn new() -> std::io::Result<Stack> {
        let len = Self::SIZE + Self::GUARD;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The top of the stack (it grows down), 16-byte aligned (page aligned).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, which is where a stack starts.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, used by nobody any more (see `Spawned`).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// A [`Stack`] lent from the pool: given back when dropped — which happens only once its
/// helper has ended. Mapping, protecting and unmapping one per call would interrupt every CPU
/// running auditor's threads to flush its TLB.
struct PooledStack(Option<Stack>);

impl PooledStack {
    /// The stacks kept for reuse: as many as helpers usually run at once, and a few more.
    const KEPT: usize = 8;

    fn pool() -> &'static std::sync::Mutex<Vec<Stack>> {
        static POOL: std::sync::Mutex<Vec<Stack>> = std::sync::Mutex::new(Vec::new());
        &POOL
    }

    /// A stack from the pool, or a new one.
    fn take() -> std::io::Result<PooledStack> {
        let pooled = Self::pool().lock().ok().and_then(|mut p| p.pop());
        Ok(PooledStack(Some(match pooled {
            Some(stack) => stack,
            None => Stack::new()?,
        })))
    }

    fn top(&self) -> *mut libc::c_void {
        self.0.as_ref().map_or(std::ptr::null_mut(), Stack::top)
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        if let (Some(stack), Ok(mut pool)) = (self.0.take(), Self::pool().lock()) {
            if pool.len() < Self::KEPT {
                pool.push(stack);
            }
        }
    }
}

/// No result yet (a spawned helper that died before reporting one).
const NO_RESULT: i32 = -1;

/// What a spawned helper uses, in this process's memory, which it shares: the job (called
/// only by the helper), the fds it keeps, its stack, and the slot it reports its errno in.
/// Freed only once the helper has ended — by the caller, or by the reaper for a helper given
/// up on.
struct Spawned<F> {
    /// auditor's pid: a helper whose parent is already another has outlived auditor.
    parent: libc::pid_t,
    keep: Vec<RawFd>,
    job: std::cell::UnsafeCell<F>,
    result: std::sync::atomic::AtomicI32,
    stack: PooledStack,
}

/// The spawned helper's entry, on its own stack (glibc's `clone` calls it and exits with its
/// return value).
///
/// It shares the address space *and* the thread-local storage of the thread that spawned it
/// (its thread pointer is a copy of that thread's): it makes raw system calls only, which
/// return their errors instead of setting `errno`, touches no thread-local, allocates
/// nothing and takes no lock.
extern "C" fn spawned_main<F: FnMut() -> i32>(arg: *mut libc::c_void) -> libc::c_int {
    let s = arg.cast_const().cast::<Spawned<F>>();
    // SAFETY: `arg` is the `Spawned` that the spawning side keeps alive until this process
    // has ended; the job is called only here; the rest is only read. Raw syscalls only.
    unsafe {
        // No handler of auditor's ever runs here (they would run on the broker's thread-locals);
        // SIGKILL, which cannot be blocked, still ends it.
        let all: u64 = !0;
        let _ = syscall!(
            Sysno::rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            0,
            8
        );
        if !start_helper((*s).parent, &(*s).keep) {
            return 255;
        }
        let r = (*(*s).job.get())();
        (*s).result.store(r, Ordering::Release);
    }
    0
}

/// Run `job` in a helper process that shares auditor's memory (`clone(CLONE_VM)`, as
/// `posix_spawn` starts a process) and return the errno it reports (0: done) — or, past the
/// deadline ([`set_helper_limits`]), give up on it at once: it is killed, and reaped (and its
/// stack and job freed) later; its stalled FUSE connection is aborted when that is allowed.
///
/// The helper is a process of its own, as a forked one ([`fork_helper`]) is: its own file
/// descriptor table (only the fds in `keep` stay open), root, working directory, umask,
/// credentials, capabilities and mount namespace, none of which it shares with auditor, and
/// it dies with auditor. What it does not get is a copy of auditor's memory — which a fork
/// copies page table by page table, the bulk of an emulated call's cost — so it may only
/// read what the job owns (moved into it, freed once the helper has ended).
/// `AUDITOR_HELPER=fork` forks per call instead.
///
/// # Safety
/// `job` runs on a stack of its own but with the calling thread's thread-local storage, while
/// that thread and all others run on: it must make only raw system calls that report errors
/// by value (the `syscalls` crate, [`enter_root`], [`openat2`] …; never libc's wrappers,
/// which set `errno`), on data it owns — no allocation, no locks, no thread-locals, no
/// panics — and return.
pub(super) unsafe fn spawn_helper<F>(keep: &[RawFd], mut job: F) -> Result<i32, HelperError>
where
    F: FnMut() -> i32 + Send + 'static,
{
    if fork_per_call() {
        // SAFETY: the job's contract is stricter than the forked child's.
        return unsafe { fork_helper(keep, &mut job) };
    }
    let timeout = Duration::from_millis(HELPER_TIMEOUT_MS.load(Ordering::Relaxed));
    // SAFETY: the caller keeps spawn_helper's contract, which is spawn's.
    unsafe { spawn(keep, job, timeout) }
}

/// [`spawn_helper`] with its deadline given.
///
/// # Safety
/// As for [`spawn_helper`].
unsafe fn spawn<F>(keep: &[RawFd], job: F, timeout: Duration) -> Result<i32, HelperError>
where
    F: FnMut() -> i32 + Send + 'static,
{
    let deadline = Instant::now() + timeout;
    let keep = kept(keep.iter().copied());
    let stack = PooledStack::take().map_err(HelperError::Start)?;
    let spawned = Box::new(Spawned {
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        keep,
        job: std::cell::UnsafeCell::new(job),
        result: std::sync::atomic::AtomicI32::new(NO_RESULT),
        stack,
    });
    let top = spawned.stack.top();
    let arg: *const Spawned<F> = &*spawned;
    let mut pidfd: libc::c_int = -1;
    // SAFETY: glibc's clone runs `spawned_main` on the new stack in a new process sharing this
    // address space (no CLONE_FILES/FS/SIGHAND/THREAD: everything else is its own copy) and
    // writes its pidfd into `pidfd`; `spawned` outlives the helper (freed below only after it
    // has ended, or by the reaper); `spawned_main` keeps the contract above. No exit signal:
    // its end wakes only the pidfd (no SIGCHLD for auditor's runtime to handle), and only a
    // wait with `__WALL` reaps it (see `reaped`), never someone's `waitpid(-1)`.
    let pid = unsafe {
        libc::clone(
            spawned_main::<F>,
            top,
            libc::CLONE_VM | libc::CLONE_PIDFD,
            arg.cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid < 0 {
        return Err(HelperError::Start(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel made this pidfd for us (CLONE_PIDFD); nothing else owns it.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    if !readable_before(&pidfd, deadline) {
        return Err(give_up(pidfd, timeout, Some(spawned)));
    }
    // The pidfd is readable: the helper has ended (its memory released before that), so
    // nothing of `spawned` is in use any more.
    reaped(&pidfd, true);
    match spawned.result.load(Ordering::Acquire) {
        NO_RESULT => Err(HelperError::Died),
        r => Ok(r),
    }
}

/// A helper past its deadline: kill it (it may sleep where SIGKILL cannot reach it, e.g. in
/// a FUSE request its server has read), abort the stalled FUSE connections of its mount
/// namespace when allowed, and leave the reaping to the reaper, with `held` (what the helper
/// may use until it ends).
fn give_up(pidfd: OwnedFd, after: Duration, held: Option<Box<dyn Send>>) -> HelperError {
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
        let _ = reaper().send(Abandoned { pidfd, _held: held });
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

/// A raw system call's outcome, its error as `Err(errno)`: the helpers' calls never touch the
/// thread's `errno`, which a spawned helper would share with the broker thread that started
/// it (same memory, same thread-local storage; see [`spawn_helper`]).
fn raw(r: Result<usize, syscalls::Errno>) -> Result<usize, i32> {
    r.map_err(syscalls::Errno::into_raw)
}

/// In a helper: enter the mount namespace `mntns` and make `root` the root (and the working
/// directory). `Err(errno)` on failure.
pub(super) fn enter_root(mntns: std::os::fd::RawFd, root: std::os::fd::RawFd) -> Result<(), i32> {
    // SAFETY: raw syscalls on fds the caller keeps open and a static C string.
    unsafe {
        raw(syscall!(Sysno::setns, mntns, libc::CLONE_NEWNS))?;
        fchdir(root)?;
        raw(syscall!(Sysno::chroot, c".".as_ptr()))?;
    }
    Ok(())
}

/// In a helper: take the caller's supplementary groups and fsuid/fsgid, and confirm both ids
/// took (setfsuid reports the previous value, so ask again). Holding an fsuid other than 0
/// drops the file capabilities (CAP_DAC_OVERRIDE …) until it is 0 again.
pub(super) fn take_fs_identity(groups: &[libc::gid_t], fsuid: u32, fsgid: u32) -> Result<(), i32> {
    // SAFETY: raw syscalls; `groups` is a live slice of its length.
    unsafe {
        raw(syscall!(Sysno::setgroups, groups.len(), groups.as_ptr()))?;
        raw(syscall!(Sysno::setfsgid, fsgid))?;
        raw(syscall!(Sysno::setfsuid, fsuid))?;
        if raw(syscall!(Sysno::setfsuid, u32::MAX)) != Ok(fsuid as usize)
            || raw(syscall!(Sysno::setfsgid, u32::MAX)) != Ok(fsgid as usize)
        {
            return Err(libc::EPERM);
        }
    }
    Ok(())
}

/// In a helper: set this thread's capabilities to exactly `effective` and
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
    raw(unsafe { syscall!(Sysno::capget, &mut hdr as *mut CapHeader, data.as_mut_ptr()) })?;
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
    raw(unsafe { syscall!(Sysno::capset, &mut hdr as *mut CapHeader, data.as_ptr()) })?;
    Ok(())
}

/// In a helper: whether the identity it took may access the file `fd` refers to with `mode`
/// (`W_OK`, …), as the kernel checks it for that identity: `faccessat2` (5.8) with
/// `AT_EACCESS | AT_EMPTY_PATH`.
pub(super) fn access(fd: RawFd, mode: libc::c_int) -> Result<(), i32> {
    // SAFETY: raw syscall on a live fd and a static empty C string.
    raw(unsafe {
        syscall!(
            Sysno::faccessat2,
            fd,
            c"".as_ptr(),
            mode,
            libc::AT_EACCESS | libc::AT_EMPTY_PATH
        )
    })?;
    Ok(())
}

/// In a helper: `openat2(from, path, how)`, the fd or `Err(errno)`.
pub(super) fn openat2(
    from: std::os::fd::RawFd,
    path: *const libc::c_char,
    how: &OpenHow,
) -> Result<std::os::fd::RawFd, i32> {
    // SAFETY: `path` is a live C string (or null for the caller's own reasons, which the
    // kernel refuses with EFAULT); `how` is a live open_how of its size.
    let fd = raw(unsafe {
        syscall!(
            Sysno::openat2,
            from,
            path,
            how as *const OpenHow,
            std::mem::size_of::<OpenHow>()
        )
    })?;
    Ok(fd as std::os::fd::RawFd)
}

/// In a helper: set its umask (which cannot fail).
pub(super) fn umask(mask: u32) {
    // SAFETY: umask only sets this process's mask.
    let _ = unsafe { syscall!(Sysno::umask, mask & 0o777) };
}

/// In a helper: `mknodat(dir, name, mode, dev)`.
pub(super) fn mknodat(dir: RawFd, name: &std::ffi::CStr, mode: u32, dev: u32) -> Result<(), i32> {
    // SAFETY: a raw mknodat on a live fd and a live C string.
    raw(unsafe { syscall!(Sysno::mknodat, dir, name.as_ptr(), mode, u64::from(dev)) })?;
    Ok(())
}

/// In a helper: the type bits (`S_IFMT`) of the file `fd` refers to (`fstat`).
pub(super) fn file_type(fd: RawFd) -> Result<libc::mode_t, i32> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a live fd into a live buffer of the kernel's struct stat.
    raw(unsafe { syscall!(Sysno::fstat, fd, &mut st as *mut libc::stat) })?;
    Ok(st.st_mode & libc::S_IFMT)
}

/// In a helper: `fchdir(dir)`.
pub(super) fn fchdir(dir: RawFd) -> Result<(), i32> {
    // SAFETY: a raw fchdir on a live fd.
    raw(unsafe { syscall!(Sysno::fchdir, dir) })?;
    Ok(())
}

/// In a helper: `setxattr(path, name, value, flags)`.
pub(super) fn setxattr(
    path: &FdPath,
    name: &std::ffi::CStr,
    value: &[u8],
    flags: libc::c_int,
) -> Result<(), i32> {
    // SAFETY: a raw setxattr on live C strings and a value buffer of its length.
    raw(unsafe {
        syscall!(
            Sysno::setxattr,
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr(),
            value.len(),
            flags
        )
    })?;
    Ok(())
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

/// A broker thread's scheduling policy, taken when its listener starts flooding (see
/// [`super::flood`]) and given back when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Policy(libc::c_int);

impl Policy {
    /// The calling thread's policy; `None` for a real-time one (an administrator's choice,
    /// left alone) or if it cannot be read.
    pub(super) fn current() -> Option<Policy> {
        // SAFETY: pid 0 is the calling thread; sched_getscheduler only reads its state.
        let p = unsafe { libc::sched_getscheduler(0) };
        matches!(p, libc::SCHED_OTHER | libc::SCHED_BATCH).then_some(Policy(p))
    }

    /// Make the calling thread `SCHED_IDLE` (`flooding`) or give it this policy back. The
    /// legacy call keeps the thread's nice value either way.
    pub(super) fn apply(self, flooding: bool) -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        let policy = if flooding { libc::SCHED_IDLE } else { self.0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The calling thread's nice value and scheduling policy.
    fn nice_and_policy() -> (libc::c_int, libc::c_int) {
        // SAFETY: gettid/getpriority/sched_getscheduler only read the calling thread's state
        // (errno is cleared first: -1 is a valid nice value).
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
            (nice, libc::sched_getscheduler(0))
        }
    }

    /// Only the calling thread becomes a background one.
    #[test]
    fn background_threads_are_batch_and_nice_and_alone() {
        let before = nice_and_policy();
        let theirs = std::thread::spawn(move || {
            background("test");
            nice_and_policy()
        })
        .join()
        .expect("thread");
        assert_eq!(theirs.0, (before.0 + BACKGROUND_NICE).min(19), "{before:?}");
        assert_eq!(theirs.1, libc::SCHED_BATCH);
        assert_eq!(nice_and_policy(), before);
    }

    /// A flooding listener's thread becomes SCHED_IDLE and gets its policy and nice value
    /// back; other threads keep theirs.
    #[test]
    fn a_flooding_thread_gives_way_and_takes_its_policy_back() {
        let before = nice_and_policy();
        let (during, after) = std::thread::spawn(move || {
            background("test");
            let own = nice_and_policy();
            let p = Policy::current().expect("batch is not real-time");
            p.apply(true).expect("SCHED_IDLE");
            let during = nice_and_policy();
            p.apply(false).expect("back");
            (during, (own, nice_and_policy()))
        })
        .join()
        .expect("thread");
        assert_eq!(during.1, libc::SCHED_IDLE);
        let (own, back) = after;
        assert_eq!(back, own, "policy and nice value given back");
        assert_eq!(own.1, libc::SCHED_BATCH);
        assert_eq!(nice_and_policy(), before);
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

    /// The errno a raw syscall reports, or 0.
    fn failed(r: Result<usize, syscalls::Errno>) -> i32 {
        r.err().map_or(0, syscalls::Errno::into_raw)
    }

    /// A spawned helper shares auditor's memory but nothing else a forked one would not: it is
    /// a process of its own, with only the fds it keeps, and its own working directory and
    /// umask (what the handlers change in it).
    #[test]
    fn spawned_helpers_are_processes_of_their_own_with_only_the_fds_they_keep() {
        let kept = std::fs::File::open("/proc/self/status").expect("file");
        let other = std::fs::File::open("/proc/self/stat").expect("file");
        let (k, o) = (kept.as_raw_fd(), other.as_raw_fd());
        let cwd = std::env::current_dir().expect("cwd");
        assert_ne!(
            cwd,
            std::path::Path::new("/"),
            "the test needs a cwd other than /"
        );
        // SAFETY: umask only sets this process's mask (read back and restored at once).
        let umask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as usize;
        // SAFETY: the job makes raw syscalls only, on nothing but scalars and a static string.
        let r = unsafe {
            spawn(
                &[k, -1],
                move || {
                    let open = |fd: RawFd| syscall!(Sysno::fcntl, fd, libc::F_GETFD).is_ok();
                    if syscall!(Sysno::getpid) == Ok(me) {
                        return 1;
                    }
                    if !open(k) {
                        return 2;
                    }
                    if open(o) {
                        return 3;
                    }
                    if syscall!(Sysno::chdir, c"/".as_ptr()).is_err() {
                        return 4;
                    }
                    let _ = syscall!(Sysno::umask, 0o077);
                    0
                },
                Duration::from_secs(10),
            )
        };
        assert_eq!(
            r.expect("helper"),
            0,
            "1: same process, 2: the kept fd was closed, 3: another fd stayed open, 4: chdir"
        );
        assert_eq!(
            std::env::current_dir().expect("cwd"),
            cwd,
            "the helper's chdir leaked"
        );
        // SAFETY: as above.
        let now = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        assert_eq!(now, umask, "the helper's umask leaked");
        drop((kept, other));
    }

    /// The helper runs with the spawning thread's thread-local storage: a libc wrapper that
    /// failed in it would write that thread's `errno` while the thread runs on. Its raw calls
    /// report errors by value and leave `errno` alone.
    #[test]
    fn a_spawned_helper_reports_errors_by_value_and_leaves_errno_alone() {
        const SENTINEL: i32 = 4242;
        // SAFETY: writing this thread's errno slot.
        unsafe { *libc::__errno_location() = SENTINEL };
        // SAFETY: the job makes one raw syscall on a scalar.
        let r = unsafe {
            spawn(
                &[],
                || failed(syscall!(Sysno::close, -1i32)),
                Duration::from_secs(10),
            )
        };
        assert_eq!(r.expect("helper"), libc::EBADF);
        assert_eq!(
            errno(),
            SENTINEL,
            "the helper wrote the spawning thread's errno"
        );
    }

    /// Dropped only by whoever knows the helper has ended.
    struct Freed(Arc<AtomicBool>);

    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A helper past its deadline is given up on at once and killed; what it uses (its job,
    /// its stack) is freed once it has ended, not before and not never.
    #[test]
    fn a_spawned_helper_past_its_deadline_is_killed_and_its_job_freed_after() {
        let freed = Arc::new(AtomicBool::new(false));
        let owned = Freed(freed.clone());
        let started = Instant::now();
        // SAFETY: the job makes one raw syscall on a timespec it owns.
        let r = unsafe {
            spawn(
                &[],
                move || {
                    let _keep = &owned;
                    let ts = libc::timespec {
                        tv_sec: 30,
                        tv_nsec: 0,
                    };
                    failed(syscall!(Sysno::nanosleep, &ts as *const libc::timespec, 0))
                },
                Duration::from_millis(200),
            )
        };
        assert!(matches!(r, Err(HelperError::TimedOut { .. })), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !freed.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the job of a killed helper was never freed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A helper killed before it reports is one that died, not one that succeeded.
    #[test]
    fn a_spawned_helper_that_is_killed_died() {
        // SAFETY: the job makes raw syscalls on scalars.
        let r = unsafe {
            spawn(
                &[],
                || {
                    if let Ok(pid) = syscall!(Sysno::getpid) {
                        let _ = syscall!(Sysno::kill, pid, libc::SIGKILL);
                    }
                    0
                },
                Duration::from_secs(10),
            )
        };
        assert!(matches!(r, Err(HelperError::Died)), "{r:?}");
    }
}
