//! The team and sync commands through the real binary, against a real relay
//! on loopback.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
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

#[test]
fn claim_invite_join_sync_status_and_members() {
    let relay = Relay::start();
    let created = relay.create_team("热线组");
    let dir = tempfile::tempdir().expect("tmp");
    let lead = dir.path().join("lead");
    let vol = dir.path().join("vol");

    let claimed = ok(
        &lead,
        &[
            "team",
            "claim",
            "--relay",
            &relay.url,
            "--token",
            created.lead_token.expose(),
            "--name",
            "林老师",
        ],
    );
    assert_eq!(claimed["role"], "lead");
    assert_eq!(claimed["team_id"], created.team_id.as_str());
    let hb_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../handbooks/zh/crisis-risk-assessment-referral.md"
    );
    ok(&lead, &["handbook", "import", hb_file]);
    let case = ok(&lead, &["case", "new", "--alias", "小雨", "--risk", "high"]);
    let report = ok(&lead, &["sync"]);
    for key in [
        "pushed",
        "pulled",
        "cursor",
        "requests",
        "bytes_sent",
        "bytes_received",
    ] {
        assert!(report[key].is_u64(), "sync report lacks {key}: {report}");
    }
    // The handbook and the case, plus the team's bookkeeping (the case
    // key's grant, the oversight key in the team settings, statistics facts).
    assert!(report["pushed"].as_u64().expect("pushed") >= 2, "{report}");
    assert_eq!(report["pending"], 0);

    let invite = ok(&lead, &["team", "invite", "--role", "volunteer"]);
    let code = invite["code"].as_str().expect("code");
    assert!(code.starts_with("HB3.") && !code.contains(char::is_whitespace));
    let joined = ok(&vol, &["join", code, "--name", "小王"]);
    assert_eq!(joined["role"], "volunteer");
    let pulled = ok(&vol, &["sync"]);
    assert!(pulled["pulled"].as_u64().expect("pulled") >= 2, "{pulled}");
    // The handbook is the team's; the lead's case is not this volunteer's
    // to read: its envelope is kept sealed (need to know).
    let out = hb(
        &vol,
        &["--json", "case", "show", case["id"].as_str().expect("id")],
    );
    assert!(!out.status.success(), "a volunteer read the lead's case");
    assert!(
        ok(&vol, &["status"])["sync"]["locked"]
            .as_u64()
            .expect("locked")
            >= 1
    );
    assert!(!ok(&vol, &["handbook", "search", "转介"])
        .as_array()
        .expect("hits")
        .is_empty());

    let status = ok(&vol, &["status"]);
    assert_eq!(status["team"]["role"], "volunteer");
    assert_eq!(status["sync"]["pending"], 0);
    assert!(status["sync"]["last_synced_at"].is_string());

    let members = ok(&lead, &["team", "members"]);
    let names: Vec<&str> = members
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"林老师") && names.contains(&"小王"));

    // The same code again: refused with what to do.
    let err = fails(&dir.path().join("third"), &["join", code, "--name", "x"]);
    assert!(err.contains("already used"), "{err}");
    // A volunteer cannot invite.
    let err = fails(&vol, &["team", "invite"]);
    assert!(err.contains("role"), "{err}");
}

#[test]
fn sync_errors_say_what_to_do_and_keep_the_notes() {
    let dir = tempfile::tempdir().expect("tmp");
    let solo = dir.path().join("solo");
    ok(&solo, &["init", "--name", "x"]);
    let err = fails(&solo, &["sync"]);
    assert!(
        err.contains("has not joined a team") && err.contains("heartbridge join"),
        "{err}"
    );
    let err = fails(
        &dir.path().join("y"),
        &["join", "HB1.garbage", "--name", "y"],
    );
    assert!(err.contains("invite code"), "{err}");

    // The relay goes away: the sync fails, the note stays and is sent later.
    let relay = Relay::start();
    let created = relay.create_team("t");
    let lead = dir.path().join("lead");
    ok(
        &lead,
        &[
            "team",
            "claim",
            "--relay",
            &relay.url,
            "--token",
            created.lead_token.expose(),
            "--name",
            "林",
        ],
    );
    let id = ok(&lead, &["case", "new", "--alias", "阿明"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let url = relay.url.clone();
    drop(relay);
    let err = fails(&lead, &["sync"]);
    assert!(
        err.contains("cannot reach the relay") && err.contains("saved on this device"),
        "{err}"
    );
    let status = ok(&lead, &["status"]);
    // The case, and the team settings that the lead's first sync gave the
    // team's oversight key.
    assert_eq!(status["sync"]["pending"], 2);
    assert_eq!(status["sync"]["last_error_kind"], "network");
    assert_eq!(ok(&lead, &["case", "show", &id])["alias"], "阿明");
    assert!(url.starts_with("http://127.0.0.1:"));
}
