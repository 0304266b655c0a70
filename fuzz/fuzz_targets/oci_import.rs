#![no_main]
//! See `auditor::fuzzing::oci_import`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| auditor::fuzzing::oci_import(data));
