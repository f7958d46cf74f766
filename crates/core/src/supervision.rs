//! Supervision, as methods on [`Store`]: review, comments, escalations and
//! their receipts, assignment and handover, debriefs; the supervisor's
//! queue and the escalations view.
//!
//! Who may do what is checked here, before anything is written: review,
//! comment, acknowledge and assign need a supervisor or the team's lead;
//! recording a phone call to the on-call supervisor, a handover note or a
//! debrief is open to anyone who holds the case (its readers). A standalone
//! profile (no team) may do everything on its own cases except assign
//! (there is no one to hand a case to).

use std::cell::RefCell;

use automerge::AutoCommit;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::case::supervision::{
    self as sup, Actor, DebriefState, EscalationSource, OnCallRef, ReceiptMode, ReviewState,
};
use crate::case::{self};
use crate::error::{Error, Result};
use crate::facts::{self, Fact};
use crate::model::{format_ms, now_ms, DocId, DocKind, Group, Risk, Status};
use crate::ops::CaseSummary;
use crate::proto::Role;
use crate::store::{Store, Written};

const NEEDS_SUPERVISOR: &str = "a supervisor or the team lead";

/// Statistics facts a supervision write makes, recorded in its own
/// transaction (through [`Store::write_also`]).
#[derive(Default)]
pub(crate) struct Emitted(RefCell<Vec<Fact>>);

impl Emitted {
    fn push(&self, f: Fact) {
        self.0.borrow_mut().push(f);
    }

    /// Records them (the `also` step of a write).
    pub(crate) fn record(&self, conn: &Connection) -> Result<()> {
        for f in self.0.borrow().iter() {
            facts::record_fact_in(conn, f)?;
        }
        Ok(())
    }

    /// Makes an escalation when risk went from `old` to `new` upwards into
    /// high or critical (see [`sup::escalates`]).
    pub(crate) fn escalate_if_raised(
        &self,
        doc: &mut AutoCommit,
        case_id: &DocId,
        who: &Who,
        old: Risk,
        new: Risk,
        now: i64,
    ) -> Result<()> {
        if !sup::escalates(old, new) {
            return Ok(());
        }
        let esc = sup::escalate(doc, &who.actor, new, who.source, who.on_call.as_ref(), now)?;
        self.push(Fact::Escalated {
            id: Fact::new_id(),
            case: case_id.to_string(),
            escalation: esc,
            at: now,
            level: new,
        });
        Ok(())
    }
}

/// Who writes, gathered before the write's transaction: this device as an
/// actor, where a risk change comes from, and the on-call supervisor now
/// (looked up only when the new risk could escalate).
pub(crate) struct Who {
    pub(crate) actor: Actor,
    pub(crate) source: EscalationSource,
    pub(crate) on_call: Option<OnCallRef>,
}

/// A receipt written: which escalation it answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReceiptWritten {
    pub id: String,
    pub escalation: String,
    pub receipt: String,
    pub at: String,
}

/// A row of the escalations view: one per escalated case, its newest
/// escalation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EscalationRow {
    pub case: String,
    pub alias: String,
    pub risk: Risk,
    pub assignee_name: String,
    /// `awaiting` or `acknowledged`.
    pub state: String,
    pub awaiting_receipt: bool,
    pub escalation: sup::Escalation,
}

impl Store {
    /// This device as the author of a supervision entry: the team's device
    /// id ("" standalone) and the profile's name.
    pub(crate) fn me(&self) -> Result<Actor> {
        Ok(Actor {
            device: self.team()?.map(|t| t.device_id).unwrap_or_default(),
            name: self.profile().name.clone(),
        })
    }

    /// The context of a write that may change risk.
    pub(crate) fn who(&self, source: EscalationSource, risk: Option<Risk>) -> Result<Who> {
        let now = now_ms();
        Ok(Who {
            actor: self.me()?,
            source,
            on_call: match risk {
                Some(r) if r >= Risk::High => on_call(self, now)?,
                _ => None,
            },
        })
    }

    /// Refuses unless this device is a supervisor or the lead (a standalone
    /// profile may: there is no one else).
    fn need_supervisor(&self, action: &'static str) -> Result<Actor> {
        let team = self.team()?;
        if let Some(t) = &team {
            if t.role == Role::Volunteer {
                return Err(Error::Forbidden {
                    action,
                    role: t.role.as_str(),
                    needs: NEEDS_SUPERVISOR,
                });
            }
        }
        self.me()
    }

    /// Records a supervisor's review of a case (`reviewed` or
    /// `needs-follow-up`); it replaces the review shown.
    pub fn review_case(&mut self, id: &DocId, state: ReviewState) -> Result<Written> {
        if state == ReviewState::Unreviewed {
            return Err(Error::InvalidValue {
                field: "review state",
                value: state.as_str().into(),
                allowed: "reviewed needs-follow-up",
            });
        }
        let me = self.need_supervisor("review a case")?;
        let what = format!("review: {state}");
        let (_, w) = self.write(id, DocKind::Case, false, &what, |doc, _| {
            sup::review(doc, &me, state, now_ms())
        })?;
        Ok(w)
    }

