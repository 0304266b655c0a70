//! The daemon's socket: bound root-only, one task per connection that checks the peer, reads
//! one bounded request and passes it to the learner task; and [`request`], the client side
//! (`auditor hook`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Reply, Request};
use super::{DaemonError, Job, READ_TIMEOUT};

/// Bind the socket, root-only; a stale socket file is replaced, a live one is refused.
pub(super) fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    let io = |what| {
        let path = path.to_owned();
        move |source| DaemonError::Io { path, what, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io("creating the socket directory"))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("restricting the socket directory"))?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::InUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(io("removing a stale socket"))?;
    }
    // Created with no permissions for group and others (umask), then set to 0600 explicitly.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.map_err(io("binding the socket"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("restricting the socket"))?;
    Ok(l)
}

pub(super) async fn accept_loop(
    listener: UnixListener,
    tx: mpsc::Sender<Job>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(stream, tx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One connection: check the peer, read one bounded request, pass it on, answer.
async fn serve_client(mut stream: UnixStream, tx: mpsc::Sender<Job>) {
    let peer = stream.peer_cred().ok();
    let (uid, pid) = (peer.map(|c| c.uid()), peer.and_then(|c| c.pid()));
    let reply = match uid {
        Some(0) => match read_request(&mut stream).await {
            Ok(Request::Register(register)) => {
                let (rtx, rrx) = oneshot::channel();
                if tx
                    .send(Job {
                        register,
                        reply: rtx,
                    })
                    .await
                    .is_err()
                {
                    Reply::err("the daemon is shutting down")
                } else {
                    rrx.await
                        .unwrap_or_else(|_| Reply::err("the daemon is shutting down"))
                }
            }
            Err(msg) => {
                tracing::warn!(peer_pid = ?pid, error = %msg, "rejected a malformed request");
                Reply::err(format!("malformed request: {msg}"))
            }
        },
        other => {
            tracing::warn!(peer_uid = ?other, peer_pid = ?pid, "rejected a client that is not root");
            Reply::err("only root may register containers")
        }
    };
    let mut text = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    text.push(b'\n');
    let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(&text)).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok::<(), String>(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > protocol::MAX_MESSAGE {
                return Err(format!("more than {} bytes", protocol::MAX_MESSAGE));
            }
            // A request is one JSON object: a newline ends it, so a client need not shut down.
            if buf.contains(&b'\n') {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(format!(
                "no complete request within {}s",
                READ_TIMEOUT.as_secs()
            ))
        }
    }
    protocol::parse_request(&buf).map_err(|e| e.to_string())
}

/// How often a client tries again to reach a daemon that is not there (yet).
const RETRY: Duration = Duration::from_millis(100);

/// Connect to the daemon, trying again until `deadline` while nothing listens (no socket file,
/// or one nobody accepts on): a daemon restarted within the hook's timeout makes no container
/// fail to start.
fn connect(
    socket: &Path,
    deadline: Instant,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    loop {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && Instant::now() + RETRY < deadline =>
            {
                std::thread::sleep(RETRY);
            }
            Err(e) => {
                return Err(format!(
                    "cannot reach the auditor daemon at {} (tried for {}): {e} (is `auditor daemon --socket {}` running?)",
                    socket.display(),
                    humantime::format_duration(timeout),
                    socket.display()
                ))
            }
        }
    }
}

/// Send one request to a daemon and wait for its reply, at most `timeout` in all.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, String> {
    use std::io::{Read as _, Write as _};
    let deadline = Instant::now() + timeout;
    let mut s = connect(socket, deadline, timeout)?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    let mut text = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    text.push(b'\n');
    s.write_all(&text)
        .map_err(|e| format!("sending to the daemon at {}: {e}", socket.display()))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > protocol::MAX_MESSAGE {
                    return Err("the daemon's reply is too large".into());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "the auditor daemon at {} did not answer within {}s",
                    socket.display(),
                    timeout.as_secs_f64()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the daemon's reply: {e}")),
        }
    }
    serde_json::from_slice(&buf).map_err(|e| format!("the daemon's reply is not valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that comes up after the client started is reached within the timeout; with no
    /// daemon at all the client gives up at the timeout, saying so.
    #[test]
    fn a_client_waits_for_a_daemon_that_comes_up_within_its_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.sock");
        let server_path = path.clone();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            let l = std::os::unix::net::UnixListener::bind(&server_path).expect("bind");
            let (mut c, _) = l.accept().expect("accept");
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while std::io::Read::read(&mut c, &mut b).is_ok_and(|n| n == 1) && b[0] != b'\n' {
                line.push(b[0]);
            }
            let reply = serde_json::to_vec(&Reply::err("test reply")).expect("json");
            std::io::Write::write_all(&mut c, &reply).expect("reply");
        });
        let req = Request::Register(protocol::Register {
            id: "c1".into(),
            pid: 1,
            bundle: None,
            runtime: None,
            annotations: Default::default(),
        });
        let t = Instant::now();
        let reply = request(&path, &req, Duration::from_secs(5)).expect("reached");
        assert_eq!(reply.error.as_deref(), Some("test reply"));
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        server.join().expect("server");

        let t = Instant::now();
        let e = request(
            &dir.path().join("none.sock"),
            &req,
            Duration::from_millis(700),
        )
        .expect_err("nobody there");
        assert!(
            e.contains("cannot reach the auditor daemon") && e.contains("700ms"),
            "{e}"
        );
        assert!(t.elapsed() >= Duration::from_millis(500) && t.elapsed() < Duration::from_secs(3));
    }
}
