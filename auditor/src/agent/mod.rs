//! `auditor agent`: the seccomp agent that container runtimes hand their notify fds to — runc
//! and crun through the OCI `listenerPath` protocol, LXC through `lxc.seccomp.notify.proxy` —
//! serving each container's notifications with the broker and handlers of `auditor enforce`.

pub mod lxc;
pub mod oci;
pub mod policies;
pub mod prompts;
pub mod store;

use std::sync::Arc;

use crate::broker::audit::AuditSender;
use crate::session::SessionSender;

/// What every connection of the agent shares.
pub struct Context {
    pub policies: policies::PolicyDir,
    /// The audit log, one record per decision, each naming its container.
    pub audit: Option<AuditSender>,
    /// The live session (`auditor tui`), if any.
    pub live: Option<SessionSender>,
    /// Whether a container may name its policy with the `org.auditor.policy` annotation
    /// (`--policy-from-annotation`). Off by default: engines copy pod and user annotations onto
    /// containers (CRI-O, podman), so the annotation is the workload author's choice, not the
    /// host's; `listenerMetadata` comes from the seccomp profile the host configured.
    pub policy_from_annotation: bool,
    /// Prometheus metrics (`--metrics-addr`).
    pub metrics: Option<Arc<crate::metrics::AgentMetrics>>,
    /// systemd's fd store, under systemd.
    pub store: Option<Arc<store::Store>>,
    /// Reload the policy directory (SIGHUP): every container whose policy changed is served
    /// under the new one from its next notification.
    pub reload: Arc<tokio::sync::Notify>,
    /// Reloads asked for so far: an LXC container's filter re-reads the policy its cookie
    /// names at its next notification after a reload (LXC's proxy has no listener of ours to
    /// reload eagerly).
    pub reloads: Arc<std::sync::atomic::AtomicU64>,
    /// Enforce, or complain (`--complain`).
    pub mode: crate::broker::Mode,
    /// Where the live session's answers go: the brokers of interactive policies.
    pub prompts: Arc<prompts::PromptRouter>,
    /// Notified calls a second above which a container is served from idle CPU time (0: never;
    /// `--flood-rate`).
    pub flood_rate: u64,
}

pub type Shared = Arc<Context>;

/// What serving `policy` (named `name`) interactively takes, when its default action is
/// notify and the agent enforces (complain mode allows what no rule decides, it prompts for
/// nothing): the broker's `Interactive` and its route for answers. `max_timeout` caps the
/// prompt timeout (LXC's proxy gives up on its own).
pub(crate) fn interactive(
    ctx: &Context,
    policy: &crate::policy::model::Policy,
    name: &str,
    container: &str,
    max_timeout: Option<std::time::Duration>,
) -> Option<(crate::broker::Interactive, prompts::Route)> {
    if !policy.default_action.is_notify() || ctx.mode != crate::broker::Mode::Enforce {
        return None;
    }
    let policy_file = match ctx.policies.resolve(Some(name)) {
        Ok((_, path)) => path,
        Err(e) => {
            tracing::warn!(container, policy = name, error = %e, "agent: the interactive policy's file cannot be found again; always answers will not be written to it");
            ctx.policies.path().join(format!("{name}.toml"))
        }
    };
    let mut route = ctx.prompts.register();
    let answers = route.answers.take()?;
    let timeout = match max_timeout {
        Some(max) => ctx.prompts.timeout.min(max),
        None => ctx.prompts.timeout,
    };
    tracing::info!(container, policy = name, timeout = %humantime::format_duration(timeout), "agent: interactive policy: calls no rule decides are prompted for on the live session");
    if ctx.live.is_none() {
        tracing::warn!(container, "agent: no live session, so nobody can answer this container's prompts: each is denied after its timeout");
    }
    Some((
        crate::broker::Interactive {
            timeout,
            max_held: crate::broker::prompt::MAX_HELD,
            answers,
            policy_file,
            arity: ctx.prompts.arity(),
            id_base: route.id_base,
        },
        route,
    ))
}

