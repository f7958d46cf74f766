//! A venue relay inside a closed loop: three devices sync with it over the
//! "local network" (loopback), its uplink to the central relay runs
//! through the link emulator and is cut and restored, the lead stays
//! outside at the central relay, devices move between the venue and the
//! central relay mid-shift, the venue relay restarts mid-forward. Every
//! change arrives everywhere exactly once, and the venue relay's files hold
//! no note text and no team key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{
    CaseFilter, Channel, DocId, Group, NewCase, RelayKind, Risk, SyncOptions, SyncReport, Team,
    Transport, TransportError,
};
use heartbridge_relay::venue::VenueConfig;
use heartbridge_tests::{team_with, Device, Relay};
use linkem::{BackgroundLink, Cut, Direction, End, Offset};

const CANARY: &str = "CANARY-venue-5d1e-会场测试标记";

/// A venue relay on 127.0.0.1, serving its own database, forwarding to
/// `upstream`. Stops gracefully when dropped; `restart` serves the same
/// database on the same address again.
struct Venue {
    url: String,
    dir: PathBuf,
    upstream: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Venue {
    fn db(dir: &Path) -> PathBuf {
        dir.join("venue.db")
    }

    fn join(dir: &Path, code: &str, upstream: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let joined = rt
            .block_on(heartbridge_relay::venue::join(
                &Venue::db(dir),
                code,
                Some(upstream),
            ))
            .expect("venue join");
        assert!(!joined.already);
    }

    fn start(dir: &Path, upstream: &str, addr: Option<std::net::SocketAddr>) -> Venue {
        Venue::start_with(dir, upstream, addr, |_| {})
    }

    fn start_with(
        dir: &Path,
        upstream: &str,
        addr: Option<std::net::SocketAddr>,
        tune: impl FnOnce(&mut heartbridge_relay::Config),
    ) -> Venue {
        let listener =
            std::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = heartbridge_relay::Config::new(Venue::db(dir));
        let mut v = VenueConfig::new(url.clone());
        v.upstream = Some(upstream.to_owned());
        v.poll = Duration::from_millis(30);
        v.backoff_min = Duration::from_millis(30);
        v.backoff_max = Duration::from_millis(300);
        v.request_timeout = Duration::from_secs(10);
        config.venue = Some(v);
        tune(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                ready_tx.send(()).expect("ready");
                heartbridge_relay::serve(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("venue relay ran");
            });
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("venue relay started");
        Venue {
            url,
            dir: dir.to_owned(),
            upstream: upstream.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("venue relay thread");
        }
    }

    fn restart(&mut self) {
        self.stop();
        let addr = self.url.trim_start_matches("http://").parse().ok();
        let mut again = Venue::start(&self.dir, &self.upstream, addr);
        self.stop = again.stop.take();
        self.thread = again.thread.take();
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(Venue::db(&self.dir)).expect("open venue db")
    }

    /// Envelopes stored here not yet answered by the central relay.
    fn backlog(&self) -> i64 {
        self.conn()
            .query_row(
                "SELECT count(*) FROM envelopes e WHERE NOT EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq)",
                [],
                |r| r.get(0),
            )
            .expect("backlog")
    }

    /// Waits until the venue relay's mirror of the team knows `dev` (its
    /// forwarder pulls the members from upstream in its own time).
    fn wait_knows(&self, dev: &Device) {
        let id = dev.store.team().expect("team").expect("enrolled").device_id;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let known: i64 = self
                .conn()
                .query_row(
                    "SELECT count(*) FROM devices WHERE lower(hex(id)) = lower(?1)",
                    [&id],
                    |r| r.get(0),
                )
                .expect("devices");
            if known > 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the venue relay did not learn the device from upstream within 20 s"
            );
            wait_a_moment();
        }
    }

    fn wait_forwarded(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.backlog() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the venue relay did not forward its log within 20 s ({} left)",
                self.backlog()
            );
            std::thread::yield_now();
            wait_a_moment();
        }
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lets another thread run (a condition is polled around it, with a
/// deadline; nothing waits for a fixed time to pass).
fn wait_a_moment() {
    let (_tx, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(Duration::from_millis(10));
}

/// Content ids a relay database holds, and how many rows each has.
fn content_ids(db: &Path) -> BTreeMap<Vec<u8>, i64> {
    let conn = rusqlite::Connection::open(db).expect("open relay db");
    let mut st = conn
        .prepare("SELECT content_id, count(*) FROM envelopes WHERE covers = 0 GROUP BY content_id")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(Result::unwrap)
        .collect()
}

fn sync_at(d: &mut Device, url: &str) -> heartbridge_core::Result<SyncReport> {
    sync_at_with(d, url, &mut BlockingTransport::default())
}

fn sync_at_with(
    d: &mut Device,
    url: &str,
    t: &mut BlockingTransport,
) -> heartbridge_core::Result<SyncReport> {
    sync_at_opts(d, url, t, &SyncOptions::default())
}

fn sync_at_opts(
    d: &mut Device,
    url: &str,
    t: &mut BlockingTransport,
    opts: &SyncOptions,
) -> heartbridge_core::Result<SyncReport> {
    let entry = d
        .store
        .relays()?
        .into_iter()
        .find(|e| e.url == url.trim_end_matches('/'))
        .expect("relay entry");
    let (dev, secret) = d.store.request_signer()?;
    t.http().set_signer(&dev, secret);
    t.use_relay(&entry);
    d.store.select_relay(url)?;
    d.store.sync_active(t, opts, &mut |_| {})
}

/// A transport that fails (as a dropped link) after `n` requests.
struct DropsAfter {
    inner: BlockingTransport,
    n: usize,
}
impl Transport for DropsAfter {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        if self.n == 0 {
            return Err(TransportError::Network("connection reset".into()));
        }
        self.n -= 1;
        self.inner.sync(team, body)
    }
    fn use_relay(&mut self, relay: &heartbridge_core::RelayEntry) {
        self.inner.use_relay(relay)
    }
}

fn new_case(d: &mut Device, risk: Risk, note: &str) -> DocId {
    let id = d
        .store
        .new_case(&NewCase {
            alias: format!("{} 的个案", d.name),
            group: Group::Hardship,
            risk,
        })
        .expect("case");
    d.store
        .add_contact(&id, Channel::Hotline, note, Some(10))
        .expect("contact");
    id
}

/// Case id → sorted heads, for every case a device holds.
fn heads(d: &Device) -> BTreeMap<String, Vec<String>> {
    d.store
        .list_cases(&CaseFilter::default())
        .expect("cases")
        .into_iter()
        .map(|c| {
            let id = DocId::parse(&c.id, "case").expect("id");
            let (_, mut am) = d.store.load(&id).expect("load").expect("doc");
            let mut h: Vec<String> = am.get_heads().iter().map(|h| h.to_string()).collect();
            h.sort();
            (c.id, h)
        })
        .collect()
}

struct Loop {
    central: Relay,
    uplink: BackgroundLink,
    venue: Venue,
    _venue_dir: tempfile::TempDir,
    /// The lead (outside) and three volunteers' devices (inside).
    devs: Vec<Device>,
}

fn uplink_cut(link: &BackgroundLink) {
    link.set_config(linkem::Config {
        cut: Some(Cut {
            counted: Direction::Both,
            at: Offset::At(0),
            end: End::Reset,
        }),
        ..Default::default()
    });
    link.reset_all();
}

fn uplink_restore(link: &BackgroundLink) {
    link.set_config(linkem::Config::default());
}

fn the_loop() -> Loop {
    let central = Relay::start();
    // Supervisors read every case, so every device is a reader of all.
    let mut devs = team_with(
        &central,
        &["组长", "志愿者甲", "志愿者乙", "志愿者丙"],
        &[Role::Supervisor, Role::Supervisor, Role::Supervisor],
    );
    let code = heartbridge_client::invite(&mut devs[0].store, Role::Relay).expect("relay invite");
    let central_addr = central
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let uplink = BackgroundLink::loopback(central_addr, linkem::Config::default()).expect("link");
    let venue_dir = tempfile::tempdir().expect("tmp");
    Venue::join(venue_dir.path(), &code, &uplink.url());
    let venue = Venue::start(venue_dir.path(), &uplink.url(), None);
    // Everybody syncs once at the central relay (the lead folds the relay
    // into the roster), then the venue's devices learn the venue relay.
    for d in devs.iter_mut() {
        sync_at(d, &central.url).expect("first sync");
    }
    sync_at(&mut devs[0], &central.url).expect("lead again");
    for d in devs[1..].iter_mut() {
        d.store
            .add_relay(&venue.url, None, RelayKind::Venue, false)
            .expect("add venue relay");
    }
    Loop {
        central,
        uplink,
        venue,
        _venue_dir: venue_dir,
        devs,
    }
}

/// Syncs everyone until nothing moves: the volunteers at `at[i]`, the lead
/// at the central relay, the venue forwarding in between.
fn settle(l: &mut Loop, at: &[bool; 3]) {
    for _ in 0..12 {
        let mut moved = 0;
        l.venue.wait_forwarded();
        let r = sync_at(&mut l.devs[0], &l.central.url).expect("lead sync");
        moved += r.pulled + r.pushed;
        for (i, venue) in at.iter().enumerate() {
            let url = if *venue {
                l.venue.url.clone()
            } else {
                l.central.url.clone()
            };
            let r = sync_at(&mut l.devs[i + 1], &url).expect("device sync");
            moved += r.pulled + r.pushed;
        }
        if moved == 0 {
            return;
        }
    }
    panic!("the team did not settle in 12 rounds");
}

fn assert_converged(l: &Loop, cases: &BTreeSet<String>) {
    let all: Vec<_> = l.devs.iter().map(heads).collect();
    let ids: BTreeSet<String> = all[0].keys().cloned().collect();
    assert_eq!(&ids, cases, "the lead holds every case, no more");
    for (i, h) in all.iter().enumerate() {
        assert_eq!(h, &all[0], "device {i} differs from the lead");
    }
    for d in &l.devs {
        assert_eq!(
            d.store.outbox_len().expect("outbox"),
            0,
            "{} still waits",
            d.name
        );
    }
    // Each envelope once at each relay, and the same ones at both (but the
    // snapshots, which compact at their own relay only).
    let central = content_ids(&l.central.db());
    let venue = content_ids(&Venue::db(&l.venue.dir));
    assert!(central.values().all(|n| *n == 1));
    assert!(venue.values().all(|n| *n == 1));
    let c: BTreeSet<_> = central.keys().collect();
    let v: BTreeSet<_> = venue.keys().collect();
    assert_eq!(
        c, v,
        "the venue relay and the central relay hold the same envelopes"
    );
}

fn assert_no_plaintext(l: &Loop) {
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("canary".into(), CANARY.as_bytes().to_vec()),
        ("canary prefix".into(), b"CANARY-venue".to_vec()),
        ("canary chinese".into(), "会场测试标记".as_bytes().to_vec()),
        ("device name".into(), "志愿者甲".as_bytes().to_vec()),
    ];
    for d in &l.devs {
        let team = d.store.team().expect("team").expect("enrolled");
        needles.push((format!("{} team key", d.name), team.key.expose().to_vec()));
        needles.push((
            format!("{} device token", d.name),
            team.token.expose().as_bytes().to_vec(),
        ));
    }
    let files: Vec<_> = std::fs::read_dir(&l.venue.dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    assert!(files.iter().any(|p| p.ends_with("venue.db")));
    for path in files {
        let bytes = std::fs::read(&path).expect("read");
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{what} found in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_venue_relay_carries_a_shift_out_and_in_exactly_once() {
    let mut l = the_loop();
    let mut cases = BTreeSet::new();

    // The uplink is down: the volunteers sync at the venue relay only.
    uplink_cut(&l.uplink);
    let mut own = Vec::new();
    for i in 1..=3 {
        let id = new_case(&mut l.devs[i], Risk::High, &format!("{CANARY} 第{i}条"));
        cases.insert(id.as_str().to_owned());
        own.push(id.clone());
        let r = sync_at(&mut l.devs[i], &l.venue.url.clone()).expect("sync at the venue");
        // Level 1 only: at the venue relay, still waiting for the centre.
        assert!(r.venue_acked > 0 && r.central_confirmed == 0, "{r:?}");
        assert!(l.devs[i].store.outbox_len().expect("outbox") > 0);
    }
    // Inside the loop they already see each other's cases.
    sync_at(&mut l.devs[1], &l.venue.url.clone()).expect("sync at the venue");
    assert_eq!(heads(&l.devs[1]).len(), 3);
    assert!(l.venue.backlog() >= 3, "nothing could go up yet");
    // The lead writes outside meanwhile.
    let lead_case = new_case(&mut l.devs[0], Risk::Low, &format!("{CANARY} 组长"));
    cases.insert(lead_case.as_str().to_owned());
    sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead sync");

    // The venue relay restarts with its backlog; then the uplink returns.
    l.venue.restart();
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    let r = sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead sync");
    assert!(r.pulled >= 3, "the lead got the venue's cases: {r:?}");
    // Level 2: the venue relay tells its devices the centre has them.
    let r = sync_at(&mut l.devs[2], &l.venue.url.clone()).expect("sync at the venue");
    assert!(r.central_confirmed > 0, "{r:?}");
    assert_eq!(l.devs[2].store.outbox_len().expect("outbox"), 0);

    // Mid-shift, volunteer 1 walks out and syncs at the central relay,
    // volunteer 2 stays, volunteer 3 comes back in after a change outside.
    l.devs[1]
        .store
        .add_contact(&own[0], Channel::Online, &format!("{CANARY} 外面"), None)
        .expect("contact");
    sync_at(&mut l.devs[1], &l.central.url.clone()).expect("outside");
    // The lead's case came down into the loop.
    sync_at(&mut l.devs[3], &l.venue.url.clone()).expect("inside");
    assert!(heads(&l.devs[3]).contains_key(lead_case.as_str()));
    l.devs[3]
        .store
        .add_contact(
            &lead_case,
            Channel::Hotline,
            &format!("{CANARY} 里面"),
            None,
        )
        .expect("contact");
    settle(&mut l, &[false, true, true]);
    settle(&mut l, &[true, false, true]);
    assert_converged(&l, &cases);
    assert_no_plaintext(&l);
}

#[test]
fn a_device_that_moves_relays_mid_sync_loses_and_doubles_nothing() {
    let mut l = the_loop();
    let mut cases = BTreeSet::new();
    // Enough changes for several requests (the learned link size starts at
    // 64 KiB; each note is ~20 KB of text).
    let big: String = "很长的记录。".repeat(1200);
    for n in 0..8 {
        let id = new_case(&mut l.devs[1], Risk::Medium, &format!("{CANARY} {n} {big}"));
        cases.insert(id.as_str().to_owned());
    }
    // The venue link drops after the first request, mid-push.
    let mut t = DropsAfter {
        inner: BlockingTransport::default(),
        n: 1,
    };
    let venue_url = l.venue.url.clone();
    let entry = l.devs[1]
        .store
        .relays()
        .unwrap()
        .into_iter()
        .find(|e| e.url == venue_url)
        .unwrap();
    let (dev, secret) = l.devs[1].store.request_signer().unwrap();
    t.inner.http().set_signer(&dev, secret);
    t.use_relay(&entry);
    l.devs[1].store.select_relay(&venue_url).unwrap();
    let failed = l.devs[1]
        .store
        .sync_active(&mut t, &SyncOptions::default(), &mut |_| {});
    assert!(failed.is_err(), "the dropped link ends the sync");
    // It walks out and syncs at the central relay.
    sync_at(&mut l.devs[1], &l.central.url.clone()).expect("central");
    settle(&mut l, &[false, true, true]);
    assert_converged(&l, &cases);
}

/// One step of a shift in the loop.
#[derive(Debug, Clone)]
enum Step {
    /// Volunteer `0..3` writes a note on its own case.
    Write(usize),
    /// Volunteer `0..3` syncs at the venue relay.
    AtVenue(usize),
    /// Volunteer `0..3` (or the lead, 3) syncs at the central relay.
    AtCentral(usize),
    Cut,
    Restore,
    Restart,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3usize).prop_map(Step::Write),
        3 => (0..3usize).prop_map(Step::AtVenue),
        2 => (0..4usize).prop_map(Step::AtCentral),
        1 => Just(Step::Cut),
        1 => Just(Step::Restore),
        1 => Just(Step::Restart),
    ]
}

/// Runs `steps`, then lets everyone settle (the uplink back, the
/// volunteers at the venue, then two of them outside) and checks: every
/// device holds every case with the same heads, nothing waits, each
/// envelope once at each relay and the same ones at both, no plaintext in
/// the venue relay's files.
fn run_steps(steps: &[Step]) {
    let mut l = the_loop();
    let mut cases = BTreeSet::new();
    let mut own = Vec::new();
    for i in 1..=3 {
        let id = new_case(&mut l.devs[i], Risk::Low, &format!("{CANARY} 开始{i}"));
        cases.insert(id.as_str().to_owned());
        own.push(id);
    }
    let venue_url = l.venue.url.clone();
    let central_url = l.central.url.clone();
    for (n, s) in steps.iter().enumerate() {
        match s {
            Step::Write(i) => {
                l.devs[i + 1]
                    .store
                    .add_contact(&own[*i], Channel::Hotline, &format!("{CANARY} {n}"), None)
                    .expect("write");
            }
            Step::AtVenue(i) => {
                sync_at(&mut l.devs[i + 1], &venue_url).expect("sync at the venue");
            }
            Step::AtCentral(i) => {
                let d = if *i == 3 { 0 } else { i + 1 };
                sync_at(&mut l.devs[d], &central_url).expect("sync at the centre");
            }
            Step::Cut => uplink_cut(&l.uplink),
            Step::Restore => uplink_restore(&l.uplink),
            Step::Restart => l.venue.restart(),
        }
    }
    uplink_restore(&l.uplink);
    settle(&mut l, &[true, true, true]);
    settle(&mut l, &[false, true, false]);
    assert_converged(&l, &cases);
    assert_no_plaintext(&l);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 8,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    #[test]
    fn any_order_of_syncs_cuts_and_restarts_converges_exactly_once(
        steps in proptest::collection::vec(step(), 3..14)
    ) {
        run_steps(&steps);
    }
}

#[test]
fn a_restart_while_cut_then_a_move_outside_converges() {
    run_steps(&[
        Step::Write(0),
        Step::Cut,
        Step::AtVenue(0),
        Step::Restart,
        Step::Write(0),
        Step::AtCentral(0),
        Step::Restore,
        Step::AtVenue(1),
    ]);
}

/// What the relay at `url` answers a minimal sync request sent with `t`.
fn answer(d: &Device, url: &str, t: &mut BlockingTransport) -> Result<Vec<u8>, TransportError> {
    let mut team = d.store.team().expect("team").expect("enrolled");
    team.relay_url = url.to_owned();
    let body = heartbridge_core::proto::encode(&heartbridge_core::proto::SyncRequest {
        v: heartbridge_core::proto::PROTOCOL_VERSION,
        cursor: 0,
        push: vec![],
        max_bytes: 0,
        members_since: 0,
        roster_version: 0,
        roster: None,
    });
    t.sync(&team, body)
}

fn refusal(r: Result<Vec<u8>, TransportError>) -> (u16, String) {
    match r {
        Err(TransportError::Relay { status, kind, .. }) => (status, kind),
        other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
    }
}

#[test]
fn a_venue_relay_takes_signatures_not_tokens() {
    let l = the_loop();
    let d = &l.devs[1];
    let (dev, secret) = d.store.request_signer().expect("signer");
    // Signed for the venue relay's id: answered.
    let mut t = BlockingTransport::default();
    t.http().set_signer(&dev, secret.clone());
    t.http().venue_relay(&l.venue.url, &l.venue.url);
    answer(d, &l.venue.url, &mut t).expect("a signed request is answered");
    // The device's token at the venue relay: unknown there (it never
    // learns one).
    let mut plain = BlockingTransport::default();
    assert_eq!(
        refusal(answer(d, &l.venue.url, &mut plain)),
        (401, "unknown_token".into())
    );
    // Signed for another relay's id: refused.
    let mut other = BlockingTransport::default();
    other.http().set_signer(&dev, secret.clone());
    other
        .http()
        .venue_relay(&l.venue.url, "http://another.venue:7070");
    assert_eq!(
        refusal(answer(d, &l.venue.url, &mut other)),
        (401, "bad_request_signature".into())
    );
    // The central relay takes no signed request: a signature made for a
    // venue relay is worth nothing there.
    let mut at_central = BlockingTransport::default();
    at_central.http().set_signer(&dev, secret);
    at_central.http().venue_relay(&l.central.url, &l.venue.url);
    assert_eq!(
        refusal(answer(d, &l.central.url, &mut at_central)),
        (401, "bad_request_signature".into())
    );
    // A venue entry with no signing key sends nothing.
    let mut unsigned = BlockingTransport::default();
    unsigned.http().venue_relay(&l.venue.url, &l.venue.url);
    assert_eq!(
        refusal(answer(d, &l.venue.url, &mut unsigned)),
        (0, "no_signer".into())
    );
}

/// Restarts the venue relay with no compaction grace: superseded envelopes
/// are purged at startup and every 20 ms.
fn restart_purging(v: &mut Venue) {
    v.stop();
    let addr = v.url.trim_start_matches("http://").parse().ok();
    let mut again = Venue::start_with(&v.dir, &v.upstream, addr, |c| {
        c.compaction_grace = Duration::ZERO;
        c.purge_interval = Duration::from_millis(20);
    });
    v.stop = again.stop.take();
    v.thread = again.thread.take();
}

#[test]
fn what_a_snapshot_supersedes_at_the_venue_stays_until_it_is_forwarded() {
    let mut l = the_loop();
    // The venue relay purges superseded envelopes at once.
    restart_purging(&mut l.venue);

    uplink_cut(&l.uplink);
    let venue_url = l.venue.url.clone();
    let id = new_case(&mut l.devs[1], Risk::High, &format!("{CANARY} 一"));
    for n in 0..3 {
        l.devs[1]
            .store
            .add_contact(&id, Channel::Hotline, &format!("{CANARY} 续{n}"), None)
            .expect("contact");
    }
    sync_at(&mut l.devs[1], &venue_url).expect("at the venue");
    // Another supervisor at the venue takes the case in and compacts it
    // there: the venue relay supersedes the case's envelopes (not yet
    // forwarded) and would purge them.
    // Devices freeze no snapshot at a relay they know as a venue relay; one
    // that has it entered as a central relay (an older app, an entry typed
    // by hand) does, and the venue relay must cope.
    l.devs[2].store.remove_relay(&venue_url).expect("remove");
    l.devs[2]
        .store
        .add_relay(&venue_url, None, RelayKind::Central, false)
        .expect("entry");
    let mut t = BlockingTransport::default();
    t.http().venue_relay(&venue_url, &venue_url);
    sync_at_with(&mut l.devs[2], &venue_url, &mut t).expect("at the venue");
    let r = sync_at_opts(
        &mut l.devs[2],
        &venue_url,
        &mut t,
        &SyncOptions {
            snapshot_all: true,
            ..SyncOptions::default()
        },
    )
    .expect("snapshot at the venue");
    assert!(r.venue_acked > 0, "{r:?}");
    let superseded: i64 = l
        .venue
        .conn()
        .query_row(
            "SELECT count(*) FROM envelopes WHERE superseded_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        superseded > 0,
        "the snapshot compacted the case at the venue"
    );
    // A restart purges before it serves (grace 0): once a sync there is
    // answered, the purge has run, while the uplink is still down.
    restart_purging(&mut l.venue);
    sync_at(&mut l.devs[3], &venue_url).expect("at the venue");
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    // Everything of the case reached the central relay: the lead, who
    // only ever syncs there, has all four contacts.
    sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead");
    assert_eq!(l.devs[0].case(&id).contacts.len(), 4);
}

#[test]
fn a_venue_relay_reaches_a_pinned_central_relay_and_refuses_another_certificate() {
    // The central relay serves its own self-signed certificate.
    let central = Relay::start_with(|c| {
        c.tls = Some(heartbridge_relay::tls::Tls::self_signed(&c.db_path).expect("tls"));
    });
    let fingerprint = heartbridge_relay::tls::Tls::self_signed(&central.db())
        .expect("tls")
        .fingerprint();
    let url = central.url.replace("http://", "https://");
    let created = central.create_team("pinned team");
    let mut lead = Device::new("组长");
    BlockingTransport::default()
        .claim_pinned(
            &mut lead.store,
            &url,
            created.lead_token.expose(),
            heartbridge_core::proto::CertPin::parse(&fingerprint),
        )
        .expect("claim over pinned TLS");
    lead.store.set_lead_reads_cases(true).expect("reads");
    let code = heartbridge_client::invite(&mut lead.store, Role::Supervisor).expect("invite");
    let mut vol = Device::new("志愿者甲");
    heartbridge_client::join(&mut vol.store, &code).expect("join over pinned TLS");
    // The relay code carries the pin; the venue relay reaches the central
    // relay by it.
    let relay_code = heartbridge_client::invite(&mut lead.store, Role::Relay).expect("relay code");
    assert_eq!(
        heartbridge_core::proto::Invite::decode(&relay_code)
            .expect("decode")
            .pin
            .as_deref(),
        Some(fingerprint.as_str())
    );
    let dir = tempfile::tempdir().expect("tmp");
    Venue::join(dir.path(), &relay_code, &url);
    let venue = Venue::start(dir.path(), &url, None);
    sync_at(&mut lead, &url).expect("lead");
    sync_at(&mut vol, &url).expect("volunteer");
    vol.store
        .add_relay(&venue.url, None, RelayKind::Venue, false)
        .expect("venue entry");
    let id = new_case(&mut vol, Risk::High, &format!("{CANARY} 加密"));
    venue.wait_knows(&vol);
    sync_at(&mut vol, &venue.url).expect("at the venue");
    venue.wait_forwarded();
    sync_at(&mut lead, &url).expect("lead");
    assert_eq!(lead.case(&id).contacts.len(), 1);

    // Another certificate (a wrong pin): the venue relay sends nothing.
    let mut wrong = VenueConfig::new(venue.url.clone());
    wrong.upstream = Some(url.clone());
    wrong.upstream_pin = Some(format!("sha256:{}", "A".repeat(43)));
    let f = heartbridge_relay::venue::Forwarder::open(&Venue::db(dir.path()), wrong)
        .expect("forwarder");
    let err = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f.round())
        .expect_err("a wrong certificate is refused");
    assert!(err.to_string().contains("not the pinned one"), "{err}");
}

