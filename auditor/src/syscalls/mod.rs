//! System call and errno tables for the x86 ABIs of Linux 6.18, and decoders for the arguments
//! that policies depend on ([`decode`]).
//!
//! The tables are plain sorted data (`(number, name)`), so this module answers "what is syscall
//! 59 on x86_64" without libseccomp; [`crate::seccomp::names`] cross-checks them against the
//! installed libseccomp in its tests.

use std::collections::HashMap;
use std::sync::OnceLock;

mod abi;
pub mod arity;
pub mod decode;
mod errno;
mod i386;
mod x32;
mod x86_64;

pub use abi::{abi_of, Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};

/// The ABIs, in the order used for iteration elsewhere.
pub const ABIS: [Abi; 3] = [Abi::X86_64, Abi::I386, Abi::X32];

fn table(abi: Abi) -> &'static [(u32, &'static str)] {
    match abi {
        Abi::X86_64 => x86_64::SYSCALLS,
        Abi::I386 => i386::SYSCALLS,
        Abi::X32 => x32::SYSCALLS,
    }
}

/// `abi`'s table indexed both ways, built once and shared by the whole process.
struct Index {
    by_name: HashMap<&'static str, u32>,
    /// Names by number (a table read per lookup: the broker names every call it is notified
    /// of; a few KiB per ABI).
    by_number: Vec<Option<&'static str>>,
}

fn index(abi: Abi) -> &'static Index {
    static X86_64: OnceLock<Index> = OnceLock::new();
    static I386: OnceLock<Index> = OnceLock::new();
    static X32: OnceLock<Index> = OnceLock::new();
    let cell = match abi {
        Abi::X86_64 => &X86_64,
        Abi::I386 => &I386,
        Abi::X32 => &X32,
    };
    cell.get_or_init(|| {
        let t = table(abi);
        let len = t.last().map_or(0, |&(nr, _)| nr as usize + 1);
        let mut by_number = vec![None; len];
        for &(nr, name) in t {
            if let Some(slot) = by_number.get_mut(nr as usize) {
                *slot = Some(name);
            }
        }
        Index {
            by_name: t.iter().map(|&(nr, name)| (name, nr)).collect(),
            by_number,
        }
    })
}

/// Syscall `nr` of `abi` as the tables number it: an x32 number without [`X32_SYSCALL_BIT`].
pub fn table_number(abi: Abi, nr: u32) -> u32 {
    if abi == Abi::X32 {
        nr & !X32_SYSCALL_BIT
    } else {
        nr
    }
}

/// The name of syscall `nr` in `abi`. For x32, `nr` is given without [`X32_SYSCALL_BIT`]
/// (a number that still carries the bit is accepted too).
pub fn name(abi: Abi, nr: u32) -> Option<&'static str> {
    index(abi)
        .by_number
        .get(table_number(abi, nr) as usize)
        .copied()
        .flatten()
}

/// The number of syscall `name` in `abi` (x32: without [`X32_SYSCALL_BIT`]). Names are the
/// kernel's, exactly (lower case, e.g. `newfstatat`, `umount2`, `_sysctl`).
pub fn number(abi: Abi, name: &str) -> Option<u32> {
    index(abi).by_name.get(name).copied()
}

/// Every syscall of `abi` as `(number, name)`, sorted by number.
pub fn all(abi: Abi) -> impl Iterator<Item = (u32, &'static str)> {
    table(abi).iter().copied()
}

/// Did-you-mean for a syscall name that [`number`] does not know: the closest name of `abi` by
/// edit distance (transpositions count once), or `None` when nothing is close enough. A known
/// name returns itself; comparison ignores ASCII case.
pub fn suggest(abi: Abi, name: &str) -> Option<&'static str> {
    let wanted = name.trim().to_ascii_lowercase();
    if wanted.is_empty() {
        return None;
    }
    if let Some((_, known)) = table(abi).iter().find(|&&(_, n)| n == wanted) {
        return Some(known);
    }
    // One edit per four characters, at least one and at most three: "exceve" -> "execve",
    // "mknod_at" -> "mknodat", but "read" does not turn into "bpf".
    let limit = (wanted.chars().count() / 4).clamp(1, 3);
    // Closest first; among equally close names, one of the same length (a typo rarely changes
    // it: "clone4" -> "clone3", not "clone"), then the more similar prefix, then alphabetical.
    let wanted_len = wanted.chars().count();
    let mut best: Option<(usize, usize, f64, &'static str)> = None;
    for &(_, candidate) in table(abi) {
        let distance = strsim::damerau_levenshtein(&wanted, candidate);
        if distance > limit {
            continue;
        }
        let length_gap = wanted_len.abs_diff(candidate.len());
        let similarity = strsim::jaro_winkler(&wanted, candidate);
        let better = match best {
            None => true,
            Some((d, g, s, n)) => (distance, length_gap)
                .cmp(&(d, g))
                .then_with(|| s.total_cmp(&similarity))
                .then_with(|| candidate.cmp(n))
                .is_lt(),
        };
        if better {
            best = Some((distance, length_gap, similarity, candidate));
        }
    }
    best.map(|(_, _, _, candidate)| candidate)
}

