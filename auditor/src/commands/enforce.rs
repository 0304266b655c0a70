//! `auditor enforce --policy POLICY [--mode enforce|complain] [--audit-log FILE]
//! [--userns[=RANGE]] [--rootfs DIR] -- CMD [ARGS...]`: run a workload under a policy's seccomp
//! filter, with auditor's broker deciding the calls the policy marks notify.
//!
//! The workload's exit status becomes auditor's (128 + N for a signal); SIGINT and SIGTERM are
//! forwarded to it; SIGHUP reopens the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::shared::{compile_policy_with, userns_of, ImportArgs};
use std::collections::HashMap;
use std::sync::Arc;

use auditor_common::slot;
use tokio::io::unix::AsyncFd;

use crate::bpf::{Event, EventReader, Observer, ObserverConfig};
use crate::broker::audit::{AuditLog, AuditSender};
use crate::broker::decide::Decider;
use crate::broker::refusals::{self, Answered};
use crate::broker::{prompt, Broker, Interactive, Mode};
use crate::launch::{self, Options};
use crate::policy::check::CheckOptions;
use crate::seccomp::notify;

/// How the policy is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Refusals are enforced by the filter; notify rules are decided by the broker.
    Enforce,
    /// Dry run: every call the policy would refuse is recorded and allowed.
    Complain,
}

/// `auditor enforce --policy POLICY [...] -- CMD [ARGS...]`
#[derive(Debug, Args)]
pub struct EnforceArgs {
    /// A native (TOML) or OCI/Docker JSON policy.
    #[arg(long)]
    pub policy: PathBuf,
    #[arg(long, value_enum, default_value = "enforce")]
    pub mode: ModeArg,
    /// Append one JSON line per decision to this file (reopened on SIGHUP). Calls the filter
    /// refuses by itself (errno, trap) are recorded from auditor's eBPF observer; calls it
    /// kills are not (they never return). Without the observer (no BPF), errno refusals go
    /// through the broker instead (one round trip each).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Run the workload as an unprivileged container: new user, mount, pid, uts and ipc
    /// namespaces, root inside mapped to HOST_UID:COUNT (default 100000:65536, for uids and
    /// gids), its own /proc, mounts recursively slave.
    #[arg(long, value_name = "RANGE", num_args = 0..=1, require_equals = true, default_missing_value = "100000:65536")]
    pub userns: Option<String>,
    /// With --userns: the container's root file system (must contain a `proc` directory).
    #[arg(long, value_name = "DIR", requires = "userns")]
    pub rootfs: Option<PathBuf>,
    #[command(flatten)]
    pub import: ImportArgs,
    #[command(flatten)]
    pub ui: super::shared::LiveUiArgs,
    /// Ask a person about every call the policy does not decide, instead of taking the default
    /// action: the call waits while a prompt is shown (with --tui, or in `auditor tui`
    /// attached to this session): allow once, allow always, deny once, deny always. Always
    /// answers apply at once and are appended to the policy file (comments kept), so that the
    /// next launch compiles them in. A native (TOML) policy only; root only. Not prompted:
    /// execve and write when no rule decides them (the launcher makes them before the broker
    /// runs: they take the default action) and exit/exit_group (allowed).
    #[arg(long)]
    pub interactive: bool,
    /// With --interactive: how long a prompt waits for an answer before it denies the call
    /// (EPERM, recorded in the audit log).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, requires = "interactive")]
    pub prompt_timeout: std::time::Duration,
    /// How long an emulation (mknod, mount, setxattr on the caller's behalf) may take before
    /// the call is answered EIO without waiting for it (a path on a stalled FUSE or network
    /// file system, say); the helper is killed and reaped in the background. At most 25s
    /// (LXC's proxy gives up after 30 s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::broker::check_helper_timeout)]
    pub helper_timeout: std::time::Duration,
    /// When an emulation misses its deadline, abort the FUSE connections it may be stuck on:
    /// those mounted in the caller's own mount namespace with requests waiting (never one the
    /// host's mount namespace shows too). Without it a helper stuck in a request its FUSE
    /// server has read stays until that server answers or dies.
    #[arg(long)]
    pub abort_stalled_fuse: bool,
    /// How long the workload gets to end after auditor forwards it SIGINT or SIGTERM; then
    /// it is killed (SIGKILL). A second SIGINT or SIGTERM kills it at once.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stop_timeout: std::time::Duration,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A workload asked to stop: the signal forwarded, and when it is killed if it does not end.
#[derive(Debug, Default)]
struct Stopping {
    /// The first signal forwarded, and the deadline it set.
    asked: Option<(Signal, tokio::time::Instant)>,
    killed: bool,
}

impl Stopping {
    /// Forward `sig`; the second request kills at once.
    fn asked(&mut self, child: &launch::Child, sig: Signal, grace: std::time::Duration) {
        match self.asked {
            None => {
                child.signal(sig);
                self.asked = Some((sig, tokio::time::Instant::now() + grace));
            }
            Some(_) if !self.killed => {
                eprintln!("auditor: {sig} again: killing the workload");
                child.signal(Signal::SIGKILL);
                self.killed = true;
            }
            Some(_) => {}
        }
    }

