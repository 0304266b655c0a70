//! `auditor agent` as runc and crun use it: the OCI seccomp agent (`listenerPath`).
//!
//! Each test learns a busybox container in a user namespace (where the kernel refuses mknod of
//! a device by itself) with `auditor learn`, generates the native policy and the OCI profile
//! that points the runtime at the agent (`--listener`, `--listener-metadata`), starts its own
//! agent on its own socket and runs real containers against it. Needs root, runc/crun and
//! busybox-static; under CI=true it fails rather than skips when it cannot run.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::agent::Agent;
use integration::runtimes::{self, Bundle, Runtime};
use integration::{
    auditor_bin, describe, in_ci, require_root, require_tool, run_with_timeout, Scratch,
};

const PREFIX: &str = "auditor-agent";
/// The native policy's name in the agent's policy directory (the profile's listenerMetadata).
const POLICY: &str = "busybox-mknod";
/// Everything any test's containers run, learned once per test (the generated profile allows
/// exactly this, plus the runtime's own calls). In the user namespace both mknods fail (EPERM):
/// the char device becomes a notify rule for the mknod handler, the block device stays refused.
const LEARN_SCRIPT: &str = "busybox mknod /tmp/null c 1 3; echo mknod=$?; busybox mknod /tmp/blk b 8 0; echo blk=$?; \
     busybox stat -c dev=%t:%T /tmp/null; busybox rm -f /tmp/null; i=0; while [ $i -lt 2 ]; do i=$((i+1)); done; \
     busybox sleep 0; echo learned";

fn command(argv: &[String]) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// Root, the runtime and busybox-static, or a skip (a failure under CI).
fn can_run(test: &str, runtime: Runtime) -> bool {
    if !require_root(test) || require_tool(test, runtime.tool()).is_none() {
        return false;
    }
    if !Path::new("/bin/busybox").is_file() {
        if in_ci() {
            panic!("{test}: /bin/busybox (busybox-static) is missing; run `cargo xtask setup`");
        }
        eprintln!("SKIP {test}: /bin/busybox missing");
        return false;
    }
    true
}

/// What a test needs: scratch dir, the policy in it, the notify profile and its plain twin.
struct Setup {
    scratch: Scratch,
    runtime: Runtime,
    profile: serde_json::Value,
    plain: serde_json::Value,
}

impl Setup {
    /// Learn the busybox container under `runtime`, generate the native policy into the policy
    /// directory and the OCI profile pointing at the (future) agent socket.
    fn new(runtime: Runtime) -> Setup {
        // Leftovers of earlier runs (of test processes that are gone); once per process.
        static CLEARED: std::sync::Once = std::sync::Once::new();
        CLEARED.call_once(|| {
            runtimes::clear_stale(Runtime::Runc);
            runtimes::clear_stale(Runtime::Crun);
        });
        let scratch = Scratch::private_with_policies(PREFIX);
        let d = scratch.dir();
        let bundle =
            Bundle::busybox(runtime, &["/bin/busybox", "sh", "-c", LEARN_SCRIPT]).expect("bundle");
        bundle.user_namespace().expect("user namespace");
        let obs = d.join("obs.json");
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .args(["learn", "--no-progress", "-o"])
                .arg(&obs)
                .arg("--")
                .args(bundle.run_command()),
            Duration::from_secs(180),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("learned") && out.contains("mknod=1"),
            "learning the container (mknod must fail in the user namespace): {}",
            describe(&o)
        );
        drop(bundle);
        let native = d.join("policies").join(format!("{POLICY}.toml"));
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .arg("generate")
                .arg(&obs)
                .arg("-o")
                .arg(&native),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "auditor generate (native): {}",
            describe(&o)
        );
        let oci = d.join("profile.json");
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .arg("generate")
                .arg(&obs)
                .args(["--format", "oci", "--listener"])
                .arg(d.join("agent.sock"))
                .args([
                    "--listener-metadata",
                    POLICY,
                    "--runtime",
                    runtime.name(),
                    "-o",
                ])
                .arg(&oci),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "auditor generate (oci): {}",
            describe(&o)
        );
        let profile: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&oci).expect("profile")).expect("JSON");
        assert_eq!(profile["listenerMetadata"], POLICY);
        // For crun (and only crun: runc 1.1 refuses any flag) a notified call waits killable.
        let killable = profile["flags"].as_array().is_some_and(|f| {
            f.iter()
                .any(|f| f == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
        });
        assert_eq!(killable, runtime == Runtime::Crun, "{:#}", profile["flags"]);
        let notify = profile["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .find(|s| s["action"] == "SCMP_ACT_NOTIFY")
            .unwrap_or_else(|| panic!("no notify rule in the generated profile: {profile:#}"));
        assert!(
            notify["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == "mknodat" || n == "mknod")),
            "{notify:#}"
        );
        // The same profile with every notify rule answered EPERM by the filter itself.
        let mut plain = profile.clone();
        if let Some(obj) = plain.as_object_mut() {
            obj.remove("listenerPath");
            obj.remove("listenerMetadata");
        }
        for s in plain["syscalls"].as_array_mut().expect("syscalls") {
            if s["action"] == "SCMP_ACT_NOTIFY" {
                s["action"] = "SCMP_ACT_ERRNO".into();
                s["errnoRet"] = 1.into();
            }
        }
        Setup {
            scratch,
            runtime,
            profile,
            plain,
        }
    }

    /// A user-namespaced busybox bundle running `script` under `profile`.
    fn bundle(&self, script: &str, profile: &serde_json::Value) -> Bundle {
        let b =
            Bundle::busybox(self.runtime, &["/bin/busybox", "sh", "-c", script]).expect("bundle");
        b.user_namespace().expect("user namespace");
        b.set_seccomp(profile).expect("seccomp");
        b
    }

    fn run(&self, b: &Bundle) -> Output {
        run_with_timeout(&mut command(&b.run_command()), Duration::from_secs(60))
    }
}

/// The emulated mknod records of container `id`.
fn emulated<'a>(records: &'a [serde_json::Value], id: &str) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| {
            r["container"] == id
                && r["decision"] == "emulated"
                && r["syscall"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("mknod"))
        })
        .collect()
}

