#![no_main]
//! See `auditor::fuzzing::daemon_protocol`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::daemon_protocol(data));
