//! The live-session protocol: newline-delimited JSON, one [`Message`] per line.
//!
//! A client that connects first receives a [`Message::Hello`] (who the session is) and a
//! [`Message::Snapshot`] (its state so far), then live messages in the order the session
//! produced them. Lines the client could not take in time are dropped for that client only; a
//! [`Message::Dropped`] line then tells it how many so far. Unknown message types must be
//! ignored by clients (newer sessions may add some); a change of meaning bumps
//! [`PROTOCOL_VERSION`].
//!
//! The other way, a client may send [`ClientMessage`] lines (answers to [`Message::Prompt`]s of
//! `enforce --interactive`). Only root clients are attached at all (peer credentials), and the
//! session records who answered from the same credentials; lines it cannot read are skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observe::model::Observation;

/// Version of this protocol, in [`Hello::version`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Recent decisions a new client gets in its snapshot.
pub const SNAPSHOT_DECISIONS: usize = 1000;

/// What kind of session publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Learn,
    Enforce,
    /// `auditor agent`: the decisions of every container it serves.
    Agent,
    /// `auditor daemon`: the learning of every container registered with it.
    Daemon,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Learn => "learn",
            SessionKind::Enforce => "enforce",
            SessionKind::Agent => "agent",
            SessionKind::Daemon => "daemon",
        }
    }

    pub fn parse(s: &str) -> Option<SessionKind> {
        match s {
            "learn" => Some(SessionKind::Learn),
            "enforce" => Some(SessionKind::Enforce),
            "agent" => Some(SessionKind::Agent),
            "daemon" => Some(SessionKind::Daemon),
            _ => None,
        }
    }
}

impl std::fmt::Display for SessionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    Snapshot(Snapshot),
    /// One broker decision (enforce).
    Decision(Decision),
    /// Learning counters (learn), a few times a second.
    Progress(Progress),
    /// What was learned so far, as an observation (learn), about once a second while it changes.
    Observation(Box<Observation>),
    /// Totals and the session's own drop count, once a second.
    Status(Status),
    /// Lines this client missed because it read too slowly, since it connected.
    Dropped {
        total: u64,
    },
    /// Something worth showing once (workload exited, log reopened, …).
    Notice {
        text: String,
    },
    /// The session is over; the connection closes after this.
    End {
        reason: String,
    },
    /// A call waits for a person's decision (`enforce --interactive`); answer with
    /// [`ClientMessage::Answer`].
    Prompt(Prompt),
    /// A prompt was answered (by someone, or by its timeout) and is gone.
    PromptClosed(PromptClosed),
    /// How far each container's learning is (`auditor daemon`), about once a second.
    Learning(Learning),
}

/// Every container a daemon learns, and those that ended in the last minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Learning {
    pub containers: Vec<ContainerLearning>,
}

/// One container's learning so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerLearning {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// Syscalls made so far.
    pub calls: u64,
    /// Distinct (ABI, syscall) pairs so far.
    pub distinct: u64,
    /// Calls that failed (any error).
    pub failures: u64,
    /// Observations lost (full maps, full ring buffer, …).
    pub lost: u64,
    /// New distinct syscalls in the last minute.
    pub new_last_minute: u64,
    /// Seconds since the last new distinct syscall (since the start if none yet).
    pub stable_s: u64,
    /// Distinct syscalls per ten seconds, oldest first (the last few minutes).
    #[serde(default)]
    pub growth: Vec<u64>,
    /// Its last thread exited: its observation file is written.
    #[serde(default)]
    pub ended: bool,
    /// Its observation file.
    pub output: String,
}

/// What a person may answer to a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// Let these calls run (CONTINUE: only their scalar arguments were shown, nothing they
    /// point to was judged).
    AllowOnce,
    /// Allow, and allow every later call of this syscall (written to the policy).
    AllowAlways,
    /// Fail these calls with EPERM.
    DenyOnce,
    /// Deny, and deny every later call of this syscall (written to the policy).
    DenyAlways,
}

impl Choice {
    pub fn allows(self) -> bool {
        matches!(self, Choice::AllowOnce | Choice::AllowAlways)
    }

