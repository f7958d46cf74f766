//! The relays a device knows (issue 10): the team's own relay (from the
//! invite code; always an entry, cannot be removed), other addresses of
//! the central relay, and venue relays on a local network. Each entry
//! keeps its certificate pin (or none), whether plain `http://` off
//! loopback is allowed, when it last answered and how fast, and **its own
//! envelope cursor**: a relay's sequence numbers are its own, so a cursor
//! at relay A is never used at relay B.
//!
//! `sync_state.cursor` is the cursor of the *active* relay
//! (`sync_state.active_relay`, NULL for the team's relay), so the sync
//! engine reads and moves one cursor as before; [`Store::select_relay`]
//! switches in one transaction, parking the active relay's cursor in its
//! entry and loading the new one's. [`Store::sync`] picks the relay: venue
//! entries first, then by the last measured round trip, and falls over to
//! the next on a network failure (never on a refusal: a revoked device, a
//! wrong certificate, a refused push stop there).

use std::time::Instant;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::proto::CertPin;
use crate::sync::{Progress, SyncOptions, SyncReport, Transport, TransportError};
use crate::{now_ms, Error, Result, Store, Team};

/// What a relay entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayKind {
    /// The team's central relay (or another address of it).
    Central,
    /// A venue relay inside a closed-loop venue; tried first.
    Venue,
}

impl RelayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayKind::Central => "central",
            RelayKind::Venue => "venue",
        }
    }
    fn parse(s: &str) -> RelayKind {
        if s == "venue" {
            RelayKind::Venue
        } else {
            RelayKind::Central
        }
    }
}

/// One relay the device knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelayEntry {
    pub url: String,
    /// `sha256:<base64url>` of the leaf certificate, when pinned.
    pub pin: Option<String>,
    pub kind: RelayKind,
    pub label: Option<String>,
    /// Plain `http://` off loopback allowed (the volunteer said so).
    pub insecure: bool,
    pub added_at: i64,
    pub last_ok_at: Option<i64>,
    pub last_rtt_ms: Option<i64>,
    /// The team's own relay, from the invite: cannot be removed.
    pub team_relay: bool,
    /// The relay whose cursor the sync engine uses now.
    pub active: bool,
    /// The device's bearer token may go to it: the team's own relay, or a
    /// `central` entry that is provably the same relay at another address
    /// — pinned to the very certificate the team relay's entry is pinned
    /// to, or (the team relay unpinned) unpinned on the team relay's own
    /// host. Every other entry, whatever its kind, gets the device's
    /// signature (review F10).
    pub takes_token: bool,
}

impl RelayEntry {
    /// The pin, parsed.
    pub fn cert_pin(&self) -> Option<CertPin> {
        self.pin.as_deref().and_then(CertPin::parse)
    }
}

/// A relay URL as entries key it: trimmed, without a trailing `/`.
pub fn normalize_relay_url(url: &str) -> Result<String> {
    let u = url.trim().trim_end_matches('/');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(u.to_owned()),
        _ => Err(Error::InvalidValue {
            field: "relay address",
            value: u.chars().take(80).collect(),
            allowed: "an address starting with https:// (or http:// on this computer)",
        }),
    }
}

