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

use super::handlers::{self, Device, FD_HANDOVER_SYSCALLS, SAFE_DEVICES};
use super::model::{
    Action, Arch, Condition, Notify, Op, ParamValue, Params, Policy, Provenance, Rule, ENOSYS,
    EPERM,
};
use crate::observe::model::{ArgumentTuple, Arguments, Observation, SyscallObservation};

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
    #[error(
        "the default action cannot be notify: a call no rule matches has no handler to decide it"
    )]
    NotifyDefault,
    #[error("unknown handler `{name}` requested{}", super::model::fix_suffix(.fix))]
    UnknownHandler { name: String, fix: String },
    #[error("no learned baseline for runtime {runtime}{}", .version.as_ref().map(|v| format!(" {v}")).unwrap_or_default())]
    NoBaseline {
        runtime: String,
        version: Option<String>,
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
    /// The runtime whose own pre-exec syscalls must be allowed too.
    pub baseline: Option<RuntimeBaseline>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            default_action: Action::Errno(EPERM),
            tighten: false,
            extra_handlers: Vec::new(),
            baseline: None,
        }
    }
}

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
/// [`super::baselines`].
pub fn baseline(runtime: Runtime, version: Option<&str>) -> Result<RuntimeBaseline, GenerateError> {
    super::baselines::get(runtime.as_str(), version)
        .map(|b| RuntimeBaseline {
            runtime,
            version: b.version.clone(),
            syscalls: b.syscalls.clone(),
        })
        .ok_or_else(|| GenerateError::NoBaseline {
            runtime: runtime.as_str().to_owned(),
            version: version.map(str::to_owned),
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
    fn privilege_failures(&self) -> u64 {
        self.failures
            .iter()
            .filter(|(e, _)| is_privilege(e))
            .map(|(_, n)| n)
            .sum()
    }
    /// Calls whose answer came from the kernel and was not a privilege refusal.
    fn kernel_answered(&self) -> u64 {
        self.count.saturating_sub(self.privilege_failures())
    }
    fn provenance(&self, of: u32) -> Provenance {
        Provenance {
            inputs: self.inputs,
            of,
            calls: self.count,
            executables: self.executables.keys().cloned().collect(),
        }
    }
}

fn is_privilege(errno: &str) -> bool {
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

/// A generated policy with its report.
#[derive(Clone, Debug)]
pub struct Generated {
    pub policy: Policy,
    pub report: Report,
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
    if options.default_action.is_notify() {
        return Err(GenerateError::NotifyDefault);
    }
    for h in &options.extra_handlers {
        handlers::lookup(h).map_err(|_| GenerateError::UnknownHandler {
            name: h.clone(),
            fix: format!(
                "known: {}",
                handlers::all()
                    .iter()
                    .map(|h| h.name)
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
        match spec {
            Some(spec) if denied_calls > 0 => {
                let rules = notify_rules(m, spec, of, &mut report);
                if rules.iter().any(|r| r.action.is_notify()) {
                    report.notified.push((m.name.clone(), spec.name.to_owned()));
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
        if report.notified.iter().any(|(_, n)| n == h.name) {
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
                            handler: Some(spec.name.to_owned()),
                            params: spec.default_params(),
                        }),
                    )
                    .with_comment(format!("asked for: {}", spec.summary)),
                );
                report.allowed.retain(|a| a != s);
                report
                    .notified
                    .push(((*s).to_owned(), spec.name.to_owned()));
            }
        }
    }
    if let Some(b) = &options.baseline {
        merge_baseline(&mut policy, b);
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
    Ok(Generated { policy, report })
}

fn privilege_errnos(m: &Merged) -> String {
    let v: Vec<&str> = m
        .failures
        .keys()
        .filter(|e| is_privilege(e))
        .map(String::as_str)
        .collect();
    v.join("/")
}

/// Notify rules (and narrowed allow rules for what succeeded) for a syscall a handler serves.
fn notify_rules(
    m: &Merged,
    spec: &handlers::HandlerSpec,
    of: u32,
    report: &mut Report,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut params = Params::new();
    let why = format!(
        "{} of {} calls failed with {} (no privilege here); {} {}",
        m.privilege_failures(),
        m.count,
        privilege_errnos(m),
        spec.name,
        spec.summary
    );
    let denied_tuples: Vec<&ArgumentTuple> = m
        .arguments
        .iter()
        .filter(|t| is_privilege(&t.result))
        .collect();
    match spec.name {
        "emulate-mknod" => {
            let mut devices = BTreeSet::new();
            for t in &denied_tuples {
                if let Arguments::Mknod {
                    file_type,
                    major,
                    minor,
                    ..
                } = &t.args
                {
                    let dev = Device {
                        major: *major,
                        minor: *minor,
                    };
                    if file_type == "char" && SAFE_DEVICES.contains(&dev) {
                        devices.insert(dev);
                    } else {
                        report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: format!(
                                "{file_type} device {major}:{minor} is not one of the safe character devices (whiteout 0:0, null, zero, full, random, urandom, tty, console, ptmx)"
                            ),
                        });
                    }
                }
            }
            if denied_tuples.is_empty() {
                report.notes.push(format!(
                    "{}: no arguments were recorded; the handler allows only the safe character devices",
                    m.name
                ));
                devices.extend(SAFE_DEVICES.iter().copied());
            }
            // Calls that succeeded (fifos, sockets, overlay whiteouts 0:0) stay allowed, narrowed
            // to their file type (and device number for device nodes).
            for t in m.arguments.iter().filter(|t| !is_privilege(&t.result)) {
                if let Arguments::Mknod {
                    file_type,
                    major,
                    minor,
                    ..
                } = &t.args
                {
                    let mode = if m.name == "mknod" { 1 } else { 2 };
                    let ty = match file_type.as_str() {
                        "char" => handlers::S_IFCHR,
                        "block" => handlers::S_IFBLK,
                        "fifo" => 0o010000,
                        "socket" => 0o140000,
                        _ => 0o100000,
                    };
                    let mut conds = vec![Condition {
                        index: mode,
                        op: Op::MaskedEq {
                            mask: handlers::S_IFMT,
                        },
                        value: ty,
                    }];
                    if file_type == "char" || file_type == "block" {
                        conds.push(Condition {
                            index: mode + 1,
                            op: Op::MaskedEq { mask: 0xffff_ffff },
                            value: Device {
                                major: *major,
                                minor: *minor,
                            }
                            .encoded(),
                        });
                    }
                    let rule = Rule::new([m.name.clone()], Action::Allow)
                        .with_args(conds)
                        .with_comment(format!(
                            "{file_type} {major}:{minor} succeeded without help"
                        ));
                    if !rules.iter().any(|r: &Rule| r.same_effect(&rule)) {
                        rules.push(rule);
                    }
                }
            }
            if devices.is_empty() {
                return rules;
            }
            params.insert(
                "devices".into(),
                ParamValue::strings(devices.iter().map(|d| d.to_string())),
            );
        }
        "emulate-mount" => {
            let mut fstypes = BTreeSet::new();
            let mut sources = BTreeSet::new();
            for t in &m.arguments {
                if let Arguments::Mount { source, fstype, .. } = &t.args {
                    match (source, fstype) {
                        (Some(s), Some(f)) => {
                            sources.insert(s.clone());
                            fstypes.insert(f.clone());
                        }
                        _ => report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: "source or file-system type could not be read; add them to the handler's params by hand".into(),
                        }),
                    }
                }
            }
            if fstypes.is_empty() {
                report.denied.push(Denied {
                    syscall: m.name.clone(),
                    calls: m.privilege_failures(),
                    reason: "no mount arguments were recorded, so no file system can be allowed"
                        .into(),
                });
                return rules;
            }
            params.insert("fstypes".into(), ParamValue::strings(fstypes));
            params.insert("sources".into(), ParamValue::strings(sources));
        }
        "emulate-setxattr" => {
            let prefix = "trusted.overlay.";
            let mut ok = false;
            for t in &denied_tuples {
                if let Arguments::Xattr { name, .. } = &t.args {
                    match name {
                        Some(n) if n.starts_with(prefix) => ok = true,
                        other => report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: format!(
                                "attribute {} is outside {prefix}*",
                                other.as_deref().unwrap_or("(unreadable)")
                            ),
                        }),
                    }
                }
            }
            if !ok && !denied_tuples.is_empty() {
                return rules;
            }
            params.insert("prefixes".into(), ParamValue::strings([prefix]));
        }
        _ => {}
    }
    let notify = Action::Notify(Notify {
        handler: Some(spec.name.to_owned()),
        params,
    });
    let cfg = match &notify {
        Action::Notify(n) => spec.config(&n.params).ok(),
        _ => None,
    };
    let alternatives = cfg.map(|c| spec.narrowing(&m.name, &c)).unwrap_or_default();
    let provenance = m.provenance(of);
    if alternatives.is_empty() {
        let mut r = Rule::new([m.name.clone()], notify).with_comment(why);
        r.provenance = Some(provenance);
        // Calls that succeeded cannot be told apart by the filter: the handler serves them all.
        rules.retain(|r| r.action != Action::Allow);
        rules.push(r);
    } else {
        for (i, conds) in alternatives.into_iter().enumerate() {
            let mut r = Rule::new([m.name.clone()], notify.clone()).with_args(conds);
            if i == 0 {
                r = r.with_comment(why.clone());
                r.provenance = Some(provenance.clone());
            }
            rules.push(r);
        }
    }
    rules
}

