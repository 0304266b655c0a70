//! `cargo xtask bench`: what auditor costs a syscall, side by side with the floor and bpftrace.
//!
//! A tight `getppid()` loop (xtask/bench/getppid_loop.c, compiled here with gcc) times itself
//! under five configurations:
//! - bare;
//! - floor: empty programs on `sys_enter`/`sys_exit` (`auditor bench-floor`), what any tracer
//!   on those hooks must add;
//! - untracked: `auditor learn --pid` of an idle `sleep`, so the loop is not tracked — what every
//!   other process on the host pays while auditor learns;
//! - tracked: `auditor learn -- getppid_loop`;
//! - bpftrace counting syscalls per id with a pid filter.
//!
//! Every loop first sleeps [`SETTLE`], so that what is measured is the tracer's steady state,
//! not its start-up.
//!
//! Repetitions are interleaved across configurations (and the order rotates) so that drift on a
//! noisy VM spreads over all of them; each configuration reports its median. Then a long tracked
//! run checks that nothing is lost at more than a million syscalls per second.
//!
//! The benchmark reports target misses but fails only when a configuration could not run, a
//! count is wrong, or an observation was lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};

use crate::util::{have, phase, run as run_cmd};

mod broker;
mod emulate;
mod filter;
mod fleet;
mod handover;
mod large;
mod proc;
mod report;
mod scale;
mod startup;
mod tui;

pub use broker::run as run_broker;
pub use emulate::run_emulate;
pub use filter::run_filter_cost;
pub use fleet::run_fleet;
pub use handover::run_handover;
pub use large::run_large;
use proc::Proc;
use report::{load_average, report, Summary};
pub use scale::run_scale;
pub use startup::run_startup;
pub use tui::run_tui_load;

/// The workload, compiled at bench time.
const LOOP_SOURCE: &str = include_str!("../../bench/getppid_loop.c");

/// How long a background tracer may take to attach its programs.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long every loop sleeps before its warm-up, whatever the configuration: a tracer's
/// start-up work after its programs are attached (auditor learn's runs ~0.4 s on a 2-vCPU VM:
/// measured with no settling, untracked 330.8 ns per call against 294.0 once settled, the
/// floor 286.4) is start-up, which `bench-startup` measures, not what tracing costs a
/// syscall. Given to the loop itself (not slept here) so that the loops a tracer launches —
/// `auditor learn -- LOOP`, `bpftrace -c LOOP` — wait the same.
const SETTLE: Duration = Duration::from_millis(1000);
/// How long a stopped process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub struct BenchArgs {
    /// getppid() calls in each timed loop.
    #[arg(long, default_value_t = 2_000_000)]
    calls: u64,
    /// Untimed getppid() calls before each timed loop (warm-up).
    #[arg(long, default_value_t = 200_000)]
    warmup: u64,
    /// Repetitions of each configuration (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Calls in the zero-loss run [default: enough for --loss-secs at the tracked rate, at
    /// least 5 M].
    #[arg(long)]
    loss_calls: Option<u64>,
    /// Minimum duration of the zero-loss run, in seconds (when --loss-calls is not given).
    #[arg(long, default_value_t = 2.5)]
    loss_secs: f64,
}

/// The configurations, in table order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Bare,
    Floor,
    Untracked,
    Tracked,
    Bpftrace,
}

impl Config {
    const ALL: [Config; 5] = [
        Config::Bare,
        Config::Floor,
        Config::Untracked,
        Config::Tracked,
        Config::Bpftrace,
    ];

    fn label(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::Floor => "floor (empty programs)",
            Config::Untracked => "auditor untracked",
            Config::Tracked => "auditor tracked",
            Config::Bpftrace => "bpftrace (pid filter)",
        }
    }

    /// Position in [`Config::ALL`] (declaration order).
    fn index(self) -> usize {
        self as usize
    }

    /// A short name for files in the work directory.
    fn slug(self) -> &'static str {
        match self {
            Config::Bare => "bare",
            Config::Floor => "floor",
            Config::Untracked => "untracked",
            Config::Tracked => "tracked",
            Config::Bpftrace => "bpftrace",
        }
    }
}

