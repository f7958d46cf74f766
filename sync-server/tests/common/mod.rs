//! The one helper every relay test goes through: a real relay on 127.0.0.1
//! port 0 over a SQLite file in a temp dir, a small HTTP client, and the
//! steps of enrollment. Every wait has a timeout; nothing sleeps.

#![allow(dead_code)]

pub mod pg;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use heartbridge_proto::{
    decode, encode, identity::join_proof, seal_name, DeviceSecret, DocKindTag, EnrollRequest,
    EnrollResponse, Envelope, EnvelopeKind, ErrorBody, InviteRequest, InviteResponse,
    MembersResponse, Role, Secret, SyncRequest, SyncResponse, TeamId, TeamKey, PROTOCOL_VERSION,
    SYNC_CONTENT_TYPE,
};
use heartbridge_relay::{Clock, Config, RelayError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(t) => t,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A relay running in this process.
pub struct TestRelay {
    pub dir: TempDir,
    pub db: PathBuf,
    pub addr: SocketAddr,
    /// The metrics listener's address, if the relay has one.
    pub metrics_addr: Option<SocketAddr>,
    /// The relay's clock, unix seconds; starts at the real time.
    pub now: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), RelayError>>>,
}

impl TestRelay {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, tweak).await
    }

    /// Starts a relay with `/metrics` on a second listener of its own.
    pub async fn start_with_metrics_listener(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_full(dir, tweak, true).await
    }

    /// Starts a relay over the database in `dir` (kept from an earlier one).
    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(dir, tweak, false).await
    }

    async fn start_full(
        dir: TempDir,
        tweak: impl FnOnce(&mut Config),
        metrics_listener: bool,
    ) -> Self {
        let db = dir.path().join("relay.db");
        let now = Arc::new(AtomicI64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_secs() as i64,
        ));
        let clock_now = Arc::clone(&now);
        let mut config = Config::new(&db);
        config.clock = Clock::from_fn(move || clock_now.load(Ordering::SeqCst));
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let (handle, metrics_addr) = if metrics_listener {
            let m = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind port 0");
            let maddr = m.local_addr().expect("local addr");
            let serving =
                heartbridge_relay::serve_with_metrics_listener(listener, m, config, stopped);
            (tokio::spawn(serving), Some(maddr))
        } else {
            (
                tokio::spawn(heartbridge_relay::serve(listener, config, stopped)),
                None,
            )
        };
        TestRelay {
            dir,
            db,
            addr,
            metrics_addr,
            now,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub fn advance_clock(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// Signals shutdown without waiting for it.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the relay, waits for `serve` to return Ok, and hands back its
    /// directory.
    pub async fn stop(mut self) -> TempDir {
        self.signal_stop();
        let handle = self.handle.take().expect("running");
        within("the relay to stop", handle)
            .await
            .expect("serve task")
            .expect("serve returned an error");
        self.dir
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// A client whose connections come from another loopback address.
    pub fn client_from(&self, source: [u8; 4]) -> Client {
        Client {
            addr: self.addr,
            source: Some(IpAddr::from(source)),
        }
    }

    /// Envelope rows served to pulls (not superseded), read directly.
    pub fn stored_envelopes(&self) -> i64 {
        count_where(&self.db, "envelopes", "superseded_at IS NULL")
    }

    /// Envelope rows a snapshot superseded, kept for the grace.
    pub fn superseded_envelopes(&self) -> i64 {
        count_where(&self.db, "envelopes", "superseded_at IS NOT NULL")
    }
}

pub fn count_rows(db: &Path, table: &str) -> i64 {
    count_where(db, table, "1")
}

pub fn count_where(db: &Path, table: &str, condition: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    conn.query_row(
        &format!("SELECT count(*) FROM {table} WHERE {condition}"),
        [],
        |r| r.get(0),
    )
    .expect("count")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not the expected JSON: {e}: {:?}",
                self.status, self.body
            )
        })
    }

    /// The error body, checking status and kind.
    pub fn error(&self, status: u16, kind: &str) -> ErrorBody {
        assert_eq!(
            self.status,
            status,
            "status; body {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        let e: ErrorBody = self.json();
        assert_eq!(e.error, kind, "kind; message {:?}", e.message);
        e
    }
}

