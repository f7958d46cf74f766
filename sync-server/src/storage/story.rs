//! One story every [`Storage`] implementation must tell the same way: a
//! team is created, claimed and joined, pushes are deduplicated and
//! compacted, pulls page, a device is revoked. A PostgreSQL backend runs
//! [`story`] against a fresh database, as the SQLite one does below.

use heartbridge_proto::{DocKindTag, Envelope, EnvelopeKind, Role, TeamId, TeamKey};

use super::{
    DeviceId, DeviceKeys, Enrollment, NewInvite, Page, PullQuery, PushJob, RosterUpload, Storage,
};
use crate::error::{Refusal, StoreError};

fn refused<T: std::fmt::Debug>(r: Result<T, StoreError>) -> Refusal {
    match r {
        Err(StoreError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn enrollment(team: TeamId, token_hash: &str, key_check: &str, now: i64) -> Enrollment {
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
        now,
    }
}

fn pull(s: &dyn Storage, team: TeamId, device: DeviceId, cursor: u64, page_bytes: u64) -> Page {
    s.pull(&PullQuery {
        team,
        device,
        cursor,
        page_bytes,
        members_since: u64::MAX,
        roster_version: u64::MAX,
    })
    .unwrap()
}

/// Runs the story against an empty storage.
/// The envelopes as authored by `device` (the storage stores each under
/// its author; one authored by another member is carried).
fn by(device: DeviceId, envelopes: Vec<Envelope>) -> Vec<Envelope> {
    envelopes
        .into_iter()
        .map(|e| Envelope {
            author: device.0,
            ..e
        })
        .collect()
}

pub(crate) fn story(s: &dyn Storage) {
    let key = TeamKey::generate();
    let check = key.check_value();
    let team = TeamId::random();
    s.check().unwrap();
    s.create_team(team, "Hotline", "lead-hash", 100).unwrap();

    // Claim: unknown team, wrong token, then once only.
    let missing = enrollment(TeamId::random(), "lead-hash", &check, 101);
    assert_eq!(refused(s.claim(&missing)), Refusal::UnknownTeam);
    assert_eq!(
        refused(s.claim(&enrollment(team, "nope", &check, 101))),
        Refusal::UnknownToken
    );
    let lead_e = enrollment(team, "lead-hash", &check, 101);
    let lead = s.claim(&lead_e).unwrap();
    assert_eq!(lead.role, Role::Lead);
    assert_eq!(
        refused(s.claim(&enrollment(team, "lead-hash", &check, 102))),
        Refusal::Used
    );
    assert_eq!(
        s.device_by_token(&lead_e.device_token_hash).unwrap(),
        Some(lead)
    );
    assert_eq!(s.device_by_token("unknown").unwrap(), None);

    // Join: wrong key leaves the invite usable; expired; used.
    let invite = |hash: &str, expires_at| NewInvite {
        team,
        role: Role::Volunteer,
        token_hash: hash.into(),
        created_by: lead.id,
        created_at: 102,
        expires_at,
        key_check: None,
    };
    s.create_invite(&invite("inv-1", 1000)).unwrap();
    s.create_invite(&invite("inv-old", 200)).unwrap();
    assert_eq!(
        refused(s.join(&enrollment(team, "inv-1", "ffff", 103))),
        Refusal::WrongKey
    );
    assert_eq!(
        refused(s.join(&enrollment(team, "inv-x", &check, 103))),
        Refusal::UnknownToken
    );
    assert_eq!(
        refused(s.join(&enrollment(team, "inv-old", &check, 200))),
        Refusal::Expired
    );
    let vol_e = enrollment(team, "inv-1", &check, 104);
    let vol = s.join(&vol_e).unwrap();
    assert_eq!(vol.role, Role::Volunteer);
    assert_eq!(
        refused(s.join(&enrollment(team, "inv-1", &check, 105))),
        Refusal::Used
    );

    // Push: deduplicated, acked in order, across one batch of two jobs.
    let seal = |doc, kind, text: &str| {
        Envelope::seal(&key, &team, doc, kind, DocKindTag::Case, text.as_bytes()).unwrap()
    };
    let (x, y) = ([1u8; 16], [2u8; 16]);
    let a = seal(x, EnvelopeKind::Change, "a");
    let b = seal(x, EnvelopeKind::Change, "b");
    let c = seal(y, EnvelopeKind::Change, "c");
    let job = |device: DeviceId, envelopes: Vec<Envelope>| PushJob {
        team,
        device,
        envelopes: by(device, envelopes),
        roster: None,
        now: 110,
    };
    let results = s
        .commit(&[
            job(vol.id, vec![a.clone(), b.clone(), a.clone()]),
            job(lead.id, vec![c, seal(x, EnvelopeKind::Change, "a")]),
        ])
        .unwrap();
    let first = results[0].as_ref().unwrap();
    let second = results[1].as_ref().unwrap();
    assert_eq!(first[0].seq, first[2].seq);
    assert!(first[0].seq < first[1].seq && first[1].seq < second[0].seq);
    assert_eq!(second[1].seq, first[0].seq, "the same content sealed again");
    assert_eq!(s.gauges().unwrap().envelopes, 3);

    // Pull: others' envelopes only, paged by bytes.
    let page = pull(s, team, lead.id, 0, 1);
    assert_eq!(page.pull.len(), 1);
    assert!(page.more);
    let rest = pull(s, team, lead.id, page.cursor, 1 << 20);
    assert_eq!(rest.pull.len(), 1);
    assert!(!rest.more);
    assert_eq!(
        rest.pull[0].envelope,
        Envelope {
            author: vol.id.0,
            ..b.clone()
        },
        "served as stored, authored by the device that pushed it"
    );
    let own = pull(s, team, vol.id, 0, 1 << 20);
    assert_eq!(own.pull.len(), 1);
    let end = pull(s, team, vol.id, own.cursor, 1 << 20);
    assert!(end.pull.is_empty());
    assert_eq!(end.cursor, second[0].seq);

    // Compaction: a snapshot of x covering a and b supersedes them, not c.
    let mut snap = seal(x, EnvelopeKind::Snapshot, "ab");
    snap.covers = first[1].seq;
    let snap_seq = s.commit(&[job(vol.id, vec![snap])]).unwrap()[0]
        .as_ref()
        .unwrap()[0]
        .seq;
    let all = pull(s, team, DeviceId([0; 16]), 0, 1 << 20);
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, snap_seq]);
    assert_eq!(s.gauges().unwrap().superseded, 2, "kept for the grace");

    // Storage per team, for /metrics: every team listed, this one's counts.
    s.blob_put(team, [7; 32], &[1; 10], vol.id, 120, 0).unwrap();
    let usage = s.team_usage().unwrap();
    assert_eq!(usage.len(), s.teams().unwrap().len(), "every team listed");
    let mine = usage.iter().find(|u| u.team == team).expect("this team");
    assert_eq!(
        (mine.envelopes, mine.superseded, mine.blob_bytes),
        (2, 2, 10)
    );
    assert!(mine.envelope_bytes > 0);

    // The same snapshot pushed again with a later `covers` (a twin from a
    // device holding the identical document) is a duplicate: it drops
    // nothing, not even what was stored between the first copy's covers
    // and the first copy.
    let e = seal(x, EnvelopeKind::Change, "e");
    let e_seq = s.commit(&[job(lead.id, vec![e])]).unwrap()[0]
        .as_ref()
        .unwrap()[0]
        .seq;
    let mut snap2 = seal(x, EnvelopeKind::Snapshot, "ab2");
    snap2.covers = snap_seq;
    let snap2_seq = s.commit(&[job(vol.id, vec![snap2.clone()])]).unwrap()[0]
        .as_ref()
        .unwrap()[0]
        .seq;
    let mut twin = snap2.clone();
    twin.covers = snap2_seq;
    let twin_seq = s.commit(&[job(lead.id, vec![twin])]).unwrap()[0]
        .as_ref()
        .unwrap()[0]
        .seq;
    assert_eq!(
        twin_seq, snap2_seq,
        "a duplicate keeps the first copy's place"
    );
    let all = pull(s, team, DeviceId([0; 16]), 0, 1 << 20);
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, e_seq, snap2_seq]);

    // Undo the last compaction of x (snap2's): the first snapshot is pulled
    // again; once more, and a and b are back too. Past the
    // grace's start nothing is undone; a purge deletes what stays
    // superseded.
    assert_eq!(
        s.undo_compaction(team, x, 110).unwrap(),
        None,
        "superseded at 110, not after"
    );
    let undone = s.undo_compaction(team, x, 0).unwrap().unwrap();
    assert_eq!((undone.snapshot_seq, undone.restored), (snap2_seq, 1));
    let all = pull(s, team, DeviceId([0; 16]), 0, 1 << 20);
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, snap_seq, e_seq, snap2_seq]);
    let again = s.undo_compaction(team, x, 0).unwrap().unwrap();
    assert_eq!((again.snapshot_seq, again.restored), (snap_seq, 2));
    assert_eq!(s.undo_compaction(team, x, 0).unwrap(), None);
    assert_eq!(s.undo_compaction(team, y, 0).unwrap(), None);
    assert_eq!(s.gauges().unwrap().superseded, 0);
    // Compact again, then purge: nothing superseded after `before` goes.
    let mut snap3 = seal(x, EnvelopeKind::Snapshot, "ab3");
    snap3.covers = snap2_seq;
    let snap3_job = PushJob {
        now: 500,
        ..job(lead.id, vec![snap3])
    };
    let snap3_seq = s.commit(&[snap3_job]).unwrap()[0].as_ref().unwrap()[0].seq;
    assert_eq!(
        s.gauges().unwrap().superseded,
        5,
        "a, b, e and both snapshots"
    );
    assert_eq!(s.purge_superseded(499, 100).unwrap(), 0);
    assert_eq!(s.purge_superseded(500, 4).unwrap(), 4, "a chunk at a time");
    assert_eq!(s.purge_superseded(500, 100).unwrap(), 1);
    assert_eq!(s.gauges().unwrap().superseded, 0);
    assert_eq!(s.undo_compaction(team, x, 0).unwrap(), None, "purged");
    let all = pull(s, team, DeviceId([0; 16]), 0, 1 << 20);
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, snap3_seq]);

    // Members, last sync, revocation.
    let members = s.members(team).unwrap();
    assert_eq!(members.len(), 2);
    let last_sync = |id: DeviceId| {
        members
            .iter()
            .find(|m| m.device_id == id.to_hex())
            .and_then(|m| m.last_sync_at)
    };
    assert_eq!(
        (last_sync(vol.id), last_sync(lead.id)),
        (Some(110), Some(500))
    );
    assert_eq!(s.gauges().unwrap().devices, 2);
    let other = TeamId::random();
    assert_eq!(
        refused(s.revoke(Some(other), vol.id, 120)),
        Refusal::NotInTeam
    );
    let cutoff = s.revoke(Some(team), vol.id, 120).unwrap();
    assert_eq!(cutoff, snap3_seq, "the team's last seq");
    assert_eq!(s.revoke(None, vol.id, 130).unwrap(), cutoff, "idempotent");
    // A push of the revoked device still queued is refused whole.
    let late = s
        .commit(&[job(vol.id, vec![seal(y, EnvelopeKind::Change, "late")])])
        .unwrap();
    assert!(matches!(
        late[0],
        Err(StoreError::Refused(Refusal::Revoked))
    ));
    let revoked = s.device_by_token(&vol_e.device_token_hash).unwrap();
    assert!(revoked.is_some_and(|d| d.revoked));
    assert_eq!(s.gauges().unwrap().devices, 1);
    assert_eq!(
        refused(s.revoke(None, DeviceId::random(), 130)),
        Refusal::NotInTeam
    );

    let teams = s.teams().unwrap();
    assert_eq!(teams.len(), 1);
    assert!(teams[0].claimed);
    assert_eq!(teams[0].devices, 1);
    assert_eq!(teams[0].envelopes, 2);
}

