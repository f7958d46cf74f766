//! Statistics benchmark: a year of a busy team's facts (100 000 by
//! default: cases opened, contacts, risk and group changes, escalations
//! with receipts, follow-ups, shifts), ingested into a real (encrypted)
//! profile, then `Store::stats` and `Store::stats_csv` timed by breakdown.
//!
//! Run: `cargo bench -p heartbridge-core --bench stats`
//! (`HB_BENCH_FACTS=N` for another size). Prints a Markdown table for
//! BENCHMARKS.md.

use std::time::{Duration, Instant};

use heartbridge_core::stats::Dim;
use heartbridge_core::{testing, Channel, Fact, Group, Risk, StatsQuery, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const YEAR_START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const YEAR_MS: i64 = 365 * 86_400_000;

fn facts(n: usize) -> Vec<Fact> {
    let mut rng = StdRng::seed_from_u64(9);
    let mut out = Vec::with_capacity(n + 16);
    let mut cases: Vec<(String, i64, Group, Risk)> = Vec::new();
    let mut seq = 0u64;
    let mut id = || {
        seq += 1;
        format!("{seq:032x}")
    };
    while out.len() < n {
        let roll = rng.random_range(0..100);
        if cases.is_empty() || roll < 8 {
            let at = YEAR_START + rng.random_range(0..YEAR_MS);
            let group = Group::ALL[rng.random_range(0..Group::ALL.len())];
            let risk = Risk::ALL[rng.random_range(0..3)];
            let case = format!("{:032x}", rng.random::<u128>());
            out.push(Fact::CaseOpened {
                id: id(),
                case: case.clone(),
                at,
                group,
                risk,
                channel: None,
            });
            cases.push((case, at, group, risk));
            continue;
        }
        let (case, opened, group, risk) = cases[rng.random_range(0..cases.len())].clone();
        let at = opened + rng.random_range(0..30 * 86_400_000);
        match roll {
            8..=72 => out.push(Fact::Contact {
                id: id(),
                case,
                at,
                channel: Channel::ALL[rng.random_range(0..Channel::ALL.len())],
                minutes: Some(rng.random_range(5..90)),
                group,
                risk,
            }),
            73..=76 => out.push(Fact::RiskSet {
                id: id(),
                case,
                at,
                risk: Risk::ALL[rng.random_range(0..Risk::ALL.len())],
            }),
            77 => out.push(Fact::GroupSet {
                id: id(),
                case,
                at,
                group: Group::ALL[rng.random_range(0..Group::ALL.len())],
            }),
            78..=80 => {
                let esc = id();
                out.push(Fact::Escalated {
                    id: id(),
                    case: case.clone(),
                    escalation: esc.clone(),
                    at,
                    level: Risk::High,
                });
                out.push(Fact::Receipt {
                    id: id(),
                    case,
                    escalation: esc,
                    at: at + rng.random_range(60_000..7_200_000),
                    mode: "app".into(),
                });
            }
            81..=88 => {
                let f = id();
                out.push(Fact::FollowupAdded {
                    id: id(),
                    case: case.clone(),
                    followup: f.clone(),
                    at,
                    due: Some("2026-06-30".into()),
                });
                if rng.random_bool(0.6) {
                    out.push(Fact::FollowupDone {
                        id: id(),
                        case,
                        followup: f,
                        at: at + rng.random_range(0..14 * 86_400_000),
                    });
                }
            }
            _ => out.push(Fact::Shift {
                id: id(),
                line_kind: Some(["hotline", "online", "venue"][rng.random_range(0..3)].into()),
                start: at,
                end: at + rng.random_range(3_600_000..4 * 3_600_000),
            }),
        }
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("HB_BENCH_FACTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let work = tempfile::tempdir().expect("tempdir");
    let mut store =
        Store::init(&work.path().join("p"), "bench", &testing::protection()).expect("init");
    let all = facts(n);
    let t = Instant::now();
    for chunk in all.chunks(10_000) {
        store.ingest_facts(chunk).expect("ingest");
    }
    let ingest = t.elapsed();
    println!(
        "{} facts ingested in {:.2} s ({:.1} µs a fact, 10 000 a transaction)\n",
        all.len(),
        ingest.as_secs_f64(),
        ingest.as_secs_f64() * 1e6 / all.len() as f64
    );
    println!("| breakdown | rows | stats (median of 5) | CSV k=5 (median of 5) |");
    println!("| --- | ---: | ---: | ---: |");
    let cases: [(&str, Vec<Dim>); 6] = [
        ("none (totals)", vec![]),
        ("channel", vec![Dim::Channel]),
        ("week", vec![Dim::Week]),
        ("month × channel", vec![Dim::Month, Dim::Channel]),
        (
            "channel × group × risk",
            vec![Dim::Channel, Dim::Group, Dim::Risk],
        ),
        (
            "week × channel × group × risk",
            vec![Dim::Week, Dim::Channel, Dim::Group, Dim::Risk],
        ),
    ];
    for (name, by) in cases {
        let q = StatsQuery {
            from: Some("2026-01-01".into()),
            to: Some("2026-12-31".into()),
            by,
            utc_offset_minutes: 480,
        };
        let mut ts = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let st = store.stats(&q).expect("stats");
            ts.push(t.elapsed());
            rows = st.rows.len();
        }
        let mut tc = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let csv = store.stats_csv(&q, 5).expect("csv");
            tc.push(t.elapsed());
            std::hint::black_box(csv);
        }
        println!(
            "| {name} | {rows} | {:.0} ms | {:.0} ms |",
            median(ts).as_secs_f64() * 1e3,
            median(tc).as_secs_f64() * 1e3
        );
    }
}
