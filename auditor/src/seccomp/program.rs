//! A seccomp filter program as auditor installs it: read from libseccomp's export, rewritten
//! for complain mode or audited refusals, and prefixed with the listener hand-over that
//! `crate::launch` performs (a notified call of [`HANDOVER_NR`] right after installing).

use super::notify::{
    SockFilter, BPF_JMP_JEQ_K, BPF_LD_W_ABS, BPF_RET_K, SECCOMP_DATA_ARCH, SECCOMP_DATA_NR,
    SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF,
};

/// Errors preparing a filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("the BPF program is {len} bytes, not a whole number of 8-byte instructions")]
    Truncated { len: usize },
    #[error("the BPF program has {count} instructions; the kernel takes at most 4096")]
    TooLong { count: usize },
    #[error("the BPF program is empty")]
    Empty,
    #[error("notify rules need the native x86_64 ABI for the listener hand-over; this build targets another architecture")]
    ForeignArch,
}

/// `AUDIT_ARCH_X86_64`: the hand-over call is made in the native ABI of the machine auditor
/// was built for.
#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: Option<u32> = Some(crate::syscalls::AUDIT_ARCH_X86_64);
#[cfg(not(target_arch = "x86_64"))]
const NATIVE_AUDIT_ARCH: Option<u32> = None;

/// The syscall number the launcher's child makes once, after installing the filter, to hand
/// its listener over (see the module docs). Far above any assigned number and without the x32
/// bit (0x4000_0000), so no kernel runs it: a workload that calls it later is notified and
/// the broker answers with the policy's default action (allow: the kernel's ENOSYS; kill and
/// trap: EPERM, as for any unknown call).
pub const HANDOVER_NR: u32 = 0x3fff_a0d1;

/// Instructions of the hand-over prefix.
const PREFIX_LEN: usize = 5;

/// The kernel's limit on a program's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// A filter program as the kernel takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    prog: Vec<SockFilter>,
}

impl Filter {
    /// From `struct sock_filter` records (what [`crate::seccomp::compile::export_bpf`] gives).
    pub fn from_bpf(bytes: &[u8]) -> Result<Filter, FilterError> {
        if !bytes.len().is_multiple_of(8) {
            return Err(FilterError::Truncated { len: bytes.len() });
        }
        let prog: Vec<SockFilter> = bytes
            .chunks_exact(8)
            .map(|i| SockFilter {
                code: u16::from_ne_bytes([i[0], i[1]]),
                jt: i[2],
                jf: i[3],
                k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
            })
            .collect();
        if prog.is_empty() {
            return Err(FilterError::Empty);
        }
        Ok(Filter { prog })
    }

    /// The instructions.
    pub fn instructions(&self) -> &[SockFilter] {
        &self.prog
    }

    /// Whether the program can return `SECCOMP_RET_USER_NOTIF`, i.e. needs a listener.
    pub fn needs_listener(&self) -> bool {
        self.prog
            .iter()
            .any(|i| i.code == BPF_RET_K && i.k & SECCOMP_RET_ACTION_FULL == SECCOMP_RET_USER_NOTIF)
    }

    /// Complain mode: every refusing return (kill, trap, errno) becomes a notification, so the
    /// broker sees and records each call the policy would refuse, then lets it run. Returns how
    /// many returns were rewritten.
    pub fn complain(&mut self) -> usize {
        self.notify_returns(&[
            SECCOMP_RET_KILL_PROCESS,
            SECCOMP_RET_KILL_THREAD,
            SECCOMP_RET_TRAP,
            SECCOMP_RET_ERRNO,
        ])
    }

    /// Enforcing with an audit log: errno refusals become notifications too, so that the
    /// broker records each and answers with the policy's errno. Kill and trap stay in the
    /// kernel (the broker could not reproduce them). Costs one round trip per refused call;
    /// if auditor dies, refused calls fail with ENOSYS instead of their errno (still refused).
    pub fn audit_refusals(&mut self) -> usize {
        self.notify_returns(&[SECCOMP_RET_ERRNO])
    }