/// Member keys and their seq, the roster, revocation's effects on invites.
/// Runs against an empty storage.
pub(crate) fn identity_story(s: &dyn Storage) {
    let key = TeamKey::generate();
    let check = key.check_value();
    let team = TeamId::random();
    s.create_team(team, "Hotline", "lead-hash", 100).unwrap();
    let state = s.team_state(team).unwrap().unwrap();
    assert_eq!(
        (state.lead_sign_pk, state.roster_version, state.epoch),
        (None, 0, 1)
    );
    assert_eq!(s.team_state(TeamId::random()).unwrap(), None);

    let lead_e = enrollment(team, "lead-hash", &check, 101);
    let lead = s.claim(&lead_e).unwrap();
    assert_eq!(lead.sign_pk, Some(lead_e.keys.sign_pk));
    assert_eq!(
        s.team_state(team).unwrap().unwrap().lead_sign_pk,
        Some(lead_e.keys.sign_pk),
        "the claimant's key is the roster key"
    );
    let invite = |hash: &str, by| NewInvite {
        team,
        role: Role::Supervisor,
        token_hash: hash.into(),
        created_by: by,
        created_at: 102,
        expires_at: 1000,
        key_check: None,
    };
    s.create_invite(&invite("sup", lead.id)).unwrap();
    let sup_e = enrollment(team, "sup", &check, 103);
    let sup = s.join(&sup_e).unwrap();

    let q = |members_since, roster_version| PullQuery {
        team,
        device: lead.id,
        cursor: 0,
        page_bytes: 1 << 20,
        members_since,
        roster_version,
    };
    let members = s.pull(&q(0, 0)).unwrap().members;
    assert_eq!(members.len(), 2);
    assert!(members[0].seq < members[1].seq);
    assert_eq!(members[0].device, lead.id.0);
    assert_eq!(members[0].role, Role::Lead);
    assert_eq!(members[1].device, sup.id.0);
    assert_eq!(members[1].public.sign, sup_e.keys.sign_pk);
    assert_eq!(members[1].public.kx, sup_e.keys.kx_pk);
    assert_eq!((members[1].epoch, members[1].proof), (1, sup_e.keys.proof));
    assert!(!members[1].revoked);
    let since = members[1].seq;
    assert!(s.pull(&q(since, 0)).unwrap().members.is_empty());

    // The supervisor makes two invites; one is used. Revoking it deletes
    // the unused one, and its member entry comes again, revoked.
    s.create_invite(&invite("by-sup-used", sup.id)).unwrap();
    s.create_invite(&invite("by-sup-unused", sup.id)).unwrap();
    let vol = s
        .join(&enrollment(team, "by-sup-used", &check, 104))
        .unwrap();
    s.revoke(Some(team), sup.id, 105).unwrap();
    assert_eq!(
        refused(s.join(&enrollment(team, "by-sup-unused", &check, 106))),
        Refusal::UnknownToken
    );
    let changed = s.pull(&q(since, 0)).unwrap().members;
    let seqs: Vec<u64> = changed.iter().map(|m| m.seq).collect();
    assert_eq!(
        changed.len(),
        2,
        "the volunteer enrolled, the supervisor revoked"
    );
    assert!(seqs[0] < seqs[1]);
    assert_eq!((changed[0].device, changed[0].revoked), (vol.id.0, false));
    assert_eq!((changed[1].device, changed[1].revoked), (sup.id.0, true));
    // A retry of an enrollment with other keys is no retry.
    s.create_invite(&invite("retry", lead.id)).unwrap();
    let first = Enrollment {
        enrollment_id: Some("c3".repeat(16)),
        ..enrollment(team, "retry", &check, 107)
    };
    s.join(&first).unwrap();
    let other_keys = Enrollment {
        enrollment_id: first.enrollment_id.clone(),
        ..enrollment(team, "retry", &check, 108)
    };
    assert_eq!(refused(s.join(&other_keys)), Refusal::Used);

    // Rosters: newer versions replace, the same bytes again are a retry,
    // older or other bytes of the same version refuse the whole job.
    let roster = |version, epoch, tag: u8| RosterUpload {
        version,
        epoch,
        bytes: vec![tag; 10],
        key_checks: vec![],
    };
    let job = |r: RosterUpload, text: &str| PushJob {
        team,
        device: lead.id,
        envelopes: by(
            lead.id,
            vec![Envelope::seal(
                &key,
                &team,
                [5; 16],
                EnvelopeKind::Change,
                DocKindTag::Case,
                text.as_bytes(),
            )
            .unwrap()],
        ),
        roster: Some(r),
        now: 110,
    };
    let results = s
        .commit(&[
            job(roster(2, 2, 1), "a"),
            job(roster(2, 2, 1), "b"),
            job(roster(2, 2, 9), "c"),
            job(roster(1, 1, 8), "d"),
        ])
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_ok());
    for r in &results[2..] {
        assert!(matches!(r, Err(StoreError::Refused(Refusal::StaleRoster))));
    }
    assert_eq!(s.gauges().unwrap().envelopes, 2, "c and d were not stored");
    let state = s.team_state(team).unwrap().unwrap();
    assert_eq!((state.roster_version, state.epoch), (2, 2));
    assert_eq!(s.roster(team).unwrap(), Some(vec![1; 10]));
    assert_eq!(s.pull(&q(u64::MAX, 1)).unwrap().roster, Some(vec![1; 10]));
    assert_eq!(s.pull(&q(u64::MAX, 2)).unwrap().roster, None);
    s.commit(&[job(roster(3, 2, 3), "e")]).unwrap()[0]
        .as_ref()
        .unwrap();
    assert_eq!(s.roster(team).unwrap(), Some(vec![3; 10]));
}

