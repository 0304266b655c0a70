//! Containers named the way engines and Kubernetes name them: `docker://NAME|ID`,
//! `podman://NAME|ID` (through the engine's own CLI, `inspect`, which honours `DOCKER_HOST`
//! and podman's `--url` settings) and `containerd://ID` (the form Kubernetes shows in a pod's
//! `containerID`: the runc state directories of containerd's namespaces and of Docker's
//! containerd are searched for it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::container::Runtime;
use super::DaemonError;

/// Where runc keeps containerd's containers: one directory per containerd namespace
/// (`k8s.io`, `moby`, `default`, …).
const RUNC_ROOTS: [&str; 2] = ["/run/containerd/runc", "/run/docker/runtime-runc"];

/// An engine's reference, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference<'a> {
    Docker(&'a str),
    Podman(&'a str),
    Containerd(&'a str),
    /// A plain OCI id for runc/crun.
    Oci(&'a str),
}

pub fn parse(reference: &str) -> Reference<'_> {
    if let Some(r) = reference.strip_prefix("docker://") {
        Reference::Docker(r)
    } else if let Some(r) = reference.strip_prefix("podman://") {
        Reference::Podman(r)
    } else if let Some(r) = reference.strip_prefix("containerd://") {
        Reference::Containerd(r)
    } else {
        Reference::Oci(reference)
    }
}

/// A running container found through its engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The full container id (the OCI id its runtime knows).
    pub id: String,
    /// The host pid of its init.
    pub pid: u32,
    /// The OCI runtime that runs it, when the engine says.
    pub runtime: Option<String>,
    /// What to tell the user it is (engine, name, image).
    pub description: String,
    /// Engine, name, image and labels, for the observation.
    pub identity: Identity,
}

/// Who a container is to the engine that made it: recorded in the observation's target, shown
/// by the TUI, and used to group replicas (`generate --group-by`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// docker, podman, containerd (Kubernetes CRI), cri-o.
    pub engine: Option<String>,
    /// The engine's name of the container (Kubernetes: the container's name in its pod).
    pub name: Option<String>,
    pub image: Option<String>,
    /// The engine's labels; Kubernetes' pod identity under the `io.kubernetes.*` keys.
    pub labels: BTreeMap<String, String>,
}

/// Labels kept of one container, and the longest key and value: they come from whoever
/// started it, and end up in every observation file.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_LEN: usize = 256;

pub use crate::observe::model::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};

fn bounded(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= MAX_LABEL_LEN && !s.chars().any(char::is_control))
        .then(|| s.to_owned())
}

impl Identity {
    fn label(&mut self, key: &str, value: &str) {
        if self.labels.len() < MAX_LABELS {
            if let (Some(k), Some(v)) = (bounded(key), bounded(value)) {
                self.labels.insert(k, v);
            }
        }
    }

    /// What the engine's `inspect` adds to what the runtime's state said.
    pub fn merge(&mut self, other: Identity) {
        self.engine = self.engine.take().or(other.engine);
        self.name = self.name.take().or(other.name);
        self.image = self.image.take().or(other.image);
        for (k, v) in other.labels {
            if self.labels.len() >= MAX_LABELS {
                break;
            }
            self.labels.entry(k).or_insert(v);
        }
    }

    /// "docker container web (image nginx:1.25)", or what is known of it.
    pub fn describe(&self) -> Option<String> {
        let engine = self.engine.as_deref()?;
        let mut s = format!("{engine} container");
        if let Some(n) = &self.name {
            s.push(' ');
            s.push_str(n);
        }
        if let (Some(pod), Some(ns)) = (self.labels.get(POD_NAME), self.labels.get(POD_NAMESPACE)) {
            s.push_str(&format!(" in pod {ns}/{pod}"));
        }
        if let Some(i) = &self.image {
            s.push_str(&format!(" (image {i})"));
        }
        Some(s)
    }
}