#[test]
fn a_device_reads_the_roster_at_a_venue_relay_by_its_signature() {
    let l = the_loop();
    let d = &l.devs[1];
    let mut team = d.store.team().expect("team").expect("enrolled");
    team.relay_url = l.venue.url.clone();
    let (dev, secret) = d.store.request_signer().expect("signer");
    let mut t = BlockingTransport::default();
    t.http().set_signer(&dev, secret);
    t.http().venue_relay(&l.venue.url, &l.venue.url);
    let mut team_c = team.clone();
    team_c.relay_url = l.central.url.clone();
    let at_central = BlockingTransport::default()
        .roster(&team_c)
        .expect("the central roster");
    // The venue relay mirrors the lead's newest roster within a few rounds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let at_venue = loop {
        let got = t.roster(&team).expect("the mirrored roster");
        if got == at_central {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the venue relay did not mirror the lead's roster"
        );
        wait_a_moment();
    };
    // The lead listed the venue relay in it, by its role, with no key.
    let roster = heartbridge_core::proto::SignedRoster::from_bytes(&at_venue)
        .expect("roster")
        .verify(&team.lead_sign_pk, &team.team_id)
        .expect("signed by the lead");
    let relays: Vec<_> = roster
        .members
        .iter()
        .filter(|m| m.role == Role::Relay)
        .collect();
    assert_eq!(relays.len(), 1);
    assert!(roster.keys.iter().all(|k| k.device != relays[0].device));
}

