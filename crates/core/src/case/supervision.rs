//! Supervision in the case document: who carries the case (assignments),
//! the supervisor's review, comments, escalations with their receipts,
//! debriefs and handover notes.
//!
//! Merge rules:
//!
//! - every list here is **append-only**: concurrent additions all survive.
//!   A list that an older case lacks is created on first use; if two devices
//!   create it concurrently Automerge keeps both objects under the key as a
//!   conflict, and the readers here read the entries of *all* of them, so no
//!   entry is lost.
//! - the **current assignee** is the `to_*` of the assignment with the
//!   greatest `(at, id)`, computed from the list on every read; the
//!   `assignee_device` / `assignee_name` registers are written from that rule
//!   after each local write, for readers of the raw document.
//! - a **review** is one map put as a whole; of concurrent reviews the one
//!   with the greatest `(at, by_device)` is shown.
//! - free text (notes, comments, instructions) is Automerge Text.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::Serialize;

use crate::docvalue::{int, object, put_str_if_changed, string, text};
use crate::error::{Error, Result};
use crate::model::{format_ms, Risk};

fn am(e: automerge::AutomergeError) -> Error {
    Error::Document {
        id: "case".into(),
        source: Box::new(e),
    }
}

fn new_id() -> String {
    let b: [u8; 8] = rand::random();
    hex::encode(b)
}

macro_rules! spelled {
    ($(#[$meta:meta])* $name:ident, $field:literal, $($variant:ident => $spelling:literal),+ $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum $name {
            $(#[serde(rename = $spelling)] $variant),+
        }

        impl $name {
            pub const SPELLINGS: &'static str = concat!($($spelling, " "),+);
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $spelling),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim() {
                    $($spelling => Ok($name::$variant),)+
                    other => Err(Error::InvalidValue {
                        field: $field,
                        value: other.chars().take(40).collect(),
                        allowed: Self::SPELLINGS.trim_end(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(
    /// A supervisor's review of a case.
    ReviewState, "review state",
    Unreviewed => "unreviewed",
    Reviewed => "reviewed",
    NeedsFollowUp => "needs-follow-up",
);

spelled!(
    /// What raised the risk that made an escalation.
    EscalationSource, "escalation source",
    Hand => "hand",
    Screening => "screening",
);

spelled!(
    /// How an escalation was answered: a supervisor's acknowledgement in the
    /// app, or the volunteer's record of reaching the on-call supervisor by
    /// phone.
    ReceiptMode, "receipt mode",
    App => "app",
    Phone => "phone",
);

spelled!(
    /// A debrief after a contact on a high or critical case.
    DebriefState, "debrief state",
    Offered => "offered",
    Held => "held",
    Declined => "declined",
);

/// Who does something: a device of the team ("" for a standalone profile)
/// and the name it goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub device: String,
    pub name: String,
}

/// The supervisor on call when an escalation is made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnCallRef {
    pub name: String,
    pub device: String,
}

/// One assignment of a case: from whom to whom, by whom, when and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Assignment {
    pub id: String,
    pub from_device: String,
    pub from_name: String,
    pub to_device: String,
    pub to_name: String,
    pub by_device: String,
    pub by_name: String,
    pub at: String,
    pub at_ms: i64,
    pub note: String,
}

/// A supervisor's comment on a case, or on one contact of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comment {
    pub id: String,
    pub author_device: String,
    pub author_name: String,
    pub at: String,
    pub at_ms: i64,
    /// The contact it is about, or `None` for the case as a whole.
    pub contact: Option<String>,
    pub text: String,
}

/// The answer to an escalation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Receipt {
    pub id: String,
    pub by_device: String,
    pub by_name: String,
    pub at: String,
    pub at_ms: i64,
    pub instructions: String,
    pub mode: ReceiptMode,
}

/// Risk raised to high or critical, and its receipts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Escalation {
    pub id: String,
    pub at: String,
    pub at_ms: i64,
    pub level: Risk,
    pub by_device: String,
    pub by_name: String,
    pub source: EscalationSource,
    pub on_call_name: String,
    pub on_call_device: String,
    /// The first receipt (it ends the wait).
    pub receipt: Option<Receipt>,
    /// Every receipt, oldest first (a supervisor may acknowledge after the
    /// volunteer recorded a phone call, with instructions).
    pub receipts: Vec<Receipt>,
    /// Milliseconds from the escalation to its first receipt.
    pub ms_to_receipt: Option<i64>,
}

/// A debrief of one contact: its current state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Debrief {
    pub id: String,
    pub contact: String,
    pub at: String,
    pub at_ms: i64,
    pub state: DebriefState,
    pub by_device: String,
}

