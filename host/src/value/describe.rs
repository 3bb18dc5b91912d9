//! How error messages show values and types: short, and in WIT's words.

use std::fmt::Write as _;

use rmpv::Value;
use wasmtime::component::types::Type;

/// `a`, `b`, `c` — for lists of names in error messages.
pub(super) fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "`{name}`");
    }
    out
}

/// A short description of a MessagePack value for error messages: its kind,
/// and the value itself when that is short.
pub(super) fn describe_value(value: &Value) -> String {
    match value {
        Value::Nil => "nil".to_owned(),
        Value::Boolean(b) => format!("bool {b}"),
        Value::Integer(n) => format!("integer {n}"),
        Value::F32(f) => format!("float {f}"),
        Value::F64(f) => format!("float {f}"),
        Value::String(s) => match s.as_str() {
            Some(s) if s.chars().count() <= 40 => format!("string {s:?}"),
            Some(s) => format!("string of {} characters", s.chars().count()),
            None => "string with invalid UTF-8".to_owned(),
        },
        Value::Binary(b) => format!("bin of {} bytes", b.len()),
        Value::Array(items) => format!("array of {} elements", items.len()),
        Value::Map(entries) => format!("map of {} entries", entries.len()),
        Value::Ext(tag, data) => format!("ext type {tag} of {} bytes", data.len()),
    }
}

/// A WIT-like rendering of a type for error messages, e.g. `list<u8>` or
/// `record { name, age }`; nesting beyond a few levels is elided.
pub(super) fn describe_type(ty: &Type) -> String {
    let mut out = String::new();
    write_type(&mut out, ty, 0);
    out
}

fn write_type(out: &mut String, ty: &Type, depth: usize) {
    if depth > 2 {
        out.push('…');
        return;
    }
    let inner = |out: &mut String, ty: &Type| write_type(out, ty, depth + 1);
    match ty {
        Type::List(list) => {
            out.push_str("list<");
            inner(out, &list.ty());
            out.push('>');
        }
        Type::FixedLengthList(list) => {
            out.push_str("list<");
            inner(out, &list.ty());
            let _ = write!(out, ", {}>", list.len());
        }
        Type::Map(map) => {
            out.push_str("map<");
            inner(out, &map.key());
            out.push_str(", ");
            inner(out, &map.value());
            out.push('>');
        }
        Type::Option(option) => {
            out.push_str("option<");
            inner(out, &option.ty());
            out.push('>');
        }
        Type::Result(result) => {
            out.push_str("result<");
            match result.ok() {
                Some(ok) => inner(out, &ok),
                None => out.push('_'),
            }
            out.push_str(", ");
            match result.err() {
                Some(err) => inner(out, &err),
                None => out.push('_'),
            }
            out.push('>');
        }
        Type::Tuple(tuple) => {
            out.push_str("tuple<");
            for (i, ty) in tuple.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inner(out, &ty);
            }
            out.push('>');
        }
        Type::Record(record) => write_names(out, "record", record.fields().map(|f| f.name)),
        Type::Variant(variant) => write_names(out, "variant", variant.cases().map(|c| c.name)),
        Type::Enum(en) => write_names(out, "enum", en.names()),
        Type::Flags(flags) => write_names(out, "flags", flags.names()),
        other => out.push_str(scalar_name(other)),
    }
}

fn write_names<'a>(out: &mut String, kind: &str, names: impl Iterator<Item = &'a str>) {
    out.push_str(kind);
    out.push_str(" {");
    for (i, name) in names.enumerate() {
        if i == 8 {
            out.push_str(", …");
            break;
        }
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(name);
    }
    out.push_str(" }");
}

/// The WIT name of a type that has no type parameters worth showing.
pub(super) fn scalar_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) | Type::FixedLengthList(_) => "list",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Tuple(_) => "tuple",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum",
        Type::Option(_) => "option",
        Type::Result(_) => "result",
        Type::Flags(_) => "flags",
        Type::Own(_) => "own<resource>",
        Type::Borrow(_) => "borrow<resource>",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
    }
}