const MKNOD_SCRIPT: &str =
    "busybox mknod /tmp/null c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null; \
     busybox mknod /tmp/blk b 8 0; echo blk=$?";

fn mknod_through_the_agent(test: &str, runtime: Runtime) {
    if !can_run(test, runtime) {
        return;
    }
    let s = Setup::new(runtime);

    // Without the agent's help (the filter answers EPERM), the user namespace forbids it.
    let b = s.bundle(MKNOD_SCRIPT, &s.plain);
    let o = s.run(&b);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("mknod=1") && out.contains("blk=1"),
        "{}",
        describe(&o)
    );
    drop(b);

    // Through the agent: the char device is made on the container's behalf, the block one is not.
    let agent = Agent::oci(&s.scratch);
    let b = s.bundle(MKNOD_SCRIPT, &s.profile);
    let o = s.run(&b);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("mknod=0") && out.contains("dev=1:3"),
        "{}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    assert!(out.contains("blk=1"), "{}", describe(&o));
    let records = agent.wait_records(|r| !emulated(r, &b.id).is_empty());
    let mine = emulated(&records, &b.id);
    assert_eq!(mine.len(), 1, "{records:#?}\nagent: {}", agent.log_text());
    assert_eq!(mine[0]["decoded"]["path"], "/tmp/null", "{:#}", mine[0]);
    assert_eq!(mine[0]["result"], "0", "{:#}", mine[0]);
    assert!(
        !records.iter().any(|r| r["decoded"]["dev"]
            .as_str()
            .is_some_and(|d| d.starts_with("block"))
            && r["result"] == "0"),
        "a block device was made: {records:#?}"
    );
    assert!(
        agent.log_text().contains(&b.id),
        "the agent logs the container it serves: {}",
        agent.log_text()
    );
}

#[test]
fn runc_mknod_through_the_agent() {
    mknod_through_the_agent("runc_mknod_through_the_agent", Runtime::Runc);
}

#[test]
fn crun_mknod_through_the_agent() {
    mknod_through_the_agent("crun_mknod_through_the_agent", Runtime::Crun);
}

