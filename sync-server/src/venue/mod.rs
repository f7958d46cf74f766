//! The venue relay: a relay on a lead's laptop inside a closed-loop venue.
//!
//! Devices at the venue sync with it exactly as with the central relay
//! (same `/v1/sync`, same checks, same log), authenticating with their own
//! device signature (`HB-Sig`, [`heartbridge_proto::reqsig`]) since a
//! bearer token shown to it could be replayed upstream. It is enrolled at
//! the upstream (central) relay as a member of role `relay` by a relay-role
//! invite, which carries no team key: it never holds one.
//!
//! The forwarder ([`forward`]) runs beside the server whenever the relay
//! was started with an upstream: each round pushes the next batch of the
//! local log upstream as carried envelopes, in log order — the order
//! devices pushed them, so a device's high-risk-first order survives the
//! hop —, and in the same request pulls the team's envelopes since its
//! upstream cursor. The answer is taken in one transaction
//! ([`store::VenueDb::apply`]): the lead-signed roster and the member
//! entries mirrored (under the upstream relay's member seqs, so a device's
//! member cursor means the same at both relays), the forwarded envelopes
//! marked with their upstream seq, the pulled ones stored once each (dedup
//! by content id), the cursors moved. A restart resumes from those rows; a
//! forward whose answer was lost is sent again and deduplicated upstream.
//! While the uplink is down the forwarder backs off exponentially with
//! jitter.

mod blobs;
mod pin;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use heartbridge_proto::venue_wire::{decode_response, ResponseExt};
use heartbridge_proto::{
    encode, EnrollRequest, EnrollResponse, ErrorBody, Invite, InviteError, Role, Secret,
    SyncRequest, SyncResponse, PROTOCOL_VERSION, SYNC_CONTENT_TYPE,
};
use tokio::sync::watch;

use crate::error::StoreError;
use store::{VenueDb, VenueState};

/// Envelopes forwarded in one request.
pub const FORWARD_ENVELOPES: usize = 256;
/// Ciphertext bytes forwarded in one request (at least one envelope).
pub const FORWARD_BYTES: usize = 512 * 1024;

/// How a venue relay reaches its upstream relay. Holds the upstream token
/// only if one was given in a file (else it is read from the database).
#[derive(Clone)]
pub struct VenueConfig {
    /// The upstream relay's URL; `None`: the one the invite named.
    pub upstream: Option<String>,
    /// The upstream device token from `--upstream-token FILE`; `None`: the
    /// one `venue join` stored.
    pub token: Option<Secret>,
    /// The id devices sign their requests for: the relay's certificate
    /// fingerprint when it serves TLS, else its URL as devices know it.
    pub relay_id: String,
    /// Other ids devices may sign for: the addresses they know this relay
    /// by (`--public-url`), beside its fingerprint when it serves TLS (an
    /// entry without a pin signs for its URL; review L1).
    pub public_urls: Vec<String>,
    /// How often an idle forwarder looks for work (new device pushes, news
    /// upstream).
    pub poll: Duration,
    /// Backoff after a failed round: doubles from `backoff_min` to
    /// `backoff_max`, each wait ±25 % at random.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Total deadline of one upstream request.
    pub request_timeout: Duration,
    /// The upstream relay's certificate fingerprint (`sha256:…`); `None`:
    /// the one the invite code carried, if any, else the web's roots.
    pub upstream_pin: Option<String>,
    /// Forward to a plain `http://` upstream off this machine anyway
    /// (`--upstream-insecure-http`): the relay's upstream token then crosses
    /// the network in clear (review F11). Off by default.
    pub upstream_insecure_http: bool,
}

impl std::fmt::Debug for VenueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueConfig")
            .field("upstream", &self.upstream)
            .field("token_file", &self.token.is_some())
            .field("relay_id", &self.relay_id)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl VenueConfig {
    pub fn new(relay_id: impl Into<String>) -> VenueConfig {
        VenueConfig {
            upstream: None,
            token: None,
            relay_id: relay_id.into(),
            public_urls: Vec::new(),
            poll: Duration::from_secs(2),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            upstream_pin: None,
            upstream_insecure_http: false,
        }
    }
}

