//! Signed requests: how a device authenticates at a venue relay without
//! showing it a bearer token (a venue relay could replay a token upstream;
//! it cannot forge a signature).
//!
//! Header `Authorization: HB-Sig <device-hex>.<unix-secs>.<base64url sig>`,
//! the Ed25519 signature of the device's registered key over
//! [`message`]: a label, the relay id (the relay's certificate fingerprint
//! when it serves TLS, else its URL), the time, the method, the path (with
//! its query string, if the request has one: the relay checks the path and
//! query it received) and the SHA-256 of the body. A relay accepts it within [`MAX_SKEW_SECS`] of
//! its own clock, so a request captured at one relay is refused at another
//! (another id) and anywhere after a few minutes; within them, replaying a
//! sync is harmless (pushes deduplicate, a pull reveals only what the
//! replayer could already see on the wire).

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::identity::{verify, DeviceSecret};

/// The authorization scheme.
pub const SCHEME: &str = "HB-Sig";
/// How far a signed request's time may be from the relay's clock.
pub const MAX_SKEW_SECS: i64 = 300;
const LABEL: &[u8] = b"heartbridge relay request v1\0";

/// The signed bytes.
pub fn message(relay_id: &str, secs: i64, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(LABEL.len() + relay_id.len() + path.len() + 64);
    m.extend_from_slice(LABEL);
    for part in [
        relay_id.as_bytes(),
        secs.to_string().as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
    ] {
        m.extend_from_slice(&(part.len() as u32).to_be_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&Sha256::digest(body));
    m
}

/// The `Authorization` header value for one request.
pub fn header(
    me: &DeviceSecret,
    device_hex: &str,
    relay_id: &str,
    secs: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    let sig = me.sign(&message(relay_id, secs, method, path, body));
    format!(
        "{SCHEME} {device_hex}.{secs}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

/// A parsed `HB-Sig` credential (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCredential {
    pub device: [u8; 16],
    pub secs: i64,
    pub sig: [u8; 64],
}

/// Reads an `Authorization` value of the `HB-Sig` scheme; `None` for any
/// other scheme or a malformed one.
pub fn parse(value: &str) -> Option<SignedCredential> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let mut parts = rest.trim().split('.');
    let (d, s, g) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let device: [u8; 16] = hex::decode(d).ok()?.try_into().ok()?;
    let secs: i64 = s.parse().ok()?;
    let sig: [u8; 64] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(g)
        .ok()?
        .try_into()
        .ok()?;
    Some(SignedCredential { device, secs, sig })
}

impl SignedCredential {
    /// Whether the signature holds under `sign_pk` for this request, at
    /// `now` (unix seconds) within [`MAX_SKEW_SECS`].
    pub fn verify(
        &self,
        sign_pk: &[u8; 32],
        relay_id: &str,
        now: i64,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> bool {
        (now - self.secs).abs() <= MAX_SKEW_SECS
            && verify(
                sign_pk,
                &message(relay_id, self.secs, method, path, body),
                &self.sig,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_only_as_made() {
        let me = DeviceSecret::generate();
        let pk = me.public().sign;
        let dev = [7u8; 16];
        let h = header(
            &me,
            &hex::encode(dev),
            "http://venue:7070",
            1_000,
            "POST",
            "/v1/sync",
            b"body",
        );
        let c = parse(&h).unwrap();
        assert_eq!(c.device, dev);
        assert!(c.verify(&pk, "http://venue:7070", 1_100, "POST", "/v1/sync", b"body"));
        // Another relay, body, path, method, key, or too late: refused.
        assert!(!c.verify(&pk, "http://central", 1_100, "POST", "/v1/sync", b"body"));
        assert!(!c.verify(&pk, "http://venue:7070", 1_100, "POST", "/v1/sync", b"bodY"));
        assert!(!c.verify(
            &pk,
            "http://venue:7070",
            1_100,
            "POST",
            "/v1/roster",
            b"body"
        ));
        assert!(!c.verify(&pk, "http://venue:7070", 1_100, "GET", "/v1/sync", b"body"));
        let other = DeviceSecret::generate().public().sign;
        assert!(!c.verify(
            &other,
            "http://venue:7070",
            1_100,
            "POST",
            "/v1/sync",
            b"body"
        ));
        assert!(!c.verify(&pk, "http://venue:7070", 1_301, "POST", "/v1/sync", b"body"));
        assert!(!c.verify(&pk, "http://venue:7070", 699, "POST", "/v1/sync", b"body"));
        assert!(parse("Bearer abc").is_none());
        assert!(parse("HB-Sig zz.1.AA").is_none());
        assert!(parse(&format!("{h}.x")).is_none());
    }
}
