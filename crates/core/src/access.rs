//! Need to know, enforced with keys: who may read which case.
//!
//! Every case has its own key (generations 1, 2, …). A case's payloads are
//! sealed under its newest key inside the team envelope
//! (`heartbridge_proto::case_seal`), so a member without that key opens
//! the envelope and finds ciphertext: the payload waits in
//! `locked_payloads` (the cursor moves past it) and opens the day a grant
//! brings the key — after a handover, say.
//!
//! **Readers** of a case: its assignee (the creator until someone
//! reassigns it; for a case without one, the device that made its first
//! key), the supervisors (all of them; when the team sets supervisor
//! groups, those whose group holds the assignee — or all of them if the
//! assignee is in no group), and the lead when the team setting
//! `lead_reads_cases` is on.
//!
//! **Grants** give a key, with every older generation, to devices, each
//! copy sealed to the device's X25519 key; they ride in the team's grants
//! document. At every sync a device that holds a case's key and may manage
//! it compares the case's readers with the devices holding the newest key:
//! a reader missing gets a grant; a holder who is no longer a reader (a
//! handover, a supervisor group change, the lead setting turned off, a
//! revoked member) makes a supervisor or the lead rotate: a new generation,
//! granted to the readers only, seals what is written next. A volunteer
//! grants only generation 1 of a case it made; a grant from anyone else is
//! ignored. Concurrent rotations converge: the highest `(generation, key
//! id)` held is the case's current key, and the next sync of a manager
//! repairs any reader set left wrong; until then a device seals under the
//! newest key whose recorded holders are all readers in its view. A device
//! manages a case only once its copy of the case records every rotation
//! whose key it holds (`key_rot_<key id>`, written with the rotation).
//!
//! The team's **oversight key** (an X25519 key pair the lead makes; its
//! public key is in the team settings) lets every device seal statistics
//! facts that only the lead and supervisors read.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, ObjType, ReadDoc, ROOT};
use heartbridge_proto::case_seal::{
    self, case_key_id, facts_key_id, oversight_key_id, oversight_public, CaseKey, Grant,
    OVERSIGHT_SCOPE,
};
use heartbridge_proto::identity::DeviceId;
use heartbridge_proto::{Role, TeamId};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::docvalue::{boolean, object, string};
use crate::enroll::{device_secret, Team};
use crate::error::{Error, Result};
use crate::model::{now_ms, DocId, DocKind};
use crate::team::Trust;

/// The `case_keys`/`grants` scope of the oversight key.
pub(crate) const OVERSIGHT: &str = "oversight";

fn derived_id(label: &[u8], team: &TeamId) -> DocId {
    let mut h = Sha256::new();
    h.update(label);
    h.update(team.0);
    let out = h.finalize();
    DocId::parse(&hex::encode(&out[..16]), "document").expect("32 hex digits")
}

/// The team's grants document (signed grant records, not Automerge).
pub fn grants_doc_id(team: &TeamId) -> DocId {
    derived_id(b"heartbridge grants v1", team)
}

/// The team's statistics facts document (facts sealed to the oversight key).
pub fn facts_doc_id(team: &TeamId) -> DocId {
    derived_id(b"heartbridge facts v1", team)
}

/// What the team settings say about reading.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadRules {
    pub lead_reads_cases: bool,
    /// supervisor device → the volunteer devices it supervises.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub oversight_pk: Option<[u8; 32]>,
}

pub(crate) fn read_rules(conn: &Connection, actor: &ActorId, team: &TeamId) -> Result<ReadRules> {
    let Some((DocKind::TeamSettings, doc)) =
        crate::store::load_doc_in(conn, &crate::duty::settings_doc_id(team), actor)?
    else {
        return Ok(ReadRules::default());
    };
    let mut groups = BTreeMap::new();
    if let Some(g) = object(&doc, &ROOT, "supervisor_groups", ObjType::Map) {
        for sup in doc.keys(&g).collect::<Vec<_>>() {
            let members = object(&doc, &g, &sup, ObjType::Map)
                .map(|m| doc.keys(&m).collect::<BTreeSet<_>>())
                .unwrap_or_default();
            groups.insert(sup, members);
        }
    }
    let oversight_pk = string(&doc, &ROOT, "oversight_pk")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok());
    Ok(ReadRules {
        lead_reads_cases: boolean(&doc, &ROOT, "lead_reads_cases").unwrap_or(false),
        groups,
        oversight_pk,
    })
}

fn bad_key() -> Error {
    Error::Protocol {
        detail: "a stored case key is unreadable".into(),
    }
}

/// Every key this device holds for `scope`, oldest generation first.
pub(crate) fn keys_of(conn: &Connection, scope: &str) -> Result<Vec<(u32, CaseKey)>> {
    let mut st = conn
        .prepare_cached("SELECT gen, key FROM case_keys WHERE scope = ?1 ORDER BY gen, key_id")?;
    let rows = st.query_map([scope], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (g, k) = row?;
        let k: [u8; 32] = k.try_into().map_err(|_| bad_key())?;
        out.push((g as u32, CaseKey::from_bytes(k)));
    }
    Ok(out)
}

/// The key new payloads of `scope` are sealed under: the highest
/// `(generation, key id)` held whose grant this device accepted (a key
/// slipped into a copy under a made-up generation is never sealed under).
pub(crate) fn current_key(conn: &Connection, scope: &str) -> Result<Option<(u32, CaseKey)>> {
    let mut best: Option<(u32, CaseKey)> = None;
    for (_, k) in keys_of(conn, scope)? {
        let Some(gen) = granted_gen(conn, scope, &key_name(scope, &k))? else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((g, b)) => (gen, key_name(scope, &k)) > (*g, key_name(scope, b)),
        };
        if better {
            best = Some((gen, k));
        }
    }
    Ok(best)
}

/// The name grants give a key of `scope`: a case key's id, or for the
/// oversight secret the id of its public key (what writers of facts name).
fn key_name(scope: &str, key: &CaseKey) -> [u8; 8] {
    if scope == OVERSIGHT {
        oversight_key_id(&oversight_public(key))
    } else {
        key.id()
    }
}

