//! `auditor tui` in a real terminal (tmux): a real `auditor enforce` or `auditor learn` session
//! publishes, the UI attaches, and the test reads decisions and syscalls off the screen.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration::{auditor_bin, require_root, require_tool, Scratch};

use integration::tmux::Tmux;

/// A background auditor session; interrupted (then killed) on drop.
struct Session(Child);

impl Session {
    fn start(run_dir: &Path, args: &[&str]) -> Session {
        let child = Command::new(auditor_bin())
            .args(args)
            .env("AUDITOR_RUN_DIR", run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start auditor");
        Session(child)
    }

    fn name(&self, kind: &str) -> String {
        format!("{kind}-{}", self.0.id())
    }

    fn wait_socket(&self, run_dir: &Path, kind: &str) {
        let sock = run_dir.join(format!("{}.sock", self.name(kind)));
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no session socket {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Interrupt and wait (bounded).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill has no memory preconditions; the pid is our own child's, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.stop();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn tui_command(run_dir: &Path, session: &str, extra: &str) -> String {
    format!(
        "env AUDITOR_RUN_DIR={} {} tui --session {session} {extra}",
        run_dir.display(),
        auditor_bin().display()
    )
}

#[test]
fn tui_shows_live_enforce_decisions_in_a_real_terminal() {
    if !require_root("tui_shows_live_enforce_decisions_in_a_real_terminal")
        || require_tool("tui", "tmux").is_none()
    {
        return;
    }
    let scratch = Scratch::new("tui-enforce");
    let dir = scratch.dir().to_path_buf();
    let run_dir = dir.join("run");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"getppid\"]\naction = \"errno\"\nerrno = \"EPERM\"\n",
    )
    .expect("policy");
    let log = dir.join("audit.jsonl");
    // dash calls getppid() when it starts (for $PPID): one refused call per inner shell.
    let mut session = Session::start(
        &run_dir,
        &[
            "enforce",
            "--policy",
            &policy.display().to_string(),
            "--audit-log",
            &log.display().to_string(),
            "--",
            "sh",
            "-c",
            "while :; do sh -c 'echo $PPID' >/dev/null; sleep 0.2; done",
        ],
    );
    session.wait_socket(&run_dir, "enforce");
    let name = session.name("enforce");

    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    let screen = tmux.wait_for("live decisions", Duration::from_secs(20), |s| {
        s.contains(&name) && s.contains("getppid") && s.contains("denied")
    });
    assert!(screen.contains("● live"), "{screen}");
    assert!(
        screen.contains("/usr/bin/sh") || screen.contains("/bin/dash"),
        "executable column:\n{screen}"
    );

    // Detail pane of the selected (newest) decision: the rule that matched.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the detail pane", Duration::from_secs(15), |s| {
        s.contains("Detail") && s.contains("rule #1")
    });
    tmux.keys(&["Escape"]);
    // Summary: counts per syscall and decision.
    tmux.keys(&["Tab"]);
    tmux.wait_for("the summary", Duration::from_secs(15), |s| {
        s.contains("By syscall") && s.contains("By decision")
    });
    // Help, then any key closes it.
    tmux.keys(&["?"]);
    tmux.wait_for("the help", Duration::from_secs(15), |s| {
        s.contains("any key closes this help")
    });
    tmux.keys(&["x"]);
    tmux.wait_for("the help to close", Duration::from_secs(15), |s| {
        !s.contains("any key closes this help")
    });
    // q quits and the terminal is restored (the alternate screen is gone).
    tmux.keys(&["q"]);
    let t = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "q did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = tmux.screen();
    assert!(
        !after.contains("By syscall"),
        "the UI was left on screen:\n{after}"
    );

