//! The simulated world: devices with real stores on temp files, a real
//! relay on loopback with its real SQLite file, and the network between
//! them. [`Sim::step`] runs one operation of a history.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use automerge::{ActorId, ChangeHash};
use heartbridge_client::{BlockingTransport, HttpTransport};
use heartbridge_core::proto::{Role, SignedRoster};
use heartbridge_core::{
    CaseUpdate, Channel, DocId, DocKind, Error, Group, NewCase, Risk, Store, SyncOptions,
    Transport, TransportError, Written,
};
use heartbridge_tests::Relay;

use super::history::{handbook_markdown, long_text, History, Op, SyncCfg, MAX_DEVICES};
use super::net::{Net, NetStats};

/// The relay's cap on a request body: small, so that a few long notes make
/// a document (and its snapshot) larger than one request may carry.
pub const RELAY_MAX_BODY: usize = 128 * 1024;

/// One device: a profile directory and its store (closed while crashed,
/// and for good once the device erased itself after its revocation).
pub struct Device {
    dir: tempfile::TempDir,
    store: Option<Store>,
    /// The role it joined with (the lead claimed the team).
    pub role: Role,
    /// Its id in the team (hex), once enrolled.
    pub device_id: String,
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
            role: Role::Volunteer,
            device_id: String::new(),
        })
    }

    /// Records the role and team id the device enrolled with.
    fn enrolled(&mut self, role: Role) -> Result<(), String> {
        self.role = role;
        self.device_id = self
            .store()
            .team()
            .map_err(|e| format!("read team: {e}"))?
            .ok_or("no team after enrolling")?
            .device_id;
        Ok(())
    }

    pub fn is_volunteer(&self) -> bool {
        self.role == Role::Volunteer
    }

    pub fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// Whether the store is open (it is not once the device erased
    /// itself).
    pub fn is_open(&self) -> bool {
        self.store.is_some()
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
    /// The Automerge actor that made it (the device's).
    pub actor: ActorId,
    /// The outbox row the write queued it in (rows are numbered by
    /// AUTOINCREMENT, so the number is never reused): the relay has
    /// acknowledged the change once that row is gone.
    pub outbox_seq: Option<i64>,
    /// For a change of a case: who the writer's copy said carries the
    /// case right after the write, and which assignments it held.
    pub view: Option<CaseView>,
}

/// What a device's copy of a case said about its assignment.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// The assignee's device id.
    pub assignee: String,
    /// The ids of the assignments the copy holds.
    pub assignments: BTreeSet<String>,
}

/// A write of a case's risk register (case creation included).
#[derive(Debug, Clone)]
pub struct RiskWrite {
    pub dev: usize,
    pub case: DocId,
    pub risk: Risk,
    pub hash: ChangeHash,
}

/// A device the lead revoked.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub dev: usize,
    /// Its id at the relay.
    pub device_id: String,
    /// The key epoch the revocation made (the first one it does not hold).
    pub epoch: u32,
    /// The relay's last sequence number at the revocation.
    pub cutoff_seq: u64,
    /// How many changes (of any device) were saved before the revocation:
    /// `saved[..saved_before]`.
    pub saved_before: usize,
    /// Indices into `saved` of this device's changes the others must keep:
    /// acknowledged by the relay before the revocation (outbox row gone),
    /// and so were all its earlier changes of the same document (a local
    /// write depends on the device's previous one, so a change whose
    /// predecessor never reached the relay cannot be applied anywhere).
    pub kept: BTreeSet<usize>,
    /// It synced after the relay had the lead's roster revoking it, and
    /// erased itself.
    pub erased: bool,
}

/// What a run did, for the soak's report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub ops: usize,
    pub writes: usize,
    pub syncs: usize,
    pub joins: usize,
    pub crashes: usize,
    pub revokes: usize,
    /// Syncs of a revoked device that ended in `Error::Erased`.
    pub erased: usize,
    /// Cases handed to another device (`Store::assign_case` succeeded).
    pub assigns: usize,
    /// Volunteers' attempts to assign, refused as they must be.
    pub refused_assigns: usize,
    pub net: NetStats,
}

