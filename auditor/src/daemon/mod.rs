//! `auditor daemon`: one resident learner for every container on the host.
//!
//! The eBPF programs are loaded once; each registered container gets a *group* (see
//! `auditor_common::slot`), so that the kernel side keeps its counts apart. A container is
//! tracked from its runtime's init process (registered by `auditor hook` at `createRuntime`,
//! before the workload runs): through fork inheritance, and processes that join later (`runc
//! exec`) are adopted at their exec, by the container's own cgroup v2 where it has one, else by
//! its mount namespace. When its last tracked
//! thread has exited, the daemon writes its observation file, named after the container id,
//! and recycles the group.
//!
//! One task owns the observer and the containers; connections are served by their own tasks,
//! which pass validated requests over a bounded channel and wait for the answer.

pub mod container;
pub mod engine;
pub mod protocol;
mod socket;

pub use socket::request;
use socket::{accept_loop, bind};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auditor_common::{counters, hash::exe_id, slot};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bpf::{BpfError, Event, Observer, ObserverConfig};
use crate::observe::{self, build, model};
use protocol::{Register, Reply};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: another auditor daemon is listening there (stop it, or give another --socket)"
    )]
    InUse { path: PathBuf },
    #[error("container {id}: {msg}")]
    Container { id: String, msg: String },
    #[error("writing the observation of container {id}: {source}")]
    Save {
        id: String,
        #[source]
        source: observe::ObserveError,
    },
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub output_dir: PathBuf,
    /// Containers tracked at once (groups of the observer).
    pub max_containers: u32,
    /// Prometheus metrics and health endpoints.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Engine inspects running at once, and how long one may take.
const MAX_INSPECTS: usize = 16;
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often finished containers are looked for.
const TICK: Duration = Duration::from_millis(50);

/// One tracked container.
struct Tracked {
    id: String,
    runtime: Option<String>,
    /// Engine, name, image, labels: from the runtime's state, then from the engine.
    identity: engine::Identity,
    pid: u32,
    cgroup: Option<(PathBuf, u64)>,
    /// The mount namespace whose execs join the container (when it has no cgroup of its own).
    mntns: Option<u32>,
    /// The init's threads tracked at registration.
    initial_tids: Vec<u32>,
    collected: build::Collected,
    started: SystemTime,
    t0: Instant,
}

/// What a connection asks the owner of the observer.
struct Job {
    register: Register,
    reply: oneshot::Sender<Reply>,
}

/// The state the main task owns.
struct Learner {
    observer: Observer,
    config: Config,
    tracked: HashMap<u32, Tracked>,
    free: Vec<u32>,
    /// Ring buffer records of no tracked container (or malformed).
    orphan_events: u64,
    metrics: Option<Arc<crate::metrics::DaemonMetrics>>,
    /// Containers whose engine is being asked who they are.
    inspecting: std::collections::HashSet<String>,
}

