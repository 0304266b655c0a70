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
//! `overlay` is the exception to all of the above: it has no source device, and its layers are
//! the caller's own directories, opened as the caller and handed to the kernel as fds — see
//! [`overlay`].
//!
//! The file system's owner is host root: files keep their on-disk ids (files the container's
//! root writes belong to its mapped host uid) — unless the rule says `shift = true`: then the
//! mount is idmapped (5.12; `mount_setattr(MOUNT_ATTR_IDMAP)`) through the caller's user
//! namespace, as LXD's `security.syscalls.intercept.mount.shift` does, so the container sees
//! on-disk uid 0 as its root and what its root writes is stored as uid 0.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

use crate::broker::sys::CAP_SYS_ADMIN;
use crate::broker::target::{self};
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

mod build;
pub mod fuse;
mod options;
pub mod overlay;
#[cfg(test)]
mod tests;

use build::Helper;
use options::{check_options, split_options};

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

/// What a rule's parameters allow (see `policy::handlers::HandlerConfig::Mount`), and the
/// policy a FUSE server runs under.
pub struct Allowed<'a> {
    pub fstypes: &'a BTreeSet<String>,
    pub sources: &'a BTreeSet<String>,
    pub shift: bool,
    pub allow_btrfs: bool,
    pub fuse: &'a std::collections::BTreeMap<String, String>,
    pub policy: &'a crate::policy::model::Policy,
}

/// Serve one mount notification. `None`: the caller went away; nobody to answer.
pub fn handle(fd: &NotifyFd, n: &SeccompNotif, allowed: &Allowed<'_>) -> Option<Outcome> {
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
    match emulate(fd, n, allowed, &mut outcome) {
        Ok(()) => Some(outcome),
        Err(Gone) => None,
    }
}

/// The caller went away mid-emulation.
struct Gone;

/// What the helper needs, copied from the caller.
pub(super) struct Copied {
    pub(super) fstype: CString,
    pub(super) source: CString,
    pub(super) target: CString,
    pub(super) data: Option<CString>,
}

fn deny(outcome: &mut Outcome, errno: i32, why: &str) {
    outcome.verdict = Verdict::Denied;
    outcome.response = Response::Errno(errno);
    outcome.detail("why", why.to_owned());
}

