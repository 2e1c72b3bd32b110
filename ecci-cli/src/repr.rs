//! Python's `repr()` of a decoded [`Value`], cut to a length, for one-line display.
//!
//! Kept in the tool rather than in `ecci-proto`: the SDK itself never needs to show a value
//! the way Python does, and the cut (`…` after `max` characters) is a display decision.
//! Control characters are always escaped, so a hostile payload cannot move the cursor or
//! break the one-line-per-message output.

use ecci_proto::pickle::Value;

/// One piece of work: a value to write, or literal text between values.
enum Work<'v> {
    Value(&'v Value),
    Text(&'static str),
}

/// The repr of `value`, cut after about `max` characters with a trailing `…`.
///
/// Iterative, so a deeply nested value costs heap, not stack.
pub(crate) fn repr(value: &Value, max: usize) -> String {
    let mut out = String::new();
    let mut stack = vec![Work::Value(value)];
    while let Some(work) = stack.pop() {
        // A char is at most 4 bytes: past this, more than `max` chars are written.
        if out.len() > max.saturating_mul(4) {
            break;
        }
        let value = match work {
            Work::Text(text) => {
                out.push_str(text);
                continue;
            }
            Work::Value(value) => value,
        };
        match value {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::BigInt(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&float(*f)),
            Value::Str(s) => string(&mut out, s),
            Value::Bytes(b) => bytes(&mut out, b),
            Value::ByteArray(b) => {
                out.push_str("bytearray(");
                bytes(&mut out, b);
                out.push(')');
            }
            Value::List(items) => seq(&mut stack, &mut out, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => seq(&mut stack, &mut out, "(", items, ",)"),
            Value::Tuple(items) => seq(&mut stack, &mut out, "(", items, ")"),
            Value::Set(items) if items.is_empty() => out.push_str("set()"),
            Value::Set(items) => seq(&mut stack, &mut out, "{", items, "}"),
            Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
            Value::FrozenSet(items) => seq(&mut stack, &mut out, "frozenset({", items, "})"),
            Value::Dict(pairs) => {
                out.push('{');
                stack.push(Work::Text("}"));
                for (i, (k, v)) in pairs.iter().enumerate().rev() {
                    stack.push(Work::Value(v));
                    stack.push(Work::Text(": "));
                    stack.push(Work::Value(k));
                    if i > 0 {
                        stack.push(Work::Text(", "));
                    }
                }
            }
        }
    }
    cut(out, max)
}

fn seq<'v>(
    stack: &mut Vec<Work<'v>>,
    out: &mut String,
    open: &'static str,
    items: &'v [Value],
    close: &'static str,
) {
    out.push_str(open);
    stack.push(Work::Text(close));
    for (i, item) in items.iter().enumerate().rev() {
        stack.push(Work::Value(item));
        if i > 0 {
            stack.push(Work::Text(", "));
        }
    }
}

/// `s` cut to `max` characters, with `…` when something was cut.
pub(crate) fn cut(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            let mut s = s;
            s.truncate(at);
            s.push('…');
            s
        }
        None => s,
    }
}

/// Python's quote choice: single quotes unless the text has `'` and no `"`.
fn quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