/// The generation of key `id` of `scope` as the grants this device
/// accepted name it; `None` if no accepted grant names it.
fn granted_gen(conn: &Connection, scope: &str, id: &[u8; 8]) -> Result<Option<u32>> {
    Ok(conn
        .query_row(
            "SELECT min(gen) FROM grants WHERE scope = ?1 AND key_id = ?2",
            params![scope, &id[..]],
            |r| r.get::<_, Option<i64>>(0),
        )?
        .map(|g| g as u32))
}

/// The newest key of `scope` any accepted grant names, held here or not:
/// (key id, generation).
fn latest_granted(conn: &Connection, scope: &str) -> Result<Option<([u8; 8], u32)>> {
    let row: Option<(Vec<u8>, i64)> = conn
        .query_row(
            "SELECT key_id, gen FROM grants WHERE scope = ?1 ORDER BY gen DESC, key_id DESC LIMIT 1",
            [scope],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(k, g)| Some((k.try_into().ok()?, g as u32))))
}

fn key_by_id(conn: &Connection, scope: &str, id: &[u8; 8]) -> Result<Option<CaseKey>> {
    let k: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key FROM case_keys WHERE scope = ?1 AND key_id = ?2",
            params![scope, &id[..]],
            |r| r.get(0),
        )
        .optional()?;
    match k {
        None => Ok(None),
        Some(k) => Ok(Some(CaseKey::from_bytes(
            k.try_into().map_err(|_| bad_key())?,
        ))),
    }
}

/// Stores a key; returns whether it is new here.
fn store_key(
    conn: &Connection,
    scope: &str,
    key_id: &[u8; 8],
    gen: u32,
    key: &CaseKey,
    by: &str,
) -> Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO case_keys (scope, key_id, gen, key, granted_by, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, &key_id[..], gen, &key.expose()[..], by, now_ms()],
    )? > 0)
}

/// The devices that hold key `key_id` of `scope`, as far as grants from
/// devices that may make them say: supervisors, the lead, the case's
/// owner, and this device. A copy passed on by another reader is not
/// counted (anyone who sees a key's id could list a reader in one without
/// giving it the key, and the managers would then never grant it).
fn recipients(
    conn: &Connection,
    trust: &Trust,
    me: &str,
    scope: &str,
    key_id: &[u8; 8],
) -> Result<BTreeSet<String>> {
    let owner = owner(conn, scope)?;
    let mut st = conn
        .prepare_cached("SELECT granter, recipient FROM grants WHERE scope = ?1 AND key_id = ?2")?;
    let rows = st.query_map(params![scope, &key_id[..]], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeSet::new();
    for row in rows {
        let (granter, recipient) = row?;
        let counts = granter == me
            || owner.as_deref() == Some(granter.as_str())
            || heartbridge_proto::identity::device_from_hex(&granter)
                .and_then(|d| trust.role_of(&d))
                .is_some_and(|r| matches!(r, Role::Supervisor | Role::Lead));
        if counts {
            out.insert(recipient);
        }
    }
    Ok(out)
}

/// The device that granted the case's first key (first seen wins).
fn owner(conn: &Connection, scope: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT granter FROM grants WHERE scope = ?1 AND gen = 1 ORDER BY relay_seq, granter LIMIT 1",
            [scope],
            |r| r.get(0),
        )
        .optional()?)
}

fn record_grant(conn: &Connection, g: &Grant, scope: &str, granter: &str, seq: i64) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO grants (scope, key_id, gen, granter, recipient, relay_seq, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for t in &g.to {
        st.execute(params![
            scope,
            &g.key_id[..],
            g.gen,
            granter,
            hex::encode(t.device),
            seq,
            now_ms()
        ])?;
    }
    Ok(())
}

fn scope_of(scope: &[u8; 16]) -> String {
    if *scope == OVERSIGHT_SCOPE {
        OVERSIGHT.to_owned()
    } else {
        hex::encode(scope)
    }
}

fn scope_bytes(scope: &str) -> [u8; 16] {
    if scope == OVERSIGHT {
        return OVERSIGHT_SCOPE;
    }
    hex::decode(scope)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or(OVERSIGHT_SCOPE)
}

fn queue(conn: &Connection, doc: &DocId, kind: DocKind, bytes: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO outbox (doc_id, kind, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![doc.as_str(), kind.as_str(), bytes, now_ms()],
    )?;
    Ok(())
}

struct Me {
    id: DeviceId,
    hex: String,
    role: Role,
    kx: [u8; 32],
}

/// Grants `keys` (all generations of `scope`, the newest being `key_id`
/// at `gen`) to `to`, records it and queues it for the next push.
#[allow(clippy::too_many_arguments)]
fn grant(
    conn: &Connection,
    team: &Team,
    me: &Me,
    scope: &str,
    key_id: [u8; 8],
    gen: u32,
    keys: &[(u32, CaseKey)],
    to: &[(DeviceId, [u8; 32])],
) -> Result<()> {
    if to.is_empty() {
        return Ok(());
    }
    let g = Grant::make(&team.team_id, scope_bytes(scope), key_id, gen, keys, to);
    if g.to.is_empty() {
        // No recipient's key would take a copy: nothing to send.
        return Ok(());
    }
    record_grant(conn, &g, scope, &me.hex, 0)?;
    queue(
        conn,
        &grants_doc_id(&team.team_id),
        DocKind::Grants,
        &case_seal::frame(&g.to_bytes()),
    )
}

/// This device as `prepare` and `regrant_held_keys` see it; `None` without
/// an id or keys.
fn this_device(
    conn: &Connection,
    team: &Team,
    members: &[(DeviceId, Role, [u8; 32])],
) -> Result<Option<Me>> {
    let Some(id) = team.device_bytes() else {
        return Ok(None);
    };
    // This device's own X25519 key: from the members it trusts when it is
    // among them (a scalar multiplication saved on every request).
    let kx = match members.iter().find(|(d, _, _)| *d == id) {
        Some((_, _, kx)) => *kx,
        None => match device_secret(conn)? {
            Some(secret) => secret.public().kx,
            None => return Ok(None),
        },
    };
    Ok(Some(Me {
        id,
        hex: team.device_id.clone(),
        role: team.role,
        kx,
    }))
}

