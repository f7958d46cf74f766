//! The team settings and the duty roster (四线值守): one Automerge document
//! per team, kind `TeamSettings`, that only the lead's device writes. It
//! holds the on-call phone number, whether the lead reads cases, the
//! statistics' suppression threshold, supervisor groups, the team's lines
//! (hotline, online, venue, on-call supervisor…) and who is on duty on
//! which line when.
//!
//! Shifts (device-local rows in `shifts`, see `local.rs`) start on a line;
//! a shift's end may leave a handover note for the next shift on the same
//! line, kept in a `ShiftReport` document per line (team-wide: the team key
//! seals it, so the app tells the volunteer not to write case details
//! there).
//!
//! Phone numbers and names never go into an error, a log or a history
//! `what` string; `Debug` of these types hides them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ReadDoc, Value, ROOT};
use heartbridge_proto::{Role, TeamId};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::docvalue::{boolean, int, object, put_str_if_changed, string, text};
use crate::error::{Error, Result};
use crate::model::{DocId, DocKind};
use crate::store::{load_doc_in, Store, Written};

/// The default statistics suppression threshold: counts 1..=k are hidden.
pub const DEFAULT_SUPPRESSION_K: u32 = 5;

/// The id of a team's settings document: the first 16 bytes of
/// SHA-256("heartbridge team settings v1" ‖ team id).
pub fn settings_doc_id(team: &TeamId) -> DocId {
    derived_id(b"heartbridge team settings v1", &team.0, b"")
}

/// The id of the shift-report document of one line of a team (`""` for
/// shifts on no line).
pub fn shift_report_doc_id(team: &TeamId, line: &str) -> DocId {
    derived_id(b"heartbridge shift reports v1", &team.0, line.as_bytes())
}

fn derived_id(label: &[u8], team: &[u8; 16], extra: &[u8]) -> DocId {
    let mut h = Sha256::new();
    h.update(label);
    h.update(team);
    h.update(extra);
    let sum = h.finalize();
    DocId::parse(&hex::encode(&sum[..16]), "document").expect("32 hex digits")
}

/// What kind of line a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LineKind {
    #[serde(rename = "hotline")]
    Hotline,
    #[serde(rename = "online")]
    Online,
    #[serde(rename = "venue")]
    Venue,
    #[serde(rename = "on-call")]
    OnCall,
}

impl LineKind {
    pub const ALL: &'static [LineKind] = &[
        LineKind::Hotline,
        LineKind::Online,
        LineKind::Venue,
        LineKind::OnCall,
    ];
    pub const SPELLINGS: &'static str = "hotline online venue on-call";

    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Hotline => "hotline",
            LineKind::Online => "online",
            LineKind::Venue => "venue",
            LineKind::OnCall => "on-call",
        }
    }
}

