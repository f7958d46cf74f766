//! What the relay enforces now that devices have keys, against a real relay
//! on loopback: every pushed envelope signed by the pushing device's
//! registered key, `covers` only from a lead or supervisor, the lead-signed
//! roster, member keys as a delta by seq, and revocation.

mod common;

use common::{doc, request, team_with_volunteers, EnrolledDevice, Team, TestRelay};
use heartbridge_proto::identity::{join_proof, Revocation, RosterMember};
use heartbridge_proto::{
    encode, DeviceSecret, EnrollRequest, Envelope, InviteResponse, RevokeResponse, Role, Roster,
    SignedRoster, SyncRequest, TeamId,
};

/// A roster of `team` at `version` and `epoch`, signed by `signer`, with
/// the lead as its one member and `revoked` listed.
fn roster(
    team: &Team,
    lead: &EnrolledDevice,
    signer: &DeviceSecret,
    version: u64,
    epoch: u32,
    revoked: Vec<Revocation>,
) -> Vec<u8> {
    let r = Roster {
        team: team.id.0,
        version,
        epoch,
        members: vec![RosterMember {
            device: lead.device_id(),
            role: Role::Lead,
            public: lead.secret.public(),
            added_at: 0,
        }],
        revoked,
        keys: vec![],
        key_checks: vec![],
    };
    SignedRoster::sign(&r, signer).to_bytes()
}

/// A sync uploading `roster` with `push`.
fn upload(roster: Vec<u8>, push: Vec<Envelope>) -> Vec<u8> {
    encode(&SyncRequest {
        roster: Some(roster),
        ..request(0, push, 0)
    })
}

#[tokio::test]
async fn a_push_signed_with_the_wrong_key_is_refused_and_stores_nothing() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 1).await;
    let me = &vols[0];
    let good = team.change(me, doc(), b"fine");
    // Signed as this device, but with a key that is not the one it enrolled.
    let mut forged = team.seal_change(doc(), b"forged");
    forged.sign(&team.id, me.device_id(), &DeviceSecret::generate());
    // Signed right, then altered on the way (covers, ciphertext), or signed
    // for another team.
    let mut altered = team.change(me, doc(), b"altered");
    altered.ciphertext[0] ^= 1;
    let mut recovered = team.change(me, doc(), b"covers added later");
    recovered.covers = 1;
    let mut other_team = team.seal_change(doc(), b"other team");
    other_team.sign(&TeamId::random(), me.device_id(), &me.secret);
    for bad in [forged, altered, recovered, other_team] {
        let id = bad.id.to_hex();
        let e = c
            .sync_raw(&me.token, encode(&request(0, vec![good.clone(), bad], 0)))
            .await
            .error(403, "bad_signature");
        assert!(e.message.contains(&id), "{}", e.message);
        assert!(e.message.contains("nothing of this push was stored"));
    }
    assert_eq!(relay.stored_envelopes(), 0, "not even the good one");
    assert_eq!(c.sync(&me.token, 0, vec![good], 0).await.acked.len(), 1);
    assert_eq!(relay.stored_envelopes(), 1);
}

#[tokio::test]
async fn a_push_whose_author_is_another_device_is_refused() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, vols) = team_with_volunteers(&relay, 2).await;
    let (a, b) = (&vols[0], &vols[1]);
    // A's signature, but naming B as the author: refused alone (a carried
    // envelope is checked under its author's key), nothing stored.
    let mut named_b = team.seal_change(doc(), b"A pretending to be B");
    named_b.sign(&team.id, b.device_id(), &a.secret);
    let answer = c.sync(&a.token, 0, vec![named_b.clone()], 0).await;
    assert!(answer.acked.is_empty());
    assert_eq!(answer.refused.len(), 1);
    assert_eq!(
        (answer.refused[0].id, answer.refused[0].reason.as_str()),
        (named_b.id, "bad_signature")
    );
    assert_eq!(relay.stored_envelopes(), 0);
    // B's own, properly signed envelope, carried by A: stored under B.
    let bs = team.change(b, doc(), b"written by B");
    let answer = c.sync(&a.token, 0, vec![bs.clone()], 0).await;
    assert!(answer.refused.is_empty());
    assert_eq!(relay.stored_envelopes(), 1);
    // B pushing it itself is a duplicate.
    c.sync(&b.token, 0, vec![bs], 0).await;
    assert_eq!(relay.stored_envelopes(), 1);
}

