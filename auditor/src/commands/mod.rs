//! One file per subcommand. Commands are the edge: they turn errors into a one-line message
//! and an exit status.

pub mod bench_floor;
pub mod cli;
pub mod learn;
// containers
pub mod daemon;
pub mod docs;
pub mod doctor;
pub mod hook;
pub mod runtime;
// enforce commands
pub mod agent;
pub mod enforce;
pub mod tui;
// policy commands
pub mod check;
pub mod compile;
pub mod diff;
pub mod generate;
pub mod import;
pub mod kubelet;
pub mod merge;
pub mod shared;

use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit status for bad input and failures of auditor itself.
pub const EXIT_ERROR: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    // Read only by the commands that use it: a broken file never stops `generate` or `learn`.
    let config = || crate::config::load(cli.config.as_deref());
    let result = match cli.command {
        Command::Learn(args) => learn::run(&args),
        Command::BenchFloor => bench_floor::run(),
        Command::Daemon(args) => config()
            .map_err(Into::into)
            .and_then(|c| daemon::run(&args, &c)),
        Command::Hook(args) => config()
            .map_err(Into::into)
            .and_then(|c| hook::run(&args, &c)),
        Command::Runtime(args) => return runtime::run(args, cli.config),
        Command::Doctor(args) => doctor::run(&args, config()),
        Command::Completions(args) => docs::completions(&args),
        Command::Manpages(args) => docs::manpages(&args),
        // enforce commands
        Command::Enforce(args) => enforce::run(&args),
        Command::Tui(args) => tui::run(&args),
        Command::Agent(args) => config()
            .map_err(Into::into)
            .and_then(|c| agent::run(&args, &c)),
        // policy commands
        Command::Generate(args) => generate::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Import(args) => import::run(&args),
        Command::KubeletProfiles(args) => kubelet::run(&args),
        Command::Compile(args) => compile::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auditor: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Refuse early, with a clear message, when not root.
pub fn require_root(what: &str) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("{what} needs root (it loads eBPF programs): run it as root, e.g. with sudo");
    }
    Ok(())
}
