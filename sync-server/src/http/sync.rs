//! `POST /v1/sync`: push the outbox, pull a page of the team's log, in one
//! round trip. Postcard bodies, content type [`SYNC_CONTENT_TYPE`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use heartbridge_proto::identity::{Verifier, MAX_ROSTER_BYTES};
use std::collections::HashMap;

use heartbridge_proto::venue_wire::{decode_request, encode_response, ResponseExt, VenueReceipts};
use heartbridge_proto::{
    Ack, Envelope, Refused, Role, SignedRoster, SyncRequest, SyncResponse, PROTOCOL_VERSION,
    SYNC_CONTENT_TYPE,
};

use super::{content_length, require_content_type, BodyReader, Caller, NoteSlot, Relay};
use crate::error::ApiError;
use crate::storage::{varint_len, Device, PullQuery, PushJob, RosterUpload, TeamState};

const OCTET_STREAM: &str = "application/octet-stream";

/// First bytes of an undecodable body read as another protocol version
/// rather than as garbage.
const KNOWN_VERSIONS: std::ops::RangeInclusive<u8> = 1..=9;
/// Pushes of at least this many envelopes verify their signatures on a
/// blocking thread rather than on the async runtime.
const VERIFY_INLINE: usize = 8;

/// Refuses a push holding an envelope of the pushing device that the relay
/// must not store: empty, under an epoch the team's roster has not reached,
/// not signed by its registered key, or compacting (`covers > 0`) from a
/// volunteer. Checked for the whole push before anything is queued, so a
/// bad envelope of the device's own stores nothing.
///
/// Envelopes authored by another member (carried: a bundle imported, a
/// venue relay forwarding) are checked one by one under their author's
/// entry (`authors`, looked up by the caller; `None`: no member of the
/// team) by the same rules, the `covers` rule on the author's role; a bad
/// one is refused alone and listed in the answer, the rest is stored. A
/// revoked author's envelope passes here and is decided in the push's
/// transaction (stored only if the relay already holds it).
fn check_push(
    push: Vec<Envelope>,
    device: &Device,
    epoch: u32,
    authors: &HashMap<[u8; 16], Option<Device>>,
) -> Result<(Vec<Envelope>, Vec<Refused>), ApiError> {
    let mut refused = Vec::new();
    let mut kept = Vec::with_capacity(push.len());
    // Each author's key is read once per push, not once per envelope.
    let mut keys: HashMap<[u8; 32], Option<Verifier>> = HashMap::new();
    for env in push {
        let own = env.author == device.id.0;
        let author = if own {
            device
        } else {
            match authors.get(&env.author).and_then(Option::as_ref) {
                Some(author) => author,
                None => {
                    refused.push(Refused {
                        id: env.id,
                        reason: "unknown_author".into(),
                    });
                    continue;
                }
            }
        };
        match check_envelope(&env, author, epoch, &mut keys) {
            Ok(()) => kept.push(env),
            Err(e) if own => return Err(e),
            Err(e) => refused.push(Refused {
                id: env.id,
                reason: e.kind().to_owned(),
            }),
        }
    }
    Ok((kept, refused))
}

/// One envelope's checks under its author's entry.
fn check_envelope(
    env: &Envelope,
    author: &Device,
    epoch: u32,
    keys: &mut HashMap<[u8; 32], Option<Verifier>>,
) -> Result<(), ApiError> {
    if env.ciphertext.is_empty() {
        return Err(ApiError::Malformed(format!(
            "envelope {} has an empty ciphertext",
            env.id.to_hex()
        )));
    }
    if env.epoch == 0 || env.epoch > epoch {
        return Err(ApiError::Malformed(format!(
            "envelope {} is sealed under key epoch {}, unknown to this relay (the team's roster is at epoch {epoch})",
            env.id.to_hex(),
            env.epoch
        )));
    }
    let Some(sign_pk) = author.sign_pk else {
        return Err(ApiError::BadSignature(
            "this device enrolled without a signing key, so the relay accepts no envelope from it: enroll it again".into(),
        ));
    };
    let key = keys
        .entry(sign_pk)
        .or_insert_with(|| Verifier::new(&sign_pk));
    if !key.as_ref().is_some_and(|k| env.verify_by(&author.team, k)) {
        return Err(ApiError::BadSignature(format!(
            "envelope {} is not signed by its author's registered key, or was altered after signing",
            env.id.to_hex()
        )));
    }
    if author.role == Role::Volunteer && env.covers > 0 {
        return Err(ApiError::CoversForbidden(env.id.to_hex()));
    }
    if author.role == Role::Relay {
        return Err(ApiError::BadSignature(format!(
            "envelope {} is in a venue relay's name: a relay carries envelopes and writes none",
            env.id.to_hex()
        )));
    }
    Ok(())
}

