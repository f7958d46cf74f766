//! What checking every pushed envelope's signature costs the relay.
//!
//! `cargo bench -p heartbridge-relay --bench signed_push`
//!
//! 1. `Envelope::verify` alone (Ed25519 `verify_strict` over the label and
//!    every field) for envelopes of 1 KiB and 16 KiB of ciphertext, one
//!    thread.
//! 2. A real relay on loopback (release build, SQLite file in a temp dir):
//!    one device pushes 1,000 signed envelopes of 1 KiB per sync, 20 syncs;
//!    the time per sync and per envelope, and how much of it the
//!    signatures account for (from 1).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{doc, team_with_volunteers, TestRelay};
use heartbridge_proto::{DeviceSecret, Envelope, TeamId, TeamKey};

fn verify_alone(ciphertext: usize, n: usize) -> Duration {
    let (key, team, me) = (
        TeamKey::generate(),
        TeamId::random(),
        DeviceSecret::generate(),
    );
    let pk = me.public().sign;
    let envs: Vec<Envelope> = (0..n)
        .map(|_| {
            let bytes: Vec<u8> = (0..ciphertext).map(|_| rand::random::<u8>()).collect();
            let mut e = Envelope::seal(
                &key,
                &team,
                doc(),
                heartbridge_proto::EnvelopeKind::Change,
                heartbridge_proto::DocKindTag::Case,
                &bytes,
            )
            .expect("seal");
            e.sign(&team, [1; 16], &me);
            e
        })
        .collect();
    let t = Instant::now();
    for e in &envs {
        assert!(e.verify(&team, &pk));
    }
    t.elapsed() / n as u32
}

fn main() {
    let small = verify_alone(1024, 20_000);
    let large = verify_alone(16 * 1024, 5_000);
    println!("Envelope::verify, one thread: {small:.1?} per 1 KiB envelope, {large:.1?} per 16 KiB envelope");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let relay = TestRelay::start_with(|c| {
            c.rate_limits = heartbridge_relay::RateLimits::OFF;
        })
        .await;
        let c = relay.client();
        let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
        let me = &vols[0];
        const SYNCS: usize = 20;
        const PER: usize = 1000;
        let pushes: Vec<Vec<Envelope>> = (0..SYNCS)
            .map(|_| (0..PER).map(|_| team.change_of_size(me, doc(), 1024)).collect())
            .collect();
        let t = Instant::now();
        for push in pushes {
            let r = c.sync(&me.token, 0, push, 0).await;
            assert_eq!(r.acked.len(), PER);
        }
        let per_sync = t.elapsed() / SYNCS as u32;
        let per_env = per_sync / PER as u32;
        println!(
            "relay on loopback: a sync pushing {PER} signed 1 KiB envelopes took {per_sync:.1?} ({per_env:.1?} per envelope); verifying them is {:.0}% of it",
            100.0 * small.as_secs_f64() * PER as f64 / per_sync.as_secs_f64()
        );
        relay.stop().await;
    });
}
