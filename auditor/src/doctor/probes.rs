//! The probes behind `auditor doctor`, one function per area, each returning its checks. Each
//! fact is probed where it can be: the eBPF programs are loaded, a seccomp listener is made, a
//! user namespace is created (in a child); files and sysctls are read where that is the fact.

use std::path::Path;
use std::process::Command;

use linux_raw_sys::general as caps;

use super::{Check, Mode, Status};

/// Every check, in the order the table shows them.
pub fn all() -> Vec<Check> {
    let mut v = kernel();
    v.extend(privileges());
    v.extend(ebpf());
    v.extend(seccomp());
    v.extend(namespaces());
    v.extend(runtimes());
    v
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn fs_type(path: &str) -> Option<nix::sys::statfs::FsType> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type())
}

fn kernel() -> Vec<Check> {
    let mut v = Vec::new();
    match nix::sys::utsname::uname() {
        Ok(u) => {
            let release = u.release().to_string_lossy().into_owned();
            let machine = u.machine().to_string_lossy().into_owned();
            let status = if machine == "x86_64" {
                Status::Ok
            } else {
                Status::Missing
            };
            v.push(
                Check::new("kernel", "release", status)
                    .detail(format!("Linux {release} on {machine}"))
                    .needed(
                        "everything: auditor's syscall tables and eBPF programs are for x86_64 (with i386 and x32 callers)",
                        &Mode::ALL,
                    ),
            );
        }
        Err(e) => v.push(
            Check::new("kernel", "release", Status::Warn).detail(format!("uname failed: {e}")),
        ),
    }
    let lockdown = read("/sys/kernel/security/lockdown");
    let mode = lockdown.as_deref().and_then(|l| {
        l.split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_owned())
    });
    v.push(match mode.as_deref() {
        None => Check::new("kernel", "lockdown", Status::Ok).detail("no lockdown LSM"),
        Some("none") => Check::new("kernel", "lockdown", Status::Ok).detail("none"),
        Some("integrity") => Check::new("kernel", "lockdown", Status::Ok)
            .detail("integrity (reading kernel memory from eBPF is still allowed)"),
        Some(other) => Check::new("kernel", "lockdown", Status::Missing)
            .detail(other.to_owned())
            .needed(
                "learning: confidentiality lockdown forbids the eBPF reads of kernel memory the observer makes",
                &[Mode::Learn, Mode::Daemon],
            ),
    });
    v
}

/// The capabilities auditor's modes use: (number, name, what it is for, modes that need it).
const CAPS: [(u32, &str, &str, &[Mode]); 6] = [
    (
        caps::CAP_SYS_ADMIN,
        "CAP_SYS_ADMIN",
        "loading eBPF programs, setns and mount for emulated calls",
        &[Mode::Learn, Mode::Daemon, Mode::Agent],
    ),
    (
        caps::CAP_BPF,
        "CAP_BPF", "loading eBPF programs", &[Mode::Learn, Mode::Daemon]),
    (
        caps::CAP_PERFMON,
        "CAP_PERFMON",
        "attaching tracepoint programs",
        &[Mode::Learn, Mode::Daemon],
    ),
    (
        caps::CAP_SYS_PTRACE,
        "CAP_SYS_PTRACE",
        "reading a container process's memory and fds (pidfd_getfd, /proc/PID/mem), which are not auditor's children",
        &[Mode::Agent],
    ),
    (
        caps::CAP_MKNOD,
        "CAP_MKNOD",
        "emulating mknod for containers",
        &[Mode::Agent],
    ),
    (
        caps::CAP_SETUID,
        "CAP_SETUID",
        "--userns: mapping the container's ids",
        &[Mode::Userns],
    ),
];

fn privileges() -> Vec<Check> {
    let euid = nix::unistd::geteuid();
    let eff = read("/proc/self/status")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .map(|h| h.trim().to_owned())
        })
        .and_then(|h| u64::from_str_radix(&h, 16).ok())
        .unwrap_or(0);
    let mut v = vec![Check::new(
        "privileges",
        "user",
        if euid.is_root() {
            Status::Ok
        } else {
            Status::Warn
        },
    )
    .detail(format!("uid {euid}, effective capabilities {eff:#x}"))];
    let missing: Vec<_> = CAPS.iter().filter(|c| eff & (1 << c.0) == 0).collect();
    if missing.is_empty() {
        v.push(
            Check::new("privileges", "capabilities", Status::Ok)
                .detail("every capability auditor's modes use"),
        );
    }
    for (_, name, what, modes) in missing {
        v.push(
            Check::new("privileges", *name, Status::Missing)
                .detail("not in the effective set")
                .needed(what, modes),
        );
    }
    v
}

