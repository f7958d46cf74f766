//! The profile at rest, through the real binary and real files: what a copy
//! of a closed profile gives away (nothing without the passphrase), wrong
//! passphrases and the erase, owner-only modes, the encryption of a profile
//! from before, and a full disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use heartbridge_core::testing::TEST_PIN;
use heartbridge_core::{Channel, Group, NewCase, Risk, Store, Unlock, DB_FILE, KEYS_FILE};
use heartbridge_tests::Relay;
use serde_json::Value;

fn hb_with(profile: &Path, pass: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heartbridge"));
    c.arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("HEARTBRIDGE_PROFILE")
        .env_remove("HEARTBRIDGE_PASSPHRASE")
        .stdin(Stdio::null());
    if let Some(p) = pass {
        c.env("HEARTBRIDGE_PASSPHRASE", p);
    }
    c.output().expect("run heartbridge")
}

fn ok(profile: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = hb_with(profile, Some(TEST_PIN), &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// Runs a command that must fail; returns stderr.
fn fails(profile: &Path, pass: Option<&str>, args: &[&str]) -> String {
    let out = hb_with(profile, pass, args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout on error");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` (recursively), with its bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            let bytes = std::fs::read(&p).expect("read file");
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn a_copy_of_a_closed_profile_opens_nothing_without_the_passphrase_and_holds_no_secret_in_clear() {
    let relay = Relay::start();
    let created = relay.create_team("热线组");
    let dir = tempfile::tempdir().expect("tmp");
    let lead = dir.path().join("lead");
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
    let note = "她说考前整夜失眠，想到放弃";
    let alias = "小雨同学";
    let case = ok(&lead, &["case", "new", "--alias", alias, "--risk", "high"]);
    let id = case["id"].as_str().expect("id").to_owned();
    ok(
        &lead,
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
    ok(&lead, &["sync"]);

    // The copy a thief takes of the closed profile.
    let stolen = dir.path().join("stolen");
    copy_dir(&lead, &stolen);

    // What to look for: the team key and the device token, read through
    // the store with the passphrase (from another copy).
    let look = dir.path().join("look");
    copy_dir(&lead, &look);
    let store = Store::open(&look, &Unlock::pin(TEST_PIN)).expect("open with the passphrase");
    let team = store.team().expect("team").expect("joined");
    assert_eq!(
        store
            .case(&store.resolve(heartbridge_core::DocKind::Case, &id).unwrap())
            .unwrap()
            .contacts[0]
            .text,
        note
    );
    drop(store);
    let key = *team.key.expose();
    let token = team.token.expose().to_owned();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("note text", note.as_bytes().to_vec()),
        ("a part of the note", "整夜失眠".as_bytes().to_vec()),
        ("alias", alias.as_bytes().to_vec()),
        ("volunteer name", "林老师".as_bytes().to_vec()),
        ("team key (raw)", key.to_vec()),
        (
            "team key (hex)",
            key.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "team key (HEX)",
            key.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
                .into_bytes(),
        ),
        ("device token", token.clone().into_bytes()),
        (
            "device token secret",
            token
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        ),
        (
            "lead token",
            created.lead_token.expose().as_bytes().to_vec(),
        ),
    ];
    let files = all_files(&stolen);
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&DB_FILE.to_owned()) && names.contains(&KEYS_FILE.to_owned()),
        "{names:?}"
    );
    for (path, bytes) in &files {
        for (what, s) in &secrets {
            assert!(
                !contains(bytes, s),
                "{} holds the {what} in clear",
                path.display()
            );
        }
    }
    // SQLite without the key sees no database at all.
    let raw = rusqlite::Connection::open_with_flags(
        stolen.join(DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open file");
    let err = raw
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase)
    );
    drop(raw);

    // The CLI: no passphrase, a clear error that says how to give one.
    let err = fails(&stolen, None, &["case", "list"]);
    assert!(err.contains("HEARTBRIDGE_PASSPHRASE"), "{err}");
    // A wrong one: refused, tries counted, nothing of the content shown.
    let err = fails(&stolen, Some("123456"), &["case", "list"]);
    assert!(
        err.contains("wrong PIN or passphrase") && err.contains("9 tries left"),
        "{err}"
    );
    assert!(!err.contains(alias) && !err.contains("林老师"), "{err}");
    // The right one opens the copy.
    let list = ok(&stolen, &["case", "list"]);
    assert_eq!(list.as_array().expect("list").len(), 1);
}

#[test]
fn wrong_passphrases_count_down_and_the_last_allowed_one_erases_the_profile() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("p");
    ok(&p, &["init", "--name", "林老师", "--max-failed", "3"]);
    ok(&p, &["case", "new", "--alias", "阿明"]);
    let err = fails(&p, Some("not-it"), &["case", "list"]);
    assert!(err.contains("2 tries left"), "{err}");
    let err = fails(&p, Some("not-it"), &["case", "list"]);
    assert!(err.contains("1 tries left"), "{err}");
    let err = fails(&p, Some("not-it"), &["case", "list"]);
    assert!(err.contains("erased"), "{err}");
    // Keys and database are gone; only the empty marker says what happened.
    let left: Vec<(PathBuf, Vec<u8>)> = all_files(&p);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].1.is_empty());
    assert!(!p.join(DB_FILE).exists() && !p.join(KEYS_FILE).exists());
    // The right passphrase finds nothing now, and says why.
    let out = hb_with(&p, Some(TEST_PIN), &["--json", "case", "list"]);
    assert!(!out.status.success());
    let e: Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(e["error"], "profile_destroyed", "{e}");
}

