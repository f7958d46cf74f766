//! PostgreSQL store tests, against a real cluster from `crates/pgtest`:
//! two `PgStorage` handles on one database stand for two relays.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use heartbridge_pgtest::PgCluster;
use heartbridge_proto::{ContentId, Envelope, EnvelopeKind, Role, TeamId};

use super::log::Hold;
use super::PgStorage;
use crate::storage::{DeviceId, DeviceKeys, Enrollment, NewInvite, PullQuery, PushJob, Storage};

const WAIT: Duration = Duration::from_secs(30);

fn open(url: &str) -> PgStorage {
    PgStorage::open(url.parse().expect("a PostgreSQL URL"), 4).expect("opening PostgreSQL")
}

fn enrollment(team: TeamId, token_hash: &str, key_check: &str) -> Enrollment {
    Enrollment {
        team,
        token_hash: token_hash.into(),
        key_check: key_check.into(),
        name_sealed: "sealed".into(),
        enrollment_id: None,
        device: DeviceId::random(),
        device_token_hash: format!("device-{}", DeviceId::random()),
        keys: DeviceKeys {
            sign_pk: rand::random(),
            kx_pk: rand::random(),
            epoch: 1,
            proof: rand::random(),
        },
        now: 1_000,
    }
}

/// A team with its lead enrolled; returns the lead.
fn team_with_lead(s: &PgStorage, team: TeamId) -> DeviceId {
    let lead_hash = format!("lead-{team}");
    s.create_team(team, "team", &lead_hash, 1_000).unwrap();
    s.claim(&enrollment(team, &lead_hash, "check")).unwrap().id
}

fn push(team: TeamId, device: DeviceId) -> PushJob {
    PushJob {
        team,
        device,
        envelopes: vec![Envelope {
            doc: [1; 16],
            kind: EnvelopeKind::Change,
            epoch: 1,
            id: ContentId(rand::random()),
            covers: 0,
            nonce: [2; 24],
            ciphertext: vec![3; 40],
            author: device.0,
            sig: [4; 64],
        }],
        roster: None,
        now: 2_000,
    }
}

fn pull_from(s: &PgStorage, team: TeamId, cursor: u64) -> (Vec<u64>, u64) {
    let page = s
        .pull(&PullQuery {
            team,
            // A third device: pulls everybody's envelopes.
            device: DeviceId::random(),
            cursor,
            page_bytes: 1 << 20,
            members_since: u64::MAX,
            roster_version: u64::MAX,
        })
        .unwrap();
    (page.pull.iter().map(|p| p.seq).collect(), page.cursor)
}

/// Waits (bounded) until `n` backends of the database wait on a lock.
fn wait_for_lock_waiters(cluster: &PgCluster, url: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting = cluster.psql(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        if waiting.trim().parse::<usize>().unwrap_or(0) >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} backends never waited on a lock (saw {waiting:?})"
        );
    }
}

/// Section (c) of docs/design/issue11-postgres.md, concretely: relay A has
/// assigned a seq for team T and not committed; relay B's push for T must
/// wait behind it (not commit a higher seq first), so a pull meanwhile
/// neither returns B's envelope nor moves its cursor past A's seq; another
/// team is not held up; a revocation waits too and gets a cut-off after
/// A's envelope; once A commits, the pull from the earlier cursor gets
/// A's envelope and then B's.
#[test]
fn a_pull_never_skips_an_envelope_that_commits_later() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let a = open(&url);
    let b = open(&url);
    let t = TeamId(rand::random());
    let u = TeamId(rand::random());
    let lead_t = team_with_lead(&a, t);
    let lead_u = team_with_lead(&a, u);
    // A member of T to revoke while A holds T.
    a.create_invite(&NewInvite {
        team: t,
        role: Role::Volunteer,
        token_hash: "invite-1".into(),
        created_by: lead_t,
        created_at: 1_000,
        expires_at: 100_000,
        key_check: None,
    })
    .unwrap();
    let member = a.join(&enrollment(t, "invite-1", "check")).unwrap().id;

    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *a.hold.lock().unwrap() = Some(Hold {
        arrived: arrived_tx,
        release: release_rx,
    });
    let job_a = push(t, lead_t);
    let job_b = push(t, lead_t);
    std::thread::scope(|scope| {
        let a_push = scope.spawn(|| a.commit(std::slice::from_ref(&job_a)));
        arrived
            .recv_timeout(WAIT)
            .expect("relay A's batch reached its commit");

        let b_push = scope.spawn(|| b.commit(std::slice::from_ref(&job_b)));
        wait_for_lock_waiters(&cluster, &url, 1);

        // B is blocked, not ahead: nothing of T is visible and the cursor
        // does not pass A's seq (1).
        assert_eq!(pull_from(&b, t, 0), (vec![], 0));

        // The lock is per team: U commits at once.
        let u_acks = b.commit(&[push(u, lead_u)]).unwrap();
        assert_eq!(u_acks[0].as_ref().unwrap()[0].seq, 1);
        assert_eq!(pull_from(&b, u, 0).0, vec![1]);

        let revoke = scope.spawn(|| b.revoke(Some(t), member, 3_000));
        wait_for_lock_waiters(&cluster, &url, 2);

        release.send(()).unwrap();
        let a_acks = a_push.join().unwrap().unwrap();
        let b_acks = b_push.join().unwrap().unwrap();
        let seq_a = a_acks[0].as_ref().unwrap()[0].seq;
        let seq_b = b_acks[0].as_ref().unwrap()[0].seq;
        assert_eq!((seq_a, seq_b), (1, 2), "commit order is seq order");
        let cutoff = revoke.join().unwrap().unwrap();
        assert!(
            cutoff >= seq_a,
            "the cut-off {cutoff} comes after A's envelope"
        );
    });
    // From the cursor the held pull answered, both arrive, in order.
    assert_eq!(pull_from(&a, t, 0), (vec![1, 2], 2));
    assert_eq!(pull_from(&b, t, 0), (vec![1, 2], 2));
}

