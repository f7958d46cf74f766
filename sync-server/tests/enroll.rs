//! Claim, invites, join, members and revocation, against a real relay.

mod common;

use common::{team_with_volunteers, Team, TestRelay};
use heartbridge_proto::{
    open_name, EnrollResponse, InviteRequest, InviteResponse, Role, Secret, TeamId, TeamKey,
};

const DAY: i64 = 24 * 3600;

#[tokio::test]
async fn team_create_claim_invite_join_with_each_role_rule() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "Winter venue");
    let lead = team.claim(&c, "Li Lead").await;

    // The lead invites every role.
    let supervisor = team
        .add(&c, &lead, Role::Supervisor, "Sun Supervisor")
        .await;
    let second_lead = team.add(&c, &lead, Role::Lead, "Zhou Lead").await;
    let volunteer = team.add(&c, &lead, Role::Volunteer, "Wang Volunteer").await;
    // A supervisor invites volunteers only.
    let volunteer2 = team
        .add(&c, &supervisor, Role::Volunteer, "Zhao Volunteer")
        .await;
    for role in [Role::Supervisor, Role::Lead] {
        c.invite(&supervisor.token, role, 0)
            .await
            .error(403, "forbidden");
    }
    // A volunteer invites nobody.
    for role in [Role::Volunteer, Role::Supervisor, Role::Lead] {
        c.invite(&volunteer.token, role, 0)
            .await
            .error(403, "forbidden");
    }

    // Members: everyone, with role and the sealed name only the team opens.
    let members = c.members(&volunteer2.token).await.members;
    assert_eq!(members.len(), 5);
    let expected = [
        (&lead, "Li Lead"),
        (&supervisor, "Sun Supervisor"),
        (&second_lead, "Zhou Lead"),
        (&volunteer, "Wang Volunteer"),
        (&volunteer2, "Zhao Volunteer"),
    ];
    for (device, name) in expected {
        let m = members
            .iter()
            .find(|m| m.device_id == device.id)
            .expect("listed");
        assert_eq!(m.role, device.role);
        assert!(!m.revoked);
        assert_eq!(m.last_sync_at, None);
        assert_eq!(
            open_name(&team.key, &team.id, &m.name_sealed).as_deref(),
            Some(name)
        );
        assert!(!m.name_sealed.contains(name));
    }

    // A device of another team sees only its own team.
    let other = Team::create(&relay, "Other");
    let other_lead = other.claim(&c, "Other lead").await;
    assert_eq!(c.members(&other_lead.token).await.members.len(), 1);
}

#[tokio::test]
async fn invite_ttl_defaults_to_a_day_and_is_capped_at_thirty() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (_team, lead, _) = team_with_volunteers(&relay, 0).await;
    let now = relay.now.load(std::sync::atomic::Ordering::SeqCst);
    let ttl = |a: common::Answer| a.json::<InviteResponse>().expires_at - now;
    assert_eq!(
        ttl(c.invite(&lead.token, Role::Volunteer, 0).await),
        DAY,
        "a request that says 0"
    );
    let unsaid = c
        .post_json(
            "/v1/invites",
            Some(&lead.token),
            &serde_json::json!({ "role": "volunteer" }),
        )
        .await;
    assert_eq!(ttl(unsaid), DAY, "a request that says no TTL");
    assert_eq!(
        ttl(c.invite(&lead.token, Role::Volunteer, 3600).await),
        3600
    );
    assert_eq!(
        ttl(c
            .invite(&lead.token, Role::Volunteer, 365 * DAY as u64)
            .await),
        30 * DAY
    );
}

