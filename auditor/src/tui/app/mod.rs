//! The UI's state and how messages change it. No I/O here: [`update`] is a pure function of
//! the state and a message; what must touch the outside world comes back as an [`Effect`].

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};

use crate::observe::model::Observation;
use crate::session::protocol::{
    Choice, ContainerLearning, ContainerTotals, Decision, Hello, Learning, Message, Progress,
    Prompt, SessionKind, Totals,
};

mod keys;
mod session;

/// Decisions kept for the live table; older ones are evicted (the summary still counts them).
pub const MAX_ROWS: usize = 10_000;
/// Seconds of rate history.
pub const RATE_HISTORY: usize = 120;
/// Rows the mouse wheel moves.
const WHEEL_ROWS: usize = 3;

/// The views, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One row per container (an agent's session).
    Fleet,
    Live,
    Summary,
    Learning,
    /// One row per container a daemon learns.
    Containers,
    /// What an agent's policies would refuse (complain mode), by container, syscall and
    /// executable.
    Drift,
}

impl View {
    /// The views of a learn or enforce session.
    pub const ALL: [View; 3] = [View::Live, View::Summary, View::Learning];
    /// The views of an agent's session: its containers first.
    pub const AGENT: [View; 4] = [View::Fleet, View::Live, View::Summary, View::Drift];
    /// The views of a daemon's session.
    pub const DAEMON: [View; 1] = [View::Containers];

    pub fn title(self) -> &'static str {
        match self {
            View::Fleet => "Fleet",
            View::Live => "Live",
            View::Summary => "Summary",
            View::Learning => "Learning",
            View::Containers => "Containers",
            View::Drift => "Drift",
        }
    }
}

/// Per-second history kept for a container's sparkline.
pub const FLEET_HISTORY: usize = 30;

/// A container's decisions per second, oldest first, from the session's exact totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetRates {
    /// Its total at the last tick.
    pub seen: Option<u64>,
    pub rates: VecDeque<u64>,
    /// Its total when this UI attached (the snapshot's); `None`: it started later (0).
    pub base: Option<u64>,
    /// Its calls this UI received one by one since it attached (a decision and its repeats).
    pub shown: u64,
    /// Its decisions since this UI attached that did not reach it (the session's display
    /// budget, or this client's queue): from the exact totals of the last status.
    pub dropped: u64,
}

/// One row of the Fleet view: a container, its totals (exact: the session counts every
/// decision since the agent started) and its rates.
pub type FleetRow<'a> = (&'a String, &'a ContainerTotals, Option<&'a FleetRates>);

/// How the Fleet view orders its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FleetOrder {
    /// Most decisions first.
    #[default]
    Busiest,
    /// Most decisions in the last second first.
    Rate,
    /// By container id.
    Id,
}

impl FleetOrder {
    pub fn label(self) -> &'static str {
        match self {
            FleetOrder::Busiest => "busiest",
            FleetOrder::Rate => "rate",
            FleetOrder::Id => "id",
        }
    }
}

/// The state of the connection to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    /// The session said it ended, and why.
    Ended(String),
    /// The connection broke.
    Lost(String),
}

/// Which pane of the Learning view the movement keys act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnFocus {
    Syscalls,
    Policy,
}

/// A decision as the table holds it: numbered in arrival order, so that a selection survives
/// eviction and filtering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub seq: u64,
    pub decision: Decision,
}

