//! Lesson chunks (issue 10 item 7): sealed blobs named by the SHA-256 of
//! their bytes, per team. Opaque like envelopes: the relay holds no key.

use heartbridge_proto::TeamId;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::storage::{BlobPut, DeviceId};

/// Stores a chunk unless the team holds it already or it would pass the
/// team's quota (0: none), in one `IMMEDIATE` transaction on the write
/// connection (durable: `synchronous = FULL`).
pub(super) fn put(
    conn: &mut Connection,
    team: TeamId,
    id: [u8; 32],
    bytes: &[u8],
    pushed_by: DeviceId,
    now: i64,
    quota: u64,
) -> Result<BlobPut, StoreError> {
    let err = StoreError::sqlite("store a lesson chunk");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite("store a lesson chunk"))?;
    let known = tx
        .prepare_cached("SELECT 1 FROM blobs WHERE team_id = ?1 AND id = ?2")
        .and_then(|mut s| s.exists(params![&team.0[..], &id[..]]))
        .map_err(StoreError::sqlite("store a lesson chunk"))?;
    if known {
        return Ok(BlobPut::Known);
    }
    if quota > 0 {
        let used: i64 = tx
            .prepare_cached("SELECT coalesce(sum(size), 0) FROM blobs WHERE team_id = ?1")
            .and_then(|mut s| s.query_row([&team.0[..]], |r| r.get(0)))
            .map_err(StoreError::sqlite("store a lesson chunk"))?;
        if used.max(0) as u64 + bytes.len() as u64 > quota {
            return Ok(BlobPut::OverQuota);
        }
    }
    tx.prepare_cached(
        "INSERT INTO blobs (team_id, id, bytes, size, pushed_by, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &team.0[..],
            &id[..],
            bytes,
            bytes.len() as i64,
            &pushed_by.0[..],
            now
        ])
    })
    .map_err(StoreError::sqlite("store a lesson chunk"))?;
    tx.commit().map_err(err)?;
    Ok(BlobPut::Stored)
}

pub(super) fn get(
    conn: &Connection,
    team: TeamId,
    id: [u8; 32],
) -> Result<Option<Vec<u8>>, StoreError> {
    conn.prepare_cached("SELECT bytes FROM blobs WHERE team_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![&team.0[..], &id[..]], |r| r.get(0))
                .optional()
        })
        .map_err(StoreError::sqlite("read a lesson chunk"))
}

pub(super) fn have(
    conn: &Connection,
    team: TeamId,
    ids: &[[u8; 32]],
) -> Result<Vec<bool>, StoreError> {
    let mut s = conn
        .prepare_cached("SELECT 1 FROM blobs WHERE team_id = ?1 AND id = ?2")
        .map_err(StoreError::sqlite("look up lesson chunks"))?;
    ids.iter()
        .map(|id| {
            s.exists(params![&team.0[..], &id[..]])
                .map_err(StoreError::sqlite("look up lesson chunks"))
        })
        .collect()
}
