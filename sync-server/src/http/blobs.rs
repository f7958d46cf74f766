//! Lesson chunks (issue 10 item 7): `PUT`/`GET /v1/blobs/{id}` and `POST
//! /v1/blobs/have`, authenticated like `/v1/sync` (a bearer token, or a
//! device's signature at a venue relay). A chunk is sealed under the team
//! key by a device and named by the SHA-256 of its sealed bytes: the relay
//! checks the name, stores the bytes once per team, and learns their size.
//! A `GET` honours `Range: bytes=N-` (206), so a cut download resumes.
//! At a venue relay a chunk not held here is fetched from the upstream
//! relay (with the venue relay's own token) and kept.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use heartbridge_proto::lesson::{
    chunk_id, is_chunk_id, BlobHaveRequest, BlobHaveResponse, MAX_HAVE_IDS, MAX_SEALED_CHUNK,
};

use super::{content_length, read_json, require_content_type, BodyReader, Caller, Relay};
use crate::error::ApiError;
use crate::storage::BlobPut;

const OCTET_STREAM: &str = "application/octet-stream";

fn parse_id(id: &str) -> Result<[u8; 32], ApiError> {
    if !is_chunk_id(id) {
        return Err(ApiError::Malformed(
            "a chunk id is 64 lowercase hex digits (the SHA-256 of the sealed chunk)".into(),
        ));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(id, &mut out)
        .map_err(|_| ApiError::Malformed("a chunk id is 64 hex digits".into()))?;
    Ok(out)
}

/// `PUT /v1/blobs/{id}`: 201 when stored, 200 when the team held it.
pub(super) async fn put(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let key = parse_id(&id)?;
    require_content_type(&headers, OCTET_STREAM)?;
    let limit = MAX_SEALED_CHUNK.min(relay.max_body);
    content_length(&headers, limit)?;
    let bytes = BodyReader::new(body, limit, relay.body_timeout)
        .read(None)
        .await?
        .ok_or(ApiError::Timeout)?;
    if bytes.is_empty() || chunk_id(&bytes) != id {
        return Err(ApiError::Malformed(
            "the chunk's bytes do not hash to its id: it was altered on the way or named wrong"
                .into(),
        ));
    }
    let (team, by, now, quota) = (device.team, device.id, relay.clock.now(), relay.blob_quota);
    let data = bytes.to_vec();
    let new = match relay
        .run(move |s| s.blob_put(team, key, &data, by, now, quota))
        .await?
    {
        BlobPut::Stored => true,
        BlobPut::Known => false,
        BlobPut::OverQuota => return Err(ApiError::Quota(quota)),
    };
    if let Some(venue) = relay.venue.clone() {
        if new {
            // Best effort: the device's own upload to the team relay is
            // what counts; this saves it a trip when it is inside the loop.
            let bytes = bytes.to_vec();
            tokio::spawn(async move {
                let _ = venue.forward_blob(&id, bytes).await;
            });
        }
    }
    Ok(if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// The first byte a `Range: bytes=N-` (or `bytes=N-M`, whose end is
/// ignored: a chunk is small) asks for.
fn range_start(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get(RANGE)?.to_str().ok()?.trim();
    let spec = v.strip_prefix("bytes=")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}

/// `GET /v1/blobs/{id}`: the sealed bytes (from `Range`'s start: 206).
pub(super) async fn get(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_id(&id)?;
    let team = device.team;
    let mut held = relay.run(move |s| s.blob_get(team, key)).await?;
    if held.is_none() {
        if let Some(venue) = relay.venue.clone() {
            if let Ok(Some(bytes)) = venue.upstream_blob(&id).await {
                if chunk_id(&bytes) == id {
                    let (by, now, data) = (device.id, relay.clock.now(), bytes.clone());
                    // Served even if the venue's quota keeps it from storing it.
                    let quota = relay.blob_quota;
                    relay
                        .run(move |s| s.blob_put(team, key, &data, by, now, quota))
                        .await?;
                    held = Some(bytes);
                }
            }
        }
    }
    let bytes = held.ok_or(ApiError::NotFoundWhy(
        "no such lesson chunk here (the device that added the lesson has not uploaded it yet)",
    ))?;
    let total = bytes.len();
    let octets = HeaderValue::from_static(OCTET_STREAM);
    match range_start(&headers) {
        Some(start) if start > 0 && start < total => {
            let mut resp = (StatusCode::PARTIAL_CONTENT, bytes[start..].to_vec()).into_response();
            let h = resp.headers_mut();
            h.insert(CONTENT_TYPE, octets);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", total - 1)) {
                h.insert(CONTENT_RANGE, v);
            }
            Ok(resp)
        }
        Some(start) if start >= total && total > 0 => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(CONTENT_RANGE, format!("bytes */{total}"))],
        )
            .into_response()),
        _ => {
            let mut resp = (StatusCode::OK, bytes).into_response();
            resp.headers_mut().insert(CONTENT_TYPE, octets);
            Ok(resp)
        }
    }
}

/// `POST /v1/blobs/have`: which of these chunks the team holds here.
pub(super) async fn have(
    State(relay): State<Arc<Relay>>,
    Caller(device): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobHaveResponse>, ApiError> {
    let req: BlobHaveRequest = read_json(&relay, &headers, body).await?;
    if req.ids.len() > MAX_HAVE_IDS {
        return Err(ApiError::Malformed(format!(
            "at most {MAX_HAVE_IDS} chunk ids a request"
        )));
    }
    let ids = req
        .ids
        .iter()
        .map(|i| parse_id(i))
        .collect::<Result<Vec<_>, _>>()?;
    let team = device.team;
    let have = relay.run(move |s| s.blob_have(team, &ids)).await?;
    Ok(Json(BlobHaveResponse { have }))
}
