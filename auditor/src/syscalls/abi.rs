//! The x86 system call ABIs and how a seccomp filter tells them apart: `AUDIT_ARCH_*` in
//! `seccomp_data.arch`, and the x32 bit in the number.

use serde::{Deserialize, Serialize};

/// `AUDIT_ARCH_X86_64` (linux/audit.h): x86_64 and x32 calls.
pub const AUDIT_ARCH_X86_64: u32 = linux_raw_sys::ptrace::AUDIT_ARCH_X86_64;
/// `AUDIT_ARCH_I386` (linux/audit.h): i386 calls, from 32-bit processes or `int $0x80`.
pub const AUDIT_ARCH_I386: u32 = linux_raw_sys::ptrace::AUDIT_ARCH_I386;
/// Set in the syscall number of every x32 call (`__X32_SYSCALL_BIT`); the tables store x32
/// numbers without it.
pub const X32_SYSCALL_BIT: u32 = linux_raw_sys::general::__X32_SYSCALL_BIT;

/// The ABI a syscall was made through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    X86_64,
    /// i386: a 32-bit process, or `int $0x80` from a 64-bit one.
    I386,
    X32,
}

impl Abi {
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::X86_64 => "x86_64",
            Abi::I386 => "i386",
            Abi::X32 => "x32",
        }
    }
}

impl std::fmt::Display for Abi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Abi {
    /// The `AUDIT_ARCH_*` a filter sees for calls of this ABI.
    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
        }
    }
}

/// The ABI of a call from its `AUDIT_ARCH_*` and number.
pub fn abi_of(arch: u32, nr: i32) -> Option<Abi> {
    match arch {
        AUDIT_ARCH_X86_64 if (nr as u32) & X32_SYSCALL_BIT != 0 => Some(Abi::X32),
        AUDIT_ARCH_X86_64 => Some(Abi::X86_64),
        AUDIT_ARCH_I386 => Some(Abi::I386),
        _ => None,
    }
}