    pub fn always(self) -> bool {
        matches!(self, Choice::AllowAlways | Choice::DenyAlways)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::AllowOnce => "allow-once",
            Choice::AllowAlways => "allow-always",
            Choice::DenyOnce => "deny-once",
            Choice::DenyAlways => "deny-always",
        }
    }
}

/// A call (or several identical ones) waiting for a decision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// Names the prompt in answers; unique within the session.
    pub id: u64,
    /// When the first of its calls arrived; RFC 3339, UTC.
    pub time: String,
    /// The calling process (thread group id).
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    pub syscall: String,
    #[serde(default)]
    pub arch: String,
    /// The six argument registers, in hex (values only: pointers are not followed).
    #[serde(default)]
    pub args: Vec<String>,
    /// Identical calls this prompt answers.
    pub calls: u64,
    /// When the timeout denies them; RFC 3339, UTC.
    pub deadline: String,
    /// The container whose call it is (`auditor agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The policy that asks (`auditor agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// A prompt is gone: how, and who decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptClosed {
    pub id: u64,
    /// A [`Choice`] in words, or `timeout`.
    pub answer: String,
    /// Who answered (`uid 0 (root) pid N`, `in-process UI`, `timeout`).
    pub by: String,
}

/// What a client may send to the session: one JSON line each. Only root clients are attached
/// at all (the session checks peer credentials); anything else is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Answer a [`Message::Prompt`].
    Answer { id: u64, choice: Choice },
    /// Write the candidate policy of what container `container` did so far (`auditor
    /// daemon`); the session says where in a notice.
    WriteCandidate { container: String },
    /// Load the policy directory again (`auditor agent`, as SIGHUP does); the session says
    /// what changed in a notice.
    Reload,
}

/// Who the session is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub kind: Option<SessionKind>,
    /// `<kind>-<pid>`, also the socket's name without `.sock`.
    pub name: String,
    /// The auditor process.
    pub pid: u32,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// The workload's command line, when auditor started it.
    #[serde(default)]
    pub command: Vec<String>,
    /// Other facts worth showing (policy file, mode, output file, workload log, …).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

/// One broker decision; the fields of an audit log record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// RFC 3339, microseconds, UTC.
    pub time: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    pub syscall: String,
    #[serde(default)]
    pub arch: String,
    /// The six argument registers, in hex.
    #[serde(default)]
    pub args: Vec<String>,
    /// What the handler decoded from the arguments (path, mode, device, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decoded: BTreeMap<String, String>,
    /// 1-based index of the rule that matched; absent: the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// The policy's action.
    pub action: String,
    /// allowed, denied, emulated, complain, gone.
    pub decision: String,
    /// What the caller got: "continue", "0", "-EPERM", …
    pub result: String,
    pub latency_us: u64,
    /// Further calls this decision stands for: the same call made again by the same thread
    /// as its next notified call, counted into this one (the broker's records without an
    /// audit log). Its time and latency are the first call's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u64,
    /// The container whose call it was (`auditor agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The policy that decided it, and what chose that policy (`auditor agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_from: Option<String>,
}

impl Decision {
    /// The calls this decision stands for: itself and its [`Decision::repeats`].
    pub fn calls(&self) -> u64 {
        self.repeats.saturating_add(1)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Learning counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub elapsed_ms: u64,
    /// Syscalls the workload made so far.
    pub calls: u64,
    /// Distinct (ABI, syscall) pairs seen so far.
    pub distinct: u64,
    /// Observations lost so far (full maps, full ring buffer, …).
    pub lost: u64,
}

/// Decision totals, as folded by the session from every decision it published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub decisions: u64,
    #[serde(default)]
    pub by_syscall: BTreeMap<String, u64>,
    /// By decision (allowed, denied, …).
    #[serde(default)]
    pub by_action: BTreeMap<String, u64>,
    /// By executable (or `pid N` when the executable is unknown).
    #[serde(default)]
    pub by_caller: BTreeMap<String, u64>,
    /// By container (an agent's session), at most [`MAX_CONTAINERS`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_container: BTreeMap<String, ContainerTotals>,
}

/// Containers an agent's totals keep; beyond, those that ended longest ago make room, and when
/// none has ended a new container is not counted per container (its calls are in the totals).
pub const MAX_CONTAINERS: usize = 1024;

