#![no_main]
//! See `auditor::fuzzing::lxc_record`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::lxc_record(data));
