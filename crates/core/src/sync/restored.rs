//! A relay that went back in time (issue 11 (h) 2).
//!
//! A relay restored from a backup (or a PostgreSQL recovered to a point in
//! time) hands out its seqs again from where the backup ended: a device
//! whose cursor is past that point would skip what the relay now stores at
//! those numbers, and what it pushed after the backup was acknowledged (and
//! left its outbox) but is gone from the relay. The relay says so by a new
//! log id in its answers (`ResponseExt::log_id`). The device keeps the id
//! last seen per relay (`sync_state.log_id` for the active relay, parked in
//! `relays.log_id` with the cursor for the others) and, when it changes,
//! starts over with that relay in **one transaction**: the cursor and the
//! member seq go back to 0 (everything is pulled again; content ids and
//! Automerge make what it holds already a no-op), acknowledgements of
//! unfinished batches' parts are forgotten (those parts may be gone), and a
//! snapshot of every document it holds is queued (`covers` 0: it compacts
//! nothing, since the old `covers` count in the old log's seqs), with a
//! grant of every case key it holds to that key's recorded holders
//! (`access::regrant_held_keys`), so nothing it holds is missing from the
//! relay afterwards and its teammates can open it. The new id is stored in
//! that same transaction: a device that dies before it commits still has
//! the old id, and its next sync does all of it again.

use heartbridge_proto::venue_wire::LogId;
use rusqlite::{params, Connection, OptionalExtension};

use crate::enroll::Team;
use crate::error::Result;
use crate::model::{now_ms, DocId, DocKind};
use crate::proto::Role;
use crate::store::load_doc_in;

/// What the device knew of the relay's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// The same log as before, or a relay that sends no log id.
    Same,
    /// The first id this device sees from this relay: stored, nothing else.
    First,
    /// Another log than the one this device synced with: it started over.
    Changed,
}

/// The log id last seen from the active relay.
fn stored(conn: &Connection) -> Result<Option<[u8; 16]>> {
    let v: Option<Vec<u8>> = conn
        .query_row("SELECT log_id FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    Ok(v.and_then(|v| v.try_into().ok()))
}

/// Compares the relay's log id with the one stored; stores a first one, and
/// on a change starts over with the relay (see the module docs). Runs in
/// the caller's transaction, which commits it whole or not at all. Returns
/// what it found, and for a change the number of documents queued again.
pub(super) fn check(
    conn: &Connection,
    team: &Team,
    actor: &automerge::ActorId,
    venue: bool,
    id: LogId,
) -> Result<(Seen, usize)> {
    match stored(conn)? {
        Some(known) if known == id.0 => Ok((Seen::Same, 0)),
        None => {
            conn.execute(
                "UPDATE sync_state SET log_id = ?1 WHERE id = 1",
                [&id.0[..]],
            )?;
            Ok((Seen::First, 0))
        }
        Some(_) => {
            let queued = start_over(conn, team, actor, venue)?;
            #[cfg(test)]
            if DIE_BEFORE_COMMIT.with(|d| d.replace(false)) {
                return Err(crate::Error::Protocol {
                    detail: "test: the process died before the new log id was committed".into(),
                });
            }
            conn.execute(
                "UPDATE sync_state SET log_id = ?1 WHERE id = 1",
                [&id.0[..]],
            )?;
            Ok((Seen::Changed, queued))
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Test only: make the next change of log id fail after everything but
    /// its commit, as a process killed at that point would.
    pub(crate) static DIE_BEFORE_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn start_over(
    conn: &Connection,
    team: &Team,
    actor: &automerge::ActorId,
    venue: bool,
) -> Result<usize> {
    // Everything is pulled again: the envelopes, and the member entries
    // (the relay's member seqs went back too).
    conn.execute(
        "UPDATE sync_state SET cursor = 0, members_seq = 0 WHERE id = 1",
        [],
    )?;
    // A snapshot on its way counts `covers` in the old log's seqs: in the
    // new one it could supersede what the relay now stores at those numbers.
    crate::relays::drop_snapshot_batches(conn)?;
    if venue {
        // A venue relay's log went back: what it acknowledged (level 1) may
        // be gone from it, so it is pushed to it again. Snapshots never go
        // to a venue relay (review F2); what the central relay confirmed
        // (level 2) is there, not at the venue relay.
        conn.execute(
            "DELETE FROM outbox_venue_acked WHERE relay = ?1",
            [&team.relay_url],
        )?;
        conn.execute(
            "UPDATE carried SET venue_relay = NULL, venue_at = NULL WHERE venue_relay = ?1",
            [&team.relay_url],
        )?;
        return Ok(0);
    }
    // Parts of unfinished batches the old log acknowledged may be gone:
    // every part goes again (the relay deduplicates what it holds).
    conn.execute("DELETE FROM outbox_parts_acked", [])?;
    // The case keys it holds go again too (grants are no document: they
    // left the outbox when acknowledged), then every document.
    let trust = crate::team::Trust::load(conn, team)?;
    crate::access::regrant_held_keys(conn, team, &trust)?;
    queue_every_document(conn, team, actor)
}

/// A snapshot of every document this device holds, sealed as every push is
/// (a case under its case key, `access::seal_outgoing`), with `covers` 0.
fn queue_every_document(
    conn: &Connection,
    team: &Team,
    actor: &automerge::ActorId,
) -> Result<usize> {
    let ids: Vec<String> = {
        let mut st = conn.prepare("SELECT id FROM documents ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut queued = 0;
    for id in ids {
        let id = DocId::parse(&id, "document")?;
        let Some((kind, mut doc)) = load_doc_in(conn, &id, actor)? else {
            continue;
        };
        // Only the lead's changes count in the team settings (a snapshot by
        // anyone else is refused everywhere); the lead's device sends it.
        if kind == DocKind::TeamSettings && team.role != Role::Lead {
            continue;
        }
        let payload = crate::access::seal_outgoing(conn, team, &id, kind, doc.save())?;
        conn.execute(
            "INSERT INTO outbox_batches (doc_id, kind, snapshot_covers, payload, parts, created_at)
             VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            params![
                id.as_str(),
                kind.as_str(),
                payload,
                super::outbound::part_count(payload.len()),
                now_ms()
            ],
        )?;
        queued += 1;
    }
    Ok(queued)
}
