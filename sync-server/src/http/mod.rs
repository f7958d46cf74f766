//! The HTTP surface: routes, the bearer-token extractor, body limits, and
//! one log line plus metrics per request.

mod blobs;
mod limits;
mod sync;
mod team;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heartbridge_proto::{Secret, TeamId};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorKind, StoreError};
use crate::metrics::Metrics;
use crate::storage::{Device, DeviceId, Storage};
use crate::writer::Writer;
use crate::Clock;

pub(crate) use limits::Limits;

/// Largest JSON body of the enrollment and admin endpoints.
const MAX_JSON_BYTES: usize = 64 * 1024;
const JSON: &str = "application/json";

/// KiB permits for `bytes` (at least one).
pub(crate) fn budget_permits(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

/// What every handler shares.
pub(crate) struct Relay {
    pub(crate) storage: Arc<dyn Storage>,
    /// The log's id, sent in every sync answer (`ResponseExt::log_id`).
    pub(crate) log_id: crate::storage::LogId,
    /// Bounds the storage calls running on blocking threads at once (and so
    /// the read connections open), however many requests arrive together.
    pub(crate) gate: Semaphore,
    /// Push bytes admitted at once, in KiB permits (see `Config::push_budget_bytes`).
    pub(crate) push_budget: Semaphore,
    pub(crate) writer: Writer,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_body: usize,
    pub(crate) page_bytes: u64,
    pub(crate) max_push_envelopes: usize,
    /// Bytes of lesson chunks a team may store (0: no limit).
    pub(crate) blob_quota: u64,
    pub(crate) body_timeout: Duration,
    pub(crate) push_stall: Duration,
    pub(crate) limits: Limits,
    pub(crate) metrics_token_hash: Option<String>,
    pub(crate) clock: Clock,
    /// Signed requests (`HB-Sig`) are taken for this team under this relay
    /// id: a venue relay's devices never show it a bearer token.
    pub(crate) signed: Option<SignedAuth>,
    /// At a venue relay: its forwarder, whose rows answer the devices'
    /// two-level receipts.
    pub(crate) venue: Option<Arc<crate::venue::Forwarder>>,
}

/// What a relay that takes signed requests checks them against.
#[derive(Debug, Clone)]
pub(crate) struct SignedAuth {
    pub(crate) team: TeamId,
    /// The ids a device may sign for: the relay's certificate fingerprint
    /// when it serves TLS, and its URLs as the devices know them.
    pub(crate) relay_ids: Vec<String>,
}

impl Relay {
    /// Runs a storage call on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
    {
        // The semaphore is never closed; without a permit the call still runs.
        let _permit = self.gate.acquire().await.ok();
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(storage.as_ref()))
            .await
            .map_err(|_| StoreError::Panicked)?
    }
}

/// The router over a relay, for the public listener.
pub(crate) fn router(relay: Arc<Relay>) -> Router {
    let mut enroll = Router::new()
        .route("/v1/claim", post(team::claim))
        .route("/v1/join", post(team::join));
    if let Some(per_address) = relay.limits.enroll_layer() {
        enroll = enroll.route_layer(per_address);
    }
    enroll = enroll
        .route("/v1/invites", post(team::invite))
        .route("/v1/devices/{device_id}/revoke", post(team::revoke));
    if relay.venue.is_some() {
        // A venue relay enrolls no one and administers nothing (review
        // F12): a device made or revoked here would exist only here.
        enroll = Router::new()
            .route("/v1/claim", post(central_relay_only))
            .route("/v1/join", post(central_relay_only))
            .route("/v1/invites", post(central_relay_only))
            .route("/v1/devices/{device_id}/revoke", post(central_relay_only));
    }
    let mut routes = Router::new()
        .route("/healthz", get(health))
        .route("/v1/members", get(team::members))
        .route("/v1/roster", get(team::roster).put(sync::put_roster))
        .route("/v1/sync", post(sync::sync))
        .route("/v1/blobs/have", post(blobs::have))
        .route("/v1/blobs/{id}", get(blobs::get).put(blobs::put))
        .merge(enroll);
    // Without a token, /metrics is not on the public listener at all.
    if relay.metrics_token_hash.is_some() {
        routes = routes.route("/metrics", get(metrics));
    }
    routes
        .layer(middleware::from_fn_with_state(
            Arc::clone(&relay),
            signed_request,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&relay), observe))
        .layer(middleware::map_response(json_errors))
        .with_state(relay)
}

