//! Device-local data that is not synced: bookmarks, shifts, settings.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::facts::Fact;
use crate::model::{format_ms, now_ms, DocId, DocKind};
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
    /// The duty line's id, name and kind (`hotline`, `online`, `venue`,
    /// `on-call`) as they were when the shift started; `None` when the
    /// shift is on no line.
    pub line: Option<String>,
    pub line_name: Option<String>,
    pub line_kind: Option<String>,
}

/// A shift row: the shift, its row id and start (ms).
struct ShiftRow {
    id: i64,
    started_ms: i64,
    shift: Shift,
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
        Ok(open_shift(self.conn())?.map(|r| r.shift))
    }

    /// Starts a shift on a duty line (its id or name, from the team
    /// settings; `None`: on no line), or returns the one already open.
    pub fn start_shift(&mut self, line: Option<&str>) -> Result<Shift> {
        let line = match line.map(str::trim) {
            None | Some("") => None,
            Some(l) => Some(self.team_settings()?.find_line(l).cloned().ok_or_else(|| {
                Error::NotFound {
                    what: "duty line",
                    id: l.chars().take(40).collect(),
                }
            })?),
        };
        self.immediate(|tx| {
            if let Some(s) = open_shift(tx)? {
                return Ok(s.shift);
            }
            tx.execute(
                "INSERT INTO shifts (started_at, line, line_name, line_kind) VALUES (?1, ?2, ?3, ?4)",
                params![
                    now_ms(),
                    line.as_ref().map(|l| l.id.as_str()),
                    line.as_ref().map(|l| l.name.as_str()),
                    line.as_ref().map(|l| l.kind.as_str()),
                ],
            )?;
            Ok(open_shift(tx)?.ok_or(Error::Empty { what: "shift" })?.shift)
        })
    }

    /// Ends the open shift; returns it, or `None` if none was open.
    pub fn end_shift(&mut self) -> Result<Option<Shift>> {
        self.end_shift_with_note(None)
    }

    /// Ends the open shift, leaving `handover` (if not blank) as a note for
    /// the next shift on the same line, in the line's shift-report
    /// document (team-wide: no case details there). Records the shift's
    /// statistics fact. Returns the shift, or `None` if none was open (and
    /// then nothing is written).
    pub fn end_shift_with_note(&mut self, handover: Option<&str>) -> Result<Option<Shift>> {
        let Some(open) = open_shift(self.conn())? else {
            return Ok(None);
        };
        let now = now_ms();
        let fact = Fact::Shift {
            id: Fact::new_id(),
            line_kind: open.shift.line_kind.clone(),
            start: open.started_ms,
            end: now.max(open.started_ms),
        };
        let row = open.id;
        let close = move |conn: &Connection| -> Result<bool> {
            let n = conn.execute(
                "UPDATE shifts SET ended_at = ?1 WHERE id = ?2 AND ended_at IS NULL",
                params![now, row],
            )?;
            if n == 1 {
                crate::facts::record_fact_in(conn, &fact)?;
            }
            Ok(n == 1)
        };
        let text = handover.map(str::trim).filter(|t| !t.is_empty());
        let Some(text) = text else {
            let closed = self.immediate(|tx| close(tx))?;
            return Ok(closed.then_some(open.shift));
        };
        let line = open.shift.line.clone().unwrap_or_default();
        let doc_id =
            crate::duty::shift_report_doc_id(&crate::duty::team_id_in(self.conn())?, &line);
        let by_device = self.team()?.map(|t| t.device_id).unwrap_or_default();
        let note = crate::duty::HandoverNote {
            id: Fact::new_id(),
            line,
            at: now,
            shift_started_at: open.started_ms,
            by_device,
            by_name: self.profile().name.clone(),
            text: text.to_owned(),
        };
        self.write_also(
            &doc_id,
            DocKind::ShiftReport,
            true,
            "handover note",
            |doc, _| crate::duty::put_handover_note(doc, &note),
            |conn| {
                if close(conn)? {
                    Ok(())
                } else {
                    // Another process ended the shift meanwhile: write no
                    // note for a shift that is no longer this one's.
                    Err(Error::Busy)
                }
            },
        )?;
        Ok(Some(open.shift))
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

fn open_shift(conn: &Connection) -> Result<Option<ShiftRow>> {
    Ok(conn
        .query_row(
            "SELECT id, started_at, contacts, line, line_name, line_kind
             FROM shifts WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                let started_ms: i64 = r.get(1)?;
                Ok(ShiftRow {
                    id: r.get(0)?,
                    started_ms,
                    shift: Shift {
                        started_at: format_ms(started_ms),
                        contacts: r.get(2)?,
                        line: r.get(3)?,
                        line_name: r.get(4)?,
                        line_kind: r.get(5)?,
                    },
                })
            },
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
        s.start_shift(None).unwrap();
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
    fn a_shift_on_a_line_ends_with_a_handover_note_and_a_fact() {
        use crate::{DocKind, LineKind, NewLine};
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::init(&dir.path().join("p"), "小李", &crate::testing::protection()).unwrap();
        let line = s
            .add_line(&NewLine {
                name: "热线".into(),
                kind: Some(LineKind::Hotline),
                ..NewLine::default()
            })
            .unwrap();
        assert_eq!(
            s.start_shift(Some("no such line")).unwrap_err().kind(),
            "not_found"
        );
        assert!(s.current_shift().unwrap().is_none());
        let shift = s.start_shift(Some("热线")).unwrap();
        assert_eq!(shift.line.as_deref(), Some(line.as_str()));
        assert_eq!(shift.line_kind.as_deref(), Some("hotline"));
        // Already open: the same shift, whatever line is asked for.
        assert_eq!(s.start_shift(None).unwrap(), shift);
        let outbox = s.outbox_len().unwrap();
        let ended = s
            .end_shift_with_note(Some("  3号床的来电者今晚可能再打来  "))
            .unwrap()
            .unwrap();
        assert_eq!(ended.line.as_deref(), Some("hotline"));
        assert!(s.current_shift().unwrap().is_none());
        // The note went to the line's shift report, queued for the relay.
        let items = s.outbox().unwrap();
        assert_eq!(items.len(), outbox + 1);
        assert_eq!(items.last().unwrap().kind, DocKind::ShiftReport);
        let notes = s.handover_notes(Some("hotline")).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].text, "3号床的来电者今晚可能再打来");
        assert_eq!(notes[0].by_name, "小李");
        assert!(s.handover_notes(None).unwrap().is_empty());
        // One statistics fact for the shift, with the line's kind.
        let facts = crate::facts::all_in(s.conn()).unwrap();
        let shifts: Vec<_> = facts
            .iter()
            .filter_map(|f| match f {
                crate::Fact::Shift {
                    line_kind,
                    start,
                    end,
                    ..
                } => Some((line_kind.clone(), *start, *end)),
                _ => None,
            })
            .collect();
        assert_eq!(shifts.len(), 1);
        assert_eq!(shifts[0].0.as_deref(), Some("hotline"));
        assert!(shifts[0].1 <= shifts[0].2);
        // Ending again: nothing open, nothing written.
        let outbox = s.outbox_len().unwrap();
        assert!(s.end_shift_with_note(Some("x")).unwrap().is_none());
        assert_eq!(s.outbox_len().unwrap(), outbox);
        // A shift on no line, ended without a note: a fact, no document.
        s.start_shift(None).unwrap();
        let ended = s.end_shift_with_note(Some("   ")).unwrap().unwrap();
        assert_eq!(ended.line, None);
        assert_eq!(s.outbox_len().unwrap(), outbox);
        assert_eq!(
            crate::facts::all_in(s.conn()).unwrap().len(),
            facts.len() + 1
        );
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
                    s.start_shift(None).unwrap();
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
