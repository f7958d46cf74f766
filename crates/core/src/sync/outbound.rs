//! What the device pushes: the outbox frozen into batches, large batches
//! cut into parts, snapshots that supersede a document's history.
//!
//! A batch is fixed the first time it is planned (`outbox_batches`), so a
//! retry after a lost answer seals exactly the same plaintext: the same
//! content ids, which the relay deduplicates. A batch leaves the device
//! only when the relay has acknowledged every one of its parts, in the
//! transaction that records the last acknowledgement.

use heartbridge_proto::{ContentId, Envelope, EnvelopeKind, Part, Role};
use rusqlite::{params, Connection, OptionalExtension};

use super::{doc_bytes, tag};
use crate::enroll::Team;
use crate::error::{Error, Result};
use crate::model::{now_ms, DocId, DocKind};
use crate::store::load_doc_in;

/// Payload bytes per part: small enough that a part crosses a link that
/// drops the connection every ~50 KB.
pub const PART_BYTES: usize = 16 * 1024;
/// Outbox bytes of one document frozen into one batch.
const BATCH_BYTES: usize = 256 * 1024;
/// Envelopes per push (the relay refuses pushes above its own cap).
pub const MAX_PUSH_ENVELOPES: usize = 256;

/// One envelope planned for a push, and what it stands for locally.
pub(crate) struct Planned {
    pub envelope: Envelope,
    /// The outbox batch, or for a carried envelope (another member's,
    /// imported from a bundle) minus its `carried` row id.
    pub batch: i64,
    pub index: u32,
    /// The part group, for a batch in parts.
    pub group: Option<[u8; 16]>,
}

impl Planned {
    /// The `carried` row this envelope stands for, if it is carried.
    pub(crate) fn carried(&self) -> Option<i64> {
        (self.batch < 0).then_some(-self.batch)
    }
}

struct Batch {
    batch: i64,
    doc: DocId,
    kind: DocKind,
    covers: Option<i64>,
    parts: u32,
}

/// Freezes the outbox rows not yet in a batch: one batch per document (up
/// to [`BATCH_BYTES`], or one larger row alone), in outbox order.
pub(crate) fn freeze_outbox(conn: &Connection, team: &Team) -> Result<()> {
    let rows: Vec<(i64, String, String, Vec<u8>)> = {
        let mut st = conn.prepare_cached(
            "SELECT seq, doc_id, kind, bytes FROM outbox WHERE batch IS NULL ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    // (doc, kind, seqs, payload) in order of each document's first row.
    let mut open: Vec<(String, String, Vec<i64>, Vec<u8>)> = Vec::new();
    let mut done: Vec<(String, String, Vec<i64>, Vec<u8>)> = Vec::new();
    for (seq, doc, kind, bytes) in rows {
        match open.iter().position(|g| g.0 == doc) {
            Some(i) if open[i].3.len() + bytes.len() <= BATCH_BYTES => {
                open[i].2.push(seq);
                open[i].3.extend_from_slice(&bytes);
            }
            Some(i) => {
                done.push(open.remove(i));
                open.push((doc, kind, vec![seq], bytes));
            }
            None => open.push((doc, kind, vec![seq], bytes)),
        }
    }
    done.extend(open);
    let now = now_ms();
    for (doc, kind, seqs, payload) in done {
        // A case's batch is sealed under its case key now, once: a retry
        // pushes these very bytes.
        let payload = crate::access::seal_outgoing(
            conn,
            team,
            &DocId::parse(&doc, "document")?,
            kind.parse()?,
            payload,
        )?;
        let parts = part_count(payload.len());
        conn.execute(
            "INSERT INTO outbox_batches (doc_id, kind, snapshot_covers, payload, parts, created_at)
             VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
            params![doc, kind, payload, parts, now],
        )?;
        let batch = conn.last_insert_rowid();
        let mut st = conn.prepare_cached("UPDATE outbox SET batch = ?1 WHERE seq = ?2")?;
        for seq in seqs {
            st.execute(params![batch, seq])?;
        }
    }
    Ok(())
}

pub(super) fn part_count(len: usize) -> u32 {
    len.div_ceil(PART_BYTES).max(1) as u32
}

/// Freezes a snapshot of `doc` covering the log up to `covers`, if the
/// rule allows: the device holds every envelope of the document up to its
/// cursor applied — none of its own changes waits in the outbox, no pulled
/// change of it waits for dependencies, no part of it is incomplete — and
/// no snapshot of it is already on its way. Returns whether one was made.
pub(super) fn freeze_snapshot(
    conn: &Connection,
    team: &Team,
    actor: &automerge::ActorId,
    doc: &DocId,
    covers: u64,
) -> Result<bool> {
    let blocked: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE doc_id = ?1)
             OR EXISTS (SELECT 1 FROM pending_changes WHERE doc_id = ?1)
             OR EXISTS (SELECT 1 FROM inbound_parts WHERE doc_id = ?1)
             OR EXISTS (SELECT 1 FROM held_envelopes WHERE doc_id = ?1)
             OR EXISTS (SELECT 1 FROM locked_payloads WHERE doc_id = ?1)
             OR EXISTS (SELECT 1 FROM outbox_batches WHERE doc_id = ?1 AND snapshot_covers IS NOT NULL)",
        [doc.as_str()],
        |r| r.get(0),
    )?;
    if blocked {
        return Ok(false);
    }
    let Some((kind, mut doc_am)) = load_doc_in(conn, doc, actor)? else {
        return Ok(false);
    };
    // Only the lead's changes count in the team settings: a snapshot by
    // anyone else would be refused everywhere.
    if kind == DocKind::TeamSettings && team.role != Role::Lead {
        return Ok(false);
    }
    let payload = crate::access::seal_outgoing(conn, team, doc, kind, doc_am.save())?;
    conn.execute(
        "INSERT INTO outbox_batches (doc_id, kind, snapshot_covers, payload, parts, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            doc.as_str(),
            kind.as_str(),
            covers as i64,
            payload,
            part_count(payload.len()),
            now_ms()
        ],
    )?;
    Ok(true)
}

