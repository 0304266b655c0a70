//! Validation and lint of a policy: what `auditor check` reports and what `compile` refuses.
//!
//! Errors make a filter impossible or unsafe to build (unknown names in a native policy, notify
//! as the default action or on the fd hand-over syscalls, handlers that do not exist, rules that
//! contradict each other). Warnings are for a reviewer: duplicates, unreachable rules, risky
//! allows, each with its reason.

use std::collections::BTreeMap;
use std::fmt;

use super::handlers::{self, FD_HANDOVER_SYSCALLS};
use super::model::{Action, Condition, Location, Op, Policy, SourceFormat};
use crate::syscalls::Abi;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem found in a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub location: Option<Location>,
    /// Index of the rule, if about one.
    pub rule: Option<usize>,
    pub message: String,
    /// How to fix it (may be empty).
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.location {
            write!(f, "{l}: ")?;
        }
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: {}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, " ({})", self.fix)?;
        }
        Ok(())
    }
}

/// Syscalls whose unconditional allow deserves a reviewer's second look, and why.
pub const RISKY: &[(&str, &str)] = &[
    ("ptrace", "can read and change the memory of other processes, and escape a seccomp filter on kernels before 4.8"),
    ("process_vm_writev", "writes the memory of other processes"),
    ("kexec_load", "loads a new kernel to boot into"),
    ("kexec_file_load", "loads a new kernel to boot into"),
    ("bpf", "loads programs into the kernel; a large attack surface"),
    ("perf_event_open", "observes the system and has had many kernel bugs"),
    ("keyctl", "the kernel keyring is not namespaced"),
    ("add_key", "the kernel keyring is not namespaced"),
    ("request_key", "the kernel keyring is not namespaced"),
    ("init_module", "loads kernel modules"),
    ("finit_module", "loads kernel modules"),
    ("delete_module", "unloads kernel modules"),
    ("mount", "changes the file-system view; prefer a notify rule with emulate-mount"),
    ("umount2", "can remove mounts that hide host paths"),
    ("pivot_root", "changes the root file system"),
    ("open_by_handle_at", "can open host files by handle (the 'shocker' escape)"),
    ("userfaultfd", "widens race windows in kernel exploits"),
    ("iopl", "raw I/O port access"),
    ("ioperm", "raw I/O port access"),
    ("swapon", "changes host swap"),
    ("swapoff", "changes host swap"),
    ("reboot", "reboots the host (or the pid namespace)"),
    ("acct", "switches process accounting for the host"),
    ("settimeofday", "sets the host clock"),
    ("clock_settime", "sets the host clock"),
    ("syslog", "reads the kernel log"),
    ("quotactl", "changes disk quotas"),
    ("fanotify_init", "watches the whole file system"),
    ("lookup_dcookie", "leaks kernel information"),
    ("setns", "joins other namespaces given a descriptor"),
];

const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;

/// The ABIs whose tables the policy's names are checked against.
fn abis(policy: &Policy) -> Vec<Abi> {
    if policy.architectures.is_empty() {
        return vec![Abi::X86_64, Abi::I386, Abi::X32];
    }
    policy
        .architectures
        .iter()
        .filter_map(|a| a.abi())
        .collect()
}

/// Whether some architecture of the policy has no table here (names cannot all be checked).
fn has_foreign_arch(policy: &Policy) -> bool {
    policy.architectures.iter().any(|a| a.abi().is_none())
}

fn known(name: &str, abis: &[Abi]) -> bool {
    abis.iter()
        .any(|a| crate::syscalls::number(*a, name).is_some())
}

/// How the policy will be used: what is allowed depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// For `auditor enforce --interactive`: every call no rule decides is prompted for, so
    /// notify as the default action is what the filter does anyway and is accepted.
    pub interactive: bool,
}

/// Syscalls an interactive filter never notifies when no rule decides them: the launcher's
/// child makes `execve` (and, if that fails, `write` and `exit_group`) after installing the
/// filter and before auditor's broker runs (see `crate::launch::filter`), and a prompt on the
/// way out would hold a dying process. `exit` and `exit_group` are allowed; `execve` and
/// `write` take the policy's default action, or are allowed when that is notify.
pub const INTERACTIVE_EXEMPT: &[&str] = &["execve", "write", "exit", "exit_group"];

