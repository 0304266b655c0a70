//! Emulated calls: the round trip of a call a notify handler performs on the caller's behalf —
//! `mknodat` (emulate-mknod), `setxattr` (emulate-setxattr), an overlay `mount`
//! (emulate-mount) and `setpriority` (emulate-sched) — from a user-namespaced workload under
//! `auditor enforce --userns`, beside the same call made by host root with no filter (what the
//! kernel itself costs), interleaved. mknod and setxattr also with a helper forked per call
//! (`AUDITOR_HELPER=fork`, the design before helpers were spawned sharing auditor's memory), in
//! the same runs. Reported: p50 and p99 per call, medians over the runs.
//! Target (issue 16): mknod and setxattr under 300 µs p50.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::report::median;
use crate::util::phase;

/// The container's root as `enforce --userns` maps it (100000:65536).
/// The workload (built in the run).
const SOURCE: &str = include_str!("../../bench/emulate_calls.c");

const CONTAINER_ROOT: u32 = 100_000;

const POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["mknod", "mknodat"]
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }

[[rule]]
name = "setxattr"
action = "notify"
handler = "emulate-setxattr"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = { fstypes = ["overlay"] }

[[rule]]
name = "setpriority"
action = "notify"
handler = "emulate-sched"
params = { nice_min = -1 }
"#;

/// The calls with the 300 µs target, whose helpers are spawned (each also measured with a fork
/// per call).
const TARGETED: [&str; 2] = ["mknod", "setxattr"];

/// (kind, handler, calls per run)
const KINDS: &[(&str, &str, u64)] = &[
    ("mknod", "emulate-mknod", 2_000),
    ("setxattr", "emulate-setxattr", 2_000),
    ("mount", "emulate-mount (overlay)", 500),
    ("nice", "emulate-sched", 2_000),
];

/// p50, p99 (µs) of one run.
fn one(cmd: &mut Command) -> anyhow::Result<(f64, f64)> {
    let o = cmd.output().context("running emulate_calls")?;
    let out = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        bail!("{out}{}", String::from_utf8_lossy(&o.stderr));
    }
    let get = |k: &str| -> anyhow::Result<f64> {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {k} in {out}"))
    };
    if get("failed=")? != 0.0 {
        bail!("calls failed: {out}{}", String::from_utf8_lossy(&o.stderr));
    }
    Ok((get("p50_us=")?, get("p99_us=")?))
}

/// Run the benchmark with the auditor binary `bin`, `reps` interleaved runs per kind.
pub fn run_emulate(bin: &Path, reps: usize) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the emulated-calls benchmark needs root (user namespaces, the handlers' helpers)");
    }
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let prog = super::broker::gcc(SOURCE, "emulate_calls", dir.path())?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY)?;
    let mut rows = Vec::new();
    phase("bench: emulated calls against the kernel's own", || {
        for &(kind, handler, calls) in KINDS {
            let (mut emulated, mut forked, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
            let compare = TARGETED.contains(&kind);
            for i in 0..reps {
                // A fresh directory per run: the container's root owns those of the emulated
                // calls, host root the other.
                let fresh = |prefix: &str, container: bool| -> anyhow::Result<PathBuf> {
                    let d = dir.path().join(format!("{prefix}-{kind}-{i}"));
                    std::fs::create_dir(&d)?;
                    if container {
                        std::os::unix::fs::chown(&d, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT))?;
                    }
                    Ok(d)
                };
                let cdir = fresh("c", true)?;
                let hdir = fresh("h", false)?;
                let enforce = |dir: &Path, fork: bool| {
                    let mut c = Command::new(bin);
                    if fork {
                        c.env("AUDITOR_HELPER", "fork");
                    }
                    c.args(["enforce", "--userns", "--policy"])
                        .arg(&policy)
                        .arg("--")
                        .arg(&prog)
                        .arg(dir)
                        .arg(calls.to_string())
                        .arg(kind);
                    one(&mut c)
                };
                emulated.push(enforce(&cdir, false)?);
                if compare {
                    forked.push(enforce(&fresh("f", true)?, true)?);
                }
                // The kernel's own cost, as host root; the overlay in a mount namespace of its
                // own, so nothing shows on the host.
                let mut direct = if kind == "mount" {
                    let mut c = Command::new("unshare");
                    c.args(["-m", "--propagation", "private"]).arg(&prog);
                    c
                } else {
                    Command::new(&prog)
                };
                kernel.push(one(direct.arg(&hdir).arg(calls.to_string()).arg(kind))?);
            }
            rows.push((kind, handler, calls, emulated, forked, kernel));
        }
        Ok(())
    })?;
    println!(
        "\n== emulated calls: {reps} interleaved runs per kind, p50 / p99 per call (µs, medians over the runs) =="
    );
    println!(
        "{:<10} {:<26} {:>7} {:>12} {:>12} {:>12} {:>12} {:>9}",
        "call", "handler", "calls", "emulated p50", "p99", "kernel p50", "p99", "p50 ratio"
    );
    let mut misses = Vec::new();
    let mut versus_fork = Vec::new();
    for (kind, handler, calls, emulated, forked, kernel) in &rows {
        let m = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            median(&v.iter().map(f).collect::<Vec<_>>())
        };
        let (e50, e99, k50, k99) = (
            m(emulated, |x| x.0),
            m(emulated, |x| x.1),
            m(kernel, |x| x.0),
            m(kernel, |x| x.1),
        );
        let target = TARGETED.contains(kind);
        if target && e50 > 300.0 {
            misses.push(*kind);
        }
        println!(
            "{kind:<10} {handler:<26} {calls:>7} {e50:>12.1} {e99:>12.1} {k50:>12.1} {k99:>12.1} {:>8.0}× {}",
            e50 / k50,
            if !target {
                ""
            } else if e50 <= 300.0 {
                "(≤ 300 µs: met)"
            } else {
                "(≤ 300 µs: MISSED)"
            }
        );
        if !forked.is_empty() {
            let (f50, f99) = (m(forked, |x| x.0), m(forked, |x| x.1));
            println!(
                "{:<10} {:<26} {calls:>7} {f50:>12.1} {f99:>12.1} {k50:>12.1} {k99:>12.1} {:>8.0}×",
                "",
                "  the same, fork per call",
                f50 / k50
            );
            versus_fork.push(format!(
                "{kind} {:.2}× ({e50:.0} vs {f50:.0} µs)",
                e50 / f50
            ));
        }
    }
    println!(
        "spawned helper against a fork per call, p50 (same runs): {}",
        versus_fork.join(", ")
    );
    println!(
        "emulated mknod and setxattr p50 (target ≤ 300 µs): {}",
        if misses.is_empty() {
            "met".to_owned()
        } else {
            format!("MISSED on {}", misses.join(", "))
        }
    );
    Ok(())
}
