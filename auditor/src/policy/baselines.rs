//! Runtime baselines: the syscalls an OCI runtime's own init makes between loading a container's
//! seccomp filter and `execve` of the workload. A profile the runtime loads must allow them, or
//! the container never starts (a known cause of broken profiles in other recorders: runc 1.3.3
//! started needing openat2 and statx there).
//!
//! They are learned, not written by hand: `cargo xtask baselines` runs each installed runtime
//! under `auditor learn` with a deny-by-default profile until nothing new is refused (see
//! integration/src/runtimes.rs), and stores the result in `baselines.json` beside this file,
//! keyed by runtime and version. A test compares the shipped data with a fresh run.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

const DATA: &str = include_str!("baselines.json");
pub const FORMAT: &str = "auditor-runtime-baselines";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    version: u32,
    baselines: Vec<Baseline>,
}

/// One runtime version's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub runtime: String,
    pub version: String,
    /// Where it was learned (`uname -r`), for the record.
    pub kernel: String,
    pub syscalls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baselines.json: {0}")]
    Parse(#[from] serde_json::Error),
}

fn parse(text: &str) -> Result<File, BaselineError> {
    Ok(serde_json::from_str(text)?)
}

/// Every shipped baseline.
pub fn all() -> &'static [Baseline] {
    static ALL: OnceLock<Vec<Baseline>> = OnceLock::new();
    // The data is compiled in and checked by a unit test, so a parse failure cannot ship.
    ALL.get_or_init(|| parse(DATA).map(|f| f.baselines).unwrap_or_default())
}

/// The baseline for `runtime` at `version`, or its newest shipped version.
pub fn get(runtime: &str, version: Option<&str>) -> Option<&'static Baseline> {
    let mut found: Vec<&Baseline> = all()
        .iter()
        .filter(|b| b.runtime == runtime && version.is_none_or(|v| v == b.version))
        .collect();
    found.sort_by_key(|b| version_key(&b.version));
    found.pop()
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The text of `baselines.json` (given as `text`) with `runtime`/`version` set to `syscalls`.
pub fn updated(
    text: &str,
    runtime: &str,
    version: &str,
    kernel: &str,
    syscalls: &[String],
) -> Result<String, BaselineError> {
    let mut file = parse(text)?;
    let mut syscalls = syscalls.to_vec();
    syscalls.sort();
    syscalls.dedup();
    let entry = Baseline {
        runtime: runtime.into(),
        version: version.into(),
        kernel: kernel.into(),
        syscalls,
    };
    match file
        .baselines
        .iter_mut()
        .find(|b| b.runtime == runtime && b.version == version)
    {
        Some(b) => *b = entry,
        None => file.baselines.push(entry),
    }
    file.baselines.sort_by(|a, b| {
        (&a.runtime, version_key(&a.version)).cmp(&(&b.runtime, version_key(&b.version)))
    });
    let mut s = serde_json::to_string_pretty(&file)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_parses() -> Result<(), BaselineError> {
        let f = parse(DATA)?;
        assert_eq!(f.format, FORMAT);
        assert_eq!(f.version, 1);
        for b in &f.baselines {
            assert!(
                b.syscalls.iter().any(|s| s == "execve"),
                "{} {} lacks execve",
                b.runtime,
                b.version
            );
        }
        Ok(())
    }

    #[test]
    fn update_replaces_one_entry_and_keeps_order() -> Result<(), BaselineError> {
        let empty = format!("{{\"format\":\"{FORMAT}\",\"version\":1,\"baselines\":[]}}");
        let a = updated(
            &empty,
            "runc",
            "1.1.5",
            "k",
            &["write".into(), "execve".into(), "write".into()],
        )?;
        let b = updated(&a, "crun", "1.8.1", "k", &["execve".into()])?;
        let c = updated(&b, "runc", "1.1.5", "k", &["execve".into()])?;
        let f = parse(&c)?;
        assert_eq!(f.baselines.len(), 2);
        assert_eq!(f.baselines[0].runtime, "crun");
        assert_eq!(f.baselines[1].syscalls, vec!["execve".to_string()]);
        let f = parse(&a)?;
        assert_eq!(
            f.baselines[0].syscalls,
            vec!["execve".to_string(), "write".to_string()]
        );
        Ok(())
    }
}
