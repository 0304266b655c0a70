//! LXC's seccomp notify proxy protocol (`lxc.seccomp.notify.proxy = unix:PATH`): LXC's monitor
//! receives each notification itself and forwards it over SOCK_SEQPACKET; the agent decides,
//! emulates and replies, and LXC answers the kernel.
//!
//! The protocol, as LXC 5.0.2 speaks it (`seccomp_notify_handler` in src/lxc/seccomp.c):
//! - LXC connects once per container when it starts (and again after a failed send); every
//!   notification of the container — and of `lxc-attach`ed processes, whose filters have their
//!   own notify fds — goes over that one connection, one at a time: LXC waits for the reply
//!   (30 s socket timeout, then it answers the kernel `-ENOSYS` itself).
//! - One record: [`Header`] (32 bytes: reserved, monitor pid, init pid, the kernel's
//!   `seccomp_notif_sizes`, cookie length), `seccomp_notif`, the prefilled `seccomp_notif_resp`
//!   (its id already set), then the cookie (`lxc.seccomp.notify.cookie`, no NUL). Three fds
//!   ride along in one SCM_RIGHTS message, in this order: `/proc/PID` (O_DIRECTORY),
//!   `/proc/PID/mem` and the notify fd itself (a new fd number for every message).
//! - The reply is one record of exactly header + `seccomp_notif` + `seccomp_notif_resp` (no
//!   cookie, no fds); LXC reads the response's id, val, error and flags and hands it to
//!   `SECCOMP_IOCTL_NOTIF_SEND`. A reply of another length makes LXC answer `-ENOSYS`.
//!
//! What the agent does with it: the cookie names the policy in the policy directory (untrusted,
//! checked by [`PolicyDir`](crate::agent::policies::PolicyDir)); the container is named after the `lxc.payload.NAME` cgroup of its
//! init process. One [`Broker`] per (connection, notify fd) — two fds are the same filter when
//! `kcmp(KCMP_FILE)` says they refer to one open file — built once and asked with
//! [`Broker::respond`], which decides, runs the handler (ID_VALID, ADDFD, never RECV or SEND)
//! and records the decision. The `/proc` fds are not needed (the handlers open the caller's
//! `/proc` entries themselves and re-check ID_VALID) and are closed at once.
//!
//! Bad input: a record whose sizes, lengths or fds do not add up is logged and dropped (no
//! reply can be framed for it) and the connection keeps being served; a well-framed record
//! that cannot be served (unknown policy, not a notify fd, …) is answered `-ENOSYS`, what LXC
//! itself answers when no proxy is there. A reply that would come later than LXC waits is
//! never sent: the connection is closed instead, since LXC would take it for the answer to
//! the next notification.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{self as sock, ControlMessageOwned, MsgFlags, SockFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

pub mod wire;

pub use wire::{
    parse, reply, Header, Message, MessageError, EXPECTED_FDS, HEADER_LEN, MAX_COOKIE_LEN,
    RECV_BUF_LEN,
};

use super::Shared;
use crate::broker::Broker;
use crate::seccomp::notify::{self, NotifyFd, Response, SeccompNotifSizes};
/// LXC waits 30 s for a reply; a reply later than this is not sent (see the module docs).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(25);
/// Notify fds remembered per connection (the container's own and `lxc-attach`es'); filters
/// without tasks are dropped first, then the oldest.
const MAX_FILTERS_PER_CONNECTION: usize = 64;
/// Connections served at once (LXC opens one per running container); more are refused.
pub const MAX_CONNECTIONS: usize = 1024;
/// Fds one SCM_RIGHTS message may carry (include/net/scm.h).
const SCM_MAX_FD: usize = 253;
/// `kcmp(2)` type: are two fds the same open file.
const KCMP_FILE: libc::c_int = 0;

