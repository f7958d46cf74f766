//! Statistics facts: what the team's statistics are computed from.
//!
//! Cases are readable only by their readers, so the lead cannot count them
//! from the cases. Every write that matters for statistics also records a
//! [`Fact`] in the same transaction: de-identified — no alias, no text, no
//! name, no device id; only the case's random id, times, and vocabulary
//! values (channel, key group, risk). Facts go into the `facts` table
//! (keyed by the fact's own random id, so a fact arriving twice is stored
//! once) and, when written on this device, into `facts_outbox` until the
//! sync code has pushed them (sealed to the team's oversight key). Devices
//! holding the oversight key ingest the facts of the others.
//!
//! Times are milliseconds since the Unix epoch. Debriefs are never facts.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Channel, Group, Risk};

/// One de-identified event. The JSON spelling (`"t": "case-opened"`, …) is
/// the wire format between devices: add variants and optional fields only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum Fact {
    /// A case was opened, with its key group and risk then.
    CaseOpened {
        id: String,
        case: String,
        at: i64,
        group: Group,
        risk: Risk,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
    },
    /// A contact (one 服务人次), with the case's group and risk at the time.
    Contact {
        id: String,
        case: String,
        at: i64,
        channel: Channel,
        #[serde(default)]
        minutes: Option<i64>,
        group: Group,
        risk: Risk,
    },
    /// The case's risk was set.
    RiskSet {
        id: String,
        case: String,
        at: i64,
        risk: Risk,
    },
    /// The case's key group was set.
    GroupSet {
        id: String,
        case: String,
        at: i64,
        group: Group,
    },
    /// An escalation (risk raised to high or critical); `escalation` is the
    /// escalation's id in the case.
    Escalated {
        id: String,
        case: String,
        escalation: String,
        at: i64,
        level: Risk,
    },
    /// A supervisor's receipt of an escalation (`mode` `app` or `phone`).
    Receipt {
        id: String,
        case: String,
        escalation: String,
        at: i64,
        mode: String,
    },
    /// A follow-up task was added; `due` is `YYYY-MM-DD`.
    FollowupAdded {
        id: String,
        case: String,
        followup: String,
        at: i64,
        #[serde(default)]
        due: Option<String>,
    },
    /// A follow-up task was marked done.
    FollowupDone {
        id: String,
        case: String,
        followup: String,
        at: i64,
    },
    /// A follow-up task marked done was marked not done again.
    FollowupReopened {
        id: String,
        case: String,
        followup: String,
        at: i64,
    },
    /// A volunteer's shift (on a line of kind `line_kind`), start to end.
    Shift {
        id: String,
        #[serde(default)]
        line_kind: Option<String>,
        start: i64,
        end: i64,
    },
    /// A micro-lesson was watched through once (one 人次); `lesson` is the
    /// lesson's id (a hash of the media, no title).
    LessonWatched { id: String, lesson: String, at: i64 },
}

impl Fact {
    /// A fresh random fact id (32 hex digits).
    pub fn new_id() -> String {
        let b: [u8; 16] = rand::random();
        hex::encode(b)
    }

    /// The fact's id.
    pub fn id(&self) -> &str {
        match self {
            Fact::CaseOpened { id, .. }
            | Fact::Contact { id, .. }
            | Fact::RiskSet { id, .. }
            | Fact::GroupSet { id, .. }
            | Fact::Escalated { id, .. }
            | Fact::Receipt { id, .. }
            | Fact::FollowupAdded { id, .. }
            | Fact::FollowupDone { id, .. }
            | Fact::FollowupReopened { id, .. }
            | Fact::Shift { id, .. }
            | Fact::LessonWatched { id, .. } => id,
        }
    }

    /// When it happened (a shift: its start).
    pub fn at(&self) -> i64 {
        match self {
            Fact::CaseOpened { at, .. }
            | Fact::Contact { at, .. }
            | Fact::RiskSet { at, .. }
            | Fact::GroupSet { at, .. }
            | Fact::Escalated { at, .. }
            | Fact::Receipt { at, .. }
            | Fact::FollowupAdded { at, .. }
            | Fact::FollowupDone { at, .. }
            | Fact::FollowupReopened { at, .. }
            | Fact::LessonWatched { at, .. } => *at,
            Fact::Shift { start, .. } => *start,
        }
    }

