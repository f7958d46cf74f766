//! A venue relay carrying a shift out over a poor uplink: three volunteers
//! inside the loop each write `VENUE_NOTES` notes (default 40) on their own
//! cases and sync them to the venue relay while the uplink is down; then the
//! uplink comes back as 64 kbit/s each way with 300 ms one way (linkem), and
//! we measure how long the venue relay takes to have every envelope
//! acknowledged by the central relay, and the bytes that crossed the uplink
//! each way (the forwarder's pull brings every forwarded envelope back down
//! once: see sync-server/ARCHITECTURE.md, Limits).
//!
//! `cargo bench -p heartbridge-benches --bench venue_uplink`
//! Env: `VENUE_NOTES` (default 40).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{Channel, Group, NewCase, RelayKind, Risk, Store, SyncOptions, Transport};
use heartbridge_relay::venue::VenueConfig;
use heartbridge_tests::{team_with, Relay};
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset};

const BANDWIDTH: u64 = 8_000; // 64 kbit/s
const ONE_WAY: Duration = Duration::from_millis(300);

fn sync_at(store: &mut Store, url: &str) {
    let entry = store
        .relays()
        .expect("relays")
        .into_iter()
        .find(|e| e.url == url)
        .expect("entry");
    let mut t = BlockingTransport::default();
    let (dev, secret) = store.request_signer().expect("signer");
    t.http().set_signer(&dev, secret);
    t.use_relay(&entry);
    store.select_relay(url).expect("select");
    store
        .sync_active(&mut t, &SyncOptions::default(), &mut |_| {})
        .expect("sync");
}

fn backlog(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .expect("venue db")
        .query_row(
            "SELECT count(*) FROM envelopes e WHERE NOT EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq)",
            [],
            |r| r.get(0),
        )
        .expect("backlog")
}

fn main() {
    let notes: usize = std::env::var("VENUE_NOTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let central = Relay::start();
    let mut devs = team_with(
        &central,
        &["lead", "v1", "v2", "v3"],
        &[Role::Supervisor, Role::Supervisor, Role::Supervisor],
    );
    let code = heartbridge_client::invite(&mut devs[0].store, Role::Relay).expect("relay code");
    let addr = central
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let uplink = BackgroundLink::loopback(addr, Config::default()).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("venue.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(heartbridge_relay::venue::join(
        &db,
        &code,
        Some(&uplink.url()),
    ))
    .expect("venue join");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let venue_url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut config = heartbridge_relay::Config::new(&db);
    let mut v = VenueConfig::new(venue_url.clone());
    v.upstream = Some(uplink.url());
    v.poll = Duration::from_millis(50);
    v.backoff_min = Duration::from_millis(50);
    v.backoff_max = Duration::from_millis(500);
    config.venue = Some(v);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        heartbridge_relay::serve(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("venue relay");
    });
    for d in devs.iter_mut() {
        let url = central.url.clone();
        sync_at(&mut d.store, &url);
    }
    let url = central.url.clone();
    sync_at(&mut devs[0].store, &url);

    // The uplink is down; the shift happens inside.
    uplink.set_config(Config {
        cut: Some(Cut {
            counted: Direction::Both,
            at: Offset::At(0),
            end: End::Reset,
        }),
        ..Config::default()
    });
    uplink.reset_all();
    for d in devs[1..].iter_mut() {
        d.store
            .add_relay(&venue_url, None, RelayKind::Venue, false)
            .expect("venue entry");
        let mut ids = Vec::new();
        for c in 0..4 {
            ids.push(
                d.store
                    .new_case(&NewCase {
                        alias: format!("{} {c}", d.name),
                        group: Group::Hardship,
                        risk: if c == 0 { Risk::High } else { Risk::Low },
                    })
                    .expect("case"),
            );
        }
        for n in 0..notes {
            d.store
                .add_contact(
                    &ids[n % ids.len()],
                    Channel::Hotline,
                    &"来电记录，情绪平稳，约定回访。".repeat(4),
                    Some(15),
                )
                .expect("note");
        }
        sync_at(&mut d.store, &venue_url);
    }
    let waiting = backlog(&db);
    let before = uplink.stats();

    // The uplink returns, poor.
    uplink.set_config(Config {
        latency: ONE_WAY,
        handshake: ONE_WAY * 2,
        bandwidth: Some(BANDWIDTH),
        ..Config::default()
    });
    let started = Instant::now();
    let (_tx, rx) = mpsc::channel::<()>();
    while backlog(&db) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not forwarded in 10 min"
        );
        let _ = rx.recv_timeout(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    let after = uplink.stats();
    println!(
        "venue_uplink: {waiting} envelopes ({} notes x 3 devices) forwarded over 64 kbit/s / 600 ms RTT in {secs:.1} s; uplink bytes up {} down {}",
        notes,
        after.bytes_up - before.bytes_up,
        after.bytes_down - before.bytes_down
    );
    let _ = stop.send(());
    rt.block_on(server).expect("venue relay stopped");
}
