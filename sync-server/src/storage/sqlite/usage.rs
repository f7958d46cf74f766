//! Storage per team for `/metrics`: one grouped query.

use heartbridge_proto::TeamId;
use rusqlite::Connection;

use super::{id16, seq_u64};
use crate::error::StoreError;
use crate::storage::TeamUsage;

const OP: &str = "sum storage per team";

pub(super) fn team_usage(conn: &Connection) -> Result<Vec<TeamUsage>, StoreError> {
    // `size` is kept beside each row, so no ciphertext is read.
    let mut stmt = conn
        .prepare_cached(
            "SELECT t.id, coalesce(e.live, 0), coalesce(e.bytes, 0), coalesce(e.superseded, 0),
                    coalesce(b.bytes, 0)
             FROM teams t
             LEFT JOIN (SELECT team_id,
                               sum(superseded_at IS NULL) AS live,
                               sum(size) AS bytes,
                               sum(superseded_at IS NOT NULL) AS superseded
                        FROM envelopes GROUP BY team_id) e ON e.team_id = t.id
             LEFT JOIN (SELECT team_id, sum(size) AS bytes FROM blobs GROUP BY team_id) b
                    ON b.team_id = t.id
             ORDER BY t.id",
        )
        .map_err(StoreError::sqlite(OP))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, envelopes, envelope_bytes, superseded, blob_bytes) =
            row.map_err(StoreError::sqlite(OP))?;
        out.push(TeamUsage {
            team: TeamId(id16(id, "teams.id")?),
            envelopes: seq_u64(envelopes),
            envelope_bytes: seq_u64(envelope_bytes),
            superseded: seq_u64(superseded),
            blob_bytes: seq_u64(blob_bytes),
        });
    }
    Ok(out)
}
