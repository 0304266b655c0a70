//! The handover benchmark: how long a notified call waits while `auditor agent` hands its
//! listeners to a successor (issue: under 50 ms at worst, with no failed call).
//!
//! The workload (xtask/bench/handover_workload.c) gives the agent its own listener the way runc
//! does and times getppid() round trips through it for a few seconds, at the broker
//! benchmark's rate (one thread, back to back). In each repetition a first run has no handover
//! (the baseline's worst wait); in a second, a successor agent takes over at 1.5 s and another
//! at 3 s. Reported: the worst wait (the pause), p50 and p99, failed calls, and how long each
//! takeover took from the successor's start to the old agent's exit; medians over the
//! repetitions. Misses are reported, not failed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::report::median;
use crate::util::phase;

const WORKLOAD: &str = include_str!("../../bench/handover_workload.c");
const POLICY: &str = "version = 1\ndefault_action = \"allow\"\n";
const SECONDS: f64 = 4.5;
const PAUSE_TARGET_MS: f64 = 50.0;

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    calls: f64,
    failures: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

fn parse(stdout: &str) -> anyhow::Result<Figures> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("handover_workload "))
        .with_context(|| format!("no result line in {stdout:?}"))?;
    let get = |k: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .with_context(|| format!("no {k} in {line:?}"))?
            .parse()
            .with_context(|| format!("bad {k} in {line:?}"))
    };
    Ok(Figures {
        calls: get("calls")?,
        failures: get("failures")?,
        p50_us: get("p50_us")?,
        p99_us: get("p99_us")?,
        max_us: get("max_us")?,
    })
}

/// An agent on `dir`'s socket and policies, logging to `log`.
fn agent(bin: &Path, dir: &Path, log: &str) -> anyhow::Result<Child> {
    Command::new(bin)
        .arg("agent")
        .arg("--socket")
        .arg(dir.join("agent.sock"))
        .arg("--policy-dir")
        .arg(dir.join("policies"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log))?)
        .spawn()
        .context("starting auditor agent")
}

fn wait_exit(c: &mut Child, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait()? {
            return Ok(st);
        }
        if t0.elapsed() > limit {
            let _ = c.kill();
            bail!("an agent did not exit within {limit:?} of its successor's start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop(mut c: Child) {
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    let _ = wait_exit(&mut c, Duration::from_secs(10));
}

/// One run of the workload against a fresh agent, with `handovers` successors taking over
/// along the way; its figures and each takeover's time (ms).
fn one(
    bin: &Path,
    workload: &Path,
    dir: &Path,
    rep: usize,
    handovers: usize,
) -> anyhow::Result<(Figures, Vec<f64>)> {
    let socket = dir.join("agent.sock");
    let mut current = agent(bin, dir, &format!("agent-{rep}-0.log"))?;
    let t0 = Instant::now();
    while !socket.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("the agent's socket did not appear");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = Command::new(workload)
        .arg(&socket)
        .arg(SECONDS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the workload")?;
    let mut takeovers = Vec::new();
    let gap = Duration::from_secs_f64(SECONDS / (handovers as f64 + 1.0));
    for h in 1..=handovers {
        std::thread::sleep(gap);
        let t = Instant::now();
        let next = agent(bin, dir, &format!("agent-{rep}-{h}.log"))?;
        let st = wait_exit(&mut current, Duration::from_secs(30))?;
        if !st.success() {
            bail!("an agent exited {st} after handing over");
        }
        takeovers.push(t.elapsed().as_secs_f64() * 1e3);
        current = next;
    }
    let o = run.wait_with_output().context("the workload")?;
    stop(current);
    if !o.status.success() {
        bail!(
            "the workload failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok((parse(&String::from_utf8_lossy(&o.stdout))?, takeovers))
}

/// Run it: `reps` repetitions of a run without and a run with two handovers.
pub fn run_handover(bin: &Path, reps: usize) -> anyhow::Result<()> {
    phase("bench: agent handover pause under load", || {
        let dir = tempfile::Builder::new()
            .prefix("auditor-bench-handover-")
            .tempdir()?;
        let workload = super::broker::gcc(WORKLOAD, "handover_workload", dir.path())?;
        std::fs::create_dir_all(dir.path().join("policies"))?;
        std::fs::write(dir.path().join("policies/bench.toml"), POLICY)?;
        let (mut base, mut with, mut takeovers) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            let (b, _) = one(bin, &workload, dir.path(), 2 * rep, 0)?;
            let (w, t) = one(bin, &workload, dir.path(), 2 * rep + 1, 2)?;
            eprintln!(
                "xtask: rep {}/{reps}  no handover: max {:.0} µs, {} failed;  two handovers: max {:.0} µs, {} failed, takeovers {:?} ms",
                rep + 1,
                b.max_us,
                b.failures,
                w.max_us,
                w.failures,
                t.iter().map(|t| t.round()).collect::<Vec<_>>()
            );
            base.push(b);
            with.push(w);
            takeovers.extend(t);
        }
        let m =
            |v: &[Figures], f: fn(&Figures) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
        let failures: f64 = with.iter().map(|f| f.failures).sum::<f64>()
            + base.iter().map(|f| f.failures).sum::<f64>();
        let worst = with.iter().map(|f| f.max_us).fold(0.0, f64::max) / 1e3;
        eprintln!("\nagent handover under load, medians of {reps} runs of {SECONDS} s each:");
        eprintln!(
            "  no handover    calls {:>8.0}  p50 {:>6.2} µs  p99 {:>7.2} µs  worst wait {:>7.2} ms",
            m(&base, |f| f.calls),
            m(&base, |f| f.p50_us),
            m(&base, |f| f.p99_us),
            m(&base, |f| f.max_us) / 1e3
        );
        eprintln!(
            "  two handovers  calls {:>8.0}  p50 {:>6.2} µs  p99 {:>7.2} µs  worst wait {:>7.2} ms (the pause; worst of all runs {worst:.2} ms, target < {PAUSE_TARGET_MS} ms: {})",
            m(&with, |f| f.calls),
            m(&with, |f| f.p50_us),
            m(&with, |f| f.p99_us),
            m(&with, |f| f.max_us) / 1e3,
            if worst < PAUSE_TARGET_MS { "met" } else { "MISSED" }
        );
        eprintln!(
            "  takeover (successor start to old agent's exit): median {:.1} ms;  failed calls in all runs: {failures} (target 0: {})",
            median(&takeovers),
            if failures == 0.0 { "met" } else { "MISSED" }
        );
        Ok(())
    })
}
