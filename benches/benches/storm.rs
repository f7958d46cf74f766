//! The shift-end storm: many devices, each holding 20 case documents of
//! realistic size, all start a full sync at the same moment against ONE
//! relay process (or several on one PostgreSQL database; the release
//! binary, a child process, so that its peak memory is its own) on this
//! machine, which the load generator shares.
//!
//! Setup, before the clock starts: every device's 20 documents are built
//! as real Automerge documents (a case with 2–4 contacts of ~300 Chinese
//! characters cut from the sample handbooks, one commit per step as the
//! device's store makes them, the changes of a document concatenated as the
//! sync engine does), once for the largest storm; for each storm, teams of
//! 10 devices are created with `heartbridge-relay team create --json`,
//! every device is enrolled through the relay's JSON endpoints (claim for
//! the lead, invite + join for the nine others), each with its own keys
//! (`DeviceSecret`) and the join proof under the team key; its documents are
//! sealed with its team's key into one change envelope each, signed with its
//! device key (the relay checks every signature of a push), and its first
//! request body is encoded.
//!
//! Then every device is released at once and does what a device does at
//! shift end: one `POST /v1/sync` pushing its 20 envelopes with cursor 0,
//! then pulls while the relay says `more`, over one keep-alive connection
//! (hyper), each device its own TCP connection.
//!
//! Run: `cargo build --release -p heartbridge-relay &&
//! cargo bench -p heartbridge-benches --bench storm`.
//!
//! On PostgreSQL (`HB_STORM_DB=postgres`), each storm starts a throw-away
//! cluster (`heartbridge-pgtest`, Debian's binaries) tuned with `ALTER
//! SYSTEM` (see `PG_SETTINGS`; durability untouched), creates the teams in
//! its database through the relay library, starts `HB_STORM_RELAYS` relay
//! processes on that one database, enrolls every device through relay A
//! and releases the devices round-robin over the relays (a team's devices
//! are split, as behind a load balancer). It reports each relay's VmHWM and
//! CPU seconds, the PostgreSQL server's CPU seconds (postmaster and its
//! children, from /proc) and its statements over 1 s, and counts the
//! envelopes in the database with `psql`. The storage-alone phase is
//! SQLite's only and is skipped there.
//!
//! Open files: the bench holds one socket per device, and with one relay
//! that relay holds as many; the bench refuses to start below devices +
//! 256 and says which `ulimit -n` to set (20,000 covers 10,000 devices).
//!
//! - `HB_STORM_DEVICES`: storms to run, default `100,1000,2000`
//! - `HB_STORM_DOCS`: documents per device, default 20
//! - `HB_STORM_DISTINCT`: devices whose documents are built, default 2,000;
//!   device `d` holds device `d mod N`'s documents, sealed under its own
//!   team key and signed by itself (distinct envelopes; the relay sees only
//!   ciphertext, so the storm is the same; building 200,000 Automerge
//!   documents for 10,000 devices took 361 s of setup)
//! - `HB_STORM_TEAM`: devices per team, default 10 (a hotline or venue
//!   shift team as the volunteers organise them; it also sets how much each
//!   device pulls: its teammates' envelopes)
//! - `HB_STORM_PULL`: 1; 0 to diagnose the push alone (the first request
//!   asks for a 1-byte page and no pull rounds follow)
//! - `HB_STORM_RELAY_LOG`: the relay's log filter, default `info` as in
//!   production (one line per request; the bench reads them for the
//!   relay-side time of each request)
//! - `HB_STORM_STORAGE`: 1; 0 to skip the phase that times the relay's
//!   SQLite storage alone (the same envelopes committed and pulled through
//!   `heartbridge_relay::SqliteStorage` without HTTP) after each storm
//! - `HB_STORM_DB`: `sqlite` (default: one relay on one SQLite file) or
//!   `postgres`
//! - `HB_STORM_RELAYS`: relay processes on the one database, default 1
//!   (more than 1 only with `postgres`)
//! - `HB_STORM_PG_STATS`: 0; 1 loads `pg_stat_statements` into the
//!   throw-away cluster and lists the 16 statements that took the most
//!   server time during each storm
//! - `HB_STORM_MAX_LOAD` (1.5), `HB_STORM_LOAD_WAIT` (300): before each
//!   storm, wait up to that many seconds for the 1-minute load average to
//!   fall below that

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit};
use heartbridge_benches::{
    cpu_secs, create_team, fd_limit, handbook_paragraphs, listen_backlog, log_field, note_text,
    percentile, tcp_counters, wait_for_quiet, Conn, RelayProcess,
};
use heartbridge_core::{Channel, Group, NewCase, Risk};
use heartbridge_pgtest::PgCluster;
use heartbridge_proto::{
    decode, encode, identity::join_proof, seal_name, DeviceSecret, DocKindTag, EnrollRequest,
    EnrollResponse, Envelope, EnvelopeKind, InviteRequest, InviteResponse, Role, Secret,
    SyncRequest, SyncResponse, TeamId, TeamKey, PROTOCOL_VERSION, SYNC_CONTENT_TYPE,
};
use heartbridge_relay::Database;
use hyper::body::Bytes;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Semaphore};