/// After the relay's log went back (a restore, `sync/restored.rs`): the
/// grants this device made or passed on may be gone from the relay with
/// everything pushed after the backup. Each case key it holds (the newest
/// of each case) is granted again, with every generation it holds, to the
/// holders recorded for that key who are still members, and to itself —
/// the same grant `prepare` makes, so receivers judge it the same way (a
/// copy of a key its creator, a supervisor or the lead made counts
/// everywhere). Returns the grants queued.
pub(crate) fn regrant_held_keys(conn: &Connection, team: &Team, trust: &Trust) -> Result<usize> {
    let members = trust.members();
    let Some(me) = this_device(conn, team, &members)? else {
        return Ok(0);
    };
    let by_hex: BTreeMap<String, (DeviceId, [u8; 32])> = members
        .iter()
        .map(|(d, _, k)| (hex::encode(d), (*d, *k)))
        .collect();
    let mut queued = 0;
    for (case, _, _) in held_cases(conn)? {
        let Some((gen, key)) = current_key(conn, &case)? else {
            continue;
        };
        let holders: Vec<String> = {
            let mut st = conn.prepare_cached(
                "SELECT DISTINCT recipient FROM grants WHERE scope = ?1 AND key_id = ?2",
            )?;
            let rows = st.query_map(params![case, &key.id()[..]], |r| r.get(0))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let to: Vec<_> = holders
            .iter()
            .filter_map(|h| by_hex.get(h).copied())
            .filter(|(d, _)| *d != me.id)
            .collect();
        if to.is_empty() {
            continue;
        }
        let keys = keys_of(conn, &case)?;
        grant(
            conn,
            team,
            &me,
            &case,
            key.id(),
            gen,
            &keys,
            &with_me(&me, to),
        )?;
        queued += 1;
    }
    Ok(queued)
}

/// The devices that should read a case.
fn readers(
    conn: &Connection,
    case: &str,
    assignee: &str,
    rules: &ReadRules,
    members: &[(DeviceId, Role, [u8; 32])],
    me: &Me,
) -> Result<BTreeSet<String>> {
    let carrier = if assignee.is_empty() {
        owner(conn, case)?.unwrap_or_else(|| me.hex.clone())
    } else {
        assignee.to_owned()
    };
    // With supervisor groups, a supervisor reads the cases its group's
    // volunteers carry, and every supervisor reads those of a volunteer in
    // no group (no case goes unsupervised); without groups, everyone's.
    let grouped: BTreeSet<&String> = rules.groups.values().flatten().collect();
    let mut out = BTreeSet::new();
    for (d, role, _) in members {
        let hex = hex::encode(d);
        let reads = match role {
            // A venue relay holds no key: never a reader.
            Role::Relay => false,
            _ if hex == carrier => true,
            Role::Supervisor => {
                !grouped.contains(&carrier)
                    || rules.groups.get(&hex).is_some_and(|g| g.contains(&carrier))
            }
            Role::Lead => rules.lead_reads_cases,
            Role::Volunteer => false,
        };
        if reads {
            out.insert(hex);
        }
    }
    // The carrier may not be known as a member here yet (it joined since):
    // it still reads its case.
    out.insert(carrier);
    Ok(out)
}

/// Before a push: every case this device holds gets a key if it has none,
/// and the keys' holders are brought in line with the readers. The lead
/// also hands the oversight key to the supervisors. Inside the caller's
/// transaction; what it grants goes out in the same push, first.
pub(crate) fn prepare(
    conn: &Connection,
    team: &Team,
    trust: &Trust,
    profile: &crate::store::Profile,
) -> Result<()> {
    let actor = profile.actor();
    let members = trust.members();
    let Some(me) = this_device(conn, team, &members)? else {
        return Ok(());
    };
    let manager = matches!(me.role, Role::Supervisor | Role::Lead);
    let rules = read_rules(conn, actor, &team.team_id)?;
    let kx: BTreeMap<String, (DeviceId, [u8; 32])> = members
        .iter()
        .map(|(d, _, k)| (hex::encode(d), (*d, *k)))
        .collect();
    for (case, assignee, seen_gen) in held_cases(conn)? {
        let desired = readers(conn, &case, &assignee, &rules, &members, &me)?;
        let Some((gen, key)) = current_key(conn, &case)? else {
            // A case without a key: made here, or received as written
            // before per-case keys. Only a supervisor or the lead keys the
            // latter (their grants count everywhere, so first keys they
            // make concurrently converge); a volunteer writes it as before.
            if is_legacy(conn, &case)? && !manager {
                continue;
            }
            let key = CaseKey::generate();
            store_key(conn, &case, &key.id(), 1, &key, &me.hex)?;
            let to: Vec<_> = desired.iter().filter_map(|d| kx.get(d).copied()).collect();
            grant(
                conn,
                team,
                &me,
                &case,
                key.id(),
                1,
                &[(1, key.clone())],
                &with_me(&me, to),
            )?;
            continue;
        };
        // Only a device holding the newest key the team granted manages
        // the case: one taken off it (a newer generation names others)
        // may have a stale view of it and does nothing.
        if latest_granted(conn, &case)?.is_some_and(|(id, _)| id != key.id()) {
            clear_seal_key(conn, &case)?;
            continue;
        }
        // Holding a rotated key is not enough: the rotation's reason (a
        // handover, say) is sealed under it and may not have arrived yet.
        // Until the document records every rotation whose key is held
        // here, this device's view of the readers may be stale: it does
        // nothing. (The generation alone does not say it: two managers may
        // rotate to the same generation at once, and a device's own
        // rotation would vouch for the other's.)
        let holders = recipients(conn, trust, &me.hex, &case, &key.id())?;
        let gone = holders.iter().any(|h| !desired.contains(h));
        // What this device writes next is sealed under the newest key no
        // one outside the readers holds, as far as it can tell: the newest
        // key may be one a manager made from a stale view, still held by a
        // volunteer taken off the case, until a manager rotates past it.
        // Chosen even while its view is not fresh (review K2): what it
        // writes meanwhile must not fall back to that key either.
        choose_seal_key(conn, trust, &me.hex, &case, &desired, (key.id(), gone))?;
        if !view_is_fresh(conn, &case, gen, seen_gen)? {
            continue;
        }
        let reads = desired.contains(&me.hex);
        let to: Vec<_> = desired.iter().filter_map(|d| kx.get(d).copied()).collect();
        if manager && gone {
            // A holder is no longer a reader (this device, maybe): what is
            // written next is for the readers only. The readers get every
            // generation; this device keeps the new one only if it reads.
            let Some(next) = gen.checked_add(1) else {
                continue;
            };
            let fresh = CaseKey::generate();
            let mut keys = keys_of(conn, &case)?;
            keys.push((next, fresh.clone()));
            let to = if reads {
                store_key(conn, &case, &fresh.id(), next, &fresh, &me.hex)?;
                with_me(&me, to)
            } else {
                to.into_iter().filter(|(d, _)| *d != me.id).collect()
            };
            grant(conn, team, &me, &case, fresh.id(), next, &keys, &to)?;
            if reads {
                set_seal_key(conn, &case, &fresh.id())?;
            }
            // A reader new to the case (the one it was handed to) is
            // recorded as holding the older generations too.
            let fresh_holders: BTreeSet<String> = to.iter().map(|(d, _)| hex::encode(d)).collect();
            give_lacking(
                conn,
                trust,
                team,
                &me,
                &case,
                &keys,
                &to,
                (fresh.id(), &fresh_holders),
            )?;
            // The document records the rotation, in this same push, so a
            // device that holds the new key knows when its view caught up.
            let id = DocId::parse(&case, "case")?;
            crate::store::write_in(
                conn,
                profile,
                &id,
                DocKind::Case,
                false,
                "case key rotated",
                |doc, _| {
                    use automerge::transaction::Transactable;
                    let bad = |e| Error::Document {
                        id: "case".into(),
                        source: Box::new(e),
                    };
                    doc.put(ROOT, "key_gen", i64::from(next)).map_err(bad)?;
                    doc.put(ROOT, rotation_field(&fresh.id()), i64::from(next))
                        .map_err(bad)
                },
            )?;
            continue;
        }
        // A reader missing gets the key from any device that holds it and
        // reads (a copy of a key a supervisor, the lead or the creator
        // made counts everywhere), or from a manager that holds it.
        if !(reads || manager) {
            continue;
        }
        let keys = keys_of(conn, &case)?;
        give_lacking(
            conn,
            trust,
            team,
            &me,
            &case,
            &keys,
            &to,
            (key.id(), &holders),
        )?;
    }
    if me.role == Role::Lead {
        if let Some((gen, secret)) = current_key(conn, OVERSIGHT)? {
            let kid = oversight_key_id(&oversight_public(&secret));
            let holders = recipients(conn, trust, &me.hex, OVERSIGHT, &kid)?;
            let missing: Vec<_> = members
                .iter()
                .filter(|(d, role, _)| {
                    matches!(role, Role::Supervisor) && !holders.contains(&hex::encode(d))
                })
                .map(|(d, _, k)| (*d, *k))
                .collect();
            if !missing.is_empty() {
                grant(
                    conn,
                    team,
                    &me,
                    OVERSIGHT,
                    kid,
                    gen,
                    &[(gen, secret)],
                    &missing,
                )?;
            }
        }
    }
    Ok(())
}

/// Gives each reader in `to` every key of `case` held here that no grant
/// records it as holding (`known`: a key whose holders the caller already
/// has), in one grant per key naming it and carrying every generation
/// held, so that the grants record exactly who holds what. A reader may
/// hold the current key and lack another: two managers that rotated at
/// once made two keys of one generation, and what was written under the
/// one not current here opens only with it.
#[allow(clippy::too_many_arguments)]
fn give_lacking(
    conn: &Connection,
    trust: &Trust,
    team: &Team,
    me: &Me,
    case: &str,
    keys: &[(u32, CaseKey)],
    to: &[(DeviceId, [u8; 32])],
    known: ([u8; 8], &BTreeSet<String>),
) -> Result<()> {
    for (g, k) in keys {
        let id = k.id();
        let found;
        let holders = if id == known.0 {
            known.1
        } else {
            found = recipients(conn, trust, &me.hex, case, &id)?;
            &found
        };
        let lacking: Vec<_> = to
            .iter()
            .filter(|(d, _)| *d != me.id && !holders.contains(&hex::encode(d)))
            .copied()
            .collect();
        if !lacking.is_empty() {
            grant(conn, team, me, case, id, *g, keys, &lacking)?;
        }
    }
    Ok(())
}

fn with_me(me: &Me, mut to: Vec<(DeviceId, [u8; 32])>) -> Vec<(DeviceId, [u8; 32])> {
    // This device is a recipient of its own grants, so the record of who
    // holds the key includes it (its copy is never opened).
    if !to.iter().any(|(d, _)| *d == me.id) {
        to.push((me.id, me.kx));
    }
    to
}

fn is_legacy(conn: &Connection, case: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM legacy_cases WHERE doc_id = ?1)",
        [case],
        |r| r.get(0),
    )?)
}

