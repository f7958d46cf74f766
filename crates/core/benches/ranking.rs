//! Ranking benchmark: the share of the queries in `tests/ranking.tsv` whose
//! wanted section (what a supervisor wants first) is in the top 3, and in
//! first place, over the sample handbooks. Prints a Markdown table of the
//! misses for BENCHMARKS.md.
//!
//! Run: `cargo bench -p heartbridge-core --bench ranking`

#[path = "../tests/common/ranking.rs"]
mod ranking;

fn main() {
    let rows = ranking::table();
    let (_dir, store) = ranking::library();
    ranking::check_table(&store, &rows);
    let (mut first, mut top3, mut top10) = (0, 0, 0);
    let mut misses = Vec::new();
    for r in &rows {
        let (rank, top) = ranking::rank_of(&store, r, 10);
        if rank == Some(1) {
            first += 1;
        }
        if rank.is_some_and(|k| k <= 3) {
            top3 += 1;
        } else {
            misses.push((r.query.clone(), rank, top));
        }
        if rank.is_some() {
            top10 += 1;
        }
    }
    let n = rows.len() as f64;
    println!("queries: {}", rows.len());
    println!(
        "wanted section first: {first} ({:.1}%); in the top 3: {top3} ({:.1}%); in the top 10: {top10} ({:.1}%)",
        first as f64 * 100.0 / n,
        top3 as f64 * 100.0 / n,
        top10 as f64 * 100.0 / n
    );
    println!();
    println!("| query | wanted at | top 3 |");
    println!("|---|---|---|");
    for (q, rank, top) in misses {
        println!(
            "| {q} | {} | {} |",
            rank.map_or("not in the top 10".to_owned(), |k| k.to_string()),
            top.join("; ")
        );
    }
}
