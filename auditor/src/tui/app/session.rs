//! How the session's messages (hello, decisions, progress, observations, prompts, end) change the
//! state.

use super::{App, Candidate, Link, Row, View, MAX_ROWS};
use crate::observe::model::Observation;
use crate::policy::generate::{generate, GenerateOptions};
use crate::policy::model::to_native;
use crate::session::protocol::{Decision, Message, SessionKind};

impl App {
    pub(super) fn push_decision(&mut self, d: Decision) {
        if self.rows.len() == MAX_ROWS {
            self.rows.pop_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.rows.push_back(Row { seq, decision: d });
    }

    pub(super) fn on_session(&mut self, m: Message) {
        if self.absorb(m) {
            self.settle();
        }
    }

    pub(super) fn on_session_batch(&mut self, batch: Vec<Message>) {
        let mut moved = false;
        for m in batch {
            moved |= self.absorb(m);
        }
        if moved {
            self.settle();
        }
    }

    /// Take in a session message; whether the rows changed (the selection must be settled).
    pub(super) fn absorb(&mut self, m: Message) -> bool {
        match m {
            Message::Hello(h) => {
                self.link = Link::Live;
                if h.kind == Some(SessionKind::Learn)
                    && self.rows.is_empty()
                    && self.view == View::Live
                {
                    self.view = View::Learning;
                }
                // An agent's session opens on its containers.
                if h.kind == Some(SessionKind::Agent) && self.hello.is_none() {
                    self.view = View::Fleet;
                }
                if h.kind == Some(SessionKind::Daemon) {
                    self.view = View::Containers;
                }
                self.hello = Some(h);
            }
            Message::Snapshot(s) => {
                self.rows.clear();
                self.fleet.clear();
                for d in s.decisions {
                    self.note_drift(&d);
                    self.push_decision(d);
                }
                self.totals = s.totals;
                self.session_dropped = s.session_dropped;
                self.drift_from_totals();
                // Where each container's count stood when this UI attached.
                for (id, c) in &self.totals.by_container {
                    self.fleet.entry(id.clone()).or_default().base = Some(c.decisions());
                }
                if let Some(p) = s.progress {
                    self.progress = Some(p);
                }
                if let Some(o) = s.observation {
                    self.set_observation(o);
                }
                self.prompts = s.prompts;
                if s.learning.is_some() {
                    self.learning = s.learning;
                }
                return true;
            }
            Message::Decision(d) => {
                self.note_drift(&d);
                if let Some(c) = &d.container {
                    self.fleet.entry(c.clone()).or_default().shown += d.calls();
                }
                self.totals.add(&d);
                self.push_decision(d);
                return true;
            }
            Message::Progress(p) => self.progress = Some(p),
            Message::Learning(l) => self.learning = Some(l),
            Message::Observation(o) => self.set_observation(o),
            Message::Status(s) => {
                self.totals = s.totals;
                self.session_dropped = s.session_dropped;
                self.drift_from_totals();
                self.session_time = humantime::parse_rfc3339_weak(&s.time).ok();
                for (id, c) in &self.totals.by_container {
                    let f = self.fleet.entry(id.clone()).or_default();
                    f.dropped = c.decisions().saturating_sub(f.base.unwrap_or(0) + f.shown);
                }
            }
            Message::Dropped { total } => self.client_dropped = total,
            Message::Notice { text } => self.status = Some(text),
            Message::End { reason } => {
                self.link = Link::Ended(reason);
                // Nobody can answer them any more.
                self.prompts.clear();
            }
            Message::Prompt(p) => self.on_prompt(p),
            Message::PromptClosed(c) => {
                if let Some(p) = self.prompts.iter().find(|p| p.id == c.id) {
                    if c.answer == "timeout" {
                        self.status = Some(format!(
                            "prompt for {} of pid {} timed out: denied",
                            p.syscall, p.pid
                        ));
                    }
                }
                self.prompts.retain(|p| p.id != c.id);
            }
        }
        false
    }

    pub(super) fn set_observation(&mut self, o: Box<Observation>) {
        let candidate = match generate(std::slice::from_ref(&*o), &GenerateOptions::default()) {
            Ok(g) => Candidate {
                text: Ok(to_native(&g.policy)),
                allowed: g.report.allowed.len(),
                notified: g.report.notified.len(),
                left_denied: g.report.denied.len(),
            },
            Err(e) => Candidate {
                text: Err(e.to_string()),
                allowed: 0,
                notified: 0,
                left_denied: 0,
            },
        };
        self.candidate = Some(candidate);
        self.observation = Some(o);
    }
}