pub fn run(bin: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(args.reps > 0, "--reps must be at least 1");
    ensure!(args.loss_secs > 0.0, "--loss-secs must be positive");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    ensure!(root, "the benchmark loads eBPF programs: run it as root");
    ensure!(
        bin.is_file(),
        "{}: auditor binary not found (build it first)",
        bin.display()
    );
    for tool in ["gcc", "bpftrace"] {
        ensure!(
            have(tool),
            "{tool} not found on PATH (`cargo xtask setup` installs it)"
        );
    }
    ensure_tracefs()?;

    let work = tempfile::Builder::new()
        .prefix("auditor-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let loop_bin = phase("bench: compile the workload", || compile_loop(work.path()))?;
    let bench = Bench {
        auditor: bin.to_path_buf(),
        loop_bin,
        work: work.path().to_path_buf(),
    };

    let load_before = load_average();
    let mut samples: Vec<Vec<Timing>> = vec![Vec::new(); Config::ALL.len()];
    let mut peak_rss_kib = 0;
    phase("bench: interleaved repetitions", || {
        for rep in 0..args.reps {
            for i in 0..Config::ALL.len() {
                // Rotate the order so that no configuration always runs first or last.
                let config = Config::ALL[(i + rep) % Config::ALL.len()];
                let m = bench
                    .measure(config, args.calls, args.warmup)
                    .with_context(|| format!("configuration `{}` could not run", config.label()))?;
                if let Some(rss) = m.rss_kib {
                    peak_rss_kib = peak_rss_kib.max(rss);
                }
                eprintln!(
                    "xtask: rep {}/{}  {:<24} {:>9.1} ns/call (cpu {:.1})",
                    rep + 1,
                    args.reps,
                    config.label(),
                    m.time.wall,
                    m.time.cpu
                );
                samples[config.index()].push(m.time);
            }
        }
        Ok(())
    })?;
    let load_after = load_average();
    let wall = Summary::new(&samples, |t| t.wall);
    let cpu = Summary::new(&samples, |t| t.cpu);

    let tracked_ns = wall.median[Config::Tracked.index()];
    let loss_calls = args.loss_calls.unwrap_or_else(|| {
        let for_duration = (args.loss_secs * 1e9 / tracked_ns.max(1.0)).ceil() as u64;
        // Round up to a whole 100k for a readable figure.
        for_duration.max(5_000_000).div_ceil(100_000) * 100_000
    });
    let loss = phase("bench: zero loss at full rate", || {
        bench.zero_loss(loss_calls)
    })?;
    if let Some(rss) = loss.rss_kib {
        peak_rss_kib = peak_rss_kib.max(rss);
    }

    print!(
        "{}",
        report(
            args,
            &wall,
            &cpu,
            peak_rss_kib,
            &loss,
            [load_before, load_after]
        )
    );
    if !loss.ok() {
        bail!(
            "observations were lost or miscounted: getppid counted {} of {}, loss.total {}",
            loss.counted,
            loss.expected,
            loss.lost
        );
    }
    Ok(())
}

/// Classic tracepoints (bpftrace's `tracepoint:raw_syscalls:*`) need tracefs.
fn ensure_tracefs() -> anyhow::Result<()> {
    let events = Path::new("/sys/kernel/tracing/events/raw_syscalls");
    if !events.exists() {
        run_cmd(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
            .context("bpftrace needs tracefs at /sys/kernel/tracing")?;
    }
    ensure!(
        events.exists(),
        "{} is missing after mounting tracefs",
        events.display()
    );
    Ok(())
}

fn compile_loop(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("getppid_loop.c");
    let out = dir.join("getppid_loop");
    std::fs::write(&src, LOOP_SOURCE).with_context(|| format!("cannot write {}", src.display()))?;
    run_cmd(
        Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-o"])
            .arg(&out)
            .arg(&src),
    )?;
    Ok(out)
}

/// ns per getppid() call.
#[derive(Clone, Copy)]
struct Timing {
    /// CLOCK_MONOTONIC: what the workload experienced.
    wall: f64,
    /// The loop thread's CPU time: leaves out waiting for a CPU, so it is steadier when other
    /// work shares this 2-core machine.
    cpu: f64,
}

/// One measurement.
struct Measurement {
    time: Timing,
    /// Peak RSS of `auditor learn` when it ran the loop.
    rss_kib: Option<u64>,
}

/// The result of the zero-loss run.
struct Loss {
    expected: u64,
    counted: u64,
    lost: u64,
    ns_per_call: f64,
    rss_kib: Option<u64>,
}

impl Loss {
    fn ok(&self) -> bool {
        self.counted == self.expected && self.lost == 0
    }
    fn calls_per_sec(&self) -> f64 {
        1e9 / self.ns_per_call
    }
}

struct Bench {
    auditor: PathBuf,
    loop_bin: PathBuf,
    work: PathBuf,
}

impl Bench {
    fn loop_cmd(&self, calls: u64, warmup: u64) -> Command {
        let mut cmd = Command::new(&self.loop_bin);
        cmd.arg(calls.to_string())
            .arg(warmup.to_string())
            .arg(SETTLE.as_millis().to_string());
        cmd
    }

    fn file(&self, config: Config, ext: &str) -> PathBuf {
        self.work.join(format!("{}.{ext}", config.slug()))
    }

    /// How long a loop may take, tracer start-up included.
    fn loop_timeout(calls: u64) -> Duration {
        Duration::from_secs(120) + Duration::from_nanos(calls.saturating_mul(20_000))
    }

    fn measure(&self, config: Config, calls: u64, warmup: u64) -> anyhow::Result<Measurement> {
        let timeout = Self::loop_timeout(calls);
        let total = calls + warmup;
        match config {
            Config::Bare => {
                let out = Proc::spawn(
                    "getppid_loop",
                    self.loop_cmd(calls, warmup),
                    self.file(config, "stderr"),
                )?
                .finish(timeout)?;
                let r = LoopOutput::parse(&out.stdout, calls, warmup)?;
                Ok(Measurement {
                    time: r.time,
                    rss_kib: None,
                })
            }
            Config::Floor => {
                let mut cmd = Command::new(&self.auditor);
                cmd.arg("bench-floor");
                let mut floor =
                    Proc::spawn("auditor bench-floor", cmd, self.file(config, "stderr"))?;
                floor.wait_attached()?;
                let time = self.run_loop_beside(config, calls, warmup)?;
                floor.stop(libc::SIGINT)?.success()?;
                Ok(Measurement {
                    time,
                    rss_kib: None,
                })
            }
            Config::Untracked => {
                let mut cmd = Command::new("sleep");
                cmd.arg("1000");
                let sleeper = Proc::spawn("sleep", cmd, self.file(config, "sleep.stderr"))?;
                let obs = self.file(config, "json");
                let mut cmd = Command::new(&self.auditor);
                cmd.args(["learn", "--no-progress", "-o"])
                    .arg(&obs)
                    .arg("--pid")
                    .arg(sleeper.pid().to_string());
                let mut learn =
                    Proc::spawn("auditor learn --pid", cmd, self.file(config, "stderr"))?;
                learn.wait_attached()?;
                let time = self.run_loop_beside(config, calls, warmup)?;
                // Interrupted, learn exits with 128 + SIGINT, having written its output.
                let stopped = learn.stop(libc::SIGINT)?;
                ensure!(
                    obs.is_file(),
                    "auditor learn --pid wrote no observation file ({})",
                    stopped.stderr_tail
                );
                drop(sleeper);
                Ok(Measurement {
                    time,
                    rss_kib: None,
                })
            }
            Config::Tracked => {
                let (r, obs, rss) = self.tracked(config, calls, warmup, timeout)?;
                ensure!(
                    obs.getppid == total && obs.lost == 0,
                    "auditor learn counted {} getppid calls of {total}, lost {}",
                    obs.getppid,
                    obs.lost
                );
                Ok(Measurement {
                    time: r.time,
                    rss_kib: Some(rss),
                })
            }
            Config::Bpftrace => {
                let bt_out = self.file(config, "out");
                let loop_cmdline = format!(
                    "{} {calls} {warmup} {}",
                    self.loop_bin.display(),
                    SETTLE.as_millis()
                );
                let mut cmd = Command::new("bpftrace");
                // bpftrace's own output (its attach message and the map) goes to a file, so the
                // loop's stdout is the only thing on ours.
                cmd.arg("-o").arg(&bt_out).args([
                    "-e",
                    "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }",
                    "-c",
                    &loop_cmdline,
                ]);
                // bpftrace -c holds the child until the probes are attached.
                let out =
                    Proc::spawn("bpftrace", cmd, self.file(config, "stderr"))?.finish(timeout)?;
                let r = LoopOutput::parse(&out.stdout, calls, warmup)?;
                let counted = bpftrace_count(&bt_out, libc::SYS_getppid)?;
                ensure!(
                    counted == total,
                    "bpftrace counted {counted} getppid calls of {total}: was it attached?"
                );
                Ok(Measurement {
                    time: r.time,
                    rss_kib: None,
                })
            }
        }
    }

    /// The loop while a tracer runs in the background.
    fn run_loop_beside(&self, config: Config, calls: u64, warmup: u64) -> anyhow::Result<Timing> {
        let out = Proc::spawn(
            "getppid_loop",
            self.loop_cmd(calls, warmup),
            self.file(config, "loop.stderr"),
        )?
        .finish(Self::loop_timeout(calls))?;
        Ok(LoopOutput::parse(&out.stdout, calls, warmup)?.time)
    }

    /// `auditor learn -- getppid_loop`: the loop's output, what auditor observed, and auditor's
    /// peak RSS.
    fn tracked(
        &self,
        config: Config,
        calls: u64,
        warmup: u64,
        timeout: Duration,
    ) -> anyhow::Result<(LoopOutput, Observed, u64)> {
        let obs_path = self.file(config, "json");
        let mut cmd = Command::new(&self.auditor);
        cmd.args(["learn", "--no-progress", "-o"])
            .arg(&obs_path)
            .arg("--")
            .arg(&self.loop_bin);
        cmd.arg(calls.to_string())
            .arg(warmup.to_string())
            .arg(SETTLE.as_millis().to_string());
        let out = Proc::spawn(
            "auditor learn -- getppid_loop",
            cmd,
            self.file(config, "stderr"),
        )?
        .finish(timeout)?;
        let r = LoopOutput::parse(&out.stdout, calls, warmup)?;
        let obs = Observed::read(&obs_path)?;
        // ru_maxrss is in KiB on Linux. wait4 reports the larger of auditor's own peak and that
        // of the children it reaped; the loop's is a few hundred KiB, so this is auditor's.
        let rss = u64::try_from(out.rusage.ru_maxrss).unwrap_or(0);
        Ok((r, obs, rss))
    }

    fn zero_loss(&self, calls: u64) -> anyhow::Result<Loss> {
        let timeout = Self::loop_timeout(calls);
        let (r, obs, rss) = self.tracked(Config::Tracked, calls, 0, timeout)?;
        Ok(Loss {
            expected: r.total,
            counted: obs.getppid,
            lost: obs.lost,
            ns_per_call: r.time.wall,
            rss_kib: Some(rss),
        })
    }
}

/// What the loop printed.
struct LoopOutput {
    total: u64,
    time: Timing,
}

impl LoopOutput {
    /// Finds the loop's line (`getppid_loop calls=… warmup=… total=… ns_per_call=… cpu_ns_per_call=…`) among
    /// whatever else a tracer printed, and checks it ran what was asked.
    fn parse(stdout: &str, calls: u64, warmup: u64) -> anyhow::Result<LoopOutput> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("getppid_loop "))
            .with_context(|| {
                format!("the workload printed no result; its output was: {stdout:?}")
            })?;
        let field = |key: &str| -> anyhow::Result<&str> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .with_context(|| format!("no `{key}=` in the workload's output {line:?}"))
        };
        let got_calls: u64 = field("calls")?
            .parse()
            .context("bad calls= in the workload's output")?;
        let got_warmup: u64 = field("warmup")?
            .parse()
            .context("bad warmup= in the workload's output")?;
        let total: u64 = field("total")?
            .parse()
            .context("bad total= in the workload's output")?;
        let wall: f64 = field("ns_per_call")?
            .parse()
            .context("bad ns_per_call= in the workload's output")?;
        let cpu: f64 = field("cpu_ns_per_call")?
            .parse()
            .context("bad cpu_ns_per_call= in the workload's output")?;
        ensure!(
            got_calls == calls && got_warmup == warmup && total == calls + warmup,
            "the workload ran {got_calls}+{got_warmup} calls ({total}), not {calls}+{warmup}"
        );
        ensure!(
            wall.is_finite() && wall > 0.0 && cpu.is_finite() && cpu > 0.0,
            "the workload reported {wall} ns/call ({cpu} ns/call of CPU time)"
        );
        Ok(LoopOutput {
            total,
            time: Timing { wall, cpu },
        })
    }
}

