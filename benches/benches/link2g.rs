//! A new volunteer's first sync over a 2G link: 64 kbit/s each way, 600 ms
//! round trip, the connection dropped every ~50 KB (a seeded random offset,
//! mean 50,000 bytes counted both ways, ended by a reset).
//!
//! The team holds the sample handbooks and 30 cases. The new device syncs
//! with plain `Store::sync` (the CLI's `heartbridge sync`), retried at once
//! after each failure, until complete. The same sync over the same link
//! without cuts gives the bytes and round trips a perfect link needs; the
//! ideal time is those bytes ÷ bandwidth + round trips × RTT.
//!
//! `cargo bench -p heartbridge-benches --bench link2g`
//! Env: `LINK2G_SEEDS` (default 3), `LINK2G_MEAN_CUT` (default 50000).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{Channel, Group, NewCase, Risk, Store, SyncOptions};
use heartbridge_tests::Relay;
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset};

const BANDWIDTH: u64 = 8_000; // 64 kbit/s
const ONE_WAY: Duration = Duration::from_millis(300);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn handbooks() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../handbooks");
    let mut out = Vec::new();
    for lang in ["zh", "en"] {
        for e in std::fs::read_dir(root.join(lang)).expect("handbooks") {
            out.push(e.expect("entry").path());
        }
    }
    out.sort();
    out
}

/// Points a joined device at the link instead of the relay.
fn via(store_path: &std::path::Path, url: &str) {
    let sql = rusqlite::Connection::open(store_path).expect("open profile");
    sql.execute("UPDATE team SET relay_url = ?1", [url])
        .expect("relay url");
}

struct Run {
    secs: f64,
    attempts: usize,
    requests: usize,
    up: u64,
    down: u64,
    cuts: u64,
    docs: usize,
}

fn first_sync(
    relay: &Relay,
    lead: &mut Store,
    dir: &std::path::Path,
    name: &str,
    link: Config,
) -> Run {
    let code = heartbridge_client::invite(lead, Role::Volunteer).expect("invite");
    let mut dev = Store::init(
        &dir.join(name),
        name,
        &heartbridge_core::testing::protection(),
    )
    .expect("init");
    heartbridge_client::join(&mut dev, &code).expect("join");
    let upstream = relay
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let link = BackgroundLink::loopback(upstream, link).expect("link");
    via(dev.path(), &link.url());
    let mut transport = BlockingTransport::default();
    let started = Instant::now();
    let (mut attempts, mut requests) = (0, 0);
    loop {
        attempts += 1;
        match dev.sync(&mut transport, &SyncOptions::default(), &mut |_| {}) {
            Ok(r) => {
                requests += r.requests;
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), "network", "{e}");
                assert!(attempts < 500, "no progress after {attempts} attempts");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = link.stats();
    Run {
        secs,
        attempts,
        requests,
        up: stats.bytes_up,
        down: stats.bytes_down,
        cuts: stats.cut,
        docs: dev.document_ids().expect("docs").len(),
    }
}

fn main() {
    let seeds = env_u64("LINK2G_SEEDS", 3);
    let mean = env_u64("LINK2G_MEAN_CUT", 50_000);
    let relay = Relay::start();
    let created = relay.create_team("2G");
    let dir = tempfile::tempdir().expect("tmp");
    let mut lead = Store::init(
        &dir.path().join("lead"),
        "组长",
        &heartbridge_core::testing::protection(),
    )
    .expect("init");
    heartbridge_client::claim(&mut lead, &relay.url, created.lead_token.expose()).expect("claim");
    lead.import_handbooks(&handbooks()).expect("import");
    for i in 0..30 {
        let id = lead
            .new_case(&NewCase {
                alias: format!("个案{i}"),
                group: Group::ExamStress,
                risk: Risk::Low,
            })
            .expect("case");
        for c in 0..3 {
            let note = format!("第{c}次通话：谈到考前的睡眠和压力，约好下周再聊。编号{i}-{c}。");
            lead.add_contact(&id, Channel::Hotline, &note, Some(20))
                .expect("contact");
        }
    }
    lead.sync(
        &mut BlockingTransport::default(),
        &SyncOptions::default(),
        &mut |_| {},
    )
    .expect("lead sync");
    let want = lead.document_ids().expect("docs").len();

    let clean = first_sync(
        &relay,
        &mut lead,
        dir.path(),
        "clean",
        Config {
            latency: ONE_WAY,
            bandwidth: Some(BANDWIDTH),
            ..Config::default()
        },
    );
    assert_eq!(clean.docs, want);
    let rtt = 2.0 * ONE_WAY.as_secs_f64();
    let ideal = (clean.up + clean.down) as f64 / BANDWIDTH as f64 + clean.requests as f64 * rtt;
    println!(
        "perfect link: {:.1} s, {} requests, {} B up, {} B down; ideal {:.1} s",
        clean.secs, clean.requests, clean.up, clean.down, ideal
    );
    println!("seed | attempts | cuts | B up | B down | time s | × ideal | × perfect link");
    for seed in 1..=seeds {
        let run = first_sync(
            &relay,
            &mut lead,
            dir.path(),
            &format!("cut{seed}"),
            Config {
                latency: ONE_WAY,
                bandwidth: Some(BANDWIDTH),
                cut: Some(Cut {
                    counted: Direction::Both,
                    at: Offset::Random { mean },
                    end: End::Reset,
                }),
                seed,
                ..Config::default()
            },
        );
        assert_eq!(
            run.docs, want,
            "seed {seed}: the device is missing documents"
        );
        println!(
            "{seed} | {} | {} | {} | {} | {:.1} | {:.2} | {:.2}",
            run.attempts,
            run.cuts,
            run.up,
            run.down,
            run.secs,
            run.secs / ideal,
            run.secs / clean.secs
        );
    }
}
