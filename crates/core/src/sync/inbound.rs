//! What the device does with pulled envelopes: open, gather parts, merge.
//!
//! Three outcomes, kept apart: an envelope that does not open or does not
//! parse is *refused* (recorded with its kind, never applied, the sync goes
//! on); a change whose dependencies are missing *waits* durably
//! (`pending_changes`) and is applied once they arrive; a failure of this
//! device (disk, database, a stored document that does not load) *stops*
//! the sync with its error, and the cursor does not move past it.

use automerge::ActorId;
use heartbridge_proto::{Opened, Part, Pulled};
use rusqlite::{params, Connection};

use super::untag;
use crate::access::Unsealed;
use crate::enroll::Team;
use crate::error::Result;
use crate::model::{now_ms, DocId, DocKind};
use crate::store::{apply_remote_in, MergeError, Merged};
use crate::team::{Trust, Verdict};
use heartbridge_proto::Role;

/// What became of one pulled envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Changed,
    Unchanged,
    /// Kept until its dependencies arrive.
    Waiting,
    /// A part kept until the other parts of its payload arrive.
    PartKept,
    Refused,
    /// Its author or key epoch is not known here yet: kept whole in
    /// `held_envelopes` and retried when they arrive.
    Held,
    /// Sealed under a case key (or oversight key) this device was not
    /// given: kept in `locked_payloads`, opened if a grant brings the key.
    Locked,
}

/// Opens and merges one pulled envelope inside the caller's transaction.
/// `central`: `pulled.seq` is the central relay's (not a venue relay's), so
/// a revocation's cut-off can be compared with it (review F4). `Err` only
/// for a local failure: the caller rolls back and stops.
pub(crate) fn receive(
    tx: &Connection,
    actor: &ActorId,
    team: &Team,
    trust: &Trust,
    pulled: &Pulled,
    central: bool,
) -> Result<Outcome> {
    let env = &pulled.envelope;
    let doc_hex = hex::encode(env.doc);
    let seq = pulled.seq as i64;
    let refuse = |reason: &str| -> Result<Outcome> {
        tx.execute(
            "INSERT INTO refused (seq, doc_id, content_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq, doc_hex, env.id.to_hex(), reason, now_ms()],
        )?;
        Ok(Outcome::Refused)
    };
    let verdict = trust.check(env, central.then_some(pulled.seq));
    if !matches!(verdict, Verdict::Hold(_)) {
        // Decided now (pulled again, from the central relay or with its
        // author known): a copy held earlier is decided with it.
        tx.execute(
            "DELETE FROM held_envelopes WHERE content_id = ?1",
            [&env.id.0[..]],
        )?;
    }
    let key = match verdict {
        Verdict::Accept(key) => key,
        Verdict::Refuse(reason) => return refuse(reason),
        Verdict::Hold(reason) => {
            // A seq that is not the central relay's is kept negated, so a
            // retry knows the cut-off cannot be compared with it; a central
            // seq replaces it when the envelope is pulled there.
            tx.execute(
                "INSERT INTO held_envelopes (content_id, seq, doc_id, envelope, reason, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (content_id) DO UPDATE SET reason = ?5,
                     seq = CASE WHEN ?2 > 0 THEN ?2 ELSE held_envelopes.seq END",
                params![
                    &env.id.0[..],
                    if central { seq } else { -seq },
                    doc_hex,
                    heartbridge_proto::encode(env),
                    reason,
                    now_ms()
                ],
            )?;
            return Ok(Outcome::Held);
        }
    };
    let opened = match env.open(&key, trust.team_id()) {
        Ok(o) => o,
        Err(heartbridge_proto::OpenError::Authentication(_)) => return refuse("unopenable"),
        Err(heartbridge_proto::OpenError::TooLarge(_)) => return refuse("too large"),
        Err(heartbridge_proto::OpenError::Damaged(_)) => return refuse("damaged"),
    };
    let Ok(id) = DocId::parse(&doc_hex, "document") else {
        return refuse("damaged");
    };
    let kind = untag(opened.doc_kind);
    let content = Some(&env.id.0[..]);
    let payload = match opened.part {
        None => opened.bytes,
        Some(part) => match gather(tx, &id, kind, part, &opened, seq)? {
            Gathered::Complete(bytes) => bytes,
            Gathered::Incomplete => return Ok(Outcome::PartKept),
            Gathered::Duplicate => return Ok(Outcome::Unchanged),
            Gathered::Inconsistent => return refuse("inconsistent part"),
        },
    };
    // The key layer: who may read which case.
    let payload = match kind {
        DocKind::Grants => {
            return match crate::access::receive_grants(tx, trust, team, &env.author, &payload, seq)?
            {
                Err(reason) => refuse(reason),
                Ok(scopes) => unlock(tx, actor, team, &scopes),
            }
        }
        // Facts are for the lead and supervisors: a volunteer never holds
        // the oversight key, and keeps nothing of them.
        DocKind::Facts if team.role == Role::Volunteer => return Ok(Outcome::Unchanged),
        DocKind::Facts => return take_facts(tx, trust.team_id(), &id, &payload, seq, content),
        DocKind::Case => {
            match crate::access::unseal_case(tx, trust.team_id(), &id, payload, seq, content)? {
                Unsealed::Open(plain) => plain,
                Unsealed::Locked => return Ok(Outcome::Locked),
                Unsealed::Refused(reason) => return refuse(reason),
            }
        }
        DocKind::TeamSettings if trust.role_of(&env.author) != Some(Role::Lead) => {
            return refuse("team settings not from the lead")
        }
        _ => payload,
    };
    merge(tx, actor, &id, kind, &payload, seq)
}

