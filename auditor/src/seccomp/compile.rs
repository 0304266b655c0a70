//! Compile a policy into a seccomp filter through libseccomp.
//!
//! The policy is validated before anything is built (as youki does): no notify as the default
//! action, no notify on the syscalls the runtime needs to hand the listener fd over, only handlers
//! that exist. Names the installed libseccomp cannot resolve (newer than it, or of another
//! architecture) are skipped with a warning per name, as runc does. The binary-tree optimisation
//! is on, so that a long allow list costs O(log n) comparisons rather than O(n).

use std::io::{Read as _, Seek as _};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};

use crate::policy::check::{self, Finding};
use crate::policy::model::{Action, Arch, Condition, Op, Policy};

/// Errors compiling a policy, named after the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the policy cannot be compiled:\n  {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Validate { problems: Vec<Finding> },
    #[error("cannot create a seccomp filter context")]
    NewFilter {
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("libseccomp does not support architecture {arch}")]
    AddArch {
        arch: Arch,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot set filter attribute {attr}")]
    SetAttr {
        attr: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot add rule {rule} ({action}) for `{syscall}`")]
    AddRule {
        rule: usize,
        syscall: String,
        action: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot export the BPF program")]
    ExportBpf {
        #[source]
        source: std::io::Error,
    },
}

/// A built filter, ready to load or export.
pub struct Compiled {
    pub filter: ScmpFilterContext,
    /// Names skipped because the installed libseccomp cannot resolve them; callers warn about
    /// each (as runc does).
    pub skipped: Vec<String>,
    /// Rules skipped because their action is the default action (libseccomp refuses them).
    pub redundant: usize,
    /// Syscalls refused whatever the policy says, because of its notify handlers
    /// ([`crate::policy::handlers::harden`]).
    pub forced: Vec<&'static str>,
    /// Those of [`Compiled::forced`] that the installed libseccomp cannot name: refused by a
    /// prefix [`export_bpf`] puts before libseccomp's program, by number, per architecture.
    pub forced_by_number: Vec<&'static str>,
    /// The architectures of the filter.
    arches: Vec<Arch>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("skipped", &self.skipped)
            .field("redundant", &self.redundant)
            .field("forced", &self.forced)
            .finish()
    }
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::X86_64 => ScmpArch::X8664,
        Arch::X86 => ScmpArch::X86,
        Arch::X32 => ScmpArch::X32,
        Arch::Aarch64 => ScmpArch::Aarch64,
        Arch::Arm => ScmpArch::Arm,
        Arch::Riscv64 => ScmpArch::Riscv64,
        Arch::S390x => ScmpArch::S390X,
        Arch::S390 => ScmpArch::S390,
        Arch::Ppc64le => ScmpArch::Ppc64Le,
        Arch::Ppc64 => ScmpArch::Ppc64,
        Arch::Ppc => ScmpArch::Ppc,
        Arch::Mips => ScmpArch::Mips,
        Arch::Mipsel => ScmpArch::Mipsel,
        Arch::Mips64 => ScmpArch::Mips64,
        Arch::Mipsel64 => ScmpArch::Mipsel64,
        Arch::Mips64n32 => ScmpArch::Mips64N32,
        Arch::Mipsel64n32 => ScmpArch::Mipsel64N32,
    }
}

/// The libseccomp action for a policy action.
pub fn scmp_action(a: &Action) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        // Errnos are validated to 1..=4095 when the policy is read.
        Action::Errno(n) => ScmpAction::Errno(i32::try_from(*n).unwrap_or(libc::EPERM)),
        Action::KillProcess => ScmpAction::KillProcess,
        Action::KillThread => ScmpAction::KillThread,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        Action::Notify(_) => ScmpAction::Notify,
    }
}

fn compare(c: &Condition) -> ScmpArgCompare {
    let op = match c.op {
        Op::Eq => ScmpCompareOp::Equal,
        Op::Ne => ScmpCompareOp::NotEqual,
        Op::Lt => ScmpCompareOp::Less,
        Op::Le => ScmpCompareOp::LessOrEqual,
        Op::Gt => ScmpCompareOp::Greater,
        Op::Ge => ScmpCompareOp::GreaterEqual,
        Op::MaskedEq { mask } => ScmpCompareOp::MaskedEqual(mask),
    };
    ScmpArgCompare::new(u32::from(c.index), op, c.value)
}

