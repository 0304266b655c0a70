//! Tests of emulate-mount: flags, options per file system, and the helper run for real.

use super::*;
use crate::broker::target::Creds;

/// Root and the tools, or a skip (a failure under CI=true, where nothing may skip).
fn privileged(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| which::which(t).is_err()).collect();
    crate::testing::privileged(
        test,
        crate::testing::root() && missing.is_empty(),
        &format!("root and {missing:?} (cargo xtask setup installs them)"),
    )
}

fn sh(cmd: &mut std::process::Command) -> String {
    let o = cmd.output().expect("run tool");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A loop device on a sparse file in `dir`, detached on drop.
struct Loop(String);
impl Loop {
    fn new(dir: &std::path::Path, name: &str, size: u64) -> Loop {
        let image = dir.join(name);
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("image");
        Loop(sh(std::process::Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)))
    }
}
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .output();
    }
}

fn open_path(p: &str) -> OwnedFd {
    use std::os::unix::fs::OpenOptionsExt as _;
    OwnedFd::from(
        std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(p)
            .expect(p),
    )
}

/// Defence in depth behind the option list: the helper configures the mount with an
/// empty tmpfs as its root, so even an option the list would refuse cannot make the kernel
/// open a host device by path. Here the list is bypassed (the helper is called directly)
/// with xfs's `logdev=` naming the real external log of the image: the mount fails, where
/// a helper resolving paths in the host's root mounted it.
#[test]
fn the_helper_resolves_no_host_path_even_for_an_option_the_list_would_refuse() {
    let test = "the_helper_resolves_no_host_path_even_for_an_option_the_list_would_refuse";
    if !privileged(test, &["mkfs.xfs", "losetup"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Loop::new(dir.path(), "data.img", 320 << 20);
    let logdev = Loop::new(dir.path(), "log.img", 64 << 20);
    sh(std::process::Command::new("mkfs.xfs").args([
        "-q",
        "-f",
        "-l",
        &format!("logdev={}", logdev.0),
        &data.0,
    ]));
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let rdev = std::fs::metadata(&data.0).expect("stat").rdev();
    let helper = |data_opts: &str| Helper {
        mntns: OwnedFd::from(std::fs::File::open("/proc/self/ns/mnt").expect("mntns")),
        root: open_path("/"),
        cwd: open_path("/"),
        creds: Creds {
            tgid: std::process::id(),
            uid: 0,
            gid: 0,
            fsuid: 0,
            fsgid: 0,
            groups: vec![],
            umask: 0o022,
            cap_eff: u64::MAX,
            cap_prm: u64::MAX,
            cap_bnd: u64::MAX,
        },
        copied: Copied {
            fstype: c"xfs".to_owned(),
            source: CString::new(data.0.clone()).expect("c string"),
            target: CString::new(mnt.display().to_string()).expect("c string"),
            data: Some(CString::new(data_opts).expect("c string")),
        },
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        allowed: vec![rdev],
        idmap: None,
        options: split_options(data_opts.as_bytes()),
    };
    for path in [logdev.0.clone(), format!("/proc/1/root{}", logdev.0)] {
        let e = helper(&format!("logdev={path}")).run().expect("helper");
        assert_ne!(e, 0, "logdev={path} was opened: the image mounted");
        let _ = nix::mount::umount(&mnt);
    }
    // Without its log the image cannot mount either (xfs needs it), but a plain file
    // system built the same way does: the helper itself works.
    let plain = Loop::new(dir.path(), "plain.img", 320 << 20);
    sh(std::process::Command::new("mkfs.xfs").args(["-q", "-f", &plain.0]));
    let mut h = helper("inode64");
    h.copied.source = CString::new(plain.0.clone()).expect("c string");
    h.allowed = vec![std::fs::metadata(&plain.0).expect("stat").rdev()];
    assert_eq!(h.run().expect("helper"), 0);
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&mnt.display().to_string()))
        .map(str::to_owned);
    nix::mount::umount(&mnt).expect("umount");
    let line = line.expect("mounted");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
}

