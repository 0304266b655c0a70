//! The OCI seccomp agent protocol (`listenerPath`): runc and crun connect, send the container
//! state as JSON with the notify fd attached (SCM_RIGHTS), and close.
//!
//! The runtime opens one connection per filter it installs (`runc exec` brings another fd for
//! the same container). Each connection is read — bounded in size and time — with
//! `MSG_CMSG_CLOEXEC` until it holds one whole JSON value or ends (runc 1.1 keeps its end open
//! while the container runs); a truncated control message is refused. The message names its fds
//! (`fds`); exactly one must be `seccompFd` and be a seccomp listener, every other fd is
//! closed. The policy is named by `metadata` (the profile's `listenerMetadata`), else by the
//! container's [`POLICY_ANNOTATION`], else it is `default`; the name is untrusted and resolved
//! by [`super::policies::PolicyDir`], which never leaves its directory.
//!
//! Every accepted fd is served by its own broker task ([`crate::broker::Broker`]), which ends
//! when every task of the container's filter has exited (and closes the fd) or when the agent
//! stops. A rejected message or a failing broker is logged with the peer's pid and ends only
//! that connection. When the agent stops, the fds it held are closed: the kernel then fails
//! those containers' notified calls with ENOSYS.

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd as _, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde::Deserialize;
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::policies::{Loaded, PolicyDirError};

pub mod handover;
use super::{Shared, SocketFile};
use crate::broker::Broker;
use crate::seccomp::notify::{self, NotifyError, NotifyFd};

/// Largest message accepted (runc's state with its annotations is a few KiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// A client must send its whole message within this time.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections being read at once; more are refused at once (a slow client holds a slot for
/// at most [`READ_TIMEOUT`]).
pub const MAX_HANDSHAKES: usize = 64;
/// Fds one `recvmsg` makes room for; more set MSG_CTRUNC and the message is refused.
pub const MAX_FDS: usize = 16;
/// The annotation that names a container's policy when the profile's `listenerMetadata` does not.
pub const POLICY_ANNOTATION: &str = "org.auditor.policy";
/// The name the runtime gives the listener fd in `fds`.
pub const SECCOMP_FD_NAME: &str = "seccompFd";
/// Longest container id accepted.
pub const MAX_ID_LEN: usize = 1024;

