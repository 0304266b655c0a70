//! The seccomp filter a held child installs just before `execve`, and the hand-over of its
//! listener fd to auditor.
//!
//! Everything is prepared before `fork`: the program, the `sock_fprog` that points to it, the
//! `msghdr` and control buffer that carry the listener fd. In the child,
//! [`Prepared::install_and_hand_over`] makes only raw, async-signal-safe calls: `prctl`,
//! `seccomp` (through [`crate::seccomp::notify`]), `sendmsg`.
//!
//! The hand-over uses `sendmsg(SCM_RIGHTS)` on a socketpair, after the filter is in place, so
//! the policy must allow `sendmsg` (it is one of the calls a policy may never notify). When
//! refusals are turned into notifications (complain mode, audited refusals), nobody could answer
//! a notification for that one `sendmsg`: a short prefix sends `sendmsg` on the hand-over fd
//! number past the rewritten program — to ALLOW in complain mode (everything is allowed there
//! anyway), to an unmodified copy of the program when enforcing (the policy's own answer).

use std::os::fd::RawFd;

use crate::seccomp::notify::{
    self, SockFilter, SockFprog, SECCOMP_FILTER_FLAG_NEW_LISTENER,
    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
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
}

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const BPF_JMP_JA: u16 = 0x05;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;
const OFF_ARG0_HI: u32 = 20;

/// `AUDIT_ARCH_X86_64` and x86_64's `sendmsg`; the carve-out exists only for the native ABI of
/// the machine auditor was built for.
#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(not(target_arch = "x86_64"))]
const NATIVE_AUDIT_ARCH: Option<u32> = None;

/// The kernel's limit on a program's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// What `sendmsg` on the hand-over fd gets when refusals are notified; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Handover {
    /// Refusals are not notified: the program as it is.
    Plain,
    /// Complain mode: allowed.
    Allow,
    /// Audited refusals: the policy's answer, from this copy of the unmodified program.
    Original(Vec<SockFilter>),
}

/// A filter program as the kernel takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    prog: Vec<SockFilter>,
    handover: Handover,
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
        Ok(Filter {
            prog,
            handover: Handover::Plain,
        })
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
        let n = self.notify_returns(&[
            SECCOMP_RET_KILL_PROCESS,
            SECCOMP_RET_KILL_THREAD,
            SECCOMP_RET_TRAP,
            SECCOMP_RET_ERRNO,
        ]);
        if n > 0 {
            self.handover = Handover::Allow;
        }
        n
    }

    /// Enforcing with an audit log: errno refusals become notifications too, so that the
    /// broker records each and answers with the policy's errno. Kill and trap stay in the
    /// kernel (the broker could not reproduce them). Costs one round trip per refused call;
    /// if auditor dies, refused calls fail with ENOSYS instead of their errno (still refused).
    pub fn audit_refusals(&mut self) -> usize {
        let original = self.prog.clone();
        let n = self.notify_returns(&[SECCOMP_RET_ERRNO]);
        if n > 0 {
            self.handover = Handover::Original(original);
        }
        n
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

    /// The program as installed, with the hand-over carve-out for `handover_fd` when needed.
    fn program_for(&self, handover_fd: RawFd) -> Result<Vec<SockFilter>, FilterError> {
        let mut out = Vec::with_capacity(self.prog.len() + 9);
        let ins = |code, jt, jf, k| SockFilter { code, jt, jf, k };
        let matched = match &self.handover {
            Handover::Plain => None,
            Handover::Allow => Some(ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)),
            // Over the rewritten program, to the original copy appended after it.
            Handover::Original(_) => Some(ins(BPF_JMP_JA, 0, 0, self.prog.len() as u32)),
        };
        if let (Some(matched), Some(arch), Ok(fd)) =
            (matched, NATIVE_AUDIT_ARCH, u32::try_from(handover_fd))
        {
            // Jump offsets are relative to the next instruction; 9 is the first instruction of
            // the (rewritten) program.
            out.extend([
                ins(BPF_LD_W_ABS, 0, 0, OFF_ARCH),
                ins(BPF_JMP_JEQ_K, 0, 7, arch),
                ins(BPF_LD_W_ABS, 0, 0, OFF_NR),
                ins(BPF_JMP_JEQ_K, 0, 5, libc::SYS_sendmsg as u32),
                ins(BPF_LD_W_ABS, 0, 0, OFF_ARG0_LO),
                ins(BPF_JMP_JEQ_K, 0, 3, fd),
                ins(BPF_LD_W_ABS, 0, 0, OFF_ARG0_HI),
                ins(BPF_JMP_JEQ_K, 0, 1, 0),
                matched,
            ]);
        }
        out.extend_from_slice(&self.prog);
        if let (Handover::Original(original), Some(_)) = (&self.handover, NATIVE_AUDIT_ARCH) {
            out.extend_from_slice(original);
        }
        if out.len() > MAX_INSNS {
            return Err(FilterError::TooLong { count: out.len() });
        }
        Ok(out)
    }

    /// Everything the child needs, prepared before `fork`. `handover_fd` is the child's end of
    /// the socketpair (same number in parent and child).
    pub(crate) fn prepare(&self, handover_fd: RawFd) -> Result<Prepared, FilterError> {
        let prog = self.program_for(handover_fd)?;
        let listener = self.needs_listener();
        // A control buffer for one fd, u64-aligned as cmsghdr requires.
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let cmsg = vec![0u64; space.div_ceil(8)];
        Ok(Prepared {
            prog,
            listener,
            handover_fd,
            cmsg,
            byte: [b'L'],
        })
    }
}

