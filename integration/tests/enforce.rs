//! `auditor enforce` against the real kernel: the LXD story (mknod inside an unprivileged
//! container, refused by the kernel, emulated by the broker), a learn → generate → enforce
//! round trip with an audit log, complain mode, and the broker's faults (auditor killed while the
//! workload loops on a notified call; the workload killed while auditor serves it).

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use integration::{audit_records as records, auditor_bin, require_root, unique_name, workload};

/// Host uid/gid of root inside `--userns` (auditor's documented default range).
const CONTAINER_ROOT: u32 = 100_000;

#[path = "support/loopdev.rs"]
mod loopdev;
use loopdev::{clear_stale_loop_devices, run_tool, LoopDevice};

/// A scratch directory under /tmp (not nodev, so device nodes in it work), removed on drop,
/// optionally owned by the container's root so the workload can write to it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str, container_owned: bool) -> Scratch {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create scratch dir");
        if container_owned {
            std::os::unix::fs::chown(&dir, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT))
                .expect("chown scratch dir");
        }
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process killed (and reaped) on drop, so a failing test leaves nothing running.
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

fn enforce(args: &[&str], cmd: &[&str]) -> Output {
    Command::new(auditor_bin())
        .arg("enforce")
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("run auditor")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const NO_NOTIFY: &str = r#"version = 1
default_action = "allow"
"#;

const MKNOD_NOTIFY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["mknod", "mknodat"]
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
comment = "/dev/null only"
"#;

#[test]
fn mknod_in_a_user_namespace_needs_the_notify_rule() {
    if !require_root("mknod_in_a_user_namespace_needs_the_notify_rule") {
        return;
    }
    let s = Scratch::new("enforce-mknod", true);
    let dir = s.0.display().to_string();
    let without = s.write("without.toml", NO_NOTIFY);
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
    let s = Scratch::new("enforce-roundtrip", false);
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

#[test]
fn complain_mode_records_and_allows() {
    if !require_root("complain_mode_records_and_allows") {
        return;
    }
    let s = Scratch::new("enforce-complain", false);
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

/// Start `auditor enforce` with the mknod policy around `mknod_loop`; returns auditor, the
/// workload's pid and the scratch dir.
fn start_loop(prefix: &str) -> (Reaped, KillOnDrop, Scratch) {
    let s = Scratch::new(prefix, false);
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
    let auditor = Reaped(Some(child));
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
    if let Some(c) = &mut auditor.0 {
        c.kill().expect("kill auditor");
        let _ = c.wait();
    }
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
    let Some(c) = &mut auditor.0 else { return };
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
    auditor.0 = None;
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let s = Scratch::new("enforce-badinput", false);
    let good = s.write("good.toml", NO_NOTIFY).display().to_string();
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
    let s = Scratch::new("enforce-ownlistener", false);
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
const EXT4_IMAGE: &str = "auditor-enforce-ext4.img";
const EXT4_SHIFT_IMAGE: &str = "auditor-enforce-ext4shift.img";

/// Root, and the tools the ext4 mount tests use.
fn ext4_ready(test: &str) -> bool {
    require_root(test)
        && ["mkfs.ext4", "losetup", "debugfs"]
            .iter()
            .all(|t| integration::require_tool(test, t).is_some())
}

/// A 16 MiB ext4 image in `s` (root directory owned by `root_owner`), attached to a loop device.
fn ext4_on_loop(s: &Scratch, name: &str, root_owner: u32) -> (std::path::PathBuf, LoopDevice) {
    clear_stale_loop_devices(name);
    let image = s.path(name);
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(16 << 20))
        .expect("image file");
    run_tool(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-E",
                &format!("root_owner={root_owner}:{root_owner}"),
            ])
            .arg(&image),
    );
    let dev = LoopDevice(
        run_tool(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&image),
        )
        .trim()
        .to_owned(),
    );
    (image, dev)
}