/// Errors of the OCI agent: of the listening socket (fatal) and of one connection (that
/// connection is refused, the agent goes on).
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("socket directory {}: {why}", dir.display())]
    SocketDir { dir: PathBuf, why: String },
    #[error("{}: another process listens on this socket (is an agent already running?)", path.display())]
    InUse { path: PathBuf },
    #[error("{}: exists and is not a socket; remove it or choose another --socket", path.display())]
    NotASocket { path: PathBuf },
    #[error("{}: cannot check the existing socket", path.display())]
    Stale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot listen", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel's seccomp notification structures do not match this build")]
    Sizes(#[source] NotifyError),
    #[error("cannot read the peer's credentials")]
    PeerCred(#[source] std::io::Error),
    #[error("the peer runs as uid {uid}, not root")]
    NotRoot { uid: u32 },
    #[error("reading the message failed")]
    Read(#[source] std::io::Error),
    #[error("the client did not send its whole message within {READ_TIMEOUT:?}")]
    Timeout,
    #[error("data follows the JSON message")]
    Trailing,
    #[error("the message is larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("the control message was truncated (more than {MAX_FDS} fds, or not SCM_RIGHTS)")]
    Truncated,
    #[error("the message is not the OCI seccomp agent's JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the message names {names} fd(s) in `fds` but {received} came with it")]
    FdCount { names: usize, received: usize },
    #[error("`fds` names {count} `seccompFd` (expected exactly one)")]
    SeccompFdCount { count: usize },
    #[error("the `seccompFd` is not a seccomp listener ({what})")]
    NotListener { what: String },
    #[error("bad container id: {why}")]
    BadId { why: &'static str },
    #[error("container {id}: {err}")]
    Policy {
        id: String,
        err: Box<PolicyDirError>,
    },
    #[error("handover: {0}")]
    Handover(#[source] Box<handover::HandoverError>),
    #[error("internal: the policy loader failed: {0}")]
    Join(#[source] tokio::task::JoinError),
}

/// The message runc and crun send (runtime-spec `ContainerProcessState`). Unknown fields are
/// ignored: the protocol may grow.
#[derive(Debug, Deserialize)]
pub struct ProcessState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Names of the fds sent with the message, in order.
    #[serde(default)]
    pub fds: Vec<String>,
    /// The process that installed the filter (host pid).
    pub pid: i64,
    /// The profile's `listenerMetadata`.
    #[serde(default)]
    pub metadata: String,
    pub state: ContainerState,
}

/// The container's OCI state.
#[derive(Debug, Deserialize)]
pub struct ContainerState {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub bundle: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Where a container's policy name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSource {
    Metadata,
    Annotation,
    Default,
    /// The default, because the container's annotation named a policy and the agent does not
    /// take policies from annotations.
    AnnotationIgnored,
}

impl NameSource {
    /// The mechanism named by [`NameSource::as_str`].
    fn parse(s: &str) -> NameSource {
        match s {
            "listenerMetadata" => NameSource::Metadata,
            POLICY_ANNOTATION => NameSource::Annotation,
            "default (annotation ignored)" => NameSource::AnnotationIgnored,
            _ => NameSource::Default,
        }
    }

    /// The mechanism, as the audit log and the agent's log name it.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Metadata => "listenerMetadata",
            NameSource::Annotation => POLICY_ANNOTATION,
            NameSource::Default => "default",
            NameSource::AnnotationIgnored => "default (annotation ignored)",
        }
    }
}

impl ProcessState {
    /// The policy name the container asks for (untrusted; validated by the policy directory):
    /// the profile's `listenerMetadata`, else — only when `from_annotation` — the
    /// [`POLICY_ANNOTATION`] annotation, else none (the default policy).
    pub fn policy_name(&self, from_annotation: bool) -> (Option<&str>, NameSource) {
        let metadata = self.metadata.trim();
        if !metadata.is_empty() {
            return (Some(metadata), NameSource::Metadata);
        }
        match self
            .state
            .annotations
            .get(POLICY_ANNOTATION)
            .map(|s| s.trim())
        {
            Some(a) if !a.is_empty() && from_annotation => (Some(a), NameSource::Annotation),
            Some(a) if !a.is_empty() => (None, NameSource::AnnotationIgnored),
            _ => (None, NameSource::Default),
        }
    }
}

/// A container id is only logged and recorded, but must stay one readable line.
fn check_id(id: &str) -> Result<(), OciError> {
    if id.is_empty() {
        return Err(OciError::BadId { why: "empty" });
    }
    if id.len() > MAX_ID_LEN {
        return Err(OciError::BadId { why: "too long" });
    }
    if id.chars().any(char::is_control) {
        return Err(OciError::BadId {
            why: "it has control characters",
        });
    }
    Ok(())
}

/// Parse and check a message's JSON (no fds; what [`parse`] starts with).
pub fn parse_message(data: &[u8]) -> Result<ProcessState, OciError> {
    if data.len() > MAX_MESSAGE {
        return Err(OciError::TooLarge);
    }
    let msg: ProcessState = serde_json::from_slice(data).map_err(OciError::Json)?;
    check_id(&msg.state.id)?;
    Ok(msg)
}

/// Parse a whole message and pick its seccomp listener fd out of `fds` (received in order);
/// every other fd is closed.
pub fn parse(data: &[u8], fds: Vec<OwnedFd>) -> Result<(ProcessState, OwnedFd), OciError> {
    let msg = parse_message(data)?;
    if msg.fds.len() != fds.len() {
        return Err(OciError::FdCount {
            names: msg.fds.len(),
            received: fds.len(),
        });
    }
    let count = msg.fds.iter().filter(|n| *n == SECCOMP_FD_NAME).count();
    if count != 1 {
        return Err(OciError::SeccompFdCount { count });
    }
    let mut listener = None;
    for (name, fd) in msg.fds.iter().zip(fds) {
        if name == SECCOMP_FD_NAME {
            listener = Some(fd);
        } else {
            tracing::debug!(name = %name, "closing an fd the agent has no use for");
        }
    }
    let fd = listener.ok_or(OciError::SeccompFdCount { count: 0 })?;
    notify::check_listener(fd.as_fd()).map_err(|what| OciError::NotListener { what })?;
    Ok((msg, fd))
}

/// One `recvmsg`: appends the bytes to `data` and the fds to `fds`. Returns the byte count
/// (0: EOF) and whether the control data was truncated.
fn recv_once(fd: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<(usize, bool)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let mut other_cmsg = false;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        match c {
            ControlMessageOwned::ScmRights(raw) => {
                for r in raw {
                    // SAFETY: the kernel just installed `r` in our fd table for this message
                    // (SCM_RIGHTS); nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
            _ => other_cmsg = true,
        }
    }
    Ok((
        msg.bytes,
        msg.flags.contains(MsgFlags::MSG_CTRUNC) || other_cmsg,
    ))
}

/// Whether `data` holds one whole JSON value (and nothing but whitespace after it).
fn complete(data: &[u8]) -> Result<bool, OciError> {
    let mut values =
        serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        None => Ok(false),
        Some(Err(e)) if e.is_eof() => Ok(false),
        Some(Err(e)) => Err(OciError::Json(e)),
        Some(Ok(_)) => {
            if data[values.byte_offset()..]
                .iter()
                .all(u8::is_ascii_whitespace)
            {
                Ok(true)
            } else {
                Err(OciError::Trailing)
            }
        }
    }
}

/// Read the message with its fds: up to EOF, or until it is one whole JSON value. runc 1.1
/// never closes its end while the container runs (it closes a dup of the connection only), so
/// EOF cannot be what ends a message; the JSON's own end does.
async fn receive(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>), OciError> {
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, truncated) = stream
            .async_io(Interest::READABLE, || {
                recv_once(stream.as_raw_fd(), &mut buf, &mut fds)
            })
            .await
            .map_err(OciError::Read)?;
        // Whatever fds arrived are in `fds` and closed when it is dropped.
        if truncated {
            return Err(OciError::Truncated);
        }
        if n == 0 {
            return Ok((data, fds));
        }
        if data.len() + n > MAX_MESSAGE {
            return Err(OciError::TooLarge);
        }
        data.extend_from_slice(&buf[..n]);
        if complete(&data)? {
            return Ok((data, fds));
        }
    }
}

