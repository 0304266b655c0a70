//! The publishing side of a session: a socket, its own thread, bounded queues everywhere.
//!
//! The session's code (the broker, the learn loop) calls [`SessionSender::send`], which never
//! blocks: it is a `try_send` into a bounded queue, and a full queue costs one counted drop.
//! The publisher thread (its own current-thread runtime, so that serialisation and socket
//! writes never run on the broker's thread) folds every event into the snapshot new clients
//! get, serialises it once and offers the line to each client's bounded queue; a client that
//! reads too slowly loses lines (counted and told to it), it never slows anybody down.

use std::collections::VecDeque;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    Choice, ClientMessage, Decision, Hello, Message, Progress, Prompt, PromptClosed, SessionKind,
    Snapshot, Status, PROTOCOL_VERSION, SNAPSHOT_DECISIONS,
};
use super::SessionError;
use crate::observe::model::Observation;

/// Events waiting for the publisher thread; beyond this they are dropped and counted.
pub const SESSION_QUEUE: usize = 8192;
/// Lines waiting for one client; beyond this they are dropped for that client and counted.
pub const CLIENT_QUEUE: usize = 2048;
/// Clients attached at once; more are refused.
pub const MAX_CLIENTS: usize = 16;
/// How long a client's writer lets lines gather before writing them (see `write_client`).
const COALESCE: Duration = Duration::from_millis(10);
/// Decisions sent to clients per [`DISPLAY_WINDOW`] at most: 1,000 a second, more than anyone
/// can read (the totals come from the session's own counts, sent every second). Beyond, a decision only counts (totals, recent decisions of the snapshot, the
/// audit log) and is a drop for each client, shown as such: serialising and writing every
/// decision of a busy session would take the CPU the broker needs. The window is shorter than
/// a UI frame (50 ms), so that a busy session's budget is spread over every frame rather than
/// spent in one burst a window (the screen would then change only every 100 ms).
pub const DISPLAY_BUDGET: u32 = 20;
pub const DISPLAY_WINDOW: Duration = Duration::from_millis(20);

/// What a session publishes. Decisions are nearly all events and are not boxed (that would
/// cost the broker an allocation each).
#[derive(Clone, Debug)]
pub enum Event {
    Decision(Decision),
    /// Many decisions at once (the broker under load): their exact totals, and the few of
    /// them worth showing; the others count as display drops.
    Decisions(Box<DecisionBatch>),
    Progress(Progress),
    Observation(Box<Observation>),
    Notice(String),
    /// Container `id`'s listener closed (an agent's session): its totals say so from the
    /// next status on.
    ContainerEnded(String),
    /// The agent serves container `id` from now on, under `policy`; `runtime`: who runs it.
    ContainerStarted {
        id: String,
        policy: String,
        runtime: Option<String>,
    },
    /// A call waits for a decision (kept for the snapshot of clients that attach later).
    Prompt(Prompt),
    /// The daemon's containers (kept for the snapshot).
    Learning(crate::session::protocol::Learning),
    PromptClosed(PromptClosed),
}

/// Answers to prompts waiting for the session's owner (the broker); beyond, they are dropped
/// (the prompt stays, and its timeout still denies).
pub const ANSWER_QUEUE: usize = 256;
/// The longest line a client may send; a longer one ends its connection.
const MAX_CLIENT_LINE: usize = 4096;

/// An answer from a client, with who sent it (from the socket's peer credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub id: u64,
    pub choice: Choice,
    /// `in-process UI` when the client is this process itself, else `uid U (user) pid P`.
    pub by: String,
}

/// A request from a client other than an answer ([`ClientMessage::WriteCandidate`],
/// [`ClientMessage::Reload`]), with who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub message: ClientMessage,
    pub by: String,
}

/// See [`Event::Decisions`].
#[derive(Clone, Debug, Default)]
pub struct DecisionBatch {
    /// Every decision of the batch, counted.
    pub totals: crate::session::protocol::Totals,
    /// The last few decisions of the batch, oldest first.
    pub shown: Vec<Decision>,
}

