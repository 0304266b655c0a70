//! LXC's seccomp notify proxy protocol (`lxc.seccomp.notify.proxy`): LXC receives each
//! notification itself and forwards it over SOCK_SEQPACKET; the agent decides, emulates and
//! replies, and LXC answers the kernel.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::Shared;

#[derive(Debug, thiserror::Error)]
pub enum LxcError {
    #[error("LXC's seccomp notify proxy protocol is not implemented yet")]
    NotImplemented,
}

/// Listen on `socket` and serve every LXC container that connects until `cancel` fires.
pub async fn serve(socket: &Path, ctx: Shared, cancel: CancellationToken) -> Result<(), LxcError> {
    let _ = (socket, ctx, cancel);
    Err(LxcError::NotImplemented)
}
