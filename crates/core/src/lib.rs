//! # heartbridge-core
//!
//! The domain, documents, store and search of Heartbridge, an offline-first
//! companion for psychological-support volunteers. Every case and handbook
//! is an Automerge document kept in one SQLite database per profile; lists
//! and search are served from projections derived from those documents.
//!
//! The core never spawns a task, opens a socket or imports a UI or HTTP
//! crate: the CLI, the app and the tests drive it.
//!
//! ```
//! use heartbridge_core::{Store, NewCase, Group, Risk, Channel, Protection};
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = Store::init(&dir.path().join("profile"), "林老师", &Protection::pin("123456"))?;
//! let id = store.new_case(&NewCase { alias: "小雨".into(), group: Group::ExamStress, risk: Risk::Low })?;
//! store.add_contact(&id, Channel::Hotline, "谈到考前失眠", Some(25))?;
//! let case = store.case(&id)?;
//! assert_eq!(case.contacts[0].author, "林老师");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod access;
pub mod bundle;
mod bundled;
mod case;
mod docvalue;
pub mod duty;
mod enroll;
mod error;
pub mod facts;
mod handbook;
pub mod lesson;
mod local;
mod model;
mod ops;
mod projection;
mod receipts;
mod relays;
pub mod search;
pub mod stats;
mod store;
pub mod supervision;
mod sync;
mod team;
mod vault;

pub use case::supervision::{
    Assignment, Comment, Debrief, DebriefState, Escalation, EscalationSource,
    HandoverNote as CaseHandoverNote, Receipt, ReceiptMode, ReviewState,
};
pub use case::{Case, Contact, Followup, HistoryEntry, NewCase};
pub use duty::{DutySlot, HandoverNote, Line, LineKind, NewDuty, NewLine, OnCall, TeamSettings};
pub use enroll::{JoinKeys, PendingEnrollment, Team};
pub use error::{Error, Result};
pub use facts::Fact;
pub use handbook::{Handbook, HandbookSource, Section};
pub use heartbridge_proto as proto;
pub use lesson::{
    BlobTransport, ChunkRef, FetchPlan, FetchReport, LessonInfo, LessonRange, LessonStats,
    LinkPolicy,
};
pub use local::{Bookmark, Shift};
pub use model::{format_ms, now_ms, Channel, DocId, DocKind, Group, Risk, Status};
pub use ops::{CaseFilter, CaseSummary, CaseUpdate, HandbookSummary, Imported};
pub use receipts::ReceiptLevels;
pub use relays::{normalize_relay_url, RelayEntry, RelayKind};
pub use search::Hit;
pub use stats::{Dim, Measures, Stats, StatsCell, StatsQuery};
pub use store::{OutboxItem, Profile, Store, Written, DB_FILE};
pub use sync::{
    Progress, RefusedCount, SyncOptions, SyncReport, SyncSession, SyncStatus, Transport,
    TransportError, MAX_PUSH_ENVELOPES, PART_BYTES,
};
pub use team::{erase_profile, RosterEntry};
pub use vault::{testing, KdfParams, Protection, Unlock, DEFAULT_MAX_FAILED, KEYS_FILE};

/// Merge rules and document functions, for tests and tools that work on
/// Automerge documents directly.
pub mod docs {
    pub use crate::case::{add_contact, create, edit_contact, read as read_case, risk, set_risk};
    pub use crate::handbook::{parse as parse_handbook, read as read_handbook, split_sections};
}
