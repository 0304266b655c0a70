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

use super::check::{load_policy, ImportArgs};
use crate::broker::audit::AuditLog;
use crate::broker::decide::Decider;
use crate::broker::{Broker, Mode};
use crate::launch::filter::Filter;
use crate::launch::userns::{IdRange, Userns, DEFAULT_RANGE};
use crate::launch::{self, Options};
use crate::seccomp::{compile, notify};

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
    /// Append one JSON line per decision to this file (reopened on SIGHUP). With it, calls
    /// the policy refuses with an errno also go through the broker, which records them and
    /// answers with that errno (one round trip per refused call); kill and trap stay in the
    /// kernel and are not recorded.
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
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: &EnforceArgs) -> anyhow::Result<ExitCode> {
    let file = args.policy.display();
    let policy = load_policy(&args.policy, &args.import.options()?)?;
    let decider = Decider::new(policy.clone()).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let compiled = match compile::compile(&policy) {
        Ok(c) => c,
        Err(compile::CompileError::Validate { problems }) => {
            for p in &problems {
                match p.location {
                    Some(_) => eprintln!("{file}:{p}"),
                    None => eprintln!("{file}: {p}"),
                }
            }
            anyhow::bail!(
                "{file}: the policy cannot be enforced ({} error(s) above)",
                problems.len()
            );
        }
        Err(e) => anyhow::bail!("{file}: {e}"),
    };
    for name in &compiled.skipped {
        eprintln!("auditor: warning: libseccomp cannot resolve `{name}`; its rule is skipped");
    }
    let bpf = compile::export_bpf(&compiled).with_context(|| format!("{file}: export"))?;
    let mut filter = Filter::from_bpf(&bpf).with_context(|| format!("{file}: filter"))?;
    let mode = match args.mode {
        ModeArg::Enforce => {
            if args.audit_log.is_some() {
                // So that refusals reach the audit log (kill and trap stay in the kernel).
                filter.audit_refusals();
            }
            Mode::Enforce
        }
        ModeArg::Complain => {
            filter.complain();
            Mode::Complain
        }
    };
    let cmd = launch::Command::new(&args.command)?;
    let userns = match &args.userns {
        None => None,
        Some(r) => {
            let range = if r.is_empty() {
                DEFAULT_RANGE
            } else {
                IdRange::parse(r)?
            };
            Some(Userns::new(range, args.rootfs.as_deref())?)
        }
    };
    if (userns.is_some() || filter.needs_listener()) && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "auditor enforce needs root for --userns and for notify rules (it writes id maps and emulates calls on the workload's behalf): run it as root, e.g. with sudo"
        );
    }
    if filter.needs_listener() {
        notify::check_sizes()?;
    }
    let audit = match &args.audit_log {
        Some(p) => Some(AuditLog::open(p)?),
        None => None,
    };

    let held = launch::spawn_held_with(
        &cmd,
        &Options {
            filter: Some(filter),
            userns,
        },
    )?;
    let (child, listener) = held.release_with_listener()?;
    tracing::info!(
        pid = child.workload_pid(),
        listener = listener.is_some(),
        "workload started"
    );
    let broker = listener.map(|fd| {
        Broker::new(
            notify::NotifyFd::new(fd),
            decider,
            mode,
            audit.as_ref().map(AuditLog::sender),
        )
    });
    let stats = broker.as_ref().map(Broker::stats);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
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
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let exit = loop {
            tokio::select! {
                r = &mut wait => break r.context("waiting for the workload")??,
                _ = int.recv() => child.signal(Signal::SIGINT),
                _ = term.recv() => child.signal(Signal::SIGTERM),
                _ = hup.recv() => if let Some(a) = &audit { a.reopen() },
            }
        };
        cancel.cancel();
        if let Some(s) = served {
            let _ = s.await;
        }
        anyhow::Ok(exit)
    })?;
    // Emulations still running hold the runtime's blocking threads; they end on their own.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));

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
