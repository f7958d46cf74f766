//! What the `hblesson:` scheme answers the player, from real profiles: a
//! lead's device that added a lesson (every chunk here) and a volunteer's
//! that has its manifest by sync but no chunk yet.

use heartbridge_core::proto::Role;
use heartbridge_core::DocId;
use heartbridge_tests::{sync_until_quiet, team_with, Relay};
use tauri::http::StatusCode;

use crate::lesson_cmds::media;

/// 1.3 MB of bytes that differ at every offset that matters (3 chunks).
fn bytes() -> Vec<u8> {
    (0..1_300_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

#[test]
fn the_scheme_answers_ranges_of_the_decrypted_lesson_and_nothing_for_what_is_not_here() {
    let relay = Relay::start();
    let mut devs = team_with(&relay, &["lead", "volunteer"], &[Role::Volunteer]);
    let md = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/hotline-work-rules.md");
    let imported = devs[0].store.import_handbooks(&[md]).unwrap();
    let hb = DocId::parse(&imported[0].id, "handbook").unwrap();
    let plain = bytes();
    let l = devs[0]
        .store
        .lesson_add_bytes(&hb, &plain, "稳定化练习", "audio/wav", Some(30_000))
        .unwrap();
    assert!(l.chunks >= 3, "chunks {}", l.chunks);
    let path = format!("/{}", l.id);
    let lead = &devs[0].store;

    // A range across a chunk boundary: 206, exactly those bytes.
    let m = media(lead, &path, Some("bytes=524000-525000")).unwrap();
    assert_eq!(m.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(m.range, Some((524_000, 525_000, plain.len() as u64)));
    assert_eq!(m.body, plain[524_000..=525_000]);
    assert_eq!(m.mime, "audio/wav");

    // An open range goes to the end (at most 4 MiB an answer); a suffix range is the tail.
    let m = media(lead, &path, Some("bytes=1000000-")).unwrap();
    assert_eq!(m.body, plain[1_000_000..]);
    let m = media(lead, &path, Some("bytes=-100")).unwrap();
    assert_eq!(m.body, plain[plain.len() - 100..]);

    // No range: the whole lesson, 200.
    let m = media(lead, &path, None).unwrap();
    assert_eq!((m.status, m.range), (StatusCode::OK, None));
    assert!(m.body == plain, "the whole lesson, decrypted");

    // Past the end, an unknown lesson, a path that is no lesson id.
    let past = format!("bytes={}-", plain.len());
    assert_eq!(
        media(lead, &path, Some(&past)).err(),
        Some(StatusCode::RANGE_NOT_SATISFIABLE)
    );
    assert_eq!(
        media(lead, "/00000000000000000000000000000000", None).err(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        media(lead, "/../heartbridge.db", None).err(),
        Some(StatusCode::NOT_FOUND)
    );

    // The volunteer knows the lesson from the handbook but holds none of
    // its chunks: nothing to play yet.
    sync_until_quiet(&mut devs, &[0, 1]);
    let vol = &devs[1].store;
    assert!(!vol.lesson(&l.id).unwrap().held);
    assert_eq!(
        media(vol, &path, Some("bytes=0-")).err(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
}
