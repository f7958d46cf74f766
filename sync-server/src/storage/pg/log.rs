//! The envelope log on PostgreSQL: group-committed pushes under per-team
//! row locks (commit order = seq order within a team), and pulls from one
//! REPEATABLE READ snapshot.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{ClientWrapper, Object, Transaction};
use heartbridge_proto::{Ack, ContentId, Envelope, EnvelopeKind, MemberKey, Pulled};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use super::{col, id16, key32, role_from};
use crate::error::{Refusal, StoreError};
use crate::storage::{
    delta_wire_len, pulled_wire_len, JobResult, Page, PullQuery, PushJob, RosterUpload,
};

/// The envelope columns in the order the set-based batch copies them.
const COPY_TYPES: [Type; 14] = [
    Type::BYTEA, // team_id
    Type::INT8,  // seq
    Type::BYTEA, // doc
    Type::INT8,  // kind
    Type::BYTEA, // content_id
    Type::BYTEA, // author_device
    Type::INT8,  // epoch
    Type::INT8,  // covers
    Type::BYTEA, // nonce
    Type::BYTEA, // ciphertext
    Type::INT8,  // size
    Type::INT8,  // created_at
    Type::BYTEA, // sig
    Type::BYTEA, // pushed_by
];

/// Most rows one pull statement returns; a page of more (envelopes of a
/// few hundred bytes) is read again with further statements in the same
/// snapshot ([`pull_page`]), its first rows read twice. A default page
/// (256 KiB) of the storm's 2.5 KB envelopes is about 100 rows; of
/// 600-byte changes, about 350.
/// Tests take 3, so that their pages go through the further statements.
#[cfg(not(test))]
const PULL_ROWS: i64 = 128;
#[cfg(test)]
const PULL_ROWS: i64 = 3;

/// A page's envelopes past a cursor: of the next `$4` rows, those before
/// which the page holds at most `$6` bytes, each row counted as its
/// ciphertext plus `$5`, the least a pulled envelope adds around it. The
/// cut is found over the rows' seqs and sizes alone (`cut`), then only the
/// rows up to it are read whole.
///
/// `$5` is a lower bound of [`pulled_wire_len`] beside the ciphertext, so
/// every row the exact bound takes is returned, and the first one it
/// refuses too, unless the `$4` rows end first: the relay decides the page
/// and `more` exactly, while the server sends no more than a few rows past
/// the page, however large the envelopes (chunks of 64 rows through a
/// portal sent them whole). The first two rows are always returned: a page
/// takes its first row whatever its size, then needs to see the second.
/// The final SELECT repeats `next`'s filter; the storage model test pulls
/// page by page on both stores, so the two cannot drift apart unseen.
const PULL_SQL: &str = "WITH next AS (
    SELECT seq, size FROM envelopes
    WHERE team_id = $1 AND seq > $2 AND author_device <> $3
      AND (pushed_by IS NULL OR pushed_by <> $3) AND superseded_at IS NULL
    ORDER BY seq LIMIT $4
), cut AS (
    SELECT max(seq) AS last FROM (
        SELECT seq, sum(size + $5::bigint) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) - (size + $5::bigint) AS before,
               row_number() OVER (ORDER BY seq) AS n
        FROM next
    ) AS w WHERE before <= $6::bigint OR n <= 2
)
SELECT seq, doc, kind, content_id, epoch, covers, nonce, ciphertext, size, author_device, sig FROM envelopes
WHERE team_id = $1 AND seq > $2 AND seq <= (SELECT last FROM cut) AND author_device <> $3
  AND (pushed_by IS NULL OR pushed_by <> $3) AND superseded_at IS NULL
ORDER BY seq";

/// Test hook of [`commit_batch`]: it sends on `arrived` once the batch has
/// assigned its seqs (holding its team locks) and waits on `release`
/// before its COMMIT.
pub(crate) struct Hold {
    pub(crate) arrived: std::sync::mpsc::Sender<()>,
    pub(crate) release: std::sync::mpsc::Receiver<()>,
}

fn kind_code(kind: EnvelopeKind) -> i64 {
    match kind {
        EnvelopeKind::Change => 1,
        EnvelopeKind::Snapshot => 2,
    }
}

pub(crate) fn seq_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

pub(crate) fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