pub struct Sim {
    pub relay: Relay,
    pub devices: Vec<Device>,
    pub net: Net,
    /// Every case ever created, in order (ops name them by index).
    pub cases: Vec<DocId>,
    /// The device that created each case.
    pub creators: BTreeMap<DocId, usize>,
    /// Every successful `assign_case`: case, and the device it went to.
    pub assigned: Vec<(DocId, usize)>,
    /// Every change reported saved.
    pub saved: Vec<Saved>,
    pub risk_writes: Vec<RiskWrite>,
    /// Every revocation, in order.
    pub revoked: Vec<Revoked>,
    pub stats: Stats,
    /// A working connection for the lead's revocations and for reading
    /// the relay's roster (not through the faulty network).
    admin: BlockingTransport,
}

fn err(what: &str, dev: usize) -> impl FnOnce(heartbridge_core::Error) -> String + '_ {
    move |e| format!("device {dev}: {what} failed: {e}")
}

impl Sim {
    /// A relay with one team: device 0 claimed it and turned on
    /// `lead_reads_cases` (through the real setter, before any case), the
    /// others joined, as supervisors or (those `history.volunteers`
    /// names) as volunteers.
    pub fn new(history: &History) -> Result<Sim, String> {
        let relay = Relay::start_with(|c| c.max_body_bytes = RELAY_MAX_BODY);
        let created = relay.create_team("sim team");
        let mut lead = Device::new(0)?;
        heartbridge_client::claim(lead.store_mut(), &relay.url, created.lead_token.expose())
            .map_err(err("claim", 0))?;
        lead.enrolled(Role::Lead)
            .map_err(|e| format!("device 0: {e}"))?;
        let mut sim = Sim {
            relay,
            devices: vec![lead],
            net: Net::new(history.net_seed, history.faults),
            cases: Vec::new(),
            creators: BTreeMap::new(),
            assigned: Vec::new(),
            saved: Vec::new(),
            risk_writes: Vec::new(),
            revoked: Vec::new(),
            stats: Stats::default(),
            admin: BlockingTransport::default(),
        };
        let w = sim.devices[0]
            .store_mut()
            .set_lead_reads_cases(true)
            .map_err(err("turn on lead_reads_cases", 0))?;
        let settings = heartbridge_core::duty::settings_doc_id(&sim.team()?.team_id);
        if sim.saved(0, &settings, Some(w))?.is_none() {
            return Err("device 0: turning on lead_reads_cases changed nothing".into());
        }
        // The setting is in force before any case: at the relay, and on
        // every device enrolled before the history (each syncs once).
        sim.setup_sync(0)?;
        while sim.devices.len() < history.devices.clamp(2, MAX_DEVICES) {
            let volunteer = history.volunteers & (1 << sim.devices.len()) != 0;
            sim.join(volunteer)?;
            sim.setup_sync(sim.devices.len() - 1)?;
        }
        sim.stats.joins = 0;
        Ok(sim)
    }

    /// Device `d` syncs over a working connection while the team is set
    /// up.
    fn setup_sync(&mut self, d: usize) -> Result<(), String> {
        self.devices[d]
            .store_mut()
            .sync(
                &mut BlockingTransport::default(),
                &SyncOptions::default(),
                &mut |_| {},
            )
            .map_err(err("sync while setting up the team", d))?;
        Ok(())
    }

    /// The lead's team.
    fn team(&self) -> Result<heartbridge_core::Team, String> {
        self.devices[0]
            .store()
            .team()
            .map_err(err("read team", 0))?
            .ok_or_else(|| "the lead has no team".to_owned())
    }

    /// A new device joins with an invite from the lead.
    fn join(&mut self, volunteer: bool) -> Result<(), String> {
        let n = self.devices.len();
        let role = if volunteer {
            Role::Volunteer
        } else {
            Role::Supervisor
        };
        let code = heartbridge_client::invite(self.devices[0].store_mut(), role)
            .map_err(err("invite", 0))?;
        let mut d = Device::new(n)?;
        heartbridge_client::join(d.store_mut(), &code).map_err(err("join", n))?;
        d.enrolled(role).map_err(|e| format!("device {n}: {e}"))?;
        self.devices.push(d);
        self.stats.joins += 1;
        Ok(())
    }

    fn dev(&self, dev: u8) -> usize {
        usize::from(dev) % self.devices.len()
    }

    pub fn is_revoked(&self, d: usize) -> bool {
        self.revoked.iter().any(|r| r.dev == d)
    }

