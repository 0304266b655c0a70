//! `auditor agent` restarted without a failed call: a successor started on the same socket
//! takes every listener (and the socket itself) over from the agent serving it, mid-loop of
//! emulated calls; the old agent exits 0. Needs root, runc and busybox-static; under CI=true it
//! fails rather than skips.

use std::process::Command;
use std::time::Duration;

use integration::agent::Agent;
use integration::runtimes::{self, Bundle, Runtime};
use integration::{describe, require_root, require_tool, run_with_timeout, Scratch};

/// The loop's length: calls emulated across the two handovers.
const CALLS: usize = 1500;

fn can_run(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "runc").is_some()
        && require_tool(test, "busybox").is_some()
}

/// A user-namespaced busybox bundle running `script`, whose mknod calls go to the agent at
/// the scratch dir's socket under policy `web`.
fn bundle(s: &Scratch, script: &str) -> Bundle {
    let b = Bundle::busybox(Runtime::Runc, &["/bin/busybox", "sh", "-c", script]).expect("bundle");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": s.path("agent.sock").display().to_string(),
        "listenerMetadata": "web",
        "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("seccomp");
    b
}

/// A log line without its terminal colours.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The emulated mknod records of container `id`.
fn emulated(records: &[serde_json::Value], id: &str) -> usize {
    records
        .iter()
        .filter(|r| r["container"] == id && r["decision"] == "emulated")
        .count()
}

#[test]
fn successors_take_over_mid_loop_and_no_call_fails() {
    let test = "successors_take_over_mid_loop_and_no_call_fails";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("auditor-handover");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let mut first = Agent::oci(&s);
    // Every mknod counted; a failed one (ENOSYS from a closed listener, EPERM) is counted
    // apart and printed.
    let script = format!(
        "i=0; f=0; while [ $i -lt {CALLS} ]; do busybox mknod /tmp/n c 1 3 || f=$((f+1)); \
         busybox rm -f /tmp/n; i=$((i+1)); done; echo calls=$i failures=$f"
    );
    let b = bundle(&s, &script);
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(240))
        })
    };
    // First handover, a fifth of the way in.
    let r = first.wait_records(|r| emulated(r, &b.id) >= CALLS / 5);
    assert!(
        emulated(&r, &b.id) >= CALLS / 5,
        "the loop is not served: {}",
        first.log_text()
    );
    let mut second = Agent::successor(&s, "agent-2.log");
    let st = first.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|st| st.success()),
        "the first agent did not exit 0 after handing over ({st:?}): {}",
        first.log_text()
    );
    assert!(
        first
            .log_text()
            .contains("handed every listener and the sockets over"),
        "{}",
        first.log_text()
    );
    assert!(
        s.path("agent.sock").exists() && s.path("agent.sock.handover").exists(),
        "the old agent removed the sockets it handed over"
    );
    // Second handover, past half-way.
    let r = second.wait_records(|r| emulated(r, &b.id) >= CALLS / 2);
    assert!(
        emulated(&r, &b.id) >= CALLS / 2,
        "the successor does not serve the loop: {}",
        second.log_text()
    );
    let third = Agent::successor(&s, "agent-3.log");
    let st = second.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|st| st.success()),
        "the second agent did not exit 0 after handing over ({st:?}): {}",
        second.log_text()
    );
    let o = runner.join().expect("runner");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("calls={CALLS} failures=0")),
        "{}\nagent 3: {}",
        describe(&o),
        third.log_text()
    );
    // Every decision in the log exactly once, whichever agent made it.
    let r = third.wait_records(|r| emulated(r, &b.id) >= CALLS);
    assert_eq!(
        emulated(&r, &b.id),
        CALLS,
        "emulated records of {CALLS} calls (every line of the log read: {})",
        r.len()
    );
    // The counts went over with the listener: the last agent's summary is the container's.
    let log = third.wait_log(|l| l.contains("container done"));
    let done = log
        .lines()
        .find(|l| l.contains("container done") && l.contains(&b.id))
        .unwrap_or_else(|| panic!("no end of the container in the last agent's log:\n{log}"));
    assert!(
        done.contains(&format!("{CALLS} emulated")),
        "the counts did not go over with the listener: {done}"
    );
    // The last agent serves new containers on the socket it was handed.
    let b2 = bundle(&s, "busybox mknod /tmp/x c 1 3; echo mknod=$?");
    let mut c = Command::new(&b2.run_command()[0]);
    c.args(&b2.run_command()[1..]);
    let o = run_with_timeout(&mut c, Duration::from_secs(60));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\n{}",
        describe(&o),
        third.log_text()
    );
}

