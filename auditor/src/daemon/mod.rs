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
mod live;
pub mod protocol;
mod socket;
pub mod state;

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

use crate::bpf::{pin, BpfError, Event, Observer, ObserverConfig};
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
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(
        "{dir} holds pinned eBPF programs but their registry {state} is missing or unreadable: nobody knows \
         which container each group is; run `auditor daemon --uninstall` (their counts are lost)"
    )]
    NoRegistry { dir: PathBuf, state: PathBuf },
    #[error(
        "another auditor daemon serves instance {instance} (it holds {lock}); stop it first, or \
         give another --instance"
    )]
    InstanceBusy { instance: String, lock: PathBuf },
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
    /// Names the pins (`/sys/fs/bpf/auditor/INSTANCE`) and the registry
    /// (`STATE_DIR/INSTANCE.json`) a restarted daemon adopts.
    pub instance: String,
    /// Where the registry goes ([`state::STATE_DIR`]).
    pub state_dir: PathBuf,
}

impl Config {
    fn pins(&self) -> PathBuf {
        pin::instance_dir(&self.instance)
    }

    fn state_path(&self) -> PathBuf {
        state::path(&self.state_dir, &self.instance)
    }

    fn lock_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.lock", self.instance))
    }
}

/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Engine inspects running at once, and how long one may take.
const MAX_INSPECTS: usize = 16;
const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often finished containers are looked for.
const TICK: Duration = Duration::from_millis(50);
/// How often the registry is saved while the ring buffer brings news (names, arguments).
const CHECKPOINT: Duration = Duration::from_secs(1);
/// How long a starting daemon waits for a stopping one to let go of the instance.
const LOCK_WAIT: Duration = Duration::from_secs(10);

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
    /// Its observation file.
    output: PathBuf,
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
    /// Groups that could not be reset, never reused.
    retired: Vec<u32>,
    /// The ring buffer brought something the registry does not hold yet.
    dirty: bool,
    last_save: Instant,
    /// Events drained from the ring buffer, not absorbed yet.
    buf: Vec<Event>,
    state_path: PathBuf,
    /// Who is tracked, for the live session's reader.
    live: live::Shared,
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
    // The instance first: a daemon that is stopping still owns its pins and its socket.
    let _lock = lock_instance(&config, LOCK_WAIT)?;
    let listener = bind(&config.socket)?;
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(io(&config.socket, "installing signal handlers"))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(io(&config.socket, "installing signal handlers"))?;

    let mut learner = Learner::open(&config).inspect_err(|_| {
        let _ = std::fs::remove_file(&config.socket);
    })?;
    let groups = learner.observer.groups();
    let mut events = learner.observer.take_events()?;
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
    // What the kernel side kept while no daemon ran.
    events.drain(&mut learner.buf);
    learner.absorb_buffered();
    learner.persist(false);
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
    tracing::info!(socket = %config.socket.display(), output = %config.output_dir.display(), groups, instance = %config.instance, "auditor daemon ready");
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
    // Adopted containers whose engine had not answered yet.
    let unnamed: Vec<String> = learner.tracked.values().map(|t| t.id.clone()).collect();
    for id in unnamed {
        learner.ask_engine(&id, &inspects, &itx);
    }
    if let Some(m) = &learner.metrics {
        m.tracked.set(learner.tracked.len() as i64);
    }
    // The live session (`auditor tui`), read by a thread of its own.
    let mut live_session = match crate::session::Publisher::start(
        crate::session::SessionKind::Daemon,
        crate::session::publisher::SessionDetails {
            command: Vec::new(),
            details: [
                ("socket".to_owned(), config.socket.display().to_string()),
                ("output".to_owned(), config.output_dir.display().to_string()),
                ("instance".to_owned(), config.instance.clone()),
            ]
            .into(),
        },
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "no live session: `auditor tui` cannot attach to this daemon");
            None
        }
    };
    let mut requests = live_session
        .as_mut()
        .and_then(crate::session::Publisher::take_requests);
    let live_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    learner.publish_registry();
    let reader = live_session.as_ref().and_then(|p| {
        live::spawn(
            config.pins(),
            learner.live.clone(),
            p.sender(),
            live_stop.clone(),
        )
        .map_err(|e| tracing::warn!(error = %e, "live session: cannot start its reader"))
        .ok()
    });
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            g = ring.readable_mut() => {
                match g {
                    Ok(mut g) => {
                        events.drain(&mut learner.buf);
                        learner.absorb_buffered();
                        g.clear_ready();
                    }
                    Err(e) => tracing::error!(error = %e, "ring buffer readiness"),
                }
            }
            Some(job) = rx.recv() => {
                // Events of earlier containers first, so that a recycled group starts clean.
                events.drain(&mut learner.buf);
                learner.absorb_buffered();
                let id = job.register.id.clone();
                let reply = learner.register(job.register);
                if reply.ok {
                    learner.ask_engine(&id, &inspects, &itx);
                }
                if let Some(m) = &learner.metrics {
                    let result = if reply.ok { "ok" } else { "refused" };
                    m.registrations
                        .get_or_create(&crate::metrics::ResultLabels { result: result.into() })
                        .inc();
                    m.tracked.set(learner.tracked.len() as i64);
                }
                if reply.ok {
                    learner.persist(false);
                }
                let _ = job.reply.send(reply);
            }
            Some((id, identity)) = irx.recv() => {
                learner.identified(&id, identity);
                learner.publish_registry();
            }
            Some(req) = async {
                match requests.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                events.drain(&mut learner.buf);
                learner.absorb_buffered();
                let said = match &req.message {
                    crate::session::protocol::ClientMessage::WriteCandidate { container } => {
                        learner.write_candidate(container)
                    }
                    other => format!("the daemon takes no {other:?} request"),
                };
                tracing::info!(by = %req.by, "{said}");
                if let Some(p) = &live_session {
                    p.send(crate::session::publisher::Event::Notice(said));
                }
            }
            _ = tick.tick() => {
                let done = learner.finished();
                if !done.is_empty() {
                    events.drain(&mut learner.buf);
                    learner.absorb_buffered();
                    for g in done {
                        learner.finish(g);
                    }
                    learner.persist(false);
                } else if learner.dirty && learner.last_save.elapsed() >= CHECKPOINT {
                    learner.persist(false);
                }
            }
        }
    }
    // Shutdown: stop accepting, then write what every container still running did so far.
    cancel.cancel();
    let _ = acceptor.await;
    events.drain(&mut learner.buf);
    learner.absorb_buffered();
    drop(ring);
    drop(events);
    live_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = reader {
        let _ = r.join();
    }
    if let Some(p) = live_session {
        p.finish("the daemon stopped");
    }
    learner.stop(&config);
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

