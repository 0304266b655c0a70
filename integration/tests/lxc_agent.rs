//! `auditor agent --lxc-socket` against real LXC 5: an unprivileged busybox container whose
//! seccomp profile notifies mknod, with `lxc.seccomp.notify.proxy` pointing at the agent; and
//! the agent against a hostile SOCK_SEQPACKET client.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration::agent::Agent;
use integration::runtimes::{clear_stale, LxcContainer, Runtime};
use integration::{auditor_bin, require_root, require_tool, Scratch, CONTAINER_ROOT, MKNOD_NOTIFY};

/// No notify line: the kernel alone decides mknod (and refuses it in the user namespace).
const LXC_PLAIN_PROFILE: &str = "2\ndenylist\n[all]\nkexec_load errno 1\n";

// --- a raw SOCK_SEQPACKET client ----------------------------------------------------------------

fn connect(path: &Path) -> OwnedFd {
    // SAFETY: socket() has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_encoded_bytes();
    assert!(p.len() < addr.sun_path.len());
    for (d, s) in addr.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    // SAFETY: addr is a valid sockaddr_un of the given size.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO takes a timeval, which `tv` is.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    fd
}

/// Send one record with `fds` attached (SCM_RIGHTS).
fn send(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut cbuf = vec![0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE/LEN are arithmetic; the buffer (128 bytes) holds a header and up to
        // 16 fds, and `fds` is at most that; CMSG_FIRSTHDR points into it.
        unsafe {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(data_len) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(c).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    // SAFETY: msg points to live buffers for the duration of the call.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    assert_eq!(
        r,
        bytes.len() as isize,
        "sendmsg: {}",
        std::io::Error::last_os_error()
    );
}

/// Receive one record (None on timeout or EOF).
fn recv(sock: &OwnedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is writable for its length.
    let r = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if r <= 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// A record as LXC 5.0.2 lays it out: header (reserved, monitor pid, init pid, three u16 sizes,
/// padding, cookie length), seccomp_notif (80 bytes), seccomp_notif_resp (24), cookie.
fn record(sizes: [u16; 3], id: u64, resp_id: u64, cookie: &[u8], cookie_len: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u64.to_ne_bytes());
    b.extend_from_slice(&1i32.to_ne_bytes());
    b.extend_from_slice(&1i32.to_ne_bytes());
    for s in sizes {
        b.extend_from_slice(&s.to_ne_bytes());
    }
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&cookie_len.to_ne_bytes());
    let mut notif = [0u8; 80];
    notif[..8].copy_from_slice(&id.to_ne_bytes());
    notif[8..12].copy_from_slice(&1u32.to_ne_bytes()); // pid 1: not a caller of ours
    notif[16..20].copy_from_slice(&133i32.to_ne_bytes()); // mknod
    notif[20..24].copy_from_slice(&0xc000_003eu32.to_ne_bytes());
    b.extend_from_slice(&notif);
    let mut resp = [0u8; 24];
    resp[..8].copy_from_slice(&resp_id.to_ne_bytes());
    b.extend_from_slice(&resp);
    b.extend_from_slice(cookie);
    b
}

const SIZES: [u16; 3] = [80, 24, 64];

/// The reply's response: (id, val, error, flags).
fn response(reply: &[u8]) -> (u64, i64, i32, u32) {
    assert_eq!(reply.len(), 32 + 80 + 24, "reply length");
    let r = &reply[112..];
    (
        u64::from_ne_bytes(r[..8].try_into().expect("8, 4 bytes")),
        i64::from_ne_bytes(r[8..16].try_into().expect("8, 4 bytes")),
        i32::from_ne_bytes(r[16..20].try_into().expect("8, 4 bytes")),
        u32::from_ne_bytes(r[20..24].try_into().expect("8, 4 bytes")),
    )
}

