//! A hostile workload points an emulation at a stalled file system: a FUSE server that reads
//! the request and never answers (one that never reads proves nothing: SIGKILL still works
//! there). The helper that resolves the path sleeps where no signal reaches it; the broker must
//! answer the call at the deadline anyway, serve other calls meanwhile, and stop on time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration::agent::{Agent, Protocol};
use integration::{
    audit_records as records, auditor_bin, require_root, require_tool, run_with_timeout,
    unique_name, workload,
};

const PREFIX: &str = "auditor-stall";

const MKNOD_POLICY: &str = "version = 1\ndefault_action = \"allow\"\n\n[[rule]]\nnames = [\"mknod\", \"mknodat\"]\naction = \"notify\"\nhandler = \"emulate-mknod\"\nparams = { devices = [\"c 1:3\"] }\n";

/// Mount points of earlier runs that died (their FUSE server gone, the mount left).
fn clear_stale_mounts() {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for mnt in info.lines().filter_map(|l| l.split(' ').nth(4)) {
        let Some(rest) = mnt
            .split('/')
            .find_map(|c| c.strip_prefix(&format!("{PREFIX}-")))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("umount").args(["-l", mnt]).output();
        }
    }
}

/// A scratch directory with a stalling FUSE file system mounted on `fuse`; the server is
/// killed and the mount detached on drop, whatever the test did.
struct Stall {
    dir: PathBuf,
    fuse: PathBuf,
    server: Child,
}

impl Stall {
    fn start() -> Stall {
        clear_stale_mounts();
        let dir = std::env::temp_dir().join(unique_name(PREFIX));
        let fuse = dir.join("fuse");
        std::fs::create_dir_all(&fuse).expect("scratch dir");
        let server = Command::new(workload("stall_fuse"))
            .arg("/dev/fuse")
            .arg(&fuse)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("fuse.log")).expect("fuse log"))
            .spawn()
            .expect("start the FUSE server");
        let s = Stall { dir, fuse, server };
        let t = Instant::now();
        while s.connection().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the FUSE file system did not mount: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fuse.log")).unwrap_or_default()
    }

    /// The FUSE connection's number (its superblock's minor), once mounted.
    fn connection(&self) -> Option<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let me = self.fuse.display().to_string();
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(me.as_str()) && l.contains(" - fuse"))
            .and_then(|l| l.split(' ').nth(2))
            .and_then(|d| d.strip_prefix("0:"))
            .map(str::to_owned)
    }

    /// Requests waiting on the connection.
    fn waiting(&self, conn: &str) -> u64 {
        waiting(&fuse_connections().join(conn))
    }

    fn policy(&self) -> PathBuf {
        let p = self.dir.join("policy.toml");
        std::fs::write(&p, MKNOD_POLICY).expect("policy");
        p
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.fuse).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A test's scratch directory, removed on drop — with the container FUSE server started from
/// it, if the test failed before its script ended it.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(self.0.join("fuse"))
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ready(test: &str) -> bool {
    require_root(test) && require_tool(test, "umount").is_some() && Path::new("/dev/fuse").exists()
}

