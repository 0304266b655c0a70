//! Which arguments of a syscall the kernel side captures. User space fills
//! [`crate::names::MAP_ARG_SPECS`] from its syscall table, so the eBPF code holds no syscall
//! numbers of its own (beyond `execve`) and decodes nothing: it copies.
//!
//! A spec is a `u32`:
//! ```text
//!  31   28 27  24 23  20 19  16 15  12 11   8 7  6 5      0
//! +-------+------+------+------+------+------+----+--------+
//! |   0   |  1   | mem  | str2 | str1 | str0 |  0 | scalars|
//! +-------+------+------+------+------+------+----+--------+
//! ```
//! `scalars`: a mask of the argument registers whose values are kept (the rest are zeroed so that
//! unused registers do not make tuples distinct); `strN`: the index of an argument that points to
//! a NUL-terminated user string copied into string slot N ([`NONE`] = no string); `mem`: the
//! index of an argument that points to a `u64` in user memory to copy (e.g. `clone_args.flags`);
//! bit 24 marks a present spec.

pub const NONE: u32 = 0xf;
pub const PRESENT: u32 = 1 << 24;

/// Index into the per-(abi, nr) arrays.
#[inline(always)]
pub const fn index(abi: u8, nr: u16) -> u32 {
    (abi as u32) * (crate::abi::MAX_NR as u32) + nr as u32
}

/// Size of the per-(abi, nr) arrays (one group's table).
pub const TABLE_LEN: u32 = crate::abi::COUNT as u32 * crate::abi::MAX_NR as u32;

/// Index into the per-group, per-(abi, nr) arrays (`CALLS`, `ARG_READ_FAILS`): group after
/// group, so that group 0 alone is exactly the single-group layout.
#[inline(always)]
pub const fn group_index(group: u32, abi: u8, nr: u16) -> u32 {
    group * TABLE_LEN + index(abi, nr)
}

/// Build a spec. Arguments are register indices 0..=5 or [`NONE`].
pub const fn spec(scalars: u8, str0: u32, str1: u32, str2: u32, mem: u32) -> u32 {
    PRESENT | (scalars as u32 & 0x3f) | (str0 << 8) | (str1 << 12) | (str2 << 16) | (mem << 20)
}

#[inline(always)]
pub const fn scalars(spec: u32) -> u8 {
    (spec & 0x3f) as u8
}

#[inline(always)]
pub const fn str_arg(spec: u32, slot: u32) -> u32 {
    (spec >> (8 + 4 * slot)) & 0xf
}

#[inline(always)]
pub const fn mem_arg(spec: u32) -> u32 {
    (spec >> 20) & 0xf
}
