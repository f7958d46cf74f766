//! What the fuzz targets of `heartbridge-proto` check on one input.
//!
//! Shared, by path, between the fuzz targets (`fuzz/fuzz_targets/*.rs`) and
//! the replay test `crates/proto/tests/fuzz_fixtures.rs`, so a corpus or
//! crash file runs through exactly the same code in `cargo test` as in the
//! fuzzer. Each function must return normally for every input; a panic is a
//! finding. Assertion messages never print a decoded value (it may hold a
//! token or a key).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use heartbridge_proto::identity::RosterError;
use heartbridge_proto::{
    decode, encode, DeviceSecret, DocKindTag, EnrollRequest, EnrollResponse, Envelope,
    EnvelopeKind, ErrorBody, Invite, InviteRequest, InviteResponse, MembersResponse, OpenError,
    Role, SignedRoster, SyncRequest, SyncResponse, TeamCreated, TeamId, TeamKey,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest plaintext `Envelope::open` may hand back (its `MAX_PLAINTEXT`).
const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;

/// The team key every envelope target seals and opens with.
pub fn fixed_key() -> TeamKey {
    TeamKey::from_bytes([0x42; 32])
}

/// The team every envelope target seals and opens for.
pub fn fixed_team() -> TeamId {
    TeamId([0x17; 16])
}

/// The lead's device key every roster target signs and verifies with.
pub fn fixed_lead() -> DeviceSecret {
    DeviceSecret::from_bytes(&[0x4c; 64]).expect("64 bytes")
}

/// The device key and relay id every signing target uses for an author.
pub fn fixed_author() -> (DeviceSecret, [u8; 16]) {
    (
        DeviceSecret::from_bytes(&[0x61; 64]).expect("64 bytes"),
        [0x0a; 16],
    )
}

/// Target `sync_body`: bytes as the relay decodes a `/v1/sync` request body
/// and as a device decodes a `/v1/sync` response body. Whatever decodes must
/// re-encode to bytes that decode to the same value.
pub fn sync_body(data: &[u8]) {
    if let Ok(req) = decode::<SyncRequest>("sync request", data) {
        let again: SyncRequest =
            decode("sync request", &encode(&req)).expect("a re-encoded request decodes");
        assert!(again == req, "a request changed through encode/decode");
        let total: usize = req.push.iter().map(Envelope::wire_size).sum();
        assert!(total >= req.push.len(), "wire sizes are positive");
    }
    if let Ok(resp) = decode::<SyncResponse>("sync response", data) {
        let again: SyncResponse =
            decode("sync response", &encode(&resp)).expect("a re-encoded response decodes");
        assert!(again == resp, "a response changed through encode/decode");
    }
}

fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let text = serde_json::to_vec(&value).expect("a decoded body encodes");
    let back: T = serde_json::from_slice(&text).expect("a re-encoded body decodes");
    assert!(back == value, "a JSON body changed through encode/decode");
    Some(value)
}

/// Target `admin_json`: bytes as the relay decodes the enrollment and admin
/// bodies (`/v1/claim`, `/v1/join`, `/v1/invites`) and as a device decodes
/// the relay's JSON answers. The public, pure parts of the relay's checks
/// (team id and role parsing) run on what decodes.
pub fn admin_json(data: &[u8]) {
    if let Some(req) = json_round_trip::<EnrollRequest>(data) {
        if let Some(team) = TeamId::from_hex(&req.team_id) {
            // Surrounding whitespace is forgiven (`from_hex` trims it, as
            // for a typed id); nothing else is.
            assert_eq!(
                team.to_hex(),
                req.team_id.trim().to_ascii_lowercase(),
                "a team id parses only from its 32 hex digits"
            );
        }
        if let Some(id) = &req.enrollment_id {
            let _ = TeamId::from_hex(id);
        }
    }
    if let Some(req) = json_round_trip::<InviteRequest>(data) {
        assert_eq!(req.role.as_str().parse::<Role>().ok(), Some(req.role));
    }
    json_round_trip::<EnrollResponse>(data);
    json_round_trip::<InviteResponse>(data);
    json_round_trip::<MembersResponse>(data);
    json_round_trip::<ErrorBody>(data);
    json_round_trip::<TeamCreated>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Role>();
        let _ = TeamId::from_hex(text);
    }
}

/// The associated data `Envelope::seal` binds (kept in step with
/// `crates/proto/src/envelope.rs`; mode 2 of [`envelope`] fails loudly if it
/// drifts, because then nothing authenticates).
fn aad(team: &TeamId, doc: &[u8; 16], kind: EnvelopeKind, epoch: u32) -> Vec<u8> {
    let mut a = b"hb1".to_vec();
    a.extend_from_slice(&team.0);
    a.extend_from_slice(doc);
    a.push(match kind {
        EnvelopeKind::Change => 1,
        EnvelopeKind::Snapshot => 2,
    });
    a.extend_from_slice(&epoch.to_be_bytes());
    a
}