    // The session goes on without its viewer, and ends cleanly.
    assert!(session.stop().is_some(), "enforce did not stop on SIGINT");
    let t = Instant::now();
    while run_dir.join(format!("{name}.sock")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the socket outlived its session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tui_shows_learning_and_writes_the_candidate_policy() {
    if !require_root("tui_shows_learning_and_writes_the_candidate_policy")
        || require_tool("tui", "tmux").is_none()
    {
        return;
    }
    let scratch = Scratch::new("tui-learn");
    let dir = scratch.dir().to_path_buf();
    let run_dir = dir.join("run");
    let obs = dir.join("obs.json");
    let out = dir.join("candidate.toml");
    let mut session = Session::start(
        &run_dir,
        &[
            "learn",
            "--no-progress",
            "-o",
            &obs.display().to_string(),
            "--",
            "sh",
            "-c",
            "while :; do ls / >/dev/null; sleep 0.2; done",
        ],
    );
    session.wait_socket(&run_dir, "learn");
    let name = session.name("learn");
    let tmux = Tmux::start(&tui_command(
        &run_dir,
        &name,
        &format!("--policy-out {}", out.display()),
    ));
    // A learn session opens on the Learning view; ls makes getdents64 calls.
    let screen = tmux.wait_for("learned syscalls", Duration::from_secs(20), |s| {
        s.contains("Syscalls (") && s.contains("getdents64") && s.contains("Candidate policy")
    });
    assert!(screen.contains("execve"), "{screen}");
    // The progress line ("11.0s  25560 calls  39 syscalls  lost 0") counts distinct syscalls
    // while a client watches (learn counts them only then: one map lookup per possible
    // syscall).
    let distinct = |s: &str| {
        s.split(" syscalls  lost ")
            .next()
            .filter(|head| head.len() < s.len())
            .and_then(|head| head.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    tmux.wait_for("a distinct syscall count", Duration::from_secs(10), |s| {
        distinct(s).is_some_and(|n| n > 0)
    });
    tmux.keys(&["w"]);
    tmux.wait_for("the write confirmation", Duration::from_secs(15), |s| {
        s.contains("candidate policy written to")
    });
    let text = std::fs::read_to_string(&out).expect("the candidate policy file");
    assert!(text.starts_with("# auditor seccomp policy"), "{text}");
    assert!(text.contains("getdents64"), "{text}");
    // It is a policy auditor accepts.
    let check = Command::new(auditor_bin())
        .arg("check")
        .arg(&out)
        .output()
        .expect("auditor check");
    assert!(
        check.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The end of the session is shown, the UI stays until q.
    assert!(session.stop().is_some(), "learn did not stop on SIGINT");
    tmux.wait_for("the end of the session", Duration::from_secs(10), |s| {
        s.contains("ended: learning ended")
    });
    tmux.keys(&["q"]);
    assert!(obs.exists(), "learn still writes its observation");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pid of the only session of `kind` in `run_dir`, from its socket's name.
fn session_pid(run_dir: &Path, kind: &str, within: Duration) -> u32 {
    let t = Instant::now();
    loop {
        let found = std::fs::read_dir(run_dir).ok().and_then(|rd| {
            rd.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(&format!("{kind}-"))?
                    .strip_suffix(".sock")?
                    .parse()
                    .ok()
            })
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            t.elapsed() < within,
            "no {kind} session socket in {}",
            run_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn learn_tui_shows_syscalls_and_sends_the_workload_output_to_its_log() {
    if !require_root("learn_tui_shows_syscalls_and_sends_the_workload_output_to_its_log")
        || require_tool("tui", "tmux").is_none()
    {
        return;
    }
    let scratch = Scratch::new("tui-learn-inprocess");
    let dir = scratch.dir().to_path_buf();
    let run_dir = dir.join("run");
    let obs = dir.join("obs.json");
    let wlog = dir.join("workload.log");
    let tmux = Tmux::start(&format!(
        "cd {dir} && env AUDITOR_RUN_DIR={run} {bin} learn --tui --workload-log {wlog} -o {obs} \
         -- sh -c 'while :; do echo mark$((1+1))-out; echo mark$((1+1))-err >&2; ls / >/dev/null; sleep 0.2; done'",
        dir = dir.display(),
        run = run_dir.display(),
        bin = auditor_bin().display(),
        wlog = wlog.display(),
        obs = obs.display(),
    ));
    // The markers the workload prints are not in its command line (shown in the title bar).
    // The in-process UI opens on the Learning view and names the workload's log.
    let screen = tmux.wait_for("learned syscalls", Duration::from_secs(20), |s| {
        s.contains("Syscalls (") && s.contains("getdents64") && s.contains("workload.log")
    });
    assert!(screen.contains("● live"), "{screen}");
    std::thread::sleep(Duration::from_millis(500));
    let screen = tmux.screen();
    assert!(
        !screen.contains("mark2-out") && !screen.contains("mark2-err"),
        "the workload wrote over the UI:\n{screen}"
    );
    let text = std::fs::read_to_string(&wlog).expect("the workload log");
    assert!(
        text.contains("mark2-out") && text.contains("mark2-err"),
        "workload log:\n{text}"
    );

    // q closes the UI only: learning goes on.
    let pid = session_pid(&run_dir, "learn", Duration::from_secs(15));
    tmux.keys(&["q"]);
    tmux.wait_for("the UI to close", Duration::from_secs(15), |s| {
        s.contains("UI closed; learn goes on") && !s.contains("Syscalls (")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!tmux.pane_dead(), "q ended learning:\n{}", tmux.screen());
    assert!(run_dir.join(format!("learn-{pid}.sock")).exists());
    let before = std::fs::metadata(&wlog).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(600));
    let after = std::fs::metadata(&wlog).map(|m| m.len()).unwrap_or(0);
    assert!(after > before, "the workload stopped when the UI closed");

    // Interrupted as without --tui: the observation is written, the summary is on screen.
    // SAFETY: kill has no memory preconditions; the pid is the session's, still running.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let t = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "learn did not end:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(obs.exists(), "no observation written:\n{}", tmux.screen());
    let screen = tmux.screen();
    assert!(screen.contains("observation written to"), "{screen}");
    assert!(!screen.contains("mark2-out"), "{screen}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn enforce_tui_shows_decisions_and_sends_the_workload_output_to_its_log() {
    if !require_root("enforce_tui_shows_decisions_and_sends_the_workload_output_to_its_log")
        || require_tool("tui", "tmux").is_none()
    {
        return;
    }
    let scratch = Scratch::new("tui-enforce-inprocess");
    let dir = scratch.dir().to_path_buf();
    let run_dir = dir.join("run");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"getppid\"]\naction = \"errno\"\nerrno = \"EPERM\"\n",
    )
    .expect("policy");
    let log = dir.join("audit.jsonl");
    let wlog = dir.join("workload.log");
    // dash calls getppid() when it starts (for $PPID): one refused call per inner shell.
    let tmux = Tmux::start(&format!(
        "cd {dir} && env AUDITOR_RUN_DIR={run} {bin} enforce --tui --workload-log {wlog} \
         --policy {policy} --audit-log {log} \
         -- sh -c 'while :; do sh -c \"echo mark\\$((1+1))\"; sleep 0.2; done'",
        dir = dir.display(),
        run = run_dir.display(),
        bin = auditor_bin().display(),
        wlog = wlog.display(),
        policy = policy.display(),
        log = log.display(),
    ));
    let screen = tmux.wait_for("live decisions", Duration::from_secs(20), |s| {
        s.contains("getppid") && s.contains("denied") && s.contains("workload.log")
    });
    assert!(screen.contains("● live"), "{screen}");
    assert!(
        !screen.contains("mark2"),
        "the workload wrote over the UI:\n{screen}"
    );
    // The detail pane names the rule that matched.
    tmux.keys(&["Enter"]);
    tmux.wait_for("the detail pane", Duration::from_secs(15), |s| {
        s.contains("Detail") && s.contains("rule #1")
    });
    let text = std::fs::read_to_string(&wlog).expect("the workload log");
    assert!(text.contains("mark2"), "workload log:\n{text}");

    // q closes the UI only; the session goes on until interrupted.
    let pid = session_pid(&run_dir, "enforce", Duration::from_secs(15));
    tmux.keys(&["q"]);
    tmux.wait_for("the UI to close", Duration::from_secs(15), |s| {
        s.contains("UI closed; enforce goes on") && !s.contains("Decisions (")
    });
    assert!(!tmux.pane_dead(), "q ended enforcing:\n{}", tmux.screen());
    // SAFETY: kill has no memory preconditions; the pid is the session's, still running.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let t = Instant::now();
    while !tmux.pane_dead() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "enforce did not end:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = std::fs::read_to_string(&log).expect("the audit log");
    assert!(
        records
            .lines()
            .any(|l| l.contains("\"getppid\"") && l.contains("\"denied\"")),
        "audit log:\n{records}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `auditor agent` publishes its session: `auditor tui --list` shows it, and the UI attached
/// to it shows three runc containers under three different policies in the Fleet, each with
/// its own counts (two emulate mknod, one refuses it), drills into one, and names its policy
/// in the detail pane.
#[test]
fn tui_attaches_to_the_agent_and_names_each_containers_calls() {
    let test = "tui_attaches_to_the_agent_and_names_each_containers_calls";
    if !require_root(test)
        || require_tool(test, "tmux").is_none()
        || require_tool(test, "runc").is_none()
    {
        return;
    }
    use integration::runtimes::{self, Bundle, Runtime};
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("tui-agent");
    s.write("policies/web.toml", integration::MKNOD_NOTIFY);
    // db refuses mknod: the broker denies what its filter sends.
    s.write(
        "policies/db.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"mknod\", \"mknodat\"]\naction = \"errno\"\nerrno = \"EPERM\"\n",
    );
    s.write(
        "policies/cache.toml",
        &integration::MKNOD_NOTIFY.replace("[\"c 1:3\"]", "[\"c 1:3\", \"c 1:5\"]"),
    );
    let run_dir = s.dir().join("run");
    let agent = integration::agent::Agent::start_managed(
        &s,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
    );
    let name = format!(
        "agent-{}",
        session_pid(&run_dir, "agent", Duration::from_secs(20))
    );
    let o = Command::new(auditor_bin())
        .args(["tui", "--list"])
        .env("AUDITOR_RUN_DIR", &run_dir)
        .output()
        .expect("tui --list");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&name),
        "tui --list: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let stop = s.dir().join("stop");
    let policies = ["web", "db", "cache"];
    let containers: Vec<(Bundle, Child)> = policies
        .into_iter()
        .map(|policy| {
            let b = Bundle::busybox(
                Runtime::Runc,
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "while [ ! -e /stop ]; do busybox mknod /tmp/n c 1 3; busybox rm -f /tmp/n; busybox sleep 0.3; done",
                ],
            )
            .expect("bundle");
            b.user_namespace().expect("user namespace");
            b.set_seccomp(&serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "listenerPath": agent.socket.display().to_string(),
                "listenerMetadata": policy,
                "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
            }))
            .expect("seccomp");
            let argv = b.run_command();
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("runc run");
            (b, child)
        })
        .collect();
    // The ids' ends tell them apart (a name is shown by its end).
    let short: Vec<String> = containers
        .iter()
        .map(|(b, _)| {
            let n = b.id.chars().count();
            b.id.chars().skip(n.saturating_sub(8)).collect()
        })
        .collect();
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    // A Fleet cell by its column's header (character columns: the screen has `│` and `…`).
    let cell = |sc: &str, row_has: &str, column: &str| -> Option<u64> {
        let header = sc
            .lines()
            .find(|l| l.contains("container") && l.contains(column))?;
        let at = header.split(column).next()?.chars().count();
        let row: Vec<char> = sc.lines().find(|l| l.contains(row_has))?.chars().collect();
        let rest: String = row.get(at..)?.iter().collect();
        rest.split_whitespace().next()?.parse().ok()
    };
    // It opens on the Fleet: a row per container, with its policy and its own counts.
    let screen = tmux.wait_for(
        "the three containers in the Fleet, each with its counts",
        Duration::from_secs(30),
        |sc| {
            sc.contains("Fleet (3 running, 0 ended)")
                && short.iter().zip(policies).all(|(c, p)| {
                    let (emulated, denied) = (cell(sc, c, "emulated"), cell(sc, c, "denied"));
                    match p {
                        "db" => emulated == Some(0) && denied.is_some_and(|d| d >= 2),
                        _ => emulated.is_some_and(|e| e >= 2) && denied == Some(0),
                    }
                })
        },
    );
    for (c, p) in short.iter().zip(policies) {
        let row = screen
            .lines()
            .find(|l| l.contains(c.as_str()))
            .expect("row");
        assert!(row.contains(p), "{c} under {p}: {screen}");
        assert!(
            cell(&screen, c, "calls").is_some_and(|n| n >= 2),
            "{screen}"
        );
    }
    // A wide screen also says who runs each: runc, started by this test (no engine above it).
    tmux.resize(130, 30);
    let screen = tmux.wait_for("the runtime column", Duration::from_secs(15), |sc| {
        sc.contains("runtime")
            && short.iter().all(|c| {
                sc.lines()
                    .find(|l| l.contains(c.as_str()))
                    .is_some_and(|l| l.contains(" runc "))
            })
    });
    assert!(!screen.contains("containerd/"), "{screen}");
    tmux.resize(100, 30);
    // Enter: the selected container's decisions only.
    tmux.keys(&["Enter"]);
    tmux.wait_for("one container's decisions", Duration::from_secs(15), |sc| {
        sc.contains("filter: container=") && sc.contains("mknodat")
    });
    // The newest call's detail names its container and policy.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the detail pane", Duration::from_secs(15), |sc| {
        sc.contains("Detail") && sc.contains("(listenerMetadata)")
    });
    assert!(
        policies
            .iter()
            .any(|p| screen.contains(&format!("policy {p}"))),
        "{screen}"
    );
    // The containers end: the Fleet keeps them, greyed, as ended.
    for (b, mut child) in containers {
        let _ = std::fs::write(b.dir.join("rootfs/stop"), "");
        let _ = std::fs::write(&stop, "");
        let t = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    tmux.keys(&["Escape"]);
    tmux.keys(&["1"]);
    tmux.wait_for("the containers ended", Duration::from_secs(15), |sc| {
        sc.contains("Fleet (0 running, 3 ended)") && sc.matches("ended").count() >= 4
    });
    drop(tmux);
    drop(agent);
}

/// `auditor tui` on a daemon: its two containers with their learning progress, `w` has the
/// daemon write the selected one's candidate policy, and containers that end stay, greyed.
#[test]
fn tui_attaches_to_the_daemon_and_writes_a_containers_candidate_policy() {
    let test = "tui_attaches_to_the_daemon_and_writes_a_containers_candidate_policy";
    if require_tool(test, "tmux").is_none() || !integration::learner::ready(test) {
        return;
    }
    use integration::learner::{hooked_bundle, runc, runc_run_detached, Daemon};
    let s = Scratch::new("tui-daemon");
    let run_dir = s.dir().join("run");
    let daemon = Daemon::start_env([("AUDITOR_RUN_DIR", run_dir.clone())]);
    let name = format!(
        "daemon-{}",
        session_pid(&run_dir, "daemon", Duration::from_secs(20))
    );
    let o = Command::new(auditor_bin())
        .args(["tui", "--list"])
        .env("AUDITOR_RUN_DIR", &run_dir)
        .output()
        .expect("tui --list");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&name),
        "tui --list: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let bundles: Vec<_> = (0..2)
        .map(|_| {
            let b = hooked_bundle(
                &daemon,
                &[
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "while [ ! -e /stop ]; do /bin/busybox sync; /bin/busybox sleep 0.2; done",
                ],
            );
            runc_run_detached(&b);
            b
        })
        .collect();
    let short: Vec<String> = bundles
        .iter()
        .map(|b| {
            let n = b.id.chars().count();
            b.id.chars().skip(n.saturating_sub(8)).collect()
        })
        .collect();
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    let screen = tmux.wait_for("both containers learning", Duration::from_secs(30), |sc| {
        sc.contains("Containers (2 learning, 0 ended)")
            && short.iter().all(|c| sc.contains(c.as_str()))
    });
    assert!(
        screen.contains("distinct") && screen.contains("learning"),
        "{screen}"
    );
    // `w`: the daemon writes the selected container's candidate policy beside its observation.
    tmux.keys(&["w"]);
    let screen = tmux.wait_for("the policy written", Duration::from_secs(15), |sc| {
        sc.contains("candidate policy of") && sc.contains("written to")
    });
    let written: Vec<_> = bundles
        .iter()
        .map(|b| daemon.out.join(format!("{}.candidate.toml", b.id)))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(written.len(), 1, "{screen}");
    let text = std::fs::read_to_string(&written[0]).expect("policy");
    assert!(text.contains("\"sync\""), "{text}");
    // Still a policy auditor reads (its warnings are about the runtime init's mounts).
    let o = Command::new(auditor_bin())
        .arg("check")
        .arg(&written[0])
        .output()
        .expect("auditor check");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(said.contains(" 0 error(s)"), "{said}");
    for b in &bundles {
        std::fs::write(b.rootfs().join("stop"), "").expect("stop");
    }
    tmux.wait_for("both ended", Duration::from_secs(20), |sc| {
        sc.contains("Containers (0 learning, 2 ended)")
    });
    for b in &bundles {
        let _ = runc(&["delete", "--force", &b.id]);
    }
    drop(tmux);
    drop(daemon);
}

/// An agent in complain mode: the Drift view lists the `sync` calls its policy would refuse;
/// `a` puts an allow rule first in the container's policy file (its comments kept, the rule's
/// comment saying who and when) and has the agent reload, which then allows the container's
/// next `sync`.
#[test]
fn tui_drift_view_allows_what_complain_mode_saw_and_the_agent_applies_it() {
    let test = "tui_drift_view_allows_what_complain_mode_saw_and_the_agent_applies_it";
    if !require_root(test)
        || require_tool(test, "tmux").is_none()
        || require_tool(test, "runc").is_none()
    {
        return;
    }
    use integration::runtimes::{self, Bundle, Runtime};
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("tui-drift");
    s.write(
        "policies/web.toml",
        "# web: refuse what is not listed\nversion = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n",
    );
    let run_dir = s.dir().join("run");
    let agent = integration::agent::Agent::start_managed_with(
        &s,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
        &["--complain"],
    );
    let name = format!(
        "agent-{}",
        session_pid(&run_dir, "agent", Duration::from_secs(20))
    );
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "while [ ! -e /stop ]; do busybox sync; busybox sleep 0.2; done",
        ],
    )
    .expect("bundle");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": agent.socket.display().to_string(),
        "listenerMetadata": "web",
        "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("seccomp");
    let argv = b.run_command();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runc run");
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    // Attached (the session's hello opens the Fleet), then to the Drift view.
    tmux.wait_for(
        "the container in the Fleet",
        Duration::from_secs(30),
        |sc| sc.contains("Fleet (1 running"),
    );
    tmux.keys(&["4"]);
    tmux.wait_for("sync in the Drift view", Duration::from_secs(30), |sc| {
        sc.contains("Drift:") && sc.contains("sync") && sc.contains("web")
    });
    tmux.keys(&["a"]);
    // The UI says what it wrote, then the agent's notice says what the reload changed.
    let screen = tmux.wait_for("the rule written", Duration::from_secs(15), |sc| {
        sc.contains("rule(s) added to")
            || sc.contains("not changed")
            || sc.contains("reloaded its policies")
    });
    assert!(!screen.contains("not changed"), "{screen}");
    tmux.wait_for("the agent's reload", Duration::from_secs(15), |sc| {
        sc.contains("reloaded its policies: 1 container(s) changed policy")
    });
    let policy = std::fs::read_to_string(s.path("policies/web.toml")).expect("policy");
    assert!(
        policy.starts_with("# web: refuse what is not listed")
            && policy.contains("names = [\"sync\"]")
            && policy.contains("Drift view by uid 0 at"),
        "{policy}\n{screen}"
    );
    agent.wait_log(|l| l.contains("served under its changed policy"));
    let records = agent.wait_records(|r| {
        r.iter()
            .filter(|r| r["container"] == b.id.as_str() && r["decision"] == "allowed")
            .count()
            >= 3
    });
    let mine: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["container"] == b.id.as_str())
        .collect();
    let first_allowed = mine
        .iter()
        .position(|r| r["decision"] == "allowed")
        .unwrap_or_else(|| panic!("no allowed sync: {mine:?}\n{}", agent.log_text()));
    assert!(
        first_allowed > 0
            && mine[..first_allowed]
                .iter()
                .all(|r| r["decision"] == "complain")
    );
    assert!(
        mine[first_allowed..]
            .iter()
            .all(|r| r["decision"] == "allowed"),
        "{mine:?}"
    );
    let _ = std::fs::write(b.dir.join("rootfs/stop"), "");
    let t = Instant::now();
    while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(tmux);
    drop(agent);
}

/// The Drift view's counts under a load beyond the display budget: a runc container makes
/// 20 000 complain `sync` calls as fast as the agent answers (far more than the decisions the
/// display receives one by one), and the Drift view shows every one of them — the count the
/// audit log has.
#[test]
fn tui_drift_counts_every_complain_call_under_load() {
    let test = "tui_drift_counts_every_complain_call_under_load";
    if !require_root(test)
        || require_tool(test, "tmux").is_none()
        || require_tool(test, "runc").is_none()
    {
        return;
    }
    use integration::runtimes::{self, Bundle, Runtime};
    const CALLS: usize = 20_000;
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("tui-drift-load");
    s.write(
        "policies/web.toml",
        "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n",
    );
    let run_dir = s.dir().join("run");
    let agent = integration::agent::Agent::start_managed_with(
        &s,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
        &["--complain"],
    );
    let name = format!(
        "agent-{}",
        session_pid(&run_dir, "agent", Duration::from_secs(20))
    );
    let b =
        Bundle::busybox(Runtime::Runc, &["/bin/sync_many", &CALLS.to_string()]).expect("bundle");
    std::fs::copy(
        integration::workload("sync_many"),
        b.rootfs().join("bin/sync_many"),
    )
    .expect("workload");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": agent.socket.display().to_string(),
        "listenerMetadata": "web",
        "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("seccomp");
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    tmux.wait_for("the agent's Fleet", Duration::from_secs(30), |sc| {
        sc.contains("Fleet")
    });
    tmux.keys(&["4"]);
    let argv = b.run_command();
    let o = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .expect("runc run");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("done {CALLS}")),
        "{}",
        integration::describe(&o)
    );
    let records = agent.wait_records(|r| {
        r.iter()
            .filter(|r| r["container"] == b.id.as_str() && r["decision"] == "complain")
            .count()
            >= CALLS
    });
    let logged = records
        .iter()
        .filter(|r| r["container"] == b.id.as_str() && r["syscall"] == "sync")
        .count();
    assert_eq!(logged, CALLS);
    let screen = tmux.wait_for("every call counted", Duration::from_secs(15), |sc| {
        sc.lines()
            .any(|l| l.contains("sync") && l.contains(&format!(" {CALLS} ")))
    });
    assert!(screen.contains("Drift:"), "{screen}");
    drop(tmux);
    drop(agent);
}

