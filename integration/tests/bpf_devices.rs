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
        Cgroup::named(&unique_name(PREFIX), delegated)
    }

    /// `name` under the cgroup2 mount, (re)created.
    fn named(name: &str, delegated: bool) -> Cgroup {
        let root = cgroup2_root();
        // Left over by a killed test process: empty by now, remove them (never a live
        // test's).
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if integration::stale_name(&e.file_name().to_string_lossy(), PREFIX) {
                remove_tree(&e.path());
            }
        }
        let dir = root.join(name);
        if !dir.exists() {
            std::fs::create_dir(&dir).expect("create a cgroup");
        }
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
    assert_eq!(errno_of(&out, "load_skb_probe"), 0, "{out}");
    assert_eq!(errno_of(&out, "load_skb_program"), eperm, "{out}");
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
    // What the kernel says of a program the caller holds: its own answer.
    assert_eq!(errno_of(&out, "info"), 0, "{out}");
    assert_eq!(field(&out, "info", "id"), first, "{out}");
    assert_eq!(field(&out, "info", "type"), "15", "{out}");
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

/// The outer container of the nested test: a user-namespaced runc container with runc inside
/// (and its libraries), an inner bundle, and a device node the inner container's device rules
/// do not allow (`/dev/testdev`, 10:229, mode 0666, which the outer container may open).
/// Its cgroup v2 directory is delegated by hand (this host is hybrid: the outer runtime
/// delegates no v2 subtree): `cgroupsPath` names a directory under the cgroup2 mount owned
/// by the container's root, the container has a cgroup namespace rooted there and mounts
/// cgroup2 itself.
fn nested_bundle(cgroup: &str) -> integration::runtimes::Bundle {
    use integration::runtimes::{Bundle, Runtime, USERNS_HOST_ID};
    const INNER: &str = "if (true < /dev/testdev) 2>/dev/null; then echo testdev=open; else echo testdev=denied; fi; if (true < /dev/zero) 2>/dev/null; then echo zero=open; else echo zero=denied; fi";
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "mount -t cgroup2 none /sys/fs/cgroup && runc --root /run/runc run --bundle /inner inner; echo inner-rc=$?",
        ],
    )
    .expect("outer bundle");
    let rootfs = b.rootfs();
    let copy = |from: &str, to: &str| {
        let to = rootfs.join(to);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
    };
    // runc and what it links (Debian's is dynamic: libseccomp, libc).
    copy("/usr/sbin/runc", "usr/sbin/runc");
    let ldd = Command::new("ldd")
        .arg("/usr/sbin/runc")
        .output()
        .expect("ldd");
    for lib in text(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let real = std::fs::canonicalize(lib).expect("library");
        copy(&real.display().to_string(), lib.trim_start_matches('/'));
    }
    for dir in [
        "run",
        "inner/rootfs/bin",
        "inner/rootfs/proc",
        "inner/rootfs/dev",
        "inner/rootfs/sys",
        "inner/rootfs/tmp",
    ] {
        std::fs::create_dir_all(rootfs.join(dir)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("inner/rootfs/bin/busybox")).expect("busybox");
    for (link, root) in [
        ("bin/mount", ""),
        ("bin/sh", ""),
        ("bin/sh", "inner/rootfs/"),
    ] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join(root).join(link));
    }
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(rootfs.join("inner"))
        .status()
        .expect("runc spec");
    assert!(st.success());
    let edit_json = |path: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
        f(&mut c);
        std::fs::write(path, serde_json::to_string_pretty(&c).expect("json")).expect("write");
    };
    let strip = |c: &mut serde_json::Value| {
        // A nested proc or sysfs mount needs the outer ones fully visible.
        if let Some(l) = c["linux"].as_object_mut() {
            l.remove("maskedPaths");
            l.remove("readonlyPaths");
        }
        c["root"]["readonly"] = serde_json::json!(false);
    };
    edit_json(&rootfs.join("inner/config.json"), &|c| {
        strip(c);
        c["process"]["terminal"] = serde_json::json!(false);
        c["process"]["args"] = serde_json::json!(["/bin/busybox", "sh", "-c", INNER]);
        // The inner runc (root in the outer user namespace) uses its rootless cgroup manager,
        // which filters devices only when it is given a cgroup path.
        c["linux"]["cgroupsPath"] = serde_json::json!("/inner");
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["destination"] != "/sys" && m["destination"] != "/sys/fs/cgroup");
            m.push(serde_json::json!({"destination": "/dev/testdev", "type": "bind", "source": "/dev/testdev", "options": ["bind"]}));
        }
    });
    let node = b.dir.join("testdev");
    let path = std::ffi::CString::new(node.display().to_string()).expect("path");
    // SAFETY: a NUL-terminated path and plain integers.
    let r = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 229)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        node.display(),
        std::io::Error::last_os_error()
    );
    std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    b.user_namespace().expect("user namespace");
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_SYS_RESOURCE",
        "CAP_DAC_READ_SEARCH",
        "CAP_BPF",
    ];
    let node = node.display().to_string();
    b.edit(|c| {
        strip(c);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = serde_json::json!(caps);
        }
        c["process"]["noNewPrivileges"] = serde_json::json!(false);
        if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
            ns.push(serde_json::json!({"type": "cgroup"}));
        }
        c["linux"]["cgroupsPath"] = serde_json::json!(format!("/{cgroup}"));
        if let Some(d) = c["linux"]["resources"]["devices"].as_array_mut() {
            d.push(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
        }
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["destination"] != "/sys/fs/cgroup");
            for m in m.iter_mut() {
                if m["destination"] == "/sys" {
                    if let Some(o) = m["options"].as_array_mut() {
                        o.retain(|o| o != "ro");
                    }
                }
            }
            m.push(serde_json::json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}));
            m.push(serde_json::json!({"destination": "/dev/testdev", "type": "bind", "source": node, "options": ["bind"]}));
        }
    })
    .expect("outer config");
    let o = Command::new("chown")
        .arg("-R")
        .arg(format!("{USERNS_HOST_ID}:{USERNS_HOST_ID}"))
        .arg(&rootfs)
        .output()
        .expect("chown");
    assert!(o.status.success(), "chown: {}", text(&o.stderr));
    b
}

