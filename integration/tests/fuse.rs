//! emulate-mount through FUSE (`fuse = { ext4 = "fuse2fs" }`): a user-namespaced container
//! (auditor enforce --userns --rootfs) mounts an ext4 image; the image is parsed by fuse2fs from
//! the container's own root file system, started in the container's namespaces as its root,
//! under its policy and with no new privileges — the host kernel never mounts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{
    audit_records as records, enforce, require_root, require_tool, text, workload, Scratch,
    ALLOW_ALL_POLICY, CONTAINER_ROOT,
};

const FUSE_POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["mount"]
action = "notify"
handler = "emulate-mount"
params = { fuse = { ext4 = "fuse2fs", btrfs = "btrfs-fuse-not-installed" } }
"#;

/// A root file system for the container: the workload, fuse2fs and the libraries it links,
/// `/dev/fuse` (10:229, 0666: the container's root is not the host's), an ext4 image holding
/// `hello.txt`, and a mount point.
fn rootfs(s: &Scratch, fuse2fs: &Path) -> PathBuf {
    let root = s.path("rootfs");
    for d in ["proc", "dev", "mnt", "usr/bin"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let copy = |from: &Path, to: &str| {
        let to = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    copy(Path::new(&workload("mount_read")), "mount_read");
    copy(fuse2fs, "usr/bin/fuse2fs");
    let ldd = Command::new("ldd").arg(fuse2fs).output().expect("ldd");
    for lib in text(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        copy(&std::fs::canonicalize(lib).expect("library"), lib);
    }
    let node = std::ffi::CString::new(root.join("dev/fuse").display().to_string()).expect("path");
    // SAFETY: a NUL-terminated path and plain integers.
    let r = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 229)) };
    assert_eq!(r, 0, "mknod /dev/fuse: {}", std::io::Error::last_os_error());
    std::fs::set_permissions(
        root.join("dev/fuse"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    let content = s.path("content");
    std::fs::create_dir_all(&content).expect("mkdir");
    std::fs::write(content.join("hello.txt"), "hello from an ext4 image\n").expect("write");
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&content)
        .arg(root.join("img.ext4"))
        .arg("4M")
        .output()
        .expect("mkfs.ext4");
    assert!(o.status.success(), "mkfs.ext4: {}", text(&o.stderr));
    for p in ["img.ext4", "mnt"] {
        std::os::unix::fs::chown(root.join(p), Some(CONTAINER_ROOT), Some(CONTAINER_ROOT))
            .expect("chown");
    }
    root
}

fn run(root: &Path, policy: &Path, log: &Path, fstype: &str) -> String {
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--userns",
            "--rootfs",
            &root.display().to_string(),
            "--audit-log",
            &log.display().to_string(),
        ],
        &["/mount_read", "/img.ext4", "/mnt", fstype, "hello.txt"],
    );
    let out = text(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{out}\nstderr:\n{}",
        text(&o.stderr)
    );
    out
}

fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Processes whose root is `root` (servers left behind).
fn rooted_in(root: &Path) -> Vec<u32> {
    let root = std::fs::canonicalize(root).expect("root");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r == root))
        .collect()
}