/// A successor that cannot serve what the agent serves (the container's policy is gone from
/// its directory) is refused before anything moves: the agent serves on, no call fails, and
/// the successor exits non-zero saying why.
#[test]
fn a_successor_that_cannot_load_a_policy_leaves_the_agent_serving() {
    let test = "a_successor_that_cannot_load_a_policy_leaves_the_agent_serving";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("auditor-handover");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let mut agent = Agent::oci(&s);
    let b = bundle(
        &s,
        "f=0; for i in 1 2 3 4 5 6 7 8 9 10; do busybox mknod /tmp/n c 1 3 || f=$((f+1)); \
         busybox rm -f /tmp/n; busybox sleep 0.3; done; echo failures=$f",
    );
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(120))
        })
    };
    agent.wait_records(|r| emulated(r, &b.id) >= 1);
    std::fs::remove_file(s.path("policies/web.toml")).expect("remove the policy");
    let o = run_with_timeout(
        Command::new(integration::auditor_bin())
            .arg("agent")
            .arg("--socket")
            .arg(s.path("agent.sock"))
            .arg("--policy-dir")
            .arg(s.path("policies")),
        Duration::from_secs(60),
    );
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("cannot serve every container"),
        "{}",
        describe(&o)
    );
    assert!(agent.alive(), "{}", agent.log_text());
    let o = runner.join().expect("runner");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("failures=0"),
        "{}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    assert!(
        agent.log_text().contains("handover failed; serving on"),
        "{}",
        agent.log_text()
    );
}

/// An agent killed (SIGKILL) without a successor: the container's notified calls fail with
/// ENOSYS at once (never hang), and a new agent starts on the dead one's socket files (both
/// stale, replaced) and serves new containers.
#[test]
fn a_killed_agent_fails_closed_and_a_new_one_replaces_its_sockets() {
    let test = "a_killed_agent_fails_closed_and_a_new_one_replaces_its_sockets";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("auditor-handover");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let mut agent = Agent::oci(&s);
    let b = bundle(
        &s,
        "busybox mknod /tmp/a c 1 3; echo first=$?; while [ ! -e /go ]; do busybox sleep 0; done; \
         busybox mknod /tmp/b c 1 3; echo second=$?",
    );
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(60))
        })
    };
    agent.wait_records(|r| emulated(r, &b.id) >= 1);
    agent.crash();
    assert!(
        s.path("agent.sock").exists() && s.path("agent.sock.handover").exists(),
        "a killed agent cannot remove its sockets"
    );
    std::fs::write(b.dir.join("rootfs/go"), "").expect("signal the container");
    let t0 = std::time::Instant::now();
    let o = runner.join().expect("runner");
    let out = String::from_utf8_lossy(&o.stdout);
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
    assert!(t0.elapsed() < Duration::from_secs(30), "the workload hung");
    let agent = Agent::oci(&s);
    let b2 = bundle(&s, "busybox mknod /tmp/x c 1 3; echo mknod=$?");
    let mut c = Command::new(&b2.run_command()[0]);
    c.args(&b2.run_command()[1..]);
    let o = run_with_timeout(&mut c, Duration::from_secs(60));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\n{}",
        describe(&o),
        agent.log_text()
    );
}

