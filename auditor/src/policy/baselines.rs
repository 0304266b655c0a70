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

/// How the runtime was asked to run the container: what its init does after loading the filter
/// depends on it. runc's init, for one, syncs with its parent to hand a listener over (so a
/// profile with notify rules needs more), and with `noNewPrivileges` off (Docker's and podman's
/// default) it loads the filter before dropping privileges, so more of it runs under the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode {
    /// The profile has notify rules: the runtime hands a listener over (`listenerPath`).
    pub listener: bool,
    /// The container has its own user namespace.
    pub userns: bool,
    /// `process.noNewPrivileges` (`runc spec`'s default; Docker and podman turn it off unless
    /// asked with `--security-opt no-new-privileges`).
    pub no_new_privileges: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Baseline {
    pub fn mode(&self) -> Mode {
        Mode {
            listener: self.listener,
            userns: self.userns,
            no_new_privileges: self.no_new_privileges,
        }
    }
}

impl Default for Mode {
    fn default() -> Mode {
        Mode {
            listener: false,
            userns: false,
            no_new_privileges: true,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}listener, {}user namespace, noNewPrivileges {}",
            if self.listener { "" } else { "no " },
            if self.userns { "" } else { "no " },
            if self.no_new_privileges { "on" } else { "off" }
        )
    }
}

/// One runtime version's baseline in one mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub runtime: String,
    pub version: String,
    /// [`Mode::listener`] (absent: false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub listener: bool,
    /// [`Mode::userns`] (absent: false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub userns: bool,
    /// [`Mode::no_new_privileges`] (absent: true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub no_new_privileges: bool,
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

/// The baseline for `runtime` at `version` (or its newest shipped version) in `mode`. A
/// runtime learned in one mode only (LXC) has that baseline for every mode.
pub fn get(runtime: &str, version: Option<&str>, mode: Mode) -> Option<&'static Baseline> {
    let of_runtime = |b: &&Baseline| b.runtime == runtime && version.is_none_or(|v| v == b.version);
    let mut found: Vec<&Baseline> = all().iter().filter(of_runtime).collect();
    found.sort_by_key(|b| version_key(&b.version));
    let newest = found.last()?.version.clone();
    found.retain(|b| b.version == newest);
    match found.iter().find(|b| b.mode() == mode) {
        Some(b) => Some(*b),
        None if found.len() == 1 => found.pop(),
        None => None,
    }
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The text of `baselines.json` (given as `text`) with `runtime`/`version` set to `syscalls`.
pub fn updated(
    text: &str,
    runtime: &str,
    version: &str,
    mode: Mode,
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
        listener: mode.listener,
        userns: mode.userns,
        no_new_privileges: mode.no_new_privileges,
        kernel: kernel.into(),
        syscalls,
    };
    match file
        .baselines
        .iter_mut()
        .find(|b| b.runtime == runtime && b.version == version && b.mode() == mode)
    {
        Some(b) => *b = entry,
        None => file.baselines.push(entry),
    }
    file.baselines.sort_by(|a, b| {
        (&a.runtime, version_key(&a.version), a.mode()).cmp(&(
            &b.runtime,
            version_key(&b.version),
            b.mode(),
        ))
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
            Mode::default(),
            "k",
            &["write".into(), "execve".into(), "write".into()],
        )?;
        let m = Mode::default();
        let b = updated(&a, "crun", "1.8.1", m, "k", &["execve".into()])?;
        let c = updated(&b, "runc", "1.1.5", m, "k", &["execve".into()])?;
        let f = parse(&c)?;
        assert_eq!(f.baselines.len(), 2);
        assert_eq!(f.baselines[0].runtime, "crun");
        assert_eq!(f.baselines[1].syscalls, vec!["execve".to_string()]);
        let f = parse(&a)?;
        assert_eq!(
            f.baselines[0].syscalls,
            vec!["execve".to_string(), "write".to_string()]
        );
        // Another mode is another entry, written with only the fields that differ from the
        // default, and found by its mode.
        let listener = Mode {
            listener: true,
            ..Mode::default()
        };
        let d = updated(&c, "runc", "1.1.5", listener, "k", &["read".into()])?;
        assert!(d.contains("\"listener\": true") && !d.contains("no_new_privileges"));
        let f = parse(&d)?;
        assert_eq!(f.baselines.len(), 3);
        assert_eq!(f.baselines[2].mode(), listener);
        assert_eq!(f.baselines[1].mode(), Mode::default());
        Ok(())
    }

    #[test]
    fn a_mode_without_its_own_baseline_is_refused_unless_the_runtime_has_one_mode_only() {
        let userns = Mode {
            userns: true,
            ..Mode::default()
        };
        assert!(
            get("lxc", None, userns).is_some(),
            "LXC is learned in one mode"
        );
        for b in all().iter().filter(|b| b.runtime != "lxc") {
            assert_eq!(
                get(&b.runtime, Some(&b.version), b.mode()).map(|g| &g.syscalls),
                Some(&b.syscalls)
            );
        }
    }
}
