//! `emulate-sched`: `sched_setscheduler`, `sched_setattr` and `setpriority` that the kernel
//! refuses in a user namespace (raising a priority needs CAP_SYS_NICE in the initial one), but
//! that stay within the policy's limits — the allowed policies, a nice floor, a realtime
//! priority ceiling — applied by auditor to threads of the caller's own container only, as
//! LXD's `security.syscalls.intercept.sched_setscheduler` does.
//!
//! - The request (policy, priority, nice; `struct sched_param` or `struct sched_attr` from the
//!   caller's memory) is copied once, then `ID_VALID` is checked; the decision and the call
//!   use only the copy. `SCHED_DEADLINE`, utilisation clamps, `SCHED_FLAG_KEEP_*` and any
//!   flag but `SCHED_RESET_ON_FORK` are refused; `setpriority` only for `PRIO_PROCESS`
//!   (`PRIO_PGRP` and `PRIO_USER` name processes by group and user, across containers).
//! - The target is the calling thread (pid 0), or the thread with that id in the caller's pid
//!   namespace — found among the host's threads by their `NSpid`, never taken as a host pid.
//!   A caller in the host's pid namespace may name only threads of its own process.
//! - These calls have no pidfd variant: the target is pinned with a pidfd
//!   (`PIDFD_THREAD`, 6.9) whose identity is checked again after it is opened, and the pidfd
//!   is asked after the call whether the thread still lives (so the id the call used was
//!   still the checked thread's).
//! - A realtime policy also needs an RT budget in the target's cpu cgroup on kernels with
//!   `CONFIG_RT_GROUP_SCHED` (`cpu.rt_runtime_us`, 0 in engines' cgroups): the refusal says so.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::FileExt as _;

use crate::broker::target::Target;
use crate::broker::{Outcome, Verdict};
use crate::policy::handlers::{SchedLimits, SchedPolicy};
use crate::seccomp::notify::{NotifyFd, Response, SeccompNotif};

