//! Certificate pins: a relay serving a self-signed certificate is known by
//! the SHA-256 of its leaf certificate (DER), written `sha256:` + URL-safe
//! base64 without padding. The pin travels in invite codes and relay
//! entries; the device accepts exactly that certificate.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The prefix of every pin.
pub const PIN_PREFIX: &str = "sha256:";

/// A leaf certificate's fingerprint, as bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl CertPin {
    /// The pin of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> CertPin {
        CertPin(Sha256::digest(der).into())
    }

    /// Reads `sha256:<base64url>`; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Option<CertPin> {
        let body = text.trim().strip_prefix(PIN_PREFIX)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        Some(CertPin(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for CertPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PIN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
        )
    }
}

impl std::fmt::Debug for CertPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertPin({self})")
    }
}

/// What a venue relay announces of its team on the local network
/// (mDNS TXT `team=`): the first 8 hex digits of SHA-256 over the team id,
/// enough for a device to tell its own team's relay from another's without
/// announcing the team id or name.
pub fn team_tag(team: &crate::TeamId) -> String {
    hex::encode(&Sha256::digest(team.0)[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_and_refuse_garbage() {
        let pin = CertPin::of_der(b"certificate bytes");
        let text = pin.to_string();
        assert!(text.starts_with("sha256:"));
        assert_eq!(text.len(), 7 + 43);
        assert_eq!(CertPin::parse(&format!(" {text}\n")), Some(pin));
        assert_eq!(CertPin::parse(&text[7..]), None);
        assert_eq!(CertPin::parse("sha256:AAAA"), None);
        assert_eq!(CertPin::parse("sha256:!!"), None);
    }
}