#[tokio::test]
async fn the_lead_token_works_once_and_only_for_its_team() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "Hotline");
    let other = Team::create(&relay, "Other");

    // Another team's lead token, a random token, an unknown team, a bad id.
    let req = team.enroll_request(&other.lead_token, &team.key, "x");
    c.post_json("/v1/claim", None, &req)
        .await
        .error(401, "unknown_token");
    let req = team.enroll_request(&Secret::generate(), &team.key, "x");
    c.post_json("/v1/claim", None, &req)
        .await
        .error(401, "unknown_token");
    let mut req = team.enroll_request(&team.lead_token, &team.key, "x");
    req.team_id = TeamId::random().to_hex();
    c.post_json("/v1/claim", None, &req)
        .await
        .error(404, "unknown_team");
    req.team_id = "not-a-team".into();
    c.post_json("/v1/claim", None, &req)
        .await
        .error(400, "malformed");

    team.claim(&c, "Lead").await;
    let again = team.enroll_request(&team.lead_token, &team.key, "Thief");
    let e = c
        .post_json("/v1/claim", None, &again)
        .await
        .error(410, "invite_used");
    assert!(!e.message.contains(team.lead_token.expose()));
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_using_the_invite() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();

    let mistyped = TeamKey::generate();
    let req = team.enroll_request(&invite.token, &mistyped, "Wang");
    let e = c
        .post_json("/v1/join", None, &req)
        .await
        .error(409, "wrong_key");
    assert!(!e.message.contains(invite.token.expose()));
    assert_eq!(
        c.members(&lead.token).await.members.len(),
        1,
        "nobody joined"
    );

    // The same invite still works with the right key, once.
    let req = team.enroll_request(&invite.token, &team.key, "Wang");
    let a = c.post_json("/v1/join", None, &req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json::<EnrollResponse>().role, Role::Volunteer);
    c.post_json("/v1/join", None, &req)
        .await
        .error(410, "invite_used");
    // A used invite stays used even with a wrong key.
    let req = team.enroll_request(&invite.token, &mistyped, "Wang");
    c.post_json("/v1/join", None, &req)
        .await
        .error(410, "invite_used");
    assert_eq!(c.members(&lead.token).await.members.len(), 2);
}

#[tokio::test]
async fn an_expired_invite_is_refused() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 3600).await.json();
    relay.advance_clock(3600);
    let req = team.enroll_request(&invite.token, &team.key, "Late");
    c.post_json("/v1/join", None, &req)
        .await
        .error(410, "invite_expired");
}

#[tokio::test]
async fn unknown_tokens_get_401_everywhere() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, _lead, _) = team_with_volunteers(&relay, 0).await;
    let stranger = Secret::generate();

    // An invite token nobody made, or made for another team.
    let req = team.enroll_request(&stranger, &team.key, "x");
    c.post_json("/v1/join", None, &req)
        .await
        .error(401, "unknown_token");
    let (_other, other_lead, _) = team_with_volunteers(&relay, 0).await;
    let foreign: InviteResponse = c.invite(&other_lead.token, Role::Volunteer, 0).await.json();
    let req = team.enroll_request(&foreign.token, &team.key, "x");
    c.post_json("/v1/join", None, &req)
        .await
        .error(401, "unknown_token");

    // Bearer endpoints with no token, an unknown one, or a lead/invite token.
    for token in [
        None,
        Some(&stranger),
        Some(&team.lead_token),
        Some(&foreign.token),
    ] {
        let e = c
            .get("/v1/members", token)
            .await
            .error(401, "unknown_token");
        assert!(!e.message.contains(stranger.expose()));
        let invite = InviteRequest {
            role: Role::Volunteer,
            ttl_secs: 0,
            key_check: None,
        };
        c.post_json("/v1/invites", token, &invite)
            .await
            .error(401, "unknown_token");
        c.send("POST", "/v1/sync", token, None, vec![1, 0, 0, 0])
            .await
            .error(401, "unknown_token");
        c.get("/v1/roster", token).await.error(401, "unknown_token");
        c.send(
            "PUT",
            "/v1/roster",
            token,
            Some("application/octet-stream"),
            vec![1],
        )
        .await
        .error(401, "unknown_token");
    }
}

