//! Handing the OCI agent over to a successor without failing a call.
//!
//! A serving agent listens on a root-only `SOCK_SEQPACKET` socket beside its runtime socket
//! (`<socket>.handover`). A new agent started with the same `--socket` finds the runtime socket
//! in use, connects there and asks to take over ([`Message::Request`]). The old agent stops
//! accepting runtime connections (finishing the handshakes it has begun), stops receiving on
//! every listener (answering the calls it already holds: a broker ends only after its
//! emulations), flushes its audit log and sends, one message each: the runtime socket and the
//! handover socket themselves ([`Message::Agent`]: no unlink/rebind gap, runc never finds the
//! socket missing), then every live listener with its container, policy and counts
//! ([`Message::Container`]), then [`Message::End`]. Calls the kernel queues meanwhile wait in
//! the listener. The successor checks every fd, loads every container's policy from its own
//! policy directory and answers [`Message::Ack`], or [`Message::Refuse`] (a policy it cannot
//! load, say); on an ack the old agent exits 0, on anything else it serves on as before.
//!
//! Both ends are root's: the socket is 0600 in the root-only socket directory and the peer's
//! credentials are checked. Every message is bounded ([`MAX_MESSAGE`]) and every wait timed.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    self, recvmsg, sendmsg, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};

/// The protocol's version; an agent refuses another.
pub const VERSION: u32 = 1;
/// Largest message (a container id is at most 1 KiB; policy names are short).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// How long either side waits for the other's next message while the listeners are handed.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the old agent waits for the successor's answer (it loads every policy first).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The handover socket of runtime socket `socket`.
pub fn socket_path(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".handover");
    PathBuf::from(p)
}

/// Errors of a handover, on either side.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the handover connection: {0}")]
    Io(#[source] std::io::Error),
    #[error("the peer on the handover socket runs as uid {0}, not root")]
    NotRoot(u32),
    #[error("the peer closed the handover connection")]
    Closed,
    #[error("the peer sent no message within {0:?}")]
    Timeout(Duration),
    #[error("a handover message was truncated (too large, or too many fds)")]
    Truncated,
    #[error("a handover message is not auditor's: {0}")]
    Json(#[source] serde_json::Error),
    #[error("unexpected handover message: expected {expected}, got {got}")]
    Unexpected { expected: &'static str, got: String },
    #[error("a handover message came with {got} fd(s), expected {expected}")]
    FdCount { expected: usize, got: usize },
    #[error("the peer speaks handover protocol version {0}, this agent {VERSION}")]
    Version(u32),
    #[error("container {id}: the handed fd is not a seccomp listener ({what})")]
    NotListener { id: String, what: String },
    #[error("the handed runtime socket is not the one at {}: {why}", path.display())]
    WrongSocket { path: PathBuf, why: String },
    #[error("the serving agent refused: {0}")]
    Refused(String),
}

impl HandoverError {
    /// Whether nobody listens on the handover socket (a dead agent's file): not a handover.
    pub fn nobody_listens(&self) -> bool {
        matches!(self, HandoverError::Socket { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)))
    }
}

/// A listener's container, policy and counts, as one agent hands it to the next.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Handed {
    pub id: String,
    /// The pid that installed the filter (as the runtime said).
    pub pid: i64,
    /// The policy name the container asked for (`None`: the default).
    pub requested: Option<String>,
    /// What chose it (`listenerMetadata`, the annotation, default).
    pub source: String,
    /// The policy the old agent served, and its file's SHA-256.
    pub policy: String,
    pub digest: String,
    /// The broker's counts (see [`crate::broker::Stats::counts`]).
    pub counts: [u64; 6],
    /// Its slot in systemd's fd store, where the old agent stored it (see
    /// [`crate::agent::store`]): the successor keeps it there under the same name.
    #[serde(default)]
    pub slot: Option<u32>,
    /// Who runs the container (see [`crate::agent::runtime_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Who the container is, for the metrics' labels (Kubernetes' namespace, pod, container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<crate::metrics::Who>,
}

/// One message of the handover protocol (JSON, one per seqpacket).
// A few messages per container at a handover: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Successor → agent: hand everything over.
    Request { version: u32, pid: u32 },
    /// Agent → successor, with the runtime socket and the handover socket.
    Agent {
        version: u32,
        pid: u32,
        containers: usize,
    },
    /// Agent → successor, with the container's listener.
    Container(Handed),
    /// Agent → successor: that was all.
    End,
    /// Successor → agent: adopted, exit now.
    Ack { adopted: usize },
    /// Successor → agent: keep serving.
    Refuse { why: String },
}

impl Message {
    fn kind(&self) -> &'static str {
        match self {
            Message::Request { .. } => "request",
            Message::Agent { .. } => "agent",
            Message::Container(_) => "container",
            Message::End => "end",
            Message::Ack { .. } => "ack",
            Message::Refuse { .. } => "refuse",
        }
    }
}

