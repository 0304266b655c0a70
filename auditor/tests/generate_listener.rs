//! `auditor generate --format oci --listener PATH --listener-metadata NAME`: the profile that
//! points runc/crun at `auditor agent`, naming the native policy the agent applies. No
//! privileges needed.

use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn generate(args: &[&str]) -> Result<(Option<i32>, String), std::io::Error> {
    let obs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/obs-setup.json");
    let out = Command::new(env!("CARGO_BIN_EXE_auditor"))
        .arg("generate")
        .arg(obs)
        .args(args)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok((out.status.code(), stderr))
}

#[test]
fn the_profile_names_the_agent_and_its_policy() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("web.json");
    let out_s = out.to_string_lossy();
    // The observation's mknod/mount handlers have parameters OCI JSON cannot carry: naming the
    // agent's native policy is not a loss (the agent applies that policy), so no --lossy.
    let (code, stderr) = generate(&[
        "--format",
        "oci",
        "--listener",
        "/run/auditor/agent.sock",
        "--listener-metadata",
        "web",
        "-o",
        &out_s,
    ])?;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("native policy web.toml"), "{stderr}");
    let profile: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    assert_eq!(profile["listenerPath"], "/run/auditor/agent.sock");
    assert_eq!(profile["listenerMetadata"], "web");
    let notified: Vec<&serde_json::Value> = profile["syscalls"]
        .as_array()
        .ok_or("no syscalls")?
        .iter()
        .filter(|s| s["action"] == "SCMP_ACT_NOTIFY")
        .collect();
    assert!(
        notified.iter().any(|s| s["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "mknodat"))),
        "{profile:#}"
    );

    // Metadata that is no policy name (for another agent) keeps the lossy check.
    let (code, stderr) = generate(&[
        "--format",
        "oci",
        "--listener",
        "/run/b.sock",
        "--listener-metadata",
        "policy=/etc/x.toml",
    ])?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("pass --lossy"), "{stderr}");

    // The runtime connects from its own working directory: a relative path is refused.
    let (code, stderr) = generate(&["--format", "oci", "--listener", "agent.sock"])?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("absolute path"), "{stderr}");
    Ok(())
}
