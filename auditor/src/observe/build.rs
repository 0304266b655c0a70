//! Turning what the kernel side recorded into an [`Observation`]. Pure: no I/O, no clocks.

use crate::syscalls::Abi;
use std::collections::{BTreeMap, HashMap};

use auditor_common::{counters, outcome, ArgsEvent};

use super::args::{abi_from_id, decode};
use super::model::*;
use crate::bpf::Snapshot;
use crate::syscalls;

/// Distinct argument tuples kept per syscall; more are counted in `arguments_overflow`.
pub const MAX_TUPLES_PER_SYSCALL: usize = 256;

/// The counters that mean something was not recorded.
pub const LOSS_COUNTERS: &[u32] = &[
    counters::EXE_CALLS_FULL,
    counters::OUTCOMES_FULL,
    counters::RINGBUF_LOST_EXEC,
    counters::RINGBUF_LOST_ARGS,
    counters::ARGS_TABLE_FULL,
    counters::EXES_TABLE_FULL,
    counters::TID_OUT_OF_RANGE,
    counters::NR_OUT_OF_RANGE,
    counters::EXEC_NAME_FAILED,
    counters::FORK_READ_FAILED,
    counters::COMPAT_READ_FAILED,
    counters::RINGBUF_LOST_REFUSED,
];

/// Syscalls whose return value is not a status (sigreturn restores the interrupted context's
/// register, which may look like an error): their "failures" are not recorded.
pub const NO_STATUS: &[&str] = &["rt_sigreturn", "sigreturn"];

/// Everything gathered during a run.
#[derive(Debug, Default)]
pub struct Collected {
    pub snapshot: Snapshot,
    /// Executable id -> path, from exec events and from tasks tracked while running.
    pub exe_names: HashMap<u32, String>,
    /// Executables of tasks that were already running when tracking began (execs = 1 each).
    pub initial_exes: Vec<u32>,
    pub args_events: Vec<ArgsEvent>,
    /// Ring buffer records that did not decode.
    pub malformed_events: u64,
    /// `CLOCK_BOOTTIME` at the start of learning, in ns.
    pub start_boot_ns: u64,
    /// Threads tracked by user space at the start.
    pub initial_threads: u64,
}

/// Facts about the run that are not in the maps.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub host: Host,
    pub target: Target,
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
}

/// The executable name of a container's calls before the workload's first execve.
pub const RUNTIME_INIT: &str = "(runtime init, before the workload's execve)";

/// Name of the executable with id `id`.
pub fn exe_name(c: &Collected, target: &Target, id: u32) -> String {
    if id == 0 {
        return match target {
            Target::Command { .. } => "(launcher, before exec)".into(),
            Target::Container { .. } => RUNTIME_INIT.into(),
            _ => "(unknown: running before tracking)".into(),
        };
    }
    c.exe_names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| format!("(executable {id:08x}, name lost)"))
}

fn syscall_name(abi: Abi, nr: u32) -> String {
    syscalls::name(abi, nr)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{abi}_unknown_{nr}"))
}

fn errno_label(errno: u32) -> String {
    if errno == 0 {
        return "none".into();
    }
    syscalls::errno_name(errno)
        .map(str::to_string)
        .unwrap_or_else(|| format!("E{errno}"))
}

/// Now on CLOCK_BOOTTIME, in ns (the clock of the kernel's event times); 0 if unreadable.
pub fn boot_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// This host's kernel release and architecture, for an observation.
pub fn host() -> Host {
    let u = nix::sys::utsname::uname().ok();
    Host {
        kernel: u
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        arch: u
            .as_ref()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default(),
        node: node_name(u.as_ref()),
    }
}

