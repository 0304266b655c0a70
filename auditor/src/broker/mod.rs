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
mod flood;
pub mod handlers;
mod interactive;
mod outcome;
pub mod prompt;
mod record;
pub mod refusals;
mod serve;
mod sys;
pub mod target;

pub use flood::DEFAULT_FLOOD_RATE;
pub use interactive::Interactive;
pub use outcome::{Mode, Outcome, Verdict};
pub use serve::MAX_EMULATIONS;
pub use sys::{set_helper_limits, HelperError, DEFAULT_HELPER_TIMEOUT, MAX_HELPER_TIMEOUT};

/// A helper timeout as written (`"5s"`): above 0 and at most [`MAX_HELPER_TIMEOUT`].
pub fn check_helper_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() || d > MAX_HELPER_TIMEOUT {
        return Err(format!(
            "{s}: give a duration above 0 and at most {} (LXC answers a call itself after 30 s)",
            humantime::format_duration(MAX_HELPER_TIMEOUT)
        ));
    }
    Ok(d)
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::policy::model::Policy;
use crate::seccomp::notify::{NotifyError, NotifyFd, Response, SeccompNotif};
use audit::AuditSender;
use decide::Decider;

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

    /// The counts, in the order allowed, denied, emulated, complain, gone, prompt overflow
    /// (what an agent hands a successor).
    pub fn counts(&self) -> [u64; 6] {
        [
            &self.allowed,
            &self.denied,
            &self.emulated,
            &self.complain,
            &self.gone,
            &self.prompt_overflow,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }

    /// Counts that go on from [`Stats::counts`].
    pub fn from_counts(c: [u64; 6]) -> Stats {
        let [allowed, denied, emulated, complain, gone, prompt_overflow] = c.map(AtomicU64::new);
        Stats {
            allowed,
            denied,
            emulated,
            complain,
            gone,
            prompt_overflow,
        }
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
    /// The agent's Prometheus metrics, counted with the records.
    metrics: Option<Arc<crate::metrics::AgentMetrics>>,
    /// Who the container is, for the metrics' per-container labels.
    who: Option<crate::metrics::Who>,
    /// Told the id of every notification received (the agent's fd-store checkpoint).
    checkpoint: Option<Checkpoint>,
    /// Serve from idle CPU time while the listener notifies more calls a second than this (see
    /// `flood`): the agents' brokers. 0: never.
    flood_rate: u64,
}

/// See [`Broker::with_checkpoint`].
pub type Checkpoint = Box<dyn Fn(u64) + Send + Sync>;

/// The broker for one listener fd.
pub struct Broker {
    inner: Arc<Inner>,
    interactive: Option<Interactive>,
    /// Prompting started without [`Broker::serve`] (see [`Broker::start_prompting`]).
    prompting: Option<interactive::PromptGuard>,
}

impl Broker {
    pub fn new(fd: NotifyFd, decider: Decider, mode: Mode, audit: Option<AuditSender>) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                fd,
                decider,
                mode,
                // The audit log names the executable of every call: read only when it may
                // have changed, where the exec watch says so.
                exes: if audit.is_some() {
                    target::ExeCache::watching()
                } else {
                    target::ExeCache::default()
                },
                audit,
                stats: Arc::new(Stats::default()),
                answered: None,
                live: None,
                container: None,
                policy: None,
                metrics: None,
                who: None,
                checkpoint: None,
                flood_rate: 0,
            }),
            interactive: None,
            prompting: None,
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

    /// While the listener floods (more than `rate` notifications a second; 0: never), serve
    /// it from idle CPU time, so that one container cannot take the CPU the agent spends on
    /// its calls from other containers and the host (the agents, [`DEFAULT_FLOOD_RATE`]
    /// unless configured; not `enforce`, whose one workload would only slow itself down).
    /// Call before [`Broker::serve`].
    pub fn with_flood_yield(mut self, rate: u64) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.flood_rate = rate;
        }
        self
    }

    /// Count every decision in the agent's metrics, under the container's labels when `who`
    /// is given. Call before [`Broker::serve`].
    pub fn with_metrics(
        mut self,
        metrics: Arc<crate::metrics::AgentMetrics>,
        who: Option<crate::metrics::Who>,
    ) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = Some(metrics);
            inner.who = who;
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
        let start = Instant::now();
        let d = self.inner.decider.decide(&n.data);
        let mut out = Vec::new();
        let response = self.inner.decided(n, &d, start, false, &mut out);
        self.inner.deliver(&mut out);
        response
    }

    /// Interactive mode for a broker that does not receive itself (LXC's proxy receives the
    /// notifications and sends the answers): start answering prompts now, on the current
    /// tokio runtime; [`Broker::hold`] then holds the calls no rule decides. Stops when the
    /// broker is dropped.
    pub fn start_prompting(&mut self) {
        if let Some(i) = self.interactive.take() {
            let service = interactive::PromptService::start(&self.inner, i);
            self.prompting = Some(interactive::PromptGuard::new(service, self.inner.clone()));
        }
    }

    /// With [`Broker::start_prompting`]: a call no rule decides is held for its prompt, and its
    /// answer (`None`: the caller is gone, or prompting stopped) comes on the returned channel;
    /// `None` when the call is not for a prompt (decide it with [`Broker::respond`]).
    pub fn hold(
        &self,
        n: &SeccompNotif,
    ) -> Option<tokio::sync::oneshot::Receiver<Option<Response>>> {
        let shared = self.prompting.as_ref()?.shared();
        let d = self.inner.decider.decide(&n.data);
        if !interactive::asks(&d) {
            return None;
        }
        let start = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .offer(&mut shared.lock(), *n, &d, start, Some(tx));
        shared.changed.notify_one();
        Some(rx)
    }

    /// Tell `checkpoint` the id of every notification as it is received (before it is
    /// decided): what a restarted agent needs to find the calls a dead one never answered.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.checkpoint = Some(checkpoint);
        }
        self
    }

    /// Count into `stats` (a listener's counts so far, handed over by another agent).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Broker {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.stats = stats;
        }
        self
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }

    pub fn policy(&self) -> &Policy {
        self.inner.decider.policy()
    }
}
