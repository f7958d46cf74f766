//! Device identities, the team roster the lead signs, and key epochs.
//!
//! Every device holds an Ed25519 signing key (it signs every envelope it
//! pushes) and an X25519 key (the lead seals each new key epoch to it with
//! HPKE, RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305). The team creator's signing key is the team's root of
//! trust: its public half travels in every invite code, and only it signs
//! the [`Roster`].

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::invite::Role;
use crate::key::{TeamId, TeamKey};

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// A relay device id: 16 bytes (32 hex digits on the JSON endpoints).
pub type DeviceId = [u8; 16];

/// Parses a device id from its 32 hex digits.
pub fn device_from_hex(s: &str) -> Option<DeviceId> {
    hex::decode(s.trim()).ok()?.try_into().ok()
}

/// A device's two secret keys (32-byte seeds). Zeroized on drop; `Debug`
/// shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceSecret {
    sign: [u8; 32],
    kx: [u8; 32],
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSecret(<redacted>)")
    }
}

/// A device's public keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePublic {
    pub sign: [u8; 32],
    pub kx: [u8; 32],
}

impl DeviceSecret {
    pub fn generate() -> Self {
        DeviceSecret {
            sign: rand::random(),
            kx: rand::random(),
        }
    }
    /// From the 64 stored bytes (signing seed, then X25519 seed).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 64 {
            return None;
        }
        let mut s = DeviceSecret {
            sign: [0; 32],
            kx: [0; 32],
        };
        s.sign.copy_from_slice(&b[..32]);
        s.kx.copy_from_slice(&b[32..]);
        Some(s)
    }
    /// The 64 bytes to store (inside the encrypted database only).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&self.sign);
        v.extend_from_slice(&self.kx);
        zeroize::Zeroizing::new(v)
    }
    fn signing(&self) -> SigningKey {
        SigningKey::from_bytes(&self.sign)
    }
    pub(crate) fn kx_pair(
        &self,
    ) -> (
        <HpkeKem as hpke::Kem>::PrivateKey,
        <HpkeKem as hpke::Kem>::PublicKey,
    ) {
        HpkeKem::derive_keypair(&self.kx)
    }
    pub fn public(&self) -> DevicePublic {
        let mut kx = [0u8; 32];
        kx.copy_from_slice(&self.kx_pair().1.to_bytes());
        DevicePublic {
            sign: self.signing().verifying_key().to_bytes(),
            kx,
        }
    }
    /// Signs `msg` (the caller frames it with a label).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing().sign(msg).to_bytes()
    }
}

/// Checks an Ed25519 signature strictly (no malleable or small-order keys).
pub fn verify(sign_pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    Verifier::new(sign_pk).is_some_and(|v| v.verify(msg, sig))
}

/// A registered public key read once, for checking many signatures by one
/// author (a push of 20 envelopes): reading the key decompresses a curve
/// point, a fifth or so of what one check costs. The rules are
/// [`verify`]'s, exactly.
#[derive(Clone, Copy)]
pub struct Verifier(VerifyingKey);

impl Verifier {
    /// `None`: not a point of the curve, so no signature verifies under it.
    pub fn new(sign_pk: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(sign_pk).ok().map(Verifier)
    }
    /// Whether `sig` signs `msg` under this key, strictly.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.0
            .verify_strict(msg, &Signature::from_bytes(sig))
            .is_ok()
    }
}

const JOIN_PROOF_LABEL: &[u8] = b"heartbridge join proof v1";

/// What a joining device sends the relay so that every member can check,
/// with the epoch key the invite carried, that its public keys came from
/// someone holding an invite: an HMAC the relay cannot make.
pub fn join_proof(key: &TeamKey, team: &TeamId, public: &DevicePublic, role: Role) -> [u8; 32] {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.expose())
        .expect("HMAC takes any key length");
    m.update(JOIN_PROOF_LABEL);
    m.update(&team.0);
    m.update(&public.sign);
    m.update(&public.kx);
    m.update(role.as_str().as_bytes());
    m.finalize().into_bytes().into()
}

/// Whether `proof` is [`join_proof`] of these keys (constant time).
pub fn check_join_proof(
    key: &TeamKey,
    team: &TeamId,
    public: &DevicePublic,
    role: Role,
    proof: &[u8; 32],
) -> bool {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.expose())
        .expect("HMAC takes any key length");
    m.update(JOIN_PROOF_LABEL);
    m.update(&team.0);
    m.update(&public.sign);
    m.update(&public.kx);
    m.update(role.as_str().as_bytes());
    m.verify_slice(proof).is_ok()
}

