//! # heartbridge-proto
//!
//! The one crate that owns Heartbridge's wire format, shared by devices and
//! the relay: the team key and its key check value, sealed envelopes
//! (XChaCha20-Poly1305 over zstd-compressed Automerge bytes), the `/v1/sync`
//! request and response, the admin JSON bodies, and invite codes. It does no
//! I/O: no database, no HTTP.
//!
//! ```
//! use heartbridge_proto::{TeamKey, TeamId, Envelope, EnvelopeKind, DocKindTag};
//!
//! let key = TeamKey::generate();
//! let team = TeamId::random();
//! let doc = [7u8; 16];
//! let env = Envelope::seal(&key, &team, doc, EnvelopeKind::Change, DocKindTag::Case, b"automerge bytes")?;
//! let opened = env.open(&key, &team)?;
//! assert_eq!(opened.bytes, b"automerge bytes");
//! assert_eq!(opened.doc_kind, DocKindTag::Case);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod case_seal;
mod envelope;
pub mod identity;
mod invite;
mod key;
pub mod lesson;
mod pin;
pub mod reqsig;
pub mod venue_wire;
mod wire;

pub use envelope::{
    open_name, seal_name, ContentId, DocKindTag, Envelope, EnvelopeKind, OpenError, Opened, Part,
    SealError, MAX_PARTS, MAX_PLAINTEXT,
};
pub use identity::{DeviceId, DevicePublic, DeviceSecret, Roster, SignedRoster};
pub use invite::{Invite, InviteError, Role};
pub use key::{Secret, TeamId, TeamKey};
pub use pin::{team_tag, CertPin, PIN_PREFIX};
pub use wire::*;

/// The protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u8 = 2;
