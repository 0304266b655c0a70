//! The one registry of notify handlers, shared by `generate` (which emits notify rules only for
//! handlers listed here), `check`, `compile` and the broker (which runs them).
//!
//! A seccomp filter compares only the six scalar argument registers. Each handler therefore
//! declares two things: the scalar narrowing the filter can do itself (so that calls the handler
//! would refuse anyway never leave the kernel), and the parameters the broker checks on its own
//! copy of the pointer arguments (paths, file-system types, attribute names).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::model::{Condition, Op, ParamValue, Params};

/// Errors in a notify rule's handler or parameters.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unknown notify handler `{name}`{}", super::model::fix_suffix(.fix))]
    UnknownHandler { name: String, fix: String },
    #[error("handler `{handler}` does not serve `{syscall}` (it serves {serves})")]
    WrongSyscall {
        handler: String,
        syscall: String,
        serves: String,
    },
    #[error("no notify handler serves `{syscall}`{}", super::model::fix_suffix(.fix))]
    NoHandlerFor { syscall: String, fix: String },
    #[error("handler `{handler}` has no parameter `{param}`{}", super::model::fix_suffix(.fix))]
    UnknownParam {
        handler: String,
        param: String,
        fix: String,
    },
    #[error("handler `{handler}`, parameter `{param}`: {message}")]
    BadParam {
        handler: String,
        param: String,
        message: String,
    },
}

/// S_IFMT and the file types of mknod's mode argument (include/uapi/linux/stat.h).
pub const S_IFMT: u64 = libc::S_IFMT as u64;
pub const S_IFCHR: u64 = libc::S_IFCHR as u64;
pub const S_IFBLK: u64 = libc::S_IFBLK as u64;

/// Syscalls a notify rule must never cover. A runtime loads the filter in the container's init
/// and then hands the listener fd to the supervisor over a socket or pipe: if one of these were
/// notified, that hand-over would wait for a supervisor that has not received the fd yet (runc
/// and crun refuse such profiles; youki validates the same before building a filter). The exit
/// and signal-return paths are listed because a notified exit can never be answered safely.
pub const FD_HANDOVER_SYSCALLS: &[&str] = &[
    "write",
    "writev",
    "pwrite64",
    "send",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "read",
    "readv",
    "recvfrom",
    "recvmsg",
    "close",
    "futex",
    "seccomp",
    "exit",
    "exit_group",
    "rt_sigreturn",
];

/// A character device the mknod handler may create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Device {
    pub major: u32,
    pub minor: u32,
}

impl Device {
    /// `c MAJOR:MINOR`. Block devices are never emulated: a block device node gives raw access to
    /// a disk, which no container should get through a notify rule.
    pub fn parse(s: &str) -> Result<Device, String> {
        let s = s.trim();
        let rest = match s.split_once(char::is_whitespace) {
            Some(("c", rest)) => rest.trim(),
            Some(("b", _)) => return Err(format!("`{s}`: block devices are never emulated")),
            _ => {
                return Err(format!(
                    "`{s}` is not a device; write `c MAJOR:MINOR`, e.g. \"c 1:3\""
                ))
            }
        };
        let (ma, mi) = rest
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: write the device number as MAJOR:MINOR"))?;
        let major = ma.parse().map_err(|_| format!("`{s}`: bad major number"))?;
        let minor = mi.parse().map_err(|_| format!("`{s}`: bad minor number"))?;
        Ok(Device { major, minor })
    }

    /// The kernel's `new_encode_dev`, which is what mknodat's 32-bit `dev` argument holds
    /// (glibc's `makedev` agrees for majors below 4096 and minors below 2^20).
    pub fn encoded(self) -> u64 {
        let (major, minor) = (u64::from(self.major), u64::from(self.minor));
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c {}:{}", self.major, self.minor)
    }
}

