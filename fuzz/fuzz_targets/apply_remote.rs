#![no_main]
//! Fuzz target `apply_remote`: see `heartbridge_fuzz::core_checks::ApplyHarness`.
//! One real store on disk for the whole run; inputs that changed it are
//! rolled back by restoring the database file.

use std::sync::{Mutex, OnceLock};

use heartbridge_fuzz::core_checks::ApplyHarness;

static HARNESS: OnceLock<Mutex<ApplyHarness>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| Mutex::new(ApplyHarness::new()));
    // A panic in an earlier input poisons the lock; libFuzzer stops at the
    // first panic anyway, so a poisoned lock is never seen twice.
    harness.lock().unwrap_or_else(|p| p.into_inner()).run(data);
});
