//! `auditor learn --container`: attaching to a running runc or crun container by id, and
//! refusing an unknown id clearly.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditor::observe::model::{Observation, Target};
use integration::learner::*;
use integration::runtimes::{clear_stale, Bundle, Runtime};
use integration::{auditor_bin, require_root, require_tool, unique_name, Reaped};

/// `auditor learn --container ID --runtime RUNTIME` on a running container whose workload waits
/// for /tmp/go: once learning has begun, `joiners` runs (processes joining the container),
/// then the workload is let go; returns the observation written when the container ends.
fn learn_running_container(b: &Bundle, runtime: &str, joiners: impl FnOnce()) -> Observation {
    let out = b.dir.join("obs.json");
    let log = b.dir.join("learn.log");
    let mut learn = Reaped(
        Command::new(auditor_bin())
            .args([
                "learn",
                "--no-progress",
                "--container",
                &b.id,
                "--runtime",
                runtime,
                "-o",
            ])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("auditor learn"),
    );
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("learning")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "learn did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if let Some(st) = learn.0.try_wait().expect("wait") {
            panic!(
                "learn exited ({st}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A few rounds of the workload's loop under observation (one usleep may be asleep already
    // when tracking begins, and would not show its clock_nanosleep).
    std::thread::sleep(Duration::from_millis(200));
    joiners();
    std::fs::write(b.rootfs().join("tmp/go"), b"").expect("signal the workload");
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = learn.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "learn did not end with the container: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        st.success(),
        "learn --container --runtime {runtime}: {st}\n{text}"
    );
    auditor::observe::load(&out).expect("observation")
}

#[test]
fn learn_attaches_to_a_running_container_by_id() {
    let test = "learn_attaches_to_a_running_container_by_id";
    if !ready(test) {
        return;
    }
    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do /bin/busybox usleep 20000; done; /bin/busybox uname -r",
        ],
    )
    .expect("bundle");
    runc_run_detached(&b);
    // A process that joins later (`runc exec`) is learned too: `sync` is its own.
    let obs = learn_running_container(&b, "runc", || {
        let o = runc(&["exec", &b.id, "/bin/busybox", "sync"]);
        assert!(
            o.status.success(),
            "runc exec: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
    assert!(
        matches!(&obs.target, Target::Container { id, .. } if *id == b.id),
        "{:?}",
        obs.target
    );
    let names: BTreeSet<_> = obs.syscalls.iter().map(|s| s.name.as_str()).collect();
    for n in ["uname", "clock_nanosleep", "sync", "exit_group"] {
        assert!(names.contains(n), "{n} missing: {names:?}");
    }
    assert_eq!(obs.loss.total, 0, "lost: {:?}", obs.loss.counters);
}

#[test]
fn learn_attaches_to_a_running_crun_container_by_id() {
    let test = "learn_attaches_to_a_running_crun_container_by_id";
    if !require_root(test)
        || require_tool(test, "crun").is_none()
        || require_tool(test, "unshare").is_none()
    {
        return;
    }
    clear_stale(Runtime::Crun);
    let b = Bundle::busybox(
        Runtime::Crun,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do /bin/busybox usleep 20000; done; /bin/busybox uname -r",
        ],
    )
    .expect("bundle");
    // crun as this host needs it (no cgroup2 mount, see TOOLCHAIN.md); detached, the
    // container outlives the private mount namespace's shell.
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "(umount /sys/fs/cgroup/unified 2>/dev/null || true) && exec crun run --detach --bundle {} {}",
            b.dir.display(),
            b.id
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("crun run --detach");
    assert!(o.success(), "crun run --detach failed");
    let obs = learn_running_container(&b, "crun", || {});
    assert!(
        matches!(&obs.target, Target::Container { id, runtime: Some(r), .. } if *id == b.id && r == "crun"),
        "{:?}",
        obs.target
    );
    let names: BTreeSet<_> = obs.syscalls.iter().map(|s| s.name.as_str()).collect();
    for n in ["uname", "clock_nanosleep", "exit_group"] {
        assert!(names.contains(n), "{n} missing: {names:?}");
    }
    assert_eq!(obs.loss.total, 0, "lost: {:?}", obs.loss.counters);
}

#[test]
fn learn_container_refuses_an_unknown_id_clearly() {
    let test = "learn_container_refuses_an_unknown_id_clearly";
    if !ready(test) {
        return;
    }
    let id = unique_name("auditor-rt");
    let o = Command::new(auditor_bin())
        .args([
            "learn",
            "--no-progress",
            "--container",
            &id,
            "-o",
            "/dev/null",
        ])
        .output()
        .expect("auditor learn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&id) && err.contains("runc state"), "{err}");
    let o = Command::new(auditor_bin())
        .args([
            "learn",
            "--no-progress",
            "--container",
            "../../etc",
            "-o",
            "/dev/null",
        ])
        .output()
        .expect("auditor learn");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid id"));
}
