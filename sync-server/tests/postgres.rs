//! Several relays over one PostgreSQL database (issue 11): devices of one
//! team split over two relays (two `serve` instances on their own loopback
//! ports, each with its own store and writer) see one log, one membership and
//! one revocation. Each test starts its own throw-away cluster
//! (`heartbridge-pgtest`).

mod common;

use std::collections::{BTreeMap, HashSet};

use common::pg::{relay, team};
use common::{within, Client, EnrolledDevice, Team, TestRelay};
use heartbridge_pgtest::PgCluster;
use heartbridge_proto::{encode, ContentId, InviteResponse, Role};

/// A relay over `url` with a new team: its lead and one volunteer.
async fn lead_and_volunteer(url: &str) -> (TestRelay, Team, EnrolledDevice, EnrolledDevice) {
    let a = relay(url).await;
    let c = a.client();
    let team = team(url).await;
    let lead = team.claim(&c, "Lead").await;
    let vol = team.add(&c, &lead, Role::Volunteer, "V").await;
    (a, team, lead, vol)
}

/// Every envelope a device pulls from `cursor` 0 through `c`, as (seq, id).
async fn log(c: &Client, device: &EnrolledDevice) -> Vec<(u64, ContentId)> {
    let (pages, _) = c.pull_all(&device.token, 0, 0).await;
    pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| (e.seq, e.envelope.id)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_converge() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, b) = (relay(&url).await, relay(&url).await);
    let clients = [a.client(), b.client()];
    let team = team(&url).await;
    let lead = team.claim(&clients[0], "Lead").await;
    // Enrolled alternately at either relay.
    let mut devices = vec![lead.clone()];
    for i in 0..5 {
        let c = &clients[i % 2];
        devices.push(team.add(c, &lead, Role::Volunteer, &format!("V{i}")).await);
    }

    // Every device pushes 6 changes, one per sync, through its relay, all at once.
    const PUSHES: usize = 6;
    let team = std::sync::Arc::new(team);
    let mut tasks = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (c, d, team) = (clients[i % 2], d.clone(), team.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut cursor = 0;
            for n in 0..PUSHES {
                let env = team.change(&d, common::doc(), format!("{i}/{n}").as_bytes());
                let id = env.id;
                let r = c.sync(&d.token, cursor, vec![env], 0).await;
                assert_eq!(r.acked.len(), 1, "one ack per pushed envelope");
                assert_eq!(r.acked[0].id, id);
                cursor = r.cursor;
                acked.push(id);
            }
            acked
        }));
    }
    let mut pushed = HashSet::new();
    let mut own = Vec::new();
    for t in tasks {
        let ids = within("a device's pushes", t).await.expect("push task");
        for id in &ids {
            assert!(pushed.insert(*id));
        }
        own.push(ids);
    }
    assert_eq!(pushed.len(), devices.len() * PUSHES);

    // Every device, at either relay, pulls every teammate's envelope exactly
    // once (a device is not sent its own back), all in one seq order.
    let mut order: BTreeMap<u64, ContentId> = BTreeMap::new();
    let mut pulls = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        for c in &clients {
            let got = log(c, d).await;
            let ids: HashSet<ContentId> = got.iter().map(|(_, id)| *id).collect();
            assert_eq!(ids.len(), got.len(), "device {i}: an envelope pulled twice");
            let teammates: HashSet<ContentId> = pushed
                .iter()
                .filter(|id| !own[i].contains(id))
                .copied()
                .collect();
            assert_eq!(ids, teammates, "device {i}: not every teammate's envelope");
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "seqs ascend");
            for (seq, id) in &got {
                let at = order.entry(*seq).or_insert(*id);
                assert_eq!(
                    at, id,
                    "device {i}: seq {seq} is another envelope elsewhere"
                );
            }
            pulls.push((i, got));
        }
    }
    assert_eq!(order.len(), pushed.len(), "one seq per envelope");
    for (i, got) in pulls {
        let expected: Vec<(u64, ContentId)> = order
            .iter()
            .filter(|(_, id)| !own[i].contains(id))
            .map(|(s, id)| (*s, *id))
            .collect();
        assert_eq!(
            got, expected,
            "device {i}: the same order as every teammate"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_envelope_through_both_relays_is_stored_once() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, b) = (relay(&url).await, relay(&url).await);
    let (ca, cb) = (a.client(), b.client());
    let team = team(&url).await;
    let lead = team.claim(&ca, "Lead").await;
    let vol = team.add(&cb, &lead, Role::Volunteer, "V").await;

    // A device retries through the other relay while the first push is in
    // flight: both pushes carry the same envelope, at once.
    for round in 0..5 {
        let env = team.change(&vol, common::doc(), format!("retry {round}").as_bytes());
        let (ra, rb) = tokio::join!(
            ca.sync(&vol.token, 0, vec![env.clone()], 0),
            cb.sync(&vol.token, 0, vec![env.clone()], 0)
        );
        assert_eq!(ra.acked.len(), 1);
        assert_eq!(rb.acked.len(), 1);
        assert_eq!(
            ra.acked[0].seq, rb.acked[0].seq,
            "both relays answer one seq"
        );
        // And the lead carrying it later through A gets that seq too.
        let carried = ca.sync(&lead.token, 0, vec![env.clone()], 0).await;
        assert_eq!(carried.acked[0].seq, ra.acked[0].seq);
    }
    let got = log(&cb, &lead).await;
    assert_eq!(got.len(), 5, "each envelope stored once: {got:?}");
    assert_eq!(
        cluster.psql(&url, "select count(*) from envelopes"),
        "5",
        "one row per envelope in the database"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_at_one_relay_syncs_at_the_other() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, b) = (relay(&url).await, relay(&url).await);
    let (ca, cb) = (a.client(), b.client());
    let team = team(&url).await;
    // Claimed at A; the lead's token works at B at once.
    let lead = team.claim(&ca, "Lead").await;
    assert_eq!(cb.members(&lead.token).await.members.len(), 1);

    // Invited at A, joined at B.
    let invite: InviteResponse = ca.invite(&lead.token, Role::Volunteer, 0).await.json();
    let secret = heartbridge_proto::DeviceSecret::generate();
    let joined = cb
        .post_json(
            "/v1/join",
            None,
            &team.enroll_request_as(&invite.token, &team.key, "V", &secret, Role::Volunteer),
        )
        .await;
    assert_eq!(joined.status, 200);
    let vol = EnrolledDevice::new(joined.json(), secret);
    // The invite is used up at both relays.
    for c in [&ca, &cb] {
        c.post_json(
            "/v1/join",
            None,
            &team.enroll_request(&invite.token, &team.key, "again"),
        )
        .await
        .error(410, "invite_used");
    }

    // The new member pushes at B; the lead at A sees it as a member and gets
    // its envelope.
    let env = team.change(&vol, common::doc(), b"first note");
    let pushed = cb.sync(&vol.token, 0, vec![env.clone()], 0).await;
    assert_eq!(pushed.acked.len(), 1);
    let at_a = ca.sync(&lead.token, 0, vec![], 0).await;
    assert!(at_a.members.iter().any(|m| m.device == vol.device_id()));
    assert_eq!(
        at_a.pull.iter().map(|p| p.envelope.id).collect::<Vec<_>>(),
        vec![env.id]
    );
    let listed = ca.members(&lead.token).await.members;
    assert!(listed.iter().any(|m| m.device_id == vol.id && !m.revoked));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_at_one_relay_holds_at_the_other() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, b) = (relay(&url).await, relay(&url).await);
    let (ca, cb) = (a.client(), b.client());
    let team = team(&url).await;
    let lead = team.claim(&ca, "Lead").await;
    let gone = team.add(&ca, &lead, Role::Volunteer, "Gone").await;
    let stays = team.add(&cb, &lead, Role::Volunteer, "Stays").await;
    let before = cb
        .sync(
            &gone.token,
            0,
            vec![team.change(&gone, common::doc(), b"before")],
            0,
        )
        .await;
    let before_seq = before.acked[0].seq;

    // Revoked at A: refused at B from the next request on.
    let r = ca.revoke(&lead.token, &gone.id).await;
    assert_eq!(r.status, 200);
    let cutoff: heartbridge_proto::RevokeResponse = r.json();
    assert!(cutoff.cutoff_seq >= before_seq);
    let late = team.change(&gone, common::doc(), b"after");
    cb.sync_raw(
        &gone.token,
        encode(&common::request(0, vec![late.clone()], 0)),
    )
    .await
    .error(403, "device_revoked");
    cb.get("/v1/members", Some(&gone.token))
        .await
        .error(403, "device_revoked");
    cb.invite(&gone.token, Role::Volunteer, 0)
        .await
        .error(403, "device_revoked");
    // Carried by a teammate at B, its late envelope is refused too.
    let carried = cb.sync(&stays.token, 0, vec![late.clone()], 0).await;
    assert!(carried.acked.is_empty());
    assert_eq!(carried.refused.len(), 1);

    // Both relays list it revoked, and serve what it pushed before the cut-off only.
    for c in [&ca, &cb] {
        let m = c.members(&lead.token).await.members;
        assert!(m.iter().any(|m| m.device_id == gone.id && m.revoked));
        let got = log(c, &stays).await;
        assert!(got.iter().all(|(seq, _)| *seq <= cutoff.cutoff_seq));
        assert!(got.iter().all(|(_, id)| *id != late.id));
        assert!(got.iter().any(|(_, id)| *id == before.acked[0].id));
    }
    a.stop().await;
    b.stop().await;
}

