//! podman for real (4.3 from Debian, with a private store per test), with runc and with crun:
//! a container annotated `io.auditor.learn=true` is learned by `auditor daemon` through the
//! shipped hooks.d file, the generated profile runs it under `--security-opt seccomp=` and
//! refuses a call it never made; a user-namespaced container's mknod is emulated by `auditor
//! agent` through the profile's `listenerPath` (and, with crun, the `run.oci.seccomp.receiver`
//! annotation); `learn --container podman://NAME` attaches to a running container. Needs root,
//! podman, runc, crun, strace and busybox-static; under CI=true it fails rather than skips.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use integration::learner::{strace_workload, workload_names, Daemon};
use integration::podman::{self, Podman, Runtime, IMAGE};
use integration::{auditor_bin, describe, require_tool, run_with_timeout, Scratch};

const SCRIPT: &str = "busybox uname -a; busybox echo podman-learned";

/// What strace sees of SCRIPT run directly on the host (after its execve).
fn strace_outside(s: &Scratch) -> BTreeSet<String> {
    let trace = s.path("trace");
    let o = run_with_timeout(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .args(["/bin/busybox", "sh", "-c", SCRIPT]),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "strace: {}", describe(&o));
    let text = std::fs::read_to_string(&trace).expect("trace");
    let init = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid on strace's first line");
    strace_workload(&trace, init)
}

/// The hooks.d file auditor ships, pointed at this test's binary and daemon socket.
fn install_learn_hook(engine: &Podman, daemon: &Daemon) {
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/hooks.d/auditor-learn.json"
    );
    let mut hook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped).expect("shipped hooks.d file"))
            .expect("hooks.d JSON");
    hook["hook"]["path"] = auditor_bin().display().to_string().into();
    hook["hook"]["args"] = serde_json::json!([
        "auditor",
        "hook",
        "--socket",
        daemon.socket.display().to_string()
    ]);
    std::fs::write(
        engine.hooks_dir.join("auditor-learn.json"),
        hook.to_string(),
    )
    .expect("hook file");
}

fn container_id(cidfile: &std::path::Path) -> String {
    std::fs::read_to_string(cidfile)
        .expect("cidfile")
        .trim()
        .to_owned()
}

