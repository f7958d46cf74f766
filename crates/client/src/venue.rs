//! Signed requests at a venue relay: a device shows a venue relay its
//! signature (`HB-Sig`, [`heartbridge_core::proto::reqsig`]) and never its
//! bearer token, which the venue relay could replay at the central relay.

use std::collections::HashMap;
use std::sync::Mutex;

use heartbridge_core::proto::{reqsig, DeviceSecret};
use heartbridge_core::TransportError;

/// Which relays are venue relays (by URL, with the id their requests are
/// signed for), and this device's signing key.
#[derive(Default)]
pub(crate) struct Signing {
    venues: Mutex<HashMap<String, String>>,
    signer: Mutex<Option<(String, DeviceSecret)>>,
}

impl Signing {
    pub(crate) fn set_signer(&self, device_hex: &str, secret: DeviceSecret) {
        *self.signer.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((device_hex.to_owned(), secret));
    }

    /// `url` is a venue relay; its requests are signed for `relay_id` (its
    /// pin when it has one, else its URL).
    pub(crate) fn venue(&self, url: &str, relay_id: &str) {
        self.venues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(url), relay_id.to_owned());
    }

    pub(crate) fn is_venue(&self, url: &str) -> bool {
        self.venues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key(url))
    }

    /// The `Authorization` value for a request to `url`: `None` for a
    /// relay that is no venue (it takes the bearer token); an error for a
    /// venue relay when this transport has no signing key (nothing is sent).
    pub(crate) fn authorization(
        &self,
        url: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Option<String>, TransportError> {
        let Some(relay_id) = self
            .venues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(url))
            .cloned()
        else {
            return Ok(None);
        };
        let signer = self.signer.lock().unwrap_or_else(|p| p.into_inner());
        let Some((device, secret)) = signer.as_ref() else {
            return Err(TransportError::Relay {
                status: 0,
                kind: "no_signer".into(),
                message: "this relay is a venue relay: the device signs its requests there and never shows it its token, but no signing key was given to the transport; nothing was sent".into(),
            });
        };
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(Some(reqsig::header(
            secret, device, &relay_id, secs, method, path, body,
        )))
    }
}

fn key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}
