//! Lesson chunks over HTTP (issue 10 item 7): `PUT`/`GET /v1/blobs/{id}`
//! and `POST /v1/blobs/have`, authenticated as `/v1/sync` is (the token to
//! the team's relay, the device's signature to a venue relay). A download
//! cut mid-way is asked again from the byte it reached (`Range`), so a link
//! that drops every few hundred kilobytes still brings a chunk whole.

use std::time::Duration;

use heartbridge_core::proto::lesson::{BlobHaveRequest, BlobHaveResponse, MAX_SEALED_CHUNK};
use heartbridge_core::{BlobTransport, RelayEntry, Team, TransportError};

use crate::{net, read_limited, url, BlockingTransport, HttpTransport, TResult};

/// Total deadline of one chunk request.
pub const BLOB_DEADLINE: Duration = Duration::from_secs(60);
/// Requests one chunk download may take (the first and its resumptions)
/// before it gives up with the last network failure.
pub const BLOB_ATTEMPTS: usize = 12;

impl HttpTransport {
    fn blob_request(
        &self,
        team: &Team,
        method: reqwest::Method,
        path: &str,
        body: &[u8],
    ) -> TResult<reqwest::RequestBuilder> {
        let req = self
            .client_for(&team.relay_url)?
            .request(method.clone(), url(&team.relay_url, path));
        Ok(
            match self
                .signing
                .authorization(&team.relay_url, method.as_str(), path, body)?
            {
                Some(sig) => req.header(reqwest::header::AUTHORIZATION, sig),
                None => req.bearer_auth(team.token.expose()),
            },
        )
    }

    /// Which of `ids` the relay holds.
    pub async fn blob_have(
        &self,
        team: &Team,
        ids: &[String],
        deadline: Duration,
    ) -> TResult<Vec<bool>> {
        let body = serde_json::to_vec(&BlobHaveRequest { ids: ids.to_vec() })
            .map_err(|_| net("the request could not be written"))?;
        let req = self
            .blob_request(team, reqwest::Method::POST, "/v1/blobs/have", &body)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let answer = self.exchange(req, deadline).await?;
        let parsed: BlobHaveResponse = serde_json::from_slice(&answer)
            .map_err(|_| net("the relay's answer to a chunk query does not parse"))?;
        if parsed.have.len() != ids.len() {
            return Err(net(
                "the relay's answer to a chunk query has the wrong length",
            ));
        }
        Ok(parsed.have)
    }

    /// Uploads a sealed chunk (the relay checks its hash; a known one is a
    /// no-op).
    pub async fn blob_put(
        &self,
        team: &Team,
        id: &str,
        sealed: Vec<u8>,
        deadline: Duration,
    ) -> TResult<()> {
        let path = format!("/v1/blobs/{id}");
        let req = self
            .blob_request(team, reqwest::Method::PUT, &path, &sealed)?
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(sealed);
        self.exchange(req, deadline).await.map(|_| ())
    }

    /// Downloads a sealed chunk, resuming a cut download from the byte it
    /// reached, up to [`BLOB_ATTEMPTS`] requests. The caller checks the
    /// bytes (`Store::lesson_accept_chunk`).
    pub async fn blob_get(&self, team: &Team, id: &str, deadline: Duration) -> TResult<Vec<u8>> {
        let path = format!("/v1/blobs/{id}");
        let mut got: Vec<u8> = Vec::new();
        let mut last = net("no attempt made");
        for _ in 0..BLOB_ATTEMPTS {
            let mut req = self.blob_request(team, reqwest::Method::GET, &path, &[])?;
            if !got.is_empty() {
                req = req.header(reqwest::header::RANGE, format!("bytes={}-", got.len()));
            }
            let run = async {
                let resp = req.send().await.map_err(|e| crate::network(&e))?;
                let status = resp.status().as_u16();
                if status == 206 && content_range_start(resp.headers()) != Some(got.len()) {
                    // Another range than the one asked for (review K6): start
                    // the chunk again.
                    got.clear();
                    return Err(net("the relay answered another range"));
                }
                if status == 200 || status == 206 {
                    if status == 200 {
                        // The relay sent it all again (it ignored the range).
                        got.clear();
                    }
                    return read_limited(resp, MAX_SEALED_CHUNK, true).await;
                }
                if status == 416 && !got.is_empty() {
                    // Cut just after the last byte: everything is here (the
                    // caller checks the hash).
                    return Ok(Vec::new());
                }
                let body = read_limited(resp, 64 * 1024, false).await?;
                let err: Option<heartbridge_core::proto::ErrorBody> =
                    serde_json::from_slice(&body).ok();
                Err(TransportError::Relay {
                    status,
                    kind: err
                        .as_ref()
                        .map_or_else(|| "http".to_owned(), |e| e.error.clone()),
                    message: err.map_or_else(
                        || format!("the relay answered HTTP {status}"),
                        |e| e.message,
                    ),
                })
            };
            let result = match tokio::time::timeout(deadline, run).await {
                Ok(r) => r,
                Err(_) => Err(net("timed out")),
            };
            match result {
                Ok(rest) => {
                    got.extend_from_slice(&rest);
                    if got.len() > MAX_SEALED_CHUNK {
                        return Err(net("response too large"));
                    }
                    return Ok(got);
                }
                Err(TransportError::Cut { detail, received }) => {
                    got.extend_from_slice(&received);
                    if got.len() > MAX_SEALED_CHUNK {
                        return Err(net("response too large"));
                    }
                    last = TransportError::Network(detail);
                }
                Err(e @ TransportError::Network(_)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// The first byte of a 206's `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(h: &reqwest::header::HeaderMap) -> Option<usize> {
    let v = h.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let (start, _) = v.trim().strip_prefix("bytes ")?.split_once('-')?;
    start.trim().parse().ok()
}

impl BlobTransport for BlockingTransport {
    fn blob_have(&mut self, team: &Team, ids: &[String]) -> TResult<Vec<bool>> {
        self.rt
            .block_on(self.http.blob_have(team, ids, BLOB_DEADLINE))
    }
    fn blob_put(&mut self, team: &Team, id: &str, sealed: Vec<u8>) -> TResult<()> {
        self.rt
            .block_on(self.http.blob_put(team, id, sealed, BLOB_DEADLINE))
    }
    fn blob_get(&mut self, team: &Team, id: &str) -> TResult<Vec<u8>> {
        self.rt
            .block_on(self.http.blob_get(team, id, BLOB_DEADLINE))
    }
    fn use_relay(&mut self, relay: &RelayEntry) {
        heartbridge_core::Transport::use_relay(self, relay);
    }
}