/// Whether `upstream` is plain `http://` to a host other than this machine
/// (`localhost`, 127.0.0.0/8, `::1`): the relay's bearer token would cross
/// the network in clear. An address that does not parse counts as insecure
/// (it is refused as such rather than tried).
pub fn is_insecure_http(upstream: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(upstream.trim()) else {
        return true;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return true;
    };
    // An IPv6 host comes bracketed; the URL parser has already normalised
    // IPv4 forms (`127.1`, hex) to dotted quads.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

/// Refuses a plain-http upstream off this machine unless told otherwise.
fn check_upstream(upstream: &str, insecure_http: bool) -> Result<(), VenueError> {
    if !insecure_http && is_insecure_http(upstream) {
        return Err(VenueError::InsecureUpstream(upstream.to_owned()));
    }
    Ok(())
}

/// Why a venue join or a forward failed. No token, key or body in it.
#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error(transparent)]
    Invite(#[from] InviteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the upstream relay could not be reached ({0})")]
    Network(String),
    #[error("the upstream relay refused ({kind}, HTTP {status}): {message}")]
    Upstream {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("the upstream relay's answer is not valid: {0}")]
    Protocol(String),
    #[error("this relay is not enrolled at an upstream relay: run `heartbridge-relay venue join --db PATH` with a relay invite code first")]
    NotJoined,
    #[error("the invite code has expired: ask the lead for a new relay code")]
    Expired,
    #[error("the upstream certificate fingerprint is not sha256: followed by 43 characters, as `heartbridge-relay fingerprint` prints it")]
    BadPin,
    /// A plain `http://` upstream off this machine (review F11); the URL
    /// names a relay, never a token.
    #[error("the upstream relay {0} is plain http:// on another machine: this relay's upstream token would cross the network in clear. Use the central relay's https:// address (with --upstream-pin FP if its certificate is self-signed), or, only on a link you trust, pass --upstream-insecure-http")]
    InsecureUpstream(String),
}

/// The HTTP client for the upstream relay: rustls (ring) with the Mozilla
/// roots, or exactly the pinned certificate; HTTP/1.1, no redirects.
pub(crate) fn client(timeout: Duration, pin: Option<&str>) -> Result<reqwest::Client, VenueError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|_| VenueError::Network("TLS set-up".into()))?;
    let mut tls = match pin {
        None => builder
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
        Some(p) => {
            let pin = heartbridge_proto::CertPin::parse(p).ok_or(VenueError::BadPin)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pin::Pinned::new(pin, provider)))
                .with_no_client_auth()
        }
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| VenueError::Network("the HTTP client could not be set up".into()))
}

fn net(e: &reqwest::Error) -> VenueError {
    // A pin mismatch is a failed handshake: said as such. (The rustls
    // error sits deep in reqwest's chain; its Debug names our type.)
    if format!("{e:?}").contains("UpstreamPinMismatch") {
        return VenueError::Network(
            "the upstream relay's certificate is not the pinned one: check the fingerprint with the lead (heartbridge-relay fingerprint); nothing was sent".into(),
        );
    }
    VenueError::Network(
        if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "connection lost"
        }
        .into(),
    )
}

async fn answer(resp: reqwest::Response) -> Result<Vec<u8>, VenueError> {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| net(&e))?.to_vec();
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let e: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    Err(VenueError::Upstream {
        status,
        kind: e
            .as_ref()
            .map_or_else(|| "unknown".into(), |e| e.error.clone()),
        message: e.map_or_else(String::new, |e| e.message),
    })
}

fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// What `venue join` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub team_id: String,
    pub device_id: String,
    pub upstream: String,
    /// The database already held this enrollment.
    pub already: bool,
}

/// Enrolls the relay whose database is `db` at the upstream relay with a
/// relay-role invite `code` (its own device keys, made here and kept in
/// the database; no team key exists in the code or here). Retryable: a
/// lost answer is asked again with the same enrollment id and keys.
pub async fn join(db: &Path, code: &str, upstream: Option<&str>) -> Result<Joined, VenueError> {
    join_with(db, code, upstream, false).await
}

