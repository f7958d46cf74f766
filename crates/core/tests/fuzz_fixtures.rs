//! Replays the fuzz corpus and every crash the fuzzer found (`fuzz/corpus/`,
//! `fuzz/crashes/`) through the same checks the fuzz targets run
//! (`fuzz/src/core_checks.rs`): handbook import, and bytes of a pulled
//! envelope merged into a real profile on disk.

#[allow(dead_code)]
#[path = "../../../fuzz/src/core_checks.rs"]
mod core_checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of the target's corpus and crashes, sorted by name; and how
/// many came from the corpus.
fn inputs(target: &str) -> (Vec<(String, Vec<u8>)>, usize) {
    let mut out = Vec::new();
    let mut corpus = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("a fixture file");
            corpus += usize::from(dir == "corpus");
            let name = format!(
                "{dir}/{target}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            out.push((name, bytes));
        }
    }
    (out, corpus)
}

#[test]
fn handbooks_from_the_fuzzer_import_or_are_refused() {
    let (inputs, corpus) = inputs("handbook");
    assert!(corpus > 0, "the handbook corpus is missing");
    for (name, bytes) in &inputs {
        if std::panic::catch_unwind(|| core_checks::handbook(bytes)).is_err() {
            panic!("fixture {name} panics");
        }
    }
}

#[test]
fn pulled_bytes_from_the_fuzzer_apply_or_are_refused_and_the_store_stays_sound() {
    let (inputs, corpus) = inputs("apply_remote");
    assert!(corpus > 0, "the apply_remote corpus is missing");
    let mut harness = core_checks::ApplyHarness::new();
    for (name, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| harness.run(bytes)));
        if outcome.is_err() {
            panic!("fixture {name} panics or leaves the store damaged");
        }
    }
}
