//! Notify rules for calls the kernel refused for lack of privilege, narrowed to what the
//! workload asked for.

use std::collections::BTreeSet;

use super::merge::is_privilege;
use super::{privilege_errnos, Denied, Merged, Report};
use crate::observe::model::{ArgumentTuple, Arguments};
use crate::policy::handlers::{self, Device, HandlerKind, SAFE_DEVICES};
use crate::policy::model::{Action, Condition, Notify, Op, ParamValue, Params, Rule};

/// The attribute prefix of overlayfs' own metadata.
const OVERLAY_PREFIX: &str = "trusted.overlay.";

/// File systems the kernel lets a user namespace mount (`FS_USERNS_MOUNT`).
fn userns_mountable(fstype: &str) -> bool {
    matches!(
        fstype,
        "tmpfs"
            | "ramfs"
            | "proc"
            | "sysfs"
            | "devpts"
            | "mqueue"
            | "cgroup"
            | "cgroup2"
            | "overlay"
            | "fuse"
            | "binfmt_misc"
            | "bpf"
    ) || fstype.starts_with("fuse.")
}

/// Whether the workload builds overlays the way a nested engine does: it tried to set
/// `trusted.overlay.*` (refused in a user namespace) and mounted overlay (which a user
/// namespace may do, but such an overlay reads no `trusted.*` attribute, so its opaque
/// directories would not be opaque).
pub(super) fn nested_overlay(merged: &std::collections::BTreeMap<String, Merged>) -> bool {
    let sets_overlay_xattrs = ["setxattr", "lsetxattr", "fsetxattr"].iter().any(|name| {
        merged.get(*name).is_some_and(|m| {
            m.arguments.iter().any(|t| {
                is_privilege(&t.result)
                    && matches!(&t.args, Arguments::Xattr { name: Some(n), .. } if n.starts_with(OVERLAY_PREFIX))
            })
        })
    });
    sets_overlay_xattrs
        && merged.get("mount").is_some_and(|m| {
            m.arguments.iter().any(
                |t| matches!(&t.args, Arguments::Mount { fstype: Some(f), .. } if f == "overlay"),
            )
        })
}

