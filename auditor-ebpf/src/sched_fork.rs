//! `sched_process_fork`: children (processes and threads) of tracked threads are tracked from
//! their first instruction; the hook runs before the child is first woken.

use auditor_common::{counters, slot};
use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::maps::{cgroup_filter, count, offsets, task_slot, PENDING, TASKS};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    try_fork(&ctx);
    0
}

#[inline(always)]
fn try_fork(ctx: &RawTracePointContext) {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some((_, s)) = tracked_slot(tid) else {
        return;
    };
    let group = slot::group(s);
    let child: *const u8 = ctx.arg(1);
    let off = offsets();
    // SAFETY: `child` is the tracepoint's `struct task_struct *`; the offset comes from BTF.
    let pid = match unsafe {
        bpf_probe_read_kernel(child.wrapping_add(off.task_pid as usize) as *const i32)
    } {
        Ok(p) if p > 0 => p as u32,
        _ => {
            count(group, counters::FORK_READ_FAILED);
            return;
        }
    };
    if TASKS.set(pid, slot::child_of(s), 0).is_err() {
        count(group, counters::TID_OUT_OF_RANGE);
        return;
    }
    let _ = PENDING.set(pid, 0, 0);
    count(group, counters::TASKS_FORKED);
}

/// The current thread's slot if it is tracked, adopting it first in cgroup mode.
#[inline(always)]
pub fn tracked_slot(tid: u32) -> Option<(*mut u64, u64)> {
    let (ptr, s) = task_slot(tid)?;
    if s != 0 {
        return Some((ptr, s));
    }
    adopt_from_cgroup(ptr).map(|adopted| (ptr, adopted))
}

/// In cgroup mode (`auditor learn --cgroup`), start tracking the current (untracked) thread if
/// it is in the target cgroup or below. Returns its new slot. (`auditor daemon`'s containers
/// adopt at exec instead, see `sched_exec`: nothing is added to every untracked syscall.)
#[inline(always)]
fn adopt_from_cgroup(ptr: *mut u64) -> Option<u64> {
    let cg = cgroup_filter();
    if cg.enabled == 0 {
        return None;
    }
    // SAFETY: no preconditions; returns 0 when the level is deeper than the task's cgroup.
    let id = unsafe { bpf_get_current_ancestor_cgroup_id(cg.level as i32) };
    if id != cg.id {
        return None;
    }
    // Executable unknown (it was exec'd before it joined); FRESH: its current syscall, if any,
    // began before tracking.
    let s = slot::new(0, slot::FRESH);
    // SAFETY: this thread's own slot.
    unsafe { *ptr = s };
    count(0, counters::TASKS_ADOPTED);
    Some(s)
}
