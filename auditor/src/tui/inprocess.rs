//! The in-process UI of `auditor learn --tui` and `auditor enforce --tui`.
//!
//! The UI runs on its own thread (and its own runtime) and attaches to the command's own session
//! socket through the same client code as `auditor tui`, drawing on `/dev/tty`. The workload's
//! stdin is `/dev/null` and its stdout and stderr go to a log file named on screen; while the
//! UI is open, auditor's own stderr goes there too, so that nothing is written over the UI.
//!
//! `q` (or Esc) closes the UI only: the session goes on to its end as without `--tui`, with
//! auditor's stderr back on the terminal. Ctrl-C in the UI closes it and interrupts the session
//! as Ctrl-C does without `--tui` (raw mode turns Ctrl-C into a key, not a signal). When the
//! session ends with the UI open, the UI shows the end and stays until `q`.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::run::{Options, RunError};
use super::stderr::{redirect_stderr, restore_stderr};
use crate::launch;
use crate::session::SessionKind;

/// The log file and terminal of an in-process UI, prepared before the workload starts.
#[derive(Debug)]
pub struct Prepared {
    kind: SessionKind,
    log_path: PathBuf,
    log: OwnedFd,
}

/// `auditor-<kind>-<pid>.log` in the current directory.
pub fn default_log(kind: SessionKind) -> PathBuf {
    PathBuf::from(format!("auditor-{kind}-{}.log", std::process::id()))
}

impl Prepared {
    /// Check that there is a terminal to draw on and open (truncate) the log file, mode 0600.
    pub fn new(kind: SessionKind, log: Option<&Path>) -> anyhow::Result<Prepared> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .context("--tui needs an interactive terminal (cannot open /dev/tty)")?;
        let log_path = log.map_or_else(|| default_log(kind), Path::to_owned);
        let file = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            0o600,
        )
        .open(&log_path)
        .with_context(|| {
            format!(
                "cannot open the workload log {} (choose another with --workload-log FILE)",
                log_path.display()
            )
        })?;
        Ok(Prepared {
            kind,
            log_path,
            log: file.into(),
        })
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The workload's standard streams: stdin from /dev/null (the UI reads the terminal),
    /// stdout and stderr to the log.
    pub fn workload_stdio(&self) -> anyhow::Result<launch::Stdio> {
        Ok(launch::Stdio {
            stdin: std::fs::File::open("/dev/null")
                .context("/dev/null")?
                .into(),
            output: self.log.try_clone().context("the workload log")?,
        })
    }

    /// Open the UI on the session socket `socket`; auditor's stderr goes to the log until it
    /// closes.
    pub fn start(self, socket: &Path, policy_out: PathBuf) -> anyhow::Result<InProcessUi> {
        let stop = CancellationToken::new();
        let options = Options {
            socket: socket.to_owned(),
            policy_out,
            workload_log: Some(self.log_path.display().to_string()),
            stop: Some(stop.clone()),
            interrupt_on_ctrl_c: true,
        };
        redirect_stderr(self.log.as_raw_fd()).context("redirecting stderr to the workload log")?;
        let kind = self.kind;
        let log = self.log_path.clone();
        let thread = std::thread::Builder::new()
            .name("auditor-tui".into())
            .spawn(move || {
                let r = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| RunError::Terminal { source })
                    .and_then(|rt| rt.block_on(super::run(options)));
                restore_stderr();
                match r {
                    Ok(()) => eprintln!(
                        "auditor: UI closed; {kind} goes on (workload output: {})",
                        log.display()
                    ),
                    Err(e) => eprintln!(
                        "auditor: the UI stopped: {:#}; {kind} goes on (workload output: {})",
                        anyhow::Error::from(e),
                        log.display()
                    ),
                }
            });
        match thread {
            Ok(thread) => Ok(InProcessUi {
                thread: Some(thread),
                stop,
            }),
            Err(e) => {
                restore_stderr();
                Err(e).context("cannot start the UI thread")
            }
        }
    }
}

/// A running in-process UI. Dropping it closes the UI (error paths); [`InProcessUi::wait`]
/// waits for the user to close it.
#[derive(Debug)]
pub struct InProcessUi {
    thread: Option<JoinHandle<()>>,
    stop: CancellationToken,
}

impl InProcessUi {
    /// Wait until the user closes the UI (it shows the end of the session meanwhile).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        restore_stderr();
    }
}

impl Drop for InProcessUi {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.cancel();
            let _ = t.join();
        }
        restore_stderr();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_log_is_named_after_the_session() {
        let name = default_log(SessionKind::Enforce);
        assert_eq!(
            name,
            PathBuf::from(format!("auditor-enforce-{}.log", std::process::id()))
        );
    }

    #[test]
    fn the_log_file_gets_the_workload_output() -> Result<(), Box<dyn std::error::Error>> {
        if std::fs::File::open("/dev/tty").is_err() {
            eprintln!("SKIP: no controlling terminal");
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("w.log");
        let p = Prepared::new(SessionKind::Learn, Some(&log))?;
        assert_eq!(p.log_path(), log);
        let io = p.workload_stdio()?;
        let mut f = std::fs::File::from(io.output);
        std::io::Write::write_all(&mut f, b"hello\n")?;
        drop(f);
        assert_eq!(std::fs::read_to_string(&log)?, "hello\n");
        Ok(())
    }
}
