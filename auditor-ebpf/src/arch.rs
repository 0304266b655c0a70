//! The only architecture-specific code (x86_64): classifying a syscall's ABI and reading the
//! argument registers from `struct pt_regs`.

use auditor_common::{abi, counters};
use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel};

use crate::maps::{count, OFFSETS};

/// `struct pt_regs` on x86_64, in u64 words (ABI-stable, arch/x86/include/asm/ptrace.h).
pub const REGS_WORDS: usize = 21;
const R_BP: usize = 4;
const R_BX: usize = 5;
const R_R10: usize = 7;
const R_R9: usize = 8;
const R_R8: usize = 9;
const R_CX: usize = 11;
const R_DX: usize = 12;
const R_SI: usize = 13;
const R_DI: usize = 14;
const R_ORIG_AX: usize = 15;

/// Split a raw syscall id (tracepoint `id` or `orig_ax`) into (nr, abi).
/// `TS_COMPAT` is set in `thread_info.status` for the whole of a 32-bit syscall (entry to exit).
#[inline(always)]
/// Failures are counted in `group`.
pub fn classify(id: u64, group: u32) -> Option<(u16, u8)> {
    if id & abi::X32_SYSCALL_BIT != 0 {
        return checked(id & !abi::X32_SYSCALL_BIT, abi::X32, group);
    }
    // The task's BTF pointer, read directly: `thread_info` is the first member of
    // `task_struct` (THREAD_INFO_IN_TASK), its offset a constant of the frozen read-only data,
    // so the verifier checks the load against the kernel's BTF (a faulting address reads as
    // zero: native). One helper call instead of two (`bpf_get_current_task`, then
    // `bpf_probe_read_kernel`, whose fault handling was ~6% of a tracked getppid loop's time).
    // SAFETY: no preconditions; the current task, never null in a syscall hook.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    // SAFETY: a plain read of one field of our own global (see `offsets`).
    let off = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(OFFSETS.task_ti_status)) };
    // SAFETY: `thread_info.status` (a u32) of the current task, at its BTF offset.
    let status = unsafe { core::ptr::read_volatile(task.add(off as usize) as *const u32) };
    let a = if status & abi::TS_COMPAT != 0 {
        abi::I386
    } else {
        abi::X86_64
    };
    checked(id, a, group)
}

#[inline(always)]
fn checked(nr: u64, a: u8, group: u32) -> Option<(u16, u8)> {
    if nr >= abi::MAX_NR as u64 {
        count(group, counters::NR_OUT_OF_RANGE);
        return None;
    }
    Some((nr as u16, a))
}

/// The saved registers of the current syscall.
#[inline(always)]
pub fn read_regs(regs: *const u8) -> Option<[u64; REGS_WORDS]> {
    // SAFETY: `regs` is the tracepoint's `struct pt_regs *`, kernel memory; probe_read copes
    // with any fault.
    unsafe { bpf_probe_read_kernel(regs as *const [u64; REGS_WORDS]) }.ok()
}

#[inline(always)]
pub fn orig_ax(regs: &[u64; REGS_WORDS]) -> u64 {
    regs[R_ORIG_AX]
}

/// The six syscall argument registers for `abi`.
#[inline(always)]
pub fn syscall_args(regs: &[u64; REGS_WORDS], a: u8) -> [u64; 6] {
    if a == abi::I386 {
        // 32-bit ABI: ebx, ecx, edx, esi, edi, ebp; only the low halves are meaningful.
        let m = 0xffff_ffffu64;
        [
            regs[R_BX] & m,
            regs[R_CX] & m,
            regs[R_DX] & m,
            regs[R_SI] & m,
            regs[R_DI] & m,
            regs[R_BP] & m,
        ]
    } else {
        [
            regs[R_DI],
            regs[R_SI],
            regs[R_DX],
            regs[R_R10],
            regs[R_R8],
            regs[R_R9],
        ]
    }
}
