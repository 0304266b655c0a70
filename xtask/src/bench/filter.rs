//! Filter cost: an allowed syscall under the filter compiled from a typical generated policy,
//! beside no filter and beside Docker's default profile, in one run. Target: no more than
//! Docker's default profile.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::util::{run, workspace_root};

fn gcc(src: &Path, out: &Path) -> anyhow::Result<()> {
    run(Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(out)
        .arg(src))
}

/// ns per getppid under `filter` ("-" for none); one process per measurement.
fn measure(prog: &Path, filter: &str, calls: u64) -> anyhow::Result<f64> {
    let o = Command::new(prog)
        .arg(filter)
        .arg(calls.to_string())
        .output()?;
    if !o.status.success() {
        bail!(
            "{} {filter}: {}",
            prog.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .context("filter_cost output")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Build the three filters and measure them, interleaved.
pub fn run_filter_cost(bin: &Path, reps: usize, calls: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let prog = dir.path().join("filter_cost");
    gcc(&workspace_root().join("xtask/bench/filter_cost.c"), &prog)?;
    let auditor =
        |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> { run(Command::new(bin).args(args)) };
    let p = |x: &PathBuf| x.as_os_str().to_owned();

    // A typical generated policy: the loop itself plus a shell pipeline, learned and generated.
    let obs1 = dir.path().join("loop.json");
    let obs2 = dir.path().join("shell.json");
    auditor(&[
        "learn".as_ref(),
        "--no-progress".as_ref(),
        "-o".as_ref(),
        &p(&obs1),
        "--".as_ref(),
        &p(&prog),
        "-".as_ref(),
        "1000".as_ref(),
    ])?;
    auditor(&[
        "learn".as_ref(),
        "--no-progress".as_ref(),
        "-o".as_ref(),
        &p(&obs2),
        "--".as_ref(),
        "sh".as_ref(),
        "-c".as_ref(),
        "ls -l /etc | sort | head -3 > /dev/null; cat /etc/hostname > /dev/null".as_ref(),
    ])?;
    let policy = dir.path().join("generated.toml");
    let gen_bpf = dir.path().join("generated.bpf");
    let docker_bpf = dir.path().join("docker.bpf");
    auditor(&[
        "generate".as_ref(),
        &p(&obs1),
        &p(&obs2),
        "-o".as_ref(),
        &p(&policy),
    ])?;
    auditor(&["compile".as_ref(), &p(&policy), "-o".as_ref(), &p(&gen_bpf)])?;
    let docker = workspace_root().join("../shared/anchors/docker-default-seccomp.json");
    if !docker.exists() {
        bail!(
            "{} is missing (shared/ sits beside the checkout)",
            docker.display()
        );
    }
    // libseccomp warns about names it cannot resolve; that is expected for Docker's profile.
    let o = Command::new(bin)
        .arg("compile")
        .arg(&docker)
        .arg("-o")
        .arg(&docker_bpf)
        .output()?;
    if !o.status.success() {
        bail!(
            "compiling Docker's default profile: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let rules = |f: &Path| std::fs::metadata(f).map(|m| m.len() / 8).unwrap_or(0);

    let configs: [(&str, String); 3] = [
        ("no filter", "-".into()),
        ("Docker default profile", docker_bpf.display().to_string()),
        ("generated policy", gen_bpf.display().to_string()),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..reps {
        for (i, (_, f)) in configs.iter().enumerate() {
            samples[i].push(measure(&prog, f, calls)?);
        }
    }
    let med: Vec<f64> = samples.into_iter().map(median).collect();
    println!("\n== filter cost: getppid (allowed) under a seccomp filter, {reps} interleaved runs × {calls} calls ==");
    println!(
        "{:<24} {:>10} {:>10} {:>14}",
        "filter", "ns/call", "added", "BPF insns"
    );
    let insns = [0, rules(&docker_bpf), rules(&gen_bpf)];
    for (i, (name, _)) in configs.iter().enumerate() {
        println!(
            "{:<24} {:>10.1} {:>10.1} {:>14}",
            name,
            med[i],
            med[i] - med[0],
            insns[i]
        );
    }
    let (docker_added, gen_added) = (med[1] - med[0], med[2] - med[0]);
    let ratio = if docker_added > 0.0 {
        gen_added / docker_added
    } else {
        f64::NAN
    };
    println!(
        "generated / Docker added cost: {ratio:.2} (target ≤ 1.00: {})",
        if gen_added <= docker_added.max(0.5) {
            "PASS"
        } else {
            "MISS"
        }
    );
    Ok(())
}