/// A retried enrollment (same enrollment id, same key check) gets the same
/// device with a new token; anything else finds the token used. Runs
/// against an empty storage.
pub(crate) fn retry_story(s: &dyn Storage) {
    let key = TeamKey::generate();
    let check = key.check_value();
    let team = TeamId::random();
    s.create_team(team, "Hotline", "lead-hash", 100).unwrap();
    // A device keeps its keys (and its enrollment id) across retries.
    let with_id = |token: &str, id: &str, now| Enrollment {
        enrollment_id: Some(id.into()),
        keys: DeviceKeys {
            sign_pk: [id.as_bytes()[0]; 32],
            kx_pk: [id.as_bytes()[1]; 32],
            epoch: 1,
            proof: [0; 32],
        },
        ..enrollment(team, token, &check, now)
    };
    let (a, b) = ("a1".repeat(16), "b2".repeat(16));

    // Claim, then its retry: the same lead, the first token dead.
    let first = with_id("lead-hash", &a, 101);
    let lead = s.claim(&first).unwrap();
    let retry = with_id("lead-hash", &a, 102);
    assert_eq!(s.claim(&retry).unwrap(), lead);
    assert_eq!(s.device_by_token(&first.device_token_hash).unwrap(), None);
    assert_eq!(
        s.device_by_token(&retry.device_token_hash).unwrap(),
        Some(lead)
    );
    // Another id, no id, or another key check: the lead token is used.
    assert_eq!(
        refused(s.claim(&with_id("lead-hash", &b, 103))),
        Refusal::Used
    );
    assert_eq!(
        refused(s.claim(&enrollment(team, "lead-hash", &check, 103))),
        Refusal::Used
    );
    let other_key = Enrollment {
        key_check: "ffff".into(),
        ..with_id("lead-hash", &a, 103)
    };
    assert_eq!(refused(s.claim(&other_key)), Refusal::Used);

    // Join and its retry, even after the invite's expiry.
    s.create_invite(&NewInvite {
        team,
        role: Role::Supervisor,
        token_hash: "inv".into(),
        created_by: lead.id,
        created_at: 104,
        expires_at: 200,
        key_check: None,
    })
    .unwrap();
    let joined = with_id("inv", &b, 105);
    let sup = s.join(&joined).unwrap();
    assert_eq!(sup.role, Role::Supervisor);
    let late = with_id("inv", &b, 300);
    assert_eq!(s.join(&late).unwrap(), sup);
    assert_eq!(s.device_by_token(&joined.device_token_hash).unwrap(), None);
    assert_eq!(
        refused(s.join(&with_id("inv", &a, 106))),
        Refusal::Used,
        "another enrollment id, even the lead's"
    );
    assert_eq!(s.members(team).unwrap().len(), 2);

    // A revoked device is not brought back by a retry.
    s.revoke(Some(team), sup.id, 300).unwrap();
    assert_eq!(refused(s.join(&with_id("inv", &b, 301))), Refusal::Revoked);
    assert!(s
        .device_by_token(&late.device_token_hash)
        .unwrap()
        .is_some_and(|d| d.revoked));
}

