//! `auditor runtime`, the OCI runtime wrapper, called the way containerd-shim-runc-v2 calls a
//! runtime for Docker (`--root`, `--log FILE --log-format json` first, then `create --bundle
//! --pid-file ID`, `start`, `state`, `delete`), with real runc: it learns the container through
//! `auditor daemon`, gives a profile without a listener to `auditor agent`, passes every other
//! call through untouched, and says why it failed where the shim looks. Needs root, runc and
//! busybox-static; under CI=true it fails rather than skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::agent::Agent;
use integration::learner::{self, workload_names, Daemon};
use integration::runtimes::{Bundle, Runtime};
use integration::{
    auditor_bin, describe, run_with_timeout, wait_for, Reaped, Scratch, MKNOD_NOTIFY,
};

/// The global flags the shim puts first.
fn shim_globals(log: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        "/run/runc".into(),
        "--log".into(),
        log.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ]
}

/// `auditor runtime WRAPPER_OPTIONS GLOBALS RUNTIME_ARGS`.
fn wrapper(options: &[&str], log: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(auditor_bin());
    c.arg("runtime")
        .args(options)
        .args(shim_globals(log))
        .args(args)
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    run_with_timeout(&mut c, Duration::from_secs(60))
}

/// The JSON lines of a runtime log.
fn log_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} in {}: {e}", log.display()))
        })
        .collect()
}

/// Wait until `state` (through the wrapper) says the container stopped; the output of each
/// `state` must be runc's JSON and nothing else.
fn wait_stopped(options: &[&str], log: &Path, id: &str) {
    let t0 = Instant::now();
    loop {
        let o = run(wrapper(options, log, &["state", id]));
        assert!(o.status.success(), "state: {}", describe(&o));
        let state: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "state printed more than runc's JSON ({e}): {}",
                describe(&o)
            )
        });
        assert_eq!(state["id"], id);
        if state["status"] == "stopped" {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "still {}",
            state["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_wrapper_learns_a_container_created_the_way_the_shim_creates_it() {
    let test = "the_wrapper_learns_a_container_created_the_way_the_shim_creates_it";
    if !learner::ready(test) {
        return;
    }
    let mut daemon = Daemon::start();
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox uname -a >/dev/null; echo wrapped-done",
        ],
    )
    .expect("bundle");
    let before = std::fs::read(b.dir.join("config.json")).expect("config");
    let log = b.dir.join("log.json");
    let socket = daemon.socket.display().to_string();
    let options = ["--delegate", "runc", "--learn", socket.as_str()];
    let pid_file = b.dir.join("init.pid");
    let bundle = b.dir.display().to_string();
    let out_file = b.dir.join("create.out");
    let mut create = wrapper(
        &options,
        &log,
        &[
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            &pid_file.display().to_string(),
            &b.id,
        ],
    );
    // The container's stdout is create's (no terminal), as under the shim: a file here.
    create
        .stdout(std::fs::File::create(&out_file).expect("out"))
        .stderr(std::fs::File::create(b.dir.join("create.err")).expect("err"));
    let mut child = Reaped(create.spawn().expect("auditor runtime create"));
    let mut status = None;
    wait_for("create", Duration::from_secs(60), || {
        status = child.0.try_wait().expect("wait");
        status.is_some()
    });
    assert!(
        status.is_some_and(|s| s.success()),
        "create: {status:?} {}\nlog: {:?}",
        std::fs::read_to_string(b.dir.join("create.err")).unwrap_or_default(),
        log_lines(&log)
    );
    assert!(
        pid_file.exists(),
        "runc wrote no pid file: the flags did not reach it"
    );

    // The hook is in the bundle, once, and the daemon already tracks the waiting init.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    let hooks = config["hooks"]["createRuntime"].as_array().expect("hooks");
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["args"][1], "hook");
    assert_eq!(hooks[0]["args"][3], socket.as_str());
    assert_eq!(hooks[0]["args"][5], "runc");
    assert_ne!(before, std::fs::read(b.dir.join("config.json")).unwrap());
    let lines = log_lines(&log);
    assert!(
        lines.iter().any(|l| l["msg"]
            .as_str()
            .is_some_and(|m| m.contains("added the createRuntime hook") && m.contains(&b.id))),
        "the wrapper says what it did in the runtime's log: {lines:#?}"
    );

    let o = run(wrapper(&options, &log, &["start", &b.id]));
    assert!(o.status.success(), "start: {}", describe(&o));
    wait_stopped(&options, &log, &b.id);
    let o = run(wrapper(&options, &log, &["delete", &b.id]));
    assert!(o.status.success(), "delete: {}", describe(&o));
    let printed = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert_eq!(
        printed, "wrapped-done\n",
        "the container's stdout holds only its own output"
    );

    let obs = daemon.observation(&b.id);
    let names = workload_names(&obs);
    for call in ["uname", "execve", "write"] {
        assert!(names.contains(call), "{call} not learned: {names:?}");
    }
    assert!(
        matches!(&obs.target, auditor::observe::model::Target::Container { id, runtime, .. } if *id == b.id && runtime.as_deref() == Some("runc")),
        "{:?}",
        obs.target
    );
    assert!(daemon.stop().success());
}