/// Checks a roster the device uploads: only the team lead's device (the one
/// whose key is the team's roster key), readable, signed by that key for
/// this team. Whether it is newer than the stored one is checked in the
/// push's transaction.
fn check_roster(
    bytes: Vec<u8>,
    device: &Device,
    team: &TeamState,
) -> Result<RosterUpload, ApiError> {
    let lead = match (team.lead_sign_pk, device.sign_pk) {
        (Some(lead), Some(mine)) if lead == mine => lead,
        // A venue relay carries the roster the lead uploaded there; the
        // lead's signature is checked below all the same.
        (Some(lead), Some(_)) if device.role == Role::Relay => lead,
        _ => {
            return Err(ApiError::BadRoster(
                StatusCode::FORBIDDEN,
                "only the team lead's device may upload the roster",
            ))
        }
    };
    let refused = |why| ApiError::BadRoster(StatusCode::BAD_REQUEST, why);
    let signed = SignedRoster::from_bytes(&bytes)
        .map_err(|_| refused("the roster is not readable or too large"))?;
    let roster = signed
        .verify(&lead, &device.team)
        .map_err(|_| refused("the roster is not signed by this team's lead for this team"))?;
    if roster.version < team.roster_version {
        return Err(ApiError::BadRoster(
            StatusCode::CONFLICT,
            "the roster's version is not newer than the relay's",
        ));
    }
    if roster
        .key_checks
        .iter()
        .any(|(_, c)| c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(refused("the roster's key check values are not hex"));
    }
    Ok(RosterUpload {
        version: roster.version,
        epoch: roster.epoch,
        bytes,
        key_checks: roster
            .key_checks
            .iter()
            .map(|(e, c)| (*e, c.to_ascii_lowercase()))
            .collect(),
    })
}

/// The page limit: the device's wish if it asks for less than the relay's.
fn page_limit(asked: u32, relay_limit: u64) -> u64 {
    match u64::from(asked) {
        0 => relay_limit,
        asked => asked.min(relay_limit),
    }
}

