//! `cargo xtask fuzz [--secs N] [TARGET...]`: run the cargo-fuzz targets of `fuzz/` (one per
//! parser of outside input, see `auditor/src/fuzzing.rs`) for N seconds each, on nightly with
//! libFuzzer, growing the committed corpus in `fuzz/corpus/TARGET`. A crash fails the task and
//! leaves its input in `fuzz/artifacts/TARGET`: copy it into the corpus once fixed, and the unit
//! tests replay it from then on.

use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::util::{have, phase, run, workspace_root};

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Parallel libFuzzer jobs per target.
    #[arg(long, default_value_t = 1)]
    pub jobs: u32,
    /// Targets to run (default: all).
    pub targets: Vec<String>,
}

/// The targets, from fuzz/Cargo.toml's `[[bin]]` entries.
fn all_targets() -> anyhow::Result<Vec<String>> {
    let manifest = std::fs::read_to_string(workspace_root().join("fuzz/Cargo.toml"))
        .context("fuzz/Cargo.toml")?;
    Ok(manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "auditor-fuzz")
        .map(str::to_owned)
        .collect())
}

pub fn run_fuzz(args: &FuzzArgs) -> anyhow::Result<()> {
    if !have("cargo-fuzz") {
        phase("cargo-fuzz", || {
            run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
        })?;
    }
    let targets = if args.targets.is_empty() {
        all_targets()?
    } else {
        args.targets.clone()
    };
    let known = all_targets()?;
    if let Some(t) = targets.iter().find(|t| !known.contains(t)) {
        bail!("no fuzz target `{t}` (targets: {})", known.join(", "));
    }
    let root = workspace_root();
    // The eBPF object is never loaded by a parser: skip building it with sanitizer flags.
    phase("build fuzz targets", || {
        run(Command::new("cargo")
            .args(["+nightly", "fuzz", "build", "-O"])
            .current_dir(&root)
            .env("AYA_BUILD_SKIP", "1"))
    })?;
    let mut failed = Vec::new();
    for t in &targets {
        let corpus = root.join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        let out = phase(&format!("fuzz {t} for {} s", args.secs), || {
            let mut cmd = Command::new("cargo");
            cmd.args(["+nightly", "fuzz", "run", "-O", t])
                .arg(&corpus)
                .arg("--")
                .arg(format!("-max_total_time={}", args.secs))
                .args([
                    "-print_final_stats=1",
                    "-max_len=65536",
                    "-timeout=10",
                    "-rss_limit_mb=2048",
                ]);
            if args.jobs > 1 {
                // libFuzzer's jobs write fuzz-N.log in the working directory.
                cmd.arg(format!("-jobs={}", args.jobs))
                    .arg(format!("-workers={}", args.jobs));
            }
            let o = cmd
                .current_dir(&root)
                .env("AYA_BUILD_SKIP", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()?;
            Ok(o)
        })?;
        let err = String::from_utf8_lossy(&out.stderr);
        // libFuzzer's last status line ("#N DONE cov: C ft: F corp: … exec/s: E") and its final stats.
        let done = err
            .lines()
            .rev()
            .find(|l| l.contains("DONE") || l.contains("cov:"))
            .unwrap_or("");
        let execs = err
            .lines()
            .find(|l| l.starts_with("stat::number_of_executed_units"))
            .unwrap_or("");
        let rate = err
            .lines()
            .find(|l| l.starts_with("stat::average_exec_per_sec"))
            .unwrap_or("");
        eprintln!("xtask: fuzz {t}: {done}\nxtask:   {execs}\nxtask:   {rate}");
        if !out.status.success() {
            let tail: Vec<&str> = err.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            failed.push(t.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (inputs in fuzz/artifacts/TARGET/)",
            failed.join(", ")
        );
    }
    Ok(())
}
