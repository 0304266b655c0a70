//! `emulate-finit-module`: a container's `finit_module` of a module on the policy's allowlist
//! loads the host's own copy of that module — never the caller's file — as LXD's
//! `linux.kernel_modules` interception does.
//!
//! - Copied once, then `ID_VALID`: the flags (must be 0: no ignored version checks, no
//!   compressed image the name cannot be read from), the parameters (must be empty: a
//!   container does not configure a host module) and the module's name, read from the
//!   `.modinfo` section of the caller's file (reopened through `/proc/<tid>/fd`, read lazily
//!   and bounded: only the ELF headers and that section).
//! - The name must be on the rule's `modules` list (`-` and `_` are the same, as for the
//!   kernel). A module already in the kernel (loaded or built in: `/sys/module/NAME`) gets
//!   EEXIST, as the kernel answers.
//! - Otherwise the host loads its own copy with `modprobe` (the host's module directory and
//!   configuration, with its dependencies); the call returns 0 when the module is then in the
//!   kernel. A host that cannot load modules (a kernel without module support, no
//!   `/lib/modules/<release>`) is named in the refusal.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use crate::broker::sys;
use crate::broker::target::{self, Target};
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// The longest `.modinfo` section read.
const MODINFO_MAX: u64 = 64 * 1024;
/// How long `modprobe` may take.
const MODPROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request is refused, with the errno the caller gets.
type Refusal = (i32, String);

/// A module name as the kernel compares them (`-` is `_`).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The `name=` of a module image's `.modinfo` section.
pub fn module_name<'d, R: object::ReadRef<'d>>(data: R) -> Result<String, Refusal> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(data)
        .map_err(|e| (libc::ENOEXEC, format!("not a module (ELF): {e}")))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| (libc::ENOEXEC, "no .modinfo section".to_owned()))?;
    if section.size() > MODINFO_MAX {
        return Err((libc::ENOEXEC, ".modinfo section too large".to_owned()));
    }
    let bytes = section
        .data()
        .map_err(|e| (libc::ENOEXEC, format!("cannot read .modinfo: {e}")))?;
    let name = bytes
        .split(|&b| b == 0)
        .find_map(|f| f.strip_prefix(b"name="))
        .ok_or_else(|| (libc::ENOEXEC, "no name= in .modinfo".to_owned()))?;
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 56
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .ok_or_else(|| (libc::ENOEXEC, "a module name that is not one".to_owned()))?;
    Ok(normalize(name))
}

/// Serve one notification. `None`: the caller went away; nobody to answer.
pub fn handle(fd: &NotifyFd, n: &SeccompNotif, modules: &BTreeSet<String>) -> Option<Outcome> {
    let mut outcome = Outcome::new(Verdict::Denied, Response::Errno(libc::EPERM));
    let a = &n.data.args;
    let copied = Target::of_caller(n.pid)
        .map_err(|e| (e.errno(), "cannot reach the caller".to_owned()))
        .and_then(|t| copy(&t, a));
    if !fd.id_valid(n.id) {
        return None;
    }
    let result = copied.and_then(|name| {
        outcome.detail("module", name.clone());
        if !modules.iter().any(|m| normalize(m) == name) {
            return Err((
                libc::EPERM,
                format!("module {name} is not on the rule's modules list"),
            ));
        }
        load(&name)
    });
    match result {
        Ok(()) => {
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Value(0);
        }
        Err((errno, why)) => {
            // An allowed module already in the kernel: the kernel's own answer.
            outcome.verdict = if errno == libc::EEXIST {
                Verdict::Emulated
            } else {
                Verdict::Denied
            };
            outcome.response = Response::Errno(errno);
            outcome.detail("why", why);
        }
    }
    Some(outcome)
}

