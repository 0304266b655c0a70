//! Kubernetes: the Security Profiles Operator's `SeccompProfile` object (export and import), and
//! a `ConfigMap` carrying the plain OCI JSON that kubelet loads as a `localhost/` profile
//! without the operator.
//!
//! The objects are typed and written with a YAML library; the shape follows SPO's CRD
//! (`seccompprofiles.security-profiles-operator.x-k8s.io`, served as v1 and v1beta1): required
//! `defaultAction`, per rule `action` and `names` (a set: no duplicates), per argument `index` and
//! `op`, `value`/`valueTwo` int64 ≥ 0, at most 6 arguments, `flags` from the CRD's enum, and a
//! `listenerPath` under `/var/run/security-profiles-operator/`. What the object cannot carry is
//! listed and refused unless the export is lossy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::oci::{action_name, op_name};
use super::{ExportOptions, FormatError};
use crate::policy::model::{
    Action, Arch, Condition, Location, Notify, Policy, Rule, SourceFormat, EPERM,
};

/// SPO's API group.
pub const GROUP: &str = "security-profiles-operator.x-k8s.io";
/// The kind.
pub const KIND: &str = "SeccompProfile";
/// Where SPO's CRD lets a profile's notify listener be (`listenerPath`'s pattern).
pub const LISTENER_DIR: &str = "/var/run/security-profiles-operator/";
/// The CRD's `flags` enum.
pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
/// Where kubelet looks for `localhost/` profiles below its root, as SPO lays them out
/// (`<kubelet-root>/seccomp/operator/<name>.json`, referenced as `operator/<name>.json`).
pub const KUBELET_SUBDIR: &str = "seccomp/operator";
/// Label on every object auditor writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "auditor");

/// The served versions of SPO's `SeccompProfile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiVersion {
    /// The storage version of SPO since v0.11.
    #[default]
    V1,
    /// Served by every SPO release (the only one up to v0.10).
    V1beta1,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "security-profiles-operator.x-k8s.io/v1",
            ApiVersion::V1beta1 => "security-profiles-operator.x-k8s.io/v1beta1",
        }
    }
}

