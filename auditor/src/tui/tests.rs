//! Unit tests of `update`, and snapshot tests of every view (ratatui `TestBackend`).
//!
//! Snapshots are the screen's text, one file per case in `src/tui/snapshots/`; run with
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, and review the diff.

use crate::syscalls::Abi;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{update, App, Effect, LearnFocus, Link, Msg, View, MAX_ROWS};
use super::view::view;
use crate::observe::model::{Host, Loss, Observation, Processes, SyscallObservation, Target};
use crate::session::protocol::{
    Choice, Decision, Hello, Message, Progress, Prompt, PromptClosed, SessionKind, Snapshot,
    Status, Totals,
};

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

fn session(m: Message) -> Msg {
    Msg::Session(Box::new(m))
}

fn hello(kind: SessionKind) -> Message {
    Message::Hello(Hello {
        version: 1,
        kind: Some(kind),
        name: format!("{kind}-4242"),
        pid: 4242,
        started_at: "2026-01-01T00:00:00Z".into(),
        command: vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "while :; do mknod /tmp/n c 1 3; done".into(),
        ],
        details: BTreeMap::new(),
    })
}

fn decision(i: u32, syscall: &str, verdict: &str) -> Decision {
    let mut decoded = BTreeMap::new();
    if syscall == "mknodat" {
        decoded.insert("path".to_owned(), "/dev/null".to_owned());
        decoded.insert("type".to_owned(), "char 1:3".to_owned());
    }
    Decision {
        time: format!("2026-01-01T00:00:{:02}.{:03}456Z", i % 60, i % 1000),
        pid: 100 + i % 3,
        exe: Some(if i.is_multiple_of(2) {
            "/usr/bin/busybox".into()
        } else {
            "/opt/app/bin/worker".into()
        }),
        syscall: syscall.into(),
        arch: "x86_64".into(),
        args: vec![
            "0xffffff9c".into(),
            "0x7ffd1000".into(),
            "0x2000".into(),
            "0x103".into(),
            "0x0".into(),
            "0x0".into(),
        ],
        decoded,
        rule: if verdict == "denied" { None } else { Some(3) },
        action: if verdict == "denied" {
            "errno(EPERM)".into()
        } else {
            "notify(mknod)".into()
        },
        decision: verdict.into(),
        result: if verdict == "denied" {
            "-EPERM".into()
        } else {
            "0".into()
        },
        latency_us: 7 + u64::from(i),
    }
}

/// An enforce session with `n` decisions, mixed.
fn enforce_app(n: u32) -> App {
    let mut app = App::new(
        "/run/auditor/enforce-4242.sock",
        PathBuf::from("candidate-policy.toml"),
    );
    update(&mut app, Msg::Connected);
    update(&mut app, session(hello(SessionKind::Enforce)));
    update(&mut app, session(Message::Snapshot(Snapshot::default())));
    for i in 0..n {
        let (s, v) = match i % 4 {
            0 => ("mknodat", "emulated"),
            1 => ("getppid", "denied"),
            2 => ("mknodat", "complain"),
            _ => ("ioctl", "allowed"),
        };
        update(&mut app, session(Message::Decision(decision(i, s, v))));
    }
    app
}

fn sys(name: &str, count: u64, failures: &[(&str, u64)]) -> SyscallObservation {
    SyscallObservation {
        name: name.into(),
        abi: Abi::X86_64,
        nr: 0,
        count,
        first_seen_ms: 0.0,
        failures: failures
            .iter()
            .map(|(e, n)| ((*e).to_owned(), *n))
            .collect(),
        restarts: BTreeMap::new(),
        refused: BTreeMap::new(),
        executables: BTreeMap::from([("/usr/bin/busybox".to_owned(), count)]),
        refused_executables: BTreeMap::new(),
        arguments: Vec::new(),
        arguments_overflow: 0,
        argument_read_failures: 0,
    }
}

