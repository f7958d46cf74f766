//! The CLI contract, command by command, through the real binary and real
//! SQLite files; and bad input, each a clear error that loses nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Profile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

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

/// Runs a command that must succeed with `--json`; returns its JSON.
fn ok(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb(profile, &all);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e})"))
}

/// Runs a command that must fail; returns (exit code, stderr).
fn fails(profile: &Path, args: &[&str]) -> (i32, String) {
    let out = hb(profile, args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout on error");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn handbooks() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks")
}

fn profile() -> Profile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("volunteer");
    let v = ok(&path, &["init", "--name", "林老师"]);
    assert_eq!(v["device_id"].as_str().unwrap().len(), 32);
    Profile { _dir: dir, path }
}

fn new_case(p: &Path, alias: &str, risk: &str) -> String {
    let v = ok(
        p,
        &[
            "case",
            "new",
            "--alias",
            alias,
            "--group",
            "exam-stress",
            "--risk",
            risk,
        ],
    );
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn handbooks_import_list_show_and_search() {
    let p = profile();
    let imported = ok(
        &p.path,
        &["handbook", "import", handbooks().to_str().unwrap()],
    );
    assert_eq!(imported.as_array().unwrap().len(), 4);
    let list = ok(&p.path, &["handbook", "list"]);
    let pfa = list
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["slug"] == "closed-loop-pfa")
        .unwrap();
    let id = pfa["id"].as_str().unwrap();
    let book = ok(&p.path, &["handbook", "show", id]);
    assert_eq!(book["title"], "闭环场馆志愿者心理急救手册");
    let titles: Vec<&str> = book["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    let n = titles.iter().position(|t| *t == "呼吸练习").unwrap();
    let section = ok(
        &p.path,
        &["handbook", "show", &id[..8], "--section", &n.to_string()],
    );
    assert_eq!(section["title"], "呼吸练习");
    assert!(section["body"].as_str().unwrap().contains("呼吸"));

    let hits = ok(&p.path, &["handbook", "search", "呼吸", "--limit", "3"]);
    let hits = hits.as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3);
    for key in [
        "handbook_id",
        "handbook_title",
        "section_title",
        "snippet",
        "score",
    ] {
        assert!(!hits[0][key].is_null(), "hit lacks {key}");
    }
    assert!(hits[0]["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>呼吸</mark>"));

    // Importing the same folder again changes nothing.
    let again = ok(
        &p.path,
        &["handbook", "import", handbooks().to_str().unwrap()],
    );
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["outcome"] == "unchanged"));
}

#[test]
fn a_case_from_opening_to_history() {
    let p = profile();
    let id = new_case(&p.path, "小雨", "low");
    ok(
        &p.path,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "hotline",
            "--text",
            "谈到考前失眠，约定周五再聊",
            "--minutes",
            "25",
        ],
    );
    ok(
        &p.path,
        &[
            "case",
            "contact",
            &id,
            "--channel",
            "in-person",
            "--text",
            "面谈",
        ],
    );
    let set = ok(
        &p.path,
        &["case", "set", &id, "--risk", "high", "--status", "referred"],
    );
    assert_eq!(set["changed"], true);
    ok(
        &p.path,
        &[
            "case",
            "followup",
            &id,
            "--text",
            "周五回访",
            "--due",
            "2026-12-04",
        ],
    );

    let case = ok(&p.path, &["case", "show", &id]);
    assert_eq!(case["id"], id.as_str());
    assert_eq!(case["alias"], "小雨");
    assert_eq!(case["group"], "exam-stress");
    assert_eq!(case["risk"], "high");
    assert_eq!(case["status"], "referred");
    let contacts = case["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0]["text"], "谈到考前失眠，约定周五再聊");
    assert_eq!(contacts[0]["channel"], "hotline");
    assert_eq!(contacts[0]["author"], "林老师");
    assert!(contacts[0]["at"].as_str().unwrap().contains('T'));
    assert_eq!(contacts[1]["channel"], "in-person");
    assert_eq!(case["followups"][0]["due"], "2026-12-04");

    let other = new_case(&p.path, "阿杰", "critical");
    let list = ok(&p.path, &["case", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list[0]["id"], other.as_str(), "critical first");
    assert!(list
        .iter()
        .all(|c| c.get("text").is_none() && !c["contacts"].is_array()));
    let high = ok(&p.path, &["case", "list", "--risk", "high"]);
    assert_eq!(high.as_array().unwrap().len(), 1);
    let referred = ok(&p.path, &["case", "list", "--status", "open"]);
    assert_eq!(referred.as_array().unwrap()[0]["id"], other.as_str());

    let history = ok(&p.path, &["case", "history", &id]);
    let whats: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats.len(), 5);
    assert!(whats[0].starts_with("case opened"));
    assert!(whats.contains(&"risk → high, status → referred"));
    assert!(history
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["author"] == "林老师"));
    // Human output is readable too.
    let out = hb(&p.path, &["case", "show", &id[..6]]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("小雨"));
}

