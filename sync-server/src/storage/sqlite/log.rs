//! The envelope log on SQLite: group-committed pushes with deduplication
//! and compaction, and byte-bounded pulls.

use heartbridge_proto::{Ack, ContentId, Envelope, EnvelopeKind, MemberKey, Pulled};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{begin, id16, key32, role_from};
use crate::error::{Refusal, StoreError};
use crate::storage::{
    delta_wire_len, pulled_wire_len, JobResult, Page, PullQuery, PushJob, RosterUpload,
};

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

/// Stores a roster upload unless the stored one is as new; the same bytes
/// again (a retried upload) are fine.
fn store_roster(tx: &Connection, job: &PushJob, r: &RosterUpload) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE teams SET roster = ?1, roster_version = ?2, key_epoch = max(key_epoch, ?3)
             WHERE id = ?4 AND roster_version < ?2",
        )
        .and_then(|mut s| s.execute(params![r.bytes, seq_i64(r.version), r.epoch, job.team.0]))
        .map_err(StoreError::sqlite("store a roster"))?;
    if changed == 1 {
        for (epoch, check) in &r.key_checks {
            tx.prepare_cached(
                "INSERT INTO key_checks (team_id, epoch, key_check) VALUES (?1, ?2, ?3)
                 ON CONFLICT (team_id, epoch) DO UPDATE SET key_check = ?3",
            )
            .and_then(|mut s| s.execute(params![job.team.0, epoch, check]))
            .map_err(StoreError::sqlite("store a key check"))?;
        }
        return Ok(());
    }
    let stored: Option<Vec<u8>> = tx
        .query_row(
            "SELECT roster FROM teams WHERE id = ?1",
            [job.team.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite("read a roster"))?
        .flatten();
    if stored.as_deref() == Some(&r.bytes[..]) {
        Ok(())
    } else {
        Err(StoreError::Refused(Refusal::StaleRoster))
    }
}

/// Stores one job's roster and envelopes; returns the acks in push order.
fn store_job(tx: &Connection, job: &PushJob) -> Result<Vec<Ack>, StoreError> {
    // Revoked while this push waited for the writer: nothing of it is
    // stored, so nothing of the device lies past its cut-off.
    let revoked: bool = tx
        .prepare_cached("SELECT revoked FROM devices WHERE id = ?1")
        .and_then(|mut s| s.query_row([job.device.0], |r| r.get(0)))
        .map_err(StoreError::sqlite("check a pushing device"))?;
    if revoked {
        return Err(StoreError::Refused(Refusal::Revoked));
    }
    if let Some(r) = &job.roster {
        store_roster(tx, job, r)?;
    }
    let err = StoreError::sqlite("store an envelope");
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO envelopes (team_id, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at, sig, pushed_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (team_id, content_id) DO NOTHING
             RETURNING seq",
        )
        .map_err(err)?;
    let mut existing = tx
        .prepare_cached("SELECT seq FROM envelopes WHERE team_id = ?1 AND content_id = ?2")
        .map_err(StoreError::sqlite("find a stored envelope"))?;
    // Superseded, not deleted: the purge deletes them once the grace has
    // passed, and until then the compaction can be undone.
    let mut compact = tx
        .prepare_cached(
            "UPDATE envelopes SET superseded_by = ?4, superseded_at = ?5
             WHERE team_id = ?1 AND doc = ?2 AND seq <= ?3 AND superseded_at IS NULL",
        )
        .map_err(StoreError::sqlite("compact a document"))?;
    let mut author_revoked = tx
        .prepare_cached("SELECT revoked FROM devices WHERE id = ?1 AND team_id = ?2")
        .map_err(StoreError::sqlite("check a carried envelope's author"))?;
    let mut acks = Vec::with_capacity(job.envelopes.len());
    for env in &job.envelopes {
        if env.author != job.device.0 {
            // A carried envelope: its author revoked since the check (or
            // before it) is stored only if the relay already holds it.
            let revoked: Option<bool> = author_revoked
                .query_row(params![env.author, job.team.0], |r| r.get(0))
                .optional()
                .map_err(StoreError::sqlite("check a carried envelope's author"))?;
            if revoked != Some(false) {
                let held: Option<i64> = existing
                    .query_row(params![job.team.0, env.id.0], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::sqlite("find a stored envelope"))?;
                acks.push(Ack {
                    id: env.id,
                    seq: held.map_or(0, seq_u64),
                });
                continue;
            }
        }
        let inserted: Option<i64> = insert
            .query_row(
                params![
                    job.team.0,
                    env.doc,
                    kind_code(env.kind),
                    env.id.0,
                    env.author,
                    env.epoch,
                    seq_i64(env.covers),
                    env.nonce,
                    env.ciphertext,
                    env.ciphertext.len() as i64,
                    job.now,
                    env.sig,
                    // A carried envelope: who pushed it (NULL: its author).
                    (env.author != job.device.0).then_some(job.device.0),
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
                .execute(params![job.team.0, env.doc, upto, seq, job.now])
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
    // Envelopes stored before the relay kept signatures carry none.
    let sig: [u8; 64] = match row
        .get::<_, Option<Vec<u8>>>(10)
        .map_err(StoreError::sqlite("read an envelope"))?
    {
        None => [0; 64],
        Some(v) => v.try_into().map_err(|_| StoreError::Corrupt {
            what: "envelopes.sig",
        })?,
    };
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
            author: id16(get_blob(9)?, "envelopes.author_device")?,
            sig,
        },
    })
}

