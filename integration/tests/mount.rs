//! `auditor enforce` and the `emulate-mount` handler against the real kernel: ext4 images on
//! loop devices mounted from inside an unprivileged container, only from the allowed source,
//! and idmapped through the container's user namespace with `shift`.

use std::path::Path;
use std::process::Command;

use integration::{
    audit_records as records, enforce, require_root, text, workload, Scratch, ALLOW_ALL_POLICY,
    CONTAINER_ROOT,
};

use integration::loopdev::{clear_stale_loop_devices, run_tool, LoopDevice};

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
    let s = Scratch::for_container("enforce-ext4");
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
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
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
    let s = Scratch::for_container("enforce-ext4shift");
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
