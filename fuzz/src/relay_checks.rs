//! What the `relay` fuzz target checks on one input, sent to a real relay.
//!
//! Shared, by path, between the fuzz target (`fuzz/fuzz_targets/relay.rs`)
//! and the replay test `sync-server/tests/fuzz_fixtures.rs`. The first byte
//! of an input picks the endpoint, the rest is the request body; the relay
//! runs its own checks (version, empty ciphertexts, key epoch, envelope cap,
//! team id, key check, invite rules) on whatever decodes.

use heartbridge_proto::{decode, ErrorBody, SyncResponse, SYNC_CONTENT_TYPE};

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
    Some(match mode % 4 {
        0 => ("/v1/sync", Caller::Volunteer, SYNC_CONTENT_TYPE, body),
        1 => ("/v1/join", Caller::Nobody, "application/json", body),
        2 => ("/v1/invites", Caller::Lead, "application/json", body),
        _ => ("/v1/claim", Caller::Nobody, "application/json", body),
    })
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
