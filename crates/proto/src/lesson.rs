//! Lessons (issue 10 item 7): media files cut into chunks, each sealed on
//! its own under the team key, that the relay stores as opaque blobs.
//!
//! * lesson id: the first 16 bytes of SHA-256 of the plaintext (hex);
//! * chunk `i` of `n`: `XChaCha20-Poly1305(team key of epoch e, nonce, chunk,
//!   aad = "hbl1" ‖ team ‖ lesson id ‖ i ‖ n ‖ e)`, the nonce a keyed hash of
//!   (lesson id, i, chunk), so sealing again gives the same bytes and the
//!   relay deduplicates;
//! * chunk id: SHA-256 of the sealed bytes (hex), which the relay checks on
//!   upload and the device on download.
//!
//! The relay learns a chunk's size and id, never which lesson it is of.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::key::{TeamId, TeamKey};

/// Plaintext bytes per chunk (the last one may be shorter).
pub const CHUNK_SIZE: usize = 512 * 1024;
/// AEAD tag bytes a sealed chunk adds.
pub const CHUNK_OVERHEAD: usize = 16;
/// Largest sealed chunk a relay takes (a margin over `CHUNK_SIZE`).
pub const MAX_SEALED_CHUNK: usize = 1024 * 1024 + 1024;

/// The lesson id of a plaintext: 16 bytes of its SHA-256, as hex.
pub fn lesson_id(plain: &[u8]) -> (String, String) {
    let full = Sha256::digest(plain);
    (hex::encode(&full[..16]), hex::encode(full))
}

/// The chunk id of sealed bytes: SHA-256, hex.
pub fn chunk_id(sealed: &[u8]) -> String {
    hex::encode(Sha256::digest(sealed))
}

/// Most ids in one `POST /v1/blobs/have`.
pub const MAX_HAVE_IDS: usize = 1024;

/// `POST /v1/blobs/have` (JSON): which of these chunk ids does the relay hold?
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BlobHaveRequest {
    pub ids: Vec<String>,
}

/// The answer: one flag per id, in order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BlobHaveResponse {
    pub have: Vec<bool>,
}

/// Whether `id` looks like a chunk id (64 lowercase hex digits).
pub fn is_chunk_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn aad(team: &TeamId, lesson: &[u8; 16], index: u32, count: u32, epoch: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + 16 + 16 + 12);
    a.extend_from_slice(b"hbl1");
    a.extend_from_slice(&team.0);
    a.extend_from_slice(lesson);
    a.extend_from_slice(&index.to_be_bytes());
    a.extend_from_slice(&count.to_be_bytes());
    a.extend_from_slice(&epoch.to_be_bytes());
    a
}

/// Where a chunk belongs: what its associated data binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlace {
    pub lesson: [u8; 16],
    pub index: u32,
    pub count: u32,
    pub epoch: u32,
}

/// Seals one chunk; answers the sealed bytes (ciphertext and tag).
pub fn seal_chunk(key: &TeamKey, team: &TeamId, place: &ChunkPlace, plain: &[u8]) -> Vec<u8> {
    // Keyed on everything the associated data binds and the plaintext
    // (review K7): equal nonces only for an equal (place, chunk). The MAC
    // is HMAC-SHA256 under a label of its own (`TeamKey::content_id`), not
    // the raw AEAD use of the key.
    let full = key.content_id(&[
        b"lesson-nonce",
        &aad(team, &place.lesson, place.index, place.count, place.epoch),
        plain,
    ]);
    let more = key.content_id(&[b"lesson-nonce-2", &full]);
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(&full);
    nonce[16..].copy_from_slice(&more[..8]);
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    let mut out = nonce.to_vec();
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad(team, &place.lesson, place.index, place.count, place.epoch),
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any length under 256 GiB");
    out.extend_from_slice(&ct);
    out
}

/// Opens a sealed chunk: `None` if it was sealed with another key, for
/// another team, lesson or place, or altered.
pub fn open_chunk(
    key: &TeamKey,
    team: &TeamId,
    place: &ChunkPlace,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    if sealed.len() < 24 + CHUNK_OVERHEAD {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &aad(team, &place.lesson, place.index, place.count, place.epoch),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_opens_only_in_its_place() {
        let key = TeamKey::generate();
        let team = TeamId::random();
        let place = ChunkPlace {
            lesson: [7; 16],
            index: 2,
            count: 5,
            epoch: 1,
        };
        let sealed = seal_chunk(&key, &team, &place, b"canary bytes");
        assert_eq!(sealed, seal_chunk(&key, &team, &place, b"canary bytes"));
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        assert_eq!(
            open_chunk(&key, &team, &place, &sealed).as_deref(),
            Some(&b"canary bytes"[..])
        );
        for other in [
            ChunkPlace { index: 3, ..place },
            ChunkPlace { count: 6, ..place },
            ChunkPlace { epoch: 2, ..place },
            ChunkPlace {
                lesson: [8; 16],
                ..place
            },
        ] {
            assert!(open_chunk(&key, &team, &other, &sealed).is_none());
        }
        assert!(open_chunk(&TeamKey::generate(), &team, &place, &sealed).is_none());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(open_chunk(&key, &team, &place, &bad).is_none());
        assert!(is_chunk_id(&chunk_id(&sealed)));
    }
}