/// Errors of the LXC listener.
#[derive(Debug, thiserror::Error)]
pub enum LxcError {
    #[error("{path}: exists and is not a socket; remove it or choose another --lxc-socket")]
    NotASocket { path: PathBuf },
    #[error("socket directory {}: {why}", dir.display())]
    SocketDir { dir: PathBuf, why: String },
    #[error("{}: another process listens on this socket (is an agent already running?)", path.display())]
    InUse { path: PathBuf },
    #[error("cannot remove the stale socket {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the SOCK_SEQPACKET socket")]
    Socket {
        #[source]
        source: nix::Error,
    },
    #[error("cannot listen on {path} (does its directory exist?)")]
    Bind {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot make {path} root-only")]
    Chmod {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot register the socket with the reactor")]
    Register {
        #[source]
        source: std::io::Error,
    },
    #[error("accepting a connection failed")]
    Accept {
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Sizes(#[from] notify::NotifyError),
}

// --- the socket ----------------------------------------------------------------------------------

/// An fd the reactor watches.
struct Sock(OwnedFd);

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Listen on `path` (its directory root's and writable by no one else): a stale socket there
/// is replaced, a live one or any other file is left alone and refused.
fn listen_on(path: &Path) -> Result<(OwnedFd, super::SocketFile), LxcError> {
    use super::SeqpacketError as E;
    super::check_socket_dir(path).map_err(|(dir, why)| LxcError::SocketDir { dir, why })?;
    let path_buf = || path.to_owned();
    super::listen_seqpacket(path, 128).map_err(|e| match e {
        E::InUse => LxcError::InUse { path: path_buf() },
        E::NotASocket => LxcError::NotASocket { path: path_buf() },
        E::RemoveStale(source) => LxcError::RemoveStale {
            path: path_buf(),
            source,
        },
        E::Socket(source) => LxcError::Socket { source },
        E::Bind(source) => LxcError::Bind {
            path: path_buf(),
            source,
        },
        E::Chmod(source) => LxcError::Chmod {
            path: path_buf(),
            source,
        },
    })
}

/// Listen on `socket` and serve every LXC container that connects until `cancel` fires.
pub async fn serve(socket: &Path, ctx: Shared, cancel: CancellationToken) -> Result<(), LxcError> {
    let kernel = notify::check_sizes()?;
    let (fd, _file) = listen_on(socket)?;
    // SAFETY: `Sock` owns the fd, so it stays open and the same while the AsyncFd lives.
    let listener = unsafe { AsyncFd::register_with_interest(Sock(fd), Interest::READABLE) }
        .map_err(|e| LxcError::Register {
            source: e.into_parts().1,
        })?;
    tracing::info!(socket = %socket.display(), "serving LXC's seccomp notify proxy");
    // The socket file goes with `_file`, if it is still the one bound here.
    accept_loop(&listener, &ctx, kernel, &cancel).await
}

/// Serve a listening SOCK_SEQPACKET socket handed over by the service manager (socket
/// activation): it is not auditor's to bind or remove.
pub async fn serve_inherited(
    fd: OwnedFd,
    ctx: Shared,
    cancel: CancellationToken,
) -> Result<(), LxcError> {
    let kernel = notify::check_sizes()?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|source| LxcError::Socket { source })?,
    );
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(flags | nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|source| LxcError::Socket { source })?;
    // SAFETY: `Sock` owns the fd, so it stays open and the same while the AsyncFd lives.
    let listener = unsafe { AsyncFd::register_with_interest(Sock(fd), Interest::READABLE) }
        .map_err(|e| LxcError::Register {
            source: e.into_parts().1,
        })?;
    tracing::info!("serving LXC's seccomp notify proxy on the socket the service manager passed");
    accept_loop(&listener, &ctx, kernel, &cancel).await
}

async fn accept_loop(
    listener: &AsyncFd<Sock>,
    ctx: &Shared,
    kernel: SeccompNotifSizes,
    cancel: &CancellationToken,
) -> Result<(), LxcError> {
    let mut next_id = 0u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let mut guard = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            g = listener.readable() => g.map_err(|source| LxcError::Register { source })?,
        };
        let raw = match sock::accept4(
            listener.get_ref().as_raw_fd(),
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        ) {
            Ok(fd) => fd,
            Err(nix::Error::EAGAIN) => {
                guard.clear_ready();
                continue;
            }
            // The peer gave up before we accepted, or we are out of fds for now: keep serving.
            Err(
                e @ (nix::Error::ECONNABORTED
                | nix::Error::EMFILE
                | nix::Error::ENFILE
                | nix::Error::EINTR),
            ) => {
                tracing::warn!(error = %e, "LXC proxy: accept failed");
                if matches!(e, nix::Error::EMFILE | nix::Error::ENFILE) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            Err(source) => return Err(LxcError::Accept { source }),
        };
        // SAFETY: accept4 returned a new fd that nothing else owns.
        let conn = unsafe { OwnedFd::from_raw_fd(raw) };
        next_id += 1;
        let id = next_id;
        match sock::getsockopt(&conn, sock::sockopt::PeerCredentials) {
            Ok(c) if c.uid() == 0 => {
                tracing::debug!(conn = id, peer_pid = c.pid(), "LXC proxy: connection");
            }
            Ok(c) => {
                tracing::warn!(
                    conn = id,
                    peer_uid = c.uid(),
                    peer_pid = c.pid(),
                    "LXC proxy: refused a connection from a non-root peer"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(conn = id, error = %e, "LXC proxy: cannot read the peer's credentials; connection refused");
                continue;
            }
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                conn = id,
                "LXC proxy: {MAX_CONNECTIONS} connections already; connection refused"
            );
            continue;
        };
        let (ctx, cancel) = (ctx.clone(), cancel.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match Connection::new(conn, ctx, kernel, id) {
                Ok(c) => c.run(cancel).await,
                Err(e) => {
                    tracing::warn!(conn = id, error = %e, "LXC proxy: cannot serve the connection")
                }
            }
        });
    }
}

/// A notify fd seen on a connection, and the broker that serves it.
struct Filter {
    /// Our own copy of the fd, to recognise the same filter in later records and to see when
    /// its tasks are gone.
    fd: NotifyFd,
    cookie: String,
    broker: Arc<Broker>,
    container: String,
    /// Counted in the agent's metrics while the filter is served.
    _serving: Option<crate::metrics::Serving>,
    /// The live session, told when the container has ended.
    live: Option<crate::session::SessionSender>,
    /// Where answers to its prompts come from (an interactive policy).
    _route: Option<super::prompts::Route>,
    /// The agent's reload count when its policy was last read, the policy's name and digest.
    generation: u64,
    policy: String,
    digest: String,
}

impl Drop for Filter {
    /// Forgotten because its tasks are gone (or its connection closed): when no task of the
    /// filter is left, the container has ended — the live session's Fleet says so.
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            if self.fd.readiness().map(|r| r.hangup).unwrap_or(false) {
                live.send(crate::session::Event::ContainerEnded(
                    self.container.clone(),
                ));
            }
        }
    }
}

