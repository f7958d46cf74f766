//! Bytes on the wire: real devices (`heartbridge_core::Store` profiles,
//! `heartbridge_client`) sync through a real relay (the release binary, a
//! child process) behind a TCP proxy that counts every byte each way, HTTP
//! headers included (TCP/IP framing is not counted).
//!
//! (a) a no-op sync of a device holding 10, 100 and 1,000 documents;
//! (b) the bytes of a sync against the raw Automerge change bytes it
//!     carries (the device's outbox before the sync), pushed by one device
//!     and pulled by a teammate.
//!
//! Run: `cargo build --release -p heartbridge-relay &&
//! cargo bench -p heartbridge-benches --bench wire`. Prints Markdown for
//! BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use heartbridge_benches::{
    create_team, handbook_paragraphs, lead_token, load_average, note_text, start_proxy,
    zh_handbooks, Counters, RelayProcess, Traffic,
};
use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{CaseUpdate, Channel, Group, NewCase, Risk, Store, SyncOptions, SyncReport};
use rand::SeedableRng;

/// One sync over a fresh transport (as one `heartbridge sync` does), and
/// what went through the proxy for it.
fn sync(store: &mut Store, counters: &Counters) -> (SyncReport, Traffic, Duration) {
    counters.take();
    let started = Instant::now();
    let report = store
        .sync(
            &mut BlockingTransport::default(),
            &SyncOptions::default(),
            &mut |_| {},
        )
        .expect("sync");
    let took = started.elapsed();
    // The proxy counts every read before it forwards it, so all of this
    // sync's bytes are counted once its last response has arrived.
    (report, counters.take(), took)
}

fn raw_outbox(store: &Store) -> (usize, usize) {
    let out = store.outbox().expect("outbox");
    (out.len(), out.iter().map(|o| o.bytes.len()).sum())
}