/// Read, check and resolve one connection: the container's state, its listener and policy.
async fn handshake(
    stream: UnixStream,
    ctx: &Shared,
) -> Result<(ProcessState, OwnedFd, Loaded, NameSource), OciError> {
    let cred = stream.peer_cred().map_err(OciError::PeerCred)?;
    if cred.uid() != 0 {
        return Err(OciError::NotRoot { uid: cred.uid() });
    }
    let (data, fds) = tokio::time::timeout(READ_TIMEOUT, receive(&stream))
        .await
        .map_err(|_| OciError::Timeout)??;
    drop(stream);
    let (msg, fd) = parse(&data, fds)?;
    let (name, source) = msg.policy_name(ctx.policy_from_annotation);
    if source == NameSource::AnnotationIgnored {
        tracing::warn!(
            container = %msg.state.id,
            annotation = POLICY_ANNOTATION,
            "OCI agent: the container's annotation names a policy; ignored (start the agent with --policy-from-annotation to let containers choose): serving the default policy"
        );
    }
    let name = name.map(str::to_owned);
    let dir = ctx.policies.clone();
    let loaded = tokio::task::spawn_blocking(move || dir.load(name.as_deref()).map_err(Box::new))
        .await
        .map_err(OciError::Join)?
        .map_err(|err| OciError::Policy {
            id: msg.state.id.clone(),
            err,
        })?;
    Ok((msg, fd, loaded, source))
}

/// Serve one connection: handshake, then the container's broker until it is gone.
async fn connection(
    stream: UnixStream,
    ctx: Shared,
    registry: Registry,
    cancel: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid());
    let (msg, fd, loaded, source) = match handshake(stream, &ctx).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(peer_pid, error = %e, "OCI agent: rejected a connection");
            return;
        }
    };
    let id = msg.state.id.clone();
    tracing::info!(
        container = %id,
        pid = msg.pid,
        policy = %loaded.name,
        from = source.as_str(),
        path = %loaded.path.display(),
        "OCI agent: serving a container"
    );
    let requested = msg
        .policy_name(ctx.policy_from_annotation)
        .0
        .map(str::to_owned);
    let id_for_labels = id.clone();
    let listener = Listener {
        handed: handover::Handed {
            id,
            pid: msg.pid,
            requested,
            source: source.as_str().to_owned(),
            policy: loaded.name.clone(),
            digest: loaded.digest.clone(),
            counts: [0; 6],
            slot: None,
            runtime: super::runtime_of(peer_pid, &msg.state.annotations),
            who: Some(crate::metrics::Who::of(
                &crate::daemon::engine::identity_from_state(
                    &msg.state.annotations,
                    &msg.state.bundle,
                ),
                &id_for_labels,
            )),
        },
        source,
        policy: loaded.policy.clone(),
        stats: Arc::new(crate::broker::Stats::default()),
    };
    // Registered before the handshake's slot is given back: a handover waits for every
    // slot, so it finds this listener.
    let key = registry.add(fd, listener, &cancel, &ctx);
    drop(permit);
    serve_listener(loaded.decider, key, ctx, registry, cancel).await;
}

/// What the agent keeps of a listener it serves: enough to hand it over, or to serve it again
/// when a handover fails.
#[derive(Clone)]
struct Listener {
    handed: handover::Handed,
    source: NameSource,
    policy: crate::policy::model::Policy,
    stats: Arc<crate::broker::Stats>,
}

impl Listener {
    /// A listener another agent served (handed over, or left in the fd store), now under the
    /// policy `loaded` from this agent's directory, its counts going on.
    fn adopted(h: &handover::Handed, loaded: &Loaded, slot: Option<u32>) -> Listener {
        Listener {
            handed: handover::Handed {
                policy: loaded.name.clone(),
                digest: loaded.digest.clone(),
                slot,
                ..h.clone()
            },
            source: NameSource::parse(&h.source),
            policy: loaded.policy.clone(),
            stats: Arc::new(crate::broker::Stats::from_counts(h.counts)),
        }
    }
}

/// Load the policies `names` ask for from this agent's directory (off the async threads).
async fn load_policies(
    ctx: &Shared,
    names: Vec<Option<String>>,
) -> Result<Vec<Result<Loaded, PolicyDirError>>, tokio::task::JoinError> {
    let dir = ctx.policies.clone();
    tokio::task::spawn_blocking(move || names.iter().map(|n| dir.load(n.as_deref())).collect())
        .await
}

/// One served listener in the [`Registry`].
struct Entry {
    /// The agent's own reference to the listener: it outlives a broker stopped for a handover.
    fd: OwnedFd,
    listener: Listener,
    /// Stops this broker only (a handover).
    stop: CancellationToken,
    /// Set once its broker has returned.
    ended: tokio::sync::watch::Receiver<bool>,
    ended_tx: Arc<tokio::sync::watch::Sender<bool>>,
    /// Its slot in systemd's fd store, and where its broker checkpoints received ids.
    slot: Option<(u32, super::store::IdSlot)>,
}

