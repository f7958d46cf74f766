//! What the relay keeps, behind one trait.
//!
//! [`Storage`] is synchronous; the HTTP layer calls it on blocking threads.
//! Every method is one transaction. Tokens reach it only as hashes
//! ([`heartbridge_proto::Secret::hash`]) and the current time is passed in,
//! so a backend neither reads a clock nor sees a secret. [`SqliteStorage`]
//! is the implementation here; a PostgreSQL one implements the same trait
//! (note on [`Storage::pull`] what it must guarantee about sequence numbers).

mod migrations;
mod sqlite;
#[cfg(test)]
mod story;

use std::fmt;

use heartbridge_proto::{Ack, Envelope, Member, Pulled, Role, TeamId};
use serde::Serialize;

use crate::error::StoreError;

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

/// An enrolled device, as a bearer token identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    pub team: TeamId,
    pub role: Role,
    pub revoked: bool,
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
}

/// One sync request's push, committed by the writer together with others.
#[derive(Debug, Clone)]
pub struct PushJob {
    pub team: TeamId,
    pub device: DeviceId,
    /// Validated already: non-empty ciphertext, known epoch.
    pub envelopes: Vec<Envelope>,
    /// Also the device's new `last_sync_at`.
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
/// envelope's fixed fields (doc, kind, epoch, content id, covers, nonce)
/// and its length-prefixed ciphertext. Pages are bounded by this, so a page
/// of many tiny envelopes stays within the bound as one of a few big ones.
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
}

/// One page of a pull.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub pull: Vec<Pulled>,
    pub cursor: u64,
    pub more: bool,
}

/// Gauges for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Enrolled and not revoked.
    pub devices: u64,
    pub envelopes: u64,
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
    pub envelopes: u64,
    /// Unix seconds.
    pub created_at: i64,
}

/// The relay's storage. Each method is one transaction.
pub trait Storage: Send + Sync + 'static {
    /// Answers if the database answers.
    fn check(&self) -> Result<(), StoreError>;

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

    /// Redeems the team's one-time lead token: sets the team's key check and
    /// enrolls the device as lead. Refusals: unknown team, unknown token,
    /// used.
    ///
    /// A retry (the token was used by an enrollment with the same
    /// `enrollment_id`, and the key check is the team's) enrolls nobody: it
    /// replaces that device's token hash with `device_token_hash` and
    /// returns that device (refusal `Revoked` if it has been revoked).
    fn claim(&self, enrollment: &Enrollment) -> Result<Device, StoreError>;

    /// Redeems an invite atomically and enrolls the device with the invite's
    /// role. Refusals: unknown team, unknown token, used, expired, wrong key
    /// (which leaves the invite unused). Retries as for [`Storage::claim`].
    fn join(&self, enrollment: &Enrollment) -> Result<Device, StoreError>;

    fn create_invite(&self, invite: &NewInvite) -> Result<(), StoreError>;

    /// Every device of the team, revoked ones included, in enrollment order.
    fn members(&self, team: TeamId) -> Result<Vec<Member>, StoreError>;

    /// Revokes a device; with `team`, only a device of that team (refusal
    /// `NotInTeam` otherwise, also for an unknown device). Idempotent.
    fn revoke(&self, team: Option<TeamId>, device: DeviceId) -> Result<(), StoreError>;

    /// Stores the pushes of several requests in ONE durable transaction
    /// (group commit) and touches each pushing device's `last_sync_at`.
    /// Envelopes are deduplicated by (team, content id); a snapshot with
    /// `covers > 0` drops its document's earlier envelopes up to `covers`.
    /// The outer error means nothing was committed; an inner one means that
    /// job alone was rolled back.
    fn commit(&self, jobs: &[PushJob]) -> Result<Vec<JobResult>, StoreError>;

    /// One page of the team's envelopes past `cursor` authored by other
    /// devices, at most `page_bytes` of them as encoded on the wire
    /// ([`pulled_wire_len`]) but always at least one, in one read transaction (see the sync protocol in the crate
    /// docs). Relies on sequence numbers becoming visible in order, which a
    /// single writer gives for free.
    fn pull(
        &self,
        team: TeamId,
        device: DeviceId,
        cursor: u64,
        page_bytes: u64,
    ) -> Result<Page, StoreError>;

    fn gauges(&self) -> Result<Gauges, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_proto::{encode, ContentId};

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
                },
            };
            assert_eq!(
                pulled_wire_len(seq, epoch, covers, len as u64),
                encode(&pulled).len() as u64,
                "seq {seq} epoch {epoch} covers {covers} len {len}"
            );
        }
    }
}
