//! The audit log: one JSON Lines record per decision, written by its own thread so that the
//! broker's receive loop never waits for the disk. Records reach the writer over a bounded
//! channel; when it is full the sender waits for room (backpressure: a record is lost data, in
//! complain mode above all), up to [`STALL_LIMIT`]. Only a writer stalled that long (a hung file
//! system) makes records drop, counted in the summary, and then at once until it moves again:
//! a stalled disk slows the broker, it never hangs it. SIGHUP reopens the file (log rotation).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the audit log writer")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
}

/// Records waiting for the writer; beyond this a sender waits for room.
pub const CHANNEL_CAPACITY: usize = 4096;

/// Bytes of formatted records ([`Batch`]es) waiting for the writer; beyond this a sender waits
/// for room, as for [`CHANNEL_CAPACITY`] records.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// How long a record waits for room before the writer is taken for stalled and records are
/// dropped (and counted) instead. The writer keeps up with the broker's full rate: waiting is
/// for bursts, not for a healthy disk.
pub const STALL_LIMIT: Duration = Duration::from_secs(2);

/// One decision.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// When the notification was received: RFC 3339, microseconds, UTC. Records are written
    /// as calls are answered, so two close calls may appear out of order: sort by this.
    pub time: String,
    /// The container the call came from (the runtime agent serves many); absent for `enforce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The policy that decided (the runtime agent: its name in the policy directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What chose that policy: `listenerMetadata` (the seccomp profile the host configured),
    /// `org.auditor.policy` (the container's annotation, with --policy-from-annotation),
    /// `lxc-cookie` (LXC's `lxc.seccomp.notify.cookie`), `default`, or
    /// `default (annotation ignored)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_from: Option<String>,
    /// Calling thread, in auditor's pid namespace.
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The syscall's name, or `nr:N` when the ABI or number is unknown.
    pub syscall: String,
    pub arch: String,
    /// The six argument registers, in hex.
    pub args: Vec<String>,
    /// What the handler decoded from the arguments (path, mode, device, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub decoded: BTreeMap<String, String>,
    /// 1-based index of the rule that matched; absent: the default action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// The policy's action for the call.
    pub action: String,
    /// allowed, denied, emulated, complain (would be refused, allowed), gone (caller left).
    pub decision: String,
    /// What the caller got: "continue", "0", "-EPERM", …
    pub result: String,
    pub latency_us: u64,
}

/// A record's syscall: its name, or its number when the ABI or number is unknown (`nr:N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    Name(&'static str),
    Nr(i32),
}

impl std::fmt::Display for Syscall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Syscall::Name(n) => f.write_str(n),
            Syscall::Nr(nr) => write!(f, "nr:{nr}"),
        }
    }
}

/// A [`Record`] whose fields are borrowed or formatted as they are written: the same JSON, with
/// no string built per record. The broker's record thread writes every decision this way.
#[derive(Serialize)]
pub struct RecordRef<'a> {
    #[serde(serialize_with = "rfc3339_micros")]
    pub time: std::time::SystemTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_from: Option<&'a str>,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<&'a str>,
    #[serde(serialize_with = "display")]
    pub syscall: Syscall,
    #[serde(serialize_with = "display")]
    pub arch: &'a dyn std::fmt::Display,
    #[serde(serialize_with = "hex_args")]
    pub args: &'a [u64; 6],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub decoded: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    #[serde(serialize_with = "display")]
    pub action: &'a dyn std::fmt::Display,
    pub decision: &'static str,
    #[serde(serialize_with = "display")]
    pub result: &'a dyn std::fmt::Display,
    pub latency_us: u64,
}

fn display<S: serde::Serializer, T: std::fmt::Display + ?Sized>(
    v: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    // serde_json escapes what it is given as it is formatted: no string is built.
    s.collect_str(v)
}

