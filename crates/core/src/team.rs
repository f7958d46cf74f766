//! Who may write to the team: the roster the lead signs, the members the
//! relay registered, key epochs, revocation and crypto-erase.
//!
//! A device accepts a pulled envelope only if its author signed it and is
//! a member: named in the newest roster the lead signed (and not revoked,
//! or revoked but the envelope predates the revocation), or proven by a
//! join proof made with the current epoch's key (a member who joined since
//! the lead last signed). An envelope whose author or key epoch this
//! device does not know yet is *held* whole and retried when a roster, a
//! member or a key arrives.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use heartbridge_proto::identity::{
    check_join_proof, open_epoch_key, seal_epoch_key, DeviceId, DeviceSecret, Revocation,
    RosterMember,
};
use heartbridge_proto::{DevicePublic, Envelope, MemberKey, Role, Roster, SignedRoster, TeamKey};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::enroll::{device_secret, Team};
use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::store::Store;

/// What became of the author check of one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Signed by a member; open it with this key.
    Accept(TeamKey),
    /// Not decidable yet (author or key epoch unknown here): keep it.
    Hold(&'static str),
    /// Never acceptable.
    Refuse(&'static str),
}

struct Known {
    role: Role,
    public: DevicePublic,
    revoked: Option<Revocation>,
}

/// Everything needed to judge pulled envelopes, loaded once per response.
pub(crate) struct Trust {
    team: heartbridge_proto::TeamId,
    keys: BTreeMap<u32, TeamKey>,
    known: HashMap<DeviceId, Known>,
}

fn bad_row(what: &str) -> Error {
    Error::Protocol {
        detail: format!("a stored {what} is unreadable"),
    }
}

pub(crate) fn epoch_keys(conn: &Connection) -> Result<BTreeMap<u32, TeamKey>> {
    let mut st = conn.prepare_cached("SELECT epoch, key FROM epoch_keys")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (e, k) = row?;
        let k: [u8; 32] = k.try_into().map_err(|_| bad_row("key epoch"))?;
        out.insert(e as u32, TeamKey::from_bytes(k));
    }
    Ok(out)
}

/// The stored roster: (version, roster, pushed).
pub(crate) fn stored_roster(conn: &Connection, team: &Team) -> Result<Option<(Roster, bool)>> {
    let row: Option<(Vec<u8>, bool)> = conn
        .query_row("SELECT signed, pushed FROM roster WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((bytes, pushed)) = row else {
        return Ok(None);
    };
    let signed = SignedRoster::from_bytes(&bytes).map_err(|_| bad_row("roster"))?;
    let roster = signed
        .verify(&team.lead_sign_pk, &team.team_id)
        .map_err(|_| bad_row("roster"))?;
    Ok(Some((roster, pushed)))
}

fn store_roster(
    conn: &Connection,
    signed: &SignedRoster,
    version: u64,
    pushed: bool,
) -> Result<()> {
    conn.execute(
        "INSERT INTO roster (id, version, signed, pushed) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET version = ?1, signed = ?2, pushed = ?3",
        params![version as i64, signed.to_bytes(), pushed],
    )?;
    Ok(())
}