/// Run the daemon until SIGTERM/SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Io {
            path: PathBuf::from("(runtime)"),
            what: "starting tokio",
            source,
        })?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), DaemonError> {
    let io = |path: &Path, what| {
        let path = path.to_owned();
        move |source| DaemonError::Io { path, what, source }
    };
    std::fs::create_dir_all(&config.output_dir)
        .map_err(io(&config.output_dir, "creating the output directory"))?;
    crate::fsutil::check_writable(&config.output_dir.join("probe.json")).map_err(|e| {
        DaemonError::Io {
            path: config.output_dir.clone(),
            what: "output directory not writable",
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let listener = bind(&config.socket)?;
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(io(&config.socket, "installing signal handlers"))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(io(&config.socket, "installing signal handlers"))?;

    let groups = config.max_containers.clamp(1, slot::MAX_GROUPS);
    let mut observer = Observer::load(&ObserverConfig {
        arg_specs: observe::args::kernel_specs(),
        groups,
        cgroup_groups: true,
        mntns_groups: true,
        ..Default::default()
    })?;
    let mut events = observer.take_events()?;
    // SAFETY: the ring buffer fd is owned by `events`, which outlives this AsyncFd (both live
    // until the end of this function, `ring` is declared later so dropped first) and is not
    // closed meanwhile.
    let mut ring = unsafe {
        AsyncFd::register_with_interest(events.readiness_fd(), tokio::io::Interest::READABLE)
    }
    .map_err(|e| DaemonError::Io {
        path: config.socket.clone(),
        what: "registering the ring buffer",
        source: std::io::Error::other(format!("{e:?}")),
    })?;
    let mut learner = Learner {
        observer,
        config: config.clone(),
        tracked: HashMap::new(),
        free: (0..groups).rev().collect(),
        orphan_events: 0,
        inspecting: Default::default(),
        metrics: None,
    };
    let cancel = CancellationToken::new();
    // Ready: the programs are loaded and the socket is bound.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    if let Some(addr) = config.metrics_addr {
        let mut registry = prometheus_client::registry::Registry::default();
        learner.metrics = Some(crate::metrics::DaemonMetrics::register(&mut registry));
        let listener = crate::metrics::bind(addr).await?;
        let local = listener
            .local_addr()
            .map_err(io(&config.socket, "the metrics address"))?;
        eprintln!("auditor daemon: metrics on http://{local}/metrics");
        tokio::spawn(crate::metrics::serve(
            listener,
            Arc::new(registry),
            ready,
            cancel.clone(),
        ));
    }
    tracing::info!(socket = %config.socket.display(), output = %config.output_dir.display(), groups, "auditor daemon ready");
    eprintln!(
        "auditor daemon: listening on {}; observations go to {}",
        config.socket.display(),
        config.output_dir.display()
    );

    let (tx, mut rx) = mpsc::channel::<Job>(64);
    // Engine inspects (name, image, labels of Docker's and podman's containers), run off the
    // loop; their answers come back here.
    let (itx, mut irx) = mpsc::channel::<(String, Result<engine::Identity, String>)>(MAX_INSPECTS);
    let inspects = Arc::new(tokio::sync::Semaphore::new(MAX_INSPECTS));
    let acceptor = tokio::spawn(accept_loop(listener, tx, cancel.clone()));
    let mut tick = tokio::time::interval(TICK);
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            g = ring.readable_mut() => {
                match g {
                    Ok(mut g) => {
                        events.drain(&mut buf);
                        learner.absorb(std::mem::take(&mut buf));
                        g.clear_ready();
                    }
                    Err(e) => tracing::error!(error = %e, "ring buffer readiness"),
                }
            }
            Some(job) = rx.recv() => {
                // Events of earlier containers first, so that a recycled group starts clean.
                events.drain(&mut buf);
                learner.absorb(std::mem::take(&mut buf));
                let id = job.register.id.clone();
                let reply = learner.register(job.register);
                if let Some(engine) = reply.ok.then(|| learner.engine_to_ask(&id)).flatten() {
                    match inspects.clone().try_acquire_owned() {
                        Ok(permit) => {
                            learner.inspecting.insert(id.clone());
                            let itx = itx.clone();
                            tokio::spawn(async move {
                                let r = engine::inspect_identity(&engine, &id, INSPECT_TIMEOUT).await;
                                drop(permit);
                                let _ = itx.send((id, r)).await;
                            });
                        }
                        Err(_) => tracing::debug!(%id, "too many engine inspects at once: the observation names its engine only"),
                    }
                }
                if let Some(m) = &learner.metrics {
                    let result = if reply.ok { "ok" } else { "refused" };
                    m.registrations
                        .get_or_create(&crate::metrics::ResultLabels { result: result.into() })
                        .inc();
                    m.tracked.set(learner.tracked.len() as i64);
                }
                let _ = job.reply.send(reply);
            }
            Some((id, identity)) = irx.recv() => learner.identified(&id, identity),
            _ = tick.tick() => {
                let done = learner.finished();
                if !done.is_empty() {
                    events.drain(&mut buf);
                    learner.absorb(std::mem::take(&mut buf));
                    for g in done {
                        learner.finish(g, false);
                    }
                }
            }
        }
    }
    // Shutdown: stop accepting, then write what every container still running did so far.
    cancel.cancel();
    let _ = acceptor.await;
    events.drain(&mut buf);
    learner.absorb(buf);
    let groups: Vec<u32> = learner.tracked.keys().copied().collect();
    for g in groups {
        learner.finish(g, true);
    }
    let _ = std::fs::remove_file(&config.socket);
    if learner.orphan_events > 0 {
        tracing::warn!(
            records = learner.orphan_events,
            "ring buffer records of no tracked container"
        );
    }
    eprintln!("auditor daemon: stopped");
    Ok(())
}

impl Learner {
    fn output_path(&self, id: &str) -> PathBuf {
        self.config.output_dir.join(format!("{id}.json"))
    }