/// What a failed step in the child reports: the step and errno.
pub(crate) type ChildFailure = (super::Stage, i32);

/// The filter and hand-over, ready for the child.
pub(crate) struct Prepared {
    prog: Vec<SockFilter>,
    listener: bool,
    handover_fd: RawFd,
    cmsg: Vec<u64>,
    byte: [u8; 1],
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot; reading it is
    // async-signal-safe.
    unsafe { *libc::__errno_location() }
}

impl Prepared {
    /// In the forked child, just before `execve`: no new privileges, the filter (with a
    /// listener if the program can notify), then the listener fd to the parent.
    ///
    /// # Safety
    /// Call only in a forked child that is about to `execve`: it makes raw syscalls and writes
    /// into this (the child's own copy of the) buffers.
    pub(crate) unsafe fn install_and_hand_over(&mut self) -> Result<(), ChildFailure> {
        use super::Stage;
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err((Stage::NoNewPrivs, errno()));
        }
        let fprog = SockFprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr(),
        };
        if !self.listener {
            // SAFETY: fprog points to self.prog, alive for the call.
            let r = unsafe { notify::install_filter_raw(&fprog, 0) };
            return if r < 0 {
                Err((Stage::Seccomp, -r as i32))
            } else {
                Ok(())
            };
        }
        let flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        // SAFETY: as above.
        let mut r = unsafe { notify::install_filter_raw(&fprog, flags) };
        if r == -libc::c_long::from(libc::EINVAL) {
            // Before 5.19 the kernel does not know WAIT_KILLABLE_RECV.
            // SAFETY: as above.
            r = unsafe { notify::install_filter_raw(&fprog, SECCOMP_FILTER_FLAG_NEW_LISTENER) };
        }
        if r < 0 {
            return Err((Stage::Seccomp, -r as i32));
        }
        let listener = r as RawFd;
        // SAFETY: the msghdr points to buffers owned by self, alive for the call; the control
        // buffer is large enough for one fd (CMSG_SPACE) and u64-aligned.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: self.byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = self.cmsg.as_mut_ptr().cast();
            msg.msg_controllen = self.cmsg.len() * 8;
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() {
                return Err((Stage::HandOver, libc::EINVAL));
            }
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), listener);
            msg.msg_controllen = (*c).cmsg_len;
            loop {
                let n = libc::sendmsg(self.handover_fd, &msg, libc::MSG_NOSIGNAL);
                if n == 1 {
                    break;
                }
                let e = errno();
                if n < 0 && e == libc::EINTR {
                    continue;
                }
                return Err((Stage::HandOver, if n < 0 { e } else { libc::EIO }));
            }
            // The listener is O_CLOEXEC: execve closes the child's copy.
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            notify::SECCOMP_RET_LOG,
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
                notify::SECCOMP_RET_LOG
            ]
        );
        let p = f.program_for(5)?;
        if NATIVE_AUDIT_ARCH.is_some() {
            assert_eq!(p.len(), 9 + 5);
            assert_eq!(p[8].k, SECCOMP_RET_ALLOW);
            // Every jump of the prefix lands on the first original instruction or the ALLOW.
            for (i, ins) in p[..9].iter().enumerate() {
                if ins.code == BPF_JMP_JEQ_K {
                    assert_eq!(i + 1 + usize::from(ins.jf), 9);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn audited_refusals_keep_the_original_for_the_hand_over() -> Result<(), FilterError> {
        let mut bytes = Vec::new();
        for k in [
            SECCOMP_RET_ALLOW,
            SECCOMP_RET_ERRNO | 1,
            SECCOMP_RET_KILL_PROCESS,
        ] {
            bytes.extend(ret(k));
        }
        let mut f = Filter::from_bpf(&bytes)?;
        assert!(!f.needs_listener());
        assert_eq!(f.audit_refusals(), 1);
        assert!(f.needs_listener());
        let p = f.program_for(5)?;
        if NATIVE_AUDIT_ARCH.is_some() {
            assert_eq!(p.len(), 9 + 3 + 3);
            assert_eq!(p[8].code, BPF_JMP_JA);
            // The jump lands on the unmodified copy, which still returns the errno.
            let target = 9 + p[8].k as usize;
            assert_eq!(p[target + 1].k, SECCOMP_RET_ERRNO | 1);
            assert_eq!(p[9 + 1].k, SECCOMP_RET_USER_NOTIF);
            assert_eq!(p[9 + 2].k, SECCOMP_RET_KILL_PROCESS);
        }
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