    /// Adds a supervisor's comment to a case or to one of its contacts;
    /// returns its id.
    pub fn comment_case(
        &mut self,
        id: &DocId,
        contact: Option<&str>,
        text: &str,
    ) -> Result<String> {
        let me = self.need_supervisor("comment on a case")?;
        let what = if contact.is_some() {
            "comment on a contact"
        } else {
            "comment"
        };
        let (cid, _) = self.write(id, DocKind::Case, false, what, |doc, _| {
            sup::comment(doc, &me, contact, text, now_ms())
        })?;
        Ok(cid)
    }

    /// A supervisor acknowledges the case's newest escalation with
    /// instructions: the receipt the volunteer's device shows.
    pub fn acknowledge_escalation(
        &mut self,
        id: &DocId,
        instructions: &str,
    ) -> Result<ReceiptWritten> {
        let me = self.need_supervisor("acknowledge an escalation")?;
        if instructions.trim().is_empty() {
            return Err(Error::Empty {
                what: "instructions",
            });
        }
        self.write_receipt(
            id,
            me,
            ReceiptMode::App,
            instructions,
            "escalation acknowledged",
        )
    }

    /// The volunteer records that the on-call supervisor was reached by
    /// phone: a receipt of mode `phone` (any reader of the case may).
    pub fn record_phoned(&mut self, id: &DocId, note: Option<&str>) -> Result<ReceiptWritten> {
        let me = self.me()?;
        self.write_receipt(
            id,
            me,
            ReceiptMode::Phone,
            note.unwrap_or(""),
            "on-call supervisor reached by phone",
        )
    }

    fn write_receipt(
        &mut self,
        id: &DocId,
        me: Actor,
        mode: ReceiptMode,
        instructions: &str,
        what: &str,
    ) -> Result<ReceiptWritten> {
        let now = now_ms();
        let emitted = Emitted::default();
        let ((escalation, receipt), _) = self.write_also(
            id,
            DocKind::Case,
            false,
            what,
            |doc, _| {
                let (esc, rid) = sup::receipt(doc, &me, mode, instructions, now)?;
                emitted.push(Fact::Receipt {
                    id: Fact::new_id(),
                    case: id.to_string(),
                    escalation: esc.clone(),
                    at: now,
                    mode: mode.as_str().to_owned(),
                });
                Ok((esc, rid))
            },
            |tx| emitted.record(tx),
        )?;
        Ok(ReceiptWritten {
            id: id.to_string(),
            escalation,
            receipt,
            at: format_ms(now),
        })
    }

    /// Hands a case to another member of the team, with a handover note;
    /// returns the assignment's id. `to_device` must be a member in the
    /// roster this device holds, not removed.
    pub fn assign_case(
        &mut self,
        id: &DocId,
        to_device: &str,
        to_name: &str,
        note: &str,
    ) -> Result<String> {
        let me = self.need_supervisor("reassign a case")?;
        if self.team()?.is_none() {
            return Err(Error::NotEnrolled);
        }
        if note.trim().is_empty() {
            return Err(Error::Empty {
                what: "handover note",
            });
        }
        let to_device = to_device.trim().to_ascii_lowercase();
        let member = self
            .roster()?
            .into_iter()
            .find(|m| m.device_id == to_device && !m.revoked);
        if member.is_none() {
            return Err(Error::NotFound {
                what: "team member",
                id: to_device.chars().take(40).collect(),
            });
        }
        let to = Actor {
            device: to_device,
            name: to_name.trim().to_owned(),
        };
        let (aid, _) = self.write(id, DocKind::Case, false, "case reassigned", |doc, _| {
            sup::assign(doc, &me, &to, note, now_ms())
        })?;
        Ok(aid)
    }

    /// A note for the next shift on this case; returns its id.
    pub fn add_handover_note(&mut self, id: &DocId, text: &str) -> Result<String> {
        let me = self.me()?;
        let (nid, _) = self.write(id, DocKind::Case, false, "handover note", |doc, _| {
            sup::handover_note(doc, &me, text, now_ms())
        })?;
        Ok(nid)
    }

    /// Records a contact's debrief as held or declined (never a statistic).
    pub fn set_debrief(
        &mut self,
        id: &DocId,
        contact: &str,
        state: DebriefState,
    ) -> Result<String> {
        if state == DebriefState::Offered {
            return Err(Error::InvalidValue {
                field: "debrief state",
                value: state.as_str().into(),
                allowed: "held declined",
            });
        }
        let me = self.me()?;
        let what = format!("debrief {state}");
        let (did, _) = self.write(id, DocKind::Case, false, &what, |doc, _| {
            sup::debrief(doc, &me, contact, state, now_ms())
        })?;
        Ok(did)
    }

