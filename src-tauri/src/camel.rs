//! The UI's contract spells keys in camelCase; core serializes snake_case.
//! One pure conversion at the boundary keeps commands to a line or two.

use serde::Serialize;
use serde_json::Value;

fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut up = false;
    for c in key.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn convert(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (camel(&k), convert(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(convert).collect()),
        other => other,
    }
}

/// Serializes `value` with camelCase keys.
pub fn to_ui<T: Serialize>(value: &T) -> Value {
    convert(serde_json::to_value(value).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_camel_case_values_do_not() {
        let v = serde_json::json!({"risk_conflict": true, "contacts": [{"at_ms": 1, "text": "a_b"}], "handbook_id": "x"});
        assert_eq!(
            convert(v),
            serde_json::json!({"riskConflict": true, "contacts": [{"atMs": 1, "text": "a_b"}], "handbookId": "x"})
        );
    }
}