    /// Resolves when the grace period of a forwarded signal is over (never before one).
    async fn expired(&self) {
        match self.asked {
            Some((_, deadline)) if !self.killed => tokio::time::sleep_until(deadline).await,
            _ => std::future::pending().await,
        }
    }

    fn kill(&mut self, child: &launch::Child, grace: std::time::Duration) {
        if let Some((sig, _)) = self.asked {
            eprintln!(
                "auditor: the workload did not end within {} of {sig}: killing it",
                humantime::format_duration(grace)
            );
        }
        child.signal(Signal::SIGKILL);
        self.killed = true;
    }
}

pub fn run(args: &EnforceArgs) -> anyhow::Result<ExitCode> {
    let file = args.policy.display();
    if args.interactive && args.mode == ModeArg::Complain {
        anyhow::bail!(
            "--interactive decides calls, --mode complain only records them: use one or the other"
        );
    }
    crate::broker::set_helper_limits(args.helper_timeout, args.abort_stalled_fuse);
    let (policy, decider, mut filter) = compile_policy_with(
        &args.policy,
        &args.import.options()?,
        CheckOptions {
            interactive: args.interactive,
        },
    )?;
    // Enforcing with an audit log: the filter's own refusals come from the observer.
    let mut observer = None;
    let mode = match args.mode {
        ModeArg::Enforce => {
            if args.audit_log.is_some() {
                match Observer::load(&ObserverConfig {
                    emit_refusals: true,
                    ..Default::default()
                }) {
                    Ok(o) => observer = Some(o),
                    Err(e) => {
                        eprintln!("auditor: warning: cannot load the eBPF observer ({e}); errno refusals go through the broker instead, trap refusals are not recorded");
                        filter.audit_refusals();
                    }
                }
            }
            Mode::Enforce
        }
        ModeArg::Complain => {
            filter.complain();
            Mode::Complain
        }
    };
    let cmd = launch::Command::new_in(&args.command, args.rootfs.as_deref())?;
    let userns = userns_of(args.userns.as_deref(), args.rootfs.as_deref())?;
    if (userns.is_some() || filter.needs_listener()) && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "auditor enforce needs root for --userns, --interactive and notify rules (it writes id maps, publishes a root-only session and emulates calls on the workload's behalf): run it as root, e.g. with sudo"
        );
    }
    if args.interactive {
        // The policy file gets the always answers: find out now if it cannot.
        crate::fsutil::check_writable(&args.policy).with_context(|| {
            format!("{file}: --interactive appends always answers to the policy file")
        })?;
    }
    if filter.needs_listener() {
        notify::check_sizes()?;
    }
    let audit = match &args.audit_log {
        Some(p) => Some(AuditLog::open(p)?),
        None => None,
    };
    // --tui: the terminal and the workload's log, checked before anything starts.
    let ui = args.ui.prepare(crate::session::SessionKind::Enforce)?;
    let stdio = match &ui {
        Some(ui) => Some(ui.workload_stdio()?),
        None => None,
    };

    // Signals are handled from before the workload is forked: an early Ctrl-C then reaches
    // the workload rather than ending auditor alone, and the workload never inherits a
    // disposition auditor was started with (the launcher resets the forwarded ones too).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (mut int, mut term, mut hup) = {
        let _in_rt = rt.enter();
        (
            signal(SignalKind::interrupt()).context("SIGINT handler")?,
            signal(SignalKind::terminate()).context("SIGTERM handler")?,
            signal(SignalKind::hangup()).context("SIGHUP handler")?,
        )
    };
    let held = launch::spawn_held_with(
        &cmd,
        &Options {
            filter: Some(filter),
            userns,
            stdio,
        },
    )?;
    let mut events = None;
    if let Some(o) = &mut observer {
        let tracked = o
            .track(held.pid(), 0, slot::WAIT_EXEC)
            .and_then(|()| o.take_events());
        match tracked {
            Ok(e) => events = Some(e),
            Err(e) => {
                held.abort();
                return Err(e.into());
            }
        }
    }
    let (child, listener) = held.release_with_listener()?;
    tracing::info!(
        pid = child.workload_pid(),
        listener = listener.is_some(),
        "workload started"
    );
    let answered = Arc::new(Answered::default());
    // The broker takes the decider; refusals need their own copy of the rules.
    let refusal_decider = match events {
        Some(_) => Some(Decider::new(policy.clone()).map_err(|e| anyhow::anyhow!("{file}: {e}"))?),
        None => None,
    };
    let broker = listener.map(|fd| {
        Broker::new(
            notify::NotifyFd::new(fd),
            decider,
            mode,
            audit.as_ref().map(AuditLog::sender),
        )
        .with_answered(answered.clone())
    });
    // The live session for `auditor tui` (see crate::session); enforcing goes on without it,
    // unless it was asked to show it (--tui).
    let mut live = match start_live(args, child.workload_pid()) {
        Ok(p) => Some(p),
        Err(e) if ui.is_some() || args.interactive => {
            child.signal(Signal::SIGKILL);
            let _ = child.wait();
            return Err(e)
                .context("--tui and --interactive need the live session (run auditor as root)");
        }
        Err(e) => {
            tracing::warn!(error = %e, "no live session for auditor tui");
            None
        }
    };
    let broker = broker.map(|b| match &live {
        Some(p) => b.with_live(p.sender()),
        None => b,
    });
    let answers = live
        .as_mut()
        .and_then(crate::session::Publisher::take_answers);
    let broker = match (broker, answers) {
        (Some(b), Some(answers)) if args.interactive => Some(b.with_interactive(Interactive {
            timeout: args.prompt_timeout,
            max_held: prompt::MAX_HELD,
            answers,
            policy_file: args.policy.clone(),
            id_base: 0,
            arity: match crate::syscalls::arity::Arity::load() {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("auditor: warning: {e}: prompts compare all six argument registers, so calls that differ only in leftovers get prompts of their own");
                    Default::default()
                }
            },
        })),
        (b, _) => b,
    };
    let stats = broker.as_ref().map(Broker::stats);

    let ui = match (ui, &live) {
        (Some(ui), Some(p)) => Some(ui.start(p.path(), args.ui.policy_out.clone())?),
        _ => None,
    };
    // Keeps the programs attached until the end.
    let _observer = observer;
    let exit = rt.block_on(async {
        let cancel = CancellationToken::new();
        let served = broker.map(|b| {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if let Err(e) = b.serve(cancel).await {
                    // The listener fd closes with the task: notified calls now fail with
                    // ENOSYS, the workload goes on.
                    eprintln!("auditor: broker stopped: {e:#}");
                }
            })
        });
        let mut wait = tokio::task::spawn_blocking(move || child.wait());
        let mut refusals = match (events, &refusal_decider, &audit) {
            (Some(ev), Some(d), Some(a)) => Some(Refusals::new(ev, d, a.sender(), answered.clone())?),
            _ => None,
        };
        if let (Some(r), Some(p)) = (&mut refusals, &live) {
            r.live = Some(p.sender());
        }
        // Asked to stop: the signal is forwarded; a workload that has not ended after the
        // grace period (it ignores the signal, or is the init of its own pid namespace, which
        // only gets the signals it handles) or that is asked a second time is killed.
        let mut stopping = Stopping::default();
        let exit = loop {
            tokio::select! {
                r = &mut wait => break r.context("waiting for the workload")??,
                _ = int.recv() => stopping.asked(&child, Signal::SIGINT, args.stop_timeout),
                _ = term.recv() => stopping.asked(&child, Signal::SIGTERM, args.stop_timeout),
                _ = stopping.expired() => stopping.kill(&child, args.stop_timeout),
                _ = hup.recv() => if let Some(a) = &audit { a.reopen() },
                r = async { refusals.as_mut().expect("guarded").ready().await }, if refusals.is_some() => r?,
            }
        };
        // The workload is gone: its last refusals are in the ring buffer by now.
        if let Some(r) = &mut refusals {
            r.drain();
        }
        cancel.cancel();
        if let Some(s) = served {
            let _ = s.await;
        }
        anyhow::Ok(exit)
    })?;
    // Emulations still running hold the runtime's blocking threads; they end on their own.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(p) = live {
        p.finish(&format!(
            "the workload exited with status {}",
            exit.status()
        ));
    }
    // The UI shows the end of the session until the user closes it.
    if let Some(ui) = ui {
        ui.wait();
    }

    if let Some(s) = &stats {
        eprintln!("auditor: {}", s.line());
    }
    if let Some(a) = audit {
        let path = a.path().display().to_string();
        let summary = a.finish();
        eprintln!(
            "auditor: audit log {path}: {} records, {} dropped",
            summary.records, summary.dropped
        );
    }
    Ok(ExitCode::from(
        u8::try_from(exit.status()).unwrap_or(u8::MAX),
    ))
}

