//! Handbooks: Markdown with front matter, kept as one Automerge document
//! whose `source` is a Text. Re-importing a revised file rewrites `source`
//! as a character diff, so the document keeps its id and a sync carries only
//! what changed. Sections are derived from the headings at read time.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT};
use serde::Serialize;

use crate::docvalue::{object, put_str_if_changed, string, text};
use crate::error::{Error, Result};

/// A handbook file as parsed, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HandbookSource {
    pub slug: String,
    pub title: String,
    pub language: String,
    pub version: String,
    /// The Markdown body after the front matter.
    pub body: String,
}

/// One section: a heading and the text up to the next heading.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Section {
    pub index: usize,
    pub level: u8,
    pub title: String,
    pub body: String,
}

/// A handbook as the reader sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Handbook {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub language: String,
    pub version: String,
    pub sections: Vec<Section>,
}

fn is_cjk_text(s: &str) -> bool {
    s.chars().any(crate::search::is_cjk)
}

/// Parses a handbook file. `path` names the file for errors and gives the
/// slug when the front matter has none.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<HandbookSource> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: path.to_owned(),
        offset: e.valid_up_to(),
    })?;
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let (front, body) = split_front_matter(&text).map_err(|reason| Error::HandbookFormat {
        path: path.to_owned(),
        reason: reason.into(),
    })?;
    let get = |key: &str| {
        front
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let sections = split_sections(body, "");
    let title = get("title")
        .or_else(|| {
            sections
                .iter()
                .find(|s| s.level > 0)
                .map(|s| s.title.clone())
        })
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if body.trim().is_empty() {
        return Err(Error::HandbookFormat {
            path: path.to_owned(),
            reason: "the handbook has no text after its front matter".into(),
        });
    }
    let slug = get("slug")
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| title.clone());
    let language = get("language")
        .unwrap_or_else(|| if is_cjk_text(body) { "zh-CN" } else { "en" }.to_owned());
    Ok(HandbookSource {
        slug,
        title,
        language,
        version: get("version").unwrap_or_else(|| "1".into()),
        body: body.to_owned(),
    })
}

type FrontMatter = Vec<(String, String)>;

fn split_front_matter(text: &str) -> Result<(FrontMatter, &str), &'static str> {
    let Some(rest) = text.strip_prefix("---\n") else {
        return Ok((Vec::new(), text));
    };
    let end = rest
        .find("\n---\n")
        .map(|i| (i, i + 5))
        .or_else(|| rest.strip_suffix("\n---").map(|r| (r.len(), rest.len())))
        .ok_or("the front matter that starts with --- is never closed by a --- line")?;
    let mut fields = Vec::new();
    for line in rest[..end.0].lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or("a front matter line is not `key: value`")?;
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        fields.push((k.trim().to_ascii_lowercase(), v.to_owned()));
    }
    Ok((fields, &rest[end.1..]))
}

/// Splits Markdown into sections at ATX headings (outside code fences).
/// Text before the first heading becomes section 0 titled `intro_title`.
pub fn split_sections(body: &str, intro_title: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut current = Section {
        index: 0,
        level: 0,
        title: intro_title.to_owned(),
        body: String::new(),
    };
    let mut fence = false;
    for line in body.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = !fence;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        let is_heading = !fence
            && (1..=6).contains(&hashes)
            && line.len() - trimmed.len() < 4
            && trimmed[hashes..].starts_with([' ', '\t']);
        if is_heading {
            if current.level > 0 || !current.body.trim().is_empty() {
                current.body = current.body.trim().to_owned();
                out.push(current);
            }
            current = Section {
                index: out.len(),
                level: hashes as u8,
                title: trimmed[hashes..]
                    .trim()
                    .trim_end_matches('#')
                    .trim()
                    .to_owned(),
                body: String::new(),
            };
        } else {
            current.body.push_str(line);
            current.body.push('\n');
        }
    }
    if current.level > 0 || !current.body.trim().is_empty() {
        current.body = current.body.trim().to_owned();
        out.push(current);
    }
    for (i, s) in out.iter_mut().enumerate() {
        s.index = i;
    }
    out
}

fn am(e: automerge::AutomergeError) -> Error {
    Error::Document {
        id: "handbook".into(),
        source: Box::new(e),
    }
}

