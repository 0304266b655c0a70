//! Kubernetes profiles as a cluster reads them, without privileges: every `SeccompProfile`
//! auditor writes validates against the Security Profiles Operator's own CRD
//! (`../shared/anchors/spo/`, validated strictly by its offline validator, as
//! `kubectl --validate=strict` would); SPO's own example profiles import; `generate --format
//! k8s` with a runtime baseline, `--format k8s-configmap`, `--kubelet-root` and `auditor import`
//! work from the command line.
//!
//! The validator needs python3 with PyYAML and jsonschema (Debian's python3-yaml and
//! python3-jsonschema; `.ci/run` installs them). Without them the schema tests fail under
//! `CI=true` and say what is missing elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use auditor::policy::formats::{self, k8s, ExportOptions, Format};
use auditor::policy::generate::{self, GenerateOptions};
use auditor::policy::model::{self, Action, Condition, Op, Policy, Rule};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn anchors() -> PathBuf {
    match std::env::var_os("AUDITOR_ANCHORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors"),
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Can the validator run here? Under CI it must.
fn validator_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import yaml, jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with PyYAML and jsonschema is needed to validate against SPO's CRD (apt-get install python3-yaml python3-jsonschema)"
        );
        eprintln!("skipped: python3 with PyYAML and jsonschema is not installed");
    }
    ok
}

/// Run SPO's CRD validator strictly on `text`; (passed, output).
fn validate(
    dir: &Path,
    name: &str,
    text: &str,
) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let file = dir.join(name);
    std::fs::write(&file, text)?;
    let spo = anchors().join("spo");
    let out = Command::new("python3")
        .arg(spo.join("validate.py"))
        .arg("--strict")
        .arg(spo.join("crd-seccompprofile.yaml"))
        .arg(&file)
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok((true, said)),
        Some(1) => Ok((false, said)),
        other => Err(format!("validate.py failed to run ({other:?}): {said}").into()),
    }
}

/// The golden observations' policy (notify rules with handlers, argument conditions).
fn generated(runtime: bool) -> Result<generate::Generated, Box<dyn std::error::Error>> {
    let mut obs = Vec::new();
    for f in ["obs-setup.json", "obs-overlay.json"] {
        obs.push(serde_json::from_str(&std::fs::read_to_string(golden(f))?)?);
    }
    let opts = GenerateOptions {
        tighten: true,
        runtime: runtime.then_some(generate::RuntimeTarget {
            runtime: generate::Runtime::Runc,
            version: None,
            listener: true,
            userns: false,
            no_new_privileges: false,
        }),
        ..GenerateOptions::default()
    };
    Ok(generate::generate(&obs, &opts)?)
}

/// A policy using every part of the object: errno, kill, trap, log, arguments of every op,
/// flags.
fn everything() -> Policy {
    let cond = |index, op, value| Condition { index, op, value };
    let mut p = Policy {
        architectures: vec![model::Arch::X86_64, model::Arch::X86],
        flags: vec![
            "SECCOMP_FILTER_FLAG_LOG".into(),
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".into(),
        ],
        ..Policy::default()
    };
    p.rules = vec![
        Rule::new(["read", "write", "exit_group"], Action::Allow),
        Rule::new(["ptrace"], Action::Errno(38)),
        Rule::new(["kexec_load"], Action::KillProcess),
        Rule::new(["reboot"], Action::KillThread),
        Rule::new(["acct"], Action::Trap),
        Rule::new(["sync"], Action::Log),
        Rule {
            args: vec![
                cond(0, Op::Eq, 1),
                cond(1, Op::MaskedEq { mask: 0xf }, 1),
                cond(2, Op::Le, i64::MAX as u64),
            ],
            ..Rule::new(["socket"], Action::Allow)
        },
        Rule {
            args: vec![
                cond(0, Op::Ne, 3),
                cond(1, Op::Gt, 0),
                cond(2, Op::Ge, 1),
                cond(3, Op::Lt, 9),
            ],
            ..Rule::new(["personality", "prctl"], Action::Allow)
        },
    ];
    p
}

fn k8s_export(p: &Policy, options: ExportOptions) -> Result<formats::Export, formats::FormatError> {
    formats::export(p, Format::K8s, &options)
}

