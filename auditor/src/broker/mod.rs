//! The seccomp-notify broker: decides the calls a policy marks notify (and, in complain mode,
//! the calls it would refuse), runs the emulation handlers, answers the kernel and records each
//! decision in the audit log.
//!
//! One thread owns the listener fd and blocks in `SECCOMP_IOCTL_NOTIF_RECV` on it, as a
//! minimal supervisor does (not in the async reactor: only a direct waiter keeps the kernel's
//! same-CPU wake-up). A watcher thread waits for `POLLHUP` (no task uses the filter any more)
//! or cancellation (an eventfd) and then interrupts that receive with a signal. Decisions
//! that need no pointer contents are answered inline; emulations run on the blocking pool,
//! at most [`MAX_EMULATIONS`] at a time — further notifications wait in the kernel, so a
//! workload that floods the broker costs bounded memory.
//!
//! Answers: CONTINUE only where the decision depends on scalars alone (the kernel then checks
//! what it always checks); pointer arguments are copied once and the call is performed on the
//! caller's behalf, or refused. If auditor dies, the kernel fails pending and future notified
//! calls with ENOSYS (the listener fd is closed), so the workload never hangs.

pub mod audit;
pub mod decide;
pub mod mknod;
pub mod mount;
pub mod prompt;
pub mod refusals;
pub mod setxattr;
mod sys;
pub use sys::{set_helper_limits, HelperError, DEFAULT_HELPER_TIMEOUT, MAX_HELPER_TIMEOUT};
pub mod sysinfo;
pub mod target;

use std::collections::BTreeMap;
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio_util::sync::CancellationToken;

use crate::policy::handlers::HandlerConfig;
use crate::policy::model::{Action, Policy};
use crate::seccomp::notify::{NotifyError, NotifyFd, Response, SeccompNotif};
use audit::{AuditSender, Record};
use decide::Decider;

/// Emulations running at once; more notifications wait in the kernel.
pub const MAX_EMULATIONS: usize = 8;

/// How long the record thread lets the broker thread's records gather before it takes them:
/// it wakes at most about 20 times a second however busy the broker is. Every wake-up of
/// another thread costs the CPU the workload and the broker share (measured: two threads
/// waking 100 times a second cost a minimal C supervisor ~10% of its throughput on this kind
/// of VM).
const GATHER: Duration = Duration::from_millis(50);
/// Records waiting for the record thread at most; beyond, they are dropped and counted (the
/// audit log's and the live session's drop counts), so a flood costs bounded memory (a few
/// MiB) — the record thread falls that far behind only if it is starved.
const MAX_WAITING: usize = 32_768;

/// How long the live view alone may reuse a reading of a thread's executable.
const LIVE_EXE_REUSE: Duration = Duration::from_millis(10);

/// Errors of the broker loop.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot start the broker thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    #[error("the broker thread panicked")]
    Panicked,
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// Enforce the policy, or only record what it would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Every refusal became a notification in the filter; the broker records it and answers
    /// CONTINUE (no security decision is made, so CONTINUE is safe).
    Complain,
}

/// What happened to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    Emulated,
    /// Complain mode: the policy would refuse it; it was allowed.
    Complain,
    /// The caller went away (killed) before it could be answered.
    Gone,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Emulated => "emulated",
            Verdict::Complain => "complain",
            Verdict::Gone => "gone",
        }
    }
}

/// A handler's answer and what it decoded, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub response: Response,
    pub decoded: BTreeMap<String, String>,
}

impl Outcome {
    pub fn new(verdict: Verdict, response: Response) -> Outcome {
        Outcome {
            verdict,
            response,
            decoded: BTreeMap::new(),
        }
    }

    pub fn detail(&mut self, key: &str, value: String) {
        self.decoded.insert(key.to_owned(), value);
    }
}

/// Counts of decisions, for the summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub emulated: AtomicU64,
    pub complain: AtomicU64,
    pub gone: AtomicU64,
    /// Interactive mode: calls denied without a prompt because too many already waited.
    pub prompt_overflow: AtomicU64,
}

