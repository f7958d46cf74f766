//! Sneakernet bundles through the real binary, real profiles (SQLite files)
//! and the real relay on loopback: export on one device, import on another
//! with no network, then both sync normally; nothing is lost and the relay
//! holds every envelope once. Tampered bundles are refused whole. Need to
//! know holds for imported cases.

use std::path::Path;
use std::process::{Command, Output};

use heartbridge_tests::Relay;
use serde_json::Value;

const PIN: &str = "bundle-test-pin";

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

/// A command that must fail; returns its JSON error line.
fn fails(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(!out.status.success(), "{args:?} succeeded");
    serde_json::from_slice(&out.stderr).expect("one JSON error line")
}

fn invite(from: &Path, role: &str) -> String {
    ok(from, &["team", "invite", "--role", role])["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

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

fn claim(relay: &Relay, dir: &Path, team: &str) {
    let created = relay.create_team(team);
    ok(
        dir,
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

fn case_json(profile: &Path, case: &str) -> Value {
    ok(profile, &["case", "show", case])
}

fn pending(profile: &Path) -> i64 {
    ok(profile, &["status"])["sync"]["pending"]
        .as_i64()
        .expect("pending")
}

/// Envelope rows at the relay.
fn relay_rows(relay: &Relay) -> i64 {
    let conn = rusqlite::Connection::open(relay.db()).expect("relay db");
    conn.query_row("SELECT count(*) FROM envelopes", [], |r| r.get(0))
        .expect("count")
}

/// A lead, a volunteer and a supervisor (who reads the volunteer's cases),
/// all synced once.
fn three(
    relay: &Relay,
    root: &Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (lead, vol, sup) = (root.join("lead"), root.join("vol"), root.join("sup"));
    claim(relay, &lead, "热线组");
    join(&invite(&lead, "volunteer"), &vol, "小白");
    join(&invite(&lead, "supervisor"), &sup, "周督导");
    for p in [&lead, &vol, &sup, &lead] {
        sync(p);
    }
    (lead, vol, sup)
}

#[test]
fn export_on_a_import_on_b_offline_then_both_sync_without_loss_or_duplicate() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (lead, vol, sup) = three(&relay, root.path());

    // The volunteer works offline: a case, two contacts.
    let case = new_case(&vol, "小林", "第一次来电，说考试压力很大");
    contact(&vol, &case, "第二次来电，睡眠好一些");
    let file = root.path().join("shift.hbb");
    let exported = ok(&vol, &["bundle", "export", file.to_str().unwrap()]);
    assert!(exported["envelopes"].as_u64().unwrap() >= 1, "{exported}");
    // The bundle holds no plaintext.
    let bytes = std::fs::read(&file).expect("bundle");
    assert!(bytes.starts_with(b"HBB1"));
    assert!(!bytes
        .windows("考试压力".len())
        .any(|w| w == "考试压力".as_bytes()));
    // The next --since last export repeats nothing; --since all does.
    let again = root.path().join("again.hbb");
    let none = ok(
        &vol,
        &[
            "bundle",
            "export",
            "--since",
            "last",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(none["envelopes"], 0, "{none}");
    assert!(none["already_exported"].as_u64().unwrap() >= 1);
    let all = ok(
        &vol,
        &[
            "bundle",
            "export",
            "--since",
            "all",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(all["envelopes"], exported["envelopes"]);

    // The supervisor imports it with no network (import never calls the
    // relay) and reads the case.
    let imported = ok(&sup, &["bundle", "import", file.to_str().unwrap()]);
    assert!(imported["applied"].as_u64().unwrap() >= 1, "{imported}");
    assert_eq!(
        contacts(&sup, &case).expect("the supervisor reads the imported case"),
        ["第一次来电，说考试压力很大", "第二次来电，睡眠好一些"]
    );
    // Importing it again is a no-op.
    let twice = ok(&sup, &["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(
        (twice["applied"].as_u64(), twice["queued"].as_u64()),
        (Some(0), Some(0)),
        "{twice}"
    );

    // The supervisor syncs first: it carries the volunteer's envelopes.
    let before = relay_rows(&relay);
    sync(&sup);
    let after_sup = relay_rows(&relay);
    assert!(
        after_sup > before,
        "the carried envelopes reached the relay"
    );
    // Then the volunteer syncs normally: its outbox is delivered already,
    // so the relay stores nothing more of it.
    sync(&vol);
    assert_eq!(
        pending(&vol),
        0,
        "the volunteer's changes are all acknowledged"
    );
    let after_vol = relay_rows(&relay);
    assert_eq!(
        after_vol, after_sup,
        "the volunteer's own push of what the supervisor carried stored nothing new"
    );
    // Both converge through normal sync.
    sync(&sup);
    sync(&vol);
    assert_eq!(case_json(&sup, &case), case_json(&vol, &case));

    // Import after sync (the lead held nothing of it, then synced) is a no-op
    // at the relay too.
    sync(&lead);
    let rows = relay_rows(&relay);
    ok(&lead, &["bundle", "import", file.to_str().unwrap()]);
    sync(&lead);
    assert_eq!(relay_rows(&relay), rows);
    let late = ok(&sup, &["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(late["applied"], 0);
}

#[test]
fn a_truncated_flipped_or_foreign_bundle_is_refused_whole_and_changes_nothing() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (_lead, vol, sup) = three(&relay, root.path());
    let case = new_case(&vol, "小林", "只在捆包里");
    let file = root.path().join("b.hbb");
    ok(&vol, &["bundle", "export", file.to_str().unwrap()]);
    let good = std::fs::read(&file).expect("bundle");

    // Another team's bundle, made on the same relay.
    let other = root.path().join("other");
    claim(&relay, &other, "另一组");
    new_case(&other, "小周", "另一组的记录");
    let foreign = root.path().join("foreign.hbb");
    ok(&other, &["bundle", "export", foreign.to_str().unwrap()]);

    let state = |p: &Path| (ok(p, &["case", "list"]), ok(p, &["status"]));
    let before = state(&sup);
    let cut = root.path().join("cut.hbb");
    std::fs::write(&cut, &good[..good.len() - 10]).unwrap();
    let flipped = root.path().join("flipped.hbb");
    let mut f = good.clone();
    let mid = f.len() / 2;
    f[mid] ^= 0x10;
    std::fs::write(&flipped, &f).unwrap();
    let not_one = root.path().join("notes.txt");
    std::fs::write(&not_one, "just text").unwrap();
    for (path, code, words) in [
        (&cut, "bundle_truncated", "copy it again"),
        (&flipped, "bundle_bad_signature", "changed or damaged"),
        (&foreign, "bundle_other_team", "another team"),
        (&not_one, "bundle_not_a_bundle", "not a Heartbridge bundle"),
    ] {
        let e = fails(&sup, &["bundle", "import", path.to_str().unwrap()]);
        assert_eq!(e["error"], "bundle", "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(words), "{code}: {message}");
        assert!(message.contains("nothing was imported"), "{message}");
        assert!(!message.contains("只在捆包里"));
        assert_eq!(state(&sup), before, "{code} changed the store");
    }
    assert_eq!(contacts(&sup, &case), None);
    // The intact bundle still imports.
    ok(&sup, &["bundle", "import", file.to_str().unwrap()]);
    assert_eq!(contacts(&sup, &case).unwrap(), ["只在捆包里"]);
}

#[test]
fn a_volunteer_importing_a_case_it_does_not_read_keeps_it_locked_and_still_carries_it() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (lead, vol, sup) = three(&relay, root.path());
    let other = root.path().join("vol2");
    join(&invite(&lead, "volunteer"), &other, "小蓝");
    for p in [&other, &lead, &vol, &sup, &other] {
        sync(p);
    }
    // The volunteer's case, carried by another volunteer who is no reader.
    let case = new_case(&vol, "小林", "只给读者看的记录");
    let file = root.path().join("v.hbb");
    ok(&vol, &["bundle", "export", file.to_str().unwrap()]);
    let imported = ok(&other, &["bundle", "import", file.to_str().unwrap()]);
    assert!(imported["locked"].as_u64().unwrap() >= 1, "{imported}");
    assert!(imported["queued"].as_u64().unwrap() >= 1);
    assert_eq!(
        contacts(&other, &case),
        None,
        "a volunteer read a case it was not given"
    );

    // It carries the envelopes to the relay; the supervisor reads them from
    // there before the author ever syncs.
    let before = relay_rows(&relay);
    sync(&other);
    assert!(relay_rows(&relay) > before, "the locked case was carried");
    sync(&sup);
    assert_eq!(
        contacts(&sup, &case).expect("the supervisor reads the carried case"),
        ["只给读者看的记录"]
    );
    // The author's own sync then stores nothing twice.
    let rows = relay_rows(&relay);
    sync(&vol);
    assert_eq!(relay_rows(&relay), rows);
}

mod interleavings {
    //! Random interleavings of writes, exports, imports and syncs among
    //! three devices: they converge, every contact exactly once on every
    //! device, nothing left to push or carry.

    use heartbridge_core::bundle::ExportScope;
    use heartbridge_core::{Channel, Group, NewCase, Risk};
    use heartbridge_tests::{sync_until_quiet, team, Relay};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write(usize),
        Export(usize, bool),
        Import(usize, usize),
        Sync(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..3usize).prop_map(Op::Write),
            2 => (0..3usize, any::<bool>()).prop_map(|(d, all)| Op::Export(d, all)),
            3 => (0..3usize, 0..100usize).prop_map(|(d, b)| Op::Import(d, b)),
            2 => (0..3usize).prop_map(Op::Sync),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        #[test]
        fn any_interleaving_converges_with_nothing_lost_or_doubled(
            ops in prop::collection::vec(op(), 4..16)
        ) {
            let relay = Relay::start();
            let mut devs = team(&relay, &["lead", "sup1", "sup2"]);
            sync_until_quiet(&mut devs, &[0, 1, 2]);
            let case = devs[0]
                .store
                .new_case(&NewCase {
                    alias: "小雨".into(),
                    group: Group::LeftBehind,
                    risk: Risk::High,
                })
                .expect("case");
            sync_until_quiet(&mut devs, &[0, 1, 2]);
            let mut bundles: Vec<Vec<u8>> = Vec::new();
            let mut written = Vec::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Write(d) => {
                        let text = format!("记录 {n}");
                        devs[d]
                            .store
                            .add_contact(&case, Channel::Hotline, &text, None)
                            .expect("contact");
                        written.push(text);
                    }
                    Op::Export(d, all) => {
                        let scope = if all { ExportScope::All } else { ExportScope::SinceLast };
                        let (bytes, _) = devs[d].store.bundle_export(scope).expect("export");
                        bundles.push(bytes);
                    }
                    Op::Import(d, b) if !bundles.is_empty() => {
                        let bytes = bundles[b % bundles.len()].clone();
                        devs[d].store.bundle_import(&bytes).expect("import");
                    }
                    Op::Import(..) => {}
                    Op::Sync(d) => {
                        devs[d].sync();
                    }
                }
            }
            sync_until_quiet(&mut devs, &[0, 1, 2]);
            written.sort();
            let first = devs[0].case(&case);
            for d in &devs {
                let c = d.case(&case);
                let mut texts: Vec<String> = c.contacts.iter().map(|x| x.text.clone()).collect();
                texts.sort();
                prop_assert_eq!(&texts, &written, "{} lost or doubled a contact", d.name);
                prop_assert_eq!(&c, &first);
                prop_assert_eq!(d.store.outbox_len().expect("outbox"), 0);
                prop_assert_eq!(d.store.carried_len().expect("carried"), 0);
            }
        }
    }
}

#[test]
fn a_case_travels_as_qr_frames_in_any_order_and_a_missing_frame_is_asked_for_again() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (_lead, vol, sup) = three(&relay, root.path());
    // A note long enough (and varied enough to stay long compressed) for
    // several frames.
    let note: String = (0..400u32)
        .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20000).unwrap())
        .collect();
    let case = new_case(&vol, "小林", &note);
    let dir = root.path().join("frames");
    let shown = ok(
        &vol,
        &[
            "bundle",
            "qr",
            "export",
            "--case",
            &case,
            dir.to_str().unwrap(),
        ],
    );
    let n = shown["frames"].as_u64().unwrap() as usize;
    assert!(n >= 3, "{shown}");
    let mut files: Vec<String> = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), n);
    // Read back out of order, one frame twice, frame 2 missing.
    files.reverse();
    let missing = files.remove(n - 2);
    let mut args: Vec<&str> = vec!["bundle", "qr", "import"];
    args.extend(files.iter().map(String::as_str));
    args.push(files[0].as_str());
    let e = fails(&sup, &args);
    assert_eq!(e["error"], "qr", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains(&format!("缺第 2/{n} 帧")), "{message}");
    assert_eq!(
        contacts(&sup, &case),
        None,
        "nothing applied before every frame is there"
    );
    // The missing frame scanned again: the case arrives.
    args.push(missing.as_str());
    let imported = ok(&sup, &args);
    assert!(imported["applied"].as_u64().unwrap() >= 1, "{imported}");
    assert_eq!(contacts(&sup, &case).unwrap(), std::slice::from_ref(&note));
    // A frame of another export mixed in is refused.
    let other_case = new_case(&vol, "小周", "另一个个案");
    let other_dir = root.path().join("other");
    let other = ok(
        &vol,
        &[
            "bundle",
            "qr",
            "export",
            "--case",
            &other_case,
            other_dir.to_str().unwrap(),
        ],
    );
    let stray = other["files"][0].as_str().unwrap().to_owned();
    let e = fails(
        &sup,
        &["bundle", "qr", "import", files[0].as_str(), stray.as_str()],
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("two different exports"),
        "{e}"
    );
}

#[test]
fn a_carried_envelope_the_relay_refuses_leaves_the_carriers_queue_and_is_counted() {
    use heartbridge_core::{Channel, Group, NewCase, Risk};
    let relay = Relay::start();
    let mut devs = heartbridge_tests::team(&relay, &["lead", "author", "carrier"]);
    heartbridge_tests::sync_until_quiet(&mut devs, &[0, 1, 2]);
    // The author writes offline and hands a bundle to the carrier.
    let case = devs[1]
        .store
        .new_case(&NewCase {
            alias: "小雨".into(),
            group: Group::LeftBehind,
            risk: Risk::High,
        })
        .expect("case");
    devs[1]
        .store
        .add_contact(&case, Channel::Hotline, "离线写下的记录", None)
        .expect("contact");
    let (bytes, _) = devs[1]
        .store
        .bundle_export(heartbridge_core::bundle::ExportScope::SinceLast)
        .expect("export");
    let imported = devs[2].store.bundle_import(&bytes).expect("import");
    assert!(imported.queued >= 1, "{imported:?}");
    let queued = devs[2].store.carried_len().expect("carried");
    assert_eq!(queued, imported.queued);
    // The lead removes the author before anything of it reached the relay.
    let author = devs[1].store.team().unwrap().unwrap().device_id;
    heartbridge_client::BlockingTransport::new()
        .expect("transport")
        .revoke(&mut devs[0].store, &author)
        .expect("revoke");
    let before = relay.envelope_count();
    // The carrier's own change goes through; the author's are refused one by
    // one, leave the queue and are counted.
    let own = devs[2]
        .store
        .new_case(&NewCase {
            alias: "小周".into(),
            group: Group::LeftBehind,
            risk: Risk::Medium,
        })
        .expect("carrier's case");
    let report = devs[2].sync();
    assert_eq!(report.carried_refused, queued, "{report:?}");
    assert_eq!(devs[2].store.carried_len().unwrap(), 0);
    // The carrier is told, not only in this sync's report (review F5), and
    // the sealed envelopes are kept, not destroyed on the relay's word.
    assert_eq!(devs[2].store.sync_status().unwrap().carried_refused, queued);
    assert_eq!(devs[2].store.carried_refused_kept().unwrap(), queued);
    assert_eq!(devs[2].store.outbox_len().unwrap(), 0);
    assert!(
        relay.envelope_count_of(&own) >= 1,
        "the carrier's own case was stored"
    );
    assert_eq!(
        relay.envelope_count_of(&case),
        0,
        "a revoked author's envelope was stored"
    );
    assert!(relay.envelope_count() > before);
    // Nothing is pushed again at the next sync.
    let again = devs[2].sync();
    assert_eq!(again.carried_refused, 0);
}

/// Review L4: an export whose file could not be written (a full or pulled
/// USB stick) marks nothing as exported: the next `--since last` export
/// still holds those changes.
#[test]
fn an_export_that_could_not_be_written_leaves_its_changes_for_the_next_one() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (_lead, vol, _sup) = three(&relay, root.path());
    new_case(&vol, "小林", "离线写下的记录");
    let gone = root.path().join("no-such-stick").join("shift.hbb");
    let e = fails(
        &vol,
        &[
            "bundle",
            "export",
            "--since",
            "last",
            gone.to_str().unwrap(),
        ],
    );
    assert!(
        e["message"].as_str().unwrap().contains("cannot write"),
        "{e}"
    );
    let file = root.path().join("shift.hbb");
    let exported = ok(
        &vol,
        &[
            "bundle",
            "export",
            "--since",
            "last",
            file.to_str().unwrap(),
        ],
    );
    assert!(exported["envelopes"].as_u64().unwrap() >= 1, "{exported}");
    assert_eq!(exported["already_exported"], 0, "{exported}");
}

