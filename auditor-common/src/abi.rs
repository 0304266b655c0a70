//! Syscall ABIs a task can enter the kernel through, and the few syscall numbers the kernel side
//! must know by itself. x86_64 only for now: this is the one place that knows the architecture.

/// The native 64-bit ABI.
pub const X86_64: u8 = 0;
/// The i386 ABI: a 32-bit process, or `int $0x80` from a 64-bit one (`TS_COMPAT`).
pub const I386: u8 = 1;
/// The x32 ABI (`__X32_SYSCALL_BIT` set in the number).
pub const X32: u8 = 2;
/// Number of ABIs; sizes per-ABI arrays.
pub const COUNT: u8 = 3;

/// `__X32_SYSCALL_BIT`.
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;
/// `TS_COMPAT` in `thread_info.status`: a 32-bit syscall is in progress.
pub const TS_COMPAT: u32 = 0x0002;

/// `execve` and `execveat` per ABI (x86_64, i386, x32 numbers without the x32 bit).
pub const EXECVE: [u16; 3] = [59, 11, 520];
pub const EXECVEAT: [u16; 3] = [322, 358, 545];

/// Highest syscall number auditor tracks per ABI, exclusive; larger numbers are counted as
/// out of range rather than indexing past the per-syscall arrays.
pub const MAX_NR: u16 = 1024;
