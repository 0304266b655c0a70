//! The observation file: what `auditor learn` saw, versioned and documented, so that later runs
//! can be merged and `auditor generate` can turn them into a policy.
//!
//! Format `auditor-observation`, version 1 (JSON). Field reference (also in README.md):
//! - `syscalls[]`: one entry per (ABI, syscall) the workload attempted.
//!   - `count`: calls that reached the kernel's syscall entry (`sys_enter`).
//!   - `failures`: calls the kernel failed, by errno name (a return in [-4095, -1]).
//!   - `restarts`: calls that returned an internal restart code (ERESTARTSYS … ERESTART_RESTARTBLOCK);
//!     the kernel restarts or turns these into EINTR, they are not failures of the call.
//!   - `refused`: calls an already installed seccomp filter (or a ptrace supervisor) refused before
//!     they ran, by the error returned (`"none"` when it returned no error). An allow rule fixes
//!     these; only emulation fixes `failures`.
//!   - `executables`: calls per executable path (as passed to execve); `refused_executables`:
//!     refused calls per executable.
//!   - `arguments`: distinct argument tuples for syscalls whose policy depends on arguments,
//!     with `arguments_overflow` tuples beyond the bound and `argument_read_failures` pointer
//!     arguments that could not be read (never recorded as a wrong value).
//! - `loss`: everything that could not be recorded; all zero in a complete observation.

use crate::syscalls::Abi;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "auditor-observation";
pub const VERSION: u32 = 1;

/// A complete observation file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    pub format: String,
    pub version: u32,
    pub auditor_version: String,
    pub host: Host,
    pub target: Target,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    /// Sorted by (abi, name).
    pub syscalls: Vec<SyscallObservation>,
    /// Executables the workload ran, sorted by path.
    pub executables: Vec<Executable>,
    pub processes: Processes,
    pub loss: Loss,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`.
    pub arch: String,
    /// The node: Kubernetes' node name when the agent is told it (`NODE_NAME`, from the
    /// downward API), else the host name. Absent in files of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Kubernetes' pod identity in a container target's labels, under the label names kubelet's
/// dockershim gave it.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// What was observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A command auditor started; counted from its execve.
    Command { argv: Vec<String> },
    /// A running process and its descendants from the start of tracking.
    Pid { pid: u32 },
    /// Every task in a cgroup v2 directory and its children.
    Cgroup { path: String },
    /// Several observations merged.
    Merged { inputs: u32 },
    /// An OCI container (`auditor daemon` through `auditor hook`, or `auditor learn
    /// --container`): calls before the workload's first execve are the runtime's own init and
    /// are listed under the executable `(runtime init, before the workload's execve)`.
    Container {
        id: String,
        /// `runc` or `crun` when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runtime: Option<String>,
        /// The container's cgroup v2 directory, when it was scoped by one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<String>,
        /// The engine that made it (docker, podman, containerd, cri-o), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
        /// The engine's name of it (Kubernetes: the container's name in its pod).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// The engine's labels, and Kubernetes' pod identity (`io.kubernetes.pod.name`,
        /// `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`,
        /// `io.kubernetes.container.name`).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        labels: BTreeMap<String, String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallObservation {
    pub name: String,
    pub abi: Abi,
    pub nr: u32,
    pub count: u64,
    /// Milliseconds from the start of learning to the first call.
    pub first_seen_ms: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restarts: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub executables: BTreeMap<String, u64>,
    /// Refused calls per executable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused_executables: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<ArgumentTuple>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arguments_overflow: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub argument_read_failures: u64,
}

impl SyscallObservation {
    /// Calls that failed in the kernel (not counting restarts or refusals).
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
    /// Calls refused by an existing filter.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// One distinct tuple of the arguments that matter for a syscall's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentTuple {
    /// Calls with exactly these arguments and this result.
    pub calls: u64,
    /// "ok", or the errno name the call failed with.
    pub result: String,
    pub args: Arguments,
}

/// Decoded arguments. Pointer arguments that could not be read are `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arguments {
    /// mknod / mknodat.
    Mknod {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dirfd: Option<i32>,
        path: Option<String>,
        /// "char", "block", "fifo", "socket" or "regular".
        file_type: String,
        /// Permission bits (mode & 0o7777).
        perm: u32,
        major: u32,
        minor: u32,
    },
    Mount {
        source: Option<String>,
        target: Option<String>,
        fstype: Option<String>,
        flags: u64,
        flag_names: Vec<String>,
    },
    Umount {
        target: Option<String>,
        flags: u64,
    },
    /// setxattr, lsetxattr, fsetxattr, setxattrat: the attribute name is what policy needs.
    Xattr {
        name: Option<String>,
        flags: u64,
    },
    Bpf {
        cmd: u64,
        cmd_name: String,
        /// `BPF_PROG_LOAD`'s program type (`cgroup_device`, …), read from its `bpf_attr`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prog_type: Option<String>,
        /// `BPF_PROG_QUERY`'s attach type (`cgroup_device`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attach_type: Option<String>,
    },
    Socket {
        domain: u64,
        domain_name: String,
        /// Type without SOCK_NONBLOCK/SOCK_CLOEXEC.
        socket_type: u64,
        type_name: String,
        protocol: u64,
    },
    /// clone, clone3, unshare, setns: the namespace (and other) flags.
    Namespaces {
        flags: u64,
        namespaces: Vec<String>,
    },
    Ioctl {
        /// The request, compared as 32 bits (the kernel ignores the upper half).
        request: u64,
    },
    Prctl {
        option: u64,
        option_name: String,
    },
    Personality {
        persona: u64,
    },
    /// `sched_setscheduler`, `sched_setattr` (policy, and the priority where it was read) and
    /// `setpriority` (which, nice).
    Sched {
        /// `other`, `fifo`, `rr`, `batch`, `idle`, `deadline`, or the number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        /// The realtime priority (`sched_setscheduler`'s `struct sched_param`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u32>,
        /// `setpriority`'s `which`: `process`, `pgrp`, `user`, or the number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        which: Option<String>,
        /// `setpriority`'s value, clamped to the nice range as the kernel does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nice: Option<i32>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executable {
    pub path: String,
    /// Times it was exec'd (or 1 for a process that was running when tracking began).
    pub execs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processes {
    /// Threads tracked in all (initial, forked, adopted from the cgroup).
    pub tracked_threads: u64,
    pub exited_threads: u64,
}

/// What could not be recorded. A complete observation has `total == 0`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    pub total: u64,
    /// Non-zero counters by name (see auditor-common `counters`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
