//! The contract between auditor's eBPF programs and its user space, and nothing else.
//!
//! Every type here is `#[repr(C)]`, `Copy`, has explicit padding and a size asserted at compile
//! time, so that both sides agree byte for byte. User space decodes kernel bytes with
//! [`TryFrom`]-style checks on the enumerations (`abi`, `kind`), never by transmuting into Rust
//! enums.
#![no_std]

pub mod abi;
pub mod argspec;
pub mod counters;
pub mod exec_gen;
pub mod hash;
pub mod names;
pub mod slot;
pub mod wire;

pub use wire::*;
