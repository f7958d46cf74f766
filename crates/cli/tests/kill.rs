//! Proof with real processes: `heartbridge` CLI processes on real profile
//! directories and the real `heartbridge-relay` binary, killed with SIGKILL
//! at random instants while they write and sync. Nothing reported saved is
//! lost, nothing is doubled, and every SQLite file passes
//! `PRAGMA integrity_check`.
//!
//! Each round, some of the three devices write (a new case, a contact, a
//! risk change, a contact edit, in Chinese), some sync (sometimes with
//! `--snapshot`, sometimes with small `--page-bytes`), and after a random
//! delay (20 µs to tens of ms, from a seeded RNG) the test SIGKILLs a
//! syncing CLI, a writing CLI or the relay (which it restarts on the same
//! port and database, waiting for `/healthz`). The model: a write whose
//! command exited 0 was reported saved and must be on every device exactly
//! once; a killed write is "maybe" and must be on all devices or on none.
//! At the end every device syncs until quiet, and the test compares them.
//!
//! The relay is another package's binary, so Cargo gives this test no
//! `CARGO_BIN_EXE_` path for it: it is taken from next to the CLI binary
//! (`target/debug/heartbridge-relay`). `scripts/test` runs
//! `cargo nextest run --workspace` (or `cargo test --workspace`), which
//! builds it (the relay package has integration tests of its own); alone,
//! run `cargo build -p heartbridge-relay` before
//! `cargo test -p heartbridge-cli --test kill`.
//!
//! `HB_KILL_SEED` replays a seed's choices (process timing still varies),
//! `HB_KILL_ROUNDS` changes the number of rounds (default 300). The
//! benchmark `benches/benches/kill_soak.rs` runs this same code for many
//! more rounds against release binaries.
#![cfg(unix)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// What one soak runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `heartbridge` binary.
    pub cli: PathBuf,
    /// The `heartbridge-relay` binary.
    pub relay: PathBuf,
    pub seed: u64,
    pub rounds: usize,
    /// The longest random delay before a kill (the shortest is 20 µs).
    pub max_delay: Duration,
}

/// What a soak did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub rounds: usize,
    /// SIGKILLs that hit a syncing CLI while it ran.
    pub killed_syncs: usize,
    /// SIGKILLs that hit a writing CLI while it ran.
    pub killed_writes: usize,
    /// SIGKILLs of the relay (each followed by a restart).
    pub killed_relays: usize,
    /// SIGKILLs sent to a CLI that had already exited.
    pub missed: usize,
    pub writes_saved: usize,
    /// Killed writes, and of them those found on the devices at the end.
    pub writes_maybe: usize,
    pub maybe_landed: usize,
    pub syncs_ok: usize,
    /// Syncs that failed because the relay was killed under them.
    pub syncs_failed: usize,
    /// Syncs that met a network failure (the relay killed under them) and
    /// finished by retrying.
    pub syncs_retried: usize,
    pub snapshot_syncs: usize,
    pub small_page_syncs: usize,
    /// Cases and contacts on every device at the end.
    pub cases: usize,
    pub contacts: usize,
    /// Sync passes over all devices until one moved nothing.
    pub settle_passes: usize,
    pub elapsed: Duration,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.rounds += o.rounds;
        self.killed_syncs += o.killed_syncs;
        self.killed_writes += o.killed_writes;
        self.killed_relays += o.killed_relays;
        self.missed += o.missed;
        self.writes_saved += o.writes_saved;
        self.writes_maybe += o.writes_maybe;
        self.maybe_landed += o.maybe_landed;
        self.syncs_ok += o.syncs_ok;
        self.syncs_failed += o.syncs_failed;
        self.syncs_retried += o.syncs_retried;
        self.snapshot_syncs += o.snapshot_syncs;
        self.small_page_syncs += o.small_page_syncs;
        self.cases += o.cases;
        self.contacts += o.contacts;
        self.settle_passes = self.settle_passes.max(o.settle_passes);
        self.elapsed += o.elapsed;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rounds in {:.1} s; SIGKILLs: {} syncing CLIs, {} writing CLIs, {} relays ({} more hit a CLI that had already exited); \
             writes: {} saved, {} killed ({} of them landed); syncs: {} ok ({} --snapshot, {} small --page-bytes, {} after retrying a network failure), {} failed under a killed relay; \
             at the end: {} cases, {} contacts, quiet after {} passes",
            self.rounds,
            self.elapsed.as_secs_f64(),
            self.killed_syncs,
            self.killed_writes,
            self.killed_relays,
            self.missed,
            self.writes_saved,
            self.writes_maybe,
            self.maybe_landed,
            self.syncs_ok,
            self.snapshot_syncs,
            self.small_page_syncs,
            self.syncs_retried,
            self.syncs_failed,
            self.cases,
            self.contacts,
            self.settle_passes,
        )
    }
}