/// Character devices that are safe in any container: the set LXD and Incus let an
/// unprivileged container create through their mknod interception — what OCI runtimes create
/// in every container anyway, plus the overlayfs whiteout. None gives access to hardware, to
/// kernel memory, or to another container.
pub const SAFE_DEVICES: &[Device] = &[
    // 0:0, the overlayfs whiteout: marks a deleted file in an upper layer (what a runtime in
    // the container writes when it unpacks image layers); no driver behind it.
    Device { major: 0, minor: 0 },
    // 1:3 null, 1:5 zero, 1:7 full: discard or produce zeros; no state, no hardware.
    Device { major: 1, minor: 3 },
    Device { major: 1, minor: 5 },
    Device { major: 1, minor: 7 },
    // 1:8 random, 1:9 urandom: the kernel's random generator, readable by anyone.
    Device { major: 1, minor: 8 },
    Device { major: 1, minor: 9 },
    // 5:0 tty: the opener's own controlling terminal, nothing else.
    Device { major: 5, minor: 0 },
    // 5:1 console: opens the console of the container (its devpts/console bind), as the
    // runtime set it up; the host console only if the runtime left it there.
    Device { major: 5, minor: 1 },
    // 5:2 ptmx: allocates a pty in the devpts instance it is resolved against (the
    // container's own, mounted newinstance by every runtime).
    Device { major: 5, minor: 2 },
];

/// A handler's validated configuration, what the broker acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerConfig {
    Mknod {
        devices: BTreeSet<Device>,
    },
    Mount {
        fstypes: BTreeSet<String>,
        sources: BTreeSet<String>,
        /// Idmap the mount through the caller's user namespace.
        shift: bool,
        /// btrfs is mounted only with `allow_btrfs = true`: it assembles a file system from
        /// every device registered with the image's fsid, so a crafted image can pull in the
        /// host's disks.
        allow_btrfs: bool,
        /// File-system types served by a FUSE implementation from the container's root file
        /// system instead of the host kernel's driver (`fuse = { ext4 = "fuse2fs" }`).
        fuse: BTreeMap<String, String>,
    },
    Setxattr {
        prefixes: Vec<String>,
    },
    Sysinfo,
    Sched(SchedLimits),
    BpfDevices,
    FinitModule {
        /// Module names the container may have the host load (its own copy).
        modules: BTreeSet<String>,
    },
}

/// A scheduling policy `emulate-sched` may grant (`sched_setscheduler`'s numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchedPolicy {
    Other,
    Fifo,
    Rr,
    Batch,
    Idle,
}

impl SchedPolicy {
    pub const ALL: [SchedPolicy; 5] = [
        SchedPolicy::Other,
        SchedPolicy::Fifo,
        SchedPolicy::Rr,
        SchedPolicy::Batch,
        SchedPolicy::Idle,
    ];

    /// The name in a policy (`policies = ["other", "fifo"]`).
    pub fn name(self) -> &'static str {
        match self {
            SchedPolicy::Other => "other",
            SchedPolicy::Fifo => "fifo",
            SchedPolicy::Rr => "rr",
            SchedPolicy::Batch => "batch",
            SchedPolicy::Idle => "idle",
        }
    }

    /// `SCHED_*` (include/uapi/linux/sched.h).
    pub fn number(self) -> u32 {
        match self {
            SchedPolicy::Other => 0,
            SchedPolicy::Fifo => 1,
            SchedPolicy::Rr => 2,
            SchedPolicy::Batch => 3,
            SchedPolicy::Idle => 5,
        }
    }

    pub fn from_number(n: u32) -> Option<SchedPolicy> {
        SchedPolicy::ALL.into_iter().find(|p| p.number() == n)
    }

    pub fn realtime(self) -> bool {
        matches!(self, SchedPolicy::Fifo | SchedPolicy::Rr)
    }
}

/// What `emulate-sched` grants: the policies, the lowest nice value, the highest realtime
/// priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedLimits {
    pub policies: BTreeSet<SchedPolicy>,
    /// The lowest nice value (the highest priority) a call may set: -20..=19.
    pub nice_min: i32,
    /// The highest realtime priority (1..=99); 0 when no realtime policy is allowed.
    pub rt_max: u32,
}

