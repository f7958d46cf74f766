//! Sealed envelopes: what devices push and pull, and all the relay stores.
//!
//! `ciphertext = XChaCha20-Poly1305(team key, nonce, zstd(tag ‖ bytes), aad)`
//! with a random 24-byte nonce; `tag` is the document kind (so the relay
//! does not learn which documents are cases); the associated data binds the
//! team id, document id, envelope kind and key epoch, so an envelope cannot
//! be replayed into another team, another document or as another kind.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::identity::DeviceSecret;
use crate::key::{TeamId, TeamKey};

const SIG_LABEL: &[u8] = b"heartbridge envelope sig v1";

/// Largest decompressed payload a device accepts (guards zstd bombs).
pub const MAX_PLAINTEXT: usize = 64 * 1024 * 1024;
const ZSTD_LEVEL: i32 = 3;

/// Change (incremental Automerge changes) or snapshot (a whole document,
/// superseding the document's envelopes up to `covers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnvelopeKind {
    Change,
    Snapshot,
}

impl EnvelopeKind {
    fn byte(self) -> u8 {
        match self {
            EnvelopeKind::Change => 1,
            EnvelopeKind::Snapshot => 2,
        }
    }
}

/// The kind of document inside, sealed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DocKindTag {
    Case,
    Handbook,
    ShiftReport,
    /// The team's settings and duty roster (an Automerge document only the
    /// lead's changes count in).
    TeamSettings,
    /// Case-key grants (not an Automerge document: signed grant records).
    Grants,
    /// De-identified statistics facts sealed to the team's oversight key.
    Facts,
}

impl DocKindTag {
    fn byte(self) -> u8 {
        match self {
            DocKindTag::Case => 1,
            DocKindTag::Handbook => 2,
            DocKindTag::ShiftReport => 3,
            DocKindTag::TeamSettings => 4,
            DocKindTag::Grants => 5,
            DocKindTag::Facts => 6,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(DocKindTag::Case),
            2 => Some(DocKindTag::Handbook),
            3 => Some(DocKindTag::ShiftReport),
            4 => Some(DocKindTag::TeamSettings),
            5 => Some(DocKindTag::Grants),
            6 => Some(DocKindTag::Facts),
            _ => None,
        }
    }
}

/// A keyed hash of an envelope's content; the relay deduplicates on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentId(pub [u8; 16]);

impl ContentId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.to_hex())
    }
}

/// A sealed envelope.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The document, 16 bytes.
    pub doc: [u8; 16],
    pub kind: EnvelopeKind,
    /// Key epoch (1 until key rotation exists).
    pub epoch: u32,
    pub id: ContentId,
    /// For a snapshot: the relay may drop this document's envelopes with a
    /// sequence number up to this one. 0 for changes.
    pub covers: u64,
    pub nonce: [u8; 24],
    #[serde(with = "bytes_vec")]
    pub ciphertext: Vec<u8>,
    /// The relay device that sealed it; `sig` is its signature.
    pub author: [u8; 16],
    /// Ed25519 by `author` over every other field (see [`Envelope::sign`]).
    #[serde(with = "crate::identity::sig_bytes")]
    pub sig: [u8; 64],
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("doc", &hex::encode(self.doc))
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("author", &hex::encode(self.author))
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

pub(crate) mod bytes_vec {
    //! Vec<u8> as a byte string (postcard writes it as length + bytes).
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Why an envelope could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("compression failed")]
    Compress,
    #[error("encryption failed")]
    Encrypt,
}

/// Why an envelope was refused. Says nothing of the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("envelope {0} does not open with this team's key: it was sealed with another key, for another team or document, or altered on the way")]
    Authentication(String),
    #[error("envelope {0} opened but its content is damaged")]
    Damaged(String),
    #[error("envelope {0} is larger than {MAX_PLAINTEXT} bytes when unpacked")]
    TooLarge(String),
}

/// Largest number of parts one payload may be split into.
pub const MAX_PARTS: u32 = 1 << 16;
/// Flag on the sealed tag byte: the plaintext is one part of a larger
/// payload and starts with a [`Part`] header.
const PART_FLAG: u8 = 0x80;
const PART_HEADER: usize = 16 + 4 + 4;

