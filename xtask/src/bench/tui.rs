//! The live UI under load: broker throughput with `auditor tui` attached versus without, in the
//! same run, and the UI's key latency while the broker is busy.
//!
//! The workload (compiled here with gcc) waits a moment, then calls `getppid()` as fast as the
//! broker answers for a fixed time and prints its calls per second. It runs under
//! `auditor enforce --mode complain` with a policy that refuses `getppid`: complain mode turns
//! the refusal into a notification, so every call is a round trip to the broker, answered
//! CONTINUE (allowed, recorded as "would refuse") without any handler; every decision is
//! published on the session socket. The "attached" configuration runs `auditor tui` in a tmux
//! pane of 100×30 (a real terminal, real rendering), attached before the loop starts.
//! Repetitions alternate the two configurations. Then one more attached run measures key
//! latency: `?` sent with tmux send-keys, time until capture-pane shows the help, and a key to
//! close it (includes tmux's own round trips, so it is an upper bound).
//!
//! Targets (issue 5): attached throughput at least 90% of detached; keys answered within 100
//! ms. The benchmark reports misses; it fails only when a configuration could not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::util::{have, run as run_cmd};

const LOOP_C: &str = r#"
// notify_loop DELAY_MS SECONDS: sleep DELAY_MS, then getppid() for SECONDS; print calls/s.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    usleep(atoi(argv[1]) * 1000);
    double secs = atof(argv[2]), t0 = now(), t;
    long n = 0;
    do {
        for (int i = 0; i < 64; i++) syscall(SYS_getppid);
        n += 64;
        t = now();
    } while (t - t0 < secs);
    printf("%.0f\n", n / (t - t0));
    return 0;
}
"#;

const POLICY: &str = "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"getppid\"]\naction = \"errno\"\nerrno = \"EPERM\"\n";

/// Time before the loop starts (the UI attaches meanwhile).
const DELAY_MS: u64 = 1500;
/// Length of each timed loop.
const SECS: f64 = 3.0;

struct Setup {
    dir: tempfile::TempDir,
    bin: PathBuf,
    prog: PathBuf,
    policy: PathBuf,
    run_dir: PathBuf,
}

/// A private tmux server (100×30); killed on drop.
pub(super) struct Tmux {
    socket: String,
}