impl FromStr for LineKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        LineKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| Error::InvalidValue {
                field: "line kind",
                value: s.chars().take(40).collect(),
                allowed: LineKind::SPELLINGS,
            })
    }
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the team's lines.
#[derive(Clone, Serialize, PartialEq)]
pub struct Line {
    /// Short id (`[a-z0-9_-]`), as the CLI takes it.
    pub id: String,
    pub name: String,
    pub kind: LineKind,
    /// The line's own phone number, if it has one (an on-call line's
    /// number is what an escalation shows).
    pub phone: Option<String>,
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Who is on duty on a line, from `from` to `to` (ms, `to` excluded).
#[derive(Clone, Serialize, PartialEq)]
pub struct DutySlot {
    pub id: String,
    pub line: String,
    pub device: String,
    pub name: String,
    pub from: i64,
    pub to: i64,
}

impl fmt::Debug for DutySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DutySlot")
            .field("id", &self.id)
            .field("line", &self.line)
            .field("device", &self.device)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// The team's settings, as this device holds them (defaults when the
/// document has not arrived or was never written).
#[derive(Clone, Serialize, PartialEq)]
pub struct TeamSettings {
    pub on_call_phone: String,
    pub lead_reads_cases: bool,
    pub suppression_k: u32,
    /// supervisor device → the volunteer devices it supervises. Empty:
    /// every supervisor supervises everyone.
    pub supervisor_groups: BTreeMap<String, BTreeSet<String>>,
    /// The lines, by id.
    pub lines: Vec<Line>,
    /// The duty roster, by start time.
    pub duty: Vec<DutySlot>,
    /// The team's oversight public key (X25519), written by the lead's
    /// sync code.
    #[serde(serialize_with = "hex_opt")]
    pub oversight_pk: Option<[u8; 32]>,
}

fn hex_opt<S: serde::Serializer>(
    v: &Option<[u8; 32]>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_some(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

impl Default for TeamSettings {
    fn default() -> Self {
        TeamSettings {
            on_call_phone: String::new(),
            lead_reads_cases: false,
            suppression_k: DEFAULT_SUPPRESSION_K,
            supervisor_groups: BTreeMap::new(),
            lines: Vec::new(),
            duty: Vec::new(),
            oversight_pk: None,
        }
    }
}

impl fmt::Debug for TeamSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamSettings")
            .field("on_call_phone", &"<redacted>")
            .field("lead_reads_cases", &self.lead_reads_cases)
            .field("suppression_k", &self.suppression_k)
            .field("supervisor_groups", &self.supervisor_groups)
            .field("lines", &self.lines)
            .field("duty", &self.duty)
            .field("oversight_pk", &self.oversight_pk.map(hex::encode))
            .finish()
    }
}

impl TeamSettings {
    /// A line by id, or else by its exact name (if only one has it).
    pub fn find_line(&self, id_or_name: &str) -> Option<&Line> {
        let s = id_or_name.trim();
        if let Some(l) = self.lines.iter().find(|l| l.id == s) {
            return Some(l);
        }
        let mut named = self.lines.iter().filter(|l| l.name == s);
        match (named.next(), named.next()) {
            (Some(l), None) => Some(l),
            _ => None,
        }
    }

    /// The duty slots running at `ms`, by line, then start.
    pub fn on_duty_at(&self, ms: i64) -> Vec<&DutySlot> {
        let mut v: Vec<&DutySlot> = self
            .duty
            .iter()
            .filter(|d| d.from <= ms && ms < d.to)
            .collect();
        v.sort_by(|a, b| (&a.line, a.from, &a.id).cmp(&(&b.line, b.from, &b.id)));
        v
    }

    /// The person on the on-call line at `ms`: when several slots overlap,
    /// the one that started last (then the greatest id) — the same answer
    /// on every device. Phone: the line's own, else the team's on-call
    /// phone, else none.
    pub fn on_call_at(&self, ms: i64) -> Option<OnCall> {
        let (slot, line) = self
            .duty
            .iter()
            .filter(|d| d.from <= ms && ms < d.to)
            .filter_map(|d| {
                let line = self.lines.iter().find(|l| l.id == d.line)?;
                (line.kind == LineKind::OnCall).then_some((d, line))
            })
            .max_by(|(a, _), (b, _)| (a.from, &a.id).cmp(&(b.from, &b.id)))?;
        let phone = line
            .phone
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| Some(self.on_call_phone.clone()).filter(|p| !p.is_empty()));
        Some(OnCall {
            name: slot.name.clone(),
            device: slot.device.clone(),
            phone,
            line: line.id.clone(),
            until: slot.to,
        })
    }
}

/// The supervisor on call at a time.
#[derive(Clone, Serialize, PartialEq)]
pub struct OnCall {
    pub name: String,
    pub device: String,
    /// The on-call line's phone, or else the team's on-call phone.
    pub phone: Option<String>,
    /// The on-call line's id.
    pub line: String,
    /// When the slot ends (ms).
    pub until: i64,
}

impl fmt::Debug for OnCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnCall")
            .field("device", &self.device)
            .field("line", &self.line)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

