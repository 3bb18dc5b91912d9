//! Component values → MessagePack.
//!
//! A [`Val`] carries no type, so encoding follows the value alone; the shapes
//! match what `decode` accepts (see the table in the module above).

use rmpv::Value;
use wasmtime::component::Val;

use super::{MAX_DEPTH, ValueError};

/// Encodes `val`; `depth` is how many containers enclose it.
pub(super) fn encode(val: &Val, depth: usize) -> Result<Value, ValueError> {
    if depth >= MAX_DEPTH {
        return Err(ValueError::too_deep());
    }
    let depth = depth + 1;
    Ok(match val {
        Val::Bool(b) => Value::Boolean(*b),
        Val::S8(n) => Value::from(*n),
        Val::U8(n) => Value::from(*n),
        Val::S16(n) => Value::from(*n),
        Val::U16(n) => Value::from(*n),
        Val::S32(n) => Value::from(*n),
        Val::U32(n) => Value::from(*n),
        Val::S64(n) => Value::from(*n),
        Val::U64(n) => Value::from(*n),
        Val::Float32(f) => Value::F32(*f),
        Val::Float64(f) => Value::F64(*f),
        Val::Char(c) => Value::from(c.to_string()),
        Val::String(s) => Value::from(s.as_str()),
        Val::List(items) | Val::FixedLengthList(items) => encode_list(items, depth)?,
        Val::Tuple(items) => Value::Array(encode_elements(items, depth)?),
        Val::Map(entries) => encode_map(entries, depth)?,
        Val::Record(fields) => Value::Map(
            fields
                .iter()
                .map(|(name, v)| {
                    let v = encode(v, depth).map_err(|e| e.within(format_args!(".{name}")))?;
                    Ok((Value::from(name.as_str()), v))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
        Val::Variant(name, payload) => match payload {
            None => Value::from(name.as_str()),
            Some(payload) => tagged(name, Some(payload), depth)?,
        },
        Val::Enum(name) => Value::from(name.as_str()),
        Val::Option(None) => Value::Nil,
        // Only a nested option needs the {"some": ...} wrapper: everything
        // else encodes to something other than nil.
        Val::Option(Some(inner)) => match **inner {
            Val::Option(_) => tagged("some", Some(inner), depth)?,
            _ => encode(inner, depth)?,
        },
        Val::Result(Ok(payload)) => tagged("ok", payload.as_deref(), depth)?,
        Val::Result(Err(payload)) => tagged("err", payload.as_deref(), depth)?,
        Val::Flags(names) => Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect()),
        Val::Resource(_) => return Err(ValueError::not_transferable("resource")),
        Val::Future(_) => return Err(ValueError::not_transferable("future")),
        Val::Stream(_) => return Err(ValueError::not_transferable("stream")),
        Val::ErrorContext(_) => return Err(ValueError::not_transferable("error-context")),
    })
}

/// `list<u8>` travels as `bin`; every other list as an array.
fn encode_list(items: &[Val], depth: usize) -> Result<Value, ValueError> {
    let bytes: Option<Vec<u8>> = items
        .iter()
        .map(|v| match v {
            Val::U8(b) => Some(*b),
            _ => None,
        })
        .collect();
    match bytes {
        Some(bytes) if !bytes.is_empty() => Ok(Value::Binary(bytes)),
        _ => encode_elements(items, depth).map(Value::Array),
    }
}

fn encode_elements(items: &[Val], depth: usize) -> Result<Vec<Value>, ValueError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| encode(v, depth).map_err(|e| e.within(format_args!("[{i}]"))))
        .collect()
}

fn encode_map(entries: &[(Val, Val)], depth: usize) -> Result<Value, ValueError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let key = encode(k, depth).map_err(|e| e.within(format_args!("[entry {i} key]")))?;
            let val = encode(v, depth).map_err(|e| e.within(format_args!("[entry {i}]")))?;
            Ok((key, val))
        })
        .collect::<Result<_, ValueError>>()
        .map(Value::Map)
}

/// `{"name": payload}`, with nil for a missing payload.
fn tagged(name: &str, payload: Option<&Val>, depth: usize) -> Result<Value, ValueError> {
    let payload = match payload {
        Some(v) => encode(v, depth).map_err(|e| e.within(format_args!(".{name}")))?,
        None => Value::Nil,
    };
    Ok(Value::Map(vec![(Value::from(name), payload)]))
}