/// The longest one device's whole sync may take before it counts as failed.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest one enrollment request may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `HB_STORM_PG_STATS=1`: load pg_stat_statements and list the statements
/// that took PostgreSQL's time during each storm.
fn pg_stats() -> bool {
    env_or("HB_STORM_PG_STATS", 0u8) != 0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// An enrolled device, ready to go.
struct Device {
    token: Arc<str>,
    /// The encoded first request: cursor 0, its 20 envelopes.
    body: Bytes,
}

/// What one device saw.
#[derive(Default)]
struct Outcome {
    connect: Duration,
    /// First response received: the relay acknowledged the push.
    pushed: Duration,
    /// Last pull page received.
    done: Duration,
    requests: usize,
    acked: usize,
    pulled: usize,
    bytes_down: usize,
    error: Option<String>,
    status: Option<u16>,
}

async fn post_json<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    path: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> T {
    let body = Bytes::from(serde_json::to_vec(body).expect("json"));
    let (status, answer) = tokio::time::timeout(
        SETUP_TIMEOUT,
        conn.post(path, token, "application/json", body),
    )
    .await
    .unwrap_or_else(|_| panic!("{path} timed out"))
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An enrolled device's credentials: its bearer token, the relay's id of
/// it (the `author` of its envelopes) and its keys.
struct Enrolled {
    token: Arc<str>,
    id: [u8; 16],
    secret: DeviceSecret,
}

impl Enrolled {
    fn new(r: EnrollResponse, secret: DeviceSecret) -> Self {
        Enrolled {
            token: Arc::from(r.device_token.expose()),
            id: device_id(&r.device_id),
            secret,
        }
    }
}

/// The relay's 32-hex-digit device id as bytes.
fn device_id(hex: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    assert_eq!(hex.len(), 32, "device id");
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex device id");
    }
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An enrollment as a device sends it: fresh Ed25519 and X25519 keys and
/// the join proof under the team key (epoch 1).
fn enroll_request(
    team: &TeamId,
    key: &TeamKey,
    token: Secret,
    name: &str,
    role: Role,
) -> (EnrollRequest, DeviceSecret) {
    let secret = DeviceSecret::generate();
    let public = secret.public();
    let req = EnrollRequest {
        team_id: team.to_hex(),
        token,
        key_check: key.check_value(),
        name_sealed: seal_name(key, team, name),
        enrollment_id: None,
        sign_pk: hex(&public.sign),
        kx_pk: hex(&public.kx),
        epoch: 1,
        proof: hex(&join_proof(key, team, &public, role)),
    };
    (req, secret)
}

/// Claims a team and enrolls `size - 1` volunteers, each with its own keys.
async fn enroll_team(
    addr: SocketAddr,
    team: TeamId,
    key: TeamKey,
    lead_secret: Secret,
    size: usize,
) -> Vec<Enrolled> {
    let mut conn = Conn::connect(addr).await.expect("connect for enrollment");
    let (req, secret) = enroll_request(&team, &key, lead_secret, "组长", Role::Lead);
    let lead: EnrollResponse = post_json(&mut conn, "/v1/claim", None, &req).await;
    let lead_token = lead.device_token.expose().to_owned();
    let mut devices = vec![Enrolled::new(lead, secret)];
    for i in 1..size {
        let invite: InviteResponse = post_json(
            &mut conn,
            "/v1/invites",
            Some(&lead_token),
            &InviteRequest {
                role: Role::Volunteer,
                ttl_secs: 0,
                key_check: None,
            },
        )
        .await;
        let (req, secret) = enroll_request(
            &team,
            &key,
            invite.token,
            &format!("志愿者{i}"),
            Role::Volunteer,
        );
        let joined: EnrollResponse = post_json(&mut conn, "/v1/join", None, &req).await;
        devices.push(Enrolled::new(joined, secret));
    }
    devices
}

/// Commits like the device's store does and appends the change's bytes.
fn commit(
    doc: &mut AutoCommit,
    what: &str,
    now: i64,
    bytes: &mut Vec<u8>,
    heads: &[automerge::ChangeHash],
) {
    let message = serde_json::json!({ "by": "志愿者", "what": what }).to_string();
    doc.commit_with(
        CommitOptions::default()
            .with_message(message)
            .with_time(now / 1000),
    );
    bytes.extend_from_slice(&doc.save_after(heads));
}

/// One case document as a device's store would write it: one commit per
/// step, the change bytes of each commit concatenated (as the sync engine
/// concatenates a document's outbox rows into one envelope).
fn case_changes(actor: &ActorId, paragraphs: &[String], rng: &mut impl Rng) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(actor.clone());
    let mut bytes = Vec::new();
    let now = heartbridge_core::now_ms();
    let groups = [Group::LeftBehind, Group::Migrant, Group::ExamStress];
    let heads = doc.get_heads();
    heartbridge_core::docs::create(
        &mut doc,
        &NewCase {
            alias: format!("个案{}", rng.random_range(100..1000)),
            group: groups[rng.random_range(0..groups.len())],
            risk: Risk::Low,
        },
        "志愿者",
        now,
    )
    .expect("create case");
    commit(&mut doc, "case opened", now, &mut bytes, &heads);
    for _ in 0..rng.random_range(2..=4) {
        let heads = doc.get_heads();
        heartbridge_core::docs::add_contact(
            &mut doc,
            Channel::Hotline,
            &note_text(paragraphs, 300, rng),
            Some(rng.random_range(10..60)),
            "志愿者",
            now,
        )
        .expect("add contact");
        commit(
            &mut doc,
            "contact logged (hotline)",
            now,
            &mut bytes,
            &heads,
        );
    }
    bytes
}

/// Every device's documents as Automerge change bytes (one entry per
/// document), built once for the largest storm, on every core.
fn build_documents(devices: usize, docs: usize, paragraphs: &[String]) -> Vec<Vec<Vec<u8>>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = devices.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..devices)
            .step_by(chunk)
            .map(|first| {
                s.spawn(move || {
                    (first..(first + chunk).min(devices))
                        .map(|d| {
                            let mut rng = rand::rngs::StdRng::seed_from_u64(d as u64);
                            let actor = ActorId::random();
                            (0..docs)
                                .map(|_| case_changes(&actor, paragraphs, &mut rng))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("build thread"))
            .collect()
    })
}

/// A device's documents sealed with its team key and signed with its
/// device key: its first request body and the sealed bytes.
fn seal_device(
    team: &TeamId,
    key: &TeamKey,
    device: &Enrolled,
    documents: &[Vec<u8>],
    max_bytes: u32,
) -> (Bytes, usize) {
    let push: Vec<Envelope> = documents
        .iter()
        .map(|bytes| {
            let mut env = Envelope::seal(
                key,
                team,
                rand::random(),
                EnvelopeKind::Change,
                DocKindTag::Case,
                bytes,
            )
            .expect("seal");
            env.sign(team, device.id, &device.secret);
            env
        })
        .collect();
    let sealed = push.iter().map(|e| e.ciphertext.len()).sum();
    // A device's first sync asks for every member's keys (it needs them to
    // check what it pulls) and for the roster.
    let body = encode(&SyncRequest {
        v: PROTOCOL_VERSION,
        cursor: 0,
        push,
        max_bytes,
        members_since: 0,
        roster_version: 0,
        roster: None,
    });
    (Bytes::from(body), sealed)
}

async fn device_sync(
    addr: SocketAddr,
    device: Device,
    expect: usize,
    pull: bool,
    ready: Arc<AtomicUsize>,
    mut start: watch::Receiver<Option<Instant>>,
) -> Outcome {
    ready.fetch_add(1, Ordering::SeqCst);
    let t0 = match start.wait_for(Option::is_some).await {
        Ok(v) => v.expect("set"),
        Err(_) => {
            return Outcome {
                error: Some("never released".into()),
                ..Default::default()
            }
        }
    };
    let mut out = Outcome::default();
    let run = async {
        let mut conn = Conn::connect(addr).await.map_err(|e| e.to_string())?;
        out.connect = t0.elapsed();
        let mut body = device.body;
        let mut first = true;
        let mut members_since = 0;
        loop {
            out.requests += 1;
            let (status, answer) = conn
                .post("/v1/sync", Some(&device.token), SYNC_CONTENT_TYPE, body)
                .await
                .map_err(|e| e.to_string())?;
            if !(200..300).contains(&status) {
                out.status = Some(status);
                return Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&answer[..answer.len().min(200)])
                ));
            }
            out.bytes_down += answer.len();
            let resp: SyncResponse = decode("sync response", &answer).map_err(|e| e.to_string())?;
            if first {
                out.pushed = t0.elapsed();
                out.acked = resp.acked.len();
                if resp.acked.len() != expect {
                    return Err(format!("{} of {expect} acked", resp.acked.len()));
                }
                first = false;
            }
            out.pulled += resp.pull.len();
            members_since = resp.members.last().map_or(members_since, |m| m.seq);
            if !resp.more || !pull {
                break;
            }
            body = Bytes::from(encode(&SyncRequest {
                v: PROTOCOL_VERSION,
                cursor: resp.cursor,
                push: Vec::new(),
                max_bytes: 0,
                members_since,
                // No roster is ever uploaded in the storm.
                roster_version: 0,
                roster: None,
            }));
        }
        out.done = t0.elapsed();
        Ok::<(), String>(())
    };
    match tokio::time::timeout(DEVICE_TIMEOUT, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.error = Some(e),
        Err(_) => out.error = Some(format!("no answer within {DEVICE_TIMEOUT:?}")),
    }
    out
}