/// Filters of the live table; all must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub syscall: Option<String>,
    /// A decision (allowed, denied, …).
    pub action: Option<String>,
    pub pid: Option<u32>,
    /// A container (an agent's session).
    pub container: Option<String>,
    /// Case-insensitive substring of syscall, executable, arguments, action or pid.
    pub search: String,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.syscall.is_none()
            && self.action.is_none()
            && self.pid.is_none()
            && self.container.is_none()
            && self.search.is_empty()
    }

    pub fn matches(&self, d: &Decision) -> bool {
        if self.syscall.as_ref().is_some_and(|s| *s != d.syscall)
            || self.action.as_ref().is_some_and(|a| *a != d.decision)
            || self.pid.is_some_and(|p| p != d.pid)
            || self
                .container
                .as_ref()
                .is_some_and(|c| Some(c) != d.container.as_ref())
        {
            return false;
        }
        if self.search.is_empty() {
            return true;
        }
        let needle = self.search.to_lowercase();
        let hay = |s: &str| s.to_lowercase().contains(&needle);
        hay(&d.syscall)
            || hay(&d.decision)
            || hay(&d.action)
            || hay(&d.result)
            || d.exe.as_deref().is_some_and(hay)
            || d.pid.to_string() == needle
            || d.args.iter().any(|a| hay(a))
            || d.decoded.values().any(|v| hay(v))
            || d.container.as_deref().is_some_and(hay)
            || d.policy.as_deref().is_some_and(hay)
    }

    /// One line describing the active filters.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.syscall {
            parts.push(format!("syscall={s}"));
        }
        if let Some(a) = &self.action {
            parts.push(format!("action={a}"));
        }
        if let Some(p) = self.pid {
            parts.push(format!("pid={p}"));
        }
        if let Some(c) = &self.container {
            parts.push(format!(
                "container={}",
                crate::tui::widgets::container_id(c, 12)
            ));
        }
        if !self.search.is_empty() {
            parts.push(format!("/{}", self.search));
        }
        parts.join(" ")
    }
}

/// The candidate policy formed from what was learned so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Native TOML, or the reason there is none.
    pub text: Result<String, String>,
    pub allowed: usize,
    pub notified: usize,
    pub left_denied: usize,
}

/// Everything the UI shows.
#[derive(Clone, Debug)]
pub struct App {
    /// Where the events come from (socket path), for the title.
    pub source: String,
    pub hello: Option<Hello>,
    pub link: Link,
    pub rows: VecDeque<Row>,
    next_seq: u64,
    pub totals: Totals,
    /// Decisions per second (enforce) or calls per second (learn), oldest first.
    pub rates: VecDeque<u64>,
    last_count: Option<u64>,
    pub progress: Option<Progress>,
    pub observation: Option<Box<Observation>>,
    pub candidate: Option<Candidate>,
    /// Lines the session could not deliver to this display.
    pub client_dropped: u64,
    /// Events the session could not publish at all.
    pub session_dropped: u64,
    /// The session's clock at its last status (ages are measured against it).
    pub session_time: Option<std::time::SystemTime>,
    pub view: View,
    /// Keep the newest decision selected.
    pub follow: bool,
    /// The selected decision, by sequence number.
    pub selected: Option<u64>,
    /// First visible row of the live table (index into the filtered rows) when not following.
    pub offset: usize,
    pub detail: bool,
    pub help: bool,
    /// The `/` prompt being edited, if any.
    pub input: Option<String>,
    pub filter: Filter,
    pub summary_scroll: usize,
    pub learn_focus: LearnFocus,
    pub learn_scroll: usize,
    pub policy_scroll: usize,
    /// The last thing worth telling the user (notices, write results).
    pub status: Option<String>,
    /// Where `w` writes the candidate policy.
    pub policy_out: PathBuf,
    /// Where the workload's output goes (in-process UI), shown on screen.
    pub workload_log: Option<String>,
    /// Terminal size, for page moves.
    pub size: (u16, u16),
    pub quit: bool,
    /// Calls waiting for a decision (`enforce --interactive`), oldest first; the first is the
    /// one the prompt shows.
    pub prompts: Vec<Prompt>,
    /// The prompt was put aside with Esc (`!` shows it again; so does a new prompt).
    pub prompt_hidden: bool,
    /// An agent's containers' rates, by id (their totals are in [`App::totals`]).
    pub fleet: BTreeMap<String, FleetRates>,
    pub fleet_order: FleetOrder,
    /// The selected row of the Fleet view (index into [`App::fleet_rows`]) or of the
    /// Containers view ([`App::learning_rows`]).
    pub fleet_selected: usize,
    /// A daemon's containers.
    pub learning: Option<Learning>,
    /// What the policies would refuse (complain decisions), by container, syscall, executable.
    pub drift: BTreeMap<DriftKey, DriftRow>,
    /// Drift rows that did not fit.
    pub drift_overflow: u64,
    /// Drift rows marked with space, for `a`.
    pub drift_marked: std::collections::BTreeSet<DriftKey>,
    pub drift_selected: usize,
}

