//! Every hostile vector (`fixtures/pickle/hostile`, written by `gen_pickles.py`)
//! is refused with an error naming what was wrong under
//! [`ObjectPolicy::Refuse`]; under the default policy the ones that only build
//! objects decode to inert data (never called) and every other one is refused
//! the same way; no prefix of a valid vector decodes.

use std::path::{Path, PathBuf};

use ecci_proto::pickle::{DecodeError, DecodeLimits, ObjectPolicy, Value, decode, from_value};

fn fixture_dir(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pickle")
        .join(which)
}

/// Vectors that only build objects: inert data under the default policy.
const INERT_BY_DEFAULT: &[&str] = &[
    "reduce_os_system.p",
    "plain_object.p",
    "global_os_system",
    "stack_global_eval",
    "inst",
    "obj",
    "newobj",
    "newobj_ex",
    "global_as_value",
];

/// Vectors refused differently under the default policy, and how.
const DEFAULT_DIFFERS: &[(&str, &str)] = &[("build", "BUILD at byte 4 needs an object")];

/// Vector name prefix → substrings of which the error message must contain one,
/// under [`ObjectPolicy::Refuse`].
const EXPECTED: &[(&str, &[&str])] = &[
    ("reduce_os_system.p", &["refused global posix.system"]),
    (
        "plain_object.p",
        &[
            "refused global __main__.Plain",
            "refused global copy_reg._reconstructor",
        ],
    ),
    ("self_list.p", &["a container contains itself"]),
    (
        "truncated_envelope.p",
        &["truncated", "without STOP", "bytes but only"],
    ),
    ("global_os_system", &["refused global os.system at byte 0"]),
    ("stack_global_eval", &["refused global builtins.eval"]),
    ("inst", &["refused global os.system"]),
    ("obj", &["refused opcode OBJ"]),
    ("newobj_ex", &["refused opcode NEWOBJ_EX"]),
    ("newobj", &["refused opcode NEWOBJ"]),
    ("build", &["refused opcode BUILD"]),
    ("persid", &["refused opcode PERSID"]),
    ("binpersid", &["refused opcode BINPERSID"]),
    ("ext1", &["refused opcode EXT1"]),
    ("next_buffer", &["refused opcode NEXT_BUFFER"]),
    ("readonly_buffer", &["refused opcode READONLY_BUFFER"]),
    ("reduce_non_global", &["REDUCE at byte 4 needs a global"]),
    ("reduce_bad_args", &["bad REDUCE"]),
    ("depth_bomb_", &["nesting deeper than 1000"]),
    (
        "huge_binunicode8",
        &["BINUNICODE8 at byte 2 claims 4294967296 bytes but only 4 remain"],
    ),
    (
        "huge_binbytes8",
        &["BINBYTES8 at byte 2 claims 18446744073709551615 bytes"],
    ),
    (
        "huge_bytearray8",
        &["BYTEARRAY8 at byte 2 claims 4294967296 bytes"],
    ),
    (
        "huge_binunicode",
        &["BINUNICODE at byte 2 claims 4294967295 bytes"],
    ),
    (
        "huge_binbytes",
        &["BINBYTES at byte 2 claims 4294967295 bytes"],
    ),
    (
        "huge_binstring",
        &["BINSTRING at byte 0 claims 2147483647 bytes"],
    ),
    ("huge_long4", &["LONG4 at byte 2 claims 2147483647 bytes"]),
    ("huge_frame", &["FRAME at byte 2 claims 4294967296 bytes"]),
    ("negative_long4", &["bad LONG4 at byte 2: negative length"]),
    (
        "negative_binstring",
        &["bad BINSTRING at byte 0: negative length"],
    ),
    ("billion_laughs", &["shared values would be copied beyond"]),
    ("string_laughs", &["shared values would be copied beyond"]),
    ("self_dict", &["a container contains itself"]),
    ("not_pickle_hello", &["unset memo index"]),
    ("not_pickle_json", &["unknown opcode 0x7b at byte 0"]),
    ("empty", &["empty input"]),
    ("trailing_bytes", &["1 trailing bytes after STOP"]),
    ("missing_stop", &["without STOP"]),
    (
        "bad_utf8",
        &["bad SHORT_BINUNICODE at byte 2: invalid utf-8"],
    ),
    (
        "py2_non_ascii",
        &["bad SHORT_BINSTRING at byte 0: non-ascii"],
    ),
    ("stack_underflow", &["stack underflow at APPEND at byte 2"]),
    ("appends_without_mark", &["APPENDS at byte 3 without MARK"]),
    (
        "bad_memo_index",
        &["BINGET at byte 2 reads unset memo index 5"],
    ),
    (
        "odd_setitems",
        &["bad SETITEMS at byte 6: odd number of items"],
    ),
    ("unsupported_protocol", &["unsupported protocol 9"]),
    ("unbalanced_stop", &["leaves 2 values and 0 marks"]),
    ("global_as_value", &["global builtins.set used as a value"]),
];

