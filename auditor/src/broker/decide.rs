//! Which rule of the policy a notified call matched, evaluated in user space on the
//! notification's scalar data (the same registers the filter compared).

use crate::policy::handlers::{self, HandlerConfig, HandlerSpec};
use crate::policy::model::{Action, Condition, Op, Policy};
use crate::seccomp::notify::SeccompData;
use crate::syscalls::Abi;

/// Errors preparing the decisions for a policy.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("rule {rule} (`{syscall}`): {source}")]
    Handler {
        rule: usize,
        syscall: String,
        #[source]
        source: handlers::HandlerError,
    },
}

pub use crate::syscalls::abi_of;

/// A notify rule's handler, resolved once.
#[derive(Debug)]
pub struct Handler {
    pub spec: &'static HandlerSpec,
    pub config: HandlerConfig,
}

/// The policy, ready to match notifications against.
///
/// Indexed by syscall number per ABI once, so that a decision costs a table read and the
/// argument checks of the rules that name the call: no string comparison, no allocation (the
/// broker thread decides every notification). Compact (an agent holds one per listener): a
/// few KiB of offsets per ABI, up to the highest number a rule names.
#[derive(Debug)]
pub struct Decider {
    policy: Policy,
    /// The handler of every (notify rule, syscall name) pair.
    handlers: Vec<Handler>,
    /// Per ABI (in [`crate::syscalls::ABIS`] order): syscall `nr`'s rules are
    /// `rules[starts[nr]..starts[nr + 1]]`.
    starts: [Vec<u32>; 3],
    /// (rule index, its handler's index or [`NO_HANDLER`]), grouped by ABI and number, each
    /// group in policy order.
    rules: Vec<(u32, u32)>,
}

const NO_HANDLER: u32 = u32::MAX;

fn abi_slot(abi: Abi) -> usize {
    match abi {
        Abi::X86_64 => 0,
        Abi::I386 => 1,
        Abi::X32 => 2,
    }
}

/// What the policy says about one call.
#[derive(Debug)]
pub struct Decision<'a> {
    pub abi: Option<Abi>,
    pub syscall: Option<&'static str>,
    /// Index (0-based) of the rule that matched; `None`: the default action.
    pub rule: Option<usize>,
    pub action: &'a Action,
    /// Set when `action` is notify.
    pub handler: Option<&'a Handler>,
}

fn holds(c: &Condition, args: &[u64; 6], abi: Abi) -> bool {
    // 32-bit tasks have 32-bit registers; libseccomp compares only those bits there.
    let width = if abi == Abi::I386 {
        0xffff_ffff
    } else {
        u64::MAX
    };
    let Some(&a) = args.get(usize::from(c.index)) else {
        return false;
    };
    let (a, v) = (a & width, c.value & width);
    match c.op {
        Op::Eq => a == v,
        Op::Ne => a != v,
        Op::Lt => a < v,
        Op::Le => a <= v,
        Op::Gt => a > v,
        Op::Ge => a >= v,
        Op::MaskedEq { mask } => a & mask & width == v,
    }
}