/// A volunteer's note for the next shift on this case.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HandoverNote {
    pub id: String,
    pub at: String,
    pub at_ms: i64,
    pub by_device: String,
    pub by_name: String,
    pub text: String,
}

/// The review shown: the newest one.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Review {
    pub state: ReviewState,
    pub by: String,
    pub by_device: String,
    pub at: Option<String>,
    pub at_ms: Option<i64>,
}

/// Whether a case waits for a supervisor: `""` (never escalated),
/// `awaiting` or `acknowledged`.
pub fn escalation_state(escalations: &[Escalation]) -> &'static str {
    match escalations.last() {
        None => "",
        Some(e) if e.receipt.is_none() => "awaiting",
        Some(_) => "acknowledged",
    }
}

/// Everything of supervision a case holds, as read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Supervision {
    pub created_by_device: String,
    pub assignee_device: String,
    pub assignee_name: String,
    pub assignments: Vec<Assignment>,
    pub review: Option<Review>,
    pub comments: Vec<Comment>,
    pub escalations: Vec<Escalation>,
    pub debriefs: Vec<Debrief>,
    pub handover_notes: Vec<HandoverNote>,
}

// ---------------------------------------------------------------- lists

/// Every list object held under `key` of `obj` (several after concurrent
/// creation of the same list).
fn lists(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<ObjId> {
    doc.get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, id)| matches!(v, Value::Object(ObjType::List)).then_some(id))
        .collect()
}

