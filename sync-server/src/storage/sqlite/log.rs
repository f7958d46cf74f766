//! The envelope log on SQLite: group-committed pushes with deduplication
//! and compaction, and byte-bounded pulls.

use heartbridge_proto::{Ack, ContentId, Envelope, EnvelopeKind, Pulled, TeamId};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{begin, id16};
use crate::error::StoreError;
use crate::storage::{pulled_wire_len, DeviceId, JobResult, Page, PushJob};

fn kind_code(kind: EnvelopeKind) -> i64 {
    match kind {
        EnvelopeKind::Change => 1,
        EnvelopeKind::Snapshot => 2,
    }
}

pub(super) fn seq_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

pub(super) fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Stores one job's envelopes; returns their acks in push order.
fn store_job(tx: &Connection, job: &PushJob) -> Result<Vec<Ack>, StoreError> {
    let err = StoreError::sqlite("store an envelope");
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO envelopes (team_id, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (team_id, content_id) DO NOTHING
             RETURNING seq",
        )
        .map_err(err)?;
    let mut existing = tx
        .prepare_cached("SELECT seq FROM envelopes WHERE team_id = ?1 AND content_id = ?2")
        .map_err(StoreError::sqlite("find a stored envelope"))?;
    let mut compact = tx
        .prepare_cached("DELETE FROM envelopes WHERE team_id = ?1 AND doc = ?2 AND seq <= ?3")
        .map_err(StoreError::sqlite("compact a document"))?;
    let mut acks = Vec::with_capacity(job.envelopes.len());
    for env in &job.envelopes {
        let inserted: Option<i64> = insert
            .query_row(
                params![
                    job.team.0,
                    env.doc,
                    kind_code(env.kind),
                    env.id.0,
                    job.device.0,
                    env.epoch,
                    seq_i64(env.covers),
                    env.nonce,
                    env.ciphertext,
                    env.ciphertext.len() as i64,
                    job.now,
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::sqlite("store an envelope"))?;
        let seq = match inserted {
            Some(seq) => seq,
            None => existing
                .query_row(params![job.team.0, env.id.0], |r| r.get(0))
                .map_err(StoreError::sqlite("find a stored envelope"))?,
        };
        if inserted.is_some() && env.kind == EnvelopeKind::Snapshot && env.covers > 0 {
            // A snapshot supersedes only what was stored before it, and only
            // when it is first stored: a duplicate (the same snapshot pushed
            // again, or a twin from a device holding the identical
            // document) carries another device's `covers`, which may reach
            // past the first copy's own earlier parts.
            let upto = seq_i64(env.covers).min(seq - 1);
            compact
                .execute(params![job.team.0, env.doc, upto])
                .map_err(StoreError::sqlite("compact a document"))?;
        }
        acks.push(Ack {
            id: env.id,
            seq: seq_u64(seq),
        });
    }
    tx.prepare_cached("UPDATE devices SET last_sync_at = ?1 WHERE id = ?2")
        .and_then(|mut s| s.execute(params![job.now, job.device.0]))
        .map_err(StoreError::sqlite("record a sync time"))?;
    Ok(acks)
}

fn pulled_from(row: &Row<'_>) -> Result<Pulled, StoreError> {
    let err = StoreError::sqlite("read an envelope");
    let seq: i64 = row.get(0).map_err(err)?;
    let get_blob = |i: usize| -> Result<Vec<u8>, StoreError> {
        row.get(i).map_err(StoreError::sqlite("read an envelope"))
    };
    let kind = match row
        .get::<_, i64>(2)
        .map_err(StoreError::sqlite("read an envelope"))?
    {
        1 => EnvelopeKind::Change,
        2 => EnvelopeKind::Snapshot,
        _ => {
            return Err(StoreError::Corrupt {
                what: "envelopes.kind",
            })
        }
    };
    let nonce: [u8; 24] = get_blob(6)?.try_into().map_err(|_| StoreError::Corrupt {
        what: "envelopes.nonce",
    })?;
    let epoch: u32 = row.get(4).map_err(StoreError::sqlite("read an envelope"))?;
    let covers: i64 = row.get(5).map_err(StoreError::sqlite("read an envelope"))?;
    Ok(Pulled {
        seq: seq_u64(seq),
        envelope: Envelope {
            doc: id16(get_blob(1)?, "envelopes.doc")?,
            kind,
            epoch,
            id: ContentId(id16(get_blob(3)?, "envelopes.content_id")?),
            covers: seq_u64(covers),
            nonce,
            ciphertext: get_blob(7)?,
        },
    })
}

/// Stores several jobs in one transaction, each under its own savepoint.
pub(super) fn commit_batch(
    conn: &mut Connection,
    jobs: &[PushJob],
) -> Result<Vec<JobResult>, StoreError> {
    let mut tx = begin(conn, "begin a write batch")?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        // A savepoint per job: one failing job does not sink the others.
        let sp = tx
            .savepoint()
            .map_err(StoreError::sqlite("open a savepoint"))?;
        match store_job(&sp, job) {
            Ok(acks) => {
                sp.commit()
                    .map_err(StoreError::sqlite("release a savepoint"))?;
                results.push(Ok(acks));
            }
            Err(e) => {
                drop(sp); // rolls back this job only
                results.push(Err(e));
            }
        }
    }
    tx.commit()
        .map_err(StoreError::sqlite("commit a write batch"))?;
    Ok(results)
}

/// One page of the team's log past `cursor`, other devices' envelopes only,
/// at most `page_bytes` on the wire (at least one envelope), in one read
/// transaction.
pub(super) fn pull_page(
    conn: &mut Connection,
    team: TeamId,
    device: DeviceId,
    cursor: u64,
    page_bytes: u64,
) -> Result<Page, StoreError> {
    let tx = conn
        .transaction()
        .map_err(StoreError::sqlite("begin a pull"))?;
    let mut pull = Vec::new();
    let mut more = false;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT seq, doc, kind, content_id, epoch, covers, nonce, ciphertext, size FROM envelopes
                 WHERE team_id = ?1 AND seq > ?2 AND author_device <> ?3 ORDER BY seq",
            )
            .map_err(StoreError::sqlite("pull envelopes"))?;
        let mut rows = stmt
            .query(params![team.0, seq_i64(cursor), device.0])
            .map_err(StoreError::sqlite("pull envelopes"))?;
        let mut total: u64 = 0;
        while let Some(row) = rows.next().map_err(StoreError::sqlite("pull envelopes"))? {
            let read = |i| -> Result<i64, StoreError> {
                row.get(i).map_err(StoreError::sqlite("pull envelopes"))
            };
            // What the envelope costs on the wire, framing included.
            let size = pulled_wire_len(
                seq_u64(read(0)?),
                u32::try_from(read(4)?).unwrap_or(u32::MAX),
                seq_u64(read(5)?),
                seq_u64(read(8)?),
            );
            if !pull.is_empty() && total + size > page_bytes {
                more = true;
                break;
            }
            total += size;
            pull.push(pulled_from(row)?);
        }
    }
    let cursor = match pull.last() {
        Some(last) => last.seq,
        None => {
            let max: i64 = tx
                .query_row(
                    "SELECT coalesce(max(seq), 0) FROM envelopes WHERE team_id = ?1",
                    [team.0],
                    |r| r.get(0),
                )
                .map_err(StoreError::sqlite("find the newest envelope"))?;
            cursor.max(seq_u64(max))
        }
    };
    tx.commit().map_err(StoreError::sqlite("end a pull"))?;
    Ok(Page { pull, cursor, more })
}
