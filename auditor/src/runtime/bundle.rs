//! The edits `auditor runtime` makes to a bundle's `config.json` before the real runtime reads
//! it. Pure: a JSON document in, the same document edited plus what was done, out. Everything
//! the wrapper does not own is kept as it is; editing twice is editing once.

use std::path::Path;

use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("config.json: {what} is not a JSON {expected} (the engine wrote a broken bundle)")]
    Shape {
        what: &'static str,
        expected: &'static str,
    },
}

/// What to add.
#[derive(Clone, Debug, Default)]
pub struct Edits {
    /// Register the container with `auditor daemon` from a `createRuntime` hook running this
    /// program with these arguments (`args[0]` is the program's name).
    pub learn_hook: Option<(String, Vec<String>)>,
    /// The agent's socket, as the seccomp profile's `listenerPath`.
    pub listener: Option<String>,
    /// The policy name, as the profile's `listenerMetadata`.
    pub policy: Option<String>,
}

/// One thing done (or deliberately not done) to the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    HookAdded,
    /// The same hook was already there (`run` after a failed `create`, a second wrapper).
    HookPresent,
    ListenerSet,
    MetadataSet,
    /// The profile already names another listener: the container's own profile wins.
    ListenerKept(String),
    /// No seccomp profile at all (`--security-opt seccomp=unconfined`): nothing to serve.
    NoProfile,
    /// The profile has no `SCMP_ACT_NOTIFY` action: runc would hand the agent a listener it
    /// never hears from, so none is asked for.
    NoNotifyRule,
}

impl Change {
    /// Whether an operator should hear of it.
    pub fn is_warning(&self) -> bool {
        matches!(self, Change::ListenerKept(_) | Change::NoProfile)
    }

    pub fn describe(&self, edits: &Edits) -> String {
        match self {
            Change::HookAdded => "added the createRuntime hook that registers the container with auditor daemon".into(),
            Change::HookPresent => "the auditor hook is already in the bundle".into(),
            Change::ListenerSet => format!(
                "set the seccomp listenerPath to {}",
                edits.listener.as_deref().unwrap_or_default()
            ),
            Change::MetadataSet => format!(
                "set the seccomp listenerMetadata (policy name) to {}",
                edits.policy.as_deref().unwrap_or_default()
            ),
            Change::ListenerKept(path) => format!(
                "the container's seccomp profile already names the listener {path}: kept it (auditor runtime --agent applies to profiles that name none)"
            ),
            Change::NoProfile => "the container has no seccomp profile (seccomp=unconfined?): no notify rule can reach auditor agent".into(),
            Change::NoNotifyRule => "the seccomp profile has no SCMP_ACT_NOTIFY rule: no listener asked for".into(),
        }
    }
}

fn object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
    what: &'static str,
) -> Result<&'a mut Map<String, Value>, BundleError> {
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    entry.as_object_mut().ok_or(BundleError::Shape {
        what,
        expected: "object",
    })
}

/// Whether any action of the profile is `SCMP_ACT_NOTIFY`.
fn has_notify(profile: &Map<String, Value>) -> bool {
    let notify = |v: Option<&Value>| v.and_then(Value::as_str) == Some("SCMP_ACT_NOTIFY");
    notify(profile.get("defaultAction"))
        || profile
            .get("syscalls")
            .and_then(Value::as_array)
            .is_some_and(|rules| rules.iter().any(|r| notify(r.get("action"))))
}

/// Apply `edits` to a bundle's configuration.
pub fn edit(config: &mut Value, edits: &Edits) -> Result<Vec<Change>, BundleError> {
    let config = config.as_object_mut().ok_or(BundleError::Shape {
        what: "the document",
        expected: "object",
    })?;
    let mut changes = Vec::new();
    if let Some((path, args)) = &edits.learn_hook {
        let hooks = object(config, "hooks", "hooks")?;
        let list = hooks.entry("createRuntime").or_insert_with(|| json!([]));
        if list.is_null() {
            *list = json!([]);
        }
        let list = list.as_array_mut().ok_or(BundleError::Shape {
            what: "hooks.createRuntime",
            expected: "array",
        })?;
        let ours = json!({ "path": path, "args": args });
        if list.contains(&ours) {
            changes.push(Change::HookPresent);
        } else {
            list.push(ours);
            changes.push(Change::HookAdded);
        }
    }
    if let Some(listener) = &edits.listener {
        let linux = object(config, "linux", "linux")?;
        match linux.get_mut("seccomp") {
            None | Some(Value::Null) => changes.push(Change::NoProfile),
            Some(Value::Object(profile)) => {
                let existing = profile
                    .get("listenerPath")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty());
                match existing {
                    Some(p) if p != listener => changes.push(Change::ListenerKept(p.to_owned())),
                    _ if !has_notify(profile) => changes.push(Change::NoNotifyRule),
                    _ => {
                        profile.insert("listenerPath".into(), json!(listener));
                        changes.push(Change::ListenerSet);
                        if let Some(policy) = &edits.policy {
                            profile.insert("listenerMetadata".into(), json!(policy));
                            changes.push(Change::MetadataSet);
                        }
                    }
                }
            }
            Some(_) => {
                return Err(BundleError::Shape {
                    what: "linux.seccomp",
                    expected: "object",
                })
            }
        }
    }
    Ok(changes)
}

