//! The per-thread slot in [`crate::names::MAP_TASKS`]: one `u64` per host thread id.
//!
//! ```text
//!  63            32 31   27 26  24 23   19  18   17 16 15             0
//! +----------------+-------+------+-------+----+-----+----------------+
//! |   exe hash     | grp hi| flags| grp lo| IF | abi | last nr        |
//! +----------------+-------+------+-------+----+-----+----------------+
//! ```
//! `grp` (10 bits, split around the flags) is the thread's group: the index of the container it
//! belongs to when one observer serves several (`auditor daemon`), 0 otherwise. Children inherit
//! it, so every count is kept per group from the fork on.
//! `last nr`/`abi` is the syscall the thread entered last; IF (in flight) says it has not exited
//! yet. Calls of one thread that repeat the same syscall form a run, counted in the per-thread
//! pending array and flushed to the per-executable counts when the run ends (another syscall,
//! exec, exit), so the hot path needs no hash lookup.
//! A zero slot means "not tracked". Each slot is written only by its own thread's programs, by
//! the fork hook before the child first runs, by the exit hook, or by user space before the
//! workload starts, so no atomics are needed.

/// No syscall (none in flight, or none entered yet).
pub const NR_NONE: u64 = 0xffff;
/// The last syscall has been entered and has not exited.
pub const IN_FLIGHT: u64 = 1 << 18;
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
/// Number of groups the slot can name.
pub const MAX_GROUPS: u32 = 1 << 10;
const GROUP_LO_SHIFT: u32 = 19;
const GROUP_HI_SHIFT: u32 = 27;
const GROUP_HALF_MASK: u64 = 0x1f;

/// The group bits of a slot for `group` (bits beyond [`MAX_GROUPS`] are dropped).
#[inline(always)]
pub const fn group_bits(group: u32) -> u64 {
    let g = group as u64;
    ((g & GROUP_HALF_MASK) << GROUP_LO_SHIFT) | (((g >> 5) & GROUP_HALF_MASK) << GROUP_HI_SHIFT)
}

/// The group a slot belongs to.
#[inline(always)]
pub const fn group(slot: u64) -> u32 {
    (((slot >> GROUP_LO_SHIFT) & GROUP_HALF_MASK)
        | (((slot >> GROUP_HI_SHIFT) & GROUP_HALF_MASK) << 5)) as u32
}

/// A slot for a thread of `group` that starts being tracked.
#[inline(always)]
pub const fn new_in(group: u32, exe: u32, flags: u64) -> u64 {
    new(exe, flags) | group_bits(group)
}

/// A slot for a thread that starts being tracked.
#[inline(always)]
pub const fn new(exe: u32, flags: u64) -> u64 {
    ((exe as u64) << EXE_SHIFT) | TRACKED | flags | NR_NONE
}

#[inline(always)]
pub const fn exe(slot: u64) -> u32 {
    (slot >> EXE_SHIFT) as u32
}

/// The syscall in flight, or [`NR_NONE`].
#[inline(always)]
pub const fn in_flight(slot: u64) -> u64 {
    if slot & IN_FLIGHT != 0 {
        slot & NR_MASK
    } else {
        NR_NONE
    }
}

/// The last syscall entered, as `nr | abi << 16` (compare with [`run_key`]).
#[inline(always)]
pub const fn last(slot: u64) -> u64 {
    slot & (NR_MASK | (ABI_MASK << ABI_SHIFT))
}

/// `nr | abi << 16`, the form [`last`] returns.
#[inline(always)]
pub const fn run_key(nr: u16, abi: u8) -> u64 {
    (nr as u64) | (((abi as u64) & ABI_MASK) << ABI_SHIFT)
}

/// The syscall number of a [`last`] value.
#[inline(always)]
pub const fn last_nr(last: u64) -> u16 {
    (last & NR_MASK) as u16
}

/// The ABI of a [`last`] value.
#[inline(always)]
pub const fn last_abi(last: u64) -> u8 {
    ((last >> ABI_SHIFT) & ABI_MASK) as u8
}

#[inline(always)]
pub const fn in_flight_abi(slot: u64) -> u8 {
    ((slot >> ABI_SHIFT) & ABI_MASK) as u8
}

/// `slot` with `nr`/`abi` entered and in flight, FRESH cleared.
#[inline(always)]
pub const fn enter(slot: u64, nr: u16, abi: u8) -> u64 {
    (slot & !(NR_MASK | (ABI_MASK << ABI_SHIFT) | FRESH)) | run_key(nr, abi) | IN_FLIGHT
}

/// `slot` with nothing in flight and FRESH cleared (the last syscall is kept).
#[inline(always)]
pub const fn exit(slot: u64) -> u64 {
    slot & !(IN_FLIGHT | FRESH)
}

/// `slot` with a new executable.
#[inline(always)]
pub const fn with_exe(slot: u64, exe: u32) -> u64 {
    (slot & 0xffff_ffff) | ((exe as u64) << EXE_SHIFT)
}

/// The slot a fork child starts with: the parent's executable, nothing in flight, FRESH; a
/// child of auditor's launcher before its exec (e.g. the pid-namespace init under --userns)
/// still waits for its exec.
#[inline(always)]
pub const fn child_of(parent: u64) -> u64 {
    new_in(group(parent), exe(parent), FRESH | (parent & WAIT_EXEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_exit_keep_the_run_and_pair_calls() {
        let s = new(7, FRESH);
        assert_eq!(in_flight(s), NR_NONE);
        assert_eq!(last(s), NR_NONE);
        let e = enter(s, 39, 1);
        assert_eq!(in_flight(e), 39);
        assert_eq!(in_flight_abi(e), 1);
        assert_eq!(e & FRESH, 0);
        assert_eq!(last(e), run_key(39, 1));
        let x = exit(e);
        assert_eq!(in_flight(x), NR_NONE);
        assert_eq!(last(x), run_key(39, 1), "the run survives the exit");
        assert_eq!(last_nr(last(x)), 39);
        assert_eq!(last_abi(last(x)), 1);
        assert_eq!(exe(with_exe(x, 9)), 9);
        assert_eq!(last(with_exe(x, 9)), last(x));
        assert_eq!(child_of(new(1, WAIT_EXEC)) & WAIT_EXEC, WAIT_EXEC);
        let c = child_of(x);
        assert_eq!(c & WAIT_EXEC, 0);
        assert_eq!(last(c), NR_NONE);
        assert_eq!(c & FRESH, FRESH);
        assert_eq!(exe(c), 7);
        assert_eq!(group(c), 0);
    }

    #[test]
    fn the_group_survives_every_transition_and_is_inherited() {
        for g in [0, 1, 31, 32, 513, MAX_GROUPS - 1] {
            let s = new_in(g, 7, FRESH);
            assert_eq!(group(s), g);
            assert_eq!(s & TRACKED, TRACKED);
            assert_eq!(s & FRESH, FRESH);
            assert_eq!(s & WAIT_EXEC, 0, "group bits never touch the flags");
            assert_eq!(in_flight(s), NR_NONE);
            let e = enter(s, 59, 0);
            assert_eq!(group(e), g);
            assert_eq!(in_flight(e), 59);
            assert_eq!(group(exit(e)), g);
            assert_eq!(group(with_exe(e, 3)), g);
            assert_eq!(exe(with_exe(e, 3)), 3);
            assert_eq!(group(child_of(e)), g);
        }
        assert_eq!(group(new(1, 0)), 0);
    }
}
