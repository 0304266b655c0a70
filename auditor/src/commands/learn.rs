//! `auditor learn`: observe a workload and write an observation file.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use auditor_common::{counters, hash::exe_id, slot, CgroupFilter};
use clap::builder::TypedValueParser as _;
use clap::Args;
use nix::sys::signal::Signal;
use tokio::io::unix::AsyncFd;

use crate::bpf::{Event, EventReader, Observer, ObserverConfig};
use crate::daemon::container;
use crate::launch;
use crate::observe::{self, build, model};
use crate::session::protocol::Progress;
use crate::session::publisher::SessionDetails;
use crate::session::{Event as LiveEvent, Publisher, SessionKind, SessionSender};

/// `auditor learn [-o FILE] [--duration DUR] (-- CMD [ARGS...] | --pid PID | --cgroup DIR)`
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Where to write the observation file (JSON, written atomically).
    #[arg(short, long, default_value = "observation.json")]
    pub output: PathBuf,
    /// Stop learning after this long (e.g. 30s, 5m); a command started by auditor is then
    /// terminated.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Print the observation as JSON on stdout instead of the summary table.
    #[arg(long)]
    pub json: bool,
    /// Do not show the live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Learn a running process and every descendant it creates from now on.
    #[arg(long, conflicts_with = "cgroup")]
    pub pid: Option<u32>,
    /// Learn a running container: an OCI id (its init pid from `RUNTIME state ID`),
    /// `docker://NAME|ID` or `podman://NAME|ID` (through the engine's `inspect`), or
    /// `containerd://ID` (Kubernetes' containerID form). Scoped by its own cgroup v2 where it
    /// has one, else by its processes and their descendants.
    #[arg(long, value_name = "ID|ENGINE://NAME", conflicts_with_all = ["pid", "cgroup"])]
    pub container: Option<String>,
    /// With --container: the runtime that runs it.
    #[arg(
        long,
        default_value = "runc",
        requires = "container",
        value_parser = clap::builder::PossibleValuesParser::new(["runc", "crun"])
            .map(|s| if s == "crun" { crate::policy::generate::Runtime::Crun } else { crate::policy::generate::Runtime::Runc })
    )]
    pub runtime: crate::policy::generate::Runtime,
    /// With --container: the runtime's state directory (its --root); for `containerd://`,
    /// the runc root of a containerd whose state is not under /run/containerd (k3s, Docker's
    /// own containerd with another exec root), searched first.
    #[arg(long, value_name = "DIR", requires = "container")]
    pub root: Option<PathBuf>,
    /// Learn every task in a cgroup v2 directory and its child cgroups, including tasks that
    /// join later.
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Run the command as an unprivileged container, as `auditor enforce --userns` does (root
    /// inside mapped to HOST_UID:COUNT, default 100000:65536), so that what is learned is what
    /// will be enforced.
    #[arg(long, value_name = "RANGE", num_args = 0..=1, require_equals = true, default_missing_value = "100000:65536", conflicts_with_all = ["pid", "cgroup", "container"])]
    pub userns: Option<String>,
    /// With --userns: the container's root file system (must contain a `proc` directory).
    #[arg(long, value_name = "DIR", requires = "userns")]
    pub rootfs: Option<PathBuf>,
    /// Run the command under this policy with its notify handlers active, refusals recorded but
    /// not enforced (complain mode): a second round sees what the workload does after a granted
    /// mknod or mount. `generate` then merges the rounds.
    #[arg(long, value_name = "POLICY", conflicts_with_all = ["pid", "cgroup", "container"])]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub ui: crate::commands::shared::LiveUiArgs,
    /// The command to start and learn, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// What to learn, validated.
enum Target {
    Command(launch::Command),
    Pid(u32),
    Cgroup { path: PathBuf, filter: CgroupFilter },
}

/// A running container (`--container`): what the observation names, and whether its
/// existing descendants are tracked too (pid scope).
struct ContainerTarget {
    model: model::Target,
}

fn parse_target(args: &LearnArgs) -> anyhow::Result<(Target, Option<ContainerTarget>)> {
    let given = usize::from(!args.command.is_empty())
        + usize::from(args.pid.is_some())
        + usize::from(args.cgroup.is_some())
        + usize::from(args.container.is_some());
    if given != 1 {
        bail!("give exactly one workload: `-- CMD [ARGS...]`, `--pid PID`, `--cgroup DIR` or `--container ID`");
    }
    if let Some(reference) = &args.container {
        let found = crate::daemon::engine::resolve(reference, args.runtime, args.root.as_deref())?;
        let (id, pid) = (found.id.clone(), found.pid);
        let cgroup = container::own_cgroup(pid, &id);
        eprintln!(
            "auditor: attached to {} (init pid {pid}, scoped by {}); what it did before now is not in the file",
            found.description,
            match &cgroup {
                Some((d, _)) => format!("its cgroup {}", d.display()),
                None => "its processes and their descendants (no cgroup v2 of its own: a process that joins it later is not learned)".to_owned(),
            }
        );
        let model = model::Target::Container {
            id,
            runtime: found.runtime,
            cgroup: cgroup.as_ref().map(|(d, _)| d.display().to_string()),
            engine: found.identity.engine,
            name: found.identity.name,
            image: found.identity.image,
            labels: found.identity.labels,
        };
        let target = match cgroup {
            Some((dir, _)) => Target::Cgroup {
                filter: cgroup_filter(&dir)?,
                path: dir,
            },
            None => Target::Pid(pid),
        };
        return Ok((target, Some(ContainerTarget { model })));
    }
    Ok((parse_plain_target(args)?, None))
}

fn parse_plain_target(args: &LearnArgs) -> anyhow::Result<Target> {
    if let Some(pid) = args.pid {
        if !crate::host::proc::exists(pid) {
            bail!("no process with pid {pid}: check the pid (e.g. with `ps -p {pid}`)");
        }
        return Ok(Target::Pid(pid));
    }
    if let Some(dir) = &args.cgroup {
        return Ok(Target::Cgroup {
            path: dir.clone(),
            filter: cgroup_filter(dir)?,
        });
    }
    Ok(Target::Command(launch::Command::new_in(
        &args.command,
        args.rootfs.as_deref(),
    )?))
}

/// The id and level of a cgroup v2 directory.
fn cgroup_filter(dir: &Path) -> anyhow::Result<CgroupFilter> {
    let hint = "give a cgroup v2 directory, e.g. /sys/fs/cgroup/unified/my.scope on a hybrid host";
    if !crate::host::cgroup::is_v2_dir(dir) {
        bail!("{}: not a cgroup v2 directory ({hint})", dir.display());
    }
    let canon = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let root = crate::host::cgroup::mount_root_of(&canon)
        .with_context(|| format!("{}: cannot find its cgroup2 mount ({hint})", dir.display()))?;
    let level = canon
        .strip_prefix(&root)
        .map(|rel| rel.components().count())
        .unwrap_or(0);
    let id = crate::host::cgroup::id(&canon).with_context(|| format!("{}", canon.display()))?;
    Ok(CgroupFilter {
        id,
        level: level as u32,
        enabled: 1,
    })
}

/// Whether any live thread on the host is tracked (the exit program untracks a thread as it
/// exits, so a tracked live thread belongs to the workload).
fn any_tracked_alive(observer: &Observer) -> bool {
    let Ok(pids) = crate::host::proc::pids() else {
        return true;
    };
    for pid in pids {
        for tid in crate::host::proc::threads(pid) {
            // An unreadable map is not evidence of the end.
            if observer.group_of(tid).map_or(true, |g| g.is_some()) && crate::host::proc::alive(tid)
            {
                return true;
            }
        }
    }
    false
}

/// Track the running process `pid` (all its threads) with FRESH slots.
///
/// A thread that is tracked already was forked by a tracked thread after tracking began: the
/// kernel counted it (`TASKS_FORKED`), so it is left alone rather than counted twice.
fn track_running(
    observer: &mut Observer,
    pid: u32,
    collected: &mut build::Collected,
) -> anyhow::Result<()> {
    let exe = crate::host::proc::exe(pid).map(|p| {
        let id = exe_id(p.as_bytes());
        collected.exe_names.entry(id).or_insert(p);
        id
    });
    let mut any = false;
    for tid in crate::host::proc::threads(pid) {
        if observer.group_of(tid)?.is_some() {
            continue;
        }
        observer.track(tid, exe.unwrap_or(0), slot::FRESH)?;
        // A thread that exited between listing and tracking never sends an exit: undo it so a
        // recycled id is not tracked by mistake.
        if !crate::host::proc::thread_exists(pid, tid) {
            observer.untrack(tid)?;
            continue;
        }
        collected.initial_threads += 1;
        any = true;
    }
    if any {
        if let Some(id) = exe {
            collected.initial_exes.push(id);
        }
    }
    Ok(())
}

enum Stop {
    WorkloadExited,
    Signal(i32),
    Duration,
}

pub fn run(args: &LearnArgs) -> anyhow::Result<ExitCode> {
    let (target, container) = parse_target(args)?;
    // --userns / --policy: the launcher's container and complain-mode broker (enforce's).
    let mut under = super::shared::LearnUnder::new(
        args.userns.as_deref(),
        args.rootfs.as_deref(),
        args.policy.as_deref(),
    )?;
    let notified = under.notified();
    super::require_root("auditor learn")?;
    crate::fsutil::check_writable(&args.output)?;
    // --tui: the terminal and the workload's log, checked before anything starts.
    let ui = args.ui.prepare(SessionKind::Learn)?;
    if let (Some(ui), Target::Command(_)) = (&ui, &target) {
        under.options.stdio = Some(ui.workload_stdio()?);
    }

    let config = ObserverConfig {
        cgroup: match &target {
            Target::Cgroup { filter, .. } => Some(*filter),
            _ => None,
        },
        arg_specs: observe::args::kernel_specs(),
        emit_refusals: false,
        ..Default::default()
    };
    // Signals are handled from before the workload starts, so that an early Ctrl-C still ends
    // in a written observation.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = {
        let _in_rt = rt.enter();
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let mut observer = Observer::load(&config)?;
    let mut events = observer.take_events()?;

    let mut collected = build::Collected {
        start_boot_ns: build::boot_ns(),
        ..Default::default()
    };
    let started = SystemTime::now();
    let t0 = Instant::now();

    let (model_target, child) = match &target {
        Target::Command(cmd) => {
            let held = launch::spawn_held_with(cmd, &under.options)?;
            if let Err(e) = observer.track(held.pid(), 0, slot::WAIT_EXEC) {
                held.abort();
                return Err(e.into());
            }
            collected.initial_threads = 1;
            let (child, listener) = held.release_with_listener()?;
            if let Some(broker) = under.broker(listener) {
                // Runs while `watch` drives the runtime; ends with the workload (POLLHUP).
                rt.spawn(async move {
                    if let Err(e) = broker
                        .serve(tokio_util::sync::CancellationToken::new())
                        .await
                    {
                        eprintln!("auditor: broker stopped: {e:#}");
                    }
                });
            }
            (
                model::Target::Command {
                    argv: cmd.argv.clone(),
                },
                Some(child),
            )
        }
        Target::Pid(pid) => {
            track_running(&mut observer, *pid, &mut collected)?;
            if collected.initial_threads == 0 {
                bail!("process {pid} exited before tracking began");
            }
            if container.is_some() {
                // A container scoped by pid: the processes its init already started belong to it.
                for p in crate::host::proc::descendants(*pid) {
                    track_running(&mut observer, p, &mut collected)?;
                }
            }
            (model::Target::Pid { pid: *pid }, None)
        }
        Target::Cgroup { path, .. } => {
            let mut procs = Vec::new();
            crate::host::cgroup::procs_below(path, &mut procs);
            for pid in procs {
                track_running(&mut observer, pid, &mut collected)?;
            }
            (
                model::Target::Cgroup {
                    path: path.display().to_string(),
                },
                None,
            )
        }
    };

    let model_target = match container {
        Some(c) => c.model,
        None => model_target,
    };
    eprintln!(
        "auditor: learning {} ({} threads tracked at start); output: {}",
        describe(&model_target),
        collected.initial_threads,
        args.output.display()
    );
    let progress =
        ui.is_none() && !args.json && !args.no_progress && std::io::stderr().is_terminal();
    // The live session for `auditor tui` (see crate::session); learning goes on without it,
    // unless it was asked to show it (--tui).
    let live = match start_live(&model_target, &args.output, started) {
        Ok(l) => Some(l),
        Err(e) if ui.is_some() => return Err(e).context("--tui needs the live session"),
        Err(e) => {
            tracing::warn!(error = %e, "no live session for auditor tui");
            None
        }
    };
    let ui = match (ui, &live) {
        (Some(ui), Some((p, _))) => {
            eprintln!(
                "auditor: workload output goes to {}",
                ui.log_path().display()
            );
            Some(ui.start(p.path(), args.ui.policy_out.clone())?)
        }
        _ => None,
    };
    let (stop, exit) = rt.block_on(watch(
        &observer,
        &mut events,
        &mut collected,
        &target,
        child,
        args.duration,
        progress,
        signals,
        live.as_ref().map(|(p, run)| LiveLearn {
            sender: p.sender(),
            run: run.clone(),
            t0,
            ticks: 0,
            distinct: 0,
        }),
    ))?;

    // Everything the workload did is in the maps now (the programs run synchronously in its
    // syscalls); take the last events and read the maps.
    let mut tail = Vec::new();
    events.drain(&mut tail);
    absorb(&mut collected, tail);
    collected.snapshot = observer.snapshot()?;
    drop(observer);

    let ended = SystemTime::now();
    let mut obs = build::build(
        &collected,
        build::RunInfo {
            host: build::host(),
            target: model_target,
            started_at: humantime::format_rfc3339_millis(started).to_string(),
            ended_at: humantime::format_rfc3339_millis(ended).to_string(),
            duration_ms: t0.elapsed().as_millis() as u64,
        },
    );
    super::shared::drop_emulated(&mut obs, &notified);
    observe::save(&args.output, &obs)?;
    if let Some((p, _)) = live {
        p.send(LiveEvent::Observation(Box::new(obs.clone())));
        p.finish(&format!(
            "learning ended; observation written to {}",
            args.output.display()
        ));
    }
    // The UI shows the end of learning until the user closes it.
    if let Some(ui) = ui {
        ui.wait();
    }
    if args.json {
        print!("{}", observe::to_json(&obs));
    } else {
        eprint!("{}", observe::summary::render(&obs));
        eprintln!("observation written to {}", args.output.display());
    }
    if obs.loss.total > 0 {
        tracing::warn!(
            lost = obs.loss.total,
            "observations were lost; see `loss` in the output"
        );
        eprintln!(
            "auditor: warning: {} observations were lost (see `loss` in {})",
            obs.loss.total,
            args.output.display()
        );
    }
    Ok(match (stop, exit) {
        (_, Some(e)) => ExitCode::from(e.status().clamp(0, 255) as u8),
        (Stop::Signal(sig), None) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        _ => ExitCode::SUCCESS,
    })
}

fn describe(t: &model::Target) -> String {
    match t {
        model::Target::Command { argv } => format!("command `{}`", argv.join(" ")),
        model::Target::Pid { pid } => format!("pid {pid} and its new descendants"),
        model::Target::Cgroup { path } => format!("cgroup {path}"),
        model::Target::Merged { inputs } => format!("{inputs} merged observations"),
        model::Target::Container {
            id,
            engine,
            name,
            image,
            labels,
            ..
        } => {
            let who = crate::daemon::engine::Identity {
                engine: engine.clone(),
                name: name.clone(),
                image: image.clone(),
                labels: labels.clone(),
            };
            let short = &id[..id.len().min(12)];
            match who.describe() {
                Some(d) => format!("{d}, id {short}"),
                None => format!("container {id}"),
            }
        }
    }
}

fn absorb(collected: &mut build::Collected, events: Vec<Event>) {
    for ev in events {
        match ev {
            Event::Exec { header, filename } => {
                collected
                    .exe_names
                    .insert(header.exe, String::from_utf8_lossy(&filename).into_owned());
            }
            Event::Args(a) => collected.args_events.push(*a),
            // Not requested by learn (refusals are counted in the maps).
            Event::Refused(_) => {}
            Event::Malformed { len, kind } => {
                tracing::error!(len, kind, "malformed ring buffer record");
                collected.malformed_events += 1;
            }
        }
    }
}

/// Wait for the end of learning while reading events and showing progress.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
async fn watch(
    observer: &Observer,
    events: &mut EventReader,
    collected: &mut build::Collected,
    target: &Target,
    child: Option<launch::Child>,
    duration: Option<Duration>,
    progress: bool,
    (mut sigint, mut sigterm): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    mut live: Option<LiveLearn>,
) -> anyhow::Result<(Stop, Option<launch::Exit>)> {
    // SAFETY: the ring buffer fd is owned by `events`, which outlives this AsyncFd (dropped at
    // the end of this function) and is not closed meanwhile.
    let mut ring = unsafe {
        AsyncFd::register_with_interest(events.readiness_fd(), tokio::io::Interest::READABLE)
    }
    .map_err(|e| anyhow::anyhow!("registering the ring buffer with the reactor: {}", e))?;
    let mut waiter = child.map(|c| tokio::task::spawn_blocking(move || c.wait()));
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Instant::now(), 0u64);
    let mut was_populated = false;
    let mut scans = 0u32;
    let mut buf = Vec::new();

    let stop = loop {
        tokio::select! {
            r = async { waiter.as_mut().expect("guarded").await }, if waiter.is_some() => {
                let exit = r.context("waiting for the workload")??;
                return Ok((Stop::WorkloadExited, Some(exit)));
            }
            g = ring.readable_mut() => {
                let mut g = g?;
                events.drain(&mut buf);
                absorb(collected, std::mem::take(&mut buf));
                g.clear_ready();
            }
            _ = sigint.recv() => break Stop::Signal(libc::SIGINT),
            _ = sigterm.recv() => break Stop::Signal(libc::SIGTERM),
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => break Stop::Duration,
            _ = tick.tick() => {
                let c = observer.counters()?;
                // One map lookup per possible syscall: counted only for someone who sees it
                // (the progress line, a session client), once per tick for both.
                let watched = live.as_ref().is_some_and(|l| l.sender.has_clients());
                let distinct = (progress || watched)
                    .then(|| observer.distinct_syscalls().map_or(0, |n| n as u64));
                if let Some(l) = &mut live {
                    l.publish(observer, collected, &c, distinct);
                }
                match target {
                    Target::Pid(root) => {
                        let live = collected.initial_threads + c[counters::TASKS_FORKED as usize] + c[counters::TASKS_ADOPTED as usize];
                        if live <= c[counters::TASKS_EXITED as usize] {
                            break Stop::WorkloadExited;
                        }
                        // The counts can overstate (a child forked while its running parent was
                        // being tracked may be counted by both sides): once the root is gone,
                        // the tasks themselves decide, once a second.
                        scans += 1;
                        if scans.is_multiple_of(4) && !crate::host::proc::alive(*root) && !any_tracked_alive(observer) {
                            break Stop::WorkloadExited;
                        }
                    }
                    Target::Cgroup { path, .. } => {
                        // A task that joined and left between two polls still counts: it was adopted.
                        let seen = collected.initial_threads + c[counters::TASKS_ADOPTED as usize] + c[counters::TASKS_FORKED as usize];
                        match crate::host::cgroup::populated(path) {
                            Some(true) => was_populated = true,
                            Some(false) if was_populated || seen > 0 => break Stop::WorkloadExited,
                            None => break Stop::WorkloadExited, // the cgroup was removed
                            _ => {}
                        }
                    }
                    Target::Command(_) => {}
                }
                if progress {
                    let calls = c[counters::SYSCALLS as usize];
                    let dt = last.0.elapsed().as_secs_f64().max(1e-3);
                    let rate = (calls.saturating_sub(last.1)) as f64 / dt;
                    last = (Instant::now(), calls);
                    let lost: u64 = build::LOSS_COUNTERS.iter().map(|&i| c[i as usize]).sum();
                    let distinct = distinct.unwrap_or(0);
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[Klearning: {distinct} syscalls, {rate:.0} calls/s, {calls} calls, lost {lost}");
                    let _ = err.flush();
                }
            }
        }
    };
    if progress {
        eprint!("\r\x1b[K");
    }
    // Learning is over; a workload auditor started is asked to stop too, and waited for.
    let mut exit = None;
    if let Some(w) = waiter {
        if let Some(c) = child {
            let sig = match stop {
                Stop::Signal(s) => Signal::try_from(s).unwrap_or(Signal::SIGTERM),
                _ => Signal::SIGTERM,
            };
            c.signal(sig);
            let wait = tokio::time::timeout(launch::STOP_GRACE, w);
            exit = match wait.await {
                Ok(r) => Some(r.context("waiting for the workload")??),
                Err(_) => {
                    c.signal(Signal::SIGKILL);
                    None
                }
            };
        }
    }
    Ok((stop, exit))
}

/// Start publishing the live session.
fn start_live(
    target: &model::Target,
    output: &Path,
    started: SystemTime,
) -> Result<(Publisher, build::RunInfo), crate::session::SessionError> {
    let mut details = SessionDetails::default();
    if let model::Target::Command { argv } = target {
        details.command.clone_from(argv);
    }
    details.details.insert("target".into(), describe(target));
    details
        .details
        .insert("output".into(), output.display().to_string());
    let p = Publisher::start(SessionKind::Learn, details)?;
    let run = build::RunInfo {
        host: build::host(),
        target: target.clone(),
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        ended_at: String::new(),
        duration_ms: 0,
    };
    Ok((p, run))
}

/// Publishing learning progress to the live session.
struct LiveLearn {
    sender: SessionSender,
    run: build::RunInfo,
    t0: Instant,
    ticks: u32,
    /// Distinct syscalls at the last count (see [`LiveLearn::publish`]).
    distinct: u64,
}

impl LiveLearn {
    /// Counters on every tick; what was learned so far, once a second and only while a client
    /// watches (reading the maps and building the observation is not free).
    /// `distinct`: the distinct syscalls counted this tick, if they were (thousands of bpf(2)
    /// lookups, ~2 % of a CPU at this rate: only while someone sees them; a client that
    /// attaches sees the last count until the next tick).
    fn publish(
        &mut self,
        observer: &Observer,
        collected: &mut build::Collected,
        c: &[u64],
        distinct: Option<u64>,
    ) {
        self.ticks = self.ticks.wrapping_add(1);
        let elapsed_ms = u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(d) = distinct {
            self.distinct = d;
        }
        self.sender.send(LiveEvent::Progress(Progress {
            elapsed_ms,
            calls: c.get(counters::SYSCALLS as usize).copied().unwrap_or(0),
            distinct: self.distinct,
            lost: build::LOSS_COUNTERS
                .iter()
                .filter_map(|&i| c.get(i as usize))
                .sum(),
        }));
        if self.ticks % 4 != 1 || !self.sender.has_clients() {
            return;
        }
        match observer.snapshot() {
            // Replaced by the final snapshot at the end of learning.
            Ok(snap) => collected.snapshot = snap,
            Err(e) => {
                tracing::debug!(error = %e, "live session: cannot read the maps");
                return;
            }
        }
        let run = build::RunInfo {
            ended_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_ms: elapsed_ms,
            ..self.run.clone()
        };
        self.sender
            .send(LiveEvent::Observation(Box::new(build::build(
                collected, run,
            ))));
    }
}
