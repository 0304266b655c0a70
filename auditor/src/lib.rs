//! auditor: learn which system calls a workload needs, turn that into a seccomp policy, enforce
//! it through a seccomp user-notification broker.
//!
//! Module boundaries (see HOUSE_STYLE): only [`bpf`] imports aya, only [`seccomp`] imports
//! libseccomp, [`policy`] is pure and synchronous.

pub mod agent;
pub mod bpf;
pub mod broker;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod fsutil;
pub mod fuzzing;
pub mod host;
pub mod kube;
pub mod launch;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod runtime;
pub mod seccomp;
pub mod session;
pub mod syscalls;
pub mod tui;

#[cfg(test)]
mod testing;
