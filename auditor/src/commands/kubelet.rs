//! `auditor kubelet-profiles --from DIR --kubelet-root DIR`: install seccomp profiles where
//! kubelet loads `localhost/` profiles, as SPO lays them out (`<root>/seccomp/operator/NAME.json`,
//! referenced as `localhostProfile: operator/NAME.json`), so a cluster without the operator
//! can use auditor's profiles. The DaemonSet in `deploy/kubernetes/` runs it beside the agent on
//! the profiles of a ConfigMap (`generate --format k8s-configmap`).
//!
//! Every profile is read before it is installed: a profile kubelet cannot load makes the pods
//! that name it fail to start, so a bad one is refused (and reported) and the others go on. A
//! profile taken out of the source is taken out of kubelet's directory too, but only if auditor
//! installed it (`.auditor-installed` lists those): files of SPO or an admin are never touched.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::shared::{read_input, ImportArgs};
use crate::policy::formats::{self, k8s, ExportOptions, Format};

/// `auditor kubelet-profiles --from DIR --kubelet-root DIR [--watch SECONDS]`
#[derive(Debug, Args)]
pub struct KubeletProfilesArgs {
    /// Where the profiles are: NAME.json (OCI seccomp JSON, installed as it is) or NAME.yaml
    /// (a SeccompProfile, converted); e.g. a mounted ConfigMap. Dot files are skipped.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// kubelet's root directory (its --root-dir).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kubelet")]
    pub kubelet_root: PathBuf,
    /// Keep installing changed profiles every SECONDS (a ConfigMap volume is updated in place)
    /// instead of once.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
    #[command(flatten)]
    pub import: ImportArgs,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pass {
    installed: Vec<String>,
    unchanged: usize,
    refused: Vec<String>,
    /// Installed by an earlier pass, gone from `--from` since: removed.
    removed: Vec<String>,
}

/// The list of files auditor installed in kubelet's directory (one name a line), so that a
/// profile taken out of the ConfigMap is taken out of kubelet's directory too, and files
/// installed by anyone else (SPO, an admin) are never touched.
const MANIFEST: &str = ".auditor-installed";

pub fn run(args: &KubeletProfilesArgs) -> anyhow::Result<ExitCode> {
    if !args.kubelet_root.is_dir() {
        anyhow::bail!(
            "--kubelet-root {}: not a directory (kubelet's --root-dir, usually /var/lib/kubelet; in a pod, mount it from the host)",
            args.kubelet_root.display()
        );
    }
    let dest = args.kubelet_root.join(k8s::KUBELET_SUBDIR);
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    loop {
        let pass = install(args, &dest)?;
        for n in &pass.installed {
            eprintln!(
                "installed {} (localhostProfile: operator/{n})",
                dest.join(n).display()
            );
        }
        for r in &pass.refused {
            eprintln!("refused: {r}");
        }
        for n in &pass.removed {
            eprintln!(
                "removed {} (no longer in {})",
                dest.join(n).display(),
                args.from.display()
            );
        }
        match args.watch {
            None if pass.refused.is_empty() => {
                eprintln!(
                    "{} installed, {} unchanged in {}",
                    pass.installed.len(),
                    pass.unchanged,
                    dest.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            None => return Ok(ExitCode::from(2)),
            Some(s) => std::thread::sleep(Duration::from_secs(s.clamp(1, 3600))),
        }
    }
}

/// One pass over `--from`.
fn install(args: &KubeletProfilesArgs, dest: &Path) -> anyhow::Result<Pass> {
    let options = args.import.options()?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&args.from)
        .with_context(|| format!("--from {}", args.from.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
                && p.is_file()
        })
        .collect();
    entries.sort();
    // What the source holds, as the files it would install: a refused one keeps its last copy.
    let present: Vec<String> = entries
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .map(|n| {
            let stem = n.rsplit_once('.').map_or(n, |(s, _)| s);
            format!("{}.json", k8s::object_name(stem))
        })
        .collect();
    let mut pass = Pass::default();
    let manifest = dest.join(MANIFEST);
    let before: Vec<String> = std::fs::read_to_string(&manifest)
        .unwrap_or_default()
        .lines()
        .filter(|n| {
            k8s::object_name(n.trim_end_matches(".json")) == n.trim_end_matches(".json")
                && n.ends_with(".json")
        })
        .map(str::to_owned)
        .collect();
    let mut ours: Vec<String> = Vec::new();
    for path in entries {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
        let name = k8s::object_name(stem);
        if name != stem {
            pass.refused.push(format!(
                "{}: kubelet profile names here are lower-case letters, digits, `-` and `.` (rename it {name}.{ext})",
                path.display()
            ));
            continue;
        }
        let text = match read_input(&path, "profile") {
            Ok(t) => t,
            Err(e) => {
                pass.refused.push(format!("{e:#}"));
                continue;
            }
        };
        let json = match ext {
            "json" => formats::import(&text, &options).map(|_| text.clone()),
            "yaml" | "yml" => formats::import(&text, &options).and_then(|p| {
                formats::export(
                    &p,
                    Format::Oci,
                    &ExportOptions {
                        listener_path: p.listener_path.clone(),
                        ..ExportOptions::default()
                    },
                )
                .map(|e| e.text)
            }),
            _ => {
                pass.refused.push(format!(
                    "{}: not NAME.json (OCI seccomp JSON) or NAME.yaml (SeccompProfile)",
                    path.display()
                ));
                continue;
            }
        };
        let json = match json {
            Ok(j) => j,
            Err(e) => {
                pass.refused.push(format!("{}:{e}", path.display()));
                continue;
            }
        };
        let file = format!("{name}.json");
        ours.push(file.clone());
        let target = dest.join(&file);
        if std::fs::read_to_string(&target).is_ok_and(|old| old == json) {
            pass.unchanged += 1;
            continue;
        }
        crate::fsutil::write_atomic(&target, json.as_bytes())?;
        pass.installed.push(file);
    }
    // A refused file keeps what an earlier pass installed from it (pods may use it); only a
    // profile gone from the source is removed.
    for old in before {
        if ours.contains(&old) {
            continue;
        }
        if present.contains(&old) {
            ours.push(old);
            continue;
        }
        match std::fs::remove_file(dest.join(&old)) {
            Ok(()) => pass.removed.push(old),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                pass.refused
                    .push(format!("{}: cannot remove: {e}", dest.join(&old).display()));
                ours.push(old);
            }
        }
    }
    ours.sort();
    ours.dedup();
    let text: String = ours.iter().map(|n| format!("{n}\n")).collect();
    crate::fsutil::write_atomic(&manifest, text.as_bytes())?;
    Ok(pass)
}