/// A line to add.
#[derive(Clone, Default)]
pub struct NewLine {
    /// The id; `None` makes one from the kind (`hotline`, `hotline-2`, …).
    pub id: Option<String>,
    pub name: String,
    pub kind: Option<LineKind>,
    pub phone: Option<String>,
}

/// A duty slot to add.
#[derive(Clone)]
pub struct NewDuty {
    /// The line's id or name.
    pub line: String,
    pub device: String,
    pub name: String,
    pub from: i64,
    pub to: i64,
}

/// The team id this profile's documents are derived from: the team's, or
/// all zeros for a standalone profile.
pub(crate) fn team_id_in(conn: &Connection) -> Result<TeamId> {
    let hex: Option<String> = conn
        .query_row("SELECT team_id FROM team WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    match hex {
        None => Ok(TeamId([0; 16])),
        Some(h) => TeamId::from_hex(&h).ok_or_else(|| Error::Protocol {
            detail: "the stored team id is unreadable".into(),
        }),
    }
}

/// The team settings as stored here (defaults if the document is absent).
pub(crate) fn settings_in(conn: &Connection, actor: &ActorId) -> Result<TeamSettings> {
    let id = settings_doc_id(&team_id_in(conn)?);
    match load_doc_in(conn, &id, actor)? {
        Some((DocKind::TeamSettings, doc)) => Ok(read(&doc)),
        Some(_) => Err(Error::WrongKind {
            id: id.to_string(),
            expected: DocKind::TeamSettings.as_str(),
        }),
        None => Ok(TeamSettings::default()),
    }
}

/// The on-call person at `ms`, read inside the caller's transaction.
pub(crate) fn on_call_in(conn: &Connection, actor: &ActorId, ms: i64) -> Result<Option<OnCall>> {
    Ok(settings_in(conn, actor)?.on_call_at(ms))
}

fn maps_in(doc: &AutoCommit, obj: &ObjId) -> Vec<(String, ObjId)> {
    doc.keys(obj)
        .filter_map(|k| match doc.get(obj, k.as_str()).ok().flatten() {
            Some((Value::Object(ObjType::Map), id)) => Some((k, id)),
            _ => None,
        })
        .collect()
}

