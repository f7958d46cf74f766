//! Micro-lessons (issue 10 item 7) across devices, a real relay on loopback
//! and `linkem` cutting the link: a lesson of several MB added on one device
//! reaches another whole, resumes without fetching again what it holds,
//! refuses a chunk a hostile relay altered, asks before a metered fetch,
//! leaves no plaintext at the relay or on the device, and its viewings count
//! in the lead's statistics.

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{DocId, Error, RelayKind, StatsQuery};
use heartbridge_tests::{sync_until_quiet, team_with, Device, Relay};
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset};

const CANARY: &[u8] = b"HB-LESSON-CANARY-7f3a";

/// Media-like bytes of `len` with the canary at several places.
fn media(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    for at in [0, len / 3, len / 2, len - CANARY.len()] {
        v[at..at + CANARY.len()].copy_from_slice(CANARY);
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A lead (A) and a volunteer (B); A holds a handbook.
fn setup(relay: &Relay) -> (Vec<Device>, DocId) {
    let mut devs = team_with(relay, &["lead", "volunteer"], &[Role::Volunteer]);
    let hb = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/crisis-risk-assessment-referral.md");
    let imported = devs[0].store.import_handbooks(&[hb]).expect("import");
    let id = DocId::parse(&imported[0].id, "handbook").expect("id");
    sync_until_quiet(&mut devs, &[0, 1]);
    (devs, id)
}

fn transport(d: &Device) -> BlockingTransport {
    let t = BlockingTransport::default();
    if let Ok((device, secret)) = d.store.request_signer() {
        t.http().set_signer(&device, secret);
    }
    t
}

/// A adds `bytes` as a lesson, uploads its chunks and syncs; B syncs.
fn add_and_share(devs: &mut [Device], hb: &DocId, bytes: &[u8], title: &str) -> String {
    let l = devs[0]
        .store
        .lesson_add_bytes(hb, bytes, title, "video/mp4", Some(61_000))
        .expect("add");
    let mut t = transport(&devs[0]);
    let sent = devs[0].store.lesson_push(&mut t).expect("push");
    assert_eq!(sent, l.chunks, "every chunk uploaded once");
    assert_eq!(devs[0].store.lesson_push(&mut t).expect("push again"), 0);
    sync_until_quiet(devs, &[0, 1]);
    l.id
}

/// A link to the relay that B knows as one of the team relay's addresses.
fn link_for(b: &mut Device, relay: &Relay, cfg: Config) -> BackgroundLink {
    let addr = relay
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("relay addr");
    let link = BackgroundLink::loopback(addr, cfg).expect("link");
    b.store
        .add_relay(&link.url(), None, RelayKind::Central, false)
        .expect("add the link's address");
    link
}

fn cutting(mean: u64, seed: u64) -> Config {
    Config {
        cut: Some(Cut {
            counted: Direction::Down,
            at: Offset::Random { mean },
            end: End::Reset,
        }),
        seed,
        ..Config::default()
    }
}

#[test]
fn a_lesson_of_several_mb_reaches_a_second_device_through_a_cutting_link_and_plays_offline() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(3 * 1024 * 1024 + 12_345, 1);
    let id = add_and_share(&mut devs, &hb, &bytes, "倾听的第一分钟");

    let listed = devs[1].store.lessons(Some(&hb)).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].title.as_str(), listed[0].size, listed[0].held),
        ("倾听的第一分钟", bytes.len() as u64, false)
    );
    assert_eq!(listed[0].chunks, 7);
    assert_eq!(listed[0].duration_ms, Some(61_000));

    let link = link_for(&mut devs[1], &relay, cutting(400_000, 7));
    let url = link.url();
    let mut t = transport(&devs[1]);
    let report = devs[1]
        .store
        .lesson_fetch(
            &mut t,
            std::slice::from_ref(&id),
            true,
            Some(&url),
            &mut |_| {},
        )
        .expect("fetch through the cutting link");
    assert!(report.complete);
    assert_eq!(report.chunks_fetched, 7);
    assert!(
        link.stats().cut >= 3,
        "the link cut {} times",
        link.stats().cut
    );
    drop(link);
    drop(relay);

    // No network at all now: it plays from the device.
    let l = devs[1].store.lesson(&id).expect("lesson");
    assert!(l.held);
    assert_eq!(l.bytes_held, bytes.len() as u64);
    let whole = devs[1].store.lesson_read_range(&id, 0, None).expect("read");
    assert_eq!(whole.bytes, bytes, "the bytes are the lesson's");
    assert_eq!(whole.mime, "video/mp4");
    let mid = devs[1]
        .store
        .lesson_read_range(&id, 524_000, Some(1_100_000))
        .expect("a range across chunks");
    assert_eq!(mid.bytes, bytes[524_000..=1_100_000]);
    assert_eq!(mid.total, bytes.len() as u64);
    // An inverted or out-of-lesson range is refused, not a panic (review K3).
    for (start, end) in [(100, Some(50)), (bytes.len() as u64, None)] {
        let e = devs[1]
            .store
            .lesson_read_range(&id, start, end)
            .expect_err("a bad range");
        assert_eq!(e.kind(), "invalid_input", "{e}");
    }
}

