//! Micro-lessons in the app (issue 10, item 7): the lessons a handbook
//! carries, fetching their sealed chunks (after the volunteer agreed to the
//! size on a link that may be metered), progress and "watched", and the
//! `hblesson:` URI scheme the player's `<audio>`/`<video>` element reads.
//!
//! The download is core's sans-IO pieces driven like the sync: the missing
//! chunks are listed under the store lock, each is fetched with the lock
//! released (`HttpTransport::blob_get`, which resumes a cut transfer with
//! `Range`), and each is checked and stored in its own transaction under the
//! lock, so a cut link loses at most the chunk in flight and a later fetch
//! takes only what is missing. After every chunk the UI gets a
//! `lesson-progress` event.
//!
//! Playback never writes plaintext to disk: `hblesson://localhost/<id>`
//! answers from `Store::lesson_read_range`, decrypting the chunks a request
//! covers. A `Range` request gets `206` with at most [`RANGE_MAX`] bytes; a
//! request without one gets the whole lesson. The UI reads the ranges with
//! `fetch` into memory and plays them from a `blob:` URL: WebKitGTK's media
//! player loads only blob, data, file and http(s) URLs (a custom scheme as
//! the media element's `src` fails with `MEDIA_ERR_SRC_NOT_SUPPORTED`). The
//! page's origin is another scheme's, so answers carry CORS headers and a
//! preflight `OPTIONS` is answered. While the app is locked the scheme
//! answers `403` and nothing.

use std::sync::Arc;
use std::time::Duration;

use heartbridge_client::HttpTransport;

use heartbridge_core::{ChunkRef, LinkPolicy, RelayKind, Store, TransportError};
use serde_json::{json, Value};
use tauri::http::{header, Request, Response, StatusCode};
use tauri::{AppHandle, Manager, Runtime, State, UriSchemeContext, UriSchemeResponder};

use crate::camel::to_ui;
use crate::error::{ApiError, ApiResult};
use crate::store_slot::StoreSlot;
use crate::sync_task::Events;
use crate::AppState;

/// The URI scheme of lesson media (`hblesson://localhost/<lesson id>`).
pub const SCHEME: &str = "hblesson";
/// The most one ranged answer carries (core reads at most 8 MiB a call).
const RANGE_MAX: u64 = 4 * 1024 * 1024;
/// Per chunk request (512 KiB): generous for a slow link.
const CHUNK_DEADLINE: Duration = Duration::from_secs(120);

/// One download at a time: two would fetch the same chunks twice.
static FETCHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn on_store<T: Send + 'static>(
    store: &Arc<StoreSlot>,
    f: impl FnOnce(&mut Store) -> heartbridge_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let store = Arc::clone(store);
    tauri::async_runtime::spawn_blocking(move || store.with(f))
        .await
        .map_err(|_| ApiError::new("internal", "the lesson task stopped unexpectedly"))?
}

/// The lessons of one handbook (or of all when `handbook` is absent), with
/// how much of each is on this device, its progress and watched count.
#[tauri::command]
pub async fn lesson_list(state: State<'_, AppState>, handbook: Option<String>) -> ApiResult<Value> {
    let handbook = handbook
        .filter(|h| !h.is_empty())
        .map(|h| heartbridge_core::DocId::parse(&h, "handbook"))
        .transpose()?;
    state.with(|s| Ok(to_ui(&s.lessons(handbook.as_ref())?)))
}

#[tauri::command]
pub async fn lesson_get(state: State<'_, AppState>, id: String) -> ApiResult<Value> {
    state.with(|s| Ok(to_ui(&s.lesson(&id)?)))
}

/// What fetching `ids` would cost (bytes and chunks still missing) and
/// whether the link counts as metered (no venue relay is known: the fetch
/// would go to the team's relay over whatever link the device has); no
/// network.
#[tauri::command]
pub async fn lesson_fetch_plan(state: State<'_, AppState>, ids: Vec<String>) -> ApiResult<Value> {
    state.with(|s| {
        let plan = s.lesson_fetch_plan(&ids)?;
        let venue = s.relay_order()?.iter().any(|e| e.kind == RelayKind::Venue);
        let mut v = to_ui(&plan);
        v["metered"] = json!(!venue);
        Ok(v)
    })
}

fn transport_error(e: TransportError) -> ApiError {
    match e {
        TransportError::Network(_) | TransportError::Cut { .. } => ApiError::new(
            "network",
            "the relay could not be reached; what arrived is kept on this device, download again to go on",
        ),
        TransportError::Relay { kind, message, .. } => ApiError::new(&kind, message),
    }
}

