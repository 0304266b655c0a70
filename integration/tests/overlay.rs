//! Overlayfs inside a user-namespaced container, as a nested engine builds a container's root:
//! an opaque directory (`trusted.overlay.opaque`, through `emulate-setxattr`) and a whiteout
//! only take effect in an overlay the host mounts (`emulate-mount` with `fstypes =
//! ["overlay"]`); the container's own overlay ignores the attribute and shows what the image
//! deleted.

use std::path::{Path, PathBuf};

use integration::{
    audit_records as records, enforce, require_root, text, workload, Scratch, ALLOW_ALL_POLICY,
    CONTAINER_ROOT,
};

const OVERLAY_POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["setxattr", "lsetxattr", "fsetxattr"]
action = "notify"
handler = "emulate-setxattr"
comment = "trusted.overlay.* only (the default prefixes)"

[[rule]]
name = "mount"
action = "notify"
handler = "emulate-mount"
params = { fstypes = ["overlay"] }

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
"#;

/// A fresh directory the container's root owns.
fn container_dir(s: &Scratch, name: &str) -> PathBuf {
    let p = s.path(name);
    std::fs::create_dir(&p).expect("mkdir");
    std::os::unix::fs::chown(&p, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    p
}

/// The workload's `key=value` lines.
fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn run(policy: &Path, log: &Path, args: &[&str]) -> String {
    let bin = workload("overlay_nested");
    let mut cmd = vec![bin.as_str()];
    cmd.extend_from_slice(args);
    let o = enforce(
        &[
            "--policy",
            &policy.display().to_string(),
            "--userns",
            "--audit-log",
            &log.display().to_string(),
        ],
        &cmd,
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

#[test]
fn an_opaque_directory_and_a_whiteout_work_in_a_nested_overlay_only_under_the_policy() {
    if !require_root(
        "an_opaque_directory_and_a_whiteout_work_in_a_nested_overlay_only_under_the_policy",
    ) {
        return;
    }
    let s = Scratch::for_container("enforce-overlay");
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let with = s.write("with.toml", OVERLAY_POLICY);
    let log = s.path("audit.jsonl");

    // Without auditor: the kernel refuses trusted.overlay.opaque and mounts the container's
    // own overlay, which would not read it anyway: d/hidden, deleted by the upper layer's
    // opaque directory, shows through.
    let dir = container_dir(&s, "plain");
    let out = run(&without, &log, &[&dir.display().to_string()]);
    assert_eq!(
        value(&out, "opaque"),
        Some(format!("-1 errno={}", libc::EPERM).as_str()),
        "{out}"
    );
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "d"), Some("hidden,kept"), "{out}");

    // Under the policy: the attribute is set, the host mounts the overlay (nosuid, nodev) in
    // the container's mount namespace; the opaque directory hides the lower d, the whiteout
    // hides gone, the rest of the lower layer shows, writes land in the upper layer.
    let dir = container_dir(&s, "nested");
    let out = run(&with, &log, &[&dir.display().to_string()]);
    assert_eq!(value(&out, "opaque"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "whiteout"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "d"), Some("kept"), "{out}");
    assert_eq!(value(&out, "gone"), Some("absent"), "{out}");
    assert_eq!(value(&out, "shown-below"), Some("present"), "{out}");
    assert_eq!(value(&out, "write"), Some("0"), "{out}");
    assert_eq!(value(&out, "upper-new"), Some("present"), "{out}");
    let opts = value(&out, "opts").unwrap_or_default();
    assert!(
        opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
        "{out}"
    );
    assert_eq!(value(&out, "umount"), Some("0 errno=0"), "{out}");
    // What the container wrote through the overlay is the container's, on the host too.
    let new = std::fs::metadata(dir.join("upper/d/new")).expect("upper/d/new");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&new), CONTAINER_ROOT);
    // The mount was the container's: nothing in the host's mount table.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!host.contains(&dir.display().to_string()), "{host}");

    // A redirect that would be followed is refused before anything is opened.
    let dir = container_dir(&s, "redirect");
    let out = run(
        &with,
        &log,
        &[&dir.display().to_string(), "redirect_dir=on"],
    );
    assert_eq!(
        value(&out, "mount"),
        Some(format!("-1 errno={}", libc::EINVAL).as_str()),
        "{out}"
    );

    // A lower layer the container's root cannot read (host root's, 0700) is refused: the
    // helper opens every layer as the caller.
    let secret = s.path("secret");
    std::fs::create_dir(&secret).expect("mkdir");
    std::fs::write(secret.join("key"), "host secret").expect("write");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let dir = container_dir(&s, "secret-lower");
    let out = run(
        &with,
        &log,
        &[
            &dir.display().to_string(),
            "",
            &secret.display().to_string(),
        ],
    );
    assert_eq!(
        value(&out, "mount"),
        Some(format!("-1 errno={}", libc::EACCES).as_str()),
        "{out}"
    );

    let recs = records(&log);
    assert!(
        recs.iter().any(|r| r["syscall"] == "mount"
            && r["decision"] == "emulated"
            && r["result"] == "0"
            && r["decoded"]["fstype"] == "overlay"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["syscall"] == "mount"
            && r["result"] == "-EINVAL"
            && r["decoded"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("redirect_dir=on"))),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["syscall"] == "mount"
            && r["decision"] == "denied"
            && r["result"] == "-EACCES"),
        "{recs:#?}"
    );
}

