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
use crate::vault::{self, Dek, KeysFile, Protection, Unlock, KEYS_FILE};

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

impl Profile {
    /// The Automerge actor of this device's writes.
    pub(crate) fn actor(&self) -> &ActorId {
        &self.actor
    }
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

/// The error for a database SQLite could not read. A busy database is
/// reported as busy, not as damaged.
fn corrupt(path: &Path, e: &rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ) {
            return Error::Busy;
        }
    }
    Error::DatabaseCorrupt {
        path: path.to_owned(),
        detail: match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
            {
                "an interrupted transaction waits in its rollback journal".into()
            }
            rusqlite::Error::SqliteFailure(f, _) => format!("{:?}", f.code),
            _ => "unreadable".into(),
        },
    }
}

/// Keys a connection: the first statement on it, before anything reads
/// the file. Then reads the schema, so a wrong key fails here
/// (`WrongKey`), never later as "corrupt".
fn key_conn(conn: &Connection, path: &Path, dek: &Dek) -> Result<()> {
    conn.execute_batch(&format!("PRAGMA key = \"{}\";", dek.pragma().as_str()))
        .map_err(|e| corrupt(path, &e))?;
    // SQLCipher would log a failed page check to stderr by itself; errors
    // are reported through `Error` only.
    conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()))
        .map_err(|e| corrupt(path, &e))?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(Error::WrongKey {
                path: path.to_owned(),
            })
        }
        Err(e) => Err(corrupt(path, &e)),
    }
}

/// Owner-only permissions on the profile directory and its files
/// (umask-independent; SQLite gives `-wal`/`-shm` the database's mode,
/// set here too in case they predate it).
fn restrict(dir: &Path, path: &Path) -> Result<()> {
    vault::set_mode(dir, 0o700)?;
    vault::set_mode(path, 0o600)?;
    for s in SIDE_SUFFIXES {
        vault::set_mode(&side_file(path, s), 0o600)?;
    }
    vault::set_mode(&dir.join(KEYS_FILE), 0o600)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Up to 32 MB of decrypted pages kept (SQLite's default is 2 MB): a
    // search reads the posting lists of common characters again and again,
    // and every page read from outside the cache is decrypted and its HMAC
    // checked (BENCHMARKS.md, search at 50 MB). Freed when the store is
    // dropped at the lock.
    conn.pragma_update(None, "cache_size", -32 * 1024)?;
    Ok(())
}

/// The files SQLite keeps beside a database.
const SIDE_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Files a profile being created is built in, beside `DB_FILE`; renamed
/// into place only once complete.
const INIT_PREFIX: &str = "heartbridge.db.init-";

/// The encrypted copy a plaintext profile is exported into, beside
/// `DB_FILE`; renamed over it only once complete and its key is on disk.
const ENC_PREFIX: &str = "heartbridge.db.enc-";

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// What the first 100 bytes of a database file say, read with plain file
/// I/O: SQLite would roll back a hot journal or rebuild a WAL index as soon
/// as it opened a file, so nothing of SQLite touches a file before this.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// No file (or not a regular file).
    Absent,
    /// A file of zero bytes: what an interrupted older `init` left.
    Empty,
    /// A SQLite database with Heartbridge's `application_id`.
    Ours,
    /// A SQLite database of another application.
    Foreign,
    /// Not a SQLite database, or a truncated one.
    Damaged(&'static str),
    /// 100 bytes or more that are not a plain SQLite header: a SQLCipher
    /// database (its header is ciphertext), or a damaged file.
    Opaque,
}

fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Header::Absent),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !meta.is_file() {
        return Ok(Header::Absent);
    }
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut buf = [0u8; 100];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Ok(if n == 0 {
        Header::Empty
    } else if n < buf.len() {
        Header::Damaged("truncated header")
    } else if &buf[..16] != b"SQLite format 3\0" {
        Header::Opaque
    } else if i32::from_be_bytes([buf[68], buf[69], buf[70], buf[71]]) != APPLICATION_ID {
        Header::Foreign
    } else {
        Header::Ours
    })
}