impl Stats {
    fn count(&self, v: Verdict) {
        let c = match v {
            Verdict::Allowed => &self.allowed,
            Verdict::Denied => &self.denied,
            Verdict::Emulated => &self.emulated,
            Verdict::Complain => &self.complain,
            Verdict::Gone => &self.gone,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `N notifications: a allowed, d denied, …`
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let total = g(&self.allowed)
            + g(&self.denied)
            + g(&self.emulated)
            + g(&self.complain)
            + g(&self.gone);
        let mut line = format!(
            "{total} notifications: {} allowed, {} denied, {} emulated, {} complain (allowed, the policy would refuse), {} callers gone",
            g(&self.allowed),
            g(&self.denied),
            g(&self.emulated),
            g(&self.complain),
            g(&self.gone)
        );
        let overflow = g(&self.prompt_overflow);
        if overflow > 0 {
            line.push_str(&format!(
                "; {overflow} of the denied got no prompt (too many calls were already waiting)"
            ));
        }
        line
    }
}

struct Inner {
    fd: NotifyFd,
    decider: Decider,
    mode: Mode,
    audit: Option<AuditSender>,
    stats: Arc<Stats>,
    /// Calls answered here, for telling them from the filter's own refusals.
    answered: Option<Arc<refusals::Answered>>,
    /// The live session (`auditor tui`): every decision, never waited for.
    live: Option<crate::session::SessionSender>,
    /// The container this listener belongs to, for every record (the runtime agent).
    container: Option<String>,
    /// The policy's name and what chose it, for every record (the runtime agent).
    policy: Option<(String, &'static str)>,
    /// Callers' executables, for records.
    exes: target::ExeCache,
}

/// The broker for one listener fd.
pub struct Broker {
    inner: Arc<Inner>,
    interactive: Option<Interactive>,
}

/// `enforce --interactive`: the filter notifies every call no rule decides; the broker holds
/// each and prompts for it on the live session (see [`prompt`]).
#[derive(Debug)]
pub struct Interactive {
    pub timeout: std::time::Duration,
    pub max_held: usize,
    /// The session clients' answers.
    pub answers: tokio::sync::mpsc::Receiver<crate::session::Answer>,
    /// The native policy file always answers are appended to.
    pub policy_file: std::path::PathBuf,
    /// Which registers each syscall takes: the others do not tell prompts apart.
    pub arity: crate::syscalls::arity::Arity,
}

/// A held call.
#[derive(Debug)]
struct HeldCall {
    n: SeccompNotif,
    start: (Instant, SystemTime),
    /// Read while the call waits: once answered, its thread may be gone before the record is
    /// written.
    exe: Option<String>,
}

/// The broker loop's interactive state.
struct Prompter {
    prompts: prompt::Prompts<HeldCall>,
    policy_file: Arc<std::path::PathBuf>,
    /// Serialises rewrites of the policy file.
    write_lock: Arc<std::sync::Mutex<()>>,
    arity: crate::syscalls::arity::Arity,
}

/// A decision as the broker thread saw it: turned into a [`Record`] (strings, RFC 3339 time)
/// off the broker's path, by [`Inner::record_of`].
struct Raw {
    time: SystemTime,
    pid: u32,
    exe: Option<String>,
    nr: i32,
    arch: u32,
    abi: Option<crate::observe::model::Abi>,
    syscall: Option<&'static str>,
    args: [u64; 6],
    decoded: BTreeMap<String, String>,
    rule: Option<usize>,
    /// Answered by a person (the record's action is `prompt`).
    prompted: bool,
    verdict: Verdict,
    response: Response,
    latency_us: u64,
}

/// The executable of a thread (best effort).
/// A person's (or a timeout's) answer.
fn prompt_outcome(allow: bool) -> Outcome {
    if allow {
        Outcome::new(Verdict::Allowed, Response::Continue)
    } else {
        Outcome::new(Verdict::Denied, Response::Errno(prompt::DENY_ERRNO))
    }
}

/// The policy's action in words, for the log.
fn action_text(a: &Action) -> String {
    a.to_string()
}

fn result_text(r: Response) -> String {
    match r {
        Response::Continue => "continue".into(),
        Response::Value(v) => v.to_string(),
        Response::Errno(e) => match crate::syscalls::errno_name(e.unsigned_abs()) {
            Some(n) => format!("-{n}"),
            None => format!("-{e}"),
        },
    }
}

impl Broker {
    pub fn new(fd: NotifyFd, decider: Decider, mode: Mode, audit: Option<AuditSender>) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                fd,
                decider,
                mode,
                audit,
                stats: Arc::new(Stats::default()),
                answered: None,
                live: None,
                container: None,
                policy: None,
                exes: target::ExeCache::default(),
            }),
            interactive: None,
        }
    }

    /// Prompt for the calls no rule decides (`enforce --interactive`; the filter must notify
    /// them, see `seccomp::compile::compile_with`). Call before [`Broker::serve`], after
    /// [`Broker::with_live`]: prompts are shown there.
    pub fn with_interactive(mut self, i: Interactive) -> Broker {
        self.interactive = Some(i);
        self
    }

    /// Note every call answered here (not with CONTINUE) in `answered`, so that the observer's
    /// refusal events can skip them. Call before [`Broker::serve`].
    pub fn with_answered(mut self, answered: Arc<refusals::Answered>) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.answered = Some(answered);
        }
        self
    }

    /// Publish every decision to the live session too (non-blocking; see `crate::session`).
    /// Call before [`Broker::serve`].
    pub fn with_live(mut self, live: crate::session::SessionSender) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.live = Some(live);
        }
        self
    }

    /// Name the container in every record (the runtime agent serves many at once).
    /// Call before [`Broker::serve`].
    pub fn with_container(mut self, id: String) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.container = Some(id);
        }
        self
    }

    /// Name the policy and what chose it (`listenerMetadata`, an annotation, LXC's cookie,
    /// the default) in every record. Call before [`Broker::serve`].
    pub fn with_policy(mut self, name: String, chosen_by: &'static str) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.policy = Some((name, chosen_by));
        }
        self
    }

    /// Decide, act and record one notification received by someone else (LXC's seccomp proxy
    /// receives and answers the notification itself): returns the answer instead of sending it.
    /// `None`: the caller is gone (ID_VALID failed), there is nothing to answer.
    pub fn respond(&self, n: &SeccompNotif) -> Option<Response> {
        let start = (Instant::now(), SystemTime::now());
        let d = self.inner.decider.decide(&n.data);
        let mut out = Vec::new();
        let response = self.inner.decided(n, &d, start, false, &mut out);
        self.inner.deliver(&mut out);
        response
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }

    pub fn policy(&self) -> &Policy {
        self.inner.decider.policy()
    }

    /// Serve until every task of the filter is gone or `cancel` fires.
    ///
    /// The listener is served by a thread of its own that blocks in the receive ioctl (see
    /// [`Inner::run`]), answers inline what needs no emulation and hands emulations to the
    /// blocking pool. Not the async reactor: a direct waiter is woken by the kernel's own
    /// wake-up of the listener, which honours `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (the
    /// workload's CPU); an epoll waiter is woken through `ep_poll_callback`, which drops that
    /// hint, so every round trip could cross CPUs.
    pub async fn serve(self, cancel: CancellationToken) -> Result<(), BrokerError> {
        // A setting of the filter for whoever receives on it: only here, where the broker is
        // the receiver (not for `respond`, where LXC receives).
        if let Err(e) = self.inner.fd.set_sync_wake_up() {
            tracing::debug!(error = %e, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable (needs 6.6)");
        }
        let stop = Arc::new(
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
                .map_err(|e| BrokerError::Thread { source: e.into() })?,
        );
        // Interactive mode: the broker thread holds the calls no rule decides; a task of this
        // runtime answers them (a client's answer, a timeout).
        let stop_prompts = CancellationToken::new();
        let (prompting, prompt_task) = match self.interactive {
            Some(i) => {
                let p = Arc::new(Prompting {
                    prompter: std::sync::Mutex::new(Prompter {
                        prompts: prompt::Prompts::new(i.timeout, i.max_held),
                        policy_file: Arc::new(i.policy_file),
                        write_lock: Arc::default(),
                        arity: i.arity,
                    }),
                    changed: tokio::sync::Notify::new(),
                });
                let task = tokio::spawn(prompt_loop(
                    self.inner.clone(),
                    p.clone(),
                    Some(i.answers),
                    stop_prompts.clone(),
                ));
                (Some(p), Some(task))
            }
            None => (None, None),
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let handle = tokio::runtime::Handle::current();
        let ending = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (inner, thread_ending, thread_finished, thread_cancel, thread_prompting) = (
            self.inner.clone(),
            ending.clone(),
            finished.clone(),
            cancel.clone(),
            prompting.clone(),
        );
        sys::install_interrupt().map_err(|source| BrokerError::Thread { source })?;
        let broker = std::thread::Builder::new()
            .name("auditor-broker".into())
            .spawn(move || {
                let r = inner.run(
                    &thread_ending,
                    &handle,
                    &thread_cancel,
                    thread_prompting.as_deref(),
                );
                thread_finished.store(true, Ordering::Release);
                let _ = tx.send(r);
            })
            .map_err(|source| BrokerError::Thread { source })?;
        // The watcher: the broker thread's way out of a blocking receive.
        let watcher = {
            let (inner, stop, broker) = (
                self.inner.clone(),
                stop.clone(),
                std::os::unix::thread::JoinHandleExt::as_pthread_t(&broker),
            );
            std::thread::Builder::new()
                .name("auditor-brk-watch".into())
                .spawn(move || watch(&inner.fd, &stop, broker, &ending, &finished))
                .map_err(|source| BrokerError::Thread { source })?
        };
        let done = tokio::select! {
            r = &mut rx => r,
            () = cancel.cancelled() => {
                if let Err(e) = stop.write(1) {
                    tracing::warn!(error = %e, "cannot stop the broker thread");
                    return Ok(());
                }
                // The watcher ends the broker thread; its result follows.
                rx.await
            }
        };
        // The watcher ends once it is told to (if the broker thread ended by itself); the
        // broker thread is joined only after it, so the id it signals stays valid.
        let _ = stop.write(1);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = watcher.join();
            let _ = broker.join();
        })
        .await;
        // The calls still held end with the session or the workload, recorded as such.
        if let Some(p) = &prompting {
            stop_prompts.cancel();
            if let Some(t) = prompt_task {
                let _ = t.await;
            }
            let why = if cancel.is_cancelled() {
                "auditor (the session ended)"
            } else {
                "auditor (the workload exited)"
            };
            let held = p.lock().prompts.drain();
            for c in held {
                self.inner.close_prompt(c, false, "stopped", why);
            }
        }
        // The sender is only dropped without a value if the thread panicked.
        done.unwrap_or(Err(BrokerError::Panicked))
    }
}

