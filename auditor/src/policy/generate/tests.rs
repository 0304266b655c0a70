//! Tests of policy generation from observations.

use super::*;
use crate::observe::model::{ArgumentTuple, Arguments, SyscallObservation};
use crate::observe::model::{Host, Loss, Processes, Target};
use crate::policy::model::{Condition, Op, ParamValue, ENOSYS};
use tighten::CLONE_NS_MASK;

fn sys(name: &str, count: u64) -> SyscallObservation {
    SyscallObservation {
        name: name.into(),
        abi: Abi::X86_64,
        nr: 0,
        count,
        first_seen_ms: 0.0,
        failures: BTreeMap::new(),
        restarts: BTreeMap::new(),
        refused: BTreeMap::new(),
        executables: BTreeMap::from([("/bin/sh".to_owned(), count)]),
        refused_executables: Default::default(),
        arguments: Vec::new(),
        arguments_overflow: 0,
        argument_read_failures: 0,
    }
}

pub(crate) fn obs(syscalls: Vec<SyscallObservation>) -> Observation {
    Observation {
        format: crate::observe::model::FORMAT.into(),
        version: crate::observe::model::VERSION,
        auditor_version: "test".into(),
        host: Host {
            kernel: "6.18".into(),
            arch: "x86_64".into(),
            node: None,
        },
        target: Target::Command {
            argv: vec!["sh".into()],
        },
        started_at: "2026-01-01T00:00:00Z".into(),
        ended_at: "2026-01-01T00:00:01Z".into(),
        duration_ms: 1000,
        syscalls,
        executables: Vec::new(),
        processes: Processes::default(),
        loss: Loss::default(),
    }
}

fn mknod_tuple(result: &str, ty: &str, major: u32, minor: u32) -> ArgumentTuple {
    ArgumentTuple {
        calls: 1,
        result: result.into(),
        args: Arguments::Mknod {
            dirfd: Some(-100),
            path: Some("/dev/x".into()),
            file_type: ty.into(),
            perm: 0o666,
            major,
            minor,
        },
    }
}

#[test]
fn merges_and_allows_what_succeeded() -> Result<(), GenerateError> {
    let mut open = sys("openat", 10);
    open.failures.insert("ENOENT".into(), 4);
    let a = obs(vec![sys("read", 5), open.clone()]);
    let b = obs(vec![sys("read", 7), sys("getpid", 1)]);
    let g = generate(&[a, b], &GenerateOptions::default())?;
    assert_eq!(g.report.allowed, vec!["getpid", "openat", "read"]);
    let every = &g.policy.rules[0];
    assert_eq!(every.names, vec!["read"]);
    assert_eq!(
        every.provenance.as_ref().map(|p| (p.inputs, p.of, p.calls)),
        Some((2, 2, 12))
    );
    let some = &g.policy.rules[1];
    assert_eq!(some.names, vec!["getpid", "openat"]);
    assert_eq!(some.provenance.as_ref().map(|p| p.inputs), Some(1));
    assert_eq!(g.policy.default_action, Action::Errno(EPERM));
    Ok(())
}

#[test]
fn refused_calls_are_candidates_not_rules() -> Result<(), GenerateError> {
    let mut ptrace = sys("ptrace", 0);
    ptrace.refused.insert("EPERM".into(), 3);
    let g = generate(
        &[obs(vec![sys("read", 1), ptrace])],
        &GenerateOptions::default(),
    )?;
    assert_eq!(
        g.report.candidates,
        vec![(
            "ptrace".to_owned(),
            BTreeMap::from([("EPERM".to_owned(), 3)])
        )]
    );
    assert!(g.policy.names().all(|(_, n)| n != "ptrace"));
    Ok(())
}