/// One container's decisions, as an agent's session counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerTotals {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Who runs it, as the agent could tell (`runc`, `podman/crun`, `lxc`, …; see
    /// `agent::runtime_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// By decision (allowed, denied, emulated, …).
    #[serde(default)]
    pub by_decision: BTreeMap<String, u64>,
    /// The time of its last decision (RFC 3339).
    #[serde(default)]
    pub last: String,
    /// Its listener closed: every process of the container's filter has exited.
    #[serde(default)]
    pub ended: bool,
    /// Complain decisions (calls its policy would refuse), by syscall then caller: exact,
    /// whatever sample of decisions reaches a UI (its Drift view). At most
    /// [`MAX_COMPLAIN_KINDS`] (syscall, caller) pairs; beyond, under the caller `(other)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub complain: BTreeMap<String, BTreeMap<String, Complained>>,
}

/// Complain decisions of one syscall by one caller: how many, the first and the last (RFC 3339).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complained {
    pub calls: u64,
    pub first: String,
    pub last: String,
}

impl Complained {
    /// Add `n` calls between `first` and `last`.
    fn add(&mut self, n: u64, first: &str, last: &str) {
        self.calls += n;
        if self.first.is_empty() || (!first.is_empty() && first < self.first.as_str()) {
            self.first = first.to_owned();
        }
        if last > self.last.as_str() {
            self.last = last.to_owned();
        }
    }
}

/// (syscall, caller) pairs a container's complain counts keep.
pub const MAX_COMPLAIN_KINDS: usize = 1024;

/// The caller complain counts beyond [`MAX_COMPLAIN_KINDS`] are kept under.
pub const OTHER_CALLER: &str = "(other)";

impl ContainerTotals {
    /// Its decisions, all kinds.
    pub fn decisions(&self) -> u64 {
        self.by_decision.values().sum()
    }

    /// Count `n` complain decisions of `syscall` by `caller`, the first at `first` and the
    /// last at `last` (RFC 3339).
    pub fn add_complain(&mut self, syscall: &str, caller: &str, n: u64, first: &str, last: &str) {
        if let Some(c) = self
            .complain
            .get_mut(syscall)
            .and_then(|by| by.get_mut(caller))
        {
            c.add(n, first, last);
            return;
        }
        let kinds: usize = self.complain.values().map(BTreeMap::len).sum();
        let caller = if kinds < MAX_COMPLAIN_KINDS {
            caller
        } else {
            OTHER_CALLER
        };
        let by = match self.complain.get_mut(syscall) {
            Some(by) => by,
            None => self.complain.entry(syscall.to_owned()).or_default(),
        };
        match by.get_mut(caller) {
            Some(c) => c.add(n, first, last),
            None => {
                let mut c = Complained::default();
                c.add(n, first, last);
                by.insert(caller.to_owned(), c);
            }
        }
    }
}

impl Totals {
    /// Count one decision.
    pub fn add(&mut self, d: &Decision) {
        let n = d.calls();
        match &d.exe {
            Some(e) => self.add_calls(&d.syscall, &d.decision, e, n),
            None => self.add_calls(&d.syscall, &d.decision, &caller(d), n),
        }
        if let Some(c) = &d.container {
            self.add_container(c, d.policy.as_deref(), &d.decision, n, &d.time);
            if d.decision == "complain" {
                if let Some(t) = self.by_container.get_mut(c) {
                    t.add_complain(&d.syscall, &caller(d), n, &d.time, &d.time);
                }
            }
        }
    }

    /// Count `n` decisions of kind `decision` for container `id` (under `policy`), the last
    /// at `time`.
    pub fn add_container(
        &mut self,
        id: &str,
        policy: Option<&str>,
        decision: &str,
        n: u64,
        time: &str,
    ) {
        // Every decision of an agent passes here: the id is copied only for a new container.
        if !self.by_container.contains_key(id) {
            if !self.make_room() {
                return;
            }
            self.by_container
                .insert(id.to_owned(), ContainerTotals::default());
        }
        let Some(c) = self.by_container.get_mut(id) else {
            return;
        };
        if c.policy.as_deref() != policy && policy.is_some() {
            c.policy = policy.map(str::to_owned);
        }
        bump(&mut c.by_decision, decision, n);
        if time > c.last.as_str() {
            c.last = time.to_owned();
        }
    }

