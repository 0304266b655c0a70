//! Learning containers: a private `auditor daemon` (the resident learner `auditor hook`
//! registers containers with), runc/crun helpers, and strace as the reference to compare a
//! learned observation with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtimes::{clear_stale, Bundle, Runtime};
use crate::{auditor_bin, require_root, require_tool, unique_name};
use auditor::observe::model::Observation;
use auditor::syscalls::Abi;

pub const RUNTIME_INIT: &str = auditor::observe::build::RUNTIME_INIT;

/// A running `auditor daemon`, stopped (SIGTERM, then SIGKILL) and cleaned up on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub out: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_in(&std::env::temp_dir().join(unique_name("auditor-daemon")))
    }

    /// A daemon in `dir` (its socket, output directory and log there): a restart of a stopped
    /// one at the same socket.
    pub fn start_in(dir: &Path) -> Daemon {
        Daemon::start_with(dir, &[])
    }

    /// [`Daemon::start_in`] with extra flags.
    pub fn start_with(dir: &Path, flags: &[&str]) -> Daemon {
        Daemon::start_with_env(dir, flags, std::iter::empty::<(&str, PathBuf)>())
    }

    /// A fresh daemon with extra environment (the engine a test's daemon asks: `DOCKER_HOST`,
    /// podman's `CONTAINERS_*`).
    pub fn start_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Daemon {
        Daemon::start_with_env(
            &std::env::temp_dir().join(unique_name("auditor-daemon")),
            &[],
            env,
        )
    }

    /// [`Daemon::start_with`] with extra environment.
    pub fn start_with_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
        dir: &Path,
        flags: &[&str],
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Daemon {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).expect("daemon dir");
        let socket = dir.join("daemon.sock");
        let out = dir.join("out");
        let log = dir.join("daemon.log");
        let child = Command::new(auditor_bin())
            .args(["-v", "daemon", "--socket"])
            .arg(&socket)
            .arg("--output-dir")
            .arg(&out)
            .args(flags)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("daemon log"))
            .spawn()
            .expect("start auditor daemon");
        let mut d = Daemon {
            child: Some(child),
            dir,
            socket,
            out,
            log,
        };
        let t0 = Instant::now();
        while !d.log_text().contains("listening on") {
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("auditor daemon exited ({st}):\n{}", d.log_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "daemon not ready:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The hook's argv for this daemon.
    pub fn hook_args(&self) -> Vec<String> {
        vec![
            "auditor".into(),
            "hook".into(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--runtime".into(),
            "runc".into(),
        ]
    }

    /// Wait (up to 20 s) until container `id`'s observation satisfies `done`, and return it
    /// (the last read, satisfied or not).
    pub fn observation_when(&self, id: &str, done: impl Fn(&Observation) -> bool) -> Observation {
        let t0 = Instant::now();
        loop {
            let obs = self.observation(id);
            if done(&obs) || t0.elapsed() > Duration::from_secs(20) {
                return obs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for the observation of container `id`.
    pub fn observation(&self, id: &str) -> Observation {
        let path = self.out.join(format!("{id}.json"));
        let t0 = Instant::now();
        while !path.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no observation for {id} in {}; daemon log:\n{}",
                self.out.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        auditor::observe::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGKILL and reap: a crash.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("daemon running");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// `auditor daemon --uninstall` of this daemon's instance (with `extra` flags): its output.
    pub fn uninstall(&self, extra: &[&str]) -> std::process::Output {
        Command::new(auditor_bin())
            .args(["daemon", "--uninstall", "--socket"])
            .arg(&self.socket)
            .arg("--output-dir")
            .arg(&self.out)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("auditor daemon --uninstall")
    }

    /// SIGTERM and wait: the daemon's clean shutdown.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().expect("wait daemon") {
                return st;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                panic!("daemon ignored SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // A daemon stopped with containers running leaves its programs pinned for the next
        // one: remove them, whatever they are.
        let o = self.uninstall(&["--force"]);
        if !o.status.success() {
            eprintln!(
                "auditor daemon --uninstall: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log_text());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn ready(test: &str) -> bool {
    if !require_root(test) || require_tool(test, "runc").is_none() {
        return false;
    }
    clear_stale(Runtime::Runc);
    clear_stale_daemons();
    true
}

/// Remove the pinned programs of test daemons whose directory is gone (a test run that was
/// killed before its cleanup): they would go on counting for nobody.
pub fn clear_stale_daemons() {
    let Ok(entries) = std::fs::read_dir(auditor::daemon::state::STATE_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(instance) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| n.starts_with("sock-"))
            .map(str::to_owned)
        else {
            continue;
        };
        let Ok(Some(state)) = auditor::daemon::state::load(&path) else {
            continue;
        };
        let test_socket = state.socket.starts_with(std::env::temp_dir())
            && state.socket.to_string_lossy().contains("auditor-daemon-");
        if test_socket && !state.socket.parent().is_some_and(Path::exists) {
            let _ = Command::new(auditor_bin())
                .args(["daemon", "--uninstall", "--force", "--instance", &instance])
                .stdin(Stdio::null())
                .output();
        }
    }
}

/// A busybox runc bundle whose `createRuntime` hook registers it with `daemon`.
pub fn hooked_bundle(daemon: &Daemon, args: &[&str]) -> Bundle {
    let b = Bundle::busybox(Runtime::Runc, args).expect("bundle");
    let hook = daemon.hook_args();
    let hook: Vec<&str> = hook.iter().map(String::as_str).collect();
    b.add_hook("createRuntime", &auditor_bin(), &hook)
        .expect("hook");
    b
}

pub fn runc(args: &[&str]) -> std::process::Output {
    Command::new("runc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run runc")
}

/// `runc run` of bundle `b` in the foreground, to its end.
pub fn runc_run(b: &Bundle) -> std::process::Output {
    Command::new("runc")
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(Stdio::null())
        .output()
        .expect("runc run")
}

/// `runc run --detach` of bundle `b`: the container is running when it returns.
pub fn runc_run_detached(b: &Bundle) {
    let st = Command::new("runc")
        .args(["run", "--detach", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runc run --detach");
    assert!(st.success(), "runc run --detach failed");
}

pub fn state_pid(id: &str) -> u32 {
    let o = runc(&["state", id]);
    assert!(
        o.status.success(),
        "runc state: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("state json");
    v["pid"].as_u64().expect("pid") as u32
}

/// Syscalls the workload (anything but the runtime's init) made.
pub fn workload_names(obs: &Observation) -> BTreeSet<String> {
    obs.syscalls
        .iter()
        .filter(|s| s.abi == Abi::X86_64 && s.executables.keys().any(|e| e != RUNTIME_INIT))
        .map(|s| s.name.clone())
        .collect()
}

pub fn runtime_names(obs: &Observation) -> BTreeSet<String> {
    obs.syscalls
        .iter()
        .filter(|s| s.executables.contains_key(RUNTIME_INIT))
        .map(|s| s.name.clone())
        .collect()
}

/// The syscalls strace saw after the workload's execve in `init` (the pid strace attached to),
/// and in every process forked after it.
pub fn strace_workload(path: &Path, init: u32) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("strace output");
    let mut after_exec = false;
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let (pid, rest) = match line.split_once(char::is_whitespace) {
            Some((p, r)) => (p.parse::<u32>().unwrap_or(0), r.trim_start()),
            None => continue,
        };
        let name = if let Some(r) = rest.strip_prefix("<... ") {
            r.split_whitespace().next().unwrap_or("")
        } else {
            rest.split('(').next().unwrap_or("")
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
            continue;
        }
        if !after_exec {
            if pid == init && name == "execve" && rest.contains(" = 0") {
                after_exec = true;
            }
            continue;
        }
        set.insert(name.to_string());
    }
    assert!(
        after_exec,
        "strace never saw the workload's execve:\n{text}"
    );
    set
}