    /// The case it is about (none for a shift).
    pub fn case(&self) -> Option<&str> {
        match self {
            Fact::CaseOpened { case, .. }
            | Fact::Contact { case, .. }
            | Fact::RiskSet { case, .. }
            | Fact::GroupSet { case, .. }
            | Fact::Escalated { case, .. }
            | Fact::Receipt { case, .. }
            | Fact::FollowupAdded { case, .. }
            | Fact::FollowupDone { case, .. }
            | Fact::FollowupReopened { case, .. } => Some(case),
            Fact::Shift { .. } | Fact::LessonWatched { .. } => None,
        }
    }

    /// The JSON tag of the variant (`case-opened`, `contact`, …).
    pub fn tag(&self) -> &'static str {
        match self {
            Fact::CaseOpened { .. } => "case-opened",
            Fact::Contact { .. } => "contact",
            Fact::RiskSet { .. } => "risk-set",
            Fact::GroupSet { .. } => "group-set",
            Fact::Escalated { .. } => "escalated",
            Fact::Receipt { .. } => "receipt",
            Fact::FollowupAdded { .. } => "followup-added",
            Fact::FollowupDone { .. } => "followup-done",
            Fact::FollowupReopened { .. } => "followup-reopened",
            Fact::Shift { .. } => "shift",
            Fact::LessonWatched { .. } => "lesson-watched",
        }
    }
}

/// A case document's key group and (effective, highest) risk now, for the
/// facts of a write.
pub(crate) fn case_group_risk(doc: &automerge::AutoCommit) -> (Group, Risk) {
    let group = crate::docvalue::string(doc, &automerge::ROOT, "group")
        .and_then(|g| g.parse().ok())
        .unwrap_or(Group::Other);
    (group, crate::case::risk(doc).0)
}

fn body(fact: &Fact) -> String {
    // A derived Serialize of plain fields cannot fail.
    serde_json::to_string(fact).unwrap_or_default()
}

fn insert(conn: &Connection, fact: &Fact) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO facts (id, t, at, case_id, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![fact.id(), fact.tag(), fact.at(), fact.case(), body(fact)],
    )?;
    Ok(n == 1)
}

/// Records a fact written on this device: into `facts`, and into
/// `facts_outbox` for the sync code. A fact whose id is already stored is
/// ignored. Call it inside the transaction of the write it describes.
pub(crate) fn record_fact_in(conn: &Connection, fact: &Fact) -> Result<()> {
    if insert(conn, fact)? {
        conn.execute(
            "INSERT INTO facts_outbox (fact_id) VALUES (?1)",
            [fact.id()],
        )?;
    }
    Ok(())
}

/// This device's facts not pushed yet, oldest first, with their outbox
/// sequence numbers (for [`mark_sent_in`]).
#[allow(dead_code)] // until the sync code pushes facts
pub(crate) fn take_unsent_in(conn: &Connection) -> Result<Vec<(i64, Fact)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.seq, f.body FROM facts_outbox o JOIN facts f ON f.id = o.fact_id ORDER BY o.seq",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row?;
        out.push((seq, parse(body.as_bytes())?));
    }
    Ok(out)
}

/// Drops pushed facts from the outbox (the facts themselves stay).
#[allow(dead_code)] // until the sync code pushes facts
pub(crate) fn mark_sent_in(conn: &Connection, seqs: &[i64]) -> Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM facts_outbox WHERE seq = ?1")?;
    for s in seqs {
        stmt.execute([s])?;
    }
    Ok(())
}

