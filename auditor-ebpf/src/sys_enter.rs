//! `sys_enter`: count every syscall a tracked thread enters and remember it as in flight, so
//! that `sys_exit` can tell a call the kernel ran from one a seccomp filter refused.

use auditor_common::{abi, argspec, counters, slot};
use aya_ebpf::{
    helpers::bpf_ktime_get_boot_ns, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{
    arch,
    maps::{count, current_tid, flush_run, CALLS, PENDING},
    sched_fork::tracked_slot,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    try_sys_enter(&ctx);
    0
}

#[inline(always)]
fn try_sys_enter(ctx: &RawTracePointContext) {
    let tid = current_tid(ctx.arg(0));
    let Some((ptr, mut s)) = tracked_slot(tid) else {
        return;
    };
    let id: u64 = ctx.arg(1);
    if s & slot::WAIT_EXEC != 0 && id >= abi::MAX_NR as u64 && id & abi::X32_SYSCALL_BIT == 0 {
        // auditor's launcher uses a reserved number to hand its listener over: not a call of
        // the workload's, and not a lost observation.
        return;
    }
    let Some((nr, a)) = arch::classify(id, slot::group(s)) else {
        return;
    };
    if s & slot::WAIT_EXEC != 0 {
        // auditor's launcher: its own pre-exec calls are not the workload's.
        let i = a as usize;
        if i >= abi::EXECVE.len() || (nr != abi::EXECVE[i] && nr != abi::EXECVEAT[i]) {
            return;
        }
        s &= !slot::WAIT_EXEC;
    }
    // The run of one repeated syscall is counted in PENDING and attributed to the executable
    // when it ends; the per-syscall count is an inlined per-CPU array update.
    if let Some(p) = PENDING.get_ptr_mut(tid) {
        if slot::last(s) == slot::run_key(nr, a) {
            // SAFETY: this thread's own element.
            unsafe { *p += 1 };
        } else {
            flush_run(tid, s);
            // SAFETY: as above.
            unsafe { *p = 1 };
        }
    }
    // SAFETY: `ptr` is this thread's array element; only this thread writes it now.
    unsafe { *ptr = slot::enter(s, nr, a) };
    record(slot::group(s), nr, a);
}

#[inline(always)]
fn record(group: u32, nr: u16, a: u8) {
    if let Some(p) = CALLS.get_ptr_mut(argspec::group_index(group, a, nr)) {
        // SAFETY: this CPU's element of a per-CPU array; preemption is disabled here.
        unsafe {
            if (*p).count == 0 {
                (*p).first_seen_ns = bpf_ktime_get_boot_ns();
            }
            (*p).count += 1;
        }
    }
    count(group, counters::SYSCALLS);
}
