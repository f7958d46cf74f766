use super::*;
use crate::case::NewCase;
use crate::model::{Channel, Group, Risk};
use crate::ops::CaseUpdate;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::init(
        &dir.path().join("p"),
        "测试志愿者",
        &crate::testing::protection(),
    )
    .unwrap();
    (dir, s)
}

fn new_case(s: &mut Store) -> DocId {
    s.new_case(&NewCase {
        alias: "阿明".into(),
        group: Group::Migrant,
        risk: Risk::Low,
    })
    .unwrap()
}

#[test]
fn a_write_is_on_disk_when_the_call_returns() {
    let (dir, mut s) = store();
    let id = new_case(&mut s);
    s.add_contact(&id, Channel::Hotline, "第一次来电", Some(15))
        .unwrap();
    // A second connection (another process) sees it at once.
    let other = Store::open(&dir.path().join("p"), &crate::testing::unlock()).unwrap();
    let c = other.case(&id).unwrap();
    assert_eq!(c.contacts.len(), 1);
    assert_eq!(c.contacts[0].text, "第一次来电");
    assert_eq!(other.profile().name, "测试志愿者");
    assert_eq!(other.profile().device_id, s.profile().device_id);
}

#[test]
fn every_local_change_is_queued_in_the_outbox_until_acknowledged() {
    let (_dir, mut s) = store();
    let id = new_case(&mut s);
    s.add_contact(&id, Channel::Online, "线上", None).unwrap();
    // An update that changes nothing queues nothing.
    let w = s
        .update_case(
            &id,
            &CaseUpdate {
                risk: Some(Risk::Low),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(w, Written::Unchanged);
    let out = s.outbox().unwrap();
    assert_eq!(out.len(), 2);
    // The outbox changes rebuild the document on another device.
    let mut doc = AutoCommit::new();
    for item in &out {
        doc.load_incremental(&item.bytes).unwrap();
    }
    assert_eq!(crate::case::read(&doc, id.as_str()), s.case(&id).unwrap());
    s.ack_outbox(&[out[0].seq]).unwrap();
    assert_eq!(s.outbox_len().unwrap(), 1);
}

#[test]
fn compaction_keeps_the_document_identical() {
    let (_dir, mut s) = store();
    let id = new_case(&mut s);
    let mut compacted_by_itself = false;
    for i in 0..40 {
        s.add_contact(
            &id,
            Channel::Hotline,
            &format!("第{i}次联系，记录较长的一段文字。"),
            Some(i),
        )
        .unwrap();
        let (_, changes) = s.stored_sizes(&id).unwrap();
        compacted_by_itself |= changes == 0;
    }
    assert!(
        compacted_by_itself,
        "incremental changes outgrew the snapshot but were never folded"
    );
    let before = s.load(&id).unwrap().unwrap().1;
    s.compact(&id).unwrap();
    assert_eq!(s.stored_sizes(&id).unwrap().1, 0);
    let mut after = s.load(&id).unwrap().unwrap().1;
    let mut before = before;
    assert_eq!(after.get_heads(), before.get_heads());
    assert_eq!(after.save(), before.save());
    assert_eq!(s.case(&id).unwrap().contacts.len(), 40);
}

#[test]
fn remote_changes_merge_and_update_the_projection_without_queueing() {
    let (_d1, mut a) = store();
    let (_d2, mut b) = store();
    let id = new_case(&mut a);
    a.update_case(
        &id,
        &CaseUpdate {
            risk: Some(Risk::High),
            ..Default::default()
        },
    )
    .unwrap();
    for item in a.outbox().unwrap() {
        assert!(b
            .apply_remote(&item.doc_id, item.kind, &item.bytes)
            .unwrap());
    }
    // Applying the same bytes twice changes nothing.
    for item in a.outbox().unwrap() {
        assert!(!b
            .apply_remote(&item.doc_id, item.kind, &item.bytes)
            .unwrap());
    }
    assert_eq!(b.outbox_len().unwrap(), 0);
    let list = b.list_cases(&Default::default()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].risk, Risk::High);
}

#[test]
fn profile_errors_are_distinct_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert_eq!(
        Store::open(&missing, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "profile_missing"
    );
    assert!(!missing.exists(), "opening must not create a profile");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    assert_eq!(
        Store::init(&foreign, "x", &crate::testing::protection())
            .unwrap_err()
            .kind(),
        "profile_foreign"
    );
    // Another application's SQLite database is not ours.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    rusqlite::Connection::open(other.join(DB_FILE))
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(
        Store::open(&other, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "profile_foreign"
    );

    let (_d, s) = store();
    let p = s.path().parent().unwrap().to_owned();
    drop(s);
    assert_eq!(
        Store::init(&p, "x", &crate::testing::protection())
            .unwrap_err()
            .kind(),
        "profile_exists"
    );
}

#[test]
fn a_corrupt_database_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    std::fs::create_dir(&p).unwrap();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(p.join(DB_FILE), &junk).unwrap();
    let err = Store::open(&p, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "database_corrupt", "{err}");
    assert_eq!(std::fs::read(p.join(DB_FILE)).unwrap(), junk);
    assert!(!p.join(format!("{DB_FILE}-wal")).exists());
}

#[test]
fn errors_name_no_note_text() {
    let (_dir, mut s) = store();
    let id = new_case(&mut s);
    let secret = "秘密内容-CANARY";
    let e = s.edit_contact(&id, "0000", secret).unwrap_err().to_string();
    assert!(!e.contains(secret), "{e}");
    let e = s
        .add_contact(&id, Channel::Hotline, secret, Some(99999))
        .unwrap_err()
        .to_string();
    assert!(!e.contains(secret), "{e}");
}

/// Every file in `dir` with its bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Copies `src` (a database) and the side files beside it that exist, to
/// `dst` (a database path): what a crash at this instant leaves on disk.
fn crash_image(src: &Path, dst: &Path, suffixes: &[&str]) {
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(src, dst).unwrap();
    for s in suffixes {
        std::fs::copy(side_file(src, s), side_file(dst, s)).unwrap();
    }
}

/// A foreign database in the middle of a big rollback-journal transaction:
/// the journal is hot (pages already overwritten in the database).
fn foreign_with_hot_journal(src: &Path) -> Connection {
    let conn = Connection::open(src).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA cache_size = 5;
         CREATE TABLE photos (name TEXT, bytes BLOB);
         INSERT INTO photos VALUES ('a', randomblob(3000));",
    )
    .unwrap();
    conn.execute_batch(
        "BEGIN; UPDATE photos SET bytes = randomblob(2000);
         INSERT INTO photos SELECT 'b', randomblob(500) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) SELECT i FROM n);",
    )
    .unwrap();
    conn
}

