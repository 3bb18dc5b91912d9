//! MessagePack → JSON, for printing results (`wash call`, logs).

use rmpv::Value;
use serde_json::Value as Json;

/// How deep [`to_json`] follows nesting before printing a placeholder; far
/// more than [`super::MAX_DEPTH`], so it only ever cuts hostile input.
const JSON_DEPTH: usize = 256;

/// Renders a MessagePack value as JSON for people to read.
///
/// `bin` becomes a string when it is valid UTF-8 and an array of byte values
/// otherwise; `ext` becomes `{"ext": type, "data": [bytes]}`; map keys that
/// are not strings are written as their JSON text (`1`, `true`, `null`);
/// non-finite floats become the strings `"NaN"`, `"inf"` and `"-inf"`.
pub fn to_json(value: &Value) -> Json {
    convert(value, 0)
}

fn convert(value: &Value, depth: usize) -> Json {
    if depth > JSON_DEPTH {
        return Json::String("…(nested too deep)".to_owned());
    }
    match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Json::from(i),
            (None, Some(u)) => Json::from(u),
            (None, None) => Json::String(n.to_string()),
        },
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::String(s) => Json::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Value::Binary(bytes) => bytes_to_json(bytes),
        Value::Array(items) => Json::Array(items.iter().map(|v| convert(v, depth + 1)).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (key_text(k, depth), convert(v, depth + 1)))
                .collect(),
        ),
        Value::Ext(tag, data) => serde_json::json!({"ext": tag, "data": data}),
    }
}

fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".to_owned()),
        None if f > 0.0 => Json::String("inf".to_owned()),
        None => Json::String("-inf".to_owned()),
    }
}

fn bytes_to_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_owned()),
        Err(_) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
    }
}

/// JSON object keys are strings: a string key stays as it is, anything else
/// is written as its JSON text.
fn key_text(key: &Value, depth: usize) -> String {
    match convert(key, depth + 1) {
        Json::String(s) => s,
        other => other.to_string(),
    }
}