/// Copy flags, parameters and the module's name.
fn copy(t: &Target, a: &[u64; 6]) -> Result<String, Refusal> {
    let flags = a[2] as u32;
    if flags != 0 {
        return Err((
            libc::EINVAL,
            format!("flags {flags:#x}: version checks are never skipped, and a compressed image is not read"),
        ));
    }
    if a[1] != 0 {
        let mem = t.mem().map_err(|e| (e.errno(), e.to_string()))?;
        let params = target::read_cstring(&mem, a[1])
            .map_err(|e| (e, "cannot read the parameters".to_owned()))?;
        if !params.as_bytes().iter().all(u8::is_ascii_whitespace) {
            return Err((
                libc::EPERM,
                format!(
                    "module parameters ({}) are not passed to the host's module",
                    params.to_string_lossy()
                ),
            ));
        }
    }
    // The file is read by a forked helper (bounded by the helper deadline: a file on a
    // stalled FUSE mount must not hold a broker thread), into memory shared with it.
    let fd = a[0] as u32 as i32;
    let handle = t
        .fd_handle(fd, 0)
        .map_err(|e| (e.errno(), format!("module fd {fd}: {e}")))?;
    let path = CString::new(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .map_err(|_| (libc::EINVAL, "a NUL byte".to_owned()))?;
    let buf = Shared::new(IMAGE_MAX).map_err(|e| (e, "cannot map a buffer".to_owned()))?;
    let (at, cap) = (buf.ptr, buf.len);
    let child = move || -> i32 {
        // SAFETY: raw syscalls into the shared mapping, prepared before the fork.
        unsafe { read_image(path.as_ptr(), at, cap) }
    };
    // SAFETY: `child` makes only raw syscalls on data prepared above, and returns.
    match unsafe { sys::fork_helper(&[handle.as_raw_fd()], child) } {
        Ok(0) => module_name(buf.image()),
        Ok(e) => Err((
            e,
            format!(
                "cannot read the module file: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        )),
        Err(e) => Err((libc::EIO, format!("cannot read the module file: {e}"))),
    }
}

/// The largest module image read.
const IMAGE_MAX: usize = 64 << 20;

/// Anonymous memory shared with a forked helper: a length (`u64`), then the bytes.
struct Shared {
    ptr: *mut u8,
    len: usize,
}

impl Shared {
    fn new(cap: usize) -> Result<Shared, i32> {
        let len = cap + 8;
        // SAFETY: a new anonymous shared mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(sys::errno());
        }
        Ok(Shared { ptr: p.cast(), len })
    }

    /// What the helper read.
    fn image(&self) -> &[u8] {
        // SAFETY: the mapping is live and at least 8 bytes; the helper has ended.
        let n = unsafe { std::ptr::read_unaligned(self.ptr.cast::<u64>()) } as usize;
        let n = n.min(self.len - 8);
        // SAFETY: within the live mapping, which nothing writes any more.
        unsafe { std::slice::from_raw_parts(self.ptr.add(8), n) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmapping our own live mapping once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// In the forked helper: read the regular file at `path` into `at` (length first).
///
/// # Safety
/// `at` must be a live writable mapping of `cap` bytes; raw syscalls only.
unsafe fn read_image(path: *const libc::c_char, at: *mut u8, cap: usize) -> i32 {
    // SAFETY: raw syscalls on live data (the caller's contract).
    unsafe {
        let fd = libc::open(path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC);
        if fd < 0 {
            return sys::errno();
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return sys::errno();
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return libc::EINVAL;
        }
        let size = st.st_size as usize;
        if size > cap - 8 {
            return libc::EFBIG;
        }
        let mut got = 0usize;
        while got < size {
            let r = libc::pread(fd, at.add(8 + got).cast(), size - got, got as libc::off_t);
            if r < 0 {
                if sys::errno() == libc::EINTR {
                    continue;
                }
                return sys::errno();
            }
            if r == 0 {
                break;
            }
            got += r as usize;
        }
        std::ptr::write_unaligned(at.cast::<u64>(), got as u64);
        0
    }
}

/// Load the host's copy of `name`.
fn load(name: &str) -> Result<(), Refusal> {
    let sys = Path::new("/sys/module").join(name);
    if sys.exists() {
        return Err((
            libc::EEXIST,
            format!("module {name} is already in the host's kernel (loaded or built in)"),
        ));
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    if !Path::new("/proc/modules").exists() {
        return Err((
            libc::ENOSYS,
            format!(
                "the host's kernel {release} cannot load modules (built without module support)"
            ),
        ));
    }
    if !Path::new("/lib/modules").join(&release).is_dir() {
        return Err((
            libc::ENOENT,
            format!("the host has no modules for its kernel (/lib/modules/{release})"),
        ));
    }
    let name_arg = CString::new(name).map_err(|_| (libc::EINVAL, "a NUL byte".to_owned()))?;
    let mut child = std::process::Command::new("modprobe")
        .arg("-q")
        .arg("--")
        .arg(name_arg.to_string_lossy().as_ref())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| (libc::ENOENT, format!("cannot run the host's modprobe: {e}")))?;
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < MODPROBE_TIMEOUT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err((libc::EIO, "the host's modprobe did not finish".to_owned()));
            }
        }
    };
    if status.success() && sys.exists() {
        Ok(())
    } else {
        Err((
            libc::ENOENT,
            format!("the host's modprobe could not load {name} ({status})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_the_kernel_does() {
        assert_eq!(normalize("nf-tables"), "nf_tables");
    }

    #[test]
    fn only_a_module_image_has_a_name() {
        assert_eq!(
            module_name(&b"#!/bin/sh\n"[..]).map_err(|e| e.0),
            Err(libc::ENOEXEC)
        );
        // An ELF without .modinfo (this test binary).
        let exe = std::fs::read("/proc/self/exe").expect("own executable");
        assert_eq!(module_name(&exe[..]).map_err(|e| e.0), Err(libc::ENOEXEC));
    }
}