/// Every listener the agent serves.
#[derive(Clone, Default)]
struct Registry(Arc<std::sync::Mutex<(u64, BTreeMap<u64, Entry>)>>);

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Entry>)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keep `fd` (the agent's own reference) and the listener's description, and store it
    /// with the service manager (in `l.handed.slot` when it is there already); its key.
    fn add(&self, fd: OwnedFd, l: Listener, cancel: &CancellationToken, ctx: &Shared) -> u64 {
        let slot = ctx
            .store
            .as_ref()
            .and_then(|st| st.add(fd.as_fd(), &l.handed, l.handed.slot));
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        let mut g = self.lock();
        g.0 += 1;
        let key = g.0;
        g.1.insert(
            key,
            Entry {
                fd,
                listener: l,
                stop: cancel.child_token(),
                ended,
                ended_tx: Arc::new(ended_tx),
                slot,
            },
        );
        key
    }

    /// Forget listener `key` (its container ended): out of the fd store too.
    fn remove(&self, key: u64, ctx: &Shared) {
        let e = self.lock().1.remove(&key);
        release(e, ctx);
    }
}

/// A listener the registry let go of: out of the fd store.
fn release(e: Option<Entry>, ctx: &Shared) {
    if let (Some(st), Some((slot, _))) = (&ctx.store, e.and_then(|e| e.slot)) {
        st.remove(slot);
    }
}

/// Serve listener `key` of the registry with `decider` until its container is gone, the
/// agent stops, or a handover stops it (the registry then keeps it).
async fn serve_listener(
    decider: crate::broker::decide::Decider,
    key: u64,
    ctx: Shared,
    registry: Registry,
    cancel: CancellationToken,
) {
    let (l, fd, stop, ended_tx, id_slot) = {
        let g = registry.lock();
        let Some(e) = g.1.get(&key) else {
            return;
        };
        (
            e.listener.clone(),
            e.fd.try_clone(),
            e.stop.clone(),
            e.ended_tx.clone(),
            e.slot.as_ref().map(|(_, s)| s.clone()),
        )
    };
    let id = l.handed.id.clone();
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(container = %id, error = %e, "OCI agent: cannot serve the listener (fd table full?)");
            registry.remove(key, &ctx);
            return;
        }
    };
    let mut broker = Broker::new(NotifyFd::new(fd), decider, ctx.mode, ctx.audit.clone())
        .with_container(id.clone())
        .with_policy(l.handed.policy.clone(), l.source.as_str())
        .with_stats(l.stats.clone())
        .with_flood_yield(ctx.flood_rate);
    if let Some(slot) = id_slot {
        broker = broker.with_checkpoint(Box::new(move |id| slot.store(id)));
    }
    if let Some(live) = &ctx.live {
        broker = broker.with_live(live.clone());
        live.send(crate::session::Event::ContainerStarted {
            id: id.clone(),
            policy: l.handed.policy.clone(),
            runtime: l.handed.runtime.clone(),
        });
    }
    let mut _serving = None;
    if let Some(m) = &ctx.metrics {
        broker = broker.with_metrics(m.clone(), l.handed.who.clone());
        _serving = Some(m.serving());
    }
    // An interactive policy (default notify): prompts on the live session, answers routed
    // here; kept registered while the broker serves.
    let mut _route = None;
    if let Some((i, route)) = super::interactive(&ctx, broker.policy(), &l.handed.policy, &id, None)
    {
        broker = broker.with_interactive(i);
        _route = Some(route);
    }
    let stats = broker.stats();
    // `stop` is a child of the agent's token: either ends the broker.
    let result = broker.serve(stop.clone()).await;
    // Stopped for a handover while its container still runs: the registry keeps it.
    let handed = stop.is_cancelled() && !cancel.is_cancelled() && {
        let g = registry.lock();
        g.1.get(&key).is_some_and(|e| {
            NotifyFd::readiness_of(e.fd.as_fd()).is_ok_and(|r| !r.hangup || r.pending)
        })
    };
    let _ = ended_tx.send(true);
    if handed {
        tracing::debug!(container = %id, "OCI agent: broker stopped for a handover");
        return;
    }
    registry.remove(key, &ctx);
    if let Some(live) = &ctx.live {
        live.send(crate::session::Event::ContainerEnded(id.clone()));
    }
    match result {
        Ok(()) => {
            tracing::info!(container = %id, summary = %stats.line(), "OCI agent: container done")
        }
        Err(e) => {
            tracing::warn!(container = %id, error = %e, summary = %stats.line(), "OCI agent: the container's broker failed");
        }
    }
}

/// The socket's directory, checked (and created 0700 if missing): see
/// [`super::check_socket_dir`].
fn check_dir(socket: &Path) -> Result<(), OciError> {
    super::check_socket_dir(socket).map_err(|(dir, why)| OciError::SocketDir { dir, why })
}

