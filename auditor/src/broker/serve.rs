//! The serving loop: one thread blocks in the receive ioctl and answers inline what needs no
//! emulation, emulations go to the blocking pool, a watcher thread ends the loop.

use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio_util::sync::CancellationToken;

use super::flood::Flood;
use super::interactive::{PromptService, Prompting};
use super::outcome::{plain, Mode, Outcome, Verdict};
use super::record::{Raw, Recorder};
use super::{decide, handlers, sys, Broker, BrokerError, Inner};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// Emulations running at once; more notifications wait in the kernel.
pub const MAX_EMULATIONS: usize = 8;

/// How long the live view alone may reuse a reading of a thread's executable.
const LIVE_EXE_REUSE: Duration = Duration::from_millis(10);

impl Broker {
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
        let prompts = self
            .interactive
            .map(|i| PromptService::start(&self.inner, i));
        let prompting = prompts.as_ref().map(PromptService::shared);
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
        if let Some(p) = prompts {
            p.end(&self.inner, cancel.is_cancelled()).await;
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
        let recorder = (self.audit.is_some() || self.live.is_some() || self.metrics.is_some())
            .then(|| Recorder::start(self.clone()))
            .transpose()?;
        let mut out: Vec<Raw> = Vec::with_capacity(1);
        // A flooding listener's thread gives way (see `flood`, which never sees a flood at a
        // rate of 0); its own policy comes back.
        let own_policy = sys::Policy::current();
        let (mut flood, mut warned) = (Flood::new(Instant::now(), self.flood_rate), false);
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
            if let Some(c) = &self.checkpoint {
                c(n.id);
            }
            let start = Instant::now();
            if let (Some(flooding), Some(p)) = (flood.note(start), own_policy) {
                self.flooding(p, flooding, &mut warned);
            }
            let d = self.decider.decide(&n.data);
            tracing::debug!(pid = n.pid, syscall = d.syscall.unwrap_or("?"), rule = ?d.rule, "notified");
            if let Some(p) = prompting {
                // Unknown numbers (no name) are not worth a prompt: the default action (ENOSYS
                // when that is notify), as without --interactive.
                if super::interactive::asks(&d) {
                    self.offer(&mut p.lock(), n, &d, start, None);
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
        // The emulations still running answer their calls before the loop's end counts as
        // the broker's: a listener handed over to another agent then holds no call this one
        // received and did not answer (each is bounded by the helper timeout).
        let _ = handle.block_on(emulations.acquire_many(MAX_EMULATIONS as u32));
        if let Some(r) = recorder {
            r.finish();
        }
        result
    }

    /// The listener started (`true`) or stopped flooding: the broker thread gives way to
    /// every other thread, or takes `own` back.
    /// Said as a warning the first time (`warned`), then at info level.
    fn flooding(&self, own: sys::Policy, flooding: bool, warned: &mut bool) {
        let container = self.container.as_deref().unwrap_or("the workload");
        match own.apply(flooding) {
            Ok(()) if flooding && !*warned => {
                *warned = true;
                tracing::warn!(
                    container,
                    "more than {} notified calls per second: served from idle CPU time until they slow down (other containers and the host first)",
                    self.flood_rate
                );
            }
            Ok(()) if flooding => {
                tracing::info!(container, "flooding again: served from idle CPU time")
            }
            Ok(()) => tracing::info!(
                container,
                "notifications slowed down: served at the broker's own priority again"
            ),
            Err(e) => {
                tracing::debug!(container, error = %e, flooding, "cannot change the broker thread's scheduling")
            }
        }
    }

    /// Decide, act, answer, record. `start`: when the notification was received (the
    /// record's time, so that records sort in the order of the calls).
    fn process(&self, n: &SeccompNotif, start: Instant) {
        let d = self.decider.decide(&n.data);
        let mut out = Vec::new();
        self.decided(n, &d, start, true, &mut out);
        self.deliver(&mut out);
    }

    /// Act on a decision, answer (`send`) or return the answer; its record goes to `out`.
    pub(super) fn decided(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: Instant,
        send: bool,
        out: &mut Vec<Raw>,
    ) -> Option<Response> {
        let syscall = d.syscall.unwrap_or("");
        let outcome = match d.handler {
            Some(h) => handlers::run(
                &h.config,
                &handlers::Call {
                    fd: &self.fd,
                    n,
                    syscall,
                    policy: self.decider.policy(),
                },
            ),
            None => Some(plain(d.action, d.syscall.is_some())),
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
    pub(super) fn conclude_now(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: Instant,
        outcome: Outcome,
        prompted: Option<Option<std::sync::Arc<str>>>,
    ) {
        let mut out = Vec::new();
        self.conclude(n, d, start, outcome, true, prompted, &mut out);
        self.deliver(&mut out);
    }

    /// Return the answer of a prompt's call (someone else sends it), and record it.
    pub(super) fn conclude_returning(
        &self,
        n: &SeccompNotif,
        d: &decide::Decision<'_>,
        start: Instant,
        outcome: Outcome,
        prompted: Option<Option<std::sync::Arc<str>>>,
        out: &mut Vec<Raw>,
    ) -> Option<Response> {
        self.conclude(n, d, start, outcome, false, prompted, out)
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
        start: Instant,
        mut outcome: Outcome,
        send: bool,
        prompted: Option<Option<std::sync::Arc<str>>>,
        out: &mut Vec<Raw>,
    ) -> Option<Response> {
        let syscall = d.syscall.unwrap_or("");
        // With the exec watch, the audit log's executable is read before the answer: almost
        // always a reuse (no syscall), and a real reading (after an exec, or a thread's first
        // call) then sees a caller that cannot have exited yet — read after the answer, the
        // last call before a process ends would often have no executable.
        let early = (prompted.is_none() && self.audit.is_some() && self.exes.is_watching())
            .then(|| self.exes.exe(n.pid, start));
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
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Otherwise reading the executable costs syscalls: only for the log or a watching UI,
        // and only after the answer, so that it never lengthens the workload's wait.
        let want_exe = self.audit.is_some() || self.live.as_ref().is_some_and(|l| l.has_clients());
        let is_prompt = prompted.is_some();
        let exe = match (prompted, early) {
            (Some(exe), _) | (None, Some(exe)) => exe,
            // The audit log gets the executable read for this very call; the live view alone
            // may reuse a reading of the last few milliseconds (one readlink per call is a
            // noticeable share of the round trip).
            (None, None) if self.audit.is_some() => self.exes.exe(n.pid, start),
            (None, None) => want_exe
                .then(|| self.exes.exe_recent(n.pid, start, LIVE_EXE_REUSE))
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
        if self.audit.is_some() || self.live.is_some() || self.metrics.is_some() {
            out.push(Raw {
                time: start,
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
                repeats: 0,
                last: start,
            });
        }
        (outcome.verdict != Verdict::Gone).then_some(outcome.response)
    }
}
