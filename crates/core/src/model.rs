//! The volunteers' vocabulary: key groups, risk levels, case status, contact
//! channels, and the ids of documents. Spellings here are the CLI and JSON
//! contract; do not change them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $field:literal, $($variant:ident => $spelling:literal),+ $(,)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $spelling)] $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The allowed spellings, for error messages.
            pub const SPELLINGS: &'static str = concat!($($spelling, " "),+);

            /// The spelling used on the command line and in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $spelling),+ }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s.trim() {
                    $($spelling => Ok($name::$variant),)+
                    other => Err(Error::InvalidValue {
                        field: $field,
                        value: other.chars().take(40).collect(),
                        allowed: Self::SPELLINGS.trim_end(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// The key groups the teams track.
    Group, "group",
    LeftBehind => "left-behind",
    Migrant => "migrant",
    Disability => "disability",
    Hardship => "hardship",
    ExamStress => "exam-stress",
    EventVolunteer => "event-volunteer",
    Other => "other",
);

vocabulary!(
    /// Risk levels, ordered: a merge never lowers a concurrent higher value.
    Risk, "risk",
    None => "none",
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
);

vocabulary!(
    /// Where a case stands.
    Status, "status",
    Open => "open",
    Referred => "referred",
    Closed => "closed",
);

vocabulary!(
    /// How a contact happened.
    Channel, "channel",
    Hotline => "hotline",
    InPerson => "in-person",
    Online => "online",
);

vocabulary!(
    /// What a document holds.
    DocKind, "document kind",
    Case => "case",
    Handbook => "handbook",
    ShiftReport => "shift-report",
    TeamSettings => "team-settings",
    Grants => "grants",
    Facts => "facts",
);

/// A document id: 128 random bits, written as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocId(String);

impl DocId {
    /// A new random id.
    pub fn random() -> Self {
        let bytes: [u8; 16] = rand::random();
        DocId(hex::encode(bytes))
    }

    /// Parses an id the user typed; `what` names the thing for the error.
    pub fn parse(s: &str, what: &'static str) -> Result<Self, Error> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(DocId(s))
        } else {
            Err(Error::NotFound {
                what,
                id: s.chars().take(40).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 text for a millisecond timestamp.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_bad_values_name_the_choices() {
        for g in Group::ALL {
            assert_eq!(g.as_str().parse::<Group>().ok(), Some(*g));
        }
        let err = "severe".parse::<Risk>().unwrap_err().to_string();
        assert!(err.contains("none low medium high critical"), "{err}");
        assert!(Risk::Critical > Risk::High && Risk::Low > Risk::None);
    }

    #[test]
    fn doc_ids_are_random_hex() {
        let a = DocId::random();
        assert_ne!(a, DocId::random());
        assert_eq!(DocId::parse(&a.as_str().to_uppercase(), "case").unwrap(), a);
        assert!(DocId::parse("nope", "case").is_err());
    }
}
