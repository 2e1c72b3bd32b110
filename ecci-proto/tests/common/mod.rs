//! The values the pickle tests share with `fixtures/pickle_cases.py`: one case
//! name, one expected [`Value`], kept in step by hand.

#![allow(dead_code, reason = "each test crate uses a different part")]

use ecci_proto::pickle::{BigInt, Value};

// The unit tests' CPython helper, compiled into each integration test crate
// as well (they cannot see the library's test-only modules).
#[path = "../../src/testutil.rs"]
mod testutil;

#[allow(unused_imports, reason = "each test crate uses a different part")]
pub(crate) use testutil::python;

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn big(i: i128) -> Value {
    Value::BigInt(BigInt::from_i128(i))
}

fn s(text: &str) -> Value {
    Value::from(text)
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::List(items.into_iter().collect())
}

fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Tuple(items.into_iter().collect())
}

/// `±2**exp` as a BigInt, for exponents past `i128`.
fn pow2(exp: usize, negative: bool) -> Value {
    let mut bytes = vec![0u8; exp / 8 + 2];
    bytes[exp / 8] = 1 << (exp % 8);
    if negative {
        let mut carry = true;
        for b in &mut bytes {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    Value::BigInt(BigInt::from_le_bytes(&bytes))
}

/// Every case of `pickle_cases.py`, in its order.
pub(crate) fn cases() -> Vec<(&'static str, Value)> {
    let shared = list([int(1)]);
    let shared_tuple = tuple([int(1), s("s")]);
    vec![
        ("none", Value::None),
        ("bools", list([Value::Bool(true), Value::Bool(false)])),
        (
            "small_ints",
            list(
                [
                    0,
                    1,
                    -1,
                    255,
                    256,
                    65535,
                    65536,
                    -(1 << 31),
                    (1 << 31) - 1,
                    1 << 31,
                    i64::MAX,
                    i64::MIN,
                ]
                .map(int),
            ),
        ),
        (
            "big_ints",
            list([
                big(1 << 64),
                big(-(1 << 64)),
                pow2(200, false),
                pow2(200, true),
                big(1 << 63),
                big(-(1 << 63) - 1),
            ]),
        ),
        ("huge_ints", list([pow2(2100, false), pow2(2100, true)])),
        (
            "floats",
            list(
                [
                    0.0,
                    -0.0,
                    1.5,
                    -2.25,
                    1e300,
                    -1e-300,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                ]
                .map(Value::Float),
            ),
        ),
        (
            "strings",
            list([
                s(""),
                s("ascii"),
                s("\u{e9}"),
                s("\u{20ac}"),
                s("\u{1f600} non-BMP"),
                s("line\nbreak\\back\r\0\x1a"),
                s(&"x".repeat(300)),
            ]),
        ),
        (
            "bytes",
            list([
                Value::Bytes(vec![]),
                Value::Bytes(b"ab".to_vec()),
                Value::Bytes((0..=255).collect()),
                Value::Bytes(vec![b'x'; 300]),
            ]),
        ),
        (
            "bytearrays",
            list([
                Value::ByteArray(vec![]),
                Value::ByteArray(b"ab".to_vec()),
                Value::ByteArray((0..=255).collect()),
            ]),
        ),
        (
            "tuples",
            list([
                tuple([]),
                tuple([int(1)]),
                tuple([int(1), int(2)]),
                tuple([int(1), int(2), int(3)]),
                tuple([int(1), int(2), int(3), int(4)]),
            ]),
        ),
        (
            "nested",
            Value::dict([
                (
                    "a",
                    Value::dict([(
                        "b",
                        Value::dict([(
                            "c",
                            list([
                                int(1),
                                tuple([int(2), s("x")]),
                                Value::dict([("d", Value::None)]),
                            ]),
                        )]),
                    )]),
                ),
                ("e", list([])),
            ]),
        ),
        (
            "sets",
            list([
                Value::Set(vec![]),
                Value::Set(vec![int(1), int(2), int(3)]),
                Value::FrozenSet(vec![]),
                Value::FrozenSet(vec![int(4), int(5)]),
            ]),
        ),
        (
            "dict_keys",
            Value::Dict(vec![
                (int(1), s("a")),
                (tuple([int(1), int(2)]), s("b")),
                (Value::None, s("c")),
                (Value::Float(2.5), s("d")),
                (Value::Bytes(b"k".to_vec()), s("e")),
                (Value::FrozenSet(vec![int(1)]), s("f")),
            ]),
        ),
        (
            "shared",
            Value::dict([("a", shared.clone()), ("b", shared)]),
        ),
        (
            "shared_tuple",
            list([shared_tuple.clone(), shared_tuple.clone(), shared_tuple]),
        ),
        (
            "shared_late",
            list([
                list((0..300).map(|i| Value::Str(format!("s{i}")))),
                list([int(7)]),
                list([int(7)]),
            ]),
        ),
        ("long_list", list((0..2500).map(int))),
        (
            "long_dict",
            Value::Dict(
                (0..1500)
                    .map(|i| (int(i), Value::Str(i.to_string())))
                    .collect(),
            ),
        ),
        (
            "envelope_data",
            Value::dict([
                ("type", s("data")),
                (
                    "contents",
                    Value::dict([
                        (
                            "image",
                            Value::Bytes(
                                [
                                    b"\x89PNG\r\n\x1a\n".as_slice(),
                                    &(0..64).collect::<Vec<u8>>(),
                                ]
                                .concat(),
                            ),
                        ),
                        ("shape", tuple([int(2), int(3)])),
                        ("name", s("cam1")),
                        ("score", Value::Float(0.5)),
                        ("ok", Value::Bool(true)),
                        ("tags", list([s("a"), s("b")])),
                        ("meta", Value::None),
                    ]),
                ),
            ]),
        ),
        (
            "envelope_cmd",
            Value::dict([
                ("type", s("cmd")),
                ("contents", Value::dict([("cmd", s("ready"))])),
            ]),
        ),
    ]
}

/// The hand-written vectors of `gen_pickles.py` (`<case>.hand.pickle`).
pub(crate) fn hand_cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "py2_strings",
            list([s("a'b"), s("cd"), s("ef"), s("ghi\n")]),
        ),
        ("stack_ops", list([int(1)])),
        (
            "long_lengths",
            tuple([s("ab"), Value::Bytes(b"cd".to_vec()), int(256)]),
        ),
        ("memo_ops", list([list([]), list([]), list([])])),
    ]
}

/// Value equality that also tells `-0.0` from `0.0` and matches NaN with NaN.
#[track_caller]
pub(crate) fn assert_same(got: &Value, expected: &Value, what: &str) {
    assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{what}");
}
