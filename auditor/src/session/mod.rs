//! Live sessions: every long-running auditor command (learn, enforce) publishes its events on a
//! Unix socket that `auditor tui` attaches to.
//!
//! Sockets live in [`DEFAULT_DIR`] (`/run/auditor`, mode 0700; `AUDITOR_RUN_DIR` overrides it),
//! one per session, named `<kind>-<pid>.sock` and of mode 0600. The publisher accepts only
//! peers whose credentials (`SO_PEERCRED`) say uid 0: decisions name executables, paths and
//! arguments of the workload. Sockets of sessions whose process is gone are removed by the next
//! publisher or client that looks. The protocol is in [`protocol`].

pub mod client;
pub mod protocol;
pub mod publisher;

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

pub use client::{Connection, SessionInfo};
pub use protocol::{Choice, Decision, Message, Progress, Prompt, PromptClosed, SessionKind};
pub use publisher::{Answer, DecisionBatch, Event, Publisher, SessionSender};

/// Where session sockets live.
pub const DEFAULT_DIR: &str = "/run/auditor";

/// Errors of sessions (publisher and client).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot create the session directory {path} (it must be a directory owned by root, mode 0700)")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory owned by root: refusing to publish or read sessions there (remove it, or set AUDITOR_RUN_DIR)")]
    DirNotRoot { path: PathBuf },
    #[error("cannot listen on {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the session thread")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list sessions in {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no running auditor session in {dir} (start `auditor learn` or `auditor enforce`, or set AUDITOR_RUN_DIR)")]
    NoSessions { dir: PathBuf },
    #[error("no session `{name}` in {dir}; running: {known}")]
    NoSuchSession {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("cannot connect to session {path} (is it still running? auditor tui needs root)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("session {path}: its socket is not owned by root (uid {uid}); refusing to read it")]
    NotRoot { path: PathBuf, uid: u32 },
    #[error("sending to session {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading from session {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The session directory: `AUDITOR_RUN_DIR` or [`DEFAULT_DIR`].
pub fn dir() -> PathBuf {
    std::env::var_os("AUDITOR_RUN_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// The session name for a kind and process: `<kind>-<pid>`.
pub fn session_name(kind: SessionKind, pid: u32) -> String {
    format!("{kind}-{pid}")
}

/// `(kind, pid)` from a socket file name `<kind>-<pid>.sock`.
pub fn parse_socket_name(file: &str) -> Option<(SessionKind, u32)> {
    let stem = file.strip_suffix(".sock")?;
    let (kind, pid) = stem.rsplit_once('-')?;
    Some((SessionKind::parse(kind)?, pid.parse().ok()?))
}

/// Create `dir` (0700) if needed and check that it is a directory owned by the caller's euid
/// (root) that nobody else can write to.
pub fn ensure_dir(dir: &Path) -> Result<(), SessionError> {
    let err = |source| SessionError::Dir {
        path: dir.to_owned(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(err)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(SessionError::DirNotRoot {
            path: dir.to_owned(),
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Sessions with a socket in `dir`, sorted by name; sockets of dead processes are removed.
pub fn list_sessions(dir: &Path) -> Result<Vec<SessionInfo>, SessionError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SessionError::List {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let file = entry.file_name();
        let Some((kind, pid)) = file.to_str().and_then(parse_socket_name) else {
            continue;
        };
        let path = entry.path();
        if !crate::host::proc::exists(pid) {
            tracing::debug!(path = %path.display(), "removing the socket of a session that is gone");
            let _ = std::fs::remove_file(&path);
            continue;
        }
        out.push(SessionInfo {
            name: session_name(kind, pid),
            kind,
            pid,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Find a session by name (`learn-1234`), pid (`1234`) or socket path; with no name, the only
/// running session.
pub fn resolve(dir: &Path, name: Option<&str>) -> Result<SessionInfo, SessionError> {
    let sessions = list_sessions(dir)?;
    let known = || {
        if sessions.is_empty() {
            "none".to_owned()
        } else {
            sessions
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match name {
        None => match sessions.len() {
            0 => Err(SessionError::NoSessions {
                dir: dir.to_owned(),
            }),
            1 => Ok(sessions[0].clone()),
            _ => Err(SessionError::NoSuchSession {
                name: "(several running: pick one with --session)".into(),
                dir: dir.to_owned(),
                known: known(),
            }),
        },
        Some(n) => {
            let n = n.trim_end_matches(".sock");
            sessions
                .iter()
                .find(|s| s.name == n || s.pid.to_string() == n || s.path == Path::new(n))
                .cloned()
                .ok_or_else(|| SessionError::NoSuchSession {
                    name: n.to_owned(),
                    dir: dir.to_owned(),
                    known: known(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_round_trip() {
        assert_eq!(
            parse_socket_name("learn-42.sock"),
            Some((SessionKind::Learn, 42))
        );
        assert_eq!(
            parse_socket_name("enforce-7.sock"),
            Some((SessionKind::Enforce, 7))
        );
        assert_eq!(parse_socket_name("enforce-7"), None);
        assert_eq!(parse_socket_name("other-7.sock"), None);
        assert_eq!(session_name(SessionKind::Learn, 42), "learn-42");
    }

    #[test]
    fn stale_sockets_are_removed_and_live_ones_listed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // A pid that cannot exist (above pid_max's hard limit of 2^22).
        std::fs::write(dir.path().join("learn-99999999.sock"), b"")?;
        let me = std::process::id();
        std::fs::write(dir.path().join(format!("enforce-{me}.sock")), b"")?;
        std::fs::write(dir.path().join("notes.txt"), b"")?;
        let list = list_sessions(dir.path())?;
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, format!("enforce-{me}"));
        assert!(!dir.path().join("learn-99999999.sock").exists());
        assert!(dir.path().join("notes.txt").exists());
        assert_eq!(resolve(dir.path(), None)?.pid, me);
        assert_eq!(resolve(dir.path(), Some(&me.to_string()))?.pid, me);
        assert!(matches!(
            resolve(dir.path(), Some("learn-1")),
            Err(SessionError::NoSuchSession { .. })
        ));
        Ok(())
    }
}
