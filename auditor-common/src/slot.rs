//! The per-thread slot in [`crate::names::MAP_TASKS`]: one `u64` per host thread id.
//!
//! ```text
//!  63            32 31    24 23   18 17 16 15             0
//! +----------------+--------+-------+-----+----------------+
//! |   exe hash     | flags  |   0   | abi | in-flight nr   |
//! +----------------+--------+-------+-----+----------------+
//! ```
//! A zero slot means "not tracked". Each slot is written only by its own thread's programs, by
//! the fork hook before the child first runs, by the exit hook, or by user space before the
//! workload starts, so no atomics are needed.

/// No syscall in flight.
pub const NR_NONE: u64 = 0xffff;
pub const NR_MASK: u64 = 0xffff;
pub const ABI_SHIFT: u32 = 16;
pub const ABI_MASK: u64 = 0x3;
/// The thread is tracked.
pub const TRACKED: u64 = 1 << 24;
/// The next `sys_exit` without a matching `sys_enter` is expected (a fork child returning from
/// `clone`, or a thread that was inside a syscall when tracking began) and is not a refusal.
pub const FRESH: u64 = 1 << 25;
/// Count nothing until this thread enters `execve`/`execveat` (auditor's own launcher).
pub const WAIT_EXEC: u64 = 1 << 26;
pub const EXE_SHIFT: u32 = 32;

/// A slot for a thread that starts being tracked.
#[inline(always)]
pub const fn new(exe: u32, flags: u64) -> u64 {
    ((exe as u64) << EXE_SHIFT) | TRACKED | flags | NR_NONE
}

#[inline(always)]
pub const fn exe(slot: u64) -> u32 {
    (slot >> EXE_SHIFT) as u32
}

#[inline(always)]
pub const fn in_flight(slot: u64) -> u64 {
    slot & NR_MASK
}

#[inline(always)]
pub const fn in_flight_abi(slot: u64) -> u8 {
    ((slot >> ABI_SHIFT) & ABI_MASK) as u8
}

/// `slot` with `nr`/`abi` in flight and FRESH cleared.
#[inline(always)]
pub const fn enter(slot: u64, nr: u16, abi: u8) -> u64 {
    (slot & !(NR_MASK | (ABI_MASK << ABI_SHIFT) | FRESH))
        | (nr as u64)
        | (((abi as u64) & ABI_MASK) << ABI_SHIFT)
}

/// `slot` with nothing in flight and FRESH cleared.
#[inline(always)]
pub const fn exit(slot: u64) -> u64 {
    (slot & !(NR_MASK | (ABI_MASK << ABI_SHIFT) | FRESH)) | NR_NONE
}

/// `slot` with a new executable.
#[inline(always)]
pub const fn with_exe(slot: u64, exe: u32) -> u64 {
    (slot & 0xffff_ffff) | ((exe as u64) << EXE_SHIFT)
}

/// The slot a fork child starts with: the parent's executable, nothing in flight, FRESH.
#[inline(always)]
pub const fn child_of(parent: u64) -> u64 {
    new(exe(parent), FRESH)
}
