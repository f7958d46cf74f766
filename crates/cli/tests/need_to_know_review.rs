//! Review of the per-case key layer (helper RV): histories, through the
//! real binary and the real relay on loopback, in which a reader of a case
//! is never given its key, or a device that stopped being a reader goes on
//! reading what is written after. Each test names the order of events and
//! the function in `crates/core/src/access.rs` it exercises.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "need-to-know-review-pin";

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

fn claim(relay: &Relay, lead: &Path) {
    let created = relay.create_team("热线组");
    ok(
        lead,
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
}

fn new_case(profile: &Path, alias: &str, note: &str) -> String {
    let id = ok(profile, &["case", "new", "--alias", alias])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    contact(profile, &id, note);
    id
}

fn contact(profile: &Path, case: &str, note: &str) {
    ok(
        profile,
        &[
            "case",
            "contact",
            case,
            "--channel",
            "hotline",
            "--text",
            note,
        ],
    );
}

fn sync(profile: &Path) -> Value {
    ok(profile, &["sync"])
}

/// Every profile syncs, in order, `rounds` times: more than enough for a
/// grant made in one device's sync to reach every other device.
fn settle(profiles: &[&PathBuf], rounds: usize) {
    for _ in 0..rounds {
        for p in profiles {
            sync(p);
        }
    }
}

/// The case's contact notes as `profile` reads them; `None` if it cannot
/// open the case at all.
fn contacts(profile: &Path, case: &str) -> Option<Vec<String>> {
    let out = hb(profile, &["--json", "case", "show", case]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut texts: Vec<String> = v["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["text"].as_str().expect("text").to_owned())
        .collect();
    texts.sort();
    Some(texts)
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Finding 1. Supervisor groups S1={V1}, S2={V2}. V1 opens a case (key
/// generation 1: V1 and S1). S1 hands it to V2. The readers are now V2 and
/// S2; the devices holding the key are V1 and S1. In `access::prepare`
/// both of them hit `if !desired.contains(&me.hex) { continue; }` before
/// the "missing reader" branch, so nobody who holds the key grants it:
/// the new assignee and its supervisor never read the case, however often
/// everyone syncs.
#[test]
fn a_case_handed_over_across_supervisor_groups_reaches_the_new_assignee_and_its_supervisor() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let [lead, s1, s2, v1, v2] = ["lead", "s1", "s2", "v1", "v2"].map(|n| dir.path().join(n));
    claim(&relay, &lead);
    let s1_id = join(&invite(&lead, "supervisor"), &s1, "周督导");
    let s2_id = join(&invite(&lead, "supervisor"), &s2, "吴督导");
    let v1_id = join(&invite(&lead, "volunteer"), &v1, "小白");
    let v2_id = join(&invite(&lead, "volunteer"), &v2, "小蓝");
    settle(&[&lead, &s1, &s2, &v1, &v2], 1);
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
    settle(&[&lead, &s1, &s2, &v1, &v2], 1);

    let case = new_case(&v1, "小林", "第一次来电，说考试压力很大");
    settle(&[&v1, &s1, &s2, &v2], 1);
    assert_eq!(
        contacts(&s1, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "V1's supervisor reads the case"
    );
    assert_eq!(
        contacts(&s2, &case),
        None,
        "S2 read a case not in its group"
    );

    ok(
        &s1,
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
    settle(&[&s1, &v1, &v2, &s2, &lead], 3);
    assert_eq!(
        contacts(&v2, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "the new assignee cannot open the case handed to it (no device holding the key grants it)"
    );
    assert_eq!(
        contacts(&s2, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "the new assignee's supervisor cannot open the case"
    );
}

/// Finding 2. No groups. V1 opens a case; S1 hands it to V2: S1 rotates
/// (generation 2, granted to V2 and S1) and the assignment itself is sealed
/// under generation 2, so V1 never learns it was taken off and still
/// computes itself as the assignee. The lead revokes S1; S2 joins. Then:
/// V1 (owner, generation 1, in its stale view a reader) grants S2
/// generation 1 only; S2 opens the history up to the handover, sees V1 as
/// the assignee and, S1 being gone, rotates: its own generation 2 goes to
/// V1 and S2 but not to V2. V2 (a volunteer, `gen != 1`) may grant nothing.
/// From then on V2 writes under S1's generation 2 (S2 lacks it) and V1
/// under S2's (V2 lacks it): the current assignee and the team's only
/// supervisor never read each other's notes, and the volunteer taken off
/// the case is given a key for what is written after.
#[test]
fn a_supervisor_who_joins_after_a_handover_and_the_old_supervisor_s_removal_reads_the_case() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let [lead, s1, s2, v1, v2] = ["lead", "s1", "s2", "v1", "v2"].map(|n| dir.path().join(n));
    claim(&relay, &lead);
    let s1_id = join(&invite(&lead, "supervisor"), &s1, "周督导");
    join(&invite(&lead, "volunteer"), &v1, "小白");
    let v2_id = join(&invite(&lead, "volunteer"), &v2, "小蓝");
    settle(&[&lead, &s1, &v1, &v2], 1);

    let case = new_case(&v1, "小林", "第一次来电，说考试压力很大");
    settle(&[&v1, &s1], 1);
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
    settle(&[&s1, &v2, &v1], 1);
    assert_eq!(
        contacts(&v2, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "V2 reads the case after the handover"
    );

    ok(&lead, &["team", "revoke", &s1_id]);
    sync(&lead);
    join(&invite(&lead, "supervisor"), &s2, "吴督导");
    settle(&[&lead, &v2, &v1, &s2], 2);
    // The assignee writes; the caller also rings the volunteer it knew.
    contact(&v2, &case, "交接后第一次联系，情绪平稳");
    contact(&v1, &case, "来电者又打给了小白");
    settle(&[&v2, &v1, &s2, &lead], 3);
    let all = sorted(&[
        "第一次来电，说考试压力很大",
        "交接后第一次联系，情绪平稳",
        "来电者又打给了小白",
    ]);
    let (at_v2, at_s2) = (contacts(&v2, &case), contacts(&s2, &case));
    assert!(
        at_v2.as_ref() == Some(&all) && at_s2.as_ref() == Some(&all),
        "notes were not delivered to the case's readers: the assignee V2 reads {at_v2:?}, \
         the supervisor S2 reads {at_s2:?}"
    );
}

/// Finding 3. A team without supervisors (the lead and one volunteer).
/// The lead turns `lead_reads_cases` on and reads V1's case, then turns it
/// off. The lead is a holder who is no longer a reader, but only a
/// supervisor or the lead rotates, and the lead skips every case it does
/// not read (`if !desired.contains(&me.hex) { continue; }`); V1 may not
/// rotate. So the lead goes on reading every note V1 writes afterwards.
#[test]
fn the_lead_reads_nothing_written_after_it_turned_lead_reads_cases_off() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let [lead, v1] = ["lead", "v1"].map(|n| dir.path().join(n));
    claim(&relay, &lead);
    join(&invite(&lead, "volunteer"), &v1, "小白");
    ok(&lead, &["team", "settings", "--lead-reads-cases", "true"]);
    settle(&[&lead, &v1], 1);

    let case = new_case(&v1, "小林", "第一次来电，说考试压力很大");
    settle(&[&v1, &lead], 1);
    assert_eq!(
        contacts(&lead, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "the lead reads while the setting is on"
    );

    ok(&lead, &["team", "settings", "--lead-reads-cases", "false"]);
    settle(&[&lead, &v1], 2);
    contact(&v1, &case, "设置关闭后的记录：提到了家里的情况");
    settle(&[&v1, &lead], 2);
    let seen = contacts(&lead, &case).unwrap_or_default();
    assert!(
        !seen.iter().any(|t| t.contains("设置关闭后")),
        "the lead read a note written after it turned lead_reads_cases off: {seen:?}"
    );
}

/// Finding 5. The threat model says the readers are "the supervisors
/// (those whose supervisor group holds the assignee, when the team sets
/// groups)". `access::readers` instead lets every supervisor who has no
/// group of its own read every case (`_ => true`): the team sets S1={V1};
/// S2, in no group, reads V1's case.
#[test]
fn when_the_team_sets_supervisor_groups_a_supervisor_outside_them_reads_no_case() {
    let relay = Relay::start();
    let dir = tempfile::tempdir().expect("tmp");
    let [lead, s1, s2, v1] = ["lead", "s1", "s2", "v1"].map(|n| dir.path().join(n));
    claim(&relay, &lead);
    let s1_id = join(&invite(&lead, "supervisor"), &s1, "周督导");
    join(&invite(&lead, "supervisor"), &s2, "吴督导");
    let v1_id = join(&invite(&lead, "volunteer"), &v1, "小白");
    settle(&[&lead, &s1, &s2, &v1], 1);
    ok(
        &lead,
        &[
            "team",
            "settings",
            "--supervisor-group",
            &format!("{s1_id}={v1_id}"),
        ],
    );
    settle(&[&lead, &s1, &s2, &v1], 1);
    let case = new_case(&v1, "小林", "第一次来电，说考试压力很大");
    settle(&[&v1, &s1, &s2], 2);
    assert_eq!(
        contacts(&s1, &case),
        Some(sorted(&["第一次来电，说考试压力很大"])),
        "V1's supervisor reads the case"
    );
    assert_eq!(
        contacts(&s2, &case),
        None,
        "a supervisor outside the team's supervisor groups read a case of a grouped volunteer"
    );
}