/// A `file:` URI opening `path` immutable: SQLite then takes no lock and
/// opens, creates and writes no file at all.
#[cfg(unix)]
fn immutable_uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut uri = String::from(if bytes.starts_with(b"/") {
        "file://"
    } else {
        "file:"
    });
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Size and modification time, to notice a file changing under a check.
fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Checks a database whose header is ours on a connection that cannot
/// write: the `application_id` SQLite sees (WAL included), the schema
/// version, `quick_check`, and whether the profile row exists (returned).
///
/// When no `-wal` or `-journal` is beside the file (it was closed cleanly
/// and no one has it open), the connection is `immutable`: nothing at all
/// is created or written. Otherwise it is `SQLITE_OPEN_READ_ONLY`, which
/// never writes the database or its WAL and fails, untouched, on a hot
/// rollback journal; SQLite may create or refresh the `-shm` index of our
/// own file so as to read its WAL alongside a running writer.
fn probe(dir: &Path, path: &Path, dek: Option<&Dek>) -> Result<bool> {
    let quiet = || !side_file(path, "-wal").exists() && !side_file(path, "-journal").exists();
    #[cfg(unix)]
    if quiet() {
        let before = stamp(path);
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let result = Connection::open_with_flags(immutable_uri(path), flags)
            .map_err(|e| corrupt(path, &e))
            .and_then(|conn| probe_on(&conn, dir, path, dek));
        // Someone opened the profile meanwhile (a checkpoint may have
        // changed pages under the check): ask again, with locks.
        if quiet() && stamp(path) == before {
            return result;
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| corrupt(path, &e))?;
    probe_on(&conn, dir, path, dek)
}

fn probe_on(conn: &Connection, dir: &Path, path: &Path, dek: Option<&Dek>) -> Result<bool> {
    if let Some(dek) = dek {
        key_conn(conn, path, dek)?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| corrupt(path, &e))?;
    if app_id != APPLICATION_ID {
        return Err(Error::ProfileForeign {
            path: dir.to_owned(),
        });
    }
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| corrupt(path, &e))?;
    let known = migrations::MIGRATIONS.len() as i64;
    if found > known {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| corrupt(path, &e))?;
    if check != "ok" {
        return Err(Error::DatabaseCorrupt {
            path: path.to_owned(),
            detail: "integrity check failed".into(),
        });
    }
    if found == 0 {
        return Ok(false);
    }
    let n: i64 = conn
        .query_row("SELECT count(*) FROM profile WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(|e| corrupt(path, &e))?;
    Ok(n == 1)
}

use vault::sync_dir;

/// The points of `Store::init` after which a test stops, as a crash there
/// would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitStep {
    /// The temporary file exists, empty.
    Created,
    /// `application_id` set, WAL on.
    Configured,
    /// Schema migrated.
    Migrated,
    /// Profile row written.
    ProfileWritten,
    /// Connection closed (WAL checkpointed into the file).
    Closed,
    /// File fsynced.
    Synced,
    /// Keys file written (encrypted profiles).
    KeysWritten,
    /// Linked into place as `DB_FILE`.
    Linked,
    /// Temporary name removed.
    TempRemoved,
}

#[cfg(test)]
pub(crate) const INIT_STEPS: [InitStep; 9] = [
    InitStep::Created,
    InitStep::Configured,
    InitStep::Migrated,
    InitStep::ProfileWritten,
    InitStep::Closed,
    InitStep::Synced,
    InitStep::KeysWritten,
    InitStep::Linked,
    InitStep::TempRemoved,
];

fn insert_profile(conn: &mut Connection, name: &str) -> Result<()> {
    let device: [u8; 16] = rand::random();
    let actor: [u8; 16] = rand::random();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT OR IGNORE INTO profile (id, name, device_id, actor_id, created_at) VALUES (1, ?1, ?2, ?3, ?4)",
        params![name, hex::encode(device), hex::encode(actor), now_ms()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Whether a file in a directory without a profile is what an interrupted
/// `init` left: its temporary files, an empty `DB_FILE`, and side files of
/// a `DB_FILE` that holds nothing.
fn is_init_leftover(name: &str) -> bool {
    name.starts_with(INIT_PREFIX)
        || name.starts_with(ENC_PREFIX)
        || name == DB_FILE
        || name == KEYS_FILE
        || name.starts_with(vault::KEYS_TMP_PREFIX)
        || name == vault::LOCK_FILE
        || name == vault::ERASED_FILE
        || SIDE_SUFFIXES
            .iter()
            .any(|s| name.strip_suffix(s) == Some(DB_FILE))
}

/// Removes what an interrupted `init` left in `dir`: its temporary files
/// and, with `db_too` (only when `DB_FILE` is absent or empty), `DB_FILE`
/// and its side files.
fn remove_init_leftovers(dir: &Path, db_too: bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(INIT_PREFIX) || (db_too && is_init_leftover(&name)) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&entry.path())(e)),
            }
        }
    }
    Ok(())
}

