#![no_main]
//! Fuzz target `handbook`: see `heartbridge_fuzz::core_checks::handbook`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::core_checks::handbook(data));
