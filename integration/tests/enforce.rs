//! `auditor enforce` against the real kernel: the LXD story (mknod inside an unprivileged
//! container, refused by the kernel, emulated by the broker), a learn → generate → enforce
//! round trip with an audit log, complain mode, and the broker's faults (auditor killed while the
//! workload loops on a notified call; the workload killed while auditor serves it).

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{
    audit_records as records, auditor_bin, enforce, require_root, session_socket, text, wait_for,
    workload, Reaped, Scratch, ALLOW_ALL_POLICY, CONTAINER_ROOT, MKNOD_NOTIFY,
};

/// Kills the `mknod_loop` workload (not our child) on drop, if it still runs: the pid is
/// checked against its command line first, so a reused pid is never hit.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("mknod_loop") {
                // SAFETY: kill with a pid and a signal number.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn mknod_in_a_user_namespace_needs_the_notify_rule() {
    if !require_root("mknod_in_a_user_namespace_needs_the_notify_rule") {
        return;
    }
    let s = Scratch::for_container("enforce-mknod");
    let dir = s.0.display().to_string();
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let with = s.write("with.toml", MKNOD_NOTIFY);
    let log = s.path("audit.jsonl");

    // The kernel refuses device nodes in a user namespace by itself.
    let o = enforce(
        &["--policy", &without.display().to_string(), "--userns"],
        &["sh", "-c", &format!("cd {dir} && mknod null c 1 3")],
    );
    assert_ne!(
        o.status.code(),
        Some(0),
        "mknod succeeded without the notify rule"
    );
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
    assert!(!s.path("null").exists());

    // With the rule, the broker creates it: a character device 1:3 owned by the container's
    // root, which the workload can write to; a block device stays refused.
    let script = format!(
        "cd {dir} && mknod null c 1 3; echo mknod=$?; echo hello > null; echo write=$?; \
         stat -c 'stat=%F %t:%T %u:%g' null; mknod blk b 8 0; echo blk=$?"
    );
    let o = enforce(
        &[
            "--policy",
            &with.display().to_string(),
            "--userns",
            "--audit-log",
            &log.display().to_string(),
        ],
        &["sh", "-c", &script],
    );
    let out = text(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        text(&o.stderr)
    );
    assert!(out.contains("mknod=0"), "{out}");
    assert!(out.contains("write=0"), "{out}");
    assert!(out.contains("stat=character special file 1:3 0:0"), "{out}");
    assert!(out.contains("blk=1"), "{out}");
    let m = std::fs::symlink_metadata(s.path("null")).expect("node created");
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    assert_eq!((m.uid(), m.gid()), (CONTAINER_ROOT, CONTAINER_ROOT));
    assert!(!s.path("blk").exists());

    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "mknodat"
            && r["decision"] == "emulated"
            && r["result"] == "0"
            && r["decoded"]["dev"] == "c 1:3"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["decision"] == "denied"
            && r["result"] == "-EPERM"
            && r["decoded"]["dev"] == "b 8:0"),
        "{recs:#?}"
    );
}

#[test]
fn learned_policy_round_trip() {
    if !require_root("learned_policy_round_trip") {
        return;
    }
    let s = Scratch::new("enforce-roundtrip");
    let obs = s.path("probe.json");
    let policy = s.path("probe.toml");
    let log = s.path("audit.jsonl");
    let probe = workload("probe");

    let o = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .args(["--", &probe])
        .output()
        .expect("run auditor learn");
    assert!(o.status.success(), "learn failed: {}", text(&o.stderr));
    let o = Command::new(auditor_bin())
        .arg("generate")
        .arg(&obs)
        .arg("-o")
        .arg(&policy)
        .output()
        .expect("run auditor generate");
    assert!(o.status.success(), "generate failed: {}", text(&o.stderr));
    // Enforced as generated: the listener hand-over needs no syscall of the policy's.
    let pol = policy.display().to_string();
    let logs = log.display().to_string();

    let o = enforce(&["--policy", &pol, "--audit-log", &logs], &[&probe]);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ok\n");
    assert!(
        records(&log).is_empty(),
        "refusals under the learned policy: {:#?}",
        records(&log)
    );

    // A call outside the policy: EPERM, and an audit record.
    let o = enforce(
        &["--policy", &pol, "--audit-log", &logs],
        &[&probe, "extra"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("getppid=-1 errno={}\n", libc::EPERM)
    );
    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "getppid"
            && r["decision"] == "denied"
            && r["result"] == "-EPERM"
            && r["exe"] == probe.as_str()),
        "{recs:#?}"
    );
    assert_eq!(recs.len(), 1, "{recs:#?}");
}

