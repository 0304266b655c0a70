//! Kernel ABI definitions the emulation helpers share (capget/capset and openat2), defined
//! here once because libc does not provide them.

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
pub(super) const CAP_SYS_CHROOT: u32 = 18;
pub(super) const CAP_SYS_ADMIN: u32 = 21;
pub(super) const CAP_MKNOD: u32 = 27;

/// `struct open_how` (openat2, 5.6).
#[repr(C)]
pub(super) struct OpenHow {
    pub(super) flags: u64,
    pub(super) mode: u64,
    pub(super) resolve: u64,
}

pub(super) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(super) const RESOLVE_IN_ROOT: u64 = 0x10;

/// Run `child` in a forked copy of this process and return the errno it reports (0: done).
///
/// The helper is how a handler acts as the caller: it enters the caller's mount namespace and
/// root and takes its file-system identity, which a thread of a threaded process cannot do
/// (setns(CLONE_NEWNS) needs an unshared fs_struct) and must not do to the broker itself.
///
/// # Safety
/// `child` runs in the fork of a threaded process: it must make only raw syscalls on data
/// prepared before the call — no allocation, no locks, no panics — and return.
pub(super) unsafe fn fork_helper(child: impl FnOnce() -> i32) -> std::io::Result<i32> {
    use std::os::fd::AsRawFd as _;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // SAFETY: a plain fork (SIGCHLD, no shared state); the child follows the contract above
    // and ends with _exit; the parent only closes, reads and waits.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        let e = child();
        let b = e.to_ne_bytes();
        // SAFETY: raw write of a live 4-byte buffer to our pipe, then _exit.
        unsafe {
            libc::write(w.as_raw_fd(), b.as_ptr().cast(), 4);
            libc::_exit(0)
        }
    }
    drop(w);
    let mut buf = [0u8; 4];
    let got = nix::unistd::read(r.as_raw_fd(), &mut buf);
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    while let Err(nix::Error::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    match got {
        Ok(4) => Ok(i32::from_ne_bytes(buf)),
        Ok(_) => Err(std::io::Error::other("the helper died without a result")),
        Err(e) => Err(e.into()),
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
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let low = CapData {
        effective,
        permitted,
        inheritable: 0,
    };
    let high = CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    };
    let data = [low, high];
    // SAFETY: capset reads a live header and two live data structs (version 3).
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) } != 0 {
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
    static INSTALLED: std::sync::OnceLock<Result<(), nix::errno::Errno>> = std::sync::OnceLock::new();
    let r = INSTALLED.get_or_init(|| {
        let action = SigAction::new(SigHandler::Handler(interrupted), SaFlags::empty(), SigSet::empty());
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