/// What the runtime's state says of the engine (the annotations it passes on, the bundle's
/// path): CRI (containerd's `io.kubernetes.cri.*`, CRI-O's `io.kubernetes.*`) names the pod,
/// namespace, container and image; podman only says it is podman; Docker's shim puts the
/// bundle under containerd's `moby` namespace.
pub fn identity_from_state(annotations: &BTreeMap<String, String>, bundle: &str) -> Identity {
    let a = |k: &str| annotations.get(k).and_then(|v| bounded(v));
    let mut id = Identity::default();
    if a("io.container.manager").as_deref() == Some("libpod") {
        id.engine = Some("podman".into());
    } else if a("io.kubernetes.cri.container-type").is_some() {
        id.engine = Some("containerd".into());
        id.name = a("io.kubernetes.cri.container-name");
        id.image = a("io.kubernetes.cri.image-name");
        for (from, to) in [
            ("io.kubernetes.cri.sandbox-name", POD_NAME),
            ("io.kubernetes.cri.sandbox-namespace", POD_NAMESPACE),
            ("io.kubernetes.cri.sandbox-uid", POD_UID),
        ] {
            if let Some(v) = a(from) {
                id.label(to, &v);
            }
        }
    } else if a("io.kubernetes.cri-o.ContainerType").is_some() {
        id.engine = Some("cri-o".into());
        id.name = a(CONTAINER_NAME);
        id.image = a("io.kubernetes.cri-o.ImageName");
        for key in [POD_NAME, POD_NAMESPACE, POD_UID] {
            if let Some(v) = a(key) {
                id.label(key, &v);
            }
        }
        // The pod's own labels (a JSON object; `app`, `app.kubernetes.io/name`, …), as
        // bounded as the rest; kubelet's own keys were read above.
        if let Some(text) = annotations
            .get("io.kubernetes.cri-o.Labels")
            .filter(|t| t.len() <= 64 * 1024)
        {
            if let Ok(map) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text) {
                for (k, v) in map {
                    if let (Some(v), false) = (v.as_str(), k.starts_with("io.kubernetes.")) {
                        id.label(&k, v);
                    }
                }
            }
        }
    } else if bundle.contains("/moby/") {
        id.engine = Some("docker".into());
    }
    if let Some(n) = &id.name {
        let n = n.clone();
        id.label(CONTAINER_NAME, &n);
    }
    id
}

/// A podman container's name and image from containers/storage's record of it: podman's
/// bundle is `GRAPHROOT/DRIVER-containers/ID/userdata`, and `containers.json` beside the `ID`
/// directory lists each container's names and, in its `metadata`, the image name. Read at
/// registration, without podman: `podman inspect` waits for the container's lock, which
/// `podman run` holds until a short container is gone.
pub fn identity_from_podman_storage(bundle: &Path, id: &str) -> Option<Identity> {
    let container_dir = bundle.parent().filter(|_| bundle.ends_with("userdata"))?;
    if container_dir.file_name()?.to_str()? != id {
        return None;
    }
    let list = container_dir.parent()?.join("containers.json");
    let bytes = crate::fsutil::read_capped(&list, 64 << 20).ok()??;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let c = v.as_array()?.iter().find(|c| c["id"] == id)?;
    let meta: serde_json::Value = c["metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    Some(Identity {
        engine: Some("podman".into()),
        name: c["names"][0]
            .as_str()
            .or_else(|| meta["name"].as_str())
            .and_then(bounded),
        image: meta["image-name"].as_str().and_then(bounded),
        labels: BTreeMap::new(),
    })
}

/// What `ENGINE inspect` says of a container's identity (name, image, labels).
pub fn identity_from_inspect(engine: &str, c: &serde_json::Value) -> Identity {
    let mut id = Identity {
        engine: Some(engine.to_owned()),
        name: c["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/'))
            .and_then(bounded),
        image: c["Config"]["Image"]
            .as_str()
            .or_else(|| c["ImageName"].as_str())
            .and_then(bounded),
        labels: BTreeMap::new(),
    };
    if let Some(labels) = c["Config"]["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                id.label(k, v);
            }
        }
    }
    id
}