/// The maps in every list under `key`.
fn entries(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<ObjId> {
    let mut out = Vec::new();
    for list in lists(doc, obj, key) {
        for i in 0..doc.length(&list) {
            if let Some((Value::Object(ObjType::Map), m)) = doc.get(&list, i).ok().flatten() {
                out.push(m);
            }
        }
    }
    out
}

/// Appends a new map to the list under `key` (creating the list if the
/// document has none) and returns it.
fn append(doc: &mut AutoCommit, obj: &ObjId, key: &str) -> Result<ObjId> {
    let list = match object(doc, obj, key, ObjType::List) {
        Some(l) => l,
        None => doc.put_object(obj, key, ObjType::List).map_err(am)?,
    };
    let len = doc.length(&list);
    doc.insert_object(&list, len, ObjType::Map).map_err(am)
}

fn put_text(doc: &mut AutoCommit, obj: &ObjId, key: &str, value: &str) -> Result<()> {
    let t = doc.put_object(obj, key, ObjType::Text).map_err(am)?;
    doc.update_text(&t, value).map_err(am)
}

fn s(doc: &AutoCommit, obj: &ObjId, key: &str) -> String {
    string(doc, obj, key).unwrap_or_default()
}

fn by_time<T>(v: &mut [T], key: impl Fn(&T) -> (i64, &str)) {
    v.sort_by(|a, b| key(a).cmp(&key(b)));
}

// ---------------------------------------------------------------- writes

/// Fills the supervision part of a new case: made by `me`, carried by `me`,
/// unreviewed, empty lists.
pub fn create(doc: &mut AutoCommit, me: &Actor, now_ms: i64) -> Result<()> {
    doc.put(ROOT, "created_by_device", me.device.as_str())
        .map_err(am)?;
    for key in [
        "assignments",
        "comments",
        "escalations",
        "debriefs",
        "handover_notes",
    ] {
        doc.put_object(ROOT, key, ObjType::List).map_err(am)?;
    }
    let a = append(doc, &ROOT, "assignments")?;
    doc.put(&a, "id", new_id()).map_err(am)?;
    doc.put(&a, "from_device", "").map_err(am)?;
    doc.put(&a, "from_name", "").map_err(am)?;
    doc.put(&a, "to_device", me.device.as_str()).map_err(am)?;
    doc.put(&a, "to_name", me.name.as_str()).map_err(am)?;
    doc.put(&a, "by_device", me.device.as_str()).map_err(am)?;
    doc.put(&a, "by_name", me.name.as_str()).map_err(am)?;
    doc.put(&a, "at", now_ms).map_err(am)?;
    put_text(doc, &a, "note", "")?;
    let r = doc.put_object(ROOT, "review", ObjType::Map).map_err(am)?;
    doc.put(&r, "state", ReviewState::Unreviewed.as_str())
        .map_err(am)?;
    doc.put(&r, "by", "").map_err(am)?;
    doc.put(&r, "by_device", "").map_err(am)?;
    doc.put(&r, "at", 0i64).map_err(am)?;
    write_assignee(doc)
}

/// Writes the `assignee_*` registers from the assignments (the rule the
/// readers use), if they differ.
pub fn write_assignee(doc: &mut AutoCommit) -> Result<()> {
    let (device, name) = match current_assignment(&assignments(doc)) {
        Some(a) => (a.to_device.clone(), a.to_name.clone()),
        None => return Ok(()),
    };
    put_str_if_changed(doc, &ROOT, "assignee_device", &device).map_err(am)?;
    put_str_if_changed(doc, &ROOT, "assignee_name", &name).map_err(am)
}

/// Hands the case to another device, with a note; returns the
/// assignment's id.
pub fn assign(
    doc: &mut AutoCommit,
    by: &Actor,
    to: &Actor,
    note: &str,
    now_ms: i64,
) -> Result<String> {
    let (from_device, from_name) = assignee(doc);
    let a = append(doc, &ROOT, "assignments")?;
    let id = new_id();
    doc.put(&a, "id", id.as_str()).map_err(am)?;
    doc.put(&a, "from_device", from_device).map_err(am)?;
    doc.put(&a, "from_name", from_name).map_err(am)?;
    doc.put(&a, "to_device", to.device.as_str()).map_err(am)?;
    doc.put(&a, "to_name", to.name.as_str()).map_err(am)?;
    doc.put(&a, "by_device", by.device.as_str()).map_err(am)?;
    doc.put(&a, "by_name", by.name.as_str()).map_err(am)?;
    doc.put(&a, "at", now_ms).map_err(am)?;
    put_text(doc, &a, "note", note)?;
    write_assignee(doc)?;
    Ok(id)
}

/// Records a review; it replaces the one shown.
pub fn review(doc: &mut AutoCommit, by: &Actor, state: ReviewState, now_ms: i64) -> Result<()> {
    let r = doc.put_object(ROOT, "review", ObjType::Map).map_err(am)?;
    doc.put(&r, "state", state.as_str()).map_err(am)?;
    doc.put(&r, "by", by.name.as_str()).map_err(am)?;
    doc.put(&r, "by_device", by.device.as_str()).map_err(am)?;
    doc.put(&r, "at", now_ms).map_err(am)?;
    write_assignee(doc)
}

fn has_contact(doc: &AutoCommit, contact: &str) -> bool {
    entries(doc, &ROOT, "contacts")
        .iter()
        .any(|c| string(doc, c, "id").as_deref() == Some(contact))
}

fn no_contact(contact: &str) -> Error {
    Error::NotFound {
        what: "contact",
        id: contact.chars().take(40).collect(),
    }
}

/// Adds a comment on the case, or on one of its contacts; returns its id.
pub fn comment(
    doc: &mut AutoCommit,
    by: &Actor,
    contact: Option<&str>,
    body: &str,
    now_ms: i64,
) -> Result<String> {
    if body.trim().is_empty() {
        return Err(Error::Empty { what: "comment" });
    }
    if let Some(c) = contact {
        if !has_contact(doc, c) {
            return Err(no_contact(c));
        }
    }
    let m = append(doc, &ROOT, "comments")?;
    let id = new_id();
    doc.put(&m, "id", id.as_str()).map_err(am)?;
    doc.put(&m, "author_device", by.device.as_str())
        .map_err(am)?;
    doc.put(&m, "author_name", by.name.as_str()).map_err(am)?;
    doc.put(&m, "at", now_ms).map_err(am)?;
    doc.put(&m, "contact", contact.unwrap_or("")).map_err(am)?;
    put_text(doc, &m, "text", body)?;
    write_assignee(doc)?;
    Ok(id)
}

/// Whether going from `old` to `new` risk makes an escalation: up to high
/// or critical from below, or from high to critical.
pub fn escalates(old: Risk, new: Risk) -> bool {
    new >= Risk::High && new > old
}

/// Adds an escalation at `level`; returns its id.
pub fn escalate(
    doc: &mut AutoCommit,
    by: &Actor,
    level: Risk,
    source: EscalationSource,
    on_call: Option<&OnCallRef>,
    now_ms: i64,
) -> Result<String> {
    let m = append(doc, &ROOT, "escalations")?;
    let id = new_id();
    let on_call = on_call.cloned().unwrap_or_default();
    doc.put(&m, "id", id.as_str()).map_err(am)?;
    doc.put(&m, "at", now_ms).map_err(am)?;
    doc.put(&m, "level", level.as_str()).map_err(am)?;
    doc.put(&m, "by_device", by.device.as_str()).map_err(am)?;
    doc.put(&m, "by_name", by.name.as_str()).map_err(am)?;
    doc.put(&m, "source", source.as_str()).map_err(am)?;
    doc.put(&m, "on_call_name", on_call.name.as_str())
        .map_err(am)?;
    doc.put(&m, "on_call_device", on_call.device.as_str())
        .map_err(am)?;
    doc.put_object(&m, "receipts", ObjType::List).map_err(am)?;
    write_assignee(doc)?;
    Ok(id)
}

/// Answers the newest escalation; returns (escalation id, receipt id).
/// `NotFound` if the case was never escalated.
pub fn receipt(
    doc: &mut AutoCommit,
    by: &Actor,
    mode: ReceiptMode,
    instructions: &str,
    now_ms: i64,
) -> Result<(String, String)> {
    let newest = entries(doc, &ROOT, "escalations")
        .into_iter()
        .map(|m| (int(doc, &m, "at").unwrap_or(0), s(doc, &m, "id"), m))
        .max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let Some((_, esc_id, esc)) = newest else {
        return Err(Error::NotFound {
            what: "escalation",
            id: "(this case was never escalated)".into(),
        });
    };
    let r = append(doc, &esc, "receipts")?;
    let id = new_id();
    doc.put(&r, "id", id.as_str()).map_err(am)?;
    doc.put(&r, "by_device", by.device.as_str()).map_err(am)?;
    doc.put(&r, "by_name", by.name.as_str()).map_err(am)?;
    doc.put(&r, "at", now_ms).map_err(am)?;
    doc.put(&r, "mode", mode.as_str()).map_err(am)?;
    put_text(doc, &r, "instructions", instructions)?;
    write_assignee(doc)?;
    Ok((esc_id, id))
}

/// Records the state of a contact's debrief (offered, held, declined).
pub fn debrief(
    doc: &mut AutoCommit,
    by: &Actor,
    contact: &str,
    state: DebriefState,
    now_ms: i64,
) -> Result<String> {
    if !has_contact(doc, contact) {
        return Err(no_contact(contact));
    }
    let m = append(doc, &ROOT, "debriefs")?;
    let id = new_id();
    doc.put(&m, "id", id.as_str()).map_err(am)?;
    doc.put(&m, "contact", contact).map_err(am)?;
    doc.put(&m, "at", now_ms).map_err(am)?;
    doc.put(&m, "state", state.as_str()).map_err(am)?;
    doc.put(&m, "by_device", by.device.as_str()).map_err(am)?;
    write_assignee(doc)?;
    Ok(id)
}

/// Adds a handover note for the next shift; returns its id.
pub fn handover_note(doc: &mut AutoCommit, by: &Actor, body: &str, now_ms: i64) -> Result<String> {
    if body.trim().is_empty() {
        return Err(Error::Empty {
            what: "handover note",
        });
    }
    let m = append(doc, &ROOT, "handover_notes")?;
    let id = new_id();
    doc.put(&m, "id", id.as_str()).map_err(am)?;
    doc.put(&m, "at", now_ms).map_err(am)?;
    doc.put(&m, "by_device", by.device.as_str()).map_err(am)?;
    doc.put(&m, "by_name", by.name.as_str()).map_err(am)?;
    put_text(doc, &m, "text", body)?;
    write_assignee(doc)?;
    Ok(id)
}

/// Marks who wrote a contact (the device beside the name).
pub fn set_contact_author_device(doc: &mut AutoCommit, contact: &str, device: &str) -> Result<()> {
    let c = entries(doc, &ROOT, "contacts")
        .into_iter()
        .find(|c| string(doc, c, "id").as_deref() == Some(contact))
        .ok_or_else(|| no_contact(contact))?;
    doc.put(&c, "author_device", device).map_err(am)
}

// ---------------------------------------------------------------- reads

/// Every assignment, oldest first by `(at, id)`.
pub fn assignments(doc: &AutoCommit) -> Vec<Assignment> {
    let mut v: Vec<Assignment> = entries(doc, &ROOT, "assignments")
        .into_iter()
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            Assignment {
                id: s(doc, &m, "id"),
                from_device: s(doc, &m, "from_device"),
                from_name: s(doc, &m, "from_name"),
                to_device: s(doc, &m, "to_device"),
                to_name: s(doc, &m, "to_name"),
                by_device: s(doc, &m, "by_device"),
                by_name: s(doc, &m, "by_name"),
                at: format_ms(at_ms),
                at_ms,
                note: text(doc, &m, "note").unwrap_or_default(),
            }
        })
        .collect();
    by_time(&mut v, |a| (a.at_ms, a.id.as_str()));
    v
}

