//! Docker for real (dockerd 20.10 from Debian's docker.io, started privately by the test):
//! `docker run --runtime auditor-learn` is learned by `auditor daemon` through `auditor
//! runtime` from the container's first syscall, the generated profile runs the same workload
//! under `--security-opt seccomp=` and refuses a call it never made. Needs root, docker.io,
//! runc, strace and busybox-static; under CI=true it fails rather than skips.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use integration::docker::{self, Dockerd, IMAGE};
use integration::learner::{strace_workload, workload_names, Daemon};
use integration::{auditor_bin, describe, require_tool, run_with_timeout, Scratch};

const SCRIPT: &str = "busybox uname -a; busybox echo docker-learned";

/// What strace sees of SCRIPT run directly on the host (after its execve).
fn strace_outside_docker(s: &Scratch) -> BTreeSet<String> {
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

#[test]
fn docker_runtime_learns_a_container_and_its_profile_enforces_it() {
    let test = "docker_runtime_learns_a_container_and_its_profile_enforces_it";
    if !docker::ready(test) || require_tool(test, "strace").is_none() {
        return;
    }
    let s = Scratch::new("auditor-docker");
    let daemon_dir = std::env::temp_dir().join(integration::unique_name("auditor-daemon"));
    // The daemon.json entry the README gives, with this test's sockets.
    let engine = Dockerd::start(serde_json::json!({
        "runtimes": {"auditor-learn": {
            "path": auditor_bin().display().to_string(),
            "runtimeArgs": ["runtime", "--delegate", "runc", "--learn", daemon_dir.join("daemon.sock").display().to_string()]
        }}
    }));
    // The daemon asks this engine (DOCKER_HOST) who its containers are.
    let docker_host = format!("unix://{}", engine.socket.display());
    let mut daemon = Daemon::start_with_env(&daemon_dir, &[], [("DOCKER_HOST", &docker_host)]);
    let cid = s.path("cid");
    let name = integration::unique_name("auditor-learned");
    let o = engine.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--label",
        "app=web",
        "--network",
        "none",
        "--runtime",
        "auditor-learn",
        "--cidfile",
        &cid.display().to_string(),
        IMAGE,
        "/bin/sh",
        "-c",
        SCRIPT,
    ]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("docker-learned"),
        "docker run --runtime auditor-learn: {}\ndockerd: {}",
        describe(&o),
        engine.log_text()
    );
    let id = std::fs::read_to_string(&cid)
        .expect("cidfile")
        .trim()
        .to_owned();
    // Named by the engine, which the daemon asks once the hook has returned (the file may be
    // written first and completed then).
    let named = |o: &auditor::observe::model::Observation| {
        matches!(
            &o.target,
            auditor::observe::model::Target::Container { name: Some(_), .. }
        )
    };
    let obs = daemon.observation_when(&id, named);
    assert_eq!(obs.loss.total, 0, "lost: {:?}", obs.loss.counters);
    assert!(
        matches!(&obs.target, auditor::observe::model::Target::Container { id: i, runtime, engine, name: n, image, labels, .. }
            if *i == id && runtime.as_deref() == Some("runc") && engine.as_deref() == Some("docker")
                && n.as_deref() == Some(name.as_str()) && image.as_deref() == Some(IMAGE)
                && labels.get("app").map(String::as_str) == Some("web")),
        "{:?}\ndaemon: {}",
        obs.target,
        daemon.log_text()
    );
    let ours = workload_names(&obs);
    let theirs = strace_outside_docker(&s);
    eprintln!("docker workload (auditor): {ours:?}\nhost run (strace): {theirs:?}");
    // `execve` of the workload is runc init's in auditor's accounting (the runtime's call).
    let missing: Vec<_> = theirs
        .difference(&ours)
        .filter(|n| *n != "execve")
        .collect();
    assert!(
        missing.is_empty(),
        "learned through Docker, missed: {missing:?}"
    );
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        extra.is_empty(),
        "learned through Docker, not made by the workload: {extra:?}"
    );

    // The generated profile runs the same workload under Docker's own runc...
    let obs_path = daemon.out.join(format!("{id}.json"));
    let profile = s.path("profile.json");
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .arg("generate")
            .arg(&obs_path)
            .args(["--format", "docker", "--runtime", "runc", "-o"])
            .arg(&profile),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "generate: {}", describe(&o));
    // Nothing in it that Docker would drop.
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args(["check", "--engine", "docker"])
            .arg(&profile),
        Duration::from_secs(60),
    );
    // (The runtime baseline's mount calls are linted; nothing is about Docker.)
    assert!(
        o.status.code().is_some_and(|c| c <= 1)
            && !String::from_utf8_lossy(&o.stdout).contains("Docker"),
        "check --engine docker: {}",
        describe(&o)
    );
    let seccomp = format!("seccomp={}", profile.display());
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        SCRIPT,
    ]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("docker-learned"),
        "the learned workload under its profile: {}",
        describe(&o)
    );
    // ...and refuses what it never made (mkdir).
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox mkdir /tmp/x; echo mkdir=$?",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mkdir=1")
            && String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{}",
        describe(&o)
    );
    // Without the profile, mkdir works: the refusal is the profile's.
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox mkdir /tmp/x; echo mkdir=$?",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mkdir=0"),
        "{}",
        describe(&o)
    );
    drop(engine);
    assert!(daemon.stop().success());
}

