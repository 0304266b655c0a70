//! `auditor agent` started for a test: its runtime socket (OCI `--socket` or LXC
//! `--lxc-socket`), audit log and log in the test's scratch dir, its policies in the scratch's
//! `policies/`; stopped (SIGTERM, then SIGKILL) and reaped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{audit_records, auditor_bin, Scratch};

/// Which runtime protocol the agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// runc/crun's seccomp agent (`listenerPath`), on `agent.sock`.
    Oci,
    /// LXC's `lxc.seccomp.notify.proxy`, on `lxc.sock`.
    Lxc,
}

/// A running `auditor agent`.
pub struct Agent {
    child: Option<Child>,
    /// The runtime socket it serves.
    pub socket: PathBuf,
    /// Its `--audit-log`.
    pub audit: PathBuf,
    /// Its standard error.
    pub log: PathBuf,
}

impl Agent {
    /// The OCI agent of scratch dir `s`.
    pub fn oci(s: &Scratch) -> Agent {
        Agent::start(s, Protocol::Oci, &[], &[])
    }

    /// The OCI agent with extra flags.
    pub fn oci_with(s: &Scratch, flags: &[&str]) -> Agent {
        Agent::start(s, Protocol::Oci, flags, &[])
    }

    /// The LXC proxy agent of scratch dir `s`.
    pub fn lxc(s: &Scratch) -> Agent {
        Agent::start(s, Protocol::Lxc, &[], &[])
    }

    /// The LXC proxy agent, started through `prefix` (a command that runs the rest of its
    /// arguments, e.g. `unshare --pid --fork`).
    pub fn lxc_via(s: &Scratch, prefix: &[&str]) -> Agent {
        Agent::start(s, Protocol::Lxc, &[], prefix)
    }

    /// Start the agent in scratch dir `s` and wait (up to 20 s) for its socket; panics with its
    /// log if it exits.
    pub fn start(s: &Scratch, protocol: Protocol, flags: &[&str], prefix: &[&str]) -> Agent {
        Agent::start_in(s.dir(), protocol, flags, prefix)
    }

    /// [`Agent::start`] in any directory (its socket, audit log and log go there; its policies
    /// are `DIR/policies`).
    pub fn start_in(dir: &Path, protocol: Protocol, flags: &[&str], prefix: &[&str]) -> Agent {
        let a = Agent::spawn(dir, protocol, flags, prefix, "agent.log");
        a.wait_socket()
    }

