//! `enforce --interactive`: calls no rule decides are held and shown as prompts on the live
//! session; a person's answer (or the timeout) decides them, and an always answer is written
//! back to the policy file.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::outcome::{Outcome, Verdict};
use super::{decide, prompt, Inner};
use crate::seccomp::notify::{Response, SeccompNotif};

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
    /// Prompt ids start above this (0 for `enforce`; the agent gives each broker its own
    /// range, so that one session's answers find their broker).
    pub id_base: u64,
}

/// A held call.
#[derive(Debug)]
pub(super) struct HeldCall {
    n: SeccompNotif,
    start: Instant,
    /// Read while the call waits: once answered, its thread may be gone before the record is
    /// written.
    exe: Option<std::sync::Arc<str>>,
    /// Where the answer goes when someone else receives the notification and sends its
    /// answer (LXC's proxy, see [`crate::broker::Broker::hold`]); `None`: the
    /// broker answers on its listener.
    reply: Option<tokio::sync::oneshot::Sender<Option<Response>>>,
}

/// The broker loop's interactive state.
pub(super) struct Prompter {
    prompts: prompt::Prompts<HeldCall>,
    policy_file: Arc<std::path::PathBuf>,
    /// Serialises rewrites of the policy file.
    write_lock: Arc<std::sync::Mutex<()>>,
    arity: crate::syscalls::arity::Arity,
}

/// A person's (or a timeout's) answer.
fn prompt_outcome(allow: bool) -> Outcome {
    if allow {
        Outcome::new(Verdict::Allowed, Response::Continue)
    } else {
        Outcome::new(Verdict::Denied, Response::Errno(prompt::DENY_ERRNO))
    }
}