/// The relay's SQLite storage alone, without HTTP: the same envelopes
/// committed in batches as the relay's writer makes them (at most 1,024
/// jobs or 32 MB each), then every device pulls its team's log to the end
/// in 256 KB pages, on one thread. Says how much of the storm is SQLite.
fn storage_alone(teams: &[TeamId], team_of: &[usize], bodies: &[Bytes]) -> String {
    use heartbridge_relay::{
        DeviceId, DeviceKeys, Enrollment, NewInvite, PullQuery, PushJob, SqliteStorage, Storage,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = SqliteStorage::open(&dir.path().join("alone.db")).expect("open storage");
    let now = heartbridge_core::now_ms() / 1000;
    let enrollment = |team: TeamId, token: &Secret| Enrollment {
        team,
        token_hash: token.hash(),
        key_check: "00".into(),
        name_sealed: "x".into(),
        enrollment_id: None,
        device: DeviceId::random(),
        device_token_hash: Secret::generate().hash(),
        keys: {
            let public = DeviceSecret::generate().public();
            DeviceKeys {
                sign_pk: public.sign,
                kx_pk: public.kx,
                epoch: 1,
                proof: [0; 32],
            }
        },
        now,
    };
    let mut leads = Vec::new();
    for (i, &team) in teams.iter().enumerate() {
        let lead = Secret::generate();
        storage
            .create_team(team, &format!("alone {i}"), &lead.hash(), now)
            .expect("create team");
        leads.push(storage.claim(&enrollment(team, &lead)).expect("claim"));
    }
    let mut members: Vec<Option<heartbridge_relay::Device>> = vec![None; teams.len()];
    let devices: Vec<heartbridge_relay::Device> = team_of
        .iter()
        .map(|&t| {
            if members[t].is_none() {
                members[t] = Some(leads[t]);
                return leads[t];
            }
            let invite = Secret::generate();
            storage
                .create_invite(&NewInvite {
                    team: teams[t],
                    role: Role::Volunteer,
                    token_hash: invite.hash(),
                    created_by: leads[t].id,
                    created_at: now,
                    expires_at: now + 3600,
                    key_check: None,
                })
                .expect("invite");
            storage.join(&enrollment(teams[t], &invite)).expect("join")
        })
        .collect();
    let jobs: Vec<PushJob> = devices
        .iter()
        .zip(bodies)
        .map(|(d, body)| PushJob {
            team: d.team,
            device: d.id,
            envelopes: decode::<SyncRequest>("body", body).expect("body").push,
            roster: None,
            now,
        })
        .collect();
    let bytes: usize = jobs.iter().map(PushJob::bytes).sum();
    let envelopes: usize = jobs.iter().map(|j| j.envelopes.len()).sum();
    let t = Instant::now();
    let cpu = cpu_secs("/proc/thread-self/stat");
    let mut batches = 0;
    let mut rest = &jobs[..];
    while !rest.is_empty() {
        let mut k = 0;
        let mut b = 0;
        while k < rest.len() && k < 1024 && b < 32 * 1024 * 1024 {
            b += rest[k].bytes();
            k += 1;
        }
        for r in storage.commit(&rest[..k]).expect("commit") {
            r.expect("job stored");
        }
        batches += 1;
        rest = &rest[k..];
    }
    let commit = t.elapsed();
    let commit_cpu = cpu_secs("/proc/thread-self/stat") - cpu;
    let t = Instant::now();
    let (mut pages, mut pulled, mut pulled_bytes) = (0, 0, 0);
    for d in &devices {
        let (mut cursor, mut members_since) = (0, 0);
        loop {
            let page = storage
                .pull(&PullQuery {
                    team: d.team,
                    device: d.id,
                    cursor,
                    page_bytes: 256 * 1024,
                    members_since,
                    roster_version: 0,
                })
                .expect("pull");
            members_since = page.members.last().map_or(members_since, |m| m.seq);
            pages += 1;
            pulled += page.pull.len();
            pulled_bytes += page
                .pull
                .iter()
                .map(|p| p.envelope.ciphertext.len())
                .sum::<usize>();
            cursor = page.cursor;
            if !page.more {
                break;
            }
        }
    }
    let pull = t.elapsed();
    format!(
        "SQLite storage alone (no HTTP, one thread): {envelopes} envelopes ({:.1} MB) committed in {batches} batches in {commit:.2?} ({:.0} MB/s; {commit_cpu:.2} s of it on the CPU, the rest waiting for the disk); then every device pulled its team's whole log: {pages} pages, {pulled} envelopes ({:.1} MB) in {pull:.2?} ({:.0} MB/s)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / commit.as_secs_f64(),
        pulled_bytes as f64 / 1e6,
        pulled_bytes as f64 / 1e6 / pull.as_secs_f64(),
    )
}

/// "relay A", "relay B", …
fn relay_name(i: usize) -> String {
    format!("relay {}", char::from(b'A' + (i % 26) as u8))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Selected lines of the relay's /metrics.
async fn metrics(addr: SocketAddr, token: Option<&str>) -> Vec<String> {
    let Ok(mut conn) = Conn::connect(addr).await else {
        return vec!["(metrics unreachable)".into()];
    };
    let Ok(Ok((200, body))) =
        tokio::time::timeout(Duration::from_secs(10), conn.get_with("/metrics", token)).await
    else {
        return vec!["(metrics failed)".into()];
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with("heartbridge_requests_total")
                    || l.starts_with("heartbridge_commits_total")
                    || l.starts_with("heartbridge_committed_syncs_total")
                    || l.starts_with("heartbridge_envelopes_")
                    || l.starts_with("heartbridge_bytes_")
                    || l.starts_with("heartbridge_sync_duration_seconds_bucket"))
        })
        .map(str::to_owned)
        .collect()
}