fn string(out: &mut String, s: &str) {
    let q = quote(s.contains('\''), s.contains('"'));
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || is_invisible(c) => {
                let n = u32::from(c);
                let escaped = if n < 0x100 {
                    format!("\\x{n:02x}")
                } else if n < 0x10000 {
                    format!("\\u{n:04x}")
                } else {
                    format!("\\U{n:08x}")
                };
                out.push_str(&escaped);
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

/// Characters that are not `is_control` but reorder or hide text on a terminal.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn bytes(out: &mut String, b: &[u8]) {
    let q = quote(b.contains(&b'\''), b.contains(&b'"'));
    out.push('b');
    out.push(q);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            byte if char::from(byte) == q => {
                out.push('\\');
                out.push(q);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            byte => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push(q);
}

/// Python's `repr(float)`: the shortest digits that read back, positional for exponents
/// from -4 to 15, scientific (`1e+16`, `1.5e-05`) outside.
pub(crate) fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "1e100", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let (int, frac) = if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            ("0".to_owned(), format!("{zeros}{digits}"))
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() <= point {
                let zeros = "0".repeat(point - digits.len());
                (format!("{digits}{zeros}"), "0".to_owned())
            } else {
                (digits[..point].to_owned(), digits[point..].to_owned())
            }
        };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecci_proto::pickle::BigInt;

    #[track_caller]
    fn check(value: Value, expected: &str) {
        assert_eq!(repr(&value, 1000), expected);
    }

    #[test]
    fn reprs() {
        check(
            Value::dict([(
                "a",
                Value::List(vec![
                    Value::from(1),
                    Value::Bytes(b"x".to_vec()),
                    Value::None,
                ]),
            )]),
            "{'a': [1, b'x', None]}",
        );
        check(Value::Tuple(vec![]), "()");
        check(Value::Tuple(vec![Value::from(1)]), "(1,)");
        check(
            Value::Tuple(vec![Value::from(1), Value::from(true)]),
            "(1, True)",
        );
        check(Value::Set(vec![]), "set()");
        check(Value::Set(vec![Value::from(2)]), "{2}");
        check(Value::FrozenSet(vec![]), "frozenset()");
        check(Value::FrozenSet(vec![Value::from("a")]), "frozenset({'a'})");
        check(Value::Dict(vec![]), "{}");
        check(
            Value::ByteArray(b"\x00'".to_vec()),
            "bytearray(b\"\\x00'\")",
        );
        check(Value::from("it's"), "\"it's\"");
        check(Value::from("a'\"b"), "'a\\'\"b'");
        check(
            Value::from("l1\nl2\t\\ \x1b[2J é"),
            "'l1\\nl2\\t\\\\ \\x1b[2J é'",
        );
        check(Value::from("\u{202e}x"), "'\\u202ex'");
        check(Value::Bytes(vec![0xff, b'a', b'"']), "b'\\xffa\"'");
        check(
            Value::BigInt(BigInt::from_i128(1 << 70)),
            "1180591620717411303424",
        );
        check(Value::Bool(false), "False");
    }

    #[test]
    fn floats() {
        for (f, expected) in [
            (1.0, "1.0"),
            (-0.5, "-0.5"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e100, "1e+100"),
            (-2.5e-300, "-2.5e-300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(float(f), expected, "{f:e}");
        }
    }

    #[test]
    fn cuts() {
        let long = Value::List((0..1000).map(Value::from).collect());
        let s = repr(&long, 20);
        assert_eq!(s, "[0, 1, 2, 3, 4, 5, 6…");
        assert_eq!(cut("abc".to_owned(), 3), "abc");
        assert_eq!(cut("abcd".to_owned(), 3), "abc…");
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let mut v = Value::None;
        for _ in 0..100_000 {
            v = Value::List(vec![v]);
        }
        let s = repr(&v, 10);
        assert_eq!(s, "[[[[[[[[[[…");
        // Dropping a deep Value recurses in its Drop; flatten it first.
        while let Value::List(mut items) = v {
            v = items.pop().unwrap_or(Value::None);
        }
    }
}

/// The repr of every valid golden pickle of `ecci-proto` is CPython's `repr()` of it.
#[cfg(test)]
mod cpython {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use ecci_proto::pickle::{DecodeLimits, decode};

    #[test]
    fn matches_cpython_on_the_golden_pickles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ecci-proto/tests/fixtures/pickle/valid");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("the golden pickles")
            .map(|e| e.expect("dir entry").path())
            .collect();
        paths.sort();
        assert!(paths.len() > 50, "{} pickles", paths.len());
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import pickle, sys\n\
                 for p in sys.stdin.read().split('\\n'):\n\
                 \x20   print(repr(pickle.load(open(p, 'rb'))))",
            ])
            // Sets of str print in hash order; the golden pickles were written with seed 0.
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(list.join("\n").as_bytes())
            .expect("paths written");
        let out = child.wait_with_output().expect("python3 ends");
        assert!(out.status.success(), "python3 failed");
        let expected = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(expected.lines().count(), paths.len(), "one repr per pickle");
        let mut mismatches = Vec::new();
        for (path, want) in paths.iter().zip(expected.lines()) {
            let bytes = std::fs::read(path).expect("pickle");
            let value = decode(&bytes, &DecodeLimits::default()).expect("decodes");
            let got = super::repr(&value, usize::MAX / 8);
            if got != want {
                mismatches.push(format!(
                    "{}\n  rust:   {got}\n  python: {want}",
                    path.display()
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