/// Bind the root-only socket, removing a stale one (a socket nobody listens on).
fn bind(path: &Path) -> Result<(UnixListener, SocketFile), OciError> {
    check_dir(path)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(OciError::InUse { path: path.into() }),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                tracing::info!(path = %path.display(), "removing a stale socket");
                std::fs::remove_file(path).map_err(|source| OciError::Stale {
                    path: path.into(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(OciError::Stale {
                    path: path.into(),
                    source,
                })
            }
        },
        Ok(_) => return Err(OciError::NotASocket { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OciError::Stale {
                path: path.into(),
                source,
            })
        }
    }
    let bind_err = |source| OciError::Bind {
        path: path.into(),
        source,
    };
    let l = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    let file = SocketFile::bound(path).map_err(bind_err)?;
    l.set_nonblocking(true).map_err(bind_err)?;
    let l = UnixListener::from_std(l).map_err(bind_err)?;
    Ok((l, file))
}

/// Listen on `socket` and serve every container that connects until `cancel` fires — or
/// until a successor takes over (see [`handover`]). When another agent serves `socket`,
/// take over from it.
pub async fn serve(socket: &Path, ctx: Shared, cancel: CancellationToken) -> Result<(), OciError> {
    notify::check_sizes().map_err(OciError::Sizes)?;
    let hpath = handover::socket_path(socket);
    let registry = Registry::default();
    // An agent serving `socket` listens on its handover socket too: take over from it (a
    // handover socket nobody listens on is a dead agent's, replaced below).
    check_dir(socket)?;
    if std::fs::symlink_metadata(&hpath).is_ok() {
        match take_over(socket, &hpath, &ctx, &registry, &cancel).await {
            Ok((listener, files, h, adopted)) => {
                let mut files = Some(files);
                return accept_loop(
                    listener,
                    Some((h, &mut files)),
                    adopted,
                    ctx,
                    registry,
                    cancel,
                )
                .await;
            }
            Err(OciError::Handover(e)) if e.nobody_listens() => {}
            Err(e) => return Err(e),
        }
    }
    let (listener, file) = bind(socket)?;
    let (hlistener, hfile) = handover::bind(&hpath).map_err(|e| OciError::Handover(Box::new(e)))?;
    tracing::info!(socket = %socket.display(), handover = %hpath.display(), "OCI agent: listening");
    let files = [file, hfile];
    let mut files = Some(files);
    accept_loop(
        listener,
        Some((hlistener, &mut files)),
        Vec::new(),
        ctx,
        registry,
        cancel,
    )
    .await
}

/// A listener adopted from the agent before (its decider and registry key), ready to serve.
type Adopted = (crate::broker::decide::Decider, u64);

/// Take over from the agent serving `socket`: receive its sockets and listeners, load every
/// container's policy from this agent's directory, answer. Refused (the old agent serving on)
/// when a policy does not load.
async fn take_over(
    socket: &Path,
    hpath: &Path,
    ctx: &Shared,
    registry: &Registry,
    cancel: &CancellationToken,
) -> Result<(UnixListener, [SocketFile; 2], OwnedFd, Vec<Adopted>), OciError> {
    tracing::info!(socket = %socket.display(), "OCI agent: looking for an agent serving this socket, to take over from it");
    let (s, h) = (socket.to_owned(), hpath.to_owned());
    let received = tokio::task::spawn_blocking(move || handover::take_over(&h, &s))
        .await
        .map_err(OciError::Join)?
        .map_err(|e| OciError::Handover(Box::new(e)))?;
    let handover::Received {
        from_pid,
        runtime_socket,
        handover_socket,
        containers,
        conn,
    } = received;
    // Every policy, from this agent's directory (it may have changed).
    let names = containers
        .iter()
        .map(|(h, _)| h.requested.clone())
        .collect();
    let loaded = load_policies(ctx, names).await.map_err(OciError::Join)?;
    let mut ready = Vec::with_capacity(containers.len());
    let mut refusal = None;
    for ((h, fd), l) in containers.into_iter().zip(loaded) {
        match l {
            Ok(l) => ready.push((h, fd, l)),
            Err(e) => {
                refusal.get_or_insert_with(|| format!("container {}: {e}", h.id));
            }
        }
    }
    if let Some(why) = refusal {
        let _ = handover::send(
            conn.as_fd(),
            &handover::Message::Refuse { why: why.clone() },
            &[],
        );
        return Err(OciError::Handover(Box::new(handover::HandoverError::Refused(format!(
            "this agent cannot serve every container the running one serves, which keeps serving them: {why}"
        )))));
    }
    let mut adopted = Vec::with_capacity(ready.len());
    for (h, fd, loaded) in ready {
        if loaded.digest != h.digest || loaded.name != h.policy {
            tracing::info!(container = %h.id, policy = %loaded.name, before = %h.policy, path = %loaded.path.display(), "OCI agent: adopted container's policy changed: its notified calls are decided by the new one (what its filter decides in the kernel stays)");
        }
        let l = Listener::adopted(&h, &loaded, h.slot);
        adopted.push((loaded.decider, registry.add(fd, l, cancel, ctx)));
    }
    // Under systemd (NotifyAccess=all) this agent is the service's main process from now on:
    // said before the old one exits, or its exit would be taken for the service's.
    if let Err(e) = sd_notify::notify(
        false,
        &[sd_notify::NotifyState::MainPid(std::process::id())],
    ) {
        tracing::warn!(error = %e, "cannot tell the service manager this agent's pid");
    }
    handover::send(
        conn.as_fd(),
        &handover::Message::Ack {
            adopted: adopted.len(),
        },
        &[],
    )
    .map_err(|e| OciError::Handover(Box::new(e)))?;
    let inherited = |source| OciError::Bind {
        path: socket.to_owned(),
        source,
    };
    let l = std::os::unix::net::UnixListener::from(runtime_socket);
    l.set_nonblocking(true).map_err(inherited)?;
    let listener = UnixListener::from_std(l).map_err(inherited)?;
    nix::fcntl::fcntl(
        handover_socket.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| inherited(e.into()))?;
    let files = [
        SocketFile::bound(socket).map_err(inherited)?,
        SocketFile::bound(hpath).map_err(inherited)?,
    ];
    tracing::info!(
        socket = %socket.display(),
        from_pid,
        containers = adopted.len(),
        "OCI agent: took over from the agent before; listening"
    );
    eprintln!(
        "auditor agent: took over {} container(s) and {} from agent pid {from_pid}",
        adopted.len(),
        socket.display()
    );
    Ok((listener, files, handover_socket, adopted))
}