/// One part of a payload too large for one envelope (a large handbook or a
/// snapshot). Sealed inside the envelope, so the relay sees an ordinary
/// change envelope and learns nothing of the grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Part {
    /// The same for every part of one payload; keyed on its content, so a
    /// payload split again gives the same parts.
    pub group: [u8; 16],
    pub index: u32,
    pub count: u32,
}

impl Part {
    /// The group id of a payload: a keyed hash of its content.
    pub fn group_id(key: &TeamKey, team: &TeamId, doc: &[u8; 16], payload: &[u8]) -> [u8; 16] {
        key.content_id(&[b"part-group", &team.0, doc, payload])
    }
}

/// What an opened envelope holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub doc_kind: DocKindTag,
    /// For a part of a larger payload: which part.
    pub part: Option<Part>,
    /// Automerge bytes (changes or a saved document), or this part's slice
    /// of them.
    pub bytes: Vec<u8>,
}

fn aad(team: &TeamId, doc: &[u8; 16], kind: EnvelopeKind, epoch: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(3 + 16 + 16 + 1 + 4);
    a.extend_from_slice(b"hb1");
    a.extend_from_slice(&team.0);
    a.extend_from_slice(doc);
    a.push(kind.byte());
    a.extend_from_slice(&epoch.to_be_bytes());
    a
}

impl Envelope {
    /// Seals Automerge bytes for the team.
    pub fn seal(
        key: &TeamKey,
        team: &TeamId,
        doc: [u8; 16],
        kind: EnvelopeKind,
        doc_kind: DocKindTag,
        bytes: &[u8],
    ) -> Result<Envelope, SealError> {
        Envelope::seal_part(key, 1, team, doc, kind, doc_kind, None, bytes)
    }

    /// Seals one part of a larger payload (or, with `part: None`, a whole
    /// one, as [`Envelope::seal`]), under key epoch `epoch`. The envelope is
    /// unsigned until [`Envelope::sign`].
    #[allow(clippy::too_many_arguments)]
    pub fn seal_part(
        key: &TeamKey,
        epoch: u32,
        team: &TeamId,
        doc: [u8; 16],
        kind: EnvelopeKind,
        doc_kind: DocKindTag,
        part: Option<Part>,
        bytes: &[u8],
    ) -> Result<Envelope, SealError> {
        let mut plain = Vec::with_capacity(bytes.len() + 1 + PART_HEADER);
        match part {
            None => plain.push(doc_kind.byte()),
            Some(p) => {
                plain.push(doc_kind.byte() | PART_FLAG);
                plain.extend_from_slice(&p.group);
                plain.extend_from_slice(&p.index.to_be_bytes());
                plain.extend_from_slice(&p.count.to_be_bytes());
            }
        }
        plain.extend_from_slice(bytes);
        let packed = zstd::bulk::compress(&plain, ZSTD_LEVEL).map_err(|_| SealError::Compress)?;
        let nonce: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &packed,
                    aad: &aad(team, &doc, kind, epoch),
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let id = ContentId(key.content_id(&[&team.0, &doc, &[kind.byte()], &plain]));
        Ok(Envelope {
            doc,
            kind,
            epoch,
            id,
            covers: 0,
            nonce,
            ciphertext,
            author: [0; 16],
            sig: [0; 64],
        })
    }

