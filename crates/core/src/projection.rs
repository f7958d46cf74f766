//! Projections: the tables and search index derived from documents. They
//! are refreshed in the same transaction as the document change that made
//! them stale, and can always be rebuilt from the documents.

use automerge::AutoCommit;
use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::{now_ms, DocId, DocKind};
use crate::search;
use crate::{case, handbook};

pub(crate) fn refresh(
    conn: &Connection,
    id: &DocId,
    kind: DocKind,
    doc: &mut AutoCommit,
) -> Result<()> {
    match kind {
        DocKind::Case => refresh_case(conn, id, doc),
        DocKind::Handbook => refresh_handbook(conn, id, doc),
        DocKind::ShiftReport | DocKind::Grants | DocKind::Facts => Ok(()),
        DocKind::TeamSettings => Ok(()),
    }
}

fn refresh_case(conn: &Connection, id: &DocId, doc: &mut AutoCommit) -> Result<()> {
    let c = case::read(doc, id.as_str());
    let created: i64 = crate::docvalue::int(doc, &automerge::ROOT, "created_at").unwrap_or(0);
    let open_followups = c.followups.iter().filter(|f| !f.done).count() as i64;
    conn.execute(
        "INSERT INTO cases (id, alias, grp, risk, risk_rank, status, contacts, open_followups, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET alias = ?2, grp = ?3, risk = ?4, risk_rank = ?5, status = ?6,
             contacts = ?7, open_followups = ?8, created_at = ?9, updated_at = ?10",
        params![
            id.as_str(),
            c.alias,
            c.group.as_str(),
            c.risk.as_str(),
            c.risk as i64,
            c.status.as_str(),
            c.contacts.len() as i64,
            open_followups,
            created,
            now_ms(),
        ],
    )?;
    crate::supervision::refresh_columns(conn, id, &c)?;
    conn.execute(
        "UPDATE cases SET key_gen = ?2 WHERE id = ?1",
        params![id.as_str(), crate::access::doc_key_gen(doc)],
    )?;
    crate::access::project_rotations(conn, id.as_str(), doc)?;
    Ok(())
}

fn refresh_handbook(conn: &Connection, id: &DocId, doc: &mut AutoCommit) -> Result<()> {
    let h = handbook::read(doc, id.as_str());
    let chars: usize = h.sections.iter().map(|s| s.body.chars().count()).sum();
    conn.execute(
        "INSERT INTO handbooks (id, slug, title, language, version, sections, chars, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET slug = ?2, title = ?3, language = ?4, version = ?5,
             sections = ?6, chars = ?7, updated_at = ?8",
        params![
            id.as_str(),
            h.slug,
            h.title,
            h.language,
            h.version,
            h.sections.len() as i64,
            chars as i64,
            now_ms()
        ],
    )?;
    conn.execute(
        "DELETE FROM sections_fts WHERE rowid IN (SELECT rowid FROM sections WHERE handbook_id = ?1)",
        [id.as_str()],
    )?;
    conn.execute("DELETE FROM sections WHERE handbook_id = ?1", [id.as_str()])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO sections (handbook_id, idx, level, title, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut fts =
        conn.prepare_cached("INSERT INTO sections_fts (rowid, title, body) VALUES (?1, ?2, ?3)")?;
    let mut rowids = Vec::with_capacity(h.sections.len());
    for s in &h.sections {
        ins.execute(params![
            id.as_str(),
            s.index as i64,
            s.level,
            s.title,
            s.body
        ])?;
        rowids.push(conn.last_insert_rowid());
    }
    // Only sections with text are indexed; headings above are their context.
    for row in search::index_rows(&h.sections) {
        fts.execute(params![rowids[row.section], row.title, row.body])?;
    }
    search::mark_indexed(conn, id.as_str())?;
    crate::lesson::refresh(conn, id, doc)
}