/// Cases this device holds, with their assignee (`""` if none).
fn held_cases(conn: &Connection) -> Result<Vec<(String, String, u32)>> {
    let mut st = conn.prepare_cached(
        "SELECT d.id, coalesce(c.assignee_device, ''), coalesce(c.key_gen, 0)
         FROM documents d LEFT JOIN cases c ON c.id = d.id
         WHERE d.kind = 'case' ORDER BY d.id",
    )?;
    let rows = st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u32))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Records which key `case`'s next payloads are sealed under: the newest
/// held key whose recorded holders are all in `desired` (`newest`: the
/// current key's id and whether a holder of it is not a reader). With none
/// such, the current key, as before (a volunteer cannot rotate; the next
/// manager's sync will).
fn choose_seal_key(
    conn: &Connection,
    trust: &Trust,
    me: &str,
    case: &str,
    desired: &BTreeSet<String>,
    newest: ([u8; 8], bool),
) -> Result<()> {
    if !newest.1 {
        return set_seal_key(conn, case, &newest.0);
    }
    let mut held: Vec<(u32, [u8; 8])> = Vec::new();
    for (_, k) in keys_of(conn, case)? {
        if let Some(gen) = granted_gen(conn, case, &k.id())? {
            held.push((gen, k.id()));
        }
    }
    held.sort_unstable_by(|a, b| b.cmp(a));
    for (_, id) in held {
        if id == newest.0 {
            continue;
        }
        let holders = recipients(conn, trust, me, case, &id)?;
        if holders.iter().all(|h| desired.contains(h)) {
            return set_seal_key(conn, case, &id);
        }
    }
    clear_seal_key(conn, case)
}

