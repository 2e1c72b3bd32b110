//! Serde support for the pickle `Value`: the mapping table, leniency, error
//! messages, round trips, and the JSON bridge.

use std::collections::BTreeMap;
use std::fmt::Debug;

use ecci_proto::pickle::{BigInt, Bytes, Value, ValueError, from_value, to_value};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Meters(u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point(i32, i32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
    raw: Bytes,
    history: Vec<u8>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Poly { sides: u8, name: String },
    Nested(Inner),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Inner {
    A,
    B(Option<i64>),
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn big(i: i128) -> Value {
    Value::BigInt(BigInt::from_i128(i))
}

/// Asserts that `input` serializes to `expected` and deserializes back from it.
#[track_caller]
fn check<T>(input: T, expected: Value)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    assert_eq!(
        to_value(&input).as_ref(),
        Ok(&expected),
        "to_value({input:?})"
    );
    assert_eq!(from_value::<T>(expected).as_ref(), Ok(&input), "from_value");
}

#[test]
fn mapping_table() {
    check(true, Value::Bool(true));
    check(-5i8, int(-5));
    check(-300i16, int(-300));
    check(70_000i32, int(70_000));
    check(i64::MIN, int(i64::MIN));
    check(255u8, int(255));
    check(65_535u16, int(65_535));
    check(u32::MAX, int(u32::MAX.into()));
    check(5u64, int(5));
    check(u64::MAX, big(u64::MAX.into()));
    check(7i128, int(7));
    check(i128::from(i64::MAX) + 1, big(i128::from(i64::MAX) + 1));
    check(i128::MIN, big(i128::MIN));
    check(i128::MAX, big(i128::MAX));
    check(3u128, int(3));
    let mut u128_max = [0xffu8; 17];
    u128_max[16] = 0;
    check(u128::MAX, Value::BigInt(BigInt::from_le_bytes(&u128_max)));
    check(1.5f32, Value::Float(1.5));
    check(-0.25f64, Value::Float(-0.25));
    check(f64::INFINITY, Value::Float(f64::INFINITY));
    check('é', s("é"));
    check(String::from("hi"), s("hi"));
    check(Bytes(vec![0, 255]), Value::Bytes(vec![0, 255]));
    // A plain Vec<u8> is a serde sequence, hence a Python list.
    check(vec![1u8, 2], Value::List(vec![int(1), int(2)]));
    check((), Value::None);
    check(None::<i32>, Value::None);
    check(Some(3), int(3));
    check(Some(Some(String::new())), s(""));
    check(Unit, Value::None);
    check(Meters(5), int(5));
    check(vec!["a".to_owned()], Value::List(vec![s("a")]));
    check((1, "a".to_owned()), Value::Tuple(vec![int(1), s("a")]));
    check(Point(1, -2), Value::Tuple(vec![int(1), int(-2)]));
    check(
        BTreeMap::from([("x".to_owned(), 1), ("y".to_owned(), 2)]),
        Value::dict([("x", int(1)), ("y", int(2))]),
    );
    check(
        BTreeMap::from([(1, true)]),
        Value::Dict(vec![(int(1), Value::Bool(true))]),
    );
    check(
        BTreeMap::from([((1, 2), "p".to_owned())]),
        Value::Dict(vec![(Value::Tuple(vec![int(1), int(2)]), s("p"))]),
    );
    check(
        Reading {
            sensor: "t1".into(),
            celsius: 21.5,
            raw: Bytes(b"\x00\x01".to_vec()),
            history: vec![3],
            note: None,
        },
        // Fields in declaration order.
        Value::dict([
            ("sensor", s("t1")),
            ("celsius", Value::Float(21.5)),
            ("raw", Value::Bytes(vec![0, 1])),
            ("history", Value::List(vec![int(3)])),
            ("note", Value::None),
        ]),
    );
    check(Shape::Empty, s("Empty"));
    check(
        Shape::Circle(2.0),
        Value::dict([("Circle", Value::Float(2.0))]),
    );
    check(
        Shape::Rect(3, 4),
        Value::dict([("Rect", Value::Tuple(vec![int(3), int(4)]))]),
    );
    check(
        Shape::Poly {
            sides: 5,
            name: "penta".into(),
        },
        Value::dict([(
            "Poly",
            Value::dict([("sides", int(5)), ("name", s("penta"))]),
        )]),
    );
    check(Shape::Nested(Inner::A), Value::dict([("Nested", s("A"))]));
    check(
        vec![
            Shape::Nested(Inner::B(Some(-1))),
            Shape::Nested(Inner::B(None)),
        ],
        Value::List(vec![
            Value::dict([("Nested", Value::dict([("B", int(-1))]))]),
            Value::dict([("Nested", Value::dict([("B", Value::None)]))]),
        ]),
    );
}

/// Asserts that `input` deserializes to `expected`, where Python is looser than serde.
#[track_caller]
fn check_from<T>(input: Value, expected: T)
where
    T: DeserializeOwned + PartialEq + Debug,
{
    assert_eq!(from_value::<T>(input).as_ref(), Ok(&expected));
}

#[test]
fn lenient_deserialization() {
    check_from(Value::Tuple(vec![int(1)]), vec![1]);
    check_from(Value::Set(vec![int(1)]), vec![1]);
    check_from(Value::FrozenSet(vec![int(1)]), vec![1]);
    check_from(Value::List(vec![int(1), int(2)]), (1, 2));
    check_from(Value::Bytes(vec![7, 8]), vec![7u8, 8]);
    check_from(Value::ByteArray(vec![7]), Bytes(vec![7]));
    check_from(Value::List(vec![int(7)]), Bytes(vec![7]));
    check_from(int(3), 3.0f64);
    check_from(int(3), 3.0f32);
    check_from(big(1 << 70), 2f64.powi(70));
    check_from(big(u64::MAX.into()), u64::MAX);
    check_from(big(i128::MIN), i128::MIN);
    check_from(int(-1), -1i128);
    check_from(big(i128::MAX), u128::try_from(i128::MAX).unwrap_or(0));
    check_from(Value::List(vec![int(1), int(2)]), Point(1, 2));
    check_from(
        Value::List(vec![
            s("t"),
            int(1),
            Value::Bytes(vec![]),
            Value::List(vec![]),
            Value::None,
        ]),
        Reading {
            sensor: "t".into(),
            celsius: 1.0,
            raw: Bytes(vec![]),
            history: vec![],
            note: None,
        },
    );
    // Unknown keys are ignored, as Python senders add fields freely.
    check_from(
        Value::dict([("a", int(1)), ("extra", Value::None), ("b", s("x"))]),
        Pair {
            a: 1,
            b: "x".into(),
        },
    );
    check_from(Value::dict([("Empty", Value::None)]), Shape::Empty);
    check_from(s("A"), Inner::A);
    check_from(
        Value::Tuple(vec![int(1), Value::Set(vec![])]),
        Value::List(vec![int(1), Value::List(vec![])]),
    );
    check_from(Value::ByteArray(vec![1]), Value::Bytes(vec![1]));
    check_from(big(-(1 << 100)), big(-(1 << 100)));
    check_from(
        Value::dict([("1", Value::Tuple(vec![Value::Bool(false)]))]),
        serde_json::json!({"1": [false]}),
    );
}

#[derive(Debug, PartialEq, Deserialize)]
struct Pair {
    a: u8,
    b: String,
}

/// Asserts that `input` fails to deserialize as `T` with `message`.
#[track_caller]
fn check_err<T: DeserializeOwned + Debug>(input: Value, message: &str) {
    match from_value::<T>(input) {
        Ok(v) => panic!("expected error {message:?}, got {v:?}"),
        Err(e) => assert_eq!(e.to_string(), message),
    }
}

#[test]
fn error_messages() {
    check_err::<u8>(s("x"), "invalid type: expected u8, found str");
    check_err::<u8>(int(300), "integer 300 out of range for u8");
    check_err::<u8>(int(-1), "integer -1 out of range for u8");
    check_err::<i8>(int(128), "integer 128 out of range for i8");
    check_err::<u32>(Value::Float(1.0), "invalid type: expected u32, found float");
    check_err::<i64>(
        big(1 << 64),
        "integer 18446744073709551616 out of range for i64",
    );
    check_err::<u128>(
        big(-(1 << 100)),
        "integer -1267650600228229401496703205376 out of range for u128",
    );
    check_err::<i128>(
        Value::BigInt(BigInt::from_le_bytes(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ])),
        "integer 340282366920938463463374607431768211456 out of range for i128",
    );
    check_err::<bool>(int(1), "invalid type: expected bool, found int");
    check_err::<String>(
        Value::Bytes(vec![]),
        "invalid type: expected str, found bytes",
    );
    check_err::<f64>(s("1.0"), "invalid type: expected f64, found str");
    check_err::<char>(
        s("ab"),
        "invalid value: expected a str of one character, found 2 characters",
    );
    check_err::<()>(int(0), "invalid type: expected None, found int");
    check_err::<Vec<i32>>(
        Value::Dict(vec![]),
        "invalid type: expected a sequence, found dict",
    );
    check_err::<Bytes>(s("x"), "invalid type: expected bytes, found str");
    check_err::<Bytes>(
        Value::List(vec![int(256)]),
        "integer 256 out of range for u8 at [0]",
    );
    check_err::<BTreeMap<String, i32>>(
        Value::List(vec![]),
        "invalid type: expected dict, found list",
    );
    check_err::<Pair>(
        int(1),
        "invalid type: expected dict (struct Pair), found int",
    );
    check_err::<Pair>(Value::dict([("a", int(1))]), "missing field `b`");
    check_err::<Pair>(
        Value::dict([("a", int(1000)), ("b", s(""))]),
        "integer 1000 out of range for u8 at .a",
    );
    check_err::<Pair>(
        Value::dict([("a", int(1)), ("b", Value::None)]),
        "invalid type: expected str, found NoneType at .b",
    );
    check_err::<Option<u8>>(int(256), "integer 256 out of range for u8");
    check_err::<(i32, i32)>(
        Value::List(vec![int(1), int(2), int(3)]),
        "invalid length: 1 more items than expected",
    );
    check_err::<(i32, i32, i32)>(
        Value::List(vec![int(1)]),
        "invalid length: expected a tuple of size 3, found 1",
    );
    check_err::<Shape>(
        Value::dict([("Empty", Value::None), ("Circle", Value::None)]),
        "invalid value: expected a dict with one key (enum Shape), found a dict with 2 keys",
    );
    check_err::<Shape>(
        s("Hexagon"),
        "unknown variant `Hexagon`, expected one of `Empty`, `Circle`, `Rect`, `Poly`, `Nested`",
    );
    check_err::<Shape>(
        int(0),
        "invalid type: expected str or dict (enum Shape), found int",
    );
    check_err::<Shape>(
        s("Circle"),
        "invalid type: expected a dict with one key (newtype variant), found str",
    );
    check_err::<Shape>(
        Value::dict([("Empty", int(1))]),
        "invalid type: expected None (unit variant), found int at .Empty",
    );
    // Errors inside containers say where they are.
    check_err::<Vec<Shape>>(
        Value::List(vec![Value::dict([(
            "Rect",
            Value::Tuple(vec![int(1), s("x")]),
        )])]),
        "invalid type: expected u32, found str at [0].Rect[1]",
    );
    check_err::<Vec<Pair>>(
        Value::List(vec![Value::dict([("a", int(1))])]),
        "missing field `b` at [0]",
    );
    check_err::<BTreeMap<String, u8>>(
        Value::dict([("a b", int(300))]),
        r#"integer 300 out of range for u8 at ["a b"]"#,
    );
    let long_key = "k".repeat(100);
    check_err::<BTreeMap<String, u8>>(
        Value::dict([(long_key.as_str(), Value::None)]),
        &format!(
            "invalid type: expected u8, found NoneType at [\"{}…\"]",
            "k".repeat(64)
        ),
    );
    check_err::<BTreeMap<i32, u8>>(
        Value::Dict(vec![(int(-5), s("x"))]),
        "invalid type: expected u8, found str at [-5]",
    );
    check_err::<Shape>(
        Value::dict([("Poly", Value::dict([("sides", int(-1)), ("name", s(""))]))]),
        "integer -1 out of range for u8 at .Poly.sides",
    );
    // Value itself goes through deserialize_any, which stops at u128.
    check_err::<Value>(
        Value::BigInt(BigInt::from_le_bytes(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ])),
        "integer 340282366920938463463374607431768211456 out of range for i128",
    );
}

