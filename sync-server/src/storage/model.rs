//! The envelope log against a model: random sequences of write batches
//! (several jobs in one `commit`, as the writer groups them: changes,
//! snapshots with any `covers`, retried duplicates, envelopes carried for
//! another member, a device's second job in the same batch), revocations,
//! undone compactions, purges and the passing of time. After every step,
//! every answer, what each device pulls and the gauges are what the model
//! says. Run on SQLite and on a real PostgreSQL (whose batches without a
//! roster take the set-based path, `pg/log.rs` `commit_set`).

use std::collections::BTreeMap;

use heartbridge_proto::{DocKindTag, Envelope, EnvelopeKind, Role, TeamId, TeamKey};
use proptest::prelude::*;

use super::{
    delta_wire_len, pulled_wire_len, DeviceId, DeviceKeys, Enrollment, NewInvite, PullQuery,
    PushJob, SqliteStorage, Storage,
};
use crate::error::{Refusal, StoreError};

const GRACE: i64 = 86_400;

/// One envelope of a job.
#[derive(Debug, Clone)]
enum Env {
    /// A new envelope authored by `author` (the pusher itself when it is
    /// the pusher, else carried) of document `doc`; a snapshot covers the
    /// log's last seq minus `back` (`back == 9`: past the end).
    New {
        author: usize,
        doc: usize,
        snapshot: bool,
        back: u64,
    },
    /// The `n`-th envelope made so far, again (carried when the pusher is
    /// not its author).
    Again { n: usize },
}

/// One device's push in a batch.
#[derive(Debug, Clone)]
struct Job {
    pusher: usize,
    envs: Vec<Env>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Jobs committed together, in this order.
    Batch(Vec<Job>),
    /// A member (1..=2; the lead and the puller stay) is revoked.
    Revoke {
        dev: usize,
    },
    Undo {
        doc: usize,
    },
    Purge,
    Advance {
        secs: i64,
    },
}

fn env() -> impl Strategy<Value = Env> {
    prop_oneof![
        6 => (0..3usize, 0..3usize, any::<bool>(), 0..10u64)
            .prop_map(|(author, doc, snapshot, back)| Env::New { author, doc, snapshot, back }),
        1 => any::<usize>().prop_map(|n| Env::Again { n }),
    ]
}