#[tokio::test]
async fn a_revoked_device_is_refused_at_once() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let (gone, stays) = (&vols[0], &vols[1]);
    assert_eq!(c.sync(&gone.token, 0, vec![], 0).await.cursor, 0);

    // Only the lead revokes, and not itself.
    c.revoke(&stays.token, &gone.id)
        .await
        .error(403, "forbidden");
    c.revoke(&lead.token, &lead.id)
        .await
        .error(403, "forbidden");
    c.revoke(&lead.token, "xyz").await.error(400, "malformed");
    c.revoke(&lead.token, &"00".repeat(16))
        .await
        .error(403, "forbidden");
    // Not a device of another team.
    let (_other, other_lead, other_vols) = team_with_volunteers(&relay, 1).await;
    c.revoke(&lead.token, &other_vols[0].id)
        .await
        .error(403, "forbidden");
    c.revoke(&other_lead.token, &gone.id)
        .await
        .error(403, "forbidden");

    let a = c.revoke(&lead.token, &gone.id).await;
    assert_eq!(a.status, 200);
    let cutoff: heartbridge_proto::RevokeResponse = a.json();
    let e = c
        .sync_raw(
            &gone.token,
            heartbridge_proto::encode(&common::request(0, vec![], 0)),
        )
        .await
        .error(403, "device_revoked");
    assert!(!e.message.contains(gone.token.expose()));
    c.get("/v1/members", Some(&gone.token))
        .await
        .error(403, "device_revoked");
    c.invite(&gone.token, Role::Volunteer, 0)
        .await
        .error(403, "device_revoked");
    // Revoking again is harmless and answers the same cut-off; the others
    // go on.
    let again = c.revoke(&lead.token, &gone.id).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json::<heartbridge_proto::RevokeResponse>(), cutoff);
    c.sync(
        &stays.token,
        0,
        vec![team.change(stays, common::doc(), b"x")],
        0,
    )
    .await;
    let members = c.members(&lead.token).await.members;
    let m = members
        .iter()
        .find(|m| m.device_id == gone.id)
        .expect("still listed");
    assert!(m.revoked);
    assert!(m.last_sync_at.is_some());
    let m = members
        .iter()
        .find(|m| m.device_id == stays.id)
        .expect("listed");
    assert!(!m.revoked);

    // The operator's command takes effect on the running relay at once.
    heartbridge_relay::revoke_device(&relay.db, &stays.id).expect("operator revoke");
    c.get("/v1/members", Some(&stays.token))
        .await
        .error(403, "device_revoked");
    assert!(matches!(
        heartbridge_relay::revoke_device(&relay.db, &"11".repeat(16)),
        Err(heartbridge_relay::RelayError::UnknownDevice(_))
    ));
}

#[tokio::test]
async fn malformed_enrollment_bodies_are_400_and_change_nothing() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "Hotline");
    let token = team.lead_token.expose().to_owned();
    for body in [
        b"not json".to_vec(),
        br#"{"team_id": 5}"#.to_vec(),
        format!(r#"{{"team_id":"{}","token":"{token}"}}"#, team.id).into_bytes(),
        format!(
            r#"{{"team_id":"{}","token":"{token}","key_check":"zz","name_sealed":""}}"#,
            team.id
        )
        .into_bytes(),
    ] {
        let a = c
            .send("POST", "/v1/claim", None, Some("application/json"), body)
            .await;
        let e = a.error(400, "malformed");
        assert!(!e.message.contains(&token), "{}", e.message);
    }
    // The lead token is still unused.
    team.claim(&c, "Lead").await;
}

