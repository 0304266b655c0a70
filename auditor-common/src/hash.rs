//! FNV-1a, computed the same way by the eBPF programs and by user space.

pub const FNV32_OFFSET: u32 = 0x811c_9dc5;
pub const FNV32_PRIME: u32 = 0x0100_0193;
pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline(always)]
pub const fn fnv32_byte(h: u32, b: u8) -> u32 {
    (h ^ b as u32).wrapping_mul(FNV32_PRIME)
}

#[inline(always)]
pub const fn fnv64_byte(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(FNV64_PRIME)
}

#[inline(always)]
pub const fn fnv64_u64(mut h: u64, v: u64) -> u64 {
    let mut i = 0;
    while i < 8 {
        h = fnv64_byte(h, (v >> (i * 8)) as u8);
        i += 1;
    }
    h
}

/// The executable id of a file name as given to `execve` (bytes before the first NUL).
/// Never 0: 0 means "not yet known".
pub fn exe_id(name: &[u8]) -> u32 {
    let mut h = FNV32_OFFSET;
    for &b in name {
        if b == 0 {
            break;
        }
        h = fnv32_byte(h, b);
    }
    if h == 0 {
        1
    } else {
        h
    }
}