/// [`join`], and with `insecure_http` also at a plain `http://` upstream
/// off this machine (`venue join --upstream-insecure-http`): the invite's
/// token and the relay's own token then cross the network in clear.
pub async fn join_with(
    db: &Path,
    code: &str,
    upstream: Option<&str>,
    insecure_http: bool,
) -> Result<Joined, VenueError> {
    let invite = Invite::decode(code)?;
    if invite.role != Role::Relay {
        return Err(InviteError::NotRelayCode.into());
    }
    // Before the database is touched or anything is sent (review F11).
    check_upstream(upstream.unwrap_or(&invite.relay), insecure_http)?;
    let path = db.to_owned();
    let vdb = tokio::task::spawn_blocking(move || {
        crate::storage::SqliteStorage::open(&path)?;
        VenueDb::open(&path)
    })
    .await
    .map_err(|_| StoreError::Panicked)??;
    let vdb = Arc::new(vdb);
    let upstream = upstream
        .unwrap_or(&invite.relay)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let st = {
        let vdb = Arc::clone(&vdb);
        tokio::task::spawn_blocking(move || vdb.state())
            .await
            .map_err(|_| StoreError::Panicked)??
    };
    if let Some(st) = &st {
        if st.token.is_some() && st.team == invite.team {
            return Ok(Joined {
                team_id: st.team.to_hex(),
                device_id: hex::encode(st.device),
                upstream: st.upstream.clone(),
                already: true,
            });
        }
    }
    if invite.expires_at < crate::unix_now() {
        return Err(VenueError::Expired);
    }
    let st = match st {
        Some(st) => st,
        None => {
            let secret = heartbridge_proto::DeviceSecret::generate();
            let eid = hex::encode(rand::random::<[u8; 16]>());
            let (vdb, inv, up, s2, e2) = (
                Arc::clone(&vdb),
                invite.clone(),
                upstream.clone(),
                secret.clone(),
                eid.clone(),
            );
            tokio::task::spawn_blocking(move || {
                vdb.begin_join(
                    inv.team,
                    &up,
                    &s2,
                    &e2,
                    &inv.key_check,
                    inv.epoch,
                    inv.lead_sign_pk,
                    inv.token.expose(),
                    inv.pin.as_deref(),
                    crate::unix_now(),
                )?;
                vdb.state()
            })
            .await
            .map_err(|_| StoreError::Panicked)??
            .ok_or(VenueError::NotJoined)?
        }
    };
    let public = st.secret.public();
    let req = EnrollRequest {
        team_id: st.team.to_hex(),
        token: Secret::from_string(st.invite_token.clone()),
        key_check: st.key_check.clone(),
        // A relay has no team key to seal a name with.
        name_sealed: String::new(),
        enrollment_id: Some(st.enrollment_id.clone()),
        sign_pk: hex::encode(public.sign),
        kx_pk: hex::encode(public.kx),
        epoch: st.epoch,
        // A relay can make no join proof (it needs the team key); the lead
        // lists it in the roster by its role, with no key sealed to it.
        proof: hex::encode([0u8; 32]),
    };
    let body = serde_json::to_vec(&req).map_err(|e| VenueError::Protocol(e.to_string()))?;
    // The address an interrupted join stored is the one asked again.
    check_upstream(&st.upstream, insecure_http)?;
    let resp = client(Duration::from_secs(60), st.upstream_pin.as_deref())?
        .post(url(&st.upstream, "/v1/join"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| net(&e))?;
    let answer: EnrollResponse = serde_json::from_slice(&answer(resp).await?)
        .map_err(|e| VenueError::Protocol(e.to_string()))?;
    if answer.role != Role::Relay {
        return Err(VenueError::Protocol(
            "the upstream relay enrolled this relay with another role".into(),
        ));
    }
    let device: [u8; 16] = hex::decode(&answer.device_id)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| VenueError::Protocol("device id".into()))?;
    let token = answer.device_token.expose().to_owned();
    tokio::task::spawn_blocking(move || vdb.finish_join(device, &token))
        .await
        .map_err(|_| StoreError::Panicked)??;
    Ok(Joined {
        team_id: st.team.to_hex(),
        device_id: answer.device_id,
        upstream: st.upstream,
        already: false,
    })
}

/// What one forward round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub forwarded: usize,
    pub applied: store::Applied,
    /// More waits here or upstream: go again at once.
    pub more: bool,
}

/// The forwarder: state shared with the sync handler (receipts).
/// The forwarding of the venue relay whose database is `db`, for its
/// operator (`heartbridge-relay venue status`); `None` if the database is
/// missing or was never enrolled with `venue join`.
pub fn status(db: &Path) -> Result<Option<store::VenueStatus>, VenueError> {
    if !db.exists() {
        return Ok(None);
    }
    Ok(VenueDb::open(db)?.status()?)
}

pub struct Forwarder {
    pub(crate) db: Arc<VenueDb>,
    config: VenueConfig,
    http: reqwest::Client,
    /// Lesson chunks the upstream relay lacked, and when (`blobs.rs`).
    blob_misses: blobs::Misses,
}

impl Forwarder {
    /// Opens the venue rows of the relay database at `db` (migrated).
    pub fn open(db: &Path, config: VenueConfig) -> Result<Forwarder, VenueError> {
        let db = Arc::new(VenueDb::open(db)?);
        // The upstream token goes with every round: never in clear off
        // this machine unless told (review F11).
        let upstream = match &config.upstream {
            Some(u) => Some(u.clone()),
            None => db.state()?.map(|s| s.upstream),
        };
        if let Some(u) = upstream {
            check_upstream(&u, config.upstream_insecure_http)?;
        }
        let pin = match &config.upstream_pin {
            Some(p) => Some(p.clone()),
            None => db.state()?.and_then(|s| s.upstream_pin),
        };
        let http = client(config.request_timeout, pin.as_deref())?;
        Ok(Forwarder {
            db,
            config,
            http,
            blob_misses: blobs::Misses::default(),
        })
    }

