#![no_main]
//! See `auditor::fuzzing::agent_message`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::agent_message(data));
