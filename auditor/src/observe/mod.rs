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
    Parse { path: PathBuf, line: usize, column: usize, msg: String },
    #[error(
        "{path}: format `{format}` version {version} is not an auditor observation this version \
         reads (expected `{}` version {}); re-run `auditor learn` or upgrade auditor",
        model::FORMAT,
        model::VERSION
    )]
    Version { path: PathBuf, format: String, version: u32 },
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
        return Err(ObserveError::Version { path: path.to_owned(), format, version });
    }
    serde_json::from_str(text).map_err(perr)
}

/// Read an observation file.
pub fn load(path: &Path) -> Result<Observation, ObserveError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ObserveError::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}

/// The JSON text of an observation (stable field order, pretty, trailing newline).
pub fn to_json(obs: &Observation) -> String {
    let mut s = serde_json::to_string_pretty(obs).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// Write an observation file atomically.
pub fn save(path: &Path, obs: &Observation) -> Result<(), ObserveError> {
    crate::fsutil::write_atomic(path, to_json(obs).as_bytes())?;
    Ok(())
}