/// Hands every answer back as if its connection had been cut at its very
/// end (all of it arrived, flagged cut).
struct CutAnswers(BlockingTransport);
impl Transport for CutAnswers {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let received = self.0.sync(team, body)?;
        Err(TransportError::Cut {
            detail: "connection reset".into(),
            received,
        })
    }
    fn use_relay(&mut self, relay: &heartbridge_core::RelayEntry) {
        self.0.use_relay(relay)
    }
}

/// Strips the venue relay's receipts from every answer (an older or a
/// hostile venue relay).
struct NoReceipts(BlockingTransport);
impl Transport for NoReceipts {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let got = self.0.sync(team, body)?;
        let (resp, _) = heartbridge_core::proto::venue_wire::decode_response(&got).expect("answer");
        Ok(heartbridge_core::proto::encode(&resp))
    }
    fn use_relay(&mut self, relay: &heartbridge_core::RelayEntry) {
        self.0.use_relay(relay)
    }
}

fn sync_via(
    d: &mut Device,
    url: &str,
    t: &mut dyn Transport,
) -> heartbridge_core::Result<SyncReport> {
    let entry = d
        .store
        .relays()?
        .into_iter()
        .find(|e| e.url == url)
        .expect("entry");
    t.use_relay(&entry);
    d.store.select_relay(url)?;
    d.store.sync_active(t, &SyncOptions::default(), &mut |_| {})
}