/// `SCHED_RESET_ON_FORK` (or'ed into sched_setscheduler's policy) and `SCHED_FLAG_RESET_ON_FORK`.
const SCHED_RESET_ON_FORK: u32 = 0x4000_0000;
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;
/// `SCHED_ATTR_SIZE_VER0`/`VER1` (include/uapi/linux/sched/types.h).
const SCHED_ATTR_SIZE_VER0: u32 = 48;
const SCHED_ATTR_SIZE_VER1: u32 = 56;
/// `PRIO_PROCESS`.
const PRIO_PROCESS: u64 = 0;
/// `PIDFD_THREAD` (6.9): a pidfd for a thread, not only a thread-group leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// What the caller asked for, copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The thread id in the caller's pid namespace (0: the caller).
    pub who: i32,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sched_setscheduler`/`sched_setattr`: a policy with its priority (realtime) or nice.
    Policy {
        policy: u32,
        priority: u32,
        /// `sched_setattr` only: the nice value it sets with the policy.
        nice: Option<i32>,
        reset_on_fork: bool,
    },
    /// `setpriority(PRIO_PROCESS, who, nice)`.
    Nice(i32),
}

/// `struct sched_attr` up to VER0 (what auditor passes on).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Why a request is refused, with the errno the kernel would give.
type Refusal = (i32, String);

/// Read the request from the registers and the caller's memory.
pub fn read_request(syscall: &str, a: &[u64; 6], mem: &std::fs::File) -> Result<Request, Refusal> {
    let who = a[0] as u32 as i32;
    let read = |addr: u64, buf: &mut [u8]| -> Result<(), Refusal> {
        if addr == 0 {
            return Err((libc::EINVAL, "a null pointer".into()));
        }
        mem.read_exact_at(buf, addr)
            .map_err(|_| (libc::EFAULT, "cannot read the caller's memory".into()))
    };
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    match syscall {
        "sched_setscheduler" => {
            let raw = a[1] as u32;
            let mut buf = [0u8; 4];
            read(a[2], &mut buf)?;
            Ok(Request {
                who,
                kind: Kind::Policy {
                    policy: raw & !SCHED_RESET_ON_FORK,
                    priority: u32_at(&buf, 0),
                    nice: None,
                    reset_on_fork: raw & SCHED_RESET_ON_FORK != 0,
                },
            })
        }
        "sched_setattr" => {
            if a[2] as u32 != 0 {
                return Err((libc::EINVAL, "sched_setattr flags must be 0".into()));
            }
            let mut size = [0u8; 4];
            read(a[1], &mut size)?;
            let size = match u32::from_ne_bytes(size) {
                0 => SCHED_ATTR_SIZE_VER0,
                s if s < SCHED_ATTR_SIZE_VER0 => {
                    return Err((libc::EINVAL, format!("sched_attr size {s}")))
                }
                s => s,
            };
            // Utilisation clamps (VER1's fields) and anything newer are never granted: read
            // what auditor understands, and refuse a larger structure whose tail is not zero.
            let mut buf = vec![0u8; size.min(SCHED_ATTR_SIZE_VER1 + 64) as usize];
            if size as usize > buf.len() {
                return Err((libc::E2BIG, format!("sched_attr size {size}")));
            }
            read(a[1], &mut buf)?;
            if buf[SCHED_ATTR_SIZE_VER0 as usize..].iter().any(|&b| b != 0) {
                return Err((libc::EPERM, "utilisation clamps are not granted".into()));
            }
            let flags = u64::from_ne_bytes(buf[8..16].try_into().unwrap_or_default());
            if flags & !SCHED_FLAG_RESET_ON_FORK != 0 {
                return Err((
                    libc::EPERM,
                    format!(
                        "sched_attr flags {flags:#x} (only SCHED_FLAG_RESET_ON_FORK is granted)"
                    ),
                ));
            }
            Ok(Request {
                who,
                kind: Kind::Policy {
                    policy: u32_at(&buf, 4),
                    priority: u32_at(&buf, 20),
                    nice: Some(u32_at(&buf, 16) as i32),
                    reset_on_fork: flags & SCHED_FLAG_RESET_ON_FORK != 0,
                },
            })
        }
        "setpriority" => {
            if a[0] as u32 as u64 != PRIO_PROCESS {
                return Err((
                    libc::EPERM,
                    "only PRIO_PROCESS: PRIO_PGRP and PRIO_USER reach processes of other containers"
                        .into(),
                ));
            }
            Ok(Request {
                who: a[1] as u32 as i32,
                // The kernel clamps the value to the nice range.
                kind: Kind::Nice((a[2] as u32 as i32).clamp(-20, 19)),
            })
        }
        other => Err((
            libc::ENOSYS,
            format!("{other} is not served by emulate-sched"),
        )),
    }
}

/// Whether the limits grant the request (the errno the kernel would give, and why, if not).
pub fn judge(r: &Request, limits: &SchedLimits) -> Result<(), Refusal> {
    if r.who < 0 {
        // As the kernel answers: sched_* calls refuse a negative id, setpriority finds no one.
        let errno = match r.kind {
            Kind::Nice(_) => libc::ESRCH,
            Kind::Policy { .. } => libc::EINVAL,
        };
        return Err((errno, "a negative thread id".into()));
    }
    let nice_ok = |nice: i32, errno: i32| -> Result<(), Refusal> {
        if nice < limits.nice_min {
            return Err((
                errno,
                format!(
                    "nice {nice} is below the policy's floor {}",
                    limits.nice_min
                ),
            ));
        }
        Ok(())
    };
    match r.kind {
        Kind::Nice(n) => nice_ok(n, libc::EACCES),
        Kind::Policy {
            policy,
            priority,
            nice,
            ..
        } => {
            let Some(p) = SchedPolicy::from_number(policy) else {
                return Err((
                    if policy == 6 {
                        libc::EPERM
                    } else {
                        libc::EINVAL
                    },
                    format!("policy {policy} is not one emulate-sched grants"),
                ));
            };
            if !limits.policies.contains(&p) {
                return Err((
                    libc::EPERM,
                    format!("policy {} is not among the policy's", p.name()),
                ));
            }
            if p.realtime() {
                if !(1..=99).contains(&priority) {
                    return Err((libc::EINVAL, format!("realtime priority {priority}")));
                }
                if priority > limits.rt_max {
                    return Err((
                        libc::EPERM,
                        format!(
                            "realtime priority {priority} is above the policy's ceiling {}",
                            limits.rt_max
                        ),
                    ));
                }
            } else if priority != 0 {
                return Err((
                    libc::EINVAL,
                    format!("priority {priority} with policy {}", p.name()),
                ));
            }
            match nice {
                Some(n) if !p.realtime() => nice_ok(n.clamp(-20, 19), libc::EPERM),
                _ => Ok(()),
            }
        }
    }
}

/// Serve one notification. `None`: the caller went away; nobody to answer.
pub fn handle(
    fd: &NotifyFd,
    n: &SeccompNotif,
    syscall: &str,
    limits: &SchedLimits,
) -> Option<Outcome> {
    let mut outcome = Outcome::new(Verdict::Denied, Response::Errno(libc::EPERM));
    let deny = |outcome: &mut Outcome, (errno, why): Refusal| {
        outcome.verdict = Verdict::Denied;
        outcome.response = Response::Errno(errno);
        outcome.detail("why", why);
    };
    // Opened before ID_VALID: bound to the caller even if its pid is reused now.
    let opened = Target::of_caller(n.pid).and_then(|t| {
        let mem = t.mem()?;
        let status = t.read_text("status")?;
        let pidns = t.ns_id("ns/pid")?;
        Ok((mem, status, pidns))
    });
    let copied = opened
        .as_ref()
        .map_err(|e| (e.errno(), "cannot reach the caller".to_owned()))
        .and_then(|(mem, _, _)| read_request(syscall, &n.data.args, mem));
    if !fd.id_valid(n.id) {
        return None;
    }
    let (request, status, caller_ns) = match (copied, opened) {
        (Ok(r), Ok((_, status, ns))) => (r, status, ns),
        (Err(refusal), _) => {
            deny(&mut outcome, refusal);
            return Some(outcome);
        }
        (_, Err(e)) => {
            deny(&mut outcome, (e.errno(), e.to_string()));
            return Some(outcome);
        }
    };
    describe(&request, &mut outcome);
    if let Err(refusal) = judge(&request, limits) {
        deny(&mut outcome, refusal);
        return Some(outcome);
    }
    let caller = match Caller::parse(&status, caller_ns) {
        Some(c) => c,
        None => {
            deny(
                &mut outcome,
                (libc::ESRCH, "the caller's status has no NSpid".into()),
            );
            return Some(outcome);
        }
    };
    let (tid, pidfd) = match resolve(&caller, request.who) {
        Ok(t) => t,
        Err(refusal) => {
            deny(&mut outcome, refusal);
            return Some(outcome);
        }
    };
    outcome.detail("host_tid", tid.to_string());
    match apply(tid, &request) {
        Ok(()) => {
            // The id the call used was the checked thread's only if that thread still lives.
            if !alive(&pidfd) {
                deny(
                    &mut outcome,
                    (libc::ESRCH, "the target exited during the call".into()),
                );
                return Some(outcome);
            }
            outcome.verdict = Verdict::Emulated;
            outcome.response = Response::Value(0);
        }
        Err(errno) => {
            let mut why = format!(
                "the kernel refused it: {}",
                std::io::Error::from_raw_os_error(errno)
            );
            if errno == libc::EPERM && is_realtime(&request) {
                if let Some(budget) = rt_budget(tid) {
                    why = budget;
                }
            }
            deny(&mut outcome, (errno, why));
        }
    }
    Some(outcome)
}

fn is_realtime(r: &Request) -> bool {
    matches!(r.kind, Kind::Policy { policy, .. } if SchedPolicy::from_number(policy).is_some_and(|p| p.realtime()))
}

/// The request in the audit record.
fn describe(r: &Request, outcome: &mut Outcome) {
    outcome.detail("who", r.who.to_string());
    match r.kind {
        Kind::Nice(n) => outcome.detail("nice", n.to_string()),
        Kind::Policy {
            policy,
            priority,
            nice,
            reset_on_fork,
        } => {
            outcome.detail(
                "policy",
                crate::syscalls::decode::sched_policy_name(u64::from(policy)),
            );
            outcome.detail("priority", priority.to_string());
            if let Some(n) = nice {
                outcome.detail("nice", n.to_string());
            }
            if reset_on_fork {
                outcome.detail("reset_on_fork", "true".into());
            }
        }
    }
}

/// The caller as its status shows it.
struct Caller {
    tgid: u32,
    /// Its own tid, in the host's and in its own pid namespace.
    host_tid: u32,
    /// Its pid namespace (`ns/pid`'s device and inode).
    pidns: (u64, u64),
    /// Whether that is the host's (auditor's) pid namespace.
    host_ns: bool,
}

impl Caller {
    fn parse(status: &str, pidns: (u64, u64)) -> Option<Caller> {
        let own = std::fs::metadata("/proc/self/ns/pid").ok()?;
        use std::os::unix::fs::MetadataExt as _;
        Some(Caller {
            tgid: field_u32(status, "Tgid:")?,
            // NSpid's first id is the one in the pid namespace of the procfs read (the host's).
            host_tid: field_u32(status, "NSpid:")?,
            pidns,
            host_ns: (own.dev(), own.ino()) == pidns,
        })
    }
}

/// The host tid of thread `who` of the caller's container, pinned by a pidfd.
fn resolve(caller: &Caller, who: i32) -> Result<(u32, OwnedFd), Refusal> {
    let not_found = || {
        (
            libc::ESRCH,
            format!("no thread {who} in the caller's pid namespace"),
        )
    };
    let tid = if who == 0 {
        caller.host_tid
    } else if caller.host_ns {
        // No container of its own: only the caller's own process.
        let who = who as u32;
        let tgid = status_of(who).and_then(|s| field_u32(&s, "Tgid:"));
        if tgid != Some(caller.tgid) {
            return Err((
                libc::EPERM,
                format!("thread {who} is not the caller's (a caller in the host's pid namespace may set only its own threads)"),
            ));
        }
        who
    } else {
        find_in_ns(caller.pidns, who as u32).ok_or_else(not_found)?
    };
    // SAFETY: pidfd_open with plain integer arguments; the result is a new fd we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if r < 0 {
        return Err(not_found());
    }
    // SAFETY: just returned by the kernel, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(r as i32) };
    // The tid could have been reused between the lookup and the pidfd: check it again now
    // that the pidfd holds it.
    let same = if who == 0 || caller.host_ns {
        status_of(tid).and_then(|s| field_u32(&s, "Tgid:")) == Some(caller.tgid)
    } else {
        identity(tid).is_some_and(|(ns, inner)| ns == caller.pidns && inner == who as u32)
    };
    if !same || !alive(&pidfd) {
        return Err(not_found());
    }
    Ok((tid, pidfd))
}

fn status_of(tid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{tid}/status")).ok()
}

fn field_u32(status: &str, key: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A host thread's pid namespace and its id there (the last `NSpid` field).
fn identity(tid: u32) -> Option<((u64, u64), u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let ns = std::fs::metadata(format!("/proc/{tid}/ns/pid")).ok()?;
    let status = status_of(tid)?;
    let inner = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()?;
    Some(((ns.dev(), ns.ino()), inner))
}

/// The host tid of the thread that is `who` in pid namespace `ns`: every host thread is
/// looked at (a sched call is rare; the host's thread count bounds it).
fn find_in_ns(ns: (u64, u64), who: u32) -> Option<u32> {
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if identity(tid) == Some((ns, who)) {
                return Some(tid);
            }
        }
    }
    None
}

/// Whether the thread a pidfd holds still lives.
fn alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 (no signal: a liveness check) on a live pidfd.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ) == 0
    }
}

/// Make the call on the host thread `tid` with auditor's privileges, from the copy.
fn apply(tid: u32, r: &Request) -> Result<(), i32> {
    let rc = match r.kind {
        // SAFETY: setpriority with integer arguments.
        Kind::Nice(n) => unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, n) },
        Kind::Policy {
            policy,
            priority,
            nice,
            reset_on_fork,
        } => {
            let attr = SchedAttr {
                size: SCHED_ATTR_SIZE_VER0,
                sched_policy: policy,
                sched_flags: if reset_on_fork {
                    SCHED_FLAG_RESET_ON_FORK
                } else {
                    0
                },
                sched_nice: nice.unwrap_or(0).clamp(-20, 19),
                sched_priority: priority,
                ..SchedAttr::default()
            };
            // sched_setscheduler leaves the nice value as it is; sched_setattr sets it.
            // SAFETY: sched_setscheduler reads a live sched_param; sched_setattr a live
            // sched_attr of the size it says.
            unsafe {
                if nice.is_some() {
                    libc::syscall(libc::SYS_sched_setattr, tid, &attr as *const SchedAttr, 0) as i32
                } else {
                    let param = libc::sched_param {
                        sched_priority: priority as i32,
                    };
                    let p = if reset_on_fork {
                        (policy | SCHED_RESET_ON_FORK) as i32
                    } else {
                        policy as i32
                    };
                    libc::sched_setscheduler(tid as libc::pid_t, p, &param)
                }
            }
        }
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(())
}

/// When a realtime policy was refused with EPERM: the cpu cgroup without an RT budget, if
/// that is the cause.
fn rt_budget(tid: u32) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{tid}/cgroup")).ok()?;
    let (controllers, path) = crate::host::cgroup::v1_line(&cgroups, "cpu")?;
    let file = crate::host::cgroup::dir_of(
        &std::path::Path::new("/sys/fs/cgroup").join(controllers),
        path,
    )?
    .join("cpu.rt_runtime_us");
    let budget: i64 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    (budget == 0).then(|| {
        format!(
            "the container's cpu cgroup has no realtime budget ({} is 0; this kernel has CONFIG_RT_GROUP_SCHED): give the cgroup cpu.rt_runtime_us > 0",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SchedLimits {
        SchedLimits {
            policies: [SchedPolicy::Other, SchedPolicy::Fifo]
                .into_iter()
                .collect(),
            nice_min: -5,
            rt_max: 10,
        }
    }

    fn policy(policy: u32, priority: u32) -> Request {
        Request {
            who: 0,
            kind: Kind::Policy {
                policy,
                priority,
                nice: None,
                reset_on_fork: false,
            },
        }
    }

    #[test]
    fn limits_decide_policies_priorities_and_nice() {
        let l = limits();
        assert_eq!(judge(&policy(1, 10), &l), Ok(()));
        assert_eq!(judge(&policy(1, 11), &l).unwrap_err().0, libc::EPERM);
        assert_eq!(judge(&policy(1, 0), &l).unwrap_err().0, libc::EINVAL);
        // rr is not among them; deadline never; an unknown number is invalid.
        assert_eq!(judge(&policy(2, 5), &l).unwrap_err().0, libc::EPERM);
        assert_eq!(judge(&policy(6, 0), &l).unwrap_err().0, libc::EPERM);
        assert_eq!(judge(&policy(42, 0), &l).unwrap_err().0, libc::EINVAL);
        assert_eq!(judge(&policy(0, 0), &l), Ok(()));
        assert_eq!(judge(&policy(0, 3), &l).unwrap_err().0, libc::EINVAL);
        let nice = |n| Request {
            who: 0,
            kind: Kind::Nice(n),
        };
        assert_eq!(judge(&nice(-5), &l), Ok(()));
        assert_eq!(judge(&nice(-6), &l).unwrap_err().0, libc::EACCES);
        let mut with_nice = policy(0, 0);
        with_nice.kind = Kind::Policy {
            policy: 0,
            priority: 0,
            nice: Some(-10),
            reset_on_fork: false,
        };
        assert_eq!(judge(&with_nice, &l).unwrap_err().0, libc::EPERM);
        let mut negative = nice(0);
        negative.who = -1;
        assert_eq!(judge(&negative, &l).unwrap_err().0, libc::ESRCH);
        let mut negative = policy(0, 0);
        negative.who = -1;
        assert_eq!(judge(&negative, &l).unwrap_err().0, libc::EINVAL);
    }

    #[test]
    fn requests_are_read_from_registers_and_memory() {
        use std::io::Write as _;
        let mut f = tempfile::tempfile().unwrap();
        // sched_param at 8; sched_attr (VER0, fifo, prio 7, reset-on-fork) at 64; one with a
        // utilisation clamp (VER1) at 128.
        let mut mem = vec![0u8; 256];
        mem[8..12].copy_from_slice(&5u32.to_ne_bytes());
        mem[64..68].copy_from_slice(&48u32.to_ne_bytes());
        mem[68..72].copy_from_slice(&1u32.to_ne_bytes());
        mem[72..80].copy_from_slice(&1u64.to_ne_bytes());
        mem[84..88].copy_from_slice(&7u32.to_ne_bytes());
        mem[128..132].copy_from_slice(&56u32.to_ne_bytes());
        mem[128 + 48..128 + 52].copy_from_slice(&512u32.to_ne_bytes());
        f.write_all(&mem).unwrap();
        let r = read_request("sched_setscheduler", &[3, 1 | 0x4000_0000, 8, 0, 0, 0], &f).unwrap();
        assert_eq!(
            r,
            Request {
                who: 3,
                kind: Kind::Policy {
                    policy: 1,
                    priority: 5,
                    nice: None,
                    reset_on_fork: true
                }
            }
        );
        let r = read_request("sched_setattr", &[0, 64, 0, 0, 0, 0], &f).unwrap();
        assert_eq!(
            r.kind,
            Kind::Policy {
                policy: 1,
                priority: 7,
                nice: Some(0),
                reset_on_fork: true
            }
        );
        assert_eq!(
            read_request("sched_setattr", &[0, 128, 0, 0, 0, 0], &f)
                .unwrap_err()
                .0,
            libc::EPERM
        );
        assert_eq!(
            read_request("sched_setattr", &[0, 64, 1, 0, 0, 0], &f)
                .unwrap_err()
                .0,
            libc::EINVAL
        );
        assert_eq!(
            read_request("sched_setscheduler", &[0, 1, 0, 0, 0, 0], &f)
                .unwrap_err()
                .0,
            libc::EINVAL
        );
        // setpriority: PRIO_PGRP and PRIO_USER are refused; the value is clamped.
        assert_eq!(
            read_request("setpriority", &[0, 4, (-40i32) as u32 as u64, 0, 0, 0], &f).unwrap(),
            Request {
                who: 4,
                kind: Kind::Nice(-20)
            }
        );
        for which in [1, 2] {
            assert_eq!(
                read_request("setpriority", &[which, 0, 0, 0, 0, 0], &f)
                    .unwrap_err()
                    .0,
                libc::EPERM
            );
        }
    }
}
