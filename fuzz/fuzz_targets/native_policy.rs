#![no_main]
//! See `auditor::fuzzing::native_policy`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::native_policy(data));