/// Whether a process of `b`'s container is (within 5 s) blocked in mknodat, waiting for the
/// agent's answer (/proc/PID/syscall names the call a blocked task is in).
fn waiting_in_mknodat(b: &Bundle) -> bool {
    let o = Command::new("runc").args(["state", &b.id]).output();
    let Some(init) = o
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["pid"].as_i64())
    else {
        return false;
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return false;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ppid = std::fs::read_to_string(p.join("stat")).ok().and_then(|s| {
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i64>().ok())
            });
            let nr = std::fs::read_to_string(p.join("syscall")).unwrap_or_default();
            if ppid == Some(init)
                && nr.split_whitespace().next() == Some(&libc::SYS_mknodat.to_string())
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_agent_survives_garbage_and_a_container_killed_mid_notification() {
    let test = "the_agent_survives_garbage_and_a_container_killed_mid_notification";
    if !can_run(test, Runtime::Runc) {
        return;
    }
    let s = Setup::new(Runtime::Runc);
    let mut agent = Agent::oci(&s.scratch);

    // Hostile clients: garbage, a valid message without its fd, and one that never finishes.
    let send = |bytes: &[u8]| {
        let mut c = std::os::unix::net::UnixStream::connect(&agent.socket).expect("connect");
        let _ = c.write_all(bytes);
    };
    send(b"\x00\xffgarbage{{{");
    send(br#"{"ociVersion":"1.0.2","fds":["seccompFd"],"pid":1,"metadata":"","state":{"id":"x"}}"#);
    let _slow = std::os::unix::net::UnixStream::connect(&agent.socket).expect("connect");

    // A container looping on notified calls, killed while it does.
    let looping = s.bundle(
        "while :; do busybox mknod /tmp/null c 1 3; busybox rm -f /tmp/null; done",
        &s.profile,
    );
    let mut child = command(&looping.run_command())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runc run");
    let records = agent.wait_records(|r| emulated(r, &looping.id).len() >= 5);
    assert!(
        emulated(&records, &looping.id).len() >= 5,
        "the looping container was not served: {}",
        agent.log_text()
    );
    // Freeze the agent: the container's next mknod waits in the kernel for an answer that
    // cannot come; kill the container while it waits, then let the agent go on.
    agent.signal(libc::SIGSTOP);
    let waiting = waiting_in_mknodat(&looping);
    let killed = looping.kill();
    let start = Instant::now();
    while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.signal(libc::SIGCONT);
    killed.expect("kill the container");
    assert!(
        waiting,
        "no process of the container was waiting in mknodat while the agent was stopped"
    );
    assert!(
        !matches!(child.try_wait(), Ok(None)),
        "the container killed mid-notification did not exit"
    );
    let log = agent.wait_log(|l| {
        l.lines()
            .any(|x| x.contains("container done") && x.contains(&looping.id))
    });
    assert!(
        log.lines()
            .any(|x| x.contains("container done") && x.contains(&looping.id)),
        "the killed container's broker did not end: {log}"
    );
    drop(looping);
    assert!(agent.alive(), "the agent died: {}", agent.log_text());

    // … and still serves a new container.
    let b = s.bundle(MKNOD_SCRIPT, &s.profile);
    let o = s.run(&b);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    let records = agent.wait_records(|r| !emulated(r, &b.id).is_empty());
    assert_eq!(emulated(&records, &b.id).len(), 1, "{}", agent.log_text());
    assert!(agent.alive(), "the agent died: {}", agent.log_text());
    let me = std::process::id().to_string();
    let log = agent.wait_log(|l| l.contains("did not send its whole message"));
    for why in [
        "not the OCI seccomp agent's JSON",
        "fd(s) in `fds` but 0 came",
        "did not send its whole message",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("rejected a connection") && l.contains(&me) && l.contains(why)),
            "no rejection `{why}` from pid {me} in the agent's log:\n{log}"
        );
    }
}

#[test]
fn twenty_runc_containers_without_cross_talk() {
    let test = "twenty_runc_containers_without_cross_talk";
    if !can_run(test, Runtime::Runc) {
        return;
    }
    let s = Setup::new(Runtime::Runc);
    let agent = Agent::oci(&s.scratch);
    let bundles: Vec<Bundle> = (0..20)
        .map(|i| {
            s.bundle(
                &format!("busybox mknod /tmp/null-{i} c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null-{i}"),
                &s.profile,
            )
        })
        .collect();
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = bundles.iter().map(|b| scope.spawn(|| s.run(b))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("runner thread"))
            .collect()
    });
    for (b, o) in bundles.iter().zip(&outputs) {
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("mknod=0") && out.contains("dev=1:3"),
            "{}: {}\nagent: {}",
            b.id,
            describe(o),
            agent.log_text()
        );
    }
    let records = agent.wait_records(|r| bundles.iter().all(|b| !emulated(r, &b.id).is_empty()));
    for (i, b) in bundles.iter().enumerate() {
        let mine = emulated(&records, &b.id);
        assert_eq!(mine.len(), 1, "{}: {mine:#?}", b.id);
        assert_eq!(
            mine[0]["decoded"]["path"],
            format!("/tmp/null-{i}"),
            "container {} logged another container's call: {:#}",
            b.id,
            mine[0]
        );
    }
    assert_eq!(
        records
            .iter()
            .filter(|r| r["decision"] == "emulated")
            .count(),
        20,
        "{records:#?}"
    );
}