/// The instance's lock (`STATE_DIR/INSTANCE.lock`), held while a daemon serves it or
/// `--uninstall` works on it; waits up to `wait` for a daemon that is stopping. Whoever leaves
/// nothing pinned removes the file while holding it.
fn lock_instance(
    config: &Config,
    wait: Duration,
) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = config.lock_path();
    let io = |what| {
        let path = path.clone();
        move |source| DaemonError::Io { path, what, source }
    };
    if !config.state_dir.exists() {
        std::fs::create_dir_all(&config.state_dir).map_err(io("creating the state directory"))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("restricting the state directory"))?;
    }
    let t0 = Instant::now();
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening the instance lock"))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                // The holder it waited for may have removed the file (a stop that unpinned
                // everything): a lock on a removed file locks nothing.
                use std::os::unix::fs::MetadataExt as _;
                let held = lock.metadata().map(|m| m.ino()).ok();
                if held.is_some() && held == std::fs::metadata(&path).map(|m| m.ino()).ok() {
                    return Ok(lock);
                }
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                // A daemon that answers on the socket is not stopping: say so at once.
                if std::os::unix::net::UnixStream::connect(&config.socket).is_ok() {
                    return Err(DaemonError::InUse {
                        path: config.socket.clone(),
                    });
                }
                if t0.elapsed() >= wait {
                    return Err(DaemonError::InstanceBusy {
                        instance: config.instance.clone(),
                        lock: path,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, e)) => return Err(io("locking the instance")(std::io::Error::from(e))),
        }
    }
}