/// The owner debugfs reports for `path` in `image`.
fn debugfs_owner(image: &Path, path: &str) -> Option<u32> {
    let stat = run_tool(
        Command::new("debugfs")
            .args(["-R", &format!("stat {path}")])
            .arg(image),
    );
    stat.split("User:")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn ext4_mounts_in_a_user_namespace_only_from_the_allowed_source() {
    let test = "ext4_mounts_in_a_user_namespace_only_from_the_allowed_source";
    if !ext4_ready(test) {
        return;
    }
    let s = Scratch::new("enforce-ext4", true);
    // The root directory belongs to the container's root, so that it can write there.
    let (image, dev) = ext4_on_loop(&s, EXT4_IMAGE, CONTAINER_ROOT);
    let mnt = s.path("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    // A symlink to the device: sources are matched by device number, not by the path string.
    let alias = s.path("alias");
    std::os::unix::fs::symlink(&dev.0, &alias).expect("alias");
    let policy = |sources: &str| {
        format!(
            r#"version = 1
default_action = "allow"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = {{ fstypes = ["ext4"], sources = [{sources}] }}

[[rule]]
name = "fsopen"
action = "errno"
errno = "ENOSYS"
comment = "so that libmount falls back to mount(2)"

[[rule]]
name = "mount_setattr"
action = "errno"
errno = "EPERM"
comment = "would clear nosuid/nodev on the emulated mount"
"#
        )
    };
    let allowed = s.write("allowed.toml", &policy(&format!("\"{}\"", dev.0)));
    let other = s.write("other.toml", &policy("\"/dev/null\""));
    let without = s.write("without.toml", NO_NOTIFY);
    let log = s.path("audit.jsonl");
    let run = |policy: &Path, source: &Path| {
        let o = enforce(
            &[
                "--policy",
                &policy.display().to_string(),
                "--userns",
                "--audit-log",
                &log.display().to_string(),
            ],
            &[
                &workload("mount_ext4"),
                &source.display().to_string(),
                &mnt.display().to_string(),
            ],
        );
        let out = text(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "stdout:\n{out}\nstderr:\n{}",
            text(&o.stderr)
        );
        out
    };

    // The kernel refuses ext4 in a user namespace; so does a policy whose sources do not hold
    // this device.
    let eperm = format!("mount=-1 errno={}\n", libc::EPERM);
    let out = run(&without, Path::new(&dev.0));
    assert!(out.contains(&eperm), "{out}");
    let out = run(&other, Path::new(&dev.0));
    assert!(out.contains(&eperm), "{out}");
    assert!(
        out.contains(&format!("fsopen=-1 errno={}\n", libc::ENOSYS)),
        "{out}"
    );

    // Allowed: mounted nosuid,nodev, written, unmounted from inside.
    let out = run(&allowed, &alias);
    assert!(out.contains("mount=0 errno=0\n"), "{out}");
    assert!(out.contains("write=1\n"), "{out}");
    let opts = out
        .lines()
        .find_map(|l| l.strip_prefix("opts="))
        .unwrap_or_default();
    assert!(
        opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
        "{out}"
    );
    assert!(out.contains("umount=0 errno=0\n"), "{out}");
    // Nothing leaked to the host's mount table.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!host_mounts.contains(&mnt.display().to_string()));

    // The file is on the image, owned by the container's root, readable from the host.
    drop(dev);
    let cat = run_tool(
        Command::new("debugfs")
            .args(["-R", "cat /hello"])
            .arg(&image),
    );
    assert!(cat.contains("written inside the container"), "{cat}");
    assert_eq!(debugfs_owner(&image, "/hello"), Some(CONTAINER_ROOT));

    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "mount"
            && r["decision"] == "emulated"
            && r["result"] == "0"
            && r["decoded"]["fstype"] == "ext4"),
        "{recs:#?}"
    );
    assert!(
        recs.iter()
            .any(|r| r["syscall"] == "mount" && r["result"] == "-EPERM"),
        "{recs:#?}"
    );
}

#[test]
fn ext4_mount_with_shift_is_idmapped_through_the_containers_user_namespace() {
    let test = "ext4_mount_with_shift_is_idmapped_through_the_containers_user_namespace";
    if !ext4_ready(test) {
        return;
    }
    let s = Scratch::new("enforce-ext4shift", true);
    // An image as a host makes it: everything owned by (on-disk) root.
    let (image, dev) = ext4_on_loop(&s, EXT4_SHIFT_IMAGE, 0);
    let mnt = s.path("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let policy = |shift: bool| {
        s.write(
            &format!("shift-{shift}.toml"),
            &format!(
                r#"version = 1
default_action = "allow"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = {{ fstypes = ["ext4"], sources = ["{}"], shift = {shift} }}

[[rule]]
name = "fsopen"
action = "errno"
errno = "ENOSYS"
"#,
                dev.0
            ),
        )
    };
    let log = s.path("audit.jsonl");
    let run = |policy: &Path| {
        let o = enforce(
            &[
                "--policy",
                &policy.display().to_string(),
                "--userns",
                "--audit-log",
                &log.display().to_string(),
            ],
            &[&workload("mount_ext4"), &dev.0, &mnt.display().to_string()],
        );
        let out = text(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "stdout:\n{out}\nstderr:\n{}",
            text(&o.stderr)
        );
        out
    };
    // Without shift the root directory is host root's, unmapped in the container: mounted,
    // but its root cannot write there.
    let out = run(&policy(false));
    assert!(out.contains("mount=0 errno=0\n"), "{out}");
    assert!(out.contains("write=0\n"), "{out}");
    assert!(out.contains("umount=0 errno=0\n"), "{out}");
    // With shift: idmapped, still nosuid and nodev; the container's root writes as the file
    // system's root.
    let out = run(&policy(true));
    assert!(out.contains("mount=0 errno=0\n"), "{out}");
    assert!(out.contains("write=1\n"), "{out}");
    let opts: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("opts="))
        .unwrap_or_default()
        .split(',')
        .collect();
    for o in ["nosuid", "nodev", "idmapped"] {
        assert!(opts.contains(&o), "{o} missing: {out}");
    }
    assert!(out.contains("umount=0 errno=0\n"), "{out}");
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!host_mounts.contains(&mnt.display().to_string()));
    drop(dev);
    assert_eq!(
        debugfs_owner(&image, "/hello"),
        Some(0),
        "stored as the file system's root"
    );
    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "mount"
            && r["decision"] == "emulated"
            && r["result"] == "0"
            && r["decoded"]["shift"]
                .as_str()
                .is_some_and(|v| v.contains("idmapped"))),
        "{recs:#?}"
    );
}

#[test]
fn toctou_the_node_created_is_the_path_that_was_copied() {
    if !require_root("toctou_the_node_created_is_the_path_that_was_copied") {
        return;
    }
    // A racing thread rewrites the path buffer while each mknodat is pending. The broker
    // copies the path once: the node created is always the one at the path it recorded (and
    // decided on), never the other one.
    let s = Scratch::new("enforce-toctou", true);
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
    let s = Scratch::new("enforce-fixpoint", true);
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
    let s = Scratch::new("enforce-setxattr", true);
    let without = s.write("without.toml", NO_NOTIFY);
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
        // Left over by a test that was killed: empty by now, remove them.
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(CGROUP_PREFIX) {
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
        eprintln!("skipped: no cgroup v1 memory hierarchy at {MEMORY_V1}");
        return;
    };
    let s = Scratch::new("enforce-sysinfo", false);
    let without = s.write("without.toml", NO_NOTIFY);
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