/// Inputs to [`update`].
#[derive(Clone, Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// A message from the session.
    Session(Box<Message>),
    /// Session messages that were queued together: the selection is settled once for all of
    /// them (a busy session sends tens of thousands of decisions a second).
    SessionBatch(Vec<Message>),
    /// The connection is up.
    Connected,
    /// The connection ended without an `end` message, or failed.
    Disconnected(String),
    /// Once a second: advances the rate history.
    Second,
    /// The outcome of [`Effect::WritePolicy`].
    Written(Result<PathBuf, String>),
    /// Something to tell the user on the status line (e.g. an answer could not be sent).
    Notice(String),
}

/// What the event loop must do after an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Write `contents` to `path` atomically, then send [`Msg::Written`].
    WritePolicy {
        path: PathBuf,
        contents: String,
    },
    /// Send this answer to the session.
    Answer {
        id: u64,
        choice: Choice,
    },
    /// Ask the daemon to write this container's candidate policy.
    WriteCandidate {
        container: String,
    },
    /// Add these allow rules in front of each policy's native file in `dir` (`NAME.toml`),
    /// saying who and when, then ask the agent to reload.
    AllowRules {
        dir: PathBuf,
        rules: Vec<(String, Vec<crate::policy::edit::Allow>)>,
    },
}

/// Calls of one syscall by one executable in one container that its policy would refuse
/// (complain mode), as this display received them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftRow {
    pub container: String,
    pub policy: Option<String>,
    pub syscall: String,
    pub exe: String,
    pub calls: u64,
    pub first: String,
    pub last: String,
}

/// A Drift row's key: container, syscall, executable.
pub type DriftKey = (String, String, String);

/// Drift rows kept; beyond, new ones are not (and the view says so).
pub const MAX_DRIFT: usize = 10_000;

/// Rows of chrome around the live table (title, tabs, header, status, borders).
const LIVE_CHROME: u16 = 6;

impl App {
    pub fn new(source: impl Into<String>, policy_out: PathBuf) -> App {
        App {
            source: source.into(),
            hello: None,
            link: Link::Connecting,
            rows: VecDeque::new(),
            next_seq: 0,
            totals: Totals::default(),
            rates: VecDeque::new(),
            last_count: None,
            progress: None,
            observation: None,
            candidate: None,
            client_dropped: 0,
            session_dropped: 0,
            session_time: None,
            view: View::Live,
            follow: true,
            selected: None,
            offset: 0,
            detail: false,
            help: false,
            input: None,
            filter: Filter::default(),
            summary_scroll: 0,
            learn_focus: LearnFocus::Syscalls,
            learn_scroll: 0,
            policy_scroll: 0,
            status: None,
            policy_out,
            workload_log: None,
            size: (80, 24),
            quit: false,
            prompts: Vec::new(),
            prompt_hidden: false,
            fleet: BTreeMap::new(),
            fleet_order: FleetOrder::default(),
            fleet_selected: 0,
            learning: None,
            drift: BTreeMap::new(),
            drift_overflow: 0,
            drift_marked: Default::default(),
            drift_selected: 0,
        }
    }

    /// Count a complain decision in the Drift view.
    pub(super) fn note_drift(&mut self, d: &Decision) {
        if d.decision != "complain" {
            return;
        }
        let container = d
            .container
            .clone()
            .unwrap_or_else(|| "(this session)".into());
        let exe = d.exe.clone().unwrap_or_else(|| format!("pid {}", d.pid));
        let key = (container.clone(), d.syscall.clone(), exe.clone());
        let calls = d.calls();
        if let Some(r) = self.drift.get_mut(&key) {
            r.calls += calls;
            if r.first.is_empty() {
                r.first = d.time.clone();
            }
            r.last = d.time.clone();
            r.policy.clone_from(&d.policy);
            return;
        }
        if self.drift.len() >= MAX_DRIFT {
            self.drift_overflow += 1;
            return;
        }
        self.drift.insert(
            key,
            DriftRow {
                container,
                policy: d.policy.clone(),
                syscall: d.syscall.clone(),
                exe,
                calls,
                first: d.time.clone(),
                last: d.time.clone(),
            },
        );
    }

