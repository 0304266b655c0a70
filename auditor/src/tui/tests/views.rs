//! Views: colours and snapshots of every screen, tiny terminals.

use std::path::PathBuf;

use crossterm::event::KeyCode;
use ratatui::style::Color;

use crate::session::protocol::{Choice, Message, Prompt, PromptClosed, SessionKind, Snapshot};
use crate::tui::app::{update, App, Effect, Msg, View};

use super::*;

#[test]
fn decisions_are_coloured_by_decision() {
    let app = enforce_app(4);
    assert_eq!(cell_fg(&app, 100, 30, "emulated"), Some(Color::Cyan));
    assert_eq!(cell_fg(&app, 100, 30, "denied"), Some(Color::Red));
    assert_eq!(cell_fg(&app, 100, 30, "complain"), Some(Color::Yellow));
}

/// A decision that stands for calls its thread repeated says how many, in the table and in
/// its detail; and they count in the totals.
#[test]
fn a_decision_standing_for_repeated_calls_shows_how_many() {
    let mut app = enforce_app(0);
    let mut d = super::decision(1, "getppid", "complain");
    d.repeats = 59_999;
    update(&mut app, session(Message::Decision(d)));
    update(
        &mut app,
        session(Message::Decision(super::decision(2, "mknodat", "emulated"))),
    );
    assert_eq!(app.totals.decisions, 60_001);
    assert_eq!(app.totals.by_syscall.get("getppid"), Some(&60_000));
    // Complain calls count in the Drift view as calls too.
    assert_eq!(
        app.drift.values().map(|r| r.calls).collect::<Vec<_>>(),
        [60_000]
    );
    let screen = render(&app, 120, 30);
    assert!(screen.contains("getppid ×60000"), "{screen}");
    assert!(!screen.contains("mknodat ×"), "{screen}");
    // The detail of the getppid row.
    update(&mut app, Msg::Resize(120, 30));
    for k in [KeyCode::Up, KeyCode::Up, KeyCode::Down, KeyCode::Down] {
        if app
            .selected_decision()
            .is_some_and(|d| d.syscall == "getppid")
        {
            break;
        }
        update(&mut app, key(k));
    }
    assert_eq!(
        app.selected_decision().map(|d| d.syscall.as_str()),
        Some("getppid")
    );
    update(&mut app, key(KeyCode::Enter));
    let screen = render(&app, 120, 30);
    assert!(
        screen.contains("60000 calls alike: the thread made this call again 59999 times"),
        "{screen}"
    );
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

/// An agent's session opens on its Fleet: one row per container with its policy, counts by
/// decision, rate and sparkline; `o` orders by rate, `/` filters by id or policy; Enter drills
/// into the selected container's live decisions.
#[test]
fn snapshot_agent_fleet_order_search_and_drill_down() {
    let mut app = agent_app(30);
    assert_eq!(app.view, View::Fleet);
    // Three seconds pass; container 1 keeps calling in the last.
    update(&mut app, Msg::Second);
    update(&mut app, Msg::Second);
    for i in 30..36 {
        let mut d = super::decision(i, "getppid", "denied");
        d.container = Some("1f3a9c2e71b04d5c8e9a1".into());
        d.policy = Some("web".into());
        update(&mut app, super::session(Message::Decision(d)));
    }
    update(&mut app, Msg::Second);
    // The session's status: exact totals, and container 0 has ended.
    let mut totals = app.totals.clone();
    totals.container_ended("0f3a9c2e71b04d5c8e9a0");
    // Who runs each, as the agent told when it started serving them (a fourth: no call yet).
    totals.container_started("1f3a9c2e71b04d5c8e9a1", "web", Some("podman/crun"));
    totals.container_started("2f3a9c2e71b04d5c8e9a2", "db", Some("containerd/runc"));
    totals.container_started("3f3a9c2e71b04d5c8e9a3", "web", Some("lxc"));
    update(
        &mut app,
        super::session(Message::Status(crate::session::protocol::Status {
            totals,
            ..Default::default()
        })),
    );
    assert_eq!(
        app.fleet_rows().last().map(|r| r.0.as_str()),
        Some("0f3a9c2e71b04d5c8e9a0")
    );
    snapshot("agent_fleet_80x24", &app, 80, 24);
    update(&mut app, ch('o'));
    update(&mut app, Msg::Resize(120, 20));
    snapshot("agent_fleet_by_rate_120x20", &app, 120, 20);
    update(&mut app, ch('/'));
    update(&mut app, ch('d'));
    update(&mut app, ch('b'));
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        app.view,
        View::Fleet,
        "the Fleet view searches its own rows"
    );
    assert_eq!(app.fleet_rows().len(), 1);
    // Enter: that container's decisions only.
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.view, View::Live);
    assert!(app
        .visible()
        .iter()
        .all(|r| r.decision.container.as_deref() == Some("2f3a9c2e71b04d5c8e9a2")));
    assert_eq!(app.visible().len(), 10);
    update(&mut app, Msg::Resize(80, 24));
    snapshot("agent_fleet_drill_80x24", &app, 80, 24);
}

