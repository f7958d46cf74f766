//! The checks behind Heartbridge's fuzz targets, one function per target.
//!
//! The same files are compiled into the replay tests of the main workspace
//! (`crates/*/tests/fuzz_fixtures.rs` include them by path), so every corpus
//! and crash file runs through the same code in `cargo test`.

#[path = "bundle_checks.rs"]
pub mod bundle_checks;
#[path = "core_checks.rs"]
pub mod core_checks;
#[path = "proto_checks.rs"]
pub mod proto_checks;
#[path = "relay_checks.rs"]
pub mod relay_checks;

/// The largest single allocation a fuzz target may make. libFuzzer's
/// `-malloc_limit_mb` needs a sanitizer's allocator, which a stable build
/// does not have, so the targets enforce the limit here instead: above it
/// the process aborts, and libFuzzer keeps the input as a crash. The most
/// any decoder may legitimately hold at once is an envelope's 64 MiB of
/// plaintext, which `read_to_end` keeps in a buffer of at most 128 MiB.
pub const MAX_ALLOCATION: usize = 256 * 1024 * 1024;

/// The global allocator of every fuzz target: the system allocator with
/// [`MAX_ALLOCATION`] enforced.
pub struct CappedAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only addition is a size check that aborts before allocating.
unsafe impl std::alloc::GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_size(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_size(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        check_size(new_size);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

fn check_size(size: usize) {
    if size > MAX_ALLOCATION {
        // No formatting: that would allocate inside the allocator.
        let msg = b"heartbridge-fuzz: an allocation above MAX_ALLOCATION (256 MiB)\n";
        use std::io::Write;
        let _ = std::io::stderr().write_all(msg);
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: CappedAlloc = CappedAlloc;
