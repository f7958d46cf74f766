//! What must hold once a run has quiesced, one function per property.
//! Each returns `Err` naming the property and the ids involved (never note
//! text).
//!
//! The properties about all devices hold for the *live* ones: those not
//! revoked (`Sim::live`, the lead first). A revoked device is not trusted
//! any more: what it saved that the relay had not acknowledged when it was
//! revoked is lost by design (`Sim::expected_saved`), and it ends erased.
//!
//! A case must be on its readers only (`Sim::readers`: its assignee, the
//! supervisors, the lead): the properties about every device's documents
//! hold, for a case, among its readers; a volunteer who never read it
//! holds no trace of it, one taken off it holds nothing written after its
//! writer had seen the handover, and nothing a device could read waits
//! locked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use automerge::{AutoCommit, ChangeHash};
use heartbridge_core::{CaseFilter, DocId, Error, Risk, Store, DB_FILE, KEYS_FILE};

use super::world::{Device, Revoked, RiskWrite, Saved, Sim};

/// Devices with their indices in the simulation.
pub type Live<'a> = [(usize, &'a Device)];

/// The devices that must read each case (`Sim::readers`); a document not
/// listed is for every device.
pub type Readers = BTreeMap<DocId, BTreeSet<usize>>;

fn must_read(readers: &Readers, doc: &DocId, dev: usize) -> bool {
    readers.get(doc).is_none_or(|r| r.contains(&dev))
}

/// Every property, in the order a failure is easiest to read.
pub fn check_all(sim: &mut Sim) -> Result<(), String> {
    let revoked: BTreeSet<usize> = sim.revoked.iter().map(|r| r.dev).collect();
    let readers = sim.readers()?;
    {
        let live = sim.live();
        outboxes_are_empty(&live)?;
        nothing_was_refused(&live)?;
        nothing_is_held(&live)?;
        every_saved_change_is_on_every_device(&live, &sim.expected_saved(), &readers)?;
        devices_hold_identical_documents(&live, &readers)?;
        risk_is_the_highest_concurrent_value(&live, &sim.risk_writes, &revoked, &readers)?;
        a_volunteer_never_on_a_case_holds_no_trace_of_it(sim, &readers)?;
        a_volunteer_taken_off_a_case_holds_nothing_written_after_the_handover(sim, &readers)?;
        nothing_readable_is_locked(&live, &readers)?;
        case_lists_agree_with_documents(&live)?;
        key_epochs_agree(&live, 1 + sim.revoked.len() as u32)?;
        nothing_a_revoked_device_saved_unacknowledged_is_required_and_nothing_after_appears(
            &live,
            &sim.saved,
            &sim.revoked,
        )?;
    }
    relay_holds_no_duplicate_content(&sim.relay.db())?;
    the_relay_took_nothing_from_a_revoked_device_after_its_cutoff(&sim.relay.db(), &sim.revoked)?;
    revoked_devices_are_erased(sim)?;
    Ok(())
}

fn load(store: &Store, dev: usize, doc: &DocId) -> Result<Option<AutoCommit>, String> {
    store
        .load(doc)
        .map(|d| d.map(|(_, am)| am))
        .map_err(|e| format!("device {dev}: loading document {doc} failed: {e}"))
}

pub fn outboxes_are_empty(devices: &Live) -> Result<(), String> {
    for &(d, dev) in devices {
        let n = dev.store().outbox_len().map_err(|e| e.to_string())?;
        if n > 0 {
            return Err(format!(
                "outboxes_are_empty: device {d} still has {n} changes waiting"
            ));
        }
    }
    Ok(())
}