/// The host of a relay URL (lowercase, without port or brackets).
fn host_of(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn check_pin(pin: Option<&str>) -> Result<Option<String>> {
    match pin {
        None => Ok(None),
        Some(p) => match CertPin::parse(p) {
            Some(pin) => Ok(Some(pin.to_string())),
            None => Err(Error::InvalidValue {
                field: "fingerprint",
                value: p.chars().take(80).collect(),
                allowed: "sha256: followed by 43 characters, as `heartbridge-relay fingerprint` prints it",
            }),
        },
    }
}

const COLUMNS: &str = "url, pin, kind, label, insecure, added_at, last_ok_at, last_rtt_ms";

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<RelayEntry> {
    Ok(RelayEntry {
        url: r.get(0)?,
        pin: r.get(1)?,
        kind: RelayKind::parse(&r.get::<_, String>(2)?),
        label: r.get(3)?,
        insecure: r.get::<_, i64>(4)? != 0,
        added_at: r.get(5)?,
        last_ok_at: r.get(6)?,
        last_rtt_ms: r.get(7)?,
        team_relay: false,
        active: false,
        takes_token: false,
    })
}

impl Store {
    /// Every relay this device knows, the team's relay first, then in the
    /// order they were added.
    pub fn relays(&self) -> Result<Vec<RelayEntry>> {
        let team_url = self.team()?.map(|t| t.relay_url);
        let active = self.active_relay_url()?;
        let mut stmt = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM relays ORDER BY added_at, url"
        ))?;
        let mut list: Vec<RelayEntry> = stmt
            .query_map([], row_entry)?
            .collect::<rusqlite::Result<_>>()?;
        if let Some(team_url) = &team_url {
            if !list.iter().any(|e| &e.url == team_url) {
                list.push(RelayEntry {
                    url: team_url.clone(),
                    pin: None,
                    kind: RelayKind::Central,
                    label: None,
                    insecure: false,
                    added_at: 0,
                    last_ok_at: None,
                    last_rtt_ms: None,
                    team_relay: true,
                    active: false,
                    takes_token: true,
                });
            }
        }
        let team_pin = list
            .iter()
            .find(|e| team_url.as_deref() == Some(e.url.as_str()))
            .and_then(|e| e.pin.clone());
        for e in &mut list {
            e.team_relay = team_url.as_deref() == Some(e.url.as_str());
            e.active = active.as_deref() == Some(e.url.as_str());
            let same_relay = match (&e.pin, &team_pin) {
                (Some(p), Some(t)) => p == t,
                (None, None) => {
                    let team_host = team_url.as_deref().and_then(host_of);
                    team_host.is_some() && team_host == host_of(&e.url)
                }
                _ => false,
            };
            e.takes_token = e.team_relay || (e.kind == RelayKind::Central && same_relay);
        }
        list.sort_by_key(|e| !e.team_relay);
        Ok(list)
    }

    /// Adds a relay the device does not know yet, with its own cursor
    /// starting at 0. The pin is checked for its form; the address must
    /// start with `https://` or `http://`. An address already known (the
    /// team's own relay above all) is refused, never changed (review F9:
    /// a discovered or mistyped entry must not replace a pin or a kind);
    /// [`Store::replace_relay_pin`] changes a pin on purpose.
    pub fn add_relay(
        &mut self,
        url: &str,
        pin: Option<&str>,
        kind: RelayKind,
        insecure: bool,
    ) -> Result<RelayEntry> {
        let url = normalize_relay_url(url)?;
        let pin = check_pin(pin)?;
        let team_url = self.team()?.map(|t| t.relay_url);
        if team_url.as_deref().map(|t| t.trim_end_matches('/')) == Some(url.as_str()) {
            return Err(Error::Relay {
                kind: "central_relay".into(),
                message: "this is your team's own relay (from the invite code): it is already there, and its fingerprint comes only from the invite".into(),
            });
        }
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT INTO relays (url, pin, kind, insecure, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (url) DO NOTHING",
            params![url, pin, kind.as_str(), insecure as i64, now_ms()],
        )?;
        if n == 0 {
            return Err(Error::Relay {
                kind: "relay_exists".into(),
                message: "this relay address is already there; nothing was changed (to change its fingerprint on purpose: `heartbridge team relays pin URL FINGERPRINT`; to change its kind, remove it and add it again)".into(),
            });
        }
        tx.commit()?;
        self.relay_entry(&url)
    }

    /// The entry for the team's own relay, as an enrollment (join, claim)
    /// records it with the pin its invite code carries. Before the team is
    /// stored the invite is what says which certificate it has; once it
    /// is, a different pin is refused.
    pub fn ensure_team_relay(&mut self, url: &str, pin: Option<&str>) -> Result<RelayEntry> {
        let url = normalize_relay_url(url)?;
        let pin = check_pin(pin)?;
        let enrolled = self.team()?.is_some();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known: Option<Option<String>> = tx
            .query_row("SELECT pin FROM relays WHERE url = ?1", [&url], |r| {
                r.get(0)
            })
            .optional()?;
        match known {
            None => {
                tx.execute(
                    "INSERT INTO relays (url, pin, kind, insecure, added_at) VALUES (?1, ?2, 'central', 0, ?3)",
                    params![url, pin, now_ms()],
                )?;
            }
            Some(old) if old == pin => {}
            Some(_) if enrolled => {
                return Err(Error::Relay {
                    kind: "central_relay".into(),
                    message: "this device already knows the team's relay with another fingerprint; nothing was changed: ask the team lead".into(),
                });
            }
            Some(_) => {
                tx.execute(
                    "UPDATE relays SET pin = ?2, kind = 'central', cursor = 0, link_bytes = NULL, log_id = NULL WHERE url = ?1",
                    params![url, pin],
                )?;
            }
        }
        tx.commit()?;
        self.relay_entry(&url)
    }

    /// Replaces the certificate pin of an entry that is not the team's own
    /// relay (a venue relay set up again gets a new self-signed
    /// certificate), on purpose: a separate command from adding. A new
    /// certificate may be a new relay with its own seq numbers, so the
    /// entry's cursor starts again at 0 (review F8; pulling again is
    /// harmless, content ids dedup).
    pub fn replace_relay_pin(&mut self, url: &str, pin: Option<&str>) -> Result<RelayEntry> {
        let url = normalize_relay_url(url)?;
        let pin = check_pin(pin)?;
        let team_url = self.team()?.map(|t| t.relay_url);
        if team_url.as_deref().map(|t| t.trim_end_matches('/')) == Some(url.as_str()) {
            return Err(Error::Relay {
                kind: "central_relay".into(),
                message: "the team's own relay keeps the fingerprint from the invite code; ask the team lead for a new invite if its certificate changed".into(),
            });
        }
        let active = self.active_relay_url()?.as_deref() == Some(url.as_str());
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE relays SET pin = ?2, cursor = 0, link_bytes = NULL, log_id = NULL WHERE url = ?1",
            params![url, pin],
        )?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "relay",
                id: url,
            });
        }
        if active {
            tx.execute(
                "UPDATE sync_state SET cursor = 0, link_bytes = NULL, log_id = NULL WHERE id = 1",
                [],
            )?;
            drop_snapshot_batches(&tx)?;
        }
        tx.commit()?;
        self.relay_entry(&url)
    }

    fn relay_entry(&self, url: &str) -> Result<RelayEntry> {
        self.relays()?
            .into_iter()
            .find(|e| e.url == url)
            .ok_or(Error::NotFound {
                what: "relay",
                id: url.to_owned(),
            })
    }

    /// Removes a relay entry and the cursor kept for it. The team's own
    /// relay cannot be removed. Removing the active relay makes the team's
    /// relay active again.
    pub fn remove_relay(&mut self, url: &str) -> Result<()> {
        let url = normalize_relay_url(url)?;
        let team_url = self.team()?.map(|t| t.relay_url);
        if team_url.as_deref() == Some(url.as_str()) {
            return Err(Error::Relay {
                kind: "central_relay".into(),
                message: "this is your team's own relay (from the invite code): it cannot be removed; add another address instead".into(),
            });
        }
        if self.active_relay_url()?.as_deref() == Some(url.as_str()) {
            if let Some(t) = &team_url {
                self.select_relay(t)?;
            }
        }
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute("DELETE FROM relays WHERE url = ?1", [&url])?;
        tx.commit()?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "relay",
                id: url,
            });
        }
        Ok(())
    }

    /// The relay whose cursor `sync_state.cursor` is: the team's relay
    /// unless another was selected.
    pub fn active_relay_url(&self) -> Result<Option<String>> {
        let active: Option<String> = self
            .conn()
            .query_row(
                "SELECT active_relay FROM sync_state WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        match active {
            Some(a) => Ok(Some(a)),
            None => Ok(self.team()?.map(|t| t.relay_url)),
        }
    }

    /// Makes `url` the relay the next sync session talks to, in one
    /// transaction: the active relay's envelope cursor and learned link
    /// size are parked in its entry, the ones kept for `url` (0 and the
    /// initial size the first time) become the engine's.
    pub fn select_relay(&mut self, url: &str) -> Result<()> {
        let url = normalize_relay_url(url)?;
        let team_url = self.team()?.ok_or(Error::NotEnrolled)?.relay_url;
        let current = self.active_relay_url()?.unwrap_or_else(|| team_url.clone());
        if current == url {
            return Ok(());
        }
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known: bool = tx
            .query_row("SELECT 1 FROM relays WHERE url = ?1", [&url], |_| Ok(()))
            .optional()?
            .is_some();
        if !known && url != team_url {
            return Err(Error::NotFound {
                what: "relay",
                id: url,
            });
        }
        let (cursor, link, log_id): (i64, Option<i64>, Option<Vec<u8>>) = tx.query_row(
            "SELECT cursor, link_bytes, log_id FROM sync_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        // Park the current cursor and link size (the team's relay gets its
        // entry now if it had none).
        for u in [&current, &url] {
            tx.execute(
                "INSERT INTO relays (url, kind, added_at) VALUES (?1, 'central', ?2)
                 ON CONFLICT (url) DO NOTHING",
                params![u, now_ms()],
            )?;
        }
        tx.execute(
            "UPDATE relays SET cursor = ?2, link_bytes = ?3, log_id = ?4 WHERE url = ?1",
            params![current, cursor, link, log_id],
        )?;
        let (next, next_link, next_log): (i64, Option<i64>, Option<Vec<u8>>) = tx.query_row(
            "SELECT cursor, link_bytes, log_id FROM relays WHERE url = ?1",
            [&url],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let active = (url != team_url).then_some(url.as_str());
        tx.execute(
            "UPDATE sync_state SET cursor = ?1, active_relay = ?2, link_bytes = ?3, log_id = ?4
             WHERE id = 1",
            params![next, active, next_link, next_log],
        )?;
        drop_snapshot_batches(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Records that `url` answered a sync, with the round trip of its first
    /// request.
    pub fn record_relay_ok(&mut self, url: &str, rtt_ms: i64) -> Result<()> {
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO relays (url, kind, added_at, last_ok_at, last_rtt_ms)
             VALUES (?1, 'central', ?2, ?2, ?3)
             ON CONFLICT (url) DO UPDATE SET last_ok_at = ?2, last_rtt_ms = ?3",
            params![url, now_ms(), rtt_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The order a sync tries relays in: venue entries first, then the
    /// others, each by the last measured round trip (unmeasured last; the
    /// team's relay first among equals).
    pub fn relay_order(&self) -> Result<Vec<RelayEntry>> {
        let mut list = self.relays()?;
        list.sort_by_key(|e| {
            (
                e.kind != RelayKind::Venue,
                e.last_rtt_ms.is_none(),
                e.last_rtt_ms.unwrap_or(0),
                !e.team_relay,
            )
        });
        Ok(list)
    }

    /// Syncs with the first relay of [`Store::relay_order`] that answers:
    /// a network failure (connect refused, timed out, cut before an
    /// answer) moves on to the next; any refusal or device error is
    /// returned at once. Each relay keeps its own cursor.
    pub fn sync(
        &mut self,
        transport: &mut dyn Transport,
        opts: &SyncOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<SyncReport> {
        let order = match self.team()? {
            Some(_) => self.relay_order()?,
            None => return Err(Error::NotEnrolled),
        };
        let mut last = None;
        for entry in &order {
            transport.use_relay(entry);
            self.select_relay(&entry.url)?;
            let mut timed = Timed {
                inner: transport,
                first: None,
            };
            match self.sync_active(&mut timed, opts, progress) {
                Ok(report) => {
                    let rtt = timed.first.unwrap_or(0);
                    self.record_relay_ok(&entry.url, rtt)?;
                    return Ok(report);
                }
                Err(e @ Error::Network { .. }) => last = Some(e),
                // A venue relay's refusal says nothing about the central
                // relay (a clock off, a mirror behind, a venue relay gone
                // bad): go on to the next entry (review F6, F7).
                Err(e @ (Error::Relay { .. } | Error::Protocol { .. } | Error::DeviceRevoked))
                    if entry.kind == RelayKind::Venue =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::NotEnrolled))
    }
}

/// Drops the snapshot batches not yet fully acknowledged (review F2): a
/// snapshot's `covers` counts in the seqs of the relay it was frozen for,
/// and at another relay it would supersede envelopes it does not hold.
/// They are only compaction: the changes they hold were pushed before
/// (a snapshot is frozen only when nothing of its document waits), and
/// the document is compacted again at the relay synced next.
pub(crate) fn drop_snapshot_batches(tx: &rusqlite::Connection) -> Result<()> {
    let stale = "SELECT batch FROM outbox_batches WHERE snapshot_covers IS NOT NULL";
    tx.execute(
        &format!("DELETE FROM outbox_parts_acked WHERE batch IN ({stale})"),
        [],
    )?;
    tx.execute(
        &format!("DELETE FROM outbox_venue_acked WHERE batch IN ({stale})"),
        [],
    )?;
    tx.execute(
        "DELETE FROM outbox_batches WHERE snapshot_covers IS NOT NULL",
        [],
    )?;
    Ok(())
}

/// Whether `url` is a venue entry (the sync engine freezes no snapshot
/// for one, review F2).
pub(crate) fn is_venue_entry(conn: &rusqlite::Connection, url: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT kind = 'venue' FROM relays WHERE url = ?1",
            [url],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false))
}

/// Fails unless `session_url` is still the active relay (`team_url` when
/// none was selected): a session whose relay was selected away or
/// removed under it must not read or move the cursor now kept for another
/// relay (review F8). Its last answer is not applied; what it pushed goes
/// again next time (the relay dedups it).
pub(crate) fn check_session_relay(
    conn: &rusqlite::Connection,
    team_url: Option<&str>,
    session_url: &str,
) -> Result<()> {
    let active: Option<String> = conn
        .query_row(
            "SELECT active_relay FROM sync_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if active.as_deref().or(team_url) == Some(session_url) {
        return Ok(());
    }
    Err(Error::Relay {
        kind: "relay_changed".into(),
        message: "the relay list changed while this sync ran, so it stopped without moving anything; sync again".into(),
    })
}

/// Measures the first request's round trip.
struct Timed<'a> {
    inner: &'a mut dyn Transport,
    first: Option<i64>,
}

impl Transport for Timed<'_> {
    fn sync(&mut self, team: &Team, body: Vec<u8>) -> std::result::Result<Vec<u8>, TransportError> {
        let start = Instant::now();
        let r = self.inner.sync(team, body);
        if self.first.is_none() && r.is_ok() {
            self.first = Some(start.elapsed().as_millis() as i64);
        }
        r
    }
    fn roster(&mut self, team: &Team) -> std::result::Result<Vec<u8>, TransportError> {
        self.inner.roster(team)
    }
    fn use_relay(&mut self, relay: &RelayEntry) {
        self.inner.use_relay(relay)
    }
}

#[cfg(test)]
mod tests {
    use heartbridge_proto::{Role, Secret, TeamId, TeamKey};

    use super::*;

    const TEAM_URL: &str = "https://central.example:7443";

    fn store(dir: &tempfile::TempDir) -> Store {
        let mut s = Store::init(
            &dir.path().join("p"),
            "林老师",
            &crate::testing::protection(),
        )
        .unwrap();
        s.set_team(&Team {
            relay_url: TEAM_URL.into(),
            team_id: TeamId::from_hex(&"ab".repeat(16)).unwrap(),
            device_id: "cd".repeat(16),
            token: Secret::from_string("t".repeat(32)),
            key: TeamKey::from_bytes([7; 32]),
            epoch: 1,
            role: Role::Volunteer,
            lead_sign_pk: [0; 32],
        })
        .unwrap();
        s
    }

    fn set_cursor(s: &Store, c: i64) {
        s.conn()
            .execute("UPDATE sync_state SET cursor = ?1 WHERE id = 1", [c])
            .unwrap();
    }

    fn link(s: &Store) -> Option<i64> {
        s.conn()
            .query_row("SELECT link_bytes FROM sync_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn cursor(s: &Store) -> i64 {
        s.conn()
            .query_row("SELECT cursor FROM sync_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn urls(list: &[RelayEntry]) -> Vec<&str> {
        list.iter().map(|e| e.url.as_str()).collect()
    }

    #[test]
    fn venue_first_then_by_round_trip_unmeasured_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let pin = CertPin::of_der(b"venue").to_string();
        s.add_relay("https://mirror.example/", None, RelayKind::Central, false)
            .unwrap();
        s.add_relay("https://10.0.0.2:7443", Some(&pin), RelayKind::Venue, false)
            .unwrap();
        // Nothing measured: venue, then the team's relay, then the other.
        assert_eq!(
            urls(&s.relay_order().unwrap()),
            ["https://10.0.0.2:7443", TEAM_URL, "https://mirror.example"]
        );
        s.record_relay_ok("https://mirror.example", 40).unwrap();
        s.record_relay_ok(TEAM_URL, 300).unwrap();
        let order = s.relay_order().unwrap();
        assert_eq!(
            urls(&order),
            ["https://10.0.0.2:7443", "https://mirror.example", TEAM_URL]
        );
        assert_eq!(order[0].pin.as_deref(), Some(pin.as_str()));
        assert!(order[2].team_relay && !order[1].team_relay);
    }

    #[test]
    fn each_relay_keeps_its_own_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let venue = "https://10.0.0.2:7443";
        s.add_relay(venue, None, RelayKind::Venue, false).unwrap();
        set_cursor(&s, 5);
        s.conn()
            .execute("UPDATE sync_state SET link_bytes = 8192 WHERE id = 1", [])
            .unwrap();
        s.select_relay(venue).unwrap();
        assert_eq!(cursor(&s), 0, "a relay never synced with starts at 0");
        assert_eq!(link(&s), None, "and at the initial link size");
        assert_eq!(
            s.sync_session(&SyncOptions::default())
                .unwrap()
                .team()
                .relay_url,
            venue
        );
        set_cursor(&s, 7);
        s.select_relay(TEAM_URL).unwrap();
        assert_eq!(cursor(&s), 5);
        assert_eq!(link(&s), Some(8192), "the team relay's link size is back");
        assert_eq!(
            s.sync_session(&SyncOptions::default())
                .unwrap()
                .team()
                .relay_url,
            TEAM_URL
        );
        s.select_relay(venue).unwrap();
        assert_eq!(cursor(&s), 7);
        // Selecting the active relay again changes nothing.
        s.select_relay(venue).unwrap();
        assert_eq!(cursor(&s), 7);
        // Removing the active relay goes back to the team's, with its cursor.
        s.remove_relay(venue).unwrap();
        assert_eq!(cursor(&s), 5);
        assert_eq!(s.active_relay_url().unwrap().as_deref(), Some(TEAM_URL));
        assert!(s.select_relay(venue).is_err(), "an unknown relay");
    }

    /// Review F9: adding an address already known changes nothing, the
    /// team's own relay above all (a discovered advertisement for its
    /// address with another fingerprint, or a re-add without `--pin`).
    #[test]
    fn adding_a_known_address_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let team_pin = CertPin::of_der(b"team").to_string();
        let rogue = CertPin::of_der(b"rogue").to_string();
        s.ensure_team_relay(TEAM_URL, Some(&team_pin)).unwrap();
        for (pin, kind) in [
            (Some(rogue.as_str()), RelayKind::Venue),
            (None, RelayKind::Central),
        ] {
            let e = s.add_relay(TEAM_URL, pin, kind, false).unwrap_err();
            assert!(e.to_string().contains("already there"), "{e}");
            assert!(!e.to_string().contains(&rogue));
        }
        let team = &s.relays().unwrap()[0];
        assert!(team.team_relay);
        assert_eq!(team.pin.as_deref(), Some(team_pin.as_str()));
        assert_eq!(team.kind, RelayKind::Central);
        // Once enrolled, the team relay's pin is not replaced either way.
        assert!(s.ensure_team_relay(TEAM_URL, Some(&rogue)).is_err());
        assert!(s.replace_relay_pin(TEAM_URL, Some(&rogue)).is_err());
        assert!(s.ensure_team_relay(TEAM_URL, Some(&team_pin)).is_ok());
        assert_eq!(
            s.relays().unwrap()[0].pin.as_deref(),
            Some(team_pin.as_str())
        );
        // Another entry: a second add is refused too, pin and kind kept.
        let venue = "https://10.0.0.2:7443";
        let a = CertPin::of_der(b"a").to_string();
        s.add_relay(venue, Some(&a), RelayKind::Venue, false)
            .unwrap();
        let e = s
            .add_relay(venue, Some(&rogue), RelayKind::Central, false)
            .unwrap_err();
        assert_eq!(e.kind(), "relay");
        let v = s
            .relays()
            .unwrap()
            .into_iter()
            .find(|e| e.url == venue)
            .unwrap();
        assert_eq!(
            (v.pin.as_deref(), v.kind),
            (Some(a.as_str()), RelayKind::Venue)
        );
    }

    /// Review F8: a relay entry whose pin is replaced on purpose (a venue
    /// relay set up again: a new log) or that is removed and added again
    /// starts from cursor 0, never from the old relay's.
    #[test]
    fn a_new_pin_or_a_new_entry_starts_its_cursor_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let venue = "https://10.0.0.2:7443";
        let a = CertPin::of_der(b"a").to_string();
        let b = CertPin::of_der(b"b").to_string();
        s.add_relay(venue, Some(&a), RelayKind::Venue, false)
            .unwrap();
        s.select_relay(venue).unwrap();
        set_cursor(&s, 50);
        let e = s.replace_relay_pin(venue, Some(&b)).unwrap();
        assert_eq!(e.pin.as_deref(), Some(b.as_str()));
        assert_eq!(cursor(&s), 0, "the active entry's cursor");
        set_cursor(&s, 50);
        s.select_relay(TEAM_URL).unwrap();
        s.replace_relay_pin(venue, Some(&a)).unwrap();
        s.select_relay(venue).unwrap();
        assert_eq!(cursor(&s), 0, "a parked entry's cursor");
        set_cursor(&s, 50);
        s.remove_relay(venue).unwrap();
        s.add_relay(venue, Some(&b), RelayKind::Venue, false)
            .unwrap();
        s.select_relay(venue).unwrap();
        assert_eq!(cursor(&s), 0, "an entry added again");
        assert!(matches!(
            s.replace_relay_pin("https://never.example", None),
            Err(Error::NotFound { .. })
        ));
    }

    /// Review F10: the token may go only to the team's own relay or to an
    /// entry pinned to the team relay's very certificate; a venue relay
    /// added as `central` (its `--venue` forgotten) does not take it.
    #[test]
    fn only_the_team_relay_takes_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let team_pin = CertPin::of_der(b"team").to_string();
        s.ensure_team_relay(TEAM_URL, Some(&team_pin)).unwrap();
        let venue_pin = CertPin::of_der(b"venue").to_string();
        s.add_relay(
            "https://10.0.0.2:7443",
            Some(&venue_pin),
            RelayKind::Central,
            false,
        )
        .unwrap();
        s.add_relay("https://10.0.0.3:7443", None, RelayKind::Central, false)
            .unwrap();
        s.add_relay(
            "https://10.0.0.4:7443",
            Some(&team_pin),
            RelayKind::Central,
            false,
        )
        .unwrap();
        s.add_relay(
            "https://10.0.0.5:7443",
            Some(&team_pin),
            RelayKind::Venue,
            false,
        )
        .unwrap();
        // The team relay is pinned: its own host unpinned is not enough.
        s.add_relay(
            "https://central.example:8443",
            None,
            RelayKind::Central,
            false,
        )
        .unwrap();
        let takes: Vec<(String, bool)> = s
            .relays()
            .unwrap()
            .into_iter()
            .map(|e| (e.url, e.takes_token))
            .collect();
        assert_eq!(
            takes,
            [
                (TEAM_URL.to_owned(), true),
                ("https://10.0.0.2:7443".to_owned(), false),
                ("https://10.0.0.3:7443".to_owned(), false),
                ("https://10.0.0.4:7443".to_owned(), true),
                ("https://10.0.0.5:7443".to_owned(), false),
                ("https://central.example:8443".to_owned(), false),
            ]
        );
        // An unpinned team relay: an unpinned central entry on its host
        // (another port) is the same relay; another host is not.
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.add_relay(
            "https://CENTRAL.example:8443/",
            None,
            RelayKind::Central,
            false,
        )
        .unwrap();
        s.add_relay(
            "https://central.example.evil:7443",
            None,
            RelayKind::Central,
            false,
        )
        .unwrap();
        s.add_relay(
            "https://central.example:9443",
            None,
            RelayKind::Venue,
            false,
        )
        .unwrap();
        let takes: Vec<bool> = s.relays().unwrap().iter().map(|e| e.takes_token).collect();
        assert_eq!(takes, [true, true, false, false]);
    }

    #[test]
    fn the_team_relay_stays_and_bad_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let e = s.remove_relay(TEAM_URL).unwrap_err();
        assert!(e.to_string().contains("cannot be removed"), "{e}");
        assert_eq!(urls(&s.relays().unwrap()), [TEAM_URL]);
        assert!(s
            .add_relay("relay.local:7443", None, RelayKind::Venue, false)
            .is_err());
        let e = s
            .add_relay(
                "https://x.example",
                Some("sha256:short"),
                RelayKind::Venue,
                false,
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("heartbridge-relay fingerprint"),
            "{e}"
        );
        assert!(matches!(
            s.remove_relay("https://never.example"),
            Err(Error::NotFound { .. })
        ));
    }
}
