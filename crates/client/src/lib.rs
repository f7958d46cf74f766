//! # heartbridge-client
//!
//! The device's side of the relay protocol over HTTP: claiming a team as
//! its lead, inviting and joining, listing members, and `/v1/sync` for the
//! core's sync engine. Used by the CLI and the app; the core itself never
//! opens a socket.
//!
//! [`HttpTransport`] is async (reqwest, HTTP/1.1 over rustls, one
//! connection pool reused across requests). Every request has a total
//! deadline covering connect, send and reading the whole body, and a
//! response is refused as soon as it grows past [`MAX_RESPONSE`].
//! [`BlockingTransport`] wraps it with its own current-thread runtime: it
//! implements the core's [`Transport`] and has blocking versions of every
//! call, for the CLI and tests.
//!
//! Enrollment is retryable and keeps the store unlocked while it waits on
//! the network: [`prepare_claim`] / [`prepare_join`] record a pending
//! enrollment in the store (or resume the one whose answer was lost),
//! [`HttpTransport::enroll`] talks to the relay without the store, and
//! [`commit_enrollment`] stores the answer. Running a claim or join again
//! after a lost answer sends the same enrollment id, so the relay returns
//! the same device instead of burning the token.
//!
//! Nothing here logs, and no error message carries a token, a key or a
//! device name: network failures are reported as short kind words
//! ("timed out", "connection reset", ...).
//!
//! Trust in a relay ([`RelayTrust`], registered per relay URL with
//! [`HttpTransport::trust_relay`], or by the core's sync through
//! [`Transport::use_relay`]): a relay with a certificate pin is reached
//! only if it presents exactly that certificate ([`pin`]); one without is
//! checked against the Mozilla roots. Plain `http://` to an address that
//! is not loopback is refused before anything is sent
//! (`insecure_relay`) unless the entry allows it, so a bearer token never
//! crosses venue Wi-Fi in clear.

pub mod discover;
mod lesson;
pub mod pin;
mod venue;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbridge_core::proto::CertPin;
use heartbridge_core::proto::{
    open_name, seal_name, EnrollRequest, EnrollResponse, ErrorBody, Invite, InviteRequest,
    InviteResponse, MembersResponse, RevokeResponse, Role, Secret, TeamId, SYNC_CONTENT_TYPE,
};
use heartbridge_core::{
    Error, PendingEnrollment, RelayEntry, Result, Store, Team, Transport, TransportError,
};
pub use lesson::{BLOB_ATTEMPTS, BLOB_DEADLINE};
pub use pin::RelayTrust;
use serde::Serialize;

/// Largest response body accepted (64 MiB), enforced while it streams in.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// Longest wait for a TCP (and TLS) connection to the relay.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The total deadline of one `/v1/sync` request made through
/// [`BlockingTransport`] unless set otherwise.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(120);
/// How long an invite code works unless asked otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(24 * 3600);
/// The total deadline of an enrollment, invite or members request.
pub const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

type TResult<T> = std::result::Result<T, TransportError>;

fn net(detail: &str) -> TransportError {
    TransportError::Network(detail.to_owned())
}

