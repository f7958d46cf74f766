//! Small typed readers over Automerge values, shared by the document kinds.

use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value};

pub(crate) fn scalar(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok().flatten() {
        Some((Value::Scalar(s), _)) => Some(s.into_owned()),
        _ => None,
    }
}

pub(crate) fn string(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match scalar(doc, obj, key)? {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

pub(crate) fn int(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    match scalar(doc, obj, key)? {
        ScalarValue::Int(i) => Some(i),
        ScalarValue::Uint(u) => i64::try_from(u).ok(),
        ScalarValue::Timestamp(t) => Some(t),
        ScalarValue::Counter(c) => Some(i64::from(&c)),
        _ => None,
    }
}

pub(crate) fn boolean(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<bool> {
    match scalar(doc, obj, key)? {
        ScalarValue::Boolean(b) => Some(b),
        _ => None,
    }
}

/// The text of a Text object under `key` (or a plain string value).
pub(crate) fn text(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The object id under `key` if it is an object of type `ty`.
pub(crate) fn object(doc: &AutoCommit, obj: &ObjId, key: &str, ty: ObjType) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Object(t), id) if t == ty => Some(id),
        _ => None,
    }
}

/// Every string value currently held under `key`, conflicts included.
pub(crate) fn all_strings(doc: &AutoCommit, obj: &ObjId, key: &str) -> Vec<String> {
    doc.get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, _)| match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Puts a string only if it differs, so an unchanged field makes no op.
pub(crate) fn put_str_if_changed(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    value: &str,
) -> Result<(), automerge::AutomergeError> {
    use automerge::transaction::Transactable;
    if string(doc, obj, key).as_deref() != Some(value) {
        doc.put(obj, key, value)?;
    }
    Ok(())
}
