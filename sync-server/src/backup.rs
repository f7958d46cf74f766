//! `heartbridge-relay backup` and `restore` for a SQLite relay database.
//!
//! A backup is `VACUUM INTO` a new file: one read transaction, so the copy
//! is consistent (every commit before it, none after) while the relay goes
//! on serving. The relay's database is not encrypted at rest: it holds only
//! sealed envelopes, token hashes and public keys, so the backup is a plain
//! SQLite file like the database itself.
//!
//! A restore first checks the backup on a copy (it opens, migrates and
//! passes `PRAGMA integrity_check`), then writes it into the target with
//! SQLite's backup API while holding the target's exclusive lock. A relay
//! that has the target open holds a shared lock on it as long as it runs
//! (write-ahead logging), so a restore over a served database is refused
//! instead of pulling it from under the relay.
//!
//! The restored database's log gets a new id (`Storage::new_log_id`), so
//! devices notice that its seqs went back in time (ARCHITECTURE.md, "The
//! log id").
//!
//! PostgreSQL databases are backed up with `pg_dump` ([`pg_commands`]);
//! after `pg_restore`, `heartbridge-relay new-log-id` does the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::config::PgTarget;
use crate::storage::{SqliteStorage, Storage};

/// What a backup or a restore found in the file it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub teams: u64,
    pub devices: u64,
    /// Envelopes held, superseded ones included.
    pub envelopes: u64,
    /// The id of the file's log (a restore makes it anew).
    pub log_id: Option<crate::storage::LogId>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: name a new file (a backup never overwrites one)")]
    OutExists(PathBuf),
    #[error("{0} does not exist: name the relay's database file")]
    NoDatabase(PathBuf),
    #[error("{0} does not exist: name a file `heartbridge-relay backup` made")]
    NoBackup(PathBuf),
    #[error("{0} exists: restore into a new path, or pass --force to replace it (stop every relay using it first)")]
    TargetExists(PathBuf),
    #[error("{0} is in use (a relay has it open): stop every relay using it, then restore again")]
    InUse(PathBuf),
    #[error("{path} is not a usable relay database ({why}); nothing was restored")]
    BadBackup { path: PathBuf, why: String },
    #[error("{what} {path}: {source}")]
    Sqlite {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn sqlite_err(what: &'static str, path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Sqlite { what, path, source }
}

/// Copies the SQLite relay database `db` into the new file `out`,
/// consistently, while relays keep serving it.
pub fn backup_sqlite(db: &Path, out: &Path) -> Result<BackupSummary, BackupError> {
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db.to_owned()));
    }
    if out.exists() {
        return Err(BackupError::OutExists(out.to_owned()));
    }
    // Read-write without create: a wrong path does not leave an empty
    // database behind, and a WAL database opens whatever its -shm's state.
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err("could not open", db))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(sqlite_err("could not open", db))?;
    let target = out.to_str().ok_or_else(|| BackupError::Io {
        what: "the backup path is not UTF-8:",
        path: out.to_owned(),
        source: std::io::Error::other("not UTF-8"),
    })?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(sqlite_err("could not write the backup", out))?;
    drop(conn);
    summarize(out)
}

fn summarize(path: &Path) -> Result<BackupSummary, BackupError> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_err("could not read", path))?;
    let count = |table: &str| -> Result<u64, BackupError> {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
        .map_err(sqlite_err("could not count rows in", path))
    };
    // A backup of a database no relay of this version opened yet has none.
    let log_id = c
        .query_row("SELECT log_id FROM relay_log", [], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .map(crate::storage::LogId);
    Ok(BackupSummary {
        teams: count("teams")?,
        devices: count("devices")?,
        envelopes: count("envelopes")?,
        log_id,
    })
}

/// Restores the backup `from` into the SQLite database `db`: a new file, or
/// with `force` one that no relay has open.
pub fn restore_sqlite(from: &Path, db: &Path, force: bool) -> Result<BackupSummary, BackupError> {
    if !from.is_file() {
        return Err(BackupError::NoBackup(from.to_owned()));
    }
    let exists = db.exists();
    if exists && !force {
        return Err(BackupError::TargetExists(db.to_owned()));
    }
    // Check a copy: opening migrates, and the backup stays as it was made.
    let check = sibling(db, "restore-check");
    let _cleanup = RemoveOnDrop(vec![
        check.clone(),
        sibling(db, "restore-check-wal"),
        sibling(db, "restore-check-shm"),
    ]);
    std::fs::copy(from, &check).map_err(|source| BackupError::Io {
        what: "could not copy the backup next to",
        path: db.to_owned(),
        source,
    })?;
    verify(&check, from)?;

    let mut target = Connection::open(db).map_err(sqlite_err("could not open", db))?;
    // Exclusive locking mode keeps the lock until the connection closes;
    // a relay holding the database keeps it from being granted.
    let locked = target
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;")
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                BackupError::InUse(db.to_owned())
            }
            _ => sqlite_err("could not lock", db)(e),
        });
    if let Err(e) = locked {
        drop(target);
        if !exists {
            let _ = std::fs::remove_file(db);
        }
        return Err(e);
    }
    target
        .restore(
            rusqlite::MAIN_DB,
            &check,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(sqlite_err("could not write the restored database", db))?;
    drop(target);
    // The restored database opens as a relay opens it, and its log gets a
    // new id: its seqs go on from where the backup ended, numbers devices
    // may have seen already with other envelopes, and what they pushed
    // after the backup is gone. Devices that see the new id pull the log
    // from its start and push what they hold again.
    SqliteStorage::open(db)
        .and_then(|s| {
            s.check()?;
            s.new_log_id(crate::unix_now())
        })
        .map_err(|e| BackupError::BadBackup {
            path: db.to_owned(),
            why: e.to_string(),
        })?;
    summarize(db)
}

fn verify(copy: &Path, from: &Path) -> Result<(), BackupError> {
    let bad = |why: String| BackupError::BadBackup {
        path: from.to_owned(),
        why,
    };
    {
        let c = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| bad(e.to_string()))?;
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| bad(e.to_string()))?;
        if ok != "ok" {
            return Err(bad(format!("integrity check: {ok}")));
        }
        let teams: Result<i64, _> = c.query_row("SELECT count(*) FROM teams", [], |r| r.get(0));
        teams.map_err(|_| bad("it has no relay tables".into()))?;
    }
    let s = SqliteStorage::open(copy).map_err(|e| bad(e.to_string()))?;
    s.check().map_err(|e| bad(e.to_string()))?;
    Ok(())
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    db.with_file_name(name)
}

struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The `pg_dump` and `pg_restore` commands for a PostgreSQL relay database
/// (`FILE` where the dump goes), without the password: give it with
/// `PGPASSFILE` or `PGPASSWORD`.
pub fn pg_commands(target: &PgTarget) -> (String, String) {
    let c = target.config();
    let mut conn = String::new();
    if let Some(host) = c.get_hosts().first() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => conn.push_str(&format!(" -h {h}")),
            tokio_postgres::config::Host::Unix(p) => conn.push_str(&format!(" -h {}", p.display())),
        }
    }
    if let Some(port) = c.get_ports().first() {
        conn.push_str(&format!(" -p {port}"));
    }
    if let Some(user) = c.get_user() {
        conn.push_str(&format!(" -U {user}"));
    }
    let db = c.get_dbname().unwrap_or("heartbridge");
    (
        format!("pg_dump -Fc --no-owner{conn} -d {db} -f FILE"),
        format!(
            "pg_restore --exit-on-error --single-transaction --no-owner{conn} -d NEW_EMPTY_DATABASE FILE"
        ),
    )
}
