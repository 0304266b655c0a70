//! The runtime baselines shipped in auditor/src/policy/baselines.json must cover what the
//! installed runtimes do now: a fresh run that needs anything more fails; what fresh runs no
//! longer use is reported. `cargo xtask baselines` (UPDATE_BASELINES=1) rewrites them.

use integration::runtimes::{learn_baseline, Runtime};
use integration::{require_root, require_tool};

/// Runs a runtime's learning may take: its housekeeping calls can depend on timing (runc is a Go
/// program: `futex` after the filter loads only under contention), so the baseline is the union
/// of runs.
const RUNS: usize = 3;

fn check(runtime: Runtime) {
    let test = format!("baseline_{}", runtime.name());
    if !require_root(&test) || require_tool(&test, runtime.tool()).is_none() {
        return;
    }
    let version = runtime.version().expect("runtime version");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auditor/src/policy/baselines.json");
    if std::env::var_os("UPDATE_BASELINES").is_some() {
        let mut learned = std::collections::BTreeSet::new();
        for _ in 0..RUNS {
            learned.extend(learn_baseline(runtime, 40).expect("learn baseline"));
        }
        assert!(learned.contains("execve"), "{learned:?}");
        let text = std::fs::read_to_string(&path).expect("read baselines.json");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let learned: Vec<String> = learned.iter().cloned().collect();
        let new = auditor::policy::baselines::updated(
            &text,
            runtime.name(),
            &version,
            kernel.trim(),
            &learned,
        )
        .expect("update baselines");
        auditor::fsutil::write_atomic(&path, new.as_bytes()).expect("write baselines.json");
        eprintln!(
            "{}: {} syscalls written to {}",
            runtime.name(),
            learned.len(),
            path.display()
        );
        return;
    }
    let shipped =
        auditor::policy::baselines::get(runtime.name(), Some(&version)).unwrap_or_else(|| {
            panic!(
                "no shipped baseline for {} {version}: run `cargo xtask baselines`",
                runtime.name()
            )
        });
    let shipped: std::collections::BTreeSet<String> = shipped.syscalls.iter().cloned().collect();
    let mut seen = std::collections::BTreeSet::new();
    for run in 1..=RUNS {
        let learned = learn_baseline(runtime, 40).expect("learn baseline");
        // Anything new means a profile built with the shipped baseline breaks the runtime.
        let added: Vec<_> = learned.difference(&shipped).collect();
        assert!(
            added.is_empty(),
            "{} {version}: the runtime now also needs {added:?}; run `cargo xtask baselines`",
            runtime.name()
        );
        seen.extend(learned);
        if seen == shipped {
            return;
        }
        eprintln!(
            "{}: run {run} did not use {:?}; learning again",
            runtime.name(),
            shipped.difference(&seen).collect::<Vec<_>>()
        );
    }
    // Shipped syscalls that no run used now: the diff is reported, not failed — a call such as
    // runc's futex happens only under contention, and allowing a call the runtime makes
    // sometimes is what the baseline is for. (What fails is a call the shipped baseline lacks.)
    let removed: Vec<_> = shipped.difference(&seen).collect();
    eprintln!(
        "{} {version}: {RUNS} fresh runs did not use {removed:?} (timing-dependent, or no longer needed: \
         `cargo xtask baselines` relearns)",
        runtime.name()
    );
}

#[test]
fn runc_baseline_matches_a_fresh_run() {
    check(Runtime::Runc);
}

#[test]
fn crun_baseline_matches_a_fresh_run() {
    check(Runtime::Crun);
}

#[test]
fn lxc_baseline_matches_a_fresh_run() {
    check(Runtime::Lxc);
}

/// A profile learned from the bare workload (outside any container) only works in runc when
/// generate adds runc's baseline.
#[test]
fn generated_profile_runs_in_runc_only_with_the_runtime_baseline() {
    use integration::runtimes::{clear_stale, Bundle, WORKLOAD};
    use std::process::Command;
    let test = "generated_profile_runs_in_runc_only_with_the_runtime_baseline";
    if !require_root(test) || require_tool(test, "runc").is_none() {
        return;
    }
    clear_stale(Runtime::Runc);
    let dir = tempfile::tempdir().expect("tempdir");
    let obs = dir.path().join("obs.json");
    let bin = integration::auditor_bin();
    let o = Command::new(&bin)
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .args(["--", WORKLOAD, "true"])
        .output()
        .expect("learn");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_with = |extra: &[&str]| -> bool {
        let profile = dir.path().join(format!("profile{}.json", extra.len()));
        let o = Command::new(&bin)
            .arg("generate")
            .arg(&obs)
            .args(["--format", "oci", "-o"])
            .arg(&profile)
            .args(extra)
            .output()
            .expect("generate");
        assert!(
            o.status.success(),
            "generate {extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let seccomp: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile"))
                .expect("json");
        let bundle = Bundle::busybox(Runtime::Runc, &[WORKLOAD, "true"]).expect("bundle");
        bundle
            .edit(|c| c["linux"]["seccomp"] = seccomp)
            .expect("edit");
        let cmd = bundle.run_command();
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .output()
            .expect("runc")
            .status
            .success()
    };
    assert!(
        !run_with(&[]),
        "without the baseline runc's own init is refused"
    );
    assert!(
        run_with(&["--runtime", "runc"]),
        "with --runtime runc the container runs"
    );
}

/// auditor's LXC export loads in real LXC: a profile generated from the bare workload runs an
/// LXC container when generate adds LXC's learned baseline, and does not without it.
#[test]
fn generated_lxc_profile_runs_in_lxc_only_with_the_runtime_baseline() {
    use integration::runtimes::{clear_stale, LxcContainer, WORKLOAD};
    use std::process::Command;
    let test = "generated_lxc_profile_runs_in_lxc_only_with_the_runtime_baseline";
    if !require_root(test)
        || require_tool(test, "lxc-execute").is_none()
        || require_tool(test, "timeout").is_none()
    {
        return;
    }
    clear_stale(Runtime::Lxc);
    let dir = tempfile::tempdir().expect("tempdir");
    let obs = dir.path().join("obs.json");
    let bin = integration::auditor_bin();
    let o = Command::new(&bin)
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .args(["--", WORKLOAD, "true"])
        .output()
        .expect("learn");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_with = |extra: &[&str]| -> bool {
        let profile = dir.path().join(format!("profile{}.lxc", extra.len()));
        let o = Command::new(&bin)
            .arg("generate")
            .arg(&obs)
            .args(["--format", "lxc", "-o"])
            .arg(&profile)
            .args(extra)
            .output()
            .expect("generate");
        assert!(
            o.status.success(),
            "generate {extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let c = LxcContainer::busybox().expect("lxc container");
        c.set_seccomp(&std::fs::read_to_string(&profile).expect("profile"))
            .expect("set profile");
        // lxc-execute can hang when its own init is refused: bound it.
        let cmd = c.run_command(&[WORKLOAD, "true"]);
        Command::new("timeout")
            .arg("15")
            .args(&cmd)
            .output()
            .expect("lxc-execute")
            .status
            .success()
    };
    assert!(
        !run_with(&[]),
        "without the baseline LXC's own init is refused"
    );
    assert!(
        run_with(&["--runtime", "lxc"]),
        "with --runtime lxc the container runs"
    );
}