#[test]
fn eperm_mknod_becomes_a_narrowed_notify_rule_and_block_devices_are_reported(
) -> Result<(), GenerateError> {
    let mut mk = sys("mknodat", 3);
    mk.failures.insert("EPERM".into(), 2);
    mk.arguments = vec![
        mknod_tuple("EPERM", "char", 1, 3),
        mknod_tuple("EPERM", "block", 8, 0),
        mknod_tuple("ok", "fifo", 0, 0),
    ];
    let g = generate(&[obs(vec![mk])], &GenerateOptions::default())?;
    assert_eq!(
        g.report.notified,
        vec![("mknodat".to_owned(), "emulate-mknod".to_owned())]
    );
    assert!(
        g.report
            .denied
            .iter()
            .any(|d| d.reason.contains("block device 8:0")),
        "{:?}",
        g.report.denied
    );
    let notify: Vec<&Rule> = g
        .policy
        .rules
        .iter()
        .filter(|r| r.action.is_notify())
        .collect();
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0].args[1].value, 0x103);
    assert!(notify[0]
        .comment
        .as_deref()
        .is_some_and(|c| c.contains("EPERM")));
    // The fifo that succeeded stays allowed, narrowed to fifos.
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.action == Action::Allow && r.args[0].value == 0o010000));
    Ok(())
}

#[test]
fn eperm_without_handler_is_left_denied_and_reported() -> Result<(), GenerateError> {
    let mut kexec = sys("kexec_load", 1);
    kexec.failures.insert("EPERM".into(), 1);
    let g = generate(&[obs(vec![kexec])], &GenerateOptions::default())?;
    assert!(g.policy.rules.is_empty());
    assert_eq!(g.report.denied.len(), 1);
    assert!(g
        .report
        .render(&g.policy.default_action)
        .contains("kexec_load (1 calls)"));
    Ok(())
}

#[test]
fn mount_gets_observed_fstypes_and_sources_and_fsopen_enosys() -> Result<(), GenerateError> {
    let mut mount = sys("mount", 2);
    mount.failures.insert("EPERM".into(), 1);
    mount.arguments = vec![
        ArgumentTuple {
            calls: 1,
            result: "EPERM".into(),
            args: Arguments::Mount {
                source: Some("/dev/loop0".into()),
                target: Some("/mnt".into()),
                fstype: Some("ext4".into()),
                flags: 0,
                flag_names: vec![],
            },
        },
        ArgumentTuple {
            calls: 1,
            result: "ok".into(),
            args: Arguments::Mount {
                source: Some("tmpfs".into()),
                target: Some("/tmp".into()),
                fstype: Some("tmpfs".into()),
                flags: 0,
                flag_names: vec![],
            },
        },
    ];
    let g = generate(&[obs(vec![mount])], &GenerateOptions::default())?;
    let r = g
        .policy
        .rules
        .iter()
        .find(|r| r.names == ["mount"])
        .ok_or(GenerateError::NoInput)?;
    let Action::Notify(n) = &r.action else {
        panic!("{r:?}")
    };
    // The tmpfs that worked by itself stays the kernel's: emulating it would want a block
    // device and break it.
    assert_eq!(
        n.params.get("fstypes"),
        Some(&ParamValue::strings(["ext4"]))
    );
    assert_eq!(
        n.params.get("sources"),
        Some(&ParamValue::strings(["/dev/loop0"]))
    );
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.names == ["fsopen"] && r.action == Action::Errno(ENOSYS)));
    Ok(())
}

#[test]
fn wait_killable_recv_is_set_for_crun_only() -> Result<(), GenerateError> {
    let observed = || {
        let mut m = sys("mknodat", 1);
        m.failures.insert("EPERM".into(), 1);
        vec![obs(vec![m, sys("read", 3)])]
    };
    for (runtime, expected) in [
        (Runtime::Crun, true),
        (Runtime::Runc, false),
        (Runtime::Lxc, false),
    ] {
        let options = GenerateOptions {
            runtime: Some(RuntimeTarget::new(runtime)),
            ..GenerateOptions::default()
        };
        let g = generate(&observed(), &options)?;
        assert!(
            g.policy.rules.iter().any(|r| r.action.is_notify()),
            "{runtime:?}: no notify rule"
        );
        assert_eq!(
            g.policy.flags.iter().any(|f| f == WAIT_KILLABLE_RECV),
            expected,
            "{runtime:?}"
        );
    }
    // No notify rule, no flag.
    let options = GenerateOptions {
        runtime: Some(RuntimeTarget::new(Runtime::Crun)),
        ..GenerateOptions::default()
    };
    let g = generate(&[obs(vec![sys("read", 3)])], &options)?;
    assert!(g.policy.flags.is_empty());
    Ok(())
}

