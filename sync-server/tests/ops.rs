//! Operating the relay: health, metrics, graceful shutdown, the canary
//! (no plaintext at rest), and the binary's command line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{doc, read_head, team_with_volunteers, within, KillOnDrop, Team, TestRelay, WAIT};
use heartbridge_proto::{
    decode, encode, seal_name, Role, Secret, SyncResponse, TeamCreated, SYNC_CONTENT_TYPE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn healthz_answers_ok() {
    let relay = TestRelay::start().await;
    let a = relay.client().get("/healthz", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json::<serde_json::Value>(),
        serde_json::json!({ "status": "ok" })
    );
    relay.stop().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn metrics_are_not_on_the_public_port_by_default() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    c.get("/metrics", None).await.error(404, "not_found");
    let (_team, lead, _) = team_with_volunteers(&relay, 0).await;
    c.get("/metrics", Some(&lead.token))
        .await
        .error(404, "not_found");
    // Health stays public.
    assert_eq!(c.get("/healthz", None).await.status, 200);
    relay.stop().await;
}

#[tokio::test]
async fn metrics_behind_a_bearer_token_on_the_public_port() {
    let token = Secret::generate();
    let hash = token.hash();
    let relay = TestRelay::start_with(|c| c.metrics_token_hash = Some(hash)).await;
    let c = relay.client();
    let (_team, lead, _) = team_with_volunteers(&relay, 0).await;
    c.get("/metrics", None).await.error(401, "unknown_token");
    c.get("/metrics", Some(&lead.token))
        .await
        .error(401, "unknown_token");
    let a = c.get("/metrics", Some(&token)).await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8(a.body.to_vec()).expect("utf-8");
    assert_eq!(metric(&text, "heartbridge_devices"), 1.0);
    assert!(!text.contains(token.expose()));
    assert_eq!(c.get("/healthz", None).await.status, 200);
    relay.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_envelopes_bytes_and_devices_on_their_own_listener() {
    let relay = TestRelay::start_with_metrics_listener(|_| {}).await;
    let c = relay.client();
    let monitoring = common::Client::new(relay.metrics_addr.expect("a metrics listener"));
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let push: Vec<_> = (0..3)
        .map(|i| team.change(&vols[0], doc(), format!("{i}").as_bytes()))
        .collect();
    let r = c.sync(&vols[0].token, 0, push, 0).await;
    assert_eq!(r.acked.len(), 3);
    let pulled = c.sync(&lead.token, 0, vec![], 0).await;
    assert_eq!(pulled.pull.len(), 3);
    assert_eq!(c.revoke(&lead.token, &vols[1].id).await.status, 200);
    c.get("/v1/members", None).await.error(401, "unknown_token");
    // Refusals are counted by kind: a revoked device's sync, an unsigned push.
    let empty = encode(&common::request(0, vec![], 0));
    c.sync_raw(&vols[1].token, empty)
        .await
        .error(403, "device_revoked");
    // In the pusher's own name but not signed by it: the whole push is
    // refused (another member's envelope would be refused alone, 200).
    let mut unsigned = team.seal_change(doc(), b"x");
    unsigned.author = vols[0].device_id();
    let unsigned = encode(&common::request(0, vec![unsigned], 0));
    c.sync_raw(&vols[0].token, unsigned)
        .await
        .error(403, "bad_signature");
    // Not on the public port; the metrics port serves nothing else.
    c.get("/metrics", None).await.error(404, "not_found");
    monitoring
        .get("/v1/members", Some(&lead.token))
        .await
        .error(404, "not_found");
    assert_eq!(monitoring.get("/healthz", None).await.status, 200);

    let a = monitoring.get("/metrics", None).await;
    assert_eq!(a.status, 200);
    assert!(a
        .content_type
        .as_deref()
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(a.body.to_vec()).expect("utf-8");
    assert_eq!(
        metric(
            &text,
            "heartbridge_requests_total{route=\"/v1/sync\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "heartbridge_requests_total{route=\"/v1/join\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "heartbridge_requests_total{route=\"/v1/members\",status=\"401\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "heartbridge_requests_total{route=\"/v1/devices/{device_id}/revoke\",status=\"200\"}"
        ),
        1.0
    );
    for kind in ["device_revoked", "bad_signature", "unknown_token"] {
        assert_eq!(
            metric(
                &text,
                &format!("heartbridge_refusals_total{{kind=\"{kind}\"}}")
            ),
            1.0,
            "{kind}"
        );
    }
    assert_eq!(metric(&text, "heartbridge_envelopes_in_total"), 3.0);
    assert_eq!(metric(&text, "heartbridge_envelopes_out_total"), 3.0);
    assert!(metric(&text, "heartbridge_bytes_in_total") > 0.0);
    assert!(metric(&text, "heartbridge_bytes_out_total") > 0.0);
    assert_eq!(
        metric(&text, "heartbridge_sync_duration_seconds_count"),
        4.0,
        "refused syncs too"
    );
    assert_eq!(
        metric(
            &text,
            "heartbridge_sync_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        4.0
    );
    assert_eq!(
        metric(&text, "heartbridge_devices"),
        2.0,
        "lead and one volunteer; one revoked"
    );
    assert_eq!(metric(&text, "heartbridge_envelopes_stored"), 3.0);
    assert!(metric(&text, "heartbridge_commits_total") >= 1.0);
    relay.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_sync_commit() {
    let mut relay = TestRelay::start().await;
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let push: Vec<_> = (0..50)
        .map(|_| team.change_of_size(&vols[0], doc(), 2000))
        .collect();
    let body = encode(&common::request(0, push, 0));

    within("the in-flight sync", async {
        // The request head goes first; the relay asks for the body with
        // 100 Continue once the handler reads it: the sync is in flight.
        let mut s = TcpStream::connect(relay.addr).await.expect("connect");
        let head = format!(
            "POST /v1/sync HTTP/1.1\r\nHost: relay.test\r\nAuthorization: Bearer {}\r\nContent-Type: {SYNC_CONTENT_TYPE}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            vols[0].token.expose(),
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        let mut buf = Vec::new();
        assert_eq!(read_head(&mut s, &mut buf).await.0, 100);

        // Shut down, and wait until the relay accepts no new connection.
        relay.signal_stop();
        while TcpStream::connect(relay.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }

        // The in-flight sync still completes, acknowledged after its commit.
        s.write_all(&body).await.expect("write body");
        let (status, head) = read_head(&mut s, &mut buf).await;
        assert_eq!(status, 200, "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "closed mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let resp: SyncResponse = decode("sync response", &buf[..len]).expect("sync response");
        assert_eq!(resp.acked.len(), 50);
    })
    .await;

    // serve returns once drained; a new relay over the same database serves
    // every acknowledged envelope.
    let dir = relay.stop().await;
    let relay = TestRelay::start_in(dir, |_| {}).await;
    assert_eq!(relay.stored_envelopes(), 50);
    let (pages, _) = relay.client().pull_all(&lead.token, 0, 0).await;
    assert_eq!(pages.iter().map(|p| p.pull.len()).sum::<usize>(), 50);
    relay.stop().await;
}

fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("read file"),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn canary_no_plaintext_name_token_or_key_reaches_the_relays_disk() {
    const MARKER: &str = "CANARY-4b1d-心理危机-留守儿童";
    const NAME: &str = "Canary名字-Zhang-Wei-7731";
    let relay = TestRelay::start().await;
    let c = relay.client();
    let team = Team::create(&relay, "Canary team");
    let lead = team.claim(&c, &format!("{NAME}-lead")).await;
    let invite: heartbridge_proto::InviteResponse =
        c.invite(&lead.token, Role::Volunteer, 0).await.json();
    let secret = heartbridge_proto::DeviceSecret::generate();
    let mut req =
        team.enroll_request_as(&invite.token, &team.key, "unused", &secret, Role::Volunteer);
    req.name_sealed = seal_name(&team.key, &team.id, NAME);
    let volunteer: heartbridge_proto::EnrollResponse =
        c.post_json("/v1/join", None, &req).await.json();
    let volunteer = common::EnrolledDevice::new(volunteer, secret);

    // Plaintext that would compress well, so it is not hidden by chance.
    let d = doc();
    let note = format!("{MARKER} ").repeat(50);
    let mut push: Vec<_> = (0..20)
        .map(|i| team.change(&volunteer, d, format!("{i}: {note} {NAME}").as_bytes()))
        .collect();
    push.push(team.snapshot(&volunteer, d, note.as_bytes(), 0));
    c.sync(&volunteer.token, 0, push, 0).await;
    let (pages, _) = c.pull_all(&lead.token, 0, 0).await;
    // The marker did travel, sealed: the lead opens all 21 envelopes.
    let pulled: Vec<_> = pages.iter().flat_map(|p| p.pull.iter()).collect();
    assert_eq!(pulled.len(), 21);
    for p in pulled {
        let plain = p.envelope.open(&team.key, &team.id).expect("opens");
        assert!(contains(&plain.bytes, MARKER.as_bytes()));
    }

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the marker", MARKER.as_bytes().to_vec()),
        ("the marker's first part", b"CANARY-4b1d".to_vec()),
        ("the name", NAME.as_bytes().to_vec()),
        ("the team key", team.key.expose().to_vec()),
        (
            "the team key in hex",
            hex::encode(team.key.expose()).into_bytes(),
        ),
        (
            "the lead token",
            team.lead_token.expose().as_bytes().to_vec(),
        ),
        (
            "the invite token",
            invite.token.expose().as_bytes().to_vec(),
        ),
        ("a device token", lead.token.expose().as_bytes().to_vec()),
        (
            "a device token",
            volunteer.token.expose().as_bytes().to_vec(),
        ),
    ];
    let scan = |when: &str| {
        let files = files_in(relay.dir.path());
        assert!(
            files.iter().any(|(p, _)| p.ends_with("-wal")),
            "the WAL is scanned too"
        );
        for (path, bytes) in &files {
            for (what, needle) in &secrets {
                assert!(!contains(bytes, needle), "{what} found in {path} ({when})");
            }
        }
    };
    scan("while serving");
    let dir = relay.stop().await;
    let files = files_in(dir.path());
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        for (what, needle) in &secrets {
            assert!(
                !contains(bytes, needle),
                "{what} found in {path} (after shutdown)"
            );
        }
    }
}

/// Runs the binary to completion; returns (success, stdout).
fn relay_cmd(args: &[&str]) -> (bool, String) {
    let (ok, out, _) = relay_cmd_err(args);
    (ok, out)
}

#[tokio::test]
async fn the_binary_creates_lists_serves_revokes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("relay.db");
    let db_arg = db.to_str().expect("utf-8 path");

    let (ok, out) = relay_cmd(&["team", "create", "Venue team", "--db", db_arg, "--json"]);
    assert!(ok, "{out}");
    let created: TeamCreated = serde_json::from_str(&out).expect("TeamCreated JSON");
    let (ok, out) = relay_cmd(&["team", "create", "Hotline", "--db", db_arg]);
    assert!(ok);
    assert!(out.contains("lead token:"));
    let (ok, out) = relay_cmd(&["team", "list", "--db", db_arg, "--json"]);
    assert!(ok);
    let teams: serde_json::Value = serde_json::from_str(&out).expect("JSON list");
    assert_eq!(teams.as_array().map(Vec::len), Some(2));
    let venue = teams
        .as_array()
        .and_then(|t| t.iter().find(|t| t["team_id"] == created.team_id.as_str()))
        .expect("the created team is listed");
    assert_eq!(venue["name"], "Venue team");
    assert_eq!(venue["claimed"], false);
    let (ok, out) = relay_cmd(&["team", "list", "--db", db_arg]);
    assert!(ok && out.contains("Venue team"), "{out}");

    // serve on port 0; the bound address is announced on stderr.
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                db_arg,
                "--metrics-listen",
                "127.0.0.1:0",
                "--header-timeout",
                "20",
                "--max-push-envelopes",
                "500",
            ])
            .env("HEARTBRIDGE_RELAY_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut metrics_addr) = (None, None);
    while addr.is_none() || metrics_addr.is_none() {
        let line = lines
            .recv_timeout(WAIT)
            .expect("serve announces its addresses");
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.parse().expect("socket address"));
        }
        if let Some(a) = line.strip_prefix("metrics listening on ") {
            metrics_addr = Some(a.parse().expect("socket address"));
        }
    }
    let c = common::Client::new(addr.expect("address"));
    assert_eq!(c.get("/healthz", None).await.status, 200);
    c.get("/metrics", None).await.error(404, "not_found");
    let monitoring = common::Client::new(metrics_addr.expect("metrics address"));
    assert_eq!(monitoring.get("/metrics", None).await.status, 200);

    let team = Team {
        id: heartbridge_proto::TeamId::from_hex(&created.team_id).expect("hex"),
        key: heartbridge_proto::TeamKey::generate(),
        lead_token: created.lead_token.clone(),
    };
    let lead = team.claim(&c, "Lead").await;
    let vol = team.add(&c, &lead, Role::Volunteer, "Vol").await;
    c.sync(&vol.token, 0, vec![team.change(&vol, doc(), b"hello")], 0)
        .await;
    let (ok, out) = relay_cmd(&["device", "revoke", &vol.id, "--db", db_arg]);
    assert!(ok);
    assert!(out.contains("cutoff seq 1"), "{out}");
    c.get("/v1/members", Some(&vol.token))
        .await
        .error(403, "device_revoked");
    // Its roster record is still readable (none uploaded here).
    c.roster(&vol.token).await.error(404, "not_found");
    let (ok, _) = relay_cmd(&["device", "revoke", "nothex", "--db", db_arg]);
    assert!(!ok);

    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.0.wait());
    });
    let Ok(status) = done.recv_timeout(WAIT) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("serve did not stop on SIGTERM");
    };
    let status = status.expect("wait");
    assert!(status.success(), "{status:?}");

    // The log: one line per request with route and status, and no secret.
    let log: Vec<String> = lines.try_iter().collect();
    let log = log.join("\n");
    assert!(log.contains("/v1/sync"), "{log}");
    for secret in [
        created.lead_token.expose(),
        lead.token.expose(),
        vol.token.expose(),
    ] {
        assert!(!log.contains(secret), "a token reached the log");
    }
}

