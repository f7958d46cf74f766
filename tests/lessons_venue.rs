//! Micro-lessons at a venue relay (issue 10 item 7): inside the loop, a
//! volunteer fetches a lesson from the venue relay without being asked
//! about a metered link (local Wi-Fi); the venue relay fetches each chunk it
//! lacks from the central relay with its own token and keeps it, sealed; a
//! second volunteer then gets the lesson from the venue relay with the
//! uplink cut. The venue relay's files hold no plaintext of the lesson.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{RelayKind, SyncOptions};
use heartbridge_relay::venue::VenueConfig;
use heartbridge_tests::{team_with, Device, Relay};
use linkem::{BackgroundLink, Cut, Direction, End, Offset};

const CANARY: &[u8] = b"HB-VENUE-LESSON-CANARY-91c2";

struct Venue {
    url: String,
    db: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Venue {
    fn start(dir: &Path, code: &str, upstream: &str) -> Venue {
        let db = dir.join("venue.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(heartbridge_relay::venue::join(&db, code, Some(upstream)))
            .expect("venue join");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = heartbridge_relay::Config::new(db.clone());
        let mut v = VenueConfig::new(url.clone());
        v.upstream = Some(upstream.to_owned());
        v.poll = Duration::from_millis(30);
        v.backoff_min = Duration::from_millis(30);
        v.backoff_max = Duration::from_millis(300);
        v.request_timeout = Duration::from_secs(10);
        config.venue = Some(v);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                ready_tx.send(()).expect("ready");
                heartbridge_relay::serve(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("venue relay ran");
            });
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("venue relay started");
        Venue {
            url,
            db,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).expect("open venue db")
    }

    /// Waits until the venue relay's mirror knows `dev`.
    fn wait_knows(&self, dev: &Device) {
        let id = dev.store.team().expect("team").expect("enrolled").device_id;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let known: i64 = self
                .conn()
                .query_row(
                    "SELECT count(*) FROM devices WHERE lower(hex(id)) = lower(?1)",
                    [&id],
                    |r| r.get(0),
                )
                .expect("devices");
            if known > 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the venue relay did not learn the device within 20 s"
            );
            let (_tx, rx) = mpsc::channel::<()>();
            let _ = rx.recv_timeout(Duration::from_millis(10));
        }
    }

    fn blobs(&self) -> i64 {
        self.conn()
            .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
            .expect("count")
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

fn signed(d: &Device) -> BlockingTransport {
    let t = BlockingTransport::default();
    let (dev, secret) = d.store.request_signer().expect("signer");
    t.http().set_signer(&dev, secret);
    t
}

fn sync_central(d: &mut Device) {
    let mut t = signed(d);
    d.store
        .sync(&mut t, &SyncOptions::default(), &mut |_| {})
        .expect("sync");
}

#[test]
fn a_venue_relay_serves_lesson_chunks_it_fetched_upstream_even_with_the_uplink_cut() {
    let central = Relay::start();
    let mut devs = team_with(
        &central,
        &["组长", "志愿者甲", "志愿者乙"],
        &[Role::Volunteer, Role::Volunteer],
    );
    let hb = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/crisis-risk-assessment-referral.md");
    let imported = devs[0].store.import_handbooks(&[hb]).expect("import");
    let hb = heartbridge_core::DocId::parse(&imported[0].id, "handbook").expect("id");
    let mut bytes: Vec<u8> = (0..1_800_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    bytes[700_000..700_000 + CANARY.len()].copy_from_slice(CANARY);
    let lesson = devs[0]
        .store
        .lesson_add_bytes(&hb, &bytes, "会场课程", "video/webm", None)
        .expect("add");
    let mut t = signed(&devs[0]);
    assert_eq!(devs[0].store.lesson_push(&mut t).expect("push"), 4);

    let code = heartbridge_client::invite(&mut devs[0].store, Role::Relay).expect("relay invite");
    let central_addr = central
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let uplink = BackgroundLink::loopback(central_addr, linkem::Config::default()).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let venue = Venue::start(dir.path(), &code, &uplink.url());
    for d in devs.iter_mut() {
        sync_central(d);
    }
    sync_central(&mut devs[0]);
    for d in devs[1..].iter_mut() {
        d.store
            .add_relay(&venue.url, None, RelayKind::Venue, false)
            .expect("add venue relay");
        venue.wait_knows(d);
    }

    // Inside the loop: no question about a metered link.
    let mut t = signed(&devs[1]);
    let r = devs[1]
        .store
        .lesson_fetch(&mut t, &[], false, None, &mut |_| {})
        .expect("fetch at the venue");
    assert!(r.complete);
    assert_eq!(r.relay.as_deref(), Some(venue.url.as_str()));
    assert_eq!(venue.blobs(), 4, "the venue relay kept what it fetched");

    // The uplink is cut: the venue relay still serves what it holds.
    uplink.set_config(linkem::Config {
        cut: Some(Cut {
            counted: Direction::Both,
            at: Offset::At(0),
            end: End::Reset,
        }),
        ..Default::default()
    });
    uplink.reset_all();
    let mut t = signed(&devs[2]);
    let r = devs[2]
        .store
        .lesson_fetch(&mut t, &[], false, None, &mut |_| {})
        .expect("fetch at the venue, uplink cut");
    assert!(r.complete);
    assert_eq!(
        devs[2]
            .store
            .lesson_read_range(&lesson.id, 0, None)
            .expect("play")
            .bytes,
        bytes
    );

    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            let b = std::fs::read(&p).expect("read");
            assert!(
                !b.windows(CANARY.len()).any(|w| w == CANARY),
                "canary in {}",
                p.display()
            );
        }
    }
}
