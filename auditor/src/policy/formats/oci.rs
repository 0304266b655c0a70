//! OCI / Docker seccomp JSON (what `docker run --security-opt seccomp=…`, runc, crun and kubelet
//! load).
//!
//! Import accepts Docker's extensions: `archMap`, `comment`, and `includes`/`excludes` by
//! capability, architecture and minimum kernel, resolved for the given capabilities and
//! architecture, as Docker does when it starts a container.

use serde::{Deserialize, Serialize};

use super::{ExportOptions, FormatError, ImportOptions};
use crate::policy::handlers;
use crate::policy::model::{
    errno_display, Action, Arch, Condition, Location, Notify, Op, Origin, Policy, Rule,
    SourceFormat, EPERM,
};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    architectures: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing)]
    arch_map: Vec<ArchMap>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_metadata: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Syscall {
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default, skip_serializing)]
    name: Option<String>,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(default, skip_serializing)]
    includes: Filter,
    #[serde(default, skip_serializing)]
    excludes: Filter,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    #[serde(default, deserialize_with = "null_as_empty")]
    caps: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    value_two: u64,
    op: String,
}

/// Go writes empty slices as `null`; Docker's own profile has such fields.
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn json_err(text: &str, e: &serde_json::Error) -> FormatError {
    let location = Location {
        line: e.line().max(1),
        column: e.column().max(1),
    };
    let msg = e.to_string();
    // serde_json appends " at line L column C"; the location says that already.
    let message = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m)
        .to_owned();
    let fix = if e.is_eof() {
        "the JSON ends early: the file is truncated or a bracket is missing".to_owned()
    } else if message.starts_with("unknown field") {
        "OCI seccomp fields are defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata, syscalls (Docker adds archMap, and per syscall comment, includes, excludes)".to_owned()
    } else if e.is_data() {
        "a value has the wrong type; see the OCI runtime spec's seccomp section".to_owned()
    } else {
        String::new()
    };
    let _ = text;
    FormatError::Json {
        location,
        message,
        fix,
    }
}

fn invalid(location: Location, message: String, fix: &str) -> FormatError {
    FormatError::Json {
        location,
        message,
        fix: fix.to_owned(),
    }
}

/// Where a JSON string literal `"s"` first occurs at or after byte `from`.
fn find_string(text: &str, s: &str, from: usize) -> Option<usize> {
    let needle = format!("\"{s}\"");
    text.get(from..)?.find(&needle).map(|i| i + from)
}

/// Parse an action name with its errno.
pub(super) fn action(s: &str, errno: Option<u32>, at: Location) -> Result<Action, FormatError> {
    Ok(match s {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno.unwrap_or(EPERM)),
        // libseccomp's SCMP_ACT_KILL is the thread variant.
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => Action::Notify(Notify::default()),
        "SCMP_ACT_TRACE" => {
            return Err(invalid(at, "SCMP_ACT_TRACE is not supported".into(), "auditor does not run a ptrace tracer; use SCMP_ACT_NOTIFY or SCMP_ACT_ERRNO"))
        }
        other => {
            return Err(invalid(
                at,
                format!("unknown action \"{other}\""),
                "one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_LOG, SCMP_ACT_NOTIFY",
            ))
        }
    })
}

pub(super) fn action_name(a: &Action) -> (&'static str, Option<u32>) {
    match a {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Errno(n) => ("SCMP_ACT_ERRNO", Some(*n)),
        Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
        Action::KillThread => ("SCMP_ACT_KILL_THREAD", None),
        Action::Trap => ("SCMP_ACT_TRAP", None),
        Action::Log => ("SCMP_ACT_LOG", None),
        Action::Notify(_) => ("SCMP_ACT_NOTIFY", None),
    }
}

pub(super) fn op(
    s: &str,
    value: u64,
    value_two: u64,
    at: Location,
) -> Result<(Op, u64), FormatError> {
    Ok(match s {
        "SCMP_CMP_EQ" => (Op::Eq, value),
        "SCMP_CMP_NE" => (Op::Ne, value),
        "SCMP_CMP_LT" => (Op::Lt, value),
        "SCMP_CMP_LE" => (Op::Le, value),
        "SCMP_CMP_GT" => (Op::Gt, value),
        "SCMP_CMP_GE" => (Op::Ge, value),
        // OCI: `value` is the mask, `valueTwo` the value the masked argument must equal.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq { mask: value }, value_two),
        other => {
            return Err(invalid(
                at,
                format!("unknown op \"{other}\""),
                "one of SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE, _MASKED_EQ",
            ))
        }
    })
}