/// Seqs are per team, and a second relay opening a migrated database
/// migrates nothing and sees what the first stored.
#[test]
fn seqs_are_per_team_and_a_second_open_keeps_the_schema() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let a = open(&url);
    let t = TeamId(rand::random());
    let u = TeamId(rand::random());
    let lead_t = team_with_lead(&a, t);
    let lead_u = team_with_lead(&a, u);
    let acks = a
        .commit(&[push(t, lead_t), push(u, lead_u), push(t, lead_t)])
        .unwrap();
    let seqs: Vec<u64> = acks.iter().map(|r| r.as_ref().unwrap()[0].seq).collect();
    assert_eq!(seqs, vec![1, 1, 2]);
    drop(a);
    let b = open(&url);
    assert_eq!(
        cluster
            .psql(&url, "SELECT version FROM schema_version")
            .trim(),
        super::migrations::PG_MIGRATIONS.len().to_string()
    );
    assert_eq!(pull_from(&b, t, 0), (vec![1, 2], 2));
    assert_eq!(b.teams().unwrap().len(), 2);
}

/// A server whose acks would not be durable is refused at open, and a
/// database that is not there is "unavailable" (503), not an internal
/// error.
#[test]
fn an_unsafe_or_unreachable_server_is_refused_as_unavailable() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    cluster.psql(
        &url,
        &format!("ALTER DATABASE {db} SET synchronous_commit = off"),
    );
    match PgStorage::open(url.parse().unwrap(), 2) {
        Err(e) => {
            assert!(e.is_unavailable(), "{e}");
            assert!(e.to_string().contains("synchronous_commit"), "{e}");
        }
        Ok(_) => panic!("opened a database with synchronous_commit = off"),
    }
    let missing = format!(
        "postgres://heartbridge@127.0.0.1:{}/no_such_database",
        cluster.port()
    );
    match PgStorage::open(missing.parse().unwrap(), 2) {
        Err(e) => assert!(e.is_unavailable(), "{e}"),
        Ok(_) => panic!("opened a database that does not exist"),
    }
}

/// A PostgreSQL error names the operation and the SQLSTATE, never the
/// server's DETAIL, which quotes the row's values (here a token hash).
#[test]
fn a_postgres_error_never_quotes_a_value() {
    let cluster = PgCluster::start();
    let s = open(&cluster.new_database());
    let hash = "lead-token-hash-that-must-not-leak";
    s.create_team(TeamId(rand::random()), "one", hash, 1)
        .unwrap();
    let e = s
        .create_team(TeamId(rand::random()), "two", hash, 1)
        .expect_err("a second team with the same lead token hash");
    assert!(e.is_unavailable());
    let text = format!("{e} / {e:?}");
    assert!(!text.contains(hash), "{text}");
    assert!(text.contains("create a team"), "{text}");
    assert!(text.contains("23505"), "{text}");
}