#[test]
fn every_seccompprofile_auditor_writes_validates_against_spos_crd() -> TestResult {
    if !validator_ready() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let g = generated(false)?;
    let with_runtime = generated(true)?;
    let base = with_runtime
        .baseline
        .as_ref()
        .map(|(b, _)| k8s::BaseProfile {
            name: format!("auditor-runc-v{}-listener", b.version),
            description: "runc's own calls".into(),
            syscalls: b.syscalls.clone(),
        });
    assert!(base.is_some(), "the runtime baseline is used");
    let cases: Vec<(&str, formats::Export)> = vec![
        (
            "lossy-without-listener",
            k8s_export(
                &g.policy,
                ExportOptions {
                    lossy: true,
                    name: Some("Web_App.v2".into()),
                    ..Default::default()
                },
            )?,
        ),
        (
            "notify-with-listener",
            k8s_export(
                &g.policy,
                ExportOptions {
                    listener_path: Some(format!("{}auditor.sock", k8s::LISTENER_DIR)),
                    listener_metadata: Some("web".into()),
                    name: Some("web".into()),
                    annotations: vec![("auditor.dev/replicas".into(), "3".into())],
                    ..Default::default()
                },
            )?,
        ),
        (
            "base-profile",
            k8s_export(
                &with_runtime.policy,
                ExportOptions {
                    listener_path: Some(format!("{}auditor.sock", k8s::LISTENER_DIR)),
                    name: Some("web".into()),
                    base_profile: base,
                    ..Default::default()
                },
            )?,
        ),
        (
            "every-action-op-and-flag",
            k8s_export(
                &everything(),
                ExportOptions {
                    name: Some("all".into()),
                    ..Default::default()
                },
            )?,
        ),
        (
            "v1beta1",
            k8s_export(
                &everything(),
                ExportOptions {
                    name: Some("all".into()),
                    api_version: k8s::ApiVersion::V1beta1,
                    ..Default::default()
                },
            )?,
        ),
    ];
    for (name, e) in &cases {
        let (ok, said) = validate(dir.path(), &format!("{name}.yaml"), &e.text)?;
        assert!(
            ok,
            "{name}: SPO's CRD refuses auditor's profile:\n{said}\n{}",
            e.text
        );
        // And what auditor writes, auditor reads back.
        formats::k8s::import_all(&e.text)?;
    }
    let base_doc = &cases[2].1.text;
    assert_eq!(
        base_doc.matches("kind: SeccompProfile").count(),
        2,
        "{base_doc}"
    );
    assert!(
        base_doc.contains("baseProfileName: auditor-runc-v"),
        "{base_doc}"
    );
    Ok(())
}

#[test]
fn the_validator_refuses_what_spos_crd_refuses() -> TestResult {
    // So that the test above can fail: a listener outside SPO's directory, an unknown flag, a
    // value above int64 and an unknown field are each refused.
    if !validator_ready() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let head = "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: bad\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n";
    for (name, extra) in [
        ("listener", "  listenerPath: /run/auditor/agent.sock\n"),
        ("flag", "  flags: [SECCOMP_FILTER_FLAG_NEW_LISTENER]\n"),
        ("value", "  syscalls:\n  - action: SCMP_ACT_ALLOW\n    names: [openat]\n    args:\n    - {index: 0, value: 18446744073709551516, op: SCMP_CMP_EQ}\n"),
        ("field", "  defaultErrnoRet: 38\n"),
        ("dup", "  syscalls:\n  - action: SCMP_ACT_ALLOW\n    names: [read, read]\n"),
    ] {
        let (ok, said) = validate(dir.path(), &format!("{name}.yaml"), &format!("{head}{extra}"))?;
        assert!(!ok, "{name}: the validator accepted an invalid profile: {said}");
    }
    Ok(())
}

#[test]
fn spos_own_examples_import() -> TestResult {
    let examples = anchors().join("spo/examples");
    let mut profiles = 0;
    for f in [
        "seccompprofile.yaml",
        "baseprofile-runc.yaml",
        "seccompprofile-allowed-syscalls-validation.yaml",
    ] {
        let text = std::fs::read_to_string(examples.join(f)).map_err(|e| {
            format!(
                "{}: {e} (set AUDITOR_ANCHORS to shared/anchors)",
                examples.join(f).display()
            )
        })?;
        let all = k8s::import_all(&text).map_err(|e| format!("{f}:{e}"))?;
        for p in &all {
            k8s::resolve(p, &all).map_err(|e| format!("{f}: {}: {e}", p.name))?;
        }
        profiles += all.len();
    }
    assert!(profiles >= 5, "{profiles}");
    // The runc base profile: allow-list with an errno default.
    let text = std::fs::read_to_string(examples.join("baseprofile-runc.yaml"))?;
    let p = formats::import(&text, &formats::ImportOptions::default())?;
    assert!(matches!(p.default_action, Action::Errno(_)));
    assert!(p
        .rules
        .iter()
        .any(|r| r.action == Action::Allow && r.names.iter().any(|n| n == "execve")));
    Ok(())
}

