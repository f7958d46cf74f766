//! Enrollment and team administration: claim, join, invites, members,
//! revocation. JSON bodies.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use heartbridge_proto::{
    EnrollRequest, EnrollResponse, InviteRequest, InviteResponse, MembersResponse, RevokeResponse,
    Role, Secret, TeamId,
};

use super::{read_json, AnyCaller, Caller, NoteSlot, Relay};
use crate::error::ApiError;
use crate::storage::{Device, DeviceId, DeviceKeys, Enrollment, NewInvite, Storage};

/// An invite's lifetime when the request says 0 (does not say).
const DEFAULT_INVITE_TTL: u64 = 24 * 3600;
/// The longest an invite lives.
const MAX_INVITE_TTL: u64 = 30 * 24 * 3600;
const MAX_KEY_CHECK: usize = 128;
const MAX_NAME_SEALED: usize = 4096;

/// Checks an enrollment request and makes the new device's credentials.
fn enrollment(req: EnrollRequest, now: i64) -> Result<(Enrollment, Secret), ApiError> {
    let team = TeamId::from_hex(&req.team_id)
        .ok_or_else(|| ApiError::Malformed("team_id must be 32 hex digits".into()))?;
    if req.token.expose().is_empty() {
        return Err(ApiError::UnknownToken);
    }
    let key_check = req.key_check.trim();
    if key_check.is_empty()
        || key_check.len() > MAX_KEY_CHECK
        || !key_check.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::Malformed(
            "key_check must be the hex key check value of the team key".into(),
        ));
    }
    if req.name_sealed.len() > MAX_NAME_SEALED {
        return Err(ApiError::Malformed(format!(
            "name_sealed is longer than {MAX_NAME_SEALED} characters"
        )));
    }
    let enrollment_id = match req.enrollment_id.as_deref().map(str::trim) {
        None => None,
        Some(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(id.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(ApiError::Malformed(
                "enrollment_id must be 32 hex digits".into(),
            ))
        }
    };
    let key = |field: &'static str, v: &str| -> Result<[u8; 32], ApiError> {
        hex::decode(v.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ApiError::Malformed(format!("{field} must be 64 hex digits")))
    };
    let keys = DeviceKeys {
        sign_pk: key("sign_pk", &req.sign_pk)?,
        kx_pk: key("kx_pk", &req.kx_pk)?,
        epoch: req.epoch,
        proof: key("proof", &req.proof)?,
    };
    if keys.epoch == 0 {
        return Err(ApiError::Malformed("epoch must be at least 1".into()));
    }
    let device_token = Secret::generate();
    let enrollment = Enrollment {
        team,
        // A lead token is printed as `TEAMID.SECRET`; the secret part is
        // what was hashed (base64url secrets never contain a dot).
        token_hash: match req.token.expose().rsplit_once('.') {
            Some((_, secret)) => Secret::from_string(secret.to_owned()).hash(),
            None => req.token.hash(),
        },
        key_check: key_check.to_ascii_lowercase(),
        name_sealed: req.name_sealed,
        enrollment_id,
        device: DeviceId::random(),
        device_token_hash: device_token.hash(),
        keys,
        now,
    };
    Ok((enrollment, device_token))
}

async fn enroll(
    relay: &Relay,
    note: &NoteSlot,
    headers: &HeaderMap,
    body: Body,
    redeem: fn(&dyn Storage, &Enrollment) -> Result<Device, crate::error::StoreError>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let req: EnrollRequest = read_json(relay, headers, body).await?;
    let (enrollment, device_token) = enrollment(req, relay.clock.now())?;
    note.update(|n| n.team = Some(enrollment.team));
    relay.limits.enrollment(&enrollment.token_hash)?;
    let device = relay.run(move |s| redeem(s, &enrollment)).await?;
    note.update(|n| n.device = Some(device.id));
    Ok(Json(EnrollResponse {
        device_id: device.id.to_hex(),
        device_token,
        role: device.role,
    }))
}

/// `POST /v1/claim`: the lead redeems the team's one-time lead token.
pub(super) async fn claim(
    State(relay): State<Arc<Relay>>,
    note: NoteSlot,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    enroll(&relay, &note, &headers, body, |s, e| s.claim(e)).await
}

/// `POST /v1/join`: a device redeems an invite.
pub(super) async fn join(
    State(relay): State<Arc<Relay>>,
    note: NoteSlot,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    enroll(&relay, &note, &headers, body, |s, e| s.join(e)).await
}

/// Whether a device of `inviter` role may invite one of `invited` role.
pub(crate) fn may_invite(inviter: Role, invited: Role) -> bool {
    match inviter {
        Role::Lead => true,
        Role::Supervisor => invited == Role::Volunteer,
        // A venue relay carries envelopes; it enrolls nobody.
        Role::Volunteer | Role::Relay => false,
    }
}

/// `POST /v1/invites`: a lead or supervisor makes a one-time invite.
pub(super) async fn invite(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<InviteResponse>, ApiError> {
    let req: InviteRequest = read_json(&relay, &headers, body).await?;
    if !may_invite(device.role, req.role) {
        return Err(ApiError::Forbidden(match device.role {
            Role::Supervisor => "a supervisor may invite volunteers only",
            _ => "only a lead or a supervisor may invite",
        }));
    }
    let ttl = match req.ttl_secs {
        0 => DEFAULT_INVITE_TTL,
        t => t.min(MAX_INVITE_TTL),
    };
    let now = relay.clock.now();
    let expires_at = now.saturating_add(ttl as i64);
    let token = Secret::generate();
    let invite = NewInvite {
        team: device.team,
        role: req.role,
        token_hash: token.hash(),
        created_by: device.id,
        created_at: now,
        expires_at,
        key_check: match req.key_check.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) if c.len() <= MAX_KEY_CHECK && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(c.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(ApiError::Malformed(
                    "key_check must be the hex key check value of the code's key".into(),
                ))
            }
        },
    };
    relay.run(move |s| s.create_invite(&invite)).await?;
    Ok(Json(InviteResponse { token, expires_at }))
}

