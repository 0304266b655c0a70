//! A Kubernetes node without kubelet: runc containers carrying the annotations containerd's
//! and CRI-O's CRI plugins set, learned by `auditor daemon` and served by `auditor agent` as
//! the DaemonSet in deploy/kubernetes runs them (`NODE_NAME`, the agent's socket where SPO's
//! CRD puts a profile's listener, profiles installed in kubelet's `seccomp/operator/` by
//! `auditor kubelet-profiles`). Needs root, runc and busybox-static; under CI=true it fails
//! rather than skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration::agent::Agent;
use integration::learner::{self, Daemon};
use integration::runtimes::Bundle;
use integration::scrape::{logged_addr, scrape, value};
use integration::{auditor, describe, unique_name, Scratch};

const NODE: &str = "node-a";

/// containerd's CRI annotations for a container of pod `ns/pod`.
fn containerd(b: &Bundle, ns: &str, pod: &str, container: &str) {
    for (k, v) in [
        ("io.kubernetes.cri.container-type", "container"),
        ("io.kubernetes.cri.container-name", container),
        ("io.kubernetes.cri.sandbox-name", pod),
        ("io.kubernetes.cri.sandbox-namespace", ns),
        ("io.kubernetes.cri.sandbox-uid", &format!("uid-{pod}")),
        ("io.kubernetes.cri.image-name", "registry.example/web:1.0"),
    ] {
        b.annotate(k, v).expect("annotate");
    }
}

/// CRI-O's.
fn crio(b: &Bundle, ns: &str, pod: &str, container: &str) {
    for (k, v) in [
        ("io.kubernetes.cri-o.ContainerType", "container"),
        ("io.kubernetes.container.name", container),
        ("io.kubernetes.pod.name", pod),
        ("io.kubernetes.pod.namespace", ns),
        ("io.kubernetes.pod.uid", &format!("uid-{pod}")),
        ("io.kubernetes.cri-o.ImageName", "registry.example/db:16"),
    ] {
        b.annotate(k, v).expect("annotate");
    }
}

fn anchors() -> PathBuf {
    match std::env::var_os("AUDITOR_ANCHORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors"),
    }
}

/// SPO's CRD validator on `file` (strict); panics with its output on a refusal.
fn spo_validate(file: &Path) {
    let spo = anchors().join("spo");
    let o = Command::new("python3")
        .arg(spo.join("validate.py"))
        .arg("--strict")
        .arg(spo.join("crd-seccompprofile.yaml"))
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "SPO's CRD refuses {}: {}",
        file.display(),
        describe(&o)
    );
}

