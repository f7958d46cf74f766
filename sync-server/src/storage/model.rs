//! The envelope log against a model: random sequences of pushes (changes,
//! snapshots with any `covers`, retried duplicates), undone compactions,
//! purges and the passing of time. After every step, what each device
//! pulls and the gauges are what the model says.

use std::collections::BTreeMap;

use heartbridge_proto::{DocKindTag, Envelope, EnvelopeKind, Role, TeamId, TeamKey};
use proptest::prelude::*;

use super::{
    DeviceId, DeviceKeys, Enrollment, NewInvite, PullQuery, PushJob, SqliteStorage, Storage,
};

const GRACE: i64 = 86_400;

#[derive(Debug, Clone)]
enum Op {
    /// A new envelope by device `dev` of document `doc`; a snapshot covers
    /// the log's last seq minus `back` (`back == 9`: past the end).
    Push {
        dev: usize,
        doc: usize,
        snapshot: bool,
        back: u64,
    },
    /// The `n`-th envelope pushed so far, again, by its device.
    Again {
        n: usize,
    },
    Undo {
        doc: usize,
    },
    Purge,
    Advance {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3usize, any::<bool>(), 0..10u64)
            .prop_map(|(dev, doc, snapshot, back)| Op::Push { dev, doc, snapshot, back }),
        1 => any::<usize>().prop_map(|n| Op::Again { n }),
        2 => (0..3usize).prop_map(|doc| Op::Undo { doc }),
        1 => Just(Op::Purge),
        1 => (0..(2 * GRACE)).prop_map(|secs| Op::Advance { secs }),
    ]
}