/// Send `msg` with `fds`.
pub fn send(conn: BorrowedFd<'_>, msg: &Message, fds: &[RawFd]) -> Result<(), HandoverError> {
    let data = serde_json::to_vec(msg).map_err(HandoverError::Json)?;
    let iov = [IoSlice::new(&data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(conn.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| HandoverError::Io(e.into()))?;
    Ok(())
}

/// Receive one message and its fds, waiting at most `timeout`.
pub fn recv(
    conn: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<(Message, Vec<OwnedFd>), HandoverError> {
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    socket::setsockopt(&conn, sockopt::ReceiveTimeout, &tv)
        .map_err(|e| HandoverError::Io(e.into()))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (n, fds, truncated) = {
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| match e {
            nix::errno::Errno::EAGAIN => HandoverError::Timeout(timeout),
            e => HandoverError::Io(e.into()),
        })?;
        let mut fds = Vec::new();
        let mut other = false;
        for c in msg.cmsgs().map_err(|e| HandoverError::Io(e.into()))? {
            match c {
                ControlMessageOwned::ScmRights(raw) => {
                    for r in raw {
                        // SAFETY: the kernel just installed `r` in our fd table for this
                        // message (SCM_RIGHTS); nothing else owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                    }
                }
                _ => other = true,
            }
        }
        let truncated = msg
            .flags
            .intersects(MsgFlags::MSG_CTRUNC | MsgFlags::MSG_TRUNC)
            || other;
        (msg.bytes, fds, truncated)
    };
    if truncated {
        return Err(HandoverError::Truncated);
    }
    if n == 0 {
        return Err(HandoverError::Closed);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(HandoverError::Json)?;
    Ok((msg, fds))
}

/// The uid of the peer of `conn`.
pub fn check_peer(conn: BorrowedFd<'_>) -> Result<(), HandoverError> {
    let cred = socket::getsockopt(&conn, sockopt::PeerCredentials)
        .map_err(|e| HandoverError::Io(e.into()))?;
    if cred.uid() != 0 {
        return Err(HandoverError::NotRoot(cred.uid()));
    }
    Ok(())
}

/// Listen on the handover socket at `path` (0600; a stale one, that nobody listens on,
/// replaced; a live one or another file refused). The directory is the runtime socket's,
/// already checked root-only.
pub(crate) fn bind(path: &Path) -> Result<(OwnedFd, crate::agent::SocketFile), HandoverError> {
    use crate::agent::SeqpacketError as E;
    crate::agent::listen_seqpacket(path, 4).map_err(|e| {
        let source = match e {
            E::InUse => {
                std::io::Error::new(std::io::ErrorKind::AddrInUse, "another agent listens on it")
            }
            E::NotASocket => std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket; remove it",
            ),
            E::RemoveStale(e) | E::Chmod(e) => e,
            E::Socket(e) | E::Bind(e) => e.into(),
        };
        HandoverError::Socket {
            path: path.to_owned(),
            source,
        }
    })
}

/// Connect to the handover socket at `path` (blocking).
pub fn connect(path: &Path) -> Result<OwnedFd, HandoverError> {
    let err = |source: std::io::Error| HandoverError::Socket {
        path: path.to_owned(),
        source,
    };
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err(e.into()))?;
    let addr = UnixAddr::new(path).map_err(|e| err(e.into()))?;
    socket::connect(fd.as_raw_fd(), &addr).map_err(|e| err(e.into()))?;
    Ok(fd)
}

/// Accept one connection on the (non-blocking) handover socket; `Ok(None)`: none waiting.
pub fn accept(listener: BorrowedFd<'_>) -> std::io::Result<Option<OwnedFd>> {
    match socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
        // SAFETY: accept4 just returned this fd; nothing else owns it.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(nix::errno::Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a successor received: the two sockets, every listener with its container, and the
/// connection to answer on.
pub struct Received {
    pub from_pid: u32,
    pub runtime_socket: OwnedFd,
    pub handover_socket: OwnedFd,
    pub containers: Vec<(Handed, OwnedFd)>,
    pub conn: OwnedFd,
}

/// The successor's side up to its answer: ask the agent at `path` to hand over and receive
/// everything (each listener checked to be one). The caller answers with
/// [`Message::Ack`] or [`Message::Refuse`] on `conn`.
pub fn take_over(path: &Path, runtime_socket: &Path) -> Result<Received, HandoverError> {
    let conn = connect(path)?;
    check_peer(conn.as_fd())?;
    send(
        conn.as_fd(),
        &Message::Request {
            version: VERSION,
            pid: std::process::id(),
        },
        &[],
    )?;
    // The old agent first stops every broker (each ends after its emulations: at most the
    // helper timeout) and flushes its audit log.
    let (first, fds) = recv(conn.as_fd(), ANSWER_TIMEOUT)?;
    let (from_pid, count) = match first {
        Message::Agent {
            version,
            pid,
            containers,
        } => {
            if version != VERSION {
                return Err(HandoverError::Version(version));
            }
            (pid, containers)
        }
        Message::Refuse { why } => return Err(HandoverError::Refused(why)),
        other => {
            return Err(HandoverError::Unexpected {
                expected: "agent",
                got: other.kind().into(),
            })
        }
    };
    let [runtime, handover]: [OwnedFd; 2] =
        fds.try_into()
            .map_err(|f: Vec<OwnedFd>| HandoverError::FdCount {
                expected: 2,
                got: f.len(),
            })?;
    check_socket(runtime.as_fd(), SockType::Stream, runtime_socket)?;
    check_socket(handover.as_fd(), SockType::SeqPacket, path)?;
    let mut containers = Vec::with_capacity(count.min(4096));
    loop {
        let (msg, mut fds) = recv(conn.as_fd(), STEP_TIMEOUT)?;
        match msg {
            Message::Container(h) => {
                if fds.len() != 1 {
                    return Err(HandoverError::FdCount {
                        expected: 1,
                        got: fds.len(),
                    });
                }
                let fd = fds.remove(0);
                crate::seccomp::notify::check_listener(fd.as_fd()).map_err(|what| {
                    HandoverError::NotListener {
                        id: h.id.clone(),
                        what,
                    }
                })?;
                containers.push((h, fd));
            }
            Message::End if fds.is_empty() => break,
            other => {
                return Err(HandoverError::Unexpected {
                    expected: "container or end",
                    got: other.kind().into(),
                })
            }
        }
    }
    Ok(Received {
        from_pid,
        runtime_socket: runtime,
        handover_socket: handover,
        containers,
        conn,
    })
}

/// A handed socket must be a listening unix socket of `kind` bound at `path`.
fn check_socket(fd: BorrowedFd<'_>, kind: SockType, path: &Path) -> Result<(), HandoverError> {
    let wrong = |why: String| HandoverError::WrongSocket {
        path: path.to_owned(),
        why,
    };
    let t = socket::getsockopt(&fd, sockopt::SockType).map_err(|e| wrong(e.to_string()))?;
    if t != kind {
        return Err(wrong(format!("a {t:?} socket, expected {kind:?}")));
    }
    let listening =
        socket::getsockopt(&fd, sockopt::AcceptConn).map_err(|e| wrong(e.to_string()))?;
    if !listening {
        return Err(wrong("not listening".into()));
    }
    let addr: UnixAddr = socket::getsockname(fd.as_raw_fd()).map_err(|e| wrong(e.to_string()))?;
    let bound = addr.path().map(Path::to_path_buf);
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    match bound {
        Some(b) if same(&b, path) => Ok(()),
        Some(b) => Err(wrong(format!("bound at {}", b.display()))),
        None => Err(wrong("not bound to a path".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_their_fds() {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let h = Handed {
            id: "c1".into(),
            pid: 42,
            requested: Some("web".into()),
            source: "listenerMetadata".into(),
            policy: "web".into(),
            digest: "ab".into(),
            counts: [1, 2, 3, 4, 5, 6],
            slot: Some(2),
            runtime: Some("podman/crun".into()),
            who: Some(crate::metrics::Who {
                namespace: "shop".into(),
                pod: "web-7d4b9c8f6-x2x9z".into(),
                container: "nginx".into(),
            }),
        };
        let file = std::fs::File::open("/dev/null").unwrap();
        send(
            a.as_fd(),
            &Message::Container(h.clone()),
            &[file.as_raw_fd()],
        )
        .unwrap();
        let (m, fds) = recv(b.as_fd(), Duration::from_secs(1)).unwrap();
        assert_eq!(m, Message::Container(h));
        assert_eq!(fds.len(), 1);
    }

    #[test]
    fn garbage_silence_and_hangup_are_errors() {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        assert!(matches!(
            recv(b.as_fd(), Duration::from_millis(50)),
            Err(HandoverError::Timeout(_))
        ));
        socket::send(a.as_raw_fd(), b"{\"kind\":\"ack\"}", MsgFlags::empty()).unwrap();
        assert!(matches!(
            recv(b.as_fd(), Duration::from_secs(1)),
            Err(HandoverError::Json(_))
        ));
        socket::send(
            a.as_raw_fd(),
            &vec![b' '; MAX_MESSAGE + 1],
            MsgFlags::empty(),
        )
        .unwrap();
        assert!(matches!(
            recv(b.as_fd(), Duration::from_secs(1)),
            Err(HandoverError::Truncated)
        ));
        drop(a);
        assert!(matches!(
            recv(b.as_fd(), Duration::from_secs(1)),
            Err(HandoverError::Closed)
        ));
    }

    #[test]
    fn a_successor_refuses_sockets_that_are_not_the_agents() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("agent.sock.handover");
        let (l, file) = bind(&path).unwrap();
        check_socket(l.as_fd(), SockType::SeqPacket, &path).unwrap();
        let e = check_socket(l.as_fd(), SockType::Stream, &path).unwrap_err();
        assert!(e.to_string().contains("expected Stream"), "{e}");
        let e = check_socket(l.as_fd(), SockType::SeqPacket, &d.path().join("other")).unwrap_err();
        assert!(e.to_string().contains("bound at"), "{e}");
        // A second agent cannot bind it while the first listens.
        assert!(bind(&path).is_err());
        drop(l);
        // The file stays (as a dead agent's would): replaced as stale.
        std::mem::forget(file);
        bind(&path).unwrap();
    }
}