/// The watcher thread of [`Broker::serve`]: waits (without ever being woken by a
/// notification) until every task of the filter is gone or `stop` is written, then sets
/// `ending` and interrupts the broker thread's blocking receive until it has finished (a
/// signal that lands just before the receive would be lost, hence the repeats).
fn watch(
    fd: &NotifyFd,
    stop: &EventFd,
    broker: libc::pthread_t,
    ending: &AtomicBool,
    finished: &AtomicBool,
) {
    if let Err(e) = fd.wait_hangup(stop.as_fd()) {
        tracing::warn!(error = %e, "broker watcher: cannot wait on the listener; stopping the broker");
    }
    ending.store(true, Ordering::Release);
    while !finished.load(Ordering::Acquire) {
        sys::interrupt(broker);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The prompts of interactive mode, shared by the broker thread (which holds calls) and the
/// task that answers them.
struct Prompting {
    prompter: std::sync::Mutex<Prompter>,
    /// A call was held: the answering task recomputes its next deadline.
    changed: tokio::sync::Notify,
}

impl Prompting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Prompter> {
        // A panic while holding it leaves consistent data (each step is one map update).
        self.prompter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answer held calls as clients answer their prompts or their timeouts pass, until `stop`.
async fn prompt_loop(
    inner: Arc<Inner>,
    shared: Arc<Prompting>,
    mut answers: Option<tokio::sync::mpsc::Receiver<crate::session::Answer>>,
    stop: CancellationToken,
) {
    loop {
        let deadline = shared.lock().prompts.next_deadline();
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            a = next_answer(&mut answers) => match a {
                Some(a) => inner.on_answer(&mut shared.lock(), a),
                // Nobody can answer any more: the timeouts decide.
                None => answers = None,
            },
            () = sleep_until(deadline) => {
                let mut p = shared.lock();
                let due = p.prompts.expire(Instant::now());
                let after = p.prompts.timeout();
                for c in due {
                    let why = format!("timeout after {}", humantime::format_duration(after));
                    inner.close_prompt(c, false, "timeout", &why);
                }
            }
            () = shared.changed.notified() => {}
        }
    }
}

/// The thread that turns the broker thread's raw facts into records and hands them on, so
/// that formatting never delays the next notification.
///
/// The broker thread appends under an uncontended lock and wakes the record thread only when
/// the queue was empty; the record thread then lets records gather for [`GATHER`] and takes
/// them all at once (swapping buffers, so that neither side allocates once warm).
struct Recorder {
    queue: Arc<RecordQueue>,
    thread: std::thread::JoinHandle<()>,
    inner: Arc<Inner>,
}

#[derive(Default)]
struct RecordQueue {
    state: std::sync::Mutex<Waiting>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct Waiting {
    records: Vec<Raw>,
    /// The buffer the record thread gave back, empty, for the next swap.
    spare: Vec<Raw>,
    done: bool,
}

impl RecordQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Each step under the lock is one push or one swap: consistent after a panic.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Decisions of one gathering the live session shows (see [`Inner::deliver_batch`]).
const SHOWN_PER_BATCH: usize = 32;

impl Recorder {
    fn start(inner: Arc<Inner>) -> Result<Recorder, BrokerError> {
        let queue = Arc::new(RecordQueue::default());
        let (thread_inner, thread_queue) = (inner.clone(), queue.clone());
        let thread = std::thread::Builder::new()
            .name("auditor-records".into())
            .spawn(move || {
                // A batch thread: its wake-up never preempts the workload or the broker
                // thread on their CPU (it still gets its fair share under load).
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
                if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
                    tracing::debug!(error = %std::io::Error::last_os_error(), "SCHED_BATCH for the record thread");
                }
                Recorder::gather(&thread_inner, &thread_queue);
            })
            .map_err(|source| BrokerError::Thread { source })?;
        Ok(Recorder {
            queue,
            thread,
            inner,
        })
    }

    /// The record thread: wait for records, let more gather, deliver them all; until the
    /// broker thread is done and everything is delivered.
    fn gather(inner: &Inner, queue: &RecordQueue) {
        let mut w = queue.lock();
        loop {
            while w.records.is_empty() && !w.done {
                w = queue
                    .wake
                    .wait(w)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if w.records.is_empty() {
                return; // done, and everything delivered
            }
            if !w.done {
                w = queue
                    .wake
                    .wait_timeout_while(w, GATHER, |w| !w.done)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            let next = std::mem::take(&mut w.spare);
            let mut batch = std::mem::replace(&mut w.records, next);
            drop(w);
            inner.deliver_batch(&mut batch);
            batch.clear();
            w = queue.lock();
            w.spare = batch;
        }
    }

    /// Hand over the records in `out` (emptying it); never blocks on the record thread.
    fn push(&self, out: &mut Vec<Raw>) {
        let (was_empty, lost) = {
            let mut w = self.queue.lock();
            let was_empty = w.records.is_empty();
            let room = MAX_WAITING.saturating_sub(w.records.len()).min(out.len());
            w.records.extend(out.drain(..room));
            (was_empty, out.len() as u64)
        };
        out.clear();
        if was_empty {
            self.queue.wake.notify_one();
        }
        if lost > 0 {
            if let Some(a) = &self.inner.audit {
                a.count_dropped(lost);
            }
            if let Some(l) = &self.inner.live {
                l.count_dropped(lost);
            }
        }
    }

    /// Deliver what is waiting, then end.
    fn finish(self) {
        self.queue.lock().done = true;
        self.queue.wake.notify_one();
        let _ = self.thread.join();
    }
}

/// The next answer; pending forever without a receiver.
async fn next_answer(
    rx: &mut Option<tokio::sync::mpsc::Receiver<crate::session::Answer>>,
) -> Option<crate::session::Answer> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleep until `deadline`; pending forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

impl Inner {
    /// The broker thread's loop: receive, decide, answer inline or hand to the pool.
    ///
    /// It blocks in `SECCOMP_IOCTL_NOTIF_RECV` itself, as a minimal supervisor does: a
    /// `poll(2)` before each receive costs a syscall and a wait-queue round per notification
    /// (measured ~7% of the round trip). It ends when a receive fails and the listener reports
    /// hang-up (every task of the filter has exited), or when `ending` is set — by the
    /// [`watch`] thread, which also interrupts the receive with a signal.
    ///
    /// Inline decisions are recorded as raw facts handed to a [`Recorder`] thread that formats
    /// them for the audit log and the live session: one wake-up (or one record's formatting)
    /// per notification would cost more than the round trip itself.
    fn run(
        self: &Arc<Self>,
        ending: &AtomicBool,
        handle: &tokio::runtime::Handle,
        cancel: &CancellationToken,
        prompting: Option<&Prompting>,
    ) -> Result<(), BrokerError> {
        // Records, the live session and the blocking pool all expect a runtime context.
        let _rt = handle.enter();
        let emulations = Arc::new(tokio::sync::Semaphore::new(MAX_EMULATIONS));
        let recorder = (self.audit.is_some() || self.live.is_some())
            .then(|| Recorder::start(self.clone()))
            .transpose()?;
        let mut out: Vec<Raw> = Vec::with_capacity(1);
        let result = loop {
            if ending.load(Ordering::Acquire) {
                break Ok(());
            }
            let n = match self.fd.recv() {
                Ok(n) => n,
                // Interrupted (see `watch`), or ENOENT: the call was withdrawn (its caller
                // was killed) or the filter has no task left.
                Err(e) if e.is_gone() || e.is_interrupted() => match self.fd.readiness() {
                    Ok(r) if r.hangup && !r.pending => {
                        tracing::debug!("every task of the filter has exited");
                        break Ok(());
                    }
                    Ok(_) => continue,
                    Err(e) => break Err(e.into()),
                },
                Err(e) => break Err(e.into()),
            };
            let start = (Instant::now(), SystemTime::now());
            let d = self.decider.decide(&n.data);
            tracing::debug!(pid = n.pid, syscall = d.syscall.unwrap_or("?"), rule = ?d.rule, "notified");
            if let Some(p) = prompting {
                // Unknown numbers (no name) are not worth a prompt: the default action (ENOSYS
                // when that is notify), as without --interactive.
                if d.rule.is_none() && d.syscall.is_some() {
                    self.offer(&mut p.lock(), n, &d, start);
                    p.changed.notify_one();
                    continue;
                }
            }
            if d.handler.is_none() {
                // Decided once: the inline path reuses this decision.
                self.decided(&n, &d, start, true, &mut out);
                if let Some(r) = &recorder {
                    r.push(&mut out);
                }
                continue;
            }
            // At most MAX_EMULATIONS at once: further notifications wait in the kernel.
            let permit = match emulations.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    let sem = emulations.clone();
                    let waited = handle.block_on(async {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => None,
                            p = sem.acquire_owned() => p.ok(),
                        }
                    });
                    match waited {
                        Some(p) => p,
                        None => break Ok(()),
                    }
                }
            };
            let inner = self.clone();
            handle.spawn_blocking(move || {
                let _permit = permit;
                inner.process(&n, start);
            });
        };
        if let Some(r) = recorder {
            r.finish();
        }
        result
    }

    /// The record of a decision, for the audit log and the live session.
    fn record_of(&self, r: Raw) -> Record {
        let policy = self.decider.policy();
        let action = r
            .rule
            .and_then(|i| policy.rules.get(i))
            .map_or(&policy.default_action, |rule| &rule.action);
        Record {
            time: humantime::format_rfc3339_micros(r.time).to_string(),
            container: self.container.clone(),
            policy: self.policy.as_ref().map(|(n, _)| n.clone()),
            policy_from: self.policy.as_ref().map(|(_, f)| (*f).to_owned()),
            pid: r.pid,
            exe: r.exe,
            syscall: r
                .syscall
                .map_or_else(|| format!("nr:{}", r.nr), str::to_owned),
            arch: match r.abi {
                Some(abi) => format!("{abi:?}").to_lowercase(),
                None => format!("{:#x}", r.arch),
            },
            args: r.args.iter().map(|a| format!("{a:#x}")).collect(),
            decoded: r.decoded,
            rule: r.rule.map(|i| i + 1),
            action: if r.prompted {
                "prompt".to_owned()
            } else {
                action_text(action)
            },
            decision: r.verdict.as_str().into(),
            result: if r.verdict == Verdict::Gone {
                "none".into()
            } else {
                result_text(r.response)
            },
            latency_us: r.latency_us,
        }
    }

    /// [`Inner::deliver`] for a batch of the broker thread: every record to the audit log; to
    /// the live session the batch's totals and its last [`SHOWN_PER_BATCH`] decisions (a
    /// person reads a sample at these rates; the totals stay exact), so that formatting and
    /// folding every decision does not take the CPU the workload and the broker need.
    fn deliver_batch(&self, batch: &mut Vec<Raw>) {
        let Some(live) = &self.live else {
            return self.deliver(batch);
        };
        let show_from = batch.len().saturating_sub(SHOWN_PER_BATCH);
        let mut totals = crate::session::protocol::Totals::default();
        let mut shown = Vec::with_capacity(SHOWN_PER_BATCH);
        for (i, raw) in batch.drain(..).enumerate() {
            let decision = raw.verdict.as_str();
            let unknown;
            let syscall = match raw.syscall {
                Some(s) => s,
                None => {
                    unknown = format!("nr:{}", raw.nr);
                    &unknown
                }
            };
            match &raw.exe {
                Some(e) => totals.add_parts(syscall, decision, e),
                None => totals.add_parts(syscall, decision, &format!("pid {}", raw.pid)),
            }
            let show = i >= show_from;
            match (&self.audit, show) {
                (None, false) => {}
                (None, true) => shown.push(self.record_of(raw).into()),
                (Some(a), false) => a.record(self.record_of(raw)),
                (Some(a), true) => {
                    let record = self.record_of(raw);
                    shown.push((&record).into());
                    a.record(record);
                }
            }
        }
        live.send(crate::session::Event::Decisions(Box::new(
            crate::session::DecisionBatch { totals, shown },
        )));
    }

    /// Hand records to the audit log and the live session (never blocks).
    fn deliver(&self, batch: &mut Vec<Raw>) {
        for raw in batch.drain(..) {
            let record = self.record_of(raw);
            match (&self.live, &self.audit) {
                (Some(l), Some(a)) => {
                    l.send(crate::session::Event::Decision((&record).into()));
                    a.record(record);
                }
                (Some(l), None) => l.send(crate::session::Event::Decision(record.into())),
                (None, Some(a)) => a.record(record),
                (None, None) => {}
            }
        }
    }

    /// A call no rule decides, in interactive mode: decided by an earlier always answer, or
    /// held and shown as a prompt (or refused when too many are held).
    fn offer(
        &self,
        p: &mut Prompter,
        n: SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
    ) {
        let key = prompt::Key {
            pid: prompt::tgid(n.pid),
            arch: n.data.arch,
            nr: n.data.nr,
            // Registers the syscall does not take hold leftovers: they do not count.
            args: p.arity.significant(d.syscall, n.data.args),
        };
        let exe = (self.audit.is_some() || self.live.is_some())
            .then(|| self.exes.exe(n.pid))
            .flatten();
        match p
            .prompts
            .hold(key, HeldCall { n, start, exe }, Instant::now())
        {
            prompt::Hold::New(id) | prompt::Hold::Joined(id) => {
                tracing::debug!(
                    pid = n.pid,
                    syscall = d.syscall.unwrap_or("?"),
                    id,
                    "held for a prompt"
                );
                self.publish_prompt(p, id, d);
            }
            prompt::Hold::Decided { allow, call } => {
                let mut o = prompt_outcome(allow);
                o.detail("prompt", "always (an earlier answer)".into());
                self.conclude_now(&call.n, d, call.start, o, Some(call.exe));
            }
            prompt::Hold::Full(call) => {
                self.stats.prompt_overflow.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    pid = n.pid,
                    held = p.prompts.held(),
                    "too many calls wait for a prompt: denied"
                );
                let mut o = prompt_outcome(false);
                o.detail(
                    "prompt",
                    format!(
                        "refused: {} calls already wait for an answer ({} so far)",
                        p.prompts.held(),
                        p.prompts.overflow
                    ),
                );
                self.conclude_now(&call.n, d, call.start, o, Some(call.exe));
            }
        }
    }

    /// Show prompt `id` (again, with its new count of calls) on the live session.
    fn publish_prompt(&self, p: &Prompter, id: u64, d: &decide::Decision<'_>) {
        let (Some(live), Some(pending)) = (&self.live, p.prompts.get(id)) else {
            return;
        };
        let Some(first) = pending.calls.first() else {
            return;
        };
        let exe = first.exe.clone();
        let left = pending.deadline.saturating_duration_since(Instant::now());
        let arch = match d.abi {
            Some(abi) => format!("{abi:?}").to_lowercase(),
            None => format!("{:#x}", first.n.data.arch),
        };
        live.send(crate::session::Event::Prompt(crate::session::Prompt {
            id,
            time: humantime::format_rfc3339_seconds(first.start.1).to_string(),
            pid: pending.key.pid,
            exe,
            syscall: d.syscall.unwrap_or("?").to_owned(),
            arch,
            args: pending.key.args.iter().map(|a| format!("{a:#x}")).collect(),
            calls: pending.calls.len() as u64,
            deadline: humantime::format_rfc3339_seconds(SystemTime::now() + left).to_string(),
        }));
    }

    /// A client answered: answer the calls, and write an always answer to the policy.
    fn on_answer(&self, p: &mut Prompter, a: crate::session::Answer) {
        let closed = p.prompts.answer(a.id, a.choice);
        let Some(first) = closed.first() else {
            tracing::debug!(
                id = a.id,
                "an answer for a prompt that is no longer pending"
            );
            return;
        };
        tracing::info!(id = a.id, choice = a.choice.as_str(), by = %a.by, "prompt answered");
        if a.choice.always() {
            let name = first
                .calls
                .first()
                .and_then(|c| self.decider.decide(&c.n.data).syscall);
            if let Some(name) = name {
                let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
                let rule = prompt::always_rule(name, a.choice.allows(), &a.by, &now);
                let (path, lock, live) = (
                    p.policy_file.clone(),
                    p.write_lock.clone(),
                    self.live.clone(),
                );
                let verb = if a.choice.allows() { "allow" } else { "deny" };
                tokio::task::spawn_blocking(move || {
                    let text = match prompt::write_always(&path, &rule, &lock) {
                        Ok(()) => format!(
                            "{}: added `{verb} {name}` (next launches compile it into the filter)",
                            path.display()
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "always answer not written to the policy");
                            format!("{e}")
                        }
                    };
                    if let Some(l) = live {
                        l.send(crate::session::Event::Notice(text));
                    }
                });
            }
        }
        for c in closed {
            self.close_prompt(c, a.choice.allows(), a.choice.as_str(), &a.by);
        }
    }

    /// Answer, record and un-show the calls of a closed prompt.
    fn close_prompt(&self, c: prompt::Closed<HeldCall>, allow: bool, answer: &str, by: &str) {
        if let Some(l) = &self.live {
            l.send(crate::session::Event::PromptClosed(
                crate::session::PromptClosed {
                    id: c.id,
                    answer: answer.to_owned(),
                    by: by.to_owned(),
                },
            ));
        }
        for call in c.calls {
            let d = self.decider.decide(&call.n.data);
            let mut o = prompt_outcome(allow);
            o.detail("prompt", answer.to_owned());
            o.detail("decided_by", by.to_owned());
            self.conclude_now(&call.n, &d, call.start, o, Some(call.exe));
        }
    }

    /// Decide, act, answer, record. `start`: when the notification was received (the
    /// record's time, so that records sort in the order of the calls).
    fn process(&self, n: &SeccompNotif, start: (Instant, SystemTime)) {
        let d = self.decider.decide(&n.data);
        let mut out = Vec::new();
        self.decided(n, &d, start, true, &mut out);
        self.deliver(&mut out);
    }

    /// Act on a decision, answer (`send`) or return the answer; its record goes to `out`.
    fn decided(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
        send: bool,
        out: &mut Vec<Raw>,
    ) -> Option<Response> {
        let syscall = d.syscall.unwrap_or("");
        let outcome = match d.handler.map(|h| &h.config) {
            Some(HandlerConfig::Mknod { devices }) => mknod::handle(&self.fd, n, syscall, devices),
            Some(HandlerConfig::Mount {
                fstypes,
                sources,
                shift,
                allow_btrfs,
            }) => mount::handle(&self.fd, n, fstypes, sources, *shift, *allow_btrfs),
            Some(HandlerConfig::Setxattr { prefixes }) => {
                setxattr::handle(&self.fd, n, syscall, prefixes)
            }
            Some(HandlerConfig::Sysinfo) => sysinfo::handle(&self.fd, n),
            None => Some(self.plain(d.action, d.syscall.is_some())),
        };
        let mut outcome =
            outcome.unwrap_or_else(|| Outcome::new(Verdict::Gone, Response::Continue));
        if self.mode == Mode::Complain && outcome.verdict == Verdict::Denied {
            outcome.verdict = Verdict::Complain;
            outcome.response = Response::Continue;
        }
        self.conclude(n, d, start, outcome, send, None, out)
    }

    /// [`Inner::conclude`] and send, delivering the record at once (prompt answers: rare).
    fn conclude_now(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
        outcome: Outcome,
        prompted: Option<Option<String>>,
    ) {
        let mut out = Vec::new();
        self.conclude(n, d, start, outcome, true, prompted, &mut out);
        self.deliver(&mut out);
    }

    /// Answer (`send`) or return the answer, and record it. `prompted`: the answer is a
    /// prompt's (the record's action is `prompt`), with the executable read while the call
    /// waited.
    #[expect(
        clippy::too_many_arguments,
        reason = "the hot path's one finishing step; a struct per call would be built and torn down for every notification"
    )]
    fn conclude(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
        mut outcome: Outcome,
        send: bool,
        prompted: Option<Option<String>>,
        out: &mut Vec<Raw>,
    ) -> Option<Response> {
        let syscall = d.syscall.unwrap_or("");
        if outcome.verdict != Verdict::Gone {
            if let (Some(a), false) = (&self.answered, outcome.response == Response::Continue) {
                a.note(n.pid, n.data.nr);
            }
            if !send {
                // The caller answers.
            } else if let Err(e) = self.fd.send(n.id, outcome.response) {
                if e.is_gone() {
                    outcome.verdict = Verdict::Gone;
                } else {
                    tracing::warn!(pid = n.pid, syscall, error = %e, "cannot answer the notification");
                }
            }
        }
        self.stats.count(outcome.verdict);
        let latency_us = u64::try_from(start.0.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Reading the executable costs syscalls: only for the log or a watching UI, and only
        // after the answer, so that it never lengthens the workload's wait.
        let want_exe = self.audit.is_some() || self.live.as_ref().is_some_and(|l| l.has_clients());
        let is_prompt = prompted.is_some();
        let exe = match prompted {
            Some(exe) => exe,
            // The audit log gets the executable read for this very call; the live view alone
            // may reuse a reading of the last few milliseconds (one readlink per call is a
            // noticeable share of the round trip).
            None if self.audit.is_some() => self.exes.exe(n.pid),
            None => want_exe
                .then(|| self.exes.exe_recent(n.pid, LIVE_EXE_REUSE))
                .flatten(),
        };
        tracing::debug!(
            pid = n.pid,
            syscall,
            verdict = outcome.verdict.as_str(),
            latency_us,
            "answered"
        );
        // Every decision goes to the live session too: its history and totals are built from them.
        if self.audit.is_some() || self.live.is_some() {
            out.push(Raw {
                time: start.1,
                pid: n.pid,
                exe,
                nr: n.data.nr,
                arch: n.data.arch,
                abi: d.abi,
                syscall: d.syscall,
                args: n.data.args,
                decoded: outcome.decoded,
                rule: d.rule,
                prompted: is_prompt,
                verdict: outcome.verdict,
                response: outcome.response,
                latency_us,
            });
        }
        (outcome.verdict != Verdict::Gone).then_some(outcome.response)
    }

    /// A call no handler serves: what the policy's action says (complain mode: refusals are
    /// turned into CONTINUE by the caller).
    fn plain(&self, action: &Action, known: bool) -> Outcome {
        match action {
            Action::Allow | Action::Log => Outcome::new(Verdict::Allowed, Response::Continue),
            Action::Errno(e) => Outcome::new(
                Verdict::Denied,
                Response::Errno(i32::try_from(*e).unwrap_or(libc::EPERM)),
            ),
            // In enforce mode the filter itself kills or traps; reaching the broker with these
            // means the user-space match and the filter disagree: refuse.
            Action::KillProcess | Action::KillThread | Action::Trap => {
                Outcome::new(Verdict::Denied, Response::Errno(libc::EPERM))
            }
            Action::Notify(_) => Outcome::new(
                Verdict::Denied,
                Response::Errno(if known { libc::EPERM } else { libc::ENOSYS }),
            ),
        }
    }
}
