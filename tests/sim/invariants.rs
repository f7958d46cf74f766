//! What must hold once a run has quiesced, one function per property.
//! Each returns `Err` naming the property and the ids involved (never note
//! text).

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ChangeHash};
use heartbridge_core::{CaseFilter, DocId, Risk, Store};

use super::world::{Device, RiskWrite, Saved, Sim};

/// Every property, in the order a failure is easiest to read.
pub fn check_all(sim: &mut Sim) -> Result<(), String> {
    outboxes_are_empty(&sim.devices)?;
    nothing_was_refused(&sim.devices)?;
    every_saved_change_is_on_every_device(&sim.devices, &sim.saved)?;
    devices_hold_identical_documents(&sim.devices)?;
    risk_is_the_highest_concurrent_value(&sim.devices, &sim.risk_writes)?;
    case_lists_agree_with_documents(&sim.devices)?;
    relay_holds_no_duplicate_content(&sim.relay.db())?;
    Ok(())
}

fn load(store: &Store, dev: usize, doc: &DocId) -> Result<Option<AutoCommit>, String> {
    store
        .load(doc)
        .map(|d| d.map(|(_, am)| am))
        .map_err(|e| format!("device {dev}: loading document {doc} failed: {e}"))
}

pub fn outboxes_are_empty(devices: &[Device]) -> Result<(), String> {
    for (d, dev) in devices.iter().enumerate() {
        let n = dev.store().outbox_len().map_err(|e| e.to_string())?;
        if n > 0 {
            return Err(format!(
                "outboxes_are_empty: device {d} still has {n} changes waiting"
            ));
        }
    }
    Ok(())
}

pub fn nothing_was_refused(devices: &[Device]) -> Result<(), String> {
    for (d, dev) in devices.iter().enumerate() {
        let refused = dev.store().refused().map_err(|e| e.to_string())?;
        if let Some((seq, doc, content, reason)) = refused.first() {
            return Err(format!(
                "nothing_was_refused: device {d} refused {} envelopes, first seq {seq} of document {doc} (content {content}): {reason}",
                refused.len()
            ));
        }
    }
    Ok(())
}

/// Every change a write reported saved is in that document on every device
/// (Automerge keeps a change once, so presence is the whole question).
pub fn every_saved_change_is_on_every_device(
    devices: &[Device],
    saved: &[Saved],
) -> Result<(), String> {
    for (d, dev) in devices.iter().enumerate() {
        let mut docs: BTreeMap<&DocId, Option<AutoCommit>> = BTreeMap::new();
        for s in saved {
            if !docs.contains_key(&s.doc) {
                docs.insert(&s.doc, load(dev.store(), d, &s.doc)?);
            }
            let Some(Some(am)) = docs.get_mut(&s.doc) else {
                return Err(format!(
                    "every_saved_change_is_on_every_device: device {d} lacks document {} (written on device {})",
                    s.doc, s.dev
                ));
            };
            if am.get_change_by_hash(&s.hash).is_none() {
                return Err(format!(
                    "every_saved_change_is_on_every_device: device {d} lacks change {} of document {} (saved on device {})",
                    s.hash, s.doc, s.dev
                ));
            }
        }
    }
    Ok(())
}

fn heads_by_doc(
    store: &Store,
    dev: usize,
) -> Result<BTreeMap<DocId, BTreeSet<ChangeHash>>, String> {
    let mut out = BTreeMap::new();
    for (id, _) in store.document_ids().map_err(|e| e.to_string())? {
        let mut am = load(store, dev, &id)?
            .ok_or_else(|| format!("device {dev}: listed document {id} does not load"))?;
        out.insert(id, am.get_heads().into_iter().collect());
    }
    Ok(out)
}