#[test]
fn cri_containers_are_learned_with_their_pod_and_merged_per_workload() {
    let test = "cri_containers_are_learned_with_their_pod_and_merged_per_workload";
    if !learner::ready(test) {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("auditor-k8s-learn"));
    let mut daemon = Daemon::start_with_env(
        &dir,
        &["--metrics-addr", "127.0.0.1:0"],
        [("NODE_NAME", NODE)],
    );
    let addr = logged_addr(|| daemon.log_text());
    // Two replicas of Deployment shop/web (containerd), one of StatefulSet shop/db (CRI-O).
    let web1 = learner::hooked_bundle(&daemon, &["/bin/busybox", "uname", "-a"]);
    containerd(&web1, "shop", "web-7d4b9c8f6-x2x9z", "nginx");
    let web2 = learner::hooked_bundle(
        &daemon,
        &["/bin/busybox", "sh", "-c", "busybox sync; busybox uname"],
    );
    containerd(&web2, "shop", "web-7d4b9c8f6-bcd5f", "nginx");
    let db = learner::hooked_bundle(&daemon, &["/bin/busybox", "id"]);
    crio(&db, "shop", "db-0", "postgres");
    for b in [&web1, &web2, &db] {
        let o = learner::runc_run(b);
        assert!(o.status.success(), "{}", describe(&o));
    }
    let mut files = Vec::new();
    for (b, engine, pod, name) in [
        (&web1, "containerd", "web-7d4b9c8f6-x2x9z", "nginx"),
        (&web2, "containerd", "web-7d4b9c8f6-bcd5f", "nginx"),
        (&db, "cri-o", "db-0", "postgres"),
    ] {
        let obs = daemon.observation(&b.id);
        let auditor::observe::model::Target::Container {
            engine: e,
            name: n,
            labels,
            image,
            ..
        } = &obs.target
        else {
            panic!("not a container's observation: {:?}", obs.target);
        };
        assert_eq!(e.as_deref(), Some(engine));
        assert_eq!(n.as_deref(), Some(name));
        assert!(image
            .as_deref()
            .is_some_and(|i| i.starts_with("registry.example/")));
        assert_eq!(
            labels.get("io.kubernetes.pod.name").map(String::as_str),
            Some(pod)
        );
        assert_eq!(
            labels
                .get("io.kubernetes.pod.namespace")
                .map(String::as_str),
            Some("shop")
        );
        assert_eq!(
            labels.get("io.kubernetes.pod.uid").map(|u| u.as_str()),
            Some(format!("uid-{pod}").as_str())
        );
        assert_eq!(obs.host.node.as_deref(), Some(NODE));
        // Per-container metrics under SPO's label names.
        let calls: u64 = obs.syscalls.iter().map(|s| s.count).sum();
        let labels = [
            ("node", NODE),
            ("namespace", "shop"),
            ("pod", pod),
            ("container", name),
        ];
        let t0 = Instant::now();
        loop {
            let m = scrape(addr);
            if value(&m, "auditor_daemon_container_calls_total", &labels) == Some(calls as f64) {
                assert_eq!(
                    value(&m, "auditor_daemon_container_syscalls_total", &labels),
                    Some(obs.syscalls.len() as f64)
                );
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", m.samples);
            std::thread::sleep(Duration::from_millis(100));
        }
        files.push(dir.join("out").join(format!("{}.json", b.id)));
    }
    assert!(daemon.stop().success());

    // One profile per workload: the two web replicas merge, and say so.
    let out = dir.join("profiles");
    let mut args = vec![
        "generate".to_owned(),
        "--group-by".into(),
        "workload".into(),
        "--format".into(),
        "k8s".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = auditor(&args);
    assert!(o.status.success(), "{}", describe(&o));
    let web = std::fs::read_to_string(out.join("shop_web_nginx.yaml")).expect("web profile");
    assert!(
        web.contains("auditor.dev/replicas: '2'") || web.contains("auditor.dev/replicas: \"2\""),
        "{web}"
    );
    assert!(web.contains(&format!("auditor.dev/nodes: {NODE}")), "{web}");
    // The union: sync was called by one replica only.
    let p = auditor::policy::formats::k8s::import(&web).expect("import");
    assert!(
        p.rules.iter().any(|r| r.names.iter().any(|n| n == "sync")),
        "{web}"
    );
    assert!(out.join("shop_db_postgres.yaml").is_file());
    spo_validate(&out.join("shop_web_nginx.yaml"));
    spo_validate(&out.join("shop_db_postgres.yaml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_spo_profile_installed_for_kubelet_is_served_by_the_agent_with_spo_metrics() {
    let test = "an_spo_profile_installed_for_kubelet_is_served_by_the_agent_with_spo_metrics";
    if !learner::ready(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-k8s-agent");
    // The agent's native policy for listenerMetadata "web": nothing allowed, so in complain
    // mode every notified call is a `complain` (allowed and logged).
    s.write(
        "policies/web.toml",
        "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n",
    );
    let spo_dir = Path::new("/var/run/security-profiles-operator");
    let socket = spo_dir.join(format!("{}.sock", unique_name("auditor-test")));
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_file(self.0.with_extension("sock.handover"));
        }
    }
    let _cleanup = Cleanup(socket.clone());
    let agent = Agent::oci_at(
        &s,
        &socket,
        &["--complain", "--metrics-addr", "127.0.0.1:0"],
        &[("NODE_NAME", NODE)],
    );
    let addr = logged_addr(|| agent.log_text());

    // The cluster's object, as SPO's CRD defines it, with the agent's socket as listener.
    std::fs::create_dir_all(s.dir().join("profiles")).expect("profiles dir");
    let profile = s.write(
        "profiles/web.yaml",
        &format!(
            "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: web\nspec:\n  defaultAction: SCMP_ACT_ALLOW\n  listenerPath: {}\n  listenerMetadata: web\n  syscalls:\n  - action: SCMP_ACT_NOTIFY\n    names: [uname, getppid]\n",
            socket.display()
        ),
    );
    spo_validate(&profile);
    // Installed where kubelet loads localhost/ profiles, as the DaemonSet does.
    let kubelet = s.dir().join("kubelet");
    std::fs::create_dir_all(&kubelet).expect("kubelet root");
    let o = auditor(&[
        "kubelet-profiles",
        "--from",
        &s.dir().join("profiles").display().to_string(),
        "--kubelet-root",
        &kubelet.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let json =
        std::fs::read_to_string(kubelet.join("seccomp/operator/web.json")).expect("installed");
    let profile: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(profile["listenerPath"], socket.display().to_string());

    // The pod's container, with containerd's annotations, under that profile.
    let b = Bundle::busybox(
        integration::runtimes::Runtime::Runc,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "busybox uname; busybox uname -r; echo done",
        ],
    )
    .expect("bundle");
    containerd(&b, "shop", "web-7d4b9c8f6-x2x9z", "nginx");
    b.set_seccomp(&profile).expect("seccomp");
    let o = learner::runc_run(&b);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("done"),
        "{}",
        describe(&o)
    );
    agent.wait_records(|r| {
        r.iter()
            .filter(|r| r["container"] == b.id.as_str() && r["syscall"] == "uname")
            .count()
            >= 2
    });
    // SPO's counter, with SPO's labels, so that its dashboards read auditor's agent.
    let labels = [
        ("node", NODE),
        ("namespace", "shop"),
        ("pod", "web-7d4b9c8f6-x2x9z"),
        ("container", "nginx"),
        ("syscall", "uname"),
    ];
    // As many as the audit log has (busybox's shell calls uname too).
    let t0 = Instant::now();
    loop {
        let records = agent.records();
        let of = |sys: &str| {
            records
                .iter()
                .filter(|r| r["container"] == b.id.as_str() && r["syscall"] == sys)
                .inspect(|r| assert_eq!(r["decision"], "complain", "{r}"))
                .count() as f64
        };
        let (uname, getppid) = (of("uname"), of("getppid"));
        let m = scrape(addr);
        if value(
            &m,
            "security_profiles_operator_seccomp_profile_audit_total",
            &labels,
        ) == Some(uname)
        {
            assert_eq!(
                value(
                    &m,
                    "auditor_agent_decisions_total",
                    &[
                        ("policy", "web"),
                        ("syscall", "uname"),
                        ("decision", "complain"),
                        ("handler", "")
                    ]
                ),
                Some(uname)
            );
            assert_eq!(
                value(&m, "auditor_agent_container_decisions_total", &labels[..4]),
                Some(uname + getppid),
                "{:?}",
                m.samples
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{uname} uname records: {:?}",
            m.samples
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
