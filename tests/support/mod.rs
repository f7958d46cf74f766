//! Test support: a real relay on a loopback port, and devices that are
//! real profiles (SQLite files) syncing through real HTTP.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::{Role, TeamCreated};
use heartbridge_core::{Case, Store, SyncOptions, SyncReport, Transport};

/// A relay serving on 127.0.0.1:random in its own runtime thread; stops
/// gracefully when dropped.
pub struct Relay {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// What it serves: its SQLite file in `dir`, or a PostgreSQL database.
    pub database: heartbridge_relay::config::Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    pub fn start() -> Relay {
        Relay::start_with(|_| {})
    }

    pub fn start_with(tune: impl FnOnce(&mut heartbridge_relay::Config)) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = heartbridge_relay::config::Database::Sqlite(dir.path().join("relay.db"));
        Relay::start_serving(dir, database, tune)
    }

    /// A relay over a PostgreSQL database (`postgres://…`).
    pub fn start_on_postgres(url: &str) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = heartbridge_relay::config::Database::parse(url).expect("a PostgreSQL URL");
        Relay::start_serving(dir, database, |_| {})
    }

    fn start_serving(
        dir: tempfile::TempDir,
        database: heartbridge_relay::config::Database,
        tune: impl FnOnce(&mut heartbridge_relay::Config),
    ) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut relay = Relay {
            url,
            dir,
            database,
            stop: None,
            thread: None,
        };
        relay.serve(listener, tune);
        relay
    }

    fn serve(
        &mut self,
        listener: std::net::TcpListener,
        tune: impl FnOnce(&mut heartbridge_relay::Config),
    ) {
        let mut config = heartbridge_relay::Config::new(self.db());
        config.database = self.database.clone();
        tune(&mut config);
        listener.set_nonblocking(true).expect("nonblocking");
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
                .expect("relay ran");
            });
        });
        ready
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("relay started");
        self.stop = Some(stop);
        self.thread = Some(thread);
    }

    /// Stops the relay gracefully, runs `between` with its database file
    /// (a restore, say), and serves it again at the same address with the
    /// default configuration.
    pub fn restart(&mut self, between: impl FnOnce(&Path)) {
        self.halt();
        between(&self.db());
        self.serve_again();
    }

    /// Stops the relay and serves `database` at the same address (a
    /// PostgreSQL database restored into a new one, say).
    pub fn restart_on(&mut self, database: heartbridge_relay::config::Database) {
        self.halt();
        self.database = database;
        self.serve_again();
    }

    fn serve_again(&mut self) {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind(&addr).expect("bind the same address again");
        self.serve(listener, |_| {});
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("the relay thread ended");
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }

    pub fn create_team(&self, name: &str) -> TeamCreated {
        heartbridge_relay::create_team_in(&self.database, name).expect("team create")
    }

    /// The relay's envelopes of `docs` (document ids, lower-case hex), in
    /// the order it stored them.
    pub fn doc_order(&self, docs: &[&str]) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.db()).expect("open relay db");
        let mut st = conn
            .prepare("SELECT lower(hex(doc)) FROM envelopes ORDER BY seq")
            .expect("query");
        let all: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("docs");
        all.into_iter()
            .filter(|d| docs.contains(&d.as_str()))
            .collect()
    }

    /// Envelopes the relay still serves of one document.
    pub fn envelope_count_of(&self, doc: &heartbridge_core::DocId) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).expect("open relay db");
        conn.query_row(
            "SELECT count(*) FROM envelopes WHERE superseded_at IS NULL AND lower(hex(doc)) = ?1",
            [doc.as_str()],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// Envelope rows the relay holds.
    /// Envelopes the relay still serves (what a snapshot superseded is
    /// kept through the grace period, but served to no one).
    pub fn envelope_count(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).expect("open relay db");
        conn.query_row(
            "SELECT count(*) FROM envelopes WHERE superseded_at IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// Every byte of every file in the relay's directory.
    pub fn all_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .map(|p| {
                let b = std::fs::read(&p).expect("read");
                (p, b)
            })
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A device: one profile directory.
pub struct Device {
    pub name: String,
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl Device {
    pub fn new(name: &str) -> Device {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::init(
            &dir.path().join("profile"),
            name,
            &heartbridge_core::testing::protection(),
        )
        .expect("init");
        Device {
            name: name.to_owned(),
            store,
            _dir: dir,
        }
    }

    pub fn profile_dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn sync(&mut self) -> SyncReport {
        self.sync_with(&mut BlockingTransport::default(), &SyncOptions::default())
            .unwrap_or_else(|e| panic!("{} sync failed: {e}", self.name))
    }

    pub fn sync_with(
        &mut self,
        t: &mut dyn Transport,
        opts: &SyncOptions,
    ) -> heartbridge_core::Result<SyncReport> {
        self.store.sync(t, opts, &mut |_| {})
    }

    pub fn case(&self, id: &heartbridge_core::DocId) -> Case {
        self.store.case(id).expect("case")
    }
}

/// A team whose every member reads every case: a lead who claimed it and
/// lets the lead read cases, plus supervisors who joined by invite. (Who
/// reads which case is tested on its own: `crates/cli/tests/need_to_know.rs`.)
pub fn team(relay: &Relay, names: &[&str]) -> Vec<Device> {
    team_with(
        relay,
        names,
        &vec![Role::Supervisor; names.len().saturating_sub(1)],
    )
}

/// A team with the lead (who reads cases) and one device per role.
pub fn team_with(relay: &Relay, names: &[&str], roles: &[Role]) -> Vec<Device> {
    let created = relay.create_team("test team");
    let mut lead = Device::new(names[0]);
    heartbridge_client::claim(&mut lead.store, &relay.url, created.lead_token.expose())
        .expect("claim");
    lead.store
        .set_lead_reads_cases(true)
        .expect("the lead reads cases");
    let mut out = vec![lead];
    for (name, role) in names[1..].iter().zip(roles) {
        let code = heartbridge_client::invite(&mut out[0].store, *role).expect("invite");
        let mut d = Device::new(name);
        heartbridge_client::join(&mut d.store, &code).expect("join");
        out.push(d);
    }
    out
}

/// Syncs every device, in the given order, until a whole pass moves
/// nothing. Returns the number of passes.
pub fn sync_until_quiet(devices: &mut [Device], order: &[usize]) -> usize {
    for pass in 1..=10 {
        let mut moved = 0;
        for &i in order {
            let r = devices[i].sync();
            moved += r.pulled + r.pushed;
        }
        if moved == 0 {
            return pass;
        }
    }
    panic!("devices did not go quiet in 10 passes");
}

/// In `order` (document ids), `first` comes first and everything of it
/// before anything of another document.
pub fn assert_first_before_the_rest(order: &[String], first: &str) {
    assert_eq!(
        order.first().map(String::as_str),
        Some(first),
        "the escalated case is not the first case: {order:?}"
    );
    let last_first = order.iter().rposition(|d| d == first).expect("first");
    let first_other = order.iter().position(|d| d != first).expect("others");
    assert!(last_first < first_other, "{order:?}");
}