#[test]
fn a_cut_fetch_resumes_without_fetching_again_what_it_holds() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(5 * 512 * 1024 + 100, 2);
    let id = add_and_share(&mut devs, &hb, &bytes, "lesson");
    let link = link_for(&mut devs[1], &relay, Config::default());
    let url = link.url();
    let mut t = transport(&devs[1]);
    // After two chunks the link carries almost nothing any more.
    let dead = Config {
        cut: Some(Cut {
            counted: Direction::Down,
            at: Offset::At(40),
            end: End::Reset,
        }),
        ..Config::default()
    };
    let err = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, Some(&url), &mut |r| {
            if r.chunks_fetched == 2 {
                // New connections get the dead link; the live one is reset.
                link.set_config(dead.clone());
                link.reset_all();
            }
        })
        .expect_err("the link died");
    assert_eq!(err.kind(), "network", "{err}");
    let l = devs[1].store.lesson(&id).expect("lesson");
    // Two, or three if the request after the second went out on the old
    // connection before its reset.
    let held = l.chunks_held;
    assert!((2..=3).contains(&held) && !l.held, "{held} chunks held");

    link.set_config(Config::default());
    let before = link.stats().bytes_down;
    let report = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, Some(&url), &mut |_| {})
        .expect("resume");
    assert_eq!(
        (report.chunks_already_held, report.chunks_fetched),
        (held, 6 - held)
    );
    let down = link.stats().bytes_down - before;
    let rest = (bytes.len() - held as usize * 512 * 1024) as u64;
    assert!(
        down < rest + 64 * 1024,
        "the resumed fetch brought {down} bytes for {rest} missing"
    );
    assert_eq!(
        devs[1]
            .store
            .lesson_read_range(&id, 0, None)
            .expect("read")
            .bytes,
        bytes
    );
}

#[test]
fn a_chunk_a_hostile_relay_altered_is_refused_and_nothing_else_is_lost() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(4 * 512 * 1024, 3);
    let id = add_and_share(&mut devs, &hb, &bytes, "lesson");
    let before = devs[1].store.list_handbooks().expect("handbooks");

    // The relay alters the third chunk it serves.
    let conn = rusqlite::Connection::open(relay.db()).expect("relay db");
    let ids: Vec<Vec<u8>> = {
        let mut st = conn
            .prepare("SELECT id FROM blobs ORDER BY rowid")
            .expect("q");
        st.query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("ids")
    };
    assert_eq!(ids.len(), 4);
    let third = &ids[2];
    let original: Vec<u8> = conn
        .query_row("SELECT bytes FROM blobs WHERE id = ?1", [third], |r| {
            r.get(0)
        })
        .expect("bytes");
    let mut altered = original.clone();
    altered[100] ^= 0x40;
    conn.execute(
        "UPDATE blobs SET bytes = ?1 WHERE id = ?2",
        rusqlite::params![altered, third],
    )
    .expect("alter");

    let mut t = transport(&devs[1]);
    let err = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect_err("an altered chunk");
    assert_eq!(err.kind(), "lesson_chunk_bad", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("chunk 3 of 4") && msg.contains("refused"),
        "{msg}"
    );
    let l = devs[1].store.lesson(&id).expect("lesson");
    assert_eq!(l.chunks_held, 2, "what arrived whole is kept");
    assert_eq!(devs[1].store.list_handbooks().expect("handbooks"), before);
    assert!(matches!(
        devs[1].store.lesson_read_range(&id, 3 * 512 * 1024, None),
        Err(Error::Lesson {
            kind: "lesson_not_held",
            ..
        })
    ));

    // The relay serves the chunk whole again: the fetch finishes.
    conn.execute(
        "UPDATE blobs SET bytes = ?1 WHERE id = ?2",
        rusqlite::params![original, third],
    )
    .expect("restore");
    let r = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect("fetch");
    assert_eq!((r.chunks_already_held, r.chunks_fetched), (2, 2));
    assert_eq!(
        devs[1]
            .store
            .lesson_read_range(&id, 0, None)
            .expect("read")
            .bytes,
        bytes
    );
}

