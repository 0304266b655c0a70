//! Calls the filter refuses by itself (its errno and trap actions) never reach the broker: the
//! observer reports each at `sys_exit` (an exit without an enter) and they are written to the
//! audit log here. Calls the broker answered itself (emulated or denied) look the same to the
//! observer; [`Answered`] tells them apart so that each call has exactly one record. A call the
//! filter kills reaches neither hook (the task dies with SIGSYS) and is not recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use auditor_common::abi;

use super::audit::Record;
use super::decide::Decider;
use crate::seccomp::notify::SeccompData;
use crate::syscalls::X32_SYSCALL_BIT;
use crate::syscalls::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};

/// Notifications the broker answered without CONTINUE, by (thread, number without the x32
/// bit), not yet seen by the observer.
#[derive(Debug, Default)]
pub struct Answered(Mutex<HashMap<(u32, u32), u32>>);

impl Answered {
    /// The broker is about to answer this call itself (before the answer, so that the
    /// observer's event always finds the note).
    pub fn note(&self, tid: u32, nr: i32) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((tid, nr as u32 & !X32_SYSCALL_BIT)).or_default() += 1;
        }
    }

    /// Whether the observer's refusal is one the broker answered (and forget it).
    pub fn take(&self, tid: u32, nr: u32) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        match m.get_mut(&(tid, nr)) {
            Some(c) if *c > 1 => {
                *c -= 1;
                true
            }
            Some(_) => {
                m.remove(&(tid, nr));
                true
            }
            None => false,
        }
    }
}

/// One refusal as the observer saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub tid: u32,
    pub exe: Option<String>,
    /// Without the x32 bit.
    pub nr: u32,
    /// `auditor_common::abi`.
    pub abi: u8,
    /// What the caller got (0 for none, e.g. a trap).
    pub errno: u32,
    /// Boot-time clock of the exit.
    pub time_ns: u64,
}

/// The audit record for a refusal. `boot_offset`: wall clock minus boot clock.
pub fn record(decider: &Decider, r: &Refusal, boot_offset: Duration) -> Record {
    let (arch, nr) = match r.abi {
        abi::I386 => (AUDIT_ARCH_I386, r.nr as i32),
        abi::X32 => (AUDIT_ARCH_X86_64, (r.nr | X32_SYSCALL_BIT) as i32),
        _ => (AUDIT_ARCH_X86_64, r.nr as i32),
    };
    // The filter compared registers the observer does not report: the rule is the one that
    // names the call without conditions, or the default action.
    let d = decider.decide(&SeccompData {
        nr,
        arch,
        instruction_pointer: 0,
        args: [0; 6],
    });
    let conditional = d
        .rule
        .and_then(|i| decider.policy().rules.get(i))
        .is_some_and(|rule| !rule.args.is_empty());
    let time = SystemTime::UNIX_EPOCH + boot_offset + Duration::from_nanos(r.time_ns);
    Record {
        time: humantime::format_rfc3339_micros(time).to_string(),
        container: None,
        policy: None,
        policy_from: None,
        pid: r.tid,
        exe: r.exe.clone(),
        syscall: d
            .syscall
            .map_or_else(|| format!("nr:{}", r.nr), str::to_owned),
        arch: d
            .abi
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
        args: Vec::new(),
        decoded: BTreeMap::new(),
        rule: if conditional {
            None
        } else {
            d.rule.map(|i| i + 1)
        },
        action: if conditional {
            "refused by a conditional rule".to_owned()
        } else {
            d.action.to_string()
        },
        decision: "denied".into(),
        result: match (r.errno, crate::syscalls::errno_name(r.errno)) {
            (0, _) => "signal".into(),
            (_, Some(n)) => format!("-{n}"),
            (e, None) => format!("-{e}"),
        },
        latency_us: 0,
    }
}

/// Wall clock minus the boot clock (what the observer's timestamps count from).
pub fn boot_offset() -> Duration {
    let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(boot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::parse_native;

    #[test]
    fn answered_calls_are_taken_once() {
        let a = Answered::default();
        a.note(7, libc::SYS_mknodat as i32);
        a.note(7, libc::SYS_mknodat as i32);
        assert!(a.take(7, libc::SYS_mknodat as u32));
        assert!(a.take(7, libc::SYS_mknodat as u32));
        assert!(!a.take(7, libc::SYS_mknodat as u32));
        assert!(!a.take(8, 0));
    }

    #[test]
    fn a_refusal_names_the_rule_or_the_default() -> Result<(), Box<dyn std::error::Error>> {
        let d = Decider::new(parse_native(
            "version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPERM\"\n[[rule]]\nname = \"getppid\"\naction = \"errno\"\nerrno = \"EACCES\"\n",
        )?)?;
        let r = Refusal {
            tid: 5,
            exe: Some("/bin/x".into()),
            nr: libc::SYS_getppid as u32,
            abi: abi::X86_64,
            errno: 13,
            time_ns: 0,
        };
        let rec = record(&d, &r, Duration::ZERO);
        assert_eq!(
            (rec.syscall.as_str(), rec.rule, rec.result.as_str()),
            ("getppid", Some(1), "-EACCES")
        );
        let r = Refusal {
            nr: libc::SYS_getpid as u32,
            errno: 1,
            ..r
        };
        let rec = record(&d, &r, Duration::ZERO);
        assert_eq!(
            (rec.syscall.as_str(), rec.rule, rec.decision.as_str()),
            ("getpid", None, "denied")
        );
        Ok(())
    }
}