fn rfc3339_micros<S: serde::Serializer>(
    t: &std::time::SystemTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

fn hex_args<S: serde::Serializer>(args: &&[u64; 6], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq as _;
    struct Hex(u64);
    impl Serialize for Hex {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{:#x}", self.0))
        }
    }
    let mut seq = s.serialize_seq(Some(args.len()))?;
    for &a in *args {
        seq.serialize_element(&Hex(a))?;
    }
    seq.end()
}

/// Records formatted by a broker's record thread, appended by the writer at once: one message
/// for a whole gathering instead of one per record, and its totals counted per distinct
/// (syscall, decision) instead of per record.
#[derive(Debug, Default)]
pub struct Batch {
    text: Vec<u8>,
    records: u64,
    counts: std::collections::HashMap<(Syscall, &'static str), u64>,
}

impl Batch {
    /// A batch with room for about `records` records.
    pub fn with_capacity(records: usize) -> Batch {
        Batch {
            text: Vec::with_capacity(records.saturating_mul(320)),
            ..Batch::default()
        }
    }

    /// Append a record.
    pub fn push(&mut self, r: &RecordRef<'_>) {
        if serde_json::to_writer(&mut self.text, r).is_err() {
            return;
        }
        self.text.push(b'\n');
        self.records += 1;
        *self.counts.entry((r.syscall, r.decision)).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Totals at the end.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub dropped: u64,
    /// (decision → count)
    pub decisions: BTreeMap<String, u64>,
    /// (syscall → decision → count)
    pub syscalls: BTreeMap<String, BTreeMap<String, u64>>,
}

enum Msg {
    Record(Box<Record>),
    Batch(Batch),
    /// Write what came before and flush, then say so.
    Flush(mpsc::SyncSender<()>),
    Finish,
}

/// The broker's handle: cheap to clone; waits for room only while the writer is behind (at
/// most [`STALL_LIMIT`], and not at all once the writer is known to be stalled).
#[derive(Clone, Debug)]
pub struct AuditSender {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    /// The writer made no room for [`STALL_LIMIT`]: drop without waiting until it does.
    stalled: Arc<AtomicBool>,
    /// Bytes of [`Batch`]es sent and not yet written.
    queued_bytes: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl AuditSender {
    /// Records lost before they reached this sender (the broker's own queue was full).
    pub fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether the writer is taken for stalled (records are being dropped).
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Wait (up to `limit`) until every record queued before this call is in the file: what
    /// an agent does before it hands its listeners to a successor appending to the same file.
    /// Whether it got there.
    pub fn flush(&self, limit: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        let deadline = Instant::now() + limit;
        let mut msg = Msg::Flush(tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Queue a record; while the writer is behind, wait for room (see [`STALL_LIMIT`]).
    pub fn record(&self, r: Record) {
        self.send(Msg::Record(Box::new(r)), 1, 0);
    }

    /// Queue a batch of records; while the writer is behind (its channel full, or
    /// [`MAX_QUEUED_BYTES`] waiting), wait for room as [`AuditSender::record`] does.
    pub fn record_batch(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let (records, bytes) = (batch.records, batch.text.len());
        self.send(Msg::Batch(batch), records, bytes);
    }

    /// Send `msg`, which holds `records` records and `bytes` bytes of batches; count them as
    /// dropped if the writer is (or is found) stalled.
    fn send(&self, mut msg: Msg, records: u64, bytes: usize) {
        let mut waiting_since = None;
        let mut pause = Duration::from_micros(50);
        loop {
            // A batch waits while others fill the byte budget (one alone always fits).
            let queued = self.queued_bytes.load(Ordering::Acquire);
            let room = bytes == 0 || queued == 0 || queued + bytes <= MAX_QUEUED_BYTES;
            if room {
                if bytes > 0 {
                    self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
                }
                match self.tx.try_send(msg) {
                    Ok(()) => {
                        if self.stalled() {
                            self.stalled.store(false, Ordering::Relaxed);
                        }
                        return;
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                        break;
                    }
                    Err(TrySendError::Full(m)) => {
                        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                        msg = m;
                    }
                }
            }
            if self.stalled() {
                break;
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STALL_LIMIT {
                if !self.stalled.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limit = ?STALL_LIMIT,
                        "audit log: the writer made no room; dropping records (counted) until it does"
                    );
                }
                break;
            }
            // The writer takes everything queued at once: a short pause finds room.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
        self.dropped.fetch_add(records, Ordering::Relaxed);
    }
}

/// The writer thread and its controls.
#[derive(Debug)]
pub struct AuditLog {
    sender: AuditSender,
    reopen: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Summary>,
    path: PathBuf,
}

/// Open for appending: never through a symlink (a planted link cannot make root append to
/// another file), created 0600 (records show what containers do).
fn open(path: &Path) -> Result<File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| AuditError::Open {
            path: path.to_owned(),
            source,
        })
}

impl AuditLog {
    /// Open (append) `path` and start the writer.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let file = open(path)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let reopen = Arc::new(AtomicBool::new(false));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let (thread_reopen, thread_dropped, thread_path, thread_queued) = (
            reopen.clone(),
            dropped.clone(),
            path.to_owned(),
            queued_bytes.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || {
                super::sys::background("audit-log");
                writer(
                    file,
                    &thread_path,
                    &rx,
                    &thread_reopen,
                    &thread_dropped,
                    &thread_queued,
                )
            })
            .map_err(|source| AuditError::Spawn { source })?;
        Ok(AuditLog {
            sender: AuditSender {
                tx,
                dropped,
                stalled: Arc::new(AtomicBool::new(false)),
                queued_bytes: queued_bytes.clone(),
            },
            reopen,
            thread,
            path: path.to_owned(),
        })
    }

    pub fn sender(&self) -> AuditSender {
        self.sender.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reopen the file at the next chance (after SIGHUP: it was rotated).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Write what is queued and a summary record; return the summary.
    pub fn finish(self) -> Summary {
        // A blocking send: the broker is done, waiting here is fine.
        let _ = self.sender.tx.send(Msg::Finish);
        let dropped = self.sender.dropped.clone();
        drop(self.sender);
        let mut s = self.thread.join().unwrap_or_default();
        s.dropped = dropped.load(Ordering::Relaxed);
        s
    }
}

impl Summary {
    fn count(&mut self, syscall: &str, decision: &str, n: u64) {
        self.records += n;
        match self.decisions.get_mut(decision) {
            Some(c) => *c += n,
            None => {
                self.decisions.insert(decision.to_owned(), n);
            }
        }
        let by = match self.syscalls.get_mut(syscall) {
            Some(by) => by,
            None => self.syscalls.entry(syscall.to_owned()).or_default(),
        };
        match by.get_mut(decision) {
            Some(c) => *c += n,
            None => {
                by.insert(decision.to_owned(), n);
            }
        }
    }
}

fn write_record(out: &mut BufWriter<File>, summary: &mut Summary, r: &Record) {
    summary.count(&r.syscall, &r.decision, 1);
    if serde_json::to_writer(&mut *out, r).is_ok() {
        let _ = out.write_all(b"\n");
    }
}

fn write_batch(out: &mut BufWriter<File>, summary: &mut Summary, b: &Batch) {
    let mut name = String::new();
    for (&(syscall, decision), &n) in &b.counts {
        name.clear();
        let _ = std::fmt::Write::write_fmt(&mut name, format_args!("{syscall}"));
        summary.count(&name, decision, n);
    }
    let _ = out.write_all(&b.text);
}

fn writer(
    file: File,
    path: &Path,
    rx: &mpsc::Receiver<Msg>,
    reopen: &AtomicBool,
    dropped: &AtomicU64,
    queued_bytes: &AtomicUsize,
) -> Summary {
    let mut out = BufWriter::new(file);
    let mut summary = Summary::default();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Finish),
        };
        if reopen.swap(false, Ordering::Relaxed) {
            let _ = out.flush();
            match open(path) {
                Ok(f) => out = BufWriter::new(f),
                Err(e) => {
                    tracing::warn!(error = %e, "audit log: reopen failed; keeping the old file")
                }
            }
        }
        // Write what is queued, then flush once: the file is current whenever the broker idles.
        let mut next = first;
        while let Some(m) = next {
            match m {
                Msg::Record(r) => write_record(&mut out, &mut summary, &r),
                Msg::Batch(b) => {
                    write_batch(&mut out, &mut summary, &b);
                    queued_bytes.fetch_sub(b.text.len(), Ordering::AcqRel);
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.try_send(());
                }
                Msg::Finish => return finish(out, summary, dropped),
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
}

fn finish(mut out: BufWriter<File>, mut summary: Summary, dropped: &AtomicU64) -> Summary {
    summary.dropped = dropped.load(Ordering::Relaxed);
    #[derive(Serialize)]
    struct Line<'a> {
        summary: &'a Summary,
    }
    if let Ok(line) = serde_json::to_string(&Line { summary: &summary }) {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
    summary
}

/// The live session's form of a record (the session knows nothing of the broker).
impl From<&Record> for crate::session::Decision {
    fn from(r: &Record) -> Self {
        crate::session::Decision {
            time: r.time.clone(),
            pid: r.pid,
            exe: r.exe.clone(),
            syscall: r.syscall.clone(),
            arch: r.arch.clone(),
            args: r.args.clone(),
            decoded: r.decoded.clone(),
            rule: r.rule,
            action: r.action.clone(),
            decision: r.decision.clone(),
            result: r.result.clone(),
            latency_us: r.latency_us,
            repeats: 0,
            container: r.container.clone(),
            policy: r.policy.clone(),
            policy_from: r.policy_from.clone(),
        }
    }
}

impl From<Record> for crate::session::Decision {
    fn from(r: Record) -> Self {
        crate::session::Decision {
            time: r.time,
            pid: r.pid,
            exe: r.exe,
            syscall: r.syscall,
            arch: r.arch,
            args: r.args,
            decoded: r.decoded,
            rule: r.rule,
            action: r.action,
            decision: r.decision,
            result: r.result,
            latency_us: r.latency_us,
            repeats: 0,
            container: r.container,
            policy: r.policy,
            policy_from: r.policy_from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(syscall: &str, decision: &str) -> Record {
        Record {
            time: "t".into(),
            container: None,
            policy: None,
            policy_from: None,
            pid: 1,
            exe: None,
            syscall: syscall.into(),
            arch: "x86_64".into(),
            args: vec![],
            decoded: BTreeMap::new(),
            rule: Some(1),
            action: "allow".into(),
            decision: decision.into(),
            result: "continue".into(),
            latency_us: 3,
        }
    }

    #[test]
    fn writes_lines_reopens_and_summarises() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path)?;
        let s = log.sender();
        s.record(rec("mknodat", "emulated"));
        s.record(rec("getppid", "denied"));
        // Rotation: move the file away, ask for a reopen, write more.
        std::thread::sleep(Duration::from_millis(100));
        std::fs::rename(&path, dir.path().join("audit.jsonl.1"))?;
        log.reopen();
        std::thread::sleep(Duration::from_millis(700));
        s.record(rec("getppid", "denied"));
        let summary = log.finish();
        assert_eq!(summary.records, 3);
        assert_eq!(summary.decisions.get("denied"), Some(&2));
        let old = std::fs::read_to_string(dir.path().join("audit.jsonl.1"))?;
        let new = std::fs::read_to_string(&path)?;
        assert_eq!(old.lines().count(), 2, "{old}");
        assert_eq!(new.lines().count(), 2, "{new}");
        let first: serde_json::Value = serde_json::from_str(old.lines().next().unwrap_or(""))?;
        assert_eq!(first["syscall"], "mknodat");
        assert!(new
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("{\"summary\"")));
        Ok(())
    }

    /// Far more records than the channel holds, as fast as one thread can send them: every one
    /// is written (the sender waits for room), none dropped.
    #[test]
    fn a_burst_beyond_the_channel_is_written_whole() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path)?;
        let s = log.sender();
        const N: u64 = 20 * CHANNEL_CAPACITY as u64;
        for _ in 0..N {
            s.record(rec("getppid", "complain"));
        }
        let summary = log.finish();
        assert_eq!((summary.records, summary.dropped), (N, 0));
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.lines().count() as u64, N + 1);
        Ok(())
    }

    /// A writer that takes nothing (a hung file system): the first record waits
    /// [`STALL_LIMIT`] and is dropped, later ones are dropped at once; a moving writer ends it.
    #[test]
    fn a_stalled_writer_costs_records_never_a_hang() {
        let (tx, rx) = mpsc::sync_channel::<Msg>(1);
        let s = AuditSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            stalled: Arc::new(AtomicBool::new(false)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
        };
        s.record(rec("getppid", "complain")); // fits
        let t = Instant::now();
        s.record(rec("getppid", "complain"));
        let waited = t.elapsed();
        assert!(
            waited >= STALL_LIMIT && waited < STALL_LIMIT * 2,
            "{waited:?}"
        );
        assert!(s.stalled());
        let t = Instant::now();
        s.record(rec("getppid", "complain"));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(s.dropped.load(Ordering::Relaxed), 2);
        // The writer moves again: records go through and the stall is over.
        assert!(rx.try_recv().is_ok());
        s.record(rec("getppid", "complain"));
        assert!(!s.stalled());
        assert_eq!(s.dropped.load(Ordering::Relaxed), 2);
    }

    /// The borrowed form writes exactly what serde writes for the owned record, whatever is
    /// present or absent and whatever needs escaping.
    #[test]
    fn a_borrowed_record_is_the_same_json_as_a_record() {
        use std::time::{Duration, SystemTime};
        let time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_765_000_000_123_456);
        let decoded: BTreeMap<String, String> = [
            ("path".to_owned(), "/dev/\"odd\"\n\u{1}é".to_owned()),
            ("mode".to_owned(), "0o20666".to_owned()),
        ]
        .into();
        let empty = BTreeMap::new();
        let args = [0, 1, u64::MAX, 0xdead_beef, 42, 7];
        for (full, syscall) in [(true, Syscall::Name("mknodat")), (false, Syscall::Nr(1023))] {
            let owned = Record {
                time: humantime::format_rfc3339_micros(time).to_string(),
                container: full.then(|| "c\\1".to_owned()),
                policy: full.then(|| "web".to_owned()),
                policy_from: full.then(|| "listenerMetadata".to_owned()),
                pid: 4242,
                exe: full.then(|| "/usr/bin/\"x\"\t".to_owned()),
                syscall: syscall.to_string(),
                arch: if full {
                    "x86_64".into()
                } else {
                    "0xc000003e".into()
                },
                args: args.iter().map(|a| format!("{a:#x}")).collect(),
                decoded: if full {
                    decoded.clone()
                } else {
                    BTreeMap::new()
                },
                rule: full.then_some(3),
                action: "notify(emulate-mknod)".into(),
                decision: "emulated".into(),
                result: "-EPERM".into(),
                latency_us: 17,
            };
            let arch: &dyn std::fmt::Display = if full { &"x86_64" } else { &"0xc000003e" };
            let borrowed = RecordRef {
                time,
                container: owned.container.as_deref(),
                policy: owned.policy.as_deref(),
                policy_from: owned.policy_from.as_deref(),
                pid: 4242,
                exe: owned.exe.as_deref(),
                syscall,
                arch,
                args: &args,
                decoded: if full { &decoded } else { &empty },
                rule: owned.rule,
                action: &"notify(emulate-mknod)",
                decision: "emulated",
                result: &"-EPERM",
                latency_us: 17,
            };
            let mut batch = Batch::default();
            batch.push(&borrowed);
            let line = String::from_utf8(batch.text.clone()).expect("utf-8");
            assert_eq!(
                line,
                format!("{}\n", serde_json::to_string(&owned).expect("json"))
            );
            let back: serde_json::Value = serde_json::from_str(&line).expect("parses");
            assert_eq!(back["syscall"], syscall.to_string());
        }
    }

    /// Batches are written whole and counted in the summary, beside single records; far more
    /// bytes than [`MAX_QUEUED_BYTES`] as fast as one thread sends them: none dropped.
    #[test]
    fn batches_are_written_and_summarised() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path)?;
        let s = log.sender();
        let empty = BTreeMap::new();
        let one = |syscall, decision| RecordRef {
            time: std::time::SystemTime::now(),
            container: None,
            policy: None,
            policy_from: None,
            pid: 1,
            exe: Some("/bin/x"),
            syscall,
            arch: &"x86_64",
            args: &[0; 6],
            decoded: &empty,
            rule: None,
            action: &"allow",
            decision,
            result: &"continue",
            latency_us: 1,
        };
        s.record(rec("mknodat", "emulated"));
        let per_batch = 20_000u64;
        let batches = (3 * MAX_QUEUED_BYTES as u64) / (per_batch * 200) + 1;
        for _ in 0..batches {
            let mut b = Batch::with_capacity(per_batch as usize);
            for i in 0..per_batch {
                if i % 2 == 0 {
                    b.push(&one(Syscall::Name("getppid"), "complain"));
                } else {
                    b.push(&one(Syscall::Nr(999), "denied"));
                }
            }
            s.record_batch(b);
        }
        s.record_batch(Batch::default());
        let summary = log.finish();
        let n = batches * per_batch;
        assert_eq!((summary.records, summary.dropped), (n + 1, 0));
        assert_eq!(summary.decisions.get("complain"), Some(&(n / 2)));
        assert_eq!(summary.syscalls["nr:999"]["denied"], n / 2);
        assert_eq!(summary.syscalls["mknodat"]["emulated"], 1);
        let text = std::fs::read_to_string(&path)?;
        assert_eq!(text.lines().count() as u64, n + 2);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line)?;
        }
        Ok(())
    }

    #[test]
    fn the_log_is_private_and_never_opened_through_a_symlink(
    ) -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.jsonl");
        AuditLog::open(&path)?.finish();
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        // A link planted where the log goes: refused, and its target left alone.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched")?;
        let link = dir.path().join("planted.jsonl");
        std::os::unix::fs::symlink(&victim, &link)?;
        let e = AuditLog::open(&link).map(|_| ()).map_err(|e| e.to_string());
        assert!(matches!(&e, Err(m) if m.contains("planted.jsonl")), "{e:?}");
        assert_eq!(std::fs::read_to_string(&victim)?, "untouched");
        Ok(())
    }
}
