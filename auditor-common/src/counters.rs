//! Indices into the per-CPU [`crate::names::MAP_COUNTERS`] array: everything the kernel side
//! could not do is counted here, so that no loss is ever silent. Counted per group (see
//! [`crate::slot::group`]).

/// Syscalls counted for tracked threads.
pub const SYSCALLS: u32 = 0;
/// Threads that started being tracked through fork/clone.
pub const TASKS_FORKED: u32 = 1;
/// Tracked threads that exited.
pub const TASKS_EXITED: u32 = 2;
/// Threads adopted because they are in the target cgroup.
pub const TASKS_ADOPTED: u32 = 3;
/// [`crate::names::MAP_EXE_CALLS`] was full: a run of calls could not be attributed to its
/// executable (the per-syscall counts still have them).
pub const EXE_CALLS_FULL: u32 = 4;
/// [`crate::names::MAP_OUTCOMES`] was full: a failure or refusal could not be recorded.
pub const OUTCOMES_FULL: u32 = 5;
/// The ring buffer was full: an exec event was dropped.
pub const RINGBUF_LOST_EXEC: u32 = 6;
/// The ring buffer was full: an argument tuple was dropped.
pub const RINGBUF_LOST_ARGS: u32 = 7;
/// [`crate::names::MAP_ARGS_SEEN`] was full: a new argument tuple could not be recorded.
pub const ARGS_TABLE_FULL: u32 = 8;
/// [`crate::names::MAP_EXES_SEEN`] was full: a new executable could not be recorded.
pub const EXES_TABLE_FULL: u32 = 9;
/// A thread id beyond the tasks array (pid_max raised after start).
pub const TID_OUT_OF_RANGE: u32 = 10;
/// A syscall number beyond [`crate::abi::MAX_NR`].
pub const NR_OUT_OF_RANGE: u32 = 11;
/// A `sys_exit` whose number differs from the one in flight.
pub const PAIRING_MISMATCH: u32 = 12;
/// The file name of an exec could not be read.
pub const EXEC_NAME_FAILED: u32 = 13;
/// A fork child's thread id could not be read.
pub const FORK_READ_FAILED: u32 = 14;
/// The thread status (compat flag) could not be read; the call was counted as native. No
/// longer counted: the status is now a direct load through the task's BTF pointer, where a
/// fault reads as zero (native). Kept so that the counters keep their indices.
pub const COMPAT_READ_FAILED: u32 = 15;
/// Expected unmatched exits (fork children, threads caught inside a syscall).
pub const FRESH_EXITS: u32 = 16;
/// The ring buffer was full: a refusal event was dropped (the refusal is still counted).
pub const RINGBUF_LOST_REFUSED: u32 = 17;
/// Number of counters (per group).
pub const COUNT: u32 = 18;

/// Index of counter `idx` of `group` in [`crate::names::MAP_COUNTERS`] (one block of
/// [`COUNT`] per group).
#[inline(always)]
pub const fn index(group: u32, idx: u32) -> u32 {
    group * COUNT + idx
}

/// Human names of the counters, by index.
pub const NAMES: [&str; COUNT as usize] = [
    "syscalls",
    "tasks_forked",
    "tasks_exited",
    "tasks_adopted",
    "exe_calls_full",
    "outcomes_map_full",
    "ringbuf_lost_exec",
    "ringbuf_lost_args",
    "args_table_full",
    "exes_table_full",
    "tid_out_of_range",
    "nr_out_of_range",
    "pairing_mismatch",
    "exec_name_failed",
    "fork_read_failed",
    "compat_read_failed",
    "fresh_exits",
    "ringbuf_lost_refused",
];
