//! The simulated world: devices with real stores on temp files, a real
//! relay on loopback with its real SQLite file, and the network between
//! them. [`Sim::step`] runs one operation of a history.

use std::path::PathBuf;

use automerge::ChangeHash;
use heartbridge_client::BlockingTransport;
use heartbridge_core::proto::Role;
use heartbridge_core::{
    CaseUpdate, Channel, DocId, Group, NewCase, Risk, Store, SyncOptions, Written,
};
use heartbridge_tests::Relay;

use super::history::{handbook_markdown, long_text, History, Op, SyncCfg, MAX_DEVICES};
use super::net::{Net, NetStats};

/// The relay's cap on a request body: small, so that a few long notes make
/// a document (and its snapshot) larger than one request may carry.
pub const RELAY_MAX_BODY: usize = 128 * 1024;

/// One device: a profile directory and its store (closed while crashed).
pub struct Device {
    dir: tempfile::TempDir,
    store: Option<Store>,
}

impl Device {
    fn new(index: usize) -> Result<Device, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let store = Store::init(
            &dir.path().join("profile"),
            &format!("volunteer {index}"),
            &heartbridge_core::testing::protection(),
        )
        .map_err(|e| format!("device {index}: init failed: {e}"))?;
        Ok(Device {
            dir,
            store: Some(store),
        })
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    pub fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a device's store is open between steps")
    }

    pub fn store_mut(&mut self) -> &mut Store {
        self.store
            .as_mut()
            .expect("a device's store is open between steps")
    }

    /// The process dies: the store is dropped, then opened again from its
    /// files, as the app does at its next start.
    fn crash(&mut self) -> Result<(), String> {
        self.store = None;
        self.store = Some(
            Store::open(&self.profile(), &heartbridge_core::testing::unlock())
                .map_err(|e| format!("reopen after a crash failed: {e}"))?,
        );
        Ok(())
    }
}

/// A change some device reported saved.
#[derive(Debug, Clone)]
pub struct Saved {
    pub dev: usize,
    pub doc: DocId,
    pub hash: ChangeHash,
}

/// A write of a case's risk register (case creation included).
#[derive(Debug, Clone)]
pub struct RiskWrite {
    pub case: DocId,
    pub risk: Risk,
    pub hash: ChangeHash,
}

/// What a run did, for the soak's report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub ops: usize,
    pub writes: usize,
    pub syncs: usize,
    pub joins: usize,
    pub crashes: usize,
    pub net: NetStats,
}

pub struct Sim {
    pub relay: Relay,
    pub devices: Vec<Device>,
    pub net: Net,
    /// Every case ever created, in order (ops name them by index).
    pub cases: Vec<DocId>,
    /// Every change reported saved.
    pub saved: Vec<Saved>,
    pub risk_writes: Vec<RiskWrite>,
    pub stats: Stats,
}

fn err(what: &str, dev: usize) -> impl FnOnce(heartbridge_core::Error) -> String + '_ {
    move |e| format!("device {dev}: {what} failed: {e}")
}

impl Sim {
    /// A relay with one team: device 0 claimed it, the others joined.
    pub fn new(history: &History) -> Result<Sim, String> {
        let relay = Relay::start_with(|c| c.max_body_bytes = RELAY_MAX_BODY);
        let created = relay.create_team("sim team");
        let mut lead = Device::new(0)?;
        heartbridge_client::claim(lead.store_mut(), &relay.url, created.lead_token.expose())
            .map_err(err("claim", 0))?;
        let mut sim = Sim {
            relay,
            devices: vec![lead],
            net: Net::new(history.net_seed, history.faults),
            cases: Vec::new(),
            saved: Vec::new(),
            risk_writes: Vec::new(),
            stats: Stats::default(),
        };
        while sim.devices.len() < history.devices.clamp(2, MAX_DEVICES) {
            sim.join()?;
        }
        sim.stats.joins = 0;
        Ok(sim)
    }

    /// A new device joins with an invite from the lead.
    fn join(&mut self) -> Result<(), String> {
        let n = self.devices.len();
        let code = heartbridge_client::invite(self.devices[0].store(), Role::Volunteer)
            .map_err(err("invite", 0))?;
        let mut d = Device::new(n)?;
        heartbridge_client::join(d.store_mut(), &code).map_err(err("join", n))?;
        self.devices.push(d);
        self.stats.joins += 1;
        Ok(())
    }

    fn dev(&self, dev: u8) -> usize {
        usize::from(dev) % self.devices.len()
    }