    pub(crate) fn config(&self) -> &VenueConfig {
        &self.config
    }

    async fn state(&self) -> Result<VenueState, VenueError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || db.state())
            .await
            .map_err(|_| StoreError::Panicked)??
            .ok_or(VenueError::NotJoined)
    }

    /// The team this venue relay serves.
    pub async fn team(&self) -> Result<heartbridge_proto::TeamId, VenueError> {
        Ok(self.state().await?.team)
    }

    /// One round: the next batch of the local log upstream, a page of the
    /// team's envelopes down, the answer taken in one transaction.
    pub async fn round(&self) -> Result<Round, VenueError> {
        let st = self.state().await?;
        let token = match (&self.config.token, &st.token) {
            (Some(t), _) => t.expose().to_owned(),
            (None, Some(t)) => t.clone(),
            (None, None) => return Err(VenueError::NotJoined),
        };
        let upstream = self.config.upstream.clone().unwrap_or(st.upstream.clone());
        let batch = {
            let (db, st) = (Arc::clone(&self.db), st.clone());
            tokio::task::spawn_blocking(move || {
                db.next_batch(&st, FORWARD_ENVELOPES, FORWARD_BYTES)
            })
            .await
            .map_err(|_| StoreError::Panicked)??
        };
        let sent_through = batch.last().map_or(st.forwarded_seq, |o| o.seq);
        let full = batch.len() == FORWARD_ENVELOPES;
        // A snapshot compacts at the relay whose seqs its `covers` counts:
        // this one. Its content is in the log it covers, which goes up
        // envelope by envelope, so it is not sent.
        let (push, not_sent): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|o| o.envelope.covers == 0);
        let not_sent: Vec<u64> = not_sent.into_iter().map(|o| o.seq).collect();
        let roster = {
            let (db, st) = (Arc::clone(&self.db), st.clone());
            tokio::task::spawn_blocking(move || db.roster_to_forward(&st))
                .await
                .map_err(|_| StoreError::Panicked)??
        };
        let uploaded = roster.as_ref().map(|(v, _)| *v);
        let req = SyncRequest {
            v: PROTOCOL_VERSION,
            cursor: st.upstream_cursor,
            push: push.into_iter().map(|o| o.envelope).collect(),
            max_bytes: 0,
            members_since: st.members_since,
            roster_version: st.roster_version.max(uploaded.unwrap_or(0)),
            roster: roster.map(|(_, b)| b),
        };
        let forwarded = req.push.len();
        let resp = self
            .http
            .post(url(&upstream, "/v1/sync"))
            .header(reqwest::header::CONTENT_TYPE, SYNC_CONTENT_TYPE)
            .bearer_auth(&token)
            .body(encode(&req))
            .send()
            .await
            .map_err(|e| net(&e))?;
        let body = match answer(resp).await {
            Ok(body) => body,
            // The upstream relay holds a newer roster than the one the lead
            // uploaded here: it is not sent again (the newer one comes down).
            Err(VenueError::Upstream {
                status: 409, kind, ..
            }) if kind == "bad_roster" && uploaded.is_some() => {
                let db = Arc::clone(&self.db);
                let v = uploaded.unwrap_or(0);
                tokio::task::spawn_blocking(move || db.roster_forwarded(v))
                    .await
                    .map_err(|_| StoreError::Panicked)??;
                return Ok(Round {
                    more: true,
                    ..Round::default()
                });
            }
            Err(e) => return Err(e),
        };
        let (resp, ext): (SyncResponse, ResponseExt) =
            decode_response(&body).map_err(|e| VenueError::Protocol(e.to_string()))?;
        // The central relay's log went back (restored from a backup): its
        // cursor may be behind ours, and what it acknowledged since the
        // backup may be gone. Nothing of this answer is taken; the next
        // round starts from 0 and forwards the whole local log again.
        if let Some(id) = ext.log_id {
            let db = Arc::clone(&self.db);
            let changed = tokio::task::spawn_blocking(move || db.take_upstream_log_id(id))
                .await
                .map_err(|_| StoreError::Panicked)??;
            if changed {
                tracing::warn!(
                    "the upstream relay's log changed (it was restored from a backup): pulling it again from the start and forwarding this relay's whole log again"
                );
                return Ok(Round {
                    more: true,
                    ..Round::default()
                });
            }
        }
        check_answer(&resp, st.upstream_cursor)?;
        // Why the upstream relay refused what it refused, by kind (review
        // F13: the operator is told; kinds and counts only, never an id).
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &resp.refused {
            let kind: String = r
                .reason
                .chars()
                .take(40)
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            *reasons.entry(kind).or_default() += 1;
        }
        let more = resp.more || full;
        let db = Arc::clone(&self.db);
        let applied = tokio::task::spawn_blocking(move || {
            db.apply(
                &st,
                sent_through,
                &not_sent,
                resp.roster.as_deref(),
                &resp.members,
                &resp.acked,
                &resp.refused,
                &resp.pull,
                resp.cursor,
                crate::unix_now(),
            )
        })
        .await
        .map_err(|_| StoreError::Panicked)??;
        if let Some(v) = uploaded {
            let db = Arc::clone(&self.db);
            tokio::task::spawn_blocking(move || db.roster_forwarded(v))
                .await
                .map_err(|_| StoreError::Panicked)??;
        }
        if applied.refused > 0 {
            // Counts and kinds, never an id.
            let reasons: Vec<String> = reasons.iter().map(|(k, n)| format!("{k}={n}")).collect();
            tracing::warn!(
                refused = applied.refused,
                reasons = %reasons.join(","),
                "the upstream relay refused forwarded envelopes: they stay at this venue relay and never reach the central relay (see `heartbridge-relay venue status`)"
            );
        }
        Ok(Round {
            forwarded,
            applied,
            more,
        })
    }

    /// Forwards until `stopping`: rounds back to back while there is more,
    /// every `poll` when idle, with exponential backoff and jitter while
    /// the uplink fails.
    pub(crate) async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut backoff = self.config.backoff_min;
        let mut down = false;
        loop {
            let wait = match self.round().await {
                Ok(r) => {
                    if down {
                        tracing::info!("upstream relay reachable again");
                        down = false;
                    }
                    backoff = self.config.backoff_min;
                    if r.forwarded > 0 || r.applied.pulled_new > 0 {
                        tracing::info!(
                            forwarded = r.forwarded,
                            acked = r.applied.acked,
                            pulled = r.applied.pulled_new,
                            "venue forward"
                        );
                    }
                    if r.more {
                        Duration::ZERO
                    } else {
                        self.config.poll
                    }
                }
                Err(e) => {
                    if !down {
                        tracing::warn!(error = %e, "upstream relay unreachable; retrying with backoff");
                        down = true;
                    }
                    let w = jitter(backoff);
                    backoff = (backoff * 2).min(self.config.backoff_max);
                    w
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::server::stopped(&mut stopping) => break,
            }
        }
    }
}