/// One member of the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMember {
    pub device: DeviceId,
    pub role: Role,
    pub public: DevicePublic,
    /// Unix seconds.
    pub added_at: i64,
}

/// A device the lead revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub device: DeviceId,
    /// Unix seconds.
    pub at: i64,
    /// The first key epoch it does not hold.
    pub epoch: u32,
    /// The relay's last sequence number when it refused the device: its
    /// envelopes are accepted only up to this one, and only under an
    /// earlier epoch.
    pub cutoff_seq: u64,
}

/// An epoch key sealed to one device's X25519 key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    pub device: DeviceId,
    pub epoch: u32,
    pub enc: [u8; 32],
    pub sealed: Vec<u8>,
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKey")
            .field("device", &hex::encode(self.device))
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The team's membership as the lead signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub team: [u8; 16],
    /// Grows with every change; a device keeps the highest it has seen.
    pub version: u64,
    /// The current key epoch: new envelopes are sealed under it.
    pub epoch: u32,
    pub members: Vec<RosterMember>,
    pub revoked: Vec<Revocation>,
    pub keys: Vec<SealedKey>,
    /// The key check value ([`TeamKey::check_value`]) of every epoch, so
    /// the relay can tell a joining device with a mistyped key at once,
    /// whatever epoch its invite carries.
    pub key_checks: Vec<(u32, String)>,
}

const ROSTER_LABEL: &[u8] = b"heartbridge roster v1";
/// Largest signed roster accepted (about 2,000 devices with a few epochs).
pub const MAX_ROSTER_BYTES: usize = 1 << 20;

/// A roster and the lead's signature over its bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoster {
    pub body: Vec<u8>,
    #[serde(with = "sig_bytes")]
    pub sig: [u8; 64],
}

impl fmt::Debug for SignedRoster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRoster")
            .field("len", &self.body.len())
            .finish()
    }
}

/// Why a roster was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("the roster is not readable")]
    Malformed,
    #[error("the roster is larger than {MAX_ROSTER_BYTES} bytes")]
    TooLarge,
    #[error("the roster is not signed by this team's lead")]
    BadSignature,
    #[error("the roster belongs to another team")]
    OtherTeam,
}

fn roster_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ROSTER_LABEL.len() + body.len());
    m.extend_from_slice(ROSTER_LABEL);
    m.extend_from_slice(body);
    m
}

impl SignedRoster {
    pub fn sign(roster: &Roster, lead: &DeviceSecret) -> SignedRoster {
        let body = postcard::to_stdvec(roster).expect("rosters always serialize");
        let sig = lead.sign(&roster_message(&body));
        SignedRoster { body, sig }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("rosters always serialize")
    }
    pub fn from_bytes(b: &[u8]) -> Result<SignedRoster, RosterError> {
        if b.len() > MAX_ROSTER_BYTES {
            return Err(RosterError::TooLarge);
        }
        postcard::from_bytes(b).map_err(|_| RosterError::Malformed)
    }
    /// The roster, if the lead whose public signing key is `lead` signed it
    /// for `team`.
    pub fn verify(&self, lead: &[u8; 32], team: &TeamId) -> Result<Roster, RosterError> {
        if !verify(lead, &roster_message(&self.body), &self.sig) {
            return Err(RosterError::BadSignature);
        }
        let r: Roster = postcard::from_bytes(&self.body).map_err(|_| RosterError::Malformed)?;
        if r.team != team.0 {
            return Err(RosterError::OtherTeam);
        }
        Ok(r)
    }
}

fn hpke_info(team: &TeamId, epoch: u32, device: &DeviceId) -> Vec<u8> {
    let mut i = b"heartbridge epoch key v1".to_vec();
    i.extend_from_slice(&team.0);
    i.extend_from_slice(&epoch.to_be_bytes());
    i.extend_from_slice(device);
    i
}

/// Seals an epoch key to a device's X25519 public key.
pub fn seal_epoch_key(
    team: &TeamId,
    epoch: u32,
    device: DeviceId,
    kx_pk: &[u8; 32],
    key: &TeamKey,
) -> Option<SealedKey> {
    let pk = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(kx_pk).ok()?;
    let info = hpke_info(team, epoch, &device);
    let (enc, sealed) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeS::Base,
        &pk,
        &info,
        key.expose(),
        b"",
    )
    .ok()?;
    let mut e = [0u8; 32];
    e.copy_from_slice(&enc.to_bytes());
    Some(SealedKey {
        device,
        epoch,
        enc: e,
        sealed,
    })
}