/// Notify rules (and narrowed allow rules for what succeeded) for a syscall a handler serves.
/// `overlay`: the workload mounts overlay over layers it sets `trusted.overlay.*` on
/// ([`nested_overlay`]); the mount rule then has the host mount them.
pub(super) fn notify_rules(
    m: &Merged,
    spec: &handlers::HandlerSpec,
    of: u32,
    overlay: bool,
    fuse: &std::collections::BTreeMap<String, String>,
    report: &mut Report,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut params = Params::new();
    let mut why = format!(
        "{} of {} calls failed with {} (no privilege here); {} {}",
        m.privilege_failures(),
        m.count,
        privilege_errnos(m),
        spec.name(),
        spec.summary
    );
    if overlay {
        why = format!(
            "{}overlay mounts over layers whose trusted.overlay.* attributes the workload sets: the host mounts them, so that opaque directories are opaque ({} {})",
            if m.privilege_failures() > 0 {
                format!("{} of {} calls failed with {}; ", m.privilege_failures(), m.count, privilege_errnos(m))
            } else {
                String::new()
            },
            spec.name(),
            spec.summary
        );
    }
    let denied_tuples: Vec<&ArgumentTuple> = m
        .arguments
        .iter()
        .filter(|t| is_privilege(&t.result))
        .collect();
    match spec.kind {
        HandlerKind::Mknod => {
            let mut devices = BTreeSet::new();
            for t in &denied_tuples {
                if let Arguments::Mknod {
                    file_type,
                    major,
                    minor,
                    ..
                } = &t.args
                {
                    let dev = Device {
                        major: *major,
                        minor: *minor,
                    };
                    if file_type == "char" && SAFE_DEVICES.contains(&dev) {
                        devices.insert(dev);
                    } else {
                        report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: format!(
                                "{file_type} device {major}:{minor} is not one of the safe character devices (whiteout 0:0, null, zero, full, random, urandom, tty, console, ptmx)"
                            ),
                        });
                    }
                }
            }
            if denied_tuples.is_empty() {
                report.notes.push(format!(
                    "{}: no arguments were recorded; the handler allows only the safe character devices",
                    m.name
                ));
                devices.extend(SAFE_DEVICES.iter().copied());
            }
            // Calls that succeeded (fifos, sockets, overlay whiteouts 0:0) stay allowed, narrowed
            // to their file type (and device number for device nodes).
            for t in m.arguments.iter().filter(|t| !is_privilege(&t.result)) {
                if let Arguments::Mknod {
                    file_type,
                    major,
                    minor,
                    ..
                } = &t.args
                {
                    let mode = if m.name == "mknod" { 1 } else { 2 };
                    let ty = match file_type.as_str() {
                        "char" => handlers::S_IFCHR,
                        "block" => handlers::S_IFBLK,
                        "fifo" => 0o010000,
                        "socket" => 0o140000,
                        _ => 0o100000,
                    };
                    let mut conds = vec![Condition {
                        index: mode,
                        op: Op::MaskedEq {
                            mask: handlers::S_IFMT,
                        },
                        value: ty,
                    }];
                    if file_type == "char" || file_type == "block" {
                        conds.push(Condition {
                            index: mode + 1,
                            op: Op::MaskedEq { mask: 0xffff_ffff },
                            value: Device {
                                major: *major,
                                minor: *minor,
                            }
                            .encoded(),
                        });
                    }
                    let rule = Rule::new([m.name.clone()], Action::Allow)
                        .with_args(conds)
                        .with_comment(format!(
                            "{file_type} {major}:{minor} succeeded without help"
                        ));
                    if !rules.iter().any(|r: &Rule| r.same_effect(&rule)) {
                        rules.push(rule);
                    }
                }
            }
            if devices.is_empty() {
                return rules;
            }
            params.insert(
                "devices".into(),
                ParamValue::strings(devices.iter().map(|d| d.to_string())),
            );
        }
        HandlerKind::Mount => {
            let mut fstypes = BTreeSet::new();
            let mut sources = BTreeSet::new();
            for t in &m.arguments {
                if let Arguments::Mount { source, fstype, .. } = &t.args {
                    // A file system a user namespace mounts by itself (tmpfs, proc, overlay…)
                    // needs no emulation when it worked; an emulated one that worked (a
                    // learning round under the policy) keeps its place.
                    if !is_privilege(&t.result) && fstype.as_deref().is_some_and(userns_mountable) {
                        continue;
                    }
                    match (source, fstype) {
                        (Some(s), Some(f)) => {
                            sources.insert(s.clone());
                            fstypes.insert(f.clone());
                        }
                        _ => report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: "source or file-system type could not be read; add them to the handler's params by hand".into(),
                        }),
                    }
                }
            }
            if overlay {
                fstypes.insert("overlay".to_owned());
                report.notes.push(
                    "mount: the workload sets trusted.overlay.* attributes and mounts overlay, as a nested engine does; an overlay a user namespace mounts itself ignores those attributes, so emulate-mount mounts overlay for it (over its own directories, opened as the caller)"
                        .to_owned(),
                );
            }
            if fstypes.is_empty() {
                report.denied.push(Denied {
                    syscall: m.name.clone(),
                    calls: m.privilege_failures(),
                    reason: "no mount arguments were recorded, so no file system can be allowed"
                        .into(),
                });
                return rules;
            }
            // Types the user chose to serve through FUSE (`--fuse`): parsed by a program in
            // the container, never by the host's driver; no source device to allow for them.
            let through_fuse: Vec<(&String, &String)> = fstypes
                .iter()
                .filter_map(|f| Some((f, fuse.get(f)?)))
                .collect();
            if !through_fuse.is_empty() {
                report.notes.push(format!(
                    "mount: {} through FUSE ({}): the program must be in the container's root file system, and the container needs /dev/fuse",
                    through_fuse.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", "),
                    through_fuse
                        .iter()
                        .map(|(t, p)| format!("{t} = {p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                let table = through_fuse
                    .iter()
                    .map(|(t, p)| ((*t).clone(), ParamValue::Str((*p).clone())))
                    .collect();
                fstypes.retain(|f| !fuse.contains_key(f));
                params.insert("fuse".into(), ParamValue::Table(table));
                if fstypes.is_empty() {
                    sources.clear();
                }
            }
            params.insert("fstypes".into(), ParamValue::strings(fstypes));
            params.insert("sources".into(), ParamValue::strings(sources));
        }
        HandlerKind::Setxattr => {
            let prefix = OVERLAY_PREFIX;
            let mut ok = false;
            for t in &denied_tuples {
                if let Arguments::Xattr { name, .. } = &t.args {
                    match name {
                        Some(n) if n.starts_with(prefix) => ok = true,
                        other => report.denied.push(Denied {
                            syscall: m.name.clone(),
                            calls: t.calls,
                            reason: format!(
                                "attribute {} is outside {prefix}*",
                                other.as_deref().unwrap_or("(unreadable)")
                            ),
                        }),
                    }
                }
            }
            if !ok && !denied_tuples.is_empty() {
                return rules;
            }
            params.insert("prefixes".into(), ParamValue::strings([prefix]));
        }
        HandlerKind::Sysinfo => {}
        HandlerKind::FinitModule => {
            // The module is named inside the file the call passes: the capture cannot read
            // it. The rule refuses every module until its list names some.
            report.notes.push(format!(
                "{}: emulate-finit-module added with an empty modules list (the learned calls cannot show which module was asked for); name the modules the container may have the host load in params.modules",
                m.name
            ));
            params.insert("modules".into(), ParamValue::strings(Vec::<String>::new()));
        }
        HandlerKind::BpfDevices => {
            // A runtime inside the container loading its device filter: a refused load of a
            // cgroup device program. Any other refused bpf use stays refused.
            let mut device_filter = false;
            for t in &denied_tuples {
                let Arguments::Bpf {
                    cmd,
                    prog_type,
                    attach_type,
                    ..
                } = &t.args
                else {
                    continue;
                };
                // runc asks which device programs are attached first and, refused, gives up
                // on its device filter before it loads one: the query says as much.
                if *cmd == 16 && attach_type.as_deref() == Some("cgroup_device") {
                    device_filter = true;
                    continue;
                }
                match (*cmd, prog_type.as_deref()) {
                    (5, Some("cgroup_device")) => device_filter = true,
                    // runc's eBPF library probes for BPF_PROG_ATTACH with a constant
                    // cgroup_skb program, which the handler loads (and never attaches).
                    (5, Some("cgroup_skb")) => {}
                    // What a runtime does with the program it loaded, once that was refused.
                    (c, _) if c != 5 && handlers::BPF_DEVICE_COMMANDS.contains(&(c as u32)) => {}
                    (5, Some(other)) => report.denied.push(Denied {
                        syscall: m.name.clone(),
                        calls: t.calls,
                        reason: format!(
                            "bpf program type {other}: only cgroup device programs can be loaded for a container"
                        ),
                    }),
                    (_, _) => report.denied.push(Denied {
                        syscall: m.name.clone(),
                        calls: t.calls,
                        reason: format!(
                            "{}: only the device-filter commands of a container runtime are emulated",
                            crate::syscalls::decode::bpf_cmd_name(*cmd)
                        ),
                    }),
                }
            }
            if !device_filter {
                return rules;
            }
            why = format!(
                "{why}: the workload runs a container runtime whose device filter (a cgroup device program) the kernel refused"
            );
        }
        HandlerKind::Sched => {
            // What was refused: the policies (with their priorities) and nice values the
            // handler must grant for the workload to get what it asked for.
            let mut policies: BTreeSet<String> = ["other".to_owned()].into();
            let (mut rt_max, mut nice_min): (u32, i32) = (0, 0);
            let mut realtime_unknown = false;
            for t in &denied_tuples {
                let Arguments::Sched {
                    policy,
                    priority,
                    which,
                    nice,
                } = &t.args
                else {
                    continue;
                };
                let refuse = |report: &mut Report, reason: String| {
                    report.denied.push(Denied {
                        syscall: m.name.clone(),
                        calls: t.calls,
                        reason,
                    })
                };
                if let Some(w) = which {
                    if w != "process" {
                        refuse(report, format!("setpriority of a whole {w}: it reaches processes of other containers, never granted"));
                        continue;
                    }
                }
                if let Some(n) = nice {
                    nice_min = nice_min.min(*n);
                }
                match policy.as_deref() {
                    None => {}
                    Some(p @ ("other" | "batch" | "idle")) => {
                        policies.insert(p.to_owned());
                    }
                    Some(p @ ("fifo" | "rr")) => match priority {
                        Some(prio @ 1..=99) => {
                            policies.insert(p.to_owned());
                            rt_max = rt_max.max(*prio);
                        }
                        _ => realtime_unknown = true,
                    },
                    Some(p) => refuse(
                        report,
                        format!("scheduling policy {p} is never granted (deadline needs admission control the host must do)"),
                    ),
                }
            }
            if realtime_unknown && rt_max == 0 {
                report.denied.push(Denied {
                    syscall: m.name.clone(),
                    calls: m.privilege_failures(),
                    reason: "a realtime policy was asked for without a priority auditor could read (sched_setattr); add fifo or rr and rt_max to the handler's params by hand".into(),
                });
            }
            if rt_max > 0 {
                report.notes.push(format!(
                    "{}: realtime priority up to {rt_max} granted; on kernels with CONFIG_RT_GROUP_SCHED the container's cpu cgroup also needs an RT budget (cpu.rt_runtime_us)",
                    m.name
                ));
            }
            params.insert("policies".into(), ParamValue::strings(policies));
            params.insert("nice_min".into(), ParamValue::Int(i64::from(nice_min)));
            params.insert("rt_max".into(), ParamValue::Int(i64::from(rt_max)));
        }
    }
    let notify = Action::Notify(Notify {
        handler: Some(spec.name().to_owned()),
        params,
    });
    let cfg = match &notify {
        Action::Notify(n) => spec.config(&n.params).ok(),
        _ => None,
    };
    let alternatives = cfg.map(|c| spec.narrowing(&m.name, &c)).unwrap_or_default();
    let provenance = m.provenance(of);
    if alternatives.is_empty() {
        let mut r = Rule::new([m.name.clone()], notify).with_comment(why);
        r.provenance = Some(provenance);
        // Calls that succeeded cannot be told apart by the filter: the handler serves them all.
        rules.retain(|r| r.action != Action::Allow);
        rules.push(r);
    } else {
        for (i, conds) in alternatives.into_iter().enumerate() {
            let mut r = Rule::new([m.name.clone()], notify.clone()).with_args(conds);
            if i == 0 {
                r = r.with_comment(why.clone());
                r.provenance = Some(provenance.clone());
            }
            rules.push(r);
        }
    }
    rules
}
