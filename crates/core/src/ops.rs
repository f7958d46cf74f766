//! What a volunteer does, as methods on [`Store`]: every CLI command and
//! app command is a thin call to one of these.

use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::Serialize;

use crate::case::supervision::EscalationSource;
use crate::case::{self, Case, HistoryEntry, NewCase};
use crate::error::{Error, Result};
use crate::facts::{self, Fact};
use crate::handbook::{self, Handbook, Section};
use crate::model::{now_ms, Channel, DocId, DocKind, Group, Risk, Status};
use crate::search::{self, Hit, Page};
use crate::store::{Store, Written};

/// A case in a list: no contact text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CaseSummary {
    pub id: String,
    pub alias: String,
    pub group: Group,
    pub risk: Risk,
    pub status: Status,
    pub contacts: i64,
    pub open_followups: i64,
    pub updated_at: String,
    /// `unreviewed`, `reviewed` or `needs-follow-up`.
    pub review_state: crate::case::supervision::ReviewState,
    pub assignee_device: String,
    pub assignee_name: String,
    /// `""` (never escalated), `awaiting` or `acknowledged`.
    pub escalation: String,
    /// Shown as "not yet confirmed by a supervisor".
    pub awaiting_receipt: bool,
    pub created_at: String,
}

/// Filters for [`Store::list_cases`].
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub risk: Option<Risk>,
    pub status: Option<Status>,
    pub group: Option<Group>,
}

/// Changes for [`Store::update_case`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CaseUpdate {
    pub alias: Option<String>,
    pub risk: Option<Risk>,
    pub status: Option<Status>,
    pub group: Option<Group>,
}

/// A handbook in the library list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HandbookSummary {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub language: String,
    pub version: String,
    pub sections: i64,
    pub chars: i64,
}

/// What importing one file did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Imported {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub path: PathBuf,
    /// `created`, `updated` or `unchanged`.
    pub outcome: &'static str,
}

fn describe(u: &CaseUpdate) -> String {
    let mut parts = Vec::new();
    if u.alias.is_some() {
        parts.push("alias changed".to_owned());
    }
    if let Some(r) = u.risk {
        parts.push(format!("risk → {r}"));
    }
    if let Some(s) = u.status {
        parts.push(format!("status → {s}"));
    }
    if let Some(g) = u.group {
        parts.push(format!("group → {g}"));
    }
    parts.join(", ")
}

impl Store {
    /// Opens a new case; returns its id.
    pub fn new_case(&mut self, new: &NewCase) -> Result<DocId> {
        let id = DocId::random();
        let what = format!("case opened (group {}, risk {})", new.group, new.risk);
        let at = now_ms();
        // The statistics fact is written in the case's own transaction.
        let opened = Fact::CaseOpened {
            id: Fact::new_id(),
            case: id.to_string(),
            at,
            group: new.group,
            risk: new.risk,
            channel: None,
        };
        // Supervision: creator, assignee, review; an escalation if it opens
        // at high or critical.
        let who = self.who(EscalationSource::Hand, Some(new.risk))?;
        let emitted = crate::supervision::Emitted::default();
        self.write_also(
            &id,
            DocKind::Case,
            true,
            &what,
            |doc, p| {
                case::create(doc, new, &p.name, at)?;
                crate::supervision::after_create(doc, &id, &who, new.risk, at, &emitted)
            },
            |tx| {
                facts::record_fact_in(tx, &opened)?;
                emitted.record(tx)
            },
        )?;
        Ok(id)
    }

    /// Reads a case.
    pub fn case(&self, id: &DocId) -> Result<Case> {
        let doc = self.load_kind(id, DocKind::Case)?;
        Ok(case::read(&doc, id.as_str()))
    }

