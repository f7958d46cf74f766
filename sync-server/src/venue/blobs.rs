//! Lesson chunks at a venue relay (issue 10 item 7): a chunk a device asks
//! for that is not here is fetched from the upstream relay with the venue
//! relay's own token and kept; a chunk a device uploads here is passed on
//! upstream (best effort). The venue relay never holds the team key: it
//! carries the sealed bytes and checks only their hash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use heartbridge_proto::lesson::{chunk_id, MAX_SEALED_CHUNK};

use super::{answer, net, url, Forwarder, VenueError};
use crate::error::StoreError;

/// How long a chunk the upstream relay lacked is not asked for again: a
/// device asking for ids nobody holds cannot make the venue relay hammer
/// the central relay (review K5).
const MISS_TTL: Duration = Duration::from_secs(30);
/// Most misses remembered (older ones are forgotten first when full).
const MAX_MISSES: usize = 4096;

/// Chunk ids the upstream relay answered 404 for, with when.
#[derive(Default)]
pub(crate) struct Misses(Mutex<HashMap<String, Instant>>);

impl Misses {
    fn recent(&self, id: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).is_some_and(|t| t.elapsed() < MISS_TTL)
    }
    fn record(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_MISSES {
            map.retain(|_, t| t.elapsed() < MISS_TTL);
            if map.len() >= MAX_MISSES {
                map.clear();
            }
        }
        map.insert(id.to_owned(), Instant::now());
    }
}

impl Forwarder {
    async fn upstream_auth(&self) -> Result<(String, String), VenueError> {
        let st = {
            let db = Arc::clone(&self.db);
            tokio::task::spawn_blocking(move || db.state())
                .await
                .map_err(|_| StoreError::Panicked)??
                .ok_or(VenueError::NotJoined)?
        };
        let token = match (&self.config.token, &st.token) {
            (Some(t), _) => t.expose().to_owned(),
            (None, Some(t)) => t.clone(),
            (None, None) => return Err(VenueError::NotJoined),
        };
        let upstream = self.config.upstream.clone().unwrap_or(st.upstream.clone());
        Ok((upstream, token))
    }

    /// The chunk `id` from upstream: `None` if the upstream relay does not
    /// hold it (404) or sent bytes that do not hash to `id`.
    pub(crate) async fn upstream_blob(&self, id: &str) -> Result<Option<Vec<u8>>, VenueError> {
        if self.blob_misses.recent(id) {
            return Ok(None);
        }
        let (upstream, token) = self.upstream_auth().await?;
        let resp = self
            .http
            .get(url(&upstream, &format!("/v1/blobs/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| net(&e))?;
        match answer(resp).await {
            Ok(bytes) if bytes.len() <= MAX_SEALED_CHUNK && chunk_id(&bytes) == id => {
                Ok(Some(bytes))
            }
            Ok(_) => Ok(None),
            Err(VenueError::Upstream { status: 404, .. }) => {
                self.blob_misses.record(id);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Passes a chunk a device uploaded here on to the upstream relay.
    pub(crate) async fn forward_blob(&self, id: &str, bytes: Vec<u8>) -> Result<(), VenueError> {
        let (upstream, token) = self.upstream_auth().await?;
        let resp = self
            .http
            .put(url(&upstream, &format!("/v1/blobs/{id}")))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .bearer_auth(&token)
            .body(bytes)
            .send()
            .await
            .map_err(|e| net(&e))?;
        answer(resp).await.map(|_| ())
    }
}
