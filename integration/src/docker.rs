//! A private Docker engine for a test: `dockerd` (20.10, Debian's docker.io) with its own
//! data root, exec root, socket and managed containerd under a scratch directory, off the
//! host's network (`--bridge=none --iptables=false`), container logs off (`log-driver none`:
//! a runaway container cannot fill the disk; `docker run` still streams its output), and a
//! busybox image imported from busybox-static (no registry is reachable). Stopped on drop:
//! containers removed, the engine stopped (SIGTERM, then SIGKILL), its shims killed, its
//! mounts undone and its directory removed; leftovers of dead test processes are cleared
//! first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{require_root, require_tool, run_with_timeout, unique_name};

const PREFIX: &str = "auditor-dockerd";
/// The image every test runs: busybox-static as /bin/busybox with applet links.
pub const IMAGE: &str = "auditor-busybox:test";

/// Root, dockerd, the docker client and busybox-static, or a skip (a failure under CI).
pub fn ready(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "dockerd").is_some()
        && require_tool(test, "containerd").is_some()
        && require_tool(test, "runc").is_some()
        && Path::new(DOCKER_CLIENT).is_file()
        && Path::new("/bin/busybox").is_file()
}

/// Debian's client, of the engine's own version (another `docker` may come first in PATH).
pub const DOCKER_CLIENT: &str = "/usr/bin/docker";

pub struct Dockerd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Dockerd {
    /// Start an engine whose `daemon.json` is `config` plus this harness's own settings.
    pub fn start(mut config: serde_json::Value) -> Dockerd {
        clear_stale();
        let dir = std::env::temp_dir().join(unique_name(PREFIX));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dockerd dir");
        config["log-driver"] = "none".into();
        std::fs::write(dir.join("daemon.json"), config.to_string()).expect("daemon.json");
        let mut d = Dockerd {
            child: None,
            socket: dir.join("docker.sock"),
            log: dir.join("dockerd.log"),
            dir,
        };
        d.spawn();
        d.import_busybox();
        d
    }

    /// Start dockerd on this directory (its data, exec root, socket, config) and wait until it
    /// answers. Its log is appended to, so that a restart keeps the first run's.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(["--bridge=none", "--iptables=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.child = Some(child);
        let t0 = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("dockerd exited ({st}):\n{}", self.log_text());
            }
            if self.socket.exists()
                && self
                    .docker(&["info", "--format", "{{.ID}}"])
                    .status
                    .success()
            {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "dockerd not ready:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop dockerd (SIGTERM, as a service manager does; SIGKILL after 20 s) and reap it:
    /// what its containers live through depends on `live-restore`.
    pub fn stop_engine(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the engine we started; at worst it has exited already.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Change this engine's `daemon.json` (read at its next start).
    pub fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.dir.join("daemon.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("daemon.json"))
                .expect("daemon.json is JSON");
        edit(&mut config);
        std::fs::write(&path, config.to_string()).expect("daemon.json");
    }

    /// Restart dockerd on the same directory, as an upgrade or a crash-restart would.
    pub fn restart(&mut self) {
        self.stop_engine();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The docker client on this engine.
    pub fn command(&self) -> Command {
        let mut c = Command::new(DOCKER_CLIENT);
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null());
        c
    }

    /// `docker ARGS` to its end (at most 2 minutes).
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut c = self.command();
        c.args(args);
        run_with_timeout(&mut c, Duration::from_secs(120))
    }

    fn import_busybox(&self) {
        let tar = busybox_image_tar(&self.dir);
        let o = self.docker(&["import", &tar.display().to_string(), IMAGE]);
        assert!(
            o.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A tar of a busybox root file system (busybox-static as /bin/busybox, applet links, the
/// directories a runtime mounts on), built under `dir`: what `docker import`/`podman import`
/// turn into the tests' image.
pub fn busybox_image_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    for d in ["tmp", "dev", "proc", "sys", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("rootfs");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "echo", "uname", "mknod", "stat", "mkdir", "true", "sleep", "cat",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .expect("applet link");
    }
    let tar = rootfs.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the busybox rootfs");
    tar
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        self.stop_engine();
        tear_down(&self.dir);
    }
}

/// Kill what still runs from `dir` (an engine, its shims or conmons, container processes they
/// left: anything whose command line names `dir`), undo
/// its mounts and remove it.
pub(crate) fn tear_down(dir: &Path) {
    let needle = dir.display().to_string();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle)
                && pid != std::process::id() as i32
            {
                // SAFETY: kill(2) on a process of this engine's directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&needle))
        .collect();
    ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in ours {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Engines of test processes that died: their directories `auditor-dockerd-PID-N`.
fn clear_stale() {
    for dir in crate::scratch::stale_dirs(PREFIX) {
        tear_down(&dir);
    }
}

/// A system user and group with subordinate ids for `dockerd --userns-remap` (Docker maps a
/// remapped container's root to the first of them), removed with its `/etc/subuid` and
/// `/etc/subgid` lines on drop. Named after the test process, so leftovers are recognisable.
pub struct RemapUser {
    pub name: String,
    pub first_id: u32,
}

/// The subordinate ids a remapped engine's containers get.
pub const REMAP_FIRST_ID: u32 = 400_000;
const REMAP_COUNT: u32 = 65_536;

impl RemapUser {
    pub fn create() -> RemapUser {
        let name = format!("auditor-dk{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        let o = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
            ])
            .arg(&name)
            .output()
            .expect("useradd");
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for file in ["/etc/subuid", "/etc/subgid"] {
            edit_ids(
                file,
                &name,
                Some(format!("{name}:{REMAP_FIRST_ID}:{REMAP_COUNT}")),
            );
        }
        RemapUser {
            name,
            first_id: REMAP_FIRST_ID,
        }
    }
}

/// Drop `name`'s lines from an id file (and every `auditor-dk*` line of a dead test process),
/// then add `line`.
fn edit_ids(file: &str, name: &str, line: Option<String>) {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut kept: Vec<String> = text
        .lines()
        .filter(|l| {
            let user = l.split(':').next().unwrap_or("");
            let stale = user
                .strip_prefix("auditor-dk")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
            user != name && !stale
        })
        .map(str::to_owned)
        .collect();
    kept.extend(line);
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    let tmp = format!("{file}.auditor-test");
    std::fs::write(&tmp, out).expect("write id file");
    std::fs::rename(&tmp, file).expect("replace id file");
}

impl Drop for RemapUser {
    fn drop(&mut self) {
        for file in ["/etc/subuid", "/etc/subgid"] {
            edit_ids(file, &self.name, None);
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}
