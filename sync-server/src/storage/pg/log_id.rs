//! The log's id in PostgreSQL (migration 2, table `relay_log`).

use super::col;
use crate::error::StoreError;
use crate::storage::LogId;

pub(super) const GET: &str = "read the log id";
pub(super) const RENEW: &str = "make a new log id";

pub(super) async fn get(c: &tokio_postgres::Client) -> Result<LogId, StoreError> {
    let r = c
        .query_one("SELECT log_id FROM relay_log", &[])
        .await
        .map_err(StoreError::pg(GET))?;
    let id: Vec<u8> = col(&r, 0, GET)?;
    Ok(LogId(super::id16(id, "relay_log.log_id")?))
}

pub(super) async fn renew(c: &tokio_postgres::Client, now: i64) -> Result<LogId, StoreError> {
    let id = LogId(rand::random());
    let n = c
        .execute(
            "UPDATE relay_log SET log_id = $1, made_at = $2",
            &[&&id.0[..], &now],
        )
        .await
        .map_err(StoreError::pg(RENEW))?;
    if n != 1 {
        return Err(StoreError::Corrupt {
            what: "relay_log (not one row)",
        });
    }
    Ok(id)
}