/// Lesson chunks: stored once, kept within the team's quota, and found
/// per team only.
#[test]
fn lesson_chunks_are_stored_once_within_the_quota() {
    use crate::storage::BlobPut;
    let cluster = PgCluster::start();
    let s = open(&cluster.new_database());
    let t = TeamId(rand::random());
    let u = TeamId(rand::random());
    let lead = team_with_lead(&s, t);
    team_with_lead(&s, u);
    let (x, y, z) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert_eq!(
        s.blob_put(t, x, &[7; 600], lead, 5, 1_000).unwrap(),
        BlobPut::Stored
    );
    assert_eq!(
        s.blob_put(t, x, &[7; 600], lead, 6, 1_000).unwrap(),
        BlobPut::Known
    );
    // 600 + 500 would pass 1,000: nothing stored.
    assert_eq!(
        s.blob_put(t, y, &[8; 500], lead, 7, 1_000).unwrap(),
        BlobPut::OverQuota
    );
    assert_eq!(
        s.blob_put(t, z, &[9; 400], lead, 8, 1_000).unwrap(),
        BlobPut::Stored
    );
    // No limit (0).
    assert_eq!(
        s.blob_put(t, y, &[8; 500], lead, 9, 0).unwrap(),
        BlobPut::Stored
    );
    assert_eq!(s.blob_get(t, x).unwrap(), Some(vec![7; 600]));
    assert_eq!(s.blob_get(u, x).unwrap(), None);
    assert_eq!(
        s.blob_have(t, &[z, [4; 32], x]).unwrap(),
        vec![true, false, true]
    );
    assert_eq!(s.blob_have(u, &[x]).unwrap(), vec![false]);
}

fn envelope(author: DeviceId, kind: EnvelopeKind, covers: u64) -> Envelope {
    Envelope {
        kind,
        covers,
        ..push(TeamId([0; 16]), author).envelopes.remove(0)
    }
}

/// A snapshot supersedes its document's earlier envelopes (no longer
/// pulled, listed for operators), an undo serves them again, and the purge
/// deletes what a later snapshot superseded, in bounded steps.
#[test]
fn compaction_undo_and_purge() {
    let cluster = PgCluster::start();
    let s = open(&cluster.new_database());
    let t = TeamId(rand::random());
    let lead = team_with_lead(&s, t);
    let job = |envelopes: Vec<Envelope>| PushJob {
        team: t,
        device: lead,
        envelopes,
        roster: None,
        now: 2_000,
    };
    let changes = (0..3)
        .map(|_| envelope(lead, EnvelopeKind::Change, 0))
        .collect();
    s.commit(&[job(changes)]).unwrap();
    let snap = s
        .commit(&[job(vec![envelope(lead, EnvelopeKind::Snapshot, 3)])])
        .unwrap();
    assert_eq!(snap[0].as_ref().unwrap()[0].seq, 4);
    assert_eq!(pull_from(&s, t, 0), (vec![4], 4));
    let g = s.gauges().unwrap();
    assert_eq!((g.devices, g.envelopes, g.superseded), (1, 1, 3));
    let listed = s.compactions(t, 0).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].doc, hex::encode([1u8; 16]));
    assert_eq!(listed[0].snapshot_seq, 4);
    assert_eq!(listed[0].superseded, 3);
    assert_eq!(listed[0].author, Some(lead.to_hex()));
    assert_eq!(listed[0].at, 2_000);
    // Past the grace's start nothing is listed or undone.
    assert!(s.compactions(t, 2_000).unwrap().is_empty());
    assert_eq!(s.undo_compaction(t, [1; 16], 2_000).unwrap(), None);

    let undone = s.undo_compaction(t, [1; 16], 0).unwrap().unwrap();
    assert_eq!((undone.snapshot_seq, undone.restored), (4, 3));
    assert_eq!(pull_from(&s, t, 0), (vec![1, 2, 3, 4], 4));

    s.commit(&[job(vec![envelope(lead, EnvelopeKind::Snapshot, 4)])])
        .unwrap();
    assert_eq!(pull_from(&s, t, 0), (vec![5], 5));
    assert_eq!(s.purge_superseded(1_999, 10).unwrap(), 0);
    assert_eq!(s.purge_superseded(2_000, 3).unwrap(), 3);
    assert_eq!(s.purge_superseded(2_000, 3).unwrap(), 1);
    assert_eq!(s.purge_superseded(2_000, 3).unwrap(), 0);
    assert!(s.compactions(t, 0).unwrap().is_empty());
    assert_eq!(pull_from(&s, t, 0), (vec![5], 5));

    let teams = s.teams().unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0].team_id, t.to_hex());
    assert!(teams[0].claimed);
    assert_eq!((teams[0].devices, teams[0].envelopes), (1, 1));
    let members = s.members(t).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].device_id, lead.to_hex());
    assert_eq!(members[0].role, Role::Lead);
    assert_eq!(members[0].last_sync_at, Some(2_000));
}

