//! Names for the argument values that policies and reports talk about: mount flags, namespace
//! flags, socket domains and types, prctl options, bpf commands, file types (Linux 6.18 UAPI).
//!
//! Unknown values are never dropped: they come back as numbers, so a report shows what the
//! workload really passed.

/// `mount(2)` flags, by bit (`include/uapi/linux/mount.h`). `MS_VERBOSE` is the old name of
/// `MS_SILENT`; the last ones are kernel-internal but a caller can still pass them.
const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (1 << 1, "MS_NOSUID"),
    (1 << 2, "MS_NODEV"),
    (1 << 3, "MS_NOEXEC"),
    (1 << 4, "MS_SYNCHRONOUS"),
    (1 << 5, "MS_REMOUNT"),
    (1 << 6, "MS_MANDLOCK"),
    (1 << 7, "MS_DIRSYNC"),
    (1 << 8, "MS_NOSYMFOLLOW"),
    (1 << 10, "MS_NOATIME"),
    (1 << 11, "MS_NODIRATIME"),
    (1 << 12, "MS_BIND"),
    (1 << 13, "MS_MOVE"),
    (1 << 14, "MS_REC"),
    (1 << 15, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
    (1 << 26, "MS_SUBMOUNT"),
    (1 << 27, "MS_NOREMOTELOCK"),
    (1 << 28, "MS_NOSEC"),
    (1 << 29, "MS_BORN"),
    (1 << 30, "MS_ACTIVE"),
    (1 << 31, "MS_NOUSER"),
];

/// Old `mount(2)` callers put this magic in the upper 16 bits; the kernel strips it
/// (`path_mount`: `if ((flags & MS_MGC_MSK) == MS_MGC_VAL) flags &= ~MS_MGC_MSK`).
const MS_MGC_VAL: u64 = libc::MS_MGC_VAL;
const MS_MGC_MSK: u64 = libc::MS_MGC_MSK;