/// How a profile just made with `protection` is opened.
fn unlock_for(protection: &Protection) -> Unlock {
    match &protection.pin {
        Some(pin) => Unlock::Pin(pin.clone()),
        None => Unlock::KeyStore,
    }
}

/// How the store learns the free space of a directory (injected in tests).
pub(crate) type FreeSpace = fn(&Path) -> std::io::Result<u64>;

fn fs_free_space(dir: &Path) -> std::io::Result<u64> {
    fs4::available_space(dir)
}

/// The protection a plaintext profile gets when it is opened with `unlock`
/// (default limits and cost).
fn protection_for(unlock: &Unlock) -> Protection {
    match unlock {
        Unlock::Pin(pin) => Protection::pin(pin.as_str()),
        Unlock::KeyStore => Protection::keystore(),
    }
}

/// The points of an encryption of a plaintext profile after which a test
/// stops, as a crash there would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncryptStep {
    /// The encrypted copy is complete and fsynced.
    Exported,
    /// The keys file is beside the still-plaintext database.
    KeysWritten,
    /// The copy replaced the database.
    Renamed,
}

/// The first 16 bytes of a database file (SQLCipher's salt).
fn db_salt(path: &Path) -> Result<[u8; 16]> {
    use std::io::Read;
    let mut salt = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(io_err(path))?;
    Ok(salt)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Encrypts the plaintext profile database `path` (already probed: ours)
/// with `dek`: `sqlcipher_export` into `ENC_PREFIX*` in one transaction,
/// fsync, the keys file (`keys`, with the new salt), then a
/// rename over `DB_FILE`, the old side files removed, the directory
/// fsynced. A crash leaves the plaintext profile (no keys file: it is
/// encrypted again on the next open) or the plaintext profile with its keys
/// file (the next open finishes), or the encrypted one. Nothing is touched
/// when the disk has less than twice the database's size free.
fn encrypt_plaintext(
    dir: &Path,
    path: &Path,
    dek: &Dek,
    keys: &mut KeysFile,
    free_space: FreeSpace,
    crash_at: Option<EncryptStep>,
) -> Result<()> {
    let crash = |step| crash_at == Some(step);
    // Copies an interrupted run left go first: they count as free space.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(ENC_PREFIX) {
                remove_if_exists(&entry.path())?;
            }
        }
    }
    let size = file_len(path) + file_len(&side_file(path, "-wal"));
    let free = free_space(dir).map_err(io_err(dir))?;
    let needed = size.saturating_mul(2);
    if free < needed {
        return Err(Error::NoSpace { needed, free });
    }
    restrict(dir, path)?;
    let tmp = dir.join(format!(
        "{ENC_PREFIX}{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    drop(vault::create_private(&tmp)?);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| corrupt(path, &e))?;
    configure(&conn)?;
    let tmp_str = tmp.to_str().ok_or_else(|| Error::InvalidValue {
        field: "profile directory",
        value: "(not UTF-8)".into(),
        allowed: "a UTF-8 path",
    })?;
    conn.execute(
        "ATTACH DATABASE ?1 AS enc KEY ?2",
        params![tmp_str, dek.pragma().as_str()],
    )?;
    // WAL from the start: switching a database to WAL later writes its
    // header through a rollback journal, which a kill would leave hot.
    conn.query_row("PRAGMA enc.journal_mode = WAL", [], |_| Ok(()))?;
    let user_version: i64 = conn.query_row("PRAGMA main.user_version", [], |r| r.get(0))?;
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.query_row("SELECT sqlcipher_export('enc')", [], |_| Ok(()))?;
        tx.execute_batch(&format!(
            "PRAGMA enc.user_version = {user_version}; PRAGMA enc.application_id = {APPLICATION_ID};"
        ))?;
        tx.commit()?;
    }
    conn.execute_batch("DETACH DATABASE enc")?;
    for s in SIDE_SUFFIXES {
        if file_len(&side_file(&tmp, s)) > 0 {
            return Err(Error::DatabaseCorrupt {
                path: tmp.clone(),
                detail: "the encrypted copy was not checkpointed".into(),
            });
        }
        remove_if_exists(&side_file(&tmp, s))?;
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)?;
    if file_len(&side_file(path, "-wal")) > 0 {
        return Err(Error::DatabaseCorrupt {
            path: path.to_owned(),
            detail: "write-ahead log not checkpointed".into(),
        });
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err(&tmp))?;
    if crash(EncryptStep::Exported) {
        return Ok(());
    }
    keys.set_db_salt(db_salt(&tmp)?);
    keys.write(dir)?;
    if crash(EncryptStep::KeysWritten) {
        return Ok(());
    }
    // The plaintext side files go before the rename: a WAL of the old file
    // must never meet the new one. (It was checkpointed and is empty.)
    for s in SIDE_SUFFIXES {
        remove_if_exists(&side_file(path, s))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)?;
    if crash(EncryptStep::Renamed) {
        return Ok(());
    }
    Ok(())
}

