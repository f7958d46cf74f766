//! What need to know costs a sync: a supervisor's device holding many
//! cases runs, in every request, the reader check of every case (its
//! readers against the holders of its newest key). Measured: the first
//! sync that seals and grants every case, then syncs with nothing new
//! (the check alone, plus one round trip to an in-memory relay), then one
//! new contact.
//!
//! Run: `cargo bench -p heartbridge-core --bench sync_cases`
//! (`HB_BENCH_CASES`, default `200,1000`; `HB_BENCH_ROUNDS`, default 20).

use std::time::{Duration, Instant};

use heartbridge_core::proto::{
    decode, encode, Ack, Pulled, Role, Secret, SyncRequest, SyncResponse, TeamId, TeamKey,
};
use heartbridge_core::{
    Channel, Group, NewCase, Risk, Store, SyncOptions, Team, Transport, TransportError,
};

/// A relay in memory: acknowledges every push and keeps it.
#[derive(Default)]
struct Memory {
    log: Vec<(u64, heartbridge_core::proto::Envelope)>,
}

impl Transport for Memory {
    fn sync(&mut self, _: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let req: SyncRequest = decode("request", &body).expect("request");
        let mut acked = Vec::new();
        for env in req.push {
            let seq = self.log.len() as u64 + 1;
            acked.push(Ack { id: env.id, seq });
            self.log.push((seq, env));
        }
        // Like the real relay, a device is not sent its own envelopes (and
        // here every envelope is this device's).
        let pull: Vec<Pulled> = Vec::new();
        let cursor = self.log.len() as u64;
        Ok(encode(&SyncResponse {
            v: heartbridge_core::proto::PROTOCOL_VERSION,
            roster: None,
            members: vec![],
            cursor,
            acked,
            pull,
            more: false,
            refused: vec![],
        }))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("HB_BENCH_CASES")
        .unwrap_or_else(|_| "200,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: usize = std::env::var("HB_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!("sync_cases ({profile}), {rounds} rounds each");
    for n in sizes {
        let work = tempfile::tempdir().expect("tempdir");
        let mut store = Store::init(
            &work.path().join("p"),
            "周督导",
            &heartbridge_core::testing::protection(),
        )
        .expect("init");
        store
            .set_team(&Team {
                relay_url: "http://relay.invalid".into(),
                team_id: TeamId::random(),
                device_id: "5355500000000000000000000000000a".into(),
                token: Secret::from_string("t".into()),
                key: TeamKey::generate(),
                epoch: 1,
                role: Role::Supervisor,
                lead_sign_pk: [0; 32],
            })
            .expect("team");
        let mut ids = Vec::new();
        for i in 0..n {
            let id = store
                .new_case(&NewCase {
                    alias: format!("个案{i}"),
                    group: Group::Other,
                    risk: Risk::Low,
                })
                .expect("case");
            store
                .add_contact(&id, Channel::Hotline, "谈了半小时，情绪平稳", Some(30))
                .expect("contact");
            ids.push(id);
        }
        let mut relay = Memory::default();
        let opts = SyncOptions::default();
        let t = Instant::now();
        let first = store.sync(&mut relay, &opts, &mut |_| {}).expect("first");
        let first_t = t.elapsed();
        let mut idle = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            store.sync(&mut relay, &opts, &mut |_| {}).expect("idle");
            idle.push(t.elapsed());
        }
        idle.sort();
        let mut one = Vec::new();
        for r in 0..rounds {
            store
                .add_contact(&ids[r % n], Channel::Online, "又聊了一次", None)
                .expect("contact");
            let t = Instant::now();
            store.sync(&mut relay, &opts, &mut |_| {}).expect("one");
            one.push(t.elapsed());
        }
        one.sort();
        let p = |v: &[Duration], q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{n} cases: first sync {} ms ({} envelopes); idle sync p50 {} ms p90 {} ms; one new contact p50 {} ms p90 {} ms",
            ms(first_t),
            first.envelopes_pushed,
            ms(p(&idle, 0.5)),
            ms(p(&idle, 0.9)),
            ms(p(&one, 0.5)),
            ms(p(&one, 0.9)),
        );
    }
}