#[tokio::test]
async fn a_bearer_token_alone_can_write_nothing() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let me = &vols[0];
    // Unsigned: no author, no signature.
    let unsigned = team.seal_change(doc(), b"unsigned");
    // The right author, no signature.
    let mut no_sig = team.seal_change(doc(), b"no signature");
    no_sig.author = me.device_id();
    // A snapshot meant to make the relay drop a document's history.
    let mut wipe = team.seal_change(doc(), b"wipe");
    wipe.kind = heartbridge_proto::EnvelopeKind::Snapshot;
    wipe.covers = u64::MAX;
    wipe.author = lead.device_id();
    // The pusher's own: the whole push is refused.
    for (token, bad) in [(&me.token, no_sig), (&lead.token, wipe)] {
        c.sync_raw(token, encode(&request(0, vec![bad], 0)))
            .await
            .error(403, "bad_signature");
    }
    // No author (or another's, unsigned): refused alone, as a carried
    // envelope no member signed.
    for token in [&me.token, &lead.token] {
        let answer = c.sync(token, 0, vec![unsigned.clone()], 0).await;
        assert!(answer.acked.is_empty());
        assert_eq!(answer.refused.len(), 1);
    }
    let mut lead_unsigned = team.seal_change(doc(), b"the lead's, unsigned");
    lead_unsigned.author = lead.device_id();
    let answer = c.sync(&me.token, 0, vec![lead_unsigned], 0).await;
    assert_eq!(answer.refused[0].reason, "bad_signature");
    assert_eq!(relay.stored_envelopes(), 0);
    assert_eq!(relay.superseded_envelopes(), 0);
    // The token still reads: a pull-only sync is fine.
    assert!(c.sync(&me.token, 0, vec![], 0).await.pull.is_empty());
}

#[tokio::test]
async fn covers_from_a_volunteer_is_refused_from_a_supervisor_or_lead_accepted() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let vol = &vols[0];
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    let x = doc();
    let changes = c
        .sync(
            &vol.token,
            0,
            (0..3)
                .map(|i| team.change(vol, x, format!("x{i}").as_bytes()))
                .collect(),
            0,
        )
        .await
        .acked;
    let covers = changes[2].seq;

    // A volunteer's snapshot with covers: refused whole, saying why.
    let snap = team.snapshot(vol, x, b"x0 x1 x2", covers);
    let e = c
        .sync_raw(
            &vol.token,
            encode(&request(
                0,
                vec![team.change(vol, x, b"x3"), snap.clone()],
                0,
            )),
        )
        .await
        .error(403, "forbidden");
    assert!(e.message.contains(&snap.id.to_hex()), "{}", e.message);
    assert!(e.message.contains("covers"), "{}", e.message);
    assert!(e.message.contains("lead or supervisor"), "{}", e.message);
    assert_eq!(relay.stored_envelopes(), 3, "x3 was not stored either");
    assert_eq!(relay.superseded_envelopes(), 0);
    // Its snapshot without covers supersedes nothing, and is accepted.
    c.sync(&vol.token, 0, vec![team.snapshot(vol, x, b"whole x", 0)], 0)
        .await;
    assert_eq!(relay.stored_envelopes(), 4);

    // A supervisor's compacts; so does the lead's.
    let by_sup = team.snapshot(&sup, x, b"x0 x1 x2 by the supervisor", covers);
    c.sync(&sup.token, 0, vec![by_sup], 0).await;
    assert_eq!(relay.superseded_envelopes(), 3);
    let last = c
        .sync(&vol.token, 0, vec![team.change(vol, x, b"x4")], 0)
        .await
        .acked[0]
        .seq;
    let by_lead = team.snapshot(&lead, x, b"all of x by the lead", last);
    c.sync(&lead.token, 0, vec![by_lead.clone()], 0).await;
    assert_eq!(relay.superseded_envelopes(), 6);
    let (pages, _) = c.pull_all(&vol.token, 0, 0).await;
    let pulled: Vec<&Envelope> = pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|p| &p.envelope))
        .collect();
    assert_eq!(pulled, vec![&by_lead], "only the lead's snapshot is served");
    assert!(by_lead.verify(&team.id, &lead.secret.public().sign));
}

