//! `auditor enforce` with the `emulate-setxattr` and `sysinfo` handlers against the real
//! kernel: trusted.overlay attributes set from an unprivileged container, and sysinfo answered
//! with the workload's cgroup memory limit.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{
    audit_records as records, auditor_bin, enforce, require_root, text, unique_name, workload,
    Scratch, ALLOW_ALL_POLICY, CONTAINER_ROOT,
};

const SETXATTR_NOTIFY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["setxattr", "lsetxattr", "fsetxattr"]
action = "notify"
handler = "emulate-setxattr"
comment = "overlayfs attributes only (the default prefixes: trusted.overlay.)"
"#;

/// An attribute of a host file, read from the host.
fn host_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt as _;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated path and name; getxattr writes at most buf.len() bytes into buf.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(r).ok()?;
    buf.truncate(len);
    Some(buf)
}

#[test]
fn trusted_overlay_xattrs_in_a_user_namespace_need_the_notify_rule() {
    if !require_root("trusted_overlay_xattrs_in_a_user_namespace_need_the_notify_rule") {
        return;
    }
    let s = Scratch::for_container("enforce-setxattr");
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let with = s.write("with.toml", SETXATTR_NOTIFY);
    let log = s.path("audit.jsonl");
    // Directories the container's root owns, a file it owns, and one host root owns (the
    // container could not write it, so no trusted.* attribute may go there either).
    for d in ["upper", "other", "fset"] {
        let p = s.path(d);
        std::fs::create_dir(&p).expect("mkdir");
        std::os::unix::fs::chown(&p, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    }
    let file = s.write("file", "x");
    std::os::unix::fs::chown(&file, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    let hosts = s.path("hosts");
    std::fs::create_dir(&hosts).expect("mkdir");
    let try_ = workload("setxattr_try");

    // The kernel refuses trusted.* to anyone without CAP_SYS_ADMIN in the initial namespace.
    let o = enforce(
        &["--policy", &without.display().to_string(), "--userns"],
        &[
            &try_,
            "set",
            &s.path("upper").display().to_string(),
            "trusted.overlay.opaque",
            "y",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("trusted.overlay.opaque=EPERM"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(host_xattr(&s.path("upper"), "trusted.overlay.opaque"), None);

    let script = format!(
        "{t} set {d}/upper trusted.overlay.opaque y; \
         {t} set {d}/other trusted.other z; \
         {t} fset {d}/file trusted.overlay.origin o; \
         {t} set {d}/hosts trusted.overlay.opaque y; \
         cd {d} && {t} lset upper trusted.overlay.redirect r",
        t = try_,
        d = s.0.display()
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
    assert!(out.contains("trusted.overlay.opaque=0"), "{out}");
    assert!(out.contains("trusted.other=EPERM"), "{out}");
    assert!(out.contains("trusted.overlay.origin=0"), "{out}");
    assert!(out.contains("trusted.overlay.opaque=EACCES"), "{out}");
    assert!(out.contains("trusted.overlay.redirect=0"), "{out}");
    assert_eq!(
        host_xattr(&s.path("upper"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        host_xattr(&s.path("upper"), "trusted.overlay.redirect").as_deref(),
        Some(&b"r"[..])
    );
    assert_eq!(
        host_xattr(&file, "trusted.overlay.origin").as_deref(),
        Some(&b"o"[..])
    );
    assert_eq!(host_xattr(&s.path("other"), "trusted.other"), None);
    assert_eq!(host_xattr(&hosts, "trusted.overlay.opaque"), None);
    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "setxattr"
            && r["decision"] == "emulated"
            && r["decoded"]["name"] == "trusted.overlay.opaque"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["decision"] == "denied"
            && r["result"] == "-EPERM"
            && r["decoded"]["name"] == "trusted.other"),
        "{recs:#?}"
    );
}

/// A v1 memory cgroup made for one test, removed on drop (after its processes have exited).
struct MemoryCgroup(PathBuf);

const MEMORY_V1: &str = "/sys/fs/cgroup/memory";
const CGROUP_PREFIX: &str = "auditor-test-sysinfo-";

impl MemoryCgroup {
    /// None when the host has no v1 memory hierarchy.
    fn new(limit: u64) -> Option<MemoryCgroup> {
        let root = Path::new(MEMORY_V1);
        if !root.join("cgroup.procs").exists() {
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
        std::fs::create_dir(&dir).expect("create memory cgroup");
        let cg = MemoryCgroup(dir);
        std::fs::write(cg.0.join("memory.limit_in_bytes"), limit.to_string())
            .expect("set memory limit");
        Some(cg)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

const SYSINFO_NOTIFY: &str = r#"version = 1
default_action = "allow"

[[rule]]
name = "sysinfo"
action = "notify"
handler = "sysinfo"
comment = "report the cgroup's memory limit"
"#;

#[test]
fn sysinfo_reports_the_cgroup_memory_limit() {
    if !require_root("sysinfo_reports_the_cgroup_memory_limit") {
        return;
    }
    const LIMIT: u64 = 256 << 20;
    let Some(cg) = MemoryCgroup::new(LIMIT) else {
        assert!(
            !integration::in_ci(),
            "no cgroup v1 memory hierarchy at {MEMORY_V1}, and CI=true forbids skipping"
        );
        eprintln!("SKIP sysinfo_reports_the_cgroup_memory_limit: no cgroup v1 memory hierarchy at {MEMORY_V1}");
        return;
    };
    let s = Scratch::new("enforce-sysinfo");
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let with = s.write("with.toml", SYSINFO_NOTIFY);
    let show = workload("sysinfo_show");
    // auditor (and so the workload) joins the cgroup before it starts.
    let run = |policy: &Path| {
        let o = Command::new("sh")
            .args([
                "-c",
                "echo $$ > \"$1\"/cgroup.procs && exec \"$2\" enforce --policy \"$3\" -- \"$4\"",
                "sh",
            ])
            .arg(&cg.0)
            .arg(auditor_bin())
            .arg(policy)
            .arg(&show)
            .output()
            .expect("run auditor");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("totalram="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no totalram in {out}"))
    };
    // SAFETY: an all-zero sysinfo is a valid value; sysinfo fills it.
    let host = unsafe {
        let mut si: libc::sysinfo = std::mem::zeroed();
        assert_eq!(libc::sysinfo(&mut si), 0);
        si.totalram * u64::from(si.mem_unit)
    };
    assert_eq!(run(&with), LIMIT);
    assert_eq!(run(&without), host);
}
