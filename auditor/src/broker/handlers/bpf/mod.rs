//! `emulate-bpf-devices`: the `bpf(2)` calls a container runtime inside a container (runc,
//! crun) makes to filter its inner containers' devices — what LXD's
//! `security.syscalls.intercept.bpf.devices` does. In a user namespace the kernel refuses
//! them (they need CAP_BPF and CAP_NET_ADMIN in the initial one), and runc and crun then start
//! the inner container with no device filter at all.
//!
//! - `BPF_PROG_LOAD` of a `BPF_PROG_TYPE_CGROUP_DEVICE` program only (and of the
//!   `r0 = 0; exit` cgroup_skb program runc's eBPF library loads to probe for
//!   `BPF_PROG_ATTACH`, which the handler never attaches). The instructions and
//!   the license are copied once, then `ID_VALID` is checked. Instructions that name objects
//!   by fd (map, BTF, function references in `ld_imm64`) and calls (helpers, kfuncs,
//!   bpf-to-bpf) are refused: the fd numbers would be auditor's, and a device program needs
//!   none (runc's and crun's read only their context). The program is loaded by the broker
//!   thread with only CAP_BPF and CAP_NET_ADMIN effective: without CAP_PERFMON the verifier
//!   keeps pointer leaks and speculative paths out, as for any unprivileged loader. Its fd
//!   goes to the caller with `SECCOMP_IOCTL_NOTIF_ADDFD`.
//! - `BPF_PROG_ATTACH`/`BPF_LINK_CREATE` only to a cgroup v2 strictly below the caller's own
//!   (a runtime manages its containers' cgroups, never its own), only of a program auditor
//!   loaded, always with `BPF_F_ALLOW_MULTI` (the caller's flags are never passed: a program
//!   attached with `BPF_F_ALLOW_OVERRIDE` replaces its ancestors' for the subtree), refused
//!   when an ancestor holds a program attached without `BPF_F_ALLOW_MULTI` (a program below
//!   would override it). `BPF_F_REPLACE` (runc's swap of its old program) only of a program
//!   auditor loaded.
//! - `BPF_PROG_DETACH` only of a program auditor loaded, from a cgroup strictly below the
//!   caller's: the host's own device programs can never be detached.
//! - `BPF_PROG_QUERY` (runc asks before loading) only of a cgroup strictly below the
//!   caller's, answered with the programs auditor loaded among those attached there;
//!   `BPF_PROG_GET_FD_BY_ID` only of a program auditor loaded for a caller of this cgroup
//!   subtree (runc skips a program it gets EPERM for).
//! - `BPF_OBJ_GET_INFO_BY_FD` goes to the kernel (it needs no privilege); every other command
//!   is refused with EPERM, as the kernel does in a user namespace.
//!
//! auditor keeps no fd of the programs it loads: a program lives as long as the caller's fd
//! and its attachments, so it goes away with the container's cgroup. The list of programs
//! auditor loaded (to tell them from the host's) is pruned of the ones that are gone, and a
//! container cgroup may hold at most [`MAX_LIVE_PER_CGROUP`] live ones.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::broker::sys;
use crate::broker::target::{self, Target};
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// `enum bpf_cmd` values served.
pub const BPF_PROG_LOAD: u32 = 5;
pub const BPF_PROG_ATTACH: u32 = 8;
pub const BPF_PROG_DETACH: u32 = 9;
pub const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
pub const BPF_PROG_QUERY: u32 = 16;
pub const BPF_LINK_CREATE: u32 = 28;
/// The commands the handler serves (the filter notifies only these).
pub use crate::policy::handlers::BPF_DEVICE_COMMANDS as SERVED;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` and `BPF_CGROUP_DEVICE` (its attach type).
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_PROG_TYPE_CGROUP_SKB`: loaded only as the feature probe the cilium/ebpf library
/// (runc's) makes before any attach (`r0 = 0; exit`), which can never be attached through
/// the handler (device attachments only). Without it runc gives up on its device filter.
pub const PROG_TYPE_CGROUP_SKB: u32 = 8;
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_OVERRIDE: u32 = 1;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;
const BPF_F_QUERY_EFFECTIVE: u32 = 1;
/// The most instructions accepted (`BPF_MAXINSNS`, the unprivileged limit; runc's filter for
/// a few hundred device rules is far below it).
pub const MAX_INSNS: u32 = 4096;
/// Live programs auditor keeps loaded for one container cgroup (each is kernel memory charged
/// to auditor).
pub const MAX_LIVE_PER_CGROUP: usize = 64;
/// `union bpf_attr` as far as auditor reads it; a larger one must be zero beyond (as the
/// kernel requires of fields it does not know).
const ATTR_LEN: usize = 160;
/// The kernel refuses a larger `bpf_attr` (`PAGE_SIZE`) with E2BIG.
const ATTR_MAX: u64 = 4096;
/// The longest license copied.
const LICENSE_MAX: usize = 128;
/// Bounds of the search for a cgroup below the caller's.
const SEARCH_DEPTH: usize = 16;
const SEARCH_ENTRIES: usize = 20_000;

