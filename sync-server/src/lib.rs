//! # heartbridge-relay
//!
//! The zero-knowledge sync relay: it stores and forwards sealed envelopes
//! for teams of devices and never holds a team key, a token or a byte of
//! plaintext — only ids, sizes, times, hashes of tokens, and ciphertext.
//!
//! The relay is a library: [`serve`] takes a bound listener and a shutdown
//! future, so tests run it on port 0 and stop it when they like; the
//! `heartbridge-relay` binary is a thin command line over it.
//!
//! ```
//! use heartbridge_relay::{create_team, serve, Config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("relay.db");
//! // An operator creates a team; its lead token goes to the team lead.
//! let team = create_team(&db, "Hotline volunteers")?;
//! assert_eq!(team.team_id.len(), 32);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let relay = tokio::spawn(serve(listener, Config::new(&db), async {
//!     let _ = stopped.await;
//! }));
//! // ... devices claim, join and sync over HTTP ...
//! let _ = stop.send(());
//! relay.await??; // in-flight requests finish and their writes commit first
//! # Ok(())
//! # }
//! ```
//!
//! ## Sync, in short
//!
//! `POST /v1/sync` pushes envelopes and pulls a page. A push is stored with
//! `INSERT … ON CONFLICT DO NOTHING` on (team, content id), so a retry is
//! harmless, and is acknowledged only after its transaction is durably
//! committed. One writer thread commits the pushes of many concurrent
//! requests in one transaction (group commit, see `writer.rs`). A pull
//! returns, in sequence order, the envelopes other devices wrote past the
//! device's cursor, bounded in bytes, after the lead-signed roster (when
//! newer than the device's) and the member entries changed since the
//! device's member seq.
//!
//! The relay reads no envelope, but every pushed one must be authored and
//! signed by the pushing device's registered Ed25519 key, only a lead or a
//! supervisor may compact (`covers > 0`), and what a snapshot supersedes is
//! kept for a grace period ([`Config::compaction_grace`]) so that a
//! compaction can be undone ([`undo_compaction`]).

pub mod advertise;
pub mod backup;
pub mod config;
mod error;
mod http;
mod metrics;
mod server;
mod storage;
pub mod tls;
pub mod venue;
mod writer;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use heartbridge_proto::{Secret, TeamCreated, TeamId, DEFAULT_PAGE_BYTES};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use config::{Database, PgTarget};
pub use error::{Refusal, RelayError, StoreError};
pub use storage::{
    delta_wire_len, pulled_wire_len, Compaction, Device, DeviceId, DeviceKeys, Enrollment, Gauges,
    JobResult, NewInvite, Page, PullQuery, PushJob, RosterUpload, SqliteStorage, Storage,
    TeamState, TeamSummary, TeamUsage, Undone,
};

/// The default bytes of pushes admitted at once.
pub const DEFAULT_PUSH_BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// The default cap on a request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Storage calls running at once on blocking threads (and read connections).
pub const DEFAULT_STORAGE_THREADS: usize = 4;
/// The default time a client has to send a request's headers (and that an
/// idle keep-alive connection stays open).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time a client has to send a request's body, once the relay
/// starts reading it.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The default time without a byte after which a push's body gives its
/// admission budget back.
pub const DEFAULT_PUSH_STALL: Duration = Duration::from_secs(2);
/// The default cap on the envelopes of one push.
pub const DEFAULT_MAX_PUSH_ENVELOPES: usize = 1000;
/// Default bytes of lesson chunks one team may store: 8 GiB.
pub const DEFAULT_BLOB_QUOTA_BYTES: u64 = 8 << 30;
/// How long envelopes a snapshot superseded are kept (and the compaction
/// can be undone) before they are deleted: 7 days.
pub const DEFAULT_COMPACTION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the relay deletes superseded envelopes past the grace (also
/// once at startup).
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Superseded envelopes deleted per purge transaction, so a large purge
/// never holds the write connection for long.
const PURGE_CHUNK: u64 = 5000;

/// Rate limits, each in requests per minute, bursting to that many at once
/// (governor's GCRA: one more every `60 s / n`); 0 turns one off. Over a
/// limit the relay answers 429 `rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Enrollments (`/v1/claim`, `/v1/join`) from one client address.
    pub enroll_per_ip: u32,
    /// Enrollments presenting one lead or invite token.
    pub enroll_per_token: u32,
    /// Failed authentications (a missing or unknown bearer token) from one
    /// client address. Only failures count: a valid token is never slowed
    /// by another device's failures behind the same address.
    pub auth_fail_per_ip: u32,
    /// Failed authentications presenting one token.
    pub auth_fail_per_token: u32,
}