#[tokio::test]
async fn members_arrive_as_a_delta_by_seq_with_their_keys() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let first = c.sync(&lead.token, 0, vec![], 0).await.members;
    assert_eq!(
        first.iter().map(|m| m.device).collect::<Vec<_>>(),
        vec![lead.device_id(), vols[0].device_id()]
    );
    assert!(first[0].seq < first[1].seq);
    let v = &first[1];
    let public = vols[0].secret.public();
    assert_eq!(
        (v.role, v.public, v.epoch, v.revoked),
        (Role::Volunteer, public, 1, false)
    );
    assert_eq!(
        v.proof,
        join_proof(&team.key, &team.id, &public, Role::Volunteer)
    );
    assert_eq!(first[0].role, Role::Lead);

    let since = |n| SyncRequest {
        members_since: n,
        ..request(0, vec![], 0)
    };
    let seen = first[1].seq;
    assert!(c
        .sync_with(&lead.token, since(seen))
        .await
        .members
        .is_empty());
    // A new device, then a revocation: each one entry, in seq order.
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    c.revoke(&lead.token, &vols[0].id).await;
    let delta = c.sync_with(&lead.token, since(seen)).await.members;
    assert_eq!(
        delta
            .iter()
            .map(|m| (m.device, m.revoked))
            .collect::<Vec<_>>(),
        vec![(sup.device_id(), false), (vols[0].device_id(), true)]
    );
    assert!(seen < delta[0].seq && delta[0].seq < delta[1].seq);
    assert_eq!(delta[1].public, public, "a revoked entry keeps its keys");
    let newest = delta[1].seq;
    assert!(c
        .sync_with(&sup.token, since(newest))
        .await
        .members
        .is_empty());
    // Every member, from 0, is one entry each at its latest seq.
    let all = c.sync_with(&sup.token, since(0)).await.members;
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all.last().map(|m| m.seq), Some(newest));
}

#[tokio::test]
async fn malformed_keys_in_an_enrollment_are_400_and_enroll_nobody() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();
    let good = team.enroll_request(&invite.token, &team.key, "Wang");
    let bad: Vec<EnrollRequest> = vec![
        EnrollRequest {
            sign_pk: "ab".into(),
            ..good.clone()
        },
        EnrollRequest {
            kx_pk: "not hex at all, not hex at all, not hex at all, not hex at all!".into(),
            ..good.clone()
        },
        EnrollRequest {
            proof: "cd".repeat(33),
            ..good.clone()
        },
    ];
    for req in bad {
        c.post_json("/v1/join", None, &req)
            .await
            .error(400, "malformed");
    }
    assert_eq!(c.members(&lead.token).await.members.len(), 1);
    assert_eq!(c.post_json("/v1/join", None, &good).await.status, 200);
}

