//! `auditor enforce --interactive` against the real kernel and in a real terminal (tmux): a
//! call the policy does not decide waits for a person's answer on screen; allow-always lets it
//! run, is recorded in the audit log and appended to the policy file, and the next launch
//! compiles it into the filter. Also: the timeout denies, `check` accepts notify as the default
//! action only for interactive use, OCI policies are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use integration::{auditor_bin, require_root, require_tool, text, workload, Reaped, Scratch};

use integration::tmux::Tmux;

fn run(args: &[&str], env_run_dir: &Path) -> Output {
    Command::new(auditor_bin())
        .args(args)
        .env("AUDITOR_RUN_DIR", env_run_dir)
        .output()
        .expect("run auditor")
}

/// `auditor enforce --interactive` of `program extra` under `policy`, prompts timing out after
/// `timeout`, with an audit log; nobody answers.
fn enforce_interactive(
    policy: &Path,
    timeout: &str,
    log: &Path,
    program: &str,
    run_dir: &Path,
) -> Output {
    run(
        &[
            "enforce",
            "--interactive",
            "--prompt-timeout",
            timeout,
            "--policy",
            &policy.display().to_string(),
            "--audit-log",
            &log.display().to_string(),
            "--",
            program,
            "extra",
        ],
        run_dir,
    )
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit record is JSON"))
        .collect()
}

/// Learn a workload without its argument (it then makes gettid, not getppid) and generate its
/// policy; a comment of
/// our own goes on top, to check that rewriting keeps it. (The audit log ends with a summary
/// line; decisions are the records with a `syscall`.)
fn learned_policy(s: &Scratch, program: &str) -> (PathBuf, String) {
    let obs = s.path("learned.json");
    let policy = s.path("learned.toml");
    let o = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .args(["--", program])
        .output()
        .expect("auditor learn");
    assert!(o.status.success(), "learn: {}", text(&o.stderr));
    let o = Command::new(auditor_bin())
        .arg("generate")
        .arg(&obs)
        .arg("-o")
        .arg(&policy)
        .output()
        .expect("auditor generate");
    assert!(o.status.success(), "generate: {}", text(&o.stderr));
    let generated = std::fs::read_to_string(&policy).expect("the policy");
    assert!(
        !generated.contains("getppid"),
        "the learned policy must not decide getppid:\n{generated}"
    );
    let original = format!("# Reviewed by hand: keep this line.\n{generated}");
    std::fs::write(&policy, &original).expect("write the policy");
    (policy, original)
}