/// What a venue relay answers enrollment and administration (review F12).
async fn central_relay_only() -> ApiError {
    ApiError::CentralRelayOnly
}

/// The router of the metrics listener: `/metrics` and `/healthz` only.
pub(crate) fn metrics_router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .layer(middleware::map_response(json_errors))
        .with_state(relay)
}

/// Makes every error answer JSON `{error, message}`: the handlers' are
/// already; this catches the rest (no route, wrong method, an extractor's
/// or the HTTP stack's own refusals), keeping status and headers.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(JSON.as_bytes()));
    if is_json {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    let body = serde_json::to_vec(&ApiError::from_status(status).body()).unwrap_or_default();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    Response::from_parts(parts, Body::from(body))
}

/// The address the request came from (the TCP peer).
pub(crate) fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The bearer token of a request, if it has a non-empty one.
fn bearer(headers: &HeaderMap) -> Option<Secret> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map(|t| Secret::from_string(t.to_owned()))
}

/// Refuses a body whose content type is not `expected` (parameters such
/// as `charset` aside).
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &'static str,
) -> Result<(), ApiError> {
    let ok = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(expected))
    }
}

/// The announced body length; a longer one than `limit` is refused at once.
pub(crate) fn content_length(headers: &HeaderMap, limit: usize) -> Result<Option<usize>, ApiError> {
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    match announced {
        Some(n) if n > limit => Err(ApiError::TooLarge(limit)),
        other => Ok(other),
    }
}

/// What the log line of a request says besides route, status and time.
/// Ids and counts only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Note {
    team: Option<TeamId>,
    device: Option<DeviceId>,
    pushed: usize,
    pulled: usize,
    bytes_in: usize,
    bytes_out: usize,
}

/// Where handlers leave their [`Note`]; put in the request's extensions.
#[derive(Clone, Default)]
pub(crate) struct NoteSlot(Arc<Mutex<Note>>);