/// The Drift view for an LXC container served through `lxc.seccomp.notify.proxy`: complain mode
/// sees its `sync` calls, `a` writes the rule into the policy its cookie names, the agent
/// reloads, and the container's next `sync` is allowed without restarting it.
#[test]
fn tui_drift_rule_reaches_an_lxc_container_without_a_restart() {
    let test = "tui_drift_rule_reaches_an_lxc_container_without_a_restart";
    if !require_root(test)
        || require_tool(test, "tmux").is_none()
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
    {
        return;
    }
    use integration::runtimes::{self, LxcContainer, Runtime};
    runtimes::clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("tui-drift-lxc");
    s.write(
        "policies/web.toml",
        "# web: refuse what is not listed\nversion = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n",
    );
    let run_dir = s.dir().join("run");
    let run_dir_s = run_dir.display().to_string();
    let agent = integration::agent::Agent::start_with_env(
        &s,
        integration::agent::Protocol::Lxc,
        &["--complain"],
        &[("AUDITOR_RUN_DIR", &run_dir_s)],
    );
    let name = format!(
        "agent-{}",
        session_pid(&run_dir, "agent", Duration::from_secs(20))
    );
    let c = LxcContainer::busybox().expect("lxc-create");
    c.unprivileged(integration::CONTAINER_ROOT)
        .expect("unprivileged container");
    let rootfs = std::path::PathBuf::from("/var/lib/lxc")
        .join(&c.name)
        .join("rootfs");
    c.set_seccomp("2\ndenylist\n[all]\nsync notify\n")
        .expect("profile");
    let proxy = format!("unix:{}", agent.socket.display());
    c.set_config(&[
        ("lxc.seccomp.notify.proxy", &proxy),
        ("lxc.seccomp.notify.cookie", "web"),
    ])
    .expect("proxy config");
    let mut child = c
        .execute_unprivileged(
            120,
            &[
                "/bin/sh",
                "-c",
                "while [ ! -e /tmp/stop ]; do sync; sleep 0.2; done",
            ],
        )
        .expect("lxc-execute")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lxc-execute");
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("tmp/stop"), "");
        }
    }
    let _stop = Stop(rootfs.clone());
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    tmux.wait_for(
        "the container in the Fleet",
        Duration::from_secs(30),
        |sc| sc.contains("Fleet (1 running"),
    );
    tmux.keys(&["4"]);
    tmux.wait_for("sync in the Drift view", Duration::from_secs(30), |sc| {
        sc.contains("Drift:") && sc.contains("sync") && sc.contains("web")
    });
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("the agent's reload", Duration::from_secs(20), |sc| {
        sc.contains("reloaded its policies") || sc.contains("not changed")
    });
    assert!(!screen.contains("not changed"), "{screen}");
    let policy = std::fs::read_to_string(s.path("policies/web.toml")).expect("policy");
    assert!(
        policy.starts_with("# web: refuse what is not listed")
            && policy.contains("names = [\"sync\"]"),
        "{policy}\n{screen}"
    );
    let records = agent.wait_records(|r| {
        r.iter()
            .filter(|r| r["syscall"] == "sync" && r["decision"] == "allowed")
            .count()
            >= 3
    });
    let syncs: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["syscall"] == "sync").collect();
    let first_allowed = syncs
        .iter()
        .position(|r| r["decision"] == "allowed")
        .unwrap_or_else(|| panic!("no allowed sync: {syncs:?}\n{}", agent.log_text()));
    assert!(
        first_allowed > 0
            && syncs[..first_allowed]
                .iter()
                .all(|r| r["decision"] == "complain")
            && syncs[first_allowed..]
                .iter()
                .all(|r| r["decision"] == "allowed"),
        "{syncs:?}"
    );
    // The same container all along: it was not restarted to pick the rule up.
    let containers: std::collections::BTreeSet<&str> = syncs
        .iter()
        .filter_map(|r| r["container"].as_str())
        .collect();
    assert_eq!(containers.len(), 1, "{syncs:?}");
    let _ = std::fs::write(rootfs.join("tmp/stop"), "");
    let t = Instant::now();
    while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(tmux);
    drop(agent);
}

