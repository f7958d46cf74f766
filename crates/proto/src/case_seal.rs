//! Need to know: per-case keys, the team's oversight key, and key grants.
//!
//! A case's payloads (Automerge changes or a saved document) are sealed
//! under the case's own key *inside* the team envelope, so a team member
//! without the case key opens the envelope and finds only ciphertext:
//!
//! `case payload = "hbc1" ‖ key id (8) ‖ nonce (24) ‖ XChaCha20-Poly1305(case key, nonce, payload, aad)`
//!
//! The nonce is a keyed hash of the payload (synthetic, as in SIV): sealing
//! the same payload again gives the same bytes, so a retried push keeps its
//! content id and the relay deduplicates it; equal payloads are the only
//! thing it reveals, which the content id reveals already.
//!
//! Statistics facts are sealed (HPKE, RFC 9180) to the team's oversight
//! public key: every device can write them, only devices granted the
//! oversight secret (the lead and supervisors) can read them:
//!
//! `facts payload = "hbf1" ‖ key id (8) ‖ enc (32) ‖ HPKE ciphertext`
//!
//! A [`Grant`] gives one key (every generation of a case key, or the
//! oversight secret) to some devices, each copy HPKE-sealed to the
//! device's X25519 key. Grants travel in the team envelope of the team's
//! grants document, signed by their granter like every envelope.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::{DeviceId, DeviceSecret};
use crate::key::TeamId;

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

const CASE_MAGIC: &[u8; 4] = b"hbc1";
const FACTS_MAGIC: &[u8; 4] = b"hbf1";
const CASE_HEADER: usize = 4 + 8 + 24;
const FACTS_HEADER: usize = 4 + 8 + 32;

/// The grant scope of the team's oversight key (no case has this id).
pub const OVERSIGHT_SCOPE: [u8; 16] = [0; 16];

/// A case key (one generation) or the oversight secret: 32 bytes, zeroized
/// on drop, `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for CaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaseKey({})", hex::encode(self.id()))
    }
}

impl CaseKey {
    pub fn generate() -> Self {
        CaseKey(Zeroizing::new(rand::random()))
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        CaseKey(Zeroizing::new(b))
    }
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
    /// The key's public name: a hash of it (for the oversight secret, a
    /// hash of its public key, so writers name it too).
    pub fn id(&self) -> [u8; 8] {
        let mut h = Sha256::new();
        h.update(b"heartbridge case key id v1");
        h.update(self.0.as_ref());
        let out = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&out[..8]);
        id
    }
    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()).expect("HMAC takes any key length")
    }
}

/// Why a sealed payload did not open. Says nothing of the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CaseSealError {
    #[error("the payload is not sealed for a case or is cut short")]
    Malformed,
    #[error("the payload does not open with this key: another key, team or document, or altered")]
    Authentication,
}

fn case_aad(team: &TeamId, doc: &[u8; 16], key_id: &[u8; 8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + 16 + 16 + 8);
    a.extend_from_slice(CASE_MAGIC);
    a.extend_from_slice(&team.0);
    a.extend_from_slice(doc);
    a.extend_from_slice(key_id);
    a
}