/// The identity of container `id` from the engine's CLI (`docker inspect`, `podman inspect`),
/// waiting at most `timeout`: run off the daemon's loop, after the hook has returned (the
/// engine holds the container's lock while its runtime runs the hook).
pub async fn inspect_identity(
    engine: &str,
    id: &str,
    timeout: std::time::Duration,
) -> Result<Identity, String> {
    let out = tokio::time::timeout(
        timeout,
        tokio::process::Command::new(engine)
            .args(["inspect", "--type", "container", "--", id])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("`{engine} inspect` did not answer within {timeout:?}"))?
    .map_err(|e| format!("cannot run `{engine} inspect`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{engine} inspect` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`{engine} inspect` printed something that is not its JSON: {e}"))?;
    Ok(identity_from_inspect(
        engine,
        v.as_array().and_then(|a| a.first()).unwrap_or(&v),
    ))
}

fn err(reference: &str, msg: String) -> DaemonError {
    DaemonError::Container {
        id: reference.chars().take(300).collect(),
        msg,
    }
}

/// Read the output of `ENGINE inspect NAME` (a JSON array of one container).
pub fn from_inspect(engine: &str, reference: &str, json: &[u8]) -> Result<Found, DaemonError> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
        err(
            reference,
            format!("`{engine} inspect` printed something that is not its JSON: {e}"),
        )
    })?;
    let c = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
    let id = c["Id"]
        .as_str()
        .ok_or_else(|| err(reference, format!("`{engine} inspect` gave no Id")))?;
    super::protocol::check_id(id).map_err(|e| err(reference, e.to_string()))?;
    let running = c["State"]["Running"].as_bool().unwrap_or(false)
        || c["State"]["Status"].as_str() == Some("running");
    let pid = c["State"]["Pid"].as_u64().unwrap_or(0);
    if !running || pid == 0 || pid > u64::from(u32::MAX) {
        return Err(err(
            reference,
            format!(
                "the {engine} container is not running (status {})",
                c["State"]["Status"].as_str().unwrap_or("unknown")
            ),
        ));
    }
    let identity = identity_from_inspect(engine, c);
    let name = identity.name.as_deref().unwrap_or("");
    let image = identity.image.as_deref().unwrap_or("?");
    // Docker: HostConfig.Runtime names its runtime entry (runc, or a wrapper); podman:
    // OCIRuntime.
    let runtime = c["OCIRuntime"]
        .as_str()
        .or_else(|| c["HostConfig"]["Runtime"].as_str())
        .map(str::to_owned);
    Ok(Found {
        id: id.to_owned(),
        pid: pid as u32,
        runtime,
        description: format!(
            "{engine} container {name} ({}, image {image})",
            &id[..id.len().min(12)]
        ),
        identity,
    })
}

/// Ask the engine's CLI.
fn inspect(engine: &str, reference: &str, name: &str) -> Result<Found, DaemonError> {
    if name.is_empty() || name.starts_with('-') {
        return Err(err(
            reference,
            format!("give a container name or id after {engine}://"),
        ));
    }
    let out = Command::new(engine)
        .args(["inspect", "--type", "container", "--", name])
        .output()
        .map_err(|e| {
            err(
                reference,
                format!("cannot run `{engine} inspect`: {e} (is {engine} installed and in PATH?)"),
            )
        })?;
    if !out.status.success() {
        return Err(err(
            reference,
            format!(
                "`{engine} inspect {name}` failed: {} (check the name with `{engine} ps`{})",
                String::from_utf8_lossy(&out.stderr).trim(),
                if engine == "docker" {
                    "; DOCKER_HOST names another engine"
                } else {
                    ""
                }
            ),
        ));
    }
    from_inspect(engine, reference, &out.stdout)
}