/// `auditor daemon --uninstall`: write the observation of every container the pinned programs
/// still count (as a stopped daemon would have), then remove the pins and the registry. With
/// `force`, pins of another build are removed unread.
pub fn uninstall(config: &Config, force: bool) -> Result<String, DaemonError> {
    let _lock = lock_instance(config, Duration::ZERO)?;
    let dir = config.pins();
    let state_path = config.state_path();
    let said = match pin::inspect(&dir)? {
        pin::Pinned::Nothing => {
            let stale = state::load(&state_path).ok().flatten();
            let _ = std::fs::remove_file(&state_path);
            match stale {
                Some(s) if !s.containers.is_empty() => format!(
                    "nothing is pinned at {}; removed a registry of {} containers whose programs \
                     were already gone",
                    dir.display(),
                    s.containers.len()
                ),
                _ => format!("nothing is pinned at {}", dir.display()),
            }
        }
        pin::Pinned::Ours if matches!(state::load(&state_path), Ok(Some(_))) => {
            let mut learner = Learner::open(config)?;
            let mut events = learner.observer.take_events()?;
            events.drain(&mut learner.buf);
            learner.absorb_buffered();
            let n = learner.tracked.len();
            for g in learner.finished() {
                learner.finish(g);
            }
            let running = learner.write_running();
            learner.observer.unpin()?;
            let _ = std::fs::remove_file(&state_path);
            format!(
                "removed the pins at {}: wrote the observations of {n} containers ({running} \
                 still running) to their files",
                dir.display()
            )
        }
        pin::Pinned::Ours if !force => {
            return Err(DaemonError::NoRegistry {
                dir,
                state: state_path,
            })
        }
        pin::Pinned::Other(theirs) if !force => {
            return Err(BpfError::ForeignPins {
                dir,
                theirs,
                ours: pin::object_id(),
            }
            .into())
        }
        pin::Pinned::Ours | pin::Pinned::Other(_) => {
            pin::remove(&dir)?;
            let _ = std::fs::remove_file(&state_path);
            format!("removed the pins at {} unread (--force)", dir.display())
        }
    };
    let _ = std::fs::remove_file(config.lock_path());
    Ok(said)
}

impl Learner {
    /// Load and pin the observer, or adopt the one a previous daemon of this instance pinned,
    /// with the containers it was learning.
    fn open(config: &Config) -> Result<Learner, DaemonError> {
        let dir = config.pins();
        let state_path = config.state_path();
        let (observer, saved) = match pin::inspect(&dir)? {
            pin::Pinned::Nothing => {
                if let Ok(Some(old)) = state::load(&state_path) {
                    if !old.containers.is_empty() {
                        let ids: Vec<&str> = old.containers.iter().map(|c| c.id.as_str()).collect();
                        tracing::warn!(?ids, "a registry without pinned programs (removed, or the host rebooted): these containers' learning is lost");
                    }
                }
                let groups = config.max_containers.clamp(1, slot::MAX_GROUPS);
                let observer = Observer::load_pinned(
                    &ObserverConfig {
                        arg_specs: observe::args::kernel_specs(),
                        groups,
                        cgroup_groups: true,
                        mntns_groups: true,
                        ..Default::default()
                    },
                    &dir,
                )?;
                (observer, None)
            }
            pin::Pinned::Ours => {
                let saved = match state::load(&state_path) {
                    Ok(Some(s)) if s.object == pin::object_id() => s,
                    Ok(_) | Err(_) => {
                        return Err(DaemonError::NoRegistry {
                            dir,
                            state: state_path,
                        })
                    }
                };
                (Observer::adopt(&dir)?, Some(saved))
            }
            pin::Pinned::Other(theirs) => {
                return Err(BpfError::ForeignPins {
                    dir,
                    theirs,
                    ours: pin::object_id(),
                }
                .into())
            }
        };
        let groups = observer.groups();
        let mut learner = Learner {
            observer,
            config: config.clone(),
            tracked: HashMap::new(),
            free: Vec::new(),
            orphan_events: 0,
            inspecting: Default::default(),
            metrics: None,
            retired: Vec::new(),
            dirty: false,
            last_save: Instant::now(),
            buf: Vec::new(),
            state_path,
            live: Default::default(),
        };
        if let Some(saved) = saved {
            if groups != config.max_containers.clamp(1, slot::MAX_GROUPS) {
                tracing::warn!(
                    pinned = groups,
                    asked = config.max_containers,
                    "the pinned programs were loaded for another --max-containers: they keep theirs until no container is tracked at a stop"
                );
            }
            learner.restore(saved);
        }
        learner.free = (0..groups)
            .rev()
            .filter(|g| !learner.tracked.contains_key(g) && !learner.retired.contains(g))
            .collect();
        Ok(learner)
    }

