//! `POST /v1/sync`: push the outbox, pull a page of the team's log, in one
//! round trip. Postcard bodies, content type [`SYNC_CONTENT_TYPE`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use heartbridge_proto::{
    decode, encode, Envelope, SyncRequest, SyncResponse, PROTOCOL_VERSION, SYNC_CONTENT_TYPE,
};

use super::{read_body, Caller, NoteSlot, Relay};
use crate::error::ApiError;
use crate::storage::PushJob;

/// First bytes of an undecodable body read as a later protocol version
/// rather than as garbage.
const LATER_VERSIONS: u8 = 9;
/// The only key epoch until key rotation exists.
const EPOCH: u32 = 1;

/// Refuses a push holding an envelope the relay must not store. Checked for
/// the whole push before anything is queued, so a bad push stores nothing.
fn check_push(push: &[Envelope]) -> Result<(), ApiError> {
    for env in push {
        if env.ciphertext.is_empty() {
            return Err(ApiError::Malformed(format!(
                "envelope {} has an empty ciphertext",
                env.id.to_hex()
            )));
        }
        if env.epoch != EPOCH {
            return Err(ApiError::Malformed(format!(
                "envelope {} is sealed under key epoch {}, unknown to this relay",
                env.id.to_hex(),
                env.epoch
            )));
        }
    }
    Ok(())
}

/// The page limit: the device's wish if it asks for less than the relay's.
fn page_limit(asked: u32, relay_limit: u64) -> u64 {
    match u64::from(asked) {
        0 => relay_limit,
        asked => asked.min(relay_limit),
    }
}

pub(super) async fn sync(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    note: NoteSlot,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Admission: the push's bytes are held from before its body is read
    // until it is committed. A body without a length is counted at the cap.
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(relay.max_body)
        .min(relay.max_body);
    let permits = u32::try_from(super::budget_permits(announced)).unwrap_or(u32::MAX);
    // The semaphore is never closed, so acquiring cannot fail.
    let admitted = relay.push_budget.acquire_many(permits).await.ok();
    let bytes = read_body(body, relay.max_body).await?;
    let bytes_in = bytes.len();
    note.update(|n| n.bytes_in = bytes_in);
    let req: SyncRequest = decode("sync request", &bytes).map_err(|e| {
        // The version is the body's first byte (postcard writes a u8 as is):
        // a later version's body is told apart even if the rest differs.
        match bytes.first() {
            Some(&v) if (PROTOCOL_VERSION + 1..=LATER_VERSIONS).contains(&v) => {
                ApiError::Version(v)
            }
            _ => ApiError::Malformed(e.to_string()),
        }
    })?;
    drop(bytes);
    if req.v != PROTOCOL_VERSION {
        return Err(ApiError::Version(req.v));
    }
    check_push(&req.push)?;
    let pushed = req.push.len();
    note.update(|n| n.pushed = pushed);

    // 1. Push: answered only once durably committed (group commit).
    let job = PushJob {
        team: device.team,
        device: device.id,
        envelopes: req.push,
        now: relay.clock.now(),
    };
    let acked = if pushed == 0 {
        relay.writer.touch(job).await?;
        Vec::new()
    } else {
        relay.writer.push(job).await?
    };
    drop(admitted);

    // 2. Pull, in one read transaction.
    let (team, me, cursor) = (device.team, device.id, req.cursor);
    let limit = page_limit(req.max_bytes, relay.page_bytes);
    let page = relay.run(move |s| s.pull(team, me, cursor, limit)).await?;

    let pulled = page.pull.len();
    let body = encode(&SyncResponse {
        v: PROTOCOL_VERSION,
        acked,
        pull: page.pull,
        cursor: page.cursor,
        more: page.more,
    });
    relay
        .metrics
        .sync_traffic(pushed, pulled, bytes_in, body.len());
    note.update(|n| {
        n.pulled = pulled;
        n.bytes_out = body.len();
    });
    Ok(([(CONTENT_TYPE, SYNC_CONTENT_TYPE)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_proto::{DocKindTag, EnvelopeKind, TeamId, TeamKey};

    #[test]
    fn page_limit_takes_the_smaller_wish() {
        assert_eq!(page_limit(0, 1000), 1000);
        assert_eq!(page_limit(10, 1000), 10);
        assert_eq!(page_limit(5000, 1000), 1000);
    }

    #[test]
    fn empty_ciphertexts_and_unknown_epochs_are_refused() {
        let env = Envelope::seal(
            &TeamKey::generate(),
            &TeamId::random(),
            [1; 16],
            EnvelopeKind::Change,
            DocKindTag::Case,
            b"x",
        )
        .unwrap();
        assert!(check_push(std::slice::from_ref(&env)).is_ok());
        let mut empty = env.clone();
        empty.ciphertext.clear();
        assert!(matches!(
            check_push(&[env.clone(), empty]),
            Err(ApiError::Malformed(_))
        ));
        let mut future = env.clone();
        future.epoch = 2;
        assert!(matches!(check_push(&[future]), Err(ApiError::Malformed(_))));
    }
}