fn batches(conn: &Connection) -> Result<Vec<Batch>> {
    // Changes before snapshots; key grants first (a reader needs the key
    // before the case), then high and critical cases (an escalation goes
    // first on every link), then oldest first. The relay sees only the
    // order.
    let mut st = conn.prepare_cached(
        "SELECT batch, doc_id, kind, snapshot_covers, parts FROM outbox_batches b
         ORDER BY snapshot_covers IS NOT NULL, kind <> 'grants',
             NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = b.doc_id AND c.risk_rank >= 3),
             batch",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (batch, doc, kind, covers, parts) = row?;
        out.push(Batch {
            batch,
            doc: DocId::parse(&doc, "document")?,
            kind: kind.parse()?,
            covers,
            parts: parts as u32,
        });
    }
    Ok(out)
}

fn acked_parts(conn: &Connection, batch: i64) -> Result<Vec<u32>> {
    let mut st = conn.prepare_cached("SELECT idx FROM outbox_parts_acked WHERE batch = ?1")?;
    let rows = st.query_map([batch], |r| r.get::<_, i64>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r? as u32);
    }
    Ok(out)
}

/// Seals the envelopes of the next push: parts not yet acknowledged, within
/// `budget` sealed bytes (at least one envelope) and
/// [`MAX_PUSH_ENVELOPES`]. The last part of a snapshot is the one the relay
/// compacts on, so it goes only after every other part is acknowledged.
///
/// Carried envelopes go last, less those the relay talked to (a venue
/// relay) already holds and those in `skip` (a venue relay refused them in
/// this sync: its mirror may be behind, the central relay may take them).
pub(super) fn plan_push(
    conn: &Connection,
    team: &Team,
    budget: usize,
    skip: &[i64],
) -> Result<Vec<Planned>> {
    let mut out = plan(conn, team, budget, MAX_PUSH_ENVELOPES, true, None)?;
    // Then what this device carries for others (a bundle it imported):
    // high and critical cases first, as far as this device can tell.
    let mut used: usize = out.iter().map(|p| p.envelope.wire_size()).sum();
    let at_relay = carried_at(conn, &team.relay_url)?;
    for (row, envelope) in carried(conn, None)? {
        if at_relay.contains(&row) || skip.contains(&row) {
            continue;
        }
        if !out.is_empty() && (used >= budget || out.len() >= MAX_PUSH_ENVELOPES) {
            break;
        }
        used += envelope.wire_size();
        out.push(Planned {
            envelope,
            batch: -row,
            index: 0,
            group: None,
        });
    }
    Ok(out)
}

/// The `carried` rows the venue relay at `relay` holds (level 1).
pub(crate) fn carried_at(conn: &Connection, relay: &str) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached("SELECT id FROM carried WHERE venue_relay = ?1")?;
    let rows = st.query_map([relay], |r| r.get(0))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The envelopes this device carries for other members (`carried`), high