#[test]
fn runc_exec_brings_another_fd_and_the_policy_comes_from_the_annotation() {
    exec_brings_another_fd(
        "runc_exec_brings_another_fd_and_the_policy_comes_from_the_annotation",
        Runtime::Runc,
    );
}

#[test]
fn crun_exec_brings_another_fd_and_the_policy_comes_from_the_annotation() {
    exec_brings_another_fd(
        "crun_exec_brings_another_fd_and_the_policy_comes_from_the_annotation",
        Runtime::Crun,
    );
}

/// `RUNTIME exec` in a container served by the agent: the exec'd process's filter comes as a
/// second connection, served under the same container id, with the policy its annotation names.
fn exec_brings_another_fd(test: &str, runtime: Runtime) {
    if !can_run(test, runtime) {
        return;
    }
    let s = Setup::new(runtime);
    let agent = Agent::oci_with(&s.scratch, &["--policy-from-annotation"]);
    // No listenerMetadata: the container's annotation names the policy.
    let mut profile = s.profile.clone();
    if let Some(obj) = profile.as_object_mut() {
        obj.remove("listenerMetadata");
    }
    // The container waits (in a loop of learned calls) until /tmp/stop appears: a device node
    // the agent emulates (a FIFO is refused by the profile learned under crun, which notifies
    // mknodat only for character devices and allows no other kind).
    let b = s.bundle(
        "busybox mknod /tmp/null c 1 3; echo mknod=$?; while [ ! -e /tmp/stop ]; do busybox sleep 0; done",
        &profile,
    );
    b.annotate("org.auditor.policy", POLICY).expect("annotate");
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || run_with_timeout(&mut command(&argv), Duration::from_secs(60)))
    };
    let records = agent.wait_records(|r| !emulated(r, &b.id).is_empty());
    assert_eq!(emulated(&records, &b.id).len(), 1, "{}", agent.log_text());
    // `exec` installs the filter again in the new process: a second connection, served
    // under the same container id.
    let o = run_with_timeout(
        &mut command(&b.exec_command(&[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox mknod /tmp/null-exec c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null-exec; busybox mknod /tmp/stop c 1 3",
        ])),
        Duration::from_secs(60),
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("mknod=0") && out.contains("dev=1:3"),
        "exec: {}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    let container = runner.join().expect("runner thread");
    assert!(
        String::from_utf8_lossy(&container.stdout).contains("mknod=0"),
        "{}",
        describe(&container)
    );
    let records = agent.wait_records(|r| emulated(r, &b.id).len() >= 2);
    let mine = emulated(&records, &b.id);
    let paths: Vec<&str> = mine
        .iter()
        .filter_map(|r| r["decoded"]["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/tmp/null") && paths.contains(&"/tmp/null-exec"),
        "{mine:#?}"
    );
    // Each record says which policy decided and what chose it.
    assert!(
        mine.iter()
            .all(|r| r["policy"] == POLICY && r["policy_from"] == "org.auditor.policy"),
        "{mine:#?}"
    );
    let log = agent.log_text();
    let served = log
        .lines()
        .filter(|l| {
            l.contains("serving a container")
                && l.contains(&b.id)
                && l.contains("org.auditor.policy")
        })
        .count();
    assert_eq!(served, 2, "two fds, both by the annotation: {log}");

    // Neither metadata nor annotation: the policy `default`, which this directory lacks. The
    // agent refuses the fd (and says why); the container's notified call then fails with
    // ENOSYS instead of hanging, and nothing else is affected.
    let b = s.bundle(MKNOD_SCRIPT, &profile);
    let o = s.run(&b);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Function not implemented"),
        "{}",
        describe(&o)
    );
    let log = agent.wait_log(|l| l.contains("no policy \"default\""));
    assert!(
        log.lines().any(|l| l.contains("rejected a connection")
            && l.contains(&b.id)
            && l.contains("no policy \"default\"")),
        "{log}"
    );
}