impl RateLimits {
    /// The defaults: 30 enrollments a minute from an address (a venue's
    /// volunteers behind one NAT enroll at a training), 10 a minute with one
    /// token (a few retries), 30 failed authentications a minute from an
    /// address and 10 with one token.
    pub const DEFAULT: RateLimits = RateLimits {
        enroll_per_ip: 30,
        enroll_per_token: 10,
        auth_fail_per_ip: 30,
        auth_fail_per_token: 10,
    };
    /// No limits (benchmarks that enroll thousands of devices from one
    /// address).
    pub const OFF: RateLimits = RateLimits {
        enroll_per_ip: 0,
        enroll_per_token: 0,
        auth_fail_per_ip: 0,
        auth_fail_per_token: 0,
    };
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::DEFAULT
    }
}

/// The relay's source of time (unix seconds). Tests set it to make invites
/// expire without waiting.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(now_unix))
    }
    /// Any function of no arguments.
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How to run the relay. Holds no secret.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite database (created if missing). With PostgreSQL
    /// ([`Config::database`]) it is not opened.
    pub db_path: PathBuf,
    /// Where the log lives: [`Config::new`] makes it `Sqlite(db_path)`;
    /// `Postgres` lets several relays share one database.
    pub database: Database,
    /// Largest request body accepted; larger ones get 413 `too_large`.
    pub max_body_bytes: usize,
    /// Cap on the bytes of one pull page as encoded in the sync response
    /// (each envelope's ids, seq, nonce and framing included, not only its
    /// ciphertext). A page carries at least one envelope.
    pub page_bytes: u32,
    /// Most envelopes in one push; more are refused whole with 413
    /// `too_many_envelopes`.
    pub max_push_envelopes: usize,
    /// Most bytes of lesson chunks one team may store (`/v1/blobs`); a put
    /// past it is refused with 507 `quota`. 0: no limit.
    pub blob_quota_bytes: u64,
    /// Time to send a request's headers; past it the connection is closed.
    /// Also how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// Time to send a request's body once the relay reads it; past it the
    /// relay answers 408 `timeout` and closes the connection.
    pub body_timeout: Duration,
    /// A push whose body sends nothing for this long gives its admission
    /// budget back and takes it again once its body is complete, so a
    /// stalled client cannot keep other devices' pushes waiting.
    pub push_stall: Duration,
    pub rate_limits: RateLimits,
    /// `sha256` ([`Secret::hash`]) of the bearer token `/metrics` asks for.
    /// With it, `/metrics` is served on the public listener too; without
    /// it, only on the metrics listener of [`serve_with_metrics_listener`]
    /// (and open there).
    pub metrics_token_hash: Option<String>,
    /// Storage calls (auth, pull, admin) running at once.
    pub storage_threads: usize,
    /// Push bytes admitted at once (read, decoded, waiting for the writer).
    /// Further pushes wait before their bodies are read, so a shift-end
    /// storm's memory stays bounded; the single writer sets the pace anyway.
    pub push_budget_bytes: usize,
    /// How long envelopes a snapshot superseded stay (no longer pulled)
    /// before they are deleted; within it `heartbridge-relay compaction
    /// undo` brings them back.
    pub compaction_grace: Duration,
    /// How often superseded envelopes past the grace are deleted (also once
    /// at startup).
    pub purge_interval: Duration,
    pub clock: Clock,
    /// Serve HTTPS with this certificate (see [`tls`]); `None`: plain HTTP
    /// (behind a TLS-terminating proxy, or on loopback in tests). The
    /// metrics listener stays plain.
    pub tls: Option<tls::Tls>,
    /// Run as a venue relay: forward to the upstream relay this database
    /// was enrolled at (`heartbridge-relay venue join`), mirror the team
    /// from it, and take devices' signed requests (see [`venue`]).
    pub venue: Option<venue::VenueConfig>,
}

impl Config {
    /// Defaults for a database at `db_path`.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        let db_path = db_path.into();
        Config {
            database: Database::Sqlite(db_path.clone()),
            db_path,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            page_bytes: DEFAULT_PAGE_BYTES,
            max_push_envelopes: DEFAULT_MAX_PUSH_ENVELOPES,
            blob_quota_bytes: DEFAULT_BLOB_QUOTA_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            push_stall: DEFAULT_PUSH_STALL,
            rate_limits: RateLimits::DEFAULT,
            metrics_token_hash: None,
            storage_threads: DEFAULT_STORAGE_THREADS,
            push_budget_bytes: DEFAULT_PUSH_BUDGET_BYTES,
            compaction_grace: DEFAULT_COMPACTION_GRACE,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            tls: None,
            venue: None,
            clock: Clock::system(),
        }
    }
}

