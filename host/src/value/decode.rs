//! MessagePack → component values, guided by the component type.
//!
//! Each function returns errors with an empty path; the caller one level up
//! prefixes its own segment (`.field`, `[3]`) as the error bubbles, so the
//! happy path never builds a path.

use rmpv::Value;
use wasmtime::component::Val;
use wasmtime::component::types::{
    Enum, FixedLengthList, Flags, List, Map, OptionType, Record, ResultType, Tuple, Type, Variant,
};

use super::describe::{describe_type, scalar_name};
use super::{MAX_DEPTH, ValueError};

/// Decodes `value` as `ty`; `depth` is how many containers enclose it.
pub(super) fn decode(value: &Value, ty: &Type, depth: usize) -> Result<Val, ValueError> {
    if depth >= MAX_DEPTH {
        return Err(ValueError::too_deep());
    }
    let depth = depth + 1;
    match ty {
        Type::Bool => match value {
            Value::Boolean(b) => Ok(Val::Bool(*b)),
            other => Err(ValueError::mismatch("bool", other)),
        },
        Type::S8 => integer(value, ty).map(Val::S8),
        Type::U8 => integer(value, ty).map(Val::U8),
        Type::S16 => integer(value, ty).map(Val::S16),
        Type::U16 => integer(value, ty).map(Val::U16),
        Type::S32 => integer(value, ty).map(Val::S32),
        Type::U32 => integer(value, ty).map(Val::U32),
        Type::S64 => integer(value, ty).map(Val::S64),
        Type::U64 => integer(value, ty).map(Val::U64),
        // Narrowing to f32 rounds, as any f64 → f32 conversion does.
        Type::Float32 => float(value, "f32").map(|f| Val::Float32(f as f32)),
        Type::Float64 => float(value, "f64").map(Val::Float64),
        Type::Char => character(value),
        Type::String => string(value, "string").map(|s| Val::String(s.to_owned())),
        Type::List(list) => decode_list(value, list, depth),
        Type::FixedLengthList(list) => decode_fixed_list(value, list, depth),
        Type::Map(map) => decode_map(value, map, depth),
        Type::Record(record) => decode_record(value, record, depth),
        Type::Tuple(tuple) => decode_tuple(value, tuple, depth),
        Type::Variant(variant) => decode_variant(value, variant, depth),
        Type::Enum(en) => decode_enum(value, en),
        Type::Option(option) => decode_option(value, option, depth),
        Type::Result(result) => decode_result(value, result, depth),
        Type::Flags(flags) => decode_flags(value, flags),
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            Err(ValueError::not_transferable(describe_type(ty)))
        }
    }
}

/// An integer of the WIT type `ty`, range-checked. Integral floats are
/// accepted because some JSON producers write `5.0` for `5`.
fn integer<T: TryFrom<i128>>(value: &Value, ty: &Type) -> Result<T, ValueError> {
    let name = scalar_name(ty);
    let wide: i128 = match value {
        Value::Integer(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i128::from(i),
            (None, Some(u)) => i128::from(u),
            (None, None) => return Err(out_of_range(name, n.to_string())),
        },
        Value::F32(f) => integral(f64::from(*f), value, name)?,
        Value::F64(f) => integral(*f, value, name)?,
        other => return Err(ValueError::mismatch(name, other)),
    };
    T::try_from(wide).map_err(|_| out_of_range(name, wide.to_string()))
}

/// A float that holds a whole number, as an integer.
fn integral(f: f64, value: &Value, name: &'static str) -> Result<i128, ValueError> {
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(ValueError::mismatch(name, value));
    }
    // Beyond ±2^64 nothing fits any WIT integer; stop before the cast.
    if f.abs() >= 18_446_744_073_709_551_616.0 {
        return Err(out_of_range(name, f.to_string()));
    }
    Ok(f as i128)
}

fn out_of_range(ty: &'static str, value: String) -> ValueError {
    ValueError::OutOfRange {
        path: String::new(),
        ty,
        value,
    }
}