/// The outer container, run to completion in its delegated cgroup (recreated: runc removes a
/// container's cgroup when it ends); `prefix` runs before runc (e.g. `auditor learn … --`).
fn run_nested(
    b: &integration::runtimes::Bundle,
    cgroup: &str,
    prefix: &[&str],
) -> (String, Cgroup) {
    use integration::runtimes::USERNS_HOST_ID;
    let cg = Cgroup::named(cgroup, false);
    for e in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        std::os::unix::fs::chown(cg.0.join(e), Some(USERNS_HOST_ID), Some(USERNS_HOST_ID))
            .expect("delegate the cgroup");
    }
    let argv = b.run_command();
    let mut cmd = Command::new(prefix.first().copied().unwrap_or(argv[0].as_str()));
    if prefix.is_empty() {
        cmd.args(&argv[1..]);
    } else {
        cmd.args(&prefix[1..]).args(&argv);
    }
    let o = integration::run_with_timeout(&mut cmd, std::time::Duration::from_secs(120));
    assert!(o.status.success(), "{}", integration::describe(&o));
    (text(&o.stdout), cg)
}

/// The issue's nested runtime: inside a user-namespaced runc container with a delegated
/// cgroup v2 subtree, a real `runc run` of an inner container. Learned without auditor (the
/// kernel refuses runc's bpf calls, and runc starts the inner container with no device filter:
/// the denied device opens), then run under the generated policy through `auditor agent`:
/// the inner container starts, and its device rules hold (/dev/testdev, not in its rules,
/// is refused; /dev/zero opens).
#[test]
fn nested_runc_filters_its_inner_containers_devices_under_the_learned_policy() {
    use integration::runtimes::{clear_stale, Runtime};
    let test = "nested_runc_filters_its_inner_containers_devices_under_the_learned_policy";
    if !require_root(test) || integration::require_tool(test, "runc").is_none() {
        return;
    }
    clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("nested-runc");
    let cgroup = unique_name(PREFIX);
    let b = nested_bundle(&cgroup);

    let obs = s.path("obs.json");
    let obs_arg = obs.display().to_string();
    let (out, cg) = run_nested(
        &b,
        &cgroup,
        &[
            &auditor_bin().display().to_string(),
            "learn",
            "--no-progress",
            "-o",
            &obs_arg,
            "--",
        ],
    );
    drop(cg);
    assert!(out.contains("inner-rc=0"), "{out}");
    // No auditor: runc gives up on the device filter, the device opens.
    assert!(out.contains("testdev=open"), "{out}");

    let native = s.path("policies/nested.toml");
    let profile = s.path("profile.json");
    for (format, to) in [("native", &native), ("oci", &profile)] {
        let o = Command::new(auditor_bin())
            .arg("generate")
            .arg(&obs)
            .args(["--format", format, "--listener"])
            .arg(s.path("agent.sock"))
            .args(["--listener-metadata", "nested", "-o"])
            .arg(to)
            .output()
            .expect("generate");
        assert!(o.status.success(), "generate {format}: {}", text(&o.stderr));
    }
    let policy = std::fs::read_to_string(&native).expect("policy");
    assert!(policy.contains("emulate-bpf-devices"), "{policy}");
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    b.set_seccomp(&profile).expect("seccomp");

    let agent = integration::agent::Agent::oci(&s);
    let (out, _cg) = run_nested(&b, &cgroup, &[]);
    assert!(
        out.contains("inner-rc=0"),
        "{out}\nagent: {}",
        agent.log_text()
    );
    assert!(
        out.contains("testdev=denied"),
        "{out}\nagent: {}",
        agent.log_text()
    );
    assert!(out.contains("zero=open"), "{out}");
    let records = agent.wait_records(|r| {
        r.iter().any(|r| {
            r["syscall"] == "bpf"
                && r["decoded"]["cmd"] == "BPF_PROG_ATTACH"
                && r["decision"] == "emulated"
        })
    });
    assert!(
        records.iter().any(|r| r["container"] == b.id
            && r["decoded"]["cmd"] == "BPF_PROG_ATTACH"
            && r["decision"] == "emulated"
            && r["decoded"]["flags_used"] == "0x2"),
        "{records:#?}"
    );
}