    /// Room for one more container: whether there is (the one that ended longest ago goes).
    fn make_room(&mut self) -> bool {
        if self.by_container.len() < MAX_CONTAINERS {
            return true;
        }
        let oldest = self
            .by_container
            .iter()
            .filter(|(_, c)| c.ended)
            .min_by(|a, b| a.1.last.cmp(&b.1.last))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                self.by_container.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Container `id`'s listener closed.
    /// Container `id` is served from now on (listed before its first decision).
    pub fn container_started(&mut self, id: &str, policy: &str, runtime: Option<&str>) {
        if !self.by_container.contains_key(id) {
            if !self.make_room() {
                return;
            }
            self.by_container
                .insert(id.to_owned(), ContainerTotals::default());
        }
        if let Some(c) = self.by_container.get_mut(id) {
            c.policy = Some(policy.to_owned());
            c.runtime = runtime.map(str::to_owned);
            // Served again (a handover, a restart): not ended.
            c.ended = false;
        }
    }

    pub fn container_ended(&mut self, id: &str) {
        if let Some(c) = self.by_container.get_mut(id) {
            c.ended = true;
        }
    }

    /// Count one decision given by its parts (`caller`: see [`caller`]).
    pub fn add_parts(&mut self, syscall: &str, decision: &str, caller: &str) {
        self.add_calls(syscall, decision, caller, 1);
    }

    /// [`Totals::add_parts`] for `n` calls alike.
    pub fn add_calls(&mut self, syscall: &str, decision: &str, caller: &str, n: u64) {
        self.decisions += n;
        bump(&mut self.by_syscall, syscall, n);
        bump(&mut self.by_action, decision, n);
        bump(&mut self.by_caller, caller, n);
    }

    /// Add other totals to these.
    pub fn merge(&mut self, other: &Totals) {
        self.decisions += other.decisions;
        for (mine, theirs) in [
            (&mut self.by_syscall, &other.by_syscall),
            (&mut self.by_action, &other.by_action),
            (&mut self.by_caller, &other.by_caller),
        ] {
            for (k, n) in theirs {
                bump(mine, k, *n);
            }
        }
        for (id, c) in &other.by_container {
            for (d, n) in &c.by_decision {
                self.add_container(id, c.policy.as_deref(), d, *n, &c.last);
            }
            if let Some(mine) = self.by_container.get_mut(id) {
                for (syscall, by) in &c.complain {
                    for (caller, n) in by {
                        mine.add_complain(syscall, caller, n.calls, &n.first, &n.last);
                    }
                }
            }
            if c.ended {
                self.container_ended(id);
            }
        }
    }
}

/// Count `key` `n` times, allocating only for a key not seen before (every decision passes
/// here).
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(c) => *c += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

/// How a decision's caller is shown and counted.
pub fn caller(d: &Decision) -> String {
    match &d.exe {
        Some(e) => e.clone(),
        None => format!("pid {}", d.pid),
    }
}

/// The state of a session so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The most recent decisions, oldest first (at most [`SNAPSHOT_DECISIONS`]).
    #[serde(default)]
    pub decisions: Vec<Decision>,
    #[serde(default)]
    pub totals: Totals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Box<Observation>>,
    /// Events the session itself could not publish (its queue was full).
    #[serde(default)]
    pub session_dropped: u64,
    /// Prompts waiting for an answer, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<Prompt>,
    /// The daemon's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<Learning>,
}