/// Serve a listening stream socket handed over by the service manager (socket activation):
/// it is not auditor's to bind or remove.
pub async fn serve_inherited(
    fd: std::os::fd::OwnedFd,
    ctx: Shared,
    cancel: CancellationToken,
) -> Result<(), OciError> {
    notify::check_sizes().map_err(OciError::Sizes)?;
    let inherited = |source| OciError::Bind {
        path: "(socket activation)".into(),
        source,
    };
    let l = std::os::unix::net::UnixListener::from(fd);
    l.set_nonblocking(true).map_err(inherited)?;
    let listener = UnixListener::from_std(l).map_err(inherited)?;
    tracing::info!("OCI agent: listening on the socket the service manager passed");
    accept_loop(listener, None, Vec::new(), ctx, Registry::default(), cancel).await
}

/// The handover socket and the socket files an agent removes when it stops (none once it
/// handed them over).
type HandoverSide<'a> = (OwnedFd, &'a mut Option<[SocketFile; 2]>);

async fn accept_loop(
    listener: UnixListener,
    handover_side: Option<HandoverSide<'_>>,
    adopted: Vec<Adopted>,
    ctx: Shared,
    registry: Registry,
    cancel: CancellationToken,
) -> Result<(), OciError> {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let mut tasks = tokio::task::JoinSet::new();
    let mut adopted = adopted;
    adopted.extend(recover(&ctx, &registry, &cancel).await);
    for (decider, key) in adopted {
        tasks.spawn(serve_listener(
            decider,
            key,
            ctx.clone(),
            registry.clone(),
            cancel.clone(),
        ));
    }
    let (hfd, mut files) = match handover_side {
        Some((fd, files)) => {
            // SAFETY: the OwnedFd is moved into the AsyncFd, so it stays open and the same
            // while the AsyncFd lives.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            };
            (
                Some(registered.map_err(|e| OciError::Read(e.into_parts().1))?),
                Some(files),
            )
        }
        None => (None, None),
    };
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            () = ctx.reload.notified() => {
                reload(&registry, &ctx, &cancel, &mut tasks).await;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "OCI agent: a connection task failed");
                }
            }
            conn = accept_handover(hfd.as_ref()), if hfd.is_some() => match conn {
                Ok(conn) => {
                    let (Some(hfd), Some(files)) = (&hfd, files.as_mut()) else { continue };
                    let sockets = [listener.as_fd(), hfd.get_ref().as_fd()];
                    if hand_over(conn, sockets, &handshakes, &registry, &ctx).await {
                        // The successor holds everything: nothing to close, nothing to remove.
                        if let Some(f) = files.take() {
                            f.into_iter().for_each(SocketFile::forget);
                        }
                        registry.lock().1.clear();
                        break;
                    }
                    // Failed: serve every listener again.
                    resume(&registry, &ctx, &cancel, &mut tasks);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OCI agent: accept on the handover socket failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid());
                        tracing::warn!(peer_pid, "OCI agent: too many connections being read; refused one");
                        continue;
                    };
                    tasks.spawn(connection(stream, ctx.clone(), registry.clone(), cancel.clone(), permit));
                }
                Err(e) => {
                    // EMFILE and the like: wait for connections to finish rather than spin.
                    tracing::warn!(error = %e, "OCI agent: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The listeners a crashed agent stored with systemd (see [`super::store`]), their stale
/// notifications already answered: each with its policy loaded afresh, ready to serve. One
/// whose policy does not load is closed (its calls fail with ENOSYS) and said so.
async fn recover(ctx: &Shared, registry: &Registry, cancel: &CancellationToken) -> Vec<Adopted> {
    let Some(st) = &ctx.store else {
        return Vec::new();
    };
    let recovered = st.take_recovered();
    if recovered.is_empty() {
        return Vec::new();
    }
    let names = recovered
        .iter()
        .map(|r| r.handed.requested.clone())
        .collect();
    let loaded = match load_policies(ctx, names).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "OCI agent: the policy loader failed; stored listeners not served");
            return Vec::new();
        }
    };
    let stale: usize = recovered.iter().map(|r| r.stale).sum();
    let mut out = Vec::new();
    for (r, l) in recovered.into_iter().zip(loaded) {
        match l {
            Ok(l) => {
                tracing::info!(container = %r.handed.id, policy = %l.name, stale = r.stale, "OCI agent: serving a container again (listener from the fd store)");
                let listener = Listener::adopted(&r.handed, &l, Some(r.slot));
                out.push((l.decider, registry.add(r.fd, listener, cancel, ctx)));
            }
            Err(e) => {
                tracing::error!(container = %r.handed.id, error = %e, "OCI agent: the policy of a stored listener does not load; closed (its calls fail with ENOSYS)");
                st.remove(r.slot);
            }
        }
    }
    tracing::info!(
        listeners = out.len(),
        stale,
        "OCI agent: recovered listeners from the service manager's fd store; notifications the agent before had received and not answered were answered ENOSYS"
    );
    out
}