fn observation() -> Observation {
    Observation {
        format: crate::observe::model::FORMAT.into(),
        version: crate::observe::model::VERSION,
        auditor_version: "test".into(),
        host: Host {
            kernel: "6.18".into(),
            arch: "x86_64".into(),
        },
        target: Target::Command {
            argv: vec!["sh".into()],
        },
        started_at: "2026-01-01T00:00:00Z".into(),
        ended_at: "2026-01-01T00:00:01Z".into(),
        duration_ms: 1000,
        syscalls: vec![
            sys("read", 120, &[]),
            sys("openat", 40, &[("ENOENT", 12)]),
            sys("nanosleep", 30, &[]),
            sys("write", 30, &[]),
            sys("close", 25, &[]),
            sys("execve", 1, &[]),
        ],
        executables: Vec::new(),
        processes: Processes::default(),
        loss: Loss::default(),
    }
}

fn learn_app() -> App {
    let mut app = App::new(
        "/run/auditor/learn-4242.sock",
        PathBuf::from("candidate-policy.toml"),
    );
    update(&mut app, session(hello(SessionKind::Learn)));
    update(&mut app, session(Message::Snapshot(Snapshot::default())));
    update(
        &mut app,
        session(Message::Progress(Progress {
            elapsed_ms: 12_300,
            calls: 246,
            distinct: 6,
            lost: 0,
        })),
    );
    update(
        &mut app,
        session(Message::Observation(Box::new(observation()))),
    );
    app
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = match Terminal::new(TestBackend::new(w, h)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    if let Err(e) = t.draw(|f| view(app, f)) {
        panic!("draw: {e}");
    }
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cell_fg(app: &App, w: u16, h: u16, text: &str) -> Option<Color> {
    let mut t = Terminal::new(TestBackend::new(w, h)).ok()?;
    t.draw(|f| view(app, f)).ok()?;
    let buf = t.backend().buffer();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_owned()).collect();
        if let Some(col) = line.find(text) {
            let x = line[..col].chars().count();
            return Some(buf[(u16::try_from(x).ok()?, y)].fg);
        }
    }
    None
}

/// Compare with (or, with UPDATE_SNAPSHOTS=1, write) `snapshots/<name>.txt`.
fn snapshot(name: &str, app: &App, w: u16, h: u16) {
    let got = render(app, w, h);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/tui/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        if let Err(e) = std::fs::write(&path, &got) {
            panic!("writing {}: {e}", path.display());
        }
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 rewrites it)\n--- want\n{want}--- got\n{got}"
    );
}

// ---- update -------------------------------------------------------------------------------

#[test]
fn hello_of_a_learn_session_opens_the_learning_view() {
    let mut app = App::new("s", PathBuf::from("p.toml"));
    assert_eq!(app.link, Link::Connecting);
    update(&mut app, session(hello(SessionKind::Learn)));
    assert_eq!(app.link, Link::Live);
    assert_eq!(app.view, View::Learning);
    let mut app = enforce_app(0);
    assert_eq!(app.view, View::Live);
    update(
        &mut app,
        session(Message::End {
            reason: "workload exited".into(),
        }),
    );
    assert_eq!(app.link, Link::Ended("workload exited".into()));
    // A closed connection after the end does not turn it into a failure.
    update(&mut app, Msg::Disconnected("closed".into()));
    assert_eq!(app.link, Link::Ended("workload exited".into()));
}