    fn notify_returns(&mut self, actions: &[u32]) -> usize {
        let mut n = 0;
        for i in &mut self.prog {
            if i.code == BPF_RET_K && actions.contains(&(i.k & SECCOMP_RET_ACTION_FULL)) {
                i.k = SECCOMP_RET_USER_NOTIF;
                n += 1;
            }
        }
        n
    }

    /// The program as installed: with a listener, the hand-over prefix first (see
    /// `crate::launch::filter`, which installs it and makes the hand-over call).
    pub fn program(&self) -> Result<Vec<SockFilter>, FilterError> {
        let mut out = Vec::with_capacity(self.prog.len() + PREFIX_LEN);
        if self.needs_listener() {
            let arch = NATIVE_AUDIT_ARCH.ok_or(FilterError::ForeignArch)?;
            let ins = |code, jt, jf, k| SockFilter { code, jt, jf, k };
            // Jump offsets are relative to the next instruction; PREFIX_LEN is the first
            // instruction of the policy's program.
            out.extend([
                ins(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
                ins(BPF_JMP_JEQ_K, 0, 3, arch),
                ins(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
                ins(BPF_JMP_JEQ_K, 0, 1, HANDOVER_NR),
                ins(BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF),
            ]);
        }
        out.extend_from_slice(&self.prog);
        if out.len() > MAX_INSNS {
            return Err(FilterError::TooLong { count: out.len() });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::notify::{SECCOMP_RET_ALLOW, SECCOMP_RET_LOG};

    fn ret(k: u32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&BPF_RET_K.to_ne_bytes());
        b[4..].copy_from_slice(&k.to_ne_bytes());
        b
    }

    #[test]
    fn complain_turns_refusals_into_notifications() -> Result<(), FilterError> {
        let mut bytes = Vec::new();
        for k in [
            SECCOMP_RET_ALLOW,
            SECCOMP_RET_ERRNO | 1,
            SECCOMP_RET_KILL_PROCESS,
            SECCOMP_RET_USER_NOTIF,
            SECCOMP_RET_LOG,
        ] {
            bytes.extend(ret(k));
        }
        let mut f = Filter::from_bpf(&bytes)?;
        assert!(f.needs_listener());
        assert_eq!(f.complain(), 2);
        let ks: Vec<u32> = f.instructions().iter().map(|i| i.k).collect();
        assert_eq!(
            ks,
            vec![
                SECCOMP_RET_ALLOW,
                SECCOMP_RET_USER_NOTIF,
                SECCOMP_RET_USER_NOTIF,
                SECCOMP_RET_USER_NOTIF,
                SECCOMP_RET_LOG
            ]
        );
        Ok(())
    }

    #[test]
    fn the_hand_over_prefix_notifies_only_its_number() -> Result<(), FilterError> {
        let mut bytes = Vec::new();
        for k in [SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | 1] {
            bytes.extend(ret(k));
        }
        let mut f = Filter::from_bpf(&bytes)?;
        assert!(!f.needs_listener());
        // Without a listener, the program as it is.
        assert_eq!(f.program()?.len(), 2);
        assert_eq!(f.audit_refusals(), 1);
        assert!(f.needs_listener());
        if NATIVE_AUDIT_ARCH.is_none() {
            return Ok(());
        }
        let p = f.program()?;
        assert_eq!(p.len(), PREFIX_LEN + 2);
        assert_eq!(p[3].k, HANDOVER_NR);
        assert_eq!(p[4].k, SECCOMP_RET_USER_NOTIF);
        // Every mismatch jumps to the policy's first instruction.
        for (i, ins) in p[..PREFIX_LEN].iter().enumerate() {
            if ins.code == BPF_JMP_JEQ_K {
                assert_eq!(i + 1 + usize::from(ins.jf), PREFIX_LEN);
            }
        }
        assert_eq!(HANDOVER_NR & crate::syscalls::X32_SYSCALL_BIT, 0);
        Ok(())
    }

    #[test]
    fn malformed_programs_are_refused() {
        assert!(matches!(
            Filter::from_bpf(&[0; 7]),
            Err(FilterError::Truncated { .. })
        ));
        assert!(matches!(Filter::from_bpf(&[]), Err(FilterError::Empty)));
        let f = Filter::from_bpf(&ret(SECCOMP_RET_ALLOW));
        assert!(f.is_ok_and(|f| !f.needs_listener()));
    }
}
