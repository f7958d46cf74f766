//! `heartbridge stats` through the real binary: the table, JSON, the CSV
//! (its metadata line and headers, suppression, and none of the aliases,
//! notes or names typed in), and bad input.

use std::path::Path;
use std::process::{Command, Output};

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

fn ok(profile: &Path, args: &[&str]) -> String {
    let out = hb(profile, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(profile, &all)).unwrap()
}

#[test]
fn stats_count_real_work_and_the_csv_carries_none_of_its_words() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lead");
    let name = "督导王老师Q3";
    let v = json(&p, &["init", "--name", name]);
    let device = v["device_id"].as_str().unwrap().to_owned();
    let aliases = ["小雨独特K1", "阿明独特K2"];
    let notes = [
        "说起家里的事很难过独特N1",
        "talked about the exam on Friday N2",
    ];
    let mut ids = Vec::new();
    for (alias, group) in aliases.iter().zip(["exam-stress", "migrant"]) {
        let v = json(
            &p,
            &[
                "case", "new", "--alias", alias, "--group", group, "--risk", "low",
            ],
        );
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    for (i, note) in notes.iter().enumerate() {
        for channel in ["hotline", "online"] {
            json(
                &p,
                &[
                    "case",
                    "contact",
                    &ids[i],
                    "--channel",
                    channel,
                    "--text",
                    note,
                    "--minutes",
                    "20",
                ],
            );
        }
    }

    let st = json(&p, &["stats", "--by", "channel,group"]);
    assert_eq!(st["total"]["contacts"], 4);
    assert_eq!(st["total"]["cases"], 2);
    assert_eq!(st["total"]["new_cases"], 2);
    assert_eq!(st["by"], serde_json::json!(["channel", "group"]));
    assert_eq!(st["rows"].as_array().unwrap().len(), 4);

    let table = ok(&p, &["stats", "--by", "channel"]);
    assert!(
        table.contains("hotline") && table.contains("online"),
        "{table}"
    );

    // k = 1: a count of 2 is shown, a count of 1 is hidden.
    let csv = ok(
        &p,
        &[
            "stats",
            "--csv",
            "--k",
            "1",
            "--by",
            "channel,group,risk,week,month",
        ],
    );
    let mut lines = csv.lines();
    let meta = lines.next().unwrap();
    assert!(
        meta.starts_with("# heartbridge statistics; period="),
        "{meta}"
    );
    assert!(meta.contains("; k=1; schema=1"), "{meta}");
    assert_eq!(
        lines.next().unwrap(),
        "week,month,channel,group,risk,contacts,cases,new_cases,escalations,median_minutes_to_receipt,followups_done,followups_overdue,volunteer_hours"
    );
    let total = csv.lines().last().unwrap();
    assert!(
        total.starts_with("all,all,all,all,all,4,2,2,0,,0,0,"),
        "{total}"
    );
    // Default k (the team setting's 5): every count here is hidden.
    let hidden = ok(&p, &["stats", "--csv"]);
    assert!(hidden.contains("; k=5; schema=1"), "{hidden}");
    assert!(
        hidden
            .lines()
            .last()
            .unwrap()
            .starts_with("all,all,all,all,all,*,*,*,0,"),
        "{hidden}"
    );
    let wrapped = json(&p, &["stats", "--csv", "--k", "2"]);
    assert_eq!(wrapped["k"], 2);

    for text in [&csv, &hidden, &wrapped.to_string(), &st.to_string(), &table] {
        for secret in aliases
            .iter()
            .chain(&notes)
            .chain([&name, &device.as_str()])
        {
            assert!(!text.contains(secret), "the output holds {secret:?}");
        }
    }
}