/// A failed soak: the seed, the round (none: the final check) and what was
/// wrong, in markers and ids only (never note text).
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub rounds: usize,
    pub round: Option<usize>,
    pub what: String,
    /// The profiles and relay database, kept for inspection.
    pub kept: Option<PathBuf>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.round {
            Some(r) => write!(f, "kill soak seed {} failed in round {r}: ", self.seed)?,
            None => write!(
                f,
                "kill soak seed {} failed in the final check after {} rounds: ",
                self.seed, self.rounds
            )?,
        }
        write!(f, "{}", self.what)?;
        if let Some(k) = &self.kept {
            write!(f, "\n(profiles and relay database kept in {})", k.display())?;
        }
        write!(
            f,
            "\nreplay the seed's choices (timing varies): HB_KILL_SEED={} HB_KILL_ROUNDS={} cargo test -p heartbridge-cli --test kill",
            self.seed, self.rounds
        )
    }
}

/// Runs one soak: a fresh relay and team of three devices, `rounds` rounds
/// of kills, then the final check.
pub fn soak(cfg: &Config) -> Result<Stats, Failure> {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let fail = |round, what: String, dir: tempfile::TempDir| Failure {
        seed: cfg.seed,
        rounds: cfg.rounds,
        round,
        what,
        kept: Some(dir.keep()),
    };
    let mut world = match World::new(cfg, dir.path()) {
        Ok(w) => w,
        Err(e) => return Err(fail(None, format!("setup: {e}"), dir)),
    };
    for r in 1..=cfg.rounds {
        if let Err(e) = world.round() {
            drop(world);
            return Err(fail(Some(r), e, dir));
        }
        world.stats.rounds = r;
    }
    if let Err(e) = world.settle_and_check() {
        drop(world);
        return Err(fail(None, e, dir));
    }
    world.stats.elapsed = started.elapsed();
    Ok(world.stats.clone())
}

const DEVICES: usize = 3;
const NAMES: [&str; DEVICES] = ["林老师", "小王", "阿芳"];
const MAX_CASES: usize = 18;
const RISKS: [&str; 5] = ["none", "low", "medium", "high", "critical"];
const GROUPS: [&str; 6] = [
    "left-behind",
    "migrant",
    "disability",
    "hardship",
    "exam-stress",
    "other",
];
const CHANNELS: [&str; 3] = ["hotline", "in-person", "online"];
const PHRASES: [&str; 14] = [
    "来电说最近总是睡不着",
    "考试前压力很大，常常一个人哭",
    "和父母的关系有些紧张",
    "约好下周三下午再联系",
    "提到有自伤的念头，已一起做了安全计划",
    "在外地打工，孩子留在老家由奶奶照顾",
    "需要转介到医院的心理门诊",
    "今天情绪平稳了一些，愿意出门散步",
    "说话声音很低，停顿很多",
    "同意明天给班主任打电话",
    "担心房租，这个月工资还没发",
    "轮椅坏了，出行很不方便",
    "“我觉得没人懂我”——原话",
    "谈到弟弟，语气轻松了",
];
const ENDINGS: [&str; 6] = ["。", "！", "……", "？", "。\n", "；"];

fn note(rng: &mut StdRng, marker: &str) -> String {
    let mut s = marker.to_owned();
    // Now and then a long note, so small pages carry one envelope in parts
    // of several rounds.
    let n = if rng.random_bool(0.05) {
        rng.random_range(20..60)
    } else {
        rng.random_range(1..4)
    };
    for _ in 0..n {
        s.push_str(PHRASES.choose(rng).expect("phrases"));
        s.push_str(ENDINGS.choose(rng).expect("endings"));
    }
    s.trim_end().to_owned()
}

/// A write the model knows the fate of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The command exited 0: it reported the write saved.
    Saved,
    /// The command was killed: saved or not.
    Maybe,
}