    /// The devices not revoked, with their indices (the lead first).
    pub fn live(&self) -> Vec<(usize, &Device)> {
        self.devices
            .iter()
            .enumerate()
            .filter(|(d, _)| !self.is_revoked(*d))
            .collect()
    }

    /// The changes every device not revoked must hold: every change saved
    /// on one of them, and those of a revoked device the relay had
    /// acknowledged before the revocation ([`Revoked::kept`]). A revoked
    /// device's changes not acknowledged when it was revoked (and all it
    /// saved afterwards, offline, before it learned of it) are not
    /// expected anywhere: losing them is by design, since the device is
    /// not trusted any more once revoked, and the relay takes nothing
    /// from it after the cut-off.
    pub fn expected_saved(&self) -> Vec<&Saved> {
        self.saved
            .iter()
            .enumerate()
            .filter(
                |(i, s)| match self.revoked.iter().find(|r| r.dev == s.dev) {
                    None => true,
                    Some(r) => r.kept.contains(i),
                },
            )
            .map(|(_, s)| s)
            .collect()
    }

    /// The device that runs a write op `dev` names, unless it is a revoked
    /// device that knows it is (its sync stopped, or it erased itself): a
    /// revoked device goes on working offline only until it learns of it.
    fn writer(&self, dev: u8) -> Result<Option<usize>, String> {
        let d = self.dev(dev);
        if !self.is_revoked(d) {
            return Ok(Some(d));
        }
        let dev = &self.devices[d];
        if !dev.is_open()
            || dev
                .store()
                .sync_stopped()
                .map_err(err("read sync state", d))?
        {
            return Ok(None);
        }
        Ok(Some(d))
    }

    /// The lead revokes device `d` over a working connection.
    fn revoke(&mut self, d: usize, hand_over: bool) -> Result<(), String> {
        let device_id = self.devices[d]
            .store()
            .team()
            .map_err(err("read team", d))?
            .ok_or_else(|| format!("device {d} has no team"))?
            .device_id;
        let waiting: BTreeSet<i64> = self.devices[d]
            .store()
            .outbox()
            .map_err(err("read the outbox", d))?
            .iter()
            .map(|o| o.seq)
            .collect();
        let mut kept = BTreeSet::new();
        let mut broken: BTreeSet<&DocId> = BTreeSet::new();
        for (i, s) in self.saved.iter().enumerate().filter(|(_, s)| s.dev == d) {
            let acked = s.outbox_seq.is_some_and(|q| !waiting.contains(&q));
            if acked && !broken.contains(&s.doc) {
                kept.insert(i);
            } else {
                broken.insert(&s.doc);
            }
        }
        let before = self.devices[0]
            .store()
            .key_epoch()
            .map_err(err("key epoch", 0))?;
        let lead = self.devices[0].store_mut();
        let (epoch, cutoff_seq) = if hand_over {
            self.admin
                .revoke(lead, &device_id)
                .map_err(err("revoke", 0))?
        } else {
            // BlockingTransport::revoke's two steps without its hand-over
            // sync: as if that sync had failed.
            let team = lead
                .team()
                .map_err(err("read team", 0))?
                .ok_or("the lead has no team")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            let http = {
                let _in = rt.enter();
                HttpTransport::new().map_err(err("HTTP client", 0))?
            };
            let cutoff = rt
                .block_on(http.revoke(&team, &device_id))
                .map_err(err("revoke at the relay", 0))?;
            // As `BlockingTransport::revoke` does: a lead that has not
            // learned the device's keys syncs first, then rotates.
            let epoch = match lead.rotate_after_revoke(&device_id, cutoff) {
                Err(heartbridge_core::Error::NotYetKnown { .. }) => {
                    lead.sync(
                        &mut BlockingTransport::default(),
                        &SyncOptions::default(),
                        &mut |_| {},
                    )
                    .map_err(err("sync to learn the keys", 0))?;
                    lead.rotate_after_revoke(&device_id, cutoff)
                }
                other => other,
            }
            .map_err(err("rotate the key", 0))?;
            (epoch, cutoff)
        };
        if epoch != before + 1 || lead.key_epoch().map_err(err("key epoch", 0))? != epoch {
            return Err(format!(
                "revoking device {d}: the lead went from key epoch {before} to {epoch}, not one up"
            ));
        }
        let listed = lead
            .roster()
            .map_err(err("roster", 0))?
            .into_iter()
            .any(|m| m.device_id == device_id && m.revoked);
        if !listed {
            return Err(format!(
                "revoking device {d}: the lead's roster does not show it revoked"
            ));
        }
        self.revoked.push(Revoked {
            dev: d,
            device_id: device_id.clone(),
            epoch,
            cutoff_seq,
            saved_before: self.saved.len(),
            kept,
            erased: false,
        });
        self.stats.revokes += 1;
        if hand_over && !self.relay_revokes(&device_id)? {
            return Err(format!(
                "revoking device {d}: the hand-over sync ran on a working connection, yet the relay's roster does not revoke it"
            ));
        }
        Ok(())
    }