/// The log id: made with the database, the same on every read, and
/// another one (kept) after `new_log_id`.
pub(crate) fn log_id_story(s: &dyn Storage) {
    let first = s.log_id().unwrap();
    assert_ne!(first.0, [0; 16], "a log id is random, not zeros");
    assert_eq!(s.log_id().unwrap(), first);
    let second = s.new_log_id(200).unwrap();
    assert_ne!(second, first);
    assert_eq!(s.log_id().unwrap(), second);
}

#[test]
fn sqlite_keeps_a_log_id_and_makes_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log-id.db");
    let first = {
        let storage = super::SqliteStorage::open(&path).unwrap();
        log_id_story(&storage);
        storage.log_id().unwrap()
    };
    // Opened again (a relay restarting): the same id.
    assert_eq!(
        super::SqliteStorage::open(&path).unwrap().log_id().unwrap(),
        first
    );
    // Two databases have two ids.
    let other = super::SqliteStorage::open(&dir.path().join("other.db")).unwrap();
    assert_ne!(other.log_id().unwrap(), first);
}

#[test]
fn postgres_keeps_a_log_id_and_makes_a_new_one() {
    let cluster = heartbridge_pgtest::PgCluster::start();
    let url = cluster.new_database();
    let open = || super::PgStorage::open(url.parse().unwrap(), 2).unwrap();
    let first = {
        let storage = open();
        log_id_story(&storage);
        storage.log_id().unwrap()
    };
    assert_eq!(open().log_id().unwrap(), first);
    assert_ne!(postgres(&cluster).log_id().unwrap(), first);
}

