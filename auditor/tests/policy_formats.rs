//! Policy formats end to end, without privileges: golden files for every export format, the
//! comment-preserving rewrite, OCI round trips, and Docker's default profile.
//!
//! Golden files live in `tests/golden/`; run with `UPDATE_GOLDEN=1` to rewrite them after an
//! intended change, then review the diff.

use std::path::{Path, PathBuf};

use auditor::observe::model::Observation;
use auditor::policy::formats::{self, ExportOptions, Format, FormatError, ImportOptions};
use auditor::policy::generate::{self, GenerateOptions};
use auditor::policy::merge;
use auditor::policy::model::{self, Action, Arch, NativeDocument, Policy, Rule};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Docker's default profile, from the shared anchors beside the repository.
fn anchors() -> PathBuf {
    match std::env::var_os("AUDITOR_ANCHORS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors"),
    }
}

fn docker_default() -> Result<String, Box<dyn std::error::Error>> {
    let p = anchors().join("docker-default-seccomp.json");
    std::fs::read_to_string(&p).map_err(|e| {
        format!(
            "{}: {e} (set AUDITOR_ANCHORS to shared/anchors)",
            p.display()
        )
        .into()
    })
}

/// Compare with a golden file, or write it under UPDATE_GOLDEN=1.
fn golden(name: &str, actual: &str) -> TestResult {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    })?;
    if expected != actual {
        return Err(format!(
            "{} differs from the golden file; actual output:\n{actual}",
            path.display()
        )
        .into());
    }
    Ok(())
}

fn observations() -> Result<Vec<Observation>, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for f in ["obs-setup.json", "obs-overlay.json"] {
        v.push(serde_json::from_str(&std::fs::read_to_string(
            golden_dir().join(f),
        )?)?);
    }
    Ok(v)
}

fn generated() -> Result<Policy, Box<dyn std::error::Error>> {
    let opts = GenerateOptions {
        tighten: true,
        ..GenerateOptions::default()
    };
    Ok(generate::generate(&observations()?, &opts)?.policy)
}

fn export(p: &Policy, f: Format, lossy: bool) -> Result<formats::Export, FormatError> {
    formats::export(
        p,
        f,
        &ExportOptions {
            lossy,
            listener_path: Some("/run/auditor/broker.sock".into()),
            listener_metadata: Some("policy=/etc/auditor/web.toml".into()),
            name: Some("web".into()),
            ..ExportOptions::default()
        },
    )
}

#[test]
fn golden_native() -> TestResult {
    let p = generated()?;
    let text = export(&p, Format::Native, false)?.text;
    golden("generated.toml", &text)?;
    // What auditor writes, auditor reads back to the same policy.
    let again = model::parse_native(&text)?;
    assert_eq!(again.rules.len(), p.rules.len());
    for (a, b) in p.rules.iter().zip(&again.rules) {
        assert!(a.same_effect(b), "{a:?} vs {b:?}");
    }
    Ok(())
}

#[test]
fn golden_oci() -> TestResult {
    // The generated policy has notify rules with handler parameters beyond the defaults
    // (mount's fstypes): OCI JSON cannot carry them, so a faithful export is refused…
    let p = generated()?;
    match export(&p, Format::Oci, false) {
        Err(FormatError::Lossy { dropped, .. }) => {
            assert!(dropped.iter().any(|d| d.contains("mount")), "{dropped:?}")
        }
        other => return Err(format!("expected a lossy refusal, got {other:?}").into()),
    }
    // … and with --lossy it is written, with the listener, and says what it dropped.
    let e = export(&p, Format::Oci, true)?;
    assert!(e
        .text
        .contains("\"listenerPath\": \"/run/auditor/broker.sock\""));
    assert!(e.text.contains("SCMP_ACT_NOTIFY"));
    golden("generated.oci.json", &e.text)
}

#[test]
fn golden_lxc() -> TestResult {
    let p = generated()?;
    let e = export(&p, Format::Lxc, true)?;
    assert!(e.text.starts_with("2\nallowlist errno 1\n"), "{}", e.text);
    assert!(e.text.contains("mknodat notify [2,8192,SCMP_CMP_MASKED_EQ,61440] [3,259,SCMP_CMP_MASKED_EQ,4294967295]"), "{}", e.text);
    golden("generated.lxc", &e.text)
}

