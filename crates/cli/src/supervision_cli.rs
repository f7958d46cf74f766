//! Supervision from the terminal: `case review|comment|ack|phoned|assign|
//! handover-note|debrief`, the supervisor's `queue` and `escalations`.
//! Every command is one call to the core, which checks the role before it
//! writes anything.

use std::fmt::Write as _;

use clap::Subcommand;
use heartbridge_core::supervision::EscalationRow;
use heartbridge_core::{CaseSummary, DebriefState, DocKind, Error, ReviewState, Store};
use serde_json::json;

use crate::output::Out;

/// The supervision subcommands of `heartbridge case`.
#[derive(Subcommand)]
pub enum CaseCmd {
    /// Review a case (supervisor or lead).
    Review {
        case_id: String,
        /// `reviewed` or `needs-follow-up`.
        #[arg(long)]
        state: ReviewState,
    },
    /// Comment on a case or one of its contacts (supervisor or lead).
    Comment {
        case_id: String,
        /// The contact the comment is about.
        #[arg(long)]
        contact: Option<String>,
        /// The comment; `-` reads it from standard input.
        text: String,
    },
    /// Acknowledge the case's escalation with instructions: the receipt the
    /// volunteer sees (supervisor or lead).
    Ack {
        case_id: String,
        /// What the volunteer should do; `-` reads it from standard input.
        #[arg(long)]
        instructions: String,
    },
    /// Record that you reached the on-call supervisor by phone.
    Phoned {
        case_id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Hand the case to another member, with a handover note (supervisor or lead).
    Assign {
        case_id: String,
        /// A device id (or a unique prefix of it) or a member's name.
        #[arg(long)]
        to: String,
        /// Why, and what the next person should know; `-` reads it from standard input.
        #[arg(long)]
        note: String,
    },
    /// Leave a note for the next shift on this case.
    HandoverNote {
        case_id: String,
        /// The note; `-` reads it from standard input.
        text: String,
    },
    /// Record a contact's debrief as held or declined.
    Debrief {
        case_id: String,
        #[arg(long)]
        contact: String,
        /// `held` or `declined`.
        #[arg(long)]
        state: DebriefState,
    },
}

/// The supervision commands at the top level.
#[derive(Subcommand)]
pub enum TopCmd {
    /// The review queue: unreviewed cases, high and critical first, then oldest.
    Queue,
    /// Escalations: awaiting a receipt first (oldest first), then acknowledged.
    Escalations,
}

pub fn case(cmd: CaseCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    let find = |store: &Store, id: &str| store.resolve(DocKind::Case, id);
    match cmd {
        CaseCmd::Review { case_id, state } => {
            let id = find(store, &case_id)?;
            let w = store.review_case(&id, state)?;
            out.written(&id, &w);
        }
        CaseCmd::Comment {
            case_id,
            contact,
            text,
        } => {
            let id = find(store, &case_id)?;
            let cid = store.comment_case(&id, contact.as_deref(), &crate::read_text(text)?)?;
            out.print(&json!({"id": id, "comment_id": cid}), || {
                format!("Comment {cid} added. The volunteer sees it after the next sync.")
            });
        }
        CaseCmd::Ack {
            case_id,
            instructions,
        } => {
            let id = find(store, &case_id)?;
            let r = store.acknowledge_escalation(&id, &crate::read_text(instructions)?)?;
            out.print(&r, || {
                "Escalation acknowledged. The volunteer's device shows your receipt after both of you sync.".to_owned()
            });
        }
        CaseCmd::Phoned { case_id, note } => {
            let id = find(store, &case_id)?;
            let r = store.record_phoned(&id, note.as_deref())?;
            out.print(&r, || {
                "Recorded: you reached the on-call supervisor by phone.".to_owned()
            });
        }
        CaseCmd::Assign { case_id, to, note } => {
            let id = find(store, &case_id)?;
            let (device, name) = member(store, &to)?;
            let aid = store.assign_case(&id, &device, &name, &crate::read_text(note)?)?;
            out.print(
                &json!({"id": id, "assignment_id": aid, "to_device": device, "to_name": name}),
                || {
                    format!(
                        "Case handed to {}. It reaches them at the next sync.",
                        shown(&name, &device)
                    )
                },
            );
        }
        CaseCmd::HandoverNote { case_id, text } => {
            let id = find(store, &case_id)?;
            let nid = store.add_handover_note(&id, &crate::read_text(text)?)?;
            out.print(&json!({"id": id, "note_id": nid}), || {
                format!("Handover note {nid} saved on this device.")
            });
        }
        CaseCmd::Debrief {
            case_id,
            contact,
            state,
        } => {
            let id = find(store, &case_id)?;
            let did = store.set_debrief(&id, &contact, state)?;
            out.print(
                &json!({"id": id, "debrief_id": did, "contact": contact, "state": state}),
                || format!("Debrief recorded as {state}."),
            );
        }
    }
    Ok(())
}

pub fn top(cmd: TopCmd, store: &mut Store, out: &Out) -> anyhow::Result<()> {
    match cmd {
        TopCmd::Queue => {
            let q = store.review_queue()?;
            out.print(&q, || queue(&q));
        }
        TopCmd::Escalations => {
            let e = store.escalations()?;
            out.print(&e, || escalations(&e));
        }
    }
    Ok(())
}

fn shown(name: &str, device: &str) -> String {
    let short: String = device.chars().take(8).collect();
    if name.is_empty() {
        format!("device {short}")
    } else if short.is_empty() {
        name.to_owned()
    } else {
        format!("{name} ({short})")
    }
}

/// Resolves `--to`: a member's device id, a unique prefix of it (four hex
/// digits at least), or a name. Names come from the relay's member list
/// when it answers, else from the team's duty roster on this device.
fn member(store: &Store, typed: &str) -> anyhow::Result<(String, String)> {
    let typed = typed.trim();
    let roster: Vec<String> = store
        .roster()?
        .into_iter()
        .filter(|m| !m.revoked)
        .map(|m| m.device_id)
        .collect();
    let mut names: Vec<(String, String)> = match heartbridge_client::members(store) {
        Ok(list) => list
            .into_iter()
            .filter_map(|m| m.name.map(|n| (m.device_id, n)))
            .collect(),
        Err(_) => Vec::new(),
    };
    if names.is_empty() {
        if let Ok(settings) = store.team_settings() {
            names = settings
                .duty
                .into_iter()
                .map(|d| (d.device, d.name))
                .collect();
        }
    }
    let name_of = |device: &str| {
        names
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    let lower = typed.to_ascii_lowercase();
    let by_id: Vec<&String> = if lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        roster.iter().filter(|d| d.starts_with(&lower)).collect()
    } else {
        Vec::new()
    };
    let mut by_name: Vec<String> = names
        .iter()
        .filter(|(d, n)| n.trim() == typed && roster.contains(d))
        .map(|(d, _)| d.clone())
        .collect();
    by_name.sort();
    by_name.dedup();
    let found: Vec<String> = match (by_id.as_slice(), by_name.as_slice()) {
        ([one], _) => vec![(*one).clone()],
        ([], names) => names.to_vec(),
        (many, _) => many.iter().map(|d| (*d).clone()).collect(),
    };
    match found.as_slice() {
        [one] => Ok((one.clone(), name_of(one))),
        [] => Err(Error::NotFound {
            what: "team member",
            id: typed.chars().take(40).collect(),
        }
        .into()),
        _ => Err(Error::InvalidValue {
            field: "member",
            value: typed.chars().take(40).collect(),
            allowed: "a device id or a longer prefix of one: this matches several members",
        }
        .into()),
    }
}

fn queue(list: &[CaseSummary]) -> String {
    if list.is_empty() {
        return "No case waits for review.".to_owned();
    }
    let mut s = String::new();
    for c in list {
        let _ = writeln!(
            s,
            "{}  {:8} {:8} opened {}  {}{}",
            &c.id[..8],
            c.risk.as_str(),
            c.group.as_str(),
            c.created_at,
            c.alias,
            if c.awaiting_receipt {
                "  [not yet confirmed by a supervisor]"
            } else {
                ""
            }
        );
    }
    s.trim_end().to_owned()
}

fn escalations(list: &[EscalationRow]) -> String {
    if list.is_empty() {
        return "No escalations.".to_owned();
    }
    let mut s = String::new();
    for r in list {
        let e = &r.escalation;
        let answer = match &e.receipt {
            None => "AWAITING a receipt".to_owned(),
            Some(rc) => format!(
                "{} by {} at {}",
                match rc.mode {
                    heartbridge_core::ReceiptMode::App => "acknowledged",
                    heartbridge_core::ReceiptMode::Phone => "reached by phone",
                },
                rc.by_name,
                rc.at
            ),
        };
        let _ = writeln!(
            s,
            "{}  {:8} escalated {} by {}  {}  — {}",
            &r.case[..8.min(r.case.len())],
            e.level.as_str(),
            e.at,
            e.by_name,
            r.alias,
            answer
        );
    }
    s.trim_end().to_owned()
}

/// The supervision lines of `case show` (plain text).
pub fn case_lines(c: &heartbridge_core::Case) -> String {
    let mut s = String::new();
    if c.awaiting_receipt {
        let _ = writeln!(s, "  NOT YET CONFIRMED BY A SUPERVISOR (未获督导确认)");
    }
    let _ = writeln!(
        s,
        "  carried by {}, review {}{}",
        shown(&c.assignee_name, &c.assignee_device),
        c.review_state,
        if c.review_by.is_empty() {
            String::new()
        } else {
            format!(" by {}", c.review_by)
        }
    );
    for e in &c.escalations {
        let _ = writeln!(s, "  escalated to {} at {} by {}", e.level, e.at, e.by_name);
        for r in &e.receipts {
            let how = match r.mode {
                heartbridge_core::ReceiptMode::App => "acknowledged",
                heartbridge_core::ReceiptMode::Phone => "reached by phone",
            };
            let _ = writeln!(
                s,
                "    {how} by {} at {}: {}",
                r.by_name, r.at, r.instructions
            );
        }
    }
    for cm in &c.comments {
        let on = cm
            .contact
            .as_deref()
            .map(|id| format!(" on contact {id}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  comment by {} at {}{}: {}",
            cm.author_name, cm.at, on, cm.text
        );
    }
    for n in &c.handover_notes {
        let _ = writeln!(
            s,
            "  handover note by {} at {}: {}",
            n.by_name, n.at, n.text
        );
    }
    for d in &c.debriefs {
        let _ = writeln!(s, "  debrief of contact {}: {}", d.contact, d.state);
    }
    s
}
