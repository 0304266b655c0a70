//! Which syscalls' arguments are captured (the ones a policy depends on), how the kernel side
//! copies them (`auditor_common::argspec`), and how user space decodes what it copied.

use crate::syscalls::Abi;
use auditor_common::{
    argflags,
    argspec::{spec, NONE},
    ArgsEvent,
};

use super::model::Arguments;
use crate::syscalls::{self, decode};

/// (syscall name, spec). Register indices are syscall argument positions.
pub const CAPTURED: &[(&str, u32)] = &[
    // mknod(path, mode, dev)
    ("mknod", spec(0b000110, 0, NONE, NONE, NONE)),
    // mknodat(dirfd, path, mode, dev)
    ("mknodat", spec(0b001101, 1, NONE, NONE, NONE)),
    // mount(source, target, fstype, flags, data)
    ("mount", spec(0b001000, 0, 1, 2, NONE)),
    // umount2(target, flags)
    ("umount2", spec(0b000010, 0, NONE, NONE, NONE)),
    // setxattr/lsetxattr(path, name, value, size, flags), fsetxattr(fd, name, …)
    ("setxattr", spec(0b010000, 1, NONE, NONE, NONE)),
    ("lsetxattr", spec(0b010000, 1, NONE, NONE, NONE)),
    ("fsetxattr", spec(0b010000, 1, NONE, NONE, NONE)),
    // setxattrat(dirfd, path, at_flags, name, uargs, usize)
    ("setxattrat", spec(0b000100, 3, NONE, NONE, NONE)),
    // bpf(cmd, attr, size): the first u64 of attr (BPF_PROG_LOAD's program type,
    // BPF_PROG_QUERY's attach type)
    ("bpf", spec(0b000001, NONE, NONE, NONE, 1)),
    // socket(domain, type, protocol)
    ("socket", spec(0b000111, NONE, NONE, NONE, NONE)),
    // clone(flags, …) — flags first on x86 (64 and 32 bit)
    ("clone", spec(0b000001, NONE, NONE, NONE, NONE)),
    // clone3(struct clone_args *, size): flags is the first u64 of the struct
    ("clone3", spec(0, NONE, NONE, NONE, 0)),
    ("unshare", spec(0b000001, NONE, NONE, NONE, NONE)),
    // setns(fd, nstype)
    ("setns", spec(0b000010, NONE, NONE, NONE, NONE)),
    // ioctl(fd, request, arg)
    ("ioctl", spec(0b000010, NONE, NONE, NONE, NONE)),
    // prctl(option, …)
    ("prctl", spec(0b000001, NONE, NONE, NONE, NONE)),
    ("personality", spec(0b000001, NONE, NONE, NONE, NONE)),
    // sched_setscheduler(pid, policy, struct sched_param *): its priority is the first u32
    ("sched_setscheduler", spec(0b000010, NONE, NONE, NONE, 2)),
    // sched_setattr(pid, struct sched_attr *, flags): size and policy are its first u64
    ("sched_setattr", spec(0b000100, NONE, NONE, NONE, 1)),
    // setpriority(which, who, nice): not who (a thread id would make every tuple distinct)
    ("setpriority", spec(0b000101, NONE, NONE, NONE, NONE)),
];

/// The capture specs to load, resolved per ABI: (abi id, nr, spec).
pub fn kernel_specs() -> Vec<(u8, u16, u32)> {
    let mut out = Vec::new();
    for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
        for &(name, s) in CAPTURED {
            if let Some(nr) = syscalls::number(abi, name) {
                if let Ok(nr) = u16::try_from(nr) {
                    out.push((abi_id(abi), nr, s));
                }
            }
        }
    }
    out
}

pub fn abi_id(abi: Abi) -> u8 {
    match abi {
        Abi::X86_64 => auditor_common::abi::X86_64,
        Abi::I386 => auditor_common::abi::I386,
        Abi::X32 => auditor_common::abi::X32,
    }
}

/// Decode a kernel ABI id (never trusted blindly).
pub fn abi_from_id(id: u8) -> Option<Abi> {
    match id {
        auditor_common::abi::X86_64 => Some(Abi::X86_64),
        auditor_common::abi::I386 => Some(Abi::I386),
        auditor_common::abi::X32 => Some(Abi::X32),
        _ => None,
    }
}

fn string(ev: &ArgsEvent, slot: usize) -> Option<String> {
    if ev.flags & (argflags::STR_OK << slot) == 0 {
        return None;
    }
    let n = (ev.str_len[slot] as usize)
        .saturating_sub(1)
        .min(ev.strs[slot].len());
    Some(String::from_utf8_lossy(&ev.strs[slot][..n]).into_owned())
}