    /// Take back what a previous daemon saved.
    fn restore(&mut self, saved: state::State) {
        let counts = (0..self.observer.groups())
            .map(|g| self.observer.counters_of(g))
            .collect::<Result<Vec<_>, _>>();
        let lost: u64 = match &counts {
            Ok(c) => c
                .iter()
                .map(|c| {
                    c[counters::RINGBUF_LOST_ARGS as usize]
                        + c[counters::RINGBUF_LOST_EXEC as usize]
                        + c[counters::RINGBUF_LOST_REFUSED as usize]
                })
                .sum(),
            Err(_) => 0,
        };
        if !saved.clean {
            tracing::warn!("the previous daemon did not stop cleanly (killed or crashed): executable names and argument tuples it read after its last checkpoint (at most a second's worth) are missing from its containers' observations; their counts are complete");
        }
        self.orphan_events = saved.orphan_events;
        self.retired = saved.retired;
        let n = saved.containers.len();
        for c in saved.containers {
            if c.group >= self.observer.groups() || self.tracked.contains_key(&c.group) {
                tracing::error!(id = %c.id, group = c.group, "the registry names a group the pinned programs do not have, or twice: container dropped");
                continue;
            }
            let mut args_events = Vec::with_capacity(c.args_events.len());
            for hex in &c.args_events {
                match state::from_hex(hex).and_then(|b| crate::bpf::decode_args(&b)) {
                    Some(a) => args_events.push(a),
                    None => {
                        tracing::error!(id = %c.id, "an argument tuple in the registry does not decode: dropped")
                    }
                }
            }
            let collected = build::Collected {
                exe_names: c.exe_names.into_iter().collect(),
                initial_exes: c.initial_exes,
                args_events,
                malformed_events: c.malformed_events,
                start_boot_ns: c.start_boot_ns,
                initial_threads: c.initial_threads,
                ..Default::default()
            };
            self.tracked.insert(
                c.group,
                Tracked {
                    id: c.id,
                    runtime: c.runtime,
                    identity: engine::Identity {
                        engine: c.engine,
                        name: c.name,
                        image: c.image,
                        labels: c.labels,
                    },
                    pid: c.pid,
                    cgroup: c.cgroup,
                    mntns: c.mntns,
                    initial_tids: c.initial_tids,
                    collected,
                    started: SystemTime::UNIX_EPOCH + Duration::from_millis(c.started_ms),
                    output: c.output,
                },
            );
        }
        tracing::info!(
            containers = n,
            ringbuf_lost = lost,
            "adopted the pinned eBPF programs and the containers they kept learning"
        );
        eprintln!(
            "auditor daemon: adopted the pinned programs at {}: {n} containers go on being learned",
            self.config.pins().display()
        );
        if lost > 0 {
            tracing::warn!(lost, "the ring buffer overflowed (exec names, argument tuples): the counts are complete, what overflowed is counted in each observation's `loss`");
        }
    }

    /// Tell the live session's reader who is tracked now.
    fn publish_registry(&self) {
        let tracked = self
            .tracked
            .iter()
            .map(|(&g, t)| {
                (
                    g,
                    live::Meta {
                        id: t.id.clone(),
                        name: t.identity.name.clone(),
                        engine: t.identity.engine.clone(),
                        runtime: t.runtime.clone(),
                        image: t.identity.image.clone(),
                        started_at: humantime::format_rfc3339_seconds(t.started).to_string(),
                        output: t.output.display().to_string(),
                    },
                )
            })
            .collect();
        if let Ok(mut r) = self.live.lock() {
            r.tracked = tracked;
            // Those ended stay named until the reader has seen them go (a minute).
            if r.ended.len() > 4096 {
                r.ended.drain(..2048);
            }
        }
    }

