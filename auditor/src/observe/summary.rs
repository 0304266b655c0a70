//! The human summary printed at the end of `auditor learn`.

use std::fmt::Write as _;

use super::model::Observation;

/// A table: syscall, calls, failures (by errno), refused; then totals and loss.
pub fn render(obs: &Observation) -> String {
    let mut out = String::new();
    let w = obs
        .syscalls
        .iter()
        .map(|s| {
            s.name.len()
                + if s.abi == crate::syscalls::Abi::X86_64 {
                    0
                } else {
                    s.abi.as_str().len() + 3
                }
        })
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<w$}  {:>10}  {:>8}  ERRORS / REFUSED",
        "SYSCALL", "CALLS", "FAILED"
    );
    for s in &obs.syscalls {
        let name = if s.abi == crate::syscalls::Abi::X86_64 {
            s.name.clone()
        } else {
            format!("{} ({})", s.name, s.abi)
        };
        let mut notes: Vec<String> = s.failures.iter().map(|(e, n)| format!("{e}×{n}")).collect();
        notes.extend(s.restarts.iter().map(|(e, n)| format!("{e}×{n} (restart)")));
        if !s.refused.is_empty() {
            let r: Vec<String> = s.refused.iter().map(|(e, n)| format!("{e}×{n}")).collect();
            notes.push(format!("REFUSED by filter: {}", r.join(", ")));
        }
        let _ = writeln!(
            out,
            "{:<w$}  {:>10}  {:>8}  {}",
            name,
            s.count,
            s.failed(),
            notes.join(", ")
        );
    }
    let calls: u64 = obs.syscalls.iter().map(|s| s.count).sum();
    let refused: u64 = obs.syscalls.iter().map(|s| s.refused_total()).sum();
    let _ = writeln!(
        out,
        "\n{} distinct syscalls, {} calls, {} refused by a filter, {} threads, {} executables, {:.1}s",
        obs.syscalls.len(),
        calls,
        refused,
        obs.processes.tracked_threads,
        obs.executables.len(),
        obs.duration_ms as f64 / 1000.0
    );
    if obs.loss.total == 0 {
        let _ = writeln!(out, "lost observations: 0");
    } else {
        let what: Vec<String> = obs
            .loss
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "WARNING: {} observations lost ({})",
            obs.loss.total,
            what.join(", ")
        );
    }
    out
}
