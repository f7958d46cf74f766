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
use heartbridge_proto::case_seal::{self, CaseKey, CaseSealError, Grant};
use heartbridge_proto::identity::RosterError;
use heartbridge_proto::{
    decode, encode, DeviceId, DeviceSecret, DocKindTag, EnrollRequest, EnrollResponse, Envelope,
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

/// The case key target `case_seal` seals and opens case payloads with.
pub fn fixed_case_key() -> CaseKey {
    CaseKey::from_bytes([0xca; 32])
}

/// The case (document id) target `case_seal` seals case payloads for.
pub fn fixed_case_doc() -> [u8; 16] {
    [0xd0; 16]
}

/// The oversight secret target `case_seal` opens facts with.
pub fn fixed_oversight() -> CaseKey {
    CaseKey::from_bytes([0x0f; 32])
}

/// The device (secret, relay id) target `case_seal` opens grants as, and a
/// second device that is granted the same keys.
pub fn fixed_devices() -> [(DeviceSecret, DeviceId); 2] {
    [
        (
            DeviceSecret::from_bytes(&[0xde; 64]).expect("64 bytes"),
            [0xdd; 16],
        ),
        (
            DeviceSecret::from_bytes(&[0x0d; 64]).expect("64 bytes"),
            [0x0e; 16],
        ),
    ]
}

/// The X25519 public keys of [`fixed_devices`], derived once (a scalar
/// multiplication each, slow under the coverage instrumentation).
pub fn fixed_device_kx() -> [[u8; 32]; 2] {
    static KX: std::sync::OnceLock<[[u8; 32]; 2]> = std::sync::OnceLock::new();
    *KX.get_or_init(|| fixed_devices().map(|(secret, _)| secret.public().kx))
}

/// The relay id of the fuzz-chosen recipient of a grant made in mode 1.
const FUZZ_RECIPIENT: DeviceId = [0xee; 16];

/// What `case_seal::unframe` must accept: a walk over the frames with the
/// lengths in u64 (so no cast or addition can wrap).
fn frames_whole(mut b: &[u8]) -> bool {
    loop {
        if b.is_empty() {
            return true;
        }
        if b.len() < 4 {
            return false;
        }
        let len = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if ((b.len() - 4) as u64) < len {
            return false;
        }
        b = &b[4 + len as usize..];
    }
}

/// Positions to flip one bit at in a sealed payload of `len` bytes: every
/// byte of the first 64 and the last 32 (header, nonce or `enc`, tag), and
/// 32 spread over the rest, so a check stays linear in the input.
fn flip_positions(len: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (0..len.min(64)).collect();
    out.extend(len.saturating_sub(32).max(64)..len);
    if len > 96 {
        let step = ((len - 96) / 32).max(1);
        out.extend((64..len - 32).step_by(step));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `bytes` with bit `(pos + salt) % 8` of byte `pos` flipped.
fn flipped(bytes: &[u8], pos: usize, salt: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[pos] ^= 1 << ((pos + usize::from(salt)) % 8);
    b
}

/// The keys of a grant as comparable values (generation, key bytes).
fn key_list(keys: &[(u32, CaseKey)]) -> Vec<(u32, [u8; 32])> {
    keys.iter().map(|(g, k)| (*g, *k.expose())).collect()
}

/// A grant that opened for `me` at `me_id` opens for nobody else and for
/// nothing else: not with another device's secret, nor for another team,
/// nor with its generation, scope, key id, or its copy's `enc` or sealed
/// bytes changed.
fn grant_opens_only_as_made(g: &Grant, me: &DeviceSecret, me_id: &DeviceId, salt: u8) {
    let team = fixed_team();
    // `me` is one of the fixed devices; `other` is the other one.
    let [(first, _), (second, _)] = fixed_devices();
    let other = if *first.to_bytes() == *me.to_bytes() {
        second
    } else {
        first
    };
    assert!(
        g.open_for(&team, &other, me_id).is_none(),
        "a grant's copy opened with another device's secret"
    );
    assert!(
        g.open_for(&TeamId([0x18; 16]), me, me_id).is_none(),
        "a grant opened for another team"
    );
    let mut moved = g.clone();
    moved.gen = moved.gen.wrapping_add(1);
    assert!(
        moved.open_for(&team, me, me_id).is_none(),
        "a grant opened with its generation changed"
    );
    let mut moved = g.clone();
    moved.scope[usize::from(salt) % 16] ^= 1;
    assert!(
        moved.open_for(&team, me, me_id).is_none(),
        "a grant opened with its scope changed"
    );
    let mut moved = g.clone();
    moved.key_id[usize::from(salt) % 8] ^= 1;
    assert!(
        moved.open_for(&team, me, me_id).is_none(),
        "a grant opened with its key id changed"
    );
    let copy =
        g.to.iter()
            .position(|t| &t.device == me_id)
            .expect("a grant that opened has a copy for the device");
    // HPKE opens cost scalar multiplications (slow under the coverage
    // instrumentation): one position of `enc`, two of the sealed bytes.
    let mut moved = g.clone();
    moved.to[copy].enc = flipped(&g.to[copy].enc, usize::from(salt) % 32, salt)
        .try_into()
        .expect("32 bytes");
    assert!(
        moved.open_for(&team, me, me_id).is_none(),
        "a grant opened with its copy's enc changed"
    );
    let len = g.to[copy].sealed.len();
    for pos in [usize::from(salt) % len, len - 1] {
        let mut moved = g.clone();
        moved.to[copy].sealed = flipped(&g.to[copy].sealed, pos, salt);
        assert!(
            moved.open_for(&team, me, me_id).is_none(),
            "a grant opened with its copy's sealed bytes changed"
        );
    }
}

/// Target `case_seal`: what a device does with the need-to-know payloads
/// (`heartbridge_proto::case_seal`) it pulls from the relay. The first byte
/// picks a mode:
///
/// - 0: the rest as a batch of framed records: `unframe` never panics,
///   accepts exactly the batches whose frames are whole, and what it
///   returns frames back to the same bytes;
/// - 1: the rest as a `Grant`: `from_bytes` decodes or refuses, what decodes
///   re-encodes to the same value, and `open_for` the fixed device never
///   panics and opens only a copy really sealed to that device (not with
///   another device's secret, not for another team, not with the
///   generation, scope, key id or copy changed). Then a grant is made with
///   `Grant::make` from the rest (a generation, a 32-byte recipient key,
///   then (generation, key) pairs of 36 bytes): it round-trips through
///   bytes and opens to exactly those keys for each fixed device, and for
///   nobody else;
/// - 2: the rest as a sealed case payload: `case_key_id` and `open_case`
///   with the fixed key never panic, a payload opens only if `seal_case`
///   makes exactly those bytes from what it opened to (same key, team and
///   document), and one flipped bit fails; then the rest is sealed with
///   `seal_case` and must open back only with that key, team and document,
///   and not with one bit flipped anywhere (header, nonce, ciphertext, tag);
/// - 3: likewise for facts: `facts_key_id` and `open_facts` with the fixed
///   oversight secret on the rest; the rest sealed with `seal_facts` to the
///   fixed oversight key opens back, not for another team or secret nor
///   with a bit flipped; and 32 bytes of the rest as an oversight public key
///   (any bytes) that `seal_facts` seals to or refuses;
/// - 4: 32 bytes as a case key, the rest as a payload: `seal_case` gives the
///   same bytes twice, other bytes (and another nonce) for another payload,
///   team or document, and opens back.
pub fn case_seal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let team = fixed_team();
    let salt = rest.first().copied().unwrap_or(0);
    match mode % 5 {
        0 => match case_seal::unframe(rest) {
            Some(records) => {
                let again: Vec<u8> = records.iter().flat_map(|r| case_seal::frame(r)).collect();
                assert!(again == rest, "framed records framed back to other bytes");
            }
            None => assert!(!frames_whole(rest), "unframe refused whole frames"),
        },
        1 => {
            let devices = fixed_devices();
            if let Some(g) = Grant::from_bytes(rest) {
                let back = Grant::from_bytes(&g.to_bytes()).expect("a re-encoded grant decodes");
                assert!(back == g, "a grant changed through encode/decode");
                // The full check for the first fixed device a copy opens for
                // (each open costs scalar multiplications).
                let mut checked = false;
                for (me, me_id) in &devices {
                    if g.open_for(&team, me, me_id).is_some() && !checked {
                        grant_opens_only_as_made(&g, me, me_id, salt);
                        checked = true;
                    }
                }
                let _ = g.open_for(&team, &devices[0].0, &FUZZ_RECIPIENT);
            }
            make_grant(rest, salt);
        }
        2 => {
            let key = fixed_case_key();
            let doc = fixed_case_doc();
            let id = case_seal::case_key_id(rest);
            assert_eq!(
                id.is_some(),
                rest.len() >= 36 && rest.starts_with(b"hbc1"),
                "case_key_id misread the header"
            );
            match case_seal::open_case(&key, &team, &doc, rest) {
                Ok(plain) => {
                    assert!(
                        case_seal::seal_case(&key, &team, &doc, &plain) == rest,
                        "a case payload opened that seal_case did not make"
                    );
                    case_opens_only_as_sealed(&key, &doc, rest, salt);
                }
                Err(CaseSealError::Malformed) => {
                    assert!(
                        id.is_none(),
                        "a case payload with a header called malformed"
                    )
                }
                Err(CaseSealError::Authentication) => {
                    assert!(id.is_some(), "a headerless payload failed authentication")
                }
            }
            let sealed = case_seal::seal_case(&key, &team, &doc, rest);
            assert!(
                case_seal::case_key_id(&sealed) == Some(key.id()),
                "a sealed case payload names another key"
            );
            assert!(
                case_seal::open_case(&key, &team, &doc, &sealed).as_deref() == Ok(rest),
                "a sealed case payload did not open back to its bytes"
            );
            case_opens_only_as_sealed(&key, &doc, &sealed, salt);
        }
        3 => {
            let secret = fixed_oversight();
            let pk = case_seal::oversight_public(&secret);
            let key_id = case_seal::oversight_key_id(&pk);
            let id = case_seal::facts_key_id(rest);
            assert_eq!(
                id.is_some(),
                rest.len() >= 44 && rest.starts_with(b"hbf1"),
                "facts_key_id misread the header"
            );
            match case_seal::open_facts(&secret, &team, rest) {
                Ok(_) => {
                    assert!(id == Some(key_id), "facts opened under another key id");
                    facts_open_only_as_sealed(&secret, rest, salt);
                }
                Err(CaseSealError::Malformed) => {}
                Err(CaseSealError::Authentication) => {
                    assert!(id.is_some(), "a headerless payload failed authentication")
                }
            }
            let sealed =
                case_seal::seal_facts(&pk, &team, rest).expect("the oversight key seals facts");
            assert!(
                case_seal::facts_key_id(&sealed) == Some(key_id),
                "sealed facts name another key"
            );
            assert!(
                case_seal::open_facts(&secret, &team, &sealed).as_deref() == Ok(rest),
                "sealed facts did not open back to their bytes"
            );
            facts_open_only_as_sealed(&secret, &sealed, salt);
            let (any_pk, facts) = split_key(rest);
            if let Some(sealed) = case_seal::seal_facts(&any_pk, &team, facts) {
                assert!(
                    case_seal::facts_key_id(&sealed) == Some(case_seal::oversight_key_id(&any_pk)),
                    "sealed facts name another key"
                );
                if any_pk != pk {
                    assert!(
                        case_seal::open_facts(&secret, &team, &sealed).is_err(),
                        "facts sealed to another key opened"
                    );
                }
            }
        }
        _ => {
            let (kb, payload) = split_key(rest);
            let key = CaseKey::from_bytes(kb);
            let doc = fixed_case_doc();
            let a = case_seal::seal_case(&key, &team, &doc, payload);
            assert!(
                case_seal::seal_case(&key, &team, &doc, payload) == a,
                "sealing the same case payload twice gave other bytes"
            );
            assert_eq!(a.len(), 36 + payload.len() + 16, "a sealed payload's size");
            let mut longer = payload.to_vec();
            longer.push(salt);
            let mut others = vec![
                case_seal::seal_case(&key, &team, &doc, &longer),
                case_seal::seal_case(&key, &TeamId([0x18; 16]), &doc, payload),
                case_seal::seal_case(&key, &team, &[0xd1; 16], payload),
            ];
            if !payload.is_empty() {
                let pos = usize::from(salt) % payload.len();
                others.push(case_seal::seal_case(
                    &key,
                    &team,
                    &doc,
                    &flipped(payload, pos, salt),
                ));
            }
            for b in &others {
                assert!(b[12..36] != a[12..36], "two case payloads share a nonce");
            }
            assert!(
                case_seal::open_case(&key, &team, &doc, &a).as_deref() == Ok(payload),
                "a sealed case payload did not open back to its bytes"
            );
        }
    }
}

/// A case payload that opens with `key` for the fixed team and `doc` does
/// not open with another key, team or document, nor with one bit flipped.
fn case_opens_only_as_sealed(key: &CaseKey, doc: &[u8; 16], sealed: &[u8], salt: u8) {
    let team = fixed_team();
    assert!(
        case_seal::open_case(&CaseKey::from_bytes([0xcb; 32]), &team, doc, sealed).is_err(),
        "a case payload opened with another key"
    );
    assert!(
        case_seal::open_case(key, &TeamId([0x18; 16]), doc, sealed).is_err(),
        "a case payload opened for another team"
    );
    let mut other_doc = *doc;
    other_doc[0] ^= 1;
    assert!(
        case_seal::open_case(key, &team, &other_doc, sealed).is_err(),
        "a case payload opened for another document"
    );
    for pos in flip_positions(sealed.len()) {
        assert!(
            case_seal::open_case(key, &team, doc, &flipped(sealed, pos, salt)).is_err(),
            "a case payload opened with one bit flipped"
        );
    }
}

/// Facts that open with `secret` for the fixed team do not open with
/// another secret or team, nor with one bit flipped.
fn facts_open_only_as_sealed(secret: &CaseKey, sealed: &[u8], salt: u8) {
    let team = fixed_team();
    assert!(
        case_seal::open_facts(&CaseKey::from_bytes([0x10; 32]), &team, sealed).is_err(),
        "facts opened with another oversight secret"
    );
    assert!(
        case_seal::open_facts(secret, &TeamId([0x18; 16]), sealed).is_err(),
        "facts opened for another team"
    );
    // Each region: magic, key id, enc, ciphertext and tag (HPKE opens
    // cost scalar multiplications, so one position in each, not all).
    let s = usize::from(salt);
    let mut positions = vec![s % 4, 4 + s % 8, 12 + s % 32, sealed.len() - 1];
    if sealed.len() > 44 {
        positions.push(44 + s % (sealed.len() - 44));
    }
    for pos in positions {
        assert!(
            case_seal::open_facts(secret, &team, &flipped(sealed, pos, salt)).is_err(),
            "facts opened with one bit flipped"
        );
    }
}

/// Mode 1's second half: a grant made with `Grant::make` from fuzz-chosen
/// generations and keys, to the two fixed devices and one recipient key
/// chosen by the fuzzer (any 32 bytes; one that does not parse is left
/// out).
fn make_grant(rest: &[u8], salt: u8) {
    let team = fixed_team();
    let mut head = [0u8; 36];
    let n = rest.len().min(36);
    head[..n].copy_from_slice(&rest[..n]);
    let gen = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let any_kx: [u8; 32] = head[4..].try_into().expect("32 bytes");
    let keys: Vec<(u32, CaseKey)> = rest[n..]
        .chunks(36)
        .map(|c| {
            let mut b = [0u8; 36];
            b[..c.len()].copy_from_slice(c);
            (
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                CaseKey::from_bytes(b[4..].try_into().expect("32 bytes")),
            )
        })
        .collect();
    let scope = if gen & 1 == 0 {
        fixed_case_doc()
    } else {
        case_seal::OVERSIGHT_SCOPE
    };
    let key_id = keys.last().map(|(_, k)| k.id()).unwrap_or([0; 8]);
    let devices = fixed_devices();
    let kx = fixed_device_kx();
    let recipients = [
        (devices[0].1, kx[0]),
        (FUZZ_RECIPIENT, any_kx),
        (devices[1].1, kx[1]),
    ];
    let g = Grant::make(&team, scope, key_id, gen, &keys, &recipients);
    assert!(
        g.scope == scope && g.key_id == key_id && g.gen == gen,
        "a grant names another scope, key or generation"
    );
    assert!(
        g.to.len() >= 2 && g.to.len() <= 3,
        "a grant lost a device or gained one"
    );
    assert!(
        g.to.iter()
            .all(|t| recipients.iter().any(|(id, _)| *id == t.device)),
        "a grant has a copy for a device it was not made for"
    );
    let back = Grant::from_bytes(&g.to_bytes()).expect("a made grant decodes");
    assert!(back == g, "a made grant changed through encode/decode");
    let want = key_list(&keys);
    for ((me, me_id), me_kx) in devices.iter().zip(kx) {
        let got = back
            .open_for(&team, me, me_id)
            .expect("a grant opens for its recipient");
        assert!(key_list(&got) == want, "a grant opened to other keys");
        if any_kx != me_kx {
            assert!(
                back.open_for(&team, me, &FUZZ_RECIPIENT).is_none(),
                "a device opened another recipient's copy"
            );
        }
    }
    grant_opens_only_as_made(&back, &devices[0].0, &devices[0].1, salt);
    let [(a, _), (_, id_b)] = &devices;
    assert!(
        back.open_for(&team, a, id_b).is_none(),
        "a device opened another device's copy"
    );
    assert!(
        back.open_for(&team, a, &[0x77; 16]).is_none(),
        "a device not granted opened a grant"
    );
}
