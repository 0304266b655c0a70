//! Helpers shared by the privileged integration tests.
//!
//! The tests run the real `auditor` binary (built by `cargo xtask test`, found through
//! `AUDITOR_BIN` or next to the test executable) as root against the real kernel. A test that
//! cannot run for lack of privilege or a kernel feature fails under `CI=true` and is only
//! skipped (with a message) elsewhere.

pub mod agent;
pub mod docker;
pub mod learner;
pub mod loopdev;
pub mod podman;
pub mod runtimes;
pub mod scrape;
pub mod scratch;
pub mod systemd;
pub mod tmux;

pub use scratch::{
    describe, enforce, session_socket, text, wait_for, Reaped, Scratch, ALLOW_ALL_POLICY,
    CONTAINER_ROOT, MKNOD_NOTIFY,
};

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Path of the auditor binary under test.
pub fn auditor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AUDITOR_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test> -> target/<profile>/auditor
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("auditor")
}

/// `auditor ARGS…`, capturing output.
pub fn auditor(args: &[&str]) -> Output {
    Command::new(auditor_bin())
        .args(args)
        .output()
        .expect("run auditor")
}

/// True when running under CI (`CI=true`): privileged tests must not skip there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns false (and says why) if the test cannot run here; panics instead under CI.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if in_ci() {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    eprintln!("SKIP {test}: needs root");
    false
}

/// A name unique to this test process and call, for cgroups, containers, files.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `name` was made by [`unique_name`]`(prefix)` in a test process that is gone: a
/// leftover to clear. A live test's names (this process's or a parallel one's) are never
/// stale, even before the test has used them.
pub fn stale_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// A tool from the system (strace, runc, …): its path, or a failure under CI / skip elsewhere.
pub fn require_tool(test: &str, tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if in_ci() {
            panic!("{test}: `{tool}` is not installed (run `cargo xtask setup`); CI=true forbids skipping");
        }
        eprintln!("SKIP {test}: `{tool}` not installed");
    }
    found
}

/// Run a command to completion within `limit`, capturing its output.
///
/// The output is read while it runs (a full pipe cannot stall it), and a process it leaves
/// behind holding its stdout or stderr (a container's init, say) cannot hang the caller: the
/// output is collected for at most a few seconds after the command itself has ended. Panics,
/// with what it printed, if the command does not end within `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = p.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let _ = tx.send(Some(chunk[..n].to_vec()));
                }
            }
            let _ = tx.send(None);
        });
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    );
    // What a reader has sent by `deadline` (its pipe's end, or as much as came).
    let collect = |rx: &std::sync::mpsc::Receiver<Option<Vec<u8>>>, deadline: Instant| {
        let mut v = Vec::new();
        while let Ok(Some(chunk)) =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            v.extend_from_slice(&chunk);
        }
        v
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                let deadline = Instant::now() + Duration::from_secs(2);
                let (o, e) = (collect(&out, deadline), collect(&err, deadline));
                panic!(
                    "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&o),
                    String::from_utf8_lossy(&e)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    Output {
        status,
        stdout: collect(&out, deadline),
        stderr: collect(&err, deadline),
    }
}

/// The path of a test workload (`integration/workloads/NAME.c`, built by build.rs) where a
/// container's root can execute it. The checkout, and so the build's output, may sit under a
/// directory others cannot search (`/root`, mode 0700, for a root user's clone), and a
/// `--userns` workload runs as an unprivileged host uid: so each workload is copied, once per
/// test process, into a directory under the system temp dir that every user can search.
pub fn workload(name: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    static COPIED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let built = std::path::Path::new(env!("OUT_DIR")).join(name);
    let mut dir = COPIED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = dir.get_or_insert_with(|| {
        // Directories of earlier test processes that are gone.
        if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = n.strip_prefix("auditor-workloads-") {
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = std::env::temp_dir().join(format!("auditor-workloads-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("workload dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        d
    });
    let to = dir.join(name);
    if !to.exists() {
        // Copied next to its final name, then renamed: a concurrent test never runs half a file.
        let tmp = dir.join(format!(".{name}.{}", unique_name("copy")));
        std::fs::copy(&built, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &to).expect("rename");
    }
    to.display().to_string()
}

/// The decision records of an audit log (`--audit-log`), without its closing summary line.
pub fn audit_records(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r.get("summary").is_none())
        .collect()
}

/// How many file descriptors process `pid` has open (0 once it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Wait (up to 15 s) until process `pid` has at most `limit` file descriptors open, and
/// return the last count: a process that released what a finished container held gets
/// there, one that leaks does not.
pub fn wait_open_fds_at_most(pid: u32, limit: usize) -> usize {
    let t0 = Instant::now();
    loop {
        let n = open_fds(pid);
        if n <= limit || t0.elapsed() > Duration::from_secs(15) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
