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
    Lxc,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Lxc => "lxc",
        }
    }

    /// The program whose presence means the runtime is installed.
    pub fn tool(self) -> &'static str {
        match self {
            Runtime::Lxc => "lxc-execute",
            r => r.name(),
        }
    }

    /// `runc --version` → "1.1.5+ds1"'s release part "1.1.5"; `lxc-start --version` → "5.0.2".
    pub fn version(self) -> anyhow::Result<String> {
        let prog = if self == Runtime::Lxc {
            "lxc-start"
        } else {
            self.name()
        };
        let out = Command::new(prog)
            .arg("--version")
            .output()
            .with_context(|| format!("{prog} --version"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().context("empty --version output")?;
        let v = if self == Runtime::Lxc {
            first.split_whitespace().next()
        } else {
            first.split_whitespace().nth(2)
        }
        .context("unexpected --version output")?;
        Ok(v.split(['+', '~', '-']).next().unwrap_or(v).to_string())
    }
}

/// An LXC busybox container (`lxc-create -t busybox`, offline, no network, unconfined), destroyed
/// on drop.
pub struct LxcContainer {
    pub name: String,
}

impl LxcContainer {
    pub fn busybox() -> anyhow::Result<Self> {
        let name = unique_name("auditor-rt");
        let o = Command::new("lxc-create")
            .args(["-n", &name, "-t", "busybox"])
            .output()?;
        if !o.status.success() {
            bail!("lxc-create: {}", String::from_utf8_lossy(&o.stderr));
        }
        let c = LxcContainer { name };
        let cfg = c.config_path();
        let text = std::fs::read_to_string(&cfg)?;
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("lxc.net.0.") && !l.starts_with("lxc.apparmor."))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            &cfg,
            format!("{text}lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n"),
        )?;
        Ok(c)
    }

    pub fn config_path(&self) -> PathBuf {
        PathBuf::from("/var/lib/lxc")
            .join(&self.name)
            .join("config")
    }

    /// Use `profile` (LXC seccomp policy text) as the container's seccomp profile.
    pub fn set_seccomp(&self, profile: &str) -> anyhow::Result<()> {
        let path = PathBuf::from("/var/lib/lxc")
            .join(&self.name)
            .join("auditor-seccomp");
        std::fs::write(&path, profile)?;
        let cfg = self.config_path();
        let text = std::fs::read_to_string(&cfg)?;
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("lxc.seccomp.profile"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            &cfg,
            format!("{text}lxc.seccomp.profile = {}\n", path.display()),
        )?;
        Ok(())
    }

    /// Set configuration keys, replacing earlier values of the same keys.
    pub fn set_config(&self, entries: &[(&str, &str)]) -> anyhow::Result<()> {
        let cfg = self.config_path();
        let text = std::fs::read_to_string(&cfg)?;
        let mut text: String = text
            .lines()
            .filter(|l| {
                !entries
                    .iter()
                    .any(|(k, _)| l.split('=').next().is_some_and(|lk| lk.trim() == *k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        for (k, v) in entries {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(&cfg, text)?;
        Ok(())
    }

    /// Make the container unprivileged: its ids 0..65536 map to `first_host_id`.. on the host,
    /// the rootfs is handed to those ids and the container directory made traversable by them.
    pub fn unprivileged(&self, first_host_id: u32) -> anyhow::Result<()> {
        let (u, g) = (
            format!("u 0 {first_host_id} 65536"),
            format!("g 0 {first_host_id} 65536"),
        );
        let cfg = self.config_path();
        let text = std::fs::read_to_string(&cfg)?;
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("lxc.idmap"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&cfg, format!("{text}lxc.idmap = {u}\nlxc.idmap = {g}\n"))?;
        let dir = PathBuf::from("/var/lib/lxc").join(&self.name);
        // The busybox template creates everything as root: a plain recursive chown shifts it.
        let ids = format!("{first_host_id}:{first_host_id}");
        let o = Command::new("chown")
            .args(["-hR", &ids])
            .arg(dir.join("rootfs"))
            .output()?;
        if !o.status.success() {
            bail!(
                "chown of the rootfs: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(())
    }

    /// `lxc-execute -n NAME -- ARGS` for an [`LxcContainer::unprivileged`] container. LXC maps
    /// ids through newuidmap/newgidmap whenever they are on PATH, and those insist on
    /// /etc/subuid ranges this host does not have; root may write the maps itself, which LXC
    /// does when they are not on PATH. The command runs with PATH=/bin inside, under
    /// `timeout SECS` (lxc-execute can hang when the container's init is refused).
    pub fn execute_unprivileged(
        &self,
        timeout_secs: u32,
        args: &[&str],
    ) -> anyhow::Result<Command> {
        let find = |tool: &str| {
            std::env::var_os("PATH")
                .and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(tool))
                        .find(|p| p.is_file())
                })
                .ok_or_else(|| anyhow::anyhow!("{tool} is not installed"))
        };
        let mut c = Command::new(find("timeout")?);
        c.env("PATH", "/usr/sbin:/sbin")
            .arg(timeout_secs.to_string())
            .arg(find("lxc-execute")?)
            .args(["-n", &self.name, "--", "/bin/env", "PATH=/bin:/sbin"])
            .args(args);
        Ok(c)
    }

    /// Run `args` in the container to completion.
    pub fn run_command(&self, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "lxc-execute".into(),
            "-n".into(),
            self.name.clone(),
            "--".into(),
        ];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }
}

impl Drop for LxcContainer {
    fn drop(&mut self) {
        let _ = Command::new("lxc-stop")
            .args(["-n", &self.name, "-k"])
            .output();
        let _ = Command::new("lxc-destroy")
            .args(["-n", &self.name, "-f"])
            .output();
        remove_lxc_cgroups(&self.name);
    }
}

/// LXC 5 leaves its `lxc.monitor.NAME` and `lxc.payload.NAME` cgroups behind in every hierarchy
/// after the container is gone: remove them (empty cgroups; rmdir, deepest first).
fn remove_lxc_cgroups(name: &str) {
    fn rmdir_tree(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        for prefix in ["lxc.monitor.", "lxc.payload."] {
            let d = h.path().join(format!("{prefix}{name}"));
            if d.exists() {
                rmdir_tree(&d);
            }
        }
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
        if runtime == Runtime::Lxc {
            bail!("LXC takes no OCI bundle: use LxcContainer");
        }
        let id = unique_name("auditor-rt");
        let dir = std::env::temp_dir().join(&id);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .context("copy /bin/busybox (busybox-static)")?;
        let st = Command::new(runtime.name())
            .arg("spec")
            .current_dir(&dir)
            .status()?;
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
            // (`busybox` refuses to make a Bundle for LXC.)
            Runtime::Runc | Runtime::Lxc => vec![
                "runc".into(),
                "run".into(),
                "--bundle".into(),
                bundle,
                self.id.clone(),
            ],
            Runtime::Crun => crun_on_this_host(&format!("run --bundle {bundle} {}", self.id)),
        }
    }

    /// The command line that runs `args` in this (running) container with `runtime exec`
    /// (crun as this host needs it, like [`Bundle::run_command`]).
    pub fn exec_command(&self, args: &[&str]) -> Vec<String> {
        match self.runtime {
            Runtime::Runc | Runtime::Lxc => {
                let mut v: Vec<String> = vec!["runc".into(), "exec".into(), self.id.clone()];
                v.extend(args.iter().map(|a| a.to_string()));
                v
            }
            Runtime::Crun => {
                let quoted: Vec<String> = args
                    .iter()
                    .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                    .collect();
                crun_on_this_host(&format!("exec {} {}", self.id, quoted.join(" ")))
            }
        }
    }
}

/// `crun ARGS` (shell words) in a private mount namespace without the cgroup2 mount, which
/// crun needs on this machine's hybrid cgroup layout (see ../shared/TOOLCHAIN.md).
fn crun_on_this_host(args: &str) -> Vec<String> {
    vec![
        "unshare".into(),
        "-m".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!("(umount /sys/fs/cgroup/unified 2>/dev/null || true) && exec crun {args}"),
    ]
}

/// Where a user-namespaced bundle's root (and its 65536 ids) map to on the host.
pub const USERNS_HOST_ID: u32 = 300_000;
pub const USERNS_SIZE: u32 = 65_536;

impl Bundle {
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// Run the container in its own user namespace (its root is [`USERNS_HOST_ID`] on the host),
    /// so that the kernel itself refuses what needs real privilege (mknod of a device), with a
    /// writable tmpfs at /tmp.
    pub fn user_namespace(&self) -> anyhow::Result<()> {
        self.edit(|c| {
            let linux = &mut c["linux"];
            if let Some(ns) = linux["namespaces"].as_array_mut() {
                if !ns.iter().any(|n| n["type"] == "user") {
                    ns.push(serde_json::json!({"type": "user"}));
                }
            }
            let map = serde_json::json!([{"containerID": 0, "hostID": USERNS_HOST_ID, "size": USERNS_SIZE}]);
            linux["uidMappings"] = map.clone();
            linux["gidMappings"] = map;
            if let Some(m) = c["mounts"].as_array_mut() {
                m.push(serde_json::json!({
                    "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "mode=1777"],
                }));
            }
        })
    }

    /// Use `profile` as the container's seccomp profile (`linux.seccomp`).
    pub fn set_seccomp(&self, profile: &serde_json::Value) -> anyhow::Result<()> {
        self.edit(|c| c["linux"]["seccomp"] = profile.clone())
    }

    /// Add an annotation to config.json (the runtime passes it on in the container's state).
    pub fn annotate(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.edit(|c| c["annotations"][key] = serde_json::json!(value))
    }

    /// Send SIGKILL to the container's processes (`runc kill ID KILL`).
    pub fn kill(&self) -> anyhow::Result<()> {
        let o = Command::new(self.runtime.name())
            .args(["kill", &self.id, "KILL"])
            .output()?;
        if !o.status.success() {
            bail!(
                "{} kill {}: {}",
                self.runtime.name(),
                self.id,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(self.runtime.name())
            .args(["delete", "-f", &self.id])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Remove bundles and containers left by earlier runs that died.
pub fn clear_stale(runtime: Runtime) {
    // Only what a test process that is gone left behind (`auditor-rt-PID-…` with PID not
    // running): tests running at the same time in other processes keep theirs.
    let dead = |name: &str| {
        name.strip_prefix("auditor-rt-")
            .and_then(|r| r.split('-').next())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    if runtime == Runtime::Lxc {
        if let Ok(out) = Command::new("lxc-ls").arg("-1").output() {
            for name in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter(|l| dead(l))
            {
                let _ = Command::new("lxc-destroy")
                    .args(["-n", name, "-f"])
                    .output();
            }
        }
        // Cgroups of containers destroyed by earlier runs (see `remove_lxc_cgroups`).
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup/unified") {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                let Some(name) = f
                    .strip_prefix("lxc.monitor.")
                    .or_else(|| f.strip_prefix("lxc.payload."))
                else {
                    continue;
                };
                if dead(name) {
                    remove_lxc_cgroups(name);
                }
            }
        }
        return;
    }
    if let Ok(out) = Command::new(runtime.name()).args(["list", "-q"]).output() {
        for id in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| dead(l))
        {
            let _ = Command::new(runtime.name())
                .args(["delete", "-f", id])
                .output();
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                let _ = std::fs::remove_dir_all(e.path());
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

/// A container ready to run; dropping it removes the container.
#[expect(dead_code, reason = "held only for its Drop")]
enum Prepared {
    Oci(Bundle),
    Lxc(LxcContainer),
}

/// How a runtime is asked to run the container, which changes what its init does after the
/// filter is loaded (and so its baseline): a seccomp listener (runc's init then syncs with its
/// parent to hand the fd over), a user namespace, and `noNewPrivileges` off (the engines'
/// default: runc then loads the filter before dropping privileges, so more of its init runs
/// under it). The bundles `runc spec`/`crun spec` write have `noNewPrivileges` on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode {
    pub listener: bool,
    pub userns: bool,
    /// `noNewPrivileges: false`, as Docker and podman run containers by default.
    pub engine: bool,
}

impl Mode {
    /// Every mode, plain first.
    pub fn all() -> Vec<Mode> {
        let mut v = Vec::new();
        for engine in [false, true] {
            for userns in [false, true] {
                for listener in [false, true] {
                    v.push(Mode {
                        listener,
                        userns,
                        engine,
                    });
                }
            }
        }
        v
    }

    pub fn describe(self) -> String {
        let mut parts = Vec::new();
        if self.listener {
            parts.push("listener");
        }
        if self.userns {
            parts.push("userns");
        }
        if self.engine {
            parts.push("engine");
        }
        if parts.is_empty() {
            "plain".into()
        } else {
            parts.join("+")
        }
    }

    pub fn to_auditor(self) -> auditor::policy::baselines::Mode {
        auditor::policy::baselines::Mode {
            listener: self.listener,
            userns: self.userns,
            no_new_privileges: !self.engine,
        }
    }
}

/// The syscall a listener round's profile sends to the agent (neither runtime nor workload
/// makes it): a notify rule is what makes the runtime hand a listener over.
const NOTIFIED: &str = "mknodat";

/// Set up `runtime`'s container with only `allow` allowed (deny-by-default, errno 1), in
/// `mode` (`listener`: the socket an agent serves).
fn prepare(
    runtime: Runtime,
    mode: Mode,
    listener: Option<&Path>,
    allow: &BTreeSet<String>,
) -> anyhow::Result<(Prepared, Vec<String>)> {
    if runtime == Runtime::Lxc {
        if mode != Mode::default() {
            bail!("LXC baselines are learned in its own mode only");
        }
        let c = LxcContainer::busybox()?;
        let mut profile = String::from("2\nallowlist errno 1\n[x86_64]\n");
        for n in allow {
            profile.push_str(n);
            profile.push('\n');
        }
        c.set_seccomp(&profile)?;
        let cmd = c.run_command(&[WORKLOAD, "true"]);
        return Ok((Prepared::Lxc(c), cmd));
    }
    let bundle = Bundle::busybox(runtime, &[WORKLOAD, "true"])?;
    let names: Vec<&String> = allow.iter().collect();
    if mode.userns {
        bundle.user_namespace()?;
    }
    bundle.edit(|c| {
        let mut seccomp = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        });
        if let Some(sock) = listener.filter(|_| mode.listener) {
            seccomp["listenerPath"] = sock.display().to_string().into();
            seccomp["syscalls"]
                .as_array_mut()
                .expect("syscalls")
                .push(serde_json::json!({"names": [NOTIFIED], "action": "SCMP_ACT_NOTIFY"}));
        }
        c["linux"]["seccomp"] = seccomp;
        if mode.engine {
            c["process"]["noNewPrivileges"] = false.into();
        }
    })?;
    let cmd = bundle.run_command();
    Ok((Prepared::Oci(bundle), cmd))
}

/// One round: run the container with only `allow` allowed.
fn round(
    runtime: Runtime,
    mode: Mode,
    listener: Option<&Path>,
    allow: &BTreeSet<String>,
) -> anyhow::Result<Refused> {
    let (_guard, cmd) = prepare(runtime, mode, listener, allow)?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("observation.json");
    // A runtime whose init is refused early may hang (lxc-execute waits for a child that died):
    // a bounded round still reports what was refused.
    let o = Command::new(auditor_bin())
        .args(["learn", "--no-progress", "--duration", "8s", "-o"])
        .arg(&out)
        .arg("--")
        .args(&cmd)
        .output()
        .context("run auditor learn")?;
    let obs = auditor::observe::load(&out).with_context(|| {
        format!(
            "no observation; auditor said: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })?;
    let mut r = Refused {
        runtime: BTreeSet::new(),
        workload: BTreeSet::new(),
        ok: o.status.success(),
    };
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

/// Learn `runtime`'s baseline in `mode` to a fixpoint (at most `max_rounds` runs). The
/// workload's own refused calls are allowed too, so that the container can run, but are not
/// the runtime's. A listener mode runs an `auditor agent` that serves the listener.
pub fn learn_baseline(
    runtime: Runtime,
    mode: Mode,
    max_rounds: usize,
) -> anyhow::Result<BTreeSet<String>> {
    learn_baseline_from(runtime, mode, &BTreeSet::new(), max_rounds)
}

/// [`learn_baseline`] starting with `known` allowed: returns only what the runtime needs
/// beyond it (empty when `known` covers it).
pub fn learn_baseline_from(
    runtime: Runtime,
    mode: Mode,
    known: &BTreeSet<String>,
    max_rounds: usize,
) -> anyhow::Result<BTreeSet<String>> {
    clear_stale(runtime);
    let agent_dir = tempfile::tempdir()?;
    let agent = if mode.listener {
        std::fs::create_dir_all(agent_dir.path().join("policies"))?;
        std::fs::write(
            agent_dir.path().join("policies/default.toml"),
            crate::ALLOW_ALL_POLICY,
        )?;
        // The agent's directory must be reachable by a user-namespaced runtime init.
        std::fs::set_permissions(
            agent_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Some(crate::agent::Agent::start_in(
            agent_dir.path(),
            crate::agent::Protocol::Oci,
            &[],
            &[],
        ))
    } else {
        None
    };
    let listener = agent.as_ref().map(|a| a.socket.as_path());
    let mut baseline: BTreeSet<String> = BTreeSet::new();
    let mut allow: BTreeSet<String> = known.clone();
    for i in 0..max_rounds {
        let r = round(runtime, mode, listener, &allow)?;
        let before = allow.len();
        baseline.extend(r.runtime.iter().cloned());
        allow.extend(r.runtime.into_iter().chain(r.workload));
        if allow.len() == before {
            if !r.ok {
                let log = agent.as_ref().map(|a| a.log_text()).unwrap_or_default();
                bail!(
                    "{} ({}): the container fails under {allow:?} after {i} rounds, with nothing refused{}",
                    runtime.name(),
                    mode.describe(),
                    if log.is_empty() { String::new() } else { format!("; agent log:\n{log}") }
                );
            }
            return Ok(baseline);
        }
    }
    bail!(
        "{} ({}): no fixpoint after {max_rounds} rounds (so far: {baseline:?})",
        runtime.name(),
        mode.describe()
    )
}

impl Bundle {
    /// Add an OCI hook (`kind`: createRuntime, prestart, poststop…) running `path` with `args`
    /// (`args[0]` is the program name, as the runtime-spec says).
    pub fn add_hook(&self, kind: &str, path: &Path, args: &[&str]) -> anyhow::Result<()> {
        self.edit(|c| {
            let hooks = c["hooks"][kind].as_array().cloned().unwrap_or_default();
            let mut hooks = hooks;
            hooks.push(serde_json::json!({ "path": path.display().to_string(), "args": args }));
            c["hooks"][kind] = serde_json::Value::Array(hooks);
        })
    }

    /// The busybox rootfs (a host directory: files written here appear in the container).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}