/// rustls with the ring provider and the Mozilla roots (webpki-roots): the
/// same trust on every platform, no system store needed. With a pin, the
/// pinned certificate and nothing else.
fn tls_config(pin: Option<CertPin>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3");
    let mut config = match pin {
        None => builder
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pin::PinnedVerifier::new(pin, provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

fn build_client(tls: rustls::ClientConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .connect_timeout(CONNECT_TIMEOUT)
        // Below the relay's idle keep-alive limit (its header timeout,
        // 30 s), so a pooled connection is never one it just closed.
        .pool_idle_timeout(Duration::from_secs(20))
        .tcp_nodelay(true)
        // A relay never redirects; a redirect is a misconfiguration and
        // must not carry a token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| Error::Network {
            detail: "the HTTP client could not be set up".into(),
        })
}

/// The refusal of a pinned relay that presented another certificate.
fn pin_mismatch() -> TransportError {
    TransportError::Relay {
        status: 0,
        kind: "relay_certificate_mismatch".into(),
        message: "this relay's certificate is not the one in your invite code or relay entry, so nothing was sent to it: someone may be imitating the relay, or it was set up again. Check the fingerprint with your team lead (heartbridge-relay fingerprint) and ask for a new invite code or correct the relay entry (heartbridge team relays)".into(),
    }
}

/// The refusal of a plain-HTTP relay off loopback.
fn insecure_relay() -> TransportError {
    TransportError::Relay {
        status: 0,
        kind: "insecure_relay".into(),
        message: "this relay address is plain http:// on the network, so the device's token would cross it unencrypted; nothing was sent. Use the relay's https:// address (with its fingerprint), or, only on a network you trust, add the relay with --insecure-http".into(),
    }
}

/// The relay protocol over HTTP(S), async. Cloning is cheap and shares the
/// connection pool; keep one and reuse it so connections stay alive
/// between requests.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    /// One client per pinned certificate, made on first use.
    pinned: Arc<Mutex<HashMap<CertPin, reqwest::Client>>>,
    /// What each relay URL (without a trailing `/`) is trusted by.
    trust: Arc<Mutex<HashMap<String, RelayTrust>>>,
    /// Venue relays and this device's key for signing requests to them.
    signing: Arc<venue::Signing>,
    max_response: usize,
}

impl Default for HttpTransport {
    /// Panics only if the HTTP client cannot be built at all (no TLS
    /// provider); [`HttpTransport::new`] reports that as an error instead.
    fn default() -> Self {
        HttpTransport::new().expect("HTTP client configuration")
    }
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("max_response", &self.max_response)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    pub fn new() -> Result<HttpTransport> {
        Ok(HttpTransport {
            client: build_client(tls_config(None))?,
            pinned: Arc::default(),
            trust: Arc::default(),
            signing: Arc::default(),
            max_response: MAX_RESPONSE,
        })
    }

    /// From now on, reach the relay at `url` by `trust` (its pin, or the
    /// web's authorities; plain `http://` off loopback only if allowed).
    pub fn trust_relay(&self, url: &str, trust: RelayTrust) {
        let mut map = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(relay_key(url), trust);
    }

    /// Trusts every relay entry as it says (the store's [`Store::relays`]).
    pub fn trust_relays(&self, entries: &[RelayEntry]) {
        for e in entries {
            self.trust_relay(&e.url, entry_trust(e));
        }
    }