/// The identity a containerd container's runc state records (its config's annotations and
/// bundle): CRI containers name their pod; others only their engine.
fn identity_of_runc_state(dir: &Path) -> Identity {
    // runc's state holds the whole container config (a seccomp profile can be large).
    let text = crate::fsutil::read_capped(&dir.join("state.json"), 16 << 20)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(state) = text else {
        return Identity::default();
    };
    let config = &state["config"];
    let mut annotations = BTreeMap::new();
    // runc keeps the spec's annotations as "labels": ["key=value", ...], and the bundle
    // among them.
    for l in config["labels"].as_array().into_iter().flatten() {
        if let Some((k, v)) = l.as_str().and_then(|l| l.split_once('=')) {
            annotations.insert(k.to_owned(), v.to_owned());
        }
    }
    let bundle = annotations.get("bundle").cloned().unwrap_or_default();
    let mut id = identity_from_state(&annotations, &bundle);
    id.engine.get_or_insert_with(|| "containerd".into());
    id
}

/// The runc state directories that hold container `id`, under `roots`: a root's namespace
/// directories (containerd's layout), or the root itself (runc's own `--root`).
pub fn runc_roots_of(id: &str, roots: &[&Path]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
        if root.join(id).join("state.json").is_file() {
            found.push(root.to_path_buf());
            continue;
        }
        for ns in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if ns.path().join(id).join("state.json").is_file() {
                found.push(ns.path());
            }
        }
    }
    found
}

