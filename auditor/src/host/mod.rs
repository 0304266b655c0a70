//! Facts about the host's processes and cgroups, read from `/proc` and cgroup v2, and the
//! pidfd calls: the one place that parses them, for the launcher, the broker, the learner, the
//! daemon, the agent and the session directory.
//!
//! The readers are best effort where the answer may race with the process exiting (`None`,
//! `false`, an empty list), and say what failed where a caller must report it.

pub mod activation;
pub mod cgroup;
pub mod child;
pub mod pidfd;
pub mod proc;
