//! `emulate-setxattr`: set extended attributes whose names start with an allowed prefix
//! (`trusted.overlay.` by default) on the caller's behalf. Setting any `trusted.*` attribute
//! needs CAP_SYS_ADMIN in the initial user namespace, so a user-namespace container cannot
//! build the overlayfs layers it unpacks (opaque directories, redirects) without help — what
//! LXD emulates for unprivileged containers.
//!
//! - The path (or fd), the name and the value are copied once from the caller's memory, then
//!   `ID_VALID` is checked; the decision (the name's prefix) and the call use only that copy.
//!   A name outside the allowed prefixes is refused with EPERM.
//! - A helper process (spawned sharing auditor's memory: `sys::spawn_helper`) joins the caller's mount namespace (`setns(CLONE_NEWNS)` refuses threaded
//!   callers), chroots to its root and takes its fsuid, fsgid and groups with no effective
//!   capability. It opens the file with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from
//!   the caller's root (absolute paths) or its cwd or dirfd (reopened through `/proc/<tid>/fd`) — as an
//!   `O_PATH` handle, never opened for reading (opening a device or a FIFO has effects of its
//!   own), `O_NOFOLLOW` for `lsetxattr` — and checks with `faccessat2(AT_EACCESS |
//!   AT_EMPTY_PATH)` (5.8) that the caller could write that very file. Only then does it raise
//!   CAP_SYS_ADMIN, its one permitted capability, and set the attribute on the handle it
//!   checked, through `self/fd/N` of auditor's own procfs: a path swapped meanwhile changes
//!   nothing. The kernel's
//!   own check for `trusted.*` looks at the capability alone, not at the file, which is why
//!   the write-access check is needed.
//! - `fsetxattr`: the caller's fd is reopened as an `O_PATH` handle through its
//!   `/proc/<tid>/fd/<fd>` (bound to the calling task, taken before the last `ID_VALID`) and
//!   used the same way.
//!
//! Limits: attributes on symlinks themselves (`lsetxattr` on a symlink) are refused with
//! EPERM (the kernel sets an attribute through a handle of a symlink on the file it points to,
//! and a path would be resolved again); a
//! file the caller could write only through a capability in its own user namespace (not by
//! its ids and the mode bits) is refused with EACCES.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};

use crate::broker::sys::{self, OpenHow, CAP_SYS_ADMIN, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use crate::broker::target::{self, Creds};
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// `XATTR_NAME_MAX` and `XATTR_SIZE_MAX` (include/uapi/linux/limits.h).
pub const XATTR_NAME_MAX: usize = 255;
pub const XATTR_SIZE_MAX: u64 = 65536;

/// `XATTR_CREATE | XATTR_REPLACE`: the only flags setxattr takes.
const XATTR_FLAGS: u32 = 0x1 | 0x2;

/// Where the attribute goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// `setxattr(path, …)` (follow) or `lsetxattr(path, …)` (no follow).
    Path { addr: u64, follow: bool },
    /// `fsetxattr(fd, …)`.
    Fd(i32),
}

/// `setxattr(path, name, value, size, flags)` and its siblings, from the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub object: Object,
    pub name: u64,
    pub value: u64,
    pub size: u64,
    pub flags: u32,
}

impl Request {
    pub fn from_args(syscall: &str, a: &[u64; 6]) -> Request {
        let object = match syscall {
            // An int in a 64-bit register: the low 32 bits are the value.
            "fsetxattr" => Object::Fd(a[0] as u32 as i32),
            "lsetxattr" => Object::Path {
                addr: a[0],
                follow: false,
            },
            _ => Object::Path {
                addr: a[0],
                follow: true,
            },
        };
        Request {
            object,
            name: a[1],
            value: a[2],
            size: a[3],
            flags: a[4] as u32,
        }
    }
}

/// Whether `name` may be set on the caller's behalf.
pub fn allowed(name: &[u8], prefixes: &[String]) -> bool {
    prefixes
        .iter()
        .any(|p| name.starts_with(p.as_bytes()) && name.len() > p.len())
}

/// The caller went away mid-emulation.
struct Gone;

/// Serve one setxattr/lsetxattr/fsetxattr notification. `None`: the caller went away.
pub fn handle(
    fd: &NotifyFd,
    n: &SeccompNotif,
    syscall: &str,
    prefixes: &[String],
) -> Option<Outcome> {
    let req = Request::from_args(syscall, &n.data.args);
    let mut outcome = Outcome::new(Verdict::Emulated, Response::Value(0));
    match emulate(fd, n, &req, prefixes, &mut outcome) {
        Ok(()) => Some(outcome),
        Err(Gone) => None,
    }
}

fn deny(outcome: &mut Outcome, errno: i32) {
    outcome.verdict = Verdict::Denied;
    outcome.response = Response::Errno(errno);
}

/// What was copied from the caller.
struct Copied {
    path: Option<CString>,
    name: CString,
    value: Vec<u8>,
}

