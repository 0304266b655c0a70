//! The helper that builds the mount where no host path is reachable: a private mount namespace
//! with an empty tmpfs root, `fsopen` → `fsconfig` → `fsmount` there, then `move_mount` onto
//! the target in the caller's namespace.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use crate::broker::sys::{
    self, OpenHow, CAP_SYS_ADMIN, CAP_SYS_CHROOT, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
};
use crate::broker::target::Creds;

use super::Copied;

/// Everything the forked helper needs, prepared before `fork`.
pub(super) struct Helper {
    pub(super) mntns: OwnedFd,
    pub(super) root: OwnedFd,
    pub(super) cwd: OwnedFd,
    pub(super) creds: Creds,
    pub(super) copied: Copied,
    pub(super) flags: u64,
    /// The device number of each allowed source.
    pub(super) allowed: Vec<u64>,
    /// `shift = true`: the caller's user namespace, to idmap the mount through.
    pub(super) idmap: Option<OwnedFd>,
    /// The mount data as `fsconfig` parameters.
    pub(super) options: Vec<(CString, Option<CString>)>,
}

// The new mount API (include/uapi/linux/mount.h), from the kernel's headers as rustix has
// them (the libc crate has only the two CLOEXEC flags).
use linux_raw_sys::general::fsconfig_command;
pub(super) const FSCONFIG_SET_FLAG: libc::c_uint =
    fsconfig_command::FSCONFIG_SET_FLAG as libc::c_uint;
pub(super) const FSCONFIG_SET_STRING: libc::c_uint =
    fsconfig_command::FSCONFIG_SET_STRING as libc::c_uint;
pub(super) const FSCONFIG_SET_FD: libc::c_uint = fsconfig_command::FSCONFIG_SET_FD as libc::c_uint;
pub(super) const FSCONFIG_CMD_CREATE: libc::c_uint =
    fsconfig_command::FSCONFIG_CMD_CREATE as libc::c_uint;
const FSOPEN_CLOEXEC: libc::c_uint = libc::FSOPEN_CLOEXEC;
const FSMOUNT_CLOEXEC: libc::c_uint = libc::FSMOUNT_CLOEXEC;
use linux_raw_sys::general::{
    MOUNT_ATTR_IDMAP, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MOUNT_ATTR_STRICTATIME,
    MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH,
};

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The per-mount attributes of mount(2) flags (the superblock's are `fsconfig` flags).
pub(super) fn mount_attrs(flags: u64) -> u64 {
    let mut a = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    for (f, attr) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    ] {
        if flags & f != 0 {
            a |= attr;
        }
    }
    // One atime mode, as mount(2) picks it: strictatime over noatime; relatime (0) otherwise.
    if flags & libc::MS_STRICTATIME != 0 {
        a |= MOUNT_ATTR_STRICTATIME;
    } else if flags & libc::MS_NOATIME != 0 {
        a |= MOUNT_ATTR_NOATIME;
    }
    u64::from(a)
}

/// The superblock flags of mount(2) flags, as the `fsconfig` flag names the kernel parses.
pub(super) fn sb_flags(flags: u64) -> impl Iterator<Item = &'static std::ffi::CStr> {
    [
        (libc::MS_RDONLY, c"ro"),
        (libc::MS_SYNCHRONOUS, c"sync"),
        (libc::MS_DIRSYNC, c"dirsync"),
        (libc::MS_LAZYTIME, c"lazytime"),
    ]
    .into_iter()
    .filter(move |(f, _)| flags & f != 0)
    .map(|(_, name)| name)
}