#[test]
fn an_ext4_image_is_mounted_through_fuse2fs_from_the_container_never_by_the_host() {
    let test = "an_ext4_image_is_mounted_through_fuse2fs_from_the_container_never_by_the_host";
    if !require_root(test) {
        return;
    }
    let Some(fuse2fs) = require_tool(test, "fuse2fs") else {
        return;
    };
    let s = Scratch::new("fuse-mount");
    let root = rootfs(&s, &fuse2fs);
    let with = s.write("with.toml", FUSE_POLICY);
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let log = s.path("audit.jsonl");

    // Without the rule the kernel refuses the container an ext4 mount.
    let out = run(&root, &without, &log, "ext4");
    assert_eq!(
        value(&out, "mount"),
        Some(&*format!("-1 errno={}", libc::EPERM)),
        "{out}"
    );

    let out = run(&root, &with, &log, "ext4");
    assert_eq!(
        value(&out, "mount"),
        Some("0 errno=0"),
        "{out}\nrecords: {:#?}",
        records(&log)
    );
    // The container sees a FUSE file system, and reads the image's file through it.
    assert!(
        value(&out, "fstype").is_some_and(|t| t.starts_with("fuse")),
        "{out}"
    );
    assert_eq!(
        value(&out, "content"),
        Some("hello from an ext4 image"),
        "{out}"
    );
    // The server runs as the container's root, with no new privileges and a seccomp filter.
    let server = value(&out, "server").unwrap_or_else(|| panic!("no server line: {out}"));
    assert!(server.starts_with("fuse2fs "), "{out}");
    assert!(server.contains("seccomp=2"), "{out}");
    assert!(server.contains("nnp=1"), "{out}");
    assert!(server.contains("uid=0"), "{out}");
    assert_eq!(value(&out, "umount"), Some("0 errno=0"), "{out}");
    // The host kernel never mounted it: no ext4 from a loop device over the image, and no
    // loop device over it at all.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.lines().any(|l| l.contains(" - ext4 /dev/loop")),
        "{mountinfo}"
    );
    let lo = Command::new("losetup")
        .arg("-j")
        .arg(root.join("img.ext4"))
        .output()
        .expect("losetup");
    assert_eq!(text(&lo.stdout).trim(), "", "a loop device over the image");
    // The server ended with the container.
    let left = (0..100).find_map(|_| {
        let l = rooted_in(&root);
        if l.is_empty() {
            return Some(l);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        None
    });
    assert_eq!(
        left,
        Some(Vec::new()),
        "processes left in the container's root"
    );

    // A type whose FUSE program the container does not have.
    let out = run(&root, &with, &log, "btrfs");
    assert_eq!(
        value(&out, "mount"),
        Some(&*format!("-1 errno={}", libc::ENODEV)),
        "{out}"
    );

    let recs = records(&log);
    let mounts: Vec<&serde_json::Value> = recs.iter().filter(|r| r["syscall"] == "mount").collect();
    assert!(
        mounts.iter().any(|r| r["decision"] == "emulated"
            && r["decoded"]["fuse"] == "fuse2fs"
            && r["result"] == "0"),
        "{mounts:#?}"
    );
    assert!(
        mounts.iter().any(|r| r["decoded"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("btrfs-fuse-not-installed is not in the container"))),
        "{mounts:#?}"
    );
}

