//! All maps and globals, in one place. Names are the `auditor_common::names` constants.

use auditor_common::{
    argspec, counters, slot, ArgsEvent, CgroupFilter, ExecEvent, Offsets, OutcomeKey, Settings,
    SysKey, SysStat,
};
use core::sync::atomic::AtomicU64;

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};

/// Per-thread slot (see `auditor_common::slot`); user space sizes it to `kernel.pid_max` and
/// reads it through a shared mapping (`BPF_F_MMAPABLE`): one pass over memory instead of one
/// syscall per possible thread (4 M of them where pid_max is 4194304).
#[map]
pub static TASKS: Array<u64> = Array::with_max_entries(32768, BPF_F_MMAPABLE);

/// Per-CPU counts per (group, abi, nr): an array, so the lookup is inlined; user space sizes it
/// to `groups * TABLE_LEN`.
#[map]
pub static CALLS: PerCpuArray<SysStat> = PerCpuArray::with_max_entries(argspec::TABLE_LEN, 0);

/// Per-thread pending run length; user space sizes it like TASKS.
#[map]
pub static PENDING: Array<u64> = Array::with_max_entries(32768, 0);

/// The per-CPU hash maps allocate an element when a new key is first inserted (the kernel's
/// BPF allocator, safe in tracing programs from Linux 6.1) instead of all of them when the map
/// is made: preallocating 53 248 per-CPU elements was a third of `auditor learn`'s start-up,
/// and grows with the CPUs. Only the first call of a new key pays for it. The maps are
/// `auditor_common::names::RUNTIME_ALLOCATED_MAPS`; user space clears the flag on older
/// kernels, where such a map was unsafe in a tracing program.
const RUNTIME_ALLOCATED: u32 = BPF_F_NO_PREALLOC;

/// Per-CPU counts per (executable, abi, nr), updated once per run.
#[map]
pub static EXE_CALLS: PerCpuHashMap<SysKey, u64> =
    PerCpuHashMap::with_max_entries(16384, RUNTIME_ALLOCATED);

#[map]
pub static OUTCOMES: PerCpuHashMap<OutcomeKey, u64> =
    PerCpuHashMap::with_max_entries(16384, RUNTIME_ALLOCATED);

/// Per group; user space sizes it to `groups * counters::COUNT`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Per group, sized like CALLS.
#[map]
pub static ARG_READ_FAILS: PerCpuArray<u64> = PerCpuArray::with_max_entries(argspec::TABLE_LEN, 0);

#[map]
pub static ARG_SPECS: Array<u32> = Array::with_max_entries(argspec::TABLE_LEN, 0);

#[map]
pub static ARGS_SEEN: PerCpuHashMap<u64, u64> =
    PerCpuHashMap::with_max_entries(16384, RUNTIME_ALLOCATED);

/// `group << 32 | exe` -> execs.
#[map]
pub static EXES_SEEN: PerCpuHashMap<u64, u64> =
    PerCpuHashMap::with_max_entries(4096, RUNTIME_ALLOCATED);

/// cgroup v2 id -> group, for `auditor daemon`'s containers (see `Settings::cgroup_groups`).
#[map]
pub static CGROUP_GROUPS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);