/// Hostile records on one connection: the agent drops each, answers -ENOSYS to the well-framed
/// ones it cannot serve, keeps serving the connection and stays up.
fn hostile_client(agent: &mut Agent) {
    let c = connect(&agent.socket);
    // Garbage, hostile sizes, lengths that do not add up, a cookie length near 2^64: no reply
    // can be framed for any of these.
    send(&c, b"garbage that is not a record", &[]);
    send(&c, &record([0xffff, 0xffff, 0xffff], 7, 7, b"", 0), &[]);
    send(&c, &record(SIZES, 7, 7, b"abc", u64::MAX - 2), &[]);
    send(&c, &record(SIZES, 7, 7, b"abc", 2), &[]);
    send(&c, &record(SIZES, 7, 8, b"", 0), &[]);
    send(&c, &vec![0xa5; 64 * 1024], &[]);
    // Well framed, but fds that are not LXC's (none; /dev/null thrice): -ENOSYS for each.
    send(&c, &record(SIZES, 41, 41, b"mknod-lxc", 9), &[]);
    let r = recv(&c).expect("a reply to a well-framed record without fds");
    assert_eq!(response(&r), (41, 0, -libc::ENOSYS, 0));
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let n = null.as_raw_fd();
    send(&c, &record(SIZES, 42, 42, b"mknod-lxc", 9), &[n, n, n]);
    let r = recv(&c).expect("a reply to a record with the wrong fds");
    assert_eq!(response(&r), (42, 0, -libc::ENOSYS, 0));
    // Four fds: more than LXC sends.
    send(
        &c,
        &record(SIZES, 43, 43, b"../etc/passwd", 13),
        &[n, n, n, n],
    );
    let r = recv(&c).expect("a reply to a record with four fds");
    assert_eq!(response(&r), (43, 0, -libc::ENOSYS, 0));
    // Many fds: all closed, -ENOSYS.
    send(&c, &record(SIZES, 44, 44, b"mknod-lxc", 9), &[n; 16]);
    let r = recv(&c).expect("a reply to a record with 16 fds");
    assert_eq!(response(&r), (44, 0, -libc::ENOSYS, 0));
    drop(c);
    assert!(
        agent.alive(),
        "the agent died of a hostile client: {}",
        agent.stop()
    );
}

#[test]
fn lxc_agent_survives_a_hostile_client() {
    let test = "lxc_agent_survives_a_hostile_client";
    if !require_root(test) {
        return;
    }
    let s = Scratch::private_with_policies("lxc-agent");
    std::fs::write(s.path("policies/mknod-lxc.toml"), MKNOD_NOTIFY).expect("policy");
    let mut agent = Agent::lxc(&s);
    // Several clients at once, one of them idle: none blocks the others.
    let fds = |a: &Agent| {
        let pid = a.pid().unwrap_or(0);
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    };
    let baseline = fds(&agent);
    let idle = connect(&agent.socket);
    send(&idle, b"half", &[]);
    hostile_client(&mut agent);
    hostile_client(&mut agent);
    drop(idle);
    assert!(agent.alive(), "{}", agent.stop());
    // Every fd that came with the records, and every connection, is closed again.
    let start = Instant::now();
    while fds(&agent) > baseline && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fds(&agent), baseline, "the agent kept fds open");
    // The socket is root-only.
    let mode = std::fs::metadata(&agent.socket).expect("socket").mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let err = agent.stop();
    assert!(err.contains("record rejected"), "{err}");
}

