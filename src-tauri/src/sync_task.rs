//! The background sync, on the app's tokio runtime: at start, every 5
//! minutes while the relay answers, after a network failure again in 5 s,
//! 15 s, 30 s, 60 s, … up to 5 minutes (with jitter, so a team's devices
//! coming back online do not all knock at once), and at once when asked
//! ("Sync now", "End shift").
//!
//! A sync is a [`SyncSession`] driven through the async [`HttpTransport`]
//! (one client, its connections reused). The store lock is taken only for
//! `next_request` and `handle` (on a blocking thread, since they are SQLite
//! transactions), never while a request is on the network, so the UI's
//! commands go on while a slow link carries a big request. After every
//! round it emits `sync-progress` (with bytes sent and received) and
//! `sync-status` (the waiting count read from the store, the latest shift's
//! delivery, and the connection state of the last attempt).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartbridge_client::HttpTransport;
use heartbridge_core::{format_ms, now_ms, Store, SyncOptions, SyncReport, SyncSession};
use serde_json::{json, Value};
use tauri::{AppHandle, Emitter};
use tokio::sync::Notify;

use crate::camel::to_ui;
use crate::error::{ApiError, ApiResult};
use crate::shift_ledger;
use crate::store_slot::StoreSlot;

const ONLINE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Waits after the 1st, 2nd, … network failure in a row; the last repeats.
const BACKOFF: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

/// The wait after `failures` network failures in a row, before jitter.
pub fn backoff(failures: u32) -> Duration {
    let i = (failures.max(1) as usize - 1).min(BACKOFF.len() - 1);
    BACKOFF[i]
}

/// `d` moved by up to ±20 %, at random.
pub fn jitter(d: Duration) -> Duration {
    use std::hash::BuildHasher;
    let r = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    let frac = (r % 401) as f64 / 1000.0 - 0.2;
    d.mul_f64(1.0 + frac)
}

/// Where the sync's events go: the app's window, or a test's recorder.
pub trait Events: Send + Sync {
    fn send(&self, event: &str, payload: Value);
}

impl Events for AppHandle {
    fn send(&self, event: &str, payload: Value) {
        let _ = self.emit(event, payload);
    }
}

/// How the last sync attempt ended.
#[derive(Debug, Clone, PartialEq)]
enum Attempt {
    Connected { at: i64 },
    Unreachable { at: i64 },
    Refused { at: i64, kind: String },
}

/// What the connection state shows, kept in memory (it describes this run
/// of the app).
#[derive(Debug, Clone, Default)]
struct Link {
    syncing: bool,
    last: Option<Attempt>,
    /// The first network failure of the current streak.
    unreachable_since: Option<i64>,
    failures: u32,
}

impl Link {
    fn note(&mut self, result: &ApiResult<SyncReport>) {
        let at = now_ms();
        match result {
            Ok(_) => {
                self.last = Some(Attempt::Connected { at });
                self.unreachable_since = None;
                self.failures = 0;
            }
            Err(e) if e.kind == "network" => {
                self.last = Some(Attempt::Unreachable { at });
                self.unreachable_since.get_or_insert(at);
                self.failures += 1;
            }
            Err(e) => {
                self.last = Some(Attempt::Refused {
                    at,
                    kind: e.kind.clone(),
                });
                self.unreachable_since = None;
                self.failures = 0;
            }
        }
    }

    /// `{state, since, at, kind}`: `syncing` (a sync runs and none failed
    /// before it), `connected`, `unreachable` (since the streak's first
    /// failure; a retry may be running), `refused` (the relay answered with
    /// an error of `kind`), `unknown` (no attempt yet).
    fn json(&self) -> Value {
        let t = |ms: &i64| format_ms(*ms);
        match (&self.last, self.unreachable_since) {
            (last, Some(since)) => {
                let at = match last {
                    Some(Attempt::Unreachable { at }) => Some(t(at)),
                    _ => None,
                };
                json!({"state": "unreachable", "since": t(&since), "at": at, "kind": "network"})
            }
            _ if self.syncing => {
                json!({"state": "syncing", "since": null, "at": null, "kind": null})
            }
            (Some(Attempt::Connected { at }), _) => {
                json!({"state": "connected", "since": null, "at": t(at), "kind": null})
            }
            (Some(Attempt::Refused { at, kind }), _) => {
                json!({"state": "refused", "since": null, "at": t(at), "kind": kind})
            }
            (Some(Attempt::Unreachable { at }), None) => {
                json!({"state": "unreachable", "since": t(at), "at": t(at), "kind": "network"})
            }
            (None, None) => json!({"state": "unknown", "since": null, "at": null, "kind": null}),
        }
    }
}

