//! Large inputs: `generate` from 1,000 observation files, the same into one SPO profile per
//! Kubernetes workload (`--group-by workload --format k8s`: 50 workloads of 20 replicas),
//! `merge` of 1,000 native policies and `check` of the result, each timed as a user runs it
//! (one process, wall clock). Target: each under 2 s.
//!
//! The observations are synthetic but shaped like learned containers: a real observation
//! (`auditor learn` of a small shell pipeline, made here) is the template; each file keeps its
//! header and gets 80–160 syscalls drawn from the x86_64 table (always including the
//! template's), with counts, failures and 1–6 of 40 executables each. A seeded generator makes
//! every run the same.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::util::{phase, workspace_root};

/// Target from the issue, per command.
const TARGET_S: f64 = 2.0;
/// Kubernetes workloads the observations are replicas of.
const WORKLOADS: usize = 50;
/// Kubernetes' name-suffix alphabet.
const K8S_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// x86_64 syscall (number, name) pairs from the checked-in table.
fn syscall_names() -> anyhow::Result<Vec<(u32, String)>> {
    let text = std::fs::read_to_string(workspace_root().join("auditor/src/syscalls/x86_64.rs"))?;
    let names: Vec<(u32, String)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix('(')?;
            let (nr, rest) = l.split_once(", \"")?;
            Some((nr.parse().ok()?, rest.split('"').next()?.to_owned()))
        })
        .collect();
    if names.len() < 300 {
        bail!("only {} names read from the x86_64 table", names.len());
    }
    Ok(names)
}

