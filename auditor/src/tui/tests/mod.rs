//! Unit tests of `update`, and snapshot tests of every view (ratatui `TestBackend`).
//!
//! Snapshots are the screen's text, one file per case in `src/tui/snapshots/`; run with
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change, and review the diff.

use crate::syscalls::Abi;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{update, App, Msg};
use super::view::view;
use crate::observe::model::{Host, Loss, Observation, Processes, SyscallObservation, Target};
use crate::session::protocol::{Decision, Hello, Message, Progress, SessionKind, Snapshot};

pub(super) fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

pub(super) fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

pub(super) fn session(m: Message) -> Msg {
    Msg::Session(Box::new(m))
}

pub(super) fn hello(kind: SessionKind) -> Message {
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

pub(super) fn decision(i: u32, syscall: &str, verdict: &str) -> Decision {
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
        ..Decision::default()
    }
}

/// An enforce session with `n` decisions, mixed.
pub(super) fn enforce_app(n: u32) -> App {
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

/// An agent session: `n` decisions of three containers under two policies.
pub(super) fn agent_app(n: u32) -> App {
    let mut app = App::new(
        "/run/auditor/agent-77.sock",
        PathBuf::from("candidate-policy.toml"),
    );
    update(&mut app, Msg::Connected);
    update(&mut app, session(hello(SessionKind::Agent)));
    update(&mut app, session(Message::Snapshot(Snapshot::default())));
    for i in 0..n {
        let (s, v) = if i % 2 == 0 {
            ("mknodat", "emulated")
        } else {
            ("getppid", "denied")
        };
        let mut d = decision(i, s, v);
        let c = i % 3;
        d.container = Some(format!("{c}f3a9c2e71b04d5c8e9a{c}"));
        d.policy = Some(if c == 2 { "db" } else { "web" }.into());
        d.policy_from = Some("listenerMetadata".into());
        update(&mut app, session(Message::Decision(d)));
    }
    app
}

pub(super) fn sys(name: &str, count: u64, failures: &[(&str, u64)]) -> SyscallObservation {
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

pub(super) fn observation() -> Observation {
    Observation {
        format: crate::observe::model::FORMAT.into(),
        version: crate::observe::model::VERSION,
        auditor_version: "test".into(),
        host: Host {
            kernel: "6.18".into(),
            arch: "x86_64".into(),
            node: None,
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

pub(super) fn learn_app() -> App {
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

pub(super) fn render(app: &App, w: u16, h: u16) -> String {
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

pub(super) fn cell_fg(app: &App, w: u16, h: u16, text: &str) -> Option<Color> {
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
pub(super) fn snapshot(name: &str, app: &App, w: u16, h: u16) {
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

mod update;
mod views;
