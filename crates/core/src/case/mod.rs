//! Cases: the people a volunteer follows, under an alias.
//!
//! A case is one Automerge document. The functions here read and change that
//! document and hold the merge rules the work needs where Automerge's
//! defaults would be wrong:
//!
//! - **risk** is a register whose concurrent values are all kept; a case's
//!   risk is the highest of them, so a merge never silently lowers a high
//!   risk flag. A later write that has seen them all replaces them.
//! - **contacts** and **follow-ups** are lists of maps; concurrent additions
//!   all survive, shown in time order.
//! - a contact's **text** is an Automerge Text: concurrent edits of one note
//!   merge character by character.
//! - **tags** are a map used as a set: concurrent additions all survive.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ROOT};
use serde::Serialize;

use crate::docvalue::{all_strings, boolean, int, object, put_str_if_changed, string, text};
use crate::error::{Error, Result};
use crate::model::{format_ms, Channel, Group, Risk, Status};

pub mod supervision;

/// What a new case starts with.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub alias: String,
    pub group: Group,
    pub risk: Risk,
}

/// A case as the volunteer sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Case {
    pub id: String,
    pub alias: String,
    pub group: Group,
    pub risk: Risk,
    /// True while devices disagree on risk after a merge; the shown risk is
    /// the highest of their values.
    pub risk_conflict: bool,
    pub status: Status,
    pub tags: Vec<String>,
    pub contacts: Vec<Contact>,
    pub followups: Vec<Followup>,
    pub created_at: String,
    pub created_by: String,
    /// The creator's device id ("" for a standalone profile).
    pub created_by_device: String,
    /// Who carries the case now (the readers follow it).
    pub assignee_device: String,
    pub assignee_name: String,
    /// Every assignment, oldest first; the newest `(at, id)` is in force.
    pub assignments: Vec<supervision::Assignment>,
    pub review_state: supervision::ReviewState,
    pub review_by: String,
    pub review_by_device: String,
    pub review_at: Option<String>,
    /// Supervisors' comments, oldest first.
    pub comments: Vec<supervision::Comment>,
    /// Escalations, oldest first.
    pub escalations: Vec<supervision::Escalation>,
    /// `""` (never escalated), `awaiting` or `acknowledged`.
    pub escalation: String,
    /// True while the newest escalation has no receipt: shown as "not yet
    /// confirmed by a supervisor".
    pub awaiting_receipt: bool,
    /// Debriefs offered after contacts on a high or critical case.
    pub debriefs: Vec<supervision::Debrief>,
    /// Notes for the next shift on this case, oldest first.
    pub handover_notes: Vec<supervision::HandoverNote>,
}

/// One logged contact.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Contact {
    pub id: String,
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    pub channel: Channel,
    pub minutes: Option<i64>,
    pub text: String,
    pub author: String,
    /// The writer's device id ("" when written standalone or before
    /// devices were recorded).
    pub author_device: String,
}

/// A follow-up task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Followup {
    pub id: String,
    pub text: String,
    pub due: Option<String>,
    pub done: bool,
}

/// One entry of a case's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryEntry {
    pub at: String,
    pub author: String,
    pub what: String,
    pub change: String,
}

fn am(e: automerge::AutomergeError) -> Error {
    Error::Document {
        id: "case".into(),
        source: Box::new(e),
    }
}

fn short_id() -> String {
    let b: [u8; 8] = rand::random();
    hex::encode(b)
}

/// Fills a fresh document with a new case.
pub fn create(doc: &mut AutoCommit, new: &NewCase, author: &str, now_ms: i64) -> Result<()> {
    let alias = new.alias.trim();
    if alias.is_empty() {
        return Err(Error::Empty { what: "alias" });
    }
    doc.put(ROOT, "kind", "case").map_err(am)?;
    doc.put(ROOT, "alias", alias).map_err(am)?;
    doc.put(ROOT, "group", new.group.as_str()).map_err(am)?;
    doc.put(ROOT, "risk", new.risk.as_str()).map_err(am)?;
    doc.put(ROOT, "status", Status::Open.as_str()).map_err(am)?;
    doc.put(ROOT, "created_at", now_ms).map_err(am)?;
    doc.put(ROOT, "created_by", author).map_err(am)?;
    doc.put_object(ROOT, "tags", ObjType::Map).map_err(am)?;
    doc.put_object(ROOT, "contacts", ObjType::List)
        .map_err(am)?;
    doc.put_object(ROOT, "followups", ObjType::List)
        .map_err(am)?;
    Ok(())
}

/// Sets the risk level. Replaces every concurrent value, since the writer
/// has seen them all.
pub fn set_risk(doc: &mut AutoCommit, risk: Risk) -> Result<()> {
    let values = all_strings(doc, &ROOT, "risk");
    if values.len() == 1 && values[0] == risk.as_str() {
        return Ok(());
    }
    if values.len() > 1 {
        // Resolving a conflict: Automerge stores a put of the value that
        // already wins as a delete of the other values only, so a write
        // concurrent with this one would then overwrite the old winner and
        // the value set here would be gone. A placeholder first makes the
        // value below a put of its own, which every concurrent write keeps
        // beside it (the register then shows the highest).
        doc.put(ROOT, "risk", "").map_err(am)?;
    }
    doc.put(ROOT, "risk", risk.as_str()).map_err(am)?;
    Ok(())
}

