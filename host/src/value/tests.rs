//! The codec against real component types: a component compiled from WAT
//! exports one function per type under test, and the tests read the types
//! back from wasmtime rather than building them by hand.

use std::collections::HashMap;
use std::sync::OnceLock;

use rmpv::Value;
use serde_json::json;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};
use wasmtime::{Config, Engine};

use super::*;

/// How deeply the `deep` function's parameter nests lists: beyond
/// [`MAX_DEPTH`], so only the codec's limit can stop a deep value.
const DEEP_TYPE: usize = MAX_DEPTH + 6;

/// Named WIT types, exported so that functions may use them.
const NAMED_TYPES: &str = r#"
    (import "res" (type $res (sub resource)))
    (type $point-def (record (field "x" s32) (field "y" s32)))
    (export $point "point" (type $point-def))
    (type $color-def (enum "red" "green" "dark-blue"))
    (export $color "color" (type $color-def))
    (type $perms-def (flags "read" "write" "exec"))
    (export $perms "perms" (type $perms-def))
    (type $shape-def (variant (case "circle" f64) (case "rect" $point) (case "empty")))
    (export $shape "shape" (type $shape-def))
    (type $person-def (record
        (field "name" string)
        (field "age" u8)
        (field "nick-name" (option string))
        (field "tags" (list string))
        (field "home" $point)
        (field "favorite" $color)
        (field "avatar" (list u8))))
    (export $person "person" (type $person-def))
"#;

/// One exported function per type, `take-{name}: func(v: T, ...)`.
const PARAM_TYPES: &[(&str, &str)] = &[
    ("bool", "bool"),
    ("s8", "s8"),
    ("u8", "u8"),
    ("s16", "s16"),
    ("u16", "u16"),
    ("s32", "s32"),
    ("u32", "u32"),
    ("s64", "s64"),
    ("u64", "u64"),
    ("f32", "f32"),
    ("f64", "f64"),
    ("char", "char"),
    ("string", "string"),
    ("bytes", "(list u8)"),
    ("words", "(list u32)"),
    ("string-lists", "(list (list string))"),
    ("point", "$point"),
    ("person", "$person"),
    ("people", "(list $person)"),
    ("shape", "$shape"),
    ("color", "$color"),
    ("perms", "$perms"),
    ("opt", "(option u32)"),
    ("opt-opt", "(option (option u32))"),
    ("opt-point", "(option $point)"),
    ("res", "(result u32 (error string))"),
    ("res-bare", "(result)"),
    ("res-err", "(result (error string))"),
    ("tup", "(tuple u8 string bool)"),
    ("own", "(own $res)"),
    ("borrow", "(borrow $res)"),
    // The types below need component-model proposals switched on.
    ("scores", "(map string u32)"),
    ("names-by-id", "(map u32 string)"),
    ("triple", "(list u32 3)"),
    ("fut", "(future u32)"),
    ("strm", "(stream u8)"),
    ("err-ctx", "error-context"),
];

/// The parameter and result types of the fixture's functions, by name.
struct Fixture {
    params: HashMap<String, Vec<Type>>,
    results: HashMap<String, Vec<Type>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut config = Config::new();
        config
            .wasm_component_model_map(true)
            .wasm_component_model_fixed_length_lists(true)
            .wasm_component_model_async(true)
            .wasm_component_model_error_context(true);
        let engine = Engine::new(&config).unwrap();
        let component = Component::new(&engine, fixture_wat()).unwrap();
        let ty = component.component_type();
        let mut fixture = Fixture {
            params: HashMap::new(),
            results: HashMap::new(),
        };
        for (name, export) in ty.exports(&engine) {
            if let ComponentItem::ComponentFunc(func) = export.ty {
                let params = func.params().map(|(_, ty)| ty).collect();
                fixture.params.insert(name.to_owned(), params);
                fixture
                    .results
                    .insert(name.to_owned(), func.results().collect());
            }
        }
        fixture
    })
}