impl Store {
    /// Creates a new profile in `dir` (created if needed, mode 0700; it
    /// must be empty or hold nothing but what an interrupted `init` left),
    /// encrypted with a new random key that `protection` wraps in the keys
    /// file (`KEYS_FILE`).
    ///
    /// The database is built under a temporary name in `dir`, checkpointed
    /// and fsynced, its keys file written, then it is linked into place as
    /// `DB_FILE` (never replacing one) and the directory fsynced: a crash
    /// anywhere leaves either no profile (the next `init` removes the
    /// leftovers and starts again) or a complete one. A Heartbridge
    /// database without its profile row (an older `init` interrupted) is
    /// finished in place and encrypted.
    pub fn init(dir: &Path, name: &str, protection: &Protection) -> Result<Store> {
        Store::init_until(dir, name, protection, None)?.ok_or(Error::Empty { what: "profile" })
    }

    /// An unencrypted profile, as made before issue 8 (tests of the
    /// migration only).
    pub(crate) fn init_plaintext(dir: &Path, name: &str) -> Result<Store> {
        Store::init_inner(dir, name, None, None)?.ok_or(Error::Empty { what: "profile" })
    }

    /// `init`, stopping as a crash would right after `crash_at` (tests
    /// only pass `Some`); `None` then.
    pub(crate) fn init_until(
        dir: &Path,
        name: &str,
        protection: &Protection,
        crash_at: Option<InitStep>,
    ) -> Result<Option<Store>> {
        Store::init_inner(dir, name, Some(protection), crash_at)
    }