    /// The Drift view's counts from the session's exact complain totals (the decisions that
    /// reach this display one by one are a sample under load): a row's calls, first and last
    /// time become the exact ones, and a kind no sampled decision showed gets a row.
    pub(super) fn drift_from_totals(&mut self) {
        for (container, c) in &self.totals.by_container {
            for (syscall, by) in &c.complain {
                for (exe, n) in by {
                    let key = (container.clone(), syscall.clone(), exe.clone());
                    if let Some(r) = self.drift.get_mut(&key) {
                        r.calls = r.calls.max(n.calls);
                        if !n.first.is_empty() && (r.first.is_empty() || n.first < r.first) {
                            r.first.clone_from(&n.first);
                        }
                        if n.last > r.last {
                            r.last.clone_from(&n.last);
                        }
                        continue;
                    }
                    // Past the cap, as for sampled decisions (counted there once each).
                    if self.drift.len() >= MAX_DRIFT {
                        continue;
                    }
                    self.drift.insert(
                        key,
                        DriftRow {
                            container: container.clone(),
                            policy: c.policy.clone(),
                            syscall: syscall.clone(),
                            exe: exe.clone(),
                            calls: n.calls,
                            first: n.first.clone(),
                            last: n.last.clone(),
                        },
                    );
                }
            }
        }
    }

    /// The Drift view's rows: by container, then most calls first; filtered by the search.
    pub fn drift_rows(&self) -> Vec<&DriftRow> {
        let needle = self.filter.search.to_lowercase();
        let mut v: Vec<&DriftRow> = self
            .drift
            .values()
            .filter(|r| {
                needle.is_empty()
                    || [&r.container, &r.syscall, &r.exe]
                        .into_iter()
                        .chain(r.policy.as_ref())
                        .any(|s| s.to_lowercase().contains(&needle))
            })
            .collect();
        v.sort_by(|a, b| {
            a.container
                .cmp(&b.container)
                .then(b.calls.cmp(&a.calls))
                .then_with(|| a.syscall.cmp(&b.syscall))
        });
        v
    }

    /// `a` in the Drift view: allow the marked rows (or the selected one) in their policies.
    pub(super) fn allow_drift(&mut self) -> Effect {
        let rows = self.drift_rows();
        let chosen: Vec<&DriftRow> = if self.drift_marked.is_empty() {
            rows.get(self.drift_selected).copied().into_iter().collect()
        } else {
            rows.into_iter()
                .filter(|r| {
                    self.drift_marked.contains(&(
                        r.container.clone(),
                        r.syscall.clone(),
                        r.exe.clone(),
                    ))
                })
                .collect()
        };
        if chosen.is_empty() {
            self.status = Some("no drift to allow".into());
            return Effect::None;
        }
        let Some(dir) = self
            .hello
            .as_ref()
            .and_then(|h| h.details.get("policy dir"))
            .map(PathBuf::from)
        else {
            self.status =
                Some("this session names no policy directory: add the rules by hand".into());
            return Effect::None;
        };
        let mut by_policy: BTreeMap<String, Vec<crate::policy::edit::Allow>> = BTreeMap::new();
        let mut skipped = 0;
        for r in chosen {
            let Some(p) = &r.policy else {
                skipped += 1;
                continue;
            };
            let rules = by_policy.entry(p.clone()).or_default();
            let comment = format!(
                "{} call(s) by {} in container {}, {} to {}",
                r.calls, r.exe, r.container, r.first, r.last
            );
            match rules.iter_mut().find(|a| a.names == [r.syscall.clone()]) {
                Some(a) => a.comment = format!("{}; {comment}", a.comment),
                None => rules.push(crate::policy::edit::Allow {
                    names: vec![r.syscall.clone()],
                    comment,
                }),
            }
        }
        if by_policy.is_empty() {
            self.status = Some(format!(
                "{skipped} row(s) name no policy: add the rules by hand"
            ));
            return Effect::None;
        }
        self.drift_marked.clear();
        Effect::AllowRules {
            dir,
            rules: by_policy.into_iter().collect(),
        }
    }

