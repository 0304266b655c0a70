//! `/proc`: whether processes and threads exist, their thread group, parent, executable,
//! threads, mount namespace, and what an fd of ours refers to.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// Whether a process (or thread) with this id exists (a zombie does).
pub fn exists(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether thread `tid` of process `pid` exists.
pub fn thread_exists(pid: u32, tid: u32) -> bool {
    Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}

/// Whether a task exists and has not exited (a zombie has).
pub fn alive(tid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/stat"))
        .is_ok_and(|stat| !matches!(stat_fields(&stat).next(), Some("Z" | "X" | "x") | None))
}

/// The fields of a `/proc/PID/stat` text after the command name (state, ppid, …): the name may
/// hold spaces and parentheses, so they follow its last `)`.
fn stat_fields(stat: &str) -> std::str::SplitWhitespace<'_> {
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
}

/// The parent of a process.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).nth(1)?.parse().ok()
}

/// The thread group id of a thread (`Tgid:` of `/proc/<tid>/status`); the tid itself when it
/// cannot be read (the thread is gone, or is a process's main thread anyway).
pub fn tgid(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// The executable of a running process.
pub fn exe(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Every process id of our pid namespace (as our procfs shows it).
pub fn pids() -> std::io::Result<Vec<u32>> {
    Ok(std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// All thread ids of a process.
pub fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process below `pid` (by parent pid), children before grandchildren.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = pids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some((p, ppid(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// The inode number of a process's mount namespace.
pub fn mntns(pid: u32) -> Option<u64> {
    Some(std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?.ino())
}

/// The inode number of the process's mount namespace, if it is not ours (a container that
/// shares the host's mount namespace cannot be told apart by it).
pub fn own_mntns(pid: u32) -> Option<u32> {
    let theirs = mntns(pid)?;
    let ours = std::fs::metadata("/proc/self/ns/mnt").ok()?.ino();
    (theirs != ours).then_some(theirs as u32)
}

/// Whether any process is in the mount namespace with inode number `inum` (true when /proc
/// cannot be read: not evidence that none is).
pub fn any_in_mntns(inum: u32) -> bool {
    let Ok(pids) = pids() else {
        return true;
    };
    pids.into_iter()
        .any(|p| mntns(p).is_some_and(|i| i as u32 == inum))
}

/// What `/proc/self/fd/N` says an fd of ours is (a path, `anon_inode:seccomp notify`, …).
pub fn fd_path(fd: std::os::fd::RawFd) -> std::io::Result<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).map(|p| p.display().to_string())
}

/// The mount points of file systems of type `fstype` in our mount namespace
/// (`/proc/self/mountinfo`).
pub fn mounts_of_type(fstype: &str) -> Vec<std::path::PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let ty = post.split_whitespace().next()?;
            let mnt = pre.split_whitespace().nth(4)?;
            (ty == fstype).then(|| std::path::PathBuf::from(mnt))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn we_exist_are_alive_and_are_our_parents_child() {
        let me = std::process::id();
        assert!(exists(me) && alive(me));
        assert!(!exists(0));
        assert_eq!(tgid(me), me);
        assert_eq!(ppid(me), Some(std::os::unix::process::parent_id()));
        assert!(threads(me).contains(&me));
        assert!(pids().expect("/proc").contains(&me));
        assert!(exe(me).is_some());
        assert_eq!(own_mntns(me), None, "our own namespace is not another's");
        assert!(any_in_mntns(mntns(me).expect("our mntns") as u32));
    }

    #[test]
    fn a_child_is_a_descendant_until_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        assert!(descendants(std::process::id()).contains(&pid));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!exists(pid) || !alive(pid));
    }

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let stat = "42 (a) b) c) S 7 42 42 0";
        let mut f = stat_fields(stat);
        assert_eq!(f.next(), Some("S"));
        assert_eq!(f.next(), Some("7"));
    }
}
