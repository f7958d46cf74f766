//! What the relay keeps, behind one trait.
//!
//! [`Storage`] is synchronous; the HTTP layer calls it on blocking threads.
//! Every method is one transaction. Tokens reach it only as hashes
//! ([`heartbridge_proto::Secret::hash`]) and the current time is passed in,
//! so a backend neither reads a clock nor sees a secret. [`SqliteStorage`]
//! is the default; [`PgStorage`] keeps the same promises on PostgreSQL for
//! several relays at once (it owns a private runtime; note on
//! [`Storage::pull`] what it must guarantee about sequence numbers).

mod migrations;
#[cfg(test)]
mod model;
pub mod pg;
mod sqlite;
#[cfg(test)]
mod story;

use std::fmt;

use heartbridge_proto::{Ack, Envelope, Member, MemberKey, Pulled, Role, TeamId};
use serde::Serialize;

use crate::error::StoreError;

pub use heartbridge_proto::venue_wire::LogId;
pub use pg::PgStorage;
pub use sqlite::SqliteStorage;

/// A device's id: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

impl DeviceId {
    pub fn random() -> Self {
        DeviceId(rand::random())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s.trim()).ok()?;
        Some(DeviceId(v.try_into().ok()?))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An enrolled device, as a bearer token identifies it. `Debug` leaves the
/// key out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    pub team: TeamId,
    pub role: Role,
    pub revoked: bool,
    /// The Ed25519 key its envelopes must verify under; `None` for a device
    /// enrolled before the relay kept keys (it can push nothing).
    pub sign_pk: Option<[u8; 32]>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("team", &self.team)
            .field("role", &self.role)
            .field("revoked", &self.revoked)
            .field("has_key", &self.sign_pk.is_some())
            .finish()
    }
}

/// The public keys and join proof a device enrolls with; the relay keeps
/// them and hands them to the team's devices ([`MemberKey`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DeviceKeys {
    pub sign_pk: [u8; 32],
    pub kx_pk: [u8; 32],
    /// The key epoch of the invite the device joined with.
    pub epoch: u32,
    pub proof: [u8; 32],
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Public keys, but no log needs them.
        f.debug_struct("DeviceKeys")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// What the relay knows of a team besides its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamState {
    /// The claimant's signing key: rosters must verify under it. `None`
    /// before the team is claimed.
    pub lead_sign_pk: Option<[u8; 32]>,
    /// The version of the stored roster (0: none).
    pub roster_version: u64,
    /// The key epoch of the stored roster (1 before any): envelopes under a
    /// later epoch are refused.
    pub epoch: u32,
}

/// A roster the lead's device uploaded, its signature already checked
/// against [`TeamState::lead_sign_pk`]. Stored in the push's transaction if
/// its version is newer than the stored one; the same bytes again are a
/// harmless retry; anything else refuses the whole job
/// ([`crate::Refusal::StaleRoster`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RosterUpload {
    pub version: u64,
    pub epoch: u32,
    pub bytes: Vec<u8>,
    /// The key check value of each epoch, as the lead signed them: a join
    /// with an invite of epoch N is checked against epoch N's.
    pub key_checks: Vec<(u32, String)>,
}

impl fmt::Debug for RosterUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RosterUpload")
            .field("version", &self.version)
            .field("epoch", &self.epoch)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A device redeeming the lead token (claim) or an invite token (join).
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub team: TeamId,
    /// Hash of the lead or invite token presented.
    pub token_hash: String,
    pub key_check: String,
    pub name_sealed: String,
    /// The id (32 lowercase hex digits) the device chose before sending,
    /// which makes the enrollment retryable: the same token presented again
    /// with the same id and key check gives back the device it enrolled,
    /// with `device_token_hash` as its new token.
    pub enrollment_id: Option<String>,
    /// The new device's id and the hash of its new bearer token.
    pub device: DeviceId,
    pub device_token_hash: String,
    /// The device's public keys; a retry must present the same.
    pub keys: DeviceKeys,
    pub now: i64,
}

/// A new one-time invite.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub team: TeamId,
    pub role: Role,
    pub token_hash: String,
    pub created_by: DeviceId,
    pub created_at: i64,
    pub expires_at: i64,
    /// The key check value of the key the invite code carries, when the
    /// inviter said (a code made after a key rotation carries a newer key).
    pub key_check: Option<String>,
}