#[derive(Debug, Clone)]
struct Row {
    id: [u8; 16],
    doc: usize,
    author: usize,
    /// (by snapshot seq, at)
    superseded: Option<(u64, i64)>,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<u64, Row>,
    /// The highest seq acknowledged (seqs grow, not always by one: SQLite
    /// may skip one for a duplicate).
    last_seq: u64,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = (&u64, &Row)> {
        self.rows.iter().filter(|(_, r)| r.superseded.is_none())
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("model.db")).unwrap();
    let key = TeamKey::generate();
    let team = TeamId::random();
    let mut now = 1_000_000i64;
    s.create_team(team, "t", "lead", now).unwrap();
    let enroll = |token: &str| Enrollment {
        team,
        token_hash: token.into(),
        key_check: key.check_value(),
        name_sealed: "n".into(),
        enrollment_id: None,
        device: DeviceId::random(),
        device_token_hash: format!("d-{token}"),
        keys: DeviceKeys {
            sign_pk: rand::random(),
            kx_pk: rand::random(),
            epoch: 1,
            proof: rand::random(),
        },
        now,
    };
    let mut devices = vec![s.claim(&enroll("lead")).unwrap().id];
    for i in 0..3 {
        let token = format!("inv{i}");
        s.create_invite(&NewInvite {
            team,
            role: Role::Supervisor,
            token_hash: token.clone(),
            created_by: devices[0],
            created_at: now,
            expires_at: now + 10,
            key_check: None,
        })
        .unwrap();
        devices.push(s.join(&enroll(&token)).unwrap().id);
    }
    // devices[3] never pushes: it pulls everything.
    let docs: Vec<[u8; 16]> = (0..3).map(|_| rand::random()).collect();
    let mut model = Model::default();
    let mut pushed: Vec<(usize, Envelope)> = Vec::new();
    let mut counter = 0u32;
    for op in ops {
        match op {
            Op::Push {
                dev,
                doc,
                snapshot,
                back,
            } => {
                counter += 1;
                let kind = if snapshot {
                    EnvelopeKind::Snapshot
                } else {
                    EnvelopeKind::Change
                };
                let mut env = Envelope::seal(
                    &key,
                    &team,
                    docs[doc],
                    kind,
                    DocKindTag::Case,
                    &counter.to_be_bytes(),
                )
                .unwrap();
                if snapshot {
                    env.covers = if back == 9 {
                        u64::MAX
                    } else {
                        model.last_seq.saturating_sub(back)
                    };
                }
                push(&s, &mut model, team, &devices, dev, doc, &env, now);
                pushed.push((dev, env));
            }
            Op::Again { n } => {
                if pushed.is_empty() {
                    continue;
                }
                let (dev, env) = pushed[n % pushed.len()].clone();
                let doc = docs.iter().position(|d| *d == env.doc).unwrap();
                push(&s, &mut model, team, &devices, dev, doc, &env, now);
            }
            Op::Undo { doc } => {
                let after = now - GRACE;
                let last = model
                    .rows
                    .values()
                    .filter(|r| r.doc == doc)
                    .filter_map(|r| r.superseded.filter(|(_, at)| *at > after).map(|(by, _)| by))
                    .max();
                let want = last.map(|by| {
                    let mut n = 0;
                    for r in model.rows.values_mut() {
                        if r.doc == doc && r.superseded.is_some_and(|(b, at)| b == by && at > after)
                        {
                            r.superseded = None;
                            n += 1;
                        }
                    }
                    (by, n)
                });
                let got = s
                    .undo_compaction(team, docs[doc], after)
                    .unwrap()
                    .map(|u| (u.snapshot_seq, u.restored));
                assert_eq!(got, want, "undo of doc {doc}");
            }
            Op::Purge => {
                let before = now - GRACE;
                let n = s.purge_superseded(before, 1_000).unwrap();
                let gone: Vec<u64> = model
                    .rows
                    .iter()
                    .filter(|(_, r)| r.superseded.is_some_and(|(_, at)| at <= before))
                    .map(|(seq, _)| *seq)
                    .collect();
                for seq in &gone {
                    model.rows.remove(seq);
                }
                assert_eq!(n, gone.len() as u64, "purged");
            }
            Op::Advance { secs } => now += secs,
        }
        // What every device pulls from 0: the live log without its own.
        for (i, d) in devices.iter().enumerate() {
            let page = s
                .pull(&PullQuery {
                    team,
                    device: *d,
                    cursor: 0,
                    page_bytes: 1 << 30,
                    members_since: u64::MAX,
                    roster_version: u64::MAX,
                })
                .unwrap();
            let got: Vec<u64> = page.pull.iter().map(|p| p.seq).collect();
            let want: Vec<u64> = model
                .live()
                .filter(|(_, r)| r.author != i)
                .map(|(seq, _)| *seq)
                .collect();
            assert_eq!(got, want, "device {i} pulls");
        }
        let g = s.gauges().unwrap();
        assert_eq!(g.envelopes, model.live().count() as u64);
        assert_eq!(
            g.superseded,
            (model.rows.len() - model.live().count()) as u64
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    s: &SqliteStorage,
    model: &mut Model,
    team: TeamId,
    devices: &[DeviceId],
    dev: usize,
    doc: usize,
    env: &Envelope,
    now: i64,
) {
    let acks = s
        .commit(&[PushJob {
            team,
            device: devices[dev],
            envelopes: vec![Envelope {
                author: devices[dev].0,
                ..env.clone()
            }],
            roster: None,
            now,
        }])
        .unwrap()
        .remove(0)
        .unwrap();
    // A stored copy (live or superseded) makes it a duplicate: acked with
    // the copy's seq, compacting nothing. A purged one is gone.
    let stored = model
        .rows
        .iter()
        .find(|(_, r)| r.id == env.id.0)
        .map(|(seq, _)| *seq);
    let seq = acks[0].seq;
    match stored {
        Some(stored) => assert_eq!(seq, stored, "a duplicate is acked with its copy's seq"),
        None => {
            assert!(seq > model.last_seq, "seqs grow");
            model.last_seq = seq;
            model.rows.insert(
                seq,
                Row {
                    id: env.id.0,
                    doc,
                    author: dev,
                    superseded: None,
                },
            );
            if env.kind == EnvelopeKind::Snapshot && env.covers > 0 {
                let upto = env.covers.min(seq - 1);
                for r in model.rows.range_mut(..=upto).map(|(_, r)| r) {
                    if r.doc == doc && r.superseded.is_none() {
                        r.superseded = Some((seq, now));
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_as_its_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
