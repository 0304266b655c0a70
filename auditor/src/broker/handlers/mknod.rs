//! `emulate-mknod`: create the allowed character devices on the caller's behalf — what LXD
//! does for unprivileged containers, where the kernel refuses device nodes (no CAP_MKNOD in the
//! initial user namespace).
//!
//! The decision uses scalars only (file type and device number), but the node is created
//! from a path, which is behind a pointer: it is copied once from the caller's memory, checked
//! with `ID_VALID`, and only that copy is used. The node is made by a helper process (spawned
//! sharing auditor's memory, not forked: see `sys::spawn_helper`) that
//!
//! - joins the caller's mount namespace (`setns(CLONE_NEWNS)` refuses threaded callers, so it
//!   is a process of its own) and chroots to the caller's root,
//! - takes the caller's fsuid, fsgid, supplementary groups and umask, and keeps only
//!   CAP_MKNOD — so it can create a node only where the caller could create a file, and the
//!   node belongs to the caller (its mapped root in a container),
//! - resolves the parent directory from the caller's root (absolute paths, with
//!   `openat2(RESOLVE_IN_ROOT)`) or from its cwd or dirfd (reopened through its `/proc/<tid>/fd`), never
//!   following magic links, and creates the last component with `mknodat`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use crate::broker::sys::{self, OpenHow, CAP_MKNOD, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use crate::broker::target::{self, Creds};
use crate::broker::{Outcome, Verdict};
use crate::policy::handlers::{Device, S_IFBLK, S_IFCHR, S_IFMT};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// `mknod(path, mode, dev)` or `mknodat(dirfd, path, mode, dev)`, from the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// `AT_FDCWD` for `mknod`.
    pub dirfd: i32,
    pub path: u64,
    pub mode: u32,
    /// The kernel's 32-bit encoding (`new_encode_dev`).
    pub dev: u32,
}

impl Request {
    pub fn from_args(syscall: &str, a: &[u64; 6]) -> Request {
        // Registers hold C ints and unsigned ints: the low 32 bits are the value.
        if syscall == "mknod" {
            Request {
                dirfd: libc::AT_FDCWD,
                path: a[0],
                mode: a[1] as u32,
                dev: a[2] as u32,
            }
        } else {
            Request {
                dirfd: a[0] as u32 as i32,
                path: a[1],
                mode: a[2] as u32,
                dev: a[3] as u32,
            }
        }
    }

    /// The device number (`new_decode_dev`).
    pub fn device(&self) -> Device {
        let dev = self.dev;
        Device {
            major: (dev & 0xfff00) >> 8,
            minor: (dev & 0xff) | ((dev >> 12) & 0xfff00),
        }
    }

    fn file_type(&self) -> u64 {
        u64::from(self.mode) & S_IFMT
    }
}

/// What the scalar arguments alone decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Not a device (or the 0:0 whiteout, unprivileged since 5.8): the kernel checks it
    /// itself, so CONTINUE is safe.
    Kernel,
    /// A block device, or a character device not in the allowed set.
    Refuse,
    /// An allowed character device: create it on the caller's behalf.
    Emulate(Device),
}

pub fn judge(req: &Request, devices: &BTreeSet<Device>) -> Judgement {
    match req.file_type() {
        S_IFBLK => Judgement::Refuse,
        S_IFCHR => {
            let d = req.device();
            if d.major == 0 && d.minor == 0 {
                Judgement::Kernel
            } else if devices.contains(&d) {
                Judgement::Emulate(d)
            } else {
                Judgement::Refuse
            }
        }
        _ => Judgement::Kernel,
    }
}

