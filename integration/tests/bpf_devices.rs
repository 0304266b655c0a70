//! `emulate-bpf-devices` against the real kernel: a user-namespaced container (auditor
//! enforce --userns) in a cgroup v2 directory delegated to it does what runc does to filter an
//! inner container's devices — query, load, attach, swap with BPF_F_REPLACE, detach, link —
//! and the filter works (a child in the inner cgroup cannot open /dev/null, still opens
//! /dev/zero). Other program types, malformed loads, fds inside instructions, attaching
//! outside its subtree or to its own cgroup, and attaching below a program attached with
//! ALLOW_OVERRIDE are refused and logged; the programs go away with the cgroup.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{
    audit_records as records, auditor_bin, require_root, text, unique_name, workload, Scratch,
    ALLOW_ALL_POLICY, CONTAINER_ROOT,
};

const BPF_POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["bpf"]
action = "notify"
handler = "emulate-bpf-devices"
"#;

const PREFIX: &str = "auditor-test-bpfdev";

/// A cgroup v2 directory made for one test under the host's cgroup2 mount, optionally
/// delegated to the container's root (owned by it, as an engine delegates a subtree); removed
/// with everything below it on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(delegated: bool) -> Cgroup {
        let root = cgroup2_root();
        // Left over by a killed test process (`PREFIX-PID-N`): empty by now, remove them.
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(PREFIX)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.split('-').next());
            if let Some(pid) = pid {
                if !Path::new("/proc").join(pid).exists() {
                    remove_tree(&e.path());
                }
            }
        }
        let dir = root.join(unique_name(PREFIX));
        std::fs::create_dir(&dir).expect("create a cgroup");
        let cg = Cgroup(dir);
        if delegated {
            for e in std::iter::once(cg.0.clone()).chain(
                ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]
                    .iter()
                    .map(|f| cg.0.join(f)),
            ) {
                std::os::unix::fs::chown(&e, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT))
                    .expect("delegate the cgroup");
            }
        }
        cg
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// The host's cgroup2 mount (`/sys/fs/cgroup/unified` on a hybrid host).
fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            if post.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            pre.split_whitespace().nth(4).map(PathBuf::from)
        })
        .min_by_key(|p| p.as_os_str().len())
        .expect("a cgroup2 mount")
}

/// rmdir a cgroup and its children, deepest first (processes in it have exited by then).
fn remove_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path());
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `auditor enforce --userns` of `bpf_dev run OWN OTHER`, started inside `own`.
fn run(own: &Cgroup, other: &Cgroup, policy: &Path, log: &Path) -> String {
    let o = Command::new("sh")
        .args([
            "-c",
            "echo $$ > \"$1\"/cgroup.procs && shift && exec \"$@\"",
            "sh",
        ])
        .arg(&own.0)
        .arg(auditor_bin())
        .args(["enforce", "--userns", "--policy"])
        .arg(policy)
        .arg("--audit-log")
        .arg(log)
        .arg("--")
        .arg(workload("bpf_dev"))
        .arg("run")
        .arg(&own.0)
        .arg(&other.0)
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

/// The rest of the line that starts with `key=` (or `key `).
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix('=').or_else(|| r.strip_prefix(' ')))
        })
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn errno_of(out: &str, key: &str) -> i32 {
    line(out, key)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("errno="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no errno for {key} in:\n{out}"))
}

fn field(out: &str, key: &str, name: &str) -> String {
    line(out, key)
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} for {key} in:\n{out}"))
}

/// What host root sees attached to `dir`: the count.
fn attached(dir: &Path) -> String {
    let o = Command::new(workload("bpf_dev"))
        .arg("show")
        .arg(dir)
        .output()
        .expect("bpf_dev show");
    field(&text(&o.stdout), "show", "count")
}

fn exists(id: &str) -> bool {
    let o = Command::new(workload("bpf_dev"))
        .args(["exists", id])
        .output()
        .expect("bpf_dev exists");
    text(&o.stdout).starts_with("exists=1")
}