/// The checks that must pass before a filter is built (what `compile` and `enforce` refuse).
pub fn validate(policy: &Policy) -> Vec<Finding> {
    validate_with(policy, CheckOptions::default())
}

/// [`validate`] for a use of the policy.
pub fn validate_with(policy: &Policy, options: CheckOptions) -> Vec<Finding> {
    check_with(policy, options)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

/// Every finding, errors first in source order.
pub fn check(policy: &Policy) -> Vec<Finding> {
    check_with(policy, CheckOptions::default())
}

/// [`check`] for a use of the policy.
pub fn check_with(policy: &Policy, options: CheckOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let abis = abis(policy);
    let lenient_names = policy.source == SourceFormat::Oci || has_foreign_arch(policy);

    let default_location = Some(
        policy
            .default_location
            .unwrap_or(Location { line: 1, column: 1 }),
    );
    if policy.default_action.is_notify() && !options.interactive {
        out.push(Finding {
            severity: Severity::Error,
            location: default_location,
            rule: None,
            message: "the default action is notify: an interactive policy, which only `auditor enforce --interactive` and `auditor agent` can serve (every call no rule matches is prompted for)".into(),
            fix: "check it with `auditor check --interactive` and run it with `auditor enforce --interactive` or put it in `auditor agent`'s policy directory, or use errno and notify rules for the syscalls that need the broker".into(),
        });
    }
    if options.interactive && policy.source == SourceFormat::Oci {
        out.push(Finding {
            severity: Severity::Error,
            location: None,
            rule: None,
            message: "`auditor enforce --interactive` needs a native (TOML) policy: always answers are appended to the policy file with a comment saying who decided, and an OCI JSON profile cannot keep comments".into(),
            fix: "convert it with `auditor merge -o policy.toml PROFILE PROFILE` and use that".into(),
        });
    }
    if options.interactive {
        let decided: std::collections::BTreeSet<&str> = policy
            .rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        let exempt: Vec<&str> = ["execve", "write"]
            .into_iter()
            .filter(|n| !decided.contains(n))
            .collect();
        if !exempt.is_empty() {
            let verb = if exempt.len() == 1 {
                "it is"
            } else {
                "they are"
            };
            let what = if policy.default_action.is_notify() {
                format!("{verb} allowed")
            } else {
                format!(
                    "{verb} given the default action ({})",
                    policy.default_action
                )
            };
            out.push(Finding {
                severity: Severity::Warning,
                location: default_location,
                rule: None,
                message: format!(
                    "interactive mode never prompts for {}: the launcher's child makes these calls before the broker runs, so {what}",
                    exempt.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" and ")
                ),
                fix: "add rules that decide them".into(),
            });
        }
    }

    // (name, conditions) -> (rule index, action) of the first rule that has them.
    let mut seen: BTreeMap<(String, Vec<Condition>), (usize, Action)> = BTreeMap::new();
    // name -> rule index of the first rule without conditions.
    let mut unconditional: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in policy.rules.iter().enumerate() {
        if !r.args.is_empty() {
            continue;
        }
        for n in &r.names {
            unconditional.entry(n.clone()).or_insert(i);
        }
    }

    for (i, r) in policy.rules.iter().enumerate() {
        let rule_loc = r.origin.as_ref().map(|o| o.rule);
        let mut args = r.args.clone();
        args.sort();
        for (j, name) in r.names.iter().enumerate() {
            let loc = r.name_location(j).or(rule_loc);
            let finding = |severity, message: String, fix: String| Finding {
                severity,
                location: loc,
                rule: Some(i),
                message,
                fix,
            };

            if !known(name, &abis) {
                let arches = if policy.architectures.is_empty() {
                    "x86_64, x86 or x32".to_owned()
                } else {
                    policy
                        .architectures
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let suggestion = abis.iter().find_map(|a| crate::syscalls::suggest(*a, name));
                let fix = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => String::new(),
                };
                if lenient_names {
                    out.push(finding(
                        Severity::Warning,
                        format!("`{name}` is not a syscall on {arches}; runtimes skip it there"),
                        fix,
                    ));
                } else {
                    out.push(finding(
                        Severity::Error,
                        format!("unknown syscall `{name}` on {arches}"),
                        fix,
                    ));
                }
            }

            if let Action::Notify(n) = &r.action {
                if FD_HANDOVER_SYSCALLS.contains(&name.as_str()) {
                    out.push(finding(
                        Severity::Error,
                        format!("notify on `{name}`"),
                        "the runtime needs it to hand the listener fd over (runc and crun refuse such profiles); allow or deny it".into(),
                    ));
                } else {
                    match handlers::resolve(n.handler.as_deref(), name) {
                        Err(e) => out.push(finding(Severity::Error, e.to_string(), String::new())),
                        Ok(spec) => {
                            if let Err(e) = spec.config(&n.params) {
                                out.push(finding(Severity::Error, e.to_string(), String::new()));
                            }
                        }
                    }
                }
            }

            match seen.get(&(name.clone(), args.clone())) {
                Some((first, action)) if *action == r.action => out.push(finding(
                    Severity::Warning,
                    format!("duplicate rule for `{name}` (same as rule {})", first + 1),
                    "delete one of them".into(),
                )),
                Some((first, action)) => out.push(finding(
                    Severity::Error,
                    format!(
                        "`{name}` is both {} (rule {}) and {} (rule {}) for the same arguments",
                        action,
                        first + 1,
                        r.action,
                        i + 1
                    ),
                    "keep one action".into(),
                )),
                None => {
                    seen.insert((name.clone(), args.clone()), (i, r.action.clone()));
                    if let Some(&u) = unconditional.get(name) {
                        if u != i && !r.args.is_empty() {
                            out.push(finding(
                                Severity::Warning,
                                format!("rule for `{name}` is unreachable: rule {} decides every call of it", u + 1),
                                "a rule without conditions wins in libseccomp; add conditions to that rule or delete this one".into(),
                            ));
                        }
                    }
                }
            }

            if matches!(r.action, Action::Allow | Action::Log) {
                if let Some((_, why)) = RISKY.iter().find(|(n, _)| n == name) {
                    if r.args.is_empty() {
                        out.push(finding(
                            Severity::Warning,
                            format!("allows `{name}`: {why}"),
                            "make sure the workload needs it".into(),
                        ));
                    }
                }
                if name == "unshare" && !excludes_newuser(&r.args, 0) {
                    out.push(finding(
                        Severity::Warning,
                        "allows `unshare` of a user namespace: a user namespace opens kernel interfaces otherwise reserved to root".into(),
                        "add a condition such as { index = 0, op = \"masked-equal\", mask = 0x10000000, value = 0 }".into(),
                    ));
                }
                if (name == "clone") && !r.args.is_empty() && !excludes_newuser(&r.args, 0) {
                    out.push(finding(
                        Severity::Warning,
                        "allows `clone` with CLONE_NEWUSER".into(),
                        "a user namespace opens kernel interfaces otherwise reserved to root"
                            .into(),
                    ));
                }
            }
        }
        if r.action == policy.default_action && !policy.default_action.is_notify() {
            out.push(Finding {
                severity: Severity::Warning,
                location: rule_loc,
                rule: Some(i),
                message: format!(
                    "rule {} has the default action ({}): it changes nothing",
                    i + 1,
                    r.action
                ),
                fix: "delete it, or give it another action".into(),
            });
        }
    }
    out.extend(overlay_without_its_attributes(policy));
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.location.cmp(&b.location))
    });
    out
}