/// Shared between the commands and the background task.
pub struct Syncer {
    store: Arc<StoreSlot>,
    http: HttpTransport,
    /// Held while a sync runs: one at a time.
    running: tokio::sync::Mutex<()>,
    link: Mutex<Link>,
    pub wake: Notify,
}

fn internal() -> ApiError {
    ApiError::new(
        "internal",
        "the sync stopped unexpectedly; your data is saved on this device",
    )
}

impl Syncer {
    pub fn new(store: Arc<StoreSlot>, http: HttpTransport) -> Arc<Self> {
        Arc::new(Syncer {
            store,
            http,
            running: tokio::sync::Mutex::new(()),
            link: Mutex::new(Link::default()),
            wake: Notify::new(),
        })
    }

    /// The one HTTP client of the app.
    pub fn http(&self) -> &HttpTransport {
        &self.http
    }

    fn link(&self) -> Link {
        self.link.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn update_link(&self, f: impl FnOnce(&mut Link)) {
        if let Ok(mut l) = self.link.lock() {
            f(&mut l);
        }
    }

    /// Runs `f` on the store on a blocking thread (SQLite work stays off
    /// the async workers).
    async fn on_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Syncer, &mut Store) -> heartbridge_core::Result<T> + Send + 'static,
    ) -> ApiResult<T> {
        let me = Arc::clone(self);
        tauri::async_runtime::spawn_blocking(move || me.store.with(|s| f(me.as_ref(), s)))
            .await
            .map_err(|_| internal())?
    }

    /// Runs one whole sync now (waiting for one already running), emitting
    /// `sync-progress` after every round and `sync-status` around it.
    pub async fn run(self: &Arc<Self>, app: &impl Events) -> ApiResult<SyncReport> {
        let _guard = self.running.lock().await;
        self.update_link(|l| l.syncing = true);
        self.emit_status(app).await;
        // As `Store::sync` does: a device the relay called revoked syncs no
        // more; asked to, it only checks the lead's roster.
        let result = match self.on_store(|_, s| s.sync_stopped()).await {
            Ok(true) => Err(heartbridge_core::Error::DeviceRevoked.into()),
            Ok(false) => self.rounds(app).await,
            Err(e) => Err(e),
        };
        let result = match result {
            Err(e) if e.kind == "device_revoked" => Err(self.check_revoked().await),
            Err(e) if e.kind == "erased" => Err(self.erased(e)),
            other => other,
        };
        if matches!(&result, Err(e) if e.kind == "erased") {
            self.update_link(|l| l.syncing = false);
            app.send("sync-status", self.status().await);
            return result;
        }
        self.update_link(|l| {
            // A device without a team made no attempt to reach a relay.
            if !matches!(&result, Err(e) if e.kind == "not_enrolled") {
                l.note(&result);
            }
            l.syncing = false;
        });
        // Whatever the outcome, the receipt notes what is now delivered.
        let _ = self.on_store(|_, s| shift_ledger::synced(s)).await;
        self.emit_status(app).await;
        result
    }

    /// What `Store::sync` does (issue 10): the relays in order (venue
    /// entries first, then by round trip), each trusted by its pin and with
    /// its own cursor; a network failure moves on to the next, anything
    /// else ends the sync.
    async fn rounds(self: &Arc<Self>, app: &impl Events) -> ApiResult<SyncReport> {
        let order = self.on_store(|_, s| s.relay_order()).await?;
        self.http.trust_relays(&order);
        // A venue relay gets the device's signature, never its token.
        if let Ok((device, secret)) = self.on_store(|_, s| s.request_signer()).await {
            self.http.set_signer(&device, secret);
        }
        for e in order
            .iter()
            .filter(|e| e.kind == heartbridge_core::RelayKind::Venue || !e.takes_token)
        {
            let id = e.pin.clone().unwrap_or_else(|| e.url.clone());
            self.http.venue_relay(&e.url, &id);
        }
        let mut last = None;
        for entry in order {
            let url = entry.url.clone();
            self.on_store(move |_, s| s.select_relay(&url)).await?;
            let started = std::time::Instant::now();
            match self.rounds_active(app).await {
                Err(e) if e.kind == "network" => last = Some(e),
                // A venue relay's refusal says nothing about the central
                // relay: go on (review F6, F7); a device failure still stops.
                Err(e)
                    if entry.kind == heartbridge_core::RelayKind::Venue
                        && e.kind != "internal"
                        && e.kind != "locked" =>
                {
                    last = Some(e)
                }
                Ok(report) => {
                    let rtt =
                        started.elapsed().as_millis() as i64 / (report.requests.max(1) as i64);
                    let url = entry.url.clone();
                    let _ = self
                        .on_store(move |_, s| s.record_relay_ok(&url, rtt))
                        .await;
                    return Ok(report);
                }
                Err(e) => return Err(e),
            }
        }
        match last {
            Some(e) => Err(e),
            // Not enrolled: the session says so.
            None => self.rounds_active(app).await,
        }
    }

    async fn rounds_active(self: &Arc<Self>, app: &impl Events) -> ApiResult<SyncReport> {
        let mut session = self
            .on_store(|_, s| {
                let session = s.sync_session(&SyncOptions::default())?;
                // Joining dropped them already; again here, so an app
                // stopped between storing the team and dropping them still
                // never pushes the bundled samples to the team.
                s.drop_bundled_handbooks()?;
                Ok(session)
            })
            .await?;
        loop {
            let (back, body) = self
                .on_store(move |_, s| {
                    let body = session.next_request(s);
                    Ok(recorded(s, session, body))
                })
                .await?;
            session = back;
            let Some(body) = body? else { break };
            let deadline = session.deadline();
            // The only await on the network; the store is not locked here.
            let answer = self.http.sync(session.team(), body, deadline).await;
            let (back, round) = self
                .on_store(move |me, s| {
                    let r = session.handle(s, answer).and_then(|()| {
                        let progress = to_ui(&session.progress(s)?);
                        Ok((progress, me.status_of(s)?))
                    });
                    Ok(recorded(s, session, r))
                })
                .await?;
            session = back;
            let (progress, status) = round?;
            app.send("sync-progress", progress);
            app.send("sync-status", status);
        }
        Ok(session.report().clone())
    }

    /// After the relay said this device is revoked (what
    /// `Store::check_revoked` does, with the async transport): fetches the
    /// lead's roster; if it records this device's revocation core erases
    /// the profile (`erased`), otherwise sync stays stopped
    /// (`device_revoked`) and nothing is erased on the relay's word.
    async fn check_revoked(self: &Arc<Self>) -> ApiError {
        let revoked = || ApiError::from(heartbridge_core::Error::DeviceRevoked);
        let Ok(Some(team)) = self.on_store(|_, s| s.team()).await else {
            return revoked();
        };
        if let Ok(bytes) = self.http.roster(&team).await {
            match self.on_store(move |_, s| s.take_roster(&bytes)).await {
                Err(e) if e.kind == "erased" => return self.erased(e),
                // A roster that does not check changes nothing.
                _ => {}
            }
        }
        let _ = self
            .on_store(|_, s| s.record_sync_error(&heartbridge_core::Error::DeviceRevoked))
            .await;
        revoked()
    }

    /// Core erased the profile: its store is dropped.
    fn erased(&self, e: ApiError) -> ApiError {
        let _ = self.store.erased();
        e
    }

    /// Whether the relay called this device revoked (the sync stays
    /// stopped; the background task is not started).
    pub fn stopped(&self) -> bool {
        self.store.with(|s| s.sync_stopped()).unwrap_or(false)
    }

    fn status_of(&self, store: &Store) -> heartbridge_core::Result<Value> {
        let st = store.sync_status()?;
        let shift = shift_ledger::delivery(store)?;
        let link = self.link();
        Ok(json!({
            "lastSyncedAt": st.last_synced_at,
            "pending": st.pending,
            "lastError": st.last_error.map(|m| json!({"kind": st.last_error_kind, "message": m})),
            "syncing": link.syncing,
            "refused": st.refused,
            "waiting": st.waiting,
            "stopped": st.stopped,
            "linkBytes": st.link_bytes,
            "atVenue": st.at_venue,
            "carriedRefused": st.carried_refused,
            "connection": link.json(),
            "shift": shift.map(|d| to_ui(&d)),
        }))
    }

    /// The status the home screen shows, read from the store now.
    pub async fn status(self: &Arc<Self>) -> Value {
        match self.on_store(|me, s| me.status_of(s)).await {
            Ok(v) => v,
            Err(_) => json!({
                "lastSyncedAt": null, "pending": 0, "lastError": null, "syncing": self.link().syncing,
                "refused": 0, "waiting": 0, "stopped": false, "linkBytes": 0, "atVenue": 0, "carriedRefused": 0, "connection": self.link().json(), "shift": null,
            }),
        }
    }

    /// Emits `sync-status` as the store says now: after every write and
    /// every sync round, so the waiting count never lags the store.
    pub async fn emit_status(self: &Arc<Self>, app: &impl Events) {
        app.send("sync-status", self.status().await);
    }

    async fn enrolled(self: &Arc<Self>) -> bool {
        self.on_store(|_, s| s.team())
            .await
            .map(|t| t.is_some())
            .unwrap_or(false)
    }

    fn failures(&self) -> u32 {
        self.link().failures
    }
}

