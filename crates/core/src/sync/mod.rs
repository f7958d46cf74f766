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

pub(crate) mod inbound;
pub(crate) mod outbound;
mod restored;
mod venue;

use heartbridge_proto::{DocKindTag, SyncRequest, SyncResponse};
use rusqlite::{params, TransactionBehavior};
use serde::Serialize;

use crate::enroll::Team;
use crate::error::{Error, Result};
use crate::model::{now_ms, DocId, DocKind};
use crate::store::Store;

pub use outbound::{MAX_PUSH_ENVELOPES, PART_BYTES};

/// What a transport failure was.
#[derive(Clone)]
pub enum TransportError {
    /// The relay could not be reached, or the connection dropped before
    /// any of a successful answer arrived.
    Network(String),
    /// The connection dropped in the middle of a successful answer;
    /// `received` is what arrived of its body. Whatever of it arrived whole
    /// is kept (see [`heartbridge_proto::decode_response_prefix`]).
    Cut { detail: String, received: Vec<u8> },
    /// The relay answered with an error.
    Relay {
        status: u16,
        kind: String,
        message: String,
    },
}

impl std::fmt::Debug for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Network(d) => f.debug_tuple("Network").field(d).finish(),
            TransportError::Cut { detail, received } => f
                .debug_struct("Cut")
                .field("detail", detail)
                .field("received_bytes", &received.len())
                .finish(),
            TransportError::Relay {
                status,
                kind,
                message,
            } => f
                .debug_struct("Relay")
                .field("status", status)
                .field("kind", kind)
                .field("message", message)
                .finish(),
        }
    }
}

/// Carries one `/v1/sync` request to the relay.
pub trait Transport {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError>;

    /// `GET /v1/roster`: the lead-signed roster the relay holds. A revoked
    /// device asks for it to learn whether the lead really revoked it.
    fn roster(&mut self, _team: &Team) -> std::result::Result<Vec<u8>, TransportError> {
        Err(TransportError::Network(
            "this transport cannot fetch the roster".into(),
        ))
    }

    /// Called by [`Store::sync`] before it talks to `relay` (the `Team` of
    /// the calls that follow carries its URL): a transport that speaks TLS
    /// learns the relay's certificate pin and whether plain HTTP is allowed.
    fn use_relay(&mut self, _relay: &crate::relays::RelayEntry) {}
}

/// Knobs of one sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Cap on the sealed bytes pushed per request (the learned link size
    /// may ask for less).
    pub max_push_bytes: usize,
    /// Cap on pulled bytes per response (0: no cap beyond the learned link
    /// size and the relay's own).
    pub page_bytes: u32,
    /// Push a superseding snapshot of every document.
    pub snapshot_all: bool,
    /// Push a snapshot of a document once this many envelopes of it have
    /// gone through the relay since its last one.
    pub snapshot_after: i64,
    /// Safety stop.
    pub max_requests: usize,
    /// Network failures in a row retried inside one sync (each with a
    /// smaller request) before it gives up with the error.
    pub retries: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            max_push_bytes: 512 * 1024,
            page_bytes: 0,
            snapshot_all: false,
            snapshot_after: 64,
            max_requests: 10_000,
            retries: 2,
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
    pub bytes_sent: usize,
    pub bytes_received: usize,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncReport {
    /// Batches (one document's changes, or a snapshot) delivered whole:
    /// every envelope of them acknowledged.
    pub pushed: usize,
    /// Envelopes acknowledged (a large batch travels as several parts).
    pub envelopes_pushed: usize,
    /// Outbox changes those envelopes carried.
    pub changes_delivered: usize,
    /// Payloads pulled whole (an envelope, or the last missing part of a
    /// large one).
    pub pulled: usize,
    /// Envelopes pulled, parts included.
    pub envelopes_pulled: usize,
    /// Pulled envelopes that changed a document.
    pub applied: usize,
    /// Pulled envelopes refused (did not open or parse).
    pub refused: usize,
    /// Pulled envelopes kept until their dependencies or other parts
    /// arrive.
    pub waiting: usize,
    /// Pulled envelopes held until their author or key epoch is known
    /// here; envelopes held earlier that were applied in this sync count
    /// in `applied`.
    pub held: usize,
    /// Pulled payloads of cases this device was not given (sealed under a
    /// case key it does not hold): kept, opened if a grant arrives.
    pub locked: usize,
    /// Network failures retried inside this sync.
    pub retried: usize,
    /// Envelopes a venue relay acknowledged (level 1): kept in the outbox
    /// until the central relay has them.
    pub venue_acked: usize,
    /// Envelopes a venue relay said the central relay now holds (level 2).
    pub central_confirmed: usize,
    /// Carried envelopes (other members', imported from a bundle) the
    /// central relay refused (author revoked or unknown, bad signature):
    /// dropped from this device's queue, since pushing them again gets the
    /// same answer, and kept as a record for the status screen
    /// ([`SyncStatus::carried_refused`]). A venue relay's refusal drops
    /// nothing (review F5). A count; which ones is not logged.
    pub carried_refused: usize,
    /// The relay answered with another log id than before: it was
    /// restored from a backup (or recovered to an earlier point), so this
    /// device pulled its log again from the start and queued every
    /// document it holds again (`sync/restored.rs`).
    pub relay_restored: bool,
    /// Documents queued again for that relay (snapshots, compacting
    /// nothing).
    pub documents_resent: usize,
    pub cursor: u64,
    pub requests: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Local changes still waiting (0 after a complete sync).
    pub pending: usize,
    pub finished_at: String,
}