/// Same documents, same Automerge heads, on every device.
pub fn devices_hold_identical_documents(devices: &[Device]) -> Result<(), String> {
    let first = heads_by_doc(devices[0].store(), 0)?;
    for (d, dev) in devices.iter().enumerate().skip(1) {
        let here = heads_by_doc(dev.store(), d)?;
        for id in first.keys().chain(here.keys()) {
            match (first.get(id), here.get(id)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "devices_hold_identical_documents: document {id} has different heads on devices 0 and {d}"
                    ))
                }
                (a, _) => {
                    let (has, lacks) = if a.is_some() { (0, d) } else { (d, 0) };
                    return Err(format!(
                        "devices_hold_identical_documents: device {has} holds document {id}, device {lacks} does not"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The model of the risk merge rule: a risk write stands unless a later
/// risk write of the same case has it in its causal past; the case's risk
/// is the highest value standing.
pub fn expected_risk(am: &mut AutoCommit, writes: &[&RiskWrite]) -> Risk {
    let mut ancestors_of_others: BTreeSet<ChangeHash> = BTreeSet::new();
    for w in writes {
        // Everything strictly before w.
        let mut stack: Vec<ChangeHash> = am
            .get_change_by_hash(&w.hash)
            .map(|c| c.deps().to_vec())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(h) = stack.pop() {
            if seen.insert(h) {
                if let Some(c) = am.get_change_by_hash(&h) {
                    stack.extend_from_slice(c.deps());
                }
            }
        }
        ancestors_of_others.extend(seen);
    }
    writes
        .iter()
        .filter(|w| !ancestors_of_others.contains(&w.hash))
        .map(|w| w.risk)
        .max()
        .unwrap_or(Risk::None)
}

pub fn risk_is_the_highest_concurrent_value(
    devices: &[Device],
    writes: &[RiskWrite],
) -> Result<(), String> {
    let mut by_case: BTreeMap<&DocId, Vec<&RiskWrite>> = BTreeMap::new();
    for w in writes {
        by_case.entry(&w.case).or_default().push(w);
    }
    for (case, ws) in by_case {
        let Some(mut am) = load(devices[0].store(), 0, case)? else {
            return Err(format!(
                "risk_is_the_highest_concurrent_value: device 0 lacks case {case}"
            ));
        };
        let expected = expected_risk(&mut am, &ws);
        for (d, dev) in devices.iter().enumerate() {
            let got = dev
                .store()
                .case(case)
                .map_err(|e| format!("device {d}: reading case {case}: {e}"))?
                .risk;
            if got != expected {
                return Err(format!(
                    "risk_is_the_highest_concurrent_value: case {case} on device {d} has risk {got}, the model says {expected} ({} writes)",
                    ws.len()
                ));
            }
        }
    }
    Ok(())
}

/// The case list (a projection) says what the documents say.
pub fn case_lists_agree_with_documents(devices: &[Device]) -> Result<(), String> {
    for (d, dev) in devices.iter().enumerate() {
        let store = dev.store();
        for row in store
            .list_cases(&CaseFilter::default())
            .map_err(|e| e.to_string())?
        {
            let id = DocId::parse(&row.id, "case").map_err(|e| e.to_string())?;
            let case = store.case(&id).map_err(|e| e.to_string())?;
            if (row.risk, row.status) != (case.risk, case.status) {
                return Err(format!(
                    "case_lists_agree_with_documents: device {d} lists case {id} as {}/{}, its document says {}/{}",
                    row.risk, row.status, case.risk, case.status
                ));
            }
        }
    }
    Ok(())
}

/// No two envelopes of a team carry the same content id (read from the
/// relay's SQLite file).
pub fn relay_holds_no_duplicate_content(db: &std::path::Path) -> Result<(), String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("open the relay database: {e}"))?;
    let dups: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM envelopes GROUP BY team_id, content_id HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("query the relay database: {e}"))?;
    if dups > 0 {
        return Err(format!(
            "relay_holds_no_duplicate_content: {dups} content ids are stored more than once"
        ));
    }
    Ok(())
}

/// After a crash, the device still holds every change it reported saved.
pub fn a_crash_loses_no_saved_change(sim: &Sim, dev: usize) -> Result<(), String> {
    let store = sim.devices[dev].store();
    for s in sim.saved.iter().filter(|s| s.dev == dev) {
        let present = load(store, dev, &s.doc)?
            .map(|mut am| am.get_change_by_hash(&s.hash).is_some())
            .unwrap_or(false);
        if !present {
            return Err(format!(
                "a_crash_loses_no_saved_change: device {dev} lost change {} of document {} in a crash",
                s.hash, s.doc
            ));
        }
    }
    Ok(())
}
