//! Faults: duplicated and replayed pushes, syncs cut off mid-way, envelopes
//! that must be refused, and relay errors a device must tell apart.

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::{
    decode, encode, DocKindTag, Envelope, EnvelopeKind, SyncRequest, SyncResponse, TeamId, TeamKey,
};
use heartbridge_core::{
    Channel, Group, NewCase, Risk, SyncOptions, Team, Transport, TransportError,
};
use heartbridge_tests::{sync_until_quiet, team, Relay};

/// Sends every request twice, as a retrying client on a flaky link would.
struct Twice(BlockingTransport);
impl Transport for Twice {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.0.sync(team, body.clone())?;
        self.0.sync(team, body)
    }
}

/// Delivers the request of call `n` but loses its response.
struct LoseResponse {
    inner: BlockingTransport,
    n: usize,
    calls: usize,
}
impl Transport for LoseResponse {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.calls += 1;
        let r = self.inner.sync(team, body)?;
        if self.calls == self.n {
            return Err(TransportError::Network("connection reset".into()));
        }
        Ok(r)
    }
}

fn new_case(store: &mut heartbridge_core::Store) -> heartbridge_core::DocId {
    store
        .new_case(&NewCase {
            alias: "阿明".into(),
            group: Group::Migrant,
            risk: Risk::Low,
        })
        .expect("case")
}

