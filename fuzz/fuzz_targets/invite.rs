#![no_main]
//! Fuzz target `invite`: see `heartbridge_fuzz::proto_checks::invite`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::invite(data));
