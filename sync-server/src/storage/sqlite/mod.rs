//! [`Storage`] on SQLite: WAL, `synchronous = FULL`, one write connection and
//! a small pool of read-only connections.
//!
//! The write connection is taken by [`SqliteStorage::commit`] (called only by
//! the group-commit writer thread, see `crate::writer`) and briefly by the
//! rare administrative writes (claim, join, invite, revoke). Reads (auth,
//! pull, members, gauges) never wait for it: WAL readers see the last commit.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use heartbridge_proto::{Member, Role, TeamId};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

mod blobs;
mod log;
mod usage;

use super::migrations;
use super::{
    Compaction, Device, DeviceId, Enrollment, Gauges, JobResult, NewInvite, Page, PullQuery,
    PushJob, Storage, TeamState, TeamSummary, TeamUsage, Undone,
};
use crate::error::{Refusal, StoreError};
use log::seq_u64;

/// How long a connection waits for another process's lock (an operator
/// command while the relay runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// The SQLite storage.
pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves no open transaction behind
    // (rusqlite rolls back on drop), so the connection is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStorage {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Two processes opening a brand-new database at once (the relay
        // starting while an operator runs `team create`) can both try to
        // switch it to WAL; SQLite then answers BUSY at once instead of
        // waiting. Such an open is retried, briefly and boundedly.
        let mut attempt = 0u32;
        loop {
            match Self::open_once(path) {
                Err(StoreError::Open {
                    source: rusqlite::Error::SqliteFailure(f, _),
                    ..
                }) if f.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 50 => {
                    attempt += 1;
                    #[allow(clippy::disallowed_methods)]
                    // a bounded retry backoff, not a wait in a test
                    std::thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL makes a commit one append and one fsync, and lets readers run
        // beside the writer; FULL makes that fsync happen before commit returns.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
        )
        .map_err(open_err)?;
        migrations::migrate(&mut conn, path)?;
        Ok(SqliteStorage {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let idle = lock(&self.readers).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let open_err = |source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                };
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let c = Connection::open_with_flags(&self.path, flags).map_err(open_err)?;
                c.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
                c
            }
        };
        Ok(Reader {
            conn: Some(conn),
            pool: &self.readers,
        })
    }
}

/// A pooled read connection, returned to the pool on drop.
struct Reader<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl Reader<'_> {
    fn conn(&mut self) -> &mut Connection {
        self.conn
            .as_mut()
            .expect("a reader holds its connection until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = lock(self.pool);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

fn role_from(s: &str) -> Result<Role, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt { what: "role" })
}

fn id16(v: Vec<u8>, what: &'static str) -> Result<[u8; 16], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { what })
}

fn key32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { what })
}

fn opt_key32(v: Option<Vec<u8>>, what: &'static str) -> Result<Option<[u8; 32]>, StoreError> {
    v.map(|v| key32(v, what)).transpose()
}

/// The team's next member seq (every enrollment and revocation takes one).
fn next_member_seq(tx: &Connection, team: &TeamId) -> Result<i64, StoreError> {
    tx.query_row(
        "UPDATE teams SET member_seq = member_seq + 1 WHERE id = ?1 RETURNING member_seq",
        [team.0],
        |r| r.get(0),
    )
    .map_err(StoreError::sqlite("bump a team's member seq"))
}

fn begin<'c>(conn: &'c mut Connection, op: &'static str) -> Result<Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(op))
}

fn insert_device(tx: &Connection, e: &Enrollment, role: Role) -> Result<Device, StoreError> {
    let seq = next_member_seq(tx, &e.team)?;
    let k = &e.keys;
    tx.execute(
        "INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at, enrollment_id, sign_pk, kx_pk, key_epoch, join_proof, member_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![e.device.0, e.team.0, role.as_str(), e.name_sealed, e.device_token_hash, e.now, e.enrollment_id, k.sign_pk, k.kx_pk, k.epoch, k.proof, seq],
    )
    .map_err(StoreError::sqlite("enroll a device"))?;
    Ok(Device {
        id: e.device,
        team: e.team,
        role,
        revoked: false,
        sign_pk: Some(k.sign_pk),
    })
}