fn refuse() -> DecodeLimits {
    DecodeLimits {
        objects: ObjectPolicy::Refuse,
        ..DecodeLimits::default()
    }
}

/// Whether the value holds an inert object or a global somewhere.
fn has_object(v: &Value) -> bool {
    match v {
        Value::Object(_) | Value::Global(_) => true,
        Value::List(items) | Value::Tuple(items) => items.iter().any(has_object),
        _ => false,
    }
}

#[track_caller]
fn check(name: &str, input: &[u8], expected: &[&str]) {
    check_with(name, input, expected, &refuse());
    let inert = INERT_BY_DEFAULT.iter().any(|p| name.starts_with(p));
    match decode(input, &DecodeLimits::default()) {
        Ok(v) if inert => assert!(has_object(&v), "{name}: {v:?} holds no object"),
        Ok(v) => panic!("{name}: decoded to {v:?} under the default policy"),
        Err(e) if inert => panic!("{name}: refused under the default policy: {e}"),
        Err(e) if DEFAULT_DIFFERS.iter().any(|(n, _)| *n == name) => {
            let want = DEFAULT_DIFFERS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, w)| *w);
            assert_eq!(Some(e.to_string().as_str()), want, "{name}");
        }
        Err(e) => assert_eq!(
            Err::<(), _>(e),
            decode(input, &refuse()).map(|_| ()),
            "{name}: the same error under both policies"
        ),
    }
}

#[track_caller]
fn check_with(name: &str, input: &[u8], expected: &[&str], limits: &DecodeLimits) {
    match decode(input, limits) {
        Ok(v) => panic!("{name}: decoded to {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                expected.iter().any(|want| msg.contains(want)),
                "{name}: error {msg:?} mentions none of {expected:?}"
            );
        }
    }
}

#[test]
fn hostile_vectors_are_refused() {
    let mut used = vec![0usize; EXPECTED.len()];
    for entry in std::fs::read_dir(fixture_dir("hostile")).expect("run gen_pickles.py") {
        let path = entry.expect("read_dir").path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let input = std::fs::read(&path).expect("read vector");
        // The longest matching prefix wins, so `newobj` does not take `newobj_ex`.
        let (index, (_, expected)) = EXPECTED
            .iter()
            .enumerate()
            .filter(|(_, (prefix, _))| name.starts_with(prefix))
            .max_by_key(|(_, (prefix, _))| prefix.len())
            .unwrap_or_else(|| panic!("{name}: not in EXPECTED"));
        used[index] += 1;
        check(&name, &input, expected);
    }
    for ((prefix, _), count) in EXPECTED.iter().zip(used) {
        assert!(count > 0, "no vector named {prefix}*");
    }
}

#[test]
fn every_proper_prefix_of_a_valid_vector_is_refused() {
    for entry in std::fs::read_dir(fixture_dir("valid")).expect("run gen_pickles.py") {
        let path = entry.expect("read_dir").path();
        let input = std::fs::read(&path).expect("read vector");
        // Long vectors: every prefix of the first and last 300 bytes is enough to
        // cut inside every kind of opcode without a quadratic test.
        let cuts = (0..input.len()).filter(|&n| n < 300 || n + 300 > input.len());
        for cut in cuts {
            let name = format!("{} cut at {cut}", path.display());
            check(
                &name,
                &input[..cut],
                &["truncated", "without STOP", "empty input", "bytes but only"],
            );
        }
    }
}