/// A runtime's own calls, exported as a profile of their own that the workload's names in
/// `baseProfileName` (SPO unions the two when it installs the workload's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseProfile {
    /// Its object name.
    pub name: String,
    /// Where the calls come from, for its description.
    pub description: String,
    pub syscalls: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object<S> {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: S,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    default_action: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_profile_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listener_metadata: Option<String>,
    /// v1: `Enabled` or `Disabled` (never written).
    #[serde(default, skip_serializing)]
    state: Option<String>,
    /// v1beta1 up to SPO v0.10 (never written).
    #[serde(default, skip_serializing)]
    disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Syscall {
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<Arg>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Arg {
    index: u32,
    #[serde(default)]
    value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    value_two: u64,
    op: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A ConfigMap (export only).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    data: BTreeMap<String, String>,
}

/// A valid object name: an RFC 1123 subdomain (lower-case alphanumerics, `-` and `.`, starting
/// and ending alphanumeric, at most 253 characters).
pub fn object_name(s: &str) -> String {
    let n: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    let n = n.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if n.is_empty() {
        "auditor-profile".to_owned()
    } else {
        n.to_owned()
    }
}

/// Is `path` a listener path SPO's CRD accepts?
pub fn valid_listener_path(path: &str) -> bool {
    path.strip_prefix(LISTENER_DIR).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}

/// The spec of `policy`; what it cannot carry goes to `dropped`.
fn spec(
    policy: &Policy,
    options: &ExportOptions,
    dropped: &mut Vec<String>,
) -> Result<Spec, FormatError> {
    let (default_action, derrno) = action_name(&policy.default_action);
    if policy.default_action.is_notify() {
        return Err(FormatError::Unusable(
            "a SeccompProfile cannot send every call to a listener (default action notify): generate the interactive policy with --format native and oci for auditor agent, or choose a default action such as errno".into(),
        ));
    }
    if let Some(n) = derrno.filter(|n| *n != EPERM) {
        dropped.push(format!(
            "default errno {n}: a SeccompProfile has no defaultErrnoRet, so the runtime returns EPERM for calls no rule allows"
        ));
    }
    let listener = options
        .listener_path
        .clone()
        .or_else(|| policy.listener_path.clone());
    let has_notify = policy.rules.iter().any(|r| r.action.is_notify());
    let listener = match listener {
        Some(l) if !valid_listener_path(&l) => {
            return Err(FormatError::Unusable(format!(
                "listener path {l}: SPO's SeccompProfile only accepts a socket directly in {LISTENER_DIR} (letters, digits, `_`, `-`, `.`); run `auditor agent --socket {LISTENER_DIR}auditor.sock` on the nodes and pass --listener {LISTENER_DIR}auditor.sock"
            )))
        }
        Some(l) if has_notify => Some(l),
        _ => None,
    };
    let mut spec = Spec {
        default_action: default_action.to_owned(),
        architectures: policy
            .architectures
            .iter()
            .map(|a| a.oci_name().to_owned())
            .collect(),
        listener_metadata: listener.as_ref().and_then(|_| {
            options
                .listener_metadata
                .clone()
                .or_else(|| policy.listener_metadata.clone())
        }),
        listener_path: listener.clone(),
        ..Spec::default()
    };
    for f in &policy.flags {
        if FLAGS.contains(&f.as_str()) {
            if !spec.flags.contains(f) {
                spec.flags.push(f.clone());
            }
        } else {
            dropped.push(format!(
                "seccomp flag {f}: not one SPO's SeccompProfile accepts ({})",
                FLAGS.join(", ")
            ));
        }
    }
    let base: std::collections::BTreeSet<&str> = options
        .base_profile
        .iter()
        .flat_map(|b| b.syscalls.iter().map(String::as_str))
        .collect();
    for r in &policy.rules {
        if r.action.is_notify() && listener.is_none() {
            dropped.push(format!(
                "notify rule for {}: without a listener nothing serves it, so it is left to the default action (pass --listener {LISTENER_DIR}auditor.sock and run auditor agent there)",
                r.names.join(", ")
            ));
            continue;
        }
        if r.args.len() > 6 {
            dropped.push(format!(
                "rule for {}: {} argument conditions, a SeccompProfile takes at most 6; left to the default action",
                r.names.join(", "),
                r.args.len()
            ));
            continue;
        }
        let mut args = Vec::new();
        let mut too_big = None;
        for c in &r.args {
            let (op, value, value_two) = op_name(c);
            if i64::try_from(value).is_err() || i64::try_from(value_two).is_err() {
                too_big = Some(value.max(value_two));
            }
            args.push(Arg {
                index: u32::from(c.index),
                value,
                value_two,
                op: op.to_owned(),
            });
        }
        if let Some(v) = too_big {
            dropped.push(format!(
                "rule for {}: argument value {v:#x} is above the CRD's int64 range; left to the default action",
                r.names.join(", ")
            ));
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        for n in &r.names {
            // The base profile allows these already (SPO unions it in).
            if r.action == Action::Allow && r.args.is_empty() && base.contains(n.as_str()) {
                continue;
            }
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        if names.is_empty() {
            continue;
        }
        let (action, errno_ret) = action_name(&r.action);
        spec.syscalls.push(Syscall {
            action: action.to_owned(),
            errno_ret,
            names,
            args,
        });
    }
    Ok(spec)
}

fn metadata(name: &str, options: &ExportOptions) -> Metadata {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    Metadata {
        name: object_name(name),
        namespace: None,
        labels,
        annotations: options.annotations.iter().cloned().collect(),
    }
}

fn to_yaml<T: Serialize>(v: &T) -> Result<String, FormatError> {
    serde_yaml_ng::to_string(v).map_err(|e| FormatError::Unusable(format!("writing YAML: {e}")))
}

/// Export as SPO `SeccompProfile` YAML: with a base profile, two documents (the base, then the
/// workload's naming it in `baseProfileName`). Returns the text and what could not be
/// expressed.
pub fn export(
    policy: &Policy,
    options: &ExportOptions,
) -> Result<(String, Vec<String>), FormatError> {
    let mut dropped = Vec::new();
    let mut spec = spec(policy, options, &mut dropped)?;
    let mut out =
        String::from("# Security Profiles Operator SeccompProfile generated by auditor.\n");
    let api = options.api_version.as_str();
    if let Some(b) = &options.base_profile {
        let base_name = object_name(&b.name);
        let mut meta = metadata(&base_name, &ExportOptions::default());
        meta.annotations
            .insert("description".into(), b.description.clone());
        let base = Object {
            api_version: api.to_owned(),
            kind: KIND.to_owned(),
            metadata: meta,
            spec: Spec {
                default_action: spec.default_action.clone(),
                architectures: spec.architectures.clone(),
                syscalls: vec![Syscall {
                    action: "SCMP_ACT_ALLOW".into(),
                    names: b.syscalls.clone(),
                    ..Syscall::default()
                }],
                ..Spec::default()
            },
        };
        out.push_str("---\n");
        out.push_str(&to_yaml(&base)?);
        out.push_str("---\n");
        spec.base_profile_name = Some(base_name);
    }
    let object = Object {
        api_version: api.to_owned(),
        kind: KIND.to_owned(),
        metadata: metadata(
            options.name.as_deref().unwrap_or("auditor-profile"),
            options,
        ),
        spec,
    };
    out.push_str(&to_yaml(&object)?);
    Ok((out, dropped))
}

/// The profile's path below kubelet's root and the `localhostProfile` a pod names it by.
pub fn localhost_profile(name: &str) -> (String, String) {
    let file = format!("{}.json", object_name(name));
    (
        format!("{KUBELET_SUBDIR}/{file}"),
        format!("operator/{file}"),
    )
}

/// A ConfigMap holding the OCI JSON `oci_json` under `<name>.json`, for kubelet's
/// `localhost/operator/<name>.json` (`auditor kubelet-profiles install` copies it there).
pub fn export_configmap(oci_json: &str, options: &ExportOptions) -> Result<String, FormatError> {
    let name = object_name(options.name.as_deref().unwrap_or("auditor-profile"));
    let (_, localhost) = localhost_profile(&name);
    let mut meta = metadata(&format!("seccomp-{name}"), options);
    meta.labels
        .insert("auditor.dev/seccomp-profile".into(), "true".into());
    meta.annotations
        .insert("auditor.dev/localhost-profile".into(), localhost);
    let mut data = BTreeMap::new();
    data.insert(format!("{name}.json"), oci_json.to_owned());
    let cm = ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: meta,
        data,
    };
    Ok(format!(
        "# kubelet localhost profile generated by auditor: pods name it as\n#   securityContext.seccompProfile: {{type: Localhost, localhostProfile: operator/{name}.json}}\n{}",
        to_yaml(&cm)?
    ))
}

/// Does `text` look like a Kubernetes YAML object (rather than native TOML)?
pub fn looks_like(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l == "---" || l.starts_with("apiVersion:") || l.starts_with("kind:"))
}

/// One SeccompProfile read from YAML.
#[derive(Debug)]
pub struct Imported {
    pub name: String,
    /// The document (1-based) it came from, and the line it starts on.
    pub document: usize,
    pub location: Location,
    pub policy: Policy,
    /// `baseProfileName`, unresolved.
    pub base_profile_name: Option<String>,
    /// SPO's partial profile of a recording (`spo.x-k8s.io/partial`).
    pub partial: bool,
    /// `state: Disabled` (v1) or `disabled: true` (v1beta1 up to SPO v0.10): SPO skips it.
    pub disabled: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn yaml_err(e: &serde_yaml_ng::Error, fallback: Location) -> FormatError {
    let location = e.location().map_or(fallback, |l| Location {
        line: l.line().max(1),
        column: l.column().max(1),
    });
    let msg = e.to_string();
    let message = msg
        .split(" at line ")
        .next()
        .unwrap_or(msg.as_str())
        .to_owned();
    let fix = if message.contains("unknown field") {
        "SeccompProfile spec fields are defaultAction, architectures, syscalls (action, names, errnoRet, args: index, value, valueTwo, op), flags, listenerPath, listenerMetadata, baseProfileName, state"
    } else {
        "see SPO's SeccompProfile CRD for the shape of the object"
    };
    FormatError::Json {
        location,
        message,
        fix: fix.to_owned(),
    }
}

/// Where a line (1-based) of `text` contains `needle` at or after line `from`.
fn find_line(text: &str, needle: &str, from: usize) -> Option<Location> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| {
            l.find(needle).map(|c| Location {
                line: i + 1,
                column: c + 1,
            })
        })
}

fn bad(location: Location, message: String, fix: &str) -> FormatError {
    FormatError::Json {
        location,
        message,
        fix: fix.to_owned(),
    }
}

/// Every SeccompProfile in a YAML stream (documents separated by `---`, or a `List`'s `items`
/// as `kubectl get -o yaml` writes them); other kinds are skipped.
pub fn import_all(text: &str) -> Result<Vec<Imported>, FormatError> {
    // The first line of each document, for messages.
    let mut starts = vec![1usize];
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("---") && i > 0 {
            starts.push(i + 2);
        }
    }
    let mut out = Vec::new();
    for (d, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let start_line = if text.trim_start().starts_with("---") {
            starts.get(d + 1).or(starts.get(d)).copied().unwrap_or(1)
        } else {
            starts.get(d).copied().unwrap_or(1)
        };
        let at = Location {
            line: start_line,
            column: 1,
        };
        let value = serde_json::Value::deserialize(doc).map_err(|e| yaml_err(&e, at))?;
        if value.is_null() {
            continue;
        }
        let items: Vec<serde_json::Value> = match value.get("kind").and_then(|k| k.as_str()) {
            Some(k) if k.ends_with("List") => value
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for item in items {
            if let Some(p) = one(text, item, d + 1, at)? {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn one(
    text: &str,
    item: serde_json::Value,
    document: usize,
    at: Location,
) -> Result<Option<Imported>, FormatError> {
    let kind = item.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let api = item
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or("");
    if kind != KIND {
        return Ok(None);
    }
    if api.split('/').next() != Some(GROUP) {
        return Err(bad(
            at,
            format!("a SeccompProfile of apiVersion \"{api}\""),
            "SPO's is security-profiles-operator.x-k8s.io/v1 (or v1beta1)",
        ));
    }
    let object: Object<Spec> = serde_json::from_value(item).map_err(|e| {
        bad(
            at,
            format!("SeccompProfile (document {document}): {e}"),
            "SeccompProfile spec fields are defaultAction, architectures, syscalls (action, names, errnoRet, args: index, value, valueTwo, op), flags, listenerPath, listenerMetadata, baseProfileName, state",
        )
    })?;
    let name = object.metadata.name.clone();
    let from = at.line;
    let here = |needle: &str| find_line(text, needle, from).unwrap_or(at);
    let spec = object.spec;
    let default_loc = here("defaultAction");
    let default_action = super::oci::action(&spec.default_action, None, default_loc)?;
    if default_action.is_notify() {
        return Err(bad(
            default_loc,
            format!("SeccompProfile {name}: the default action cannot be SCMP_ACT_NOTIFY"),
            "runc and crun refuse it; notify chosen syscalls instead",
        ));
    }
    let mut policy = Policy {
        default_action,
        listener_path: spec.listener_path.filter(|s| !s.is_empty()),
        listener_metadata: spec.listener_metadata.filter(|s| !s.is_empty()),
        flags: spec.flags,
        source: SourceFormat::Oci,
        default_location: Some(default_loc),
        ..Policy::default()
    };
    for a in &spec.architectures {
        let arch = Arch::from_oci(a).ok_or_else(|| {
            bad(
                here(a),
                format!("SeccompProfile {name}: unknown architecture \"{a}\""),
                "e.g. SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_AARCH64",
            )
        })?;
        if !policy.architectures.contains(&arch) {
            policy.architectures.push(arch);
        }
    }
    let mut cursor = from;
    for sc in spec.syscalls {
        let loc = find_line(text, "action:", cursor).unwrap_or(at);
        cursor = loc.line + 1;
        if sc.names.is_empty() {
            return Err(bad(
                loc,
                format!("SeccompProfile {name}: a syscall entry without names"),
                "add `names: [...]` (the CRD requires at least one)",
            ));
        }
        let action = super::oci::action(&sc.action, sc.errno_ret, loc)?;
        let mut args = Vec::new();
        for a in &sc.args {
            if a.index > 5 {
                return Err(bad(
                    loc,
                    format!(
                        "SeccompProfile {name}: argument index {} out of range",
                        a.index
                    ),
                    "syscall arguments are numbered 0 to 5",
                ));
            }
            let (op, value) = super::oci::op(&a.op, a.value, a.value_two, loc)?;
            args.push(Condition {
                index: a.index as u8,
                op,
                value,
            });
        }
        let action = match action {
            Action::Notify(_) => Action::Notify(Notify::default()),
            a => a,
        };
        policy.rules.push(Rule {
            names: sc.names,
            action,
            args,
            comment: None,
            provenance: None,
            origin: None,
        });
    }
    let partial = object
        .metadata
        .labels
        .get("spo.x-k8s.io/partial")
        .is_some_and(|v| v == "true");
    let disabled = spec.state.as_deref() == Some("Disabled") || spec.disabled == Some(true);
    Ok(Some(Imported {
        disabled,
        name,
        document,
        location: at,
        policy,
        base_profile_name: spec.base_profile_name.filter(|s| !s.is_empty()),
        partial,
        labels: object.metadata.labels,
        annotations: object.metadata.annotations,
    }))
}

/// The one SeccompProfile a YAML text holds, its base profile unioned in when the text holds
/// that too (an unresolved base is an error: the profile alone allows less than the cluster
/// loads).
pub fn import(text: &str) -> Result<Policy, FormatError> {
    let all = import_all(text)?;
    let start = Location { line: 1, column: 1 };
    let top: Vec<&Imported> = all
        .iter()
        .filter(|p| {
            !all.iter()
                .any(|o| o.base_profile_name.as_deref() == Some(&p.name))
        })
        .collect();
    match top.as_slice() {
        [] if all.is_empty() => Err(bad(
            start,
            "no SeccompProfile in the YAML".into(),
            "give a security-profiles-operator.x-k8s.io SeccompProfile (kubectl get seccompprofile NAME -o yaml)",
        )),
        [one] => resolve(one, &all),
        _ => Err(bad(
            start,
            format!(
                "{} SeccompProfiles in the YAML ({})",
                top.len(),
                top.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "pick one with `auditor import --name NAME`, or merge them with `auditor import --merge`",
        )),
    }
}

/// `profile` with its base profile (from `all`) unioned in, recursively.
pub fn resolve(profile: &Imported, all: &[Imported]) -> Result<Policy, FormatError> {
    let mut policy = profile.policy.clone();
    let mut seen = vec![profile.name.clone()];
    let mut base = profile.base_profile_name.clone();
    while let Some(b) = base {
        if seen.contains(&b) {
            return Err(bad(
                profile.location,
                format!(
                    "SeccompProfile {}: base profiles name each other in a loop ({} → {b})",
                    profile.name,
                    seen.join(" → ")
                ),
                "break the loop of baseProfileName",
            ));
        }
        let Some(found) = all.iter().find(|p| p.name == b) else {
            return Err(bad(
                profile.location,
                format!(
                    "SeccompProfile {}: its base profile {b} is not in the input",
                    profile.name
                ),
                &format!("add it (kubectl get seccompprofile {b} -o yaml >> FILE); without it the profile allows less than SPO installs"),
            ));
        };
        for r in &found.policy.rules {
            policy
                .rules
                .push(r.clone().with_comment(format!("from base profile {b}")));
        }
        seen.push(b.clone());
        base = found.base_profile_name.clone();
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{parse_native, Op};

    fn policy(text: &str) -> Policy {
        parse_native(&format!("version = 1\n{text}")).unwrap()
    }

    #[test]
    fn listener_paths_follow_the_crd_pattern() {
        assert!(valid_listener_path(
            "/var/run/security-profiles-operator/auditor.sock"
        ));
        assert!(!valid_listener_path("/var/run/security-profiles-operator/"));
        assert!(!valid_listener_path(
            "/var/run/security-profiles-operator/a/b.sock"
        ));
        assert!(!valid_listener_path("/run/auditor/agent.sock"));
    }

    #[test]
    fn notify_rules_need_an_spo_listener() {
        let p = policy("default_action = \"errno\"\ndefault_errno = \"EPERM\"\n[[rule]]\nname = \"mknodat\"\naction = \"notify\"\nhandler = \"emulate-mknod\"\nparams = { devices = [\"c 1:3\"] }\n[[rule]]\nname = \"read\"\naction = \"allow\"\n");
        let mut dropped = Vec::new();
        let s = spec(&p, &ExportOptions::default(), &mut dropped).unwrap();
        assert_eq!(s.syscalls.len(), 1);
        assert!(
            dropped[0].starts_with("notify rule for mknodat"),
            "{dropped:?}"
        );
        let bad = ExportOptions {
            listener_path: Some("/run/auditor/agent.sock".into()),
            ..ExportOptions::default()
        };
        assert!(
            matches!(spec(&p, &bad, &mut dropped), Err(FormatError::Unusable(m)) if m.contains(LISTENER_DIR))
        );
        let good = ExportOptions {
            listener_path: Some(format!("{LISTENER_DIR}auditor.sock")),
            listener_metadata: Some("web".into()),
            ..ExportOptions::default()
        };
        let mut dropped = Vec::new();
        let s = spec(&p, &good, &mut dropped).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(s.syscalls[0].action, "SCMP_ACT_NOTIFY");
        assert_eq!(s.listener_metadata.as_deref(), Some("web"));
    }

    #[test]
    fn values_beyond_int64_and_unknown_flags_are_dropped_not_mangled() {
        let mut p = policy("default_action = \"errno\"\ndefault_errno = \"EPERM\"\n[[rule]]\nname = \"read\"\naction = \"allow\"\n");
        p.rules.push(Rule {
            args: vec![Condition {
                index: 0,
                op: Op::Eq,
                value: u64::MAX - 99,
            }],
            ..Rule::new(["openat"], Action::Allow)
        });
        p.flags = vec![
            "SECCOMP_FILTER_FLAG_LOG".into(),
            "SECCOMP_FILTER_FLAG_NEW_LISTENER".into(),
        ];
        let mut dropped = Vec::new();
        let s = spec(&p, &ExportOptions::default(), &mut dropped).unwrap();
        assert_eq!(s.syscalls.len(), 1);
        assert_eq!(s.flags, ["SECCOMP_FILTER_FLAG_LOG"]);
        assert_eq!(dropped.len(), 2, "{dropped:?}");
    }

    #[test]
    fn export_and_import_round_trip_with_a_base_profile() {
        let p = policy("default_action = \"errno\"\ndefault_errno = \"EPERM\"\narchitectures = [\"x86_64\"]\n[[rule]]\nnames = [\"read\", \"write\", \"futex\"]\naction = \"allow\"\n[[rule]]\nname = \"socket\"\naction = \"allow\"\nargs = [{ index = 0, op = \"==\", value = 1 }]\n[[rule]]\nname = \"ptrace\"\naction = \"errno\"\nerrno = \"ENOSYS\"\n");
        let options = ExportOptions {
            name: Some("Web_App".into()),
            base_profile: Some(BaseProfile {
                name: "auditor-runc-v1.1.5".into(),
                description: "runc".into(),
                syscalls: vec!["futex".into(), "execve".into()],
            }),
            ..ExportOptions::default()
        };
        let (text, dropped) = export(&p, &options).unwrap();
        assert!(dropped.is_empty());
        assert!(
            text.contains("baseProfileName: auditor-runc-v1.1.5"),
            "{text}"
        );
        assert!(text.contains("name: web-app"), "{text}");
        let all = import_all(&text).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[1].base_profile_name.as_deref(),
            Some("auditor-runc-v1.1.5")
        );
        // The workload's own rule lost futex to the base; resolving brings it and execve back.
        let back = import(&text).unwrap();
        let allowed: Vec<&str> = back
            .rules
            .iter()
            .filter(|r| r.action == Action::Allow && r.args.is_empty())
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        for n in ["read", "write", "futex", "execve"] {
            assert!(allowed.contains(&n), "{n}: {allowed:?}");
        }
        assert!(back
            .rules
            .iter()
            .any(|r| r.names == ["ptrace"] && r.action == Action::Errno(38)));
        assert!(back
            .rules
            .iter()
            .any(|r| r.names == ["socket"] && r.args.len() == 1));
        // Without its base the profile is refused, saying which.
        let alone = text.split("---\n").last().unwrap();
        let e = import(alone).unwrap_err().to_string();
        assert!(
            e.contains("base profile auditor-runc-v1.1.5 is not in the input"),
            "{e}"
        );
    }

    #[test]
    fn bad_yaml_says_where() {
        let e = import("apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: x\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - action: SCMP_ACT_NOPE\n    names: [read]\n").unwrap_err().to_string();
        assert!(e.starts_with("8:") && e.contains("SCMP_ACT_NOPE"), "{e}");
        let e = import("apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: x\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  sycalls: []\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `sycalls`"), "{e}");
        let e = import("apiVersion: v1\nkind: ConfigMap\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no SeccompProfile"), "{e}");
        let e = import("kind: SeccompProfile\n  - : [\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("2:") || e.starts_with("1:"), "{e}");
    }
}
