//! Storage per team for `/metrics`: one grouped query.

use heartbridge_proto::TeamId;

use super::log::seq_u64;
use super::{col, id16};
use crate::error::StoreError;
use crate::storage::TeamUsage;

const OP: &str = "sum storage per team";

pub(super) async fn team_usage(c: &tokio_postgres::Client) -> Result<Vec<TeamUsage>, StoreError> {
    // `size` is kept beside each row and `blob_usage` per team, so no
    // ciphertext is read (nor detoasted).
    let rows = c
        .query(
            "SELECT t.id,
                    coalesce(e.live, 0)::bigint, coalesce(e.bytes, 0)::bigint,
                    coalesce(e.superseded, 0)::bigint, coalesce(b.bytes, 0)::bigint
             FROM teams t
             LEFT JOIN (SELECT team_id,
                               count(*) FILTER (WHERE superseded_at IS NULL) AS live,
                               sum(size) AS bytes,
                               count(*) FILTER (WHERE superseded_at IS NOT NULL) AS superseded
                        FROM envelopes GROUP BY team_id) e ON e.team_id = t.id
             LEFT JOIN blob_usage b ON b.team_id = t.id
             ORDER BY t.id",
            &[],
        )
        .await
        .map_err(StoreError::pg(OP))?;
    rows.iter()
        .map(|r| {
            Ok(TeamUsage {
                team: TeamId(id16(col(r, 0, OP)?, "teams.id")?),
                envelopes: seq_u64(col(r, 1, OP)?),
                envelope_bytes: seq_u64(col(r, 2, OP)?),
                superseded: seq_u64(col(r, 3, OP)?),
                blob_bytes: seq_u64(col(r, 4, OP)?),
            })
        })
        .collect()
}
