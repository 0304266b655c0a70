//! From observations to a policy.
//!
//! - Several observations (runs, replicas) are merged: union of syscalls, counts summed; every
//!   rule notes how many inputs needed it.
//! - A syscall that reached the kernel and got an answer other than a privilege refusal
//!   (success, or ENOENT, EINVAL, …) is allowed: the filter must not change what the kernel says.
//! - Calls an existing filter refused are candidates, reported with counts, not allowed.
//! - Calls the kernel refused for lack of privilege (EPERM/EACCES) become notify rules when a
//!   handler in [`super::handlers`] can grant them safely — the filter narrows by scalars, the
//!   handler's parameters narrow by what the workload asked for (paths, types, names). Anything
//!   else is left to the default action and reported, never silently allowed.

use crate::syscalls::Abi;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::handlers::{self, FD_HANDOVER_SYSCALLS};
use super::model::{Action, Arch, Notify, Policy, Provenance, Rule, EPERM};
use crate::observe::model::Observation;

mod merge;
mod notify;
mod runtime;
mod tighten;

use merge::is_privilege;
pub use merge::{merge_observations, Merged};
use notify::notify_rules;
pub mod group;
pub use runtime::{
    baseline, merge_baseline, Mode, Runtime, RuntimeBaseline, RuntimeTarget, WAIT_KILLABLE_RECV,
};
use tighten::tighten;

/// Errors generating a policy.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("no observations given")]
    NoInput,
    #[error("observation {index}: format `{format}` version {version} is not an auditor observation this version reads")]
    WrongFormat {
        index: usize,
        format: String,
        version: u32,
    },
    #[error("unknown handler `{name}` requested{}", super::model::fix_suffix(.fix))]
    UnknownHandler { name: String, fix: String },
    #[error("no learned baseline for runtime {runtime}{} with {mode}", .version.as_ref().map(|v| format!(" {v}")).unwrap_or_default())]
    NoBaseline {
        runtime: String,
        version: Option<String>,
        mode: Mode,
    },
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// For every call no rule matches. Errno EPERM by default.
    pub default_action: Action,
    /// Add argument conditions for scalar arguments whose observed values cover every call.
    pub tighten: bool,
    /// Handlers to emit although no observation calls for them (only `sysinfo` makes sense).
    pub extra_handlers: Vec<String>,
    /// The runtime whose own pre-exec syscalls must be allowed too, and how it runs the
    /// container (which picks its baseline).
    pub runtime: Option<RuntimeTarget>,
    /// File-system types an emulate-mount rule serves through a FUSE program from the
    /// container instead of the host's driver (type → program).
    pub fuse: BTreeMap<String, String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            default_action: Action::Errno(EPERM),
            tighten: false,
            extra_handlers: Vec::new(),
            runtime: None,
            fuse: BTreeMap::new(),
        }
    }
}

/// A generated policy with its report.
#[derive(Clone, Debug)]
pub struct Generated {
    pub policy: Policy,
    pub report: Report,
    /// The runtime baseline merged into the policy, and the mode it was picked for.
    pub baseline: Option<(RuntimeBaseline, Mode)>,
}

/// What `generate` did, for the user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub inputs: u32,
    pub allowed: Vec<String>,
    /// (syscall, handler).
    pub notified: Vec<(String, String)>,
    /// Refused by an existing filter: candidates to allow, with counts by error.
    pub candidates: Vec<(String, BTreeMap<String, u64>)>,
    /// Attempted but left to the default action, and why.
    pub denied: Vec<Denied>,
    /// Other things worth knowing (incomplete observations, tightening skipped, …).
    pub notes: Vec<String>,
}

/// A syscall (or some of its calls) left to the default action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub syscall: String,
    pub calls: u64,
    pub reason: String,
}

