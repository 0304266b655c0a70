//! `auditor learn` against the real kernel: syscall sets compared with `strace -f` on the same
//! workloads, errno and refusal accounting, arguments, targets and bad input.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use auditor::observe::model::{Arguments, Observation, SyscallObservation};
use auditor::syscalls::Abi;
use integration::{auditor_bin, require_root, require_tool, unique_name, workload};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(unique_name(name))
}

/// `auditor learn -o OUT ARGS…`; returns its output and the observation.
fn learn(extra: &[&str], cmd: &[&str]) -> (Output, Observation) {
    let out = tmp("obs").with_extension("json");
    let mut c = Command::new(auditor_bin());
    c.args(["learn", "--no-progress", "-o"])
        .arg(&out)
        .args(extra);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    let o = c.output().expect("run auditor");
    let obs = auditor::observe::load(&out).unwrap_or_else(|e| {
        panic!(
            "no observation ({e}); auditor stderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let _ = std::fs::remove_file(&out);
    (o, obs)
}

fn find<'a>(obs: &'a Observation, abi: Abi, name: &str) -> Option<&'a SyscallObservation> {
    obs.syscalls.iter().find(|s| s.abi == abi && s.name == name)
}

fn names(obs: &Observation) -> BTreeSet<String> {
    obs.syscalls
        .iter()
        .filter(|s| s.abi == Abi::X86_64 && (s.count > 0 || !s.refused.is_empty()))
        .map(|s| s.name.clone())
        .collect()
}

/// The syscall names `strace -f` sees for the same command.
fn strace_names(cmd: &[&str]) -> BTreeSet<String> {
    let out = tmp("strace");
    // Same stdio as the learned run (pipes): glibc's isatty checks depend on it.
    let _ = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&out)
        .args(cmd)
        .output()
        .expect("run strace");
    let text = std::fs::read_to_string(&out).expect("strace output");
    let _ = std::fs::remove_file(&out);
    let mut set = BTreeSet::new();
    for line in text.lines() {
        // "PID  name(args…) = ret", "PID  <... name resumed>…", "PID  +++ exited …"
        let rest = line
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim_start())
            .unwrap_or(line);
        let name = if let Some(r) = rest.strip_prefix("<... ") {
            r.split_whitespace().next().unwrap_or("")
        } else {
            rest.split('(').next().unwrap_or("")
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            set.insert(name.to_string());
        }
    }
    set
}

/// Every syscall strace saw must be in the observation and vice versa, except the `explained`
/// ones, each with its reason.
fn assert_matches_strace(test: &str, obs: &Observation, cmd: &[&str], explained: &[(&str, &str)]) {
    let ours = names(obs);
    let theirs = strace_names(cmd);
    assert!(
        theirs.len() > 3,
        "{test}: strace saw almost nothing: {theirs:?}"
    );
    // `explained` syscalls may differ in either direction (e.g. futex contention depends on
    // timing, and strace slows every thread down).
    let missing: Vec<_> = theirs
        .difference(&ours)
        .filter(|n| !explained.iter().any(|(e, _)| e == n))
        .collect();
    assert!(
        missing.is_empty(),
        "{test}: strace saw syscalls auditor missed: {missing:?}\nours: {ours:?}"
    );
    let extra: Vec<_> = ours
        .difference(&theirs)
        .filter(|n| !explained.iter().any(|(e, _)| e == n))
        .collect();
    assert!(
        extra.is_empty(),
        "{test}: auditor saw unexplained extra syscalls {extra:?}\nstrace: {theirs:?}"
    );
}

fn assert_no_loss(test: &str, obs: &Observation) {
    assert_eq!(
        obs.loss.total, 0,
        "{test}: lost observations: {:?}",
        obs.loss.counters
    );
}