#[test]
fn sqlite_tells_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::SqliteStorage::open(&dir.path().join("story.db")).unwrap();
    story(&storage);
}

#[test]
fn sqlite_tells_the_identity_story() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::SqliteStorage::open(&dir.path().join("identity.db")).unwrap();
    identity_story(&storage);
}

#[test]
fn sqlite_tells_the_retry_story() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::SqliteStorage::open(&dir.path().join("retry.db")).unwrap();
    retry_story(&storage);
}

/// A fresh database in a throw-away cluster (the cluster must outlive the store).
fn postgres(cluster: &heartbridge_pgtest::PgCluster) -> super::PgStorage {
    let url = cluster.new_database();
    let config: tokio_postgres::Config = url.parse().unwrap();
    super::PgStorage::open(config, 4).unwrap()
}

#[test]
fn postgres_tells_the_story() {
    let cluster = heartbridge_pgtest::PgCluster::start();
    story(&postgres(&cluster));
}

#[test]
fn postgres_tells_the_identity_story() {
    let cluster = heartbridge_pgtest::PgCluster::start();
    identity_story(&postgres(&cluster));
}

#[test]
fn postgres_tells_the_retry_story() {
    let cluster = heartbridge_pgtest::PgCluster::start();
    retry_story(&postgres(&cluster));
}