impl Report {
    /// A short summary for a terminal.
    pub fn render(&self, default_action: &Action) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} input(s): {} syscalls allowed, {} notified, everything else {}.",
            self.inputs,
            self.allowed.len(),
            self.notified.len(),
            default_action
        );
        for (sys, h) in &self.notified {
            let _ = writeln!(s, "  notify {sys} -> {h}");
        }
        if !self.candidates.is_empty() {
            let _ = writeln!(
                s,
                "Refused by an existing filter (candidates to allow; not allowed):"
            );
            for (sys, by) in &self.candidates {
                let detail: Vec<String> = by.iter().map(|(e, n)| format!("{n}x {e}")).collect();
                let _ = writeln!(s, "  {sys}: {}", detail.join(", "));
            }
        }
        if !self.denied.is_empty() {
            let _ = writeln!(s, "Attempted but left denied:");
            for d in &self.denied {
                let _ = writeln!(s, "  {} ({} calls): {}", d.syscall, d.calls, d.reason);
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

/// Generate a policy from observations.
pub fn generate(
    observations: &[Observation],
    options: &GenerateOptions,
) -> Result<Generated, GenerateError> {
    if observations.is_empty() {
        return Err(GenerateError::NoInput);
    }
    for (index, o) in observations.iter().enumerate() {
        if o.format != crate::observe::model::FORMAT || o.version != crate::observe::model::VERSION
        {
            return Err(GenerateError::WrongFormat {
                index,
                format: o.format.clone(),
                version: o.version,
            });
        }
    }
    for h in &options.extra_handlers {
        handlers::lookup(h).map_err(|_| GenerateError::UnknownHandler {
            name: h.clone(),
            fix: format!(
                "known: {}",
                handlers::all()
                    .iter()
                    .map(|h| h.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    }
    let of = u32::try_from(observations.len()).unwrap_or(u32::MAX);
    let merged = merge_observations(observations);
    let mut report = Report {
        inputs: of,
        ..Report::default()
    };
    let mut policy = Policy {
        default_action: options.default_action.clone(),
        ..Policy::default()
    };

    let abis: BTreeSet<Abi> = merged
        .values()
        .flat_map(|m| m.abis.iter().copied())
        .collect();
    policy.architectures = abis.iter().map(|a| Arch::from_abi(*a)).collect();
    if abis.len() > 1 {
        report.notes.push(format!(
            "calls were made through several ABIs ({}); the policy names syscalls, so each rule covers all of them",
            abis.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    for o in observations {
        if o.loss.total > 0 {
            report.notes.push(format!(
                "an observation lost {} events (started {}): it may be incomplete; learn again before shipping",
                o.loss.total, o.started_at
            ));
        }
    }

    let mut plain_allow: Vec<&Merged> = Vec::new();
    let mut extra_rules: Vec<Rule> = Vec::new();
    let nested_overlay = notify::nested_overlay(&merged);

    for m in merged.values() {
        if m.count == 0 {
            if !m.refused.is_empty() {
                report.candidates.push((m.name.clone(), m.refused.clone()));
            }
            continue;
        }
        if !m.refused.is_empty() {
            report.candidates.push((m.name.clone(), m.refused.clone()));
        }
        let denied_calls = m.privilege_failures();
        let spec = handlers::for_syscall(&m.name).filter(|h| !h.only_on_request);
        // A workload that sets trusted.overlay.* and mounts overlay (which a user namespace
        // may do, without reading those attributes) needs the host to mount it.
        let overlay = nested_overlay && m.name == "mount";
        match spec {
            Some(spec) if denied_calls > 0 || overlay => {
                let rules = notify_rules(m, spec, of, overlay, &options.fuse, &mut report);
                if rules.iter().any(|r| r.action.is_notify()) {
                    report.notified.push((m.name.clone(), spec.name().to_owned()));
                }
                extra_rules.extend(rules);
            }
            _ if m.kernel_answered() == 0 => report.denied.push(Denied {
                syscall: m.name.clone(),
                calls: m.count,
                reason: format!(
                    "every call failed with {} and no handler can grant it safely; allowing it would not make it succeed",
                    privilege_errnos(m)
                ),
            }),
            _ => {
                if denied_calls > 0 {
                    report.notes.push(format!(
                        "{}: {} of {} calls failed with {}; allowed, and the kernel keeps refusing those",
                        m.name,
                        denied_calls,
                        m.count,
                        privilege_errnos(m)
                    ));
                }
                plain_allow.push(m);
            }
        }
    }
    // Companions get their rule whether or not they were observed (libmount tries fsopen first
    // where the kernel has it).
    for h in handlers::all() {
        if report.notified.iter().any(|(_, n)| n == h.name()) {
            for (companion, errno, why) in h.companions {
                if !extra_rules
                    .iter()
                    .any(|r| r.names.iter().any(|n| n == companion))
                {
                    extra_rules
                        .push(Rule::new([*companion], Action::Errno(*errno)).with_comment(*why));
                }
            }
        }
    }

    // A companion answered with an errno is not also allowed.
    plain_allow.retain(|m| {
        !extra_rules
            .iter()
            .any(|r| r.args.is_empty() && r.names.contains(&m.name))
    });

    // Allow rules: tightened ones first (each its own rule, with a comment), then one rule per
    // group of syscalls that needed the same number of inputs, so that a reviewer sees at a
    // glance what every run needed and what only some did.
    let mut groups: BTreeMap<u32, Vec<&Merged>> = BTreeMap::new();
    for m in plain_allow {
        report.allowed.push(m.name.clone());
        if options.tighten {
            if let Some(rules) = tighten(m, of, &mut report) {
                extra_rules.extend(rules);
                continue;
            }
        }
        groups.entry(m.inputs).or_default().push(m);
    }
    for (inputs, ms) in groups.iter().rev() {
        let names: Vec<String> = ms.iter().map(|m| m.name.clone()).collect();
        let mut executables: BTreeSet<String> = BTreeSet::new();
        for m in ms {
            executables.extend(m.executables.keys().cloned());
        }
        let mut rule = Rule::new(names, Action::Allow).with_comment(if *inputs == of {
            format!("observed succeeding in every input ({of})")
        } else {
            format!("observed succeeding in {inputs} of {of} inputs")
        });
        rule.provenance = Some(Provenance {
            inputs: *inputs,
            of,
            calls: ms.iter().map(|m| m.count).sum(),
            executables: executables.into_iter().collect(),
        });
        policy.rules.push(rule);
    }
    policy.rules.extend(extra_rules);

    for h in &options.extra_handlers {
        if let Some(spec) = handlers::get(h) {
            for s in spec.syscalls {
                policy
                    .rules
                    .retain(|r| !(r.names.len() == 1 && r.names[0] == *s));
                for r in &mut policy.rules {
                    r.names.retain(|n| n != s);
                }
                policy.rules.retain(|r| !r.names.is_empty());
                policy.rules.push(
                    Rule::new(
                        [*s],
                        Action::Notify(Notify {
                            handler: Some(spec.name().to_owned()),
                            params: spec.default_params(),
                        }),
                    )
                    .with_comment(format!("asked for: {}", spec.summary)),
                );
                report.allowed.retain(|a| a != s);
                report
                    .notified
                    .push(((*s).to_owned(), spec.name().to_owned()));
            }
        }
    }
    let mut used_baseline = None;
    if let Some(target) = &options.runtime {
        // A profile with notify rules makes the runtime hand a listener over, which its init
        // does under the filter: that mode has its own baseline.
        let mode = Mode {
            listener: target.listener || policy.rules.iter().any(|r| r.action.is_notify()),
            userns: target.userns,
            no_new_privileges: target.no_new_privileges,
        };
        let b = &baseline(target.runtime, target.version.as_deref(), mode)?;
        merge_baseline(&mut policy, b);
        used_baseline = Some((b.clone(), mode));
        report.notes.push(format!(
            "runtime baseline: {} {} with {mode} ({} syscalls its init makes before the workload's execve)",
            b.runtime.as_str(),
            b.version,
            b.syscalls.len()
        ));
        // A notified call waits for the broker: with WAIT_KILLABLE_RECV (5.19) only a fatal
        // signal interrupts that wait once the broker has received it, so the caller cannot
        // be made to restart an emulation half done. crun takes the flag; runc 1.1 refuses any
        // `flags` and Docker drops them, so it is written for crun alone.
        if b.runtime == Runtime::Crun
            && policy.rules.iter().any(|r| r.action.is_notify())
            && !policy.flags.iter().any(|f| f == WAIT_KILLABLE_RECV)
        {
            policy.flags.push(WAIT_KILLABLE_RECV.to_owned());
            report.notes.push(format!(
                "{WAIT_KILLABLE_RECV}: set for crun (notified calls are interrupted only by a fatal signal once received); never for runc or Docker, which refuse or drop it"
            ));
        }
    }
    report.allowed.sort();
    Ok(Generated {
        policy,
        report,
        baseline: used_baseline,
    })
}

pub(super) fn privilege_errnos(m: &Merged) -> String {
    let v: Vec<&str> = m
        .failures
        .keys()
        .filter(|e| is_privilege(e))
        .map(String::as_str)
        .collect();
    v.join("/")
}

/// Syscalls a notify rule must not cover; see [`FD_HANDOVER_SYSCALLS`].
pub fn is_handover_syscall(name: &str) -> bool {
    FD_HANDOVER_SYSCALLS.contains(&name)
}

#[cfg(test)]
mod tests;
