//! The container runtime a profile is for, and the baseline of syscalls it needs itself.

use std::collections::BTreeSet;

use super::GenerateError;
pub use crate::policy::baselines::Mode;
use crate::policy::model::{Action, Policy, Rule};

/// A container runtime (the one `Runtime` of auditor: baselines, `generate --runtime`,
/// `learn --container --runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Runtime {
    Runc,
    Crun,
    Lxc,
}

impl Runtime {
    /// Its name, as its command and auditor's options spell it.
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Lxc => "lxc",
        }
    }
    pub fn parse(s: &str) -> Option<Runtime> {
        match s {
            "runc" => Some(Runtime::Runc),
            "crun" => Some(Runtime::Crun),
            "lxc" => Some(Runtime::Lxc),
            _ => None,
        }
    }
}

/// The runtime a profile is generated for and how it will run the container: [`Mode`] without
/// the listener, which follows from the profile (notify rules need one) unless forced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeTarget {
    pub runtime: Runtime,
    /// A shipped version; the newest when not given.
    pub version: Option<String>,
    /// The profile names a listener (or an engine adds one) even without notify rules.
    pub listener: bool,
    pub userns: bool,
    pub no_new_privileges: bool,
}

impl RuntimeTarget {
    /// `runtime`, newest version, no user namespace, `noNewPrivileges` on.
    pub fn new(runtime: Runtime) -> RuntimeTarget {
        RuntimeTarget {
            runtime,
            version: None,
            listener: false,
            userns: false,
            no_new_privileges: true,
        }
    }
}

/// The syscalls a runtime makes itself between loading the filter and `execve` of the workload:
/// a profile it loads must allow them too (runc 1.3.3, for instance, started needing openat2 and
/// statx there). Learned by running the runtime under `auditor learn`, from the return of its
/// init's `seccomp()` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeBaseline {
    pub runtime: Runtime,
    pub version: String,
    pub syscalls: Vec<String>,
}

/// The OCI name of `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
pub const WAIT_KILLABLE_RECV: &str = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";

/// The learned baseline for `runtime` (a given version, or the newest shipped one); see
/// [`crate::policy::baselines`].
pub fn baseline(
    runtime: Runtime,
    version: Option<&str>,
    mode: Mode,
) -> Result<RuntimeBaseline, GenerateError> {
    crate::policy::baselines::get(runtime.as_str(), version, mode)
        .map(|b| RuntimeBaseline {
            runtime,
            version: b.version.clone(),
            syscalls: b.syscalls.clone(),
        })
        .ok_or_else(|| GenerateError::NoBaseline {
            runtime: runtime.as_str().to_owned(),
            version: version.map(str::to_owned),
            mode,
        })
}

/// Add an allow rule for the baseline's syscalls that the policy does not allow yet.
pub fn merge_baseline(policy: &mut Policy, baseline: &RuntimeBaseline) {
    let allowed: BTreeSet<&str> = policy
        .rules
        .iter()
        .filter(|r| r.action == Action::Allow && r.args.is_empty())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let missing: Vec<String> = baseline
        .syscalls
        .iter()
        .filter(|s| !allowed.contains(s.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        policy
            .rules
            .push(Rule::new(missing, Action::Allow).with_comment(format!(
                "needed by {} {} between loading the filter and execve",
                baseline.runtime.as_str(),
                baseline.version
            )));
    }
}