/// An interactive agent policy (`default_action = "notify"`): two runc containers' `sync`
/// calls, which no rule of `ask.toml` decides, wait as prompts that name their container;
/// answers from `auditor tui` reach the right container's broker (each broker numbers its
/// prompts in a range of its own), allow-once lets one call through, deny-always is written to
/// the policy file and decides that container's later calls without a prompt, while the
/// other container is still asked.
#[test]
fn tui_answers_the_prompts_of_an_interactive_agent_policy_per_container() {
    let test = "tui_answers_the_prompts_of_an_interactive_agent_policy_per_container";
    if !require_root(test)
        || require_tool(test, "tmux").is_none()
        || require_tool(test, "runc").is_none()
    {
        return;
    }
    use integration::runtimes::{self, Bundle, Runtime};
    runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("tui-agent-prompts");
    s.write(
        "policies/ask.toml",
        "# ask: a person decides what no rule does\nversion = 1\ndefault_action = \"notify\"\n",
    );
    let run_dir = s.dir().join("run");
    let agent = integration::agent::Agent::start_managed_with(
        &s,
        "agent.log",
        &[("AUDITOR_RUN_DIR", run_dir.display().to_string())],
        Vec::new(),
        &["--prompt-timeout", "120s"],
    );
    let name = format!(
        "agent-{}",
        session_pid(&run_dir, "agent", Duration::from_secs(20))
    );
    let mut containers = Vec::new();
    for _ in 0..2 {
        let b = Bundle::busybox(
            Runtime::Runc,
            &[
                "/bin/busybox",
                "sh",
                "-c",
                "while [ ! -e /stop ]; do busybox sync; busybox sleep 0.1; done",
            ],
        )
        .expect("bundle");
        b.user_namespace().expect("user namespace");
        b.set_seccomp(&serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": agent.socket.display().to_string(),
            "listenerMetadata": "ask",
            "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .expect("seccomp");
        let argv = b.run_command();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runc run");
        containers.push((b, child));
    }
    let (a_id, b_id) = (containers[0].0.id.clone(), containers[1].0.id.clone());
    let tmux = Tmux::start(&tui_command(&run_dir, &name, ""));
    // Whose prompt is shown: the modal's first line names the container.
    let shown = |sc: &str| -> Option<String> {
        // (Not the Fleet's header: `container      policy`.)
        let word = sc
            .lines()
            .filter_map(|l| l.split("│container ").nth(1)?.split_whitespace().next())
            .find(|w| *w != "policy")?;
        [&a_id, &b_id]
            .into_iter()
            .find(|id| id.as_str() == word)
            .cloned()
    };
    // Allow once, until each container has had a call allowed that way.
    let mut allowed = std::collections::BTreeSet::new();
    for _ in 0..20 {
        if allowed.len() == 2 {
            break;
        }
        let screen = tmux.wait_for(
            "a prompt naming a container",
            Duration::from_secs(30),
            |sc| sc.contains("Decide ·") && shown(sc).is_some(),
        );
        assert!(
            screen.contains("sync") && screen.contains("policy ask"),
            "{screen}"
        );
        allowed.insert(shown(&screen).expect("shown"));
        tmux.keys(&["a"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(allowed.len(), 2, "both containers were asked: {allowed:?}");
    // Deny always, for the first container's prompt (the second's are answered once).
    let mut denied = false;
    for _ in 0..20 {
        let screen = tmux.wait_for("a prompt", Duration::from_secs(30), |sc| {
            sc.contains("Decide ·") && shown(sc).is_some()
        });
        if shown(&screen).as_deref() == Some(a_id.as_str()) {
            tmux.keys(&["D"]);
            denied = true;
            break;
        }
        tmux.keys(&["a"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(denied, "the first container was asked again");
    tmux.wait_for("the always answer written", Duration::from_secs(15), |sc| {
        sc.contains("added `deny sync`")
    });
    let policy = std::fs::read_to_string(s.path("policies/ask.toml")).expect("policy");
    assert!(
        policy.starts_with("# ask: a person decides")
            && policy.contains("name = \"sync\"")
            && policy.contains("denied (EPERM) always by uid 0")
            && policy.contains(&format!("auditor agent (container {a_id})")),
        "{policy}"
    );
    // The first container's later syncs are denied by that answer, no prompt; the second
    // container is still asked (its next prompt appears, answered once more).
    let records = agent.wait_records(|r| {
        r.iter()
            .filter(|r| {
                r["container"] == a_id.as_str()
                    && r["decision"] == "denied"
                    && r["decoded"]["prompt"]
                        .as_str()
                        .is_some_and(|p| p.contains("earlier answer"))
            })
            .count()
            >= 3
    });
    let screen = tmux.wait_for(
        "the second container asked again",
        Duration::from_secs(30),
        |sc| sc.contains("Decide ·") && shown(sc).as_deref() == Some(b_id.as_str()),
    );
    assert!(screen.contains("policy ask"), "{screen}");
    for (id, who) in [(&a_id, "first"), (&b_id, "second")] {
        assert!(
            records.iter().any(|r| r["container"] == id.as_str()
                && r["decision"] == "allowed"
                && r["decoded"]["prompt"] == "allow-once"
                && r["decoded"]["decided_by"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("uid 0"))),
            "the {who} container's allow-once answer: {records:?}"
        );
    }
    // Every prompt answer went to its own container: no record of the second container was
    // decided by the first one's deny-always.
    assert!(
        !records
            .iter()
            .any(|r| r["container"] == b_id.as_str() && r["decision"] == "denied"),
        "{records:?}"
    );
    for (b, mut child) in containers {
        let _ = std::fs::write(b.dir.join("rootfs/stop"), "");
        let _ = integration::learner::runc(&["kill", &b.id, "KILL"]);
        let t = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = integration::learner::runc(&["delete", "--force", &b.id]);
    }
    drop(tmux);
    drop(agent);
}