async fn store_roster(
    tx: &Transaction<'_>,
    job: &PushJob,
    r: &RosterUpload,
) -> Result<(), StoreError> {
    let op = "store a roster";
    let team = &job.team.0[..];
    let changed = tx
        .execute(
            "UPDATE teams SET roster = $1, roster_version = $2, key_epoch = GREATEST(key_epoch, $3)
             WHERE id = $4 AND roster_version < $2",
            &[&r.bytes, &seq_i64(r.version), &i64::from(r.epoch), &team],
        )
        .await
        .map_err(StoreError::pg(op))?;
    if changed == 1 {
        for (epoch, check) in &r.key_checks {
            tx.execute(
                "INSERT INTO key_checks (team_id, epoch, key_check) VALUES ($1, $2, $3)
                 ON CONFLICT (team_id, epoch) DO UPDATE SET key_check = EXCLUDED.key_check",
                &[&team, &i64::from(*epoch), check],
            )
            .await
            .map_err(StoreError::pg("store a key check"))?;
        }
        return Ok(());
    }
    let stored: Option<Vec<u8>> = match tx
        .query_opt("SELECT roster FROM teams WHERE id = $1", &[&team])
        .await
        .map_err(StoreError::pg("read a roster"))?
    {
        Some(row) => col(&row, 0, "read a roster")?,
        None => None,
    };
    if stored.as_deref() == Some(&r.bytes[..]) {
        Ok(())
    } else {
        Err(StoreError::Refused(Refusal::StaleRoster))
    }
}

/// A job's new envelopes, column by column, for one `unnest` insert.
#[derive(Default)]
struct Batch<'a> {
    seq: Vec<i64>,
    doc: Vec<&'a [u8]>,
    kind: Vec<i64>,
    content_id: Vec<&'a [u8]>,
    author: Vec<&'a [u8]>,
    epoch: Vec<i64>,
    covers: Vec<i64>,
    nonce: Vec<&'a [u8]>,
    ciphertext: Vec<&'a [u8]>,
    size: Vec<i64>,
    sig: Vec<&'a [u8]>,
    pushed_by: Vec<Option<&'a [u8]>>,
}

impl<'a> Batch<'a> {
    fn push(&mut self, env: &'a Envelope, seq: i64, pushed_by: Option<&'a [u8]>) {
        self.seq.push(seq);
        self.doc.push(&env.doc[..]);
        self.kind.push(kind_code(env.kind));
        self.content_id.push(&env.id.0[..]);
        self.author.push(&env.author[..]);
        self.epoch.push(i64::from(env.epoch));
        self.covers.push(seq_i64(env.covers));
        self.nonce.push(&env.nonce[..]);
        self.ciphertext.push(&env.ciphertext[..]);
        self.size.push(env.ciphertext.len() as i64);
        self.sig.push(&env.sig[..]);
        self.pushed_by.push(pushed_by);
    }
}