#[test]
fn a_fetch_over_a_link_that_may_be_metered_asks_first_and_shows_the_size() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(3 * 1024 * 1024, 4);
    let id = add_and_share(&mut devs, &hb, &bytes, "lesson");
    let plan = devs[1].store.lesson_fetch_plan(&[]).expect("plan");
    assert_eq!(plan.chunks_missing, 6);
    assert!(plan.bytes_missing >= bytes.len() as u64);

    let mut t = transport(&devs[1]);
    let err = devs[1]
        .store
        .lesson_fetch(&mut t, &[], false, None, &mut |_| {})
        .expect_err("not confirmed");
    assert_eq!(err.kind(), "metered_link");
    let msg = err.to_string();
    assert!(
        msg.contains("3.1 MB") && msg.contains("--yes-metered"),
        "{msg}"
    );
    assert_eq!(devs[1].store.lesson(&id).expect("lesson").chunks_held, 0);

    // Said unmetered: it fetches without asking.
    devs[1]
        .store
        .set_lesson_link_policy(heartbridge_core::LinkPolicy::Unmetered)
        .expect("policy");
    let r = devs[1]
        .store
        .lesson_fetch(&mut t, &[], false, None, &mut |_| {})
        .expect("fetch");
    assert!(r.complete);
}

#[test]
fn neither_the_relay_nor_the_devices_files_hold_the_lessons_plaintext() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(2 * 1024 * 1024, 5);
    add_and_share(&mut devs, &hb, &bytes, "canary lesson title");
    let mut t = transport(&devs[1]);
    devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect("fetch");
    let stored: i64 = rusqlite::Connection::open(relay.db())
        .expect("relay db")
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count");
    assert_eq!(stored, 4, "each chunk once");
    for (path, b) in relay.all_bytes() {
        assert!(!contains(&b, CANARY), "canary in {}", path.display());
        assert!(
            !contains(&b, "canary lesson title".as_bytes()),
            "title in {}",
            path.display()
        );
    }
    for d in &devs {
        for entry in std::fs::read_dir(d.profile_dir().join("profile")).expect("dir") {
            let p = entry.expect("entry").path();
            if p.is_file() {
                let b = std::fs::read(&p).expect("read");
                assert!(!contains(&b, CANARY), "canary in {}", p.display());
            }
        }
    }
}

#[test]
fn lessons_watched_count_in_the_leads_statistics() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let bytes = media(600_000, 6);
    let id = add_and_share(&mut devs, &hb, &bytes, "第一课");
    assert_eq!(devs[1].store.lesson_watched(&id).expect("watched"), 1);
    assert_eq!(devs[1].store.lesson_watched(&id).expect("watched"), 2);
    devs[1]
        .store
        .lesson_set_progress(&id, 30_000)
        .expect("progress");
    assert_eq!(devs[0].store.lesson_watched(&id).expect("watched"), 1);
    sync_until_quiet(&mut devs, &[1, 0, 1, 0]);
    let st = devs[0]
        .store
        .lesson_stats(&StatsQuery::default())
        .expect("stats");
    assert_eq!(st.lessons_watched, 3, "3 viewings (人次)");
    assert_eq!(st.by_lesson.len(), 1);
    assert_eq!(st.by_lesson[0].title, "第一课");
    let l = devs[1].store.lesson(&id).expect("lesson");
    assert_eq!((l.watched_count, l.position_ms), (2, Some(30_000)));
    // A volunteer reads no statistics.
    assert_eq!(
        devs[1]
            .store
            .lesson_stats(&StatsQuery::default())
            .expect_err("volunteer")
            .kind(),
        "forbidden"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 5,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Whatever the link's cut points, the lesson arrives whole.
    #[test]
    fn any_cut_points_bring_the_lesson_whole(
        mean in 60_000u64..700_000,
        seed in 0u64..1_000_000,
        len in 600_000usize..2_000_000,
    ) {
        let relay = Relay::start();
        let (mut devs, hb) = setup(&relay);
        let bytes = media(len, seed);
        let id = add_and_share(&mut devs, &hb, &bytes, "lesson");
        let link = link_for(&mut devs[1], &relay, cutting(mean, seed));
        let url = link.url();
        let mut t = transport(&devs[1]);
        let mut tries = 0;
        loop {
            tries += 1;
            match devs[1].store.lesson_fetch(&mut t, &[], true, Some(&url), &mut |_| {}) {
                Ok(r) => { proptest::prop_assert!(r.complete); break; }
                Err(e) if e.kind() == "network" && tries < 20 => continue,
                Err(e) => proptest::prop_assert!(false, "fetch failed: {e}"),
            }
        }
        let got = devs[1].store.lesson_read_range(&id, 0, None).expect("read");
        proptest::prop_assert_eq!(got.bytes, bytes);
    }
}

