//! Replays the `bundle` fuzz corpus and crashes (`fuzz/corpus/bundle/`,
//! `fuzz/crashes/bundle/`) through the same check the fuzz target runs
//! (`fuzz/src/bundle_checks.rs`): bytes as a bundle file and as QR frames.
//! `HEARTBRIDGE_WRITE_SEEDS=1` writes the seed corpus (a real bundle signed
//! with the check's fixed key, and its QR frames).

#[allow(dead_code)]
#[path = "../../../fuzz/src/bundle_checks.rs"]
mod bundle_checks;

use std::path::{Path, PathBuf};

use heartbridge_core::bundle::{qr, write};
use heartbridge_core::proto::{DocKindTag, Envelope, EnvelopeKind, TeamId, TeamKey};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// A real bundle of three envelopes, signed with the fixed exporter key.
fn seed_bundle() -> Vec<u8> {
    let secret = bundle_checks::fixed_exporter();
    let (key, team) = (TeamKey::generate(), TeamId([3; 16]));
    let envelopes: Vec<Envelope> = (0..3u8)
        .map(|i| {
            let mut e = Envelope::seal(
                &key,
                &team,
                [i; 16],
                EnvelopeKind::Change,
                DocKindTag::Case,
                &vec![i; 200 * usize::from(i + 1)],
            )
            .expect("seal");
            e.sign(&team, [9; 16], &secret);
            e
        })
        .collect();
    write(team.0, [9; 16], 1, envelopes, &secret)
}

#[test]
fn a_real_bundle_and_its_frames_pass_the_check() {
    let bundle = seed_bundle();
    bundle_checks::bundle(&bundle);
    let frames = qr::frames(&bundle).expect("frames");
    assert!(frames.len() >= 2);
    let mut joined = Vec::new();
    for f in &frames {
        bundle_checks::bundle(f);
        joined.extend_from_slice(f);
        joined.push(0xff);
    }
    bundle_checks::bundle(&joined);
    if std::env::var_os("HEARTBRIDGE_WRITE_SEEDS").is_some() {
        let dir = fuzz_dir().join("corpus/bundle");
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join("seed-bundle"), &bundle).expect("write");
        std::fs::write(dir.join("seed-frame-1"), &frames[0]).expect("write");
        std::fs::write(dir.join("seed-frames-joined"), &joined).expect("write");
    }
}

#[test]
fn the_bundle_corpus_and_crashes_pass_the_check() {
    let mut corpus = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join("bundle")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).expect("fixture");
            corpus += usize::from(dir == "corpus");
            if std::panic::catch_unwind(|| bundle_checks::bundle(&bytes)).is_err() {
                panic!("fixture {} panics", path.display());
            }
        }
    }
    assert!(corpus > 0, "the bundle corpus is missing");
}