/// Builds the component. Every function also takes and returns a 17-field
/// tuple, which pushes both its parameters and its results into linear
/// memory: the core signature is then always `(param i32) (result i32)`, so
/// one core function serves them all (it is never called).
fn fixture_wat() -> String {
    let pad = format!("(tuple {})", ["u32"; 17].join(" "));
    let lift = r#"(canon lift (core func $core "f") (memory (core memory $core "mem")) (realloc (core func $core "realloc")))"#;
    let mut funcs = String::new();
    let deep = format!("{}u32{}", "(list ".repeat(DEEP_TYPE), ")".repeat(DEEP_TYPE));
    let params = PARAM_TYPES
        .iter()
        .map(|(name, ty)| (name.to_string(), ty.to_string()))
        .chain([("deep".to_owned(), deep)]);
    for (name, ty) in params {
        funcs.push_str(&format!(
            "(func ${name} (param \"v\" {ty}) (param \"pad\" {pad}) (result {pad}) {lift})\n\
             (export \"take-{name}\" (func ${name}))\n"
        ));
    }
    funcs.push_str(&format!(
        "(func $get-person (param \"pad\" {pad}) (result $person) {lift})\n\
         (export \"get-person\" (func $get-person))\n"
    ));
    format!(
        r#"(component
            {NAMED_TYPES}
            (core module $m
                (memory (export "mem") 1)
                (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
                (func (export "f") (param i32) (result i32) unreachable))
            (core instance $core (instantiate $m))
            {funcs})"#
    )
}

/// The type `name` in [`PARAM_TYPES`]: the parameter of `take-{name}`.
fn ty(name: &str) -> Type {
    fixture().params[&format!("take-{name}")][0].clone()
}

/// Decodes JSON the way `wash call` sends it.
fn from_json(name: &str, json: serde_json::Value) -> Result<Val, ValueError> {
    decode_val(&rmpv::ext::to_value(json).unwrap(), &ty(name))
}

/// Encodes, writes MessagePack bytes, reads them back and decodes.
fn through_the_wire(name: &str, val: &Val) -> Val {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &encode_val(val).unwrap()).unwrap();
    let wire = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
    decode_val(&wire, &ty(name)).unwrap()
}

fn string(s: &str) -> Val {
    Val::String(s.to_owned())
}

fn some(v: Val) -> Val {
    Val::Option(Some(Box::new(v)))
}

fn point(x: i32, y: i32) -> Val {
    Val::Record(vec![
        ("x".to_owned(), Val::S32(x)),
        ("y".to_owned(), Val::S32(y)),
    ])
}

fn person() -> Val {
    Val::Record(vec![
        ("name".to_owned(), string("Ada")),
        ("age".to_owned(), Val::U8(36)),
        ("nick-name".to_owned(), Val::Option(None)),
        (
            "tags".to_owned(),
            Val::List(vec![string("math"), string("engines")]),
        ),
        ("home".to_owned(), point(3, -4)),
        ("favorite".to_owned(), Val::Enum("dark-blue".to_owned())),
        (
            "avatar".to_owned(),
            Val::List(vec![Val::U8(0), Val::U8(255)]),
        ),
    ])
}

fn message(err: ValueError) -> String {
    err.to_string()
}

#[test]
fn every_kind_of_value_survives_the_wire() {
    let cases = [
        ("bool", Val::Bool(true)),
        ("s8", Val::S8(i8::MIN)),
        ("u8", Val::U8(u8::MAX)),
        ("s16", Val::S16(i16::MIN)),
        ("u16", Val::U16(u16::MAX)),
        ("s32", Val::S32(i32::MIN)),
        ("u32", Val::U32(u32::MAX)),
        ("s64", Val::S64(i64::MIN)),
        ("u64", Val::U64(u64::MAX)),
        ("f32", Val::Float32(1.5)),
        ("f64", Val::Float64(-2.25e300)),
        ("f64", Val::Float64(f64::NAN)),
        ("char", Val::Char('ß')),
        ("string", string("héllo 🌍")),
        (
            "bytes",
            Val::List(vec![Val::U8(1), Val::U8(2), Val::U8(250)]),
        ),
        ("bytes", Val::List(vec![])),
        ("words", Val::List(vec![Val::U32(7), Val::U32(8)])),
        (
            "string-lists",
            Val::List(vec![Val::List(vec![string("a")]), Val::List(vec![])]),
        ),
        ("point", point(1, 2)),
        ("person", person()),
        ("people", Val::List(vec![person(), person()])),
        (
            "shape",
            Val::Variant("circle".to_owned(), Some(Box::new(Val::Float64(2.0)))),
        ),
        (
            "shape",
            Val::Variant("rect".to_owned(), Some(Box::new(point(5, 6)))),
        ),
        ("shape", Val::Variant("empty".to_owned(), None)),
        ("color", Val::Enum("green".to_owned())),
        (
            "perms",
            Val::Flags(vec!["read".to_owned(), "exec".to_owned()]),
        ),
        ("perms", Val::Flags(vec![])),
        ("opt", Val::Option(None)),
        ("opt", some(Val::U32(9))),
        ("opt-opt", Val::Option(None)),
        ("opt-opt", some(Val::Option(None))),
        ("opt-opt", some(some(Val::U32(3)))),
        ("opt-point", some(point(0, 0))),
        ("res", Val::Result(Ok(Some(Box::new(Val::U32(1)))))),
        ("res", Val::Result(Err(Some(Box::new(string("nope")))))),
        ("res-bare", Val::Result(Ok(None))),
        ("res-bare", Val::Result(Err(None))),
        ("res-err", Val::Result(Ok(None))),
        (
            "tup",
            Val::Tuple(vec![Val::U8(1), string("two"), Val::Bool(false)]),
        ),
    ];
    for (name, val) in cases {
        assert_eq!(through_the_wire(name, &val), val, "{name}: {val:?}");
    }
}