/// mknod of /dev/null's device in a user-namespaced Docker container (`--userns-remap`): the
/// kernel refuses it there, Docker drops the profile's `listenerPath`, and `auditor runtime
/// --agent` puts it back so that `auditor agent` emulates the call under the named policy.
#[test]
fn docker_userns_container_gets_mknod_from_the_agent_through_auditor_runtime() {
    let test = "docker_userns_container_gets_mknod_from_the_agent_through_auditor_runtime";
    if !docker::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-dockagent");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let agent = integration::agent::Agent::oci(&s);
    let remap = docker::RemapUser::create();
    let engine = Dockerd::start(serde_json::json!({
        "userns-remap": remap.name,
        "runtimes": {"auditor-agent": {
            "path": auditor_bin().display().to_string(),
            "runtimeArgs": ["runtime", "--delegate", "runc", "--agent", agent.socket.display().to_string(), "--policy", "web"]
        }}
    }));
    let profile = s.write(
        "profile.json",
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
        })
        .to_string(),
    );
    let seccomp = format!("seccomp={}", profile.display());
    let script =
        "busybox mknod /tmp/null c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null; \
                  busybox mknod /tmp/blk b 8 0; echo blk=$?";
    // Docker alone: its runc refuses a notify profile without a listener.
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        script,
    ]);
    assert!(!o.status.success(), "{}", describe(&o));
    // Through auditor runtime --agent.
    let cid = s.path("cid");
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        "auditor-agent",
        "--cidfile",
        &cid.display().to_string(),
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        script,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mknod=0") && out.contains("dev=1:3") && out.contains("blk=1"),
        "{}\nagent: {}\ndockerd: {}",
        describe(&o),
        agent.log_text(),
        engine.log_text()
    );
    let id = std::fs::read_to_string(&cid)
        .expect("cidfile")
        .trim()
        .to_owned();
    let records = agent.wait_records(|r| r.iter().any(|r| r["container"] == id.as_str()));
    assert!(
        records.iter().any(|r| r["container"] == id.as_str()
            && r["decision"] == "emulated"
            && r["policy"] == "web"
            && r["decoded"]["path"] == "/tmp/null"),
        "{records:#?}"
    );
    drop(engine);
    drop(remap);
}