fn copy(mem: &File, req: &Request) -> Result<Copied, i32> {
    let path = match req.object {
        Object::Path { addr, .. } => Some(target::read_cstring(mem, addr)?),
        Object::Fd(_) => None,
    };
    let name = target::read_cstring(mem, req.name).map_err(|e| {
        if e == libc::ENAMETOOLONG {
            libc::ERANGE
        } else {
            e
        }
    })?;
    if name.as_bytes().is_empty() || name.as_bytes().len() > XATTR_NAME_MAX {
        return Err(libc::ERANGE);
    }
    if req.size > XATTR_SIZE_MAX {
        return Err(libc::E2BIG);
    }
    let mut value = vec![0u8; req.size as usize];
    if !value.is_empty() {
        mem.read_exact_at(&mut value, req.value)
            .map_err(|_| libc::EFAULT)?;
    }
    Ok(Copied { path, name, value })
}

fn emulate(
    fd: &NotifyFd,
    n: &SeccompNotif,
    req: &Request,
    prefixes: &[String],
    outcome: &mut Outcome,
) -> Result<(), Gone> {
    if req.flags & !XATTR_FLAGS != 0 {
        deny(outcome, libc::EINVAL);
        return Ok(());
    }
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
            tracing::warn!(pid = n.pid, error = %e, "emulate-setxattr: cannot reach the caller");
            deny(outcome, e.errno());
            return Ok(());
        }
    };
    let copied = copy(&mem, req);
    // Memory read: re-check that it was the caller's, still blocked in this very call.
    if !fd.id_valid(n.id) {
        return Err(Gone);
    }
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            deny(outcome, e);
            return Ok(());
        }
    };
    outcome.detail(
        "name",
        String::from_utf8_lossy(copied.name.as_bytes()).into_owned(),
    );
    outcome.detail("size", copied.value.len().to_string());
    match (&copied.path, req.object) {
        (Some(p), _) => outcome.detail("path", String::from_utf8_lossy(p.as_bytes()).into_owned()),
        (None, Object::Fd(f)) => outcome.detail("fd", f.to_string()),
        (None, Object::Path { .. }) => {}
    }
    if !allowed(copied.name.as_bytes(), prefixes) {
        deny(outcome, libc::EPERM);
        return Ok(());
    }
    // The file: the caller's fd, or where the path starts from.
    let (start, path) = match (req.object, copied.path) {
        (Object::Fd(cfd), _) => {
            let got = caller.fd_handle(cfd, 0);
            // Taken from the caller: re-check that it was the caller's, still in this call.
            if !fd.id_valid(n.id) {
                return Err(Gone);
            }
            match got {
                Ok(f) => (Start::File(f), None),
                Err(e) => {
                    deny(outcome, e.errno());
                    return Ok(());
                }
            }
        }
        (Object::Path { .. }, Some(p)) if p.as_bytes().first() == Some(&b'/') => {
            (Start::Root, Some(p))
        }
        (Object::Path { .. }, Some(p)) => (Start::Dir(cwd), Some(p)),
        (Object::Path { .. }, None) => {
            deny(outcome, libc::EFAULT);
            return Ok(());
        }
    };
    if path.as_ref().is_some_and(|p| p.as_bytes().is_empty()) {
        deny(outcome, libc::ENOENT);
        return Ok(());
    }
    let job = Helper {
        mntns,
        root,
        start,
        path,
        follow: !matches!(req.object, Object::Path { follow: false, .. }),
        name: copied.name,
        value: copied.value,
        flags: req.flags,
        creds,
    };
    match job.run() {
        Ok(0) => {}
        Ok(errno) => {
            outcome.response = Response::Errno(errno);
        }
        Err(e) => {
            tracing::warn!(pid = n.pid, error = %e, "emulate-setxattr: the helper failed");
            outcome.detail("why", e.to_string());
            outcome.response = Response::Errno(libc::EIO);
        }
    }
    Ok(())
}

/// Where the helper finds the file.
enum Start {
    /// Absolute path: from the caller's root.
    Root,
    /// Relative path: from the caller's cwd.
    Dir(OwnedFd),
    /// fsetxattr: the caller's own open file.
    File(OwnedFd),
}

/// Everything the helper needs, prepared before it starts (and owned by its job).
struct Helper {
    mntns: OwnedFd,
    root: OwnedFd,
    start: Start,
    path: Option<CString>,
    follow: bool,
    name: CString,
    value: Vec<u8>,
    flags: u32,
    creds: Creds,
}

impl Helper {
    /// Spawn a helper, set the attribute in it, return its errno (0: set).
    fn run(self) -> Result<i32, sys::HelperError> {
        // Auditor's own procfs: the helper sets the attribute through `self/fd/N` of the
        // handle it checked (an O_PATH fd cannot carry fsetxattr).
        let proc_dir: OwnedFd = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open("/proc")
            .map_err(sys::HelperError::Start)?
            .into();
        let (from, file) = self.start_fds();
        let keep = [
            self.mntns.as_raw_fd(),
            self.root.as_raw_fd(),
            from,
            file,
            proc_dir.as_raw_fd(),
        ];
        // SAFETY: the job makes only raw syscalls (reporting errors by value) on data it owns.
        unsafe { sys::spawn_helper(&keep, move || self.set(&proc_dir).err().unwrap_or(0)) }
    }