/// In the helper: build the file system from the block device `rdev` where no host path can
/// be reached, then attach it on `target` (the helper's O_PATH fd of the directory it resolved
/// in the caller's root) in the caller's mount namespace `mntns`.
///
/// The superblock's options and its source are resolved in the fs root and working directory of
/// the task that configures the mount (`FSCONFIG_CMD_CREATE` opens the source, and an xfs
/// `logdev=`, a btrfs `device=` or an f2fs image's device list are opened then by path). So
/// the helper unshares its mount namespace, makes an empty tmpfs its root and working directory,
/// creates one node there — `/dev`, for the already-validated device number — and configures
/// the mount from it: a path an option or a crafted image names finds nothing. Only then does
/// it go back into the caller's mount namespace (`move_mount` accepts a target only in the
/// caller's own namespace) and attach the detached mount, idmapped first if `userns` is given.
/// Capabilities are cut down to what each step needs.
///
/// # Safety
/// For the forked helper: raw syscalls only, on data prepared before the fork.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, in the forked helper, on data prepared before the fork"
)]
unsafe fn build_and_attach(
    fstype: &CString,
    rdev: libc::dev_t,
    sb: &[&std::ffi::CStr],
    options: &[(CString, Option<CString>)],
    attrs: u64,
    userns: Option<RawFd>,
    mntns: RawFd,
    target: RawFd,
) -> Result<(), i32> {
    let check = |r: libc::c_long| if r < 0 { Err(sys::errno()) } else { Ok(r) };
    // SAFETY: raw syscalls on live fds, C strings and structs of this frame, in the helper.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS) as libc::c_long)?;
        // The empty root: a private tmpfs, detached, never attached anywhere.
        let tmp = check(libc::syscall(
            libc::SYS_fsopen,
            c"tmpfs".as_ptr(),
            FSOPEN_CLOEXEC,
        ))? as RawFd;
        let made = check(libc::syscall(
            libc::SYS_fsconfig,
            tmp,
            FSCONFIG_SET_STRING,
            c"mode".as_ptr(),
            c"0700".as_ptr(),
            0,
        ))
        .and_then(|_| {
            check(libc::syscall(
                libc::SYS_fsconfig,
                tmp,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            ))
        })
        .and_then(|_| {
            check(libc::syscall(
                libc::SYS_fsmount,
                tmp,
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            ))
        });
        libc::close(tmp);
        let tmp_mnt = made? as RawFd;
        if libc::fchdir(tmp_mnt) != 0 || libc::chroot(c".".as_ptr()) != 0 {
            return Err(sys::errno());
        }
        libc::close(tmp_mnt);
        if libc::mknodat(libc::AT_FDCWD, c"dev".as_ptr(), libc::S_IFBLK | 0o600, rdev) != 0 {
            return Err(sys::errno());
        }
        // From here: mount and namespace calls only.
        sys::set_caps(CAPS_TO_MOUNT, CAPS_TO_MOUNT)?;
        let fs = check(libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            FSOPEN_CLOEXEC,
        ))? as RawFd;
        let set_string = |k: *const libc::c_char, v: *const libc::c_char| {
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_SET_STRING,
                k,
                v,
                0,
            ))
        };
        let set_flag = |k: *const libc::c_char| {
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_SET_FLAG,
                k,
                std::ptr::null::<u8>(),
                0,
            ))
        };
        let r = (|| -> Result<RawFd, i32> {
            set_string(c"source".as_ptr(), c"/dev".as_ptr())?;
            for f in sb {
                set_flag(f.as_ptr())?;
            }
            for (k, v) in options {
                match v {
                    Some(v) => set_string(k.as_ptr(), v.as_ptr())?,
                    None => set_flag(k.as_ptr())?,
                };
            }
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            ))?;
            Ok(check(libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs))? as RawFd)
        })();
        libc::close(fs);
        let mnt = r?;
        if let Some(userns) = userns {
            let attr = MountAttr {
                attr_set: u64::from(MOUNT_ATTR_IDMAP),
                attr_clr: 0,
                propagation: 0,
                userns_fd: userns as u64,
            };
            check(libc::syscall(
                libc::SYS_mount_setattr,
                mnt,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ))?;
        }
        check(libc::setns(mntns, libc::CLONE_NEWNS) as libc::c_long)?;
        attach(mnt, target)
    }
}