    fn signed_message(&self, team: &TeamId) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.ciphertext.len() + 128);
        m.extend_from_slice(SIG_LABEL);
        m.extend_from_slice(&team.0);
        m.extend_from_slice(&self.doc);
        m.push(self.kind.byte());
        m.extend_from_slice(&self.epoch.to_be_bytes());
        m.extend_from_slice(&self.covers.to_be_bytes());
        m.extend_from_slice(&self.author);
        m.extend_from_slice(&self.id.0);
        m.extend_from_slice(&self.nonce);
        m.extend_from_slice(&(self.ciphertext.len() as u64).to_be_bytes());
        m.extend_from_slice(&self.ciphertext);
        m
    }

    /// Signs the envelope as device `author` of `team`: set `covers` first,
    /// since the signature covers it.
    pub fn sign(&mut self, team: &TeamId, author: [u8; 16], secret: &DeviceSecret) {
        self.author = author;
        self.sig = secret.sign(&self.signed_message(team));
    }

    /// Whether `sign_pk` (the author's registered key) signed this envelope
    /// for `team`, unchanged.
    pub fn verify(&self, team: &TeamId, sign_pk: &[u8; 32]) -> bool {
        crate::identity::verify(sign_pk, &self.signed_message(team), &self.sig)
    }

    /// [`Envelope::verify`] under a key read once for many envelopes.
    pub fn verify_by(&self, team: &TeamId, key: &crate::identity::Verifier) -> bool {
        key.verify(&self.signed_message(team), &self.sig)
    }

    /// Opens an envelope with the team key, checking that it belongs to this
    /// team, document and kind.
    pub fn open(&self, key: &TeamKey, team: &TeamId) -> Result<Opened, OpenError> {
        let id = self.id.to_hex();
        let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
        let packed = cipher
            .decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad(team, &self.doc, self.kind, self.epoch),
                },
            )
            .map_err(|_| OpenError::Authentication(id.clone()))?;
        let mut plain = Vec::new();
        {
            use std::io::Read;
            let decoder = zstd::stream::read::Decoder::new(&packed[..])
                .map_err(|_| OpenError::Damaged(id.clone()))?;
            decoder
                .take(MAX_PLAINTEXT as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|_| OpenError::Damaged(id.clone()))?;
        }
        if plain.len() > MAX_PLAINTEXT {
            return Err(OpenError::TooLarge(id));
        }
        let (&tag, bytes) = plain
            .split_first()
            .ok_or_else(|| OpenError::Damaged(id.clone()))?;
        let doc_kind = DocKindTag::from_byte(tag & !PART_FLAG)
            .ok_or_else(|| OpenError::Damaged(id.clone()))?;
        if tag & PART_FLAG == 0 {
            return Ok(Opened {
                doc_kind,
                part: None,
                bytes: bytes.to_vec(),
            });
        }
        if bytes.len() < PART_HEADER {
            return Err(OpenError::Damaged(id));
        }
        let (head, bytes) = bytes.split_at(PART_HEADER);
        let mut group = [0u8; 16];
        group.copy_from_slice(&head[..16]);
        let index = u32::from_be_bytes([head[16], head[17], head[18], head[19]]);
        let count = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
        if !(2..=MAX_PARTS).contains(&count) || index >= count {
            return Err(OpenError::Damaged(id));
        }
        Ok(Opened {
            doc_kind,
            part: Some(Part {
                group,
                index,
                count,
            }),
            bytes: bytes.to_vec(),
        })
    }

    /// Bytes on the wire for this envelope (ciphertext plus header).
    pub fn wire_size(&self) -> usize {
        self.ciphertext.len() + 16 + 16 + 24 + 16 + 16 + 64
    }
}