fn signed(d: &Device) -> BlockingTransport {
    let t = BlockingTransport::default();
    let (dev, secret) = d.store.request_signer().expect("signer");
    t.http().set_signer(&dev, secret);
    t
}

#[test]
fn a_venue_relays_ack_stays_level_1_in_a_cut_answer_and_without_receipts() {
    let mut l = the_loop();
    uplink_cut(&l.uplink);
    let venue_url = l.venue.url.clone();
    // A cut first answer: its acks are the venue relay's, level 1.
    new_case(&mut l.devs[1], Risk::Critical, &format!("{CANARY} 危急"));
    let waiting = l.devs[1].store.outbox_len().expect("outbox");
    let mut cut = CutAnswers(signed(&l.devs[1]));
    let _ = sync_via(&mut l.devs[1], &venue_url, &mut cut);
    assert_eq!(l.devs[1].store.outbox_len().expect("outbox"), waiting);
    assert_eq!(
        l.devs[1].store.receipt_levels().expect("levels").at_venue,
        waiting
    );
    // An answer without receipts from a venue entry keeps nothing.
    new_case(&mut l.devs[2], Risk::High, &format!("{CANARY} 高"));
    let waiting = l.devs[2].store.outbox_len().expect("outbox");
    let mut bare = NoReceipts(signed(&l.devs[2]));
    let err = sync_via(&mut l.devs[2], &venue_url, &mut bare).expect_err("refused");
    assert!(err.to_string().contains("no receipts"), "{err}");
    assert_eq!(l.devs[2].store.outbox_len().expect("outbox"), waiting);
    assert_eq!(
        l.devs[2].store.receipt_levels().expect("levels").at_venue,
        0
    );
}

