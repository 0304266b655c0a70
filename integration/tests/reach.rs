//! `auditor enforce --userns` and `learn --userns` run the workload as an unprivileged host uid
//! (the container's root): when a directory on the way to the program keeps that uid out,
//! auditor says which one, rather than a bare "Permission denied".

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use integration::{auditor_bin, require_root, unique_name, workload};

#[test]
fn userns_names_the_directory_the_containers_root_cannot_search() {
    if !require_root("userns_names_the_directory_the_containers_root_cannot_search") {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("auditor-reach"));
    let closed = dir.join("closed");
    std::fs::create_dir_all(closed.join("bin")).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let prog = closed.join("bin/probe");
    std::fs::copy(workload("probe"), &prog).expect("copy");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "version = 1\ndefault_action = \"allow\"\n").expect("policy");
    for args in [
        vec![
            "enforce",
            "--userns",
            "--policy",
            policy.to_str().expect("utf-8"),
        ],
        vec![
            "learn",
            "--userns",
            "--no-progress",
            "-o",
            dir.join("obs.json").to_str().expect("utf-8"),
        ],
    ] {
        let o = Command::new(auditor_bin())
            .args(&args)
            .arg("--")
            .arg(&prog)
            .output()
            .expect("run auditor");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: ran anyway");
        assert!(
            err.contains(&format!("cannot search {}", closed.display()))
                && err.contains("mode 700"),
            "{args:?}: {err}"
        );
    }
    // Searchable by others: it runs.
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let o = Command::new(auditor_bin())
        .args(["enforce", "--userns", "--policy"])
        .arg(&policy)
        .arg("--")
        .arg(&prog)
        .output()
        .expect("run auditor");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