/// The assignment in force: the greatest `(at, id)`.
pub fn current_assignment(list: &[Assignment]) -> Option<&Assignment> {
    list.iter()
        .max_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)))
}

/// Who carries the case now: (device, name). A case from before
/// assignments existed is carried by its creator.
pub fn assignee(doc: &AutoCommit) -> (String, String) {
    match current_assignment(&assignments(doc)) {
        Some(a) => (a.to_device.clone(), a.to_name.clone()),
        None => (
            string(doc, &ROOT, "assignee_device")
                .or_else(|| string(doc, &ROOT, "created_by_device"))
                .unwrap_or_default(),
            string(doc, &ROOT, "assignee_name")
                .or_else(|| string(doc, &ROOT, "created_by"))
                .unwrap_or_default(),
        ),
    }
}

fn review_of(doc: &AutoCommit) -> Option<Review> {
    doc.get_all(ROOT, "review")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, m)| matches!(v, Value::Object(ObjType::Map)).then_some(m))
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            Review {
                state: string(doc, &m, "state")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(ReviewState::Unreviewed),
                by: s(doc, &m, "by"),
                by_device: s(doc, &m, "by_device"),
                at: (at_ms > 0).then(|| format_ms(at_ms)),
                at_ms: (at_ms > 0).then_some(at_ms),
            }
        })
        .max_by(|a, b| {
            (a.at_ms.unwrap_or(0), &a.by_device).cmp(&(b.at_ms.unwrap_or(0), &b.by_device))
        })
}

