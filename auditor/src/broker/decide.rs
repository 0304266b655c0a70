//! Which rule of the policy a notified call matched, evaluated in user space on the
//! notification's scalar data (the same registers the filter compared).

use std::collections::BTreeMap;

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
#[derive(Debug)]
pub struct Decider {
    policy: Policy,
    /// (rule index, syscall name) of every notify rule.
    handlers: BTreeMap<(usize, String), Handler>,
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
        let mut map = BTreeMap::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            let Action::Notify(n) = &rule.action else {
                continue;
            };
            for name in &rule.names {
                let (spec, config) =
                    handlers::config_for(n, name).map_err(|source| DecideError::Handler {
                        rule: i + 1,
                        syscall: name.clone(),
                        source,
                    })?;
                map.insert((i, name.clone()), Handler { spec, config });
            }
        }
        Ok(Decider {
            policy,
            handlers: map,
        })
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
        if let (Some(abi), Some(name)) = (abi, syscall) {
            for (i, rule) in self.policy.rules.iter().enumerate() {
                if !rule.names.iter().any(|n| n == name)
                    || !rule.args.iter().all(|c| holds(c, &data.args, abi))
                {
                    continue;
                }
                if let Some(h) = self.handlers.get(&(i, name.to_owned())) {
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
