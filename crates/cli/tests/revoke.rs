//! Revocation end to end, through the real binary against the real relay
//! on loopback: three devices and the lead, one revoked, a key rotation,
//! one device offline during it that catches up later.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "revoke-test-pin";

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

fn fails(profile: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(!out.status.success(), "{args:?} should fail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

fn aliases(profile: &Path) -> Vec<String> {
    let mut v: Vec<String> = ok(profile, &["case", "list"])
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["alias"].as_str().expect("alias").to_owned())
        .collect();
    v.sort();
    v
}

fn sync(profile: &Path) -> Value {
    ok(profile, &["sync"])
}

#[test]
fn a_revoked_device_reads_nothing_new_wipes_itself_and_the_others_converge() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, b, c, d) = (
        dir.path().join("lead"),
        dir.path().join("b"),
        dir.path().join("c"),
        dir.path().join("d"),
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
    // Everyone here reads every case (the lead by the team setting, b and
    // c as supervisors), so convergence means every alias everywhere; who
    // reads what is tested in need_to_know.rs.
    ok(&lead, &["team", "settings", "--lead-reads-cases", "true"]);
    let _b_id = join(&invite(&lead, "supervisor"), &b, "小白");
    let c_id = join(&invite(&lead, "supervisor"), &c, "小陈");
    // An invite the lead makes now, before any rotation, leaks later.
    let old_code = invite(&lead, "volunteer");
    // An invite the supervisor makes before it is revoked.
    let c_code = invite(&c, "volunteer");

    new_case(&lead, "L1", "lead before");
    new_case(&b, "B1", "b before");
    new_case(&c, "C1", "c before");
    for p in [&lead, &b, &c, &lead, &b, &c] {
        sync(p);
    }
    assert_eq!(aliases(&c), ["B1", "C1", "L1"]);

    // b goes offline. The lead removes c.
    let revoked = ok(&lead, &["team", "revoke", &c_id]);
    assert_eq!(revoked["epoch"], 2, "a new key epoch: {revoked}");
    new_case(&lead, "L2", "lead after the rotation");
    sync(&lead);

    // The relay refuses c at once, and c's invite no longer works.
    let (_, err) = fails(&d, &["join", &c_code, "--name", "小丁"]);
    assert!(err.contains("invite"), "c's invite still worked: {err}");

    // Everything written after the revocation is sealed under the new
    // epoch, which c never held.
    let epochs: Vec<i64> = {
        let conn = rusqlite::Connection::open(relay.db()).expect("relay db");
        let mut st = conn
            .prepare("SELECT DISTINCT epoch FROM envelopes WHERE seq > ?1 ORDER BY epoch")
            .expect("query");
        let cutoff: i64 = revoked["cutoff_seq"].as_i64().expect("cutoff");
        st.query_map([cutoff], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("epochs")
    };
    assert_eq!(epochs, [2], "envelopes after the revocation");
    assert_eq!(ok(&c, &["status"])["team"]["epoch"], 1);

    // c syncs: the relay says revoked, the lead's signed roster says so
    // too, and c erases itself.
    new_case(&c, "C2", "c after");
    let (code, err) = fails(&c, &["sync"]);
    assert!(err.contains("erased"), "c was not erased: {err}");
    assert_eq!(code, 9, "{err}");
    let left: Vec<String> = std::fs::read_dir(&c)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|f| !f.starts_with("heartbridge.db") && f != "heartbridge.keys"),
        "c's profile left files: {left:?}"
    );
    let (_, err) = fails(&c, &["case", "list"]);
    assert!(err.contains("profile"), "{err}");

    // b comes back after the rotation: it takes the new key from the
    // roster, reads what the lead wrote under it, writes under it too.
    sync(&b);
    assert_eq!(aliases(&b), ["B1", "C1", "L1", "L2"]);
    assert_eq!(ok(&b, &["status"])["team"]["epoch"], 2);
    new_case(&b, "B2", "b after the rotation");
    sync(&b);
    sync(&lead);
    assert_eq!(aliases(&lead), aliases(&b));
    assert_eq!(aliases(&lead), ["B1", "B2", "C1", "L1", "L2"]);

    // The code made before the rotation opens nothing new: the relay
    // refuses it, since it carries the old epoch's key.
    let (_, err) = fails(&d, &["join", &old_code, "--name", "小丁"]);
    assert!(
        err.contains("before your team's key changed"),
        "an old code still joined: {err}"
    );
}

#[test]
fn the_relay_alone_saying_revoked_stops_sync_but_erases_nothing() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let (lead, b) = (dir.path().join("lead"), dir.path().join("b"));
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
    let b_id = join(&invite(&lead, "volunteer"), &b, "小白");
    new_case(&b, "B1", "b's note");
    sync(&b);
    // The operator (or a hostile relay) revokes b without the lead.
    heartbridge_relay::revoke_device(&relay.db(), &b_id).expect("revoke");
    new_case(&b, "B2", "written after");
    let (code, err) = fails(&b, &["sync"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("removed"), "{err}");
    // Nothing erased: every note is still readable on b, and later syncs
    // stop on the device without asking the relay to take anything.
    assert_eq!(aliases(&b), ["B1", "B2"]);
    let (code, _) = fails(&b, &["sync"]);
    assert_eq!(code, 8);
    assert_eq!(
        ok(&b, &["status"])["sync"]["last_error_kind"],
        "device_revoked"
    );
}
