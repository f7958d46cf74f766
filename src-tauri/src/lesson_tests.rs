//! What the `hblesson:` scheme answers the player, from real profiles: a
//! lead's device that added a lesson (every chunk here) and a volunteer's
//! that has its manifest by sync but no chunk yet. The app's fetch: the
//! question on the team's relay, progress, the `unmetered` policy, and a
//! venue relay in the loop (local Wi-Fi) that serves without asking.

use std::sync::{Arc, Mutex};

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{DocId, LinkPolicy, Store};
use heartbridge_tests::{sync_until_quiet, team_with, Device, Relay};
use serde_json::Value;
use tauri::http::StatusCode;
use zeroize::Zeroizing;

use crate::lesson_cmds::{fetch, media};
use crate::store_slot::{StoreSlot, Unlocked};
use crate::sync_task::Events;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

impl Events for Recorder {
    fn send(&self, event: &str, payload: Value) {
        self.0.lock().unwrap().push((event.to_owned(), payload));
    }
}

fn upload(d: &mut Device) -> u32 {
    let mut t = BlockingTransport::default();
    if let Ok((device, secret)) = d.store.request_signer() {
        t.http().set_signer(&device, secret);
    }
    d.store.lesson_push(&mut t).unwrap()
}

fn handbook(store: &mut Store) -> DocId {
    let md = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/hotline-work-rules.md");
    let imported = store.import_handbooks(&[md]).unwrap();
    DocId::parse(&imported[0].id, "handbook").unwrap()
}

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
    let hb = handbook(&mut devs[0].store);
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
    // Review K3: an end before the start is refused, not a panic that
    // would poison the store for the rest of the run.
    assert_eq!(
        media(lead, &path, Some("bytes=100-50")).err(),
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

#[test]
fn the_apps_fetch_asks_first_on_the_teams_relay_then_brings_every_chunk_with_progress() {
    let relay = Relay::start();
    let mut devs = team_with(&relay, &["lead", "volunteer"], &[Role::Volunteer]);
    let hb = handbook(&mut devs[0].store);
    let plain = bytes();
    let first = devs[0]
        .store
        .lesson_add_bytes(&hb, &plain, "第一课", "audio/wav", None)
        .unwrap();
    assert_eq!(upload(&mut devs[0]), first.chunks);
    sync_until_quiet(&mut devs, &[0, 1]);

    // The volunteer's device is the app's now (its slot, unlocked).
    let slot = Arc::new(StoreSlot::new(devs[1].profile_dir().join("profile")));
    let pin = heartbridge_core::testing::TEST_PIN.to_owned();
    assert_eq!(slot.unlock(Zeroizing::new(pin)).unwrap(), Unlocked::Opened);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = {
        let _in = rt.enter();
        heartbridge_client::HttpTransport::new().unwrap()
    };
    let events = Recorder::default();
    let held = |id: &str| slot.with(|s| s.lesson(id)).unwrap();

    // The team's relay may be a metered link: refused with the size, and
    // nothing fetched.
    let e = rt
        .block_on(fetch(&slot, &http, &events, vec![first.id.clone()], false))
        .unwrap_err();
    assert_eq!(e.kind, "metered_link");
    assert!(e.message.contains("1.3 MB"), "{}", e.message);
    assert_eq!(held(&first.id).chunks_held, 0);
    assert!(events.0.lock().unwrap().is_empty());

    // Agreed: every chunk, a progress event after each.
    let out = rt
        .block_on(fetch(&slot, &http, &events, vec![first.id.clone()], true))
        .unwrap();
    assert_eq!(out["complete"], true, "{out}");
    assert_eq!(out["chunksFetched"], first.chunks, "{out}");
    let got = events.0.lock().unwrap().clone();
    assert_eq!(got.len(), first.chunks as usize);
    assert!(got.iter().all(|(e, _)| e == "lesson-progress"));
    let last = &got.last().unwrap().1;
    assert_eq!(
        (last["held"].as_bool(), last["chunksHeld"].as_u64()),
        (Some(true), Some(first.chunks as u64))
    );
    let whole = slot
        .with(|s| Ok(media(s, &format!("/{}", first.id), None)))
        .unwrap()
        .unwrap();
    assert!(
        whole.body == plain,
        "the lesson plays whole from the device"
    );
    // Again: nothing missing, nothing fetched.
    let out = rt
        .block_on(fetch(&slot, &http, &events, vec![first.id.clone()], false))
        .unwrap();
    assert_eq!(
        (out["chunksFetched"].as_u64(), out["complete"].as_bool()),
        (Some(0), Some(true))
    );

    // Said unmetered: the next lesson comes without asking.
    let second_bytes: Vec<u8> = plain.iter().rev().copied().collect();
    let second = devs[0]
        .store
        .lesson_add_bytes(&hb, &second_bytes, "第二课", "audio/wav", None)
        .unwrap();
    assert_eq!(upload(&mut devs[0]), second.chunks);
    devs[0].sync();
    slot.with(|s| s.set_lesson_link_policy(LinkPolicy::Unmetered))
        .unwrap();
    rt.block_on(crate::sync_task::Syncer::new(Arc::clone(&slot), http.clone()).run(&events))
        .unwrap();
    let out = rt
        .block_on(fetch(&slot, &http, &events, Vec::new(), false))
        .unwrap();
    assert_eq!(out["complete"], true, "{out}");
    assert!(held(&second.id).held);
}

/// A venue relay (`heartbridge-relay serve --upstream`) in this process.
struct Venue {
    url: String,
    db: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Venue {
    fn start(dir: &std::path::Path, code: &str, upstream: &str) -> Venue {
        use std::time::Duration;
        let db = dir.join("venue.db");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(heartbridge_relay::venue::join(&db, code, Some(upstream)))
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut config = heartbridge_relay::Config::new(db.clone());
        let mut v = heartbridge_relay::venue::VenueConfig::new(url.clone());
        v.upstream = Some(upstream.to_owned());
        v.poll = Duration::from_millis(30);
        v.backoff_min = Duration::from_millis(30);
        v.backoff_max = Duration::from_millis(300);
        config.venue = Some(v);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    heartbridge_relay::serve(listener, config, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
                });
        });
        Venue {
            url,
            db,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn count(&self, sql: &str, args: &[&str]) -> i64 {
        rusqlite::Connection::open(&self.db)
            .and_then(|c| c.query_row(sql, rusqlite::params_from_iter(args), |r| r.get(0)))
            .unwrap_or(0)
    }

    /// Waits (20 s at most) until its mirror of the members knows `device`.
    fn wait_knows(&self, device: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.count(
            "SELECT count(*) FROM devices WHERE lower(hex(id)) = lower(?1)",
            &[device],
        ) == 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the venue relay did not learn the device"
            );
            // A short wait between looks (the venue relay says nothing when it learns).
            let (_tx, rx) = std::sync::mpsc::channel::<()>();
            let _ = rx.recv_timeout(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn at_a_venue_relay_the_apps_fetch_asks_nothing_and_signs_its_requests() {
    let central = Relay::start();
    let mut devs = team_with(&central, &["lead", "volunteer"], &[Role::Volunteer]);
    let hb = handbook(&mut devs[0].store);
    let plain = bytes();
    let l = devs[0]
        .store
        .lesson_add_bytes(&hb, &plain, "会场微课", "audio/wav", None)
        .unwrap();
    assert_eq!(upload(&mut devs[0]), l.chunks);
    let code = heartbridge_client::invite(&mut devs[0].store, Role::Relay).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let venue = Venue::start(dir.path(), &code, &central.url);
    sync_until_quiet(&mut devs, &[0, 1, 0]);
    devs[1]
        .store
        .add_relay(&venue.url, None, heartbridge_core::RelayKind::Venue, false)
        .unwrap();
    let me = devs[1].store.team().unwrap().unwrap().device_id;
    venue.wait_knows(&me);

    let slot = Arc::new(StoreSlot::new(devs[1].profile_dir().join("profile")));
    let pin = heartbridge_core::testing::TEST_PIN.to_owned();
    assert_eq!(slot.unlock(Zeroizing::new(pin)).unwrap(), Unlocked::Opened);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = {
        let _in = rt.enter();
        heartbridge_client::HttpTransport::new().unwrap()
    };
    let events = Recorder::default();
    // Policy `ask` and no confirmation: the venue relay is local Wi-Fi.
    let out = rt
        .block_on(fetch(&slot, &http, &events, Vec::new(), false))
        .unwrap();
    assert_eq!(out["complete"], true, "{out}");
    assert!(slot.with(|s| s.lesson(&l.id)).unwrap().held);
    // It came from the venue relay, which fetched and kept every chunk.
    assert_eq!(
        venue.count("SELECT count(*) FROM blobs", &[]),
        i64::from(l.chunks)
    );
}
