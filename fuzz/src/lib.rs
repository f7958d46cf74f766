//! The checks behind Heartbridge's fuzz targets, one function per target.
//!
//! The same files are compiled into the replay tests of the main workspace
//! (`crates/*/tests/fuzz_fixtures.rs` include them by path), so every corpus
//! and crash file runs through the same code in `cargo test`.

#[path = "core_checks.rs"]
pub mod core_checks;
#[path = "proto_checks.rs"]
pub mod proto_checks;
#[path = "relay_checks.rs"]
pub mod relay_checks;
