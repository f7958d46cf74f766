//! Search benchmark: builds an index over at least 2 MB of Chinese text
//! (the sample handbooks, sections reshuffled into many handbooks), then
//! measures query latency by query length.
//!
//! Run: `cargo bench -p heartbridge-core --bench search`
//! (`HB_BENCH_MB=50` for a bigger corpus; `HB_BENCH_PLAINTEXT=1` for an
//! unencrypted profile; `HB_BENCH_PARTS=0` for the query table alone).
//! Prints Markdown tables for BENCHMARKS.md: p50/p99 by query length, the
//! slowest query of each length, and the parts of a search.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use heartbridge_core::Store;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `HB_BENCH_BIGRAMS=1`: the tokens of a CJK bigram index, for comparison
/// only (not what the store indexes): every run of CJK characters as its
/// overlapping pairs and its last character ("心理学" → "心理 理学 学").
fn bigram_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    let chars: Vec<char> = s
        .chars()
        .map(heartbridge_core::search::half_width)
        .collect();
    let mut i = 0;
    while i < chars.len() {
        if heartbridge_core::search::is_cjk(chars[i]) {
            let start = i;
            while i < chars.len() && heartbridge_core::search::is_cjk(chars[i]) {
                i += 1;
            }
            for k in start..i {
                out.push(' ');
                out.push(chars[k]);
                if k + 1 < i {
                    out.push(chars[k + 1]);
                }
            }
            out.push(' ');
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The MATCH expression of a CJK query for the bigram index.
fn bigram_query(q: &str) -> String {
    let c: Vec<char> = q.chars().collect();
    match c.len() {
        1 => format!("\"{}\"*", c[0]),
        _ => {
            let pairs: Vec<String> = c.windows(2).map(|w| w.iter().collect()).collect();
            format!("\"{}\"", pairs.join(" "))
        }
    }
}

fn main() {
    let target_mb: f64 = std::env::var("HB_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../handbooks/zh");
    let mut sources = Vec::new();
    for e in std::fs::read_dir(&root).expect("handbooks/zh") {
        let p = e.expect("entry").path();
        let bytes = std::fs::read(&p).expect("read");
        sources.push(heartbridge_core::docs::parse_handbook(&p, &bytes).expect("parse"));
    }
    let sections: Vec<(String, String)> = sources
        .iter()
        .flat_map(|s| heartbridge_core::docs::split_sections(&s.body, &s.title))
        .map(|s| (s.title, s.body))
        .collect();
    let section_bytes: usize = sections.iter().map(|s| s.1.len()).sum();

    // Write enough generated handbooks: each takes the sections in a
    // different rotation, so that the text is realistic Chinese.
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("generated");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut text_bytes = 0usize;
    let mut text_chars = 0usize;
    let mut n = 0usize;
    while (text_bytes as f64) < target_mb * 1024.0 * 1024.0 {
        let mut md = format!(
            "---\ntitle: 生成手册 {n}\nlanguage: zh-CN\nversion: 1\nslug: generated-{n}\n---\n"
        );
        for k in 0..sections.len() / 2 {
            let (title, body) = &sections[(k * 7 + n * 13) % sections.len()];
            md.push_str(&format!("\n## {title}（{n}）\n\n{body}\n"));
            text_bytes += body.len() + title.len();
            text_chars += body.chars().count() + title.chars().count();
        }
        std::fs::write(dir.join(format!("g{n:03}.md")), md).expect("write");
        n += 1;
    }
    // `HB_BENCH_PLAINTEXT=1`: an unencrypted profile (as before issue 8),
    // the same binary otherwise, to measure what SQLCipher costs.
    let plaintext = std::env::var("HB_BENCH_PLAINTEXT").is_ok_and(|v| v == "1");
    let p = work.path().join("p");
    let mut store = if plaintext {
        heartbridge_core::testing::init_plaintext(&p, "bench")
    } else {
        Store::init(&p, "bench", &heartbridge_core::testing::protection())
    }
    .expect("init");
    eprintln!(
        "profile: {}",
        if plaintext {
            "plaintext SQLite"
        } else {
            "SQLCipher"
        }
    );
    let t = Instant::now();
    store.import_handbooks(&[dir]).expect("import");
    let import = t.elapsed();

    let conn = if plaintext {
        rusqlite::Connection::open(store.path()).expect("open")
    } else {
        heartbridge_core::testing::open_raw(
            store.path().parent().expect("profile dir"),
            &heartbridge_core::testing::unlock(),
        )
        .expect("open")
    };
    let index_bytes: i64 = conn
        .query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'sections_fts%'",
            [],
            |r| r.get(0),
        )
        .expect("dbstat");
    let sections_indexed: i64 = conn
        .query_row("SELECT count(*) FROM sections", [], |r| r.get(0))
        .expect("count");

    // The index alone: the same rows into a fresh FTS table.
    let rows: Vec<(String, String)> = {
        let mut st = conn
            .prepare("SELECT title, body FROM sections")
            .expect("prep");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let fresh = rusqlite::Connection::open(work.path().join("fts-only.db")).expect("fresh");
    fresh
        .execute_batch("CREATE VIRTUAL TABLE f USING fts5(title, body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');")
        .expect("create");
    let t = Instant::now();
    let tx = fresh.unchecked_transaction().expect("tx");
    {
        let mut ins = tx
            .prepare("INSERT INTO f (title, body) VALUES (?1, ?2)")
            .expect("prep");
        for (title, body) in &rows {
            // What the projection indexes: the rendered text, no Markdown.
            let text = heartbridge_core::search::plain_text(body);
            if text.is_empty() {
                continue;
            }
            ins.execute([
                heartbridge_core::search::index_text(title),
                heartbridge_core::search::index_text(&text),
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
    let index_only = t.elapsed();

    let queries: [(&str, &[&str]); 4] = [
        (
            "1 character",
            &[
                "心", "危", "梦", "睡", "虑", "的", "家", "哭", "饿", "冷", "怕", "爱",
            ],
        ),
        (
            "2 characters",
            &[
                "心理", "危机", "焦虑", "督导", "转介", "倾听", "失眠", "自伤", "保密", "学校",
                "父母", "呼吸",
            ],
        ),
        (
            "3 characters",
            &[
                "志愿者",
                "监护人",
                "安全感",
                "来电者",
                "自杀念",
                "心理学",
                "闭环中",
                "交接班",
                "考试前",
                "急救员",
                "欺凌者",
                "注意力",
            ],
        ),
        (
            "4+ characters",
            &[
                "安全计划",
                "留守儿童",
                "心理急救",
                "保护因素",
                "考试焦虑",
                "直接询问自杀",
                "强制报告制度",
                "家庭暴力",
                "同伴支持圈",
                "风险等级",
                "情绪低落",
                "睡眠卫生习惯",
            ],
        ),
    ];
    println!("corpus: {} generated handbooks, {sections_indexed} sections, {:.2} MB of text ({text_chars} characters; source sections {section_bytes} bytes)", n, text_bytes as f64 / 1048576.0);
    println!(
        "import (documents + projections + index): {:.2} s",
        import.as_secs_f64()
    );
    println!(
        "index only (FTS5 inserts, one transaction): {:.2} s",
        index_only.as_secs_f64()
    );
    println!(
        "index size: {:.2} MB = {:.2}× the text",
        index_bytes as f64 / 1048576.0,
        index_bytes as f64 / text_bytes as f64
    );
    println!();
    println!("| query length | queries | runs | matching sections/query (median) | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let mut slow = Vec::new();
    for (label, qs) in queries {
        // Warm up once.
        for q in qs {
            store.search_page(q, 0, 10).expect("search");
        }
        let mut times = Vec::new();
        let mut hits = Vec::new();
        let mut each: Vec<Vec<Duration>> = vec![Vec::new(); qs.len()];
        let mut totals = vec![0usize; qs.len()];
        for _ in 0..50 {
            for (i, q) in qs.iter().enumerate() {
                let t = Instant::now();
                // One page of 10 hits and the total, as the app asks.
                let page = store.search_page(q, 0, 10).expect("search");
                let d = t.elapsed();
                times.push(d);
                each[i].push(d);
                assert!(page.hits.len() <= 10);
                hits.push(page.total);
                totals[i] = page.total;
            }
        }
        times.sort();
        hits.sort();
        println!(
            "| {label} | {} | {} | {} | {:.2} ms | {:.2} ms |",
            qs.len(),
            times.len(),
            hits[hits.len() / 2],
            percentile(&times, 0.5).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0
        );
        // The query with the highest median: with 50 runs of each of 12
        // queries, p99 is mostly this query's time.
        let slowest = (0..qs.len())
            .map(|i| {
                each[i].sort();
                (percentile(&each[i], 0.5), i)
            })
            .max()
            .expect("queries");
        slow.push(format!(
            "| {label} | {} | {} | {:.2} ms |",
            qs[slowest.1],
            totals[slowest.1],
            slowest.0.as_secs_f64() * 1000.0
        ));
    }
    println!();
    println!("| query length | slowest query (median) | matching sections | its p50 |");
    println!("|---|---|---|---|");
    for line in slow {
        println!("{line}");
    }

    // Opening the profile again: nothing is stale, so the index check is
    // one query. `HB_BENCH_REINDEX=1`: then with every handbook's indexer
    // version removed (a profile from before issue 12), so that the open
    // indexes the whole library again.
    if !plaintext {
        let profile = store.path().parent().expect("profile dir").to_owned();
        drop(store);
        let unlock = heartbridge_core::testing::unlock();
        let mut opens = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let s = Store::open(&profile, &unlock).expect("reopen");
            opens.push(t.elapsed());
            drop(s);
        }
        opens.sort();
        println!();
        println!(
            "open (test KDF), nothing stale: {:.2} ms (median of 5)",
            opens[2].as_secs_f64() * 1000.0
        );
        if std::env::var("HB_BENCH_REINDEX").is_ok_and(|v| v == "1") {
            conn.execute("DELETE FROM settings WHERE key LIKE 'search.indexed:%'", [])
                .expect("downgrade");
            let t = Instant::now();
            let s = Store::open(&profile, &unlock).expect("reopen");
            println!(
                "open with every handbook stale (indexed again): {:.2} s",
                t.elapsed().as_secs_f64()
            );
            drop(s);
        }
    }

    // Where the time goes: the parts of a search on the same connection
    // (`HB_BENCH_PARTS=0` to skip). p99 over the same runs.
    if std::env::var("HB_BENCH_PARTS").is_ok_and(|v| v == "0") {
        return;
    }
    // `HB_BENCH_CACHE_MB=N`: this connection's page cache (SQLite's
    // default is 2 MB), to see what decrypting index pages again costs.
    if let Some(mb) = std::env::var("HB_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        conn.pragma_update(None, "cache_size", -mb * 1024)
            .expect("cache_size");
        println!("parts below with a {mb} MB page cache");
    }
    // As `search::page` ranks: all matches by BM25 up to
    // `search::TIERED_ABOVE` matches, else the heading matches first and
    // the rest only for a page past them. "BM25 top 10 of all matches" is
    // also what every query cost before the tiers.
    let parts: [(&str, &str); 4] = [
        (
            "count of the matches (the total)",
            "SELECT count(*) FROM sections_fts WHERE sections_fts MATCH ?1",
        ),
        (
            "BM25 top 10 of all matches",
            "SELECT rowid FROM sections_fts WHERE sections_fts MATCH ?1 ORDER BY bm25(sections_fts, 6.0, 1.0) LIMIT 10",
        ),
        (
            "BM25 top 10 of the heading matches (tier 1)",
            "SELECT rowid FROM sections_fts WHERE sections_fts MATCH '{title} : (' || ?1 || ')' ORDER BY bm25(sections_fts, 6.0, 1.0) LIMIT 10",
        ),
        (
            "BM25 top 10 of the rest (tier 2: a page past the heading matches)",
            "SELECT rowid FROM sections_fts WHERE sections_fts MATCH '(' || ?1 || ') NOT {title} : (' || ?1 || ')' ORDER BY bm25(sections_fts, 6.0, 1.0) LIMIT 10",
        ),
    ];
    println!();
    println!("| part | 1 character p50 / p99 | 2 characters | 3 characters | 4+ characters |");
    println!("|---|---|---|---|---|");
    for (name, sql) in parts {
        let mut st = conn.prepare(sql).expect("prepare");
        let mut cells = Vec::new();
        for (_, qs) in queries {
            let mut times = Vec::new();
            for round in 0..11 {
                for q in qs {
                    let fts =
                        heartbridge_core::search::fts_query(&heartbridge_core::search::terms(q))
                            .expect("query");
                    let t = Instant::now();
                    let n = st.query_map([&fts], |_| Ok(())).expect("query").count();
                    // The first round warms the cache.
                    if round > 0 {
                        times.push(t.elapsed());
                    }
                    std::hint::black_box(n);
                }
            }
            times.sort();
            cells.push(format!(
                "{:.2} / {:.2} ms",
                percentile(&times, 0.5).as_secs_f64() * 1000.0,
                percentile(&times, 0.99).as_secs_f64() * 1000.0
            ));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }

    // The work per page of 10 hits, after the index: reading the rows, the
    // headings above each hit, and the plain text and snippet of each.
    let mut top = conn
        .prepare("SELECT rowid FROM sections_fts WHERE sections_fts MATCH ?1 ORDER BY bm25(sections_fts, 6.0, 1.0) LIMIT 10")
        .expect("prepare");
    let mut row = conn
        .prepare("SELECT s.handbook_id, s.idx, s.level, s.body, h.title, s.rowid FROM sections s JOIN handbooks h ON h.id = s.handbook_id WHERE s.rowid = ?1")
        .expect("prepare");
    let mut above = conn
        .prepare("SELECT level, title, handbook_id = ?3 FROM sections WHERE rowid < ?1 AND rowid >= ?1 - ?2 ORDER BY rowid DESC")
        .expect("prepare");
    let (mut t_rows, mut t_above, mut t_snip) = (Vec::new(), Vec::new(), Vec::new());
    for (_, qs) in queries {
        for round in 0..11 {
            for q in qs {
                let ts = heartbridge_core::search::terms(q);
                let fts = heartbridge_core::search::fts_query(&ts).expect("query");
                let ids: Vec<i64> = top
                    .query_map([&fts], |r| r.get(0))
                    .expect("top")
                    .collect::<Result<_, _>>()
                    .expect("ids");
                let t = Instant::now();
                let rows: Vec<(String, i64, u8, String, i64)> = ids
                    .iter()
                    .map(|id| {
                        row.query_row([id], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?))
                        })
                        .expect("row")
                    })
                    .collect();
                let a = t.elapsed();
                let t = Instant::now();
                // (as Store::section_context: a range of rowids, nearest first)
                for (hid, idx, level, _, rowid) in &rows {
                    let mut l = *level;
                    let mut it = above
                        .query(rusqlite::params![rowid, idx, hid])
                        .expect("above");
                    while let Some(r) = it.next().expect("next") {
                        if !r.get::<_, bool>(2).expect("same") {
                            break;
                        }
                        let lv: u8 = r.get(0).expect("level");
                        if lv > 0 && lv < l {
                            l = lv;
                            if l <= 1 {
                                break;
                            }
                        }
                    }
                }
                let b = t.elapsed();
                let t = Instant::now();
                for (_, _, _, body, _) in &rows {
                    let text = heartbridge_core::search::plain_text(body);
                    std::hint::black_box(heartbridge_core::search::snippet(&text, &ts, 90));
                }
                let c = t.elapsed();
                if round > 0 {
                    t_rows.push(a);
                    t_above.push(b);
                    t_snip.push(c);
                }
            }
        }
    }
    println!();
    println!("| per page of 10 hits (all query lengths) | p50 | p99 |");
    println!("|---|---|---|");
    for (name, mut v) in [
        ("read the 10 rows (section, handbook title)", t_rows),
        ("headings above each hit", t_above),
        ("plain text and snippet of each", t_snip),
    ] {
        v.sort();
        println!(
            "| {name} | {:.2} ms | {:.2} ms |",
            percentile(&v, 0.5).as_secs_f64() * 1000.0,
            percentile(&v, 0.99).as_secs_f64() * 1000.0
        );
    }

    // `HB_BENCH_BIGRAMS=1`: the same rows into a unigram table (as the store)
    // and a bigram table in one plaintext database, BM25 top 10 and count.
    if std::env::var("HB_BENCH_BIGRAMS").is_ok_and(|v| v == "1") {
        fresh
            .execute_batch("CREATE VIRTUAL TABLE b USING fts5(title, body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');")
            .expect("create");
        let tx = fresh.unchecked_transaction().expect("tx");
        {
            let mut ins = tx
                .prepare("INSERT INTO b (title, body) VALUES (?1, ?2)")
                .expect("prep");
            for (title, body) in &rows {
                let text = heartbridge_core::search::plain_text(body);
                if text.is_empty() {
                    continue;
                }
                ins.execute([bigram_text(title), bigram_text(&text)])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        let size = |name: &str| -> f64 {
            fresh
                .query_row(
                    &format!("SELECT sum(pgsize) FROM dbstat WHERE name LIKE '{name}%'"),
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .expect("dbstat") as f64
                / 1048576.0
        };
        println!();
        println!(
            "bigram comparison (plaintext): unigram index {:.2} MB, bigram index {:.2} MB",
            size("f"),
            size("b")
        );
        println!("| index | 1 character p50 / p99 | 2 characters | 3 characters | 4+ characters |");
        println!("|---|---|---|---|---|");
        for (name, table) in [("unigrams (as the store)", "f"), ("bigrams", "b")] {
            let mut top = fresh
                .prepare(&format!("SELECT rowid FROM {table} WHERE {table} MATCH ?1 ORDER BY bm25({table}, 6.0, 1.0) LIMIT 10"))
                .expect("prepare");
            let mut count = fresh
                .prepare(&format!(
                    "SELECT count(*) FROM {table} WHERE {table} MATCH ?1"
                ))
                .expect("prepare");
            let mut cells = Vec::new();
            for (_, qs) in queries {
                let mut times = Vec::new();
                let mut totals = Vec::new();
                for round in 0..11 {
                    for q in qs {
                        let m = if table == "f" {
                            heartbridge_core::search::fts_query(&heartbridge_core::search::terms(q))
                                .expect("query")
                        } else {
                            bigram_query(q)
                        };
                        let t = Instant::now();
                        let n: i64 = count.query_row([&m], |r| r.get(0)).expect("count");
                        let k = top.query_map([&m], |_| Ok(())).expect("top").count();
                        if round > 0 {
                            times.push(t.elapsed());
                        } else {
                            totals.push(n);
                        }
                        std::hint::black_box(k);
                    }
                }
                times.sort();
                cells.push(format!(
                    "{:.2} / {:.2} ms (Σ {} matches)",
                    percentile(&times, 0.5).as_secs_f64() * 1000.0,
                    percentile(&times, 0.99).as_secs_f64() * 1000.0,
                    totals.iter().sum::<i64>()
                ));
            }
            println!("| {name} | {} |", cells.join(" | "));
        }
    }
}
