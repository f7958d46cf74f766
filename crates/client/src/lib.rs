//! # heartbridge-client
//!
//! The device's side of the relay protocol over HTTP: claiming a team as
//! its lead, inviting and joining, listing members, and the [`HttpTransport`]
//! that carries `/v1/sync` for the core's sync engine. Used by the CLI and
//! the app; the core itself never opens a socket.
//!
//! Nothing here logs, and no error message carries a token, a key or a
//! device name.

use std::time::Duration;

use heartbridge_core::proto::{
    open_name, seal_name, EnrollRequest, EnrollResponse, ErrorBody, Invite, InviteRequest,
    InviteResponse, MembersResponse, Role, Secret, TeamId, TeamKey, SYNC_CONTENT_TYPE,
};
use heartbridge_core::{Error, Result, Store, Team, Transport, TransportError};
use serde::Serialize;

/// Largest response body accepted.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_per_write(Some(Duration::from_secs(60)))
        // Every byte counts on a 2G link: no default headers we don't need.
        .user_agent("")
        .accept("")
        .build()
        .into()
}

/// The sync transport over HTTP(S).
pub struct HttpTransport {
    agent: ureq::Agent,
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport { agent: agent() }
    }
}

fn url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

fn network(e: &ureq::Error) -> TransportError {
    TransportError::Network(match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => io.kind().to_string(),
        ureq::Error::HostNotFound => "relay host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string().chars().take(120).collect(),
    })
}

/// Reads a response: the body on 2xx, the relay's error otherwise.
fn finish(
    mut resp: ureq::http::Response<ureq::Body>,
) -> std::result::Result<Vec<u8>, TransportError> {
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| network(&e))?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    Err(TransportError::Relay {
        status,
        kind: err
            .as_ref()
            .map_or_else(|| "http".to_owned(), |e| e.error.clone()),
        message: err.map_or_else(
            || format!("the relay answered HTTP {status}"),
            |e| e.message,
        ),
    })
}

impl Transport for HttpTransport {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let resp = self
            .agent
            .post(url(&team.relay_url, "/v1/sync"))
            .header("authorization", format!("Bearer {}", team.token.expose()))
            .header("content-type", SYNC_CONTENT_TYPE)
            .send(&body[..])
            .map_err(|e| network(&e))?;
        finish(resp)
    }
}

/// Turns a transport failure into the error a volunteer reads.
pub fn explain(e: TransportError) -> Error {
    match e {
        TransportError::Network(detail) => Error::Network { detail },
        TransportError::Relay { kind, message, .. } => {
            let message = match kind.as_str() {
                "unknown_token" => "the relay does not know this device or code: check the invite code, or ask your team lead for a new one".to_owned(),
                "revoked" => "this device's access was revoked by the team lead: your data stays on this device; ask your lead".to_owned(),
                "wrong_key" => "the invite code's team key does not match the team's: the code was mistyped or is from another team; ask for the code again".to_owned(),
                "invite_expired" => "this invite code has expired: ask your team lead for a new one".to_owned(),
                "invite_used" => "this invite code was already used: each code enrolls one device; ask for a new one".to_owned(),
                "forbidden" => "your role in the team does not allow this".to_owned(),
                _ => message,
            };
            Error::Relay { kind, message }
        }
    }
}

fn post_json<T: Serialize>(
    base: &str,
    path: &str,
    token: Option<&Secret>,
    body: &T,
) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(body).map_err(|e| Error::Protocol {
        detail: e.to_string(),
    })?;
    let mut req = agent()
        .post(url(base, path))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {}", t.expose()));
    }
    let resp = req.send(&body[..]).map_err(|e| explain(network(&e)))?;
    finish(resp).map_err(explain)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
        detail: e.to_string(),
    })
}

fn enroll(
    store: &mut Store,
    relay: &str,
    path: &str,
    team_id: TeamId,
    token: Secret,
    key: TeamKey,
) -> Result<Team> {
    if store.team()?.is_some() {
        return Err(Error::AlreadyEnrolled);
    }
    let req = EnrollRequest {
        team_id: team_id.to_hex(),
        token,
        key_check: key.check_value(),
        name_sealed: seal_name(&key, &team_id, &store.profile().name),
    };
    let resp: EnrollResponse = parse(&post_json(relay, path, None, &req)?)?;
    let team = Team {
        relay_url: relay.trim_end_matches('/').to_owned(),
        team_id,
        device_id: resp.device_id,
        token: resp.device_token,
        key,
        role: resp.role,
    };
    store.set_team(&team)?;
    Ok(team)
}

/// Claims a team created by the relay operator, as its lead: generates the
/// team key on this device. The lead token is `TEAMID.SECRET` as printed by
/// `heartbridge-relay team create`.
pub fn claim(store: &mut Store, relay: &str, lead_token: &str) -> Result<Team> {
    let bad = || Error::InvalidValue {
        field: "lead token",
        value: "(hidden)".into(),
        allowed: "the whole lead token printed by `heartbridge-relay team create` (TEAMID.SECRET)",
    };
    let (team, secret) = lead_token.trim().split_once('.').ok_or_else(bad)?;
    let team_id = TeamId::from_hex(team).ok_or_else(bad)?;
    enroll(
        store,
        relay,
        "/v1/claim",
        team_id,
        Secret::from_string(secret.to_owned()),
        TeamKey::generate(),
    )
}

/// Joins a team with an invite code.
pub fn join(store: &mut Store, code: &str) -> Result<Team> {
    let invite = Invite::decode(code)?;
    enroll(
        store,
        &invite.relay.clone(),
        "/v1/join",
        invite.team,
        invite.token,
        invite.key,
    )
}

/// Creates an invite code for a new device.
pub fn invite(store: &Store, role: Role) -> Result<String> {
    let team = store.team()?.ok_or(Error::NotEnrolled)?;
    let req = InviteRequest { role, ttl_secs: 0 };
    let resp: InviteResponse = parse(&post_json(
        &team.relay_url,
        "/v1/invites",
        Some(&team.token),
        &req,
    )?)?;
    Ok(Invite {
        relay: team.relay_url.clone(),
        team: team.team_id,
        token: resp.token,
        key: team.key.clone(),
        role,
    }
    .encode())
}

/// A team member as shown to the team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    pub device_id: String,
    pub name: Option<String>,
    pub role: Role,
    pub last_sync_at: Option<i64>,
    pub revoked: bool,
    pub this_device: bool,
}

/// The team's devices, names opened with the team key.
pub fn members(store: &Store) -> Result<Vec<MemberView>> {
    let team = store.team()?.ok_or(Error::NotEnrolled)?;
    let resp = agent()
        .get(url(&team.relay_url, "/v1/members"))
        .header("authorization", format!("Bearer {}", team.token.expose()))
        .call()
        .map_err(|e| explain(network(&e)))?;
    let body = finish(resp).map_err(explain)?;
    let list: MembersResponse = parse(&body)?;
    Ok(list
        .members
        .into_iter()
        .map(|m| MemberView {
            name: open_name(&team.key, &team.team_id, &m.name_sealed),
            this_device: m.device_id == team.device_id,
            device_id: m.device_id,
            role: m.role,
            last_sync_at: m.last_sync_at,
            revoked: m.revoked,
        })
        .collect())
}