/// Writes a parsed handbook into its document: new fields are put, the body
/// is updated as a character diff. Unchanged fields make no ops.
pub fn write(doc: &mut AutoCommit, src: &HandbookSource) -> Result<()> {
    put_str_if_changed(doc, &ROOT, "kind", "handbook").map_err(am)?;
    put_str_if_changed(doc, &ROOT, "slug", &src.slug).map_err(am)?;
    put_str_if_changed(doc, &ROOT, "title", &src.title).map_err(am)?;
    put_str_if_changed(doc, &ROOT, "language", &src.language).map_err(am)?;
    put_str_if_changed(doc, &ROOT, "version", &src.version).map_err(am)?;
    let source = match object(doc, &ROOT, "source", ObjType::Text) {
        Some(t) => t,
        None => doc.put_object(ROOT, "source", ObjType::Text).map_err(am)?,
    };
    doc.update_text(&source, &src.body).map_err(am)
}

/// Reads a handbook document.
pub fn read(doc: &AutoCommit, id: &str) -> Handbook {
    let title = string(doc, &ROOT, "title").unwrap_or_default();
    let body = text(doc, &ROOT, "source").unwrap_or_default();
    Handbook {
        id: id.to_owned(),
        slug: string(doc, &ROOT, "slug").unwrap_or_default(),
        sections: split_sections(&body, &title),
        title,
        language: string(doc, &ROOT, "language").unwrap_or_default(),
        version: string(doc, &ROOT, "version").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "---\ntitle: 热线守则\nlanguage: zh-CN\nversion: 1.0\nslug: hotline\n---\n\n前言文字。\n\n## 第一章 保密\n\n保密原则。\n\n### 1.1 例外\n\n危机时例外。\n\n```\n# 不是标题\n```\n## 第二章\n倾听。\n";

    #[test]
    fn front_matter_and_sections() {
        let h = parse(Path::new("x.md"), FILE.as_bytes()).unwrap();
        assert_eq!(
            (h.slug.as_str(), h.title.as_str(), h.version.as_str()),
            ("hotline", "热线守则", "1.0")
        );
        let s = split_sections(&h.body, &h.title);
        let titles: Vec<_> = s.iter().map(|s| (s.level, s.title.as_str())).collect();
        assert_eq!(
            titles,
            [
                (0, "热线守则"),
                (2, "第一章 保密"),
                (3, "1.1 例外"),
                (2, "第二章")
            ]
        );
        assert!(s[2].body.contains("# 不是标题"));
        assert_eq!(s[0].body, "前言文字。");
    }

    #[test]
    fn missing_front_matter_falls_back_to_file_name_and_heading() {
        let h = parse(
            Path::new("/x/crisis-guide.md"),
            "# Crisis guide\n\nText.".as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (h.slug.as_str(), h.title.as_str(), h.language.as_str()),
            ("crisis-guide", "Crisis guide", "en")
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let e = parse(Path::new("a.md"), b"## ok\n\xff\xfe bad").unwrap_err();
        assert!(matches!(e, Error::NotUtf8 { offset: 6, .. }), "{e}");
        let e = parse(Path::new("a.md"), b"---\ntitle: x\n\n## body").unwrap_err();
        assert_eq!(e.kind(), "handbook_format");
        let e = parse(Path::new("a.md"), b"---\ntitle: x\n---\n  \n").unwrap_err();
        assert_eq!(e.kind(), "handbook_format");
    }

    #[test]
    fn reimport_changes_only_the_difference() {
        let mut doc = AutoCommit::new();
        let v1 = parse(Path::new("x.md"), FILE.as_bytes()).unwrap();
        write(&mut doc, &v1).unwrap();
        doc.commit();
        let heads = doc.get_heads();
        let v2 = parse(
            Path::new("x.md"),
            FILE.replace("保密原则。", "保密原则及其限度。")
                .replace("1.0", "1.1")
                .as_bytes(),
        )
        .unwrap();
        write(&mut doc, &v2).unwrap();
        doc.commit();
        let delta = doc.save_after(&heads);
        assert!(delta.len() < 200, "delta {} bytes", delta.len());
        let h = read(&doc, "id");
        assert_eq!(h.version, "1.1");
        assert_eq!(h.sections[1].body, "保密原则及其限度。");
        // Re-importing the same text makes no change at all.
        let heads = doc.get_heads();
        write(&mut doc, &v2).unwrap();
        assert!(doc.commit().is_none());
        assert_eq!(doc.get_heads(), heads);
    }
}