    /// The views this session has, in tab order.
    pub fn views(&self) -> &'static [View] {
        match self.kind() {
            Some(SessionKind::Agent) => &View::AGENT,
            Some(SessionKind::Daemon) => &View::DAEMON,
            _ => &View::ALL,
        }
    }

    /// The Containers view's rows: filtered by the search (id, name, image, engine), those
    /// still learning first, the newest first.
    pub fn learning_rows(&self) -> Vec<&ContainerLearning> {
        let needle = self.filter.search.to_lowercase();
        let mut rows: Vec<&ContainerLearning> = self
            .learning
            .iter()
            .flat_map(|l| l.containers.iter())
            .filter(|c| {
                needle.is_empty()
                    || [
                        Some(&c.id),
                        c.name.as_ref(),
                        c.image.as_ref(),
                        c.engine.as_ref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|s| s.to_lowercase().contains(&needle))
            })
            .collect();
        rows.sort_by(|a, b| {
            a.ended
                .cmp(&b.ended)
                .then_with(|| b.started_at.cmp(&a.started_at))
                .then_with(|| a.id.cmp(&b.id))
        });
        rows
    }

    /// The Fleet view's rows, filtered by the search (id or policy) and ordered; containers
    /// that ended come after those that run.
    pub fn fleet_rows(&self) -> Vec<FleetRow<'_>> {
        let needle = self.filter.search.to_lowercase();
        let mut rows: Vec<FleetRow<'_>> = self
            .totals
            .by_container
            .iter()
            .filter(|(id, c)| {
                needle.is_empty()
                    || id.to_lowercase().contains(&needle)
                    || c.policy
                        .as_deref()
                        .is_some_and(|p| p.to_lowercase().contains(&needle))
            })
            .map(|(id, c)| (id, c, self.fleet.get(id)))
            .collect();
        let rate = |r: &FleetRow<'_>| r.2.and_then(|f| f.rates.back().copied()).unwrap_or(0);
        rows.sort_by(|a, b| {
            a.1.ended
                .cmp(&b.1.ended)
                .then_with(|| match self.fleet_order {
                    FleetOrder::Busiest => b.1.decisions().cmp(&a.1.decisions()).then(a.0.cmp(b.0)),
                    FleetOrder::Rate => rate(b).cmp(&rate(a)).then(a.0.cmp(b.0)),
                    FleetOrder::Id => a.0.cmp(b.0),
                })
        });
        rows
    }

    /// The prompt on screen, if any.
    pub fn shown_prompt(&self) -> Option<&Prompt> {
        if self.prompt_hidden {
            None
        } else {
            self.prompts.first()
        }
    }

    fn on_prompt(&mut self, p: Prompt) {
        match self.prompts.iter_mut().find(|q| q.id == p.id) {
            // More identical calls joined it.
            Some(q) => *q = p,
            None => {
                self.prompts.push(p);
                self.prompt_hidden = false;
            }
        }
    }

    /// Answer the prompt on screen.
    fn answer(&mut self, choice: Choice) -> Effect {
        let Some(p) = self.shown_prompt() else {
            return Effect::None;
        };
        let id = p.id;
        self.status = Some(format!(
            "answered {} to {} of pid {} ({} call{})",
            choice.as_str(),
            p.syscall,
            p.pid,
            p.calls,
            if p.calls == 1 { "" } else { "s" }
        ));
        // Taken off at once; the session's prompt_closed for it changes nothing then.
        self.prompts.retain(|q| q.id != id);
        Effect::Answer { id, choice }
    }

    pub fn kind(&self) -> Option<SessionKind> {
        self.hello.as_ref().and_then(|h| h.kind)
    }

    /// The rows that pass the filter, oldest first.
    pub fn visible(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| self.filter.matches(&r.decision))
            .collect()
    }

    /// Index of the selected row among `visible`, if it is there.
    pub fn selected_index(&self, visible: &[&Row]) -> Option<usize> {
        let seq = self.selected?;
        visible.binary_search_by_key(&seq, |r| r.seq).ok()
    }

    /// The selected decision, if visible.
    pub fn selected_decision(&self) -> Option<&Decision> {
        let v = self.visible();
        self.selected_index(&v).map(|i| &v[i].decision)
    }

    /// Rows of the live table that fit on screen.
    pub fn page(&self) -> usize {
        // As the view lays it out: the body is all but three rows, the detail a third of it.
        let detail = if self.detail {
            (self.size.1.saturating_sub(3) / 3).max(5)
        } else {
            0
        };
        usize::from(self.size.1.saturating_sub(LIVE_CHROME + detail)).max(1)
    }

    /// Syscall rows of the learning view, in display order (most calls first).
    pub fn learned(&self) -> Vec<&crate::observe::model::SyscallObservation> {
        let mut v: Vec<_> = self
            .observation
            .iter()
            .flat_map(|o| o.syscalls.iter())
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    }

    /// Syscalls of the summary, most decisions first.
    pub fn summary_syscalls(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<_> = self
            .totals
            .by_syscall
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v
    }

    /// Sequence numbers of the rows that pass the filter, oldest first.
    fn visible_seqs(&self) -> Vec<u64> {
        self.rows
            .iter()
            .filter(|r| self.filter.matches(&r.decision))
            .map(|r| r.seq)
            .collect()
    }

    /// Re-select the newest visible row when following; keep the selection on screen.
    fn settle(&mut self) {
        if self.filter.is_empty() {
            // Every row is visible and sequence numbers are contiguous: no scan of the rows
            // (this runs for every batch of decisions of a busy session).
            let len = self.rows.len();
            let first = self.rows.front().map_or(0, |r| r.seq);
            let newest = self.rows.back().map(|r| r.seq);
            let oldest = self.rows.front().map(|r| r.seq);
            self.settle_with(
                len,
                |sel| {
                    sel.and_then(|s| s.checked_sub(first))
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|&i| i < len)
                },
                newest,
                oldest,
            );
            return;
        }
        let seqs = self.visible_seqs();
        self.settle_with(
            seqs.len(),
            |sel| sel.and_then(|s| seqs.binary_search(&s).ok()),
            seqs.last().copied(),
            seqs.first().copied(),
        );
    }

    /// [`App::settle`] over `len` visible rows, `found` giving a row's index among them.
    fn settle_with(
        &mut self,
        len: usize,
        found: impl Fn(Option<u64>) -> Option<usize>,
        newest: Option<u64>,
        oldest: Option<u64>,
    ) {
        if self.follow {
            self.selected = newest;
        } else if self.selected.is_some() && found(self.selected).is_none() {
            // The selection was evicted or filtered out.
            self.selected = oldest;
        }
        let page = self.page();
        match found(self.selected) {
            Some(i) => {
                if i < self.offset {
                    self.offset = i;
                } else if i >= self.offset + page {
                    self.offset = i + 1 - page;
                }
            }
            None => self.offset = 0,
        }
        // Never leave empty rows below the last one when there are rows above.
        self.offset = self.offset.min(len.saturating_sub(page));
    }
}

