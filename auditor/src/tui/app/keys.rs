//! What keys, the mouse wheel and the selection do to the state.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{App, Choice, Effect, Filter, FleetOrder, LearnFocus, View};

impl App {
    pub(super) fn move_selection(&mut self, delta: isize) {
        let seqs = self.visible_seqs();
        let Some(&last) = seqs.last() else { return };
        let cur = self
            .selected
            .and_then(|s| seqs.binary_search(&s).ok())
            .unwrap_or(seqs.len() - 1);
        let new = cur.saturating_add_signed(delta).min(seqs.len() - 1);
        // Moving down onto the newest row resumes following, like `tail -f` viewers.
        if delta > 0 && seqs[new] == last {
            self.follow = true;
        } else if delta < 0 {
            self.follow = false;
        }
        self.selected = Some(seqs[new]);
        self.settle();
    }

    pub(super) fn select_edge(&mut self, last: bool) {
        let seqs = self.visible_seqs();
        self.selected = if last { seqs.last() } else { seqs.first() }.copied();
        self.follow = last;
        self.settle();
    }

    pub(super) fn scroll(&mut self, delta: isize) {
        match self.view {
            View::Live => self.move_selection(delta),
            View::Fleet => {
                let max = self.fleet_rows().len().saturating_sub(1);
                self.fleet_selected = self.fleet_selected.saturating_add_signed(delta).min(max);
            }
            View::Containers => {
                let max = self.learning_rows().len().saturating_sub(1);
                self.fleet_selected = self.fleet_selected.saturating_add_signed(delta).min(max);
            }
            View::Drift => {
                let max = self.drift_rows().len().saturating_sub(1);
                self.drift_selected = self.drift_selected.saturating_add_signed(delta).min(max);
            }
            View::Summary => {
                let max = self.totals.by_syscall.len().saturating_sub(1);
                self.summary_scroll = self.summary_scroll.saturating_add_signed(delta).min(max);
            }
            View::Learning => match self.learn_focus {
                LearnFocus::Syscalls => {
                    let max = self
                        .observation
                        .as_ref()
                        .map_or(0, |o| o.syscalls.len().saturating_sub(1));
                    self.learn_scroll = self.learn_scroll.saturating_add_signed(delta).min(max);
                }
                LearnFocus::Policy => {
                    let lines = match self.candidate.as_ref().map(|c| &c.text) {
                        Some(Ok(t)) => t.lines().count(),
                        _ => 0,
                    };
                    self.policy_scroll = self
                        .policy_scroll
                        .saturating_add_signed(delta)
                        .min(lines.saturating_sub(1));
                }
            },
        }
    }

    /// Toggle one filter to the selected row's value.
    pub(super) fn toggle_filter(&mut self, which: char) {
        let Some(d) = self.selected_decision().cloned() else {
            self.status = Some("select a decision first".into());
            return;
        };
        match which {
            's' => toggle(&mut self.filter.syscall, d.syscall),
            'a' => toggle(&mut self.filter.action, d.decision),
            _ => toggle(&mut self.filter.pid, d.pid),
        }
        self.settle();
    }

