//! Proof by simulation: random histories of offline edits, handbook
//! imports, joins, snapshots, crashes and syncs over a faulty network end
//! with every device holding the same documents, every saved change, the
//! risk the merge rule promises, and a relay without duplicates.
//!
//! CI runs a fixed set of histories (`PROPTEST_CASES` raises the count,
//! `PROPTEST_RNG_SEED` picks others); `cargo bench -p heartbridge-benches
//! --bench soak` runs many more in release. A failure prints the minimal
//! history (its `net_seed` included); each one found becomes a named
//! `seed_*` test below.

#[path = "sim/mod.rs"]
mod sim;

use heartbridge_core::{Risk, Status};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use sim::history::{history, History, Op, SyncCfg, TextEdit};

/// Operations per generated history.
const MAX_OPS: usize = 40;

fn config() -> Config {
    let env = Config::default(); // reads PROPTEST_* variables
    let set = |v: &str| std::env::var_os(v).is_some();
    Config {
        cases: if set("PROPTEST_CASES") { env.cases } else { 64 },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            env.rng_seed
        } else {
            RngSeed::Fixed(0x4842_5247)
        },
        // Failures become named tests here, not files beside the source.
        failure_persistence: None,
        // A failure in CI is shown reduced within about half a minute.
        max_shrink_iters: 2_000,
        max_shrink_time: 30_000,
        ..env
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_histories_converge(h in history(MAX_OPS)) {
        sim::world::run(&h).map_err(TestCaseError::fail)?;
    }
}

fn sync(devs: &[u8]) -> Op {
    Op::Sync(
        devs.iter()
            .map(|&d| {
                (
                    d,
                    SyncCfg {
                        page_bytes: 0,
                        max_push_bytes: 512 * 1024,
                        snapshot_all: false,
                    },
                )
            })
            .collect(),
    )
}

fn quiet(devices: usize, ops: Vec<Op>) -> History {
    History {
        devices,
        net_seed: 0,
        faults: 0,
        ops,
    }
}

/// A fault-free history that touches every kind of operation once (two
/// long notes make the case larger than the relay's body limit, and a
/// snapshot of it then has to travel in parts); if this fails, the harness
/// or the basics are broken, not a corner case.
#[test]
fn a_plain_history_converges() {
    let h = quiet(
        3,
        vec![
            Op::NewCase {
                dev: 0,
                risk: Risk::Low,
            },
            Op::AddContact {
                dev: 0,
                case: 0,
                note: "情绪平稳",
            },
            sync(&[0, 1, 2]),
            Op::SetRisk {
                dev: 1,
                case: 0,
                risk: Risk::High,
            },
            Op::SetRisk {
                dev: 2,
                case: 0,
                risk: Risk::Medium,
            },
            Op::EditNote {
                dev: 1,
                case: 0,
                contact: 0,
                edit: TextEdit::Append("ok"),
            },
            Op::EditNote {
                dev: 2,
                case: 0,
                contact: 0,
                edit: TextEdit::Prepend("ok"),
            },
            Op::SetStatus {
                dev: 2,
                case: 0,
                status: Status::Referred,
            },
            Op::Tag {
                dev: 0,
                case: 0,
                tag: "school",
                remove: false,
            },
            Op::ImportHandbook {
                dev: 0,
                book: 0,
                revision: 0,
            },
            Op::LongNote {
                dev: 1,
                case: 0,
                kib: 90,
                seed: 1,
            },
            Op::LongNote {
                dev: 2,
                case: 0,
                kib: 90,
                seed: 2,
            },
            sync(&[1, 2, 0]),
            Op::ImportHandbook {
                dev: 1,
                book: 0,
                revision: 2,
            },
            Op::Crash { dev: 1 },
            snapshot(0),
            Op::Join,
            sync(&[0, 1, 2, 3]),
        ],
    );
    let stats = sim::world::run(&h).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.joins, 1);
}

/// Every kind of fault the network knows happens in this run, and the team
/// still converges: the fault machinery is not dead code.
#[test]
fn a_hostile_network_is_survived() {
    let mut ops = vec![
        Op::NewCase {
            dev: 0,
            risk: Risk::Low,
        },
        sync(&[0, 1, 2]),
    ];
    for round in 0..60u8 {
        let dev = round % 3;
        ops.push(match round % 4 {
            0 => Op::SetRisk {
                dev,
                case: 0,
                risk: Risk::ALL[usize::from(round) % 5],
            },
            1 => Op::AddContact {
                dev,
                case: 0,
                note: "情绪平稳",
            },
            2 => Op::EditNote {
                dev,
                case: 0,
                contact: round,
                edit: TextEdit::Append("ok"),
            },
            _ => Op::ImportHandbook {
                dev,
                book: round % 2,
                revision: round % 4,
            },
        });
        ops.push(sync(&[0, 1, 2]));
    }
    let h = History {
        devices: 3,
        net_seed: 7,
        faults: 3,
        ops,
    };
    let stats = sim::world::run(&h).unwrap_or_else(|e| panic!("{e}"));
    let n = stats.net;
    let each = [
        ("reordered", n.reordered),
        ("dropped requests", n.dropped_requests),
        ("dropped responses", n.dropped_responses),
        ("duplicated", n.duplicated),
        ("cut", n.cut),
        ("late", n.late),
        ("crashes", n.crashes),
    ];
    for (what, count) in each {
        assert!(count > 0, "no {what} in {n:?}");
    }
}