    /// Logs a contact; returns the contact's id.
    pub fn add_contact(
        &mut self,
        id: &DocId,
        channel: Channel,
        text: &str,
        minutes: Option<i64>,
    ) -> Result<String> {
        let what = format!("contact logged ({channel})");
        let at = now_ms();
        let me = self.me()?;
        let fact = std::cell::RefCell::new(None);
        // The shift's contact count and the statistics fact (with the
        // case's group and risk at this time) move in the contact's own
        // transaction.
        let (cid, _) = self.write_also(
            id,
            DocKind::Case,
            false,
            &what,
            |doc, p| {
                let cid = case::add_contact(doc, channel, text, minutes, &p.name, at)?;
                crate::supervision::after_contact(doc, &cid, &me, at)?;
                let (group, risk) = facts::case_group_risk(doc);
                *fact.borrow_mut() = Some(Fact::Contact {
                    id: Fact::new_id(),
                    case: id.to_string(),
                    at,
                    channel,
                    minutes,
                    group,
                    risk,
                });
                Ok(cid)
            },
            |tx| {
                tx.execute(
                    "UPDATE shifts SET contacts = contacts + 1 WHERE ended_at IS NULL",
                    [],
                )?;
                if let Some(f) = fact.borrow().as_ref() {
                    facts::record_fact_in(tx, f)?;
                }
                Ok(())
            },
        )?;
        Ok(cid)
    }

    /// Rewrites a contact's note (merged by character with concurrent edits).
    pub fn edit_contact(&mut self, id: &DocId, contact: &str, text: &str) -> Result<Written> {
        let (_, w) = self.write(id, DocKind::Case, false, "contact note edited", |doc, _| {
            case::edit_contact(doc, contact, text)
        })?;
        Ok(w)
    }

    /// Changes a case's fields.
    pub fn update_case(&mut self, id: &DocId, u: &CaseUpdate) -> Result<Written> {
        self.update_case_from(id, u, EscalationSource::Hand)
    }

    /// [`Store::update_case`], saying where a risk change comes from (the
    /// app's screening confirm passes `Screening`). Raising risk to high or
    /// critical (or high to critical) makes an escalation naming the
    /// supervisor on call now.
    pub fn update_case_from(
        &mut self,
        id: &DocId,
        u: &CaseUpdate,
        source: EscalationSource,
    ) -> Result<Written> {
        let what = describe(u);
        let at = now_ms();
        let who = self.who(source, u.risk)?;
        let emitted = crate::supervision::Emitted::default();
        // Statistics facts for a changed risk or group, in this transaction.
        let changed = std::cell::RefCell::new(Vec::new());
        let (_, w) = self.write_also(
            id,
            DocKind::Case,
            false,
            &what,
            |doc, _| {
                let before = facts::case_group_risk(doc);
                if let Some(a) = &u.alias {
                    case::set_alias(doc, a)?;
                }
                if let Some(r) = u.risk {
                    let old = case::risk(doc).0;
                    case::set_risk(doc, r)?;
                    emitted.escalate_if_raised(doc, id, &who, old, case::risk(doc).0, at)?;
                }
                if let Some(s) = u.status {
                    case::set_status(doc, s)?;
                }
                if let Some(g) = u.group {
                    case::set_group(doc, g)?;
                }
                let after = facts::case_group_risk(doc);
                let mut out = changed.borrow_mut();
                if after.1 != before.1 {
                    out.push(Fact::RiskSet {
                        id: Fact::new_id(),
                        case: id.to_string(),
                        at,
                        risk: after.1,
                    });
                }
                if after.0 != before.0 {
                    out.push(Fact::GroupSet {
                        id: Fact::new_id(),
                        case: id.to_string(),
                        at,
                        group: after.0,
                    });
                }
                Ok(())
            },
            |tx| {
                for f in changed.borrow().iter() {
                    facts::record_fact_in(tx, f)?;
                }
                emitted.record(tx)
            },
        )?;
        Ok(w)
    }

