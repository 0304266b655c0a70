//! `auditor agent`: the seccomp agent that container runtimes hand their notify fds to — runc
//! and crun through the OCI `listenerPath` protocol, LXC through `lxc.seccomp.notify.proxy` —
//! serving each container's notifications with the broker and handlers of `auditor enforce`.

pub mod policies;
pub mod lxc;
pub mod oci;

use std::sync::Arc;

use crate::broker::audit::AuditSender;
use crate::session::SessionSender;

/// What every connection of the agent shares.
pub struct Context {
    pub policies: policies::PolicyDir,
    /// The audit log, one record per decision, each naming its container.
    pub audit: Option<AuditSender>,
    /// The live session (`auditor tui`), if any.
    pub live: Option<SessionSender>,
    /// Whether a container may name its policy with the `org.auditor.policy` annotation
    /// (`--policy-from-annotation`). Off by default: engines copy pod and user annotations onto
    /// containers (CRI-O, podman), so the annotation is the workload author's choice, not the
    /// host's; `listenerMetadata` comes from the seccomp profile the host configured.
    pub policy_from_annotation: bool,
}

pub type Shared = Arc<Context>;
