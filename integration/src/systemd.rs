//! A stand-in for systemd's notify socket (`NOTIFY_SOCKET`), as `sd_notify(3)` speaks to it:
//! datagrams of `KEY=VALUE` lines, with fds attached for `FDSTORE=1`. It keeps stored fds
//! under their `FDNAME` (dropping them on `FDSTOREREMOVE=1`) and notes every message
//! (`READY=1`, `MAINPID=`): what a test needs to play systemd's part in a crash-restart or a
//! reload (systemd does not run on these machines). Stopped on drop.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

#[derive(Default)]
pub struct State {
    /// The fd store, in the order stored.
    pub store: Vec<(String, OwnedFd)>,
    /// Every message received, whole.
    pub messages: Vec<String>,
}

pub struct FakeSystemd {
    pub path: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeSystemd {
    /// Listen on `dir/notify.sock`.
    pub fn start(dir: &Path) -> FakeSystemd {
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !sp.load(Ordering::Relaxed) {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut cmsg = nix::cmsg_space!([RawFd; 16]);
                let Ok(msg) = recvmsg::<()>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) else {
                    continue;
                };
                let mut fds = Vec::new();
                for c in msg.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: installed in this process for this message; owned once.
                        fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
                    }
                }
                let n = msg.bytes;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                let name = lines
                    .iter()
                    .find_map(|l| l.strip_prefix("FDNAME="))
                    .unwrap_or("stored")
                    .to_owned();
                let mut s = st.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if lines.contains(&"FDSTOREREMOVE=1") {
                    s.store.retain(|(n, _)| *n != name);
                }
                if lines.contains(&"FDSTORE=1") {
                    for fd in fds {
                        s.store.push((name.clone(), fd));
                    }
                }
                s.messages.push(text);
            }
        });
        FakeSystemd {
            path,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The variable that points a service at it.
    pub fn env(&self) -> (&'static str, String) {
        ("NOTIFY_SOCKET", self.path.display().to_string())
    }

    /// The names in the store.
    pub fn stored(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .store
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// What systemd passes a restarted service: copies of the stored fds, the store kept, and
    /// the `LISTEN_FDS`/`LISTEN_FDNAMES` that go with them.
    pub fn passed(&self) -> (Vec<OwnedFd>, Vec<(&'static str, String)>) {
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fds: Vec<OwnedFd> = s
            .store
            .iter()
            .map(|(_, f)| f.try_clone().expect("dup a stored fd"))
            .collect();
        let names: Vec<&str> = s.store.iter().map(|(n, _)| n.as_str()).collect();
        let env = vec![
            ("LISTEN_FDS", fds.len().to_string()),
            ("LISTEN_FDNAMES", names.join(":")),
        ];
        (fds, env)
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .messages
            .clone()
    }

    /// Wait (up to `timeout`) until `done` holds for the messages.
    pub fn wait_messages(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let t0 = Instant::now();
        loop {
            if done(&self.messages()) {
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