fn ebpf() -> Vec<Check> {
    let mut v = Vec::new();
    let btf = Path::new("/sys/kernel/btf/vmlinux");
    v.push(match std::fs::metadata(btf) {
        Ok(m) => Check::new("ebpf", "BTF", Status::Ok)
            .detail(format!("{} ({} KiB)", btf.display(), m.len() / 1024)),
        Err(e) => Check::new("ebpf", "BTF", Status::Missing)
            .detail(format!("{}: {e}", btf.display()))
            .needed(
                "learning: the observer reads kernel struct offsets from BTF (CONFIG_DEBUG_INFO_BTF)",
                &[Mode::Learn, Mode::Daemon],
            ),
    });
    // The real probe: auditor's own empty programs on the raw syscall tracepoints.
    v.push(match crate::bpf::Floor::load() {
        Ok(floor) => {
            drop(floor);
            Check::new("ebpf", "programs load", Status::Ok)
                .detail("raw tracepoints sys_enter and sys_exit attach")
        }
        Err(e) => Check::new("ebpf", "programs load", Status::Missing)
            .detail(format!("{e:#}"))
            .needed(
                "learning: loading and attaching the eBPF observer",
                &[Mode::Learn, Mode::Daemon],
            ),
    });
    let pid_max = read("/proc/sys/kernel/pid_max").unwrap_or_default();
    v.push(Check::new("ebpf", "pid_max", Status::Info).detail(format!(
        "{pid_max}: the observer's per-thread table takes 8 bytes per possible thread"
    )));
    // The daemon's pins, which outlive it (see `auditor daemon --uninstall`).
    let pinned: Vec<String> = std::fs::read_dir("/sys/fs/bpf/auditor")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let pinned = if pinned.is_empty() {
        "no daemon's programs pinned".to_owned()
    } else {
        format!("daemon programs pinned for: {}", pinned.join(", "))
    };
    v.push(match fs_type("/sys/fs/bpf") {
        Some(t) if t.0 == libc::BPF_FS_MAGIC => {
            Check::new("ebpf", "bpffs", Status::Ok).detail(format!("/sys/fs/bpf: {pinned}"))
        }
        _ => Check::new("ebpf", "bpffs", Status::Info)
            .detail("/sys/fs/bpf not mounted: `auditor daemon` mounts it to pin its programs"),
    });
    v.push(
        match fs_type("/sys/kernel/tracing") {
            Some(t) if t.0 == libc::TRACEFS_MAGIC => Check::new("ebpf", "tracefs", Status::Ok),
            _ => Check::new("ebpf", "tracefs", Status::Info),
        }
        .detail("/sys/kernel/tracing (auditor uses raw tracepoints and does not need it)"),
    );
    v
}

fn seccomp() -> Vec<Check> {
    let f = match crate::seccomp::probe::probe() {
        Ok(f) => f,
        Err(e) => {
            return vec![Check::new("seccomp", "probe", Status::Missing)
                .detail(format!("{e:#}"))
                .needed(
                    "enforcing: the seccomp probe could not run",
                    &[Mode::Enforce, Mode::Agent],
                )]
        }
    };
    let yes_no = |b: bool| if b { "supported" } else { "not supported" };
    let required = |ok: bool| if ok { Status::Ok } else { Status::Missing };
    let optional = |ok: bool| if ok { Status::Ok } else { Status::Warn };
    let mut v = vec![
        Check::new("seccomp", "filters", required(f.filter))
            .detail(yes_no(f.filter))
            .needed(
                "enforcing any policy (CONFIG_SECCOMP_FILTER)",
                &[Mode::Enforce, Mode::Agent, Mode::Userns],
            ),
        Check::new("seccomp", "user notification", required(f.new_listener))
            .detail(format!("SECCOMP_FILTER_FLAG_NEW_LISTENER (5.0): {}", yes_no(f.new_listener)))
            .needed(
                "notify rules: emulation, complain mode, interactive decisions, the agent",
                &[Mode::Enforce, Mode::Agent],
            ),
        Check::new("seccomp", "ADDFD", optional(f.addfd))
            .detail(format!("SECCOMP_IOCTL_NOTIF_ADDFD (5.9): {}", yes_no(f.addfd)))
            .needed("handlers that return a file descriptor to the caller", &[]),
        Check::new("seccomp", "WAIT_KILLABLE_RECV", optional(f.wait_killable_recv))
            .detail(format!(
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19): {}",
                yes_no(f.wait_killable_recv)
            ))
            .needed(
                "killable waits: a signal to a caller whose call the broker holds interrupts it (restarted calls may repeat)",
                &[],
            ),
        Check::new("seccomp", "SYNC_WAKE_UP", optional(f.sync_wake_up))
            .detail(format!(
                "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (6.6): {}",
                yes_no(f.sync_wake_up)
            ))
            .needed(
                "same-CPU wake-ups: without them a notified call costs several times more",
                &[],
            ),
    ];
    // The launcher takes a workload's listener out of its fd table.
    let getfd = crate::host::pidfd::open(std::process::id())
        .and_then(|p| crate::host::pidfd::getfd(&p, 0))
        .map(drop);
    v.push(
        match getfd {
            Ok(()) => Check::new("seccomp", "pidfd_getfd", Status::Ok).detail("5.6: supported"),
            Err(e) => Check::new("seccomp", "pidfd_getfd", Status::Missing).detail(e.to_string()),
        }
        .needed(
            "`auditor enforce`: taking the workload's seccomp listener",
            &[Mode::Enforce],
        ),
    );
    v
}

