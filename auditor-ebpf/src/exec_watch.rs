//! The exec watch (`auditor_common::exec_gen`): its own small object, so that a broker that
//! wants it loads two programs and one small array, not the observer's maps.
//!
//! Every process on the host pays one array update per exec and per thread exit. Each slot has
//! a counter per CPU, and a program bumps only its own CPU's: the eBPF target has no atomic
//! read-modify-write in Rust, and a tracepoint's programs run with preemption disabled (not on
//! PREEMPT_RT, where user space does not load this object), so each counter has one writer at
//! a time and never goes back. A slot's generation is the sum.
#![no_std]
#![no_main]

use auditor_common::exec_gen;
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE, helpers::bpf_get_current_pid_tgid, macros::map,
    macros::raw_tracepoint, maps::Array, programs::RawTracePointContext,
};

/// Counters, `SLOTS` × possible CPUs (user space sizes it), a slot's CPUs side by side; user
/// space reads them through a shared mapping.
#[map]
static EXEC_GEN: Array<u64> = Array::with_max_entries(exec_gen::SLOTS, BPF_F_MMAPABLE);

/// Possible CPUs, set by user space before loading (read-only data).
#[no_mangle]
static NCPUS: u32 = 0;

#[inline(always)]
fn bump(tid: u32) {
    // SAFETY: a plain read of our own global; volatile so that the compiler does not fold the
    // compile-time zero into the code (user space rewrites it at load).
    let ncpus = unsafe { core::ptr::read_volatile(&NCPUS) };
    // SAFETY: no preconditions.
    let cpu = unsafe { aya_ebpf::helpers::bpf_get_smp_processor_id() };
    if cpu >= ncpus {
        return;
    }
    if let Some(p) = EXEC_GEN.get_ptr_mut(exec_gen::slot(tid) * ncpus + cpu) {
        // SAFETY: a valid, 8-aligned value of the array that only this CPU writes, and this
        // program runs with preemption disabled. The broker reads it after this task's next
        // notified call, which the kernel orders after this store (the notification's
        // wake-up takes locks).
        unsafe { core::ptr::write_volatile(p, core::ptr::read_volatile(p) + 1) };
    }
}

/// `sched_process_exec(p, old_pid, bprm)`: the exec'ing thread, under its new id (a non-leader
/// thread takes the leader's) and its old one.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn exec_gen_exec(ctx: RawTracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    let old: u64 = ctx.arg(1);
    bump(tid);
    if old as u32 != tid {
        bump(old as u32);
    }
    0
}

/// `sched_process_exit`: a thread ends; its id may be reused by another task.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn exec_gen_exit(_ctx: RawTracePointContext) -> i32 {
    bump(bpf_get_current_pid_tgid() as u32);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
