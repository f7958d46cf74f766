//! Device-local data that is not synced: bookmarks, shifts, settings.

use rusqlite::{params, OptionalExtension};
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
        let removed = self.conn().execute(
            "DELETE FROM bookmarks WHERE handbook_id = ?1 AND section = ?2",
            params![handbook.as_str(), section as i64],
        )?;
        if removed > 0 {
            return Ok(false);
        }
        self.conn().execute(
            "INSERT INTO bookmarks (handbook_id, section, created_at) VALUES (?1, ?2, ?3)",
            params![handbook.as_str(), section as i64, now_ms()],
        )?;
        Ok(true)
    }

    /// The open shift, if any.
    pub fn current_shift(&self) -> Result<Option<Shift>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT started_at, contacts FROM shifts WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok(Shift { started_at: format_ms(r.get(0)?), contacts: r.get(1)? }),
            )
            .optional()?)
    }

    /// Starts a shift (or returns the one already open).
    pub fn start_shift(&mut self) -> Result<Shift> {
        if let Some(s) = self.current_shift()? {
            return Ok(s);
        }
        self.conn()
            .execute("INSERT INTO shifts (started_at) VALUES (?1)", [now_ms()])?;
        self.current_shift()?.ok_or(Error::Empty { what: "shift" })
    }

    /// Ends the open shift; returns it, or `None` if none was open.
    pub fn end_shift(&mut self) -> Result<Option<Shift>> {
        let open = self.current_shift()?;
        self.conn().execute(
            "UPDATE shifts SET ended_at = ?1 WHERE ended_at IS NULL",
            [now_ms()],
        )?;
        Ok(open)
    }

    pub(crate) fn count_shift_contact(&self) -> Result<()> {
        self.conn().execute(
            "UPDATE shifts SET contacts = contacts + 1 WHERE ended_at IS NULL",
            [],
        )?;
        Ok(())
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
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Channel, Group, NewCase, Risk, Store};

    #[test]
    fn shifts_count_contacts_and_bookmarks_toggle() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(&dir.path().join("p"), "x").unwrap();
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
}