/// The handler configuration of a notify rule for `name`, if it is valid.
fn handler_config(
    r: &crate::policy::model::Rule,
    name: &str,
) -> Option<crate::policy::handlers::HandlerConfig> {
    let Action::Notify(n) = &r.action else {
        return None;
    };
    crate::policy::handlers::config_for(n, name)
        .ok()
        .map(|(_, c)| c)
}

/// An emulated overlay mount without emulated `trusted.overlay.*` attributes: the mount works,
/// but a nested engine cannot mark a directory opaque (the kernel refuses the attribute in a
/// user namespace), so what its image deleted below shows through.
fn overlay_without_its_attributes(policy: &Policy) -> Vec<Finding> {
    use crate::policy::handlers::HandlerConfig;
    let sets_overlay_attributes = policy.rules.iter().any(|r| {
        r.names.iter().any(|n| {
            matches!(handler_config(r, n), Some(HandlerConfig::Setxattr { prefixes })
                if prefixes.iter().any(|p| "trusted.overlay.opaque".starts_with(p.as_str())))
        })
    });
    if sets_overlay_attributes {
        return Vec::new();
    }
    policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.names.iter().any(|n| {
                matches!(handler_config(r, n), Some(HandlerConfig::Mount { fstypes, .. }) if fstypes.contains("overlay"))
            })
        })
        .map(|(i, r)| Finding {
            severity: Severity::Warning,
            location: r.origin.as_ref().map(|o| o.rule),
            rule: Some(i),
            message: "emulate-mount mounts overlay, but no emulate-setxattr rule sets trusted.overlay.* attributes: a nested engine cannot mark directories opaque, so files its image deleted show through".into(),
            fix: "add a notify rule for setxattr, lsetxattr and fsetxattr with handler = \"emulate-setxattr\" (its default prefix is trusted.overlay.)".into(),
        })
        .collect()
}