#[derive(Debug)]
struct Failing;

impl Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot serialize this"))
    }
}

#[test]
fn serialization_errors() {
    let unhashable = BTreeMap::from([(vec![1], 2)]);
    assert_eq!(
        to_value(&unhashable).map_err(|e| e.to_string()),
        Err("dict key must be hashable in python, found list".to_owned())
    );
    let nested = BTreeMap::from([((1, vec![2]), 3)]);
    assert_eq!(
        to_value(&nested).map_err(|e| e.to_string()),
        Err("dict key must be hashable in python, found tuple".to_owned())
    );
    assert_eq!(
        to_value(&vec![Failing]),
        Err(<ValueError as serde::ser::Error>::custom(
            "cannot serialize this"
        ))
    );
}

/// Asserts that `value` is `json` in JSON, and that `json` parses back to `back`.
#[track_caller]
fn check_json(value: Value, json: &str, back: Value) {
    assert_eq!(serde_json::to_string(&value).ok().as_deref(), Some(json));
    assert_eq!(serde_json::from_str::<Value>(json).ok(), Some(back));
}

#[test]
fn json_bridge() {
    let same = |v: Value, json: &str| check_json(v.clone(), json, v);
    same(Value::None, "null");
    same(Value::Bool(false), "false");
    same(int(-3), "-3");
    same(big(u64::MAX.into()), "18446744073709551615");
    same(Value::Float(0.5), "0.5");
    same(s("é\""), r#""é\"""#);
    same(
        Value::dict([("a", Value::List(vec![int(1), Value::None]))]),
        r#"{"a":[1,null]}"#,
    );
    // Python types JSON lacks collapse to their nearest JSON form.
    check_json(Value::Tuple(vec![int(1)]), "[1]", Value::List(vec![int(1)]));
    check_json(
        Value::Bytes(b"hi".to_vec()),
        "[104,105]",
        Value::List(vec![int(104), int(105)]),
    );
    check_json(
        Value::FrozenSet(vec![s("x")]),
        r#"["x"]"#,
        Value::List(vec![s("x")]),
    );
    check_json(
        Value::Dict(vec![(int(1), Value::Bool(true))]),
        r#"{"1":true}"#,
        Value::dict([("1", Value::Bool(true))]),
    );
    check_json(
        Value::BigInt(BigInt::from_le_bytes(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ])),
        r#""87112285931760246646623899502532662132736""#,
        s("87112285931760246646623899502532662132736"),
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Many {
    flag: bool,
    i8: i8,
    i16: i16,
    i32: i32,
    i64: i64,
    i128: i128,
    u8: u8,
    u16: u16,
    u32: u32,
    u64: u64,
    u128: u128,
    f32: f32,
    f64: f64,
    ch: char,
    text: String,
    raw: Bytes,
    list_u8: Vec<u8>,
    maybe: Option<u32>,
    words: Vec<String>,
    pair: (i32, String),
    by_name: BTreeMap<String, i64>,
    by_num: BTreeMap<u16, bool>,
    shape: Shape,
    unit: Unit,
    nothing: (),
    meters: Meters,
}

/// Finite, infinite and signed-zero floats; NaN is left out since it is not equal to itself.
fn float() -> impl Strategy<Value = f64> {
    use proptest::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO | f64::INFINITE
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        float().prop_map(Shape::Circle),
        (any::<u32>(), any::<u32>()).prop_map(|(w, h)| Shape::Rect(w, h)),
        (any::<u8>(), any::<String>()).prop_map(|(sides, name)| Shape::Poly { sides, name }),
        Just(Shape::Nested(Inner::A)),
        any::<Option<i64>>().prop_map(|b| Shape::Nested(Inner::B(b))),
    ]
}

fn many() -> impl Strategy<Value = Many> {
    let numbers = (
        any::<bool>(),
        any::<i8>(),
        any::<i16>(),
        any::<i32>(),
        any::<i64>(),
        any::<i128>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        any::<u128>(),
        proptest::num::f32::POSITIVE
            | proptest::num::f32::NEGATIVE
            | proptest::num::f32::NORMAL
            | proptest::num::f32::SUBNORMAL
            | proptest::num::f32::ZERO
            | proptest::num::f32::INFINITE,
    );
    let others = (
        float(),
        any::<char>(),
        any::<String>(),
        any::<Vec<u8>>(),
        any::<Vec<u8>>(),
        any::<Option<u32>>(),
        any::<Vec<String>>(),
        any::<(i32, String)>(),
        any::<BTreeMap<String, i64>>(),
        any::<BTreeMap<u16, bool>>(),
        shape(),
        any::<u32>(),
    );
    (numbers, others).prop_map(
        |(
            (flag, i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32),
            (f64, ch, text, raw, list_u8, maybe, words, pair, by_name, by_num, shape, meters),
        )| Many {
            flag,
            i8,
            i16,
            i32,
            i64,
            i128,
            u8,
            u16,
            u32,
            u64,
            u128,
            f32,
            f64,
            ch,
            text,
            raw: Bytes(raw),
            list_u8,
            maybe,
            words,
            pair,
            by_name,
            by_num,
            shape,
            unit: Unit,
            nothing: (),
            meters: Meters(meters),
        },
    )
}

/// An `int` as `Value` keeps it: `Int` when it fits an `i64`, else `BigInt`.
fn int_from_le(bytes: &[u8]) -> Value {
    let big = BigInt::from_le_bytes(bytes);
    match big.to_i128().map(i64::try_from) {
        Some(Ok(i)) => Value::Int(i),
        _ => Value::BigInt(big),
    }
}

/// Values Python could use as dict keys.
fn hashable() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| int_from_le(&b)),
        float().prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        any::<Vec<u8>>().prop_map(Value::Bytes),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(Value::Tuple)
    })
}

