use super::*;

/// `r0 = 1; exit` (allow every device).
const ALLOW_ALL: [u64; 2] = [0x0000_0001_0000_00b7, 0x0000_0000_0000_0095];

fn load_attr(prog_type: u32, cnt: u32) -> Attr {
    let mut a = Attr::zero();
    a.put_u32(load::PROG_TYPE, prog_type);
    a.put_u32(load::INSN_CNT, cnt);
    a.put_u64(load::INSNS, 0x1000);
    a
}

#[test]
fn only_cgroup_device_programs_of_sane_size() {
    assert_eq!(
        check_load_attr(&load_attr(PROG_TYPE_CGROUP_DEVICE, 2)),
        Ok((PROG_TYPE_CGROUP_DEVICE, 2, 0x1000))
    );
    // runc's probe for BPF_PROG_ATTACH: a cgroup_skb program (checked to be a probe later).
    assert_eq!(
        check_load_attr(&load_attr(PROG_TYPE_CGROUP_SKB, 2)),
        Ok((PROG_TYPE_CGROUP_SKB, 2, 0x1000))
    );
    // A socket filter (which the kernel lets a user namespace load when unprivileged bpf is
    // on) is not what this handler is for.
    assert_eq!(
        check_load_attr(&load_attr(1, 2)).map_err(|e| e.0),
        Err(libc::EPERM)
    );
    assert_eq!(
        check_load_attr(&load_attr(PROG_TYPE_CGROUP_DEVICE, 0)).map_err(|e| e.0),
        Err(libc::EINVAL)
    );
    assert_eq!(
        check_load_attr(&load_attr(PROG_TYPE_CGROUP_DEVICE, MAX_INSNS + 1)).map_err(|e| e.0),
        Err(libc::E2BIG)
    );
    let mut btf = load_attr(PROG_TYPE_CGROUP_DEVICE, 2);
    btf.put_u32(72, 3);
    assert_eq!(check_load_attr(&btf).map_err(|e| e.0), Err(libc::EINVAL));
    let mut flags = load_attr(PROG_TYPE_CGROUP_DEVICE, 2);
    flags.put_u32(load::PROG_FLAGS, 1);
    assert_eq!(check_load_attr(&flags).map_err(|e| e.0), Err(libc::EINVAL));
}

#[test]
fn a_probe_is_a_constant_return() {
    assert!(is_probe(&[0x0000_0000_0000_00b7, ALLOW_ALL[1]]));
    assert!(is_probe(&ALLOW_ALL));
    // r0 = r1 (the context); exit
    assert!(!is_probe(&[0x0000_0000_0000_10bf, ALLOW_ALL[1]]));
    assert!(!is_probe(&[ALLOW_ALL[0], ALLOW_ALL[0], ALLOW_ALL[1]]));
}

#[test]
fn instructions_naming_fds_or_calling_are_refused() {
    assert_eq!(check_insns(&ALLOW_ALL), Ok(()));
    // ld_imm64 r1, map fd 3 (src 1: BPF_PSEUDO_MAP_FD), then its second half.
    let map = [0x0000_0003_0000_1118u64, 0, ALLOW_ALL[0], ALLOW_ALL[1]];
    assert_eq!(check_insns(&map).map_err(|e| e.0), Err(libc::EPERM));
    // A plain 64-bit constant is fine.
    let imm = [0x0000_0003_0000_0118u64, 0, ALLOW_ALL[0], ALLOW_ALL[1]];
    assert_eq!(check_insns(&imm), Ok(()));
    // Half an ld_imm64 at the end.
    assert_eq!(
        check_insns(&[ALLOW_ALL[0], 0x0000_0003_0000_0118]).map_err(|e| e.0),
        Err(libc::EINVAL)
    );
    // call bpf_get_current_uid_gid (helper 15).
    let call = [0x0000_000f_0000_0085u64, ALLOW_ALL[0], ALLOW_ALL[1]];
    assert_eq!(check_insns(&call).map_err(|e| e.0), Err(libc::EPERM));
}

#[test]
fn attr_is_copied_once_and_a_larger_one_must_be_zero_beyond() {
    let mem = File::open("/proc/self/mem").expect("own memory");
    let mut buf = vec![0u8; 256];
    buf[0] = 15;
    let a = read_attr(&mem, buf.as_ptr() as u64, 256).expect("zero tail");
    assert_eq!(a.u32_at(0), 15);
    buf[200] = 1;
    assert_eq!(
        read_attr(&mem, buf.as_ptr() as u64, 256).map_err(|e| e.0),
        Err(libc::E2BIG)
    );
    assert_eq!(
        read_attr(&mem, buf.as_ptr() as u64, 8192).map_err(|e| e.0),
        Err(libc::E2BIG)
    );
    assert_eq!(read_attr(&mem, 8, 64).map_err(|e| e.0), Err(libc::EFAULT));
}

/// Loading for real needs root (CAP_BPF, CAP_NET_ADMIN), as the broker has.
#[test]
fn loads_with_narrowed_capabilities_and_restores_them() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let eff = || {
        std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .map(|v| v.trim().to_owned())
            })
    };
    let before = eff();
    let during = with_loader_caps(eff).expect("narrow");
    assert_eq!(during.as_deref(), Some("0000008000001000"));
    assert_eq!(eff(), before);
    let l = Load {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insns: ALLOW_ALL.to_vec(),
        license: CString::new("GPL").expect("no NUL"),
        name: *b"auditor_test\0\0\0\0",
        expected_attach_type: 0,
    };
    let fd = load_program(&l).expect("an allow-all device program loads");
    let id = prog_id(fd.as_fd()).expect("its id");
    assert!(id > 0);
    // The verifier runs as an unprivileged loader would: a pointer returned is refused.
    let leak = Load {
        // r0 = r1 (the context pointer); exit
        insns: vec![0x0000_0000_0000_10bf, ALLOW_ALL[1]],
        ..l
    };
    assert!(load_program(&leak).is_err());
    drop(fd);
}
