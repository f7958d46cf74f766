//! [`Storage`] on PostgreSQL (issue 11): tokio-postgres behind a
//! deadpool-postgres pool, driven by a small runtime this store owns, so
//! the trait stays synchronous (see docs/design/issue11-postgres.md, a).
//!
//! Order across relays (section c): every transaction that assigns
//! envelope seqs or member seqs of a team first locks the team's row
//! (`SELECT … FOR NO KEY UPDATE`: it conflicts with itself, so seq
//! assignment per team is serialized, but not with the key-share locks
//! foreign-key checks take, so a chunk upload or an invite of the team
//! does not queue behind a push batch) and takes the numbers from the row
//! (`teams.next_seq`, `teams.member_seq`) under that lock, held until
//! COMMIT. So within a team, commit order is seq order, and a pull (one
//! REPEATABLE READ snapshot) sees a prefix of the team's seqs: a cursor
//! never passes an envelope that commits later.
//!
//! Never call a method from inside an async task: it blocks on the owned
//! runtime (the relay calls storage from blocking threads only).

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use heartbridge_proto::{Member, Role, TeamId};
use tokio_postgres::{GenericClient, NoTls, Row};

mod blobs;
mod log;
mod log_id;
mod migrations;
#[cfg(test)]
mod tests;
mod usage;

use super::{
    BlobPut, Compaction, Device, DeviceId, Enrollment, Gauges, JobResult, NewInvite, Page,
    PullQuery, PushJob, Storage, TeamState, TeamSummary, TeamUsage, Undone,
};
use crate::error::{Refusal, StoreError};
use log::{seq_i64, seq_u64};

/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long making or checking a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL storage. Several relays may share one database.
pub struct PgStorage {
    /// One worker thread ("hb-pg") that drives the pooled connections;
    /// `Option` only so that `Drop` can shut it down without blocking.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Test hook: the next `commit` signals the first sender once it has
    /// assigned its seqs and waits on the receiver before its COMMIT.
    #[cfg(test)]
    hold: std::sync::Mutex<Option<log::Hold>>,
    /// Write batches the set-based path handed back to the per-job path
    /// (tests assert none did where no database error was made).
    #[cfg(test)]
    fallbacks: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing of the connection settings (the password among them).
        f.debug_struct("PgStorage").finish_non_exhaustive()
    }
}

impl Drop for PgStorage {
    fn drop(&mut self) {
        // The last handle may be dropped inside async code, where dropping
        // a runtime panics; this does not block.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStorage {
    /// How many write batches fell back to the per-job path.
    #[cfg(test)]
    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connects with `config` (a pool of at most `pool_size` connections,
    /// at least 2), refuses a server with `synchronous_commit = off` (acks
    /// would not be durable), and migrates the database under an advisory
    /// lock. Blocking: call it outside async code.
    pub fn open(config: tokio_postgres::Config, pool_size: usize) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hb-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start its runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Drops connections whose socket closed (a PostgreSQL
                // restart) without a round trip on every checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            // Bounded waits, so a hung server answers 503 (retry) instead
            // of holding a request (and its blocking thread) for good.
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build its pool: {e}")))?;
        let storage = PgStorage {
            rt: Some(rt),
            pool,
            #[cfg(test)]
            hold: std::sync::Mutex::new(None),
            #[cfg(test)]
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        };
        storage.block(async {
            let mut client = storage.client("open the database").await?;
            let sync: String = client
                .query_one("SHOW synchronous_commit", &[])
                .await
                .map_err(StoreError::pg("read synchronous_commit"))?
                .get(0);
            if sync.eq_ignore_ascii_case("off") {
                return Err(StoreError::Unavailable(
                    "the server runs with synchronous_commit = off, so an acked push could be lost: set it to on".into(),
                ));
            }
            migrations::migrate(&mut client).await?;
            Ok(())
        })?;
        Ok(storage)
    }

    fn block<T>(&self, f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.rt
            .as_ref()
            .expect("the runtime lives until drop")
            .block_on(f)
    }

    async fn client(&self, op: &'static str) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|source| StoreError::Pool { op, source })
    }
}

pub(super) fn role_from(s: &str) -> Result<Role, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt { what: "role" })
}