/// Reads a settings document; fields it lacks take their defaults.
pub(crate) fn read(doc: &AutoCommit) -> TeamSettings {
    let mut s = TeamSettings {
        on_call_phone: string(doc, &ROOT, "on_call_phone").unwrap_or_default(),
        lead_reads_cases: boolean(doc, &ROOT, "lead_reads_cases").unwrap_or(false),
        suppression_k: int(doc, &ROOT, "suppression_k")
            .and_then(|k| u32::try_from(k).ok())
            .filter(|k| *k >= 1)
            .unwrap_or(DEFAULT_SUPPRESSION_K),
        ..TeamSettings::default()
    };
    s.oversight_pk = string(doc, &ROOT, "oversight_pk")
        .and_then(|h| hex::decode(h.trim()).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    if let Some(groups) = object(doc, &ROOT, "supervisor_groups", ObjType::Map) {
        for (sup, members) in maps_in(doc, &groups) {
            let set: BTreeSet<String> = doc
                .keys(&members)
                .filter(|k| boolean(doc, &members, k) == Some(true))
                .collect();
            if !set.is_empty() {
                s.supervisor_groups.insert(sup, set);
            }
        }
    }
    if let Some(lines) = object(doc, &ROOT, "lines", ObjType::Map) {
        for (id, l) in maps_in(doc, &lines) {
            let Some(kind) = string(doc, &l, "kind").and_then(|k| k.parse().ok()) else {
                continue;
            };
            s.lines.push(Line {
                id,
                name: string(doc, &l, "name").unwrap_or_default(),
                kind,
                phone: string(doc, &l, "phone").filter(|p| !p.is_empty()),
            });
        }
    }
    if let Some(duty) = object(doc, &ROOT, "duty", ObjType::List) {
        for i in 0..doc.length(&duty) {
            let Some((Value::Object(ObjType::Map), d)) = doc.get(&duty, i).ok().flatten() else {
                continue;
            };
            let (Some(id), Some(line), Some(from), Some(to)) = (
                string(doc, &d, "id"),
                string(doc, &d, "line"),
                int(doc, &d, "from"),
                int(doc, &d, "to"),
            ) else {
                continue;
            };
            s.duty.push(DutySlot {
                id,
                line,
                device: string(doc, &d, "device").unwrap_or_default(),
                name: string(doc, &d, "name").unwrap_or_default(),
                from,
                to,
            });
        }
    }
    s.duty
        .sort_by(|a, b| (a.from, &a.line, &a.id).cmp(&(b.from, &b.line, &b.id)));
    s
}

fn am(e: automerge::AutomergeError) -> Error {
    Error::Document {
        id: "team settings".into(),
        source: Box::new(e),
    }
}

fn map_at(doc: &mut AutoCommit, parent: &ObjId, key: &str) -> Result<ObjId> {
    match object(doc, parent, key, ObjType::Map) {
        Some(id) => Ok(id),
        None => doc.put_object(parent, key, ObjType::Map).map_err(am),
    }
}

fn list_at(doc: &mut AutoCommit, key: &str) -> Result<ObjId> {
    match object(doc, &ROOT, key, ObjType::List) {
        Some(id) => Ok(id),
        None => doc.put_object(ROOT, key, ObjType::List).map_err(am),
    }
}

fn short_id() -> String {
    let b: [u8; 8] = rand::random();
    hex::encode(b)
}

/// A phone number: digits, `+`, `-`, spaces, parentheses; 3 to 32
/// characters with at least 3 digits. The value is never echoed.
fn check_phone(p: &str) -> Result<String> {
    let p = p.trim();
    let ok = p.len() <= 32
        && p.chars().all(|c| c.is_ascii_digit() || "+-() ".contains(c))
        && p.chars().filter(char::is_ascii_digit).count() >= 3;
    if ok {
        Ok(p.to_owned())
    } else {
        Err(Error::InvalidValue {
            field: "phone number",
            value: "(not shown)".into(),
            allowed: "digits, +, -, spaces and parentheses (3 to 32 characters)",
        })
    }
}

fn check_line_id(id: &str) -> Result<String> {
    let id = id.trim();
    if !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(id.to_owned())
    } else {
        Err(Error::InvalidValue {
            field: "line id",
            value: id.chars().take(40).collect(),
            allowed: "1 to 32 of a-z, 0-9, - and _",
        })
    }
}

/// Who may change the team settings: the lead's device, or a standalone
/// profile (no one else is there).
fn lead_only(store: &Store, action: &'static str) -> Result<()> {
    match store.team()? {
        Some(t) if t.role != Role::Lead => Err(Error::Forbidden {
            action,
            role: t.role.as_str(),
            needs: "the team lead",
        }),
        _ => Ok(()),
    }
}

impl Store {
    /// The team settings this device holds (defaults before the lead's
    /// document arrived).
    pub fn team_settings(&self) -> Result<TeamSettings> {
        settings_in(self.conn(), self.actor())
    }

    /// The supervisor on call at `ms` (Unix milliseconds): the person of
    /// the on-call line's duty slot running then, with the line's phone or
    /// else the team's on-call phone. `None` outside every on-call slot.
    pub fn on_call_at(&self, ms: i64) -> Result<Option<OnCall>> {
        on_call_in(self.conn(), self.actor(), ms)
    }

    /// Writes the settings document (lead only; checked before anything
    /// is written).
    fn write_settings<T>(
        &mut self,
        action: &'static str,
        f: impl FnOnce(&mut AutoCommit) -> Result<T>,
    ) -> Result<(T, Written)> {
        lead_only(self, action)?;
        let id = settings_doc_id(&team_id_in(self.conn())?);
        self.write(&id, DocKind::TeamSettings, true, action, |doc, _| {
            put_str_if_changed(doc, &ROOT, "kind", DocKind::TeamSettings.as_str()).map_err(am)?;
            f(doc)
        })
    }

