//! A real runtime loads what auditor exports: runc runs a busybox container (rootfs from Debian's
//! busybox-static, no network needed) under an OCI profile that `auditor generate` made from
//! `auditor learn` of the same container. The learned workload runs; a syscall outside the
//! profile fails with the profile's errno, and succeeds without the profile.
//!
//! Needs root and runc; under CI=true it fails rather than skips when it cannot run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use integration::{
    auditor_bin, describe, in_ci, require_root, require_tool, run_with_timeout, unique_name,
};

const PREFIX: &str = "auditor-policy";
/// The profile's default errno: EOPNOTSUPP (95), which nothing in this workload would get from
/// the kernel, so seeing it proves the filter answered.
const PROFILE_ERRNO: &str = "95";

/// Deletes the containers and the bundle directory, even when the test fails.
struct Cleanup {
    runc: PathBuf,
    containers: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new(&self.runc)
                .args(["delete", "--force", c])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Containers and bundles left by an earlier run that was killed (never a live test's).
fn clear_stale(runc: &Path) {
    if let Ok(out) = Command::new(runc).args(["list", "--quiet"]).output() {
        for name in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| integration::stale_name(n, PREFIX))
        {
            let _ = Command::new(runc)
                .args(["delete", "--force", name])
                .status();
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            if integration::stale_name(&e.file_name().to_string_lossy(), PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A bundle: rootfs with busybox and a few applet links, and runc's default config.json.
fn make_bundle(runc: &Path, dir: &Path) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "dev", "proc", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("create rootfs");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "echo", "cat", "ln", "ls", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
            .expect("applet link");
    }
    let o = Command::new(runc)
        .arg("spec")
        .current_dir(dir)
        .output()
        .expect("runc spec");
    assert!(o.status.success(), "runc spec: {}", describe(&o));
}

/// Write config.json with this workload and (optionally) this seccomp profile.
fn configure(dir: &Path, script: &str, profile: Option<&serde_json::Value>) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read config.json"))
            .expect("config.json is JSON");
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    // The control run writes a hard link into the rootfs.
    config["root"]["readonly"] = false.into();
    match profile {
        Some(p) => config["linux"]["seccomp"] = p.clone(),
        None => {
            if let Some(linux) = config["linux"].as_object_mut() {
                linux.remove("seccomp");
            }
        }
    }
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&config).expect("serialise"),
    )
    .expect("write config.json");
}

fn runc_run(runc: &Path, dir: &Path, name: &str) -> Output {
    run_with_timeout(
        Command::new(runc)
            .args(["run", "--bundle"])
            .arg(dir)
            .arg(name),
        Duration::from_secs(60),
    )
}

#[test]
fn runc_runs_the_learned_workload_under_the_generated_profile() {
    let test = "runc_runs_the_learned_workload_under_the_generated_profile";
    if !require_root(test) {
        return;
    }
    let Some(runc) = require_tool(test, "runc") else {
        return;
    };
    if !Path::new("/bin/busybox").is_file() {
        if in_ci() {
            panic!("{test}: /bin/busybox (busybox-static) is missing; run `cargo xtask setup`");
        }
        eprintln!("SKIP {test}: /bin/busybox missing");
        return;
    }
    clear_stale(&runc);
    let dir = std::env::temp_dir().join(unique_name(PREFIX));
    std::fs::create_dir_all(&dir).expect("bundle dir");
    let mut cleanup = Cleanup {
        runc: runc.clone(),
        containers: Vec::new(),
        dir: dir.clone(),
    };
    make_bundle(&runc, &dir);

    // 1. Learn runc running the workload (runc's own syscalls are learned too, so the profile
    //    also covers what runc does between loading the filter and execve).
    let workload = "echo learned-ok; cat /proc/self/status > /dev/null; ls / > /dev/null";
    configure(&dir, workload, None);
    let name = unique_name(PREFIX);
    cleanup.containers.push(name.clone());
    let obs = dir.join("obs.json");
    let mut learn = Command::new(auditor_bin());
    learn
        .args(["learn", "--no-progress", "-o"])
        .arg(&obs)
        .arg("--")
        .arg(&runc)
        .args(["run", "--bundle"])
        .arg(&dir)
        .arg(&name);
    let o = run_with_timeout(&mut learn, Duration::from_secs(120));
    assert!(
        o.status.success(),
        "auditor learn -- runc run: {}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("learned-ok"),
        "{}",
        describe(&o)
    );
    let observed = std::fs::read_to_string(&obs).expect("observation written");
    assert!(
        !observed.contains("\"name\": \"linkat\"") && !observed.contains("\"name\": \"link\""),
        "the learned workload must not hard-link, or the refusal below proves nothing"
    );

    // 2. Generate an OCI profile from it.
    let profile_path = dir.join("profile.json");
    let mut generate = Command::new(auditor_bin());
    generate
        .arg("generate")
        .arg(&obs)
        .args([
            "--format",
            "oci",
            "--default-action",
            &format!("errno:{PROFILE_ERRNO}"),
            "-o",
        ])
        .arg(&profile_path);
    let o = run_with_timeout(&mut generate, Duration::from_secs(60));
    assert!(o.status.success(), "auditor generate: {}", describe(&o));
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile_path).expect("profile written"))
            .expect("profile is JSON");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], 95);

    // 3. The learned workload runs under the profile.
    configure(&dir, workload, Some(&profile));
    let name = unique_name(PREFIX);
    cleanup.containers.push(name.clone());
    let o = runc_run(&runc, &dir, &name);
    assert!(
        o.status.success(),
        "the learned workload under its profile: {}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("learned-ok"),
        "{}",
        describe(&o)
    );

    // 4. A syscall outside the profile (link/linkat: a hard link) fails with the profile's errno…
    let outside = "echo before; ln /bin/busybox /tmp/hardlink; echo rc=$?";
    configure(&dir, outside, Some(&profile));
    let name = unique_name(PREFIX);
    cleanup.containers.push(name.clone());
    let o = runc_run(&runc, &dir, &name);
    let out = describe(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("before"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("rc=1"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not supported"),
        "EOPNOTSUPP (95) from the profile: {out}"
    );

    // 5. … and succeeds without it, so the refusal came from the profile.
    let _ = std::fs::remove_file(dir.join("rootfs/tmp/hardlink"));
    configure(&dir, outside, None);
    let name = unique_name(PREFIX);
    cleanup.containers.push(name.clone());
    let o = runc_run(&runc, &dir, &name);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("rc=0"),
        "control run without a profile: {}",
        describe(&o)
    );
}