/// What an observation file says about the loop.
struct Observed {
    getppid: u64,
    lost: u64,
}

impl Observed {
    fn read(path: &Path) -> anyhow::Result<Observed> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("auditor wrote no observation {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let syscalls = v["syscalls"]
            .as_array()
            .with_context(|| format!("{}: no `syscalls` array", path.display()))?;
        let getppid = syscalls
            .iter()
            .filter(|s| s["name"] == "getppid")
            .map(|s| {
                s["count"]
                    .as_u64()
                    .context("a getppid entry without a numeric `count`")
            })
            .sum::<anyhow::Result<u64>>()
            .with_context(|| format!("{}", path.display()))?;
        let lost = v["loss"]["total"]
            .as_u64()
            .with_context(|| format!("{}: no numeric `loss.total`", path.display()))?;
        Ok(Observed { getppid, lost })
    }
}

/// The count bpftrace printed for syscall `nr` (`@[NR]: COUNT`).
fn bpftrace_count(out: &Path, nr: libc::c_long) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(out)
        .with_context(|| format!("bpftrace wrote no output {}", out.display()))?;
    let key = format!("@[{nr}]:");
    let Some(n) = text.lines().find_map(|l| l.strip_prefix(&key)) else {
        return Ok(0);
    };
    n.trim()
        .parse()
        .with_context(|| format!("bad bpftrace count line {n:?}"))
}