/// Serves the relay on `listener` with the SQLite database of `config`
/// until `shutdown` completes; then stops accepting, lets in-flight
/// requests finish, commits every queued write and returns.
///
/// For production, bind the listener with a large backlog (the binary asks
/// for 4,096): at shift end a thousand devices connect at the same moment.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let storage = open_storage(&config).await?;
    run(listener, None, storage, config, shutdown).await
}

/// [`serve`], with `/metrics` (and `/healthz`) also served on
/// `metrics_listener`, meant for an address only the operator's monitoring
/// reaches. It asks for the bearer token too if
/// [`Config::metrics_token_hash`] is set.
pub async fn serve_with_metrics_listener(
    listener: TcpListener,
    metrics_listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let storage = open_storage(&config).await?;
    run(listener, Some(metrics_listener), storage, config, shutdown).await
}

/// [`serve`] over any [`Storage`] (`config.db_path` is not used).
pub async fn serve_with_storage(
    listener: TcpListener,
    storage: Arc<dyn Storage>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    run(listener, None, storage, config, shutdown).await
}

async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, RelayError> {
    let db = match &config.database {
        // The file is `db_path` (what every SQLite caller sets).
        Database::Sqlite(_) => Database::Sqlite(config.db_path.clone()),
        Database::Postgres(target) => Database::Postgres(target.clone()),
    };
    // Every storage thread, the writer, and one for the purge.
    let pool = config.storage_threads.max(1) + 2;
    tokio::task::spawn_blocking(move || open_database(&db, pool))
        .await
        .map_err(|_| StoreError::Panicked)?
}

/// How often the rate limiters forget clients that are back to a full
/// quota, so their memory follows the recent clients only.
const LIMITER_SWEEP: Duration = Duration::from_secs(60);

async fn run(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    storage: Arc<dyn Storage>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let metrics = Arc::new(metrics::Metrics::default());
    // A venue relay: its enrollment upstream must be there before it serves.
    let forwarder = match &config.venue {
        Some(v) => {
            let (path, v) = (config.db_path.clone(), v.clone());
            let f = tokio::task::spawn_blocking(move || venue::Forwarder::open(&path, v))
                .await
                .map_err(|_| StoreError::Panicked)?
                .map_err(RelayError::Venue)?;
            let team = f.team().await.map_err(RelayError::Venue)?;
            Some((Arc::new(f), team))
        }
        None => None,
    };
    // Read once: it changes only with the database put back to an earlier
    // point, which the operator does with every relay stopped.
    let log_id = {
        let storage = Arc::clone(&storage);
        tokio::task::spawn_blocking(move || storage.log_id())
            .await
            .map_err(|_| StoreError::Panicked)??
    };
    tracing::info!(log_id = %log_id.to_hex(), "the relay's log id");
    let (writer, writer_thread) =
        writer::start(Arc::clone(&storage), Arc::clone(&metrics)).map_err(RelayError::Writer)?;
    let relay = Arc::new(http::Relay {
        storage,
        log_id,
        gate: Semaphore::new(config.storage_threads.max(1)),
        push_budget: Semaphore::new(http::budget_permits(
            config.push_budget_bytes.max(config.max_body_bytes),
        )),
        writer,
        metrics,
        max_body: config.max_body_bytes,
        page_bytes: u64::from(config.page_bytes.max(1)),
        max_push_envelopes: config.max_push_envelopes.max(1),
        blob_quota: config.blob_quota_bytes,
        body_timeout: config.body_timeout,
        push_stall: config.push_stall,
        limits: http::Limits::new(config.rate_limits),
        metrics_token_hash: config.metrics_token_hash,
        clock: config.clock.clone(),
        signed: forwarder.as_ref().map(|(f, team)| http::SignedAuth {
            team: *team,
            relay_ids: std::iter::once(f.config().relay_id.clone())
                .chain(
                    f.config()
                        .public_urls
                        .iter()
                        .map(|u| u.trim().trim_end_matches('/').to_owned()),
                )
                .collect(),
        }),
        venue: forwarder.as_ref().map(|(f, _)| Arc::clone(f)),
    });
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let sweeper = {
        let relay = Arc::clone(&relay);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LIMITER_SWEEP);
            loop {
                tokio::select! {
                    _ = every.tick() => relay.limits.sweep(),
                    _ = server::stopped(&mut stopping) => break,
                }
            }
        })
    };
    // Superseded envelopes past the grace go before the first request is
    // served; then every `purge_interval`.
    purge(&relay, config.compaction_grace, &config.clock).await;
    let purger = {
        let relay = Arc::clone(&relay);
        let mut stopping = stopping.clone();
        let (grace, clock) = (config.compaction_grace, config.clock.clone());
        let period = config.purge_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = every.tick() => purge(&relay, grace, &clock).await,
                    _ = server::stopped(&mut stopping) => break,
                }
            }
        })
    };
    let forwarding = forwarder.map(|(f, _)| tokio::spawn(f.run(stopping.clone())));
    let api = server::run(
        listener,
        http::router(Arc::clone(&relay)),
        config.header_timeout,
        config.tls.as_ref().map(tls::Tls::acceptor),
        stopping.clone(),
    );
    match metrics_listener {
        Some(m) => {
            let monitoring = server::run(
                m,
                http::metrics_router(Arc::clone(&relay)),
                config.header_timeout,
                None,
                stopping,
            );
            tokio::join!(api, monitoring);
        }
        None => api.await,
    }
    sweeper.abort();
    purger.abort();
    if let Some(f) = forwarding {
        // A round stopped at an await: its answer is taken in one
        // transaction or not at all, and sent again after a restart.
        f.abort();
        let _ = f.await;
    }
    // An aborted purge ends at its next await; its transaction either
    // committed or rolled back.
    let _ = purger.await;
    drop(relay);
    // Every connection has closed: no handler can queue a write any more.
    let stopped = tokio::task::spawn_blocking(move || writer_thread.stop()).await;
    match stopped {
        Ok(Ok(())) => Ok(()),
        _ => Err(RelayError::WriterPanicked),
    }
}