const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;

/// Why a request is refused, with the errno the caller gets.
type Refusal = (i32, String);

fn refuse<T>(errno: i32, why: impl Into<String>) -> Result<T, Refusal> {
    Err((errno, why.into()))
}

/// The name of a served command, for the audit record.
pub fn cmd_name(cmd: u32) -> String {
    crate::syscalls::decode::bpf_cmd_name(u64::from(cmd))
}

/// A copy of the caller's `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr(pub [u8; ATTR_LEN]);

impl Attr {
    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_ne_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    pub fn u64_at(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_ne_bytes(b)
    }

    fn zero() -> Attr {
        Attr([0; ATTR_LEN])
    }

    fn put_u32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put_u64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }

    /// Whether every byte from `from` on is zero.
    fn zero_from(&self, from: usize) -> bool {
        self.0[from..].iter().all(|&b| b == 0)
    }
}

/// Copy `bpf_attr` (`size` bytes at `addr`) once.
pub fn read_attr(mem: &File, addr: u64, size: u64) -> Result<Attr, Refusal> {
    if size > ATTR_MAX {
        return refuse(libc::E2BIG, format!("bpf_attr of {size} bytes"));
    }
    let mut a = Attr::zero();
    let n = (size as usize).min(ATTR_LEN);
    if n > 0 {
        mem.read_exact_at(&mut a.0[..n], addr)
            .map_err(|_| (libc::EFAULT, "cannot read bpf_attr".to_owned()))?;
    }
    if size as usize > ATTR_LEN {
        let mut tail = vec![0u8; size as usize - ATTR_LEN];
        mem.read_exact_at(&mut tail, addr + ATTR_LEN as u64)
            .map_err(|_| (libc::EFAULT, "cannot read bpf_attr".to_owned()))?;
        if tail.iter().any(|&b| b != 0) {
            return refuse(
                libc::E2BIG,
                "bpf_attr has fields this auditor does not know",
            );
        }
    }
    Ok(a)
}

/// A program load, copied and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub prog_type: u32,
    pub insns: Vec<u64>,
    pub license: CString,
    pub name: [u8; 16],
    pub expected_attach_type: u32,
}

/// `BPF_PROG_LOAD` fields (offsets in `union bpf_attr`).
mod load {
    pub const PROG_TYPE: usize = 0;
    pub const INSN_CNT: usize = 4;
    pub const INSNS: usize = 8;
    pub const LICENSE: usize = 16;
    pub const PROG_FLAGS: usize = 44;
    pub const PROG_NAME: usize = 48;
    pub const PROG_IFINDEX: usize = 64;
    pub const EXPECTED_ATTACH_TYPE: usize = 68;
    /// `prog_btf_fd` and everything after it (BTF, func/line info, fd_array, CO-RE, token).
    pub const REST: usize = 72;
}

/// Check a `BPF_PROG_LOAD` request's fields (not its instructions): (program type,
/// instruction count, their address).
pub fn check_load_attr(a: &Attr) -> Result<(u32, u32, u64), Refusal> {
    let prog_type = a.u32_at(load::PROG_TYPE);
    if prog_type != PROG_TYPE_CGROUP_DEVICE && prog_type != PROG_TYPE_CGROUP_SKB {
        return refuse(
            libc::EPERM,
            format!(
                "program type {prog_type}: only cgroup device programs (type {PROG_TYPE_CGROUP_DEVICE}) are loaded"
            ),
        );
    }
    let cnt = a.u32_at(load::INSN_CNT);
    if cnt == 0 {
        return refuse(libc::EINVAL, "a program of 0 instructions");
    }
    if cnt > MAX_INSNS {
        return refuse(
            libc::E2BIG,
            format!("{cnt} instructions (at most {MAX_INSNS})"),
        );
    }
    if a.u32_at(load::PROG_FLAGS) != 0 {
        return refuse(
            libc::EINVAL,
            format!("program flags {:#x}", a.u32_at(load::PROG_FLAGS)),
        );
    }
    if a.u32_at(load::PROG_IFINDEX) != 0 {
        return refuse(libc::EINVAL, "a device (ifindex) program");
    }
    let eat = a.u32_at(load::EXPECTED_ATTACH_TYPE);
    // A probe's expected type is ingress (0) or egress (1).
    let eat_ok = match prog_type {
        PROG_TYPE_CGROUP_SKB => eat <= 1,
        _ => eat == 0 || eat == ATTACH_CGROUP_DEVICE,
    };
    if !eat_ok {
        return refuse(libc::EINVAL, format!("expected attach type {eat}"));
    }
    if !a.zero_from(load::REST) {
        return refuse(
            libc::EINVAL,
            "BTF, function or line info, fd arrays, CO-RE relocations and tokens are not accepted",
        );
    }
    Ok((prog_type, cnt, a.u64_at(load::INSNS)))
}