/// A cheap, cloneable handle for publishing; never blocks.
#[derive(Clone, Debug)]
pub struct SessionSender {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    clients: Arc<AtomicUsize>,
}

impl SessionSender {
    /// Queue an event, or count it as dropped if the publisher is behind or gone.
    pub fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events lost before they reached this sender (the broker's own queue was full).
    pub fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether a client is attached: lets callers skip work only a viewer needs.
    pub fn has_clients(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 0
    }

    /// Events dropped because the publisher's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a session says about itself in its hello.
#[derive(Clone, Debug, Default)]
pub struct SessionDetails {
    pub command: Vec<String>,
    pub details: std::collections::BTreeMap<String, String>,
}

/// A published session. Dropping it tells clients the session ended and removes the socket.
#[derive(Debug)]
pub struct Publisher {
    sender: SessionSender,
    name: String,
    path: PathBuf,
    cancel: CancellationToken,
    end_reason: Arc<std::sync::Mutex<String>>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    answers: Option<mpsc::Receiver<Answer>>,
    requests: Option<mpsc::Receiver<Request>>,
}

impl Publisher {
    /// Publish a session of this process in [`super::dir`].
    pub fn start(kind: SessionKind, details: SessionDetails) -> Result<Publisher, SessionError> {
        Self::start_in(&super::dir(), kind, details)
    }

    /// Publish a session of this process in `dir`.
    pub fn start_in(
        dir: &Path,
        kind: SessionKind,
        details: SessionDetails,
    ) -> Result<Publisher, SessionError> {
        super::ensure_dir(dir)?;
        // Clean up after sessions that died without removing their socket.
        super::list_sessions(dir)?;
        let pid = std::process::id();
        let name = super::session_name(kind, pid);
        let path = dir.join(format!("{name}.sock"));
        let bind_err = |source| SessionError::Bind {
            path: path.clone(),
            source,
        };
        // Ours from an earlier run in the same pid (a restart in a pid namespace): replace it.
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).map_err(bind_err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;

        let hello = Hello {
            version: PROTOCOL_VERSION,
            kind: Some(kind),
            name: name.clone(),
            pid,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            command: details.command,
            details: details.details,
        };
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let sender = SessionSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            clients: Arc::new(AtomicUsize::new(0)),
        };
        let cancel = CancellationToken::new();
        let end_reason = Arc::new(std::sync::Mutex::new(String::from("session ended")));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (answers_tx, answers_rx) = mpsc::channel(ANSWER_QUEUE);
        let (requests_tx, requests_rx) = mpsc::channel(ANSWER_QUEUE);
        let state = State {
            prompts: std::collections::BTreeMap::new(),
            answers: answers_tx,
            requests: requests_tx,
            hello,
            snapshot: Snapshot::default(),
            recent: VecDeque::new(),
            window: (Instant::now(), 0),
            clients: Vec::new(),
            dropped: sender.dropped.clone(),
            attached: sender.clients.clone(),
        };
        let (thread_cancel, thread_reason, thread_path) =
            (cancel.clone(), end_reason.clone(), path.clone());
        std::thread::Builder::new()
            .name("auditor-session".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!(error = %e, "session: cannot start its runtime; not publishing");
                        let _ = std::fs::remove_file(&thread_path);
                        return;
                    }
                };
                rt.block_on(serve(listener, rx, state, thread_cancel, thread_reason));
                let _ = std::fs::remove_file(&thread_path);
                let _ = done_tx.send(());
            })
            .map_err(|source| SessionError::Spawn { source })?;
        tracing::info!(session = %name, socket = %path.display(), "publishing the live session");
        Ok(Publisher {
            sender,
            name,
            path,
            cancel,
            end_reason,
            done: Some(done_rx),
            answers: Some(answers_rx),
            requests: Some(requests_rx),
        })
    }

    /// The clients' answers to prompts (once; `None` after the first call). Nobody taking
    /// them means answers are dropped.
    pub fn take_answers(&mut self) -> Option<mpsc::Receiver<Answer>> {
        self.answers.take()
    }

    /// The clients' other requests (once); nobody taking them means they are dropped.
    pub fn take_requests(&mut self) -> Option<mpsc::Receiver<Request>> {
        self.requests.take()
    }

    /// A handle for publishing from anywhere (other threads, tasks).
    pub fn sender(&self) -> SessionSender {
        self.sender.clone()
    }

    /// Shorthand for `sender().send(event)`.
    pub fn send(&self, event: Event) {
        self.sender.send(event);
    }

    pub fn has_clients(&self) -> bool {
        self.sender.has_clients()
    }

    /// `<kind>-<pid>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// End the session, telling clients why; waits briefly for them to get the last lines.
    pub fn finish(mut self, reason: &str) {
        if let Ok(mut r) = self.end_reason.lock() {
            reason.clone_into(&mut *r);
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(done) = self.done.take() {
            // Bounded: a stuck client never keeps the session's command from exiting.
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Client {
    tx: mpsc::Sender<Arc<str>>,
    dropped: Arc<AtomicU64>,
    writer: tokio::task::JoinHandle<()>,
}

struct State {
    /// Prompts not yet closed, for the snapshot.
    prompts: std::collections::BTreeMap<u64, Prompt>,
    answers: mpsc::Sender<Answer>,
    requests: mpsc::Sender<Request>,
    hello: Hello,
    /// Everything but the recent decisions, which are kept in `recent`.
    snapshot: Snapshot,
    recent: VecDeque<Decision>,
    /// Start of the current display window and the decisions broadcast in it.
    window: (Instant, u32),
    clients: Vec<Client>,
    dropped: Arc<AtomicU64>,
    attached: Arc<AtomicUsize>,
}

fn line(m: &Message) -> Option<Arc<str>> {
    match serde_json::to_string(m) {
        Ok(mut s) => {
            s.push('\n');
            Some(Arc::from(s))
        }
        Err(e) => {
            tracing::warn!(error = %e, "session: cannot serialise a message");
            None
        }
    }
}

impl State {
    /// Fold an event into the state; the message to broadcast, if any client is attached.
    fn fold(&mut self, ev: Event) -> Option<Message> {
        Some(match ev {
            Event::Decision(d) => {
                self.snapshot.totals.add(&d);
                if self.recent.len() == SNAPSHOT_DECISIONS {
                    self.recent.pop_front();
                }
                // Nobody watching (the common case under load): keep it, copy nothing.
                if self.clients.is_empty() {
                    self.recent.push_back(d);
                    return None;
                }
                self.recent.push_back(d.clone());
                Message::Decision(d)
            }
            Event::Decisions(b) => {
                let DecisionBatch { totals, shown } = *b;
                self.snapshot.totals.merge(&totals);
                let unshown = totals
                    .decisions
                    .saturating_sub(shown.iter().map(Decision::calls).sum());
                for c in &self.clients {
                    c.dropped.fetch_add(unshown, Ordering::Relaxed);
                }
                for d in shown {
                    if self.recent.len() == SNAPSHOT_DECISIONS {
                        self.recent.pop_front();
                    }
                    if self.clients.is_empty() {
                        self.recent.push_back(d);
                    } else {
                        self.recent.push_back(d.clone());
                        self.broadcast_decision(&Message::Decision(d));
                    }
                }
                return None;
            }
            Event::Progress(p) => {
                self.snapshot.progress = Some(p.clone());
                Message::Progress(p)
            }
            Event::Observation(o) => {
                self.snapshot.observation = Some(o.clone());
                Message::Observation(o)
            }
            Event::Notice(text) => Message::Notice { text },
            Event::ContainerEnded(id) => {
                self.snapshot.totals.container_ended(&id);
                return None;
            }
            Event::ContainerStarted {
                id,
                policy,
                runtime,
            } => {
                self.snapshot
                    .totals
                    .container_started(&id, &policy, runtime.as_deref());
                return None;
            }
            Event::Prompt(p) => {
                self.prompts.insert(p.id, p.clone());
                Message::Prompt(p)
            }
            Event::PromptClosed(c) => {
                self.prompts.remove(&c.id);
                Message::PromptClosed(c)
            }
            Event::Learning(l) => {
                self.snapshot.learning = Some(l.clone());
                Message::Learning(l)
            }
        })
    }

    /// Broadcast a decision within the display budget; count it as dropped beyond.
    fn broadcast_decision(&mut self, m: &Message) {
        if self.clients.is_empty() {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.window.0) >= DISPLAY_WINDOW {
            self.window = (now, 0);
        }
        if self.window.1 >= DISPLAY_BUDGET {
            for c in &self.clients {
                c.dropped.fetch_add(calls_in(m), Ordering::Relaxed);
            }
            return;
        }
        self.window.1 += 1;
        self.broadcast(m);
    }

    fn broadcast(&mut self, m: &Message) {
        if self.clients.is_empty() {
            return;
        }
        let Some(l) = line(m) else { return };
        self.clients.retain(|c| match c.tx.try_send(l.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.dropped.fetch_add(calls_in(m), Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.attached.store(self.clients.len(), Ordering::Relaxed);
    }

    fn status(&self) -> Message {
        Message::Status(Status {
            totals: self.snapshot.totals.clone(),
            session_dropped: self.dropped.load(Ordering::Relaxed),
            clients: self.clients.len(),
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        })
    }

    fn attach(&mut self, stream: UnixStream) {
        let cred = match stream.peer_cred() {
            Ok(c) if c.uid() == 0 => c,
            Ok(c) => {
                tracing::warn!(uid = c.uid(), pid = ?c.pid(), "session: refusing a client that is not root");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "session: cannot read a client's credentials; refusing it");
                return;
            }
        };
        if self.clients.len() >= MAX_CLIENTS {
            tracing::warn!("session: too many clients; refusing one");
            return;
        }
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let snapshot = Snapshot {
            decisions: self.recent.iter().cloned().collect(),
            session_dropped: self.dropped.load(Ordering::Relaxed),
            prompts: self.prompts.values().cloned().collect(),
            ..self.snapshot.clone()
        };
        for m in [
            Message::Hello(self.hello.clone()),
            Message::Snapshot(snapshot),
        ] {
            if let Some(l) = line(&m) {
                // A fresh queue has room for both.
                let _ = tx.try_send(l);
            }
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let (read, write) = stream.into_split();
        tokio::spawn(read_client(
            read,
            who(&cred),
            self.answers.clone(),
            self.requests.clone(),
        ));
        let writer = tokio::spawn(write_client(write, rx, dropped.clone()));
        self.clients.push(Client {
            tx,
            dropped,
            writer,
        });
        self.attached.store(self.clients.len(), Ordering::Relaxed);
        tracing::debug!(clients = self.clients.len(), "session: client attached");
    }
}

async fn serve(
    listener: std::os::unix::net::UnixListener,
    mut rx: mpsc::Receiver<Event>,
    mut state: State,
    cancel: CancellationToken,
    reason: Arc<std::sync::Mutex<String>>,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "session: cannot register the socket; not publishing");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            ev = rx.recv() => match ev {
                Some(ev) => match state.fold(ev) {
                    Some(m @ Message::Decision(_)) => state.broadcast_decision(&m),
                    Some(m) => state.broadcast(&m),
                    None => {}
                },
                None => break,
            },
            acc = listener.accept() => match acc {
                Ok((stream, _)) => state.attach(stream),
                Err(e) => tracing::debug!(error = %e, "session: accept failed"),
            },
            _ = tick.tick() => {
                let m = state.status();
                state.broadcast(&m);
            }
        }
    }
    // Publish what is still queued, then say goodbye.
    while let Ok(ev) = rx.try_recv() {
        match state.fold(ev) {
            Some(m @ Message::Decision(_)) => state.broadcast_decision(&m),
            Some(m) => state.broadcast(&m),
            None => {}
        }
    }
    let m = state.status();
    state.broadcast(&m);
    let reason = reason.lock().map(|r| r.clone()).unwrap_or_default();
    state.broadcast(&Message::End { reason });
    // Closing the queues ends each writer once it has written what it holds.
    let writers: Vec<_> = state.clients.drain(..).map(|c| c.writer).collect();
    let wait = async {
        for w in writers {
            let _ = w.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(800), wait).await;
}

/// Who a (root) client is, for the record of its answers.
fn who(cred: &tokio::net::unix::UCred) -> String {
    let pid = cred.pid().and_then(|p| u32::try_from(p).ok());
    if pid == Some(std::process::id()) {
        return "in-process UI".into();
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(cred.uid()))
        .ok()
        .flatten()
        .map_or_else(|| "?".to_owned(), |u| u.name);
    match pid {
        Some(p) => format!("uid {} ({user}) pid {p}", cred.uid()),
        None => format!("uid {} ({user})", cred.uid()),
    }
}

/// Read one client's answers until it closes. Malformed lines are logged and skipped; an
/// oversized one ends the reading; a full answer queue drops the answer (the prompt stays).
async fn read_client(
    read: tokio::net::unix::OwnedReadHalf,
    by: String,
    answers: mpsc::Sender<Answer>,
    requests: mpsc::Sender<Request>,
) {
    use tokio::io::AsyncReadExt as _;
    let mut reader = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_CLIENT_LINE as u64 + 1);
        match tokio::io::AsyncBufReadExt::read_until(&mut limited, b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_CLIENT_LINE {
            tracing::warn!(client = %by, "session: a client sent a line longer than {MAX_CLIENT_LINE} bytes; no longer reading it");
            return;
        }
        match serde_json::from_slice::<ClientMessage>(&line) {
            Ok(ClientMessage::Answer { id, choice }) => {
                let a = Answer {
                    id,
                    choice,
                    by: by.clone(),
                };
                if answers.try_send(a).is_err() {
                    tracing::warn!(client = %by, id, "session: an answer was dropped (nobody takes answers, or too many at once)");
                }
            }
            Ok(message) => {
                let r = Request {
                    message,
                    by: by.clone(),
                };
                if requests.try_send(r).is_err() {
                    tracing::warn!(client = %by, "session: a request was dropped (this session takes none, or too many at once)");
                }
            }
            Err(e) => {
                tracing::warn!(client = %by, error = %e, "session: ignoring a line a client sent");
            }
        }
    }
}

/// What a message not sent to a client counts in its `dropped` total: a decision the calls
/// it stands for (see [`Decision::repeats`](super::protocol::Decision::repeats)), any other
/// message one.
fn calls_in(m: &Message) -> u64 {
    match m {
        Message::Decision(d) => d.calls(),
        _ => 1,
    }
}

/// Write one client's lines, telling it when it lost some.
async fn write_client(
    mut stream: tokio::net::unix::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Arc<str>>,
    dropped: Arc<AtomicU64>,
) {
    let mut reported = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        buf.clear();
        let now = dropped.load(Ordering::Relaxed);
        if now != reported {
            reported = now;
            let _ = writeln!(buf, "{{\"type\":\"dropped\",\"total\":{now}}}");
        }
        buf.extend_from_slice(first.as_bytes());
        // Let a busy session's lines gather for a moment (a UI draws at most 20 frames a
        // second): one write per batch instead of one per decision, which would cost the
        // session (and the broker beside it) its CPU.
        if rx.is_empty() {
            tokio::time::sleep(COALESCE).await;
        }
        // Batch what is queued into one write.
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(l) => buf.extend_from_slice(l.as_bytes()),
                Err(_) => break,
            }
        }
        if stream.write_all(&buf).await.is_err() {
            break;
        }
    }
    let _ = stream.shutdown().await;
}