#[test]
fn the_wrapper_gives_a_profile_without_a_listener_to_the_agent() {
    let test = "the_wrapper_gives_a_profile_without_a_listener_to_the_agent";
    if !learner::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-wrap");
    s.write("policies/web.toml", MKNOD_NOTIFY);
    let agent = Agent::oci(&s);
    // A profile as Docker passes it on: notify rules, no listenerPath (Docker drops it).
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let script =
        "busybox mknod /tmp/null c 1 3; echo mknod=$?; busybox stat -c dev=%t:%T /tmp/null";
    let b = Bundle::busybox(Runtime::Runc, &["/bin/busybox", "sh", "-c", script]).expect("bundle");
    b.user_namespace().expect("userns");
    b.set_seccomp(&profile).expect("seccomp");
    let log = b.dir.join("log.json");
    let sock = agent.socket.display().to_string();
    let options = [
        "--delegate",
        "runc",
        "--agent",
        sock.as_str(),
        "--policy",
        "web",
    ];
    let bundle = b.dir.display().to_string();
    let o = run(wrapper(
        &options,
        &log,
        &["run", "--bundle", &bundle, &b.id],
    ));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mknod=0") && out.contains("dev=1:3"),
        "{}\nagent: {}\nlog: {:?}",
        describe(&o),
        agent.log_text(),
        log_lines(&log)
    );
    let records = agent.wait_records(|r| r.iter().any(|r| r["container"] == b.id.as_str()));
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r["container"] == b.id.as_str())
        .collect();
    assert!(
        mine.iter().any(|r| r["decision"] == "emulated"
            && r["policy"] == "web"
            && r["policy_from"] == "listenerMetadata"),
        "{mine:#?}"
    );

    // A profile without a notify rule gets no listener: runc would hand the agent an fd it never
    // hears from. The wrapper says so; the container runs.
    let b2 = Bundle::busybox(Runtime::Runc, &["/bin/busybox", "true"]).expect("bundle");
    b2.set_seccomp(&serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}))
        .unwrap();
    let log2 = b2.dir.join("log.json");
    let bundle2 = b2.dir.display().to_string();
    let o = run(wrapper(
        &options,
        &log2,
        &["run", "--bundle", &bundle2, &b2.id],
    ));
    assert!(o.status.success(), "{}", describe(&o));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b2.dir.join("config.json")).unwrap()).unwrap();
    assert!(config["linux"]["seccomp"].get("listenerPath").is_none());
    assert!(
        log_lines(&log2).iter().any(|l| l["msg"]
            .as_str()
            .is_some_and(|m| m.contains("no SCMP_ACT_NOTIFY rule"))),
        "{:?}",
        log_lines(&log2)
    );
}

