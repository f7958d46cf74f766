//! The kill soak: the rounds of `crates/cli/tests/kill.rs` (the same code),
//! many more of them, against the release binaries. `heartbridge` CLI
//! processes and the `heartbridge-relay` binary are SIGKILLed at random
//! instants while they write and sync; after each run of rounds every
//! device syncs until quiet and is checked: nothing reported saved lost,
//! nothing doubled, killed writes on all devices or none, devices identical,
//! `PRAGMA integrity_check` ok everywhere, no content id twice at the relay.
//!
//! ```text
//! cargo build --release -p heartbridge-cli -p heartbridge-relay
//! cargo bench -p heartbridge-benches --bench kill_soak
//! ```
//!
//! `cargo bench` does not build other packages' binaries: build them first
//! (the bench refuses to run without them, and would test stale ones).
//!
//! Environment: `HB_KILL_ROUNDS` (all rounds, default 3,000),
//! `HB_KILL_RUN_ROUNDS` (rounds per run: one relay, one team of three
//! devices, one final check; default 500), `HB_KILL_SEED` (the first run's
//! seed; run i uses seed + i; default random), `HB_KILL_MAX_DELAY_MS`
//! (the longest delay before a kill, default 25: release commands are
//! faster than debug ones). Prints each run, the totals (kills by kind) and
//! every failure with its seed and round; a failing seed becomes a named
//! regression test in `crates/cli/tests/kill.rs`.

#[path = "../../crates/cli/tests/kill.rs"]
#[allow(dead_code)]
mod kill;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `target/release`, where this bench's executable (`target/release/deps/…`)
/// finds the release binaries.
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/release")
        .to_path_buf()
}

fn main() -> ExitCode {
    let total: usize = env("HB_KILL_ROUNDS", 3_000);
    let per_run: usize = env("HB_KILL_RUN_ROUNDS", 500).max(1);
    let first_seed: u64 = env("HB_KILL_SEED", rand::random::<u64>());
    let max_delay = Duration::from_millis(env("HB_KILL_MAX_DELAY_MS", 25));
    let dir = release_dir();
    let exe = std::env::consts::EXE_SUFFIX;
    let cli = dir.join(format!("heartbridge{exe}"));
    let relay = dir.join(format!("heartbridge-relay{exe}"));
    for bin in [&cli, &relay] {
        if !bin.is_file() {
            eprintln!(
                "{} is missing: run `cargo build --release -p heartbridge-cli -p heartbridge-relay` first",
                bin.display()
            );
            return ExitCode::FAILURE;
        }
    }
    println!(
        "kill soak: {total} rounds in runs of {per_run}, first seed {first_seed}, kills within {max_delay:?}, \
         binaries in {}, load average {}",
        dir.display(),
        loadavg()
    );
    let started = Instant::now();
    let mut sum = kill::Stats::default();
    let mut failures = Vec::new();
    let mut done = 0;
    let mut run = 0u64;
    while done < total {
        let rounds = per_run.min(total - done);
        let cfg = kill::Config {
            cli: cli.clone(),
            relay: relay.clone(),
            seed: first_seed.wrapping_add(run),
            rounds,
            max_delay,
        };
        match kill::soak(&cfg) {
            Ok(stats) => {
                println!("run {run} (seed {}): {stats}", cfg.seed);
                sum.add(&stats);
            }
            Err(f) => {
                println!("run {run} FAILED: {f}");
                failures.push(f);
            }
        }
        done += rounds;
        run += 1;
    }
    println!(
        "total: {run} runs, {} rounds passed in {:.1} s wall; SIGKILLs landed: {} syncing CLIs, {} writing CLIs, {} relays \
         ({} more sent to a CLI that had already exited); writes {} saved, {} killed ({} of them landed); \
         syncs {} ok ({} after retrying a network failure), {} failed under a killed relay; {} failed runs; load average at the end {}",
        sum.rounds,
        started.elapsed().as_secs_f64(),
        sum.killed_syncs,
        sum.killed_writes,
        sum.killed_relays,
        sum.missed,
        sum.writes_saved,
        sum.writes_maybe,
        sum.maybe_landed,
        sum.syncs_ok,
        sum.syncs_retried,
        sum.syncs_failed,
        failures.len(),
        loadavg()
    );
    for f in &failures {
        println!("FAILURE: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