#[test]
fn podman_hook_learns_runc_and_crun_containers_and_their_profiles_enforce_them() {
    let test = "podman_hook_learns_runc_and_crun_containers_and_their_profiles_enforce_them";
    if !podman::ready(test) || require_tool(test, "strace").is_none() {
        return;
    }
    let s = Scratch::new("auditor-podlearn");
    let engine = Podman::start();
    // The daemon asks this podman (its CONTAINERS_* environment) who its containers are.
    let mut daemon = Daemon::start_env(engine.env());
    install_learn_hook(&engine, &daemon);
    let theirs = strace_outside(&s);
    for runtime in Runtime::ALL {
        let rt = runtime.name();
        let cid = s.path(&format!("{rt}.cid"));
        let name = integration::unique_name(&format!("auditor-{rt}"));
        let o = engine.run(
            runtime,
            &[
                "--name",
                &name,
                "--annotation",
                "io.auditor.learn=true",
                "--cidfile",
                &cid.display().to_string(),
                IMAGE,
                "/bin/sh",
                "-c",
                SCRIPT,
            ],
        );
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("podman-learned"),
            "podman run ({rt}) with the learn hook: {}\ndaemon: {}",
            describe(&o),
            daemon.log_text()
        );
        let id = container_id(&cid);
        let obs = daemon.observation_when(&id, |o| {
            matches!(
                &o.target,
                auditor::observe::model::Target::Container { name: Some(_), .. }
            )
        });
        assert_eq!(obs.loss.total, 0, "{rt}: lost {:?}", obs.loss.counters);
        // The hook names the runtime that runs it (its parent), unasked; podman's annotation
        // says podman, and podman itself names the container and its image.
        assert!(
            matches!(&obs.target, auditor::observe::model::Target::Container { id: i, runtime: Some(r), engine, name: n, image, .. }
                if *i == id && r == rt && engine.as_deref() == Some("podman")
                    && n.as_deref() == Some(name.as_str()) && image.as_deref() == Some(IMAGE)),
            "{rt}: {:?}\ndaemon: {}",
            obs.target,
            daemon.log_text()
        );
        let ours = workload_names(&obs);
        eprintln!("podman+{rt} workload (auditor): {ours:?}\nhost run (strace): {theirs:?}");
        let missing: Vec<_> = theirs
            .difference(&ours)
            .filter(|n| *n != "execve")
            .collect();
        assert!(
            missing.is_empty(),
            "{rt}: learned through podman, missed: {missing:?}"
        );
        let extra: Vec<_> = ours.difference(&theirs).collect();
        assert!(
            extra.is_empty(),
            "{rt}: not made by the workload: {extra:?}"
        );

        // The profile generated for this runtime runs the workload under podman...
        let profile = s.path(&format!("{rt}.json"));
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .arg("generate")
                .arg(daemon.out.join(format!("{id}.json")))
                .args(["--format", "podman", "-o"])
                .arg(&profile),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "generate ({rt}): {}", describe(&o));
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .args(["check", "--engine", "podman"])
                .arg(&profile),
            Duration::from_secs(60),
        );
        assert!(
            o.status.code().is_some_and(|c| c <= 1)
                && !String::from_utf8_lossy(&o.stdout).contains("podman"),
            "check --engine podman ({rt}): {}",
            describe(&o)
        );
        let seccomp = format!("seccomp={}", profile.display());
        let o = engine.run(
            runtime,
            &["--security-opt", &seccomp, IMAGE, "/bin/sh", "-c", SCRIPT],
        );
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("podman-learned"),
            "{rt}: the learned workload under its profile: {}",
            describe(&o)
        );
        // ...and refuses what it never made.
        let mkdir = "busybox mkdir /tmp/x; echo mkdir=$?";
        let o = engine.run(
            runtime,
            &["--security-opt", &seccomp, IMAGE, "/bin/sh", "-c", mkdir],
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("mkdir=1")
                && String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
            "{rt}: {}",
            describe(&o)
        );
        let o = engine.run(runtime, &[IMAGE, "/bin/sh", "-c", mkdir]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("mkdir=0"),
            "{rt} without the profile: {}",
            describe(&o)
        );
    }
    // Without the annotation the hook does not run: nothing is learned.
    let cid = s.path("plain.cid");
    let o = engine.run(
        Runtime::Runc,
        &[
            "--cidfile",
            &cid.display().to_string(),
            IMAGE,
            "/bin/sh",
            "-c",
            "busybox true",
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let id = container_id(&cid);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !daemon.out.join(format!("{id}.json")).exists(),
        "a container without io.auditor.learn=true was learned"
    );
    assert!(daemon.stop().success());
}