#[cfg(unix)]
#[test]
fn a_new_profile_is_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("p");
    // A umask of 000 in the child: every mode is set explicitly.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" --profile "$1" --json init --name x"#)
        .arg(env!("CARGO_BIN_EXE_heartbridge"))
        .arg(&p)
        .env("HEARTBRIDGE_PASSPHRASE", TEST_PIN)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p), 0o700);
    for (f, _) in all_files(&p) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// A plaintext profile as Heartbridge made them before encryption, with a
/// few notes; returns (case id, note) pairs.
fn plaintext_profile(p: &Path) -> Vec<(String, String)> {
    let mut s = heartbridge_core::testing::init_plaintext(p, "老志愿者").expect("plaintext init");
    let notes = (0..6)
        .map(|i| {
            let id = s
                .new_case(&NewCase {
                    alias: format!("旧个案{i}"),
                    group: Group::ExamStress,
                    risk: Risk::Low,
                })
                .expect("case");
            let text = format!("加密前的第{i}条记录：周三回访");
            s.add_contact(&id, Channel::Hotline, &text, Some(20))
                .expect("contact");
            (id.to_string(), text)
        })
        .collect();
    drop(s);
    let head = std::fs::read(p.join(DB_FILE)).expect("db");
    assert!(
        head.starts_with(b"SQLite format 3\0"),
        "the old profile is plain SQLite"
    );
    notes
}

#[test]
fn the_first_command_on_an_old_plaintext_profile_encrypts_it_with_every_note() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("old");
    let notes = plaintext_profile(&p);
    // The scan below would see them: before, every note is in clear.
    let before = all_files(&p);
    for (_, text) in &notes {
        assert!(before.iter().any(|(_, b)| contains(b, text.as_bytes())));
    }
    let list = ok(&p, &["case", "list"]);
    assert_eq!(list.as_array().expect("list").len(), notes.len());
    for (id, text) in &notes {
        let c = ok(&p, &["case", "show", id]);
        assert_eq!(c["contacts"][0]["text"], text.as_str());
    }
    for (path, bytes) in all_files(&p) {
        assert!(
            !bytes.starts_with(b"SQLite format 3\0"),
            "{} is plain SQLite",
            path.display()
        );
        for (_, text) in &notes {
            assert!(
                !contains(&bytes, text.as_bytes()),
                "{} holds a note",
                path.display()
            );
        }
    }
    let err = fails(&p, Some("another"), &["case", "list"]);
    assert!(err.contains("tries left"), "{err}");
}

/// A tmpfs of `bytes` mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill the disk and needs root (as CI has): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn on_a_nearly_full_disk_the_encryption_refuses_clearly_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src");
    let notes = plaintext_profile(&src);
    let size: u64 = all_files(&src).iter().map(|(_, b)| b.len() as u64).sum();
    // Room for the profile and half as much again: less than twice its size.
    let fs = Tmpfs::mount(&dir.path().join("small"), size + size / 2 + 64 * 1024);
    let p = fs.0.join("p");
    copy_dir(&src, &p);
    let before = all_files(&p);
    let err = fails(&p, Some(TEST_PIN), &["case", "list"]);
    assert!(
        err.contains("not enough free disk space") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        all_files(&p),
        before,
        "a refused encryption changed the profile"
    );
    // Moved where there is room, it encrypts and keeps every note.
    let roomy = dir.path().join("roomy");
    copy_dir(&p, &roomy);
    drop(fs);
    for (id, text) in &notes {
        let c = ok(&roomy, &["case", "show", id]);
        assert_eq!(c["contacts"][0]["text"], text.as_str());
    }
}