#[test]
fn lxc_mknod_through_the_agent() {
    let test = "lxc_mknod_through_the_agent";
    if !require_root(test)
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
    {
        return;
    }
    clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("lxc-agent");
    std::fs::write(s.path("policies/mknod-lxc.toml"), MKNOD_NOTIFY).expect("policy");
    let mut agent = Agent::lxc(&s);

    let c = LxcContainer::busybox().expect("lxc-create");
    c.unprivileged(CONTAINER_ROOT)
        .expect("unprivileged container");
    let rootfs = PathBuf::from("/var/lib/lxc").join(&c.name).join("rootfs");
    let script = "cd /tmp && mknod null c 1 3; echo mknod=$?; echo hello > null; echo write=$?; \
                  stat -c 'stat=%F %t:%T %u:%g' null; mknod blk b 8 0; echo blk=$?";
    let run = |what: &str, script: &str| {
        let o = c
            .execute_unprivileged(60, &["/bin/sh", "-c", script])
            .expect("lxc-execute")
            .output()
            .unwrap_or_else(|e| panic!("{what}: lxc-execute: {e}"));
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    // Without a notify rule the kernel refuses the device node in the user namespace.
    c.set_seccomp(LXC_PLAIN_PROFILE).expect("profile");
    let (out, err) = run(
        "plain profile",
        "cd /tmp && mknod null c 1 3; echo mknod=$?",
    );
    assert!(out.contains("mknod=1"), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(!rootfs.join("tmp/null").exists());

    // A hostile client first: the agent must still serve the container afterwards.
    hostile_client(&mut agent);

    // With the notify profile and the proxy, the agent creates it on the container's behalf.
    // The LXC profile is auditor's own export of the policy: LXC's format has no place for the
    // handler's parameters (`--lossy` drops them), the agent takes them from the policy the
    // cookie names.
    let policy = s.path("policies/mknod-lxc.toml");
    let profile = s.path("mknod.lxc");
    let o = Command::new(auditor_bin())
        .arg("merge")
        .args([&policy, &policy])
        .args(["--format", "lxc", "--lossy", "-o"])
        .arg(&profile)
        .output()
        .expect("auditor merge");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let profile = std::fs::read_to_string(&profile).expect("exported profile");
    assert!(
        profile.contains("mknod notify") && profile.contains("mknodat notify"),
        "{profile}"
    );
    c.set_seccomp(&profile).expect("profile");
    let proxy = format!("unix:{}", agent.socket.display());
    c.set_config(&[
        ("lxc.seccomp.notify.proxy", &proxy),
        ("lxc.seccomp.notify.cookie", "mknod-lxc"),
    ])
    .expect("proxy config");
    let (out, err) = run("notify profile", script);
    assert!(
        out.contains("mknod=0"),
        "stdout:\n{out}\nstderr:\n{err}\nagent:\n{}",
        agent.stop()
    );
    assert!(out.contains("write=0"), "{out}");
    assert!(out.contains("stat=character special file 1:3 0:0"), "{out}");
    assert!(out.contains("blk=1"), "{out}");
    let m = std::fs::symlink_metadata(rootfs.join("tmp/null")).expect("node created");
    assert!(m.file_type().is_char_device());
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    assert_eq!((m.uid(), m.gid()), (CONTAINER_ROOT, CONTAINER_ROOT));
    assert!(!rootfs.join("tmp/blk").exists());

    // The audit log names the container and says what was done.
    let start = Instant::now();
    let mut recs = agent.records();
    while recs.len() < 2 && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
        recs = agent.records();
    }
    assert!(
        recs.iter().any(|r| r["container"] == c.name.as_str()
            && r["syscall"]
                .as_str()
                .is_some_and(|s| s.starts_with("mknod"))
            && r["decision"] == "emulated"
            && r["result"] == "0"
            && r["decoded"]["dev"] == "c 1:3"),
        "{recs:#?}"
    );
    assert!(
        recs.iter().any(|r| r["container"] == c.name.as_str()
            && r["decision"] == "denied"
            && r["result"] == "-EPERM"
            && r["decoded"]["dev"] == "b 8:0"),
        "{recs:#?}"
    );
    // Both calls came with their own copy of the notify fd: one broker served them.
    assert!(agent.alive(), "the agent exited");
    let err = agent.stop();
    assert_eq!(
        err.matches("LXC proxy: serving a container").count(),
        1,
        "{err}"
    );
}

/// The agent in a pid namespace of its own (a container, a systemd service with
/// PrivatePIDs): the pid LXC forwards means nothing there, so the agent must act through the
/// `/proc/PID` directory LXC sends with each notification. Before, it looked the pid up in its
/// own /proc and the call failed (or reached another process).
#[test]
fn lxc_agent_in_its_own_pid_namespace_serves_the_right_process() {
    let test = "lxc_agent_in_its_own_pid_namespace_serves_the_right_process";
    if !require_root(test)
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
        || require_tool(test, "unshare").is_none()
    {
        return;
    }
    clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("lxc-agent");
    std::fs::write(s.path("policies/mknod-lxc.toml"), MKNOD_NOTIFY).expect("policy");
    let mut agent = Agent::lxc_via(
        &s,
        &["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
    );
    let c = LxcContainer::busybox().expect("lxc-create");
    c.unprivileged(CONTAINER_ROOT)
        .expect("unprivileged container");
    let rootfs = PathBuf::from("/var/lib/lxc").join(&c.name).join("rootfs");
    let policy = s.path("policies/mknod-lxc.toml");
    let profile = s.path("mknod.lxc");
    let o = Command::new(auditor_bin())
        .arg("merge")
        .args([&policy, &policy])
        .args(["--format", "lxc", "--lossy", "-o"])
        .arg(&profile)
        .output()
        .expect("auditor merge");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    c.set_seccomp(&std::fs::read_to_string(&profile).expect("profile"))
        .expect("profile");
    let proxy = format!("unix:{}", agent.socket.display());
    c.set_config(&[
        ("lxc.seccomp.notify.proxy", &proxy),
        ("lxc.seccomp.notify.cookie", "mknod-lxc"),
    ])
    .expect("proxy config");
    let o = c
        .execute_unprivileged(
            60,
            &[
                "/bin/sh",
                "-c",
                "cd /tmp && mknod null c 1 3; echo mknod=$?",
            ],
        )
        .expect("lxc-execute")
        .output()
        .expect("lxc-execute");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        out.contains("mknod=0"),
        "stdout:\n{out}\nstderr:\n{err}\nagent:\n{}",
        agent.stop()
    );
    let m = std::fs::symlink_metadata(rootfs.join("tmp/null")).expect("node created");
    assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (1, 3));
    assert_eq!((m.uid(), m.gid()), (CONTAINER_ROOT, CONTAINER_ROOT));
    // Named after the caller's own cgroup, read through LXC's directory.
    let start = Instant::now();
    let mut recs = agent.records();
    while recs.is_empty() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
        recs = agent.records();
    }
    assert!(
        recs.iter()
            .any(|r| r["container"] == c.name.as_str() && r["decision"] == "emulated"),
        "{recs:#?}"
    );
}