/// Deletes superseded envelopes older than the grace, a chunk per
/// transaction, until none is left.
async fn purge(relay: &http::Relay, grace: Duration, clock: &Clock) {
    let before = clock
        .now()
        .saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    let mut total = 0u64;
    loop {
        match relay
            .run(move |s| s.purge_superseded(before, PURGE_CHUNK))
            .await
        {
            Ok(n) => {
                total += n;
                if n < PURGE_CHUNK {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "purging superseded envelopes failed");
                break;
            }
        }
    }
    relay.metrics.purged(total);
    if total > 0 {
        tracing::info!(
            envelopes = total,
            "superseded envelopes past the compaction grace deleted"
        );
    }
}

/// Creates a team in the database `db`; returns its id and the
/// one-time lead token (only its hash is stored).
pub fn create_team_in(db: &Database, name: &str) -> Result<TeamCreated, RelayError> {
    let storage = open_database(db, OPERATOR_POOL)?;
    let team = TeamId::random();
    let lead_token = Secret::generate();
    storage.create_team(team, name, &lead_token.hash(), now_unix())?;
    // Printed as `TEAMID.SECRET`, so that `heartbridge team claim --token`
    // needs nothing else.
    Ok(TeamCreated {
        team_id: team.to_hex(),
        lead_token: Secret::from_string(format!("{}.{}", team.to_hex(), lead_token.expose())),
    })
}

/// The teams in the database `db`.
pub fn list_teams_in(db: &Database) -> Result<Vec<TeamSummary>, RelayError> {
    Ok(open_database(db, OPERATOR_POOL)?.teams()?)
}

/// Revokes a device (any team) in the database `db`, as `POST
/// /v1/devices/{id}/revoke` does: a running relay refuses its token from
/// the next request on (`device_revoked`, except on `GET /v1/roster`), the
/// unused invites it made stop working, and its member entry changes.
/// Returns the cut-off: the team's last envelope seq.
pub fn revoke_device_in(db: &Database, device_id: &str) -> Result<u64, RelayError> {
    let device = DeviceId::from_hex(device_id)
        .ok_or_else(|| RelayError::BadDeviceId(device_id.to_owned()))?;
    match open_database(db, OPERATOR_POOL)?.revoke(None, device, now_unix()) {
        Err(StoreError::Refused(Refusal::NotInTeam)) => {
            Err(RelayError::UnknownDevice(device.to_hex()))
        }
        other => Ok(other?),
    }
}