    /// Sets the team's on-call phone number (`""` clears it).
    pub fn set_on_call_phone(&mut self, phone: &str) -> Result<Written> {
        let phone = if phone.trim().is_empty() {
            String::new()
        } else {
            check_phone(phone)?
        };
        Ok(self
            .write_settings("change the team settings", |doc| {
                put_str_if_changed(doc, &ROOT, "on_call_phone", &phone).map_err(am)
            })?
            .1)
    }

    /// Whether the lead's device may read every case.
    pub fn set_lead_reads_cases(&mut self, yes: bool) -> Result<Written> {
        Ok(self
            .write_settings("change the team settings", |doc| {
                if boolean(doc, &ROOT, "lead_reads_cases") != Some(yes) {
                    doc.put(ROOT, "lead_reads_cases", yes).map_err(am)?;
                }
                Ok(())
            })?
            .1)
    }

    /// The statistics' small-cell threshold: counts 1..=k are suppressed.
    pub fn set_suppression_k(&mut self, k: u32) -> Result<Written> {
        if !(1..=100).contains(&k) {
            return Err(Error::InvalidValue {
                field: "suppression k",
                value: k.to_string(),
                allowed: "a whole number from 1 to 100",
            });
        }
        Ok(self
            .write_settings("change the team settings", |doc| {
                if int(doc, &ROOT, "suppression_k") != Some(i64::from(k)) {
                    doc.put(ROOT, "suppression_k", i64::from(k)).map_err(am)?;
                }
                Ok(())
            })?
            .1)
    }

    /// Sets the volunteers a supervisor supervises (replacing the group);
    /// an empty list removes the group.
    pub fn set_supervisor_group(
        &mut self,
        supervisor: &str,
        volunteers: &[String],
    ) -> Result<Written> {
        let sup = supervisor.trim().to_ascii_lowercase();
        if sup.is_empty() {
            return Err(Error::Empty {
                what: "supervisor device",
            });
        }
        let want: BTreeSet<String> = volunteers
            .iter()
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        Ok(self
            .write_settings("change the team settings", |doc| {
                let groups = map_at(doc, &ROOT, "supervisor_groups")?;
                if want.is_empty() {
                    if doc.get(&groups, sup.as_str()).map_err(am)?.is_some() {
                        doc.delete(&groups, sup.as_str()).map_err(am)?;
                    }
                    return Ok(());
                }
                let g = map_at(doc, &groups, &sup)?;
                let have: Vec<String> = doc.keys(&g).collect();
                for k in have.iter().filter(|k| !want.contains(*k)) {
                    doc.delete(&g, k.as_str()).map_err(am)?;
                }
                for v in &want {
                    if boolean(doc, &g, v) != Some(true) {
                        doc.put(&g, v.as_str(), true).map_err(am)?;
                    }
                }
                Ok(())
            })?
            .1)
    }