/// Where the relays keep their state.
enum Backend {
    /// One SQLite file (one relay).
    Sqlite {
        _dir: tempfile::TempDir,
        db: std::path::PathBuf,
    },
    /// One database of a throw-away PostgreSQL cluster, shared by the relays.
    Postgres { cluster: PgCluster, url: String },
}

/// The settings the storm's PostgreSQL cluster runs with (on top of
/// `heartbridge-pgtest`'s `max_wal_size=2GB`, `shared_buffers=128MB`),
/// set with `ALTER SYSTEM` and a restart before the relays start. Durability
/// is untouched: `fsync`, `synchronous_commit` and `full_page_writes` stay on
/// (the relay refuses `synchronous_commit=off`).
const PG_SETTINGS: &[(&str, &str)] = &[
    // The whole storm's log (~1 GB of envelopes at 10,000 devices) mostly
    // fits; this box has 24 GB.
    ("shared_buffers", "1GB"),
    // 2 relays × (8 storage threads + 2) connections, the bench's, psql.
    ("max_connections", "60"),
    // No checkpoint in the middle of a storm.
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "30min"),
    ("wal_buffers", "64MB"),
    // Statements slower than 1 s are written to the server log, whose
    // count the bench reports.
    ("log_min_duration_statement", "1000"),
];

impl Backend {
    fn start(postgres: bool) -> Backend {
        if !postgres {
            let dir = tempfile::tempdir().expect("temp dir");
            let db = dir.path().join("relay.db");
            return Backend::Sqlite { _dir: dir, db };
        }
        let cluster = PgCluster::start();
        let url = cluster.new_database();
        for (name, value) in PG_SETTINGS {
            cluster.psql(&url, &format!("ALTER SYSTEM SET {name} = '{value}'"));
        }
        if pg_stats() {
            cluster.psql(
                &url,
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
            );
        }
        cluster.restart("fast");
        if pg_stats() {
            cluster.psql(&url, "CREATE EXTENSION pg_stat_statements");
        }
        Backend::Postgres { cluster, url }
    }

