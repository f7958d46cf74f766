#![no_main]
//! Fuzz target `bundle`: see `heartbridge_fuzz::bundle_checks::bundle`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::bundle_checks::bundle(data));