/// The name of errno `errno` (`1` -> `"EPERM"`), including the kernel-internal codes
/// 512..=531 (`512` -> `"ERESTARTSYS"`). For numbers with two names, the primary one
/// (`EAGAIN`, `EDEADLK`).
pub fn errno_name(errno: u32) -> Option<&'static str> {
    let table = errno::ERRNO;
    table
        .binary_search_by_key(&errno, |&(n, _)| n)
        .ok()
        .and_then(|i| table.get(i))
        .map(|&(_, name)| name)
}

/// The number of errno `name`, ignoring ASCII case; aliases (`EWOULDBLOCK`, `EDEADLOCK`,
/// `ENOTSUP`) are accepted.
pub fn errno_number(name: &str) -> Option<u32> {
    let name = name.trim();
    errno::ERRNO
        .iter()
        .find(|&&(_, n)| n.eq_ignore_ascii_case(name))
        .map(|&(nr, _)| nr)
        .or_else(|| {
            errno::ALIASES
                .iter()
                .find(|&&(n, _)| n.eq_ignore_ascii_case(name))
                .map(|&(_, nr)| nr)
        })
}

/// Whether `errno` is one of the internal restart codes (ERESTARTSYS, ERESTARTNOINTR,
/// ERESTARTNOHAND, ENOIOCTLCMD, ERESTART_RESTARTBLOCK): the kernel restarts the call or turns
/// the code into EINTR (ENOTTY for ENOIOCTLCMD) before user space sees it, so it is not a failure
/// of the call.
pub fn is_restart(errno: u32) -> bool {
    (512..=516).contains(&errno)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn spot_checks_x86_64() {
        let abi = Abi::X86_64;
        for (nr, n) in [
            (0, "read"),
            (1, "write"),
            (13, "rt_sigaction"),
            (16, "ioctl"),
            (56, "clone"),
            (59, "execve"),
            (101, "ptrace"),
            (156, "_sysctl"),
            (157, "prctl"),
            (165, "mount"),
            (166, "umount2"),
            (257, "openat"),
            (259, "mknodat"),
            (262, "newfstatat"),
            (272, "unshare"),
            (317, "seccomp"),
            (321, "bpf"),
            (322, "execveat"),
            (334, "rseq"),
            (335, "uretprobe"),
            (336, "uprobe"),
            (424, "pidfd_send_signal"),
            (435, "clone3"),
            (437, "openat2"),
            (443, "quotactl_fd"),
            (462, "mseal"),
            (463, "setxattrat"),
            (464, "getxattrat"),
            (465, "listxattrat"),
            (466, "removexattrat"),
            (467, "open_tree_attr"),
            (468, "file_getattr"),
            (469, "file_setattr"),
        ] {
            assert_eq!(name(abi, nr), Some(n), "x86_64 {nr}");
            assert_eq!(number(abi, n), Some(nr), "x86_64 {n}");
        }
        // Not in 6.18 (listns is 6.19), and the x32-only range is not x86_64.
        assert_eq!(name(abi, 470), None);
        assert_eq!(name(abi, 337), None);
        assert_eq!(name(abi, 520), None);
        assert_eq!(number(abi, "socketcall"), None);
        assert_eq!(all(abi).last(), Some((469, "file_setattr")));
    }

    #[test]
    fn spot_checks_i386() {
        let abi = Abi::I386;
        for (nr, n) in [
            (0, "restart_syscall"),
            (1, "exit"),
            (3, "read"),
            (11, "execve"),
            (54, "ioctl"),
            (102, "socketcall"),
            (120, "clone"),
            (172, "prctl"),
            (192, "mmap2"),
            (195, "stat64"),
            (243, "set_thread_area"),
            (297, "mknodat"),
            (354, "seccomp"),
            (357, "bpf"),
            (358, "execveat"),
            (359, "socket"),
            (384, "arch_prctl"),
            (403, "clock_gettime64"),
            (435, "clone3"),
            (462, "mseal"),
            (469, "file_setattr"),
        ] {
            assert_eq!(name(abi, nr), Some(n), "i386 {nr}");
            assert_eq!(number(abi, n), Some(nr), "i386 {n}");
        }
        // uretprobe/uprobe are x86_64 (and x32) only.
        assert_eq!(number(abi, "uretprobe"), None);
        assert_eq!(number(abi, "uprobe"), None);
        assert_eq!(name(abi, 470), None);
        assert_eq!(all(abi).last(), Some((469, "file_setattr")));
    }

    #[test]
    fn spot_checks_x32() {
        let abi = Abi::X32;
        for (nr, n) in [
            (0, "read"),
            (14, "rt_sigprocmask"),
            (56, "clone"),
            (257, "openat"),
            (335, "uretprobe"),
            (336, "uprobe"),
            (435, "clone3"),
            (469, "file_setattr"),
            (512, "rt_sigaction"),
            (513, "rt_sigreturn"),
            (514, "ioctl"),
            (520, "execve"),
            (521, "ptrace"),
            (545, "execveat"),
            (547, "pwritev2"),
        ] {
            assert_eq!(name(abi, nr), Some(n), "x32 {nr}");
            assert_eq!(number(abi, n), Some(nr), "x32 {n}");
        }
        // The 64-only entries are not x32 syscalls.
        for nr in [13, 15, 16, 19, 20, 45, 59, 101, 134, 156, 205, 322] {
            assert_eq!(name(abi, nr), None, "x32 {nr} is 64-only");
        }
        // The x32 bit is tolerated on lookup by number.
        assert_eq!(name(abi, X32_SYSCALL_BIT | 520), Some("execve"));
        assert_eq!(all(abi).last(), Some((547, "pwritev2")));
    }

    #[test]
    fn tables_are_sorted_unique_and_round_trip() {
        for abi in ABIS {
            let entries: Vec<_> = all(abi).collect();
            assert!(entries.len() > 350, "{abi:?}: {} entries", entries.len());
            for pair in entries.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{abi:?}: {pair:?} not strictly increasing"
                );
            }
            let mut names = HashSet::new();
            for &(nr, n) in &entries {
                assert!(names.insert(n), "{abi:?}: duplicate name {n}");
                assert!(
                    !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{abi:?}: odd name {n:?}"
                );
                assert_eq!(name(abi, nr), Some(n));
                assert_eq!(number(abi, n), Some(nr));
            }
        }
    }

    #[test]
    fn x32_is_common_entries_plus_x32_range() {
        // Every x32 entry below 512 is a common entry, numbered as on x86_64.
        for (nr, n) in all(Abi::X32) {
            if nr < 512 {
                assert_eq!(name(Abi::X86_64, nr), Some(n), "x32 {nr} {n}");
            } else {
                assert!(nr <= 547, "x32 {nr} beyond the legacy range");
                assert!(
                    number(Abi::X86_64, n).is_some(),
                    "x32 {n} has a 64-bit twin"
                );
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest(Abi::X86_64, "exceve"), Some("execve"));
        assert_eq!(suggest(Abi::X86_64, "mknod_at"), Some("mknodat"));
        assert_eq!(suggest(Abi::X86_64, "OPENAT"), Some("openat"));
        assert_eq!(suggest(Abi::X86_64, "clone4"), Some("clone3"));
        assert_eq!(suggest(Abi::X86_64, "socketcal"), None);
        assert_eq!(suggest(Abi::I386, "socketcal"), Some("socketcall"));
        assert_eq!(suggest(Abi::X86_64, "read"), Some("read"));
        assert_eq!(suggest(Abi::X86_64, "frobnicate"), None);
        assert_eq!(suggest(Abi::X86_64, ""), None);
    }

    #[test]
    fn errno_spot_checks() {
        for (nr, n) in [
            (1, "EPERM"),
            (2, "ENOENT"),
            (4, "EINTR"),
            (11, "EAGAIN"),
            (13, "EACCES"),
            (22, "EINVAL"),
            (25, "ENOTTY"),
            (35, "EDEADLK"),
            (38, "ENOSYS"),
            (95, "EOPNOTSUPP"),
            (133, "EHWPOISON"),
            (512, "ERESTARTSYS"),
            (513, "ERESTARTNOINTR"),
            (514, "ERESTARTNOHAND"),
            (515, "ENOIOCTLCMD"),
            (516, "ERESTART_RESTARTBLOCK"),
            (517, "EPROBE_DEFER"),
            (519, "ENOPARAM"),
            (521, "EBADHANDLE"),
            (524, "ENOTSUPP"),
            (531, "ENOGRACE"),
        ] {
            assert_eq!(errno_name(nr), Some(n));
            assert_eq!(errno_number(n), Some(nr));
        }
        for unassigned in [0, 41, 58, 134, 511, 520, 532, 4095] {
            assert_eq!(errno_name(unassigned), None, "{unassigned}");
        }
        assert_eq!(errno_number("EWOULDBLOCK"), Some(11));
        assert_eq!(errno_number("EDEADLOCK"), Some(35));
        assert_eq!(errno_number("ENOTSUP"), Some(95));
        assert_eq!(errno_number("eperm"), Some(1));
        assert_eq!(errno_number("Enosys"), Some(38));
        assert_eq!(errno_number("EFROB"), None);
    }

    #[test]
    fn errno_table_round_trips() {
        let mut count = 0;
        let mut previous = 0;
        for &(nr, n) in errno::ERRNO {
            assert!(nr > previous, "{nr} {n} out of order");
            previous = nr;
            assert_eq!(errno_name(nr), Some(n));
            assert_eq!(errno_number(n), Some(nr));
            count += 1;
        }
        // 1..=133 without 41 and 58, then 512..=531 without 520.
        assert_eq!(count, 131 + 19);
        for &(alias, nr) in errno::ALIASES {
            assert_ne!(errno_name(nr), Some(alias), "aliases are never returned");
            assert_eq!(errno_number(alias), Some(nr));
        }
    }

    #[test]
    fn restart_codes() {
        for e in 512..=516 {
            assert!(is_restart(e), "{e}");
        }
        for e in [0, 1, 4, 11, 511, 517, 524, 531] {
            assert!(!is_restart(e), "{e}");
        }
    }
}