/// Each record names the executable that made the call, also when one thread execs from one
/// program into another between notified calls (the broker reuses a reading until the exec
/// watch says the thread exec'd; without the watch it reads the link every call).
#[test]
fn records_name_the_executable_across_execs() {
    if !require_root("records_name_the_executable_across_execs") {
        return;
    }
    let s = Scratch::new("enforce-exe-exec");
    let policy = s.write(
        "exe.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"getppid\", \"uname\"]\naction = \"errno\"\nerrno = \"EPERM\"\n",
    );
    let log = s.path("audit.jsonl");
    // dash asks getppid at start (for $PPID): sh, sh again after an exec, then uname(1).
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--mode",
            "complain",
            "--audit-log",
            &log.display().to_string(),
        ],
        &["/bin/sh", "-c", "exec /bin/sh -c 'exec /bin/uname -s'"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Linux\n");
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    let uname = std::fs::canonicalize("/bin/uname").expect("/bin/uname");
    let recs = records(&log);
    let of = |call: &str| {
        recs.iter()
            .filter(|r| r["syscall"] == call)
            .map(|r| (r["pid"].as_u64(), r["exe"].as_str().map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    let (shells, unames) = (of("getppid"), of("uname"));
    assert_eq!(shells.len(), 2, "{recs:#?}");
    assert_eq!(unames.len(), 1, "{recs:#?}");
    // One thread throughout.
    assert!(shells
        .iter()
        .chain(&unames)
        .all(|(pid, _)| *pid == shells[0].0));
    for (_, exe) in &shells {
        assert_eq!(exe.as_deref(), sh.to_str(), "{recs:#?}");
    }
    assert_eq!(unames[0].1.as_deref(), uname.to_str(), "{recs:#?}");
}

#[test]
fn complain_mode_records_and_allows() {
    if !require_root("complain_mode_records_and_allows") {
        return;
    }
    let s = Scratch::new("enforce-complain");
    // Refuses nearly everything: enforced, the probe could not even start.
    let policy = s.write(
        "tiny.toml",
        "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n\n[[rule]]\nnames = [\"execve\", \"exit_group\", \"write\"]\naction = \"allow\"\n",
    );
    let log = s.path("audit.jsonl");
    let probe = workload("probe");
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--mode",
            "complain",
            "--audit-log",
            &log.display().to_string(),
        ],
        &[&probe, "extra"],
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "getppid=0 errno=0\n");
    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "getppid"
            && r["decision"] == "complain"
            && r["result"] == "continue"),
        "{recs:#?}"
    );
    assert!(
        recs.iter()
            .any(|r| r["syscall"] == "mmap" && r["decision"] == "complain"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().all(|r| r["decision"] == "complain"),
        "{recs:#?}"
    );
    // The allowed calls never reach the broker.
    assert!(!recs.iter().any(|r| r["syscall"] == "write"), "{recs:#?}");
}

/// A loop on one notified call watched live, without an audit log: the broker folds the calls
/// repeated back to back into few records (its cheapest path), and the live session still
/// counts every one of them, as the enforce summary does.
#[test]
fn a_live_session_counts_every_call_of_a_loop_on_one_notified_call() {
    if !require_root("a_live_session_counts_every_call_of_a_loop_on_one_notified_call") {
        return;
    }
    live_totals_of_a_loop("enforce-live-totals", 1);
}

/// The same with three threads looping at once, their notifications interleaved: each
/// thread's calls fold into its own record, and every call is still counted.
#[test]
fn a_live_session_counts_every_call_of_threads_looping_on_one_notified_call() {
    if !require_root("a_live_session_counts_every_call_of_threads_looping_on_one_notified_call") {
        return;
    }
    live_totals_of_a_loop("enforce-live-threads", 3);
}

