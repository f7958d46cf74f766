//! The device's store: one SQLite database per profile directory.
//!
//! The database holds the Automerge bytes of every document (a snapshot plus
//! the incremental changes appended since), an outbox of local changes no
//! relay has acknowledged yet, and projections derived from the documents.
//! Every write happens in one `IMMEDIATE` transaction that loads the
//! document, applies the change, appends its bytes, queues it in the outbox
//! and refreshes the projections; it is committed (WAL, `synchronous=FULL`)
//! before the call returns.

mod migrations;

use std::path::{Path, PathBuf};

use automerge::{ActorId, AutoCommit, ChangeHash};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{Error, Result};
use crate::model::{now_ms, DocId, DocKind};

/// The database file inside a profile directory.
pub const DB_FILE: &str = "heartbridge.db";
/// `PRAGMA application_id` of a Heartbridge database ("HBRG").
const APPLICATION_ID: i32 = 0x4842_5247;

/// Who this device is.
#[derive(Clone)]
pub struct Profile {
    /// The volunteer's chosen display name.
    pub name: String,
    /// This device's id (hex).
    pub device_id: String,
    actor: ActorId,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("name", &"<redacted>")
            .field("device_id", &self.device_id)
            .finish()
    }
}

/// A local change waiting for a relay's acknowledgement.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub seq: i64,
    pub doc_id: DocId,
    pub kind: DocKind,
    pub bytes: Vec<u8>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A new change was committed.
    Changed(ChangeHash),
    /// The document already said exactly this; nothing was stored.
    Unchanged,
}

