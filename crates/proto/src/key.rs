//! Team ids, team keys and bearer secrets.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A team's id: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TeamId(pub [u8; 16]);

impl TeamId {
    pub fn random() -> Self {
        TeamId(rand::random())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s.trim()).ok()?;
        Some(TeamId(v.try_into().ok()?))
    }
}

impl fmt::Debug for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TeamId({})", self.to_hex())
    }
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The 32-byte symmetric team key. Generated on the lead's device, carried
/// only inside invite codes, never sent to the relay. Its `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct TeamKey(pub(crate) [u8; 32]);

const KEY_CHECK_LABEL: &[u8] = b"heartbridge key check v1";
const CONTENT_ID_LABEL: &[u8] = b"heartbridge content id v1";

impl TeamKey {
    pub fn generate() -> Self {
        TeamKey(rand::random())
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        TeamKey(b)
    }
    /// The raw key, for storing it on the device.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// The key check value the relay keeps: an HMAC of a fixed label, so a
    /// device joining with a wrong key is told at once. Reveals nothing
    /// about the key.
    pub fn check_value(&self) -> String {
        let mut m = self.mac();
        m.update(KEY_CHECK_LABEL);
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// A keyed content id: equal plaintext gives an equal id (so a retried
    /// push deduplicates even if sealed again), and the relay cannot test a
    /// guess of the plaintext against it.
    pub(crate) fn content_id(&self, parts: &[&[u8]]) -> [u8; 16] {
        let mut m = self.mac();
        m.update(CONTENT_ID_LABEL);
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        let out = m.finalize().into_bytes();
        let mut id = [0u8; 16];
        id.copy_from_slice(&out[..16]);
        id
    }
}

impl fmt::Debug for TeamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TeamKey(<redacted>)")
    }
}

/// A bearer secret (device token, invite token, lead token): 32 random
/// bytes in URL-safe base64. The relay stores only [`Secret::hash`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn generate() -> Self {
        use base64::Engine;
        let b: [u8; 32] = rand::random();
        Secret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
    }
    pub fn from_string(s: String) -> Self {
        Secret(s.trim().to_owned())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// SHA-256 of the secret, hex: what the relay stores and looks up.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_keys_never_show_in_debug() {
        let k = TeamKey::generate();
        let s = Secret::generate();
        assert_eq!(format!("{k:?}"), "TeamKey(<redacted>)");
        assert!(!format!("{s:?}").contains(s.expose()));
        assert_ne!(s.hash(), s.expose());
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let a = TeamKey::generate();
        assert_eq!(a.check_value(), a.clone().check_value());
        assert_ne!(a.check_value(), TeamKey::generate().check_value());
    }
}
