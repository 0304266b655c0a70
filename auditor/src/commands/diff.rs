//! `auditor diff A B [--json]`: added, removed and changed rules between two policies (native or
//! OCI JSON). Exit status: 0 no differences, 1 differences (like diff(1)), 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::shared::{load_policy, ImportArgs};
use crate::policy::diff;

/// `auditor diff A B [--json]`
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy before.
    pub a: PathBuf,
    /// The policy after.
    pub b: PathBuf,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let options = args.import.options()?;
    let a = load_policy(&args.a, &options)?;
    let b = load_policy(&args.b, &options)?;
    let d = diff::diff(&a, &b);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d.to_json())?);
    } else {
        println!("--- {}\n+++ {}", args.a.display(), args.b.display());
        print!("{}", d.render());
    }
    Ok(if d.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