/// Seals a case payload under `key`; deterministic for equal inputs.
pub fn seal_case(key: &CaseKey, team: &TeamId, doc: &[u8; 16], payload: &[u8]) -> Vec<u8> {
    let key_id = key.id();
    let mut m = key.mac();
    m.update(b"heartbridge case nonce v1");
    m.update(&team.0);
    m.update(doc);
    m.update(payload);
    let tag = m.finalize().into_bytes();
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&tag[..24]);
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: payload,
                aad: &case_aad(team, doc, &key_id),
            },
        )
        .expect("XChaCha20-Poly1305 seals any payload under 256 GiB");
    let mut out = Vec::with_capacity(CASE_HEADER + ct.len());
    out.extend_from_slice(CASE_MAGIC);
    out.extend_from_slice(&key_id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// The key a sealed case payload needs, or `None` if the payload is not
/// sealed (a case written before per-case keys: plain Automerge bytes).
pub fn case_key_id(payload: &[u8]) -> Option<[u8; 8]> {
    if payload.len() < CASE_HEADER || &payload[..4] != CASE_MAGIC {
        return None;
    }
    payload[4..12].try_into().ok()
}

/// Opens a sealed case payload.
pub fn open_case(
    key: &CaseKey,
    team: &TeamId,
    doc: &[u8; 16],
    sealed: &[u8],
) -> Result<Vec<u8>, CaseSealError> {
    let key_id = case_key_id(sealed).ok_or(CaseSealError::Malformed)?;
    if key_id != key.id() {
        return Err(CaseSealError::Authentication);
    }
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            XNonce::from_slice(&sealed[12..CASE_HEADER]),
            Payload {
                msg: &sealed[CASE_HEADER..],
                aad: &case_aad(team, doc, &key_id),
            },
        )
        .map_err(|_| CaseSealError::Authentication)
}

/// The public key of an oversight secret.
pub fn oversight_public(secret: &CaseKey) -> [u8; 32] {
    let (_, pk) = HpkeKem::derive_keypair(secret.expose());
    let mut out = [0u8; 32];
    out.copy_from_slice(&pk.to_bytes());
    out
}

/// The name of the oversight key with public key `pk`: what facts payloads
/// and grants carry.
pub fn oversight_key_id(pk: &[u8; 32]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"heartbridge oversight key id v1");
    h.update(pk);
    let out = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&out[..8]);
    id
}

fn facts_info(team: &TeamId) -> Vec<u8> {
    let mut i = b"heartbridge facts v1".to_vec();
    i.extend_from_slice(&team.0);
    i
}

/// Seals statistics facts to the oversight public key `pk`.
pub fn seal_facts(pk: &[u8; 32], team: &TeamId, facts: &[u8]) -> Option<Vec<u8>> {
    let public = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(pk).ok()?;
    let key_id = oversight_key_id(pk);
    let (enc, ct) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &public,
        &facts_info(team),
        facts,
        &key_id,
    )
    .ok()?;
    let mut out = Vec::with_capacity(FACTS_HEADER + ct.len());
    out.extend_from_slice(FACTS_MAGIC);
    out.extend_from_slice(&key_id);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    Some(out)
}

/// The oversight key a facts payload is sealed to.
pub fn facts_key_id(sealed: &[u8]) -> Option<[u8; 8]> {
    if sealed.len() < FACTS_HEADER || &sealed[..4] != FACTS_MAGIC {
        return None;
    }
    sealed[4..12].try_into().ok()
}

/// Opens a facts payload with the oversight secret.
pub fn open_facts(
    secret: &CaseKey,
    team: &TeamId,
    sealed: &[u8],
) -> Result<Vec<u8>, CaseSealError> {
    let key_id = facts_key_id(sealed).ok_or(CaseSealError::Malformed)?;
    if key_id != oversight_key_id(&oversight_public(secret)) {
        return Err(CaseSealError::Authentication);
    }
    let (sk, _) = HpkeKem::derive_keypair(secret.expose());
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&sealed[12..FACTS_HEADER])
        .map_err(|_| CaseSealError::Malformed)?;
    hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &facts_info(team),
        &sealed[FACTS_HEADER..],
        &key_id,
    )
    .map_err(|_| CaseSealError::Authentication)
}

/// One device's copy of a granted key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTo {
    pub device: DeviceId,
    pub enc: [u8; 32],
    #[serde(with = "crate::envelope::bytes_vec")]
    pub sealed: Vec<u8>,
}

