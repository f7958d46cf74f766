#![no_main]
//! Fuzz target `identity`: signed rosters and envelope signatures; see
//! `heartbridge_fuzz::proto_checks::identity`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::identity(data));