/// How many pulled envelopes were refused for one reason.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RefusedCount {
    pub reason: String,
    pub count: usize,
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
    /// Refused envelopes by reason (`unopenable`, `damaged`, …).
    pub refused_by_reason: Vec<RefusedCount>,
    /// Pulled changes waiting for dependencies not held yet.
    pub waiting: usize,
    /// Pulled envelopes held until their author or key epoch is known here.
    pub held: usize,
    /// Pulled payloads sealed under a case key this device was not given.
    pub locked: usize,
    /// Sync stopped because the relay said this device was removed.
    pub stopped: bool,
    /// Request size learned for this device's link, in bytes.
    pub link_bytes: usize,
    /// Of the changes waiting, those a venue relay holds (level 1): the
    /// central relay has not confirmed them yet.
    pub at_venue: usize,
    /// Envelopes this device carried for others (imported from a bundle)
    /// that the central relay refused, so they were dropped: the user is
    /// told (review F5).
    pub carried_refused: usize,
}

fn tag(kind: DocKind) -> DocKindTag {
    match kind {
        DocKind::Case => DocKindTag::Case,
        DocKind::Handbook => DocKindTag::Handbook,
        DocKind::ShiftReport => DocKindTag::ShiftReport,
        DocKind::TeamSettings => DocKindTag::TeamSettings,
        DocKind::Grants => DocKindTag::Grants,
        DocKind::Facts => DocKindTag::Facts,
    }
}

fn untag(tag: DocKindTag) -> DocKind {
    match tag {
        DocKindTag::Case => DocKind::Case,
        DocKindTag::Handbook => DocKind::Handbook,
        DocKindTag::ShiftReport => DocKind::ShiftReport,
        DocKindTag::TeamSettings => DocKind::TeamSettings,
        DocKindTag::Grants => DocKind::Grants,
        DocKindTag::Facts => DocKind::Facts,
    }
}

pub(crate) fn doc_bytes(id: &DocId) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(v) = hex::decode(id.as_str()) {
        out.copy_from_slice(&v);
    }
    out
}

/// Request sizes the engine learns for a link, in bytes.
const LINK_INITIAL: usize = 64 * 1024;
const LINK_MIN: usize = 4 * 1024;
const LINK_MAX: usize = 1024 * 1024;

/// One sync, as a sans-IO state machine: [`SyncSession::next_request`]
/// gives the body to send (or `None` when the sync is complete), the
/// caller carries it to the relay however it likes (blocking, async, a
/// simulated network) and hands the answer — or the transport's failure —
/// to [`SyncSession::handle`]. Everything durable happens in those two
/// calls, each one SQLite transaction; nothing is held across the network
/// call, so the store may be used by others in between.
pub struct SyncSession {
    team: Team,
    opts: SyncOptions,
    report: SyncReport,
    in_flight: Option<InFlight>,
    link: usize,
    failures: usize,
    snapshots_made: Vec<DocId>,
    done: bool,
    /// The relay talked to answered as a venue relay (its acknowledgements
    /// are level 1).
    at_venue: bool,
    /// `carried` rows the venue relay refused in this sync: kept (its
    /// mirror may be behind), not pushed to it again before the next sync.
    skip_carried: Vec<i64>,
}

struct InFlight {
    cursor: u64,
    /// The roster version uploaded with this request, if any.
    roster: Option<u64>,
    /// Bytes of the request body.
    sent: usize,
    planned: Vec<outbound::Planned>,
}

