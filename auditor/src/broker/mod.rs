//! The seccomp-notify broker: decides the calls a policy marks notify (and, in complain mode,
//! the calls it would refuse), runs the emulation handlers, answers the kernel and records each
//! decision in the audit log.
//!
//! One tokio task owns the listener fd, registered with the reactor. A notification is
//! received only when `poll` says one is pending (`SECCOMP_IOCTL_NOTIF_RECV` blocks otherwise);
//! the task ends at `POLLHUP` (no task uses the filter any more) or on cancellation. Decisions
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
pub mod sysinfo;
pub mod target;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

use crate::policy::handlers::HandlerConfig;
use crate::policy::model::{Action, Policy};
use crate::seccomp::notify::{NotifyError, NotifyFd, Response, SeccompNotif};
use audit::{AuditSender, Record};
use decide::Decider;

/// Emulations running at once; more notifications wait in the kernel.
pub const MAX_EMULATIONS: usize = 8;

/// Errors of the broker loop.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot register the seccomp listener with the reactor")]
    Register {
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for the seccomp listener failed")]
    Wait {
        #[source]
        source: std::io::Error,
    },
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
}

/// AsyncFd needs an owner that is `AsRawFd`.
struct Registered(Arc<Inner>);

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd.as_raw_fd()
    }
}

