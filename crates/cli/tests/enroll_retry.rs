//! `team claim` and `join` whose answer is lost (the link is cut after the
//! relay enrolled the device, or the CLI is killed while it waits), run
//! again: they succeed, the token is not burnt, and the team has one device
//! for them, not an orphan. Real binary, real relay on loopback, the link
//! emulator in between.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use heartbridge_tests::Relay;
use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset, Stall};
use serde_json::Value;

fn hb(profile: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heartbridge"));
    c.arg("--profile")
        .arg(profile)
        .arg("--json")
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env(
            "HEARTBRIDGE_PASSPHRASE",
            heartbridge_core::testing::TEST_PIN,
        );
    c
}

fn run(profile: &Path, args: &[&str]) -> Output {
    hb(profile, args).output().expect("run heartbridge")
}

fn ok(profile: &Path, args: &[&str]) -> Value {
    let out = run(profile, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("loopback address")
}

/// Devices the relay holds for its only team.
fn relay_devices(relay: &Relay) -> u64 {
    heartbridge_relay::list_teams(&relay.db()).expect("teams")[0].devices
}

fn names(members: &Value) -> Vec<String> {
    members
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect()
}

/// The answer is cut at its first byte, after the relay committed.
fn lose_answers() -> Config {
    Config {
        cut: Some(Cut {
            counted: Direction::Down,
            at: Offset::At(1),
            end: End::Reset,
        }),
        ..Config::default()
    }
}

/// A relay with a team whose lead claimed it through `link`, and an invite.
fn lead_and_invite(relay: &Relay, link: &BackgroundLink, lead: &Path) -> String {
    let created = relay.create_team("热线组");
    ok(
        lead,
        &[
            "team",
            "claim",
            "--relay",
            &link.url(),
            "--token",
            created.lead_token.expose(),
            "--name",
            "林老师",
        ],
    );
    ok(lead, &["team", "invite"])["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

#[test]
fn a_join_whose_answer_was_cut_succeeds_when_run_again() {
    let relay = Relay::start();
    let link = BackgroundLink::loopback(addr_of(&relay.url), Config::default()).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, vol) = (dir.path().join("lead"), dir.path().join("vol"));
    let code = lead_and_invite(&relay, &link, &lead);

    link.set_config(lose_answers());
    let out = run(&vol, &["join", &code, "--name", "小王"]);
    assert!(!out.status.success(), "a join without an answer succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the relay"), "{err}");
    assert!(!err.contains(&code), "the code leaked into the error");
    assert_eq!(relay_devices(&relay), 2, "the relay did enroll the device");
    assert!(ok(&vol, &["status"])["team"].is_null());

    link.set_config(Config::default());
    let joined = ok(&vol, &["join", &code]);
    assert_eq!(joined["role"], "volunteer");
    let members = ok(&lead, &["team", "members"]);
    let mut all = names(&members);
    all.sort();
    assert_eq!(all, ["小王", "林老师"], "{members}");
    assert_eq!(members.as_array().expect("members").len(), 2, "{members}");
    assert_eq!(relay_devices(&relay), 2);
    // The device is the one the relay knows: it syncs.
    assert_eq!(ok(&vol, &["sync"])["pending"], 0);
    assert_eq!(link.stats().cut, 1);
}

#[test]
fn a_join_killed_while_waiting_for_its_answer_succeeds_when_run_again() {
    let relay = Relay::start();
    let link = BackgroundLink::loopback(addr_of(&relay.url), Config::default()).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, vol) = (dir.path().join("lead"), dir.path().join("vol"));
    let code = lead_and_invite(&relay, &link, &lead);

    // The answer is held back; the CLI is killed once the relay has
    // enrolled the device.
    link.set_config(Config {
        stall: Some(Stall {
            counted: Direction::Down,
            at: Offset::At(0),
            duration: Duration::from_secs(600),
        }),
        ..Config::default()
    });
    let mut child = hb(&vol, &["join", &code, "--name", "小王"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The relay answers only once the enrollment is committed; the link
    // holds that answer (its stall begins) and the CLI waits for it.
    assert!(
        link.wait_until(Duration::from_secs(30), |s| s.stalls >= 1),
        "the relay never answered"
    );
    assert!(child.try_wait().expect("wait").is_none(), "the join ended");
    assert_eq!(relay_devices(&relay), 2, "the relay did enroll the device");
    child.kill().expect("kill");
    child.wait().expect("reap");

    link.set_config(Config::default());
    assert_eq!(ok(&vol, &["join", &code])["role"], "volunteer");
    let members = ok(&lead, &["team", "members"]);
    assert_eq!(members.as_array().expect("members").len(), 2, "{members}");
    assert_eq!(
        names(&members).iter().filter(|n| *n == "小王").count(),
        1,
        "{members}"
    );
    assert_eq!(relay_devices(&relay), 2);
}

#[test]
fn a_claim_whose_answer_was_cut_succeeds_when_run_again() {
    let relay = Relay::start();
    let created = relay.create_team("t");
    let link = BackgroundLink::loopback(addr_of(&relay.url), lose_answers()).expect("link");
    let dir = tempfile::tempdir().expect("tmp");
    let lead = dir.path().join("lead");
    let token = created.lead_token.expose();
    let claim = |relay_url: &str| {
        run(
            &lead,
            &[
                "team", "claim", "--relay", relay_url, "--token", token, "--name", "林",
            ],
        )
    };
    let out = claim(&link.url());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the relay"), "{err}");
    assert!(!err.contains(token), "the token leaked into the error");
    assert_eq!(relay_devices(&relay), 1);

    // Again, straight to the relay.
    let out = claim(&relay.url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claimed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(claimed["role"], "lead");
    let members = ok(&lead, &["team", "members"]);
    assert_eq!(names(&members), ["林"]);
    assert_eq!(relay_devices(&relay), 1);
    assert_eq!(ok(&lead, &["status"])["team"]["relay"], relay.url.as_str());
}
