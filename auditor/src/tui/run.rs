//! The event loop: the only part of the UI that does I/O (terminal, socket, files).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_core::Stream;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use super::app::{update, App, Effect, Msg};
use super::view::view;
use crate::session::protocol::ClientMessage;
use crate::session::{Connection, SessionError};

/// At most this many frames a second.
const FPS: u64 = 20;
/// Session messages queued between two frames (beyond, the reader waits and the session
/// counts what this display drops).
const QUEUE: usize = 32 * 1024;
/// Session messages applied in one frame at most.
const DRAIN_MAX: usize = QUEUE;

/// Errors of the UI loop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot use the terminal (auditor tui needs an interactive terminal)")]
    Terminal {
        #[source]
        source: std::io::Error,
    },
    #[error("reading the terminal's events")]
    Events {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// What to show and where.
#[derive(Debug)]
pub struct Options {
    /// The session socket.
    pub socket: PathBuf,
    /// Where `w` writes the candidate policy.
    pub policy_out: PathBuf,
    /// Where the workload's output goes (in-process UI).
    pub workload_log: Option<String>,
    /// Closes the UI when cancelled (in-process UI: the command is ending on an error).
    pub stop: Option<tokio_util::sync::CancellationToken>,
    /// Ctrl-C also interrupts this process (in-process UI: raw mode turns Ctrl-C into a key,
    /// and without the UI it would stop the session).
    pub interrupt_on_ctrl_c: bool,
}

/// The terminal the UI draws on: the controlling terminal, so that the UI works when stdout is
/// a file (in-process UI: the workload's output goes there).
fn open_tty() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

/// Put the terminal back: leave the alternate screen, show the cursor, cooked mode.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    if let Ok(mut tty) = open_tty() {
        let _ = crossterm::execute!(
            tty,
            DisableMouseCapture,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
        let _ = tty.flush();
    }
}

/// Restores the terminal when dropped, including while unwinding.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Restore the terminal before a panic message is printed (the message would otherwise land
/// in the alternate screen, in raw mode, and be lost).
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        super::stderr::restore_stderr();
        previous(info);
    }));
}

/// The terminal's output: one frame goes out in one write (ratatui flushes after each draw),
/// so the terminal never shows half a frame and a remote session gets one packet, not hundreds.
type Tty = std::io::BufWriter<std::fs::File>;

/// Large enough for a full frame of a big terminal with colours.
const FRAME_BUFFER: usize = 256 * 1024;

fn setup() -> Result<(TerminalGuard, Terminal<CrosstermBackend<Tty>>), RunError> {
    let err = |source| RunError::Terminal { source };
    let mut tty = open_tty().map_err(err)?;
    enable_raw_mode().map_err(err)?;
    let guard = TerminalGuard;
    crossterm::execute!(tty, EnterAlternateScreen, EnableMouseCapture).map_err(err)?;
    let tty = std::io::BufWriter::with_capacity(FRAME_BUFFER, tty);
    let mut terminal = Terminal::new(CrosstermBackend::new(tty)).map_err(err)?;
    terminal.hide_cursor().map_err(err)?;
    terminal.clear().map_err(err)?;
    Ok((guard, terminal))
}

/// Read the session into the UI's queue until it closes.
async fn read_session(mut conn: Connection, tx: mpsc::Sender<Msg>) {
    let _ = tx.send(Msg::Connected).await;
    loop {
        match conn.next().await {
            Ok(Some(m)) => {
                if tx.send(Msg::Session(Box::new(m))).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = tx
                    .send(Msg::Disconnected(
                        "the session closed the connection".into(),
                    ))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Msg::Disconnected(format!("{e}"))).await;
                return;
            }
        }
    }
}

/// Send the UI's answers to the session, in order.
async fn write_answers(
    mut writer: crate::session::client::Writer,
    mut rx: mpsc::Receiver<ClientMessage>,
    tx: mpsc::Sender<Msg>,
) {
    while let Some(m) = rx.recv().await {
        if let Err(e) = writer.send(&m).await {
            let _ = tx
                .send(Msg::Notice(format!("cannot send the answer: {e}")))
                .await;
            return;
        }
    }
}

/// Answers waiting to be written to the session.
const ANSWERS: usize = 64;

fn apply(app: &mut App, msg: Msg, answers: &mpsc::Sender<ClientMessage>) -> Option<Msg> {
    match update(app, msg) {
        Effect::None => None,
        Effect::Answer { id, choice } => answers
            .try_send(ClientMessage::Answer { id, choice })
            .err()
            .map(|_| Msg::Notice("cannot send the answer: the session connection is gone".into())),
        Effect::WriteCandidate { container } => answers
            .try_send(ClientMessage::WriteCandidate { container })
            .err()
            .map(|_| Msg::Notice("cannot send the request: the session connection is gone".into())),
        Effect::AllowRules { dir, rules } => {
            let said = allow_rules(&dir, &rules);
            let reload = answers.try_send(ClientMessage::Reload).is_ok();
            Some(Msg::Notice(if reload {
                format!("{said}; the agent reloads its policies")
            } else {
                format!(
                    "{said}; cannot ask the agent to reload (the session is gone): send it SIGHUP"
                )
            }))
        }
        Effect::WritePolicy { path, contents } => Some(Msg::Written(
            crate::fsutil::write_atomic(&path, contents.as_bytes())
                .map(|()| path)
                .map_err(|e| e.to_string()),
        )),
    }
}