/// `heartbridge-relay ARGS…`; returns (success, stderr).
fn relay_binary(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
        .args(args)
        .env_remove("HEARTBRIDGE_RELAY_DB")
        .env_remove("HEARTBRIDGE_RELAY_UPSTREAM")
        .output()
        .expect("running heartbridge-relay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_venue_relay_on_postgresql_is_refused() {
    let (ok, err) = relay_binary(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        "postgres://relay@127.0.0.1:1/hb",
        "--upstream",
        "https://relay.example",
    ]);
    assert!(!ok);
    assert!(
        err.contains("a venue relay keeps its database in SQLite"),
        "{err}"
    );
}

#[test]
fn the_database_password_is_never_printed() {
    // Nothing listens on this port: the command fails and says where it tried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "file-secret-pw\n").expect("password file");
    let url = format!("postgres://relay:url-secret-pw@127.0.0.1:{port}/hb");
    let (ok, err) = relay_binary(&[
        "team",
        "list",
        "--db",
        &url,
        "--db-password-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(err.contains(&format!("127.0.0.1:{port}/hb")), "{err}");
    assert!(!err.contains("secret-pw"), "{err}");
    // A SQLite --db takes no password file.
    let (ok, err) = relay_binary(&[
        "team",
        "list",
        "--db",
        dir.path().join("x.db").to_str().expect("utf-8 path"),
        "--db-password-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--db-password-file is for a PostgreSQL --db"),
        "{err}"
    );
}

#[test]
fn operator_commands_work_on_postgresql() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
            .args(args)
            .args(["--db", &url])
            .output()
            .expect("running heartbridge-relay");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON output")
    };
    let created = run(&["team", "create", "Night shift", "--json"]);
    let team_id = created["team_id"].as_str().expect("team id").to_owned();
    let listed = run(&["team", "list", "--json"]);
    let teams = listed.as_array().expect("a list");
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0]["team_id"], team_id.as_str());
    assert_eq!(teams[0]["name"], "Night shift");
    assert_eq!(teams[0]["claimed"], false);
    let compactions = run(&["compaction", "list", "--team", &team_id, "--json"]);
    assert_eq!(compactions, serde_json::json!([]));
    // The database behind it is the PostgreSQL one.
    assert_eq!(cluster.psql(&url, "select count(*) from teams"), "1");
    // An unknown device is an error that names it, as on SQLite.
    let (ok, err) = relay_binary(&["device", "revoke", &"11".repeat(16), "--db", &url]);
    assert!(!ok);
    assert!(err.contains(&"11".repeat(16)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_crash_loses_nothing_acked() {
    let cluster = std::sync::Arc::new(PgCluster::start());
    let url = cluster.new_database();
    let (a, team, lead, vol) = lead_and_volunteer(&url).await;
    let c = a.client();
    let mut acked = HashSet::new();
    for n in 0..10 {
        let env = team.change(&vol, common::doc(), format!("before {n}").as_bytes());
        let r = c.sync(&vol.token, 0, vec![env], 0).await;
        acked.insert(r.acked[0].id);
    }

    // PostgreSQL crashes (no clean shutdown) and recovers from its WAL.
    let crashing = std::sync::Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || crashing.restart("immediate"))
        .await
        .expect("restart task");

    // The relay's pooled connections died with it: a push may be answered
    // 503 unavailable once per dead connection, never lost after an ack.
    for n in 0..10 {
        let env = team.change(&vol, common::doc(), format!("after {n}").as_bytes());
        let body = encode(&common::request(0, vec![env.clone()], 0));
        let mut tries = 0;
        loop {
            let a = c.sync_raw(&vol.token, body.clone()).await;
            if a.status == 200 {
                let r: heartbridge_proto::SyncResponse =
                    heartbridge_proto::decode("sync", &a.body).expect("sync response");
                assert_eq!(r.acked[0].id, env.id);
                acked.insert(env.id);
                break;
            }
            a.error(503, "unavailable");
            tries += 1;
            assert!(tries < 20, "the relay does not recover from the restart");
        }
    }
    let got = log(&c, &lead).await;
    let ids: HashSet<ContentId> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), got.len(), "nothing stored twice");
    assert_eq!(ids, acked, "every acked envelope is there after the crash");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_stopped_mid_shift_loses_nothing() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, b) = (relay(&url).await, relay(&url).await);
    let (addr_a, addr_b) = (a.addr, b.addr);
    let team = team(&url).await;
    let lead = team.claim(&a.client(), "Lead").await;
    let mut vols = Vec::new();
    for i in 0..3 {
        vols.push(
            team.add(&a.client(), &lead, Role::Volunteer, &format!("V{i}"))
                .await,
        );
    }
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let count_tx = std::sync::Arc::new(count_tx);
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let team = std::sync::Arc::new(team);
    let mut tasks = Vec::new();
    for (i, v) in vols.iter().enumerate() {
        let (v, team, count_tx) = (v.clone(), team.clone(), count_tx.clone());
        let mut release_rx = release_rx.clone();
        tasks.push(tokio::spawn(async move {
            // Each device syncs through A until A is gone, then through B,
            // retrying the envelope it has no ack for, as a device does.
            let mut at = addr_a;
            let mut acked = Vec::new();
            for n in 0..15 {
                if n == 5 {
                    // Half-way: wait until A has stopped.
                    within("A to stop", release_rx.wait_for(|r| *r))
                        .await
                        .expect("release");
                }
                let env = team.change(&v, common::doc(), format!("{i}/{n}").as_bytes());
                let body = encode(&common::request(0, vec![env.clone()], 0));
                let mut tries = 0;
                loop {
                    match common::try_sync(at, &v.token, body.clone()).await {
                        Some((200, Some(r))) => {
                            assert_eq!(r.acked[0].id, env.id);
                            break;
                        }
                        Some((503, _)) | None => at = addr_b,
                        Some((status, _)) => panic!("sync answered {status}"),
                    }
                    tries += 1;
                    assert!(tries < 5, "no relay takes the push");
                }
                acked.push(env.id);
                count_tx.send_modify(|c| *c += 1);
            }
            assert_eq!(at, addr_b, "the device fell over to B");
            acked
        }));
    }
    // Every device pushed 5 through A; A stops (draining, committing what
    // it queued); the devices go on, through B once A refuses them.
    within("the first pushes", count_rx.wait_for(|c| *c >= 15))
        .await
        .expect("pushes counted");
    within("A to stop", a.stop()).await;
    release_tx.send(true).expect("devices waiting");
    let mut acked = HashSet::new();
    for t in tasks {
        for id in within("a device's pushes", t).await.expect("push task") {
            acked.insert(id);
        }
    }
    assert_eq!(acked.len(), 45);
    let got = log(&b.client(), &lead).await;
    let ids: HashSet<ContentId> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), got.len(), "nothing stored twice");
    assert_eq!(ids, acked, "every acked envelope is at B");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_down_health_and_pushes_answer_503_then_resume() {
    let cluster = std::sync::Arc::new(PgCluster::start());
    let url = cluster.new_database();
    let (a, team, lead, vol) = lead_and_volunteer(&url).await;
    let c = a.client();
    let first = team.change(&vol, common::doc(), b"before the outage");
    c.sync(&vol.token, 0, vec![first.clone()], 0).await;

    let stopping = std::sync::Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("stop task");
    let health = c.get("/healthz", None).await;
    assert_eq!(health.status, 503, "healthz while PostgreSQL is down");
    health.error(503, "unavailable");
    // A push is refused as unavailable, with Retry-After: never a 500.
    let env = team.change(&vol, common::doc(), b"during the outage");
    let body = encode(&common::request(0, vec![env.clone()], 0));
    let down = c.sync_raw(&vol.token, body.clone()).await;
    assert!(
        down.headers.contains_key("retry-after"),
        "503 without Retry-After"
    );
    down.error(503, "unavailable");

    let starting = std::sync::Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .expect("start task");
    // The device retries the same push until the relay takes it.
    let mut tries = 0;
    loop {
        let a = c.sync_raw(&vol.token, body.clone()).await;
        if a.status == 200 {
            break;
        }
        a.error(503, "unavailable");
        tries += 1;
        assert!(
            tries < 20,
            "the relay does not recover once PostgreSQL is back"
        );
    }
    assert_eq!(c.get("/healthz", None).await.status, 200);
    let got = log(&c, &lead).await;
    let ids: Vec<ContentId> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, vec![first.id, env.id], "both, once each, in order");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_and_pg_restore_round_trip() {
    let cluster = PgCluster::start();
    let url = cluster.new_database();
    let (a, team, lead, vol) = lead_and_volunteer(&url).await;
    let c = a.client();
    for n in 0..10 {
        let env = team.change(&vol, common::doc(), format!("{n}").as_bytes());
        c.sync(&vol.token, 0, vec![env], 0).await;
    }
    let before = log(&c, &lead).await;

    // The relay's own `backup` names the command for PostgreSQL.
    let (ok, err) = relay_binary(&["backup", "--db", &url, "--out", "x.db"]);
    assert!(!ok);
    assert!(err.contains("pg_dump -Fc"), "{err}");

    // The documented commands, while the relay serves.
    let dump = cluster.dir().join("relay.dump");
    let dbname = url.rsplit('/').next().expect("db name").to_owned();
    let port = cluster.port().to_string();
    let out = cluster
        .tool("pg_dump")
        .args(["-Fc", "--no-owner", "-h", "127.0.0.1", "-p", &port])
        .args(["-U", "heartbridge", "-d", &dbname, "-f"])
        .arg(&dump)
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.stop().await;

    let restored = cluster.new_database();
    let rname = restored.rsplit('/').next().expect("db name").to_owned();
    let out = cluster
        .tool("pg_restore")
        .args(["--exit-on-error", "--single-transaction", "--no-owner"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "heartbridge",
            "-d",
            &rname,
        ])
        .arg(&dump)
        .output()
        .expect("pg_restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A relay over the restored database serves the same log to the same
    // tokens, and takes new pushes after it.
    let b = relay(&restored).await;
    let c = b.client();
    assert_eq!(log(&c, &lead).await, before);
    let env = team.change(&vol, common::doc(), b"after the restore");
    let r = c.sync(&vol.token, 0, vec![env.clone()], 0).await;
    assert_eq!(r.acked[0].id, env.id);
    assert_eq!(log(&c, &lead).await.len(), before.len() + 1);
    b.stop().await;
}
