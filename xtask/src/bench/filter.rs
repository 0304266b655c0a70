//! Filter cost: syscalls under the filter compiled from a typical generated policy (learned,
//! generated with `--tighten`), beside no filter and beside Docker's default profile, in one
//! run. `getppid` is allowed whatever its arguments, so the kernel's per-syscall action cache
//! answers it without running either program; `personality` and `socket` are allowed by
//! argument value and `acct` is refused by both, so the programs themselves run. Target: no
//! more than Docker's default profile on each.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::report::median;
use crate::util::{run, workspace_root};

fn gcc(src: &Path, out: &Path) -> anyhow::Result<()> {
    run(Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(out)
        .arg(src))
}

/// ns per `call` under `filter` ("-" for none); one process per measurement.
fn measure(prog: &Path, filter: &str, calls: u64, call: &str) -> anyhow::Result<f64> {
    let o = Command::new(prog)
        .arg(filter)
        .arg(calls.to_string())
        .arg(call)
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

/// Build the filters (none, Docker's, the generated one with libseccomp's binary tree and
/// ordered by learned call counts) and measure them, interleaved.
pub fn run_filter_cost(bin: &Path, reps: usize, calls: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let prog = dir.path().join("filter_cost");
    gcc(&workspace_root().join("xtask/bench/filter_cost.c"), &prog)?;
    let auditor =
        |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> { run(Command::new(bin).args(args)) };
    let p = |x: &PathBuf| x.as_os_str().to_owned();

    // A typical generated policy: the loop itself (each allowed call) plus a shell pipeline,
    // learned and generated with --tighten (argument conditions on personality and socket).
    let mut observations = Vec::new();
    for call in ["getppid", "personality", "socket"] {
        let obs = dir.path().join(format!("loop-{call}.json"));
        auditor(&[
            "learn".as_ref(),
            "--no-progress".as_ref(),
            "-o".as_ref(),
            &p(&obs),
            "--".as_ref(),
            &p(&prog),
            "-".as_ref(),
            "1000".as_ref(),
            call.as_ref(),
        ])?;
        observations.push(obs);
    }
    let obs2 = dir.path().join("shell.json");
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
    let mut generate: Vec<std::ffi::OsString> = vec!["generate".into(), "--tighten".into()];
    generate.extend(observations.iter().map(p));
    generate.extend([p(&obs2), "-o".into(), p(&policy)]);
    let generate: Vec<&std::ffi::OsStr> = generate.iter().map(|a| a.as_os_str()).collect();
    auditor(&generate)?;
    auditor(&["compile".as_ref(), &p(&policy), "-o".as_ref(), &p(&gen_bpf)])?;
    // The same policy with its checks ordered by the learned call counts (hottest first)
    // instead of libseccomp's binary tree: the two exclude each other.
    let ordered_bpf = dir.path().join("generated-by-calls.bpf");
    let mut ordered: Vec<std::ffi::OsString> = vec![
        "compile".into(),
        p(&policy),
        "-o".into(),
        p(&ordered_bpf),
        "--priorities-from".into(),
    ];
    ordered.extend(observations.iter().map(p));
    ordered.push(p(&obs2));
    let ordered: Vec<&std::ffi::OsStr> = ordered.iter().map(|a| a.as_os_str()).collect();
    auditor(&ordered)?;
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

    let configs: [(&str, String); 4] = [
        ("no filter", "-".into()),
        ("Docker default profile", docker_bpf.display().to_string()),
        ("generated policy", gen_bpf.display().to_string()),
        ("generated, by calls", ordered_bpf.display().to_string()),
    ];
    // (call, calls per measurement, repetitions): fewer of the expensive ones.
    let calls_of = [
        ("getppid", calls, reps),
        ("personality", calls / 4, reps.min(5)),
        ("socket", calls / 40, reps.min(5)),
        ("refused", calls / 10, reps.min(5)),
    ];
    let insns = [0, rules(&docker_bpf), rules(&gen_bpf), rules(&ordered_bpf)];
    println!(
        "\n== filter cost under a seccomp filter: median ns per call of interleaved runs ==\n\
         (BPF instructions: Docker default {}, generated {} with libseccomp's binary tree, {} ordered by learned call counts)",
        insns[1], insns[2], insns[3]
    );
    println!(
        "{:<12} {:>10} {:>12} {:>12} {:>12} {:>12} {:>9} {:>12} {:>9}",
        "call", "no filter", "Docker", "added", "tree", "added", "ratio", "by calls", "ratio"
    );
    let mut misses = Vec::new();
    for (call, n, reps) in calls_of {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        for _ in 0..reps {
            for (i, (_, f)) in configs.iter().enumerate() {
                samples[i].push(measure(&prog, f, n, call)?);
            }
        }
        let med: Vec<f64> = samples.iter().map(|v| median(v)).collect();
        let (docker_added, gen_added) = (med[1] - med[0], med[2] - med[0]);
        // Compare what the filters add; for the refused call (the syscall never runs under a
        // filter) compare the totals.
        let against_docker = |i: usize| {
            if call == "refused" {
                med[i] / med[1]
            } else if docker_added > 0.0 {
                (med[i] - med[0]) / docker_added
            } else {
                f64::NAN
            }
        };
        let ratio = against_docker(2);
        let met = if call == "refused" {
            med[2] <= med[1] * 1.02
        } else {
            gen_added <= docker_added.max(0.5) * 1.02
        };
        if !met {
            misses.push(call);
        }
        println!(
            "{call:<12} {:>10.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>8.2}× {:>12.1} {:>8.2}× {}",
            med[0],
            med[1],
            docker_added,
            med[2],
            gen_added,
            ratio,
            med[3],
            against_docker(3),
            if met { "" } else { "MISS" }
        );
    }
    println!(
        "generated vs Docker (target ≤ 1.00×, 2% noise allowed): {}",
        if misses.is_empty() {
            "met on every call".to_owned()
        } else {
            format!("MISSED on {}", misses.join(", "))
        }
    );
    Ok(())
}