/// Stores one job, taking seqs from `next` (the team's counter, read under
/// its lock); returns the acks in push order.
async fn store_job(
    tx: &Transaction<'_>,
    job: &PushJob,
    next: &mut i64,
) -> Result<Vec<Ack>, StoreError> {
    let team = &job.team.0[..];
    // A fresh statement after the team lock: a revocation committed while
    // this batch waited for the lock is seen here.
    let op = "check a pushing device";
    let revoked: bool = match tx
        .query_opt(
            &tx.prepare_cached("SELECT revoked FROM devices WHERE id = $1")
                .await
                .map_err(StoreError::pg("check a pushing device"))?,
            &[&&job.device.0[..]],
        )
        .await
        .map_err(StoreError::pg(op))?
    {
        Some(row) => col(&row, 0, op)?,
        None => return Err(StoreError::Refused(Refusal::NotInTeam)),
    };
    if revoked {
        return Err(StoreError::Refused(Refusal::Revoked));
    }
    if let Some(r) = &job.roster {
        store_roster(tx, job, r).await?;
    }
    // Which of the job's envelopes the team holds already (one statement).
    let op = "find stored envelopes";
    let ids: Vec<&[u8]> = job.envelopes.iter().map(|e| &e.id.0[..]).collect();
    let mut known: HashMap<[u8; 16], i64> = HashMap::new();
    for row in tx
        .query(
            &tx.prepare_cached(
                "SELECT content_id, seq FROM envelopes WHERE team_id = $1 AND content_id = ANY($2)",
            )
            .await
            .map_err(StoreError::pg("find stored envelopes"))?,
            &[&team, &ids],
        )
        .await
        .map_err(StoreError::pg(op))?
    {
        known.insert(
            id16(col(&row, 0, op)?, "envelopes.content_id")?,
            col(&row, 1, op)?,
        );
    }
    let mut batch = Batch::default();
    let mut snapshots = Vec::new();
    let mut acks = Vec::with_capacity(job.envelopes.len());
    for env in &job.envelopes {
        if let Some(&seq) = known.get(&env.id.0) {
            // A duplicate (of a stored one, or of one earlier in this push).
            acks.push(Ack {
                id: env.id,
                seq: seq_u64(seq),
            });
            continue;
        }
        if env.author != job.device.0 {
            // A carried envelope: its author revoked since the check (or
            // before it) is stored only if the relay already holds it.
            let op = "check a carried envelope's author";
            let revoked: Option<bool> = match tx
                .query_opt(
                    "SELECT revoked FROM devices WHERE id = $1 AND team_id = $2",
                    &[&&env.author[..], &team],
                )
                .await
                .map_err(StoreError::pg(op))?
            {
                Some(r) => Some(col(&r, 0, op)?),
                None => None,
            };
            if revoked != Some(false) {
                acks.push(Ack { id: env.id, seq: 0 });
                continue;
            }
        }
        // Seqs in push order from the team's counter, under its lock.
        let seq = *next;
        *next += 1;
        known.insert(env.id.0, seq);
        batch.push(
            env,
            seq,
            (env.author != job.device.0).then_some(&job.device.0[..]),
        );
        if env.kind == EnvelopeKind::Snapshot && env.covers > 0 {
            snapshots.push((env, seq));
        }
        acks.push(Ack {
            id: env.id,
            seq: seq_u64(seq),
        });
    }
    if !batch.seq.is_empty() {
        // One statement for the job's new envelopes. No ON CONFLICT: under
        // the team lock nobody else stores this team's envelopes, so a
        // conflict would be a bug, and it fails the job rather than ack
        // a seq that was not stored.
        let insert = tx
            .prepare_cached(
                "INSERT INTO envelopes (team_id, seq, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at, sig, pushed_by)
             SELECT $1, u.seq, u.doc, u.kind, u.content_id, u.author, u.epoch, u.covers, u.nonce, u.ciphertext, u.size, $2, u.sig, u.pushed_by
             FROM unnest($3::bigint[], $4::bytea[], $5::bigint[], $6::bytea[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bytea[], $11::bytea[], $12::bigint[], $13::bytea[], $14::bytea[])
                  AS u(seq, doc, kind, content_id, author, epoch, covers, nonce, ciphertext, size, sig, pushed_by)",
            )
            .await
            .map_err(StoreError::pg("store envelopes"))?;
        tx.execute(
            &insert,
            &[
                &team,
                &job.now,
                &batch.seq,
                &batch.doc,
                &batch.kind,
                &batch.content_id,
                &batch.author,
                &batch.epoch,
                &batch.covers,
                &batch.nonce,
                &batch.ciphertext,
                &batch.size,
                &batch.sig,
                &batch.pushed_by,
            ],
        )
        .await
        .map_err(StoreError::pg("store envelopes"))?;
    }
    for (env, seq) in snapshots {
        // As in the SQLite store: only when first stored, and only what
        // was stored before it.
        let upto = seq_i64(env.covers).min(seq - 1);
        tx.execute(
            "UPDATE envelopes SET superseded_by = $4, superseded_at = $5
             WHERE team_id = $1 AND doc = $2 AND seq <= $3 AND superseded_at IS NULL",
            &[&team, &&env.doc[..], &upto, &seq, &job.now],
        )
        .await
        .map_err(StoreError::pg("compact a document"))?;
    }
    tx.execute(
        &tx.prepare_cached("UPDATE devices SET last_sync_at = $1 WHERE id = $2")
            .await
            .map_err(StoreError::pg("record a sync time"))?,
        &[&job.now, &&job.device.0[..]],
    )
    .await
    .map_err(StoreError::pg("record a sync time"))?;
    Ok(acks)
}

/// Stores a batch: set-based when no job carries a roster
/// ([`commit_set`]); otherwise, or when that path hands the batch back,
/// job by job. Also says whether it fell back.
pub(super) async fn commit_batch(
    c: &mut Object,
    jobs: &[PushJob],
    mut hold: Option<Hold>,
) -> Result<(Vec<JobResult>, bool), StoreError> {
    let mut fell_back = false;
    if jobs.iter().all(|j| j.roster.is_none()) {
        match commit_set(c, jobs, &mut hold).await? {
            SetOutcome::Done(results) => return Ok((results, false)),
            SetOutcome::Retry(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "a write batch failed before its commit; storing it job by job");
                fell_back = true;
            }
        }
    }
    Ok((commit_jobs(c, jobs, hold).await?, fell_back))
}

