//! Lesson chunks on loopback (issue 10 item 7): a lesson of `LESSON_MB`
//! (default 32) MB added on one device and uploaded; a second device fetches
//! it straight from the relay, and a third through `linkem` cutting the
//! connection at random offsets (mean 1 MB: about one cut per two chunks);
//! then the whole lesson is read back decrypted, as a player would. Prints
//! MB/s of each phase (MB = 10^6 bytes of lesson plaintext).
//!
//! `cargo bench -p heartbridge-benches --bench lesson_fetch`
//! Env: `LESSON_MB` (default 32).

use std::time::Instant;

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{DocId, RelayKind, Store};
use heartbridge_tests::{sync_until_quiet, team_with, Relay};
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset};

fn transport(store: &Store) -> BlockingTransport {
    let t = BlockingTransport::default();
    let (dev, secret) = store.request_signer().expect("signer");
    t.http().set_signer(&dev, secret);
    t
}

fn mbps(bytes: usize, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs)
}

fn main() {
    let mb: usize = std::env::var("LESSON_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let len = mb * 1_000_000;
    let relay = Relay::start();
    let mut devs = team_with(
        &relay,
        &["lead", "direct", "cut"],
        &[Role::Volunteer, Role::Volunteer],
    );
    let hb = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../handbooks/zh/crisis-risk-assessment-referral.md");
    let imported = devs[0].store.import_handbooks(&[hb]).expect("import");
    let hb = DocId::parse(&imported[0].id, "handbook").expect("id");
    let bytes: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();

    let t0 = Instant::now();
    let lesson = devs[0]
        .store
        .lesson_add_bytes(&hb, &bytes, "bench", "video/mp4", None)
        .expect("add");
    let add = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut t = transport(&devs[0].store);
    devs[0].store.lesson_push(&mut t).expect("push");
    let push = t0.elapsed().as_secs_f64();
    sync_until_quiet(&mut devs, &[0, 1, 2]);

    let t0 = Instant::now();
    let mut t = transport(&devs[1].store);
    let r = devs[1]
        .store
        .lesson_fetch(&mut t, &[], true, None, &mut |_| {})
        .expect("fetch");
    assert!(r.complete);
    let direct = t0.elapsed().as_secs_f64();

    let addr = relay
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let link = BackgroundLink::loopback(
        addr,
        Config {
            cut: Some(Cut {
                counted: Direction::Down,
                at: Offset::Random { mean: 1_000_000 },
                end: End::Reset,
            }),
            seed: 11,
            ..Config::default()
        },
    )
    .expect("link");
    devs[2]
        .store
        .add_relay(&link.url(), None, RelayKind::Central, false)
        .expect("add link");
    let t0 = Instant::now();
    let mut t = transport(&devs[2].store);
    let r = devs[2]
        .store
        .lesson_fetch(&mut t, &[], true, Some(&link.url()), &mut |_| {})
        .expect("fetch through cuts");
    assert!(r.complete);
    let cut = t0.elapsed().as_secs_f64();
    let cuts = link.stats().cut;

    let t0 = Instant::now();
    let mut at = 0u64;
    let mut read = 0usize;
    while at < len as u64 {
        // A player's range requests: 1 MiB at a time.
        let r = devs[2]
            .store
            .lesson_read_range(&lesson.id, at, Some(at + (1 << 20) - 1))
            .expect("read");
        read += r.bytes.len();
        at += r.bytes.len() as u64;
    }
    assert_eq!(read, len);
    let play = t0.elapsed().as_secs_f64();

    println!("lesson {mb} MB, {} chunks of 512 KiB", lesson.chunks);
    println!(
        "add (seal + store):          {:.2} s  {}",
        add,
        mbps(len, add)
    );
    println!(
        "upload to the relay:         {:.2} s  {}",
        push,
        mbps(len, push)
    );
    println!(
        "fetch, loopback:             {:.2} s  {}",
        direct,
        mbps(len, direct)
    );
    println!(
        "fetch, linkem cutting ({cuts} cuts): {:.2} s  {}",
        cut,
        mbps(len, cut)
    );
    println!(
        "read back in 1 MiB ranges:   {:.2} s  {}",
        play,
        mbps(len, play)
    );
}
