//! Supervision end to end, through the real binary against the real relay
//! on loopback: a lead, a supervisor and volunteers; what a volunteer is
//! refused, an escalation acknowledged and its receipt on the volunteer's
//! device, a handover to another volunteer, comments and the queue.
//!
//! Written to hold with per-case keys too: a supervisor always reads the
//! team's cases, and the assignee always reads its case.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "supervision-test-pin";

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

/// Runs a command that must fail; returns the error's kind and message.
fn fails(profile: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(!out.status.success(), "{args:?} should fail");
    let err: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    (
        err["error"].as_str().expect("kind").to_owned(),
        err["message"].as_str().expect("message").to_owned(),
    )
}

fn invite(from: &Path, role: &str) -> String {
    ok(from, &["team", "invite", "--role", role])["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

/// Joins with the code on standard input; returns the device id.
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

fn sync(profile: &Path) {
    ok(profile, &["sync"]);
}

fn new_case(profile: &Path, alias: &str, risk: &str) -> String {
    ok(profile, &["case", "new", "--alias", alias, "--risk", risk])["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn show(profile: &Path, id: &str) -> Value {
    ok(profile, &["case", "show", id])
}

struct Team {
    _relay: Relay,
    _dir: tempfile::TempDir,
    lead: std::path::PathBuf,
    sup: std::path::PathBuf,
    vol: std::path::PathBuf,
    vol2: std::path::PathBuf,
    sup_id: String,
    vol_id: String,
    vol2_id: String,
}

/// A lead, a supervisor and two volunteers, everyone synced once so each
/// knows the others.
fn team() -> Team {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let (lead, sup, vol, vol2) = (p("lead"), p("sup"), p("vol"), p("vol2"));
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
            "林组长",
        ],
    );
    let sup_id = join(&invite(&lead, "supervisor"), &sup, "王督导");
    let vol_id = join(&invite(&lead, "volunteer"), &vol, "小白");
    let vol2_id = join(&invite(&lead, "volunteer"), &vol2, "小陈");
    for d in [&lead, &sup, &vol, &vol2] {
        sync(d);
    }
    Team {
        _relay: relay,
        _dir: dir,
        lead,
        sup,
        vol,
        vol2,
        sup_id,
        vol_id,
        vol2_id,
    }
}

#[test]
fn a_volunteer_is_refused_what_only_a_supervisor_may_do_and_nothing_is_written() {
    let t = team();
    let id = new_case(&t.vol, "小雨", "critical");
    let before = show(&t.vol, &id);
    let pending = ok(&t.vol, &["status"])["sync"]["pending"].clone();
    for args in [
        vec!["case", "review", &id, "--state", "reviewed"],
        vec!["case", "comment", &id, "不该出现的评论"],
        vec!["case", "ack", &id, "--instructions", "不该出现的指示"],
        vec![
            "case",
            "assign",
            &id,
            "--to",
            &t.vol2_id,
            "--note",
            "不该出现的交接",
        ],
    ] {
        let (kind, message) = fails(&t.vol, &args);
        assert_eq!(kind, "forbidden", "{args:?}: {message}");
        assert!(
            message.contains("volunteer") && message.contains("supervisor"),
            "{message}"
        );
        assert!(!message.contains("不该"), "the text leaked: {message}");
    }
    assert_eq!(show(&t.vol, &id), before, "the case did not change");
    assert_eq!(
        ok(&t.vol, &["status"])["sync"]["pending"],
        pending,
        "nothing queued for the relay"
    );
    // What a volunteer may do on its own case.
    ok(&t.vol, &["case", "handover-note", &id, "明早八点前回访"]);
    let c = show(&t.vol, &id);
    assert_eq!(c["handover_notes"][0]["text"], "明早八点前回访");
    assert_eq!(c["handover_notes"][0]["by_device"], t.vol_id.as_str());
}

#[test]
fn an_escalation_made_offline_is_acknowledged_and_the_receipt_reaches_the_volunteer() {
    let t = team();
    // The lead puts the supervisor on call now; the roster is team-wide.
    ok(
        &t.lead,
        &[
            "duty",
            "line",
            "add",
            "--name",
            "督导值班",
            "--kind",
            "on-call",
            "--phone",
            "13800000000",
        ],
    );
    let now = heartbridge_core::now_ms();
    let (from, to) = (
        heartbridge_core::format_ms(now - 3_600_000),
        heartbridge_core::format_ms(now + 8 * 3_600_000),
    );
    ok(
        &t.lead,
        &[
            "duty",
            "add",
            "--line",
            "督导值班",
            "--member",
            &t.sup_id,
            "--name",
            "王督导",
            "--from",
            &from,
            "--to",
            &to,
        ],
    );
    sync(&t.lead);
    let id = new_case(&t.vol, "小雨", "low");
    let contact = ok(
        &t.vol,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "hotline",
            "--text",
            "第一次来电",
        ],
    )["contact_id"]
        .as_str()
        .expect("contact id")
        .to_owned();
    sync(&t.vol);

    // Offline, the volunteer raises the risk: an escalation, awaiting.
    ok(&t.vol, &["case", "set", &id, "--risk", "critical"]);
    let c = show(&t.vol, &id);
    assert_eq!(c["escalation"], "awaiting");
    assert_eq!(c["awaiting_receipt"], true);
    assert_eq!(c["escalations"][0]["level"], "critical");
    assert_eq!(c["escalations"][0]["by_device"], t.vol_id.as_str());
    assert_eq!(
        c["escalations"][0]["on_call_name"], "王督导",
        "the escalation names the supervisor on call"
    );
    assert_eq!(c["escalations"][0]["on_call_device"], t.sup_id.as_str());
    let listed = ok(&t.vol, &["case", "list"]);
    assert_eq!(listed[0]["awaiting_receipt"], true);

    // Shift end: the volunteer syncs; then the supervisor.
    sync(&t.vol);
    sync(&t.sup);
    let esc = ok(&t.sup, &["escalations"]);
    assert_eq!(
        esc[0]["case"],
        id.as_str(),
        "the escalation is on top: {esc}"
    );
    assert_eq!(esc[0]["state"], "awaiting");
    let queue = ok(&t.sup, &["queue"]);
    assert_eq!(queue[0]["id"], id.as_str(), "critical first in the queue");
    assert_eq!(queue[0]["review_state"], "unreviewed");

    ok(
        &t.sup,
        &[
            "case",
            "ack",
            &id,
            "--instructions",
            "今晚九点前再联系一次，确认安全",
        ],
    );
    ok(
        &t.sup,
        &["case", "review", &id, "--state", "needs-follow-up"],
    );
    ok(
        &t.sup,
        &[
            "case",
            "comment",
            &id,
            "--contact",
            &contact,
            "第一次通话处理得很好",
        ],
    );
    assert_eq!(ok(&t.sup, &["queue"]).as_array().map(Vec::len), Some(0));
    sync(&t.sup);

    // Before its next sync the volunteer still waits.
    assert_eq!(show(&t.vol, &id)["awaiting_receipt"], true);
    sync(&t.vol);
    let c = show(&t.vol, &id);
    assert_eq!(c["awaiting_receipt"], false, "{c}");
    assert_eq!(c["escalation"], "acknowledged");
    let e = &c["escalations"][0];
    assert_eq!(e["receipt"]["by_name"], "王督导");
    assert_eq!(e["receipt"]["by_device"], t.sup_id.as_str());
    assert_eq!(e["receipt"]["mode"], "app");
    assert_eq!(
        e["receipt"]["instructions"],
        "今晚九点前再联系一次，确认安全"
    );
    let ms = e["ms_to_receipt"].as_i64().expect("time to receipt");
    assert_eq!(
        ms,
        e["receipt"]["at_ms"].as_i64().unwrap() - e["at_ms"].as_i64().unwrap()
    );
    assert!(ms >= 0);
    assert_eq!(c["review_state"], "needs-follow-up");
    assert_eq!(c["review_by"], "王督导");
    assert_eq!(c["comments"][0]["text"], "第一次通话处理得很好");
    assert_eq!(c["comments"][0]["contact"], contact.as_str());
    assert_eq!(c["comments"][0]["author_name"], "王督导");
    assert_eq!(ok(&t.vol, &["case", "list"])[0]["awaiting_receipt"], false);
}

