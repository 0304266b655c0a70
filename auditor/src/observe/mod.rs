//! Observations: the file format, and building one from what the eBPF programs recorded.

pub mod args;
pub mod build;
pub mod model;
pub mod summary;

use std::path::{Path, PathBuf};

pub use model::Observation;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot read observation file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a valid observation file: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error(
        "{path}: format `{format}` version {version} is not an auditor observation this version \
         reads (expected `{}` version {}); re-run `auditor learn` or upgrade auditor",
        model::FORMAT,
        model::VERSION
    )]
    Version {
        path: PathBuf,
        format: String,
        version: u32,
    },
    #[error(transparent)]
    Write(#[from] crate::fsutil::FsError),
}

/// Parse an observation from JSON text; `path` is only for messages.
pub fn parse(path: &Path, text: &str) -> Result<Observation, ObserveError> {
    // Check the format tag first so that a file of another kind gets the right message.
    #[derive(serde::Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
    }
    let perr = |e: serde_json::Error| ObserveError::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    };
    let head: Head = serde_json::from_str(text).map_err(perr)?;
    let (format, version) = (head.format.unwrap_or_default(), head.version.unwrap_or(0));
    if format != model::FORMAT || version != model::VERSION {
        return Err(ObserveError::Version {
            path: path.to_owned(),
            format,
            version,
        });
    }
    serde_json::from_str(text).map_err(perr)
}

/// Read an observation file.
pub fn load(path: &Path) -> Result<Observation, ObserveError> {
    let text = std::fs::read_to_string(path).map_err(|source| ObserveError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// The JSON text of an observation (stable field order, pretty, trailing newline).
pub fn to_json(obs: &Observation) -> String {
    let mut s =
        serde_json::to_string_pretty(obs).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// Write an observation file atomically.
pub fn save(path: &Path, obs: &Observation) -> Result<(), ObserveError> {
    crate::fsutil::write_atomic(path, to_json(obs).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::model::*;
    use super::*;

    fn sample() -> Observation {
        Observation {
            format: FORMAT_NAME.into(),
            version: model::VERSION,
            auditor_version: "0.1.0".into(),
            host: Host {
                kernel: "6.18".into(),
                arch: "x86_64".into(),
                node: None,
            },
            target: Target::Command {
                argv: vec!["sh".into()],
            },
            started_at: "2026-11-29T00:00:00.000Z".into(),
            ended_at: "2026-11-29T00:00:01.000Z".into(),
            duration_ms: 1000,
            syscalls: vec![SyscallObservation {
                name: "mknodat".into(),
                abi: crate::syscalls::Abi::X86_64,
                nr: 259,
                count: 1,
                first_seen_ms: 1.5,
                failures: [("EPERM".to_string(), 1)].into(),
                restarts: Default::default(),
                refused: Default::default(),
                executables: [("/usr/bin/mknod".to_string(), 1)].into(),
                refused_executables: Default::default(),
                arguments: vec![ArgumentTuple {
                    calls: 1,
                    result: "EPERM".into(),
                    args: Arguments::Mknod {
                        dirfd: Some(-100),
                        path: Some("/dev/null2".into()),
                        file_type: "char".into(),
                        perm: 0o666,
                        major: 1,
                        minor: 3,
                    },
                }],
                arguments_overflow: 0,
                argument_read_failures: 0,
            }],
            executables: vec![Executable {
                path: "/usr/bin/mknod".into(),
                execs: 1,
            }],
            processes: Processes {
                tracked_threads: 1,
                exited_threads: 1,
            },
            loss: Loss::default(),
        }
    }

    const FORMAT_NAME: &str = model::FORMAT;

    #[test]
    fn round_trips_through_json() -> Result<(), ObserveError> {
        let obs = sample();
        let back = parse(Path::new("x.json"), &to_json(&obs))?;
        assert_eq!(back, obs);
        Ok(())
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let text = to_json(&sample()).replacen(
            "\"duration_ms\"",
            "\"surprise\": 1,\n  \"duration_ms\"",
            1,
        );
        match parse(Path::new("o.json"), &text) {
            Err(ObserveError::Parse { line, msg, .. }) => {
                assert!(line > 1);
                assert!(msg.contains("surprise"), "{msg}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn other_formats_and_versions_are_refused_clearly() {
        let text = to_json(&sample()).replace("\"version\": 1", "\"version\": 99");
        assert!(matches!(
            parse(Path::new("o.json"), &text),
            Err(ObserveError::Version { version: 99, .. })
        ));
        let e = parse(
            Path::new("p.json"),
            r#"{"defaultAction": "SCMP_ACT_ERRNO"}"#,
        );
        assert!(matches!(e, Err(ObserveError::Version { .. })));
        let e = parse(
            Path::new("t.json"),
            "{\"format\": \"auditor-observation\", \"ver",
        );
        assert!(matches!(e, Err(ObserveError::Parse { .. })));
        let e = parse(Path::new("e.json"), "");
        assert!(matches!(e, Err(ObserveError::Parse { .. })));
    }

    #[test]
    fn save_is_atomic_and_load_reads_it_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("obs.json");
        save(&p, &sample())?;
        assert_eq!(load(&p)?, sample());
        assert!(matches!(
            load(&dir.path().join("missing.json")),
            Err(ObserveError::Read { .. })
        ));
        Ok(())
    }
}