#[test]
fn following_selects_the_newest_decision_and_moving_up_pauses() {
    let mut app = enforce_app(10);
    assert!(app.follow);
    assert_eq!(app.selected_decision().map(|d| d.latency_us), Some(16));
    update(&mut app, ch('k'));
    assert!(!app.follow, "moving up pauses");
    let held = app.selected;
    update(
        &mut app,
        session(Message::Decision(decision(50, "ioctl", "allowed"))),
    );
    assert_eq!(app.selected, held, "a paused table keeps its selection");
    update(&mut app, key(KeyCode::End));
    assert!(app.follow);
    assert_eq!(app.selected_decision().map(|d| d.latency_us), Some(57));
    update(&mut app, ch(' '));
    assert!(!app.follow, "space pauses");
    update(&mut app, ch('g'));
    assert_eq!(app.selected_decision().map(|d| d.latency_us), Some(7));
    // j down to the newest resumes following.
    for _ in 0..20 {
        update(&mut app, ch('j'));
    }
    assert!(app.follow);
}

#[test]
fn pages_and_mouse_wheel_move_by_their_amount_and_the_selection_stays_on_screen() {
    let mut app = enforce_app(200);
    update(&mut app, Msg::Resize(80, 24));
    let page = app.page();
    assert_eq!(page, 18);
    update(&mut app, key(KeyCode::PageUp));
    let v = app.visible();
    let i = app.selected_index(&v).unwrap_or(usize::MAX);
    assert_eq!(i, 199 - page);
    assert!(app.offset <= i && i < app.offset + page);
    update(
        &mut app,
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        }),
    );
    let v = app.visible();
    assert_eq!(app.selected_index(&v), Some(199 - page - 3));
}

#[test]
fn filters_by_the_selected_rows_syscall_action_and_pid_and_clear() {
    let mut app = enforce_app(40);
    // Newest is i=39: ioctl, allowed, pid 100.
    update(&mut app, ch('s'));
    assert_eq!(app.filter.syscall.as_deref(), Some("ioctl"));
    assert!(app.visible().iter().all(|r| r.decision.syscall == "ioctl"));
    assert_eq!(app.visible().len(), 10);
    update(&mut app, ch('s'));
    assert_eq!(app.filter.syscall, None, "s again toggles it off");
    update(&mut app, ch('a'));
    assert_eq!(app.filter.action.as_deref(), Some("allowed"));
    update(&mut app, ch('p'));
    assert_eq!(app.filter.pid, Some(100));
    assert!(app
        .visible()
        .iter()
        .all(|r| r.decision.pid == 100 && r.decision.decision == "allowed"));
    // New decisions that do not match are counted but not shown.
    update(
        &mut app,
        session(Message::Decision(decision(41, "getppid", "denied"))),
    );
    assert_eq!(app.totals.decisions, 41);
    assert!(app
        .visible()
        .iter()
        .all(|r| r.decision.decision == "allowed"));
    update(&mut app, ch('c'));
    assert!(app.filter.is_empty());
    assert_eq!(app.visible().len(), 41);
}

#[test]
fn search_is_typed_after_slash_applied_on_enter_and_cancelled_by_esc() {
    let mut app = enforce_app(12);
    update(&mut app, ch('/'));
    assert_eq!(app.input.as_deref(), Some(""));
    for c in "worker".chars() {
        update(&mut app, ch(c));
    }
    // Keys while typing are text, not commands.
    assert!(!app.quit);
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.filter.search, "worker");
    assert!(app
        .visible()
        .iter()
        .all(|r| r.decision.exe.as_deref() == Some("/opt/app/bin/worker")));
    assert_eq!(app.visible().len(), 6);
    update(&mut app, ch('/'));
    update(&mut app, key(KeyCode::Backspace));
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.filter.search, "worker", "Esc cancels the edit");
    // Searching decoded arguments.
    update(&mut app, ch('/'));
    for _ in 0..6 {
        update(&mut app, key(KeyCode::Backspace));
    }
    for c in "/dev/null".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    assert!(app
        .visible()
        .iter()
        .all(|r| r.decision.syscall == "mknodat"));
}

