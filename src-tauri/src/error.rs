//! The one error type at the app boundary: `{kind, message}`, where `kind`
//! is stable for the UI to branch on and `message` is fit for a volunteer.
//! Messages come from core errors, which never carry note text or secrets.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiError {
    pub kind: String,
    pub message: String,
    /// For `invalid_input`: the field the error is about (core's name, e.g.
    /// `alias`, `contact text`, `minutes`), so a form can mark it. Absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind: kind.to_owned(),
            message: message.into(),
            field: None,
        }
    }

    pub fn no_profile() -> Self {
        ApiError::new(
            "profile_missing",
            "No profile on this device yet: create one or join a team first.",
        )
    }
}

impl From<heartbridge_core::Error> for ApiError {
    fn from(e: heartbridge_core::Error) -> Self {
        // A relay's refusal keeps its own kind (`revoked`, `wrong_key`,
        // `invite_used`, …) so the UI can say which in the volunteer's
        // language.
        let kind = match &e {
            heartbridge_core::Error::Relay { kind, .. } => kind.clone(),
            other => other.kind().to_owned(),
        };
        let field = match &e {
            heartbridge_core::Error::Empty { what } => Some((*what).to_owned()),
            heartbridge_core::Error::InvalidValue { field, .. } => Some((*field).to_owned()),
            _ => None,
        };
        ApiError {
            kind,
            message: e.to_string(),
            field,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_shape_is_pinned() {
        let e: ApiError = heartbridge_core::Error::NotFound {
            what: "case",
            id: "ab12".into(),
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "not_found", "message": "no case with id ab12: check the id with `heartbridge case list`"})
        );
        let e: ApiError = heartbridge_core::Error::Network {
            detail: "timed out".into(),
        }
        .into();
        assert_eq!(e.kind, "network");
    }

    #[test]
    fn an_invalid_field_is_named() {
        let e: ApiError = heartbridge_core::Error::Empty { what: "alias" }.into();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["field"].as_str()),
            (Some("invalid_input"), Some("alias"))
        );
        let e: ApiError = heartbridge_core::Error::InvalidValue {
            field: "minutes",
            value: "-5".into(),
            allowed: "a whole number from 0 to 1440",
        }
        .into();
        assert_eq!(e.field.as_deref(), Some("minutes"));
    }
}