pub(super) fn id16(v: Vec<u8>, what: &'static str) -> Result<[u8; 16], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { what })
}

pub(super) fn key32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt { what })
}

fn opt_key32(v: Option<Vec<u8>>, what: &'static str) -> Result<Option<[u8; 32]>, StoreError> {
    v.map(|v| key32(v, what)).transpose()
}

fn epoch_u32(v: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt { what })
}

/// Reads column `i` of a row, a type mismatch being a store error.
pub(super) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
    op: &'static str,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(StoreError::pg(op))
}

/// Locks the team's row until the transaction ends: the first statement of
/// every write that assigns envelope or member seqs of the team. `false`
/// for an unknown team.
pub(super) async fn lock_team(tx: &impl GenericClient, team: &TeamId) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM teams WHERE id = $1 FOR NO KEY UPDATE",
            &[&&team.0[..]],
        )
        .await
        .map_err(StoreError::pg("lock a team"))?
        .is_some())
}

/// The team's next member seq, under its row lock.
async fn next_member_seq(tx: &impl GenericClient, team: &TeamId) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "UPDATE teams SET member_seq = member_seq + 1 WHERE id = $1 RETURNING member_seq",
            &[&&team.0[..]],
        )
        .await
        .map_err(StoreError::pg("bump a team's member seq"))?;
    col(&row, 0, "bump a team's member seq")
}

async fn insert_device(
    tx: &impl GenericClient,
    e: &Enrollment,
    role: Role,
) -> Result<Device, StoreError> {
    let seq = next_member_seq(tx, &e.team).await?;
    let k = &e.keys;
    tx.execute(
        "INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at, enrollment_id, sign_pk, kx_pk, key_epoch, join_proof, member_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &&e.device.0[..],
            &&e.team.0[..],
            &role.as_str(),
            &e.name_sealed,
            &e.device_token_hash,
            &e.now,
            &e.enrollment_id,
            &&k.sign_pk[..],
            &&k.kx_pk[..],
            &i64::from(k.epoch),
            &&k.proof[..],
            &seq,
        ],
    )
    .await
    .map_err(StoreError::pg("enroll a device"))?;
    Ok(Device {
        id: e.device,
        team: e.team,
        role,
        revoked: false,
        sign_pk: Some(k.sign_pk),
    })
}

/// An enrollment retried after its answer was lost (as in the SQLite
/// store): gives the device that redeemed the token the new token hash.
async fn retried(
    tx: &impl GenericClient,
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
    let op = "find a retried enrollment";
    let Some(row) = tx
        .query_opt(
            "SELECT role, revoked, sign_pk, kx_pk FROM devices WHERE id = $1 AND team_id = $2 AND enrollment_id = $3",
            &[&device, &&e.team.0[..], &eid],
        )
        .await
        .map_err(StoreError::pg(op))?
    else {
        return Ok(None);
    };
    let role: String = col(&row, 0, op)?;
    let revoked: bool = col(&row, 1, op)?;
    let sign_pk: Vec<u8> = col(&row, 2, op)?;
    let kx_pk: Vec<u8> = col(&row, 3, op)?;
    if sign_pk[..] != e.keys.sign_pk[..] || kx_pk[..] != e.keys.kx_pk[..] {
        return Ok(None);
    }
    if revoked {
        return Err(StoreError::Refused(Refusal::Revoked));
    }
    tx.execute(
        "UPDATE devices SET token_hash = $1 WHERE id = $2",
        &[&e.device_token_hash, &device],
    )
    .await
    .map_err(StoreError::pg("replace a device token"))?;
    Ok(Some(Device {
        id: DeviceId(id16(device, "devices.id")?),
        team: e.team,
        role: role_from(&role)?,
        revoked: false,
        sign_pk: Some(e.keys.sign_pk),
    }))
}