/// A pod author can set annotations (CRI-O and podman copy them onto the container): without
/// `--policy-from-annotation` the annotation picks nothing, the container gets `default`.
#[test]
fn the_workloads_annotation_picks_no_policy_unless_the_agent_allows_it() {
    let test = "the_workloads_annotation_picks_no_policy_unless_the_agent_allows_it";
    if !can_run(test, Runtime::Runc) {
        return;
    }
    let s = Setup::new(Runtime::Runc);
    let agent = Agent::oci(&s.scratch);
    let mut profile = s.profile.clone();
    if let Some(obj) = profile.as_object_mut() {
        obj.remove("listenerMetadata");
    }
    // The annotation names the permissive policy; the directory has no `default`.
    let b = s.bundle(MKNOD_SCRIPT, &profile);
    b.annotate("org.auditor.policy", POLICY).expect("annotate");
    let o = s.run(&b);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !out.contains("mknod=0"),
        "the annotation chose the policy:\n{}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Function not implemented"),
        "{}",
        describe(&o)
    );
    let log = agent.wait_log(|l| l.contains("no policy \"default\""));
    assert!(
        log.lines()
            .any(|l| l.contains("annotation") && l.contains("ignored") && l.contains(&b.id)),
        "the agent says it ignored the annotation: {log}"
    );
    assert!(emulated(&agent.records(), &b.id).is_empty());

    // With a `default` policy the container is served by it, and its records say why.
    std::fs::copy(
        s.scratch
            .dir()
            .join("policies")
            .join(format!("{POLICY}.toml")),
        s.scratch.dir().join("policies").join("default.toml"),
    )
    .expect("default policy");
    let b = s.bundle(MKNOD_SCRIPT, &profile);
    b.annotate("org.auditor.policy", "no-such-policy")
        .expect("annotate");
    let o = s.run(&b);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}",
        describe(&o)
    );
    let records = agent.wait_records(|r| !emulated(r, &b.id).is_empty());
    let mine = emulated(&records, &b.id);
    assert_eq!(mine.len(), 1, "{records:#?}");
    assert_eq!(mine[0]["policy"], "default", "{:#}", mine[0]);
    assert_eq!(
        mine[0]["policy_from"], "default (annotation ignored)",
        "{:#}",
        mine[0]
    );
}

#[test]
fn after_an_agent_restart_the_containers_it_served_get_enosys() {
    let test = "after_an_agent_restart_the_containers_it_served_get_enosys";
    if !can_run(test, Runtime::Runc) {
        return;
    }
    let s = Setup::new(Runtime::Runc);
    let agent = Agent::oci(&s.scratch);
    // One mknod while the agent runs, another after it restarted (signalled by /go, which the
    // test writes into the rootfs).
    let b = s.bundle(
        "busybox mknod /tmp/a c 1 3; echo first=$?; while [ ! -e /go ]; do busybox sleep 0; done; \
         busybox mknod /tmp/b c 1 3; echo second=$?",
        &s.profile,
    );
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || run_with_timeout(&mut command(&argv), Duration::from_secs(60)))
    };
    let records = agent.wait_records(|r| !emulated(r, &b.id).is_empty());
    assert_eq!(emulated(&records, &b.id).len(), 1, "{}", agent.log_text());
    // SIGTERM: the agent stops cleanly, closing the fds it held (and removing its socket).
    drop(agent);
    assert!(
        !s.scratch.dir().join("agent.sock").exists(),
        "the stopped agent left its socket"
    );
    let agent = Agent::oci(&s.scratch);
    std::fs::write(b.dir.join("rootfs/go"), "").expect("signal the container");
    let o = runner.join().expect("runner thread");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("first=0") && out.contains("second=1"),
        "{}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Function not implemented"),
        "{}",
        describe(&o)
    );
    // The new agent serves new containers.
    let b = s.bundle(MKNOD_SCRIPT, &s.profile);
    let o = s.run(&b);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
}