fn refuse_in(tx: &Connection, seq: i64, doc: &DocId, reason: &str) -> Result<Outcome> {
    tx.execute(
        "INSERT INTO refused (seq, doc_id, content_id, reason, at) VALUES (?1, ?2, '', ?3, ?4)",
        params![seq, doc.as_str(), reason, now_ms()],
    )?;
    Ok(Outcome::Refused)
}

/// Opens facts with the oversight key held here (or keeps them locked)
/// and takes them in.
fn take_facts(
    tx: &Connection,
    team: &heartbridge_proto::TeamId,
    id: &DocId,
    payload: &[u8],
    seq: i64,
    content: Option<&[u8]>,
) -> Result<Outcome> {
    let lists = match crate::access::open_facts(tx, team, id, payload, seq, content)? {
        Err(reason) => return refuse_in(tx, seq, id, reason),
        Ok(None) => return Ok(Outcome::Locked),
        Ok(Some(lists)) => lists,
    };
    let mut facts = Vec::new();
    for bytes in lists {
        match crate::facts::decode(&bytes) {
            Ok(list) => facts.extend(list),
            Err(_) => return refuse_in(tx, seq, id, "damaged facts"),
        }
    }
    Ok(if crate::facts::ingest_in(tx, &facts)? > 0 {
        Outcome::Changed
    } else {
        Outcome::Unchanged
    })
}

/// After a grant brought keys: opens and merges every payload that waited
/// for them, in log order.
fn unlock(tx: &Connection, actor: &ActorId, team: &Team, scopes: &[String]) -> Result<Outcome> {
    let mut outcome = Outcome::Unchanged;
    for scope in scopes {
        for (seq, content, doc, kind, opened) in
            crate::access::take_unlocked(tx, &team.team_id, scope)?
        {
            let o = match (kind, opened) {
                (_, Err(reason)) => refuse_in(tx, seq, &doc, reason)?,
                (DocKind::Facts, Ok(payload)) => {
                    take_facts(tx, &team.team_id, &doc, &payload, seq, content.as_deref())?
                }
                (_, Ok(plain)) => merge(tx, actor, &doc, kind, &plain, seq)?,
            };
            if o == Outcome::Changed {
                outcome = Outcome::Changed;
            }
        }
    }
    Ok(outcome)
}

/// Merges an opened payload into its document; a refused one rolls back
/// alone and is recorded.
fn merge(
    tx: &Connection,
    actor: &ActorId,
    id: &DocId,
    kind: DocKind,
    payload: &[u8],
    seq: i64,
) -> Result<Outcome> {
    // A savepoint per envelope: a refused one rolls back alone.
    tx.execute_batch("SAVEPOINT envelope")?;
    match apply_remote_in(tx, actor, id, kind, payload, seq) {
        Ok(merged) => {
            tx.execute_batch("RELEASE envelope")?;
            Ok(match merged {
                Merged::Changed => Outcome::Changed,
                Merged::Unchanged => Outcome::Unchanged,
                Merged::Waiting => Outcome::Waiting,
            })
        }
        Err(MergeError::Refused(reason)) => {
            tx.execute_batch("ROLLBACK TO envelope; RELEASE envelope")?;
            refuse_in(tx, seq, id, reason)
        }
        Err(MergeError::Local(e)) => {
            let _ = tx.execute_batch("ROLLBACK TO envelope; RELEASE envelope");
            Err(e)
        }
    }
}