    /// Adds a follow-up task; returns its id.
    pub fn add_followup(&mut self, id: &DocId, text: &str, due: Option<&str>) -> Result<String> {
        let at = now_ms();
        let fact = std::cell::RefCell::new(None);
        let (fid, _) = self.write_also(
            id,
            DocKind::Case,
            false,
            "follow-up added",
            |doc, _| {
                let fid = case::add_followup(doc, text, due)?;
                *fact.borrow_mut() = Some(Fact::FollowupAdded {
                    id: Fact::new_id(),
                    case: id.to_string(),
                    followup: fid.clone(),
                    at,
                    due: due.map(str::to_owned),
                });
                Ok(fid)
            },
            |tx| match fact.borrow().as_ref() {
                Some(f) => facts::record_fact_in(tx, f),
                None => Ok(()),
            },
        )?;
        Ok(fid)
    }

    /// Marks a follow-up done or not done.
    pub fn set_followup_done(&mut self, id: &DocId, followup: &str, done: bool) -> Result<Written> {
        let what = if done {
            "follow-up done"
        } else {
            "follow-up reopened"
        };
        // The document changes only when the state does: then a fact.
        let (fact_id, case_id, at) = (Fact::new_id(), id.to_string(), now_ms());
        let fact = if done {
            Fact::FollowupDone {
                id: fact_id,
                case: case_id,
                followup: followup.to_owned(),
                at,
            }
        } else {
            Fact::FollowupReopened {
                id: fact_id,
                case: case_id,
                followup: followup.to_owned(),
                at,
            }
        };
        let (_, w) = self.write_also(
            id,
            DocKind::Case,
            false,
            what,
            |doc, _| case::set_followup_done(doc, followup, done),
            |tx| facts::record_fact_in(tx, &fact),
        )?;
        Ok(w)
    }

    /// Adds and removes tags.
    pub fn tag_case(&mut self, id: &DocId, add: &[String], remove: &[String]) -> Result<Written> {
        let (_, w) = self.write(id, DocKind::Case, false, "tags changed", |doc, _| {
            case::tag(doc, add, remove)
        })?;
        Ok(w)
    }

    /// The case's history, oldest first.
    pub fn case_history(&self, id: &DocId) -> Result<Vec<HistoryEntry>> {
        let mut doc = self.load_kind(id, DocKind::Case)?;
        Ok(case::history(&mut doc))
    }

