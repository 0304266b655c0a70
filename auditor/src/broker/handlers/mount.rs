//! `emulate-mount`: mount the allowed file-system types from the allowed block devices on the
//! caller's behalf — what LXD does for unprivileged containers, where the kernel refuses
//! every file system without `FS_USERNS_MOUNT` (ext4, xfs, …).
//!
//! - Calls that create no new file system (bind, move, propagation changes, remount) and file
//!   systems not in the allowed set are left to the kernel (CONTINUE): it judges them with the
//!   caller's own privileges, whatever the pointers hold by then. A remount must keep `nosuid`
//!   and `nodev` (decided on the flags alone): a mount auditor made is not locked the way
//!   inherited ones are, so clearing them would open the block devices an image may contain.
//! - For an allowed type, the type, source, target and options are copied once, then checked
//!   with `ID_VALID`. The caller must hold CAP_SYS_ADMIN over its own mount namespace (it could
//!   mount a tmpfs there): auditor adds only the block device, never a mount namespace.
//! - A forked helper joins the caller's mount namespace (`setns(CLONE_NEWNS)` refuses threaded
//!   callers), chroots to its root and, with the caller's fsuid, fsgid and groups, resolves the
//!   source and target from its root or cwd with `openat2` (no magic links). The source must
//!   be a block device whose device number is one of the allowed sources' — stat'ed in
//!   auditor's mount namespace when the call arrives —, never compared as a string.
//! - The file system is built where no host path is reachable: the helper unshares its mount
//!   namespace, takes an empty tmpfs as its root and working directory, makes one block-device
//!   node there for the validated device number, and configures the mount from it with the new
//!   mount API (`fsopen`, `fsconfig`, `fsmount`), so that neither an option nor a crafted image
//!   can make the kernel open a host path. Options are checked against a list per file-system
//!   type first (never one naming another device, never `errors=panic`), btrfs only with
//!   `allow_btrfs = true`. The helper then goes back into the caller's mount namespace and
//!   attaches the mount with `move_mount` onto the directory fd it resolved: no path is
//!   resolved again. `nosuid` and `nodev` are forced; the caller's atime mode is kept.
//!
//! The file system's owner is host root: files keep their on-disk ids (files the container's
//! root writes belong to its mapped host uid) — unless the rule says `shift = true`: then the
//! mount is idmapped (5.12; `mount_setattr(MOUNT_ATTR_IDMAP)`) through the caller's user
//! namespace, as LXD's `security.syscalls.intercept.mount.shift` does, so the container sees
//! on-disk uid 0 as its root and what its root writes is stored as uid 0.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

use crate::broker::sys::{
    self, OpenHow, CAP_SYS_ADMIN, CAP_SYS_CHROOT, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
};
use crate::broker::target::{self, Creds};
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// Flags that change an existing mount rather than create a file system.
const NOT_NEW: u64 = libc::MS_REMOUNT
    | libc::MS_BIND
    | libc::MS_MOVE
    | libc::MS_SHARED
    | libc::MS_PRIVATE
    | libc::MS_SLAVE
    | libc::MS_UNBINDABLE;

/// Flags a new mount may carry (everything else is refused with EINVAL).
const ALLOWED_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_SYNCHRONOUS
    | libc::MS_DIRSYNC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_LAZYTIME
    | libc::MS_SILENT;

/// `MS_MGC_VAL`: a magic number old callers put in the upper 16 bits; the kernel strips it.
const MS_MGC_MSK: u64 = libc::MS_MGC_MSK;
const MS_MGC_VAL: u64 = libc::MS_MGC_VAL;

/// Mount options that make the file system open another device (multi-device file systems,
/// external journals and logs): always refused. The kernel would resolve the path the option
/// names in the helper's context and open a host block device.
const DEVICE_OPTIONS: &[&str] = &["journal_dev", "journal_path", "logdev", "rtdev", "device"];

/// Options the kernel itself parses out of any file system's data (`vfs_parse_sb_flag`); the
/// per-mount ones (noatime, nosuid, …) are mount flags, never data.
const GENERIC_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "sync",
    "async",
    "dirsync",
    "lazytime",
    "nolazytime",
];

