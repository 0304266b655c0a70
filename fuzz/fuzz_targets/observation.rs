#![no_main]
//! See `auditor::fuzzing::observation`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::observation(data));
