//! `POST /v1/sync`: push the outbox, pull a page of the team's log, in one
//! round trip. Postcard bodies, content type [`SYNC_CONTENT_TYPE`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use heartbridge_proto::{
    decode, encode, Ack, Envelope, SyncRequest, SyncResponse, PROTOCOL_VERSION, SYNC_CONTENT_TYPE,
};

use super::{content_length, require_content_type, BodyReader, Caller, NoteSlot, Relay};
use crate::error::ApiError;
use crate::storage::{varint_len, PushJob};

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

/// Bytes of a sync response besides its pulled envelopes: the version, the
/// acks, the pull's length prefix, the cursor and `more`, each at its
/// largest encoding where it is not known yet.
fn response_overhead(acked: &[Ack]) -> u64 {
    let acks: u64 = acked.iter().map(|a| 16 + varint_len(a.seq)).sum();
    1 + varint_len(acked.len() as u64) + acks + 5 + 10 + 1
}

pub(super) async fn sync(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    note: NoteSlot,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_content_type(&headers, SYNC_CONTENT_TYPE)?;
    // Admission: the push's bytes are held from before its body is read
    // until it is committed. A body without a length is counted at the cap.
    let announced = content_length(&headers, relay.max_body)?.unwrap_or(relay.max_body);
    let permits = |bytes: usize| u32::try_from(super::budget_permits(bytes)).unwrap_or(u32::MAX);
    // The semaphore is never closed, so acquiring cannot fail.
    let mut admitted = relay
        .push_budget
        .acquire_many(permits(announced))
        .await
        .ok();
    let mut reader = BodyReader::new(body, relay.max_body, relay.body_timeout);
    let bytes = match reader.read(Some(relay.push_stall)).await? {
        Some(bytes) => bytes,
        None => {
            // The body stalled: give the budget back to the pushes that are
            // moving, wait for the rest without it, then queue for it again
            // like a new push, for the bytes that did arrive.
            drop(admitted.take());
            let bytes = reader.read(None).await?.ok_or(ApiError::Timeout)?;
            admitted = relay
                .push_budget
                .acquire_many(permits(bytes.len()))
                .await
                .ok();
            bytes
        }
    };
    drop(reader);
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
    if req.push.len() > relay.max_push_envelopes {
        return Err(ApiError::TooManyEnvelopes(relay.max_push_envelopes));
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

    // 2. Pull, in one read transaction: the page's envelopes, as encoded,
    // fill what the acks and the framing leave of the page limit.
    let (team, me, cursor) = (device.team, device.id, req.cursor);
    let limit =
        page_limit(req.max_bytes, relay.page_bytes).saturating_sub(response_overhead(&acked));
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
    fn the_response_overhead_covers_the_framing() {
        use heartbridge_proto::{ContentId, Pulled};
        let acked: Vec<Ack> = (0..300u64)
            .map(|i| Ack {
                id: ContentId([1; 16]),
                seq: i * 1000,
            })
            .collect();
        for acked in [Vec::new(), acked] {
            let pull = vec![Pulled {
                seq: u64::MAX,
                envelope: Envelope {
                    doc: [0; 16],
                    kind: heartbridge_proto::EnvelopeKind::Change,
                    epoch: 1,
                    id: ContentId([2; 16]),
                    covers: 0,
                    nonce: [0; 24],
                    ciphertext: vec![5; 40],
                },
            }];
            let entries = crate::storage::pulled_wire_len(u64::MAX, 1, 0, 40);
            let body = encode(&SyncResponse {
                v: PROTOCOL_VERSION,
                acked: acked.clone(),
                pull,
                cursor: u64::MAX,
                more: true,
            });
            assert!(body.len() as u64 <= response_overhead(&acked) + entries);
        }
    }

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