#[test]
fn a_foreign_database_with_a_hot_journal_is_refused_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src/photos.db");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let open_tx = foreign_with_hot_journal(&src);
    let p = dir.path().join("p");
    let control = dir.path().join("control");
    crash_image(&src, &p.join(DB_FILE), &["-journal"]);
    crash_image(&src, &control.join(DB_FILE), &["-journal"]);
    drop(open_tx);

    // The image really has a hot journal: plain SQLite rolls it back.
    let before = files(&control);
    assert!(before[&format!("{DB_FILE}-journal")].len() > 512);
    let c = Connection::open(control.join(DB_FILE)).unwrap();
    let _: i64 = c
        .query_row("SELECT count(*) FROM photos", [], |r| r.get(0))
        .unwrap();
    drop(c);
    assert_ne!(files(&control), before, "the control was not rolled back");

    let before = files(&p);
    assert_eq!(
        Store::open(&p, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "profile_foreign"
    );
    assert_eq!(files(&p), before, "opening changed a foreign file");
    assert_eq!(
        Store::init(&p, "x", &crate::testing::protection())
            .unwrap_err()
            .kind(),
        "profile_foreign"
    );
    assert_eq!(files(&p), before, "init changed a foreign file");
}

#[test]
fn a_foreign_database_with_a_wal_to_recover_is_refused_byte_for_byte() {
    for with_shm in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src/other.db");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        let live = Connection::open(&src).unwrap();
        live.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (x BLOB); INSERT INTO t VALUES (randomblob(20000));",
        )
        .unwrap();
        let sides: &[&str] = if with_shm {
            &["-wal", "-shm"]
        } else {
            &["-wal"]
        };
        let p = dir.path().join("p");
        let control = dir.path().join("control");
        crash_image(&src, &p.join(DB_FILE), sides);
        crash_image(&src, &control.join(DB_FILE), sides);
        drop(live);

        // Plain SQLite recovers and checkpoints the image's WAL.
        let before = files(&control);
        assert!(before[&format!("{DB_FILE}-wal")].len() > 20000);
        let c = Connection::open(control.join(DB_FILE)).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        drop(c);
        assert_ne!(files(&control), before, "the control was not recovered");

        let before = files(&p);
        assert_eq!(
            Store::open(&p, &crate::testing::unlock())
                .unwrap_err()
                .kind(),
            "profile_foreign"
        );
        assert_eq!(files(&p), before, "opening changed a foreign file");
        assert_eq!(
            Store::init(&p, "x", &crate::testing::protection())
                .unwrap_err()
                .kind(),
            "profile_foreign"
        );
        assert_eq!(files(&p), before, "init changed a foreign file");
    }
}