fn float(value: &Value, name: &str) -> Result<f64, ValueError> {
    match value {
        Value::F32(f) => Ok(f64::from(*f)),
        Value::F64(f) => Ok(*f),
        Value::Integer(n) => n.as_f64().ok_or_else(|| ValueError::mismatch(name, value)),
        other => Err(ValueError::mismatch(name, other)),
    }
}

fn string<'a>(value: &'a Value, expected: &str) -> Result<&'a str, ValueError> {
    match value {
        Value::String(s) => s
            .as_str()
            .ok_or_else(|| ValueError::mismatch(format!("{expected} (valid UTF-8)"), value)),
        other => Err(ValueError::mismatch(expected, other)),
    }
}

fn character(value: &Value) -> Result<Val, ValueError> {
    let expected = "char (a string of one character)";
    let s = string(value, expected)?;
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(Val::Char(c)),
        _ => Err(ValueError::mismatch(expected, value)),
    }
}

fn decode_list(value: &Value, list: &List, depth: usize) -> Result<Val, ValueError> {
    let elem = list.ty();
    decode_elements(value, &elem, depth, || {
        describe_type(&Type::List(list.clone()))
    })
    .map(Val::List)
}

fn decode_fixed_list(
    value: &Value,
    list: &FixedLengthList,
    depth: usize,
) -> Result<Val, ValueError> {
    let elems = decode_elements(value, &list.ty(), depth, || {
        describe_type(&Type::FixedLengthList(list.clone()))
    })?;
    let expected = usize::try_from(list.len()).unwrap_or(usize::MAX);
    if elems.len() != expected {
        return Err(ValueError::WrongLength {
            path: String::new(),
            expected,
            found: elems.len(),
        });
    }
    Ok(Val::FixedLengthList(elems))
}

/// The elements of a list: an array, or for bytes also `bin` or a string.
fn decode_elements(
    value: &Value,
    elem: &Type,
    depth: usize,
    expected: impl FnOnce() -> String,
) -> Result<Vec<Val>, ValueError> {
    match (value, elem) {
        (Value::Binary(bytes), Type::U8) => Ok(bytes.iter().copied().map(Val::U8).collect()),
        (Value::String(s), Type::U8) => Ok(s.as_bytes().iter().copied().map(Val::U8).collect()),
        (Value::Array(items), _) => items
            .iter()
            .enumerate()
            .map(|(i, item)| decode(item, elem, depth).map_err(|e| e.within(format_args!("[{i}]"))))
            .collect(),
        (other, _) => Err(ValueError::mismatch(expected(), other)),
    }
}

fn decode_map(value: &Value, map: &Map, depth: usize) -> Result<Val, ValueError> {
    let Value::Map(entries) = value else {
        return Err(ValueError::mismatch(
            describe_type(&Type::Map(map.clone())),
            value,
        ));
    };
    let (key_ty, value_ty) = (map.key(), map.value());
    entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let key = decode_map_key(k, &key_ty, depth)
                .map_err(|e| e.within(format_args!("[entry {i} key]")))?;
            let val = decode(v, &value_ty, depth).map_err(|e| e.within(entry_segment(k, i)))?;
            Ok((key, val))
        })
        .collect::<Result<_, ValueError>>()
        .map(Val::Map)
}

/// JSON object keys are always strings, so a string key is parsed when the
/// map's key type is an integer.
fn decode_map_key(key: &Value, ty: &Type, depth: usize) -> Result<Val, ValueError> {
    let is_integer = matches!(
        ty,
        Type::S8 | Type::U8 | Type::S16 | Type::U16 | Type::S32 | Type::U32 | Type::S64 | Type::U64
    );
    if let (true, Some(text)) = (is_integer, key.as_str()) {
        if let Ok(n) = text.parse::<i64>() {
            return decode(&Value::from(n), ty, depth);
        }
        if let Ok(n) = text.parse::<u64>() {
            return decode(&Value::from(n), ty, depth);
        }
    }
    decode(key, ty, depth)
}