#[test]
fn the_profile_can_come_from_the_environment() {
    let p = profile();
    let out = Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .args(["--json", "case", "new", "--alias", "小林"])
        .env("HEARTBRIDGE_PROFILE", &p.path)
        .env(
            "HEARTBRIDGE_PASSPHRASE",
            heartbridge_core::testing::TEST_PIN,
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(ok(&p.path, &["case", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn unknown_case_and_bad_values_are_refused_and_keep_the_case() {
    let p = profile();
    let id = new_case(&p.path, "小雨", "medium");
    let (code, err) = fails(
        &p.path,
        &["case", "show", "0123456789abcdef0123456789abcdef"],
    );
    assert_eq!(code, 3);
    assert!(
        err.contains("no case with id") && err.contains("case list"),
        "{err}"
    );
    let (code, err) = fails(&p.path, &["case", "set", &id, "--risk", "severe"]);
    assert_eq!(code, 2);
    assert!(err.contains("none low medium high critical"), "{err}");
    let (code, err) = fails(
        &p.path,
        &["case", "contact", &id, "--channel", "pigeon", "--text", "x"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("hotline in-person online"), "{err}");
    let (_, err) = fails(
        &p.path,
        &["case", "followup", &id, "--text", "x", "--due", "tomorrow"],
    );
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    // JSON errors are one JSON document on stderr.
    let out = hb(&p.path, &["--json", "case", "show", "ffffffff"]);
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "not_found");
    let case = ok(&p.path, &["case", "show", &id]);
    assert_eq!(case["risk"], "medium");
}

#[test]
fn missing_and_foreign_profiles_are_refused_without_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody");
    let (code, err) = fails(&missing, &["case", "list"]);
    assert_eq!(code, 4);
    assert!(err.contains("heartbridge init"), "{err}");
    assert!(!missing.exists());

    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("a.jpg"), b"jpeg").unwrap();
    let (code, err) = fails(&foreign, &["init", "--name", "x"]);
    assert_eq!(code, 4);
    assert!(err.contains("not a Heartbridge profile"), "{err}");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);

    let p = profile();
    let (code, err) = fails(&p.path, &["init", "--name", "again"]);
    assert_eq!(code, 4);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_corrupt_database_is_reported_and_left_as_it_was() {
    let p = profile();
    let id = new_case(&p.path, "小雨", "low");
    let db = p.path.join("heartbridge.db");
    // Damage the file, as a failing card would: the first page after its
    // 16-byte salt (SQLCipher's), so it no longer decrypts.
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 4096);
    for b in &mut bytes[16..116] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let _ = std::fs::remove_file(p.path.join("heartbridge.db-wal"));
    let (code, err) = fails(&p.path, &["case", "show", &id]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("damaged") && err.contains("left untouched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged file was modified"
    );
}

#[test]
fn a_handbook_that_is_not_utf8_is_refused_and_nothing_is_lost() {
    let p = profile();
    let zh = handbooks().join("zh");
    ok(&p.path, &["handbook", "import", zh.to_str().unwrap()]);
    let before = ok(&p.path, &["handbook", "list"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.md");
    std::fs::write(&good, "---\ntitle: 新手册\n---\n## 一\n内容").unwrap();
    let bad = dir.path().join("gbk.md");
    // "心理" in GBK.
    std::fs::write(&bad, [0xd0, 0xc4, 0xc0, 0xed]).unwrap();
    let (code, err) = fails(
        &p.path,
        &[
            "handbook",
            "import",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 6);
    assert!(err.contains("gbk.md") && err.contains("UTF-8"), "{err}");
    // Neither file was imported, and what was there is intact and searchable.
    assert_eq!(ok(&p.path, &["handbook", "list"]), before);
    assert!(!ok(&p.path, &["handbook", "search", "督导"])
        .as_array()
        .unwrap()
        .is_empty());
    let (code, _) = fails(&p.path, &["handbook", "import", "/nonexistent/file.md"]);
    assert_eq!(code, 1);
}

/// Runs the binary with a stdout whose reading end is already closed, as
/// when the reader of a pipe (`| head`) has gone.
fn hb_closed_stdout(profile: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_heartbridge"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env(
            "HEARTBRIDGE_PASSPHRASE",
            heartbridge_core::testing::TEST_PIN,
        )
        .stdout(writer)
        .output()
        .expect("run heartbridge")
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let p = profile();
    let zh = handbooks().join("zh");
    ok(&p.path, &["handbook", "import", zh.to_str().unwrap()]);
    let id = ok(&p.path, &["handbook", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let case = new_case(&p.path, "小雨", "low");
    let commands: [&[&str]; 8] = [
        &["handbook", "list"],
        &["--json", "handbook", "list"],
        &["handbook", "show", &id],
        &["--json", "handbook", "show", &id, "--section", "1"],
        &["handbook", "search", "督导"],
        &["status"],
        &["case", "show", &case],
        &["case", "tag", &case, "--add", "跟进"],
    ];
    for args in commands {
        let out = hb_closed_stdout(&p.path, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?} wrote to stderr: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    // The write done before the reader went is kept.
    assert_eq!(ok(&p.path, &["case", "show", &case])["tags"][0], "跟进");

    // And through a real shell pipe, with more output than the pipe holds.
    let long = "很长的一段记录。".repeat(4000);
    for _ in 0..2 {
        ok(
            &p.path,
            &[
                "case",
                "contact",
                &case,
                "--channel",
                "hotline",
                "--text",
                &long,
            ],
        );
    }
    let whole = hb(&p.path, &["--json", "case", "show", &case]);
    assert!(whole.stdout.len() > 128 * 1024, "output fits in the pipe");
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("stderr");
    let shell = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --profile "$1" --json case show "$2" 2>"$3" | head -c 1"#)
        .arg(env!("CARGO_BIN_EXE_heartbridge"))
        .arg(&p.path)
        .arg(&case)
        .arg(&stderr)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env(
            "HEARTBRIDGE_PASSPHRASE",
            heartbridge_core::testing::TEST_PIN,
        )
        .output()
        .expect("run sh");
    assert_eq!(shell.stdout, b"{");
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert!(!err.contains("panicked") && err.is_empty(), "{err}");
}

#[test]
fn init_killed_at_any_instant_leaves_nothing_stuck() {
    let dir = tempfile::tempdir().unwrap();
    // How long a whole `init` takes here, to spread the kills over it.
    let start = std::time::Instant::now();
    ok(&dir.path().join("timing"), &["init", "--name", "x"]);
    let whole = start.elapsed();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let (mut finished, mut complete, mut midway) = (0, 0, 0);
    for round in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = dir.path().join(format!("r{round}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_heartbridge"))
            .arg("--profile")
            .arg(&p)
            .args(["init", "--name", "林老师"])
            .env_remove("HEARTBRIDGE_PROFILE")
            .env(
                "HEARTBRIDGE_PASSPHRASE",
                heartbridge_core::testing::TEST_PIN,
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        // The kill instant is the test's input, anywhere in a whole init:
        // this sleep waits for no condition, it picks when to pull the plug.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(whole.mul_f64((seed % 1000) as f64 / 900.0));
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        if p.exists()
            && std::fs::read_dir(&p).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("heartbridge.db.init-")
            })
        {
            midway += 1;
        }
        let again = hb(&p, &["init", "--name", "林老师"]);
        if again.status.success() {
            finished += 1;
        } else {
            let err = String::from_utf8_lossy(&again.stderr);
            assert_eq!(again.status.code(), Some(4), "round {round}: {err}");
            assert!(err.contains("already exists"), "round {round}: {err}");
            complete += 1;
        }
        let status = ok(&p, &["status"]);
        assert_eq!(status["name"], "林老师", "round {round}");
        let left: Vec<String> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(
            left,
            ["heartbridge.db", "heartbridge.keys", "heartbridge.lock"],
            "round {round}"
        );
    }
    eprintln!(
        "init finished {finished} times ({midway} killed while building), found complete {complete} times"
    );
}
