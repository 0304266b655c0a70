//! Running the workload as an unprivileged container: new user, mount, pid, uts and ipc
//! namespaces, root inside mapped to an unprivileged host range, its own /proc, mounts
//! recursively slave (nothing propagates back to the host), optionally a root file system.
//!
//! Sequence (see [`super::spawn_held_with`]): the held child drops its supplementary groups
//! (while it still can), unshares the namespaces and tells the parent, which writes
//! `setgroups` = deny, `gid_map` and `uid_map`; released, the child becomes root inside and
//! forks the workload, which is pid 1 of the new pid namespace. The child stays as a small
//! reaper that relays the workload's exit status (it is not in the new pid namespace itself).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// Errors setting up the user namespace (parent side).
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("bad --userns range `{given}`: {why} (write HOST_UID:COUNT, e.g. 100000:65536)")]
    BadRange { given: String, why: &'static str },
    #[error("--rootfs {path}: {why}")]
    BadRootfs { path: PathBuf, why: String },
    #[error("cannot write {file} for pid {pid}")]
    WriteMap {
        file: &'static str,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}

/// The host range root inside is mapped to, when `--userns` is given without one: the first
/// range `useradd` hands out in /etc/subuid, well clear of system and login users.
pub const DEFAULT_RANGE: IdRange = IdRange {
    host: 100_000,
    count: 65_536,
};

/// Uids and gids 0..count inside are host..host+count outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    pub host: u32,
    pub count: u32,
}

impl IdRange {
    /// `HOST:COUNT`.
    pub fn parse(s: &str) -> Result<IdRange, UsernsError> {
        let bad = |why| UsernsError::BadRange {
            given: s.to_owned(),
            why,
        };
        let (h, c) = s.split_once(':').ok_or_else(|| bad("missing `:`"))?;
        let host: u32 = h
            .trim()
            .parse()
            .map_err(|_| bad("HOST_UID is not a number"))?;
        let count: u32 = c.trim().parse().map_err(|_| bad("COUNT is not a number"))?;
        if host == 0 {
            return Err(bad("mapping root inside to host root is not a container"));
        }
        if count == 0 {
            return Err(bad("COUNT must be at least 1"));
        }
        if host.checked_add(count).is_none_or(|end| end > u32::MAX - 1) {
            return Err(bad("the range ends past the largest uid"));
        }
        Ok(IdRange { host, count })
    }

    /// The host uid (or gid) of `inside`, if mapped.
    pub fn to_host(self, inside: u32) -> Option<u32> {
        (inside < self.count).then(|| self.host + inside)
    }

    /// The line for uid_map/gid_map.
    fn map_line(self) -> String {
        format!("0 {} {}\n", self.host, self.count)
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.count)
    }
}

/// What `--userns [--rootfs DIR]` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Userns {
    pub range: IdRange,
    pub rootfs: Option<PathBuf>,
}

impl Userns {
    pub fn new(range: IdRange, rootfs: Option<&Path>) -> Result<Userns, UsernsError> {
        let rootfs = match rootfs {
            None => None,
            Some(p) => {
                let abs = std::fs::canonicalize(p).map_err(|e| UsernsError::BadRootfs {
                    path: p.to_owned(),
                    why: e.to_string(),
                })?;
                if !abs.is_dir() {
                    return Err(UsernsError::BadRootfs {
                        path: p.to_owned(),
                        why: "not a directory".into(),
                    });
                }
                if !abs.join("proc").is_dir() {
                    return Err(UsernsError::BadRootfs {
                        path: p.to_owned(),
                        why: "has no proc directory to mount the container's /proc on (mkdir it)"
                            .into(),
                    });
                }
                Some(abs)
            }
        };
        Ok(Userns { range, rootfs })
    }

    /// Paths for the child, encoded before `fork`.
    pub(crate) fn prepare(&self) -> Result<PreparedUserns, super::LaunchError> {
        let c = |b: &[u8]| {
            CString::new(b).map_err(|_| super::LaunchError::Nul(String::from_utf8_lossy(b).into()))
        };
        let rootfs = match &self.rootfs {
            Some(r) => Some((
                c(r.as_os_str().as_bytes())?,
                c(r.join("proc").as_os_str().as_bytes())?,
            )),
            None => None,
        };
        Ok(PreparedUserns {
            slash: c(b"/")?,
            dot: c(b".")?,
            proc_path: c(b"/proc")?,
            proc_type: c(b"proc")?,
            rootfs,
        })
    }
}