/// Whether `insns` is a feature probe: `r0 = IMM; exit`.
pub fn is_probe(insns: &[u64]) -> bool {
    match insns {
        [mov, exit] => {
            let (m, e) = (mov.to_ne_bytes(), exit.to_ne_bytes());
            m[0] == 0xb7 && m[1] == 0 && m[2] == 0 && m[3] == 0 && e == [0x95, 0, 0, 0, 0, 0, 0, 0]
        }
        _ => false,
    }
}

/// Check instructions: no object named by fd, no call. `Err`: the index and why.
pub fn check_insns(insns: &[u64]) -> Result<(), Refusal> {
    let mut i = 0;
    while i < insns.len() {
        let b = insns[i].to_ne_bytes();
        let (code, src) = (b[0], b[1] >> 4);
        match code {
            // BPF_LD | BPF_IMM | BPF_DW: a 64-bit constant over two slots.
            0x18 => {
                if src != 0 {
                    return refuse(
                        libc::EPERM,
                        format!("instruction {i} loads an object by fd or id (ld_imm64 source {src}): not accepted"),
                    );
                }
                if i + 1 >= insns.len() || insns[i + 1].to_ne_bytes()[0] != 0 {
                    return refuse(
                        libc::EINVAL,
                        format!("instruction {i}: ld_imm64 without its second half"),
                    );
                }
                i += 2;
                continue;
            }
            // BPF_JMP | BPF_CALL (helpers, kfuncs, bpf-to-bpf), and BPF_JMP32 | BPF_CALL.
            0x85 | 0x86 => {
                return refuse(
                    libc::EPERM,
                    format!("instruction {i} is a call: helper and function calls are not accepted in device programs"),
                );
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The programs auditor loaded: id → the host path of the loader's cgroup.
fn loaded() -> &'static Mutex<HashMap<u32, PathBuf>> {
    static LOADED: std::sync::OnceLock<Mutex<HashMap<u32, PathBuf>>> = std::sync::OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The loader cgroup of a program auditor loaded (if it did).
fn owner_of(id: u32) -> Option<PathBuf> {
    loaded().lock().ok()?.get(&id).cloned()
}

/// Forget the programs that are gone.
fn prune(map: &mut HashMap<u32, PathBuf>) {
    map.retain(|id, _| match prog_fd_by_id(*id) {
        Ok(_) => true,
        Err(e) => e != libc::ENOENT,
    });
}

/// The `bpf(2)` syscall on an attribute buffer.
fn sys_bpf(cmd: u32, attr: &mut Attr) -> Result<i64, i32> {
    // SAFETY: attr is a live, writable buffer of ATTR_LEN bytes, and that length is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            ATTR_LEN as libc::c_long,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: fd was just returned by the kernel for us and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// A host fd of program `id`.
fn prog_fd_by_id(id: u32) -> Result<OwnedFd, i32> {
    let mut a = Attr::zero();
    a.put_u32(0, id);
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(owned)
}

/// The id of the program behind a host fd.
fn prog_id(fd: BorrowedFd<'_>) -> Result<u32, i32> {
    // struct bpf_prog_info: type (u32), id (u32), …
    let mut info = [0u8; 232];
    let mut a = Attr::zero();
    a.put_u32(0, fd.as_raw_fd() as u32);
    a.put_u32(4, info.len() as u32);
    a.put_u64(8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
}

/// Run `f` with only CAP_BPF and CAP_NET_ADMIN effective on this thread (capabilities are
/// per thread), then restore the thread's effective set.
fn with_loader_caps<T>(f: impl FnOnce() -> T) -> Result<T, i32> {
    let saved = sys::capget()?;
    let want = (1u64 << CAP_BPF) | (1u64 << CAP_NET_ADMIN);
    let mut narrow = saved;
    narrow[0].effective = want as u32 & saved[0].permitted;
    narrow[1].effective = (want >> 32) as u32 & saved[1].permitted;
    sys::capset(&narrow)?;
    let out = f();
    if let Err(e) = sys::capset(&saved) {
        // The broker thread would be left without its capabilities: say so loudly; the next
        // emulation on this thread fails rather than acting with the wrong rights.
        tracing::error!(errno = e, "cannot restore the broker thread's capabilities");
    }
    Ok(out)
}

/// Load the checked program on the host. Returns its fd.
fn load_program(l: &Load) -> Result<OwnedFd, Refusal> {
    let mut a = Attr::zero();
    a.put_u32(load::PROG_TYPE, l.prog_type);
    a.put_u32(load::INSN_CNT, l.insns.len() as u32);
    a.put_u64(load::INSNS, l.insns.as_ptr() as u64);
    a.put_u64(load::LICENSE, l.license.as_ptr() as u64);
    a.0[load::PROG_NAME..load::PROG_NAME + 16].copy_from_slice(&l.name);
    a.put_u32(load::EXPECTED_ATTACH_TYPE, l.expected_attach_type);
    let r = with_loader_caps(|| sys_bpf(BPF_PROG_LOAD, &mut a)).map_err(|e| {
        (
            e,
            "cannot narrow the broker thread's capabilities".to_owned(),
        )
    })?;
    r.map(owned).map_err(|e| {
        (
            e,
            format!(
                "the verifier refused it: {}",
                std::io::Error::from_raw_os_error(e)
            ),
        )
    })
}

/// A cgroup v2 directory the caller named by fd, found on the host below the caller's cgroup.
struct CgroupDir {
    host: PathBuf,
    fd: OwnedFd,
}

/// The caller's v2 cgroup, as a host path.
fn caller_cgroup(t: &Target) -> Result<PathBuf, Refusal> {
    let text = t
        .read_text("cgroup")
        .map_err(|e| (e.errno(), e.to_string()))?;
    let rel = crate::host::cgroup::v2_line(&text).ok_or_else(|| {
        (
            libc::EPERM,
            "the caller has no cgroup v2 (0::) line".to_owned(),
        )
    })?;
    let root = crate::host::cgroup::mount_point()
        .ok_or_else(|| (libc::EPERM, "the host has no cgroup2 mount".to_owned()))?;
    let dir = crate::host::cgroup::dir_of(&root, rel)
        .filter(|_| !rel.ends_with(" (deleted)"))
        .ok_or_else(|| (libc::EPERM, format!("the caller's cgroup {rel:?}")))?;
    if dir == root {
        return refuse(
            libc::EPERM,
            "the caller is in the root cgroup: it has no cgroup subtree of its own",
        );
    }
    Ok(dir)
}

/// The cgroup directory behind the caller's fd `fd`, strictly below `caller`.
fn cgroup_of_fd(t: &Target, fd: u32, caller: &Path) -> Result<CgroupDir, Refusal> {
    // Anything but a cgroup directory is EBADF, as the kernel answers (runc's probe for
    // BPF_F_REPLACE names /dev/null and tells the two kernels apart by EBADF).
    let not_cgroup = || {
        (
            libc::EBADF,
            format!("target fd {fd} is not a cgroup v2 directory"),
        )
    };
    let to_ebadf = |e: target::TargetError| {
        let errno = match e.errno() {
            libc::ENOTDIR | libc::ENXIO => libc::EBADF,
            other => other,
        };
        (errno, format!("target fd {fd}: {e}"))
    };
    // The file is pinned first (an O_PATH handle: no file-system call), so that a thread of
    // the caller swapping its fd cannot change what is checked and opened below. Its file
    // system is told from procfs alone (its mount in the caller's mountinfo) before it is
    // opened: opening a directory on a stalled FUSE mount would hold this thread.
    let handle = t
        .fd_handle(fd as i32, libc::O_DIRECTORY)
        .map_err(to_ebadf)?;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", handle.as_raw_fd()))
        .map_err(|e| (libc::EIO, format!("target fd {fd}: {e}")))?;
    let mnt_id = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .map(str::trim)
        .ok_or_else(not_cgroup)?;
    let mountinfo = t
        .read_text("mountinfo")
        .map_err(|e| (e.errno(), e.to_string()))?;
    let fstype = mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (pre.split_whitespace().next()? == mnt_id).then(|| post.split_whitespace().next())?
    });
    if fstype != Some("cgroup2") {
        return Err(not_cgroup());
    }
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .map(OwnedFd::from)
        .map_err(|e| {
            (
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("target fd {fd}: {e}"),
            )
        })?;
    let st = nix::sys::statfs::fstatfs(&dir)
        .map_err(|e| (e as i32, format!("target fd {fd}: statfs")))?;
    if st.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        return Err(not_cgroup());
    }
    let meta = nix::sys::stat::fstat(dir.as_raw_fd())
        .map_err(|e| (e as i32, format!("target fd {fd}: stat")))?;
    let host = find_below(caller, meta.st_dev, meta.st_ino).ok_or_else(|| {
        (
            libc::EPERM,
            format!(
                "target fd {fd} is not a cgroup strictly below the caller's ({})",
                caller.display()
            ),
        )
    })?;
    Ok(CgroupDir { host, fd: dir })
}

/// The directory below `root` (not `root` itself) with this device and inode.
fn find_below(root: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let mut queue = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0;
    while let Some((dir, depth)) = queue.pop() {
        if depth >= SEARCH_DEPTH {
            continue;
        }
        for e in std::fs::read_dir(&dir).ok()?.flatten() {
            seen += 1;
            if seen > SEARCH_ENTRIES {
                return None;
            }
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let p = e.path();
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                if m.dev() == dev && m.ino() == ino {
                    return Some(p);
                }
                queue.push((p, depth + 1));
            }
        }
    }
    None
}

/// The programs attached (not inherited) to a cgroup, and the flags they were attached with.
fn query(dir: BorrowedFd<'_>, effective: bool) -> Result<(u32, Vec<u32>), i32> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut a = Attr::zero();
        a.put_u32(0, dir.as_raw_fd() as u32);
        a.put_u32(4, ATTACH_CGROUP_DEVICE);
        a.put_u32(8, if effective { BPF_F_QUERY_EFFECTIVE } else { 0 });
        a.put_u64(16, ids.as_mut_ptr() as u64);
        a.put_u32(24, ids.len() as u32);
        match sys_bpf(BPF_PROG_QUERY, &mut a) {
            Ok(_) => {
                ids.truncate(a.u32_at(24) as usize);
                return Ok((a.u32_at(12), ids));
            }
            Err(libc::ENOSPC) if ids.len() < 4096 => {
                ids = vec![0; ids.len() * 4];
            }
            Err(e) => return Err(e),
        }
    }
}

/// Refuse when an ancestor of `cg`, up to the mount's root, holds a device program attached
/// without `BPF_F_ALLOW_MULTI`: a program attached below would override it.
fn ancestors_allow_multi(cg: &Path) -> Result<(), Refusal> {
    let root = crate::host::cgroup::mount_root_of(cg)
        .ok_or_else(|| (libc::EPERM, "no cgroup2 mount above the target".to_owned()))?;
    let mut p = cg.parent();
    while let Some(dir) = p {
        if !dir.starts_with(&root) {
            break;
        }
        let f = File::open(dir).map_err(|e| {
            (
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("cannot open {}", dir.display()),
            )
        })?;
        let (flags, ids) =
            query(f.as_fd(), false).map_err(|e| (e, format!("cannot query {}", dir.display())))?;
        if !ids.is_empty() && flags & BPF_F_ALLOW_MULTI == 0 {
            return refuse(
                libc::EPERM,
                format!(
                    "{} holds a device program attached without BPF_F_ALLOW_MULTI (flags {flags:#x}): a program attached below would override it",
                    dir.display()
                ),
            );
        }
        if dir == root {
            break;
        }
        p = dir.parent();
    }
    Ok(())
}

/// The program behind the caller's fd `fd`, if auditor loaded it: (id, host fd).
fn caller_prog(t: &Target, fd: u32, caller: &Path) -> Result<(u32, OwnedFd), Refusal> {
    let info = t
        .fdinfo(fd as i32)
        .map_err(|e| (e.errno(), format!("program fd {fd}: {e}")))?;
    let id: u32 = info
        .lines()
        .find_map(|l| l.strip_prefix("prog_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| (libc::EINVAL, format!("fd {fd} is not a bpf program")))?;
    visible(id, caller)?;
    let host = prog_fd_by_id(id).map_err(|e| (e, format!("program {id} is gone")))?;
    Ok((id, host))
}

/// Refuse a program auditor did not load for this cgroup subtree.
fn visible(id: u32, caller: &Path) -> Result<(), Refusal> {
    match owner_of(id) {
        Some(owner) if owner.starts_with(caller) => Ok(()),
        Some(_) => refuse(
            libc::EPERM,
            format!("program {id} was loaded for another container"),
        ),
        None => refuse(
            libc::EPERM,
            format!("program {id} was not loaded by auditor for this container"),
        ),
    }
}

/// Serve one notification. `None`: the caller went away; nobody to answer.
pub fn handle(fd: &NotifyFd, n: &SeccompNotif) -> Option<Outcome> {
    let mut outcome = Outcome::new(Verdict::Denied, Response::Errno(libc::EPERM));
    let a = &n.data.args;
    let cmd = a[0] as u32;
    outcome.detail("cmd", cmd_name(cmd));
    if cmd == BPF_OBJ_GET_INFO_BY_FD {
        // Asking about an object the caller holds needs no privilege (the kernel hides what
        // an unprivileged caller may not see): the kernel answers it, with the caller's own
        // rights (runc's library asks about the programs it was given).
        outcome.verdict = Verdict::Allowed;
        outcome.response = Response::Continue;
        return Some(outcome);
    }
    let t = match Target::of_caller(n.pid) {
        Ok(t) => t,
        Err(e) => {
            if !fd.id_valid(n.id) {
                return None;
            }
            outcome.response = Response::Errno(e.errno());
            outcome.detail("why", e.to_string());
            return Some(outcome);
        }
    };
    let copied = t
        .mem()
        .map_err(|e| (e.errno(), "cannot reach the caller".to_owned()))
        .and_then(|mem| {
            let attr = read_attr(&mem, a[1], a[2])?;
            let load = if cmd == BPF_PROG_LOAD {
                Some(copy_load(&mem, &attr)?)
            } else {
                None
            };
            Ok((attr, load))
        });
    // Everything below goes through `t`, bound to the caller even if its pid is reused now.
    if !fd.id_valid(n.id) {
        return None;
    }
    let result = copied.and_then(|(attr, load)| serve(fd, n, &t, cmd, &attr, load, &mut outcome));
    match result {
        Ok(v) => {
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Value(v);
        }
        Err((errno, why)) => {
            outcome.verdict = Verdict::Denied;
            outcome.response = Response::Errno(errno);
            outcome.detail("why", why);
        }
    }
    Some(outcome)
}

/// Copy a load's instructions, license and name.
fn copy_load(mem: &File, attr: &Attr) -> Result<Load, Refusal> {
    let (prog_type, cnt, insns_at) = check_load_attr(attr)?;
    let mut raw = vec![0u8; cnt as usize * 8];
    mem.read_exact_at(&mut raw, insns_at)
        .map_err(|_| (libc::EFAULT, "cannot read the instructions".to_owned()))?;
    let insns: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let lic_at = attr.u64_at(load::LICENSE);
    let license = if lic_at == 0 {
        CString::default()
    } else {
        let s = target::read_cstring(mem, lic_at)
            .map_err(|e| (e, "cannot read the license".to_owned()))?;
        if s.as_bytes().len() >= LICENSE_MAX {
            return refuse(libc::EINVAL, "license string too long");
        }
        s
    };
    let mut name = [0u8; 16];
    name.copy_from_slice(&attr.0[load::PROG_NAME..load::PROG_NAME + 16]);
    if prog_type == PROG_TYPE_CGROUP_SKB && !is_probe(&insns) {
        return refuse(
            libc::EPERM,
            "program type 8 (cgroup_skb) is loaded only as a feature probe (r0 = constant; exit)",
        );
    }
    Ok(Load {
        prog_type,
        insns,
        license,
        name,
        expected_attach_type: attr.u32_at(load::EXPECTED_ATTACH_TYPE),
    })
}

/// Act on a copied request. `Ok`: the value the call returns.
fn serve(
    fd: &NotifyFd,
    n: &SeccompNotif,
    t: &Target,
    cmd: u32,
    attr: &Attr,
    load: Option<Load>,
    outcome: &mut Outcome,
) -> Result<i64, Refusal> {
    if !SERVED.contains(&cmd) {
        return refuse(
            libc::EPERM,
            format!(
                "{} is not emulated (only cgroup device programs)",
                cmd_name(cmd)
            ),
        );
    }
    let caller = caller_cgroup(t)?;
    outcome.detail("caller_cgroup", caller.display().to_string());
    match cmd {
        BPF_PROG_LOAD => {
            let l = load.ok_or_else(|| (libc::EINVAL, "no program".to_owned()))?;
            outcome.detail(
                "prog_type",
                crate::syscalls::decode::bpf_prog_type_name(u64::from(l.prog_type)),
            );
            outcome.detail("insns", l.insns.len().to_string());
            outcome.detail("license", l.license.to_string_lossy().into_owned());
            check_insns(&l.insns)?;
            {
                let mut map = loaded()
                    .lock()
                    .map_err(|_| (libc::EAGAIN, "program table poisoned".to_owned()))?;
                prune(&mut map);
                let live = map.values().filter(|o| **o == caller).count();
                if live >= MAX_LIVE_PER_CGROUP {
                    return refuse(
                        libc::ENOSPC,
                        format!("{live} programs auditor loaded for this cgroup are still alive (at most {MAX_LIVE_PER_CGROUP})"),
                    );
                }
            }
            let prog = load_program(&l)?;
            let id = prog_id(prog.as_fd())
                .map_err(|e| (e, "cannot read the loaded program's id".to_owned()))?;
            outcome.detail("prog_id", id.to_string());
            if let Ok(mut map) = loaded().lock() {
                map.insert(id, caller.clone());
            }
            give_fd(fd, n, &prog)
        }
        BPF_PROG_ATTACH | BPF_PROG_DETACH => {
            // target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd,
            // then (6.6) relative_fd/id and expected_revision.
            let (target_fd, prog_fd) = (attr.u32_at(0), attr.u32_at(4));
            let (attach_type, flags) = (attr.u32_at(8), attr.u32_at(12));
            outcome.detail("flags", format!("{flags:#x}"));
            device_attach(attach_type, outcome)?;
            if !attr.zero_from(20) {
                return refuse(
                    libc::EINVAL,
                    "relative attachment and revisions are not accepted",
                );
            }
            let cg = target_cgroup(t, target_fd, &caller, outcome)?;
            let prog = attached_prog(t, prog_fd, &caller, outcome)?;
            let mut k = Attr::zero();
            k.put_u32(0, cg.fd.as_raw_fd() as u32);
            k.put_u32(4, prog.as_raw_fd() as u32);
            k.put_u32(8, ATTACH_CGROUP_DEVICE);
            if cmd == BPF_PROG_DETACH {
                sys_bpf(BPF_PROG_DETACH, &mut k).map_err(|e| (e, kernel_refused(e)))?;
                return Ok(0);
            }
            if flags & !(BPF_F_ALLOW_OVERRIDE | BPF_F_ALLOW_MULTI | BPF_F_REPLACE) != 0 {
                return refuse(libc::EINVAL, format!("attach flags {flags:#x}"));
            }
            ancestors_allow_multi(&cg.host)?;
            let mut used = BPF_F_ALLOW_MULTI;
            let replaced;
            if flags & BPF_F_REPLACE != 0 {
                let (rid, rfd) = caller_prog(t, attr.u32_at(16), &caller)?;
                outcome.detail("replaces", rid.to_string());
                replaced = rfd;
                used |= BPF_F_REPLACE;
                k.put_u32(16, replaced.as_raw_fd() as u32);
            }
            outcome.detail("flags_used", format!("{used:#x}"));
            k.put_u32(12, used);
            sys_bpf(BPF_PROG_ATTACH, &mut k).map_err(|e| (e, kernel_refused(e)))?;
            Ok(0)
        }
        BPF_LINK_CREATE => {
            // prog_fd, target_fd, attach_type, flags, then type-specific fields.
            let (prog_fd, target_fd) = (attr.u32_at(0), attr.u32_at(4));
            let (attach_type, flags) = (attr.u32_at(8), attr.u32_at(12));
            device_attach(attach_type, outcome)?;
            if flags != 0 || !attr.zero_from(16) {
                return refuse(libc::EINVAL, "link flags and options are not accepted");
            }
            let cg = target_cgroup(t, target_fd, &caller, outcome)?;
            let prog = attached_prog(t, prog_fd, &caller, outcome)?;
            ancestors_allow_multi(&cg.host)?;
            let mut k = Attr::zero();
            k.put_u32(0, prog.as_raw_fd() as u32);
            k.put_u32(4, cg.fd.as_raw_fd() as u32);
            k.put_u32(8, ATTACH_CGROUP_DEVICE);
            let link = sys_bpf(BPF_LINK_CREATE, &mut k)
                .map(owned)
                .map_err(|e| (e, kernel_refused(e)))?;
            give_fd(fd, n, &link)
        }
        BPF_PROG_QUERY => {
            // target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt
            // (in/out), then (6.?) prog_attach_flags, link_ids, link_attach_flags, revision.
            let (target_fd, attach_type, qflags) = (attr.u32_at(0), attr.u32_at(4), attr.u32_at(8));
            device_attach(attach_type, outcome)?;
            if qflags & !BPF_F_QUERY_EFFECTIVE != 0 {
                return refuse(libc::EINVAL, format!("query flags {qflags:#x}"));
            }
            let cg = target_cgroup(t, target_fd, &caller, outcome)?;
            let (flags, ids) = query(cg.fd.as_fd(), qflags & BPF_F_QUERY_EFFECTIVE != 0)
                .map_err(|e| (e, kernel_refused(e)))?;
            let ids: Vec<u32> = ids
                .into_iter()
                .filter(|id| visible(*id, &caller).is_ok())
                .collect();
            outcome.detail("prog_ids", format!("{ids:?}"));
            write_query(t, n.data.args[1], attr, flags, &ids)
        }
        BPF_PROG_GET_FD_BY_ID => {
            let id = attr.u32_at(0);
            outcome.detail("prog_id", id.to_string());
            if attr.u32_at(8) & !(libc::O_RDONLY as u32) != 0 || !attr.zero_from(12) {
                return refuse(libc::EINVAL, "open flags are not accepted");
            }
            visible(id, &caller)?;
            let prog = prog_fd_by_id(id).map_err(|e| (e, kernel_refused(e)))?;
            give_fd(fd, n, &prog)
        }
        _ => refuse(libc::EPERM, format!("{} is not emulated", cmd_name(cmd))),
    }
}

/// Only device-cgroup attachments are served.
fn device_attach(attach_type: u32, outcome: &mut Outcome) -> Result<(), Refusal> {
    outcome.detail("attach_type", attach_type.to_string());
    if attach_type != ATTACH_CGROUP_DEVICE {
        return refuse(
            libc::EPERM,
            format!("attach type {attach_type}: only BPF_CGROUP_DEVICE"),
        );
    }
    Ok(())
}

/// [`cgroup_of_fd`], in the audit record.
fn target_cgroup(
    t: &Target,
    fd: u32,
    caller: &Path,
    outcome: &mut Outcome,
) -> Result<CgroupDir, Refusal> {
    let cg = cgroup_of_fd(t, fd, caller)?;
    outcome.detail("cgroup", cg.host.display().to_string());
    Ok(cg)
}

/// [`caller_prog`], its id in the audit record: the host fd.
fn attached_prog(
    t: &Target,
    fd: u32,
    caller: &Path,
    outcome: &mut Outcome,
) -> Result<OwnedFd, Refusal> {
    let (id, prog) = caller_prog(t, fd, caller)?;
    outcome.detail("prog_id", id.to_string());
    Ok(prog)
}

fn kernel_refused(e: i32) -> String {
    format!(
        "the kernel refused it: {}",
        std::io::Error::from_raw_os_error(e)
    )
}

/// Write a query's answer into the caller's `bpf_attr` and id array.
fn write_query(
    t: &Target,
    attr_at: u64,
    attr: &Attr,
    flags: u32,
    ids: &[u32],
) -> Result<i64, Refusal> {
    let mem = t
        .mem_rw()
        .map_err(|e| (e.errno(), "cannot write the caller's memory".to_owned()))?;
    let room = attr.u32_at(24) as usize;
    let ids_at = attr.u64_at(16);
    let fault = |_| (libc::EFAULT, "cannot write the caller's memory".to_owned());
    mem.write_all_at(&flags.to_ne_bytes(), attr_at + 12)
        .map_err(fault)?;
    mem.write_all_at(&(ids.len() as u32).to_ne_bytes(), attr_at + 24)
        .map_err(fault)?;
    if room == 0 || ids_at == 0 {
        return Ok(0);
    }
    let n = ids.len().min(room);
    let bytes: Vec<u8> = ids[..n].iter().flat_map(|i| i.to_ne_bytes()).collect();
    mem.write_all_at(&bytes, ids_at).map_err(fault)?;
    if ids.len() > room {
        return refuse(
            libc::ENOSPC,
            format!("{} programs, room for {room}", ids.len()),
        );
    }
    Ok(0)
}

/// Install `what` in the caller's fd table; the call returns its number.
fn give_fd(fd: &NotifyFd, n: &SeccompNotif, what: &OwnedFd) -> Result<i64, Refusal> {
    fd.add_fd(n.id, what.as_fd(), libc::O_CLOEXEC as u32, 0)
        .map(i64::from)
        .map_err(|e| {
            (
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("cannot hand the fd to the caller: {e}"),
            )
        })
}

#[cfg(test)]
mod tests;
