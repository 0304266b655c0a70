//! Records of decisions: the broker thread hands raw facts to a record thread, which formats
//! them for the audit log and the live session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::audit::{Batch, Record, RecordRef, Syscall};
use super::outcome::{action_text, result_text, ResultText, Verdict};
use super::{BrokerError, Inner};
use crate::seccomp::notify::Response;

/// How long the record thread lets the broker thread's records gather before it takes them:
/// it wakes at most about 20 times a second however busy the broker is. Every wake-up of
/// another thread costs the CPU the workload and the broker share (measured: two threads
/// waking 100 times a second cost a minimal C supervisor ~10% of its throughput on this kind
/// of VM).
const GATHER: Duration = Duration::from_millis(50);
/// Records waiting for the record thread at most, so a flood costs bounded memory (a few MiB).
/// With an audit log the broker thread then waits for room (a record is lost data); without
/// one (the live session samples anyway) the excess is dropped and counted. The record thread
/// falls that far behind only if it is starved, or held up by a writer that is behind.
const MAX_WAITING: usize = 32_768;

/// A decision as the broker thread saw it: turned into a [`Record`] (strings, RFC 3339 time)
/// off the broker's path, by [`Inner::record_of`].
pub(super) struct Raw {
    /// When the notification was received (the record's time comes from it, see [`wall`]).
    pub(super) time: Instant,
    pub(super) pid: u32,
    pub(super) exe: Option<std::sync::Arc<str>>,
    pub(super) nr: i32,
    pub(super) arch: u32,
    pub(super) abi: Option<crate::syscalls::Abi>,
    pub(super) syscall: Option<&'static str>,
    pub(super) args: [u64; 6],
    pub(super) decoded: BTreeMap<String, String>,
    pub(super) rule: Option<usize>,
    /// Answered by a person (the record's action is `prompt`).
    pub(super) prompted: bool,
    pub(super) verdict: Verdict,
    pub(super) response: Response,
    pub(super) latency_us: u64,
    /// Further calls folded into this record: the same call made again by the same caller,
    /// as its next notified call, while nothing needs each call's own record (see
    /// [`Raw::fold`] and [`Waiting::add`]). The live session counts every one of them.
    pub(super) repeats: u64,
    /// When the last of those was received (`time` when there are none).
    pub(super) last: Instant,
}

impl Raw {
    /// Fold `next` into this record if it is the same call again — same caller and
    /// executable, syscall, all six argument registers, rule and answer, neither prompted nor
    /// decoded by a handler — and say whether it did; `next` is then only counted (and its
    /// time kept as the run's last). Only the first call's own time and latency are kept.
    pub(super) fn fold(&mut self, next: &Raw) -> bool {
        let same = self.pid == next.pid
            && self.nr == next.nr
            && self.arch == next.arch
            && self.args == next.args
            && self.rule == next.rule
            && self.verdict == next.verdict
            && self.response == next.response
            && !self.prompted
            && !next.prompted
            && self.decoded.is_empty()
            && next.decoded.is_empty()
            && self.exe == next.exe;
        if same {
            self.repeats += 1;
            self.last = self.last.max(next.time);
        }
        same
    }

    /// The calls this record stands for.
    pub(super) fn calls(&self) -> u64 {
        1 + self.repeats
    }
}

/// The wall-clock time of `t`, an instant of the last moments (a record's receive time): the
/// broker thread reads one clock per notification, not two.
pub(super) fn wall(t: Instant) -> SystemTime {
    Clock::now().at(t)
}

/// Both clocks read at one moment: turns the instants of one batch of records into wall-clock
/// times (a batch spans at most a gathering, so a clock slewed meanwhile is off by microseconds).
#[derive(Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn at(self, t: Instant) -> SystemTime {
        let ago = self.mono.saturating_duration_since(t);
        self.wall.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// The thread that turns the broker thread's raw facts into records and hands them on, so