/// Whether the conditions on argument `index` make CLONE_NEWUSER impossible.
fn excludes_newuser(args: &[Condition], index: u8) -> bool {
    args.iter().any(|c| {
        c.index == index
            && match c.op {
                Op::MaskedEq { mask } => mask & CLONE_NEWUSER != 0 && c.value & CLONE_NEWUSER == 0,
                Op::Eq => c.value & CLONE_NEWUSER == 0,
                Op::Lt => c.value <= CLONE_NEWUSER,
                _ => false,
            }
    })
}

/// The exit status of `auditor check` for these findings: 0 clean, 1 warnings, 2 errors.
pub fn exit_status(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        None => 0,
        Some(Severity::Warning) => 1,
        Some(Severity::Error) => 2,
    }
}

/// A container engine that passes a seccomp profile on to its runtime, and what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Docker 20.10 keeps defaultAction, architectures and the rules; it drops
    /// `listenerPath`, `listenerMetadata`, `flags` and `defaultErrnoRet`.
    Docker,
    /// podman 4.3 keeps every field (runc and crun get `listenerPath`).
    Podman,
}

impl Engine {
    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "docker" => Some(Engine::Docker),
            "podman" => Some(Engine::Podman),
            _ => None,
        }
    }
}

/// What `engine` would do to the policy's profile that the user should know: the fields it
/// drops, and notify rules it leaves without a listener.
pub fn engine_findings(policy: &Policy, engine: Engine) -> Vec<Finding> {
    let mut out = Vec::new();
    let warn = |message: String, fix: &str| Finding {
        severity: Severity::Warning,
        location: None,
        rule: None,
        message,
        fix: fix.to_owned(),
    };
    let notify: Vec<&str> = policy
        .rules
        .iter()
        .filter(|r| r.action.is_notify())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    match engine {
        Engine::Podman => {
            if !notify.is_empty() && policy.listener_path.is_none() {
                out.push(warn(
                    format!("notify rules ({}) but no listenerPath: runc refuses to start the container, crun answers ENOSYS", notify.join(", ")),
                    "set listenerPath to auditor agent's socket (auditor generate --listener), or crun's annotation run.oci.seccomp.receiver",
                ));
            }
        }
        Engine::Docker => {
            if let Some(p) = &policy.listener_path {
                out.push(warn(
                    format!("Docker drops listenerPath ({p})"),
                    "run the container with a runtime that puts it back: `auditor runtime --delegate runc --agent SOCKET` in daemon.json (README: Docker and containerd)",
                ));
            }
            if let Some(m) = &policy.listener_metadata {
                out.push(warn(
                    format!("Docker drops listenerMetadata ({m}): auditor agent serves its `default` policy"),
                    "name the policy with `auditor runtime --policy NAME`",
                ));
            }
            if !notify.is_empty() && policy.listener_path.is_none() {
                out.push(warn(
                    format!("notify rules ({}): Docker passes SCMP_ACT_NOTIFY on without a listener, and runc refuses to start the container", notify.join(", ")),
                    "run it with `--runtime` naming `auditor runtime --agent SOCKET` (README: Docker and containerd)",
                ));
            }
            if !policy.flags.is_empty() {
                out.push(warn(
                    format!("Docker drops flags ({})", policy.flags.join(", ")),
                    "the filter is loaded without them; nothing to do unless the workload relies on them",
                ));
            }
            if let Action::Errno(n) = policy.default_action {
                if n != 1 {
                    out.push(warn(
                        format!("Docker drops defaultErrnoRet: calls no rule matches fail with EPERM, not errno {n}"),
                        "list the calls that must fail otherwise in a rule with their own errnoRet",
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{parse_native, ModelError};

    fn findings(text: &str) -> Result<Vec<String>, ModelError> {
        Ok(check(&parse_native(text)?)
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    const HEAD: &str = "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n";

    #[test]
    fn notify_as_default_is_accepted_only_for_interactive_use() -> Result<(), ModelError> {
        let text = "version = 1\ndefault_action = \"notify\"\n\n[[rule]]\nnames = [\"read\", \"write\", \"execve\"]\naction = \"allow\"\n";
        let p = parse_native(text)?;
        let plain = validate(&p);
        assert_eq!(plain.len(), 1, "{plain:?}");
        assert!(
            plain[0]
                .message
                .contains("only `auditor enforce --interactive`"),
            "{}",
            plain[0]
        );
        assert_eq!(plain[0].location.map(|l| l.line), Some(2));
        let interactive = CheckOptions { interactive: true };
        assert!(validate_with(&p, interactive).is_empty());
        // Every rule decides execve and write: nothing to warn about either.
        assert!(
            check_with(&p, interactive).is_empty(),
            "{:?}",
            check_with(&p, interactive)
        );
        Ok(())
    }

    #[test]
    fn interactive_use_needs_a_native_policy() -> Result<(), Box<dyn std::error::Error>> {
        let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write", "execve"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let p = crate::policy::formats::import(json, &Default::default())?;
        assert!(validate(&p).is_empty());
        let f = validate_with(&p, CheckOptions { interactive: true });
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message.contains("needs a native (TOML) policy"),
            "{}",
            f[0]
        );
        Ok(())
    }

    #[test]
    fn interactive_use_names_the_calls_it_never_prompts_for() -> Result<(), ModelError> {
        let p = parse_native(&format!(
            "{HEAD}[[rule]]\nnames = [\"read\", \"write\"]\naction = \"allow\"\n"
        ))?;
        let f = check_with(&p, CheckOptions { interactive: true });
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("never prompts for `execve`")
                && f[0].message.contains("errno EPERM")
                && !f[0].message.contains("`write`"),
            "{}",
            f[0]
        );
        // The same policy without --interactive has nothing to say.
        assert!(check(&p).is_empty());
        Ok(())
    }

    #[test]
    fn an_emulated_overlay_wants_its_attributes_emulated_too() -> Result<(), ModelError> {
        let mount = "[[rule]]\nname = \"mount\"\naction = \"notify\"\nhandler = \"emulate-mount\"\nparams = { fstypes = [\"overlay\"] }\n";
        let f = findings(&format!("{HEAD}{mount}"))?;
        assert!(
            f.iter()
                .any(|f| f.contains("no emulate-setxattr rule sets trusted.overlay.*")),
            "{f:?}"
        );
        let xattr = "[[rule]]\nnames = [\"setxattr\", \"fsetxattr\"]\naction = \"notify\"\nhandler = \"emulate-setxattr\"\n";
        let f = findings(&format!("{HEAD}{mount}{xattr}"))?;
        assert!(!f.iter().any(|f| f.contains("trusted.overlay")), "{f:?}");
        // ext4 alone needs no attributes.
        let ext4 = "[[rule]]\nname = \"mount\"\naction = \"notify\"\nhandler = \"emulate-mount\"\nparams = { fstypes = [\"ext4\"], sources = [\"/dev/loop0\"] }\n";
        let f = findings(&format!("{HEAD}{ext4}"))?;
        assert!(!f.iter().any(|f| f.contains("trusted.overlay")), "{f:?}");
        Ok(())
    }

    #[test]
    fn clean_policy_has_no_findings() -> Result<(), ModelError> {
        let f = findings(&format!(
            "{HEAD}[[rule]]\nnames = [\"read\", \"write\"]\naction = \"allow\"\n"
        ))?;
        assert!(f.is_empty(), "{f:?}");
        Ok(())
    }

    #[test]
    fn unknown_name_is_an_error_with_suggestion() -> Result<(), ModelError> {
        let f = findings(&format!(
            "{HEAD}[[rule]]\nnames = [\"read\", \"opne\"]\naction = \"allow\"\n"
        ))?;
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].starts_with("5:18: error: unknown syscall `opne`"),
            "{f:?}"
        );
        assert!(f[0].contains("did you mean `open`?"), "{f:?}");
        Ok(())
    }

    #[test]
    fn notify_on_write_and_unknown_handlers_are_errors() -> Result<(), ModelError> {
        let f = findings(&format!("{HEAD}[[rule]]\nname = \"write\"\naction = \"notify\"\n[[rule]]\nname = \"mknodat\"\naction = \"notify\"\nhandler = \"emulate-mnt\"\n"))?;
        assert!(
            f.iter().any(|s| s.contains("error: notify on `write`")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|s| s.contains("unknown notify handler `emulate-mnt`")),
            "{f:?}"
        );
        Ok(())
    }

    #[test]
    fn duplicates_conflicts_unreachable_and_risky() -> Result<(), ModelError> {
        let text = format!(
            "{HEAD}[[rule]]\nnames = [\"read\", \"ptrace\", \"unshare\"]\naction = \"allow\"\n[[rule]]\nname = \"read\"\naction = \"allow\"\n[[rule]]\nname = \"read\"\naction = \"kill-process\"\n[[rule]]\nname = \"read\"\naction = \"allow\"\nargs = [{{ index = 0, op = \"==\", value = 0 }}]\n"
        );
        let f = findings(&text)?;
        let has = |s: &str| f.iter().any(|x| x.contains(s));
        assert!(has("duplicate rule for `read`"), "{f:?}");
        assert!(
            has("`read` is both allow (rule 1) and kill-process (rule 3)"),
            "{f:?}"
        );
        assert!(has("unreachable"), "{f:?}");
        assert!(has("allows `ptrace`"), "{f:?}");
        assert!(has("allows `unshare` of a user namespace"), "{f:?}");
        assert_eq!(exit_status(&check(&parse_native(&text)?)), 2);
        Ok(())
    }

    #[test]
    fn unshare_without_newuser_is_fine() -> Result<(), ModelError> {
        let f = findings(&format!("{HEAD}[[rule]]\nname = \"unshare\"\naction = \"allow\"\nargs = [{{ index = 0, op = \"masked-equal\", mask = 0x10000000, value = 0 }}]\n"))?;
        assert!(f.is_empty(), "{f:?}");
        Ok(())
    }

    #[test]
    fn engines_name_the_fields_they_drop() {
        let p = crate::policy::formats::import(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "listenerPath": "/run/auditor/agent.sock", "listenerMetadata": "web",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            &Default::default(),
        )
        .unwrap();
        let docker: Vec<String> = engine_findings(&p, Engine::Docker)
            .iter()
            .map(|f| f.message.clone())
            .collect();
        assert_eq!(docker.len(), 4, "{docker:#?}");
        assert!(docker[0].contains("drops listenerPath"));
        assert!(docker[1].contains("drops listenerMetadata"));
        assert!(docker[2].contains("drops flags"));
        assert!(docker[3].contains("not errno 38"));
        assert!(engine_findings(&p, Engine::Podman).is_empty());
        let mut bare = p.clone();
        bare.listener_path = None;
        assert!(engine_findings(&bare, Engine::Podman)[0]
            .message
            .contains("no listenerPath"));
        assert!(engine_findings(&bare, Engine::Docker)
            .iter()
            .any(|f| f.message.contains("runc refuses to start")));
    }
}