#[test]
fn duplicated_and_replayed_pushes_create_no_duplicates() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    let id = new_case(&mut devs[0].store);
    for i in 0..3 {
        devs[0]
            .store
            .add_contact(&id, Channel::Hotline, &format!("记录{i}"), None)
            .expect("contact");
    }
    // Every request goes twice.
    devs[0]
        .sync_with(
            &mut Twice(BlockingTransport::default()),
            &SyncOptions::default(),
        )
        .expect("sync twice");
    let rows = relay.envelope_count();
    // Replay: the same outbox content sealed again with fresh nonces.
    let team0 = devs[0].store.team().expect("t").expect("enrolled");
    let doc = {
        let mut b = [0u8; 16];
        b.copy_from_slice(&hex_decode(id.as_str()));
        b
    };
    let (_, mut am) = devs[0].store.load(&id).expect("load").expect("doc");
    let all = am.save_after(&[]);
    let mut e1 = Envelope::seal(
        &team0.key,
        &team0.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &all,
    )
    .expect("seal");
    let mut e2 = Envelope::seal(
        &team0.key,
        &team0.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &all,
    )
    .expect("seal");
    devs[0].store.sign_envelope(&mut e1).expect("sign");
    devs[0].store.sign_envelope(&mut e2).expect("sign");
    let mut t = BlockingTransport::default();
    let r1: SyncResponse = decode(
        "resp",
        &t.sync(
            &team0,
            encode(&SyncRequest {
                v: heartbridge_core::proto::PROTOCOL_VERSION,
                cursor: 0,
                push: vec![e1],
                max_bytes: 0,
                members_since: 0,
                roster_version: 0,
                roster: None,
            }),
        )
        .expect("push"),
    )
    .expect("decode");
    let r2: SyncResponse = decode(
        "resp",
        &t.sync(
            &team0,
            encode(&SyncRequest {
                v: heartbridge_core::proto::PROTOCOL_VERSION,
                cursor: 0,
                push: vec![e2],
                max_bytes: 0,
                members_since: 0,
                roster_version: 0,
                roster: None,
            }),
        )
        .expect("push"),
    )
    .expect("decode");
    assert_eq!(
        r1.acked[0].seq, r2.acked[0].seq,
        "the same content was stored twice"
    );
    assert!(relay.envelope_count() <= rows + 1);

    sync_until_quiet(&mut devs, &[1, 0]);
    let c = devs[1].case(&id);
    assert_eq!(c.contacts.len(), 3);
    assert_eq!(c, devs[0].case(&id));
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_sync_cut_off_mid_way_resumes_without_loss() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    let text: Vec<char> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../handbooks/zh/hotline-work-rules.md"
    ))
    .expect("handbook")
    .chars()
    .collect();
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = new_case(&mut devs[0].store);
        let note: String = text[i * 900..(i + 1) * 900].iter().collect();
        devs[0]
            .store
            .add_contact(&id, Channel::Hotline, &note, Some(30))
            .expect("contact");
        ids.push(id);
    }
    devs[0].sync();
    // Small pages; the response of the third page is lost on the way, and
    // this sync does not retry by itself.
    let small = SyncOptions {
        page_bytes: 4096,
        retries: 0,
        ..Default::default()
    };
    let mut cut = LoseResponse {
        inner: BlockingTransport::default(),
        n: 3,
        calls: 0,
    };
    let err = devs[1].sync_with(&mut cut, &small).unwrap_err();
    assert_eq!(err.kind(), "network");
    assert!(err.to_string().contains("saved on this device"), "{err}");
    // Kept: cases opened, or case envelopes waiting for the key's grant
    // (pushed after the cases, so it may lie beyond the cut).
    let got = devs[1]
        .store
        .list_cases(&Default::default())
        .expect("list")
        .len()
        + devs[1].store.sync_status().expect("status").locked;
    assert!(
        got > 0 && got < ids.len() * 2,
        "pages before the cut were not kept ({got})"
    );
    assert_eq!(
        devs[1]
            .store
            .sync_status()
            .expect("status")
            .last_error_kind
            .as_deref(),
        Some("network")
    );
    let r = devs[1]
        .sync_with(&mut BlockingTransport::default(), &small)
        .expect("resume");
    assert!(r.requests > 1, "small pages should take several requests");
    for id in &ids {
        assert_eq!(devs[1].case(id), devs[0].case(id));
    }
    assert_eq!(
        devs[1].store.sync_status().expect("status").last_error_kind,
        None
    );

    // The same on the push side: the relay stored the push, the ack is lost.
    let id = new_case(&mut devs[1].store);
    devs[1]
        .store
        .add_contact(&id, Channel::Online, "推送途中断线", None)
        .expect("contact");
    let mut cut = LoseResponse {
        inner: BlockingTransport::default(),
        n: 1,
        calls: 0,
    };
    assert!(devs[1].sync_with(&mut cut, &small).is_err());
    assert_eq!(
        devs[1].store.outbox_len().expect("outbox"),
        2,
        "unacknowledged changes left the outbox"
    );
    devs[1].sync();
    assert_eq!(devs[1].store.outbox_len().expect("outbox"), 0);
    devs[0].sync();
    assert_eq!(devs[0].case(&id).contacts.len(), 1);
}