/// In a helper: attach the detached mount `mnt` (an `fsmount` fd, closed here) on `target`
/// (an O_PATH fd of a directory of the helper's current mount namespace): no path is resolved.
///
/// # Safety
/// For a forked helper: raw syscalls only, on live fds.
pub(super) unsafe fn attach(mnt: RawFd, target: RawFd) -> Result<(), i32> {
    // SAFETY: move_mount and close on live fds and static empty C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    let e = sys::errno();
    // SAFETY: closing the mount fd this function was given.
    unsafe { libc::close(mnt) };
    if r < 0 {
        return Err(e);
    }
    Ok(())
}

/// What the helper keeps once the device node exists: CAP_SYS_ADMIN (fsopen … move_mount) and
/// CAP_SYS_CHROOT (setns into a mount namespace).
const CAPS_TO_MOUNT: u32 = (1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_CHROOT);

impl Helper {
    /// Fork, mount in the child, return its errno (0: mounted).
    pub(super) fn run(&self) -> Result<i32, sys::HelperError> {
        let groups: Vec<libc::gid_t> = self.creds.groups.clone();
        let how = |path: &CString| OpenHow {
            flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS
                | if path.as_bytes().first() == Some(&b'/') {
                    RESOLVE_IN_ROOT
                } else {
                    0
                },
        };
        let from = |path: &CString| -> RawFd {
            if path.as_bytes().first() == Some(&b'/') {
                self.root.as_raw_fd()
            } else {
                self.cwd.as_raw_fd()
            }
        };
        let (src_how, src_from) = (how(&self.copied.source), from(&self.copied.source));
        let (tgt_how, tgt_from) = (how(&self.copied.target), from(&self.copied.target));
        let allowed = &self.allowed;
        let (fstype, options) = (&self.copied.fstype, &self.options);
        let sb: Vec<&std::ffi::CStr> = sb_flags(self.flags).collect();
        let attrs = mount_attrs(self.flags);
        let idmap = self.idmap.as_ref().map(|u| u.as_raw_fd());
        let mntns = self.mntns.as_raw_fd();
        let child = || -> Result<(), i32> {
            sys::enter_root(mntns, self.root.as_raw_fd())?;
            // Resolve with the caller's file-system identity (which drops the file
            // capabilities, CAP_DAC_OVERRIDE included, until fsuid is 0 again).
            sys::take_fs_identity(&groups, self.creds.fsuid, self.creds.fsgid)?;
            let src = sys::openat2(src_from, self.copied.source.as_ptr(), &src_how)?;
            // SAFETY: a zeroed stat is a valid out-buffer.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat on a live fd into a live buffer.
            if unsafe { libc::fstat(src, &mut st) } != 0 {
                return Err(sys::errno());
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
                return Err(libc::ENOTBLK);
            }
            let rdev = st.st_rdev;
            if !allowed.contains(&rdev) {
                return Err(libc::EPERM);
            }
            let tgt = sys::openat2(tgt_from, self.copied.target.as_ptr(), &tgt_how)?;
            // SAFETY: as above.
            if unsafe { libc::fstat(tgt, &mut st) } != 0 {
                return Err(sys::errno());
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(libc::ENOTDIR);
            }
            // SAFETY: raw syscalls.
            unsafe {
                libc::syscall(libc::SYS_setfsuid, 0);
                libc::syscall(libc::SYS_setfsgid, 0);
            }
            // SAFETY: in the helper, on data prepared before the fork.
            unsafe { build_and_attach(fstype, rdev, &sb, options, attrs, idmap, mntns, tgt) }
        };
        let keep = [
            mntns,
            self.root.as_raw_fd(),
            self.cwd.as_raw_fd(),
            idmap.unwrap_or(-1),
        ];
        // SAFETY: the child makes only raw syscalls on data prepared above.
        unsafe { sys::fork_helper(&keep, || child().err().unwrap_or(0)) }
    }
}