fn set_seal_key(conn: &Connection, case: &str, id: &[u8; 8]) -> Result<()> {
    conn.execute(
        "INSERT INTO case_seal_keys (case_id, key_id) VALUES (?1, ?2)
         ON CONFLICT (case_id) DO UPDATE SET key_id = ?2",
        params![case, &id[..]],
    )?;
    Ok(())
}

fn clear_seal_key(conn: &Connection, case: &str) -> Result<()> {
    conn.execute("DELETE FROM case_seal_keys WHERE case_id = ?1", [case])?;
    Ok(())
}

/// The key `case`'s payloads are sealed under: the one `prepare` chose,
/// if still held under an accepted grant; else the current key.
fn seal_key(conn: &Connection, case: &str) -> Result<Option<CaseKey>> {
    let chosen: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key_id FROM case_seal_keys WHERE case_id = ?1",
            [case],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = chosen.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()) {
        if granted_gen(conn, case, &id)?.is_some() {
            if let Some(k) = key_by_id(conn, case, &id)? {
                return Ok(Some(k));
            }
        }
    }
    Ok(current_key(conn, case)?.map(|(_, k)| k))
}

/// The case document's record of the rotation to key `id`.
fn rotation_field(id: &[u8; 8]) -> String {
    format!("{ROTATION_PREFIX}{}", hex::encode(id))
}

const ROTATION_PREFIX: &str = "key_rot_";

/// Projects the rotations a case's document records into
/// `case_rotations` (a document only ever gains them).
pub(crate) fn project_rotations(
    conn: &Connection,
    case: &str,
    doc: &automerge::AutoCommit,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT OR IGNORE INTO case_rotations (case_id, key_id, gen) VALUES (?1, ?2, ?3)",
    )?;
    for field in doc.keys(ROOT) {
        let Some(id) = field
            .strip_prefix(ROTATION_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() == 8)
        else {
            continue;
        };
        let gen = match doc.get(ROOT, field.as_str()) {
            Ok(Some((automerge::Value::Scalar(v), _))) => match v.as_ref() {
                automerge::ScalarValue::Int(i) => *i,
                automerge::ScalarValue::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                _ => continue,
            },
            _ => continue,
        };
        st.execute(params![case, id, gen])?;
    }
    Ok(())
}

/// Whether the case document held here has caught up with the rotations
/// this device holds keys of: it has reached `newest`, the current key's
/// generation (`key_gen`), and records the rotation of every key of that
/// generation held here (`key_rot_<id>`). A generation with no record at
/// all (written by a build from before the records) counts by `key_gen`
/// alone, as it did. Only the newest generation needs a record per key
/// (review K1): an unrecorded key of an older one, from a build without
/// records say, would otherwise keep the case stale for good, and the
/// rotation past it has a record of its own.
fn view_is_fresh(conn: &Connection, case: &str, newest: u32, seen_gen: u32) -> Result<bool> {
    if newest < 2 {
        return Ok(true);
    }
    if seen_gen < newest {
        return Ok(false);
    }
    let (held, recorded, any): (i64, i64, bool) = conn.query_row(
        "SELECT count(*),
                coalesce(sum(EXISTS (SELECT 1 FROM case_rotations r
                                     WHERE r.case_id = k.scope AND r.key_id = k.key_id)), 0),
                EXISTS (SELECT 1 FROM case_rotations r WHERE r.case_id = ?1 AND r.gen = ?2)
         FROM case_keys k WHERE k.scope = ?1 AND k.gen = ?2",
        params![case, newest],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(!any || recorded == held)
}

/// The key generation a case's document says it was rotated to: the
/// highest of the values devices wrote (`key_gen`, written by the device
/// that rotates, in the same push as the grant).
pub(crate) fn doc_key_gen(doc: &automerge::AutoCommit) -> u32 {
    doc.get_all(ROOT, "key_gen")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, _)| match v {
            automerge::Value::Scalar(s) => match s.as_ref() {
                automerge::ScalarValue::Int(i) => Some(*i),
                automerge::ScalarValue::Uint(u) => i64::try_from(*u).ok(),
                _ => None,
            },
            _ => None,
        })
        .max()
        .unwrap_or(0)
        .clamp(0, i64::from(u32::MAX)) as u32
}

/// Seals a batch's payload for the push: a case's under the key `prepare`
/// chose for it (the newest whose holders are all readers here), or its
/// newest key; anything else as it is.
pub(crate) fn seal_outgoing(
    conn: &Connection,
    team: &Team,
    doc: &DocId,
    kind: DocKind,
    payload: Vec<u8>,
) -> Result<Vec<u8>> {
    if kind != DocKind::Case {
        return Ok(payload);
    }
    // `prepare` gave every case held here a key, in this transaction,
    // except a case received as written before per-case keys, on a
    // volunteer's device: it stays as readable as it already is.
    let Some(key) = seal_key(conn, doc.as_str())? else {
        if is_legacy(conn, doc.as_str())? {
            return Ok(payload);
        }
        return Err(Error::Protocol {
            detail: format!("case {doc} has no key to seal it with"),
        });
    };
    Ok(case_seal::seal_case(
        &key,
        &team.team_id,
        &crate::sync::doc_bytes(doc),
        &payload,
    ))
}