/// An envelope whose ciphertext authenticates under the fixed key but holds
/// `packed` as the (normally zstd-compressed) sealed bytes.
pub fn authentic(packed: &[u8], kind: EnvelopeKind) -> Envelope {
    let team = fixed_team();
    let doc = [9u8; 16];
    let nonce = [5u8; 24];
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(fixed_key().expose()));
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: packed,
                aad: &aad(&team, &doc, kind, 1),
            },
        )
        .expect("encryption of a slice succeeds");
    let mut env = Envelope::seal(&fixed_key(), &team, doc, kind, DocKindTag::Case, b"")
        .expect("an empty payload seals");
    env.nonce = nonce;
    env.ciphertext = ciphertext;
    env
}

fn open_authentic(env: &Envelope) {
    match env.open(&fixed_key(), &fixed_team()) {
        Ok(opened) => assert!(opened.bytes.len() <= MAX_PLAINTEXT, "unbounded plaintext"),
        Err(OpenError::Authentication(_)) => {
            panic!("an envelope sealed with the team key failed to authenticate")
        }
        Err(_) => {}
    }
}

/// Target `envelope`. The first byte picks a mode, the rest is the input:
///
/// - 0: a postcard envelope from anyone, opened with the fixed team key;
/// - 1: the input sealed as a document's bytes, then opened: the round trip
///   gives back the same bytes and kind, and another team cannot open it;
/// - 2: the input as the authenticated (decrypted, still compressed) bytes
///   of an envelope of the team, as a team member could send: opening never
///   panics, authenticates, and unpacks at most 64 MiB (zstd bombs);
/// - 3: the input as the whole uncompressed sealed plaintext (kind tag,
///   optional part header, bytes), compressed and sealed with the team key.
pub fn envelope(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(env) = decode::<Envelope>("envelope", rest) {
                let _ = env.open(&fixed_key(), &fixed_team());
            }
        }
        1 => {
            let (sel, bytes) = rest.split_first().unwrap_or((&0, &[]));
            let doc_kind = [
                DocKindTag::Case,
                DocKindTag::Handbook,
                DocKindTag::ShiftReport,
            ][usize::from(sel % 3)];
            let kind = if sel & 0x80 == 0 {
                EnvelopeKind::Change
            } else {
                EnvelopeKind::Snapshot
            };
            let doc = [sel.wrapping_add(1); 16];
            let env = Envelope::seal(&fixed_key(), &fixed_team(), doc, kind, doc_kind, bytes)
                .expect("any bytes seal");
            let opened = env
                .open(&fixed_key(), &fixed_team())
                .expect("a sealed envelope opens");
            assert!(opened.bytes == bytes, "the round trip changed the bytes");
            assert_eq!(opened.doc_kind, doc_kind);
            assert!(
                env.open(&fixed_key(), &TeamId([0x18; 16])).is_err(),
                "another team opened the envelope"
            );
            let wire: Envelope = decode("envelope", &encode(&env)).expect("an envelope decodes");
            assert!(wire == env, "an envelope changed through encode/decode");
        }
        2 => open_authentic(&authentic(rest, EnvelopeKind::Change)),
        _ => {
            let packed = zstd::bulk::compress(rest, 1).expect("zstd compresses any bytes");
            open_authentic(&authentic(&packed, EnvelopeKind::Snapshot));
        }
    }
}

/// Target `invite`. The first byte picks a mode:
///
/// - 0: the rest as typed or pasted text (lossy UTF-8);
/// - 1: the rest as the payload of a code with a valid prefix and checksum,
///   so the fuzzer reaches the postcard decoding behind the checksum.
///
/// A code that decodes encodes again to a code that decodes to the same
/// invite.
pub fn invite(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let code = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        use base64::Engine;
        use sha2::Digest;
        let mut bytes = rest.to_vec();
        let sum = sha2::Sha256::digest(rest);
        bytes.extend_from_slice(&sum[..4]);
        format!(
            "HB2.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    if let Ok(invite) = Invite::decode(&code) {
        let again = Invite::decode(&invite.encode()).expect("a re-encoded invite decodes");
        assert!(again == invite, "an invite changed through encode/decode");
    }
}

/// The label the lead's signature over a roster body starts with (kept in
/// step with `crates/proto/src/identity.rs`; mode 1 of [`identity`] fails
/// loudly if it drifts, because then no signature verifies).
const ROSTER_LABEL: &[u8] = b"heartbridge roster v1";

/// A public key from the first 32 bytes of `data` (zeros if shorter), and
/// the rest.
fn split_key(data: &[u8]) -> ([u8; 32], &[u8]) {
    let mut pk = [0u8; 32];
    let n = data.len().min(32);
    pk[..n].copy_from_slice(&data[..n]);
    (pk, &data[n..])
}