/// Write the id maps of the held child `pid` (which has unshared its user namespace).
pub(crate) fn write_maps(pid: i32, range: IdRange) -> Result<(), UsernsError> {
    let write = |file: &'static str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|source| UsernsError::WriteMap { file, pid, source })
    };
    // "deny" before gid_map, as the kernel requires of unprivileged writers; here it also means
    // nobody inside can ever call setgroups to regain a group.
    write("setgroups", "deny")?;
    write("gid_map", &range.map_line())?;
    write("uid_map", &range.map_line())
}

/// Strings the child needs, allocated before `fork`.
pub(crate) struct PreparedUserns {
    slash: CString,
    dot: CString,
    proc_path: CString,
    proc_type: CString,
    /// (rootfs, rootfs/proc)
    rootfs: Option<(CString, CString)>,
}

/// The namespaces unshared.
pub(crate) const UNSHARE_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC;

fn errno() -> i32 {
    // SAFETY: reading this thread's errno slot is async-signal-safe.
    unsafe { *libc::__errno_location() }
}

impl PreparedUserns {
    /// In the workload process (pid 1 of the new pid namespace), before the filter: mounts
    /// slave, own /proc, optional new root.
    ///
    /// # Safety
    /// Call only in the forked workload child before `execve` (raw syscalls only).
    pub(crate) unsafe fn set_up_mounts(&self) -> Result<(), super::filter::ChildFailure> {
        use super::Stage;
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: all pointers are NUL-terminated strings owned by self, or null where the
        // syscall allows it.
        unsafe {
            if libc::mount(
                null,
                self.slash.as_ptr(),
                null,
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err((Stage::MountSlave, errno()));
            }
            let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            match &self.rootfs {
                None => {
                    if libc::mount(
                        self.proc_type.as_ptr(),
                        self.proc_path.as_ptr(),
                        self.proc_type.as_ptr(),
                        proc_flags,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err((Stage::MountProc, errno()));
                    }
                }
                Some((root, root_proc)) => {
                    // pivot_root needs the new root to be a mount point.
                    if libc::mount(
                        root.as_ptr(),
                        root.as_ptr(),
                        null,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err((Stage::Rootfs, errno()));
                    }
                    if libc::mount(
                        self.proc_type.as_ptr(),
                        root_proc.as_ptr(),
                        self.proc_type.as_ptr(),
                        proc_flags,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err((Stage::MountProc, errno()));
                    }
                    if libc::chdir(root.as_ptr()) != 0 {
                        return Err((Stage::Rootfs, errno()));
                    }
                    // pivot_root(".", "."): the old root ends up on top of the new one, and is
                    // then detached (the runc way, no put_old directory needed).
                    if libc::syscall(libc::SYS_pivot_root, self.dot.as_ptr(), self.dot.as_ptr())
                        != 0
                    {
                        return Err((Stage::Rootfs, errno()));
                    }
                    if libc::umount2(self.dot.as_ptr(), libc::MNT_DETACH) != 0 {
                        return Err((Stage::Rootfs, errno()));
                    }
                    if libc::chdir(self.slash.as_ptr()) != 0 {
                        return Err((Stage::Rootfs, errno()));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(IdRange::parse("100000:65536").ok(), Some(DEFAULT_RANGE));
        assert!(IdRange::parse("0:65536").is_err());
        assert!(IdRange::parse("100000").is_err());
        assert!(IdRange::parse("100000:0").is_err());
        assert!(IdRange::parse("4294967000:1000").is_err());
        assert_eq!(DEFAULT_RANGE.to_host(0), Some(100_000));
        assert_eq!(DEFAULT_RANGE.to_host(65_536), None);
        assert_eq!(DEFAULT_RANGE.map_line(), "0 100000 65536\n");
    }
}
