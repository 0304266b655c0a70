//! `auditor check POLICY`: validate and lint a native or OCI JSON policy.
//! Exit status: 0 clean, 1 warnings, 2 errors (or unreadable input).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::shared::{load_policy, ImportArgs};
use crate::policy::check::{self, Severity};

/// `auditor check POLICY`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A native (TOML) or OCI/Docker JSON policy.
    pub policy: PathBuf,
    /// Check it for `auditor enforce --interactive`: notify as the default action is accepted
    /// (every call no rule decides is prompted for), and calls that are never prompted for are
    /// named.
    #[arg(long)]
    pub interactive: bool,
    /// Also warn about what this engine does to the profile: docker drops listenerPath,
    /// listenerMetadata, flags and defaultErrnoRet; podman keeps them (notify rules need a
    /// listenerPath).
    #[arg(long, value_parser = ["docker", "podman"])]
    pub engine: Option<String>,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(&args.policy, &args.import.options()?)?;
    let mut findings = check::check_with(
        &policy,
        check::CheckOptions {
            interactive: args.interactive,
        },
    );
    if let Some(engine) = args.engine.as_deref().and_then(check::Engine::parse) {
        findings.extend(check::engine_findings(&policy, engine));
    }
    let file = args.policy.display();
    for f in &findings {
        match f.location {
            Some(_) => println!("{file}:{f}"),
            None => println!("{file}: {f}"),
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let names: std::collections::BTreeSet<&str> = policy.names().map(|(_, n)| n).collect();
    if findings.is_empty() {
        println!(
            "{file}: ok: {} rules, {} syscalls, default action {}",
            policy.rules.len(),
            names.len(),
            policy.default_action
        );
    } else {
        println!("{file}: {errors} error(s), {warnings} warning(s)");
    }
    Ok(ExitCode::from(check::exit_status(&findings)))
}
