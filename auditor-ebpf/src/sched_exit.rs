//! `sched_process_exit`: forget a tracked thread, so the tasks array holds only live threads
//! and a recycled thread id starts untracked.

use auditor_common::{counters, slot};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::maps::{count, flush_run, task_gen_bump, task_slot};

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    try_exit();
    0
}

#[inline(always)]
fn try_exit() {
    // Any thread's: its kernel stack may go to the next thread forked.
    task_gen_bump();
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some((ptr, s)) = task_slot(tid) {
        if s != 0 {
            flush_run(tid, s);
            // SAFETY: this thread's own slot.
            unsafe { *ptr = 0 };
            count(slot::group(s), counters::TASKS_EXITED);
        }
    }
}
