//! Two-level receipts on the `/v1/sync` wire, appended after the body.
//!
//! A device that has envelopes a venue relay acknowledged (level 1) but
//! the central relay has not confirmed yet appends a [`RequestExt`] after
//! its [`SyncRequest`]: the content ids it waits for. A venue relay
//! appends a [`ResponseExt`] after its [`SyncResponse`]: that it is a venue
//! relay (so its acknowledgements are level 1) and which of the asked ids
//! the central relay has acknowledged (level 2).
//!
//! The extensions follow the postcard body as a second postcard value, so
//! the protocol stays version 2 in both directions: an older relay or
//! device decodes the body it knows and never reads past it (postcard's
//! `from_bytes` leaves trailing bytes alone), and a body without an
//! extension reads as [`RequestExt::default`] / [`ResponseExt::default`]
//! (a central relay's answer, level 2).

use serde::{Deserialize, Serialize};

use crate::envelope::ContentId;
use crate::wire::{decode, encode, SyncRequest, SyncResponse, WireError};

/// What a device appends to a sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestExt {
    /// Content ids of this device's envelopes that a venue relay
    /// acknowledged and the central relay has not confirmed yet.
    pub central_wait: Vec<ContentId>,
}

/// What a venue relay appends to its answer; absent from a central relay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseExt {
    /// `Some` from a venue relay: its acknowledgements are level 1.
    pub venue: Option<VenueReceipts>,
}

/// A venue relay's receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueReceipts {
    /// Of the request's `central_wait` (and of this push), the envelopes
    /// the central relay has acknowledged.
    pub central: Vec<ContentId>,
    /// Envelopes at this venue relay not yet acknowledged upstream (all
    /// devices'), for a status line.
    pub backlog: u64,
}

/// The request body with its extension (none appended when empty).
pub fn encode_request(req: &SyncRequest, ext: &RequestExt) -> Vec<u8> {
    let mut body = encode(req);
    if *ext != RequestExt::default() {
        body.extend(encode(ext));
    }
    body
}

/// A request body and its extension.
pub fn decode_request(bytes: &[u8]) -> Result<(SyncRequest, RequestExt), WireError> {
    let (req, rest) = take::<SyncRequest>("sync request", bytes)?;
    Ok((req, decode_ext(rest)))
}

/// The response body with its extension (none appended when empty).
pub fn encode_response(resp: &SyncResponse, ext: &ResponseExt) -> Vec<u8> {
    let mut body = encode(resp);
    if *ext != ResponseExt::default() {
        body.extend(encode(ext));
    }
    body
}

/// A response body and its extension.
pub fn decode_response(bytes: &[u8]) -> Result<(SyncResponse, ResponseExt), WireError> {
    let (resp, rest) = take::<SyncResponse>("sync response", bytes)?;
    Ok((resp, decode_ext(rest)))
}

fn take<'a, T: Deserialize<'a>>(
    what: &'static str,
    bytes: &'a [u8],
) -> Result<(T, &'a [u8]), WireError> {
    postcard::take_from_bytes(bytes).map_err(|e| WireError {
        what,
        reason: e.to_string(),
    })
}

/// An extension, or the default when there is none or it does not read
/// (a newer peer's longer one is read as far as it is known).
fn decode_ext<T: for<'a> Deserialize<'a> + Default>(rest: &[u8]) -> T {
    if rest.is_empty() {
        return T::default();
    }
    decode("sync extension", rest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ack;

    fn resp() -> SyncResponse {
        SyncResponse {
            v: crate::PROTOCOL_VERSION,
            roster: None,
            members: vec![],
            acked: vec![Ack {
                id: ContentId([1; 16]),
                seq: 4,
            }],
            pull: vec![],
            cursor: 9,
            more: false,
            refused: vec![],
        }
    }

    fn req() -> SyncRequest {
        SyncRequest {
            v: crate::PROTOCOL_VERSION,
            cursor: 3,
            push: vec![],
            max_bytes: 0,
            members_since: 1,
            roster_version: 2,
            roster: None,
        }
    }

    #[test]
    fn extensions_round_trip_and_older_peers_read_the_body() {
        let ext = RequestExt {
            central_wait: vec![ContentId([7; 16]), ContentId([8; 16])],
        };
        let body = encode_request(&req(), &ext);
        assert_eq!(decode_request(&body).unwrap(), (req(), ext));
        // An older relay decodes the request it knows.
        assert_eq!(decode::<SyncRequest>("r", &body).unwrap(), req());
        // A request without one reads as none.
        assert_eq!(
            encode_request(&req(), &RequestExt::default()),
            encode(&req())
        );
        assert_eq!(
            decode_request(&encode(&req())).unwrap().1,
            RequestExt::default()
        );

        let ext = ResponseExt {
            venue: Some(VenueReceipts {
                central: vec![ContentId([7; 16])],
                backlog: 12,
            }),
        };
        let body = encode_response(&resp(), &ext);
        assert_eq!(decode_response(&body).unwrap(), (resp(), ext));
        // An older device decodes the answer it knows.
        assert_eq!(decode::<SyncResponse>("r", &body).unwrap(), resp());
        // A central relay's answer: no venue, level 2.
        assert_eq!(decode_response(&encode(&resp())).unwrap().1.venue, None);
    }
}