/// One sync request's push, committed by the writer together with others.
#[derive(Debug, Clone)]
pub struct PushJob {
    pub team: TeamId,
    pub device: DeviceId,
    /// Validated already: non-empty ciphertext, known epoch, signed by its
    /// author's registered key, `covers` only from a lead's or
    /// supervisor's envelope. The author is `device` or, for a carried
    /// envelope, another member of the team: one whose author is revoked
    /// when the job commits is stored only if the relay already holds it
    /// (a duplicate); otherwise its ack has `seq` 0 (refused: it would lie
    /// past its author's cut-off) and the rest of the job is stored.
    pub envelopes: Vec<Envelope>,
    /// A roster the lead's device uploads with this sync, stored before
    /// the envelopes in the same savepoint.
    pub roster: Option<RosterUpload>,
    /// Also the device's new `last_sync_at`, and when a compaction by one of
    /// these envelopes superseded others.
    pub now: i64,
}

impl PushJob {
    /// Ciphertext bytes carried, for sizing write batches.
    pub fn bytes(&self) -> usize {
        self.envelopes.iter().map(|e| e.ciphertext.len()).sum()
    }
}

/// What one job of a group commit got: its acks, or why it alone failed.
pub type JobResult = Result<Vec<Ack>, StoreError>;

/// Bytes of a varint (postcard's encoding of integers above u8).
pub(crate) fn varint_len(v: u64) -> u64 {
    u64::from((64 - v.leading_zeros()).max(1).div_ceil(7))
}

/// The bytes a [`Pulled`] takes in a postcard sync response: its seq, the
/// envelope's fixed fields (doc, kind, epoch, content id, covers, nonce),
/// its length-prefixed ciphertext, its author and signature. Pages are
/// bounded by this, so a page of many tiny envelopes stays within the bound
/// as one of a few big ones.
pub fn pulled_wire_len(seq: u64, epoch: u32, covers: u64, ciphertext_len: u64) -> u64 {
    varint_len(seq)
        + 16 // doc
        + 1 // kind (a variant index below 128)
        + varint_len(u64::from(epoch))
        + 16 // content id
        + varint_len(covers)
        + 24 // nonce
        + varint_len(ciphertext_len)
        + ciphertext_len
        + 16 // author
        + 1 + 64 // signature, length-prefixed
}

/// The bytes the roster and member delta take at the head of a postcard
/// sync response.
pub fn delta_wire_len(roster: Option<&[u8]>, members: &[MemberKey]) -> u64 {
    let roster = match roster {
        None => 1,
        Some(b) => 1 + varint_len(b.len() as u64) + b.len() as u64,
    };
    roster + heartbridge_proto::encode(&members).len() as u64
}

/// What one `/v1/sync` pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullQuery {
    pub team: TeamId,
    /// The pulling device: its own envelopes are skipped.
    pub device: DeviceId,
    pub cursor: u64,
    /// Bytes the roster, members and envelopes may take together on the
    /// wire (the page always carries at least one envelope if any waits).
    pub page_bytes: u64,
    /// Members whose entry changed after this seq are sent.
    pub members_since: u64,
    /// The stored roster is sent if its version is above this.
    pub roster_version: u64,
}

/// One page of a pull, with the team's membership changes and roster.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The stored signed roster, if newer than the device's.
    pub roster: Option<Vec<u8>>,
    /// Every member entry (revoked ones too) changed after
    /// `members_since`, in seq order.
    pub members: Vec<MemberKey>,
    pub pull: Vec<Pulled>,
    pub cursor: u64,
    pub more: bool,
}

/// A compaction whose superseded envelopes are still kept, for operators
/// (`heartbridge-relay compaction list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compaction {
    /// The document, 32 hex digits.
    pub doc: String,
    /// The snapshot that superseded them, and the device that pushed it
    /// (32 hex digits; `None` once the snapshot itself was purged).
    pub snapshot_seq: u64,
    pub author: Option<String>,
    /// Envelopes it superseded that are still kept.
    pub superseded: u64,
    /// Unix seconds.
    pub at: i64,
}

/// What undoing a document's last compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Undone {
    /// The seq of the snapshot whose compaction was undone (it stays).
    pub snapshot_seq: u64,
    /// Envelopes served to pulls again.
    pub restored: u64,
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Enrolled and not revoked.
    pub devices: u64,
    /// Envelopes served to pulls.
    pub envelopes: u64,
    /// Envelopes a snapshot superseded, kept for the compaction grace.
    pub superseded: u64,
}

/// What one team keeps on the relay, for `/metrics` ([`Storage::team_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamUsage {
    pub team: TeamId,
    /// Envelopes served to pulls.
    pub envelopes: u64,
    /// Stored size of every envelope it holds, superseded ones included.
    pub envelope_bytes: u64,
    /// Envelopes a snapshot superseded, waiting for the compaction grace to
    /// pass before the purge deletes them.
    pub superseded: u64,
    /// Bytes of its sealed lesson chunks.
    pub blob_bytes: u64,
}

