//! `auditor enforce` stops its workload on SIGINT and SIGTERM: it forwards the signal, and
//! kills the workload after `--stop-timeout` (or at a second signal) when the workload does
//! not end — whatever signal dispositions auditor itself was started with.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use integration::{auditor_bin, require_root, Scratch};

/// A policy that allows everything but getppid (so that a filter is really installed).
fn policy(dir: &Path) -> PathBuf {
    let p = dir.join("policy.toml");
    std::fs::write(
        &p,
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"getppid\"]\naction = \"errno\"\nerrno = \"EPERM\"\n",
    )
    .expect("policy");
    p
}

/// `auditor enforce ARGS…`, started as a command run with `&` by a non-interactive shell
/// would be: SIGINT and SIGQUIT ignored. Killed on drop.
struct Enforce {
    child: Child,
    stderr: PathBuf,
}

impl Enforce {
    fn start(dir: &Path, args: &[&str], ignore_sigint: bool) -> Enforce {
        let stderr = dir.join("stderr");
        let mut cmd = Command::new(auditor_bin());
        cmd.arg("enforce")
            .args(args)
            .env("AUDITOR_RUN_DIR", dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if ignore_sigint {
            // SAFETY: signal() is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    libc::signal(libc::SIGQUIT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("start auditor enforce");
        Enforce { child, stderr }
    }

    /// Wait until the workload runs under auditor (a child process of it exists).
    fn wait_started(&mut self) {
        let t = Instant::now();
        let children = format!("/proc/{0}/task/{0}/children", self.child.id());
        loop {
            let kids = std::fs::read_to_string(&children).unwrap_or_default();
            if !kids.trim().is_empty() {
                // Give the workload a moment to get past its start.
                std::thread::sleep(Duration::from_millis(500));
                return;
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("enforce ended at start ({s}):\n{}", self.stderr());
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the workload did not start:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill with our own child's pid (not yet reaped) and a signal number.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// The exit status, if enforce ends within `limit`.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Enforce {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn enforce_stops_on_sigint_when_started_with_sigint_ignored() {
    // Seen as "enforce did not stop on SIGINT" in full test runs started in the background:
    // the workload was forked before auditor's handler replaced the inherited SIG_IGN.
    let scratch = Scratch::new("sig-ignored");
    let dir = scratch.dir().to_path_buf();
    let p = policy(&dir);
    let mut e = Enforce::start(
        &dir,
        &[
            "--policy",
            &p.display().to_string(),
            "--",
            "sh",
            "-c",
            "while :; do sleep 0.2; done",
        ],
        true,
    );
    e.wait_started();
    e.signal(libc::SIGINT);
    let status = e.wait(Duration::from_secs(15));
    let status =
        status.unwrap_or_else(|| panic!("enforce did not stop on SIGINT:\n{}", e.stderr()));
    // The shell died of the forwarded SIGINT (128 + 2), not of the SIGKILL that ends the
    // default 5 s grace period.
    assert_eq!(status.code(), Some(130), "{status:?}\n{}", e.stderr());
    assert!(!e.stderr().contains("killing"), "{}", e.stderr());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enforce_kills_a_workload_that_ignores_the_signal_after_the_stop_timeout() {
    let scratch = Scratch::new("sig-trapped");
    let dir = scratch.dir().to_path_buf();
    let p = policy(&dir);
    let mut e = Enforce::start(
        &dir,
        &[
            "--policy",
            &p.display().to_string(),
            "--stop-timeout",
            "1s",
            "--",
            "sh",
            "-c",
            "trap '' INT TERM; while :; do sleep 0.2; done",
        ],
        false,
    );
    e.wait_started();
    let t = Instant::now();
    e.signal(libc::SIGTERM);
    let status = e.wait(Duration::from_secs(20));
    let status =
        status.unwrap_or_else(|| panic!("enforce did not stop on SIGTERM:\n{}", e.stderr()));
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "killed before the grace period ended"
    );
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "{status:?}\n{}",
        e.stderr()
    );
    let err = e.stderr();
    assert!(err.contains("did not end within 1s of SIGTERM"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_sigint_kills_at_once() {
    let scratch = Scratch::new("sig-twice");
    let dir = scratch.dir().to_path_buf();
    let p = policy(&dir);
    let mut e = Enforce::start(
        &dir,
        &[
            "--policy",
            &p.display().to_string(),
            "--stop-timeout",
            "60s",
            "--",
            "sh",
            "-c",
            "trap '' INT TERM; while :; do sleep 0.2; done",
        ],
        false,
    );
    e.wait_started();
    e.signal(libc::SIGINT);
    assert!(
        e.wait(Duration::from_millis(700)).is_none(),
        "the trapping workload ended on SIGINT"
    );
    e.signal(libc::SIGINT);
    let status = e.wait(Duration::from_secs(15));
    let status = status
        .unwrap_or_else(|| panic!("enforce did not stop on a second SIGINT:\n{}", e.stderr()));
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "{status:?}\n{}",
        e.stderr()
    );
    assert!(e.stderr().contains("SIGINT again"), "{}", e.stderr());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enforce_userns_stops_its_init_which_only_gets_signals_it_handles() {
    if !require_root("enforce_userns_stops_its_init_which_only_gets_signals_it_handles") {
        return;
    }
    // The workload is pid 1 of its pid namespace: a SIGINT it has no handler for is dropped
    // (sleep has none; a shell's -c mode has one).
    let scratch = Scratch::new("sig-userns");
    let dir = scratch.dir().to_path_buf();
    let p = policy(&dir);
    let mut e = Enforce::start(
        &dir,
        &[
            "--policy",
            &p.display().to_string(),
            "--userns",
            "--stop-timeout",
            "1s",
            "--",
            "sleep",
            "1000",
        ],
        false,
    );
    e.wait_started();
    e.signal(libc::SIGINT);
    let status = e.wait(Duration::from_secs(20));
    let status = status
        .unwrap_or_else(|| panic!("enforce --userns did not stop on SIGINT:\n{}", e.stderr()));
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "{status:?}\n{}",
        e.stderr()
    );
    assert!(
        e.stderr().contains("did not end within 1s of SIGINT"),
        "{}",
        e.stderr()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
