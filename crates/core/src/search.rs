//! Full-text search that works for Chinese.
//!
//! SQLite's FTS5 tokenizers either keep a run of Han characters as one token
//! (`unicode61`) or need three characters (`trigram`), but most Chinese
//! words are one or two characters. So before indexing, every CJK character
//! is set apart by spaces and becomes its own token; a query's CJK run
//! becomes an FTS5 phrase of single characters, which matches exactly those
//! characters adjacent, in order. Latin words stay whole words, folded to
//! lower case by `unicode61`, and match as prefixes. Several terms must all
//! match. Full-width forms (`ＰＦＡ`, `１２０`) are folded to their ASCII
//! forms in the index, in queries and in snippets alike.
//!
//! What is indexed is a passage a volunteer can read: the rendered text of a
//! section (no Markdown marks), under its own heading, with the headings it
//! sits under as context. A section that is only a heading has no row of its
//! own: its words reach the subsections under it as context, so the hit is
//! the subsection with text. See [`index_rows`].
//!
//! Ranking is FTS5's BM25 with a section's own heading weighted above its
//! text (see [`TITLE_WEIGHT`]). The FTS table is contentless: it stores only
//! the index; snippets are cut here from the section's rendered text,
//! HTML-escaped, every match in `<mark>`, at word boundaries in English and
//! at punctuation (or a character boundary) in Chinese.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::Result;
use crate::handbook::Section;
use crate::model::{DocId, DocKind};

/// BM25 weight of a section's own heading (FTS column `title`) against its
/// text and context (column `body`, weight 1).
pub const TITLE_WEIGHT: f64 = 6.0;

/// Whether `c` is written without spaces between words (Han, kana, Hangul,
/// CJK compatibility), so that each character is indexed on its own.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x3134F // Extensions B–G
    )
}

/// Full-width ASCII forms (U+FF01–U+FF5E) and the ideographic space as
/// their ASCII forms; everything else unchanged.
pub fn half_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// The form two characters are compared in: half-width, lower case.
fn fold(c: char) -> char {
    let c = half_width(c);
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// The text handed to the FTS index: full-width forms folded, CJK
/// characters spaced apart.
pub fn index_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        let c = half_width(c);
        if is_cjk(c) {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// The text a reader sees in a section's Markdown: no marks, no raw HTML,
/// blocks and line breaks as single spaces.
pub fn plain_text(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, TagEnd};
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut out = String::with_capacity(markdown.len());
    let space = |out: &mut String| {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
    };
    for ev in Parser::new_ext(markdown, opts) {
        match ev {
            Event::Text(t) | Event::Code(t) => {
                for c in t.chars() {
                    if c.is_whitespace() {
                        space(&mut out);
                    } else {
                        out.push(c);
                    }
                }
            }
            Event::SoftBreak | Event::HardBreak | Event::Rule => space(&mut out),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableCell
                | TagEnd::TableRow
                | TagEnd::TableHead
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_),
            ) => space(&mut out),
            _ => {}
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// What goes into the FTS index for one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// The section's index in its handbook.
    pub section: usize,
    /// The section's own heading (FTS column `title`), as [`index_text`].
    pub title: String,
    /// The section's rendered text, then the headings it sits under (FTS
    /// column `body`), as [`index_text`].
    pub body: String,
}

/// The headings a section sits under, outermost first (the handbook's own
/// title, level 0, is not one of them).
pub fn context(sections: &[Section], i: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let Some(s) = sections.get(i) else {
        return out;
    };
    let mut level = s.level;
    for p in sections[..i].iter().rev() {
        if level <= 1 {
            break;
        }
        if p.level > 0 && p.level < level {
            out.push(p.title.as_str());
            level = p.level;
        }
    }
    out.reverse();
    out
}

/// The rows to index for a handbook's sections: one per section that has
/// text of its own. A heading-only section gets none; its heading is
/// context in the rows of the sections under it.
pub fn index_rows(sections: &[Section]) -> Vec<IndexRow> {
    let mut out = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let text = plain_text(&s.body);
        if text.is_empty() {
            continue;
        }
        let mut body = index_text(&text);
        for c in context(sections, i) {
            body.push_str(" \n ");
            body.push_str(&index_text(c));
        }
        out.push(IndexRow {
            section: s.index,
            title: index_text(&s.title),
            body,
        });
    }
    out
}

