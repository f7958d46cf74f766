//! The simulation soak: many more random histories than CI runs, in
//! release, each against a real relay on loopback and real device stores
//! (the same harness as `tests/sim.rs`).
//!
//! `cargo bench -p heartbridge-benches --bench soak`
//!
//! Environment: `SOAK_CASES` (histories to generate, default 2,000),
//! `SOAK_SECS` (stop starting new batches after this, default 600),
//! `SOAK_OPS` (most operations per history, default 80), `SOAK_SEED`
//! (first batch seed, default 1). Prints how many histories and operations
//! ran, what the network did, and every failure with its batch seed and
//! minimal history; a failure found here becomes a `seed_*` test in
//! `tests/sim.rs`.

#[path = "../../tests/sim/mod.rs"]
#[allow(dead_code)]
mod sim;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Histories per batch (one proptest runner, one seed).
const BATCH: u32 = 25;

fn main() {
    let cases: u32 = env("SOAK_CASES", 2_000);
    let budget = Duration::from_secs(env("SOAK_SECS", 600));
    let max_ops: usize = env("SOAK_OPS", 80);
    let first_seed: u64 = env("SOAK_SEED", 1);
    let started = Instant::now();
    let total = RefCell::new(sim::world::Stats::default());
    let runs = RefCell::new(0usize);
    let mut generated = 0u32;
    let mut failures = Vec::new();
    let mut seed = first_seed;
    while generated < cases && started.elapsed() < budget {
        let batch = BATCH.min(cases - generated);
        let config = Config {
            cases: batch,
            failure_persistence: None,
            max_shrink_iters: 1_000,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&sim::history::history(max_ops), |h| {
            *runs.borrow_mut() += 1;
            let stats = sim::world::run(&h).map_err(proptest::test_runner::TestCaseError::fail)?;
            add(&mut total.borrow_mut(), &stats);
            Ok(())
        });
        generated += batch;
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, minimal)) => {
                println!("FAILURE batch seed {seed}: {reason}\n  minimal history: {minimal:?}");
                failures.push(seed);
            }
            Err(TestError::Abort(reason)) => {
                println!("ABORTED batch seed {seed}: {reason}");
                failures.push(seed);
            }
        }
        seed += 1;
    }
    let t = total.into_inner();
    let n = t.net;
    println!(
        "soak: {generated} histories generated in {} batches (seeds {first_seed}..{}), {} runs including shrinking, in {:.1} s",
        seed - first_seed,
        seed,
        runs.into_inner(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  passing runs: {} ops ({} writes, {} syncs, {} joins, {} crashes between steps or in flight)",
        t.ops, t.writes, t.syncs, t.joins, t.crashes
    );
    println!(
        "  network: {} requests, {} delivered, {} reordered, {} requests dropped, {} responses dropped, {} duplicated, {} cut, {} late, {} crashes in flight",
        n.requests, n.delivered, n.reordered, n.dropped_requests, n.dropped_responses, n.duplicated, n.cut, n.late, n.crashes
    );
    println!("  failures: {} (batch seeds {failures:?})", failures.len());
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}

fn add(total: &mut sim::world::Stats, s: &sim::world::Stats) {
    total.ops += s.ops;
    total.writes += s.writes;
    total.syncs += s.syncs;
    total.joins += s.joins;
    total.crashes += s.crashes;
    let (t, n) = (&mut total.net, &s.net);
    t.requests += n.requests;
    t.delivered += n.delivered;
    t.reordered += n.reordered;
    t.dropped_requests += n.dropped_requests;
    t.dropped_responses += n.dropped_responses;
    t.duplicated += n.duplicated;
    t.cut += n.cut;
    t.late += n.late;
    t.crashes += n.crashes;
}
