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
        [DB_FILE, KEYS_FILE],
        "a closed profile is its database and keys file"
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
        assert_eq!(left, [DB_FILE, KEYS_FILE], "after {step:?}");
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
    drop(conn);
    let before = files(&p);
    assert!(before.contains_key(&format!("{DB_FILE}-journal")));
    let err = Store::open(&p, &crate::testing::unlock()).unwrap_err();
    assert_eq!(err.kind(), "database_corrupt", "{err}");
    assert!(err.to_string().contains("rollback journal"), "{err}");
    assert_eq!(files(&p), before, "the file was rolled back");
}