/// Apply one message to the state.
pub fn update(app: &mut App, msg: Msg) -> Effect {
    match msg {
        Msg::Key(k) => return app.on_key(k),
        Msg::Mouse(m) => match m.kind {
            MouseEventKind::ScrollDown => app.scroll(WHEEL_ROWS as isize),
            MouseEventKind::ScrollUp => app.scroll(-(WHEEL_ROWS as isize)),
            _ => {}
        },
        Msg::Resize(w, h) => {
            app.size = (w, h);
            app.settle();
        }
        Msg::Session(m) => app.on_session(*m),
        Msg::SessionBatch(v) => app.on_session_batch(v),
        Msg::Connected => {
            if app.link == Link::Connecting {
                app.link = Link::Live;
            }
        }
        Msg::Disconnected(why) => {
            if !matches!(app.link, Link::Ended(_)) {
                app.link = Link::Lost(why);
            }
        }
        Msg::Second => {
            let count = match app.kind() {
                Some(SessionKind::Learn) => app.progress.as_ref().map(|p| p.calls),
                _ => Some(app.totals.decisions),
            };
            if let Some(c) = count {
                let delta = app.last_count.map_or(0, |l| c.saturating_sub(l));
                app.last_count = Some(c);
                if app.rates.len() == RATE_HISTORY {
                    app.rates.pop_front();
                }
                app.rates.push_back(delta);
            }
            for (id, c) in &app.totals.by_container {
                let f = app.fleet.entry(id.clone()).or_default();
                let total = c.decisions();
                let delta = f.seen.map_or(0, |s| total.saturating_sub(s));
                f.seen = Some(total);
                if f.rates.len() == FLEET_HISTORY {
                    f.rates.pop_front();
                }
                f.rates.push_back(delta);
            }
            let totals = &app.totals;
            app.fleet
                .retain(|id, _| totals.by_container.contains_key(id));
        }
        Msg::Notice(text) => app.status = Some(text),
        Msg::Written(r) => {
            app.status = Some(match r {
                Ok(p) => format!("candidate policy written to {}", p.display()),
                Err(e) => format!("cannot write the candidate policy: {e}"),
            })
        }
    }
    Effect::None
}
