//! Replays the fuzz corpus and every crash the fuzzer found (`fuzz/corpus/`,
//! `fuzz/crashes/`) through the same checks the fuzz targets run
//! (`fuzz/src/proto_checks.rs`), so a fixed crash stays fixed in `cargo test`.

#[allow(dead_code)]
#[path = "../../../fuzz/src/proto_checks.rs"]
mod proto_checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of the target's corpus and crashes, sorted by name.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.expect("a directory entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("a fixture file");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    let corpus = inputs
        .iter()
        .filter(|(p, _)| {
            p.parent()
                .and_then(Path::parent)
                .is_some_and(|d| d.ends_with("corpus"))
        })
        .count();
    assert!(corpus > 0, "the {target} corpus is missing");
    for (path, bytes) in &inputs {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if std::panic::catch_unwind(|| check(bytes)).is_err() {
            panic!("{target}: fixture {name} panics");
        }
    }
}

#[test]
fn sync_bodies_from_the_fuzzer_decode_or_are_refused() {
    replay("sync_body", proto_checks::sync_body);
}

#[test]
fn admin_json_bodies_from_the_fuzzer_decode_or_are_refused() {
    replay("admin_json", proto_checks::admin_json);
}

#[test]
fn envelopes_from_the_fuzzer_open_round_trip_or_are_refused() {
    replay("envelope", proto_checks::envelope);
}

#[test]
fn invite_codes_from_the_fuzzer_decode_or_are_refused() {
    replay("invite", proto_checks::invite);
}

#[test]
fn rosters_and_envelope_signatures_from_the_fuzzer_verify_or_are_refused() {
    replay("identity", proto_checks::identity);
}

#[test]
fn grants_framed_records_and_sealed_case_payloads_from_the_fuzzer_open_only_as_sealed() {
    replay("case_seal", proto_checks::case_seal);
}

#[test]
fn a_zstd_bomb_from_a_team_member_is_refused_as_too_large() {
    use heartbridge_proto::{EnvelopeKind, OpenError};
    // 65 MiB of zeros packs into a few KB; the envelope authenticates.
    let bomb = zstd::bulk::compress(&vec![0u8; 65 << 20], 19).expect("zstd");
    assert!(bomb.len() < 16 * 1024);
    let env = proto_checks::authentic(&bomb, EnvelopeKind::Change);
    assert!(matches!(
        env.open(&proto_checks::fixed_key(), &proto_checks::fixed_team()),
        Err(OpenError::TooLarge(_))
    ));
    // One byte under the limit (64 MiB including the kind tag) opens.
    let mut plain = vec![0u8; 64 << 20];
    plain[0] = 1;
    let packed = zstd::bulk::compress(&plain, 3).expect("zstd");
    let env = proto_checks::authentic(&packed, EnvelopeKind::Change);
    let opened = env
        .open(&proto_checks::fixed_key(), &proto_checks::fixed_team())
        .expect("64 MiB opens");
    assert_eq!(opened.bytes.len(), (64 << 20) - 1);
}
