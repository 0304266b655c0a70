//! `auditor hook`: an OCI hook (`createRuntime` or `prestart`) that registers the container
//! being created with `auditor daemon`, and exits 0 only once the daemon tracks it.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::daemon::{self, protocol};

/// `auditor hook [--socket PATH] [--timeout DUR] [--runtime NAME]` (OCI state on stdin)
#[derive(Debug, clap::Args)]
pub struct HookArgs {
    /// The daemon's socket [config: hook.socket; default: /run/auditor/daemon.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Give up (and fail the container's creation) if the daemon has not answered by then
    /// [config: hook.timeout; default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The runtime running the hook, recorded in the observation (runc, crun); by default
    /// the hook's parent when that is a known OCI runtime (hooks are the runtime's children;
    /// podman's and CRI-O's hooks.d files cannot say which runtime a container gets).
    #[arg(long)]
    pub runtime: Option<String>,
}

/// OCI runtimes the hook recognises as its parent.
const RUNTIMES: &[&str] = &["runc", "crun", "youki", "runsc", "krun"];

/// The OCI runtime that runs this hook (its parent's executable, else its command name: the
/// exe link of a runtime in a mount namespace of its own may not resolve), if it is one of
/// [`RUNTIMES`].
fn parent_runtime() -> Option<String> {
    let parent = format!("/proc/{}", std::os::unix::process::parent_id());
    let exe = std::fs::read_link(format!("{parent}/exe")).ok();
    let by_exe = exe.as_ref().and_then(|e| runtime_of_exe(e.to_str()?));
    let by_comm = || {
        let comm = std::fs::read_to_string(format!("{parent}/comm")).ok()?;
        RUNTIMES.iter().copied().find(|r| *r == comm.trim_end())
    };
    by_exe.or_else(by_comm).map(str::to_owned)
}

/// The runtime an executable's `/proc/PID/exe` link names. crun (and runc's init) run from a
/// sealed memfd copy of themselves: `/memfd:crun (deleted)`.
fn runtime_of_exe(exe: &str) -> Option<&'static str> {
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let name = exe.rsplit('/').next()?;
    let name = name.strip_prefix("memfd:").unwrap_or(name);
    RUNTIMES.iter().copied().find(|r| *r == name)
}

pub fn run(args: &HookArgs, config: &crate::config::Loaded) -> anyhow::Result<ExitCode> {
    let (socket, timeout) = config.hook(args.socket.clone(), args.timeout)?;
    // The runtime writes the state and closes stdin; anything else (a terminal, a writer that
    // never closes) must not hang the container's creation: the read shares the timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = Vec::new();
        let r = std::io::stdin()
            .take(protocol::MAX_STATE as u64 + 1)
            .read_to_end(&mut input)
            .map(|_| input);
        let _ = tx.send(r);
    });
    let input = match rx.recv_timeout(timeout) {
        Ok(r) => r.context("reading the OCI state on stdin")?,
        Err(_) => bail!(
            "no OCI state on stdin within {} (auditor hook is run by the container runtime, which writes it)",
            humantime::format_duration(timeout)
        ),
    };
    let state = protocol::parse_state(&input)
        .context("auditor hook expects the runtime's OCI state on stdin")?;
    let pid = state.pid.unwrap_or(0);
    let req = protocol::Request::Register(protocol::Register {
        id: state.id.clone(),
        pid,
        bundle: (!state.bundle.is_empty()).then(|| state.bundle.clone()),
        runtime: args.runtime.clone().or_else(parent_runtime),
        annotations: state.annotations.clone(),
    });
    let reply = daemon::request(&socket, &req, timeout).map_err(anyhow::Error::msg)?;
    if !reply.ok {
        bail!(
            "the auditor daemon refused container {}: {}",
            state.id,
            reply.error.as_deref().unwrap_or("no reason given")
        );
    }
    tracing::info!(id = %state.id, pid, output = ?reply.output, "container registered");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::runtime_of_exe;

    #[test]
    fn runtimes_are_named_by_their_executable_or_its_memfd_copy() {
        assert_eq!(runtime_of_exe("/usr/sbin/runc"), Some("runc"));
        assert_eq!(runtime_of_exe("/memfd:crun (deleted)"), Some("crun"));
        assert_eq!(runtime_of_exe("/usr/bin/crun (deleted)"), Some("crun"));
        assert_eq!(runtime_of_exe("/bin/sh"), None);
        assert_eq!(runtime_of_exe("/memfd:runc-wrapper (deleted)"), None);
    }
}