    /// Case `case` (by index), if device `dev` holds it.
    fn case_on(&self, dev: usize, case: u8) -> Result<Option<DocId>, String> {
        if self.cases.is_empty() {
            return Ok(None);
        }
        let id = self.cases[usize::from(case) % self.cases.len()].clone();
        let held = self.devices[dev]
            .store()
            .load(&id)
            .map_err(err("load", dev))?
            .is_some();
        Ok(held.then_some(id))
    }

    /// Records a write: the document's heads right after it are exactly
    /// the new change (it depends on every earlier head). Returns it.
    fn saved(
        &mut self,
        dev: usize,
        doc: &DocId,
        written: Option<Written>,
    ) -> Result<Option<ChangeHash>, String> {
        if written == Some(Written::Unchanged) {
            return Ok(None);
        }
        let (_, mut am) = self.devices[dev]
            .store()
            .load(doc)
            .map_err(err("load", dev))?
            .ok_or_else(|| format!("device {dev}: document {doc} missing right after a write"))?;
        let heads = am.get_heads();
        let [hash] = heads[..] else {
            return Err(format!(
                "device {dev}: document {doc} has {} heads right after a local write",
                heads.len()
            ));
        };
        if let Some(Written::Changed(reported)) = written {
            if reported != hash {
                return Err(format!(
                    "device {dev}: document {doc}: the write reported change {reported} but the head is {hash}"
                ));
            }
        }
        self.saved.push(Saved {
            dev,
            doc: doc.clone(),
            hash,
        });
        self.stats.writes += 1;
        Ok(Some(hash))
    }

