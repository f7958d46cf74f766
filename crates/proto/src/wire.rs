//! Request and response bodies.
//!
//! `/v1/sync` speaks postcard (compact binary: ciphertext is not inflated by
//! base64, and a no-op sync is a few bytes), content type
//! [`SYNC_CONTENT_TYPE`]. The enrollment and admin endpoints speak JSON.
//! Every error from the relay is JSON [`ErrorBody`] with a 4xx/5xx status.

use serde::{Deserialize, Serialize};

use crate::envelope::{ContentId, Envelope};
use crate::invite::Role;

/// Content type of `/v1/sync` bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-heartbridge-sync";
/// Default cap on the envelope bytes of one pull page.
pub const DEFAULT_PAGE_BYTES: u32 = 256 * 1024;

/// `POST /v1/sync`: push the outbox, pull since the cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub v: u8,
    /// The last sequence number this device has pulled (0 at first).
    pub cursor: u64,
    pub push: Vec<Envelope>,
    /// Cap on the pulled envelope bytes of this response; 0 for the relay's
    /// default. A device on a slow link asks for smaller pages.
    pub max_bytes: u32,
    /// The highest [`MemberKey::seq`] this device has: the relay sends the
    /// members whose entry changed after it.
    pub members_since: u64,
    /// The version of the roster this device holds (0 for none): the relay
    /// sends its roster when it holds a newer one.
    pub roster_version: u64,
    /// The lead's device uploads a newly signed roster here
    /// ([`crate::SignedRoster::to_bytes`]); the relay keeps it if the lead
    /// signed it and its version is newer.
    #[serde(with = "opt_bytes")]
    pub roster: Option<Vec<u8>>,
}

/// The relay's acknowledgement of one pushed envelope: it is durably stored
/// under `seq` (an earlier copy's seq for a duplicate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: ContentId,
    pub seq: u64,
}

/// An envelope pulled from the team's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pulled {
    pub seq: u64,
    pub envelope: Envelope,
}

/// A member's public keys and join proof, as the relay registered them.
/// Devices trust it only as far as the roster or the proof allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKey {
    /// The relay's order of member changes (enrollment, revocation).
    pub seq: u64,
    pub device: [u8; 16],
    pub role: Role,
    pub public: crate::DevicePublic,
    /// The epoch whose key made `proof` ([`crate::identity::join_proof`]).
    pub epoch: u32,
    pub proof: [u8; 32],
    pub revoked: bool,
}

/// Response to [`SyncRequest`]. The roster and members come first, so that
/// a response cut on the way never delivers an envelope without its
/// author's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub v: u8,
    /// The relay's roster, when newer than the device's.
    #[serde(with = "opt_bytes")]
    pub roster: Option<Vec<u8>>,
    /// Members whose entry changed after `members_since`, in `seq` order.
    pub members: Vec<MemberKey>,
    pub acked: Vec<Ack>,
    pub pull: Vec<Pulled>,
    /// The cursor to send next time.
    pub cursor: u64,
    /// More envelopes wait past this page: sync again.
    pub more: bool,
    /// Carried envelopes of this push (authored by another member) that
    /// the relay refused one by one, with why; the rest of the push is
    /// stored. Last field, and read as empty when absent: an older relay's
    /// answer ends before it, and an older device stops reading before it.
    /// No field can be added after it: devices read whatever follows the
    /// body as `venue_wire::ResponseExt`, so new fields of the answer go
    /// there (as `log_id` did).
    #[serde(default, deserialize_with = "trailing")]
    pub refused: Vec<Refused>,
}

/// A carried envelope the relay did not store, and why
/// ([`Refused::reason`] is a stable kind, see [`REFUSED_REASONS`]). A device
/// drops it from its outbox: pushing it again gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub id: ContentId,
    pub reason: String,
}

/// The kinds of [`Refused::reason`]: `unknown_author` (its author is no
/// member of the team), `author_revoked` (its author was revoked and the
/// relay did not hold it: it would lie past the cut-off), `bad_signature`
/// (not signed by its author's registered key, or altered since),
/// `forbidden` (`covers > 0` from a volunteer's envelope), `malformed`
/// (empty, or under a key epoch the team's roster has not reached).
pub const REFUSED_REASONS: [&str; 5] = [
    "unknown_author",
    "author_revoked",
    "bad_signature",
    "forbidden",
    "malformed",
];

/// A trailing field of a postcard body: absent (the body ended) reads as
/// the default. Postcard has no field tags, so only the last fields of a
/// body can be optional this way.
pub(crate) fn trailing<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(T::deserialize(d).unwrap_or_default())
}

/// What arrived whole of a sync response cut off on the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponsePrefix {
    pub roster: Option<Vec<u8>>,
    pub members: Vec<MemberKey>,
    pub acked: Vec<Ack>,
    pub pulled: Vec<Pulled>,
}

