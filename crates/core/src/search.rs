//! Full-text search that works for Chinese.
//!
//! SQLite's FTS5 tokenizers either keep a run of Han characters as one token
//! (`unicode61`) or need three characters (`trigram`), but most Chinese
//! words are one or two characters. So before indexing, every CJK character
//! is set apart by spaces and becomes its own token; a query's CJK run
//! becomes an FTS5 phrase of single characters, which matches exactly those
//! characters adjacent, in order. Latin words stay whole words, folded to
//! lower case by `unicode61`, and match as prefixes. Several terms must all
//! match. Ranking is FTS5's BM25 with section titles weighted above bodies.
//!
//! The FTS table is contentless: it stores only the index; snippets are cut
//! from the section text in `sections` and marked with `<mark>` here.

use serde::Serialize;

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

/// The text handed to the FTS index: CJK characters spaced apart.
pub fn index_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
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
/// change between CJK and Latin script does too.
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
    for c in query.chars() {
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
    out.dedup();
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

/// A search hit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub handbook_id: String,
    pub handbook_title: String,
    pub section: usize,
    pub section_title: String,
    /// Text around the first match, HTML-escaped, matches in `<mark>`.
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
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

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Char positions `[start, end)` where the terms occur in `chars`.
fn matches(chars: &[char], terms: &[Term]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for t in terms {
        let (needle, word): (Vec<char>, bool) = match t {
            Term::Cjk(s) => (s.chars().collect(), false),
            Term::Word(w) => (w.chars().collect(), true),
        };
        if needle.is_empty() || needle.len() > chars.len() {
            continue;
        }
        let mut i = 0;
        while i + needle.len() <= chars.len() {
            let at_word_start = !word || i == 0 || !chars[i - 1].is_alphanumeric();
            if at_word_start
                && chars[i..i + needle.len()]
                    .iter()
                    .zip(&needle)
                    .all(|(a, b)| fold(*a) == *b)
            {
                let mut end = i + needle.len();
                if word {
                    while end < chars.len() && chars[end].is_alphanumeric() && !is_cjk(chars[end]) {
                        end += 1;
                    }
                }
                found.push((i, end));
                i = end;
            } else {
                i += 1;
            }
        }
    }
    found.sort_unstable();
    // Drop overlaps, keeping the earlier match.
    let mut out: Vec<(usize, usize)> = Vec::new();
    for m in found {
        if out.last().is_none_or(|l| m.0 >= l.1) {
            out.push(m);
        }
    }
    out
}

/// Cuts a snippet of about `width` characters around the first match in
/// `text` and marks every match in it.
pub fn snippet(text: &str, terms: &[Term], width: usize) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    let ms = matches(&chars, terms);
    let first = ms.first().map_or(0, |m| m.0);
    // Start a little before the first match, but show a full window when
    // the text allows it.
    let start = first
        .saturating_sub(width / 4)
        .min(chars.len().saturating_sub(width));
    let end = (start + width).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    for &(s, e) in ms.iter().filter(|m| m.0 >= start && m.1 <= end) {
        escape_into(&mut out, &chars[pos..s].iter().collect::<String>());
        out.push_str("<mark>");
        escape_into(&mut out, &chars[s..e].iter().collect::<String>());
        out.push_str("</mark>");
        pos = e;
    }
    escape_into(&mut out, &chars[pos..end].iter().collect::<String>());
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_is_spaced_and_latin_is_kept() {
        assert_eq!(index_text("心理PFA急救"), " 心  理 PFA 急  救 ");
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
}