#[test]
fn tighten_socket_and_clone() -> Result<(), GenerateError> {
    let mut sock = sys("socket", 2);
    sock.arguments = vec![ArgumentTuple {
        calls: 2,
        result: "ok".into(),
        args: Arguments::Socket {
            domain: 1,
            domain_name: "AF_UNIX".into(),
            socket_type: 1,
            type_name: "SOCK_STREAM".into(),
            protocol: 0,
        },
    }];
    let mut clone = sys("clone", 1);
    clone.arguments = vec![ArgumentTuple {
        calls: 1,
        result: "ok".into(),
        args: Arguments::Namespaces {
            flags: 0x01200011,
            namespaces: vec![],
        },
    }];
    let mut ioctl = sys("ioctl", 2);
    ioctl.arguments_overflow = 1;
    let opts = GenerateOptions {
        tighten: true,
        ..GenerateOptions::default()
    };
    let g = generate(&[obs(vec![sock, clone, ioctl])], &opts)?;
    let s = g
        .policy
        .rules
        .iter()
        .find(|r| r.names == ["socket"])
        .ok_or(GenerateError::NoInput)?;
    assert_eq!(
        s.args,
        vec![Condition {
            index: 0,
            op: Op::MaskedEq { mask: 0xffff_ffff },
            value: 1
        }]
    );
    let c = g
        .policy
        .rules
        .iter()
        .find(|r| r.names == ["clone"])
        .ok_or(GenerateError::NoInput)?;
    assert_eq!(
        c.args,
        vec![Condition {
            index: 0,
            op: Op::MaskedEq {
                mask: CLONE_NS_MASK
            },
            value: 0
        }]
    );
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.names == ["clone3"] && r.action == Action::Errno(ENOSYS)));
    // ioctl's arguments are incomplete: allowed plainly, with a note.
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.names.contains(&"ioctl".to_owned()) && r.args.is_empty()));
    assert!(g
        .report
        .notes
        .iter()
        .any(|n| n.starts_with("ioctl: not tightened")));
    Ok(())
}

/// Notify as the default makes an interactive policy: what was learned is allowed, the rest
/// is a person's decision (the agent's prompts, `enforce --interactive`).
#[test]
fn notify_default_is_an_interactive_policy() -> Result<(), GenerateError> {
    let opts = GenerateOptions {
        default_action: Action::Notify(Notify::default()),
        ..GenerateOptions::default()
    };
    let g = generate(&[obs(vec![])], &opts)?;
    assert!(g.policy.default_action.is_notify());
    let interactive = crate::policy::check::CheckOptions { interactive: true };
    assert!(
        crate::policy::check::validate_with(&g.policy, interactive).is_empty(),
        "{:?}",
        crate::policy::check::validate_with(&g.policy, interactive)
    );
    Ok(())
}

#[test]
fn sysinfo_only_when_asked() -> Result<(), GenerateError> {
    let g = generate(&[obs(vec![sys("sysinfo", 1)])], &GenerateOptions::default())?;
    assert!(g.policy.rules.iter().all(|r| !r.action.is_notify()));
    let opts = GenerateOptions {
        extra_handlers: vec!["sysinfo".into()],
        ..GenerateOptions::default()
    };
    let g = generate(&[obs(vec![sys("sysinfo", 1)])], &opts)?;
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.names == ["sysinfo"] && r.action.is_notify()));
    assert!(g
        .policy
        .rules
        .iter()
        .all(|r| r.action.is_notify() || !r.names.contains(&"sysinfo".to_owned())));
    Ok(())
}

#[test]
fn baseline_hook_adds_missing_syscalls() {
    let mut p = Policy {
        rules: vec![Rule::new(["read"], Action::Allow)],
        ..Policy::default()
    };
    let b = RuntimeBaseline {
        runtime: Runtime::Runc,
        version: "1.1.5".into(),
        syscalls: vec!["read".into(), "statx".into()],
    };
    merge_baseline(&mut p, &b);
    assert_eq!(p.rules[1].names, vec!["statx"]);
    assert!(
        baseline(Runtime::Runc, Some("0.0.0"), Mode::default()).is_err(),
        "an unknown version has no baseline"
    );
}