/// Once a second.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub totals: Totals,
    /// Events the session could not publish at all (its own queue was full).
    pub session_dropped: u64,
    /// Clients attached.
    pub clients: usize,
    /// When the session sent it (RFC 3339, UTC): what a client measures ages against (a
    /// container's last decision), whatever its own clock says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_tagged_json_line_and_round_trip() -> Result<(), serde_json::Error> {
        let msgs = vec![
            Message::Hello(Hello {
                version: 1,
                kind: Some(SessionKind::Enforce),
                name: "enforce-1".into(),
                ..Default::default()
            }),
            Message::Decision(Decision {
                syscall: "mknodat".into(),
                decision: "emulated".into(),
                ..Default::default()
            }),
            Message::Decision(Decision {
                syscall: "getppid".into(),
                decision: "complain".into(),
                repeats: 41,
                ..Default::default()
            }),
            Message::Dropped { total: 3 },
            Message::Prompt(Prompt {
                id: 7,
                syscall: "getppid".into(),
                calls: 2,
                ..Default::default()
            }),
            Message::PromptClosed(PromptClosed {
                id: 7,
                answer: "allow-always".into(),
                by: "in-process UI".into(),
            }),
            Message::End {
                reason: "workload exited".into(),
            },
        ];
        for m in msgs {
            let line = serde_json::to_string(&m)?;
            assert!(!line.contains('\n'));
            assert!(line.starts_with("{\"type\":"), "{line}");
            assert_eq!(serde_json::from_str::<Message>(&line)?, m);
        }
        Ok(())
    }

    /// A decision standing for one call says nothing of repeats (what older clients read); one
    /// standing for more says how many more, and counts them all.
    #[test]
    fn a_decision_says_its_repeats_only_when_it_has_some() -> Result<(), serde_json::Error> {
        let one = Decision {
            syscall: "getppid".into(),
            decision: "complain".into(),
            ..Default::default()
        };
        assert!(!serde_json::to_string(&one)?.contains("repeats"));
        let run = Decision {
            repeats: 9,
            ..one.clone()
        };
        assert!(serde_json::to_string(&run)?.contains(r#""repeats":9"#));
        let mut t = Totals::default();
        t.add(&one);
        t.add(&run);
        assert_eq!(t.decisions, 11);
        assert_eq!(t.by_action.get("complain"), Some(&11));
        Ok(())
    }

    #[test]
    fn answers_are_tagged_lines_and_unknown_choices_are_refused() -> Result<(), serde_json::Error> {
        let a = ClientMessage::Answer {
            id: 3,
            choice: Choice::DenyAlways,
        };
        let line = serde_json::to_string(&a)?;
        assert_eq!(line, r#"{"type":"answer","id":3,"choice":"deny-always"}"#);
        assert_eq!(serde_json::from_str::<ClientMessage>(&line)?, a);
        assert!(serde_json::from_str::<ClientMessage>(
            r#"{"type":"answer","id":3,"choice":"maybe"}"#
        )
        .is_err());
        Ok(())
    }
}

#[cfg(test)]
mod container_tests {
    use super::*;

    fn d(container: &str, decision: &str, time: &str) -> Decision {
        Decision {
            time: time.into(),
            syscall: "mknodat".into(),
            decision: decision.into(),
            container: Some(container.into()),
            policy: Some("web".into()),
            ..Decision::default()
        }
    }

    #[test]
    fn containers_are_counted_merged_ended_and_bounded() {
        let mut t = Totals::default();
        t.add(&d("a", "emulated", "2026-01-01T00:00:01Z"));
        t.add(&d("a", "denied", "2026-01-01T00:00:02Z"));
        let mut batch = Totals::default();
        // As the broker folds a batch: the call totals, and the container's.
        for _ in 0..3 {
            batch.add_parts("mknodat", "emulated", "/bin/busybox");
        }
        batch.add_container("a", Some("web"), "emulated", 3, "2026-01-01T00:00:03Z");
        t.merge(&batch);
        let a = &t.by_container["a"];
        assert_eq!(a.decisions(), 5);
        assert_eq!(a.by_decision["emulated"], 4);
        assert_eq!(a.last, "2026-01-01T00:00:03Z");
        assert_eq!(a.policy.as_deref(), Some("web"));
        t.container_ended("a");
        assert!(t.by_container["a"].ended);
        // Full: a new container takes the place of the one that ended longest ago; with none
        // ended it is not counted per container.
        for i in 1..MAX_CONTAINERS {
            t.add(&d(&format!("c{i}"), "allowed", "2026-01-01T00:00:04Z"));
        }
        assert_eq!(t.by_container.len(), MAX_CONTAINERS);
        t.add(&d("new", "allowed", "2026-01-01T00:00:05Z"));
        assert!(t.by_container.contains_key("new") && !t.by_container.contains_key("a"));
        t.add(&d("newer", "allowed", "2026-01-01T00:00:06Z"));
        assert!(!t.by_container.contains_key("newer"));
        assert_eq!(t.decisions, 2 + 3 + (MAX_CONTAINERS as u64 - 1) + 2);
    }
}