    /// What the relay at `url` is trusted by (the default: no pin, no
    /// plain HTTP off loopback).
    pub fn relay_trust(&self, url: &str) -> RelayTrust {
        let map = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&relay_key(url)).cloned().unwrap_or_default()
    }

    /// The client for a relay: refuses plain HTTP off loopback unless
    /// allowed; a pinned relay gets its own client.
    fn client_for(&self, base: &str) -> TResult<reqwest::Client> {
        let trust = self.relay_trust(base);
        if pin::is_insecure_http(base) && !trust.allow_insecure_http {
            return Err(insecure_relay());
        }
        let Some(pin) = trust.pin else {
            return Ok(self.client.clone());
        };
        let mut map = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&pin) {
            return Ok(c.clone());
        }
        let client = build_client(tls_config(Some(pin)))
            .map_err(|_| net("the HTTP client could not be set up"))?;
        map.insert(pin, client.clone());
        Ok(client)
    }

    /// A smaller (or larger) response limit than [`MAX_RESPONSE`].
    pub fn with_max_response(mut self, bytes: usize) -> HttpTransport {
        self.max_response = bytes;
        self
    }

    /// Carries one `/v1/sync` request: the response body on success. The
    /// whole exchange (connect, send, read the body) must end within
    /// `deadline`. A cut, refused or timed-out connection is
    /// [`TransportError::Network`]; an answer of the relay's that is an
    /// error is [`TransportError::Relay`].
    pub async fn sync(&self, team: &Team, body: Vec<u8>, deadline: Duration) -> TResult<Vec<u8>> {
        let req = self
            .client_for(&team.relay_url)?
            .post(url(&team.relay_url, "/v1/sync"))
            .header(reqwest::header::CONTENT_TYPE, SYNC_CONTENT_TYPE);
        // A venue relay gets the device's signature, never its token.
        let req = match self
            .signing
            .authorization(&team.relay_url, "POST", "/v1/sync", &body)?
        {
            Some(sig) => req.header(reqwest::header::AUTHORIZATION, sig),
            None => req.bearer_auth(team.token.expose()),
        };
        self.exchange(req.body(body), deadline).await
    }

    /// The device's signing key, for venue relays ([`Store::request_signer`]).
    pub fn set_signer(&self, device_hex: &str, secret: heartbridge_core::proto::DeviceSecret) {
        self.signing.set_signer(device_hex, secret);
    }

    /// `url` is a venue relay: requests to it are signed for `relay_id`
    /// (its certificate pin when it has one, else its URL).
    pub fn venue_relay(&self, url: &str, relay_id: &str) {
        self.signing.venue(url, relay_id);
    }

    /// Whether `url` was registered as a venue relay.
    pub fn is_venue_relay(&self, url: &str) -> bool {
        self.signing.is_venue(url)
    }

    /// Sends a prepared enrollment ([`prepare_claim`], [`prepare_join`]) to
    /// its relay and returns the membership to store with
    /// [`commit_enrollment`]. Needs no store: the app can release its lock
    /// while this runs. Sending the same [`Enrollment`] again after a lost
    /// answer gives back the same device.
    pub async fn enroll(&self, enrollment: &Enrollment) -> Result<Team> {
        let p = &enrollment.pending;
        self.trust_relay(&p.relay_url, enrollment.trust.clone());
        let req = EnrollRequest {
            team_id: p.team_id.to_hex(),
            token: p.token.clone(),
            key_check: p.key.check_value(),
            name_sealed: enrollment.name_sealed.clone(),
            enrollment_id: Some(p.enrollment_id.clone()),
            sign_pk: hex::encode(p.public.sign),
            kx_pk: hex::encode(p.public.kx),
            epoch: p.epoch,
            proof: hex::encode(p.proof),
        };
        let resp: EnrollResponse =
            parse(&self.post_json(&p.relay_url, &p.path, None, &req).await?)?;
        Ok(Team {
            relay_url: p.relay_url.clone(),
            team_id: p.team_id,
            device_id: resp.device_id,
            token: resp.device_token,
            key: p.key.clone(),
            epoch: p.epoch,
            role: resp.role,
            lead_sign_pk: p.lead_sign_pk,
        })
    }

    /// `GET /v1/roster`: the lead-signed roster the relay holds (served to
    /// revoked devices too).
    pub async fn roster(&self, team: &Team) -> TResult<Vec<u8>> {
        let req = self
            .client_for(&team.relay_url)?
            .get(url(&team.relay_url, "/v1/roster"));
        // At a venue relay (a revoked device asks the relay it synced
        // with), the signature, never the token.
        let req = match self
            .signing
            .authorization(&team.relay_url, "GET", "/v1/roster", b"")?
        {
            Some(sig) => req.header(reqwest::header::AUTHORIZATION, sig),
            None => req.bearer_auth(team.token.expose()),
        };
        self.exchange(req, ADMIN_DEADLINE).await
    }

    /// Asks the relay to refuse `device` from now on (lead only); answers
    /// the relay's last sequence number at that moment.
    pub async fn revoke(&self, team: &Team, device: &str) -> Result<u64> {
        let body = self
            .post_json(
                &team.relay_url,
                &format!("/v1/devices/{device}/revoke"),
                Some(&team.token),
                &serde_json::json!({}),
            )
            .await?;
        let r: RevokeResponse = parse(&body)?;
        Ok(r.cutoff_seq)
    }

    /// Creates an invite code for a new device of `role`.
    pub async fn invite(&self, team: &Team, role: Role) -> Result<String> {
        Ok(self.invite_card(team, role, DEFAULT_INVITE_TTL).await?.0)
    }

    /// Creates an invite code valid for `ttl`; answers the code and when it
    /// expires (Unix seconds). The code carries the current epoch's key
    /// only.
    pub async fn invite_card(
        &self,
        team: &Team,
        role: Role,
        ttl: Duration,
    ) -> Result<(String, i64)> {
        let key_check = team.key.check_value();
        let req = InviteRequest {
            role,
            ttl_secs: ttl.as_secs().max(1),
            key_check: Some(key_check.clone()),
        };
        let resp: InviteResponse = parse(
            &self
                .post_json(&team.relay_url, "/v1/invites", Some(&team.token), &req)
                .await?,
        )?;
        Ok((
            Invite {
                relay: team.relay_url.clone(),
                team: team.team_id,
                token: resp.token,
                // A venue relay never holds the team key: its code carries
                // only the key's check value.
                key: role.holds_team_key().then(|| team.key.clone()),
                key_check,
                epoch: team.epoch,
                role,
                expires_at: resp.expires_at,
                lead_sign_pk: team.lead_sign_pk,
                // The pin this device trusts the team's relay by, if any.
                pin: self.relay_trust(&team.relay_url).pin.map(|p| p.to_string()),
            }
            .encode(),
            resp.expires_at,
        ))
    }

    /// The team's devices, names opened with the team key.
    pub async fn members(&self, team: &Team) -> Result<Vec<MemberView>> {
        let req = self
            .client_for(&team.relay_url)
            .map_err(explain)?
            .get(url(&team.relay_url, "/v1/members"))
            .bearer_auth(team.token.expose());
        let body = self.exchange(req, ADMIN_DEADLINE).await.map_err(explain)?;
        let list: MembersResponse = parse(&body)?;
        Ok(list
            .members
            .into_iter()
            .map(|m| MemberView {
                name: open_name(&team.key, &team.team_id, &m.name_sealed),
                this_device: m.device_id == team.device_id,
                device_id: m.device_id,
                role: m.role,
                last_sync_at: m.last_sync_at,
                revoked: m.revoked,
            })
            .collect())
    }

    async fn post_json<T: Serialize>(
        &self,
        base: &str,
        path: &str,
        token: Option<&Secret>,
        body: &T,
    ) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Protocol {
            detail: e.to_string(),
        })?;
        let mut req = self
            .client_for(base)
            .map_err(explain)?
            .post(url(base, path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        self.exchange(req, ADMIN_DEADLINE).await.map_err(explain)
    }

    /// One request with a total deadline: the body on 2xx, the relay's
    /// error otherwise.
    async fn exchange(&self, req: reqwest::RequestBuilder, deadline: Duration) -> TResult<Vec<u8>> {
        let run = async {
            let resp = req
                .timeout(deadline)
                .send()
                .await
                .map_err(|e| network(&e))?;
            let status = resp.status().as_u16();
            let body = read_limited(resp, self.max_response, (200..300).contains(&status)).await?;
            if (200..300).contains(&status) {
                return Ok(body);
            }
            let err: Option<ErrorBody> = serde_json::from_slice(&body).ok();
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
        match tokio::time::timeout(deadline, run).await {
            Ok(r) => r,
            Err(_) => Err(net("timed out")),
        }
    }
}

/// Reads a body chunk by chunk, refusing it the moment it would pass
/// `limit` (or at once if its announced length does).
/// A successful answer cut off mid-way comes back as
/// [`TransportError::Cut`] with what arrived, so the sync engine keeps every
/// envelope that arrived whole.
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
    success: bool,
) -> TResult<Vec<u8>> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(net("response too large"));
    }
    let mut out = Vec::with_capacity((announced as usize).min(1 << 20));
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) if success && !out.is_empty() => {
                let TransportError::Network(detail) = network(&e) else {
                    return Err(network(&e));
                };
                return Err(TransportError::Cut {
                    detail,
                    received: out,
                });
            }
            Err(e) => return Err(network(&e)),
        };
        if out.len() + chunk.len() > limit {
            return Err(net("response too large"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn entry_trust(e: &RelayEntry) -> RelayTrust {
    RelayTrust {
        pin: e.cert_pin(),
        allow_insecure_http: e.insecure,
    }
}

fn relay_key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

fn url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

fn io_word(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::TimedOut => "timed out",
        K::ConnectionReset => "connection reset",
        K::ConnectionRefused => "connection refused",
        K::ConnectionAborted => "connection aborted",
        K::UnexpectedEof | K::BrokenPipe | K::NotConnected => "connection closed",
        K::NetworkUnreachable => "network unreachable",
        K::HostUnreachable => "relay host unreachable",
        K::NetworkDown => "network down",
        K::AddrNotAvailable => "address not available",
        _ => return None,
    })
}

/// The rustls error in `e`, also inside an `io::Error` (whose `source`
/// skips the error it wraps).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_error(inner)
}