/// An enrollment retried after its answer was lost: if `redeemed_by` (the
/// device that redeemed the token) was enrolled with this enrollment's id,
/// and the key check is the team's, gives that device the new token and
/// returns it. `None` when this is not such a retry.
fn retried(
    tx: &Connection,
    e: &Enrollment,
    redeemed_by: Option<Vec<u8>>,
    team_key_check: Option<&str>,
) -> Result<Option<Device>, StoreError> {
    let (Some(eid), Some(device)) = (e.enrollment_id.as_deref(), redeemed_by) else {
        return Ok(None);
    };
    if team_key_check != Some(e.key_check.as_str()) {
        return Ok(None);
    }
    type Row = (String, bool, Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<Row> = tx
        .query_row(
            "SELECT role, revoked, sign_pk, kx_pk FROM devices WHERE id = ?1 AND team_id = ?2 AND enrollment_id = ?3",
            params![device, e.team.0, eid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(StoreError::sqlite("find a retried enrollment"))?;
    let Some((role, revoked, sign_pk, kx_pk)) = row else {
        return Ok(None);
    };
    // The device stored its keys before it sent the first attempt: a retry
    // with other keys is someone else holding the token and the id.
    if sign_pk.as_deref() != Some(&e.keys.sign_pk[..])
        || kx_pk.as_deref() != Some(&e.keys.kx_pk[..])
    {
        return Ok(None);
    }
    if revoked {
        return Err(StoreError::Refused(Refusal::Revoked));
    }
    // The lost token dies here: only the new one's hash is kept.
    tx.execute(
        "UPDATE devices SET token_hash = ?1 WHERE id = ?2",
        params![e.device_token_hash, device],
    )
    .map_err(StoreError::sqlite("replace a device token"))?;
    Ok(Some(Device {
        id: DeviceId(id16(device, "devices.id")?),
        team: e.team,
        role: role_from(&role)?,
        revoked: false,
        sign_pk: Some(e.keys.sign_pk),
    }))
}

impl Storage for SqliteStorage {
    fn check(&self) -> Result<(), StoreError> {
        let mut r = self.reader()?;
        r.conn()
            .query_row("SELECT count(*) FROM teams", [], |r| r.get::<_, i64>(0))
            .map_err(StoreError::sqlite("check the database"))?;
        Ok(())
    }

    fn log_id(&self) -> Result<super::LogId, StoreError> {
        let mut r = self.reader()?;
        let id: Vec<u8> = r
            .conn()
            .query_row("SELECT log_id FROM relay_log", [], |r| r.get(0))
            .map_err(StoreError::sqlite("read the log id"))?;
        Ok(super::LogId(id16(id, "relay_log.log_id")?))
    }

    fn new_log_id(&self, now: i64) -> Result<super::LogId, StoreError> {
        let id = super::LogId(rand::random());
        let n = self
            .writer()
            .execute(
                "UPDATE relay_log SET log_id = ?1, made_at = ?2",
                params![id.0, now],
            )
            .map_err(StoreError::sqlite("make a new log id"))?;
        if n != 1 {
            return Err(StoreError::Corrupt {
                what: "relay_log (not one row)",
            });
        }
        Ok(id)
    }

    fn create_team(
        &self,
        team: TeamId,
        name: &str,
        lead_token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "INSERT INTO teams (id, name, lead_token_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![team.0, name, lead_token_hash, now],
            )
            .map_err(StoreError::sqlite("create a team"))?;
        Ok(())
    }

    fn teams(&self) -> Result<Vec<TeamSummary>, StoreError> {
        let mut r = self.reader()?;
        let conn = r.conn();
        let err = StoreError::sqlite("list teams");
        let mut stmt = conn
            .prepare(
                "SELECT t.id, t.name, t.lead_token_used, t.created_at,
                        (SELECT count(*) FROM devices d WHERE d.team_id = t.id AND d.revoked = 0),
                        (SELECT count(*) FROM envelopes e WHERE e.team_id = t.id AND e.superseded_at IS NULL)
                 FROM teams t ORDER BY t.created_at, t.id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(StoreError::sqlite("list teams"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, claimed, created_at, devices, envelopes) =
                row.map_err(StoreError::sqlite("list teams"))?;
            out.push(TeamSummary {
                team_id: TeamId(id16(id, "teams.id")?).to_hex(),
                name,
                claimed,
                devices: devices as u64,
                envelopes: envelopes as u64,
                created_at,
            });
        }
        Ok(out)
    }

    fn team_device(&self, team: TeamId, device: [u8; 16]) -> Result<Option<Device>, StoreError> {
        let mut r = self.reader()?;
        let row = r
            .conn()
            .prepare_cached(
                "SELECT role, revoked, sign_pk FROM devices WHERE id = ?1 AND team_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![device, team.0], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })
                .optional()
            })
            .map_err(StoreError::sqlite("look up a team's device"))?;
        row.map(|(role, revoked, sign_pk)| {
            Ok(Device {
                id: DeviceId(device),
                team,
                role: role_from(&role)?,
                revoked,
                sign_pk: opt_key32(sign_pk, "devices.sign_pk")?,
            })
        })
        .transpose()
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>, StoreError> {
        let mut r = self.reader()?;
        let row = r
            .conn()
            .prepare_cached(
                "SELECT id, team_id, role, revoked, sign_pk FROM devices WHERE token_hash = ?1",
            )
            .and_then(|mut s| {
                s.query_row([token_hash], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                    ))
                })
                .optional()
            })
            .map_err(StoreError::sqlite("look up a device token"))?;
        row.map(|(id, team, role, revoked, sign_pk)| {
            Ok(Device {
                id: DeviceId(id16(id, "devices.id")?),
                team: TeamId(id16(team, "devices.team_id")?),
                role: role_from(&role)?,
                revoked,
                sign_pk: opt_key32(sign_pk, "devices.sign_pk")?,
            })
        })
        .transpose()
    }

    fn claim(&self, e: &Enrollment) -> Result<Device, StoreError> {
        let mut conn = self.writer();
        let tx = begin(&mut conn, "begin a claim")?;
        type TeamRow = (String, bool, Option<String>, Option<Vec<u8>>);
        let team: Option<TeamRow> = tx
            .query_row(
                "SELECT lead_token_hash, lead_token_used, key_check, claimed_by FROM teams WHERE id = ?1",
                [e.team.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("find a team"))?;
        let (hash, used, key_check, claimed_by) =
            team.ok_or(StoreError::Refused(Refusal::UnknownTeam))?;
        if hash != e.token_hash {
            return Err(StoreError::Refused(Refusal::UnknownToken));
        }
        if used {
            let device = retried(&tx, e, claimed_by, key_check.as_deref())?
                .ok_or(StoreError::Refused(Refusal::Used))?;
            tx.commit().map_err(StoreError::sqlite("commit a claim"))?;
            return Ok(device);
        }
        let device = insert_device(&tx, e, Role::Lead)?;
        tx.execute(
            "UPDATE teams SET key_check = ?1, lead_token_used = 1, claimed_by = ?2, lead_sign_pk = ?3 WHERE id = ?4",
            params![e.key_check, e.device.0, e.keys.sign_pk, e.team.0],
        )
        .map_err(StoreError::sqlite("claim a team"))?;
        tx.commit().map_err(StoreError::sqlite("commit a claim"))?;
        Ok(device)
    }

    fn join(&self, e: &Enrollment) -> Result<Device, StoreError> {
        let mut conn = self.writer();
        let tx = begin(&mut conn, "begin a join")?;
        let team: Option<(Option<String>, i64)> = tx
            .query_row(
                "SELECT key_check, key_epoch FROM teams WHERE id = ?1",
                [e.team.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("find a team"))?;
        let (key_check, key_epoch) = team.ok_or(StoreError::Refused(Refusal::UnknownTeam))?;
        // A code made before a rotation carries a key that no longer seals
        // anything new: refused (a retry of a join that got in is answered
        // below all the same).
        let outdated = i64::from(e.keys.epoch) < key_epoch;
        // An invite made after a key rotation carries that epoch's key: its
        // check value came with the lead's signed roster.
        let key_check = if e.keys.epoch <= 1 {
            key_check
        } else {
            tx.query_row(
                "SELECT key_check FROM key_checks WHERE team_id = ?1 AND epoch = ?2",
                params![e.team.0, e.keys.epoch],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(StoreError::sqlite("find a key check"))?
        };
        type InviteRow = (String, i64, Option<i64>, Option<Vec<u8>>, Option<String>);
        let invite: Option<InviteRow> = tx
            .query_row(
                "SELECT role, expires_at, used_at, used_by, key_check FROM invites WHERE token_hash = ?1 AND team_id = ?2",
                params![e.token_hash, e.team.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("find an invite"))?;
        let (role, expires_at, used_at, used_by, invite_check) =
            invite.ok_or(StoreError::Refused(Refusal::UnknownToken))?;
        // The inviter said which key its code carries.
        let key_check = invite_check.or(key_check);
        if used_at.is_some() {
            // A retry is answered even after the invite's expiry: the invite
            // was redeemed in time, only the answer was lost.
            let device = retried(&tx, e, used_by, key_check.as_deref())?
                .ok_or(StoreError::Refused(Refusal::Used))?;
            tx.commit().map_err(StoreError::sqlite("commit a join"))?;
            return Ok(device);
        }
        if expires_at <= e.now {
            return Err(StoreError::Refused(Refusal::Expired));
        }
        if outdated {
            return Err(StoreError::Refused(Refusal::Outdated));
        }
        if key_check.as_deref() != Some(e.key_check.as_str()) {
            // Dropping the transaction leaves the invite unused.
            return Err(StoreError::Refused(Refusal::WrongKey));
        }
        let device = insert_device(&tx, e, role_from(&role)?)?;
        let consumed = tx
            .execute(
                "UPDATE invites SET used_at = ?1, used_by = ?2 WHERE token_hash = ?3 AND used_at IS NULL",
                params![e.now, e.device.0, e.token_hash],
            )
            .map_err(StoreError::sqlite("use an invite"))?;
        if consumed != 1 {
            return Err(StoreError::Refused(Refusal::Used));
        }
        tx.commit().map_err(StoreError::sqlite("commit a join"))?;
        Ok(device)
    }

    fn create_invite(&self, i: &NewInvite) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "INSERT INTO invites (token_hash, team_id, role, created_by, created_at, expires_at, key_check) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![i.token_hash, i.team.0, i.role.as_str(), i.created_by.0, i.created_at, i.expires_at, i.key_check],
            )
            .map_err(StoreError::sqlite("create an invite"))?;
        Ok(())
    }

    fn members(&self, team: TeamId) -> Result<Vec<Member>, StoreError> {
        let mut r = self.reader()?;
        let conn = r.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, role, name_sealed, enrolled_at, last_sync_at, revoked FROM devices
                 WHERE team_id = ?1 ORDER BY enrolled_at, id",
            )
            .map_err(StoreError::sqlite("list members"))?;
        let rows = stmt
            .query_map([team.0], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(StoreError::sqlite("list members"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, role, name_sealed, enrolled_at, last_sync_at, revoked) =
                row.map_err(StoreError::sqlite("list members"))?;
            out.push(Member {
                device_id: DeviceId(id16(id, "devices.id")?).to_hex(),
                role: role_from(&role)?,
                name_sealed,
                enrolled_at,
                last_sync_at,
                revoked,
            });
        }
        Ok(out)
    }

    fn revoke(&self, team: Option<TeamId>, device: DeviceId, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        let tx = begin(&mut conn, "begin a revocation")?;
        let row: Option<(Vec<u8>, bool, Option<i64>)> = tx
            .query_row(
                "SELECT team_id, revoked, cutoff_seq FROM devices WHERE id = ?1",
                [device.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(StoreError::sqlite("find a device"))?;
        let (device_team, revoked, cutoff) = row.ok_or(StoreError::Refused(Refusal::NotInTeam))?;
        let device_team = TeamId(id16(device_team, "devices.team_id")?);
        if team.is_some_and(|t| t != device_team) {
            return Err(StoreError::Refused(Refusal::NotInTeam));
        }
        if let (true, Some(cutoff)) = (revoked, cutoff) {
            return Ok(seq_u64(cutoff));
        }
        // The writer connection is this one: no push commits between reading
        // the cut-off and marking the device, and a push of it still queued
        // is refused in its own transaction.
        let cutoff: i64 = tx
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM envelopes WHERE team_id = ?1",
                [device_team.0],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("find the newest envelope"))?;
        let seq = next_member_seq(&tx, &device_team)?;
        tx.execute(
            "UPDATE devices SET revoked = 1, revoked_at = ?1, cutoff_seq = ?2, member_seq = ?3 WHERE id = ?4",
            params![now, cutoff, seq, device.0],
        )
        .map_err(StoreError::sqlite("revoke a device"))?;
        // Its invites stop working; used ones stay (they record who joined).
        tx.execute(
            "DELETE FROM invites WHERE created_by = ?1 AND used_at IS NULL",
            [device.0],
        )
        .map_err(StoreError::sqlite("delete a revoked device's invites"))?;
        tx.commit()
            .map_err(StoreError::sqlite("commit a revocation"))?;
        Ok(seq_u64(cutoff))
    }

    fn team_state(&self, team: TeamId) -> Result<Option<TeamState>, StoreError> {
        let mut r = self.reader()?;
        let row: Option<(Option<Vec<u8>>, i64, i64)> = r
            .conn()
            .prepare_cached(
                "SELECT lead_sign_pk, roster_version, key_epoch FROM teams WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([team.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(StoreError::sqlite("read a team"))?;
        row.map(|(lead, version, epoch)| {
            Ok(TeamState {
                lead_sign_pk: opt_key32(lead, "teams.lead_sign_pk")?,
                roster_version: seq_u64(version),
                epoch: u32::try_from(epoch).map_err(|_| StoreError::Corrupt {
                    what: "teams.key_epoch",
                })?,
            })
        })
        .transpose()
    }

    fn roster(&self, team: TeamId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut r = self.reader()?;
        let row: Option<Option<Vec<u8>>> = r
            .conn()
            .query_row("SELECT roster FROM teams WHERE id = ?1", [team.0], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::sqlite("read a roster"))?;
        Ok(row.flatten())
    }

    fn purge_superseded(&self, before: i64, limit: u64) -> Result<u64, StoreError> {
        let n = self
            .writer()
            .execute(
                // At a venue relay, an envelope the upstream relay has not
                // answered yet stays: the snapshot that superseded it here
                // is not forwarded, so it is the upstream's only way in.
                "DELETE FROM envelopes WHERE seq IN (
                     SELECT e.seq FROM envelopes e
                     WHERE e.superseded_at IS NOT NULL AND e.superseded_at <= ?1
                       AND (NOT EXISTS (SELECT 1 FROM venue)
                            OR EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq))
                     LIMIT ?2)",
                params![before, log::seq_i64(limit)],
            )
            .map_err(StoreError::sqlite("purge superseded envelopes"))?;
        Ok(n as u64)
    }

    fn compactions(
        &self,
        team: TeamId,
        superseded_after: i64,
    ) -> Result<Vec<Compaction>, StoreError> {
        let mut r = self.reader()?;
        let conn = r.conn();
        let err = || StoreError::sqlite("list compactions");
        let mut stmt = conn
            .prepare(
                "SELECT e.doc, e.superseded_by, count(*), max(e.superseded_at),
                        (SELECT s.author_device FROM envelopes s WHERE s.seq = e.superseded_by)
                 FROM envelopes e
                 WHERE e.team_id = ?1 AND e.superseded_at IS NOT NULL AND e.superseded_at > ?2
                 GROUP BY e.doc, e.superseded_by ORDER BY e.superseded_by",
            )
            .map_err(err())?;
        let rows = stmt
            .query_map(params![team.0, superseded_after], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })
            .map_err(err())?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, by, n, at, author) = row.map_err(err())?;
            out.push(Compaction {
                doc: hex::encode(id16(doc, "envelopes.doc")?),
                snapshot_seq: seq_u64(by),
                author: author
                    .map(|a| id16(a, "envelopes.author_device").map(hex::encode))
                    .transpose()?,
                superseded: seq_u64(n),
                at,
            });
        }
        Ok(out)
    }

    fn undo_compaction(
        &self,
        team: TeamId,
        doc: [u8; 16],
        superseded_after: i64,
    ) -> Result<Option<Undone>, StoreError> {
        let mut conn = self.writer();
        let tx = begin(&mut conn, "begin undoing a compaction")?;
        let last: Option<i64> = tx
            .query_row(
                "SELECT max(superseded_by) FROM envelopes
                 WHERE team_id = ?1 AND doc = ?2 AND superseded_at IS NOT NULL AND superseded_at > ?3",
                params![team.0, doc, superseded_after],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("find a document's last compaction"))?;
        let Some(snapshot) = last else {
            return Ok(None);
        };
        let restored = tx
            .execute(
                "UPDATE envelopes SET superseded_by = NULL, superseded_at = NULL
                 WHERE team_id = ?1 AND doc = ?2 AND superseded_by = ?3 AND superseded_at > ?4",
                params![team.0, doc, snapshot, superseded_after],
            )
            .map_err(StoreError::sqlite("restore superseded envelopes"))?;
        tx.commit()
            .map_err(StoreError::sqlite("commit undoing a compaction"))?;
        Ok(Some(Undone {
            snapshot_seq: seq_u64(snapshot),
            restored: restored as u64,
        }))
    }

    fn commit(&self, jobs: &[PushJob]) -> Result<Vec<JobResult>, StoreError> {
        log::commit_batch(&mut self.writer(), jobs)
    }

    fn pull(&self, q: &PullQuery) -> Result<Page, StoreError> {
        log::pull_page(self.reader()?.conn(), q)
    }

    fn blob_put(
        &self,
        team: TeamId,
        id: [u8; 32],
        bytes: &[u8],
        pushed_by: DeviceId,
        now: i64,
        quota: u64,
    ) -> Result<super::BlobPut, StoreError> {
        blobs::put(&mut self.writer(), team, id, bytes, pushed_by, now, quota)
    }

    fn blob_get(&self, team: TeamId, id: [u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        blobs::get(self.reader()?.conn(), team, id)
    }

    fn blob_have(&self, team: TeamId, ids: &[[u8; 32]]) -> Result<Vec<bool>, StoreError> {
        blobs::have(self.reader()?.conn(), team, ids)
    }

    fn team_usage(&self) -> Result<Vec<TeamUsage>, StoreError> {
        usage::team_usage(self.reader()?.conn())
    }

    fn gauges(&self) -> Result<Gauges, StoreError> {
        let mut r = self.reader()?;
        let (devices, envelopes, superseded): (i64, i64, i64) = r
            .conn()
            .query_row(
                "SELECT (SELECT count(*) FROM devices WHERE revoked = 0),
                        (SELECT count(*) FROM envelopes WHERE superseded_at IS NULL),
                        (SELECT count(*) FROM envelopes WHERE superseded_at IS NOT NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(StoreError::sqlite("count devices and envelopes"))?;
        Ok(Gauges {
            devices: seq_u64(devices),
            envelopes: seq_u64(envelopes),
            superseded: seq_u64(superseded),
        })
    }
}
