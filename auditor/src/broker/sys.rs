//! Kernel ABI definitions the emulation helpers share (capget/capset and openat2), defined
//! here once because libc does not provide them.

/// `struct __user_cap_header_struct`.
#[repr(C)]
pub(super) struct CapHeader {
    pub(super) version: u32,
    pub(super) pid: i32,
}

/// `struct __user_cap_data_struct` (two of them for version 3).
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct CapData {
    pub(super) effective: u32,
    pub(super) permitted: u32,
    pub(super) inheritable: u32,
}

pub(super) const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// Capability numbers (also their bit positions in `CapEff`).
pub(super) const CAP_SYS_ADMIN: u32 = 21;
pub(super) const CAP_MKNOD: u32 = 27;

/// `struct open_how` (openat2, 5.6).
#[repr(C)]
pub(super) struct OpenHow {
    pub(super) flags: u64,
    pub(super) mode: u64,
    pub(super) resolve: u64,
}

pub(super) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(super) const RESOLVE_IN_ROOT: u64 = 0x10;