/// The `bpf(2)` commands `emulate-bpf-devices` serves: `BPF_PROG_LOAD`, `BPF_PROG_ATTACH`,
/// `BPF_PROG_DETACH`, `BPF_PROG_GET_FD_BY_ID`, `BPF_PROG_QUERY`, `BPF_LINK_CREATE`.
pub const BPF_DEVICE_COMMANDS: [u32; 6] = [5, 8, 9, 13, 16, 28];

/// The notify handlers auditor has: the registry's key, and what code matches on (the broker's
/// dispatch table is over [`HandlerConfig`], one variant per kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HandlerKind {
    Mknod,
    Mount,
    Setxattr,
    Sysinfo,
    Sched,
    BpfDevices,
    FinitModule,
}

impl HandlerKind {
    /// The handler's name in a policy (`handler = "emulate-mknod"`).
    pub fn name(self) -> &'static str {
        match self {
            HandlerKind::Mknod => "emulate-mknod",
            HandlerKind::Mount => "emulate-mount",
            HandlerKind::Setxattr => "emulate-setxattr",
            HandlerKind::Sysinfo => "sysinfo",
            HandlerKind::Sched => "emulate-sched",
            HandlerKind::BpfDevices => "emulate-bpf-devices",
            HandlerKind::FinitModule => "emulate-finit-module",
        }
    }
}

impl fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl HandlerConfig {
    /// The handler this configuration is for.
    pub fn kind(&self) -> HandlerKind {
        match self {
            HandlerConfig::Mknod { .. } => HandlerKind::Mknod,
            HandlerConfig::Mount { .. } => HandlerKind::Mount,
            HandlerConfig::Setxattr { .. } => HandlerKind::Setxattr,
            HandlerConfig::Sysinfo => HandlerKind::Sysinfo,
            HandlerConfig::Sched(_) => HandlerKind::Sched,
            HandlerConfig::BpfDevices => HandlerKind::BpfDevices,
            HandlerConfig::FinitModule { .. } => HandlerKind::FinitModule,
        }
    }
}

/// One handler in the registry.
#[derive(Debug)]
pub struct HandlerSpec {
    pub kind: HandlerKind,
    /// Syscalls it serves.
    pub syscalls: &'static [&'static str],
    pub summary: &'static str,
    /// Parameters it takes.
    pub params: &'static [&'static str],
    /// Emitted by `generate` only when asked for (sysinfo never fails, so no observation calls
    /// for it).
    pub only_on_request: bool,
    /// Syscalls to answer with an errno beside a notify rule of this handler, so that libc or
    /// the tool falls back to the syscall the handler serves, or so that what the handler did
    /// cannot be undone: (syscall, errno, why — the rule's comment).
    pub companions: &'static [(&'static str, u32, &'static str)],
}