#[test]
fn encoding_follows_the_wire_contract() {
    let to = |val: &Val| to_json(&encode_val(val).unwrap());
    assert_eq!(
        encode_val(&Val::List(vec![Val::U8(104), Val::U8(105)])).unwrap(),
        Value::Binary(b"hi".to_vec())
    );
    assert_eq!(encode_val(&Val::Char('x')).unwrap(), Value::from("x"));
    assert_eq!(
        to(&person()),
        json!({
            "name": "Ada", "age": 36, "nick-name": null, "tags": ["math", "engines"],
            "home": {"x": 3, "y": -4}, "favorite": "dark-blue", "avatar": [0, 255],
        })
    );
    assert_eq!(to(&Val::Variant("empty".to_owned(), None)), json!("empty"));
    assert_eq!(
        to(&Val::Variant(
            "circle".to_owned(),
            Some(Box::new(Val::Float64(1.0)))
        )),
        json!({"circle": 1.0})
    );
    assert_eq!(to(&some(Val::U32(4))), json!(4));
    assert_eq!(to(&Val::Option(None)), json!(null));
    assert_eq!(to(&some(Val::Option(None))), json!({"some": null}));
    assert_eq!(to(&some(some(Val::U32(4)))), json!({"some": 4}));
    assert_eq!(to(&Val::Result(Ok(None))), json!({"ok": null}));
    assert_eq!(
        to(&Val::Result(Err(Some(Box::new(string("e")))))),
        json!({"err": "e"})
    );
    assert_eq!(
        to(&Val::Flags(vec!["read".to_owned(), "write".to_owned()])),
        json!(["read", "write"])
    );
    assert_eq!(
        encode_vals(&[Val::U8(1), string("a")]).unwrap(),
        Value::Array(vec![Value::from(1), Value::from("a")])
    );
}

#[test]
fn json_shaped_input_decodes() {
    assert_eq!(
        from_json("u64", json!(u64::MAX)).unwrap(),
        Val::U64(u64::MAX)
    );
    assert_eq!(from_json("s8", json!(-128)).unwrap(), Val::S8(-128));
    assert_eq!(from_json("u16", json!(7.0)).unwrap(), Val::U16(7));
    assert_eq!(from_json("f32", json!(3)).unwrap(), Val::Float32(3.0));
    assert_eq!(from_json("f64", json!(0.5)).unwrap(), Val::Float64(0.5));
    assert_eq!(from_json("char", json!("é")).unwrap(), Val::Char('é'));
    assert_eq!(
        from_json("bytes", json!("hi")).unwrap(),
        Val::List(vec![Val::U8(104), Val::U8(105)])
    );
    assert_eq!(
        from_json("bytes", json!([1, 2])).unwrap(),
        Val::List(vec![Val::U8(1), Val::U8(2)])
    );
    let mut ada = json!({
        "name": "Ada", "age": 36, "tags": ["math", "engines"],
        "home": {"y": -4, "x": 3}, "favorite": "dark-blue", "avatar": [0, 255],
    });
    // `nick-name` is an option, so leaving it out means none.
    assert_eq!(from_json("person", ada.clone()).unwrap(), person());
    ada["nick-name"] = json!("Countess");
    let Val::Record(fields) = from_json("person", ada).unwrap() else {
        panic!("not a record")
    };
    assert_eq!(
        fields[2],
        ("nick-name".to_owned(), some(string("Countess")))
    );
    assert_eq!(
        from_json("shape", json!({"rect": {"x": 1, "y": 2}})).unwrap(),
        Val::Variant("rect".to_owned(), Some(Box::new(point(1, 2))))
    );
    assert_eq!(
        from_json("shape", json!({"empty": null})).unwrap(),
        Val::Variant("empty".to_owned(), None)
    );
    assert_eq!(
        from_json("perms", json!(["exec", "read", "exec"])).unwrap(),
        Val::Flags(vec!["read".to_owned(), "exec".to_owned()])
    );
    assert_eq!(
        from_json("opt-opt", json!(5)).unwrap(),
        some(some(Val::U32(5)))
    );
    assert_eq!(
        from_json("opt-opt", json!({"some": null})).unwrap(),
        some(Val::Option(None))
    );
    assert_eq!(
        from_json("res-bare", json!("ok")).unwrap(),
        Val::Result(Ok(None))
    );
    assert_eq!(
        from_json("res", json!({"err": "boom"})).unwrap(),
        Val::Result(Err(Some(Box::new(string("boom")))))
    );
    assert_eq!(
        from_json("tup", json!([1, "two", true])).unwrap(),
        Val::Tuple(vec![Val::U8(1), string("two"), Val::Bool(true)])
    );
}

