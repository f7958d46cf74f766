//! Search over the real sample handbooks: a table of Chinese, English and
//! mixed queries with the sections each must find.

use std::path::PathBuf;

use heartbridge_core::Store;

fn library() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::init(
        &dir.path().join("p"),
        "测试",
        &heartbridge_core::testing::protection(),
    )
    .unwrap();
    let handbooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks");
    let imported = store.import_handbooks(&[handbooks]).unwrap();
    assert!(imported.len() >= 4);
    (dir, store)
}

/// (query, handbook slug, section title that must be among the first five)
const MUST_FIND: &[(&str, &str, &str)] = &[
    // one character
    ("梦", "hotline-work-rules", "需要留意的信号"),
    // (the chapter 睡眠、疲劳与失眠 is a heading only: the hit is a passage under it)
    ("睡", "closed-loop-pfa", "闭环中的睡眠为什么容易出问题"),
    // two characters
    ("焦虑", "hotline-work-rules", "考前学生"),
    ("督导", "hotline-work-rules", "督导的形式"),
    ("转介", "crisis-risk-referral", "十、转介"),
    ("自伤", "crisis-risk-referral", "五、自伤的识别与应对"),
    // three and more
    ("自杀想法", "hotline-work-rules", "直接询问自杀想法"),
    ("安全计划", "crisis-risk-referral", "八、协作制定安全计划"),
    ("留守儿童", "crisis-risk-referral", "留守儿童"),
    ("心理急救", "closed-loop-pfa", "看、听、转介"),
    // English, any case, prefix
    (
        "Confidentiality",
        "hotline-work-rules-en",
        "Why confidentiality matters so much",
    ),
    (
        "CONFIDENTIAL",
        "hotline-work-rules-en",
        "Why confidentiality matters so much",
    ),
    ("pfa", "closed-loop-pfa", "PFA 做什么，不做什么"),
    // several terms: all must match
    (
        "handover supervisor",
        "hotline-work-rules-en",
        "Handover to the supervisor",
    ),
    ("热线 保密", "hotline-work-rules", "为什么保密如此重要"),
    ("呼吸 练习", "closed-loop-pfa", "呼吸练习"),
    // mixed scripts
    (
        "screening 筛查",
        "crisis-risk-referral",
        "三、结构化筛查（screening）八问",
    ),
    ("PTSD 创伤", "closed-loop-pfa", "什么情况需要警惕"),
];

const NO_MATCH: &[&str] = &["鲸鱼", "xyzzy", "自伤 xyzzy", "handover 鲸鱼", "  ", "？！"];

#[test]
fn every_query_finds_its_section_with_the_match_marked() {
    let (_dir, store) = library();
    let slugs: std::collections::HashMap<String, String> = store
        .list_handbooks()
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.slug))
        .collect();
    for (query, slug, title) in MUST_FIND {
        let hits = store.search(query, 5).unwrap();
        assert!(
            hits.iter()
                .any(|h| slugs[&h.handbook_id] == *slug && h.section_title == *title),
            "{query:?} did not find {slug} › {title}; got {:?}",
            hits.iter().map(|h| &h.section_title).collect::<Vec<_>>()
        );
        for h in &hits {
            assert!(
                h.snippet.contains("<mark>")
                    || h.title_html.contains("<mark>")
                    || h.context_html.iter().any(|c| c.contains("<mark>")),
                "{query:?}: no match marked in {:?}",
                h.snippet
            );
        }
        // Best first.
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "{query:?} not ranked"
        );
    }
}

#[test]
fn every_term_must_match_and_nonsense_finds_nothing() {
    let (_dir, store) = library();
    for q in NO_MATCH {
        assert!(
            store.search(q, 10).unwrap().is_empty(),
            "{q:?} should find nothing"
        );
    }
    // Each hit of a two-term query holds both terms.
    for h in store.search("保密 督导", 20).unwrap() {
        let s = store
            .section(
                &heartbridge_core::DocId::parse(&h.handbook_id, "handbook").unwrap(),
                h.section,
            )
            .unwrap();
        // The headings above a section count as its context.
        let text = format!("{} {} {}", h.context_html.join(" "), s.title, s.body);
        assert!(
            text.contains("保密") && text.contains("督导"),
            "{}",
            h.section_title
        );
    }
}

#[test]
fn single_characters_match_inside_words() {
    let (_dir, store) = library();
    // 虑 only ever appears inside words such as 焦虑 or 考虑.
    let hits = store.search("虑", 50).unwrap();
    assert!(hits.len() > 5);
    assert!(hits.iter().all(|h| h.snippet.contains("<mark>虑</mark>")));
}

#[test]
fn reimporting_a_revised_handbook_updates_search_in_place() {
    let (dir, mut store) = library();
    let before = store.list_handbooks().unwrap();
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks/zh/hotline-work-rules.md");
    let text = std::fs::read_to_string(&src)
        .unwrap()
        .replace("沉默的运用", "沉默与等待的运用");
    let revised = dir.path().join("hotline-work-rules.md");
    std::fs::write(&revised, text).unwrap();
    let out = store.import_handbooks(&[revised]).unwrap();
    assert_eq!(out[0].outcome, "updated");
    let after = store.list_handbooks().unwrap();
    assert_eq!(before.len(), after.len());
    assert!(after.iter().any(|h| h.id == out[0].id));
    assert!(store
        .search("沉默与等待", 5)
        .unwrap()
        .iter()
        .any(|h| h.section_title == "沉默与等待的运用"));
    assert!(store
        .search("沉默的运用", 5)
        .unwrap()
        .iter()
        .all(|h| h.section_title != "沉默的运用"));
}