#[test]
fn a_profile_with_a_pending_wal_opens_and_keeps_its_data() {
    let (dir, mut s) = store();
    let id = new_case(&mut s);
    s.add_contact(&id, Channel::Hotline, "崩溃前的记录", Some(5))
        .unwrap();
    let copy = dir.path().join("copy");
    // A crash image: the last writes are only in the WAL, and no -shm.
    crash_image(s.path(), &copy.join(DB_FILE), &["-wal"]);
    std::fs::copy(dir.path().join("p").join(KEYS_FILE), copy.join(KEYS_FILE)).unwrap();
    drop(s);
    assert!(
        std::fs::metadata(side_file(&copy.join(DB_FILE), "-wal"))
            .unwrap()
            .len()
            > 0
    );
    let s = Store::open(&copy, &crate::testing::unlock()).unwrap();
    let c = s.case(&id).unwrap();
    assert_eq!(c.contacts.len(), 1);
    assert_eq!(c.contacts[0].text, "崩溃前的记录");
    assert_eq!(s.outbox_len().unwrap(), 2);
}

#[test]
fn a_damaged_profile_is_refused_and_nothing_is_created_beside_it() {
    let (dir, mut s) = store();
    for i in 0..30 {
        let id = new_case(&mut s);
        s.add_contact(&id, Channel::Online, &format!("记录{i}").repeat(40), None)
            .unwrap();
    }
    let db = s.path().to_owned();
    drop(s);
    let p = dir.path().join("p");
    assert_eq!(
        files(&p).into_keys().collect::<Vec<_>>(),
        [DB_FILE, KEYS_FILE, vault::LOCK_FILE],
        "a closed profile is its database, keys file and lock file"
    );
    let mut bytes = std::fs::read(&db).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 8);
    // A page in the middle goes bad, as a failing card would make it.
    let mid = pages / 2 * 4096;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0xa5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let before = files(&p);
    assert_eq!(
        Store::open(&p, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "database_corrupt"
    );
    assert_eq!(files(&p), before, "the damaged profile was touched");
}

#[test]
fn init_can_finish_after_a_crash_at_any_step() {
    for step in INIT_STEPS {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        assert!(
            Store::init_until(&p, "林老师", &crate::testing::protection(), Some(step))
                .unwrap()
                .is_none()
        );
        // Opening never finds anything but no profile or a whole one.
        match Store::open(&p, &crate::testing::unlock()) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), "profile_missing", "after {step:?}: {e}"),
        }
        let store = match Store::init(&p, "林老师", &crate::testing::protection()) {
            Ok(s) => s,
            Err(e) => {
                assert_eq!(e.kind(), "profile_exists", "after {step:?}: {e}");
                Store::open(&p, &crate::testing::unlock()).unwrap()
            }
        };
        assert_eq!(store.profile().name, "林老师");
        drop(store);
        let left: Vec<String> = files(&p).into_keys().collect();
        assert_eq!(
            left,
            [DB_FILE, KEYS_FILE, vault::LOCK_FILE],
            "after {step:?}"
        );
    }
}

