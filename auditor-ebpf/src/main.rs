//! auditor's eBPF programs: raw tracepoints (no tracefs needed) that observe every syscall a
//! tracked workload attempts.
//!
//! One file per hook; maps in `maps.rs`; the only architecture-specific code is in `arch.rs`.
//! Every entry point is a few lines: it calls `try_<hook>` and returns 0. Untracked threads leave
//! after one array lookup (and a per-CPU memo of the thread id, see `maps::current_tid`),
//! which every process on the host pays.
#![no_std]
#![no_main]
// `core::intrinsics::atomic_xadd`: see `maps::task_gen_bump`.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod arch;
mod args;
mod floor;
mod maps;
mod sched_exec;
mod sched_exit;
mod sched_fork;
mod sys_enter;
mod sys_exit;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_* and the ring buffer helpers are GPL-only.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
