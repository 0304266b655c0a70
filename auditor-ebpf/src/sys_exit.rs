//! `sys_exit`: failures by errno, refusals (an exit without an enter: a seccomp filter or a
//! ptrace supervisor decided before the syscall ran), and the arguments that matter.

use auditor_common::{counters, event, outcome, slot, EventHeader, OutcomeKey, RefusedEvent};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    arch, args,
    maps::{count, current_tid, settings, task_slot, EVENTS, OUTCOMES},
};

/// The kernel's internal restart codes, -ERESTARTSYS ..= -ERESTART_RESTARTBLOCK.
const RESTART_FIRST: u64 = 512;
const RESTART_LAST: u64 = 516;

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    try_sys_exit(&ctx);
    0
}

#[inline(always)]
fn try_sys_exit(ctx: &RawTracePointContext) {
    let tid = current_tid(ctx.arg(0));
    let Some((ptr, s)) = task_slot(tid) else {
        return;
    };
    if s == 0 || s & slot::WAIT_EXEC != 0 {
        return;
    }
    let ret: i64 = ctx.arg(1);
    let regs: *const u8 = ctx.arg(0);
    let exe = slot::exe(s);
    let group = slot::group(s);
    let in_flight = slot::in_flight(s);
    // SAFETY: this thread's own slot.
    unsafe { *ptr = slot::exit(s) };

    // Each of the two paths ends in one outcome and one capture: one copy of each in the
    // program, which the verifier walks once instead of once per path (the capture's string
    // hashing loops are most of its work at load time).
    let (r, nr, a, outcome) = if in_flight == slot::NR_NONE {
        if s & slot::FRESH != 0 {
            // A fork child returning from clone, or a thread caught inside a syscall.
            count(group, counters::FRESH_EXITS);
            return;
        }
        let Some(r) = arch::read_regs(regs) else {
            return;
        };
        let Some((nr, a)) = arch::classify(arch::orig_ax(&r), group) else {
            return;
        };
        let errno = errno_of(ret).unwrap_or(0);
        if settings().emit_refusals != 0 {
            emit_refusal(group, exe, nr, a, errno);
        }
        (Some(r), nr, a, Some((outcome::REFUSED, errno)))
    } else {
        let nr = in_flight as u16;
        let a = slot::in_flight_abi(s);
        let outcome = errno_of(ret).map(|errno| {
            let kind = if (RESTART_FIRST..=RESTART_LAST).contains(&errno) {
                outcome::RESTART
            } else {
                outcome::FAILED
            };
            (kind, errno)
        });
        let r = if args::wanted(nr, a) {
            arch::read_regs(regs)
        } else {
            None
        };
        (r, nr, a, outcome)
    };
    if let Some((kind, errno)) = outcome {
        add_outcome(group, exe, nr, a, kind, errno);
    }
    if let Some(r) = r {
        args::capture(&r, nr, a, ret, group, exe);
    }
}

/// A return in [-4095, -1] is an error.
#[inline(always)]
fn errno_of(ret: i64) -> Option<u64> {
    if (-4095..=-1).contains(&ret) {
        Some((-ret) as u64)
    } else {
        None
    }
}

#[inline(always)]
fn add_outcome(group: u32, exe: u32, nr: u16, a: u8, kind: u8, errno: u64) {
    let key = OutcomeKey {
        exe,
        nr,
        abi: a,
        kind,
        errno: errno as u32,
        group,
    };
    match OUTCOMES.get_ptr_mut(key) {
        // SAFETY: this CPU's copy of a per-CPU value; preemption is disabled here.
        Some(p) => unsafe { *p += 1 },
        None => {
            if OUTCOMES.insert(key, 1, 0).is_err() {
                count(group, counters::OUTCOMES_FULL);
            }
        }
    }
}

/// One event per refused call, for enforcement's audit log (refusals are rare by design; a
/// full ring buffer is counted).
#[inline(always)]
fn emit_refusal(group: u32, exe: u32, nr: u16, a: u8, errno: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let ev = RefusedEvent {
        header: EventHeader {
            kind: event::REFUSED,
            group: group as u16,
            tid: pid_tgid as u32,
            tgid: (pid_tgid >> 32) as u32,
            exe,
            // SAFETY: no preconditions.
            time_ns: unsafe { bpf_ktime_get_boot_ns() },
        },
        nr,
        abi: a,
        _pad: 0,
        errno: errno as u32,
    };
    if EVENTS.output::<RefusedEvent>(&ev, 0).is_err() {
        count(group, counters::RINGBUF_LOST_REFUSED);
    }
}
