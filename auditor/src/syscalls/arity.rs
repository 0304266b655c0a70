//! How many arguments each syscall takes, from the running kernel's own syscall trace events
//! (`events/syscalls/sys_enter_NAME/format` in tracefs: one field per argument after
//! `__syscall_nr`).
//!
//! Used where two calls must count as the same call: the registers a syscall does not take
//! still hold whatever the caller left there, so comparing all six would tell apart calls that
//! are identical. A syscall the kernel has no trace event for (a few, e.g. those defined
//! without `SYSCALL_DEFINEn`) has no arity here, and all six registers count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where tracefs is normally mounted, and the older place under debugfs.
const TRACEFS: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Syscall name → number of arguments.
#[derive(Clone, Debug, Default)]
pub struct Arity {
    by_name: HashMap<String, u8>,
}

impl Arity {
    /// The arguments `name` takes, if the kernel says.
    pub fn of(&self, name: &str) -> Option<u8> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// `args` with the registers `name` does not take set to 0.
    pub fn significant(&self, name: Option<&str>, mut args: [u64; 6]) -> [u64; 6] {
        if let Some(n) = name.and_then(|n| self.of(n)) {
            for a in args.iter_mut().skip(usize::from(n)) {
                *a = 0;
            }
        }
        args
    }

    /// Read every syscall's arity from tracefs, mounting it at its usual place if it is not
    /// mounted (as bpftrace does). Empty (with the reason) when tracefs is not available.
    pub fn load() -> Result<Arity, String> {
        let dir = events_dir().ok_or_else(|| {
            "tracefs is not mounted and cannot be mounted at /sys/kernel/tracing".to_owned()
        })?;
        Self::load_from(&dir)
    }

    /// Read every `sys_enter_*/format` below `dir` (an `events/syscalls` directory).
    pub fn load_from(dir: &Path) -> Result<Arity, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut by_name = HashMap::new();
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_prefix("sys_enter_")) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(e.path().join("format")) else {
                continue;
            };
            if let Some(n) = parse_format(&text) {
                by_name.insert(name.to_owned(), n);
            }
        }
        Ok(Arity { by_name })
    }
}

/// The `events/syscalls` directory of a mounted tracefs, mounting tracefs if needed.
fn events_dir() -> Option<PathBuf> {
    let find = || {
        TRACEFS
            .iter()
            .map(|t| Path::new(t).join("events/syscalls"))
            .find(|p| p.is_dir())
    };
    if let Some(d) = find() {
        return Some(d);
    }
    let at = Path::new(TRACEFS[0]);
    if let Err(e) = nix::mount::mount(
        Some("tracefs"),
        at,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        tracing::debug!(error = %e, "cannot mount tracefs");
        return None;
    }
    find()
}

/// The number of arguments in a `sys_enter_*` format: the fields after `__syscall_nr`, at
/// most six. `None` if the text is not such a format.
pub fn parse_format(text: &str) -> Option<u8> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| l.starts_with("field:") && l.contains(" __syscall_nr;"))?;
    let n = lines.take_while(|l| l.starts_with("field:")).count();
    u8::try_from(n.min(6)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "name: sys_enter_read\nID: 842\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n\nprint fmt: \"fd: 0x%08lx\"\n";

    #[test]
    fn counts_the_fields_after_the_syscall_number() {
        assert_eq!(parse_format(READ), Some(3));
        let none = "format:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"\"\n";
        assert_eq!(parse_format(none), Some(0));
        assert_eq!(parse_format("garbage"), None);
    }

    #[test]
    fn masks_the_registers_a_call_does_not_take() {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("sys_enter_read");
        std::fs::create_dir(&ev).unwrap();
        std::fs::write(ev.join("format"), READ).unwrap();
        let a = Arity::load_from(dir.path()).unwrap();
        assert_eq!(a.of("read"), Some(3));
        assert_eq!(
            a.significant(Some("read"), [1, 2, 3, 4, 5, 6]),
            [1, 2, 3, 0, 0, 0]
        );
        // Unknown: every register counts.
        assert_eq!(
            a.significant(Some("nope"), [1, 2, 3, 4, 5, 6]),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(a.significant(None, [1; 6]), [1; 6]);
    }

    /// The running kernel's own events (mounting tracefs needs root: without it, skipped with
    /// a message, except under CI, where it must run).
    #[test]
    fn the_running_kernel_says_getppid_takes_none_and_mknodat_four() {
        let a = match Arity::load() {
            Ok(a) => a,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(a.of("getppid"), Some(0));
        assert_eq!(a.of("mknodat"), Some(4));
        assert_eq!(a.of("openat"), Some(4));
    }
}
