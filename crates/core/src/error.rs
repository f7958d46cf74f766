//! The one error type of heartbridge-core.
//!
//! Messages say what happened and what to do. They never carry note text,
//! names, keys or tokens: only ids, field names and the allowed spellings.

use std::path::PathBuf;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Heartbridge profile at {path}: create one with `heartbridge init --name NAME --profile {path}`")]
    ProfileMissing { path: PathBuf },

    #[error("{path} is not a Heartbridge profile (it holds other files): choose an empty or new directory, or the directory you gave to `heartbridge init`")]
    ProfileForeign { path: PathBuf },

    #[error("a Heartbridge profile already exists at {path}: use it as it is, or choose another directory")]
    ProfileExists { path: PathBuf },

    #[error("the database {path} is damaged or is not a Heartbridge database ({detail}); it was left untouched: restore it from a backup or move it aside and sync again")]
    DatabaseCorrupt { path: PathBuf, detail: String },

    #[error("the database {path} was written by a newer Heartbridge (schema {found}, this one knows {known}): update Heartbridge")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("no {what} with id {id}: check the id with `heartbridge {what} list`")]
    NotFound { what: &'static str, id: String },

    #[error("invalid {field} {value:?}: use one of {allowed}")]
    InvalidValue {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },

    #[error("{what} is empty: give a non-empty value")]
    Empty { what: &'static str },

    #[error("{path} is not UTF-8 text (first bad byte at offset {offset}): save the handbook as UTF-8 and import it again")]
    NotUtf8 { path: PathBuf, offset: usize },

    #[error("{path}: {reason}")]
    HandbookFormat { path: PathBuf, reason: String },

    #[error("document {id} is not a {expected}")]
    WrongKind { id: String, expected: &'static str },

    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "wrong PIN or passphrase: {tries_left} tries left before this device erases the profile"
    )]
    WrongPin { tries_left: u32 },

    #[error("this profile was erased (after too many wrong PINs, or because the team's lead removed this device): its keys and database are gone from this device; create a new profile or join your team again")]
    ProfileDestroyed,

    #[error("this profile is locked: open it with its PIN or passphrase")]
    PinRequired,

    #[error("the key store of this system holds no key for this profile: open it with its PIN or passphrase")]
    KeyStoreUnavailable,

    #[error("the profile's key does not open its database {path}: the database or its keys file was replaced; restore both from the same backup")]
    WrongKey { path: PathBuf },

    #[error("not enough free disk space to encrypt the profile ({needed} bytes needed, {free} free); nothing was changed: free some space and try again")]
    NoSpace { needed: u64, free: u64 },

    #[error("the disk is full: nothing was saved by this command, and what was saved before is intact; free some space and try again")]
    DiskFull,

    #[error("the database is busy (another Heartbridge process holds it): try again")]
    Busy,

    #[error("this device has not joined a team yet: join with an invite code (`heartbridge join CODE`) or claim a team as its lead")]
    NotEnrolled,

    #[error("this device already belongs to a team: a profile joins one team only; create another profile for another team")]
    AlreadyEnrolled,

    #[error("cannot reach the relay ({detail}): everything is saved on this device and will be sent at the next sync")]
    Network { detail: String },

    #[error("{message}")]
    Relay { kind: String, message: String },

    #[error("the relay says this device was removed from the team, so it stopped syncing; notes stay on this device. If this is a mistake, ask the team's lead")]
    DeviceRevoked,

    #[error("the team's lead removed this device from the team: its keys and notes were erased from this device")]
    Erased,

    #[error(
        "this device has not received {what} from the relay yet: sync, then run the command again"
    )]
    NotYetKnown { what: &'static str },

    #[error("only the team's lead device can remove a member")]
    NotLead,

    /// A role may not do this (checked on the device before anything is
    /// written). `needs` names who may, in words a volunteer reads.
    #[error("this device's role ({role}) may not {action}: ask {needs}")]
    Forbidden {
        action: &'static str,
        role: &'static str,
        needs: &'static str,
    },

    #[error("the relay answered with something this version does not understand ({detail}): update Heartbridge or tell the relay operator")]
    Protocol { detail: String },

    #[error("the invite code is not valid: {0}")]
    Invite(#[from] heartbridge_proto::InviteError),

    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),

    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),

    #[error(transparent)]
    Qr(#[from] crate::bundle::qr::QrError),

    /// A lesson could not be added, fetched or played; `kind` is stable
    /// (`lesson_not_held`, `lesson_chunk_bad`, `lesson_not_on_relay`,
    /// `too_large`).
    #[error("{message}")]
    Lesson { kind: &'static str, message: String },

    #[error("fetching {lessons} lesson(s) needs {} over a link that may be metered (mobile data), so nothing was fetched: confirm (`heartbridge lesson fetch --yes-metered`), fetch at the venue relay over local Wi-Fi, or say the link is not metered (`heartbridge lesson link unmetered`)", mb(*bytes))]
    MeteredLink { lessons: usize, bytes: u64 },

    #[error("document {id} could not be read: {source}")]
    Document {
        id: String,
        #[source]
        source: Box<automerge::AutomergeError>,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::DiskFull => return Error::DiskFull,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return Error::Busy,
                _ => {}
            }
        }
        Error::Sqlite(e)
    }
}

impl Error {
    /// A stable, machine-readable name for the kind of error, for the CLI's
    /// JSON and the app's error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ProfileMissing { .. } => "profile_missing",
            Error::ProfileForeign { .. } => "profile_foreign",
            Error::ProfileExists { .. } => "profile_exists",
            Error::DatabaseCorrupt { .. } => "database_corrupt",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::NotFound { .. } => "not_found",
            Error::InvalidValue { .. } | Error::Empty { .. } => "invalid_input",
            Error::NotUtf8 { .. } | Error::HandbookFormat { .. } => "handbook_format",
            Error::WrongKind { .. } => "wrong_kind",
            Error::Io { .. } => "io",
            Error::WrongPin { .. } => "wrong_pin",
            Error::ProfileDestroyed => "profile_destroyed",
            Error::PinRequired => "pin_required",
            Error::KeyStoreUnavailable => "keystore_unavailable",
            Error::WrongKey { .. } => "wrong_key",
            Error::NoSpace { .. } => "no_space",
            Error::DiskFull => "disk_full",
            Error::Busy => "busy",
            Error::NotEnrolled => "not_enrolled",
            Error::AlreadyEnrolled => "already_enrolled",
            Error::Network { .. } => "network",
            Error::Relay { .. } => "relay",
            Error::DeviceRevoked => "device_revoked",
            Error::Erased => "erased",
            Error::NotYetKnown { .. } => "not_yet_known",
            Error::NotLead | Error::Forbidden { .. } => "forbidden",
            Error::Protocol { .. } => "protocol",
            Error::Invite(_) => "invite",
            Error::Sqlite(_) => "database",
            Error::Document { .. } => "document",
            Error::Bundle(_) => "bundle",
            Error::Qr(_) => "qr",
            Error::Lesson { kind, .. } => kind,
            Error::MeteredLink { .. } => "metered_link",
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