    /// A second OCI agent on the same socket, policies and audit log as the one of `s`,
    /// logging to `log` (in the scratch dir): it takes over from the one serving. Returns once
    /// it says it took over (panics with both logs if it exits first or takes 30 s).
    pub fn successor(s: &Scratch, log: &str) -> Agent {
        let mut a = Agent::spawn(s.dir(), Protocol::Oci, &[], &[], log);
        let t0 = Instant::now();
        while !a.log_text().contains("took over from the agent before") {
            assert!(
                a.alive() && t0.elapsed() < Duration::from_secs(30),
                "the successor did not take over: {}",
                a.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        a
    }

    /// An OCI agent of `s` as a service manager starts it: with `env` (NOTIFY_SOCKET, …) and
    /// `fds` passed as fds 3, 4, … with `LISTEN_PID` naming it (`LISTEN_FDS` and
    /// `LISTEN_FDNAMES` are the caller's to put in `env`), logging to `log`. Returns once its
    /// socket exists.
    pub fn start_managed(
        s: &Scratch,
        log: &str,
        env: &[(&str, String)],
        fds: Vec<std::os::fd::OwnedFd>,
    ) -> Agent {
        Agent::start_managed_with(s, log, env, fds, &[])
    }

    /// [`Agent::start_managed`] with extra flags.
    pub fn start_managed_with(
        s: &Scratch,
        log: &str,
        env: &[(&str, String)],
        fds: Vec<std::os::fd::OwnedFd>,
        flags: &[&str],
    ) -> Agent {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;
        let dir = s.dir();
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new("/bin/sh");
        // The shell's pid is the agent's (exec): LISTEN_PID names it.
        cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
            .arg(auditor_bin())
            .arg("agent")
            .arg("--socket")
            .arg(dir.join("agent.sock"))
            .arg("--policy-dir")
            .arg(dir.join("policies"))
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .args(flags)
            .env("RUST_LOG", "debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).expect("agent log"));
        // SAFETY: only fcntl and dup2 between fork and exec (async-signal-safe); the fds are
        // first moved above the range they go to, so none is overwritten before it is copied.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = Vec::with_capacity(raw.len());
                for &fd in &raw {
                    let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 1000);
                    if h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high.push(h);
                }
                for (i, &h) in high.iter().enumerate() {
                    if libc::dup2(h, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start auditor agent");
        drop(fds);
        Agent {
            child: Some(child),
            socket: dir.join("agent.sock"),
            audit: dir.join("audit.jsonl"),
            log: dir.join(log),
        }
        .wait_socket()
    }

    /// The agent of `s` (its usual socket for `protocol`) with `env` added (e.g.
    /// `AUDITOR_RUN_DIR` for its live session).
    pub fn start_with_env(
        s: &Scratch,
        protocol: Protocol,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        Agent::spawn_at(s.dir(), protocol, None, flags, &[], "agent.log", env).wait_socket()
    }

    /// The OCI agent of `s` serving `socket` (e.g. where SPO's CRD puts a profile's
    /// listener), with `env` added (e.g. `NODE_NAME`).
    pub fn oci_at(s: &Scratch, socket: &Path, flags: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::spawn_at(
            s.dir(),
            Protocol::Oci,
            Some(socket),
            flags,
            &[],
            "agent.log",
            env,
        )
        .wait_socket()
    }

    fn spawn(dir: &Path, protocol: Protocol, flags: &[&str], prefix: &[&str], log: &str) -> Agent {
        Agent::spawn_at(dir, protocol, None, flags, prefix, log, &[])
    }

    fn spawn_at(
        dir: &Path,
        protocol: Protocol,
        socket: Option<&Path>,
        flags: &[&str],
        prefix: &[&str],
        log: &str,
        env: &[(&str, &str)],
    ) -> Agent {
        let (socket, flag) = match protocol {
            Protocol::Oci => (
                socket.map_or_else(|| dir.join("agent.sock"), Path::to_owned),
                "--socket",
            ),
            Protocol::Lxc => (
                socket.map_or_else(|| dir.join("lxc.sock"), Path::to_owned),
                "--lxc-socket",
            ),
        };
        let audit = dir.join("audit.jsonl");
        let log = dir.join(log);
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(auditor_bin());
                c
            }
            None => Command::new(auditor_bin()),
        };
        let child = cmd
            .arg("agent")
            .arg(flag)
            .arg(&socket)
            .arg("--policy-dir")
            .arg(dir.join("policies"))
            .arg("--audit-log")
            .arg(&audit)
            .args(flags)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start auditor agent");
        Agent {
            child: Some(child),
            socket,
            audit,
            log,
        }
    }

    fn wait_socket(mut self) -> Agent {
        let a = &mut self;
        let start = Instant::now();
        while !a.socket.exists() {
            assert!(a.alive(), "auditor agent exited: {}", a.log_text());
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the agent's socket did not appear: {}",
                a.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send it `signal` (e.g. SIGSTOP to freeze it).
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Kill it (SIGKILL) as a crash would, leaving its socket file behind.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait up to `timeout` for it to exit (after a signal); its status, or `None` if it still
    /// runs (it is then stopped on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `done` holds for it (or after 15 s).
    pub fn wait_log(&self, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let l = self.log_text();
            if done(&l) || start.elapsed() > Duration::from_secs(15) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The decision records of its audit log so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        audit_records(&self.audit)
    }

    /// The records once `done` holds for them (the writer flushes when the broker idles), or
    /// after 15 s.
    pub fn wait_records(
        &self,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let r = self.records();
            if done(&r) || start.elapsed() > Duration::from_secs(15) {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop it (SIGTERM; SIGKILL after 5 s) and return its whole log.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: kill(2) on our own child, which we have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let start = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.log_text()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