#[test]
fn allow_always_on_the_prompt_lets_the_calls_run_and_writes_the_rule_back() {
    if !require_root("allow_always_on_the_prompt_lets_the_calls_run_and_writes_the_rule_back")
        || require_tool("interactive", "tmux").is_none()
    {
        return;
    }
    let s = Scratch::new("interactive-tui");
    let twice = workload("twice");
    let (policy, original) = learned_policy(&s, &twice);
    let run_dir = s.path("run");
    let log = s.path("audit.jsonl");
    let wlog = s.path("workload.log");
    let status = s.path("status");
    let tmux = Tmux::start(&format!(
        "cd {dir} && env AUDITOR_RUN_DIR={run} {bin} enforce --interactive --tui \
         --workload-log {wlog} --policy {policy} --audit-log {log} -- {twice} extra; \
         echo $? > {status}",
        dir = s.0.display(),
        run = run_dir.display(),
        bin = auditor_bin().display(),
        wlog = wlog.display(),
        policy = policy.display(),
        log = log.display(),
        status = status.display(),
    ));
    // Both threads call getppid with the same arguments: one prompt for both calls.
    let screen = tmux.wait_for("the prompt", Duration::from_secs(20), |s| {
        s.contains("Decide · 1 of 1 pending")
            && s.contains("getppid")
            && s.contains("2 calls held")
            && s.contains("A allow always")
    });
    assert!(screen.contains("⚑ 1 pending"), "{screen}");
    tmux.keys(&["A"]);
    tmux.wait_for("the end of the session", Duration::from_secs(20), |s| {
        s.contains("ended: the workload exited") && !s.contains("pending")
    });
    let out = std::fs::read_to_string(&wlog).expect("the workload log");
    assert_eq!(out, "t0=ok t1=ok\n", "both calls were allowed");
    tmux.keys(&["q"]);
    let t = Instant::now();
    while !status.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "enforce did not exit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while !tmux.pane_dead() {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&status).unwrap_or_default().trim(),
        "0",
        "{}",
        tmux.screen()
    );

    // The audit log: both calls, allowed by the in-process UI's allow-always answer.
    let recs = records(&log);
    let prompted: Vec<_> = recs.iter().filter(|r| r["syscall"] == "getppid").collect();
    assert_eq!(prompted.len(), 2, "{recs:#?}");
    for r in &prompted {
        assert_eq!(r["decision"], "allowed", "{r:#}");
        assert_eq!(r["action"], "prompt", "{r:#}");
        assert_eq!(r["result"], "continue", "{r:#}");
        assert_eq!(r["decoded"]["prompt"], "allow-always", "{r:#}");
        assert_eq!(r["decoded"]["decided_by"], "in-process UI", "{r:#}");
        assert_eq!(r["exe"], twice.as_str(), "{r:#}");
    }

    // The policy: everything as it was, byte for byte, and one rule more saying who and when.
    let rewritten = std::fs::read_to_string(&policy).expect("the policy");
    assert!(
        rewritten.starts_with(&original),
        "the policy was changed, not appended to:\n{rewritten}"
    );
    let added = &rewritten[original.len()..];
    assert!(added.contains("name = \"getppid\""), "{added}");
    assert!(added.contains("action = \"allow\""), "{added}");
    assert!(
        added.contains("allowed always by in-process UI at 20"),
        "{added}"
    );
    let o = run(&["check", &policy.display().to_string()], &run_dir);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{}",
        text(&o.stdout)
    );

    // The next launch compiles the answer in: no prompt (none could be answered here: the
    // timeout would deny, after waiting), no notification at all for getppid.
    let log2 = s.path("audit2.jsonl");
    let started = Instant::now();
    let o = enforce_interactive(&policy, "30s", &log2, &twice, &run_dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "t0=ok t1=ok\n");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it waited for a prompt"
    );
    let decisions: Vec<_> = records(&log2)
        .into_iter()
        .filter(|r| r.get("syscall").is_some())
        .collect();
    assert!(decisions.is_empty(), "{decisions:#?}");
    assert_eq!(std::fs::read_to_string(&policy).ok(), Some(rewritten));
}

