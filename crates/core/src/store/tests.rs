use super::*;
use crate::case::NewCase;
use crate::model::{Channel, Group, Risk};
use crate::ops::CaseUpdate;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::init(&dir.path().join("p"), "测试志愿者").unwrap();
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
    let other = Store::open(&dir.path().join("p")).unwrap();
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
    assert_eq!(Store::open(&missing).unwrap_err().kind(), "profile_missing");
    assert!(!missing.exists(), "opening must not create a profile");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    assert_eq!(
        Store::init(&foreign, "x").unwrap_err().kind(),
        "profile_foreign"
    );
    // Another application's SQLite database is not ours.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    rusqlite::Connection::open(other.join(DB_FILE))
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(Store::open(&other).unwrap_err().kind(), "profile_foreign");

    let (_d, s) = store();
    let p = s.path().parent().unwrap().to_owned();
    drop(s);
    assert_eq!(Store::init(&p, "x").unwrap_err().kind(), "profile_exists");
}

#[test]
fn a_corrupt_database_is_refused_and_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p");
    std::fs::create_dir(&p).unwrap();
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(p.join(DB_FILE), &junk).unwrap();
    let err = Store::open(&p).unwrap_err();
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