impl Decider {
    /// Resolve every notify rule's handler; refuse handlers this broker cannot run.
    pub fn new(policy: Policy) -> Result<Decider, DecideError> {
        let mut handlers = Vec::new();
        // (ABI slot, number, rule, handler), then sorted into the index's order.
        let mut named: Vec<(usize, u32, u32, u32)> = Vec::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            for name in &rule.names {
                let handler = match &rule.action {
                    Action::Notify(n) => {
                        let (spec, config) = handlers::config_for(n, name).map_err(|source| {
                            DecideError::Handler {
                                rule: i + 1,
                                syscall: name.clone(),
                                source,
                            }
                        })?;
                        handlers.push(Handler { spec, config });
                        u32::try_from(handlers.len() - 1).unwrap_or(NO_HANDLER)
                    }
                    _ => NO_HANDLER,
                };
                for abi in crate::syscalls::ABIS {
                    if let Some(nr) = crate::syscalls::number(abi, name) {
                        named.push((abi_slot(abi), nr, index, handler));
                    }
                }
            }
        }
        // Stable: a name twice in one rule keeps its first handler.
        named.sort_by_key(|&(abi, nr, rule, _)| (abi, nr, rule));
        named.dedup_by_key(|&mut (abi, nr, rule, _)| (abi, nr, rule));
        let mut starts: [Vec<u32>; 3] = Default::default();
        let mut rules = Vec::with_capacity(named.len());
        for (slot, starts) in starts.iter_mut().enumerate() {
            let mine = named.iter().filter(|e| e.0 == slot);
            let len = mine.clone().map(|e| e.1 as usize + 2).max().unwrap_or(0);
            starts.reserve_exact(len);
            let mut next = mine.peekable();
            for nr in 0..len.saturating_sub(1) {
                starts.push(u32::try_from(rules.len()).unwrap_or(u32::MAX));
                while let Some(&&(_, n, rule, handler)) = next.peek() {
                    if n as usize != nr {
                        break;
                    }
                    rules.push((rule, handler));
                    next.next();
                }
            }
            if len > 0 {
                starts.push(u32::try_from(rules.len()).unwrap_or(u32::MAX));
            }
        }
        Ok(Decider {
            policy,
            handlers,
            starts,
            rules,
        })
    }

    /// The rules that name syscall `nr` of `abi` (x32: with or without its bit).
    fn rules_of(&self, abi: Abi, nr: i32) -> &[(u32, u32)] {
        let nr = crate::syscalls::table_number(abi, nr as u32) as usize;
        let starts = &self.starts[abi_slot(abi)];
        match (starts.get(nr), starts.get(nr.wrapping_add(1))) {
            (Some(&a), Some(&b)) => self.rules.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The rule that decides this call. The filter said notify, so a matching notify rule is
    /// preferred; otherwise (complain mode) the first matching rule, or the default action.
    pub fn decide(&self, data: &SeccompData) -> Decision<'_> {
        let abi = abi_of(data.arch, data.nr);
        let syscall = abi.and_then(|a| crate::syscalls::name(a, data.nr as u32));
        let mut first: Option<usize> = None;
        if let (Some(abi), Some(_)) = (abi, syscall) {
            for &(i, handler) in self.rules_of(abi, data.nr) {
                let i = i as usize;
                let Some(rule) = self.policy.rules.get(i) else {
                    continue;
                };
                if !rule.args.iter().all(|c| holds(c, &data.args, abi)) {
                    continue;
                }
                if let Some(h) = self.handlers.get(handler as usize) {
                    return Decision {
                        abi: Some(abi),
                        syscall,
                        rule: Some(i),
                        action: &rule.action,
                        handler: Some(h),
                    };
                }
                first.get_or_insert(i);
            }
        }
        match first.and_then(|i| self.policy.rules.get(i).map(|r| (i, r))) {
            Some((i, r)) => Decision {
                abi,
                syscall,
                rule: Some(i),
                action: &r.action,
                handler: None,
            },
            None => Decision {
                abi,
                syscall,
                rule: None,
                action: &self.policy.default_action,
                handler: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::parse_native;

    const POLICY: &str = r#"version = 1
default_action = "errno"
default_errno = "EPERM"

[[rule]]
names = ["read", "write"]
action = "allow"

[[rule]]
name = "mknodat"
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
args = [{ index = 2, op = "masked-equal", mask = 0o170000, value = 0o020000 }]

[[rule]]
name = "mknodat"
action = "errno"
errno = "EACCES"
"#;

    fn data(nr: i64, args: [u64; 6]) -> SeccompData {
        SeccompData {
            nr: nr as i32,
            arch: crate::syscalls::AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        }
    }

    #[test]
    fn finds_the_notify_rule_then_others_then_the_default() -> Result<(), Box<dyn std::error::Error>>
    {
        let d = Decider::new(parse_native(POLICY)?)?;
        let chr = d.decide(&data(libc::SYS_mknodat, [0, 0, 0o020644, 0x103, 0, 0]));
        assert_eq!((chr.syscall, chr.rule), (Some("mknodat"), Some(1)));
        assert!(chr.handler.is_some());
        let blk = d.decide(&data(libc::SYS_mknodat, [0, 0, 0o060644, 0x800, 0, 0]));
        assert_eq!(blk.rule, Some(2));
        assert_eq!(blk.action, &Action::Errno(13));
        let other = d.decide(&data(libc::SYS_getppid, [0; 6]));
        assert_eq!((other.syscall, other.rule), (Some("getppid"), None));
        let foreign = d.decide(&SeccompData {
            arch: 0xdead,
            ..data(0, [0; 6])
        });
        assert_eq!((foreign.abi, foreign.syscall), (None, None));
        Ok(())
    }

    /// Every ABI is indexed under its own numbers (x32 with or without its bit), a name twice
    /// in a rule counts once, and numbers no table knows decide by the default action.
    #[test]
    fn each_abi_is_decided_by_its_own_numbers() -> Result<(), Box<dyn std::error::Error>> {
        let d = Decider::new(parse_native(
            "version = 1\ndefault_action = \"allow\"\n[[rule]]\nnames = [\"getppid\", \"getppid\", \"waitpid\"]\naction = \"errno\"\nerrno = \"EPERM\"\n[[rule]]\nname = \"getppid\"\naction = \"log\"\n",
        )?)?;
        let at = |arch: u32, nr: i64| {
            let x = d.decide(&SeccompData {
                arch,
                ..data(nr, [0; 6])
            });
            (x.abi, x.syscall, x.rule)
        };
        let x86_64 = crate::syscalls::AUDIT_ARCH_X86_64;
        let i386 = crate::syscalls::AUDIT_ARCH_I386;
        let x32 = i64::from(crate::syscalls::X32_SYSCALL_BIT);
        // getppid: 110 on x86_64 and x32, 64 on i386; 64 on x86_64 is semget.
        assert_eq!(
            at(x86_64, 110),
            (Some(Abi::X86_64), Some("getppid"), Some(0))
        );
        assert_eq!(at(i386, 64), (Some(Abi::I386), Some("getppid"), Some(0)));
        assert_eq!(
            at(x86_64, x32 | 110),
            (Some(Abi::X32), Some("getppid"), Some(0))
        );
        assert_eq!(at(x86_64, 64), (Some(Abi::X86_64), Some("semget"), None));
        assert_eq!(at(i386, 110), (Some(Abi::I386), Some("iopl"), None));
        assert_eq!(at(i386, 7), (Some(Abi::I386), Some("waitpid"), Some(0)));
        assert_eq!(at(x86_64, 100_000).2, None);
        assert_eq!(at(x86_64, -1).2, None);
        Ok(())
    }

    #[test]
    fn handlers_resolve_to_their_kind() -> Result<(), Box<dyn std::error::Error>> {
        // Every registry handler is run by the broker: its dispatch table matches every
        // `HandlerConfig`, one per kind.
        let p = parse_native(
            "version = 1\ndefault_action = \"allow\"\n[[rule]]\nnames = [\"setxattr\", \"fsetxattr\"]\naction = \"notify\"\nhandler = \"emulate-setxattr\"\n[[rule]]\nname = \"sysinfo\"\naction = \"notify\"\nhandler = \"sysinfo\"\n",
        )?;
        let d = Decider::new(p)?;
        let si = d.decide(&data(libc::SYS_sysinfo, [0; 6]));
        assert_eq!(
            si.handler.map(|h| (h.spec.kind, h.config.kind())),
            Some((
                handlers::HandlerKind::Sysinfo,
                handlers::HandlerKind::Sysinfo
            ))
        );
        Ok(())
    }
}
