//! The sync engine: push the outbox, pull since the cursor, through a relay
//! that only ever sees sealed envelopes.
//!
//! The engine does no I/O of its own: it is given a [`Transport`] that
//! carries one encoded request to the relay and brings back the response.
//! One round is a pure plan (which envelopes to push, sealed) and an apply
//! (acks, pulled envelopes, cursor) committed in one SQLite transaction, so
//! a sync killed at any point resumes without loss: an outbox row leaves
//! only in the transaction that records its acknowledgement, and the cursor
//! moves only with the envelopes it covers applied.

use std::collections::HashMap;

use heartbridge_proto::{
    decode, encode, ContentId, DocKindTag, Envelope, EnvelopeKind, Role, Secret, SyncRequest,
    SyncResponse, TeamId, TeamKey,
};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{now_ms, DocId, DocKind};
use crate::store::{apply_remote_in, load_doc_in, Store};

/// This device's membership of a team. `Debug` hides the token and key.
#[derive(Clone)]
pub struct Team {
    pub relay_url: String,
    pub team_id: TeamId,
    pub device_id: String,
    pub token: Secret,
    pub key: TeamKey,
    pub role: Role,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("relay_url", &self.relay_url)
            .field("team_id", &self.team_id)
            .field("device_id", &self.device_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What a transport failure was.
#[derive(Debug, Clone)]
pub enum TransportError {
    /// The relay could not be reached, or the connection dropped.
    Network(String),
    /// The relay answered with an error.
    Relay {
        status: u16,
        kind: String,
        message: String,
    },
}

/// Carries one `/v1/sync` request to the relay.
pub trait Transport {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError>;
}

/// Knobs of one sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Cap on the sealed bytes pushed per request.
    pub max_push_bytes: usize,
    /// Cap on pulled bytes per response (0: the relay's default).
    pub page_bytes: u32,
    /// Push a superseding snapshot of every document.
    pub snapshot_all: bool,
    /// Push a snapshot of a document once this many envelopes of it have
    /// gone through the relay since its last one.
    pub snapshot_after: i64,
    /// Safety stop.
    pub max_requests: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_push_bytes: 512 * 1024,
            page_bytes: 0,
            snapshot_all: false,
            snapshot_after: 64,
            max_requests: 10_000,
        }
    }
}

/// Where a sync stands, for a progress indicator.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    pub phase: &'static str,
    pub requests: usize,
    pub pushed: usize,
    pub pulled: usize,
    pub pending: usize,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncReport {
    /// Envelopes pushed and acknowledged.
    pub pushed: usize,
    /// Outbox changes those envelopes carried.
    pub changes_delivered: usize,
    /// Envelopes pulled.
    pub pulled: usize,
    /// Pulled envelopes that changed a document.
    pub applied: usize,
    /// Pulled envelopes refused (did not open or apply).
    pub refused: usize,
    pub cursor: u64,
    pub requests: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Local changes still waiting (0 after a complete sync).
    pub pending: usize,
    pub finished_at: String,
}

/// Sync state as the home screen shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncStatus {
    pub cursor: u64,
    pub last_synced_at: Option<String>,
    pub pending: usize,
    pub last_error_kind: Option<String>,
    pub last_error: Option<String>,
    pub refused: usize,
}

fn tag(kind: DocKind) -> DocKindTag {
    match kind {
        DocKind::Case => DocKindTag::Case,
        DocKind::Handbook => DocKindTag::Handbook,
        DocKind::ShiftReport => DocKindTag::ShiftReport,
    }
}

fn untag(tag: DocKindTag) -> DocKind {
    match tag {
        DocKindTag::Case => DocKind::Case,
        DocKindTag::Handbook => DocKind::Handbook,
        DocKindTag::ShiftReport => DocKind::ShiftReport,
    }
}

fn doc_bytes(id: &DocId) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(v) = hex::decode(id.as_str()) {
        out.copy_from_slice(&v);
    }
    out
}

/// What one request pushes, and what each envelope stands for locally.
struct Plan {
    request: SyncRequest,
    outbox_rows: HashMap<ContentId, Vec<i64>>,
    changes: HashMap<ContentId, usize>,
    snapshots: HashMap<ContentId, DocId>,
}

impl Store {
    /// The team this device belongs to, if any.
    pub fn team(&self) -> Result<Option<Team>> {
        let row = self
            .conn()
            .query_row(
                "SELECT relay_url, team_id, device_id, device_token, team_key, role FROM team WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((relay_url, team_id, device_id, token, key, role)) = row else {
            return Ok(None);
        };
        let bad = || Error::DatabaseCorrupt {
            path: self.path().to_owned(),
            detail: "team record unreadable".into(),
        };
        let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
        Ok(Some(Team {
            relay_url,
            team_id: TeamId::from_hex(&team_id).ok_or_else(bad)?,
            device_id,
            token: Secret::from_string(token),
            key: TeamKey::from_bytes(key),
            role: role.parse().map_err(|_| bad())?,
        }))
    }

