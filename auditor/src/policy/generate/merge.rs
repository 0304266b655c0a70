//! Several observations merged into one view per syscall.

use std::collections::{BTreeMap, BTreeSet};

use crate::observe::model::{ArgumentTuple, Observation, SyscallObservation};
use crate::policy::model::Provenance;
use crate::syscalls::Abi;

/// One syscall across all observations.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    pub name: String,
    pub abis: BTreeSet<Abi>,
    pub count: u64,
    pub failures: BTreeMap<String, u64>,
    pub refused: BTreeMap<String, u64>,
    pub executables: BTreeMap<String, u64>,
    /// Distinct argument tuples (args, result) with summed calls.
    pub arguments: Vec<ArgumentTuple>,
    pub arguments_incomplete: bool,
    /// Observations in which it appeared.
    pub inputs: u32,
}

impl Merged {
    pub(super) fn privilege_failures(&self) -> u64 {
        self.failures
            .iter()
            .filter(|(e, _)| is_privilege(e))
            .map(|(_, n)| n)
            .sum()
    }
    /// Calls whose answer came from the kernel and was not a privilege refusal.
    pub(super) fn kernel_answered(&self) -> u64 {
        self.count.saturating_sub(self.privilege_failures())
    }
    pub(super) fn provenance(&self, of: u32) -> Provenance {
        Provenance {
            inputs: self.inputs,
            of,
            calls: self.count,
            executables: self.executables.keys().cloned().collect(),
        }
    }
}

pub(super) fn is_privilege(errno: &str) -> bool {
    errno == "EPERM" || errno == "EACCES"
}

/// Merge observations by syscall name (the policy is per name; each ABI is noted).
pub fn merge_observations(observations: &[Observation]) -> BTreeMap<String, Merged> {
    let mut out: BTreeMap<String, Merged> = BTreeMap::new();
    for obs in observations {
        let mut seen_here = BTreeSet::new();
        for s in &obs.syscalls {
            let m = out.entry(s.name.clone()).or_insert_with(|| Merged {
                name: s.name.clone(),
                ..Merged::default()
            });
            merge_one(m, s);
            if seen_here.insert(s.name.clone()) {
                m.inputs += 1;
            }
        }
    }
    out
}

fn merge_one(m: &mut Merged, s: &SyscallObservation) {
    m.abis.insert(s.abi);
    m.count += s.count;
    for (k, v) in &s.failures {
        *m.failures.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &s.refused {
        *m.refused.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &s.executables {
        *m.executables.entry(k.clone()).or_default() += v;
    }
    for t in &s.arguments {
        match m
            .arguments
            .iter_mut()
            .find(|x| x.args == t.args && x.result == t.result)
        {
            Some(x) => x.calls += t.calls,
            None => m.arguments.push(t.clone()),
        }
    }
    if s.arguments_overflow > 0 || s.argument_read_failures > 0 {
        m.arguments_incomplete = true;
    }
}
