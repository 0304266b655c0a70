//! The learner at node scale (issue 15): one `auditor daemon` learning 200 short-lived runc
//! containers (busybox, registered by `auditor hook` as a createRuntime hook), first one after
//! another, then all at once. Reported: the daemon's peak RSS (target ≤ 64 MiB with 200
//! containers tracked; SPO's node agent is reported at gigabytes), the hook's registration
//! round trip per container (p50/p99, measured around `auditor hook` by a bash wrapper with
//! `$EPOCHREALTIME`, so it includes one bash start-up), the most containers tracked at once (the
//! daemon's own gauge, scraped), and lost observations (target: none).
//!
//! The containers share one read-only busybox root file system; each bundle is `runc spec`'s
//! with its args, no terminal and the hook. The concurrent ones are started all at once and run
//! detached (`runc run -d`, `sleep`), so that 200 are alive together without 200 runc parents;
//! once all run, they are killed. On a 2-core machine, 200 runc starts at once queue for the
//! CPUs: the concurrent registration times include that wait.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::util::{have, phase};

const CONTAINERS: usize = 200;
const RSS_TARGET_MIB: f64 = 64.0;
const INSTANCE: &str = "bench-scale";

struct Daemon {
    child: std::process::Child,
    bin: PathBuf,
    socket: PathBuf,
    out: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let socket = dir.join("daemon.sock");
        let out = dir.join("out");
        let log = dir.join("daemon.log");
        let child = Command::new(bin)
            .args(["daemon", "--instance", INSTANCE, "--socket"])
            .arg(&socket)
            .arg("--output-dir")
            .arg(&out)
            .args(["--max-containers", "256", "--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting auditor daemon")?;
        let d = Daemon {
            child,
            bin: bin.to_owned(),
            socket,
            out,
            log,
        };
        let t0 = Instant::now();
        while !d.socket.exists() {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("the daemon's socket did not appear: {}", d.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics_addr(&self) -> Option<String> {
        self.log_text()
            .lines()
            .find_map(|l| l.split("metrics on http://").nth(1))
            .and_then(|r| r.split('/').next())
            .map(str::to_owned)
    }

    /// VmHWM and VmRSS, KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(&self.bin)
            .args([
                "daemon",
                "--uninstall",
                "--force",
                "--instance",
                INSTANCE,
                "--socket",
            ])
            .arg(&self.socket)
            .arg("--output-dir")
            .arg(&self.out)
            .stdin(Stdio::null())
            .output();
    }
}

/// `auditor_daemon_containers_tracked` from the daemon's endpoint.
fn tracked(addr: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix("auditor_daemon_containers_tracked "))
        .and_then(|v| v.trim().parse().ok())
}

/// A bundle of the shared root file system running `args`, registered through `hook`.
fn bundle(
    dir: &Path,
    template: &serde_json::Value,
    rootfs: &Path,
    hook: &Path,
    args: &[&str],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut c = template.clone();
    c["root"] = serde_json::json!({ "path": rootfs.display().to_string(), "readonly": true });
    c["process"]["args"] = serde_json::json!(args);
    c["process"]["terminal"] = serde_json::json!(false);
    c["hooks"] = serde_json::json!({
        "createRuntime": [{ "path": hook.display().to_string(), "args": ["hook"] }]
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string(&c)?)?;
    Ok(())
}

/// Registration round trips, ms, from the wrapper's lines (`t0 t1`).
fn latencies(path: &Path) -> Vec<f64> {
    let mut v: Vec<f64> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((b.parse::<f64>().ok()? - a.parse::<f64>().ok()?) * 1000.0)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn runc_delete(id: &str) {
    let _ = Command::new("runc")
        .args(["delete", "--force", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn run_scale(bin: &Path) -> anyhow::Result<()> {
    phase(
        "bench: the learner at node scale (200 runc containers)",
        || {
            for tool in ["runc", "bash"] {
                if !have(tool) {
                    bail!("{tool} is needed (cargo xtask setup)");
                }
            }
            let dir = tempfile::Builder::new().prefix("auditor-scale").tempdir()?;
            let d = dir.path();
            let rootfs = d.join("rootfs");
            for sub in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
                std::fs::create_dir_all(rootfs.join(sub))?;
            }
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
                .context("copying /bin/busybox (busybox-static)")?;
            let st = Command::new("runc").arg("spec").current_dir(d).status()?;
            if !st.success() {
                bail!("runc spec failed");
            }
            let template: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("config.json"))?)?;
            let daemon = Daemon::start(bin, d)?;

            // The hook, timed around: bash's $EPOCHREALTIME costs no process.
            let hook = |name: &str| -> anyhow::Result<(PathBuf, PathBuf)> {
                let lat = d.join(format!("{name}.lat"));
                let path = d.join(format!("hook-{name}.sh"));
                std::fs::write(
                &path,
                format!(
                    "#!/bin/bash\nt0=$EPOCHREALTIME\n'{}' hook --socket '{}' --runtime runc\nrc=$?\necho \"$t0 $EPOCHREALTIME\" >> '{}'\nexit $rc\n",
                    bin.display(),
                    daemon.socket.display(),
                    lat.display()
                ),
            )?;
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
                Ok((path, lat))
            };
            let pid = std::process::id();
            let ids = |kind: &str| -> Vec<String> {
                (0..CONTAINERS)
                    .map(|i| format!("auditor-scale-{pid}-{kind}-{i}"))
                    .collect()
            };

            // One after another.
            let (hook_seq, lat_seq) = hook("sequential")?;
            let seq_ids = ids("seq");
            let t0 = Instant::now();
            for id in &seq_ids {
                let b = d.join(id);
                bundle(&b, &template, &rootfs, &hook_seq, &["/bin/busybox", "true"])?;
                let o = Command::new("runc")
                    .args(["run", "--bundle"])
                    .arg(&b)
                    .arg(id)
                    .stdin(Stdio::null())
                    .output()?;
                runc_delete(id);
                if !o.status.success() {
                    bail!("runc run {id}: {}", String::from_utf8_lossy(&o.stderr));
                }
            }
            let seq_s = t0.elapsed().as_secs_f64();
            eprintln!("  {CONTAINERS} ran one after another in {seq_s:.1} s");

            // All at once: detached, sleeping until killed, so that all are alive together.
            let (hook_conc, lat_conc) = hook("concurrent")?;
            let conc_ids = ids("conc");
            for id in &conc_ids {
                bundle(
                    &d.join(id),
                    &template,
                    &rootfs,
                    &hook_conc,
                    &["/bin/busybox", "sleep", "600"],
                )?;
            }
            // One shell starts them all in the background and waits: each runc parent exits once
            // its container runs (keeping only a file for its errors).
            let mut script = String::from("#!/bin/sh\n");
            for id in &conc_ids {
                script.push_str(&format!(
                "runc run -d --bundle '{}' '{id}' </dev/null >/dev/null 2>'{}' || echo '{id}' >> '{}' &\n",
                d.join(id).display(),
                d.join(format!("{id}.err")).display(),
                d.join("failed").display()
            ));
            }
            script.push_str("wait\n");
            let start_all = d.join("start-all.sh");
            std::fs::write(&start_all, script)?;
            let t0 = Instant::now();
            let st = Command::new("sh")
                .arg(&start_all)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !st.success() {
                bail!("starting the containers: {st}");
            }
            let mut max_tracked = 0.0f64;
            let mut peak_rss = 0u64;
            let failed: Vec<String> = std::fs::read_to_string(d.join("failed"))
                .unwrap_or_default()
                .lines()
                .map(|id| {
                    let said =
                        std::fs::read_to_string(d.join(format!("{id}.err"))).unwrap_or_default();
                    format!("{id}: {}", said.trim())
                })
                .collect();
            let started_s = t0.elapsed().as_secs_f64();
            eprintln!("  {CONTAINERS} started at once in {started_s:.1} s; sampling the daemon");
            // While they sleep: the daemon's gauge and memory.
            while t0.elapsed() < Duration::from_secs(7) {
                if let Some(t) = daemon.metrics_addr().as_deref().and_then(tracked) {
                    max_tracked = max_tracked.max(t);
                }
                peak_rss = peak_rss.max(daemon.memory().1);
                std::thread::sleep(Duration::from_millis(200));
            }
            // Deleted: their cgroups go, which ends their learning.
            for id in &conc_ids {
                runc_delete(id);
            }
            eprintln!("  killed and deleted; waiting for their observations");
            // Every observation written: the sequential ones and the concurrent ones once they end.
            let deadline = Instant::now() + Duration::from_secs(60);
            let expected = 2 * CONTAINERS - failed.len();
            let files = loop {
                let n = std::fs::read_dir(&daemon.out)
                    .map(|r| r.count())
                    .unwrap_or(0);
                if n >= expected || Instant::now() > deadline {
                    break n;
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            for id in &conc_ids {
                runc_delete(id);
            }
            let (hwm, _) = daemon.memory();
            let mut lost = 0u64;
            for e in std::fs::read_dir(&daemon.out)? {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(e?.path())?)?;
                lost += v["loss"]["total"].as_u64().unwrap_or(0);
            }
            let (seq, conc) = (latencies(&lat_seq), latencies(&lat_conc));
            let mib = |kib: u64| kib as f64 / 1024.0;
            eprintln!("\nlearner at node scale: {CONTAINERS} runc containers one after another, then {CONTAINERS} at once (one daemon):");
            eprintln!(
            "  one after another:  {seq_s:.1} s ({:.0} ms per container, runc included); registration p50 {:.1} ms, p99 {:.1} ms ({} timed)",
            seq_s * 1000.0 / CONTAINERS as f64,
            pct(&seq, 0.5),
            pct(&seq, 0.99),
            seq.len()
        );
            eprintln!(
            "  all at once:        {CONTAINERS} started in {started_s:.1} s; registration p50 {:.1} ms, p99 {:.1} ms ({} timed); at most {max_tracked:.0} tracked at once{}",
            pct(&conc, 0.5),
            pct(&conc, 0.99),
            conc.len(),
            if failed.is_empty() { String::new() } else { format!("; {} failed to start: {}", failed.len(), failed[0]) }
        );
            eprintln!(
            "  daemon memory:      peak RSS {:.1} MiB (VmHWM; {:.1} MiB sampled while they ran), target ≤ {RSS_TARGET_MIB} MiB: {}",
            mib(hwm),
            mib(peak_rss),
            if mib(hwm) <= RSS_TARGET_MIB { "met" } else { "MISSED" }
        );
            eprintln!(
                "  observations:       {files} of {expected} written, {lost} observations lost: {}",
                if lost == 0 && files >= expected {
                    "met"
                } else {
                    "MISSED"
                }
            );
            Ok(())
        },
    )
}