/// Any `Value` (without NaN), with hashable dict keys.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![hashable(), any::<Vec<u8>>().prop_map(Value::ByteArray),];
    leaf.prop_recursive(4, 64, 6, |inner| {
        let items = proptest::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items.clone().prop_map(Value::List),
            items.clone().prop_map(Value::Tuple),
            items.clone().prop_map(Value::Set),
            items.prop_map(Value::FrozenSet),
            proptest::collection::vec((hashable(), inner), 0..6).prop_map(Value::Dict),
        ]
    })
}

/// Values JSON can carry exactly: str keys, `i64`/`u64` ints, floats JSON prints and parses exactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(|u| Value::BigInt(BigInt::from_i128(u.into()))),
        // Dyadic fractions, with a fractional part so that JSON keeps them floats.
        (-1_000_000i32..1_000_000).prop_map(|i| Value::Float(f64::from(i) + 0.5)),
        any::<String>().prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((any::<String>(), inner), 0..6).prop_map(Value::dict),
        ]
    })
}

/// What `from_value::<Value>` gives: Python-only container types collapse to serde's.
fn as_deserialized(value: Value) -> Value {
    match value {
        Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) | Value::List(items) => {
            Value::List(items.into_iter().map(as_deserialized).collect())
        }
        Value::ByteArray(b) => Value::Bytes(b),
        Value::Dict(pairs) => Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (as_deserialized(k), as_deserialized(v)))
                .collect(),
        ),
        other => other,
    }
}