/// Target `identity`: what a device does with a roster or a signed envelope
/// it did not make. The first byte picks a mode:
///
/// - 0: 32 bytes as the lead's public key (any bytes: small-order, off the
///   curve), then the rest as a `SignedRoster` as the relay hands it out:
///   `from_bytes` decodes or refuses; what decodes re-encodes to the same
///   bytes' value, and `verify` answers for that key and for the fixed
///   lead's; a roster that verifies belongs to the team it was checked for;
/// - 1: the rest as a roster *body* the fixed lead really signed (so the
///   fuzzer reaches the roster decode behind the signature): `verify` never
///   says `BadSignature`; a roster that decodes is the team's and signs
///   again to a roster that verifies to the same value; under another team
///   it is `OtherTeam`, with one signature bit flipped `BadSignature`;
/// - 2: 32 bytes as an author's public key, then the rest as a postcard
///   envelope from anyone: `Envelope::verify` answers (true only for a
///   signature of that key) for that key and for the fixed author's;
/// - 3: the rest as a postcard envelope, signed by the fixed author: it
///   verifies, also after encode/decode, and no longer verifies under
///   another team, another key, or with its covers, author or ciphertext
///   changed.
pub fn identity(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let team = fixed_team();
    let lead_pk = fixed_lead().public().sign;
    match mode % 4 {
        0 => {
            let (pk, bytes) = split_key(rest);
            let Ok(signed) = SignedRoster::from_bytes(bytes) else {
                return;
            };
            let again =
                SignedRoster::from_bytes(&signed.to_bytes()).expect("a re-encoded roster decodes");
            assert!(again == signed, "a roster changed through encode/decode");
            for key in [pk, lead_pk] {
                match signed.verify(&key, &team) {
                    Ok(roster) => {
                        assert_eq!(roster.team, team.0, "a roster of another team verified")
                    }
                    Err(RosterError::TooLarge) => {
                        panic!("verify called a decoded roster too large")
                    }
                    Err(_) => {}
                }
            }
        }
        1 => {
            let mut message = ROSTER_LABEL.to_vec();
            message.extend_from_slice(rest);
            let signed = SignedRoster {
                body: rest.to_vec(),
                sig: fixed_lead().sign(&message),
            };
            match signed.verify(&lead_pk, &team) {
                Err(RosterError::BadSignature) => {
                    panic!("the lead's signature over a roster failed to verify")
                }
                Err(RosterError::TooLarge) => panic!("verify called a roster too large"),
                Err(_) => {}
                Ok(roster) => {
                    assert_eq!(roster.team, team.0, "a roster of another team verified");
                    let resigned = SignedRoster::sign(&roster, &fixed_lead());
                    let back = resigned
                        .verify(&lead_pk, &team)
                        .expect("a re-signed roster verifies");
                    assert!(back == roster, "a roster changed through sign/verify");
                    assert_eq!(
                        signed.verify(&lead_pk, &TeamId([0x18; 16])),
                        Err(RosterError::OtherTeam),
                        "a roster verified for another team"
                    );
                }
            }
            let mut flipped = signed.clone();
            flipped.sig[usize::from(rest.first().copied().unwrap_or(0)) % 64] ^= 1;
            assert_eq!(
                flipped.verify(&lead_pk, &team),
                Err(RosterError::BadSignature),
                "a roster verified with a changed signature"
            );
        }
        2 => {
            let (pk, bytes) = split_key(rest);
            if let Ok(env) = decode::<Envelope>("envelope", bytes) {
                let _ = env.verify(&team, &pk);
                let _ = env.verify(&team, &fixed_author().0.public().sign);
            }
        }
        _ => {
            let Ok(mut env) = decode::<Envelope>("envelope", rest) else {
                return;
            };
            let (secret, author) = fixed_author();
            let pk = secret.public().sign;
            env.sign(&team, author, &secret);
            assert!(env.verify(&team, &pk), "a signed envelope failed to verify");
            let wire: Envelope = decode("envelope", &encode(&env)).expect("an envelope decodes");
            assert!(
                wire.verify(&team, &pk),
                "a signed envelope failed to verify after the wire"
            );
            assert!(
                !env.verify(&TeamId([0x18; 16]), &pk),
                "an envelope verified for another team"
            );
            assert!(
                !env.verify(&team, &lead_pk),
                "an envelope verified under another key"
            );
            let mut e = env.clone();
            e.covers = e.covers.wrapping_add(1);
            assert!(
                !e.verify(&team, &pk),
                "an envelope verified with its covers changed"
            );
            let mut e = env.clone();
            e.author[0] ^= 1;
            assert!(
                !e.verify(&team, &pk),
                "an envelope verified with its author changed"
            );
            let mut e = env;
            e.ciphertext.push(0);
            assert!(
                !e.verify(&team, &pk),
                "an envelope verified with its ciphertext changed"
            );
        }
    }
}