/// Tries every held envelope again, in log order (after the roster, a
/// member or a key arrived). Each comes back out of `held_envelopes`
/// unless it still cannot be decided.
pub(super) fn retry_held(
    tx: &Connection,
    actor: &ActorId,
    team: &Team,
    trust: &Trust,
) -> Result<Vec<(Outcome, [u8; 16])>> {
    // In local arrival order (the id), never by relay seq: two relays'
    // seqs name different envelopes.
    let held: Vec<(i64, i64, Vec<u8>)> = {
        let mut st = tx.prepare("SELECT id, seq, envelope FROM held_envelopes ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut out = Vec::new();
    for (row, seq, bytes) in held {
        tx.execute("DELETE FROM held_envelopes WHERE id = ?1", [row])?;
        let Ok(envelope) =
            heartbridge_proto::decode::<heartbridge_proto::Envelope>("held envelope", &bytes)
        else {
            continue;
        };
        let doc = envelope.doc;
        let content = envelope.id;
        // A negative seq is a venue relay's (see `receive`).
        let pulled = Pulled {
            seq: seq.unsigned_abs(),
            envelope,
        };
        let outcome = receive(tx, actor, team, trust, &pulled, seq > 0)?;
        if outcome == Outcome::Held {
            // Still undecided: it keeps its place in the arrival order.
            tx.execute(
                "UPDATE held_envelopes SET id = ?1 WHERE content_id = ?2",
                params![row, &content.0[..]],
            )?;
        }
        out.push((outcome, doc));
    }
    Ok(out)
}

enum Gathered {
    Complete(Vec<u8>),
    /// A part of a group already applied.
    Duplicate,
    Incomplete,
    Inconsistent,
}

/// Stores one part; once every part of its group is here, removes them
/// and returns the whole payload.
fn gather(
    tx: &Connection,
    id: &DocId,
    kind: DocKind,
    part: Part,
    opened: &Opened,
    seq: i64,
) -> Result<Gathered> {
    let done: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM parts_done WHERE grp = ?1)",
        [&part.group[..]],
        |r| r.get(0),
    )?;
    if done {
        return Ok(Gathered::Duplicate);
    }
    // Every part of a group must agree on document, kind and count.
    let disagree: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM inbound_parts WHERE grp = ?1 AND (doc_id <> ?2 OR kind <> ?3 OR count <> ?4))",
        params![&part.group[..], id.as_str(), kind.as_str(), part.count],
        |r| r.get(0),
    )?;
    if disagree {
        return Ok(Gathered::Inconsistent);
    }
    tx.execute(
        "INSERT INTO inbound_parts (grp, idx, count, doc_id, kind, bytes, relay_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            &part.group[..],
            part.index,
            part.count,
            id.as_str(),
            kind.as_str(),
            &opened.bytes,
            seq
        ],
    )?;
    let have: i64 = tx.query_row(
        "SELECT count(*) FROM inbound_parts WHERE grp = ?1",
        [&part.group[..]],
        |r| r.get(0),
    )?;
    if have < i64::from(part.count) {
        return Ok(Gathered::Incomplete);
    }
    let mut payload = Vec::new();
    {
        let mut st =
            tx.prepare_cached("SELECT bytes FROM inbound_parts WHERE grp = ?1 ORDER BY idx")?;
        let mut rows = st.query([&part.group[..]])?;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            if payload.len() + bytes.len() > heartbridge_proto::MAX_PLAINTEXT {
                payload.clear();
                break;
            }
            payload.extend_from_slice(&bytes);
        }
    }
    if payload.is_empty() {
        tx.execute(
            "DELETE FROM inbound_parts WHERE grp = ?1",
            [&part.group[..]],
        )?;
        return Ok(Gathered::Inconsistent);
    }
    tx.execute(
        "DELETE FROM inbound_parts WHERE grp = ?1",
        [&part.group[..]],
    )?;
    tx.execute(
        "INSERT INTO parts_done (grp, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![&part.group[..], now_ms()],
    )?;
    Ok(Gathered::Complete(payload))
}