    /// Save the registry (atomically); `clean` at a stop that saved all it read.
    fn persist(&mut self, clean: bool) {
        self.publish_registry();
        let containers = self
            .tracked
            .iter()
            .map(|(&group, t)| state::Saved {
                group,
                id: t.id.clone(),
                runtime: t.runtime.clone(),
                engine: t.identity.engine.clone(),
                name: t.identity.name.clone(),
                image: t.identity.image.clone(),
                labels: t.identity.labels.clone(),
                pid: t.pid,
                cgroup: t.cgroup.clone(),
                mntns: t.mntns,
                initial_tids: t.initial_tids.clone(),
                output: t.output.clone(),
                started_ms: t
                    .started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                start_boot_ns: t.collected.start_boot_ns,
                initial_threads: t.collected.initial_threads,
                initial_exes: t.collected.initial_exes.clone(),
                exe_names: t
                    .collected
                    .exe_names
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect(),
                args_events: t
                    .collected
                    .args_events
                    .iter()
                    .map(|a| state::to_hex(&crate::bpf::encode_args(a)))
                    .collect(),
                malformed_events: t.collected.malformed_events,
            })
            .collect();
        let s = state::State {
            format: state::FORMAT,
            object: pin::object_id(),
            socket: self.config.socket.clone(),
            clean,
            orphan_events: self.orphan_events,
            retired: self.retired.clone(),
            containers,
        };
        match state::save(&self.state_path, &s) {
            Ok(()) => {
                self.dirty = false;
                self.last_save = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot save the registry: a restarted daemon would not know these containers")
            }
        }
    }

    /// A clean stop: containers still running are written as they are now and stay counted by
    /// the pinned programs for the next daemon; with none, the programs are unpinned (they
    /// detach as this process exits).
    fn stop(&mut self, config: &Config) {
        if self.orphan_events > 0 {
            tracing::warn!(
                records = self.orphan_events,
                "ring buffer records of no tracked container"
            );
        }
        if self.tracked.is_empty() {
            if let Err(e) = self.observer.unpin() {
                tracing::error!(error = %e, "cannot remove the pins");
            }
            let _ = std::fs::remove_file(&self.state_path);
            let _ = std::fs::remove_file(config.lock_path());
            eprintln!("auditor daemon: stopped");
            return;
        }
        let n = self.write_running();
        self.persist(true);
        eprintln!(
            "auditor daemon: stopped; {n} running containers stay counted by the programs pinned at \
             {} (their observations so far are written): `auditor daemon --socket {}` goes on \
             learning them, `auditor daemon --uninstall --socket {}` writes them and removes the pins",
            config.pins().display(),
            config.socket.display(),
            config.socket.display()
        );
    }

    /// Write the observation of every tracked container as it is now, leaving its counting
    /// alone; how many.
    fn write_running(&mut self) -> usize {
        let groups: Vec<u32> = self.tracked.keys().copied().collect();
        for &g in &groups {
            if let Some(mut t) = self.tracked.remove(&g) {
                self.write(g, &mut t, true);
                self.tracked.insert(g, t);
            }
        }
        groups.len()
    }