/// Fetches the missing chunks of `ids` (every lesson when empty), as
/// `Store::lesson_fetch` does: the relays in the sync's order, a venue relay
/// (local Wi-Fi) always, any other only if the volunteer agreed after
/// seeing the size (`confirmMetered`) or said the link is not metered, else
/// `metered_link` and nothing is fetched there. Each chunk is fetched with
/// the store unlocked (resuming a cut transfer), then checked and stored in
/// its own transaction; `lesson-progress` follows every chunk.
#[tauri::command]
pub async fn lesson_fetch(
    app: AppHandle,
    state: State<'_, AppState>,
    ids: Vec<String>,
    confirm_metered: bool,
) -> ApiResult<Value> {
    fetch(
        &state.store,
        state.syncer.http(),
        &app,
        ids,
        confirm_metered,
    )
    .await
}

/// What `lesson_fetch` does, with the store, the HTTP client and where the
/// progress events go handed in (a test records them).
pub async fn fetch(
    store: &Arc<StoreSlot>,
    http: &HttpTransport,
    events: &impl Events,
    ids: Vec<String>,
    confirm_metered: bool,
) -> ApiResult<Value> {
    let _one = FETCHING.lock().await;
    let (policy, team, order, signer) = on_store(store, move |s| {
        Ok((
            s.lesson_link_policy()?,
            s.team()?.ok_or(heartbridge_core::Error::NotEnrolled)?,
            s.relay_order()?,
            s.request_signer().ok(),
        ))
    })
    .await?;
    // As the sync sets them up: each relay's pin, and a signature (never the
    // token) for a venue relay.
    http.trust_relays(&order);
    if let Some((device, secret)) = signer {
        http.set_signer(&device, secret);
    }
    for e in order
        .iter()
        .filter(|e| e.kind == RelayKind::Venue || !e.takes_token)
    {
        http.venue_relay(&e.url, e.pin.as_deref().unwrap_or(&e.url));
    }
    let ids2 = ids.clone();
    let mut missing: Vec<ChunkRef> =
        on_store(store, move |s| s.lesson_missing_chunks(&ids2)).await?;
    let mut fetched = 0u32;
    let mut bytes = 0u64;
    let mut last: Option<ApiError> = None;
    for entry in order {
        if missing.is_empty() {
            break;
        }
        if entry.kind != RelayKind::Venue && policy == LinkPolicy::Ask && !confirm_metered {
            let ids2 = ids.clone();
            let plan = on_store(store, move |s| s.lesson_fetch_plan(&ids2)).await?;
            last = Some(
                heartbridge_core::Error::MeteredLink {
                    lessons: plan.lessons.len(),
                    bytes: plan.bytes_missing,
                }
                .into(),
            );
            continue;
        }
        let mut at = team.clone();
        at.relay_url = entry.url.clone();
        let mut left = Vec::new();
        let mut it = std::mem::take(&mut missing).into_iter();
        for chunk in it.by_ref() {
            // The only await on the network; the store is not locked here.
            let sealed = match http.blob_get(&at, &chunk.chunk_id, CHUNK_DEADLINE).await {
                Ok(b) => b,
                Err(TransportError::Relay { status: 404, .. }) => {
                    last = Some(ApiError::new(
                        "lesson_not_on_relay",
                        "a part of the lesson is not on the relay yet: the device that added it uploads it at its next sync",
                    ));
                    left.push(chunk);
                    continue;
                }
                Err(e) => {
                    left.push(chunk);
                    last = Some(transport_error(e));
                    break;
                }
            };
            let n = sealed.len() as u64;
            let c = chunk.clone();
            let accepted = on_store(store, move |s| {
                s.lesson_accept_chunk(&c, &sealed)?;
                s.lesson(&c.lesson)
            })
            .await;
            match accepted {
                Ok(info) => {
                    fetched += 1;
                    bytes += n;
                    events.send(
                        "lesson-progress",
                        json!({
                            "lessonId": info.id, "chunks": info.chunks, "chunksHeld": info.chunks_held,
                            "bytesHeld": info.bytes_held, "size": info.size, "held": info.held,
                        }),
                    );
                }
                // This relay altered a chunk: nothing more from it this time.
                Err(e) if e.kind.starts_with("lesson_") => {
                    left.push(chunk);
                    last = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        left.extend(it);
        missing = left;
    }
    if !missing.is_empty() {
        if let Some(e) = last {
            return Err(e);
        }
    }
    Ok(json!({"chunksFetched": fetched, "bytesFetched": bytes, "complete": missing.is_empty()}))
}

/// Where the volunteer is in a lesson (saved as they watch, so it opens
/// there next time).
#[tauri::command]
pub async fn lesson_progress_set(
    state: State<'_, AppState>,
    id: String,
    position_ms: u64,
) -> ApiResult<()> {
    state.with(|s| s.lesson_set_progress(&id, position_ms))
}

/// One completed viewing (one 人次 in the statistics); answers this device's
/// count.
#[tauri::command]
pub async fn lesson_watched(state: State<'_, AppState>, id: String) -> ApiResult<u32> {
    state.with(|s| s.lesson_watched(&id))
}

/// Lessons watched (人次, every viewing counts) in the period, in total and
/// per lesson, from the facts this device holds: the lead's and the
/// supervisors' devices (`forbidden` for a volunteer, as the statistics).
#[tauri::command]
pub async fn lesson_stats(
    state: State<'_, AppState>,
    from: Option<String>,
    to: Option<String>,
    utc_offset_minutes: Option<i32>,
) -> ApiResult<Value> {
    let q = heartbridge_core::StatsQuery {
        from: from.filter(|s| !s.is_empty()),
        to: to.filter(|s| !s.is_empty()),
        by: Vec::new(),
        utc_offset_minutes: utc_offset_minutes.unwrap_or(0),
    };
    state.with(|s| Ok(to_ui(&s.lesson_stats(&q)?)))
}

/// `ask` (the default: a download over a link that may be metered waits for
/// the volunteer's yes) or `unmetered`.
#[tauri::command]
pub async fn lesson_link_policy(state: State<'_, AppState>) -> ApiResult<String> {
    state.with(|s| Ok(s.lesson_link_policy()?.as_str().into()))
}

#[tauri::command]
pub async fn lesson_link_policy_set(state: State<'_, AppState>, policy: String) -> ApiResult<()> {
    let p = match policy.as_str() {
        "ask" => LinkPolicy::Ask,
        "unmetered" => LinkPolicy::Unmetered,
        _ => {
            return Err(ApiError::new(
                "invalid_input",
                "policy must be ask or unmetered",
            ))
        }
    };
    state.with(|s| s.set_lesson_link_policy(p))
}

/// A `Range: bytes=START-[END]` header's first range (suffix ranges,
/// `bytes=-N`, as `(None, Some(N))`).
pub fn parse_range(h: &str) -> Option<(Option<u64>, Option<u64>)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let first = spec.split(',').next()?.trim();
    let (a, b) = first.split_once('-')?;
    let a = a.trim();
    let b = b.trim();
    let start = if a.is_empty() {
        None
    } else {
        Some(a.parse().ok()?)
    };
    let end = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((start, end))
}

/// What the scheme answers: status, headers and body, from the store.
pub struct Media {
    pub status: StatusCode,
    pub mime: String,
    pub range: Option<(u64, u64, u64)>,
    pub body: Vec<u8>,
}

fn lesson_id_of(path: &str) -> Option<&str> {
    let id = path.trim_start_matches('/');
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Reads what a request for `path` with `range` asks of the lesson.
pub fn media(store: &Store, path: &str, range: Option<&str>) -> Result<Media, StatusCode> {
    let id = lesson_id_of(path).ok_or(StatusCode::NOT_FOUND)?;
    let info = store.lesson(id).map_err(|_| StatusCode::NOT_FOUND)?;
    let total = info.size;
    let read = |start: u64, end: u64| -> Result<Vec<u8>, StatusCode> {
        // At most one read's worth reserved up front: the size is the
        // manifest's word until the bytes are here.
        let mut out =
            Vec::with_capacity(end.saturating_sub(start).saturating_add(1).min(RANGE_MAX) as usize);
        let mut at = start;
        while at <= end {
            let r = store
                .lesson_read_range(id, at, Some(end))
                .map_err(|e| match e.kind() {
                    "lesson_not_held" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                })?;
            if r.bytes.is_empty() {
                break;
            }
            at += r.bytes.len() as u64;
            out.extend_from_slice(&r.bytes);
        }
        Ok(out)
    };
    match range.and_then(parse_range) {
        Some((start, end)) => {
            let (start, end) = match (start, end) {
                (Some(s), e) => (s, e.unwrap_or(u64::MAX)),
                (None, Some(n)) => (total.saturating_sub(n), u64::MAX),
                (None, None) => (0, u64::MAX),
            };
            if total == 0 || start >= total || end < start {
                return Err(StatusCode::RANGE_NOT_SATISFIABLE);
            }
            let end = end.min(total - 1).min(start + RANGE_MAX - 1);
            Ok(Media {
                status: StatusCode::PARTIAL_CONTENT,
                mime: info.mime,
                range: Some((start, end, total)),
                body: read(start, end)?,
            })
        }
        None => Ok(Media {
            status: StatusCode::OK,
            mime: info.mime,
            range: None,
            body: if total == 0 {
                Vec::new()
            } else {
                read(0, total - 1)?
            },
        }),
    }
}

/// The origins of the app's own pages, the only ones that may read a
/// lesson through the scheme: Tauri's on Linux and macOS, on Windows and
/// Android (either scheme), and the development server in debug builds.
const APP_ORIGINS: &[&str] = &[
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
    #[cfg(debug_assertions)]
    "http://localhost:5173",
];

/// Whether a request may be answered: one without an `Origin` (a media
/// element's own load) or from the app's own pages. Another document in
/// the webview (a page at an `hblesson:` origin, say) is refused, where
/// `Access-Control-Allow-Origin: *` let any of them read any lesson
/// (review K8).
fn origin_allowed(origin: Option<&str>) -> bool {
    origin.is_none_or(|o| APP_ORIGINS.contains(&o))
}

fn respond(m: Result<Media, StatusCode>, origin: Option<&str>) -> Response<Vec<u8>> {
    let mut b = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::VARY, "origin");
    if let Some(o) = origin.filter(|o| APP_ORIGINS.contains(o)) {
        b = b
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, o)
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "range")
            .header(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "content-range, content-length, content-type",
            );
    }
    let built = match m {
        Ok(m) => {
            let mut b = b
                .status(m.status)
                .header(header::CONTENT_TYPE, m.mime)
                .header(header::CONTENT_LENGTH, m.body.len());
            if let Some((s, e, t)) = m.range {
                b = b.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{t}"));
            }
            b.body(m.body)
        }
        Err(status) => b.status(status).body(Vec::new()),
    };
    built.unwrap_or_else(|_| {
        let mut r = Response::new(Vec::new());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// The `hblesson:` handler: answered on a blocking thread, never on the
/// event loop.
pub fn protocol<R: Runtime>(
    ctx: UriSchemeContext<'_, R>,
    request: Request<Vec<u8>>,
    responder: UriSchemeResponder,
) {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !origin_allowed(origin.as_deref()) {
        // Nothing read, nothing said about the lesson.
        responder.respond(respond(Err(StatusCode::FORBIDDEN), None));
        return;
    }
    if request.method() == tauri::http::Method::OPTIONS {
        responder.respond(respond(Err(StatusCode::NO_CONTENT), origin.as_deref()));
        return;
    }
    let app = ctx.app_handle().clone();
    let path = request.uri().path().to_owned();
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tauri::async_runtime::spawn_blocking(move || {
        let answer = match app.try_state::<AppState>() {
            Some(state) => match state.store.with(|s| Ok(media(s, &path, range.as_deref()))) {
                Ok(m) => m,
                // Locked or no profile: nothing.
                Err(_) => Err(StatusCode::FORBIDDEN),
            },
            None => Err(StatusCode::SERVICE_UNAVAILABLE),
        };
        responder.respond(respond(answer, origin.as_deref()));
    });
}

#[cfg(test)]
#[path = "lesson_tests.rs"]
mod store_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apps_own_pages_may_read_a_lesson() {
        // The app's page on Linux and macOS, and a media element's own load.
        assert!(origin_allowed(Some("tauri://localhost")));
        assert!(origin_allowed(Some("http://tauri.localhost")));
        assert!(origin_allowed(None));
        // Any other document in the webview, or a look-alike.
        for o in [
            "hblesson://localhost",
            "http://hblesson.localhost",
            "null",
            "https://example.org",
            "tauri://localhost.example.org",
            "tauri://localhost:1",
        ] {
            assert!(!origin_allowed(Some(o)), "{o}");
        }
        let body = || {
            Ok(Media {
                status: StatusCode::OK,
                mime: "audio/wav".into(),
                range: None,
                body: vec![1, 2, 3],
            })
        };
        let app = respond(body(), Some("tauri://localhost"));
        assert_eq!(
            app.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.to_str().unwrap()),
            Some("tauri://localhost")
        );
        assert_eq!(app.body(), &vec![1, 2, 3]);
        // No wildcard, ever: an answer without an app origin names none.
        let bare = respond(body(), None);
        assert!(bare
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        let foreign = respond(Err(StatusCode::FORBIDDEN), None);
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
        assert!(foreign.body().is_empty());
    }

    #[test]
    fn ranges_are_read_as_media_elements_send_them() {
        assert_eq!(parse_range("bytes=0-"), Some((Some(0), None)));
        assert_eq!(parse_range("bytes=100-199"), Some((Some(100), Some(199))));
        assert_eq!(parse_range("bytes=-500"), Some((None, Some(500))));
        assert_eq!(parse_range("bytes=5-9, 20-30"), Some((Some(5), Some(9))));
        assert_eq!(parse_range("bytes=-"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=x-1"), None);
    }

    #[test]
    fn only_a_lesson_id_is_a_path() {
        assert_eq!(
            lesson_id_of("/0123456789abcdef0123456789abcdef"),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(lesson_id_of("/../etc/passwd"), None);
        assert_eq!(lesson_id_of("/0123"), None);
    }
}