/// `auditor learn --container docker://NAME` attaches to a running Docker container through
/// the engine (`docker inspect`, honouring DOCKER_HOST), scoped by its cgroup, and says so.
#[test]
fn learn_attaches_to_a_running_docker_container_by_name() {
    let test = "learn_attaches_to_a_running_docker_container_by_name";
    if !docker::ready(test) {
        return;
    }
    let s = Scratch::new("auditor-dockattach");
    let engine = Dockerd::start(serde_json::json!({}));
    let name = integration::unique_name("auditor-web");
    let o = engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox sleep 3; busybox uname -a; busybox mkdir /tmp/zz; busybox sleep 1",
    ]);
    assert!(o.status.success(), "docker run -d: {}", describe(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let obs_path = s.path("obs.json");
    let docker_host = format!("unix://{}", engine.socket.display());
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args(["learn", "--no-progress", "--container"])
            .arg(format!("docker://{name}"))
            .arg("-o")
            .arg(&obs_path)
            .env("DOCKER_HOST", &docker_host),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "learn --container docker://: {}",
        describe(&o)
    );
    assert!(
        err.contains(&format!(
            "attached to docker container {name} ({}",
            &id[..12]
        )) && err.contains("image auditor-busybox:test")
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

    // The same container's id as Kubernetes shows it (`containerd://ID`), found in the runc
    // state of Docker's own containerd (this private engine's is under its exec root: --root).
    let o = engine.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox sleep 3; busybox uname -a; busybox sleep 1",
    ]);
    assert!(o.status.success(), "docker run -d: {}", describe(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let runc_root = engine.dir.join("exec/runtime-runc");
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args(["learn", "--no-progress", "--container"])
            .arg(format!("containerd://{id}"))
            .arg("--root")
            .arg(&runc_root)
            .arg("-o")
            .arg(&obs_path),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains(&format!("containerd container {}", &id[..12])),
        "learn --container containerd://: {}",
        describe(&o)
    );
    let obs = auditor::observe::load(&obs_path).expect("observation");
    assert!(
        matches!(&obs.target, auditor::observe::model::Target::Container { id: i, engine, .. }
            if *i == id && engine.as_deref() == Some("docker")),
        "{:?}",
        obs.target
    );
    assert!(
        obs.syscalls.iter().any(|s| s.name == "uname"),
        "uname not learned through containerd://"
    );
    // Without the root it says where it looked and what to give.
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args(["learn", "--container"])
            .arg(format!("containerd://{id}"))
            .arg("-o")
            .arg(s.path("none.json")),
        Duration::from_secs(60),
    );
    assert!(
        o.status.code() == Some(2)
            && String::from_utf8_lossy(&o.stderr).contains("give its runc root with --root"),
        "{}",
        describe(&o)
    );

    // A name the engine does not know: a clear error, exit 2.
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args([
                "learn",
                "--container",
                "docker://no-such-container-here",
                "-o",
            ])
            .arg(s.path("none.json"))
            .env("DOCKER_HOST", &docker_host),
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("`docker inspect no-such-container-here` failed"),
        "{}",
        describe(&o)
    );
}

/// A notify-only profile for mknod: what `auditor runtime --agent` serves.
fn mknod_notify_profile(s: &Scratch) -> String {
    let profile = s.write(
        "profile.json",
        &serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
        })
        .to_string(),
    );
    format!("seccomp={}", profile.display())
}

/// The lines of `log` about container `id` that contain `what`.
fn lines_about<'a>(log: &'a str, id: &str, what: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(id) && l.contains(what))
        .collect()
}

/// `docker run --rm` of one served mknod under `runtime`: the container's id once it is done.
fn one_served_mknod(engine: &Dockerd, s: &Scratch, runtime: &str, seccomp: &str) -> String {
    let cid = s.path(&integration::unique_name("cid"));
    let o = engine.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        runtime,
        "--cidfile",
        &cid.display().to_string(),
        "--security-opt",
        seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        "busybox mknod /tmp/null c 1 3; echo mknod=$?",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\ndockerd: {}",
        describe(&o),
        engine.log_text()
    );
    std::fs::read_to_string(&cid)
        .expect("cidfile")
        .trim()
        .to_owned()
}

