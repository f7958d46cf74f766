#![no_main]
//! Fuzz target `envelope`: see `heartbridge_fuzz::proto_checks::envelope`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::envelope(data));