    /// The relays' `--db`.
    fn db_arg(&self) -> &std::ffi::OsStr {
        match self {
            Backend::Sqlite { db, .. } => db.as_os_str(),
            Backend::Postgres { url, .. } => std::ffi::OsStr::new(url.as_str()),
        }
    }

    /// `n` teams as the operator creates them: `heartbridge-relay team
    /// create --json` per team on SQLite; on PostgreSQL the same through the
    /// relay library over one connection pool (a process per team would
    /// open a pool per team).
    fn create_teams(&self, n: usize) -> Vec<(TeamId, TeamKey, Secret)> {
        match self {
            Backend::Sqlite { db, .. } => (0..n)
                .map(|i| {
                    let created = create_team(db, &format!("storm team {i}"));
                    (
                        TeamId::from_hex(&created.team_id).expect("team id"),
                        TeamKey::generate(),
                        created.lead_token,
                    )
                })
                .collect(),
            Backend::Postgres { url, .. } => {
                let db = Database::parse(url).expect("a PostgreSQL URL");
                let storage = heartbridge_relay::open_database(&db, 2).expect("open PostgreSQL");
                let now = heartbridge_relay::unix_now();
                (0..n)
                    .map(|i| {
                        let team = TeamId::random();
                        let lead = Secret::generate();
                        storage
                            .create_team(team, &format!("storm team {i}"), &lead.hash(), now)
                            .expect("create team");
                        // As `team create` prints it: TEAMID.SECRET.
                        let token =
                            Secret::from_string(format!("{}.{}", team.to_hex(), lead.expose()));
                        (team, TeamKey::generate(), token)
                    })
                    .collect()
            }
        }
    }

    /// (envelopes, distinct envelopes, distinct authors) the database holds.
    fn count(&self) -> (i64, i64, i64) {
        const SQL: [&str; 3] = [
            "SELECT count(*) FROM envelopes",
            "SELECT count(*) FROM (SELECT DISTINCT team_id, content_id FROM envelopes) AS e",
            "SELECT count(DISTINCT author_device) FROM envelopes",
        ];
        let mut v = [0i64; 3];
        match self {
            Backend::Sqlite { db, .. } => {
                let conn = rusqlite::Connection::open(db).expect("open the relay database");
                for (v, sql) in v.iter_mut().zip(SQL) {
                    *v = conn
                        .query_row(sql, [], |r| r.get(0))
                        .expect("count envelopes");
                }
            }
            Backend::Postgres { cluster, url } => {
                for (v, sql) in v.iter_mut().zip(SQL) {
                    *v = cluster.psql(url, sql).parse().expect("a count");
                }
            }
        }
        (v[0], v[1], v[2])
    }

    /// CPU seconds of the PostgreSQL server so far: the postmaster, its
    /// living children (backends, WAL writer, checkpointer, …) and the
    /// children it has reaped.
    fn pg_cpu(&self) -> f64 {
        let Backend::Postgres { cluster, .. } = self else {
            return 0.0;
        };
        let pid_file =
            std::fs::read_to_string(cluster.dir().join("data/postmaster.pid")).unwrap_or_default();
        let Some(master) = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            return 0.0;
        };
        let mut total = stat_ticks(master, true);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if parent(pid) == Some(master) {
                total += stat_ticks(pid, false);
            }
        }
        total as f64 / 100.0
    }

    /// Forgets the statements counted so far (`HB_STORM_PG_STATS=1`).
    fn pg_stats_reset(&self) {
        if let (Backend::Postgres { cluster, url }, true) = (self, pg_stats()) {
            cluster.psql(url, "SELECT pg_stat_statements_reset()");
            cluster.psql(url, "SELECT pg_stat_reset_shared('wal')");
            cluster.psql(url, "SELECT pg_stat_reset_shared('bgwriter')");
        }
    }

    /// The statements that took the server's time since the reset, most
    /// first: calls, total and mean execution time, rows, the text's start.
    fn pg_stats_top(&self) -> Vec<String> {
        let (Backend::Postgres { cluster, url }, true) = (self, pg_stats()) else {
            return Vec::new();
        };
        let wal = cluster.psql(
            url,
            "SELECT format('%s records, %s full-page images, %s, %s writes, %s syncs', \
                    wal_records, wal_fpi, pg_size_pretty(wal_bytes), wal_write, wal_sync) FROM pg_stat_wal",
        );
        let buffers = cluster.psql(
            url,
            "SELECT format('buffers written by checkpoints %s, by the background writer %s, by backends %s', \
                    buffers_checkpoint, buffers_clean, buffers_backend) FROM pg_stat_bgwriter",
        );
        let mut lines = vec![format!("pg_stat_wal: {wal}; pg_stat_bgwriter: {buffers}")];
        lines.extend(cluster
            .psql(
                url,
                "SELECT calls, round(total_exec_time::numeric, 0), round(mean_exec_time::numeric, 3), rows, \
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 90) \
                 FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time DESC LIMIT 16",
            )
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(5, '|').collect();
                match f.as_slice() {
                    [calls, total, mean, rows, q] => format!(
                        "pg_stat_statements: {calls} calls, {total} ms total, {mean} ms mean, {rows} rows: {q}"
                    ),
                    _ => format!("pg_stat_statements: {l}"),
                }
            }));
        lines
    }

    /// Lines of the PostgreSQL server log that report a slow statement.
    fn slow_statements(&self) -> usize {
        let Backend::Postgres { cluster, .. } = self else {
            return 0;
        };
        std::fs::read_to_string(cluster.dir().join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("duration:"))
            .count()
    }
}

