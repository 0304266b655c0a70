//! The exec watch: a generation per thread-id slot, bumped by the kernel whenever a thread of
//! that slot execs or exits. The broker reads it through a shared mapping (no syscall) to know
//! whether the executable it read for a thread id earlier is still that thread's: unchanged
//! generation, same task, same executable. Several thread ids share a slot; an exec or exit of
//! any of them only makes the others' next reading a real one (never a stale one).

/// Slots of [`crate::names::MAP_EXEC_GEN`] (each a u64 counter per possible CPU).
pub const SLOTS: u32 = 4096;

/// The slot of thread `tid`.
#[inline(always)]
pub const fn slot(tid: u32) -> u32 {
    tid % SLOTS
}