impl std::fmt::Debug for SyncSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSession")
            .field("team", &self.team)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl SyncSession {
    /// The team this session syncs with.
    pub fn team(&self) -> &Team {
        &self.team
    }

    /// What the sync has done so far.
    pub fn report(&self) -> &SyncReport {
        &self.report
    }

    /// Where the sync stands, for a progress indicator.
    pub fn progress(&self, store: &Store) -> Result<Progress> {
        let pending = store.outbox_len()?;
        Ok(Progress {
            phase: if self.done {
                "done"
            } else if pending > 0 {
                "push"
            } else {
                "pull"
            },
            requests: self.report.requests,
            pushed: self.report.pushed,
            pulled: self.report.pulled,
            pending,
            bytes_sent: self.report.bytes_sent,
            bytes_received: self.report.bytes_received,
        })
    }

    /// A total deadline for the request in flight that fits the learned
    /// link: generous for a slow link, never unbounded.
    pub fn deadline(&self) -> std::time::Duration {
        // 30 s for round trips and setup, plus the request at 1 KB/s.
        std::time::Duration::from_secs(30 + (self.link as u64 * 2) / 1024)
    }

    /// Plans the next request: freezes the outbox into batches, seals the
    /// parts to push within the learned link size. `None` once the sync is
    /// complete.
    pub fn next_request(&mut self, store: &mut Store) -> Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        if self.report.requests >= self.opts.max_requests {
            self.finish(store)?;
            return Ok(None);
        }
        let actor = store.actor().clone();
        let profile = store.profile().clone();
        let team_url = store.team()?.map(|t| t.relay_url);
        let tx = store
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The cursor below is the active relay's: this session's only if
        // nobody selected or removed a relay since it began (review F8).
        crate::relays::check_session_relay(&tx, team_url.as_deref(), &self.team.relay_url)?;
        let cursor: i64 = tx.query_row("SELECT cursor FROM sync_state WHERE id = 1", [], |r| {
            r.get(0)
        })?;
        let cursor = cursor.max(0) as u64;
        {
            // Who reads which case: keys for new cases, grants to new
            // readers, rotation away from readers who left; facts sealed
            // to the oversight key. All of it goes out in this push.
            crate::access::ensure_oversight(&tx, &self.team, &profile)?;
            let trust = crate::team::Trust::load(&tx, &self.team)?;
            crate::access::prepare(&tx, &self.team, &trust, &profile)?;
            crate::access::queue_facts(&tx, &self.team, &actor)?;
        }
        outbound::freeze_outbox(&tx, &self.team)?;
        let budget = self.link.min(self.opts.max_push_bytes.max(1));
        // Superseding snapshots, for documents whose history is long. Never
        // for a venue relay (review F2): `covers` would count in the
        // venue's seqs, and the snapshot, pushed to the central relay
        // later, would supersede changes it does not hold.
        let venue_entry = crate::relays::is_venue_entry(&tx, &self.team.relay_url)?;
        let candidates: Vec<String> = if venue_entry {
            Vec::new()
        } else {
            let mut st = tx.prepare(
                "SELECT d.id FROM documents d LEFT JOIN doc_sync s ON s.doc_id = d.id
                 WHERE (?1 OR coalesce(s.since_snapshot, 0) >= ?2) ORDER BY d.id",
            )?;
            let rows = st.query_map(
                params![self.opts.snapshot_all, self.opts.snapshot_after],
                |r| r.get(0),
            )?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        for id in candidates {
            let id = DocId::parse(&id, "document")?;
            if self.snapshots_made.contains(&id) {
                continue;
            }
            self.snapshots_made.push(id.clone());
            outbound::freeze_snapshot(&tx, &self.team, &actor, &id, cursor)?;
        }
        let planned = outbound::plan_push(&tx, &self.team, budget, &self.skip_carried)?;
        let roster = crate::team::roster_to_push(&tx)?;
        let roster_version = crate::team::roster_version(&tx)?;
        let members_since: i64 =
            tx.query_row("SELECT members_seq FROM sync_state WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        // Parts this relay (a venue relay) holds: has the central relay
        // got them yet?
        let central_wait = venue::waiting_ids(&tx, &self.team.relay_url)?;
        tx.commit()?;
        let page = match self.opts.page_bytes {
            0 => self.link,
            asked => (asked as usize).min(self.link),
        };
        let request = SyncRequest {
            v: heartbridge_proto::PROTOCOL_VERSION,
            cursor,
            push: planned.iter().map(|p| p.envelope.clone()).collect(),
            max_bytes: u32::try_from(page).unwrap_or(u32::MAX),
            members_since: members_since.max(0) as u64,
            roster_version: if roster.is_some() { 0 } else { roster_version },
            roster: roster.as_ref().map(|(_, bytes)| bytes.clone()),
        };
        let body = heartbridge_proto::venue_wire::encode_request(
            &request,
            &heartbridge_proto::venue_wire::RequestExt { central_wait },
        );
        self.report.requests += 1;
        self.report.bytes_sent += body.len();
        let sent = body.len();
        self.in_flight = Some(InFlight {
            cursor,
            roster: roster.map(|(v, _)| v),
            sent,
            planned,
        });
        Ok(Some(body))
    }

    /// Takes the relay's answer to the request in flight (or the failure
    /// to get one). A network failure shrinks the link size and, within
    /// [`SyncOptions::retries`], lets the sync go on; any other error ends
    /// it. Nothing is moved past what was durably applied.
    pub fn handle(
        &mut self,
        store: &mut Store,
        answer: std::result::Result<Vec<u8>, TransportError>,
    ) -> Result<()> {
        let Some(flight) = self.in_flight.take() else {
            return Err(Error::Protocol {
                detail: "an answer came with no request in flight".into(),
            });
        };
        let answer = match answer {
            Ok(a) => a,
            Err(TransportError::Cut { detail, received }) => {
                self.report.bytes_received += received.len();
                let got = heartbridge_proto::decode_response_prefix(&received);
                let partial = SyncResponse {
                    v: heartbridge_proto::PROTOCOL_VERSION,
                    roster: got.roster,
                    members: got.members,
                    cursor: got.pulled.last().map_or(flight.cursor, |p| p.seq),
                    acked: got.acked,
                    pull: got.pulled,
                    more: true,
                    refused: vec![],
                };
                check_response(&flight, &partial)?;
                let progressed = !partial.acked.is_empty() || !partial.pull.is_empty();
                // A cut answer proves nothing about the roster upload: it
                // is sent again.
                let flight = InFlight {
                    roster: None,
                    ..flight
                };
                if progressed {
                    // Every whole envelope that arrived is kept; the cut
                    // cost only the one it fell in. (A cut answer carries
                    // no receipts: a venue relay's acks stay level 1.)
                    // Level 1 or 2 is the relay entry's kind, never the answer's
                    // shape (review F1).
                    let venue = self.at_venue.then(Default::default);
                    self.apply(store, &flight, &partial, venue.as_ref())?;
                    self.failures = 0;
                    self.report.retried += 1;
                    return Ok(());
                }
                return self.network_failure(store, detail);
            }
            Err(TransportError::Network(detail)) => {
                return self.network_failure(store, detail);
            }
            Err(TransportError::Relay { status: 413, .. }) if self.link > LINK_MIN => {
                // The relay's body limit is smaller than our request: go
                // below what was sent and try again.
                self.link = (self.link.min(flight.sent) / 2).max(LINK_MIN);
                store.set_link_bytes(self.link)?;
                self.report.retried += 1;
                return Ok(());
            }
            // Only the central relay's word stops sync: a venue relay saying
            // so is a refusal of that relay alone (review F7).
            Err(TransportError::Relay { kind, .. })
                if kind == "device_revoked" && !self.at_venue =>
            {
                // The relay is not trusted to say so: stop syncing and lock,
                // but erase nothing until the lead's signed record says so.
                store.stop_sync()?;
                return Err(Error::DeviceRevoked);
            }
            Err(TransportError::Relay { kind, message, .. }) => {
                return Err(Error::Relay { kind, message })
            }
        };
        self.report.bytes_received += answer.len();
        let (resp, ext) = heartbridge_proto::venue_wire::decode_response(&answer).map_err(|e| {
            Error::Protocol {
                detail: e.to_string(),
            }
        })?;
        // A venue entry's answer must carry its receipts: without them its
        // acks would read as the central relay's (review F1).
        if self.at_venue && ext.venue.is_none() {
            return Err(Error::Protocol {
                detail: "the venue relay's answer carries no receipts; nothing of it was kept"
                    .into(),
            });
        }
        let venue_receipts = ext.venue.or_else(|| self.at_venue.then(Default::default));
        // Before anything else of the answer: from a relay whose log went
        // back, its cursor may be behind ours, and nothing of it is judged
        // by the old log. The answer itself is not kept: the outbox stays
        // as it was and goes again, with the snapshots, from cursor 0.
        if let Some(id) = ext.log_id {
            if self.take_log_id(store, id)? {
                self.failures = 0;
                return Ok(());
            }
        }
        check_response(&flight, &resp)?;
        let progressed = !resp.acked.is_empty()
            || !resp.pull.is_empty()
            || !resp.members.is_empty()
            || resp.roster.is_some()
            || resp.cursor > flight.cursor;
        if resp.more && !progressed {
            return Err(Error::Protocol {
                detail: "the relay says more is waiting but sent nothing new".into(),
            });
        }
        self.failures = 0;
        self.link = (self.link + self.link / 2).min(LINK_MAX);
        self.apply(store, &flight, &resp, venue_receipts.as_ref())?;
        // Push on while every envelope of this round was taken; a relay that
        // takes none (or some) of a push ends the sync rather than looping.
        let all_taken = flight.planned.iter().all(|p| {
            resp.acked.iter().any(|a| a.id == p.envelope.id)
                || resp.refused.iter().any(|r| r.id == p.envelope.id)
        });
        // Rows queued by this very answer (grants to a member it announced)
        // go out in this sync too.
        let pending_push = (flight.planned.is_empty() || all_taken)
            && has_unsent(store, &self.team.relay_url, &self.skip_carried)?;
        if !resp.more && !pending_push {
            self.finish(store)?;
        }
        Ok(())
    }

    /// Takes the log id of the relay's answer: stored the first time; on a
    /// change, the device starts over with the relay in one transaction
    /// (`restored.rs`). Returns whether it did (the answer is then not
    /// used).
    fn take_log_id(
        &mut self,
        store: &mut Store,
        id: heartbridge_proto::venue_wire::LogId,
    ) -> Result<bool> {
        let actor = store.actor().clone();
        let team_url = store.team()?.map(|t| t.relay_url);
        let tx = store
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::relays::check_session_relay(&tx, team_url.as_deref(), &self.team.relay_url)?;
        if self.report.relay_restored {
            // Once in a sync is a restore; a relay whose id keeps changing
            // would make every device send everything, round after round.
            let same: bool = tx.query_row(
                "SELECT coalesce(log_id = ?1, 0) FROM sync_state WHERE id = 1",
                [&id.0[..]],
                |r| r.get(0),
            )?;
            if !same {
                return Err(Error::Protocol {
                    detail: "the relay changed its log id twice in one sync; nothing of its answer was kept: sync again later, and tell the relay's operator if it goes on".into(),
                });
            }
            return Ok(false);
        }
        let (seen, queued) = restored::check(&tx, &self.team, &actor, self.at_venue, id)?;
        tx.commit()?;
        if seen == restored::Seen::Changed {
            self.report.relay_restored = true;
            self.report.documents_resent += queued;
            self.snapshots_made.clear();
            return Ok(true);
        }
        Ok(false)
    }

    /// A request that brought nothing: halve the link size, remember it,
    /// and go on unless this was one failure too many in a row.
    fn network_failure(&mut self, store: &mut Store, detail: String) -> Result<()> {
        self.link = (self.link / 2).max(LINK_MIN);
        // The learned size is the active relay's slot: this session's only
        // while its relay is still the active one (review F8).
        let team_url = store.team()?.map(|t| t.relay_url);
        if crate::relays::check_session_relay(
            store.conn(),
            team_url.as_deref(),
            &self.team.relay_url,
        )
        .is_ok()
        {
            store.set_link_bytes(self.link)?;
        }
        self.failures += 1;
        if self.failures > self.opts.retries {
            return Err(Error::Network { detail });
        }
        self.report.retried += 1;
        Ok(())
    }

    fn apply(
        &mut self,
        store: &mut Store,
        flight: &InFlight,
        resp: &SyncResponse,
        venue: Option<&heartbridge_proto::venue_wire::VenueReceipts>,
    ) -> Result<()> {
        let actor = store.actor().clone();
        let profile = store.profile().clone();
        let link = self.link;
        let team_url = store.team()?.map(|t| t.relay_url);
        let tx = store
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // This answer's cursor is the session relay's: never written into
        // another relay's slot (review F8).
        crate::relays::check_session_relay(&tx, team_url.as_deref(), &self.team.relay_url)?;
        // Who belongs first: the envelopes below are judged by it.
        let news = crate::team::take_news(&tx, &self.team, resp.roster.as_deref(), &resp.members)?;
        if news.revoked_me {
            tx.commit()?;
            crate::team::erase_profile(store.path())?;
            return Err(Error::Erased);
        }
        if let Some(v) = flight.roster {
            crate::team::mark_roster_pushed(&tx, v)?;
        }
        let trust = crate::team::Trust::load(&tx, &self.team)?;
        if news.changed {
            for (outcome, doc) in inbound::retry_held(&tx, &actor, &self.team, &trust)? {
                match outcome {
                    inbound::Outcome::Changed => {
                        self.report.applied += 1;
                        bump(&tx, &hex::encode(doc))?;
                    }
                    inbound::Outcome::Unchanged => bump(&tx, &hex::encode(doc))?,
                    inbound::Outcome::Waiting => self.report.waiting += 1,
                    inbound::Outcome::Refused => self.report.refused += 1,
                    inbound::Outcome::PartKept | inbound::Outcome::Held => {}
                    inbound::Outcome::Locked => self.report.locked += 1,
                }
            }
        }
        for ack in &resp.acked {
            let Some(planned) = outbound::find(&flight.planned, &ack.id) else {
                continue;
            };
            self.report.envelopes_pushed += 1;
            if venue.is_some() {
                // Level 1: at the venue relay, still in the outbox (or
                // carried, review F5) until the central relay has it.
                match planned.carried() {
                    None => venue::record_venue_ack(&tx, planned, &self.team.relay_url)?,
                    Some(row) => venue::record_carried_venue_ack(&tx, row, &self.team.relay_url)?,
                }
                self.report.venue_acked += 1;
                continue;
            }
            match outbound::record_ack(&tx, planned)? {
                outbound::AckOutcome::Part => {}
                outbound::AckOutcome::Changes(rows) => {
                    self.report.pushed += 1;
                    self.report.changes_delivered += rows;
                    bump(&tx, &hex::encode(planned.envelope.doc))?;
                }
                outbound::AckOutcome::Snapshot(doc) => {
                    self.report.pushed += 1;
                    tx.execute("DELETE FROM doc_sync WHERE doc_id = ?1", [doc.as_str()])?;
                }
                outbound::AckOutcome::Carried => {}
            }
        }
        // Level 2, by the venue relay's word: the central relay holds these.
        for id in venue.map(|v| v.central.as_slice()).unwrap_or_default() {
            let Some((outcome, doc)) = venue::record_central(&tx, id)? else {
                continue;
            };
            self.report.central_confirmed += 1;
            match outcome {
                outbound::AckOutcome::Changes(rows) => {
                    self.report.changes_delivered += rows;
                    bump(&tx, &hex::encode(doc))?;
                }
                outbound::AckOutcome::Snapshot(doc) => {
                    tx.execute("DELETE FROM doc_sync WHERE doc_id = ?1", [doc.as_str()])?;
                }
                outbound::AckOutcome::Part | outbound::AckOutcome::Carried => {}
            }
        }
        for refused in &resp.refused {
            let Some(planned) = outbound::find(&flight.planned, &refused.id) else {
                continue;
            };
            if venue.is_some() {
                // A venue relay refuses by its mirror of the team, which
                // may be behind the central relay's (an author who joined
                // since): that says nothing of the central relay, so the
                // envelope stays carried (review F5).
                if let Some(row) = planned.carried() {
                    if !self.skip_carried.contains(&row) {
                        self.skip_carried.push(row);
                    }
                }
                continue;
            }
            if outbound::drop_refused(&tx, planned, &refused.reason)? {
                self.report.carried_refused += 1;
            }
        }
        // Only the central relay's seqs are comparable with a revocation's
        // cut-off (review F4).
        let central = venue.is_none();
        for pulled in &resp.pull {
            self.report.envelopes_pulled += 1;
            let outcome = inbound::receive(&tx, &actor, &self.team, &trust, pulled, central)?;
            if outcome != inbound::Outcome::PartKept {
                self.report.pulled += 1;
            }
            match outcome {
                inbound::Outcome::PartKept => {}
                inbound::Outcome::Changed => {
                    self.report.applied += 1;
                    bump(&tx, &hex::encode(pulled.envelope.doc))?;
                }
                inbound::Outcome::Unchanged => bump(&tx, &hex::encode(pulled.envelope.doc))?,
                inbound::Outcome::Waiting => self.report.waiting += 1,
                inbound::Outcome::Refused => self.report.refused += 1,
                inbound::Outcome::Held => self.report.held += 1,
                inbound::Outcome::Locked => self.report.locked += 1,
            }
        }
        // What this answer brought may change who reads which case (a
        // member heard of, a reassignment, the settings' groups): the
        // grants that follow go out in this same sync.
        // (Only an answer that brought something can change that.)
        if news.changed || !resp.pull.is_empty() {
            crate::access::prepare(&tx, &self.team, &trust, &profile)?;
        }
        tx.execute(
            "UPDATE sync_state SET cursor = ?1, last_synced_at = ?2, last_error_kind = NULL,
                 last_error = NULL, link_bytes = ?3 WHERE id = 1",
            params![resp.cursor as i64, now_ms(), link as i64],
        )?;
        tx.commit()?;
        self.report.cursor = resp.cursor;
        if news.changed {
            // A new key epoch seals what is pushed from now on.
            // The session stays with its relay (the stored team names the
            // team's own relay).
            if let Some(mut team) = store.team()? {
                team.relay_url = std::mem::take(&mut self.team.relay_url);
                self.team = team;
            }
        }
        Ok(())
    }

    fn finish(&mut self, store: &Store) -> Result<()> {
        self.done = true;
        self.report.pending = store.outbox_len()?;
        self.report.finished_at = crate::model::format_ms(now_ms());
        Ok(())
    }
}

/// Refuses an answer a well-behaved relay cannot give, before anything of
/// it is stored: a cursor behind ours or beyond what SQLite can hold,
/// pulled envelopes out of order or outside the page's range.
fn check_response(flight: &InFlight, resp: &SyncResponse) -> Result<()> {
    let bad = |what: &str| {
        Err(Error::Protocol {
            detail: format!("the relay's answer is not valid ({what}); nothing of it was kept"),
        })
    };
    if resp.cursor < flight.cursor {
        return bad("its cursor went backwards");
    }
    if resp.cursor > i64::MAX as u64 {
        return bad("its cursor is out of range");
    }
    let mut last = flight.cursor;
    for p in &resp.pull {
        if p.seq <= last || p.seq > resp.cursor {
            return bad("pulled envelopes out of order");
        }
        last = p.seq;
    }
    if resp
        .acked
        .iter()
        .any(|a| a.seq == 0 || a.seq > i64::MAX as u64)
    {
        return bad("an acknowledgement without a place in the log");
    }
    Ok(())
}

/// Whether something waits to be pushed to `relay`: outbox rows not yet
/// in a batch, a batch with a part neither acknowledged nor held by this
/// relay (a venue relay keeps its level-1 parts), a carried envelope this
/// relay neither holds nor refused in this sync (`skip`), or
/// (on the lead's device) a roster not uploaded yet: one this very answer
/// folded a new member into goes out in this sync, so the newcomer gets
/// the team's older key epochs without waiting for the lead's next sync
/// (sim `seed_a_newcomer_after_a_revocation…`).
fn has_unsent(store: &Store, relay: &str, skip: &[i64]) -> Result<bool> {
    let own: bool = store.conn().query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE batch IS NULL)
             OR EXISTS (SELECT 1 FROM outbox_batches b
                        WHERE (SELECT count(*) FROM outbox_parts_acked a WHERE a.batch = b.batch)
                            + (SELECT count(*) FROM outbox_venue_acked v WHERE v.batch = b.batch AND v.relay = ?1)
                            < b.parts)
             OR EXISTS (SELECT 1 FROM roster WHERE id = 1 AND pushed = 0)",
        [relay],
        |r| r.get(0),
    )?;
    if own {
        return Ok(true);
    }
    let mut st = store
        .conn()
        .prepare_cached("SELECT id FROM carried WHERE venue_relay IS NOT ?1")?;
    let rows = st.query_map([relay], |r| r.get::<_, i64>(0))?;
    for row in rows {
        if !skip.contains(&row?) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Store {
    /// Starts a sync with the team's relay.
    pub fn sync_session(&self, opts: &SyncOptions) -> Result<SyncSession> {
        let mut team = self.team()?.ok_or(Error::NotEnrolled)?;
        // The relay whose cursor is the engine's (issue 10: each relay
        // keeps its own).
        if let Some(url) = self.active_relay_url()? {
            team.relay_url = url;
        }
        // Whether this relay is a venue relay is the entry's kind.
        let at_venue = self
            .relays()?
            .iter()
            .any(|e| e.url == team.relay_url && e.kind == crate::RelayKind::Venue);
        Ok(SyncSession {
            team,
            opts: opts.clone(),
            report: SyncReport::default(),
            in_flight: None,
            at_venue,
            skip_carried: Vec::new(),
            link: self.link_bytes()?,
            failures: 0,
            snapshots_made: Vec::new(),
            done: false,
        })
    }

    fn link_bytes(&self) -> Result<usize> {
        let v: Option<i64> =
            self.conn()
                .query_row("SELECT link_bytes FROM sync_state WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
        Ok(v.map_or(LINK_INITIAL, |v| {
            (v.max(0) as usize).clamp(LINK_MIN, LINK_MAX)
        }))
    }

    fn set_link_bytes(&mut self, bytes: usize) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sync_state SET link_bytes = ?1 WHERE id = 1",
            [bytes as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sync state for display.
    pub fn sync_status(&self) -> Result<SyncStatus> {
        let (cursor, last, kind, err): (i64, Option<i64>, Option<String>, Option<String>) = self.conn().query_row(
            "SELECT cursor, last_synced_at, last_error_kind, last_error FROM sync_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let refused_by_reason: Vec<RefusedCount> = {
            let mut st = self.conn().prepare_cached(
                "SELECT reason, count(*) FROM refused GROUP BY reason ORDER BY reason",
            )?;
            let rows = st.query_map([], |r| {
                Ok(RefusedCount {
                    reason: r.get(0)?,
                    count: r.get::<_, i64>(1)? as usize,
                })
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let refused: usize = refused_by_reason.iter().map(|r| r.count).sum();
        Ok(SyncStatus {
            cursor: cursor.max(0) as u64,
            last_synced_at: last.map(crate::model::format_ms),
            pending: self.outbox_len()?,
            last_error_kind: kind,
            last_error: err,
            refused,
            refused_by_reason,
            waiting: self.waiting_changes()?,
            held: self
                .conn()
                .query_row("SELECT count(*) FROM held_envelopes", [], |r| {
                    r.get::<_, i64>(0)
                })? as usize,
            locked: crate::access::locked_count(self.conn())?,
            stopped: self.sync_stopped()?,
            link_bytes: self.link_bytes()?,
            at_venue: self.receipt_levels()?.at_venue,
            carried_refused: self
                .conn()
                .query_row("SELECT count(*) FROM carried_refused", [], |r| {
                    r.get::<_, i64>(0)
                })?
                .max(0) as usize,
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

    /// Records why the last sync failed, for the status screen.
    pub fn record_sync_error(&mut self, e: &Error) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sync_state SET last_error_kind = ?1, last_error = ?2 WHERE id = 1",
            params![e.kind(), e.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Runs a whole sync through a blocking transport: rounds of push and
    /// pull until the relay has nothing more and the outbox is empty.
    /// Reports progress after every round. On failure the error is
    /// recorded for the status screen and everything already acknowledged
    /// or applied stays done.
    /// One sync with the active relay ([`Store::select_relay`]);
    /// [`Store::sync`] picks the relay and falls over.
    pub fn sync_active(
        &mut self,
        transport: &mut dyn Transport,
        opts: &SyncOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<SyncReport> {
        if self.sync_stopped()? {
            return Err(self.check_revoked(transport));
        }
        let mut session = self.sync_session(opts)?;
        let result = (|| {
            while let Some(body) = session.next_request(self)? {
                let answer = transport.sync(session.team(), body);
                session.handle(self, answer)?;
                progress(&session.progress(self)?);
            }
            Ok(session.report().clone())
        })();
        if let Err(Error::DeviceRevoked) = &result {
            return Err(self.check_revoked(transport));
        }
        if let Err(e) = &result {
            // Recording is best effort: the sync's own error is what matters.
            let _ = self.record_sync_error(e);
        }
        result
    }

    /// After the relay said this device is revoked: fetches the roster and
    /// erases the profile if the lead signed the revocation
    /// ([`Error::Erased`]); otherwise [`Error::DeviceRevoked`] (sync stays
    /// stopped, nothing is erased on the relay's word alone).
    pub fn check_revoked(&mut self, transport: &mut dyn Transport) -> Error {
        let Ok(Some(team)) = self.team() else {
            return Error::DeviceRevoked;
        };
        // The relay may close the connection it refused the sync on (a
        // large push it did not read): the roster is asked for again.
        for _ in 0..3 {
            match transport.roster(&team) {
                Ok(bytes) => {
                    if let Err(e) = self.take_roster(&bytes) {
                        if matches!(e, Error::Erased) {
                            return e;
                        }
                    }
                    break;
                }
                Err(TransportError::Network(_) | TransportError::Cut { .. }) => continue,
                Err(TransportError::Relay { .. }) => break,
            }
        }
        let _ = self.record_sync_error(&Error::DeviceRevoked);
        Error::DeviceRevoked
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

#[cfg(test)]
mod tests;
