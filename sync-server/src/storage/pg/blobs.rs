//! Lesson chunks on PostgreSQL. The quota is kept in `blob_usage` (one row
//! per team, updated in the chunk's transaction), not under the team lock,
//! so chunk uploads never queue behind push batches.

use deadpool_postgres::Object;
use heartbridge_proto::TeamId;

use super::log::seq_i64;
use crate::error::StoreError;
use crate::storage::{BlobPut, DeviceId};

pub(super) async fn put(
    c: &mut Object,
    team: TeamId,
    id: [u8; 32],
    bytes: &[u8],
    pushed_by: DeviceId,
    now: i64,
    quota: u64,
) -> Result<BlobPut, StoreError> {
    let op = "store a lesson chunk";
    let tx = c.transaction().await.map_err(StoreError::pg(op))?;
    let size = bytes.len() as i64;
    // A concurrent put of the same chunk waits here on the key and then
    // inserts nothing.
    let inserted = tx
        .execute(
            "INSERT INTO blobs (team_id, id, bytes, size, pushed_by, at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (team_id, id) DO NOTHING",
            &[&&team.0[..], &&id[..], &bytes, &size, &&pushed_by.0[..], &now],
        )
        .await
        .map_err(StoreError::pg(op))?;
    if inserted == 0 {
        return Ok(BlobPut::Known); // the transaction rolls back on drop
    }
    let counted = tx
        .execute(
            "INSERT INTO blob_usage (team_id, bytes) VALUES ($1, $2)
             ON CONFLICT (team_id) DO UPDATE SET bytes = blob_usage.bytes + EXCLUDED.bytes
             WHERE $3::bigint = 0 OR blob_usage.bytes + EXCLUDED.bytes <= $3::bigint",
            &[&&team.0[..], &size, &seq_i64(quota)],
        )
        .await
        .map_err(StoreError::pg(op))?;
    if counted == 0 || (quota > 0 && size as u64 > quota) {
        return Ok(BlobPut::OverQuota);
    }
    tx.commit().await.map_err(StoreError::pg(op))?;
    Ok(BlobPut::Stored)
}

pub(super) async fn get(
    c: &tokio_postgres::Client,
    team: TeamId,
    id: [u8; 32],
) -> Result<Option<Vec<u8>>, StoreError> {
    let op = "read a lesson chunk";
    let row = c
        .query_opt(
            "SELECT bytes FROM blobs WHERE team_id = $1 AND id = $2",
            &[&&team.0[..], &&id[..]],
        )
        .await
        .map_err(StoreError::pg(op))?;
    row.map(|r| super::col(&r, 0, op)).transpose()
}

pub(super) async fn have(
    c: &tokio_postgres::Client,
    team: TeamId,
    ids: &[[u8; 32]],
) -> Result<Vec<bool>, StoreError> {
    let op = "look up lesson chunks";
    let wanted: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
    let rows = c
        .query(
            "SELECT id FROM blobs WHERE team_id = $1 AND id = ANY($2)",
            &[&&team.0[..], &wanted],
        )
        .await
        .map_err(StoreError::pg(op))?;
    let mut held = std::collections::HashSet::new();
    for r in &rows {
        held.insert(super::col::<Vec<u8>>(r, 0, op)?);
    }
    Ok(ids.iter().map(|i| held.contains(&i[..])).collect())
}