/// Names of the bits set in a `mount(2)` `flags` argument, lowest bit first. Bits without a
/// name come last, together, as one hexadecimal number (`"0x200"`).
pub fn mount_flag_names(flags: u64) -> Vec<String> {
    let mut rest = flags;
    let mut names = Vec::new();
    if rest & MS_MGC_MSK == MS_MGC_VAL {
        names.push("MS_MGC_VAL".to_owned());
        rest &= !MS_MGC_MSK;
    }
    for &(bit, name) in MOUNT_FLAGS {
        if rest & bit != 0 {
            names.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

/// `CLONE_NEW*` flags and the short names `/proc/<pid>/ns/` uses for them.
const NAMESPACES: &[(u64, &str)] = &[
    (libc::CLONE_NEWNS as u64, "mnt"),
    (libc::CLONE_NEWUTS as u64, "uts"),
    (libc::CLONE_NEWIPC as u64, "ipc"),
    (libc::CLONE_NEWUSER as u64, "user"),
    (libc::CLONE_NEWPID as u64, "pid"),
    (libc::CLONE_NEWNET as u64, "net"),
    (libc::CLONE_NEWCGROUP as u64, "cgroup"),
    // Linux 5.6; not in the libc crate for glibc targets.
    (linux_raw_sys::general::CLONE_NEWTIME as u64, "time"),
];

/// The namespaces in a `CLONE_NEW*` mask (`unshare(2)`, `setns(2)`, `clone3(2)` flags), as
/// `mnt`, `uts`, `ipc`, `user`, `pid`, `net`, `cgroup`, `time`, in that order; other bits are
/// ignored. For `clone(2)` mask the exit signal first: `CLONE_NEWTIME` (0x80) lies inside
/// `CSIGNAL` there, which is why only `clone3` and `unshare` accept it.
pub fn namespace_names(flags: u64) -> Vec<String> {
    NAMESPACES
        .iter()
        .filter(|&&(bit, _)| flags & bit != 0)
        .map(|&(_, name)| name.to_owned())
        .collect()
}

/// Address families (`include/linux/socket.h`), sorted by number.
const SOCKET_DOMAINS: &[(u64, &str)] = &[
    (0, "AF_UNSPEC"),
    (1, "AF_UNIX"),
    (2, "AF_INET"),
    (3, "AF_AX25"),
    (4, "AF_IPX"),
    (5, "AF_APPLETALK"),
    (6, "AF_NETROM"),
    (7, "AF_BRIDGE"),
    (8, "AF_ATMPVC"),
    (9, "AF_X25"),
    (10, "AF_INET6"),
    (11, "AF_ROSE"),
    (12, "AF_DECnet"),
    (13, "AF_NETBEUI"),
    (14, "AF_SECURITY"),
    (15, "AF_KEY"),
    (16, "AF_NETLINK"),
    (17, "AF_PACKET"),
    (18, "AF_ASH"),
    (19, "AF_ECONET"),
    (20, "AF_ATMSVC"),
    (21, "AF_RDS"),
    (22, "AF_SNA"),
    (23, "AF_IRDA"),
    (24, "AF_PPPOX"),
    (25, "AF_WANPIPE"),
    (26, "AF_LLC"),
    (27, "AF_IB"),
    (28, "AF_MPLS"),
    (29, "AF_CAN"),
    (30, "AF_TIPC"),
    (31, "AF_BLUETOOTH"),
    (32, "AF_IUCV"),
    (33, "AF_RXRPC"),
    (34, "AF_ISDN"),
    (35, "AF_PHONET"),
    (36, "AF_IEEE802154"),
    (37, "AF_CAIF"),
    (38, "AF_ALG"),
    (39, "AF_NFC"),
    (40, "AF_VSOCK"),
    (41, "AF_KCM"),
    (42, "AF_QIPCRTR"),
    (43, "AF_SMC"),
    (44, "AF_XDP"),
    (45, "AF_MCTP"),
];

fn lookup(table: &[(u64, &'static str)], value: u64) -> Option<&'static str> {
    table
        .iter()
        .find(|&&(v, _)| v == value)
        .map(|&(_, name)| name)
}

/// A scheduling policy's name as policies write it (`SCHED_FIFO` is `fifo`), or its number as
/// text; `SCHED_RESET_ON_FORK` is left out.
pub fn sched_policy_name(policy: u64) -> String {
    match policy & !0x4000_0000 {
        0 => "other".into(),
        1 => "fifo".into(),
        2 => "rr".into(),
        3 => "batch".into(),
        5 => "idle".into(),
        6 => "deadline".into(),
        n => n.to_string(),
    }
}

/// The name of a `socket(2)` domain (`AF_INET`), or the number as text.
pub fn socket_domain_name(domain: u64) -> String {
    lookup(SOCKET_DOMAINS, domain).map_or_else(|| domain.to_string(), str::to_owned)
}

const SOCK_NONBLOCK: u64 = libc::SOCK_NONBLOCK as u64;
const SOCK_CLOEXEC: u64 = libc::SOCK_CLOEXEC as u64;

const SOCKET_TYPES: &[(u64, &str)] = &[
    (1, "SOCK_STREAM"),
    (2, "SOCK_DGRAM"),
    (3, "SOCK_RAW"),
    (4, "SOCK_RDM"),
    (5, "SOCK_SEQPACKET"),
    (6, "SOCK_DCCP"),
    (10, "SOCK_PACKET"),
];

/// The name of a `socket(2)` type (`SOCK_STREAM`), ignoring `SOCK_NONBLOCK` and `SOCK_CLOEXEC`;
/// an unknown type comes back as its number (without those two flags).
pub fn socket_type_name(ty: u64) -> String {
    let ty = ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
    lookup(SOCKET_TYPES, ty).map_or_else(|| ty.to_string(), str::to_owned)
}

/// `prctl(2)` options of Linux 6.18 (`include/uapi/linux/prctl.h`), sorted by number.
const PRCTL_OPTIONS: &[(u64, &str)] = &[
    (1, "PR_SET_PDEATHSIG"),
    (2, "PR_GET_PDEATHSIG"),
    (3, "PR_GET_DUMPABLE"),
    (4, "PR_SET_DUMPABLE"),
    (5, "PR_GET_UNALIGN"),
    (6, "PR_SET_UNALIGN"),
    (7, "PR_GET_KEEPCAPS"),
    (8, "PR_SET_KEEPCAPS"),
    (9, "PR_GET_FPEMU"),
    (10, "PR_SET_FPEMU"),
    (11, "PR_GET_FPEXC"),
    (12, "PR_SET_FPEXC"),
    (13, "PR_GET_TIMING"),
    (14, "PR_SET_TIMING"),
    (15, "PR_SET_NAME"),
    (16, "PR_GET_NAME"),
    (19, "PR_GET_ENDIAN"),
    (20, "PR_SET_ENDIAN"),
    (21, "PR_GET_SECCOMP"),
    (22, "PR_SET_SECCOMP"),
    (23, "PR_CAPBSET_READ"),
    (24, "PR_CAPBSET_DROP"),
    (25, "PR_GET_TSC"),
    (26, "PR_SET_TSC"),
    (27, "PR_GET_SECUREBITS"),
    (28, "PR_SET_SECUREBITS"),
    (29, "PR_SET_TIMERSLACK"),
    (30, "PR_GET_TIMERSLACK"),
    (31, "PR_TASK_PERF_EVENTS_DISABLE"),
    (32, "PR_TASK_PERF_EVENTS_ENABLE"),
    (33, "PR_MCE_KILL"),
    (34, "PR_MCE_KILL_GET"),
    (35, "PR_SET_MM"),
    (36, "PR_SET_CHILD_SUBREAPER"),
    (37, "PR_GET_CHILD_SUBREAPER"),
    (38, "PR_SET_NO_NEW_PRIVS"),
    (39, "PR_GET_NO_NEW_PRIVS"),
    (40, "PR_GET_TID_ADDRESS"),
    (41, "PR_SET_THP_DISABLE"),
    (42, "PR_GET_THP_DISABLE"),
    (43, "PR_MPX_ENABLE_MANAGEMENT"),
    (44, "PR_MPX_DISABLE_MANAGEMENT"),
    (45, "PR_SET_FP_MODE"),
    (46, "PR_GET_FP_MODE"),
    (47, "PR_CAP_AMBIENT"),
    (50, "PR_SVE_SET_VL"),
    (51, "PR_SVE_GET_VL"),
    (52, "PR_GET_SPECULATION_CTRL"),
    (53, "PR_SET_SPECULATION_CTRL"),
    (54, "PR_PAC_RESET_KEYS"),
    (55, "PR_SET_TAGGED_ADDR_CTRL"),
    (56, "PR_GET_TAGGED_ADDR_CTRL"),
    (57, "PR_SET_IO_FLUSHER"),
    (58, "PR_GET_IO_FLUSHER"),
    (59, "PR_SET_SYSCALL_USER_DISPATCH"),
    (60, "PR_PAC_SET_ENABLED_KEYS"),
    (61, "PR_PAC_GET_ENABLED_KEYS"),
    (62, "PR_SCHED_CORE"),
    (63, "PR_SME_SET_VL"),
    (64, "PR_SME_GET_VL"),
    (65, "PR_SET_MDWE"),
    (66, "PR_GET_MDWE"),
    (67, "PR_SET_MEMORY_MERGE"),
    (68, "PR_GET_MEMORY_MERGE"),
    (69, "PR_RISCV_V_SET_CONTROL"),
    (70, "PR_RISCV_V_GET_CONTROL"),
    (71, "PR_RISCV_SET_ICACHE_FLUSH_CTX"),
    (72, "PR_PPC_GET_DEXCR"),
    (73, "PR_PPC_SET_DEXCR"),
    (74, "PR_GET_SHADOW_STACK_STATUS"),
    (75, "PR_SET_SHADOW_STACK_STATUS"),
    (76, "PR_LOCK_SHADOW_STACK_STATUS"),
    (77, "PR_TIMER_CREATE_RESTORE_IDS"),
    (78, "PR_FUTEX_HASH"),
    (0x4155_5856, "PR_GET_AUXV"),    // 'AUXV'
    (0x5356_4d41, "PR_SET_VMA"),     // 'SVMA'
    (0x5961_6d61, "PR_SET_PTRACER"), // 'Yama'
];

/// The name of a `prctl(2)` option (`PR_SET_NO_NEW_PRIVS`), or the number as text.
pub fn prctl_option_name(option: u64) -> String {
    lookup(PRCTL_OPTIONS, option).map_or_else(|| option.to_string(), str::to_owned)
}

/// `enum bpf_cmd` of Linux 6.18 (`include/uapi/linux/bpf.h`), in order from 0. `BPF_PROG_RUN`
/// is another name for `BPF_PROG_TEST_RUN` (10).
const BPF_COMMANDS: &[&str] = &[
    "BPF_MAP_CREATE",
    "BPF_MAP_LOOKUP_ELEM",
    "BPF_MAP_UPDATE_ELEM",
    "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY",
    "BPF_PROG_LOAD",
    "BPF_OBJ_PIN",
    "BPF_OBJ_GET",
    "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH",
    "BPF_PROG_TEST_RUN",
    "BPF_PROG_GET_NEXT_ID",
    "BPF_MAP_GET_NEXT_ID",
    "BPF_PROG_GET_FD_BY_ID",
    "BPF_MAP_GET_FD_BY_ID",
    "BPF_OBJ_GET_INFO_BY_FD",
    "BPF_PROG_QUERY",
    "BPF_RAW_TRACEPOINT_OPEN",
    "BPF_BTF_LOAD",
    "BPF_BTF_GET_FD_BY_ID",
    "BPF_TASK_FD_QUERY",
    "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
    "BPF_MAP_FREEZE",
    "BPF_BTF_GET_NEXT_ID",
    "BPF_MAP_LOOKUP_BATCH",
    "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
    "BPF_MAP_UPDATE_BATCH",
    "BPF_MAP_DELETE_BATCH",
    "BPF_LINK_CREATE",
    "BPF_LINK_UPDATE",
    "BPF_LINK_GET_FD_BY_ID",
    "BPF_LINK_GET_NEXT_ID",
    "BPF_ENABLE_STATS",
    "BPF_ITER_CREATE",
    "BPF_LINK_DETACH",
    "BPF_PROG_BIND_MAP",
    "BPF_TOKEN_CREATE",
    "BPF_PROG_STREAM_READ_BY_FD",
];

/// The name of a `bpf(2)` command (`BPF_PROG_LOAD`), or the number as text.
pub fn bpf_cmd_name(cmd: u64) -> String {
    usize::try_from(cmd)
        .ok()
        .and_then(|i| BPF_COMMANDS.get(i))
        .map_or_else(|| cmd.to_string(), |&name| name.to_owned())
}

/// `enum bpf_prog_type` of Linux 6.18, in order from 0 (lower case, without the prefix).
const BPF_PROG_TYPES: &[&str] = &[
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// The name of a bpf program type (`cgroup_device`), or the number as text.
pub fn bpf_prog_type_name(t: u64) -> String {
    usize::try_from(t)
        .ok()
        .and_then(|i| BPF_PROG_TYPES.get(i))
        .map_or_else(|| t.to_string(), |&name| name.to_owned())
}

/// `enum bpf_attach_type` of Linux 6.18, the cgroup ones at its start (lower case, without the
/// prefix).
const BPF_ATTACH_TYPES: &[&str] = &[
    "cgroup_inet_ingress",
    "cgroup_inet_egress",
    "cgroup_inet_sock_create",
    "cgroup_sock_ops",
    "sk_skb_stream_parser",
    "sk_skb_stream_verdict",
    "cgroup_device",
    "sk_msg_verdict",
    "cgroup_inet4_bind",
    "cgroup_inet6_bind",
];

/// The name of a bpf attach type (`cgroup_device`), or the number as text.
pub fn bpf_attach_type_name(t: u64) -> String {
    usize::try_from(t)
        .ok()
        .and_then(|i| BPF_ATTACH_TYPES.get(i))
        .map_or_else(|| t.to_string(), |&name| name.to_owned())
}

const S_IFMT: u32 = libc::S_IFMT;

/// The kind of file a `mknod(2)`/`mknodat(2)` mode creates (or `stat` reports): `"regular"`
/// (also for type 0, which mknod treats as regular), `"char"`, `"block"`, `"fifo"`, `"socket"`,
/// `"directory"`, `"symlink"`, else `"unknown"`.
pub fn file_type_name(mode: u32) -> &'static str {
    match mode & S_IFMT {
        0 | 0o100_000 => "regular",
        0o020_000 => "char",
        0o060_000 => "block",
        0o010_000 => "fifo",
        0o140_000 => "socket",
        0o040_000 => "directory",
        0o120_000 => "symlink",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flags() {
        assert!(mount_flag_names(0).is_empty());
        assert_eq!(
            mount_flag_names(0x1 | 0x2 | 0x4 | 0x8),
            ["MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC"]
        );
        // mount --make-rprivate / and a recursive read-only bind remount.
        assert_eq!(
            mount_flag_names((1 << 18) | (1 << 14)),
            ["MS_REC", "MS_PRIVATE"]
        );
        assert_eq!(
            mount_flag_names(1 | (1 << 5) | (1 << 12)),
            ["MS_RDONLY", "MS_REMOUNT", "MS_BIND"]
        );
        assert_eq!(mount_flag_names(1 << 19), ["MS_SLAVE"]);
        assert_eq!(mount_flag_names(1 << 20), ["MS_SHARED"]);
        // Bit 9 has no name; bits above 31 neither.
        assert_eq!(mount_flag_names(1 | (1 << 9)), ["MS_RDONLY", "0x200"]);
        assert_eq!(
            mount_flag_names((1 << 32) | (1 << 9) | 2),
            ["MS_NOSUID", "0x100000200"]
        );
        // The legacy magic is named once, not decoded as flag bits.
        assert_eq!(
            mount_flag_names(0xC0ED_0000 | 1),
            ["MS_MGC_VAL", "MS_RDONLY"]
        );
    }

    #[test]
    fn namespaces() {
        assert!(namespace_names(0).is_empty());
        assert_eq!(namespace_names(0x0002_0000), ["mnt"]);
        assert_eq!(
            namespace_names(0x7E02_0080),
            ["mnt", "uts", "ipc", "user", "pid", "net", "cgroup", "time"]
        );
        // CLONE_VM | CLONE_NEWUSER | CLONE_NEWNET: non-namespace bits are ignored.
        assert_eq!(
            namespace_names(0x100 | 0x1000_0000 | 0x4000_0000),
            ["user", "net"]
        );
    }

    #[test]
    fn sockets() {
        assert_eq!(socket_domain_name(1), "AF_UNIX");
        assert_eq!(socket_domain_name(2), "AF_INET");
        assert_eq!(socket_domain_name(10), "AF_INET6");
        assert_eq!(socket_domain_name(16), "AF_NETLINK");
        assert_eq!(socket_domain_name(17), "AF_PACKET");
        assert_eq!(socket_domain_name(40), "AF_VSOCK");
        assert_eq!(socket_domain_name(44), "AF_XDP");
        assert_eq!(socket_domain_name(46), "46");
        assert_eq!(socket_domain_name(u64::MAX), u64::MAX.to_string());

        assert_eq!(socket_type_name(1), "SOCK_STREAM");
        assert_eq!(socket_type_name(2), "SOCK_DGRAM");
        assert_eq!(socket_type_name(3), "SOCK_RAW");
        assert_eq!(socket_type_name(5), "SOCK_SEQPACKET");
        // SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, as glibc and Go pass it.
        assert_eq!(socket_type_name(1 | 0o4000 | 0o2_000_000), "SOCK_STREAM");
        assert_eq!(socket_type_name(0o2_000_000 | 2), "SOCK_DGRAM");
        assert_eq!(socket_type_name(7), "7");
        assert_eq!(socket_type_name(7 | 0o4000), "7");
    }

    #[test]
    fn prctl() {
        assert_eq!(prctl_option_name(1), "PR_SET_PDEATHSIG");
        assert_eq!(prctl_option_name(15), "PR_SET_NAME");
        assert_eq!(prctl_option_name(22), "PR_SET_SECCOMP");
        assert_eq!(prctl_option_name(23), "PR_CAPBSET_READ");
        assert_eq!(prctl_option_name(38), "PR_SET_NO_NEW_PRIVS");
        assert_eq!(prctl_option_name(47), "PR_CAP_AMBIENT");
        assert_eq!(prctl_option_name(78), "PR_FUTEX_HASH");
        assert_eq!(prctl_option_name(0x5961_6d61), "PR_SET_PTRACER");
        assert_eq!(prctl_option_name(0x5356_4d41), "PR_SET_VMA");
        assert_eq!(prctl_option_name(17), "17");
        assert_eq!(prctl_option_name(48), "48");
        assert_eq!(prctl_option_name(1000), "1000");
        let mut previous = 0;
        for &(nr, name) in PRCTL_OPTIONS {
            assert!(nr > previous, "{name} out of order");
            previous = nr;
            assert!(name.starts_with("PR_"));
        }
    }

    #[test]
    fn bpf() {
        assert_eq!(bpf_cmd_name(0), "BPF_MAP_CREATE");
        assert_eq!(bpf_prog_type_name(15), "cgroup_device");
        assert_eq!(bpf_prog_type_name(32), "netfilter");
        assert_eq!(bpf_prog_type_name(99), "99");
        assert_eq!(bpf_attach_type_name(6), "cgroup_device");
        assert_eq!(bpf_cmd_name(5), "BPF_PROG_LOAD");
        assert_eq!(bpf_cmd_name(10), "BPF_PROG_TEST_RUN");
        assert_eq!(bpf_cmd_name(28), "BPF_LINK_CREATE");
        assert_eq!(bpf_cmd_name(36), "BPF_TOKEN_CREATE");
        assert_eq!(bpf_cmd_name(37), "BPF_PROG_STREAM_READ_BY_FD");
        assert_eq!(bpf_cmd_name(38), "38");
        assert_eq!(bpf_cmd_name(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn file_types() {
        assert_eq!(file_type_name(0o020_644), "char");
        assert_eq!(file_type_name(0o060_600), "block");
        assert_eq!(file_type_name(0o010_600), "fifo");
        assert_eq!(file_type_name(0o140_777), "socket");
        assert_eq!(file_type_name(0o100_644), "regular");
        assert_eq!(file_type_name(0o644), "regular");
        assert_eq!(file_type_name(0), "regular");
        assert_eq!(file_type_name(0o040_755), "directory");
        assert_eq!(file_type_name(0o120_777), "symlink");
        assert_eq!(file_type_name(0o030_000), "unknown");
    }
}