    /// The engine CLI that can name container `id` (Docker's and podman's: their runtime
    /// state does not carry the name or the image), if it is tracked and not named yet.
    fn engine_to_ask(&self, id: &str) -> Option<String> {
        let t = self.tracked.values().find(|t| t.id == id)?;
        match t.identity.engine.as_deref() {
            Some(e @ ("docker" | "podman")) if t.identity.name.is_none() => Some(e.to_owned()),
            _ => None,
        }
    }

    /// The engine's answer for container `id`: into its tracking, or into the observation
    /// already written (a container that ended first).
    fn identified(&mut self, id: &str, identity: Result<engine::Identity, String>) {
        if !self.inspecting.remove(id) {
            return;
        }
        let identity = match identity {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(%id, error = %e, "the engine did not name the container; its observation names the engine only");
                return;
            }
        };
        if let Some(t) = self.tracked.values_mut().find(|t| t.id == id) {
            t.identity.merge(identity);
            return;
        }
        let path = self.output_path(id);
        let mut obs = match observe::load(&path) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot add the engine's name to the observation");
                return;
            }
        };
        if let model::Target::Container {
            engine,
            name,
            image,
            labels,
            ..
        } = &mut obs.target
        {
            let mut known = engine::Identity {
                engine: engine.take(),
                name: name.take(),
                image: image.take(),
                labels: std::mem::take(labels),
            };
            known.merge(identity);
            (*engine, *name, *image, *labels) =
                (known.engine, known.name, known.image, known.labels);
        }
        match observe::save(&path, &obs) {
            Ok(()) => tracing::debug!(%id, "observation named by its engine"),
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot add the engine's name to the observation")
            }
        }
    }

    /// Start tracking a container. Answers only once its init's threads are tracked.
    fn register(&mut self, r: Register) -> Reply {
        if let Some(&g) = self
            .tracked
            .iter()
            .find(|(_, t)| t.id == r.id)
            .map(|(g, _)| g)
        {
            // The same id again right after the first container ended, before the next tick
            // noticed: write the first one's file now.
            if self.finished().contains(&g) {
                self.finish(g, false);
            } else {
                tracing::warn!(id = %r.id, "container registered twice");
                return Reply::err(format!(
                    "container {} is already tracked and still running",
                    r.id
                ));
            }
        }
        if !crate::host::proc::exists(r.pid) {
            return Reply::err(format!("container {}: no process with pid {}", r.id, r.pid));
        }
        let Some(group) = self.free.pop() else {
            tracing::error!(id = %r.id, max = self.observer.groups(), "too many containers at once");
            return Reply::err(format!(
                "the daemon already tracks {} containers (restart it with a larger --max-containers)",
                self.observer.groups()
            ));
        };
        match self.start(group, &r) {
            Ok(threads) => {
                tracing::info!(id = %r.id, pid = r.pid, group, threads, "tracking container");
                Reply::ok(self.output_path(&r.id).display().to_string())
            }
            Err(e) => {
                tracing::error!(id = %r.id, error = %e, "cannot track container");
                self.untrack_group(group);
                self.free.push(group);
                Reply::err(format!("container {}: {e}", r.id))
            }
        }
    }

    fn start(&mut self, group: u32, r: &Register) -> Result<u64, DaemonError> {
        let cgroup = container::own_cgroup(r.pid, &r.id);
        let mntns = if cgroup.is_none() {
            crate::host::proc::own_mntns(r.pid)
        } else {
            None
        };
        let mut tids = Vec::new();
        match self.track_init(
            group,
            r,
            cgroup.as_ref().map(|(_, id)| *id),
            mntns,
            &mut tids,
        ) {
            Ok(()) => {}
            Err(e) => {
                // Leave nothing of the group behind: its slots, its adoption keys.
                for tid in tids {
                    let _ = self.observer.untrack(tid);
                }
                if let Some((_, id)) = &cgroup {
                    let _ = self.observer.forget_cgroup(*id);
                }
                if let Some(inum) = mntns {
                    let _ = self.observer.forget_mntns(inum);
                }
                return Err(e);
            }
        }
        let threads = tids.len() as u64;
        let initial_tids = tids;
        let collected = build::Collected {
            start_boot_ns: build::boot_ns(),
            initial_threads: threads,
            ..Default::default()
        };
        self.tracked.insert(
            group,
            Tracked {
                id: r.id.clone(),
                runtime: r.runtime.clone(),
                identity: {
                    let mut identity = engine::identity_from_state(
                        &r.annotations,
                        r.bundle.as_deref().unwrap_or(""),
                    );
                    if let (Some("podman"), Some(bundle)) =
                        (identity.engine.as_deref(), r.bundle.as_deref())
                    {
                        if let Some(stored) =
                            engine::identity_from_podman_storage(Path::new(bundle), &r.id)
                        {
                            identity.merge(stored);
                        }
                    }
                    identity
                },
                pid: r.pid,
                cgroup,
                mntns,
                initial_tids,
                collected,
                started: SystemTime::now(),
                t0: Instant::now(),
            },
        );
        Ok(threads)
    }

    /// Track the init's threads (`tids` gets those tracked) and register how joiners are
    /// recognised.
    fn track_init(
        &mut self,
        group: u32,
        r: &Register,
        cgroup: Option<u64>,
        mntns: Option<u32>,
        tids: &mut Vec<u32>,
    ) -> Result<(), DaemonError> {
        if let Some(id) = cgroup {
            self.observer.adopt_cgroup(id, group)?;
        } else if let Some(inum) = mntns {
            // No cgroup of its own: processes that join later are recognised at their exec
            // inside the container's mount namespace.
            self.observer.adopt_mntns(inum, group)?;
        }
        for tid in crate::host::proc::threads(r.pid) {
            // Executable 0: the runtime's init, until the workload's execve.
            self.observer.track_in(group, tid, 0, slot::FRESH)?;
            if !crate::host::proc::thread_exists(r.pid, tid) {
                // Exited meanwhile: it sends no exit, and its id may be recycled.
                self.observer.untrack(tid)?;
                continue;
            }
            tids.push(tid);
        }
        if tids.is_empty() {
            return Err(DaemonError::Container {
                id: r.id.clone(),
                msg: format!("process {} exited before tracking began", r.pid),
            });
        }
        Ok(())
    }

    /// Undo a failed start: no thread of the group may stay tracked.
    fn untrack_group(&mut self, group: u32) {
        if let Some(t) = self.tracked.remove(&group) {
            if let Some((_, id)) = t.cgroup {
                let _ = self.observer.forget_cgroup(id);
            }
            if let Some(inum) = t.mntns {
                let _ = self.observer.forget_mntns(inum);
            }
        }
        if let Err(e) = self.observer.reset_group(group) {
            tracing::error!(group, error = %e, "cannot reset group");
        }
    }

    fn absorb(&mut self, events: Vec<Event>) {
        for ev in events {
            let group = match &ev {
                Event::Exec { header, .. } => u32::from(header.group),
                Event::Args(a) => u32::from(a.header.group),
                Event::Refused(r) => u32::from(r.header.group),
                Event::Malformed { len, kind } => {
                    tracing::error!(len, kind, "malformed ring buffer record");
                    self.orphan_events += 1;
                    continue;
                }
            };
            let Some(t) = self.tracked.get_mut(&group) else {
                self.orphan_events += 1;
                continue;
            };
            match ev {
                Event::Exec { header, filename } => {
                    t.collected
                        .exe_names
                        .insert(header.exe, String::from_utf8_lossy(&filename).into_owned());
                }
                Event::Args(a) => t.collected.args_events.push(*a),
                Event::Refused(_) | Event::Malformed { .. } => {}
            }
        }
    }

    /// Groups whose containers have no live thread left.
    fn finished(&self) -> Vec<u32> {
        let mut done = Vec::new();
        for (&g, t) in &self.tracked {
            let c = match self.observer.counters_of(g) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(id = %t.id, error = %e, "cannot read counters");
                    continue;
                }
            };
            let born = t.collected.initial_threads
                + c[counters::TASKS_FORKED as usize]
                + c[counters::TASKS_ADOPTED as usize];
            let exited = c[counters::TASKS_EXITED as usize];
            if exited < born && !self.gone_anyway(t, born - exited) {
                continue;
            }
            // A process in its cgroup that was never adopted (moved in and never exec'd) keeps
            // the container alive.
            if let Some((dir, ino)) = &t.cgroup {
                if container::populated(dir, *ino) == Some(true) {
                    continue;
                }
            }
            done.push(g);
        }
        done
    }

    /// The counts say `alive` threads are left, but is anything of the container still
    /// running? A thread that exited between being listed and being tracked is counted as
    /// tracked and never as exited; this keeps such a container from waiting forever. Checked
    /// only once the init is gone, so it costs nothing while a container runs.
    fn gone_anyway(&self, t: &Tracked, alive: u64) -> bool {
        if crate::host::proc::exists(t.pid) {
            return false;
        }
        let left = match (&t.cgroup, t.mntns) {
            (Some((dir, ino)), _) => container::populated(dir, *ino) == Some(true),
            (None, Some(inum)) => crate::host::proc::any_in_mntns(inum),
            // Nothing else to tell by: trust the counts.
            (None, None) => return false,
        };
        if !left {
            tracing::warn!(id = %t.id, alive, "the counts say threads are alive but none of the container is; finishing it");
        }
        !left
    }

    /// Write the observation of the container in `group` and recycle the group.
    fn finish(&mut self, group: u32, shutdown: bool) {
        let Some(mut t) = self.tracked.remove(&group) else {
            return;
        };
        if let Some((_, id)) = &t.cgroup {
            if let Err(e) = self.observer.forget_cgroup(*id) {
                tracing::error!(id = %t.id, error = %e, "cannot stop adopting the cgroup");
            }
        }
        if let Some(inum) = t.mntns {
            if let Err(e) = self.observer.forget_mntns(inum) {
                tracing::error!(id = %t.id, error = %e, "cannot stop adopting the mount namespace");
            }
        }
        match self.observer.snapshot_of(group) {
            Ok(s) => t.collected.snapshot = s,
            Err(e) => {
                tracing::error!(id = %t.id, error = %e, "cannot read the maps; the observation is incomplete")
            }
        }
        // A thread caught before its first exec'd name is known: name it from /proc if alive.
        if shutdown {
            if let Some(p) = crate::host::proc::exe(t.pid) {
                t.collected
                    .exe_names
                    .entry(exe_id(p.as_bytes()))
                    .or_insert(p);
            }
        }
        let hashes: Vec<u64> = t.collected.args_events.iter().map(|a| a.hash).collect();
        let ended = SystemTime::now();
        let obs = build::build(
            &t.collected,
            build::RunInfo {
                host: build::host(),
                target: model::Target::Container {
                    id: t.id.clone(),
                    runtime: t.runtime.clone(),
                    cgroup: t.cgroup.as_ref().map(|(d, _)| d.display().to_string()),
                    engine: t.identity.engine.clone(),
                    name: t.identity.name.clone(),
                    image: t.identity.image.clone(),
                    labels: t.identity.labels.clone(),
                },
                started_at: humantime::format_rfc3339_millis(t.started).to_string(),
                ended_at: humantime::format_rfc3339_millis(ended).to_string(),
                duration_ms: t.t0.elapsed().as_millis() as u64,
            },
        );
        let path = self.output_path(&t.id);
        if let Some(m) = &self.metrics {
            m.tracked.set(self.tracked.len() as i64);
            m.lost.inc_by(obs.loss.total);
            m.observed_calls
                .inc_by(obs.syscalls.iter().map(|s| s.count).sum());
        }
        match observe::save(&path, &obs) {
            Ok(()) => {
                if let Some(m) = &self.metrics {
                    m.observations.inc();
                }
                tracing::info!(
                    id = %t.id,
                    path = %path.display(),
                    syscalls = obs.syscalls.len(),
                    still_running = shutdown,
                    "observation written"
                )
            }
            Err(source) => {
                let e = DaemonError::Save {
                    id: t.id.clone(),
                    source,
                };
                tracing::error!(error = %e, "observation lost");
                eprintln!("auditor daemon: error: {e}");
            }
        }
        if obs.loss.total > 0 {
            tracing::warn!(id = %t.id, lost = obs.loss.total, "observations were lost; see `loss` in the file");
        }
        if shutdown {
            return;
        }
        // A thread that exited just before it was tracked keeps its slot: clear it, so that a
        // recycled thread id does not start in the next container of this group.
        for &tid in &t.initial_tids {
            if !crate::host::proc::exists(tid)
                && self.observer.group_of(tid).ok().flatten() == Some(group)
            {
                let _ = self.observer.untrack(tid);
            }
        }
        if let Err(e) = self
            .observer
            .reset_group(group)
            .and_then(|()| self.observer.forget_args(&hashes))
        {
            // Never reuse a group whose counts could leak into another container's file.
            tracing::error!(group, error = %e, "cannot reset group; it is retired");
            return;
        }
        self.free.push(group);
    }
}