/// Stores facts from other devices (nothing goes to the outbox); returns
/// how many were new.
pub(crate) fn ingest_in(conn: &Connection, facts: &[Fact]) -> Result<usize> {
    let mut n = 0;
    for f in facts {
        if insert(conn, f)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Every stored fact, in time order (ties by id).
pub(crate) fn all_in(conn: &Connection) -> Result<Vec<Fact>> {
    // Sorted here: SQLite sorting whole rows by (at, id) is ten times slower.
    let mut stmt = conn.prepare_cached("SELECT body FROM facts")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(parse(
            r.get_ref(0)?.as_bytes().map_err(rusqlite::Error::from)?,
        )?);
    }
    out.sort_by(|a, b| a.at().cmp(&b.at()).then_with(|| a.id().cmp(b.id())));
    Ok(out)
}

fn parse(bytes: &[u8]) -> Result<Fact> {
    serde_json::from_slice(bytes).map_err(|_| Error::Protocol {
        detail: "a stored statistics fact that does not parse".into(),
    })
}

/// Facts as bytes for the wire (a JSON array).
pub fn encode(facts: &[Fact]) -> Vec<u8> {
    serde_json::to_vec(facts).unwrap_or_default()
}

/// Facts from the wire. Bytes that are not a JSON array of facts are an
/// error (nothing of their content is in it).
///
/// A fact of a kind this version does not know (a newer device's, such as
/// `lesson-watched` was for devices before it) is skipped, so it never
/// costs the other facts of its list; a known kind that does not parse is
/// damage and refuses the list.
pub fn decode(bytes: &[u8]) -> Result<Vec<Fact>> {
    let damaged = || Error::Protocol {
        detail: "statistics facts that do not parse".into(),
    };
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes).map_err(|_| damaged())?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let tag = item.get("t").and_then(|t| t.as_str()).map(str::to_owned);
        match serde_json::from_value::<Fact>(item) {
            Ok(f) => out.push(f),
            Err(_) if tag.as_deref().is_some_and(|t| !KNOWN_TAGS.contains(&t)) => {}
            Err(_) => return Err(damaged()),
        }
    }
    Ok(out)
}

/// The `t` of every [`Fact`] variant this version reads.
const KNOWN_TAGS: &[&str] = &[
    "case-opened",
    "contact",
    "risk-set",
    "group-set",
    "escalated",
    "receipt",
    "followup-added",
    "followup-done",
    "followup-reopened",
    "shift",
    "lesson-watched",
];