/// The options auditor passes on, per file-system type: those the file system's documentation
/// (Documentation/filesystems/*.rst, `man 5 ext4`, `man 5 xfs`) gives for ordinary use. Left
/// out: options that name a file or device (`journal_path`, `usrjquota=`, `logdev=`), debugging
/// and fault injection (`debug`, `abort`, `fault_injection=`, `test_dummy_encryption`), DAX,
/// and `errors=panic` (which lets a crafted image panic the host). `key=` takes a value.
const FS_OPTIONS: &[(&[&str], &[&str])] = &[
    (
        &["ext2", "ext3", "ext4"],
        &[
            "acl",
            "noacl",
            "user_xattr",
            "nouser_xattr",
            "barrier",
            "nobarrier",
            "barrier=",
            "commit=",
            "data=",
            "data_err=",
            "errors=",
            "discard",
            "nodiscard",
            "delalloc",
            "nodelalloc",
            "auto_da_alloc",
            "noauto_da_alloc",
            "auto_da_alloc=",
            "block_validity",
            "noblock_validity",
            "dioread_lock",
            "dioread_nolock",
            "init_itable",
            "init_itable=",
            "noinit_itable",
            "journal_checksum",
            "nojournal_checksum",
            "journal_async_commit",
            "journal_ioprio=",
            "noload",
            "norecovery",
            "inode_readahead_blks=",
            "stripe=",
            "max_batch_time=",
            "min_batch_time=",
            "nombcache",
            "no_mbcache",
            "grpid",
            "bsdgroups",
            "nogrpid",
            "sysvgroups",
            "resgid=",
            "resuid=",
            "sb=",
            "i_version",
            "nouid32",
            "quota",
            "noquota",
            "usrquota",
            "grpquota",
            "prjquota",
            "prefetch_block_bitmaps",
            "mb_optimize_scan=",
            "bh",
            "nobh",
            "oldalloc",
            "orlov",
        ],
    ),
    (
        &["xfs"],
        &[
            "allocsize=",
            "attr2",
            "noattr2",
            "discard",
            "nodiscard",
            "grpid",
            "bsdgroups",
            "nogrpid",
            "sysvgroups",
            "filestreams",
            "ikeep",
            "noikeep",
            "inode32",
            "inode64",
            "largeio",
            "nolargeio",
            "noalign",
            "norecovery",
            "nouuid",
            "noquota",
            "uquota",
            "usrquota",
            "uqnoenforce",
            "quota",
            "gquota",
            "grpquota",
            "gqnoenforce",
            "pquota",
            "prjquota",
            "pqnoenforce",
            "qnoenforce",
            "sunit=",
            "swidth=",
            "swalloc",
            "wsync",
            "logbufs=",
            "logbsize=",
        ],
    ),
    (
        &["btrfs"],
        &[
            "subvol=",
            "subvolid=",
            "compress",
            "compress=",
            "compress-force",
            "compress-force=",
            "ssd",
            "nossd",
            "ssd_spread",
            "nossd_spread",
            "space_cache",
            "space_cache=",
            "nospace_cache",
            "autodefrag",
            "noautodefrag",
            "commit=",
            "discard",
            "discard=",
            "nodiscard",
            "datacow",
            "nodatacow",
            "datasum",
            "nodatasum",
            "flushoncommit",
            "noflushoncommit",
            "barrier",
            "nobarrier",
            "max_inline=",
            "thread_pool=",
            "skip_balance",
            "user_subvol_rm_allowed",
            "acl",
            "noacl",
        ],
    ),
    (
        &["f2fs"],
        &[
            "background_gc=",
            "disable_roll_forward",
            "norecovery",
            "discard",
            "nodiscard",
            "heap",
            "noheap",
            "user_xattr",
            "nouser_xattr",
            "acl",
            "noacl",
            "active_logs=",
            "disable_ext_identify",
            "inline_xattr",
            "noinline_xattr",
            "inline_xattr_size=",
            "inline_data",
            "noinline_data",
            "inline_dentry",
            "noinline_dentry",
            "flush_merge",
            "noflush_merge",
            "barrier",
            "nobarrier",
            "fastboot",
            "extent_cache",
            "noextent_cache",
            "data_flush",
            "mode=",
            "io_bits=",
            "usrquota",
            "grpquota",
            "prjquota",
            "quota",
            "noquota",
            "alloc_mode=",
            "fsync_mode=",
            "compress_algorithm=",
            "compress_log_size=",
            "compress_extension=",
            "nocompress_extension=",
            "compress_chksum",
            "compress_mode=",
            "compress_cache",
            "checkpoint=",
            "checkpoint_merge",
            "nocheckpoint_merge",
            "gc_merge",
            "nogc_merge",
            "discard_unit=",
            "memory=",
            "age_extent_cache",
            "errors=",
        ],
    ),
    (
        &["vfat", "msdos", "fat"],
        &[
            "uid=",
            "gid=",
            "umask=",
            "dmask=",
            "fmask=",
            "allow_utime=",
            "codepage=",
            "iocharset=",
            "shortname=",
            "utf8",
            "utf8=",
            "uni_xlate",
            "nonumtail",
            "tz=",
            "time_offset=",
            "quiet",
            "showexec",
            "usefree",
            "flush",
            "sys_immutable",
            "errors=",
            "discard",
            "dos1xfloppy",
            "check=",
            "rodir",
        ],
    ),
    (
        &["exfat"],
        &[
            "uid=",
            "gid=",
            "umask=",
            "dmask=",
            "fmask=",
            "allow_utime=",
            "iocharset=",
            "errors=",
            "discard",
            "keep_last_dots",
            "sys_tz",
            "time_offset=",
        ],
    ),
];

