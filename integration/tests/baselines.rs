//! The runtime baselines shipped in auditor/src/policy/baselines.json must cover what the
//! installed runtimes do now: a fresh run that needs anything more fails; what fresh runs no
//! longer use is reported. `cargo xtask baselines` (UPDATE_BASELINES=1) rewrites them.

use std::collections::BTreeSet;

use integration::runtimes::{learn_baseline, learn_baseline_from, Mode, Runtime};
use integration::{require_root, require_tool};

/// Runs a runtime's learning may take: its housekeeping calls can depend on timing (runc is a Go
/// program: `futex` after the filter loads only under contention), so the baseline is the union
/// of runs.
const RUNS: usize = 3;

/// The modes a runtime's baselines are learned in: every combination for the OCI runtimes
/// (listener, user namespace, noNewPrivileges off as the engines run them), LXC's own only.
fn modes(runtime: Runtime) -> Vec<Mode> {
    if runtime == Runtime::Lxc {
        vec![Mode::default()]
    } else {
        Mode::all()
    }
}

fn check(runtime: Runtime) {
    let test = format!("baseline_{}", runtime.name());
    if !require_root(&test) || require_tool(&test, runtime.tool()).is_none() {
        return;
    }
    let version = runtime.version().expect("runtime version");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auditor/src/policy/baselines.json");
    if std::env::var_os("UPDATE_BASELINES").is_some() {
        for mode in modes(runtime) {
            // Relearning adds to what a version ships: a call seen once (runc's futex under
            // contention) stays allowed. Delete an entry to learn it from nothing.
            let mut learned: BTreeSet<String> =
                auditor::policy::baselines::get(runtime.name(), Some(&version), mode.to_auditor())
                    .filter(|b| b.mode() == mode.to_auditor())
                    .map(|b| b.syscalls.iter().cloned().collect())
                    .unwrap_or_default();
            for _ in 0..RUNS {
                learned.extend(learn_baseline(runtime, mode, 40).expect("learn baseline"));
            }
            assert!(learned.contains("execve"), "{learned:?}");
            let text = std::fs::read_to_string(&path).expect("read baselines.json");
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let learned: Vec<String> = learned.iter().cloned().collect();
            let new = auditor::policy::baselines::updated(
                &text,
                runtime.name(),
                &version,
                mode.to_auditor(),
                kernel.trim(),
                &learned,
            )
            .expect("update baselines");
            auditor::fsutil::write_atomic(&path, new.as_bytes()).expect("write baselines.json");
            eprintln!(
                "{} ({}): {} syscalls written to {}",
                runtime.name(),
                mode.describe(),
                learned.len(),
                path.display()
            );
        }
        return;
    }
    for mode in modes(runtime) {
        let shipped =
            auditor::policy::baselines::get(runtime.name(), Some(&version), mode.to_auditor())
                .unwrap_or_else(|| {
                    panic!(
                        "no shipped baseline for {} {version} ({}): run `cargo xtask baselines`",
                        runtime.name(),
                        mode.describe()
                    )
                });
        let shipped: BTreeSet<String> = shipped.syscalls.iter().cloned().collect();
        if mode != Mode::default() {
            // Every other mode: the shipped baseline (with the workload's calls) must be
            // enough, which a run or two shows (learning each from nothing would take minutes).
            let added = learn_baseline_from(runtime, mode, &shipped, 10).expect("learn baseline");
            assert!(
                added.is_empty(),
                "{} {version} ({}): the runtime now also needs {added:?}; run `cargo xtask baselines`",
                runtime.name(),
                mode.describe()
            );
            continue;
        }
        let mut seen = BTreeSet::new();
        for run in 1..=RUNS {
            let learned = learn_baseline(runtime, mode, 40).expect("learn baseline");
            // Anything new means a profile built with the shipped baseline breaks the runtime.
            let added: Vec<_> = learned.difference(&shipped).collect();
            assert!(
                added.is_empty(),
                "{} {version}: the runtime now also needs {added:?}; run `cargo xtask baselines`",
                runtime.name()
            );
            seen.extend(learned);
            if seen == shipped {
                break;
            }
            eprintln!(
                "{}: run {run} did not use {:?}; learning again",
                runtime.name(),
                shipped.difference(&seen).collect::<Vec<_>>()
            );
        }
        // Shipped syscalls that no run used now: the diff is reported, not failed — a call such
        // as runc's futex happens only under contention, and allowing a call the runtime makes
        // sometimes is what the baseline is for. (What fails is a call the shipped baseline
        // lacks.)
        let removed: Vec<_> = shipped.difference(&seen).collect();
        if !removed.is_empty() {
            eprintln!(
                "{} {version}: {RUNS} fresh runs did not use {removed:?} (timing-dependent, or no longer needed: \
                 `cargo xtask baselines` relearns)",
                runtime.name()
            );
        }
    }
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
    use integration::runtimes::clear_stale;
    let test = "generated_profile_runs_in_runc_only_with_the_runtime_baseline";
    if !require_root(test) || require_tool(test, "runc").is_none() {
        return;
    }
    clear_stale(Runtime::Runc);
    let dir = tempfile::tempdir().expect("tempdir");
    let obs = learn_bare_workload(dir.path());
    let run_with = |extra: &[&str]| -> bool {
        let profile = generate(dir.path(), &obs, extra);
        run_in(Runtime::Runc, Mode::default(), None, &profile)
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

/// `auditor learn` of the bare workload (`busybox true`), outside any container.
fn learn_bare_workload(dir: &std::path::Path) -> std::path::PathBuf {
    use integration::runtimes::WORKLOAD;
    let obs = dir.join("obs.json");
    let o = std::process::Command::new(integration::auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .args(["--", WORKLOAD, "true"])
        .output()
        .expect("learn");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    obs
}

/// `auditor generate OBS --format oci EXTRA…`, parsed.
fn generate(dir: &std::path::Path, obs: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let profile = dir.join(format!("profile-{}.json", integration::unique_name("p")));
    let o = std::process::Command::new(integration::auditor_bin())
        .arg("generate")
        .arg(obs)
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
    serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json")
}

/// Run `busybox true` in a bundle of `runtime` in `mode` under `profile` (its listener, if
/// any, served by `agent`).
fn run_in(
    runtime: Runtime,
    mode: Mode,
    agent: Option<&std::path::Path>,
    profile: &serde_json::Value,
) -> std::process::Output {
    use integration::runtimes::{Bundle, WORKLOAD};
    let bundle = Bundle::busybox(runtime, &[WORKLOAD, "true"]).expect("bundle");
    if mode.userns {
        bundle.user_namespace().expect("userns");
    }
    let mut profile = profile.clone();
    if let Some(sock) = agent {
        profile["listenerPath"] = sock.display().to_string().into();
    }
    bundle
        .edit(|c| {
            c["linux"]["seccomp"] = profile;
            if mode.engine {
                c["process"]["noNewPrivileges"] = false.into();
            }
        })
        .expect("edit");
    let cmd = bundle.run_command();
    integration::run_with_timeout(
        std::process::Command::new(&cmd[0]).args(&cmd[1..]),
        std::time::Duration::from_secs(30),
    )
}

/// For runc and crun in every mode (listener, user namespace, noNewPrivileges off), the profile
/// generate writes for that mode from the bare workload runs a real container; and the mode
/// matters: runc's init reads from its sync pipe after loading a notify filter, so the plain
/// baseline with a listener added fails it at start (the failure this replaced).
#[test]
fn generated_profiles_run_in_every_runtime_mode() {
    use integration::runtimes::clear_stale;
    let test = "generated_profiles_run_in_every_runtime_mode";
    if !require_root(test)
        || require_tool(test, "runc").is_none()
        || require_tool(test, "crun").is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::create_dir_all(dir.path().join("policies")).expect("policies");
    std::fs::write(
        dir.path().join("policies/default.toml"),
        integration::ALLOW_ALL_POLICY,
    )
    .expect("policy");
    let agent = integration::agent::Agent::start_in(
        dir.path(),
        integration::agent::Protocol::Oci,
        &[],
        &[],
    );
    let obs = learn_bare_workload(dir.path());
    for runtime in [Runtime::Runc, Runtime::Crun] {
        clear_stale(runtime);
        for mode in Mode::all() {
            let mut args = vec!["--runtime", runtime.name()];
            let sock = agent.socket.display().to_string();
            if mode.listener {
                // A notify rule (sysinfo, which the workload never calls) and its listener.
                args.extend(["--with-handler", "sysinfo", "--listener", &sock]);
            }
            if mode.userns {
                args.push("--userns");
            }
            args.extend([
                "--no-new-privileges",
                if mode.engine { "off" } else { "on" },
            ]);
            let profile = generate(dir.path(), &obs, &args);
            assert_eq!(
                profile.get("listenerPath").is_some(),
                mode.listener,
                "{profile:#}"
            );
            let o = run_in(runtime, mode, None, &profile);
            assert!(
                o.status.success(),
                "{} ({}) under its generated profile: {}\nagent: {}",
                runtime.name(),
                mode.describe(),
                integration::describe(&o),
                agent.log_text()
            );
        }
    }
    // The plain baseline is not enough for runc with a listener.
    let mut plain = generate(dir.path(), &obs, &["--runtime", "runc"]);
    plain["syscalls"]
        .as_array_mut()
        .expect("syscalls")
        .push(serde_json::json!({"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}));
    let listener = Mode {
        listener: true,
        ..Mode::default()
    };
    let o = run_in(Runtime::Runc, listener, Some(&agent.socket), &plain);
    assert!(
        !o.status.success(),
        "runc ran with the plain baseline and a listener: the listener mode's baseline would not be needed"
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
