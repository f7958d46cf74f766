//! Unsaved drafts of a case page's forms (the contact note and the
//! follow-up), handed over by the UI before it locks so that a note the
//! volunteer was still typing survives the lock. They are kept inside the
//! encrypted profile, in core's device-local `settings` table (never
//! synced), under `draft:<case id>:<form>`; the UI's DOM holds no note text
//! while locked.

use heartbridge_core::{DocKind, Store};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

/// The forms of a case page that keep a draft.
pub const FORMS: [&str; 2] = ["contact", "followup"];
/// A draft's size limit as stored (JSON bytes): far above any note.
pub const MAX_DRAFT_BYTES: usize = 256 * 1024;

fn key(case: &str, form: &str) -> String {
    format!("draft:{case}:{form}")
}

fn check_form(form: &str) -> ApiResult<()> {
    if FORMS.contains(&form) {
        Ok(())
    } else {
        Err(ApiError::new(
            "invalid_input",
            "form must be contact or followup",
        ))
    }
}

/// Keeps `draft` (a JSON object of the form's fields) for the case, or
/// forgets it when `draft` is null or has nothing typed.
pub fn save(store: &mut Store, case: &str, form: &str, draft: &Value) -> ApiResult<()> {
    check_form(form)?;
    let id = store.resolve(DocKind::Case, case)?;
    let value = match draft {
        Value::Null => String::new(),
        Value::Object(_) => {
            let s = draft.to_string();
            if s.len() > MAX_DRAFT_BYTES {
                return Err(ApiError::new(
                    "invalid_input",
                    format!("a draft is at most {MAX_DRAFT_BYTES} bytes"),
                ));
            }
            s
        }
        _ => {
            return Err(ApiError::new(
                "invalid_input",
                "a draft is an object of the form's fields, or null",
            ))
        }
    };
    // There is no delete in core's settings: an empty value is "no draft".
    store.set_setting(&key(&id.to_string(), form), &value)?;
    Ok(())
}

/// `{contact, followup}`: each form's kept draft, or null.
pub fn get(store: &mut Store, case: &str) -> ApiResult<Value> {
    let id = store.resolve(DocKind::Case, case)?.to_string();
    let mut out = serde_json::Map::new();
    for form in FORMS {
        let v = store
            .setting(&key(&id, form))?
            .filter(|s| !s.is_empty())
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .unwrap_or(Value::Null);
        out.insert(form.to_owned(), v);
    }
    Ok(Value::Object(out))
}

/// Forgets a form's draft (it was saved as a record).
pub fn clear(store: &mut Store, case: &str, form: &str) -> ApiResult<()> {
    save(store, case, form, &json!(null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use heartbridge_core::{Group, NewCase, Risk};

    fn store(dir: &std::path::Path) -> Store {
        Store::init(
            &dir.join("p"),
            "陈静",
            &heartbridge_core::testing::protection(),
        )
        .unwrap()
    }

    fn case(s: &mut Store) -> String {
        s.new_case(&NewCase {
            alias: "小北".into(),
            group: Group::Other,
            risk: Risk::Low,
        })
        .unwrap()
        .to_string()
    }

    #[test]
    fn a_draft_is_kept_inside_the_profile_across_a_close_and_cleared_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let id = case(&mut s);
        let note = "还没写完的记录：她说最近睡不着";
        save(
            &mut s,
            &id,
            "contact",
            &json!({"channel": "hotline", "minutes": 12, "text": note}),
        )
        .unwrap();
        // Nothing queued for the team: a draft is device-local.
        assert_eq!(s.outbox_len().unwrap(), 1, "only the case itself waits");
        drop(s);

        // The store closed (the lock) and opened again with the PIN.
        let mut s =
            Store::open(&dir.path().join("p"), &heartbridge_core::testing::unlock()).unwrap();
        let got = get(&mut s, &id).unwrap();
        assert_eq!(got["contact"]["text"], note);
        assert_eq!(got["contact"]["minutes"], 12);
        assert_eq!(got["followup"], Value::Null);
        // A short id (as the UI's routes use) finds the same case.
        assert_eq!(get(&mut s, &id[..8]).unwrap()["contact"]["text"], note);

        clear(&mut s, &id, "contact").unwrap();
        assert_eq!(get(&mut s, &id).unwrap()["contact"], Value::Null);
    }

    #[test]
    fn drafts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let id = case(&mut s);
        let e = save(&mut s, &id, "alias", &json!({})).unwrap_err();
        assert_eq!(e.kind, "invalid_input");
        let e = save(&mut s, &id, "contact", &json!("text")).unwrap_err();
        assert_eq!(e.kind, "invalid_input");
        let big = "字".repeat(MAX_DRAFT_BYTES);
        let e = save(&mut s, &id, "contact", &json!({ "text": big })).unwrap_err();
        assert_eq!(e.kind, "invalid_input");
        assert!(!e.message.contains('字'), "the note reached the error");
        let e = save(&mut s, "ffffffff", "contact", &json!({"text": "x"})).unwrap_err();
        assert_eq!(e.kind, "not_found");
    }
}