/// Values an option may take when the file system documents a closed set worth restricting.
fn value_allowed(key: &str, value: &str) -> bool {
    match key {
        // errors=panic would let a crafted image panic the host.
        "errors" => matches!(value, "continue" | "remount-ro"),
        "data" => matches!(value, "ordered" | "journal" | "writeback"),
        "data_err" => matches!(value, "ignore" | "abort"),
        // A path inside the file system itself.
        "subvol" => !value.split('/').any(|c| c == ".."),
        // Anything else that looks like a path names something outside the file system.
        _ => !value.contains('/'),
    }
}

/// Check mount data against what `fstype` allows; the offending option (with why) otherwise.
/// Runs before any option reaches the kernel: btrfs acts on `device=` while it parses options.
fn check_options(fstype: &str, data: &[u8]) -> Result<(), String> {
    let specific = FS_OPTIONS
        .iter()
        .find(|(types, _)| types.contains(&fstype))
        .map_or(&[][..], |(_, opts)| *opts);
    for opt in data.split(|&b| b == b',').filter(|o| !o.is_empty()) {
        let opt = std::str::from_utf8(opt).map_err(|_| "an option that is not UTF-8".to_owned())?;
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        if DEVICE_OPTIONS.contains(&key) {
            return Err(format!("option `{key}` names another device"));
        }
        let known = match value {
            None => GENERIC_OPTIONS.contains(&key) || specific.contains(&key),
            Some(_) => specific.iter().any(|o| o.strip_suffix('=') == Some(key)),
        };
        if !known {
            return Err(format!(
                "option `{key}` is not among those allowed for {fstype}"
            ));
        }
        if let Some(v) = value {
            if !value_allowed(key, v) {
                return Err(format!("option `{key}={v}` is not allowed"));
            }
        }
    }
    Ok(())
}

/// `NS_GET_USERNS` (linux/nsfs.h): the user namespace that owns a namespace (4.9).
const NS_GET_USERNS: libc::c_ulong = libc::NS_GET_USERNS;

/// What the flags alone decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// No new file system (bind, move, propagation, a remount keeping nosuid and nodev): the
    /// kernel checks it with the caller's own privileges.
    Kernel,
    /// A remount that drops nosuid or nodev.
    Refuse,
    /// A new file system: look at its type.
    NewMount,
}

/// Judge a mount(2) call on its flags (the fourth argument).
pub fn judge(flags: u64) -> Judgement {
    let flags = if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags & !MS_MGC_MSK
    } else {
        flags
    };
    if flags & libc::MS_REMOUNT != 0 {
        let kept = libc::MS_NOSUID | libc::MS_NODEV;
        // A remount of propagation only (no MS_BIND/flags) is not a thing: MS_REMOUNT always
        // sets the per-mount or superblock flags given.
        return if flags & kept == kept {
            Judgement::Kernel
        } else {
            Judgement::Refuse
        };
    }
    if flags & NOT_NEW != 0 {
        return Judgement::Kernel;
    }
    Judgement::NewMount
}

