//! The simulation soak: many more random histories than CI runs, in
//! release, each against a real relay on loopback and real device stores
//! (the same harness as `tests/sim.rs`).
//!
//! `cargo bench -p heartbridge-benches --bench soak`
//!
//! Environment: `SOAK_CASES` (histories to generate, default 2,000),
//! `SOAK_SECS` (stop starting new batches after this, default 600),
//! `SOAK_OPS` (most operations per history, default 80), `SOAK_SEED`
//! (first batch seed, default 1), `SOAK_THREADS` (batches run at once,
//! default 4: a run mostly waits for fsyncs). Prints how many histories and
//! operations ran, what the network did, and every failure with its batch
//! seed and minimal history; a failure found here becomes a `seed_*` test
//! in `tests/sim.rs`.

#[path = "../../tests/sim/mod.rs"]
#[allow(dead_code)]
mod sim;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use sim::world::Stats;

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
    let threads: usize = env("SOAK_THREADS", 4);
    let started = Instant::now();
    let total = Mutex::new(Stats::default());
    let runs = AtomicUsize::new(0);
    let generated = AtomicU32::new(0);
    let next_seed = AtomicU64::new(first_seed);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let done = generated.fetch_add(BATCH, Ordering::SeqCst);
                if done >= cases || started.elapsed() >= budget {
                    generated.fetch_sub(BATCH, Ordering::SeqCst);
                    return;
                }
                let batch = BATCH.min(cases - done);
                generated.fetch_sub(BATCH - batch, Ordering::SeqCst);
                let seed = next_seed.fetch_add(1, Ordering::SeqCst);
                let config = Config {
                    cases: batch,
                    failure_persistence: None,
                    max_shrink_iters: 1_000,
                    max_shrink_time: 120_000,
                    ..Config::default()
                };
                let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
                let mut runner = TestRunner::new_with_rng(config, rng);
                let result = runner.run(&sim::history::history(max_ops), |h| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    let stats = sim::world::run(&h).map_err(TestCaseError::fail)?;
                    add(&mut total.lock().expect("stats"), &stats);
                    Ok(())
                });
                let failed = match result {
                    Ok(()) => None,
                    Err(TestError::Fail(reason, minimal)) => {
                        Some(format!("{reason}\n  minimal history: {minimal:?}"))
                    }
                    Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
                };
                if let Some(f) = failed {
                    println!("FAILURE batch seed {seed}: {f}");
                    failures.lock().expect("failures").push(seed);
                }
            });
        }
    });
    let t = total.into_inner().expect("stats");
    let n = t.net;
    let failures = failures.into_inner().expect("failures");
    let last_seed = next_seed.into_inner();
    println!(
        "soak: {} histories generated in {} batches (seeds {first_seed}..{last_seed}), {} runs including shrinking, {threads} at once, in {:.1} s",
        generated.into_inner(),
        last_seed - first_seed,
        runs.into_inner(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  passing runs: {} ops ({} writes, {} device syncs, {} joins, {} crashes between steps or in flight)",
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

fn add(total: &mut Stats, s: &Stats) {
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
