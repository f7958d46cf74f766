//! Replays the fuzz corpus and every crash the fuzzer found for the relay's
//! request bodies against a real relay on loopback, through the same checks
//! the `relay` fuzz target runs (`fuzz/src/relay_checks.rs`): the `relay`
//! fixtures (first byte: the endpoint), the `sync_body` fixtures as bodies
//! of `/v1/sync`, and the `admin_json` crashes as bodies of the enrollment
//! and invite endpoints. Every body gets a 2xx or a 4xx with a JSON error kind, never a
//! 5xx or a dropped connection, and the relay still syncs and enrolls
//! afterwards.

mod common;

#[allow(dead_code)]
#[path = "../../fuzz/src/relay_checks.rs"]
mod relay_checks;

use std::path::{Path, PathBuf};

use common::{team_with_volunteers, TestRelay};
use heartbridge_proto::Role;
use heartbridge_relay::RateLimits;
use relay_checks::{check_answer, pushed, resign, route, signed_push, Caller};

/// Every file of the target's corpus (with `corpus`) and crashes, sorted by
/// name; and how many came from the corpus.
fn inputs(target: &str, corpus: bool) -> (Vec<(String, Vec<u8>)>, usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    let mut from_corpus = 0;
    let dirs: &[&str] = if corpus {
        &["corpus", "crashes"]
    } else {
        &["crashes"]
    };
    for &dir in dirs {
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
            from_corpus += usize::from(dir == "corpus");
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            out.push((format!("{dir}/{target}/{name}"), bytes));
        }
    }
    (out, from_corpus)
}

fn with_mode(mode: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(body);
    v
}

#[tokio::test]
async fn fuzzed_bodies_get_an_answer_and_the_relay_keeps_syncing_and_enrolling() {
    // The relay corpus already sends JSON bodies to every enrollment and
    // admin endpoint; of the (large) admin_json corpus only its crashes go.
    let (relay_inputs, relay_corpus) = inputs("relay", true);
    let (sync_inputs, sync_corpus) = inputs("sync_body", true);
    let (admin_inputs, _) = inputs("admin_json", false);
    assert!(relay_corpus > 0, "the relay corpus is missing");
    assert!(sync_corpus > 0, "the sync_body corpus is missing");
    let mut all = relay_inputs;
    all.extend(sync_inputs.into_iter().map(|(n, b)| (n, with_mode(0, &b))));
    for (name, body) in admin_inputs {
        for mode in 1..=3 {
            all.push((format!("{name} (mode {mode})"), with_mode(mode, &body)));
        }
    }

    // One client sends every fixture: the rate limits are another test's.
    let relay = TestRelay::start_with(|c| c.rate_limits = RateLimits::OFF).await;
    let c = relay.client();
    let (team, lead, vols) = team_with_volunteers(&relay, 1).await;
    let mut refused = 0;
    let mut signed_stored = 0;
    for (name, input) in &all {
        let Some((path, caller, content_type, body)) = route(input) else {
            continue;
        };
        let token = match caller {
            Caller::Nobody => None,
            Caller::Volunteer => Some(&vols[0].token),
            Caller::Lead => Some(&lead.token),
        };
        // Modes 4 and 5: signed by the pushing device, as the fuzz target does.
        let body = if signed_push(input) {
            let by = if caller == Caller::Lead {
                &lead
            } else {
                &vols[0]
            };
            resign(body, &team.id, by.device_id(), &by.secret).unwrap_or_else(|| body.to_vec())
        } else {
            body.to_vec()
        };
        let envelopes = pushed(&body);
        let a = c.send("POST", path, token, Some(content_type), body).await;
        if std::panic::catch_unwind(|| check_answer(path, a.status, &a.body)).is_err() {
            panic!("fixture {name}: a wrong answer from {path}");
        }
        refused += usize::from(a.status >= 400);
        signed_stored += usize::from(signed_push(input) && a.status == 200 && envelopes > 0);
    }
    assert!(refused > 0, "some fuzzed bodies must be refused");
    assert!(
        signed_stored > 0,
        "some re-signed pushes of envelopes must be accepted"
    );
    // The relay still serves a normal sync, and a new device still joins.
    c.sync(&lead.token, 0, vec![], 0).await;
    team.add(&c, &lead, Role::Volunteer, "After the fuzz").await;
}