/// What can be used of a sync response cut off on the way: the roster and
/// members if they arrived whole, then the acknowledgements and pulled
/// envelopes that arrived whole, in order. A response is postcard, so its
/// fields arrive in order and every element that arrived whole decodes on
/// its own. Nothing is pulled unless every member arrived. Anything of
/// another version, or nothing whole, gives empty lists.
pub fn decode_response_prefix(bytes: &[u8]) -> ResponsePrefix {
    let mut out = ResponsePrefix::default();
    let Ok((v, rest)) = postcard::take_from_bytes::<u8>(bytes) else {
        return out;
    };
    if v != crate::PROTOCOL_VERSION {
        return out;
    }
    let Ok((Roster(roster), rest)) = postcard::take_from_bytes::<Roster>(rest) else {
        return out;
    };
    let Ok((members, rest)) = postcard::take_from_bytes::<Vec<MemberKey>>(rest) else {
        return out;
    };
    out.roster = roster;
    out.members = members;
    let (acked, pulled) = (&mut out.acked, &mut out.pulled);
    let Ok((n, mut rest)) = postcard::take_from_bytes::<u64>(rest) else {
        return out;
    };
    for _ in 0..n {
        match postcard::take_from_bytes::<Ack>(rest) {
            Ok((a, r)) => {
                acked.push(a);
                rest = r;
            }
            Err(_) => return out,
        }
    }
    let Ok((m, mut rest)) = postcard::take_from_bytes::<u64>(rest) else {
        return out;
    };
    for _ in 0..m {
        match postcard::take_from_bytes::<Pulled>(rest) {
            Ok((p, r)) => {
                pulled.push(p);
                rest = r;
            }
            Err(_) => break,
        }
    }
    out
}

#[derive(Deserialize)]
struct Roster(#[serde(with = "opt_bytes")] Option<Vec<u8>>);

mod opt_bytes {
    //! Option<Vec<u8>> with the bytes as a byte string.
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(b) => s.serialize_some(&Bytes(b)),
        }
    }
    struct Bytes<'a>(&'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    #[derive(Deserialize)]
    struct Owned(#[serde(with = "crate::envelope::bytes_vec")] Vec<u8>);
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Owned>::deserialize(d)?.map(|o| o.0))
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct WireError {
    pub what: &'static str,
    pub reason: String,
}

/// Encodes a sync body.
pub fn encode<T: Serialize>(t: &T) -> Vec<u8> {
    postcard::to_stdvec(t).expect("sync bodies always serialize")
}

/// Decodes a sync body.
pub fn decode<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, WireError> {
    postcard::from_bytes(bytes).map_err(|e| WireError {
        what,
        reason: e.to_string(),
    })
}

/// `POST /v1/claim` (lead token) and `POST /v1/join` (invite token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub team_id: String,
    pub token: crate::Secret,
    /// [`crate::TeamKey::check_value`] of the device's key.
    pub key_check: String,
    /// The device's display name sealed with the team key
    /// ([`crate::seal_name`]); the relay cannot read it.
    pub name_sealed: String,
    /// A random id (32 hex digits) the device chose and stored before it
    /// sent this request. Sending the same request again with the same id
    /// (its answer was lost) gives back the same device with a fresh token,
    /// instead of burning the invite or leaving an orphan device.
    #[serde(default)]
    pub enrollment_id: Option<String>,
    /// The device's Ed25519 public key (64 hex digits): the relay accepts
    /// only envelopes it signed from this device.
    pub sign_pk: String,
    /// The device's X25519 public key (64 hex digits).
    pub kx_pk: String,
    /// The invite's key epoch, and [`crate::identity::join_proof`] under
    /// its key (64 hex digits).
    pub epoch: u32,
    pub proof: String,
}

/// A device's credentials after enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    pub device_token: crate::Secret,
    pub role: Role,
}

/// `POST /v1/invites` (lead or supervisor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteRequest {
    pub role: Role,
    /// Seconds the invite lives; 0 or absent: the relay's default (24 h).
    #[serde(default)]
    pub ttl_secs: u64,
    /// The key check value of the key the code will carry (the inviter's
    /// current epoch): the relay checks the joining device against it.
    #[serde(default)]
    pub key_check: Option<String>,
}

/// A one-time invite token; the relay keeps only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteResponse {
    pub token: crate::Secret,
    /// Unix seconds.
    pub expires_at: i64,
}

/// One enrolled device, as `GET /v1/members` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub device_id: String,
    pub role: Role,
    pub name_sealed: String,
    /// Unix seconds.
    pub enrolled_at: i64,
    pub last_sync_at: Option<i64>,
    pub revoked: bool,
}

/// What `POST /v1/devices/{id}/revoke` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The team's last envelope sequence number when the device was
    /// refused: nothing it pushes later is stored.
    pub cutoff_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersResponse {
    pub members: Vec<Member>,
}

