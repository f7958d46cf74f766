//! A relay process killed with SIGKILL in the middle of pushes on PostgreSQL
//! (issue 11): two `heartbridge-relay serve` processes (the real binary) on
//! one database of a throw-away cluster (`heartbridge-pgtest`); devices push
//! through relay A, A is killed at a moment drawn from a seeded RNG, the
//! devices that got no answer retry through relay B, and later through a
//! restarted A. After every run the database and every device's view are
//! checked: every acknowledged envelope is stored once, at the seq it was
//! acknowledged with; every device ends with every teammate's envelopes and
//! both relays serve the same log; no cursor a device was given passed an
//! envelope the device had not received; `teams.next_seq` follows the highest
//! stored seq; every push request is stored whole by one transaction.
//!
//! The kill moment is one of three kinds (drawn per seed):
//! - after the devices saw `n` acks, plus up to 20 ms;
//! - the instant the test sees relay A's `k`-th write transaction in flight
//!   (`pg_stat_activity.backend_xid`, A's connections carry their own
//!   `application_name`): it may commit or not, both must hold;
//! - while A's write batch is held inside its transaction (the team locked,
//!   envelopes inserted, before COMMIT): the test holds a row lock on one
//!   pushing device's row, which that batch's insert waits for, kills A,
//!   then lets go. That transaction must end aborted, leaving no row. A
//!   backend waiting for a lock does not notice its client died, so the dead
//!   relay's team lock lasts until that wait ends; in half of these runs A's
//!   connections set `client_connection_check_interval`, and the test keeps
//!   its row lock until PostgreSQL has ended A's transaction by itself.
//!
//! After the kill, relay B must commit a push to the same team (the dead
//! relay's team lock must not stay held), and the test polls until
//! PostgreSQL has dropped every connection of A; both waits are printed
//! (`--nocapture`), never asserted as times.
//!
//! `HEARTBRIDGE_KILL_SEEDS=N` runs seeds 0..N instead of the default few.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{within, Client, EnrolledDevice, RelayProcess, WAIT};
use heartbridge_pgtest::PgCluster;
use heartbridge_proto::{encode, ContentId, Envelope, Role, TeamId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

/// Seeds run by default: two of each kind of kill moment and more, within
/// the suite's time budget.
const DEFAULT_SEEDS: u64 = 9;
/// Devices pushing at once (a lead and volunteers), beside the probe.
const DEVICES: usize = 4;

/// Where the devices sync: relay A (`a_gen` 0, then a restarted A) and B.
struct Route {
    a: SocketAddr,
    a_gen: u32,
    b: SocketAddr,
}

/// One device as the test follows it: a real device's sync state (cursor,
/// what it received, what it saw acknowledged) and the relay it uses.
struct Device {
    n: usize,
    me: EnrolledDevice,
    on_b: bool,
    a_gen: u32,
    cursor: u64,
    more: bool,
    /// The cursor each answered sync gave, in order.
    cursors: Vec<u64>,
    /// Every envelope received: its seq and the index of the sync that
    /// brought it.
    arrived: HashMap<ContentId, (u64, usize)>,
    /// Every envelope acknowledged to this device, with its seq.
    acked: HashMap<ContentId, u64>,
    /// The envelopes of each push request, in push order.
    requests: Vec<Vec<ContentId>>,
    /// Syncs that got no answer (or 503) and were retried elsewhere.
    failed: usize,
    /// Answered syncs through A, B and the restarted A.
    through: [usize; 3],
}

impl Device {
    fn new(n: usize, me: EnrolledDevice) -> Device {
        Device {
            n,
            me,
            on_b: false,
            a_gen: 0,
            cursor: 0,
            more: false,
            cursors: Vec::new(),
            arrived: HashMap::new(),
            acked: HashMap::new(),
            requests: Vec::new(),
            failed: 0,
            through: [0; 3],
        }
    }

    /// One sync pushing `push`; false if it got no answer (the device then
    /// turns to the other relay), as a device with two relays does. A
    /// device on B goes back to A once A is restarted.
    async fn sync_once(&mut self, route: &Mutex<Route>, push: &[Envelope]) -> bool {
        let (addr, via) = {
            let r = route.lock().expect("route");
            if r.a_gen > self.a_gen {
                self.a_gen = r.a_gen;
                self.on_b = false;
            }
            if self.on_b {
                (r.b, 1)
            } else {
                (r.a, if r.a_gen == 0 { 0 } else { 2 })
            }
        };
        let body = encode(&common::request(self.cursor, push.to_vec(), 0));
        let answer = within("a sync", common::try_sync(addr, &self.me.token, body)).await;
        let r = match answer {
            Some((200, Some(r))) => r,
            Some((503, _)) | None => {
                self.failed += 1;
                self.on_b = !self.on_b;
                return false;
            }
            Some((status, _)) => panic!("device {}: a sync answered {status}", self.n),
        };
        let pushed: Vec<ContentId> = push.iter().map(|e| e.id).collect();
        let acked: Vec<ContentId> = r.acked.iter().map(|a| a.id).collect();
        assert_eq!(acked, pushed, "device {}: one ack per envelope", self.n);
        for a in &r.acked {
            assert!(a.seq > 0, "device {}: an ack without a seq", self.n);
            if let Some(before) = self.acked.insert(a.id, a.seq) {
                assert_eq!(before, a.seq, "device {}: acked at two seqs", self.n);
            }
        }
        assert!(r.cursor >= self.cursor, "the cursor never goes back");
        let i = self.cursors.len();
        for p in &r.pull {
            assert!(
                p.seq > self.cursor,
                "device {}: pulled at its cursor",
                self.n
            );
            assert!(
                p.seq <= r.cursor,
                "device {}: pulled past the cursor",
                self.n
            );
            let again = self.arrived.insert(p.envelope.id, (p.seq, i));
            assert!(again.is_none(), "device {}: an envelope twice", self.n);
        }
        self.cursor = r.cursor;
        self.cursors.push(r.cursor);
        self.more = r.more;
        self.through[via] += 1;
        true
    }

    /// Pushes `batch` until a relay acknowledges it (the same request again
    /// after a failure: the device has no ack for any of it).
    async fn push(&mut self, route: &Mutex<Route>, batch: Vec<Envelope>) {
        self.requests.push(batch.iter().map(|e| e.id).collect());
        let mut tries = 0;
        while !self.sync_once(route, &batch).await {
            tries += 1;
            assert!(tries < 40, "device {}: no relay takes its push", self.n);
            // A device's retry back-off (the relays are on loopback).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Pulls until the relay says nothing more waits.
    async fn catch_up(&mut self, route: &Mutex<Route>) {
        loop {
            let mut tries = 0;
            while !self.sync_once(route, &[]).await {
                tries += 1;
                assert!(tries < 40, "device {}: no relay answers", self.n);
            }
            if !self.more {
                return;
            }
        }
    }
}

/// How the kill moment is picked.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// After this many acknowledged pushes, plus this many milliseconds.
    AfterAcks(usize, u64),
    /// The instant A's `k`-th write transaction is seen in flight.
    InWriteTransaction(usize),
    /// After this many acks, A's next batch holding the team lock is held
    /// before COMMIT by a row lock on a pushing device's row; with `true`,
    /// A's connections have `client_connection_check_interval` set and the
    /// row lock stays until PostgreSQL has ended A's transaction by itself.
    HeldBeforeCommit(usize, bool),
}

/// What one run saw, printed with `--nocapture`.
#[derive(Debug, Default)]
struct Seen {
    acks_before_kill: usize,
    /// Held mode: A's batch still waiting in PostgreSQL after the kill.
    held_after_kill: Option<bool>,
    /// A's write transactions in flight when it was killed, and how
    /// PostgreSQL ended them.
    in_flight: Vec<(String, String)>,
    /// From the kill until PostgreSQL had dropped every connection of A.
    noticed: Duration,
    /// From the kill until B acknowledged a push to the same team.
    b_committed: Duration,
    failed_syncs: usize,
    through: [usize; 3],
    stored: usize,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

/// The count `sql` (one text parameter) answers.
async fn count(db: &tokio_postgres::Client, sql: &str, param: &str) -> i64 {
    db.query_one(sql, &[&param])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The xids of the write transactions of connections named `app`.
async fn write_xids(db: &tokio_postgres::Client, app: &str) -> Vec<String> {
    db.query(
        "SELECT backend_xid::text FROM pg_stat_activity
         WHERE application_name = $1 AND backend_xid IS NOT NULL",
        &[&app],
    )
    .await
    .expect("read pg_stat_activity")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Starts a relay process over `url`, its connections named `app`, with
/// more URL parameters `more` (`&key=value…`, or empty).
async fn start_relay(url: &str, app: &str, more: &str) -> RelayProcess {
    let db = format!("{url}?application_name={app}{more}");
    tokio::task::spawn_blocking(move || RelayProcess::start(&db, &[]))
        .await
        .expect("start relay")
}

/// The notes of one push: a few, or now and then a large batch (a write
/// batch that takes a while inside its transaction).
fn plan(rng: &mut StdRng) -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..rng.random_range(5..9))
        .map(|_| {
            if rng.random_bool(0.3) {
                rng.random_range(150..400)
            } else {
                rng.random_range(1..6)
            }
        })
        .collect();
    // At least one large push per device.
    let at = rng.random_range(0..sizes.len());
    sizes[at] = rng.random_range(150..400);
    sizes
}

async fn run(cluster: &PgCluster, seed: u64) -> (Moment, Seen) {
    let mut rng = StdRng::seed_from_u64(seed);
    let url = cluster.new_database();
    let app_a = "hb-relay-a";
    let b = start_relay(&url, "hb-relay-b", "").await;
    let db = connect(&url).await;
    let team = Arc::new(common::pg::team(&url).await);
    let cb = Client::new(b.addr);
    let lead = team.claim(&cb, "Lead").await;
    let mut members = vec![lead.clone()];
    for i in 1..DEVICES {
        members.push(
            team.add(&cb, &lead, Role::Volunteer, &format!("V{i}"))
                .await,
        );
    }
    let probe = team.add(&cb, &lead, Role::Volunteer, "Probe").await;

    // Every device's pushes, sealed and signed beforehand.
    let mut plans = Vec::new();
    for (n, me) in members.iter().enumerate() {
        let batches: Vec<Vec<Envelope>> = plan(&mut rng)
            .into_iter()
            .enumerate()
            .map(|(k, size)| {
                (0..size)
                    .map(|i| {
                        let text = format!("{seed}/{n}/{k}/{i} {}", "note ".repeat(60));
                        team.change(me, common::doc(), text.as_bytes())
                    })
                    .collect()
            })
            .collect();
        plans.push(batches);
    }
    let total_pushes: usize = plans.iter().map(Vec::len).sum();
    let moment = match rng.random_range(0..3) {
        0 => Moment::AfterAcks(rng.random_range(0..total_pushes), rng.random_range(0..20)),
        1 => Moment::InWriteTransaction(rng.random_range(1..6)),
        _ => Moment::HeldBeforeCommit(rng.random_range(0..total_pushes / 2), rng.random_bool(0.5)),
    };
    let a = match moment {
        // PostgreSQL then checks every 50 ms, even while a statement waits
        // for a lock, whether A's connections are still there.
        Moment::HeldBeforeCommit(_, true) => {
            let checked = "&options=-c%20client_connection_check_interval%3D50";
            start_relay(&url, app_a, checked).await
        }
        _ => start_relay(&url, app_a, "").await,
    };

    let mut tasks = Vec::new();
    let route = Arc::new(Mutex::new(Route {
        a: a.addr,
        a_gen: 0,
        b: b.addr,
    }));
    let (acks_tx, mut acks_rx) = watch::channel(0usize);
    let acks_tx = Arc::new(acks_tx);
    for (n, batches) in plans.into_iter().enumerate() {
        let (route, acks_tx) = (Arc::clone(&route), Arc::clone(&acks_tx));
        let mut d = Device::new(n, members[n].clone());
        tasks.push(tokio::spawn(async move {
            for batch in batches {
                d.push(&route, batch).await;
                acks_tx.send_modify(|c| *c += 1);
            }
            d
        }));
    }
    let mut seen = Seen::default();
    // The transaction that held A's batch, to let go of after the kill.
    let mut holder: Option<tokio_postgres::Client> = None;
    match moment {
        Moment::AfterAcks(n, ms) => {
            within("acks before the kill", acks_rx.wait_for(|c| *c >= n))
                .await
                .expect("ack counter");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Moment::InWriteTransaction(k) => {
            // Poll pg_stat_activity as fast as it answers; stop at the k-th
            // write transaction (or when the pushes are over).
            let mut xids = HashSet::new();
            let start = Instant::now();
            while xids.len() < k && *acks_rx.borrow() < total_pushes {
                xids.extend(write_xids(&db, app_a).await);
                assert!(start.elapsed() < WAIT, "no write transaction of A seen");
            }
        }
        Moment::HeldBeforeCommit(n, _) => {
            within("acks before the hold", acks_rx.wait_for(|c| *c >= n))
                .await
                .expect("ack counter");
            // Any device with pushes left; its next batch's insert (the
            // foreign key to its row) waits for this lock, with the team
            // lock held and seqs taken.
            let h = connect(&url).await;
            let pushing = members[rng.random_range(0..DEVICES)].device_id();
            h.batch_execute("BEGIN").await.expect("begin");
            h.execute(
                "SELECT 1 FROM devices WHERE id = $1 FOR UPDATE",
                &[&&pushing[..]],
            )
            .await
            .expect("lock a device row");
            let start = Instant::now();
            loop {
                let held = db
                    .query(
                        "SELECT 1 FROM pg_stat_activity WHERE application_name = $1
                         AND backend_xid IS NOT NULL AND wait_event_type = 'Lock'",
                        &[&app_a],
                    )
                    .await
                    .expect("read pg_stat_activity");
                if !held.is_empty() {
                    break;
                }
                assert!(
                    start.elapsed() < WAIT,
                    "A's batch never waited for the held device row"
                );
                tokio::task::yield_now().await;
            }
            holder = Some(h);
        }
    }

    // The kill.
    let in_flight = write_xids(&db, app_a).await;
    seen.acks_before_kill = *acks_rx.borrow();
    tokio::task::spawn_blocking(move || a.kill())
        .await
        .expect("kill task");
    let killed = Instant::now();
    if let Some(h) = holder.take() {
        // Waiting for a lock, A's backend cannot notice its client is gone
        // (PostgreSQL only checks when it reads or writes the socket, or
        // every client_connection_check_interval, off by default).
        let left = count(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
             AND wait_event_type = 'Lock'",
            app_a,
        )
        .await;
        seen.held_after_kill = Some(left > 0);
        if let Moment::HeldBeforeCommit(_, true) = moment {
            // Kept until PostgreSQL noticed A is gone (below).
            holder = Some(h);
        } else {
            h.batch_execute("ROLLBACK")
                .await
                .expect("let go of the row");
        }
    }

    // B commits to the same team at once (waiting, at most, for
    // PostgreSQL to end the dead relay's transaction), and PostgreSQL
    // drops every connection of A.
    let probe_env = team.change(&probe, common::doc(), b"after the kill");
    let probe_id = probe_env.id;
    let cb2 = cb;
    let probe_token = probe.token.clone();
    let probe_push = async move {
        let r = cb2.sync(&probe_token, 0, vec![probe_env], 0).await;
        assert_eq!(r.acked.len(), 1);
        assert_eq!(r.acked[0].id, probe_id);
        (killed.elapsed(), r.acked[0].seq)
    };
    let gone = async {
        loop {
            let left = count(
                &db,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                app_a,
            )
            .await;
            if left == 0 {
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let ((b_committed, probe_seq), noticed) =
        within("B's push after the kill and A's connections to go", async {
            tokio::join!(probe_push, gone)
        })
        .await;
    seen.b_committed = b_committed;
    seen.noticed = noticed;
    if let Some(h) = holder.take() {
        h.batch_execute("ROLLBACK")
            .await
            .expect("let go of the row");
    }
    for xid in in_flight {
        let status: Option<String> = db
            .query_one("SELECT pg_xact_status($1::text::xid8)", &[&xid])
            .await
            .expect("pg_xact_status")
            .get(0);
        let status = status.unwrap_or_default();
        assert!(
            status == "committed" || status == "aborted",
            "A's transaction {xid} still {status:?} after its connections went"
        );
        if status == "aborted" {
            let rows = count(
                &db,
                "SELECT count(*) FROM envelopes WHERE xmin::text = $1",
                &xid,
            )
            .await;
            assert_eq!(rows, 0, "rows of an aborted transaction are visible");
        }
        seen.in_flight.push((xid, status));
    }
    if let Moment::HeldBeforeCommit(..) = moment {
        assert!(
            seen.in_flight.iter().any(|(_, s)| s == "aborted"),
            "the held batch of the killed relay ended {:?}, not aborted",
            seen.in_flight
        );
    }

    // A comes back; the devices return to it.
    let a2 = start_relay(&url, "hb-relay-a2", "").await;
    {
        let mut r = route.lock().expect("route");
        r.a = a2.addr;
        r.a_gen = 1;
    }
    let mut devices = Vec::new();
    for t in tasks {
        devices.push(within("a device's pushes", t).await.expect("device task"));
    }
    for d in &mut devices {
        d.catch_up(&route).await;
        // Through the other relay too: nothing more there either.
        d.on_b = !d.on_b;
        let before = d.arrived.len();
        d.catch_up(&route).await;
        assert_eq!(d.arrived.len(), before, "device {}: B and A agree", d.n);
    }

    check(&db, &team.id, &devices, (probe_id, probe_seq), &mut seen).await;

    // Both relays serve the same log from 0.
    let (ca2, cb) = (Client::new(a2.addr), Client::new(b.addr));
    for d in &devices {
        let (at_a, _) = ca2.pull_all(&d.me.token, 0, 0).await;
        let (at_b, _) = cb.pull_all(&d.me.token, 0, 0).await;
        let log = |pages: &[heartbridge_proto::SyncResponse]| -> Vec<(u64, ContentId)> {
            pages
                .iter()
                .flat_map(|p| p.pull.iter().map(|e| (e.seq, e.envelope.id)))
                .collect()
        };
        let (la, lb) = (log(&at_a), log(&at_b));
        assert_eq!(la, lb, "device {}: both relays serve one log", d.n);
        let mut got: Vec<(u64, ContentId)> =
            d.arrived.iter().map(|(id, (seq, _))| (*seq, *id)).collect();
        got.sort();
        assert_eq!(la, got, "device {}: the log from 0 is what it got", d.n);
    }
    for d in &devices {
        seen.failed_syncs += d.failed;
        for (i, n) in d.through.iter().enumerate() {
            seen.through[i] += n;
        }
    }
    drop(a2);
    drop(b);
    (moment, seen)
}

/// The invariants, against the database and every device's record.
async fn check(
    db: &tokio_postgres::Client,
    team: &TeamId,
    devices: &[Device],
    probe: (ContentId, u64),
    seen: &mut Seen,
) {
    let team_id = &team.0[..];
    let rows = db
        .query(
            "SELECT content_id, seq, author_device, xmin::text FROM envelopes WHERE team_id = $1",
            &[&team_id],
        )
        .await
        .expect("read envelopes");
    // (seq, author, xmin) by content id; each content id once.
    let mut stored: HashMap<ContentId, (u64, Vec<u8>, String)> = HashMap::new();
    let mut seqs = BTreeSet::new();
    for r in &rows {
        let id: Vec<u8> = r.get(0);
        let id = ContentId(id.try_into().expect("16-byte content id"));
        let seq: i64 = r.get(1);
        let seq = u64::try_from(seq).expect("positive seq");
        assert!(seqs.insert(seq), "seq {seq} stored twice");
        let again = stored.insert(id, (seq, r.get(2), r.get(3)));
        assert!(again.is_none(), "{id:?} stored twice");
    }
    seen.stored = stored.len();

    // Every acknowledged envelope stored once, at the seq it was acked with;
    // and nothing stored that nobody pushed.
    let mut pushed: HashSet<ContentId> = HashSet::from([probe.0]);
    assert_eq!(stored.get(&probe.0).map(|s| s.0), Some(probe.1));
    for d in devices {
        for (id, seq) in &d.acked {
            assert_eq!(
                stored.get(id).map(|s| s.0),
                Some(*seq),
                "device {}: an acked envelope is not stored at its seq",
                d.n
            );
        }
        for req in &d.requests {
            pushed.extend(req.iter().copied());
            assert!(req.iter().all(|id| d.acked.contains_key(id)));
        }
    }
    let ids: HashSet<ContentId> = stored.keys().copied().collect();
    assert_eq!(ids, pushed, "the stored envelopes are the pushed ones");

    // Every push request stored whole by one transaction (none half-written,
    // none completed by a later retry).
    for d in devices {
        for req in &d.requests {
            let xmins: HashSet<&str> = req.iter().map(|id| stored[id].2.as_str()).collect();
            assert_eq!(
                xmins.len(),
                1,
                "device {}: a push of {} stored by {} transactions",
                d.n,
                req.len(),
                xmins.len()
            );
        }
    }

    // The team's counter follows its highest seq.
    let next: i64 = db
        .query_one("SELECT next_seq FROM teams WHERE id = $1", &[&team_id])
        .await
        .expect("read next_seq")
        .get(0);
    let max = seqs.last().copied().unwrap_or(0);
    assert_eq!(
        u64::try_from(next).expect("positive"),
        max + 1,
        "next_seq after max seq"
    );

    // Every device got every teammate's envelope; no cursor it was given
    // passed one it had not received by then.
    for d in devices {
        let own = d.me.device_id();
        for (id, (seq, author, _)) in &stored {
            if author[..] == own[..] {
                assert!(!d.arrived.contains_key(id), "device {}: its own back", d.n);
                continue;
            }
            let (got_seq, at) = *d
                .arrived
                .get(id)
                .unwrap_or_else(|| panic!("device {}: a teammate's {id:?} missing", d.n));
            assert_eq!(got_seq, *seq, "device {}: pulled at another seq", d.n);
            // The first sync whose cursor reached this seq must have
            // brought it (or an earlier one).
            let first = d.cursors.partition_point(|c| c < seq);
            assert!(
                at <= first,
                "device {}: cursor {} (sync {first}) passed seq {seq}, which arrived at sync {at}",
                d.n,
                d.cursors.get(first).copied().unwrap_or(0)
            );
        }
    }
}

fn seeds() -> u64 {
    std::env::var("HEARTBRIDGE_KILL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_push_loses_and_doubles_nothing() {
    let cluster = PgCluster::start();
    for seed in 0..seeds() {
        let started = Instant::now();
        let (moment, seen) = run(&cluster, seed).await;
        eprintln!(
            "seed {seed}: killed {moment:?}: {seen:?}, run {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}