/// The revocation cut-off is exact across relays: a push of a device that
/// waits on its team's lock behind the revocation is refused in its own
/// transaction, so nothing of it lies past the cut-off.
#[test]
fn a_push_queued_behind_a_revocation_at_the_other_relay_is_refused() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let a = open(&url);
    let b = open(&url);
    let t = TeamId(rand::random());
    let lead = team_with_lead(&a, t);
    a.create_invite(&NewInvite {
        team: t,
        role: Role::Volunteer,
        token_hash: "invite-1".into(),
        created_by: lead,
        created_at: 1_000,
        expires_at: 100_000,
        key_check: None,
    })
    .unwrap();
    let member = a.join(&enrollment(t, "invite-1", "check")).unwrap().id;

    let (arrived_tx, arrived) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    *a.hold.lock().unwrap() = Some(Hold {
        arrived: arrived_tx,
        release: release_rx,
    });
    let job_lead = push(t, lead);
    let job_member = push(t, member);
    std::thread::scope(|scope| {
        let held = scope.spawn(|| a.commit(std::slice::from_ref(&job_lead)));
        arrived.recv_timeout(WAIT).expect("relay A's batch is held");
        let revoke = scope.spawn(|| b.revoke(Some(t), member, 3_000));
        wait_for_lock_waiters(&cluster, &url, 1);
        let late = scope.spawn(|| b.commit(std::slice::from_ref(&job_member)));
        wait_for_lock_waiters(&cluster, &url, 2);
        release.send(()).unwrap();
        let first = held.join().unwrap().unwrap();
        assert_eq!(first[0].as_ref().unwrap()[0].seq, 1);
        assert_eq!(revoke.join().unwrap().unwrap(), 1, "the cut-off");
        let late = late.join().unwrap().unwrap();
        assert!(
            matches!(
                late[0],
                Err(crate::error::StoreError::Refused(
                    crate::error::Refusal::Revoked
                ))
            ),
            "{late:?}"
        );
    });
    assert_eq!(pull_from(&b, t, 0), (vec![1], 1));
}

/// A write batch larger than one insert statement (several MiB, as the
/// writer groups them at a shift end) is stored whole, each envelope once,
/// with its own bytes at the seq its ack gave, in push order.
#[test]
fn a_batch_of_several_mib_is_stored_whole_in_push_order() {
    let cluster = PgCluster::start();
    let s = open(&cluster.new_database());
    let team = TeamId::random();
    let lead = team_with_lead(&s, team);
    // Three jobs of 300 envelopes of 4 KiB each: 3.5 MiB, with the second
    // job pushed twice in the same batch (a retry that arrived at once).
    let job = |i: u8| {
        let mut j = push(team, lead);
        j.envelopes = (0..300u16)
            .map(|n| {
                let mut e = j.envelopes[0].clone();
                e.id = ContentId(rand::random());
                e.ciphertext = vec![i; 4096];
                e.ciphertext[..2].copy_from_slice(&n.to_be_bytes());
                e
            })
            .collect();
        j
    };
    let jobs = [job(1), job(2), job(3)];
    let batch = vec![
        jobs[0].clone(),
        jobs[1].clone(),
        jobs[1].clone(),
        jobs[2].clone(),
    ];
    let results = s.commit(&batch).unwrap();
    let acks: Vec<Vec<u64>> = results
        .into_iter()
        .map(|r| r.unwrap().iter().map(|a| a.seq).collect())
        .collect();
    assert_eq!(
        acks[1], acks[2],
        "the retry in the same batch gets the same seqs"
    );
    let firsts: Vec<u64> = [&acks[0], &acks[1], &acks[3]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(
        firsts,
        (1..=900).collect::<Vec<_>>(),
        "seqs in push order, none skipped"
    );
    let page = s
        .pull(&PullQuery {
            team,
            device: DeviceId::random(),
            cursor: 0,
            page_bytes: 64 << 20,
            members_since: u64::MAX,
            roster_version: u64::MAX,
        })
        .unwrap();
    let sent: Vec<&[u8]> = [&jobs[0], &jobs[1], &jobs[2]]
        .into_iter()
        .flat_map(|j| j.envelopes.iter().map(|e| &e.ciphertext[..]))
        .collect();
    let got: Vec<&[u8]> = page
        .pull
        .iter()
        .map(|p| &p.envelope.ciphertext[..])
        .collect();
    assert_eq!(got.len(), 900, "every envelope stored once");
    assert!(got == sent, "each envelope's own bytes, in push order");
    assert_eq!(s.fallbacks(), 0, "stored by the set-based path");
}
