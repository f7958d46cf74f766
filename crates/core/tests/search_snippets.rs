//! Snippets as a volunteer reads them in the result list: plain text (no
//! Markdown marks), cut at word boundaries in English and at punctuation or
//! a character boundary in Chinese, every match marked, full-width queries
//! folded.

#[path = "common/ranking.rs"]
#[allow(dead_code)] // this test uses only the library
mod ranking;

use heartbridge_core::search::{self, plain_text, snippet, terms};
use heartbridge_core::{DocId, Store};

/// The snippet's text as shown: marks and ellipses dropped, entities read.
fn shown(s: &str) -> String {
    s.replace("<mark>", "")
        .replace("</mark>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn marked_parts(s: &str) -> Vec<String> {
    s.split("<mark>")
        .skip(1)
        .map(|p| p.split("</mark>").next().unwrap_or("").to_owned())
        .collect()
}

fn section_text(store: &Store, h: &search::Hit) -> String {
    let id = DocId::parse(&h.handbook_id, "handbook").unwrap();
    plain_text(&store.section(&id, h.section).unwrap().body)
}

const QUERIES: &[&str] = &[
    "自杀",
    "倾听",
    "谈论自杀",
    "安全计划",
    "保密",
    "督导",
    "PFA",
    "suicide",
    "listening",
    "confidentiality",
    "safety plan",
    "referral",
    "supervisor",
    "notes",
];

#[test]
fn snippets_have_no_markdown_marks_and_no_stray_separator() {
    let (_dir, store) = ranking::library();
    for q in QUERIES {
        let hits = store.search(q, 30).unwrap();
        assert!(!hits.is_empty(), "{q:?} finds nothing");
        for h in &hits {
            let text = shown(&h.snippet);
            for bad in ["**", "__", "##", "`", "](", "|", " · ", "\n"] {
                assert!(!text.contains(bad), "{q:?}: {bad:?} in {:?}", h.snippet);
            }
            assert!(
                !text.trim_start_matches('…').starts_with("- ")
                    && !text.trim_start_matches('…').starts_with("> "),
                "{q:?}: list or quote mark in {:?}",
                h.snippet
            );
            // The snippet is the section's text, not its heading again.
            assert!(
                section_text(&store, h).contains(text.trim_matches('…')),
                "{q:?}: {:?} is not cut from the section's text",
                h.snippet
            );
        }
    }
    // The bold sentence the issue saw with its asterisks.
    let hits = store.search("谈论自杀不会", 5).unwrap();
    assert!(
        hits[0].snippet.contains("<mark>谈论自杀不会</mark>"),
        "{}",
        hits[0].snippet
    );
}

#[test]
fn english_snippets_start_and_end_on_word_boundaries() {
    let (_dir, store) = ranking::library();
    let word = |c: char| c.is_alphanumeric();
    let mut cut = 0;
    for q in [
        "suicide",
        "listening",
        "confidentiality",
        "referral",
        "supervisor",
        "notes",
        "safety plan",
    ] {
        for h in store.search(q, 30).unwrap() {
            let full = section_text(&store, &h);
            let text = shown(&h.snippet);
            let inner = text.trim_matches('…');
            let at = full
                .find(inner)
                .unwrap_or_else(|| panic!("{q:?}: {text:?} not in the text"));
            let before = full[..at].chars().next_back();
            let after = full[at + inner.len()..].chars().next();
            assert!(
                !(before.is_some_and(word) && inner.starts_with(word)),
                "{q:?}: starts mid-word: {text:?}"
            );
            assert!(
                !(after.is_some_and(word) && inner.ends_with(word)),
                "{q:?}: ends mid-word: {text:?}"
            );
            if text.starts_with('…') || text.ends_with('…') {
                cut += 1;
            }
        }
    }
    assert!(
        cut > 10,
        "only {cut} snippets were cut: the test saw no boundaries"
    );
}

#[test]
fn chinese_snippets_are_cut_at_punctuation_when_it_is_near() {
    let text = "来电者第一次打来时情绪很低落，说话断断续续。志愿者先倾听，再用复述确认自己听懂了，\
                然后温和地问起最近的睡眠和饮食，最后和来电者一起商量下一次联系的时间和方式，并记录在个案里。";
    let s = snippet(text, &terms("复述"), 30);
    let inner = shown(&s);
    assert!(inner.starts_with('…') && inner.ends_with('…'), "{s}");
    let inner = inner.trim_matches('…');
    // Starts right after a punctuation mark, ends right after one.
    let at = text.find(inner).unwrap();
    let before = text[..at].chars().next_back().unwrap();
    assert!("，。".contains(before), "starts after {before:?}: {s}");
    assert!(inner.ends_with(['，', '。']), "{s}");
    assert!(s.contains("<mark>复述</mark>"));
    // Without punctuation nearby the cut falls between two characters.
    let plain = "甲".repeat(60) + "危机" + &"乙".repeat(60);
    let s = snippet(&plain, &terms("危机"), 20);
    assert!(shown(&s).chars().filter(|&c| c != '…').count() >= 20, "{s}");
}

#[test]
fn every_match_in_a_snippet_is_marked() {
    let (_dir, store) = ranking::library();
    for q in [
        "自杀",
        "倾听",
        "督导",
        "suicide",
        "listening",
        "safety plan",
    ] {
        let ts = terms(q);
        for h in store.search(q, 30).unwrap() {
            let text = shown(&h.snippet).to_lowercase();
            let mut expected = 0;
            for t in &ts {
                let needle = match t {
                    search::Term::Cjk(s) | search::Term::Word(s) => s.as_str(),
                };
                expected += text.matches(needle).count();
            }
            let marks = marked_parts(&h.snippet);
            assert_eq!(marks.len(), expected, "{q:?}: {}", h.snippet);
        }
    }
}

#[test]
fn full_width_queries_find_what_half_width_ones_do() {
    let (_dir, store) = ranking::library();
    let half = store.search_page("PFA", 0, 50).unwrap();
    let full = store.search_page("ＰＦＡ", 0, 50).unwrap();
    assert!(half.total > 0);
    assert_eq!(half, full);
    assert!(full
        .hits
        .iter()
        .any(|h| h.snippet.contains("<mark>PFA</mark>")));
    let mixed = store.search_page("ｓｕｉｃｉｄｅ", 0, 5).unwrap();
    assert_eq!(mixed, store.search_page("suicide", 0, 5).unwrap());
    // Full-width text in a section is found by a half-width query too.
    let s = snippet("请拨打１２０或联系ＰＦＡ小组。", &terms("pfa 120"), 40);
    assert_eq!(
        s,
        "请拨打<mark>１２０</mark>或联系<mark>ＰＦＡ</mark>小组。"
    );
}

#[test]
fn titles_and_context_are_marked_but_are_not_hits_of_their_own() {
    let (_dir, store) = ranking::library();
    let hits = store.search("倾听", 30).unwrap();
    assert!(hits.iter().all(|h| h.section_title != "积极倾听的核心技术"));
    let under = hits
        .iter()
        .find(|h| h.section_title == "倾听是一种主动的工作")
        .expect("the first subsection under the heading-only chapter");
    assert_eq!(under.context_html, ["积极<mark>倾听</mark>的核心技术"]);
    assert!(under.title_html.contains("<mark>倾听</mark>"));
}