/// A team, for operators (`heartbridge-relay team list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamSummary {
    pub team_id: String,
    pub name: String,
    /// Whether the lead token has been redeemed.
    pub claimed: bool,
    /// Devices enrolled and not revoked.
    pub devices: u64,
    /// Envelopes served to pulls (superseded ones not counted).
    pub envelopes: u64,
    /// Unix seconds.
    pub created_at: i64,
}

/// The relay's storage. Each method is one transaction.
/// What [`Storage::blob_put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPut {
    Stored,
    /// The team held it already.
    Known,
    /// Storing it would pass the team's quota; nothing was stored.
    OverQuota,
}

pub trait Storage: Send + Sync + 'static {
    /// Answers if the database answers.
    fn check(&self) -> Result<(), StoreError>;

    /// The id of this database's log (made with the database, see
    /// `ResponseExt::log_id`).
    fn log_id(&self) -> Result<LogId, StoreError>;

    /// Makes the log a new id and returns it: after the database was put
    /// back to an earlier point (a restore, a point-in-time recovery), its
    /// seqs are handed out again, and devices must learn that.
    fn new_log_id(&self, now: i64) -> Result<LogId, StoreError>;

    /// Creates a team whose lead token has the given hash.
    fn create_team(
        &self,
        team: TeamId,
        name: &str,
        lead_token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    fn teams(&self) -> Result<Vec<TeamSummary>, StoreError>;

    /// The device holding the token with this hash, revoked or not.
    fn device_by_token(&self, token_hash: &str) -> Result<Option<Device>, StoreError>;

    /// A device of `team` by its id, revoked or not; `None` if the team has
    /// no such device. The relay checks a carried envelope (pushed by
    /// another member) under its author's entry.
    fn team_device(&self, team: TeamId, device: [u8; 16]) -> Result<Option<Device>, StoreError>;

    /// Redeems the team's one-time lead token: sets the team's key check,
    /// enrolls the device as lead and keeps its signing key as the team's
    /// roster key. Refusals: unknown team, unknown token, used.
    ///
    /// A retry (the token was used by an enrollment with the same
    /// `enrollment_id`, and the key check is the team's) enrolls nobody: it
    /// replaces that device's token hash with `device_token_hash` and
    /// returns that device (refusal `Revoked` if it has been revoked). A
    /// retry presenting other keys is no retry (`Used`).
    fn claim(&self, enrollment: &Enrollment) -> Result<Device, StoreError>;

    /// Redeems an invite atomically and enrolls the device with the invite's
    /// role. Refusals: unknown team, unknown token, used, expired, wrong key
    /// (which leaves the invite unused). Retries as for [`Storage::claim`].
    fn join(&self, enrollment: &Enrollment) -> Result<Device, StoreError>;

    fn create_invite(&self, invite: &NewInvite) -> Result<(), StoreError>;

    /// Every device of the team, revoked ones included, in enrollment order.
    fn members(&self, team: TeamId) -> Result<Vec<Member>, StoreError>;

    /// Revokes a device; with `team`, only a device of that team (refusal
    /// `NotInTeam` otherwise, also for an unknown device). Bumps its member
    /// seq, deletes the unused invites it created, and returns the cut-off:
    /// the team's last envelope seq, after which nothing of the device is
    /// stored (a push of it still queued is refused in its transaction).
    /// Idempotent: revoking again changes nothing and returns the first
    /// cut-off.
    fn revoke(&self, team: Option<TeamId>, device: DeviceId, now: i64) -> Result<u64, StoreError>;

    /// The team's roster key, roster version and key epoch; `None` for an
    /// unknown team.
    fn team_state(&self, team: TeamId) -> Result<Option<TeamState>, StoreError>;

    /// The stored signed roster of the team, if any.
    fn roster(&self, team: TeamId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores the pushes of several requests in ONE durable transaction
    /// (group commit) and touches each pushing device's `last_sync_at`.
    /// Envelopes are deduplicated by (team, content id); a snapshot with
    /// `covers > 0`, when first stored, marks its document's earlier
    /// envelopes up to `covers` superseded (no longer pulled; deleted by
    /// [`Storage::purge_superseded`] once the grace has passed). A job
    /// whose device has been revoked meanwhile, or whose roster is not
    /// newer than the stored one, is refused whole. The outer error means
    /// nothing was committed; an inner one means that job alone was rolled
    /// back.
    fn commit(&self, jobs: &[PushJob]) -> Result<Vec<JobResult>, StoreError>;

    /// In one read transaction: the roster if newer than the device's, the
    /// member entries changed since `members_since`, and one page of the
    /// team's live envelopes past `cursor` authored by other devices, all
    /// together at most `page_bytes` as encoded on the wire
    /// ([`delta_wire_len`], [`pulled_wire_len`]) but always at least one
    /// envelope. Members are read in the same transaction as the page, so
    /// every author of a pulled envelope is among the members a device has.
    /// Relies on sequence numbers becoming visible in order, which a single
    /// writer gives for free; [`PgStorage`] gets it by assigning a team's
    /// seqs only under its row lock, held until commit.
    fn pull(&self, q: &PullQuery) -> Result<Page, StoreError>;

    /// Deletes up to `limit` envelopes superseded at or before `before`;
    /// returns how many.
    fn purge_superseded(&self, before: i64, limit: u64) -> Result<u64, StoreError>;

    /// Undoes the last compaction of a team's document whose envelopes
    /// were superseded after `superseded_after` (the grace's start): what
    /// it superseded is pulled again; the snapshot stays. `None` if there
    /// is none.
    /// The team's compactions whose envelopes were superseded after
    /// `superseded_after` and are still kept, oldest first.
    fn compactions(
        &self,
        team: TeamId,
        superseded_after: i64,
    ) -> Result<Vec<Compaction>, StoreError>;

    fn undo_compaction(
        &self,
        team: TeamId,
        doc: [u8; 16],
        superseded_after: i64,
    ) -> Result<Option<Undone>, StoreError>;

    fn gauges(&self) -> Result<Gauges, StoreError>;

    /// Every team's storage, in team id order, in one query (one scrape of
    /// `/metrics` runs it once). Teams that hold nothing are listed with 0s.
    fn team_usage(&self) -> Result<Vec<TeamUsage>, StoreError>;

    /// Stores a sealed lesson chunk of `team` under `id` (the SHA-256 of
    /// `bytes`, checked by the caller), unless the team holds it (kept as
    /// it is) or its chunks would pass `quota` bytes (0: no limit).
    fn blob_put(
        &self,
        team: TeamId,
        id: [u8; 32],
        bytes: &[u8],
        pushed_by: DeviceId,
        now: i64,
        quota: u64,
    ) -> Result<BlobPut, StoreError>;

    /// A stored chunk of `team`.
    fn blob_get(&self, team: TeamId, id: [u8; 32]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Which of `ids` `team` has stored, in order.
    fn blob_have(&self, team: TeamId, ids: &[[u8; 32]]) -> Result<Vec<bool>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_proto::{encode, ContentId, DeviceSecret};

    #[test]
    fn the_wire_length_of_a_pulled_envelope_is_exact() {
        for (seq, epoch, covers, len) in [
            (1u64, 1u32, 0u64, 1usize),
            (127, 1, 0, 127),
            (128, 200, 128, 128),
            (u64::MAX, u32::MAX, u64::MAX, 70_000),
            (300_000, 1, 5, 16_384),
        ] {
            let pulled = Pulled {
                seq,
                envelope: Envelope {
                    doc: [7; 16],
                    kind: heartbridge_proto::EnvelopeKind::Snapshot,
                    epoch,
                    id: ContentId([9; 16]),
                    covers,
                    nonce: [3; 24],
                    ciphertext: vec![1; len],
                    author: [4; 16],
                    sig: [5; 64],
                },
            };
            assert_eq!(
                pulled_wire_len(seq, epoch, covers, len as u64),
                encode(&pulled).len() as u64,
                "seq {seq} epoch {epoch} covers {covers} len {len}"
            );
        }
    }

    #[test]
    fn the_wire_length_of_the_roster_and_members_is_exact() {
        let member = |seq| MemberKey {
            seq,
            device: [1; 16],
            role: Role::Supervisor,
            public: DeviceSecret::generate().public(),
            epoch: 300,
            proof: [2; 32],
            revoked: seq % 2 == 0,
        };
        for (roster, n) in [(None, 0u64), (Some(vec![7u8; 200]), 3), (Some(vec![]), 130)] {
            let members: Vec<MemberKey> = (1..=n).map(|i| member(i * 1000)).collect();
            let resp = heartbridge_proto::SyncResponse {
                v: heartbridge_proto::PROTOCOL_VERSION,
                roster: roster.clone(),
                members: members.clone(),
                acked: vec![],
                pull: vec![],
                cursor: 0,
                more: false,
                refused: vec![],
            };
            // version, then the delta, then acks, pull, cursor, more,
            // refused (1 each).
            assert_eq!(
                1 + delta_wire_len(roster.as_deref(), &members) + 5,
                encode(&resp).len() as u64
            );
        }
    }
}
