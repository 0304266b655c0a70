//! Unit tests of the handler registry: parameters checked by name and type, with fixes.

use super::*;

#[test]
fn every_handler_serves_syscalls_and_validates_its_defaults() {
    for h in all() {
        assert!(!h.syscalls.is_empty(), "{}", h.name());
        for s in h.syscalls {
            assert!(
                !FD_HANDOVER_SYSCALLS.contains(s),
                "{} serves a hand-over syscall",
                h.name()
            );
        }
        assert!(h.config(&h.default_params()).is_ok(), "{}", h.name());
    }
}

#[test]
fn mknod_narrows_to_char_devices_and_numbers() -> Result<(), HandlerError> {
    let h = lookup("emulate-mknod")?;
    let mut p = Params::new();
    p.insert("devices".into(), ParamValue::strings(["c 1:3"]));
    let cfg = h.config(&p)?;
    let alts = h.narrowing("mknodat", &cfg);
    assert_eq!(
        alts,
        vec![vec![
            Condition {
                index: 2,
                op: Op::MaskedEq { mask: 0o170000 },
                value: 0o020000
            },
            Condition {
                index: 3,
                op: Op::MaskedEq { mask: 0xffff_ffff },
                value: 0x103
            },
        ]]
    );
    Ok(())
}

fn err(r: Result<(), HandlerError>) -> String {
    match r {
        Ok(()) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_params_are_refused() -> Result<(), HandlerError> {
    let h = lookup("emulate-mknod")?;
    let mut p = Params::new();
    p.insert("devices".into(), ParamValue::strings(["b 8:0"]));
    let e = err(h.config(&p).map(|_| ()));
    assert!(e.contains("block devices are never emulated"), "{e}");
    let mut p = Params::new();
    p.insert("devics".into(), ParamValue::strings(["c 1:3"]));
    let e = err(h.config(&p).map(|_| ()));
    assert!(e.contains("did you mean `devices`"), "{e}");
    assert!(err(lookup("emulate-mknd").map(|_| ())).contains("emulate-mknod"));
    assert!(resolve(None, "write").is_err());
    assert_eq!(resolve(None, "mknodat")?.kind, HandlerKind::Mknod);
    let (spec, cfg) = config_for(&crate::policy::model::Notify::default(), "mknod")?;
    assert_eq!(spec.name(), "emulate-mknod");
    assert_eq!(
        cfg,
        HandlerConfig::Mknod {
            devices: SAFE_DEVICES.iter().copied().collect()
        }
    );
    Ok(())
}

#[test]
fn mount_shift_is_a_boolean_and_off_by_default() -> Result<(), HandlerError> {
    let h = lookup("emulate-mount")?;
    let mut p = Params::new();
    p.insert("fstypes".into(), ParamValue::strings(["ext4"]));
    assert!(matches!(
        h.config(&p)?,
        HandlerConfig::Mount { shift: false, .. }
    ));
    p.insert("shift".into(), ParamValue::Bool(true));
    assert!(matches!(
        h.config(&p)?,
        HandlerConfig::Mount { shift: true, .. }
    ));
    p.insert("shift".into(), ParamValue::strings(["yes"]));
    let e = err(h.config(&p).map(|_| ()));
    assert!(e.contains("`shift`") && e.contains("true or false"), "{e}");
    Ok(())
}

fn mount_policy(
    default: crate::policy::model::Action,
    extra: Vec<crate::policy::model::Rule>,
) -> crate::policy::model::Policy {
    use crate::policy::model::{Action, Notify, Policy, Rule};
    let mut params = Params::new();
    params.insert("fstypes".into(), ParamValue::strings(["ext4"]));
    let mut rules = vec![Rule::new(
        ["mount"],
        Action::Notify(Notify {
            handler: Some("emulate-mount".into()),
            params,
        }),
    )];
    rules.extend(extra);
    Policy {
        default_action: default,
        rules,
        ..Policy::default()
    }
}

#[test]
fn the_new_mount_api_is_refused_beside_emulate_mount_whatever_the_policy_says() {
    use crate::policy::model::{Action, Rule, ENOSYS};
    // Default allow, nothing said of the new API: every call of it is forced.
    let (p, forced) = harden(&mount_policy(Action::Allow, vec![]));
    assert_eq!(forced.len(), 8, "{forced:?}");
    let last = p.rules.last().expect("a rule");
    assert_eq!(last.action, Action::Errno(ENOSYS));
    assert!(
        last.names.iter().any(|n| n == "fsopen")
            && last.names.iter().any(|n| n == "open_tree_attr")
    );
    // An explicit allow is overridden; an explicit refusal is kept as it is.
    let (p, forced) = harden(&mount_policy(
        Action::Errno(1),
        vec![
            Rule::new(["fsopen", "read"], Action::Allow),
            Rule::new(["mount_setattr"], Action::Errno(1)),
        ],
    ));
    assert_eq!(forced, vec!["fsopen"]);
    assert_eq!(p.rules[1].names, vec!["read"]);
    assert_eq!(p.rules[2].names, vec!["mount_setattr"]);
    assert_eq!(
        p.rules.last().map(|r| r.names.clone()),
        Some(vec!["fsopen".to_owned()])
    );
    // No handler that needs it: the policy is left alone.
    let plain = crate::policy::model::Policy {
        default_action: Action::Allow,
        ..Default::default()
    };
    assert!(harden(&plain).1.is_empty());
    // setxattr's handler forces the *xattrat calls.
    let mut p = plain.clone();
    p.rules
        .push(Rule::new(["setxattr"], Action::Notify(Default::default())));
    assert_eq!(
        harden(&p).1,
        vec!["setxattrat", "getxattrat", "listxattrat", "removexattrat"]
    );
}

#[test]
fn device_encoding_matches_the_kernel() {
    assert_eq!(Device { major: 1, minor: 3 }.encoded(), 0x103);
    assert_eq!(Device { major: 5, minor: 1 }.encoded(), 0x501);
    // Minors above 255 move to bits 20+.
    assert_eq!(
        Device {
            major: 1,
            minor: 0x1ff
        }
        .encoded(),
        0x1ff | (1 << 8) | (1 << 20)
    );
}

#[test]
fn fuse_maps_types_to_programs_and_refuses_what_cannot_work() {
    use std::collections::BTreeMap;
    let spec = get("emulate-mount").expect("mount");
    let table = |pairs: &[(&str, &str)]| {
        ParamValue::Table(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ParamValue::Str(v.to_string())))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let with = |fuse: ParamValue, fstypes: &[&str]| {
        let mut p = Params::new();
        p.insert("fuse".into(), fuse);
        p.insert(
            "fstypes".into(),
            ParamValue::strings(fstypes.iter().copied()),
        );
        spec.config(&p)
    };
    match with(
        table(&[("ext4", "fuse2fs"), ("xfs", "/opt/bin/xfs-fuse")]),
        &["vfat"],
    ) {
        Ok(HandlerConfig::Mount { fuse, .. }) => {
            assert_eq!(fuse.get("ext4").map(String::as_str), Some("fuse2fs"));
            assert_eq!(
                fuse.get("xfs").map(String::as_str),
                Some("/opt/bin/xfs-fuse")
            );
        }
        other => panic!("{other:?}"),
    }
    // Both the host driver and FUSE for one type; a path climbing out; not a table.
    assert!(with(table(&[("ext4", "fuse2fs")]), &["ext4"]).is_err());
    assert!(with(table(&[("ext4", "../../bin/sh")]), &[]).is_err());
    assert!(with(table(&[("ext4", "/usr/../bin/sh")]), &[]).is_err());
    assert!(with(ParamValue::strings(["ext4=fuse2fs"]), &[]).is_err());
    assert!(with(table(&[("fuse", "x")]), &[]).is_err());
}

#[test]
fn a_fuse_server_runs_the_policy_with_its_own_mount_let_through() {
    use crate::policy::model::{Action, Notify, Policy, Rule, EPERM};
    let mut p = Policy {
        default_action: Action::Allow,
        ..Policy::default()
    };
    p.rules.push(Rule::new(
        ["mount", "mknod"],
        Action::Notify(Notify {
            handler: None,
            params: Params::new(),
        }),
    ));
    p.rules.push(Rule::new(["reboot"], Action::Errno(EPERM)));
    let f = for_fuse_server(&p);
    assert!(f.rules.iter().all(|r| !r.action.is_notify()));
    let action = |name: &str| {
        f.rules
            .iter()
            .find(|r| r.names.iter().any(|n| n == name))
            .map(|r| r.action.clone())
    };
    assert_eq!(action("mount"), Some(Action::Allow));
    assert_eq!(action("mknod"), Some(Action::Errno(EPERM)));
    assert_eq!(action("reboot"), Some(Action::Errno(EPERM)));

    // A tight (learned) policy: the server's own calls are added where no rule names them;
    // what a rule names keeps its decision.
    let mut tight = Policy::default();
    tight.rules.push(Rule::new(["read"], Action::Allow));
    tight.rules.push(Rule::new(["ioctl"], Action::Errno(EPERM)));
    let f = for_fuse_server(&tight);
    let allowed: Vec<&Rule> = f
        .rules
        .iter()
        .filter(|r| r.action == Action::Allow)
        .collect();
    assert!(allowed
        .iter()
        .any(|r| r.names.iter().any(|n| n == "pwrite64")));
    assert!(!allowed.iter().any(|r| r.names.iter().any(|n| n == "ioctl")));
    assert_eq!(
        f.rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == "read"))
            .count(),
        1
    );
    crate::seccomp::compile::compile(&f).expect("compiles");
}
