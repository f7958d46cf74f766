//! The ranking table (`tests/ranking.tsv`) over the real sample handbooks,
//! shared by the test `search_ranking` and the benchmark `ranking`.

use std::collections::HashMap;
use std::path::PathBuf;

use heartbridge_core::Store;

/// One row: a query and the sections (slug, heading) any of which a
/// supervisor wants first.
pub struct Row {
    pub query: String,
    pub wanted: Vec<(String, String)>,
}

pub fn table() -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ranking.tsv");
    let text = std::fs::read_to_string(&path).expect("tests/ranking.tsv");
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "ranking.tsv: not three columns: {line}");
        let wanted = cols[2]
            .split(" | ")
            .map(|w| match w.split_once(": ") {
                Some((slug, title)) if !slug.contains(' ') && slug.contains('-') => {
                    (slug.to_owned(), title.to_owned())
                }
                _ => (cols[1].to_owned(), w.to_owned()),
            })
            .collect();
        out.push(Row {
            query: cols[0].to_owned(),
            wanted,
        });
    }
    out
}

/// A profile with the sample handbooks imported.
pub fn library() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::init(
        &dir.path().join("p"),
        "测试",
        &heartbridge_core::testing::protection(),
    )
    .expect("init");
    let handbooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks");
    store.import_handbooks(&[handbooks]).expect("import");
    (dir, store)
}

/// Where the first wanted section of `row` ranks (1-based), if in the
/// first `depth` hits, and the top three hits as `slug › heading`.
pub fn rank_of(store: &Store, row: &Row, depth: usize) -> (Option<usize>, Vec<String>) {
    let slugs: HashMap<String, String> = store
        .list_handbooks()
        .expect("list")
        .into_iter()
        .map(|h| (h.id, h.slug))
        .collect();
    let hits = store.search(&row.query, depth).expect("search");
    let rank = hits
        .iter()
        .position(|h| {
            row.wanted
                .iter()
                .any(|(slug, title)| slugs[&h.handbook_id] == *slug && h.section_title == *title)
        })
        .map(|p| p + 1);
    let top = hits
        .iter()
        .take(3)
        .map(|h| format!("{} › {}", slugs[&h.handbook_id], h.section_title))
        .collect();
    (rank, top)
}

/// Every wanted section exists in the library (so a typo in the table
/// cannot pass as a ranking miss or hide one).
pub fn check_table(store: &Store, rows: &[Row]) {
    let mut known = std::collections::HashSet::new();
    for h in store.list_handbooks().expect("list") {
        let id = heartbridge_core::DocId::parse(&h.id, "handbook").expect("id");
        for s in store.handbook(&id).expect("handbook").sections {
            known.insert((h.slug.clone(), s.title));
        }
    }
    for r in rows {
        for w in &r.wanted {
            assert!(
                known.contains(w),
                "ranking.tsv: {:?} wants {} › {}, which is not a section",
                r.query,
                w.0,
                w.1
            );
        }
    }
}
