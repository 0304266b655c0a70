//! Unit tests of the LXC proxy's serving side.

use super::*;
use std::os::unix::fs::PermissionsExt as _;

#[test]
fn the_socket_is_root_only_and_never_replaces_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("precious");
    std::fs::write(&file, "data").expect("write");
    assert!(matches!(listen_on(&file), Err(LxcError::NotASocket { .. })));
    assert_eq!(std::fs::read_to_string(&file).expect("still there"), "data");

    let path = dir.path().join("lxc.sock");
    let first = listen_on(&path).expect("listen");
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A live socket is never taken over.
    assert!(matches!(listen_on(&path), Err(LxcError::InUse { .. })));
    // A socket left by an agent that died (nobody listens) is replaced.
    std::mem::forget(first.1);
    drop(first.0);
    let second = listen_on(&path).expect("listen again");
    drop(second);
    assert!(!path.exists(), "the agent removes its own socket");
    // A missing directory is created root-only.
    let nested = dir.path().join("missing/lxc.sock");
    let third = listen_on(&nested).expect("listen in a new directory");
    assert_eq!(
        std::fs::metadata(dir.path().join("missing"))
            .expect("dir")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    drop(third);
}

#[test]
fn the_socket_directory_must_be_roots_and_closed_to_others() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(matches!(
        listen_on(&open.join("lxc.sock")),
        Err(LxcError::SocketDir { .. })
    ));
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).expect("chown");
    assert!(matches!(
        listen_on(&theirs.join("lxc.sock")),
        Err(LxcError::SocketDir { .. })
    ));
    assert!(!open.join("lxc.sock").exists() && !theirs.join("lxc.sock").exists());
}

#[test]
fn the_callers_proc_directory_must_be_the_callers() {
    let open = |p: &str| OwnedFd::from(std::fs::File::open(p).expect(p));
    let me = std::process::id();
    let cgroup = verify_caller_dir(&open(&format!("/proc/{me}")), me).expect("our own directory");
    assert!(cgroup.is_some());
    // Another task's directory, or a directory that is not procfs, is refused.
    assert!(verify_caller_dir(&open(&format!("/proc/{me}")), me + 1).is_err());
    assert!(verify_caller_dir(&open("/proc/1"), me).is_err());
    assert!(verify_caller_dir(&open("/"), me).is_err());
}

#[test]
fn container_name_from_the_payload_cgroup() {
    let v1 = "9:name=systemd:/lxc.payload.web-1\n8:pids:/lxc.payload.web-1\n0::/\n";
    assert_eq!(container_from_cgroup(v1).as_deref(), Some("web-1"));
    let nested = "0::/system.slice/lxc.payload.db/init.scope\n";
    assert_eq!(container_from_cgroup(nested).as_deref(), Some("db"));
    assert_eq!(container_from_cgroup("0::/user.slice\n"), None);
    assert_eq!(container_from_cgroup("0::/lxc.payload.\n"), None);
    assert_eq!(container_from_cgroup(""), None);
}