    pub(super) fn on_key(&mut self, k: KeyEvent) -> Effect {
        if k.kind == KeyEventKind::Release {
            return Effect::None;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) && matches!(k.code, KeyCode::Char('c')) {
            self.quit = true;
            return Effect::None;
        }
        if let Some(buf) = &mut self.input {
            match k.code {
                KeyCode::Enter => {
                    self.filter.search = std::mem::take(buf);
                    self.input = None;
                    self.settle();
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    buf.pop();
                }
                KeyCode::Char(c) => buf.push(c),
                _ => {}
            }
            return Effect::None;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            if !matches!(k.code, KeyCode::Char('q')) {
                return Effect::None;
            }
        }
        if self.shown_prompt().is_some() {
            match k.code {
                KeyCode::Char('a') => return self.answer(Choice::AllowOnce),
                KeyCode::Char('A') => return self.answer(Choice::AllowAlways),
                KeyCode::Char('d') => return self.answer(Choice::DenyOnce),
                KeyCode::Char('D') => return self.answer(Choice::DenyAlways),
                KeyCode::Esc => {
                    self.prompt_hidden = true;
                    return Effect::None;
                }
                _ => {}
            }
        }
        let page = isize::try_from(self.page()).unwrap_or(1);
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc => {
                if self.detail {
                    self.detail = false;
                    self.settle();
                } else {
                    self.quit = true;
                }
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Tab | KeyCode::BackTab => {
                let views = self.views();
                let at = views.iter().position(|v| *v == self.view).unwrap_or(0);
                let n = views.len();
                let next = if k.code == KeyCode::Tab {
                    at + 1
                } else {
                    at + n - 1
                };
                self.view = views[next % n];
            }
            KeyCode::Char(c @ '1'..='9') => {
                let i = usize::from(c as u8 - b'1');
                if let Some(v) = self.views().get(i) {
                    self.view = *v;
                }
            }
            KeyCode::Char('o') if self.view == View::Fleet => {
                self.fleet_order = match self.fleet_order {
                    FleetOrder::Busiest => FleetOrder::Rate,
                    FleetOrder::Rate => FleetOrder::Id,
                    FleetOrder::Id => FleetOrder::Busiest,
                };
            }
            KeyCode::Enter if self.view == View::Fleet => {
                // Drill into that container's live decisions.
                let id = self
                    .fleet_rows()
                    .get(self.fleet_selected)
                    .map(|(id, _, _)| (*id).clone());
                if let Some(id) = id {
                    self.filter.container = Some(id);
                    self.filter.search.clear();
                    self.view = View::Live;
                    self.follow = true;
                    self.settle();
                }
            }
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::PageDown => self.scroll(page),
            KeyCode::PageUp => self.scroll(-page),
            KeyCode::Home | KeyCode::Char('g') => match self.view {
                View::Live => self.select_edge(false),
                _ => self.scroll(isize::MIN / 2),
            },
            KeyCode::End | KeyCode::Char('G') => match self.view {
                View::Live => self.select_edge(true),
                _ => self.scroll(isize::MAX / 2),
            },
            KeyCode::Left | KeyCode::Char('h') if self.view == View::Learning => {
                self.learn_focus = LearnFocus::Syscalls
            }
            KeyCode::Right | KeyCode::Char('l') if self.view == View::Learning => {
                self.learn_focus = LearnFocus::Policy
            }
            KeyCode::Char(' ') | KeyCode::Char('f') if self.view == View::Live => {
                self.follow = !self.follow;
                self.settle();
            }
            KeyCode::Enter if self.view == View::Live => {
                self.detail = !self.detail;
                self.settle();
            }
            KeyCode::Char('/') => {
                // The Fleet and Containers views search their containers; the others, decisions.
                if !matches!(self.view, View::Fleet | View::Containers | View::Drift) {
                    self.view = View::Live;
                }
                self.input = Some(self.filter.search.clone());
            }
            KeyCode::Char(c @ ('s' | 'a' | 'p')) if self.view == View::Live => {
                self.toggle_filter(c)
            }
            KeyCode::Char('c') => {
                self.filter = Filter::default();
                self.settle();
            }
            KeyCode::Char(' ') if self.view == View::Drift => {
                let key = self
                    .drift_rows()
                    .get(self.drift_selected)
                    .map(|r| (r.container.clone(), r.syscall.clone(), r.exe.clone()));
                if let Some(k) = key {
                    if !self.drift_marked.remove(&k) {
                        self.drift_marked.insert(k);
                    }
                }
            }
            KeyCode::Char('a') if self.view == View::Drift => return self.allow_drift(),
            KeyCode::Char('w') if self.view == View::Containers => {
                let id = self
                    .learning_rows()
                    .get(self.fleet_selected)
                    .map(|c| c.id.clone());
                match id {
                    Some(container) => {
                        self.status = Some(format!(
                            "asked the daemon for the candidate policy of {}",
                            crate::tui::widgets::container_id(&container, 12)
                        ));
                        return Effect::WriteCandidate { container };
                    }
                    None => self.status = Some("no container to write a policy for".into()),
                }
            }
            KeyCode::Char('w') => return self.write_policy(),
            KeyCode::Char('!') => {
                if self.prompts.is_empty() {
                    self.status = Some("no call waits for a decision".into());
                } else {
                    self.prompt_hidden = false;
                }
            }
            _ => {}
        }
        Effect::None
    }

    pub(super) fn write_policy(&mut self) -> Effect {
        match self.candidate.as_ref().map(|c| &c.text) {
            Some(Ok(text)) => Effect::WritePolicy {
                path: self.policy_out.clone(),
                contents: text.clone(),
            },
            Some(Err(e)) => {
                self.status = Some(format!("no candidate policy to write: {e}"));
                Effect::None
            }
            None => {
                self.status =
                    Some("no candidate policy yet (it forms while a learn session runs)".into());
                Effect::None
            }
        }
    }
}

fn toggle<T: PartialEq>(slot: &mut Option<T>, value: T) {
    if slot.as_ref() == Some(&value) {
        *slot = None;
    } else {
        *slot = Some(value);
    }
}
