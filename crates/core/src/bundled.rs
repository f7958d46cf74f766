//! The sample handbooks an app ships with: readable offline from the first
//! start of a standalone profile, and never sent to a team.
//!
//! They are imported as ordinary local handbooks (so a volunteer can read,
//! bookmark and even update them), and each is marked in `settings` with
//! the key `bundled:<doc id>` and, as value, the document's heads right
//! after the import. When the profile joins a team, every bundled handbook
//! whose heads are still those is removed with its outbox rows, bookmarks
//! and projections, so the team's own handbooks arrive by sync instead of
//! every new device pushing the same samples to everyone. A bundled
//! handbook the volunteer changed since is theirs: it stays and is pushed.

use std::path::PathBuf;

use automerge::{ActorId, ChangeHash};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{DocId, DocKind};
use crate::ops::Imported;
use crate::store::{load_doc_in, Store};

/// `settings` key prefix marking a bundled handbook.
const MARK: &str = "bundled:";
/// `settings` key of the import's progress: `started`, then `done`.
const STATE: &str = "bundled-import";

fn heads_text(heads: &[ChangeHash]) -> String {
    let mut hex: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    hex.sort();
    hex.join(",")
}

impl Store {
    /// Imports the handbooks an app ships with into a standalone profile,
    /// once: it does nothing in a profile that belongs to a team, that
    /// already had handbooks of its own before the first call, or where the
    /// import has been done. An interrupted import is finished by the next
    /// call. Returns what was imported.
    pub fn import_bundled_handbooks(
        &mut self,
        files: &[(PathBuf, Vec<u8>)],
    ) -> Result<Vec<Imported>> {
        if self.team()?.is_some() {
            return Ok(Vec::new());
        }
        match self.setting(STATE)?.as_deref() {
            Some("done") => return Ok(Vec::new()),
            Some(_) => {}
            None => {
                let fresh = self.immediate(|tx| {
                    let n: i64 =
                        tx.query_row("SELECT count(*) FROM handbooks", [], |r| r.get(0))?;
                    let value = if n == 0 { "started" } else { "done" };
                    tx.execute(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                        params![STATE, value],
                    )?;
                    Ok(n == 0)
                })?;
                if !fresh {
                    return Ok(Vec::new());
                }
            }
        }
        // Every file is parsed before anything is stored.
        let mut slugs = Vec::new();
        for (path, bytes) in files {
            slugs.push(crate::handbook::parse(path, bytes)?.slug);
        }
        let mut out = Vec::new();
        for (file, slug) in files.iter().zip(slugs) {
            let existing: Option<String> = self
                .conn()
                .query_row(
                    "SELECT id FROM handbooks WHERE slug = ?1 ORDER BY id LIMIT 1",
                    [&slug],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match existing {
                // Imported by the interrupted call, perhaps not yet marked.
                Some(id) => DocId::parse(&id, "handbook")?,
                None => {
                    let done = self.import_handbook_bytes(std::slice::from_ref(file))?;
                    let Some(first) = done.first() else { continue };
                    let id = DocId::parse(&first.id, "handbook")?;
                    out.extend(done);
                    id
                }
            };
            if self.setting(&format!("{MARK}{id}"))?.is_none() {
                let heads = match self.load(&id)? {
                    Some((_, mut doc)) => heads_text(&doc.get_heads()),
                    None => continue,
                };
                self.set_setting(&format!("{MARK}{id}"), &heads)?;
            }
        }
        self.set_setting(STATE, "done")?;
        Ok(out)
    }

    /// Whether a handbook is one of the bundled samples, unchanged since it
    /// was imported.
    pub fn is_bundled_handbook(&self, id: &DocId) -> Result<bool> {
        let Some(heads) = self.setting(&format!("{MARK}{id}"))? else {
            return Ok(false);
        };
        Ok(match self.load(id)? {
            Some((DocKind::Handbook, mut doc)) => heads_text(&doc.get_heads()) == heads,
            _ => false,
        })
    }

    /// Removes the bundled handbooks the volunteer has not changed, with
    /// their outbox rows, bookmarks and projections, in one `IMMEDIATE`
    /// transaction; a changed one becomes an ordinary handbook. Called when
    /// the profile joins a team (right after `set_team`), so no device
    /// pushes the samples to its teammates. Returns the removed ids.
    pub fn drop_bundled_handbooks(&mut self) -> Result<Vec<DocId>> {
        let actor = self.actor().clone();
        self.immediate(|tx| drop_bundled_in(tx, &actor))
    }
}

/// `drop_bundled_handbooks` inside the caller's transaction (e.g. the one
/// that records the team).
pub(crate) fn drop_bundled_in(conn: &Connection, actor: &ActorId) -> Result<Vec<DocId>> {
    let marks: Vec<(String, String)> = {
        let mut st = conn.prepare(
            "SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
        )?;
        let rows = st.query_map([MARK], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let batches: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox_batches'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    let mut dropped = Vec::new();
    for (key, heads) in marks {
        conn.execute("DELETE FROM settings WHERE key = ?1", [&key])?;
        let Ok(id) = DocId::parse(&key[MARK.len()..], "handbook") else {
            continue;
        };
        let unchanged = match load_doc_in(conn, &id, actor)? {
            Some((DocKind::Handbook, mut doc)) => heads_text(&doc.get_heads()) == heads,
            _ => false,
        };
        if !unchanged {
            continue;
        }
        let id_s = id.as_str();
        conn.execute("DELETE FROM outbox WHERE doc_id = ?1", [id_s])?;
        if batches {
            conn.execute("DELETE FROM outbox_batches WHERE doc_id = ?1", [id_s])?;
        }
        conn.execute("DELETE FROM document_changes WHERE doc_id = ?1", [id_s])?;
        conn.execute("DELETE FROM documents WHERE id = ?1", [id_s])?;
        conn.execute(
            "DELETE FROM sections_fts WHERE rowid IN (SELECT rowid FROM sections WHERE handbook_id = ?1)",
            [id_s],
        )?;
        conn.execute("DELETE FROM sections WHERE handbook_id = ?1", [id_s])?;
        conn.execute("DELETE FROM handbooks WHERE id = ?1", [id_s])?;
        conn.execute("DELETE FROM bookmarks WHERE handbook_id = ?1", [id_s])?;
        conn.execute("DELETE FROM doc_sync WHERE doc_id = ?1", [id_s])?;
        dropped.push(id);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use heartbridge_proto::{Role, Secret, TeamId, TeamKey};

    use crate::{DocId, Store, Team};

    fn samples() -> Vec<(PathBuf, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../handbooks");
        [
            "zh/hotline-work-rules.md",
            "zh/crisis-risk-assessment-referral.md",
            "en/hotline-work-rules.md",
        ]
        .iter()
        .map(|f| {
            let p = root.join(f);
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
    }

    fn team() -> Team {
        Team {
            relay_url: "http://127.0.0.1:9".into(),
            team_id: TeamId::from_hex(&"ab".repeat(16)).unwrap(),
            device_id: "cd".repeat(16),
            token: Secret::from_string("t".repeat(32)),
            key: TeamKey::from_bytes([7; 32]),
            epoch: 1,
            role: Role::Volunteer,
            lead_sign_pk: [0; 32],
        }
    }

    fn outbox_docs(s: &Store) -> Vec<String> {
        s.outbox()
            .unwrap()
            .into_iter()
            .map(|i| i.doc_id.to_string())
            .collect()
    }

    #[test]
    fn bundled_handbooks_never_leave_a_device_that_joins_a_team() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(
            &dir.path().join("p"),
            "林老师",
            &crate::testing::protection(),
        )
        .unwrap();
        let files = samples();
        let imported = s.import_bundled_handbooks(&files).unwrap();
        assert_eq!(imported.len(), 3);
        // Once only.
        assert!(s.import_bundled_handbooks(&files).unwrap().is_empty());
        let ids: Vec<DocId> = imported
            .iter()
            .map(|i| DocId::parse(&i.id, "handbook").unwrap())
            .collect();
        for id in &ids {
            assert!(s.is_bundled_handbook(id).unwrap());
            assert!(outbox_docs(&s).contains(&id.to_string()));
        }
        // The volunteer's own work: a handbook of theirs, and an update of
        // one sample (same slug, new text).
        let own = dir.path().join("own.md");
        std::fs::write(&own, "---\ntitle: 我们的值班手册\n---\n## 交接\n先签到。\n").unwrap();
        let own_id = s.import_handbooks(&[own]).unwrap()[0].id.clone();
        let (path, bytes) = &files[2];
        let mut changed = bytes.clone();
        changed.extend_from_slice("\n\n## Our addition\n\nCall the supervisor first.\n".as_bytes());
        let up = s.import_handbook_bytes(&[(path.clone(), changed)]).unwrap();
        assert_eq!(up[0].outcome, "updated");
        assert!(!s.is_bundled_handbook(&ids[2]).unwrap());
        // A bookmark on a sample that will go.
        s.toggle_bookmark(&ids[0], 1).unwrap();
        let before_search = s.search("督导", 50).unwrap();
        assert!(before_search
            .iter()
            .any(|h| h.handbook_id == ids[0].as_str()));

        s.set_team(&team()).unwrap();
        let mut dropped = s.drop_bundled_handbooks().unwrap();
        dropped.sort();
        let mut want = ids[..2].to_vec();
        want.sort();
        assert_eq!(dropped, want);

        let outbox = outbox_docs(&s);
        for id in &ids[..2] {
            assert!(
                !outbox.contains(&id.to_string()),
                "a sample would be pushed"
            );
            assert!(s.load(id).unwrap().is_none());
        }
        // What the volunteer made is still pushed, with its whole history.
        assert!(outbox.contains(&own_id));
        assert_eq!(
            outbox.iter().filter(|d| **d == ids[2].to_string()).count(),
            2
        );
        // The library works without them: list, bookmarks, search.
        let list: Vec<String> = s
            .list_handbooks()
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&own_id) && list.contains(&ids[2].to_string()));
        assert!(s.bookmarks().unwrap().is_empty());
        assert!(s
            .search("督导", 50)
            .unwrap()
            .iter()
            .all(|h| h.handbook_id != ids[0].as_str() && h.handbook_id != ids[1].as_str()));
        assert!(s.handbook(&ids[0]).is_err());
        // Nothing is left to drop, and a team profile gets no samples.
        assert!(s.drop_bundled_handbooks().unwrap().is_empty());
        assert!(s.import_bundled_handbooks(&files).unwrap().is_empty());
    }

    #[test]
    fn a_profile_with_handbooks_of_its_own_gets_no_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(&dir.path().join("p"), "x", &crate::testing::protection()).unwrap();
        let own = dir.path().join("own.md");
        std::fs::write(&own, "---\ntitle: T\n---\n## A\nx\n").unwrap();
        s.import_handbooks(&[own]).unwrap();
        assert!(s.import_bundled_handbooks(&samples()).unwrap().is_empty());
        assert_eq!(s.list_handbooks().unwrap().len(), 1);
        s.set_team(&team()).unwrap();
        assert!(s.drop_bundled_handbooks().unwrap().is_empty());
        assert_eq!(s.outbox_len().unwrap(), 1);
    }

    #[test]
    fn an_interrupted_bundled_import_is_finished_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::init(&dir.path().join("p"), "x", &crate::testing::protection()).unwrap();
        let files = samples();
        // As if the app was killed after the first sample was imported but
        // before it was marked.
        s.set_setting(super::STATE, "started").unwrap();
        let first = s.import_handbook_bytes(&files[..1]).unwrap();
        let first = DocId::parse(&first[0].id, "handbook").unwrap();
        assert!(!s.is_bundled_handbook(&first).unwrap());
        let rest = s.import_bundled_handbooks(&files).unwrap();
        assert_eq!(rest.len(), 2);
        assert!(s.is_bundled_handbook(&first).unwrap());
        assert_eq!(s.list_handbooks().unwrap().len(), 3);
        s.set_team(&team()).unwrap();
        assert_eq!(s.drop_bundled_handbooks().unwrap().len(), 3);
        assert_eq!(s.outbox_len().unwrap(), 0);
    }
}