pub fn set_status(doc: &mut AutoCommit, status: Status) -> Result<()> {
    put_str_if_changed(doc, &ROOT, "status", status.as_str()).map_err(am)
}

pub fn set_group(doc: &mut AutoCommit, group: Group) -> Result<()> {
    put_str_if_changed(doc, &ROOT, "group", group.as_str()).map_err(am)
}

pub fn set_alias(doc: &mut AutoCommit, alias: &str) -> Result<()> {
    let alias = alias.trim();
    if alias.is_empty() {
        return Err(Error::Empty { what: "alias" });
    }
    put_str_if_changed(doc, &ROOT, "alias", alias).map_err(am)
}

fn list(doc: &mut AutoCommit, key: &str) -> Result<ObjId> {
    match object(doc, &ROOT, key, ObjType::List) {
        Some(id) => Ok(id),
        None => doc.put_object(ROOT, key, ObjType::List).map_err(am),
    }
}

/// Logs a contact; returns its id.
pub fn add_contact(
    doc: &mut AutoCommit,
    channel: Channel,
    note: &str,
    minutes: Option<i64>,
    author: &str,
    at_ms: i64,
) -> Result<String> {
    if note.trim().is_empty() {
        return Err(Error::Empty {
            what: "contact text",
        });
    }
    if let Some(m) = minutes {
        if !(0..=24 * 60).contains(&m) {
            return Err(Error::InvalidValue {
                field: "minutes",
                value: m.to_string(),
                allowed: "a whole number from 0 to 1440",
            });
        }
    }
    let contacts = list(doc, "contacts")?;
    let len = doc.length(&contacts);
    let c = doc
        .insert_object(&contacts, len, ObjType::Map)
        .map_err(am)?;
    let id = short_id();
    doc.put(&c, "id", id.as_str()).map_err(am)?;
    doc.put(&c, "at", at_ms).map_err(am)?;
    doc.put(&c, "channel", channel.as_str()).map_err(am)?;
    if let Some(m) = minutes {
        doc.put(&c, "minutes", m).map_err(am)?;
    }
    doc.put(&c, "author", author).map_err(am)?;
    let t = doc.put_object(&c, "text", ObjType::Text).map_err(am)?;
    doc.update_text(&t, note).map_err(am)?;
    Ok(id)
}

fn find_in_list(doc: &AutoCommit, key: &str, id: &str) -> Option<ObjId> {
    let list = object(doc, &ROOT, key, ObjType::List)?;
    (0..doc.length(&list)).find_map(|i| match doc.get(&list, i).ok().flatten() {
        Some((automerge::Value::Object(ObjType::Map), obj))
            if string(doc, &obj, "id").as_deref() == Some(id) =>
        {
            Some(obj)
        }
        _ => None,
    })
}

/// Rewrites a contact's note; the change is stored as a character diff so
/// that concurrent edits of the same note merge.
pub fn edit_contact(doc: &mut AutoCommit, contact_id: &str, note: &str) -> Result<()> {
    let c = find_in_list(doc, "contacts", contact_id).ok_or_else(|| Error::NotFound {
        what: "contact",
        id: contact_id.chars().take(40).collect(),
    })?;
    let t = match object(doc, &c, "text", ObjType::Text) {
        Some(t) => t,
        None => doc.put_object(&c, "text", ObjType::Text).map_err(am)?,
    };
    doc.update_text(&t, note).map_err(am)
}

/// Adds a follow-up task; `due` is a date `YYYY-MM-DD`.
pub fn add_followup(doc: &mut AutoCommit, task: &str, due: Option<&str>) -> Result<String> {
    if task.trim().is_empty() {
        return Err(Error::Empty {
            what: "follow-up text",
        });
    }
    if let Some(d) = due {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(d, &fmt).map_err(|_| Error::InvalidValue {
            field: "due date",
            value: d.chars().take(40).collect(),
            allowed: "a date written YYYY-MM-DD",
        })?;
    }
    let list = list(doc, "followups")?;
    let len = doc.length(&list);
    let f = doc.insert_object(&list, len, ObjType::Map).map_err(am)?;
    let id = short_id();
    doc.put(&f, "id", id.as_str()).map_err(am)?;
    let t = doc.put_object(&f, "text", ObjType::Text).map_err(am)?;
    doc.update_text(&t, task).map_err(am)?;
    if let Some(d) = due {
        doc.put(&f, "due", d).map_err(am)?;
    }
    doc.put(&f, "done", false).map_err(am)?;
    Ok(id)
}

/// Marks a follow-up done (or not done).
pub fn set_followup_done(doc: &mut AutoCommit, followup_id: &str, done: bool) -> Result<()> {
    let f = find_in_list(doc, "followups", followup_id).ok_or_else(|| Error::NotFound {
        what: "follow-up",
        id: followup_id.chars().take(40).collect(),
    })?;
    if boolean(doc, &f, "done") != Some(done) {
        doc.put(&f, "done", done).map_err(am)?;
    }
    Ok(())
}

