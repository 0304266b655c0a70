//! `auditor daemon` restarts without losing a call: its eBPF programs, links and maps stay
//! pinned under bpffs while no daemon runs, the next daemon of the same instance adopts them
//! with the registry of the containers they were learning, and their observations come out
//! whole. Real runc containers, real programs, real pins.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use integration::auditor_bin;
use integration::learner::{hooked_bundle, ready, runc, runc_run_detached, workload_names, Daemon};

/// The syscall `name`'s calls in an observation (every ABI, every executable).
fn calls(obs: &auditor::observe::model::Observation, name: &str) -> u64 {
    obs.syscalls
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.count)
        .sum()
}

/// Wait until the file `path` (written by the container) holds a number of at least `n`.
fn wait_progress(path: &Path, n: u64, what: &str) {
    let t0 = Instant::now();
    loop {
        let v: u64 = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if v >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{what}: the container got to {v}, not {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pins_of(daemon: &Daemon) -> std::path::PathBuf {
    let instance = auditor::daemon::state::instance_of(
        &daemon.socket,
        Path::new(auditor::daemon::protocol::DEFAULT_SOCKET),
    );
    auditor::bpf::pin::instance_dir(&instance)
}

/// A container loops on `sync` (a syscall nothing else in it makes) N times; the daemon is
/// stopped cleanly at a quarter, started again, killed with SIGKILL at two thirds, started
/// again: the observation counts exactly N syncs, and executables read before the stops are
/// still named.
#[test]
fn a_daemon_stopped_and_killed_mid_loop_loses_no_call() {
    let test = "a_daemon_stopped_and_killed_mid_loop_loses_no_call";
    if !ready(test) {
        return;
    }
    const N: u64 = 1500;
    let mut daemon = Daemon::start();
    let dir = daemon.dir.clone();
    let b = hooked_bundle(
        &daemon,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            &format!(
                "i=0; while [ $i -lt {N} ]; do /bin/busybox sync; i=$((i+1)); echo $i > /tmp/progress; done"
            ),
        ],
    );
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false))
        .expect("writable rootfs");
    let progress = b.rootfs().join("tmp/progress");
    runc_run_detached(&b);
    let pins = pins_of(&daemon);
    assert!(pins.is_dir(), "{} not pinned", pins.display());

    wait_progress(&progress, N / 4, "before the clean stop");
    assert!(
        daemon.stop().success(),
        "daemon exit status:\n{}",
        daemon.log_text()
    );
    let stopped_log = daemon.log_text();
    assert!(
        stopped_log.contains("stay counted by the programs pinned at"),
        "{stopped_log}"
    );
    assert!(
        pins.is_dir(),
        "a stop with a running container kept the pins"
    );
    // The programs count while no daemon runs.
    std::thread::sleep(Duration::from_millis(300));

    let mut daemon = Daemon::start_in(&dir);
    assert!(
        daemon
            .log_text()
            .contains("1 containers go on being learned"),
        "{}",
        daemon.log_text()
    );
    wait_progress(&progress, 2 * N / 3, "before the kill");
    daemon.kill();
    std::thread::sleep(Duration::from_millis(300));
    let daemon = Daemon::start_in(&dir);
    assert!(
        daemon.log_text().contains("did not stop cleanly"),
        "{}",
        daemon.log_text()
    );
    wait_progress(&progress, N, "to the end");
    let obs = daemon.observation_when(&b.id, |o| calls(o, "sync") >= N);
    assert_eq!(calls(&obs, "sync"), N, "every sync of the loop, once");
    assert_eq!(obs.loss.total, 0, "{:?}", obs.loss);
    assert!(
        obs.executables.iter().any(|e| e.path == "/bin/busybox"),
        "{:?}",
        obs.executables
    );
    assert!(workload_names(&obs).contains("sync"));
    // Argument tuples the kernel sends once (the shell's fork flags), read by the first daemon
    // before its stop: saved in the registry and taken back.
    assert!(
        obs.syscalls
            .iter()
            .any(|s| (s.name == "clone" || s.name == "clone3") && !s.arguments.is_empty()),
        "{:?}",
        obs.syscalls
            .iter()
            .filter(|s| s.name.starts_with("clone"))
            .collect::<Vec<_>>()
    );
    // Its group was recycled and the daemon goes on: with nothing tracked, a stop unpins.
    let mut daemon = daemon;
    let _ = runc(&["delete", "--force", &b.id]);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
    assert!(!pins.exists(), "a stop with nothing tracked left the pins");
}