#[test]
fn an_older_interrupted_init_is_finished_not_stuck() {
    let dir = tempfile::tempdir().unwrap();
    // What the older init left when killed after migrating: a Heartbridge
    // database without its profile row.
    let p = dir.path().join("half");
    std::fs::create_dir(&p).unwrap();
    let mut conn = Connection::open(p.join(DB_FILE)).unwrap();
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    configure(&conn).unwrap();
    migrations::migrate(&mut conn, &p.join(DB_FILE)).unwrap();
    drop(conn);
    let before = files(&p);
    assert_eq!(
        Store::open(&p, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "profile_missing"
    );
    assert_eq!(files(&p), before, "open wrote to a profile it refused");
    let s = Store::init(&p, "x", &crate::testing::protection()).unwrap();
    assert_eq!(
        Store::open(&p, &crate::testing::unlock())
            .unwrap()
            .profile()
            .device_id,
        s.profile().device_id
    );

    // Killed before it wrote a byte: an empty file.
    let p = dir.path().join("empty");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join(DB_FILE), b"").unwrap();
    assert_eq!(
        Store::open(&p, &crate::testing::unlock())
            .unwrap_err()
            .kind(),
        "profile_missing"
    );
    Store::init(&p, "x", &crate::testing::protection()).unwrap();
    Store::open(&p, &crate::testing::unlock()).unwrap();
}

#[test]
fn a_profile_of_ours_with_a_hot_rollback_journal_is_refused_untouched() {
    // Heartbridge never uses a rollback journal; one beside our file was
    // made by another tool, so SQLite is not let loose on it.
    let (dir, s) = store();
    let src = s.path().to_owned();
    drop(s);
    let conn = crate::testing::open_raw(src.parent().unwrap(), &crate::testing::unlock()).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA cache_size = 5;
         CREATE TABLE scratch (x BLOB);
         BEGIN;
         INSERT INTO scratch SELECT randomblob(500) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) SELECT i FROM n);",
    )
    .unwrap();
    let p = dir.path().join("image");
    crash_image(&src, &p.join(DB_FILE), &["-journal"]);
    std::fs::copy(src.with_file_name(KEYS_FILE), p.join(KEYS_FILE)).unwrap();
    std::fs::copy(
        src.with_file_name(vault::LOCK_FILE),
        p.join(vault::LOCK_FILE),
    )
    .unwrap();
    drop(conn);
    let before = files(&p);
    assert!(before.contains_key(&format!("{DB_FILE}-journal")));
    let err = Store::open(&p, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "database_corrupt", "{err}");
    assert!(err.to_string().contains("rollback journal"), "{err}");
    assert_eq!(files(&p), before, "the file was rolled back");
}

// At rest: keys, PINs, erase, permissions, encryption of old profiles.

fn pin_store(dir: &Path, max_failed: u32) -> Store {
    let protection = crate::testing::protection().with_max_failed(max_failed);
    Store::init(&dir.join("p"), "林老师", &protection).unwrap()
}

fn note(s: &mut Store, text: &str) -> DocId {
    let id = new_case(s);
    s.add_contact(&id, Channel::Hotline, text, Some(10))
        .unwrap();
    id
}

#[test]
fn a_wrong_pin_opens_nothing_says_the_tries_left_and_a_right_one_resets_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = pin_store(dir.path(), 5);
    let id = note(&mut s, "考前失眠，担心复读");
    drop(s);
    let p = dir.path().join("p");
    for left in [4, 3] {
        let err = Store::open(&p, &Unlock::pin("wrong-pin")).unwrap_err();
        assert_eq!(err.kind(), "wrong_pin");
        assert!(matches!(err, Error::WrongPin { tries_left } if tries_left == left));
        let msg = err.to_string();
        assert!(msg.contains(&format!("{left} tries left")), "{msg}");
        assert!(!msg.contains("考前") && !msg.contains("林老师"), "{msg}");
    }
    let s = Store::open(&p, &crate::testing::unlock()).unwrap();
    assert_eq!(s.case(&id).unwrap().contacts[0].text, "考前失眠，担心复读");
    drop(s);
    // The right PIN reset the count: again the full number of tries.
    let err = Store::open(&p, &Unlock::pin("wrong-pin")).unwrap_err();
    assert!(matches!(err, Error::WrongPin { tries_left: 4 }), "{err}");
}