#[test]
fn bad_dimensions_dates_and_thresholds_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    json(&p, &["init", "--name", "x"]);
    for (args, says) in [
        (
            &["stats", "--by", "colour"][..],
            "channel group risk week month",
        ),
        (&["stats", "--from", "2026-13-01"][..], "YYYY-MM-DD"),
        (
            &["stats", "--from", "2026-03-05", "--to", "2026-03-01"][..],
            "from",
        ),
        (&["stats", "--csv", "--k", "0"][..], "1 or more"),
        (&["stats", "--utc-offset", "8"][..], "+HH:MM"),
    ] {
        let out = hb(&p, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = json(
        &p,
        &[
            "stats",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--utc-offset",
            "+08:00",
        ],
    );
    assert_eq!(out["from"], "2026-03-01");
    assert_eq!(out["utc_offset_minutes"], 480);
    assert_eq!(out["total"]["contacts"], 0);
}

// ---------------------------------------------------------------------------
// A team against the real relay: the lead counts a volunteer's work from the
// facts it pushed, the export holds nobody's words, the volunteer is refused.

const PIN: &str = heartbridge_core::testing::TEST_PIN;

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

fn invite(lead: &Path, role: &str) -> String {
    json(lead, &["team", "invite", "--role", role])["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_lead_counts_a_volunteers_synced_work_and_a_volunteer_is_refused() {
    let relay = heartbridge_tests::Relay::start();
    let dir = tempfile::tempdir().unwrap();
    let (lead, sup, vol) = (
        dir.path().join("lead"),
        dir.path().join("sup"),
        dir.path().join("vol"),
    );
    let names = ["林组长Q1", "王督导Q2", "小白志愿者Q3"];
    let created = relay.create_team("热线组");
    let v = json(
        &lead,
        &[
            "team",
            "claim",
            "--relay",
            &relay.url,
            "--token",
            created.lead_token.expose(),
            "--name",
            names[0],
        ],
    );
    let lead_id = v["device_id"].as_str().unwrap().to_owned();
    let sup_id = join(&invite(&lead, "supervisor"), &sup, names[1]);
    let vol_id = join(&invite(&lead, "volunteer"), &vol, names[2]);
    for d in [&lead, &sup, &vol] {
        json(d, &["sync"]);
    }

    let alias = "独特别名小雨K9";
    let notes = ["第一次来电独特笔记A7", "she mentioned the bridge B8"];
    let task = "周五回访独特任务C6";
    let instructions = "今晚再打一次独特指示D5";
    let id = json(
        &vol,
        &[
            "case", "new", "--alias", alias, "--group", "migrant", "--risk", "low",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(
        &vol,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "hotline",
            "--text",
            notes[0],
        ],
    );
    json(&vol, &["case", "set", &id, "--risk", "high"]);
    json(
        &vol,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "online",
            "--text",
            notes[1],
        ],
    );
    json(&vol, &["case", "followup", &id, "--text", task]);
    json(&vol, &["sync"]);
    json(&sup, &["sync"]);
    json(&sup, &["case", "ack", &id, "--instructions", instructions]);
    json(&sup, &["sync"]);
    json(&lead, &["sync"]);

    // The volunteer's device holds facts but may not see statistics.
    for args in [&["stats"][..], &["stats", "--csv"][..]] {
        let out = hb(&vol, &[&["--json"][..], args].concat());
        assert!(!out.status.success(), "{args:?}");
        let err: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(err["error"], "forbidden", "{args:?}");
    }

    // The lead counts the volunteer's work and the supervisor's receipt.
    let st = json(&lead, &["stats", "--by", "channel"]);
    let t = &st["total"];
    assert_eq!(
        (
            &t["contacts"],
            &t["cases"],
            &t["new_cases"],
            &t["escalations"],
            &t["receipts"]
        ),
        (&2.into(), &1.into(), &1.into(), &1.into(), &1.into()),
        "{st}"
    );
    let csv = ok(
        &lead,
        &[
            "stats",
            "--csv",
            "--k",
            "1",
            "--by",
            "channel,group,risk,week,month",
        ],
    );
    // k = 1: the two contacts are shown, every count of 1 is hidden.
    let total = csv.lines().last().unwrap();
    assert_eq!(total, "all,all,all,all,all,2,*,*,*,*,0,0,0.0");
    let everything = [csv, st.to_string()].join("\n");
    for secret in [alias, notes[0], notes[1], task, instructions]
        .into_iter()
        .chain(names)
        .chain([lead_id.as_str(), sup_id.as_str(), vol_id.as_str()])
    {
        assert!(
            !everything.contains(secret),
            "the lead's statistics hold {secret:?}"
        );
    }
}