/// A failure in a few words of what happened. Built only from error kinds,
/// never from error text (which would carry the URL).
fn network(e: &reqwest::Error) -> TransportError {
    let mut io = None;
    let mut closed = false;
    let mut timeout = e.is_timeout();
    let mut dns = false;
    let mut tls = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(i) = s.downcast_ref::<std::io::Error>() {
            io = io.or(io_word(i.kind()));
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            closed |= h.is_incomplete_message() || h.is_closed() || h.is_canceled();
            timeout |= h.is_timeout();
        }
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) =
            rustls_error(s)
        {
            if o.0.downcast_ref::<pin::PinMismatch>().is_some() {
                return pin_mismatch();
            }
        }
        if let Some(t) = rustls_error(s) {
            tls = Some(match t {
                rustls::Error::InvalidCertificate(_) => "the relay's certificate is not trusted",
                _ => "TLS handshake failed",
            });
        }
        // hyper-util's resolver failure has no type of its own to match.
        let text = s.to_string();
        dns |= text.contains("dns error") || text.contains("failed to lookup address");
        src = s.source();
    }
    net(if timeout {
        "timed out"
    } else if let Some(w) = io {
        w
    } else if dns {
        "relay host not found"
    } else if let Some(t) = tls {
        t
    } else if closed || e.is_body() || e.is_decode() {
        "connection closed"
    } else if e.is_builder() {
        "relay address not valid (it starts with http:// or https://)"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    })
}