/// What became of a pulled payload at the key layer.
pub(crate) enum Unsealed {
    /// Open it as usual.
    Open(Vec<u8>),
    /// Sealed under a key this device does not hold: kept.
    Locked,
    /// Sealed under a key held here, but it does not open: refuse it.
    Refused(&'static str),
}

/// Opens a case payload under its case key, or keeps it locked.
pub(crate) fn unseal_case(
    conn: &Connection,
    team: &TeamId,
    doc: &DocId,
    payload: Vec<u8>,
    seq: i64,
    content: Option<&[u8]>,
) -> Result<Unsealed> {
    let Some(kid) = case_key_id(&payload) else {
        // Written before per-case keys.
        conn.execute(
            "INSERT OR IGNORE INTO legacy_cases (doc_id, at) VALUES (?1, ?2)",
            params![doc.as_str(), now_ms()],
        )?;
        return Ok(Unsealed::Open(payload));
    };
    match key_by_id(conn, doc.as_str(), &kid)? {
        Some(key) => {
            match case_seal::open_case(&key, team, &crate::sync::doc_bytes(doc), &payload) {
                Ok(plain) => Ok(Unsealed::Open(plain)),
                Err(_) => Ok(Unsealed::Refused("case key does not open it")),
            }
        }
        None => {
            lock(
                conn,
                seq,
                content,
                doc,
                DocKind::Case,
                doc.as_str(),
                &kid,
                &payload,
            )?;
            Ok(Unsealed::Locked)
        }
    }
}

/// Keeps a payload for a key not held here. Rows are keyed by a local id
/// (arrival order) and the envelope's content id, never by the relay seq:
/// a venue relay's seqs and the central relay's collide.
#[allow(clippy::too_many_arguments)]
fn lock(
    conn: &Connection,
    seq: i64,
    content: Option<&[u8]>,
    doc: &DocId,
    kind: DocKind,
    scope: &str,
    kid: &[u8; 8],
    payload: &[u8],
) -> Result<()> {
    conn.execute(
        "INSERT INTO locked_payloads (content_id, seq, doc_id, kind, scope, key_id, payload, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (content_id) DO NOTHING",
        params![
            content,
            seq,
            doc.as_str(),
            kind.as_str(),
            scope,
            &kid[..],
            payload,
            now_ms()
        ],
    )?;
    Ok(())
}

/// Takes in the grant records of a pulled grants payload from `author`:
/// records who holds what, keeps the keys given to this device. Returns the
/// scopes for which this device learned a key. A grant its author may not
/// make is ignored.
pub(crate) fn receive_grants(
    conn: &Connection,
    trust: &Trust,
    team: &Team,
    author: &DeviceId,
    payload: &[u8],
    seq: i64,
) -> Result<std::result::Result<Vec<String>, &'static str>> {
    let Some(records) = case_seal::unframe(payload) else {
        return Ok(Err("damaged grant"));
    };
    let me = device_secret(conn)?;
    let my_id = team.device_bytes();
    let granter = hex::encode(author);
    let mut learned = Vec::new();
    let mut progress = false;
    for rec in records {
        let Some(g) = Grant::from_bytes(rec) else {
            continue;
        };
        match take_grant(conn, trust, team, &me, &my_id, &granter, &g, seq)? {
            None => {
                // Not provable yet: a copy of a key whose first grant has
                // not arrived here (it may be held for its epoch). Kept and
                // tried again whenever a grant is accepted.
                conn.execute(
                    "INSERT INTO waiting_grants (seq, granter, record, at) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, granter, rec, now_ms()],
                )?;
            }
            Some(scope) => {
                progress = true;
                if let Some(scope) = scope {
                    learned.push(scope);
                }
            }
        }
    }
    while progress {
        progress = false;
        let waiting: Vec<(i64, i64, String, Vec<u8>)> = {
            let mut st = conn.prepare_cached(
                "SELECT id, seq, granter, record FROM waiting_grants ORDER BY id",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for (id, wseq, who, rec) in waiting {
            let Some(g) = Grant::from_bytes(&rec) else {
                conn.execute("DELETE FROM waiting_grants WHERE id = ?1", [id])?;
                continue;
            };
            if let Some(scope) = take_grant(conn, trust, team, &me, &my_id, &who, &g, wseq)? {
                conn.execute("DELETE FROM waiting_grants WHERE id = ?1", [id])?;
                progress = true;
                if let Some(scope) = scope {
                    learned.push(scope);
                }
            }
        }
    }
    learned.sort();
    learned.dedup();
    Ok(Ok(learned))
}

/// Takes in one grant record from `granter` if it may make it: `None` if
/// not (yet); else the scope when this device learned a key by it.
#[allow(clippy::too_many_arguments)]
fn take_grant(
    conn: &Connection,
    trust: &Trust,
    team: &Team,
    me: &Option<heartbridge_proto::DeviceSecret>,
    my_id: &Option<DeviceId>,
    granter: &str,
    g: &Grant,
    seq: i64,
) -> Result<Option<Option<String>>> {
    let role =
        heartbridge_proto::identity::device_from_hex(granter).and_then(|d| trust.role_of(&d));
    let scope = scope_of(&g.scope);
    let allowed = if scope == OVERSIGHT {
        role == Some(Role::Lead)
    } else {
        // From a supervisor or the lead; for a case's first key, from the
        // device that made it (the first one seen); or as a copy of a key
        // such a grant already named (a reader passing the key on to a
        // reader who lacks it).
        let manager = matches!(role, Some(Role::Supervisor | Role::Lead));
        // A first key of a case from before per-case keys comes from a
        // manager only (its id is known to every member).
        let first = g.gen == 1
            && !is_legacy(conn, &scope)?
            && owner(conn, &scope)?.as_deref().is_none_or(|o| o == granter);
        let copy = granted_gen(conn, &scope, &g.key_id)? == Some(g.gen);
        manager || first || copy
    };
    if !allowed {
        return Ok(None);
    }
    let trusted = scope == OVERSIGHT
        || matches!(role, Some(Role::Supervisor | Role::Lead))
        || owner(conn, &scope)?.as_deref().is_none_or(|o| o == granter);
    let mine = match (me, my_id) {
        (Some(me), Some(my_id)) => g.open_for(&team.team_id, me, my_id),
        _ => None,
    };
    // A copy passed on by a reader counts only if it holds the very key it
    // names (so its granter really held it).
    if !trusted {
        if let Some(keys) = &mine {
            if !keys.iter().any(|(_, k)| k.id() == g.key_id) {
                return Ok(Some(None));
            }
        }
    }
    record_grant(conn, g, &scope, granter, seq)?;
    let Some(keys) = mine else {
        return Ok(Some(None));
    };
    let mut new = false;
    for (gen, key) in keys {
        let kid = if scope == OVERSIGHT {
            oversight_key_id(&oversight_public(&key))
        } else {
            key.id()
        };
        // Every generation in the copy is kept for opening (an older one
        // whose own grant is still held here opens the history); only a
        // key an accepted grant names is ever sealed under
        // (`current_key`), at the generation that grant names.
        let gen = granted_gen(conn, &scope, &kid)?.unwrap_or(gen);
        new |= store_key(conn, &scope, &kid, gen, &key, granter)?;
    }
    Ok(Some(new.then_some(scope)))
}

/// A payload that waited for a key: relay seq, content id (none for rows
/// kept before migration 17), document, kind, and its opened bytes (or why
/// it did not open).
pub(crate) type Unlocked = (
    i64,
    Option<Vec<u8>>,
    DocId,
    DocKind,
    std::result::Result<Vec<u8>, &'static str>,
);

/// The payloads kept locked for `scope` that a key held now opens, in log
/// order, removed from `locked_payloads`: (relay seq, document, kind,
/// opened bytes).
pub(crate) fn take_unlocked(
    conn: &Connection,
    team: &TeamId,
    scope: &str,
) -> Result<Vec<Unlocked>> {
    type Row = (i64, i64, Option<Vec<u8>>, String, String, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = {
        let mut st = conn.prepare_cached(
            "SELECT id, seq, content_id, doc_id, kind, key_id, payload FROM locked_payloads
             WHERE scope = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([scope], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut out = Vec::new();
    for (row, seq, content, doc, kind, kid, payload) in rows {
        let Ok(kid) = <[u8; 8]>::try_from(kid.as_slice()) else {
            continue;
        };
        let Some(key) = key_by_id(conn, scope, &kid)? else {
            continue;
        };
        conn.execute("DELETE FROM locked_payloads WHERE id = ?1", [row])?;
        let doc = DocId::parse(&doc, "document")?;
        let kind: DocKind = kind.parse()?;
        let opened = if kind == DocKind::Facts {
            Ok(payload)
        } else {
            case_seal::open_case(&key, team, &crate::sync::doc_bytes(&doc), &payload)
                .map_err(|_| "case key does not open it")
        };
        out.push((seq, content, doc, kind, opened));
    }
    Ok(out)
}

/// Opens every framed facts record of a pulled facts payload that the
/// oversight key held here opens; keeps the payload locked if some record
/// is sealed to an oversight key not held here. Returns the facts' bytes.
pub(crate) fn open_facts(
    conn: &Connection,
    team: &TeamId,
    doc: &DocId,
    payload: &[u8],
    seq: i64,
    content: Option<&[u8]>,
) -> Result<std::result::Result<Option<Vec<Vec<u8>>>, &'static str>> {
    let Some(records) = case_seal::unframe(payload) else {
        return Ok(Err("damaged facts"));
    };
    let held = keys_of(conn, OVERSIGHT)?;
    let mut out = Vec::new();
    for rec in records {
        let Some(kid) = facts_key_id(rec) else {
            return Ok(Err("damaged facts"));
        };
        let Some((_, secret)) = held
            .iter()
            .find(|(_, s)| oversight_key_id(&oversight_public(s)) == kid)
        else {
            lock(
                conn,
                seq,
                content,
                doc,
                DocKind::Facts,
                OVERSIGHT,
                &kid,
                payload,
            )?;
            return Ok(Ok(None));
        };
        match case_seal::open_facts(secret, team, rec) {
            Ok(plain) => out.push(plain),
            Err(_) => return Ok(Err("oversight key does not open it")),
        }
    }
    Ok(Ok(Some(out)))
}

/// On the lead's device: makes the team's oversight key pair if the team
/// has none. Returns the public key to write into the team settings, when
/// it was just made.
pub(crate) fn make_oversight_key(conn: &Connection, team: &Team) -> Result<Option<[u8; 32]>> {
    if team.role != Role::Lead || current_key(conn, OVERSIGHT)?.is_some() {
        return Ok(None);
    }
    let secret = CaseKey::generate();
    let pk = oversight_public(&secret);
    store_key(
        conn,
        OVERSIGHT,
        &oversight_key_id(&pk),
        1,
        &secret,
        &team.device_id,
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO grants (scope, key_id, gen, granter, recipient, relay_seq, at)
         VALUES (?1, ?2, 1, ?3, ?3, 0, ?4)",
        params![
            OVERSIGHT,
            &oversight_key_id(&pk)[..],
            team.device_id,
            now_ms()
        ],
    )?;
    Ok(Some(pk))
}

/// How many pulled payloads wait for a key this device was not given.
pub(crate) fn locked_count(conn: &Connection) -> Result<usize> {
    Ok(
        conn.query_row("SELECT count(*) FROM locked_payloads", [], |r| {
            r.get::<_, i64>(0)
        })? as usize,
    )
}

/// Seals the facts not sent yet to the team's oversight key and queues
/// them for the push (they wait while the team has no oversight key).
pub(crate) fn queue_facts(conn: &Connection, team: &Team, actor: &ActorId) -> Result<()> {
    let Some(pk) = read_rules(conn, actor, &team.team_id)?.oversight_pk else {
        return Ok(());
    };
    let unsent = crate::facts::take_unsent_in(conn)?;
    if unsent.is_empty() {
        return Ok(());
    }
    let facts: Vec<crate::facts::Fact> = unsent.iter().map(|(_, f)| f.clone()).collect();
    let sealed = case_seal::seal_facts(&pk, &team.team_id, &crate::facts::encode(&facts))
        .ok_or_else(|| Error::Protocol {
            detail: "the team's oversight key in the team settings is unreadable".into(),
        })?;
    queue(
        conn,
        &facts_doc_id(&team.team_id),
        DocKind::Facts,
        &case_seal::frame(&sealed),
    )?;
    let seqs: Vec<i64> = unsent.iter().map(|(s, _)| *s).collect();
    crate::facts::mark_sent_in(conn, &seqs)
}

/// On the lead's device, once: makes the oversight key and writes its
/// public key into the team settings, in the caller's transaction.
pub(crate) fn ensure_oversight(
    conn: &Connection,
    team: &Team,
    profile: &crate::store::Profile,
) -> Result<()> {
    let Some(pk) = make_oversight_key(conn, team)? else {
        return Ok(());
    };
    let hexpk = hex::encode(pk);
    crate::store::write_in(
        conn,
        profile,
        &crate::duty::settings_doc_id(&team.team_id),
        DocKind::TeamSettings,
        true,
        "oversight key",
        |doc, _| {
            use automerge::transaction::Transactable;
            doc.put(ROOT, "oversight_pk", hexpk.as_str())
                .map_err(|e| Error::Document {
                    id: "team settings".into(),
                    source: Box::new(e),
                })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.db");
        let mut conn = Connection::open(&path).expect("open");
        crate::store::migrate_for_tests(&mut conn, &path);
        (dir, conn)
    }

    fn grant_row(conn: &Connection, case: &str, key: &CaseKey, gen: u32, by: &str, to: &[&str]) {
        for t in to {
            conn.execute(
                "INSERT INTO grants (scope, key_id, gen, granter, recipient, relay_seq, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
                params![case, &key.id()[..], gen, by, t],
            )
            .expect("grant");
        }
    }

    /// Two managers rotated a case to generation 2 at once: the lead's key
    /// A for the readers after a handover, and a supervisor's key B made
    /// from a copy older than the handover, given to the volunteer taken
    /// off it. B sorts higher, so it is the current key; what the lead
    /// writes next is still sealed under A, which the volunteer lacks.
    #[test]
    fn the_newest_key_a_volunteer_taken_off_holds_is_not_sealed_under() {
        let (_dir, conn) = db();
        let team = heartbridge_proto::TeamId([7; 16]);
        let (lead, sup, vol) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let hexes = |d: &[u8; 16]| hex::encode(d);
        let trust = Trust::of_members(
            team,
            &[
                (lead, Role::Lead),
                (sup, Role::Supervisor),
                (vol, Role::Volunteer),
            ],
        );
        let case = hex::encode([9u8; 16]);
        let gen1 = CaseKey::generate();
        let (a, b) = loop {
            let (a, b) = (CaseKey::generate(), CaseKey::generate());
            if b.id() > a.id() {
                break (a, b);
            }
        };
        for (gen, k) in [(1, &gen1), (2, &a), (2, &b)] {
            store_key(&conn, &case, &k.id(), gen, k, &hexes(&lead)).expect("key");
        }
        let all = [hexes(&lead), hexes(&sup), hexes(&vol)];
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        grant_row(&conn, &case, &gen1, 1, &hexes(&vol), &all);
        grant_row(&conn, &case, &a, 2, &hexes(&lead), &all[..2]);
        grant_row(&conn, &case, &b, 2, &hexes(&sup), &all);
        let (_, current) = current_key(&conn, &case).expect("keys").expect("key");
        assert_eq!(current.id(), b.id(), "B is the current key");

        // The lead's view after the handover: the volunteer reads no more.
        let desired: BTreeSet<String> = [hexes(&lead), hexes(&sup)].into();
        choose_seal_key(
            &conn,
            &trust,
            &hexes(&lead),
            &case,
            &desired,
            (b.id(), true),
        )
        .expect("choose");
        let sealed = seal_key(&conn, &case).expect("seal key").expect("a key");
        assert_eq!(
            sealed.id(),
            a.id(),
            "sealed under a key the volunteer holds"
        );

        // Once the volunteer reads again (handed back), the newest is used.
        let desired: BTreeSet<String> = all.iter().map(|s| (*s).to_owned()).collect();
        choose_seal_key(
            &conn,
            &trust,
            &hexes(&lead),
            &case,
            &desired,
            (b.id(), false),
        )
        .expect("choose");
        assert_eq!(seal_key(&conn, &case).expect("k").expect("k").id(), b.id());

        // With every key held by someone outside the readers (no manager
        // rotated yet), the current key, as before: nothing goes unsealed.
        let desired: BTreeSet<String> = [hexes(&lead)].into();
        choose_seal_key(
            &conn,
            &trust,
            &hexes(&lead),
            &case,
            &desired,
            (b.id(), true),
        )
        .expect("choose");
        assert_eq!(seal_key(&conn, &case).expect("k").expect("k").id(), b.id());
    }

    /// A held rotated key whose record the copy of the case lacks makes the
    /// view stale, even when a record of the same generation is there (the
    /// device's own rotation); a profile from before the records counts by
    /// the generation.
    #[test]
    fn a_view_is_fresh_only_when_every_held_rotation_is_recorded() {
        let (_dir, conn) = db();
        let case = hex::encode([9u8; 16]);
        let (a, b) = (CaseKey::generate(), CaseKey::generate());
        store_key(&conn, &case, &a.id(), 2, &a, "x").expect("key");
        // Before the records: by the generation.
        assert!(!view_is_fresh(&conn, &case, 2, 1).expect("fresh"));
        assert!(view_is_fresh(&conn, &case, 2, 2).expect("fresh"));
        // Its own rotation recorded, another's key of the same generation held.
        let record = |k: &CaseKey, gen: u32| {
            conn.execute(
                "INSERT INTO case_rotations (case_id, key_id, gen) VALUES (?1, ?2, ?3)",
                params![case, &k.id()[..], gen],
            )
            .expect("record");
        };
        record(&a, 2);
        assert!(view_is_fresh(&conn, &case, 2, 2).expect("fresh"));
        store_key(&conn, &case, &b.id(), 2, &b, "y").expect("key");
        assert!(!view_is_fresh(&conn, &case, 2, 2).expect("fresh"));

        // Review K1: B came from a build that writes no record. Once the
        // case rotated past generation 2 (and the copy reached it), the
        // unrecorded key no longer keeps the case stale for good.
        let c = CaseKey::generate();
        store_key(&conn, &case, &c.id(), 3, &c, "x").expect("key");
        assert!(!view_is_fresh(&conn, &case, 3, 2).expect("fresh"));
        record(&c, 3);
        assert!(view_is_fresh(&conn, &case, 3, 3).expect("fresh"));

        // Recorded, B is fresh at its own generation too.
        record(&b, 2);
        assert!(view_is_fresh(&conn, &case, 2, 2).expect("fresh"));
    }
}
