//! The sync engine's side of two-level receipts: a venue relay's
//! acknowledgement (level 1) keeps the part in the outbox, recorded in
//! `outbox_venue_acked` with its content id; the part is not pushed to that
//! venue relay again, its id rides in the next requests to it
//! ([`heartbridge_proto::venue_wire::RequestExt`]), and when the venue relay
//! answers that the central relay holds it (level 2) it is recorded as if
//! the central relay had acknowledged it. Pushed to the central relay
//! itself, it is acknowledged there as usual (the relay deduplicates).
//! Carried envelopes (other members', from a bundle) follow the same rule
//! (review F5): a venue relay's acknowledgement marks the `carried` row
//! (`venue_relay`), the row leaves on level 2.

use heartbridge_proto::ContentId;
use rusqlite::{params, Connection, OptionalExtension};

use super::outbound::{self, AckOutcome, Planned};
use crate::error::Result;
use crate::model::now_ms;

/// Most ids a request asks about (the rest in the next requests).
pub(super) const MAX_WAIT_IDS: usize = 2048;

/// The parts of `batch` the venue relay at `relay` acknowledged.
pub(super) fn venue_acked_parts(conn: &Connection, batch: i64, relay: &str) -> Result<Vec<u32>> {
    let mut st =
        conn.prepare_cached("SELECT idx FROM outbox_venue_acked WHERE batch = ?1 AND relay = ?2")?;
    let rows = st.query_map(params![batch, relay], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Records a venue relay's acknowledgement of one planned part.
pub(super) fn record_venue_ack(conn: &Connection, planned: &Planned, relay: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO outbox_venue_acked (batch, idx, id, relay, at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (batch, idx) DO UPDATE SET id = excluded.id, relay = excluded.relay",
        params![
            planned.batch,
            planned.index,
            &planned.envelope.id.0[..],
            relay,
            now_ms()
        ],
    )?;
    Ok(())
}

/// Records a venue relay's acknowledgement of a carried envelope (another
/// member's, `carried` row `row`): kept until the central relay holds it
/// (review F5), not pushed to that venue relay again.
pub(super) fn record_carried_venue_ack(conn: &Connection, row: i64, relay: &str) -> Result<()> {
    conn.execute(
        "UPDATE carried SET venue_relay = ?2, venue_at = ?3 WHERE id = ?1",
        params![row, relay, now_ms()],
    )?;
    Ok(())
}

/// The content ids of parts (and carried envelopes) the venue relay at
/// `relay` holds and the central relay has not confirmed yet, oldest first.
pub(super) fn waiting_ids(conn: &Connection, relay: &str) -> Result<Vec<ContentId>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM (
             SELECT id, at, batch, idx FROM outbox_venue_acked WHERE relay = ?1
             UNION ALL
             SELECT content_id, venue_at, -id, 0 FROM carried WHERE venue_relay = ?1)
         ORDER BY at, batch, idx LIMIT ?2",
    )?;
    let rows = st.query_map(params![relay, MAX_WAIT_IDS as i64], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(id) = <[u8; 16]>::try_from(row?) {
            out.push(ContentId(id));
        }
    }
    Ok(out)
}

/// The central relay holds the part with content id `id` (a venue relay
/// said so): recorded as its acknowledgement there. `None` if no waiting
/// part has that id.
pub(super) fn record_central(
    conn: &Connection,
    id: &ContentId,
) -> Result<Option<(AckOutcome, [u8; 16])>> {
    let row: Option<(i64, u32, Option<Vec<u8>>, String)> = conn
        .query_row(
            "SELECT v.batch, v.idx, b.grp, b.doc_id FROM outbox_venue_acked v
             JOIN outbox_batches b ON b.batch = v.batch WHERE v.id = ?1",
            [&id.0[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((batch, index, grp, doc)) = row else {
        // A carried envelope (another member's) the central relay now
        // holds: carried no more.
        let carried: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, doc_id FROM carried WHERE content_id = ?1",
                [&id.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((row, doc)) = carried else {
            return Ok(None);
        };
        conn.execute("DELETE FROM carried WHERE id = ?1", [row])?;
        let doc = crate::model::DocId::parse(&doc, "document")?;
        return Ok(Some((AckOutcome::Carried, super::doc_bytes(&doc))));
    };
    let group = grp.and_then(|g| <[u8; 16]>::try_from(g).ok());
    let outcome = outbound::record_part(conn, batch, index, group)?;
    conn.execute(
        "DELETE FROM outbox_venue_acked WHERE batch = ?1 AND idx = ?2",
        params![batch, index],
    )?;
    let doc = crate::model::DocId::parse(&doc, "document")?;
    Ok(Some((outcome, super::doc_bytes(&doc))))
}