pub fn nothing_was_refused(devices: &Live) -> Result<(), String> {
    for &(d, dev) in devices {
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

/// No pulled envelope waits for an author or a key epoch this device does
/// not know: once the team is quiet, every member is known and every key
/// held (a device that joined after a rotation got the older keys sealed
/// to it in the lead's roster).
pub fn nothing_is_held(devices: &Live) -> Result<(), String> {
    for &(d, dev) in devices {
        let held = dev.store().sync_status().map_err(|e| e.to_string())?.held;
        if held > 0 {
            return Err(format!(
                "nothing_is_held: device {d} holds {held} envelopes of an unknown author or key epoch"
            ));
        }
    }
    Ok(())
}

/// Every change a write reported saved (and that the team must keep, see
/// `Sim::expected_saved`) is in that document on every device that must
/// read it (Automerge keeps a change once, so presence is the whole
/// question).
pub fn every_saved_change_is_on_every_device(
    devices: &Live,
    saved: &[&Saved],
    readers: &Readers,
) -> Result<(), String> {
    for &(d, dev) in devices {
        let mut docs: BTreeMap<&DocId, Option<AutoCommit>> = BTreeMap::new();
        for s in saved.iter().copied() {
            if !must_read(readers, &s.doc, d) {
                continue;
            }
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

/// Same documents, same Automerge heads, on every device that must read
/// them (a case: on its readers).
pub fn devices_hold_identical_documents(devices: &Live, readers: &Readers) -> Result<(), String> {
    let all: Vec<(usize, BTreeMap<DocId, BTreeSet<ChangeHash>>)> = devices
        .iter()
        .map(|&(d, dev)| heads_by_doc(dev.store(), d).map(|h| (d, h)))
        .collect::<Result<_, _>>()?;
    let ids: BTreeSet<&DocId> = all.iter().flat_map(|(_, h)| h.keys()).collect();
    for id in ids {
        let mut first: Option<(usize, Option<&BTreeSet<ChangeHash>>)> = None;
        for (d, heads) in all.iter().filter(|(d, _)| must_read(readers, id, *d)) {
            let here = heads.get(id);
            let Some((d0, there)) = first else {
                first = Some((*d, here));
                continue;
            };
            match (there, here) {
                (Some(a), Some(b)) if a == b => {}
                (None, None) => {}
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "devices_hold_identical_documents: document {id} has different heads on devices {d0} and {d}"
                    ))
                }
                (a, _) => {
                    let (has, lacks) = if a.is_some() { (d0, *d) } else { (*d, d0) };
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

/// A revoked device's risk writes count where they reached the team (the
/// first live device's document says which did); the others' always.
pub fn risk_is_the_highest_concurrent_value(
    devices: &Live,
    writes: &[RiskWrite],
    revoked: &BTreeSet<usize>,
    readers: &Readers,
) -> Result<(), String> {
    let mut by_case: BTreeMap<&DocId, Vec<&RiskWrite>> = BTreeMap::new();
    for w in writes {
        by_case.entry(&w.case).or_default().push(w);
    }
    let (d0, lead) = devices[0];
    for (case, ws) in by_case {
        let Some(mut am) = load(lead.store(), d0, case)? else {
            if ws.iter().all(|w| revoked.contains(&w.dev)) {
                continue; // a revoked device's case that never reached the team
            }
            return Err(format!(
                "risk_is_the_highest_concurrent_value: device {d0} lacks case {case}"
            ));
        };
        let ws: Vec<&RiskWrite> = ws
            .into_iter()
            .filter(|w| !revoked.contains(&w.dev) || am.get_change_by_hash(&w.hash).is_some())
            .collect();
        let expected = expected_risk(&mut am, &ws);
        for &(d, dev) in devices.iter().filter(|(d, _)| must_read(readers, case, *d)) {
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
pub fn case_lists_agree_with_documents(devices: &Live) -> Result<(), String> {
    for &(d, dev) in devices {
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

/// Every device seals under the lead's key epoch, and the lead's epoch
/// went up by one for each revocation.
pub fn key_epochs_agree(devices: &Live, expected: u32) -> Result<(), String> {
    let (d0, lead) = devices[0];
    let lead_epoch = lead.store().key_epoch().map_err(|e| e.to_string())?;
    if lead_epoch != expected {
        return Err(format!(
            "key_epochs_agree: the lead (device {d0}) is at key epoch {lead_epoch}, expected {expected}"
        ));
    }
    for &(d, dev) in devices {
        let e = dev.store().key_epoch().map_err(|e| e.to_string())?;
        if e != lead_epoch {
            return Err(format!(
                "key_epochs_agree: device {d} is at key epoch {e}, the lead at {lead_epoch}"
            ));
        }
    }
    Ok(())
}

/// No device holds a change of a revoked device's actor other than one it
/// saved before its revocation: what it saved afterwards (offline, before
/// it learned) never appears anywhere, nor does anything else signed by it
/// under the new epoch. (Its changes saved before the revocation but not
/// acknowledged may appear, if the relay stored them and only the answer
/// was lost; they are not required.)
pub fn nothing_a_revoked_device_saved_unacknowledged_is_required_and_nothing_after_appears(
    devices: &Live,
    saved: &[Saved],
    revoked: &[Revoked],
) -> Result<(), String> {
    for r in revoked {
        let mine = || saved.iter().enumerate().filter(|(_, s)| s.dev == r.dev);
        let allowed: BTreeSet<ChangeHash> = mine()
            .filter(|(i, _)| *i < r.saved_before)
            .map(|(_, s)| s.hash)
            .collect();
        let actors: BTreeSet<_> = mine().map(|(_, s)| s.actor.clone()).collect();
        if actors.is_empty() {
            continue;
        }
        for &(d, dev) in devices {
            for (id, _) in dev.store().document_ids().map_err(|e| e.to_string())? {
                let Some(mut am) = load(dev.store(), d, &id)? else {
                    continue;
                };
                for c in am.get_changes(&[]) {
                    // The sync's own record of a case key rotation (no note,
                    // made by the key layer, not by an op the model saves)
                    // may have left before the revocation; one made after it
                    // cannot leave (the relay refuses the device).
                    let rotation = c
                        .message()
                        .is_some_and(|m| m.contains("\"case key rotated\""));
                    if actors.contains(c.actor_id()) && !allowed.contains(&c.hash()) && !rotation {
                        return Err(format!(
                            "nothing_after_a_revocation_appears: device {d} holds change {} of document {id}, made by revoked device {} after its revocation",
                            c.hash(),
                            r.dev
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The relay stored nothing a revoked device pushed after its cut-off, and
/// nothing of it under the epoch its revocation made (read from the
/// relay's SQLite file).
pub fn the_relay_took_nothing_from_a_revoked_device_after_its_cutoff(
    db: &Path,
    revoked: &[Revoked],
) -> Result<(), String> {
    if revoked.is_empty() {
        return Ok(());
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("open the relay database: {e}"))?;
    for r in revoked {
        let late: i64 = conn
            .query_row(
                "SELECT count(*) FROM envelopes WHERE lower(hex(author_device)) = ?1 AND (seq > ?2 OR epoch >= ?3)",
                rusqlite::params![r.device_id.to_lowercase(), r.cutoff_seq as i64, r.epoch],
                |row| row.get(0),
            )
            .map_err(|e| format!("query the relay database: {e}"))?;
        if late > 0 {
            return Err(format!(
                "the_relay_took_nothing_from_a_revoked_device_after_its_cutoff: {late} envelopes of device {} after seq {} or under epoch {}",
                r.dev, r.cutoff_seq, r.epoch
            ));
        }
    }
    Ok(())
}

/// Every revoked device synced after the lead's roster reached the relay
/// (the final quiesce makes sure), so every one erased itself; and the
/// relay serves that roster, revoking each of them.
pub fn revoked_devices_are_erased(sim: &mut Sim) -> Result<(), String> {
    for r in sim.revoked.clone() {
        if !sim.relay_revokes(&r.device_id)? {
            return Err(format!(
                "revoked_devices_are_erased: the relay's roster does not revoke device {}",
                r.dev
            ));
        }
        let dev = &sim.devices[r.dev];
        if !r.erased || dev.is_open() {
            return Err(format!(
                "revoked_devices_are_erased: device {} synced after the rotation and is not erased",
                r.dev
            ));
        }
        an_erased_profile_holds_nothing(&dev.profile())
            .map_err(|e| format!("device {}: {e}", r.dev))?;
    }
    Ok(())
}

/// An erased profile directory holds no database (nor its side files) and
/// no keys file, and opening it answers that it was destroyed.
pub fn an_erased_profile_holds_nothing(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("list the profile: {e}"))?;
    for e in entries {
        let name = e
            .map_err(|e| format!("list the profile: {e}"))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with(DB_FILE) || name == KEYS_FILE {
            return Err(format!(
                "an_erased_profile_holds_nothing: {name} is still in the profile after the erase"
            ));
        }
    }
    match Store::open(dir, &heartbridge_core::testing::unlock()) {
        Err(Error::ProfileDestroyed) => Ok(()),
        Err(e) => Err(format!(
            "an_erased_profile_holds_nothing: opening it answered {e}, not that it was destroyed"
        )),
        Ok(_) => Err("an_erased_profile_holds_nothing: it opens".into()),
    }
}

/// A raw connection to a device's database: its `cases` table and its
/// `locked_payloads`, which no API lists row by row.
fn raw(d: usize, dev: &Device) -> Result<rusqlite::Connection, String> {
    heartbridge_core::testing::open_raw(&dev.profile(), &heartbridge_core::testing::unlock())
        .map_err(|e| format!("device {d}: opening its database raw failed: {e}"))
}

fn case_rows(conn: &rusqlite::Connection, d: usize, id: &DocId) -> Result<i64, String> {
    conn.query_row(
        "SELECT count(*) FROM cases WHERE id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )
    .map_err(|e| format!("device {d}: query its cases table: {e}"))
}

/// Whether device `d` ever carried case `id` in the model: it made it, or
/// some `assign_case` handed it to it.
fn ever_carried(sim: &Sim, id: &DocId, d: usize) -> bool {
    sim.creators.get(id) == Some(&d) || sim.assigned.iter().any(|(c, t)| c == id && *t == d)
}

/// A volunteer that never read a case (never made it, never had it
/// assigned) holds no trace of it: `Store::case` answers not found, no
/// document, no row in its `cases` table, nothing in its case list.
pub fn a_volunteer_never_on_a_case_holds_no_trace_of_it(
    sim: &Sim,
    readers: &Readers,
) -> Result<(), String> {
    for (d, dev) in sim.live() {
        if !dev.is_volunteer() {
            continue;
        }
        let store = dev.store();
        let conn = raw(d, dev)?;
        let listed: BTreeSet<String> = store
            .list_cases(&CaseFilter::default())
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| c.id)
            .collect();
        for id in &sim.cases {
            if must_read(readers, id, d) || ever_carried(sim, id, d) {
                continue;
            }
            let what = match store.case(id) {
                Err(Error::NotFound { .. }) => None,
                Err(e) => Some(format!("reading it failed with {e}, not not-found")),
                Ok(_) => Some("reads it".to_owned()),
            }
            .or_else(|| match store.load(id) {
                Ok(None) => None,
                Ok(Some(_)) => Some("holds its document".to_owned()),
                Err(e) => Some(format!("loading it failed with {e}")),
            })
            .or_else(|| match case_rows(&conn, d, id) {
                Ok(0) => None,
                Ok(n) => Some(format!("has {n} rows of it in its cases table")),
                Err(e) => Some(e),
            })
            .or_else(|| listed.contains(id.as_str()).then(|| "lists it".to_owned()));
            if let Some(what) = what {
                return Err(format!(
                    "a_volunteer_never_on_a_case_holds_no_trace_of_it: volunteer device {d} never carried case {id}, yet {what}"
                ));
            }
        }
    }
    Ok(())
}

/// A volunteer taken off a case (it carried it once, and is not a reader
/// now) holds no change of the case whose writer had, when writing, seen
/// every assignment of the case to this volunteer and a newer one to
/// someone else: such a change is pushed under a key the supervisors made
/// for the readers after the handover. (Its own changes it keeps, and
/// changes written before the writer saw the handover may have reached
/// it.)
pub fn a_volunteer_taken_off_a_case_holds_nothing_written_after_the_handover(
    sim: &Sim,
    readers: &Readers,
) -> Result<(), String> {
    let lead = sim.devices[0].store();
    for (d, dev) in sim.live() {
        if !dev.is_volunteer() {
            continue;
        }
        for id in &sim.cases {
            if must_read(readers, id, d) || !ever_carried(sim, id, d) {
                continue;
            }
            let Ok(final_case) = lead.case(id) else {
                continue; // the lead lacks it: other invariants say so
            };
            let to_me: BTreeSet<&String> = final_case
                .assignments
                .iter()
                .filter(|a| a.to_device == dev.device_id)
                .map(|a| &a.id)
                .collect();
            if to_me.is_empty() && sim.creators.get(id) != Some(&d) {
                continue; // the assignment to it never reached the team
            }
            let after: Vec<&Saved> = sim
                .expected_saved()
                .into_iter()
                .filter(|s| s.doc == *id && s.dev != d)
                .filter(|s| {
                    s.view.as_ref().is_some_and(|v| {
                        v.assignee != dev.device_id
                            && to_me.iter().all(|a| v.assignments.contains(*a))
                    })
                })
                .collect();
            if after.is_empty() {
                continue;
            }
            let Some(mut am) = load(dev.store(), d, id)? else {
                continue;
            };
            for s in after {
                if am.get_change_by_hash(&s.hash).is_some() {
                    return Err(format!(
                        "a_volunteer_taken_off_a_case_holds_nothing_written_after_the_handover: volunteer device {d}, taken off case {id}, holds change {} that device {} wrote after it had seen the handover (its keys of the case, generation by granting device: {})",
                        s.hash,
                        s.dev,
                        key_generations(sim, d, dev, id)?
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The generations of a case's key device `d` holds, each with the device
/// that granted it (for a failure's message: ids only).
fn key_generations(sim: &Sim, d: usize, dev: &Device, id: &DocId) -> Result<String, String> {
    let conn = raw(d, dev)?;
    let mut st = conn
        .prepare("SELECT gen, granted_by FROM case_keys WHERE scope = ?1 ORDER BY gen")
        .map_err(|e| format!("device {d}: query case_keys: {e}"))?;
    let rows = st
        .query_map([id.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(|e| format!("device {d}: query case_keys: {e}"))?;
    let mut out = Vec::new();
    for row in rows {
        let (gen, by) = row.map_err(|e| format!("device {d}: query case_keys: {e}"))?;
        let by = sim
            .devices
            .iter()
            .position(|x| x.device_id == by)
            .map_or_else(|| "?".to_owned(), |i| i.to_string());
        out.push(format!("{gen} by {by}"));
    }
    Ok(out.join(", "))
}

/// Nothing a device could read waits in `locked_payloads`: no row is
/// sealed under a key it holds, no row is of a case it reads, and
/// `sync_status().locked` counts exactly those rows.
pub fn nothing_readable_is_locked(devices: &Live, readers: &Readers) -> Result<(), String> {
    for &(d, dev) in devices {
        let conn = raw(d, dev)?;
        let rows: Vec<(String, String, bool)> = {
            let mut st = conn
                .prepare(
                    "SELECT l.doc_id, l.scope, EXISTS (SELECT 1 FROM case_keys k WHERE k.scope = l.scope AND k.key_id = l.key_id)
                     FROM locked_payloads l ORDER BY l.seq",
                )
                .map_err(|e| format!("device {d}: query locked_payloads: {e}"))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| format!("device {d}: query locked_payloads: {e}"))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| format!("device {d}: query locked_payloads: {e}"))?
        };
        for (doc, scope, key_held) in &rows {
            if *key_held {
                return Err(format!(
                    "nothing_readable_is_locked: device {d} keeps a payload of {doc} (scope {scope}) locked although it holds the key it is sealed under"
                ));
            }
            if let Ok(id) = DocId::parse(doc, "case") {
                if readers.get(&id).is_some_and(|r| r.contains(&d)) {
                    return Err(format!(
                        "nothing_readable_is_locked: device {d} reads case {id}, yet a payload of it waits locked for a key it was not given"
                    ));
                }
            }
        }
        let counted = dev.store().sync_status().map_err(|e| e.to_string())?.locked;
        if counted != rows.len() {
            return Err(format!(
                "nothing_readable_is_locked: device {d}'s status counts {counted} locked payloads, its table holds {}",
                rows.len()
            ));
        }
    }
    Ok(())
}
