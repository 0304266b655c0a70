//! The reading side of a session: connect, check who answers, read messages.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;

use super::protocol::{ClientMessage, Message, SessionKind};
use super::SessionError;

/// A running session found in the session directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// `<kind>-<pid>`.
    pub name: String,
    pub kind: SessionKind,
    pub pid: u32,
    pub path: PathBuf,
}

/// An attached session.
#[derive(Debug)]
pub struct Connection {
    path: PathBuf,
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    /// Kept so that the publisher does not see a half-closed socket, until taken by
    /// [`Connection::take_writer`].
    write: Option<tokio::net::unix::OwnedWriteHalf>,
}

/// The sending side of a connection: answers to prompts.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Writer {
    /// Send one message (one JSON line).
    pub async fn send(&mut self, m: &ClientMessage) -> Result<(), SessionError> {
        use tokio::io::AsyncWriteExt as _;
        let err = |source| SessionError::Write {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(m).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.write.write_all(&line).await.map_err(err)
    }
}

impl Connection {
    /// Connect to a session socket; the publisher must be root.
    pub async fn connect(path: &Path) -> Result<Connection, SessionError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| SessionError::Connect {
                path: path.to_owned(),
                source,
            })?;
        let cred = stream.peer_cred().map_err(|source| SessionError::Connect {
            path: path.to_owned(),
            source,
        })?;
        if cred.uid() != 0 {
            return Err(SessionError::NotRoot {
                path: path.to_owned(),
                uid: cred.uid(),
            });
        }
        let (read, write) = stream.into_split();
        Ok(Connection {
            path: path.to_owned(),
            lines: BufReader::new(read).lines(),
            write: Some(write),
        })
    }

    /// The sending side, once (for answering prompts from another task).
    pub fn take_writer(&mut self) -> Option<Writer> {
        self.write.take().map(|write| Writer {
            path: self.path.clone(),
            write,
        })
    }

    /// The next message; `None` when the session closed the connection. Lines this version
    /// does not understand are skipped.
    pub async fn next(&mut self) -> Result<Option<Message>, SessionError> {
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .map_err(|source| SessionError::Read {
                    path: self.path.clone(),
                    source,
                })?;
            let Some(line) = line else { return Ok(None) };
            match serde_json::from_str::<Message>(&line) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => {
                    tracing::debug!(error = %e, "session: skipping a line this version does not read")
                }
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::protocol::{Decision, Progress};
    use super::super::publisher::{Event, Publisher, SessionDetails, CLIENT_QUEUE};
    use super::*;

    fn decision(i: u64) -> Decision {
        Decision {
            time: format!("t{i}"),
            pid: 7,
            syscall: "getppid".into(),
            action: "errno(EPERM)".into(),
            decision: "denied".into(),
            result: "-EPERM".into(),
            latency_us: i,
            ..Default::default()
        }
    }

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    async fn next(c: &mut Connection) -> Result<Message, Box<dyn std::error::Error>> {
        let m = tokio::time::timeout(Duration::from_secs(5), c.next()).await??;
        m.ok_or_else(|| "connection closed".into())
    }

    #[tokio::test]
    async fn client_gets_hello_snapshot_then_live_events_and_end(
    ) -> Result<(), Box<dyn std::error::Error>> {
        if !root() {
            eprintln!("SKIP: the publisher accepts root peers only");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let run = dir.path().join("run");
        let p = Publisher::start_in(&run, SessionKind::Enforce, SessionDetails::default())?;
        let meta = std::fs::metadata(p.path())?;
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        let dmeta = std::fs::metadata(&run)?;
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&dmeta.permissions()) & 0o777,
            0o700
        );
        p.send(Event::Decision(decision(1)));
        // Let the publisher fold it before the client attaches: it must arrive in the snapshot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = Connection::connect(p.path()).await?;
        match next(&mut c).await? {
            Message::Hello(h) => {
                assert_eq!(h.name, format!("enforce-{}", std::process::id()));
                assert_eq!(h.kind, Some(SessionKind::Enforce));
            }
            m => panic!("expected hello, got {m:?}"),
        }
        match next(&mut c).await? {
            Message::Snapshot(s) => {
                assert_eq!(s.decisions, vec![decision(1)]);
                assert_eq!(s.totals.decisions, 1);
                assert_eq!(s.totals.by_action.get("denied"), Some(&1));
            }
            m => panic!("expected snapshot, got {m:?}"),
        }
        // Wait until the publisher counts us, then send live events.
        for _ in 0..50 {
            if p.has_clients() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        p.send(Event::Decision(decision(2)));
        p.send(Event::Progress(Progress {
            calls: 5,
            ..Default::default()
        }));
        let mut got = Vec::new();
        while got.len() < 2 {
            match next(&mut c).await? {
                Message::Status(_) => {}
                m => got.push(m),
            }
        }
        assert_eq!(got[0], Message::Decision(decision(2)));
        assert!(matches!(&got[1], Message::Progress(p) if p.calls == 5));
        let path = p.path().to_owned();
        p.finish("workload exited with status 0");
        loop {
            match next(&mut c).await? {
                Message::End { reason } => {
                    assert_eq!(reason, "workload exited with status 0");
                    break;
                }
                Message::Status(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
        assert!(!path.exists(), "the socket is removed at the end");
        Ok(())
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_loses_lines_counted_and_never_blocks(
    ) -> Result<(), Box<dyn std::error::Error>> {
        if !root() {
            eprintln!("SKIP: the publisher accepts root peers only");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let p = Publisher::start_in(dir.path(), SessionKind::Enforce, SessionDetails::default())?;
        let mut c = Connection::connect(p.path()).await?;
        for _ in 0..50 {
            if p.has_clients() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Far more than the socket buffer and the client queue hold, sent without pause.
        let n = (CLIENT_QUEUE * 20) as u64;
        let sender = p.sender();
        let t = std::time::Instant::now();
        for i in 0..n {
            sender.send(Event::Decision(decision(i)));
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "send must not block: {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Now read everything: the decisions received plus the drops reported must add up.
        let mut received = 0u64;
        let mut client_dropped = 0u64;
        let status = loop {
            match next(&mut c).await? {
                Message::Decision(_) => received += 1,
                Message::Dropped { total } => client_dropped = total,
                // Everything sent is accounted for: published (and then received or dropped
                // for this client) or dropped by the session.
                Message::Status(s)
                    if s.totals.decisions + s.session_dropped == n
                        && received + client_dropped >= s.totals.decisions =>
                {
                    break s;
                }
                _ => {}
            }
        };
        assert!(client_dropped > 0, "a slow client must lose lines");
        assert!(received > 0 && received <= status.totals.decisions);
        Ok(())
    }

    #[tokio::test]
    async fn answers_reach_the_owner_with_who_sent_them_and_prompts_reach_late_clients(
    ) -> Result<(), Box<dyn std::error::Error>> {
        use super::super::protocol::{Choice, ClientMessage, Prompt, PromptClosed};
        use tokio::io::AsyncWriteExt as _;
        if !root() {
            eprintln!("SKIP: the publisher accepts root peers only");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let mut p =
            Publisher::start_in(dir.path(), SessionKind::Enforce, SessionDetails::default())?;
        let mut answers = p.take_answers().ok_or("answers taken twice")?;
        assert!(p.take_answers().is_none());
        let prompt = |id| Prompt {
            id,
            syscall: "getppid".into(),
            calls: 1,
            ..Default::default()
        };
        p.send(Event::Prompt(prompt(1)));
        p.send(Event::Prompt(prompt(2)));
        p.send(Event::PromptClosed(PromptClosed {
            id: 1,
            answer: "timeout".into(),
            by: "timeout after 1s".into(),
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = Connection::connect(p.path()).await?;
        let _hello = next(&mut c).await?;
        match next(&mut c).await? {
            Message::Snapshot(s) => assert_eq!(s.prompts, vec![prompt(2)]),
            m => panic!("expected snapshot, got {m:?}"),
        }
        let mut w = c.take_writer().ok_or("no writer")?;
        assert!(c.take_writer().is_none());
        // A line that is not a message is skipped; the next one still counts.
        w.write
            .write_all(b"{\"type\":\"answer\",\"id\":2,\"choice\":\"maybe\"}\n")
            .await?;
        w.send(&ClientMessage::Answer {
            id: 2,
            choice: Choice::DenyAlways,
        })
        .await?;
        let a = tokio::time::timeout(Duration::from_secs(5), answers.recv())
            .await?
            .ok_or("answers closed")?;
        assert_eq!((a.id, a.choice), (2, Choice::DenyAlways));
        // This test's client is this very process: the in-process UI's case.
        assert_eq!(a.by, "in-process UI");
        Ok(())
    }
}
