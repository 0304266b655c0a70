//! `sched_process_exec`: which executable a tracked thread now runs. The file name is read from
//! `linux_binprm.filename` (kernel memory, as passed to execve), so short-lived processes cannot
//! race it the way a later read of /proc/PID/exe would.

use auditor_common::{counters, event, hash, slot, ExecEvent, EXEC_NAME_LEN};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::maps::{
    bump, count, flush_run, offsets, settings, task_gen_bump, task_slot, CGROUP_GROUPS, EVENTS,
    EXEC_SCRATCH, EXES_SEEN, MNTNS_GROUPS,
};

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    try_exec(&ctx);
    0
}

#[inline(always)]
fn try_exec(ctx: &RawTracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let old: u64 = ctx.arg(1);
    let old = old as u32;
    if old != tid {
        // Whether tracked or not: memos of this thread name its old id (the leader's exit in
        // de_thread has bumped already; this does not rest on that order).
        task_gen_bump();
    }
    let Some((ptr, mut s)) = task_slot(tid) else {
        return;
    };
    if old != tid {
        // A non-leader thread exec'd and took over the leader's id (de_thread): move its slot.
        let Some((old_ptr, old_s)) = task_slot(old) else {
            return;
        };
        if old_s == 0 {
            return;
        }
        flush_run(old, old_s);
        // SAFETY: the old id's slot; that thread no longer exists under it.
        unsafe { *old_ptr = 0 };
        s = old_s;
    }
    if s == 0 {
        match adopt_at_exec(ptr) {
            Some(adopted) => s = adopted,
            None => return,
        }
    }
    // The run so far belongs to the old executable.
    flush_run(tid, s);
    let group = slot::group(s);
    let Some(ev) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch element; preemption is disabled.
    let ev = unsafe { &mut *ev };
    let bprm: *const u8 = ctx.arg(2);
    let off = offsets();
    // SAFETY: `bprm` is the tracepoint's `struct linux_binprm *`; offset from BTF.
    let name_ptr = unsafe {
        bpf_probe_read_kernel(bprm.wrapping_add(off.bprm_filename as usize) as *const *const u8)
    };
    let mut id = 0u32;
    ev.len = 0;
    if let Ok(p) = name_ptr {
        // SAFETY: a kernel string read through the fault-tolerant helper.
        if let Ok(bytes) = unsafe { bpf_probe_read_kernel_str_bytes(p, &mut ev.filename) } {
            let n = bytes.len();
            ev.len = n as u32 + 1;
            let mut h = hash::FNV32_OFFSET;
            let mut i = 0;
            while i < EXEC_NAME_LEN {
                if i >= n {
                    break;
                }
                h = hash::fnv32_byte(h, ev.filename[i]);
                i += 1;
            }
            id = if h == 0 { 1 } else { h };
        }
    }
    if id == 0 {
        count(group, counters::EXEC_NAME_FAILED);
    }
    let s = slot::with_exe(s, id);
    // SAFETY: this thread's own slot.
    unsafe { *ptr = s };
    if id == 0 {
        return;
    }

    // One event per distinct executable (per group); later execs only bump its count.
    let key = ((group as u64) << 32) | id as u64;
    if bump(&EXES_SEEN, &key) {
        return;
    }
    if EXES_SEEN.insert(key, 1, BPF_NOEXIST as u64).is_err() {
        if bump(&EXES_SEEN, &key) {
            return;
        }
        count(group, counters::EXES_TABLE_FULL);
    }
    ev.header.kind = event::EXEC;
    ev.header.group = group as u16;
    ev.header.tid = tid;
    ev.header.tgid = (pid_tgid >> 32) as u32;
    ev.header.exe = id;
    // SAFETY: no preconditions.
    ev.header.time_ns = unsafe { bpf_ktime_get_boot_ns() };
    if EVENTS.output::<ExecEvent>(&*ev, 0).is_err() {
        count(group, counters::RINGBUF_LOST_EXEC);
        let _ = EXES_SEEN.remove(key);
    }
}

/// An untracked task that execs inside a registered container joined it (`runc exec`, `crun
/// exec`): by the container's own cgroup v2, or, for a container without one, by its mount
/// namespace. It is tracked from this exec on; what it did before (the runtime's setns and
/// cgroup work) is not the workload's. Paid only at exec, never on the syscall path.
#[inline(always)]
fn adopt_at_exec(ptr: *mut u64) -> Option<u64> {
    let set = settings();
    let mut group = None;
    if set.cgroup_groups != 0 {
        // SAFETY: no preconditions.
        let id = unsafe { bpf_get_current_cgroup_id() };
        // SAFETY: a plain read of a u32 value of a map lookup.
        group = unsafe { CGROUP_GROUPS.get(id) }.copied();
    }
    if group.is_none() && set.mntns_groups != 0 {
        group = mntns_group();
    }
    let group = group?;
    // FRESH: the execve in flight began before tracking.
    let s = slot::new_in(group, 0, slot::FRESH);
    // SAFETY: this thread's own slot.
    unsafe { *ptr = s };
    count(group, counters::TASKS_ADOPTED);
    Some(s)
}

/// The group of the current task's mount namespace, if one is registered.
#[inline(always)]
fn mntns_group() -> Option<u32> {
    let off = offsets();
    // SAFETY: the current task is valid while it runs; every pointer below is read through the
    // fault-tolerant helper, with offsets from this kernel's BTF.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: as above.
    let nsproxy = unsafe {
        bpf_probe_read_kernel(task.wrapping_add(off.task_nsproxy as usize) as *const *const u8)
    }
    .ok()?;
    if nsproxy.is_null() {
        return None;
    }
    // SAFETY: as above.
    let mnt = unsafe {
        bpf_probe_read_kernel(nsproxy.wrapping_add(off.nsproxy_mnt_ns as usize) as *const *const u8)
    }
    .ok()?;
    if mnt.is_null() {
        return None;
    }
    // SAFETY: as above.
    let inum =
        unsafe { bpf_probe_read_kernel(mnt.wrapping_add(off.mnt_ns_inum as usize) as *const u32) }
            .ok()?;
    // SAFETY: a plain read of a u32 value of a map lookup.
    unsafe { MNTNS_GROUPS.get(inum) }.copied()
}
