//! The relay's errors: what the database can fail with, why a request is
//! refused, and what `serve` and the operator functions return.
//!
//! Messages name ids and kinds, never a token, a key, a sealed name or a
//! byte of an envelope.

use std::path::PathBuf;

use axum::http::header::{CONNECTION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use heartbridge_proto::ErrorBody;

/// Why the relay could not start, stop or run an operator command.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the group-commit writer thread could not be started: {0}")]
    Writer(#[source] std::io::Error),
    #[error("the group-commit writer thread panicked")]
    WriterPanicked,
    #[error("{0} is not a device id (32 hex digits)")]
    BadDeviceId(String),
    #[error("no device {0} is enrolled at this relay")]
    UnknownDevice(String),
    #[error("{1} is not a {0} id (32 hex digits)")]
    BadId(&'static str, String),
    #[error("venue relay: {0}")]
    Venue(#[source] crate::venue::VenueError),
}

/// A failure of the storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the database {path} has schema version {found}, newer than the {known} this relay knows: upgrade the relay")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("database error while trying to {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the database {path} cannot use write-ahead logging (its journal mode stays {mode})")]
    NoWal { path: PathBuf, mode: String },
    #[error("the database holds a value this relay cannot read in {what}")]
    Corrupt { what: &'static str },
    #[error("the write batch holding this push could not be committed")]
    BatchFailed,
    #[error("the writer has stopped")]
    WriterStopped,
    #[error("a storage call panicked")]
    Panicked,
    #[error("the request was refused: {0}")]
    Refused(Refusal),
    /// A PostgreSQL statement failed (answered 503: devices retry). The
    /// message carries the SQLSTATE and the server's message, never its
    /// DETAIL (which may quote a row's values).
    #[error("PostgreSQL error while trying to {op}: {source}")]
    Postgres {
        op: &'static str,
        #[source]
        source: PgError,
    },
    /// No PostgreSQL connection could be had from the pool (answered 503).
    #[error("no PostgreSQL connection to {op}: {source}")]
    Pool {
        op: &'static str,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// The store cannot do this now, or a setting makes it unsafe
    /// (answered 503).
    #[error("the PostgreSQL store is unavailable: {0}")]
    Unavailable(String),
    /// The PostgreSQL database was migrated by a newer relay.
    #[error("the PostgreSQL database has schema version {found}, newer than the {known} this relay knows: upgrade the relay")]
    PgSchemaTooNew { found: i64, known: i64 },
}

/// A PostgreSQL error as the relay shows it, in `Display` and `Debug`
/// alike: the SQLSTATE and the server's message, never its DETAIL (which
/// can quote values of a row, e.g. a token hash in a unique violation).
pub struct PgError(pub tokio_postgres::Error);

impl PgError {
    /// The SQLSTATE, if the server answered with an error.
    pub fn code(&self) -> Option<&str> {
        self.0.code().map(|c| c.code())
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        match e.as_db_error() {
            Some(db) => write!(f, "{e} ({}): {}", db.code().code(), db.message()),
            None => match std::error::Error::source(e) {
                // An I/O or protocol cause: no row values in it.
                Some(cause) => write!(f, "{e}: {cause}"),
                None => write!(f, "{e}"),
            },
        }
    }
}

impl std::fmt::Debug for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgError({self})")
    }
}

// No `source`: the server's error would show its DETAIL.
impl std::error::Error for PgError {}

impl StoreError {
    /// Wraps a SQLite error with what was being done.
    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { op, source }
    }

    /// Wraps a PostgreSQL error with what was being done.
    pub(crate) fn pg(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        move |source| StoreError::Postgres {
            op,
            source: PgError(source),
        }
    }

    /// Whether the backend is unreachable or failing rather than the
    /// request wrong: answered 503 so devices retry.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Postgres { .. } | StoreError::Pool { .. } | StoreError::Unavailable(_)
        )
    }
}

