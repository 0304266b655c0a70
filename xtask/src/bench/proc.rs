//! The processes the tracing benchmark starts (loop, learner, bpftrace): each stopped and reaped
//! on drop, with its rusage and the tail of its stderr.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{ATTACH_TIMEOUT, STOP_TIMEOUT};

/// A process this benchmark started; stopped (SIGTERM, then SIGKILL) and reaped on drop, so
/// nothing is left attached or running when the benchmark fails half-way.
pub(super) struct Proc {
    pub(super) name: &'static str,
    pub(super) child: Option<Child>,
    pub(super) stderr: PathBuf,
}

/// How a [`Proc`] ended.
pub(super) struct Finished {
    pub(super) name: &'static str,
    pub(super) status: ExitStatus,
    pub(super) rusage: libc::rusage,
    pub(super) stdout: String,
    pub(super) stderr_tail: String,
}

impl Finished {
    pub(super) fn success(self) -> anyhow::Result<Finished> {
        if !self.status.success() {
            bail!(
                "{} failed ({}): {}",
                self.name,
                self.status,
                self.stderr_tail
            );
        }
        Ok(self)
    }
}

impl Proc {
    pub(super) fn spawn(
        name: &'static str,
        mut cmd: Command,
        stderr: PathBuf,
    ) -> anyhow::Result<Proc> {
        let err =
            File::create(&stderr).with_context(|| format!("cannot create {}", stderr.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(Proc {
            name,
            child: Some(child),
            stderr,
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(super) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        if tail.is_empty() {
            "no error output".into()
        } else {
            format!("stderr:\n{tail}")
        }
    }

    /// Waits until the process has attached programs to both `sys_enter` and `sys_exit`: its
    /// raw-tracepoint links are visible in /proc/PID/fdinfo. This does not depend on what the
    /// process prints, and holds for `bench-floor` and `learn` alike.
    pub(super) fn wait_attached(&mut self) -> anyhow::Result<()> {
        let pid = self.pid();
        let t0 = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child
                    .try_wait()
                    .with_context(|| format!("cannot wait for {}", self.name))?
                {
                    bail!(
                        "{} exited ({status}) before attaching: {}",
                        self.name,
                        self.stderr_tail()
                    );
                }
            }
            let tps = raw_tracepoints(pid);
            if tps.iter().any(|t| t == "sys_enter") && tps.iter().any(|t| t == "sys_exit") {
                return Ok(());
            }
            if t0.elapsed() > ATTACH_TIMEOUT {
                bail!(
                    "{} did not attach to sys_enter and sys_exit within {ATTACH_TIMEOUT:?}: {}",
                    self.name,
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself; kills it after `timeout`. Fails unless it
    /// exited successfully.
    pub(super) fn finish(mut self, timeout: Duration) -> anyhow::Result<Finished> {
        match self.wait(timeout)? {
            Some(f) => f.success(),
            None => bail!(
                "{} did not finish within {timeout:?}: {}",
                self.name,
                self.stderr_tail()
            ),
        }
    }

    /// Sends `sig` and waits for the process to exit (killing it if it does not).
    pub(super) fn stop(mut self, sig: libc::c_int) -> anyhow::Result<Finished> {
        self.signal(sig);
        match self.wait(STOP_TIMEOUT)? {
            Some(f) => Ok(f),
            None => bail!(
                "{} did not stop within {STOP_TIMEOUT:?} of signal {sig}: {}",
                self.name,
                self.stderr_tail()
            ),
        }
    }

    pub(super) fn signal(&self, sig: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.pid()) else {
            return;
        };
        if pid > 0 && self.child.is_some() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child,
            // so it cannot have been recycled for another process.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Reaps the process with wait4 (for its rusage), polling until `timeout`. `None` on
    /// timeout, after which the process is still ours (Drop kills it).
    pub(super) fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<Finished>> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already reaped", self.name)
        };
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        let t0 = Instant::now();
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: an all-zero rusage is a valid value of this plain C struct.
            let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: status and rusage are valid, writable and live for the call.
            let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut rusage) };
            if r == pid {
                let mut stdout = String::new();
                if let Some(mut out) = child.stdout.take() {
                    // The process has exited; its pipe holds at most a few lines.
                    out.read_to_string(&mut stdout)
                        .with_context(|| format!("cannot read the output of {}", self.name))?;
                }
                // Reaped with wait4: std must not wait for it again.
                self.child = None;
                return Ok(Some(Finished {
                    name: self.name,
                    status: ExitStatus::from_raw(status),
                    rusage,
                    stdout,
                    stderr_tail: self.stderr_tail(),
                }));
            }
            if r < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err).with_context(|| format!("wait4 for {}", self.name));
                }
            }
            if t0.elapsed() > timeout {
                return Ok(None);
            }
            // Polling costs one syscall every few milliseconds, negligible beside the loop.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGTERM);
        if matches!(self.wait(Duration::from_secs(3)), Ok(Some(_))) {
            return;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The raw tracepoints a process has attached programs to (its bpf links' `tp_name`).
pub(super) fn raw_tracepoints(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf_link")
        })
        .filter_map(|fd| {
            std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()
        })
        .filter(|info| {
            info.lines()
                .any(|l| l.split_whitespace().eq(["link_type:", "raw_tracepoint"]))
        })
        .filter_map(|info| {
            info.lines()
                .find_map(|l| Some(l.strip_prefix("tp_name:")?.trim().to_string()))
        })
        .collect()
}