pub(super) fn op_name(c: &Condition) -> (&'static str, u64, u64) {
    match c.op {
        Op::Eq => ("SCMP_CMP_EQ", c.value, 0),
        Op::Ne => ("SCMP_CMP_NE", c.value, 0),
        Op::Lt => ("SCMP_CMP_LT", c.value, 0),
        Op::Le => ("SCMP_CMP_LE", c.value, 0),
        Op::Gt => ("SCMP_CMP_GT", c.value, 0),
        Op::Ge => ("SCMP_CMP_GE", c.value, 0),
        Op::MaskedEq { mask } => ("SCMP_CMP_MASKED_EQ", mask, c.value),
    }
}

/// Does a Docker `includes`/`excludes` filter match this container?
fn matches(f: &Filter, options: &ImportOptions, all_caps: bool) -> Option<bool> {
    if f.caps.is_empty() && f.arches.is_empty() && f.min_kernel.is_none() {
        return None;
    }
    let arch = options.arch.docker_name();
    let caps_ok = if all_caps {
        f.caps.iter().all(|c| options.caps.contains(c))
    } else {
        f.caps.iter().any(|c| options.caps.contains(c))
    };
    let arches_ok = f.arches.iter().any(|a| a == arch);
    let kernel_ok = match (&f.min_kernel, options.kernel) {
        (Some(min), Some(k)) => super::parse_kernel_version(min).is_none_or(|m| k >= m),
        _ => true,
    };
    Some(if all_caps {
        // includes: every given condition must hold.
        (f.caps.is_empty() || caps_ok) && (f.arches.is_empty() || arches_ok) && kernel_ok
    } else {
        // excludes: any given condition excludes.
        (!f.caps.is_empty() && caps_ok) || (!f.arches.is_empty() && arches_ok)
    })
}

/// Import OCI/Docker seccomp JSON.
pub fn import(text: &str, options: &ImportOptions) -> Result<Policy, FormatError> {
    let profile: Profile = serde_json::from_str(text).map_err(|e| json_err(text, &e))?;
    let start = Location { line: 1, column: 1 };
    let at = |offset: Option<usize>| offset.map_or(start, |o| Location::at(text, o));

    let default_loc = at(text.find("\"defaultAction\""));
    let default_action = action(
        &profile.default_action,
        profile.default_errno_ret,
        default_loc,
    )?;
    if default_action.is_notify() {
        return Err(invalid(default_loc, "the default action cannot be SCMP_ACT_NOTIFY".into(), "every call no rule matches would wait for the broker; use SCMP_ACT_ERRNO and notify rules for the syscalls that need it"));
    }
    let mut policy = Policy {
        default_action,
        listener_path: profile.listener_path.filter(|s| !s.is_empty()),
        listener_metadata: profile.listener_metadata.filter(|s| !s.is_empty()),
        flags: profile.flags,
        source: SourceFormat::Oci,
        ..Policy::default()
    };
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(invalid(
            at(text.find("\"archMap\"")),
            "both `architectures` and `archMap` are set".into(),
            "Docker refuses this too; keep one",
        ));
    }
    let mut arch_names = profile.architectures;
    for m in &profile.arch_map {
        if Arch::from_oci(&m.architecture) == Some(options.arch) {
            arch_names.push(m.architecture.clone());
            arch_names.extend(m.sub_architectures.iter().cloned());
        }
    }
    for a in &arch_names {
        let arch = Arch::from_oci(a).ok_or_else(|| {
            invalid(
                at(text.find(&format!("\"{a}\""))),
                format!("unknown architecture \"{a}\""),
                "e.g. SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_AARCH64",
            )
        })?;
        if !policy.architectures.contains(&arch) {
            policy.architectures.push(arch);
        }
    }

    let mut cursor = text.find("\"syscalls\"").unwrap_or(0);
    for sc in profile.syscalls {
        let mut names = sc.names;
        if let Some(n) = sc.name {
            names.push(n);
        }
        // Locate the entry and each name for messages.
        let entry = text
            .get(cursor..)
            .and_then(|t| t.find("\"action\""))
            .map(|i| i + cursor);
        let mut name_locs = Vec::new();
        let mut c = cursor;
        for n in &names {
            let o = find_string(text, n, c);
            if let Some(o) = o {
                c = o + 1;
            }
            name_locs.push(at(o));
        }
        let rule_loc = at(entry.or(Some(cursor)));
        cursor = c.max(entry.map_or(cursor, |e| e + 1));

        if matches(&sc.includes, options, true) == Some(false)
            || matches(&sc.excludes, options, false) == Some(true)
        {
            continue;
        }
        if names.is_empty() {
            return Err(invalid(
                rule_loc,
                "a syscall entry without names".into(),
                "add \"names\": [\"...\"]",
            ));
        }
        let act = action(&sc.action, sc.errno_ret, rule_loc)?;
        let mut args = Vec::new();
        for a in &sc.args {
            if a.index > 5 {
                return Err(invalid(
                    rule_loc,
                    format!("argument index {} out of range", a.index),
                    "syscall arguments are numbered 0 to 5",
                ));
            }
            let (o, value) = op(&a.op, a.value, a.value_two, rule_loc)?;
            args.push(Condition {
                index: a.index as u8,
                op: o,
                value,
            });
        }
        policy.rules.push(Rule {
            names,
            action: act,
            args,
            comment: sc.comment.filter(|c| !c.is_empty()),
            provenance: None,
            origin: Some(Origin {
                rule: rule_loc,
                names: name_locs,
            }),
        });
    }
    Ok(policy)
}