fn device_from(row: &Row, op: &'static str) -> Result<Device, StoreError> {
    Ok(Device {
        id: DeviceId(id16(col(row, 0, op)?, "devices.id")?),
        team: TeamId(id16(col(row, 1, op)?, "devices.team_id")?),
        role: role_from(&col::<String>(row, 2, op)?)?,
        revoked: col(row, 3, op)?,
        sign_pk: opt_key32(col(row, 4, op)?, "devices.sign_pk")?,
    })
}

impl Storage for PgStorage {
    fn check(&self) -> Result<(), StoreError> {
        self.block(async {
            let c = self.client("check the database").await?;
            c.query_one("SELECT count(*) FROM teams", &[])
                .await
                .map_err(StoreError::pg("check the database"))?;
            Ok(())
        })
    }

    fn log_id(&self) -> Result<super::LogId, StoreError> {
        self.block(async { log_id::get(&**self.client(log_id::GET).await?).await })
    }

    fn new_log_id(&self, now: i64) -> Result<super::LogId, StoreError> {
        self.block(async { log_id::renew(&**self.client(log_id::RENEW).await?, now).await })
    }

    fn create_team(
        &self,
        team: TeamId,
        name: &str,
        lead_token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut c = self.client("create a team").await?;
            let tx = c
                .transaction()
                .await
                .map_err(StoreError::pg("begin creating a team"))?;
            tx.execute(
                "INSERT INTO teams (id, name, lead_token_hash, created_at) VALUES ($1, $2, $3, $4)",
                &[&&team.0[..], &name, &lead_token_hash, &now],
            )
            .await
            .map_err(StoreError::pg("create a team"))?;
            tx.execute(
                "INSERT INTO blob_usage (team_id) VALUES ($1)",
                &[&&team.0[..]],
            )
            .await
            .map_err(StoreError::pg("create a team's chunk usage"))?;
            tx.commit()
                .await
                .map_err(StoreError::pg("commit creating a team"))
        })
    }

    fn teams(&self) -> Result<Vec<TeamSummary>, StoreError> {
        let op = "list teams";
        self.block(async {
            let c = self.client(op).await?;
            let rows = c
                .query(
                    "SELECT t.id, t.name, t.lead_token_used, t.created_at,
                        (SELECT count(*) FROM devices d WHERE d.team_id = t.id AND NOT d.revoked),
                        (SELECT count(*) FROM envelopes e WHERE e.team_id = t.id AND e.superseded_at IS NULL)
                     FROM teams t ORDER BY t.created_at, t.id",
                    &[],
                )
                .await
                .map_err(StoreError::pg(op))?;
            rows.iter()
                .map(|r| {
                    Ok(TeamSummary {
                        team_id: TeamId(id16(col(r, 0, op)?, "teams.id")?).to_hex(),
                        name: col(r, 1, op)?,
                        claimed: col(r, 2, op)?,
                        created_at: col(r, 3, op)?,
                        devices: seq_u64(col(r, 4, op)?),
                        envelopes: seq_u64(col(r, 5, op)?),
                    })
                })
                .collect()
        })
    }

    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>, StoreError> {
        let op = "look up a device token";
        self.block(async {
            let c = self.client(op).await?;
            let stmt = c
                .prepare_cached(
                    "SELECT id, team_id, role, revoked, sign_pk FROM devices WHERE token_hash = $1",
                )
                .await
                .map_err(StoreError::pg(op))?;
            let row = c
                .query_opt(&stmt, &[&token_hash])
                .await
                .map_err(StoreError::pg(op))?;
            row.map(|r| device_from(&r, op)).transpose()
        })
    }

    fn team_device(&self, team: TeamId, device: [u8; 16]) -> Result<Option<Device>, StoreError> {
        let op = "look up a team's device";
        self.block(async {
            let c = self.client(op).await?;
            let stmt = c
                .prepare_cached(
                    "SELECT id, team_id, role, revoked, sign_pk FROM devices WHERE id = $1 AND team_id = $2",
                )
                .await
                .map_err(StoreError::pg(op))?;
            let row = c
                .query_opt(&stmt, &[&&device[..], &&team.0[..]])
                .await
                .map_err(StoreError::pg(op))?;
            row.map(|r| device_from(&r, op)).transpose()
        })
    }

    fn claim(&self, e: &Enrollment) -> Result<Device, StoreError> {
        let op = "find a team";
        self.block(async {
            let mut c = self.client("claim a team").await?;
            let tx = c
                .transaction()
                .await
                .map_err(StoreError::pg("begin a claim"))?;
            // The team lock first (the member-seq bump takes it anyway).
            let row = tx
                .query_opt(
                    "SELECT lead_token_hash, lead_token_used, key_check, claimed_by FROM teams WHERE id = $1 FOR NO KEY UPDATE",
                    &[&&e.team.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?
                .ok_or(StoreError::Refused(Refusal::UnknownTeam))?;
            let hash: String = col(&row, 0, op)?;
            let used: bool = col(&row, 1, op)?;
            let key_check: Option<String> = col(&row, 2, op)?;
            let claimed_by: Option<Vec<u8>> = col(&row, 3, op)?;
            if hash != e.token_hash {
                return Err(StoreError::Refused(Refusal::UnknownToken));
            }
            if used {
                let device = retried(&*tx, e, claimed_by, key_check.as_deref())
                    .await?
                    .ok_or(StoreError::Refused(Refusal::Used))?;
                tx.commit()
                    .await
                    .map_err(StoreError::pg("commit a claim"))?;
                return Ok(device);
            }
            let device = insert_device(&*tx, e, Role::Lead).await?;
            tx.execute(
                "UPDATE teams SET key_check = $1, lead_token_used = true, claimed_by = $2, lead_sign_pk = $3 WHERE id = $4",
                &[&e.key_check, &&e.device.0[..], &&e.keys.sign_pk[..], &&e.team.0[..]],
            )
            .await
            .map_err(StoreError::pg("claim a team"))?;
            tx.commit()
                .await
                .map_err(StoreError::pg("commit a claim"))?;
            Ok(device)
        })
    }

    fn join(&self, e: &Enrollment) -> Result<Device, StoreError> {
        self.block(async {
            let mut c = self.client("join a team").await?;
            let tx = c
                .transaction()
                .await
                .map_err(StoreError::pg("begin a join"))?;
            let op = "find a team";
            let row = tx
                .query_opt(
                    "SELECT key_check, key_epoch FROM teams WHERE id = $1 FOR NO KEY UPDATE",
                    &[&&e.team.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?
                .ok_or(StoreError::Refused(Refusal::UnknownTeam))?;
            let key_check: Option<String> = col(&row, 0, op)?;
            let key_epoch: i64 = col(&row, 1, op)?;
            let outdated = i64::from(e.keys.epoch) < key_epoch;
            let key_check = if e.keys.epoch <= 1 {
                key_check
            } else {
                let op = "find a key check";
                match tx
                    .query_opt(
                        "SELECT key_check FROM key_checks WHERE team_id = $1 AND epoch = $2",
                        &[&&e.team.0[..], &i64::from(e.keys.epoch)],
                    )
                    .await
                    .map_err(StoreError::pg(op))?
                {
                    Some(r) => Some(col::<String>(&r, 0, op)?),
                    None => None,
                }
            };
            let op = "find an invite";
            let row = tx
                .query_opt(
                    "SELECT role, expires_at, used_at, used_by, key_check FROM invites WHERE token_hash = $1 AND team_id = $2",
                    &[&e.token_hash, &&e.team.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?
                .ok_or(StoreError::Refused(Refusal::UnknownToken))?;
            let role: String = col(&row, 0, op)?;
            let expires_at: i64 = col(&row, 1, op)?;
            let used_at: Option<i64> = col(&row, 2, op)?;
            let used_by: Option<Vec<u8>> = col(&row, 3, op)?;
            let invite_check: Option<String> = col(&row, 4, op)?;
            let key_check = invite_check.or(key_check);
            if used_at.is_some() {
                let device = retried(&*tx, e, used_by, key_check.as_deref())
                    .await?
                    .ok_or(StoreError::Refused(Refusal::Used))?;
                tx.commit()
                    .await
                    .map_err(StoreError::pg("commit a join"))?;
                return Ok(device);
            }
            if expires_at <= e.now {
                return Err(StoreError::Refused(Refusal::Expired));
            }
            if outdated {
                return Err(StoreError::Refused(Refusal::Outdated));
            }
            if key_check.as_deref() != Some(e.key_check.as_str()) {
                return Err(StoreError::Refused(Refusal::WrongKey));
            }
            let device = insert_device(&*tx, e, role_from(&role)?).await?;
            let consumed = tx
                .execute(
                    "UPDATE invites SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL",
                    &[&e.now, &&e.device.0[..], &e.token_hash],
                )
                .await
                .map_err(StoreError::pg("use an invite"))?;
            if consumed != 1 {
                return Err(StoreError::Refused(Refusal::Used));
            }
            tx.commit()
                .await
                .map_err(StoreError::pg("commit a join"))?;
            Ok(device)
        })
    }

    fn create_invite(&self, i: &NewInvite) -> Result<(), StoreError> {
        self.block(async {
            let c = self.client("create an invite").await?;
            c.execute(
                "INSERT INTO invites (token_hash, team_id, role, created_by, created_at, expires_at, key_check) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&i.token_hash, &&i.team.0[..], &i.role.as_str(), &&i.created_by.0[..], &i.created_at, &i.expires_at, &i.key_check],
            )
            .await
            .map_err(StoreError::pg("create an invite"))?;
            Ok(())
        })
    }

    fn members(&self, team: TeamId) -> Result<Vec<Member>, StoreError> {
        let op = "list members";
        self.block(async {
            let c = self.client(op).await?;
            let rows = c
                .query(
                    "SELECT id, role, name_sealed, enrolled_at, last_sync_at, revoked FROM devices
                     WHERE team_id = $1 ORDER BY enrolled_at, id",
                    &[&&team.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?;
            rows.iter()
                .map(|r| {
                    Ok(Member {
                        device_id: DeviceId(id16(col(r, 0, op)?, "devices.id")?).to_hex(),
                        role: role_from(&col::<String>(r, 1, op)?)?,
                        name_sealed: col(r, 2, op)?,
                        enrolled_at: col(r, 3, op)?,
                        last_sync_at: col(r, 4, op)?,
                        revoked: col(r, 5, op)?,
                    })
                })
                .collect()
        })
    }

    fn revoke(&self, team: Option<TeamId>, device: DeviceId, now: i64) -> Result<u64, StoreError> {
        self.block(async {
            let mut c = self.client("revoke a device").await?;
            let tx = c
                .transaction()
                .await
                .map_err(StoreError::pg("begin a revocation"))?;
            let op = "find a device";
            // Which team (no lock yet: a device never changes team).
            let row = tx
                .query_opt("SELECT team_id FROM devices WHERE id = $1", &[&&device.0[..]])
                .await
                .map_err(StoreError::pg(op))?
                .ok_or(StoreError::Refused(Refusal::NotInTeam))?;
            let device_team = TeamId(id16(col(&row, 0, op)?, "devices.team_id")?);
            if team.is_some_and(|t| t != device_team) {
                return Err(StoreError::Refused(Refusal::NotInTeam));
            }
            // The team lock: a batch holding it commits first, and a push of
            // this device waiting on it re-reads `revoked` after this commit.
            lock_team(&*tx, &device_team).await?;
            let row = tx
                .query_one(
                    "SELECT revoked, cutoff_seq FROM devices WHERE id = $1",
                    &[&&device.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?;
            let revoked: bool = col(&row, 0, op)?;
            let cutoff: Option<i64> = col(&row, 1, op)?;
            if let (true, Some(cutoff)) = (revoked, cutoff) {
                return Ok(seq_u64(cutoff));
            }
            let op = "find the newest envelope";
            let cutoff: i64 = col(
                &tx.query_one(
                    "SELECT coalesce(max(seq), 0) FROM envelopes WHERE team_id = $1",
                    &[&&device_team.0[..]],
                )
                .await
                .map_err(StoreError::pg(op))?,
                0,
                op,
            )?;
            let seq = next_member_seq(&*tx, &device_team).await?;
            tx.execute(
                "UPDATE devices SET revoked = true, revoked_at = $1, cutoff_seq = $2, member_seq = $3 WHERE id = $4",
                &[&now, &cutoff, &seq, &&device.0[..]],
            )
            .await
            .map_err(StoreError::pg("revoke a device"))?;
            tx.execute(
                "DELETE FROM invites WHERE created_by = $1 AND used_at IS NULL",
                &[&&device.0[..]],
            )
            .await
            .map_err(StoreError::pg("delete a revoked device's invites"))?;
            tx.commit()
                .await
                .map_err(StoreError::pg("commit a revocation"))?;
            Ok(seq_u64(cutoff))
        })
    }

    fn team_state(&self, team: TeamId) -> Result<Option<TeamState>, StoreError> {
        let op = "read a team";
        self.block(async {
            let c = self.client(op).await?;
            let stmt = c
                .prepare_cached(
                    "SELECT lead_sign_pk, roster_version, key_epoch FROM teams WHERE id = $1",
                )
                .await
                .map_err(StoreError::pg(op))?;
            let row = c
                .query_opt(&stmt, &[&&team.0[..]])
                .await
                .map_err(StoreError::pg(op))?;
            row.map(|r| {
                Ok(TeamState {
                    lead_sign_pk: opt_key32(col(&r, 0, op)?, "teams.lead_sign_pk")?,
                    roster_version: seq_u64(col(&r, 1, op)?),
                    epoch: epoch_u32(col(&r, 2, op)?, "teams.key_epoch")?,
                })
            })
            .transpose()
        })
    }

    fn roster(&self, team: TeamId) -> Result<Option<Vec<u8>>, StoreError> {
        let op = "read a roster";
        self.block(async {
            let c = self.client(op).await?;
            let row = c
                .query_opt("SELECT roster FROM teams WHERE id = $1", &[&&team.0[..]])
                .await
                .map_err(StoreError::pg(op))?;
            Ok(match row {
                Some(r) => col::<Option<Vec<u8>>>(&r, 0, op)?,
                None => None,
            })
        })
    }

    fn commit(&self, jobs: &[PushJob]) -> Result<Vec<JobResult>, StoreError> {
        #[cfg(test)]
        let hold = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take();
        #[cfg(not(test))]
        let hold = None;
        self.block(async {
            let mut c = self.client("commit a write batch").await?;
            let (results, fell_back) = log::commit_batch(&mut c, jobs, hold).await?;
            #[cfg(test)]
            if fell_back {
                self.fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            #[cfg(not(test))]
            let _ = fell_back;
            Ok(results)
        })
    }

    fn pull(&self, q: &PullQuery) -> Result<Page, StoreError> {
        self.block(async {
            let mut c = self.client("pull").await?;
            log::pull_page(&mut c, q).await
        })
    }

    fn purge_superseded(&self, before: i64, limit: u64) -> Result<u64, StoreError> {
        let op = "purge superseded envelopes";
        self.block(async {
            let c = self.client(op).await?;
            // Assigns no seq, so no team lock; SKIP LOCKED keeps two relays'
            // purges from waiting on each other.
            let n = c
                .execute(
                    "DELETE FROM envelopes WHERE (team_id, seq) IN (
                         SELECT team_id, seq FROM envelopes
                         WHERE superseded_at IS NOT NULL AND superseded_at <= $1
                         ORDER BY superseded_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    &[&before, &seq_i64(limit)],
                )
                .await
                .map_err(StoreError::pg(op))?;
            Ok(n)
        })
    }

    fn compactions(
        &self,
        team: TeamId,
        superseded_after: i64,
    ) -> Result<Vec<Compaction>, StoreError> {
        let op = "list compactions";
        self.block(async {
            let c = self.client(op).await?;
            let rows = c
                .query(
                    "SELECT e.doc, e.superseded_by, count(*), max(e.superseded_at),
                        (SELECT s.author_device FROM envelopes s WHERE s.team_id = e.team_id AND s.seq = e.superseded_by)
                     FROM envelopes e
                     WHERE e.team_id = $1 AND e.superseded_at IS NOT NULL AND e.superseded_at > $2
                     GROUP BY e.team_id, e.doc, e.superseded_by ORDER BY e.superseded_by",
                    &[&&team.0[..], &superseded_after],
                )
                .await
                .map_err(StoreError::pg(op))?;
            rows.iter()
                .map(|r| {
                    Ok(Compaction {
                        doc: hex::encode(id16(col(r, 0, op)?, "envelopes.doc")?),
                        snapshot_seq: seq_u64(col(r, 1, op)?),
                        superseded: seq_u64(col(r, 2, op)?),
                        at: col(r, 3, op)?,
                        author: col::<Option<Vec<u8>>>(r, 4, op)?
                            .map(|a| id16(a, "envelopes.author_device").map(hex::encode))
                            .transpose()?,
                    })
                })
                .collect()
        })
    }

    fn undo_compaction(
        &self,
        team: TeamId,
        doc: [u8; 16],
        superseded_after: i64,
    ) -> Result<Option<Undone>, StoreError> {
        self.block(async {
            let mut c = self.client("undo a compaction").await?;
            let tx = c
                .transaction()
                .await
                .map_err(StoreError::pg("begin undoing a compaction"))?;
            if !lock_team(&*tx, &team).await? {
                return Ok(None);
            }
            let op = "find a document's last compaction";
            let last: Option<i64> = col(
                &tx.query_one(
                    "SELECT max(superseded_by) FROM envelopes
                     WHERE team_id = $1 AND doc = $2 AND superseded_at IS NOT NULL AND superseded_at > $3",
                    &[&&team.0[..], &&doc[..], &superseded_after],
                )
                .await
                .map_err(StoreError::pg(op))?,
                0,
                op,
            )?;
            let Some(snapshot) = last else {
                return Ok(None);
            };
            let restored = tx
                .execute(
                    "UPDATE envelopes SET superseded_by = NULL, superseded_at = NULL
                     WHERE team_id = $1 AND doc = $2 AND superseded_by = $3 AND superseded_at > $4",
                    &[&&team.0[..], &&doc[..], &snapshot, &superseded_after],
                )
                .await
                .map_err(StoreError::pg("restore superseded envelopes"))?;
            tx.commit()
                .await
                .map_err(StoreError::pg("commit undoing a compaction"))?;
            Ok(Some(Undone {
                snapshot_seq: seq_u64(snapshot),
                restored,
            }))
        })
    }

    fn team_usage(&self) -> Result<Vec<TeamUsage>, StoreError> {
        self.block(async {
            let c = self.client("sum storage per team").await?;
            usage::team_usage(&c).await
        })
    }

    fn gauges(&self) -> Result<Gauges, StoreError> {
        let op = "count devices and envelopes";
        self.block(async {
            let c = self.client(op).await?;
            let r = c
                .query_one(
                    "SELECT (SELECT count(*) FROM devices WHERE NOT revoked),
                            (SELECT count(*) FROM envelopes WHERE superseded_at IS NULL),
                            (SELECT count(*) FROM envelopes WHERE superseded_at IS NOT NULL)",
                    &[],
                )
                .await
                .map_err(StoreError::pg(op))?;
            Ok(Gauges {
                devices: seq_u64(col(&r, 0, op)?),
                envelopes: seq_u64(col(&r, 1, op)?),
                superseded: seq_u64(col(&r, 2, op)?),
            })
        })
    }

    fn blob_put(
        &self,
        team: TeamId,
        id: [u8; 32],
        bytes: &[u8],
        pushed_by: DeviceId,
        now: i64,
        quota: u64,
    ) -> Result<BlobPut, StoreError> {
        self.block(async {
            let mut c = self.client("store a lesson chunk").await?;
            blobs::put(&mut c, team, id, bytes, pushed_by, now, quota).await
        })
    }

    fn blob_get(&self, team: TeamId, id: [u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.block(async {
            let c = self.client("read a lesson chunk").await?;
            blobs::get(&c, team, id).await
        })
    }

    fn blob_have(&self, team: TeamId, ids: &[[u8; 32]]) -> Result<Vec<bool>, StoreError> {
        self.block(async {
            let c = self.client("find lesson chunks").await?;
            blobs::have(&c, team, ids).await
        })
    }
}
