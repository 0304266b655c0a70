//! Keys, values and events exchanged through maps and the ring buffer.

use core::mem::size_of;

/// Key of [`crate::names::MAP_EXE_CALLS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SysKey {
    /// Executable id ([`crate::hash::exe_id`]); 0 before the workload's first exec.
    pub exe: u32,
    pub nr: u16,
    /// One of [`crate::abi`].
    pub abi: u8,
    pub _pad: u8,
    /// The thread's group ([`crate::slot::group`]).
    pub group: u32,
}
const _: () = assert!(size_of::<SysKey>() == 12);

/// Value of [`crate::names::MAP_CALLS`] (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SysStat {
    pub count: u64,
    /// `bpf_ktime_get_boot_ns` of the first call on this CPU.
    pub first_seen_ns: u64,
}
const _: () = assert!(size_of::<SysStat>() == 16);

/// What an [`OutcomeKey`] counts.
pub mod outcome {
    /// The kernel returned an error in [-4095, -1] (other than a restart code).
    pub const FAILED: u8 = 1;
    /// The kernel returned an internal restart code (-512..=-516).
    pub const RESTART: u8 = 2;
    /// A seccomp filter (or a ptrace supervisor) refused the call before it ran: a `sys_exit`
    /// without a `sys_enter`.
    pub const REFUSED: u8 = 3;
}

/// Key of [`crate::names::MAP_OUTCOMES`]; the value is a per-CPU `u64` count.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OutcomeKey {
    pub exe: u32,
    pub nr: u16,
    pub abi: u8,
    /// One of [`outcome`].
    pub kind: u8,
    /// The positive error number (0 when a refusal returned no error).
    pub errno: u32,
    /// The thread's group ([`crate::slot::group`]).
    pub group: u32,
}
const _: () = assert!(size_of::<OutcomeKey>() == 16);

/// Ring buffer event kinds.
pub mod event {
    pub const EXEC: u16 = 1;
    pub const ARGS: u16 = 2;
    pub const REFUSED: u16 = 3;
}

/// Common head of every ring buffer event.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventHeader {
    /// One of [`event`].
    pub kind: u16,
    /// The thread's group ([`crate::slot::group`]).
    pub group: u16,
    pub tid: u32,
    pub tgid: u32,
    pub exe: u32,
    pub time_ns: u64,
}
const _: () = assert!(size_of::<EventHeader>() == 24);

pub const EXEC_NAME_LEN: usize = 256;

/// The first exec of an executable (by id): its file name as passed to `execve`, read at
/// `sched_process_exec` from kernel memory (`linux_binprm.filename`), so it cannot race.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Bytes of `filename` that were read, including the NUL; 0 if the read failed.
    pub len: u32,
    pub _pad: u32,
    pub filename: [u8; EXEC_NAME_LEN],
}
const _: () = assert!(size_of::<ExecEvent>() == 24 + 8 + EXEC_NAME_LEN);

pub const ARG_STR_LEN: usize = 256;
pub const ARG_STR_SLOTS: usize = 3;

/// Bits of [`ArgsEvent::flags`].
pub mod argflags {
    /// String slot N was read (bit N).
    pub const STR_OK: u32 = 1;
    /// String slot N could not be read (bit 4+N).
    pub const STR_FAILED: u32 = 1 << 4;
    /// The `mem` value was read.
    pub const MEM_OK: u32 = 1 << 8;
    /// The `mem` value could not be read.
    pub const MEM_FAILED: u32 = 1 << 9;
}