/// One record as received: bytes and the fds that came with it (closed on drop).
struct Received {
    len: usize,
    fds: Vec<OwnedFd>,
}

struct Connection {
    sock: AsyncFd<Sock>,
    ctx: Shared,
    kernel: SeccompNotifSizes,
    id: u64,
    filters: Vec<Filter>,
    buf: Vec<u8>,
}

/// Are `a` and `b` the same open file (`kcmp(2)`, KCMP_FILE; 3.5, CONFIG_KCMP)?
fn same_file(a: RawFd, b: RawFd) -> bool {
    let pid = std::process::id();
    // SAFETY: kcmp reads no memory of ours: all five arguments are integers.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a, b) };
    r == 0
}

/// What `/proc/self/fd/N` says the fd is.
fn fd_target(fd: RawFd) -> String {
    crate::host::proc::fd_path(fd).unwrap_or_else(|e| format!("unreadable ({e})"))
}

/// Check the `/proc/PID` directory LXC sent with a notification: a procfs directory whose task
/// is the notification's caller (its `Pid:` is the notification's pid, both in LXC's pid
/// namespace). Returns the caller's `/proc/PID/cgroup` text (LXC puts its payload in a cgroup
/// named `lxc.payload.NAME`), read through it.
pub fn verify_caller_dir(dir: &OwnedFd, pid: u32) -> Result<Option<String>, String> {
    let st = nix::sys::statfs::fstatfs(dir).map_err(|e| format!("fstatfs: {e}"))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(format!(
            "not a procfs directory: {}",
            fd_target(dir.as_raw_fd())
        ));
    }
    let read = |name: &std::ffi::CStr| -> Result<String, String> {
        // SAFETY: openat on a live directory fd with a NUL-terminated name; we own the result.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(format!("{name:?}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: just opened, owned by nobody else.
        let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        std::io::read_to_string(f).map_err(|e| format!("{name:?}: {e}"))
    };
    let status = read(c"status")?;
    let shown: Option<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok());
    if shown != Some(pid) {
        return Err(format!(
            "it is the directory of pid {shown:?}, the notification's caller is {pid}"
        ));
    }
    Ok(read(c"cgroup").ok())
}