/// The fields after the command name of /proc/PID/stat.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid).get(1).and_then(|v| v.parse().ok())
}

/// utime + stime (and cutime + cstime with `children`) in clock ticks.
fn stat_ticks(pid: u32, children: bool) -> u64 {
    let f = stat_fields(pid);
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    t(11) + t(12) + if children { t(13) + t(14) } else { 0 }
}

/// One storm of `n` devices through `relays` relay processes; returns the
/// Markdown row and notes.
#[allow(clippy::too_many_arguments)]
fn storm(
    n: usize,
    docs: usize,
    team_size: usize,
    log: &str,
    pull: bool,
    postgres: bool,
    relays_n: usize,
    documents: &[Vec<Vec<u8>>],
) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let backend = Backend::start(postgres);

    // Teams.
    let t = Instant::now();
    let teams_n = n.div_ceil(team_size);
    let teams = backend.create_teams(teams_n);
    let teams_took = t.elapsed();

    let relays: Vec<RelayProcess> = (0..relays_n)
        .map(|_| RelayProcess::spawn(backend.db_arg(), log))
        .collect();
    let relay = &relays[0];
    let backlog = listen_backlog(relay.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Enrollment, 8 teams at a time.
    let t = Instant::now();
    let addr = relay.addr;
    let enrolled: Vec<(usize, Enrolled)> = rt.block_on(async {
        let gate = Arc::new(Semaphore::new(8));
        let mut tasks = Vec::new();
        for (i, (team, key, secret)) in teams.iter().enumerate() {
            let size = team_size.min(n - i * team_size);
            let (team, key, secret, gate) = (*team, key.clone(), secret.clone(), Arc::clone(&gate));
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.expect("gate");
                enroll_team(addr, team, key, secret, size).await
            }));
        }
        let mut all = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            for device in task.await.expect("enrollment task") {
                all.push((i, device));
            }
        }
        all
    });
    assert_eq!(enrolled.len(), n);
    let enroll_took = t.elapsed();

    // Every device's envelopes sealed with its team key and signed with its
    // device key, first request encoded.
    let t = Instant::now();
    let built: Vec<(Bytes, usize)> = enrolled
        .iter()
        .enumerate()
        .map(|(d, (team, device))| {
            let (id, key, _) = &teams[*team];
            // Push-only diagnosis: ask for a 1-byte page.
            seal_device(
                id,
                key,
                device,
                &documents[d % documents.len()],
                if pull { 0 } else { 1 },
            )
        })
        .collect();
    let seal_took = t.elapsed();
    let raw: usize = (0..n)
        .map(|d| {
            documents[d % documents.len()]
                .iter()
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum();
    let sealed: usize = built.iter().map(|b| b.1).sum();
    let body_bytes: usize = built.iter().map(|b| b.0.len()).sum();
    notes.push(format!(
        "setup: {teams_n} teams created in {teams_took:.1?}, {n} devices enrolled in {enroll_took:.1?}, {} documents sealed in {seal_took:.1?}; per document {} B of Automerge changes, {} B sealed; per device a {} B first request",
        n * docs,
        raw / (n * docs),
        sealed / (n * docs),
        body_bytes / n
    ));
    let team_of: Vec<usize> = enrolled.iter().map(|(t, _)| *t).collect();
    let bodies: Vec<Bytes> = built.iter().map(|(b, _)| b.clone()).collect();
    let devices: Vec<Device> = enrolled
        .into_iter()
        .zip(built)
        .map(|((_, device), (body, _))| Device {
            token: device.token,
            body,
        })
        .collect();

    let load = wait_for_quiet(
        env_or("HB_STORM_MAX_LOAD", 1.5),
        Duration::from_secs(env_or("HB_STORM_LOAD_WAIT", 300)),
    );
    let rss_before: Vec<u64> = relays.iter().map(|r| r.status_kb("VmRSS:")).collect();
    let hwm_before: Vec<u64> = relays.iter().map(|r| r.status_kb("VmHWM:")).collect();
    let relay_cpu_before: Vec<f64> = relays.iter().map(RelayProcess::cpu_secs).collect();
    backend.pg_stats_reset();
    let pg_cpu_before = backend.pg_cpu();
    let slow_before = backend.slow_statements();
    let self_cpu_before = cpu_secs("/proc/self/stat");
    let tcp_before = tcp_counters();
    let addrs: Vec<SocketAddr> = relays.iter().map(|r| r.addr).collect();

    // The storm.
    let (outcomes, wall, rss_samples) = rt.block_on(async {
        let ready = Arc::new(AtomicUsize::new(0));
        let (start_tx, start_rx) = watch::channel(None);
        let mut tasks = Vec::with_capacity(n);
        for (i, d) in devices.into_iter().enumerate() {
            // Round-robin over the relays: a team's devices are split.
            tasks.push(tokio::spawn(device_sync(
                addrs[i % addrs.len()],
                d,
                docs,
                pull,
                Arc::clone(&ready),
                start_rx.clone(),
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "devices never got ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Sample the relays' memory while they work (the sum of their
        // VmRSS).
        let pids: Vec<u32> = relays.iter().map(|r| r.pid).collect();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let sampler = tokio::spawn(async move {
            let mut samples = Vec::new();
            let t0 = Instant::now();
            loop {
                samples.push((
                    t0.elapsed(),
                    pids.iter()
                        .map(|&pid| heartbridge_benches::proc_status_kb(pid, "VmRSS:"))
                        .sum::<u64>(),
                ));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop_rx.changed() => break,
                }
            }
            samples
        });
        for relay in &relays {
            relay
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        eprintln!("released {n} devices");
        let t0 = Instant::now();
        start_tx.send(Some(t0)).expect("release");
        let mut outcomes = Vec::with_capacity(n);
        for task in tasks {
            outcomes.push(task.await.expect("device task"));
        }
        let wall = t0.elapsed();
        let _ = stop_tx.send(true);
        (outcomes, wall, sampler.await.unwrap_or_default())
    });
    let relay_cpus: Vec<f64> = relays
        .iter()
        .zip(&relay_cpu_before)
        .map(|(r, before)| r.cpu_secs() - before)
        .collect();
    let relay_cpu: f64 = relay_cpus.iter().sum();
    let pg_cpu = backend.pg_cpu() - pg_cpu_before;
    let slow = backend.slow_statements() - slow_before;
    notes.extend(backend.pg_stats_top());
    let self_cpu = cpu_secs("/proc/self/stat") - self_cpu_before;
    let tcp: Vec<String> = tcp_counters()
        .into_iter()
        .zip(tcp_before)
        .map(|((k, after), (_, before))| format!("{k} +{}", after.saturating_sub(before)))
        .collect();
    let hwms: Vec<u64> = relays.iter().map(|r| r.status_kb("VmHWM:")).collect();
    let threads: Vec<u64> = relays.iter().map(RelayProcess::threads).collect();
    let mut metric_lines = Vec::new();
    let mut log_lines = 0;
    let mut warnings = Vec::new();
    let mut request_lines = Vec::new();
    for (i, relay) in relays.iter().enumerate() {
        let name = relay_name(i);
        for line in rt.block_on(metrics(relay.addr, relay.metrics_token.as_deref())) {
            metric_lines.push(if relays_n > 1 {
                format!("{name}: {line}")
            } else {
                line
            });
        }
        log_lines += relay.log_lines.load(Ordering::Relaxed);
        warnings.extend(
            relay
                .warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        request_lines.extend(
            relay
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
    }
    let clean: Vec<bool> = relays.into_iter().map(RelayProcess::stop).collect();

    // What the relays hold, read from the database.
    let (stored, distinct, authors) = backend.count();

    if postgres {
        // The storage-alone phase times SqliteStorage; PostgreSQL's share
        // is read from its processes' CPU time above instead.
    } else if env_or("HB_STORM_STORAGE", 1u8) != 0 {
        notes.push(storage_alone(
            &teams.iter().map(|t| t.0).collect::<Vec<_>>(),
            &team_of,
            &bodies,
        ));
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    let non_2xx = outcomes.iter().filter(|o| o.status.is_some()).count();
    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_none()).collect();
    let sorted = |f: fn(&Outcome) -> Duration| {
        let mut v: Vec<Duration> = ok.iter().map(|o| f(o)).collect();
        v.sort();
        v
    };
    let connect = sorted(|o| o.connect);
    let pushed = sorted(|o| o.pushed);
    let done = sorted(|o| o.done);
    let all_acked = pushed.last().copied().unwrap_or_default();
    let requests: usize = outcomes.iter().map(|o| o.requests).sum();
    let pulled: usize = outcomes.iter().map(|o| o.pulled).sum();
    let acked: usize = outcomes.iter().map(|o| o.acked).sum();
    let down: usize = outcomes.iter().map(|o| o.bytes_down).sum();
    let docs_total = n * docs;
    let peak = rss_samples
        .iter()
        .max_by_key(|s| s.1)
        .copied()
        .unwrap_or_default();

    let row = format!(
        "| {n} × {docs} | {} | {} | {:.0} | {} / {} / {} | {} / {} / {} | {} / {} | {} | {} of {} | {} | {} |",
        if postgres {
            format!("PostgreSQL, {relays_n} relay{}", if relays_n > 1 { "s" } else { "" })
        } else {
            "SQLite, 1 relay".to_owned()
        },
        ms(all_acked),
        docs_total as f64 / all_acked.as_secs_f64().max(1e-9),
        ms(percentile(&pushed, 0.5)),
        ms(percentile(&pushed, 0.99)),
        ms(all_acked),
        ms(percentile(&done, 0.5)),
        ms(percentile(&done, 0.99)),
        ms(done.last().copied().unwrap_or_default()),
        ms(percentile(&connect, 0.5)),
        ms(percentile(&connect, 0.99)),
        hwms.iter()
            .map(|h| format!("{:.0} MB", *h as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / "),
        stored,
        docs_total,
        failed.len(),
        load,
    );
    let secs = |v: &[f64]| {
        v.iter()
            .map(|c| format!("{c:.1} s"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    notes.push(format!(
        "storm: wall {wall:.2?}; {requests} requests ({:.1} per device), {acked} envelopes acked, {pulled} pulled ({:.1} MB of responses); relay CPU {} ({:.0}% of 2 cores over the wall time){}, load generator CPU {self_cpu:.1} s",
        requests as f64 / n as f64,
        down as f64 / 1e6,
        secs(&relay_cpus),
        relay_cpu / wall.as_secs_f64() / 2.0 * 100.0,
        if postgres {
            format!(
                ", PostgreSQL CPU {pg_cpu:.1} s ({:.0}% of 2 cores), {slow} statements over 1 s in its log",
                pg_cpu / wall.as_secs_f64() / 2.0 * 100.0
            )
        } else {
            String::new()
        },
    ));
    let mb = |v: &[u64]| {
        v.iter()
            .map(|k| format!("{:.1} MB", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    notes.push(format!(
        "relay memory{}: VmRSS {} before the storm (VmHWM {} after setup), peak VmHWM {}, largest sampled VmRSS{} {:.1} MB at {:.1?}; {threads:?} threads at the end; {log_lines} log lines; stopped cleanly: {clean:?}",
        if relays_n > 1 { " (relay A / B …)" } else { "" },
        mb(&rss_before),
        mb(&hwm_before),
        mb(&hwms),
        if relays_n > 1 { " (sum)" } else { "" },
        peak.1 as f64 / 1024.0,
        peak.0,
    ));
    // Relay-side time per /v1/sync request, from its log (from the request
    // head to the response, auth and waiting for the writer included).
    let mut push_ms = Vec::new();
    let mut pull_ms = Vec::new();
    for line in &request_lines {
        if log_field(line, "route") != Some("/v1/sync") {
            continue;
        }
        let Some(ms) = log_field(line, "ms").and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let d = Duration::from_secs_f64(ms / 1000.0);
        match log_field(line, "pushed").and_then(|v| v.parse::<usize>().ok()) {
            Some(0) => pull_ms.push(d),
            Some(_) => push_ms.push(d),
            None => {}
        }
    }
    push_ms.sort();
    pull_ms.sort();
    if !push_ms.is_empty() {
        notes.push(format!(
            "relay-side time per request (its log): push+first page {} requests p50 {} / p99 {} / max {}; pull-only {} requests p50 {} / p99 {} / max {}",
            push_ms.len(),
            ms(percentile(&push_ms, 0.5)),
            ms(percentile(&push_ms, 0.99)),
            ms(push_ms.last().copied().unwrap_or_default()),
            pull_ms.len(),
            ms(percentile(&pull_ms, 0.5)),
            ms(percentile(&pull_ms, 0.99)),
            ms(pull_ms.last().copied().unwrap_or_default()),
        ));
    }
    notes.push(format!(
        "TCP counters of the machine during the storm (any other process's too): {}; the relay's listen backlog: {}",
        tcp.join(", "),
        backlog.map_or_else(|| "unknown".to_owned(), |b| b.to_string())
    ));
    notes.push(format!(
        "database: {stored} envelopes ({distinct} distinct) from {authors} devices (expected {docs_total} from {n})"
    ));
    if non_2xx > 0 || !failed.is_empty() {
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for o in &failed {
            let e = o.error.clone().unwrap_or_default();
            *kinds.entry(e.chars().take(120).collect()).or_default() += 1;
        }
        notes.push(format!(
            "ERRORS: {} devices failed ({non_2xx} non-2xx): {kinds:?}",
            failed.len()
        ));
    }
    notes.push(format!(
        "relay /metrics after the storm: {}",
        metric_lines.join("; ")
    ));
    if !warnings.is_empty() {
        notes.push(format!("relay warnings: {warnings:?}"));
    }
    (row, notes)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("HB_STORM_DEVICES")
        .unwrap_or_else(|_| "100,1000,2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let docs = env_or("HB_STORM_DOCS", 20usize);
    let team_size = env_or("HB_STORM_TEAM", 10usize).max(1);
    let log: String = env_or("HB_STORM_RELAY_LOG", "info".to_owned());
    let pull = env_or("HB_STORM_PULL", 1u8) != 0;
    let postgres = match env_or("HB_STORM_DB", "sqlite".to_owned()).as_str() {
        "sqlite" => false,
        "postgres" => true,
        other => panic!("HB_STORM_DB is `sqlite` or `postgres`, not `{other}`"),
    };
    let relays_n = env_or("HB_STORM_RELAYS", 1usize).max(1);
    assert!(
        postgres || relays_n == 1,
        "several relays share a database only on PostgreSQL: set HB_STORM_DB=postgres"
    );
    let max = sizes.iter().copied().max().unwrap_or(0);
    // The bench holds one socket per device (and one pipe per relay); each
    // relay inherits this limit and holds its share of the devices' sockets.
    let limit = fd_limit();
    assert!(
        limit as usize > max + 256,
        "the open-file limit is {limit}: raise it (`ulimit -n {}`) for {max} connections",
        (max + 1024).next_power_of_two()
    );
    // At least a team's worth, so that no two devices of a team share one.
    let distinct = env_or("HB_STORM_DISTINCT", 2_000usize).clamp(team_size, max.max(team_size));
    let t = Instant::now();
    let documents = build_documents(distinct, docs, &handbook_paragraphs());
    eprintln!(
        "{} case documents built (Automerge) in {:.1?}, for {distinct} devices (device d holds device d mod {distinct}'s)",
        distinct * docs,
        t.elapsed()
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &n in &sizes {
        eprintln!("storm of {n} devices × {docs} documents …");
        let (row, mut more) = storm(
            n, docs, team_size, &log, pull, postgres, relays_n, &documents,
        );
        eprintln!("{row}");
        for m in &more {
            eprintln!("  {m}");
        }
        rows.push(row);
        notes.push(format!("{n} devices:"));
        notes.append(&mut more);
    }
    println!(
        "| devices × documents | store, relays | all pushes acked | documents/s | push acked p50 / p99 / max | full sync p50 / p99 / max | connect p50 / p99 | relay VmHWM | envelopes in the relay's database | failed devices | load average (1/5/15 min) at release |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    println!(
        "\nopen-file limit {limit}; team size {team_size}; relay log filter `{log}`{}",
        if pull {
            ""
        } else {
            "; PUSH ONLY (HB_STORM_PULL=0: 1-byte pages, no pull rounds)"
        }
    );
}
