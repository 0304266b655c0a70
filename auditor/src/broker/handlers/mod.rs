//! The emulation handlers: each serves the calls of one notify handler of the policy
//! (`policy::handlers` names them and checks their parameters) on the caller's behalf, and
//! answers with an [`Outcome`].
//!
//! Adding a handler: its file here, its module line below, and its line in [`run`]'s table
//! (beside its entry in `policy::handlers`' registry).

pub mod bpf;
pub mod mknod;
pub mod module;
pub mod mount;
pub mod sched;
pub mod setxattr;
pub mod sysinfo;

use crate::broker::Outcome;
use crate::policy::handlers::HandlerConfig;
use crate::seccomp::notify::{NotifyFd, SeccompNotif};

/// One notification for a handler: the listener to check and answer it on, the call, and its
/// syscall's name (`""` if the number has none).
pub struct Call<'a> {
    pub fd: &'a NotifyFd,
    pub n: &'a SeccompNotif,
    pub syscall: &'a str,
    /// The policy the call was decided by (what a process auditor starts for the caller —
    /// a FUSE server — runs under).
    pub policy: &'a crate::policy::model::Policy,
}

/// Run the handler `config` names. `None`: the caller is gone, nothing to answer.
pub fn run(config: &HandlerConfig, c: &Call<'_>) -> Option<Outcome> {
    match config {
        HandlerConfig::Mknod { devices } => mknod::handle(c.fd, c.n, c.syscall, devices),
        HandlerConfig::Mount {
            fstypes,
            sources,
            shift,
            allow_btrfs,
            fuse,
        } => mount::handle(
            c.fd,
            c.n,
            &mount::Allowed {
                fstypes,
                sources,
                shift: *shift,
                allow_btrfs: *allow_btrfs,
                fuse,
                policy: c.policy,
            },
        ),
        HandlerConfig::Setxattr { prefixes } => setxattr::handle(c.fd, c.n, c.syscall, prefixes),
        HandlerConfig::Sysinfo => sysinfo::handle(c.fd, c.n),
        HandlerConfig::Sched(limits) => sched::handle(c.fd, c.n, c.syscall, limits),
        HandlerConfig::BpfDevices => bpf::handle(c.fd, c.n),
        HandlerConfig::FinitModule { modules } => module::handle(c.fd, c.n, modules),
    }
}
