//! `auditor hook`: an OCI hook (`createRuntime` or `prestart`) that registers the container
//! being created with `auditor daemon`, and exits 0 only once the daemon tracks it.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::daemon::{self, protocol};

/// `auditor hook [--socket PATH] [--timeout DUR] [--runtime NAME]` (OCI state on stdin)
#[derive(Debug, clap::Args)]
pub struct HookArgs {
    /// The daemon's socket [config: hook.socket; default: /run/auditor/daemon.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Give up (and fail the container's creation) if the daemon has not answered by then
    /// [config: hook.timeout; default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The runtime running the hook, recorded in the observation (runc, crun).
    #[arg(long)]
    pub runtime: Option<String>,
}

pub fn run(args: &HookArgs, config: &crate::config::Loaded) -> anyhow::Result<ExitCode> {
    let (socket, timeout) = config.hook(args.socket.clone(), args.timeout)?;
    // The runtime writes the state and closes stdin; anything else (a terminal, a writer that
    // never closes) must not hang the container's creation: the read shares the timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = Vec::new();
        let r = std::io::stdin()
            .take(protocol::MAX_STATE as u64 + 1)
            .read_to_end(&mut input)
            .map(|_| input);
        let _ = tx.send(r);
    });
    let input = match rx.recv_timeout(timeout) {
        Ok(r) => r.context("reading the OCI state on stdin")?,
        Err(_) => bail!(
            "no OCI state on stdin within {} (auditor hook is run by the container runtime, which writes it)",
            humantime::format_duration(timeout)
        ),
    };
    let state = protocol::parse_state(&input)
        .context("auditor hook expects the runtime's OCI state on stdin")?;
    let pid = state.pid.unwrap_or(0);
    let req = protocol::Request::Register(protocol::Register {
        id: state.id.clone(),
        pid,
        bundle: (!state.bundle.is_empty()).then(|| state.bundle.clone()),
        runtime: args.runtime.clone(),
    });
    let reply = daemon::request(&socket, &req, timeout).map_err(anyhow::Error::msg)?;
    if !reply.ok {
        bail!(
            "the auditor daemon refused container {}: {}",
            state.id,
            reply.error.as_deref().unwrap_or("no reason given")
        );
    }
    tracing::info!(id = %state.id, pid, output = ?reply.output, "container registered");
    Ok(ExitCode::SUCCESS)
}
