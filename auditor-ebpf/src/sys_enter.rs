//! `sys_enter`: count every syscall a tracked thread enters and remember it as in flight, so
//! that `sys_exit` can tell a call the kernel ran from one a seccomp filter refused.

use auditor_common::{abi, counters, slot, SysKey, SysStat};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    arch,
    maps::{count, task_slot, STATS},
    sched_fork::adopt_from_cgroup,
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    try_sys_enter(&ctx);
    0
}

#[inline(always)]
fn try_sys_enter(ctx: &RawTracePointContext) {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some((ptr, mut s)) = task_slot(tid) else {
        return;
    };
    if s == 0 {
        match adopt_from_cgroup(ptr) {
            Some(adopted) => s = adopted,
            None => return,
        }
    }
    let id: u64 = ctx.arg(1);
    let Some((nr, a)) = arch::classify(id) else {
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
    // SAFETY: `ptr` is this thread's array element; only this thread writes it now.
    unsafe { *ptr = slot::enter(s, nr, a) };
    record(slot::exe(s), nr, a);
}

#[inline(always)]
fn record(exe: u32, nr: u16, a: u8) {
    let key = SysKey { exe, nr, abi: a, _pad: 0 };
    match STATS.get_ptr_mut(&key) {
        Some(p) => {
            // SAFETY: this CPU's copy of a per-CPU value; preemption is disabled here.
            unsafe {
                if (*p).count == 0 {
                    // Another CPU created the entry; this CPU's copy starts zeroed.
                    (*p).first_seen_ns = bpf_ktime_get_boot_ns();
                }
                (*p).count += 1;
            }
        }
        None => {
            // SAFETY: no preconditions.
            let v = SysStat { count: 1, first_seen_ns: unsafe { bpf_ktime_get_boot_ns() } };
            if STATS.insert(&key, &v, 0).is_err() {
                count(counters::STATS_FULL);
            }
        }
    }
    count(counters::SYSCALLS);
}