fn auditor(args: &[&str]) -> Result<(i32, String, String), Box<dyn std::error::Error>> {
    let out = Command::new(env!("CARGO_BIN_EXE_auditor"))
        .args(args)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "auditor panicked: {stderr}");
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    ))
}

#[test]
fn the_cli_writes_kubelet_profiles_and_imports_what_a_cluster_has() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let obs = golden("obs-setup.json").to_string_lossy().into_owned();

    // SPO object with the runtime's calls as a base profile.
    let (code, _, err) = auditor(&[
        "generate",
        "--format",
        "k8s",
        "--runtime",
        "runc",
        "--name",
        "web",
        "--lossy",
        "-o",
        &d("web.yaml"),
        &obs,
    ])?;
    assert_eq!(code, 0, "{err}");
    let yaml = std::fs::read_to_string(d("web.yaml"))?;
    assert!(yaml.contains("baseProfileName: auditor-runc-v"), "{yaml}");
    assert!(
        yaml.contains("apiVersion: security-profiles-operator.x-k8s.io/v1\n"),
        "{yaml}"
    );
    if validator_ready() {
        let (ok, said) = validate(dir.path(), "check.yaml", &yaml)?;
        assert!(ok, "{said}");
    }

    // It imports back with its base, and check and diff read it as it is.
    let (code, native, err) = auditor(&["import", &d("web.yaml")])?;
    assert_eq!(code, 0, "{err}");
    assert!(native.starts_with("# Imported by auditor from"), "{native}");
    assert!(
        native.contains("from base profile auditor-runc-v"),
        "{native}"
    );
    let (code, out, err) = auditor(&["check", &d("web.yaml")])?;
    assert_ne!(code, 2, "{out}{err}");
    let (code, out, err) = auditor(&["import", "--name", "nope", &d("web.yaml")])?;
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("no SeccompProfile named nope"), "{err}");

    // Several profiles: pick one or merge them.
    let two = format!(
        "{}---\n{}",
        "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: rec-web-a\n  labels: {spo.x-k8s.io/partial: \"true\", spo.x-k8s.io/recording-id: rec}\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - {action: SCMP_ACT_ALLOW, names: [read, write]}\n",
        "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: rec-web-b\n  labels: {spo.x-k8s.io/partial: \"true\", spo.x-k8s.io/recording-id: rec}\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - {action: SCMP_ACT_ALLOW, names: [read, openat]}\n"
    );
    std::fs::write(d("partials.yaml"), two)?;
    let (code, _, err) = auditor(&["import", &d("partials.yaml")])?;
    assert_eq!(code, 2);
    assert!(
        err.contains("2 SeccompProfiles") && err.contains("--merge"),
        "{err}"
    );
    let (code, _, err) = auditor(&[
        "import",
        "--merge",
        "-o",
        &d("merged.toml"),
        &d("partials.yaml"),
    ])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("partial profile of recording rec"), "{err}");
    let merged = model::parse_native(&std::fs::read_to_string(d("merged.toml"))?)?;
    let names: std::collections::BTreeSet<&str> = merged
        .rules
        .iter()
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["openat", "read", "write"]
    );

    // kubelet without the operator: the plain JSON where kubelet looks, and a ConfigMap.
    let root = dir.path().join("kubelet");
    std::fs::create_dir(&root)?;
    let (code, _, err) = auditor(&[
        "generate",
        "--format",
        "oci",
        "--lossy",
        "--listener",
        "/var/run/security-profiles-operator/auditor.sock",
        "--name",
        "Web",
        "--kubelet-root",
        &root.to_string_lossy(),
        &obs,
    ])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("localhostProfile: operator/web.json"), "{err}");
    let json = std::fs::read_to_string(root.join("seccomp/operator/web.json"))?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    let (code, cm, err) = auditor(&[
        "generate",
        "--format",
        "k8s-configmap",
        "--lossy",
        "--listener",
        "/var/run/security-profiles-operator/auditor.sock",
        "--name",
        "web",
        &obs,
    ])?;
    assert_eq!(code, 0, "{err}");
    let cm_v: serde_json::Value = serde_yaml_ng::from_str(&cm)?;
    assert_eq!(cm_v["kind"], "ConfigMap");
    let inner: serde_json::Value =
        serde_json::from_str(cm_v["data"]["web.json"].as_str().ok_or("no web.json key")?)?;
    assert_eq!(inner, v, "the ConfigMap carries the same profile");
    // Wrong combinations are refused with a way out.
    let (code, _, err) = auditor(&[
        "generate",
        "--format",
        "k8s",
        "--kubelet-root",
        &root.to_string_lossy(),
        "--name",
        "x",
        &obs,
    ])?;
    assert_eq!(code, 2);
    assert!(err.contains("--format oci"), "{err}");
    let (code, _, err) = auditor(&[
        "generate",
        "--format",
        "k8s",
        "--listener",
        "/run/auditor/agent.sock",
        &obs,
    ])?;
    assert_eq!(code, 2);
    assert!(
        err.contains("/var/run/security-profiles-operator/"),
        "{err}"
    );
    Ok(())
}