/// Serve one mount notification. `None`: the caller went away; nobody to answer.
pub fn handle(
    fd: &NotifyFd,
    n: &SeccompNotif,
    fstypes: &BTreeSet<String>,
    sources: &BTreeSet<String>,
    shift: bool,
    allow_btrfs: bool,
) -> Option<Outcome> {
    let a = &n.data.args;
    let flags = a[3];
    let mut outcome = Outcome::new(Verdict::Allowed, Response::Continue);
    outcome.detail("flags", format!("{flags:#x}"));
    match judge(flags) {
        Judgement::Kernel => return Some(outcome),
        Judgement::Refuse => {
            outcome.verdict = Verdict::Denied;
            outcome.response = Response::Errno(libc::EPERM);
            outcome.detail("why", "remount without nosuid,nodev".into());
            return Some(outcome);
        }
        Judgement::NewMount => {}
    }
    match emulate(fd, n, fstypes, sources, shift, allow_btrfs, &mut outcome) {
        Ok(()) => Some(outcome),
        Err(Gone) => None,
    }
}

/// The caller went away mid-emulation.
struct Gone;

/// What the helper needs, copied from the caller.
struct Copied {
    fstype: CString,
    source: CString,
    target: CString,
    data: Option<CString>,
}

fn deny(outcome: &mut Outcome, errno: i32, why: &str) {
    outcome.verdict = Verdict::Denied;
    outcome.response = Response::Errno(errno);
    outcome.detail("why", why.to_owned());
}

fn emulate(
    fd: &NotifyFd,
    n: &SeccompNotif,
    fstypes: &BTreeSet<String>,
    sources: &BTreeSet<String>,
    shift: bool,
    allow_btrfs: bool,
    outcome: &mut Outcome,
) -> Result<(), Gone> {
    let a = &n.data.args;
    let target::Caller {
        mem,
        creds,
        root,
        cwd,
        mntns,
        userns,
        ..
    } = match target::open_caller(fd, n, true) {
        Ok(c) => c,
        Err(target::Unreachable::Gone) => return Err(Gone),
        Err(target::Unreachable::Failed(e)) => {
            tracing::warn!(pid = n.pid, error = %e, "emulate-mount: cannot reach the caller");
            deny(outcome, e.errno(), "cannot reach the caller");
            return Ok(());
        }
    };
    // Copy everything once; the decision and the mount use only these copies.
    let copy = (|| -> Result<Copied, i32> {
        if a[2] == 0 {
            return Err(libc::EINVAL);
        }
        let fstype = target::read_cstring(&mem, a[2])?;
        let source = if a[0] == 0 {
            CString::default()
        } else {
            target::read_cstring(&mem, a[0])?
        };
        let target = target::read_cstring(&mem, a[1])?;
        let data = if a[4] == 0 {
            None
        } else {
            Some(target::read_cstring(&mem, a[4])?)
        };
        Ok(Copied {
            fstype,
            source,
            target,
            data,
        })
    })();
    if !fd.id_valid(n.id) {
        return Err(Gone);
    }
    let c = match copy {
        Ok(c) => c,
        Err(e) => {
            deny(outcome, e, "cannot copy the arguments");
            return Ok(());
        }
    };
    let fstype = String::from_utf8_lossy(c.fstype.as_bytes()).into_owned();
    outcome.detail("fstype", fstype.clone());
    outcome.detail(
        "source",
        String::from_utf8_lossy(c.source.as_bytes()).into_owned(),
    );
    outcome.detail(
        "target",
        String::from_utf8_lossy(c.target.as_bytes()).into_owned(),
    );
    if let Some(d) = &c.data {
        outcome.detail("data", String::from_utf8_lossy(d.as_bytes()).into_owned());
    }
    if !fstypes.contains(&fstype) {
        // Not ours to grant: the kernel decides with the caller's own privileges (a tmpfs or
        // proc works in a user namespace; ext4 does not).
        return Ok(());
    }
    let flags = a[3] & !MS_MGC_MSK & 0xffff_ffff;
    if flags & !ALLOWED_FLAGS != 0 {
        deny(outcome, libc::EINVAL, "flags beyond the allowed set");
        return Ok(());
    }
    if fstype == "btrfs" && !allow_btrfs {
        deny(
            outcome,
            libc::EPERM,
            "btrfs needs allow_btrfs = true in the rule: it assembles a file system from every registered device with the image's fsid",
        );
        return Ok(());
    }
    if let Some(d) = &c.data {
        if let Err(why) = check_options(&fstype, d.as_bytes()) {
            deny(outcome, libc::EPERM, &why);
            return Ok(());
        }
    }
    let userns = userns.filter(|u| owns(u, &mntns));
    if creds.cap_eff & (1 << CAP_SYS_ADMIN) == 0 || userns.is_none() {
        deny(
            outcome,
            libc::EPERM,
            "the caller cannot mount in its own mount namespace",
        );
        return Ok(());
    }
    if c.source.as_bytes().is_empty() {
        deny(outcome, libc::ENOTBLK, "no source");
        return Ok(());
    }
    // The allowed sources' device numbers, now, in auditor's mount namespace: block devices
    // only.
    let allowed: Vec<u64> = sources
        .iter()
        .filter_map(|s| {
            let m = std::fs::metadata(s).ok()?;
            if !m.file_type().is_block_device() {
                tracing::warn!(source = %s, "emulate-mount: allowed source is not a block device; ignored");
                return None;
            }
            Some(m.rdev())
        })
        .collect();
    if shift {
        outcome.detail(
            "shift",
            "idmapped through the caller's user namespace".into(),
        );
    }
    let helper = Helper {
        mntns,
        root,
        cwd,
        creds,
        options: c
            .data
            .as_ref()
            .map(|d| split_options(d.as_bytes()))
            .unwrap_or_default(),
        copied: c,
        flags: flags | libc::MS_NOSUID | libc::MS_NODEV,
        allowed,
        idmap: if shift { userns } else { None },
    };
    outcome.verdict = Verdict::Emulated;
    outcome.response = Response::Value(0);
    match helper.run() {
        Ok(0) => {}
        Ok(e) => {
            outcome.verdict = if e == libc::EPERM {
                Verdict::Denied
            } else {
                Verdict::Emulated
            };
            outcome.response = Response::Errno(e);
        }
        Err(e) => {
            tracing::warn!(pid = n.pid, error = %e, "emulate-mount: the helper failed");
            outcome.detail("why", e.to_string());
            outcome.response = Response::Errno(libc::EIO);
        }
    }
    Ok(())
}

