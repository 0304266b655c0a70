//! Broker hardening: attacks a hostile workload makes for real against `auditor enforce`.

use std::path::Path;
use std::process::Command;

use integration::{
    audit_records as records, auditor_bin, enforce, require_root, require_tool, workload, Scratch,
};

use integration::loopdev::{attach_new, run_tool, LoopDevice};

/// The `NAME=RET errno=E` lines of the bypass_calls workload.
fn errnos(out: &str) -> Vec<(String, i32)> {
    out.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            let e = rest.split("errno=").nth(1)?.trim().parse().ok()?;
            Some((name.to_owned(), e))
        })
        .collect()
}

const BYPASS: [&str; 12] = [
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
];

/// A policy that emulates mount and setxattr, allows everything else, and even says so of the
/// new mount API explicitly: the filter still refuses every call that would bypass the
/// handlers (ENOSYS, so that libmount and libc fall back to the calls the handlers judge).
#[test]
fn calls_that_bypass_the_mount_and_setxattr_handlers_are_refused_whatever_the_policy_says() {
    if !require_root(
        "calls_that_bypass_the_mount_and_setxattr_handlers_are_refused_whatever_the_policy_says",
    ) {
        return;
    }
    let s = Scratch::new("harden-bypass");
    let policy = s.write(
        "policy.toml",
        r#"version = 1
default_action = "allow"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = { fstypes = ["ext4"] }

[[rule]]
names = ["setxattr", "lsetxattr", "fsetxattr"]
action = "notify"
handler = "emulate-setxattr"

[[rule]]
names = ["fsopen", "mount_setattr", "move_mount"]
action = "allow"
comment = "a policy file cannot let these bypass the handlers"
"#,
    );
    let o = enforce(
        &["--policy", &policy.display().to_string()],
        &[&workload("bypass_calls")],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = errnos(&out);
    assert_eq!(got.len(), BYPASS.len(), "{out}");
    for (name, e) in &got {
        assert_eq!(*e, libc::ENOSYS, "{name} reached the kernel:\n{out}");
    }

    // The same calls without those handlers are the kernel's to judge (EBADF, EFAULT, EINVAL):
    // the workload's junk arguments never get ENOSYS from this kernel.
    let plain = s.write("plain.toml", "version = 1\ndefault_action = \"allow\"\n");
    let o = enforce(
        &["--policy", &plain.display().to_string()],
        &[&workload("bypass_calls")],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let got = errnos(&out);
    assert_eq!(got.len(), BYPASS.len(), "{out}");
    for (name, e) in &got {
        assert_ne!(
            *e,
            libc::ENOSYS,
            "{name}: this kernel lacks it, the test proves nothing:\n{out}"
        );
    }
}

/// The OCI export carries the same refusals for the runtime to build, and says which of them
/// a runtime built with this host's libseccomp cannot name.
#[test]
fn exported_profiles_carry_the_forced_refusals() {
    let s = Scratch::new("harden-export");
    let policy = s.write(
        "policy.toml",
        r#"version = 1
default_action = "allow"
listener_path = "/run/auditor/agent.sock"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = { fstypes = ["ext4"] }
"#,
    );
    let out = s.0.join("profile.json");
    let o = Command::new(auditor_bin())
        .args(["merge", "--format", "oci", "--lossy", "-o"])
        .arg(&out)
        .arg(&policy)
        .arg(&policy)
        .output()
        .expect("run auditor merge");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "merge failed: {err}");
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("profile")).expect("json");
    let refused: Vec<&str> = profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ERRNO" && r["errnoRet"] == libc::ENOSYS)
        .flat_map(|r| {
            r["names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
        })
        .collect();
    for name in [
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "open_tree_attr",
    ] {
        assert!(refused.contains(&name), "{name} not refused: {profile:#}");
    }
    assert!(
        err.contains("refused with ENOSYS whatever the policy says"),
        "{err}"
    );
    assert!(
        err.contains("cannot name") && err.contains("open_tree_attr"),
        "{err}"
    );
}

/// A policy that emulates mount of `fstype` from `sources`, with extra parameters.
fn mount_policy(fstype: &str, sources: &[&LoopDevice], extra: &str) -> String {
    let sources: Vec<String> = sources.iter().map(|d| format!("\"{}\"", d.0)).collect();
    format!(
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nname = \"mount\"\naction = \"notify\"\nhandler = \"emulate-mount\"\nparams = {{ fstypes = [\"{fstype}\"], sources = [{}]{extra} }}\n",
        sources.join(", ")
    )
}

/// `mount_fs SRC DIR FSTYPE DATA` in an unprivileged container under `policy`; its output.
fn mount_in_userns(
    policy: &Path,
    log: &Path,
    src: &str,
    dir: &Path,
    fstype: &str,
    data: &str,
) -> String {
    mount_in_userns_flags(policy, log, src, dir, fstype, data, 0)
}

/// [`mount_in_userns`] with mount flags.
fn mount_in_userns_flags(
    policy: &Path,
    log: &Path,
    src: &str,
    dir: &Path,
    fstype: &str,
    data: &str,
    flags: u64,
) -> String {
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--userns",
            "--audit-log",
            &log.display().to_string(),
        ],
        &[
            &workload("mount_fs"),
            src,
            &dir.display().to_string(),
            fstype,
            data,
            &flags.to_string(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn mount_ready(test: &str, mkfs: &str) -> bool {
    require_root(test)
        && [mkfs, "losetup"]
            .iter()
            .all(|t| require_tool(test, t).is_some())
}

/// xfs with its log on a second device: a container that may mount the data device asks for
/// `logdev=` naming a host block device. Before auditor checked options, the helper passed it
/// on and the kernel opened that host device (the mount succeeded); now it is refused before
/// any option reaches the kernel, named in the audit record, and the log device is untouched.
#[test]
fn xfs_logdev_naming_a_host_device_is_refused_and_the_device_untouched() {
    let test = "xfs_logdev_naming_a_host_device_is_refused_and_the_device_untouched";
    if !mount_ready(test, "mkfs.xfs") {
        return;
    }
    let s = Scratch::new("harden-xfs");
    let data = attach_new(&s.0.join("auditor-harden-xfs-data.img"), 320 << 20);
    let logdev = attach_new(&s.0.join("auditor-harden-xfs-log.img"), 64 << 20);
    run_tool(Command::new("mkfs.xfs").args([
        "-q",
        "-f",
        "-l",
        &format!("logdev={}", logdev.0),
        &data.0,
    ]));
    let plain = attach_new(&s.0.join("auditor-harden-xfs-plain.img"), 320 << 20);
    run_tool(Command::new("mkfs.xfs").args(["-q", "-f", &plain.0]));
    let before = std::fs::read(s.0.join("auditor-harden-xfs-log.img")).expect("log image");
    let mnt = s.0.join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let policy = s.write("policy.toml", &mount_policy("xfs", &[&data, &plain], ""));
    let log = s.0.join("audit.jsonl");

    // The absolute path and the one through the helper's working directory (/proc) of old.
    for logpath in [logdev.0.clone(), format!("1/root{}", logdev.0)] {
        let out = mount_in_userns(
            &policy,
            &log,
            &data.0,
            &mnt,
            "xfs",
            &format!("logdev={logpath}"),
        );
        assert!(
            out.contains(&format!("mount=-1 errno={}\n", libc::EPERM)),
            "logdev={logpath}:\n{out}"
        );
    }
    let refused: Vec<serde_json::Value> = records(&log)
        .into_iter()
        .filter(|r| r["syscall"] == "mount" && r["decision"] == "denied")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    for r in &refused {
        let why = r["decoded"]["why"].as_str().unwrap_or_default();
        assert!(why.contains("`logdev`"), "{r:#}");
    }
    let after = std::fs::read(s.0.join("auditor-harden-xfs-log.img")).expect("log image");
    assert!(before == after, "the host's log device was written");

    // The allowed device, with allowed options, still mounts (nosuid, nodev forced).
    // The atime flag the caller asked for is kept.
    let out = mount_in_userns_flags(
        &policy,
        &log,
        &plain.0,
        &mnt,
        "xfs",
        "inode64",
        libc::MS_NOATIME,
    );
    assert!(out.contains("mount=0 errno=0\n"), "{out}");
    let opts = out
        .lines()
        .find_map(|l| l.strip_prefix("opts="))
        .unwrap_or_default();
    for o in ["nosuid", "nodev", "noatime"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing: {out}");
    }
    assert!(out.contains("umount=0"), "{out}");
}

/// btrfs pulls in every registered device with the image's fsid: refused unless the rule
/// says `allow_btrfs = true`; `device=` is refused even then.
#[test]
fn btrfs_needs_an_explicit_opt_in_and_never_takes_device_options() {
    let test = "btrfs_needs_an_explicit_opt_in_and_never_takes_device_options";
    if !mount_ready(test, "mkfs.btrfs") {
        return;
    }
    let s = Scratch::new("harden-btrfs");
    let dev = attach_new(&s.0.join("auditor-harden-btrfs.img"), 256 << 20);
    run_tool(Command::new("mkfs.btrfs").args(["-q", "-f", &dev.0]));
    let other = attach_new(&s.0.join("auditor-harden-btrfs-other.img"), 16 << 20);
    let mnt = s.0.join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let log = s.0.join("audit.jsonl");

    let without = s.write("without.toml", &mount_policy("btrfs", &[&dev], ""));
    let out = mount_in_userns(&without, &log, &dev.0, &mnt, "btrfs", "");
    assert!(
        out.contains(&format!("mount=-1 errno={}\n", libc::EPERM)),
        "{out}"
    );
    assert!(
        records(&log).iter().any(|r| r["decoded"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("allow_btrfs"))),
        "{:#?}",
        records(&log)
    );

    let with = s.write(
        "with.toml",
        &mount_policy("btrfs", &[&dev], ", allow_btrfs = true"),
    );
    let out = mount_in_userns(
        &with,
        &log,
        &dev.0,
        &mnt,
        "btrfs",
        &format!("device={}", other.0),
    );
    assert!(
        out.contains(&format!("mount=-1 errno={}\n", libc::EPERM)),
        "{out}"
    );
    let out = mount_in_userns(&with, &log, &dev.0, &mnt, "btrfs", "compress=zstd");
    assert!(out.contains("mount=0 errno=0\n"), "{out}");
    assert!(out.contains("umount=0"), "{out}");
}

/// sysinfo answered by the broker writes the caller's memory through /proc/PID/mem, which
/// ignores page protections: a caller pointing it at read-only memory must get EFAULT, as the
/// kernel gives, and that memory must stay as it was (before, auditor wrote it and answered 0).
#[test]
fn sysinfo_never_writes_where_the_caller_could_not() {
    if !require_root("sysinfo_never_writes_where_the_caller_could_not") {
        return;
    }
    let s = Scratch::new("harden-sysinfo");
    let policy = s.write(
        "policy.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nname = \"sysinfo\"\naction = \"notify\"\nhandler = \"sysinfo\"\n",
    );
    let log = s.0.join("audit.jsonl");
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--audit-log",
            &log.display().to_string(),
        ],
        &[&workload("sysinfo_ro")],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for name in ["rodata_page", "literal", "null"] {
        assert!(
            out.contains(&format!("{name}=-1 errno={}\n", libc::EFAULT)),
            "{name}:\n{out}"
        );
    }
    assert!(out.contains("untouched=1 literal_ok=1"), "{out}");
    // The broker answered them (the records say so), it is not the kernel's own EFAULT.
    let answered = records(&log)
        .iter()
        .filter(|r| r["syscall"] == "sysinfo" && r["result"] == "-EFAULT")
        .count();
    assert_eq!(answered, 3, "{:#?}", records(&log));
}

/// emulate-setxattr acts on an O_PATH handle of the file, never opening it (opening a device
/// or a FIFO has effects of its own): inotify sees the attribute change and no open.
#[test]
fn setxattr_never_opens_its_target() {
    if !require_root("setxattr_never_opens_its_target") {
        return;
    }
    const CONTAINER_ROOT: u32 = 100_000;
    let s = Scratch::new("harden-setxattr");
    std::os::unix::fs::chown(&s.0, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    // A FIFO: opening it read-only and non-blocking would be seen by its writers.
    let fifo = s.0.join("fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: mkfifo with a live C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::chown(&fifo, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    let policy = s.write(
        "policy.toml",
        "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"setxattr\", \"lsetxattr\", \"fsetxattr\"]\naction = \"notify\"\nhandler = \"emulate-setxattr\"\n",
    );
    // SAFETY: inotify calls with a live C string; the fd is closed below.
    let ino = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(ino >= 0);
    // SAFETY: as above.
    let w = unsafe { libc::inotify_add_watch(ino, c.as_ptr(), libc::IN_OPEN | libc::IN_ATTRIB) };
    assert!(w >= 0);
    let o = enforce(
        &["--policy", &policy.display().to_string(), "--userns"],
        &[
            &workload("setxattr_try"),
            "set",
            &fifo.display().to_string(),
            "trusted.overlay.opaque",
            "y",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut buf = [0u8; 4096];
    // SAFETY: read into a live buffer of its length.
    let n = unsafe { libc::read(ino, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: our own fd, closed once.
    unsafe { libc::close(ino) };
    assert!(
        out.contains("trusted.overlay.opaque=0"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut masks = Vec::new();
    let mut at = 0usize;
    while n > 0 && at + 16 <= n as usize {
        let mask = u32::from_ne_bytes([buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]]);
        let len =
            u32::from_ne_bytes([buf[at + 12], buf[at + 13], buf[at + 14], buf[at + 15]]) as usize;
        masks.push(mask);
        at += 16 + len;
    }
    assert!(
        masks.iter().any(|m| m & libc::IN_ATTRIB != 0),
        "no attribute change seen: {masks:x?}"
    );
    assert!(
        !masks.iter().any(|m| m & libc::IN_OPEN != 0),
        "the FIFO was opened: {masks:x?}"
    );
}
