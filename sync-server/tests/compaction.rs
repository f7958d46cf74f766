//! Compaction can be undone: what a snapshot supersedes is kept, no longer
//! pulled, for the compaction grace, then deleted; inside the grace the
//! operator's `compaction undo` serves it again. Real relay, real SQLite.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{doc, team_with_volunteers, within, EnrolledDevice, Team, TestRelay};
use heartbridge_proto::Role;
use heartbridge_relay::Clock;

const DAY: i64 = 24 * 3600;

/// A supervisor pushes three changes of `x` and a snapshot covering them;
/// returns (the changes' seqs, the snapshot's seq).
async fn compacted(
    relay: &TestRelay,
    team: &Team,
    sup: &EnrolledDevice,
    x: [u8; 16],
) -> (Vec<u64>, u64) {
    let c = relay.client();
    let changes: Vec<u64> = c
        .sync(
            &sup.token,
            0,
            (0..3)
                .map(|i| team.change(sup, x, format!("x{i}").as_bytes()))
                .collect(),
            0,
        )
        .await
        .acked
        .iter()
        .map(|a| a.seq)
        .collect();
    let snap = team.snapshot(sup, x, b"x0 x1 x2", changes[2]);
    let snap_seq = c.sync(&sup.token, 0, vec![snap], 0).await.acked[0].seq;
    (changes, snap_seq)
}

/// The seqs a device pulls from 0.
async fn pulled(relay: &TestRelay, device: &EnrolledDevice) -> Vec<u64> {
    let (pages, _) = relay.client().pull_all(&device.token, 0, 0).await;
    pages
        .iter()
        .flat_map(|p| p.pull.iter().map(|e| e.seq))
        .collect()
}

/// A relay over `dir` with a 2-day grace whose clock reads `now`; answers
/// once it serves (after its startup purge).
async fn restart(dir: tempfile::TempDir, now: &Arc<AtomicI64>) -> TestRelay {
    let now = Arc::clone(now);
    let relay = TestRelay::start_in(dir, move |c| {
        c.compaction_grace = Duration::from_secs(2 * DAY as u64);
        c.clock = Clock::from_fn(move || now.load(Ordering::SeqCst));
    })
    .await;
    assert_eq!(relay.client().get("/healthz", None).await.status, 200);
    relay
}

#[tokio::test]
async fn superseded_envelopes_survive_the_grace_then_are_purged_at_startup() {
    let relay =
        TestRelay::start_with(|c| c.compaction_grace = Duration::from_secs(2 * DAY as u64)).await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    let (_, snap) = compacted(&relay, &team, &sup, doc()).await;
    assert_eq!(pulled(&relay, &vols[0]).await, vec![snap]);
    assert_eq!(relay.superseded_envelopes(), 3);
    let compacted_at = relay.now.load(Ordering::SeqCst);

    // Restarted a day later (a purge runs at startup): still kept, still
    // not pulled.
    let now = Arc::new(AtomicI64::new(compacted_at + DAY));
    let relay = restart(relay.stop().await, &now).await;
    assert_eq!(relay.superseded_envelopes(), 3);
    assert_eq!(pulled(&relay, &vols[0]).await, vec![snap]);

    // Restarted once the grace has passed: deleted.
    now.store(compacted_at + 2 * DAY + 1, Ordering::SeqCst);
    let relay = restart(relay.stop().await, &now).await;
    assert_eq!(relay.superseded_envelopes(), 0);
    assert_eq!(relay.stored_envelopes(), 1, "the snapshot stays");
    assert_eq!(pulled(&relay, &vols[0]).await, vec![snap]);
    relay.stop().await;
}