impl crate::Store {
    /// Stores facts that came from elsewhere (another device's, a file),
    /// in one `IMMEDIATE` transaction; returns how many were new. Nothing
    /// goes to the outbox.
    pub fn ingest_facts(&mut self, facts: &[Fact]) -> Result<usize> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = ingest_in(&tx, facts)?;
        tx.commit()?;
        Ok(n)
    }

    /// How many facts this device holds, and how many of its own wait to
    /// be pushed.
    pub fn fact_counts(&self) -> Result<(usize, usize)> {
        let all: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM facts", [], |r| r.get(0))?;
        let unsent: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM facts_outbox", [], |r| r.get(0))?;
        Ok((all as usize, unsent as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::testing;
    use crate::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(&dir.path().join("p"), "林老师", &testing::protection()).unwrap();
        (dir, s)
    }

    fn contact(id: &str, at: i64) -> Fact {
        Fact::Contact {
            id: id.into(),
            case: "c".repeat(32),
            at,
            channel: Channel::Hotline,
            minutes: Some(20),
            group: Group::Migrant,
            risk: Risk::Low,
        }
    }

    #[test]
    fn a_fact_of_an_unknown_kind_is_skipped_and_a_damaged_one_refuses_the_list() {
        let watched = Fact::LessonWatched {
            id: "f1".into(),
            lesson: "ab".repeat(16),
            at: 5,
        };
        let mut list: Vec<serde_json::Value> = vec![
            serde_json::to_value(contact("c1", 1)).unwrap(),
            serde_json::to_value(&watched).unwrap(),
            serde_json::json!({"t": "from-a-newer-version", "id": "x", "at": 3}),
        ];
        let bytes = serde_json::to_vec(&list).unwrap();
        assert_eq!(decode(&bytes).unwrap(), vec![contact("c1", 1), watched]);
        list.push(serde_json::json!({"t": "contact", "id": "broken"}));
        let bytes = serde_json::to_vec(&list).unwrap();
        assert_eq!(decode(&bytes).unwrap_err().kind(), "protocol");
    }

    #[test]
    fn recorded_facts_wait_in_the_outbox_until_marked_sent_and_are_stored_once() {
        let (_d, mut s) = store();
        let tx = s.conn_mut().transaction().unwrap();
        record_fact_in(&tx, &contact("a1", 10)).unwrap();
        record_fact_in(&tx, &contact("a1", 10)).unwrap();
        record_fact_in(&tx, &contact("a2", 20)).unwrap();
        tx.commit().unwrap();
        let unsent = take_unsent_in(s.conn()).unwrap();
        assert_eq!(
            unsent.iter().map(|(_, f)| f.id()).collect::<Vec<_>>(),
            ["a1", "a2"]
        );
        mark_sent_in(s.conn(), &[unsent[0].0]).unwrap();
        let left = take_unsent_in(s.conn()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, contact("a2", 20));
        assert_eq!(s.fact_counts().unwrap(), (2, 1));
    }

    #[test]
    fn ingested_facts_are_deduplicated_and_not_queued() {
        let (_d, mut s) = store();
        let facts = vec![contact("b1", 1), contact("b2", 2)];
        let bytes = encode(&facts);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, facts);
        assert_eq!(s.ingest_facts(&back).unwrap(), 2);
        assert_eq!(s.ingest_facts(&back).unwrap(), 0);
        assert_eq!(s.fact_counts().unwrap(), (2, 0));
        // A kind from a newer version is skipped; what is not a list of
        // facts at all is refused.
        assert_eq!(decode(b"[{\"t\":\"nope\"}]").unwrap(), vec![]);
        assert!(decode(b"[{\"id\":\"no kind\"}]").is_err());
        assert!(decode(b"{}").is_err());
    }

    #[test]
    fn the_wire_spelling_is_tagged_kebab_case() {
        let json = String::from_utf8(encode(&[Fact::FollowupDone {
            id: "x".into(),
            case: "c".into(),
            followup: "f".into(),
            at: 5,
        }]))
        .unwrap();
        assert_eq!(
            json,
            r#"[{"t":"followup-done","id":"x","case":"c","followup":"f","at":5}]"#
        );
    }

    fn unsent(s: &Store) -> Vec<Fact> {
        take_unsent_in(s.conn())
            .unwrap()
            .into_iter()
            .map(|(_, f)| f)
            .filter(|f| !matches!(f, Fact::Escalated { .. } | Fact::Receipt { .. }))
            .collect()
    }

    #[test]
    fn case_operations_record_their_facts_and_a_write_that_changes_nothing_records_none() {
        use crate::{CaseUpdate, NewCase};
        let (_d, mut s) = store();
        let id = s
            .new_case(&NewCase {
                alias: "小雨".into(),
                group: Group::ExamStress,
                risk: Risk::Low,
            })
            .unwrap();
        let case = id.to_string();
        s.add_contact(&id, Channel::Online, "谈到失眠", Some(15))
            .unwrap();
        let up = |risk, group| CaseUpdate {
            risk,
            group,
            ..Default::default()
        };
        s.update_case(&id, &up(Some(Risk::Medium), Some(Group::Migrant)))
            .unwrap();
        // The same values again, and an alias change: no fact.
        s.update_case(&id, &up(Some(Risk::Medium), Some(Group::Migrant)))
            .unwrap();
        s.update_case(
            &id,
            &CaseUpdate {
                alias: Some("小雨2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let f = s.add_followup(&id, "回访", Some("2026-03-01")).unwrap();
        s.set_followup_done(&id, &f, true).unwrap();
        s.set_followup_done(&id, &f, true).unwrap();
        s.set_followup_done(&id, &f, false).unwrap();
        s.add_contact(&id, Channel::Hotline, "第二次", None)
            .unwrap();

        let got = unsent(&s);
        let shape: Vec<String> = got
            .iter()
            .map(|f| match f {
                Fact::CaseOpened { group, risk, .. } => format!("opened {group} {risk}"),
                Fact::Contact {
                    channel,
                    minutes,
                    group,
                    risk,
                    ..
                } => format!("contact {channel} {minutes:?} {group} {risk}"),
                Fact::RiskSet { risk, .. } => format!("risk {risk}"),
                Fact::GroupSet { group, .. } => format!("group {group}"),
                Fact::FollowupAdded { due, .. } => format!("followup {due:?}"),
                Fact::FollowupDone { .. } => "done".into(),
                Fact::FollowupReopened { .. } => "reopened".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "opened exam-stress low",
                "contact online Some(15) exam-stress low",
                "risk medium",
                "group migrant",
                "followup Some(\"2026-03-01\")",
                "done",
                "reopened",
                "contact hotline None migrant medium",
            ]
        );
        assert!(got.iter().all(|f| f.case() == Some(case.as_str())));
        // The follow-up facts name the follow-up the case holds.
        assert!(got
            .iter()
            .any(|x| matches!(x, Fact::FollowupDone { followup, .. } if *followup == f)));
        // Times are the writes' own, in order.
        let times: Vec<i64> = got.iter().map(Fact::at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
