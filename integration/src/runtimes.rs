//! Real OCI runtimes (runc, crun) running busybox containers, and learning a runtime's baseline:
//! the syscalls its own init makes between loading the container's seccomp filter and `execve`
//! of the workload.
//!
//! The baseline is learned by running the runtime under `auditor learn` with a profile that
//! refuses everything but what is known so far: every call the filter refuses is one the runtime
//! (or the workload) made after the filter was loaded — the point where its init's `seccomp()`
//! returned. Calls made by the runtime's own executable join the allow list and the runtime runs
//! again, until nothing new is refused and the container runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::{auditor_bin, unique_name};

/// The busybox binary inside the test rootfs; the workload is `busybox true`.
pub const WORKLOAD: &str = "/bin/busybox";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    Crun,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// `runc --version` → "1.1.5+ds1"'s release part "1.1.5".
    pub fn version(self) -> anyhow::Result<String> {
        let out = Command::new(self.name()).arg("--version").output().with_context(|| format!("{} --version", self.name()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(2))
            .context("unexpected --version output")?;
        Ok(v.split(['+', '~', '-']).next().unwrap_or(v).to_string())
    }
}

/// An OCI bundle with a busybox rootfs, removed on drop (with its container).
pub struct Bundle {
    pub dir: PathBuf,
    pub id: String,
    runtime: Runtime,
}

impl Bundle {
    pub fn busybox(runtime: Runtime, args: &[&str]) -> anyhow::Result<Self> {
        let id = unique_name("auditor-rt");
        let dir = std::env::temp_dir().join(&id);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("copy /bin/busybox (busybox-static)")?;
        let st = Command::new(runtime.name()).arg("spec").current_dir(&dir).status()?;
        if !st.success() {
            bail!("{} spec failed", runtime.name());
        }
        let b = Bundle { dir, id, runtime };
        b.edit(|c| {
            c["process"]["args"] = serde_json::json!(args);
            c["process"]["terminal"] = serde_json::json!(false);
        })?;
        Ok(b)
    }

    pub fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) -> anyhow::Result<()> {
        let p = self.dir.join("config.json");
        let mut c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
        f(&mut c);
        std::fs::write(&p, serde_json::to_string_pretty(&c)?)?;
        Ok(())
    }

    /// The command that runs the container to completion. crun refuses this machine's hybrid
    /// cgroup layout, so it runs in a private mount namespace without the cgroup2 mount
    /// (see ../shared/TOOLCHAIN.md).
    pub fn run_command(&self) -> Vec<String> {
        let bundle = self.dir.display().to_string();
        match self.runtime {
            Runtime::Runc => vec!["runc".into(), "run".into(), "--bundle".into(), bundle, self.id.clone()],
            Runtime::Crun => vec![
                "unshare".into(),
                "-m".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                format!(
                    "(umount /sys/fs/cgroup/unified 2>/dev/null || true) && exec crun run --bundle {bundle} {}",
                    self.id
                ),
            ],
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(self.runtime.name()).args(["delete", "-f", &self.id]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove bundles and containers left by earlier runs that died.
pub fn clear_stale(runtime: Runtime) {
    if let Ok(out) = Command::new(runtime.name()).args(["list", "-q"]).output() {
        for id in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("auditor-rt-")) {
            let _ = Command::new(runtime.name()).args(["delete", "-f", id]).output();
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("auditor-rt-").and_then(|r| r.split('-').next()) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

/// What one round saw refused: by the runtime's own executables, and by the workload.
struct Refused {
    runtime: BTreeSet<String>,
    workload: BTreeSet<String>,
    ok: bool,
}

/// One round: run the container with only `allow` allowed.
fn round(runtime: Runtime, allow: &BTreeSet<String>) -> anyhow::Result<Refused> {
    let bundle = Bundle::busybox(runtime, &[WORKLOAD, "true"])?;
    let names: Vec<&String> = allow.iter().collect();
    bundle.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        });
    })?;
    let out = bundle.dir.join("observation.json");
    let o = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "-o"])
        .arg(&out)
        .arg("--")
        .args(bundle.run_command())
        .output()
        .context("run auditor learn")?;
    let obs = auditor::observe::load(&out)
        .with_context(|| format!("no observation; auditor said: {}", String::from_utf8_lossy(&o.stderr)))?;
    let mut r = Refused { runtime: BTreeSet::new(), workload: BTreeSet::new(), ok: o.status.success() };
    for s in &obs.syscalls {
        for exe in s.refused_executables.keys() {
            if exe == WORKLOAD {
                r.workload.insert(s.name.clone());
            } else {
                r.runtime.insert(s.name.clone());
            }
        }
    }
    Ok(r)
}

/// Learn `runtime`'s baseline to a fixpoint (at most `max_rounds` runs). The workload's own
/// refused calls are allowed too, so that the container can run, but are not the runtime's.
pub fn learn_baseline(runtime: Runtime, max_rounds: usize) -> anyhow::Result<BTreeSet<String>> {
    clear_stale(runtime);
    let mut baseline: BTreeSet<String> = BTreeSet::new();
    let mut allow: BTreeSet<String> = BTreeSet::new();
    for i in 0..max_rounds {
        let r = round(runtime, &allow)?;
        let before = allow.len();
        baseline.extend(r.runtime.iter().cloned());
        allow.extend(r.runtime.into_iter().chain(r.workload));
        if allow.len() == before {
            if !r.ok {
                bail!("{}: the container fails under {allow:?} after {i} rounds, with nothing refused", runtime.name());
            }
            return Ok(baseline);
        }
    }
    bail!("{}: no fixpoint after {max_rounds} rounds (so far: {baseline:?})", runtime.name())
}
