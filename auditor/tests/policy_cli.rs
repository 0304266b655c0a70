//! The policy commands as a user runs them: `generate`, `check`, `diff`, `merge`, `compile`, and
//! every kind of bad input (each a located, actionable error with exit status 2, never a panic).
//! No privileges needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn docker_default() -> PathBuf {
    match std::env::var_os("AUDITOR_ANCHORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors"),
    }
    .join("docker-default-seccomp.json")
}

fn auditor(args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_auditor"))
        .args(args)
        .output()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Result<Run, Box<dyn std::error::Error>> {
    let out = auditor(args)?;
    let r = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "auditor panicked: {}",
        r.stderr
    );
    Ok(r)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String, std::io::Error> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.to_string_lossy().into_owned())
}

const HEAD: &str = "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n";

/// Bad input: exit 2, and stderr names FILE:LINE:COLUMN and contains `needle`.
fn assert_bad_input(args: &[&str], file: &str, needle: &str) -> TestResult {
    let r = run(args)?;
    assert_eq!(
        r.code,
        Some(2),
        "{args:?}: stdout {} stderr {}",
        r.stdout,
        r.stderr
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(needle),
        "{args:?}: expected `{needle}` in:\n{all}"
    );
    let located = all.lines().any(|l| {
        l.split_once(file).is_some_and(|(_, rest)| {
            let mut it = rest.trim_start_matches(':').split(':');
            it.next().is_some_and(|n| n.parse::<usize>().is_ok())
                && it.next().is_some_and(|n| n.trim().parse::<usize>().is_ok())
        })
    });
    assert!(located, "{args:?}: expected {file}:LINE:COLUMN in:\n{all}");
    Ok(())
}

#[test]
fn check_exit_codes_clean_warning_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clean = write(
        dir.path(),
        "clean.toml",
        &format!("{HEAD}[[rule]]\nnames = [\"read\", \"write\"]\naction = \"allow\"\n"),
    )?;
    let r = run(&["check", &clean])?;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ok: 1 rules, 2 syscalls"), "{}", r.stdout);

    let risky = write(
        dir.path(),
        "risky.toml",
        &format!("{HEAD}[[rule]]\nnames = [\"read\", \"kexec_load\"]\naction = \"allow\"\n"),
    )?;
    let r = run(&["check", &risky])?;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("risky.toml:5:18: warning: allows `kexec_load`: loads a new kernel"),
        "{}",
        r.stdout
    );

    let typo = write(
        dir.path(),
        "typo.toml",
        &format!("{HEAD}[[rule]]\nnames = [\"read\", \"opne\"]\naction = \"allow\"\n"),
    )?;
    assert_bad_input(
        &["check", &typo],
        "typo.toml",
        "unknown syscall `opne` on x86_64, x86 or x32 (did you mean `open`?)",
    )?;
    Ok(())
}

#[test]
fn docker_default_profile_checks_with_warnings_only() -> TestResult {
    let p = docker_default();
    let r = run(&["check", &p.to_string_lossy()])?;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("0 error(s)"), "{}", r.stdout);
    assert!(r.stdout.contains("allows `ptrace`"), "{}", r.stdout);
    Ok(())
}

#[test]
fn bad_native_input_is_located() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let unknown_field = write(
        d,
        "field.toml",
        &format!("{HEAD}[[rule]]\nname = \"read\"\nactoin = \"allow\"\n"),
    )?;
    assert_bad_input(
        &["check", &unknown_field],
        "field.toml",
        "unknown field `actoin` in a rule (did you mean `action`?",
    )?;
    let dup = write(
        d,
        "dup.toml",
        &format!("{HEAD}default_errno = \"EACCES\"\n"),
    )?;
    assert_bad_input(&["check", &dup], "dup.toml", "duplicate key")?;
    let errno = write(
        d,
        "errno.toml",
        "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPREM\"\n",
    )?;
    assert_bad_input(
        &["compile", &errno],
        "errno.toml",
        "unknown errno name \"EPREM\"",
    )?;
    let typed = write(
        d,
        "typed.toml",
        &format!("{HEAD}[[rule]]\nname = [\"read\"]\naction = \"allow\"\n"),
    )?;
    assert_bad_input(&["check", &typed], "typed.toml", "`name` must be a string")?;
    let notify_default = write(
        d,
        "notify.toml",
        "version = 1\ndefault_action = \"notify\"\n",
    )?;
    assert_bad_input(
        &["check", &notify_default],
        "notify.toml",
        "the default action is notify",
    )?;
    assert_bad_input(
        &["compile", &notify_default],
        "notify.toml",
        "the default action is notify",
    )?;
    let handover = write(
        d,
        "handover.toml",
        &format!("{HEAD}[[rule]]\nname = \"write\"\naction = \"notify\"\n"),
    )?;
    assert_bad_input(
        &["compile", &handover],
        "handover.toml",
        "notify on `write`",
    )?;
    Ok(())
}