/// Why the set-based path gave a batch back: before its COMMIT was sent,
/// so nothing of it is stored and the per-job path may run it again.
enum SetOutcome {
    Done(Vec<JobResult>),
    Retry(StoreError),
}

/// A batch's new envelopes, column by column, for its COPY
/// (the team and the time per row: jobs of several teams and times).
#[derive(Default)]
struct Rows<'a> {
    team: Vec<&'a [u8]>,
    now: Vec<i64>,
    rest: Batch<'a>,
}

/// Stores a batch without a roster in a fixed number of statements,
/// whatever its number of jobs: lock its teams, read its devices and its
/// already-stored envelopes, assign seqs in job order, one insert, the
/// compactions in seq order, one update of the sync times and one of the
/// counters. The per-job path ([`commit_batch`]) costs six round trips a
/// job while every team lock of the batch is held; with a team's devices
/// behind two relays that serialises both relays' writers (issue 11's
/// storm). Same answers as the per-job path: the refusals it can give
/// (unknown team, device not in the team or revoked, a carried envelope's
/// author revoked) are decided here from the rows read under the locks;
/// any database error before COMMIT hands the batch back untouched.
async fn commit_set(
    c: &mut Object,
    jobs: &[PushJob],
    hold: &mut Option<Hold>,
) -> Result<SetOutcome, StoreError> {
    let tx = match c.transaction().await {
        Ok(tx) => tx,
        Err(e) => return Ok(SetOutcome::Retry(StoreError::pg("begin a write batch")(e))),
    };
    macro_rules! step {
        ($e:expr, $op:expr) => {
            match $e.await {
                Ok(v) => v,
                Err(e) => return Ok(SetOutcome::Retry(StoreError::pg($op)(e))),
            }
        };
    }
    macro_rules! read {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Ok(SetOutcome::Retry(e)),
            }
        };
    }
    let teams: Vec<&[u8]> = {
        let mut t: Vec<&[u8]> = jobs.iter().map(|j| &j.team.0[..]).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let op = "lock the batch's teams";
    let stmt = step!(
        tx.prepare_cached(
            "SELECT id, next_seq FROM teams WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        ),
        op
    );
    let rows = step!(tx.query(&stmt, &[&teams]), op);
    let mut next: BTreeMap<[u8; 16], i64> = BTreeMap::new();
    for r in &rows {
        next.insert(
            read!(id16(read!(col(r, 0, op)), "teams.id")),
            read!(col(r, 1, op)),
        );
    }
    // Every pushing device and every carried envelope's author, read after
    // the locks (a revocation committed while the batch waited is seen).
    let mut ids: Vec<&[u8]> = Vec::new();
    for job in jobs {
        ids.push(&job.device.0[..]);
        for env in &job.envelopes {
            if env.author != job.device.0 {
                ids.push(&env.author[..]);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let op = "check the pushing devices";
    let stmt = step!(
        tx.prepare_cached("SELECT id, team_id, revoked FROM devices WHERE id = ANY($1)"),
        op
    );
    let mut devices: HashMap<[u8; 16], ([u8; 16], bool)> = HashMap::new();
    for r in &step!(tx.query(&stmt, &[&ids]), op) {
        devices.insert(
            read!(id16(read!(col(r, 0, op)), "devices.id")),
            (
                read!(id16(read!(col(r, 1, op)), "devices.team_id")),
                read!(col(r, 2, op)),
            ),
        );
    }
    // Which of the batch's envelopes their teams hold already.
    let mut pairs: (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
    for job in jobs {
        for env in &job.envelopes {
            pairs.0.push(&job.team.0[..]);
            pairs.1.push(&env.id.0[..]);
        }
    }
    let op = "find stored envelopes";
    let stmt = step!(
        tx.prepare_cached(
            "SELECT e.team_id, e.content_id, e.seq FROM envelopes e
             JOIN unnest($1::bytea[], $2::bytea[]) AS u(team_id, content_id)
               ON e.team_id = u.team_id AND e.content_id = u.content_id",
        ),
        op
    );
    let mut known: HashMap<([u8; 16], [u8; 16]), i64> = HashMap::new();
    for r in &step!(tx.query(&stmt, &[&pairs.0, &pairs.1]), op) {
        known.insert(
            (
                read!(id16(read!(col(r, 0, op)), "envelopes.team_id")),
                read!(id16(read!(col(r, 1, op)), "envelopes.content_id")),
            ),
            read!(col(r, 2, op)),
        );
    }
    let mut rows = Rows::default();
    let mut snapshots: Vec<(&[u8], &Envelope, i64, i64)> = Vec::new();
    let mut synced: BTreeMap<[u8; 16], i64> = BTreeMap::new();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Some(n) = next.get_mut(&job.team.0) else {
            results.push(Err(StoreError::Refused(Refusal::UnknownTeam)));
            continue;
        };
        match devices.get(&job.device.0) {
            None => {
                results.push(Err(StoreError::Refused(Refusal::NotInTeam)));
                continue;
            }
            Some((_, true)) => {
                results.push(Err(StoreError::Refused(Refusal::Revoked)));
                continue;
            }
            Some((_, false)) => {}
        }
        let mut acks = Vec::with_capacity(job.envelopes.len());
        for env in &job.envelopes {
            if let Some(&seq) = known.get(&(job.team.0, env.id.0)) {
                acks.push(Ack {
                    id: env.id,
                    seq: seq_u64(seq),
                });
                continue;
            }
            if env.author != job.device.0 {
                let author_ok = devices
                    .get(&env.author)
                    .is_some_and(|(team, revoked)| *team == job.team.0 && !*revoked);
                if !author_ok {
                    acks.push(Ack { id: env.id, seq: 0 });
                    continue;
                }
            }
            let seq = *n;
            *n += 1;
            known.insert((job.team.0, env.id.0), seq);
            rows.team.push(&job.team.0[..]);
            rows.now.push(job.now);
            rows.rest.push(
                env,
                seq,
                (env.author != job.device.0).then_some(&job.device.0[..]),
            );
            if env.kind == EnvelopeKind::Snapshot && env.covers > 0 {
                snapshots.push((&job.team.0[..], env, seq, job.now));
            }
            acks.push(Ack {
                id: env.id,
                seq: seq_u64(seq),
            });
        }
        synced.insert(job.device.0, job.now);
        results.push(Ok(acks));
    }
    if !rows.team.is_empty() {
        // No ON CONFLICT, as in the per-job path: a conflict would be a bug;
        // COPY stops at it and the batch goes back to the per-job path
        // rather than ack a seq not stored.
        let op = "store envelopes";
        // COPY, binary: rows stream to the server in small messages, with
        // no bytea arrays to build on either side (allocation and copying
        // were a third of PostgreSQL's CPU in issue 11's storm with
        // `INSERT … SELECT FROM unnest`, BENCHMARKS.md).
        let sink = step!(
            tx.copy_in(
                "COPY envelopes (team_id, seq, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at, sig, pushed_by)
                 FROM STDIN (FORMAT binary)",
            ),
            op
        );
        let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
        let mut writer = std::pin::pin!(writer);
        let b = &rows.rest;
        for i in 0..b.seq.len() {
            step!(
                writer.as_mut().write(&[
                    &rows.team[i],
                    &b.seq[i],
                    &b.doc[i],
                    &b.kind[i],
                    &b.content_id[i],
                    &b.author[i],
                    &b.epoch[i],
                    &b.covers[i],
                    &b.nonce[i],
                    &b.ciphertext[i],
                    &b.size[i],
                    &rows.now[i],
                    &b.sig[i],
                    &b.pushed_by[i],
                ]),
                op
            );
        }
        step!(writer.finish(), op);
    }
    // In seq order within each team, as the per-job path runs them: each
    // supersedes only what was stored before it.
    snapshots.sort_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    for (team, env, seq, now) in snapshots {
        let upto = seq_i64(env.covers).min(seq - 1);
        step!(
            tx.execute(
                "UPDATE envelopes SET superseded_by = $4, superseded_at = $5
                 WHERE team_id = $1 AND doc = $2 AND seq <= $3 AND superseded_at IS NULL",
                &[&team, &&env.doc[..], &upto, &seq, &now],
            ),
            "compact a document"
        );
    }
    if !synced.is_empty() {
        let ids: Vec<&[u8]> = synced.keys().map(|k| &k[..]).collect();
        let nows: Vec<i64> = synced.values().copied().collect();
        let op = "record sync times";
        let stmt = step!(
            tx.prepare_cached(
                "UPDATE devices SET last_sync_at = u.now FROM unnest($1::bytea[], $2::bigint[]) AS u(id, now)
                 WHERE devices.id = u.id",
            ),
            op
        );
        step!(tx.execute(&stmt, &[&ids, &nows]), op);
    }
    let ids: Vec<&[u8]> = next.keys().map(|k| &k[..]).collect();
    let counters: Vec<i64> = next.values().copied().collect();
    let op = "advance the teams' seqs";
    let stmt = step!(
        tx.prepare_cached(
            "UPDATE teams SET next_seq = u.next FROM unnest($1::bytea[], $2::bigint[]) AS u(id, next)
             WHERE teams.id = u.id",
        ),
        op
    );
    step!(tx.execute(&stmt, &[&ids, &counters]), op);
    if let Some(h) = hold.take() {
        let _ = h.arrived.send(());
        let _ = h.release.recv();
    }
    // Sent: from here an error is the batch's (it may or may not have
    // committed), never a retry.
    tx.commit()
        .await
        .map_err(StoreError::pg("commit a write batch"))?;
    Ok(SetOutcome::Done(results))
}

/// Stores several jobs in one transaction, each under its own savepoint,
/// holding the row lock of every team of the batch until COMMIT.
async fn commit_jobs(
    c: &mut Object,
    jobs: &[PushJob],
    hold: Option<Hold>,
) -> Result<Vec<JobResult>, StoreError> {
    let mut tx = c
        .transaction()
        .await
        .map_err(StoreError::pg("begin a write batch"))?;
    // Every team of the batch locked in one statement, in id order: two
    // relays' batches take their locks in the same order (no deadlock).
    let teams: Vec<&[u8]> = {
        let mut t: Vec<&[u8]> = jobs.iter().map(|j| &j.team.0[..]).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let op = "lock the batch's teams";
    let rows = tx
        .query(
            &tx.prepare_cached(
                "SELECT id, next_seq FROM teams WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            )
            .await
            .map_err(StoreError::pg("lock the batch's teams"))?,
            &[&teams],
        )
        .await
        .map_err(StoreError::pg(op))?;
    let mut next: BTreeMap<[u8; 16], i64> = BTreeMap::new();
    for r in &rows {
        next.insert(id16(col(r, 0, op)?, "teams.id")?, col(r, 1, op)?);
    }
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Some(counter) = next.get(&job.team.0).copied() else {
            results.push(Err(StoreError::Refused(Refusal::UnknownTeam)));
            continue;
        };
        let mut n = counter;
        let sp = tx
            .savepoint("job")
            .await
            .map_err(StoreError::pg("open a savepoint"))?;
        match store_job(&sp, job, &mut n).await {
            Ok(acks) => {
                sp.commit()
                    .await
                    .map_err(StoreError::pg("release a savepoint"))?;
                next.insert(job.team.0, n);
                results.push(Ok(acks));
            }
            Err(e) => {
                // This job only; its numbers are taken by the next job.
                sp.rollback()
                    .await
                    .map_err(StoreError::pg("roll back a savepoint"))?;
                results.push(Err(e));
            }
        }
    }
    let ids: Vec<&[u8]> = next.keys().map(|k| &k[..]).collect();
    let counters: Vec<i64> = next.values().copied().collect();
    tx.execute(
        "UPDATE teams SET next_seq = u.next FROM unnest($1::bytea[], $2::bigint[]) AS u(id, next)
         WHERE teams.id = u.id",
        &[&ids, &counters],
    )
    .await
    .map_err(StoreError::pg("advance the teams' seqs"))?;
    if let Some(h) = hold {
        // Test only: hold the locks, seqs assigned, until released.
        let _ = h.arrived.send(());
        let _ = h.release.recv();
    }
    tx.commit()
        .await
        .map_err(StoreError::pg("commit a write batch"))?;
    Ok(results)
}

fn pulled_from(row: &Row) -> Result<Pulled, StoreError> {
    let op = "read an envelope";
    let seq: i64 = col(row, 0, op)?;
    let kind = match col::<i64>(row, 2, op)? {
        1 => EnvelopeKind::Change,
        2 => EnvelopeKind::Snapshot,
        _ => {
            return Err(StoreError::Corrupt {
                what: "envelopes.kind",
            })
        }
    };
    let nonce: [u8; 24] =
        col::<Vec<u8>>(row, 6, op)?
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                what: "envelopes.nonce",
            })?;
    let sig: [u8; 64] =
        col::<Vec<u8>>(row, 10, op)?
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                what: "envelopes.sig",
            })?;
    Ok(Pulled {
        seq: seq_u64(seq),
        envelope: Envelope {
            doc: id16(col(row, 1, op)?, "envelopes.doc")?,
            kind,
            epoch: u32::try_from(col::<i64>(row, 4, op)?).map_err(|_| StoreError::Corrupt {
                what: "envelopes.epoch",
            })?,
            id: ContentId(id16(col(row, 3, op)?, "envelopes.content_id")?),
            covers: seq_u64(col(row, 5, op)?),
            nonce,
            ciphertext: col(row, 7, op)?,
            author: id16(col(row, 9, op)?, "envelopes.author_device")?,
            sig,
        },
    })
}

fn member_from(row: &Row) -> Result<MemberKey, StoreError> {
    let op = "read a member";
    Ok(MemberKey {
        seq: seq_u64(col(row, 0, op)?),
        device: id16(col(row, 1, op)?, "devices.id")?,
        role: role_from(&col::<String>(row, 2, op)?)?,
        public: heartbridge_proto::DevicePublic {
            sign: key32(col(row, 3, op)?, "devices.sign_pk")?,
            kx: key32(col(row, 4, op)?, "devices.kx_pk")?,
        },
        epoch: u32::try_from(col::<i64>(row, 5, op)?).map_err(|_| StoreError::Corrupt {
            what: "devices.key_epoch",
        })?,
        proof: key32(col(row, 6, op)?, "devices.join_proof")?,
        revoked: col(row, 7, op)?,
    })
}

/// The statement that opens a pull's snapshot.
const PULL_BEGIN: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// The team's roster, with its newest seq (the cursor of a page with
/// nothing to send), in the pull's snapshot.
const ROSTER_SQL: &str = "SELECT roster, roster_version,
        (SELECT coalesce(max(seq), 0) FROM envelopes WHERE team_id = $1)
    FROM teams WHERE id = $1";

/// The member delta: devices that joined or changed since a member seq.
const MEMBERS_SQL: &str =
    "SELECT member_seq, id, role, sign_pk, kx_pk, key_epoch, join_proof, revoked FROM devices
    WHERE team_id = $1 AND member_seq > $2 ORDER BY member_seq";

/// One pull, from one REPEATABLE READ READ ONLY snapshot: roster, member
/// delta and page agree, and the page is a prefix of the team's seqs
/// (every seq is assigned under the team lock and visible in order).
///
/// Nearly always in one round trip: BEGIN, the roster, the member delta,
/// the page's first [`PULL_ROWS`] rows and COMMIT sent together
/// (tokio-postgres pipelines requests made at once; the server runs them
/// in order). A pull used three round trips (BEGIN, the three reads,
/// COMMIT), each a wake-up of the relay's driver thread, of the storage
/// thread and of the server: issue 11's storm makes 15,000 pulls. A page
/// whose [`PULL_ROWS`] rows all fit may take more, so it is read again
/// with the transaction kept open for further statements.
///
/// An error may leave the transaction open (a statement refused before it
/// was sent stops the ones after it, the COMMIT among them): it is rolled
/// back before the connection goes back to the pool, so no later pull
/// reads in this one's snapshot.
pub(super) async fn pull_page(c: &mut Object, q: &PullQuery) -> Result<Page, StoreError> {
    let client: &ClientWrapper = c;
    let page = match pull_in(client, q, true).await {
        Ok(Some(page)) => Ok(page),
        // Without `commit` the page is always read whole (`Some`).
        Ok(None) => pull_in(client, q, false).await.and_then(|p| {
            p.ok_or(StoreError::Corrupt {
                what: "a pull page",
            })
        }),
        Err(e) => Err(e),
    };
    if page.is_err() {
        // ROLLBACK outside a transaction is only a warning.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    page
}

/// The rows of a page statement, in seq order, taken while they fit in
/// `page_bytes` (the first one whatever its size). Says whether a row
/// did not fit (the page is full, `more`).
fn take_rows(
    rows: &[Row],
    page_bytes: u64,
    pull: &mut Vec<Pulled>,
    total: &mut u64,
) -> Result<bool, StoreError> {
    for row in rows {
        let op = "pull envelopes";
        let size = pulled_wire_len(
            seq_u64(col(row, 0, op)?),
            u32::try_from(col::<i64>(row, 4, op)?).unwrap_or(u32::MAX),
            seq_u64(col(row, 5, op)?),
            seq_u64(col(row, 8, op)?),
        );
        if !pull.is_empty() && *total + size > page_bytes {
            return Ok(true);
        }
        *total += size;
        pull.push(pulled_from(row)?);
    }
    Ok(false)
}

/// A pull in one snapshot. With `commit`, the COMMIT goes with the
/// first statements, and `None` says the page may take more rows than
/// the first statement returned. Without, the transaction stays open for
/// further statements within what is left of the page, and is committed
/// at the end. The page statement is bounded by the whole page's bytes,
/// since the member delta is not known yet when it is sent; the exact
/// bound is applied here.
async fn pull_in(
    client: &ClientWrapper,
    q: &PullQuery,
    commit: bool,
) -> Result<Option<Page>, StoreError> {
    let team: &[u8] = &q.team.0[..];
    let device: &[u8] = &q.device.0[..];
    let prepare = |sql: &'static str, op: &'static str| async move {
        client.prepare_cached(sql).await.map_err(StoreError::pg(op))
    };
    let roster_stmt = prepare(ROSTER_SQL, "read a roster").await?;
    let members_stmt = prepare(MEMBERS_SQL, "read members").await?;
    let stmt = prepare(PULL_SQL, "pull envelopes").await?;
    // Beside the ciphertext, a pulled envelope takes at least this much.
    let least = i64::try_from(pulled_wire_len(0, 0, 0, 0)).unwrap_or(0);
    let since = seq_i64(q.members_since);
    let cursor_i = seq_i64(q.cursor);
    let whole = i64::try_from(q.page_bytes).unwrap_or(i64::MAX);
    let ((), row, members, first, ()) = tokio::try_join!(
        async {
            client
                .batch_execute(PULL_BEGIN)
                .await
                .map_err(StoreError::pg("begin a pull"))
        },
        async {
            client
                .query_opt(&roster_stmt, &[&team])
                .await
                .map_err(StoreError::pg("read a roster"))
        },
        async {
            client
                .query(&members_stmt, &[&team, &since])
                .await
                .map_err(StoreError::pg("read members"))
        },
        async {
            client
                .query(
                    &stmt,
                    &[&team, &cursor_i, &device, &PULL_ROWS, &least, &whole],
                )
                .await
                .map_err(StoreError::pg("pull envelopes"))
        },
        async {
            if commit {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(StoreError::pg("end a pull"))?;
            }
            Ok(())
        },
    )?;
    let op = "read a roster";
    let row = row.ok_or(StoreError::Refused(Refusal::UnknownTeam))?;
    let roster: Option<Vec<u8>> = col(&row, 0, op)?;
    let version: i64 = col(&row, 1, op)?;
    let newest: i64 = col(&row, 2, op)?;
    let roster = roster.filter(|_| seq_u64(version) > q.roster_version);
    let members = members
        .iter()
        .map(member_from)
        .collect::<Result<Vec<_>, _>>()?;
    let page_bytes = q
        .page_bytes
        .saturating_sub(delta_wire_len(roster.as_deref(), &members));
    let mut pull = Vec::new();
    let mut total: u64 = 0;
    let mut rows = first;
    let more = loop {
        if take_rows(&rows, page_bytes, &mut pull, &mut total)? {
            break true;
        }
        if (rows.len() as i64) < PULL_ROWS {
            break false;
        }
        if commit {
            // Every row fitted and there may be more: not in this snapshot.
            return Ok(None);
        }
        // The next ones, in the same snapshot, within what is left.
        let after = seq_i64(pull.last().map_or(q.cursor, |p| p.seq));
        let left = i64::try_from(page_bytes.saturating_sub(total)).unwrap_or(i64::MAX);
        rows = client
            .query(&stmt, &[&team, &after, &device, &PULL_ROWS, &least, &left])
            .await
            .map_err(StoreError::pg("pull envelopes"))?;
    };
    if !commit {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(StoreError::pg("end a pull"))?;
    }
    let cursor = match pull.last() {
        Some(last) => last.seq,
        None => q.cursor.max(seq_u64(newest)),
    };
    Ok(Some(Page {
        roster,
        members,
        pull,
        cursor,
        more,
    }))
}
