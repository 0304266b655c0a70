//! Syscall names as libseccomp resolves them. The filter compiler goes through libseccomp, so a
//! name that our tables ([`crate::syscalls`]) know but the installed libseccomp does not (it is
//! older than the kernel) cannot be put in a filter by name; these functions tell the caller.

use libseccomp::{ScmpArch, ScmpSyscall};

use crate::syscalls::Abi;
use crate::syscalls::X32_SYSCALL_BIT;

fn arch(abi: Abi) -> ScmpArch {
    match abi {
        Abi::X86_64 => ScmpArch::X8664,
        Abi::I386 => ScmpArch::X86,
        Abi::X32 => ScmpArch::X32,
    }
}

/// Highest syscall number searched when libseccomp answers a name with a pseudo number.
const MAX_SYSCALL_NUMBER: i32 = 1024;

/// The number libseccomp gives `name` on `abi` (x32: without [`X32_SYSCALL_BIT`], like
/// [`crate::syscalls::number`]); `None` when libseccomp does not know the name there.
///
/// libseccomp answers some names with a negative pseudo number: names that do not exist on the
/// architecture (`socketcall` on x86_64), which count as unknown, and on i386 the socket and
/// SysV IPC calls (`socket`, `semget`, ...), whose rules it also applies to the multiplexers
/// `socketcall(2)`/`ipc(2)`. For the latter the direct number (`socket` = 359) comes from
/// libseccomp's number-to-name table.
pub fn libseccomp_number(abi: Abi, name: &str) -> Option<i32> {
    let nr = ScmpSyscall::from_name_by_arch(name, arch(abi))
        .ok()?
        .as_raw_syscall();
    let nr = if nr >= 0 {
        nr
    } else if abi == Abi::I386 {
        direct_number(abi, name)?
    } else {
        return None;
    };
    if abi == Abi::X32 {
        // The bit is set in every x32 number libseccomp returns; it fits in an i32 (bit 30).
        Some(nr & !(X32_SYSCALL_BIT as i32))
    } else {
        Some(nr)
    }
}

/// The number whose libseccomp name on `abi` is `name`, searched from 0.
fn direct_number(abi: Abi, name: &str) -> Option<i32> {
    (0..=MAX_SYSCALL_NUMBER).find(|&nr| {
        ScmpSyscall::from(nr)
            .get_name_by_arch(arch(abi))
            .is_ok_and(|n| n == name)
    })
}

/// Whether the installed libseccomp can resolve `name` on `abi`.
pub fn libseccomp_knows(abi: Abi, name: &str) -> bool {
    libseccomp_number(abi, name).is_some()
}

/// A note for an exported profile that names syscalls this host's libseccomp cannot resolve:
/// a runtime built with it drops those names (runc 1.1 silently), so their rules are not
/// enforced by the profile. `None` when it knows them all.
pub fn unenforceable_note(names: &[&str]) -> Option<String> {
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !libseccomp_knows(Abi::X86_64, n))
        .collect();
    (!unknown.is_empty()).then(|| {
        format!(
            "this host's libseccomp cannot name {}: a runtime built with it (runc 1.1 and crun 1.8 on Debian 12) drops these names and does not enforce their rule from the profile; such a runtime answers syscalls newer than its table with ENOSYS by itself, and `auditor enforce` refuses them by number",
            unknown.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls;

    /// Syscalls added to the kernel after libseccomp 2.5.4 (Debian 12's) learnt its tables,
    /// with the kernel version that added them: the only names it may fail to resolve. (Debian's
    /// 2.5.4-1+deb12u1 already resolves those up to futex_requeue, see the test output.)
    const NEWER_THAN_LIBSECCOMP_2_5_4: &[(&str, &str)] = &[
        ("cachestat", "6.5"),
        ("fchmodat2", "6.6"),
        // Debian's 2.5.4-1+deb12u1 resolves this one on x86_64 (not on x32).
        ("map_shadow_stack", "6.6"),
        ("futex_wake", "6.7"),
        ("futex_wait", "6.7"),
        ("futex_requeue", "6.7"),
        ("statmount", "6.8"),
        ("listmount", "6.8"),
        ("lsm_get_self_attr", "6.8"),
        ("lsm_set_self_attr", "6.8"),
        ("lsm_list_modules", "6.8"),
        ("mseal", "6.10"),
        ("uretprobe", "6.11"),
        ("setxattrat", "6.13"),
        ("getxattrat", "6.13"),
        ("listxattrat", "6.13"),
        ("removexattrat", "6.13"),
        ("open_tree_attr", "6.15"),
        ("file_getattr", "6.17"),
        ("file_setattr", "6.17"),
        ("uprobe", "6.18"),
    ];

    #[test]
    fn libseccomp_agrees_with_our_tables() {
        for abi in syscalls::ABIS {
            let mut unresolved = Vec::new();
            for (nr, name) in syscalls::all(abi) {
                match libseccomp_number(abi, name) {
                    Some(theirs) => assert_eq!(
                        i64::from(theirs),
                        i64::from(nr),
                        "{abi:?} {name}: libseccomp says {theirs}, our table {nr}"
                    ),
                    None => unresolved.push(name),
                }
            }
            println!(
                "{abi:?}: libseccomp {} cannot resolve {} of {} names: {unresolved:?}",
                libseccomp_version(),
                unresolved.len(),
                syscalls::all(abi).count()
            );
            for name in &unresolved {
                assert!(
                    NEWER_THAN_LIBSECCOMP_2_5_4
                        .iter()
                        .any(|(newer, _)| newer == name),
                    "{abi:?}: libseccomp cannot resolve {name}, which is not a new syscall"
                );
            }
        }
    }

    #[test]
    fn known_and_unknown_names() {
        assert_eq!(libseccomp_number(Abi::X86_64, "execve"), Some(59));
        assert_eq!(libseccomp_number(Abi::I386, "execve"), Some(11));
        assert_eq!(libseccomp_number(Abi::I386, "socketcall"), Some(102));
        assert_eq!(libseccomp_number(Abi::X32, "execve"), Some(520));
        assert_eq!(libseccomp_number(Abi::X32, "read"), Some(0));
        assert!(libseccomp_knows(Abi::X86_64, "clone3"));
        // Multiplexed on i386: libseccomp's name lookup gives a pseudo number (-101).
        assert_eq!(libseccomp_number(Abi::I386, "socket"), Some(359));
        assert_eq!(libseccomp_number(Abi::I386, "semget"), Some(393));
        assert_eq!(libseccomp_number(Abi::I386, "recvmmsg"), Some(337));
        // Exists only on i386: libseccomp's negative pseudo number is not a syscall number.
        assert!(!libseccomp_knows(Abi::X86_64, "socketcall"));
        assert!(!libseccomp_knows(Abi::X32, "socketcall"));
        assert!(!libseccomp_knows(Abi::X86_64, "no_such_syscall"));
        assert!(!libseccomp_knows(Abi::X86_64, ""));
        assert!(!libseccomp_knows(Abi::X86_64, "exec\0ve"));
    }

    fn libseccomp_version() -> String {
        libseccomp::ScmpVersion::current().map_or_else(
            |e| format!("(version unknown: {e})"),
            |v| format!("{}.{}.{}", v.major, v.minor, v.micro),
        )
    }
}
