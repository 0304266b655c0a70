//! `auditor doctor`: what this host offers auditor, what each missing piece disables, and
//! whether the modes a user means to run have what they need. Facts are probed — a filter
//! installed, a program loaded, a namespace created — not guessed from versions ([`probes`]);
//! this module only judges and renders them.

pub mod probes;

use std::fmt::Write as _;

use serde::Serialize;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// There and working.
    Ok,
    /// Absent or failing: the modes in [`Check::needed_by`] cannot run.
    Missing,
    /// Works, with a limitation worth knowing.
    Warn,
    /// Optional, for information (a runtime that is not installed, a file system no mode needs).
    Info,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

/// What a user means to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `auditor learn`: the eBPF observer.
    Learn,
    /// `auditor enforce`: a filter with the broker.
    Enforce,
    /// `--userns`: unprivileged containers of `learn`/`enforce`.
    Userns,
    /// `auditor agent`: the seccomp agent for runc, crun and LXC.
    Agent,
    /// `auditor daemon` with `auditor hook`: learning containers.
    Daemon,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Learn,
        Mode::Enforce,
        Mode::Userns,
        Mode::Agent,
        Mode::Daemon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Learn => "learn",
            Mode::Enforce => "enforce",
            Mode::Userns => "userns",
            Mode::Agent => "agent",
            Mode::Daemon => "daemon",
        }
    }
}

/// One fact about the host.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// kernel, ebpf, seccomp, namespaces, privileges, runtimes.
    pub area: &'static str,
    pub name: String,
    pub status: Status,
    /// What was found (a version, a mount, an errno).
    pub detail: String,
    /// What is lost without it (empty when nothing is).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub disables: &'static str,
    /// The modes that cannot run without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needed_by: Vec<Mode>,
}

impl Check {
    pub fn new(area: &'static str, name: impl Into<String>, status: Status) -> Check {
        Check {
            area,
            name: name.into(),
            status,
            detail: String::new(),
            disables: "",
            needed_by: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Check {
        self.detail = detail.into();
        self
    }

    /// What is lost without it, and which modes need it.
    pub fn needed(mut self, disables: &'static str, by: &[Mode]) -> Check {
        self.disables = disables;
        self.needed_by = by.to_vec();
        self
    }

    /// Whether it stops `mode`.
    pub fn blocks(&self, mode: Mode) -> bool {
        self.status == Status::Missing && self.needed_by.contains(&mode)
    }
}

/// Everything `auditor doctor` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

/// The machine-readable form: the checks and, per mode asked about, whether it can run.
#[derive(Serialize)]
struct JsonReport<'a> {
    checks: &'a [Check],
    modes: std::collections::BTreeMap<&'static str, bool>,
    ok: bool,
}

impl Report {
    /// Probe this host; `config` is the configuration as the services would load it.
    pub fn collect(config: &Result<crate::config::Loaded, crate::config::ConfigError>) -> Report {
        let mut checks = probes::all();
        checks.extend(probes::configuration(config));
        Report { checks }
    }

    /// The checks that stop `mode`.
    pub fn blockers(&self, mode: Mode) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.blocks(mode)).collect()
    }

    /// Whether every mode of `modes` can run.
    pub fn ready(&self, modes: &[Mode]) -> bool {
        modes.iter().all(|&m| self.blockers(m).is_empty())
    }

    /// The report as JSON, judged for `modes`.
    pub fn to_json(&self, modes: &[Mode]) -> String {
        let j = JsonReport {
            checks: &self.checks,
            modes: modes
                .iter()
                .map(|&m| (m.as_str(), self.blockers(m).is_empty()))
                .collect(),
            ok: self.ready(modes),
        };
        serde_json::to_string_pretty(&j).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as a table, judged for `modes`.
    pub fn render(&self, modes: &[Mode]) -> String {
        let w_area = self.checks.iter().map(|c| c.area.len()).max().unwrap_or(4);
        let w_name = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        let mut s = String::new();
        let mut area = "";
        for c in &self.checks {
            let shown_area = if c.area == area { "" } else { c.area };
            area = c.area;
            let _ = writeln!(
                s,
                "{shown_area:<w_area$}  {:<w_name$}  {:<7}  {}",
                c.name,
                c.status.as_str(),
                c.detail
            );
            if matches!(c.status, Status::Missing | Status::Warn) && !c.disables.is_empty() {
                let _ = writeln!(
                    s,
                    "{:<w_area$}  {:<w_name$}           -> {}",
                    "", "", c.disables
                );
            }
        }
        let _ = writeln!(s);
        for &m in modes {
            let blockers = self.blockers(m);
            if blockers.is_empty() {
                let _ = writeln!(s, "{}: ready", m.as_str());
            } else {
                let names: Vec<&str> = blockers.iter().map(|c| c.name.as_str()).collect();
                let _ = writeln!(
                    s,
                    "{}: NOT READY (missing: {})",
                    m.as_str(),
                    names.join(", ")
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            checks: vec![
                Check::new("ebpf", "BTF", Status::Ok).detail("/sys/kernel/btf/vmlinux"),
                Check::new("ebpf", "programs load", Status::Missing)
                    .detail("EPERM")
                    .needed("learning (the eBPF observer)", &[Mode::Learn, Mode::Daemon]),
                Check::new("seccomp", "sync wake-up", Status::Warn)
                    .detail("not supported")
                    .needed("fast broker wake-ups", &[]),
                Check::new("runtimes", "crun", Status::Info).detail("not installed"),
            ],
        }
    }

    #[test]
    fn a_missing_check_blocks_only_the_modes_that_need_it() {
        let r = report();
        assert!(!r.ready(&[Mode::Learn]));
        assert!(r.ready(&[Mode::Enforce, Mode::Agent]));
        assert!(!r.ready(&[Mode::Enforce, Mode::Daemon]));
        assert_eq!(r.blockers(Mode::Daemon)[0].name, "programs load");
    }

    #[test]
    fn the_table_says_what_is_missing_and_what_it_disables() {
        let t = report().render(&[Mode::Learn, Mode::Enforce]);
        assert!(t.contains("programs load  MISSING  EPERM"), "{t}");
        assert!(t.contains("-> learning (the eBPF observer)"), "{t}");
        assert!(t.contains("-> fast broker wake-ups"), "{t}");
        assert!(
            t.contains("learn: NOT READY (missing: programs load)"),
            "{t}"
        );
        assert!(t.contains("enforce: ready"), "{t}");
    }

    #[test]
    fn the_json_judges_the_modes_asked_about() {
        let j: serde_json::Value =
            serde_json::from_str(&report().to_json(&[Mode::Enforce])).expect("json");
        assert_eq!(j["ok"], true);
        assert_eq!(j["modes"]["enforce"], true);
        assert_eq!(j["checks"][1]["status"], "missing");
        assert_eq!(j["checks"][1]["needed_by"][0], "learn");
    }
}
