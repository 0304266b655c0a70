//! `auditor runtime`: an OCI runtime wrapper, the extension point Docker (`runtimes` in
//! `daemon.json`) and containerd (runc's `BinaryName`) offer. It is called exactly like runc —
//! global flags, subcommand, flags, container id — passes every argument on unchanged to the
//! real runtime (the *delegate*) by `execve`, and on `create`/`run` first edits the bundle's
//! `config.json` atomically:
//!
//! - `--learn SOCKET` adds a `createRuntime` hook running `auditor hook`, so `auditor daemon`
//!   learns the container from its first syscall;
//! - `--agent SOCKET` sets the seccomp profile's `listenerPath` (and, with `--policy`,
//!   `listenerMetadata`), which Docker 20.10 drops from `--security-opt seccomp=` profiles, so
//!   that notify rules reach `auditor agent`.
//!
//! The shim parses what `state` and `ps` print, and `create`'s stdio is the container's own:
//! the wrapper never writes to stdout, and writes its warnings and errors to the runtime's
//! `--log` file (JSON lines with `--log-format json`, as runc does), where containerd looks
//! for the reason a runtime call failed.

pub mod args;
pub mod bundle;

use std::ffi::CString;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use args::Invocation;
use bundle::{Change, Edits};

/// Largest `config.json` read (runc itself has no limit; real ones are a few KiB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the delegate runtime {name:?} was not found or is not executable (install it, or give --delegate a full path)")]
    DelegateNotFound { name: String },
    #[error("the delegate runtime {} is auditor itself: give --delegate the real runtime (runc, crun or its path)", path.display())]
    DelegateLoop { path: PathBuf },
    #[error("cannot read {}: {source} (the engine passes the bundle with --bundle, else the working directory)", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than {} MiB", path.display(), MAX_CONFIG_BYTES >> 20)]
    ConfigTooLarge { path: PathBuf },
    #[error("{}: not valid JSON: {source}", path.display())]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Bundle {
        path: PathBuf,
        #[source]
        source: bundle::BundleError,
    },
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
    #[error("cannot find auditor's own executable for the hook: {0}")]
    SelfExe(#[source] std::io::Error),
    #[error("an argument holds a NUL byte")]
    Nul,
    #[error("cannot execute the delegate runtime {}: {source}", path.display())]
    Exec {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// The wrapper's own options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `runc`, `crun` or a path.
    pub delegate: String,
    /// `auditor daemon`'s socket: learn every container created.
    pub learn: Option<PathBuf>,
    /// `auditor agent`'s socket: the profile's `listenerPath`.
    pub agent: Option<PathBuf>,
    /// The policy name for the agent (`listenerMetadata`).
    pub policy: Option<String>,
    /// A configuration file the hook should read (`auditor --config`).
    pub config: Option<PathBuf>,
}

/// The delegate's executable, never auditor itself.
pub fn resolve_delegate(name: &str) -> Result<PathBuf, RuntimeError> {
    let path = crate::launch::resolve(name).map_err(|_| RuntimeError::DelegateNotFound {
        name: name.to_owned(),
    })?;
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(RuntimeError::SelfExe)?;
    if std::fs::canonicalize(&path).is_ok_and(|p| p == me) {
        return Err(RuntimeError::DelegateLoop { path });
    }
    Ok(path)
}

/// The name the delegate goes by in observations: `runc`, `crun`, or its file name.
pub fn delegate_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What [`prepare`] did.
#[derive(Debug, Default)]
pub struct Report {
    pub changes: Vec<Change>,
    pub edits: Edits,
}

impl Report {
    /// Each change with its level and description.
    pub fn lines(&self) -> impl Iterator<Item = (Level, String)> + '_ {
        self.changes.iter().map(|c| {
            let level = if c.is_warning() {
                Level::Warning
            } else {
                Level::Info
            };
            (level, c.describe(&self.edits))
        })
    }
}

/// Edit the bundle of a `create`/`run` call; other calls are left alone.
pub fn prepare(
    options: &Options,
    delegate: &Path,
    inv: &Invocation,
) -> Result<Report, RuntimeError> {
    if !inv.creates() || (options.learn.is_none() && options.agent.is_none()) {
        return Ok(Report::default());
    }
    let learn_hook = match &options.learn {
        Some(socket) => {
            let me = std::env::current_exe().map_err(RuntimeError::SelfExe)?;
            Some(bundle::learn_hook(
                &me,
                socket,
                &delegate_name(delegate),
                options.config.as_deref(),
            ))
        }
        None => None,
    };
    let edits = Edits {
        learn_hook,
        listener: options.agent.as_ref().map(|p| p.display().to_string()),
        policy: options.policy.clone(),
    };
    let path = inv
        .bundle
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("config.json");
    let text = read_limited(&path)?;
    let mut config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| RuntimeError::ParseConfig {
            path: path.clone(),
            source,
        })?;
    let before = config.clone();
    let changes = bundle::edit(&mut config, &edits).map_err(|source| RuntimeError::Bundle {
        path: path.clone(),
        source,
    })?;
    if config != before {
        let mut out = serde_json::to_vec(&config).expect("a JSON value serialises");
        out.push(b'\n');
        crate::fsutil::write_atomic(&path, &out)?;
    }
    Ok(Report { changes, edits })
}