/// Turns a transport failure into the error a volunteer reads.
pub fn explain(e: TransportError) -> Error {
    match e {
        TransportError::Network(detail) | TransportError::Cut { detail, .. } => {
            Error::Network { detail }
        }
        TransportError::Relay { kind, .. } if kind == "device_revoked" => Error::DeviceRevoked,
        TransportError::Relay { kind, message, .. } => {
            let message = match kind.as_str() {
                "unknown_token" => "the relay does not know this device or code: check the invite code, or ask your team lead for a new one".to_owned(),
                "wrong_key" => "the invite code's team key does not match the team's: the code was mistyped or is from another team; ask for the code again".to_owned(),
                "invite_expired" => "this invite code has expired: ask your team lead for a new one".to_owned(),
                "invite_outdated" => "this invite code was made before your team's key changed: ask your team lead for a new one".to_owned(),
                "invite_used" => "this invite code was already used: each code enrolls one device; ask for a new one".to_owned(),
                "forbidden" => "your role in the team does not allow this".to_owned(),
                _ => message,
            };
            Error::Relay { kind, message }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
        detail: e.to_string(),
    })
}

/// An enrollment ready to send: the pending enrollment recorded in the
/// store and this device's sealed name. `Debug` hides the token and key.
#[derive(Clone)]
pub struct Enrollment {
    pending: PendingEnrollment,
    name_sealed: String,
    /// The relay's pin from the invite code (none for a claim).
    trust: RelayTrust,
}