/// A grant: key `key_id` (generation `gen`) of `scope` — a case's document
/// id, or [`OVERSIGHT_SCOPE`] — given to the devices in `to`. Each copy
/// holds every generation the granter holds of that scope, so a new reader
/// reads the case's whole history.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub scope: [u8; 16],
    pub key_id: [u8; 8],
    pub gen: u32,
    pub to: Vec<GrantTo>,
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("scope", &hex::encode(self.scope))
            .field("key_id", &hex::encode(self.key_id))
            .field("gen", &self.gen)
            .field(
                "to",
                &self
                    .to
                    .iter()
                    .map(|t| hex::encode(t.device))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn grant_info(team: &TeamId, scope: &[u8; 16], key_id: &[u8; 8], device: &DeviceId) -> Vec<u8> {
    let mut i = b"heartbridge grant v1".to_vec();
    i.extend_from_slice(&team.0);
    i.extend_from_slice(scope);
    i.extend_from_slice(key_id);
    i.extend_from_slice(device);
    i
}

#[derive(Serialize, Deserialize)]
struct Generations(Vec<(u32, [u8; 32])>);

impl Grant {
    /// Seals `keys` (generation, key) to each recipient (device, X25519
    /// public key). A recipient whose key does not parse is left out.
    pub fn make(
        team: &TeamId,
        scope: [u8; 16],
        key_id: [u8; 8],
        gen: u32,
        keys: &[(u32, CaseKey)],
        recipients: &[(DeviceId, [u8; 32])],
    ) -> Grant {
        let plain = Zeroizing::new(
            postcard::to_stdvec(&Generations(
                keys.iter().map(|(g, k)| (*g, *k.expose())).collect(),
            ))
            .expect("key lists always serialize"),
        );
        let mut to = Vec::new();
        for (device, kx) in recipients {
            let Ok(pk) = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(kx) else {
                continue;
            };
            let Ok((enc, sealed)) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem>(
                &OpModeS::Base,
                &pk,
                &grant_info(team, &scope, &key_id, device),
                &plain,
                &gen.to_be_bytes(),
            ) else {
                continue;
            };
            let mut e = [0u8; 32];
            e.copy_from_slice(&enc.to_bytes());
            to.push(GrantTo {
                device: *device,
                enc: e,
                sealed,
            });
        }
        Grant {
            scope,
            key_id,
            gen,
            to,
        }
    }

    /// The keys this grant gives device `me_id`, if it is a recipient.
    pub fn open_for(
        &self,
        team: &TeamId,
        me: &DeviceSecret,
        me_id: &DeviceId,
    ) -> Option<Vec<(u32, CaseKey)>> {
        let copy = self.to.iter().find(|t| &t.device == me_id)?;
        let (sk, _) = me.kx_pair();
        let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&copy.enc).ok()?;
        let plain = Zeroizing::new(
            hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
                &OpModeR::Base,
                &sk,
                &enc,
                &grant_info(team, &self.scope, &self.key_id, me_id),
                &copy.sealed,
                &self.gen.to_be_bytes(),
            )
            .ok()?,
        );
        let Generations(list) = postcard::from_bytes(&plain).ok()?;
        Some(
            list.into_iter()
                .map(|(g, k)| (g, CaseKey::from_bytes(k)))
                .collect(),
        )
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("grants always serialize")
    }

    pub fn from_bytes(b: &[u8]) -> Option<Grant> {
        postcard::from_bytes(b).ok()
    }
}

/// Frames one record (a grant, a facts payload) so that records
/// concatenated into one batch can be told apart: length (u32 BE) ‖ bytes.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + record.len());
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(record);
    out
}