/// that formatting never delays the next notification.
///
/// The broker thread appends under an uncontended lock and wakes the record thread only when
/// the queue was empty; the record thread then lets records gather for [`GATHER`] and takes
/// them all at once (swapping buffers, so that neither side allocates once warm).
pub(super) struct Recorder {
    queue: Arc<RecordQueue>,
    thread: std::thread::JoinHandle<()>,
    inner: Arc<Inner>,
    /// Whether a call a thread repeats may be folded into that thread's waiting record of it
    /// ([`Waiting::add`]): only when nothing needs each call's own record — no audit log (one
    /// line per call) and no metrics (one latency per call); the live session alone shows a
    /// sample of the calls and counts them all.
    fold: bool,
}

#[derive(Default)]
struct RecordQueue {
    state: std::sync::Mutex<Waiting>,
    wake: std::sync::Condvar,
    /// Signalled when the record thread has taken the waiting records (room for more).
    room: std::sync::Condvar,
}

#[derive(Default)]
struct Waiting {
    records: Vec<Raw>,
    /// The buffer the record thread gave back, empty, for the next swap.
    spare: Vec<Raw>,
    /// Where each caller's last waiting record is, so that a call folds into its own
    /// caller's previous one while other threads call in between.
    last_of: LastOf,
    done: bool,
}

/// Callers whose last waiting record is found without a search: a slot per pid modulo this.
/// Two callers sharing a slot only fold less (the slot is checked against the pid).
const CALLER_SLOTS: usize = 64;

/// Per slot, the index (plus one; 0: none) in [`Waiting::records`] of the last record pushed
/// by a caller of that slot.
struct LastOf([u32; CALLER_SLOTS]);

impl Default for LastOf {
    fn default() -> LastOf {
        LastOf([0; CALLER_SLOTS])
    }
}

fn slot_of(pid: u32) -> usize {
    pid as usize % CALLER_SLOTS
}

impl Waiting {
    /// Add a raw record, folding it (`fold`) into the last waiting record of the same caller
    /// when it is the same call again ([`Raw::fold`]): a thread that repeats a call is
    /// counted, not recorded again, even while other threads' calls come in between. `false`
    /// when [`MAX_WAITING`] records wait already (the record is lost).
    fn add(&mut self, raw: Raw, fold: bool) -> bool {
        let slot = slot_of(raw.pid);
        if fold {
            let last = (self.last_of.0[slot] as usize)
                .checked_sub(1)
                .and_then(|i| self.records.get_mut(i))
                .filter(|last| last.pid == raw.pid);
            if last.is_some_and(|last| last.fold(&raw)) {
                return true;
            }
        }
        if self.records.len() >= MAX_WAITING {
            return false;
        }
        self.records.push(raw);
        // MAX_WAITING fits: the index always does.
        self.last_of.0[slot] = u32::try_from(self.records.len()).unwrap_or(0);
        true
    }