/// A nested engine: it sets trusted.overlay.opaque (refused) and mounts overlay (which a user
/// namespace may, but that overlay ignores the attribute): the host mounts overlay for it.
#[test]
fn a_nested_engines_overlay_gets_the_mount_emulated() -> Result<(), GenerateError> {
    let overlay_mount = |result: &str| ArgumentTuple {
        calls: 1,
        result: result.into(),
        args: Arguments::Mount {
            source: Some("overlay".into()),
            target: Some("/var/lib/docker/overlay2/x/merged".into()),
            fstype: Some("overlay".into()),
            flags: 0,
            flag_names: vec![],
        },
    };
    let mut mount = sys("mount", 1);
    mount.arguments = vec![overlay_mount("ok")];
    let mut setxattr = sys("setxattr", 1);
    setxattr.failures.insert("EPERM".into(), 1);
    setxattr.arguments = vec![ArgumentTuple {
        calls: 1,
        result: "EPERM".into(),
        args: Arguments::Xattr {
            name: Some("trusted.overlay.opaque".into()),
            flags: 0,
        },
    }];
    let g = generate(
        &[obs(vec![mount.clone(), setxattr])],
        &GenerateOptions::default(),
    )?;
    let r = g
        .policy
        .rules
        .iter()
        .find(|r| r.names == ["mount"])
        .ok_or(GenerateError::NoInput)?;
    let Action::Notify(n) = &r.action else {
        panic!("{r:?}")
    };
    assert_eq!(n.handler.as_deref(), Some("emulate-mount"));
    assert_eq!(
        n.params.get("fstypes"),
        Some(&ParamValue::strings(["overlay"]))
    );
    assert_eq!(
        n.params.get("sources"),
        Some(&ParamValue::strings(Vec::<String>::new()))
    );
    assert!(r.comment.as_deref().is_some_and(|c| c.contains("opaque")));
    assert!(g.report.notes.iter().any(|n| n.contains("nested engine")));
    assert!(g
        .policy
        .rules
        .iter()
        .any(|r| r.names.iter().any(|n| n == "setxattr") && r.action.is_notify()));

    // An overlay mount alone (user.overlay.* with userxattr, or no attributes at all) is the
    // kernel's business.
    let g = generate(&[obs(vec![mount])], &GenerateOptions::default())?;
    assert!(
        !g.policy.rules.iter().any(|r| r.action.is_notify()),
        "{:?}",
        g.policy.rules
    );
    Ok(())
}

/// Refused scheduling calls become emulate-sched rules whose limits are what was asked for:
/// the realtime ceiling is the highest priority seen, the nice floor the lowest value;
/// PRIO_PGRP and deadline are reported, never granted.
#[test]
fn refused_sched_calls_get_emulate_sched_with_the_limits_asked_for() -> Result<(), GenerateError> {
    let sched = |policy: Option<&str>,
                 priority: Option<u32>,
                 which: Option<&str>,
                 nice: Option<i32>,
                 result: &str| ArgumentTuple {
        calls: 1,
        result: result.into(),
        args: Arguments::Sched {
            policy: policy.map(str::to_owned),
            priority,
            which: which.map(str::to_owned),
            nice,
        },
    };
    let mut setscheduler = sys("sched_setscheduler", 4);
    setscheduler.failures.insert("EPERM".into(), 3);
    setscheduler.arguments = vec![
        sched(Some("fifo"), Some(5), None, None, "EPERM"),
        sched(Some("fifo"), Some(20), None, None, "EPERM"),
        sched(Some("deadline"), Some(0), None, None, "EPERM"),
        sched(Some("batch"), Some(0), None, None, "ok"),
    ];
    let mut setpriority = sys("setpriority", 3);
    setpriority.failures.insert("EACCES".into(), 3);
    setpriority.arguments = vec![
        sched(None, None, Some("process"), Some(-3), "EACCES"),
        sched(None, None, Some("process"), Some(-7), "EACCES"),
        sched(None, None, Some("pgrp"), Some(-1), "EACCES"),
    ];
    let g = generate(
        &[obs(vec![setscheduler, setpriority])],
        &GenerateOptions::default(),
    )?;
    let params = |name: &str| -> crate::policy::model::Params {
        let r = g
            .policy
            .rules
            .iter()
            .find(|r| r.names == [name])
            .unwrap_or_else(|| panic!("{name}: {:?}", g.policy.rules));
        match &r.action {
            Action::Notify(n) => {
                assert_eq!(n.handler.as_deref(), Some("emulate-sched"));
                n.params.clone()
            }
            other => panic!("{other:?}"),
        }
    };
    let p = params("sched_setscheduler");
    assert_eq!(
        p.get("policies"),
        Some(&ParamValue::strings(["fifo", "other"]))
    );
    assert_eq!(p.get("rt_max"), Some(&ParamValue::Int(20)));
    let p = params("setpriority");
    assert_eq!(p.get("nice_min"), Some(&ParamValue::Int(-7)));
    assert_eq!(p.get("rt_max"), Some(&ParamValue::Int(0)));
    let denied: Vec<&str> = g.report.denied.iter().map(|d| d.reason.as_str()).collect();
    assert!(denied.iter().any(|d| d.contains("deadline")), "{denied:?}");
    assert!(
        denied.iter().any(|d| d.contains("whole pgrp")),
        "{denied:?}"
    );
    assert!(g
        .report
        .notes
        .iter()
        .any(|n| n.contains("cpu.rt_runtime_us")));
    // Each rule is one the broker accepts.
    for r in &g.policy.rules {
        if let Action::Notify(n) = &r.action {
            handlers::config_for(n, &r.names[0]).expect("a handler with valid params");
        }
    }
    Ok(())
}