const REGISTRY: &[HandlerSpec] = &[
    HandlerSpec {
        kind: HandlerKind::Mknod,
        syscalls: &["mknod", "mknodat"],
        summary: "creates the allowed character devices on the caller's behalf",
        params: &["devices"],
        only_on_request: false,
        companions: &[],
    },
    HandlerSpec {
        kind: HandlerKind::Mount,
        syscalls: &["mount"],
        summary: "mounts the allowed file-system types from the allowed sources, nosuid and nodev",
        params: &["fstypes", "sources", "shift", "allow_btrfs", "fuse"],
        only_on_request: false,
        // The new mount API cannot be judged (its arguments arrive over several calls): answer
        // fsopen with ENOSYS so libmount falls back to mount(2).
        // mount_setattr could clear the forced nosuid/nodev of a mount auditor made (it is not
        // locked the way inherited mounts are): refused.
        companions: &[
            (
                "fsopen",
                super::model::ENOSYS,
                "answered with ENOSYS so that the caller falls back to mount",
            ),
            (
                "mount_setattr",
                super::model::EPERM,
                "refused: it could clear the nosuid/nodev that emulate-mount forces on its mounts",
            ),
        ],
    },
    HandlerSpec {
        kind: HandlerKind::Setxattr,
        syscalls: &["setxattr", "lsetxattr", "fsetxattr"],
        summary: "sets extended attributes whose names start with an allowed prefix",
        params: &["prefixes"],
        only_on_request: false,
        companions: &[],
    },
    HandlerSpec {
        kind: HandlerKind::Sched,
        syscalls: &["sched_setscheduler", "sched_setattr", "setpriority"],
        summary: "sets scheduling policies, nice values and realtime priorities within the policy's limits, on threads of the caller's own container",
        params: &["policies", "nice_min", "rt_max"],
        only_on_request: false,
        companions: &[],
    },
    HandlerSpec {
        kind: HandlerKind::BpfDevices,
        syscalls: &["bpf"],
        summary: "loads cgroup device programs and attaches them (always with BPF_F_ALLOW_MULTI) to cgroups below the caller's own, so that a container runtime inside the container filters its containers' devices",
        params: &[],
        only_on_request: false,
        companions: &[],
    },
    HandlerSpec {
        kind: HandlerKind::FinitModule,
        syscalls: &["finit_module"],
        summary: "has the host load its own copy of an allowed kernel module (never the caller's file)",
        params: &["modules"],
        only_on_request: false,
        companions: &[],
    },
    HandlerSpec {
        kind: HandlerKind::Sysinfo,
        syscalls: &["sysinfo"],
        summary: "reports the workload's cgroup memory and CPU limits instead of the host's",
        params: &[],
        only_on_request: true,
        companions: &[],
    },
];

/// Syscalls that would let a caller do what a handler judges without going through it: the new
/// mount API beside `emulate-mount` (its arguments arrive over several calls, and
/// `mount_setattr`/`move_mount`/`open_tree` could clear or move what the handler forced), the
/// `*xattrat` family (Linux 6.13) beside `emulate-setxattr`. Whenever a policy has a notify
/// rule served by one of these handlers, compiling or exporting it refuses them with ENOSYS
/// (so that libmount and libc fall back to the call the handler serves), whatever the policy
/// says of them — see [`harden`].
pub const FORCED_REFUSALS: &[(HandlerKind, &[&str])] = &[
    (
        HandlerKind::Mount,
        &[
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "open_tree_attr",
        ],
    ),
    (
        HandlerKind::Setxattr,
        &["setxattrat", "getxattrat", "listxattrat", "removexattrat"],
    ),
];

/// The comment of the rule [`harden`] adds.
pub const FORCED_COMMENT: &str = "forced by auditor: these calls would bypass a notify handler of this policy (the new mount API beside emulate-mount, the *xattrat calls beside emulate-setxattr); ENOSYS makes callers fall back to the call the handler judges";

/// The syscalls `policy` must refuse because of the handlers its notify rules use.
pub fn forced_refusals(policy: &super::model::Policy) -> Vec<&'static str> {
    let used: BTreeSet<HandlerKind> =
        policy
            .rules
            .iter()
            .filter_map(|r| match &r.action {
                super::model::Action::Notify(n) => Some(r.names.iter().filter_map(move |name| {
                    resolve(n.handler.as_deref(), name).ok().map(|h| h.kind)
                })),
                _ => None,
            })
            .flatten()
            .collect();
    FORCED_REFUSALS
        .iter()
        .filter(|(h, _)| used.contains(h))
        .flat_map(|(_, names)| names.iter().copied())
        .collect()
}