/// Under systemd with an fd store (played by a fake notify socket that keeps and returns
/// fds as systemd does): the agent stores its listener and its checkpoints; killed (SIGKILL)
/// mid-loop and started again with the stored fds, it answers ENOSYS to the call the dead
/// agent held (if it held one) and serves the rest of the loop. SIGUSR2 (the unit's
/// ExecReload) then starts a successor that takes over and becomes the main pid.
#[test]
fn under_systemd_a_crashed_agent_gets_its_listeners_back_and_sigusr2_hands_over() {
    let test = "under_systemd_a_crashed_agent_gets_its_listeners_back_and_sigusr2_hands_over";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("auditor-handover");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let systemd = integration::systemd::FakeSystemd::start(s.dir());
    let mut first = Agent::start_managed(&s, "agent-1.log", &[systemd.env()], Vec::new());
    assert!(
        systemd.wait_messages(Duration::from_secs(10), |m| m
            .iter()
            .any(|m| m.contains("READY=1"))),
        "no READY=1: {:?}",
        systemd.messages()
    );
    // Four loops at once, so that the agent most likely holds calls when it is killed.
    let calls = 300;
    let b = bundle(
        &s,
        &format!(
            "for j in 1 2 3 4; do (i=0; f=0; while [ $i -lt {calls} ]; do \
             busybox mknod /tmp/n$j c 1 3 || f=$((f+1)); busybox rm -f /tmp/n$j; i=$((i+1)); \
             done; echo loop$j calls=$i failures=$f) & done; wait"
        ),
    );
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(240))
        })
    };
    first.wait_records(|r| emulated(r, &b.id) >= calls);
    let stored = systemd.stored();
    for name in ["auditor-ids", "auditor-state", "auditor-l0"] {
        assert!(
            stored.iter().any(|n| n == name),
            "{name} not stored: {stored:?}\n{}",
            first.log_text()
        );
    }
    first.crash();
    // systemd restarts it with what it stored.
    let (fds, mut env) = systemd.passed();
    env.push(systemd.env());
    let second = Agent::start_managed(&s, "agent-2.log", &env, fds);
    let log = second.wait_log(|l| l.contains("recovered listeners"));
    let line = log
        .lines()
        .find(|l| l.contains("recovered listeners"))
        .map(without_colours)
        .unwrap_or_else(|| panic!("the restarted agent recovered nothing:\n{log}"));
    assert!(line.contains("listeners=1"), "{line}");
    let stale: usize = line
        .split("stale=")
        .nth(1)
        .and_then(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no stale count: {line}"));
    let o = runner.join().expect("runner");
    let out = String::from_utf8_lossy(&o.stdout);
    // The calls the dead agent held (answered ENOSYS by its successor) are the only ones
    // that failed; every loop ran to its end.
    let failures: usize = out
        .lines()
        .filter_map(|l| l.split("failures=").nth(1))
        .filter_map(|f| f.trim().parse::<usize>().ok())
        .sum();
    eprintln!("calls the dead agent held: {stale}");
    assert!(
        out.matches(&format!("calls={calls} ")).count() == 4 && failures == stale && stale <= 4,
        "{stale} stale\n{}\nrestarted agent: {}",
        describe(&o),
        second.log_text()
    );
    assert!(
        second
            .wait_records(|r| emulated(r, &b.id) >= 2 * calls)
            .iter()
            .filter(|r| r["container"] == b.id.as_str())
            .count()
            >= 2 * calls,
        "the restarted agent did not serve the rest of the loop"
    );
    // The container ended: its listener left the store.
    let t0 = std::time::Instant::now();
    while systemd.stored().iter().any(|n| n == "auditor-l0") {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the ended container's listener stayed in the store: {:?}",
            systemd.stored()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGUSR2: a successor takes over and becomes the main pid; the agent exits 0.
    let mut second = second;
    let b2 = bundle(
        &s,
        "while [ ! -e /go ]; do busybox sleep 0.05; done; busybox mknod /tmp/x c 1 3; echo mknod=$?",
    );
    let runner = {
        let argv = b2.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(120))
        })
    };
    second.wait_log(|l| l.contains(&b2.id));
    let old_pid = second.pid().expect("pid");
    second.signal(libc::SIGUSR2);
    let st = second.wait_exit(Duration::from_secs(30));
    assert!(
        st.is_some_and(|st| st.success()),
        "the agent did not exit 0 after SIGUSR2 ({st:?}): {}",
        second.log_text()
    );
    let mainpid = systemd
        .messages()
        .iter()
        .find_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MAINPID="))
                .and_then(|p| p.parse::<i32>().ok())
        })
        .unwrap_or_else(|| panic!("no MAINPID=: {:?}", systemd.messages()));
    assert_ne!(mainpid as u32, old_pid);
    // The successor is no child of this test: stopped here whatever happens next.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the successor this test caused.
            unsafe { libc::kill(self.0, libc::SIGTERM) };
        }
    }
    let _successor = Kill(mainpid);
    std::fs::write(b2.dir.join("rootfs/go"), "").expect("signal the container");
    let o = runner.join().expect("runner");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\n{}",
        describe(&o),
        second.log_text()
    );
}