/// The `NAME` of the first `lxc.payload.NAME` component in a `/proc/PID/cgroup` text.
pub fn container_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(|c| c.strip_prefix("lxc.payload."))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

impl Connection {
    fn new(
        conn: OwnedFd,
        ctx: Shared,
        kernel: SeccompNotifSizes,
        id: u64,
    ) -> std::io::Result<Connection> {
        // SAFETY: `Sock` owns the fd, so it stays open and the same while the AsyncFd lives.
        let sock = unsafe {
            AsyncFd::register_with_interest(Sock(conn), Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(Connection {
            sock,
            ctx,
            kernel,
            id,
            filters: Vec::new(),
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    async fn run(mut self, cancel: CancellationToken) {
        let conn = self.id;
        loop {
            let received = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.recv() => r,
            };
            let received = match received {
                Ok(r) => r,
                Err(MessageError::Closed) => {
                    tracing::debug!(conn, "LXC proxy: connection closed");
                    return;
                }
                Err(e) => {
                    tracing::warn!(conn, error = %e, "LXC proxy: record rejected");
                    continue;
                }
            };
            let m = match parse(&self.buf[..received.len], self.kernel) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(conn, error = %e, "LXC proxy: record rejected");
                    continue;
                }
            };
            let answer = tokio::select! {
                () = cancel.cancelled() => return,
                a = tokio::time::timeout(REPLY_DEADLINE, self.answer(&m, received.fds)) => a,
            };
            let Ok(response) = answer else {
                tracing::error!(conn, id = m.notif.id, pid = m.notif.pid, "LXC proxy: no answer within {REPLY_DEADLINE:?}; closing the connection so that a late reply is not taken for the next one (LXC answers -ENOSYS and reconnects)");
                return;
            };
            let bytes = reply(&m, response);
            if let Err(e) = self.send(&bytes).await {
                tracing::warn!(conn, error = %e, "LXC proxy: cannot send the reply; closing the connection");
                return;
            }
        }
    }

    /// Receive one record into `self.buf`.
    async fn recv(&mut self) -> Result<Received, MessageError> {
        loop {
            let mut guard = self
                .sock
                .readable()
                .await
                .map_err(|_| MessageError::Closed)?;
            let fd = self.sock.get_ref().as_raw_fd();
            let mut iov = [std::io::IoSliceMut::new(&mut self.buf)];
            // Room for every fd one record can carry (the kernel refuses to send more than
            // SCM_MAX_FD), so that none arrive cut off by MSG_CTRUNC, where nix hands out none
            // of those that did arrive and they could not be closed.
            let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
            let r = sock::recvmsg::<()>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            );
            let msg = match r {
                Ok(m) => m,
                Err(nix::Error::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Err(MessageError::Closed),
            };
            // Own every fd that arrived before looking at anything else, so that all of
            // them are closed whatever is wrong with the record.
            let mut fds = Vec::new();
            let cmsgs = msg.cmsgs();
            if cmsgs.is_err() {
                tracing::warn!(
                    conn = self.id,
                    "LXC proxy: control data cut off (MSG_CTRUNC); fds in it may stay open"
                );
            }
            if let Ok(cmsgs) = cmsgs {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        for raw in v {
                            // SAFETY: SCM_RIGHTS installed these fds in our table for us;
                            // nothing else owns them.
                            fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                        }
                    }
                }
            }
            let (len, flags) = (msg.bytes, msg.flags);
            if len == 0 && fds.is_empty() {
                return Err(MessageError::Closed);
            }
            if flags.contains(MsgFlags::MSG_CTRUNC) {
                return Err(MessageError::ControlTruncated);
            }
            if flags.contains(MsgFlags::MSG_TRUNC) || len >= RECV_BUF_LEN {
                return Err(MessageError::Truncated {
                    max: RECV_BUF_LEN - 1,
                });
            }
            return Ok(Received { len, fds });
        }
    }

    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        loop {
            let mut guard = self.sock.writable().await?;
            match sock::send(
                self.sock.get_ref().as_raw_fd(),
                bytes,
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => {
                    return Err(std::io::Error::other(format!(
                        "sent {n} of {} bytes",
                        bytes.len()
                    )))
                }
                Err(nix::Error::EAGAIN) => guard.clear_ready(),
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Decide one well-framed record; `-ENOSYS` when it cannot be served.
    async fn answer(&mut self, m: &Message, mut fds: Vec<OwnedFd>) -> Response {
        let conn = self.id;
        let refuse = Response::Errno(libc::ENOSYS);
        if fds.len() != EXPECTED_FDS {
            tracing::warn!(conn, error = %MessageError::Fds { got: fds.len() }, "LXC proxy: record refused (-ENOSYS)");
            return refuse;
        }
        // LXC's /proc/PID (fds[0]) stands for the caller wherever a handler looks it up: the
        // pid is in LXC's pid namespace, which need not be the agent's. Its /proc/PID/mem
        // (fds[1]) is not needed: the handlers open what they need through the directory.
        let notify_fd = fds.swap_remove(2);
        let proc_dir = fds.swap_remove(0);
        drop(fds);
        let caller = match verify_caller_dir(&proc_dir, m.notif.pid) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                tracing::warn!(conn, pid = m.notif.pid, error = %e, "LXC proxy: the caller's /proc directory LXC sent does not check out; record refused (-ENOSYS)");
                return refuse;
            }
        };
        if let Err(what) = notify::check_listener(notify_fd.as_fd()) {
            tracing::warn!(conn, error = %MessageError::NotNotifyFd(what), "LXC proxy: record refused (-ENOSYS)");
            return refuse;
        }
        let filter = match self.filter_for(notify_fd, m, caller).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(conn, cookie = %m.cookie, error = %e, "LXC proxy: cannot serve the container (-ENOSYS)");
                return refuse;
            }
        };
        let broker = filter.broker.clone();
        let n = m.notif;
        // An interactive policy: a call no rule decides waits for its prompt's answer (LXC
        // waits for this reply; its prompts time out before LXC gives up).
        if let Some(answer) = broker.hold(&n) {
            return match answer.await {
                Ok(Some(r)) => r,
                _ => refuse,
            };
        }
        let served = tokio::task::spawn_blocking(move || {
            crate::broker::target::with_caller_dir(n.pid, proc_dir, || broker.respond(&n))
        });
        match served.await {
            Ok(Some(r)) => r,
            // The caller is gone: whatever LXC sends goes nowhere.
            Ok(None) => refuse,
            Err(e) => {
                tracing::error!(conn, container = %filter.container, error = %e, "LXC proxy: the handler failed (-ENOSYS)");
                refuse
            }
        }
    }

    /// After a reload: read the policy filter `i`'s cookie names again and, if it changed,
    /// serve the filter's next notifications with a broker built from it. A policy that no
    /// longer loads leaves the filter under the one it has.
    async fn reload_filter(&mut self, i: usize, generation: u64) {
        let conn = self.id;
        let ctx = self.ctx.clone();
        let f = &mut self.filters[i];
        f.generation = generation;
        let cookie = f.cookie.clone();
        let loaded = {
            let ctx = ctx.clone();
            let cookie = cookie.clone();
            tokio::task::spawn_blocking(move || ctx.policies.load(Some(&cookie)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let loaded = match loaded {
            Ok(l) if l.digest == f.digest => return,
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(conn, container = %f.container, policy = %f.policy, error = %e, "LXC proxy: reload: the policy does not load; the container keeps the one it has");
                return;
            }
        };
        let fd = match f.fd.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(conn, container = %f.container, error = %e, "LXC proxy: reload: cannot duplicate the notify fd; the container keeps its policy");
                return;
            }
        };
        let (name, digest) = (loaded.name.clone(), loaded.digest.clone());
        let (broker, route) = broker_for(&ctx, fd, loaded, &f.container, &cookie);
        f.broker = Arc::new(broker);
        f._route = route;
        f.digest = digest;
        let said = format!(
            "the agent reloaded its policies: LXC container {} is now served under its changed policy {name}",
            f.container
        );
        f.policy = name;
        tracing::info!(conn, container = %f.container, policy = %f.policy, "LXC proxy: a container served under its changed policy");
        if let Some(live) = &ctx.live {
            live.send(crate::session::Event::Notice(said));
        }
    }

    /// The filter `fd` belongs to: one seen before on this connection, or a new one with its
    /// broker built from the policy the cookie names.
    async fn filter_for(
        &mut self,
        fd: OwnedFd,
        m: &Message,
        caller_cgroup: Option<String>,
    ) -> Result<&Filter, String> {
        if let Some(i) = self
            .filters
            .iter()
            .position(|f| same_file(f.fd.as_raw_fd(), fd.as_raw_fd()))
        {
            // `fd` (this record's copy) is closed here.
            let f = &self.filters[i];
            if f.cookie != m.cookie {
                return Err(format!(
                    "the cookie changed from `{}` for a filter already served",
                    f.cookie
                ));
            }
            let generation = self.ctx.reloads.load(std::sync::atomic::Ordering::SeqCst);
            if f.generation != generation {
                self.reload_filter(i, generation).await;
            }
            return Ok(&self.filters[i]);
        }
        // Forget filters whose tasks are all gone, then the oldest if still too many.
        self.filters
            .retain(|f| !f.fd.readiness().map(|r| r.hangup).unwrap_or(true));
        if self.filters.len() >= MAX_FILTERS_PER_CONNECTION {
            self.filters.remove(0);
        }
        let ctx = self.ctx.clone();
        let (cookie, init_pid) = (m.cookie.clone(), m.header.init_pid);
        let conn = self.id;
        let generation = ctx.reloads.load(std::sync::atomic::Ordering::SeqCst);
        let built = tokio::task::spawn_blocking(move || -> Result<Filter, String> {
            let ours = fd.try_clone().map_err(|e| format!("cannot duplicate the notify fd: {e}"))?;
            let loaded = ctx
                .policies
                .load(Some(&cookie))
                .map_err(|e| e.to_string())?;
            let container = caller_cgroup
                .as_deref()
                .and_then(container_from_cgroup)
                .unwrap_or_else(|| format!("lxc-init-{init_pid}"));
            tracing::info!(conn, container = %container, policy = %loaded.name, path = %loaded.path.display(), "LXC proxy: serving a container");
            if let Some(live) = &ctx.live {
                live.send(crate::session::Event::ContainerStarted {
                    id: container.clone(),
                    policy: loaded.name.clone(),
                    runtime: Some("lxc".into()),
                });
            }
            let (policy, digest) = (loaded.name.clone(), loaded.digest.clone());
            let (broker, route) = broker_for(&ctx, fd, loaded, &container, &cookie);
            let serving = ctx.metrics.as_ref().map(|m| m.serving());
            Ok(Filter {
                fd: NotifyFd::new(ours),
                cookie,
                broker: Arc::new(broker),
                container,
                _serving: serving,
                live: ctx.live.clone(),
                _route: route,
                generation,
                policy,
                digest,
            })
        })
        .await
        .map_err(|e| format!("preparing the policy failed: {e}"))??;
        self.filters.push(built);
        self.filters.last().ok_or_else(|| "unreachable".to_owned())
    }
}

