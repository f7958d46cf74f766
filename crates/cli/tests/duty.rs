//! The duty roster and the team settings end to end, through the real
//! binary against the real relay on loopback: the lead sets the lines, who
//! is on duty when and the on-call phone; a volunteer syncs and sees them,
//! may not change them; a shift ended on a line with a handover note is
//! shown to the next shift on that line on another device.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "duty-test-pin";

fn hb(profile: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env("HEARTBRIDGE_PASSPHRASE", PIN)
        // Local times on the command line are read in this zone.
        .env("TZ", "Asia/Shanghai")
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

/// The error kind a failing command reports (its JSON on stderr).
fn fails(profile: &Path, args: &[&str]) -> String {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(!out.status.success(), "{args:?} should fail");
    let err: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    err["error"].as_str().expect("kind").to_owned()
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

fn sync(profile: &Path) -> Value {
    ok(profile, &["sync"])
}

fn names(slots: &Value) -> Vec<String> {
    let mut v: Vec<String> = slots
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_leads_roster_and_settings_reach_a_volunteer_who_may_not_change_them() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, sup, vol) = (
        dir.path().join("lead"),
        dir.path().join("sup"),
        dir.path().join("vol"),
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
    let sup_id = join(&invite(&lead, "supervisor"), &sup, "王督导");
    let vol_id = join(&invite(&lead, "volunteer"), &vol, "小李");
    sync(&lead);

    // The lead: two lines, the on-call phone, who is on duty when.
    assert_eq!(
        ok(&lead, &["duty", "line", "add", "--name", "热线"])["id"],
        "hotline"
    );
    ok(
        &lead,
        &[
            "duty",
            "line",
            "add",
            "--name",
            "值班督导",
            "--kind",
            "on-call",
        ],
    );
    ok(
        &lead,
        &["team", "settings", "--on-call-phone", "400 123 4567"],
    );
    ok(&lead, &["team", "settings", "--suppression-k", "7"]);
    // By name (the relay's member list) and by device id; local time
    // (TZ=Asia/Shanghai) and RFC 3339.
    ok(
        &lead,
        &[
            "duty",
            "add",
            "--line",
            "值班督导",
            "--member",
            "王督导",
            "--from",
            "2026-12-01T08:00",
            "--to",
            "2026-12-01T20:00",
        ],
    );
    ok(
        &lead,
        &[
            "duty",
            "add",
            "--line",
            "hotline",
            "--member",
            &vol_id,
            "--from",
            "2026-12-01T01:00:00Z",
            "--to",
            "2026-12-01T05:00:00Z",
        ],
    );
    // Someone not in the team is refused, the name not echoed.
    let unknown = hb(
        &lead,
        &[
            "duty",
            "add",
            "--line",
            "hotline",
            "--member",
            "无此人",
            "--from",
            "2026-12-01T08:00",
            "--to",
            "2026-12-01T09:00",
        ],
    );
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("no member of the team has that name"), "{err}");
    assert!(!err.contains("无此人"), "{err}");
    assert_eq!(
        ok(
            &lead,
            &[
                "team",
                "settings",
                "--supervisor-group",
                &format!("王督导={vol_id}")
            ]
        )["supervisor_groups"][&sup_id][0],
        vol_id.as_str()
    );
    sync(&lead);

    // The volunteer syncs and sees all of it.
    sync(&vol);
    let settings = ok(&vol, &["team", "settings"]);
    assert_eq!(settings["on_call_phone"], "400 123 4567");
    assert_eq!(settings["suppression_k"], 7);
    assert_eq!(settings["lines"].as_array().expect("lines").len(), 2);
    assert_eq!(settings["supervisor_groups"][&sup_id][0], vol_id.as_str());
    // 09:00 in Shanghai is 01:00Z: both slots run.
    let shown = ok(&vol, &["duty", "show", "--at", "2026-12-01T09:00"]);
    assert_eq!(shown["on_call"]["name"], "王督导", "{shown}");
    assert_eq!(shown["on_call"]["device"], sup_id.as_str());
    assert_eq!(shown["on_call"]["phone"], "400 123 4567");
    assert_eq!(names(&shown["on_duty"]), ["小李", "王督导"]);
    // At 14:00 only the supervisor; at 21:00 no one is on call.
    let later = ok(&vol, &["duty", "show", "--at", "2026-12-01T14:00+08:00"]);
    assert_eq!(names(&later["on_duty"]), ["王督导"]);
    let night = ok(&vol, &["duty", "show", "--at", "2026-12-01T21:00"]);
    assert!(night["on_call"].is_null(), "{night}");
    let before = ok(&vol, &["duty", "show", "--at", "2026-12-01T07:00"]);
    assert_eq!(names(&before["upcoming"]), ["小李", "王督导"]);

    // The volunteer may not change any of it, and writes nothing trying.
    let pending = ok(&vol, &["status"])["sync"]["pending"].clone();
    assert_eq!(
        fails(&vol, &["team", "settings", "--on-call-phone", "110"]),
        "forbidden"
    );
    assert_eq!(
        fails(&vol, &["duty", "line", "add", "--name", "x"]),
        "forbidden"
    );
    assert_eq!(fails(&sup, &["duty", "remove", "0000"]), "forbidden");
    assert_eq!(ok(&vol, &["status"])["sync"]["pending"], pending);
    assert_eq!(
        ok(&vol, &["team", "settings"])["on_call_phone"],
        "400 123 4567"
    );

    // The lead removes a line: its slot goes too, on the volunteer's
    // device after the next sync.
    ok(&lead, &["duty", "line", "remove", "热线"]);
    sync(&lead);
    sync(&vol);
    let shown = ok(&vol, &["duty", "show", "--at", "2026-12-01T09:00"]);
    assert_eq!(names(&shown["on_duty"]), ["王督导"]);
    assert_eq!(
        ok(&vol, &["duty", "line", "list"])
            .as_array()
            .expect("lines")
            .len(),
        1
    );
}

#[test]
fn a_handover_note_waits_for_the_next_shift_on_that_line_on_another_device() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, a, b) = (
        dir.path().join("lead"),
        dir.path().join("a"),
        dir.path().join("b"),
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
    join(&invite(&lead, "volunteer"), &a, "小李");
    join(&invite(&lead, "volunteer"), &b, "小张");
    ok(&lead, &["duty", "line", "add", "--name", "热线"]);
    ok(
        &lead,
        &["duty", "line", "add", "--name", "网络", "--kind", "online"],
    );
    sync(&lead);
    sync(&a);

    // a's shift on the hotline, ended with a note for the next one.
    let started = ok(&a, &["shift", "start", "--line", "热线"]);
    assert_eq!(started["shift"]["line"], "hotline");
    assert_eq!(started["shift"]["line_kind"], "hotline");
    assert_eq!(started["handover_notes"], serde_json::json!([]));
    assert_eq!(
        fails(&a, &["shift", "start", "--line", "no-such-line"]),
        "not_found"
    );
    let note = "今晚热线转接督导的流程改了，见群公告";
    let ended = ok(&a, &["shift", "end", "--handover", note]);
    assert_eq!(ended["handover"], true);
    assert_eq!(ended["shift"]["line"], "hotline");
    assert!(ok(&a, &["shift", "status"])["shift"].is_null());
    // Before a syncs, b sees nothing; after, b's next hotline shift shows it.
    sync(&b);
    assert_eq!(
        ok(&b, &["shift", "status", "--line", "hotline"])["handover_notes"],
        serde_json::json!([])
    );
    sync(&a);
    sync(&b);
    let next = ok(&b, &["shift", "start", "--line", "hotline"]);
    let notes = next["handover_notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{next}");
    assert_eq!(notes[0]["text"], note);
    assert_eq!(notes[0]["by_name"], "小李");
    assert_eq!(notes[0]["line"], "hotline");
    // The status of b's open shift lists it too; another line's does not.
    assert_eq!(
        ok(&b, &["shift", "status"])["handover_notes"][0]["text"],
        note
    );
    assert_eq!(
        ok(&b, &["shift", "status", "--line", "网络"])["handover_notes"],
        serde_json::json!([])
    );
    // b ends too, with a note of its own: the next shift sees both,
    // newest first, on a's device.
    ok(&b, &["shift", "end", "--handover", "交接：无"]);
    sync(&b);
    sync(&a);
    let both = ok(&a, &["shift", "status", "--line", "hotline"]);
    let texts: Vec<&str> = both["handover_notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["交接：无", note]);
    // Ending with a note when no shift is open says so, and saves nothing.
    let out = hb(&a, &["shift", "end", "--handover", "lost?"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not saved"));
}

#[test]
fn a_volunteers_shift_on_a_line_reaches_the_leads_statistics_as_hours() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, vol) = (dir.path().join("lead"), dir.path().join("vol"));
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
    join(&invite(&lead, "volunteer"), &vol, "小李");
    ok(&lead, &["duty", "line", "add", "--name", "热线"]);
    sync(&lead);
    sync(&vol);
    ok(&vol, &["shift", "start", "--line", "hotline"]);
    // The shift lasts at least as long as opening the profile again
    // (Argon2id) for the next command.
    ok(&vol, &["shift", "end"]);
    let before = ok(&lead, &["stats"])["facts"].as_u64().expect("facts");
    sync(&vol);
    sync(&lead);
    let stats = ok(&lead, &["stats"]);
    assert_eq!(
        stats["facts"].as_u64().expect("facts"),
        before + 1,
        "{stats}"
    );
    let hours = stats["total"]["volunteer_hours"].as_f64().expect("hours");
    assert!(hours > 0.0, "{stats}");
    // The volunteer may not read the statistics.
    assert_eq!(fails(&vol, &["stats"]), "forbidden");
}
