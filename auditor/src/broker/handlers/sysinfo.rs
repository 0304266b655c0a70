//! `sysinfo`: answer `sysinfo(2)` with the workload's cgroup memory limit instead of the
//! host's memory, the way LXCFS does for `/proc/meminfo` — so that a runtime sizing its heap
//! from `sysinfo` (JVMs, Go's and .NET's GCs, build tools picking a job count) sizes it for
//! the container.
//!
//! The answer is written into the caller's memory through `/proc/PID/mem`, opened (with the
//! caller's `/proc/PID/cgroup` and `/proc/PID/maps`) before `SECCOMP_IOCTL_NOTIF_ID_VALID` is
//! checked, so that all stay bound to the caller even if it dies and its pid is reused, and only
//! into memory its maps show writable (`/proc/PID/mem` writes through page protections): the
//! caller gets EFAULT where the kernel would give it. Nothing is decided on the caller's memory:
//! the only pointer is where the answer goes.
//!
//! `totalram` is the smallest memory limit on the caller's cgroup path (cgroup v1 `memory`
//! controller `memory.limit_in_bytes`, else cgroup v2 `memory.max`), if below the host's RAM;
//! `freeram` is that limit less the cgroup's usage, never more than the host's free RAM. The
//! other fields are the host's. 32-bit (i386) callers get the kernel's own answer (CONTINUE):
//! their `struct sysinfo` has another layout.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::broker::target::Target;
use crate::broker::{Outcome, Verdict};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};
use crate::syscalls::AUDIT_ARCH_I386;

/// Size of the x86_64 `struct sysinfo` (include/uapi/linux/sysinfo.h).
pub const SYSINFO_SIZE: usize = 112;

/// Where the cgroup hierarchies are mounted.
#[derive(Clone, Debug)]
pub struct Roots {
    /// The v1 memory controller's hierarchy.
    pub v1_memory: PathBuf,
    /// The v2 (unified) hierarchy.
    pub v2: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        // A hybrid host mounts v2 at /sys/fs/cgroup/unified; a pure v2 host at /sys/fs/cgroup.
        let unified = Path::new("/sys/fs/cgroup/unified");
        Roots {
            v1_memory: PathBuf::from("/sys/fs/cgroup/memory"),
            v2: if unified.join("cgroup.procs").exists() {
                unified.to_path_buf()
            } else {
                PathBuf::from("/sys/fs/cgroup")
            },
        }
    }
}

/// The memory cgroup of a process, from `/proc/PID/cgroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryCgroup {
    V1(String),
    V2(String),
}