/// A broker for an LXC container's filter under `loaded` (and, for an interactive policy, the
/// route of its prompts' answers).
fn broker_for(
    ctx: &Arc<super::Context>,
    fd: OwnedFd,
    loaded: super::policies::Loaded,
    container: &str,
    cookie: &str,
) -> (Broker, Option<super::prompts::Route>) {
    let mut broker = Broker::new(
        NotifyFd::new(fd),
        loaded.decider,
        ctx.mode,
        ctx.audit.clone(),
    )
    .with_container(container.to_owned())
    .with_flood_yield(ctx.flood_rate)
    .with_policy(
        loaded.name.clone(),
        if cookie.trim().is_empty() {
            "default"
        } else {
            "lxc-cookie"
        },
    );
    if let Some(live) = &ctx.live {
        broker = broker.with_live(live.clone());
    }
    let mut route = None;
    if let Some((i, r)) = super::interactive(
        ctx,
        broker.policy(),
        &loaded.name,
        container,
        Some(super::prompts::LXC_MAX_TIMEOUT),
    ) {
        broker = broker.with_interactive(i);
        route = Some(r);
    }
    if let Some(m) = &ctx.metrics {
        broker = broker.with_metrics(
            m.clone(),
            Some(crate::metrics::Who {
                container: container.to_owned(),
                ..crate::metrics::Who::default()
            }),
        );
    }
    broker.start_prompting();
    (broker, route)
}

#[cfg(test)]
mod tests;
