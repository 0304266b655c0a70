//! `emulate-sched` against the real kernel: a user-namespaced container (auditor enforce
//! --userns, in a v1 cpu cgroup) raises a thread to SCHED_FIFO within the policy's ceiling,
//! is refused above it, lowers its nice value to the floor and no further, and cannot reach a
//! process of another container; without an RT budget in its cpu cgroup the refusal says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{
    audit_records as records, auditor_bin, require_root, text, unique_name, workload, Scratch,
    ALLOW_ALL_POLICY,
};

const SCHED_POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["sched_setscheduler", "sched_setattr", "setpriority"]
action = "notify"
handler = "emulate-sched"
params = { policies = ["other", "fifo"], rt_max = 10, nice_min = -5 }
"#;

const CPU_V1: &str = "/sys/fs/cgroup/cpu";
const CGROUP_PREFIX: &str = "auditor-test-sched-";

/// A v1 cpu cgroup made for one test, with `rt_us` of realtime budget per period; removed on
/// drop (after its processes have exited).
struct CpuCgroup(PathBuf);

impl CpuCgroup {
    /// `None` (outside CI) where the host has no v1 cpu hierarchy with RT group scheduling.
    fn new(rt_us: u64) -> Option<CpuCgroup> {
        let root = Path::new(CPU_V1);
        if !root.join("cpu.rt_runtime_us").exists() {
            assert!(
                !integration::in_ci(),
                "no cgroup v1 cpu hierarchy with RT group scheduling at {CPU_V1}, and CI=true forbids skipping"
            );
            eprintln!("SKIP: no cgroup v1 cpu hierarchy with RT group scheduling at {CPU_V1}");
            return None;
        }
        // Left over by a test process that was killed: empty by now, remove them (never a
        // live test's, which may not have joined it yet).
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if integration::stale_name(&e.file_name().to_string_lossy(), CGROUP_PREFIX) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let dir = root.join(unique_name(CGROUP_PREFIX));
        std::fs::create_dir(&dir).expect("create cpu cgroup");
        let cg = CpuCgroup(dir);
        std::fs::write(cg.0.join("cpu.rt_runtime_us"), rt_us.to_string())
            .expect("set the cgroup's RT budget");
        Some(cg)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `auditor enforce --userns` of sched_try STEPS, started inside `cg`.
fn run(cg: &CpuCgroup, policy: &Path, log: &Path, steps: &[&str]) -> String {
    let o = Command::new("sh")
        .args([
            "-c",
            "echo $$ > \"$1\"/cgroup.procs && shift && exec \"$@\"",
            "sh",
        ])
        .arg(&cg.0)
        .arg(auditor_bin())
        .args(["enforce", "--userns", "--policy"])
        .arg(policy)
        .arg("--audit-log")
        .arg(log)
        .arg("--")
        .arg(workload("sched_try"))
        .args(steps)
        .output()
        .expect("run auditor");
    let out = text(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        text(&o.stderr)
    );
    out
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// A process in a pid namespace of its own (another container), killed on drop.
struct Other(std::process::Child);

impl Other {
    fn start() -> Other {
        Other(
            Command::new("unshare")
                .args(["--pid", "--fork", "sleep", "60"])
                .spawn()
                .expect("unshare"),
        )
    }

    /// The host pid of its `sleep`.
    fn sleeper(&self) -> u32 {
        for _ in 0..200 {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.0.id()))
                    .unwrap_or_default();
            if let Some(p) = children.split_whitespace().next() {
                return p.parse().expect("pid");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare started no child");
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn realtime_and_nice_within_the_policys_limits_on_the_containers_own_threads() {
    if !require_root("realtime_and_nice_within_the_policys_limits_on_the_containers_own_threads") {
        return;
    }
    let s = Scratch::new("enforce-sched");
    let with = s.write("with.toml", SCHED_POLICY);
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let log = s.path("audit.jsonl");
    let Some(cg) = CpuCgroup::new(100_000) else {
        return;
    };
    let other = Other::start();
    let victim = other.sleeper();
    let other_pid = format!("nice:-1:{victim}");
    let steps = [
        "fifo:5",
        "fifo:50",
        "attr:3",
        "nice:-3",
        "nice:-10",
        "pgrp:-1",
        other_pid.as_str(),
    ];
    let (eperm, eacces, esrch) = (libc::EPERM, libc::EACCES, libc::ESRCH);

    // Without auditor the kernel refuses the container every raise.
    let out = run(&cg, &without, &log, &steps);
    assert_eq!(line(&out, "fifo:5"), format!("-1 errno={eperm}"), "{out}");
    assert_eq!(line(&out, "nice:-3"), format!("-1 errno={eacces}"), "{out}");

    let out = run(&cg, &with, &log, &steps);
    // A second thread, named by its tid in the container: FIFO 5 is within the ceiling.
    assert_eq!(line(&out, "fifo:5"), "0 errno=0", "{out}");
    let after: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("policy="))
        .collect();
    assert_eq!(after.first(), Some(&"1 prio=5"), "{out}");
    // 50 is above it: refused, and the thread keeps FIFO 5.
    assert_eq!(line(&out, "fifo:50"), format!("-1 errno={eperm}"), "{out}");
    assert_eq!(after.get(1), Some(&"1 prio=5"), "{out}");
    assert_eq!(line(&out, "attr:3"), "0 errno=0", "{out}");
    assert_eq!(line(&out, "nice:-3"), "0 errno=0", "{out}");
    assert_eq!(line(&out, "now"), "-3", "{out}");
    assert_eq!(
        line(&out, "nice:-10"),
        format!("-1 errno={eacces}"),
        "{out}"
    );
    assert_eq!(line(&out, "pgrp:-1"), format!("-1 errno={eperm}"), "{out}");
    // Another container's process, by its host pid: not a thread of this container.
    assert_eq!(line(&out, &other_pid), format!("-1 errno={esrch}"), "{out}");
    // SAFETY: getpriority with integer arguments.
    let victim_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, victim) };
    assert_eq!(victim_nice, 0, "the other container's process was reniced");

    // A cpu cgroup without an RT budget: the kernel refuses even auditor, and the record
    // says why.
    let Some(no_budget) = CpuCgroup::new(0) else {
        return;
    };
    let out = run(&no_budget, &with, &log, &["fifo:5"]);
    assert_eq!(line(&out, "fifo:5"), format!("-1 errno={eperm}"), "{out}");

    let recs = records(&log);
    let sched: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r["syscall"] == "sched_setscheduler")
        .collect();
    assert!(
        sched
            .iter()
            .any(|r| r["decision"] == "emulated" && r["decoded"]["priority"] == "5"),
        "{sched:#?}"
    );
    assert!(
        sched.iter().any(|r| r["decision"] == "denied"
            && r["decoded"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("above the policy's ceiling 10"))),
        "{sched:#?}"
    );
    assert!(
        sched.iter().any(|r| r["decoded"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("cpu.rt_runtime_us"))),
        "{sched:#?}"
    );
    assert!(
        recs.iter().any(|r| r["syscall"] == "setpriority"
            && r["decision"] == "denied"
            && r["decoded"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("PRIO_PGRP"))),
        "{recs:#?}"
    );
}

/// learn → generate → enforce: the refused FIFO 5 and nice -3 are learned with their values
/// (the eBPF capture reads sched_param's priority) and granted by the generated policy.
#[test]
fn a_learned_policy_grants_the_priorities_the_workload_asked_for() {
    if !require_root("a_learned_policy_grants_the_priorities_the_workload_asked_for") {
        return;
    }
    let s = Scratch::new("learn-sched");
    let obs = s.path("obs.json");
    let policy = s.path("policy.toml");
    let o = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "--userns", "-o"])
        .arg(&obs)
        .arg("--")
        .arg(workload("sched_try"))
        .args(["fifo:5", "nice:-3"])
        .output()
        .expect("run auditor learn");
    assert!(o.status.success(), "learn: {}", text(&o.stderr));
    assert_eq!(
        line(&text(&o.stdout), "fifo:5"),
        format!("-1 errno={}", libc::EPERM)
    );
    let o = Command::new(auditor_bin())
        .arg("generate")
        .arg(&obs)
        .arg("-o")
        .arg(&policy)
        .output()
        .expect("run auditor generate");
    assert!(o.status.success(), "generate: {}", text(&o.stderr));
    let generated = std::fs::read_to_string(&policy).unwrap_or_default();
    assert!(
        generated
            .contains(r#"params = { nice_min = 0, policies = ["fifo", "other"], rt_max = 5 }"#)
            && generated
                .contains(r#"params = { nice_min = -3, policies = ["other"], rt_max = 0 }"#),
        "{generated}"
    );
    let Some(cg) = CpuCgroup::new(50_000) else {
        return;
    };
    let out = run(
        &cg,
        &policy,
        &s.path("audit.jsonl"),
        &["fifo:5", "fifo:6", "nice:-3"],
    );
    assert_eq!(line(&out, "fifo:5"), "0 errno=0", "{out}");
    assert_eq!(
        line(&out, "fifo:6"),
        format!("-1 errno={}", libc::EPERM),
        "{out}"
    );
    assert_eq!(line(&out, "nice:-3"), "0 errno=0", "{out}");
}

/// A hostile caller: a second thread flips the `sched_param` the call points to between an
/// allowed priority and 99 while the call is decided. The handler copies it once and acts on
/// its copy, so no call ever leaves the thread above the ceiling; ids the container does not
/// have are not found.
#[test]
fn a_racing_thread_cannot_raise_the_priority_above_the_ceiling() {
    if !require_root("a_racing_thread_cannot_raise_the_priority_above_the_ceiling") {
        return;
    }
    let s = Scratch::new("enforce-sched-race");
    let with = s.write("with.toml", SCHED_POLICY);
    let log = s.path("audit.jsonl");
    let Some(cg) = CpuCgroup::new(100_000) else {
        return;
    };
    let o = Command::new("sh")
        .args([
            "-c",
            "echo $$ > \"$1\"/cgroup.procs && shift && exec \"$@\"",
            "sh",
        ])
        .arg(&cg.0)
        .arg(auditor_bin())
        .args(["enforce", "--userns", "--policy"])
        .arg(&with)
        .arg("--audit-log")
        .arg(&log)
        .arg("--")
        .arg(workload("sched_race"))
        .args(["5", "3000"])
        .output()
        .expect("run auditor");
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let field = |k: &str| -> u64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    };
    assert!(field("max_prio=") <= 10, "{out}");
    // Both values were seen: some calls granted (5), some refused (99).
    assert!(field("ok=") > 0 && field("refused=") > 0, "{out}");

    // Thread ids the container does not have, however large or odd.
    let out = run(
        &cg,
        &with,
        &log,
        &["nice:-1:999999", "nice:-1:2147483647", "nice:-1:-5"],
    );
    assert_eq!(
        line(&out, "nice:-1:999999"),
        format!("-1 errno={}", libc::ESRCH),
        "{out}"
    );
    assert_eq!(
        line(&out, "nice:-1:2147483647"),
        format!("-1 errno={}", libc::ESRCH),
        "{out}"
    );
    assert_eq!(
        line(&out, "nice:-1:-5"),
        format!("-1 errno={}", libc::ESRCH),
        "{out}"
    );
}

