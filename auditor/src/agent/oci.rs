//! The OCI seccomp agent protocol (`listenerPath`): runc and crun connect, send the container
//! state as JSON with the notify fd attached (SCM_RIGHTS), and close.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::Shared;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("the OCI seccomp agent protocol is not implemented yet")]
    NotImplemented,
}

/// Listen on `socket` and serve every container that connects until `cancel` fires.
pub async fn serve(socket: &Path, ctx: Shared, cancel: CancellationToken) -> Result<(), OciError> {
    let _ = (socket, ctx, cancel);
    Err(OciError::NotImplemented)
}
