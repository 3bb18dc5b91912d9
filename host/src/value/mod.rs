//! Values crossing the lattice: the one codec between component-model values
//! and MessagePack.
//!
//! A call across the lattice carries its parameters as a MessagePack array.
//! The host that runs the target component decodes each element guided by the
//! exported function's parameter types ([`decode_params`]) and sends the
//! results back encoded ([`encode_vals`]). The same codec runs the other way
//! when a component's import is forwarded over NATS: the host encodes the
//! values the guest passed and decodes the reply by the import's result types.
//! `wash call` builds its arguments from JSON with `rmpv::ext::to_value`, so
//! decoding also accepts what JSON naturally gives, and [`to_json`] prints
//! results back.
//!
//! ```
//! use trellis_host::value::{encode_val, to_json};
//! use wasmtime::component::Val;
//!
//! let point = Val::Record(vec![("x".into(), Val::S32(1)), ("y".into(), Val::S32(-2))]);
//! let wire = encode_val(&point)?;
//! assert_eq!(to_json(&wire), serde_json::json!({"x": 1, "y": -2}));
//! # Ok::<(), trellis_host::value::ValueError>(())
//! ```
//!
//! # Wire contract
//!
//! | WIT type | MessagePack |
//! |---|---|
//! | `bool` | bool |
//! | `s8`..`s64`, `u8`..`u64` | integer, range-checked on decode (an integral float such as `5.0` is accepted) |
//! | `f32`, `f64` | float (decoding also accepts integers) |
//! | `char` | string of exactly one character |
//! | `string` | string (must be valid UTF-8) |
//! | `list<u8>` | `bin`; decoding also accepts an array of integers, or a string (its UTF-8 bytes) |
//! | `list<T>` | array |
//! | `list<T, N>` | array of exactly `N` elements (`bin` for `u8`, as for lists) |
//! | `map<K, V>` | map (decoding a JSON object also parses string keys for integer `K`) |
//! | `record` | map keyed by field name (kebab-case, as declared in WIT); a missing field is an error unless its type is `option` (then `none`); unknown fields are an error |
//! | `tuple` | array of exactly the tuple's length |
//! | `variant` | case without payload: string `"case"`; with payload: single-entry map `{"case": payload}` (decoding also accepts `{"case": nil}` for a case without payload) |
//! | `enum` | string |
//! | `option<T>` | `none`: nil; `some(x)`: `x` itself |
//! | `option<option<T>>` | `none`: nil; `some(y)`: `{"some": y}`, so `some(none)` is `{"some": nil}`; decoding also accepts a bare `x` for `some(some(x))` |
//! | `result` | `ok(x)`: `{"ok": x}`, `err(e)`: `{"err": e}`, with nil for a missing payload (decoding also accepts the strings `"ok"` / `"err"` there) |
//! | `flags` | array of the names of the flags that are set |
//! | `own`, `borrow`, `future`, `stream`, `error-context` | not transferable: resources cannot cross the lattice, so both directions fail with [`ValueError::NotTransferable`] |
//!
//! Encoding is driven by the [`Val`] alone, which carries no type, so one
//! case is lossy: an *empty* `list<u8>` encodes as an empty array rather than
//! an empty `bin`. Decoders accept both, so this never breaks a round trip.
//!
//! Values may nest at most [`MAX_DEPTH`] levels (a bare scalar is one level,
//! a list of scalars two); deeper input is refused with
//! [`ValueError::TooDeep`] rather than risking the stack. Errors name
//! where they happened with a path such as `param 1.items[3].name`
//! (parameters and array indices count from 0).

mod decode;
mod describe;
mod encode;
mod json;
#[cfg(test)]
mod tests;

use rmpv::Value;
use wasmtime::component::Val;
use wasmtime::component::types::Type;

use describe::{describe_value, quoted};
pub use json::to_json;

/// How deeply values may nest (lists in lists, records in options, ...)
/// before the codec refuses them.
pub const MAX_DEPTH: usize = 64;