/// A rootful container (its own mount namespace, host root inside, as runc runs one without a
/// user namespace) mounts its own stalling FUSE file system; one mknod stalls there; another,
/// started while the first is stuck, is served at once; the stuck one is answered EIO at the
/// deadline, the record says why, and with --abort-stalled-fuse the container's connection is
/// aborted, so the helper ends too. (In a user namespace the helper, host root, is refused by
/// the container's own FUSE mounts at once: FUSE lets in only the mounting user's namespace.)
#[test]
fn a_mknod_stuck_on_a_stalled_fuse_server_is_answered_at_the_deadline() {
    let test = "a_mknod_stuck_on_a_stalled_fuse_server_is_answered_at_the_deadline";
    if !ready(test) || require_tool(test, "unshare").is_none() {
        return;
    }
    clear_stale_mounts();
    let dir = std::env::temp_dir().join(unique_name(PREFIX));
    std::fs::create_dir_all(dir.join("fuse")).expect("scratch dir");
    let _cleanup = Cleanup(dir.clone());
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, MKNOD_POLICY).expect("policy");
    let log = dir.join("audit.jsonl");
    let fuse = dir.join("fuse");
    let script = format!(
        "{server} /dev/fuse {fuse} 2>{dir}/fuse.log & s=$!; \
         while ! grep -q ' {fuse} ' /proc/self/mountinfo; do sleep 0.05; done; \
         (mknod {fuse}/x/null c 1 3; echo stalled=$?) & m=$!; sleep 0.5; \
         mknod {dir}/null c 1 3; echo served=$?; wait $m; kill $s",
        server = workload("stall_fuse"),
        fuse = fuse.display(),
        dir = dir.display()
    );
    let t = Instant::now();
    let o = run_with_timeout(
        Command::new(auditor_bin())
            .args([
                "enforce",
                "--helper-timeout",
                "3s",
                "--abort-stalled-fuse",
                "--audit-log",
            ])
            .arg(&log)
            .arg("--policy")
            .arg(&policy)
            .args([
                "--",
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ]),
        Duration::from_secs(60),
    );
    let took = t.elapsed();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let fuse_log = std::fs::read_to_string(dir.join("fuse.log")).unwrap_or_default();
    assert!(
        fuse_log.contains("stalled /x"),
        "the FUSE server never read the request: {fuse_log}\n{out}\n{err}"
    );
    // The second call was served while the first was stuck: it printed first.
    let served = out
        .find("served=0")
        .unwrap_or_else(|| panic!("not served:\n{out}\n{err}"));
    let stalled = out
        .find("stalled=1")
        .unwrap_or_else(|| panic!("not answered:\n{out}\n{err}"));
    assert!(served < stalled, "{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let recs = records(&log);
    let stuck = recs
        .iter()
        .find(|r| {
            r["decoded"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("/fuse/x/null"))
        })
        .unwrap_or_else(|| panic!("no record of the stuck call: {recs:#?}"));
    assert_eq!(stuck["result"], "-EIO", "{stuck:#}");
    let why = stuck["decoded"]["why"].as_str().unwrap_or_default();
    assert!(why.contains("did not finish within 3s"), "{stuck:#}");
    assert!(
        why.contains("aborted the stalled FUSE connection"),
        "{stuck:#}"
    );
    // The aborted connection has nothing waiting on it any more: the helper ended.
    let conn = why
        .rsplit("0:")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let waiting = Path::new("/sys/fs/fuse/connections")
        .join(&conn)
        .join("waiting");
    let t = Instant::now();
    while std::fs::read_to_string(&waiting).is_ok_and(|w| w.trim() != "0") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "requests still waiting on connection {conn}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without --abort-stalled-fuse the helper stays stuck, but the call is answered all the
/// same, and SIGTERM to auditor with that helper in flight still ends it within the deadline.
#[test]
fn sigterm_with_a_helper_stuck_in_fuse_ends_auditor_within_the_deadline() {
    let test = "sigterm_with_a_helper_stuck_in_fuse_ends_auditor_within_the_deadline";
    if !ready(test) {
        return;
    }
    let s = Stall::start();
    let conn = s.connection().expect("connection");
    let mut auditor = Command::new(auditor_bin())
        .args(["enforce", "--helper-timeout", "4s", "--policy"])
        .arg(s.policy())
        .args(["--", "sh", "-c"])
        .arg(format!(
            "mknod {}/x/null c 1 3; echo stalled=$?; sleep 100",
            s.fuse.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start auditor");
    let t = Instant::now();
    while !s.log().contains("stalled /x") {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the FUSE server never read the request"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.waiting(&conn) > 0, "nothing waits on the FUSE connection");
    // SAFETY: kill with our own child's pid.
    unsafe { libc::kill(auditor.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = auditor.try_wait() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(12) {
            let _ = auditor.kill();
            panic!("auditor did not end within 12 s of SIGTERM with a helper stuck");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success() || status.code().is_some(), "{status:?}");
}

/// `auditor agent` serving real runc containers: one rootful container mounts its own stalling
/// FUSE file system and mknods into it; a second container is served normally meanwhile; the
/// stuck call is answered at the deadline; and SIGTERM to the agent with a helper stuck ends
/// it within the deadline.
#[test]
fn the_agent_serves_other_containers_while_one_stalls_and_stops_on_time() {
    use integration::runtimes::{clear_stale, Bundle, Runtime};
    let test = "the_agent_serves_other_containers_while_one_stalls_and_stops_on_time";
    if !ready(test) || require_tool(test, "runc").is_none() {
        return;
    }
    clear_stale(Runtime::Runc);
    clear_stale_mounts();
    let dir = std::env::temp_dir().join(unique_name(PREFIX));
    std::fs::create_dir_all(dir.join("policies")).expect("scratch dir");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let _cleanup = Cleanup(dir.clone());
    std::fs::write(dir.join("policies/mknod.toml"), MKNOD_POLICY).expect("policy");
    // Stopped on drop, even when an assertion fails first.
    let mut agent = Agent::start_in(
        &dir,
        Protocol::Oci,
        &["--helper-timeout", "6s", "--abort-stalled-fuse"],
        &[],
    );
    let (socket, audit) = (agent.socket.clone(), agent.audit.clone());
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket.display().to_string(),
        "listenerMetadata": "mknod",
        "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_NOTIFY"}],
    });
    // A rootful container with /dev/fuse and CAP_SYS_ADMIN, mounting the stalling server.
    let stalling = || {
        let b = Bundle::busybox(
            Runtime::Runc,
            &[
                "/bin/busybox",
                "sh",
                "-c",
                "/stall_fuse /dev/fuse /mnt 2>/tmp/fuse.log & \
                 while ! busybox grep -q ' /mnt ' /proc/self/mountinfo; do busybox sleep 0.05; done; \
                 busybox mknod /mnt/x/null c 1 3; echo stalled=$?",
            ],
        )
        .expect("bundle");
        std::fs::copy(workload("stall_fuse"), b.dir.join("rootfs/stall_fuse")).expect("copy");
        std::fs::create_dir_all(b.dir.join("rootfs/mnt")).expect("mnt");
        b.edit(|c| {
            for set in ["bounding", "effective", "permitted"] {
                if let Some(caps) = c["process"]["capabilities"][set].as_array_mut() {
                    caps.push("CAP_SYS_ADMIN".into());
                }
            }
            c["linux"]["devices"] = serde_json::json!([{
                "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438
            }]);
            if let Some(rules) = c["linux"]["resources"]["devices"].as_array_mut() {
                rules.push(serde_json::json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}));
            }
            // A tmpfs /tmp, writable, for the server's log.
            if let Some(m) = c["mounts"].as_array_mut() {
                m.push(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
            }
            c["root"]["readonly"] = serde_json::json!(false);
        })
        .expect("edit");
        b.set_seccomp(&profile).expect("seccomp");
        b
    };
    let stuck = stalling();
    let runner = {
        let argv = stuck.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(60))
        })
    };
    // Stuck once the agent's helper resolves /mnt/x (a record only comes at the deadline).
    let t = Instant::now();
    while !stuck_waiting() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the container never stalled: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Meanwhile another container is served at once.
    let other = Bundle::busybox(
        Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox mknod /tmp/null c 1 3; echo mknod=$?",
        ],
    )
    .expect("bundle");
    other.edit(|c| {
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(serde_json::json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}));
        }
    })
    .expect("edit");
    other.set_seccomp(&profile).expect("seccomp");
    let t = Instant::now();
    let o = {
        let argv = other.run_command();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        run_with_timeout(&mut c, Duration::from_secs(60))
    };
    let served_in = t.elapsed();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("mknod=0"),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = runner.join().expect("runner");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("stalled=1"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        served_in < Duration::from_secs(5),
        "the other container waited {served_in:?}"
    );
    let recs = records(&audit);
    let why = recs
        .iter()
        .find(|r| r["container"] == stuck.id.as_str() && r["result"] == "-EIO")
        .and_then(|r| r["decoded"]["why"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no EIO record for the stuck container: {recs:#?}"));
    assert!(
        why.contains("did not finish within 6s") && why.contains("aborted"),
        "{why}"
    );

    // SIGTERM with a helper stuck: the agent ends within the deadline.
    let stuck_again = stalling();
    let runner = {
        let argv = stuck_again.run_command();
        std::thread::spawn(move || {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            run_with_timeout(&mut c, Duration::from_secs(60))
        })
    };
    let t = Instant::now();
    while !stuck_waiting() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the second container never stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.signal(libc::SIGTERM);
    assert!(
        agent.wait_exit(Duration::from_secs(12)).is_some(),
        "the agent did not stop within 12 s of SIGTERM with a helper stuck"
    );
    let _ = runner.join();
}

/// Whether some FUSE connection has a request waiting.
fn stuck_waiting() -> bool {
    std::fs::read_dir(fuse_connections()).is_ok_and(|d| d.flatten().any(|e| waiting(&e.path()) > 0))
}

/// fusectl's directory of FUSE connections (mounted by auditor, or here if nobody has yet).
fn fuse_connections() -> &'static Path {
    let base = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(base).is_ok_and(|mut d| d.next().is_none()) {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(base)
            .output();
    }
    base
}

/// Requests waiting on the FUSE connection whose fusectl directory is `conn`.
fn waiting(conn: &Path) -> u64 {
    std::fs::read_to_string(conn.join("waiting"))
        .ok()
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}
