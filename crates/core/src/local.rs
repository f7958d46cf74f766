//! Device-local data that is not synced: bookmarks, shifts, settings.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{format_ms, now_ms, DocId};
use crate::store::Store;

/// A bookmarked handbook section.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bookmark {
    pub handbook_id: String,
    pub section: usize,
    pub handbook_title: String,
    pub section_title: String,
    pub created_at: String,
}

/// The volunteer's current shift.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Shift {
    pub started_at: String,
    /// Contacts logged on this device since the shift started.
    pub contacts: i64,
}

impl Store {
    /// Runs `f` in one `IMMEDIATE` transaction, committed (durably) before
    /// this returns: the write lock is taken first, so a read inside `f`
    /// sees what no other connection can change before the commit.
    pub(crate) fn immediate<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Bookmarks, newest first.
    pub fn bookmarks(&self) -> Result<Vec<Bookmark>> {
        let mut st = self.conn().prepare_cached(
            "SELECT b.handbook_id, b.section, coalesce(h.title, ''), coalesce(s.title, ''), b.created_at
             FROM bookmarks b
             LEFT JOIN handbooks h ON h.id = b.handbook_id
             LEFT JOIN sections s ON s.handbook_id = b.handbook_id AND s.idx = b.section
             ORDER BY b.created_at DESC",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Bookmark {
                handbook_id: r.get(0)?,
                section: r.get::<_, i64>(1)? as usize,
                handbook_title: r.get(2)?,
                section_title: r.get(3)?,
                created_at: format_ms(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Adds or removes a bookmark; returns whether it is now bookmarked.
    pub fn toggle_bookmark(&mut self, handbook: &DocId, section: usize) -> Result<bool> {
        self.section(handbook, section)?;
        self.immediate(|tx| {
            let removed = tx.execute(
                "DELETE FROM bookmarks WHERE handbook_id = ?1 AND section = ?2",
                params![handbook.as_str(), section as i64],
            )?;
            if removed > 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO bookmarks (handbook_id, section, created_at) VALUES (?1, ?2, ?3)",
                params![handbook.as_str(), section as i64, now_ms()],
            )?;
            Ok(true)
        })
    }

    /// The open shift, if any.
    pub fn current_shift(&self) -> Result<Option<Shift>> {
        open_shift(self.conn())
    }

    /// Starts a shift (or returns the one already open).
    pub fn start_shift(&mut self) -> Result<Shift> {
        self.immediate(|tx| {
            if let Some(s) = open_shift(tx)? {
                return Ok(s);
            }
            tx.execute("INSERT INTO shifts (started_at) VALUES (?1)", [now_ms()])?;
            open_shift(tx)?.ok_or(Error::Empty { what: "shift" })
        })
    }

    /// Ends the open shift; returns it, or `None` if none was open.
    pub fn end_shift(&mut self) -> Result<Option<Shift>> {
        self.immediate(|tx| {
            let open = open_shift(tx)?;
            tx.execute(
                "UPDATE shifts SET ended_at = ?1 WHERE ended_at IS NULL",
                [now_ms()],
            )?;
            Ok(open)
        })
    }

    /// A device setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.immediate(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, value],
            )?;
            Ok(())
        })
    }
}

fn open_shift(conn: &Connection) -> Result<Option<Shift>> {
    Ok(conn
        .query_row(
            "SELECT started_at, contacts FROM shifts WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok(Shift { started_at: format_ms(r.get(0)?), contacts: r.get(1)? }),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use crate::{Channel, Group, NewCase, Risk, Store};

    #[test]
    fn shifts_count_contacts_and_bookmarks_toggle() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(&dir.path().join("p"), "x", &crate::testing::protection()).unwrap();
        assert!(s.current_shift().unwrap().is_none());
        let id = s
            .new_case(&NewCase {
                alias: "a".into(),
                group: Group::Other,
                risk: Risk::None,
            })
            .unwrap();
        s.add_contact(&id, Channel::Hotline, "before the shift", None)
            .unwrap();
        s.start_shift().unwrap();
        s.add_contact(&id, Channel::Hotline, "during", None)
            .unwrap();
        s.add_contact(&id, Channel::Online, "during", None).unwrap();
        assert_eq!(s.current_shift().unwrap().unwrap().contacts, 2);
        assert_eq!(s.end_shift().unwrap().unwrap().contacts, 2);
        assert!(s.current_shift().unwrap().is_none());

        let hb = dir.path().join("h.md");
        std::fs::write(&hb, "---\ntitle: T\n---\n## A\nx\n## B\ny\n").unwrap();
        let out = s.import_handbooks(&[hb]).unwrap();
        let hid = crate::DocId::parse(&out[0].id, "handbook").unwrap();
        assert!(s.toggle_bookmark(&hid, 1).unwrap());
        assert_eq!(s.bookmarks().unwrap()[0].section_title, "B");
        assert!(!s.toggle_bookmark(&hid, 1).unwrap());
        assert!(s.bookmarks().unwrap().is_empty());
        assert!(s.toggle_bookmark(&hid, 99).is_err());
        s.set_setting("language", "en").unwrap();
        assert_eq!(s.setting("language").unwrap().as_deref(), Some("en"));
    }

    #[test]
    fn two_stores_writing_at_once_lose_no_shift_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        drop(Store::init(&p, "x", &crate::testing::protection()).unwrap());
        const PER_THREAD: i64 = 25;
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for t in 0..2 {
                let (p, barrier) = (&p, &barrier);
                scope.spawn(move || {
                    let mut s = Store::open(p, &crate::testing::unlock()).unwrap();
                    let id = s
                        .new_case(&NewCase {
                            alias: format!("c{t}"),
                            group: Group::Other,
                            risk: Risk::None,
                        })
                        .unwrap();
                    barrier.wait();
                    // Both start the shift: one opens it, the other joins it.
                    s.start_shift().unwrap();
                    for i in 0..PER_THREAD {
                        s.add_contact(&id, Channel::Hotline, &format!("n{i}"), None)
                            .unwrap();
                        s.set_setting(&format!("last-{t}"), &i.to_string()).unwrap();
                    }
                });
            }
        });
        let s = Store::open(&p, &crate::testing::unlock()).unwrap();
        assert_eq!(s.current_shift().unwrap().unwrap().contacts, 2 * PER_THREAD);
        let open: i64 = s
            .conn()
            .query_row(
                "SELECT count(*) FROM shifts WHERE ended_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open, 1, "two shifts were opened at once");
        let last = (PER_THREAD - 1).to_string();
        assert_eq!(s.setting("last-0").unwrap().as_deref(), Some(last.as_str()));
        assert_eq!(s.setting("last-1").unwrap().as_deref(), Some(last.as_str()));
    }
}
