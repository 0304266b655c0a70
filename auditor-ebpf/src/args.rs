//! Capturing the arguments that a syscall's policy depends on, as distinct tuples.
//!
//! The tuple (syscall, kept scalar arguments, strings behind pointer arguments, errno) is hashed
//! in the kernel; a tuple already seen only bumps its count in `ARGS_SEEN`, so a workload that
//! repeats a call a million times sends one event, not a million. A new tuple that cannot be
//! recorded (table full, ring buffer full) is counted, never dropped silently.

use auditor_common::{
    argflags, argspec, counters, event,
    hash::{fnv64_byte, fnv64_u64, FNV64_OFFSET},
    ArgsEvent, ARG_STR_LEN,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, bpf_probe_read_user,
        bpf_probe_read_user_str_bytes,
    },
};

use crate::{
    arch::{self, REGS_WORDS},
    maps::{bump, count, ARGS_SEEN, ARG_READ_FAILS, ARG_SPECS, EVENTS, SCRATCH},
};

#[inline(always)]
fn spec_of(nr: u16, a: u8) -> u32 {
    match ARG_SPECS.get(argspec::index(a, nr)) {
        Some(s) => *s,
        None => 0,
    }
}

/// Whether this syscall's arguments are captured.
#[inline(always)]
pub fn wanted(nr: u16, a: u8) -> bool {
    spec_of(nr, a) != 0
}

#[inline(always)]
fn read_failed(group: u32, nr: u16, a: u8) {
    if let Some(p) = ARG_READ_FAILS.get_ptr_mut(argspec::group_index(group, a, nr)) {
        // SAFETY: per-CPU value, preemption disabled.
        unsafe { *p += 1 };
    }
}

/// Copy string slot `slot` from user memory and fold it into the hash.
#[inline(always)]
fn read_str(ev: &mut ArgsEvent, slot: usize, spec: u32, args: &[u64; 6], h: &mut u64) -> bool {
    let argi = argspec::str_arg(spec, slot as u32);
    ev.str_len[slot] = 0;
    if argi == argspec::NONE || argi >= 6 {
        return true;
    }
    let ptr = args[argi as usize] as *const u8;
    // SAFETY: a user pointer read through the fault-tolerant helper into our own buffer.
    match unsafe { bpf_probe_read_user_str_bytes(ptr, &mut ev.strs[slot]) } {
        Ok(bytes) => {
            let n = bytes.len();
            ev.str_len[slot] = n as u32 + 1;
            ev.flags |= argflags::STR_OK << slot;
            let mut i = 0;
            while i < ARG_STR_LEN {
                if i >= n {
                    break;
                }
                *h = fnv64_byte(*h, ev.strs[slot][i]);
                i += 1;
            }
            // Separate the slots so that ("ab","c") and ("a","bc") differ.
            *h = fnv64_byte(*h, 0);
            true
        }
        Err(_) => {
            ev.flags |= argflags::STR_FAILED << slot;
            *h = fnv64_byte(*h, 0xff);
            false
        }
    }
}

/// Record the argument tuple of a call that just exited.
#[inline(always)]
pub fn capture(regs: &[u64; REGS_WORDS], nr: u16, a: u8, ret: i64, group: u32, exe: u32) {
    let spec = spec_of(nr, a);
    if spec == 0 {
        return;
    }
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch element; preemption is disabled for the whole program.
    let ev = unsafe { &mut *ev };
    let all = arch::syscall_args(regs, a);
    let keep = argspec::scalars(spec);
    // The group is part of the tuple: each container's tuples are counted apart.
    let mut h = fnv64_u64(
        FNV64_OFFSET,
        (nr as u64) | ((a as u64) << 16) | ((group as u64) << 32),
    );
    let mut i = 0;
    while i < 6 {
        let v = if keep & (1 << i) != 0 { all[i] } else { 0 };
        ev.args[i] = v;
        h = fnv64_u64(h, v);
        i += 1;
    }
    let errno = if (-4095..=-1).contains(&ret) {
        (-ret) as u64
    } else {
        0
    };
    h = fnv64_u64(h, errno);
    ev.flags = 0;
    let mut ok = read_str(ev, 0, spec, &all, &mut h);
    ok &= read_str(ev, 1, spec, &all, &mut h);
    ok &= read_str(ev, 2, spec, &all, &mut h);
    ev.mem = 0;
    let memi = argspec::mem_arg(spec);
    if memi < 6 {
        // SAFETY: a user pointer read through the fault-tolerant helper.
        match unsafe { bpf_probe_read_user(all[memi as usize] as *const u64) } {
            Ok(v) => {
                ev.mem = v;
                ev.flags |= argflags::MEM_OK;
                h = fnv64_u64(h, v);
            }
            Err(_) => {
                ev.flags |= argflags::MEM_FAILED;
                ok = false;
            }
        }
    }
    if !ok {
        read_failed(group, nr, a);
    }

    if bump(&ARGS_SEEN, &h) {
        return;
    }
    if ARGS_SEEN.insert(h, 1, BPF_NOEXIST as u64).is_err() {
        // Either another CPU inserted it just now (then count it here) or the table is full.
        if !bump(&ARGS_SEEN, &h) {
            count(group, counters::ARGS_TABLE_FULL);
        }
        return;
    }

    let pid_tgid = bpf_get_current_pid_tgid();
    ev.header.kind = event::ARGS;
    ev.header.group = group as u16;
    ev.header.tid = pid_tgid as u32;
    ev.header.tgid = (pid_tgid >> 32) as u32;
    ev.header.exe = exe;
    // SAFETY: no preconditions.
    ev.header.time_ns = unsafe { bpf_ktime_get_boot_ns() };
    ev.hash = h;
    ev.nr = nr;
    ev.abi = a;
    ev.ret = ret;
    if EVENTS.output::<ArgsEvent>(&*ev, 0).is_err() {
        count(group, counters::RINGBUF_LOST_ARGS);
        // Forget the tuple so that a later call can still deliver it.
        let _ = ARGS_SEEN.remove(h);
    }
}