impl Enrollment {
    /// The id the relay recognises a retry by.
    pub fn enrollment_id(&self) -> &str {
        &self.pending.enrollment_id
    }
    pub fn team_id(&self) -> TeamId {
        self.pending.team_id
    }
    pub fn relay_url(&self) -> &str {
        &self.pending.relay_url
    }
    /// The relay's certificate pin from the invite code, if any.
    pub fn pin(&self) -> Option<CertPin> {
        self.trust.pin
    }
    /// Reach a claim's relay by this pin (a relay serving a self-signed
    /// certificate: `heartbridge-relay fingerprint`).
    pub fn with_pin(mut self, pin: Option<CertPin>) -> Enrollment {
        self.trust.pin = pin;
        self
    }
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

fn prepare(
    store: &mut Store,
    relay: &str,
    path: &str,
    team_id: TeamId,
    token: Secret,
    key: Option<&heartbridge_core::JoinKeys>,
) -> Result<Enrollment> {
    let relay = relay.trim().trim_end_matches('/');
    let pending = store.begin_enrollment(relay, &team_id, path, &token, key)?;
    let name_sealed = seal_name(&pending.key, &pending.team_id, &store.profile().name);
    Ok(Enrollment {
        pending,
        name_sealed,
        trust: RelayTrust::default(),
    })
}

/// Step 1 of claiming a team created by the relay operator, as its lead:
/// records the enrollment (with a team key generated on this device) in
/// the store, or resumes the one already pending for this token. The lead
/// token is `TEAMID.SECRET` as printed by `heartbridge-relay team create`.
pub fn prepare_claim(store: &mut Store, relay: &str, lead_token: &str) -> Result<Enrollment> {
    let bad = || Error::InvalidValue {
        field: "lead token",
        value: "(hidden)".into(),
        allowed: "the whole lead token printed by `heartbridge-relay team create` (TEAMID.SECRET)",
    };
    let (team, secret) = lead_token.trim().split_once('.').ok_or_else(bad)?;
    let team_id = TeamId::from_hex(team).ok_or_else(bad)?;
    prepare(
        store,
        relay,
        "/v1/claim",
        team_id,
        Secret::from_string(secret.to_owned()),
        None,
    )
}

/// Step 1 of joining a team with an invite code: records the enrollment in
/// the store, or resumes the one already pending for this code.
pub fn prepare_join(store: &mut Store, code: &str) -> Result<Enrollment> {
    let invite = Invite::decode(code)?;
    if invite.expires_at < heartbridge_core::now_ms() / 1000 {
        return Err(Error::Relay {
            kind: "invite_expired".into(),
            message: "this invite code has expired: ask for a new one".into(),
        });
    }
    let pin = match invite.pin.as_deref() {
        None => None,
        Some(p) => Some(
            CertPin::parse(p)
                .ok_or(Error::Invite(heartbridge_core::proto::InviteError::Damaged))?,
        ),
    };
    let e = prepare(
        store,
        &invite.relay,
        "/v1/join",
        invite.team,
        invite.token.clone(),
        Some(&heartbridge_core::JoinKeys {
            key: invite.device_key()?.clone(),
            epoch: invite.epoch,
            role: invite.role,
            lead_sign_pk: invite.lead_sign_pk,
        }),
    )?;
    // The team's relay entry, with the pin the code carries: every later
    // request to it is pinned.
    let pin_text = pin.map(|p| p.to_string());
    store.ensure_team_relay(e.relay_url(), pin_text.as_deref())?;
    Ok(e.with_pin(pin))
}

/// Step 3 of an enrollment: stores the membership [`HttpTransport::enroll`]
/// returned and clears the pending enrollment, in one transaction.
pub fn commit_enrollment(store: &mut Store, team: &Team) -> Result<()> {
    store.finish_enrollment(team)
}

/// A team member as shown to the team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    pub device_id: String,
    pub name: Option<String>,
    pub role: Role,
    pub last_sync_at: Option<i64>,
    pub revoked: bool,
    pub this_device: bool,
}