/// Why the storage refused an enrollment or an administrative change: the
/// caller's fault, not the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no such team")]
    UnknownTeam,
    #[error("unknown token")]
    UnknownToken,
    #[error("the token was already used")]
    Used,
    #[error("the invite has expired")]
    Expired,
    #[error("the invite carries a key older than the team's current one")]
    Outdated,
    #[error("the key check differs from the team's")]
    WrongKey,
    #[error("the device is not in the caller's team")]
    NotInTeam,
    /// A retried enrollment whose device has been revoked since, or a push
    /// of a device revoked while it waited for the writer.
    #[error("the device has been revoked")]
    Revoked,
    /// An uploaded roster whose version is not newer than the stored one
    /// (and which is not the stored one again).
    #[error("the roster is not newer than the stored one")]
    StaleRoster,
}

/// The kind of an error answer, left in its response's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorKind(pub(crate) &'static str);

/// An error answer: a stable kind, a status, and a message safe to show.
#[derive(Debug)]
pub(crate) enum ApiError {
    Malformed(String),
    Version(u8),
    TooLarge(usize),
    UnknownToken,
    /// A signed request (`HB-Sig`, at a venue relay) that does not hold:
    /// 401 `bad_request_signature`, with why (no value from the request).
    BadRequestSignature(&'static str),
    /// A signed request from a device a venue relay's mirror of the team
    /// does not hold (yet): 401 `venue_unknown_device`, saying why (not
    /// `unknown_token`, whose advice is to check the invite code).
    VenueUnknownDevice,
    /// The device was revoked: 403 `device_revoked`, not retryable.
    DeviceRevoked,
    Forbidden(&'static str),
    /// A volunteer's envelope with `covers > 0` (it would make the relay
    /// supersede a document's history): 403 `forbidden`.
    CoversForbidden(String),
    /// A pushed envelope is not authored by the pushing device or its
    /// signature does not verify under the device's registered key.
    BadSignature(String),
    /// An uploaded roster was refused (403 from a device other than the
    /// lead's, 400 unreadable or not signed by the lead, 409 not newer).
    BadRoster(StatusCode, &'static str),
    WrongKey,
    InviteExpired,
    InviteOutdated,
    InviteUsed,
    UnknownTeam,
    /// A push of more envelopes than the relay takes at once.
    TooManyEnvelopes(usize),
    /// A lesson chunk past the team's quota of stored chunk bytes.
    Quota(u64),
    /// The body's content type is not the endpoint's.
    UnsupportedMediaType(&'static str),
    /// The body did not arrive in time; the connection is closed.
    Timeout,
    /// Too many requests from this address or with this token: retry after
    /// this many seconds.
    RateLimited(u64),
    NotFound,
    /// A resource of an existing endpoint that is not there (yet).
    NotFoundWhy(&'static str),
    MethodNotAllowed,
    /// Enrollment or team administration asked of a venue relay (review
    /// F12): 403 `central_relay_only`, saying to use the central relay.
    CentralRelayOnly,
    /// Any other 4xx an extractor or the HTTP stack answered.
    BadRequest(StatusCode),
    Internal(StoreError),
    /// The database is unreachable or failing (PostgreSQL): 503
    /// `unavailable` with `Retry-After`; the server's text stays in the log.
    Unavailable(StoreError),
    /// A failure outside storage (never caused by the caller).
    Fault(&'static str),
}

impl ApiError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed",
            ApiError::Version(_) => "version",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnknownToken => "unknown_token",
            ApiError::BadRequestSignature(_) => "bad_request_signature",
            ApiError::VenueUnknownDevice => "venue_unknown_device",
            ApiError::DeviceRevoked => "device_revoked",
            ApiError::Forbidden(_) | ApiError::CoversForbidden(_) => "forbidden",
            ApiError::CentralRelayOnly => "central_relay_only",
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::BadRoster(..) => "bad_roster",
            ApiError::WrongKey => "wrong_key",
            ApiError::InviteExpired => "invite_expired",
            ApiError::InviteOutdated => "invite_outdated",
            ApiError::InviteUsed => "invite_used",
            ApiError::UnknownTeam => "unknown_team",
            ApiError::TooManyEnvelopes(_) => "too_many_envelopes",
            ApiError::Quota(_) => "quota",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Timeout => "timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::NotFound | ApiError::NotFoundWhy(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(status) => match status.as_u16() {
                413 => "too_large",
                415 => "unsupported_media_type",
                _ => "malformed",
            },
            ApiError::Internal(_) | ApiError::Fault(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) | ApiError::Version(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownToken
            | ApiError::BadRequestSignature(_)
            | ApiError::VenueUnknownDevice => StatusCode::UNAUTHORIZED,
            ApiError::DeviceRevoked
            | ApiError::Forbidden(_)
            | ApiError::CoversForbidden(_)
            | ApiError::BadSignature(_)
            | ApiError::CentralRelayOnly => StatusCode::FORBIDDEN,
            ApiError::BadRoster(status, _) => *status,
            ApiError::WrongKey => StatusCode::CONFLICT,
            ApiError::InviteExpired | ApiError::InviteOutdated | ApiError::InviteUsed => {
                StatusCode::GONE
            }
            ApiError::UnknownTeam | ApiError::NotFound | ApiError::NotFoundWhy(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::TooManyEnvelopes(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(status) => *status,
            ApiError::Internal(_) | ApiError::Fault(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Malformed(why) => why.clone(),
            ApiError::Version(v) => format!("protocol version {v} is not spoken here; this relay speaks version {}: update the app", heartbridge_proto::PROTOCOL_VERSION),
            ApiError::TooLarge(limit) => format!("the request body is larger than this relay accepts ({limit} bytes): push fewer envelopes per sync"),
            ApiError::UnknownToken => "the token is not known to this relay: check the invite code or enroll again".into(),
            ApiError::BadRequestSignature(why) => (*why).into(),
            ApiError::VenueUnknownDevice => "this venue relay does not know this device yet: it learns the team's members from the central relay, and this device joined after the venue relay last reached it. Sync with the central relay meanwhile; the venue relay knows the device once its uplink is up".into(),
            ApiError::DeviceRevoked => "this device has been revoked by the team lead: it can no longer sync, invite or list members (do not retry); GET /v1/roster still answers".into(),
            ApiError::Forbidden(why) => (*why).into(),
            ApiError::CoversForbidden(id) => format!("envelope {id} carries covers > 0, which makes the relay supersede its document's earlier envelopes: only a lead or supervisor may compact a document (push it with covers 0); nothing of this push was stored"),
            ApiError::BadSignature(why) => format!("{why}; nothing of this push was stored"),
            ApiError::BadRoster(_, why) => format!("{why}; nothing of this sync was applied"),
            ApiError::WrongKey => "the team key does not match the team's key check: the invite code was mistyped or is for another team; the invite was not used, try again".into(),
            ApiError::InviteExpired => "the invite has expired: ask for a new one".into(),
            ApiError::InviteOutdated => "this invite code was made before the team's key changed (a member was removed): ask for a new one".into(),
            ApiError::InviteUsed => "the invite was already used: ask for a new one".into(),
            ApiError::UnknownTeam => "no such team at this relay".into(),
            ApiError::TooManyEnvelopes(cap) => format!("the push holds more envelopes than this relay takes in one sync ({cap}): push fewer envelopes per sync; nothing was stored"),
            ApiError::Quota(cap) => format!("the team's lessons at this relay would pass its quota ({cap} bytes of lesson chunks); nothing was stored: ask the relay's operator to raise it (--blob-quota-bytes)"),
            ApiError::UnsupportedMediaType(expected) => format!("the request body must be sent with content type {expected}"),
            ApiError::Timeout => "the request body did not arrive in time; the connection is closed: try again".into(),
            ApiError::RateLimited(secs) => format!("too many requests: try again in {secs} seconds"),
            ApiError::NotFound => "no such endpoint at this relay".into(),
            ApiError::NotFoundWhy(why) => (*why).into(),
            ApiError::MethodNotAllowed => "this endpoint does not take that HTTP method".into(),
            ApiError::CentralRelayOnly => "this is a venue relay: claiming a team, joining, invites and revoking a device happen at the team's central relay (use its address; nothing was done here). The venue relay mirrors the result once its uplink to the central relay is up".into(),
            ApiError::BadRequest(status) => format!("the request was refused (HTTP {})", status.as_u16()),
            ApiError::Internal(_) | ApiError::Fault(_) => "the relay failed to handle the request; try again later".into(),
            ApiError::Unavailable(_) => "the relay's database is unavailable for the moment; nothing of this request was stored: try again shortly".into(),
        }
    }

    /// The answer body.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.kind().into(),
            message: self.message(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => match r {
                Refusal::UnknownTeam => ApiError::UnknownTeam,
                Refusal::UnknownToken => ApiError::UnknownToken,
                Refusal::Used => ApiError::InviteUsed,
                Refusal::Expired => ApiError::InviteExpired,
                Refusal::Outdated => ApiError::InviteOutdated,
                Refusal::WrongKey => ApiError::WrongKey,
                Refusal::NotInTeam => ApiError::Forbidden("that device is not in your team"),
                Refusal::Revoked => ApiError::DeviceRevoked,
                Refusal::StaleRoster => ApiError::BadRoster(
                    StatusCode::CONFLICT,
                    "the roster's version is not newer than the relay's",
                ),
            },
            other if other.is_unavailable() => ApiError::Unavailable(other),
            other => ApiError::Internal(other),
        }
    }
}

impl ApiError {
    /// The JSON answer for an error status nothing more is known of (the
    /// HTTP stack's or an extractor's own answers).
    pub(crate) fn from_status(status: StatusCode) -> ApiError {
        match status.as_u16() {
            401 => ApiError::UnknownToken,
            404 => ApiError::NotFound,
            405 => ApiError::MethodNotAllowed,
            408 => ApiError::Timeout,
            429 => ApiError::RateLimited(1),
            400..=499 => ApiError::BadRequest(status),
            _ => ApiError::Fault("an error answer without a body"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // Store errors carry SQL error text and ids, never bound values.
            ApiError::Internal(e) | ApiError::Unavailable(e) => {
                tracing::error!(error = %e, "request failed")
            }
            ApiError::Fault(what) => tracing::error!(error = %what, "request failed"),
            _ => {}
        }
        let mut resp = (self.status(), Json(self.body())).into_response();
        // For the per-kind refusal counter and the request's log line.
        resp.extensions_mut().insert(ErrorKind(self.kind()));
        match self {
            ApiError::RateLimited(secs) => {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::Unavailable(_) => {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // The rest of the body is not read: the connection cannot carry
            // another request.
            ApiError::Timeout | ApiError::TooLarge(_) => {
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_say_nothing_of_the_cause() {
        let e = ApiError::Internal(StoreError::Corrupt {
            what: "envelopes.kind",
        });
        let body = e.body();
        assert_eq!(body.error, "internal");
        assert!(!body.message.contains("envelopes"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn refusals_map_to_their_kinds() {
        let kind = |r| ApiError::from(StoreError::Refused(r)).kind();
        assert_eq!(kind(Refusal::UnknownTeam), "unknown_team");
        assert_eq!(kind(Refusal::UnknownToken), "unknown_token");
        assert_eq!(kind(Refusal::Used), "invite_used");
        assert_eq!(kind(Refusal::Expired), "invite_expired");
        assert_eq!(kind(Refusal::WrongKey), "wrong_key");
        assert_eq!(kind(Refusal::NotInTeam), "forbidden");
        assert_eq!(kind(Refusal::Revoked), "device_revoked");
        assert_eq!(kind(Refusal::StaleRoster), "bad_roster");
        let revoked = ApiError::from(StoreError::Refused(Refusal::Revoked));
        assert_eq!(revoked.status(), StatusCode::FORBIDDEN);
        assert!(revoked.body().message.contains("do not retry"));
    }

    #[test]
    fn an_unavailable_database_is_a_503_to_retry_that_says_nothing_of_the_cause() {
        for e in [
            StoreError::Unavailable("the pool is closed at db.internal".into()),
            StoreError::Pool {
                op: "pull",
                source: deadpool_postgres::PoolError::Closed,
            },
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body = api.body();
            assert_eq!(body.error, "unavailable");
            assert!(!body.message.contains("db.internal"), "{}", body.message);
            assert!(!body.message.contains("pool"), "{}", body.message);
            let resp = api.into_response();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(resp.headers().contains_key(RETRY_AFTER));
        }
        // SQLite failures stay internal errors (500), as before.
        assert_eq!(
            ApiError::from(StoreError::BatchFailed).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
