//! The exec watch (see `auditor_common::exec_gen`): two programs on `sched_process_exec` and
//! `sched_process_exit` bump a generation per thread-id slot, which the broker reads from a
//! shared mapping to reuse an executable path it read before, without a syscall, exactly as
//! long as no thread of that slot has exec'd or exited since.

use std::sync::OnceLock;

use auditor_common::{exec_gen, names};
use aya::{programs::links::FdLink, Ebpf};

use super::{attach, loader_without_kernel_btf, tasks::ArrayView, BpfError};

/// The exec watch's object, built by build.rs beside the observer's.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/exec-watch"));

/// The loaded, attached exec watch: detached when dropped.
pub struct ExecWatch {
    /// `SLOTS` × `ncpus` counters.
    generations: ArrayView,
    ncpus: usize,
    _links: Vec<FdLink>,
    _ebpf: Ebpf,
}

impl ExecWatch {
    /// Load and attach the programs and map their array. Only in the host's pid namespace:
    /// the programs count by the kernel's (host) thread ids, and a broker in another namespace
    /// sees its callers under other numbers, so it would read another slot's generation.
    pub fn load() -> Result<ExecWatch, BpfError> {
        if OBJECT.is_empty() {
            return Err(BpfError::NoObject);
        }
        if !in_host_pid_namespace() {
            return Err(BpfError::ForeignPidNamespace);
        }
        // Its one-writer-per-counter argument needs preemption disabled in the programs: a
        // lost increment could let a stale executable pass for fresh.
        if super::preempt_rt() {
            return Err(BpfError::PreemptRt);
        }
        let ncpus = aya::util::nr_cpus().map_err(|(_, source)| BpfError::Proc {
            what: "possible CPUs",
            source,
        })?;
        let n = u32::try_from(ncpus).unwrap_or(u32::MAX);
        let mut ebpf = loader_without_kernel_btf()
            .btf(None)
            .override_global(names::GLOBAL_NCPUS, &n, true)
            .map_max_entries(names::MAP_EXEC_GEN, exec_gen::SLOTS.saturating_mul(n))
            .load(OBJECT)
            .map_err(|source| BpfError::Load { source })?;
        let generations = ArrayView::of(
            ebpf.map(names::MAP_EXEC_GEN)
                .ok_or(BpfError::MissingMap(names::MAP_EXEC_GEN))?,
            names::MAP_EXEC_GEN,
        )?;
        let links = attach(&mut ebpf, &names::EXEC_WATCH_PROGRAMS)?;
        Ok(ExecWatch {
            generations,
            ncpus,
            _links: links,
            _ebpf: ebpf,
        })
    }

    /// The process's exec watch, loaded on first use; `None` where it cannot be (no BPF, no
    /// privilege), said once at debug level.
    pub fn shared() -> Option<&'static ExecWatch> {
        static WATCH: OnceLock<Option<ExecWatch>> = OnceLock::new();
        WATCH
            .get_or_init(|| {
                ExecWatch::load()
                    .map_err(|e| tracing::debug!(error = %e, "no exec watch: executables are read on every call"))
                    .ok()
            })
            .as_ref()
    }

    /// The generation of thread `tid`'s slot: it changes whenever a thread of the slot execs
    /// or exits. Read from memory, no syscall. A thread's notified call that follows its exec
    /// sees the change (the exec's update precedes the notification's wake-up).
    pub fn generation(&self, tid: u32) -> u64 {
        let first = exec_gen::slot(tid) as usize * self.ncpus;
        (first..first + self.ncpus)
            .map(|i| self.generations.get(i).unwrap_or_default())
            .fold(0u64, u64::wrapping_add)
    }
}

/// The inode of the host's (initial) pid namespace, fixed by the kernel (`PROC_PID_INIT_INO`).
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Whether this process sees thread ids as the kernel's programs do.
fn in_host_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == PROC_PID_INIT_INO)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test runs in the host's pid namespace; a child in a new one is not.
    #[test]
    fn the_host_pid_namespace_is_recognised() {
        assert!(in_host_pid_namespace() || !crate::testing::ci());
        if !crate::testing::privileged(
            "the_host_pid_namespace_is_recognised",
            crate::testing::root(),
            "root (to unshare a pid namespace)",
        ) {
            return;
        }
        let out = std::process::Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "readlink",
                "/proc/self/ns/pid",
            ])
            .output()
            .expect("run unshare");
        let inner = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "unshare: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(inner.trim(), format!("pid:[{PROC_PID_INIT_INO}]"));
        assert_eq!(
            std::fs::read_link("/proc/self/ns/pid")
                .unwrap()
                .to_string_lossy(),
            format!("pid:[{PROC_PID_INIT_INO}]")
        );
    }

    /// A child's slot changes when it execs and when it exits, and not otherwise.
    #[test]
    fn generations_change_on_exec_and_exit() {
        let ready = crate::testing::root() && !OBJECT.is_empty();
        if !crate::testing::privileged(
            "generations_change_on_exec_and_exit",
            ready,
            "root and the eBPF object",
        ) {
            return;
        }
        let w = ExecWatch::load().expect("load the exec watch");
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read x; exec /bin/sleep 5"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let tid = child.id();
        let g0 = w.generation(tid);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Other threads of the host may share the slot: only "changed" is asserted of them.
        let settled = w.generation(tid);
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !std::fs::read_link(format!("/proc/{tid}/exe")).is_ok_and(|p| p.ends_with("sleep")) {
            assert!(std::time::Instant::now() < deadline, "exec not seen");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The link changes inside the exec, before `sched_process_exec` fires (the bump): a
        // reader in another process can see the new link first, so it waits for the bump.
        // (The broker reads a caller's generation only after the caller's next syscall.)
        let after_exec = loop {
            let g = w.generation(tid);
            if g > settled.max(g0) {
                break g;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "exec not counted: {g0} {settled} {g}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(w.generation(tid) > after_exec, "exit bumps the slot");
    }
}
