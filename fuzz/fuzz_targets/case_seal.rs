#![no_main]
//! Fuzz target `case_seal`: framed records, key grants, sealed case
//! payloads and facts (need to know); see
//! `heartbridge_fuzz::proto_checks::case_seal`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| heartbridge_fuzz::proto_checks::case_seal(data));