/// The hook `auditor runtime --learn` adds: this program, `hook`, the daemon's socket and the
/// runtime's name (recorded in the observation), plus the configuration file if one was named.
pub fn learn_hook(
    program: &Path,
    socket: &Path,
    runtime: &str,
    config: Option<&Path>,
) -> (String, Vec<String>) {
    let mut args = vec!["auditor".to_owned()];
    if let Some(c) = config {
        args.extend(["--config".to_owned(), c.display().to_string()]);
    }
    args.extend([
        "hook".to_owned(),
        "--socket".to_owned(),
        socket.display().to_string(),
        "--runtime".to_owned(),
        runtime.to_owned(),
    ]);
    (program.display().to_string(), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_config() -> Value {
        // The shape dockerd 20.10 writes (trimmed): a profile with notify rules, no listener.
        json!({
            "ociVersion": "1.0.2-dev",
            "process": {"args": ["/bin/sh"]},
            "hooks": {"prestart": [{"path": "/usr/bin/dockerd", "args": ["libnetwork-setkey"]}]},
            "linux": {
                "namespaces": [{"type": "pid"}],
                "seccomp": {
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "syscalls": [
                        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"}
                    ]
                }
            }
        })
    }

    fn all() -> Edits {
        Edits {
            learn_hook: Some(learn_hook(
                Path::new("/usr/bin/auditor"),
                Path::new("/run/auditor/daemon.sock"),
                "runc",
                None,
            )),
            listener: Some("/run/auditor/agent.sock".into()),
            policy: Some("web".into()),
        }
    }

    #[test]
    fn adds_the_hook_and_the_listener_and_keeps_everything_else() {
        let mut c = docker_config();
        let changes = edit(&mut c, &all()).unwrap();
        assert_eq!(
            changes,
            [Change::HookAdded, Change::ListenerSet, Change::MetadataSet]
        );
        assert_eq!(
            c["hooks"]["createRuntime"],
            json!([{"path": "/usr/bin/auditor", "args": ["auditor", "hook", "--socket", "/run/auditor/daemon.sock", "--runtime", "runc"]}])
        );
        assert_eq!(c["hooks"]["prestart"][0]["args"][0], "libnetwork-setkey");
        assert_eq!(
            c["linux"]["seccomp"]["listenerPath"],
            "/run/auditor/agent.sock"
        );
        assert_eq!(c["linux"]["seccomp"]["listenerMetadata"], "web");
        assert_eq!(
            c["linux"]["seccomp"]["syscalls"].as_array().unwrap().len(),
            2
        );
        assert_eq!(c["process"], docker_config()["process"]);
        // A second pass (runc `run` after a failed `create`) changes nothing.
        let before = c.clone();
        let changes = edit(&mut c, &all()).unwrap();
        assert_eq!(
            changes,
            [
                Change::HookPresent,
                Change::ListenerSet,
                Change::MetadataSet
            ]
        );
        assert_eq!(c, before);
    }

    #[test]
    fn a_profile_without_notify_rules_or_with_its_own_listener_is_not_rewired() {
        let mut c = docker_config();
        c["linux"]["seccomp"]["syscalls"][1]["action"] = json!("SCMP_ACT_ERRNO");
        let changes = edit(&mut c, &all()).unwrap();
        assert_eq!(changes, [Change::HookAdded, Change::NoNotifyRule]);
        assert!(c["linux"]["seccomp"].get("listenerPath").is_none());

        let mut c = docker_config();
        c["linux"]["seccomp"]["listenerPath"] = json!("/run/other.sock");
        let changes = edit(&mut c, &all()).unwrap();
        assert_eq!(changes[1], Change::ListenerKept("/run/other.sock".into()));
        assert!(changes[1].is_warning());
        assert_eq!(c["linux"]["seccomp"]["listenerPath"], "/run/other.sock");

        let mut c = docker_config();
        c["linux"].as_object_mut().unwrap().remove("seccomp");
        assert_eq!(edit(&mut c, &all()).unwrap()[1], Change::NoProfile);
    }

    #[test]
    fn hooks_are_created_where_absent_or_null() {
        for hooks in [
            None,
            Some(Value::Null),
            Some(json!({"createRuntime": null})),
        ] {
            let mut c = json!({"ociVersion": "1.0.2"});
            if let Some(h) = hooks {
                c["hooks"] = h;
            }
            let e = Edits {
                learn_hook: all().learn_hook,
                ..Edits::default()
            };
            assert_eq!(edit(&mut c, &e).unwrap(), [Change::HookAdded]);
            assert_eq!(c["hooks"]["createRuntime"].as_array().unwrap().len(), 1);
        }
    }

    #[test]
    fn broken_documents_are_errors_not_panics() {
        for (doc, what) in [
            (json!([]), "the document"),
            (json!({"hooks": 3}), "hooks"),
            (
                json!({"hooks": {"createRuntime": {}}}),
                "hooks.createRuntime",
            ),
            (json!({"linux": "x"}), "linux"),
            (json!({"linux": {"seccomp": []}}), "linux.seccomp"),
        ] {
            let mut c = doc;
            let e = edit(&mut c, &all()).unwrap_err();
            let BundleError::Shape { what: w, .. } = e;
            assert_eq!(w, what);
        }
    }

    #[test]
    fn the_hook_carries_the_configuration_file() {
        let (path, args) = learn_hook(
            Path::new("/usr/bin/auditor"),
            Path::new("/s"),
            "crun",
            Some(Path::new("/etc/a.toml")),
        );
        assert_eq!(path, "/usr/bin/auditor");
        assert_eq!(
            args,
            [
                "auditor",
                "--config",
                "/etc/a.toml",
                "hook",
                "--socket",
                "/s",
                "--runtime",
                "crun"
            ]
        );
    }
}