fn read_limited(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    crate::fsutil::read_capped(path, MAX_CONFIG_BYTES)
        .map_err(|source| RuntimeError::ReadConfig {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| RuntimeError::ConfigTooLarge {
            path: path.to_owned(),
        })
}

/// Replace this process with the delegate, `args` unchanged. Returns only on failure.
pub fn exec(delegate: &Path, args: &[String]) -> RuntimeError {
    let c = |b: &[u8]| CString::new(b).map_err(|_| RuntimeError::Nul);
    let run = || -> Result<std::convert::Infallible, RuntimeError> {
        let path = c(delegate.as_os_str().as_bytes())?;
        let mut argv = vec![c(delegate_name(delegate).as_bytes())?];
        for a in args {
            argv.push(c(a.as_bytes())?);
        }
        nix::unistd::execv(&path, &argv).map_err(|source| RuntimeError::Exec {
            path: delegate.to_owned(),
            source,
        })
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// How bad a line for the runtime's log is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One line in runc's log format: logrus JSON (`{"level","msg","time"}`, what the shim parses)
/// or logrus text.
pub fn log_line(json: bool, level: Level, msg: &str, time: std::time::SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(time).to_string();
    let msg = format!("auditor runtime: {msg}");
    if json {
        serde_json::json!({ "level": level.as_str(), "msg": msg, "time": time }).to_string()
    } else {
        format!(
            "time={time:?} level={} msg={}",
            level.as_str(),
            serde_json::Value::from(msg)
        )
    }
}

/// Append a line to the runtime's `--log` file; false when there is none or it cannot be
/// written (the caller then uses stderr).
pub fn log_to_runtime(inv: &Invocation, level: Level, msg: &str) -> bool {
    let Some(path) = &inv.log else {
        return false;
    };
    let line = log_line(inv.log_json, level, msg, std::time::SystemTime::now());
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{line}"))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_what_the_shim_parses() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let line = log_line(true, Level::Error, "cannot read \"x\"", t);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "auditor runtime: cannot read \"x\"");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(
            log_line(false, Level::Warning, "a b", t),
            r#"time="2023-11-14T22:13:20Z" level=warning msg="auditor runtime: a b""#
        );
    }

    #[test]
    fn a_delegate_that_is_auditor_itself_is_refused() {
        let me = std::env::current_exe().unwrap();
        assert!(matches!(
            resolve_delegate(me.to_str().unwrap()),
            Err(RuntimeError::DelegateLoop { .. })
        ));
        assert!(matches!(
            resolve_delegate("no-such-runtime-here"),
            Err(RuntimeError::DelegateNotFound { .. })
        ));
        assert!(resolve_delegate("/bin/sh").is_ok());
    }

    #[test]
    fn other_calls_never_touch_the_bundle() {
        let options = Options {
            delegate: "runc".into(),
            learn: Some("/s".into()),
            ..Options::default()
        };
        // `state` with a bundle that does not exist: nothing read, nothing written.
        let inv = args::parse(&["state".into(), "x".into()]);
        assert!(prepare(&options, Path::new("/usr/bin/runc"), &inv)
            .unwrap()
            .changes
            .is_empty());
    }

    #[test]
    fn create_edits_the_bundle_atomically_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"ociVersion":"1.0.2","process":{"args":["sh"]}}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let options = Options {
            delegate: "runc".into(),
            learn: Some("/run/auditor/daemon.sock".into()),
            ..Options::default()
        };
        let inv = args::parse(&[
            "create".into(),
            "--bundle".into(),
            dir.path().display().to_string(),
            "c1".into(),
        ]);
        let report = prepare(&options, Path::new("/usr/sbin/runc"), &inv).unwrap();
        assert_eq!(report.changes, [Change::HookAdded]);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let hook = &v["hooks"]["createRuntime"][0];
        assert_eq!(
            hook["path"],
            std::env::current_exe().unwrap().display().to_string()
        );
        assert_eq!(hook["args"][5], "runc");
        assert_eq!(v["process"]["args"][0], "sh");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // A broken bundle is an error naming the file, and is left as it was.
        std::fs::write(&path, "{not json").unwrap();
        let e = prepare(&options, Path::new("/usr/sbin/runc"), &inv).unwrap_err();
        assert!(e.to_string().contains("config.json: not valid JSON"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"{not json");
    }
}
