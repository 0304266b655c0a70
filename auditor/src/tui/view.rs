//! Drawing: a pure function of the state onto a frame.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Sparkline, Table, TableState, Wrap,
};
use ratatui::Frame;

use super::app::{App, LearnFocus, Link, View};
use super::widgets::{
    args_text, count, decision_style, head, header_style, latency, selected_style, short_time, tail,
};
use crate::session::protocol::SessionKind;

/// Draw the whole UI.
pub fn view(app: &App, f: &mut Frame) {
    let [title, tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_title(app, f, title);
    draw_tabs(app, f, tabs);
    match app.view {
        View::Fleet => draw_fleet(app, f, body),
        View::Live => draw_live(app, f, body),
        View::Summary => draw_summary(app, f, body),
        View::Learning => draw_learning(app, f, body),
        View::Containers => draw_containers(app, f, body),
        View::Drift => draw_drift(app, f, body),
    }
    draw_status(app, f, status);
    if app.shown_prompt().is_some() {
        draw_prompt(app, f, body);
    }
    if app.help {
        draw_help(f, body);
    }
}

/// The modal for the oldest call waiting for a decision.
fn draw_prompt(app: &App, f: &mut Frame, area: Rect) {
    let Some(p) = app.shown_prompt() else { return };
    let w = area.width.min(76);
    let h = area.height.min(if p.container.is_some() { 12 } else { 11 });
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let inner = usize::from(w.saturating_sub(2));
    let key = |k: &'static str| Span::styled(k, header_style().fg(Color::Cyan));
    let exe = p.exe.as_deref().unwrap_or("(executable unknown)");
    let mut lines = vec![
        Line::from(vec![
            Span::styled(p.syscall.clone(), header_style().fg(Color::Yellow)),
            Span::raw(format!(" ({}) by pid {} ", p.arch, p.pid)),
            Span::raw(tail(
                exe,
                inner.saturating_sub(p.syscall.len() + p.arch.len() + 16),
            )),
        ]),
        Line::raw(head(&format!("args {}", p.args.join(" ")), inner)),
        Line::raw(head(
            &format!(
                "{} call{} held · denied (EPERM) if unanswered by {}",
                p.calls,
                if p.calls == 1 { "" } else { "s" },
                p.deadline.get(11..19).unwrap_or(&p.deadline)
            ),
            inner,
        )),
        Line::styled(
            head(
                "No rule decides it; only the numbers above are judged.",
                inner,
            ),
            Style::new().fg(Color::DarkGray),
        ),
        Line::raw(""),
        Line::from(vec![
            key("a"),
            Span::raw(" allow once    "),
            key("A"),
            Span::raw(" allow always (added to the policy)"),
        ]),
        Line::from(vec![
            key("d"),
            Span::raw(" deny once     "),
            key("D"),
            Span::raw(" deny always (added to the policy)"),
        ]),
        Line::from(vec![key("Esc"), Span::raw(" later (! shows it again)")]),
    ];
    // The agent serves many containers: say whose call it is, and under which policy.
    if let Some(c) = &p.container {
        let policy = p
            .policy
            .as_deref()
            .or_else(|| {
                app.totals
                    .by_container
                    .get(c)
                    .and_then(|t| t.policy.as_deref())
            })
            .map(|p| format!(" · policy {p}"))
            .unwrap_or_default();
        lines.insert(
            0,
            Line::from(vec![
                Span::raw("container "),
                Span::styled(
                    head(c, inner.saturating_sub(10 + policy.len())),
                    header_style(),
                ),
                Span::raw(policy),
            ]),
        );
    }
    lines.truncate(usize::from(h.saturating_sub(2)));
    let title = format!(" Decide · 1 of {} pending ", app.prompts.len());
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(Text::from(lines)).block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(Style::new().fg(Color::Yellow))
                .title(Span::styled(title, header_style().fg(Color::Yellow))),
        ),
        popup,
    );
}