/// and critical cases first (as far as this device can read them), then in
/// the order they came; only `doc`'s if given.
pub(crate) fn carried(conn: &Connection, doc: Option<&str>) -> Result<Vec<(i64, Envelope)>> {
    let mut st = conn.prepare_cached(
        "SELECT r.id, r.envelope FROM carried r
         WHERE ?1 IS NULL OR r.doc_id = ?1
         ORDER BY NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = r.doc_id AND c.risk_rank >= 3), r.id",
    )?;
    let rows = st.query_map([doc], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, bytes) = row?;
        let envelope: Envelope =
            heartbridge_proto::decode("carried envelope", &bytes).map_err(|e| Error::Protocol {
                detail: e.to_string(),
            })?;
        out.push((id, envelope));
    }
    Ok(out)
}

/// Seals every envelope of the outbox not yet acknowledged, as a push
/// would (the same content ids), within `budget` bytes and `max`
/// envelopes; snapshots only if `snapshots`, and only `doc`'s batches (and
/// the key grants) if given.
pub(crate) fn plan(
    conn: &Connection,
    team: &Team,
    budget: usize,
    max: usize,
    snapshots: bool,
    doc_only: Option<&DocId>,
) -> Result<Vec<Planned>> {
    let grants = crate::access::grants_doc_id(&team.team_id);
    let me = crate::enroll::device_secret(conn)?.ok_or_else(|| Error::Protocol {
        detail: "this device has no signing key: join the team again".into(),
    })?;
    let author = team.device_bytes().ok_or_else(|| Error::Protocol {
        detail: "this device's id is unreadable".into(),
    })?;
    // Only the lead and supervisors may let the relay compact.
    let may_compact = matches!(team.role, Role::Lead | Role::Supervisor);
    let mut out: Vec<Planned> = Vec::new();
    let mut used = 0usize;
    'batches: for b in batches(conn)? {
        if !out.is_empty() && (used >= budget || out.len() >= max) {
            break;
        }
        if (!snapshots && b.covers.is_some())
            || doc_only.is_some_and(|d| *d != b.doc && b.doc != grants)
        {
            continue;
        }
        // Only the batches this push reaches are read and hashed.
        let payload: Vec<u8> = conn
            .prepare_cached("SELECT payload FROM outbox_batches WHERE batch = ?1")?
            .query_row([b.batch], |r| r.get(0))?;
        let mut acked = acked_parts(conn, b.batch)?;
        // Parts the relay talked to (a venue relay) already acknowledged
        // wait there for the central relay: not pushed to it again.
        acked.extend(super::venue::venue_acked_parts(
            conn,
            b.batch,
            &team.relay_url,
        )?);
        let doc = doc_bytes(&b.doc);
        let group = if b.parts > 1 {
            let fresh = Part::group_id(&team.key, &team.team_id, &doc, &payload);
            conn.execute(
                "UPDATE outbox_batches SET grp = ?1 WHERE batch = ?2 AND grp IS NULL",
                params![&fresh[..], b.batch],
            )?;
            let stored: Vec<u8> = conn.query_row(
                "SELECT grp FROM outbox_batches WHERE batch = ?1",
                [b.batch],
                |r| r.get(0),
            )?;
            Some(stored.try_into().unwrap_or(fresh))
        } else {
            None
        };
        for index in 0..b.parts {
            if acked.contains(&index) {
                continue;
            }
            let last = index + 1 == b.parts;
            if b.covers.is_some() && last && (acked.len() as u32) + 1 < b.parts {
                // Final part of a snapshot waits for the others.
                continue;
            }
            if !out.is_empty() && (used >= budget || out.len() >= max) {
                break 'batches;
            }
            let start = index as usize * PART_BYTES;
            let end = (start + PART_BYTES).min(payload.len());
            let slice = if b.parts > 1 {
                &payload[start..end]
            } else {
                &payload[..]
            };
            let kind = match b.covers {
                Some(_) if last => EnvelopeKind::Snapshot,
                _ => EnvelopeKind::Change,
            };
            let part = group.map(|group| Part {
                group,
                index,
                count: b.parts,
            });
            let mut envelope = Envelope::seal_part(
                &team.key,
                team.epoch,
                &team.team_id,
                doc,
                kind,
                tag(b.kind),
                part,
                slice,
            )
            .map_err(|e| Error::Protocol {
                detail: e.to_string(),
            })?;
            if kind == EnvelopeKind::Snapshot && may_compact {
                envelope.covers = b.covers.unwrap_or(0).max(0) as u64;
            }
            envelope.sign(&team.team_id, author, &me);
            used += envelope.wire_size();
            out.push(Planned {
                envelope,
                batch: b.batch,
                index,
                group,
            });
        }
    }
    Ok(out)
}