#[test]
fn a_runtime_in_a_container_filters_its_inner_containers_devices() {
    if !require_root("a_runtime_in_a_container_filters_its_inner_containers_devices") {
        return;
    }
    let s = Scratch::new("bpf-devices");
    let with = s.write("with.toml", BPF_POLICY);
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let log = s.path("audit.jsonl");
    let (eperm, einval, e2big, efault) = (libc::EPERM, libc::EINVAL, libc::E2BIG, libc::EFAULT);

    // Without auditor the kernel refuses the container every load: a runtime then starts its
    // inner containers with no device filter.
    let own = Cgroup::new(true);
    let other = Cgroup::new(false);
    let out = run(&own, &other, &without, &log);
    assert_eq!(errno_of(&out, "load"), eperm, "{out}");

    let own = Cgroup::new(true);
    let out = run(&own, &other, &with, &log);
    assert_eq!(errno_of(&out, "mkdir"), 0, "{out}");
    assert_eq!(errno_of(&out, "load_socket_filter"), eperm, "{out}");
    assert_eq!(errno_of(&out, "load_zero_insns"), einval, "{out}");
    assert_eq!(errno_of(&out, "load_huge_count"), e2big, "{out}");
    assert_eq!(errno_of(&out, "load_bad_pointer"), efault, "{out}");
    assert_eq!(errno_of(&out, "load_map_fd"), eperm, "{out}");
    assert_eq!(errno_of(&out, "map_create"), eperm, "{out}");
    assert_eq!(errno_of(&out, "query_empty"), 0, "{out}");
    assert_eq!(field(&out, "query_empty", "count"), "0", "{out}");
    assert_eq!(errno_of(&out, "load"), 0, "{out}");
    // Outside its subtree, and its own cgroup (where the engine's own filter would sit).
    assert_eq!(errno_of(&out, "attach_other"), eperm, "{out}");
    assert_eq!(errno_of(&out, "attach_own"), eperm, "{out}");
    assert_eq!(attached(&other.0), "0");
    assert_eq!(attached(&own.0), "0");
    assert_eq!(errno_of(&out, "attach"), 0, "{out}");
    // Asked with ALLOW_OVERRIDE, attached with ALLOW_MULTI (2).
    assert_eq!(field(&out, "query", "count"), "1", "{out}");
    assert_eq!(field(&out, "query", "flags"), "2", "{out}");
    let first = field(&out, "query", "id");
    assert_eq!(
        line(&out, "filtered"),
        format!("null={eperm} zero=0"),
        "{out}"
    );
    assert_eq!(errno_of(&out, "get_fd_by_id"), 0, "{out}");
    assert_eq!(errno_of(&out, "replace"), 0, "{out}");
    assert_eq!(field(&out, "query_replaced", "count"), "1", "{out}");
    let second = field(&out, "query_replaced", "id");
    assert_ne!(first, second, "{out}");
    assert_eq!(
        line(&out, "replaced"),
        format!("null={eperm} zero=0"),
        "{out}"
    );
    assert_eq!(errno_of(&out, "detach"), 0, "{out}");
    assert_eq!(line(&out, "detached"), "null=0 zero=0", "{out}");
    assert_eq!(errno_of(&out, "link_create"), 0, "{out}");
    assert_eq!(
        line(&out, "linked"),
        format!("null={eperm} zero=0"),
        "{out}"
    );
    assert_eq!(line(&out, "unlinked"), "null=0 zero=0", "{out}");

    let recs = records(&log);
    let bpf: Vec<&serde_json::Value> = recs.iter().filter(|r| r["syscall"] == "bpf").collect();
    let why = |cmd: &str, needle: &str| {
        bpf.iter().any(|r| {
            r["decision"] == "denied"
                && r["decoded"]["cmd"] == cmd
                && r["decoded"]["why"]
                    .as_str()
                    .is_some_and(|w| w.contains(needle))
        })
    };
    assert!(
        why("BPF_PROG_LOAD", "only cgroup device programs"),
        "{bpf:#?}"
    );
    assert!(why("BPF_PROG_LOAD", "by fd or id"), "{bpf:#?}");
    assert!(
        why("BPF_PROG_ATTACH", "strictly below the caller's"),
        "{bpf:#?}"
    );
    assert!(why("BPF_MAP_CREATE", "not emulated"), "{bpf:#?}");
    assert!(
        bpf.iter().any(|r| r["decision"] == "emulated"
            && r["decoded"]["cmd"] == "BPF_PROG_ATTACH"
            && r["decoded"]["flags"] == "0x1"
            && r["decoded"]["flags_used"] == "0x2"),
        "{bpf:#?}"
    );

    // The programs go away with the container's cgroup.
    drop(own);
    let gone = (0..100).any(|_| {
        if !exists(&first) && !exists(&second) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        false
    });
    assert!(gone, "programs {first} and {second} outlived their cgroup");
}

/// A program attached with ALLOW_OVERRIDE above the container: a program attached below it
/// would override it for the subtree, so the attach is refused.
#[test]
fn no_attach_below_a_program_that_a_program_below_would_override() {
    if !require_root("no_attach_below_a_program_that_a_program_below_would_override") {
        return;
    }
    let s = Scratch::new("bpf-override");
    let policy = s.write("with.toml", BPF_POLICY);
    let log = s.path("audit.jsonl");
    let own = Cgroup::new(true);
    let other = Cgroup::new(false);
    let o = Command::new(workload("bpf_dev"))
        .arg("override")
        .arg(&own.0)
        .output()
        .expect("bpf_dev override");
    assert_eq!(text(&o.stdout).trim(), "override=0 errno=0");
    let out = run(&own, &other, &policy, &log);
    assert_eq!(errno_of(&out, "load"), 0, "{out}");
    assert_eq!(errno_of(&out, "attach"), libc::EPERM, "{out}");
    assert!(
        records(&log).iter().any(|r| r["syscall"] == "bpf"
            && r["decoded"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("without BPF_F_ALLOW_MULTI"))),
        "no record says why"
    );
}