#[test]
fn bad_json_input_is_located() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let truncated = write(d, "trunc.json", "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"}")?;
    assert_bad_input(&["check", &truncated], "trunc.json", "truncated")?;
    let typed = write(d, "typed.json", "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [{\"names\": \"read\", \"action\": \"SCMP_ACT_ALLOW\"}]\n}\n")?;
    assert_bad_input(&["compile", &typed], "typed.json", "invalid type")?;
    let field = write(
        d,
        "field.json",
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"sycalls\": []}",
    )?;
    assert_bad_input(
        &["diff", &field, &field],
        "field.json",
        "unknown field `sycalls`",
    )?;
    let notify = write(d, "notify.json", "{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}")?;
    assert_bad_input(
        &["check", &notify],
        "notify.json",
        "cannot be SCMP_ACT_NOTIFY",
    )?;
    let unknown = write(d, "unknown.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALOW\"}]}")?;
    assert_bad_input(
        &["check", &unknown],
        "unknown.json",
        "unknown action \"SCMP_ACT_ALOW\"",
    )?;
    Ok(())
}

#[test]
fn empty_and_huge_files_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let empty = write(dir.path(), "empty.toml", "")?;
    for cmd in ["check", "compile"] {
        let r = run(&[cmd, &empty])?;
        assert_eq!(r.code, Some(2));
        assert!(
            r.stderr.contains("empty.toml: the file is empty"),
            "{}",
            r.stderr
        );
    }
    let r = run(&["generate", &empty])?;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("the file is empty (expected a observation file)")
            || r.stderr.contains("the file is empty"),
        "{}",
        r.stderr
    );

    let huge = dir.path().join("huge.json");
    std::fs::File::create(&huge)?.set_len(auditor::policy::MAX_INPUT_BYTES + 1)?;
    let huge = huge.to_string_lossy().into_owned();
    for args in [
        vec!["check", huge.as_str()],
        vec!["generate", huge.as_str()],
    ] {
        let r = run(&args)?;
        assert_eq!(r.code, Some(2));
        assert!(r.stderr.contains("more than the 16 MiB"), "{}", r.stderr);
    }
    let r = run(&["check", "/nonexistent/policy.toml"])?;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("cannot open policy /nonexistent/policy.toml"),
        "{}",
        r.stderr
    );
    Ok(())
}

#[test]
fn bad_observations_are_located() -> TestResult {
    let dir = tempfile::tempdir()?;
    let text = std::fs::read_to_string(golden("obs-setup.json"))?;
    let truncated = write(dir.path(), "trunc.json", &text[..text.len() / 2])?;
    assert_bad_input(&["generate", &truncated], "trunc.json", "truncated")?;
    let wrong = write(
        dir.path(),
        "wrong.json",
        &text.replacen("\"count\": 120", "\"count\": \"many\"", 1),
    )?;
    assert_bad_input(&["generate", &wrong], "wrong.json", "invalid type")?;
    let policy = write(
        dir.path(),
        "policy.json",
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\"}",
    )?;
    assert_bad_input(
        &["generate", &policy],
        "policy.json",
        "is it an observation file",
    )?;
    // An interactive policy (default notify) is for the formats auditor serves itself.
    let r = run(&[
        "generate",
        &golden("obs-setup.json").to_string_lossy(),
        "--default-action",
        "notify",
        "--format",
        "lxc",
    ])?;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("--default-action notify with --format lxc")
            && r.stderr.contains("--format native"),
        "{}",
        r.stderr
    );
    let r = run(&[
        "generate",
        &golden("obs-setup.json").to_string_lossy(),
        "--default-action",
        "notify",
    ])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("default_action = \"notify\""),
        "{}",
        r.stdout
    );
    let r = run(&[
        "generate",
        &golden("obs-setup.json").to_string_lossy(),
        "--default-action",
        "notify",
        "--format",
        "oci",
    ])?;
    assert_eq!(
        r.code,
        Some(2),
        "an OCI profile that notifies needs a listener"
    );
    assert!(r.stderr.contains("--listener"), "{}", r.stderr);
    let r = run(&[
        "generate",
        &golden("obs-setup.json").to_string_lossy(),
        "--runtime",
        "runc@0.0.1",
    ])?;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("no learned baseline for runtime runc 0.0.1"),
        "{}",
        r.stderr
    );
    Ok(())
}