    /// Write the candidate policy of what container `id` did so far beside its observation
    /// (`ID.candidate.toml`, native format); what happened, in words.
    fn write_candidate(&mut self, id: &str) -> String {
        let Some(&group) = self
            .tracked
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(g, _)| g)
        else {
            return format!(
                "container {id} is not being learned (it ended: generate its policy from its observation file)"
            );
        };
        let Some(mut t) = self.tracked.remove(&group) else {
            return format!("container {id} is not being learned");
        };
        let obs = self.observation_of(group, &mut t, true);
        let path = t.output.with_extension("candidate.toml");
        self.tracked.insert(group, t);
        let generated = match crate::policy::generate::generate(
            std::slice::from_ref(&obs),
            &crate::policy::generate::GenerateOptions::default(),
        ) {
            Ok(g) => g,
            Err(e) => return format!("no candidate policy for container {id}: {e}"),
        };
        let text = format!(
            "# Candidate policy of container {id}, from what it did until {} (auditor daemon).\n{}",
            humantime::format_rfc3339_seconds(SystemTime::now()),
            crate::policy::model::to_native(&generated.policy)
        );
        match crate::fsutil::write_atomic(&path, text.as_bytes()) {
            Ok(()) => format!(
                "candidate policy of {id} written to {} ({} allowed, {} notify, {} calls so far)",
                path.display(),
                generated.report.allowed.len(),
                generated.report.notified.len(),
                obs.syscalls.iter().map(|s| s.count).sum::<u64>()
            ),
            Err(e) => format!("cannot write the candidate policy of {id}: {e}"),
        }
    }

    /// Absorb the events drained into `buf`.
    fn absorb_buffered(&mut self) {
        let events = std::mem::take(&mut self.buf);
        self.absorb(events);
    }

    fn output_path(&self, id: &str) -> PathBuf {
        self.config.output_dir.join(format!("{id}.json"))
    }

    /// Ask the engine who container `id` is, off the loop, if it is Docker's or podman's and
    /// not named yet; the answer comes back on `itx`.
    fn ask_engine(
        &mut self,
        id: &str,
        inspects: &Arc<tokio::sync::Semaphore>,
        itx: &mpsc::Sender<(String, Result<engine::Identity, String>)>,
    ) {
        let Some(engine) = self.engine_to_ask(id) else {
            return;
        };
        match inspects.clone().try_acquire_owned() {
            Ok(permit) => {
                self.inspecting.insert(id.to_owned());
                let itx = itx.clone();
                let id = id.to_owned();
                tokio::spawn(async move {
                    let r = engine::inspect_identity(&engine, &id, INSPECT_TIMEOUT).await;
                    drop(permit);
                    let _ = itx.send((id, r)).await;
                });
            }
            Err(_) => {
                tracing::debug!(%id, "too many engine inspects at once: the observation names its engine only")
            }
        }
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
                self.finish(g);
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
                output: self.output_path(&r.id),
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
            self.dirty = true;
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
            let (forked, adopted, exited) = match self.observer.task_counts_of(g) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(id = %t.id, error = %e, "cannot read counters");
                    continue;
                }
            };
            let born = t.collected.initial_threads + forked + adopted;
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

    /// The container in `group` ended: write its observation and recycle the group.
    fn finish(&mut self, group: u32) {
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
        self.write(group, &mut t, false);
        if let Ok(mut r) = self.live.lock() {
            r.ended.push(t.id.clone());
        }
        if let Some(m) = &self.metrics {
            m.tracked.set(self.tracked.len() as i64);
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
        let hashes: Vec<u64> = t.collected.args_events.iter().map(|a| a.hash).collect();
        if let Err(e) = self
            .observer
            .reset_group(group)
            .and_then(|()| self.observer.forget_args(&hashes))
        {
            // Never reuse a group whose counts could leak into another container's file.
            tracing::error!(group, error = %e, "cannot reset group; it is retired");
            self.retired.push(group);
            return;
        }
        self.free.push(group);
    }

    /// Write the observation of the container in `group` as the maps hold it now
    /// (`still_running`: it goes on, at a stop or an uninstall).
    fn write(&mut self, group: u32, t: &mut Tracked, still_running: bool) {
        let obs = self.observation_of(group, t, still_running);
        let path = t.output.clone();
        if let Some(m) = &self.metrics {
            if !still_running {
                m.lost.inc_by(obs.loss.total);
                let calls = obs.syscalls.iter().map(|s| s.count).sum();
                m.observed_calls.inc_by(calls);
                if let Some(who) = crate::metrics::Who::of_target(&obs.target) {
                    m.observed(&who, calls, obs.syscalls.len() as u64);
                }
            }
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
                    still_running,
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
    }

    /// The observation of the container in `group` as the maps hold it now.
    fn observation_of(
        &mut self,
        group: u32,
        t: &mut Tracked,
        still_running: bool,
    ) -> model::Observation {
        match self.observer.snapshot_of(group) {
            Ok(s) => t.collected.snapshot = s,
            Err(e) => {
                tracing::error!(id = %t.id, error = %e, "cannot read the maps; the observation is incomplete")
            }
        }
        // A thread caught before its first exec'd name is known: name it from /proc if alive.
        if still_running {
            if let Some(p) = crate::host::proc::exe(t.pid) {
                t.collected
                    .exe_names
                    .entry(exe_id(p.as_bytes()))
                    .or_insert(p);
            }
        }
        let ended = SystemTime::now();
        build::build(
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
                duration_ms: ended
                    .duration_since(t.started)
                    .map_or(0, |d| d.as_millis() as u64),
            },
        )
    }
}