/// Hands the session back with the result, recording a failure for the
/// status screen (best effort: the sync's own error is what matters).
fn recorded<T>(
    store: &mut Store,
    session: SyncSession,
    r: heartbridge_core::Result<T>,
) -> (SyncSession, ApiResult<T>) {
    // (Not after an erase: the profile's files are gone; nothing more is
    // written to them.)
    if let Err(e) = &r {
        if !matches!(e, heartbridge_core::Error::Erased) {
            let _ = store.record_sync_error(e);
        }
    }
    (session, r.map_err(ApiError::from))
}

/// Why the background loop ended: the relay refused this device
/// (`device_revoked`, sync stopped) or the lead's roster had it erased
/// (`erased`).
pub type Stop = ApiError;

/// The background loop; returns only when this device was revoked.
pub async fn background(syncer: Arc<Syncer>, app: AppHandle) -> Stop {
    loop {
        let wait = if syncer.enrolled().await {
            match syncer.run(&app).await {
                Err(e) if e.kind == "device_revoked" || e.kind == "erased" => return e,
                Err(e) if e.kind == "network" => jitter(backoff(syncer.failures())),
                // Connected, or refused by the relay (revoked, …): retrying
                // sooner would not change the answer.
                _ => jitter(ONLINE_EVERY),
            }
        } else {
            ONLINE_EVERY
        };
        let _ = tokio::time::timeout(wait, syncer.wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_core::proto::{Role, Secret, TeamId, TeamKey};
    use heartbridge_core::{Group, NewCase, Risk, Team};
    use std::io::Read;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, Value)>>);

    impl Events for Recorder {
        fn send(&self, event: &str, payload: Value) {
            self.0.lock().unwrap().push((event.to_owned(), payload));
        }
    }

    fn case(alias: &str) -> NewCase {
        NewCase {
            alias: alias.into(),
            group: Group::Other,
            risk: Risk::Low,
        }
    }

    /// A request held on the network (a "relay" that reads it and does not
    /// answer) leaves the store free for the volunteer's writes; when the
    /// connection then drops, the sync fails as a network failure, the
    /// state says the relay cannot be reached, and the waiting count the
    /// app reports is the store's, the write made meanwhile included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_is_free_while_a_request_is_on_the_network() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (got_tx, got_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let relay = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            got_tx.send(conn.read(&mut buf).unwrap()).unwrap();
            release_rx.recv().unwrap();
            // The connection and the listener close: nothing answers.
        });

        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("p");
        let mut store =
            Store::init(&profile, "x", &heartbridge_core::testing::protection()).unwrap();
        store
            .set_team(&Team {
                relay_url: format!("http://{addr}"),
                team_id: TeamId::random(),
                device_id: "00112233445566778899aabbccddeeff".into(),
                token: Secret::generate(),
                key: TeamKey::generate(),
                epoch: 1,
                role: Role::Volunteer,
                lead_sign_pk: [0; 32],
            })
            .unwrap();
        store.new_case(&case("before")).unwrap();
        drop(store);

        let slot = Arc::new(StoreSlot::new(profile));
        // The app starts locked: the PIN opens the store.
        assert_eq!(
            slot.unlock(zeroize::Zeroizing::new(
                heartbridge_core::testing::TEST_PIN.to_owned(),
            ))
            .unwrap(),
            crate::store_slot::Unlocked::Opened
        );
        let syncer = Syncer::new(Arc::clone(&slot), HttpTransport::new().unwrap());
        let events = Arc::new(Recorder::default());
        let sync = tokio::spawn({
            let (syncer, events) = (Arc::clone(&syncer), Arc::clone(&events));
            async move { syncer.run(events.as_ref()).await }
        });

        // The request reached the relay, which holds it...
        let read =
            tokio::task::spawn_blocking(move || got_rx.recv_timeout(Duration::from_secs(60)))
                .await
                .unwrap()
                .expect("the request never reached the relay");
        assert!(read > 0);
        // ...and meanwhile a write goes through.
        let write = tokio::task::spawn_blocking({
            let slot = Arc::clone(&slot);
            move || slot.with(|s| s.new_case(&case("during")))
        });
        tokio::time::timeout(Duration::from_secs(60), write)
            .await
            .expect("the write waited for the network")
            .unwrap()
            .unwrap();
        assert!(!sync.is_finished(), "the relay has not answered yet");
        let status = syncer.status().await;
        assert_eq!(status["syncing"], true);
        assert_eq!(status["pending"], 2);

        release_tx.send(()).unwrap();
        relay.join().unwrap();
        let err = sync.await.unwrap().unwrap_err();
        assert_eq!(err.kind, "network");
        let status = syncer.status().await;
        assert_eq!(status["connection"]["state"], "unreachable");
        assert_eq!(status["syncing"], false);
        assert_eq!(status["pending"], 2);
        assert_eq!(status["lastError"]["kind"], "network");
        let seen = events.0.lock().unwrap();
        let (last, payload) = seen.last().unwrap();
        assert_eq!(last, "sync-status");
        assert_eq!(payload["pending"], 2);
        assert_eq!(payload["connection"]["state"], "unreachable");
    }

    #[test]
    fn backoff_grows_after_each_failure_and_stops_at_five_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 15, 30, 60, 120, 300, 300, 300]);
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_varies() {
        let base = Duration::from_secs(60);
        let seen: std::collections::HashSet<u128> = (0..200)
            .map(|_| {
                let d = jitter(base);
                assert!(
                    d >= Duration::from_secs(48) && d <= Duration::from_secs(72),
                    "{d:?}"
                );
                d.as_millis()
            })
            .collect();
        assert!(seen.len() > 10, "jitter is not random: {seen:?}");
    }

    #[test]
    fn the_connection_state_follows_the_last_attempt() {
        let mut l = Link::default();
        assert_eq!(l.json()["state"], "unknown");
        l.syncing = true;
        assert_eq!(l.json()["state"], "syncing");
        l.syncing = false;
        l.note(&Ok(SyncReport::default()));
        assert_eq!(l.json()["state"], "connected");
        let down: ApiResult<SyncReport> = Err(ApiError::new("network", "connection refused"));
        l.note(&down);
        let since = l.json()["since"].clone();
        assert_eq!(l.json()["state"], "unreachable");
        // A retry that fails again keeps the time the relay was first
        // missed; while it runs, the state still says unreachable.
        l.syncing = true;
        assert_eq!(l.json()["state"], "unreachable");
        l.note(&down);
        l.syncing = false;
        assert_eq!(l.json()["since"], since);
        assert_eq!(l.failures, 2);
        l.note(&Ok(SyncReport::default()));
        assert_eq!(l.json()["state"], "connected");
        assert_eq!(l.failures, 0);
        l.note(&Err(ApiError::new("revoked", "x")));
        assert_eq!(l.json()["state"], "refused");
        assert_eq!(l.json()["kind"], "revoked");
    }
}
