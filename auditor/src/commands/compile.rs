//! `auditor compile POLICY [--dump] [-o FILE]`: build the seccomp filter through libseccomp
//! (binary-tree optimisation on) and optionally show or save its BPF program.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::shared::{load_policy, ImportArgs};
use crate::seccomp::compile;

/// `auditor compile POLICY [--dump]`
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// A native (TOML) or OCI/Docker JSON policy.
    pub policy: PathBuf,
    /// Print the BPF program, one instruction per line.
    #[arg(long)]
    pub dump: bool,
    /// Write the raw BPF program (struct sock_filter records) to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Order the filter's checks by how often each syscall was called in these observation
    /// files (hottest first) instead of libseccomp's binary tree (the two exclude each other;
    /// `cargo xtask bench-filter` measures both).
    #[arg(long, value_name = "OBS.json", num_args = 1..)]
    pub priorities_from: Vec<PathBuf>,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &CompileArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(&args.policy, &args.import.options()?)?;
    let file = args.policy.display();
    let compiled = if args.priorities_from.is_empty() {
        compile::compile(&policy)
    } else {
        let mut calls = std::collections::BTreeMap::<String, u64>::new();
        for p in &args.priorities_from {
            let obs = super::generate::load_observation(p)?;
            for s in &obs.syscalls {
                *calls.entry(s.name.clone()).or_default() += s.count;
            }
        }
        compile::compile_by_calls(&policy, &calls)
    };
    let compiled = match compiled {
        Ok(c) => c,
        Err(compile::CompileError::Validate { problems }) => {
            for p in &problems {
                match p.location {
                    Some(_) => eprintln!("{file}:{p}"),
                    None => eprintln!("{file}: {p}"),
                }
            }
            anyhow::bail!(
                "{file}: the policy cannot be compiled ({} error(s) above)",
                problems.len()
            );
        }
        Err(e) => return Err(anyhow::anyhow!("{file}: {e}")),
    };
    for name in &compiled.skipped {
        eprintln!("warning: libseccomp cannot resolve `{name}`; skipped, as runc does");
    }
    let bpf = compile::export_bpf(&compiled)?;
    if args.dump {
        print!("{}", compile::disassemble(&bpf));
    }
    if let Some(p) = &args.output {
        crate::fsutil::write_atomic(p, &bpf)?;
    }
    eprintln!(
        "{file}: {} BPF instructions, {} rules ({} with the default action skipped), {} names skipped",
        bpf.len() / 8,
        policy.rules.len(),
        compiled.redundant,
        compiled.skipped.len()
    );
    Ok(ExitCode::SUCCESS)
}