/// The roster the lead's device uploads next, if the relay lacks it.
pub(crate) fn roster_to_push(conn: &Connection) -> Result<Option<(u64, Vec<u8>)>> {
    Ok(conn
        .query_row(
            "SELECT version, signed FROM roster WHERE id = 1 AND pushed = 0",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?)
}

pub(crate) fn mark_roster_pushed(conn: &Connection, version: u64) -> Result<()> {
    conn.execute(
        "UPDATE roster SET pushed = 1 WHERE id = 1 AND version = ?1",
        [version as i64],
    )?;
    Ok(())
}

pub(crate) fn roster_version(conn: &Connection) -> Result<u64> {
    Ok(conn
        .query_row("SELECT version FROM roster WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

/// The lead's first roster: itself, epoch 1.
pub(crate) fn start_roster(conn: &Connection, team: &Team, me: &DeviceSecret) -> Result<()> {
    let device = team.device_bytes().ok_or_else(|| bad_row("device id"))?;
    let roster = Roster {
        team: team.team_id.0,
        version: 1,
        epoch: team.epoch,
        members: vec![RosterMember {
            device,
            role: team.role,
            public: me.public(),
            added_at: now_ms() / 1000,
        }],
        revoked: vec![],
        keys: vec![],
        key_checks: vec![(team.epoch, team.key.check_value())],
    };
    store_roster(conn, &SignedRoster::sign(&roster, me), 1, false)
}

struct MemberRow {
    role: Role,
    public: DevicePublic,
    epoch: u32,
    proof: [u8; 32],
    revoked: bool,
}

fn member_rows(conn: &Connection) -> Result<HashMap<DeviceId, MemberRow>> {
    let mut st = conn.prepare_cached(
        "SELECT device, role, sign_pk, kx_pk, epoch, proof, revoked FROM members",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Vec<u8>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Vec<u8>>(5)?,
            r.get::<_, bool>(6)?,
        ))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (d, role, sign, kx, epoch, proof, revoked) = row?;
        let parse = || -> Option<(DeviceId, MemberRow)> {
            Some((
                heartbridge_proto::identity::device_from_hex(&d)?,
                MemberRow {
                    role: role.parse().ok()?,
                    public: DevicePublic {
                        sign: sign.try_into().ok()?,
                        kx: kx.try_into().ok()?,
                    },
                    epoch: u32::try_from(epoch).ok()?,
                    proof: proof.try_into().ok()?,
                    revoked,
                },
            ))
        };
        let (d, m) = parse().ok_or_else(|| bad_row("member"))?;
        out.insert(d, m);
    }
    Ok(out)
}

impl Trust {
    pub(crate) fn load(conn: &Connection, team: &Team) -> Result<Trust> {
        let keys = epoch_keys(conn)?;
        let roster = stored_roster(conn, team)?.map(|(r, _)| r);
        let mut known = HashMap::new();
        let floor = roster.as_ref().map_or(0, |r| r.epoch);
        for (device, m) in member_rows(conn)? {
            // Proven by a join proof under an epoch key this device holds
            // and no older than the roster's epoch: a revoked member's old
            // key cannot vouch for a device made after the rotation.
            let proven = m.epoch >= floor
                && keys.get(&m.epoch).is_some_and(|k| {
                    check_join_proof(k, &team.team_id, &m.public, m.role, &m.proof)
                });
            if proven {
                known.insert(
                    device,
                    Known {
                        role: m.role,
                        public: m.public,
                        revoked: None,
                    },
                );
            }
        }
        if let Some(r) = roster {
            for m in r.members {
                let revoked = r.revoked.iter().find(|x| x.device == m.device).cloned();
                known.insert(
                    m.device,
                    Known {
                        role: m.role,
                        public: m.public,
                        revoked,
                    },
                );
            }
        }
        Ok(Trust {
            team: team.team_id,
            keys,
            known,
        })
    }

    /// Judges one pulled envelope. `central_seq` is its sequence number at
    /// the central relay, the space a revocation's cut-off counts in; `None`
    /// when it came from another relay, a venue relay, whose seqs are its
    /// own (review F4): a revoked author's envelope is then held until it is
    /// pulled from the central relay, whose seq decides it (a stolen
    /// device's envelope pushed to a venue relay whose mirror has not heard
    /// of the revocation is never applied; one written before the cut-off is
    /// applied once the central relay shows it).
    pub(crate) fn check(&self, env: &Envelope, central_seq: Option<u64>) -> Verdict {
        let Some(k) = self.known.get(&env.author) else {
            return Verdict::Hold("unknown author");
        };
        // A venue relay carries envelopes; it never writes one (it holds no
        // key): an envelope in its name is not the team's.
        if k.role == Role::Relay {
            return Verdict::Refuse("relay author");
        }
        let mut undecided = false;
        if let Some(r) = &k.revoked {
            if env.epoch >= r.epoch || central_seq.is_some_and(|seq| seq > r.cutoff_seq) {
                return Verdict::Refuse("revoked author");
            }
            undecided = central_seq.is_none();
        }
        if !env.verify(&self.team, &k.public.sign) {
            return Verdict::Refuse("bad signature");
        }
        if undecided {
            return Verdict::Hold("revoked author, not yet seen at the central relay");
        }
        match self.keys.get(&env.epoch) {
            Some(key) => Verdict::Accept(key.clone()),
            None => Verdict::Hold("key epoch not held"),
        }
    }

    pub(crate) fn team_id(&self) -> &heartbridge_proto::TeamId {
        &self.team
    }

    /// A member's signing key, and whether the lead revoked it, if this
    /// device trusts it (a bundle's trailer is checked under it).
    pub(crate) fn signer(&self, device: &DeviceId) -> Option<([u8; 32], bool)> {
        self.known
            .get(device)
            .map(|k| (k.public.sign, k.revoked.is_some()))
    }

    /// The role of a member this device trusts (revoked members included).
    /// A trust of the given members, none revoked (unit tests of the key
    /// layer, which need roles but no roster).
    #[cfg(test)]
    pub(crate) fn of_members(
        team: heartbridge_proto::TeamId,
        members: &[(DeviceId, Role)],
    ) -> Trust {
        let known = members
            .iter()
            .map(|(d, role)| {
                (
                    *d,
                    Known {
                        role: *role,
                        public: DevicePublic {
                            sign: [0; 32],
                            kx: [0; 32],
                        },
                        revoked: None,
                    },
                )
            })
            .collect();
        Trust {
            team,
            keys: BTreeMap::new(),
            known,
        }
    }

    pub(crate) fn role_of(&self, device: &DeviceId) -> Option<Role> {
        self.known.get(device).map(|k| k.role)
    }

    /// Every member this device trusts and is not revoked: id, role and
    /// X25519 public key (what case keys are sealed to).
    pub(crate) fn members(&self) -> Vec<(DeviceId, Role, [u8; 32])> {
        let mut out: Vec<_> = self
            .known
            .iter()
            .filter(|(_, k)| k.revoked.is_none() && k.role != Role::Relay)
            .map(|(d, k)| (*d, k.role, k.public.kx))
            .collect();
        out.sort_by_key(|(d, _, _)| *d);
        out
    }
}

/// What a response's roster and members changed here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct News {
    /// Trust changed: held envelopes are worth retrying.
    pub changed: bool,
    /// The lead's signed roster revokes this device.
    pub revoked_me: bool,
}

/// Takes in a roster (if newer and signed by the lead) and member entries,
/// inside the caller's transaction. On the lead's device, then folds newly
/// proven members into a new roster.
pub(crate) fn take_news(
    conn: &Connection,
    team: &Team,
    roster: Option<&[u8]>,
    members: &[MemberKey],
) -> Result<News> {
    let mut news = News::default();
    let me = device_secret(conn)?.ok_or_else(|| bad_row("device keys"))?;
    let my_id = team.device_bytes().ok_or_else(|| bad_row("device id"))?;
    for m in members {
        conn.execute(
            "INSERT INTO members (device, role, sign_pk, kx_pk, epoch, proof, revoked, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (device) DO UPDATE SET role = ?2, sign_pk = ?3, kx_pk = ?4, epoch = ?5,
                 proof = ?6, revoked = ?7, seq = ?8",
            params![
                hex::encode(m.device),
                m.role.as_str(),
                &m.public.sign[..],
                &m.public.kx[..],
                m.epoch,
                &m.proof[..],
                m.revoked,
                m.seq as i64
            ],
        )?;
        conn.execute(
            "UPDATE sync_state SET members_seq = max(members_seq, ?1) WHERE id = 1",
            [m.seq as i64],
        )?;
        news.changed = true;
    }
    if let Some(bytes) = roster {
        // A roster that does not read, or that the lead did not sign, is
        // ignored like any other word of the relay about who belongs: it
        // must not stop the sync either.
        let verified = SignedRoster::from_bytes(bytes).ok().and_then(|signed| {
            Some((
                signed.verify(&team.lead_sign_pk, &team.team_id).ok()?,
                signed,
            ))
        });
        if let Some((r, signed)) = verified {
            if r.version > roster_version(conn)? {
                for k in r.keys.iter().filter(|k| k.device == my_id) {
                    if let Some(key) = open_epoch_key(&team.team_id, &me, k) {
                        conn.execute(
                            "INSERT OR IGNORE INTO epoch_keys (epoch, key, added_at) VALUES (?1, ?2, ?3)",
                            params![k.epoch, &key.expose()[..], now_ms()],
                        )?;
                    }
                }
                news.revoked_me = r.revoked.iter().any(|x| x.device == my_id);
                store_roster(conn, &signed, r.version, true)?;
                news.changed = true;
            }
        }
    }
    if team.lead_sign_pk == me.public().sign && news.changed {
        fold_members(conn, team, &me)?;
    }
    Ok(news)
}

/// On the lead's device: adds to the roster every member the relay
/// registered whose join proof checks under an epoch key it holds, and
/// seals to it every key epoch (so it reads the team's history).
fn fold_members(conn: &Connection, team: &Team, me: &DeviceSecret) -> Result<bool> {
    let Some((mut roster, _)) = stored_roster(conn, team)? else {
        return Ok(false);
    };
    let keys = epoch_keys(conn)?;
    let mut added = false;
    let mut rows: Vec<_> = member_rows(conn)?.into_iter().collect();
    rows.sort_by_key(|(d, _)| *d);
    for (device, m) in rows {
        // A proof under an older epoch is a device that joined before the
        // relay learned of the rotation (the relay refuses older codes
        // after it: `invite_outdated`).
        // A venue relay (role relay) holds no key, so it can make no proof:
        // the roster lists it as the relay registered it (the lead invited
        // it), and no epoch key is sealed to it. Devices never accept an
        // envelope in its name (`Trust::check`).
        let relay = m.role == Role::Relay;
        if m.revoked
            || roster.members.iter().any(|x| x.device == device)
            || (!relay
                && !keys.get(&m.epoch).is_some_and(|k| {
                    check_join_proof(k, &team.team_id, &m.public, m.role, &m.proof)
                }))
        {
            continue;
        }
        if !relay {
            for (epoch, key) in &keys {
                if let Some(s) = seal_epoch_key(&team.team_id, *epoch, device, &m.public.kx, key) {
                    roster.keys.push(s);
                }
            }
        }
        roster.members.push(RosterMember {
            device,
            role: m.role,
            public: m.public,
            added_at: now_ms() / 1000,
        });
        added = true;
    }
    if added {
        roster.version += 1;
        store_roster(
            conn,
            &SignedRoster::sign(&roster, me),
            roster.version,
            false,
        )?;
    }
    Ok(added)
}

/// A member as the roster shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct RosterEntry {
    pub device_id: String,
    pub role: Role,
    pub revoked: bool,
    /// In the lead-signed roster (otherwise proven by its join proof only).
    pub signed: bool,
}