/// Validate, then build the filter.
pub fn compile(policy: &Policy) -> Result<Compiled, CompileError> {
    compile_with(policy, check::CheckOptions::default())
}

/// Validate for this use, then build the filter. Interactive (`enforce --interactive`): the
/// filter's default action is notify, so that the broker sees, and a person decides, every
/// call no rule decides; rules whose action is notify are then served by that default (the
/// broker matches them to their handler in user space). The calls of
/// [`check::INTERACTIVE_EXEMPT`] that no rule names are never notified: the launcher makes
/// them before the broker runs.
pub fn compile_with(
    policy: &Policy,
    options: check::CheckOptions,
) -> Result<Compiled, CompileError> {
    build(policy, options, None)
}

/// Validate, then build the filter with the syscalls checked hottest first: `calls` maps
/// syscall names to how often they were observed (`auditor compile --priorities-from`). The
/// binary-tree optimisation is then off: libseccomp ignores priorities with it, and the two
/// are the alternatives `cargo xtask bench-filter` compares.
pub fn compile_by_calls(
    policy: &Policy,
    calls: &std::collections::BTreeMap<String, u64>,
) -> Result<Compiled, CompileError> {
    build(policy, check::CheckOptions::default(), Some(calls))
}

/// libseccomp priorities (255: checked first) for syscalls by their call counts: by rank, so
/// that the hottest come first whatever the counts' magnitudes; ties keep name order.
pub fn priorities(calls: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u8)> {
    let mut ranked: Vec<(&String, u64)> = calls.iter().map(|(n, c)| (n, *c)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .enumerate()
        .map(|(rank, (name, _))| (name.clone(), 255u8.saturating_sub(rank.min(255) as u8)))
        .collect()
}

fn build(
    policy: &Policy,
    options: check::CheckOptions,
    calls: Option<&std::collections::BTreeMap<String, u64>>,
) -> Result<Compiled, CompileError> {
    let problems = check::validate_with(policy, options);
    if !problems.is_empty() {
        return Err(CompileError::Validate { problems });
    }
    let (hardened, forced) = crate::policy::handlers::harden(policy);
    let policy = &hardened;
    let mut forced_by_number = Vec::new();
    let default = if options.interactive {
        ScmpAction::Notify
    } else {
        scmp_action(&policy.default_action)
    };
    let mut filter =
        ScmpFilterContext::new(default).map_err(|source| CompileError::NewFilter { source })?;
    for a in &policy.architectures {
        filter
            .add_arch(scmp_arch(*a))
            .map_err(|source| CompileError::AddArch { arch: *a, source })?;
    }
    filter
        .set_filter_attr(
            ScmpFilterAttr::CtlOptimize,
            if calls.is_some() { 1 } else { 2 },
        )
        .map_err(|source| CompileError::SetAttr {
            attr: "SCMP_FLTATR_CTL_OPTIMIZE",
            source,
        })?;
    for (name, priority) in calls.map(priorities).unwrap_or_default() {
        // A name libseccomp cannot resolve has no rule to order either.
        if let Ok(sys) = ScmpSyscall::from_name(&name) {
            filter
                .set_syscall_priority(sys, priority)
                .map_err(|source| CompileError::SetAttr {
                    attr: "seccomp_syscall_priority",
                    source,
                })?;
        }
    }

    let mut skipped = Vec::new();
    let mut redundant = 0;
    for (i, rule) in policy.rules.iter().enumerate() {
        let action = scmp_action(&rule.action);
        if action == default {
            // libseccomp refuses a rule with the default action; it would change nothing.
            redundant += 1;
            continue;
        }
        let cmps: Vec<ScmpArgCompare> = rule.args.iter().map(compare).collect();
        for name in &rule.names {
            // Resolved for the native architecture; libseccomp gives names that exist only on
            // another architecture of the filter a pseudo number and translates it per arch.
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                if let Some(f) = forced.iter().find(|f| **f == name.as_str()) {
                    if rule.action == Action::Errno(crate::policy::model::ENOSYS)
                        && !forced_by_number.contains(f)
                    {
                        forced_by_number.push(*f);
                    }
                    continue;
                }
                tracing::debug!(syscall = %name, "libseccomp cannot resolve this syscall name; skipped (callers report `skipped`)");
                if !skipped.contains(name) {
                    skipped.push(name.clone());
                }
                continue;
            };
            filter
                .add_rule_conditional(action, sys, &cmps)
                .map_err(|source| CompileError::AddRule {
                    rule: i + 1,
                    syscall: name.clone(),
                    action: rule.action.to_string(),
                    source,
                })?;
        }
    }
    if options.interactive {
        let named: std::collections::BTreeSet<&str> = policy
            .rules
            .iter()
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        for name in check::INTERACTIVE_EXEMPT {
            if named.contains(name) {
                continue;
            }
            let action = match *name {
                "exit" | "exit_group" => ScmpAction::Allow,
                _ if policy.default_action.is_notify() => ScmpAction::Allow,
                _ => scmp_action(&policy.default_action),
            };
            let sys = ScmpSyscall::from_name(name).map_err(|source| CompileError::AddRule {
                rule: 0,
                syscall: (*name).to_owned(),
                action: "interactive exemption".into(),
                source,
            })?;
            filter
                .add_rule(action, sys)
                .map_err(|source| CompileError::AddRule {
                    rule: 0,
                    syscall: (*name).to_owned(),
                    action: "interactive exemption".into(),
                    source,
                })?;
        }
    }
    Ok(Compiled {
        filter,
        skipped,
        redundant,
        forced,
        forced_by_number,
        arches: policy.architectures.clone(),
    })
}