#[test]
fn limits_are_enforced() {
    let input = b"\x80\x02]]]aa.";
    let depth_2 = DecodeLimits {
        max_depth: 2,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(input, &depth_2),
        Err(DecodeError::TooDeep { max: 2 })
    );
    let depth_3 = DecodeLimits {
        max_depth: 3,
        ..DecodeLimits::default()
    };
    assert!(decode(input, &depth_3).is_ok());

    let small_input = DecodeLimits {
        max_input: 4,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(input, &small_input),
        Err(DecodeError::InputTooLarge { len: 8, max: 4 })
    );
    // The size check comes first, even before the empty-input and opcode checks.
    assert!(
        decode(b"\xff\xff\xff\xff\xff", &small_input)
            .unwrap_err()
            .to_string()
            .contains("exceeds")
    );

    let budget = DecodeLimits {
        max_decoded: 100,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(b"\x80\x03C\x80", &budget).unwrap_err(),
        DecodeError::LengthTooLarge {
            opcode: "SHORT_BINBYTES",
            offset: 2,
            len: 128,
            remaining: 0
        }
    );
    let mut big_bytes = b"\x80\x03B\x00\x01\x00\x00".to_vec();
    big_bytes.extend([0; 256]);
    big_bytes.push(b'.');
    assert_eq!(
        decode(&big_bytes, &budget),
        Err(DecodeError::TooLarge { max: 100 })
    );
}

/// A `LONG4` of `len` bytes of `0x5a`: a positive int of `8 * len - 1` bits.
fn long4(len: usize) -> Vec<u8> {
    let mut input = b"\x80\x04\x8b".to_vec();
    input.extend(i32::try_from(len).expect("small").to_le_bytes());
    input.extend(std::iter::repeat_n(0x5a, len));
    input.push(b'.');
    input
}

#[test]
fn a_huge_int_is_cheap_to_format_and_convert() {
    // A decimal conversion of 2.4 million digits would take an hour; every
    // path below must avoid it. The assertions are on what was produced, so the
    // test fails on the output rather than on a timeout.
    let value = decode(&long4(1 << 20), &DecodeLimits::default()).expect("a valid int");
    assert_eq!(format!("{value:?}"), "BigInt(<int of 8388607 bits>)");
    assert_eq!(
        from_value::<u64>(value.clone()).unwrap_err().to_string(),
        "integer of 8388607 bits out of range for u64"
    );
    assert_eq!(
        from_value::<f64>(value.clone()).unwrap_err().to_string(),
        "integer of 8388607 bits too large for f64"
    );
    assert_eq!(
        from_value::<serde_json::Value>(value)
            .unwrap_err()
            .to_string(),
        "integer of 8388607 bits out of range for i128"
    );
    // Below CPython's 4300-digit limit, the decimal; small ones stay quoted.
    let value = decode(&long4(1000), &DecodeLimits::default()).expect("a valid int");
    assert_eq!(format!("{value:?}").len(), "BigInt()".len() + 2408);
    assert!(from_value::<f64>(value).is_err());
    let value = decode(&long4(20), &DecodeLimits::default()).expect("a valid int");
    assert_eq!(
        from_value::<u64>(value).unwrap_err().to_string(),
        "integer 515824107293259853483653470370452830466799721050 out of range for u64"
    );
}

#[test]
fn a_memo_flood_is_charged() {
    // One `None` memoized 4 million times: 4 MB of input, at least 16 MB of memo.
    let mut input = b"\x80\x04N".to_vec();
    input.extend(std::iter::repeat_n(0x94, 4 << 20));
    input.push(b'.');
    let limits = DecodeLimits {
        max_decoded: 8 << 20,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&input, &limits),
        Err(DecodeError::TooLarge { max: 8 << 20 })
    );
    let limits = DecodeLimits {
        max_decoded: 64 << 20,
        ..DecodeLimits::default()
    };
    assert_eq!(decode(&input, &limits), Ok(ecci_proto::pickle::Value::None));
}