    /// Where a path starts from, and the caller's own file (-1: none).
    fn start_fds(&self) -> (RawFd, RawFd) {
        match &self.start {
            Start::Root => (self.root.as_raw_fd(), -1),
            Start::Dir(d) => (d.as_raw_fd(), -1),
            Start::File(f) => (-1, f.as_raw_fd()),
        }
    }

    /// In the helper: become the caller (its mount namespace and root, its file-system
    /// identity), check that it may write the file, and set the attribute with
    /// CAP_SYS_ADMIN alone. Raw syscalls only.
    fn set(&self, proc_dir: &OwnedFd) -> Result<(), i32> {
        // A handle, never an open for reading: opening a device or a FIFO has effects of its
        // own (a tape rewinds, a modem hangs up, a FIFO's writer sees a reader).
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_CLOEXEC | if self.follow { 0 } else { libc::O_NOFOLLOW })
                as u64,
            mode: 0,
            resolve: RESOLVE_NO_MAGICLINKS
                | if matches!(self.start, Start::Root) {
                    RESOLVE_IN_ROOT
                } else {
                    0
                },
        };
        let (from, file) = self.start_fds();
        let path = self.path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        sys::enter_root(self.mntns.as_raw_fd(), self.root.as_raw_fd())?;
        sys::take_fs_identity(&self.creds.groups, self.creds.fsuid, self.creds.fsgid)?;
        // Open and check with the caller's ids alone; keep CAP_SYS_ADMIN permitted.
        sys::set_caps(0, 1 << CAP_SYS_ADMIN)?;
        // Every file is an O_PATH handle: the one opened here, or the caller's fd reopened
        // through its /proc/<tid>/fd.
        let fd = if file >= 0 {
            file
        } else {
            sys::openat2(from, path, &how)?
        };
        // lsetxattr on a symlink itself: see the module's limits.
        if sys::file_type(fd)? == libc::S_IFLNK {
            return Err(libc::EPERM);
        }
        sys::access(fd, libc::W_OK)?;
        sys::set_caps(1 << CAP_SYS_ADMIN, 1 << CAP_SYS_ADMIN)?;
        // `self/fd/N` in auditor's procfs is the helper's own handle.
        sys::fchdir(proc_dir.as_raw_fd())?;
        sys::setxattr(
            &sys::FdPath::new(fd),
            &self.name,
            &self.value,
            self.flags as libc::c_int,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_three_calls() {
        let a = [7, 8, 9, 10, 1, 0];
        assert_eq!(
            Request::from_args("setxattr", &a).object,
            Object::Path {
                addr: 7,
                follow: true
            }
        );
        assert_eq!(
            Request::from_args("lsetxattr", &a).object,
            Object::Path {
                addr: 7,
                follow: false
            }
        );
        let f = Request::from_args("fsetxattr", &[u64::from(u32::MAX), 8, 9, 10, 2, 0]);
        assert_eq!(
            (f.object, f.name, f.value, f.size, f.flags),
            (Object::Fd(-1), 8, 9, 10, 2)
        );
    }

    #[test]
    fn only_names_under_an_allowed_prefix() {
        let p = vec!["trusted.overlay.".to_owned()];
        assert!(allowed(b"trusted.overlay.opaque", &p));
        assert!(!allowed(b"trusted.overlay.", &p));
        assert!(!allowed(b"trusted.other", &p));
        assert!(!allowed(b"trusted.overla", &p));
        assert!(!allowed(b"user.overlay.opaque", &p));
    }

    #[test]
    fn copies_name_and_value_once_with_the_kernel_limits() -> Result<(), Box<dyn std::error::Error>>
    {
        let mem = File::open("/proc/self/mem")?;
        let path = CString::new("/tmp/x")?;
        let name = CString::new("trusted.overlay.opaque")?;
        let value = b"y";
        let req = Request {
            object: Object::Path {
                addr: path.as_ptr() as u64,
                follow: true,
            },
            name: name.as_ptr() as u64,
            value: value.as_ptr() as u64,
            size: 1,
            flags: 0,
        };
        let c = copy(&mem, &req).map_err(std::io::Error::from_raw_os_error)?;
        assert_eq!((c.path, c.name, c.value), (Some(path), name, b"y".to_vec()));
        let big = Request {
            size: XATTR_SIZE_MAX + 1,
            ..req
        };
        assert!(matches!(copy(&mem, &big), Err(libc::E2BIG)));
        let long = CString::new(vec![b'a'; XATTR_NAME_MAX + 1])?;
        let long = Request {
            name: long.as_ptr() as u64,
            ..req
        };
        assert!(matches!(copy(&mem, &long), Err(libc::ERANGE)));
        Ok(())
    }
}