/// The observer's refusal events, turned into audit records.
struct Refusals<'a> {
    ring: AsyncFd<EventReader>,
    decider: &'a Decider,
    audit: AuditSender,
    answered: Arc<Answered>,
    /// Executable id -> path, from the observer's exec events.
    exes: HashMap<u32, String>,
    boot_offset: std::time::Duration,
    buf: Vec<Event>,
    /// The live session, if any: refusals are decisions too.
    live: Option<crate::session::SessionSender>,
}

impl<'a> Refusals<'a> {
    fn new(
        events: EventReader,
        decider: &'a Decider,
        audit: AuditSender,
        answered: Arc<Answered>,
    ) -> anyhow::Result<Self> {
        // SAFETY: the AsyncFd owns the EventReader, which owns the ring buffer's fd: it stays
        // open and the same for as long as it is registered.
        let ring =
            unsafe { AsyncFd::register_with_interest(events, tokio::io::Interest::READABLE) }
                .map_err(|e| {
                    anyhow::anyhow!(
                        "registering the observer's ring buffer with the reactor: {}",
                        e.into_parts().1
                    )
                })?;
        Ok(Refusals {
            ring,
            decider,
            audit,
            answered,
            exes: HashMap::new(),
            boot_offset: refusals::boot_offset(),
            buf: Vec::new(),
            live: None,
        })
    }