/// Gives the log of the database `db` a new id and returns it: run after the
/// database was put back to an earlier point (a `pg_restore` of a dump, a
/// point-in-time recovery), with every relay on it stopped. Seqs after that
/// point are handed out again, and a device that sees the new id in its
/// next sync answer pulls the whole log again and pushes what it holds,
/// so nothing it holds is missing from the relay and nothing stored at a
/// reused seq is skipped. (A SQLite `restore` does this itself.)
pub fn new_log_id_in(db: &Database) -> Result<storage::LogId, RelayError> {
    Ok(open_database(db, OPERATOR_POOL)?.new_log_id(now_unix())?)
}

/// The log id of the database `db` (what its relays send devices).
pub fn log_id_in(db: &Database) -> Result<storage::LogId, RelayError> {
    Ok(open_database(db, OPERATOR_POOL)?.log_id()?)
}

/// Undoes the last compaction of document `doc_id` (32 hex digits) of team
/// `team_id` in the database `db`, if the envelopes it superseded
/// were superseded less than `grace` before `now` (unix seconds) and so are
/// still kept: pulls serve them again from the next request on. Devices
/// that pull them (a new device, or one pulling from cursor 0) merge them
/// with the snapshot as usual; merging what a document already holds
/// changes nothing. `None` if there is no such compaction.
pub fn undo_compaction_in(
    db: &Database,
    team_id: &str,
    doc_id: &str,
    grace: Duration,
    now: i64,
) -> Result<Option<Undone>, RelayError> {
    let team =
        TeamId::from_hex(team_id).ok_or_else(|| RelayError::BadId("team", team_id.to_owned()))?;
    let doc: [u8; 16] = hex::decode(doc_id.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| RelayError::BadId("document", doc_id.to_owned()))?;
    let after = now.saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    Ok(open_database(db, OPERATOR_POOL)?.undo_compaction(team, doc, after)?)
}

/// The compactions of team `team_id` in the database `db` that
/// `compaction undo` can still undo (superseded less than `grace` before
/// `now`), oldest first.
pub fn list_compactions_in(
    db: &Database,
    team_id: &str,
    grace: Duration,
    now: i64,
) -> Result<Vec<Compaction>, RelayError> {
    let team =
        TeamId::from_hex(team_id).ok_or_else(|| RelayError::BadId("team", team_id.to_owned()))?;
    let after = now.saturating_sub(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX));
    Ok(open_database(db, OPERATOR_POOL)?.compactions(team, after)?)
}

/// [`create_team_in`] on the SQLite database at `db_path`.
pub fn create_team(db_path: &Path, name: &str) -> Result<TeamCreated, RelayError> {
    create_team_in(&sqlite(db_path), name)
}

/// [`list_teams_in`] on the SQLite database at `db_path`.
pub fn list_teams(db_path: &Path) -> Result<Vec<TeamSummary>, RelayError> {
    list_teams_in(&sqlite(db_path))
}

/// [`revoke_device_in`] on the SQLite database at `db_path`.
pub fn revoke_device(db_path: &Path, device_id: &str) -> Result<u64, RelayError> {
    revoke_device_in(&sqlite(db_path), device_id)
}

/// [`undo_compaction_in`] on the SQLite database at `db_path`.
pub fn undo_compaction(
    db_path: &Path,
    team_id: &str,
    doc_id: &str,
    grace: Duration,
    now: i64,
) -> Result<Option<Undone>, RelayError> {
    undo_compaction_in(&sqlite(db_path), team_id, doc_id, grace, now)
}

/// [`list_compactions_in`] on the SQLite database at `db_path`.
pub fn list_compactions(
    db_path: &Path,
    team_id: &str,
    grace: Duration,
    now: i64,
) -> Result<Vec<Compaction>, RelayError> {
    list_compactions_in(&sqlite(db_path), team_id, grace, now)
}

fn sqlite(db_path: &Path) -> Database {
    Database::Sqlite(db_path.to_path_buf())
}

/// Connections an operator command opens to PostgreSQL.
const OPERATOR_POOL: usize = 2;

/// Opens the storage of `db` (blocking: call it outside async code). SQLite
/// is created and migrated if needed; PostgreSQL is migrated under an
/// advisory lock, so relays starting at once migrate it once. `pool` is the
/// most PostgreSQL connections it keeps (ignored for SQLite).
pub fn open_database(db: &Database, pool: usize) -> Result<Arc<dyn Storage>, RelayError> {
    Ok(match db {
        Database::Sqlite(path) => Arc::new(SqliteStorage::open(path)?),
        Database::Postgres(target) => Arc::new(storage::PgStorage::open(
            target.config().clone(),
            pool.max(1),
        )?),
    })
}

/// The current time in unix seconds, as the operator commands read it.
pub fn unix_now() -> i64 {
    now_unix()
}