/// A refused load of a cgroup device program (a runtime inside the container filtering its
/// containers' devices) becomes an emulate-bpf-devices rule narrowed to the commands the
/// handler serves; any other refused bpf use stays refused.
#[test]
fn a_refused_device_filter_gets_emulate_bpf_devices() -> Result<(), GenerateError> {
    let bpf = |cmd: u64, prog_type: Option<&str>, result: &str| ArgumentTuple {
        calls: 1,
        result: result.into(),
        args: Arguments::Bpf {
            cmd,
            cmd_name: crate::syscalls::decode::bpf_cmd_name(cmd),
            prog_type: prog_type.map(str::to_owned),
            attach_type: None,
        },
    };
    let mut runtime = sys("bpf", 5);
    runtime.failures.insert("EPERM".into(), 5);
    runtime.arguments = vec![
        bpf(16, None, "EPERM"),
        bpf(0, None, "EPERM"),
        bpf(5, Some("cgroup_skb"), "EPERM"),
        bpf(5, Some("cgroup_device"), "EPERM"),
        bpf(8, None, "EPERM"),
    ];
    let g = generate(&[obs(vec![runtime])], &GenerateOptions::default())?;
    let notify: Vec<&Rule> = g
        .policy
        .rules
        .iter()
        .filter(|r| r.names == ["bpf"] && r.action.is_notify())
        .collect();
    // One rule per served command (the filter notifies only those).
    assert_eq!(notify.len(), 6, "{:?}", g.policy.rules);
    for r in &notify {
        match &r.action {
            Action::Notify(n) => {
                assert_eq!(n.handler.as_deref(), Some("emulate-bpf-devices"));
                handlers::config_for(n, "bpf").expect("valid");
            }
            other => panic!("{other:?}"),
        }
    }
    let denied: Vec<&str> = g.report.denied.iter().map(|d| d.reason.as_str()).collect();
    assert!(
        denied.iter().any(|d| d.contains("BPF_MAP_CREATE")),
        "{denied:?}"
    );

    // A tracer's refused socket filter alone: no emulation.
    let mut tracer = sys("bpf", 1);
    tracer.failures.insert("EPERM".into(), 1);
    tracer.arguments = vec![bpf(5, Some("socket_filter"), "EPERM")];
    let g = generate(&[obs(vec![tracer])], &GenerateOptions::default())?;
    assert!(
        !g.policy.rules.iter().any(|r| r.action.is_notify()),
        "{:?}",
        g.policy.rules
    );

    // runc 1.1 asks what is attached first and, refused, loads nothing: its refused query of
    // device programs is enough.
    let mut query = sys("bpf", 1);
    query.failures.insert("EPERM".into(), 1);
    query.arguments = vec![ArgumentTuple {
        calls: 1,
        result: "EPERM".into(),
        args: Arguments::Bpf {
            cmd: 16,
            cmd_name: "BPF_PROG_QUERY".into(),
            prog_type: None,
            attach_type: Some("cgroup_device".into()),
        },
    }];
    let g = generate(&[obs(vec![query])], &GenerateOptions::default())?;
    assert_eq!(
        g.policy
            .rules
            .iter()
            .filter(|r| r.action.is_notify())
            .count(),
        6,
        "{:?}",
        g.policy.rules
    );
    Ok(())
}