/// Serve one mknod/mknodat notification. `None`: the notification went away (the caller was
/// killed); there is nobody to answer.
pub fn handle(
    fd: &NotifyFd,
    n: &SeccompNotif,
    syscall: &str,
    devices: &BTreeSet<Device>,
) -> Option<Outcome> {
    let req = Request::from_args(syscall, &n.data.args);
    let mut outcome = Outcome::new(Verdict::Allowed, Response::Continue);
    outcome.detail("mode", format!("{:#o}", req.mode));
    let kind = match req.file_type() {
        S_IFCHR => "c",
        S_IFBLK => "b",
        _ => "",
    };
    if !kind.is_empty() {
        let d = req.device();
        outcome.detail("dev", format!("{kind} {}:{}", d.major, d.minor));
    }
    match judge(&req, devices) {
        Judgement::Kernel => return Some(outcome),
        Judgement::Refuse => {
            outcome.verdict = Verdict::Denied;
            outcome.response = Response::Errno(libc::EPERM);
            return Some(outcome);
        }
        Judgement::Emulate(_) => {}
    }
    outcome.verdict = Verdict::Emulated;
    outcome.response = Response::Value(0);
    match emulate(fd, n, &req, &mut outcome) {
        Ok(()) => Some(outcome),
        Err(Gone) => None,
    }
}

/// The caller went away mid-emulation.
struct Gone;

/// Copy, check, create; sets `outcome.response` to the errno on failure.
fn emulate(
    fd: &NotifyFd,
    n: &SeccompNotif,
    req: &Request,
    outcome: &mut Outcome,
) -> Result<(), Gone> {
    let fail = |outcome: &mut Outcome, errno: i32| {
        outcome.response = Response::Errno(errno);
    };
    let target::Caller {
        mem,
        creds,
        root,
        mntns,
        cwd,
        target: caller,
        ..
    } = match target::open_caller(fd, n, false) {
        Ok(c) => c,
        Err(target::Unreachable::Gone) => return Err(Gone),
        Err(target::Unreachable::Failed(e)) => {
            tracing::warn!(pid = n.pid, error = %e, "emulate-mknod: cannot reach the caller");
            fail(outcome, e.errno());
            return Ok(());
        }
    };
    let path = target::read_cstring(&mem, req.path);
    // Memory read: re-check that it was the caller's, still blocked in this very call.
    if !fd.id_valid(n.id) {
        return Err(Gone);
    }
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            fail(outcome, e);
            return Ok(());
        }
    };
    outcome.detail(
        "path",
        String::from_utf8_lossy(path.as_bytes()).into_owned(),
    );
    if req.dirfd != libc::AT_FDCWD {
        outcome.detail("dirfd", req.dirfd.to_string());
    }
    let (parent, base) = match split(path.as_bytes()) {
        Ok(v) => v,
        Err(e) => {
            fail(outcome, e);
            return Ok(());
        }
    };
    // The directory relative paths start from: the caller's cwd or its dirfd.
    let start: OwnedFd = if parent.first() == Some(&b'/') || req.dirfd == libc::AT_FDCWD {
        cwd
    } else {
        let got = caller.fd_handle(req.dirfd, libc::O_DIRECTORY);
        // Taken from the caller: re-check that it was the caller's, still in this very call.
        if !fd.id_valid(n.id) {
            return Err(Gone);
        }
        match got {
            Ok(f) => f,
            Err(e) => {
                fail(outcome, e.errno());
                return Ok(());
            }
        }
    };
    let job = Helper {
        mntns,
        root,
        start,
        absolute: parent.first() == Some(&b'/'),
        parent: CString::new(parent).unwrap_or_default(),
        base: CString::new(base).unwrap_or_default(),
        mode: req.mode,
        dev: req.dev,
        creds,
    };
    match job.run() {
        Ok(0) => {}
        Ok(errno) => fail(outcome, errno),
        Err(e) => {
            tracing::warn!(pid = n.pid, error = %e, "emulate-mknod: the helper failed");
            outcome.detail("why", e.to_string());
            fail(outcome, libc::EIO);
        }
    }
    Ok(())
}

