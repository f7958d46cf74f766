//! The venue relay's own rows in its database (migration 5): its upstream
//! enrollment and cursors (`venue`), which of its envelopes the upstream
//! relay holds (`venue_upstream`), and the mirror of the team's members,
//! keys and roster in the ordinary tables, so that the ordinary handlers
//! check device pushes and serve pulls exactly as a central relay does.
//!
//! One connection of its own, beside the relay's writer: every write here
//! is one `IMMEDIATE` transaction, so SQLite orders it with the writer's
//! group commits and sequence numbers still become visible in order.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use heartbridge_proto::{
    Ack, ContentId, DeviceSecret, Envelope, EnvelopeKind, MemberKey, Pulled, Refused, SignedRoster,
    TeamId,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;

fn err(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    StoreError::sqlite(what)
}

/// The venue relay's enrollment and where forwarding stands.
#[derive(Clone)]
pub struct VenueState {
    pub team: TeamId,
    pub upstream: String,
    pub device: [u8; 16],
    pub secret: DeviceSecret,
    pub enrollment_id: String,
    /// `None` until the upstream relay answered the join.
    pub token: Option<String>,
    pub key_check: String,
    pub epoch: u32,
    pub lead_sign_pk: [u8; 32],
    pub invite_token: String,
    pub upstream_cursor: u64,
    pub members_since: u64,
    pub roster_version: u64,
    pub forwarded_seq: u64,
    /// The upstream relay's certificate pin, from the invite code.
    pub upstream_pin: Option<String>,
}

impl std::fmt::Debug for VenueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueState")
            .field("team", &self.team)
            .field("upstream", &self.upstream)
            .field("device", &hex::encode(self.device))
            .field("enrolled", &self.token.is_some())
            .field("upstream_cursor", &self.upstream_cursor)
            .field("forwarded_seq", &self.forwarded_seq)
            .finish_non_exhaustive()
    }
}

/// A venue relay's forwarding, as its operator reads it (review F13: what
/// the central relay refused is counted, not silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VenueStatus {
    /// The team (hex).
    pub team: String,
    /// The upstream (central) relay.
    pub upstream: String,
    /// Whether the upstream relay answered the join.
    pub enrolled: bool,
    /// Envelopes stored here the upstream relay has not answered yet.
    pub backlog: u64,
    /// Envelopes here that the upstream relay holds (forwarded or pulled).
    pub at_upstream: u64,
    /// Envelopes devices pushed here that the upstream relay refused (an
    /// author removed from the team after writing them, most often): they
    /// stay here and on the devices that pulled them, never at the central
    /// relay.
    pub refused_upstream: u64,
}

/// One local envelope waiting to go upstream.
pub struct Outgoing {
    pub seq: u64,
    pub envelope: Envelope,
}

/// What the answer to one forward changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub acked: usize,
    pub refused: usize,
    pub pulled_new: usize,
    pub pulled_known: usize,
    pub members: usize,
    pub roster: bool,
}

