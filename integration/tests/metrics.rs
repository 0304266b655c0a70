//! The Prometheus endpoints of `auditor agent` and `auditor daemon` (`--metrics-addr`),
//! scraped for real over HTTP while they serve runc containers, and parsed with a Prometheus
//! text parser; health checks; garbage and silent clients. Needs root, runc and
//! busybox-static; under CI=true it fails rather than skips.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::agent::Agent;
use integration::learner::{self, Daemon};
use integration::runtimes::{Bundle, Runtime};
use integration::scrape::{get, http, logged_addr, scrape, value};
use integration::{describe, run_with_timeout, unique_name, Scratch, MKNOD_NOTIFY};

#[test]
fn agent_metrics_count_decisions_and_survive_bad_clients() {
    let test = "agent_metrics_count_decisions_and_survive_bad_clients";
    if !learner::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-metrics");
    s.write("policies/web.toml", MKNOD_NOTIFY);
    let agent = Agent::oci_with(&s, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = logged_addr(|| agent.log_text());
    assert_eq!(get(addr, "/healthz").0, 200);
    assert_eq!(get(addr, "/readyz").0, 200);
    let before = scrape(addr);
    assert_eq!(value(&before, "auditor_agent_containers", &[]), Some(0.0));

    let b = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox mknod /tmp/null c 1 3; busybox mknod /tmp/b b 8 0; echo done",
        ],
    )
    .expect("bundle");
    b.user_namespace().expect("userns");
    b.set_seccomp(&serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "listenerPath": agent.socket.display().to_string(),
        "listenerMetadata": "web",
        "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("seccomp");
    let o = run_with_timeout(
        Command::new("runc")
            .args(["run", "--bundle", &b.dir.display().to_string(), &b.id])
            .stdin(Stdio::null()),
        Duration::from_secs(60),
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("done"),
        "{}",
        describe(&o)
    );
    agent.wait_records(|r| r.iter().filter(|r| r["container"] == b.id.as_str()).count() >= 2);

    let after = scrape(addr);
    let emulated = [
        ("policy", "web"),
        ("syscall", "mknodat"),
        ("decision", "emulated"),
        ("handler", "emulate-mknod"),
    ];
    assert_eq!(
        value(&after, "auditor_agent_decisions_total", &emulated),
        Some(1.0)
    );
    let denied = [
        ("policy", "web"),
        ("syscall", "mknodat"),
        ("decision", "denied"),
    ];
    assert_eq!(
        value(&after, "auditor_agent_decisions_total", &denied),
        Some(1.0)
    );
    assert_eq!(
        value(&after, "auditor_agent_containers_served_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "auditor_agent_notification_latency_seconds_count",
            &[]
        ),
        Some(2.0),
        "{:?}",
        after.samples.iter().map(|s| &s.metric).collect::<Vec<_>>()
    );

    // Garbage, a wrong method, an unknown path: answered or dropped, never a stop.
    let (status, _) = http(addr, b"\x00\x01garbage\r\n\r\n");
    assert!(status == 400 || status == 0, "{status}");
    assert_eq!(
        http(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .0,
        405
    );
    assert_eq!(get(addr, "/nope").0, 404);
    // More silent clients than connection slots: dropped after the header timeout, then the
    // endpoint serves again.
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(get(addr, "/healthz").0, 200);
    drop(silent);
}

#[test]
fn daemon_metrics_count_containers_learned() {
    let test = "daemon_metrics_count_containers_learned";
    if !learner::ready(test) {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("auditor-daemon"));
    let mut daemon = Daemon::start_with(&dir, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = logged_addr(|| daemon.log_text());
    assert_eq!(get(addr, "/readyz").0, 200);
    let b = learner::hooked_bundle(&daemon, &["/bin/busybox", "uname"]);
    let o = learner::runc_run(&b);
    assert!(o.status.success(), "{}", describe(&o));
    let obs = daemon.observation(&b.id);
    let calls: u64 = obs.syscalls.iter().map(|s| s.count).sum();
    // The file is written before the counters are read back: poll for them.
    let t0 = Instant::now();
    let m = loop {
        let m = scrape(addr);
        if value(&m, "auditor_daemon_observations_written_total", &[]) == Some(1.0) {
            break m;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", m.samples);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        value(
            &m,
            "auditor_daemon_registrations_total",
            &[("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "auditor_daemon_containers_tracked", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "auditor_daemon_observed_calls_total", &[]),
        Some(calls as f64)
    );
    assert_eq!(
        value(&m, "auditor_daemon_lost_observations_total", &[]),
        Some(0.0)
    );
    assert!(daemon.stop().success());
}
