//! cgroup v2: telling a cgroup2 directory from anything else, its mount, its processes, and a
//! process's own v2 cgroup.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Whether `dir` is a directory of a cgroup2 file system.
pub fn is_v2_dir(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        && dir.is_dir()
}

/// The cgroup2 mount point that contains `dir` (the longest matching one).
pub fn mount_root_of(dir: &Path) -> Option<PathBuf> {
    super::proc::mounts_of_type("cgroup2")
        .into_iter()
        .filter(|m| dir.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
}

/// The (first, shortest) cgroup2 mount point of our mount namespace.
pub fn mount_point() -> Option<PathBuf> {
    super::proc::mounts_of_type("cgroup2")
        .into_iter()
        .min_by_key(|m| m.as_os_str().len())
}

/// The path of the `0::` line of a `/proc/PID/cgroup` text.
pub fn v2_line(cgroup_file: &str) -> Option<&str> {
    cgroup_file
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim)
}

/// The v1 line of `controller` (e.g. `memory`, `cpu`) in a `/proc/PID/cgroup` text: the
/// hierarchy's controller list as the line names it (`cpu,cpuacct`) and the cgroup's path.
pub fn v1_line<'a>(cgroup_file: &'a str, controller: &str) -> Option<(&'a str, &'a str)> {
    cgroup_file.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some((controllers, path))
    })
}

/// The directory of the cgroup `path` (as `/proc/PID/cgroup` gives it) below the hierarchy's
/// mount `root`, refusing anything but plain components (`.`, `..`).
pub fn dir_of(root: &Path, path: &str) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return None;
        }
        dir.push(c);
    }
    Some(dir)
}

/// The inode number of a cgroup directory: the cgroup id the kernel reports.
pub fn id(dir: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(dir)?.ino())
}

/// Whether the cgroup v2 directory `dir` holds processes (`cgroup.events`); None if unreadable.
pub fn populated(dir: &Path) -> Option<bool> {
    let s = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("populated "))
        .map(|v| v.trim() == "1")
}

/// Processes in a cgroup directory and all below it.
pub fn procs_below(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                procs_below(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_line_is_the_one_with_hierarchy_zero() {
        let hybrid = "12:pids:/a\n1:name=systemd:/b\n0::/c/d\n";
        assert_eq!(v2_line(hybrid), Some("/c/d"));
        assert_eq!(v2_line("3:cpu:/x\n"), None);
    }

    #[test]
    fn cgroup_directories_take_plain_components_only() {
        assert_eq!(dir_of(Path::new("/r"), "/a/../b"), None);
        assert_eq!(dir_of(Path::new("/r"), "/a/./b"), None);
        assert_eq!(
            dir_of(Path::new("/r"), "/a/b"),
            Some(PathBuf::from("/r/a/b"))
        );
        assert_eq!(dir_of(Path::new("/r"), "/"), Some(PathBuf::from("/r")));
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!is_v2_dir(dir.path()));
        if let Some(root) = mount_point() {
            assert!(is_v2_dir(&root), "{}", root.display());
            assert_eq!(mount_root_of(&root.join("x")), Some(root.clone()));
        }
    }
}
