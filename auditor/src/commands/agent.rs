//! `auditor agent --socket PATH [--lxc-socket PATH] --policy-dir DIR [--audit-log FILE]`: the
//! seccomp agent for container runtimes (see [`crate::agent`]).
//!
//! Runs in the foreground until SIGINT/SIGTERM; SIGHUP reopens the audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::shared::ImportArgs;
use crate::agent::{self, policies::PolicyDir, Context};
use crate::broker::audit::AuditLog;

/// `auditor agent`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The OCI seccomp agent socket runc and crun connect to (the profile's `listenerPath`)
    /// [config: agent.socket].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The socket LXC's `lxc.seccomp.notify.proxy` points at (`unix:PATH`) [config:
    /// agent.lxc_socket].
    #[arg(long, value_name = "PATH")]
    pub lxc_socket: Option<PathBuf>,
    /// The directory of policies: NAME.toml (native) or NAME.json (OCI); a container names
    /// its policy in `listenerMetadata`, LXC's notify cookie or (with
    /// --policy-from-annotation) its `org.auditor.policy` annotation; `default`
    /// serves those that name none [config: agent.policy_dir].
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Let a container name its policy with the `org.auditor.policy` annotation when its
    /// profile's `listenerMetadata` names none. Off by default: CRI-O and podman copy pod and
    /// user annotations onto containers, so with this on the workload's author picks the
    /// policy (among those in --policy-dir). Without it such a container gets `default`, and
    /// the agent says so in its log and in every audit record (`policy_from`) [config:
    /// agent.policy_from_annotation].
    #[arg(long)]
    pub policy_from_annotation: bool,
    /// How long an emulation (mknod, mount, setxattr on the caller's behalf) may take before
    /// the call is answered EIO without waiting for it (a path on a stalled FUSE or network
    /// file system, say); the helper is killed and reaped in the background. At most 25s
    /// (LXC's proxy gives up after 30 s) [config: agent.helper_timeout; default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = crate::broker::check_helper_timeout)]
    pub helper_timeout: Option<std::time::Duration>,
    /// When an emulation misses its deadline, abort the FUSE connections it may be stuck on:
    /// those mounted in the caller's own mount namespace with requests waiting (never one the
    /// host's mount namespace shows too). Without it a helper stuck in a request its FUSE
    /// server has read stays until that server answers or dies [config:
    /// agent.abort_stalled_fuse].
    #[arg(long)]
    pub abort_stalled_fuse: bool,
    /// Append one JSON line per decision to this file (reopened on SIGHUP) [config:
    /// agent.audit_log].
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Serve Prometheus metrics (`/metrics`: decisions per policy, syscall and decision,
    /// latency, emulation errors, containers served) and health checks (`/healthz`,
    /// `/readyz`) on this address, e.g. 127.0.0.1:9465 (port 0: any free port, logged)
    /// [config: agent.metrics_addr; default: off].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Complain mode, for every container it serves: a call its policy would refuse is
    /// allowed (CONTINUE) and recorded as `complain` — pair it with profiles whose filter sends
    /// what they would refuse to the agent (`defaultAction: SCMP_ACT_NOTIFY`), to see what a
    /// policy would break before enforcing it (`auditor tui`'s Drift view). Emulations still
    /// run as in enforce mode.
    #[arg(long)]
    pub complain: bool,
    /// How long a prompt waits for an answer before it denies the call (EPERM): containers
    /// whose policy's default action is `notify` are served interactively — every call no
    /// rule decides is held and shown on the live session (`auditor tui`), naming its
    /// container. LXC containers' prompts wait at most 25s (LXC's proxy gives up after 30 s)
    /// [config: agent.prompt_timeout; default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = crate::config::check_prompt_timeout)]
    pub prompt_timeout: Option<std::time::Duration>,
    /// A container whose listener notifies more calls a second than this (over 100 ms) is
    /// served from idle CPU time (its broker thread runs SCHED_IDLE) until its rate falls
    /// below half of it: every call is still answered, but other containers and the host run
    /// first, so a flood cannot take the CPU the agent spends on its behalf (which no
    /// container CPU limit covers). 0: never [config: agent.flood_rate; default: 20000].
    #[arg(long, value_name = "CALLS")]
    pub flood_rate: Option<u64>,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &AgentArgs, config: &crate::config::Loaded) -> anyhow::Result<ExitCode> {
    super::require_root("auditor agent")?;
    let mode = if args.complain {
        crate::broker::Mode::Complain
    } else {
        crate::broker::Mode::Enforce
    };
    let import = args.import.options()?;
    // Socket activation: the unit's sockets replace --socket/--lxc-socket. Fds this service
    // stored (a crash-restart under systemd) come back with them.
    let passed = crate::host::activation::take()?;
    let inherited = passed.sockets;
    let store = crate::agent::store::Store::open(passed.stored)?.map(Arc::new);
    let args = &config.agent(crate::config::AgentFlags {
        activated: !inherited.is_empty(),
        socket: args.socket.clone(),
        lxc_socket: args.lxc_socket.clone(),
        policy_dir: args.policy_dir.clone(),
        audit_log: args.audit_log.clone(),
        policy_from_annotation: args.policy_from_annotation,
        helper_timeout: args.helper_timeout,
        abort_stalled_fuse: args.abort_stalled_fuse,
        prompt_timeout: args.prompt_timeout,
        metrics_addr: args.metrics_addr,
        flood_rate: args.flood_rate,
    })?;
    // A successor takes the OCI side over (agent::oci::handover); LXC's proxy connections
    // cannot be handed over yet, so a successor must not need that socket too: found out
    // here, before anything is taken over (a failure after the takeover would close the
    // adopted listeners).
    if let (Some(s), Some(lxc)) = (&args.socket, &args.lxc_socket) {
        let serving = std::os::unix::net::UnixStream::connect(s).is_ok()
            && agent::oci::handover::socket_path(s).exists();
        if serving {
            anyhow::bail!(
                "{}: an agent serves it, and this one would take it over, but not {} (LXC's \
                 proxy connections are not handed over): start the successor with --socket \
                 only, or stop the running agent first",
                s.display(),
                lxc.display()
            );
        }
    }
    crate::broker::set_helper_limits(args.helper_timeout, args.abort_stalled_fuse);
    let policies = PolicyDir::open(&args.policy_dir, import)?;
    let audit = match &args.audit_log {
        Some(p) => Some(AuditLog::open(p)?),
        None => None,
    };
    if audit.is_some() {
        // The brokers' exec watch (see broker::ExeCache): loaded now rather than on the first
        // container's start. Without it the executables are read on every call.
        let _ = crate::bpf::ExecWatch::shared();
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = args
        .metrics_addr
        .map(|_| crate::metrics::AgentMetrics::register(&mut registry));
    // The live session `auditor tui` attaches to: every container's decisions. Not being able
    // to publish it (no /run/auditor) costs the view, never the agent.
    let mut live = {
        let mut details = crate::session::publisher::SessionDetails::default();
        let d = &mut details.details;
        if let Some(s) = &args.socket {
            d.insert("socket".into(), s.display().to_string());
        }
        if let Some(s) = &args.lxc_socket {
            d.insert("lxc socket".into(), s.display().to_string());
        }
        d.insert("policy dir".into(), args.policy_dir.display().to_string());
        if let Some(a) = &args.audit_log {
            d.insert("audit log".into(), a.display().to_string());
        }
        match crate::session::Publisher::start(crate::session::SessionKind::Agent, details) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "cannot publish the live session; `auditor tui` will not see this agent");
                None
            }
        }
    };
    let ctx = Arc::new(Context {
        policies,
        audit: audit.as_ref().map(AuditLog::sender),
        live: live.as_ref().map(crate::session::Publisher::sender),
        policy_from_annotation: args.policy_from_annotation,
        metrics,
        store,
        reload: Arc::new(tokio::sync::Notify::new()),
        reloads: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        mode,
        prompts: Arc::new(agent::prompts::PromptRouter::new(args.prompt_timeout)),
        flood_rate: args.flood_rate,
    });
    // Answers to the prompts of interactive policies, each routed to its container's broker.
    let answers = live
        .as_mut()
        .and_then(crate::session::Publisher::take_answers);
    let reload = ctx.reload.clone();
    let reloads = ctx.reloads.clone();
    let ask_reload = move || {
        reloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        reload.notify_one();
    };
    // `auditor tui` may ask for a reload (its Drift view, after adding rules).
    let mut requests = live
        .as_mut()
        .and_then(crate::session::Publisher::take_requests);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let cancel = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        // The sockets are bound by the tasks below before they accept; the agent is ready once
        // they run (a failed bind ends the agent, and with it the endpoint).
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(addr) = args.metrics_addr {
            // Taking over from a running agent (see `agent::oci::handover`), the address is
            // still the old agent's until it exits: bound as soon as it is free.
            let successor = args
                .socket
                .as_deref()
                .is_some_and(|s| agent::oci::handover::socket_path(s).exists());
            let (registry, ready, cancel) = (Arc::new(registry), ready.clone(), cancel.clone());
            match crate::metrics::bind(addr).await {
                Ok(listener) => {
                    let local = listener.local_addr()?;
                    eprintln!("auditor agent: metrics on http://{local}/metrics");
                    tracing::info!(%local, "metrics endpoint");
                    tokio::spawn(crate::metrics::serve(listener, registry, ready, cancel));
                }
                Err(crate::metrics::MetricsError::Bind { source, .. })
                    if successor && source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tokio::spawn(async move {
                        let t0 = std::time::Instant::now();
                        loop {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            match crate::metrics::bind(addr).await {
                                Ok(listener) => {
                                    tracing::info!(%addr, "metrics endpoint (free now that the agent before has exited)");
                                    crate::metrics::serve(listener, registry, ready, cancel).await;
                                    return;
                                }
                                Err(e) if t0.elapsed() > std::time::Duration::from_secs(60) => {
                                    tracing::error!(error = %e, "metrics endpoint: the address is still in use a minute after the takeover; serving without metrics");
                                    return;
                                }
                                Err(_) => {}
                            }
                        }
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(a) = answers {
            tokio::spawn(ctx.prompts.clone().run(a));
        }
        if let Some(s) = args.socket.clone() {
            let (ctx, cancel) = (ctx.clone(), cancel.clone());
            tasks.spawn(async move {
                agent::oci::serve(&s, ctx, cancel)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.display()))
            });
        }
        if let Some(s) = args.lxc_socket.clone() {
            let (ctx, cancel) = (ctx.clone(), cancel.clone());
            tasks.spawn(async move {
                agent::lxc::serve(&s, ctx, cancel)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.display()))
            });
        }
        for i in inherited {
            let (ctx, cancel) = (ctx.clone(), cancel.clone());
            match i.kind {
                nix::sys::socket::SockType::Stream => tasks.spawn(async move {
                    agent::oci::serve_inherited(i.fd, ctx, cancel)
                        .await
                        .map_err(|e| anyhow::anyhow!("the passed stream socket: {e}"))
                }),
                nix::sys::socket::SockType::SeqPacket => tasks.spawn(async move {
                    agent::lxc::serve_inherited(i.fd, ctx, cancel)
                        .await
                        .map_err(|e| anyhow::anyhow!("the passed seqpacket socket: {e}"))
                }),
                other => anyhow::bail!(
                    "a passed socket is {other:?}: give the OCI agent a stream socket \
                     (ListenStream=) and LXC's proxy a seqpacket one (ListenSequentialPacket=)"
                ),
            };
        }
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        // Type=notify: ready (and for a successor, NotifyAccess=all: it said MAINPID= when it
        // took over).
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
            tracing::warn!(error = %e, "cannot tell the service manager the agent is ready");
        }
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr2 = signal(SignalKind::user_defined2())?;
        let mut first_error = None;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    if let Some(a) = &audit {
                        a.reopen();
                    }
                    ask_reload();
                }
                _ = usr2.recv() => start_successor(args.socket.as_deref()),
                Some(req) = async {
                    match requests.as_mut() {
                        Some(r) => r.recv().await,
                        None => std::future::pending().await,
                    }
                } => match req.message {
                    crate::session::protocol::ClientMessage::Reload => {
                        tracing::info!(by = %req.by, "reload asked by a live-session client");
                        ask_reload();
                    }
                    other => tracing::warn!(by = %req.by, request = ?other, "a request the agent does not take; ignored"),
                },
                done = tasks.join_next() => match done {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        first_error = Some(e);
                        break;
                    }
                    Some(Err(e)) => {
                        first_error = Some(anyhow::anyhow!("a listener task failed: {e}"));
                        break;
                    }
                },
            }
        }
        cancel.cancel();
        while tasks.join_next().await.is_some() {}
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    drop(ctx);
    drop(live);
    if let Some(a) = audit {
        let s = a.finish();
        eprintln!(
            "auditor agent: {} decision(s) logged, {} dropped",
            s.records, s.dropped
        );
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// SIGUSR2 (`ExecReload=` of the unit): start a successor — the binary now at this one's path
/// (an upgrade replaced it) with the same arguments — which takes the OCI socket and every
/// listener over (`agent::oci::handover`); this agent then exits 0. Its exit is reaped here
/// and logged if it fails (this agent then serves on).
fn start_successor(socket: Option<&std::path::Path>) {
    let Some(socket) = socket else {
        tracing::warn!("SIGUSR2: no --socket (socket activation, or LXC only): nothing a successor could take over; ignored");
        return;
    };
    // After an upgrade /proc/self/exe names the replaced file "PATH (deleted)".
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => {
            let s = p.to_string_lossy();
            std::path::PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGUSR2: cannot tell this agent's executable; no successor");
            return;
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(&args).stdin(std::process::Stdio::null());
    match cmd.spawn() {
        Ok(mut child) => {
            let pid = child.id();
            tracing::info!(successor = pid, exe = %exe.display(), socket = %socket.display(), "SIGUSR2: started a successor to take over");
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(st) if st.success() => {}
                    Ok(st) => {
                        tracing::warn!(successor = pid, status = %st, "the successor exited; this agent serves on")
                    }
                    Err(e) => {
                        tracing::warn!(successor = pid, error = %e, "cannot wait for the successor")
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(exe = %exe.display(), error = %e, "SIGUSR2: cannot start a successor; serving on")
        }
    }
}