/// `GET /v1/members`: every device of the caller's team.
pub(super) async fn members(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
) -> Result<Json<MembersResponse>, ApiError> {
    let team = device.team;
    let members = relay.run(move |s| s.members(team)).await?;
    Ok(Json(MembersResponse { members }))
}

/// `GET /v1/roster`: the team's signed roster, opaque bytes, for any device
/// of the team, revoked ones too (a revoked device reads there that it was
/// revoked). 404 `not_found` while the lead has uploaded none.
pub(super) async fn roster(
    State(relay): State<Arc<Relay>>,
    AnyCaller(device): AnyCaller,
) -> Result<Response, ApiError> {
    let team = device.team;
    let roster = relay
        .run(move |s| s.roster(team))
        .await?
        .ok_or(ApiError::NotFoundWhy(
            "the team lead has not uploaded a roster yet",
        ))?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], roster).into_response())
}

/// `POST /v1/devices/{device_id}/revoke`: the lead revokes a device of its
/// team; answers the cut-off ([`RevokeResponse`]).
pub(super) async fn revoke(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    target: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let target = target
        .ok()
        .and_then(|Path(t)| DeviceId::from_hex(&t))
        .ok_or_else(|| ApiError::Malformed("the device id must be 32 hex digits".into()))?;
    if device.role != Role::Lead {
        return Err(ApiError::Forbidden("only the team lead may revoke devices"));
    }
    if target == device.id {
        return Err(ApiError::Forbidden("a lead cannot revoke its own device"));
    }
    let (team, now) = (device.team, relay.clock.now());
    let cutoff_seq = relay
        .run(move |s| s.revoke(Some(team), target, now))
        .await?;
    tracing::info!(team = %team, device = %target, cutoff_seq, "device revoked");
    Ok(Json(RevokeResponse { cutoff_seq }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_rules() {
        use Role::*;
        for r in [Volunteer, Supervisor, Lead] {
            assert!(may_invite(Lead, r));
            assert!(!may_invite(Volunteer, r));
        }
        assert!(may_invite(Supervisor, Volunteer));
        assert!(may_invite(Lead, Relay));
        assert!(!may_invite(Supervisor, Relay));
        assert!(!may_invite(Relay, Volunteer));
        assert!(!may_invite(Supervisor, Supervisor));
        assert!(!may_invite(Supervisor, Lead));
    }

    #[test]
    fn enrollment_checks_ids_and_never_keeps_the_token() {
        let token = Secret::generate();
        let req = |team_id: &str, key_check: &str| EnrollRequest {
            team_id: team_id.into(),
            token: token.clone(),
            key_check: key_check.into(),
            name_sealed: "sealed".into(),
            enrollment_id: None,
            sign_pk: "11".repeat(32),
            kx_pk: "22".repeat(32),
            epoch: 1,
            proof: "33".repeat(32),
        };
        let team = TeamId::random().to_hex();
        assert!(matches!(
            enrollment(req("zz", "ab"), 0),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            enrollment(req(&team, ""), 0),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            enrollment(req(&team, "not hex"), 0),
            Err(ApiError::Malformed(_))
        ));
        let (e, device_token) = enrollment(req(&team, "ABCD"), 5).unwrap();
        assert_eq!(e.key_check, "abcd");
        assert_eq!(e.enrollment_id, None);
        for bad in ["", "abc", &"g".repeat(32), &"a".repeat(33)] {
            let r = EnrollRequest {
                enrollment_id: Some(bad.to_owned()),
                ..req(&team, "ab")
            };
            assert!(
                matches!(enrollment(r, 0), Err(ApiError::Malformed(_))),
                "{bad:?}"
            );
        }
        let r = EnrollRequest {
            enrollment_id: Some("AB".repeat(16)),
            ..req(&team, "ab")
        };
        assert_eq!(
            enrollment(r, 0).unwrap().0.enrollment_id,
            Some("ab".repeat(16))
        );
        for (field, bad) in [
            ("sign_pk", "11".repeat(31)),
            ("kx_pk", "zz".repeat(32)),
            ("proof", "33".repeat(33)),
            ("sign_pk", String::new()),
        ] {
            let mut r = req(&team, "ab");
            match field {
                "sign_pk" => r.sign_pk = bad,
                "kx_pk" => r.kx_pk = bad,
                _ => r.proof = bad,
            }
            assert!(
                matches!(enrollment(r, 0), Err(ApiError::Malformed(ref m)) if m.contains(field)),
                "{field}"
            );
        }
        let zero_epoch = EnrollRequest {
            epoch: 0,
            ..req(&team, "ab")
        };
        assert!(matches!(
            enrollment(zero_epoch, 0),
            Err(ApiError::Malformed(_))
        ));
        assert_eq!(e.keys.sign_pk, [0x11; 32]);
        assert_eq!(e.keys.proof, [0x33; 32]);
        assert_eq!(e.token_hash, token.hash());
        assert_eq!(e.device_token_hash, device_token.hash());
        assert!(!format!("{e:?}").contains(token.expose()));
        assert!(!format!("{e:?}").contains(device_token.expose()));
    }
}