fn main() {
    let load_before = load_average();
    let relay_dir = tempfile::tempdir().expect("temp dir");
    let db = relay_dir.path().join("relay.db");
    let noop_team = create_team(&db, "wire bench: no-op");
    let delta_team = create_team(&db, "wire bench: deltas");
    let relay = RelayProcess::spawn(&db, "warn");
    let proxy = start_proxy(relay.addr);
    let url = format!("http://{}", proxy.addr);
    let c = &proxy.counters;
    let work = tempfile::tempdir().expect("temp dir");

    // ---- (a) no-op syncs.
    let mut lone = Store::init(
        &work.path().join("lone"),
        "林老师",
        &heartbridge_core::testing::protection(),
    )
    .expect("init");
    heartbridge_client::claim(&mut lone, &url, &lead_token(&noop_team)).expect("claim");
    let mut noop_rows = Vec::new();
    let mut noop_heads = String::new();
    let mut held = 0;
    for target in [10usize, 100, 1000] {
        while held < target {
            lone.new_case(&NewCase {
                alias: format!("个案{held}"),
                group: Group::ExamStress,
                risk: Risk::Low,
            })
            .expect("new case");
            held += 1;
        }
        // Push them all; then sync with nothing to say, a few times.
        let (r, push_traffic, _) = sync(&mut lone, c);
        assert_eq!(r.pending, 0, "everything pushed");
        eprintln!(
            "{target} documents pushed: {} requests, {} B up, {} B down",
            push_traffic.requests, push_traffic.up, push_traffic.down
        );
        let mut runs = Vec::new();
        for _ in 0..5 {
            let (r, t, took) = sync(&mut lone, c);
            assert_eq!((r.pushed, r.pulled), (0, 0), "a no-op sync");
            runs.push((r, t, took));
        }
        if target == 10 {
            let heads = c.last_heads.lock().unwrap_or_else(|p| p.into_inner());
            let show = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(|l| match l.split_once("Bearer ") {
                        Some((k, t)) => format!("{k}Bearer <{} characters>", t.len()),
                        None => l.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            noop_heads = format!(
                "Request head:\n\n```\n{}\n```\n\nResponse head:\n\n```\n{}\n```\n",
                show(&heads.0).trim_end(),
                show(&heads.1).trim_end()
            );
        }
        let (r, t, _) = runs[0].clone();
        let same = runs.iter().all(|(_, x, _)| *x == t);
        let mut times: Vec<Duration> = runs.iter().map(|x| x.2).collect();
        times.sort();
        noop_rows.push(format!(
            "| {target} | {} | {} | {} | {} ({} B body) | {} ({} B body) | {:.1} ms |{}",
            r.requests,
            t.requests,
            t.connections,
            t.up,
            r.bytes_sent,
            t.down,
            r.bytes_received,
            times[times.len() / 2].as_secs_f64() * 1000.0,
            if same {
                ""
            } else {
                " (bytes varied between runs)"
            }
        ));
    }

    // ---- (b) deltas: device A writes and pushes, teammate B pulls.
    let mut a = Store::init(
        &work.path().join("a"),
        "林老师",
        &heartbridge_core::testing::protection(),
    )
    .expect("init a");
    heartbridge_client::claim(&mut a, &url, &lead_token(&delta_team)).expect("claim");
    let code = heartbridge_client::invite(&mut a, Role::Volunteer).expect("invite");
    let mut b = Store::init(
        &work.path().join("b"),
        "王同学",
        &heartbridge_core::testing::protection(),
    )
    .expect("init b");
    heartbridge_client::join(&mut b, &code).expect("join");
    sync(&mut a, c);
    sync(&mut b, c);

    let paragraphs = handbook_paragraphs();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let handbook = zh_handbooks()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a sample handbook");
    let handbook_name = handbook
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let handbook_bytes = std::fs::metadata(&handbook).expect("stat").len();

    let mut delta_rows = Vec::new();
    let mut case_id = None;
    let scenarios: [&str; 5] = [
        "new case, 3 contacts of 300 characters",
        "one contact added (300 characters)",
        "risk changed",
        "whole handbook imported",
        "handbook re-imported, one paragraph changed",
    ];
    for (i, what) in scenarios.iter().enumerate() {
        match i {
            0 => {
                let id = a
                    .new_case(&NewCase {
                        alias: "小雨".into(),
                        group: Group::LeftBehind,
                        risk: Risk::Medium,
                    })
                    .expect("new case");
                for k in 0..3 {
                    a.add_contact(
                        &id,
                        if k == 0 {
                            Channel::Hotline
                        } else {
                            Channel::Online
                        },
                        &note_text(&paragraphs, 300, &mut rng),
                        Some(25),
                    )
                    .expect("contact");
                }
                case_id = Some(id);
            }
            1 => {
                a.add_contact(
                    case_id.as_ref().expect("case"),
                    Channel::InPerson,
                    &note_text(&paragraphs, 300, &mut rng),
                    Some(40),
                )
                .expect("contact");
            }
            2 => {
                a.update_case(
                    case_id.as_ref().expect("case"),
                    &CaseUpdate {
                        risk: Some(Risk::High),
                        ..Default::default()
                    },
                )
                .expect("risk");
            }
            3 => {
                a.import_handbooks(std::slice::from_ref(&handbook))
                    .expect("import");
            }
            _ => {
                let edited = work.path().join("edited");
                std::fs::create_dir_all(&edited).expect("mkdir");
                let copy = edited.join(&handbook_name);
                write_with_one_paragraph_changed(&handbook, &copy);
                let r = a.import_handbooks(&[copy]).expect("re-import");
                assert_eq!(r[0].outcome, "updated");
            }
        }
        let (rows, raw) = raw_outbox(&a);
        let (ra, ta, _) = sync(&mut a, c);
        assert_eq!(ra.pending, 0);
        let (rb, tb, _) = sync(&mut b, c);
        assert!(rb.pulled >= 1, "the teammate pulls it");
        delta_rows.push(format!(
            "| {what} | {rows} | {raw} | {} | {} / {} | {} B ({:.2}×) | {} B | {} / {} | {} B | {} B ({:.2}×) |",
            ra.pushed,
            ra.requests,
            ta.requests,
            ta.up,
            ta.up as f64 / raw as f64,
            ta.down,
            rb.requests,
            tb.requests,
            tb.up,
            tb.down,
            tb.down as f64 / raw as f64,
        ));
    }
    let warnings = relay
        .warnings
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    relay.stop();
    let load_after = load_average();

    println!("### (a) No-op sync\n");
    println!(
        "| documents on the device | requests (client report) | requests (proxy) | TCP connections | bytes up, headers incl. | bytes down, headers incl. | wall time (median of 5) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &noop_rows {
        println!("{r}");
    }
    println!("\n{noop_heads}");
    println!(
        "\n### (b) Bytes per sync against the raw Automerge change bytes\n\nHandbook: `handbooks/zh/{handbook_name}` ({handbook_bytes} bytes of Markdown).\n"
    );
    println!(
        "| change on device A | outbox rows | raw change bytes | envelopes pushed | A: requests (client / proxy) | A: bytes up (÷ raw) | A: bytes down | B: requests (client / proxy) | B: bytes up | B: bytes down (÷ raw) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &delta_rows {
        println!("{r}");
    }
    println!("\nload average before: {load_before}; after: {load_after}");
    if !warnings.is_empty() {
        println!("\nrelay warnings:");
        for w in warnings {
            println!("    {w}");
        }
    }
}

/// Copies a handbook, appending a sentence to one paragraph in its middle.
fn write_with_one_paragraph_changed(from: &Path, to: &Path) {
    let text = std::fs::read_to_string(from).expect("read handbook");
    let mut paras: Vec<String> = text.split("\n\n").map(str::to_owned).collect();
    let candidates: Vec<usize> = paras
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.starts_with('#') && !p.starts_with("---") && p.chars().count() > 60)
        .map(|(i, _)| i)
        .collect();
    let i = candidates[candidates.len() / 2];
    paras[i].push_str("（培训后补充：接到此类来电时，先确认来电者此刻是否安全。）");
    std::fs::write(to, paras.join("\n\n")).expect("write edited handbook");
}