fn member_from(row: &Row<'_>) -> Result<MemberKey, StoreError> {
    let err = || StoreError::sqlite("read a member");
    let seq: i64 = row.get(0).map_err(err())?;
    let role: String = row.get(2).map_err(err())?;
    Ok(MemberKey {
        seq: seq_u64(seq),
        device: id16(row.get(1).map_err(err())?, "devices.id")?,
        role: role_from(&role)?,
        public: heartbridge_proto::DevicePublic {
            sign: key32(row.get(3).map_err(err())?, "devices.sign_pk")?,
            kx: key32(row.get(4).map_err(err())?, "devices.kx_pk")?,
        },
        epoch: row.get(5).map_err(err())?,
        proof: key32(row.get(6).map_err(err())?, "devices.join_proof")?,
        revoked: row.get(7).map_err(err())?,
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

/// The roster if newer than the device's, the member changes since its
/// seq, and one page of the team's live log past `cursor` (other devices'
/// envelopes only), at most `page_bytes` on the wire together (at least one
/// envelope), in one read transaction.
pub(super) fn pull_page(conn: &mut Connection, q: &PullQuery) -> Result<Page, StoreError> {
    let tx = conn
        .transaction()
        .map_err(StoreError::sqlite("begin a pull"))?;
    let (roster, version): (Option<Vec<u8>>, i64) = tx
        .prepare_cached("SELECT roster, roster_version FROM teams WHERE id = ?1")
        .and_then(|mut s| s.query_row([q.team.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(StoreError::sqlite("read a roster"))?;
    let roster = roster.filter(|_| seq_u64(version) > q.roster_version);
    let mut members = Vec::new();
    {
        // Devices enrolled before the relay kept keys are not members
        // anyone can check (they can push nothing).
        let mut stmt = tx
            .prepare_cached(
                "SELECT member_seq, id, role, sign_pk, kx_pk, key_epoch, join_proof, revoked FROM devices
                 WHERE team_id = ?1 AND member_seq > ?2 AND sign_pk IS NOT NULL ORDER BY member_seq",
            )
            .map_err(StoreError::sqlite("read members"))?;
        let mut rows = stmt
            .query(params![q.team.0, seq_i64(q.members_since)])
            .map_err(StoreError::sqlite("read members"))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite("read members"))? {
            members.push(member_from(row)?);
        }
    }
    let page_bytes = q
        .page_bytes
        .saturating_sub(delta_wire_len(roster.as_deref(), &members));
    let mut pull = Vec::new();
    let mut more = false;
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT seq, doc, kind, content_id, epoch, covers, nonce, ciphertext, size, author_device, sig FROM envelopes
                 WHERE team_id = ?1 AND seq > ?2 AND author_device <> ?3
                   AND (pushed_by IS NULL OR pushed_by <> ?3) AND superseded_at IS NULL ORDER BY seq",
            )
            .map_err(StoreError::sqlite("pull envelopes"))?;
        let mut rows = stmt
            .query(params![q.team.0, seq_i64(q.cursor), q.device.0])
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
                    [q.team.0],
                    |r| r.get(0),
                )
                .map_err(StoreError::sqlite("find the newest envelope"))?;
            q.cursor.max(seq_u64(max))
        }
    };
    tx.commit().map_err(StoreError::sqlite("end a pull"))?;
    Ok(Page {
        roster,
        members,
        pull,
        cursor,
        more,
    })
}