#[test]
fn generate_check_compile_diff_merge() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (a, b) = (golden("obs-setup.json"), golden("obs-overlay.json"));
    let (a, b) = (a.to_string_lossy(), b.to_string_lossy());
    let native = d.join("p.toml").to_string_lossy().into_owned();
    let r = run(&["generate", &a, &b, "-o", &native])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("2 input(s): 13 syscalls allowed, 3 notified"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ptrace: 4x EPERM"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("kexec_load (1 calls): every call failed with EPERM"),
        "{}",
        r.stderr
    );

    // A generated policy passes check without errors and compiles.
    let r = run(&["check", &native])?;
    assert_ne!(r.code, Some(2), "{}", r.stdout);
    let r = run(&["compile", &native, "--dump"])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.lines().count() > 10, "{}", r.stdout);

    // OCI with notify rules needs a listener; handler params need --lossy.
    let r = run(&["generate", &a, "--format", "oci"])?;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--listener"), "{}", r.stderr);
    let r = run(&[
        "generate",
        &a,
        "--format",
        "oci",
        "--listener",
        "/run/b.sock",
    ])?;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("pass --lossy"), "{}", r.stderr);
    let oci = d.join("p.json").to_string_lossy().into_owned();
    let r = run(&[
        "generate",
        &a,
        "--format",
        "oci",
        "--listener",
        "/run/b.sock",
        "--lossy",
        "-o",
        &oci,
    ])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("--lossy: the oci export dropped"),
        "{}",
        r.stderr
    );
    let r = run(&["generate", &a, "--format", "systemd"])?;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("systemd cannot express all of this policy"),
        "{}",
        r.stderr
    );

    // diff: native against OCI of a different input set.
    let r = run(&["diff", &native, &oci])?;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stdout.contains("- getpid: allow"), "{}", r.stdout);
    let r = run(&["diff", &native, &oci, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert!(v["removed"].as_array().is_some_and(|a| !a.is_empty()));
    let r = run(&["diff", &native, &native])?;
    assert_eq!(r.code, Some(0));

    // merge keeps the reviewed file's comments.
    let merged = d.join("m.toml").to_string_lossy().into_owned();
    let reviewed = golden("reviewed.toml");
    let r = run(&["merge", &reviewed.to_string_lossy(), &native, "-o", &merged])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = std::fs::read_to_string(&merged)?;
    for line in std::fs::read_to_string(&reviewed)?.lines() {
        assert!(out.contains(line), "lost `{line}`");
    }
    // The reviewed socket rule conflicts with nothing; the merged policy has both sets.
    let r = run(&["diff", &reviewed.to_string_lossy(), &merged])?;
    assert!(r.stdout.contains("+ getpid: allow"), "{}", r.stdout);
    Ok(())
}

#[test]
fn compile_docker_default_skips_unresolvable_names_with_a_warning_each() -> TestResult {
    let r = run(&["compile", &docker_default().to_string_lossy()])?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // riscv_hwprobe is not an x86 syscall: libseccomp cannot resolve it here.
    assert!(
        r.stderr
            .contains("warning: libseccomp cannot resolve `riscv_hwprobe`; skipped"),
        "{}",
        r.stderr
    );
    Ok(())
}

/// Replicas' observations become one profile per workload (or image): Kubernetes pods of one
/// Deployment, Compose replicas of one service; an observation of no container is refused.
#[test]
fn generate_groups_replicas_by_workload_and_image() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("obs-setup.json"))?)?;
    let with_target = |name: &str, target: serde_json::Value| -> Result<String, std::io::Error> {
        let mut o = base.clone();
        o["target"] = target;
        write(d, name, &o.to_string())
    };
    let pod = |pod: &str| {
        serde_json::json!({"kind": "container", "id": format!("id-{pod}"), "engine": "containerd",
            "name": "nginx", "image": "nginx:1.25",
            "labels": {"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "shop",
                       "io.kubernetes.container.name": "nginx"}})
    };
    let compose = |name: &str| {
        serde_json::json!({"kind": "container", "id": format!("id-{name}"), "engine": "docker",
            "name": name, "image": "postgres:16"})
    };
    let files = [
        with_target("a.json", pod("web-7d4b9c8f6-x2x9z"))?,
        with_target("b.json", pod("web-7d4b9c8f6-q8r5t"))?,
        with_target("c.json", compose("shop-db-1"))?,
        with_target("d.json", compose("shop-db-2"))?,
    ];
    let out = d.join("by-workload");
    let mut args = vec!["generate", "--group-by", "workload", "-o"];
    let out_s = out.to_string_lossy().into_owned();
    args.push(&out_s);
    args.extend(files.iter().map(String::as_str));
    let r = run(&args)?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("group shop/web/nginx: 2 observations"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("group docker/shop-db: 2 observations"),
        "{}",
        r.stderr
    );
    let mut written: Vec<String> = std::fs::read_dir(&out)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    written.sort();
    assert_eq!(written, ["docker_shop-db.toml", "shop_web_nginx.toml"]);
    // Each is a policy check accepts.
    let r = run(&["check", &out.join("shop_web_nginx.toml").to_string_lossy()])?;
    assert_ne!(r.code, Some(2), "{}", r.stdout);

    // By image, in the format asked for.
    let out = d.join("by-image");
    let out_s = out.to_string_lossy().into_owned();
    let mut args = vec![
        "generate",
        "--group-by",
        "image",
        "--format",
        "k8s",
        "--lossy",
        "-o",
        &out_s,
    ];
    args.extend(files.iter().map(String::as_str));
    let r = run(&args)?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(out.join("nginx_1.25.yaml").is_file() && out.join("postgres_16.yaml").is_file());
    let yaml = std::fs::read_to_string(out.join("postgres_16.yaml"))?;
    assert!(yaml.contains("name: postgres-16"), "{yaml}");

    // `merge --group-by` is the same grouping under the name a cluster user looks for: the
    // same files, byte for byte.
    let merged = d.join("merged");
    let merged_s = merged.to_string_lossy().into_owned();
    let mut args = vec!["merge", "--group-by", "workload", "-o", &merged_s];
    args.extend(files.iter().map(String::as_str));
    let r = run(&args)?;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("group shop/web/nginx: 2 observations"),
        "{}",
        r.stderr
    );
    for f in ["docker_shop-db.toml", "shop_web_nginx.toml"] {
        assert_eq!(
            std::fs::read_to_string(merged.join(f))?,
            std::fs::read_to_string(d.join("by-workload").join(f))?,
            "{f}"
        );
    }
    // Policies given to merge --group-by, or one policy without it: told what it takes.
    let policy = d.join("by-workload/shop_web_nginx.toml");
    let policy_s = policy.to_string_lossy().into_owned();
    let r = run(&["merge", "--group-by", "image", "-o", &merged_s, &policy_s])?;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("merge --group-by groups observation files"),
        "{}",
        r.stderr
    );
    let r = run(&["merge", "-o", &merged_s, &policy_s])?;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("merge needs at least two policies"),
        "{}",
        r.stderr
    );

    // An observation of a plain command has no group: a clear error naming it.
    let plain = golden("obs-setup.json").to_string_lossy().into_owned();
    let out_s = d.join("none").to_string_lossy().into_owned();
    let r = run(&[
        "generate",
        "--group-by",
        "image",
        "-o",
        &out_s,
        &files[0],
        &plain,
    ])?;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("obs-setup.json: it is not a container's observation"),
        "{}",
        r.stderr
    );
    Ok(())
}