#[tokio::test]
async fn revoke_answers_the_cutoff_and_leaves_the_device_only_the_roster() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let stays = &vols[0];
    let gone = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    // The supervisor invited someone before it was revoked.
    let its_invite: InviteResponse = c.invite(&gone.token, Role::Volunteer, 0).await.json();
    c.sync(
        &gone.token,
        0,
        vec![team.change(&gone, doc(), b"before")],
        0,
    )
    .await;
    let last = c
        .sync(&stays.token, 0, vec![team.change(stays, doc(), b"last")], 0)
        .await
        .acked[0]
        .seq;
    c.roster(&gone.token).await.error(404, "not_found");

    let a = c.revoke(&lead.token, &gone.id).await;
    assert_eq!(a.status, 200);
    let RevokeResponse { cutoff_seq } = a.json();
    assert_eq!(cutoff_seq, last, "the team's last envelope seq");

    // Not retryable, on every endpoint but the roster.
    let e = c
        .sync_raw(&gone.token, encode(&request(0, vec![], 0)))
        .await
        .error(403, "device_revoked");
    assert!(e.message.contains("do not retry"), "{}", e.message);
    let push = encode(&request(0, vec![team.change(&gone, doc(), b"after")], 0));
    c.sync_raw(&gone.token, push)
        .await
        .error(403, "device_revoked");
    c.get("/v1/members", Some(&gone.token))
        .await
        .error(403, "device_revoked");
    c.invite(&gone.token, Role::Volunteer, 0)
        .await
        .error(403, "device_revoked");
    assert_eq!(relay.stored_envelopes(), 2, "nothing after the cut-off");
    // Its invite stopped working.
    let req = team.enroll_request(&its_invite.token, &team.key, "Late");
    c.post_json("/v1/join", None, &req)
        .await
        .error(401, "unknown_token");

    // The lead signs a roster recording the revocation; the revoked device
    // reads it (the record that tells it to wipe itself).
    let record = roster(
        &team,
        &lead,
        &lead.secret,
        1,
        2,
        vec![Revocation {
            device: gone.device_id(),
            at: 0,
            epoch: 2,
            cutoff_seq,
        }],
    );
    let stored = c
        .sync_raw(&lead.token, upload(record.clone(), vec![]))
        .await;
    assert_eq!(stored.status, 200);
    let a = c.roster(&gone.token).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(a.body.as_ref(), &record[..]);
    let read = SignedRoster::from_bytes(&a.body)
        .expect("decodes")
        .verify(&lead.secret.public().sign, &team.id)
        .expect("signed by the lead");
    assert_eq!(read.revoked[0].device, gone.device_id());
    assert_eq!(read.revoked[0].cutoff_seq, cutoff_seq);
    // Others read it too; a stranger does not.
    assert_eq!(c.roster(&stays.token).await.status, 200);
    c.roster(&heartbridge_proto::Secret::generate())
        .await
        .error(401, "unknown_token");
}

#[tokio::test]
async fn the_operators_revoke_command_revokes_the_same_way() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    let its_invite: InviteResponse = c.invite(&sup.token, Role::Volunteer, 0).await.json();
    let seq = c
        .sync(&sup.token, 0, vec![team.change(&sup, doc(), b"x")], 0)
        .await
        .acked[0]
        .seq;
    let before = c.sync(&lead.token, 0, vec![], 0).await.members;
    let cutoff = heartbridge_relay::revoke_device(&relay.db, &sup.id).expect("revoke");
    assert_eq!(cutoff, seq);
    assert_eq!(
        heartbridge_relay::revoke_device(&relay.db, &sup.id).expect("again"),
        cutoff,
        "idempotent"
    );
    c.sync_raw(&sup.token, encode(&request(0, vec![], 0)))
        .await
        .error(403, "device_revoked");
    c.roster(&sup.token).await.error(404, "not_found");
    let req = team.enroll_request(&its_invite.token, &team.key, "Late");
    c.post_json("/v1/join", None, &req)
        .await
        .error(401, "unknown_token");
    let after = c
        .sync_with(
            &lead.token,
            SyncRequest {
                members_since: before.last().expect("members").seq,
                ..request(0, vec![], 0)
            },
        )
        .await
        .members;
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].device, after[0].revoked), (sup.device_id(), true));
}