/// Export as OCI JSON. Returns the text and what could not be expressed.
pub fn export(
    policy: &Policy,
    options: &ExportOptions,
) -> Result<(String, Vec<String>), FormatError> {
    let mut dropped = Vec::new();
    // An interactive policy (default notify): runc refuses SCMP_ACT_NOTIFY as the default
    // action, so every syscall no rule names is listed as notify instead (see
    // [`interactive_rules`]); numbers no table knows get ENOSYS.
    let interactive = policy.default_action.is_notify();
    let (default_action, default_errno) = if interactive {
        ("SCMP_ACT_ERRNO", Some(crate::policy::model::ENOSYS))
    } else {
        action_name(&policy.default_action)
    };
    let listener_path = options
        .listener_path
        .clone()
        .or_else(|| policy.listener_path.clone());
    let has_notify = interactive || policy.rules.iter().any(|r| r.action.is_notify());
    if has_notify && listener_path.is_none() {
        return Err(FormatError::NeedsListener);
    }
    let mut profile = Profile {
        default_action: default_action.to_owned(),
        default_errno_ret: default_errno,
        architectures: policy
            .architectures
            .iter()
            .map(|a| a.oci_name().to_owned())
            .collect(),
        flags: policy.flags.clone(),
        listener_path: if has_notify { listener_path } else { None },
        listener_metadata: if has_notify {
            options
                .listener_metadata
                .clone()
                .or_else(|| policy.listener_metadata.clone())
        } else {
            None
        },
        ..Profile::default()
    };
    for r in &policy.rules {
        if let Action::Notify(n) = &r.action {
            // OCI has no place for handler parameters: the broker falls back to the registry's
            // defaults, which is only faithful if that is what the rule says.
            for name in &r.names {
                // A bare notify (no handler named, no parameters: what an imported
                // SCMP_ACT_NOTIFY is) says nothing the JSON cannot.
                let bare = n.handler.is_none() && n.params.is_empty();
                let faithful = bare
                    || handlers::for_syscall(name).is_some_and(|spec| {
                        n.handler.as_deref().is_none_or(|h| h == spec.name())
                            && (n.params.is_empty() || n.params == spec.default_params())
                    });
                if !faithful {
                    dropped.push(format!(
                        "notify handler parameters of {name} ({}): OCI JSON has no place for them; the broker must be given the native policy",
                        n.handler.as_deref().unwrap_or("default handler")
                    ));
                }
            }
        }
        let (a, errno) = action_name(&r.action);
        profile.syscalls.push(Syscall {
            names: r.names.clone(),
            action: a.to_owned(),
            errno_ret: errno,
            args: r
                .args
                .iter()
                .map(|c| {
                    let (op, value, value_two) = op_name(c);
                    Arg {
                        index: u32::from(c.index),
                        value,
                        value_two,
                        op: op.to_owned(),
                    }
                })
                .collect(),
            comment: r.comment.clone(),
            ..Syscall::default()
        });
    }
    if interactive {
        profile.syscalls.extend(interactive_rules(policy)?);
    }
    let mut text = serde_json::to_string_pretty(&profile).map_err(|e| FormatError::Json {
        location: Location::default(),
        message: format!("internal: cannot serialise: {e}"),
        fix: String::new(),
    })?;
    text.push('\n');
    Ok((text, dropped))
}