/// mknod of /dev/null's device in a user-namespaced podman container: the kernel refuses it
/// there, podman keeps the profile's `listenerPath`/`listenerMetadata`, and `auditor agent`
/// emulates it under the policy the metadata names. With crun the listener may also come from
/// the `run.oci.seccomp.receiver` annotation (the policy then from auditor's annotation).
#[test]
fn podman_userns_containers_get_mknod_from_the_agent_with_runc_and_crun() {
    let test = "podman_userns_containers_get_mknod_from_the_agent_with_runc_and_crun";
    if !podman::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-podagent");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let agent = integration::agent::Agent::oci_with(&s, &["--policy-from-annotation"]);
    let engine = Podman::start();
    let rules = serde_json::json!([{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]);
    let with_listener = s.write(
        "listener.json",
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": agent.socket.display().to_string(),
            "listenerMetadata": "web",
            "syscalls": rules,
        })
        .to_string(),
    );
    let without_listener = s.write(
        "plain.json",
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": rules,
        })
        .to_string(),
    );
    let receiver = format!("run.oci.seccomp.receiver={}", agent.socket.display());
    let script =
        "busybox mknod /tmp/null c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null; \
                  busybox mknod /tmp/blk b 8 0; echo blk=$?";
    let userns = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
    let cases: [(Runtime, &std::path::Path, Option<&str>); 3] = [
        (Runtime::Runc, &with_listener, None),
        (Runtime::Crun, &with_listener, None),
        (Runtime::Crun, &without_listener, Some(&receiver)),
    ];
    for (n, (runtime, profile, annotation)) in cases.into_iter().enumerate() {
        let what = format!(
            "{} with {}",
            runtime.name(),
            if annotation.is_some() {
                "the receiver annotation"
            } else {
                "listenerPath"
            }
        );
        let cid = s.path(&format!("{n}.cid"));
        let seccomp = format!("seccomp={}", profile.display());
        let cid_arg = cid.display().to_string();
        let mut args: Vec<&str> = userns.to_vec();
        args.extend(["--cidfile", &cid_arg, "--security-opt", &seccomp]);
        if let Some(a) = annotation {
            args.extend(["--annotation", a, "--annotation", "org.auditor.policy=web"]);
        }
        args.extend([IMAGE, "/bin/sh", "-c", script]);
        let o = engine.run(runtime, &args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("mknod=0") && out.contains("dev=1:3") && out.contains("blk=1"),
            "{what}: {}\nagent: {}",
            describe(&o),
            agent.log_text()
        );
        let id = container_id(&cid);
        let records = agent.wait_records(|r| {
            r.iter()
                .any(|r| r["container"] == id.as_str() && r["decision"] == "denied")
        });
        assert!(
            records.iter().any(|r| r["container"] == id.as_str()
                && r["decision"] == "emulated"
                && r["policy"] == "web"
                && r["decoded"]["path"] == "/tmp/null"),
            "{what}: {records:#?}"
        );
    }
    // Without a listener at all, the notify profile cannot be served: the engine says so
    // rather than running the container unguarded.
    let mut args: Vec<&str> = userns.to_vec();
    let seccomp = format!("seccomp={}", without_listener.display());
    args.extend(["--security-opt", &seccomp, IMAGE, "/bin/sh", "-c", script]);
    let o = engine.run(Runtime::Runc, &args);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "mknod succeeded with no agent: {}",
        describe(&o)
    );
}

/// `auditor learn --container podman://NAME` attaches to a running podman container through
/// `podman inspect` (with the caller's CONTAINERS_* environment), scoped by its cgroup.
#[test]
fn learn_attaches_to_a_running_podman_container_by_name() {
    let test = "learn_attaches_to_a_running_podman_container_by_name";
    if !podman::ready(test) {
        return;
    }
    let s = Scratch::new("auditor-podattach");
    let engine = Podman::start();
    let name = integration::unique_name("auditor-web");
    let rt = engine.runtime_arg(Runtime::Runc);
    let o = engine.podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--runtime",
        &rt,
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox sleep 3; busybox uname -a; busybox mkdir /tmp/zz; busybox sleep 1",
    ]);
    assert!(o.status.success(), "podman run -d: {}", describe(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let obs_path = s.path("obs.json");
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args(["learn", "--no-progress", "--container"])
            .arg(format!("podman://{name}"))
            .arg("-o")
            .arg(&obs_path)
            .envs(engine.env()),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "learn --container podman://: {}",
        describe(&o)
    );
    assert!(
        err.contains(&format!(
            "attached to podman container {name} ({}",
            &id[..12]
        )) && err.contains("image localhost/auditor-busybox:test")
            && err.contains("before now is not in the file"),
        "{err}"
    );
    let obs = auditor::observe::load(&obs_path).expect("observation");
    assert!(
        matches!(&obs.target, auditor::observe::model::Target::Container { id: i, cgroup: Some(c), .. } if *i == id && c.contains(&id)),
        "{:?}",
        obs.target
    );
    let names: BTreeSet<String> = obs.syscalls.iter().map(|s| s.name.clone()).collect();
    for call in ["uname", "mkdir"] {
        assert!(names.contains(call), "{call} not learned: {names:?}");
    }
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args([
                "learn",
                "--container",
                "podman://no-such-container-here",
                "-o",
            ])
            .arg(s.path("none.json"))
            .envs(engine.env()),
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("`podman inspect no-such-container-here` failed"),
        "{}",
        describe(&o)
    );
}