#[test]
fn the_volunteer_records_a_phone_call_to_the_on_call_supervisor_as_a_receipt() {
    let t = team();
    let id = new_case(&t.vol, "阿明", "medium");
    ok(&t.vol, &["case", "set", &id, "--risk", "high"]);
    assert_eq!(show(&t.vol, &id)["awaiting_receipt"], true);
    // No sync: the phone is the live channel.
    ok(&t.vol, &["case", "phoned", &id, "--note", "值班督导已接通"]);
    let c = show(&t.vol, &id);
    assert_eq!(c["awaiting_receipt"], false);
    assert_eq!(c["escalations"][0]["receipt"]["mode"], "phone");
    // A contact on the high-risk case offers a debrief; the volunteer
    // records it as held.
    let contact = ok(
        &t.vol,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "hotline",
            "--text",
            "危机来电",
        ],
    )["contact_id"]
        .as_str()
        .expect("contact id")
        .to_owned();
    assert_eq!(show(&t.vol, &id)["debriefs"][0]["state"], "offered");
    ok(
        &t.vol,
        &[
            "case",
            "debrief",
            &id,
            "--contact",
            &contact,
            "--state",
            "held",
        ],
    );
    sync(&t.vol);
    sync(&t.sup);
    let c = show(&t.sup, &id);
    assert_eq!(c["escalation"], "acknowledged");
    assert_eq!(
        c["debriefs"][0]["state"], "held",
        "supervisors see debriefs"
    );
}