/// Review L6: a bundle whose trailer verifies but one of whose envelopes,
/// by an author this device knows, does not (altered before the exporter
/// signed the file) is refused whole: nothing of it is applied or carried.
#[test]
fn a_bundle_with_one_altered_envelope_is_refused_whole() {
    use heartbridge_core::{Channel, Group, NewCase, Risk};
    let relay = Relay::start();
    let mut devs = heartbridge_tests::team(&relay, &["lead", "author", "carrier"]);
    heartbridge_tests::sync_until_quiet(&mut devs, &[0, 1, 2]);
    for alias in ["小雨", "小风"] {
        let case = devs[1]
            .store
            .new_case(&NewCase {
                alias: alias.into(),
                group: Group::LeftBehind,
                risk: Risk::High,
            })
            .expect("case");
        devs[1]
            .store
            .add_contact(&case, Channel::Hotline, "离线写下的记录", None)
            .expect("contact");
    }
    let (bytes, _) = devs[1]
        .store
        .bundle_export(heartbridge_core::bundle::ExportScope::All)
        .expect("export");
    let parsed = heartbridge_core::bundle::parse(&bytes).expect("parse");
    assert!(parsed.envelopes.len() >= 2);
    let mut envelopes = parsed.envelopes.clone();
    let last = envelopes.len() - 1;
    envelopes[last].ciphertext[0] ^= 1;
    let (_, secret) = devs[1].store.request_signer().expect("signer");
    let forged = heartbridge_core::bundle::write(
        parsed.team,
        parsed.device,
        parsed.created_at,
        envelopes,
        &secret,
    );
    let err = devs[2].store.bundle_import(&forged).expect_err("refused");
    assert!(
        matches!(
            err,
            heartbridge_core::Error::Bundle(heartbridge_core::bundle::BundleError::Damaged)
        ),
        "{err}"
    );
    assert_eq!(devs[2].store.carried_len().unwrap(), 0);
    assert!(devs[2]
        .store
        .list_cases(&Default::default())
        .unwrap()
        .is_empty());
    // The honest bundle still imports.
    let ok = devs[2].store.bundle_import(&bytes).expect("import");
    assert!(ok.queued >= 2, "{ok:?}");
}

