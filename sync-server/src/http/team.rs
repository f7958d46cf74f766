//! Enrollment and team administration: claim, join, invites, members,
//! revocation. JSON bodies.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use heartbridge_proto::{
    EnrollRequest, EnrollResponse, InviteRequest, InviteResponse, MembersResponse, Role, Secret,
    TeamId,
};

use super::{read_json, Caller, NoteSlot, Relay};
use crate::error::ApiError;
use crate::storage::{Device, DeviceId, Enrollment, NewInvite, Storage};

/// An invite's lifetime when the request says 0.
const DEFAULT_INVITE_TTL: u64 = 7 * 24 * 3600;
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
        Role::Volunteer => false,
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

/// `POST /v1/devices/{device_id}/revoke`: the lead revokes a device of its
/// team.
pub(super) async fn revoke(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    target: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
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
    let team = device.team;
    relay.run(move |s| s.revoke(Some(team), target)).await?;
    tracing::info!(team = %team, device = %target, "device revoked");
    Ok(StatusCode::NO_CONTENT)
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
        assert_eq!(e.token_hash, token.hash());
        assert_eq!(e.device_token_hash, device_token.hash());
        assert!(!format!("{e:?}").contains(token.expose()));
        assert!(!format!("{e:?}").contains(device_token.expose()));
    }
}