impl Store {
    /// The team as this device trusts it: the signed roster and the
    /// members proven since.
    pub fn roster(&self) -> Result<Vec<RosterEntry>> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let roster = stored_roster(self.conn(), &team)?.map(|(r, _)| r);
        let trust = Trust::load(self.conn(), &team)?;
        let mut out: Vec<RosterEntry> = trust
            .known
            .iter()
            .map(|(d, k)| RosterEntry {
                device_id: hex::encode(d),
                role: k.role,
                revoked: k.revoked.is_some(),
                signed: roster
                    .as_ref()
                    .is_some_and(|r| r.members.iter().any(|m| m.device == *d)),
            })
            .collect();
        out.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(out)
    }

    /// Signs an envelope as this device (the sync engine does this for
    /// every push; tools and tests that craft envelopes use it too).
    pub fn sign_envelope(&self, env: &mut Envelope) -> Result<()> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let me = device_secret(self.conn())?.ok_or_else(|| bad_row("device keys"))?;
        let author = team.device_bytes().ok_or_else(|| bad_row("device id"))?;
        env.sign(&team.team_id, author, &me);
        Ok(())
    }

    /// This device's public keys, once made (at its first enrollment).
    pub fn device_public(&self) -> Result<Option<DevicePublic>> {
        Ok(device_secret(self.conn())?.map(|s| s.public()))
    }

    /// The key epoch new envelopes are sealed under.
    pub fn key_epoch(&self) -> Result<u32> {
        Ok(self.team()?.ok_or(Error::NotEnrolled)?.epoch)
    }

    /// On the lead's device, after the relay refused `device` (answering
    /// `cutoff_seq`): makes a new key epoch, seals it to every remaining
    /// member, and signs a roster that records the revocation. The roster
    /// goes to the relay at the next sync; the other devices take the new
    /// key from it. Returns the new epoch. One `IMMEDIATE` transaction.
    pub fn rotate_after_revoke(&mut self, device: &str, cutoff_seq: u64) -> Result<u32> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let target = heartbridge_proto::identity::device_from_hex(device).ok_or_else(|| {
            Error::InvalidValue {
                field: "device",
                value: device.to_owned(),
                allowed: "a device id as `heartbridge team members` shows it (32 hex digits)",
            }
        })?;
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let me = device_secret(&tx)?.ok_or_else(|| bad_row("device keys"))?;
        if team.lead_sign_pk != me.public().sign {
            return Err(Error::NotLead);
        }
        fold_members(&tx, &team, &me)?;
        let (mut roster, _) = stored_roster(&tx, &team)?.ok_or_else(|| bad_row("roster"))?;
        if target == team.device_bytes().unwrap_or_default() {
            return Err(Error::InvalidValue {
                field: "device",
                value: device.to_owned(),
                allowed: "another member's device: the lead cannot remove itself",
            });
        }
        if let Some(r) = roster.revoked.iter().find(|r| r.device == target) {
            let epoch = r.epoch;
            tx.commit()?;
            return Ok(epoch);
        }
        if !roster.members.iter().any(|m| m.device == target) {
            // Known to the relay only: its keys go into the roster, so the
            // envelopes it delivered before the revocation are still
            // checked and kept by every device.
            let Some(m) = member_rows(&tx)?.remove(&target) else {
                return Err(Error::NotYetKnown {
                    what: "the removed device's keys",
                });
            };
            roster.members.push(RosterMember {
                device: target,
                role: m.role,
                public: m.public,
                added_at: now_ms() / 1000,
            });
        }
        let epoch = epoch_keys(&tx)?
            .keys()
            .max()
            .copied()
            .unwrap_or(1)
            .max(roster.epoch)
            + 1;
        let key = TeamKey::generate();
        roster.epoch = epoch;
        roster.revoked.push(Revocation {
            device: target,
            at: now_ms() / 1000,
            epoch,
            cutoff_seq,
        });
        roster.keys.retain(|k| k.device != target);
        let revoked: Vec<DeviceId> = roster.revoked.iter().map(|r| r.device).collect();
        let my_id = team.device_bytes().unwrap_or_default();
        let mut sealed = Vec::new();
        for m in &roster.members {
            // A venue relay never gets a key.
            if m.device == my_id || revoked.contains(&m.device) || m.role == Role::Relay {
                continue;
            }
            sealed.extend(seal_epoch_key(
                &team.team_id,
                epoch,
                m.device,
                &m.public.kx,
                &key,
            ));
        }
        roster.keys.extend(sealed);
        roster.key_checks.push((epoch, key.check_value()));
        roster.version += 1;
        tx.execute(
            "INSERT INTO epoch_keys (epoch, key, added_at) VALUES (?1, ?2, ?3)",
            params![epoch, &key.expose()[..], now_ms()],
        )?;
        store_roster(
            &tx,
            &SignedRoster::sign(&roster, &me),
            roster.version,
            false,
        )?;
        tx.commit()?;
        Ok(epoch)
    }

    /// Takes in a signed roster fetched outside a sync (a revoked device
    /// asks for it). If it revokes this device, erases the profile and
    /// answers [`Error::Erased`].
    pub fn take_roster(&mut self, bytes: &[u8]) -> Result<()> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let news = take_news(&tx, &team, Some(bytes), &[])?;
        tx.commit()?;
        if news.revoked_me {
            erase_profile(self.path())?;
            return Err(Error::Erased);
        }
        Ok(())
    }

    /// On the lead's device: whether it holds a roster the relay does not
    /// have yet (a rotation not handed over). An invite made now would carry
    /// a key epoch the relay does not know: sync first.
    pub fn roster_unsent(&self) -> Result<bool> {
        Ok(roster_to_push(self.conn())?.is_some())
    }

    /// Whether sync stopped because the relay said this device is revoked.
    pub fn sync_stopped(&self) -> Result<bool> {
        let s: Option<String> =
            self.conn()
                .query_row("SELECT stopped FROM sync_state WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
        Ok(s.as_deref() == Some("revoked"))
    }

    pub(crate) fn stop_sync(&mut self) -> Result<()> {
        self.conn()
            .execute("UPDATE sync_state SET stopped = 'revoked' WHERE id = 1", [])?;
        Ok(())
    }
}

/// Crypto-erase of a profile: the wrapped database key is overwritten and
/// deleted first (after that nothing in the directory can be decrypted),
/// with its OS key-store entry, then the database and its side files; a
/// marker says later what happened. `db` is the database file.
pub fn erase_profile(db: &Path) -> Result<()> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let keys = crate::vault::KeysFile::read(dir).ok().flatten();
    crate::vault::destroy(dir, keys.as_ref())
}