/// Who runs a container, for the live session's Fleet: the runtime that handed its listener
/// over (`peer`, its executable's name: runc, crun) and the engine above it (Kubernetes by the
/// CRI's annotations, podman by `io.container.manager`, containerd or CRI-O by the runtime's
/// parent, their shims or conmon). Shown, never trusted: nothing here decides anything.
pub(crate) fn runtime_of(
    peer: Option<i32>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let pid = u32::try_from(peer?).ok().filter(|p| *p > 0)?;
    let exe = crate::host::proc::exe(pid);
    let parent = crate::host::proc::ppid(pid)
        .and_then(|ppid| std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok());
    describe_runtime(
        exe.as_deref()
            .and_then(|e| std::path::Path::new(e).file_name())
            .and_then(|n| n.to_str()),
        parent.as_deref().map(str::trim),
        annotations,
    )
}

/// See [`runtime_of`]: `exe` the runtime's executable name, `parent` its parent's `comm`.
fn describe_runtime(
    exe: Option<&str>,
    parent: Option<&str>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    // runc re-executes a copy of itself (`memfd:runc_cloned:/proc/self/exe (deleted)`).
    let runtime = exe.map(|e| {
        let e = e.trim_end_matches(" (deleted)");
        if e.contains("runc") {
            "runc".to_owned()
        } else if e.contains("crun") {
            "crun".to_owned()
        } else {
            e.chars().take(16).collect()
        }
    });
    let engine = if annotations
        .keys()
        .any(|k| k.starts_with("io.kubernetes.cri") || k.starts_with("io.kubernetes.pod."))
    {
        Some("k8s")
    } else if annotations.get("io.container.manager").map(String::as_str) == Some("libpod") {
        Some("podman")
    } else {
        match parent {
            Some(p) if p.starts_with("containerd-shim") => Some("containerd"),
            Some("conmon") => Some("conmon"),
            _ => None,
        }
    };
    match (engine, runtime) {
        (Some(e), Some(r)) => Some(format!("{e}/{r}")),
        (Some(e), None) => Some(e.to_owned()),
        (None, r) => r,
    }
}