#[test]
fn a_supervisor_hands_a_case_to_another_volunteer_with_a_note_and_history_keeps_it() {
    let t = team();
    let id = new_case(&t.vol, "小雨", "low");
    ok(
        &t.vol,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "online",
            "--text",
            "白班记录",
        ],
    );
    sync(&t.vol);
    sync(&t.sup);
    // A name resolves through the team's member list.
    let a = ok(
        &t.sup,
        &[
            "case",
            "assign",
            &id,
            "--to",
            "小陈",
            "--note",
            "小白调岗，请接手",
        ],
    );
    assert_eq!(a["to_device"], t.vol2_id.as_str());
    sync(&t.sup);
    sync(&t.vol2);
    let c = show(&t.vol2, &id);
    assert_eq!(c["assignee_device"], t.vol2_id.as_str());
    assert_eq!(c["assignee_name"], "小陈");
    let hist: Vec<(String, String, String)> = c["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .map(|a| {
            (
                a["from_device"].as_str().unwrap().to_owned(),
                a["to_device"].as_str().unwrap().to_owned(),
                a["note"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        hist,
        [
            (String::new(), t.vol_id.clone(), String::new()),
            (
                t.vol_id.clone(),
                t.vol2_id.clone(),
                "小白调岗，请接手".to_owned()
            ),
        ]
    );
    assert_eq!(c["assignments"][1]["by_device"], t.sup_id.as_str());
    // The contact stays credited to whoever wrote it.
    assert_eq!(c["contacts"][0]["author"], "小白");
    assert_eq!(c["contacts"][0]["author_device"], t.vol_id.as_str());
    // A device that is not a member is refused.
    let (kind, _) = fails(
        &t.sup,
        &["case", "assign", &id, "--to", "ffffffff", "--note", "x"],
    );
    assert_eq!(kind, "not_found");
    let _ = &t.lead;
}