/// The numbers of `names` per audit architecture (`AUDIT_ARCH_*`) of the filter's
/// architectures; x32 calls arrive as x86_64 with the x32 bit set.
fn numbers_by_arch(arches: &[Arch], names: &[&str]) -> Vec<(u32, Vec<u32>)> {
    use crate::syscalls::Abi;
    use crate::syscalls::{number, X32_SYSCALL_BIT};
    let arches: Vec<Arch> = if arches.is_empty() {
        vec![Arch::X86_64]
    } else {
        arches.to_vec()
    };
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    let mut add = |audit: u32, nr: Option<u32>| {
        let Some(nr) = nr else { return };
        match out.iter_mut().find(|(a, _)| *a == audit) {
            Some((_, v)) if !v.contains(&nr) => v.push(nr),
            Some(_) => {}
            None => out.push((audit, vec![nr])),
        }
    };
    for a in arches {
        for n in names {
            match a {
                Arch::X86_64 => add(crate::syscalls::AUDIT_ARCH_X86_64, number(Abi::X86_64, n)),
                Arch::X32 => add(
                    crate::syscalls::AUDIT_ARCH_X86_64,
                    number(Abi::X32, n).map(|nr| nr | X32_SYSCALL_BIT),
                ),
                Arch::X86 => add(crate::syscalls::AUDIT_ARCH_I386, number(Abi::I386, n)),
                // auditor's tables cover the x86 family only; other architectures keep what
                // libseccomp could do (callers warn about the names it skipped).
                _ => {}
            }
        }
    }
    out
}