/// [`HttpTransport`] with its own current-thread runtime, for synchronous
/// callers: the core's [`Transport`] for the sync engine, and blocking
/// enrollment, invite and members. Keep one for a whole sync so its
/// connection is reused. Must not be used from inside an async task (use
/// [`HttpTransport`] there); a `spawn_blocking` thread is fine.
pub struct BlockingTransport {
    rt: tokio::runtime::Runtime,
    http: HttpTransport,
    deadline: Duration,
}

impl Default for BlockingTransport {
    /// Panics only if no runtime or HTTP client can be built (the OS is out
    /// of threads or descriptors); [`BlockingTransport::new`] reports it.
    fn default() -> Self {
        BlockingTransport::new().expect("HTTP client and runtime")
    }
}

impl BlockingTransport {
    pub fn new() -> Result<BlockingTransport> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| Error::Network {
                detail: "the network runtime could not start".into(),
            })?;
        let http = {
            let _in_rt = rt.enter();
            HttpTransport::new()?
        };
        Ok(BlockingTransport {
            rt,
            http,
            deadline: SYNC_DEADLINE,
        })
    }

    /// The total deadline of each `/v1/sync` request ([`SYNC_DEADLINE`]
    /// unless set).
    pub fn with_deadline(mut self, deadline: Duration) -> BlockingTransport {
        self.deadline = deadline;
        self
    }

    /// A smaller (or larger) response limit than [`MAX_RESPONSE`].
    pub fn with_max_response(mut self, bytes: usize) -> BlockingTransport {
        self.http = self.http.with_max_response(bytes);
        self
    }

    pub fn http(&self) -> &HttpTransport {
        &self.http
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Claims a team as its lead: prepare, send, commit. Run again after a
    /// lost answer, it resumes the same enrollment.
    pub fn claim(&self, store: &mut Store, relay: &str, lead_token: &str) -> Result<Team> {
        self.claim_pinned(store, relay, lead_token, None)
    }

    /// [`BlockingTransport::claim`] of a relay reached by its certificate
    /// pin (a relay serving a self-signed certificate); the pin is kept in
    /// the team's relay entry and goes into the invite codes this device
    /// makes.
    pub fn claim_pinned(
        &self,
        store: &mut Store,
        relay: &str,
        lead_token: &str,
        pin: Option<CertPin>,
    ) -> Result<Team> {
        let e = prepare_claim(store, relay, lead_token)?.with_pin(pin);
        let pin_text = pin.map(|p| p.to_string());
        store.ensure_team_relay(e.relay_url(), pin_text.as_deref())?;
        let team = self.block_on(self.http.enroll(&e))?;
        commit_enrollment(store, &team)?;
        Ok(team)
    }

    /// Joins a team with an invite code: prepare, send, commit. Run again
    /// after a lost answer, it resumes the same enrollment.
    pub fn join(&self, store: &mut Store, code: &str) -> Result<Team> {
        let e = prepare_join(store, code)?;
        let team = self.block_on(self.http.enroll(&e))?;
        commit_enrollment(store, &team)?;
        Ok(team)
    }

    /// Creates an invite code for a new device.
    pub fn invite(&mut self, store: &mut Store, role: Role) -> Result<String> {
        Ok(self.invite_card(store, role, DEFAULT_INVITE_TTL)?.0)
    }

    /// Creates an invite code valid for `ttl`; answers it and its expiry
    /// (Unix seconds).
    pub fn invite_card(
        &mut self,
        store: &mut Store,
        role: Role,
        ttl: Duration,
    ) -> Result<(String, i64)> {
        if store.roster_unsent()? {
            // The code will carry the newest key epoch: the relay must hold
            // the roster that announces it before anyone joins with it.
            store.sync(self, &heartbridge_core::SyncOptions::default(), &mut |_| {})?;
        }
        let team = store.team()?.ok_or(Error::NotEnrolled)?;
        self.http.trust_relays(&store.relays()?);
        self.block_on(self.http.invite_card(&team, role, ttl))
    }

    /// On the lead's device: has the relay refuse `device` at once, then
    /// makes a new key epoch sealed to every remaining member and a signed
    /// roster recording the revocation, and syncs to hand it over (if that
    /// sync fails, the next one carries it). Answers the new epoch and the
    /// relay's sequence number at the revocation.
    pub fn revoke(&mut self, store: &mut Store, device: &str) -> Result<(u32, u64)> {
        let team = store.team()?.ok_or(Error::NotEnrolled)?;
        self.http.trust_relays(&store.relays()?);
        if store.device_public()?.map(|p| p.sign) != Some(team.lead_sign_pk) {
            return Err(Error::NotLead);
        }
        let opts = heartbridge_core::SyncOptions::default();
        // Learn every member's keys first; the rotation needs the removed
        // device's (a lead that never synced with it would otherwise
        // revoke it blind and its earlier notes would be held everywhere).
        let _ = store.sync(self, &opts, &mut |_| {});
        let cutoff = self.block_on(self.http.revoke(&team, device))?;
        let epoch = match store.rotate_after_revoke(device, cutoff) {
            Err(Error::NotYetKnown { .. }) => {
                store.sync(self, &opts, &mut |_| {})?;
                store.rotate_after_revoke(device, cutoff)?
            }
            other => other?,
        };
        let _ = store.sync(self, &heartbridge_core::SyncOptions::default(), &mut |_| {});
        Ok((epoch, cutoff))
    }

    /// The team's devices.
    pub fn members(&self, store: &Store) -> Result<Vec<MemberView>> {
        let team = store.team()?.ok_or(Error::NotEnrolled)?;
        self.http.trust_relays(&store.relays()?);
        self.block_on(self.http.members(&team))
    }
}