/// What `to_value(&value)` gives: tuples stay, sets become lists, huge ints strings.
fn as_serialized(value: Value) -> Value {
    match value {
        Value::Set(items) | Value::FrozenSet(items) | Value::List(items) => {
            Value::List(items.into_iter().map(as_serialized).collect())
        }
        Value::Tuple(items) => Value::Tuple(items.into_iter().map(as_serialized).collect()),
        Value::ByteArray(b) => Value::Bytes(b),
        Value::BigInt(big) if is_huge(&big) => Value::Str(big.to_string()),
        Value::Dict(pairs) => Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (as_serialized(k), as_serialized(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Beyond both `i128` and `u128`.
fn is_huge(big: &BigInt) -> bool {
    big.to_i128().is_none() && !(big.to_le_bytes().len() == 17 && big.to_le_bytes()[16] == 0)
}

fn has_huge(value: &Value) -> bool {
    match value {
        Value::BigInt(big) => is_huge(big),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.iter().any(has_huge)
        }
        Value::Dict(pairs) => pairs.iter().any(|(k, v)| has_huge(k) || has_huge(v)),
        _ => false,
    }
}

proptest! {
    #[test]
    fn struct_round_trips(x in many()) {
        let value = to_value(&x);
        prop_assert!(value.is_ok(), "{value:?}");
        let back = value.and_then(from_value::<Many>);
        prop_assert_eq!(back, Ok(x));
    }

    #[test]
    fn value_deserializes_as_itself(v in value()) {
        match from_value::<Value>(v.clone()) {
            Ok(got) => prop_assert_eq!(got, as_deserialized(v)),
            Err(e) => prop_assert!(has_huge(&v), "{e}: {v:?}"),
        }
    }

    #[test]
    fn value_serializes_as_itself(v in value()) {
        prop_assert_eq!(to_value(&v), Ok(as_serialized(v)));
    }

    #[test]
    fn json_round_trips(v in json_value()) {
        let json = serde_json::to_string(&v);
        prop_assert!(json.is_ok(), "{json:?}");
        let back = json.ok().map(|j| serde_json::from_str::<Value>(&j).map_err(|e| e.to_string()));
        prop_assert_eq!(back, Some(Ok(v)));
    }

    #[test]
    fn no_value_panics_any_target(v in value()) {
        // Only that these return, Ok or Err; the equalities are checked above.
        let _ = from_value::<Many>(v.clone());
        let _ = from_value::<Shape>(v.clone());
        let _ = from_value::<Vec<Bytes>>(v.clone());
        let _ = from_value::<BTreeMap<String, Option<f64>>>(v.clone());
        let _ = from_value::<(u8, char, String)>(v.clone());
        let _ = from_value::<serde_json::Value>(v.clone());
        let _ = serde_json::to_string(&v);
        let _ = from_value::<Many>(Value::List(vec![v.clone(); 26]));
        let _ = from_value::<Shape>(Value::dict([("Poly", v.clone())]));
        let _ = from_value::<Shape>(Value::dict([("Rect", v)]));
    }
}
