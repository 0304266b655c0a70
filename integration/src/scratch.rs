//! Scratch directories and processes that clean up after a test, even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::{auditor_bin, unique_name};

/// Host uid/gid of root inside `auditor enforce --userns` (auditor's documented default range).
pub const CONTAINER_ROOT: u32 = 100_000;

/// A native policy that allows everything: a filter without a notify rule.
pub const ALLOW_ALL_POLICY: &str = "version = 1\ndefault_action = \"allow\"\n";

/// A native policy whose broker creates /dev/null (c 1:3) for mknod, and nothing else.
pub const MKNOD_NOTIFY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["mknod", "mknodat"]
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
comment = "/dev/null only"
"#;

/// A fresh directory under the temp dir (`/tmp`: not nodev, so device nodes in it work), named
/// [`unique_name`]`(prefix)` and removed on drop. Directories of the same prefix that earlier
/// test processes left (they were killed) are removed first.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        clear_stale(prefix);
        let dir = std::env::temp_dir().join(unique_name(prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    /// Owned by the container's root ([`CONTAINER_ROOT`]), so a `--userns` workload can write.
    pub fn for_container(prefix: &str) -> Scratch {
        let s = Scratch::new(prefix);
        std::os::unix::fs::chown(&s.0, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT))
            .expect("chown scratch dir");
        s
    }

    /// Mode 0700 (a socket directory an agent accepts), with an empty `policies` directory.
    pub fn private_with_policies(prefix: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt as _;
        let s = Scratch::new(prefix);
        std::fs::create_dir_all(s.0.join("policies")).expect("policies dir");
        std::fs::set_permissions(&s.0, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        s
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Remove `PREFIX-PID-N` directories of the temp dir whose test process `PID` is gone.
fn clear_stale(prefix: &str) {
    for dir in stale_dirs(prefix) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The `PREFIX-PID-N` directories of the temp dir ([`unique_name`]s) whose test process `PID`
/// is gone: what a killed test left.
pub fn stale_dirs(prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|e| e.path())
        .collect()
}

/// A child process killed and reaped on drop unless it has exited, so a failing test leaves
/// nothing running.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `auditor enforce ARGS -- CMD`, run to its end.
pub fn enforce(args: &[&str], cmd: &[&str]) -> Output {
    Command::new(auditor_bin())
        .arg("enforce")
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("run auditor")
}

/// Output bytes as text.
pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// An output's status, stdout and stderr, for an assertion's message.
pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Poll `done` every 20 ms; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The socket of the live session a command publishes in `run_dir` (its `AUDITOR_RUN_DIR`),
/// once it appears (within 20 s).
pub fn session_socket(run_dir: &Path) -> PathBuf {
    let mut socket = None;
    wait_for("the session socket", Duration::from_secs(20), || {
        socket = std::fs::read_dir(run_dir).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "sock"))
        });
        socket.is_some()
    });
    socket.expect("found")
}
