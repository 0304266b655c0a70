//! Pure policy logic: model, parse/validate, generate from observations, import/export formats.
//!
//! Nothing here reads or writes files or touches libseccomp: callers hand in text and get text
//! (or a [`model::Policy`]) back. The commands do the I/O; [`crate::seccomp::compile`] builds the
//! filter.

pub mod baselines;
pub mod check;
pub mod diff;
pub mod edit;
pub mod formats;
pub mod generate;
pub mod handlers;
pub mod merge;
pub mod model;

/// Largest policy or observation file the commands accept, in bytes. A real policy is a few
/// tens of kilobytes; anything near this is a mistake (a wrong file, a log), and reading it
/// whole would only waste memory before failing.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