pub struct VenueDb {
    conn: Mutex<Connection>,
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn kind_code(k: EnvelopeKind) -> i64 {
    match k {
        EnvelopeKind::Change => 1,
        EnvelopeKind::Snapshot => 2,
    }
}

impl VenueDb {
    /// Opens the relay database (already migrated by the relay's storage).
    pub fn open(path: &Path) -> Result<VenueDb, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(open_err)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(open_err)?;
        Ok(VenueDb {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> Result<Option<VenueState>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT team_id, upstream, device_id, secret, enrollment_id, token, key_check, epoch,
                    lead_sign_pk, invite_token, upstream_cursor, members_since, roster_version, forwarded_seq,
                    upstream_pin
             FROM venue WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, String>(9)?,
                    (
                        r.get::<_, i64>(10)?,
                        r.get::<_, i64>(11)?,
                        r.get::<_, i64>(12)?,
                        r.get::<_, i64>(13)?,
                    ),
                    r.get::<_, Option<String>>(14)?,
                ))
            },
        )
        .optional()
        .map_err(err("read the venue state"))?
        .map(|(team, upstream, device, secret, eid, token, kc, epoch, lead, inv, c, pin)| {
            let bad = |what| StoreError::Corrupt { what };
            Ok(VenueState {
                team: TeamId(team.try_into().map_err(|_| bad("venue.team_id"))?),
                upstream,
                device: device.try_into().map_err(|_| bad("venue.device_id"))?,
                secret: DeviceSecret::from_bytes(&secret).ok_or(bad("venue.secret"))?,
                enrollment_id: eid,
                token,
                key_check: kc,
                epoch: u32::try_from(epoch).unwrap_or(1),
                lead_sign_pk: lead.try_into().map_err(|_| bad("venue.lead_sign_pk"))?,
                invite_token: inv,
                upstream_cursor: u(c.0),
                members_since: u(c.1),
                roster_version: u(c.2),
                forwarded_seq: u(c.3),
                upstream_pin: pin,
            })
        })
        .transpose()
    }

    /// Records a join before it is sent (so a lost answer is retried with
    /// the same keys and enrollment id), with the team's row the mirror
    /// fills. Refuses a second team: a venue relay serves one.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_join(
        &self,
        team: TeamId,
        upstream: &str,
        secret: &DeviceSecret,
        enrollment_id: &str,
        key_check: &str,
        epoch: u32,
        lead_sign_pk: [u8; 32],
        invite_token: &str,
        upstream_pin: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a venue join"))?;
        let other: Option<Vec<u8>> = tx
            .query_row("SELECT team_id FROM venue WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(err("read the venue state"))?;
        if let Some(other) = other {
            if other != team.0 {
                return Err(StoreError::Corrupt {
                    what: "venue: this database already serves another team",
                });
            }
            return Ok(());
        }
        tx.execute(
            "INSERT INTO teams (id, name, key_check, lead_token_hash, lead_token_used, created_at, lead_sign_pk, key_epoch)
             VALUES (?1, 'venue mirror', ?2, ?3, 1, ?4, ?5, ?6)
             ON CONFLICT (id) DO NOTHING",
            params![
                team.0,
                key_check,
                format!("venue-mirror:{}", hex::encode(rand::random::<[u8; 16]>())),
                now,
                lead_sign_pk,
                epoch.max(1)
            ],
        )
        .map_err(err("create the mirrored team"))?;
        tx.execute(
            "INSERT INTO venue (id, team_id, upstream, device_id, secret, enrollment_id, key_check, epoch, lead_sign_pk, invite_token, joined_at, upstream_pin)
             VALUES (1, ?1, ?2, zeroblob(16), ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                team.0,
                upstream,
                &secret.to_bytes()[..],
                enrollment_id,
                key_check,
                epoch,
                lead_sign_pk,
                invite_token,
                now,
                upstream_pin
            ],
        )
        .map_err(err("record the venue join"))?;
        tx.commit().map_err(err("commit the venue join"))
    }

    pub fn finish_join(&self, device: [u8; 16], token: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE venue SET device_id = ?1, token = ?2 WHERE id = 1",
                params![device, token],
            )
            .map_err(err("store the venue enrollment"))?;
        Ok(())
    }

    /// The next local envelopes not yet answered upstream, in log order
    /// (the order devices pushed them): at most `max` envelopes and about
    /// `max_bytes` of ciphertext (at least one).
    pub fn next_batch(
        &self,
        st: &VenueState,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Outgoing>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT e.seq, e.doc, e.kind, e.content_id, e.epoch, e.covers, e.nonce, e.ciphertext, e.author_device, e.sig
                 FROM envelopes e
                 WHERE e.team_id = ?1 AND e.seq > ?2
                   AND NOT EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq)
                 ORDER BY e.seq LIMIT ?3",
            )
            .map_err(err("read envelopes to forward"))?;
        let rows = stmt
            .query_map(params![st.team.0, i(st.forwarded_seq), max as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, Option<Vec<u8>>>(9)?,
                ))
            })
            .map_err(err("read envelopes to forward"))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for row in rows {
            let (seq, doc, kind, id, epoch, covers, nonce, ct, author, sig) =
                row.map_err(err("read envelopes to forward"))?;
            if !out.is_empty() && bytes + ct.len() > max_bytes {
                break;
            }
            bytes += ct.len();
            let bad = |what| StoreError::Corrupt { what };
            out.push(Outgoing {
                seq: u(seq),
                envelope: Envelope {
                    doc: doc.try_into().map_err(|_| bad("envelopes.doc"))?,
                    kind: if kind == 2 {
                        EnvelopeKind::Snapshot
                    } else {
                        EnvelopeKind::Change
                    },
                    epoch: u32::try_from(epoch).unwrap_or(0),
                    id: ContentId(id.try_into().map_err(|_| bad("envelopes.content_id"))?),
                    covers: u(covers),
                    nonce: nonce.try_into().map_err(|_| bad("envelopes.nonce"))?,
                    ciphertext: ct,
                    author: author.try_into().map_err(|_| bad("envelopes.author"))?,
                    sig: sig.and_then(|s| s.try_into().ok()).unwrap_or([0; 64]),
                },
            });
        }
        Ok(out)
    }

    /// Takes in the upstream relay's answer to one forward, in one
    /// transaction: the roster (if the lead signed it and it is newer) and
    /// member entries mirrored, the forwarded envelopes marked (acked under
    /// their upstream seq; refused ones, and snapshots that were not sent,
    /// under 0), the pulled envelopes stored once each (dedup by content
    /// id) and marked as held upstream, the cursors moved. In
    /// `venue_upstream`, `upstream_seq` is the upstream relay's seq, 0 for a
    /// snapshot that was not sent (compaction counts in each relay's own
    /// seqs), -1 for an envelope the upstream relay refused.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        st: &VenueState,
        sent_through: u64,
        not_sent: &[u64],
        roster: Option<&[u8]>,
        members: &[MemberKey],
        acked: &[Ack],
        refused: &[Refused],
        pulled: &[Pulled],
        cursor: u64,
        now: i64,
    ) -> Result<Applied, StoreError> {
        let mut out = Applied::default();
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin taking an upstream answer"))?;
        let team = st.team;
        let mut roster_version = st.roster_version;
        if let Some(bytes) = roster {
            // Checked as a central relay checks an upload: the lead's
            // signature for this team; an unreadable one is ignored.
            let checked = SignedRoster::from_bytes(bytes)
                .ok()
                .and_then(|s| s.verify(&st.lead_sign_pk, &team).ok());
            if let Some(r) = checked {
                if r.version > roster_version {
                    // Not over a newer one the lead uploaded here.
                    tx.execute(
                        "UPDATE teams SET roster = ?1, roster_version = ?2, key_epoch = max(key_epoch, ?3)
                         WHERE id = ?4 AND roster_version < ?2",
                        params![bytes, i(r.version), r.epoch, team.0],
                    )
                    .map_err(err("mirror the roster"))?;
                    for (epoch, check) in &r.key_checks {
                        tx.execute(
                            "INSERT INTO key_checks (team_id, epoch, key_check) VALUES (?1, ?2, ?3)
                             ON CONFLICT (team_id, epoch) DO UPDATE SET key_check = excluded.key_check",
                            params![team.0, epoch, check.to_ascii_lowercase()],
                        )
                        .map_err(err("mirror the key checks"))?;
                    }
                    roster_version = r.version;
                    out.roster = true;
                }
            }
        }
        let mut members_since = st.members_since;
        for m in members {
            let role = m.role.as_str();
            tx.execute(
                "INSERT INTO devices (id, team_id, role, name_sealed, token_hash, enrolled_at, sign_pk, kx_pk, key_epoch, join_proof, member_seq, revoked, revoked_at, cutoff_seq)
                 VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, CASE WHEN ?11 THEN ?5 END,
                         CASE WHEN ?11 THEN (SELECT coalesce(max(seq), 0) FROM envelopes WHERE team_id = ?2) END)
                 ON CONFLICT (id) DO UPDATE SET role = excluded.role, member_seq = excluded.member_seq,
                     sign_pk = excluded.sign_pk, kx_pk = excluded.kx_pk, key_epoch = excluded.key_epoch,
                     join_proof = excluded.join_proof,
                     revoked_at = CASE WHEN excluded.revoked AND NOT devices.revoked THEN excluded.revoked_at ELSE devices.revoked_at END,
                     cutoff_seq = CASE WHEN excluded.revoked AND NOT devices.revoked THEN excluded.cutoff_seq ELSE devices.cutoff_seq END,
                     revoked = max(devices.revoked, excluded.revoked)
                 WHERE devices.team_id = excluded.team_id",
                params![
                    m.device,
                    team.0,
                    role,
                    // Never a token's hash: nobody authenticates with a
                    // bearer token at a venue relay.
                    format!("venue-mirror:{}", hex::encode(m.device)),
                    now,
                    m.public.sign,
                    m.public.kx,
                    m.epoch,
                    m.proof,
                    i(m.seq),
                    m.revoked,
                ],
            )
            .map_err(err("mirror a member"))?;
            members_since = members_since.max(m.seq);
            out.members += 1;
        }
        tx.execute(
            "UPDATE teams SET member_seq = max(member_seq, ?1) WHERE id = ?2",
            params![i(members_since), team.0],
        )
        .map_err(err("mirror the member seq"))?;
        {
            let mut local = tx
                .prepare_cached("SELECT seq FROM envelopes WHERE team_id = ?1 AND content_id = ?2")
                .map_err(err("find a forwarded envelope"))?;
            let mut mark = tx
                .prepare_cached(
                    "INSERT INTO venue_upstream (seq, upstream_seq, at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (seq) DO UPDATE SET upstream_seq = max(upstream_seq, excluded.upstream_seq)",
                )
                .map_err(err("mark a forwarded envelope"))?;
            for a in acked {
                let seq: Option<i64> = local
                    .query_row(params![team.0, a.id.0], |r| r.get(0))
                    .optional()
                    .map_err(err("find a forwarded envelope"))?;
                if let Some(seq) = seq {
                    mark.execute(params![seq, i(a.seq), now])
                        .map_err(err("mark a forwarded envelope"))?;
                    out.acked += 1;
                }
            }
            for r in refused {
                let seq: Option<i64> = local
                    .query_row(params![team.0, r.id.0], |r| r.get(0))
                    .optional()
                    .map_err(err("find a forwarded envelope"))?;
                if let Some(seq) = seq {
                    // -1: answered, refused (not held upstream).
                    mark.execute(params![seq, -1, now])
                        .map_err(err("mark a forwarded envelope"))?;
                    out.refused += 1;
                }
            }
            for seq in not_sent {
                mark.execute(params![i(*seq), 0, now])
                    .map_err(err("mark a forwarded envelope"))?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO envelopes (team_id, doc, kind, content_id, author_device, epoch, covers, nonce, ciphertext, size, created_at, sig)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (team_id, content_id) DO NOTHING
                     RETURNING seq",
                )
                .map_err(err("store a pulled envelope"))?;
            let mut author_known = tx
                .prepare_cached("SELECT 1 FROM devices WHERE id = ?1 AND team_id = ?2")
                .map_err(err("check a pulled envelope's author"))?;
            for p in pulled {
                let e = &p.envelope;
                // An author the upstream relay lists no keys for (enrolled
                // before it kept keys) wrote nothing any device accepts.
                if !author_known
                    .exists(params![e.author, team.0])
                    .map_err(err("check a pulled envelope's author"))?
                {
                    continue;
                }
                // Stored as the upstream relay served it, never compacting
                // here: its `covers` counts in the upstream relay's seqs.
                let new: Option<i64> = insert
                    .query_row(
                        params![
                            team.0,
                            e.doc,
                            kind_code(e.kind),
                            e.id.0,
                            e.author,
                            e.epoch,
                            i(e.covers),
                            e.nonce,
                            e.ciphertext,
                            e.ciphertext.len() as i64,
                            now,
                            e.sig,
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err("store a pulled envelope"))?;
                let seq = match new {
                    Some(seq) => {
                        out.pulled_new += 1;
                        seq
                    }
                    None => {
                        out.pulled_known += 1;
                        local
                            .query_row(params![team.0, e.id.0], |r| r.get(0))
                            .map_err(err("find a pulled envelope"))?
                    }
                };
                mark.execute(params![seq, i(p.seq), now])
                    .map_err(err("mark a pulled envelope"))?;
            }
        }
        tx.execute(
            "UPDATE venue SET upstream_cursor = max(upstream_cursor, ?1), members_since = ?2,
                 roster_version = ?3, forwarded_seq = max(forwarded_seq, ?4) WHERE id = 1",
            params![
                i(cursor),
                i(members_since),
                i(roster_version),
                i(sent_through)
            ],
        )
        .map_err(err("move the venue cursors"))?;
        tx.commit().map_err(err("commit an upstream answer"))?;
        Ok(out)
    }

    /// The roster the lead uploaded here, if newer than what the upstream
    /// relay is known to hold: it goes up with the next forward.
    pub fn roster_to_forward(&self, st: &VenueState) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let row: Option<(Option<Vec<u8>>, i64)> = self
            .conn()
            .query_row(
                "SELECT roster, roster_version FROM teams WHERE id = ?1",
                [st.team.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err("read the roster"))?;
        Ok(match row {
            Some((Some(bytes), v)) if u(v) > st.roster_version => Some((u(v), bytes)),
            _ => None,
        })
    }

    /// The upstream relay holds (or refused as not newer) roster `version`.
    /// Takes the central relay's log id from its answer: stored the first
    /// time; when it changed (the central relay was restored from a backup
    /// and hands out its seqs again), the upstream cursor and member seq go
    /// back to 0 and the whole local log is forwarded again (the central
    /// relay deduplicates what it still holds), in one transaction with the
    /// new id. Returns whether it changed.
    pub fn take_upstream_log_id(&self, id: crate::storage::LogId) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err("begin taking the upstream log id"))?;
        let known: Option<Vec<u8>> = tx
            .query_row("SELECT upstream_log_id FROM venue WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(err("read the upstream log id"))?;
        let changed = match known {
            Some(k) if k == id.0 => return Ok(false),
            None => false,
            Some(_) => {
                tx.execute(
                    "UPDATE venue SET upstream_cursor = 0, members_since = 0, forwarded_seq = 0
                     WHERE id = 1",
                    [],
                )
                .map_err(err("start the upstream log again"))?;
                tx.execute("DELETE FROM venue_upstream", [])
                    .map_err(err("forget the upstream answers"))?;
                true
            }
        };
        tx.execute(
            "UPDATE venue SET upstream_log_id = ?1 WHERE id = 1",
            [&id.0[..]],
        )
        .map_err(err("store the upstream log id"))?;
        tx.commit().map_err(err("commit the upstream log id"))?;
        Ok(changed)
    }

    pub fn roster_forwarded(&self, version: u64) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE venue SET roster_version = max(roster_version, ?1) WHERE id = 1",
                [i(version)],
            )
            .map_err(err("record the forwarded roster"))?;
        Ok(())
    }

    /// Of `ids`, the envelopes of this venue relay that the upstream relay
    /// has acknowledged (or that need not go upstream: a snapshot is
    /// compaction at this relay only).
    pub fn upstream_acked(
        &self,
        team: TeamId,
        ids: &[ContentId],
    ) -> Result<Vec<ContentId>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT 1 FROM envelopes e JOIN venue_upstream v ON v.seq = e.seq
                 WHERE e.team_id = ?1 AND e.content_id = ?2 AND v.upstream_seq >= 0",
            )
            .map_err(err("read upstream acknowledgements"))?;
        let mut out = Vec::new();
        for id in ids {
            let found = stmt
                .exists(params![team.0, id.0])
                .map_err(err("read upstream acknowledgements"))?;
            if found {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// What the operator (the lead running this venue relay) reads of it:
    /// `heartbridge-relay venue status`. `None` before `venue join`.
    pub fn status(&self) -> Result<Option<VenueStatus>, StoreError> {
        let Some(st) = self.state()? else {
            return Ok(None);
        };
        let count = |sql: &str| -> Result<u64, StoreError> {
            let n: i64 = self
                .conn()
                .query_row(sql, [], |r| r.get(0))
                .map_err(err("count the venue's forwarded envelopes"))?;
            Ok(u(n))
        };
        Ok(Some(VenueStatus {
            team: st.team.to_hex(),
            upstream: st.upstream.clone(),
            enrolled: st.token.is_some(),
            backlog: self.backlog(st.team)?,
            at_upstream: count("SELECT count(*) FROM venue_upstream WHERE upstream_seq > 0")?,
            refused_upstream: count("SELECT count(*) FROM venue_upstream WHERE upstream_seq = -1")?,
        }))
    }

    /// Envelopes stored here and not yet answered upstream.
    pub fn backlog(&self, team: TeamId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM envelopes e WHERE e.team_id = ?1
                   AND NOT EXISTS (SELECT 1 FROM venue_upstream v WHERE v.seq = e.seq)",
                [team.0],
                |r| r.get(0),
            )
            .map_err(err("count the forwarding backlog"))?;
        Ok(u(n))
    }
}