/// `policy` with the [`forced_refusals`] it needs: each forced syscall that a rule would let
/// through (allow, log, notify) or that the default action would let through is taken out of
/// those rules and refused with ENOSYS by one rule added at the end. Rules that already
/// refuse it (errno, kill, trap) are kept as they are. Returns the policy and the names it had
/// to force (empty: `policy` is returned unchanged).
pub fn harden(policy: &super::model::Policy) -> (super::model::Policy, Vec<&'static str>) {
    use super::model::{Action, Rule};
    let lets_through = |a: &Action| matches!(a, Action::Allow | Action::Log | Action::Notify(_));
    let mut p = policy.clone();
    let mut forced = Vec::new();
    for name in forced_refusals(policy) {
        let named: Vec<&Rule> = p
            .rules
            .iter()
            .filter(|r| r.names.iter().any(|n| n == name))
            .collect();
        let needs = if named.is_empty() {
            lets_through(&p.default_action)
        } else {
            // A conditional refusal leaves the other argument values to the next rule or the
            // default: only an unconditional refusal settles it.
            named.iter().any(|r| lets_through(&r.action))
                || (named.iter().all(|r| !r.args.is_empty()) && lets_through(&p.default_action))
        };
        if !needs {
            continue;
        }
        for r in &mut p.rules {
            if lets_through(&r.action) || !r.args.is_empty() {
                r.names.retain(|n| n != name);
            }
        }
        forced.push(name);
    }
    if forced.is_empty() {
        return (policy.clone(), forced);
    }
    p.rules.retain(|r| !r.names.is_empty());
    p.rules.push(
        Rule::new(forced.iter().copied(), Action::Errno(super::model::ENOSYS))
            .with_comment(FORCED_COMMENT),
    );
    (p, forced)
}

/// What a FUSE server needs that a container's learned policy may not allow: the calls
/// fuse2fs 1.47 (libfuse 2.9) made mounting, serving reads, writes, directory and link
/// changes and unmounting in a user namespace (learned with `auditor learn`), and the few a
/// libfuse server makes on paths that run did not take (signals, splice, truncation, sync).
pub const FUSE_SERVER_SYSCALLS: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "chdir",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "dup2",
    "dup3",
    "exit",
    "exit_group",
    "fallocate",
    "fcntl",
    "fdatasync",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getpid",
    "getrandom",
    "gettid",
    "getuid",
    "ioctl",
    "lseek",
    "madvise",
    "mmap",
    "mount",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "pipe2",
    "poll",
    "prctl",
    "pread64",
    "prlimit64",
    "pwrite64",
    "read",
    "readlink",
    "readv",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "set_robust_list",
    "set_tid_address",
    "setsid",
    "sigaltstack",
    "splice",
    "statfs",
    "tgkill",
    "umount2",
    "uname",
    "wait4",
    "write",
    "writev",
];

/// The policy a FUSE server auditor starts for a container (emulate-mount's `fuse`) runs
/// under: the container's own, with no broker behind it. Its own `mount` of the FUSE file
/// system is let through to the kernel, which judges it with the server's privileges in the
/// container's user namespace (as any mount the container makes itself); every other call the
/// container's policy would have a handler emulate is refused with EPERM (nothing serves the
/// server's calls), and an interactive default becomes EPERM. The calls of
/// [`FUSE_SERVER_SYSCALLS`] that no rule of the container's names are allowed (a policy
/// learned from the workload alone never saw the server run); what a rule names keeps its
/// decision.
pub fn for_fuse_server(policy: &super::model::Policy) -> super::model::Policy {
    use super::model::{Action, Rule, EPERM};
    let mut p = policy.clone();
    let named: BTreeSet<&str> = policy
        .rules
        .iter()
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let server: Vec<&str> = FUSE_SERVER_SYSCALLS
        .iter()
        .copied()
        .filter(|n| !named.contains(n))
        .collect();
    if !server.is_empty() && !matches!(p.default_action, Action::Allow) {
        p.rules.push(
            Rule::new(server, Action::Allow)
                .with_comment("what a FUSE server needs (auditor's list for fuse servers)"),
        );
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(p.rules.len());
    for r in p.rules.drain(..) {
        if !r.action.is_notify() {
            rules.push(r);
            continue;
        }
        let (mount, other): (Vec<String>, Vec<String>) =
            r.names.iter().cloned().partition(|n| n == "mount");
        if !mount.is_empty() {
            let mut m = r.clone();
            m.names = mount;
            m.action = Action::Allow;
            rules.push(m);
        }
        if !other.is_empty() {
            let mut o = r;
            o.names = other;
            o.action = Action::Errno(EPERM);
            rules.push(o);
        }
    }
    p.rules = rules;
    if p.default_action.is_notify() {
        p.default_action = Action::Errno(EPERM);
    }
    p.listener_path = None;
    p.listener_metadata = None;
    p
}

/// Every handler.
pub fn all() -> &'static [HandlerSpec] {
    REGISTRY
}