#[test]
fn too_many_wrong_pins_erase_keys_and_database_and_later_opens_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = pin_store(dir.path(), 3);
    note(&mut s, "会被抹掉的记录");
    drop(s);
    let p = dir.path().join("p");
    assert!(matches!(
        Store::open(&p, &Unlock::pin("nope")).unwrap_err(),
        Error::WrongPin { tries_left: 2 }
    ));
    assert!(matches!(
        Store::open(&p, &Unlock::pin("nope")).unwrap_err(),
        Error::WrongPin { tries_left: 1 }
    ));
    let err = Store::open(&p, &Unlock::pin("nope")).unwrap_err();
    assert_eq!(err.kind(), "profile_destroyed", "{err}");
    let left: Vec<String> = files(&p).into_keys().collect();
    assert_eq!(left, [crate::vault::ERASED_FILE], "only the empty marker");
    assert!(files(&p)[crate::vault::ERASED_FILE].is_empty());
    // Even the right PIN finds nothing now.
    let err = Store::open(&p, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "profile_destroyed", "{err}");
    // A new profile can be made in the same place.
    let s = Store::init(&p, "新的", &crate::testing::protection()).unwrap();
    assert_eq!(s.list_cases(&Default::default()).unwrap().len(), 0);
}

#[test]
fn a_database_does_not_open_without_its_key_nor_with_another_profiles_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Store::init(&dir.path().join("a"), "a", &crate::testing::protection()).unwrap();
    note(&mut a, "甲的记录");
    drop(a);
    drop(Store::init(&dir.path().join("b"), "b", &crate::testing::protection()).unwrap());
    let a_db = dir.path().join("a").join(DB_FILE);
    // Plain SQLite (no key) cannot read it.
    let raw = Connection::open_with_flags(&a_db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
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
    // Nor a random key.
    let raw = Connection::open_with_flags(&a_db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let e = key_conn(&raw, &a_db, &Dek::random()).unwrap_err();
    assert_eq!(e.kind(), "wrong_key");
    drop(raw);
    // b's keys file beside a's database: the same PIN opens b's key, which
    // is the wrong key for this database — said so, not "corrupt".
    let mixed = dir.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(&a_db, mixed.join(DB_FILE)).unwrap();
    std::fs::copy(dir.path().join("b").join(KEYS_FILE), mixed.join(KEYS_FILE)).unwrap();
    let before = std::fs::read(mixed.join(DB_FILE)).unwrap();
    let err = Store::open(&mixed, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "wrong_key", "{err}");
    assert_eq!(std::fs::read(mixed.join(DB_FILE)).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn the_profile_directory_and_every_file_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut s = pin_store(dir.path(), 10);
    note(&mut s, "权限");
    let p = dir.path().join("p");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p), 0o700);
    let names: Vec<String> = files(&p).into_keys().collect();
    // Open: the database, its -wal and -shm, the keys file.
    for n in [DB_FILE, KEYS_FILE] {
        assert!(names.iter().any(|x| x == n), "{names:?}");
    }
    assert!(names.iter().any(|n| n.ends_with("-wal")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-shm")), "{names:?}");
    for n in &names {
        assert_eq!(mode(&p.join(n)), 0o600, "{n}");
    }
    drop(s);
    // An old profile with loose modes is tightened when it is opened.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(p.join(DB_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&p, &crate::testing::unlock()).unwrap());
    assert_eq!(mode(&p), 0o700);
    assert_eq!(mode(&p.join(DB_FILE)), 0o600);
}

/// A plaintext profile (as made before issue 8) with a few notes.
fn plaintext_profile(dir: &Path) -> (PathBuf, Vec<(DocId, String)>) {
    let p = dir.join("old");
    let mut s = Store::init_plaintext(&p, "老志愿者").unwrap();
    let notes: Vec<(DocId, String)> = (0..5)
        .map(|i| {
            let text = format!("旧记录{i}：需要跟进");
            (note(&mut s, &text), text)
        })
        .collect();
    drop(s);
    assert_eq!(read_header(&p.join(DB_FILE)).unwrap(), Header::Ours);
    (p, notes)
}

fn assert_notes(s: &Store, notes: &[(DocId, String)]) {
    for (id, text) in notes {
        assert_eq!(&s.case(id).unwrap().contacts[0].text, text);
    }
}

#[test]
fn a_plaintext_profile_is_encrypted_when_opened_and_keeps_every_note() {
    let dir = tempfile::tempdir().unwrap();
    let (p, notes) = plaintext_profile(dir.path());
    let s = Store::open(&p, &Unlock::pin("123456")).unwrap();
    assert_notes(&s, &notes);
    drop(s);
    assert_eq!(read_header(&p.join(DB_FILE)).unwrap(), Header::Opaque);
    let left: Vec<String> = files(&p).into_keys().collect();
    assert_eq!(left, [DB_FILE, KEYS_FILE, vault::LOCK_FILE]);
    // From now on the PIN it was opened with is its PIN.
    assert_eq!(
        Store::open(&p, &Unlock::pin("654321")).unwrap_err().kind(),
        "wrong_pin"
    );
    assert_notes(&Store::open(&p, &Unlock::pin("123456")).unwrap(), &notes);
}

#[test]
fn an_encryption_interrupted_at_any_step_leaves_the_old_profile_or_the_new_one() {
    for step in [
        EncryptStep::Exported,
        EncryptStep::KeysWritten,
        EncryptStep::Renamed,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (p, notes) = plaintext_profile(dir.path());
        Store::encrypt_until(&p, &crate::testing::unlock(), step).unwrap();
        let s = Store::open(&p, &crate::testing::unlock()).unwrap();
        assert_notes(&s, &notes);
        drop(s);
        let left: Vec<String> = files(&p).into_keys().collect();
        assert_eq!(
            left,
            [DB_FILE, KEYS_FILE, vault::LOCK_FILE],
            "after {step:?}"
        );
        assert_eq!(read_header(&p.join(DB_FILE)).unwrap(), Header::Opaque);
    }
}

#[test]
fn without_twice_the_database_free_the_encryption_refuses_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (p, notes) = plaintext_profile(dir.path());
    let size = std::fs::metadata(p.join(DB_FILE)).unwrap().len();
    let before = files(&p);
    fn little(_: &Path) -> std::io::Result<u64> {
        Ok(4096)
    }
    let err = Store::open_with_free_space(&p, &crate::testing::unlock(), little).unwrap_err();
    assert_eq!(err.kind(), "no_space", "{err}");
    match err {
        Error::NoSpace { needed, free } => {
            assert_eq!(free, 4096);
            assert!(needed >= 2 * size);
        }
        e => panic!("{e}"),
    }
    assert!(err_text_is_clear(
        &Store::open_with_free_space(&p, &crate::testing::unlock(), little).unwrap_err()
    ));
    assert_eq!(
        files(&p),
        before,
        "a refused encryption changed the profile"
    );
    // With room it goes through.
    assert_notes(&Store::open(&p, &crate::testing::unlock()).unwrap(), &notes);
}

fn err_text_is_clear(e: &Error) -> bool {
    let m = e.to_string();
    m.contains("free") && m.contains("nothing was changed")
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let u = Unlock::pin("913524");
    let p = Protection::pin("913524");
    let shown = format!("{u:?} {p:?} {:?}", Dek::random());
    assert!(!shown.contains("913524"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn the_key_store_wraps_the_key_so_a_profile_opens_without_a_pin() {
    // keyring-core's in-memory mock store stands in for the OS key store
    // (none on this Linux). Other tests never ask for the key store.
    keyring_core::set_default_store(keyring_core::mock::Store::new().unwrap());
    let dir = tempfile::tempdir().unwrap();
    // Key store only.
    let p = dir.path().join("ks");
    let mut s = Store::init(&p, "x", &Protection::keystore()).unwrap();
    let id = note(&mut s, "钥匙串");
    drop(s);
    let keys = std::fs::read_to_string(p.join(KEYS_FILE)).unwrap();
    assert!(keys.contains("\"keystore\": {"), "{keys}");
    let s = Store::open(&p, &Unlock::KeyStore).unwrap();
    assert_eq!(s.case(&id).unwrap().contacts[0].text, "钥匙串");
    drop(s);
    // PIN and key store: the PIN's key mixes in the key-store secret, so
    // the keys file alone (a copy elsewhere) is not enough.
    let q = dir.path().join("both");
    let both = crate::testing::protection().with_keystore(true);
    drop(Store::init(&q, "y", &both).unwrap());
    drop(Store::open(&q, &crate::testing::unlock()).unwrap());
    drop(Store::open(&q, &Unlock::KeyStore).unwrap());
    let file = KeysFile::read(&q).unwrap().unwrap();
    let entry = file.keystore_entry().unwrap().to_owned();
    keyring_core::Entry::new("org.heartbridge.profile", &entry)
        .unwrap()
        .delete_credential()
        .unwrap();
    let err = Store::open(&q, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "keystore_unavailable", "{err}");
}