    /// Adds a line; returns its id.
    pub fn add_line(&mut self, new: &NewLine) -> Result<String> {
        lead_only(self, "change the duty roster")?;
        let name = new.name.trim().to_owned();
        if name.is_empty() {
            return Err(Error::Empty { what: "line name" });
        }
        let kind = new.kind.unwrap_or(LineKind::Hotline);
        let phone = match new.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(check_phone(p)?),
        };
        let given = new.id.as_deref().map(check_line_id).transpose()?;
        let current = self.team_settings()?;
        let id = match given {
            Some(id) => id,
            None => {
                let base = kind.as_str();
                let mut n = 1;
                loop {
                    let candidate = if n == 1 {
                        base.to_owned()
                    } else {
                        format!("{base}-{n}")
                    };
                    if !current.lines.iter().any(|l| l.id == candidate) {
                        break candidate;
                    }
                    n += 1;
                }
            }
        };
        self.write_settings("change the duty roster", |doc| {
            let lines = map_at(doc, &ROOT, "lines")?;
            let l = map_at(doc, &lines, &id)?;
            put_str_if_changed(doc, &l, "name", &name).map_err(am)?;
            put_str_if_changed(doc, &l, "kind", kind.as_str()).map_err(am)?;
            match &phone {
                Some(p) => put_str_if_changed(doc, &l, "phone", p).map_err(am)?,
                None => {
                    if doc.get(&l, "phone").map_err(am)?.is_some() {
                        doc.delete(&l, "phone").map_err(am)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Removes a line (by id or name) and every duty slot on it; returns
    /// the id removed.
    pub fn remove_line(&mut self, id_or_name: &str) -> Result<String> {
        lead_only(self, "change the duty roster")?;
        let current = self.team_settings()?;
        let id = current
            .find_line(id_or_name)
            .ok_or_else(|| Error::NotFound {
                what: "duty line",
                id: id_or_name.chars().take(40).collect(),
            })?
            .id
            .clone();
        self.write_settings("change the duty roster", |doc| {
            let lines = map_at(doc, &ROOT, "lines")?;
            doc.delete(&lines, id.as_str()).map_err(am)?;
            if let Some(duty) = object(doc, &ROOT, "duty", ObjType::List) {
                for i in (0..doc.length(&duty)).rev() {
                    let on_line = match doc.get(&duty, i).map_err(am)? {
                        Some((Value::Object(ObjType::Map), d)) => {
                            string(doc, &d, "line").as_deref() == Some(id.as_str())
                        }
                        _ => false,
                    };
                    if on_line {
                        doc.delete(&duty, i).map_err(am)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Puts someone on duty on a line from `from` to `to` (ms); returns the
    /// slot's id.
    pub fn add_duty(&mut self, new: &NewDuty) -> Result<String> {
        lead_only(self, "change the duty roster")?;
        let current = self.team_settings()?;
        let line = current
            .find_line(&new.line)
            .ok_or_else(|| Error::NotFound {
                what: "duty line",
                id: new.line.chars().take(40).collect(),
            })?
            .id
            .clone();
        let device = new.device.trim().to_ascii_lowercase();
        if device.is_empty() {
            return Err(Error::Empty {
                what: "the member's device",
            });
        }
        if new.to <= new.from {
            return Err(Error::InvalidValue {
                field: "duty time",
                value: "to is not after from".into(),
                allowed: "an end after the start",
            });
        }
        let name = new.name.trim().to_owned();
        let (from, to) = (new.from, new.to);
        let id = short_id();
        self.write_settings("change the duty roster", |doc| {
            let duty = list_at(doc, "duty")?;
            let len = doc.length(&duty);
            let d = doc.insert_object(&duty, len, ObjType::Map).map_err(am)?;
            doc.put(&d, "id", id.as_str()).map_err(am)?;
            doc.put(&d, "line", line.as_str()).map_err(am)?;
            doc.put(&d, "device", device.as_str()).map_err(am)?;
            doc.put(&d, "name", name.as_str()).map_err(am)?;
            doc.put(&d, "from", from).map_err(am)?;
            doc.put(&d, "to", to).map_err(am)?;
            Ok(())
        })?;
        Ok(id)
    }

    /// Removes a duty slot by id.
    pub fn remove_duty(&mut self, slot: &str) -> Result<()> {
        lead_only(self, "change the duty roster")?;
        let slot = slot.trim().to_ascii_lowercase();
        let (found, _) = self.write_settings("change the duty roster", |doc| {
            let Some(duty) = object(doc, &ROOT, "duty", ObjType::List) else {
                return Ok(false);
            };
            let mut found = false;
            for i in (0..doc.length(&duty)).rev() {
                let hit = match doc.get(&duty, i).map_err(am)? {
                    Some((Value::Object(ObjType::Map), d)) => {
                        string(doc, &d, "id").as_deref() == Some(slot.as_str())
                    }
                    _ => false,
                };
                if hit {
                    doc.delete(&duty, i).map_err(am)?;
                    found = true;
                }
            }
            Ok(found)
        })?;
        if found {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "duty slot",
                id: slot.chars().take(40).collect(),
            })
        }
    }
}

/// A handover note left at a shift's end for the next shift on its line.
#[derive(Clone, Serialize, PartialEq)]
pub struct HandoverNote {
    pub id: String,
    /// The line's id (`""`: a shift on no line).
    pub line: String,
    pub at: i64,
    pub shift_started_at: i64,
    pub by_device: String,
    pub by_name: String,
    pub text: String,
}

impl fmt::Debug for HandoverNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandoverNote")
            .field("id", &self.id)
            .field("line", &self.line)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// How many handover notes `handover_notes` returns at most.
pub const HANDOVER_NOTES_SHOWN: usize = 20;

/// Prefix of a note's key in a shift-report document: every note is its
/// own root key, so notes two devices add concurrently (even to a document
/// both created) all survive the merge.
const NOTE_PREFIX: &str = "note-";

pub(crate) fn put_handover_note(doc: &mut AutoCommit, note: &HandoverNote) -> Result<()> {
    let am = |e: automerge::AutomergeError| Error::Document {
        id: "shift report".into(),
        source: Box::new(e),
    };
    put_str_if_changed(doc, &ROOT, "kind", DocKind::ShiftReport.as_str()).map_err(am)?;
    put_str_if_changed(doc, &ROOT, "line", &note.line).map_err(am)?;
    let n = doc
        .put_object(ROOT, format!("{NOTE_PREFIX}{}", note.id), ObjType::Map)
        .map_err(am)?;
    doc.put(&n, "id", note.id.as_str()).map_err(am)?;
    doc.put(&n, "line", note.line.as_str()).map_err(am)?;
    doc.put(&n, "at", note.at).map_err(am)?;
    doc.put(&n, "shift_started_at", note.shift_started_at)
        .map_err(am)?;
    doc.put(&n, "by_device", note.by_device.as_str())
        .map_err(am)?;
    doc.put(&n, "by_name", note.by_name.as_str()).map_err(am)?;
    let t = doc.put_object(&n, "text", ObjType::Text).map_err(am)?;
    doc.update_text(&t, &note.text).map_err(am)?;
    Ok(())
}

pub(crate) fn read_handover_notes(doc: &AutoCommit) -> Vec<HandoverNote> {
    let mut out: Vec<HandoverNote> = maps_in(doc, &ROOT)
        .into_iter()
        .filter(|(k, _)| k.starts_with(NOTE_PREFIX))
        .filter_map(|(_, n)| {
            Some(HandoverNote {
                id: string(doc, &n, "id")?,
                line: string(doc, &n, "line").unwrap_or_default(),
                at: int(doc, &n, "at")?,
                shift_started_at: int(doc, &n, "shift_started_at").unwrap_or(0),
                by_device: string(doc, &n, "by_device").unwrap_or_default(),
                by_name: string(doc, &n, "by_name").unwrap_or_default(),
                text: text(doc, &n, "text").unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    out
}

impl Store {
    /// The recent handover notes for the next shift on a line (its id or
    /// name; `None`: shifts on no line), newest first, at most
    /// [`HANDOVER_NOTES_SHOWN`].
    pub fn handover_notes(&self, line: Option<&str>) -> Result<Vec<HandoverNote>> {
        let line_id = match line.map(str::trim) {
            None | Some("") => String::new(),
            Some(l) => match self.team_settings()?.find_line(l) {
                Some(found) => found.id.clone(),
                // A line removed since: its notes are still there.
                None => check_line_id(l).map_err(|_| Error::NotFound {
                    what: "duty line",
                    id: l.chars().take(40).collect(),
                })?,
            },
        };
        let id = shift_report_doc_id(&team_id_in(self.conn())?, &line_id);
        let mut notes = match self.load(&id)? {
            Some((DocKind::ShiftReport, doc)) => read_handover_notes(&doc),
            _ => Vec::new(),
        };
        notes.truncate(HANDOVER_NOTES_SHOWN);
        Ok(notes)
    }
}

#[cfg(test)]
mod tests;
