//! Facts about a container from the host: its init pid (from the runtime's state) and its own
//! cgroup v2 directory, if it has one.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::DaemonError;

/// The runtimes whose state auditor reads: runc and crun (`RUNTIME state ID`).
pub use crate::policy::generate::Runtime;

/// The host pid of a running container's init, from `RUNTIME [--root DIR] state ID`.
pub fn init_pid(runtime: Runtime, root: Option<&Path>, id: &str) -> Result<u32, DaemonError> {
    super::protocol::check_id(id).map_err(|e| DaemonError::Container {
        id: id.into(),
        msg: e.to_string(),
    })?;
    if runtime == Runtime::Lxc {
        return Err(DaemonError::Container {
            id: id.into(),
            msg: "LXC keeps no OCI state to read: learn an LXC container with `auditor learn --cgroup` on its lxc.payload cgroup".into(),
        });
    }
    let mut cmd = Command::new(runtime.name());
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    cmd.args(["state", id]);
    let out = cmd.output().map_err(|e| DaemonError::Container {
        id: id.into(),
        msg: format!(
            "cannot run `{} state`: {e} (is {} installed?)",
            runtime.name(),
            runtime.name()
        ),
    })?;
    if !out.status.success() {
        return Err(DaemonError::Container {
            id: id.into(),
            msg: format!(
                "`{} state {id}` failed: {} (check the id with `{} list`, and --root if the runtime uses another state directory)",
                runtime.name(),
                String::from_utf8_lossy(&out.stderr).trim(),
                runtime.name()
            ),
        });
    }
    #[derive(serde::Deserialize)]
    struct State {
        pid: Option<u32>,
        status: Option<String>,
    }
    let st: State = serde_json::from_slice(&out.stdout).map_err(|e| DaemonError::Container {
        id: id.into(),
        msg: format!(
            "`{} state` printed something that is not its JSON state: {e}",
            runtime.name()
        ),
    })?;
    match (st.pid, st.status.as_deref()) {
        (Some(pid), Some("running" | "created" | "paused")) if pid > 0 => Ok(pid),
        (_, status) => Err(DaemonError::Container {
            id: id.into(),
            msg: format!(
                "the container is not running (status {})",
                status.unwrap_or("unknown")
            ),
        }),
    }
}

/// The container's own cgroup v2 directory and its id: the process's v2 cgroup (`0::` line of
/// /proc/PID/cgroup) under a cgroup2 mount, if that cgroup is the container's own (its last
/// path component names the container, as runc's and crun's defaults and systemd's
/// `runc-ID.scope` do). A process that stays in its parent's cgroup (crun on this hybrid host,
/// with cgroup2 unmounted) has none: it is scoped by pid instead.
pub fn own_cgroup(pid: u32, id: &str) -> Option<(PathBuf, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = own_v2_path(&text, id)?;
    let root = crate::host::cgroup::mount_point()?;
    let dir = root.join(rel.trim_start_matches('/'));
    if !crate::host::cgroup::is_v2_dir(&dir) {
        return None;
    }
    Some((dir.clone(), crate::host::cgroup::id(&dir).ok()?))
}

/// The v2 cgroup path in a /proc/PID/cgroup text (its `0::` line) if it is the container's
/// own: its last component names the container.
fn own_v2_path<'a>(cgroup_file: &'a str, id: &str) -> Option<&'a str> {
    let rel = crate::host::cgroup::v2_line(cgroup_file)?;
    let last = Path::new(rel).file_name()?.to_str()?;
    last.contains(id).then_some(rel)
}

/// Whether the cgroup v2 directory with inode `ino` still holds processes (None: it is gone —
/// also when a new cgroup now has its path, as for a container id that is run again).
pub fn populated(dir: &Path, ino: u64) -> Option<bool> {
    let meta = std::fs::metadata(dir).ok()?;
    if std::os::unix::fs::MetadataExt::ino(&meta) != ino {
        return None;
    }
    crate::host::cgroup::populated(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cgroup_named_after_the_container_is_its_own() {
        let runc = "9:name=systemd:/c1\n1:cpu:/c1\n0::/c1\n";
        assert_eq!(own_v2_path(runc, "c1"), Some("/c1"));
        let systemd = "0::/system.slice/runc-c1.scope\n";
        assert_eq!(
            own_v2_path(systemd, "c1"),
            Some("/system.slice/runc-c1.scope")
        );
        // crun with cgroup2 unmounted: still in the shell's cgroup, shared with the host.
        assert_eq!(own_v2_path("0::/user.slice/session-3.scope\n", "c1"), None);
        assert_eq!(own_v2_path("0::/\n", "c1"), None);
        // cgroup v1 only: no v2 line.
        assert_eq!(own_v2_path("1:cpu:/c1\n", "c1"), None);
        assert_eq!(own_v2_path("", "c1"), None);
    }
}