/// A handler by name.
pub fn get(name: &str) -> Option<&'static HandlerSpec> {
    REGISTRY.iter().find(|h| h.name() == name)
}

/// The handler that serves `syscall` by default (what an imported `SCMP_ACT_NOTIFY` gets).
pub fn for_syscall(syscall: &str) -> Option<&'static HandlerSpec> {
    REGISTRY.iter().find(|h| h.syscalls.contains(&syscall))
}

/// A handler by name, with a did-you-mean when unknown.
pub fn lookup(name: &str) -> Result<&'static HandlerSpec, HandlerError> {
    get(name).ok_or_else(|| {
        let names: Vec<&str> = REGISTRY.iter().map(HandlerSpec::name).collect();
        HandlerError::UnknownHandler {
            name: name.to_owned(),
            fix: match super::model::suggest(name, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known handlers: {}", names.join(", ")),
            },
        }
    })
}

/// The handler a notify rule for `syscall` resolves to: the named one, which must serve it, or
/// the registry's default for the syscall.
pub fn resolve(handler: Option<&str>, syscall: &str) -> Result<&'static HandlerSpec, HandlerError> {
    match handler {
        Some(name) => {
            let spec = lookup(name)?;
            if spec.syscalls.contains(&syscall) {
                Ok(spec)
            } else {
                Err(HandlerError::WrongSyscall {
                    handler: name.to_owned(),
                    syscall: syscall.to_owned(),
                    serves: spec.syscalls.join(", "),
                })
            }
        }
        None => for_syscall(syscall).ok_or_else(|| HandlerError::NoHandlerFor {
            syscall: syscall.to_owned(),
            fix:
                "notify is only useful where auditor's broker can decide; allow or deny it instead"
                    .to_owned(),
        }),
    }
}

/// What the broker needs for a notify rule on `syscall`: the handler and its validated
/// configuration (an imported `SCMP_ACT_NOTIFY` gets the registry's default handler and
/// parameters).
pub fn config_for(
    notify: &super::model::Notify,
    syscall: &str,
) -> Result<(&'static HandlerSpec, HandlerConfig), HandlerError> {
    let spec = resolve(notify.handler.as_deref(), syscall)?;
    Ok((spec, spec.config(&notify.params)?))
}

impl HandlerSpec {
    /// The handler's name in a policy.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Parameters a notify rule gets when it gives none.
    pub fn default_params(&self) -> Params {
        let mut p = Params::new();
        match self.kind {
            HandlerKind::Mknod => {
                p.insert(
                    "devices".into(),
                    ParamValue::strings(SAFE_DEVICES.iter().map(|d| d.to_string())),
                );
            }
            HandlerKind::Setxattr => {
                p.insert("prefixes".into(), ParamValue::strings(["trusted.overlay."]));
            }
            HandlerKind::Sched => {
                p.insert(
                    "policies".into(),
                    ParamValue::strings(["other", "batch", "idle"]),
                );
                p.insert("nice_min".into(), ParamValue::Int(0));
                p.insert("rt_max".into(), ParamValue::Int(0));
            }
            // mount allows nothing until told which file systems and sources.
            HandlerKind::FinitModule => {
                p.insert("modules".into(), ParamValue::strings(Vec::<String>::new()));
            }
            HandlerKind::Mount | HandlerKind::Sysinfo | HandlerKind::BpfDevices => {}
        }
        p
    }