/// A minimal HTTP/1.1 client: one connection per request.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    /// The loopback address to connect from (127.0.0.1 if none).
    pub source: Option<IpAddr>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client { addr, source: None }
    }

    /// A TCP connection to the relay, from `source` if set.
    pub async fn connect(&self) -> TcpStream {
        match self.source {
            None => TcpStream::connect(self.addr).await.expect("connect"),
            Some(ip) => {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .expect("bind the source address");
                socket.connect(self.addr).await.expect("connect")
            }
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&Secret>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        within(&format!("{method} {path}"), async {
            let stream = self.connect().await;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "relay.test");
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {}", t.expose()));
            }
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let req = req.body(Full::new(Bytes::from(body))).expect("request");
            let resp = sender.send_request(req).await.expect("send request");
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .expect("read body")
                .to_bytes();
            Answer {
                status,
                content_type,
                headers,
                body,
            }
        })
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&Secret>) -> Answer {
        self.send("GET", path, token, None, Vec::new()).await
    }

    pub async fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        token: Option<&Secret>,
        body: &T,
    ) -> Answer {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send("POST", path, token, Some("application/json"), bytes)
            .await
    }

    pub async fn sync_raw(&self, token: &Secret, body: Vec<u8>) -> Answer {
        self.send(
            "POST",
            "/v1/sync",
            Some(token),
            Some(SYNC_CONTENT_TYPE),
            body,
        )
        .await
    }

    /// A sync that must succeed (members and roster asked from the start).
    pub async fn sync(
        &self,
        token: &Secret,
        cursor: u64,
        push: Vec<Envelope>,
        max_bytes: u32,
    ) -> SyncResponse {
        self.sync_with(token, request(cursor, push, max_bytes))
            .await
    }

    /// A sync of this request that must succeed.
    pub async fn sync_with(&self, token: &Secret, req: SyncRequest) -> SyncResponse {
        let a = self.sync_raw(token, encode(&req)).await;
        assert_eq!(
            a.status,
            200,
            "sync failed: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.content_type.as_deref(), Some(SYNC_CONTENT_TYPE));
        decode("sync response", &a.body).expect("decodable sync response")
    }

    /// Pulls from `cursor` until `more` is false, asking for member changes
    /// past the ones already received, as a device does; returns every page.
    pub async fn pull_all(
        &self,
        token: &Secret,
        mut cursor: u64,
        max_bytes: u32,
    ) -> (Vec<SyncResponse>, u64) {
        let mut pages = Vec::new();
        let mut members_since = 0;
        loop {
            let req = SyncRequest {
                members_since,
                ..request(cursor, Vec::new(), max_bytes)
            };
            let page = self.sync_with(token, req).await;
            members_since = page.members.last().map_or(members_since, |m| m.seq);
            assert!(page.cursor >= cursor, "the cursor never goes back");
            cursor = page.cursor;
            let more = page.more;
            pages.push(page);
            if !more {
                return (pages, cursor);
            }
            assert!(pages.len() < 10_000, "pulling does not end");
        }
    }

    pub async fn invite(&self, token: &Secret, role: Role, ttl_secs: u64) -> Answer {
        self.post_json(
            "/v1/invites",
            Some(token),
            &InviteRequest {
                role,
                ttl_secs,
                key_check: None,
            },
        )
        .await
    }

    pub async fn members(&self, token: &Secret) -> MembersResponse {
        let a = self.get("/v1/members", Some(token)).await;
        assert_eq!(a.status, 200);
        a.json()
    }

    /// `GET /v1/roster`.
    pub async fn roster(&self, token: &Secret) -> Answer {
        self.get("/v1/roster", Some(token)).await
    }

    pub async fn revoke(&self, token: &Secret, device_id: &str) -> Answer {
        self.send(
            "POST",
            &format!("/v1/devices/{device_id}/revoke"),
            Some(token),
            None,
            Vec::new(),
        )
        .await
    }
}

/// A team as the devices know it.
pub struct Team {
    pub id: TeamId,
    pub key: TeamKey,
    pub lead_token: Secret,
}

impl Team {
    /// Creates a team in the relay's database, as the operator would.
    pub fn create(relay: &TestRelay, name: &str) -> Team {
        let created = heartbridge_relay::create_team(&relay.db, name).expect("create team");
        Team {
            id: TeamId::from_hex(&created.team_id).expect("hex team id"),
            key: TeamKey::generate(),
            lead_token: created.lead_token,
        }
    }