#[test]
fn failures_reach_the_shim_and_the_bundle_is_left_alone() {
    let test = "failures_reach_the_shim_and_the_bundle_is_left_alone";
    if !learner::ready(test) {
        return;
    }
    let s = Scratch::new("auditor-wrapfail");
    let log = s.path("log.json");
    // A bundle whose config.json is not JSON: create fails, runc never runs, and the reason is
    // the last error of the log (what containerd reports to `docker run`).
    let bundle = s.path("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    let o = run(wrapper(
        &["--delegate", "runc", "--learn", "/run/none.sock"],
        &log,
        &[
            "create",
            "--bundle",
            &bundle.display().to_string(),
            "broken-1",
        ],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(o.stdout.is_empty(), "{}", describe(&o));
    let lines = log_lines(&log);
    let last = lines.last().expect("a log line");
    assert_eq!(last["level"], "error");
    let msg = last["msg"].as_str().unwrap();
    assert!(
        msg.contains("broken-1") && msg.contains("config.json: not valid JSON"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(bundle.join("config.json")).unwrap(),
        b"{\"ociVersion\": "
    );

    // A delegate that is not there, and one that is auditor itself.
    for (delegate, says) in [
        ("/nonexistent/runc", "not found"),
        (auditor_bin().to_str().unwrap(), "is auditor itself"),
    ] {
        let o = run(wrapper(&["--delegate", delegate], &log, &["state", "x"]));
        assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
        let last = log_lines(&log).pop().expect("a log line");
        assert!(last["msg"].as_str().unwrap().contains(says), "{last}");
    }

    // The delegate's own failure is the delegate's: its exit status and its log line.
    let o = run(wrapper(
        &["--delegate", "runc"],
        &log,
        &["state", "auditor-no-such-container"],
    ));
    assert!(!o.status.success());
    let last = log_lines(&log).pop().expect("a log line");
    assert!(
        !last["msg"].as_str().unwrap().starts_with("auditor"),
        "{last}"
    );
}

/// `auditor-runc` (a link named so, as containerd's runc `BinaryName`): the options come from
/// the configuration's `[runtime]` section (here named by AUDITOR_CONFIG).
#[test]
fn auditor_runc_takes_its_options_from_the_configuration() {
    let test = "auditor_runc_takes_its_options_from_the_configuration";
    if !learner::ready(test) {
        return;
    }
    let mut daemon = Daemon::start();
    let s = Scratch::new("auditor-runcname");
    let link: PathBuf = s.path("auditor-runc");
    std::os::unix::fs::symlink(auditor_bin(), &link).unwrap();
    let config = s.write(
        "config.toml",
        &format!(
            "[runtime]\ndelegate = \"runc\"\nlearn = \"{}\"\n",
            daemon.socket.display()
        ),
    );
    let b = Bundle::busybox(Runtime::Runc, &["/bin/busybox", "uname"]).expect("bundle");
    let log = s.path("log.json");
    let o = run({
        let mut c = Command::new(&link);
        c.args(shim_globals(&log))
            .args(["run", "--bundle", &b.dir.display().to_string(), &b.id])
            .env("AUDITOR_CONFIG", &config)
            .stdin(Stdio::null());
        c
    });
    assert!(
        o.status.success(),
        "{}\nlog: {:?}",
        describe(&o),
        log_lines(&log)
    );
    let config_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    // The hook reads the same configuration file.
    assert_eq!(
        config_json["hooks"]["createRuntime"][0]["args"][2],
        config.display().to_string()
    );
    let names = workload_names(&daemon.observation(&b.id));
    assert!(names.contains("uname"), "{names:?}");

    // A broken configuration fails the call, saying where.
    let bad = s.write("bad.toml", "[runtime]\ndelegate = 3\n");
    let o = run({
        let mut c = Command::new(&link);
        c.args(shim_globals(&log))
            .args(["state", &b.id])
            .env("AUDITOR_CONFIG", &bad)
            .stdin(Stdio::null());
        c
    });
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let last = log_lines(&log).pop().unwrap();
    assert!(
        last["msg"].as_str().unwrap().contains("bad.toml:2:"),
        "{last}"
    );
    assert!(daemon.stop().success());
}
