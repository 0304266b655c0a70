//! `emulate-mount` of `overlay` (with `fstypes = ["overlay"]`): an overlayfs that the host
//! mounts over the caller's own directories, so that the `trusted.overlay.*` attributes a
//! nested engine writes (opaque directories, through `emulate-setxattr`) take effect.
//!
//! The kernel lets a user namespace mount overlayfs itself (5.11), but such a mount reads
//! `trusted.*` attributes with the mounter's credentials, which hold no capability in the
//! initial namespace: an opaque directory is not opaque there, and a lower layer's files show
//! through what the image deleted. A nested Docker, containerd or podman that writes
//! `trusted.overlay.opaque` needs the overlay mounted by someone who can read it.
//!
//! - The mount data is parsed and checked before anything is opened: `lowerdir` (1 to
//!   [`MAX_LOWER`] layers), `upperdir` and `workdir` (both or neither), and a short list of
//!   options. Features that follow what the layers' attributes say to other files are off:
//!   `redirect_dir` only `off` or `nofollow` (a redirect would show a directory the caller
//!   cannot read through one it owns), `metacopy=off` (a metacopy file takes its data from
//!   the lower file its redirect names), `index=off`, `nfs_export=off`, no `verity`, no data-only
//!   layers. auditor passes these explicitly, whatever the kernel's defaults.
//! - The helper joins the caller's mount namespace, chroots to its root and, with the
//!   caller's fsuid, fsgid and groups, opens every layer from its root or cwd with `openat2`
//!   (no magic links) as a directory: the caller must be able to read each lower layer and to
//!   write and search the upper and work directories (`faccessat2(AT_EACCESS)`). The
//!   target is resolved the same way.
//! - The layers reach the kernel as those file descriptors (`fsconfig(FSCONFIG_SET_FD)`,
//!   6.13), never as paths: nothing is resolved again, by auditor or the kernel.
//! - The overlay keeps the credentials of the task that created it for its own work in the
//!   upper layer (copy-up, whiteouts, its work directory, reading `trusted.*`): the caller's
//!   fsuid and fsgid (so that what it creates belongs to the caller, and a layer on a file
//!   system of the container's user namespace can hold it), with only the capabilities that
//!   work needs ([`CAPS_OF_OVERLAY`]) in the initial namespace. `nosuid` and `nodev` are forced.
//!
//! The mount is like the one Docker makes for a container's root: a host-privileged overlay
//! over directories the container's user owns; the files it creates belong to the caller.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use crate::broker::sys::{self, OpenHow, CAP_SYS_ADMIN, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use crate::broker::target::Creds;

use super::build::{FSCONFIG_CMD_CREATE, FSCONFIG_SET_FD, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING};

/// The most lower layers accepted (the kernel's own limit is 500; a nested engine's image
/// rarely has more than a few dozen).
pub const MAX_LOWER: usize = 128;

/// The overlay's own credentials: what copy-up (owner, mode, set-id bits, file capabilities),
/// whiteouts and `trusted.overlay.*` in the upper layer need — nothing else.
const CAPS_OF_OVERLAY: u32 = (1 << linux_raw_sys::general::CAP_CHOWN)
    | (1 << linux_raw_sys::general::CAP_DAC_OVERRIDE)
    | (1 << linux_raw_sys::general::CAP_DAC_READ_SEARCH)
    | (1 << linux_raw_sys::general::CAP_FOWNER)
    | (1 << linux_raw_sys::general::CAP_FSETID)
    | (1 << linux_raw_sys::general::CAP_MKNOD)
    | (1 << linux_raw_sys::general::CAP_SETFCAP)
    | (1 << CAP_SYS_ADMIN);

/// An overlay's layers and options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// Top first, as `lowerdir=` lists them.
    pub lower: Vec<CString>,
    /// `upperdir` and `workdir`; `None`: a read-only overlay.
    pub upper: Option<(CString, CString)>,
    /// Options passed on (`key`, `value`), forced ones included.
    pub options: Vec<(CString, Option<CString>)>,
}