fn emulate(
    fd: &NotifyFd,
    n: &SeccompNotif,
    allowed: &Allowed<'_>,
    outcome: &mut Outcome,
) -> Result<(), Gone> {
    let Allowed {
        fstypes,
        sources,
        shift,
        allow_btrfs,
        ..
    } = *allowed;
    let a = &n.data.args;
    let target::Caller {
        mem,
        creds,
        root,
        cwd,
        mntns,
        userns,
        target,
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
    let through_fuse = allowed.fuse.get(&fstype);
    if let Some(program) = through_fuse {
        outcome.detail("fuse", program.clone());
    }
    if through_fuse.is_none() && !fstypes.contains(&fstype) {
        // Not ours to grant: the kernel decides with the caller's own privileges (a tmpfs or
        // proc works in a user namespace; ext4 does not).
        return Ok(());
    }
    let flags = a[3] & !MS_MGC_MSK & 0xffff_ffff;
    if flags & !ALLOWED_FLAGS != 0 {
        deny(outcome, libc::EINVAL, "flags beyond the allowed set");
        return Ok(());
    }
    if let Some(program) = through_fuse {
        fuse_mount(
            &c,
            flags,
            program,
            allowed.policy,
            (&creds, &mntns, userns, &target, root, cwd),
            outcome,
        );
        return Ok(());
    }
    if fstype == "overlay" {
        overlay_mount(c, flags, creds, mntns, userns, root, cwd, outcome);
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
    if !may_mount(&creds, userns.as_ref()) {
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

/// An overlay over the caller's own directories ([`overlay`]): checked, then mounted by a
/// helper that opens every layer as the caller.
#[allow(
    clippy::too_many_arguments,
    reason = "the pieces of the caller emulate() already took apart"
)]
fn overlay_mount(
    c: Copied,
    flags: u64,
    creds: target::Creds,
    mntns: OwnedFd,
    userns: Option<OwnedFd>,
    root: OwnedFd,
    cwd: OwnedFd,
    outcome: &mut Outcome,
) {
    let layers = match overlay::parse(c.data.as_ref().map_or(&b""[..], |d| d.as_bytes())) {
        Ok(l) => l,
        Err(why) => {
            deny(outcome, libc::EINVAL, &why);
            return;
        }
    };
    if !may_mount(&creds, userns.filter(|u| owns(u, &mntns)).as_ref()) {
        deny(
            outcome,
            libc::EPERM,
            "the caller cannot mount in its own mount namespace",
        );
        return;
    }
    let flags = flags | libc::MS_NOSUID | libc::MS_NODEV;
    let helper = overlay::OverlayHelper {
        mntns,
        root,
        cwd,
        creds,
        layers,
        target: c.target,
        attrs: build::mount_attrs(flags),
        sb: build::sb_flags(flags).collect(),
    };
    outcome.verdict = Verdict::Emulated;
    outcome.response = Response::Value(0);
    match helper.run() {
        Ok(0) => {}
        Ok(e) => {
            // The caller may not read or write a layer: its own permissions said no.
            outcome.verdict = if matches!(e, libc::EPERM | libc::EACCES) {
                Verdict::Denied
            } else {
                Verdict::Emulated
            };
            outcome.response = Response::Errno(e);
        }
        Err(e) => {
            tracing::warn!(error = %e, "emulate-mount: the overlay helper failed");
            outcome.detail("why", e.to_string());
            outcome.response = Response::Errno(libc::EIO);
        }
    }
}

/// A mount served by a FUSE program from the container ([`fuse`]).
fn fuse_mount(
    c: &Copied,
    flags: u64,
    program: &str,
    policy: &crate::policy::model::Policy,
    (creds, mntns, userns, target, root, cwd): (
        &target::Creds,
        &OwnedFd,
        Option<OwnedFd>,
        &target::Target,
        OwnedFd,
        OwnedFd,
    ),
    outcome: &mut Outcome,
) {
    if !may_mount(creds, userns.filter(|u| owns(u, mntns)).as_ref()) {
        deny(
            outcome,
            libc::EPERM,
            "the caller cannot mount in its own mount namespace",
        );
        return;
    }
    // The server's options: the caller's, read-only when asked, and allow_other (a kernel
    // mount is open to every user the permissions let in).
    let mut options = vec!["allow_other".to_owned()];
    if flags & libc::MS_RDONLY != 0 {
        options.push("ro".to_owned());
    }
    if let Some(d) = &c.data {
        options.extend(
            String::from_utf8_lossy(d.as_bytes())
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned),
        );
    }
    let server = match fuse::FuseServer::prepare(
        target,
        creds,
        root,
        cwd,
        program,
        &c.source,
        &c.target,
        &options.join(","),
        policy,
    ) {
        Ok(s) => s,
        Err((errno, why)) => {
            deny(outcome, errno, &why);
            return;
        }
    };
    match server.run() {
        Ok((0, _)) => {
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Value(0);
        }
        Ok((errno, text)) => {
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Errno(errno);
            if !text.is_empty() {
                outcome.detail("fuse_output", text);
            }
            if errno == libc::ENODEV {
                outcome.detail(
                    "why",
                    format!(
                        "{program} is not in the container's /usr/sbin, /usr/bin, /sbin or /bin"
                    ),
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "emulate-mount: the FUSE helper failed");
            outcome.detail("why", e.to_string());
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Errno(libc::EIO);
        }
    }
}

/// Whether the caller could mount in its own mount namespace: CAP_SYS_ADMIN in effect, and
/// `owning_userns` (its user namespace, if that owns its mount namespace — see [`owns`]).
/// auditor adds the file system, never the right to mount.
fn may_mount(creds: &target::Creds, owning_userns: Option<&OwnedFd>) -> bool {
    creds.cap_eff & (1 << CAP_SYS_ADMIN) != 0 && owning_userns.is_some()
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