/// The executable of a thread (best effort).
fn exe_of(tid: u32) -> Option<String> {
    target::Target::open(tid)
        .ok()
        .and_then(|t| t.exe())
        .map(|p| p.display().to_string())
}

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
        if let Err(e) = fd.set_sync_wake_up() {
            tracing::debug!(error = %e, "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable (needs 6.6)");
        }
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

    /// Decide, act and record one notification received by someone else (LXC's seccomp proxy
    /// receives and answers the notification itself): returns the answer instead of sending it.
    /// `None`: the caller is gone (ID_VALID failed), there is nothing to answer.
    pub fn respond(&self, n: &SeccompNotif) -> Option<Response> {
        let start = (Instant::now(), SystemTime::now());
        let d = self.inner.decider.decide(&n.data);
        self.inner.decided(n, &d, start, false)
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }

    pub fn policy(&self) -> &Policy {
        self.inner.decider.policy()
    }

    /// Serve until every task of the filter is gone or `cancel` fires.
    pub async fn serve(self, cancel: CancellationToken) -> Result<(), BrokerError> {
        // SAFETY: `Registered` holds an Arc of the NotifyFd that owns the fd, so the fd stays
        // open and the same for as long as the AsyncFd lives.
        let afd = unsafe {
            AsyncFd::register_with_interest(Registered(self.inner.clone()), Interest::READABLE)
        }
        .map_err(|e| BrokerError::Register {
            source: e.into_parts().1,
        })?;
        let emulations = Arc::new(tokio::sync::Semaphore::new(MAX_EMULATIONS));
        let (mut prompter, mut answers) = match self.interactive {
            Some(i) => (
                Some(Prompter {
                    prompts: prompt::Prompts::new(i.timeout, i.max_held),
                    policy_file: Arc::new(i.policy_file),
                    write_lock: Arc::default(),
                }),
                Some(i.answers),
            ),
            None => (None, None),
        };
        loop {
            let deadline = prompter.as_ref().and_then(|p| p.prompts.next_deadline());
            let mut guard = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    if let Some(p) = &mut prompter {
                        let held = p.prompts.drain();
                        for c in held {
                            self.inner.close_prompt(c, false, "stopped", "auditor (the session ended)");
                        }
                    }
                    return Ok(());
                }
                a = next_answer(&mut answers) => {
                    match (a, &mut prompter) {
                        (Some(a), Some(p)) => self.inner.on_answer(p, a),
                        // Nobody can answer any more: the timeouts decide.
                        _ => answers = None,
                    }
                    continue;
                }
                () = sleep_until(deadline) => {
                    if let Some(p) = &mut prompter {
                        let due = p.prompts.expire(Instant::now());
                        let after = p.prompts.timeout();
                        for c in due {
                            let why = format!("timeout after {}", humantime::format_duration(after));
                            self.inner.close_prompt(c, false, "timeout", &why);
                        }
                    }
                    continue;
                }
                g = afd.readable() => g.map_err(|source| BrokerError::Wait { source })?,
            };
            let ready = self.inner.fd.readiness()?;
            if !ready.pending {
                guard.clear_ready();
                if ready.hangup {
                    tracing::debug!("every task of the filter has exited");
                    if let Some(p) = &mut prompter {
                        // Their callers are gone: recorded as such.
                        for c in p.prompts.drain() {
                            self.inner.close_prompt(c, false, "stopped", "auditor (the workload exited)");
                        }
                    }
                    return Ok(());
                }
                continue;
            }
            let n = match self.inner.fd.recv() {
                Ok(n) => n,
                // Withdrawn between poll and receive: its caller was killed.
                Err(e) if e.is_gone() => continue,
                Err(e) => return Err(e.into()),
            };
            let start = (Instant::now(), SystemTime::now());
            let d = self.inner.decider.decide(&n.data);
            tracing::debug!(pid = n.pid, syscall = d.syscall.unwrap_or("?"), rule = ?d.rule, "notified");
            if let Some(p) = &mut prompter {
                // Unknown numbers (no name) are not worth a prompt: the default action (ENOSYS
                // when that is notify), as without --interactive.
                if d.rule.is_none() && d.syscall.is_some() {
                    self.inner.offer(p, n, &d, start);
                    continue;
                }
            }
            if d.handler.is_some() {
                let permit = tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    p = emulations.clone().acquire_owned() => p,
                };
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    inner.process(&n, start);
                });
            } else {
                // Decided once: the inline path reuses this decision.
                self.inner.process_decided(&n, &d, start);
            }
        }
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
            args: n.data.args,
        };
        let exe = (self.audit.is_some() || self.live.is_some())
            .then(|| exe_of(n.pid))
            .flatten();
        match p.prompts.hold(key, HeldCall { n, start, exe }, Instant::now()) {
            prompt::Hold::New(id) | prompt::Hold::Joined(id) => {
                tracing::debug!(pid = n.pid, syscall = d.syscall.unwrap_or("?"), id, "held for a prompt");
                self.publish_prompt(p, id, d);
            }
            prompt::Hold::Decided { allow, call } => {
                let mut o = prompt_outcome(allow);
                o.detail("prompt", "always (an earlier answer)".into());
                self.conclude(&call.n, d, call.start, o, true, Some(call.exe));
            }
            prompt::Hold::Full(call) => {
                self.stats.prompt_overflow.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pid = n.pid, held = p.prompts.held(), "too many calls wait for a prompt: denied");
                let mut o = prompt_outcome(false);
                o.detail(
                    "prompt",
                    format!("refused: {} calls already wait for an answer ({} so far)", p.prompts.held(), p.prompts.overflow),
                );
                self.conclude(&call.n, d, call.start, o, true, Some(call.exe));
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
            tracing::debug!(id = a.id, "an answer for a prompt that is no longer pending");
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
                let (path, lock, live) = (p.policy_file.clone(), p.write_lock.clone(), self.live.clone());
                let verb = if a.choice.allows() { "allow" } else { "deny" };
                tokio::task::spawn_blocking(move || {
                    let text = match prompt::write_always(&path, &rule, &lock) {
                        Ok(()) => format!("{}: added `{verb} {name}` (next launches compile it into the filter)", path.display()),
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
            l.send(crate::session::Event::PromptClosed(crate::session::PromptClosed {
                id: c.id,
                answer: answer.to_owned(),
                by: by.to_owned(),
            }));
        }
        for call in c.calls {
            let d = self.decider.decide(&call.n.data);
            let mut o = prompt_outcome(allow);
            o.detail("prompt", answer.to_owned());
            o.detail("decided_by", by.to_owned());
            self.conclude(&call.n, &d, call.start, o, true, Some(call.exe));
        }
    }

    /// Decide, act, answer, record. `start`: when the notification was received (the
    /// record's time, so that records sort in the order of the calls).
    fn process(&self, n: &SeccompNotif, start: (Instant, SystemTime)) {
        let d = self.decider.decide(&n.data);
        self.process_decided(n, &d, start);
    }

    /// [`Inner::process`] for a notification already decided.
    fn process_decided(&self, n: &SeccompNotif, d: &decide::Decision<'_>, start: (Instant, SystemTime)) {
        self.decided(n, d, start, true);
    }

    /// Act on a decision, answer (`send`) or return the answer, and record it.
    fn decided(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
        send: bool,
    ) -> Option<Response> {
        let syscall = d.syscall.unwrap_or("");
        let outcome = match d.handler.map(|h| &h.config) {
            Some(HandlerConfig::Mknod { devices }) => mknod::handle(&self.fd, n, syscall, devices),
            Some(HandlerConfig::Mount { fstypes, sources }) => {
                mount::handle(&self.fd, n, fstypes, sources)
            }
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
        self.conclude(n, d, start, outcome, send, None)
    }

    /// Answer (`send`) or return the answer, and record it. `prompted`: the answer is a
    /// prompt's (the record's action is `prompt`), with the executable read while the call
    /// waited.
    fn conclude(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: (Instant, SystemTime),
        mut outcome: Outcome,
        send: bool,
        prompted: Option<Option<String>>,
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
            None => want_exe.then(|| exe_of(n.pid)).flatten(),
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
            let arch = match d.abi {
                Some(abi) => format!("{abi:?}").to_lowercase(),
                None => format!("{:#x}", n.data.arch),
            };
            let record = Record {
                time: humantime::format_rfc3339_micros(start.1).to_string(),
                container: self.container.clone(),
                pid: n.pid,
                exe,
                syscall: d
                    .syscall
                    .map_or_else(|| format!("nr:{}", n.data.nr), str::to_owned),
                arch,
                args: n.data.args.iter().map(|a| format!("{a:#x}")).collect(),
                decoded: outcome.decoded,
                rule: d.rule.map(|i| i + 1),
                action: if is_prompt {
                    "prompt".to_owned()
                } else {
                    action_text(d.action)
                },
                decision: outcome.verdict.as_str().into(),
                result: if outcome.verdict == Verdict::Gone {
                    "none".into()
                } else {
                    result_text(outcome.response)
                },
                latency_us,
            };
            if let Some(l) = &self.live {
                l.send(crate::session::Event::Decision((&record).into()));
            }
            if let Some(a) = &self.audit {
                a.record(record);
            }
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