/// What recording one acknowledgement did.
pub(super) enum AckOutcome {
    /// A part is stored at the relay; its batch still has parts to go.
    Part,
    /// The batch is complete: its outbox rows (this many) left the device.
    Changes(usize),
    /// A snapshot of this document is complete.
    Snapshot(DocId),
    /// A carried envelope (another member's) is at the relay.
    Carried,
}

/// The central relay refused one planned envelope of another member's (its
/// author revoked, unknown there, or its signature or role wrong): pushing
/// it again gets the same answer, so it is pushed no more; the refusal and
/// the sealed envelope are kept in `carried_refused` (not destroyed on the
/// relay's word: a revoked author's note written before the revocation may
/// be one) for the status screen. Only a central relay's refusal comes
/// here: a venue relay's says
/// nothing of the central relay (review F5). Returns whether it was a
/// carried one (a refusal of this device's own is not dropped).
pub(super) fn drop_refused(conn: &Connection, planned: &Planned, reason: &str) -> Result<bool> {
    match planned.carried() {
        Some(row) => {
            // The reason is the relay's word: a short kind, cut if longer.
            let reason: String = reason.chars().take(40).collect();
            conn.execute(
                "INSERT INTO carried_refused (content_id, doc_id, reason, at, envelope)
                 SELECT content_id, doc_id, ?2, ?3, envelope FROM carried WHERE id = ?1
                 ON CONFLICT (content_id) DO UPDATE SET reason = excluded.reason, at = excluded.at,
                     envelope = excluded.envelope",
                params![row, reason, now_ms()],
            )?;
            conn.execute("DELETE FROM carried WHERE id = ?1", [row])?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Records the relay's acknowledgement of one planned envelope.
pub(super) fn record_ack(conn: &Connection, planned: &Planned) -> Result<AckOutcome> {
    if let Some(row) = planned.carried() {
        // Another member's envelope, now at the relay: carried no more.
        conn.execute("DELETE FROM carried WHERE id = ?1", [row])?;
        return Ok(AckOutcome::Carried);
    }
    record_part(conn, planned.batch, planned.index, planned.group)
}

/// Records that the central relay holds part `index` of `batch` (pushed
/// to it, or confirmed by a venue relay's answer); the batch leaves once
/// every part is there.
pub(super) fn record_part(
    conn: &Connection,
    batch: i64,
    index: u32,
    group: Option<[u8; 16]>,
) -> Result<AckOutcome> {
    let planned = PartRef {
        batch,
        index,
        group,
    };
    conn.execute(
        "INSERT INTO outbox_parts_acked (batch, idx) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![planned.batch, planned.index],
    )?;
    // At the central relay now: no longer waiting at a venue relay.
    conn.execute(
        "DELETE FROM outbox_venue_acked WHERE batch = ?1 AND idx = ?2",
        params![planned.batch, planned.index],
    )?;
    let row: Option<(i64, Option<i64>, String)> = conn
        .query_row(
            "SELECT parts, snapshot_covers, doc_id FROM outbox_batches WHERE batch = ?1",
            [planned.batch],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((parts, covers, doc)) = row else {
        return Ok(AckOutcome::Part);
    };
    let acked: i64 = conn.query_row(
        "SELECT count(*) FROM outbox_parts_acked WHERE batch = ?1",
        [planned.batch],
        |r| r.get(0),
    )?;
    if acked < parts {
        return Ok(AckOutcome::Part);
    }
    let rows = conn.execute("DELETE FROM outbox WHERE batch = ?1", [planned.batch])?;
    conn.execute(
        "DELETE FROM outbox_parts_acked WHERE batch = ?1",
        [planned.batch],
    )?;
    conn.execute(
        "DELETE FROM outbox_batches WHERE batch = ?1",
        [planned.batch],
    )?;
    if let Some(group) = planned.group {
        // A device holding the identical document may have pushed the same
        // parts (same group id): whatever of them this device pulled is its
        // own payload, and a part of it pulled later is a duplicate.
        conn.execute("DELETE FROM inbound_parts WHERE grp = ?1", [&group[..]])?;
        conn.execute(
            "INSERT INTO parts_done (grp, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![&group[..], now_ms()],
        )?;
    }
    let doc = DocId::parse(&doc, "document")?;
    Ok(match covers {
        Some(_) => AckOutcome::Snapshot(doc),
        None => AckOutcome::Changes(rows),
    })
}

struct PartRef {
    batch: i64,
    index: u32,
    group: Option<[u8; 16]>,
}

/// Content ids planned in one push, to match acknowledgements.
pub(super) fn find<'a>(planned: &'a [Planned], id: &ContentId) -> Option<&'a Planned> {
    planned.iter().find(|p| p.envelope.id == *id)
}