    /// Whether the roster the relay serves, signed by the lead, revokes
    /// `device_id`.
    pub fn relay_revokes(&mut self, device_id: &str) -> Result<bool, String> {
        Ok(self
            .relay_roster()?
            .is_some_and(|r| r.revoked.iter().any(|x| hex(&x.device) == device_id)))
    }

    /// The roster the relay serves, checked against the lead's key (`None`
    /// before the lead's first upload).
    pub fn relay_roster(&mut self) -> Result<Option<heartbridge_core::proto::Roster>, String> {
        let team = self.devices[0]
            .store()
            .team()
            .map_err(err("read team", 0))?
            .ok_or("the lead has no team")?;
        let bytes = match Transport::roster(&mut self.admin, &team) {
            Ok(b) => b,
            Err(TransportError::Relay { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(format!("reading the relay's roster failed: {e:?}")),
        };
        let signed = SignedRoster::from_bytes(&bytes)
            .map_err(|_| "the relay's roster does not decode".to_owned())?;
        signed
            .verify(&team.lead_sign_pk, &team.team_id)
            .map(Some)
            .map_err(|_| "the relay's roster is not the lead's".to_owned())
    }

    /// A revoked device's sync ended in `Error::Erased`: its profile
    /// directory must hold no database and no keys file, and it stays
    /// closed.
    fn erased(&mut self, d: usize) -> Result<(), String> {
        self.devices[d].store = None;
        self.stats.erased += 1;
        if let Some(r) = self.revoked.iter_mut().find(|r| r.dev == d) {
            r.erased = true;
        }
        super::invariants::an_erased_profile_holds_nothing(&self.devices[d].profile())
            .map_err(|e| format!("device {d}: {e}"))
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
        let (kind, mut am) = self.devices[dev]
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
        let actor = am
            .get_change_by_hash(&hash)
            .map(|c| c.actor_id().clone())
            .ok_or_else(|| format!("device {dev}: its new change {hash} does not load"))?;
        let outbox_seq = self.devices[dev]
            .store()
            .outbox()
            .map_err(err("read the outbox", dev))?
            .iter()
            .filter(|o| o.doc_id == *doc)
            .map(|o| o.seq)
            .max();
        let view = if kind == DocKind::Case {
            let c = self.devices[dev]
                .store()
                .case(doc)
                .map_err(err("read the case just written", dev))?;
            Some(CaseView {
                assignee: c.assignee_device,
                assignments: c.assignments.into_iter().map(|a| a.id).collect(),
            })
        } else {
            None
        };
        self.saved.push(Saved {
            dev,
            doc: doc.clone(),
            hash,
            actor,
            outbox_seq,
            view,
        });
        self.stats.writes += 1;
        Ok(Some(hash))
    }

    /// Runs one operation.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.stats.ops += 1;
        match op {
            Op::NewCase { dev, risk } => {
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                        dev: d,
                        case: id.clone(),
                        risk: *risk,
                        hash,
                    });
                }
                self.creators.insert(id.clone(), d);
                self.cases.push(id);
            }
            Op::SetRisk { dev, case, risk } => {
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                        dev: d,
                        case: id,
                        risk: *risk,
                        hash,
                    });
                }
            }
            Op::AddContact { dev, case, note } => {
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
                let Some(d) = self.writer(*dev)? else {
                    return Ok(());
                };
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
            Op::Join { volunteer } => {
                if self.devices.len() < MAX_DEVICES {
                    self.join(*volunteer)?;
                }
            }
            Op::Assign { dev, case, to } => self.assign(*dev, *case, *to)?,
            Op::Sync(syncs) => self.sync(syncs)?,
            Op::Crash { dev } => {
                let d = self.dev(*dev);
                if self.devices[d].is_open() {
                    self.crash(d)?;
                }
            }
            Op::Revoke { dev, hand_over } => {
                let candidates: Vec<usize> = (1..self.devices.len())
                    .filter(|d| !self.is_revoked(*d))
                    .collect();
                if !candidates.is_empty() {
                    let d = candidates[usize::from(*dev) % candidates.len()];
                    self.revoke(d, *hand_over)?;
                }
            }
        }
        Ok(())
    }

    /// `Op::Assign`: a supervisor or the lead hands a case to another
    /// device; a volunteer is refused before anything is written.
    fn assign(&mut self, dev: u8, case: u8, to: u8) -> Result<(), String> {
        let Some(d) = self.writer(dev)? else {
            return Ok(());
        };
        if self.cases.is_empty() {
            return Ok(());
        }
        let t = 1 + usize::from(to) % (self.devices.len() - 1);
        let (to_id, to_name) = (self.devices[t].device_id.clone(), format!("volunteer {t}"));
        let note = "交接：请继续跟进";
        if self.devices[d].is_volunteer() {
            let id = self.cases[usize::from(case) % self.cases.len()].clone();
            let store = self.devices[d].store_mut();
            let before = store.outbox_len().map_err(err("outbox", d))?;
            match store.assign_case(&id, &to_id, &to_name, note) {
                Err(Error::Forbidden { .. }) => {}
                Err(e) => {
                    return Err(format!(
                        "device {d}: a volunteer's assign_case failed with {e}, not forbidden"
                    ))
                }
                Ok(_) => return Err(format!("device {d}: a volunteer assigned a case")),
            }
            if store.outbox_len().map_err(err("outbox", d))? != before {
                return Err(format!(
                    "device {d}: a volunteer's refused assign_case queued something"
                ));
            }
            self.stats.refused_assigns += 1;
            return Ok(());
        }
        let Some(id) = self.case_on(d, case)? else {
            return Ok(());
        };
        let known = self.devices[d]
            .store()
            .roster()
            .map_err(err("roster", d))?
            .into_iter()
            .any(|m| m.device_id == to_id && !m.revoked);
        match self.devices[d]
            .store_mut()
            .assign_case(&id, &to_id, &to_name, note)
        {
            Ok(_) => {}
            Err(Error::NotFound { .. }) if !known => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "device {d}: assigning a case to device {t} failed: {e}"
                ))
            }
        }
        if !known {
            return Err(format!(
                "device {d}: assigned a case to device {t}, which its roster does not list"
            ));
        }
        self.saved(d, &id, None)?;
        self.assigned.push((id, t));
        self.stats.assigns += 1;
        Ok(())
    }

    /// The live devices that must read each case (`None`: every one),
    /// by the rule of `access.rs`, from the assignee in the lead's copy:
    /// the assignee, every supervisor (the sim sets no supervisor groups)
    /// and the lead (`lead_reads_cases` is on).
    pub fn readers(&self) -> Result<BTreeMap<DocId, BTreeSet<usize>>, String> {
        let lead = self.devices[0].store();
        let mut out = BTreeMap::new();
        for id in &self.cases {
            let assignee = match lead.case(id) {
                Ok(c) => Some(c.assignee_device),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(format!("device 0: reading case {id}: {e}")),
            };
            let set = self
                .live()
                .into_iter()
                .filter(|(d, dev)| match &assignee {
                    _ if !dev.is_volunteer() => true,
                    Some(a) => *a == dev.device_id,
                    // The lead lacks it (an invariant says so): judge by
                    // who made it.
                    None => self.creators.get(id) == Some(d),
                })
                .map(|(d, _)| d)
                .collect();
            out.insert(id.clone(), set);
        }
        Ok(out)
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
            if !self.devices[d].is_open() {
                continue; // erased
            }
            cfg[d].get_or_insert(SyncOptions {
                max_push_bytes: c.max_push_bytes,
                page_bytes: c.page_bytes,
                snapshot_all: c.snapshot_all,
                ..SyncOptions::default()
            });
        }
        // For each revoked device in this round: did the relay's roster
        // revoke it before the round?
        let mut before: Vec<Option<bool>> = vec![None; self.devices.len()];
        for r in self.revoked.clone() {
            if cfg[r.dev].is_some() {
                before[r.dev] = Some(self.relay_revokes(&r.device_id)?);
            }
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
            if let Err(panic) = &o.result {
                return Err(format!("device {d}: sync panicked: {panic}"));
            }
            if let Some(up_before) = before[d] {
                let id = self
                    .revoked
                    .iter()
                    .find(|r| r.dev == d)
                    .map(|r| r.device_id.clone());
                let up_after = match id {
                    Some(id) => self.relay_revokes(&id)?,
                    None => false,
                };
                let erased = self.revoked_sync_outcome(&o, up_before, up_after)?;
                if erased {
                    self.erased(d)?;
                    continue;
                }
            } else {
                match &o.result {
                    Ok(Err(e)) if o.faults.is_empty() => {
                        return Err(format!("device {d}: sync failed on a working network: {e}"))
                    }
                    Ok(Ok(_)) if o.crashed => {
                        return Err(format!(
                        "device {d}: sync reported success although the device crashed during it"
                    ))
                    }
                    _ => {}
                }
            }
            if o.crashed {
                self.crash(d)?;
            }
        }
        Ok(())
    }

    /// Judges how a revoked device's sync ended; `true` if it erased
    /// itself. The relay refuses it, so its sync never succeeds; it ends in
    /// `Error::Erased` if the relay served the lead's roster revoking it,
    /// in `Error::DeviceRevoked` if not (the relay's word alone erases
    /// nothing), and in a network error only if the network failed it.
    fn revoked_sync_outcome(
        &self,
        o: &super::net::Outcome,
        up_before: bool,
        up_after: bool,
    ) -> Result<bool, String> {
        let d = o.dev;
        let faulty = !o.faults.is_empty();
        let Ok(result) = &o.result else {
            return Ok(false);
        };
        match result {
            Ok(_) => Err(format!(
                "device {d}: revoked, yet its sync succeeded (faults {:?})",
                o.faults
            )),
            Err(Error::Erased) if up_after => Ok(true),
            Err(Error::Erased) => Err(format!(
                "device {d}: erased itself although the relay never served a roster revoking it"
            )),
            Err(Error::DeviceRevoked) if up_before && !faulty => Err(format!(
                "device {d}: the relay serves the lead's roster revoking it, yet its sync on a working network ended in device_revoked, not erased"
            )),
            Err(Error::DeviceRevoked) => Ok(false),
            Err(e) if faulty => {
                let _ = e;
                Ok(false)
            }
            Err(e) => Err(format!(
                "device {d}: revoked; its sync on a working network failed with {e}, neither device_revoked nor erased"
            )),
        }
    }

    /// Every device not revoked syncs, over a perfect network, until a
    /// whole round moves nothing and every outbox is empty; then every
    /// revoked device not yet erased syncs once and must erase itself (the
    /// lead's roster has reached the relay by then).
    pub fn quiesce(&mut self) -> Result<(), String> {
        self.net.settle();
        const ROUNDS: usize = 8;
        let mut quiet = false;
        for _ in 0..ROUNDS {
            let mut moved = 0;
            let mut pending = 0;
            for (d, dev) in self.devices.iter_mut().enumerate() {
                if self.revoked.iter().any(|r| r.dev == d) {
                    continue;
                }
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
                quiet = true;
                break;
            }
        }
        if !quiet {
            return Err(format!(
                "quiescence: devices still moved envelopes after {ROUNDS} fault-free rounds"
            ));
        }
        for r in self.revoked.clone() {
            if !self.relay_revokes(&r.device_id)? {
                return Err(format!(
                    "quiescence: the lead synced, yet the relay's roster does not revoke device {}",
                    r.dev
                ));
            }
            if r.erased {
                continue;
            }
            let got = self.devices[r.dev].store_mut().sync(
                &mut BlockingTransport::default(),
                &SyncOptions::default(),
                &mut |_| {},
            );
            match got {
                Err(Error::Erased) => self.erased(r.dev)?,
                Ok(_) => {
                    return Err(format!(
                        "quiescence: revoked device {} synced successfully",
                        r.dev
                    ))
                }
                Err(e) => {
                    let files: Vec<String> = std::fs::read_dir(self.devices[r.dev].profile())
                        .map(|rd| {
                            rd.filter_map(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    return Err(format!(
                        "quiescence: revoked device {}'s sync ended in {e}, not erased, although the relay serves the roster revoking it (profile files: {files:?})",
                        r.dev
                    ));
                }
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