    fn init_inner(
        dir: &Path,
        name: &str,
        protection: Option<&Protection>,
        crash_at: Option<InitStep>,
    ) -> Result<Option<Store>> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Empty { what: "name" });
        }
        if let Some(p) = protection {
            if p.pin.as_ref().is_some_and(|pin| pin.is_empty()) {
                return Err(Error::Empty {
                    what: "the PIN or passphrase",
                });
            }
        }
        let path = dir.join(DB_FILE);
        let has_keys = file_len(&dir.join(KEYS_FILE)) > 0;
        match read_header(&path)? {
            Header::Absent | Header::Empty => {}
            Header::Ours if has_keys => {
                // A migration waits to be finished: the profile exists.
                return Err(Error::ProfileExists {
                    path: dir.to_owned(),
                });
            }
            Header::Ours => {
                if probe(dir, &path, None)? {
                    remove_init_leftovers(dir, false)?;
                    return Err(Error::ProfileExists {
                        path: dir.to_owned(),
                    });
                }
                let mut conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| corrupt(&path, &e))?;
                configure(&conn)?;
                migrations::migrate(&mut conn, &path)?;
                insert_profile(&mut conn, name)?;
                drop(conn);
                return match protection {
                    Some(p) => {
                        Store::open_inner(dir, &unlock_for(p), Some(p), fs_free_space).map(Some)
                    }
                    None => Store::open_plain(dir, &path).map(Some),
                };
            }
            Header::Opaque if has_keys => {
                remove_init_leftovers(dir, false)?;
                return Err(Error::ProfileExists {
                    path: dir.to_owned(),
                });
            }
            Header::Foreign => {
                return Err(Error::ProfileForeign {
                    path: dir.to_owned(),
                })
            }
            Header::Opaque => {
                return Err(Error::DatabaseCorrupt {
                    path,
                    detail: "not a SQLite database file".into(),
                })
            }
            Header::Damaged(detail) => {
                return Err(Error::DatabaseCorrupt {
                    path,
                    detail: detail.into(),
                })
            }
        }
        let created = !dir.exists();
        if !created {
            for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
                let entry = entry.map_err(io_err(dir))?;
                if !is_init_leftover(&entry.file_name().to_string_lossy()) {
                    return Err(Error::ProfileForeign {
                        path: dir.to_owned(),
                    });
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        vault::set_mode(dir, 0o700)?;
        remove_init_leftovers(dir, true)?;

        let tmp = dir.join(format!(
            "{INIT_PREFIX}{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let crash = |step| crash_at == Some(step);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        // Owner-only before SQLite writes a byte (its -wal and -shm take
        // this mode).
        drop(vault::create_private(&tmp)?);
        let mut conn = Connection::open_with_flags(&tmp, flags)?;
        let dek = protection.map(|_| Dek::random());
        if let Some(dek) = &dek {
            key_conn(&conn, &tmp, dek)?;
        }
        if crash(InitStep::Created) {
            // Leave it open, as a killed process would.
            std::mem::forget(conn);
            return Ok(None);
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        configure(&conn)?;
        if crash(InitStep::Configured) {
            std::mem::forget(conn);
            return Ok(None);
        }
        migrations::migrate(&mut conn, &tmp)?;
        if crash(InitStep::Migrated) {
            std::mem::forget(conn);
            return Ok(None);
        }
        insert_profile(&mut conn, name)?;
        if crash(InitStep::ProfileWritten) {
            std::mem::forget(conn);
            return Ok(None);
        }
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| e)?;
        let wal = side_file(&tmp, "-wal");
        if std::fs::metadata(&wal)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            return Err(Error::DatabaseCorrupt {
                path: tmp,
                detail: "write-ahead log not checkpointed".into(),
            });
        }
        if crash(InitStep::Closed) {
            return Ok(None);
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        if crash(InitStep::Synced) {
            return Ok(None);
        }
        // The keys file before the database: a database is never in place
        // without the key that opens it.
        let mut salt = None;
        if let (Some(p), Some(dek)) = (protection, &dek) {
            let mut keys = KeysFile::new(p, dek)?;
            salt = Some(db_salt(&tmp)?);
            keys.set_db_salt(db_salt(&tmp)?);
            keys.write(dir)?;
        }
        if crash(InitStep::KeysWritten) {
            return Ok(None);
        }
        // A link never replaces a profile another process just created.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::ProfileExists {
                    path: dir.to_owned(),
                });
            }
            // A file system without hard links.
            Err(_) if !path.exists() => std::fs::rename(&tmp, &path).map_err(io_err(&path))?,
            Err(e) => return Err(io_err(&path)(e)),
        }
        if crash(InitStep::Linked) {
            return Ok(None);
        }
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        if crash(InitStep::TempRemoved) {
            return Ok(None);
        }
        sync_dir(dir)?;
        if created {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        match &dek {
            Some(dek) => Store::open_keyed(dir, &path, dek, salt).map(Some),
            None => Store::open_plain(dir, &path).map(Some),
        }
    }

    /// Opens the profile in `dir` with `unlock`.
    ///
    /// Refuses, without writing a byte to the database, a missing profile,
    /// a database that is not Heartbridge's, and a damaged file. A profile
    /// with a keys file: the key is unwrapped (a wrong PIN is counted
    /// durably before it is checked and reported with the tries left; the
    /// last allowed wrong PIN erases the profile), then the database is
    /// checked on a keyed connection that cannot write (see `probe`)
    /// before a read-write connection, WAL mode or migrations touch it. A
    /// plaintext profile from before encryption is encrypted first, under
    /// the PIN given (or the key store), default limits.
    pub fn open(dir: &Path, unlock: &Unlock) -> Result<Store> {
        Store::open_inner(dir, unlock, None, fs_free_space)
    }

    /// `open`, with the free space read by `free_space` (tests).
    #[cfg(test)]
    pub(crate) fn open_with_free_space(
        dir: &Path,
        unlock: &Unlock,
        free_space: FreeSpace,
    ) -> Result<Store> {
        Store::open_inner(dir, unlock, None, free_space)
    }

    /// Encrypts a plaintext profile stopping as a crash would right after
    /// `step` (tests).
    #[cfg(test)]
    pub(crate) fn encrypt_until(dir: &Path, unlock: &Unlock, step: EncryptStep) -> Result<()> {
        let path = dir.join(DB_FILE);
        assert!(probe(dir, &path, None)?);
        let dek = Dek::random();
        let mut keys = KeysFile::new(
            &protection_for(unlock).with_kdf(crate::testing::TEST_KDF),
            &dek,
        )?;
        encrypt_plaintext(dir, &path, &dek, &mut keys, fs_free_space, Some(step))
    }

    fn open_inner(
        dir: &Path,
        unlock: &Unlock,
        protection: Option<&Protection>,
        free_space: FreeSpace,
    ) -> Result<Store> {
        let path = dir.join(DB_FILE);
        if vault::erased(dir) {
            // Finish an erase that was interrupted; say what happened.
            vault::destroy(dir, KeysFile::read(dir).ok().flatten().as_ref())?;
            return Err(Error::ProfileDestroyed);
        }
        let missing = || Error::ProfileMissing {
            path: dir.to_owned(),
        };
        let header = read_header(&path)?;
        let keys = match header {
            Header::Absent | Header::Empty => return Err(missing()),
            Header::Foreign => {
                return Err(Error::ProfileForeign {
                    path: dir.to_owned(),
                })
            }
            Header::Damaged(detail) => {
                return Err(Error::DatabaseCorrupt {
                    path,
                    detail: detail.into(),
                })
            }
            Header::Ours | Header::Opaque => KeysFile::read(dir)?,
        };
        match (header, keys) {
            (Header::Opaque, None) => Err(Error::DatabaseCorrupt {
                path,
                detail: "not a SQLite database file".into(),
            }),
            (Header::Opaque, Some(_)) => {
                let (dek, keys) = vault::unlock_dek(dir, unlock)?;
                Store::open_keyed(dir, &path, &dek, keys.db_salt())
            }
            // A plaintext profile: encrypt it.
            (_, None) => {
                if !probe(dir, &path, None)? {
                    return Err(missing());
                }
                let protection = match protection {
                    Some(p) => p.clone(),
                    None => protection_for(unlock),
                };
                let dek = Dek::random();
                let mut keys = KeysFile::new(&protection, &dek)?;
                encrypt_plaintext(dir, &path, &dek, &mut keys, free_space, None)?;
                Store::open_keyed(dir, &path, &dek, keys.db_salt())
            }
            // Keys beside a plaintext database: finish the migration.
            (_, Some(_)) => {
                if !probe(dir, &path, None)? {
                    return Err(missing());
                }
                let (dek, mut keys) = vault::unlock_dek(dir, unlock)?;
                encrypt_plaintext(dir, &path, &dek, &mut keys, free_space, None)?;
                Store::open_keyed(dir, &path, &dek, keys.db_salt())
            }
        }
    }

    /// Opens the encrypted database with its key. `salt`: the database's
    /// first 16 bytes when its keys were written; if they are unchanged
    /// but the key does not open it, it is damaged, not another database.
    fn open_keyed(dir: &Path, path: &Path, dek: &Dek, salt: Option<[u8; 16]>) -> Result<Store> {
        let found = match probe(dir, path, Some(dek)) {
            Err(Error::WrongKey { .. }) if salt.is_some() && db_salt(path).ok() == salt => {
                return Err(Error::DatabaseCorrupt {
                    path: path.to_owned(),
                    detail: "its first page does not decrypt with the profile's key".into(),
                })
            }
            other => other?,
        };
        if !found {
            return Err(Error::ProfileMissing {
                path: dir.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| corrupt(path, &e))?;
        key_conn(&conn, path, dek)?;
        Store::finish_open(dir, path, conn)
    }

    fn open_plain(dir: &Path, path: &Path) -> Result<Store> {
        if !probe(dir, path, None)? {
            return Err(Error::ProfileMissing {
                path: dir.to_owned(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| corrupt(path, &e))?;
        Store::finish_open(dir, path, conn)
    }

    fn finish_open(dir: &Path, path: &Path, mut conn: Connection) -> Result<Store> {
        let path = path.to_owned();
        configure(&conn)?;
        restrict(dir, &path)?;
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
        let mut store = Store {
            conn,
            path,
            profile: Profile {
                name: profile.0,
                device_id: profile.1,
                actor: ActorId::from(actor),
            },
        };
        // A profile upgraded from an older version searches with the
        // current index at once (one query when nothing is stale).
        store.refresh_search_index()?;
        Ok(store)
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
        self.write_also(id, kind, create, what, f, |_| Ok(()))
    }

    /// [`Store::write`], plus `also` in the same transaction when the
    /// document changed (a device-local count that must not drift from it).
    pub(crate) fn write_also<T>(
        &mut self,
        id: &DocId,
        kind: DocKind,
        create: bool,
        what: &str,
        f: impl FnOnce(&mut AutoCommit, &Profile) -> Result<T>,
        also: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<(T, Written)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (value, written) = write_in(&tx, &self.profile, id, kind, create, what, f)?;
        if let Written::Changed(_) = written {
            also(&tx)?;
        }
        tx.commit()?;
        Ok((value, written))
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
        let n: i64 = self.conn.query_row(
            // Key grants and statistics facts are bookkeeping the sync
            // makes, not changes the volunteer made: not counted.
            "SELECT count(*) FROM outbox WHERE kind NOT IN ('grants', 'facts')",
            [],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Removes acknowledged changes from the outbox (durably).
    pub fn ack_outbox(&mut self, seqs: &[i64]) -> Result<()> {
        self.immediate(|tx| {
            let mut stmt = tx.prepare("DELETE FROM outbox WHERE seq = ?1")?;
            for s in seqs {
                stmt.execute([s])?;
            }
            Ok(())
        })
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
        DocKind::TeamSettings => "team settings",
        DocKind::Grants => "key grants",
        DocKind::Facts => "statistics facts",
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

/// A local change to a document inside the caller's transaction: the
/// change is stored, queued in the outbox, and the projections refreshed.
pub(crate) fn write_in<T>(
    tx: &Connection,
    profile: &Profile,
    id: &DocId,
    kind: DocKind,
    create: bool,
    what: &str,
    f: impl FnOnce(&mut AutoCommit, &Profile) -> Result<T>,
) -> Result<(T, Written)> {
    let (mut doc, is_new) = load_or_new(tx, id, kind, &profile.actor, create)?;
    let heads = doc.get_heads();
    let value = f(&mut doc, profile)?;
    let message = serde_json::json!({ "by": profile.name, "what": what }).to_string();
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
        append_change(tx, id, &change, now)?;
    }
    tx.execute(
        "INSERT INTO outbox (doc_id, kind, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id.as_str(), kind.as_str(), change, now],
    )?;
    crate::projection::refresh(tx, id, kind, &mut doc)?;
    compact_if_needed(tx, id, &mut doc)?;
    Ok((value, Written::Changed(hash)))
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
        conn.execute(
            "DELETE FROM pending_changes WHERE doc_id = ?1",
            [id.as_str()],
        )?;
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

/// Brings a bare database to the newest schema (unit tests of modules that
/// work on tables, not on a whole profile).
#[cfg(test)]
pub(crate) fn migrate_for_tests(conn: &mut Connection, path: &std::path::Path) {
    migrations::migrate(conn, path).expect("migrate");
}