#[test]
fn an_unanswered_prompt_times_out_denied_and_logged() {
    if !require_root("an_unanswered_prompt_times_out_denied_and_logged") {
        return;
    }
    let s = Scratch::new("interactive-timeout");
    let twice = workload("twice");
    let (policy, original) = learned_policy(&s, &twice);
    let log = s.path("audit.jsonl");
    let started = Instant::now();
    let o = enforce_interactive(&policy, "1s", &log, &twice, &s.path("run"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "t0=Operation not permitted t1=Operation not permitted\n"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "denied before the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let recs = records(&log);
    let denied: Vec<_> = recs.iter().filter(|r| r["syscall"] == "getppid").collect();
    assert_eq!(denied.len(), 2, "{recs:#?}");
    for r in denied {
        assert_eq!(r["decision"], "denied", "{r:#}");
        assert_eq!(r["result"], "-EPERM", "{r:#}");
        assert_eq!(r["decoded"]["prompt"], "timeout", "{r:#}");
        assert_eq!(r["decoded"]["decided_by"], "timeout after 1s", "{r:#}");
    }
    // Nothing was answered always: the policy is untouched.
    assert_eq!(std::fs::read_to_string(&policy).ok(), Some(original));
}

#[test]
fn notify_by_default_is_checked_for_interactive_use_only_and_oci_is_refused() {
    let s = Scratch::new("interactive-check");
    let run_dir = s.path("run");
    let native = s.path("notify.toml");
    std::fs::write(
        &native,
        "version = 1\ndefault_action = \"notify\"\n\n[[rule]]\nnames = [\"read\", \"write\", \"execve\", \"exit_group\"]\naction = \"allow\"\n",
    )
    .expect("policy");
    let n = native.display().to_string();
    let o = run(&["check", &n], &run_dir);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("only `auditor enforce --interactive`"),
        "{}",
        text(&o.stdout)
    );
    let o = run(&["check", "--interactive", &n], &run_dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    // Plain enforce refuses it before starting anything.
    let o = run(&["enforce", "--policy", &n, "--", "true"], &run_dir);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--interactive"),
        "{}",
        text(&o.stderr)
    );

    // Deciding and only recording do not go together.
    let o = run(
        &[
            "enforce",
            "--interactive",
            "--mode",
            "complain",
            "--policy",
            &n,
            "--",
            "true",
        ],
        &run_dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--mode complain"),
        "{}",
        text(&o.stderr)
    );

    let oci = s.path("oci.json");
    std::fs::write(
        &oci,
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "execve", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
    )
    .expect("oci policy");
    let o = run(
        &[
            "enforce",
            "--interactive",
            "--policy",
            &oci.display().to_string(),
            "--",
            "true",
        ],
        &run_dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--interactive needs a native (TOML) policy"),
        "{}",
        text(&o.stderr)
    );
    let o = run(
        &["check", "--interactive", &oci.display().to_string()],
        &run_dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("needs a native (TOML) policy"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn deny_always_from_an_attached_auditor_tui_names_the_client_and_writes_an_errno_rule() {
    if !require_root(
        "deny_always_from_an_attached_auditor_tui_names_the_client_and_writes_an_errno_rule",
    ) || require_tool("interactive", "tmux").is_none()
    {
        return;
    }
    let s = Scratch::new("interactive-attached");
    let twice = workload("twice");
    let (policy, original) = learned_policy(&s, &twice);
    let run_dir = s.path("run");
    let log = s.path("audit.jsonl");
    // The session runs without a UI of its own; its prompt waits (a minute at most).
    let mut session = Reaped(
        Command::new(auditor_bin())
            .args([
                "enforce",
                "--interactive",
                "--prompt-timeout",
                "60s",
                "--policy",
            ])
            .arg(&policy)
            .arg("--audit-log")
            .arg(&log)
            .args(["--", &twice, "extra"])
            .env("AUDITOR_RUN_DIR", &run_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start auditor enforce"),
    );
    let tmux = Tmux::start(&format!(
        "env AUDITOR_RUN_DIR={run} {bin} tui --wait 20s --session enforce-{pid}",
        run = run_dir.display(),
        bin = auditor_bin().display(),
        pid = session.0.id(),
    ));
    tmux.wait_for("the prompt", Duration::from_secs(20), |s| {
        s.contains("Decide · 1 of 1 pending") && s.contains("2 calls held")
    });
    tmux.keys(&["D"]);
    let t = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = session.0.try_wait() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "enforce did not end after the answer:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    if let Some(mut o) = session.0.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out).expect("workload output");
    }
    assert_eq!(
        out,
        "t0=Operation not permitted t1=Operation not permitted\n"
    );
    let recs = records(&log);
    let denied: Vec<_> = recs.iter().filter(|r| r["syscall"] == "getppid").collect();
    assert_eq!(denied.len(), 2, "{recs:#?}");
    for r in denied {
        assert_eq!(r["decision"], "denied", "{r:#}");
        assert_eq!(r["result"], "-EPERM", "{r:#}");
        assert_eq!(r["decoded"]["prompt"], "deny-always", "{r:#}");
        let by = r["decoded"]["decided_by"].as_str().unwrap_or_default();
        assert!(by.starts_with("uid 0 (root) pid "), "{r:#}");
    }
    let rewritten = std::fs::read_to_string(&policy).expect("the policy");
    assert!(rewritten.starts_with(&original), "{rewritten}");
    let added = &rewritten[original.len()..];
    assert!(
        added.contains("name = \"getppid\"")
            && added.contains("action = \"errno\"")
            && added.contains("denied (EPERM) always by uid 0 (root) pid "),
        "{added}"
    );
}

#[test]
fn the_broker_answers_other_calls_while_a_prompt_waits() {
    if !require_root("the_broker_answers_other_calls_while_a_prompt_waits") {
        return;
    }
    let s = Scratch::new("interactive-busy");
    let program = workload("held_busy");
    let (policy, _) = learned_policy(&s, &program);
    let log = s.path("audit.jsonl");
    let o = enforce_interactive(&policy, "3s", &log, &program, &s.path("run"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // 50 notified calls answered (the policy's default, EPERM, for a number no kernel
    // assigns: no prompt) while getppid still waited for its prompt, which then timed out.
    assert_eq!(
        text(&o.stdout),
        "busy=50 served_while_held=1 getppid=Operation not permitted\n"
    );
    let recs = records(&log);
    let unknown = recs.iter().filter(|r| r["syscall"] == "nr:1000").count();
    assert_eq!(unknown, 50, "{recs:#?}");
    assert!(
        recs.iter()
            .any(|r| r["syscall"] == "getppid" && r["decoded"]["prompt"] == "timeout"),
        "{recs:#?}"
    );
}