/// Splits a payload of framed records; `None` if a frame is cut short.
pub fn unframe(mut payload: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        if payload.len() < 4 {
            return None;
        }
        let len = u32::from_be_bytes(payload[..4].try_into().ok()?) as usize;
        let rest = &payload[4..];
        if rest.len() < len {
            return None;
        }
        out.push(&rest[..len]);
        payload = &rest[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_payload_opens_only_with_its_key_team_and_document() {
        let team = TeamId::random();
        let key = CaseKey::generate();
        let doc = [7u8; 16];
        let sealed = seal_case(&key, &team, &doc, b"automerge bytes");
        assert_eq!(case_key_id(&sealed), Some(key.id()));
        assert!(!sealed.windows(9).any(|w| w == b"automerge"));
        assert_eq!(
            open_case(&key, &team, &doc, &sealed).unwrap(),
            b"automerge bytes"
        );
        assert_eq!(
            open_case(&CaseKey::generate(), &team, &doc, &sealed),
            Err(CaseSealError::Authentication)
        );
        assert_eq!(
            open_case(&key, &TeamId::random(), &doc, &sealed),
            Err(CaseSealError::Authentication)
        );
        assert_eq!(
            open_case(&key, &team, &[8u8; 16], &sealed),
            Err(CaseSealError::Authentication)
        );
        let mut bent = sealed.clone();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        assert_eq!(
            open_case(&key, &team, &doc, &bent),
            Err(CaseSealError::Authentication)
        );
        // Sealing again gives the same bytes (a retried push deduplicates).
        assert_eq!(seal_case(&key, &team, &doc, b"automerge bytes"), sealed);
        assert_ne!(seal_case(&key, &team, &doc, b"automerge bytez"), sealed);
        // Plain Automerge bytes are not taken for a sealed payload.
        assert_eq!(case_key_id(&[0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]), None);
    }

    #[test]
    fn facts_open_only_with_the_oversight_secret() {
        let team = TeamId::random();
        let secret = CaseKey::generate();
        let pk = oversight_public(&secret);
        let sealed = seal_facts(&pk, &team, b"[facts]").unwrap();
        assert_eq!(facts_key_id(&sealed), Some(oversight_key_id(&pk)));
        assert_eq!(open_facts(&secret, &team, &sealed).unwrap(), b"[facts]");
        assert!(open_facts(&CaseKey::generate(), &team, &sealed).is_err());
        assert!(open_facts(&secret, &TeamId::random(), &sealed).is_err());
    }

    #[test]
    fn a_grant_opens_only_for_its_recipients_and_carries_every_generation() {
        let team = TeamId::random();
        let a = DeviceSecret::generate();
        let b = DeviceSecret::generate();
        let c = DeviceSecret::generate();
        let (ida, idb, idc) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let k1 = CaseKey::generate();
        let k2 = CaseKey::generate();
        let g = Grant::make(
            &team,
            [9u8; 16],
            k2.id(),
            2,
            &[(1, k1.clone()), (2, k2.clone())],
            &[(ida, a.public().kx), (idb, b.public().kx)],
        );
        let back = Grant::from_bytes(&g.to_bytes()).unwrap();
        let got = back.open_for(&team, &a, &ida).unwrap();
        assert_eq!(got, vec![(1, k1.clone()), (2, k2.clone())]);
        assert!(back.open_for(&team, &b, &idb).is_some());
        // Not a recipient, or a recipient's id with another device's key.
        assert!(back.open_for(&team, &c, &idc).is_none());
        assert!(back.open_for(&team, &c, &ida).is_none());
        // A copy moved to another scope or generation does not open.
        let mut moved = back.clone();
        moved.gen = 3;
        assert!(moved.open_for(&team, &a, &ida).is_none());
        let mut moved = back;
        moved.scope = [8u8; 16];
        assert!(moved.open_for(&team, &a, &ida).is_none());
    }

    #[test]
    fn framed_records_split_back_and_a_cut_frame_is_refused() {
        let mut p = frame(b"one");
        p.extend(frame(b""));
        p.extend(frame(b"three"));
        assert_eq!(
            unframe(&p).unwrap(),
            vec![&b"one"[..], &b""[..], &b"three"[..]]
        );
        assert!(unframe(&p[..p.len() - 1]).is_none());
        assert!(unframe(&[0, 0]).is_none());
        assert_eq!(unframe(&[]).unwrap().len(), 0);
    }
}