#[test]
fn judges_on_flags() {
    let f = judge;
    assert_eq!(f(0), Judgement::NewMount);
    assert_eq!(f(libc::MS_RDONLY | libc::MS_NOEXEC), Judgement::NewMount);
    assert_eq!(f(libc::MS_BIND | libc::MS_REC), Judgement::Kernel);
    assert_eq!(f(libc::MS_MOVE), Judgement::Kernel);
    assert_eq!(f(libc::MS_PRIVATE | libc::MS_REC), Judgement::Kernel);
    assert_eq!(
        f(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY),
        Judgement::Refuse
    );
    assert_eq!(
        f(libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV),
        Judgement::Kernel
    );
    // The old magic number in the upper bits is ignored, as the kernel does.
    assert_eq!(judge(MS_MGC_VAL | libc::MS_BIND), Judgement::Kernel);
}

#[test]
fn refuses_options_naming_devices() {
    assert!(check_options("ext4", b"errors=remount-ro,ro").is_ok());
    let named = |r: Result<(), String>, opt: &str| {
        assert!(
            matches!(&r, Err(m) if m.contains(&format!("`{opt}"))),
            "{r:?}"
        );
    };
    named(
        check_options("ext4", b"data=ordered,journal_dev=0x801"),
        "journal_dev",
    );
    named(
        check_options("ext4", b"journal_path=/dev/sda"),
        "journal_path",
    );
    // Multi-device file systems: refused outright, whatever the type.
    named(check_options("xfs", b"logdev=/dev/loop1"), "logdev");
    named(check_options("xfs", b"rtdev=1/root/dev/sdb"), "rtdev");
    named(
        check_options("btrfs", b"device=/dev/sdb,subvol=a"),
        "device",
    );
}

#[test]
fn only_documented_options_pass_per_file_system() {
    assert!(check_options("ext4", b"data=journal,commit=5,user_xattr,acl,ro").is_ok());
    assert!(check_options("xfs", b"inode64,logbsize=256k,nouuid").is_ok());
    assert!(check_options("btrfs", b"subvol=vol/a,compress=zstd:3").is_ok());
    assert!(check_options("f2fs", b"background_gc=on,discard,errors=continue").is_ok());
    assert!(check_options("vfat", b"uid=0,gid=0,umask=022,utf8").is_ok());
    assert!(check_options("iso9660", b"ro").is_ok());
    for (fs, data) in [
        // A crafted image could panic the host.
        ("ext4", &b"errors=panic"[..]),
        ("f2fs", b"errors=panic"),
        // Paths to files outside the file system.
        ("ext4", b"usrjquota=/etc/shadow"),
        ("btrfs", b"subvol=../../x"),
        // Debugging, fault injection, DAX.
        ("ext4", b"debug"),
        ("ext4", b"abort"),
        ("f2fs", b"fault_injection=1"),
        ("ext4", b"test_dummy_encryption"),
        ("xfs", b"dax=always"),
        // Another type's options, and options of a type auditor has no list for.
        ("xfs", b"data=ordered"),
        ("iso9660", b"map=off"),
        ("ext4", b"bogus"),
    ] {
        assert!(
            check_options(fs, data).is_err(),
            "{fs} {:?} accepted",
            std::str::from_utf8(data)
        );
    }
}

#[test]
fn host_ids_map_into_the_callers_user_namespace() {
    let map = "         0     100000      65536\n";
    assert_eq!(super::fuse::inside(map, 100_000), Some(0));
    assert_eq!(super::fuse::inside(map, 100_005), Some(5));
    assert_eq!(super::fuse::inside(map, 0), None);
    assert_eq!(super::fuse::inside(map, 165_536), None);
    // The initial namespace's identity map.
    assert_eq!(super::fuse::inside("0 0 4294967295\n", 1000), Some(1000));
}