#[derive(Debug)]
struct CaseM {
    marker: String,
    creator: usize,
    fate: Fate,
    id: Option<String>,
    risk: &'static str,
    /// Risk changes, in order, all by the creator (so they are sequential
    /// and the last one that landed is the case's risk).
    risk_sets: Vec<(&'static str, Fate)>,
}

#[derive(Debug)]
struct ContactM {
    marker: String,
    case: usize,
    author: usize,
    fate: Fate,
    id: Option<String>,
    text: String,
    /// Edits, in order, all by the author.
    edits: Vec<(String, Fate)>,
}

#[derive(Debug, Clone)]
enum Op {
    NewCase {
        marker: String,
        alias: String,
        group: &'static str,
        risk: &'static str,
    },
    Contact {
        case: usize,
        marker: String,
        text: String,
        channel: &'static str,
        minutes: Option<u32>,
    },
    SetRisk {
        case: usize,
        risk: &'static str,
    },
    Edit {
        contact: usize,
        text: String,
    },
}

#[derive(Debug, Clone)]
enum Job {
    Write(Op),
    Sync { snapshot: bool, page_bytes: u32 },
}

struct Proc {
    device: usize,
    job: Job,
    child: Child,
}

/// The real relay binary as a child process.
struct RelayProc {
    bin: PathBuf,
    db: PathBuf,
    addr: Option<SocketAddr>,
    child: Option<Child>,
}

impl RelayProc {
    fn start(&mut self) -> Result<(), String> {
        let listen = match self.addr {
            Some(a) => a.to_string(),
            None => "127.0.0.1:0".to_owned(),
        };
        let mut child = Command::new(&self.bin)
            .args(["serve", "--listen", &listen, "--db"])
            .arg(&self.db)
            .env("HEARTBRIDGE_RELAY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        // Read the relay's stderr to its end (so it never blocks on a full
        // pipe), handing over the address it says it listens on.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(a.trim().to_owned());
                    }
                }
            }
        });
        self.child = Some(child);
        let said = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(said) => said,
            Err(_) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                return Err(format!(
                    "the relay did not say where it listens within 30 s (exit status: {status:?})"
                ));
            }
        };
        let addr: SocketAddr = said
            .parse()
            .map_err(|_| format!("the relay listens on an unreadable address {said:?}"))?;
        if let Some(a) = self.addr {
            if a != addr {
                return Err(format!("the relay restarted on {addr}, not {a}"));
            }
        }
        self.addr = Some(addr);
        self.wait_healthy(Duration::from_secs(30))
    }

    /// Asks `GET /healthz` until it answers 200, the relay exits, or the
    /// timeout passes. The relay has said it listens, so each attempt waits
    /// on the socket (its backlog holds the connection until it answers).
    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = self.addr.expect("address known");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!("the relay exited while starting: {status}"));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "the relay's /healthz did not answer 200 within {timeout:?}"
                ));
            }
            if healthz(addr, left) {
                return Ok(());
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr.expect("address known"))
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `GET /healthz` over a fresh connection: true on a 200 within
/// `timeout`.
fn healthz(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

struct World {
    cfg: Config,
    rng: StdRng,
    relay: RelayProc,
    profiles: Vec<PathBuf>,
    cases: Vec<CaseM>,
    contacts: Vec<ContactM>,
    /// Cases each device is known to hold.
    knows: Vec<HashSet<usize>>,
    /// Cases known to be at the relay.
    at_relay: HashSet<usize>,
    next_marker: usize,
    stats: Stats,
}

fn exit_text(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    format!("{} ({})", out.status, stderr.trim())
}

fn json_of(out: &Output) -> Result<Value, String> {
    serde_json::from_slice(&out.stdout).map_err(|e| format!("stdout is not one JSON document: {e}"))
}

impl World {
    fn new(cfg: &Config, dir: &Path) -> Result<World, String> {
        for bin in [&cfg.cli, &cfg.relay] {
            if !bin.is_file() {
                return Err(format!(
                    "{} is missing: build the binaries first (`cargo build -p heartbridge-cli -p heartbridge-relay`, \
                     or with --release for the benchmark); scripts/test builds the whole workspace before its tests",
                    bin.display()
                ));
            }
        }
        let db = dir.join("relay").join("relay.db");
        std::fs::create_dir_all(db.parent().expect("parent")).map_err(|e| e.to_string())?;
        let created = Command::new(&cfg.relay)
            .args(["team", "create", "热线组", "--json", "--db"])
            .arg(&db)
            .output()
            .map_err(|e| e.to_string())?;
        if !created.status.success() {
            return Err(format!("team create: {}", exit_text(&created)));
        }
        let created = json_of(&created)?;
        let token = created["lead_token"]
            .as_str()
            .ok_or("no lead token")?
            .to_owned();
        let mut relay = RelayProc {
            bin: cfg.relay.clone(),
            db,
            addr: None,
            child: None,
        };
        relay.start()?;
        let world = World {
            cfg: cfg.clone(),
            rng: StdRng::seed_from_u64(cfg.seed),
            profiles: (0..DEVICES)
                .map(|i| dir.join(format!("device{i}")))
                .collect(),
            relay,
            cases: Vec::new(),
            contacts: Vec::new(),
            knows: vec![HashSet::new(); DEVICES],
            at_relay: HashSet::new(),
            next_marker: 0,
            stats: Stats::default(),
        };
        let url = world.relay.url();
        world.ok(
            0,
            &[
                "team", "claim", "--relay", &url, "--token", &token, "--name", NAMES[0],
            ],
        )?;
        // Every device writes into every case: the lead reads cases and the
        // others are supervisors (who reads what is tested in need_to_know.rs).
        world.ok(0, &["team", "settings", "--lead-reads-cases", "true"])?;
        for (i, name) in NAMES.iter().enumerate().skip(1) {
            let invite = world.ok(0, &["team", "invite", "--role", "supervisor"])?;
            let code = invite["code"].as_str().ok_or("no invite code")?.to_owned();
            world.ok(i, &["join", &code, "--name", name])?;
        }
        Ok(world)
    }

    fn cli(&self, device: usize, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cfg.cli);
        c.arg("--profile")
            .arg(&self.profiles[device])
            .arg("--json")
            .args(args)
            .env_remove("HEARTBRIDGE_PROFILE")
            .env(
                "HEARTBRIDGE_PASSPHRASE",
                heartbridge_core::testing::TEST_PIN,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs a command to its end (no kill); it must succeed.
    fn ok(&self, device: usize, args: &[&str]) -> Result<Value, String> {
        let out = self
            .cli(device, args)
            .output()
            .map_err(|e| format!("running heartbridge: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "device {device}: `heartbridge {}` failed: {}",
                args.first().copied().unwrap_or_default(),
                exit_text(&out)
            ));
        }
        json_of(&out)
    }

    fn marker(&mut self, prefix: char) -> String {
        self.next_marker += 1;
        format!("⟦{prefix}{}⟧", self.next_marker)
    }

    /// A write for `device`, on what it is known to hold.
    fn plan_write(&mut self, device: usize) -> Op {
        let known: Vec<usize> = {
            let mut k: Vec<usize> = self.knows[device].iter().copied().collect();
            k.sort_unstable();
            k
        };
        let own_cases: Vec<usize> = known
            .iter()
            .copied()
            .filter(|&c| self.cases[c].creator == device && self.cases[c].id.is_some())
            .collect();
        let own_contacts: Vec<usize> = (0..self.contacts.len())
            .filter(|&c| self.contacts[c].author == device && self.contacts[c].id.is_some())
            .collect();
        let roll = self.rng.random_range(0..100);
        if known.is_empty() || (roll < 12 && self.cases.len() < MAX_CASES) {
            let marker = self.marker('a');
            let alias = format!(
                "{marker}{}",
                ["小雨", "阿明", "小林", "晓晓", "老周", "小美"]
                    .choose(&mut self.rng)
                    .expect("aliases")
            );
            return Op::NewCase {
                marker,
                alias,
                group: GROUPS.choose(&mut self.rng).expect("groups"),
                risk: RISKS.choose(&mut self.rng).expect("risks"),
            };
        }
        if roll < 30 && !own_cases.is_empty() {
            return Op::SetRisk {
                case: *own_cases.choose(&mut self.rng).expect("own case"),
                risk: RISKS.choose(&mut self.rng).expect("risks"),
            };
        }
        if roll < 55 && !own_contacts.is_empty() {
            let contact = *own_contacts.choose(&mut self.rng).expect("own contact");
            let edit = self.marker('e');
            let text = note(
                &mut self.rng,
                &format!("{}{edit}", self.contacts[contact].marker),
            );
            return Op::Edit { contact, text };
        }
        let marker = self.marker('c');
        let text = note(&mut self.rng, &marker);
        Op::Contact {
            case: *known.choose(&mut self.rng).expect("known case"),
            marker,
            text,
            channel: CHANNELS.choose(&mut self.rng).expect("channels"),
            minutes: self
                .rng
                .random_bool(0.5)
                .then(|| self.rng.random_range(1..90)),
        }
    }

    fn spawn(&self, device: usize, job: &Job) -> Result<Child, String> {
        let mut args: Vec<String> = Vec::new();
        match job {
            Job::Sync {
                snapshot,
                page_bytes,
            } => {
                args.push("sync".into());
                if *snapshot {
                    args.push("--snapshot".into());
                }
                if *page_bytes > 0 {
                    args.push("--page-bytes".into());
                    args.push(page_bytes.to_string());
                }
            }
            Job::Write(w) => match w {
                Op::NewCase {
                    alias, group, risk, ..
                } => args.extend(
                    [
                        "case", "new", "--alias", alias, "--group", group, "--risk", risk,
                    ]
                    .map(String::from),
                ),
                Op::Contact {
                    case,
                    text,
                    channel,
                    minutes,
                    ..
                } => {
                    let id = self.cases[*case].id.clone().expect("known case has an id");
                    args.extend(
                        ["case", "contact", &id, "--channel", channel, "--text", text]
                            .map(String::from),
                    );
                    if let Some(m) = minutes {
                        args.push("--minutes".into());
                        args.push(m.to_string());
                    }
                }
                Op::SetRisk { case, risk } => {
                    let id = self.cases[*case].id.clone().expect("own case has an id");
                    args.extend(["case", "set", &id, "--risk", risk].map(String::from));
                }
                Op::Edit { contact, text } => {
                    let c = &self.contacts[*contact];
                    let case = self.cases[c.case].id.clone().expect("case id");
                    let cid = c.id.clone().expect("own contact has an id");
                    args.extend(
                        ["case", "edit-contact", &case, &cid, "--text", text].map(String::from),
                    );
                }
            },
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cli(device, &args)
            .spawn()
            .map_err(|e| format!("spawning heartbridge: {e}"))
    }

    /// Half of the kills come early (log-uniform from 20 µs: exec, opening
    /// the store, recovering a killed one's WAL), half anywhere up to the
    /// longest delay (inside and after the transactions, until the exit).
    fn delay(&mut self) -> Duration {
        let max = self.cfg.max_delay.as_micros().max(40) as f64;
        let us = if self.rng.random_bool(0.5) {
            self.rng.random_range(20f64.ln()..max.ln()).exp()
        } else {
            self.rng.random_range(20.0..max)
        };
        Duration::from_micros(us as u64)
    }

    fn round(&mut self) -> Result<(), String> {
        // Plan: what each device runs.
        let mut jobs: Vec<(usize, Job)> = Vec::new();
        for d in 0..DEVICES {
            let roll = self.rng.random_range(0..100);
            let (write, sync) = match roll {
                0..45 => (true, false),
                45..83 => (false, true),
                83..93 => (true, true),
                _ => (false, false),
            };
            if write {
                let w = self.plan_write(d);
                jobs.push((d, Job::Write(w)));
            }
            if sync {
                let job = self.plan_sync();
                jobs.push((d, job));
            }
        }
        if jobs.is_empty() {
            let d = self.rng.random_range(0..DEVICES);
            let job = self.plan_sync();
            jobs.push((d, job));
        }
        // Plan: who is killed, when.
        let n_kills = match self.rng.random_range(0..100) {
            0..10 => 0,
            10..88 => 1,
            _ => 2,
        };
        let mut kills: Vec<(Duration, Option<usize>)> = Vec::new();
        for _ in 0..n_kills {
            let syncs: Vec<usize> = (0..jobs.len())
                .filter(|&i| matches!(jobs[i].1, Job::Sync { .. }))
                .collect();
            let writes: Vec<usize> = (0..jobs.len())
                .filter(|&i| matches!(jobs[i].1, Job::Write(_)))
                .collect();
            let roll = self.rng.random_range(0..100);
            let target = if roll < 45 && !syncs.is_empty() {
                syncs.choose(&mut self.rng).copied()
            } else if roll < 75 && !writes.is_empty() {
                writes.choose(&mut self.rng).copied()
            } else {
                None
            };
            let at = self.delay();
            kills.push((at, target));
        }
        kills.sort_by_key(|k| k.0);
        let relay_killed = kills.iter().any(|k| k.1.is_none());

        // Run: spawn everything, kill at the chosen instants, reap.
        let at_relay_before = self.at_relay.clone();
        let own_saved_before: Vec<Vec<usize>> = (0..DEVICES)
            .map(|d| {
                (0..self.cases.len())
                    .filter(|&c| self.cases[c].creator == d && self.cases[c].fate == Fate::Saved)
                    .collect()
            })
            .collect();
        let start = Instant::now();
        let mut procs = Vec::new();
        for (device, job) in jobs {
            let child = self.spawn(device, &job)?;
            procs.push(Proc { device, job, child });
        }
        let mut kill_sent = vec![false; procs.len()];
        for (at, target) in kills {
            if let Some(wait) = (start + at).checked_duration_since(Instant::now()) {
                #[expect(
                    clippy::disallowed_methods,
                    reason = "not a wait for a server: the random instant the kill falls on"
                )]
                std::thread::sleep(wait);
            }
            match target {
                Some(i) => {
                    let _ = procs[i].child.kill();
                    kill_sent[i] = true;
                }
                None => {
                    self.relay.kill();
                    self.stats.killed_relays += 1;
                    self.relay.start()?;
                }
            }
        }
        let mut outs = Vec::new();
        for p in procs {
            let out = p
                .child
                .wait_with_output()
                .map_err(|e| format!("waiting for heartbridge: {e}"))?;
            outs.push((p.device, p.job, out));
        }

        // Judge and update the model.
        for (i, (device, job, out)) in outs.into_iter().enumerate() {
            let killed = out.status.signal() == Some(9);
            if kill_sent[i] && !killed {
                self.stats.missed += 1;
            }
            if killed && !kill_sent[i] {
                return Err(format!(
                    "device {device}: a CLI was killed by no one: {job:?}"
                ));
            }
            match job {
                Job::Sync { .. } => {
                    if killed {
                        self.stats.killed_syncs += 1;
                        continue;
                    }
                    if !out.status.success() {
                        let err: Value = serde_json::from_slice(&out.stderr).unwrap_or(Value::Null);
                        if relay_killed && err["error"] == "network" {
                            self.stats.syncs_failed += 1;
                            continue;
                        }
                        return Err(format!(
                            "device {device}: a sync failed{}: {}",
                            if relay_killed {
                                " (not with a network error) while the relay was killed"
                            } else {
                                " with the relay up"
                            },
                            exit_text(&out)
                        ));
                    }
                    let report = json_of(&out)?;
                    if report["refused"] != 0 {
                        return Err(format!(
                            "device {device}: a sync refused envelopes: {report}"
                        ));
                    }
                    self.stats.syncs_ok += 1;
                    if report["retried"].as_u64().unwrap_or(0) > 0 {
                        self.stats.syncs_retried += 1;
                    }
                    self.knows[device].extend(at_relay_before.iter().copied());
                    if report["pending"] == 0 {
                        self.at_relay
                            .extend(own_saved_before[device].iter().copied());
                    }
                }
                Job::Write(w) => {
                    let fate = if killed {
                        self.stats.killed_writes += 1;
                        self.stats.writes_maybe += 1;
                        Fate::Maybe
                    } else if out.status.success() {
                        self.stats.writes_saved += 1;
                        Fate::Saved
                    } else {
                        return Err(format!(
                            "device {device}: a write failed without being killed: {}",
                            exit_text(&out)
                        ));
                    };
                    let answer = if fate == Fate::Saved {
                        Some(json_of(&out)?)
                    } else {
                        None
                    };
                    self.record(device, w, fate, answer.as_ref())?;
                }
            }
        }
        Ok(())
    }

    fn plan_sync(&mut self) -> Job {
        let snapshot = self.rng.random_bool(0.2);
        let page_bytes = if self.rng.random_bool(0.25) {
            *[1u32, 200, 1_000, 4_096]
                .choose(&mut self.rng)
                .expect("page sizes")
        } else {
            0
        };
        if snapshot {
            self.stats.snapshot_syncs += 1;
        }
        if page_bytes > 0 {
            self.stats.small_page_syncs += 1;
        }
        Job::Sync {
            snapshot,
            page_bytes,
        }
    }

    fn record(
        &mut self,
        device: usize,
        w: Op,
        fate: Fate,
        answer: Option<&Value>,
    ) -> Result<(), String> {
        let field = |key: &str| -> Result<Option<String>, String> {
            match answer {
                None => Ok(None),
                Some(a) => a[key]
                    .as_str()
                    .map(|s| Some(s.to_owned()))
                    .ok_or_else(|| format!("a saved write printed no {key}: {a}")),
            }
        };
        match w {
            Op::NewCase { marker, risk, .. } => {
                let id = field("id")?;
                self.cases.push(CaseM {
                    marker,
                    creator: device,
                    fate,
                    id,
                    risk,
                    risk_sets: Vec::new(),
                });
                if fate == Fate::Saved {
                    self.knows[device].insert(self.cases.len() - 1);
                }
            }
            Op::Contact {
                case, marker, text, ..
            } => {
                let id = field("contact_id")?;
                self.contacts.push(ContactM {
                    marker,
                    case,
                    author: device,
                    fate,
                    id,
                    text,
                    edits: Vec::new(),
                });
            }
            Op::SetRisk { case, risk } => self.cases[case].risk_sets.push((risk, fate)),
            Op::Edit { contact, text } => self.contacts[contact].edits.push((text, fate)),
        }
        Ok(())
    }

    /// Syncs every device until a pass moves nothing (no kills), then
    /// checks the devices against each other and against the model, and
    /// every database's integrity.
    fn settle_and_check(&mut self) -> Result<(), String> {
        self.settle()?;
        let shown = self.compare_devices()?;
        self.check_model(&shown)?;
        self.check_files()
    }

    /// Syncs every device until a pass moves nothing; then none has
    /// anything pending, waiting or refused.
    fn settle(&mut self) -> Result<(), String> {
        let mut quiet = false;
        for pass in 1..=12 {
            let mut moved = 0;
            for d in 0..DEVICES {
                let r = self.ok(d, &["sync"])?;
                if r["refused"] != 0 {
                    return Err(format!(
                        "device {d}: a settling sync refused envelopes: {r}"
                    ));
                }
                moved += r["pushed"].as_u64().unwrap_or(1) + r["pulled"].as_u64().unwrap_or(1);
            }
            if moved == 0 {
                self.stats.settle_passes = pass;
                quiet = true;
                break;
            }
        }
        if !quiet {
            return Err("the devices were not quiet after 12 sync passes".into());
        }
        for d in 0..DEVICES {
            let s = self.ok(d, &["status"])?;
            let sync = &s["sync"];
            if sync["pending"] != 0 || sync["waiting"] != 0 || sync["refused"] != 0 {
                return Err(format!(
                    "device {d} after settling: pending {}, waiting {}, refused {}",
                    sync["pending"], sync["waiting"], sync["refused"]
                ));
            }
        }
        Ok(())
    }

    /// Every device shows the same cases, field by field: `case list`
    /// (without the local `updated_at`) and `case show` of each. Returns the
    /// cases by id.
    fn compare_devices(&self) -> Result<BTreeMap<String, Value>, String> {
        let mut lists = Vec::new();
        for d in 0..DEVICES {
            let mut list = self.ok(d, &["case", "list"])?;
            let rows = list.as_array_mut().ok_or("case list is not a list")?;
            for row in rows.iter_mut() {
                // When this device last refreshed the row: local, not shared.
                row.as_object_mut()
                    .ok_or("a case list row is not an object")?
                    .remove("updated_at");
            }
            rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            lists.push(list);
        }
        let ids: Vec<String> = lists[0]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        for d in 1..DEVICES {
            if lists[d] != lists[0] {
                let other: Vec<&str> = lists[d]
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|r| r["id"].as_str().unwrap_or_default())
                    .collect();
                return Err(format!(
                    "`case list` differs between device 0 and device {d} (ids {ids:?} and {other:?})"
                ));
            }
        }
        let mut shown: BTreeMap<String, Value> = BTreeMap::new();
        for id in &ids {
            let first = self.ok(0, &["case", "show", id])?;
            for d in 1..DEVICES {
                if self.ok(d, &["case", "show", id])? != first {
                    return Err(format!(
                        "`case show {id}` differs between device 0 and device {d}"
                    ));
                }
            }
            shown.insert(id.clone(), first);
        }
        Ok(shown)
    }

    /// Stops the relay (the CLIs have all exited); then every database
    /// passes its integrity check and the relay holds no content id twice.
    fn check_files(&mut self) -> Result<(), String> {
        self.relay.kill();
        for (d, p) in self.profiles.iter().enumerate() {
            profile_integrity(p).map_err(|e| format!("device {d}: {e}"))?;
        }
        integrity(&self.relay.db).map_err(|e| format!("relay: {e}"))?;
        let conn = Connection::open_with_flags(&self.relay.db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("opening the relay database: {e}"))?;
        let doubled: i64 = conn
            .query_row(
                "SELECT count(*) FROM (SELECT 1 FROM envelopes GROUP BY team_id, content_id HAVING count(*) > 1)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| format!("reading the relay's envelopes: {e}"))?;
        if doubled != 0 {
            return Err(format!(
                "the relay stores {doubled} content ids more than once"
            ));
        }
        Ok(())
    }

    /// The devices (identical by now) against the model.
    fn check_model(&mut self, shown: &BTreeMap<String, Value>) -> Result<(), String> {
        // Cases by the marker in their alias.
        let mut case_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, c) in shown {
            let alias = c["alias"].as_str().unwrap_or_default();
            let m = marker_of(alias).ok_or_else(|| format!("case {id} has no marker"))?;
            case_ids.entry(m).or_default().push(id.clone());
        }
        let mut present_cases = vec![None; self.cases.len()];
        for (i, c) in self.cases.iter().enumerate() {
            let found = case_ids.remove(&c.marker).unwrap_or_default();
            match (c.fate, found.len()) {
                (Fate::Saved, 1) | (Fate::Maybe, 1) => {
                    if c.fate == Fate::Saved && c.id.as_deref() != Some(found[0].as_str()) {
                        return Err(format!(
                            "case {} is on the devices under another id than its `case new` printed",
                            c.marker
                        ));
                    }
                    if c.fate == Fate::Maybe {
                        self.stats.maybe_landed += 1;
                    }
                    present_cases[i] = Some(found[0].clone());
                }
                (Fate::Maybe, 0) => {}
                (fate, n) => {
                    return Err(format!(
                        "case {} ({fate:?}, created by device {}) is on the devices {n} times",
                        c.marker, c.creator
                    ))
                }
            }
        }
        if let Some((m, _)) = case_ids.into_iter().next() {
            return Err(format!("case {m} is on the devices but no one wrote it"));
        }
        // Risk: changed by the creator only, so the last change that landed.
        for (i, c) in self.cases.iter().enumerate() {
            let Some(id) = &present_cases[i] else {
                continue;
            };
            let shown = &shown[id];
            let risk = shown["risk"].as_str().unwrap_or_default();
            let mut allowed = vec![c.risk];
            for &(r, fate) in &c.risk_sets {
                if fate == Fate::Saved {
                    allowed.clear();
                }
                allowed.push(r);
            }
            if !allowed.contains(&risk) {
                return Err(format!(
                    "case {}: risk is {risk}, but the last saved change and the killed ones after it allow only {allowed:?}",
                    c.marker
                ));
            }
            if shown["risk_conflict"] != false {
                return Err(format!(
                    "case {}: a risk conflict, though only its creator changed the risk",
                    c.marker
                ));
            }
        }
        // Contacts by the marker at the start of their text.
        let mut found: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (id, c) in shown {
            for contact in c["contacts"].as_array().ok_or("contacts is not a list")? {
                let text = contact["text"].as_str().unwrap_or_default().to_owned();
                let m = marker_of(&text)
                    .ok_or_else(|| format!("case {id} holds a contact with no marker"))?;
                found.entry(m).or_default().push((id.clone(), text));
            }
        }
        let mut contacts = 0;
        for c in &self.contacts {
            let on = found.remove(&c.marker).unwrap_or_default();
            let case_marker = &self.cases[c.case].marker;
            match (c.fate, on.len()) {
                (Fate::Maybe, 0) => continue,
                (_, 1) => {}
                (fate, n) => {
                    return Err(format!(
                        "contact {} ({fate:?}, by device {} on case {case_marker}) is on the devices {n} times",
                        c.marker, c.author
                    ))
                }
            }
            contacts += 1;
            if c.fate == Fate::Maybe {
                self.stats.maybe_landed += 1;
            }
            let (case_id, text) = &on[0];
            if present_cases[c.case].as_deref() != Some(case_id.as_str()) {
                return Err(format!(
                    "contact {} is in another case than {case_marker}",
                    c.marker
                ));
            }
            let mut allowed = vec![c.text.as_str()];
            for (t, fate) in &c.edits {
                if *fate == Fate::Saved {
                    allowed.clear();
                }
                allowed.push(t);
            }
            if !allowed.contains(&text.as_str()) {
                let edit = marker_of(text.strip_prefix(&c.marker).unwrap_or_default());
                return Err(format!(
                    "contact {}: its text (edit {edit:?}) is neither the last saved one nor a killed edit after it ({} edits)",
                    c.marker,
                    c.edits.len()
                ));
            }
            for (t, fate) in &c.edits {
                if *fate == Fate::Maybe && t == text {
                    self.stats.maybe_landed += 1;
                }
            }
        }
        if let Some((m, _)) = found.into_iter().next() {
            return Err(format!("contact {m} is on the devices but no one wrote it"));
        }
        self.stats.cases = shown.len();
        self.stats.contacts = contacts;
        Ok(())
    }
}