/// The next connection on the handover socket.
async fn accept_handover(
    hfd: Option<&tokio::io::unix::AsyncFd<OwnedFd>>,
) -> std::io::Result<OwnedFd> {
    let Some(hfd) = hfd else {
        return std::future::pending().await;
    };
    loop {
        let mut guard = hfd.readable().await?;
        match handover::accept(hfd.get_ref().as_fd()) {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => guard.clear_ready(),
            Err(e) => return Err(e),
        }
    }
}

/// The old agent's side of a handover on connection `conn`: `true` once the successor has
/// everything (this agent then exits), `false` when it serves on.
async fn hand_over(
    conn: OwnedFd,
    sockets: [std::os::fd::BorrowedFd<'_>; 2],
    handshakes: &Arc<tokio::sync::Semaphore>,
    registry: &Registry,
    ctx: &Shared,
) -> bool {
    let conn = Arc::new(conn);
    // The request, from root.
    let c = conn.clone();
    let request = tokio::task::spawn_blocking(move || {
        handover::check_peer(c.as_fd())?;
        handover::recv(c.as_fd(), READ_TIMEOUT)
    })
    .await;
    let pid = match request {
        Ok(Ok((handover::Message::Request { version, pid }, fds))) if fds.is_empty() => {
            if version != handover::VERSION {
                let why = format!("this agent speaks handover version {}", handover::VERSION);
                let _ = handover::send(conn.as_fd(), &handover::Message::Refuse { why }, &[]);
                tracing::warn!(
                    version,
                    "OCI agent: a successor of another handover version; refused"
                );
                return false;
            }
            pid
        }
        Ok(Ok((other, _))) => {
            tracing::warn!(message = ?other, "OCI agent: garbage on the handover socket; ignored");
            return false;
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "OCI agent: a bad handover request; ignored");
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "OCI agent: the handover task failed");
            return false;
        }
    };
    tracing::info!(successor = pid, "OCI agent: handing over to a successor");
    // No new connection is accepted meanwhile (this loop does not accept); the handshakes
    // under way finish (each within READ_TIMEOUT) and register their listeners.
    let all = MAX_HANDSHAKES as u32;
    let _slots = match tokio::time::timeout(
        READ_TIMEOUT + Duration::from_secs(1),
        handshakes.clone().acquire_many_owned(all),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            tracing::warn!("OCI agent: connections still being read; handover refused");
            let why = "connections still being read".to_owned();
            let _ = handover::send(conn.as_fd(), &handover::Message::Refuse { why }, &[]);
            return false;
        }
    };
    // Stop receiving on every listener; each broker answers what it holds first.
    let waits: Vec<_> = {
        let g = registry.lock();
        g.1.values()
            .map(|e| {
                e.stop.cancel();
                e.ended.clone()
            })
            .collect()
    };
    for mut w in waits {
        let _ = w.wait_for(|ended| *ended).await;
    }
    // Every decision made so far is in the file before the successor appends to it.
    if let Some(a) = &ctx.audit {
        let a = a.clone();
        let flushed = tokio::task::spawn_blocking(move || a.flush(Duration::from_secs(5)))
            .await
            .unwrap_or(false);
        if !flushed {
            tracing::warn!(
                "OCI agent: the audit log did not flush within 5 s; handing over anyway"
            );
        }
    }
    // The listeners whose containers still run (the rest ended meanwhile).
    let entries: Vec<(handover::Handed, RawFd)> = {
        let g = registry.lock();
        g.1.values()
            .map(|e| {
                let mut h = e.listener.handed.clone();
                h.counts = e.listener.stats.counts();
                h.slot = e.slot.as_ref().map(|(s, _)| *s);
                (h, e.fd.as_raw_fd())
            })
            .collect()
    };
    let raw_sockets = [sockets[0].as_raw_fd(), sockets[1].as_raw_fd()];
    let c = conn.clone();
    let count = entries.len();
    let sent = tokio::task::spawn_blocking(move || -> Result<usize, handover::HandoverError> {
        handover::send(
            c.as_fd(),
            &handover::Message::Agent {
                version: handover::VERSION,
                pid: std::process::id(),
                containers: entries.len(),
            },
            &raw_sockets,
        )?;
        for (h, fd) in entries {
            handover::send(c.as_fd(), &handover::Message::Container(h), &[fd])?;
        }
        handover::send(c.as_fd(), &handover::Message::End, &[])?;
        match handover::recv(c.as_fd(), handover::ANSWER_TIMEOUT)?.0 {
            handover::Message::Ack { adopted } => Ok(adopted),
            handover::Message::Refuse { why } => Err(handover::HandoverError::Refused(why)),
            other => Err(handover::HandoverError::Unexpected {
                expected: "ack",
                got: format!("{other:?}"),
            }),
        }
    })
    .await;
    match sent {
        Ok(Ok(adopted)) if adopted == count => {
            tracing::info!(
                successor = pid,
                containers = count,
                "OCI agent: handed every listener and the sockets over; exiting"
            );
            eprintln!("auditor agent: handed {count} container(s) over to agent pid {pid}");
            true
        }
        Ok(Ok(adopted)) => {
            // It holds them all the same; two agents serving is better than a lost listener.
            tracing::warn!(
                successor = pid,
                adopted,
                sent = count,
                "OCI agent: the successor adopted fewer listeners than sent; exiting all the same"
            );
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(successor = pid, error = %e, "OCI agent: handover failed; serving on");
            false
        }
        Err(e) => {
            tracing::warn!(successor = pid, error = %e, "OCI agent: the handover task failed; serving on");
            false
        }
    }
}