/// Interactive mode while the broker serves: the prompts and the task that answers them.
pub(super) struct PromptService {
    shared: Arc<Prompting>,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl PromptService {
    /// Start answering prompts (a task of the current runtime).
    pub(super) fn start(inner: &Arc<Inner>, i: Interactive) -> PromptService {
        let shared = Arc::new(Prompting {
            prompter: std::sync::Mutex::new(Prompter {
                prompts: prompt::Prompts::new(i.timeout, i.max_held).with_id_base(i.id_base),
                policy_file: Arc::new(i.policy_file),
                write_lock: Arc::default(),
                arity: i.arity,
            }),
            changed: tokio::sync::Notify::new(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(prompt_loop(
            inner.clone(),
            shared.clone(),
            Some(i.answers),
            stop.clone(),
        ));
        PromptService { shared, task, stop }
    }

    /// What the broker thread holds calls in.
    pub(super) fn shared(&self) -> Arc<Prompting> {
        self.shared.clone()
    }

    /// Stop answering; the calls still held are refused, recorded as ended by the session
    /// (`cancelled`) or by the workload.
    pub(super) async fn end(self, inner: &Inner, cancelled: bool) {
        self.stop.cancel();
        let _ = self.task.await;
        let why = if cancelled {
            "auditor (the session ended)"
        } else {
            "auditor (the workload exited)"
        };
        self.shared.refuse_held(inner, why);
    }
}

/// Whether a call waits for a person in interactive mode: no rule decides it, and it has a
/// name (unknown numbers take the default action, ENOSYS when that is notify).
pub(super) fn asks(d: &decide::Decision<'_>) -> bool {
    d.rule.is_none() && d.syscall.is_some()
}

/// Prompting for a broker that does not receive itself (LXC's proxy receives and answers):
/// answering stops when it is dropped, and the calls still held are then answered `None`
/// (their waiters refuse them).
pub(super) struct PromptGuard {
    service: PromptService,
    inner: Arc<Inner>,
}

impl PromptGuard {
    pub(super) fn new(service: PromptService, inner: Arc<Inner>) -> PromptGuard {
        PromptGuard { service, inner }
    }

    pub(super) fn shared(&self) -> Arc<Prompting> {
        self.service.shared()
    }
}

impl Drop for PromptGuard {
    fn drop(&mut self) {
        self.service.stop.cancel();
        self.service.task.abort();
        self.service.shared.refuse_held(
            &self.inner,
            "auditor (the container's filter is no longer served)",
        );
    }
}

/// The prompts of interactive mode, shared by the broker thread (which holds calls) and the
/// task that answers them.
pub(super) struct Prompting {
    prompter: std::sync::Mutex<Prompter>,
    /// A call was held: the answering task recomputes its next deadline.
    pub(super) changed: tokio::sync::Notify,
}

impl Prompting {
    /// Refuse the calls still held, their prompts closed as stopped by `why`.
    fn refuse_held(&self, inner: &Inner, why: &str) {
        let held = self.lock().prompts.drain();
        for c in held {
            inner.close_prompt(c, false, "stopped", why);
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Prompter> {
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
    pub(super) fn offer(
        &self,
        p: &mut Prompter,
        n: SeccompNotif,
        d: &decide::Decision<'_>,
        start: Instant,
        reply: Option<tokio::sync::oneshot::Sender<Option<Response>>>,
    ) {
        let key = prompt::Key {
            pid: crate::host::proc::tgid(n.pid),
            arch: n.data.arch,
            nr: n.data.nr,
            // Registers the syscall does not take hold leftovers: they do not count.
            args: p.arity.significant(d.syscall, n.data.args),
        };
        let exe = (self.audit.is_some() || self.live.is_some())
            .then(|| self.exes.exe(n.pid, start))
            .flatten();
        match p.prompts.hold(
            key,
            HeldCall {
                n,
                start,
                exe,
                reply,
            },
            Instant::now(),
        ) {
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
                self.finish(call, d, o);
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
                self.finish(call, d, o);
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
        let exe = first.exe.as_deref().map(str::to_owned);
        let left = pending.deadline.saturating_duration_since(Instant::now());
        let arch = match d.abi {
            Some(abi) => format!("{abi:?}").to_lowercase(),
            None => format!("{:#x}", first.n.data.arch),
        };
        live.send(crate::session::Event::Prompt(crate::session::Prompt {
            id,
            time: humantime::format_rfc3339_seconds(super::record::wall(first.start)).to_string(),
            pid: pending.key.pid,
            exe,
            syscall: d.syscall.unwrap_or("?").to_owned(),
            arch,
            args: pending.key.args.iter().map(|a| format!("{a:#x}")).collect(),
            calls: pending.calls.len() as u64,
            container: self.container.clone(),
            policy: self.policy.as_ref().map(|(name, _)| name.clone()),
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
                let asked_by = match &self.container {
                    Some(c) => format!("auditor agent (container {c})"),
                    None => "auditor enforce --interactive".to_owned(),
                };
                let rule = prompt::always_rule(name, a.choice.allows(), &a.by, &now, &asked_by);
                let (path, lock, live) = (
                    p.policy_file.clone(),
                    p.write_lock.clone(),
                    self.live.clone(),
                );
                let verb = if a.choice.allows() { "allow" } else { "deny" };
                let applies = match &self.container {
                    // The agent: this broker decides it from now on; the others read the file
                    // at their next reload.
                    Some(c) => format!(
                        "container {c}: at once; other containers under this policy: after the agent reloads (SIGHUP)"
                    ),
                    None => "next launches compile it into the filter".to_owned(),
                };
                tokio::task::spawn_blocking(move || {
                    let text = match prompt::write_always(&path, &rule, &lock) {
                        Ok(()) => format!("{}: added `{verb} {name}` ({applies})", path.display()),
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
    pub(super) fn close_prompt(
        &self,
        c: prompt::Closed<HeldCall>,
        allow: bool,
        answer: &str,
        by: &str,
    ) {
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
            self.finish(call, &d, o);
        }
    }

    /// Answer a held call (on the listener, or to whoever waits for its answer) and record it.
    fn finish(&self, call: HeldCall, d: &decide::Decision<'_>, o: Outcome) {
        match call.reply {
            None => self.conclude_now(&call.n, d, call.start, o, Some(call.exe)),
            Some(reply) => {
                let mut out = Vec::new();
                let r =
                    self.conclude_returning(&call.n, d, call.start, o, Some(call.exe), &mut out);
                self.deliver(&mut out);
                // The waiter may be gone (its connection closed): nothing to answer then.
                let _ = reply.send(r);
            }
        }
    }
}