fn comments(doc: &AutoCommit) -> Vec<Comment> {
    let mut v: Vec<Comment> = entries(doc, &ROOT, "comments")
        .into_iter()
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            Comment {
                id: s(doc, &m, "id"),
                author_device: s(doc, &m, "author_device"),
                author_name: s(doc, &m, "author_name"),
                at: format_ms(at_ms),
                at_ms,
                contact: string(doc, &m, "contact").filter(|c| !c.is_empty()),
                text: text(doc, &m, "text").unwrap_or_default(),
            }
        })
        .collect();
    by_time(&mut v, |c| (c.at_ms, c.id.as_str()));
    v
}

fn escalations(doc: &AutoCommit) -> Vec<Escalation> {
    let mut v: Vec<Escalation> = entries(doc, &ROOT, "escalations")
        .into_iter()
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            let mut receipts: Vec<Receipt> = entries(doc, &m, "receipts")
                .into_iter()
                .map(|r| {
                    let r_ms = int(doc, &r, "at").unwrap_or(0);
                    Receipt {
                        id: s(doc, &r, "id"),
                        by_device: s(doc, &r, "by_device"),
                        by_name: s(doc, &r, "by_name"),
                        at: format_ms(r_ms),
                        at_ms: r_ms,
                        instructions: text(doc, &r, "instructions").unwrap_or_default(),
                        mode: string(doc, &r, "mode")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(ReceiptMode::App),
                    }
                })
                .collect();
            by_time(&mut receipts, |r| (r.at_ms, r.id.as_str()));
            let receipt = receipts.first().cloned();
            Escalation {
                id: s(doc, &m, "id"),
                at: format_ms(at_ms),
                at_ms,
                level: string(doc, &m, "level")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(Risk::High),
                by_device: s(doc, &m, "by_device"),
                by_name: s(doc, &m, "by_name"),
                source: string(doc, &m, "source")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(EscalationSource::Hand),
                on_call_name: s(doc, &m, "on_call_name"),
                on_call_device: s(doc, &m, "on_call_device"),
                ms_to_receipt: receipt.as_ref().map(|r| (r.at_ms - at_ms).max(0)),
                receipt,
                receipts,
            }
        })
        .collect();
    by_time(&mut v, |e| (e.at_ms, e.id.as_str()));
    v
}

