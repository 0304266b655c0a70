//! `update`: keys, mouse, session messages and what they do to the state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use crate::session::protocol::{Message, Progress, SessionKind, Status, Totals};
use crate::tui::app::{update, App, Effect, LearnFocus, Link, Msg, View, MAX_ROWS};

use super::*;

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
            time: String::new(),
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

/// The Fleet's `dropped`: a container's decisions since the UI attached that did not reach it
/// one by one — the exact total of the last status, less the total at attach (the snapshot's),
/// less those received; a container that started later counts from 0.
#[test]
fn each_containers_dropped_decisions_are_its_exact_total_less_those_shown() {
    let mut app = App::new("s", PathBuf::from("p.toml"));
    update(&mut app, session(hello(SessionKind::Agent)));
    let mut before = Totals::default();
    before.add_container("a", Some("web"), "allowed", 100, "2026-01-01T00:00:00Z");
    update(
        &mut app,
        session(Message::Snapshot(crate::session::protocol::Snapshot {
            totals: before,
            ..Default::default()
        })),
    );
    for (i, c) in [(0, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "b")] {
        let mut d = decision(i, "getppid", "allowed");
        d.container = Some(c.into());
        update(&mut app, session(Message::Decision(d)));
    }
    let mut now = Totals::default();
    now.add_container("a", Some("web"), "allowed", 110, "2026-01-01T00:00:09Z");
    now.add_container("b", Some("db"), "allowed", 5, "2026-01-01T00:00:09Z");
    update(
        &mut app,
        session(Message::Status(Status {
            totals: now,
            ..Status::default()
        })),
    );
    assert_eq!(app.fleet["a"].dropped, 7);
    assert_eq!(app.fleet["b"].dropped, 3);
}

/// The Drift view's counts are the session's exact complain totals, not the sample of
/// decisions that reached the display: a sampled row gets its exact count, and a kind no
/// sampled decision showed gets a row of its own.
#[test]
fn drift_counts_are_the_exact_complain_totals() {
    let mut app = App::new("s", PathBuf::from("p.toml"));
    update(&mut app, session(hello(SessionKind::Agent)));
    // One sampled decision of sync by busybox (i = 0: busybox).
    let mut d = decision(0, "sync", "complain");
    d.container = Some("a".into());
    d.policy = Some("web".into());
    update(&mut app, session(Message::Decision(d)));
    let mut now = Totals::default();
    now.add_container("a", Some("web"), "complain", 1_250, "2026-01-01T00:00:09Z");
    let c = now.by_container.get_mut("a").expect("container a");
    c.add_complain(
        "sync",
        "/usr/bin/busybox",
        1_000,
        "2025-12-31T23:59:59.000000Z",
        "2026-01-01T00:00:09.000000Z",
    );
    c.add_complain(
        "acct",
        "/opt/app/bin/worker",
        250,
        "2026-01-01T00:00:01.000000Z",
        "2026-01-01T00:00:08.000000Z",
    );
    update(
        &mut app,
        session(Message::Status(Status {
            totals: now,
            ..Status::default()
        })),
    );
    let rows = app.drift_rows();
    let calls = |syscall: &str| {
        rows.iter()
            .find(|r| r.syscall == syscall && r.container == "a")
            .map(|r| (r.calls, r.policy.clone()))
    };
    assert_eq!(calls("sync"), Some((1_000, Some("web".into()))));
    assert_eq!(calls("acct"), Some((250, Some("web".into()))));
    // First and last seen are the exact ones too.
    let acct = rows.iter().find(|r| r.syscall == "acct").expect("acct row");
    assert_eq!(
        (acct.first.as_str(), acct.last.as_str()),
        ("2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:08.000000Z")
    );
    let sync = rows.iter().find(|r| r.syscall == "sync").expect("sync row");
    assert_eq!(sync.first, "2025-12-31T23:59:59.000000Z");
}

/// A container's complain kinds are bounded: past the cap, new callers count as `(other)`.
#[test]
fn complain_totals_are_bounded_per_container() {
    use crate::session::protocol::{ContainerTotals, MAX_COMPLAIN_KINDS, OTHER_CALLER};
    let mut c = ContainerTotals::default();
    for i in 0..MAX_COMPLAIN_KINDS + 10 {
        c.add_complain("sync", &format!("/bin/x{i}"), 1, "t1", "t1");
    }
    c.add_complain("sync", "/bin/x0", 1, "t0", "t2");
    assert_eq!(c.complain["sync"]["/bin/x0"].calls, 2);
    assert_eq!(
        (
            c.complain["sync"]["/bin/x0"].first.as_str(),
            c.complain["sync"]["/bin/x0"].last.as_str()
        ),
        ("t0", "t2")
    );
    assert_eq!(c.complain["sync"][OTHER_CALLER].calls, 10);
    // Merged totals keep the exact counts.
    let mut a = Totals::default();
    a.add_container("c", None, "complain", 3, "t");
    a.by_container
        .get_mut("c")
        .expect("c")
        .add_complain("sync", "/bin/sh", 3, "t", "t");
    let mut b = Totals::default();
    b.merge(&a);
    b.merge(&a);
    assert_eq!(b.by_container["c"].complain["sync"]["/bin/sh"].calls, 6);
}