    /// Wait for events, then record them.
    async fn ready(&mut self) -> anyhow::Result<()> {
        let mut g = self
            .ring
            .readable_mut()
            .await
            .context("observer ring buffer")?;
        g.clear_ready();
        drop(g);
        self.drain();
        Ok(())
    }

    fn drain(&mut self) {
        self.ring.get_mut().drain(&mut self.buf);
        for ev in std::mem::take(&mut self.buf) {
            match ev {
                Event::Exec { header, filename } => {
                    self.exes
                        .insert(header.exe, String::from_utf8_lossy(&filename).into_owned());
                }
                Event::Refused(e) => {
                    if self.answered.take(e.header.tid, u32::from(e.nr)) {
                        continue;
                    }
                    let r = refusals::Refusal {
                        tid: e.header.tid,
                        exe: self.exes.get(&e.header.exe).cloned(),
                        nr: u32::from(e.nr),
                        abi: e.abi,
                        errno: e.errno,
                        time_ns: e.header.time_ns,
                    };
                    let record = refusals::record(self.decider, &r, self.boot_offset);
                    if let Some(l) = &self.live {
                        l.send(crate::session::Event::Decision((&record).into()));
                    }
                    self.audit.record(record);
                }
                Event::Args(_) | Event::Malformed { .. } => {}
            }
        }
    }
}

/// Start publishing the live session.
fn start_live(
    args: &EnforceArgs,
    workload_pid: u32,
) -> Result<crate::session::Publisher, crate::session::SessionError> {
    let mut details = crate::session::publisher::SessionDetails {
        command: args.command.clone(),
        ..Default::default()
    };
    let d = &mut details.details;
    d.insert("policy".into(), args.policy.display().to_string());
    d.insert(
        "mode".into(),
        if args.interactive {
            format!(
                "interactive (prompts deny after {})",
                humantime::format_duration(args.prompt_timeout)
            )
        } else {
            format!("{:?}", args.mode).to_lowercase()
        },
    );
    d.insert("workload pid".into(), workload_pid.to_string());
    if let Some(a) = &args.audit_log {
        d.insert("audit log".into(), a.display().to_string());
    }
    crate::session::Publisher::start(crate::session::SessionKind::Enforce, details)
}
