//! `auditor doctor` on this host: it probes what the host offers (the eBPF programs load, a
//! seccomp listener with each notification feature, a user namespace) and judges each mode.
//! Without capabilities (setpriv drops them all) it names what learning lacks, and `auditor
//! learn` itself points at it. Needs root.

use std::process::Command;

use integration::{auditor_bin, describe, require_root, require_tool};

fn doctor(prefix: &[&str], args: &[&str]) -> std::process::Output {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(auditor_bin());
            c
        }
        None => Command::new(auditor_bin()),
    };
    cmd.arg("doctor")
        .args(args)
        .output()
        .expect("run auditor doctor")
}

#[test]
fn doctor_reports_what_this_host_offers() {
    let test = "doctor_reports_what_this_host_offers";
    if !require_root(test) || require_tool(test, "runc").is_none() {
        return;
    }
    let o = doctor(&[], &["--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
    };
    for name in [
        "BTF",
        "programs load",
        "user notification",
        "ADDFD",
        "WAIT_KILLABLE_RECV",
        "SYNC_WAKE_UP",
        "pidfd_getfd",
        "user namespaces",
        "runc",
    ] {
        assert_eq!(status(name), "ok", "{name}: {report:#}");
    }
    for mode in ["learn", "enforce", "userns", "agent", "daemon"] {
        assert_eq!(report["modes"][mode], true, "{mode}: {report:#}");
    }
    assert_eq!(report["ok"], true);
    // The table says the same.
    let o = doctor(&[], &["--mode", "learn,enforce"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        text.contains("learn: ready") && text.contains("enforce: ready"),
        "{text}"
    );
}

#[test]
fn without_capabilities_doctor_names_what_learning_lacks() {
    let test = "without_capabilities_doctor_names_what_learning_lacks";
    if !require_root(test) || require_tool(test, "setpriv").is_none() {
        return;
    }
    let no_caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"];
    let o = doctor(&no_caps, &["--mode", "learn"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        text.contains("programs load") && text.contains("MISSING"),
        "{text}"
    );
    assert!(
        text.contains(
            "learn: NOT READY (missing: CAP_SYS_ADMIN, CAP_BPF, CAP_PERFMON, programs load)"
        ),
        "{text}"
    );
    // Enforcing needs no capability: the doctor says so, and it is true.
    let o = doctor(&no_caps, &["--mode", "enforce"]);
    assert!(o.status.success(), "{}", describe(&o));
    let mut cmd = Command::new(no_caps[0]);
    cmd.args(&no_caps[1..]).arg(auditor_bin()).args([
        "learn",
        "--no-progress",
        "-o",
        "/dev/null",
        "--",
        "true",
    ]);
    let o = cmd.output().expect("auditor learn");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(err.contains("auditor doctor"), "{err}");
}
