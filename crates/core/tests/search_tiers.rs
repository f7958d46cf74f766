//! A query matching more sections than `search::TIERED_ABOVE` is ranked in
//! two tiers: sections whose own heading matches first, then the rest;
//! pages across the boundary add up to the total, none twice.

use std::collections::HashSet;

use heartbridge_core::search::TIERED_ABOVE;
use heartbridge_core::Store;

#[test]
fn a_common_word_puts_heading_matches_first_and_pages_add_up() {
    let sections = TIERED_ABOVE + 300;
    let in_heading = 23;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut md =
        String::from("---\ntitle: 潮汐手册\nlanguage: zh-CN\nversion: 1\nslug: tides\n---\n");
    for i in 0..sections {
        // Every section mentions 潮汐. A few have it in the heading, over a
        // long text; the others three times in a short one, which BM25
        // alone would rank above those.
        let step = sections / in_heading;
        if i % step == 0 && i / step < in_heading {
            let long = "浪".repeat(200);
            md.push_str(&format!("\n## 潮汐第{i}节\n\n今天的潮汐{long}。\n"));
        } else {
            let filler = "浪".repeat(i % 40);
            md.push_str(&format!("\n## 海岸第{i}节\n\n潮汐，潮汐，潮汐{filler}。\n"));
        }
    }
    std::fs::write(src.join("tides.md"), md).expect("write");
    let mut store = Store::init(
        &dir.path().join("p"),
        "测试",
        &heartbridge_core::testing::protection(),
    )
    .expect("init");
    store.import_handbooks(&[src]).expect("import");

    let first = store.search_page("潮汐", 0, 10).expect("search");
    assert_eq!(first.total, sections);
    assert!(first
        .hits
        .iter()
        .all(|h| h.section_title.starts_with("潮汐")));

    // Pages of 7 cross the boundary between the tiers at 23.
    let order = all_pages(&store, "潮汐", 7);
    assert_eq!(order.len(), sections);
    let headed = order.iter().filter(|t| t.starts_with("潮汐")).count();
    assert_eq!(headed, in_heading);
    assert!(order[..in_heading].iter().all(|t| t.starts_with("潮汐")));
    // Within the rest, BM25 still ranks: the shortest texts first.
    let rest = store.search_page("潮汐", in_heading, 1).expect("rest");
    let s = rest.hits[0].snippet.clone();
    assert!(!s.contains('浪'), "{s}");

    // 浪 is in no heading (and in more than TIERED_ABOVE texts): one tier.
    let waves = all_pages(&store, "浪", 9);
    assert!(waves.len() > TIERED_ABOVE);
    let page = store.search_page("浪", 0, 10).expect("search");
    assert_eq!(page.total, waves.len());
}

/// The section headings of every hit of `query`, page after page of
/// `limit`; fails if a section comes twice or a page's total differs.
fn all_pages(store: &Store, query: &str, limit: usize) -> Vec<String> {
    let total = store.search_page(query, 0, 1).expect("search").total;
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.search_page(query, offset, limit).expect("page");
        assert_eq!(page.total, total);
        if page.hits.is_empty() {
            break;
        }
        for h in page.hits {
            assert!(seen.insert(h.section), "section {} twice", h.section);
            order.push(h.section_title);
        }
        offset += limit;
    }
    assert_eq!(order.len(), total);
    order
}