/// Runs the binary to completion; returns (success, stdout, stderr).
fn relay_cmd_err<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
        .args(args)
        .env_remove("HEARTBRIDGE_RELAY_DB")
        .output()
        .expect("run heartbridge-relay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ids of every envelope `token`'s device pulls from the start.
async fn pulled_ids(c: &common::Client, token: &Secret) -> Vec<heartbridge_proto::ContentId> {
    let (pages, _) = c.pull_all(token, 0, 0).await;
    pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| e.envelope.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_round_trip_while_devices_sync() {
    use std::collections::HashSet;
    use std::ffi::OsStr;
    let relay = TestRelay::start().await;
    let (team, lead, vols) = team_with_volunteers(&relay, 2).await;
    let team = std::sync::Arc::new(team);
    let c = relay.client();
    let mut before = HashSet::new();
    for n in 0..10 {
        let env = team.change(&vols[0], doc(), format!("before {n}").as_bytes());
        let r = c.sync(&vols[0].token, 0, vec![env], 0).await;
        before.insert(r.acked[0].id);
    }
    // A second device keeps pushing while the backup is taken.
    let pusher = {
        let (team, v, c) = (team.clone(), vols[1].clone(), relay.client());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..40 {
                let env = team.change(&v, doc(), format!("during {n}").as_bytes());
                let r = c.sync(&v.token, 0, vec![env.clone()], 0).await;
                assert_eq!(r.acked[0].id, env.id);
                sent.push(env);
            }
            sent
        })
    };
    let backup = relay.dir.path().join("backup.db");
    let (db, out) = (relay.db.clone(), backup.clone());
    let (ok, said, err) = tokio::task::spawn_blocking(move || {
        relay_cmd_err(&[
            OsStr::new("backup"),
            OsStr::new("--db"),
            db.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ])
    })
    .await
    .expect("backup task");
    assert!(ok, "backup failed: {err}");
    assert!(said.contains("1 teams"), "{said}");
    let during = within("the pushes during the backup", pusher)
        .await
        .expect("pusher");
    // A second backup into the same file is refused, the first kept.
    let kept = std::fs::read(&backup).expect("backup file");
    let (ok, _, err) = relay_cmd_err(&[
        OsStr::new("backup"),
        OsStr::new("--db"),
        relay.db.as_os_str(),
        OsStr::new("--out"),
        backup.as_os_str(),
    ]);
    assert!(!ok && err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&backup).expect("backup file"), kept);
    let old = relay.stop().await;

    // Restore into a new directory and serve it.
    let fresh = tempfile::tempdir().expect("temp dir");
    let target = fresh.path().join("relay.db");
    let restore = |force: bool| {
        let mut args = vec![
            OsStr::new("restore"),
            OsStr::new("--from"),
            backup.as_os_str(),
            OsStr::new("--db"),
            target.as_os_str(),
        ];
        if force {
            args.push(OsStr::new("--force"));
        }
        relay_cmd_err(&args)
    };
    let show = |db: &Path| {
        let (ok, said, err) = relay_cmd_err(&[
            OsStr::new("new-log-id"),
            OsStr::new("--show"),
            OsStr::new("--db"),
            db.as_os_str(),
        ]);
        assert!(ok, "new-log-id --show failed: {err}");
        said.trim()
            .strip_prefix("log id ")
            .expect("log id line")
            .to_owned()
    };
    // The backup's own id, read without opening it as a relay would.
    let backup_log: Vec<u8> =
        rusqlite::Connection::open_with_flags(&backup, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT log_id FROM relay_log", [], |r| r.get(0)))
            .expect("the backup's log id");
    let backup_log = backup_log
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let (ok, said, err) = restore(false);
    assert!(ok, "restore failed: {err}");
    assert!(said.contains("restored"), "{said}");
    // The restored log is another log than the backup's: devices notice.
    let restored_log = show(&target);
    assert_ne!(restored_log, backup_log);
    assert!(
        said.contains(&format!("new log id {restored_log}")),
        "{said}"
    );
    // Restoring over it again needs --force.
    let (ok, _, err) = restore(false);
    assert!(!ok && err.contains("--force"), "{err}");

    // `new-log-id` (what the PostgreSQL procedure runs after pg_restore)
    // makes another one; `--show` changes nothing.
    let (ok, said, err) = relay_cmd_err(&[
        OsStr::new("new-log-id"),
        OsStr::new("--db"),
        target.as_os_str(),
    ]);
    assert!(ok, "new-log-id failed: {err}");
    let renewed = show(&target);
    assert!(said.contains(&renewed), "{said}");
    assert_ne!(renewed, restored_log);
    assert_eq!(show(&target), renewed);

    let relay = TestRelay::start_in(fresh, |_| {}).await;
    // Not while a relay serves it, even with --force.
    let (ok, _, err) = tokio::task::block_in_place(|| restore(true));
    assert!(!ok && err.contains("in use"), "{err}");

    let c = relay.client();
    let got = pulled_ids(&c, &lead.token).await;
    let ids: HashSet<_> = got.iter().copied().collect();
    assert_eq!(ids.len(), got.len(), "nothing twice after the restore");
    assert!(
        before.is_subset(&ids),
        "every envelope acked before the backup is restored"
    );
    // The second device pushes again what it sent during the backup; what
    // the backup had is acked as held, what it lacked is stored once.
    for env in &during {
        let r = c.sync(&vols[1].token, 0, vec![env.clone()], 0).await;
        assert_eq!(r.acked[0].id, env.id);
    }
    let got = pulled_ids(&c, &lead.token).await;
    let ids: HashSet<_> = got.iter().copied().collect();
    assert_eq!(ids.len(), got.len(), "nothing twice after the re-push");
    assert_eq!(ids.len(), 50);
    relay.stop().await;
    drop(old);
}