    /// Records this device's membership (after claim or join).
    pub fn set_team(&mut self, team: &Team) -> Result<()> {
        if self.team()?.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.conn().execute(
            "INSERT INTO team (id, relay_url, team_id, device_id, device_token, team_key, role, joined_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                team.relay_url,
                team.team_id.to_hex(),
                team.device_id,
                team.token.expose(),
                &team.key.expose()[..],
                team.role.as_str(),
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Sync state for display.
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let (cursor, last, kind, err): (i64, Option<i64>, Option<String>, Option<String>) = self.conn().query_row(
            "SELECT cursor, last_synced_at, last_error_kind, last_error FROM sync_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let refused: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM refused", [], |r| r.get(0))?;
        Ok(SyncStatus {
            cursor: cursor as u64,
            last_synced_at: last.map(crate::model::format_ms),
            pending: self.outbox_len()?,
            last_error_kind: kind,
            last_error: err,
            refused: refused as usize,
        })
    }

    /// Envelopes refused so far: (seq, document, content id, reason).
    pub fn refused(&self) -> Result<Vec<(u64, String, String, String)>> {
        let mut st = self
            .conn()
            .prepare("SELECT seq, doc_id, content_id, reason FROM refused ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn record_sync_error(&self, e: &Error) {
        let _ = self.conn().execute(
            "UPDATE sync_state SET last_error_kind = ?1, last_error = ?2 WHERE id = 1",
            params![e.kind(), e.to_string()],
        );
    }

    fn plan(
        &self,
        team: &Team,
        opts: &SyncOptions,
        snapshot_done: &mut Vec<DocId>,
    ) -> Result<Plan> {
        let cursor: i64 =
            self.conn()
                .query_row("SELECT cursor FROM sync_state WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
        let mut plan = Plan {
            request: SyncRequest {
                v: heartbridge_proto::PROTOCOL_VERSION,
                cursor: cursor as u64,
                push: Vec::new(),
                max_bytes: opts.page_bytes,
            },
            outbox_rows: HashMap::new(),
            changes: HashMap::new(),
            snapshots: HashMap::new(),
        };
        // Outbox rows, grouped by document in order, one envelope each.
        let mut groups: Vec<(DocId, DocKind, Vec<i64>, Vec<u8>)> = Vec::new();
        let mut budget = 0usize;
        for item in self.outbox()? {
            if budget >= opts.max_push_bytes && !groups.is_empty() {
                break;
            }
            budget += item.bytes.len();
            match groups.iter_mut().find(|g| g.0 == item.doc_id) {
                Some(g) => {
                    g.2.push(item.seq);
                    g.3.extend_from_slice(&item.bytes);
                }
                None => groups.push((item.doc_id, item.kind, vec![item.seq], item.bytes)),
            }
        }
        for (doc, kind, seqs, bytes) in groups {
            let env = Envelope::seal(
                &team.key,
                &team.team_id,
                doc_bytes(&doc),
                EnvelopeKind::Change,
                tag(kind),
                &bytes,
            )
            .map_err(|e| Error::Protocol {
                detail: e.to_string(),
            })?;
            plan.changes.insert(env.id, seqs.len());
            plan.outbox_rows.entry(env.id).or_default().extend(seqs);
            plan.request.push.push(env);
        }
        // Superseding snapshots, for documents with nothing in the outbox.
        if budget < opts.max_push_bytes {
            let mut st = self.conn().prepare(
                "SELECT d.id, d.kind FROM documents d LEFT JOIN doc_sync s ON s.doc_id = d.id
                 WHERE (?1 OR coalesce(s.since_snapshot, 0) >= ?2)
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.doc_id = d.id)
                 ORDER BY d.id",
            )?;
            let candidates: Vec<(String, String)> = st
                .query_map(params![opts.snapshot_all, opts.snapshot_after], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<std::result::Result<_, _>>()?;
            for (id, kind) in candidates {
                let id = DocId::parse(&id, "document")?;
                if budget >= opts.max_push_bytes || snapshot_done.contains(&id) {
                    continue;
                }
                let kind: DocKind = kind.parse()?;
                let Some((_, mut doc)) = load_doc_in(self.conn(), &id, self.actor())? else {
                    continue;
                };
                let bytes = doc.save();
                budget += bytes.len();
                let mut env = Envelope::seal(
                    &team.key,
                    &team.team_id,
                    doc_bytes(&id),
                    EnvelopeKind::Snapshot,
                    tag(kind),
                    &bytes,
                )
                .map_err(|e| Error::Protocol {
                    detail: e.to_string(),
                })?;
                env.covers = plan.request.cursor;
                snapshot_done.push(id.clone());
                plan.snapshots.insert(env.id, id);
                plan.request.push.push(env);
            }
        }
        Ok(plan)
    }

    fn apply(
        &mut self,
        team: &Team,
        plan: &Plan,
        resp: &SyncResponse,
        report: &mut SyncReport,
    ) -> Result<()> {
        let actor = self.actor().clone();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for ack in &resp.acked {
            if let Some(rows) = plan.outbox_rows.get(&ack.id) {
                for seq in rows {
                    tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                }
                report.pushed += 1;
                report.changes_delivered += plan.changes.get(&ack.id).copied().unwrap_or(0);
            }
            if let Some(doc) = plan.snapshots.get(&ack.id) {
                tx.execute("DELETE FROM doc_sync WHERE doc_id = ?1", [doc.as_str()])?;
                report.pushed += 1;
            }
        }
        for env in plan
            .request
            .push
            .iter()
            .filter(|e| e.kind == EnvelopeKind::Change)
        {
            if resp.acked.iter().any(|a| a.id == env.id) {
                bump(&tx, &hex::encode(env.doc))?;
            }
        }
        for pulled in &resp.pull {
            report.pulled += 1;
            let e = &pulled.envelope;
            let doc_hex = hex::encode(e.doc);
            let outcome = e
                .open(&team.key, &team.team_id)
                .map_err(|err| ("unopenable", err.to_string()))
                .and_then(|opened| {
                    let id = DocId::parse(&doc_hex, "document")
                        .map_err(|_| ("damaged", "bad document id".to_owned()))?;
                    // A savepoint per envelope: a bad one rolls back alone.
                    tx.execute_batch("SAVEPOINT envelope")
                        .map_err(|err| ("database", err.to_string()))?;
                    match apply_remote_in(&tx, &actor, &id, untag(opened.doc_kind), &opened.bytes) {
                        Ok(changed) => {
                            tx.execute_batch("RELEASE envelope")
                                .map_err(|err| ("database", err.to_string()))?;
                            Ok(changed)
                        }
                        Err(err) => {
                            let _ = tx.execute_batch("ROLLBACK TO envelope; RELEASE envelope");
                            Err(("unappliable", err.kind().to_owned()))
                        }
                    }
                });
            match outcome {
                Ok(changed) => {
                    report.applied += usize::from(changed);
                    bump(&tx, &doc_hex)?;
                }
                Err((reason, detail)) => {
                    if reason == "database" {
                        return Err(Error::Protocol { detail });
                    }
                    report.refused += 1;
                    tx.execute(
                        "INSERT INTO refused (seq, doc_id, content_id, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![pulled.seq as i64, doc_hex, e.id.to_hex(), format!("{reason}: {detail}"), now_ms()],
                    )?;
                }
            }
        }
        let cursor = resp.cursor.max(plan.request.cursor);
        tx.execute(
            "UPDATE sync_state SET cursor = ?1, last_synced_at = ?2, last_error_kind = NULL, last_error = NULL WHERE id = 1",
            params![cursor as i64, now_ms()],
        )?;
        tx.commit()?;
        report.cursor = cursor;
        Ok(())
    }

    /// Runs a whole sync: rounds of push and pull until the relay has
    /// nothing more and the outbox is empty. Reports progress after every
    /// round. On failure the error is recorded for the status screen and
    /// everything already acknowledged or applied stays done.
    pub fn sync(
        &mut self,
        transport: &mut dyn Transport,
        opts: &SyncOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<SyncReport> {
        let team = self.team()?.ok_or(Error::NotEnrolled)?;
        let result = self.sync_rounds(&team, transport, opts, progress);
        if let Err(e) = &result {
            self.record_sync_error(e);
        }
        result
    }

    fn sync_rounds(
        &mut self,
        team: &Team,
        transport: &mut dyn Transport,
        opts: &SyncOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut snapshot_done = Vec::new();
        loop {
            let plan = self.plan(team, opts, &mut snapshot_done)?;
            let body = encode(&plan.request);
            report.bytes_sent += body.len();
            report.requests += 1;
            let answer = transport.sync(team, body).map_err(|e| match e {
                TransportError::Network(detail) => Error::Network { detail },
                TransportError::Relay { kind, message, .. } => Error::Relay { kind, message },
            })?;
            report.bytes_received += answer.len();
            let resp: SyncResponse =
                decode("sync response", &answer).map_err(|e| Error::Protocol {
                    detail: e.to_string(),
                })?;
            let acked_all = plan
                .request
                .push
                .iter()
                .all(|e| resp.acked.iter().any(|a| a.id == e.id));
            self.apply(team, &plan, &resp, &mut report)?;
            let pending = self.outbox_len()?;
            progress(&Progress {
                phase: if pending > 0 {
                    "push"
                } else if resp.more {
                    "pull"
                } else {
                    "done"
                },
                requests: report.requests,
                pushed: report.pushed,
                pulled: report.pulled,
                pending,
            });
            let more_to_push = pending > 0 && acked_all && !plan.request.push.is_empty();
            if !(resp.more || more_to_push) || report.requests >= opts.max_requests {
                report.pending = pending;
                report.finished_at = crate::model::format_ms(now_ms());
                return Ok(report);
            }
        }
    }
}

fn bump(conn: &rusqlite::Connection, doc_hex: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO doc_sync (doc_id, since_snapshot) VALUES (?1, 1)
         ON CONFLICT (doc_id) DO UPDATE SET since_snapshot = since_snapshot + 1",
        [doc_hex],
    )?;
    Ok(())
}
