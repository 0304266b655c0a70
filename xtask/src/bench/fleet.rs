//! The fleet benchmark: `auditor agent` serving 64 containers at 1,000 notified calls a second
//! each, with and without `auditor tui` attached, and how the UI keeps up (issue 18).
//!
//! Each "container" is xtask/bench/fleet_workload.c: it hands the agent its own listener the way
//! runc does (an OCI seccomp agent message with its own container id) and, from a common start,
//! calls getppid() on a schedule of 1,000 a second for a few seconds; every call is a round
//! trip through the agent, decided by the `bench` policy (allowed by default: CONTINUE, no
//! handler), written to the audit log and published on the agent's live session. Reported:
//! the calls the fleet made per second (of the 64,000 offered; a call that misses its slot by
//! the end is not made), and the per-call p50/p99 (medians over the workloads).
//!
//! Repetitions alternate "no UI" and "auditor tui attached" (a real terminal: tmux, 100×30, the
//! Fleet view). Then one more attached run measures the UI itself, polling the pane every few
//! milliseconds: how often the screen changes (the redraw interval under load: the Fleet's counts
//! move every frame) and the key latency (`?` opens the help, any key closes it; tmux's round
//! trips included, so an upper bound). Targets: attached ≥ 0.9 × detached; redraw ≤ 100 ms;
//! keys ≤ 100 ms. Misses are reported, not failed.
//!
//! The noisy neighbour: a quiet container at 1,000 calls a second alone on a fresh agent, then
//! beside a hostile one calling back to back (target: its p99 within 2× of alone), under
//! auditor's agent with and without its audit log and under a minimal C agent; and, as the
//! bound the agent cannot go below, beside a neighbour that never reaches any agent
//! (xtask/bench/pipe_pair.c: two threads passing a byte through pipes back to back).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use super::report::median;
use super::tui::Tmux;
use crate::util::{have, phase};

const WORKLOAD: &str = include_str!("../../bench/fleet_workload.c");
/// The minimal C agent of the noisy-neighbour baseline.
const C_AGENT: &str = include_str!("../../bench/notify_agent.c");
const PIPE_PAIR: &str = include_str!("../../bench/pipe_pair.c");
const POLICY: &str =
    "# bench: allow everything the filter sends\nversion = 1\ndefault_action = \"allow\"\n";
const CONTAINERS: usize = 64;
const RATE: f64 = 1_000.0;
const SECONDS: f64 = 4.0;
/// From the first workload's start to the fleet's common start: all hand their listeners over,
/// and the UI attaches, meanwhile.
const LEAD: Duration = Duration::from_millis(2_500);

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    /// Calls of the whole fleet per second.
    rate: f64,
    failures: f64,
    p50_us: f64,
    p99_us: f64,
    /// The agent's peak RSS (VmHWM) with every listener it served, MiB.
    peak_rss_mib: f64,
}

/// The UI's own figures, from the measuring run.
#[derive(Debug, Default)]
struct UiFigures {
    /// Time between two screen changes, ms.
    gaps_ms: Vec<f64>,
    keys_ms: Vec<f64>,
    /// The Fleet's title and the header's drop counters, at the end.
    fleet: String,
    dropped: String,
}

struct Agent {
    child: Child,
}

impl Agent {
    fn start(bin: &Path, dir: &Path, rep: &str) -> anyhow::Result<Agent> {
        Agent::start_with(bin, dir, rep, true)
    }

    /// auditor's agent, with its audit log or without one.
    fn start_with(bin: &Path, dir: &Path, rep: &str, log: bool) -> anyhow::Result<Agent> {
        let socket = dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(bin);
        cmd.arg("agent")
            .arg("--socket")
            .arg(&socket)
            .arg("--policy-dir")
            .arg(dir.join("policies"));
        if log {
            cmd.arg("--audit-log")
                .arg(dir.join(format!("audit-{rep}.jsonl")));
        }
        let child = cmd
            .env("AUDITOR_RUN_DIR", dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("agent-{rep}.log")))?)
            .spawn()
            .context("starting auditor agent")?;
        let a = Agent { child };
        let t0 = Instant::now();
        while !socket.exists() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("the agent's socket did not appear (see agent-{rep}.log)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(a)
    }
}