/// Options passed on as the caller gave them, with the values each may take (`None`: a flag).
fn option_allowed(key: &str, value: Option<&str>) -> bool {
    match (key, value) {
        ("redirect_dir", Some(v)) => matches!(v, "off" | "nofollow"),
        ("metacopy" | "index" | "nfs_export", Some(v)) => v == "off",
        ("xino", Some(v)) => matches!(v, "off" | "auto" | "on"),
        ("uuid", Some(v)) => matches!(v, "off" | "null" | "auto" | "on"),
        ("volatile" | "userxattr" | "ro" | "rw", None) => true,
        _ => false,
    }
}

/// Parse and check overlay mount data (`lowerdir=a:b,upperdir=u,workdir=w,…`).
pub fn parse(data: &[u8]) -> Result<Layers, String> {
    let data = std::str::from_utf8(data).map_err(|_| "mount data that is not UTF-8".to_owned())?;
    if data.contains('\\') {
        return Err("escaped characters in overlay options are not supported".into());
    }
    let (mut lower, mut upper, mut work) = (None, None, None);
    let mut options: Vec<(CString, Option<CString>)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let cstring = |s: &str| CString::new(s).map_err(|_| "a NUL byte in the options".to_owned());
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        if !seen.insert(key) {
            return Err(format!("option `{key}` given twice"));
        }
        match (key, value) {
            ("lowerdir", Some(v)) => {
                let layers: Vec<&str> = v.split(':').collect();
                if layers.iter().any(|l| l.is_empty()) {
                    return Err(
                        "an empty lower layer (data-only layers, `::`, are not supported)".into(),
                    );
                }
                if layers.len() > MAX_LOWER {
                    return Err(format!("more than {MAX_LOWER} lower layers"));
                }
                lower = Some(
                    layers
                        .into_iter()
                        .map(cstring)
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            ("upperdir", Some(v)) if !v.is_empty() => upper = Some(cstring(v)?),
            ("workdir", Some(v)) if !v.is_empty() => work = Some(cstring(v)?),
            (k, v) if option_allowed(k, v) => {
                options.push((cstring(k)?, v.map(cstring).transpose()?));
            }
            (k, Some(v)) => {
                return Err(format!(
                    "option `{k}={v}` is not among those allowed for overlay"
                ))
            }
            (k, None) => {
                return Err(format!(
                    "option `{k}` is not among those allowed for overlay"
                ))
            }
        }
    }
    let lower = lower.ok_or("no lowerdir")?;
    let upper = match (upper, work) {
        (Some(u), Some(w)) => Some((u, w)),
        (None, None) => None,
        _ => return Err("upperdir and workdir go together".into()),
    };
    // What follows other files' attributes stays off, whatever the kernel's defaults are.
    for (key, value) in [
        ("redirect_dir", "nofollow"),
        ("metacopy", "off"),
        ("index", "off"),
        ("nfs_export", "off"),
    ] {
        if !seen.contains(key) {
            options.push((cstring(key)?, Some(cstring(value)?)));
        }
    }
    Ok(Layers {
        lower,
        upper,
        options,
    })
}

/// What the forked helper needs, prepared before `fork`.
pub(super) struct OverlayHelper {
    pub(super) mntns: OwnedFd,
    pub(super) root: OwnedFd,
    pub(super) cwd: OwnedFd,
    pub(super) creds: Creds,
    pub(super) layers: Layers,
    pub(super) target: CString,
    /// Per-mount attributes (`MOUNT_ATTR_*`, nosuid and nodev included).
    pub(super) attrs: u64,
    /// Superblock flags as `fsconfig` flag names (`ro`, `sync`, …).
    pub(super) sb: Vec<&'static std::ffi::CStr>,
}

impl OverlayHelper {
    /// Fork, mount in the child, return its errno (0: mounted).
    pub(super) fn run(&self) -> Result<i32, sys::HelperError> {
        let groups: Vec<libc::gid_t> = self.creds.groups.clone();
        let (root, cwd) = (self.root.as_raw_fd(), self.cwd.as_raw_fd());
        let start = |path: &CString| -> (RawFd, OpenHow, *const libc::c_char) {
            let absolute = path.as_bytes().first() == Some(&b'/');
            (
                if absolute { root } else { cwd },
                OpenHow {
                    flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
                    mode: 0,
                    resolve: RESOLVE_NO_MAGICLINKS | if absolute { RESOLVE_IN_ROOT } else { 0 },
                },
                path.as_ptr(),
            )
        };
        // Everything the child opens, in order: the lower layers, upper and work, the target.
        let lower: Vec<_> = self.layers.lower.iter().map(start).collect();
        let upper = self
            .layers
            .upper
            .as_ref()
            .map(|(u, w)| (start(u), start(w)));
        let target = {
            let (from, mut how, path) = start(&self.target);
            how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
            (from, how, path)
        };
        let options = &self.layers.options;
        let (sb, attrs, mntns) = (&self.sb, self.attrs, self.mntns.as_raw_fd());
        let mut lower_fds: Vec<RawFd> = Vec::with_capacity(lower.len());
        let mut child = move || -> Result<(), i32> {
            sys::enter_root(mntns, root)?;
            sys::take_fs_identity(&groups, self.creds.fsuid, self.creds.fsgid)?;
            let open = |(from, how, path): &(RawFd, OpenHow, *const libc::c_char)| {
                sys::openat2(*from, *path, how)
            };
            for l in &lower {
                lower_fds.push(open(l)?);
            }
            let upper_fds = match &upper {
                Some((u, w)) => {
                    let (u, w) = (open(u)?, open(w)?);
                    // The caller may create entries in both: write and search access.
                    for fd in [u, w] {
                        sys::access(fd, libc::W_OK | libc::X_OK)?;
                    }
                    Some((u, w))
                }
                None => None,
            };
            let tgt = open(&target)?;
            // The overlay's own credentials: the caller's fsuid and fsgid (what the overlay
            // creates for itself — its work directory, whiteouts — belongs to the caller, and
            // a layer on a file system of the container's user namespace, such as its tmpfs,
            // has no mapping for host root: EOVERFLOW), no supplementary groups, and only the
            // capabilities its work needs (setfsuid dropped them from the effective set).
            // SAFETY: raw syscall.
            if unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) }
                != 0
            {
                return Err(sys::errno());
            }
            sys::set_caps(CAPS_OF_OVERLAY, CAPS_OF_OVERLAY)?;
            // SAFETY: in the helper, on fds it opened and data prepared before the fork.
            unsafe { build(&lower_fds, upper_fds, options, sb, attrs, tgt) }
        };
        let keep = [mntns, root, cwd];
        // SAFETY: the child makes only raw syscalls on data prepared above (the Vec of lower
        // fds has its capacity reserved before the fork: pushing never allocates).
        unsafe { sys::fork_helper(&keep, || child().err().unwrap_or(0)) }
    }
}