/// Seals a device's display name for the relay's member list.
pub fn seal_name(key: &TeamKey, team: &TeamId, name: &str) -> String {
    use base64::Engine;
    let nonce: [u8; 24] = rand::random();
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    let mut aad = b"hb1-name".to_vec();
    aad.extend_from_slice(&team.0);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: name.as_bytes(),
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

/// Opens a sealed name; `None` if it does not open with this key.
pub fn open_name(key: &TeamKey, team: &TeamId, sealed: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()?;
    if raw.len() < 24 {
        return None;
    }
    let (nonce, ct) = raw.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    let mut aad = b"hb1-name".to_vec();
    aad.extend_from_slice(&team.0);
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> (TeamKey, TeamId, Envelope) {
        let key = TeamKey::generate();
        let team = TeamId::random();
        let env = Envelope::seal(
            &key,
            &team,
            [1; 16],
            EnvelopeKind::Change,
            DocKindTag::Case,
            "危机记录".as_bytes(),
        )
        .unwrap();
        (key, team, env)
    }

    #[test]
    fn round_trip_and_no_plaintext_in_the_ciphertext() {
        let (key, team, env) = sealed();
        assert_eq!(env.open(&key, &team).unwrap().bytes, "危机记录".as_bytes());
        let wire = postcard::to_stdvec(&env).unwrap();
        assert!(!wire.windows(3).any(|w| w == "危".as_bytes()));
        let back: Envelope = postcard::from_bytes(&wire).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn wrong_key_other_team_other_doc_and_tampering_are_refused() {
        let (key, team, env) = sealed();
        assert!(matches!(
            env.open(&TeamKey::generate(), &team),
            Err(OpenError::Authentication(_))
        ));
        assert!(matches!(
            env.open(&key, &TeamId::random()),
            Err(OpenError::Authentication(_))
        ));
        let mut moved = env.clone();
        moved.doc = [2; 16];
        assert!(moved.open(&key, &team).is_err());
        let mut as_snapshot = env.clone();
        as_snapshot.kind = EnvelopeKind::Snapshot;
        assert!(as_snapshot.open(&key, &team).is_err());
        let mut flipped = env.clone();
        flipped.ciphertext[3] ^= 1;
        assert!(flipped.open(&key, &team).is_err());
    }

    #[test]
    fn sealed_names_open_only_with_the_team_key() {
        let (key, team, _) = sealed();
        let s = seal_name(&key, &team, "林老师");
        assert!(!s.contains("林"));
        assert_eq!(open_name(&key, &team, &s).as_deref(), Some("林老师"));
        assert_eq!(open_name(&TeamKey::generate(), &team, &s), None);
        assert_eq!(open_name(&key, &TeamId::random(), &s), None);
    }

    #[test]
    fn equal_content_gets_equal_ids_under_one_key_only() {
        let (key, team, env) = sealed();
        let again = Envelope::seal(
            &key,
            &team,
            [1; 16],
            EnvelopeKind::Change,
            DocKindTag::Case,
            "危机记录".as_bytes(),
        )
        .unwrap();
        assert_eq!(again.id, env.id);
        assert_ne!(again.nonce, env.nonce);
        let other = Envelope::seal(
            &TeamKey::generate(),
            &team,
            [1; 16],
            EnvelopeKind::Change,
            DocKindTag::Case,
            "危机记录".as_bytes(),
        )
        .unwrap();
        assert_ne!(other.id, env.id);
    }

    #[test]
    fn a_signature_covers_every_field_and_only_its_author_key_checks_it() {
        let (key, team, env) = sealed();
        let (me, other) = (DeviceSecret::generate(), DeviceSecret::generate());
        let mut env = env;
        env.covers = 9;
        env.sign(&team, [4; 16], &me);
        assert!(env.verify(&team, &me.public().sign));
        assert!(!env.verify(&team, &other.public().sign));
        assert!(!env.verify(&TeamId::random(), &me.public().sign));
        let tweaks: [fn(&mut Envelope); 8] = [
            |e| e.covers += 1,
            |e| e.epoch += 1,
            |e| e.author[0] ^= 1,
            |e| e.doc[0] ^= 1,
            |e| e.id.0[0] ^= 1,
            |e| e.nonce[0] ^= 1,
            |e| e.ciphertext[0] ^= 1,
            |e| e.kind = EnvelopeKind::Snapshot,
        ];
        // The same answers under a key read once for many envelopes.
        let mine = crate::identity::Verifier::new(&me.public().sign).unwrap();
        let theirs = crate::identity::Verifier::new(&other.public().sign).unwrap();
        assert!(env.verify_by(&team, &mine));
        assert!(!env.verify_by(&team, &theirs));
        assert!(!env.verify_by(&TeamId::random(), &mine));
        for t in tweaks {
            let mut e = env.clone();
            t(&mut e);
            assert!(!e.verify(&team, &me.public().sign));
            assert!(!e.verify_by(&team, &mine));
        }
        // A small-order key (the identity point) reads as a point but
        // verifies nothing, strictly, as `verify` refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = crate::identity::Verifier::new(&identity).unwrap();
        assert!(!env.verify_by(&team, &weak));
        assert!(!env.verify(&team, &identity));
        assert!(env.open(&key, &team).is_ok());
    }
}