fn namespaces() -> Vec<Check> {
    let mut v = Vec::new();
    let max = read("/proc/sys/user/max_user_namespaces");
    let unpriv = read("/proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let mut sysctls = vec![format!(
        "user.max_user_namespaces={}",
        max.as_deref().unwrap_or("?")
    )];
    if let Some(u) = &unpriv {
        sysctls.push(format!("kernel.unprivileged_userns_clone={u}"));
    }
    if let Some(a) = &apparmor {
        sysctls.push(format!("kernel.apparmor_restrict_unprivileged_userns={a}"));
    }
    // The real probe: a child creates a user and a mount namespace.
    let probe = userns_probe();
    v.push(
        match &probe {
            Ok(()) => Check::new("namespaces", "user namespaces", Status::Ok)
                .detail(format!("created one ({})", sysctls.join(", "))),
            Err(e) => Check::new("namespaces", "user namespaces", Status::Missing).detail(format!(
                "unshare(CLONE_NEWUSER|CLONE_NEWNS): {e} ({})",
                sysctls.join(", ")
            )),
        }
        .needed(
            "--userns: unprivileged containers (and learning what they are refused)",
            &[Mode::Userns],
        ),
    );
    let root = Path::new("/sys/fs/cgroup");
    let cgroup = if crate::host::cgroup::is_v2_dir(root) {
        Check::new("namespaces", "cgroups", Status::Ok).detail("unified (v2)")
    } else if crate::host::cgroup::is_v2_dir(&root.join("unified")) {
        Check::new("namespaces", "cgroups", Status::Warn)
            .detail("hybrid (v1 controllers, v2 at /sys/fs/cgroup/unified)")
            .needed(
                "crun refuses hybrid layouts; the daemon adopts `runc exec` processes by mount namespace where a container has no v2 cgroup",
                &[],
            )
    } else if !crate::host::proc::mounts_of_type("cgroup").is_empty() {
        Check::new("namespaces", "cgroups", Status::Warn)
            .detail("legacy (v1 only)")
            .needed(
                "the daemon adopts `runc exec` processes by mount namespace (no v2 cgroup)",
                &[],
            )
    } else {
        Check::new("namespaces", "cgroups", Status::Warn).detail("no cgroup file system mounted")
    };
    v.push(cgroup);
    v
}

/// Create a user and a mount namespace in a forked child.
fn userns_probe() -> Result<(), nix::Error> {
    use crate::host::child::{probe_in_child, Ended};
    // SAFETY: the child makes one raw unshare call and reads errno.
    let ended = unsafe {
        probe_in_child(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0 {
                0
            } else {
                *libc::__errno_location()
            }
        })
    }?;
    match ended {
        Ended::Exited(0) => Ok(()),
        Ended::Exited(e) => Err(nix::Error::from_raw(e)),
        Ended::Killed(_) => Err(nix::Error::EINTR),
    }
}

/// Runtimes and engines auditor works with: (binary, version flag, what for).
const RUNTIMES: [(&str, &str, &str); 6] = [
    ("runc", "--version", "OCI runtime: `agent --socket`, `hook`"),
    ("crun", "--version", "OCI runtime: `agent --socket`, `hook`"),
    ("lxc-start", "--version", "LXC: `agent --lxc-socket`"),
    (
        "podman",
        "--version",
        "engine (through its OCI runtime and hooks.d)",
    ),
    (
        "dockerd",
        "--version",
        "Docker's engine (through `auditor runtime`)",
    ),
    ("containerd", "--version", "Docker's container manager"),
];