    /// An enrollment of a device holding `secret`, as role `role`.
    pub fn enroll_request_as(
        &self,
        token: &Secret,
        key: &TeamKey,
        name: &str,
        secret: &DeviceSecret,
        role: Role,
    ) -> EnrollRequest {
        let public = secret.public();
        EnrollRequest {
            team_id: self.id.to_hex(),
            token: token.clone(),
            key_check: key.check_value(),
            name_sealed: seal_name(key, &self.id, name),
            enrollment_id: None,
            sign_pk: hex::encode(public.sign),
            kx_pk: hex::encode(public.kx),
            epoch: 1,
            proof: hex::encode(join_proof(key, &self.id, &public, role)),
        }
    }

    /// An enrollment of a fresh device (as a volunteer).
    pub fn enroll_request(&self, token: &Secret, key: &TeamKey, name: &str) -> EnrollRequest {
        self.enroll_request_as(token, key, name, &DeviceSecret::generate(), Role::Volunteer)
    }

    pub async fn claim(&self, c: &Client, name: &str) -> EnrolledDevice {
        let secret = DeviceSecret::generate();
        let a = c
            .post_json(
                "/v1/claim",
                None,
                &self.enroll_request_as(&self.lead_token, &self.key, name, &secret, Role::Lead),
            )
            .await;
        assert_eq!(
            a.status,
            200,
            "claim: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        let r: EnrollResponse = a.json();
        assert_eq!(r.role, Role::Lead);
        EnrolledDevice::new(r, secret)
    }

    /// `inviter` invites a device of `role`, which joins with the right key.
    pub async fn add(
        &self,
        c: &Client,
        inviter: &EnrolledDevice,
        role: Role,
        name: &str,
    ) -> EnrolledDevice {
        let a = c.invite(&inviter.token, role, 0).await;
        assert_eq!(
            a.status,
            200,
            "invite: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        let invite: InviteResponse = a.json();
        let secret = DeviceSecret::generate();
        let a = c
            .post_json(
                "/v1/join",
                None,
                &self.enroll_request_as(&invite.token, &self.key, name, &secret, role),
            )
            .await;
        assert_eq!(
            a.status,
            200,
            "join: {:?}",
            String::from_utf8_lossy(&a.body)
        );
        let r: EnrollResponse = a.json();
        assert_eq!(r.role, role);
        EnrolledDevice::new(r, secret)
    }

    /// Seals a change for `doc` holding `text`, unsigned.
    pub fn seal_change(&self, doc: [u8; 16], text: &[u8]) -> Envelope {
        Envelope::seal(
            &self.key,
            &self.id,
            doc,
            EnvelopeKind::Change,
            DocKindTag::Case,
            text,
        )
        .expect("seal")
    }

    /// A change for `doc` holding `text`, signed by `by`.
    pub fn change(&self, by: &EnrolledDevice, doc: [u8; 16], text: &[u8]) -> Envelope {
        by.sign(self, self.seal_change(doc, text))
    }

    /// A snapshot of `doc` superseding its envelopes up to `covers`, signed
    /// by `by`.
    pub fn snapshot(
        &self,
        by: &EnrolledDevice,
        doc: [u8; 16],
        text: &[u8],
        covers: u64,
    ) -> Envelope {
        let mut env = Envelope::seal(
            &self.key,
            &self.id,
            doc,
            EnvelopeKind::Snapshot,
            DocKindTag::Case,
            text,
        )
        .expect("seal");
        env.covers = covers;
        by.sign(self, env)
    }

    /// A change whose ciphertext is about `n` bytes (incompressible
    /// content), signed by `by`.
    pub fn change_of_size(&self, by: &EnrolledDevice, doc: [u8; 16], n: usize) -> Envelope {
        let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
        self.change(by, doc, &bytes)
    }
}

/// An enrolled device's credentials and keys.
#[derive(Debug, Clone)]
pub struct EnrolledDevice {
    pub id: String,
    pub token: Secret,
    pub role: Role,
    pub secret: DeviceSecret,
}

impl EnrolledDevice {
    pub fn new(r: EnrollResponse, secret: DeviceSecret) -> Self {
        EnrolledDevice {
            id: r.device_id,
            token: r.device_token,
            role: r.role,
            secret,
        }
    }

    /// The relay's id of this device, as bytes.
    pub fn device_id(&self) -> [u8; 16] {
        hex::decode(&self.id)
            .expect("hex device id")
            .try_into()
            .expect("16 bytes")
    }

    /// Signs `env` as this device of `team` (after its `covers` is set).
    pub fn sign(&self, team: &Team, mut env: Envelope) -> Envelope {
        env.sign(&team.id, self.device_id(), &self.secret);
        env
    }
}

/// A sync request from `cursor`, asking for every member and the roster.
pub fn request(cursor: u64, push: Vec<Envelope>, max_bytes: u32) -> SyncRequest {
    SyncRequest {
        v: PROTOCOL_VERSION,
        cursor,
        push,
        max_bytes,
        members_since: 0,
        roster_version: 0,
        roster: None,
    }
}

/// A team with a claimed lead and `n` volunteers.
pub async fn team_with_volunteers(
    relay: &TestRelay,
    n: usize,
) -> (Team, EnrolledDevice, Vec<EnrolledDevice>) {
    let c = relay.client();
    let team = Team::create(relay, "Hotline");
    let lead = team.claim(&c, "Lead").await;
    let mut vols = Vec::new();
    for i in 0..n {
        vols.push(
            team.add(&c, &lead, Role::Volunteer, &format!("Volunteer {i}"))
                .await,
        );
    }
    (team, lead, vols)
}

/// A child process (the relay binary) killed when dropped, so a failing
/// test leaves no relay running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads an HTTP/1.1 response head from `s` (bytes already read in `buf`,
/// and left there past the head); returns (status, head).
pub async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status line");
            return (status, head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the relay closes the connection (a reset counts as closed);
/// returns everything read. Fails the test after [`WAIT`].
pub async fn read_until_closed(s: &mut TcpStream, what: &str) -> Vec<u8> {
    within(what, async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
}

/// A random document id.
pub fn doc() -> [u8; 16] {
    rand::random()
}

/// A sync through the relay at `addr` that may fail: `None` if the relay is
/// gone (connection refused or closed before an answer), else the status and
/// the decoded answer when it is 200.
pub async fn try_sync(
    addr: SocketAddr,
    token: &Secret,
    body: Vec<u8>,
) -> Option<(u16, Option<SyncResponse>)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/v1/sync")
        .header("host", "relay.test")
        .header("authorization", format!("Bearer {}", token.expose()))
        .header("content-type", SYNC_CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    let decoded = (status == 200).then(|| decode("sync response", &bytes).expect("sync response"));
    Some((status, decoded))
}

/// A `heartbridge-relay serve` child process (the real binary) listening on
/// 127.0.0.1 port 0. Killed with SIGKILL when dropped.
pub struct RelayProcess {
    child: KillOnDrop,
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts `heartbridge-relay serve --db DB ARGS…` and waits until it
    /// announces its address on stderr (which is drained from then on, so
    /// the relay never blocks on a full pipe). Blocking.
    pub fn start(db: &str, args: &[&str]) -> RelayProcess {
        use std::io::BufRead;
        let mut child = KillOnDrop(
            std::process::Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
                .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
                .args(args)
                .env_remove("HEARTBRIDGE_RELAY_DB")
                .env_remove("HEARTBRIDGE_RELAY_UPSTREAM")
                .env("HEARTBRIDGE_RELAY_LOG", "warn")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn heartbridge-relay serve"),
        );
        let stderr = child.0.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line.strip_prefix("listening on ") {
                    if let (Some(tx), Ok(addr)) = (tx.take(), a.parse()) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("heartbridge-relay serve announces its address");
        RelayProcess { child, addr }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Kills the process with SIGKILL (no shutdown of any kind: open
    /// connections, to devices and to the database, are closed by the
    /// kernel) and reaps it. Blocking.
    pub fn kill(mut self) {
        // std's Child::kill is SIGKILL on Unix.
        self.child.0.kill().expect("SIGKILL the relay");
        let status = self.child.0.wait().expect("reap the relay");
        assert!(!status.success(), "the relay was killed: {status:?}");
    }
}
