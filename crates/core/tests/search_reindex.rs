//! A profile upgraded from an older version searches with the current
//! index without any action: at open, handbooks whose index rows are
//! missing or were written by an older indexer are indexed again from
//! their documents. Real SQLCipher files, downgraded with a raw connection
//! to what an older version left.

use std::path::{Path, PathBuf};

use heartbridge_core::search::{index_text, plain_text};
use heartbridge_core::testing::{open_raw, protection, unlock};
use heartbridge_core::Store;

const QUERIES: &[&str] = &["倾听", "自杀", "睡眠", "督导", "listening", "ＰＦＡ"];

/// A profile with the sample handbooks, closed; its directory.
fn profile() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("p");
    let mut store = Store::init(&p, "测试", &protection()).expect("init");
    let handbooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks");
    store.import_handbooks(&[handbooks]).expect("import");
    (dir, p)
}

/// A query's total and hits (handbook, section, snippet), in order.
type Results = (usize, Vec<(String, usize, String)>);

/// Every query's results.
fn results(store: &Store) -> Vec<Results> {
    QUERIES
        .iter()
        .map(|q| {
            let page = store.search_page(q, 0, 200).expect("search");
            let hits = page
                .hits
                .into_iter()
                .map(|h| (h.handbook_id, h.section, h.snippet))
                .collect();
            (page.total, hits)
        })
        .collect()
}

/// When each handbook was last projected.
fn projected_at(p: &Path) -> Vec<(String, i64)> {
    let conn = open_raw(p, &unlock()).expect("raw");
    let mut st = conn
        .prepare("SELECT id, updated_at FROM handbooks ORDER BY id")
        .expect("prepare");
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Matches of `fts` whose section has no text of its own (a heading only).
fn heading_only_matches(conn: &rusqlite::Connection, fts: &str) -> usize {
    let mut st = conn
        .prepare(
            "SELECT s.body FROM sections s
             WHERE s.rowid IN (SELECT rowid FROM sections_fts WHERE sections_fts MATCH ?1)",
        )
        .expect("prepare");
    let bodies: Vec<String> = st
        .query_map([fts], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    bodies.iter().filter(|b| plain_text(b).is_empty()).count()
}

/// Rewrites the index as Heartbridge did before issue 12: one row per
/// section, heading-only sections included, the raw Markdown indexed, and
/// no record of an indexer version.
fn downgrade(p: &Path) {
    let conn = open_raw(p, &unlock()).expect("raw");
    conn.execute_batch(
        "DELETE FROM settings WHERE key LIKE 'search.indexed:%';
         DELETE FROM sections_fts;",
    )
    .expect("clear");
    let rows: Vec<(i64, String, String)> = {
        let mut st = conn
            .prepare("SELECT rowid, title, body FROM sections")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    for (rowid, title, body) in rows {
        conn.execute(
            "INSERT INTO sections_fts (rowid, title, body) VALUES (?1, ?2, ?3)",
            rusqlite::params![rowid, index_text(&title), index_text(&body)],
        )
        .expect("old row");
    }
    // The downgrade took: a heading-only chapter is a match of its own.
    assert!(heading_only_matches(&conn, "\"倾 听\"") > 0);
}

#[test]
fn an_upgraded_profile_searches_with_the_current_index() {
    let (_dir, p) = profile();
    let current = results(&Store::open(&p, &unlock()).expect("open"));
    assert!(current.iter().all(|(total, _)| *total > 0));

    downgrade(&p);
    let store = Store::open(&p, &unlock()).expect("open upgraded");
    let after = results(&store);
    for (q, (a, b)) in QUERIES.iter().zip(after.iter().zip(current.iter())) {
        if a != b {
            let ai: Vec<_> = a.1.iter().map(|h| (&h.0[..4], h.1)).collect();
            let bi: Vec<_> = b.1.iter().map(|h| (&h.0[..4], h.1)).collect();
            eprintln!("{q}: {} vs {}\n{ai:?}\n{bi:?}", a.0, b.0);
        }
    }
    assert_eq!(after, current);
    drop(store);
    let conn = open_raw(&p, &unlock()).expect("raw");
    assert_eq!(heading_only_matches(&conn, "\"倾 听\""), 0);
    let versions: i64 = conn
        .query_row(
            "SELECT count(*) FROM settings WHERE key LIKE 'search.indexed:%' AND value = ?1",
            [heartbridge_core::search::INDEXER_VERSION.to_string()],
            |r| r.get(0),
        )
        .expect("versions");
    let handbooks: i64 = conn
        .query_row("SELECT count(*) FROM handbooks", [], |r| r.get(0))
        .expect("handbooks");
    assert_eq!(versions, handbooks);
}

#[test]
fn a_handbook_missing_from_the_index_is_indexed_at_open() {
    let (_dir, p) = profile();
    let current = results(&Store::open(&p, &unlock()).expect("open"));
    {
        // As a crash between an older version's projection steps, or a
        // version that indexed nothing, leaves it: one handbook without
        // index rows and without a version.
        let conn = open_raw(&p, &unlock()).expect("raw");
        let id: String = conn
            .query_row(
                "SELECT id FROM handbooks WHERE slug = 'hotline-work-rules'",
                [],
                |r| r.get(0),
            )
            .expect("handbook");
        conn.execute(
            "DELETE FROM sections_fts WHERE rowid IN (SELECT rowid FROM sections WHERE handbook_id = ?1)",
            [&id],
        )
        .expect("drop rows");
        conn.execute(
            "DELETE FROM settings WHERE key = 'search.indexed:' || ?1",
            [&id],
        )
        .expect("drop version");
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sections_fts WHERE sections_fts MATCH '\"倾 听\"'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert!((left as usize) < current[0].0);
    }
    let store = Store::open(&p, &unlock()).expect("open");
    assert_eq!(results(&store), current);
}

#[test]
fn a_current_index_is_left_as_it_is_at_open() {
    let (_dir, p) = profile();
    let before = projected_at(&p);
    let first = results(&Store::open(&p, &unlock()).expect("open"));
    let second = results(&Store::open(&p, &unlock()).expect("open again"));
    assert_eq!(first, second);
    // Nothing was projected again.
    assert_eq!(projected_at(&p), before);
}