/// Whether the user namespace `userns` owns the mount namespace `mntns`.
fn owns(userns: &OwnedFd, mntns: &OwnedFd) -> bool {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd we own.
    let owner = unsafe { libc::ioctl(mntns.as_raw_fd(), NS_GET_USERNS as libc::Ioctl) };
    if owner < 0 {
        return false;
    }
    // SAFETY: just returned by the kernel, owned by nobody else.
    let owner = unsafe { OwnedFd::from_raw_fd(owner) };
    let ino = |fd: &OwnedFd| {
        nix::sys::stat::fstat(fd.as_raw_fd())
            .ok()
            .map(|s| (s.st_dev, s.st_ino))
    };
    ino(&owner).is_some_and(|o| Some(o) == ino(userns))
}

/// Everything the forked helper needs, prepared before `fork`.
struct Helper {
    mntns: OwnedFd,
    root: OwnedFd,
    cwd: OwnedFd,
    creds: Creds,
    copied: Copied,
    flags: u64,
    /// The device number of each allowed source.
    allowed: Vec<u64>,
    /// `shift = true`: the caller's user namespace, to idmap the mount through.
    idmap: Option<OwnedFd>,
    /// The mount data as `fsconfig` parameters.
    options: Vec<(CString, Option<CString>)>,
}

/// Mount data (`a,b=c`) as parameters: a key alone is a flag, `key=value` a string.
fn split_options(data: &[u8]) -> Vec<(CString, Option<CString>)> {
    data.split(|&b| b == b',')
        .filter(|o| !o.is_empty())
        .filter_map(|o| match o.iter().position(|&b| b == b'=') {
            Some(i) => Some((
                CString::new(&o[..i]).ok()?,
                Some(CString::new(&o[i + 1..]).ok()?),
            )),
            None => Some((CString::new(o).ok()?, None)),
        })
        .collect()
}