impl Transport for BlockingTransport {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> TResult<Vec<u8>> {
        self.rt.block_on(self.http.sync(team, body, self.deadline))
    }
    fn roster(&mut self, team: &Team) -> TResult<Vec<u8>> {
        self.rt.block_on(self.http.roster(team))
    }
    fn use_relay(&mut self, relay: &RelayEntry) {
        self.http.trust_relay(&relay.url, entry_trust(relay));
        // The token goes only to the team's own relay (or the same
        // certificate at another address): any other entry, whatever kind
        // it was added as, gets the device's signature (review F10).
        if relay.kind == heartbridge_core::RelayKind::Venue || !relay.takes_token {
            let id = relay.pin.clone().unwrap_or_else(|| relay_key(&relay.url));
            self.http.venue_relay(&relay.url, &id);
        }
    }
}

/// Claims a team as its lead (blocking; see [`BlockingTransport::claim`]).
pub fn claim(store: &mut Store, relay: &str, lead_token: &str) -> Result<Team> {
    BlockingTransport::new()?.claim(store, relay, lead_token)
}

/// Joins a team with an invite code (blocking; see
/// [`BlockingTransport::join`]).
pub fn join(store: &mut Store, code: &str) -> Result<Team> {
    BlockingTransport::new()?.join(store, code)
}

/// Creates an invite code for a new device (blocking).
pub fn invite(store: &mut Store, role: Role) -> Result<String> {
    BlockingTransport::new()?.invite(store, role)
}

/// The team's devices, names opened with the team key (blocking).
pub fn members(store: &Store) -> Result<Vec<MemberView>> {
    BlockingTransport::new()?.members(store)
}