/// `NODE_NAME` (a DaemonSet sets it from `spec.nodeName`) or the host name.
fn node_name(u: Option<&nix::sys::utsname::UtsName>) -> Option<String> {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty() && n.len() <= 253)
        .or_else(|| u.map(|u| u.nodename().to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
}

pub fn build(c: &Collected, run: RunInfo) -> Observation {
    let mut by_call: BTreeMap<(Abi, u32), SyscallObservation> = BTreeMap::new();
    let ensure = |m: &mut BTreeMap<(Abi, u32), SyscallObservation>, abi: Abi, nr: u32| {
        m.entry((abi, nr)).or_insert_with(|| SyscallObservation {
            name: syscall_name(abi, nr),
            abi,
            nr,
            count: 0,
            first_seen_ms: f64::INFINITY,
            failures: BTreeMap::new(),
            restarts: BTreeMap::new(),
            refused: BTreeMap::new(),
            executables: BTreeMap::new(),
            refused_executables: BTreeMap::new(),
            arguments: Vec::new(),
            arguments_overflow: 0,
            argument_read_failures: 0,
        });
    };

    for (abi_id, nr, per_cpu) in &c.snapshot.calls {
        let Some(abi) = abi_from_id(*abi_id) else {
            continue;
        };
        let nr = u32::from(*nr);
        let count: u64 = per_cpu.iter().map(|s| s.count).sum();
        if count == 0 {
            continue;
        }
        let first = per_cpu
            .iter()
            .filter(|s| s.count > 0 && s.first_seen_ns > 0)
            .map(|s| s.first_seen_ns)
            .min()
            .unwrap_or(c.start_boot_ns);
        let first_ms = first.saturating_sub(c.start_boot_ns) as f64 / 1e6;
        ensure(&mut by_call, abi, nr);
        if let Some(s) = by_call.get_mut(&(abi, nr)) {
            s.count += count;
            s.first_seen_ms = s.first_seen_ms.min(first_ms);
        }
    }
    for (key, n) in &c.snapshot.exe_calls {
        let Some(abi) = abi_from_id(key.abi) else {
            continue;
        };
        if *n == 0 {
            continue;
        }
        let nr = u32::from(key.nr);
        ensure(&mut by_call, abi, nr);
        if let Some(s) = by_call.get_mut(&(abi, nr)) {
            *s.executables
                .entry(exe_name(c, &run.target, key.exe))
                .or_default() += n;
        }
    }

    for (key, n) in &c.snapshot.outcomes {
        let Some(abi) = abi_from_id(key.abi) else {
            continue;
        };
        let nr = u32::from(key.nr);
        if *n == 0 {
            continue;
        }
        if key.kind != outcome::REFUSED && NO_STATUS.contains(&syscall_name(abi, nr).as_str()) {
            continue;
        }
        ensure(&mut by_call, abi, nr);
        if let Some(s) = by_call.get_mut(&(abi, nr)) {
            let label = errno_label(key.errno);
            let map = match key.kind {
                outcome::FAILED => &mut s.failures,
                outcome::RESTART => &mut s.restarts,
                outcome::REFUSED => &mut s.refused,
                _ => continue,
            };
            *map.entry(label).or_default() += n;
            if key.kind == outcome::REFUSED {
                *s.refused_executables
                    .entry(exe_name(c, &run.target, key.exe))
                    .or_default() += n;
            }
        }
    }

    for &(idx, n) in &c.snapshot.arg_read_fails {
        let abi_id = (idx / u32::from(auditor_common::abi::MAX_NR)) as u8;
        let nr = idx % u32::from(auditor_common::abi::MAX_NR);
        let Some(abi) = abi_from_id(abi_id) else {
            continue;
        };
        ensure(&mut by_call, abi, nr);
        if let Some(s) = by_call.get_mut(&(abi, nr)) {
            s.argument_read_failures += n;
        }
    }

    // Argument tuples: decode, merge identical decodings, bound.
    let mut tuples: BTreeMap<(Abi, u32), Vec<ArgumentTuple>> = BTreeMap::new();
    for ev in &c.args_events {
        let Some(abi) = abi_from_id(ev.abi) else {
            continue;
        };
        let nr = u32::from(ev.nr);
        let name = syscall_name(abi, nr);
        let Some(args) = decode(&name, ev) else {
            continue;
        };
        let calls = c
            .snapshot
            .args_seen
            .get(&ev.hash)
            .copied()
            .unwrap_or(1)
            .max(1);
        let result = if (-4095..=-1).contains(&ev.ret) {
            errno_label((-ev.ret) as u32)
        } else {
            "ok".into()
        };
        let list = tuples.entry((abi, nr)).or_default();
        match list
            .iter_mut()
            .find(|t| t.args == args && t.result == result)
        {
            Some(t) => t.calls += calls,
            None => list.push(ArgumentTuple {
                calls,
                result,
                args,
            }),
        }
    }
    for ((abi, nr), mut list) in tuples {
        ensure(&mut by_call, abi, nr);
        list.sort_by_key(|t| std::cmp::Reverse(t.calls));
        if let Some(s) = by_call.get_mut(&(abi, nr)) {
            if list.len() > MAX_TUPLES_PER_SYSCALL {
                s.arguments_overflow += (list.len() - MAX_TUPLES_PER_SYSCALL) as u64;
                list.truncate(MAX_TUPLES_PER_SYSCALL);
            }
            s.arguments = list;
        }
    }

    let mut syscalls: Vec<SyscallObservation> = by_call.into_values().collect();
    for s in &mut syscalls {
        if !s.first_seen_ms.is_finite() {
            s.first_seen_ms = 0.0;
        }
        s.executables.retain(|_, n| *n > 0);
        s.first_seen_ms = (s.first_seen_ms * 1000.0).round() / 1000.0;
    }
    syscalls.sort_by(|a, b| (a.abi, &a.name).cmp(&(b.abi, &b.name)));

    let mut exes: BTreeMap<String, u64> = BTreeMap::new();
    for (id, n) in &c.snapshot.exes_seen {
        *exes.entry(exe_name(c, &run.target, *id)).or_default() += n;
    }
    for id in &c.initial_exes {
        *exes.entry(exe_name(c, &run.target, *id)).or_default() += 1;
    }
    let executables = exes
        .into_iter()
        .map(|(path, execs)| Executable { path, execs })
        .collect();

    let mut loss = Loss::default();
    for &i in LOSS_COUNTERS {
        let v = c.snapshot.counter(i);
        if v > 0 {
            loss.counters
                .insert(counters::NAMES[i as usize].to_string(), v);
            loss.total += v;
        }
    }
    if c.malformed_events > 0 {
        loss.counters
            .insert("malformed_events".into(), c.malformed_events);
        loss.total += c.malformed_events;
    }

    Observation {
        format: FORMAT.into(),
        version: VERSION,
        auditor_version: env!("CARGO_PKG_VERSION").into(),
        host: run.host,
        target: run.target,
        started_at: run.started_at,
        ended_at: run.ended_at,
        duration_ms: run.duration_ms,
        syscalls,
        executables,
        processes: Processes {
            tracked_threads: c.initial_threads
                + c.snapshot.counter(counters::TASKS_FORKED)
                + c.snapshot.counter(counters::TASKS_ADOPTED),
            exited_threads: c.snapshot.counter(counters::TASKS_EXITED),
        },
        loss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditor_common::{abi, argflags, event, EventHeader, OutcomeKey, SysKey, SysStat};

    fn run() -> RunInfo {
        RunInfo {
            host: Host {
                kernel: "k".into(),
                arch: "x86_64".into(),
                node: None,
            },
            target: Target::Command {
                argv: vec!["w".into()],
            },
            started_at: "s".into(),
            ended_at: "e".into(),
            duration_ms: 1,
        }
    }

    fn args_event(nr: u16, ret: i64, hash: u64, path: &[u8]) -> ArgsEvent {
        let mut strs = [[0u8; auditor_common::ARG_STR_LEN]; auditor_common::ARG_STR_SLOTS];
        strs[0][..path.len()].copy_from_slice(path);
        ArgsEvent {
            header: EventHeader {
                kind: event::ARGS,
                group: 0,
                tid: 1,
                tgid: 1,
                exe: 7,
                time_ns: 0,
            },
            hash,
            nr,
            abi: abi::X86_64,
            _pad: 0,
            flags: argflags::STR_OK,
            ret,
            args: [(-100i64) as u64, 0, 0o20666, 0x0103, 0, 0],
            mem: 0,
            str_len: [path.len() as u32 + 1, 0, 0],
            _pad2: 0,
            strs,
        }
    }

    #[test]
    fn aggregates_counts_errors_refusals_and_arguments() {
        let mut c = Collected {
            start_boot_ns: 1_000_000,
            ..Default::default()
        };
        c.exe_names.insert(7, "/usr/bin/mknod".into());
        c.snapshot.counters = vec![0; counters::COUNT as usize];
        // read (0) on two CPUs; first seen is the minimum.
        c.snapshot.calls.push((
            abi::X86_64,
            0,
            vec![
                SysStat {
                    count: 3,
                    first_seen_ns: 3_000_000,
                },
                SysStat {
                    count: 2,
                    first_seen_ns: 2_000_000,
                },
            ],
        ));
        c.snapshot.exe_calls.push((
            SysKey {
                exe: 7,
                nr: 0,
                abi: abi::X86_64,
                _pad: 0,
                group: 0,
            },
            5,
        ));
        c.snapshot.calls.push((
            abi::X86_64,
            259,
            vec![SysStat {
                count: 2,
                first_seen_ns: 4_000_000,
            }],
        ));
        c.snapshot.exe_calls.push((
            SysKey {
                exe: 7,
                nr: 259,
                abi: abi::X86_64,
                _pad: 0,
                group: 0,
            },
            2,
        ));
        // i386 getpid (20) is not x86_64 writev (20).
        c.snapshot.calls.push((
            abi::I386,
            20,
            vec![SysStat {
                count: 1,
                first_seen_ns: 5_000_000,
            }],
        ));
        let ok = |kind, errno, n| {
            (
                OutcomeKey {
                    exe: 7,
                    nr: 259,
                    abi: abi::X86_64,
                    kind,
                    errno,
                    group: 0,
                },
                n,
            )
        };
        c.snapshot.outcomes.push(ok(outcome::FAILED, 1, 2));
        c.snapshot.outcomes.push((
            OutcomeKey {
                exe: 7,
                nr: 110,
                abi: abi::X86_64,
                kind: outcome::REFUSED,
                errno: 13,
                group: 0,
            },
            4,
        ));
        c.snapshot.outcomes.push((
            OutcomeKey {
                exe: 7,
                nr: 0,
                abi: abi::X86_64,
                kind: outcome::RESTART,
                errno: 512,
                group: 0,
            },
            1,
        ));
        // rt_sigreturn (15) "fails" with whatever the interrupted call returned: not recorded.
        c.snapshot.outcomes.push((
            OutcomeKey {
                exe: 7,
                nr: 15,
                abi: abi::X86_64,
                kind: outcome::FAILED,
                errno: 2,
                group: 0,
            },
            1,
        ));
        // Two events that decode to the same tuple merge; counts come from the kernel table.
        c.args_events.push(args_event(259, -1, 11, b"/dev/x"));
        c.args_events.push(args_event(259, -1, 12, b"/dev/x"));
        c.snapshot.args_seen.insert(11, 1);
        c.snapshot.args_seen.insert(12, 1);
        c.snapshot
            .arg_read_fails
            .push((auditor_common::argspec::index(abi::X86_64, 259), 3));
        c.snapshot.exes_seen.insert(7, 2);
        c.snapshot.counters[counters::RINGBUF_LOST_ARGS as usize] = 2;

        let obs = build(&c, run());
        let get = |abi: Abi, name: &str| {
            obs.syscalls
                .iter()
                .find(|s| s.abi == abi && s.name == name)
                .cloned()
        };
        let read = get(Abi::X86_64, "read").expect("read");
        assert_eq!(read.count, 5);
        assert_eq!(read.executables.get("/usr/bin/mknod"), Some(&5));
        assert_eq!(read.first_seen_ms, 1.0);
        assert_eq!(read.restarts.get("ERESTARTSYS"), Some(&1));
        assert!(read.failures.is_empty());
        let m = get(Abi::X86_64, "mknodat").expect("mknodat");
        assert_eq!(m.failures.get("EPERM"), Some(&2));
        assert_eq!(m.argument_read_failures, 3);
        assert_eq!(m.arguments.len(), 1, "identical decodings merge");
        assert_eq!(m.arguments[0].calls, 2);
        assert_eq!(m.arguments[0].result, "EPERM");
        assert!(
            matches!(&m.arguments[0].args, Arguments::Mknod { file_type, major: 1, minor: 3, .. } if file_type == "char")
        );
        let refused = get(Abi::X86_64, "getppid").expect("refused-only syscall listed");
        assert_eq!(refused.count, 0);
        assert_eq!(refused.refused.get("EACCES"), Some(&4));
        assert_eq!(refused.refused_executables.get("/usr/bin/mknod"), Some(&4));
        assert!(
            refused.executables.is_empty(),
            "refused calls are not calls that ran"
        );
        assert!(get(Abi::I386, "getpid").is_some());
        assert!(get(Abi::X86_64, "writev").is_none());
        assert!(get(Abi::X86_64, "rt_sigreturn").is_none_or(|s| s.failures.is_empty()));
        assert_eq!(
            obs.executables,
            vec![Executable {
                path: "/usr/bin/mknod".into(),
                execs: 2
            }]
        );
        assert_eq!(obs.loss.total, 2);
        assert_eq!(obs.loss.counters.get("ringbuf_lost_args"), Some(&2));
    }

    #[test]
    fn tuples_are_bounded_with_an_overflow_count() {
        let mut c = Collected::default();
        c.snapshot.counters = vec![0; counters::COUNT as usize];
        for i in 0..(MAX_TUPLES_PER_SYSCALL as u64 + 10) {
            let path = format!("/p{i}");
            c.args_events.push(args_event(259, 0, i, path.as_bytes()));
        }
        let obs = build(&c, run());
        let m = obs
            .syscalls
            .iter()
            .find(|s| s.name == "mknodat")
            .expect("mknodat");
        assert_eq!(m.arguments.len(), MAX_TUPLES_PER_SYSCALL);
        assert_eq!(m.arguments_overflow, 10);
    }
}
