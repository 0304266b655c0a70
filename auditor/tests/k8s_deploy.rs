//! `deploy/kubernetes/` as a cluster and a reviewer read it, without a cluster: every object
//! validates strictly against the Kubernetes OpenAPI schemas (the `kubernetes-validate`
//! package, for the oldest and newest versions it ships that we support), the pod-security
//! fields a reviewer checks are as documented, the settings and policies it ships are ones
//! auditor accepts, and the kustomization lists every object.
//!
//! Needs python3 with kubernetes-validate (`cargo xtask setup` installs it); under `CI=true` a
//! missing validator fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The object files (everything but the kustomization).
fn object_files() -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    v.retain(|p| {
        p.extension().is_some_and(|e| e == "yaml")
            && p.file_name().is_some_and(|n| n != "kustomization.yaml")
    });
    v.sort();
    Ok(v)
}

fn objects() -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for f in object_files()? {
        let text = std::fs::read_to_string(&f)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    Ok(out)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Result<&'a Value, String> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .ok_or_else(|| format!("no {kind} {name} in deploy/kubernetes"))
}

fn validator_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with kubernetes-validate is needed (cargo xtask setup installs it)"
        );
        eprintln!("skipped: kubernetes-validate is not installed (cargo xtask setup)");
    }
    ok
}

fn kubernetes_validate(
    version: &str,
    files: &[PathBuf],
) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", version])
        .args(files)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn every_object_validates_against_the_kubernetes_schemas() -> TestResult {
    if !validator_ready() {
        return Ok(());
    }
    let files = object_files()?;
    assert!(files.len() >= 4, "{files:?}");
    for version in ["1.27.0", "1.37.0"] {
        let (ok, said) = kubernetes_validate(version, &files)?;
        assert!(
            ok,
            "Kubernetes {version} refuses deploy/kubernetes:\n{said}"
        );
        assert!(said.contains("daemonset/auditor"), "{said}");
    }
    // The validator is strict: a misspelt field fails (so the check above can fail).
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("daemonset.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(deploy().join("daemonset.yaml"))?
            .replace("hostPID: true", "hostPid: true"),
    )?;
    let (ok, said) = kubernetes_validate("1.37.0", &[bad])?;
    assert!(!ok, "a misspelt field passed: {said}");
    Ok(())
}

#[test]
fn the_daemonset_asks_for_what_it_needs_and_no_more() -> TestResult {
    let objects = objects()?;
    let ds = find(&objects, "DaemonSet", "auditor")?;
    let pod = &ds["spec"]["template"]["spec"];
    // Host namespaces: PID only (the callers' /proc), never the network or IPC.
    assert_eq!(pod["hostPID"], true);
    assert_ne!(pod["hostNetwork"], true);
    assert_ne!(pod["hostIPC"], true);
    // No API access: no token, and no RBAC object that would grant one anything.
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sa = find(
        &objects,
        "ServiceAccount",
        pod["serviceAccountName"].as_str().unwrap_or(""),
    )?;
    assert_eq!(sa["automountServiceAccountToken"], false);
    for o in &objects {
        let kind = o["kind"].as_str().unwrap_or("");
        assert!(
            !matches!(
                kind,
                "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
            ),
            "{kind} {}: auditor needs no API access",
            o["metadata"]["name"]
        );
    }
    // The namespace admits privileged pods, and says so.
    let ns = find(&objects, "Namespace", "auditor-system")?;
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    let containers = pod["containers"].as_array().ok_or("no containers")?;
    let mut privileged = Vec::new();
    for c in containers {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        let image = c["image"].as_str().unwrap_or("");
        assert!(
            image
                .rsplit_once(':')
                .is_some_and(|(_, t)| t != "latest" && !t.contains('/')),
            "{name}: pin the image's tag ({image})"
        );
        assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{name}");
        assert_eq!(
            sc["readOnlyRootFilesystem"], true,
            "{name}: read-only root file system"
        );
        assert!(
            c["resources"]["limits"]["memory"].is_string()
                && c["resources"]["requests"]["memory"].is_string()
                && c["resources"]["requests"]["cpu"].is_string(),
            "{name}: resource requests and a memory limit"
        );
        if sc["privileged"] == true {
            privileged.push(name);
            // Privileged containers serve probes on their metrics port.
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
        } else {
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
        }
    }
    privileged.sort_unstable();
    assert_eq!(
        privileged,
        ["agent", "learner"],
        "only the agent and the learner are privileged"
    );

    // Host paths: exactly these, the kernel's BTF read-only.
    let mut host: Vec<&str> = pod["volumes"]
        .as_array()
        .ok_or("no volumes")?
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    host.sort_unstable();
    assert_eq!(
        host,
        [
            "/run/auditor",
            "/sys/fs/bpf",
            "/sys/kernel/btf",
            "/var/lib/auditor",
            "/var/lib/kubelet/seccomp",
            "/var/log/auditor",
            "/var/run/security-profiles-operator",
        ]
    );
    for c in containers {
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            if m["name"] == "btf" || m["name"] == "config" || m["name"] == "policies" {
                assert_eq!(m["readOnly"], true, "{}: {}", c["name"], m["name"]);
            }
        }
    }
    Ok(())
}