/// An agent's session names the container of every call, and its policy in the detail;
/// `/` finds a container's calls by its id.
#[test]
fn snapshot_agent_live_with_containers_detail_and_search() {
    let mut app = agent_app(30);
    update(&mut app, ch('2'));
    snapshot("agent_live_80x24", &app, 80, 24);
    update(&mut app, Msg::Resize(120, 30));
    update(&mut app, ch('/'));
    for c in "2f3a9".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    update(&mut app, key(KeyCode::Enter));
    snapshot("agent_live_wide_search_detail", &app, 120, 30);
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
        container: None,
        policy: None,
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

/// A daemon's session opens on its containers: learning progress per container, those that
/// ended greyed below; `/` searches them, `w` asks the daemon for the selected one's
/// candidate policy.
#[test]
fn snapshot_daemon_containers_search_and_write() {
    use crate::session::protocol::{ContainerLearning, Learning};
    let mut app = App::new("test", PathBuf::from("/tmp/p.toml"));
    update(&mut app, super::session(super::hello(SessionKind::Daemon)));
    assert_eq!(app.view, View::Containers);
    assert_eq!(app.views(), &View::DAEMON);
    let row = |i: u32, name: &str, ended: bool, stable_s: u64, new: u64| ContainerLearning {
        id: format!("{i}f3a9c2e71b04d5c8e9a{i}"),
        name: Some(name.into()),
        engine: Some("docker".into()),
        runtime: Some("runc".into()),
        image: Some("nginx:1.25".into()),
        started_at: format!("2026-01-01T00:0{i}:00Z"),
        calls: 1000 * u64::from(i + 1),
        distinct: 40 + u64::from(i),
        failures: u64::from(i) * 3,
        lost: if i == 2 { 5 } else { 0 },
        new_last_minute: new,
        stable_s,
        growth: vec![12, 9, 6, 3, new],
        ended,
        output: format!("/var/lib/auditor/observations/{i}.json"),
    };
    update(
        &mut app,
        super::session(Message::Learning(Learning {
            containers: vec![
                row(0, "web-1", true, 300, 0),
                row(1, "web-2", false, 125, 0),
                row(2, "db", false, 4, 2),
            ],
        })),
    );
    assert_eq!(
        app.learning_rows()
            .iter()
            .map(|c| c.name.as_deref().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["db", "web-2", "web-1"],
        "learning first, newest first; ended last"
    );
    snapshot("daemon_containers_80x24", &app, 80, 24);
    snapshot("daemon_containers_120x12", &app, 120, 12);
    update(&mut app, ch('/'));
    for c in "web".chars() {
        update(&mut app, ch(c));
    }
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.view, View::Containers);
    assert_eq!(app.learning_rows().len(), 2);
    update(&mut app, ch('j'));
    let effect = update(&mut app, ch('w'));
    assert_eq!(
        effect,
        crate::tui::app::Effect::WriteCandidate {
            container: "0f3a9c2e71b04d5c8e9a0".into()
        }
    );
    snapshot("daemon_containers_search_80x24", &app, 80, 24);
}

/// An agent in complain mode: the Drift view lists what each container's policy would refuse
/// by syscall and executable; space marks rows and `a` turns them into allow rules for their
/// policies (grouped per policy file, the calls said in the comment).
#[test]
fn snapshot_agent_drift_mark_and_allow() {
    let mut app = App::new("test", PathBuf::from("/tmp/p.toml"));
    let mut h = super::hello(SessionKind::Agent);
    if let Message::Hello(h) = &mut h {
        h.details
            .insert("policy dir".into(), "/etc/auditor/policies".into());
    }
    update(&mut app, super::session(h));
    for i in 0..9u32 {
        let (syscall, container, policy) = match i % 3 {
            0 => ("sync", "1f3a9c2e71b04d5c8e9a1", "web"),
            1 => ("personality", "1f3a9c2e71b04d5c8e9a1", "web"),
            _ => ("sync", "2f3a9c2e71b04d5c8e9a2", "db"),
        };
        let mut d = super::decision(i, syscall, "complain");
        d.container = Some(container.into());
        d.policy = Some(policy.into());
        update(&mut app, super::session(Message::Decision(d)));
    }
    // An allowed call is no drift.
    let mut d = super::decision(20, "getppid", "allowed");
    d.container = Some("1f3a9c2e71b04d5c8e9a1".into());
    update(&mut app, super::session(Message::Decision(d)));
    update(&mut app, ch('4'));
    assert_eq!(app.view, View::Drift);
    // By container, most calls first; one row per executable.
    assert_eq!(app.drift_rows().len(), 6, "{:?}", app.drift_rows());
    snapshot("agent_drift_100x20", &app, 100, 20);
    update(&mut app, ch(' '));
    for _ in 0..4 {
        update(&mut app, ch('j'));
    }
    update(&mut app, ch(' '));
    snapshot("agent_drift_marked_100x20", &app, 100, 20);
    let Effect::AllowRules { dir, rules } = update(&mut app, ch('a')) else {
        panic!("no rules: {:?}", app.status);
    };
    assert_eq!(dir, PathBuf::from("/etc/auditor/policies"));
    let policies: Vec<&str> = rules.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(policies, ["db", "web"]);
    assert!(rules.iter().all(|(_, r)| r.len() == 1));
    assert!(app.drift_marked.is_empty());
}

/// An agent serving an interactive policy: its prompt names the container and its policy over
/// the Fleet, and the answer carries the agent's prompt id (the container's own range).
#[test]
fn snapshot_agent_prompt_names_the_container() {
    let mut app = super::agent_app(12);
    let mut p = prompt((3 << 32) + 1, "uname", 1);
    p.container = Some("2f3a9c2e71b04d5c8e9a2".into());
    p.policy = Some("web".into());
    update(&mut app, super::session(Message::Prompt(p)));
    snapshot("agent_prompt_fleet_80x24", &app, 80, 24);
    assert_eq!(
        update(&mut app, ch('A')),
        Effect::Answer {
            id: (3 << 32) + 1,
            choice: Choice::AllowAlways
        }
    );
    assert!(app.prompts.is_empty());
}

/// With the session's clock (its status), the Fleet says how long ago each container's last
/// decision was; a UI whose own clock is wrong still shows the right age.
#[test]
fn the_fleet_shows_the_age_of_each_containers_last_decision() {
    let mut app = super::agent_app(6);
    // Decisions 0..6 at 00:00:00-05 (container i % 3); container 2's last is decision 5.
    let mut totals = app.totals.clone();
    totals.container_started("9f3a9c2e71b04d5c8e9a9", "web", Some("runc"));
    update(
        &mut app,
        super::session(Message::Status(crate::session::protocol::Status {
            totals,
            time: "2026-01-01T00:02:05.500Z".into(),
            ..Default::default()
        })),
    );
    let screen = super::render(&app, 80, 24);
    let row = |id: &str| {
        screen
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no row {id}:\n{screen}"))
            .to_owned()
    };
    assert!(row("e9a2").contains("2m ago"), "{screen}");
    assert!(row("e9a0").contains("2m ago"), "{screen}");
    // Served, but no decision yet: no age.
    assert!(!row("e9a9").contains("ago"), "{screen}");
    let totals = app.totals.clone();
    update(
        &mut app,
        super::session(Message::Status(crate::session::protocol::Status {
            totals,
            time: "2026-01-01T00:00:09.000Z".into(),
            ..Default::default()
        })),
    );
    let screen = super::render(&app, 80, 24);
    assert!(
        screen
            .lines()
            .find(|l| l.contains("e9a2"))
            .is_some_and(|l| l.contains("3s ago")),
        "{screen}"
    );
}