/// Resolve `reference`: an engine's (`docker://`, `podman://`, `containerd://`) or a plain
/// OCI id of `runtime` (with its state directory `root`).
pub fn resolve(
    reference: &str,
    runtime: Runtime,
    root: Option<&Path>,
) -> Result<Found, DaemonError> {
    match parse(reference) {
        Reference::Docker(name) => inspect("docker", reference, name),
        Reference::Podman(name) => inspect("podman", reference, name),
        Reference::Containerd(id) => {
            super::protocol::check_id(id).map_err(|e| err(reference, e.to_string()))?;
            // A containerd of its own state directory (k3s, a test's dockerd) is found
            // through --root: its runc root, or one of its namespaces.
            let roots: Vec<&Path> = root
                .into_iter()
                .chain(RUNC_ROOTS.iter().map(Path::new))
                .collect();
            let found = runc_roots_of(id, &roots);
            let Some(state_root) = found.first() else {
                let searched: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                return Err(err(
                    reference,
                    format!("no runc state for it under {} (a containerd of another state directory? give its runc root with --root; a container of another runtime than runc? attach by pid or by --runtime and the plain id)", searched.join(" or ")),
                ));
            };
            let pid = super::container::init_pid(Runtime::Runc, Some(state_root), id)?;
            Ok(Found {
                id: id.to_owned(),
                pid,
                runtime: Some("runc".into()),
                description: format!(
                    "containerd container {} (runc state in {})",
                    &id[..id.len().min(12)],
                    state_root.display()
                ),
                identity: identity_of_runc_state(&state_root.join(id)),
            })
        }
        Reference::Oci(id) => {
            let pid = super::container::init_pid(runtime, root, id)?;
            Ok(Found {
                id: id.to_owned(),
                pid,
                runtime: Some(runtime.name().to_owned()),
                description: format!("{} container {id}", runtime.name()),
                identity: Identity::default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_split_by_engine() {
        assert_eq!(parse("docker://web"), Reference::Docker("web"));
        assert_eq!(parse("podman://abc"), Reference::Podman("abc"));
        assert_eq!(parse("containerd://0123"), Reference::Containerd("0123"));
        assert_eq!(parse("c1"), Reference::Oci("c1"));
    }

    #[test]
    fn reads_docker_and_podman_inspect() {
        let docker = br#"[{"Id":"4f1c8d7e9a0b4f1c8d7e9a0b4f1c8d7e9a0b4f1c8d7e9a0b4f1c8d7e9a0b1234","Name":"/web",
            "State":{"Status":"running","Running":true,"Pid":4242},
            "Config":{"Image":"nginx:1.25"},"HostConfig":{"Runtime":"auditor-learn"}}]"#;
        let f = from_inspect("docker", "docker://web", docker).unwrap();
        assert_eq!(f.pid, 4242);
        assert_eq!(f.runtime.as_deref(), Some("auditor-learn"));
        assert_eq!(
            f.description,
            "docker container web (4f1c8d7e9a0b, image nginx:1.25)"
        );
        let podman =
            br#"[{"Id":"abc123","Name":"db","State":{"Status":"running","Running":true,"Pid":77},
            "ImageName":"docker.io/library/postgres:16","OCIRuntime":"crun"}]"#;
        let f = from_inspect("podman", "podman://db", podman).unwrap();
        assert_eq!((f.pid, f.runtime.as_deref()), (77, Some("crun")));
        assert!(f
            .description
            .contains("image docker.io/library/postgres:16"));
    }

    #[test]
    fn identity_comes_from_cri_annotations_podmans_manager_and_dockers_bundle() {
        let a = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cri = identity_from_state(
            &a(&[
                ("io.kubernetes.cri.container-type", "container"),
                ("io.kubernetes.cri.container-name", "web"),
                ("io.kubernetes.cri.image-name", "nginx:1.25"),
                ("io.kubernetes.cri.sandbox-name", "web-7d4b9c-x2x9z"),
                ("io.kubernetes.cri.sandbox-namespace", "shop"),
            ]),
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc",
        );
        assert_eq!(cri.engine.as_deref(), Some("containerd"));
        assert_eq!(cri.name.as_deref(), Some("web"));
        assert_eq!(cri.labels[POD_NAMESPACE], "shop");
        assert_eq!(cri.labels[CONTAINER_NAME], "web");
        assert_eq!(
            cri.describe().as_deref(),
            Some("containerd container web in pod shop/web-7d4b9c-x2x9z (image nginx:1.25)")
        );
        let crio = identity_from_state(
            &a(&[
                ("io.kubernetes.cri-o.ContainerType", "container"),
                ("io.kubernetes.container.name", "db"),
                ("io.kubernetes.pod.name", "db-0"),
                ("io.kubernetes.pod.namespace", "data"),
                ("io.kubernetes.cri-o.ImageName", "postgres:16"),
                (
                    "io.kubernetes.cri-o.Labels",
                    r#"{"app":"db","io.kubernetes.pod.name":"forged","tier":7}"#,
                ),
            ]),
            "",
        );
        // The pod's labels are kept (strings only); kubelet's keys come from their own
        // annotations, never from the label map.
        assert_eq!(crio.labels["app"], "db");
        assert!(!crio.labels.contains_key("tier"));
        assert_eq!(
            (
                crio.engine.as_deref(),
                crio.image.as_deref(),
                crio.labels[POD_NAME].as_str()
            ),
            (Some("cri-o"), Some("postgres:16"), "db-0")
        );
        // podman also writes a cri-o annotation (Created): its manager decides.
        let podman = identity_from_state(
            &a(&[
                ("io.container.manager", "libpod"),
                ("io.kubernetes.cri-o.Created", "2026-12-05T19:09:38Z"),
            ]),
            "",
        );
        assert_eq!(
            (podman.engine.as_deref(), podman.name),
            (Some("podman"), None)
        );
        let docker = identity_from_state(
            &BTreeMap::new(),
            "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/4f1c",
        );
        assert_eq!(docker.engine.as_deref(), Some("docker"));
        assert_eq!(
            identity_from_state(&BTreeMap::new(), "/tmp/bundle"),
            Identity::default()
        );
        // Hostile values are dropped, not stored: too long, control characters.
        let hostile = identity_from_state(
            &a(&[
                ("io.kubernetes.cri.container-type", "container"),
                (
                    "io.kubernetes.cri.container-name",
                    &"x".repeat(MAX_LABEL_LEN + 1),
                ),
                ("io.kubernetes.cri.image-name", "evil\n\u{1b}[2J"),
            ]),
            "",
        );
        assert_eq!((hostile.name, hostile.image), (None, None));
    }

    #[test]
    fn podman_storage_names_its_containers() {
        let t = tempfile::tempdir().unwrap();
        let id = "f920702e7941bdbae7430ceabfbe35e7dd8126392ccb28d4af2c94b13d954571";
        let bundle = t.path().join("vfs-containers").join(id).join("userdata");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            t.path().join("vfs-containers/containers.json"),
            serde_json::json!([{"id": "other", "names": ["x"]}, {"id": id, "names": ["web"],
                "metadata": "{\"image-name\":\"localhost/bb:t\",\"name\":\"web\"}"}])
            .to_string(),
        )
        .unwrap();
        let i = identity_from_podman_storage(&bundle, id).unwrap();
        assert_eq!(
            (i.engine.as_deref(), i.name.as_deref(), i.image.as_deref()),
            (Some("podman"), Some("web"), Some("localhost/bb:t"))
        );
        // Another id's bundle, or a bundle elsewhere: nothing.
        assert!(identity_from_podman_storage(&bundle, "other").is_none());
        assert!(identity_from_podman_storage(t.path(), id).is_none());
    }

    #[test]
    fn inspect_labels_are_bounded_and_merge_keeps_what_was_known() {
        let mut labels = serde_json::Map::new();
        for i in 0..(MAX_LABELS + 10) {
            labels.insert(format!("l{i:03}"), format!("v{i}").into());
        }
        let c =
            serde_json::json!({"Name": "/web-2", "Config": {"Image": "nginx", "Labels": labels}});
        let i = identity_from_inspect("docker", &c);
        assert_eq!(i.labels.len(), MAX_LABELS);
        assert_eq!(i.name.as_deref(), Some("web-2"));
        let mut known = Identity {
            engine: Some("docker".into()),
            ..Identity::default()
        };
        known.labels.insert("a".into(), "from-state".into());
        known.merge(Identity {
            engine: Some("podman".into()),
            name: Some("web".into()),
            image: None,
            labels: [("a".to_string(), "other".to_string())].into(),
        });
        assert_eq!(known.engine.as_deref(), Some("docker"));
        assert_eq!(known.name.as_deref(), Some("web"));
        assert_eq!(known.labels["a"], "from-state");
    }

    #[test]
    fn stopped_containers_and_hostile_output_are_errors() {
        let stopped = br#"[{"Id":"abc","State":{"Status":"exited","Running":false,"Pid":0}}]"#;
        let e = from_inspect("docker", "docker://x", stopped)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not running (status exited)"), "{e}");
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"[{"Id":"../../etc","State":{"Running":true,"Pid":1}}]"#,
            br#"[{"Id":"a","State":{"Running":true,"Pid":99999999999}}]"#,
        ] {
            assert!(from_inspect("docker", "docker://x", bad).is_err());
        }
    }

    #[test]
    fn containerd_ids_are_found_in_any_namespace() {
        let d = tempfile::tempdir().unwrap();
        let ns = d.path().join("k8s.io").join("c0ffee");
        std::fs::create_dir_all(&ns).unwrap();
        std::fs::write(ns.join("state.json"), "{}").unwrap();
        assert_eq!(
            runc_roots_of("c0ffee", &[d.path()]),
            [d.path().join("k8s.io")]
        );
        assert!(runc_roots_of("other", &[d.path()]).is_empty());
        // A runc root itself (no namespace level).
        let flat = d.path().join("k8s.io");
        assert_eq!(
            runc_roots_of("c0ffee", &[&flat]),
            std::slice::from_ref(&flat)
        );
    }
}