/// An interactive policy exported for runc (`generate --default-action notify --runtime runc
/// --format oci`): the container starts (runc's own calls after loading the filter are allowed
/// by its learned baseline, not prompted), what the learned rules allow runs without a prompt,
/// and a call the learning never saw (`sync`) waits as a prompt until a session client
/// answers it allow-once; the container then runs to the end.
#[test]
fn runc_under_an_exported_interactive_profile_asks_only_for_what_was_not_learned() {
    let test = "runc_under_an_exported_interactive_profile_asks_only_for_what_was_not_learned";
    if !can_run(test, Runtime::Runc) {
        return;
    }
    use std::io::BufRead as _;
    let setup = Setup::new(Runtime::Runc);
    let d = setup.scratch.dir();
    let obs = d.join("obs.json");
    for (format, out) in [
        ("native", d.join("policies/ask.toml")),
        ("oci", d.join("ask.json")),
    ] {
        let o = run_with_timeout(
            Command::new(auditor_bin())
                .arg("generate")
                .arg(&obs)
                .args([
                    "--default-action",
                    "notify",
                    "--runtime",
                    "runc",
                    "--format",
                    format,
                ])
                .arg("--listener")
                .arg(d.join("agent.sock"))
                .args(["--listener-metadata", "ask", "-o"])
                .arg(&out),
            Duration::from_secs(60),
        );
        assert!(
            o.status.success(),
            "generate --format {format}: {}",
            describe(&o)
        );
    }
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ask.json")).expect("profile"))
            .expect("JSON");
    let run_dir = d.join("run");
    let agent = Agent::start_managed_with(
        &setup.scratch,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
        &["--prompt-timeout", "20s"],
    );
    let session = integration::session_socket(&run_dir);
    // The client: answers every prompt allow-once (those of its snapshot too), keeps their names.
    let stream = std::os::unix::net::UnixStream::connect(&session).expect("session");
    let mut answers = stream.try_clone().expect("clone");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let client = std::thread::spawn(move || {
        let mut asked = Vec::new();
        let mut answer = |p: &serde_json::Value, asked: &mut Vec<String>| {
            asked.push(p["syscall"].as_str().unwrap_or("?").to_owned());
            let a = serde_json::json!({"type": "answer", "id": p["id"], "choice": "allow-once"});
            let _ = writeln!(answers, "{a}");
        };
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match v["type"].as_str() {
                Some("prompt") => answer(&v, &mut asked),
                Some("snapshot") => {
                    for p in v["prompts"].as_array().into_iter().flatten() {
                        answer(p, &mut asked);
                    }
                }
                Some("end") => break,
                _ => {}
            }
        }
        asked
    });
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo start; busybox sync; echo sync=$?; echo done",
        ],
    )
    .expect("bundle");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&profile).expect("seccomp");
    let o = run_with_timeout(&mut command(&b.run_command()), Duration::from_secs(60));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    drop(b);
    let records = agent.wait_records(|r| {
        r.iter()
            .any(|r| r["syscall"] == "sync" && r["decoded"]["prompt"] == "allow-once")
    });
    drop(agent);
    let asked = client.join().expect("client");
    assert!(
        o.status.success()
            && out.contains("start")
            && out.contains("sync=0")
            && out.contains("done"),
        "the container under the interactive profile: {}\nasked: {asked:?}",
        describe(&o)
    );
    assert!(
        asked.iter().any(|s| s == "sync"),
        "asked {asked:?}; records {:?}",
        records
            .iter()
            .filter(|r| r["decoded"]["prompt"].is_string())
            .collect::<Vec<_>>()
    );
    // runc's init between loading the filter and execve: allowed by the baseline, not asked.
    for own in ["read", "futex", "close"] {
        assert!(
            !records
                .iter()
                .any(|r| r["syscall"] == own && r["decoded"]["prompt"].is_string()),
            "{own} was prompted for: {asked:?}"
        );
    }
    assert!(
        !records.iter().any(|r| r["decoded"]["prompt"] == "timeout"),
        "a prompt timed out: {records:?}"
    );
}

/// The scheduling policy of each thread of process `pid`, with its name.
fn thread_policies(pid: u32) -> Vec<(String, i32)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            // SAFETY: sched_getscheduler only reads the named thread's state.
            let policy = unsafe { libc::sched_getscheduler(tid) };
            (policy >= 0).then(|| (comm.trim().to_owned(), policy))
        })
        .collect()
}