/// Every error answer of the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable kind: `malformed`, `too_large`, `too_many_envelopes`,
    /// `unknown_token`, `device_revoked` (403; this device was revoked: not
    /// retryable), `forbidden`, `bad_signature`, `bad_roster`, `wrong_key`,
    /// `invite_expired`, `invite_used`, `unknown_team`, `version`,
    /// `not_found`, `method_not_allowed`, `timeout`,
    /// `unsupported_media_type`, `rate_limited`, `internal`.
    pub error: String,
    pub message: String,
}

/// What `heartbridge-relay team create --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamCreated {
    pub team_id: String,
    pub lead_token: crate::Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_op_sync_is_a_few_bytes_each_way() {
        let req = SyncRequest {
            v: crate::PROTOCOL_VERSION,
            cursor: 123_456,
            push: vec![],
            max_bytes: 0,
            members_since: 0,
            roster_version: 0,
            roster: None,
        };
        assert!(encode(&req).len() < 10);
        let resp = SyncResponse {
            v: crate::PROTOCOL_VERSION,
            roster: None,
            members: vec![],
            acked: vec![],
            pull: vec![],
            cursor: 123_456,
            more: false,
            refused: vec![],
        };
        // Nine bytes, and one for the empty list of refusals.
        assert!(encode(&resp).len() <= 10);
        assert!(decode::<SyncRequest>("sync request", b"\x01\xff").is_err());
    }

    #[test]
    fn an_answer_without_refusals_still_reads_both_ways() {
        let mut resp = SyncResponse {
            v: crate::PROTOCOL_VERSION,
            roster: None,
            members: vec![],
            acked: vec![Ack {
                id: ContentId([7; 16]),
                seq: 3,
            }],
            pull: vec![],
            cursor: 9,
            more: false,
            refused: vec![],
        };
        // An older relay's answer: the same bytes without the last field.
        let full = encode(&resp);
        let old = &full[..full.len() - 1];
        assert_eq!(decode::<SyncResponse>("sync response", old).unwrap(), resp);
        // An older device reads a newer answer and ignores the refusals.
        resp.refused.push(Refused {
            id: ContentId([8; 16]),
            reason: "author_revoked".into(),
        });
        let bytes = encode(&resp);
        assert_eq!(
            decode::<SyncResponse>("sync response", &bytes).unwrap(),
            resp
        );
        #[derive(Deserialize, PartialEq, Debug)]
        struct Older {
            v: u8,
            #[serde(with = "opt_bytes")]
            roster: Option<Vec<u8>>,
            members: Vec<MemberKey>,
            acked: Vec<Ack>,
            pull: Vec<Pulled>,
            cursor: u64,
            more: bool,
        }
        let older: Older = decode("sync response", &bytes).unwrap();
        assert_eq!((older.acked, older.cursor), (resp.acked, 9));
    }

    #[test]
    fn every_whole_element_of_a_cut_response_is_recovered_and_no_more() {
        use crate::{DocKindTag, EnvelopeKind, TeamId, TeamKey};
        let (key, team) = (TeamKey::generate(), TeamId::random());
        let pull: Vec<Pulled> = (1..=5u64)
            .map(|seq| Pulled {
                seq,
                envelope: Envelope::seal(
                    &key,
                    &team,
                    [seq as u8; 16],
                    EnvelopeKind::Change,
                    DocKindTag::Case,
                    &vec![seq as u8; 300 * seq as usize],
                )
                .expect("seal"),
            })
            .collect();
        let acked = vec![Ack {
            id: pull[0].envelope.id,
            seq: 9,
        }];
        let members = vec![MemberKey {
            seq: 4,
            device: [3; 16],
            role: Role::Volunteer,
            public: crate::DeviceSecret::generate().public(),
            epoch: 1,
            proof: [5; 32],
            revoked: false,
        }];
        let body = encode(&SyncResponse {
            v: crate::PROTOCOL_VERSION,
            roster: Some(vec![1, 2, 3]),
            members: members.clone(),
            acked: acked.clone(),
            pull: pull.clone(),
            cursor: 5,
            more: false,
            refused: vec![],
        });
        let mut last = (0, 0);
        for cut in 0..=body.len() {
            let got = decode_response_prefix(&body[..cut]);
            let (a, p) = (got.acked, got.pulled);
            // Nothing arrives before the roster and every member.
            if !a.is_empty() || !p.is_empty() || cut == body.len() {
                assert_eq!(got.members, members);
                assert_eq!(got.roster.as_deref(), Some(&[1u8, 2, 3][..]));
            }
            // What comes back is a prefix of what was sent, growing with
            // the bytes received.
            assert_eq!(&a[..], &acked[..a.len()]);
            assert_eq!(&p[..], &pull[..p.len()]);
            assert!((a.len(), p.len()) >= last);
            last = (a.len(), p.len());
        }
        assert_eq!(last, (1, 5));
        assert_eq!(
            decode_response_prefix(&[1, 0, 0, 1, 0]),
            ResponsePrefix::default()
        );
    }
}