#[test]
fn tampered_wrong_key_and_cross_team_envelopes_are_refused_and_the_rest_applies() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    let other_team = team(&relay, &["x"]);
    let a = devs[0].store.team().expect("t").expect("enrolled");
    let x = other_team[0].store.team().expect("t").expect("enrolled");
    let id = new_case(&mut devs[0].store);
    let (_, mut am) = devs[0].store.load(&id).expect("load").expect("doc");
    let bytes = am.save_after(&[]);
    let doc = [9u8; 16];

    let mut tampered = Envelope::seal(
        &a.key,
        &a.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &bytes,
    )
    .expect("seal");
    let last = tampered.ciphertext.len() - 1;
    tampered.ciphertext[last] ^= 0x40;
    let mut wrong_key = Envelope::seal(
        &TeamKey::generate(),
        &a.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &bytes,
    )
    .expect("seal");
    let mut cross_team = Envelope::seal(
        &x.key,
        &x.team_id,
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &bytes,
    )
    .expect("seal");
    let mut foreign_id = Envelope::seal(
        &a.key,
        &TeamId::random(),
        doc,
        EnvelopeKind::Change,
        DocKindTag::Case,
        &bytes,
    )
    .expect("seal");
    // Signed by a member: the relay stores them; the devices' AEAD check
    // refuses them.
    for e in [
        &mut tampered,
        &mut wrong_key,
        &mut cross_team,
        &mut foreign_id,
    ] {
        devs[0].store.sign_envelope(e).expect("sign");
    }
    let mut t = BlockingTransport::default();
    let push = encode(&SyncRequest {
        v: heartbridge_core::proto::PROTOCOL_VERSION,
        cursor: 0,
        push: vec![tampered, wrong_key, cross_team, foreign_id],
        max_bytes: 0,
        members_since: 0,
        roster_version: 0,
        roster: None,
    });
    t.sync(&a, push)
        .expect("the relay stores what it cannot read");
    // And a good change after them.
    devs[0].sync();

    let r = devs[1].sync();
    assert_eq!(r.refused, 4, "{r:?}");
    assert_eq!(
        devs[1].case(&id),
        devs[0].case(&id),
        "the good change did not apply"
    );
    let refused = devs[1].store.refused().expect("refused");
    assert_eq!(refused.len(), 4);
    assert!(refused.iter().all(
        |(_, doc_id, _, reason)| doc_id == &"09".repeat(16) && reason.starts_with("unopenable")
    ));
    assert!(devs[1]
        .store
        .load(&heartbridge_core::DocId::parse(&"09".repeat(16), "case").expect("id"))
        .expect("load")
        .is_none());
    assert_eq!(devs[1].store.sync_status().expect("status").refused, 4);
}

#[test]
fn unknown_and_revoked_tokens_get_distinct_errors() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["lead", "v"]);
    let mut t = devs[1].store.team().expect("t").expect("enrolled");
    t.token = heartbridge_core::proto::Secret::generate();
    match BlockingTransport::default().sync(
        &t,
        encode(&SyncRequest {
            v: heartbridge_core::proto::PROTOCOL_VERSION,
            cursor: 0,
            push: vec![],
            max_bytes: 0,
            members_since: 0,
            roster_version: 0,
            roster: None,
        }),
    ) {
        Err(TransportError::Relay {
            status: 401, kind, ..
        }) => assert_eq!(kind, "unknown_token"),
        other => panic!("expected 401 unknown_token, got {other:?}"),
    }
    let device = devs[1]
        .store
        .team()
        .expect("t")
        .expect("enrolled")
        .device_id;
    heartbridge_relay::revoke_device(&relay.db(), &device).expect("revoke");
    let err = devs[1]
        .sync_with(&mut BlockingTransport::default(), &SyncOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), "device_revoked");
    let err = heartbridge_client::explain(
        match BlockingTransport::default().sync(
            &devs[1].store.team().expect("t").expect("enrolled"),
            encode(&SyncRequest {
                v: heartbridge_core::proto::PROTOCOL_VERSION,
                cursor: 0,
                push: vec![],
                max_bytes: 0,
                members_since: 0,
                roster_version: 0,
                roster: None,
            }),
        ) {
            Err(e) => e,
            Ok(_) => panic!("a revoked device synced"),
        },
    );
    assert_eq!(err.kind(), "device_revoked", "{err}");
    assert!(err.to_string().contains("removed"), "{err}");
    // Nothing local was lost.
    let id = new_case(&mut devs[1].store);
    assert!(devs[1].store.case(&id).is_ok());
    devs[0].sync();
}