#[test]
fn golden_k8s() -> TestResult {
    let p = generated()?;
    // A listener SPO's CRD refuses (outside /var/run/security-profiles-operator/) is an error
    // that says where it must be.
    match export(&p, Format::K8s, true) {
        Err(FormatError::Unusable(m)) => {
            assert!(m.contains("/var/run/security-profiles-operator/"), "{m}")
        }
        other => {
            return Err(format!("expected a refusal of the listener path, got {other:?}").into())
        }
    }
    let k8s = |lossy, listener: Option<&str>| {
        formats::export(
            &p,
            Format::K8s,
            &ExportOptions {
                lossy,
                listener_path: listener.map(str::to_owned),
                name: Some("web".into()),
                ..ExportOptions::default()
            },
        )
    };
    assert!(
        matches!(k8s(false, None), Err(FormatError::Lossy { .. })),
        "notify rules without a listener cannot go to kubelet"
    );
    let e = k8s(true, None)?;
    assert!(
        e.dropped.iter().all(|d| d.starts_with("notify rule")),
        "{:?}",
        e.dropped
    );
    assert!(e.text.contains("kind: SeccompProfile\n"));
    assert!(!e.text.contains("SCMP_ACT_NOTIFY"));
    golden("generated.k8s.yaml", &e.text)?;
    // With the agent's socket where SPO's CRD allows it, the notify rules stay.
    let e = k8s(
        false,
        Some("/var/run/security-profiles-operator/auditor.sock"),
    )?;
    assert!(e.dropped.is_empty(), "{:?}", e.dropped);
    assert!(e.text.contains("SCMP_ACT_NOTIFY"));
    assert!(e
        .text
        .contains("listenerPath: /var/run/security-profiles-operator/auditor.sock"));
    Ok(())
}

#[test]
fn golden_systemd() -> TestResult {
    let p = generated()?;
    let refused = export(&p, Format::Systemd, false);
    let Err(FormatError::Lossy { dropped, .. }) = refused else {
        return Err(format!("expected a lossy refusal, got {refused:?}").into());
    };
    assert!(
        dropped
            .iter()
            .any(|d| d.contains("condition") && d.contains("socket")),
        "{dropped:?}"
    );
    assert!(dropped.iter().any(|d| d.contains("notify")), "{dropped:?}");
    let e = export(&p, Format::Systemd, true)?;
    assert_eq!(e.dropped, dropped);
    assert!(e.text.contains("SystemCallErrorNumber=EPERM\n"));
    golden("generated.systemd.conf", &e.text)
}

#[test]
fn a_policy_without_conditions_exports_to_systemd_without_loss() -> TestResult {
    let p = Policy {
        architectures: vec![Arch::X86_64],
        rules: vec![Rule::new(["read", "write", "exit_group"], Action::Allow)],
        ..Policy::default()
    };
    let e = export(&p, Format::Systemd, false)?;
    assert!(e.dropped.is_empty());
    assert!(
        e.text.contains("SystemCallFilter=read write exit_group\n"),
        "{}",
        e.text
    );
    assert!(
        e.text.contains("SystemCallArchitectures=x86-64\n"),
        "{}",
        e.text
    );
    Ok(())
}

#[test]
fn merge_keeps_comments_byte_for_byte() -> TestResult {
    let base = std::fs::read_to_string(golden_dir().join("reviewed.toml"))?;
    let mut doc = NativeDocument::parse(&base)?;
    let other = Policy {
        architectures: vec![Arch::X86_64],
        rules: vec![
            // Already there: nothing added.
            Rule::new(["read"], Action::Allow),
            Rule::new(["getrandom", "read"], Action::Allow)
                .with_comment("needed by the new release"),
        ],
        ..Policy::default()
    };
    merge::merge_into_document(&mut doc, &[other])?;
    let out = doc.render();
    golden("reviewed.merged.toml", &out)?;
    let merged = model::parse_native(&out)?;
    let last = merged.rules.last().ok_or("no rules")?;
    assert_eq!(last.names, vec!["getrandom"]);
    // Byte for byte: taking the one new section out gives back the reviewed file exactly
    // (the new section goes after the last rule, before the file's closing comment).
    let inserted = format!("\n{}", model::rule_to_native(last));
    assert!(out.contains(&inserted), "{out}");
    assert_eq!(
        out.replacen(&inserted, "", 1),
        base,
        "the reviewed text must be kept as written"
    );
    Ok(())
}

#[test]
fn oci_import_export_round_trip_is_exact() -> TestResult {
    let text = std::fs::read_to_string(golden_dir().join("roundtrip.oci.json"))?;
    let p = formats::import(&text, &ImportOptions::default())?;
    let e = export(&p, Format::Oci, false)?;
    assert_eq!(e.text, text);
    Ok(())
}

/// Distinct syscall names with at least one allow rule.
fn allowed_names(p: &Policy) -> std::collections::BTreeSet<String> {
    p.rules
        .iter()
        .filter(|r| r.action == Action::Allow)
        .flat_map(|r| r.names.iter().cloned())
        .collect()
}