// The new mount API (include/uapi/linux/mount.h), from the kernel's headers as rustix has
// them (the libc crate has only the two CLOEXEC flags).
use linux_raw_sys::general::fsconfig_command;
const FSCONFIG_SET_FLAG: libc::c_uint = fsconfig_command::FSCONFIG_SET_FLAG as libc::c_uint;
const FSCONFIG_SET_STRING: libc::c_uint = fsconfig_command::FSCONFIG_SET_STRING as libc::c_uint;
const FSCONFIG_CMD_CREATE: libc::c_uint = fsconfig_command::FSCONFIG_CMD_CREATE as libc::c_uint;
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
fn mount_attrs(flags: u64) -> u64 {
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
fn sb_flags(flags: u64) -> impl Iterator<Item = &'static std::ffi::CStr> {
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
        check(libc::syscall(
            libc::SYS_move_mount,
            mnt,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ))?;
        libc::close(mnt);
    }
    Ok(())
}

/// What the helper keeps once the device node exists: CAP_SYS_ADMIN (fsopen … move_mount) and
/// CAP_SYS_CHROOT (setns into a mount namespace).
const CAPS_TO_MOUNT: u32 = (1 << CAP_SYS_ADMIN) | (1 << CAP_SYS_CHROOT);

impl Helper {
    /// Fork, mount in the child, return its errno (0: mounted).
    fn run(&self) -> Result<i32, sys::HelperError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Root and the tools, or a skip (a failure under CI=true, where nothing may skip).
    fn privileged(test: &str, tools: &[&str]) -> bool {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let missing: Vec<&&str> = tools.iter().filter(|t| which::which(t).is_err()).collect();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root && missing.is_empty() {
            return true;
        }
        assert!(!ci, "{test}: needs root and {missing:?} (cargo xtask setup installs them); CI=true forbids skipping");
        eprintln!("SKIP {test}: needs root and {missing:?}");
        false
    }