/// The same limits in a real runc container (user and pid namespaces, its own cpu cgroup with
/// the RT budget its config asks for) whose profile hands the listener to `auditor agent`:
/// the second thread is named by its id in runc's pid namespace.
#[test]
fn runc_sched_through_the_agent() {
    use integration::runtimes::{Bundle, Runtime};
    let test = "runc_sched_through_the_agent";
    if !require_root(test) || integration::require_tool(test, "runc").is_none() {
        return;
    }
    if !Path::new(CPU_V1).join("cpu.rt_runtime_us").exists() {
        assert!(
            !integration::in_ci(),
            "{test}: no v1 cpu hierarchy with RT budgets"
        );
        return;
    }
    integration::runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("agent-sched");
    std::fs::write(s.path("policies/sched.toml"), SCHED_POLICY).expect("policy");
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": s.path("agent.sock"),
        "listenerMetadata": "sched",
        "syscalls": [
            {"names": ["sched_setscheduler", "sched_setattr", "setpriority"], "action": "SCMP_ACT_NOTIFY"},
        ],
    });
    let agent = integration::agent::Agent::oci(&s);
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/sched_try",
            "fifo:5",
            "fifo:50",
            "nice:-3",
            "nice:-10",
            "pgrp:-1",
        ],
    )
    .expect("bundle");
    std::fs::copy(workload("sched_try"), b.rootfs().join("sched_try")).expect("copy");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&profile).expect("seccomp");
    b.edit(|c| {
        c["linux"]["resources"]["cpu"] =
            serde_json::json!({"realtimeRuntime": 50_000, "realtimePeriod": 1_000_000});
    })
    .expect("RT budget");
    let argv = b.run_command();
    let o = integration::run_with_timeout(
        Command::new(&argv[0]).args(&argv[1..]),
        std::time::Duration::from_secs(60),
    );
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "{}\nagent: {}",
        integration::describe(&o),
        agent.log_text()
    );
    assert_eq!(
        line(&out, "fifo:5"),
        "0 errno=0",
        "{out}\nagent: {}",
        agent.log_text()
    );
    assert_eq!(
        line(&out, "fifo:50"),
        format!("-1 errno={}", libc::EPERM),
        "{out}"
    );
    assert_eq!(line(&out, "nice:-3"), "0 errno=0", "{out}");
    assert_eq!(
        line(&out, "nice:-10"),
        format!("-1 errno={}", libc::EACCES),
        "{out}"
    );
    assert_eq!(
        line(&out, "pgrp:-1"),
        format!("-1 errno={}", libc::EPERM),
        "{out}"
    );
    let records = agent.wait_records(|r| {
        r.iter().any(|r| {
            r["container"] == b.id
                && r["syscall"] == "sched_setscheduler"
                && r["decision"] == "emulated"
        })
    });
    assert!(
        records.iter().any(|r| r["container"] == b.id
            && r["syscall"] == "sched_setscheduler"
            && r["decision"] == "emulated"
            && r["decoded"]["priority"] == "5"),
        "{records:#?}"
    );
}
