//! The Debian package (packaging/build-deb.sh, as `cargo xtask dist` builds it) installed for
//! real with dpkg: the binary, units, hooks.d file, completions and man pages are in place;
//! `auditor doctor` and the demo (learn in --userns, generate, check, export, enforce with the
//! broker emulating mknod) run from the installed binary; the
//! daemon and the agent start from their units' `ExecStart` lines (no systemd runs here), with
//! their settings from the installed /etc/auditor/config.toml, and stop cleanly on SIGTERM;
//! purging removes every file. Needs root and dpkg; it refuses to touch an
//! auditor package it did not install.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{auditor_bin, describe, in_ci, require_root, require_tool, Scratch};

/// Versions this test installs carry this mark, so that a leftover of a failed run is known.
const MARK: &str = "~test";

fn installed_version() -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", "auditor"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (o.status.success() && text.contains(" installed ")).then(|| {
        text.split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned()
    })
}

fn purge() {
    let _ = Command::new("dpkg")
        .args(["--purge", "auditor"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Purges the package on drop, even when an assertion failed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        purge();
    }
}

/// The `ExecStart=` command of an installed unit.
fn exec_start(unit: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/lib/systemd/system/{unit}")).expect("unit");
    text.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Start a unit's command, wait for `socket`, SIGTERM it: it must exit 0 within 10 s and
/// remove its socket.
fn start_and_stop(unit: &str, sockets: &[&str]) {
    let argv = exec_start(unit);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the unit's command");
    let t = Instant::now();
    while !sockets.iter().all(|s| Path::new(s).exists()) {
        if let Ok(Some(st)) = child.try_wait() {
            let o = child.wait_with_output().expect("output");
            panic!(
                "{unit}: {argv:?} exited ({st}): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{unit}: no socket {sockets:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("{unit}: did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{unit}: {status}");
    for s in sockets {
        assert!(!Path::new(s).exists(), "{unit} left {s} behind");
    }
}

#[test]
fn the_debian_package_installs_runs_and_purges() {
    let test = "the_debian_package_installs_runs_and_purges";
    if !require_root(test) || require_tool(test, "dpkg-deb").is_none() {
        return;
    }
    match installed_version() {
        Some(v) if v.contains(MARK) => purge(),
        Some(v) => {
            let msg = format!(
                "{test}: auditor {v} is installed as a package and this test will not replace it (dpkg --purge auditor first)"
            );
            if in_ci() {
                panic!("{msg}");
            }
            eprintln!("SKIP {msg}");
            return;
        }
        None => {}
    }
    for s in [
        "/run/auditor/daemon.sock",
        "/run/auditor/agent.sock",
        "/run/auditor/lxc.sock",
    ] {
        if Path::new(s).exists() && std::os::unix::net::UnixStream::connect(s).is_ok() {
            panic!("{test}: a live auditor serves {s}; stop it first");
        }
    }
    let s = Scratch::new("auditor-package");
    let version = format!("0.1.0{MARK}{}", std::process::id());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/build-deb.sh");
    let o = Command::new(&script)
        .arg(auditor_bin())
        .arg(&version)
        .arg(s.dir())
        .output()
        .expect("build-deb.sh");
    assert!(o.status.success(), "build-deb.sh: {}", describe(&o));
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_owned();

    let _installed = Installed;
    let o = Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .output()
        .expect("dpkg -i");
    assert!(o.status.success(), "dpkg -i: {}", describe(&o));
    assert_eq!(installed_version().as_deref(), Some(version.as_str()));
    for f in [
        "/usr/bin/auditor",
        "/lib/systemd/system/auditor-daemon.service",
        "/lib/systemd/system/auditor-agent.service",
        "/lib/systemd/system/auditor-agent.socket",
        "/usr/share/bash-completion/completions/auditor",
        "/usr/share/zsh/vendor-completions/_auditor",
        "/usr/share/fish/vendor_completions.d/auditor.fish",
        "/usr/share/man/man1/auditor.1.gz",
        "/usr/share/man/man1/auditor-doctor.1.gz",
        "/usr/share/man/man1/auditor-agent.1.gz",
        "/etc/auditor/policies",
        "/etc/auditor/config.toml",
        "/usr/bin/auditor-runc",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    // The Docker snippet names the installed binary as the runtime wrapper.
    let docker: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/usr/share/doc/auditor/examples/docker-daemon.json")
            .expect("daemon.json example"),
    )
    .expect("daemon.json JSON");
    assert_eq!(
        docker["runtimes"]["auditor-learn"]["path"],
        "/usr/bin/auditor"
    );
    assert_eq!(
        docker["runtimes"]["auditor-learn"]["runtimeArgs"][0],
        "runtime"
    );
    // `auditor-runc` reads the installed [runtime] (delegate runc) and passes through.
    let o = Command::new("/usr/bin/auditor-runc")
        .arg("--version")
        .output()
        .expect("auditor-runc");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("runc version"),
        "auditor-runc --version: {}",
        describe(&o)
    );
    let hook: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/usr/share/containers/oci/hooks.d/auditor-learn.json")
            .expect("hooks.d file"),
    )
    .expect("hooks.d JSON");
    assert_eq!(hook["hook"]["path"], "/usr/bin/auditor");
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/auditor")
        .expect("completion");
    assert!(
        bash.contains("doctor") && bash.contains("enforce"),
        "{bash}"
    );

    let installed = |args: &[&str]| {
        Command::new("/usr/bin/auditor")
            .args(args)
            .output()
            .expect("run the installed auditor")
    };
    let o = installed(&["doctor", "--mode", "learn,enforce,agent,daemon"]);
    assert!(o.status.success(), "doctor: {}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("/etc/auditor/config.toml (read)")
            && text.contains("policies in /etc/auditor/policies"),
        "the installed configuration is not the one in effect: {text}"
    );

    // The demo (`cargo xtask demo`), by the installed binary: a workload in an unprivileged
    // container is refused mknod while learned; the generated policy makes it a notify rule;
    // enforced, the broker creates the node for it, and the audit log says so.
    let work = Scratch::for_container("auditor-package-demo");
    let devdir = work.path("dev");
    std::fs::create_dir(&devdir).expect("dev dir");
    std::fs::set_permissions(&devdir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let node = devdir.join("null");
    let script = format!(
        "if mknod {} c 1 3; then echo 'mknod: created'; else echo 'mknod: refused'; fi",
        node.display()
    );
    let (obs, policy, oci, audit) = (
        work.path("obs.json"),
        work.path("policy.toml"),
        work.path("profile.json"),
        work.path("audit.jsonl"),
    );
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let o = installed(&[
        "learn",
        "--userns",
        "--no-progress",
        "-o",
        &path(&obs),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod: refused"),
        "learn: {}",
        describe(&o)
    );
    let o = installed(&["generate", &path(&obs), "-o", &path(&policy)]);
    assert!(o.status.success(), "generate: {}", describe(&o));
    let text = std::fs::read_to_string(&policy).expect("policy");
    assert!(text.contains("emulate-mknod"), "{text}");
    let o = installed(&["check", &path(&policy)]);
    assert_ne!(o.status.code(), Some(2), "check: {}", describe(&o));
    let o = installed(&[
        "generate",
        &path(&obs),
        "--format",
        "oci",
        "--listener",
        "/run/auditor/agent.sock",
        "--listener-metadata",
        "demo",
        "--lossy",
        "-o",
        &path(&oci),
    ]);
    assert!(
        o.status.success(),
        "generate --format oci: {}",
        describe(&o)
    );
    let o = installed(&[
        "enforce",
        "--userns",
        "--policy",
        &path(&policy),
        "--audit-log",
        &path(&audit),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(o.status.success(), "enforce: {}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod: created"),
        "{}",
        describe(&o)
    );
    let meta = std::fs::metadata(&node).expect("the node exists");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &meta.file_type()
    ));
    assert_eq!(
        std::os::unix::fs::MetadataExt::rdev(&meta),
        libc::makedev(1, 3)
    );
    let records = integration::audit_records(&audit);
    assert!(
        records.iter().any(|r| r["decision"] == "emulated"
            && r["syscall"]
                .as_str()
                .is_some_and(|s| s.starts_with("mknod"))),
        "{records:#?}"
    );

    // The services, as their units start them.
    start_and_stop("auditor-daemon.service", &["/run/auditor/daemon.sock"]);
    start_and_stop(
        "auditor-agent.service",
        &["/run/auditor/agent.sock", "/run/auditor/lxc.sock"],
    );

    let o = Command::new("dpkg")
        .args(["--purge", "auditor"])
        .output()
        .expect("dpkg --purge");
    assert!(o.status.success(), "dpkg --purge: {}", describe(&o));
    assert_eq!(installed_version(), None);
    for f in [
        "/usr/bin/auditor",
        "/usr/bin/auditor-runc",
        "/lib/systemd/system/auditor-agent.service",
        "/usr/share/man/man1/auditor.1.gz",
        "/usr/share/containers/oci/hooks.d/auditor-learn.json",
        "/etc/auditor",
        "/var/lib/auditor",
        "/var/log/auditor",
    ] {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
}