/// `d` ±25 % at random.
fn jitter(d: Duration) -> Duration {
    let f: f64 = 0.75 + rand::random::<f64>() * 0.5;
    d.mul_f64(f)
}

/// Refuses an upstream answer whose cursor goes back or whose page is out
/// of order, before anything of it is stored.
fn check_answer(resp: &SyncResponse, cursor: u64) -> Result<(), VenueError> {
    let bad = |why: &str| Err(VenueError::Protocol(why.into()));
    if resp.cursor < cursor {
        return bad("its cursor went backwards");
    }
    if resp.cursor > i64::MAX as u64 {
        return bad("its cursor is out of range");
    }
    let mut last = cursor;
    for p in &resp.pull {
        if p.seq <= last || p.seq > resp.cursor {
            return bad("its pulled envelopes are out of order");
        }
        last = p.seq;
    }
    if resp.more && resp.pull.is_empty() && resp.cursor == cursor {
        return bad("it says more without progress");
    }
    Ok(())
}

#[cfg(test)]
mod plain_http_tests {
    use super::is_insecure_http;

    #[test]
    fn only_plain_http_off_this_machine_is_insecure() {
        for ok in [
            "http://127.0.0.1:7070",
            "http://127.8.0.1/",
            "http://localhost:7070/x",
            "http://[::1]:7070",
            "https://192.168.1.5:7443",
            "https://central.example.org",
        ] {
            assert!(!is_insecure_http(ok), "{ok}");
        }
        for bad in [
            "http://192.168.1.5:7070",
            "http://relay.example.org",
            "http://[fe80::1]:7070",
            "http://127.0.0.1.evil.org",
            "http://user@192.0.2.1/",
            "not a url",
        ] {
            assert!(is_insecure_http(bad), "{bad}");
        }
    }
}
