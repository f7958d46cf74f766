//! One story every [`Storage`] implementation must tell the same way: a
//! team is created, claimed and joined, pushes are deduplicated and
//! compacted, pulls page, a device is revoked. A PostgreSQL backend runs
//! [`story`] against a fresh database, as the SQLite one does below.

use heartbridge_proto::{DocKindTag, Envelope, EnvelopeKind, Role, TeamId, TeamKey};

use super::{DeviceId, Enrollment, NewInvite, PushJob, Storage};
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
        now,
    }
}

/// Runs the story against an empty storage.
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
        envelopes,
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
    let page = s.pull(team, lead.id, 0, 1).unwrap();
    assert_eq!(page.pull.len(), 1);
    assert!(page.more);
    let rest = s.pull(team, lead.id, page.cursor, 1 << 20).unwrap();
    assert_eq!(rest.pull.len(), 1);
    assert!(!rest.more);
    assert_eq!(rest.pull[0].envelope, b);
    let own = s.pull(team, vol.id, 0, 1 << 20).unwrap();
    assert_eq!(own.pull.len(), 1);
    let end = s.pull(team, vol.id, own.cursor, 1 << 20).unwrap();
    assert!(end.pull.is_empty());
    assert_eq!(end.cursor, second[0].seq);

    // Compaction: a snapshot of x covering a and b drops them, not c.
    let mut snap = seal(x, EnvelopeKind::Snapshot, "ab");
    snap.covers = first[1].seq;
    let snap_seq = s.commit(&[job(vol.id, vec![snap])]).unwrap()[0]
        .as_ref()
        .unwrap()[0]
        .seq;
    let all = s.pull(team, DeviceId([0; 16]), 0, 1 << 20).unwrap();
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, snap_seq]);

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
    let all = s.pull(team, DeviceId([0; 16]), 0, 1 << 20).unwrap();
    let seqs: Vec<u64> = all.pull.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![second[0].seq, e_seq, snap2_seq]);

    // Members, last sync, revocation.
    let members = s.members(team).unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.last_sync_at == Some(110)));
    assert_eq!(s.gauges().unwrap().devices, 2);
    let other = TeamId::random();
    assert_eq!(refused(s.revoke(Some(other), vol.id)), Refusal::NotInTeam);
    s.revoke(Some(team), vol.id).unwrap();
    s.revoke(None, vol.id).unwrap();
    let revoked = s.device_by_token(&vol_e.device_token_hash).unwrap();
    assert!(revoked.is_some_and(|d| d.revoked));
    assert_eq!(s.gauges().unwrap().devices, 1);
    assert_eq!(
        refused(s.revoke(None, DeviceId::random())),
        Refusal::NotInTeam
    );

    let teams = s.teams().unwrap();
    assert_eq!(teams.len(), 1);
    assert!(teams[0].claimed);
    assert_eq!(teams[0].devices, 1);
    assert_eq!(teams[0].envelopes, 3);
}

/// A retried enrollment (same enrollment id, same key check) gets the same
/// device with a new token; anything else finds the token used. Runs
/// against an empty storage.
pub(crate) fn retry_story(s: &dyn Storage) {
    let key = TeamKey::generate();
    let check = key.check_value();
    let team = TeamId::random();
    s.create_team(team, "Hotline", "lead-hash", 100).unwrap();
    let with_id = |token: &str, id: &str, now| Enrollment {
        enrollment_id: Some(id.into()),
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
    s.revoke(Some(team), sup.id).unwrap();
    assert_eq!(refused(s.join(&with_id("inv", &b, 301))), Refusal::Revoked);
    assert!(s
        .device_by_token(&late.device_token_hash)
        .unwrap()
        .is_some_and(|d| d.revoked));
}

#[test]
fn sqlite_tells_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::SqliteStorage::open(&dir.path().join("story.db")).unwrap();
    story(&storage);
}

#[test]
fn sqlite_tells_the_retry_story() {
    let dir = tempfile::tempdir().unwrap();
    let storage = super::SqliteStorage::open(&dir.path().join("retry.db")).unwrap();
    retry_story(&storage);
}
