#![no_main]
//! See `auditor::fuzzing::session_protocol`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::session_protocol(data));
