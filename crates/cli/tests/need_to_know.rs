//! Need to know, end to end through the real binary and the real relay on
//! loopback: a volunteer holds the envelopes of a case it was not given but
//! not the key; it reads the case after a supervisor hands it over; the
//! volunteer the case was taken from reads nothing written after.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "need-to-know-pin";

fn hb(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env("HEARTBRIDGE_PASSPHRASE", PIN)
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

fn invite(from: &Path, role: &str) -> String {
    ok(from, &["team", "invite", "--role", role])["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

/// Joins with the code on standard input, as a volunteer would paste it.
fn join(code: &str, dir: &Path, name: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .arg("--profile")
        .arg(dir)
        .args(["--json", "join", "--name", name])
        .env_remove("HEARTBRIDGE_PROFILE")
        .env("HEARTBRIDGE_PASSPHRASE", PIN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run join");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{code}\n").as_bytes())
        .expect("write code");
    let out = child.wait_with_output().expect("join ends");
    assert!(
        out.status.success(),
        "join: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["device_id"].as_str().expect("device id").to_owned()
}

fn new_case(profile: &Path, alias: &str, note: &str) -> String {
    let id = ok(profile, &["case", "new", "--alias", alias])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    ok(
        profile,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "hotline",
            "--text",
            note,
        ],
    );
    id
}

fn sync(profile: &Path) -> Value {
    ok(profile, &["sync"])
}

fn contacts(profile: &Path, case: &str) -> Option<Vec<String>> {
    let out = hb(profile, &["--json", "case", "show", case]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    Some(
        v["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .map(|c| c["text"].as_str().expect("text").to_owned())
            .collect(),
    )
}

fn locked(profile: &Path) -> i64 {
    ok(profile, &["status"])["sync"]["locked"]
        .as_i64()
        .expect("locked count")
}

#[test]
fn a_volunteer_reads_only_the_cases_it_was_given_and_nothing_after_it_is_taken_off() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, sup, v1, v2) = (
        dir.path().join("lead"),
        dir.path().join("sup"),
        dir.path().join("v1"),
        dir.path().join("v2"),
    );
    let created = relay.create_team("热线组");
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
            "林老师",
        ],
    );
    join(&invite(&lead, "supervisor"), &sup, "周督导");
    let v1_id = join(&invite(&lead, "volunteer"), &v1, "小白");
    let v2_id = join(&invite(&lead, "volunteer"), &v2, "小蓝");
    for p in [&lead, &sup, &v1, &v2] {
        sync(p);
    }

    // v1 opens a case and logs a contact; everyone syncs.
    let case = new_case(&v1, "小林", "第一次来电，说考试压力很大");
    for p in [&v1, &sup, &v2, &lead] {
        sync(p);
    }
    // The supervisor reads it; v2 holds its envelopes but not the key; the
    // lead (the team does not let the lead read cases) neither.
    assert_eq!(
        contacts(&sup, &case).expect("the supervisor reads the case"),
        ["第一次来电，说考试压力很大"]
    );
    assert_eq!(
        contacts(&v2, &case),
        None,
        "v2 read a case it was not given"
    );
    assert!(locked(&v2) >= 1, "v2 holds none of the case's envelopes");
    assert_eq!(contacts(&lead, &case), None, "the lead read a case");
    // The relay's copy opens for nobody without the case key: the note is
    // nowhere in the relay's file.
    let relay_bytes = std::fs::read(relay.db()).expect("relay db");
    assert!(!relay_bytes
        .windows("考试压力".len())
        .any(|w| w == "考试压力".as_bytes()));

    // The supervisor hands the case to v2.
    ok(
        &sup,
        &[
            "case",
            "assign",
            &case,
            "--to",
            &v2_id,
            "--note",
            "小白下周请假，交给小蓝跟进",
        ],
    );
    sync(&sup);
    sync(&v2);
    assert_eq!(
        contacts(&v2, &case).expect("v2 reads the case after the handover"),
        ["第一次来电，说考试压力很大"],
        "v2 reads the whole history"
    );
    assert_eq!(locked(&v2), 0, "everything v2 held opened");

    // v2 writes; v1, taken off the case, syncs and reads nothing new.
    ok(
        &v2,
        &[
            "case",
            "contact",
            &case,
            "--channel",
            "online",
            "--text",
            "交接后第一次联系，情绪平稳",
        ],
    );
    sync(&v2);
    sync(&v1);
    let seen_by_v1 = contacts(&v1, &case).unwrap_or_default();
    assert!(
        !seen_by_v1.iter().any(|t| t.contains("交接后")),
        "v1 read what was written after it was taken off the case: {seen_by_v1:?}"
    );
    assert!(
        locked(&v1) >= 1,
        "v1 did not receive the new envelopes at all"
    );
    // The supervisor reads both contacts; so does v2 after another sync.
    sync(&sup);
    let mut both = contacts(&sup, &case).expect("supervisor");
    both.sort();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_ne!(v1_id, v2_id);
}