/// CLONE_NEW* flags clone(2) accepts (CLONE_NEWTIME shares its bit with the exit signal there).
const CLONE_NS_MASK: u64 = (libc::CLONE_NEWNS
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
fn tighten(m: &Merged, of: u32, report: &mut Report) -> Option<Vec<Rule>> {
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

/// Syscalls a notify rule must not cover; see [`FD_HANDOVER_SYSCALLS`].
pub fn is_handover_syscall(name: &str) -> bool {
    FD_HANDOVER_SYSCALLS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::model::{Host, Loss, Processes, Target};

    fn sys(name: &str, count: u64) -> SyscallObservation {
        SyscallObservation {
            name: name.into(),
            abi: Abi::X86_64,
            nr: 0,
            count,
            first_seen_ms: 0.0,
            failures: BTreeMap::new(),
            restarts: BTreeMap::new(),
            refused: BTreeMap::new(),
            executables: BTreeMap::from([("/bin/sh".to_owned(), count)]),
            refused_executables: Default::default(),
            arguments: Vec::new(),
            arguments_overflow: 0,
            argument_read_failures: 0,
        }
    }

    pub(crate) fn obs(syscalls: Vec<SyscallObservation>) -> Observation {
        Observation {
            format: crate::observe::model::FORMAT.into(),
            version: crate::observe::model::VERSION,
            auditor_version: "test".into(),
            host: Host {
                kernel: "6.18".into(),
                arch: "x86_64".into(),
            },
            target: Target::Command {
                argv: vec!["sh".into()],
            },
            started_at: "2026-01-01T00:00:00Z".into(),
            ended_at: "2026-01-01T00:00:01Z".into(),
            duration_ms: 1000,
            syscalls,
            executables: Vec::new(),
            processes: Processes::default(),
            loss: Loss::default(),
        }
    }

    fn mknod_tuple(result: &str, ty: &str, major: u32, minor: u32) -> ArgumentTuple {
        ArgumentTuple {
            calls: 1,
            result: result.into(),
            args: Arguments::Mknod {
                dirfd: Some(-100),
                path: Some("/dev/x".into()),
                file_type: ty.into(),
                perm: 0o666,
                major,
                minor,
            },
        }
    }

    #[test]
    fn merges_and_allows_what_succeeded() -> Result<(), GenerateError> {
        let mut open = sys("openat", 10);
        open.failures.insert("ENOENT".into(), 4);
        let a = obs(vec![sys("read", 5), open.clone()]);
        let b = obs(vec![sys("read", 7), sys("getpid", 1)]);
        let g = generate(&[a, b], &GenerateOptions::default())?;
        assert_eq!(g.report.allowed, vec!["getpid", "openat", "read"]);
        let every = &g.policy.rules[0];
        assert_eq!(every.names, vec!["read"]);
        assert_eq!(
            every.provenance.as_ref().map(|p| (p.inputs, p.of, p.calls)),
            Some((2, 2, 12))
        );
        let some = &g.policy.rules[1];
        assert_eq!(some.names, vec!["getpid", "openat"]);
        assert_eq!(some.provenance.as_ref().map(|p| p.inputs), Some(1));
        assert_eq!(g.policy.default_action, Action::Errno(EPERM));
        Ok(())
    }

    #[test]
    fn refused_calls_are_candidates_not_rules() -> Result<(), GenerateError> {
        let mut ptrace = sys("ptrace", 0);
        ptrace.refused.insert("EPERM".into(), 3);
        let g = generate(
            &[obs(vec![sys("read", 1), ptrace])],
            &GenerateOptions::default(),
        )?;
        assert_eq!(
            g.report.candidates,
            vec![(
                "ptrace".to_owned(),
                BTreeMap::from([("EPERM".to_owned(), 3)])
            )]
        );
        assert!(g.policy.names().all(|(_, n)| n != "ptrace"));
        Ok(())
    }

    #[test]
    fn eperm_mknod_becomes_a_narrowed_notify_rule_and_block_devices_are_reported(
    ) -> Result<(), GenerateError> {
        let mut mk = sys("mknodat", 3);
        mk.failures.insert("EPERM".into(), 2);
        mk.arguments = vec![
            mknod_tuple("EPERM", "char", 1, 3),
            mknod_tuple("EPERM", "block", 8, 0),
            mknod_tuple("ok", "fifo", 0, 0),
        ];
        let g = generate(&[obs(vec![mk])], &GenerateOptions::default())?;
        assert_eq!(
            g.report.notified,
            vec![("mknodat".to_owned(), "emulate-mknod".to_owned())]
        );
        assert!(
            g.report
                .denied
                .iter()
                .any(|d| d.reason.contains("block device 8:0")),
            "{:?}",
            g.report.denied
        );
        let notify: Vec<&Rule> = g
            .policy
            .rules
            .iter()
            .filter(|r| r.action.is_notify())
            .collect();
        assert_eq!(notify.len(), 1);
        assert_eq!(notify[0].args[1].value, 0x103);
        assert!(notify[0]
            .comment
            .as_deref()
            .is_some_and(|c| c.contains("EPERM")));
        // The fifo that succeeded stays allowed, narrowed to fifos.
        assert!(g
            .policy
            .rules
            .iter()
            .any(|r| r.action == Action::Allow && r.args[0].value == 0o010000));
        Ok(())
    }

    #[test]
    fn eperm_without_handler_is_left_denied_and_reported() -> Result<(), GenerateError> {
        let mut kexec = sys("kexec_load", 1);
        kexec.failures.insert("EPERM".into(), 1);
        let g = generate(&[obs(vec![kexec])], &GenerateOptions::default())?;
        assert!(g.policy.rules.is_empty());
        assert_eq!(g.report.denied.len(), 1);
        assert!(g
            .report
            .render(&g.policy.default_action)
            .contains("kexec_load (1 calls)"));
        Ok(())
    }

    #[test]
    fn mount_gets_observed_fstypes_and_sources_and_fsopen_enosys() -> Result<(), GenerateError> {
        let mut mount = sys("mount", 2);
        mount.failures.insert("EPERM".into(), 1);
        mount.arguments = vec![
            ArgumentTuple {
                calls: 1,
                result: "EPERM".into(),
                args: Arguments::Mount {
                    source: Some("/dev/loop0".into()),
                    target: Some("/mnt".into()),
                    fstype: Some("ext4".into()),
                    flags: 0,
                    flag_names: vec![],
                },
            },
            ArgumentTuple {
                calls: 1,
                result: "ok".into(),
                args: Arguments::Mount {
                    source: Some("tmpfs".into()),
                    target: Some("/tmp".into()),
                    fstype: Some("tmpfs".into()),
                    flags: 0,
                    flag_names: vec![],
                },
            },
        ];
        let g = generate(&[obs(vec![mount])], &GenerateOptions::default())?;
        let r = g
            .policy
            .rules
            .iter()
            .find(|r| r.names == ["mount"])
            .ok_or(GenerateError::NoInput)?;
        let Action::Notify(n) = &r.action else {
            panic!("{r:?}")
        };
        assert_eq!(
            n.params.get("fstypes"),
            Some(&ParamValue::strings(["ext4", "tmpfs"]))
        );
        assert_eq!(
            n.params.get("sources"),
            Some(&ParamValue::strings(["/dev/loop0", "tmpfs"]))
        );
        assert!(g
            .policy
            .rules
            .iter()
            .any(|r| r.names == ["fsopen"] && r.action == Action::Errno(ENOSYS)));
        Ok(())
    }

    #[test]
    fn wait_killable_recv_is_set_for_crun_only() -> Result<(), GenerateError> {
        let observed = || {
            let mut m = sys("mknodat", 1);
            m.failures.insert("EPERM".into(), 1);
            vec![obs(vec![m, sys("read", 3)])]
        };
        for (runtime, expected) in [
            (Runtime::Crun, true),
            (Runtime::Runc, false),
            (Runtime::Lxc, false),
        ] {
            let options = GenerateOptions {
                baseline: Some(baseline(runtime, None)?),
                ..GenerateOptions::default()
            };
            let g = generate(&observed(), &options)?;
            assert!(
                g.policy.rules.iter().any(|r| r.action.is_notify()),
                "{runtime:?}: no notify rule"
            );
            assert_eq!(
                g.policy.flags.iter().any(|f| f == WAIT_KILLABLE_RECV),
                expected,
                "{runtime:?}"
            );
        }
        // No notify rule, no flag.
        let options = GenerateOptions {
            baseline: Some(baseline(Runtime::Crun, None)?),
            ..GenerateOptions::default()
        };
        let g = generate(&[obs(vec![sys("read", 3)])], &options)?;
        assert!(g.policy.flags.is_empty());
        Ok(())
    }

    #[test]
    fn tighten_socket_and_clone() -> Result<(), GenerateError> {
        let mut sock = sys("socket", 2);
        sock.arguments = vec![ArgumentTuple {
            calls: 2,
            result: "ok".into(),
            args: Arguments::Socket {
                domain: 1,
                domain_name: "AF_UNIX".into(),
                socket_type: 1,
                type_name: "SOCK_STREAM".into(),
                protocol: 0,
            },
        }];
        let mut clone = sys("clone", 1);
        clone.arguments = vec![ArgumentTuple {
            calls: 1,
            result: "ok".into(),
            args: Arguments::Namespaces {
                flags: 0x01200011,
                namespaces: vec![],
            },
        }];
        let mut ioctl = sys("ioctl", 2);
        ioctl.arguments_overflow = 1;
        let opts = GenerateOptions {
            tighten: true,
            ..GenerateOptions::default()
        };
        let g = generate(&[obs(vec![sock, clone, ioctl])], &opts)?;
        let s = g
            .policy
            .rules
            .iter()
            .find(|r| r.names == ["socket"])
            .ok_or(GenerateError::NoInput)?;
        assert_eq!(
            s.args,
            vec![Condition {
                index: 0,
                op: Op::MaskedEq { mask: 0xffff_ffff },
                value: 1
            }]
        );
        let c = g
            .policy
            .rules
            .iter()
            .find(|r| r.names == ["clone"])
            .ok_or(GenerateError::NoInput)?;
        assert_eq!(
            c.args,
            vec![Condition {
                index: 0,
                op: Op::MaskedEq {
                    mask: CLONE_NS_MASK
                },
                value: 0
            }]
        );
        assert!(g
            .policy
            .rules
            .iter()
            .any(|r| r.names == ["clone3"] && r.action == Action::Errno(ENOSYS)));
        // ioctl's arguments are incomplete: allowed plainly, with a note.
        assert!(g
            .policy
            .rules
            .iter()
            .any(|r| r.names.contains(&"ioctl".to_owned()) && r.args.is_empty()));
        assert!(g
            .report
            .notes
            .iter()
            .any(|n| n.starts_with("ioctl: not tightened")));
        Ok(())
    }

    #[test]
    fn notify_default_is_refused() {
        let opts = GenerateOptions {
            default_action: Action::Notify(Notify::default()),
            ..GenerateOptions::default()
        };
        assert!(matches!(
            generate(&[obs(vec![])], &opts),
            Err(GenerateError::NotifyDefault)
        ));
    }

    #[test]
    fn sysinfo_only_when_asked() -> Result<(), GenerateError> {
        let g = generate(&[obs(vec![sys("sysinfo", 1)])], &GenerateOptions::default())?;
        assert!(g.policy.rules.iter().all(|r| !r.action.is_notify()));
        let opts = GenerateOptions {
            extra_handlers: vec!["sysinfo".into()],
            ..GenerateOptions::default()
        };
        let g = generate(&[obs(vec![sys("sysinfo", 1)])], &opts)?;
        assert!(g
            .policy
            .rules
            .iter()
            .any(|r| r.names == ["sysinfo"] && r.action.is_notify()));
        assert!(g
            .policy
            .rules
            .iter()
            .all(|r| r.action.is_notify() || !r.names.contains(&"sysinfo".to_owned())));
        Ok(())
    }

    #[test]
    fn baseline_hook_adds_missing_syscalls() {
        let mut p = Policy {
            rules: vec![Rule::new(["read"], Action::Allow)],
            ..Policy::default()
        };
        let b = RuntimeBaseline {
            runtime: Runtime::Runc,
            version: "1.1.5".into(),
            syscalls: vec!["read".into(), "statx".into()],
        };
        merge_baseline(&mut p, &b);
        assert_eq!(p.rules[1].names, vec!["statx"]);
        assert!(
            baseline(Runtime::Runc, Some("0.0.0")).is_err(),
            "an unknown version has no baseline"
        );
    }
}