#[test]
fn kubelet_profiles_installs_what_kubelet_can_load_and_refuses_the_rest() -> TestResult {
    let dir = tempfile::tempdir()?;
    let from = dir.path().join("configmap");
    let root = dir.path().join("kubelet");
    std::fs::create_dir_all(&from)?;
    std::fs::create_dir_all(&root)?;
    let json = "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"}]}";
    std::fs::write(from.join("web.json"), json)?;
    std::fs::write(
        from.join("db.yaml"),
        "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: db\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - {action: SCMP_ACT_ALLOW, names: [read, write]}\n",
    )?;
    std::fs::write(
        from.join("broken.json"),
        "{\"defaultAction\": \"SCMP_ACT_NOPE\"}",
    )?;
    std::fs::write(from.join("Bad_Name.json"), json)?;
    std::fs::write(from.join("..data"), "ConfigMap bookkeeping")?;
    let args = [
        "kubelet-profiles",
        "--from",
        &from.to_string_lossy(),
        "--kubelet-root",
        &root.to_string_lossy(),
    ];
    let (code, _, err) = auditor(&args)?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("broken.json:1:") && err.contains("SCMP_ACT_NOPE"),
        "{err}"
    );
    assert!(err.contains("rename it bad-name.json"), "{err}");
    let operator = root.join("seccomp/operator");
    // The JSON verbatim; the SeccompProfile as the OCI JSON kubelet reads.
    assert_eq!(std::fs::read_to_string(operator.join("web.json"))?, json);
    let db: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(operator.join("db.json"))?)?;
    assert_eq!(
        db["syscalls"][0]["names"],
        serde_json::json!(["read", "write"])
    );
    assert!(!operator.join("broken.json").exists() && !operator.join("bad-name.json").exists());
    // A second pass changes nothing.
    std::fs::remove_file(from.join("broken.json"))?;
    std::fs::remove_file(from.join("Bad_Name.json"))?;
    let (code, _, err) = auditor(&args)?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 installed, 2 unchanged"), "{err}");
    // A profile taken out of the ConfigMap goes; one auditor did not install stays.
    std::fs::write(operator.join("spo-owned.json"), json)?;
    std::fs::remove_file(from.join("db.yaml"))?;
    let (code, _, err) = auditor(&args)?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed") && err.contains("db.json"), "{err}");
    assert!(!operator.join("db.json").exists());
    assert!(operator.join("web.json").exists() && operator.join("spo-owned.json").exists());
    Ok(())
}

/// A stand-in for `kubectl proxy`: answers GETs of `objects` (path → JSON), 404 otherwise.
fn fake_kubectl_proxy(
    objects: Vec<(String, serde_json::Value)>,
) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The headers, up to the blank line.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = match objects.iter().find(|(p, _)| *p == path) {
                Some((_, v)) => ("200 OK", v.to_string()),
                None => (
                    "404 Not Found",
                    "{\"kind\":\"Status\",\"code\":404}".to_owned(),
                ),
            };
            let mut w = &stream;
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(format!("http://{addr}"))
}

/// The golden observation as a container of pod `ns/pod`.
fn pod_observation(
    dir: &Path,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("obs-setup.json"))?)?;
    v["target"] = serde_json::json!({
        "kind": "container",
        "id": format!("{pod}-{container}"),
        "engine": "containerd",
        "name": container,
        "labels": {
            "io.kubernetes.pod.name": pod,
            "io.kubernetes.pod.namespace": ns,
            "io.kubernetes.container.name": container,
        },
    });
    let path = dir.join(format!("{pod}.json"));
    std::fs::write(&path, v.to_string())?;
    Ok(path.to_string_lossy().into_owned())
}