/// An open profile.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    profile: Profile,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn corrupt(path: &Path, e: &rusqlite::Error) -> Error {
    Error::DatabaseCorrupt {
        path: path.to_owned(),
        detail: match e {
            rusqlite::Error::SqliteFailure(f, _) => format!("{:?}", f.code),
            _ => "unreadable".into(),
        },
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Creates a new profile in `dir` (created if needed; it must be empty
    /// or hold nothing but a previous failed attempt).
    pub fn init(dir: &Path, name: &str) -> Result<Store> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Empty { what: "name" });
        }
        let path = dir.join(DB_FILE);
        if path.exists() {
            return Err(Error::ProfileExists {
                path: dir.to_owned(),
            });
        }
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_some() {
                return Err(Error::ProfileForeign {
                    path: dir.to_owned(),
                });
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        configure(&conn)?;
        migrations::migrate(&mut conn, &path)?;
        let device: [u8; 16] = rand::random();
        let actor: [u8; 16] = rand::random();
        conn.execute(
            "INSERT INTO profile (id, name, device_id, actor_id, created_at) VALUES (1, ?1, ?2, ?3, ?4)",
            params![name, hex::encode(device), hex::encode(actor), now_ms()],
        )?;
        Store::open(dir)
    }

    /// Opens the profile in `dir`. Refuses, without writing a byte, a
    /// missing profile, a database that is not Heartbridge's, and a damaged
    /// file.
    pub fn open(dir: &Path) -> Result<Store> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(Error::ProfileMissing {
                path: dir.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| corrupt(&path, &e))?;
        // Read the header before anything writes to the file.
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| corrupt(&path, &e))?;
        if app_id != APPLICATION_ID {
            return Err(Error::ProfileForeign {
                path: dir.to_owned(),
            });
        }
        let check: String = conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| corrupt(&path, &e))?;
        if check != "ok" {
            return Err(Error::DatabaseCorrupt {
                path: path.clone(),
                detail: "integrity check failed".into(),
            });
        }
        configure(&conn)?;
        migrations::migrate(&mut conn, &path)?;
        let profile = conn
            .query_row(
                "SELECT name, device_id, actor_id FROM profile WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| Error::ProfileMissing {
                path: dir.to_owned(),
            })?;
        let actor = hex::decode(&profile.2).map_err(|_| Error::DatabaseCorrupt {
            path: path.clone(),
            detail: "bad actor id".into(),
        })?;
        Ok(Store {
            conn,
            path,
            profile: Profile {
                name: profile.0,
                device_id: profile.1,
                actor: ActorId::from(actor),
            },
        })
    }

    /// Who this device is.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Loads a document, or `None` if this device does not hold it.
    pub fn load(&self, id: &DocId) -> Result<Option<(DocKind, AutoCommit)>> {
        load_doc(&self.conn, id, &self.profile.actor)
    }

    /// Loads a document of the expected kind; `NotFound` otherwise.
    pub(crate) fn load_kind(&self, id: &DocId, kind: DocKind) -> Result<AutoCommit> {
        match self.load(id)? {
            Some((k, doc)) if k == kind => Ok(doc),
            _ => Err(Error::NotFound {
                what: kind_noun(kind),
                id: id.to_string(),
            }),
        }
    }

    /// Applies a local change to a document in one durable transaction:
    /// the change is stored, queued in the outbox, and the projections are
    /// refreshed. `create` makes a new document if none exists.
    pub(crate) fn write<T>(
        &mut self,
        id: &DocId,
        kind: DocKind,
        create: bool,
        what: &str,
        f: impl FnOnce(&mut AutoCommit, &Profile) -> Result<T>,
    ) -> Result<(T, Written)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut doc, is_new) = load_or_new(&tx, id, kind, &self.profile.actor, create)?;
        let heads = doc.get_heads();
        let value = f(&mut doc, &self.profile)?;
        let message = serde_json::json!({ "by": self.profile.name, "what": what }).to_string();
        let now = now_ms();
        let opts = automerge::transaction::CommitOptions::default()
            .with_message(message)
            .with_time(now / 1000);
        let Some(hash) = doc.commit_with(opts) else {
            return Ok((value, Written::Unchanged));
        };
        let change = doc.save_after(&heads);
        if is_new {
            tx.execute(
                "INSERT INTO documents (id, kind, snapshot, updated_at) VALUES (?1, ?2, ?3, ?4)",
                params![id.as_str(), kind.as_str(), doc.save(), now],
            )?;
        } else {
            append_change(&tx, id, &change, now)?;
        }
        tx.execute(
            "INSERT INTO outbox (doc_id, kind, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id.as_str(), kind.as_str(), change, now],
        )?;
        crate::projection::refresh(&tx, id, kind, &mut doc)?;
        compact_if_needed(&tx, id, &mut doc)?;
        tx.commit()?;
        Ok((value, Written::Changed(hash)))
    }

    /// Merges changes that arrived from elsewhere (a relay, a file) into a
    /// document, creating it if needed. Nothing goes to the outbox. Returns
    /// whether the document changed.
    ///
    /// Changes whose Automerge dependencies are missing are kept (see
    /// [`Store::waiting_changes`]) and applied once those arrive. Bytes that
    /// are not changes of this document are refused with
    /// [`Error::Document`] (or [`Error::WrongKind`]) and nothing is stored.
    pub fn apply_remote(&mut self, id: &DocId, kind: DocKind, bytes: &[u8]) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let merged = match apply_remote_in(&tx, &self.profile.actor, id, kind, bytes, 0) {
            Ok(m) => m,
            Err(MergeError::Local(e)) => return Err(e),
            Err(MergeError::Refused("wrong document kind")) => {
                return Err(Error::WrongKind {
                    id: id.to_string(),
                    expected: kind.as_str(),
                })
            }
            Err(MergeError::Refused(_)) => {
                return Err(Error::Document {
                    id: id.to_string(),
                    source: Box::new(automerge::AutomergeError::Fail),
                })
            }
        };
        tx.commit()?;
        Ok(merged == Merged::Changed)
    }

    /// Pulled changes that wait for Automerge dependencies not held yet.
    pub fn waiting_changes(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM pending_changes", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn actor(&self) -> &ActorId {
        &self.profile.actor
    }

    /// Folds a document's incremental changes into one snapshot now.
    pub fn compact(&mut self, id: &DocId) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some((_, mut doc)) = load_doc(&tx, id, &self.profile.actor)? else {
            return Err(Error::NotFound {
                what: "document",
                id: id.to_string(),
            });
        };
        write_snapshot(&tx, id, &mut doc)?;
        tx.commit()?;
        Ok(())
    }

    /// Bytes stored for a document: (snapshot, incremental changes).
    pub fn stored_sizes(&self, id: &DocId) -> Result<(usize, usize)> {
        let snap: Option<i64> = self
            .conn
            .query_row(
                "SELECT length(snapshot) FROM documents WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let changes: i64 = self.conn.query_row(
            "SELECT coalesce(sum(length(bytes)), 0) FROM document_changes WHERE doc_id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )?;
        Ok((snap.unwrap_or(0) as usize, changes as usize))
    }

    /// The local changes not yet acknowledged by a relay, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxItem>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, doc_id, kind, bytes FROM outbox ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, doc, kind, bytes) = row?;
            out.push(OutboxItem {
                seq,
                doc_id: DocId::parse(&doc, "document")?,
                kind: kind.parse()?,
                bytes,
            });
        }
        Ok(out)
    }

    /// How many local changes wait for a relay.
    pub fn outbox_len(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Removes acknowledged changes from the outbox (durably).
    pub fn ack_outbox(&mut self, seqs: &[i64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare("DELETE FROM outbox WHERE seq = ?1")?;
            for s in seqs {
                stmt.execute([s])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ids and kinds of every document this device holds.
    pub fn document_ids(&self) -> Result<Vec<(DocId, DocKind)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind FROM documents ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind) = row?;
            out.push((DocId::parse(&id, "document")?, kind.parse()?));
        }
        Ok(out)
    }
}

