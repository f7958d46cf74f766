//! Replays the fuzz corpus and every crash the fuzzer found for the relay's
//! request bodies (`fuzz/corpus/{sync_body,admin_json}`, `fuzz/crashes/…`)
//! against a real relay on loopback, so the relay's own checks (version,
//! empty ciphertext, key epoch, team id, key check, invite rules) run on
//! them too: every body gets a 2xx or a 4xx with a JSON error kind, never a
//! 5xx or a dropped connection, and the relay still syncs afterwards.

mod common;

use std::path::{Path, PathBuf};

use common::{team_with_volunteers, Answer, TestRelay};
use heartbridge_proto::ErrorBody;

/// Every file of the target's corpus and crashes, sorted by name; and how
/// many came from the corpus.
fn inputs(target: &str) -> (Vec<(String, Vec<u8>)>, usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    let mut corpus = 0;
    for dir in ["corpus", "crashes"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("a fixture file");
            corpus += usize::from(dir == "corpus");
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            out.push((format!("{dir}/{target}/{name}"), bytes));
        }
    }
    (out, corpus)
}

/// A 2xx, or a 4xx whose body is the relay's JSON error.
fn assert_answered(what: &str, a: &Answer) {
    assert!(
        a.status < 500,
        "{what}: status {} ({})",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    if a.status >= 400 {
        let e: ErrorBody = serde_json::from_slice(&a.body)
            .unwrap_or_else(|_| panic!("{what}: a {} without a JSON error body", a.status));
        assert!(!e.error.is_empty(), "{what}: an error without a kind");
    }
}

#[tokio::test]
async fn fuzzed_sync_bodies_get_an_answer_and_the_relay_keeps_syncing() {
    let (inputs, corpus) = inputs("sync_body");
    assert!(corpus > 0, "the sync_body corpus is missing");
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (_team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let mut refused = 0;
    for (name, body) in inputs {
        let a = c.sync_raw(&vols[0].token, body).await;
        assert_answered(&name, &a);
        refused += usize::from(a.status >= 400);
    }
    assert!(refused > 0, "some fuzzed bodies must be refused");
    // The relay still serves a normal sync to another device.
    c.sync(&lead.token, 0, vec![], 0).await;
}

#[tokio::test]
async fn fuzzed_admin_bodies_get_an_answer_and_the_relay_keeps_enrolling() {
    let (inputs, corpus) = inputs("admin_json");
    assert!(corpus > 0, "the admin_json corpus is missing");
    let relay = TestRelay::start().await;
    let c = relay.client();
    let (team, lead, _) = team_with_volunteers(&relay, 0).await;
    for (name, body) in inputs {
        for path in ["/v1/claim", "/v1/join"] {
            let a = c
                .send("POST", path, None, Some("application/json"), body.clone())
                .await;
            assert_answered(&format!("{path} {name}"), &a);
        }
        let a = c
            .send(
                "POST",
                "/v1/invites",
                Some(&lead.token),
                Some("application/json"),
                body.clone(),
            )
            .await;
        assert_answered(&format!("/v1/invites {name}"), &a);
    }
    // Enrollment still works: the lead invites and a device joins.
    team.add(&c, &lead, heartbridge_proto::Role::Volunteer, "After")
        .await;
}