/// One entry per contact: its newest debrief state.
fn debriefs(doc: &AutoCommit) -> Vec<Debrief> {
    let mut all: Vec<Debrief> = entries(doc, &ROOT, "debriefs")
        .into_iter()
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            Debrief {
                id: s(doc, &m, "id"),
                contact: s(doc, &m, "contact"),
                at: format_ms(at_ms),
                at_ms,
                state: string(doc, &m, "state")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(DebriefState::Offered),
                by_device: s(doc, &m, "by_device"),
            }
        })
        .collect();
    by_time(&mut all, |d| (d.at_ms, d.id.as_str()));
    let mut out: Vec<Debrief> = Vec::new();
    for d in all {
        match out.iter_mut().find(|o| o.contact == d.contact) {
            Some(o) => *o = d,
            None => out.push(d),
        }
    }
    by_time(&mut out, |d| (d.at_ms, d.id.as_str()));
    out
}

fn handover_notes(doc: &AutoCommit) -> Vec<HandoverNote> {
    let mut v: Vec<HandoverNote> = entries(doc, &ROOT, "handover_notes")
        .into_iter()
        .map(|m| {
            let at_ms = int(doc, &m, "at").unwrap_or(0);
            HandoverNote {
                id: s(doc, &m, "id"),
                at: format_ms(at_ms),
                at_ms,
                by_device: s(doc, &m, "by_device"),
                by_name: s(doc, &m, "by_name"),
                text: text(doc, &m, "text").unwrap_or_default(),
            }
        })
        .collect();
    by_time(&mut v, |n| (n.at_ms, n.id.as_str()));
    v
}

/// Reads the supervision part of a case.
pub fn read(doc: &AutoCommit) -> Supervision {
    let (assignee_device, assignee_name) = assignee(doc);
    Supervision {
        created_by_device: s(doc, &ROOT, "created_by_device"),
        assignee_device,
        assignee_name,
        assignments: assignments(doc),
        review: review_of(doc),
        comments: comments(doc),
        escalations: escalations(doc),
        debriefs: debriefs(doc),
        handover_notes: handover_notes(doc),
    }
}

#[cfg(test)]
mod tests;