/// A container calling notified syscalls back to back is served from idle CPU time (its
/// broker thread runs SCHED_IDLE, said once as a warning naming it) while a quiet container
/// beside it keeps the agent's own policy. The containers are the fleet benchmark's: a process
/// that hands a getppid listener over as runc does.
#[test]
fn a_flooding_container_is_served_from_idle_time_and_a_quiet_one_is_not() {
    if !require_root("a_flooding_container_is_served_from_idle_time_and_a_quiet_one_is_not") {
        return;
    }
    let said = flood_beside_quiet("agent-flood", &[], |b, _| {
        b.len() == 2 && b.contains(&libc::SCHED_IDLE) && b.contains(&libc::SCHED_OTHER)
    });
    let warnings: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("notified calls per second: served from idle CPU time"))
        .collect();
    assert_eq!(warnings.len(), 1, "agent log:\n{said}");
    assert!(warnings[0].contains("flood-hostile"), "agent log:\n{said}");
}

/// `--flood-rate 0`: a flooding container's broker thread keeps the agent's policy.
#[test]
fn with_flood_rate_0_a_flooding_container_keeps_the_agents_priority() {
    if !require_root("with_flood_rate_0_a_flooding_container_keeps_the_agents_priority") {
        return;
    }
    let said = flood_beside_quiet("agent-noflood", &["--flood-rate", "0"], |b, flooding| {
        // Never idle; done once the flood has gone on for a second (ten windows of the rate,
        // ~250 000 calls) with both containers served.
        assert!(!b.contains(&libc::SCHED_IDLE), "{b:?}");
        b.len() == 2 && flooding >= Duration::from_secs(1)
    });
    assert!(
        !said.contains("served from idle CPU time"),
        "agent log:\n{said}"
    );
}

/// Start an agent with `extra` arguments, a container flooding it and a quiet one; wait until
/// `until` holds for the scheduling policies of its broker threads (and how long the flood
/// has gone on), then let both containers finish (every call answered) and stop the agent.
/// Returns the agent's log.
fn flood_beside_quiet(
    prefix: &str,
    extra: &[&str],
    mut until: impl FnMut(&[i32], Duration) -> bool,
) -> String {
    let s = Scratch::new(prefix);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/bench/fleet_workload.c");
    let workload = s.path("fleet_workload");
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&workload)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(built.success(), "gcc failed on {}", src.display());
    std::fs::create_dir_all(s.path("policies")).expect("policies");
    s.write(
        "policies/bench.toml",
        "version = 1\ndefault_action = \"allow\"\n",
    );
    // Not `integration::agent::Agent`: it always writes an audit log and debug logs, which a
    // million flooded calls would turn into hundreds of MiB; the flood needs neither.
    let socket = s.path("agent.sock");
    let log = s.path("agent.log");
    let mut agent = integration::Reaped(
        Command::new(auditor_bin())
            .arg("agent")
            .arg("--socket")
            .arg(&socket)
            .arg("--policy-dir")
            .arg(s.path("policies"))
            .args(extra)
            .env("AUDITOR_RUN_DIR", s.path("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start the agent"),
    );
    integration::wait_for("the agent's socket", Duration::from_secs(20), || {
        socket.exists()
    });
    let start = std::time::SystemTime::now() + Duration::from_millis(1_000);
    let start_ms = start
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    let container = |name: &str, rate: &str| {
        integration::Reaped(
            Command::new(&workload)
                .arg(&socket)
                .arg(name)
                .arg(&start_ms)
                .arg("4")
                .arg(rate)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a container"),
        )
    };
    let hostile = container("flood-hostile", "250000");
    let quiet = container("flood-quiet", "200");
    let pid = agent.0.id();
    integration::wait_for(
        "the broker threads' policies",
        Duration::from_secs(10),
        || {
            let b: Vec<i32> = thread_policies(pid)
                .into_iter()
                .filter(|(name, _)| name == "auditor-broker")
                .map(|(_, p)| p)
                .collect();
            let flooding = std::time::SystemTime::now()
                .duration_since(start)
                .unwrap_or_default();
            until(&b, flooding)
        },
    );
    for (name, mut c) in [("hostile", hostile), ("quiet", quiet)] {
        let status = c.0.wait().expect("container");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut c.0.stdout.take().expect("stdout"), &mut out)
            .expect("stdout");
        assert!(status.success(), "{name}: {status:?}\n{out}");
        assert!(out.contains("failures=0"), "{name}: {out}");
    }
    // SAFETY: kill with our child's pid and a signal number.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    integration::wait_for("the agent to stop", Duration::from_secs(20), || {
        matches!(agent.0.try_wait(), Ok(Some(_)))
    });
    std::fs::read_to_string(&log).expect("agent log")
}
