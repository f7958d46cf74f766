#![no_main]
//! Fuzz target `sync_body`: see `heartbridge_fuzz::proto_checks::sync_body`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::sync_body(data));