/// One term of a query, as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A run of CJK characters, matched as adjacent characters.
    Cjk(String),
    /// A Latin word (letters and digits), matched case-insensitively as a
    /// prefix.
    Word(String),
}

/// Splits a query into terms. Whitespace and punctuation separate terms; a
/// change between CJK and Latin script does too. Full-width letters and
/// digits are read as their ASCII forms.
pub fn terms(query: &str) -> Vec<Term> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut cur_cjk = false;
    let flush = |cur: &mut String, cjk: bool, out: &mut Vec<Term>| {
        if !cur.is_empty() {
            let t = std::mem::take(cur);
            out.push(if cjk {
                Term::Cjk(t)
            } else {
                Term::Word(t.to_lowercase())
            });
        }
    };
    for c in query.chars().map(half_width) {
        if is_cjk(c) {
            if !cur_cjk {
                flush(&mut cur, false, &mut out);
            }
            cur_cjk = true;
            cur.push(c);
        } else if c.is_alphanumeric() {
            if cur_cjk {
                flush(&mut cur, true, &mut out);
            }
            cur_cjk = false;
            cur.push(c);
        } else {
            flush(&mut cur, cur_cjk, &mut out);
        }
    }
    flush(&mut cur, cur_cjk, &mut out);
    let mut seen = Vec::new();
    out.retain(|t| {
        if seen.contains(t) {
            false
        } else {
            seen.push(t.clone());
            true
        }
    });
    out
}

/// The FTS5 MATCH expression for the terms (all must match), or `None` if
/// there is nothing to search for.
pub fn fts_query(terms: &[Term]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    let parts: Vec<String> = terms
        .iter()
        .map(|t| match t {
            Term::Cjk(s) => {
                let spaced: Vec<String> = s.chars().map(String::from).collect();
                format!("\"{}\"", spaced.join(" "))
            }
            // Words hold only letters and digits, so quoting is safe.
            Term::Word(w) => format!("\"{w}\"*"),
        })
        .collect();
    Some(parts.join(" AND "))
}

/// A search hit: a section with text of its own.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub handbook_id: String,
    pub handbook_title: String,
    pub section: usize,
    pub section_title: String,
    /// The section's heading, HTML-escaped, matches in `<mark>`.
    pub title_html: String,
    /// The headings the section sits under, outermost first, HTML-escaped,
    /// matches in `<mark>`.
    pub context_html: Vec<String>,
    /// Plain text from the section, cut around the best match at word or
    /// punctuation boundaries, HTML-escaped, matches in `<mark>`.
    pub snippet: String,
    /// BM25 (higher is better) among the hits of its tier: with more than
    /// [`TIERED_ABOVE`] matches, hits whose own heading matches come first
    /// (see [`page`]). The order of the hits is the ranking.
    pub score: f64,
}

/// One page of results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Page {
    /// How many sections match in all.
    pub total: usize,
    /// The hits from `offset`, best first.
    pub hits: Vec<Hit>,
}