/// Answers every request to `venue` with a refusal of `kind`; passes the
/// rest on.
struct VenueRefuses {
    inner: BlockingTransport,
    venue: String,
    status: u16,
    kind: &'static str,
}
impl Transport for VenueRefuses {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        if team.relay_url == self.venue {
            return Err(TransportError::Relay {
                status: self.status,
                kind: self.kind.into(),
                message: "refused".into(),
            });
        }
        self.inner.sync(team, body)
    }
    fn roster(&mut self, team: &Team) -> Result<Vec<u8>, TransportError> {
        self.inner.roster(team)
    }
    fn use_relay(&mut self, relay: &heartbridge_core::RelayEntry) {
        self.inner.use_relay(relay)
    }
}

#[test]
fn a_venue_relays_refusal_or_revocation_does_not_stop_sync_with_the_central_relay() {
    let mut l = the_loop();
    let venue_url = l.venue.url.clone();
    for (i, (status, kind)) in [(401, "bad_request_signature"), (403, "device_revoked")]
        .into_iter()
        .enumerate()
    {
        let d = &mut l.devs[i + 1];
        let id = new_case(d, Risk::High, &format!("{CANARY} {kind}"));
        let mut t = VenueRefuses {
            inner: signed(d),
            venue: venue_url.clone(),
            status,
            kind,
        };
        // Store::sync tries the venue entry first, then the central one.
        let r = d
            .store
            .sync(&mut t, &SyncOptions::default(), &mut |_| {})
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(r.changes_delivered > 0, "{kind}: {r:?}");
        assert!(!d.store.sync_stopped().expect("stopped"), "{kind}");
        assert_eq!(d.store.outbox_len().expect("outbox"), 0, "{kind}");
        sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead");
        assert_eq!(l.devs[0].case(&id).contacts.len(), 1, "{kind}");
    }
}

/// Imports `from`'s bundle of everything it has not delivered at `carrier`;
/// returns how many envelopes the carrier now carries.
fn hand_over(from: &mut Device, carrier: &mut Device) -> usize {
    let (bytes, _) = from
        .store
        .bundle_export(heartbridge_core::bundle::ExportScope::All)
        .expect("export");
    let imported = carrier.store.bundle_import(&bytes).expect("import");
    assert!(imported.queued > 0, "{imported:?}");
    carrier.store.carried_len().expect("carried")
}

