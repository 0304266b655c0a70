//! `emulate-finit-module` against the real kernel: a user-namespaced container (auditor
//! enforce --userns) asks for modules by file; the handler reads each file's `.modinfo` name
//! and has the host load its own copy of allowed modules only.
//!
//! This host's kernel is built without module support (no /proc/modules, no /lib/modules):
//! no module can actually be loaded here. What is real: the names are read from module
//! images (ELF objects with a `.modinfo` section, built here with gcc), allowed modules the
//! kernel already has (built in: /sys/module/overlay) get the kernel's own EEXIST, and an
//! allowed module the host cannot load is refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use integration::{
    audit_records as records, enforce, require_root, require_tool, text, workload, Scratch,
    ALLOW_ALL_POLICY,
};

const POLICY: &str = r#"version = 1
default_action = "allow"

[[rule]]
names = ["finit_module"]
action = "notify"
handler = "emulate-finit-module"
params = { modules = ["overlay", "auditor-test-absent"] }
"#;

/// A module image named `name` (what the kernel reads the name from: `.modinfo`'s `name=`).
fn module(s: &Scratch, gcc: &Path, file: &str, name: &str) -> PathBuf {
    let src = s.path(&format!("{file}.c"));
    std::fs::write(
        &src,
        format!(
            "__attribute__((section(\".modinfo\"), used)) static const char info[] = \"license=GPL\\0name={name}\\0vermagic=6.18\";\nint init_module(void) {{ return 0; }}\n"
        ),
    )
    .expect("write");
    let out = s.path(file);
    let o = Command::new(gcc)
        .args(["-c", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("gcc");
    assert!(o.status.success(), "gcc: {}", text(&o.stderr));
    // Readable by the container's root.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    out
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

#[test]
fn allowed_modules_are_the_hosts_own_and_others_are_refused() {
    let test = "allowed_modules_are_the_hosts_own_and_others_are_refused";
    if !require_root(test) {
        return;
    }
    let Some(gcc) = require_tool(test, "gcc") else {
        return;
    };
    let s = Scratch::new("finit-module");
    std::fs::set_permissions(s.dir(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let overlay = module(&s, &gcc, "overlay.ko", "overlay");
    let evil = module(&s, &gcc, "evil.ko", "evil_rootkit");
    let absent = module(&s, &gcc, "absent.ko", "auditor_test_absent");
    let not_elf = s.write("not-elf.ko", "#!/bin/sh\n");
    let with = s.write("with.toml", POLICY);
    let without = s.write("without.toml", ALLOW_ALL_POLICY);
    let log = s.path("audit.jsonl");
    let step = |label: &str, file: &Path, params: &str, flags: &str| {
        format!("{label}:{}:{params}:{flags}", file.display())
    };
    let steps = [
        step("overlay", &overlay, "-", "0"),
        step("evil", &evil, "-", "0"),
        step("params", &overlay, "redirect_dir=on", "0"),
        step("flags", &overlay, "-", "1"),
        step("not_elf", &not_elf, "-", "0"),
        step("absent", &absent, "-", "0"),
    ];
    let run = |policy: &Path| {
        let bin = workload("finit_try");
        let mut cmd = vec![bin.as_str()];
        cmd.extend(steps.iter().map(String::as_str));
        let o = enforce(
            &[
                "--policy",
                &policy.display().to_string(),
                "--userns",
                "--audit-log",
                &log.display().to_string(),
            ],
            &cmd,
        );
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
        out
    };

    // Without auditor: refused (EPERM in a user namespace; ENOSYS on this kernel, which has
    // no module support at all).
    let out = run(&without);
    let e = line(&out, "overlay");
    assert!(
        e == format!("-1 errno={}", libc::EPERM) || e == format!("-1 errno={}", libc::ENOSYS),
        "{out}"
    );

    let out = run(&with);
    // Allowed and already in the host's kernel: the kernel's own answer.
    assert_eq!(
        line(&out, "overlay"),
        format!("-1 errno={}", libc::EEXIST),
        "{out}"
    );
    assert_eq!(
        line(&out, "evil"),
        format!("-1 errno={}", libc::EPERM),
        "{out}"
    );
    assert_eq!(
        line(&out, "params"),
        format!("-1 errno={}", libc::EPERM),
        "{out}"
    );
    assert_eq!(
        line(&out, "flags"),
        format!("-1 errno={}", libc::EINVAL),
        "{out}"
    );
    assert_eq!(
        line(&out, "not_elf"),
        format!("-1 errno={}", libc::ENOEXEC),
        "{out}"
    );
    // Allowed, not in the kernel, and this host cannot load modules: refused, saying why.
    let absent = line(&out, "absent");
    assert!(absent.starts_with("-1 errno="), "{out}");
    assert_ne!(absent, "-1 errno=0", "{out}");

    let recs = records(&log);
    let why = |module: &str, needle: &str| {
        recs.iter().any(|r| {
            r["syscall"] == "finit_module"
                && r["decoded"]["module"] == module
                && r["decoded"]["why"]
                    .as_str()
                    .is_some_and(|w| w.contains(needle))
        })
    };
    assert!(why("overlay", "already in the host's kernel"), "{recs:#?}");
    assert!(
        why("evil_rootkit", "not on the rule's modules list"),
        "{recs:#?}"
    );
    assert!(
        why("auditor_test_absent", "cannot load modules")
            || why("auditor_test_absent", "modprobe")
            || why("auditor_test_absent", "/lib/modules"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["syscall"] == "finit_module"
            && r["decoded"]["why"]
                .as_str()
                .is_some_and(|w| w.contains("module parameters"))),
        "{recs:#?}"
    );
}