/// Containers killed (`docker kill`, SIGKILL) while four loops of theirs keep mknod calls in
/// the agent's hands: the kill returns, the container goes, the agent logs the container's end
/// with its summary, keeps serving, and holds no more file descriptors than before.
#[test]
fn docker_containers_killed_mid_notification_leave_the_agent_serving_and_clean() {
    let test = "docker_containers_killed_mid_notification_leave_the_agent_serving_and_clean";
    if !docker::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-dockkill");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let mut agent = integration::agent::Agent::oci(&s);
    let agent_pid = agent.pid().expect("agent pid");
    let engine = Dockerd::start(serde_json::json!({
        "runtimes": {"auditor-agent": {
            "path": auditor_bin().display().to_string(),
            "runtimeArgs": ["runtime", "--delegate", "runc", "--agent", agent.socket.display().to_string(), "--policy", "web"]
        }}
    }));
    let seccomp = mknod_notify_profile(&s);
    // One container served to its end first: what the agent keeps open for good (its audit
    // log) is open from then on.
    let first = one_served_mknod(&engine, &s, "auditor-agent", &seccomp);
    agent.wait_log(|l| !lines_about(l, &first, "container done").is_empty());
    let baseline = integration::open_fds(agent_pid);
    let hammer = "for j in 1 2 3 4; do (while :; do busybox mknod /tmp/n$j c 1 3; \
                  busybox rm -f /tmp/n$j; done) & done; wait";
    for round in 0..3 {
        let o = engine.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--runtime",
            "auditor-agent",
            "--security-opt",
            &seccomp,
            IMAGE,
            "/bin/sh",
            "-c",
            hammer,
        ]);
        assert!(o.status.success(), "round {round}: {}", describe(&o));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        // Served for a while: its loops keep the agent busy.
        let records = agent.wait_records(|r| {
            r.iter()
                .filter(|r| r["container"] == id.as_str() && r["decision"] == "emulated")
                .count()
                >= 20
        });
        assert!(
            records
                .iter()
                .filter(|r| r["container"] == id.as_str())
                .count()
                >= 20,
            "round {round}: the hammer was not served\nagent: {}",
            agent.log_text()
        );
        let o = engine.docker(&["kill", &id]);
        assert!(o.status.success(), "round {round}: kill: {}", describe(&o));
        let o = engine.docker(&["rm", "-f", &id]);
        assert!(o.status.success(), "round {round}: rm: {}", describe(&o));
        let log = agent.wait_log(|l| !lines_about(l, &id, "container done").is_empty());
        let done = lines_about(&log, &id, "container done");
        assert!(
            done.len() == 1 && done[0].contains("notifications"),
            "round {round}: the agent did not log the killed container's end once with its summary:\n{log}"
        );
        eprintln!("round {round}: {}", done[0]);
    }
    assert!(agent.alive(), "{}", agent.log_text());
    let left = integration::wait_open_fds_at_most(agent_pid, baseline);
    assert!(
        left <= baseline,
        "the agent holds {left} fds after the killed containers, {baseline} before\n{}",
        agent.log_text()
    );
    // And it still serves.
    let last = one_served_mknod(&engine, &s, "auditor-agent", &seccomp);
    let log = agent.wait_log(|l| !lines_about(l, &last, "container done").is_empty());
    assert!(!log.contains("panicked"), "{log}");
}

