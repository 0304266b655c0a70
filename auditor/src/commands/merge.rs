//! `auditor merge A B … -o OUT`: the union of several policies. When A is native, its text —
//! comments included — is kept byte for byte and the new rules are appended.
//!
//! `auditor merge --group-by workload OBS… -o DIR`: replicas' observations merged into one
//! profile per workload (or image, or owner), each saying how many replicas and which nodes
//! made it — the grouping `generate --group-by` does, under the name a cluster user looks for.

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
    /// With --group-by: observation files written by `auditor learn` or `auditor daemon`.
    #[arg(required = true, num_args = 1.., value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Where to write the merged policy (atomically). With --group-by: a directory, one
    /// profile per group.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Merge observations of replicas into one profile per group instead of policies: by the
    /// `image` they run, by `workload` (Kubernetes: namespace, pod name minus its replica
    /// suffixes, container; Docker and podman: the container name minus a replica number) or
    /// by `owner` (the pod's Deployment, StatefulSet, DaemonSet or CronJob, read with
    /// --kube-api). Each profile says how many replicas and which nodes contributed.
    #[arg(long, value_enum)]
    pub group_by: Option<crate::policy::generate::group::GroupBy>,
    /// With --group-by owner: `kubectl proxy`'s address (e.g. http://127.0.0.1:8001).
    #[arg(long, value_name = "URL", requires = "group_by")]
    pub kube_api: Option<String>,
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
    if let Some(by) = args.group_by {
        return merge_groups(args, by);
    }
    if args.policies.len() < 2 {
        anyhow::bail!("merge needs at least two policies (or observation files with --group-by)");
    }
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

/// `merge --group-by`: what `generate --group-by` writes for the same observation files.
fn merge_groups(
    args: &MergeArgs,
    by: crate::policy::generate::group::GroupBy,
) -> anyhow::Result<ExitCode> {
    for p in &args.policies {
        let text = read_input(p, "observation file")?;
        let policy = !text.trim_start().starts_with('{')
            || serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v.get("defaultAction").is_some());
        if policy {
            anyhow::bail!(
                "{}: merge --group-by groups observation files (written by `auditor learn` or `auditor daemon`), not policies; merge policies without --group-by",
                p.display()
            );
        }
    }
    super::generate::run(&super::generate::GenerateArgs {
        observations: args.policies.clone(),
        format: args.format.clone(),
        output: Some(args.output.clone()),
        group_by: Some(by),
        kube_api: args.kube_api.clone(),
        tighten: false,
        default_action: "errno:EPERM".to_owned(),
        lossy: args.lossy,
        listener: None,
        listener_metadata: None,
        runtime: None,
        userns: false,
        no_new_privileges: None,
        with_handler: Vec::new(),
        fuse: Vec::new(),
        name: args.name.clone(),
        k8s_api_version: formats::k8s::ApiVersion::V1,
        kubelet_root: None,
    })
}
