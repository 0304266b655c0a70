//! `auditor agent`: the seccomp agent that container runtimes hand their notify fds to — runc
//! and crun through the OCI `listenerPath` protocol, LXC through `lxc.seccomp.notify.proxy` —
//! serving each container's notifications with the broker and handlers of `auditor enforce`.

pub mod policies;
