//! Broker hardening: attacks a hostile workload makes for real against `auditor enforce`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::{auditor_bin, require_root, unique_name};

fn workload(name: &str) -> String {
    Path::new(env!("OUT_DIR")).join(name).display().to_string()
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