fn job() -> impl Strategy<Value = Job> {
    (0..3usize, proptest::collection::vec((env(), 0..3u8), 1..4)).prop_map(|(pusher, envs)| Job {
        pusher,
        envs: envs
            .into_iter()
            .map(|(mut e, carry)| {
                // Mostly its own envelopes; one in three carried for another.
                if let Env::New { author, .. } = &mut e {
                    if carry != 0 {
                        *author = pusher;
                    }
                }
                e
            })
            .collect(),
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(job(), 1..2).prop_map(Op::Batch),
        3 => proptest::collection::vec(job(), 2..6).prop_map(Op::Batch),
        1 => (1..3usize).prop_map(|dev| Op::Revoke { dev }),
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
    /// Who pushed it, when it was carried for its author.
    carrier: Option<usize>,
    /// (by snapshot seq, at)
    superseded: Option<(u64, i64)>,
}

#[derive(Default)]
struct Model {
    rows: BTreeMap<u64, Row>,
    /// The highest seq acknowledged (seqs grow, not always by one: SQLite
    /// may skip one for a duplicate).
    last_seq: u64,
    revoked: [bool; 4],
}

impl Model {
    fn live(&self) -> impl Iterator<Item = (&u64, &Row)> {
        self.rows.iter().filter(|(_, r)| r.superseded.is_none())
    }
}

fn run(s: &dyn Storage, ops: Vec<Op>) {
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
    // Every envelope made so far, with its author and document.
    let mut made: Vec<(usize, usize, Envelope)> = Vec::new();
    let mut counter = 0u32;
    for op in ops {
        match op {
            Op::Batch(specs) => {
                let mut jobs = Vec::new();
                // Per job: (pusher, [(author, doc, envelope)]).
                let mut expect = Vec::new();
                for spec in specs {
                    let mut envs = Vec::new();
                    for e in spec.envs {
                        let (author, doc, env) = match e {
                            Env::New {
                                author,
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
                                env.author = devices[author].0;
                                if snapshot {
                                    env.covers = if back == 9 {
                                        u64::MAX
                                    } else {
                                        model.last_seq.saturating_sub(back)
                                    };
                                }
                                made.push((author, doc, env.clone()));
                                (author, doc, env)
                            }
                            Env::Again { n } => {
                                if made.is_empty() {
                                    continue;
                                }
                                made[n % made.len()].clone()
                            }
                        };
                        envs.push((author, doc, env));
                    }
                    if envs.is_empty() {
                        continue;
                    }
                    jobs.push(PushJob {
                        team,
                        device: devices[spec.pusher],
                        envelopes: envs.iter().map(|(_, _, e)| e.clone()).collect(),
                        roster: None,
                        now,
                    });
                    expect.push((spec.pusher, envs));
                }
                if jobs.is_empty() {
                    continue;
                }
                let results = s.commit(&jobs).unwrap();
                assert_eq!(results.len(), jobs.len(), "one result per job");
                for ((pusher, envs), result) in expect.into_iter().zip(results) {
                    check_job(&mut model, pusher, &envs, result, now);
                }
            }
            Op::Revoke { dev } => {
                s.revoke(Some(team), devices[dev], now).unwrap();
                model.revoked[dev] = true;
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
                .filter(|(_, r)| r.author != i && r.carrier != Some(i))
                .map(|(seq, _)| *seq)
                .collect();
            assert_eq!(got, want, "device {i} pulls");
            // Page by page, under bounds of a few envelopes: the same
            // envelopes, cut where the byte bound says (each page takes
            // its first envelope whatever its size, then what fits), and
            // `more` on every page but the last.
            let wire: Vec<u64> = page
                .pull
                .iter()
                .map(|p| {
                    pulled_wire_len(
                        p.seq,
                        p.envelope.epoch,
                        p.envelope.covers,
                        p.envelope.ciphertext.len() as u64,
                    )
                })
                .collect();
            for page_bytes in [1u64, 300, 450, 700, 1500] {
                let room = page_bytes.saturating_sub(delta_wire_len(None, &[]));
                let mut cursor = 0;
                let mut at = 0;
                loop {
                    let page = s
                        .pull(&PullQuery {
                            team,
                            device: *d,
                            cursor,
                            page_bytes,
                            members_since: u64::MAX,
                            roster_version: u64::MAX,
                        })
                        .unwrap();
                    let mut end = (at + 1).min(wire.len());
                    let mut total: u64 = wire[at..end].iter().sum();
                    while end < wire.len() && total + wire[end] <= room {
                        total += wire[end];
                        end += 1;
                    }
                    let seqs: Vec<u64> = page.pull.iter().map(|p| p.seq).collect();
                    assert_eq!(
                        seqs,
                        got[at..end],
                        "device {i}, pages of {page_bytes} bytes"
                    );
                    assert_eq!(
                        page.more,
                        end < wire.len(),
                        "device {i}, more, pages of {page_bytes} bytes"
                    );
                    at = end;
                    cursor = page.cursor;
                    if !page.more {
                        break;
                    }
                }
                assert_eq!(at, wire.len());
            }
        }
        let g = s.gauges().unwrap();
        assert_eq!(g.envelopes, model.live().count() as u64);
        assert_eq!(
            g.superseded,
            (model.rows.len() - model.live().count()) as u64
        );
    }
}

/// One job's answer against the model, which it then follows.
fn check_job(
    model: &mut Model,
    pusher: usize,
    envs: &[(usize, usize, Envelope)],
    result: Result<Vec<heartbridge_proto::Ack>, StoreError>,
    now: i64,
) {
    if model.revoked[pusher] {
        assert!(
            matches!(result, Err(StoreError::Refused(Refusal::Revoked))),
            "a revoked device's push is refused whole"
        );
        return;
    }
    let acks = result.expect("a member's push is stored");
    assert_eq!(acks.len(), envs.len(), "one ack per envelope");
    for ((author, doc, env), ack) in envs.iter().zip(acks) {
        assert_eq!(ack.id, env.id, "acks in push order");
        // A stored copy (live or superseded) makes it a duplicate: acked with
        // the copy's seq, compacting nothing. A purged one is gone.
        let stored = model
            .rows
            .iter()
            .find(|(_, r)| r.id == env.id.0)
            .map(|(seq, _)| *seq);
        let carried = *author != pusher;
        match stored {
            Some(stored) => assert_eq!(ack.seq, stored, "a duplicate is acked with its copy's seq"),
            None if carried && model.revoked[*author] => {
                assert_eq!(ack.seq, 0, "a revoked author's carried envelope is refused");
            }
            None => {
                assert!(ack.seq > model.last_seq, "seqs grow");
                let seq = ack.seq;
                model.last_seq = seq;
                model.rows.insert(
                    seq,
                    Row {
                        id: env.id.0,
                        doc: *doc,
                        author: *author,
                        carrier: carried.then_some(pusher),
                        superseded: None,
                    },
                );
                if env.kind == EnvelopeKind::Snapshot && env.covers > 0 {
                    let upto = env.covers.min(seq - 1);
                    for r in model.rows.range_mut(..=upto).map(|(_, r)| r) {
                        if r.doc == *doc && r.superseded.is_none() {
                            r.superseded = Some((seq, now));
                        }
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
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStorage::open(&dir.path().join("model.db")).unwrap();
        run(&s, ops);
    }
}

/// The same histories on PostgreSQL: one throw-away cluster for the run, a
/// fresh database per case.
#[test]
fn on_postgresql_the_log_behaves_as_its_model() {
    use proptest::test_runner::{Config, TestRunner};
    let cluster = heartbridge_pgtest::PgCluster::start();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            let url = cluster.new_database();
            let s = super::PgStorage::open(url.parse().unwrap(), 2).unwrap();
            run(&s, ops);
            // Every batch here has no roster and makes no database error:
            // the set-based path stored them all, not the per-job fallback.
            assert_eq!(
                s.fallbacks(),
                0,
                "batches that fell back to the per-job path"
            );
            Ok(())
        })
        .unwrap();
}