/// SIGHUP: load every served container's policy again from the directory; the brokers of
/// those whose policy changed stop receiving (answering what they hold), take the new policy
/// and receive again: a notification that comes meanwhile waits in the kernel, none fails. A
/// policy that no longer loads leaves its containers under the one they have. The seccomp
/// filters themselves cannot change: only what the agent decides for the calls they send it.
async fn reload(
    registry: &Registry,
    ctx: &Shared,
    cancel: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let served: Vec<(u64, Option<String>, String, String, String)> = {
        let g = registry.lock();
        g.1.iter()
            .map(|(&k, e)| {
                let h = &e.listener.handed;
                (
                    k,
                    h.requested.clone(),
                    h.digest.clone(),
                    h.policy.clone(),
                    h.id.clone(),
                )
            })
            .collect()
    };
    let names = served.iter().map(|s| s.1.clone()).collect();
    let loaded = match load_policies(ctx, names).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "OCI agent: reloading the policies failed; nothing changed");
            return;
        }
    };
    let mut changed = Vec::new();
    for ((key, _, digest, old, id), l) in served.into_iter().zip(loaded) {
        match l {
            Ok(l) if l.digest != digest => changed.push((key, id, old, l)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(container = %id, policy = %old, error = %e, "OCI agent: reload: the policy does not load; the container keeps the one it has")
            }
        }
    }
    let tell = |text: String| {
        if let Some(l) = &ctx.live {
            l.send(crate::session::Event::Notice(text));
        }
    };
    if changed.is_empty() {
        tracing::info!("OCI agent: reload: no container's policy changed");
        tell("the agent reloaded its policies: no container's policy changed".into());
        return;
    }
    let waits: Vec<_> = {
        let g = registry.lock();
        changed
            .iter()
            .filter_map(|(k, ..)| g.1.get(k))
            .map(|e| {
                e.stop.cancel();
                e.ended.clone()
            })
            .collect()
    };
    for mut w in waits {
        let _ = w.wait_for(|ended| *ended).await;
    }
    {
        let mut g = registry.lock();
        for (key, id, old, l) in &changed {
            let Some(e) = g.1.get_mut(key) else { continue };
            e.listener.policy = l.policy.clone();
            e.listener.handed.policy = l.name.clone();
            e.listener.handed.digest = l.digest.clone();
            tracing::info!(container = %id, policy = %l.name, was = %old, path = %l.path.display(), "OCI agent: reload: the container is served under its changed policy");
        }
    }
    eprintln!(
        "auditor agent: reloaded the policies: {} container(s) changed policy",
        changed.len()
    );
    tell(format!(
        "the agent reloaded its policies: {} container(s) changed policy",
        changed.len()
    ));
    resume(registry, ctx, cancel, tasks);
}

/// After a failed handover or a reload: serve every registered listener again whose broker
/// stopped.
fn resume(
    registry: &Registry,
    ctx: &Shared,
    cancel: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let mut g = registry.lock();
    let keys: Vec<u64> = g.1.keys().copied().collect();
    for key in keys {
        let Some(e) = g.1.get_mut(&key) else { continue };
        if !*e.ended.borrow() {
            continue;
        }
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        e.stop = cancel.child_token();
        e.ended = ended;
        e.ended_tx = Arc::new(ended_tx);
        match crate::broker::decide::Decider::new(e.listener.policy.clone()) {
            Ok(decider) => {
                tasks.spawn(serve_listener(
                    decider,
                    key,
                    ctx.clone(),
                    registry.clone(),
                    cancel.clone(),
                ));
            }
            Err(err) => {
                tracing::error!(container = %e.listener.handed.id, error = %err, "OCI agent: cannot serve the listener again; its notified calls fail (ENOSYS)");
                release(g.1.remove(&key), ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests;
