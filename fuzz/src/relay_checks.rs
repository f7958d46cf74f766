//! What the `relay` fuzz target checks on one input, sent to a real relay.
//!
//! Shared, by path, between the fuzz target (`fuzz/fuzz_targets/relay.rs`)
//! and the replay test `sync-server/tests/fuzz_fixtures.rs`. The first byte
//! of an input picks the endpoint, the rest is the request body; the relay
//! runs its own checks (version, empty ciphertexts, key epoch, envelope cap,
//! team id, key check, invite rules) on whatever decodes.
//!
//! The relay refuses every envelope its pusher did not sign, and a fuzzer
//! cannot forge an Ed25519 signature; so in modes 4 and 5 the harness
//! re-signs a sync body that decodes ([`resign`]) with the pushing device's
//! real key before sending it, and the relay's checks past the signature
//! (covers by role, the roster upload, the log's commit and compaction)
//! see fuzzed envelopes too.

use heartbridge_proto::{
    decode, encode, DeviceSecret, ErrorBody, Roster, SignedRoster, SyncRequest, SyncResponse,
    TeamId, SYNC_CONTENT_TYPE,
};

/// Whose bearer token goes with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// None: enrollment.
    Nobody,
    /// An enrolled volunteer.
    Volunteer,
    /// The team's lead.
    Lead,
}

/// Where an input goes: (path, caller, content type, body).
pub fn route(data: &[u8]) -> Option<(&'static str, Caller, &'static str, &[u8])> {
    let (&mode, body) = data.split_first()?;
    Some(match mode % 6 {
        0 | 4 => ("/v1/sync", Caller::Volunteer, SYNC_CONTENT_TYPE, body),
        1 => ("/v1/join", Caller::Nobody, "application/json", body),
        2 => ("/v1/invites", Caller::Lead, "application/json", body),
        3 => ("/v1/claim", Caller::Nobody, "application/json", body),
        _ => ("/v1/sync", Caller::Lead, SYNC_CONTENT_TYPE, body),
    })
}

/// Whether the body of this input is to be re-signed by the pushing device
/// (modes 4 and 5) before it is sent.
pub fn signed_push(data: &[u8]) -> bool {
    data.first().is_some_and(|m| m % 6 >= 4)
}

/// How many envelopes a sync body pushes (0 if it does not decode).
pub fn pushed(body: &[u8]) -> usize {
    decode::<SyncRequest>("sync request", body).map_or(0, |r| r.push.len())
}

/// A sync body whose every envelope is signed as device `author` (its real
/// key `secret`) of `team`, and whose roster upload, if its body reads as a
/// roster, is signed by `secret` too (only the lead's is accepted): what
/// the pushing device would have sent. `None` if the body does not decode;
/// it is then sent as it is.
pub fn resign(
    body: &[u8],
    team: &TeamId,
    author: [u8; 16],
    secret: &DeviceSecret,
) -> Option<Vec<u8>> {
    let mut req: SyncRequest = decode("sync request", body).ok()?;
    for env in &mut req.push {
        env.sign(team, author, secret);
    }
    if let Some(bytes) = &req.roster {
        let roster = SignedRoster::from_bytes(bytes)
            .ok()
            .and_then(|s| decode::<Roster>("roster", &s.body).ok());
        if let Some(roster) = roster {
            req.roster = Some(SignedRoster::sign(&roster, secret).to_bytes());
        }
    }
    Some(encode(&req))
}

/// Every answer is a 2xx or a 4xx; a 4xx carries the relay's JSON error
/// with a kind; a 2xx to `/v1/sync` is a sync response.
pub fn check_answer(path: &str, status: u16, body: &[u8]) {
    assert!(status < 500, "{path}: the relay answered {status}");
    if status >= 400 {
        let e: ErrorBody = serde_json::from_slice(body)
            .unwrap_or_else(|_| panic!("{path}: a {status} without the JSON error body"));
        assert!(!e.error.is_empty(), "{path}: an error without a kind");
    } else if path == "/v1/sync" {
        decode::<SyncResponse>("sync response", body).expect("a 200 sync answer decodes");
    }
}