/// Why a value could not cross the lattice; the message names where
/// (`param 0.items[3].name`), what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The value has the wrong shape for the type.
    #[error("{path}: expected {expected}, found {found}")]
    Mismatch {
        /// Where in the value the problem is.
        path: String,
        /// The type, or the form of it, that was expected.
        expected: String,
        /// A short description of what was found instead.
        found: String,
    },
    /// An integer does not fit the WIT integer type.
    #[error("{path}: {value} is out of range for {ty}")]
    OutOfRange {
        /// Where in the value the problem is.
        path: String,
        /// The WIT integer type, e.g. `u8`.
        ty: &'static str,
        /// The number that was found.
        value: String,
    },
    /// A record field without an `option` type is absent.
    #[error("{path}: missing field `{field}`")]
    MissingField {
        /// Where the record is.
        path: String,
        /// The missing field's name.
        field: String,
    },
    /// A map given for a record has keys that are not its fields.
    #[error(
        "{path}: unknown field(s) {}; the record's fields are {}",
        quoted(.unknown),
        quoted(.known)
    )]
    UnknownFields {
        /// Where the record is.
        path: String,
        /// The keys that are not fields.
        unknown: Vec<String>,
        /// The record's fields.
        known: Vec<String>,
    },
    /// A name is not a case of the variant, enum or result, or not a flag.
    #[error("{path}: unknown {kind} `{name}`; expected one of {}", quoted(.known))]
    UnknownName {
        /// Where the value is.
        path: String,
        /// What the name should have been: "variant case", "enum case", "flag", ...
        kind: &'static str,
        /// The name that was found.
        name: String,
        /// The names that are allowed.
        known: Vec<String>,
    },
    /// A map has the same key twice.
    #[error("{path}: key {key} appears more than once")]
    DuplicateKey {
        /// Where the map is.
        path: String,
        /// The repeated key.
        key: String,
    },
    /// A tuple or fixed-length list has the wrong number of elements.
    #[error("{path}: expected {expected} elements, found {found}")]
    WrongLength {
        /// Where the array is.
        path: String,
        /// How many elements the type has.
        expected: usize,
        /// How many the array has.
        found: usize,
    },
    /// The type is a handle into one host's store (resource, future, stream,
    /// error context), which means nothing on another host.
    #[error(
        "{path}: {ty} is not transferable: resources cannot cross the lattice \
         (nor can futures, streams or error contexts); pass plain data instead"
    )]
    NotTransferable {
        /// Where the value is.
        path: String,
        /// The type that cannot be sent.
        ty: String,
    },
    /// The value nests deeper than [`MAX_DEPTH`].
    #[error("{path}: value nests more than {limit} levels deep")]
    TooDeep {
        /// Where the limit was hit.
        path: String,
        /// The limit, [`MAX_DEPTH`].
        limit: usize,
    },
    /// The parameters are not an array with one element per parameter.
    #[error("expected an array of {expected} parameter(s), found {found}")]
    ParamCount {
        /// How many parameters the function takes.
        expected: usize,
        /// A short description of what was found.
        found: String,
    },
}

impl ValueError {
    /// Puts `segment` in front of the error's path as it bubbles up a level.
    fn within(mut self, segment: impl std::fmt::Display) -> Self {
        if let Some(path) = self.path_mut() {
            *path = format!("{segment}{path}");
        }
        self
    }

    fn path_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::Mismatch { path, .. }
            | Self::OutOfRange { path, .. }
            | Self::MissingField { path, .. }
            | Self::UnknownFields { path, .. }
            | Self::UnknownName { path, .. }
            | Self::DuplicateKey { path, .. }
            | Self::WrongLength { path, .. }
            | Self::NotTransferable { path, .. }
            | Self::TooDeep { path, .. } => Some(path),
            Self::ParamCount { .. } => None,
        }
    }

    fn mismatch(expected: impl Into<String>, found: &Value) -> Self {
        Self::Mismatch {
            path: String::new(),
            expected: expected.into(),
            found: describe_value(found),
        }
    }

    fn too_deep() -> Self {
        Self::TooDeep {
            path: String::new(),
            limit: MAX_DEPTH,
        }
    }

    fn not_transferable(ty: impl Into<String>) -> Self {
        Self::NotTransferable {
            path: String::new(),
            ty: ty.into(),
        }
    }
}

/// Decodes the MessagePack parameters of a call, one per entry of `types`.
///
/// `args` is normally an array with one element per parameter. A function
/// without parameters also accepts nil, and a function with one parameter
/// also accepts that parameter on its own (what `wash call` sends for a
/// single JSON argument); if a one-element array fails as the parameter list,
/// it is tried as the single parameter itself.
pub fn decode_params(args: &Value, types: &[Type]) -> Result<Vec<Val>, ValueError> {
    match (args, types) {
        (Value::Nil, []) => Ok(Vec::new()),
        (Value::Array(items), _) if items.len() == types.len() => {
            match decode_each_param(items, types) {
                Ok(vals) => Ok(vals),
                Err(first) => match types {
                    [only] => decode_param(args, only, 0)
                        .map(|val| vec![val])
                        .map_err(|_| first),
                    _ => Err(first),
                },
            }
        }
        (_, [only]) => Ok(vec![decode_param(args, only, 0)?]),
        (other, _) => Err(ValueError::ParamCount {
            expected: types.len(),
            found: describe_value(other),
        }),
    }
}

fn decode_each_param(items: &[Value], types: &[Type]) -> Result<Vec<Val>, ValueError> {
    items
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (item, ty))| decode_param(item, ty, i))
        .collect()
}

fn decode_param(value: &Value, ty: &Type, index: usize) -> Result<Val, ValueError> {
    decode::decode(value, ty, 0).map_err(|e| e.within(format_args!("param {index}")))
}

/// Decodes one MessagePack value as a value of the component type `ty`.
pub fn decode_val(value: &Value, ty: &Type) -> Result<Val, ValueError> {
    decode::decode(value, ty, 0).map_err(|e| e.within("value"))
}

/// Encodes one component value as MessagePack.
pub fn encode_val(val: &Val) -> Result<Value, ValueError> {
    encode::encode(val, 0).map_err(|e| e.within("value"))
}

/// Encodes a function's parameters or results as a MessagePack array.
pub fn encode_vals(vals: &[Val]) -> Result<Value, ValueError> {
    vals.iter()
        .enumerate()
        .map(|(i, val)| encode::encode(val, 0).map_err(|e| e.within(format_args!("value {i}"))))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}