    /// Take every waiting record, leaving the spare buffer in their place.
    fn take(&mut self) -> Vec<Raw> {
        self.last_of = LastOf::default();
        let next = std::mem::take(&mut self.spare);
        std::mem::replace(&mut self.records, next)
    }
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
    pub(super) fn start(inner: Arc<Inner>) -> Result<Recorder, BrokerError> {
        let queue = Arc::new(RecordQueue::default());
        let (thread_inner, thread_queue) = (inner.clone(), queue.clone());
        let thread = std::thread::Builder::new()
            .name("auditor-records".into())
            .spawn(move || {
                // Its wake-up never preempts a workload or a broker thread on their CPU.
                super::sys::background("auditor-records");
                Recorder::gather(&thread_inner, &thread_queue);
            })
            .map_err(|source| BrokerError::Thread { source })?;
        Ok(Recorder {
            queue,
            thread,
            fold: inner.audit.is_none() && inner.metrics.is_none(),
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
                    // Until done, or until half the room is used (a broker waiting for room
                    // must not wait for the rest of the gathering too).
                    .wait_timeout_while(w, GATHER, |w| !w.done && w.records.len() < MAX_WAITING / 2)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            let mut batch = w.take();
            drop(w);
            queue.room.notify_all();
            inner.deliver_batch(&mut batch);
            batch.clear();
            w = queue.lock();
            w.spare = batch;
        }
    }

    /// Hand over the records in `out` (emptying it). Blocks only when [`MAX_WAITING`] records
    /// wait and an audit log must get them all: until the record thread takes them, or the
    /// audit log's writer is found stalled (then the excess is dropped and counted).
    pub(super) fn push(&self, out: &mut Vec<Raw>) {
        let (was_empty, lost) = {
            let mut w = self.queue.lock();
            if let Some(audit) = &self.inner.audit {
                while w.records.len() >= MAX_WAITING && !w.done && !audit.stalled() {
                    // Wake the record thread (it ends a gathering at half the room), then wait.
                    self.queue.wake.notify_one();
                    w = self
                        .queue
                        .room
                        .wait_timeout(w, super::audit::STALL_LIMIT)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
            // After any wait: the record thread may have taken everything meanwhile.
            let was_empty = w.records.is_empty();
            let mut lost = 0;
            for raw in out.drain(..) {
                // A call a thread repeats (a loop on one notified call, a flood, from one
                // thread or several) costs a count here rather than a record's worth of
                // memory written and read again: the broker thread's cheapest path, and it
                // shares the workload's CPU.
                if !w.add(raw, self.fold) {
                    lost += 1;
                }
            }
            (was_empty, lost)
        };
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
    pub(super) fn finish(self) {
        self.queue.lock().done = true;
        self.queue.wake.notify_one();
        let _ = self.thread.join();
    }
}

impl Inner {
    /// The record of a decision, for the audit log and the live session.
    fn record_of(&self, r: Raw, clock: Clock) -> Record {
        let policy = self.decider.policy();
        let action = r
            .rule
            .and_then(|i| policy.rules.get(i))
            .map_or(&policy.default_action, |rule| &rule.action);
        Record {
            time: humantime::format_rfc3339_micros(clock.at(r.time)).to_string(),
            container: self.container.clone(),
            policy: self.policy.as_ref().map(|(n, _)| n.clone()),
            policy_from: self.policy.as_ref().map(|(_, f)| (*f).to_owned()),
            pid: r.pid,
            exe: r.exe.as_deref().map(str::to_owned),
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

    /// Append the record of a decision to an audit batch, formatted as it is written.
    fn push_ref(&self, r: &Raw, batch: &mut Batch, clock: Clock) {
        debug_assert_eq!(r.repeats, 0, "records are not folded with an audit log");
        struct Hex(u32);
        impl std::fmt::Display for Hex {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
        let policy = self.decider.policy();
        let action = r
            .rule
            .and_then(|i| policy.rules.get(i))
            .map_or(&policy.default_action, |rule| &rule.action);
        let (abi, raw_arch);
        let arch: &dyn std::fmt::Display = match r.abi {
            Some(a) => {
                abi = a.as_str();
                &abi
            }
            None => {
                raw_arch = Hex(r.arch);
                &raw_arch
            }
        };
        let result = ResultText(r.response);
        batch.push(&RecordRef {
            time: clock.at(r.time),
            container: self.container.as_deref(),
            policy: self.policy.as_ref().map(|(n, _)| n.as_str()),
            policy_from: self.policy.as_ref().map(|(_, f)| *f),
            pid: r.pid,
            exe: r.exe.as_deref(),
            syscall: r.syscall.map_or(Syscall::Nr(r.nr), Syscall::Name),
            arch,
            args: &r.args,
            decoded: &r.decoded,
            rule: r.rule.map(|i| i + 1),
            action: if r.prompted { &"prompt" } else { action },
            decision: r.verdict.as_str(),
            result: if r.verdict == Verdict::Gone {
                &"none"
            } else {
                &result
            },
            latency_us: r.latency_us,
        });
    }

    /// Count a decision in the agent's metrics, if it keeps any.
    fn count(&self, raw: &Raw) {
        let Some(m) = &self.metrics else {
            return;
        };
        debug_assert_eq!(
            raw.repeats, 0,
            "records are not folded when metrics count them"
        );
        let error = (raw.verdict == Verdict::Emulated
            && matches!(raw.response, Response::Errno(_)))
        .then(|| result_text(raw.response));
        let handler = raw
            .rule
            .and_then(|i| self.decider.policy().rules.get(i))
            .and_then(|r| match &r.action {
                crate::policy::model::Action::Notify(n) => n.handler.as_deref(),
                _ => None,
            })
            .unwrap_or("");
        m.decided(
            self.policy.as_ref().map_or("", |(n, _)| n.as_str()),
            raw.syscall,
            raw.verdict.as_str(),
            handler,
            error,
            raw.latency_us,
            self.who.as_ref(),
        );
    }

    /// [`Inner::deliver`] for a batch of the broker thread: every record to the audit log; to
    /// the live session the batch's totals and its last [`SHOWN_PER_BATCH`] decisions (a
    /// person reads a sample at these rates; the totals stay exact), so that formatting and
    /// folding every decision does not take the CPU the workload and the broker need.
    fn deliver_batch(&self, batch: &mut Vec<Raw>) {
        let clock = Clock::now();
        let mut audit = self
            .audit
            .as_ref()
            .map(|_| Batch::with_capacity(batch.len()));
        match &self.live {
            Some(live) => self.deliver_live(batch, live, audit.as_mut(), clock),
            None => {
                for raw in batch.drain(..) {
                    self.count(&raw);
                    if let Some(b) = &mut audit {
                        self.push_ref(&raw, b, clock);
                    }
                }
            }
        }
        if let (Some(a), Some(b)) = (&self.audit, audit) {
            a.record_batch(b);
        }
    }

    /// [`Inner::deliver_batch`] with a live session: every record to `audit`, to the session
    /// the batch's totals and its last [`SHOWN_PER_BATCH`] decisions.
    fn deliver_live(
        &self,
        batch: &mut Vec<Raw>,
        live: &crate::session::SessionSender,
        mut audit: Option<&mut Batch>,
        clock: Clock,
    ) {
        let show_from = batch.len().saturating_sub(SHOWN_PER_BATCH);
        let mut totals = crate::session::protocol::Totals::default();
        // The batch is one listener's: one container, one policy; its time, the last call's.
        let last_time = batch
            .last()
            .filter(|_| self.container.is_some())
            .map(|r| humantime::format_rfc3339_micros(clock.at(r.last)).to_string());
        let mut shown = Vec::with_capacity(SHOWN_PER_BATCH);
        // Complain decisions by syscall and caller (calls, first, last), exact for the Drift
        // view.
        type Span = (u64, SystemTime, SystemTime);
        let mut complain: std::collections::HashMap<
            String,
            std::collections::HashMap<String, Span>,
        > = std::collections::HashMap::new();
        for (i, raw) in batch.drain(..).enumerate() {
            self.count(&raw);
            let decision = raw.verdict.as_str();
            let unknown;
            let syscall = match raw.syscall {
                Some(s) => s,
                None => {
                    unknown = format!("nr:{}", raw.nr);
                    &unknown
                }
            };
            let pid_caller;
            let caller = match &raw.exe {
                Some(e) => &**e,
                None => {
                    pid_caller = format!("pid {}", raw.pid);
                    &pid_caller
                }
            };
            totals.add_calls(syscall, decision, caller, raw.calls());
            if raw.verdict == Verdict::Complain && self.container.is_some() {
                // Allocates only for a (syscall, caller) pair new to this batch.
                let by = match complain.get_mut(syscall) {
                    Some(by) => by,
                    None => complain.entry(syscall.to_owned()).or_default(),
                };
                match by.get_mut(caller) {
                    Some(c) => {
                        c.0 += raw.calls();
                        c.2 = c.2.max(clock.at(raw.last));
                    }
                    None => {
                        by.insert(
                            caller.to_owned(),
                            (raw.calls(), clock.at(raw.time), clock.at(raw.last)),
                        );
                    }
                }
            }
            if let Some(b) = &mut audit {
                self.push_ref(&raw, b, clock);
            }
            if i >= show_from {
                let repeats = raw.repeats;
                let mut d: crate::session::Decision = self.record_of(raw, clock).into();
                d.repeats = repeats;
                shown.push(d);
            }
        }
        // The container's counts are the batch's by decision.
        if let (Some(c), Some(time)) = (&self.container, last_time) {
            let policy = self.policy.as_ref().map(|(n, _)| n.as_str());
            for (decision, n) in totals.by_action.clone() {
                totals.add_container(c, policy, &decision, n, &time);
            }
            if let Some(t) = totals.by_container.get_mut(c) {
                for (syscall, by) in &complain {
                    for (caller, (n, first, last)) in by {
                        t.add_complain(
                            syscall,
                            caller,
                            *n,
                            &humantime::format_rfc3339_micros(*first).to_string(),
                            &humantime::format_rfc3339_micros(*last).to_string(),
                        );
                    }
                }
            }
        }
        live.send(crate::session::Event::Decisions(Box::new(
            crate::session::DecisionBatch { totals, shown },
        )));
    }

    /// Hand records to the audit log and the live session (never blocks).
    pub(super) fn deliver(&self, batch: &mut Vec<Raw>) {
        for raw in batch.drain(..) {
            self.count(&raw);
            let record = self.record_of(raw, Clock::now());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pid: u32, args: [u64; 6], at: Instant) -> Raw {
        Raw {
            time: at,
            pid,
            exe: Some(Arc::from("/usr/bin/loop")),
            nr: 110,
            arch: 0xc000_003e,
            abi: None,
            syscall: Some("getppid"),
            args,
            decoded: BTreeMap::new(),
            rule: Some(0),
            prompted: false,
            verdict: Verdict::Complain,
            response: Response::Continue,
            latency_us: 3,
            repeats: 0,
            last: at,
        }
    }

    #[test]
    fn the_same_call_again_folds_into_one_record_that_counts_it() {
        let t0 = Instant::now();
        let mut run = call(7, [1, 2, 0, 0, 0, 0], t0);
        let t1 = t0 + Duration::from_micros(5);
        let t2 = t0 + Duration::from_micros(9);
        assert!(run.fold(&call(7, [1, 2, 0, 0, 0, 0], t1)));
        assert!(run.fold(&call(7, [1, 2, 0, 0, 0, 0], t2)));
        assert_eq!((run.calls(), run.repeats), (3, 2));
        // The record stays the first call's; the run's end is the last one's time.
        assert_eq!((run.time, run.last, run.latency_us), (t0, t2, 3));
    }

    fn calls_of(w: &Waiting) -> Vec<(u32, u64)> {
        w.records.iter().map(|r| (r.pid, r.calls())).collect()
    }

    #[test]
    fn threads_that_take_turns_each_fold_into_their_own_record() {
        let t0 = Instant::now();
        let mut w = Waiting::default();
        // Two threads looping on the same call, their notifications interleaved.
        for i in 0..10 {
            let at = t0 + Duration::from_micros(i);
            assert!(w.add(call(7, [0; 6], at), true));
            assert!(w.add(call(8, [0; 6], at), true));
        }
        assert_eq!(calls_of(&w), [(7, 10), (8, 10)]);
        // Thread 7 makes another call, then its first one again: a new record each time (its
        // last record is no longer the first call's), counted apart.
        assert!(w.add(call(7, [1, 0, 0, 0, 0, 0], t0), true));
        assert!(w.add(call(7, [0; 6], t0), true));
        assert!(w.add(call(7, [0; 6], t0), true));
        assert!(w.add(call(8, [0; 6], t0), true));
        assert_eq!(calls_of(&w), [(7, 10), (8, 11), (7, 1), (7, 2)]);
        // A caller sharing thread 8's slot takes it over: 8's next call is a new record.
        let other = 8 + u32::try_from(CALLER_SLOTS).unwrap();
        assert!(w.add(call(other, [0; 6], t0), true));
        assert!(w.add(call(8, [0; 6], t0), true));
        assert_eq!(w.records.len(), 6);
        assert_eq!(w.records.iter().map(Raw::calls).sum::<u64>(), 26);
    }

    #[test]
    fn nothing_folds_when_told_not_to_nor_into_records_already_taken() {
        let t0 = Instant::now();
        let mut w = Waiting::default();
        for _ in 0..3 {
            assert!(w.add(call(7, [0; 6], t0), false));
        }
        assert_eq!(calls_of(&w), [(7, 1), (7, 1), (7, 1)]);
        let taken = w.take();
        assert_eq!(taken.len(), 3);
        // Taken records are the record thread's: the next call starts a new one, even where
        // another caller's record now sits at the old index.
        for pid in [9, 10, 11, 7, 7] {
            assert!(w.add(call(pid, [0; 6], t0), true));
        }
        assert_eq!(calls_of(&w), [(9, 1), (10, 1), (11, 1), (7, 2)]);
    }

    #[test]
    fn a_record_past_the_room_is_refused_but_a_repeat_of_a_waiting_one_is_counted() {
        let t0 = Instant::now();
        let mut w = Waiting::default();
        for pid in 0..u32::try_from(MAX_WAITING).unwrap() {
            assert!(w.add(call(pid, [0; 6], t0), true));
        }
        assert!(!w.add(call(1 << 20, [0; 6], t0), true), "no room left");
        let last = u32::try_from(MAX_WAITING).unwrap() - 1;
        assert!(
            w.add(call(last, [0; 6], t0), true),
            "a repeat takes no room"
        );
        assert_eq!(w.records.len(), MAX_WAITING);
        assert_eq!(w.records.last().map(Raw::calls), Some(2));
    }

    #[test]
    fn a_call_that_differs_in_anything_a_record_shows_is_not_folded() {
        let t0 = Instant::now();
        let same = || call(7, [1, 2, 0, 0, 0, 0], t0);
        type Change = (&'static str, fn(&mut Raw));
        let changes: [Change; 11] = [
            ("another caller", |r| r.pid = 8),
            ("another executable", |r| r.exe = Some(Arc::from("/bin/sh"))),
            ("no executable", |r| r.exe = None),
            ("another syscall", |r| r.nr = 39),
            ("another architecture", |r| r.arch = 0x4000_0003),
            ("a leftover register", |r| r.args[5] = 0xdead),
            ("another rule", |r| r.rule = None),
            ("another verdict", |r| r.verdict = Verdict::Denied),
            ("another answer", |r| {
                r.response = Response::Errno(libc::EPERM)
            }),
            ("a prompt's answer", |r| r.prompted = true),
            ("a handler's details", |r| {
                r.decoded.insert("path".into(), "/dev/null".into());
            }),
        ];
        for (what, change) in changes {
            let mut other = same();
            change(&mut other);
            let mut first = same();
            assert!(!first.fold(&other), "{what} was folded");
            assert_eq!((first.calls(), first.last), (1, t0), "{what}");
            // Nor the other way round.
            assert!(!other.fold(&same()), "{what} (first) was folded");
            assert_eq!(other.calls(), 1, "{what}");
        }
    }
}