/// `dir/name` into (`dir`, `name`), as the kernel's last-component rules have it.
fn split(path: &[u8]) -> Result<(Vec<u8>, Vec<u8>), i32> {
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    if path.ends_with(b"/") {
        // "/", "dir/": no last component to create, or a trailing slash on a non-directory.
        return Err(if path.iter().all(|&b| b == b'/') {
            libc::EEXIST
        } else {
            libc::ENOENT
        });
    }
    let (parent, base) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => {
            let p = &path[..i];
            (
                if p.is_empty() {
                    b"/".to_vec()
                } else {
                    p.to_vec()
                },
                path[i + 1..].to_vec(),
            )
        }
        None => (b".".to_vec(), path.to_vec()),
    };
    if base == b"." || base == b".." {
        return Err(libc::EEXIST);
    }
    Ok((parent, base))
}

/// Everything the helper needs, prepared before it starts (and owned by its job).
struct Helper {
    mntns: OwnedFd,
    root: OwnedFd,
    start: OwnedFd,
    absolute: bool,
    parent: CString,
    base: CString,
    mode: u32,
    dev: u32,
    creds: Creds,
}

impl Helper {
    /// Spawn a helper, create the node in it, return its errno (0: created).
    fn run(self) -> Result<i32, sys::HelperError> {
        let keep = [
            self.mntns.as_raw_fd(),
            self.root.as_raw_fd(),
            self.start.as_raw_fd(),
        ];
        // SAFETY: the job makes only raw syscalls (reporting errors by value) on data it owns.
        unsafe { sys::spawn_helper(&keep, move || self.make().err().unwrap_or(0)) }
    }

    /// In the helper: become the caller (its mount namespace and root, its file-system
    /// identity and umask, CAP_MKNOD alone) and make the node. Raw syscalls only.
    fn make(&self) -> Result<(), i32> {
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS | if self.absolute { RESOLVE_IN_ROOT } else { 0 },
        };
        let from: RawFd = if self.absolute {
            self.root.as_raw_fd()
        } else {
            self.start.as_raw_fd()
        };
        sys::enter_root(self.mntns.as_raw_fd(), self.root.as_raw_fd())?;
        sys::take_fs_identity(&self.creds.groups, self.creds.fsuid, self.creds.fsgid)?;
        sys::umask(self.creds.umask);
        sys::set_caps(1 << CAP_MKNOD, 1 << CAP_MKNOD)?;
        let dir = sys::openat2(from, self.parent.as_ptr(), &how)?;
        sys::mknodat(dir, &self.base, self.mode, self.dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(mode: u32, dev: u32) -> Request {
        Request {
            dirfd: libc::AT_FDCWD,
            path: 0,
            mode,
            dev,
        }
    }

    #[test]
    fn judges_on_scalars() {
        let devices: BTreeSet<Device> = [Device { major: 1, minor: 3 }].into();
        assert_eq!(
            judge(&req(0o020666, 0x103), &devices),
            Judgement::Emulate(Device { major: 1, minor: 3 })
        );
        assert_eq!(judge(&req(0o020666, 0x105), &devices), Judgement::Refuse);
        assert_eq!(judge(&req(0o060666, 0x800), &devices), Judgement::Refuse);
        assert_eq!(judge(&req(0o010644, 0), &devices), Judgement::Kernel);
        assert_eq!(judge(&req(0o020000, 0), &devices), Judgement::Kernel);
        assert_eq!(
            Request::from_args("mknodat", &[(-100i64) as u64, 7, 0o020666, 0x103, 0, 0]).dirfd,
            libc::AT_FDCWD
        );
        assert_eq!(
            req(0, (1 << 20) | (1 << 8) | 0x1f).device(),
            Device {
                major: 1,
                minor: 0x11f
            }
        );
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(split(b"null"), Ok((b".".to_vec(), b"null".to_vec())));
        assert_eq!(
            split(b"/dev/null"),
            Ok((b"/dev".to_vec(), b"null".to_vec()))
        );
        assert_eq!(split(b"/null"), Ok((b"/".to_vec(), b"null".to_vec())));
        assert_eq!(split(b""), Err(libc::ENOENT));
        assert_eq!(split(b"/"), Err(libc::EEXIST));
        assert_eq!(split(b"a/"), Err(libc::ENOENT));
        assert_eq!(split(b"a/.."), Err(libc::EEXIST));
    }
}