fn time(what: &str, cmd: &mut Command) -> anyhow::Result<f64> {
    let t = Instant::now();
    let o = cmd.output().with_context(|| format!("running {what}"))?;
    let s = t.elapsed().as_secs_f64();
    // check exits 1 on warnings: only 2 (errors, bad input) is a failure here.
    if o.status.code() == Some(2) || o.status.code().is_none() {
        bail!(
            "{what} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(s)
}

/// Run it: `n` files.
pub fn run_large(bin: &Path, n: usize) -> anyhow::Result<()> {
    phase("bench: large inputs (generate, merge, check)", || {
        let dir = tempfile::tempdir()?;
        let template = dir.path().join("template.json");
        let o = Command::new(bin)
            .args(["learn", "--no-progress", "-o"])
            .arg(&template)
            .args([
                "--",
                "sh",
                "-c",
                "ls / > /dev/null; cat /etc/hostname > /dev/null",
            ])
            .output()?;
        if !o.status.success() {
            bail!(
                "learning the template: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let template: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&template)?)?;
        let base: Vec<serde_json::Value> = template["syscalls"]
            .as_array()
            .context("template syscalls")?
            .clone();
        let names = syscall_names()?;
        let exes: Vec<String> = (0..40).map(|i| format!("/usr/bin/tool{i}")).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let obs_dir = dir.path().join("obs");
        let pol_dir = dir.path().join("policies");
        std::fs::create_dir_all(&obs_dir)?;
        std::fs::create_dir_all(&pol_dir)?;
        let (mut obs_files, mut pol_files, mut bytes) = (Vec::new(), Vec::new(), 0usize);
        for i in 0..n {
            let mut chosen: Vec<(u32, String)> = base
                .iter()
                .filter_map(|s| Some((s["nr"].as_u64()? as u32, s["name"].as_str()?.to_owned())))
                .collect();
            let want = 80 + rng.below(81) as usize;
            while chosen.len() < want {
                let pick = &names[rng.below(names.len() as u64) as usize];
                if !chosen.iter().any(|(_, n)| n == &pick.1) {
                    chosen.push(pick.clone());
                }
            }
            let syscalls: Vec<serde_json::Value> = chosen
                .iter()
                .map(|(nr, name)| {
                    let mut e = serde_json::Map::new();
                    for k in 0..=rng.below(5) {
                        e.insert(
                            exes[((rng.below(40) + k) % 40) as usize].clone(),
                            (1 + rng.below(50)).into(),
                        );
                    }
                    let count = 1 + rng.below(100_000);
                    let mut s = serde_json::json!({
                        "name": name,
                        "abi": "x86_64",
                        "nr": nr,
                        "count": count,
                        "first_seen_ms": rng.below(60_000) as f64 / 3.0,
                        "executables": e,
                    });
                    if rng.below(8) == 0 {
                        s["failures"] = serde_json::json!({ "EPERM": 1 + rng.below(count) });
                    }
                    s
                })
                .collect();
            let mut obs = template.clone();
            obs["syscalls"] = syscalls.into();
            // Replicas of 50 Kubernetes workloads, 20 each, as the CRI annotations name them.
            let suffix: String = (0..5)
                .map(|_| K8S_ALPHABET[rng.below(K8S_ALPHABET.len() as u64) as usize] as char)
                .collect();
            let w = i % WORKLOADS;
            obs["target"] = serde_json::json!({
                "kind": "container",
                "id": format!("{i:064x}"),
                "engine": "containerd",
                "name": "app",
                "labels": {
                    "io.kubernetes.pod.name": format!("web{w}-7d4b9c8f6-{suffix}"),
                    "io.kubernetes.pod.namespace": format!("ns{}", w % 5),
                    "io.kubernetes.container.name": "app",
                },
            });
            obs["executables"] = exes
                .iter()
                .map(|e| serde_json::json!({ "path": e, "execs": 1 }))
                .collect::<Vec<_>>()
                .into();
            let text = serde_json::to_string_pretty(&obs)?;
            bytes += text.len();
            let path = obs_dir.join(format!("c{i:04}.json"));
            std::fs::write(&path, text)?;
            obs_files.push(path);
            // The same container's policy, as `generate` would write it (native).
            let mut allowed: Vec<&String> = chosen.iter().map(|(_, n)| n).collect();
            allowed.sort();
            let list: Vec<String> = allowed.iter().map(|n| format!("\"{n}\"")).collect();
            let pol = pol_dir.join(format!("c{i:04}.toml"));
            std::fs::write(
                &pol,
                format!(
                    "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\narchitectures = [\"x86_64\"]\n\n[[rule]]\nnames = [{}]\naction = \"allow\"\ncomment = \"container {i}\"\n",
                    list.join(", ")
                ),
            )?;
            pol_files.push(pol);
        }
        let generated = dir.path().join("generated.toml");
        let merged = dir.path().join("merged.toml");
        let args = |files: &[PathBuf]| {
            files
                .iter()
                .map(|p| p.as_os_str().to_owned())
                .collect::<Vec<_>>()
        };
        let t_gen = time(
            "auditor generate",
            Command::new(bin)
                .arg("generate")
                .args(args(&obs_files))
                .arg("-o")
                .arg(&generated),
        )?;
        let t_merge = time(
            "auditor merge",
            Command::new(bin)
                .arg("merge")
                .args(args(&pol_files))
                .arg("-o")
                .arg(&merged),
        )?;
        let per_workload = dir.path().join("per-workload");
        let t_group = time(
            "auditor generate --group-by workload",
            Command::new(bin)
                .args([
                    "generate",
                    "--group-by",
                    "workload",
                    "--format",
                    "k8s",
                    "--lossy",
                ])
                .args(args(&obs_files))
                .arg("-o")
                .arg(&per_workload),
        )?;
        let profiles = std::fs::read_dir(&per_workload)?.count();
        if profiles != WORKLOADS {
            bail!("--group-by workload wrote {profiles} profiles, not {WORKLOADS}");
        }
        let t_check = time(
            "auditor check",
            Command::new(bin).arg("check").arg(&generated),
        )?;
        let t_check_merged = time("auditor check", Command::new(bin).arg("check").arg(&merged))?;
        let mib = bytes as f64 / (1024.0 * 1024.0);
        eprintln!("\nlarge inputs: {n} observation files ({mib:.1} MiB, 80–160 syscalls each), {n} native policies:");
        let verdict = |s: f64| if s <= TARGET_S { "met" } else { "MISSED" };
        eprintln!(
            "  generate {n} observations   {t_gen:>6.2} s  {:>8.0} files/s  {:>6.1} MiB/s  (target ≤ {TARGET_S} s: {})",
            n as f64 / t_gen,
            mib / t_gen,
            verdict(t_gen)
        );
        eprintln!(
            "  per workload ({WORKLOADS} SPO profiles) {t_group:>6.2} s  {:>8.0} files/s  (generate --group-by workload --format k8s; target ≤ {TARGET_S} s: {})",
            n as f64 / t_group,
            verdict(t_group)
        );
        eprintln!(
            "  merge {n} policies          {t_merge:>6.2} s  {:>8.0} files/s  (target ≤ {TARGET_S} s: {})",
            n as f64 / t_merge,
            verdict(t_merge)
        );
        eprintln!(
            "  check the generated policy {t_check:>6.3} s; the merged one {t_check_merged:.3} s  (target ≤ {TARGET_S} s: {})",
            verdict(t_check.max(t_check_merged))
        );
        Ok(())
    })
}