/// The `⟦…⟧` marker a text starts with.
fn marker_of(text: &str) -> Option<String> {
    let rest = text.strip_prefix('⟦')?;
    let end = rest.find('⟧')?;
    Some(format!("⟦{}⟧", &rest[..end]))
}

/// `PRAGMA integrity_check` of a device's encrypted database, on a keyed
/// connection: "ok" or the error.
fn profile_integrity(dir: &Path) -> Result<(), String> {
    let conn = heartbridge_core::testing::open_raw(dir, &heartbridge_core::testing::unlock())
        .map_err(|e| format!("opening {}: {e}", dir.display()))?;
    integrity_of(&conn, &dir.join("heartbridge.db"))
}

/// `PRAGMA integrity_check` on a read-only connection: "ok" or the error.
fn integrity(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    integrity_of(&conn, path)
}

fn integrity_of(conn: &Connection, path: &Path) -> Result<(), String> {
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| e.to_string())?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("integrity_check of {}: {e}", path.display()))?;
    if rows != ["ok"] {
        return Err(format!(
            "integrity_check of {} says {rows:?}",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
fn debug_config(seed: u64, rounds: usize) -> Config {
    // `option_env!`: the benchmark compiles this file too, without the path
    // (and never calls this).
    let cli = match option_env!("CARGO_BIN_EXE_heartbridge") {
        Some(path) => PathBuf::from(path),
        None => panic!("Cargo gives integration tests the CLI's path"),
    };
    let relay = cli
        .parent()
        .expect("the binary's directory")
        .join(format!("heartbridge-relay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        relay.is_file(),
        "{} is missing: run `cargo build -p heartbridge-relay` first (scripts/test builds the whole workspace before its tests)",
        relay.display()
    );
    Config {
        cli,
        relay,
        seed,
        rounds,
        max_delay: Duration::from_millis(50),
    }
}

#[cfg(test)]
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_random_instants_loses_and_doubles_nothing() {
    let seed = env_or("HB_KILL_SEED", rand::random::<u64>());
    let rounds = env_or("HB_KILL_ROUNDS", 300usize);
    eprintln!("kill soak: seed {seed}, {rounds} rounds (HB_KILL_SEED={seed} replays the choices)");
    let stats = soak(&debug_config(seed, rounds)).unwrap_or_else(|f| panic!("{f}"));
    eprintln!("kill soak seed {seed}: {stats}");
    // The kills did hit processes at work: the proof is not vacuous.
    let floor = rounds / 24;
    assert!(
        stats.killed_syncs >= floor && stats.killed_writes >= floor && stats.killed_relays >= floor,
        "seed {seed}: too few kills landed: {stats}"
    );
    assert!(stats.writes_saved >= rounds / 4, "seed {seed}: {stats}");
}

/// The final check is not blind: a write the model holds as saved that no
/// device has is reported lost, a contact written twice is reported
/// doubled, one that no one recorded is reported, and devices that differ
/// are reported.
#[test]
fn the_final_check_sees_a_lost_a_doubled_and_an_unrecorded_write() {
    let seed = env_or("HB_KILL_SEED", rand::random::<u64>());
    eprintln!("seed {seed}");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut w = World::new(&debug_config(seed, 10), dir.path()).expect("setup");
    for r in 1..=10 {
        w.round()
            .unwrap_or_else(|e| panic!("seed {seed}, round {r}: {e}"));
    }
    let marker = w.marker('a');
    let alias = format!("{marker}小雨");
    let new = Op::NewCase {
        marker,
        alias: alias.clone(),
        group: "other",
        risk: "low",
    };
    let answer = w
        .ok(0, &["case", "new", "--alias", &alias, "--risk", "low"])
        .expect("case new");
    w.record(0, new, Fate::Saved, Some(&answer))
        .expect("record");
    let case = w.cases.len() - 1;
    let case_id = w.cases[case].id.clone().expect("id");
    w.settle().expect("settle");
    let shown = w.compare_devices().expect("devices agree");
    w.check_model(&shown).expect("the model holds");

    // Lost: reported saved, on no device.
    let marker = w.marker('c');
    w.contacts.push(ContactM {
        marker,
        case,
        author: 0,
        fate: Fate::Saved,
        id: Some("0000000000000000".into()),
        text: String::new(),
        edits: Vec::new(),
    });
    let err = w.check_model(&shown).expect_err("a lost write");
    assert!(err.contains("Saved") && err.contains("0 times"), "{err}");
    w.contacts.pop();

    // Doubled: the same note saved twice, recorded once.
    let marker = w.marker('c');
    let text = note(&mut w.rng, &marker);
    let args = [
        "case",
        "contact",
        &case_id,
        "--channel",
        "hotline",
        "--text",
        &text,
    ];
    let answer = w.ok(0, &args).expect("contact");
    w.ok(0, &args).expect("contact again");
    let op = Op::Contact {
        case,
        marker,
        text: text.clone(),
        channel: "hotline",
        minutes: None,
    };
    w.record(0, op, Fate::Saved, Some(&answer)).expect("record");
    w.settle().expect("settle");
    let shown = w.compare_devices().expect("devices agree");
    let err = w.check_model(&shown).expect_err("a doubled write");
    assert!(err.contains("2 times"), "{err}");

    // Unrecorded: on the devices, written by no one the model knows.
    w.contacts.pop();
    let err = w.check_model(&shown).expect_err("an unrecorded write");
    assert!(err.contains("no one wrote it"), "{err}");

    // Devices that differ: a contact not synced yet.
    let marker = w.marker('c');
    let text = note(&mut w.rng, &marker);
    w.ok(
        1,
        &[
            "case",
            "contact",
            &case_id,
            "--channel",
            "online",
            "--text",
            &text,
        ],
    )
    .expect("contact on device 1");
    let err = w.compare_devices().expect_err("devices differ");
    assert!(err.contains("differs") && err.contains("device 1"), "{err}");

    // The databases themselves are sound.
    w.check_files().expect("integrity");
}