/// The directory of an agent socket must be root's and writable by no one else, or another
/// user could put their own socket in the runtime's way; a missing directory is created 0700.
/// `Err((dir, why))` otherwise.
pub(crate) fn check_socket_dir(
    socket: &std::path::Path,
) -> Result<(), (std::path::PathBuf, String)> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    let dir = match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let err = |why: String| (dir.clone(), why);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| err(format!("cannot create it: {e}")))?;
    }
    let m = std::fs::metadata(&dir).map_err(|e| err(e.to_string()))?;
    if !m.is_dir() {
        return Err(err("not a directory".into()));
    }
    if m.uid() != 0 {
        return Err(err(format!(
            "owned by uid {}, not root; use a root-only directory such as /run/auditor",
            m.uid()
        )));
    }
    if m.mode() & 0o022 != 0 {
        return Err(err(format!(
            "writable by group or others (mode {:o}): anyone could replace the socket; use a root-only directory such as /run/auditor",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Why a `SOCK_SEQPACKET` socket could not be listened on ([`listen_seqpacket`]).
#[derive(Debug)]
pub(crate) enum SeqpacketError {
    /// A live socket (somebody listens on it).
    InUse,
    /// Another kind of file.
    NotASocket,
    RemoveStale(std::io::Error),
    Socket(nix::Error),
    Bind(nix::Error),
    Chmod(std::io::Error),
}

/// Whether a process listens on the SOCK_SEQPACKET socket at `path` (a socket nobody listens
/// on refuses the connection).
fn seqpacket_live(path: &std::path::Path) -> Result<bool, std::io::Error> {
    use nix::sys::socket as sock;
    use std::os::fd::AsRawFd as _;
    let probe = sock::socket(
        sock::AddressFamily::Unix,
        sock::SockType::SeqPacket,
        sock::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = sock::UnixAddr::new(path)?;
    match sock::connect(probe.as_raw_fd(), &addr) {
        Ok(()) => Ok(true),
        Err(nix::Error::ECONNREFUSED) => Ok(false),
        // A listener of another socket type is somebody's too.
        Err(nix::Error::EPROTOTYPE) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Listen (non-blocking, 0600) on the SOCK_SEQPACKET socket at `path`, whose directory the
/// caller has checked: a stale socket there is replaced, a live one or any other file is left
/// alone and refused. The LXC proxy's socket and the OCI agent's handover socket.
pub(crate) fn listen_seqpacket(
    path: &std::path::Path,
    backlog: i32,
) -> Result<(std::os::fd::OwnedFd, SocketFile), SeqpacketError> {
    use nix::sys::socket as sock;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if seqpacket_live(path).map_err(SeqpacketError::RemoveStale)? {
                return Err(SeqpacketError::InUse);
            }
            std::fs::remove_file(path).map_err(SeqpacketError::RemoveStale)?;
        }
        Ok(_) => return Err(SeqpacketError::NotASocket),
        Err(_) => {}
    }
    let fd = sock::socket(
        sock::AddressFamily::Unix,
        sock::SockType::SeqPacket,
        sock::SockFlag::SOCK_CLOEXEC | sock::SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(SeqpacketError::Socket)?;
    let addr = sock::UnixAddr::new(path).map_err(SeqpacketError::Bind)?;
    sock::bind(fd.as_raw_fd(), &addr).map_err(SeqpacketError::Bind)?;
    // Peers are also checked by uid on accept: this closes the window before chmod.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(SeqpacketError::Chmod)?;
    let backlog = sock::Backlog::new(backlog).unwrap_or(sock::Backlog::MAXCONN);
    sock::listen(&fd, backlog).map_err(SeqpacketError::Bind)?;
    let file = SocketFile::bound(path).map_err(|e| {
        SeqpacketError::Bind(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    })?;
    Ok((fd, file))
}

/// The socket file an agent bound: removed when the agent stops, unless replaced since (by
/// another agent, say) — told apart by device and inode.
pub(crate) struct SocketFile {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket just bound at `path`.
    pub(crate) fn bound(path: &std::path::Path) -> std::io::Result<SocketFile> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

impl SocketFile {
    /// Leave the file in place (its socket was handed to a successor, which removes it).
    pub(crate) fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        if std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod runtime_tests {
    use super::describe_runtime;
    use std::collections::BTreeMap;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_runtime_and_its_engine_are_told_apart() {
        let none = ann(&[]);
        assert_eq!(
            describe_runtime(Some("runc"), Some("bash"), &none).as_deref(),
            Some("runc")
        );
        assert_eq!(
            describe_runtime(
                Some("memfd:runc_cloned:/proc/self/exe (deleted)"),
                None,
                &none
            )
            .as_deref(),
            Some("runc")
        );
        assert_eq!(
            describe_runtime(
                Some("crun"),
                Some("conmon"),
                &ann(&[("io.container.manager", "libpod")])
            )
            .as_deref(),
            Some("podman/crun")
        );
        assert_eq!(
            describe_runtime(Some("runc"), Some("containerd-shim"), &none).as_deref(),
            Some("containerd/runc")
        );
        assert_eq!(
            describe_runtime(
                Some("runc"),
                Some("containerd-shim"),
                &ann(&[("io.kubernetes.cri.container-type", "container")])
            )
            .as_deref(),
            Some("k8s/runc")
        );
        assert_eq!(describe_runtime(None, None, &none), None);
    }

    #[test]
    fn the_runtime_of_this_process_is_its_own_name() {
        // This test binary stands in for the runtime: its name, and no engine.
        let me = i32::try_from(std::process::id()).unwrap();
        let r = super::runtime_of(Some(me), &BTreeMap::new()).expect("a name");
        assert!(r.starts_with("auditor"), "{r}");
        assert_eq!(super::runtime_of(None, &BTreeMap::new()), None);
    }
}
