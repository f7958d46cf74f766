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