#[test]
fn shell_pipeline_matches_strace() {
    if !require_root("shell_pipeline_matches_strace")
        || require_tool("pipeline", "strace").is_none()
    {
        return;
    }
    let cmd = [
        "sh",
        "-c",
        "cat /etc/passwd | grep root | wc -l; ls /nonexistent 2>/dev/null; true",
    ];
    let (o, obs) = learn(&[], &cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_no_loss("pipeline", &obs);
    assert_matches_strace("pipeline", &obs, &cmd, &[]);
    // ls of a missing path fails with ENOENT somewhere (statx/newfstatat/lstat).
    let enoent: u64 = obs
        .syscalls
        .iter()
        .map(|s| s.failures.get("ENOENT").copied().unwrap_or(0))
        .sum();
    assert!(enoent > 0, "no ENOENT failures recorded");
    let exes: Vec<_> = obs.executables.iter().map(|e| e.path.as_str()).collect();
    for e in ["cat", "grep", "wc", "ls"] {
        assert!(
            exes.iter().any(|p| p.ends_with(&format!("/{e}"))),
            "{e} not among executables {exes:?}"
        );
    }
    // The launcher's execve is the first thing counted, nothing of auditor's before it.
    let execve = find(&obs, Abi::X86_64, "execve").expect("execve");
    assert!(execve.count >= 5, "execve count {}", execve.count);
}

#[test]
fn threads_match_strace() {
    if !require_root("threads_match_strace") || require_tool("threads", "strace").is_none() {
        return;
    }
    let w = workload("threads");
    let (o, obs) = learn(&[], &[&w]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_no_loss("threads", &obs);
    for n in [
        "clone3",
        "getcwd",
        "uname",
        "sched_yield",
        "getpriority",
        "exit",
        "exit_group",
    ] {
        assert!(
            find(&obs, Abi::X86_64, n).is_some_and(|s| s.count > 0),
            "{n} missing"
        );
    }
    assert!(
        obs.processes.tracked_threads >= 5,
        "threads tracked: {}",
        obs.processes.tracked_threads
    );
    // futex: thread joins may or may not contend, with or without strace's slowdown.
    assert_matches_strace(
        "threads",
        &obs,
        &[&w],
        &[("futex", "join contention depends on timing")],
    );
}

/// The programs remember per CPU which thread a syscall's registers belong to (the top of its
/// kernel stack); a thread that gets a dead one's kernel stack must not pass for it.
#[test]
fn threads_reusing_a_dead_threads_kernel_stack_are_each_counted() {
    if !require_root("threads_reusing_a_dead_threads_kernel_stack") {
        return;
    }
    let w = workload("thread_relay");
    let (o, obs) = learn(&[], &[&w, "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_no_loss("thread_relay", &obs);
    let getppid = find(&obs, Abi::X86_64, "getppid").expect("getppid");
    assert_eq!(getppid.count, 900, "3 calls in each of 300 threads");
    assert!(
        obs.processes.tracked_threads >= 301,
        "threads tracked: {}",
        obs.processes.tracked_threads
    );
}

#[test]
fn two_hundred_short_lived_children() {
    if !require_root("two_hundred_short_lived_children")
        || require_tool("children", "strace").is_none()
    {
        return;
    }
    let cmd = [
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done",
    ];
    let (o, obs) = learn(&[], &cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_no_loss("children", &obs);
    let t = obs
        .executables
        .iter()
        .find(|e| e.path == "/bin/true")
        .expect("/bin/true recorded");
    assert_eq!(t.execs, 200, "every child's exec is seen");
    let execve = find(&obs, Abi::X86_64, "execve").expect("execve");
    assert_eq!(execve.count, 201, "the shell's own execve and 200 children");
    let exit_group = find(&obs, Abi::X86_64, "exit_group").expect("exit_group");
    assert_eq!(exit_group.count, 201);
    assert!(obs.processes.tracked_threads >= 201);
    assert_eq!(
        obs.processes.exited_threads, obs.processes.tracked_threads,
        "all tracked threads exited and were forgotten"
    );
    assert_matches_strace("children", &obs, &cmd, &[]);
}

#[test]
fn eperm_in_user_namespace_with_mknod_arguments() {
    if !require_root("eperm_in_user_namespace") || require_tool("eperm", "strace").is_none() {
        return;
    }
    let node = tmp("node");
    let node_s = node.display().to_string();
    let cmd = [
        "unshare",
        "--user",
        "--map-root-user",
        "mknod",
        &node_s,
        "c",
        "1",
        "3",
    ];
    let (o, obs) = learn(&[], &cmd);
    assert!(
        !o.status.success(),
        "mknod of a char device must fail in a user namespace"
    );
    assert!(!node.exists());
    assert_no_loss("eperm", &obs);
    let m = find(&obs, Abi::X86_64, "mknodat")
        .or_else(|| find(&obs, Abi::X86_64, "mknod"))
        .expect("mknod(at) observed");
    assert_eq!(m.failures.get("EPERM"), Some(&1), "{m:?}");
    assert!(m.refused.is_empty(), "the kernel refused it, not a filter");
    let t = m.arguments.first().expect("arguments captured");
    assert_eq!(t.result, "EPERM");
    assert_eq!(t.calls, 1);
    match &t.args {
        Arguments::Mknod {
            path,
            file_type,
            major,
            minor,
            perm,
            ..
        } => {
            assert_eq!(path.as_deref(), Some(node_s.as_str()));
            assert_eq!(file_type, "char");
            assert_eq!((*major, *minor), (1, 3));
            assert_eq!(*perm & 0o777, 0o666 & *perm, "mode bits decoded");
        }
        other => panic!("not mknod arguments: {other:?}"),
    }
    // unshare itself: the namespaces it asked for.
    let u = find(&obs, Abi::X86_64, "unshare").expect("unshare");
    let ns: Vec<&str> = u
        .arguments
        .iter()
        .flat_map(|t| match &t.args {
            Arguments::Namespaces { namespaces, .. } => {
                namespaces.iter().map(String::as_str).collect()
            }
            _ => vec![],
        })
        .collect();
    assert!(ns.contains(&"user"), "unshare namespaces: {ns:?}");
    assert_matches_strace("eperm", &obs, &cmd, &[]);
}

#[test]
fn compat_syscall_is_reported_as_i386() {
    if !require_root("compat_syscall_is_reported_as_i386") {
        return;
    }
    let w = workload("compat");
    let (o, obs) = learn(&[], &[&w]);
    assert!(
        o.status.success(),
        "int $0x80 must work: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let g = find(&obs, Abi::I386, "getpid").expect("i386 getpid observed");
    assert_eq!(g.count, 1);
    assert!(
        find(&obs, Abi::X86_64, "writev").is_none(),
        "compat getpid (20) misnamed as writev"
    );
}

#[test]
fn seccomp_refusals_are_recorded_apart() {
    if !require_root("seccomp_refusals_are_recorded_apart") {
        return;
    }
    let w = workload("refused");
    let (o, obs) = learn(&[], &[&w]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = find(&obs, Abi::X86_64, "getppid").expect("getppid observed");
    assert_eq!(g.refused.get("EACCES"), Some(&3), "{g:?}");
    assert_eq!(g.count, 0, "refused calls never reach sys_enter");
    assert!(g.failures.is_empty());
    // Nothing else was refused: fork children and the launcher do not look like refusals.
    let refused: Vec<_> = obs
        .syscalls
        .iter()
        .filter(|s| !s.refused.is_empty())
        .map(|s| &s.name)
        .collect();
    assert_eq!(refused, vec!["getppid", "prctl"]);
    let sc = find(&obs, Abi::X86_64, "seccomp").expect("seccomp");
    assert_eq!(sc.count, 1);
    // A refused call's arguments are captured too (at sys_exit, the only hook it reaches),
    // with the filter's errno as the result.
    let p = find(&obs, Abi::X86_64, "prctl").expect("prctl observed");
    assert_eq!(p.refused.get("EPERM"), Some(&2), "{p:?}");
    let set_name = p
        .arguments
        .iter()
        .find(|t| matches!(&t.args, Arguments::Prctl { option_name, .. } if option_name == "PR_SET_NAME"))
        .unwrap_or_else(|| panic!("no PR_SET_NAME tuple: {:?}", p.arguments));
    assert_eq!(set_name.result, "EPERM");
    assert_eq!(set_name.calls, 2);
}

#[test]
fn arguments_that_matter_are_captured() {
    if !require_root("arguments_that_matter_are_captured") {
        return;
    }
    let w = workload("args");
    let (o, obs) = learn(&[], &[&w]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_no_loss("args", &obs);
    let sock = find(&obs, Abi::X86_64, "socket").expect("socket");
    let mut kinds: Vec<(String, String)> = sock
        .arguments
        .iter()
        .map(|t| match &t.args {
            Arguments::Socket {
                domain_name,
                type_name,
                ..
            } => (domain_name.clone(), type_name.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("AF_INET".into(), "SOCK_DGRAM".into()),
            ("AF_UNIX".into(), "SOCK_STREAM".into())
        ]
    );
    let prctl = find(&obs, Abi::X86_64, "prctl").expect("prctl");
    let set_name = prctl.arguments.iter().find(|t| matches!(&t.args, Arguments::Prctl { option_name, .. } if option_name == "PR_SET_NAME")).expect("PR_SET_NAME");
    assert_eq!(
        set_name.calls, 5,
        "a repeated tuple is one entry with its count"
    );
    let ioctl = find(&obs, Abi::X86_64, "ioctl").expect("ioctl");
    let t = ioctl
        .arguments
        .iter()
        .find(|t| matches!(t.args, Arguments::Ioctl { request: 0x5413 }))
        .expect("TIOCGWINSZ");
    assert_eq!(t.result, "ENOTTY");
    let p = find(&obs, Abi::X86_64, "personality").expect("personality");
    assert!(p.arguments.iter().any(|t| matches!(
        t.args,
        Arguments::Personality {
            persona: 0xffff_ffff
        }
    )));
}

#[test]
fn counts_are_exact_for_a_million_calls() {
    if !require_root("counts_are_exact_for_a_million_calls") {
        return;
    }
    let w = workload("spin");
    let (o, obs) = learn(&[], &[&w, "1000000"]);
    assert!(o.status.success());
    assert_no_loss("spin", &obs);
    assert_eq!(
        find(&obs, Abi::X86_64, "getppid").map(|s| s.count),
        Some(1_000_000)
    );
}

#[test]
fn exit_status_and_signals_become_auditors() {
    if !require_root("exit_status_and_signals_become_auditors") {
        return;
    }
    let (o, _) = learn(&[], &["sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let (o, _) = learn(&[], &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15));
}

#[test]
fn duration_and_sigint_stop_learning_and_write_output() {
    if !require_root("duration_and_sigint_stop_learning") {
        return;
    }
    let t0 = Instant::now();
    let (_, obs) = learn(&["--duration", "1s"], &["sleep", "60"]);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "--duration did not stop learning"
    );
    assert!(
        find(&obs, Abi::X86_64, "clock_nanosleep").is_some()
            || find(&obs, Abi::X86_64, "nanosleep").is_some()
    );

    let out = tmp("sigint").with_extension("json");
    let mut child = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&out)
        .args(["--", "sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auditor");
    wait_ready(&mut child);
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().expect("wait");
    assert!(!st.success());
    let obs = auditor::observe::load(&out).expect("output written on SIGINT");
    let _ = std::fs::remove_file(&out);
    assert!(find(&obs, Abi::X86_64, "execve").is_some());
}

/// Wait until auditor says it is learning (its programs are attached).
fn wait_ready(child: &mut std::process::Child) {
    let err = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(err).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("auditor: learning") => break,
            Some(Ok(_)) => continue,
            _ => panic!("auditor ended before it started learning"),
        }
    }
    // Keep draining so auditor never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
}

#[test]
fn pid_target_follows_the_process_and_new_children() {
    if !require_root("pid_target") {
        return;
    }
    let fifo = tmp("fifo");
    nix_mkfifo(&fifo);
    let script = format!("read x < {}; uname -a > /dev/null; exit 0", fifo.display());
    let mut target = Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("spawn target");
    let out = tmp("pid").with_extension("json");
    let mut a = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&out)
        .args(["--pid", &target.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auditor");
    wait_ready(&mut a);
    std::fs::write(&fifo, "go\n").expect("release target");
    let _ = target.wait();
    let st = a.wait().expect("auditor");
    assert!(
        st.success(),
        "auditor learn --pid stops by itself when the process is gone"
    );
    let _ = std::fs::remove_file(&fifo);
    let obs = auditor::observe::load(&out).expect("observation");
    let _ = std::fs::remove_file(&out);
    assert_no_loss("pid", &obs);
    assert!(
        find(&obs, Abi::X86_64, "uname").is_some_and(|s| s.count >= 1),
        "the child's uname"
    );
    assert!(obs.executables.iter().any(|e| e.path.ends_with("/uname")));
    assert!(
        obs.executables
            .iter()
            .any(|e| e.path.ends_with("sh") || e.path.contains("dash")),
        "{:?}",
        obs.executables
    );
    let refused: Vec<_> = obs
        .syscalls
        .iter()
        .filter(|s| !s.refused.is_empty())
        .map(|s| &s.name)
        .collect();
    assert!(
        refused.is_empty(),
        "a thread caught inside read() is not a refusal: {refused:?}"
    );
}

fn nix_mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

const CGROUP2: &str = "/sys/fs/cgroup/unified";

/// A cgroup directory removed on drop (after its processes are gone), even if the test fails.
struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let _ = std::fs::remove_dir(self.0.join("sub"));
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn cgroup_target_includes_tasks_that_join_later_and_child_cgroups() {
    if !require_root("cgroup_target") {
        return;
    }
    let root = Path::new(CGROUP2);
    if !root.join("cgroup.procs").exists() {
        // This machine kind mounts cgroup2 at /sys/fs/cgroup/unified (hybrid layout).
        assert!(!integration::in_ci(), "cgroup2 not mounted at {CGROUP2}");
        return;
    }
    // Clear stale leftovers of earlier runs.
    for e in std::fs::read_dir(root).expect("cgroup2").flatten() {
        if e.file_name().to_string_lossy().starts_with("auditor-test-") {
            let _ = std::fs::remove_dir(e.path().join("sub"));
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let cg = Cgroup(root.join(unique_name("auditor-test")));
    std::fs::create_dir(&cg.0).expect("create cgroup");
    std::fs::create_dir(cg.0.join("sub")).expect("create child cgroup");
    let out = tmp("cg").with_extension("json");
    let mut a = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "--duration", "60s", "-o"])
        .arg(&out)
        .arg("--cgroup")
        .arg(&cg.0)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auditor");
    wait_ready(&mut a);
    // A process joins the child cgroup, then does things auditor must see.
    let script = format!(
        "echo $$ > {}/sub/cgroup.procs && exec uname -r",
        cg.0.display()
    );
    let st = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .status()
        .expect("joiner");
    assert!(st.success());
    let st = a.wait().expect("auditor");
    assert!(st.success(), "auditor stops when the cgroup empties");
    let obs = auditor::observe::load(&out).expect("observation");
    let _ = std::fs::remove_file(&out);
    assert!(
        find(&obs, Abi::X86_64, "uname").is_some_and(|s| s.count >= 1),
        "{:?}",
        names(&obs)
    );
    assert!(obs.executables.iter().any(|e| e.path.ends_with("uname")));
    drop(cg);
}

#[test]
fn bad_input_gets_a_clear_error_and_nonzero_exit() {
    if !require_root("bad_input") {
        return;
    }
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["learn".into(), "--".into(), "no-such-command-xyz".into()],
            "command not found",
        ),
        (
            vec!["learn".into(), "--pid".into(), "999999999".into()],
            "no process with pid",
        ),
        (
            vec!["learn".into(), "--cgroup".into(), "/tmp".into()],
            "not a cgroup v2 directory",
        ),
        (
            vec!["learn".into(), "--cgroup".into(), "/nonexistent/x".into()],
            "not a cgroup v2 directory",
        ),
        (
            vec![
                "learn".into(),
                "-o".into(),
                "/nonexistent-dir/o.json".into(),
                "--".into(),
                "true".into(),
            ],
            "cannot write",
        ),
        (vec!["learn".into()], "give exactly one workload"),
        (
            vec![
                "learn".into(),
                "--pid".into(),
                "1".into(),
                "--".into(),
                "true".into(),
            ],
            "give exactly one workload",
        ),
    ];
    for (args, want) in cases {
        let o = Command::new(auditor_bin())
            .args(&args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected «{want}» in: {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one-line error, got: {err}"
        );
    }
    // Not root.
    if require_tool("bad_input", "setpriv").is_some() {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(auditor_bin())
            .args(["learn", "-o", "/tmp/x.json", "--", "true"])
            .output()
            .expect("setpriv");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("needs root"), "{err}");
    }
}

#[test]
fn vfork_and_exec_from_a_non_leader_thread_are_followed() {
    if !require_root("vfork_and_exec_from_a_non_leader_thread") {
        return;
    }
    let w = workload("forks");
    let (o, obs) = learn(&[], &[&w]);
    assert!(
        o.status.success(),
        "the process ends as /bin/true: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_no_loss("forks", &obs);
    assert!(find(&obs, Abi::X86_64, "vfork").is_some_and(|s| s.count == 1));
    let paths: Vec<_> = obs.executables.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"/bin/echo") && paths.contains(&"/bin/true"),
        "{paths:?}"
    );
    // /bin/true's own exit is attributed to it: tracking survived the thread's exec.
    let eg = find(&obs, Abi::X86_64, "exit_group").expect("exit_group");
    assert_eq!(
        eg.executables.get("/bin/true"),
        Some(&1),
        "{:?}",
        eg.executables
    );
    assert_eq!(
        eg.executables.get("/bin/echo"),
        Some(&1),
        "{:?}",
        eg.executables
    );
}