pub(crate) fn kind_noun(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Case => "case",
        DocKind::Handbook => "handbook",
        DocKind::ShiftReport => "shift-report",
    }
}

fn load_doc(
    conn: &Connection,
    id: &DocId,
    actor: &ActorId,
) -> Result<Option<(DocKind, AutoCommit)>> {
    let row: Option<(String, Vec<u8>)> = conn
        .query_row(
            "SELECT kind, snapshot FROM documents WHERE id = ?1",
            [id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((kind, snapshot)) = row else {
        return Ok(None);
    };
    let doc_err = |source: automerge::AutomergeError| Error::Document {
        id: id.to_string(),
        source: Box::new(source),
    };
    let mut doc = AutoCommit::load(&snapshot).map_err(doc_err)?;
    let mut stmt =
        conn.prepare_cached("SELECT bytes FROM document_changes WHERE doc_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([id.as_str()])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        doc.load_incremental(&bytes).map_err(doc_err)?;
    }
    doc.set_actor(actor.clone());
    Ok(Some((kind.parse()?, doc)))
}

/// Loads a document of the expected kind, or (with `create`) starts a new
/// one; returns it and whether it is new.
fn load_or_new(
    conn: &Connection,
    id: &DocId,
    kind: DocKind,
    actor: &ActorId,
    create: bool,
) -> Result<(AutoCommit, bool)> {
    match load_doc(conn, id, actor)? {
        Some((k, doc)) if k == kind => Ok((doc, false)),
        Some(_) => Err(Error::WrongKind {
            id: id.to_string(),
            expected: kind.as_str(),
        }),
        None if create => Ok((AutoCommit::new().with_actor(actor.clone()), true)),
        None => Err(Error::NotFound {
            what: kind_noun(kind),
            id: id.to_string(),
        }),
    }
}

/// What merging pulled bytes into a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merged {
    /// The document changed.
    Changed,
    /// Everything in the bytes was already there.
    Unchanged,
    /// Some changes wait for Automerge dependencies this device does not
    /// hold yet; they are kept in `pending_changes` (whatever could be
    /// applied was).
    Waiting,
}

/// Why pulled bytes were not merged.
#[derive(Debug)]
pub(crate) enum MergeError {
    /// The bytes are not a change of this document (damaged, or of another
    /// kind): refuse them and go on.
    Refused(&'static str),
    /// This device failed (disk, database, a stored document that does not
    /// load): stop, move no cursor, retry later.
    Local(Error),
}

impl From<Error> for MergeError {
    fn from(e: Error) -> Self {
        MergeError::Local(e)
    }
}

impl From<rusqlite::Error> for MergeError {
    fn from(e: rusqlite::Error) -> Self {
        MergeError::Local(e.into())
    }
}

/// Merges remote bytes into a document inside the caller's transaction.
///
/// The rule that makes compaction lose nothing: a pulled change whose
/// dependencies are missing is stored in `pending_changes` in this same
/// transaction, and every later merge into the document loads those rows
/// again first, so the change is applied the moment its dependencies
/// arrive, from whichever envelope, in whatever order. The rows leave only
/// when the document misses nothing.
pub(crate) fn apply_remote_in(
    conn: &Connection,
    actor: &ActorId,
    id: &DocId,
    kind: DocKind,
    bytes: &[u8],
    relay_seq: i64,
) -> std::result::Result<Merged, MergeError> {
    let (mut doc, is_new) = match load_or_new(conn, id, kind, actor, true) {
        Ok(found) => found,
        Err(Error::WrongKind { .. }) => return Err(MergeError::Refused("wrong document kind")),
        Err(e) => return Err(MergeError::Local(e)),
    };
    let heads = doc.get_heads();
    let pending: Vec<Vec<u8>> = {
        let mut st = conn
            .prepare_cached("SELECT bytes FROM pending_changes WHERE doc_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([id.as_str()], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for chunk in &pending {
        doc.load_incremental(chunk).map_err(|source| {
            MergeError::Local(Error::Document {
                id: id.to_string(),
                source: Box::new(source),
            })
        })?;
    }
    if doc.load_incremental(bytes).is_err() {
        return Err(MergeError::Refused("damaged changes"));
    }
    let waiting = !doc.get_missing_deps(&[]).is_empty();
    let now = now_ms();
    if waiting {
        conn.execute(
            "INSERT INTO pending_changes (doc_id, kind, bytes, relay_seq, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id.as_str(), kind.as_str(), bytes, relay_seq, now],
        )?;
    } else if !pending.is_empty() {
        conn.execute("DELETE FROM pending_changes WHERE doc_id = ?1", [id.as_str()])?;
    }
    let changed = doc.get_heads() != heads;
    if changed {
        if is_new {
            conn.execute(
                "INSERT INTO documents (id, kind, snapshot, updated_at) VALUES (?1, ?2, ?3, ?4)",
                params![id.as_str(), kind.as_str(), doc.save(), now],
            )?;
        } else {
            let change = doc.save_after(&heads);
            append_change(conn, id, &change, now)?;
        }
        crate::projection::refresh(conn, id, kind, &mut doc)?;
        compact_if_needed(conn, id, &mut doc)?;
    }
    Ok(match (waiting, changed) {
        (true, _) => Merged::Waiting,
        (false, true) => Merged::Changed,
        (false, false) => Merged::Unchanged,
    })
}

pub(crate) fn load_doc_in(
    conn: &Connection,
    id: &DocId,
    actor: &ActorId,
) -> Result<Option<(DocKind, AutoCommit)>> {
    load_doc(conn, id, actor)
}

fn append_change(conn: &Connection, id: &DocId, change: &[u8], now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO document_changes (doc_id, bytes) VALUES (?1, ?2)",
        params![id.as_str(), change],
    )?;
    conn.execute(
        "UPDATE documents SET updated_at = ?2 WHERE id = ?1",
        params![id.as_str(), now],
    )?;
    Ok(())
}

/// Compacts when the incremental changes have outgrown the snapshot.
fn compact_if_needed(conn: &Connection, id: &DocId, doc: &mut AutoCommit) -> Result<()> {
    let (snap, changes): (i64, i64) = conn.query_row(
        "SELECT length(snapshot), (SELECT coalesce(sum(length(bytes)), 0) FROM document_changes WHERE doc_id = ?1)
         FROM documents WHERE id = ?1",
        [id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if changes > snap {
        write_snapshot(conn, id, doc)?;
    }
    Ok(())
}

fn write_snapshot(conn: &Connection, id: &DocId, doc: &mut AutoCommit) -> Result<()> {
    conn.execute(
        "UPDATE documents SET snapshot = ?2 WHERE id = ?1",
        params![id.as_str(), doc.save()],
    )?;
    conn.execute(
        "DELETE FROM document_changes WHERE doc_id = ?1",
        [id.as_str()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