impl NoteSlot {
    fn update(&self, f: impl FnOnce(&mut Note)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
    fn get(&self) -> Note {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for NoteSlot {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<NoteSlot>()
            .cloned()
            .unwrap_or_default())
    }
}

async fn observe(State(relay): State<Arc<Relay>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".into());
    let slot = NoteSlot::default();
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    relay.metrics.request(&route, status);
    let kind = resp.extensions().get::<ErrorKind>().map(|k| k.0);
    if let Some(kind) = kind {
        relay.metrics.refusal(kind);
    }
    if route == "/v1/sync" {
        relay.metrics.sync_finished(elapsed);
    }
    let n = slot.get();
    let or_dash = |s: Option<String>| s.unwrap_or_else(|| "-".into());
    tracing::info!(
        route = %route,
        status,
        team = %or_dash(n.team.map(|t| t.to_hex())),
        device = %or_dash(n.device.map(|d| d.to_hex())),
        pushed = n.pushed,
        pulled = n.pulled,
        bytes_in = n.bytes_in,
        bytes_out = n.bytes_out,
        error = kind.unwrap_or("-"),
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// The device whose signature (`HB-Sig`) a request carries, checked by
/// [`signed_request`] before any handler runs.
#[derive(Clone)]
struct SignedCaller(Device);

/// Checks a request signed by a device (`Authorization: HB-Sig …`, see
/// [`heartbridge_proto::reqsig`]): reads its body (within the body limit
/// and timeout; the signature covers its hash), looks the device up in the
/// relay's team, verifies the signature under its registered key for this
/// relay's id, method, path and time, and leaves the device for [`Caller`].
/// Bearer requests pass untouched. A relay without [`Relay::signed`]
/// refuses signed requests.
async fn signed_request(State(relay): State<Arc<Relay>>, req: Request, next: Next) -> Response {
    let Some(cred) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.trim_start()
                .get(..heartbridge_proto::reqsig::SCHEME.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(heartbridge_proto::reqsig::SCHEME))
        })
        .map(heartbridge_proto::reqsig::parse)
    else {
        return next.run(req).await;
    };
    match check_signed(&relay, cred, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check_signed(
    relay: &Arc<Relay>,
    cred: Option<heartbridge_proto::reqsig::SignedCredential>,
    req: Request,
) -> Result<Request, ApiError> {
    let Some(auth) = relay.signed.clone() else {
        return Err(ApiError::BadRequestSignature(
            "this relay takes bearer tokens, not signed requests",
        ));
    };
    let cred = cred.ok_or(ApiError::BadRequestSignature(
        "the HB-Sig credential is malformed: device-hex.unix-secs.base64url-signature",
    ))?;
    let ip = client_ip(req.extensions());
    let (mut parts, body) = req.into_parts();
    content_length(&parts.headers, relay.max_body)?;
    // Who signs, and when, before a byte of the body is read (review L9):
    // a stranger's large body is never buffered.
    let (team, id) = (auth.team, cred.device);
    let device = relay.run(move |s| s.team_device(team, id)).await?;
    // A device this relay's mirror does not hold: most often one that
    // joined at the central relay after the venue relay last reached it.
    // Counted as a failed authentication; said as what it is.
    let unknown = || match relay.limits.auth_failed(ip, None) {
        ApiError::RateLimited(s) => ApiError::RateLimited(s),
        _ => ApiError::VenueUnknownDevice,
    };
    let Some(device) = device else {
        return Err(unknown());
    };
    let Some(sign_pk) = device.sign_pk else {
        return Err(unknown());
    };
    let now = relay.clock.now();
    if (now - cred.secs).abs() > heartbridge_proto::reqsig::MAX_SKEW_SECS {
        return Err(ApiError::BadRequestSignature(
            "the signed request's time is more than 5 minutes from the relay's clock: set this device's clock (or the relay's) right and sync again",
        ));
    }
    let bytes = BodyReader::new(body, relay.max_body, relay.body_timeout)
        .read(None)
        .await?
        .ok_or(ApiError::Timeout)?;
    // The query string too (review L2): no route reads one today, but a
    // signature must not hold for another query than the one signed.
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let holds = auth.relay_ids.iter().any(|relay_id| {
        cred.verify(
            &sign_pk,
            relay_id,
            now,
            parts.method.as_str(),
            &path,
            &bytes,
        )
    });
    if !holds {
        // Counted like a failed token (per address), so guessing is slow.
        if let ApiError::RateLimited(s) = relay.limits.auth_failed(ip, None) {
            return Err(ApiError::RateLimited(s));
        }
        return Err(ApiError::BadRequestSignature(
            "the request's signature does not hold for this relay: the device signed it for another relay address, or it was altered on the way",
        ));
    }
    if let Some(slot) = parts.extensions.get::<NoteSlot>() {
        slot.update(|n| {
            n.team = Some(device.team);
            n.device = Some(device.id);
        });
    }
    parts.extensions.insert(SignedCaller(device));
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The device a bearer token identifies; refuses unknown ones, and revoked
/// ones with 403 `device_revoked`. Looked up on every request, so a
/// revocation holds from the next one.
pub(crate) struct Caller(pub(crate) Device);

impl FromRequestParts<Arc<Relay>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, relay: &Arc<Relay>) -> Result<Self, ApiError> {
        let AnyCaller(device) = AnyCaller::from_request_parts(parts, relay).await?;
        if device.revoked {
            return Err(ApiError::DeviceRevoked);
        }
        Ok(Caller(device))
    }
}

/// The device a bearer token identifies, revoked or not: for `GET
/// /v1/roster`, which a revoked device needs to learn it was revoked.
pub(crate) struct AnyCaller(pub(crate) Device);

impl FromRequestParts<Arc<Relay>> for AnyCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, relay: &Arc<Relay>) -> Result<Self, ApiError> {
        if let Some(SignedCaller(device)) = parts.extensions.get::<SignedCaller>() {
            return Ok(AnyCaller(*device));
        }
        let ip = client_ip(&parts.extensions);
        let Some(token) = bearer(&parts.headers) else {
            return Err(relay.limits.auth_failed(ip, None));
        };
        let hash = token.hash();
        let lookup = hash.clone();
        let Some(device) = relay.run(move |s| s.device_by_token(&lookup)).await? else {
            return Err(relay.limits.auth_failed(ip, Some(&hash)));
        };
        if let Some(slot) = parts.extensions.get::<NoteSlot>() {
            slot.update(|n| {
                n.team = Some(device.team);
                n.device = Some(device.id);
            });
        }
        Ok(AnyCaller(device))
    }
}

