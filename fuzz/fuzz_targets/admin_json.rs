#![no_main]
//! Fuzz target `admin_json`: see `heartbridge_fuzz::proto_checks::admin_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::admin_json(data));
