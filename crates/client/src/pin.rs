//! Pinned relays: a relay that serves a certificate no authority signed
//! (`heartbridge-relay serve --tls-self-signed`) is trusted by the pin of
//! its leaf certificate ([`CertPin`]), from the invite code or the relay
//! entry, and by nothing else. The handshake signature is still verified
//! with the provider's algorithms, so only the holder of that
//! certificate's key passes. A different certificate fails the handshake
//! before any request (and so any bearer token) is sent.

use std::sync::Arc;

use heartbridge_core::proto::CertPin;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

/// The error a pinned handshake fails with when the certificate is not
/// the pinned one (found again in the error chain by `network`).
#[derive(Debug)]
pub(crate) struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the relay's certificate is not the pinned one")
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly the certificate whose SHA-256 is the pin (whatever its
/// names, issuer or dates: the pin is the identity).
#[derive(Debug)]
pub(crate) struct PinnedVerifier {
    pin: CertPin,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub(crate) fn new(pin: CertPin, provider: Arc<CryptoProvider>) -> PinnedVerifier {
        PinnedVerifier { pin, provider }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if CertPin::of_der(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How a device may reach one relay: by its pin, or (without one) by the
/// web's certificate authorities; plain `http://` to an address that is
/// not loopback only when the entry says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayTrust {
    pub pin: Option<CertPin>,
    pub allow_insecure_http: bool,
}

/// Whether `url` is `http://` to a host other than loopback (`localhost`,
/// 127.0.0.0/8, `::1`): a bearer token sent there crosses the network in
/// clear.
pub fn is_insecure_http(url: &str) -> bool {
    let Some(rest) = url.trim().strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_off_loopback_is_insecure() {
        assert!(!is_insecure_http("http://127.0.0.1:7070"));
        assert!(!is_insecure_http("http://127.8.0.1/"));
        assert!(!is_insecure_http("http://localhost:7070/x"));
        assert!(!is_insecure_http("http://[::1]:7070"));
        assert!(!is_insecure_http("https://192.168.1.5:7443"));
        assert!(is_insecure_http("http://192.168.1.5:7070"));
        assert!(is_insecure_http("http://relay.example.org"));
        assert!(is_insecure_http("http://[fe80::1]:7070"));
        assert!(is_insecure_http("http://127.0.0.1.evil.org"));
    }
}
