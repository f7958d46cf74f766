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

/// What a relay appends to its answer: a venue relay's receipts, and (from
/// relays that know it) the id of the relay's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseExt {
    /// `Some` from a venue relay: its acknowledgements are level 1.
    pub venue: Option<VenueReceipts>,
    /// The relay's log id: random, made when its database was made and
    /// made anew when the database is restored from a backup (or recovered
    /// to a point in time), whose seqs then start again from an earlier
    /// point. A device that sees it change resets its cursor and pushes
    /// again what it holds. `None` from an older relay. A trailing field:
    /// an older device stops reading before it, an older relay's extension
    /// (or none at all) reads as `None`. Fields added later go after it,
    /// read the same way.
    ///
    /// Why here and not after `SyncResponse::refused`: every byte after the
    /// response body is read as this extension by devices that know venue
    /// relays, so a field appended to the body would be misread by them as
    /// venue receipts (see `a_log_id_appended_to_the_body_would_be_misread`).
    #[serde(default, deserialize_with = "crate::wire::trailing")]
    pub log_id: Option<LogId>,
}

/// A relay log's id (16 random bytes; see [`ResponseExt::log_id`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogId(pub [u8; 16]);

impl LogId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogId({})", self.to_hex())
    }
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

/// The response body with its extension (none appended when empty: a
/// central relay that knows no log id, as before).
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
            log_id: None,
        };
        let body = encode_response(&resp(), &ext);
        assert_eq!(decode_response(&body).unwrap(), (resp(), ext));
        // An older device decodes the answer it knows.
        assert_eq!(decode::<SyncResponse>("r", &body).unwrap(), resp());
        // A central relay's answer: no venue, level 2.
        assert_eq!(decode_response(&encode(&resp())).unwrap().1.venue, None);
    }

    /// The extension as relays and devices built before the log id wrote
    /// and read it.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    struct OldResponseExt {
        venue: Option<VenueReceipts>,
    }

    fn old_decode(bytes: &[u8]) -> (SyncResponse, OldResponseExt) {
        let (resp, rest) = take::<SyncResponse>("r", bytes).unwrap();
        (resp, decode_ext(rest))
    }

    fn receipts() -> VenueReceipts {
        VenueReceipts {
            central: vec![ContentId([7; 16]), ContentId([9; 16])],
            backlog: 3,
        }
    }

    #[test]
    fn a_log_id_reaches_new_devices_and_older_devices_read_the_rest() {
        let id = LogId([0x5a; 16]);
        for venue in [None, Some(receipts())] {
            let ext = ResponseExt {
                venue: venue.clone(),
                log_id: Some(id),
            };
            let body = encode_response(&resp(), &ext);
            // A new device reads both.
            assert_eq!(decode_response(&body).unwrap(), (resp(), ext));
            // An older device reads the body and the venue receipts as
            // before: a central relay's answer still reads as level 2.
            assert_eq!(old_decode(&body), (resp(), OldResponseExt { venue }));
        }
        // Every log id reads back whole (a random one too).
        for _ in 0..64 {
            let id = LogId(rand::random());
            let ext = ResponseExt {
                venue: None,
                log_id: Some(id),
            };
            let body = encode_response(&resp(), &ext);
            assert_eq!(decode_response(&body).unwrap().1.log_id, Some(id));
            assert_eq!(old_decode(&body).1.venue, None);
        }
    }

    #[test]
    fn an_older_relay_s_answer_reads_as_no_log_id() {
        // An older central relay: no extension at all.
        let body = encode(&resp());
        assert_eq!(
            decode_response(&body).unwrap(),
            (resp(), ResponseExt::default())
        );
        // An older venue relay: its receipts, nothing after them.
        let mut body = encode(&resp());
        body.extend(encode(&OldResponseExt {
            venue: Some(receipts()),
        }));
        assert_eq!(
            decode_response(&body).unwrap(),
            (
                resp(),
                ResponseExt {
                    venue: Some(receipts()),
                    log_id: None
                }
            )
        );
    }

    #[test]
    fn a_log_id_appended_to_the_body_would_be_misread() {
        // Why the log id is in the extension and not after
        // `SyncResponse::refused`: an older device reads whatever follows
        // the body as its extension, and a log id there can read as venue
        // receipts (here one starting 0, 0: after the option's tag 1 that
        // reads as `Some`, no ids and a backlog of 0), turning a central
        // relay's final acks into level-1 ones.
        let id = [0u8; 16];
        let mut body = encode(&resp());
        body.extend(encode(&Some(LogId(id))));
        assert!(old_decode(&body).1.venue.is_some());
        // In the extension, the same id reads as what it is.
        let body = encode_response(
            &resp(),
            &ResponseExt {
                venue: None,
                log_id: Some(LogId(id)),
            },
        );
        assert_eq!(old_decode(&body).1.venue, None);
        assert_eq!(decode_response(&body).unwrap().1.log_id, Some(LogId(id)));
    }
}