/// The kernel's `new_decode_dev` for the `unsigned int dev` of mknod(at).
fn decode_dev(dev: u64) -> (u32, u32) {
    let dev = dev as u32;
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// Decode a captured tuple of syscall `name`. None for a syscall that is not captured.
pub fn decode(name: &str, ev: &ArgsEvent) -> Option<Arguments> {
    let a = &ev.args;
    Some(match name {
        "mknod" | "mknodat" => {
            let (dirfd, mode, dev) = if name == "mknod" {
                (None, a[1], a[2])
            } else {
                (Some(a[0] as i32), a[2], a[3])
            };
            let (major, minor) = decode_dev(dev);
            Arguments::Mknod {
                dirfd,
                path: string(ev, 0),
                file_type: decode::file_type_name(mode as u32).to_string(),
                perm: (mode as u32) & 0o7777,
                major,
                minor,
            }
        }
        "mount" => Arguments::Mount {
            source: string(ev, 0),
            target: string(ev, 1),
            fstype: string(ev, 2),
            flags: a[3],
            flag_names: decode::mount_flag_names(a[3]),
        },
        "umount2" => Arguments::Umount {
            target: string(ev, 0),
            flags: a[1],
        },
        "setxattr" | "lsetxattr" | "fsetxattr" => Arguments::Xattr {
            name: string(ev, 0),
            flags: a[4],
        },
        "setxattrat" => Arguments::Xattr {
            name: string(ev, 0),
            flags: a[2],
        },
        "bpf" => Arguments::Bpf {
            cmd: a[0],
            cmd_name: decode::bpf_cmd_name(a[0]),
            // BPF_PROG_LOAD's attr starts with the program type (the rest of that u64 is the
            // instruction count); BPF_PROG_QUERY's with the target fd and the attach type.
            prog_type: (a[0] & 0xffff_ffff == 5 && ev.flags & argflags::MEM_OK != 0)
                .then(|| decode::bpf_prog_type_name(ev.mem & 0xffff_ffff)),
            attach_type: (a[0] & 0xffff_ffff == 16 && ev.flags & argflags::MEM_OK != 0)
                .then(|| decode::bpf_attach_type_name(ev.mem >> 32)),
        },
        "socket" => {
            let ty = a[1] & !(libc::SOCK_NONBLOCK as u64 | libc::SOCK_CLOEXEC as u64);
            Arguments::Socket {
                domain: a[0],
                domain_name: decode::socket_domain_name(a[0]),
                socket_type: ty,
                type_name: decode::socket_type_name(ty),
                protocol: a[2],
            }
        }
        "clone" | "unshare" => Arguments::Namespaces {
            flags: a[0],
            namespaces: decode::namespace_names(a[0]),
        },
        "setns" => Arguments::Namespaces {
            flags: a[1],
            namespaces: decode::namespace_names(a[1]),
        },
        "clone3" => {
            let flags = if ev.flags & argflags::MEM_OK != 0 {
                ev.mem
            } else {
                0
            };
            Arguments::Namespaces {
                flags,
                namespaces: decode::namespace_names(flags),
            }
        }
        "ioctl" => Arguments::Ioctl {
            request: a[1] & 0xffff_ffff,
        },
        "prctl" => Arguments::Prctl {
            option: a[0],
            option_name: decode::prctl_option_name(a[0]),
        },
        "personality" => Arguments::Personality {
            persona: a[0] & 0xffff_ffff,
        },
        "sched_setscheduler" => Arguments::Sched {
            policy: Some(decode::sched_policy_name(a[1] & 0xffff_ffff)),
            priority: (ev.flags & argflags::MEM_OK != 0).then_some(ev.mem as u32),
            which: None,
            nice: None,
        },
        "sched_setattr" => Arguments::Sched {
            policy: (ev.flags & argflags::MEM_OK != 0)
                .then(|| decode::sched_policy_name(ev.mem >> 32)),
            priority: None,
            which: None,
            nice: None,
        },
        "setpriority" => Arguments::Sched {
            policy: None,
            priority: None,
            which: Some(match a[0] & 0xffff_ffff {
                0 => "process".into(),
                1 => "pgrp".into(),
                2 => "user".into(),
                n => n.to_string(),
            }),
            nice: Some((a[2] as u32 as i32).clamp(-20, 19)),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_decode_like_the_kernel() {
        // makedev(1, 3) as glibc passes it (fits the old 8:8 encoding).
        assert_eq!(decode_dev(0x0103), (1, 3));
        // major 8, minor 300: minor's high bits live above bit 20.
        let dev = (8u64 << 8) | (300 & 0xff) | ((300u64 & !0xff) << 12);
        assert_eq!(decode_dev(dev), (8, 300));
    }

    #[test]
    fn every_captured_syscall_exists_on_x86_64() {
        for &(name, _) in CAPTURED {
            assert!(
                syscalls::number(Abi::X86_64, name).is_some(),
                "{name} is not an x86_64 syscall"
            );
        }
    }
}
