//! Map, program and global names, spelled once for both sides.

/// Per-thread state, indexed by host thread id (an array sized to `kernel.pid_max`).
pub const MAP_TASKS: &str = "TASKS";
/// Per-CPU call counts and first-seen times per (abi, nr), indexed by
/// [`crate::argspec::group_index`]: the hot path's only count.
pub const MAP_CALLS: &str = "CALLS";
/// Per-thread length of the current run of one syscall not yet added to [`MAP_EXE_CALLS`],
/// indexed by host thread id (sized like [`MAP_TASKS`]).
pub const MAP_PENDING: &str = "PENDING";
/// Per-CPU call counts per executable, keyed by [`crate::SysKey`]; updated once per run.
pub const MAP_EXE_CALLS: &str = "EXE_CALLS";
/// Per-CPU failure and refusal counts keyed by [`crate::OutcomeKey`].
pub const MAP_OUTCOMES: &str = "OUTCOMES";
/// Per-CPU array of [`crate::counters`], per group ([`crate::counters::index`]).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Per-CPU array of failed argument reads, indexed by [`crate::argspec::group_index`].
pub const MAP_ARG_READ_FAILS: &str = "ARG_READ_FAILS";
/// Array of argument capture specs, indexed by [`crate::argspec::index`].
pub const MAP_ARG_SPECS: &str = "ARG_SPECS";
/// Distinct argument tuples seen (hash -> calls), bounded.
pub const MAP_ARGS_SEEN: &str = "ARGS_SEEN";
/// Distinct executables seen per group (`group << 32 | exe hash` -> execs), bounded.
pub const MAP_EXES_SEEN: &str = "EXES_SEEN";
/// The per-CPU hash maps whose elements the kernel allocates when a key is first inserted
/// (`BPF_F_NO_PREALLOC` in the object), not all when the map is made. User space clears the
/// flag (preallocates them) on kernels before 6.1, where a tracing program could not allocate
/// safely.
pub const RUNTIME_ALLOCATED_MAPS: [&str; 4] =
    [MAP_EXE_CALLS, MAP_OUTCOMES, MAP_ARGS_SEEN, MAP_EXES_SEEN];
/// The ring buffer of [`crate::ExecEvent`] and [`crate::ArgsEvent`].
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU scratch space for building an [`crate::ArgsEvent`].
pub const MAP_SCRATCH: &str = "SCRATCH";

/// cgroup v2 id -> group: untracked tasks that exec in these cgroups are adopted into the group
/// (only when [`crate::Settings::cgroup_groups`] is set).
pub const MAP_CGROUP_GROUPS: &str = "CGROUP_GROUPS";
/// mount namespace inode number -> group: untracked tasks that exec in these namespaces are
/// adopted into the group (only when [`crate::Settings::mntns_groups`] is set).
pub const MAP_MNTNS_GROUPS: &str = "MNTNS_GROUPS";

/// Raw tracepoint programs and the tracepoints they attach to.
pub const PROG_SYS_ENTER: &str = "sys_enter";
pub const PROG_SYS_EXIT: &str = "sys_exit";
pub const PROG_FORK: &str = "sched_process_fork";
pub const PROG_EXEC: &str = "sched_process_exec";
pub const PROG_EXIT: &str = "sched_process_exit";
/// Empty programs on the same hooks: the floor that any tracer there pays (benchmark only).
pub const PROG_FLOOR_SYS_ENTER: &str = "floor_sys_enter";
pub const PROG_FLOOR_SYS_EXIT: &str = "floor_sys_exit";

/// `(program, tracepoint)` for auditor's observer, in the order they are attached: the
/// `sched_process_*` hooks before the syscall hooks, which rely on `sched_process_exit` (see
/// the eBPF crate's `maps::current_tid`).
pub const OBSERVER_PROGRAMS: [(&str, &str); 5] = [
    (PROG_FORK, "sched_process_fork"),
    (PROG_EXEC, "sched_process_exec"),
    (PROG_EXIT, "sched_process_exit"),
    (PROG_SYS_ENTER, "sys_enter"),
    (PROG_SYS_EXIT, "sys_exit"),
];
/// `(program, tracepoint)` for the benchmark floor.
pub const FLOOR_PROGRAMS: [(&str, &str); 2] = [
    (PROG_FLOOR_SYS_ENTER, "sys_enter"),
    (PROG_FLOOR_SYS_EXIT, "sys_exit"),
];

/// Globals (read-only data) that user space sets before loading; see [`crate::Offsets`].
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
pub const GLOBAL_CGROUP: &str = "CGROUP_FILTER";
pub const GLOBAL_SETTINGS: &str = "SETTINGS";

/// The exec watch's generations (see [`crate::exec_gen`]), in its own object (`exec-watch`).
pub const MAP_EXEC_GEN: &str = "EXEC_GEN";
/// The exec watch's global: possible CPUs (u32).
pub const GLOBAL_NCPUS: &str = "NCPUS";
pub const PROG_EXEC_GEN_EXEC: &str = "exec_gen_exec";
pub const PROG_EXEC_GEN_EXIT: &str = "exec_gen_exit";
/// The exec watch's programs and their raw tracepoints.
pub const EXEC_WATCH_PROGRAMS: [(&str, &str); 2] = [
    (PROG_EXEC_GEN_EXEC, "sched_process_exec"),
    (PROG_EXEC_GEN_EXIT, "sched_process_exit"),
];