/// The position of each of `docs` (case ids) in `envelopes`, in order.
fn case_order(envelopes: &[heartbridge_core::proto::Envelope], docs: &[&str]) -> Vec<String> {
    envelopes
        .iter()
        .map(|e| e.doc.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .filter(|d| docs.contains(&d.as_str()))
        .collect()
}

#[test]
fn an_escalated_case_goes_first_in_a_bundle_and_in_the_push_of_whoever_carries_it() {
    let relay = Relay::start();
    let root = tempfile::tempdir().expect("tmp");
    let (_lead, vol, sup) = three(&relay, root.path());
    // Offline: three cases, the newest raised to high, then the oldest gets
    // another contact. Without the priority the bundle would follow the
    // order of writing.
    let third = new_case(&vol, "小吴", "聊了很久");
    let second = new_case(&vol, "小周", "约了下周");
    let first = new_case(&vol, "小林", "第一次来电");
    ok(&vol, &["case", "set", &first, "--risk", "high"]);
    contact(&vol, &third, "又来了消息");
    let docs = [first.as_str(), second.as_str(), third.as_str()];

    let file = root.path().join("shift.hbb");
    ok(&vol, &["bundle", "export", file.to_str().unwrap()]);
    let parsed = heartbridge_core::bundle::parse(&std::fs::read(&file).expect("bundle"))
        .expect("the bundle parses");
    let order = case_order(&parsed.envelopes, &docs);
    assert!(order.len() >= 3, "{order:?}");
    heartbridge_tests::assert_first_before_the_rest(&order, &first);

    // The supervisor carries it out: its push puts the escalated case first
    // too (the relay stores envelopes in the order a push lists them).
    ok(&sup, &["bundle", "import", file.to_str().unwrap()]);
    sync(&sup);
    heartbridge_tests::assert_first_before_the_rest(&relay.doc_order(&docs), &first);
}