#[test]
fn a_carried_envelope_stays_with_its_carrier_until_the_central_relay_holds_it() {
    let mut l = the_loop();
    let venue_url = l.venue.url.clone();
    let central_url = l.central.url.clone();
    // (a) The uplink is down. A volunteer writes a crisis note and hands
    // it over in a bundle; its phone then dies (it never syncs again).
    uplink_cut(&l.uplink);
    let id = new_case(&mut l.devs[1], Risk::Critical, &format!("{CANARY} 转交"));
    let (author, carrier) = {
        let (a, b) = l.devs.split_at_mut(2);
        (&mut a[1], &mut b[0])
    };
    let carried = hand_over(author, carrier);
    // The venue relay acknowledges it: level 1, so the carrier keeps it.
    let r = sync_at(carrier, &venue_url).expect("at the venue");
    assert!(r.venue_acked >= carried, "{r:?}");
    assert_eq!(
        carrier.store.carried_len().expect("carried"),
        carried,
        "a venue relay's acknowledgement made the carrier forget a carried envelope"
    );
    // Again at the venue: still kept, and not pushed there again.
    let r = sync_at(carrier, &venue_url).expect("at the venue again");
    assert_eq!(r.envelopes_pushed, 0, "{r:?}");
    assert_eq!(carrier.store.carried_len().expect("carried"), carried);
    // The uplink returns: once the venue relay says the central relay holds
    // them (level 2), the carrier lets them go.
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    let r = sync_at(carrier, &venue_url).expect("at the venue, uplink back");
    assert!(r.central_confirmed >= carried, "{r:?}");
    assert_eq!(carrier.store.carried_len().expect("carried"), 0);
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    assert_eq!(l.devs[0].case(&id).contacts.len(), 1);

    // (b) A newcomer joins at the central relay while the uplink is down:
    // the venue relay's mirror does not know it and refuses its envelopes.
    uplink_cut(&l.uplink);
    let code = heartbridge_client::invite(&mut l.devs[0].store, Role::Supervisor).expect("invite");
    let mut newcomer = Device::new("志愿者丁");
    heartbridge_client::join(&mut newcomer.store, &code).expect("join");
    sync_at(&mut l.devs[0], &central_url).expect("the lead folds the newcomer in");
    sync_at(&mut newcomer, &central_url).expect("newcomer");
    sync_at(&mut l.devs[2], &central_url).expect("the carrier learns the newcomer");
    let id = new_case(&mut newcomer, Risk::High, &format!("{CANARY} 新人"));
    let carried = hand_over(&mut newcomer, &mut l.devs[2]);
    let r = sync_at(&mut l.devs[2], &venue_url).expect("at the venue");
    assert_eq!(r.carried_refused, 0, "{r:?}");
    assert_eq!(
        l.devs[2].store.carried_len().expect("carried"),
        carried,
        "a venue relay's refusal (its mirror is behind) made the carrier drop a carried envelope"
    );
    // The central relay takes them.
    let r = sync_at(&mut l.devs[2], &central_url).expect("at the centre");
    assert_eq!(r.carried_refused, 0, "{r:?}");
    assert_eq!(l.devs[2].store.carried_len().expect("carried"), 0);
    assert_eq!(
        l.devs[2]
            .store
            .sync_status()
            .expect("status")
            .carried_refused,
        0
    );
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    assert_eq!(l.devs[0].case(&id).contacts.len(), 1);
}

/// Waits until the venue relay holds every envelope the central relay
/// holds (its forwarder pulls the team's log down in its own time).
fn wait_pulled_down(l: &Loop) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let central: BTreeSet<_> = content_ids(&l.central.db()).into_keys().collect();
        let venue: BTreeSet<_> = content_ids(&Venue::db(&l.venue.dir)).into_keys().collect();
        if central.is_subset(&venue) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the venue relay did not pull the central relay's log down within 20 s"
        );
        wait_a_moment();
    }
}

#[test]
fn a_revoked_devices_notes_via_a_venue_relay_wait_for_the_central_relays_word() {
    let mut l = the_loop();
    let venue_url = l.venue.url.clone();
    let central_url = l.central.url.clone();
    // Before the revocation: the lead writes, and volunteer 3 writes a note
    // that reaches the central relay (and, pulled down, the venue relay).
    // (That a note of a revoked author pulled at a venue relay is applied
    // once the central relay's seq proves it came before the cut-off is
    // the core test revoked_authors_envelope_from_a_venue_waits_for_its_central_seq.)
    for n in 0..3 {
        new_case(&mut l.devs[0], Risk::Low, &format!("{CANARY} 组长{n}"));
    }
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    let legit = new_case(&mut l.devs[3], Risk::High, &format!("{CANARY} 撤销前"));
    sync_at(&mut l.devs[3], &central_url).expect("before the revocation");
    wait_pulled_down(&l);
    // The uplink goes down; outside, the lead writes on (the central log
    // grows past the venue's) and revokes volunteer 3's stolen phone.
    uplink_cut(&l.uplink);
    for n in 0..6 {
        new_case(&mut l.devs[0], Risk::Low, &format!("{CANARY} 外{n}"));
    }
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    let stolen = l.devs[3].store.team().unwrap().unwrap().device_id;
    BlockingTransport::default()
        .revoke(&mut l.devs[0].store, &stolen)
        .expect("revoke");
    sync_at(&mut l.devs[0], &central_url).expect("the lead signs the revocation");
    // Volunteer 1 learns the revocation at the central relay.
    sync_at(&mut l.devs[1], &central_url).expect("learns the revocation");
    assert!(heads(&l.devs[1]).contains_key(legit.as_str()));
    // The thief writes with the stolen key at the venue relay, whose mirror
    // does not know of the revocation yet.
    let forged = new_case(&mut l.devs[3], Risk::Critical, &format!("{CANARY} 伪造"));
    sync_at(&mut l.devs[3], &venue_url).expect("the venue relay takes it");
    // Volunteer 1 pulls it at the venue: not applied, whatever the venue
    // relay's seq of it (the cut-off counts in the central relay's seqs).
    let r = sync_at(&mut l.devs[1], &venue_url).expect("at the venue");
    assert!(r.envelopes_pulled > 0, "{r:?}");
    assert!(
        !heads(&l.devs[1]).contains_key(forged.as_str()),
        "a revoked device's note written after its cut-off was applied via a venue relay"
    );
    // Nor later at the central relay, which never took it.
    sync_at(&mut l.devs[1], &central_url).expect("at the centre");
    assert!(!heads(&l.devs[1]).contains_key(forged.as_str()));

    // The uplink returns (the venue relay learns the revocation). Volunteer
    // 2 learns it at the central relay in one small page (the roster comes
    // first, volunteer 3's note later), then pulls both notes at the venue
    // relay: neither is judged by a venue seq. At the central relay the one
    // written before the revocation is applied (its seq there is before the
    // cut-off), the forged one, which the central relay never took, is not.
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    wait_pulled_down(&l);
    sync_at_opts(
        &mut l.devs[2],
        &central_url,
        &mut BlockingTransport::default(),
        &SyncOptions {
            page_bytes: 1,
            max_requests: 1,
            ..SyncOptions::default()
        },
    )
    .expect("learns the revocation");
    assert!(!heads(&l.devs[2]).contains_key(legit.as_str()));
    sync_at(&mut l.devs[2], &venue_url).expect("at the venue");
    let at_venue = heads(&l.devs[2]);
    assert!(!at_venue.contains_key(forged.as_str()));
    sync_at(&mut l.devs[2], &central_url).expect("at the centre");
    let after = heads(&l.devs[2]);
    assert!(
        after.contains_key(legit.as_str()),
        "a note written before the revocation, pulled at a venue relay, is applied once the central relay has it"
    );
    assert!(!after.contains_key(forged.as_str()));
    let refused = l.devs[2].store.refused().expect("refused");
    assert!(refused.iter().all(|r| r.1 != legit.as_str()), "{refused:?}");
}

