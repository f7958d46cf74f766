//! Two-level receipts (issue 10): an envelope a venue relay acknowledged is
//! at level 1 and stays in the outbox; it leaves only once the central
//! relay has it (level 2), learned from the venue relay's answer or by
//! pushing it to the central relay itself. And the key a device signs its
//! requests to a venue relay with.

use crate::enroll::device_secret;
use crate::error::{Error, Result};
use crate::proto::DeviceSecret;
use crate::store::Store;

impl Store {
    /// This device's id (hex) and signing key, for signing requests to a
    /// venue relay (`HB-Sig`): it never shows a venue relay its token.
    pub fn request_signer(&self) -> Result<(String, DeviceSecret)> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let me = device_secret(self.conn())?.ok_or_else(|| Error::Protocol {
            detail: "this device has no signing key: join the team again".into(),
        })?;
        Ok((team.device_id, me))
    }
}

/// Where this device's changes are, for `heartbridge status`, the shift
/// receipt and the app: still only here, at a venue relay (level 1), or
/// (having left the outbox) at the central relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptLevels {
    /// Changes waiting in the outbox (grants and facts left out, as in
    /// [`Store::outbox_len`]).
    pub waiting: usize,
    /// Of them, those a venue relay holds whole (every part of their batch
    /// acknowledged there or at the central relay): not yet confirmed at
    /// the central relay.
    pub at_venue: usize,
}

impl Store {
    /// The outbox numbers of the rows a venue relay holds whole (level 1).
    pub fn outbox_at_venue(&self) -> Result<std::collections::HashSet<i64>> {
        let mut st = self.conn().prepare_cached(
            "SELECT o.seq FROM outbox o JOIN outbox_batches b ON b.batch = o.batch
             WHERE EXISTS (SELECT 1 FROM outbox_venue_acked v WHERE v.batch = b.batch)
               AND (SELECT count(*) FROM outbox_venue_acked v WHERE v.batch = b.batch)
                 + (SELECT count(*) FROM outbox_parts_acked a WHERE a.batch = b.batch) >= b.parts",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many of this device's changes wait here, and how many of those
    /// a venue relay already holds.
    pub fn receipt_levels(&self) -> Result<ReceiptLevels> {
        let at_venue: i64 = self.conn().query_row(
            "SELECT count(*) FROM outbox o JOIN outbox_batches b ON b.batch = o.batch
             WHERE o.kind NOT IN ('grants', 'facts')
               AND EXISTS (SELECT 1 FROM outbox_venue_acked v WHERE v.batch = b.batch)
               AND (SELECT count(*) FROM outbox_venue_acked v WHERE v.batch = b.batch)
                 + (SELECT count(*) FROM outbox_parts_acked a WHERE a.batch = b.batch) >= b.parts",
            [],
            |r| r.get(0),
        )?;
        Ok(ReceiptLevels {
            waiting: self.outbox_len()?,
            at_venue: at_venue.max(0) as usize,
        })
    }
}