/// Find the memory cgroup: the v1 `memory` controller's line if there is one (a hybrid host
/// limits memory there), else the v2 line (`0::/path`).
pub fn parse_cgroup(text: &str) -> Option<MemoryCgroup> {
    use crate::host::cgroup::{v1_line, v2_line};
    match v1_line(text, "memory") {
        Some((_, path)) => Some(MemoryCgroup::V1(path.to_owned())),
        None => v2_line(text).map(|p| MemoryCgroup::V2(p.to_owned())),
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// (limit, usage) in bytes: the smallest limit from the cgroup up to the hierarchy's root
/// (a parent's limit binds its children too), and the cgroup's own usage.
pub fn memory_limit(roots: &Roots, cg: &MemoryCgroup) -> Option<(u64, Option<u64>)> {
    let (root, path, limit_file, usage_file) = match cg {
        MemoryCgroup::V1(p) => (
            &roots.v1_memory,
            p,
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
        ),
        MemoryCgroup::V2(p) => (&roots.v2, p, "memory.max", "memory.current"),
    };
    let leaf = crate::host::cgroup::dir_of(root, path)?;
    let usage = read_u64(&leaf.join(usage_file));
    let mut limit = None::<u64>;
    let mut dir = leaf.as_path();
    loop {
        if let Some(l) = read_u64(&dir.join(limit_file)) {
            limit = Some(limit.map_or(l, |m| m.min(l)));
        }
        if dir == root.as_path() {
            break;
        }
        match dir.parent() {
            Some(p) if p.starts_with(root) => dir = p,
            _ => break,
        }
    }
    limit.map(|l| (l, usage))
}

/// The host's `struct sysinfo` with the cgroup's memory applied, as the caller's bytes.
pub fn answer(host: &libc::sysinfo, limit: Option<(u64, Option<u64>)>) -> [u8; SYSINFO_SIZE] {
    let unit = u64::from(host.mem_unit.max(1));
    let mut total = host.totalram;
    let mut free = host.freeram;
    if let Some((limit, usage)) = limit {
        let limit_units = limit / unit;
        if limit_units < total {
            total = limit_units;
            let left = usage.map_or(limit, |u| limit.saturating_sub(u)) / unit;
            free = free.min(left);
        }
    }
    let mut b = [0u8; SYSINFO_SIZE];
    let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(0, &host.uptime.to_ne_bytes());
    for (i, l) in host.loads.iter().enumerate() {
        put(8 + 8 * i, &l.to_ne_bytes());
    }
    put(32, &total.to_ne_bytes());
    put(40, &free.to_ne_bytes());
    put(48, &host.sharedram.to_ne_bytes());
    put(56, &host.bufferram.to_ne_bytes());
    put(64, &host.totalswap.to_ne_bytes());
    put(72, &host.freeswap.to_ne_bytes());
    put(80, &host.procs.to_ne_bytes());
    put(88, &host.totalhigh.to_ne_bytes());
    put(96, &host.freehigh.to_ne_bytes());
    put(104, &host.mem_unit.to_ne_bytes());
    b
}

fn host_sysinfo() -> std::io::Result<libc::sysinfo> {
    // SAFETY: an all-zero sysinfo is a valid value (integers only).
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: sysinfo writes one struct sysinfo into the pointer we pass.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(si)
}

/// Serve one sysinfo notification. `None`: the caller went away.
pub fn handle(fd: &NotifyFd, n: &SeccompNotif) -> Option<Outcome> {
    if n.data.arch == AUDIT_ARCH_I386 {
        return Some(Outcome::new(Verdict::Allowed, Response::Continue));
    }
    let addr = n.data.args[0];
    let mut outcome = Outcome::new(Verdict::Emulated, Response::Value(0));
    let opened = (|| {
        let t = Target::of_caller(n.pid)?;
        let mem = File::from(t.open_at("mem", libc::O_RDWR)?);
        let cgroup = File::from(t.open_at("cgroup", libc::O_RDONLY)?);
        let maps = File::from(t.open_at("maps", libc::O_RDONLY)?);
        Ok::<_, crate::broker::target::TargetError>((mem, cgroup, maps))
    })();
    // Opened first, then checked: the fds are bound to the caller still blocked in this call.
    if !fd.id_valid(n.id) {
        return None;
    }
    let (mem, cgroup, maps) = match opened {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(pid = n.pid, error = %e, "sysinfo: cannot reach the caller");
            outcome.verdict = Verdict::Denied;
            outcome.response = Response::Errno(e.errno());
            return Some(outcome);
        }
    };
    let host = match host_sysinfo() {
        Ok(h) => h,
        Err(e) => {
            outcome.response = Response::Errno(e.raw_os_error().unwrap_or(libc::EIO));
            return Some(outcome);
        }
    };
    let cg = std::io::read_to_string(cgroup)
        .ok()
        .as_deref()
        .and_then(parse_cgroup);
    let limit = cg.as_ref().and_then(|c| memory_limit(&Roots::default(), c));
    if let Some(c) = &cg {
        let (MemoryCgroup::V1(p) | MemoryCgroup::V2(p)) = c;
        outcome.detail("cgroup", p.clone());
    }
    if let Some((l, _)) = limit {
        outcome.detail("limit", l.to_string());
    }
    let bytes = answer(&host, limit);
    // /proc/PID/mem writes with FOLL_FORCE, through any page protection: write only where the
    // caller itself could, so that it gets EFAULT where the kernel would give it.
    let maps = std::io::read_to_string(maps).unwrap_or_default();
    if !writable(&maps, addr, bytes.len() as u64) {
        outcome.detail(
            "why",
            format!("{addr:#x} is not writable memory of the caller"),
        );
        outcome.response = Response::Errno(libc::EFAULT);
        return Some(outcome);
    }
    match mem.write_at(&bytes, addr) {
        Ok(n) if n == bytes.len() => {}
        _ => outcome.response = Response::Errno(libc::EFAULT),
    }
    Some(outcome)
}

/// Whether `[addr, addr + len)` lies in writable mappings of a `/proc/PID/maps` text
/// (contiguous mappings may share the range).
fn writable(maps: &str, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let mut ranges: Vec<(u64, u64)> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            if perms.as_bytes().get(1) != Some(&b'w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect();
    ranges.sort_unstable();
    let mut at = addr;
    for (a, b) in ranges {
        if a <= at && at < b {
            at = b;
            if at >= end {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_into_writable_mappings() {
        let maps = "00400000-00401000 r-xp 00000000 08:01 1 /bin/x\n\
                    00600000-00601000 rw-p 00000000 08:01 1 /bin/x\n\
                    00601000-00602000 rw-p 00000000 00:00 0 [heap]\n\
                    7f0000000000-7f0000001000 r--p 00000000 00:00 0\n";
        assert!(writable(maps, 0x600010, 112));
        // Across two contiguous writable mappings.
        assert!(writable(maps, 0x600fd0, 112));
        // Read-only, executable, unmapped, NULL, past the end, wrapping.
        assert!(!writable(maps, 0x7f0000000000, 112));
        assert!(!writable(maps, 0x400000, 112));
        assert!(!writable(maps, 0x601fd0, 112));
        assert!(!writable(maps, 0, 112));
        assert!(!writable(maps, u64::MAX - 10, 112));
    }

    #[test]
    fn finds_the_memory_cgroup_on_hybrid_and_v2_hosts() {
        let hybrid = "9:name=systemd:/\n4:memory:/a/b\n0::/\n";
        assert_eq!(parse_cgroup(hybrid), Some(MemoryCgroup::V1("/a/b".into())));
        let joined = "3:cpu,memory:/x\n";
        assert_eq!(parse_cgroup(joined), Some(MemoryCgroup::V1("/x".into())));
        assert_eq!(parse_cgroup("0::/c\n"), Some(MemoryCgroup::V2("/c".into())));
        assert_eq!(parse_cgroup("1:cpu:/\n"), None);
        assert_eq!(
            crate::host::cgroup::dir_of(Path::new("/r"), "/a/../b"),
            None
        );
    }

    #[test]
    fn the_smallest_limit_on_the_path_binds() -> Result<(), Box<dyn std::error::Error>> {
        let t = tempfile::tempdir()?;
        let root = t.path().to_path_buf();
        std::fs::create_dir_all(root.join("a/b"))?;
        std::fs::write(root.join("memory.max"), "max\n")?;
        std::fs::write(root.join("a/memory.max"), "1000\n")?;
        std::fs::write(root.join("a/b/memory.max"), "max\n")?;
        std::fs::write(root.join("a/b/memory.current"), "300\n")?;
        let roots = Roots {
            v1_memory: root.clone(),
            v2: root,
        };
        let got = memory_limit(&roots, &MemoryCgroup::V2("/a/b".into()));
        assert_eq!(got, Some((1000, Some(300))));
        Ok(())
    }

    #[test]
    fn answer_reports_the_limit_and_keeps_the_rest() -> Result<(), Box<dyn std::error::Error>> {
        let host = host_sysinfo()?;
        let unit = u64::from(host.mem_unit.max(1));
        let b = answer(&host, Some((256 << 20, Some(16 << 20))));
        let field = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        assert_eq!(field(32) * unit, 256 << 20);
        assert!(field(40) * unit <= 240 << 20);
        assert_eq!(field(64), host.totalswap);
        // No limit, or one above the host's RAM: the host's figures.
        let b = answer(&host, Some((u64::MAX, None)));
        assert_eq!(u64::from_ne_bytes(b[32..40].try_into()?), host.totalram);
        Ok(())
    }
}