#[test]
fn a_note_the_central_relay_refuses_after_its_authors_revocation_is_counted_at_the_venue() {
    let mut l = the_loop();
    let venue_url = l.venue.url.clone();
    let central_url = l.central.url.clone();
    let db = Venue::db(&l.venue.dir);
    // 10:00, uplink down: volunteer 3 writes at the venue relay (level 1).
    uplink_cut(&l.uplink);
    let id = new_case(
        &mut l.devs[3],
        Risk::High,
        &format!("{CANARY} 撤销前在会场"),
    );
    sync_at(&mut l.devs[3], &venue_url).expect("at the venue");
    let before = heartbridge_relay::venue::status(&db)
        .expect("status")
        .expect("a venue relay");
    assert!(before.enrolled && before.backlog > 0, "{before:?}");
    assert_eq!(before.refused_upstream, 0);
    // 10:30 the phone is lost; the lead revokes it at the central relay.
    let lost = l.devs[3].store.team().unwrap().unwrap().device_id;
    BlockingTransport::default()
        .revoke(&mut l.devs[0].store, &lost)
        .expect("revoke");
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    // 11:00 the uplink returns: the central relay refuses the note, and the
    // venue relay's operator is told how many (no id, no content).
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    let after = heartbridge_relay::venue::status(&db)
        .expect("status")
        .expect("a venue relay");
    assert_eq!(after.backlog, 0, "{after:?}");
    assert!(
        after.refused_upstream >= 1 && after.refused_upstream <= before.backlog,
        "{before:?} {after:?}"
    );
    sync_at(&mut l.devs[0], &central_url).expect("lead");
    assert!(!heads(&l.devs[0]).contains_key(id.as_str()));
    // A database that is not a venue relay's says so.
    assert!(heartbridge_relay::venue::status(&l.central.db())
        .expect("status")
        .is_none());
}

#[test]
fn a_venue_relay_sends_its_token_over_plain_http_only_on_loopback_or_when_told() {
    let central = Relay::start();
    let mut devs = team_with(&central, &["组长"], &[]);
    let code = heartbridge_client::invite(&mut devs[0].store, Role::Relay).expect("relay invite");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let db = Venue::db(dir.path());
    // A plain-http upstream off this machine (TEST-NET-1: nothing answers
    // there; the check comes before any connection).
    for upstream in ["http://192.0.2.1:1", "http://relay.example.org"] {
        let err = rt
            .block_on(heartbridge_relay::venue::join(&db, &code, Some(upstream)))
            .expect_err("refused");
        assert!(
            matches!(
                err,
                heartbridge_relay::venue::VenueError::InsecureUpstream(_)
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("https://") && msg.contains("--upstream-insecure-http"),
            "{msg}"
        );
    }
    // The forwarder refuses such an upstream too, before any request.
    Venue::join(dir.path(), &code, &central.url);
    let mut v = VenueConfig::new("http://127.0.0.1:1");
    v.upstream = Some("http://192.0.2.1:1".into());
    let err = heartbridge_relay::venue::Forwarder::open(&db, v.clone())
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            heartbridge_relay::venue::VenueError::InsecureUpstream(_)
        ),
        "{err}"
    );
    // Told so on purpose, it goes ahead.
    v.upstream_insecure_http = true;
    heartbridge_relay::venue::Forwarder::open(&db, v).expect("allowed when told");
}

/// One JSON POST to `base` + `path` over a plain TCP connection (these
/// tests speak to relays on loopback): the status and the JSON answer.
fn post_json(base: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    post_raw(base, path, "application/json", "", body.as_bytes())
}

/// One POST with `headers` (each line ending in CRLF) and a body.
fn post_raw(
    base: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send");
    s.write_all(body).expect("send body");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    let text = String::from_utf8_lossy(&got);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[test]
fn a_venue_relay_refuses_enrollment_and_administration_and_says_where_they_go() {
    let l = the_loop();
    let lead = l.devs[0].store.team().unwrap().unwrap();
    let claim = format!(r#"{{"team_id":"{}","token":"x"}}"#, lead.team_id);
    for path in [
        "/v1/claim",
        "/v1/join",
        "/v1/invites",
        &format!("/v1/devices/{}/revoke", lead.device_id),
    ] {
        let (status, body) = post_json(&l.venue.url, path, &claim);
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"], "central_relay_only", "{path}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains("central relay"), "{path}: {msg}");
        // The central relay still serves them (here: refuses the bad
        // request for its own reasons).
        let (_, body) = post_json(&l.central.url, path, &claim);
        assert_ne!(body["error"], "central_relay_only", "{path}: {body}");
    }
    // What a venue relay is for still works: devices sync there.
    let mut l = l;
    sync_at(&mut l.devs[1], &l.venue.url.clone()).expect("sync at the venue");
}

#[test]
fn a_device_the_venue_relay_has_not_heard_of_is_told_why_not_unknown_token() {
    let mut l = the_loop();
    // A newcomer joins at the central relay while the venue's uplink is
    // down: the venue relay's mirror of the team does not know it.
    uplink_cut(&l.uplink);
    let code = heartbridge_client::invite(&mut l.devs[0].store, Role::Supervisor).expect("invite");
    let mut newcomer = Device::new("志愿者丁");
    heartbridge_client::join(&mut newcomer.store, &code).expect("join");
    newcomer
        .store
        .add_relay(&l.venue.url, None, RelayKind::Venue, false)
        .expect("venue entry");
    let mut t = signed(&newcomer);
    t.http().venue_relay(&l.venue.url, &l.venue.url);
    let (status, kind) = refusal(answer(&newcomer, &l.venue.url, &mut t));
    assert_eq!(
        (status, kind.as_str()),
        (401, "venue_unknown_device"),
        "not unknown_token, whose message says to check the invite code"
    );
    let err = sync_at(&mut newcomer, &l.venue.url.clone()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("central relay") && !msg.contains("invite code"),
        "{msg}"
    );
}

#[test]
fn a_signed_request_binds_its_query_string_too() {
    let l = the_loop();
    let d = &l.devs[1];
    let (dev, secret) = d.store.request_signer().expect("signer");
    let body = heartbridge_core::proto::encode(&heartbridge_core::proto::SyncRequest {
        v: heartbridge_core::proto::PROTOCOL_VERSION,
        cursor: 0,
        push: vec![],
        max_bytes: 0,
        members_since: 0,
        roster_version: 0,
        roster: None,
    });
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let sign = |path: &str| {
        format!(
            "Authorization: {}\r\n",
            heartbridge_core::proto::reqsig::header(
                &secret,
                &dev,
                &l.venue.url,
                secs,
                "POST",
                path,
                &body
            )
        )
    };
    let ct = heartbridge_core::proto::SYNC_CONTENT_TYPE;
    // Signed for the path alone, sent with a query: refused.
    let (status, answer) = post_raw(
        &l.venue.url,
        "/v1/sync?page=2",
        ct,
        &sign("/v1/sync"),
        &body,
    );
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("bad_request_signature")),
        "{answer}"
    );
    // Signed with it: answered; and a request without a query as before.
    let (status, _) = post_raw(
        &l.venue.url,
        "/v1/sync?page=2",
        ct,
        &sign("/v1/sync?page=2"),
        &body,
    );
    assert_eq!(status, 200);
    let (status, _) = post_raw(&l.venue.url, "/v1/sync", ct, &sign("/v1/sync"), &body);
    assert_eq!(status, 200);
}