    /// Validate a rule's parameters (missing ones take their defaults).
    pub fn config(&self, params: &Params) -> Result<HandlerConfig, HandlerError> {
        for key in params.keys() {
            if !self.params.contains(&key.as_str()) {
                return Err(HandlerError::UnknownParam {
                    handler: self.name().to_owned(),
                    param: key.clone(),
                    fix: match super::model::suggest(key, self.params) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if self.params.is_empty() => "it takes none".to_owned(),
                        None => format!("it takes: {}", self.params.join(", ")),
                    },
                });
            }
        }
        let defaults = self.default_params();
        let get = |k: &str| params.get(k).or_else(|| defaults.get(k));
        let strings = |k: &str| -> Result<Vec<String>, HandlerError> {
            match get(k) {
                None => Ok(Vec::new()),
                Some(ParamValue::List(l)) => l
                    .iter()
                    .map(|v| match v {
                        ParamValue::Str(s) => Ok(s.clone()),
                        _ => Err(self.bad(k, "must be a list of strings")),
                    })
                    .collect(),
                Some(_) => Err(self.bad(k, "must be a list of strings")),
            }
        };
        Ok(match self.kind {
            HandlerKind::Mknod => {
                let mut devices = BTreeSet::new();
                for s in strings("devices")? {
                    devices.insert(Device::parse(&s).map_err(|m| self.bad("devices", &m))?);
                }
                HandlerConfig::Mknod { devices }
            }
            HandlerKind::Mount => HandlerConfig::Mount {
                fstypes: strings("fstypes")?.into_iter().collect(),
                sources: strings("sources")?.into_iter().collect(),
                shift: match get("shift") {
                    None => false,
                    Some(ParamValue::Bool(b)) => *b,
                    Some(_) => return Err(self.bad("shift", "must be true or false")),
                },
                allow_btrfs: match get("allow_btrfs") {
                    None => false,
                    Some(ParamValue::Bool(b)) => *b,
                    Some(_) => return Err(self.bad("allow_btrfs", "must be true or false")),
                },
                fuse: self.fuse_map(get("fuse"), &strings("fstypes")?)?,
            },
            HandlerKind::Setxattr => {
                let prefixes = strings("prefixes")?;
                if let Some(p) = prefixes.iter().find(|p| !p.contains('.')) {
                    return Err(self.bad(
                        "prefixes",
                        &format!(
                            "`{p}` is not an attribute name prefix such as \"trusted.overlay.\""
                        ),
                    ));
                }
                HandlerConfig::Setxattr { prefixes }
            }
            HandlerKind::Sysinfo => HandlerConfig::Sysinfo,
            HandlerKind::BpfDevices => HandlerConfig::BpfDevices,
            HandlerKind::FinitModule => {
                let modules = strings("modules")?;
                if let Some(m) = modules.iter().find(|m| {
                    m.is_empty()
                        || !m
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }) {
                    return Err(self.bad(
                        "modules",
                        &format!("`{m}` is not a module name (e.g. \"overlay\", \"nf_tables\")"),
                    ));
                }
                HandlerConfig::FinitModule {
                    modules: modules.into_iter().collect(),
                }
            }
            HandlerKind::Sched => {
                let mut policies = BTreeSet::new();
                for name in strings("policies")? {
                    let p = SchedPolicy::ALL
                        .into_iter()
                        .find(|p| p.name() == name)
                        .ok_or_else(|| {
                            self.bad(
                                "policies",
                                &format!(
                                    "unknown policy `{name}` (use other, batch, idle, fifo or rr; deadline is never granted)"
                                ),
                            )
                        })?;
                    policies.insert(p);
                }
                let int =
                    |k: &str, range: std::ops::RangeInclusive<i64>| -> Result<i64, HandlerError> {
                        match get(k) {
                            Some(ParamValue::Int(i)) if range.contains(i) => Ok(*i),
                            _ => Err(self.bad(
                                k,
                                &format!(
                                    "must be a whole number from {} to {}",
                                    range.start(),
                                    range.end()
                                ),
                            )),
                        }
                    };
                let nice_min = int("nice_min", -20..=19)? as i32;
                let rt_max = int("rt_max", 0..=99)? as u32;
                let realtime = policies.iter().any(|p| p.realtime());
                if realtime && rt_max == 0 {
                    return Err(self.bad(
                        "rt_max",
                        "fifo or rr is allowed: give the highest realtime priority to grant (1-99)",
                    ));
                }
                HandlerConfig::Sched(SchedLimits {
                    policies,
                    nice_min,
                    rt_max: if realtime { rt_max } else { 0 },
                })
            }
        })
    }

    /// emulate-mount's `fuse` table: file-system type → FUSE program (a name looked up in the
    /// container's /usr/sbin, /usr/bin, /sbin and /bin, or an absolute path in its root).
    fn fuse_map(
        &self,
        v: Option<&ParamValue>,
        fstypes: &[String],
    ) -> Result<BTreeMap<String, String>, HandlerError> {
        let Some(v) = v else {
            return Ok(BTreeMap::new());
        };
        let ParamValue::Table(t) = v else {
            return Err(self.bad(
                "fuse",
                "must be a table of file-system type = FUSE program, e.g. { ext4 = \"fuse2fs\" }",
            ));
        };
        let mut out = BTreeMap::new();
        for (fstype, prog) in t {
            let ParamValue::Str(prog) = prog else {
                return Err(self.bad("fuse", &format!("`{fstype}`: the program must be a string")));
            };
            let name_ok = |s: &str| {
                !s.is_empty()
                    && s.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+')
                    })
            };
            if !name_ok(fstype) || fstype.starts_with("fuse") || fstype == "overlay" {
                return Err(self.bad(
                    "fuse",
                    &format!(
                        "`{fstype}` is not a file-system type a FUSE program can stand in for"
                    ),
                ));
            }
            let path_ok = if let Some(rest) = prog.strip_prefix('/') {
                rest.split('/').all(|c| name_ok(c) && c != "." && c != "..")
            } else {
                name_ok(prog) && prog != "." && prog != ".."
            };
            if !path_ok {
                return Err(self.bad(
                    "fuse",
                    &format!("`{prog}` (for {fstype}): give a program name such as \"fuse2fs\" or an absolute path in the container"),
                ));
            }
            if fstypes.iter().any(|f| f == fstype) {
                return Err(self.bad(
                    "fuse",
                    &format!("`{fstype}` is also in fstypes: mount it either with the host's driver (fstypes) or through FUSE (fuse), not both"),
                ));
            }
            out.insert(fstype.clone(), prog.clone());
        }
        Ok(out)
    }

    fn bad(&self, param: &str, message: &str) -> HandlerError {
        HandlerError::BadParam {
            handler: self.name().to_owned(),
            param: param.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The scalar narrowing the filter does for `syscall` under `config`: a list of alternative
    /// condition sets (one notify rule each). Empty means one rule without conditions.
    pub fn narrowing(&self, syscall: &str, config: &HandlerConfig) -> Vec<Vec<Condition>> {
        match (syscall, config) {
            // mknod(path, mode, dev) / mknodat(dirfd, path, mode, dev): only character devices,
            // and only the allowed device numbers (dev is 32 bits in the kernel's ABI).
            ("mknod" | "mknodat", HandlerConfig::Mknod { devices }) => {
                let mode = if syscall == "mknod" { 1 } else { 2 };
                let is_chr = Condition {
                    index: mode,
                    op: Op::MaskedEq { mask: S_IFMT },
                    value: S_IFCHR,
                };
                devices
                    .iter()
                    .map(|d| {
                        vec![
                            is_chr,
                            Condition {
                                index: mode + 1,
                                op: Op::MaskedEq { mask: 0xffff_ffff },
                                value: d.encoded(),
                            },
                        ]
                    })
                    .collect()
            }
            // bpf(cmd, attr, size): only the commands the handler serves reach it; every
            // other command goes on to the next rule or the default action.
            ("bpf", HandlerConfig::BpfDevices) => BPF_DEVICE_COMMANDS
                .iter()
                .map(|cmd| {
                    vec![Condition {
                        index: 0,
                        op: Op::MaskedEq { mask: 0xffff_ffff },
                        value: u64::from(*cmd),
                    }]
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