    fn sh(cmd: &mut std::process::Command) -> String {
        let o = cmd.output().expect("run tool");
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// A loop device on a sparse file in `dir`, detached on drop.
    struct Loop(String);
    impl Loop {
        fn new(dir: &std::path::Path, name: &str, size: u64) -> Loop {
            let image = dir.join(name);
            std::fs::File::create(&image)
                .and_then(|f| f.set_len(size))
                .expect("image");
            Loop(sh(std::process::Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&image)))
        }
    }
    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .output();
        }
    }

    fn open_path(p: &str) -> OwnedFd {
        use std::os::unix::fs::OpenOptionsExt as _;
        OwnedFd::from(
            std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(p)
                .expect(p),
        )
    }

    /// Defence in depth behind the option list: the helper configures the mount with an
    /// empty tmpfs as its root, so even an option the list would refuse cannot make the kernel
    /// open a host device by path. Here the list is bypassed (the helper is called directly)
    /// with xfs's `logdev=` naming the real external log of the image: the mount fails, where
    /// a helper resolving paths in the host's root mounted it.
    #[test]
    fn the_helper_resolves_no_host_path_even_for_an_option_the_list_would_refuse() {
        let test = "the_helper_resolves_no_host_path_even_for_an_option_the_list_would_refuse";
        if !privileged(test, &["mkfs.xfs", "losetup"]) {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let data = Loop::new(dir.path(), "data.img", 320 << 20);
        let logdev = Loop::new(dir.path(), "log.img", 64 << 20);
        sh(std::process::Command::new("mkfs.xfs").args([
            "-q",
            "-f",
            "-l",
            &format!("logdev={}", logdev.0),
            &data.0,
        ]));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mnt");
        let rdev = std::fs::metadata(&data.0).expect("stat").rdev();
        let helper = |data_opts: &str| Helper {
            mntns: OwnedFd::from(std::fs::File::open("/proc/self/ns/mnt").expect("mntns")),
            root: open_path("/"),
            cwd: open_path("/"),
            creds: Creds {
                tgid: std::process::id(),
                fsuid: 0,
                fsgid: 0,
                groups: vec![],
                umask: 0o022,
                cap_eff: u64::MAX,
            },
            copied: Copied {
                fstype: c"xfs".to_owned(),
                source: CString::new(data.0.clone()).expect("c string"),
                target: CString::new(mnt.display().to_string()).expect("c string"),
                data: Some(CString::new(data_opts).expect("c string")),
            },
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            allowed: vec![rdev],
            idmap: None,
            options: split_options(data_opts.as_bytes()),
        };
        for path in [logdev.0.clone(), format!("/proc/1/root{}", logdev.0)] {
            let e = helper(&format!("logdev={path}")).run().expect("helper");
            assert_ne!(e, 0, "logdev={path} was opened: the image mounted");
            let _ = nix::mount::umount(&mnt);
        }
        // Without its log the image cannot mount either (xfs needs it), but a plain file
        // system built the same way does: the helper itself works.
        let plain = Loop::new(dir.path(), "plain.img", 320 << 20);
        sh(std::process::Command::new("mkfs.xfs").args(["-q", "-f", &plain.0]));
        let mut h = helper("inode64");
        h.copied.source = CString::new(plain.0.clone()).expect("c string");
        h.allowed = vec![std::fs::metadata(&plain.0).expect("stat").rdev()];
        assert_eq!(h.run().expect("helper"), 0);
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(&mnt.display().to_string()))
            .map(str::to_owned);
        nix::mount::umount(&mnt).expect("umount");
        let line = line.expect("mounted");
        assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    }

    #[test]
    fn judges_on_flags() {
        let f = judge;
        assert_eq!(f(0), Judgement::NewMount);
        assert_eq!(f(libc::MS_RDONLY | libc::MS_NOEXEC), Judgement::NewMount);
        assert_eq!(f(libc::MS_BIND | libc::MS_REC), Judgement::Kernel);
        assert_eq!(f(libc::MS_MOVE), Judgement::Kernel);
        assert_eq!(f(libc::MS_PRIVATE | libc::MS_REC), Judgement::Kernel);
        assert_eq!(
            f(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY),
            Judgement::Refuse
        );
        assert_eq!(
            f(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV),
            Judgement::Kernel
        );
        // The old magic number in the upper bits is ignored, as the kernel does.
        assert_eq!(judge(MS_MGC_VAL | libc::MS_BIND), Judgement::Kernel);
    }

    #[test]
    fn refuses_options_naming_devices() {
        assert!(check_options("ext4", b"errors=remount-ro,ro").is_ok());
        let named = |r: Result<(), String>, opt: &str| {
            assert!(
                matches!(&r, Err(m) if m.contains(&format!("`{opt}"))),
                "{r:?}"
            );
        };
        named(
            check_options("ext4", b"data=ordered,journal_dev=0x801"),
            "journal_dev",
        );
        named(
            check_options("ext4", b"journal_path=/dev/sda"),
            "journal_path",
        );
        // Multi-device file systems: refused outright, whatever the type.
        named(check_options("xfs", b"logdev=/dev/loop1"), "logdev");
        named(check_options("xfs", b"rtdev=1/root/dev/sdb"), "rtdev");
        named(
            check_options("btrfs", b"device=/dev/sdb,subvol=a"),
            "device",
        );
    }

    #[test]
    fn only_documented_options_pass_per_file_system() {
        assert!(check_options("ext4", b"data=journal,commit=5,user_xattr,acl,ro").is_ok());
        assert!(check_options("xfs", b"inode64,logbsize=256k,nouuid").is_ok());
        assert!(check_options("btrfs", b"subvol=vol/a,compress=zstd:3").is_ok());
        assert!(check_options("f2fs", b"background_gc=on,discard,errors=continue").is_ok());
        assert!(check_options("vfat", b"uid=0,gid=0,umask=022,utf8").is_ok());
        assert!(check_options("iso9660", b"ro").is_ok());
        for (fs, data) in [
            // A crafted image could panic the host.
            ("ext4", &b"errors=panic"[..]),
            ("f2fs", b"errors=panic"),
            // Paths to files outside the file system.
            ("ext4", b"usrjquota=/etc/shadow"),
            ("btrfs", b"subvol=../../x"),
            // Debugging, fault injection, DAX.
            ("ext4", b"debug"),
            ("ext4", b"abort"),
            ("f2fs", b"fault_injection=1"),
            ("ext4", b"test_dummy_encryption"),
            ("xfs", b"dax=always"),
            // Another type's options, and options of a type auditor has no list for.
            ("xfs", b"data=ordered"),
            ("iso9660", b"map=off"),
            ("ext4", b"bogus"),
        ] {
            assert!(
                check_options(fs, data).is_err(),
                "{fs} {:?} accepted",
                std::str::from_utf8(data)
            );
        }
    }
}