#[test]
fn tab_cycles_views_help_and_quit_keys() {
    let mut app = enforce_app(1);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.view, View::Summary);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.view, View::Learning);
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.view, View::Live);
    update(&mut app, key(KeyCode::BackTab));
    assert_eq!(app.view, View::Learning);
    update(&mut app, ch('?'));
    assert!(app.help);
    update(&mut app, ch('j'));
    assert!(!app.help, "any key closes the help");
    assert!(!app.quit);
    update(&mut app, ch('1'));
    update(&mut app, key(KeyCode::Enter));
    assert!(app.detail);
    update(&mut app, key(KeyCode::Esc));
    assert!(!app.detail && !app.quit, "Esc closes the detail first");
    update(&mut app, key(KeyCode::Esc));
    assert!(app.quit);
    let mut app = enforce_app(0);
    update(&mut app, ch('q'));
    assert!(app.quit);
    let mut app = enforce_app(0);
    update(
        &mut app,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(app.quit);
}

#[test]
fn status_totals_replace_the_folded_ones_and_drops_are_kept() {
    let mut app = enforce_app(4);
    let totals = Totals {
        decisions: 1000,
        by_action: BTreeMap::from([("denied".to_owned(), 1000)]),
        ..Totals::default()
    };
    update(
        &mut app,
        session(Message::Status(Status {
            totals,
            session_dropped: 5,
            clients: 1,
        })),
    );
    update(&mut app, session(Message::Dropped { total: 17 }));
    assert_eq!(app.totals.decisions, 1000);
    assert_eq!((app.session_dropped, app.client_dropped), (5, 17));
    update(
        &mut app,
        session(Message::Decision(decision(9, "getppid", "denied"))),
    );
    assert_eq!(app.totals.decisions, 1001);
}

#[test]
fn rate_history_counts_per_second() {
    let mut app = enforce_app(3);
    update(&mut app, Msg::Second);
    for i in 0..5 {
        update(
            &mut app,
            session(Message::Decision(decision(i, "ioctl", "allowed"))),
        );
    }
    update(&mut app, Msg::Second);
    assert_eq!(app.rates.iter().copied().collect::<Vec<_>>(), vec![0, 5]);
    let mut app = learn_app();
    update(&mut app, Msg::Second);
    update(
        &mut app,
        session(Message::Progress(Progress {
            elapsed_ms: 13_300,
            calls: 346,
            distinct: 6,
            lost: 0,
        })),
    );
    update(&mut app, Msg::Second);
    assert_eq!(app.rates.back(), Some(&100));
}

#[test]
fn the_table_keeps_a_bounded_number_of_rows() {
    let mut app = enforce_app(0);
    for i in 0..(MAX_ROWS as u32 + 10) {
        update(
            &mut app,
            session(Message::Decision(decision(i, "ioctl", "allowed"))),
        );
    }
    assert_eq!(app.rows.len(), MAX_ROWS);
    assert_eq!(app.totals.decisions, MAX_ROWS as u64 + 10);
    assert!(app.selected_decision().is_some());
}

#[test]
fn the_candidate_policy_forms_from_the_observation_and_w_asks_to_write_it() {
    let mut app = learn_app();
    let c = app
        .candidate
        .clone()
        .unwrap_or_else(|| panic!("no candidate"));
    let text = c.text.clone().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("openat") && text.contains("nanosleep"),
        "{text}"
    );
    assert_eq!(c.allowed, 6);
    match update(&mut app, ch('w')) {
        Effect::WritePolicy { path, contents } => {
            assert_eq!(path, PathBuf::from("candidate-policy.toml"));
            assert_eq!(contents, text);
        }
        e => panic!("expected a write, got {e:?}"),
    }
    update(
        &mut app,
        Msg::Written(Ok(PathBuf::from("candidate-policy.toml"))),
    );
    assert_eq!(
        app.status.as_deref(),
        Some("candidate policy written to candidate-policy.toml")
    );
    // Nothing to write yet: a message, no effect.
    let mut app = enforce_app(0);
    assert_eq!(update(&mut app, ch('w')), Effect::None);
    assert!(app
        .status
        .as_deref()
        .is_some_and(|s| s.starts_with("no candidate policy yet")));
}