/// learn → generate --fuse ext4=fuse2fs → learn --policy → generate --fuse → enforce: the
/// refused ext4 mount is learned, the generated rule serves it through the container's
/// fuse2fs, the second round (under that rule) learns what the workload does with the mounted
/// file system, and the final policy runs it.
#[test]
fn a_learned_ext4_mount_is_served_through_fuse_when_generate_is_asked_to() {
    let test = "a_learned_ext4_mount_is_served_through_fuse_when_generate_is_asked_to";
    if !require_root(test) {
        return;
    }
    let Some(fuse2fs) = require_tool(test, "fuse2fs") else {
        return;
    };
    let s = Scratch::new("fuse-learn");
    let root = rootfs(&s, &fuse2fs);
    let learn = |obs: &Path, policy: Option<&Path>| -> String {
        let mut c = Command::new(integration::auditor_bin());
        c.args(["learn", "--no-progress", "--userns", "--rootfs"])
            .arg(&root)
            .arg("-o")
            .arg(obs);
        if let Some(p) = policy {
            c.arg("--policy").arg(p);
        }
        let o = c
            .args([
                "--",
                "/mount_read",
                "/img.ext4",
                "/mnt",
                "ext4",
                "hello.txt",
            ])
            .output()
            .expect("learn");
        assert!(o.status.success(), "learn: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let generate = |obs: &[&Path], to: &Path| {
        let o = Command::new(integration::auditor_bin())
            .arg("generate")
            .args(obs)
            .args(["--fuse", "ext4=fuse2fs", "-o"])
            .arg(to)
            .output()
            .expect("generate");
        assert!(o.status.success(), "generate: {}", text(&o.stderr));
        let p = std::fs::read_to_string(to).expect("policy");
        assert!(p.contains(r#"fuse = { ext4 = "fuse2fs" }"#), "{p}");
        p
    };
    let (first, second) = (s.path("first.json"), s.path("second.json"));
    let (p1, p2) = (s.path("p1.toml"), s.path("p2.toml"));
    let out = learn(&first, None);
    assert_eq!(
        value(&out, "mount"),
        Some(&*format!("-1 errno={}", libc::EPERM)),
        "{out}"
    );
    generate(&[&first], &p1);
    let out = learn(&second, Some(&p1));
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}");
    let p = generate(&[&first, &second], &p2);
    let out = run(&root, &p2, &s.path("audit.jsonl"), "ext4");
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}\n{p}");
    assert_eq!(
        value(&out, "content"),
        Some("hello from an ext4 image"),
        "{out}\n{p}"
    );
    assert_eq!(value(&out, "umount"), Some("0 errno=0"), "{out}\n{p}");
}

/// The same mount in a real user-namespaced runc container whose profile hands its listener
/// to `auditor agent`: the server joins runc's cgroups and namespaces, and ends with the
/// container.
#[test]
fn runc_mounts_an_ext4_image_through_fuse_via_the_agent() {
    use integration::runtimes::{clear_stale, Bundle, Runtime, USERNS_HOST_ID};
    let test = "runc_mounts_an_ext4_image_through_fuse_via_the_agent";
    if !require_root(test) || require_tool(test, "runc").is_none() {
        return;
    }
    let Some(fuse2fs) = require_tool(test, "fuse2fs") else {
        return;
    };
    clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("agent-fuse");
    std::fs::write(s.path("policies/fuse.toml"), FUSE_POLICY).expect("policy");
    let b = Bundle::busybox(
        Runtime::Runc,
        &["/mount_read", "/img.ext4", "/mnt", "ext4", "hello.txt"],
    )
    .expect("bundle");
    // The container's root: the workload, fuse2fs and its libraries, the image.
    let built = rootfs(&s, &fuse2fs);
    let o = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", built.display()))
        .arg(b.rootfs())
        .output()
        .expect("cp");
    assert!(o.status.success(), "cp: {}", text(&o.stderr));
    for p in ["img.ext4", "mnt"] {
        std::os::unix::fs::chown(
            b.rootfs().join(p),
            Some(USERNS_HOST_ID),
            Some(USERNS_HOST_ID),
        )
        .expect("chown");
    }
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": s.path("agent.sock"),
        "listenerMetadata": "fuse",
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}],
    }))
    .expect("seccomp");
    // /dev is runc's tmpfs: /dev/fuse is the 0666 node bind-mounted over it (the host's is
    // 0600, closed to the container's root); mounting needs CAP_SYS_ADMIN in the container.
    let node = built.join("dev/fuse").display().to_string();
    b.edit(|c| {
        // fuse2fs opens the image read-write (`runc spec` makes the root read-only).
        c["root"]["readonly"] = serde_json::json!(false);
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(serde_json::json!({"destination": "/dev/fuse", "type": "bind", "source": node, "options": ["bind"]}));
        }
        if let Some(d) = c["linux"]["resources"]["devices"].as_array_mut() {
            d.push(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
        }
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = c["process"]["capabilities"][set].as_array_mut() {
                caps.push("CAP_SYS_ADMIN".into());
            }
        }
    })
    .expect("config");
    let agent = integration::agent::Agent::oci(&s);
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
        value(&out, "mount"),
        Some("0 errno=0"),
        "{out}\nrecords: {:#?}",
        agent.wait_records(|r| !r.is_empty())
    );
    assert!(
        value(&out, "fstype").is_some_and(|t| t.starts_with("fuse")),
        "{out}"
    );
    assert_eq!(
        value(&out, "content"),
        Some("hello from an ext4 image"),
        "{out}"
    );
    let server = value(&out, "server").unwrap_or_else(|| panic!("no server line: {out}"));
    assert!(
        server.contains("seccomp=2") && server.contains("nnp=1"),
        "{out}"
    );
    let records = agent.wait_records(|r| {
        r.iter()
            .any(|r| r["container"] == b.id && r["syscall"] == "mount")
    });
    assert!(
        records.iter().any(|r| r["container"] == b.id
            && r["decoded"]["fuse"] == "fuse2fs"
            && r["decision"] == "emulated"
            && r["result"] == "0"),
        "{records:#?}"
    );
    // Nothing of the container is left once it ended.
    let left = (0..100).find_map(|_| {
        let l = rooted_in(&b.rootfs());
        if l.is_empty() {
            return Some(l);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        None
    });
    assert_eq!(
        left,
        Some(Vec::new()),
        "processes left in the container's root"
    );
}