/// Reads a request body within the relay's body timeout and size limit.
pub(crate) struct BodyReader {
    body: Body,
    buf: Vec<u8>,
    limit: usize,
    deadline: tokio::time::Instant,
}

impl BodyReader {
    /// The body timeout starts now.
    pub(crate) fn new(body: Body, limit: usize, timeout: Duration) -> Self {
        BodyReader {
            body,
            buf: Vec::new(),
            limit,
            deadline: tokio::time::Instant::now() + timeout,
        }
    }

    /// Reads to the end of the body. With `stall`, gives up early (`None`)
    /// once no byte has come for that long; call again to go on. Past the
    /// deadline: `Timeout`.
    pub(crate) async fn read(
        &mut self,
        stall: Option<Duration>,
    ) -> Result<Option<Bytes>, ApiError> {
        loop {
            let until = match stall {
                Some(stall) => (tokio::time::Instant::now() + stall).min(self.deadline),
                None => self.deadline,
            };
            let frame = match tokio::time::timeout_at(until, self.body.frame()).await {
                Ok(frame) => frame,
                Err(_) if until < self.deadline => return Ok(None),
                Err(_) => return Err(ApiError::Timeout),
            };
            match frame {
                None => return Ok(Some(Bytes::from(std::mem::take(&mut self.buf)))),
                Some(Err(_)) => {
                    return Err(ApiError::Malformed(
                        "the request body could not be read".into(),
                    ))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.buf.len() + data.len() > self.limit {
                            return Err(ApiError::TooLarge(self.limit));
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Reads a JSON body (content type `application/json`, at most 64 KiB,
/// within the body timeout). The error names where the JSON broke, never
/// a value from it (it may hold a token).
pub(crate) async fn read_json<T: DeserializeOwned>(
    relay: &Relay,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    require_content_type(headers, JSON)?;
    let limit = relay.max_body.min(MAX_JSON_BYTES);
    content_length(headers, limit)?;
    let bytes = BodyReader::new(body, limit, relay.body_timeout)
        .read(None)
        .await?
        .ok_or(ApiError::Timeout)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::Malformed(format!(
            "the JSON body does not match this endpoint ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

async fn health(State(relay): State<Arc<Relay>>) -> Result<Json<serde_json::Value>, ApiError> {
    relay.run(|s| s.check()).await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

/// `GET /metrics`: with a metrics token configured, only for its bearer
/// (a wrong one counts as a failed authentication).
async fn metrics(State(relay): State<Arc<Relay>>, req: Request) -> Result<Response, ApiError> {
    if let Some(expected) = &relay.metrics_token_hash {
        let presented = bearer(req.headers()).map(|t| t.hash());
        if presented.as_deref() != Some(expected.as_str()) {
            return Err(relay
                .limits
                .auth_failed(client_ip(req.extensions()), presented.as_deref()));
        }
    }
    let (gauges, teams) = relay.run(|s| Ok((s.gauges()?, s.team_usage()?))).await?;
    let text = relay.metrics.render(gauges, &teams);
    Ok(([(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
