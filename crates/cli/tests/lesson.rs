//! `heartbridge lesson` through the real binary, real profiles and the real
//! relay on loopback: the lead adds a lesson to a handbook and syncs (the
//! chunks go up with the sync); a volunteer sees it with its size, is asked
//! before a fetch over a link that may be metered, fetches, exports the
//! very bytes, counts a viewing; the lead's statistics count it.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "lesson-test-pin";

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

fn fails(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(!out.status.success(), "{args:?} succeeded");
    serde_json::from_slice(&out.stderr).expect("one JSON error line")
}

fn join(code: &str, dir: &Path, name: &str) {
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
}

#[test]
fn a_lesson_goes_from_the_lead_to_a_volunteer_who_is_asked_before_a_metered_fetch() {
    let relay = Relay::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let (lead, vol) = (tmp.path().join("lead"), tmp.path().join("vol"));
    let created = relay.create_team("t");
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
            "组长",
        ],
    );
    let handbook = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../handbooks/zh/crisis-risk-assessment-referral.md");
    let imported = ok(
        &lead,
        &["handbook", "import", handbook.to_str().expect("path")],
    );
    let hb_id = imported[0]["id"].as_str().expect("id").to_owned();

    // 1.5 MB of "media" with a marker.
    let media: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = tmp.path().join("lesson.mp3");
    std::fs::write(&file, &media).expect("write media");
    let added = ok(
        &lead,
        &[
            "lesson",
            "add",
            "--handbook",
            &hb_id[..8],
            "--title",
            "如何开场",
            "--duration",
            "95",
            file.to_str().expect("path"),
        ],
    );
    let id = added["id"].as_str().expect("id").to_owned();
    assert_eq!(added["mime"], "audio/mpeg");
    assert_eq!(added["chunks"], 3);
    ok(&lead, &["sync"]);
    let pushed = ok(&lead, &["lesson", "push"]);
    assert_eq!(pushed["uploaded"], 0, "the sync uploaded every chunk");

    let code = ok(&lead, &["team", "invite", "--role", "volunteer"])["code"]
        .as_str()
        .expect("code")
        .to_owned();
    join(&code, &vol, "志愿者");
    ok(&vol, &["sync"]);
    let list = ok(&vol, &["lesson", "list"]);
    assert_eq!(list[0]["title"], "如何开场");
    assert_eq!(list[0]["size"], 1_500_000);
    assert_eq!(list[0]["held"], false);
    assert_eq!(list[0]["duration_ms"], 95_000);

    let e = fails(&vol, &["lesson", "fetch"]);
    assert_eq!(e["error"], "metered_link");
    let msg = e["message"].as_str().expect("message");
    assert!(
        msg.contains("1.5 MB") && msg.contains("--yes-metered"),
        "{msg}"
    );
    let human = hb(&vol, &["lesson", "fetch"]);
    assert!(String::from_utf8_lossy(&human.stderr).contains("1.5 MB"));
    assert_eq!(ok(&vol, &["lesson", "list"])[0]["chunks_held"], 0);

    let fetched = ok(&vol, &["lesson", "fetch", "--yes-metered", &id]);
    assert_eq!(fetched["complete"], true);
    assert_eq!(fetched["chunks_fetched"], 3);
    let out = tmp.path().join("copy.mp3");
    ok(
        &vol,
        &["lesson", "export", &id, out.to_str().expect("path")],
    );
    assert_eq!(std::fs::read(&out).expect("copy"), media);

    ok(&vol, &["lesson", "progress", &id, "--at", "42.5"]);
    assert_eq!(ok(&vol, &["lesson", "watched", &id])["watched_count"], 1);
    let l = ok(&vol, &["lesson", "list"]);
    assert_eq!(
        (l[0]["held"].clone(), l[0]["position_ms"].clone()),
        (Value::Bool(true), Value::from(42_500))
    );
    ok(&vol, &["sync"]);
    ok(&lead, &["sync"]);
    let stats = ok(&lead, &["stats"]);
    assert_eq!(stats["lessons_watched"], 1);
    assert_eq!(stats["lessons"][0]["title"], "如何开场");

    // The policy: unmetered fetches without asking.
    assert_eq!(ok(&vol, &["lesson", "link"])["link"], "ask");
    assert_eq!(
        ok(&vol, &["lesson", "link", "unmetered"])["link"],
        "unmetered"
    );
    assert_eq!(
        fails(&vol, &["lesson", "link", "maybe"])["error"],
        "invalid_input"
    );
}