/// A fresh enrollment id, as a device makes and stores before it sends.
fn enrollment_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[tokio::test]
async fn a_join_whose_answer_was_lost_is_retried_to_the_same_device() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Supervisor, 0).await.json();
    let mut req = team.enroll_request(&invite.token, &team.key, "Sun");
    req.enrollment_id = Some(enrollment_id());

    // The first answer is lost on the way: the device never sees its token.
    let lost = c.post_json("/v1/join", None, &req).await;
    assert_eq!(lost.status, 200);
    let lost: EnrollResponse = lost.json();

    // The device sends the same request again, ids in upper case this time.
    let mut again = req.clone();
    again.enrollment_id = req.enrollment_id.as_deref().map(str::to_uppercase);
    let a = c.post_json("/v1/join", None, &again).await;
    assert_eq!(a.status, 200, "{:?}", String::from_utf8_lossy(&a.body));
    let retried: EnrollResponse = a.json();
    assert_eq!(retried.device_id, lost.device_id);
    assert_eq!(retried.role, Role::Supervisor);
    assert_ne!(retried.device_token.expose(), lost.device_token.expose());

    // The lost token is dead; the new one works; one device, not two.
    c.get("/v1/members", Some(&lost.device_token))
        .await
        .error(401, "unknown_token");
    let members = c.members(&retried.device_token).await.members;
    assert_eq!(members.len(), 2, "the lead and one supervisor");
    let m = members
        .iter()
        .find(|m| m.device_id == retried.device_id)
        .expect("listed");
    assert_eq!(
        open_name(&team.key, &team.id, &m.name_sealed).as_deref(),
        Some("Sun")
    );
    c.sync(&retried.device_token, 0, vec![], 0).await;

    // The invite stays used for anyone else: another enrollment id, none,
    // or the same id with another key.
    let mut other = req.clone();
    other.enrollment_id = Some(enrollment_id());
    c.post_json("/v1/join", None, &other)
        .await
        .error(410, "invite_used");
    let mut none = req.clone();
    none.enrollment_id = None;
    c.post_json("/v1/join", None, &none)
        .await
        .error(410, "invite_used");
    let mut wrong_key = team.enroll_request(&invite.token, &TeamKey::generate(), "Sun");
    wrong_key.enrollment_id = req.enrollment_id.clone();
    c.post_json("/v1/join", None, &wrong_key)
        .await
        .error(410, "invite_used");
    assert_eq!(c.members(&lead.token).await.members.len(), 2);
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_retried_to_the_same_lead() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "Hotline");
    let mut req = team.enroll_request(&team.lead_token, &team.key, "Li Lead");
    req.enrollment_id = Some(enrollment_id());
    let lost: EnrollResponse = c.post_json("/v1/claim", None, &req).await.json();
    let a = c.post_json("/v1/claim", None, &req).await;
    assert_eq!(a.status, 200, "{:?}", String::from_utf8_lossy(&a.body));
    let retried: EnrollResponse = a.json();
    assert_eq!(retried.device_id, lost.device_id);
    assert_eq!(retried.role, Role::Lead);
    c.get("/v1/members", Some(&lost.device_token))
        .await
        .error(401, "unknown_token");
    assert_eq!(c.members(&retried.device_token).await.members.len(), 1);
    // The retried lead can invite (it is the lead, with the team's key).
    let invite = c.invite(&retried.device_token, Role::Volunteer, 0).await;
    assert_eq!(invite.status, 200);

    // The lead token stays used for another enrollment, or another key.
    let mut thief = team.enroll_request(&team.lead_token, &TeamKey::generate(), "Thief");
    thief.enrollment_id = Some(enrollment_id());
    c.post_json("/v1/claim", None, &thief)
        .await
        .error(410, "invite_used");
    thief.enrollment_id = req.enrollment_id.clone();
    c.post_json("/v1/claim", None, &thief)
        .await
        .error(410, "invite_used");
    assert_eq!(c.members(&retried.device_token).await.members.len(), 1);
}

#[tokio::test]
async fn a_retry_after_the_device_was_revoked_is_refused() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();
    let mut req = team.enroll_request(&invite.token, &team.key, "Wang");
    req.enrollment_id = Some(enrollment_id());
    let joined: EnrollResponse = c.post_json("/v1/join", None, &req).await.json();
    assert_eq!(c.revoke(&lead.token, &joined.device_id).await.status, 200);

    let e = c
        .post_json("/v1/join", None, &req)
        .await
        .error(403, "device_revoked");
    assert!(!e.message.contains(invite.token.expose()));
    // Nothing came back to life: the old token is still refused as revoked.
    c.get("/v1/members", Some(&joined.device_token))
        .await
        .error(403, "device_revoked");
    let members = c.members(&lead.token).await.members;
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .find(|m| m.device_id == joined.device_id)
        .is_some_and(|m| m.revoked));
}

#[tokio::test]
async fn a_malformed_enrollment_id_is_refused_without_using_the_invite() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let invite: InviteResponse = c.invite(&lead.token, Role::Volunteer, 0).await.json();
    let mut req = team.enroll_request(&invite.token, &team.key, "Wang");
    for bad in ["", "1234", "not hex at all, but thirty-two!!"] {
        req.enrollment_id = Some(bad.into());
        c.post_json("/v1/join", None, &req)
            .await
            .error(400, "malformed");
    }
    req.enrollment_id = Some(enrollment_id());
    assert_eq!(c.post_json("/v1/join", None, &req).await.status, 200);
}