#[tokio::test]
async fn a_running_relay_purges_periodically_once_the_grace_has_passed() {
    let relay = TestRelay::start_with(|c| {
        c.compaction_grace = Duration::from_secs(DAY as u64);
        c.purge_interval = Duration::from_millis(20);
    })
    .await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    compacted(&relay, &team, &sup, doc()).await;
    assert_eq!(relay.superseded_envelopes(), 3);
    relay.advance_clock(DAY + 1);
    within("the periodic purge", async {
        while relay.superseded_envelopes() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(relay.stored_envelopes(), 1);
    relay.stop().await;
}

fn relay_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_heartbridge-relay"))
        .args(args)
        .env_remove("HEARTBRIDGE_RELAY_DB")
        .env_remove("HEARTBRIDGE_RELAY_COMPACTION_GRACE")
        .output()
        .expect("run heartbridge-relay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_undo_command_restores_what_the_last_compaction_superseded() {
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let reader = &vols[0];
    let sup = team.add(&c, &lead, Role::Supervisor, "Supervisor").await;
    let (x, y) = (doc(), doc());
    let (changes, snap) = compacted(&relay, &team, &sup, x).await;
    let (_, y_snap) = compacted(&relay, &team, &sup, y).await;
    assert_eq!(pulled(&relay, reader).await, vec![snap, y_snap]);

    let db = relay.db.to_str().expect("utf-8 path");
    let team_id = team.id.to_hex();
    let x_id = hex::encode(x);
    // The operator finds them with `compaction list`.
    let list = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec![
            "compaction",
            "list",
            "--team",
            &team_id,
            "--db",
            db,
            "--json",
        ];
        all.extend_from_slice(args);
        let (ok, out, err) = relay_cmd(&all);
        assert!(ok, "{err}");
        serde_json::from_str(&out).expect("json")
    };
    let listed = list(&[]);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["doc"], x_id.as_str());
    assert_eq!(listed[0]["snapshot_seq"], snap);
    assert_eq!(listed[0]["author"], sup.id.as_str());
    assert_eq!(listed[0]["superseded"], 3);
    assert_eq!(listed[1]["doc"], hex::encode(y).as_str());
    assert!(list(&["--compaction-grace", "0"]).is_empty());
    // Outside the grace (0 seconds here) nothing is undone.
    let (ok, _, err) = relay_cmd(&[
        "compaction",
        "undo",
        "--team",
        &team_id,
        "--doc",
        &x_id,
        "--db",
        db,
        "--compaction-grace",
        "0",
    ]);
    assert!(!ok);
    assert!(err.contains("no compaction inside the grace"), "{err}");
    assert_eq!(relay.superseded_envelopes(), 6);
    // Bad ids are refused.
    let (ok, _, _) = relay_cmd(&[
        "compaction",
        "undo",
        "--team",
        "nothex",
        "--doc",
        &x_id,
        "--db",
        db,
    ]);
    assert!(!ok);

    // Inside it (the default 7 days), on the running relay: x's changes are
    // pulled again from cursor 0, in order with the snapshot; y stays
    // compacted.
    let (ok, out, err) = relay_cmd(&[
        "compaction",
        "undo",
        "--team",
        &team_id,
        "--doc",
        &x_id,
        "--db",
        db,
        "--json",
    ]);
    assert!(ok, "{err}");
    let undone: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(undone["restored"], 3);
    assert_eq!(undone["snapshot_seq"], snap);
    let mut want = changes.clone();
    want.extend([snap, y_snap]);
    assert_eq!(pulled(&relay, reader).await, want);
    assert_eq!(relay.superseded_envelopes(), 3);
    let listed = list(&[]);
    assert_eq!(listed.len(), 1, "only y's compaction is left");
    assert_eq!(listed[0]["snapshot_seq"], y_snap);
    // They are the envelopes as pushed: signed by their author, and they
    // open with the team key (a device merges them as any other).
    let (pages, _) = c.pull_all(&reader.token, 0, 0).await;
    for p in pages.iter().flat_map(|p| p.pull.iter()) {
        assert!(p.envelope.verify(&team.id, &sup.secret.public().sign));
        p.envelope.open(&team.key, &team.id).expect("opens");
    }
    // Nothing more to undo for x.
    let (ok, _, _) = relay_cmd(&[
        "compaction",
        "undo",
        "--team",
        &team_id,
        "--doc",
        &x_id,
        "--db",
        db,
    ]);
    assert!(!ok);
    relay.stop().await;
}