/// Where podman (and CRI-O) look for OCI hooks.
const HOOK_DIRS: [&str; 2] = [
    "/usr/share/containers/oci/hooks.d",
    "/etc/containers/oci/hooks.d",
];

fn runtimes() -> Vec<Check> {
    let mut v = Vec::new();
    for (bin, flag, what) in RUNTIMES {
        let Ok(path) = which::which(bin) else {
            v.push(
                Check::new("runtimes", bin, Status::Info).detail(format!("not installed ({what})")),
            );
            continue;
        };
        let version = Command::new(&path)
            .arg(flag)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        let mut detail = format!("{} ({version})", path.display());
        if bin == "podman" {
            detail.push_str(if hooks_d_wired() {
                "; auditor's hook is in hooks.d"
            } else {
                "; auditor's hook is not in hooks.d"
            });
        }
        if bin == "dockerd" {
            let text = std::fs::read_to_string(DOCKER_CONFIG).unwrap_or_default();
            let wired = docker_runtimes(&text);
            detail.push_str(&if wired.is_empty() {
                format!("; no runtime in {DOCKER_CONFIG} runs `auditor runtime`")
            } else {
                format!(
                    "; {DOCKER_CONFIG} runtimes through `auditor runtime`: {}",
                    wired.join(", ")
                )
            });
        }
        if bin == "containerd" {
            let wired = std::fs::read_to_string(CONTAINERD_CONFIG)
                .is_ok_and(|t| t.contains(crate::commands::runtime::RUNC_NAME));
            detail.push_str(&format!(
                "; {CONTAINERD_CONFIG} {} auditor-runc as a runc BinaryName",
                if wired { "names" } else { "does not name" }
            ));
        }
        if bin == "lxc-start" {
            let (all, proxied, ours) = lxc_wiring(Path::new("/var/lib/lxc"));
            detail.push_str(&format!(
                "; {proxied} of {all} containers in /var/lib/lxc set lxc.seccomp.notify.proxy, {ours} to a socket in /run/auditor/"
            ));
        }
        v.push(Check::new("runtimes", bin, Status::Ok).detail(detail));
    }
    v
}

const DOCKER_CONFIG: &str = "/etc/docker/daemon.json";
const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";

/// Docker's runtimes (in a `daemon.json`) that run `auditor runtime`, each with what it adds:
/// `NAME (learn, agent)`.
fn docker_runtimes(daemon_json: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(daemon_json) else {
        return Vec::new();
    };
    let Some(runtimes) = v.get("runtimes").and_then(serde_json::Value::as_object) else {
        return Vec::new();
    };
    runtimes
        .iter()
        .filter_map(|(name, r)| {
            let path = r.get("path")?.as_str()?;
            let args: Vec<&str> = r
                .get("runtimeArgs")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
                .unwrap_or_default();
            let by_name = Path::new(path)
                .file_name()
                .is_some_and(|n| n == crate::commands::runtime::RUNC_NAME);
            let wrapper = by_name
                || (Path::new(path).file_name().is_some_and(|n| n == "auditor")
                    && args.first() == Some(&"runtime"));
            if !wrapper {
                return None;
            }
            let adds: Vec<&str> = ["learn", "agent"]
                .into_iter()
                .filter(|o| {
                    args.iter().any(|a| {
                        a.trim_start_matches('-') == *o || a.starts_with(&format!("--{o}="))
                    })
                })
                .collect();
            Some(if by_name {
                format!("{name} (auditor-runc: [runtime] of the configuration)")
            } else if adds.is_empty() {
                format!("{name} (passes through: neither --learn nor --agent)")
            } else {
                format!("{name} ({})", adds.join(", "))
            })
        })
        .collect()
}

/// LXC containers under `dir`: how many, how many send notifications to a proxy, and how many
/// of those to a socket in /run/auditor/ (auditor's agent).
fn lxc_wiring(dir: &Path) -> (usize, usize, usize) {
    let (mut all, mut proxied, mut ours) = (0, 0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("config")) else {
            continue;
        };
        all += 1;
        let proxy = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "lxc.seccomp.notify.proxy").then(|| v.trim().to_owned())
        });
        if let Some(p) = proxy {
            proxied += 1;
            if p.starts_with("unix:/run/auditor/") {
                ours += 1;
            }
        }
    }
    (all, proxied, ours)
}

/// Whether a hooks.d file runs `auditor hook`.
fn hooks_d_wired() -> bool {
    HOOK_DIRS.iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.contains("auditor") && t.contains("hook"))
            })
        })
    })
}