#[tokio::test]
async fn roster_uploads_from_the_lead_only_signed_and_newer() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let vol = &vols[0];
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    // A second device with the lead role is not the team's lead device.
    let co_lead = team.add(&c, &lead, Role::Lead, "Co-lead").await;
    let v1 = roster(&team, &lead, &lead.secret, 1, 1, vec![]);
    let x = team.change(&lead, doc(), b"with the roster");
    let refused = |a: common::Answer, status| {
        let e = a.error(status, "bad_roster");
        assert!(e.message.contains("nothing of this sync was applied"));
    };

    // Not the lead's device (even with the lead's own signed bytes).
    for other in [vol, &sup, &co_lead] {
        let push = vec![team.change(other, doc(), b"pushed along")];
        refused(
            c.sync_raw(&other.token, upload(v1.clone(), push)).await,
            403,
        );
    }
    // Not signed by the lead, for another team, or not a roster at all.
    let forged = roster(&team, &lead, &sup.secret, 1, 1, vec![]);
    let other_team = Team {
        id: TeamId::random(),
        key: team.key.clone(),
        lead_token: team.lead_token.clone(),
    };
    let foreign = roster(&other_team, &lead, &lead.secret, 1, 1, vec![]);
    for bad in [forged, foreign, b"not a roster".to_vec()] {
        refused(
            c.sync_raw(&lead.token, upload(bad, vec![x.clone()])).await,
            400,
        );
    }
    assert_eq!(
        relay.stored_envelopes(),
        0,
        "nothing of those syncs applied"
    );
    c.roster(&vol.token).await.error(404, "not_found");

    // The lead's v1, with a push: both stored. Not sent back to the lead.
    let r = c
        .sync_with(
            &lead.token,
            SyncRequest {
                roster: Some(v1.clone()),
                ..request(0, vec![x.clone()], 0)
            },
        )
        .await;
    assert_eq!(r.acked.len(), 1);
    assert_eq!(r.roster, None);
    // An identical re-upload (a retry) is fine.
    c.sync_with(
        &lead.token,
        SyncRequest {
            roster: Some(v1.clone()),
            ..request(0, vec![x], 0)
        },
    )
    .await;

    // Served to another device once per version.
    let with_version = |v| SyncRequest {
        roster_version: v,
        ..request(0, vec![], 0)
    };
    let got = c.sync_with(&vol.token, with_version(0)).await.roster;
    assert_eq!(got.as_deref(), Some(&v1[..]));
    assert_eq!(c.sync_with(&vol.token, with_version(1)).await.roster, None);

    // Older, or other bytes at the same version: 409, nothing applied.
    let v2 = roster(&team, &lead, &lead.secret, 2, 2, vec![]);
    let y = team.change(&lead, doc(), b"second push");
    c.sync_with(
        &lead.token,
        SyncRequest {
            roster: Some(v2.clone()),
            ..request(0, vec![], 0)
        },
    )
    .await;
    let v2_other = roster(&team, &lead, &lead.secret, 2, 3, vec![]);
    for stale in [v1.clone(), v2_other] {
        refused(
            c.sync_raw(&lead.token, upload(stale, vec![y.clone()]))
                .await,
            409,
        );
    }
    assert_eq!(relay.stored_envelopes(), 1);
    assert_eq!(c.roster(&vol.token).await.body.as_ref(), &v2[..]);
    let got = c.sync_with(&vol.token, with_version(1)).await.roster;
    assert_eq!(got.as_deref(), Some(&v2[..]));
    assert_eq!(c.sync_with(&vol.token, with_version(2)).await.roster, None);

    // v2 is at key epoch 2: envelopes under it are accepted now, under 3
    // not yet.
    let sealed = |epoch| {
        let e = Envelope::seal_part(
            &team.key,
            epoch,
            &team.id,
            doc(),
            heartbridge_proto::EnvelopeKind::Change,
            heartbridge_proto::DocKindTag::Case,
            None,
            b"under a new epoch",
        )
        .expect("seal");
        vol.sign(&team, e)
    };
    c.sync(&vol.token, 0, vec![sealed(2)], 0).await;
    c.sync_raw(&vol.token, encode(&request(0, vec![sealed(3)], 0)))
        .await
        .error(400, "malformed");
    assert_eq!(relay.stored_envelopes(), 2);
}

#[tokio::test]
async fn put_roster_takes_the_same_rules() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let put = |token, bytes: Vec<u8>, ct| {
        let token: &heartbridge_proto::Secret = token;
        c.send("PUT", "/v1/roster", Some(token), Some(ct), bytes)
    };
    let v1 = roster(&team, &lead, &lead.secret, 1, 1, vec![]);
    put(&vols[0].token, v1.clone(), "application/octet-stream")
        .await
        .error(403, "bad_roster");
    put(&lead.token, v1.clone(), "application/json")
        .await
        .error(415, "unsupported_media_type");
    let forged = roster(&team, &lead, &vols[0].secret, 1, 1, vec![]);
    put(&lead.token, forged, "application/octet-stream")
        .await
        .error(400, "bad_roster");
    assert_eq!(
        put(&lead.token, v1.clone(), "application/octet-stream")
            .await
            .status,
        204
    );
    assert_eq!(
        put(&lead.token, v1.clone(), "application/octet-stream")
            .await
            .status,
        204,
        "a retry"
    );
    assert_eq!(c.roster(&vols[0].token).await.body.as_ref(), &v1[..]);
    let v0 = roster(&team, &lead, &lead.secret, 0, 1, vec![]);
    put(&lead.token, v0, "application/octet-stream")
        .await
        .error(409, "bad_roster");
}
