//! The only module that uses libseccomp: syscall name resolution per architecture, and (with
//! the policy issue) compiling policies into filters.

pub mod compile;
pub mod names;
pub mod notify;
pub mod probe;
pub mod program;