#[test]
fn learning_panes_scroll_separately() {
    let mut app = learn_app();
    update(&mut app, ch('j'));
    assert_eq!(app.learn_scroll, 1);
    update(&mut app, ch('l'));
    assert_eq!(app.learn_focus, LearnFocus::Policy);
    update(&mut app, ch('j'));
    update(&mut app, ch('j'));
    assert_eq!((app.learn_scroll, app.policy_scroll), (1, 2));
    update(&mut app, ch('G'));
    assert!(app.policy_scroll > 2);
}

// ---- views --------------------------------------------------------------------------------

#[test]
fn decisions_are_coloured_by_decision() {
    let app = enforce_app(4);
    assert_eq!(cell_fg(&app, 100, 30, "emulated"), Some(Color::Cyan));
    assert_eq!(cell_fg(&app, 100, 30, "denied"), Some(Color::Red));
    assert_eq!(cell_fg(&app, 100, 30, "complain"), Some(Color::Yellow));
}

#[test]
fn snapshot_connecting_empty() {
    let app = App::new(
        "/run/auditor/enforce-4242.sock",
        PathBuf::from("candidate-policy.toml"),
    );
    snapshot("connecting_empty", &app, 80, 24);
}

#[test]
fn snapshot_live_empty() {
    snapshot("live_empty", &enforce_app(0), 80, 24);
}

#[test]
fn snapshot_live_80x24() {
    snapshot("live_80x24", &enforce_app(40), 80, 24);
}

#[test]
fn snapshot_live_wide_with_detail_and_filter() {
    let mut app = enforce_app(40);
    update(&mut app, Msg::Resize(120, 30));
    update(&mut app, ch('k'));
    update(&mut app, ch('a'));
    update(&mut app, key(KeyCode::Enter));
    snapshot("live_wide_detail_filter", &app, 120, 30);
}

#[test]
fn snapshot_live_narrow() {
    let mut app = enforce_app(40);
    update(&mut app, Msg::Resize(60, 16));
    snapshot("live_narrow_60x16", &app, 60, 16);
}

#[test]
fn snapshot_live_search_prompt_and_ended() {
    let mut app = enforce_app(8);
    update(
        &mut app,
        session(Message::End {
            reason: "workload exited with status 0".into(),
        }),
    );
    update(&mut app, ch('/'));
    for c in "mkn".chars() {
        update(&mut app, ch(c));
    }
    snapshot("live_search_ended", &app, 80, 24);
}

#[test]
fn snapshot_summary() {
    let mut app = enforce_app(40);
    for s in 0..30u32 {
        update(&mut app, Msg::Second);
        for i in 0..(s % 7) {
            update(
                &mut app,
                session(Message::Decision(decision(i, "getppid", "denied"))),
            );
        }
    }
    update(&mut app, key(KeyCode::Tab));
    snapshot("summary_80x24", &app, 80, 24);
}

#[test]
fn snapshot_summary_empty() {
    let mut app = enforce_app(0);
    update(&mut app, ch('2'));
    snapshot("summary_empty", &app, 80, 24);
}

#[test]
fn snapshot_learning() {
    snapshot("learning_80x24", &learn_app(), 80, 24);
}

#[test]
fn snapshot_learning_narrow() {
    snapshot("learning_narrow_60x20", &learn_app(), 60, 20);
}

#[test]
fn snapshot_learning_empty() {
    let mut app = App::new(
        "/run/auditor/learn-4242.sock",
        PathBuf::from("candidate-policy.toml"),
    );
    update(&mut app, session(hello(SessionKind::Learn)));
    snapshot("learning_empty", &app, 80, 24);
}

