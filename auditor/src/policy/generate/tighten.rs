//! Argument rules for syscalls whose arguments the workload always passed the same way.

use std::collections::BTreeSet;

use super::{Merged, Report};
use crate::observe::model::Arguments;
use crate::policy::model::{Action, Condition, Op, Rule, ENOSYS};

/// CLONE_NEW* flags clone(2) accepts (CLONE_NEWTIME shares its bit with the exit signal there).
pub(super) const CLONE_NS_MASK: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
/// CLONE_NEW* flags unshare(2) accepts, CLONE_NEWTIME (0x80) included.
const UNSHARE_NS_MASK: u64 = CLONE_NS_MASK | linux_raw_sys::general::CLONE_NEWTIME as u64;
/// At most this many distinct values become argument rules; more means the argument is not
/// really constant and a rule per value would only slow the filter.
const MAX_TIGHTEN_VALUES: usize = 32;

/// Argument-level allow rules for scalar arguments, if every call's value is known.
pub(super) fn tighten(m: &Merged, of: u32, report: &mut Report) -> Option<Vec<Rule>> {
    // (argument index, mask, how to read the value, label)
    type Get = fn(&Arguments) -> Option<u64>;
    let (index, mask, get, what): (u8, u64, Get, &str) = match m.name.as_str() {
        "socket" => (
            0,
            0xffff_ffff,
            |a| match a {
                Arguments::Socket { domain, .. } => Some(*domain),
                _ => None,
            },
            "socket domain",
        ),
        "clone" => (
            0,
            CLONE_NS_MASK,
            |a| match a {
                Arguments::Namespaces { flags, .. } => Some(*flags),
                _ => None,
            },
            "clone namespace flags",
        ),
        "unshare" => (
            0,
            UNSHARE_NS_MASK,
            |a| match a {
                Arguments::Namespaces { flags, .. } => Some(*flags),
                _ => None,
            },
            "unshare namespace flags",
        ),
        "setns" => (
            1,
            0xffff_ffff,
            |a| match a {
                Arguments::Namespaces { flags, .. } => Some(*flags),
                _ => None,
            },
            "setns namespace type",
        ),
        "personality" => (
            0,
            0xffff_ffff,
            |a| match a {
                Arguments::Personality { persona } => Some(*persona),
                _ => None,
            },
            "personality",
        ),
        "prctl" => (
            0,
            0xffff_ffff,
            |a| match a {
                Arguments::Prctl { option, .. } => Some(*option),
                _ => None,
            },
            "prctl option",
        ),
        "ioctl" => (
            1,
            0xffff_ffff,
            |a| match a {
                Arguments::Ioctl { request } => Some(*request),
                _ => None,
            },
            "ioctl request",
        ),
        "bpf" => (
            0,
            0xffff_ffff,
            |a| match a {
                Arguments::Bpf { cmd, .. } => Some(*cmd),
                _ => None,
            },
            "bpf command",
        ),
        _ => return None,
    };
    let covered: u64 = m.arguments.iter().map(|t| t.calls).sum();
    if m.arguments_incomplete || covered < m.count {
        report.notes.push(format!(
            "{}: not tightened, {} of {} calls have recorded arguments",
            m.name, covered, m.count
        ));
        return None;
    }
    let mut values = BTreeSet::new();
    for t in &m.arguments {
        values.insert(get(&t.args)? & mask);
    }
    if values.len() > MAX_TIGHTEN_VALUES {
        report.notes.push(format!(
            "{}: not tightened, {} distinct values of the {what}",
            m.name,
            values.len()
        ));
        return None;
    }
    let mut rules = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut r = Rule::new([m.name.clone()], Action::Allow).with_args(vec![Condition {
            index,
            op: Op::MaskedEq { mask },
            value: *v,
        }]);
        if i == 0 {
            r = r.with_comment(format!("tightened: only the observed {what} value(s)"));
            r.provenance = Some(m.provenance(of));
        }
        rules.push(r);
    }
    if m.name == "clone" {
        // clone3 passes its flags in memory the filter cannot read: answer ENOSYS so that libc
        // falls back to clone(2), where the flags above are checked.
        rules.push(
            Rule::new(["clone3"], Action::Errno(ENOSYS))
                .with_comment("clone is tightened by flags; clone3's flags are in memory, so ENOSYS makes libc fall back to clone"),
        );
    }
    Some(rules)
}