/// The invariants are not vacuous: a change that never left its device
/// trips every one that should notice it.
#[test]
fn the_invariants_notice_a_change_that_never_left_its_device() {
    use sim::invariants::*;
    let mut s = sim::world::Sim::new(&quiet(2, Vec::new())).unwrap_or_else(|e| panic!("{e}"));
    let step = |s: &mut sim::world::Sim, op: Op| s.step(&op).unwrap_or_else(|e| panic!("{e}"));
    step(
        &mut s,
        Op::NewCase {
            dev: 0,
            risk: Risk::Low,
        },
    );
    s.quiesce().unwrap_or_else(|e| panic!("{e}"));
    check_all(&mut s).unwrap_or_else(|e| panic!("{e}"));

    // Device 1 raises the risk and never syncs.
    step(
        &mut s,
        Op::SetRisk {
            dev: 1,
            case: 0,
            risk: Risk::High,
        },
    );
    let failed = |r: Result<(), String>| r.expect_err("the invariant must notice");
    assert!(failed(check_all(&mut s)).starts_with("outboxes_are_empty"));
    assert!(
        failed(every_saved_change_is_on_every_device(&s.devices, &s.saved))
            .contains("device 0 lacks change")
    );
    assert!(failed(devices_hold_identical_documents(&s.devices)).contains("different heads"));
    let risk = failed(risk_is_the_highest_concurrent_value(
        &s.devices,
        &s.risk_writes,
    ));
    assert!(
        risk.contains("device 0 has risk low, the model says high"),
        "{risk}"
    );
}

fn snapshot(dev: u8) -> Op {
    Op::Sync(vec![(
        dev,
        SyncCfg {
            page_bytes: 0,
            max_push_bytes: 512 * 1024,
            snapshot_all: true,
        },
    )])
}

/// Found by `random_histories_converge` (case 25 of the fixed seed, 2
/// devices, no network faults), reduced by hand. Device 1 opens a case (X)
/// and raises its risk (Y, which depends on X); device 0, which has X but
/// not yet Y, snapshots the case, so the relay drops X; a device that
/// joins then pulls Y before the snapshot. Y's parent is missing when Y
/// arrives, and the store must not let Y go: the joiner has to end up with
/// Y like everyone else.
#[test]
fn seed_a_late_joiner_keeps_a_change_whose_parent_a_snapshot_compacted() {
    let h = quiet(
        2,
        vec![
            Op::NewCase {
                dev: 1,
                risk: Risk::None,
            },
            sync(&[1]),
            sync(&[0]),
            Op::SetRisk {
                dev: 1,
                case: 0,
                risk: Risk::Low,
            },
            sync(&[1]),
            snapshot(0),
            Op::Join,
            sync(&[2]),
        ],
    );
    if let Err(e) = sim::world::run(&h) {
        panic!("{e}");
    }
}

/// Found by the soak (`cargo bench -p heartbridge-benches --bench soak`,
/// batch seeds 30, 61, 64 and 69 of the first 2,000 histories, all the
/// same failure), reduced by hand. Devices 0 and 1 set the risk to high
/// and low at the same time, so everyone sees both. Then, again at the
/// same time, device 2 (having seen both) sets it to high and device 1
/// (having seen both) sets it to low. Those two writes are concurrent, so
/// the merge rule keeps both and the case's risk must be high. The write
/// of "high" over a register whose winning value already is "high" is
/// stored as a delete of the other value only, and the concurrent "low"
/// then overwrites the old "high": the case ends low.
#[test]
fn seed_a_concurrent_low_does_not_undo_resolving_a_risk_conflict_to_high() {
    let h = quiet(
        3,
        vec![
            Op::NewCase {
                dev: 0,
                risk: Risk::None,
            },
            sync(&[0]),
            sync(&[1]),
            sync(&[2]),
            // Device 0's later operations give its "high" the larger
            // Lamport counter, so "high" is the winning value everywhere.
            Op::AddContact {
                dev: 0,
                case: 0,
                note: "ok",
            },
            Op::SetRisk {
                dev: 0,
                case: 0,
                risk: Risk::High,
            },
            Op::SetRisk {
                dev: 1,
                case: 0,
                risk: Risk::Low,
            },
            sync(&[0]),
            sync(&[1]),
            sync(&[0]),
            sync(&[2]),
            Op::SetRisk {
                dev: 2,
                case: 0,
                risk: Risk::High,
            },
            Op::SetRisk {
                dev: 1,
                case: 0,
                risk: Risk::Low,
            },
        ],
    );
    if let Err(e) = sim::world::run(&h) {
        panic!("{e}");
    }
}

/// Found by the soak (batch seeds 1002–1059 and 2005–2011, the "lacks
/// change" and "lacks document" failures), diagnosed from the relay's log
/// and reduced by hand. A case with a long note is snapshotted in parts.
/// A second device holding exactly the same document then snapshots it
/// too: Automerge saves the same bytes, so its parts have the same content
/// ids and the relay deduplicates them, but its final part carries a later
/// `covers` (its cursor is past the first snapshot), and the relay
/// compacts with that `covers` from the stored final part's place: it
/// deletes the first snapshot's own earlier parts. The final part alone
/// cannot be assembled, so a device that joins afterwards never gets the
/// case.
#[test]
fn seed_a_twin_snapshot_does_not_delete_the_parts_of_the_first() {
    let h = quiet(
        3,
        vec![
            Op::NewCase {
                dev: 0,
                risk: Risk::Low,
            },
            Op::LongNote {
                dev: 0,
                case: 0,
                kib: 90,
                seed: 1,
            },
            sync(&[0]),
            sync(&[1]),
            sync(&[2]),
            snapshot(1),
            sync(&[2]),
            snapshot(2),
            Op::Join,
            sync(&[3]),
        ],
    );
    if let Err(e) = sim::world::run(&h) {
        panic!("{e}");
    }
}