/// SIGHUP reloads the policy directory: a container's changed policy decides its next
/// notified call (its mknod, emulated before, is refused with EPERM after), no call fails
/// meanwhile other than by the new policy's decision, and the agent says which container
/// changed policy; an unchanged or unloadable policy leaves things as they are.
#[test]
fn sighup_reloads_a_changed_policy_for_the_running_containers() {
    let test = "sighup_reloads_a_changed_policy_for_the_running_containers";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("auditor-reload");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    let agent = Agent::oci(&s);
    // Each mknod either succeeds (emulated), or fails with EPERM (the new policy): busybox
    // says "Operation not permitted" then; anything else is a failure of the reload.
    let b = bundle(
        &s,
        "ok=0; eperm=0; other=0; while [ ! -e /stop ]; do \
         if busybox mknod /tmp/n c 1 3 2>/tmp/err; then ok=$((ok+1)); \
         elif busybox grep -q 'not permitted' /tmp/err; then eperm=$((eperm+1)); \
         else other=$((other+1)); fi; busybox rm -f /tmp/n; busybox sleep 0.05; done; \
         echo ok=$ok eperm=$eperm other=$other",
    );
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false))
        .expect("writable rootfs");
    let runner = {
        let argv = b.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(120))
        })
    };
    agent.wait_records(|r| emulated(r, &b.id) >= 5);
    // An unchanged directory: nothing to do.
    agent.signal(libc::SIGHUP);
    agent.wait_log(|l| l.contains("no container's policy changed"));
    // The policy now refuses mknod.
    s.write(
        "policies/web.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"mknod\", \"mknodat\"]\naction = \"errno\"\nerrno = \"EPERM\"\ncomment = \"no device nodes any more\"\n",
    );
    agent.signal(libc::SIGHUP);
    agent.wait_log(|l| l.contains("served under its changed policy"));
    let records = agent.wait_records(|r| {
        r.iter()
            .filter(|r| r["container"] == b.id.as_str() && r["decision"] == "denied")
            .count()
            >= 5
    });
    std::fs::write(b.rootfs().join("stop"), "").expect("stop");
    let o = runner.join().expect("runner");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("other=0"),
        "{}\nagent: {}",
        describe(&o),
        agent.log_text()
    );
    assert!(
        !out.contains("ok=0 ") && !out.contains("eperm=0 "),
        "both policies decided calls: {out}"
    );
    // Every record after the first denial is a denial: the old policy is gone.
    let mine: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["container"] == b.id.as_str())
        .collect();
    let first_denied = mine
        .iter()
        .position(|r| r["decision"] == "denied")
        .expect("a denial");
    assert!(
        mine[first_denied..]
            .iter()
            .all(|r| r["decision"] == "denied"),
        "{mine:?}"
    );
    let log = agent.log_text();
    assert!(log.contains("1 container(s) changed policy"), "{log}");
}