impl Tmux {
    pub(super) fn start(command: &str) -> anyhow::Result<Tmux> {
        // A fresh server each time: a killed one may still be going away.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            socket: format!("auditor-bench-tui-{}-{n}", std::process::id()),
        };
        run_cmd(t.cmd().args([
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            "-s",
            "ui",
            command,
        ]))?;
        Ok(t)
    }

    pub(super) fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    pub(super) fn screen(&self) -> String {
        self.cmd()
            .args(["capture-pane", "-p", "-t", "ui"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub(super) fn key(&self, k: &str) -> anyhow::Result<()> {
        run_cmd(self.cmd().args(["send-keys", "-t", "ui", k]))
    }

    pub(super) fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<Duration> {
        let t = Instant::now();
        while t.elapsed() < within {
            if pred(&self.screen()) {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").stderr(Stdio::null()).status();
    }
}

/// What one run measured.
struct RunResult {
    rate: f64,
    keys_ms: Vec<f64>,
    dropped: Option<String>,
}

fn one_run(s: &Setup, attach: bool, keys: bool) -> anyhow::Result<RunResult> {
    let secs = SECS.to_string();
    let delay = DELAY_MS.to_string();
    let child = Command::new(&s.bin)
        .args(["enforce", "--mode", "complain", "--policy"])
        .arg(&s.policy)
        .arg("--")
        .arg(&s.prog)
        .args([&delay, &secs])
        .env("AUDITOR_RUN_DIR", &s.run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting auditor enforce")?;
    let name = format!("enforce-{}", child.id());
    let mut keys_ms = Vec::new();
    let mut dropped = None;
    let tmux = if attach {
        let t = Tmux::start(&format!(
            "env AUDITOR_RUN_DIR={} {} tui --wait 5s --session {name}",
            s.run_dir.display(),
            s.bin.display()
        ))?;
        if t.wait_for(Duration::from_secs(5), |sc| {
            sc.contains(&name) && sc.contains("live")
        })
        .is_none()
        {
            bail!("the UI did not attach to {name}:\n{}", t.screen());
        }
        Some(t)
    } else {
        None
    };
    if let Some(t) = &tmux {
        // Into the loop, well past its start.
        std::thread::sleep(Duration::from_millis(DELAY_MS + 500));
        if keys {
            for _ in 0..5 {
                t.key("?")?;
                let open = t.wait_for(Duration::from_secs(2), |sc| {
                    sc.contains("any key closes this help")
                });
                t.key("x")?;
                let closed = t.wait_for(Duration::from_secs(2), |sc| {
                    !sc.contains("any key closes this help")
                });
                match (open, closed) {
                    (Some(a), Some(b)) => {
                        keys_ms.extend([a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3])
                    }
                    _ => bail!(
                        "the UI did not answer a key within 2 s under load:\n{}",
                        t.screen()
                    ),
                }
            }
        }
        let sc = t.screen();
        dropped = sc
            .lines()
            .next()
            .and_then(|l| l.find("dropped:").map(|i| l[i..].trim().to_owned()));
    }
    let out = child
        .wait_with_output()
        .context("waiting for auditor enforce")?;
    drop(tmux);
    if !out.status.success() {
        bail!(
            "auditor enforce failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rate: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| {
            format!(
                "workload output: {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
    Ok(RunResult {
        rate,
        keys_ms,
        dropped,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Run the benchmark with the auditor binary `bin`.
pub fn run_tui_load(bin: &Path, reps: usize) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the UI load benchmark needs root (enforce with notify, session sockets)");
    }
    for tool in ["gcc", "tmux"] {
        if !have(tool) {
            bail!("the UI load benchmark needs {tool} (cargo xtask setup)");
        }
    }
    let dir = tempfile::tempdir()?;
    let prog = super::broker::gcc(LOOP_C, "notify_loop", dir.path())?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY)?;
    let s = Setup {
        run_dir: dir.path().join("run"),
        bin: bin.to_owned(),
        prog,
        policy,
        dir,
    };
    let mut detached = Vec::new();
    let mut attached = Vec::new();
    let mut drops = Vec::new();
    for i in 0..reps {
        // Alternate which configuration goes first.
        let order = if i % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for attach in order {
            let r = one_run(&s, attach, false)?;
            if attach {
                attached.push(r.rate);
                drops.extend(r.dropped);
            } else {
                detached.push(r.rate);
            }
        }
    }
    let keyed = one_run(&s, true, true)?;
    let _ = &s.dir;

    let d = median(detached.clone());
    let a = median(attached.clone());
    let ratio = a / d;
    let keys = keyed.keys_ms.clone();
    let key_med = median(keys.clone());
    let key_max = keys.iter().copied().fold(0.0, f64::max);
    println!("\n== live UI under load: notified getppid (complain mode, CONTINUE), {reps} alternating runs × {SECS} s ==");
    println!(
        "cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "broker throughput, no UI attached:   {d:>9.0} calls/s  (runs: {})",
        fmt_list(&detached)
    );
    println!(
        "broker throughput, auditor tui open: {a:>9.0} calls/s  (runs: {})",
        fmt_list(&attached)
    );
    println!(
        "ratio attached/detached: {ratio:.3}  (target >= 0.90: {})",
        if ratio >= 0.9 { "met" } else { "MISSED" }
    );
    println!(
        "UI drop counters at the end of attached runs: {}",
        drops.join(" | ")
    );
    println!(
        "key latency under load (tmux send-keys -> screen changed, {} keys, includes tmux round trips): median {key_med:.0} ms, max {key_max:.0} ms, rate during the run {:.0} calls/s  (target <= 100 ms: {})",
        keys.len(),
        keyed.rate,
        if key_max <= 100.0 { "met" } else { "MISSED" }
    );
    Ok(())
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