/// `same_call` making 60 000 notified getppid calls from `threads` threads under `enforce
/// --mode complain`, a real session client attached: its last status counts every call.
fn live_totals_of_a_loop(prefix: &str, threads: u32) {
    const CALLS: u64 = 60_000;
    let s = Scratch::new(prefix);
    let policy = s.write(
        "policy.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nname = \"getppid\"\naction = \"errno\"\nerrno = \"EPERM\"\n",
    );
    let run_dir = s.path("run");
    let gate = s.path("go");
    let child = Command::new(auditor_bin())
        .env("AUDITOR_RUN_DIR", &run_dir)
        .args(["enforce", "--mode", "complain", "--policy"])
        .arg(&policy)
        .arg("--")
        .arg(workload("same_call"))
        .arg(CALLS.to_string())
        .arg(&gate)
        .arg(threads.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start auditor");
    let mut auditor = Reaped(child);
    let stream = std::os::unix::net::UnixStream::connect(session_socket(&run_dir)).expect("attach");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let client = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let (mut last, mut shown, mut shown_calls, mut runs, mut dropped) =
            (None, 0u64, 0u64, 0u64, 0u64);
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match v["type"].as_str() {
                Some("status") => last = Some(v),
                Some("decision") => {
                    let repeats = v["repeats"].as_u64().unwrap_or(0);
                    shown += 1;
                    shown_calls += 1 + repeats;
                    runs += u64::from(repeats > 0);
                }
                Some("dropped") => dropped = v["total"].as_u64().unwrap_or(0),
                Some("end") => break,
                _ => {}
            }
        }
        (last, shown, shown_calls, runs, dropped)
    });
    std::fs::write(&gate, b"").expect("gate");
    wait_for("enforce to end", Duration::from_secs(60), || {
        matches!(auditor.0.try_wait(), Ok(Some(_)))
    });
    let status = auditor.0.wait().expect("wait");
    let mut stderr = String::new();
    let mut stdout = String::new();
    use std::io::Read as _;
    let _ = auditor
        .0
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    let _ = auditor
        .0
        .stdout
        .take()
        .map(|mut o| o.read_to_string(&mut stdout));
    assert!(status.success(), "enforce: {status}\n{stderr}");
    assert_eq!(stdout, format!("done {CALLS}\n"));
    assert!(
        stderr.contains(&format!("{CALLS} notifications")),
        "the summary counts every call: {stderr}"
    );
    let (last, shown, shown_calls, runs, dropped) = client.join().expect("client");
    let last = last.expect("a status before the end");
    let totals = &last["totals"];
    assert_eq!(totals["decisions"], CALLS, "{last:#}");
    assert_eq!(totals["by_syscall"]["getppid"], CALLS, "{last:#}");
    assert_eq!(totals["by_action"]["complain"], CALLS, "{last:#}");
    assert_eq!(last["session_dropped"], 0, "{last:#}");
    // A person is shown a sample; the totals above are exact.
    assert!(shown < CALLS, "every call shown ({shown})");
    // A decision shown says how many calls of its thread it stands for; with those not shown
    // (reported as dropped), every call is accounted for.
    assert!(runs > 0, "no decision shown stands for repeated calls");
    assert_eq!(
        shown_calls + dropped,
        CALLS,
        "{shown} decisions shown for {shown_calls} calls, {dropped} not shown"
    );
}