/// learn → generate → enforce: the generated policy has the host mount the overlay the
/// workload builds (it sets trusted.overlay.opaque, refused while learning, and mounts overlay,
/// which worked but ignored the attribute), and under it the opaque directory is opaque.
#[test]
fn a_learned_policy_mounts_the_nested_overlay_for_the_workload() {
    if !require_root("a_learned_policy_mounts_the_nested_overlay_for_the_workload") {
        return;
    }
    let s = Scratch::for_container("learn-overlay");
    let bin = workload("overlay_nested");
    let obs = s.path("obs.json");
    let learned = container_dir(&s, "learned");
    let o = std::process::Command::new(integration::auditor_bin())
        .args(["learn", "--no-progress", "--userns", "-o"])
        .arg(&obs)
        .args(["--", &bin])
        .arg(&learned)
        .output()
        .expect("run auditor learn");
    assert!(o.status.success(), "learn: {}", text(&o.stderr));
    // While learning, nothing was granted: the lower d shows through.
    assert_eq!(value(&text(&o.stdout), "d"), Some("hidden,kept"));
    let policy = s.path("policy.toml");
    let o = std::process::Command::new(integration::auditor_bin())
        .arg("generate")
        .arg(&obs)
        .arg("-o")
        .arg(&policy)
        .output()
        .expect("run auditor generate");
    assert!(o.status.success(), "generate: {}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("nested engine"),
        "{}",
        text(&o.stderr)
    );
    let generated = std::fs::read_to_string(&policy).unwrap_or_default();
    assert!(
        generated.contains("handler = \"emulate-mount\"")
            && generated.contains("fstypes = [\"overlay\"]")
            && generated.contains("handler = \"emulate-setxattr\""),
        "{generated}"
    );

    let dir = container_dir(&s, "enforced");
    let out = run(
        &policy,
        &s.path("audit.jsonl"),
        &[&dir.display().to_string()],
    );
    assert_eq!(value(&out, "opaque"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "d"), Some("kept"), "{out}");
    assert_eq!(value(&out, "gone"), Some("absent"), "{out}");
    assert_eq!(value(&out, "umount"), Some("0 errno=0"), "{out}");
}