/// dockerd restarted while auditor learns and serves its containers. With `live-restore` the
/// container lives through it: the agent keeps serving it (and a `docker exec` in it), the
/// daemon keeps learning it, and its end is logged and written as usual. Without, dockerd's
/// stop kills its containers: their ends are logged and written all the same. Neither the
/// agent nor the daemon holds a file descriptor more at the end than before.
#[test]
fn dockerd_restarts_while_auditor_learns_and_serves_its_containers() {
    let test = "dockerd_restarts_while_auditor_learns_and_serves_its_containers";
    if !docker::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-dockrestart");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let mut agent = integration::agent::Agent::oci(&s);
    let agent_pid = agent.pid().expect("agent pid");
    let daemon_dir = std::env::temp_dir().join(integration::unique_name("auditor-daemon"));
    let mut engine = Dockerd::start(serde_json::json!({
        "live-restore": true,
        "runtimes": {"auditor": {
            "path": auditor_bin().display().to_string(),
            "runtimeArgs": ["runtime", "--delegate", "runc",
                "--learn", daemon_dir.join("daemon.sock").display().to_string(),
                "--agent", agent.socket.display().to_string(), "--policy", "web"]
        }}
    }));
    let docker_host = format!("unix://{}", engine.socket.display());
    let mut daemon = Daemon::start_with_env(&daemon_dir, &[], [("DOCKER_HOST", &docker_host)]);
    let daemon_pid = daemon.pid().expect("daemon pid");
    let seccomp = mknod_notify_profile(&s);
    // One container learned and served to its end: both have opened what they keep.
    let first = one_served_mknod(&engine, &s, "auditor", &seccomp);
    daemon.observation(&first);
    agent.wait_log(|l| !lines_about(l, &first, "container done").is_empty());
    let (agent_fds, daemon_fds) = (
        integration::open_fds(agent_pid),
        integration::open_fds(daemon_pid),
    );

    let name = integration::unique_name("auditor-restarted");
    let o = engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--runtime",
        "auditor",
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        "while :; do busybox mknod /tmp/n c 1 3; busybox rm -f /tmp/n; busybox sleep 0.1; done",
    ]);
    assert!(o.status.success(), "docker run -d: {}", describe(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let served = |at_least: usize| {
        let r = agent.wait_records(|r| {
            r.iter()
                .filter(|r| r["container"] == id.as_str() && r["decision"] == "emulated")
                .count()
                >= at_least
        });
        r.iter()
            .filter(|r| r["container"] == id.as_str() && r["decision"] == "emulated")
            .count()
    };
    let before = served(3);
    assert!(before >= 3, "not served: {}", agent.log_text());

    engine.restart();
    let o = engine.docker(&["inspect", "-f", "{{.State.Running}}", &id]);
    assert!(
        String::from_utf8_lossy(&o.stdout).trim() == "true",
        "the container did not live through the restart: {}\ndockerd: {}",
        describe(&o),
        engine.log_text()
    );
    let after = served(before + 5);
    assert!(
        after >= before + 5,
        "not served after dockerd's restart ({before} then {after}):\n{}",
        agent.log_text()
    );
    // An exec in it after the restart: runc loads its filter again and hands the new listener
    // to the agent, through the same runtime wrapper.
    let o = engine.docker(&[
        "exec",
        &id,
        "/bin/sh",
        "-c",
        "busybox mknod /tmp/exec c 1 3; echo exec-mknod=$?",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("exec-mknod=0"),
        "docker exec: {}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    let o = engine.docker(&["stop", "-t", "1", &id]);
    assert!(o.status.success(), "docker stop: {}", describe(&o));
    let obs = daemon.observation(&id);
    assert_eq!(obs.loss.total, 0, "lost: {:?}", obs.loss.counters);
    // Made after the restart, by the container and by the exec (mknodat reaches the learner
    // as a call the filter handed to the agent: refused by seccomp, emulated there).
    let names: BTreeSet<&str> = obs.syscalls.iter().map(|s| s.name.as_str()).collect();
    for call in ["mknodat", "unlink", "clock_nanosleep"] {
        assert!(
            names.contains(call),
            "{call} not learned across the restart: {names:?}"
        );
    }
    let paths: BTreeSet<String> = obs
        .syscalls
        .iter()
        .filter(|s| s.name == "mknodat")
        .flat_map(|s| &s.arguments)
        .filter_map(|a| match &a.args {
            auditor::observe::model::Arguments::Mknod { path, .. } => path.clone(),
            _ => None,
        })
        .collect();
    assert!(
        paths.contains("/tmp/n") && paths.contains("/tmp/exec"),
        "mknodat paths learned: {paths:?}"
    );
    let log = agent.wait_log(|l| lines_about(l, &id, "container done").len() >= 2);
    assert!(
        lines_about(&log, &id, "container done").len() >= 2,
        "the agent did not log the end of the container and of its exec:\n{log}"
    );

    // Without live-restore, stopping dockerd stops its containers: their ends are logged and
    // written all the same, and the restarted engine runs containers under auditor again.
    engine.edit_config(|c| c["live-restore"] = false.into());
    engine.restart();
    let o = engine.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--runtime",
        "auditor",
        "--security-opt",
        &seccomp,
        IMAGE,
        "/bin/sh",
        "-c",
        "while :; do busybox mknod /tmp/n c 1 3; busybox rm -f /tmp/n; busybox sleep 0.1; done",
    ]);
    assert!(o.status.success(), "docker run -d: {}", describe(&o));
    let doomed = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let r = agent.wait_records(|r| r.iter().any(|r| r["container"] == doomed.as_str()));
    assert!(
        r.iter().any(|r| r["container"] == doomed.as_str()),
        "{}",
        agent.log_text()
    );
    engine.stop_engine();
    let obs = daemon.observation(&doomed);
    assert_eq!(obs.loss.total, 0, "lost: {:?}", obs.loss.counters);
    let log = agent.wait_log(|l| !lines_about(l, &doomed, "container done").is_empty());
    assert!(
        !lines_about(&log, &doomed, "container done").is_empty(),
        "the agent did not log the end of the container dockerd's stop killed:\n{log}"
    );
    engine.restart();
    let last = one_served_mknod(&engine, &s, "auditor", &seccomp);
    daemon.observation(&last);
    agent.wait_log(|l| !lines_about(l, &last, "container done").is_empty());

    assert!(agent.alive() && daemon.alive());
    let left = integration::wait_open_fds_at_most(agent_pid, agent_fds);
    assert!(
        left <= agent_fds,
        "the agent holds {left} fds at the end, {agent_fds} before\n{}",
        agent.log_text()
    );
    let left = integration::wait_open_fds_at_most(daemon_pid, daemon_fds);
    assert!(
        left <= daemon_fds,
        "the daemon holds {left} fds at the end, {daemon_fds} before\n{}",
        daemon.log_text()
    );
    for log in [agent.log_text(), daemon.log_text()] {
        assert!(!log.contains("panicked"), "{log}");
    }
}