/// Adds or removes free tags.
pub fn tag(doc: &mut AutoCommit, add: &[String], remove: &[String]) -> Result<()> {
    let tags = match object(doc, &ROOT, "tags", ObjType::Map) {
        Some(t) => t,
        None => doc.put_object(ROOT, "tags", ObjType::Map).map_err(am)?,
    };
    for t in add.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if boolean(doc, &tags, t) != Some(true) {
            doc.put(&tags, t, true).map_err(am)?;
        }
    }
    for t in remove.iter().map(|t| t.trim()) {
        if doc.get(&tags, t).ok().flatten().is_some() {
            doc.delete(&tags, t).map_err(am)?;
        }
    }
    Ok(())
}

/// The risk of a case: the highest of the values devices hold for it.
pub fn risk(doc: &AutoCommit) -> (Risk, bool) {
    let values: Vec<Risk> = all_strings(doc, &ROOT, "risk")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let conflict = values.iter().any(|v| Some(v) != values.first());
    (values.into_iter().max().unwrap_or(Risk::None), conflict)
}

/// Reads a whole case.
pub fn read(doc: &AutoCommit, id: &str) -> Case {
    let (risk, risk_conflict) = risk(doc);
    let mut contacts = Vec::new();
    if let Some(list) = object(doc, &ROOT, "contacts", ObjType::List) {
        for i in 0..doc.length(&list) {
            if let Some((automerge::Value::Object(ObjType::Map), c)) =
                doc.get(&list, i).ok().flatten()
            {
                let at_ms = int(doc, &c, "at").unwrap_or(0);
                contacts.push(Contact {
                    id: string(doc, &c, "id").unwrap_or_default(),
                    at: format_ms(at_ms),
                    at_ms,
                    channel: string(doc, &c, "channel")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(Channel::Hotline),
                    minutes: int(doc, &c, "minutes"),
                    text: text(doc, &c, "text").unwrap_or_default(),
                    author: string(doc, &c, "author").unwrap_or_default(),
                    author_device: string(doc, &c, "author_device").unwrap_or_default(),
                });
            }
        }
    }
    contacts.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
    let mut followups = Vec::new();
    if let Some(list) = object(doc, &ROOT, "followups", ObjType::List) {
        for i in 0..doc.length(&list) {
            if let Some((automerge::Value::Object(ObjType::Map), f)) =
                doc.get(&list, i).ok().flatten()
            {
                followups.push(Followup {
                    id: string(doc, &f, "id").unwrap_or_default(),
                    text: text(doc, &f, "text").unwrap_or_default(),
                    due: string(doc, &f, "due"),
                    done: boolean(doc, &f, "done").unwrap_or(false),
                });
            }
        }
    }
    let mut tags: Vec<String> = object(doc, &ROOT, "tags", ObjType::Map)
        .map(|t| doc.keys(&t).collect())
        .unwrap_or_default();
    tags.sort();
    let sup = supervision::read(doc);
    let escalation = supervision::escalation_state(&sup.escalations).to_owned();
    let review = sup.review.clone();
    Case {
        id: id.to_owned(),
        alias: string(doc, &ROOT, "alias").unwrap_or_default(),
        group: string(doc, &ROOT, "group")
            .and_then(|s| s.parse().ok())
            .unwrap_or(Group::Other),
        risk,
        risk_conflict,
        status: string(doc, &ROOT, "status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(Status::Open),
        tags,
        contacts,
        followups,
        created_at: format_ms(int(doc, &ROOT, "created_at").unwrap_or(0)),
        created_by: string(doc, &ROOT, "created_by").unwrap_or_default(),
        created_by_device: sup.created_by_device,
        assignee_device: sup.assignee_device,
        assignee_name: sup.assignee_name,
        assignments: sup.assignments,
        review_state: review
            .as_ref()
            .map_or(supervision::ReviewState::Unreviewed, |r| r.state),
        review_by: review.as_ref().map(|r| r.by.clone()).unwrap_or_default(),
        review_by_device: review
            .as_ref()
            .map(|r| r.by_device.clone())
            .unwrap_or_default(),
        review_at: review.and_then(|r| r.at),
        comments: sup.comments,
        escalations: sup.escalations,
        awaiting_receipt: escalation == "awaiting",
        escalation,
        debriefs: sup.debriefs,
        handover_notes: sup.handover_notes,
    }
}

/// Who changed what, when: one entry per change, oldest first.
pub fn history(doc: &mut AutoCommit) -> Vec<HistoryEntry> {
    let mut out: Vec<(i64, HistoryEntry)> = doc
        .get_changes_meta(&[])
        .into_iter()
        .map(|m| {
            let msg: serde_json::Value = m
                .message
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let field = |k: &str| msg.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            (
                m.timestamp,
                HistoryEntry {
                    at: format_ms(m.timestamp * 1000),
                    author: field("by"),
                    what: field("what"),
                    change: m.hash.to_string()[..12].to_owned(),
                },
            )
        })
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests;
