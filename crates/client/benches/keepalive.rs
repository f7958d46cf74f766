//! What connection reuse saves on a slow link: no-op syncs through a link
//! with 300 ms one-way latency (600 ms round trip), each request either on
//! the kept-alive connection of one transport, or on a new connection (a
//! new transport per request, as the ureq-era `HttpTransport::default()`
//! per call did). A new connection is charged its TCP handshake (one round
//! trip); there is no TLS on loopback, which would add more.
//!
//! `cargo bench -p heartbridge-client --bench keepalive`
//! Env: `KEEPALIVE_REQUESTS` (default 10).

use std::time::{Duration, Instant};

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::{encode, SyncRequest, PROTOCOL_VERSION};
use heartbridge_core::Transport;
use heartbridge_tests::{team, Relay};
use linkem::{BackgroundLink, Config};

fn main() {
    let n: u32 = std::env::var("KEEPALIVE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let relay = Relay::start();
    let devs = team(&relay, &["lead"]);
    let mut lead = devs[0].store.team().expect("team").expect("enrolled");
    let upstream = lead
        .relay_url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let body = encode(&SyncRequest {
        v: PROTOCOL_VERSION,
        cursor: 0,
        push: vec![],
        max_bytes: 0,
        members_since: 0,
        roster_version: 0,
        roster: None,
    });
    // A new connection pays its TCP handshake: one round trip.
    let config = Config {
        latency: Duration::from_millis(300),
        handshake: Duration::from_millis(600),
        ..Config::default()
    };

    let link = BackgroundLink::loopback(upstream, config.clone()).expect("link");
    lead.relay_url = link.url();
    let mut t = BlockingTransport::default();
    let start = Instant::now();
    for _ in 0..n {
        t.sync(&lead, body.clone()).expect("sync");
    }
    let reused = start.elapsed() / n;
    let reused_conns = link.stats().connections;
    drop(link);

    let link = BackgroundLink::loopback(upstream, config).expect("link");
    lead.relay_url = link.url();
    let start = Instant::now();
    for _ in 0..n {
        BlockingTransport::default()
            .sync(&lead, body.clone())
            .expect("sync");
    }
    let fresh = start.elapsed() / n;
    let fresh_conns = link.stats().connections;

    println!("no-op sync over a 600 ms round-trip link, {n} requests");
    println!(
        "  one transport (kept alive): {:>5} ms per request, {reused_conns} connection(s)",
        reused.as_millis()
    );
    println!(
        "  new transport per request:  {:>5} ms per request, {fresh_conns} connection(s)",
        fresh.as_millis()
    );
}