/// In the helper: configure the overlay from the layers' fds, create it, and attach it on
/// `target` (an O_PATH fd of the directory resolved in the caller's root).
///
/// # Safety
/// For the forked helper: raw syscalls only, on live fds and C strings.
unsafe fn build(
    lower: &[RawFd],
    upper: Option<(RawFd, RawFd)>,
    options: &[(CString, Option<CString>)],
    sb: &[&std::ffi::CStr],
    attrs: u64,
    target: RawFd,
) -> Result<(), i32> {
    let check = |r: libc::c_long| if r < 0 { Err(sys::errno()) } else { Ok(r) };
    // SAFETY: raw syscalls on live fds and C strings of the caller's frame.
    unsafe {
        let fs = check(libc::syscall(
            libc::SYS_fsopen,
            c"overlay".as_ptr(),
            libc::FSOPEN_CLOEXEC,
        ))? as RawFd;
        let config = |cmd: libc::c_uint,
                      key: *const libc::c_char,
                      value: *const libc::c_char,
                      aux: RawFd| {
            check(libc::syscall(libc::SYS_fsconfig, fs, cmd, key, value, aux))
        };
        let none = std::ptr::null::<libc::c_char>();
        let r = (|| -> Result<RawFd, i32> {
            for &l in lower {
                config(FSCONFIG_SET_FD, c"lowerdir+".as_ptr(), none, l)?;
            }
            if let Some((u, w)) = upper {
                config(FSCONFIG_SET_FD, c"upperdir".as_ptr(), none, u)?;
                config(FSCONFIG_SET_FD, c"workdir".as_ptr(), none, w)?;
            }
            for f in sb {
                config(FSCONFIG_SET_FLAG, f.as_ptr(), none, 0)?;
            }
            for (k, v) in options {
                match v {
                    Some(v) => config(FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0)?,
                    None => config(FSCONFIG_SET_FLAG, k.as_ptr(), none, 0)?,
                };
            }
            config(FSCONFIG_CMD_CREATE, none, none, 0)?;
            Ok(check(libc::syscall(
                libc::SYS_fsmount,
                fs,
                libc::FSMOUNT_CLOEXEC,
                attrs,
            ))? as RawFd)
        })();
        libc::close(fs);
        super::build::attach(r?, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(l: &Layers) -> Vec<String> {
        l.options
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{}={}", k.to_str().unwrap(), v.to_str().unwrap()),
                None => k.to_str().unwrap().to_owned(),
            })
            .collect()
    }

    #[test]
    fn layers_are_parsed_and_following_features_forced_off() {
        let l = parse(b"lowerdir=/l1:/l2,upperdir=/u,workdir=w,xino=off").unwrap();
        assert_eq!(l.lower, [c"/l1".to_owned(), c"/l2".to_owned()]);
        assert_eq!(l.upper, Some((c"/u".to_owned(), c"w".to_owned())));
        assert_eq!(
            opts(&l),
            [
                "xino=off",
                "redirect_dir=nofollow",
                "metacopy=off",
                "index=off",
                "nfs_export=off"
            ]
        );
        // Read-only: no upper; the caller's own `off` is kept, not doubled.
        let l = parse(b"lowerdir=/a,redirect_dir=off").unwrap();
        assert_eq!(l.upper, None);
        assert_eq!(
            opts(&l),
            [
                "redirect_dir=off",
                "metacopy=off",
                "index=off",
                "nfs_export=off"
            ]
        );
    }

    #[test]
    fn what_would_follow_the_layers_attributes_is_refused() {
        for (data, why) in [
            (&b"lowerdir=/a,redirect_dir=on"[..], "redirect_dir=on"),
            (b"lowerdir=/a,redirect_dir=follow", "redirect_dir=follow"),
            (b"lowerdir=/a,metacopy=on", "metacopy=on"),
            (b"lowerdir=/a,index=on", "index=on"),
            (b"lowerdir=/a,nfs_export=on", "nfs_export=on"),
            (b"lowerdir=/a,verity=on", "verity=on"),
            (b"lowerdir=/a::/data", "data-only"),
            (b"lowerdir=/a,lowerdir+=/b", "lowerdir+"),
            (b"lowerdir=/a,datadir+=/b", "datadir+"),
            (b"lowerdir=/a,upperdir=/u", "go together"),
            (b"upperdir=/u,workdir=/w", "no lowerdir"),
            (b"lowerdir=/a\\:b", "escaped"),
            (b"lowerdir=/a,lowerdir=/b", "twice"),
            (b"lowerdir=/a,default_permissions", "default_permissions"),
        ] {
            let e = parse(data).unwrap_err();
            assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(data));
        }
        let many = format!(
            "lowerdir={}",
            (0..=MAX_LOWER)
                .map(|i| format!("/l{i}"))
                .collect::<Vec<_>>()
                .join(":")
        );
        assert!(parse(many.as_bytes()).unwrap_err().contains("more than"));
    }
}
