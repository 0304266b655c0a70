//! A private podman (4.3, Debian's) for a test: its own storage (`vfs` graph root and run root),
//! `containers.conf`, hooks directory and events file under a scratch directory, chosen with
//! `CONTAINERS_STORAGE_CONF` and `CONTAINERS_CONF` (so an `auditor learn --container podman://`
//! given the same environment sees the same containers), and a busybox image imported from
//! busybox-static (no registry is reachable). Containers run with `--network none`.
//!
//! This machine kind needs two settings (../shared/TOOLCHAIN.md, issue 14's facts): lower
//! default ulimits (root lacks CAP_SYS_RESOURCE; the nofile hard limit is 20000), and crun
//! 1.8.1 refuses the hybrid cgroup layout while cgroup2 is mounted, so crun is run through a
//! wrapper named `crun` that unmounts `/sys/fs/cgroup/unified` in a mount namespace of its
//! own (the container inherits it; the host's mounts are untouched).
//!
//! Dropped: every container removed, conmons and anything else naming the directory killed,
//! its mounts undone and the directory removed; leftovers of dead test processes first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{require_root, require_tool, run_with_timeout, unique_name};

const PREFIX: &str = "auditor-podman";
/// The image every test runs: busybox-static as /bin/busybox with applet links.
pub const IMAGE: &str = "localhost/auditor-busybox:test";

/// Root, podman, runc, crun and busybox-static, or a skip (a failure under CI).
pub fn ready(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "podman").is_some()
        && require_tool(test, "runc").is_some()
        && require_tool(test, "crun").is_some()
        && require_tool(test, "unshare").is_some()
        && Path::new("/bin/busybox").is_file()
}

/// The OCI runtimes podman is tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Crun,
}

impl Runtime {
    pub const ALL: [Runtime; 2] = [Runtime::Runc, Runtime::Crun];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }
}

pub struct Podman {
    pub dir: PathBuf,
    /// The hooks directory (`hooks_dir` in its containers.conf), empty at first.
    pub hooks_dir: PathBuf,
    crun: PathBuf,
}

impl Podman {
    pub fn start() -> Podman {
        clear_stale();
        let dir = std::env::temp_dir().join(unique_name(PREFIX));
        let _ = std::fs::remove_dir_all(&dir);
        let hooks_dir = dir.join("hooks.d");
        std::fs::create_dir_all(&hooks_dir).expect("podman dir");
        std::fs::create_dir_all(dir.join("tmp")).expect("podman tmp");
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/run\"\n",
                d = dir.display()
            ),
        )
        .expect("storage.conf");
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\n\
                 tmp_dir = \"{d}/tmp\"\n\
                 hooks_dir = [\"{h}\"]\n",
                d = dir.display(),
                h = hooks_dir.display()
            ),
        )
        .expect("containers.conf");
        std::fs::create_dir_all(dir.join("bin")).expect("bin");
        let crun = dir.join("bin/crun");
        std::fs::write(
            &crun,
            "#!/bin/sh\n# crun 1.8.1 refuses this host's hybrid cgroups while cgroup2 is mounted.\n\
             exec unshare --mount sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"' crun \"$@\"\n",
        )
        .expect("crun wrapper");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&crun, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let p = Podman {
            dir,
            hooks_dir,
            crun,
        };
        let tar = crate::docker::busybox_image_tar(&p.dir);
        let o = p.podman(&["import", &tar.display().to_string(), IMAGE]);
        assert!(o.status.success(), "podman import: {}", crate::describe(&o));
        p
    }

    /// The environment that selects this podman's storage and configuration.
    pub fn env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf")),
            ("CONTAINERS_CONF", self.dir.join("containers.conf")),
        ]
    }

    /// podman on this store.
    pub fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.envs(self.env()).stdin(Stdio::null());
        c
    }

    /// `podman ARGS` to its end (at most 2 minutes).
    pub fn podman(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(args);
        run_with_timeout(&mut c, Duration::from_secs(120))
    }

    /// `podman run --rm --network none --runtime R ARGS…` (ARGS: run's options, the image, the
    /// command).
    pub fn run(&self, runtime: Runtime, args: &[&str]) -> Output {
        let rt = self.runtime_arg(runtime);
        let mut all = vec!["run", "--rm", "--network", "none", "--runtime", &rt];
        all.extend_from_slice(args);
        self.podman(&all)
    }

    /// What `--runtime` names for `runtime` on this machine.
    pub fn runtime_arg(&self, runtime: Runtime) -> String {
        match runtime {
            Runtime::Runc => "runc".into(),
            Runtime::Crun => self.crun.display().to_string(),
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        crate::docker::tear_down(&self.dir);
    }
}

/// Stores of test processes that died: their directories `auditor-podman-PID-N`.
fn clear_stale() {
    for dir in crate::scratch::stale_dirs(PREFIX) {
        let _ = run_with_timeout(
            Command::new("podman")
                .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
                .env("CONTAINERS_CONF", dir.join("containers.conf"))
                .args(["rm", "--all", "--force", "--time", "0"]),
            Duration::from_secs(60),
        );
        crate::docker::tear_down(&dir);
    }
}