impl Agent {
    /// The minimal C agent (xtask/bench/notify_agent.c) on `dir`/agent.sock.
    fn start_c(c_agent: &Path, dir: &Path) -> anyhow::Result<Agent> {
        let socket = dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(c_agent)
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the C agent")?;
        let a = Agent { child };
        let t0 = Instant::now();
        while !socket.exists() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("the C agent's socket did not appear");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(a)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn parse(stdout: &str) -> anyhow::Result<(f64, f64, f64, f64)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("fleet_workload "))
        .with_context(|| format!("no result line in {stdout:?}"))?;
    let get = |k: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .with_context(|| format!("no {k} in {line:?}"))?
            .parse()
            .with_context(|| format!("{k} in {line:?}"))
    };
    Ok((
        get("calls")?,
        get("failures")?,
        get("p50_us")?,
        get("p99_us")?,
    ))
}

/// Start one "container": `rate` notified calls a second for SECONDS from `start_ms`, its
/// listener handed to the agent at `socket` under container id `name`.
fn spawn(
    workload: &Path,
    socket: &Path,
    name: &str,
    start_ms: &str,
    rate: f64,
) -> anyhow::Result<Child> {
    Command::new(workload)
        .arg(socket)
        .arg(name)
        .arg(start_ms)
        .arg(SECONDS.to_string())
        .arg(rate.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a workload")
}

/// Wait for a "container" and take its (calls, failures, p50 µs, p99 µs).
fn finish(c: Child) -> anyhow::Result<(f64, f64, f64, f64)> {
    let o = c.wait_with_output().context("a workload")?;
    if !o.status.success() {
        bail!(
            "a workload failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&o.stdout))
}

/// One run: a fresh agent, the UI attached or not (and measured or not), the fleet.
fn one(
    bin: &Path,
    workload: &Path,
    dir: &Path,
    rep: &str,
    attach: bool,
    measure: bool,
) -> anyhow::Result<(Figures, Option<UiFigures>)> {
    let agent = Agent::start(bin, dir, rep)?;
    let name = format!("agent-{}", agent.child.id());
    let tmux = if attach {
        let t = Tmux::start(&format!(
            "env AUDITOR_RUN_DIR={} {} tui --wait 10s --session {name}",
            dir.join("run").display(),
            bin.display()
        ))?;
        if t.wait_for(Duration::from_secs(10), |sc| {
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
    let start = SystemTime::now() + LEAD;
    let start_ms = start.duration_since(UNIX_EPOCH)?.as_millis().to_string();
    let socket = dir.join("agent.sock");
    let mut runs = Vec::new();
    for i in 0..CONTAINERS {
        runs.push(spawn(
            workload,
            &socket,
            &format!("fleet-{rep}-{i:02}"),
            &start_ms,
            RATE,
        )?);
    }
    let mut ui = None;
    if let (Some(t), true) = (&tmux, measure) {
        // From the fleet's start: the screen's changes for most of the run, then keys.
        let wait = start.duration_since(SystemTime::now()).unwrap_or_default();
        std::thread::sleep(wait + Duration::from_millis(300));
        let mut f = UiFigures::default();
        let (mut last, mut at) = (t.screen(), Instant::now());
        let until = Instant::now() + Duration::from_secs_f64(SECONDS * 0.5);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(3));
            let sc = t.screen();
            if sc != last {
                f.gaps_ms.push(at.elapsed().as_secs_f64() * 1e3);
                (last, at) = (sc, Instant::now());
            }
        }
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
                (Some(a), Some(b)) => f
                    .keys_ms
                    .extend([a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3]),
                _ => bail!(
                    "the UI did not answer a key within 2 s under load:\n{}",
                    t.screen()
                ),
            }
        }
        let sc = t.screen();
        f.fleet = sc
            .lines()
            .find_map(|l| {
                l.find("Fleet (")
                    .map(|i| l[i..].split(')').next().unwrap_or("").to_owned() + ")")
            })
            .unwrap_or_else(|| "(no Fleet title on the screen)".into());
        f.dropped = sc
            .lines()
            .next()
            .and_then(|l| l.find("dropped:").map(|i| l[i..].trim().to_owned()))
            .unwrap_or_default();
        ui = Some(f);
    }
    let mut calls = 0.0;
    let mut failures = 0.0;
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for r in runs {
        let (c, f, p50, p99) = finish(r)?;
        calls += c;
        failures += f;
        p50s.push(p50);
        p99s.push(p99);
    }
    drop(tmux);
    // Read before it stops: its high-water mark with all the listeners it served.
    let peak_rss_mib = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0);
    drop(agent);
    Ok((
        Figures {
            rate: calls / SECONDS,
            failures,
            p50_us: median(&p50s),
            p99_us: median(&p99s),
            peak_rss_mib,
        },
        ui,
    ))
}

/// A quiet container's run: p50 µs, p99 µs, and the hostile one's calls/s.
type Quiet = (f64, f64, f64);

/// Who serves the noisy-neighbour pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served<'a> {
    /// auditor's agent with its audit log (as the fleet runs).
    Auditor,
    /// auditor's agent without an audit log.
    AuditorNoLog,
    /// The minimal C agent.
    C(&'a Path),
}

/// What runs beside the quiet container.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Beside<'a> {
    Nothing,
    /// A hostile container making notified calls back to back through the same agent.
    Hostile,
    /// xtask/bench/pipe_pair.c: two threads passing a byte through pipes back to back, which
    /// never reach the agent — what the scheduler alone costs the quiet container.
    PipePair(&'a Path),
}

/// A quiet container's (p50, p99) in µs over one run on a fresh agent, alone or beside
/// something busy; with the hostile container's calls/s (the pipe pair's round trips/s).
fn neighbour(
    bin: &Path,
    served: Served<'_>,
    workload: &Path,
    dir: &Path,
    rep: &str,
    beside: Beside<'_>,
) -> anyhow::Result<(f64, f64, f64)> {
    let agent = match served {
        Served::C(c) => Agent::start_c(c, dir)?,
        Served::Auditor => Agent::start_with(bin, dir, rep, true)?,
        Served::AuditorNoLog => Agent::start_with(bin, dir, rep, false)?,
    };
    let start = SystemTime::now() + LEAD;
    let start_ms = start.duration_since(UNIX_EPOCH)?.as_millis().to_string();
    let socket = dir.join("agent.sock");
    let quiet = spawn(workload, &socket, &format!("quiet-{rep}"), &start_ms, RATE)?;
    // Far more than a round trip allows: every call goes as soon as the last is answered.
    let hostile = match beside {
        Beside::Nothing => None,
        Beside::Hostile => Some(spawn(
            workload,
            &socket,
            &format!("hostile-{rep}"),
            &start_ms,
            250_000.0,
        )?),
        Beside::PipePair(pair) => Some(
            Command::new(pair)
                .arg(&start_ms)
                .arg(SECONDS.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting the pipe pair")?,
        ),
    };
    let (_, failures, p50, p99) = finish(quiet)?;
    let hostile_rate = match (hostile, beside) {
        (Some(h), Beside::PipePair(_)) => {
            let o = h.wait_with_output().context("the pipe pair")?;
            let out = String::from_utf8_lossy(&o.stdout);
            let n: f64 = out
                .trim()
                .strip_prefix("pipe_pair round_trips=")
                .and_then(|n| n.parse().ok())
                .with_context(|| {
                    format!(
                        "the pipe pair ({}): {out}{}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    )
                })?;
            n / SECONDS
        }
        (Some(h), _) => {
            let (calls, failed, _, _) = finish(h)?;
            if failed > 0.0 {
                bail!("the hostile container had {failed} of {calls} calls fail");
            }
            calls / SECONDS
        }
        (None, _) => 0.0,
    };
    drop(agent);
    if failures > 0.0 {
        bail!("the quiet container had {failures} failed calls");
    }
    Ok((p50, p99, hostile_rate))
}

/// Run the benchmark with the auditor binary `bin`, `reps` alternating pairs.
pub fn run_fleet(bin: &Path, reps: usize) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the fleet benchmark needs root (the agent's sockets, seccomp listeners)");
    }
    for tool in ["gcc", "tmux"] {
        if !have(tool) {
            bail!("the fleet benchmark needs {tool} (cargo xtask setup)");
        }
    }
    // 64 workloads, each with a listener fd and a socket, and the agent's share of both.
    let dir = tempfile::tempdir()?;
    let workload = super::broker::gcc(WORKLOAD, "fleet_workload", dir.path())?;
    let c_agent = super::broker::gcc(C_AGENT, "notify_agent", dir.path())?;
    let pipe_pair = super::broker::gcc(PIPE_PAIR, "pipe_pair", dir.path())?;
    std::fs::create_dir_all(dir.path().join("policies"))?;
    std::fs::write(dir.path().join("policies/bench.toml"), POLICY)?;
    let (mut detached, mut attached) = (Vec::new(), Vec::new());
    phase(
        "bench: the agent's fleet, with and without auditor tui",
        || {
            for i in 0..reps {
                let order = if i % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                };
                for attach in order {
                    let rep = format!("{i}{}", if attach { "a" } else { "d" });
                    let (f, _) = one(bin, &workload, dir.path(), &rep, attach, false)?;
                    if attach {
                        attached.push(f);
                    } else {
                        detached.push(f);
                    }
                }
            }
            Ok(())
        },
    )?;
    // (alone, flooded) per server: auditor with its log, auditor without, the C agent.
    let mut pairs: [(Vec<Quiet>, Vec<Quiet>); 3] = Default::default();
    // The quiet container under auditor's agent without a log beside the pipe pair.
    let mut beside_pair: Vec<Quiet> = Vec::new();
    phase(
        "bench: a quiet container beside a hostile one flooding the agent (auditor's with and without its audit log, a minimal C one)",
        || {
            for i in 0..reps {
                for flood in if i % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                } {
                    let servers = [
                        Served::Auditor,
                        Served::AuditorNoLog,
                        Served::C(c_agent.as_path()),
                    ];
                    for (k, served) in servers.into_iter().enumerate() {
                        let rep = format!("n{i}{}{k}", if flood { "f" } else { "q" });
                        let beside = if flood { Beside::Hostile } else { Beside::Nothing };
                        let r = neighbour(bin, served, &workload, dir.path(), &rep, beside)?;
                        if flood {
                            pairs[k].1.push(r);
                        } else {
                            pairs[k].0.push(r);
                        }
                    }
                    if flood {
                        let rep = format!("n{i}p");
                        let beside = Beside::PipePair(pipe_pair.as_path());
                        let served = Served::AuditorNoLog;
                        beside_pair.push(neighbour(bin, served, &workload, dir.path(), &rep, beside)?);
                    }
                }
            }
            Ok(())
        },
    )?;
    let [(alone, flooded), (alone_n, flooded_n), (alone_c, flooded_c)] = pairs;
    let (measured, ui) = phase("bench: the UI under the fleet's load", || {
        one(bin, &workload, dir.path(), "ui", true, true)
    })?;
    let ui = ui.context("the measuring run measured nothing")?;

    let offered = CONTAINERS as f64 * RATE;
    let med = |v: &[Figures], f: fn(&Figures) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let list = |v: &[Figures]| {
        v.iter()
            .map(|f| format!("{:.0}", f.rate))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (d, a) = (med(&detached, |f| f.rate), med(&attached, |f| f.rate));
    let ratio = a / d;
    println!(
        "\n== the agent's fleet: {CONTAINERS} containers × {RATE:.0} notified getppid/s ({offered:.0}/s offered), audit log on, {reps} alternating runs × {SECONDS} s =="
    );
    println!(
        "cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (label, v) in [
        ("no UI attached:     ", &detached),
        ("auditor tui open:   ", &attached),
    ] {
        println!(
            "{label} {:>7.0} calls/s ({:.3} of offered; runs: {})  per-call p50 {:.1} µs, p99 {:.1} µs (medians over the workloads); failed calls {:.0}",
            med(v, |f| f.rate),
            med(v, |f| f.rate) / offered,
            list(v),
            med(v, |f| f.p50_us),
            med(v, |f| f.p99_us),
            v.iter().map(|f| f.failures).sum::<f64>(),
        );
    }
    let m3 = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        median(&v.iter().map(f).collect::<Vec<_>>())
    };
    let (alone99, flooded99) = (m3(&alone, |r| r.1), m3(&flooded, |r| r.1));
    println!(
        "noisy neighbour: a container at {RATE:.0} calls/s alone on the agent p50 {:.1} µs, p99 {alone99:.1} µs; beside a hostile one calling back to back ({:.0} calls/s) p50 {:.1} µs, p99 {flooded99:.1} µs — p99 ratio {:.2}× (target ≤ 2×: {}; runs' p99 alone {}, flooded {})",
        m3(&alone, |r| r.0),
        m3(&flooded, |r| r.2),
        m3(&flooded, |r| r.0),
        flooded99 / alone99,
        if flooded99 <= 2.0 * alone99 { "met" } else { "MISSED" },
        alone.iter().map(|r| format!("{:.0}", r.1)).collect::<Vec<_>>().join(", "),
        flooded.iter().map(|r| format!("{:.0}", r.1)).collect::<Vec<_>>().join(", "),
    );
    for (label, a, f) in [
        ("auditor's agent without an audit log", &alone_n, &flooded_n),
        (
            "a minimal C agent (one thread per listener, receive -> CONTINUE, no log)",
            &alone_c,
            &flooded_c,
        ),
    ] {
        let (a99, f99) = (m3(a, |r| r.1), m3(f, |r| r.1));
        println!(
            "noisy neighbour under {label}: alone p50 {:.1} µs, p99 {a99:.1} µs; flooded ({:.0} calls/s) p50 {:.1} µs, p99 {f99:.1} µs — p99 ratio {:.2}× (with auditor's audit log {:.2}×; runs' p99 alone {}, flooded {})",
            m3(a, |r| r.0),
            m3(f, |r| r.2),
            m3(f, |r| r.0),
            f99 / a99,
            flooded99 / alone99,
            a.iter().map(|r| format!("{:.0}", r.1)).collect::<Vec<_>>().join(", "),
            f.iter().map(|r| format!("{:.0}", r.1)).collect::<Vec<_>>().join(", "),
        );
    }
    let (a99, p99) = (m3(&alone_n, |r| r.1), m3(&beside_pair, |r| r.1));
    println!(
        "noisy neighbour's bound, what the scheduler alone costs: the quiet container under auditor's agent without a log beside two threads passing a byte through pipes back to back ({:.0} round trips/s; no seccomp, never reaching the agent): p50 {:.1} µs, p99 {p99:.1} µs — {:.2}× its p99 alone (runs' p99 {})",
        m3(&beside_pair, |r| r.2),
        m3(&beside_pair, |r| r.0),
        p99 / a99,
        beside_pair.iter().map(|r| format!("{:.0}", r.1)).collect::<Vec<_>>().join(", "),
    );
    let rss: Vec<f64> = detached
        .iter()
        .chain(&attached)
        .map(|f| f.peak_rss_mib)
        .collect();
    println!(
        "agent peak RSS (VmHWM) after serving {CONTAINERS} listeners: median {:.1} MiB (runs: {})",
        median(&rss),
        rss.iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "ratio attached/detached: {ratio:.3}  (target >= 0.90: {})",
        if ratio >= 0.9 { "met" } else { "MISSED" }
    );
    let mut gaps = ui.gaps_ms.clone();
    gaps.sort_by(f64::total_cmp);
    let p95 = gaps
        .get(((gaps.len() as f64) * 0.95) as usize)
        .copied()
        .unwrap_or(f64::NAN);
    let max_gap = gaps.last().copied().unwrap_or(f64::NAN);
    println!(
        "UI under this load ({}, {} at the end; the measuring run made {:.0} calls/s): screen changed every {:.0} ms (median; p95 {p95:.0} ms, max {max_gap:.0} ms, {} changes; target <= 100 ms: {})",
        ui.fleet,
        if ui.dropped.is_empty() { "no drop counter" } else { &ui.dropped },
        measured.rate,
        median(&gaps),
        gaps.len(),
        if max_gap <= 100.0 { "met" } else { "MISSED" }
    );
    let key_max = ui.keys_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "key latency under this load (tmux send-keys -> screen changed, {} keys, tmux round trips included): median {:.0} ms, max {key_max:.0} ms  (target <= 100 ms: {})",
        ui.keys_ms.len(),
        median(&ui.keys_ms),
        if key_max <= 100.0 { "met" } else { "MISSED" }
    );
    if ui.gaps_ms.is_empty() {
        bail!("the UI's screen never changed while {CONTAINERS} containers made calls");
    }
    Ok(())
}