fn escape_into(out: &mut String, chars: &[char]) {
    for &c in chars {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// Char positions `[start, end)` where the terms occur in `chars`, with the
/// index of the term.
fn matches(chars: &[char], terms: &[Term]) -> Vec<(usize, usize, usize)> {
    let folded: Vec<char> = chars.iter().map(|&c| fold(c)).collect();
    let mut found = Vec::new();
    for (ti, t) in terms.iter().enumerate() {
        let (needle, word): (Vec<char>, bool) = match t {
            Term::Cjk(s) => (s.chars().map(fold).collect(), false),
            Term::Word(w) => (w.chars().map(fold).collect(), true),
        };
        if needle.is_empty() || needle.len() > folded.len() {
            continue;
        }
        let mut i = 0;
        while i + needle.len() <= folded.len() {
            let at_word_start = !word || i == 0 || !is_word_char(folded[i - 1]);
            if at_word_start && folded[i..i + needle.len()] == needle[..] {
                let mut end = i + needle.len();
                if word {
                    while end < folded.len() && is_word_char(folded[end]) {
                        end += 1;
                    }
                }
                found.push((i, end, ti));
                i = end;
            } else {
                i += 1;
            }
        }
    }
    found.sort_unstable();
    // Drop overlaps, keeping the earlier match.
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    for m in found {
        if out.last().is_none_or(|l| m.0 >= l.1) {
            out.push(m);
        }
    }
    out
}

/// `text` HTML-escaped with every match of the terms in `<mark>`.
pub fn mark(text: &str, terms: &[Term]) -> String {
    let chars: Vec<char> = text.chars().collect();
    marked(&chars, &matches(&chars, terms), 0, chars.len())
}

fn marked(chars: &[char], ms: &[(usize, usize, usize)], start: usize, end: usize) -> String {
    let mut out = String::new();
    let mut pos = start;
    for &(s, e, _) in ms.iter().filter(|m| m.0 >= start && m.1 <= end) {
        escape_into(&mut out, &chars[pos..s]);
        out.push_str("<mark>");
        escape_into(&mut out, &chars[s..e]);
        out.push_str("</mark>");
        pos = e;
    }
    escape_into(&mut out, &chars[pos..end]);
    out
}

/// Punctuation after which a Chinese or English snippet may start or end.
fn is_break(c: char) -> bool {
    matches!(
        c,
        '。' | '，'
            | '、'
            | '；'
            | '：'
            | '！'
            | '？'
            | '）'
            | '」'
            | '”'
            | '.'
            | ','
            | ';'
            | ':'
            | '!'
            | '?'
            | ')'
    )
}

/// How far (in characters) a cut may move to reach punctuation.
const SLACK: usize = 12;

/// A start position at or a little after `at` (never past `limit`) where no
/// word is cut: after punctuation or a space, or before a CJK character.
fn start_boundary(chars: &[char], at: usize, limit: usize) -> usize {
    if at == 0 {
        return 0;
    }
    // Punctuation or a space shortly before `at`: start right after it.
    for i in (at.saturating_sub(SLACK)..at).rev() {
        if is_break(chars[i]) || chars[i] == ' ' {
            return i + 1;
        }
    }
    // Otherwise the first place at or after `at` that starts a word.
    let mut i = at;
    while i < limit && is_word_char(chars[i]) && i > 0 && is_word_char(chars[i - 1]) {
        i += 1;
    }
    i
}

/// An end position at or a little before `at` (never before `floor`) where
/// no word is cut: after punctuation, before a space, or after a CJK
/// character.
fn end_boundary(chars: &[char], at: usize, floor: usize) -> usize {
    if at >= chars.len() {
        return chars.len();
    }
    for i in (at.saturating_sub(SLACK).max(floor)..at).rev() {
        if is_break(chars[i]) {
            return i + 1;
        }
    }
    let mut i = at;
    while i > floor && is_word_char(chars[i]) && is_word_char(chars[i - 1]) {
        i -= 1;
    }
    if i == floor {
        // One long word: end after it instead.
        i = at;
        while i < chars.len() && is_word_char(chars[i]) {
            i += 1;
        }
    }
    i
}

/// Cuts a snippet of about `width` characters of `text` (plain text, see
/// [`plain_text`]) around the place where most of the terms occur close
/// together, and marks every match in it. Without a match the snippet is the
/// text's beginning.
pub fn snippet(text: &str, terms: &[Term], width: usize) -> String {
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if c == ' ' && chars.last().is_none_or(|&l| l == ' ') {
            continue;
        }
        chars.push(c);
    }
    while chars.last() == Some(&' ') {
        chars.pop();
    }
    let ms = matches(&chars, terms);
    // The match that has the most distinct terms within the next
    // three-quarters of a window (the earliest of equals).
    let reach = width * 3 / 4;
    let mut anchor = None;
    let mut best = 0;
    for (k, m) in ms.iter().enumerate().take(400) {
        let mut seen = 0u64;
        for n in &ms[k..] {
            if n.0 > m.0 + reach {
                break;
            }
            seen |= 1 << (n.2 % 64);
        }
        let distinct = seen.count_ones();
        if distinct > best {
            best = distinct;
            anchor = Some(*m);
        }
    }
    let (start, end) = match anchor {
        None => (0, end_boundary(&chars, width.min(chars.len()), 0)),
        Some((s, e, _)) => {
            let lead = width / 4;
            // Show a full window when the text allows it.
            let want = s
                .saturating_sub(lead)
                .min(chars.len().saturating_sub(width));
            let start = start_boundary(&chars, want, s);
            let end = end_boundary(&chars, (start + width).max(e).min(chars.len()), e);
            (start, end)
        }
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let body = marked(&chars, &ms, start, end);
    out.push_str(body.trim());
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// Matches above which a page is ranked in two tiers: the sections whose
/// own heading matches the query, then the others (each by BM25). FTS5
/// scores every match before it can sort (a lookup of the row's size per
/// match, about 0.4 µs); a query matching tens of thousands of sections
/// (的, 志愿者 in a 50 MB library) took 25–35 ms for BM25 alone. Ranking
/// the heading matches alone scores far fewer rows, and the rest are
/// scored only when a page reaches past them. Below this many matches (any
/// library of a few handbooks) BM25 ranks all matches at once, as the
/// heading's weight ([`TITLE_WEIGHT`]) already puts heading matches first
/// nearly always (BENCHMARKS.md, search at 50 MB).
pub const TIERED_ABOVE: usize = 2000;

/// What [`index_rows`] puts into the index, as a version: a handbook
/// indexed by an older version (or never) is indexed again when the store
/// opens ([`stale_handbooks`]). Bump it whenever `index_rows`,
/// [`index_text`] or the FTS table's tokens change.
/// 1: raw Markdown, one row per section (before issue 12, never recorded);
/// 2: rendered text, heading-only sections as context (issue 12).
pub const INDEXER_VERSION: i64 = 2;

/// The `settings` key holding the indexer version a handbook was indexed
/// with, followed by the handbook's id.
pub(crate) const INDEXED_KEY: &str = "search.indexed:";

/// Records that `handbook`'s rows in the index were just written by this
/// indexer version (called by the handbook projection, in its
/// transaction).
pub(crate) fn mark_indexed(conn: &Connection, handbook: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO settings (key, value) VALUES (?1 || ?2, ?3)")?
        .execute(params![INDEXED_KEY, handbook, INDEXER_VERSION.to_string()])?;
    Ok(())
}

/// Handbooks whose index rows are missing or were written by another
/// indexer version: one query over the handbooks (a profile holds a few
/// dozen at most). In the order their sections were written, so that
/// indexing them again keeps that order (BM25 ties go by rowid).
pub(crate) fn stale_handbooks(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT h.id FROM handbooks h LEFT JOIN settings s ON s.key = ?1 || h.id
         WHERE s.value IS NOT ?2
         ORDER BY (SELECT rowid FROM sections x WHERE x.handbook_id = h.id AND x.idx = 0), h.id",
    )?;
    let rows = st.query_map(params![INDEXED_KEY, INDEXER_VERSION.to_string()], |r| {
        r.get::<_, String>(0)
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

impl crate::Store {
    /// Indexes again every handbook whose index is missing or older than
    /// [`INDEXER_VERSION`] (a profile upgraded from an older version), from
    /// its document, in one transaction. Called when the store opens;
    /// returns how many were indexed (0 after one query when none is
    /// stale).
    pub(crate) fn refresh_search_index(&mut self) -> Result<usize> {
        if stale_handbooks(self.conn())?.is_empty() {
            return Ok(0);
        }
        let actor = self.actor().clone();
        self.immediate(|tx| {
            let mut n = 0;
            for id in stale_handbooks(tx)? {
                let Ok(doc_id) = DocId::parse(&id, "handbook") else {
                    continue;
                };
                if let Some((DocKind::Handbook, mut doc)) =
                    crate::store::load_doc_in(tx, &doc_id, &actor)?
                {
                    crate::projection::refresh(tx, &doc_id, DocKind::Handbook, &mut doc)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }
}

/// The rowids and BM25 ranks (lower is better) of `limit` matches of the
/// MATCH expression `fts` from `offset`, best first.
fn ranked(conn: &Connection, fts: &str, offset: usize, limit: usize) -> Result<Vec<(i64, f64)>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare_cached(
        "SELECT rowid, bm25(sections_fts, ?4, 1.0) AS rank FROM sections_fts
         WHERE sections_fts MATCH ?1 ORDER BY rank LIMIT ?2 OFFSET ?3",
    )?;
    let rows = st.query_map(
        params![fts, limit as i64, offset as i64, TITLE_WEIGHT],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

fn count(conn: &Connection, fts: &str) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM sections_fts WHERE sections_fts MATCH ?1")?
        .query_row([fts], |r| r.get(0))?;
    Ok(n as usize)
}

/// The rowids and ranks of the page: all matches by BM25 when there are
/// at most [`TIERED_ABOVE`], else the heading matches first.
fn page_rows(
    conn: &Connection,
    fts: &str,
    total: usize,
    offset: usize,
    limit: usize,
) -> Result<Vec<(i64, f64)>> {
    if total <= TIERED_ABOVE {
        return ranked(conn, fts, offset, limit);
    }
    let heading = format!("{{title}} : ({fts})");
    let mut out = ranked(conn, &heading, offset, limit)?;
    if out.len() == limit {
        return Ok(out);
    }
    // Fewer than a page: the heading matches end on this page (or before).
    let in_heading = if !out.is_empty() || offset == 0 {
        offset + out.len()
    } else {
        count(conn, &heading)?
    };
    // With no heading match the rest is every match (no NOT to evaluate).
    let rest = if in_heading == 0 {
        fts.to_owned()
    } else {
        format!("({fts}) NOT {heading}")
    };
    out.extend(ranked(
        conn,
        &rest,
        offset.saturating_sub(in_heading),
        limit - out.len(),
    )?);
    Ok(out)
}

/// Searches handbook sections: how many match in all, and `limit` hits
/// from `offset`, best first (see [`crate::Store::search_page`]).
pub(crate) fn page(conn: &Connection, query: &str, offset: usize, limit: usize) -> Result<Page> {
    let terms = terms(query);
    let Some(fts) = fts_query(&terms) else {
        return Ok(Page {
            total: 0,
            hits: Vec::new(),
        });
    };
    // Rank inside the index alone, then read the few rows of the page:
    // joining first would carry every match's text through the sort. The
    // total is a count of its own (cheaper than materialising the matches
    // for a window count).
    let total = count(conn, &fts)?;
    if total == 0 || offset >= total {
        return Ok(Page {
            total,
            hits: Vec::new(),
        });
    }
    let mut row = conn.prepare_cached(
        "SELECT s.handbook_id, h.title, s.idx, s.level, s.title, s.body
         FROM sections s JOIN handbooks h ON h.id = s.handbook_id WHERE s.rowid = ?1",
    )?;
    let mut out = Vec::new();
    for (rowid, rank) in page_rows(conn, &fts, total, offset, limit)? {
        let (hid, htitle, idx, level, stitle, body) = row.query_row([rowid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u8>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let context = section_context(conn, &hid, rowid, idx, level)?;
        let text = plain_text(&body);
        out.push(Hit {
            handbook_id: hid,
            handbook_title: htitle,
            section: idx as usize,
            title_html: mark(&stitle, &terms),
            context_html: context.iter().map(|c| mark(c, &terms)).collect(),
            snippet: snippet(&text, &terms, 90),
            section_title: stitle,
            score: -rank,
        });
    }
    Ok(Page { total, hits: out })
}

/// The headings section `idx` of a handbook sits under, outermost first.
/// A handbook's sections are inserted together, in order, so the rows
/// before it are the `idx` rowids just below its own: read them as a
/// range of the table (no index lookup per row), nearest first.
fn section_context(
    conn: &Connection,
    handbook: &str,
    rowid: i64,
    idx: i64,
    level: u8,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if level <= 1 {
        return Ok(out);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT level, title, handbook_id = ?3 FROM sections
         WHERE rowid < ?1 AND rowid >= ?1 - ?2 ORDER BY rowid DESC",
    )?;
    let mut rows = stmt.query(params![rowid, idx, handbook])?;
    let mut level = level;
    while let Some(r) = rows.next()? {
        if !r.get::<_, bool>(2)? {
            break;
        }
        let l: u8 = r.get(0)?;
        if l > 0 && l < level {
            out.push(r.get::<_, String>(1)?);
            level = l;
            if level <= 1 {
                break;
            }
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_is_spaced_and_latin_is_kept() {
        assert_eq!(index_text("心理PFA急救"), " 心  理 PFA 急  救 ");
        assert_eq!(index_text("ＰＦＡ　１２０"), "PFA 120");
    }

    #[test]
    fn queries_split_by_script_and_space() {
        assert_eq!(
            terms("心理 Safety, PLAN危机"),
            [
                Term::Cjk("心理".into()),
                Term::Word("safety".into()),
                Term::Word("plan".into()),
                Term::Cjk("危机".into())
            ]
        );
        assert_eq!(
            fts_query(&terms("心理 plan")).unwrap(),
            "\"心 理\" AND \"plan\"*"
        );
        assert_eq!(fts_query(&terms(" \"*) ")), None);
        assert_eq!(terms("ＰＦＡ，心理"), terms("pfa 心理"));
        assert_eq!(terms("心理 pfa 心理"), terms("心理 pfa"));
    }

    #[test]
    fn snippets_mark_matches_and_escape_markup() {
        let s = snippet(
            "志愿者<b>要</b>倾听 Listening 并记录。",
            &terms("倾听 listen"),
            40,
        );
        assert_eq!(
            s,
            "志愿者&lt;b&gt;要&lt;/b&gt;<mark>倾听</mark> <mark>Listening</mark> 并记录。"
        );
        let long = format!("{}危机{}", "甲".repeat(50), "乙".repeat(50));
        let s = snippet(&long, &terms("危机"), 20);
        assert!(
            s.starts_with('…') && s.ends_with('…') && s.contains("<mark>危机</mark>"),
            "{s}"
        );
    }

    #[test]
    fn plain_text_has_no_markdown_marks() {
        let t = plain_text(
            "**谈论自杀不会**增加风险。\n\n- 一\n- `二`\n\n> 引用\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[链接](https://x.example) <b>粗</b>",
        );
        assert_eq!(t, "谈论自杀不会增加风险。 一 二 引用 a b 1 2 链接 粗");
    }

    fn sec(index: usize, level: u8, title: &str, body: &str) -> Section {
        Section {
            index,
            level,
            title: title.into(),
            body: body.into(),
        }
    }

    #[test]
    fn heading_only_sections_are_context_not_rows() {
        let s = vec![
            sec(0, 0, "手册", "前言。"),
            sec(1, 2, "第一章 倾听", ""),
            sec(2, 3, "1.1 复述", "复述来电者的话。"),
            sec(3, 4, "1.1.1 例子", "例子。"),
            sec(4, 3, "1.2 沉默", "**沉默**也是回应。"),
            sec(5, 2, "第二章", "正文。"),
        ];
        assert_eq!(context(&s, 3), ["第一章 倾听", "1.1 复述"]);
        assert_eq!(context(&s, 4), ["第一章 倾听"]);
        assert!(context(&s, 5).is_empty() && context(&s, 0).is_empty());
        let rows = index_rows(&s);
        let idx: Vec<usize> = rows.iter().map(|r| r.section).collect();
        assert_eq!(idx, [0, 2, 3, 4, 5]);
        assert!(rows[3].body.contains(" 倾  听 ") && !rows[3].body.contains('*'));
        assert_eq!(rows[3].title, index_text("1.2 沉默"));
    }
}
