//! A private tmux server for the real-terminal tests (tests/tui.rs, tests/interactive.rs).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::unique_name;

/// A private tmux server with one session; killed on drop.
pub struct Tmux {
    socket: String,
    name: String,
}

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        let t = Tmux {
            socket: unique_name("auditor-tui"),
            name: "ui".into(),
        };
        let ok = t
            .cmd()
            .args([
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
                "-s",
                &t.name,
                command,
            ])
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        // Keep the pane after the UI exits, to look at the restored terminal.
        let _ = t
            .cmd()
            .args(["set-option", "-t", &t.name, "remain-on-exit", "on"])
            .status();
        t
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    /// Make the window (and its pane) `width` × `height`.
    pub fn resize(&self, width: u16, height: u16) {
        let ok = self
            .cmd()
            .args(["resize-window", "-t", &self.name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .status()
            .expect("tmux resize-window");
        assert!(ok.success());
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(ok.success());
    }

    pub fn screen(&self) -> String {
        let o = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn pane_dead(&self) -> bool {
        let o = self
            .cmd()
            .args(["display-message", "-p", "-t", &self.name, "#{pane_dead}"])
            .output();
        o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
    }

    /// Wait until the screen satisfies `pred` and is settled (the same in two captures 50 ms
    /// apart, so a frame caught while the terminal was still drawing it is never returned);
    /// a screen that keeps changing (live counters) is returned after it has matched five
    /// captures in a row. Panics with the last screen after `within`.
    pub fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        let mut last: Option<String> = None;
        let mut matched = 0;
        loop {
            let s = self.screen();
            if pred(&s) {
                matched += 1;
                if last.as_deref() == Some(s.as_str()) || matched >= 5 {
                    return s;
                }
                last = Some(s);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            matched = 0;
            last = None;
            if t.elapsed() > within {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
