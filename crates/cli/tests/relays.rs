//! `heartbridge team relays` and a sync across more than one relay (issue
//! 10, decision 5), through the real binary against two real relays on
//! loopback: entries are added, listed and removed, the team's own relay
//! cannot be removed, a sync falls over when the first relay is down, and
//! each relay keeps its own cursor, so a device moving A → B → A pulls
//! nothing twice from a relay and misses nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn hb(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env(
            "HEARTBRIDGE_PASSPHRASE",
            heartbridge_core::testing::TEST_PIN,
        )
        .output()
        .expect("run heartbridge")
}

fn ok(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn fails(profile: &Path, args: &[&str]) -> String {
    let out = hb(profile, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pulled(profile: &Path) -> u64 {
    ok(profile, &["sync"])["pulled"].as_u64().expect("pulled")
}

fn urls(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_owned())
        .collect()
}

/// The real `heartbridge-relay` binary on a loopback port with its own
/// database; killed on drop. `restart` serves the same database on the same
/// port again.
struct RelayProc {
    db: PathBuf,
    args: Vec<String>,
    addr: Option<SocketAddr>,
    child: Option<Child>,
    url: String,
}

fn relay_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_heartbridge"))
        .parent()
        .expect("the binary's directory")
        .join(format!("heartbridge-relay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p heartbridge-relay` first",
        bin.display()
    );
    bin
}

impl RelayProc {
    fn start(db: PathBuf) -> RelayProc {
        RelayProc::start_with(db, &[])
    }

    fn start_with(db: PathBuf, args: &[&str]) -> RelayProc {
        let mut r = RelayProc {
            db,
            args: args.iter().map(|a| a.to_string()).collect(),
            addr: None,
            child: None,
            url: String::new(),
        };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let listen = self
            .addr
            .map_or("127.0.0.1:0".to_owned(), |a| a.to_string());
        let mut child = Command::new(relay_bin())
            .args(["serve", "--listen", &listen, "--db"])
            .arg(&self.db)
            .args(&self.args)
            .env("HEARTBRIDGE_RELAY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the relay");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(a.trim().to_owned());
                    }
                }
            }
        });
        let said = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay says where it listens");
        let addr: SocketAddr = said.parse().expect("an address");
        self.addr = Some(addr);
        self.url = format!("http://{addr}");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn envelope_count(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open relay db");
        conn.query_row(
            "SELECT count(*) FROM envelopes WHERE superseded_at IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count")
    }

    /// A copy of this relay's database (the same team, devices and tokens,
    /// and the envelopes it holds now), for a second, independent relay.
    fn copy_db(&self, to: &Path) -> PathBuf {
        let conn = rusqlite::Connection::open(&self.db).expect("open relay db");
        conn.execute("VACUUM INTO ?1", [to.to_str().unwrap()])
            .expect("copy the relay's database");
        to.to_owned()
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn relays_are_listed_added_and_removed_and_sync_falls_over_with_a_cursor_per_relay() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = RelayProc::start(dir.path().join("a.db"));
    let created = heartbridge_relay::create_team(&a.db, "会场组").unwrap();
    let lead = dir.path().join("lead");
    let sup = dir.path().join("sup");
    ok(
        &lead,
        &[
            "team",
            "claim",
            "--relay",
            &a.url,
            "--token",
            created.lead_token.expose(),
            "--name",
            "林老师",
        ],
    );
    let code = ok(&lead, &["team", "invite", "--role", "supervisor"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let code_file = dir.path().join("code");
    std::fs::write(&code_file, &code).unwrap();
    ok(
        &sup,
        &[
            "join",
            "--code-file",
            code_file.to_str().unwrap(),
            "--name",
            "王督导",
        ],
    );

    // The team's relay is always an entry and cannot be removed.
    let list = ok(&sup, &["team", "relays", "list"]);
    assert_eq!(urls(&list), vec![a.url.clone()]);
    assert_eq!(list[0]["team_relay"], true);
    let err = fails(&sup, &["team", "relays", "remove", &a.url]);
    assert!(err.contains("cannot be removed"), "{err}");

    // c1 reaches the supervisor through A.
    let c1 = ok(&lead, &["case", "new", "--alias", "小雨", "--risk", "high"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &lead,
        &[
            "case",
            "contact",
            &c1,
            "--channel",
            "hotline",
            "--text",
            "第一次来电",
        ],
    );
    ok(&lead, &["sync"]);
    pulled(&sup);
    ok(&lead, &["sync"]);
    pulled(&sup);
    assert_eq!(pulled(&sup), 0, "A has nothing more");
    assert_eq!(ok(&sup, &["case", "show", &c1])["alias"], "小雨");

    // B: a relay of its own from here on, starting from a copy of A.
    let mut b = RelayProc::start(a.copy_db(&dir.path().join("b.db")));

    // A bad entry is refused with what to write.
    let err = fails(&sup, &["team", "relays", "add", "relay.local:7443"]);
    assert!(err.contains("https://"), "{err}");
    let err = fails(
        &sup,
        &["team", "relays", "add", &b.url, "--pin", "sha256:nope"],
    );
    assert!(err.contains("heartbridge-relay fingerprint"), "{err}");

    // The lead knows B too; with A down its sync falls over to B, so c3 is
    // on B only. Then the lead forgets B.
    ok(&lead, &["team", "relays", "add", &b.url]);
    let c3 = ok(&lead, &["case", "new", "--alias", "阿明", "--risk", "low"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a.stop();
    assert!(ok(&lead, &["sync"])["pushed"].as_u64().unwrap() > 0);
    ok(&lead, &["team", "relays", "remove", &b.url]);
    a.restart();
    assert!(b.envelope_count() > a.envelope_count(), "c3 is on B only");

    // The supervisor adds B; listed after the team's relay.
    let added = ok(&sup, &["team", "relays", "add", &b.url]);
    assert_eq!(added["kind"], "central");
    let list = ok(&sup, &["team", "relays", "list"]);
    assert_eq!(urls(&list), vec![a.url.clone(), b.url.clone()]);

    // A goes down: the supervisor's sync falls over to B, and B's cursor
    // starts at B's own 0: B's whole log (the copy of what it had from A,
    // and c3) once, then nothing more.
    a.stop();
    let from_b = pulled(&sup);
    assert_eq!(from_b as i64, b.envelope_count(), "B's whole log, once");
    assert_eq!(pulled(&sup), 0, "nothing pulled twice from B");
    assert_eq!(ok(&sup, &["case", "show", &c3])["alias"], "阿明");

    // A is back, the lead writes c2 through it, and B goes down.
    a.restart();
    let a_before = a.envelope_count();
    let c2 = ok(
        &lead,
        &["case", "new", "--alias", "小林", "--risk", "medium"],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&lead, &["sync"]);
    let new_on_a = a.envelope_count() - a_before;
    assert!(new_on_a > 0);
    b.stop();

    // Back on A, the supervisor pulls exactly what A got since it last
    // synced there: A's own cursor, not B's (further along: it would skip
    // c2).
    assert_eq!(pulled(&sup) as i64, new_on_a, "A since the last A sync");
    assert_eq!(pulled(&sup), 0, "nothing pulled twice from A");
    assert_eq!(ok(&sup, &["case", "show", &c2])["alias"], "小林");
    // Nothing doubled: c1 still has its one contact.
    let shown = ok(&sup, &["case", "show", &c1]);
    assert_eq!(shown["contacts"].as_array().unwrap().len(), 1, "{shown}");

    // The list shows when each answered; B can be removed.
    let list = ok(&sup, &["team", "relays", "list"]);
    for e in list.as_array().unwrap() {
        assert!(e["last_ok_at"].is_i64(), "{list}");
    }
    ok(&sup, &["team", "relays", "remove", &b.url]);
    assert_eq!(
        urls(&ok(&sup, &["team", "relays", "list"])),
        vec![a.url.clone()]
    );
}

#[test]
fn a_venue_relay_announced_on_the_local_network_is_listed_and_added_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("venue.db");
    let created = heartbridge_relay::create_team(&db, "会场组").unwrap();
    let venue = RelayProc::start_with(db.clone(), &["--tls-self-signed", "--advertise"]);
    let port = venue.addr.unwrap().port();
    let fp = Command::new(relay_bin())
        .args(["fingerprint", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(fp.status.success());
    let fp = String::from_utf8(fp.stdout).unwrap().trim().to_owned();
    assert!(fp.starts_with("sha256:"), "{fp}");

    // A device of that team, enrolled over HTTPS by the pin.
    let lead = dir.path().join("lead");
    let url = format!("https://127.0.0.1:{port}");
    ok(
        &lead,
        &[
            "team",
            "claim",
            "--relay",
            &url,
            "--token",
            created.lead_token.expose(),
            "--name",
            "林老师",
            "--pin",
            &fp,
        ],
    );

    // Discovery lists it, marked as this team's, with the announced
    // fingerprint, and adds nothing.
    let seen = ok(&lead, &["team", "relays", "discover", "--seconds", "3"]);
    let found = seen["found"].as_array().expect("found");
    let mine = found
        .iter()
        .find(|f| f["url"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("the venue relay was not heard: {seen}"));
    assert_eq!(mine["this_team"], true);
    assert_eq!(mine["pin"], fp.as_str());
    assert!(mine["url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(seen["added"].as_array().unwrap().len(), 0);
    assert_eq!(
        ok(&lead, &["team", "relays", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // With --add it becomes a venue entry pinned to that fingerprint.
    let seen = ok(
        &lead,
        &["team", "relays", "discover", "--seconds", "3", "--add"],
    );
    assert!(!seen["added"].as_array().unwrap().is_empty(), "{seen}");
    let list = ok(&lead, &["team", "relays", "list"]);
    let venue_entry = &list[0];
    assert_eq!(venue_entry["kind"], "venue", "{list}");
    assert_eq!(venue_entry["pin"], fp.as_str());

    // Review F9: what is announced never changes an entry already there.
    // Heard again, the venue relay is left as it is; adding the team's own
    // relay (or the venue's address) with another fingerprint is refused
    // and both pins stay.
    let venue_url = venue_entry["url"].as_str().unwrap().to_owned();
    let again = ok(
        &lead,
        &["team", "relays", "discover", "--seconds", "3", "--add"],
    );
    assert_eq!(again["added"].as_array().unwrap().len(), 0, "{again}");
    assert!(
        again["already_known"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == venue_url.as_str()),
        "{again}"
    );
    let rogue = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let err = fails(
        &lead,
        &["team", "relays", "add", &url, "--pin", rogue, "--venue"],
    );
    assert!(err.contains("already there"), "{err}");
    let err = fails(
        &lead,
        &["team", "relays", "add", &venue_url, "--pin", rogue],
    );
    assert!(err.contains("already there"), "{err}");
    let err = fails(&lead, &["team", "relays", "pin", &url, rogue]);
    assert!(err.contains("invite"), "{err}");
    let list = ok(&lead, &["team", "relays", "list"]);
    for e in list.as_array().unwrap() {
        assert_eq!(e["pin"], fp.as_str(), "{list}");
    }
    let team_entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["team_relay"] == true)
        .unwrap();
    assert_eq!(team_entry["kind"], "central");
    assert_eq!(team_entry["takes_token"], true);
    assert_eq!(list[0]["takes_token"], false, "the venue entry is signed");
}