#[test]
fn an_escalation_made_offline_goes_first_in_the_next_push() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, v) = (dir.path().join("lead"), dir.path().join("v"));
    let created = relay.create_team("热线组");
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
            "林老师",
        ],
    );
    join(&invite(&lead, "volunteer"), &v, "小白");
    sync(&v);
    // Offline: three cases; the newest is raised to high, then the oldest
    // gets another contact. Without the priority the push would follow
    // the order of writing: first, second, third.
    let third = new_case(&v, "小吴", "聊了很久");
    let second = new_case(&v, "小周", "约了下周");
    let first = new_case(&v, "小林", "第一次来电");
    ok(&v, &["case", "set", &first, "--risk", "high"]);
    ok(
        &v,
        &[
            "case",
            "contact",
            &third,
            "--channel",
            "online",
            "--text",
            "又来了消息",
        ],
    );
    sync(&v);
    let order = relay.doc_order(&[&first, &second, &third]);
    assert!(order.len() >= 3, "{order:?}");
    heartbridge_tests::assert_first_before_the_rest(&order, &first);
}

#[test]
fn with_supervisor_groups_a_supervisor_reads_only_its_supervisees_cases() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let (lead, s1, s2, v1, v2) = (p("lead"), p("s1"), p("s2"), p("v1"), p("v2"));
    let created = relay.create_team("热线组");
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
            "林老师",
        ],
    );
    let s1_id = join(&invite(&lead, "supervisor"), &s1, "周督导");
    let s2_id = join(&invite(&lead, "supervisor"), &s2, "吴督导");
    let v1_id = join(&invite(&lead, "volunteer"), &v1, "小白");
    let v2_id = join(&invite(&lead, "volunteer"), &v2, "小蓝");
    sync(&lead);
    // s1 supervises v1, s2 supervises v2.
    ok(
        &lead,
        &[
            "team",
            "settings",
            "--supervisor-group",
            &format!("{s1_id}={v1_id}"),
            "--supervisor-group",
            &format!("{s2_id}={v2_id}"),
        ],
    );
    for d in [&lead, &s1, &s2, &v1, &v2] {
        sync(d);
    }
    let c1 = new_case(&v1, "小林", "v1 的个案");
    let c2 = new_case(&v2, "小周", "v2 的个案");
    for d in [&v1, &v2, &s1, &s2, &v1, &v2, &s1, &s2] {
        sync(d);
    }
    assert!(
        contacts(&s1, &c1).is_some(),
        "s1 does not read its supervisee's case"
    );
    assert!(
        contacts(&s2, &c2).is_some(),
        "s2 does not read its supervisee's case"
    );
    assert_eq!(contacts(&s1, &c2), None, "s1 read a case outside its group");
    assert_eq!(contacts(&s2, &c1), None, "s2 read a case outside its group");

    // v2 joins s1's group too: s1 is given v2's case at the next syncs.
    ok(
        &lead,
        &[
            "team",
            "settings",
            "--supervisor-group",
            &format!("{s1_id}={v1_id},{v2_id}"),
        ],
    );
    for d in [&lead, &v2, &s2, &s1, &v2, &s1] {
        sync(d);
    }
    assert_eq!(
        contacts(&s1, &c2).expect("s1 reads v2's case once v2 is in its group"),
        ["v2 的个案"]
    );
}

/// A supervisor's grant to a device that a reader had already passed the
/// key on to was lost behind the reader's record, so the supervisor made
/// it again at every request: its sync ran to the request limit (found by
/// the simulation's run time).
#[test]
fn a_key_passed_on_by_a_reader_does_not_make_a_supervisor_grant_forever() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let (lead, s1, s2, v1, v2) = (p("lead"), p("s1"), p("s2"), p("v1"), p("v2"));
    let created = relay.create_team("热线组");
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
            "林老师",
        ],
    );
    join(&invite(&lead, "supervisor"), &s1, "周督导");
    join(&invite(&lead, "volunteer"), &v1, "小白");
    let v2_id = join(&invite(&lead, "volunteer"), &v2, "小蓝");
    for d in [&lead, &s1, &v1, &v2] {
        sync(d);
    }
    let case = new_case(&v1, "小林", "第一次来电");
    sync(&v1);
    sync(&s1);
    ok(
        &s1,
        &[
            "case",
            "assign",
            &case,
            "--to",
            &v2_id,
            "--note",
            "交给小蓝",
        ],
    );
    sync(&s1);
    sync(&v2);
    // A second supervisor joins; the assignee passes the key on first.
    join(&invite(&lead, "supervisor"), &s2, "吴督导");
    sync(&lead);
    sync(&v2);
    for d in [&s1, &s2, &s1, &v2] {
        let r = sync(d);
        let requests = r["requests"].as_i64().expect("requests");
        assert!(requests < 10, "a sync took {requests} requests: {r}");
    }
    assert!(contacts(&s2, &case).is_some(), "s2 does not read the case");
}