/// LXC reconnects to the proxy when a send fails: a container started under one agent is served
/// by the next one after a restart (its calls in between fail with ENOSYS).
#[test]
fn lxc_container_is_served_again_after_an_agent_restart() {
    let test = "lxc_container_is_served_again_after_an_agent_restart";
    if !require_root(test)
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
    {
        return;
    }
    clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("lxc-agent");
    std::fs::write(s.path("policies/mknod-lxc.toml"), MKNOD_NOTIFY).expect("policy");
    let mut first = Agent::lxc(&s);

    let c = LxcContainer::busybox().expect("lxc-create");
    c.unprivileged(CONTAINER_ROOT)
        .expect("unprivileged container");
    let rootfs = PathBuf::from("/var/lib/lxc").join(&c.name).join("rootfs");
    c.set_seccomp("2\ndenylist\n[all]\nmknod notify\nmknodat notify\n")
        .expect("profile");
    let proxy = format!("unix:{}", first.socket.display());
    c.set_config(&[
        ("lxc.seccomp.notify.proxy", &proxy),
        ("lxc.seccomp.notify.cookie", "mknod-lxc"),
    ])
    .expect("proxy config");
    let script = "cd /tmp && mknod a c 1 3; echo a=$?; touch a-answered; \
                  while [ ! -e /tmp/go ]; do sleep 0.1; done; mknod b c 1 3; echo b=$?";
    let child = c
        .execute_unprivileged(60, &["/bin/sh", "-c", script])
        .expect("lxc-execute")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lxc-execute");
    // Killed on drop if an assertion fails first.
    struct Run(Option<Child>);
    impl Drop for Run {
        fn drop(&mut self) {
            if let Some(c) = &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut run = Run(Some(child));

    let start = Instant::now();
    // Not /tmp/a itself: the node exists before the agent's reply has reached LXC.
    while !rootfs.join("tmp/a-answered").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "mknod a never returned: {}",
            first.stop()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The agent dies without cleaning up; another takes its place on the same path.
    first.crash();
    let _ = std::fs::remove_file(&first.socket);
    let mut second = Agent::lxc(&s);
    std::fs::write(rootfs.join("tmp/go"), "").expect("go");

    let o = run
        .0
        .take()
        .expect("child")
        .wait_with_output()
        .expect("lxc-execute");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(out.contains("a=0"), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("b=0"),
        "stdout:\n{out}\nstderr:\n{err}\nagent:\n{}",
        second.stop()
    );
    let m = std::fs::symlink_metadata(rootfs.join("tmp/b")).expect("node b created");
    assert!(m.file_type().is_char_device());
    let log = second.stop();
    assert!(log.contains("LXC proxy: serving a container"), "{log}");
}

/// Two containers at once on one agent, each with its own policy (cookie): each gets its own
/// policy's answers, and each record names the container it came from.
#[test]
fn lxc_two_containers_two_policies_no_cross_talk() {
    let test = "lxc_two_containers_two_policies_no_cross_talk";
    if !require_root(test)
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
    {
        return;
    }
    clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("lxc-agent");
    std::fs::write(s.path("policies/null-only.toml"), MKNOD_NOTIFY).expect("policy");
    std::fs::write(
        s.path("policies/zero-only.toml"),
        MKNOD_NOTIFY
            .replace("c 1:3", "c 1:5")
            .replace("/dev/null only", "/dev/zero only"),
    )
    .expect("policy");
    let mut agent = Agent::lxc(&s);
    let proxy = format!("unix:{}", agent.socket.display());
    let script = "cd /tmp && for i in 1 2 3; do \
                  mknod null$i c 1 3; echo null$i=$?; mknod zero$i c 1 5; echo zero$i=$?; done";
    let containers: Vec<(LxcContainer, &str)> = ["null-only", "zero-only"]
        .into_iter()
        .map(|cookie| {
            let c = LxcContainer::busybox().expect("lxc-create");
            c.unprivileged(CONTAINER_ROOT)
                .expect("unprivileged container");
            c.set_seccomp("2\ndenylist\n[all]\nmknod notify\nmknodat notify\n")
                .expect("profile");
            c.set_config(&[
                ("lxc.seccomp.notify.proxy", &proxy),
                ("lxc.seccomp.notify.cookie", cookie),
            ])
            .expect("proxy config");
            (c, cookie)
        })
        .collect();
    let runs: Vec<Child> = containers
        .iter()
        .map(|(c, _)| {
            c.execute_unprivileged(60, &["/bin/sh", "-c", script])
                .expect("lxc-execute")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("lxc-execute")
        })
        .collect();
    let outs: Vec<String> = runs
        .into_iter()
        .map(|r| {
            let o = r.wait_with_output().expect("lxc-execute");
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect();
    for ((c, cookie), out) in containers.iter().zip(&outs) {
        let (null, zero) = if *cookie == "null-only" {
            ("0", "1")
        } else {
            ("1", "0")
        };
        for i in 1..=3 {
            assert!(
                out.contains(&format!("null{i}={null}")),
                "{}: {out}",
                c.name
            );
            assert!(
                out.contains(&format!("zero{i}={zero}")),
                "{}: {out}",
                c.name
            );
        }
    }
    let start = Instant::now();
    let mut recs = agent.records();
    while recs.len() < 12 && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
        recs = agent.records();
    }
    assert_eq!(recs.len(), 12, "{recs:#?}");
    for (c, cookie) in &containers {
        let allowed = if *cookie == "null-only" {
            "c 1:3"
        } else {
            "c 1:5"
        };
        let mine: Vec<_> = recs
            .iter()
            .filter(|r| r["container"] == c.name.as_str())
            .collect();
        assert_eq!(mine.len(), 6, "{}: {recs:#?}", c.name);
        for r in mine {
            let emulated = r["decoded"]["dev"] == allowed;
            assert_eq!(
                r["decision"],
                if emulated { "emulated" } else { "denied" },
                "{r:#}"
            );
        }
    }
    let err = agent.stop();
    assert_eq!(
        err.matches("LXC proxy: serving a container").count(),
        2,
        "{err}"
    );
}

/// An interactive policy (`default_action = "notify"`) served to an LXC container: the call no
/// rule decides waits as a prompt on the agent's live session, naming the container, with a
/// deadline under LXC's own 30 s (the agent caps `--prompt-timeout 120s` at 25 s); the answer
/// sent on the session reaches the call (LXC's proxy protocol answers it), and the audit log
/// says who answered.
#[test]
fn lxc_interactive_policy_prompts_within_lxcs_deadline_and_the_answer_reaches_the_call() {
    let test =
        "lxc_interactive_policy_prompts_within_lxcs_deadline_and_the_answer_reaches_the_call";
    if !require_root(test)
        || require_tool(test, "lxc-create").is_none()
        || require_tool(test, "lxc-execute").is_none()
    {
        return;
    }
    use std::io::{BufRead as _, Write as _};
    clear_stale(Runtime::Lxc);
    let s = Scratch::private_with_policies("lxc-agent-ask");
    std::fs::write(
        s.path("policies/ask.toml"),
        "# ask: a person decides\nversion = 1\ndefault_action = \"notify\"\n",
    )
    .expect("policy");
    let agent = Agent::start(
        &s,
        integration::agent::Protocol::Lxc,
        &["--prompt-timeout", "120s"],
        &[],
    );
    // The agent's live session (root-only, in /run/auditor unless AUDITOR_RUN_DIR says else).
    let run_dir = std::env::var_os("AUDITOR_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/auditor"));
    let session = run_dir.join(format!("agent-{}.sock", agent.pid().expect("pid")));
    let t0 = Instant::now();
    while !session.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no session socket {}",
            session.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stream = std::os::unix::net::UnixStream::connect(&session).expect("session");
    let mut writer = stream.try_clone().expect("clone");
    // The client: the first prompt is answered allow-once; what it said is kept.
    let client = std::thread::spawn(move || -> Option<serde_json::Value> {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .ok()?;
        for line in std::io::BufReader::new(stream).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.ok()?).ok()?;
            if v["type"] == "prompt" {
                let answer =
                    serde_json::json!({"type": "answer", "id": v["id"], "choice": "allow-once"});
                writeln!(writer, "{answer}").ok()?;
                return Some(v);
            }
        }
        None
    });

    let c = LxcContainer::busybox().expect("lxc-create");
    c.unprivileged(CONTAINER_ROOT)
        .expect("unprivileged container");
    c.set_seccomp("2\ndenylist\n[all]\nsync notify\n")
        .expect("profile");
    let proxy = format!("unix:{}", agent.socket.display());
    c.set_config(&[
        ("lxc.seccomp.notify.proxy", &proxy),
        ("lxc.seccomp.notify.cookie", "ask"),
    ])
    .expect("proxy config");
    let o = c
        .execute_unprivileged(60, &["/bin/sh", "-c", "sync; echo sync=$?"])
        .expect("lxc-execute")
        .output()
        .expect("lxc-execute");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    let prompt = client.join().expect("client").unwrap_or_else(|| {
        panic!(
            "no prompt on the session; stdout:\n{out}\nstderr:\n{err}\nagent:\n{}",
            agent.log_text()
        )
    });
    assert!(out.contains("sync=0"), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(prompt["container"], c.name.as_str(), "{prompt}");
    assert_eq!(prompt["policy"], "ask", "{prompt}");
    assert_eq!(prompt["syscall"], "sync", "{prompt}");
    let at = |k: &str| {
        humantime::parse_rfc3339_weak(prompt[k].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{k} of {prompt}: {e}"))
    };
    let wait = at("deadline")
        .duration_since(at("time"))
        .unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(26) && wait >= Duration::from_secs(20),
        "LXC's prompts time out before LXC does (30 s), not after the 120 s asked for: {wait:?} ({prompt})"
    );
    let t0 = Instant::now();
    let rec = loop {
        let found = agent.records().into_iter().find(|r| {
            r["container"] == c.name.as_str()
                && r["syscall"] == "sync"
                && r["decision"] == "allowed"
                && r["decoded"]["prompt"] == "allow-once"
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no allow-once record: {:#?}",
            agent.records()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        rec["decoded"]["decided_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("uid 0")),
        "{rec}"
    );
}