/// `["name"]` or `[5]` for a map entry, or `[entry 3]` when the key is not
/// printable in a line.
fn entry_segment(key: &Value, index: usize) -> String {
    match key {
        Value::String(s) if s.as_str().is_some_and(|s| s.len() <= 40) => {
            format!("[{:?}]", s.as_str().unwrap_or_default())
        }
        Value::Integer(n) => format!("[{n}]"),
        _ => format!("[entry {index}]"),
    }
}

fn decode_record(value: &Value, record: &Record, depth: usize) -> Result<Val, ValueError> {
    let expected = || describe_type(&Type::Record(record.clone()));
    let Value::Map(entries) = value else {
        return Err(ValueError::mismatch(
            format!("{} as a map", expected()),
            value,
        ));
    };
    let fields: Vec<_> = record.fields().collect();

    // Match every key to a field first, so that all unknown keys are
    // reported together and a repeated key is caught.
    let mut found: Vec<Option<&Value>> = vec![None; fields.len()];
    let mut unknown = Vec::new();
    for (key, val) in entries {
        let Some(name) = key.as_str() else {
            return Err(ValueError::mismatch(
                format!("{} with string keys", expected()),
                key,
            ));
        };
        match fields.iter().position(|f| f.name == name) {
            Some(i) if found[i].is_some() => {
                return Err(ValueError::DuplicateKey {
                    path: String::new(),
                    key: format!("{name:?}"),
                });
            }
            Some(i) => found[i] = Some(val),
            None => unknown.push(name.to_owned()),
        }
    }
    if !unknown.is_empty() {
        return Err(ValueError::UnknownFields {
            path: String::new(),
            unknown,
            known: fields.iter().map(|f| f.name.to_owned()).collect(),
        });
    }

    fields
        .iter()
        .zip(found)
        .map(|(field, val)| {
            let decoded = match (val, &field.ty) {
                (Some(val), ty) => {
                    decode(val, ty, depth).map_err(|e| e.within(format_args!(".{}", field.name)))?
                }
                (None, Type::Option(_)) => Val::Option(None),
                (None, _) => {
                    return Err(ValueError::MissingField {
                        path: String::new(),
                        field: field.name.to_owned(),
                    });
                }
            };
            Ok((field.name.to_owned(), decoded))
        })
        .collect::<Result<_, ValueError>>()
        .map(Val::Record)
}

fn decode_tuple(value: &Value, tuple: &Tuple, depth: usize) -> Result<Val, ValueError> {
    let Value::Array(items) = value else {
        return Err(ValueError::mismatch(
            describe_type(&Type::Tuple(tuple.clone())),
            value,
        ));
    };
    if items.len() != tuple.types().len() {
        return Err(ValueError::WrongLength {
            path: String::new(),
            expected: tuple.types().len(),
            found: items.len(),
        });
    }
    items
        .iter()
        .zip(tuple.types())
        .enumerate()
        .map(|(i, (item, ty))| {
            decode(item, &ty, depth).map_err(|e| e.within(format_args!("[{i}]")))
        })
        .collect::<Result<_, ValueError>>()
        .map(Val::Tuple)
}

/// A case name with its payload, if given as `{"case": payload}`.
fn tagged(value: &Value) -> Option<(&str, Option<&Value>)> {
    match value {
        Value::String(s) => s.as_str().map(|name| (name, None)),
        Value::Map(entries) => match entries.as_slice() {
            [(key, payload)] => key.as_str().map(|name| (name, Some(payload))),
            _ => None,
        },
        _ => None,
    }
}

/// Decodes a case's payload: `ty` is the case's payload type, `payload` what
/// was sent. A case without payload accepts nil or nothing.
fn decode_payload(
    name: &str,
    ty: Option<Type>,
    payload: Option<&Value>,
    depth: usize,
) -> Result<Option<Box<Val>>, ValueError> {
    match (ty, payload) {
        (Some(ty), Some(payload)) => decode(payload, &ty, depth)
            .map(|v| Some(Box::new(v)))
            .map_err(|e| e.within(format_args!(".{name}"))),
        (Some(ty), None) => Err(ValueError::Mismatch {
            path: String::new(),
            expected: format!("{{\"{name}\": {}}}", describe_type(&ty)),
            found: format!("string {name:?} without a payload"),
        }),
        (None, None | Some(Value::Nil)) => Ok(None),
        (None, Some(other)) => Err(ValueError::mismatch(
            format!("nil: case `{name}` has no payload"),
            other,
        )
        .within(format_args!(".{name}"))),
    }
}

