//! `auditor merge A B … -o OUT`: the union of several policies. When A is native, its text —
//! comments included — is kept byte for byte and the new rules are appended.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::shared::{load_policy, read_input, ImportArgs};
use crate::policy::formats::{self, ExportOptions, Format};
use crate::policy::merge;
use crate::policy::model::NativeDocument;

/// `auditor merge A B … -o OUT`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Policies to merge (native, OCI JSON or SPO SeccompProfile YAML); the first is the base.
    #[arg(required = true, num_args = 2.., value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Where to write the merged policy (atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output format (native keeps the first policy's comments when it is native).
    #[arg(long, default_value = "native", value_parser = ["native", "oci", "lxc", "k8s", "k8s-configmap", "systemd"])]
    pub format: String,
    /// `metadata.name` for --format k8s and k8s-configmap.
    #[arg(long)]
    pub name: Option<String>,
    /// Export even if the format cannot express everything.
    #[arg(long)]
    pub lossy: bool,
    #[command(flatten)]
    pub import: ImportArgs,
}

pub fn run(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let options = args.import.options()?;
    let format = Format::parse(&args.format)
        .with_context(|| format!("unknown --format `{}`", args.format))?;
    let (first, rest) = args
        .policies
        .split_first()
        .context("merge needs at least two policies")?;
    let mut others = Vec::new();
    for p in rest {
        others.push(load_policy(p, &options)?);
    }
    let base_text = read_input(first, "policy")?;
    let is_native =
        !base_text.trim_start().starts_with('{') && !formats::k8s::looks_like(&base_text);
    let text = if is_native && format == Format::Native {
        let mut doc = NativeDocument::parse(&base_text)
            .map_err(|e| anyhow::anyhow!("{}:{e}", first.display()))?;
        merge::merge_into_document(&mut doc, &others)?;
        doc.render()
    } else {
        let base = formats::import(&base_text, &options)
            .map_err(|e| anyhow::anyhow!("{}:{e}", first.display()))?;
        let merged = merge::merge(&base, &others)?;
        let export = formats::export(
            &merged,
            format,
            &ExportOptions {
                lossy: args.lossy,
                name: args.name.clone(),
                ..ExportOptions::default()
            },
        )?;
        for d in &export.dropped {
            eprintln!("--lossy: dropped: {d}");
        }
        for n in &export.notes {
            eprintln!("note: {n}");
        }
        if let Some(n) = crate::seccomp::names::unenforceable_note(&export.forced) {
            eprintln!("note: {n}");
        }
        export.text
    };
    crate::fsutil::write_atomic(&args.output, text.as_bytes())?;
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