#[test]
fn a_venue_relay_refuses_an_unknown_signer_before_reading_its_body() {
    use std::io::{Read, Write};
    let l = the_loop();
    let addr = l.venue.url.trim_start_matches("http://").to_owned();
    let stranger = heartbridge_core::proto::DeviceSecret::generate();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let auth = heartbridge_core::proto::reqsig::header(
        &stranger,
        &"ab".repeat(16),
        &l.venue.url,
        secs,
        "POST",
        "/v1/sync",
        b"",
    );
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    // It announces 8 MB and sends none of it: the answer must come anyway,
    // well before the relay's 60 s body timeout.
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/sync HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {}\r\nAuthorization: {auth}\r\nContent-Length: 8000000\r\n\r\n",
        heartbridge_core::proto::SYNC_CONTENT_TYPE
    )
    .expect("send head");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("venue_unknown_device") {
        let n = s.read(&mut buf).expect("an answer before the body");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("venue_unknown_device"), "{answer}");
}

#[test]
fn a_venue_relay_takes_signatures_for_its_fingerprint_and_its_public_address() {
    // As `serve --tls-… --public-url URL` configures it: its id is its
    // certificate's fingerprint, and devices whose entry has no pin sign
    // for the address they know it by (review L1).
    let mut l = the_loop();
    let url = l.venue.url.clone();
    l.venue.stop();
    let addr = url.trim_start_matches("http://").parse().ok();
    let mut again = Venue::start_with(&l.venue.dir, &l.venue.upstream, addr, |c| {
        let v = c.venue.as_mut().expect("venue");
        v.relay_id = format!("sha256:{}", "B".repeat(43));
        v.public_urls = vec![url.clone()];
    });
    l.venue.stop = again.stop.take();
    l.venue.thread = again.thread.take();
    let d = &l.devs[1];
    let (dev, secret) = d.store.request_signer().expect("signer");
    for id in [url.clone(), format!("sha256:{}", "B".repeat(43))] {
        let mut t = BlockingTransport::default();
        t.http().set_signer(&dev, secret.clone());
        t.http().venue_relay(&url, &id);
        answer(d, &url, &mut t).unwrap_or_else(|e| panic!("signed for {id}: {e:?}"));
    }
    let mut other = BlockingTransport::default();
    other.http().set_signer(&dev, secret);
    other.http().venue_relay(&url, "http://another.venue:7070");
    assert_eq!(
        refusal(answer(d, &url, &mut other)),
        (401, "bad_request_signature".into())
    );
}

#[test]
fn a_venue_relay_forwards_an_escalated_case_first_without_knowing_its_risk() {
    let mut l = the_loop();
    uplink_cut(&l.uplink);
    // Inside the loop, uplink down: three low cases written in order, then
    // the newest raised to high and the oldest given another contact.
    let third = new_case(&mut l.devs[1], Risk::Low, "聊了很久");
    let second = new_case(&mut l.devs[1], Risk::Low, "约了下周");
    let first = new_case(&mut l.devs[1], Risk::Low, "第一次来电");
    l.devs[1]
        .store
        .update_case(
            &first,
            &heartbridge_core::CaseUpdate {
                risk: Some(Risk::High),
                ..Default::default()
            },
        )
        .expect("raise");
    l.devs[1]
        .store
        .add_contact(&third, Channel::Online, "又来了消息", None)
        .expect("contact");
    let url = l.venue.url.clone();
    sync_at(&mut l.devs[1], &url).expect("sync at the venue");
    assert!(l.venue.backlog() >= 3, "nothing could go up yet");

    // The uplink returns: the venue relay forwards its log in the order the
    // device pushed it, so the centre stores the escalated case first.
    uplink_restore(&l.uplink);
    l.venue.wait_forwarded();
    let docs = [first.as_str(), second.as_str(), third.as_str()];
    let order = l.central.doc_order(&docs);
    assert!(order.len() >= 3, "{order:?}");
    heartbridge_tests::assert_first_before_the_rest(&order, first.as_str());
}

/// The central relay is restored from a backup taken before the venue
/// relay forwarded a shift (issue 11 (h) 2): the venue relay sees the
/// central relay's new log id, pulls it again from the start and forwards
/// its whole log again; the lead, outside, sees it too and pushes what it
/// holds. Every case ends on every device, each envelope once per relay.
#[test]
fn a_central_relay_restored_from_a_backup_gets_the_venue_s_shift_again() {
    let mut l = the_loop();
    let mut cases = BTreeSet::new();
    let backup = l.central.dir.path().join("backup.db");
    heartbridge_relay::backup::backup_sqlite(&l.central.db(), &backup).expect("backup");
    for i in 1..=3 {
        let id = new_case(&mut l.devs[i], Risk::Medium, &format!("{CANARY} 恢复前{i}"));
        cases.insert(id.as_str().to_owned());
        sync_at(&mut l.devs[i], &l.venue.url.clone()).expect("sync at the venue");
    }
    l.venue.wait_forwarded();
    // Level 2: the central relay holds them; they leave the outboxes.
    for i in 1..=3 {
        sync_at(&mut l.devs[i], &l.venue.url.clone()).expect("sync at the venue");
        assert_eq!(l.devs[i].store.outbox_len().expect("outbox"), 0);
    }
    let r = sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead sync");
    assert!(r.pulled >= 3, "{r:?}");

    // The central relay goes back to the backup: the shift is gone there.
    l.central.restart(|db: &Path| {
        heartbridge_relay::backup::restore_sqlite(&backup, db, true).expect("restore");
    });
    let central_log: Vec<u8> = rusqlite::Connection::open(l.central.db())
        .expect("central db")
        .query_row("SELECT log_id FROM relay_log", [], |r| r.get(0))
        .expect("log id");
    // The venue relay notices in its own time, then forwards again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Option<Vec<u8>> = l
            .venue
            .conn()
            .query_row("SELECT upstream_log_id FROM venue WHERE id = 1", [], |r| {
                r.get(0)
            })
            .expect("venue row");
        if seen.as_deref() == Some(&central_log[..]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the venue relay did not see the central relay's new log id within 20 s"
        );
        wait_a_moment();
    }
    l.venue.wait_forwarded();
    let r = sync_at(&mut l.devs[0], &l.central.url.clone()).expect("lead sync");
    assert!(r.relay_restored, "{r:?}");
    settle(&mut l, &[true, true, true]);
    assert_converged(&l, &cases);
}