/// A program prefix that answers `ERRNO(ENOSYS)` to the syscalls `by_arch` lists and falls
/// through to the next instruction (libseccomp's program) for everything else.
fn refusal_prefix(by_arch: &[(u32, Vec<u32>)]) -> Vec<crate::seccomp::notify::SockFilter> {
    use crate::seccomp::notify::{
        SockFilter, BPF_JMP_JA as JA, BPF_JMP_JEQ_K as JEQ_K, BPF_LD_W_ABS as LD_W_ABS,
        BPF_RET_K as RET_K, SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, SECCOMP_RET_ERRNO,
    };
    let ins = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let mut prog = Vec::new();
    // Jumps to the shared `ret` are patched once its position is known.
    let mut to_ret = Vec::new();
    let mut to_end = Vec::new();
    for (arch, nrs) in by_arch {
        prog.push(ins(LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH));
        // Not this architecture: skip `ld nr`, the comparisons and the `ja`.
        let skip = u8::try_from(nrs.len() + 2).unwrap_or(u8::MAX);
        prog.push(ins(JEQ_K, 0, skip, *arch));
        prog.push(ins(LD_W_ABS, 0, 0, SECCOMP_DATA_NR));
        for nr in nrs {
            to_ret.push(prog.len());
            prog.push(ins(JEQ_K, 0, 0, *nr));
        }
        to_end.push(prog.len());
        prog.push(ins(JA, 0, 0, 0));
    }
    let ret = prog.len();
    prog.push(ins(RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    let end = prog.len();
    for i in to_ret {
        prog[i].jt = u8::try_from(ret - i - 1).unwrap_or(u8::MAX);
    }
    for i in to_end {
        prog[i].k = (end - i - 1) as u32;
    }
    prog
}

/// The filter's BPF program (what the kernel loads): `struct sock_filter` records, 8 bytes each.
pub fn export_bpf(compiled: &Compiled) -> Result<Vec<u8>, CompileError> {
    let err = |source| CompileError::ExportBpf { source };
    let mut file = tempfile::tempfile().map_err(err)?;
    compiled
        .filter
        .export_bpf(&file)
        .map_err(|e| err(std::io::Error::other(e.to_string())))?;
    file.rewind().map_err(err)?;
    let mut out = Vec::new();
    if !compiled.forced_by_number.is_empty() {
        for i in refusal_prefix(&numbers_by_arch(
            &compiled.arches,
            &compiled.forced_by_number,
        )) {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
    }
    file.read_to_end(&mut out).map_err(err)?;
    Ok(out)
}

/// A readable listing of a BPF program: one instruction per line.
pub fn disassemble(bpf: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (i, ins) in bpf.chunks_exact(8).enumerate() {
        let code = u16::from_ne_bytes([ins[0], ins[1]]);
        let (jt, jf) = (ins[2], ins[3]);
        let k = u32::from_ne_bytes([ins[4], ins[5], ins[6], ins[7]]);
        let _ = writeln!(
            out,
            "{i:04}: code={code:#06x} jt={jt:<3} jf={jf:<3} k={k:#010x}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Notify, Rule};

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy {
            architectures: vec![Arch::X86_64],
            rules,
            ..Policy::default()
        }
    }

    #[test]
    fn compiles_and_exports_bpf() -> Result<(), CompileError> {
        let p = policy(vec![
            Rule::new(
                ["read", "write", "exit_group", "listmount_no_such"],
                Action::Allow,
            ),
            Rule::new(["socket"], Action::Allow).with_args(vec![Condition {
                index: 0,
                op: Op::MaskedEq { mask: 0xffff_ffff },
                value: 1,
            }]),
        ]);
        // An unknown name in a native policy is refused before building.
        assert!(matches!(compile(&p), Err(CompileError::Validate { .. })));
        let p = policy(vec![
            Rule::new(["read", "write", "exit_group"], Action::Allow),
            Rule::new(["socket"], Action::Allow).with_args(vec![Condition {
                index: 0,
                op: Op::MaskedEq { mask: 0xffff_ffff },
                value: 1,
            }]),
            Rule::new(
                ["mknodat"],
                Action::Notify(Notify {
                    handler: Some("emulate-mknod".into()),
                    params: Default::default(),
                }),
            ),
        ]);
        let c = compile(&p)?;
        let bpf = export_bpf(&c)?;
        assert!(!bpf.is_empty() && bpf.len() % 8 == 0);
        assert!(disassemble(&bpf).lines().count() > 5);
        Ok(())
    }

    #[test]
    fn imported_notify_gets_the_default_handler() -> Result<(), Box<dyn std::error::Error>> {
        let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": "/run/b.sock",
            "syscalls": [{"names": ["read", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"}]}"#;
        let p = crate::policy::formats::import(json, &Default::default())?;
        compile(&p)?;
        // A notify rule no handler serves is refused before building.
        let json = json.replace("mknodat", "openat");
        let p = crate::policy::formats::import(&json, &Default::default())?;
        let e = compile(&p).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("no notify handler serves `openat`")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn notify_default_and_handover_are_refused_before_building() {
        let mut p = policy(vec![]);
        p.default_action = Action::Notify(Notify::default());
        assert!(matches!(compile(&p), Err(CompileError::Validate { .. })));
        let p = policy(vec![Rule::new(
            ["sendmsg"],
            Action::Notify(Notify::default()),
        )]);
        let e = compile(&p).map(|_| ()).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("notify on `sendmsg`")),
            "{e:?}"
        );
    }

    /// Run a classic BPF seccomp program on one call (the instructions libseccomp emits).
    fn run(bpf: &[u8], arch: u32, nr: i32) -> u32 {
        run_counted(bpf, arch, nr).0
    }

    /// The filter's verdict and how many instructions it executed to reach it.
    fn run_counted(bpf: &[u8], arch: u32, nr: i32) -> (u32, usize) {
        let mut executed = 0;
        let prog: Vec<(u16, u8, u8, u32)> = bpf
            .chunks_exact(8)
            .map(|i| {
                (
                    u16::from_ne_bytes([i[0], i[1]]),
                    i[2],
                    i[3],
                    u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
                )
            })
            .collect();
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let (code, jt, jf, k) = prog[pc];
            pc += 1;
            executed += 1;
            let jump = |c: bool| usize::from(if c { jt } else { jf });
            match code {
                // ld [k]: nr at 0, arch at 4, the rest (ip, args) zero here.
                0x20 => {
                    a = match k {
                        0 => nr as u32,
                        4 => arch,
                        _ => 0,
                    }
                }
                0x15 => pc += jump(a == k),
                0x25 => pc += jump(a > k),
                0x35 => pc += jump(a >= k),
                0x45 => pc += jump(a & k != 0),
                0x05 => pc += k as usize,
                0x54 => a &= k,
                0x06 => return (k, executed),
                c => panic!("instruction {c:#x} not simulated"),
            }
        }
    }

    #[test]
    fn call_counts_put_the_hottest_syscalls_first() -> Result<(), CompileError> {
        use crate::seccomp::notify::{SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO};
        const X86_64: u32 = crate::syscalls::AUDIT_ARCH_X86_64;
        let nr = |n: &str| {
            crate::syscalls::number(crate::syscalls::Abi::X86_64, n).map_or(-1, |n| n as i32)
        };
        let names = [
            "read",
            "write",
            "openat",
            "close",
            "fstat",
            "mmap",
            "mprotect",
            "munmap",
            "brk",
            "rt_sigaction",
            "rt_sigprocmask",
            "ioctl",
            "pread64",
            "access",
            "pipe",
            "select",
            "dup2",
            "nanosleep",
            "getpid",
            "socket",
            "connect",
            "clone",
            "execve",
            "exit_group",
            "wait4",
            "kill",
            "uname",
            "fcntl",
            "getcwd",
            "chdir",
            "getppid",
            "futex",
        ];
        let mut p = policy(vec![Rule::new(names, Action::Allow)]);
        p.default_action = Action::Errno(1);
        let calls: std::collections::BTreeMap<String, u64> = names
            .iter()
            .map(|n| (n.to_string(), if *n == "getppid" { 1_000_000 } else { 10 }))
            .collect();
        assert_eq!(priorities(&calls)[0], ("getppid".to_owned(), 255));
        let tree = export_bpf(&compile(&p)?)?;
        let ordered = export_bpf(&compile_by_calls(&p, &calls)?)?;
        // Same verdicts …
        for n in names.iter().chain(&["acct", "getppid"]) {
            assert_eq!(
                run(&tree, X86_64, nr(n)),
                run(&ordered, X86_64, nr(n)),
                "{n}"
            );
        }
        assert_eq!(run(&ordered, X86_64, nr("acct")), SECCOMP_RET_ERRNO | 1);
        // … and the hottest call is decided in as few instructions as a filter can (arch
        // check, number load, its comparison), fewer than the tree takes.
        let (verdict, hot) = run_counted(&ordered, X86_64, nr("getppid"));
        assert_eq!(verdict, SECCOMP_RET_ALLOW);
        let (_, in_tree) = run_counted(&tree, X86_64, nr("getppid"));
        let (_, cold) = run_counted(&ordered, X86_64, nr("futex"));
        assert!(
            hot < in_tree && hot < cold,
            "hot {hot}, tree {in_tree}, cold {cold}"
        );
        Ok(())
    }

    #[test]
    fn interactive_filters_notify_what_no_rule_decides_except_the_launchers_calls(
    ) -> Result<(), CompileError> {
        use crate::seccomp::notify::{
            SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_USER_NOTIF,
        };
        const X86_64: u32 = crate::syscalls::AUDIT_ARCH_X86_64;
        let nr = |n: &str| {
            crate::syscalls::number(crate::syscalls::Abi::X86_64, n).map_or(-1, |n| n as i32)
        };
        let mut p = policy(vec![
            Rule::new(["read"], Action::Allow),
            Rule::new(["getppid"], Action::Errno(1)),
            Rule::new(
                ["mknodat"],
                Action::Notify(Notify {
                    handler: Some("emulate-mknod".into()),
                    params: Default::default(),
                }),
            ),
        ]);
        p.default_action = Action::Errno(13);
        let options = check::CheckOptions { interactive: true };
        let bpf = export_bpf(&compile_with(&p, options)?)?;
        assert_eq!(run(&bpf, X86_64, nr("read")), SECCOMP_RET_ALLOW);
        assert_eq!(run(&bpf, X86_64, nr("getppid")), SECCOMP_RET_ERRNO | 1);
        // Undecided calls and the notify rule's call reach the broker.
        assert_eq!(run(&bpf, X86_64, nr("uname")), SECCOMP_RET_USER_NOTIF);
        assert_eq!(run(&bpf, X86_64, nr("mknodat")), SECCOMP_RET_USER_NOTIF);
        // The launcher's calls keep the default action; the exit calls are allowed.
        assert_eq!(run(&bpf, X86_64, nr("execve")), SECCOMP_RET_ERRNO | 13);
        assert_eq!(run(&bpf, X86_64, nr("write")), SECCOMP_RET_ERRNO | 13);
        assert_eq!(run(&bpf, X86_64, nr("exit_group")), SECCOMP_RET_ALLOW);
        assert_eq!(run(&bpf, X86_64, nr("exit")), SECCOMP_RET_ALLOW);
        // Without --interactive the same policy refuses instead of notifying.
        let plain = export_bpf(&compile(&p)?)?;
        assert_eq!(run(&plain, X86_64, nr("uname")), SECCOMP_RET_ERRNO | 13);

        // A policy whose default is notify: only for interactive use; the launcher's calls are
        // then allowed.
        p.default_action = Action::Notify(Notify::default());
        assert!(matches!(compile(&p), Err(CompileError::Validate { .. })));
        let bpf = export_bpf(&compile_with(&p, options)?)?;
        assert_eq!(run(&bpf, X86_64, nr("execve")), SECCOMP_RET_ALLOW);
        assert_eq!(run(&bpf, X86_64, nr("uname")), SECCOMP_RET_USER_NOTIF);
        Ok(())
    }

    #[test]
    fn a_mount_handler_forces_the_new_mount_api_out_even_by_number() -> Result<(), CompileError> {
        use crate::seccomp::notify::{
            SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_USER_NOTIF,
        };
        const X86_64: u32 = crate::syscalls::AUDIT_ARCH_X86_64;
        const I386: u32 = crate::syscalls::AUDIT_ARCH_I386;
        let mut params = crate::policy::model::Params::new();
        params.insert(
            "fstypes".into(),
            crate::policy::model::ParamValue::strings(["ext4"]),
        );
        let mut p = policy(vec![
            Rule::new(
                ["mount"],
                Action::Notify(Notify {
                    handler: Some("emulate-mount".into()),
                    params,
                }),
            ),
            // What a careless or hostile policy file says: ignored.
            Rule::new(["fsopen", "move_mount"], Action::Allow),
        ]);
        p.default_action = Action::Allow;
        p.architectures = vec![Arch::X86_64, Arch::X86, Arch::X32];
        let c = compile(&p)?;
        assert_eq!(c.forced.len(), 8, "{:?}", c.forced);
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        let bpf = export_bpf(&c)?;
        let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        // fsopen 430 … mount_setattr 442, open_tree_attr 467: the same numbers on i386, and
        // with the x32 bit on x32.
        for nr in [428, 429, 430, 431, 432, 433, 442, 467] {
            assert_eq!(run(&bpf, X86_64, nr), enosys, "x86_64 {nr}");
            assert_eq!(
                run(&bpf, X86_64, nr | crate::syscalls::X32_SYSCALL_BIT as i32),
                enosys,
                "x32 {nr}"
            );
            assert_eq!(run(&bpf, I386, nr), enosys, "i386 {nr}");
        }
        assert_eq!(
            run(&bpf, X86_64, 165),
            SECCOMP_RET_USER_NOTIF,
            "mount is still notified"
        );
        assert_eq!(run(&bpf, X86_64, 39), SECCOMP_RET_ALLOW, "getpid");
        Ok(())
    }

    #[test]
    fn names_libseccomp_cannot_resolve_are_skipped() -> Result<(), CompileError> {
        // mseal (6.10) is in auditor's table but not in libseccomp 2.5.4's.
        let p = policy(vec![Rule::new(["read", "mseal"], Action::Allow)]);
        let c = compile(&p)?;
        if libseccomp::ScmpSyscall::from_name("mseal").is_err() {
            assert_eq!(c.skipped, vec!["mseal"]);
        }
        Ok(())
    }
}