#[test]
fn docker_default_profile_allows_370_syscalls_for_default_caps_on_x86_64() -> TestResult {
    let opts = ImportOptions {
        arch: Arch::X86_64,
        kernel: Some((6, 18)),
        ..ImportOptions::default()
    };
    let p = formats::import(&docker_default()?, &opts)?;
    let allowed = allowed_names(&p);
    // Counted independently from the JSON (python3: resolve includes/excludes for Docker's 14
    // default capabilities, arch "amd64", kernel 6.18, then count distinct names of
    // SCMP_ACT_ALLOW entries):
    //   361  names in the unconditional allow block
    //   + 3  process_vm_readv, process_vm_writev, ptrace   (includes minKernel 4.8)
    //   + 1  arch_prctl                                     (includes arches amd64, x32)
    //   + 1  modify_ldt                                     (includes arches amd64, x32, x86)
    //   + 1  chroot                                         (CAP_SYS_CHROOT is a default cap)
    //   = 367 allowed unconditionally
    //   + 3  clone (namespace flags masked out, as CAP_SYS_ADMIN is absent), personality (5
    //        personas), socket (domains other than AF_VSOCK 40)   allowed with conditions
    //   = 370. clone3 is not allowed: it gets errno ENOSYS (38) so that libc falls back to clone.
    // The count is of names: it includes names that are not syscalls on x86_64 (e.g. i386's
    // `_llseek`, `send`/`recv`), exactly as Docker writes them into the profile it hands runc.
    assert_eq!(allowed.len(), 370);
    let unconditional: std::collections::BTreeSet<String> = p
        .rules
        .iter()
        .filter(|r| r.action == Action::Allow && r.args.is_empty())
        .flat_map(|r| r.names.iter().cloned())
        .collect();
    assert_eq!(unconditional.len(), 367);
    let conditional: Vec<&String> = allowed.difference(&unconditional).collect();
    assert_eq!(conditional, ["clone", "personality", "socket"]);
    assert!(p
        .rules
        .iter()
        .any(|r| r.names == ["clone3"] && r.action == Action::Errno(38)));
    assert_eq!(p.default_action, Action::Errno(1));
    assert_eq!(p.architectures, vec![Arch::X86_64, Arch::X86, Arch::X32]);

    // With CAP_SYS_ADMIN, clone, clone3 and the admin syscalls are allowed outright, and the
    // ENOSYS answer for clone3 goes away.
    let mut caps = opts.caps.clone();
    caps.push("CAP_SYS_ADMIN".into());
    let admin = formats::import(
        &docker_default()?,
        &ImportOptions {
            caps,
            ..opts.clone()
        },
    )?;
    assert!(allowed_names(&admin).contains("mount"));
    assert!(!admin
        .rules
        .iter()
        .any(|r| r.names == ["clone3"] && r.action != Action::Allow));

    // On an old kernel the minKernel rule drops out (ptrace stays out).
    let old = formats::import(
        &docker_default()?,
        &ImportOptions {
            kernel: Some((4, 4)),
            ..opts
        },
    )?;
    assert!(!allowed_names(&old).contains("ptrace"));
    Ok(())
}

#[test]
fn docker_default_profile_round_trips_through_oci() -> TestResult {
    let opts = ImportOptions {
        kernel: Some((6, 18)),
        ..ImportOptions::default()
    };
    let p = formats::import(&docker_default()?, &opts)?;
    let e = export(&p, Format::Oci, false)?;
    let again = formats::import(&e.text, &opts)?;
    assert_eq!(again.rules.len(), p.rules.len());
    for (a, b) in p.rules.iter().zip(&again.rules) {
        assert!(a.same_effect(b), "{a:?} vs {b:?}");
        assert_eq!(a.comment, b.comment);
    }
    assert_eq!(again.default_action, p.default_action);
    assert_eq!(again.architectures, p.architectures);
    // And through native TOML.
    let native = model::parse_native(&model::to_native(&p))?;
    assert!(native
        .rules
        .iter()
        .zip(&p.rules)
        .all(|(a, b)| a.same_effect(b)));
    Ok(())
}

#[test]
fn docker_default_profile_check_is_sensible() -> TestResult {
    let p = formats::import(
        &docker_default()?,
        &ImportOptions {
            kernel: Some((6, 18)),
            ..ImportOptions::default()
        },
    )?;
    let findings = auditor::policy::check::check(&p);
    let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
    // No errors: every name is either a syscall on x86 or one runtimes skip.
    assert_eq!(
        auditor::policy::check::exit_status(&findings),
        1,
        "{text:#?}"
    );
    assert!(
        text.iter().any(|t| t.contains("allows `ptrace`")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("`riscv_hwprobe` is not a syscall on x86_64")),
        "{text:#?}"
    );
    // Located at the name in the JSON.
    assert!(
        findings
            .iter()
            .all(|f| f.location.is_some_and(|l| l.line > 1)),
        "{text:#?}"
    );
    Ok(())
}