/// Opens an epoch key sealed to this device.
pub fn open_epoch_key(team: &TeamId, me: &DeviceSecret, sealed: &SealedKey) -> Option<TeamKey> {
    let (sk, _) = me.kx_pair();
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).ok()?;
    let info = hpke_info(team, sealed.epoch, &sealed.device);
    let plain = zeroize::Zeroizing::new(
        hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info,
            &sealed.sealed,
            b"",
        )
        .ok()?,
    );
    let b: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(TeamKey::from_bytes(b))
}

pub(crate) mod sig_bytes {
    //! [u8; 64] as a byte string.
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = super::super::envelope::bytes_vec::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(team: &TeamId, lead: &DeviceSecret, lead_id: DeviceId) -> Roster {
        Roster {
            team: team.0,
            version: 1,
            epoch: 1,
            members: vec![RosterMember {
                device: lead_id,
                role: Role::Lead,
                public: lead.public(),
                added_at: 0,
            }],
            revoked: vec![],
            keys: vec![],
            key_checks: vec![],
        }
    }

    #[test]
    fn a_roster_verifies_only_under_its_lead_and_team() {
        let (team, lead, other) = (
            TeamId::random(),
            DeviceSecret::generate(),
            DeviceSecret::generate(),
        );
        let signed = SignedRoster::sign(&roster(&team, &lead, [1; 16]), &lead);
        let back = SignedRoster::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(back.verify(&lead.public().sign, &team).unwrap().version, 1);
        assert_eq!(
            back.verify(&other.public().sign, &team),
            Err(RosterError::BadSignature)
        );
        assert_eq!(
            back.verify(&lead.public().sign, &TeamId::random()),
            Err(RosterError::OtherTeam)
        );
        // A roster signed by someone else, claiming the lead's team.
        let forged = SignedRoster::sign(&roster(&team, &lead, [1; 16]), &other);
        assert_eq!(
            forged.verify(&lead.public().sign, &team),
            Err(RosterError::BadSignature)
        );
        let mut tampered = signed.clone();
        let n = tampered.body.len() - 1;
        tampered.body[n] ^= 1;
        assert!(tampered.verify(&lead.public().sign, &team).is_err());
    }

    #[test]
    fn an_epoch_key_opens_only_for_its_device() {
        let team = TeamId::random();
        let (a, b) = (DeviceSecret::generate(), DeviceSecret::generate());
        let key = TeamKey::generate();
        let sealed = seal_epoch_key(&team, 2, [7; 16], &a.public().kx, &key).unwrap();
        assert_eq!(open_epoch_key(&team, &a, &sealed).unwrap(), key);
        assert!(open_epoch_key(&team, &b, &sealed).is_none());
        // Relabelled for another epoch or device: refused.
        let mut moved = sealed.clone();
        moved.epoch = 3;
        assert!(open_epoch_key(&team, &a, &moved).is_none());
        let mut moved = sealed;
        moved.device = [8; 16];
        assert!(open_epoch_key(&team, &a, &moved).is_none());
    }

    #[test]
    fn keys_survive_storage_and_never_show_in_debug() {
        let s = DeviceSecret::generate();
        let back = DeviceSecret::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back.public(), s.public());
        assert_eq!(format!("{s:?}"), "DeviceSecret(<redacted>)");
        let sig = s.sign(b"m");
        assert!(verify(&s.public().sign, b"m", &sig));
        assert!(!verify(&s.public().sign, b"n", &sig));
    }

    #[test]
    fn a_join_proof_binds_keys_role_and_team() {
        let (team, key, d) = (
            TeamId::random(),
            TeamKey::generate(),
            DeviceSecret::generate(),
        );
        let p = join_proof(&key, &team, &d.public(), Role::Volunteer);
        assert!(check_join_proof(
            &key,
            &team,
            &d.public(),
            Role::Volunteer,
            &p
        ));
        assert!(!check_join_proof(&key, &team, &d.public(), Role::Lead, &p));
        assert!(!check_join_proof(
            &TeamKey::generate(),
            &team,
            &d.public(),
            Role::Volunteer,
            &p
        ));
        let other = DeviceSecret::generate().public();
        assert!(!check_join_proof(&key, &team, &other, Role::Volunteer, &p));
    }
}