fn metrics_text(addr: Option<std::net::SocketAddr>) -> String {
    match addr {
        Some(a) => format!("metrics on http://{a}/metrics"),
        None => "no metrics endpoint".to_owned(),
    }
}

/// The configuration the services would run with: its file, and the effective settings of the
/// daemon and the agent (flags given to them would still win).
pub fn configuration(
    config: &Result<crate::config::Loaded, crate::config::ConfigError>,
) -> Vec<Check> {
    use crate::config::Source;
    let loaded = match config {
        Ok(l) => l,
        Err(e) => {
            return vec![Check::new("configuration", "file", Status::Missing)
            .detail(e.to_string())
            .needed(
                "the services: `auditor daemon`, `agent` and `hook` refuse a broken configuration",
                &[Mode::Agent, Mode::Daemon],
            )]
        }
    };
    let mut v = vec![match &loaded.source {
        Source::File(p) => Check::new("configuration", "file", Status::Ok)
            .detail(format!("{} (read)", p.display())),
        Source::Absent(p) => Check::new("configuration", "file", Status::Info).detail(format!(
            "{} absent: built-in defaults and flags",
            p.display()
        )),
    }];
    let daemon = loaded.daemon(crate::config::DaemonFlags::default());
    v.push(match daemon {
        Ok(d) => Check::new("configuration", "daemon", Status::Info).detail(format!(
            "socket {}, observations in {}, at most {} containers, {}",
            d.socket.display(),
            d.output_dir.display(),
            d.max_containers,
            metrics_text(d.metrics_addr)
        )),
        Err(e) => Check::new("configuration", "daemon", Status::Missing)
            .detail(format!("{e:#}"))
            .needed("`auditor daemon`", &[Mode::Daemon]),
    });
    let agent = loaded.agent(crate::config::AgentFlags::default());
    v.push(match agent {
        Ok(a) => {
            let mut parts = Vec::new();
            if let Some(s) = &a.socket {
                parts.push(format!("socket {}", s.display()));
            }
            if let Some(s) = &a.lxc_socket {
                parts.push(format!("LXC socket {}", s.display()));
            }
            parts.push(format!("policies in {}", a.policy_dir.display()));
            if let Some(l) = &a.audit_log {
                parts.push(format!("audit log {}", l.display()));
            }
            parts.push(format!(
                "helper timeout {}",
                humantime::format_duration(a.helper_timeout)
            ));
            parts.push(format!(
                "prompt timeout {}",
                humantime::format_duration(a.prompt_timeout)
            ));
            parts.push(match a.flood_rate {
                0 => "a flooding container is served at the agent's priority".to_owned(),
                r => format!("above {r} notified calls/s a container is served from idle CPU time"),
            });
            parts.push(metrics_text(a.metrics_addr));
            Check::new("configuration", "agent", Status::Info).detail(parts.join(", "))
        }
        Err(e) => Check::new("configuration", "agent", Status::Info)
            .detail(format!("flags needed: {e:#}")),
    });
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_runtimes_running_the_wrapper_are_named_with_what_they_add() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/docker/daemon.json"
        ))
        .unwrap();
        assert_eq!(
            super::docker_runtimes(&text),
            ["auditor-agent (agent)", "auditor-learn (learn)"]
        );
        let other = r#"{"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"},
            "a": {"path": "/usr/local/bin/auditor-runc"},
            "b": {"path": "/usr/bin/auditor", "runtimeArgs": ["runtime", "--delegate", "crun"]},
            "c": {"path": "/usr/bin/auditor", "runtimeArgs": ["agent"]}}}"#;
        assert_eq!(
            super::docker_runtimes(other),
            [
                "a (auditor-runc: [runtime] of the configuration)",
                "b (passes through: neither --learn nor --agent)"
            ]
        );
        assert!(super::docker_runtimes("not json").is_empty());
        assert!(super::docker_runtimes("{}").is_empty());
    }

    use super::*;

    #[test]
    fn counts_lxc_containers_wired_to_the_agent() {
        let d = tempfile::tempdir().expect("tempdir");
        for (name, config) in [
            (
                "a",
                "lxc.seccomp.notify.proxy = unix:/run/auditor/lxc.sock\n",
            ),
            ("b", "lxc.seccomp.notify.proxy=unix:/other.sock\n"),
            ("c", "lxc.uts.name = c\n"),
        ] {
            std::fs::create_dir(d.path().join(name)).expect("mkdir");
            std::fs::write(d.path().join(name).join("config"), config).expect("write");
        }
        assert_eq!(lxc_wiring(d.path()), (3, 2, 1));
        assert_eq!(lxc_wiring(&d.path().join("none")), (0, 0, 0));
    }
}