fn draw_title(app: &App, f: &mut Frame, area: Rect) {
    let name = app
        .hello
        .as_ref()
        .map_or(app.source.as_str(), |h| h.name.as_str());
    let (state, style) = match &app.link {
        Link::Connecting => ("connecting".to_owned(), Style::new().fg(Color::Yellow)),
        Link::Live => ("● live".to_owned(), Style::new().fg(Color::Green)),
        Link::Ended(r) => (format!("■ ended: {r}"), Style::new().fg(Color::Yellow)),
        Link::Lost(r) => (format!("✖ lost: {r}"), Style::new().fg(Color::Red)),
    };
    let command = app
        .hello
        .as_ref()
        .map(|h| h.command.join(" "))
        .unwrap_or_default();
    let drops = format!(
        " dropped: session {} · display {} ",
        app.session_dropped, app.client_dropped
    );
    let fixed = 9 + name.chars().count() + 2 + state.chars().count() + drops.len() + 2;
    let room = usize::from(area.width).saturating_sub(fixed);
    let mut spans = vec![
        Span::styled(" auditor ", header_style().fg(Color::Black).bg(Color::Cyan)),
        Span::styled(format!(" {name} "), header_style()),
        Span::styled(state, style),
    ];
    if !command.is_empty() && room > 4 {
        spans.push(Span::raw(format!("  {}", head(&command, room - 2))));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    let drop_style = if app.session_dropped + app.client_dropped > 0 {
        Style::new().fg(Color::Red)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    let w = u16::try_from(drops.chars().count())
        .unwrap_or(area.width)
        .min(area.width);
    let right = Rect {
        x: area.x + area.width - w,
        width: w,
        ..area
    };
    f.render_widget(Paragraph::new(Span::styled(drops, drop_style)), right);
}

fn draw_tabs(app: &App, f: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (i, v) in app.views().iter().enumerate() {
        let style = if *v == app.view {
            header_style().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, v.title()), style));
        spans.push(Span::raw("│"));
    }
    if !app.prompts.is_empty() {
        spans.push(Span::styled(
            format!(" ⚑ {} pending ", app.prompts.len()),
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if app.view == View::Fleet {
        spans.push(Span::styled(
            format!(" by {} ", app.fleet_order.label()),
            Style::new().fg(Color::Green),
        ));
        if !app.filter.search.is_empty() {
            spans.push(Span::styled(
                format!(" filter: /{}", app.filter.search),
                Style::new().fg(Color::Magenta),
            ));
        }
    }
    if app.view == View::Live {
        spans.push(Span::styled(
            if app.follow {
                " following "
            } else {
                " paused "
            },
            Style::new().fg(if app.follow {
                Color::Green
            } else {
                Color::Yellow
            }),
        ));
        if !app.filter.is_empty() {
            spans.push(Span::styled(
                format!(" filter: {}", app.filter.describe()),
                Style::new().fg(Color::Magenta),
            ));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_status(app: &App, f: &mut Frame, area: Rect) {
    let line = if let Some(buf) = &app.input {
        Line::from(vec![
            Span::styled("/", header_style()),
            Span::raw(buf.clone()),
            Span::styled("█", Style::new()),
        ])
    } else if let Some(s) = &app.status {
        Line::from(Span::styled(s.clone(), Style::new().fg(Color::Yellow)))
    } else if let Some(log) = &app.workload_log {
        Line::from(Span::styled(
            format!("workload output: {log}   ? help  q quit"),
            Style::new().fg(Color::DarkGray),
        ))
    } else {
        let hints = match app.view {
            View::Fleet => "?:help q:quit Tab:view j/k:move ⏎:its decisions /:search o:order",
            View::Live => {
                "?:help q:quit Tab:view j/k:move space:follow ⏎:detail /:search s/a/p:filter"
            }
            View::Summary => "?:help q:quit Tab:view j/k:scroll",
            View::Learning => "?:help q:quit Tab:view h/l:pane j/k:scroll w:write policy",
            View::Containers => "?:help q:quit j/k:move /:search w:write its candidate policy",
            View::Drift => {
                "?:help q:quit Tab:view j/k:move space:mark a:allow in its policy /:search"
            }
        };
        Line::from(Span::styled(hints, Style::new().fg(Color::DarkGray)))
    };
    f.render_widget(Paragraph::new(line), area);
}

/// `values` as a sparkline of block characters, scaled to their own maximum.
fn spark_text(values: impl Iterator<Item = u64>, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let v: Vec<u64> = values.collect();
    let v = &v[v.len().saturating_sub(width)..];
    let max = v.iter().copied().max().unwrap_or(0);
    let s: String = v
        .iter()
        .map(|&x| {
            if max == 0 || x == 0 {
                ' '
            } else {
                BARS[((x * 7).div_ceil(max)) as usize % 8]
            }
        })
        .collect();
    format!("{s:>width$}")
}

/// How long ago `last` (RFC 3339) was, by the session's clock `now`: `4s ago`, `3m ago`, …;
/// `None` without either (then the time itself is shown).
fn last_age(now: Option<std::time::SystemTime>, last: &str) -> Option<String> {
    let last = humantime::parse_rfc3339_weak(last).ok()?;
    let secs = now?.duration_since(last).unwrap_or_default().as_secs();
    Some(match secs {
        0 => "now".to_owned(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    })
}

/// The Fleet view: one row per container of an agent's session.
fn draw_fleet(app: &App, f: &mut Frame, area: Rect) {
    let rows = app.fleet_rows();
    if rows.is_empty() {
        let mut lines = vec![
            Line::raw("No container is served yet."),
            Line::raw(
                "Each container appears when its runtime (runc, crun, LXC) hands its filter to the agent.",
            ),
        ];
        if !app.prompts.is_empty() {
            let n = app.prompts.len();
            lines.push(Line::raw(format!(
                "{n} prompt{} waiting for an answer (! shows them).",
                if n == 1 { "" } else { "s" }
            )));
        }
        empty(f, area, "Fleet", lines);
        return;
    }
    // Every column fits the width (a table wider than its area squeezes them all).
    let wide = area.width >= 120;
    // (Wide screens add columns rather than widen these.)
    let (id_w, policy_w, spark_w, last_w): (u16, u16, usize, u16) = (14, 8, 8, 8);
    let mut header = vec!["container"];
    let mut widths = vec![Constraint::Length(id_w)];
    // Who runs it (wide screens; the detail of each call names its policy too).
    let runtime_w: u16 = 16;
    if wide {
        header.push("runtime");
        widths.push(Constraint::Length(runtime_w));
    }
    header.extend(["policy", "calls", "/s", "recent"]);
    widths.extend([
        Constraint::Length(policy_w),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(u16::try_from(spark_w).unwrap_or(8)),
    ]);
    let kinds: &[&str] = if wide {
        &["emulated", "allowed", "denied", "complain"]
    } else {
        &["emulated", "denied"]
    };
    header.extend(kinds);
    widths.extend(kinds.iter().map(|_| Constraint::Length(8)));
    // Its calls since this UI attached that it did not get one by one (display budget).
    if wide {
        header.push("dropped");
        widths.push(Constraint::Length(8));
    }
    header.push("last");
    widths.push(Constraint::Length(last_w));
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let sel = app.fleet_selected.min(rows.len() - 1);
    let offset = sel.saturating_sub(height - 1);
    let table_rows: Vec<TableRow> = rows
        .iter()
        .skip(offset)
        .take(height)
        .map(|(id, r, f)| {
            let rates = f.map(|f| &f.rates);
            let mut cells = vec![Cell::from(super::widgets::container_id(
                id,
                usize::from(id_w),
            ))];
            if wide {
                cells.push(Cell::from(head(
                    r.runtime.as_deref().unwrap_or("?"),
                    usize::from(runtime_w),
                )));
            }
            cells.extend([
                Cell::from(head(
                    r.policy.as_deref().unwrap_or("?"),
                    usize::from(policy_w),
                )),
                Cell::from(count(r.decisions())),
                Cell::from(count(rates.and_then(|r| r.back().copied()).unwrap_or(0))),
                Cell::from(Span::styled(
                    spark_text(rates.into_iter().flatten().copied(), spark_w),
                    Style::new().fg(Color::Cyan),
                )),
            ]);
            for &k in kinds {
                let n = r.by_decision.get(k).copied().unwrap_or(0);
                cells.push(Cell::from(Span::styled(
                    count(n),
                    if n > 0 && !r.ended {
                        decision_style(k)
                    } else {
                        Style::new().fg(Color::DarkGray)
                    },
                )));
            }
            if wide {
                let n = f.map_or(0, |f| f.dropped);
                cells.push(Cell::from(Span::styled(
                    count(n),
                    Style::new().fg(if n > 0 {
                        Color::Yellow
                    } else {
                        Color::DarkGray
                    }),
                )));
            }
            let last = if r.ended {
                "ended".to_owned()
            } else {
                last_age(app.session_time, &r.last)
                    .unwrap_or_else(|| short_time(&r.last).to_owned())
                    .chars()
                    .take(usize::from(last_w))
                    .collect()
            };
            cells.push(Cell::from(last));
            // A container that ended stays, greyed, below those that run.
            let row = TableRow::new(cells);
            if r.ended {
                row.style(Style::new().fg(Color::DarkGray))
            } else {
                row
            }
        })
        .collect();
    let all = app.totals.by_container.len();
    let running = app
        .totals
        .by_container
        .values()
        .filter(|c| !c.ended)
        .count();
    let title = if rows.len() == all {
        format!("Fleet ({running} running, {} ended)", all - running)
    } else {
        format!(
            "Fleet ({} of {all} containers; {running} running)",
            rows.len()
        )
    };
    let table = Table::new(table_rows, widths)
        .header(TableRow::new(header).style(header_style()))
        .block(Block::bordered().title(Span::styled(title, header_style())))
        .row_highlight_style(selected_style());
    let mut state = TableState::default().with_selected(Some(sel - offset));
    f.render_stateful_widget(table, area, &mut state);
}

/// The Drift view: what each container's policy would refuse (complain mode).
fn draw_drift(app: &App, f: &mut Frame, area: Rect) {
    let rows = app.drift_rows();
    let [table_area, note] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    let note_text = "a: allow rules go first in the policy's file, the agent reloads: they decide the next call the filter sends it; what the filter decides in the kernel changes at the container's next start";
    f.render_widget(
        Paragraph::new(note_text)
            .style(Style::new().fg(Color::DarkGray))
            .wrap(Wrap { trim: true }),
        note,
    );
    if rows.is_empty() {
        let lines = vec![
            Line::raw("No call a policy would refuse, so far."),
            Line::raw(
                "With `auditor agent --complain`, a call its policy would refuse is allowed and listed here.",
            ),
        ];
        empty(f, table_area, "Drift", lines);
        return;
    }
    let wide = area.width >= 120;
    let (id_w, exe_w): (u16, u16) = if wide { (16, 28) } else { (12, 16) };
    let header = vec![
        "",
        "container",
        "policy",
        "syscall",
        "executable",
        "calls",
        "first",
        "last",
    ];
    let widths = vec![
        Constraint::Length(1),
        Constraint::Length(id_w),
        Constraint::Length(8),
        Constraint::Length(14),
        Constraint::Length(exe_w),
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Length(12),
    ];
    let height = usize::from(table_area.height.saturating_sub(3)).max(1);
    let sel = app.drift_selected.min(rows.len() - 1);
    let offset = sel.saturating_sub(height - 1);
    let table_rows: Vec<TableRow> = rows
        .iter()
        .skip(offset)
        .take(height)
        .map(|r| {
            let marked =
                app.drift_marked
                    .contains(&(r.container.clone(), r.syscall.clone(), r.exe.clone()));
            TableRow::new(vec![
                Cell::from(if marked { "*" } else { " " }),
                Cell::from(super::widgets::container_id(
                    &r.container,
                    usize::from(id_w),
                )),
                Cell::from(head(r.policy.as_deref().unwrap_or("?"), 8)),
                Cell::from(Span::styled(r.syscall.clone(), decision_style("complain"))),
                Cell::from(tail(&r.exe, usize::from(exe_w))),
                Cell::from(count(r.calls)),
                Cell::from(short_time(&r.first).to_owned()),
                Cell::from(short_time(&r.last).to_owned()),
            ])
        })
        .collect();
    let mut title = format!(
        "Drift: {} call kind(s) the policies would refuse, {} marked",
        rows.len(),
        app.drift_marked.len()
    );
    if app.drift_overflow > 0 {
        title.push_str(&format!(
            " ({} beyond {} not kept)",
            app.drift_overflow,
            super::app::MAX_DRIFT
        ));
    }
    let table = Table::new(table_rows, widths)
        .header(TableRow::new(header).style(header_style()))
        .block(Block::bordered().title(Span::styled(title, header_style())))
        .row_highlight_style(selected_style());
    let mut state = TableState::default().with_selected(Some(sel - offset));
    f.render_stateful_widget(table, table_area, &mut state);
}

/// The Containers view: one row per container a daemon learns.
fn draw_containers(app: &App, f: &mut Frame, area: Rect) {
    let rows = app.learning_rows();
    if rows.is_empty() {
        let lines = vec![
            Line::raw("No container is being learned."),
            Line::raw(
                "A container appears when `auditor hook` registers it (its createRuntime hook).",
            ),
        ];
        empty(f, area, "Containers", lines);
        return;
    }
    let wide = area.width >= 120;
    let (id_w, name_w, spark_w): (u16, u16, usize) = if wide { (14, 24, 12) } else { (12, 14, 6) };
    let mut header = vec![
        "container",
        "name",
        "calls",
        "distinct",
        "+1m",
        "growth",
        "state",
    ];
    let mut widths = vec![
        Constraint::Length(id_w),
        Constraint::Length(name_w),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(u16::try_from(spark_w).unwrap_or(6)),
        Constraint::Length(14),
    ];
    if wide {
        header.extend(["failed", "lost", "engine"]);
        widths.extend([
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(10),
        ]);
    }
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let sel = app.fleet_selected.min(rows.len() - 1);
    let offset = sel.saturating_sub(height - 1);
    let table_rows: Vec<TableRow> = rows
        .iter()
        .skip(offset)
        .take(height)
        .map(|c| {
            let state = if c.ended {
                "ended".to_owned()
            } else if c.new_last_minute == 0 && c.stable_s >= 60 {
                format!("stable {}", super::widgets::age(c.stable_s))
            } else {
                "learning".to_owned()
            };
            let name = c.name.as_deref().or(c.image.as_deref()).unwrap_or("");
            let mut cells = vec![
                Cell::from(super::widgets::container_id(&c.id, usize::from(id_w))),
                Cell::from(head(name, usize::from(name_w))),
                Cell::from(count(c.calls)),
                Cell::from(count(c.distinct)),
                Cell::from(count(c.new_last_minute)),
                Cell::from(Span::styled(
                    spark_text(c.growth.iter().copied(), spark_w),
                    Style::new().fg(Color::Cyan),
                )),
                Cell::from(state),
            ];
            if wide {
                cells.push(Cell::from(count(c.failures)));
                cells.push(Cell::from(Span::styled(
                    count(c.lost),
                    if c.lost > 0 {
                        Style::new().fg(Color::Red)
                    } else {
                        Style::new()
                    },
                )));
                cells.push(Cell::from(
                    c.engine
                        .as_deref()
                        .or(c.runtime.as_deref())
                        .unwrap_or("")
                        .to_owned(),
                ));
            }
            let row = TableRow::new(cells);
            if c.ended {
                row.style(Style::new().fg(Color::DarkGray))
            } else {
                row
            }
        })
        .collect();
    let all = app.learning.as_ref().map_or(0, |l| l.containers.len());
    let learning = app
        .learning
        .iter()
        .flat_map(|l| l.containers.iter())
        .filter(|c| !c.ended)
        .count();
    let title = if rows.len() == all {
        format!("Containers ({learning} learning, {} ended)", all - learning)
    } else {
        format!("Containers ({} of {all}; {learning} learning)", rows.len())
    };
    let table = Table::new(table_rows, widths)
        .header(TableRow::new(header).style(header_style()))
        .block(Block::bordered().title(Span::styled(title, header_style())))
        .row_highlight_style(selected_style());
    let mut state = TableState::default().with_selected(Some(sel - offset));
    f.render_stateful_widget(table, area, &mut state);
}

fn empty(f: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    let p = Paragraph::new(Text::from(lines))
        .block(Block::bordered().title(Span::styled(title.to_owned(), header_style())))
        .wrap(Wrap { trim: false });
    f.render_widget(p, area);
}

fn draw_live(app: &App, f: &mut Frame, area: Rect) {
    let (table_area, detail_area) = if app.detail {
        let [t, d] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length((area.height / 3).max(5)),
        ])
        .areas(area);
        (t, Some(d))
    } else {
        (area, None)
    };
    let visible = app.visible();
    if app.rows.is_empty() {
        let mut lines = vec![Line::raw("No decisions yet.")];
        lines.push(Line::raw(match app.kind() {
            Some(SessionKind::Learn) => "A learn session makes no decisions: press Tab for Summary and Learning.",
            Some(SessionKind::Enforce) => {
                "The broker records the calls the policy marks notify (and refusals with --audit-log)."
            }
            Some(SessionKind::Agent) => {
                "The agent shows each container's calls that its policy marks notify, as they come."
            }
            Some(SessionKind::Daemon) => "A daemon learns: its containers are in the Containers view.",
            None => "Waiting for the session.",
        }));
        empty(f, table_area, "Decisions", lines);
    } else {
        draw_table(app, f, table_area, &visible);
    }
    if let Some(d) = detail_area {
        draw_detail(app, f, d);
    }
}

fn draw_table(app: &App, f: &mut Frame, area: Rect, visible: &[&super::app::Row]) {
    // An agent serves many containers: which one made the call comes first, and the other
    // columns make room for it.
    let containers = app.kind() == Some(SessionKind::Agent);
    let wide = area.width >= if containers { 120 } else { 100 };
    let narrow = area.width < 70;
    let mut header = vec!["time", "pid"];
    let mut widths = vec![Constraint::Length(12), Constraint::Length(7)];
    let container_w: u16 = if area.width >= 140 { 20 } else { 12 };
    if containers {
        header.insert(1, "container");
        widths.insert(1, Constraint::Length(container_w));
    }
    let exe_col = widths.len();
    if !narrow {
        header.push("executable");
        widths.push(Constraint::Min(8));
    }
    header.push("syscall");
    widths.push(Constraint::Length(14));
    if wide {
        header.push("arguments");
        widths.push(Constraint::Min(16));
    }
    // The rule's number gives way to the container where room is short.
    let rule_col = !narrow && (wide || !containers);
    if rule_col {
        header.push("rule");
        widths.push(Constraint::Length(4));
    }
    header.extend(["decision", "latency"]);
    widths.extend([Constraint::Length(9), Constraint::Length(8)]);

    // Borders take two rows, the header one.
    let height = usize::from(area.height.saturating_sub(3)).max(1);
    let sel = app.selected_index(visible);
    let mut offset = app.offset.min(visible.len().saturating_sub(height));
    if let Some(i) = sel {
        if i < offset {
            offset = i;
        } else if i >= offset + height {
            offset = i + 1 - height;
        }
    }
    // The executable gets what the fixed columns leave (cut at the front: the name matters).
    let fixed: u16 = widths
        .iter()
        .map(|c| if let Constraint::Length(n) = c { *n } else { 0 })
        .sum();
    let spacing = u16::try_from(widths.len()).unwrap_or(1).saturating_sub(1);
    let free = usize::from(area.width.saturating_sub(2 + fixed + spacing));
    let exe_w = if wide { (free / 2).min(32) } else { free };
    if !narrow {
        widths[exe_col] = Constraint::Length(u16::try_from(exe_w).unwrap_or(8));
    }
    let rows: Vec<TableRow> = visible
        .iter()
        .skip(offset)
        .take(height)
        .map(|r| {
            let d = &r.decision;
            let mut cells = vec![Cell::from(short_time(&d.time).to_owned())];
            if containers {
                let id = d.container.as_deref().unwrap_or("?");
                cells.push(Cell::from(super::widgets::container_id(
                    id,
                    usize::from(container_w),
                )));
            }
            cells.push(Cell::from(d.pid.to_string()));
            if !narrow {
                cells.push(Cell::from(tail(d.exe.as_deref().unwrap_or("?"), exe_w)));
            }
            cells.push(Cell::from(syscall_text(d)));
            if wide {
                cells.push(Cell::from(args_text(d)));
            }
            if rule_col {
                cells.push(Cell::from(
                    d.rule.map_or_else(|| "dflt".to_owned(), |r| r.to_string()),
                ));
            }
            cells.push(Cell::from(d.decision.clone()));
            cells.push(Cell::from(latency(d.latency_us)));
            TableRow::new(cells).style(decision_style(&d.decision))
        })
        .collect();
    let title = if visible.len() == app.rows.len() {
        format!("Decisions ({})", app.rows.len())
    } else {
        format!("Decisions ({} of {})", visible.len(), app.rows.len())
    };
    let table = Table::new(rows, widths)
        .header(TableRow::new(header).style(header_style()))
        .block(Block::bordered().title(Span::styled(title, header_style())))
        .row_highlight_style(selected_style());
    let mut state = TableState::default().with_selected(sel.map(|i| i - offset));
    f.render_stateful_widget(table, area, &mut state);
}

/// A decision's syscall, with the calls it stands for when its thread repeated it (`×N`).
fn syscall_text(d: &crate::session::Decision) -> String {
    if d.repeats == 0 {
        d.syscall.clone()
    } else {
        format!("{} ×{}", d.syscall, d.calls())
    }
}

fn draw_detail(app: &App, f: &mut Frame, area: Rect) {
    let Some(d) = app.selected_decision() else {
        empty(f, area, "Detail", vec![Line::raw("No decision selected.")]);
        return;
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(d.syscall.clone(), header_style()),
            Span::raw(format!(" ({}) by pid {} ", d.arch, d.pid)),
            Span::raw(
                d.exe
                    .clone()
                    .unwrap_or_else(|| "(executable unknown)".into()),
            ),
        ]),
        Line::from(vec![
            Span::raw("rule "),
            Span::styled(
                d.rule.map_or_else(
                    || "none: the default action".to_owned(),
                    |r| format!("#{r}"),
                ),
                header_style(),
            ),
            Span::raw(format!("  action {}  ", d.action)),
            Span::styled(d.decision.clone(), decision_style(&d.decision)),
            Span::raw(format!(
                "  result {}  latency {}  at {}",
                d.result,
                latency(d.latency_us),
                d.time
            )),
        ]),
        Line::raw(format!("args {}", d.args.join(" "))),
    ];
    if d.repeats > 0 {
        lines.push(Line::raw(format!(
            "{} calls alike: the thread made this call again {} times in a row (time and latency are the first's)",
            d.calls(),
            d.repeats
        )));
    }
    if let Some(c) = &d.container {
        lines.insert(
            1,
            Line::raw(format!(
                "container {c}  policy {} ({})",
                d.policy.as_deref().unwrap_or("?"),
                d.policy_from.as_deref().unwrap_or("?")
            )),
        );
    }
    for (k, v) in &d.decoded {
        lines.push(Line::raw(format!("  {k} = {v}")));
    }
    let p = Paragraph::new(Text::from(lines))
        .block(Block::bordered().title(Span::styled("Detail", header_style())))
        .wrap(Wrap { trim: false });
    f.render_widget(p, area);
}

fn draw_summary(app: &App, f: &mut Frame, area: Rect) {
    let [spark, rest] = Layout::vertical([Constraint::Length(5), Constraint::Min(3)]).areas(area);
    let (unit, now) = match app.kind() {
        Some(SessionKind::Learn) => ("calls/s", app.rates.back().copied().unwrap_or(0)),
        _ => ("decisions/s", app.rates.back().copied().unwrap_or(0)),
    };
    // The newest seconds that fit, right-aligned.
    let width = usize::from(spark.width.saturating_sub(2));
    let data: Vec<u64> = app.rates.iter().rev().take(width).rev().copied().collect();
    let peak = data.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(Span::styled(
                format!("Rate: {now} {unit} now, peak {peak}"),
                header_style(),
            )))
            .data(&data)
            .style(Style::new().fg(Color::Cyan)),
        spark,
    );
    if app.totals.decisions == 0 {
        let mut lines = vec![Line::raw("No decisions yet.")];
        if let Some(p) = &app.progress {
            lines.push(Line::raw(format!(
                "Learning: {} calls, {} distinct syscalls, {} lost, {:.1}s",
                p.calls,
                p.distinct,
                p.lost,
                p.elapsed_ms as f64 / 1000.0
            )));
        }
        empty(f, rest, "Summary", lines);
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(rest);
    let syscalls = app.summary_syscalls();
    let height = usize::from(left.height.saturating_sub(3));
    let rows: Vec<TableRow> = syscalls
        .iter()
        .skip(app.summary_scroll)
        .take(height)
        .map(|(s, n)| TableRow::new(vec![Cell::from((*s).to_owned()), Cell::from(count(*n))]))
        .collect();
    f.render_widget(
        Table::new(rows, [Constraint::Min(10), Constraint::Length(8)])
            .header(TableRow::new(vec!["syscall", "calls"]).style(header_style()))
            .block(Block::bordered().title(Span::styled(
                format!(
                    "By syscall ({}, {} decisions)",
                    syscalls.len(),
                    app.totals.decisions
                ),
                header_style(),
            ))),
        left,
    );
    let actions = app.totals.by_action.len();
    let [by_action, callers] = Layout::vertical([
        Constraint::Length(u16::try_from(actions).unwrap_or(5).clamp(1, 6) + 2),
        Constraint::Min(3),
    ])
    .areas(right);
    let total = app.totals.decisions.max(1);
    let action_lines: Vec<Line> = app
        .totals
        .by_action
        .iter()
        .map(|(a, n)| {
            Line::from(vec![
                Span::styled(format!("{a:<9}"), decision_style(a)),
                Span::raw(format!(
                    " {:>8} {:>5.1}%",
                    count(*n),
                    *n as f64 * 100.0 / total as f64
                )),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(Text::from(action_lines))
            .block(Block::bordered().title(Span::styled("By decision", header_style()))),
        by_action,
    );
    let mut top: Vec<(&String, &u64)> = app.totals.by_caller.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let w = usize::from(callers.width.saturating_sub(12));
    let caller_rows: Vec<TableRow> = top
        .iter()
        .take(usize::from(callers.height.saturating_sub(3)))
        .map(|(c, n)| TableRow::new(vec![Cell::from(tail(c, w)), Cell::from(count(**n))]))
        .collect();
    f.render_widget(
        Table::new(caller_rows, [Constraint::Min(8), Constraint::Length(8)])
            .header(TableRow::new(vec!["caller", "calls"]).style(header_style()))
            .block(Block::bordered().title(Span::styled("Top callers", header_style()))),
        callers,
    );
}

fn failures_text(s: &crate::observe::model::SyscallObservation) -> String {
    let mut v: Vec<(&String, &u64)> = s.failures.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(e, n)| format!("{e}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn draw_learning(app: &App, f: &mut Frame, area: Rect) {
    let [head_area, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let progress = match &app.progress {
        Some(p) => format!(
            "{:.1}s  {} calls  {} syscalls  lost {}",
            p.elapsed_ms as f64 / 1000.0,
            count(p.calls),
            p.distinct,
            p.lost
        ),
        None => "no learning progress yet".to_owned(),
    };
    let cand = match &app.candidate {
        Some(c) if c.text.is_ok() => {
            format!(
                "  │ policy: {} allow, {} notify, {} denied",
                c.allowed, c.notified, c.left_denied
            )
        }
        _ => String::new(),
    };
    let lost_style = if app.progress.as_ref().is_some_and(|p| p.lost > 0) {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(progress, lost_style),
            Span::raw(cand),
        ])),
        head_area,
    );

    let Some(obs) = &app.observation else {
        let mut lines = vec![Line::raw("Nothing learned yet.")];
        lines.push(Line::raw(match app.kind() {
            Some(SessionKind::Daemon) => "A daemon's containers are in the Containers view.",
            Some(SessionKind::Enforce | SessionKind::Agent) => "This session enforces: learning happens in `auditor learn` sessions.",
            _ => "Syscalls appear here as the workload makes them, with the candidate policy they imply.",
        }));
        empty(f, body, "Learning", lines);
        return;
    };
    let split = if body.width >= 70 {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).split(body)
    } else {
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).split(body)
    };
    let (list_area, policy_area) = (split[0], split[1]);
    let focus = |f: LearnFocus| {
        if app.learn_focus == f {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new()
        }
    };
    let learned = app.learned();
    let height = usize::from(list_area.height.saturating_sub(3));
    let rows: Vec<TableRow> = learned
        .iter()
        .skip(app.learn_scroll)
        .take(height)
        .map(|s| {
            let failed = failures_text(s);
            let refused = s.refused_total();
            let mut style = Style::new();
            if refused > 0 {
                style = style.fg(Color::Red);
            } else if !failed.is_empty() {
                style = style.fg(Color::Yellow);
            }
            let name = if s.abi == crate::syscalls::Abi::X86_64 {
                s.name.clone()
            } else {
                format!("{} ({})", s.name, s.abi)
            };
            let mut notes = failed;
            if refused > 0 {
                notes = format!("refused×{refused} {notes}");
            }
            TableRow::new(vec![
                Cell::from(name),
                Cell::from(count(s.count)),
                Cell::from(notes),
            ])
            .style(style)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(18),
                Constraint::Length(7),
                Constraint::Min(6),
            ],
        )
        .header(TableRow::new(vec!["syscall", "calls", "failed"]).style(header_style()))
        .block(
            Block::bordered()
                .border_style(focus(LearnFocus::Syscalls))
                .title(Span::styled(
                    format!("Syscalls ({})", obs.syscalls.len()),
                    header_style(),
                )),
        ),
        list_area,
    );
    let (text, style) = match app.candidate.as_ref().map(|c| &c.text) {
        Some(Ok(t)) => (t.clone(), Style::new()),
        Some(Err(e)) => (
            format!("no candidate policy: {e}"),
            Style::new().fg(Color::Red),
        ),
        None => (String::new(), Style::new()),
    };
    let title = format!("Candidate policy · w writes {}", app.policy_out.display());
    f.render_widget(
        Paragraph::new(text)
            .style(style)
            .wrap(Wrap { trim: false })
            .scroll((u16::try_from(app.policy_scroll).unwrap_or(u16::MAX), 0))
            .block(
                Block::bordered()
                    .border_style(focus(LearnFocus::Policy))
                    .title(Span::styled(title, header_style())),
            ),
        policy_area,
    );
}

const HELP: &[(&str, &str)] = &[
    ("Tab / S-Tab, 1 2 3", "next / previous view, or go to one"),
    ("↑ ↓  j k, wheel", "move the selection / scroll"),
    ("PgUp PgDn", "a page up / down"),
    ("g G  Home End", "first / newest (G follows again)"),
    ("space, f", "follow the newest decision, or pause"),
    ("Enter", "the decision's detail; Fleet: a container's calls"),
    ("/", "search (Enter applies); Fleet: by id or policy"),
    ("o", "Fleet: order by calls, by rate, or by id"),
    (
        "s a p",
        "filter by the selection's syscall / decision / pid",
    ),
    ("c", "clear filters and search"),
    (
        "h l  ← →",
        "Learning: syscall list or candidate policy pane",
    ),
    ("w", "write the candidate policy (atomically)"),
    ("a A d D", "prompt: allow once / always, deny once / always"),
    ("Esc, !", "prompt: put it aside, show it again"),
    ("q, Esc, Ctrl-C", "quit (Esc closes the detail first)"),
];

fn draw_help(f: &mut Frame, area: Rect) {
    let w = area.width.min(72);
    let h = area.height.min(u16::try_from(HELP.len()).unwrap_or(12) + 4);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<20}"), header_style()),
                Span::raw(*v),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "any key closes this help",
        Style::new().fg(Color::DarkGray),
    ));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(Text::from(lines)).block(
            Block::new()
                .borders(Borders::ALL)
                .title(Span::styled("Keys", header_style())),
        ),
        popup,
    );
}

#[cfg(test)]
mod spark_tests {
    #[test]
    fn sparklines_scale_to_their_maximum_and_pad_in_front() {
        assert_eq!(super::spark_text([10, 0, 6].into_iter(), 5), "  █ ▆");
        assert_eq!(super::spark_text([0, 0].into_iter(), 3), "   ");
        assert_eq!(super::spark_text([1, 2, 3, 4].into_iter(), 2), "▇█");
    }
}