#[test]
fn snapshot_help() {
    let mut app = enforce_app(5);
    update(&mut app, ch('?'));
    snapshot("help_80x24", &app, 80, 24);
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 8)] {
        let mut app = enforce_app(20);
        for v in ['1', '2', '3'] {
            update(&mut app, ch(v));
            update(&mut app, key(KeyCode::Enter));
            let _ = render(&app, w, h);
            update(&mut app, ch('?'));
            let _ = render(&app, w, h);
            update(&mut app, ch('x'));
        }
        let _ = render(&learn_app(), w, h);
    }
}

#[test]
fn a_batch_of_session_messages_ends_in_the_same_state_as_one_by_one() {
    let msgs = |from: u32, n: u32| -> Vec<Message> {
        (from..from + n)
            .map(|i| {
                let s = if i % 3 == 0 { "ioctl" } else { "getppid" };
                Message::Decision(decision(i, s, "allowed"))
            })
            .collect()
    };
    // Following with no filter (the fast path), paused, and filtered; past the row bound.
    for setup in ["follow", "paused", "filtered"] {
        let mut one = enforce_app(20);
        let mut batched = enforce_app(20);
        for app in [&mut one, &mut batched] {
            update(app, Msg::Resize(100, 30));
            match setup {
                "paused" => {
                    update(app, ch('k'));
                    update(app, ch('k'));
                }
                "filtered" => {
                    update(app, ch('/'));
                    for c in "ioctl".chars() {
                        update(app, ch(c));
                    }
                    update(app, key(KeyCode::Enter));
                }
                _ => {}
            }
        }
        // Past the row bound where the selection is settled without a scan; a filter scans
        // all rows for every decision applied one by one (slow in debug builds).
        let n = match setup {
            "filtered" => 300,
            _ => u32::try_from(crate::tui::app::MAX_ROWS).unwrap_or(u32::MAX) + 500,
        };
        for m in msgs(100, n) {
            update(&mut one, session(m));
        }
        update(&mut batched, Msg::SessionBatch(msgs(100, n)));
        assert_eq!(one.selected, batched.selected, "{setup}");
        assert_eq!(one.offset, batched.offset, "{setup}");
        assert_eq!(one.rows.len(), batched.rows.len(), "{setup}");
        assert_eq!(one.totals.decisions, batched.totals.decisions, "{setup}");
        assert_eq!(render(&one, 100, 30), render(&batched, 100, 30), "{setup}");
    }
}

// ---- interactive prompts ------------------------------------------------------------------

fn prompt(id: u64, syscall: &str, calls: u64) -> Prompt {
    Prompt {
        id,
        time: "2026-01-01T00:00:05Z".into(),
        pid: 4711,
        exe: Some("/usr/lib/very/long/path/to/the/workload/bin/worker".into()),
        syscall: syscall.into(),
        arch: "x86_64".into(),
        args: vec![
            "0x0".into(),
            "0x7ffd1000".into(),
            "0x2".into(),
            "0x0".into(),
            "0x0".into(),
            "0x0".into(),
        ],
        calls,
        deadline: "2026-01-01T00:00:35Z".into(),
    }
}

/// An enforce session with two prompts pending.
fn prompt_app() -> App {
    let mut app = enforce_app(6);
    update(&mut app, session(Message::Prompt(prompt(1, "getppid", 1))));
    update(&mut app, session(Message::Prompt(prompt(2, "uname", 1))));
    // A second identical call joined prompt 1.
    update(&mut app, session(Message::Prompt(prompt(1, "getppid", 2))));
    app
}

