//! The HTTP surface: routes, the bearer-token extractor, body limits, and
//! one log line plus metrics per request.

mod sync;
mod team;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use heartbridge_proto::{Secret, TeamId};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::{ApiError, StoreError};
use crate::metrics::Metrics;
use crate::storage::{Device, DeviceId, Storage};
use crate::writer::Writer;
use crate::Clock;

/// Largest JSON body of the enrollment and admin endpoints.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// What every handler shares.
/// KiB permits for `bytes` (at least one).
pub(crate) fn budget_permits(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

pub(crate) struct Relay {
    pub(crate) storage: Arc<dyn Storage>,
    /// Bounds the storage calls running on blocking threads at once (and so
    /// the read connections open), however many requests arrive together.
    pub(crate) gate: Semaphore,
    /// Push bytes admitted at once, in KiB permits (see `Config::push_budget_bytes`).
    pub(crate) push_budget: Semaphore,
    pub(crate) writer: Writer,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_body: usize,
    pub(crate) page_bytes: u64,
    pub(crate) clock: Clock,
}

impl Relay {
    /// Runs a storage call on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
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

/// The router over a relay.
pub(crate) fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/claim", post(team::claim))
        .route("/v1/join", post(team::join))
        .route("/v1/invites", post(team::invite))
        .route("/v1/members", get(team::members))
        .route("/v1/devices/{device_id}/revoke", post(team::revoke))
        .route("/v1/sync", post(sync::sync))
        .layer(middleware::from_fn_with_state(Arc::clone(&relay), observe))
        .with_state(relay)
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
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// The device a bearer token identifies; refuses unknown and revoked ones.
/// Looked up on every request, so a revocation holds from the next one.
pub(crate) struct Caller(pub(crate) Device);

impl FromRequestParts<Arc<Relay>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, relay: &Arc<Relay>) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .map(|t| Secret::from_string(t.to_owned()))
            .filter(|t| !t.expose().is_empty())
            .ok_or(ApiError::UnknownToken)?;
        let hash = token.hash();
        let device = relay
            .run(move |s| s.device_by_token(&hash))
            .await?
            .ok_or(ApiError::UnknownToken)?;
        if let Some(slot) = parts.extensions.get::<NoteSlot>() {
            slot.update(|n| {
                n.team = Some(device.team);
                n.device = Some(device.id);
            });
        }
        if device.revoked {
            return Err(ApiError::Revoked);
        }
        Ok(Caller(device))
    }
}

/// Reads a body of at most `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::TooLarge(limit)),
        Err(_) => Err(ApiError::Malformed(
            "the request body could not be read".into(),
        )),
    }
}

/// Reads a JSON body. The error names where the JSON broke, never a value
/// from it (it may hold a token).
pub(crate) async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_body(body, limit.min(MAX_JSON_BYTES)).await?;
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

async fn metrics(State(relay): State<Arc<Relay>>) -> Result<Response, ApiError> {
    let gauges = relay.run(|s| s.gauges()).await?;
    let text = relay.metrics.render(gauges);
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response())
}