#[test]
fn result_types_come_from_the_component_too() {
    let results = &fixture().results["get-person"];
    let wire = encode_vals(&[person()]).unwrap();
    assert_eq!(decode_params(&wire, results).unwrap(), vec![person()]);
}

#[test]
fn params_accept_an_array_nil_or_a_lone_value() {
    let two = [ty("u8"), ty("string")];
    let args = rmpv::ext::to_value(json!([1, "a"])).unwrap();
    assert_eq!(
        decode_params(&args, &two).unwrap(),
        vec![Val::U8(1), string("a")]
    );
    assert!(decode_params(&Value::Nil, &[]).unwrap().is_empty());
    assert!(
        decode_params(&Value::Array(vec![]), &[])
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        decode_params(&Value::from(3), &[ty("u8")]).unwrap(),
        vec![Val::U8(3)]
    );
    // A one-parameter list may come bare, even with a single element.
    let words = [ty("words")];
    for args in [json!([1, 2]), json!([[1, 2]])] {
        let args = rmpv::ext::to_value(args).unwrap();
        assert_eq!(
            decode_params(&args, &words).unwrap(),
            vec![Val::List(vec![Val::U32(1), Val::U32(2)])]
        );
    }
    let one = rmpv::ext::to_value(json!([7])).unwrap();
    assert_eq!(
        decode_params(&one, &words).unwrap(),
        vec![Val::List(vec![Val::U32(7)])]
    );
}

#[test]
fn wrong_parameter_count_is_refused() {
    let two = [ty("u8"), ty("string")];
    let err = decode_params(&Value::Array(vec![Value::from(1)]), &two).unwrap_err();
    assert!(
        matches!(err, ValueError::ParamCount { expected: 2, .. }),
        "{err}"
    );
    let err = decode_params(&Value::from(1), &[]).unwrap_err();
    assert!(
        matches!(err, ValueError::ParamCount { expected: 0, .. }),
        "{err}"
    );
}

#[test]
fn errors_carry_the_path_to_the_bad_value() {
    let args = rmpv::ext::to_value(json!([1, [{
        "name": "Ada", "age": 36, "tags": ["math", 7],
        "home": {"x": 3, "y": -4}, "favorite": "red", "avatar": [],
    }]]))
    .unwrap();
    let err = decode_params(&args, &[ty("u8"), ty("people")]).unwrap_err();
    assert_eq!(
        message(err),
        "param 1[0].tags[1]: expected string, found integer 7"
    );
}

#[test]
fn wrong_types_are_refused() {
    for (name, json) in [
        ("bool", json!(1)),
        ("u8", json!("1")),
        ("u8", json!(1.5)),
        ("f64", json!("1.0")),
        ("char", json!("ab")),
        ("char", json!("")),
        ("string", json!(["a"])),
        ("words", json!("abc")),
        ("point", json!([1, 2])),
        ("shape", json!(3)),
        ("shape", json!("circle")),
        ("shape", json!({"empty": 1})),
        ("perms", json!("read")),
        ("res", json!({"ok": 1, "err": "x"})),
        ("tup", json!({"0": 1})),
    ] {
        let err = from_json(name, json.clone()).unwrap_err();
        assert!(
            matches!(err, ValueError::Mismatch { .. }),
            "{name} {json}: {err}"
        );
    }
    let err = decode_val(&Value::Ext(1, vec![]), &ty("bytes")).unwrap_err();
    assert_eq!(
        message(err),
        "value: expected list<u8>, found ext type 1 of 0 bytes"
    );
}

