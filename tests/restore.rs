//! A relay restored from a backup (issue 11 (h) 2): its log went back in
//! time. Devices notice by its new log id, pull everything again and push
//! what they hold, so no note is lost and nothing stored at a reused seq is
//! skipped. A relay restarted without a restore keeps its id, and devices
//! push nothing again. Real relay on loopback, real profiles.

use std::path::Path;

use heartbridge_core::{Channel, DocId, Group, NewCase, Risk};
use heartbridge_tests::{sync_until_quiet, team, Device, Relay};

fn new_case(d: &mut Device, alias: &str) -> DocId {
    d.store
        .new_case(&NewCase {
            alias: alias.into(),
            group: Group::ExamStress,
            risk: Risk::Low,
        })
        .expect("new case")
}

fn note(d: &mut Device, case: &DocId, text: &str) {
    d.store
        .add_contact(case, Channel::Hotline, text, Some(10))
        .expect("contact");
}

fn texts(d: &Device, case: &DocId) -> Vec<String> {
    let mut t: Vec<String> = d.case(case).contacts.into_iter().map(|c| c.text).collect();
    t.sort();
    t
}

/// What the relay holds, superseded envelopes included.
const COUNT: &str = "SELECT count(*), count(DISTINCT content_id) FROM envelopes";