    /// The supervisor's queue: unreviewed cases, high and critical first,
    /// then oldest first. Only cases this device can read are here.
    pub fn review_queue(&self) -> Result<Vec<CaseSummary>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM cases WHERE review_state = 'unreviewed'
             ORDER BY (risk_rank >= ?1) DESC, created_at ASC, id ASC",
        )?;
        let ids: Vec<String> = stmt
            .query_map([Risk::High as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        self.summaries(&ids)
    }

    /// Escalated cases: awaiting a receipt first (oldest first), then
    /// acknowledged ones (newest escalation first).
    pub fn escalations(&self) -> Result<Vec<EscalationRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM cases WHERE escalation <> ''
             ORDER BY escalation = 'awaiting' DESC,
                      CASE WHEN escalation = 'awaiting' THEN escalated_at ELSE -escalated_at END ASC,
                      id ASC",
        )?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            let doc_id = DocId::parse(&id, "case")?;
            let c = self.case(&doc_id)?;
            let Some(e) = c.escalations.last().cloned() else {
                continue;
            };
            out.push(EscalationRow {
                case: c.id,
                alias: c.alias,
                risk: c.risk,
                assignee_name: c.assignee_name,
                state: c.escalation,
                awaiting_receipt: c.awaiting_receipt,
                escalation: e,
            });
        }
        Ok(out)
    }

    fn summaries(&self, ids: &[String]) -> Result<Vec<CaseSummary>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = summary_in(self.conn(), id)? {
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// One case's summary from the projection.
pub(crate) fn summary_in(conn: &Connection, id: &str) -> Result<Option<CaseSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, alias, grp, risk, status, contacts, open_followups, updated_at,
                review_state, assignee_device, assignee_name, escalation, created_at
         FROM cases WHERE id = ?1",
    )?;
    let mut rows = stmt.query(params![id])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    summary_row(r).map(Some)
}

/// A [`CaseSummary`] from a row of the columns `summary_in` selects.
pub(crate) fn summary_row(r: &rusqlite::Row<'_>) -> Result<CaseSummary> {
    let escalation: String = r.get(11)?;
    Ok(CaseSummary {
        id: r.get(0)?,
        alias: r.get(1)?,
        group: r.get::<_, String>(2)?.parse::<Group>()?,
        risk: r.get::<_, String>(3)?.parse::<Risk>()?,
        status: r.get::<_, String>(4)?.parse::<Status>()?,
        contacts: r.get(5)?,
        open_followups: r.get(6)?,
        updated_at: format_ms(r.get(7)?),
        review_state: r.get::<_, String>(8)?.parse()?,
        assignee_device: r.get(9)?,
        assignee_name: r.get(10)?,
        awaiting_receipt: escalation == "awaiting",
        escalation,
        created_at: format_ms(r.get(12)?),
    })
}

/// The projection's supervision columns for one case (migration 7).
pub(crate) fn refresh_columns(conn: &Connection, id: &DocId, c: &case::Case) -> Result<()> {
    let newest = c.escalations.last();
    conn.execute(
        "UPDATE cases SET review_state = ?2, assignee_device = ?3, assignee_name = ?4,
             escalation = ?5, escalated_at = ?6, receipt_at = ?7 WHERE id = ?1",
        params![
            id.as_str(),
            c.review_state.as_str(),
            c.assignee_device,
            c.assignee_name,
            c.escalation,
            newest.map(|e| e.at_ms),
            newest.and_then(|e| e.receipt.as_ref().map(|r| r.at_ms)),
        ],
    )?;
    Ok(())
}

/// After a contact is written: its author's device, and a debrief offered
/// when the case is high or critical.
pub(crate) fn after_contact(
    doc: &mut AutoCommit,
    contact: &str,
    me: &Actor,
    now: i64,
) -> Result<()> {
    sup::set_contact_author_device(doc, contact, &me.device)?;
    if case::risk(doc).0 >= Risk::High {
        sup::debrief(doc, me, contact, DebriefState::Offered, now)?;
    }
    Ok(())
}

/// After a case is created: who made it and carries it, unreviewed, and an
/// escalation if it opens at high or critical.
pub(crate) fn after_create(
    doc: &mut AutoCommit,
    case_id: &DocId,
    who: &Who,
    risk: Risk,
    now: i64,
    emitted: &Emitted,
) -> Result<()> {
    sup::create(doc, &who.actor, now)?;
    emitted.escalate_if_raised(doc, case_id, who, Risk::None, risk, now)
}

/// The on-call supervisor now, from the team's duty roster (helper D's
/// `Store::on_call_at`).
fn on_call(store: &Store, at: i64) -> Result<Option<OnCallRef>> {
    Ok(store.on_call_at(at)?.map(|o| OnCallRef {
        name: o.name,
        device: o.device,
    }))
}

#[cfg(test)]
mod tests;