#[test]
fn out_of_range_integers_name_the_type_and_value() {
    let err = from_json("u8", json!(256)).unwrap_err();
    assert_eq!(message(err), "value: 256 is out of range for u8");
    let err = from_json("u64", json!(-1)).unwrap_err();
    assert_eq!(message(err), "value: -1 is out of range for u64");
    let err = from_json("s8", json!(-129)).unwrap_err();
    assert!(
        matches!(err, ValueError::OutOfRange { ty: "s8", .. }),
        "{err}"
    );
    let err = from_json("bytes", json!([1, 300])).unwrap_err();
    assert_eq!(message(err), "value[1]: 300 is out of range for u8");
    let err = from_json("s64", json!(1e30)).unwrap_err();
    assert!(
        matches!(err, ValueError::OutOfRange { ty: "s64", .. }),
        "{err}"
    );
}

#[test]
fn record_fields_must_match() {
    let err = from_json("point", json!({"x": 1, "y": 2, "z": 3, "w": 4})).unwrap_err();
    assert_eq!(
        message(err),
        "value: unknown field(s) `w`, `z`; the record's fields are `x`, `y`"
    );
    let err = from_json("point", json!({"x": 1})).unwrap_err();
    assert_eq!(message(err), "value: missing field `y`");
    let twice = Value::Map(vec![
        (Value::from("x"), Value::from(1)),
        (Value::from("x"), Value::from(2)),
        (Value::from("y"), Value::from(3)),
    ]);
    let err = decode_val(&twice, &ty("point")).unwrap_err();
    assert!(matches!(err, ValueError::DuplicateKey { .. }), "{err}");
    let numbered = Value::Map(vec![(Value::from(1), Value::from(1))]);
    let err = decode_val(&numbered, &ty("point")).unwrap_err();
    assert!(matches!(err, ValueError::Mismatch { .. }), "{err}");
}