/// A record or prompt of `mkdir`/`mkdirat` (busybox uses either).
fn is_mkdir(v: &serde_json::Value) -> bool {
    v["syscall"] == "mkdir" || v["syscall"] == "mkdirat"
}

/// The prompts of an interactive policy across a handover: a call held for a person when a
/// successor takes over is answered (refused EPERM, its prompt closed as stopped), never left
/// hanging; the container goes on, and its next call is asked on the successor's session and
/// answered there.
#[test]
fn a_call_held_for_a_prompt_is_refused_at_a_handover_and_the_successor_asks_again() {
    use std::io::{BufRead as _, Write as _};
    use std::process::Stdio;
    let test = "a_call_held_for_a_prompt_is_refused_at_a_handover_and_the_successor_asks_again";
    if !can_run(test) {
        return;
    }
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("handover-prompt");
    s.write(
        "policies/ask.toml",
        "# ask: a person decides every call the filter sends\nversion = 1\ndefault_action = \"notify\"\n",
    );
    let run_dir = s.dir().join("run");
    let first = Agent::start_managed_with(
        &s,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
        &["--prompt-timeout", "120s"],
    );
    let first_pid = first.pid().expect("agent pid");
    let session = run_dir.join(format!("agent-{first_pid}.sock"));
    let t0 = std::time::Instant::now();
    while !session.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no session socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox mkdir /tmp/a; echo first=$?; busybox mkdir /tmp/b; echo second=$?; echo done",
        ],
    )
    .expect("bundle");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": s.path("agent.sock").display().to_string(),
        "listenerMetadata": "ask",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("seccomp");
    let argv = b.run_command();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runc run");
    // Wait, unanswered, until the first agent shows the first sync as a prompt.
    let watch = |path: &std::path::Path| {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("session");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
    };
    let first_prompt = |stream: &std::os::unix::net::UnixStream| -> serde_json::Value {
        for line in std::io::BufReader::new(stream.try_clone().expect("clone")).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line.expect("session line"))
            else {
                continue;
            };
            match v["type"].as_str() {
                Some("prompt") if is_mkdir(&v) => return v,
                Some("snapshot") => {
                    if let Some(p) = v["prompts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|p| is_mkdir(p))
                    {
                        return p.clone();
                    }
                }
                _ => {}
            }
        }
        panic!("no mkdir prompt on {stream:?}");
    };
    let a = watch(&session);
    first_prompt(&a);
    // The successor takes over while the call is held.
    let second = Agent::successor(&s, "agent-2.log");
    let second_session = std::path::Path::new("/run/auditor")
        .join(format!("agent-{}.sock", second.pid().expect("pid")));
    let t0 = std::time::Instant::now();
    while !second_session.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no successor session: {}",
            second.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bs = watch(&second_session);
    let p = first_prompt(&bs);
    let mut w = bs.try_clone().expect("clone");
    writeln!(
        w,
        "{}",
        serde_json::json!({"type": "answer", "id": p["id"], "choice": "allow-once"})
    )
    .expect("answer");
    let o = child.wait_with_output().expect("runc");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("first=1") && out.contains("second=0") && out.contains("done"),
        "the held call is refused (EPERM) at the handover, the next one asked again: {}\nfirst agent: {}\nsecond agent: {}",
        describe(&o),
        first.log_text(),
        second.log_text()
    );
    let records = second.wait_records(|r| r.iter().filter(|r| is_mkdir(r)).count() >= 2);
    let mkdirs: Vec<&serde_json::Value> = records.iter().filter(|r| is_mkdir(r)).collect();
    assert_eq!(mkdirs.len(), 2, "{records:?}");
    assert_eq!(mkdirs[0]["decision"], "denied", "{mkdirs:?}");
    assert_eq!(mkdirs[1]["decision"], "allowed", "{mkdirs:?}");
    assert_eq!(mkdirs[1]["decoded"]["prompt"], "allow-once", "{mkdirs:?}");
    drop(b);
    drop(second);
}