#[test]
fn group_by_owner_follows_the_apis_owner_references() -> TestResult {
    let owned = |kind: &str, name: &str| {
        serde_json::json!({"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": kind, "name": name, "uid": "u", "controller": true}
        ]}})
    };
    let api = fake_kubectl_proxy(vec![
        // Two runs of CronJob backup: their Jobs' names differ, so do their pods' stems.
        (
            "/api/v1/namespaces/ops/pods/backup-28374650-x2x9z".into(),
            owned("Job", "backup-28374650"),
        ),
        (
            "/api/v1/namespaces/ops/pods/backup-28374710-bcd5f".into(),
            owned("Job", "backup-28374710"),
        ),
        (
            "/apis/batch/v1/namespaces/ops/jobs/backup-28374650".into(),
            owned("CronJob", "backup"),
        ),
        (
            "/apis/batch/v1/namespaces/ops/jobs/backup-28374710".into(),
            owned("CronJob", "backup"),
        ),
        // A Deployment's pod, through its ReplicaSet.
        (
            "/api/v1/namespaces/ops/pods/web-7d4b9c8f6-x2x9z".into(),
            owned("ReplicaSet", "web-7d4b9c8f6"),
        ),
        (
            "/apis/apps/v1/namespaces/ops/replicasets/web-7d4b9c8f6".into(),
            owned("Deployment", "web"),
        ),
        // A bare pod whose name reads like a StatefulSet's replica.
        (
            "/api/v1/namespaces/ops/pods/web-1".into(),
            serde_json::json!({"metadata": {}}),
        ),
    ])?;
    let dir = tempfile::tempdir()?;
    let files = [
        pod_observation(dir.path(), "ops", "backup-28374650-x2x9z", "dump")?,
        pod_observation(dir.path(), "ops", "backup-28374710-bcd5f", "dump")?,
        pod_observation(dir.path(), "ops", "web-7d4b9c8f6-x2x9z", "nginx")?,
        pod_observation(dir.path(), "ops", "web-1", "nginx")?,
        // Deleted since: grouped by its name.
        pod_observation(dir.path(), "ops", "db-0", "postgres")?,
    ];
    let out = dir.path().join("by-owner");
    let out_s = out.to_string_lossy().into_owned();
    let mut args = vec![
        "generate",
        "--group-by",
        "owner",
        "--kube-api",
        &api,
        "-o",
        &out_s,
    ];
    args.extend(files.iter().map(String::as_str));
    let (code, _, err) = auditor(&args)?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("pod ops/db-0 is not in the API"), "{err}");
    let mut written: Vec<String> = std::fs::read_dir(&out)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    written.sort();
    assert_eq!(
        written,
        [
            "ops_CronJob_backup_dump.toml",
            "ops_Deployment_web_nginx.toml",
            "ops_Pod_web-1_nginx.toml",
            "ops_db_postgres.toml",
        ]
    );
    assert!(
        err.contains("group ops/CronJob/backup/dump: 2 observations"),
        "{err}"
    );
    // Without the API, the names alone split the CronJob's runs and join the bare pod to web.
    let out2 = dir.path().join("by-name");
    let out2_s = out2.to_string_lossy().into_owned();
    let mut args = vec!["generate", "--group-by", "workload", "-o", &out2_s];
    args.extend(files.iter().map(String::as_str));
    let (code, _, err) = auditor(&args)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_dir(&out2)?.count(), 4, "{err}");
    assert!(err.contains("group ops/web/nginx: 2 observations"), "{err}");
    // No proxy there: a clear error.
    let (code, _, err) = auditor(&[
        "generate",
        "--group-by",
        "owner",
        "--kube-api",
        "http://127.0.0.1:9",
        "-o",
        &out_s,
        &files[0],
    ])?;
    assert_eq!(code, 2);
    assert!(err.contains("kubectl proxy"), "{err}");
    let (code, _, err) = auditor(&[
        "generate",
        "--group-by",
        "owner",
        "--kube-api",
        "https://10.0.0.1:6443",
        "-o",
        &out_s,
        &files[0],
    ])?;
    assert_eq!(code, 2);
    assert!(err.contains("speaks no TLS"), "{err}");
    Ok(())
}
