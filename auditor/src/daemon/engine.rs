//! Containers named the way engines and Kubernetes name them: `docker://NAME|ID`,
//! `podman://NAME|ID` (through the engine's own CLI, `inspect`, which honours `DOCKER_HOST`
//! and podman's `--url` settings) and `containerd://ID` (the form Kubernetes shows in a pod's
//! `containerID`: the runc state directories of containerd's namespaces and of Docker's
//! containerd are searched for it).

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
    let name = c["Name"].as_str().unwrap_or("").trim_start_matches('/');
    let image = c["Config"]["Image"]
        .as_str()
        .or_else(|| c["ImageName"].as_str())
        .unwrap_or("?");
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

/// The runc state directories that hold container `id`, under `roots`.
pub fn runc_roots_of(id: &str, roots: &[&Path]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
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
            let roots: Vec<&Path> = RUNC_ROOTS.iter().map(Path::new).collect();
            let found = runc_roots_of(id, &roots);
            let Some(state_root) = found.first() else {
                return Err(err(
                    reference,
                    format!("no runc state for it under {} (a containerd container run by another runtime? give --runtime and --root)", RUNC_ROOTS.join(" or ")),
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
            })
        }
        Reference::Oci(id) => {
            let pid = super::container::init_pid(runtime, root, id)?;
            Ok(Found {
                id: id.to_owned(),
                pid,
                runtime: Some(runtime.name().to_owned()),
                description: format!("{} container {id}", runtime.name()),
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
    }
}