    /// Cases, highest risk first, then most recently changed.
    pub fn list_cases(&self, f: &CaseFilter) -> Result<Vec<CaseSummary>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, alias, grp, risk, status, contacts, open_followups, updated_at,
                    review_state, assignee_device, assignee_name, escalation, created_at FROM cases
             WHERE (?1 IS NULL OR risk = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR grp = ?3)
             ORDER BY risk_rank DESC, updated_at DESC",
        )?;
        let mut rows = stmt.query(params![
            f.risk.map(Risk::as_str),
            f.status.map(Status::as_str),
            f.group.map(Group::as_str)
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(crate::supervision::summary_row(r)?);
        }
        Ok(out)
    }

    /// Imports handbook files; a folder imports every `.md` file in it.
    /// A file whose slug is already here updates that handbook in place.
    /// Files are checked first: a bad file stops the import before anything
    /// is stored.
    pub fn import_handbooks(&mut self, paths: &[PathBuf]) -> Result<Vec<Imported>> {
        let mut files = Vec::new();
        for p in paths {
            collect_markdown(p, &mut files)?;
        }
        let mut read = Vec::new();
        for f in files {
            let bytes = std::fs::read(&f).map_err(|source| Error::Io {
                path: f.clone(),
                source,
            })?;
            read.push((f, bytes));
        }
        self.import_handbook_bytes(&read)
    }

    /// Imports handbooks given as (name, bytes), e.g. the ones an app ships
    /// with. Every file is parsed before anything is stored.
    pub fn import_handbook_bytes(&mut self, files: &[(PathBuf, Vec<u8>)]) -> Result<Vec<Imported>> {
        let mut parsed = Vec::new();
        for (f, bytes) in files {
            parsed.push((handbook::parse(f, bytes)?, f.clone()));
        }
        let mut out = Vec::new();
        for (src, path) in parsed {
            let existing: Option<String> = self
                .conn()
                .query_row(
                    "SELECT id FROM handbooks WHERE slug = ?1 ORDER BY id LIMIT 1",
                    [&src.slug],
                    |r| r.get(0),
                )
                .ok();
            let (id, create) = match existing {
                Some(id) => (DocId::parse(&id, "handbook")?, false),
                None => (DocId::random(), true),
            };
            let what = format!("handbook imported (version {})", src.version);
            let (_, w) = self.write(&id, DocKind::Handbook, create, &what, |doc, _| {
                handbook::write(doc, &src)
            })?;
            out.push(Imported {
                id: id.to_string(),
                slug: src.slug.clone(),
                title: src.title.clone(),
                path,
                outcome: match (create, w) {
                    (true, _) => "created",
                    (false, Written::Changed(_)) => "updated",
                    (false, Written::Unchanged) => "unchanged",
                },
            });
        }
        Ok(out)
    }

    /// The library.
    pub fn list_handbooks(&self) -> Result<Vec<HandbookSummary>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, slug, title, language, version, sections, chars FROM handbooks ORDER BY language, title",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(HandbookSummary {
                id: r.get(0)?,
                slug: r.get(1)?,
                title: r.get(2)?,
                language: r.get(3)?,
                version: r.get(4)?,
                sections: r.get(5)?,
                chars: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A whole handbook.
    pub fn handbook(&self, id: &DocId) -> Result<Handbook> {
        let doc = self.load_kind(id, DocKind::Handbook)?;
        Ok(handbook::read(&doc, id.as_str()))
    }

    /// One section of a handbook, from the projection (fast).
    pub fn section(&self, id: &DocId, index: usize) -> Result<Section> {
        self.conn()
            .query_row(
                "SELECT idx, level, title, body FROM sections WHERE handbook_id = ?1 AND idx = ?2",
                params![id.as_str(), index as i64],
                |r| {
                    Ok(Section {
                        index: r.get::<_, i64>(0)? as usize,
                        level: r.get(1)?,
                        title: r.get(2)?,
                        body: r.get(3)?,
                    })
                },
            )
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Error::NotFound {
                    what: "section",
                    id: format!("{id} §{index}"),
                },
                e => e.into(),
            })
    }

    /// Searches handbook sections; best first. The first `limit` hits of
    /// [`Store::search_page`].
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>> {
        Ok(self.search_page(query, 0, limit)?.hits)
    }

    /// Searches handbook sections: how many match in all, and `limit` hits
    /// from `offset`, best first. Only sections with text of their own are
    /// hits; the headings above a section count as its context.
    pub fn search_page(&self, query: &str, offset: usize, limit: usize) -> Result<Page> {
        search::page(self.conn(), query, offset, limit)
    }
}

fn collect_markdown(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(p).map_err(|source| Error::Io {
        path: p.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|source| Error::Io {
                path: p.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || e.extension().is_some_and(|x| x == "md" || x == "markdown") {
                collect_markdown(&e, out)?;
            }
        }
    } else {
        out.push(p.to_owned());
    }
    Ok(())
}

impl Store {
    /// Finds a document by its full id or a unique prefix of at least four
    /// hex digits, as people type them.
    pub fn resolve(&self, kind: crate::DocKind, typed: &str) -> Result<DocId> {
        let noun = crate::store::kind_noun(kind);
        let typed = typed.trim().to_ascii_lowercase();
        if typed.len() == 32 {
            return DocId::parse(&typed, noun);
        }
        if typed.len() < 4 || !typed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NotFound {
                what: noun,
                id: typed.chars().take(40).collect(),
            });
        }
        let mut stmt = self.conn().prepare_cached(
            "SELECT id FROM documents WHERE kind = ?1 AND id >= ?2 AND id < ?2 || 'g' ORDER BY id LIMIT 2",
        )?;
        let ids: Vec<String> = stmt
            .query_map(params![kind.as_str(), typed], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [one] => DocId::parse(one, noun),
            [] => Err(Error::NotFound {
                what: noun,
                id: typed,
            }),
            _ => Err(Error::InvalidValue {
                field: "id",
                value: typed,
                allowed: "more digits of the id: this prefix matches several",
            }),
        }
    }
}