/// The rules that make an OCI filter send the agent every call an interactive policy's rules
/// do not decide: every syscall of the policy's architectures that no rule names, as
/// `SCMP_ACT_NOTIFY` — but the calls the runtime makes after loading the filter and before
/// the agent holds its listener, which are allowed when no rule names them (`write`: runc
/// refuses notify for it; `execve` of the container's process; `exit`, `exit_group`).
fn interactive_rules(policy: &Policy) -> Result<Vec<Syscall>, FormatError> {
    let (exempt, notify) =
        super::interactive_names(policy).map_err(|a| FormatError::Json {
            location: Location::default(),
            message: format!(
                "an interactive policy (default action notify) for {}: auditor has no syscall table for it, so it cannot list the syscalls to send to the agent",
                a.oci_name()
            ),
            fix: "export it for x86_64, x86 and x32 only, or give the policy a default action other than notify".into(),
        })?;
    let mut out = Vec::new();
    if !exempt.is_empty() {
        out.push(Syscall {
            names: exempt,
            action: "SCMP_ACT_ALLOW".into(),
            comment: Some("interactive: the runtime's own calls after it loads the filter".into()),
            ..Syscall::default()
        });
    }
    out.push(Syscall {
        names: notify,
        action: "SCMP_ACT_NOTIFY".into(),
        comment: Some(
            "interactive: every call no rule decides is prompted for by auditor agent".into(),
        ),
        ..Syscall::default()
    });
    Ok(out)
}

/// Export in the shape Docker 20.10 keeps (`docker run --security-opt seccomp=FILE`):
/// defaultAction, architectures and the rules. The fields Docker drops (`listenerPath`,
/// `listenerMetadata`, `flags`, `defaultErrnoRet`) are left out rather than silently lost,
/// and each loss that matters is returned as a note: notify rules then need `auditor runtime
/// --agent`, which puts the listener back.
pub fn export_docker(
    policy: &Policy,
    options: &ExportOptions,
) -> Result<(String, Vec<String>, Vec<String>), FormatError> {
    let notify: Vec<&str> = policy
        .rules
        .iter()
        .filter(|r| r.action.is_notify())
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let mut notes = Vec::new();
    if !notify.is_empty() {
        notes.push(format!(
            "notify rules ({}): Docker drops listenerPath, so run these containers with a runtime that runs `auditor runtime --delegate runc --agent SOCKET` (README: Docker and containerd); plain runc refuses to start them",
            notify.join(", ")
        ));
    }
    if !policy.flags.is_empty() {
        notes.push(format!(
            "flags ({}) left out: Docker does not pass them on",
            policy.flags.join(", ")
        ));
    }
    if let Action::Errno(n) = policy.default_action {
        if n != 1 {
            notes.push(format!(
                "Docker drops defaultErrnoRet: calls no rule matches will fail with EPERM, not {}",
                errno_display(n)
            ));
        }
    }
    // The OCI export needs a listener for notify rules; it is removed below with the other
    // fields Docker drops.
    let oci_options = ExportOptions {
        lossy: options.lossy,
        listener_path: (!notify.is_empty()).then(|| "/run/auditor/agent.sock".to_owned()),
        ..ExportOptions::default()
    };
    let (text, dropped) = export(policy, &oci_options)?;
    let internal = |e: serde_json::Error| FormatError::Json {
        location: Location::default(),
        message: format!("internal: {e}"),
        fix: String::new(),
    };
    let mut v: serde_json::Value = serde_json::from_str(&text).map_err(internal)?;
    if let Some(o) = v.as_object_mut() {
        for k in [
            "listenerPath",
            "listenerMetadata",
            "flags",
            "defaultErrnoRet",
        ] {
            o.remove(k);
        }
    }
    let mut text = serde_json::to_string_pretty(&v).map_err(internal)?;
    text.push('\n');
    Ok((text, dropped, notes))
}