/// A teammate's wrong manifest arrives on B: a lesson whose entry names
/// another lesson's chunks (they hash right at the relay but do not open
/// in its place).
fn forge_manifest(b: &mut Device, hb: &DocId, chunks: &[String]) -> String {
    forge_manifest_as(b, hb, chunks, "0123456789abcdef0123456789abcdef")
}

fn forge_manifest_as(b: &mut Device, hb: &DocId, chunks: &[String], id: &str) -> String {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc, Value};
    let (_, mut doc) = b.store.load(hb).expect("load").expect("handbook");
    let heads = doc.get_heads();
    let lessons = match doc.get(automerge::ROOT, "lessons").expect("get") {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => doc
            .put_object(automerge::ROOT, "lessons", ObjType::Map)
            .expect("lessons map"),
    };
    let id = id.to_owned();
    let l = doc
        .put_object(&lessons, id.as_str(), ObjType::Map)
        .expect("put");
    doc.put(&l, "title", "forged").expect("put");
    doc.put(&l, "mime", "video/mp4").expect("put");
    doc.put(&l, "size", (chunks.len() * 512 * 1024) as i64)
        .expect("put");
    doc.put(&l, "sha256", format!("{id}{}", "0".repeat(32)))
        .expect("put");
    doc.put(&l, "chunk_size", 512 * 1024i64).expect("put");
    doc.put(&l, "epoch", 1i64).expect("put");
    doc.put(&l, "added_at", 0i64).expect("put");
    let list = doc.put_object(&l, "chunks", ObjType::List).expect("list");
    for (i, c) in chunks.iter().enumerate() {
        doc.insert(&list, i, c.as_str()).expect("insert");
    }
    let change = doc.save_after(&heads);
    b.store
        .apply_remote(hb, heartbridge_core::DocKind::Handbook, &change)
        .expect("apply");
    id
}

#[test]
fn a_wrong_manifest_of_a_teammate_costs_only_its_own_lesson() {
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    let one = media(2 * 512 * 1024, 8);
    let two = media(2 * 512 * 1024, 9);
    let id1 = add_and_share(&mut devs, &hb, &one, "one");
    let id2 = add_and_share(&mut devs, &hb, &two, "two");
    let chunks_of_two: Vec<String> = devs[1]
        .store
        .lesson_missing_chunks(std::slice::from_ref(&id2))
        .expect("chunks")
        .into_iter()
        .map(|c| c.chunk_id)
        .collect();
    let forged = forge_manifest(&mut devs[1], &hb, &chunks_of_two);
    assert_eq!(devs[1].store.lessons(None).expect("list")[0].id, forged);

    let mut t = transport(&devs[1]);
    let e = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect_err("the forged lesson");
    assert_eq!(e.kind(), "lesson_manifest_bad", "{e}");
    assert!(e.to_string().contains("not the relay"), "{e}");
    for (id, bytes) in [(&id1, &one), (&id2, &two)] {
        assert_eq!(
            &devs[1]
                .store
                .lesson_read_range(id, 0, None)
                .expect("read")
                .bytes,
            bytes,
            "the other lessons came whole"
        );
    }
    assert!(!devs[1].store.lesson(&forged).expect("forged").held);
}

#[test]
fn a_lesson_whose_whole_is_not_the_file_its_id_names_is_refused_when_it_completes() {
    use heartbridge_core::proto::lesson::{chunk_id, seal_chunk, ChunkPlace};
    use heartbridge_core::BlobTransport;
    let relay = Relay::start();
    let (mut devs, hb) = setup(&relay);
    // A teammate seals its own bytes in the places of a lesson id it chose
    // and uploads them: every chunk opens, the whole is not that file.
    let id = "fedcba9876543210fedcba9876543210";
    let team = devs[0].store.team().expect("team").expect("enrolled");
    let lesson: [u8; 16] = {
        let v: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        v.try_into().expect("16")
    };
    let fake = media(2 * 512 * 1024, 10);
    let mut t = transport(&devs[0]);
    let mut ids = Vec::new();
    for (i, plain) in fake.chunks(512 * 1024).enumerate() {
        let place = ChunkPlace {
            lesson,
            index: i as u32,
            count: 2,
            epoch: team.epoch,
        };
        let sealed = seal_chunk(&team.key, &team.team_id, &place, plain);
        let cid = chunk_id(&sealed);
        t.blob_put(&team, &cid, sealed).expect("put");
        ids.push(cid);
    }
    forge_manifest_as(&mut devs[1], &hb, &ids, id);
    let mut t = transport(&devs[1]);
    let e = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect_err("the whole does not hash to its id");
    assert_eq!(e.kind(), "lesson_manifest_bad", "{e}");
    let l = devs[1].store.lesson(id).expect("lesson");
    assert_eq!(
        (l.chunks_held, l.held),
        (0, false),
        "its chunks were dropped"
    );
}