    /// Runs one operation.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.stats.ops += 1;
        match op {
            Op::NewCase { dev, risk } => {
                let d = self.dev(*dev);
                let id = self.devices[d]
                    .store_mut()
                    .new_case(&NewCase {
                        alias: format!("case {}", self.cases.len()),
                        group: Group::ALL[self.cases.len() % Group::ALL.len()],
                        risk: *risk,
                    })
                    .map_err(err("new case", d))?;
                let hash = self.saved(d, &id, None)?;
                if let Some(hash) = hash {
                    self.risk_writes.push(RiskWrite {
                        case: id.clone(),
                        risk: *risk,
                        hash,
                    });
                }
                self.cases.push(id);
            }
            Op::SetRisk { dev, case, risk } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                let w = self.devices[d]
                    .store_mut()
                    .update_case(
                        &id,
                        &CaseUpdate {
                            risk: Some(*risk),
                            ..CaseUpdate::default()
                        },
                    )
                    .map_err(err("set risk", d))?;
                if let Some(hash) = self.saved(d, &id, Some(w))? {
                    self.risk_writes.push(RiskWrite {
                        case: id,
                        risk: *risk,
                        hash,
                    });
                }
            }
            Op::AddContact { dev, case, note } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                self.devices[d]
                    .store_mut()
                    .add_contact(&id, Channel::Hotline, note, Some(20))
                    .map_err(err("add contact", d))?;
                self.saved(d, &id, None)?;
            }
            Op::LongNote {
                dev,
                case,
                kib,
                seed,
            } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                self.devices[d]
                    .store_mut()
                    .add_contact(&id, Channel::InPerson, &long_text(*kib, *seed), Some(50))
                    .map_err(err("add a long contact", d))?;
                self.saved(d, &id, None)?;
            }
            Op::EditNote {
                dev,
                case,
                contact,
                edit,
            } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                let contacts = self.devices[d]
                    .store()
                    .case(&id)
                    .map_err(err("read case", d))?
                    .contacts;
                if contacts.is_empty() {
                    return Ok(());
                }
                let c = &contacts[usize::from(*contact) % contacts.len()];
                let w = self.devices[d]
                    .store_mut()
                    .edit_contact(&id, &c.id, &edit.apply(&c.text))
                    .map_err(err("edit note", d))?;
                self.saved(d, &id, Some(w))?;
            }
            Op::SetStatus { dev, case, status } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                let w = self.devices[d]
                    .store_mut()
                    .update_case(
                        &id,
                        &CaseUpdate {
                            status: Some(*status),
                            ..CaseUpdate::default()
                        },
                    )
                    .map_err(err("set status", d))?;
                self.saved(d, &id, Some(w))?;
            }
            Op::Tag {
                dev,
                case,
                tag,
                remove,
            } => {
                let d = self.dev(*dev);
                let Some(id) = self.case_on(d, *case)? else {
                    return Ok(());
                };
                let tag = [(*tag).to_owned()];
                let (add, rm): (&[String], &[String]) =
                    if *remove { (&[], &tag) } else { (&tag, &[]) };
                let w = self.devices[d]
                    .store_mut()
                    .tag_case(&id, add, rm)
                    .map_err(err("tag", d))?;
                self.saved(d, &id, Some(w))?;
            }
            Op::ImportHandbook {
                dev,
                book,
                revision,
            } => {
                let d = self.dev(*dev);
                let file = (
                    PathBuf::from(format!("sim-handbook-{book}.md")),
                    handbook_markdown(*book, *revision).into_bytes(),
                );
                let imported = self.devices[d]
                    .store_mut()
                    .import_handbook_bytes(&[file])
                    .map_err(err("import handbook", d))?;
                for i in imported {
                    if i.outcome != "unchanged" {
                        let id = DocId::parse(&i.id, "handbook").map_err(err("parse id", d))?;
                        self.saved(d, &id, None)?;
                    }
                }
            }
            Op::Join => {
                if self.devices.len() < MAX_DEVICES {
                    self.join()?;
                }
            }
            Op::Sync(syncs) => self.sync(syncs)?,
            Op::Crash { dev } => {
                let d = self.dev(*dev);
                self.crash(d)?;
            }
        }
        Ok(())
    }

    fn crash(&mut self, d: usize) -> Result<(), String> {
        self.stats.crashes += 1;
        self.devices[d]
            .crash()
            .map_err(|e| format!("device {d}: {e}"))?;
        super::invariants::a_crash_loses_no_saved_change(self, d)
    }

    /// Devices sync at the same time through the faulty network.
    fn sync(&mut self, syncs: &[(u8, SyncCfg)]) -> Result<(), String> {
        let mut cfg: Vec<Option<SyncOptions>> = vec![None; self.devices.len()];
        for (dev, c) in syncs {
            let d = self.dev(*dev);
            cfg[d].get_or_insert(SyncOptions {
                max_push_bytes: c.max_push_bytes,
                page_bytes: c.page_bytes,
                snapshot_all: c.snapshot_all,
                ..SyncOptions::default()
            });
        }
        let runs = self
            .devices
            .iter_mut()
            .enumerate()
            .filter_map(|(d, dev)| cfg[d].take().map(|o| (d, dev.store_mut(), o)))
            .collect();
        let outcomes = self.net.sync_concurrently(runs);
        self.stats.syncs += outcomes.len();
        for o in outcomes {
            let d = o.dev;
            match &o.result {
                Err(panic) => return Err(format!("device {d}: sync panicked: {panic}")),
                Ok(Err(e)) if o.faults.is_empty() => {
                    return Err(format!("device {d}: sync failed on a working network: {e}"))
                }
                Ok(Ok(_)) if o.crashed => {
                    return Err(format!(
                        "device {d}: sync reported success although the device crashed during it"
                    ))
                }
                Ok(_) => {}
            }
            if o.crashed {
                self.crash(d)?;
            }
        }
        Ok(())
    }

    /// Every device syncs, over a perfect network, until a whole round
    /// moves nothing and every outbox is empty.
    pub fn quiesce(&mut self) -> Result<(), String> {
        self.net.settle();
        const ROUNDS: usize = 8;
        for _ in 0..ROUNDS {
            let mut moved = 0;
            let mut pending = 0;
            for (d, dev) in self.devices.iter_mut().enumerate() {
                let r = dev
                    .store_mut()
                    .sync(
                        &mut BlockingTransport::default(),
                        &SyncOptions::default(),
                        &mut |_| {},
                    )
                    .map_err(err("final sync", d))?;
                moved += r.pushed + r.pulled;
                pending += r.pending;
            }
            if moved == 0 && pending == 0 {
                return Ok(());
            }
        }
        Err(format!(
            "quiescence: devices still moved envelopes after {ROUNDS} fault-free rounds"
        ))
    }
}

/// Runs a whole history, then quiesces and checks every invariant.
pub fn run(history: &History) -> Result<Stats, String> {
    let mut sim = Sim::new(history)?;
    for (i, op) in history.ops.iter().enumerate() {
        sim.step(op).map_err(|e| format!("op {i} ({op:?}): {e}"))?;
    }
    sim.quiesce()?;
    super::invariants::check_all(&mut sim)?;
    sim.stats.net = sim.net.stats;
    Ok(sim.stats)
}