/// Layers are resolved in the container's root, as the caller would resolve them: a lower
/// layer given as a symlink that climbs out (`/escape -> /../../../../etc`) finds the root's
/// own (absent) /etc, never the host's.
#[test]
fn overlay_layers_resolve_inside_the_containers_root() {
    if !require_root("overlay_layers_resolve_inside_the_containers_root") {
        return;
    }
    let s = Scratch::new("enforce-overlay-rootfs");
    let with = s.write("with.toml", OVERLAY_POLICY);
    let log = s.path("audit.jsonl");
    let rootfs = s.path("rootfs");
    std::fs::create_dir_all(rootfs.join("proc")).expect("rootfs/proc");
    std::fs::copy(workload("overlay_nested"), rootfs.join("overlay_nested")).expect("copy");
    let layers = rootfs.join("layers");
    std::fs::create_dir(&layers).expect("layers");
    std::os::unix::fs::chown(&layers, Some(CONTAINER_ROOT), Some(CONTAINER_ROOT)).expect("chown");
    std::os::unix::fs::symlink("/../../../../../../etc", rootfs.join("escape")).expect("symlink");
    let enforce_in_root = |lower: &str| {
        let o = enforce(
            &[
                "--policy",
                &with.display().to_string(),
                "--userns",
                "--rootfs",
                &rootfs.display().to_string(),
                "--audit-log",
                &log.display().to_string(),
            ],
            &["/overlay_nested", "/layers", "", lower],
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
    let out = enforce_in_root("/escape");
    assert_eq!(
        value(&out, "mount"),
        Some(format!("-1 errno={}", libc::ENOENT).as_str()),
        "{out}"
    );
    // The same layers named inside the root work.
    let out = enforce_in_root("/layers/lower");
    assert_eq!(value(&out, "mount"), Some("0 errno=0"), "{out}");
    assert_eq!(value(&out, "d"), Some("kept"), "{out}");
}

/// The same nested overlay in a real runc container (user namespace, /tmp a tmpfs of its own)
/// whose profile hands its listener to `auditor agent`: the agent serves it with the handlers
/// and parameters of the native policy the profile names.
#[test]
fn runc_nested_overlay_through_the_agent() {
    use integration::runtimes::{Bundle, Runtime};
    let test = "runc_nested_overlay_through_the_agent";
    if !require_root(test) || integration::require_tool(test, "runc").is_none() {
        return;
    }
    integration::runtimes::clear_stale(Runtime::Runc);
    let s = Scratch::private_with_policies("agent-overlay");
    std::fs::write(s.path("policies/nested.toml"), OVERLAY_POLICY).expect("policy");
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": s.path("agent.sock"),
        "listenerMetadata": "nested",
        "syscalls": [
            {"names": ["setxattr", "lsetxattr", "fsetxattr", "mount"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr"],
             "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    });
    let agent = integration::agent::Agent::oci(&s);
    let b = Bundle::busybox(Runtime::Runc, &["/overlay_nested", "/tmp"]).expect("bundle");
    std::fs::copy(
        workload("overlay_nested"),
        b.rootfs().join("overlay_nested"),
    )
    .expect("copy");
    b.user_namespace().expect("user namespace");
    b.set_seccomp(&profile).expect("seccomp");
    // A nested engine's container holds CAP_SYS_ADMIN in its own user namespace (it mounts);
    // `runc spec`'s default set has none, and auditor grants a mount only to a caller that
    // could mount in its own mount namespace.
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = c["process"]["capabilities"][set].as_array_mut() {
                caps.push("CAP_SYS_ADMIN".into());
            }
        }
    })
    .expect("capabilities");
    let argv = b.run_command();
    let o = integration::run_with_timeout(
        std::process::Command::new(&argv[0]).args(&argv[1..]),
        std::time::Duration::from_secs(60),
    );
    let out = text(&o.stdout);
    assert!(
        o.status.success(),
        "{}\nagent: {}",
        integration::describe(&o),
        agent.log_text()
    );
    assert_eq!(value(&out, "opaque"), Some("0 errno=0"), "{out}");
    assert_eq!(
        value(&out, "mount"),
        Some("0 errno=0"),
        "{out}\nagent: {}",
        agent.log_text()
    );
    assert_eq!(value(&out, "d"), Some("kept"), "{out}");
    assert_eq!(value(&out, "gone"), Some("absent"), "{out}");
    assert_eq!(value(&out, "write"), Some("0"), "{out}");
    assert_eq!(value(&out, "upper-new"), Some("present"), "{out}");
    let records = agent.wait_records(|r| {
        r.iter()
            .any(|r| r["container"] == b.id && r["syscall"] == "mount")
    });
    assert!(
        records.iter().any(|r| r["container"] == b.id
            && r["syscall"] == "mount"
            && r["decision"] == "emulated"
            && r["result"] == "0"),
        "{records:#?}"
    );
}