#[test]
fn prompts_are_shown_oldest_first_and_each_key_answers_the_shown_one() {
    let mut app = prompt_app();
    assert_eq!(app.prompts.len(), 2);
    assert_eq!(app.shown_prompt().map(|p| (p.id, p.calls)), Some((1, 2)));
    for (c, choice) in [('A', Choice::AllowAlways), ('d', Choice::DenyOnce)] {
        let id = app.shown_prompt().map(|p| p.id);
        assert_eq!(
            Some(update(&mut app, ch(c))),
            id.map(|id| Effect::Answer { id, choice })
        );
    }
    assert!(app.prompts.is_empty());
    assert!(app
        .status
        .as_deref()
        .is_some_and(|s| s.contains("deny-once") && s.contains("uname")));
    // With no prompt, `a` is the live view's action filter again.
    assert_eq!(update(&mut app, ch('a')), Effect::None);
    assert!(app.filter.action.is_some());
    let mut app = prompt_app();
    assert_eq!(
        update(&mut app, ch('a')),
        Effect::Answer {
            id: 1,
            choice: Choice::AllowOnce
        }
    );
    assert_eq!(
        update(&mut app, ch('D')),
        Effect::Answer {
            id: 2,
            choice: Choice::DenyAlways
        }
    );
}

#[test]
fn esc_puts_the_prompt_aside_bang_and_new_prompts_bring_it_back() {
    let mut app = prompt_app();
    update(&mut app, key(KeyCode::Esc));
    assert!(!app.quit, "Esc with a prompt open must not quit");
    assert!(app.shown_prompt().is_none());
    // Keys act on the views again.
    assert_eq!(update(&mut app, ch('A')), Effect::None);
    assert_eq!(app.prompts.len(), 2);
    update(&mut app, ch('!'));
    assert_eq!(app.shown_prompt().map(|p| p.id), Some(1));
    update(&mut app, key(KeyCode::Esc));
    update(
        &mut app,
        session(Message::Prompt(prompt(3, "sethostname", 1))),
    );
    assert_eq!(app.shown_prompt().map(|p| p.id), Some(1));
}

#[test]
fn closed_prompts_leave_and_the_snapshot_brings_the_pending_ones() {
    let mut app = prompt_app();
    update(
        &mut app,
        session(Message::PromptClosed(PromptClosed {
            id: 1,
            answer: "timeout".into(),
            by: "timeout after 30s".into(),
        })),
    );
    assert_eq!(app.prompts.len(), 1);
    assert!(app
        .status
        .as_deref()
        .is_some_and(|s| s.contains("getppid") && s.contains("timed out")));
    // A client that attaches later gets the pending prompts in its snapshot.
    let mut late = App::new("s", PathBuf::from("c.toml"));
    update(&mut late, session(hello(SessionKind::Enforce)));
    update(
        &mut late,
        session(Message::Snapshot(Snapshot {
            prompts: vec![prompt(5, "uname", 3)],
            ..Default::default()
        })),
    );
    assert_eq!(late.shown_prompt().map(|p| (p.id, p.calls)), Some((5, 3)));
    // The end of the session takes them away: nobody can answer them.
    update(
        &mut late,
        session(Message::End {
            reason: "workload exited".into(),
        }),
    );
    assert!(late.prompts.is_empty());
}

#[test]
fn the_pending_count_is_visible_in_every_view() {
    let mut app = prompt_app();
    update(&mut app, key(KeyCode::Esc));
    for v in ['1', '2', '3'] {
        update(&mut app, ch(v));
        let screen = render(&app, 80, 24);
        assert!(screen.contains("⚑ 2 pending"), "view {v}:\n{screen}");
    }
}

#[test]
fn snapshot_prompt_80x24() {
    snapshot("prompt_80x24", &prompt_app(), 80, 24);
}

#[test]
fn snapshot_prompt_narrow() {
    snapshot("prompt_narrow_60x16", &prompt_app(), 60, 16);
}

#[test]
fn snapshot_prompt_aside_in_the_summary() {
    let mut app = prompt_app();
    update(&mut app, key(KeyCode::Esc));
    update(&mut app, ch('2'));
    snapshot("prompt_aside_summary_80x24", &app, 80, 24);
}

#[test]
fn tiny_terminals_with_a_prompt_do_not_panic() {
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 8)] {
        let _ = render(&prompt_app(), w, h);
    }
}