#[test]
fn unknown_names_are_refused() {
    let err = from_json("color", json!("purple")).unwrap_err();
    assert_eq!(
        message(err),
        "value: unknown enum case `purple`; expected one of `red`, `green`, `dark-blue`"
    );
    let err = from_json("shape", json!({"hexagon": 6})).unwrap_err();
    assert!(
        matches!(
            err,
            ValueError::UnknownName {
                kind: "variant case",
                ..
            }
        ),
        "{err}"
    );
    let err = from_json("perms", json!(["read", "sudo"])).unwrap_err();
    assert!(
        matches!(err, ValueError::UnknownName { kind: "flag", .. }),
        "{err}"
    );
    assert!(message(err).starts_with("value[1]: unknown flag `sudo`"));
    let err = from_json("res", json!({"maybe": 1})).unwrap_err();
    assert!(
        matches!(
            err,
            ValueError::UnknownName {
                kind: "result case",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn tuples_need_their_exact_length() {
    let err = from_json("tup", json!([1, "two"])).unwrap_err();
    assert_eq!(message(err), "value: expected 3 elements, found 2");
    let err = from_json("tup", json!([1, "two", true, 4])).unwrap_err();
    assert!(
        matches!(
            err,
            ValueError::WrongLength {
                expected: 3,
                found: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn resources_cannot_cross_the_lattice() {
    for name in ["own", "borrow"] {
        let err = decode_val(&Value::from(1), &ty(name)).unwrap_err();
        assert!(matches!(err, ValueError::NotTransferable { .. }), "{err}");
        assert!(message(err).contains("resources cannot cross the lattice"));
    }
}

#[test]
fn maps_and_fixed_length_lists_cross_too() {
    let scores = Val::Map(vec![
        (string("ada"), Val::U32(3)),
        (string("bob"), Val::U32(1)),
    ]);
    assert_eq!(through_the_wire("scores", &scores), scores);
    assert_eq!(
        from_json("scores", json!({"ada": 3, "bob": 1})).unwrap(),
        scores
    );
    // JSON object keys are strings; integer keys are parsed from them.
    assert_eq!(
        from_json("names-by-id", json!({"7": "ada"})).unwrap(),
        Val::Map(vec![(Val::U32(7), string("ada"))])
    );
    let err = from_json("scores", json!({"ada": "x"})).unwrap_err();
    assert_eq!(
        message(err),
        r#"value["ada"]: expected u32, found string "x""#
    );

    let triple = Val::FixedLengthList(vec![Val::U32(1), Val::U32(2), Val::U32(3)]);
    assert_eq!(through_the_wire("triple", &triple), triple);
    let err = from_json("triple", json!([1, 2])).unwrap_err();
    assert!(
        matches!(
            err,
            ValueError::WrongLength {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn futures_streams_and_error_contexts_cannot_cross_either() {
    for name in ["fut", "strm", "err-ctx"] {
        let err = decode_val(&Value::Nil, &ty(name)).unwrap_err();
        assert!(
            matches!(err, ValueError::NotTransferable { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // `levels` nested arrays, the innermost empty.
    let nest = |levels: usize| {
        let mut value = Value::Array(vec![]);
        for _ in 1..levels {
            value = Value::Array(vec![value]);
        }
        value
    };
    // The `deep` type allows more levels than MAX_DEPTH, so only the codec's
    // own limit stops the value.
    let deep = ty("deep");
    let at_limit = decode_val(&nest(MAX_DEPTH), &deep).unwrap();
    assert_eq!(encode_val(&at_limit).unwrap(), nest(MAX_DEPTH));
    let err = decode_val(&nest(MAX_DEPTH + 1), &deep).unwrap_err();
    assert!(
        matches!(
            err,
            ValueError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{err}"
    );

    let mut val = Val::List(vec![]);
    for _ in 0..MAX_DEPTH {
        val = Val::List(vec![val]);
    }
    let err = encode_val(&val).unwrap_err();
    assert!(matches!(err, ValueError::TooDeep { .. }), "{err}");

    // Hostile depth against a shallow type stops at the first mismatch.
    let err = decode_val(&nest(2_000), &ty("words")).unwrap_err();
    assert!(matches!(err, ValueError::Mismatch { .. }), "{err}");
}

#[test]
fn to_json_renders_every_messagepack_kind() {
    let value = Value::Map(vec![
        (Value::from("text"), Value::Binary(b"hi".to_vec())),
        (Value::from("raw"), Value::Binary(vec![0xff, 0])),
        (Value::from(1), Value::Ext(5, vec![1, 2])),
        (Value::Boolean(true), Value::F64(f64::INFINITY)),
        (
            Value::Nil,
            Value::Array(vec![Value::F32(0.5), Value::from(-3)]),
        ),
    ]);
    assert_eq!(
        to_json(&value),
        json!({
            "text": "hi",
            "raw": [255, 0],
            "1": {"ext": 5, "data": [1, 2]},
            "true": "inf",
            "null": [0.5, -3],
        })
    );
}

/// MessagePack values of any shape, with the field, case and flag names of
/// the fixture's types turning up often enough to get past the first check.
fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let name = prop_oneof![
        Just("x".to_owned()),
        Just("y".to_owned()),
        Just("name".to_owned()),
        Just("age".to_owned()),
        Just("tags".to_owned()),
        Just("home".to_owned()),
        Just("red".to_owned()),
        Just("dark-blue".to_owned()),
        Just("circle".to_owned()),
        Just("rect".to_owned()),
        Just("read".to_owned()),
        Just("ok".to_owned()),
        Just("err".to_owned()),
        ".{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f32>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        name.clone().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Binary),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(tag, data)| Value::Ext(tag, data)),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((name.clone().prop_map(Value::from), inner), 0..6)
                .prop_map(Value::Map),
        ]
    })
}

proptest::proptest! {
    /// Whatever a caller sends, decoding against every fixture type gives
    /// a value or an error; a decoded value encodes and decodes again.
    #[test]
    fn any_value_against_any_type_never_panics(value in any_value()) {
        for types in fixture().params.values() {
            for ty in types {
                if let Ok(val) = decode_val(&value, ty) {
                    let encoded = encode_val(&val).unwrap();
                    proptest::prop_assert!(decode_val(&encoded, ty).is_ok());
                }
            }
            let _ = decode_params(&value, types);
        }
        let _ = to_json(&value);
    }
}
