//! `auditor import PROFILE -o POLICY.toml`: a policy a cluster or engine already loads (SPO's
//! `SeccompProfile` YAML, its partial profiles, OCI/Docker JSON) as a native policy, for
//! `check`, `diff`, `merge` and the agent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::shared::{read_input, ImportArgs};
use crate::policy::formats::{self, k8s};
use crate::policy::merge;
use crate::policy::model::{self, Policy};

/// `auditor import PROFILE [--name NAME | --merge] [-o OUT.toml]`
#[derive(Debug, Args)]
pub struct ImportCmdArgs {
    /// A SeccompProfile YAML (one object, several documents, or a `kubectl get -o yaml` List;
    /// base profiles named by `baseProfileName` are unioned in when the file holds them), or
    /// OCI/Docker seccomp JSON.
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// The SeccompProfile to import when the YAML holds several.
    #[arg(long, conflicts_with = "merge")]
    pub name: Option<String>,
    /// Import the union of every SeccompProfile in the YAML (e.g. SPO's partial profiles of
    /// one recording, one per replica and node).
    #[arg(long)]
    pub merge: bool,
    /// Where to write the native policy (atomically); standard output if not given.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &ImportCmdArgs) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.profile, "profile")?;
    let at = |e: formats::FormatError| anyhow::anyhow!("{}:{e}", args.profile.display());
    let (policy, what) = if k8s::looks_like(&text) {
        let all = k8s::import_all(&text).map_err(at)?;
        if all.is_empty() {
            anyhow::bail!(
                "{}: no SeccompProfile in it (kinds other than security-profiles-operator.x-k8s.io SeccompProfile are skipped)",
                args.profile.display()
            );
        }
        let chosen: Vec<&k8s::Imported> = match (&args.name, args.merge) {
            (Some(n), _) => {
                let p = all.iter().find(|p| &p.name == n).with_context(|| {
                    format!(
                        "{}: no SeccompProfile named {n} (it holds {})",
                        args.profile.display(),
                        all.iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                vec![p]
            }
            (None, true) => all
                .iter()
                .filter(|p| {
                    !all.iter()
                        .any(|o| o.base_profile_name.as_deref() == Some(p.name.as_str()))
                })
                .collect(),
            (None, false) => {
                // One profile (with its bases): the file's own rules decide.
                let policy = k8s::import(&text).map_err(at)?;
                let top = all
                    .iter()
                    .find(|p| {
                        !all.iter()
                            .any(|o| o.base_profile_name.as_deref() == Some(p.name.as_str()))
                    })
                    .map_or_else(String::new, |p| p.name.clone());
                report(&all, &[top.as_str()]);
                write(args, &policy, &format!("SeccompProfile {top}"))?;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let mut policies = Vec::new();
        for p in &chosen {
            policies.push(k8s::resolve(p, &all).map_err(at)?);
        }
        let names: Vec<&str> = chosen.iter().map(|p| p.name.as_str()).collect();
        report(&all, &names);
        let (first, rest) = policies
            .split_first()
            .context("no SeccompProfile to import")?;
        let merged = if rest.is_empty() {
            first.clone()
        } else {
            merge::merge(first, rest)?
        };
        (
            merged,
            format!(
                "SeccompProfile{} {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
        )
    } else {
        let options = args.import.options()?;
        (
            formats::import(&text, &options).map_err(at)?,
            "seccomp JSON".to_owned(),
        )
    };
    write(args, &policy, &what)?;
    Ok(ExitCode::SUCCESS)
}

/// What a reader of the import should know about the chosen profiles.
fn report(all: &[k8s::Imported], chosen: &[&str]) {
    for p in all.iter().filter(|p| chosen.contains(&p.name.as_str())) {
        if p.disabled {
            eprintln!(
                "note: SeccompProfile {} is disabled: SPO does not install it",
                p.name
            );
        }
        if p.partial {
            eprintln!(
                "note: SeccompProfile {} is a partial profile of recording {} (SPO merges them into one when the recording ends; --merge does it here)",
                p.name,
                p.labels
                    .get("spo.x-k8s.io/recording-id")
                    .map_or("?", String::as_str)
            );
        }
    }
}

/// Write the native policy with a header saying where it came from.
fn write(args: &ImportCmdArgs, policy: &Policy, what: &str) -> anyhow::Result<()> {
    let text = format!(
        "# Imported by auditor from {} ({what}).\n{}",
        args.profile.display(),
        model::to_native(policy)
    );
    // What is written must read back.
    model::parse_native(&text)
        .map_err(|e| anyhow::anyhow!("the imported policy does not read back: {e}"))?;
    match &args.output {
        Some(p) => {
            crate::fsutil::write_atomic(p, text.as_bytes())?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