/// Bytes of a sync response besides its pulled envelopes: the version, the
/// acks, the pull's length prefix, the cursor, `more` and the refusals, each at its
/// largest encoding where it is not known yet.
fn response_overhead(acked: &[Ack], refused: &[Refused]) -> u64 {
    let acks: u64 = acked.iter().map(|a| 16 + varint_len(a.seq)).sum();
    let refusals: u64 = refused
        .iter()
        .map(|r| 16 + varint_len(r.reason.len() as u64) + r.reason.len() as u64)
        .sum();
    1 + varint_len(acked.len() as u64)
        + acks
        // the extension's log id: no venue, `Some`, 16 bytes
        + 18
        + 5
        + 10
        + 1
        + varint_len(refused.len() as u64)
        + refusals
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
    let (req, ext) = decode_request(&bytes).map_err(|e| {
        // The version is the body's first byte (postcard writes a u8 as is):
        // another version's body is told apart even if the rest differs.
        match bytes.first() {
            Some(&v) if v != PROTOCOL_VERSION && KNOWN_VERSIONS.contains(&v) => {
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
    let SyncRequest {
        cursor,
        push,
        max_bytes,
        members_since,
        roster_version,
        roster,
        ..
    } = req;
    let pushed = push.len();
    note.update(|n| n.pushed = pushed);

    // The roster first (nothing of the request is applied if it is
    // refused), then every envelope, before anything is queued.
    let mut upload = None;
    let mut push = push;
    let mut refused = Vec::new();
    if pushed > 0 || roster.is_some() {
        let team = device.team;
        let state = relay
            .run(move |s| s.team_state(team))
            .await?
            .ok_or(ApiError::UnknownTeam)?;
        let mut epoch = state.epoch.max(1);
        if let Some(bytes) = roster {
            let checked = check_roster(bytes, &device, &state)?;
            epoch = epoch.max(checked.epoch);
            upload = Some(checked);
        }
        // The entries of the carried envelopes' authors, each looked up once.
        let mut authors: HashMap<[u8; 16], Option<Device>> = HashMap::new();
        for env in &push {
            if env.author != device.id.0 && !authors.contains_key(&env.author) {
                let author = env.author;
                let found = relay.run(move |s| s.team_device(team, author)).await?;
                authors.insert(author, found);
            }
        }
        let checked = if pushed < VERIFY_INLINE {
            check_push(push, &device, epoch, &authors)?
        } else {
            // Ed25519 checks of a large push take milliseconds of CPU.
            tokio::task::spawn_blocking(move || check_push(push, &device, epoch, &authors))
                .await
                .map_err(|_| ApiError::Fault("checking a push's signatures panicked"))??
        };
        (push, refused) = checked;
    }
    // A roster just stored is not sent back to the device that sent it.
    let roster_version = roster_version.max(upload.as_ref().map_or(0, |u| u.version));

    // 1. Push: answered only once durably committed (group commit).
    let must_wait = pushed > 0 || upload.is_some();
    let job = PushJob {
        team: device.team,
        device: device.id,
        envelopes: push,
        roster: upload,
        now: relay.clock.now(),
    };
    let mut acked = if must_wait {
        relay.writer.push(job).await?
    } else {
        relay.writer.touch(job).await?;
        Vec::new()
    };
    // A carried envelope whose author is revoked and which the relay did
    // not hold was not stored (ack seq 0, see `PushJob::envelopes`).
    acked.retain(|a| {
        if a.seq == 0 {
            refused.push(Refused {
                id: a.id,
                reason: "author_revoked".into(),
            });
        }
        a.seq != 0
    });
    if !refused.is_empty() {
        // A count, never an id: which envelopes a device carries is its own.
        tracing::info!(team = %device.team.to_hex(), refused = refused.len(), "carried envelopes refused");
    }
    drop(admitted);

    // 2. Pull, in one read transaction: the roster, the member changes and
    // the page's envelopes, as encoded, fill what the acks and the framing
    // leave of the page limit.
    let query = PullQuery {
        team: device.team,
        device: device.id,
        cursor,
        page_bytes: page_limit(max_bytes, relay.page_bytes)
            .saturating_sub(response_overhead(&acked, &refused)),
        members_since,
        roster_version,
    };
    let page = relay.run(move |s| s.pull(&query)).await?;

    // A venue relay's receipts: which of the device's envelopes (those it
    // waits for and those just pushed) the central relay has acknowledged.
    let receipts = match &relay.venue {
        Some(venue) => {
            let mut ids = ext.central_wait;
            ids.truncate(relay.max_push_envelopes.max(1) * 16);
            ids.extend(acked.iter().map(|a| a.id));
            let (db, team) = (std::sync::Arc::clone(&venue.db), device.team);
            let found = relay
                .run(move |_| Ok((db.upstream_acked(team, &ids)?, db.backlog(team)?)))
                .await?;
            ResponseExt {
                venue: Some(VenueReceipts {
                    central: found.0,
                    backlog: found.1,
                }),
                log_id: Some(relay.log_id),
            }
        }
        None => ResponseExt {
            venue: None,
            log_id: Some(relay.log_id),
        },
    };
    let pulled = page.pull.len();
    let body = encode_response(
        &SyncResponse {
            v: PROTOCOL_VERSION,
            roster: page.roster,
            members: page.members,
            acked,
            pull: page.pull,
            cursor: page.cursor,
            more: page.more,
            refused,
        },
        &receipts,
    );
    relay
        .metrics
        .sync_traffic(pushed, pulled, bytes_in, body.len());
    note.update(|n| {
        n.pulled = pulled;
        n.bytes_out = body.len();
    });
    Ok(([(CONTENT_TYPE, SYNC_CONTENT_TYPE)], body).into_response())
}

/// `PUT /v1/roster`: the lead's device uploads a signed roster on its own
/// (`application/octet-stream`, [`SignedRoster::to_bytes`]), under the same
/// rules as [`SyncRequest::roster`]; 204 once stored.
pub(super) async fn put_roster(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    require_content_type(&headers, OCTET_STREAM)?;
    let limit = MAX_ROSTER_BYTES.min(relay.max_body);
    content_length(&headers, limit)?;
    let bytes = BodyReader::new(body, limit, relay.body_timeout)
        .read(None)
        .await?
        .ok_or(ApiError::Timeout)?;
    let team = device.team;
    let state = relay
        .run(move |s| s.team_state(team))
        .await?
        .ok_or(ApiError::UnknownTeam)?;
    let upload = check_roster(bytes.to_vec(), &device, &state)?;
    relay
        .writer
        .push(PushJob {
            team: device.team,
            device: device.id,
            envelopes: Vec::new(),
            roster: Some(upload),
            now: relay.clock.now(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DeviceId;
    use heartbridge_proto::encode;
    use heartbridge_proto::{DeviceSecret, DocKindTag, EnvelopeKind, TeamId, TeamKey};

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
                    author: [3; 16],
                    sig: [4; 64],
                },
            }];
            let entries = crate::storage::pulled_wire_len(u64::MAX, 1, 0, 40)
                + crate::storage::delta_wire_len(None, &[]);
            let body = encode(&SyncResponse {
                v: PROTOCOL_VERSION,
                roster: None,
                members: vec![],
                acked: acked.clone(),
                pull,
                cursor: u64::MAX,
                more: true,
                refused: vec![],
            });
            assert!(body.len() as u64 <= response_overhead(&acked, &[]) + entries);
        }
    }

    #[test]
    fn page_limit_takes_the_smaller_wish() {
        assert_eq!(page_limit(0, 1000), 1000);
        assert_eq!(page_limit(10, 1000), 10);
        assert_eq!(page_limit(5000, 1000), 1000);
    }

    fn signed(team: &TeamId, me: &Device, secret: &DeviceSecret, covers: u64) -> Envelope {
        let mut env = Envelope::seal(
            &TeamKey::generate(),
            team,
            [1; 16],
            EnvelopeKind::Snapshot,
            DocKindTag::Case,
            b"x",
        )
        .unwrap();
        env.covers = covers;
        env.sign(team, me.id.0, secret);
        env
    }

    fn none() -> HashMap<[u8; 16], Option<Device>> {
        HashMap::new()
    }

    #[test]
    fn only_signed_envelopes_of_the_device_and_known_epochs_pass() {
        let team = TeamId::random();
        let secret = DeviceSecret::generate();
        let me = Device {
            id: DeviceId::random(),
            team,
            role: Role::Supervisor,
            revoked: false,
            sign_pk: Some(secret.public().sign),
        };
        let env = signed(&team, &me, &secret, 0);
        assert!(check_push(vec![env.clone()], &me, 1, &none()).is_ok());
        let mut empty = env.clone();
        empty.ciphertext.clear();
        assert!(matches!(
            check_push(vec![env.clone(), empty], &me, 1, &none()),
            Err(ApiError::Malformed(_))
        ));
        // Epochs: 0 never, a later one only once the roster reached it.
        let mut future = env.clone();
        future.epoch = 2;
        future.sign(&team, me.id.0, &secret);
        assert!(matches!(
            check_push(vec![future.clone()], &me, 1, &none()),
            Err(ApiError::Malformed(_))
        ));
        assert!(check_push(vec![future.clone()], &me, 2, &none()).is_ok());
        // Altered after signing, signed by another key, another author.
        let mut altered = env.clone();
        altered.covers = 5;
        let other = DeviceSecret::generate();
        let mut forged = env.clone();
        forged.sign(&team, me.id.0, &other);
        let mut other_team = env.clone();
        other_team.sign(&TeamId::random(), me.id.0, &secret);
        for bad in [altered, forged, other_team] {
            assert!(matches!(
                check_push(vec![env.clone(), bad], &me, 1, &none()),
                Err(ApiError::BadSignature(_))
            ));
        }
        // Another member's envelope (carried): checked alone under its
        // author's entry; refused alone, with why.
        let theirs_secret = DeviceSecret::generate();
        let them = Device {
            id: DeviceId([9; 16]),
            role: Role::Volunteer,
            sign_pk: Some(theirs_secret.public().sign),
            ..me
        };
        let mut theirs = env.clone();
        theirs.sign(&team, them.id.0, &theirs_secret);
        let theirs_compacting = signed(&team, &them, &theirs_secret, 3);
        let mut theirs_forged = theirs.clone();
        theirs_forged.sign(&team, them.id.0, &secret);
        let mut stranger = env.clone();
        stranger.sign(&team, [8; 16], &secret);
        let known: HashMap<[u8; 16], Option<Device>> = [(them.id.0, Some(them)), ([8; 16], None)]
            .into_iter()
            .collect();
        let (kept, refused) = check_push(
            vec![
                env.clone(),
                theirs.clone(),
                theirs_compacting,
                theirs_forged,
                stranger,
            ],
            &me,
            1,
            &known,
        )
        .unwrap();
        assert_eq!(kept, vec![env.clone(), theirs]);
        let reasons: Vec<&str> = refused.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons, ["forbidden", "bad_signature", "unknown_author"]);
        // No registered key: nothing passes.
        let keyless = Device {
            sign_pk: None,
            ..me
        };
        assert!(matches!(
            check_push(vec![env.clone()], &keyless, 1, &none()),
            Err(ApiError::BadSignature(_))
        ));
        // covers > 0: a supervisor or lead only.
        let compacting = signed(&team, &me, &secret, 7);
        assert!(check_push(vec![compacting.clone()], &me, 1, &none()).is_ok());
        let volunteer = Device {
            role: Role::Volunteer,
            ..me
        };
        assert!(check_push(vec![env.clone()], &volunteer, 1, &none()).is_ok());
        assert!(matches!(
            check_push(vec![compacting], &volunteer, 1, &none()),
            Err(ApiError::CoversForbidden(_))
        ));
    }
}