/// For messages: the errno an action returns.
pub fn describe_errno(n: u32) -> String {
    errno_display(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_locations() {
        let e = import(
            "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscals\": []\n}",
            &ImportOptions::default(),
        );
        let e = e.map(|_| ()).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.starts_with("3:") && m.contains("unknown field `syscals`")),
            "{e:?}"
        );
        let e = import(
            "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [",
            &ImportOptions::default(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(matches!(&e, Err(m) if m.contains("truncated")), "{e:?}");
        let e = import("{\"defaultAction\": 1}", &ImportOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.starts_with("1:") && m.contains("invalid type")),
            "{e:?}"
        );
        let e = import(
            "{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}",
            &ImportOptions::default(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("cannot be SCMP_ACT_NOTIFY")),
            "{e:?}"
        );
    }

    #[test]
    fn an_interactive_policy_notifies_every_syscall_no_rule_names() {
        let p = crate::policy::model::parse_native(
            "version = 1\ndefault_action = \"notify\"\narchitectures = [\"x86_64\"]\n\n[[rule]]\nnames = [\"read\", \"exit\"]\naction = \"allow\"\n\n[[rule]]\nname = \"sync\"\naction = \"errno\"\nerrno = \"EPERM\"\n",
        )
        .unwrap();
        assert!(matches!(
            export(&p, &ExportOptions::default()),
            Err(FormatError::NeedsListener)
        ));
        let options = ExportOptions {
            listener_path: Some("/run/auditor/agent.sock".into()),
            ..ExportOptions::default()
        };
        let (text, dropped) = export(&p, &options).unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        // runc refuses a notify default: unknown numbers get ENOSYS.
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 38);
        assert_eq!(v["listenerPath"], "/run/auditor/agent.sock");
        // Every syscall of the table is in exactly one rule; the rules' own keep their action.
        let mut seen = std::collections::BTreeMap::new();
        for r in v["syscalls"].as_array().unwrap() {
            for n in r["names"].as_array().unwrap() {
                let old = seen.insert(n.as_str().unwrap().to_owned(), r["action"].clone());
                assert!(old.is_none(), "{n} in two rules:\n{text}");
            }
        }
        for (_, name) in crate::syscalls::all(crate::syscalls::Abi::X86_64) {
            assert!(seen.contains_key(name), "{name} in no rule");
        }
        assert_eq!(seen["read"], "SCMP_ACT_ALLOW");
        assert_eq!(seen["exit"], "SCMP_ACT_ALLOW");
        assert_eq!(seen["sync"], "SCMP_ACT_ERRNO");
        // What the runtime calls after it loads the filter is allowed; the rest is asked.
        assert_eq!(seen["write"], "SCMP_ACT_ALLOW");
        assert_eq!(seen["execve"], "SCMP_ACT_ALLOW");
        assert_eq!(seen["openat"], "SCMP_ACT_NOTIFY");
        assert_eq!(seen["mount"], "SCMP_ACT_NOTIFY");
        // And it reads back as the same kind of policy: every name decided, notify for most.
        let back = import(&text, &ImportOptions::default()).unwrap();
        assert!(back.rules.iter().any(|r| r.action.is_notify()));
    }

    #[test]
    fn masked_equal_maps_value_and_value_two() -> Result<(), FormatError> {
        let p = import(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
            &ImportOptions::default(),
        )?;
        assert_eq!(
            p.rules[0].args[0],
            Condition {
                index: 0,
                op: Op::MaskedEq { mask: 2114060288 },
                value: 0
            }
        );
        let (text, dropped) = export(&p, &ExportOptions::default())?;
        assert!(dropped.is_empty());
        assert!(text.contains("\"value\": 2114060288"), "{text}");
        Ok(())
    }

    #[test]
    fn the_docker_shape_leaves_out_what_docker_drops_and_says_so() {
        let p = import(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "listenerPath": "/run/auditor/agent.sock", "listenerMetadata": "web", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            &ImportOptions::default(),
        )
        .unwrap();
        let (text, dropped, notes) = export_docker(&p, &ExportOptions::default()).unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for k in [
            "listenerPath",
            "listenerMetadata",
            "flags",
            "defaultErrnoRet",
        ] {
            assert!(v.get(k).is_none(), "{k} in {text}");
        }
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["action"] == "SCMP_ACT_NOTIFY"));
        assert_eq!(notes.len(), 3, "{notes:#?}");
        assert!(notes[0].contains("auditor runtime --delegate runc --agent"));
        // Docker's own reader takes it back.
        let again = import(&text, &ImportOptions::default()).unwrap();
        assert_eq!(again.rules.len(), p.rules.len());
    }
}