/// A distinct argument tuple of a syscall whose policy depends on its arguments, captured at
/// `sys_exit` (pointer arguments are most likely resident then).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArgsEvent {
    pub header: EventHeader,
    /// Key of this tuple in [`crate::names::MAP_ARGS_SEEN`], which holds its call count.
    pub hash: u64,
    pub nr: u16,
    pub abi: u8,
    pub _pad: u8,
    /// [`argflags`].
    pub flags: u32,
    /// The return value.
    pub ret: i64,
    /// Argument registers; those not in the spec's scalar mask are zero.
    pub args: [u64; 6],
    /// The `u64` read from user memory (spec's `mem` argument).
    pub mem: u64,
    /// Length read into each string slot, including the NUL.
    pub str_len: [u32; ARG_STR_SLOTS],
    pub _pad2: u32,
    pub strs: [[u8; ARG_STR_LEN]; ARG_STR_SLOTS],
}
const _: () = assert!(size_of::<ArgsEvent>() == 24 + 8 + 8 + 8 + 48 + 8 + 16 + 3 * ARG_STR_LEN);

/// One call a seccomp filter (or ptrace supervisor) refused, sent only when
/// [`Settings::emit_refusals`] is set (enforcement's audit log).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusedEvent {
    pub header: EventHeader,
    pub nr: u16,
    pub abi: u8,
    pub _pad: u8,
    /// The positive error number returned (0 if none).
    pub errno: u32,
}
const _: () = assert!(size_of::<RefusedEvent>() == 32);

/// Observer settings (a global set before loading).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// Non-zero: emit a [`RefusedEvent`] for every refused call.
    pub emit_refusals: u32,
    /// Number of groups the per-group arrays hold (0 is read as 1): [`crate::names::MAP_CALLS`],
    /// [`crate::names::MAP_ARG_READ_FAILS`] and [`crate::names::MAP_COUNTERS`] hold one table
    /// per group, group after group.
    pub groups: u32,
    /// Non-zero: an untracked task that execs in a cgroup v2 whose id is a key of
    /// [`crate::names::MAP_CGROUP_GROUPS`] is adopted into that group (`auditor daemon`; checked
    /// at exec only, so that untracked syscalls pay nothing more).
    pub cgroup_groups: u32,
    /// Non-zero: an untracked task that execs inside a mount namespace whose inode number is a
    /// key of [`crate::names::MAP_MNTNS_GROUPS`] is adopted into that group (containers without
    /// a cgroup v2 of their own: `runc exec`/`crun exec` processes join their namespaces).
    pub mntns_groups: u32,
    /// Non-zero: the syscall hooks take the thread id from a per-CPU memo rather than a helper
    /// call (the eBPF crate's `maps::current_tid`). Zero on PREEMPT_RT, where a program runs
    /// with only migration disabled, so another thread's could interleave with a memo update.
    pub tid_memo: u32,
}
const _: () = assert!(size_of::<Settings>() == 20);

/// Kernel structure offsets, read by user space from `/sys/kernel/btf/vmlinux` (aya's Rust eBPF
/// has no CO-RE relocations) and set as a global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    /// `task_struct.thread_info.status` (x86).
    pub task_ti_status: u32,
    pub bprm_filename: u32,
    /// `kernel.pid_max` when loaded: the size of the tasks array.
    pub pid_max: u32,
    /// `task_struct.nsproxy`.
    pub task_nsproxy: u32,
    /// `nsproxy.mnt_ns`.
    pub nsproxy_mnt_ns: u32,
    /// `mnt_namespace.ns.inum` (the namespace's inode number, as /proc/PID/ns/mnt shows it).
    pub mnt_ns_inum: u32,
}
const _: () = assert!(size_of::<Offsets>() == 32);

/// Which cgroup v2 subtree is tracked (`enabled` = 0: none).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CgroupFilter {
    /// The cgroup id (the directory's inode number on cgroup2).
    pub id: u64,
    /// Depth below the cgroup2 root (`bpf_get_current_ancestor_cgroup_id` level).
    pub level: u32,
    pub enabled: u32,
}
const _: () = assert!(size_of::<CgroupFilter>() == 16);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, contain only integers and have no implicit padding
    // (sizes asserted above), so every byte pattern is a valid value.
    unsafe impl aya::Pod for SysKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SysStat {}
    // SAFETY: as above.
    unsafe impl aya::Pod for OutcomeKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Offsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for CgroupFilter {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Settings {}
}