fn decode_variant(value: &Value, variant: &Variant, depth: usize) -> Result<Val, ValueError> {
    let Some((name, payload)) = tagged(value) else {
        return Err(ValueError::mismatch(
            format!(
                "{} as \"case\" or {{\"case\": payload}}",
                describe_type(&Type::Variant(variant.clone()))
            ),
            value,
        ));
    };
    let Some(case) = variant.cases().find(|c| c.name == name) else {
        return Err(ValueError::UnknownName {
            path: String::new(),
            kind: "variant case",
            name: name.to_owned(),
            known: variant.cases().map(|c| c.name.to_owned()).collect(),
        });
    };
    let payload = decode_payload(name, case.ty, payload, depth)?;
    Ok(Val::Variant(name.to_owned(), payload))
}

fn decode_enum(value: &Value, en: &Enum) -> Result<Val, ValueError> {
    let name = string(value, &describe_type(&Type::Enum(en.clone())))?;
    if en.names().any(|n| n == name) {
        return Ok(Val::Enum(name.to_owned()));
    }
    Err(ValueError::UnknownName {
        path: String::new(),
        kind: "enum case",
        name: name.to_owned(),
        known: en.names().map(str::to_owned).collect(),
    })
}

fn decode_option(value: &Value, option: &OptionType, depth: usize) -> Result<Val, ValueError> {
    if let Value::Nil = value {
        return Ok(Val::Option(None));
    }
    let inner = option.ty();
    // For option<option<T>>, `some(y)` travels as {"some": y} so that
    // some(none) stays distinct from none.
    let value = match (&inner, value) {
        (Type::Option(_), Value::Map(entries)) => match entries.as_slice() {
            [(key, payload)] if key.as_str() == Some("some") => payload,
            _ => value,
        },
        _ => value,
    };
    decode(value, &inner, depth).map(|v| Val::Option(Some(Box::new(v))))
}

fn decode_result(value: &Value, result: &ResultType, depth: usize) -> Result<Val, ValueError> {
    let expected = || {
        format!(
            "{} as {{\"ok\": value}} or {{\"err\": value}}",
            describe_type(&Type::Result(result.clone()))
        )
    };
    let Some((name, payload)) = tagged(value) else {
        return Err(ValueError::mismatch(expected(), value));
    };
    match name {
        "ok" => decode_payload(name, result.ok(), payload, depth).map(|v| Val::Result(Ok(v))),
        "err" => decode_payload(name, result.err(), payload, depth).map(|v| Val::Result(Err(v))),
        other => Err(ValueError::UnknownName {
            path: String::new(),
            kind: "result case",
            name: other.to_owned(),
            known: vec!["ok".to_owned(), "err".to_owned()],
        }),
    }
}

fn decode_flags(value: &Value, flags: &Flags) -> Result<Val, ValueError> {
    let Value::Array(items) = value else {
        return Err(ValueError::mismatch(
            format!(
                "{} as an array of flag names",
                describe_type(&Type::Flags(flags.clone()))
            ),
            value,
        ));
    };
    let mut set = vec![false; flags.names().len()];
    for (i, item) in items.iter().enumerate() {
        let name = string(item, "flag name").map_err(|e| e.within(format_args!("[{i}]")))?;
        match flags.names().position(|n| n == name) {
            Some(index) => set[index] = true,
            None => {
                return Err(ValueError::UnknownName {
                    path: format!("[{i}]"),
                    kind: "flag",
                    name: name.to_owned(),
                    known: flags.names().map(str::to_owned).collect(),
                });
            }
        }
    }
    // Canonical order: as declared, each flag once.
    let names = flags
        .names()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(name, _)| name.to_owned())
        .collect();
    Ok(Val::Flags(names))
}