/// Start `auditor enforce` with the mknod policy around `mknod_loop`; returns auditor, the
/// workload's pid and the scratch dir.
fn start_loop(prefix: &str) -> (Reaped, KillOnDrop, Scratch) {
    let s = Scratch::new(prefix);
    let policy = s.write("policy.toml", MKNOD_NOTIFY);
    let pidfile = s.path("pid");
    let child = Command::new(auditor_bin())
        .args(["enforce", "--policy"])
        .arg(&policy)
        .arg("--")
        .arg(workload("mknod_loop"))
        .arg(&pidfile)
        .arg(s.path("done"))
        .arg(s.path("node"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start auditor");
    let auditor = Reaped(child);
    wait_for("the workload's pid file", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    // Let it loop through the broker for a while.
    std::thread::sleep(Duration::from_millis(300));
    (auditor, KillOnDrop(Some(pid)), s)
}

#[test]
fn broker_killed_notified_calls_fail_with_enosys() {
    if !require_root("broker_killed_notified_calls_fail_with_enosys") {
        return;
    }
    let (mut auditor, _workload, s) = start_loop("enforce-brokerdeath");
    auditor.0.kill().expect("kill auditor");
    let _ = auditor.0.wait();
    // The kernel fails the pending and every later notified call with ENOSYS: the workload
    // notices, says so and exits on its own instead of hanging.
    let done = s.path("done");
    // The file exists from fopen on; its line is complete at fclose.
    wait_for(
        "the workload to see ENOSYS",
        Duration::from_secs(10),
        || std::fs::read_to_string(&done).is_ok_and(|t| t.ends_with('\n')),
    );
    let t = std::fs::read_to_string(&done).expect("done file");
    assert!(t.starts_with("enosys "), "{t}");
    let calls: u64 = t
        .trim()
        .trim_start_matches("enosys ")
        .parse()
        .expect("count");
    assert!(calls > 1, "the loop never went through the broker: {t}");
}

#[test]
fn workload_killed_mid_notification_auditor_exits() {
    if !require_root("workload_killed_mid_notification_auditor_exits") {
        return;
    }
    let (mut auditor, mut workload, _s) = start_loop("enforce-workloaddeath");
    if let Some(pid) = workload.0.take() {
        // SAFETY: kill with a pid and a signal number.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let c = &mut auditor.0;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = c.try_wait().expect("wait auditor") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "auditor did not exit after its workload was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // 128 + SIGKILL, the workload's status.
    assert_eq!(status.code(), Some(137));
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(!err.contains("broker stopped"), "{err}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let s = Scratch::new("enforce-badinput");
    let good = s.write("good.toml", ALLOW_ALL_POLICY).display().to_string();
    let bad = s
        .write("bad.toml", "version = 1\ndefault_action = \"alow\"\n")
        .display()
        .to_string();
    let missing = s.path("missing.toml").display().to_string();
    for (args, cmd, expect) in [
        (
            vec!["--policy", missing.as_str()],
            vec!["true"],
            "cannot open policy",
        ),
        (
            vec!["--policy", bad.as_str()],
            vec!["true"],
            "did you mean \"allow\"",
        ),
        (
            vec!["--policy", good.as_str()],
            vec!["no-such-command-xyz"],
            "command not found",
        ),
        (
            vec!["--policy", good.as_str(), "--userns=0:10"],
            vec!["true"],
            "bad --userns range",
        ),
    ] {
        let o = enforce(&args, &cmd);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn workload_cannot_install_a_listener_of_its_own() {
    if !require_root("workload_cannot_install_a_listener_of_its_own") {
        return;
    }
    // A listener of the workload's own would see calls before auditor's broker (and hide them
    // from the audit log). The kernel refuses a second listener in one filter chain (EBUSY,
    // has_duplicate_listener, 5.0), so whenever auditor's filter has a listener — notify rules
    // or an audit log — this holds without a rule of its own.
    let s = Scratch::new("enforce-ownlistener");
    let policy = s.write("policy.toml", MKNOD_NOTIFY).display().to_string();
    let o = enforce(
        &["--policy", &policy, "--userns"],
        &[&workload("own_listener")],
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("listener=-1 errno={}\n", libc::EBUSY)
    );
}

/// A loop device attached on the host to an image file, detached on drop (even when the test
/// fails).
/// Names of the ext4 images the mount tests attach (one per test, so that they can run side by
/// side); stale devices backed by one are detached before its test starts.
#[test]
fn toctou_the_node_created_is_the_path_that_was_copied() {
    if !require_root("toctou_the_node_created_is_the_path_that_was_copied") {
        return;
    }
    // A racing thread rewrites the path buffer while each mknodat is pending. The broker
    // copies the path once: the node created is always the one at the path it recorded (and
    // decided on), never the other one.
    let s = Scratch::for_container("enforce-toctou");
    let policy = s.write("policy.toml", MKNOD_NOTIFY).display().to_string();
    let log = s.path("audit.jsonl");
    let work = s.path("work");
    std::fs::create_dir(&work).expect("work dir");
    std::os::unix::fs::chown(&work, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    const CALLS: usize = 200;
    let o = enforce(
        &[
            "--policy",
            &policy,
            "--userns",
            "--audit-log",
            &log.display().to_string(),
        ],
        &[
            &workload("mknod_race"),
            &work.display().to_string(),
            &CALLS.to_string(),
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    // Written as answered: in call order once sorted by the time of the notification.
    let mut recs: Vec<serde_json::Value> = records(&log)
        .into_iter()
        .filter(|r| r["syscall"] == "mknodat")
        .collect();
    recs.sort_by(|x, y| x["time"].as_str().cmp(&y["time"].as_str()));
    let calls: Vec<&str> = out.lines().filter(|l| l.starts_with("call=")).collect();
    assert_eq!(calls.len(), CALLS, "{out}");
    assert_eq!(recs.len(), CALLS, "{recs:#?}");
    let mut seen = [0usize; 2];
    for (line, rec) in calls.iter().zip(&recs) {
        let copied = rec["decoded"]["path"].as_str().unwrap_or_default();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_default()
        };
        let (a, b) = (field("a=") == "1", field("b=") == "1");
        if field("ret=") == "0" {
            assert_eq!(rec["result"], "0", "{line} {rec}");
            match copied {
                "a/node" => {
                    assert!(a && !b, "{line}: recorded {copied}");
                    seen[0] += 1;
                }
                "b/node" => {
                    assert!(b && !a, "{line}: recorded {copied}");
                    seen[1] += 1;
                }
                other => panic!("{line}: recorded path {other:?}"),
            }
        } else {
            assert!(!a && !b, "{line}: a node exists although the call failed");
        }
    }
    // The race really happened: both paths were copied at some point.
    eprintln!("copied a/node {} times, b/node {} times", seen[0], seen[1]);
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "the rewriting thread never won a race: {seen:?}"
    );
}

/// Syscall names a generated policy names in any rule.
fn policy_names(path: &Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("policy");
    let mut out = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("name = ") {
            out.insert(v.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("names = ") {
            out.extend(
                v.trim_matches(['[', ']'])
                    .split(',')
                    .map(|n| n.trim().trim_matches('"').to_owned())
                    .filter(|n| !n.is_empty()),
            );
        }
    }
    out
}

#[test]
fn learning_under_a_policy_reaches_a_fixpoint_in_two_rounds() {
    if !require_root("learning_under_a_policy_reaches_a_fixpoint_in_two_rounds") {
        return;
    }
    // mknod_then calls sched_getscheduler only after a granted mknod. Round 1 (in the same
    // kind of container enforce makes) sees the mknod refused and generates the notify rule;
    // round 2 runs under that policy with the handler active and sees the rest; a third
    // round adds nothing.
    let s = Scratch::for_container("enforce-fixpoint");
    let dir = s.0.display().to_string();
    let bin = workload("mknod_then");
    let learn = |round: usize, policy: Option<&Path>| -> PathBuf {
        let out = s.path(&format!("r{round}.json"));
        let mut cmd = Command::new(auditor_bin());
        cmd.args(["learn", "--no-progress", "--userns", "-o"])
            .arg(&out);
        if let Some(p) = policy {
            cmd.arg("--policy").arg(p);
        }
        let o = cmd
            .args(["--", &bin, &dir])
            .output()
            .expect("run auditor learn");
        assert!(o.status.success(), "round {round}: {}", text(&o.stderr));
        out
    };
    let generate = |round: usize, inputs: &[&PathBuf]| -> PathBuf {
        let out = s.path(&format!("r{round}.toml"));
        let o = Command::new(auditor_bin())
            .arg("generate")
            .args(inputs)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("run auditor generate");
        assert!(o.status.success(), "generate {round}: {}", text(&o.stderr));
        out
    };
    let o1 = learn(1, None);
    let p1 = generate(1, &[&o1]);
    let n1 = policy_names(&p1);
    assert!(n1.contains("mknodat"), "{n1:?}");
    assert!(!n1.contains("sched_getscheduler"), "{n1:?}");
    let p1_text = std::fs::read_to_string(&p1).unwrap_or_default();
    assert!(p1_text.contains("handler = \"emulate-mknod\""), "{p1_text}");

    let o2 = learn(2, Some(&p1));
    let p2 = generate(2, &[&o1, &o2]);
    let n2 = policy_names(&p2);
    assert!(n2.contains("sched_getscheduler"), "{n2:?}");

    let o3 = learn(3, Some(&p2));
    let p3 = generate(3, &[&o1, &o2, &o3]);
    let n3 = policy_names(&p3);
    assert_eq!(n2, n3, "round 3 found more");

    // And the result is enforceable: the workload runs to the end under it.
    let o = enforce(
        &["--policy", &p2.display().to_string(), "--userns"],
        &[&bin, &dir],
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("wrote to null"),
        "{}",
        text(&o.stdout)
    );
}
