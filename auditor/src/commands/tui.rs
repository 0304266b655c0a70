//! `auditor tui [--session NAME] [--list]`: attach the live terminal UI to a running learn or
//! enforce session (see `crate::session` for where sessions publish).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::session::{self, SessionError};
use crate::tui::run::Options;

/// `auditor tui [--session NAME] [--list] [--policy-out FILE]`
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// The session to attach to: its name (`learn-1234`), its pid or its socket path. Without
    /// it, the only running session.
    #[arg(long, short)]
    pub session: Option<String>,
    /// List the running sessions and exit.
    #[arg(long)]
    pub list: bool,
    /// Where the `w` key writes the candidate policy of a learn session (atomically).
    #[arg(long, value_name = "FILE", default_value = "candidate-policy.toml")]
    pub policy_out: PathBuf,
    /// Wait up to this long for the session to appear (e.g. 5s), for scripts that start a
    /// session and the UI together.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
}

fn print_sessions(list: &[session::SessionInfo]) {
    for s in list {
        println!(
            "{:<24} {:<8} {:>8}  {}",
            s.name,
            s.kind,
            s.pid,
            s.path.display()
        );
    }
}

pub fn run(args: &TuiArgs) -> anyhow::Result<ExitCode> {
    let dir = session::dir();
    if args.list {
        let list = session::list_sessions(&dir)?;
        if list.is_empty() {
            eprintln!("auditor: no running session in {}", dir.display());
        }
        print_sessions(&list);
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = args.wait.map(|w| std::time::Instant::now() + w);
    let found = loop {
        match session::resolve(&dir, args.session.as_deref()) {
            Ok(s) => break s,
            Err(e @ (SessionError::NoSessions { .. } | SessionError::NoSuchSession { .. }))
                if deadline.is_some_and(|d| std::time::Instant::now() < d) =>
            {
                tracing::debug!(error = %e, "waiting for the session");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                if let SessionError::NoSuchSession { .. } = e {
                    let list = session::list_sessions(&dir).unwrap_or_default();
                    if list.len() > 1 && args.session.is_none() {
                        eprintln!(
                            "auditor: several sessions are running; pick one with --session NAME:"
                        );
                        print_sessions(&list);
                    }
                }
                return Err(e.into());
            }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(crate::tui::run(Options {
        socket: found.path,
        policy_out: args.policy_out.clone(),
        workload_log: None,
        stop: None,
        interrupt_on_ctrl_c: false,
    }))?;
    Ok(ExitCode::SUCCESS)
}