#[test]
fn joining_with_a_damaged_or_wrong_code_is_refused_clearly() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["lead"]);
    let code =
        heartbridge_client::invite(&mut devs[0].store, heartbridge_core::proto::Role::Volunteer)
            .expect("invite");
    let mut d = heartbridge_tests::Device::new("v");
    let typo = code.replacen('A', "B", 1);
    if typo != code {
        let e = heartbridge_client::join(&mut d.store, &typo).unwrap_err();
        assert_eq!(e.kind(), "invite", "{e}");
    }
    // Right token, wrong key: the relay's key check refuses and the invite stays usable.
    let mut inv = heartbridge_core::proto::Invite::decode(&code).expect("decode");
    inv.key = Some(TeamKey::generate());
    let e = heartbridge_client::join(&mut d.store, &inv.encode()).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    heartbridge_client::join(&mut d.store, &code).expect("the right code still works");
    let e = heartbridge_client::join(&mut heartbridge_tests::Device::new("w").store, &code)
        .unwrap_err();
    assert!(e.to_string().contains("already used"), "{e}");
}

#[test]
fn a_no_op_sync_is_one_small_request_whatever_the_number_of_documents() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    for _ in 0..50 {
        new_case(&mut devs[0].store);
    }
    sync_until_quiet(&mut devs, &[0, 1]);
    let r = devs[1].sync();
    assert_eq!(r.requests, 1);
    assert!(r.bytes_sent < 300 && r.bytes_received < 300, "{r:?}");
}

#[test]
fn a_lost_answer_is_retried_within_the_same_sync() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    let id = new_case(&mut devs[0].store);
    devs[0]
        .store
        .add_contact(&id, Channel::Hotline, "断线后自动重试", None)
        .expect("contact");
    let mut cut = LoseResponse {
        inner: BlockingTransport::default(),
        n: 1,
        calls: 0,
    };
    let report = devs[0]
        .sync_with(&mut cut, &SyncOptions::default())
        .expect("the sync carries on after one lost answer");
    assert_eq!(report.retried, 1);
    assert_eq!(report.pending, 0);
    // The retried push was deduplicated: one envelope for the case (the
    // grant of its key and the team's bookkeeping are envelopes of their own).
    assert_eq!(relay.envelope_count_of(&id), 1);
    devs[1].sync();
    assert_eq!(devs[1].case(&id).contacts.len(), 1);
}

/// A failure of the device itself (here: a stored document that no longer
/// loads) is not a refused envelope: the sync stops with the error, the
/// cursor stays before the envelope, and the next sync applies it.
#[test]
fn a_local_failure_stops_the_sync_without_moving_the_cursor() {
    let relay = Relay::start();
    let mut devs = team(&relay, &["a", "b"]);
    let id = new_case(&mut devs[0].store);
    devs[0].sync();
    devs[1].sync();
    devs[0]
        .store
        .add_contact(&id, Channel::Hotline, "第二次通话", Some(20))
        .expect("contact");
    devs[0].sync();

    let before = devs[1].store.sync_status().expect("status");
    let db = devs[1].store.path().to_owned();
    let sql = heartbridge_core::testing::open_raw(
        db.parent().expect("profile dir"),
        &heartbridge_core::testing::unlock(),
    )
    .expect("open b's database");
    let saved: Vec<u8> = sql
        .query_row(
            "SELECT snapshot FROM documents WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .expect("b holds the case");
    sql.execute(
        "UPDATE documents SET snapshot = x'00ff' WHERE id = ?1",
        [id.as_str()],
    )
    .expect("damage it");

    let err = devs[1]
        .sync_with(&mut BlockingTransport::default(), &SyncOptions::default())
        .expect_err("a document that does not load stops the sync");
    assert_eq!(err.kind(), "document");
    let after = devs[1].store.sync_status().expect("status");
    assert_eq!(
        after.cursor, before.cursor,
        "the cursor moved past the failure"
    );
    assert_eq!(after.refused, 0, "a local failure was counted as refused");
    assert_eq!(after.last_error_kind.as_deref(), Some("document"));

    sql.execute(
        "UPDATE documents SET snapshot = ?2 WHERE id = ?1",
        rusqlite::params![id.as_str(), saved],
    )
    .expect("repair it");
    devs[1].sync();
    assert_eq!(devs[1].case(&id).contacts.len(), 1);
}
