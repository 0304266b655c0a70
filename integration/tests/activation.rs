//! `auditor agent` under socket activation: a service manager (played here by this test, as
//! systemd would: `LISTEN_PID`, `LISTEN_FDS`, fds from 3) passes a listening stream socket
//! (runc/crun) and a SOCK_SEQPACKET one (LXC); the agent serves both without binding anything,
//! answers garbage on each with a logged rejection, stops on SIGTERM with status 0 and leaves
//! the sockets, which are the manager's, in place. Needs root.

use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{auditor_bin, require_root, Scratch};
use nix::sys::socket::{self as sock, SockFlag, SockType};

fn seqpacket_listener(path: &std::path::Path) -> OwnedFd {
    let fd = sock::socket(
        sock::AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    sock::bind(fd.as_raw_fd(), &sock::UnixAddr::new(path).expect("addr")).expect("bind");
    sock::listen(&fd, sock::Backlog::new(16).expect("backlog")).expect("listen");
    fd
}

#[test]
fn the_agent_serves_sockets_passed_by_the_service_manager() {
    let test = "the_agent_serves_sockets_passed_by_the_service_manager";
    if !require_root(test) {
        return;
    }
    let s = Scratch::private_with_policies("auditor-activation");
    let oci_path = s.path("oci.sock");
    let lxc_path = s.path("lxc.sock");
    let oci: OwnedFd = std::os::unix::net::UnixListener::bind(&oci_path)
        .expect("bind")
        .into();
    let lxc = seqpacket_listener(&lxc_path);
    let log = s.path("agent.log");
    let (oci_raw, lxc_raw) = (oci.as_raw_fd(), lxc.as_raw_fd());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=2 exec \"$0\" agent --policy-dir \"$1\"")
        .arg(auditor_bin())
        .arg(s.path("policies"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    // SAFETY: only dup2 between fork and exec (async-signal-safe); the fds are ours and open.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (either may already be 3 or 4), then into place; dup2 leaves
            // the copies without FD_CLOEXEC, so they survive the exec.
            let high = [
                libc::fcntl(oci_raw, libc::F_DUPFD, 100),
                libc::fcntl(lxc_raw, libc::F_DUPFD, 100),
            ];
            for (from, to) in [(high[0], 3), (high[1], 4)] {
                if from < 0 || libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut agent = cmd.spawn().expect("start the agent");
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let agent = Stop(&mut agent);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |what: &str| {
        let t = Instant::now();
        while !text().contains(what) {
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "no {what:?} in the agent's log:\n{}",
                text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("OCI agent: listening on the socket the service manager passed");
    wait_for("LXC's seccomp notify proxy on the socket the service manager passed");

    // Garbage on each: rejected and logged, the agent goes on.
    let mut c = std::os::unix::net::UnixStream::connect(&oci_path).expect("connect (OCI)");
    c.write_all(b"this is not JSON\n").expect("write");
    drop(c);
    wait_for("OCI agent: rejected a connection");
    let c = sock::socket(
        sock::AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    sock::connect(
        c.as_raw_fd(),
        &sock::UnixAddr::new(&lxc_path).expect("addr"),
    )
    .expect("connect (LXC)");
    sock::send(c.as_raw_fd(), b"garbage", sock::MsgFlags::empty()).expect("send");
    wait_for("LXC proxy: record rejected");
    drop(c);

    // SIGTERM: a clean exit, and the manager's sockets stay.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(st) = agent.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the agent ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {}", text());
    assert!(
        oci_path.exists() && lxc_path.exists(),
        "the agent removed sockets it did not bind"
    );
}