/// Add the Drift view's allow rules in front of each policy's native file in `dir`, each
/// comment saying who and when; what was done, in words.
fn allow_rules(
    dir: &std::path::Path,
    rules: &[(String, Vec<crate::policy::edit::Allow>)],
) -> String {
    let uid = nix::unistd::geteuid();
    let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut said = Vec::new();
    for (policy, allows) in rules {
        let path = dir.join(format!("{policy}.toml"));
        let allows: Vec<_> = allows
            .iter()
            .map(|a| crate::policy::edit::Allow {
                names: a.names.clone(),
                comment: format!(
                    "allowed from auditor tui's Drift view by uid {uid} at {when}: {}",
                    a.comment
                ),
            })
            .collect();
        let done = std::fs::read_to_string(&path)
            .map_err(|e| {
                format!(
                    "{}: {e} (only native NAME.toml policies are edited)",
                    path.display()
                )
            })
            .and_then(|text| {
                crate::policy::edit::prepend_allow_rules(&text, &allows)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .and_then(|text| {
                crate::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())
            });
        said.push(match done {
            Ok(()) => format!("{} rule(s) added to {}", allows.len(), path.display()),
            Err(e) => format!("not changed: {e}"),
        });
    }
    said.join("; ")
}

/// Apply every session message queued now (bounded), in batches; whether any was.
fn drain(
    app: &mut App,
    rx: &mut mpsc::Receiver<Msg>,
    open: &mut bool,
    answers: &mpsc::Sender<ClientMessage>,
) -> bool {
    let mut batch = Vec::new();
    let mut any = false;
    for _ in 0..DRAIN_MAX {
        match rx.try_recv() {
            Ok(Msg::Session(m)) => batch.push(*m),
            Ok(other) => {
                if !batch.is_empty() {
                    apply(app, Msg::SessionBatch(std::mem::take(&mut batch)), answers);
                }
                apply(app, other, answers);
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                *open = false;
                break;
            }
        }
        any = true;
    }
    if !batch.is_empty() {
        apply(app, Msg::SessionBatch(batch), answers);
    }
    any
}

/// Attach to a session and run the UI until the user quits.
pub async fn run(options: Options) -> Result<(), RunError> {
    // Connect before taking over the terminal, so that a failure prints plainly.
    let mut conn = Connection::connect(&options.socket).await?;
    let writer = conn.take_writer();
    let mut app = App::new(options.socket.display().to_string(), options.policy_out);
    app.workload_log = options.workload_log;

    install_panic_hook();
    let (_guard, mut terminal) = setup()?;
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let (answers, answers_rx) = mpsc::channel(ANSWERS);
    let answering = writer.map(|w| tokio::spawn(write_answers(w, answers_rx, tx.clone())));
    let reader = tokio::spawn(read_session(conn, tx));
    let mut events = EventStream::new();
    let mut frame = tokio::time::interval(Duration::from_millis(1000 / FPS));
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Ok(size) = terminal.size() {
        update(&mut app, Msg::Resize(size.width, size.height));
    }
    let mut dirty = true;
    // A key is drawn at once when the last frame is old enough, else at the next tick.
    let frame_len = Duration::from_millis(1000 / FPS);
    let mut last_draw = std::time::Instant::now() - frame_len;
    let mut session_open = true;
    let stop = options.stop.unwrap_or_default();
    let result = loop {
        if app.quit {
            break Ok(());
        }
        let mut urgent = false;
        let mut tick = false;
        tokio::select! {
            biased;
            ev = std::future::poll_fn(|cx| Pin::new(&mut events).poll_next(cx)) => match ev {
                Some(Ok(TermEvent::Key(k))) => {
                    if options.interrupt_on_ctrl_c
                        && k.kind != crossterm::event::KeyEventKind::Release
                        && k.modifiers.contains(crossterm::event::KeyModifiers::CONTROL)
                        && k.code == crossterm::event::KeyCode::Char('c')
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::this(),
                            nix::sys::signal::Signal::SIGINT,
                        );
                    }
                    let follow_up = apply(&mut app, Msg::Key(k), &answers);
                    if let Some(m) = follow_up {
                        apply(&mut app, m, &answers);
                    }
                    dirty = true;
                    urgent = true;
                }
                Some(Ok(TermEvent::Mouse(m))) => {
                    apply(&mut app, Msg::Mouse(m), &answers);
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(w, h))) => {
                    apply(&mut app, Msg::Resize(w, h), &answers);
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(source)) => break Err(RunError::Events { source }),
                None => break Ok(()),
            },
            () = stop.cancelled() => break Ok(()),
            _ = second.tick() => {
                apply(&mut app, Msg::Second, &answers);
                dirty = true;
            }
            _ = frame.tick() => {
                // Session messages are taken once a frame, all that is queued: waking for each
                // of tens of thousands of decisions a second would cost the broker its CPU.
                if session_open && drain(&mut app, &mut rx, &mut session_open, &answers) {
                    dirty = true;
                }
                tick = true;
            }
        }
        if dirty && !app.quit && (tick || (urgent && last_draw.elapsed() >= frame_len)) {
            terminal
                .draw(|f| view(&app, f))
                .map_err(|source| RunError::Terminal { source })?;
            dirty = false;
            last_draw = std::time::Instant::now();
        }
    };
    reader.abort();
    if let Some(a) = answering {
        a.abort();
    }
    result
}