#[test]
fn the_shipped_settings_and_policies_are_ones_auditor_accepts() -> TestResult {
    let objects = objects()?;
    let cfg = find(&objects, "ConfigMap", "auditor-config")?;
    let text = cfg["data"]["config.toml"]
        .as_str()
        .ok_or("no config.toml")?;
    let config = auditor::config::parse(text, Path::new("configmap.yaml:config.toml"))?;
    let agent = &config.agent;
    // The agent's socket is where SPO's CRD lets a profile's listenerPath be.
    let socket = agent.socket.as_deref().ok_or("no agent socket")?;
    assert!(
        auditor::policy::formats::k8s::valid_listener_path(&socket.to_string_lossy()),
        "{socket:?}"
    );
    let policies = find(&objects, "ConfigMap", "auditor-policies")?;
    let data = policies["data"].as_object().ok_or("no policies")?;
    assert!(data.contains_key("default.toml"));
    for (name, text) in data {
        let p = auditor::policy::model::parse_native(text.as_str().unwrap_or(""))
            .map_err(|e| format!("{name}:{e}"))?;
        let findings = auditor::policy::check::check(&p);
        assert!(
            auditor::policy::check::exit_status(&findings) < 2,
            "{name}: {findings:?}"
        );
    }
    // The DaemonSet's ports are the ones the settings serve metrics on.
    let ds = find(&objects, "DaemonSet", "auditor")?;
    let ports: Vec<u64> = ds["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    for addr in [text.contains("0.0.0.0:9464"), text.contains("0.0.0.0:9465")] {
        assert!(addr, "metrics addresses in the settings");
    }
    assert_eq!(ports, [9465, 9464]);
    Ok(())
}

#[test]
fn the_kustomization_lists_every_object_file() -> TestResult {
    let k: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        deploy().join("kustomization.yaml"),
    )?)?;
    let mut listed: Vec<String> = k["resources"]
        .as_array()
        .ok_or("no resources")?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    listed.sort();
    let mut files: Vec<String> = object_files()?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    files.sort();
    assert_eq!(listed, files);
    assert_eq!(k["namespace"], "auditor-system");
    // The image the kustomization pins is the workspace's version, built by the Containerfile.
    assert_eq!(k["images"][0]["newTag"], env!("CARGO_PKG_VERSION"));
    let containerfile = std::fs::read_to_string(deploy().join("../../Containerfile"))?;
    assert!(containerfile.contains("cargo build --release --locked -p auditor"));
    assert!(containerfile.contains(&format!("localhost/auditor:{}", env!("CARGO_PKG_VERSION"))));
    Ok(())
}