/// mount namespace inode number -> group (see `Settings::mntns_groups`).
#[map]
pub static MNTNS_GROUPS: HashMap<u32, u32> = HashMap::with_max_entries(1024, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

#[map]
pub static SCRATCH: PerCpuArray<ArgsEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Set by user space before loading (read-only data).
#[no_mangle]
pub static OFFSETS: Offsets = Offsets {
    task_pid: 0,
    task_tgid: 0,
    task_ti_status: 0,
    bprm_filename: 0,
    pid_max: 0,
    task_nsproxy: 0,
    nsproxy_mnt_ns: 0,
    mnt_ns_inum: 0,
};

#[no_mangle]
static CGROUP_FILTER: CgroupFilter = CgroupFilter {
    id: 0,
    level: 0,
    enabled: 0,
};

#[no_mangle]
static SETTINGS: Settings = Settings {
    emit_refusals: 0,
    groups: 0,
    cgroup_groups: 0,
    mntns_groups: 0,
    tid_memo: 0,
};

#[inline(always)]
pub fn settings() -> Settings {
    // SAFETY: as in `offsets`.
    unsafe { core::ptr::read_volatile(&SETTINGS) }
}

#[inline(always)]
pub fn offsets() -> Offsets {
    // SAFETY: a plain read of our own global; volatile so that the compiler does not fold the
    // compile-time zeroes into the code (user space rewrites them at load).
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
pub fn cgroup_filter() -> CgroupFilter {
    // SAFETY: as in `offsets`.
    unsafe { core::ptr::read_volatile(&CGROUP_FILTER) }
}

/// Add one to a per-CPU counter of `group`.
#[inline(always)]
pub fn count(group: u32, idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(counters::index(group, idx)) {
        // SAFETY: a per-CPU array value; programs on the syscall tracepoints run with preemption
        // disabled, so nothing else on this CPU writes it concurrently.
        unsafe { *p += 1 };
    }
}

/// Add one to this CPU's count in a per-CPU "seen" table. Returns false if the key is absent.
#[inline(always)]
pub fn bump<K>(map: &PerCpuHashMap<K, u64>, key: &K) -> bool {
    match map.get_ptr_mut(key) {
        Some(c) => {
            // SAFETY: this CPU's copy of the value (keys are global, values per CPU; a copy
            // created by another CPU's insert starts at zero here); preemption is disabled.
            unsafe { *c += 1 };
            true
        }
        None => false,
    }
}

/// Add the pending run of thread `tid` (slot `s`) to its executable's counts and reset it.
#[inline(always)]
pub fn flush_run(tid: u32, s: u64) {
    let Some(p) = PENDING.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: this thread's own element (or one the fork/exit hook owns at this point).
    let n = unsafe { *p };
    if n == 0 {
        return;
    }
    // SAFETY: as above.
    unsafe { *p = 0 };
    let last = slot::last(s);
    if slot::last_nr(last) as u64 == slot::NR_NONE {
        return;
    }
    let group = slot::group(s);
    let key = SysKey {
        exe: slot::exe(s),
        nr: slot::last_nr(last),
        abi: slot::last_abi(last),
        _pad: 0,
        group,
    };
    match EXE_CALLS.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a per-CPU value; preemption is disabled here.
        Some(c) => unsafe { *c += n },
        None => {
            if EXE_CALLS.insert(key, n, 0).is_err() {
                count(group, counters::EXE_CALLS_FULL);
            }
        }
    }
}

/// What [`current_tid`] last found on this CPU: the thread whose registers sit at `regs` (the
/// top of its kernel stack, one per live thread) had id `tid` while [`TASK_GEN`] read `gen`.
#[repr(C)]
struct TidMemo {
    regs: u64,
    gen: u64,
    tid: u32,
    _pad: u32,
}

#[map]
static TID_MEMO: PerCpuArray<TidMemo> = PerCpuArray::with_max_entries(1, 0);

/// Bumped (atomically) whenever a kernel stack may pass to another thread, i.e. on every
/// thread's exit, and whenever a thread's id changes (a non-leader thread's exec takes over
/// the leader's id): a memo filled under an older value is not trusted.
#[no_mangle]
static TASK_GEN: AtomicU64 = AtomicU64::new(0);

/// Invalidate every CPU's [`TidMemo`] (see [`TASK_GEN`]).
#[inline(always)]
pub fn task_gen_bump() {
    // The BPF target has no `fetch_add` (its atomic read-modify-write is not in the target's
    // `target_has_atomic`); the intrinsic compiles to BPF's atomic add.
    // SAFETY: `as_ptr` is valid for the program's life; it is only written by atomic adds
    // (and read by aligned 8-byte loads, see `current_tid`).
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            TASK_GEN.as_ptr(),
            1,
        );
    }
}

/// The current thread's id, on the syscall hooks (`regs`: the hook's `struct pt_regs *`).
///
/// `bpf_get_current_pid_tgid` is a helper call, which is not inlined and, on CPUs that return
/// through a mitigation thunk (AMD's SRSO "safe RET"), was a third of an untracked hook's
/// run time (perf, 2026-12-07). A syscall's registers lie at the top of its thread's kernel
/// stack, which no other live thread shares: so while no thread has exited or changed id
/// since this CPU's memo was filled, a thread with the memo's `regs` is the memo's thread.
/// Runs with preemption disabled (and neither hook nests on a CPU), so the memo is this
/// program's alone while it reads and fills it; on PREEMPT_RT, where that does not hold, user
/// space turns the memo off (`Settings::tid_memo`).
#[inline(always)]
pub fn current_tid(regs: u64) -> u32 {
    // SAFETY: a plain read of one field of our own global (see `offsets`); a constant for the
    // verifier, which drops the branch not taken.
    if unsafe { core::ptr::read_volatile(core::ptr::addr_of!(SETTINGS.tid_memo)) } == 0 {
        return bpf_get_current_pid_tgid() as u32;
    }
    // Read before the id: an exit in between leaves the memo stale, never wrong.
    // (A volatile load: the BPF back end cannot select an atomic one; an aligned 8-byte load
    // is single-copy atomic on the architectures the JIT runs.)
    // SAFETY: as in `task_gen_bump`.
    let gen = unsafe { core::ptr::read_volatile(TASK_GEN.as_ptr()) };
    let Some(m) = TID_MEMO.get_ptr_mut(0) else {
        return bpf_get_current_pid_tgid() as u32;
    };
    // SAFETY: this CPU's element of a per-CPU array; preemption is disabled here.
    unsafe {
        if (*m).regs == regs && (*m).gen == gen {
            return (*m).tid;
        }
        let tid = bpf_get_current_pid_tgid() as u32;
        *m = TidMemo {
            regs,
            gen,
            tid,
            _pad: 0,
        };
        tid
    }
}

/// The current thread's slot pointer and value (None if the thread id is beyond the array).
#[inline(always)]
pub fn task_slot(tid: u32) -> Option<(*mut u64, u64)> {
    TASKS.get_ptr_mut(tid).map(|p| (p, unsafe { *p }))
}