/// (envelope rows, distinct content ids) in a SQLite relay.
fn stored_sqlite(relay: &Relay) -> (i64, i64) {
    let conn = rusqlite::Connection::open(relay.db()).expect("open relay db");
    conn.query_row(COUNT, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("count")
}

fn log_id(relay: &Relay) -> String {
    heartbridge_relay::log_id_in(&relay.database)
        .expect("log id")
        .to_hex()
}

type Backup<B> = Box<dyn Fn(&Relay) -> B>;
type Restore<B> = Box<dyn Fn(&mut Relay, &B)>;
type Stored = Box<dyn Fn(&Relay) -> (i64, i64)>;

/// How one store is backed up and restored, and counted.
struct Ops<B> {
    backup: Backup<B>,
    /// Stops the relay, restores the backup, serves it again.
    restore: Restore<B>,
    stored: Stored,
}

fn cursor(d: &Device) -> i64 {
    d.store.sync_status().expect("status").cursor as i64
}

#[test]
fn after_a_restore_every_device_ends_with_every_note_and_nothing_twice() {
    restore_story(
        Relay::start(),
        Ops {
            backup: Box::new(|relay: &Relay| {
                let backup = relay.dir.path().join("backup.db");
                heartbridge_relay::backup::backup_sqlite(&relay.db(), &backup).expect("backup");
                backup
            }),
            restore: Box::new(|relay: &mut Relay, backup: &std::path::PathBuf| {
                relay.restart(|db: &Path| {
                    heartbridge_relay::backup::restore_sqlite(backup, db, true).expect("restore");
                })
            }),
            stored: Box::new(stored_sqlite),
        },
    );
}

/// The same on PostgreSQL, with the documented procedure: pg_dump while
/// serving; relays stopped, pg_restore into a new empty database,
/// `new-log-id` on it, relays started on it.
#[test]
fn after_a_pg_restore_and_new_log_id_every_device_ends_with_every_note() {
    let cluster = std::rc::Rc::new(heartbridge_pgtest::PgCluster::start());
    let url = cluster.new_database();
    let (c1, c2, c3) = (cluster.clone(), cluster.clone(), cluster);
    let current = std::rc::Rc::new(std::cell::RefCell::new(url.clone()));
    let (cur1, cur2, cur3) = (current.clone(), current.clone(), current);
    restore_story(
        Relay::start_on_postgres(&url),
        Ops {
            backup: Box::new(move |_| {
                let dump = c1.dir().join("relay.dump");
                c1.dump(&cur1.borrow(), &dump);
                dump
            }),
            restore: Box::new(move |relay: &mut Relay, dump: &std::path::PathBuf| {
                let fresh = c2.new_database();
                c2.restore(&fresh, dump);
                let database =
                    heartbridge_relay::config::Database::parse(&fresh).expect("a PostgreSQL URL");
                // What `heartbridge-relay new-log-id --db …` runs.
                heartbridge_relay::new_log_id_in(&database).expect("new log id");
                *cur2.borrow_mut() = fresh;
                relay.restart_on(database);
            }),
            stored: Box::new(move |_| {
                let out = c3.psql(&cur3.borrow(), COUNT);
                let mut n = out
                    .trim()
                    .split('|')
                    .map(|v| v.trim().parse::<i64>().expect("a count"));
                (n.next().expect("rows"), n.next().expect("ids"))
            }),
        },
    );
}

fn restore_story<B>(mut relay: Relay, ops: Ops<B>) {
    let stored = &ops.stored;
    let mut devs = team(&relay, &["lead", "a", "b", "c"]);
    let (lead, a, b, c) = (0, 1, 2, 3);
    let shared = new_case(&mut devs[lead], "小雨");
    note(&mut devs[lead], &shared, "备份之前的记录");
    sync_until_quiet(&mut devs, &[lead, a, b, c]);

    // The operator backs the relay up.
    let backup = (ops.backup)(&relay);
    let head_at_backup = stored(&relay).0;

    // A and B go on: new notes pushed (and acknowledged: they leave the
    // outbox), each other's pulled.
    let a_case = new_case(&mut devs[a], "阿明");
    note(&mut devs[a], &a_case, "A 在备份之后写的");
    note(&mut devs[b], &shared, "B 在备份之后写的");
    sync_until_quiet(&mut devs, &[a, b]);
    assert_eq!(devs[a].store.outbox_len().expect("outbox"), 0);
    assert_eq!(devs[b].store.outbox_len().expect("outbox"), 0);
    assert_eq!(
        texts(&devs[b], &a_case),
        vec!["A 在备份之后写的".to_owned()]
    );
    let a_cursor = cursor(&devs[a]);
    assert!(a_cursor > head_at_backup, "A's cursor is past the backup");

    // The relay is stopped, restored from the backup, started again.
    let before = log_id(&relay);
    (ops.restore)(&mut relay, &backup);
    let after = log_id(&relay);
    assert_ne!(before, after, "the restore made a new log id");
    assert!(
        stored(&relay).0 <= head_at_backup,
        "the test needs the relay to have lost what came after the backup"
    );

    // C, whose cursor was at the backup's end, writes after the restore:
    // those envelopes get seqs A and B have already seen.
    note(&mut devs[c], &shared, "C 在恢复之后写的");
    let c_case = new_case(&mut devs[c], "小红");
    note(&mut devs[c], &c_case, "C 的新个案");
    let r = devs[c].sync();
    assert!(r.relay_restored, "C saw the new log id");
    assert!(r.documents_resent > 0);

    // A and B sync: they see the change, pull from 0 and push again.
    for d in [a, b] {
        let r = devs[d].sync();
        assert!(r.relay_restored, "{} saw the new log id", devs[d].name);
        assert!(r.documents_resent > 0);
    }
    sync_until_quiet(&mut devs, &[a, b, c, lead]);

    let all_shared = {
        let mut t = vec![
            "备份之前的记录".to_owned(),
            "B 在备份之后写的".to_owned(),
            "C 在恢复之后写的".to_owned(),
        ];
        t.sort();
        t
    };
    for d in &devs {
        assert_eq!(texts(d, &shared), all_shared, "{}: the shared case", d.name);
        assert_eq!(
            texts(d, &a_case),
            vec!["A 在备份之后写的".to_owned()],
            "{}: A's case, pushed after the backup",
            d.name
        );
        assert_eq!(
            texts(d, &c_case),
            vec!["C 的新个案".to_owned()],
            "{}: C's case, pushed after the restore at reused seqs",
            d.name
        );
        assert_eq!(d.store.outbox_len().expect("outbox"), 0, "{}", d.name);
    }
    let (rows, ids) = stored(&relay);
    assert_eq!(rows, ids, "every envelope stored once");

    // A normal restart keeps the log id, and nobody pushes anything again.
    relay.restart(|_| {});
    assert_eq!(log_id(&relay), after);
    for d in &mut devs {
        let r = d.sync();
        assert!(!r.relay_restored, "{}", d.name);
        assert_eq!(r.documents_resent, 0, "{}", d.name);
        assert_eq!(r.envelopes_pushed, 0, "{} pushed again", d.name);
    }
    assert_eq!(stored(&relay), (rows, ids), "the relay's log did not grow");
}