/// While no daemon runs, a container makes more distinct argument tuples than the ring buffer
/// holds: the counts stay complete, what overflowed is counted in the observation and said in
/// the log of the daemon that adopts the programs.
#[test]
fn a_ring_buffer_overflow_during_a_downtime_is_counted_not_silent() {
    let test = "a_ring_buffer_overflow_during_a_downtime_is_counted_not_silent";
    if !ready(test) {
        return;
    }
    // More umount2 tuples (~900 bytes each) than the 4 MiB ring buffer holds.
    const PATHS: u64 = 8000;
    let mut daemon = Daemon::start();
    let dir = daemon.dir.clone();
    let b = hooked_bundle(
        &daemon,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            &format!(
                "while [ ! -e /go ]; do /bin/busybox sleep 0.05; done; \
                 /bin/busybox umount /gone-$(/bin/busybox seq -s ' /gone-' 1 {PATHS}) 2>/dev/null; \
                 echo 1 > /tmp/done; \
                 while [ ! -e /end ]; do /bin/busybox sleep 0.05; done"
            ),
        ],
    );
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false))
        .expect("writable rootfs");
    runc_run_detached(&b);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
    // What the stop wrote of the running container: the restarted daemon writes it whole.
    std::fs::remove_file(daemon.out.join(format!("{}.json", b.id))).expect("written at the stop");
    std::fs::write(b.rootfs().join("go"), b"").expect("go");
    wait_progress(&b.rootfs().join("tmp/done"), 1, "the umounts");
    let daemon = Daemon::start_in(&dir);
    std::fs::write(b.rootfs().join("end"), b"").expect("end");
    let obs = daemon.observation(&b.id);
    let by_busybox = obs
        .syscalls
        .iter()
        .filter(|s| s.name == "umount2")
        .filter_map(|s| s.executables.get("/bin/busybox"))
        .sum::<u64>();
    assert_eq!(by_busybox, PATHS, "the counts are complete");
    let lost = obs
        .loss
        .counters
        .get("ringbuf_lost_args")
        .copied()
        .unwrap_or(0);
    assert!(lost > 0, "the overflow is counted: {:?}", obs.loss);
    assert!(obs.loss.total >= lost);
    let log = daemon.log_text();
    assert!(log.contains("the ring buffer overflowed"), "{log}");
}

/// `--uninstall` writes what the pinned programs counted for a running container and removes
/// the pins; pins of another build are refused with a clear error by the daemon and by
/// `--uninstall`, and removed only with `--force`.
#[test]
fn uninstall_writes_the_counted_and_foreign_pins_are_refused() {
    let test = "uninstall_writes_the_counted_and_foreign_pins_are_refused";
    if !ready(test) {
        return;
    }
    let mut daemon = Daemon::start();
    let dir = daemon.dir.clone();
    let b = hooked_bundle(
        &daemon,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "while [ ! -e /go ]; do /bin/busybox sleep 0.05; done; /bin/busybox sync; exec /bin/busybox sleep 60",
        ],
    );
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false))
        .expect("writable rootfs");
    runc_run_detached(&b);
    let pins = pins_of(&daemon);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
    let out = daemon.out.join(format!("{}.json", b.id));
    std::fs::remove_file(&out).expect("the stop wrote the running container");
    // The sync happens with no daemon at all.
    std::fs::write(b.rootfs().join("go"), b"").expect("go");
    let t0 = Instant::now();
    while !std::fs::read_to_string(format!(
        "/proc/{}/cmdline",
        integration::learner::state_pid(&b.id)
    ))
    .unwrap_or_default()
    .contains("sleep\0")
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "no sleep");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = daemon.uninstall(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 still running"), "{err}");
    assert!(!pins.exists(), "pins left");
    let obs = auditor::observe::load(&out).expect("written by --uninstall");
    assert_eq!(calls(&obs, "sync"), 1, "{:?}", workload_names(&obs));
    let _ = runc(&["delete", "--force", &b.id]);

    // Pins of another build (another object id).
    std::fs::create_dir_all(pins.join("obj-00000000deadbeef")).expect("foreign pins");
    let o = Command::new(auditor_bin())
        .args(["daemon", "--socket"])
        .arg(&daemon.socket)
        .arg("--output-dir")
        .arg(&daemon.out)
        .output()
        .expect("daemon");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("another auditor build (00000000deadbeef") && err.contains("--uninstall"),
        "{err}"
    );
    let o = daemon.uninstall(&[]);
    assert!(!o.status.success());
    assert!(pins.exists());
    let o = daemon.uninstall(&["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!pins.exists());
    // And the instance serves again.
    let _d = Daemon::start_in(&dir);
}
