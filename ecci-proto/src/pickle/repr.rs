//! Python's `repr()` of a [`Value`]: `Display` for `Value`, and [`repr`], cut
//! to a length for one-line display.
//!
//! Control characters are always escaped, so a hostile payload cannot move the
//! cursor or break one-line-per-message output. Typed values show as Python
//! shows them (`datetime.datetime(2024, 1, 2, 3, 4)`, `Decimal('1.10')`),
//! except numpy arrays, which show their type and shape, never their data:
//! `ndarray(uint8, 480×640×3)`. Inert objects show as a call of their class:
//! `__main__.Point(1, 2)`, `__main__.Plain(x=1)` for a `__dict__` state.
//! Iterative: a deeply nested value costs heap, not stack.

use std::fmt;

use super::Value;
use super::py::{Construct, MappingKind};

/// One piece of work: a value to write, or literal text between values.
enum Work<'v> {
    Value(&'v Value),
    Text(&'static str),
    Owned(String),
}

/// The repr of `value`, cut after `max` characters with a trailing `…`.
///
/// ```
/// use ecci_proto::pickle::{Value, repr};
/// let v = Value::List((0..100).map(Value::from).collect());
/// assert_eq!(repr(&v, 12), "[0, 1, 2, 3,…");
/// assert_eq!(Value::dict([("a", Value::None)]).to_string(), "{'a': None}");
/// ```
pub fn repr(value: &Value, max: usize) -> String {
    let mut out = String::new();
    // A char is at most 4 bytes: past this, more than `max` chars are written.
    write_repr(&mut out, value, max.saturating_mul(4).saturating_add(4));
    cut(out, max)
}

/// Python's `repr()`, in full.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_repr(&mut out, self, usize::MAX);
        f.write_str(&out)
    }
}

fn write_repr(out: &mut String, value: &Value, limit: usize) {
    let mut stack = vec![Work::Value(value)];
    while let Some(work) = stack.pop() {
        if out.len() > limit {
            break;
        }
        let value = match work {
            Work::Text(text) => {
                out.push_str(text);
                continue;
            }
            Work::Owned(text) => {
                out.push_str(&text);
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
            Value::Str(s) => string(out, s.chars().map(u32::from)),
            Value::SurrogateStr(b) => string(out, super::py::wtf8_code_points(b).into_iter()),
            Value::Bytes(b) => bytes(out, b),
            Value::ByteArray(b) => {
                out.push_str("bytearray(");
                bytes(out, b);
                out.push(')');
            }
            Value::List(items) => seq(&mut stack, out, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => seq(&mut stack, out, "(", items, ",)"),
            Value::Tuple(items) => seq(&mut stack, out, "(", items, ")"),
            Value::Set(items) if items.is_empty() => out.push_str("set()"),
            Value::Set(items) => seq(&mut stack, out, "{", items, "}"),
            Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
            Value::FrozenSet(items) => seq(&mut stack, out, "frozenset({", items, "})"),
            Value::Dict(pairs) => dict(&mut stack, out, "{", pairs, "}"),
            Value::Complex { re, im } => out.push_str(&complex(*re, *im)),
            Value::Range { start, stop, step } if *step == 1 => {
                out.push_str(&format!("range({start}, {stop})"));
            }
            Value::Range { start, stop, step } => {
                out.push_str(&format!("range({start}, {stop}, {step})"));
            }
            Value::Decimal(d) => out.push_str(&d.to_string()),
            Value::DateTime(d) => out.push_str(&d.to_string()),
            Value::Date(d) => out.push_str(&format!(
                "datetime.date({}, {}, {})",
                d.year, d.month, d.day
            )),
            Value::Time(t) => out.push_str(&t.to_string()),
            Value::TimeDelta(d) => out.push_str(&d.to_string()),
            Value::TimeZone(tz) => out.push_str(&tz.to_string()),
            Value::NdArray(a) => out.push_str(&a.to_string()),
            Value::NumpyScalar(s) => out.push_str(&s.to_string()),
            Value::Global(g) => {
                let name = if g.is("builtins", &g.name) {
                    g.name.clone()
                } else {
                    g.to_string()
                };
                out.push_str(&format!("<class '{}'>", escape_name(&name)));
            }
            Value::Mapping(m) => match &m.kind {
                MappingKind::OrderedDict if m.pairs.is_empty() => out.push_str("OrderedDict()"),
                MappingKind::OrderedDict => {
                    // Python 3.11: OrderedDict([('a', 1)]).
                    out.push_str("OrderedDict([");
                    stack.push(Work::Text("])"));
                    for (i, (k, v)) in m.pairs.iter().enumerate().rev() {
                        stack.push(Work::Text(")"));
                        stack.push(Work::Value(v));
                        stack.push(Work::Text(", "));
                        stack.push(Work::Value(k));
                        stack.push(Work::Text(if i > 0 { ", (" } else { "(" }));
                    }
                }
                MappingKind::DefaultDict { factory } => {
                    let factory = match factory {
                        None => "None".to_owned(),
                        Some(g) => Value::Global(Box::new(g.clone())).to_string(),
                    };
                    out.push_str(&format!("defaultdict({factory}, "));
                    dict(&mut stack, out, "{", &m.pairs, "})");
                }
                MappingKind::Counter if m.pairs.is_empty() => out.push_str("Counter()"),
                MappingKind::Counter => dict(&mut stack, out, "Counter({", &m.pairs, "})"),
            },
            Value::Deque(d) => {
                let close = match d.maxlen {
                    Some(n) => format!("], maxlen={n})"),
                    None => "])".to_owned(),
                };
                stack.push(Work::Owned(close));
                out.push_str("deque([");
                for (i, item) in d.items.iter().enumerate().rev() {
                    stack.push(Work::Value(item));
                    if i > 0 {
                        stack.push(Work::Text(", "));
                    }
                }
            }
            Value::Object(o) => {
                out.push_str(&escape_name(&o.class.to_string()));
                out.push('(');
                stack.push(Work::Text(")"));
                // Written in reverse: pushed last, shown first.
                let mut parts: Vec<Vec<Work<'_>>> = Vec::new();
                for a in &o.args {
                    parts.push(vec![Work::Value(a)]);
                }
                for (k, v) in &o.kwargs {
                    parts.push(keyword(k, v));
                }
                match &o.state {
                    Some(Value::Dict(state)) => {
                        parts.extend(state.iter().map(|(k, v)| keyword(k, v)));
                    }
                    Some(state) => parts.push(vec![Work::Text("state="), Work::Value(state)]),
                    None => {}
                }
                if !o.items.is_empty() {
                    parts.push(vec![Work::Text("items="), Work::Owned(String::new())]);
                    let last = parts.len() - 1;
                    parts[last].pop();
                    let mut list = vec![Work::Text("items=[")];
                    for (i, item) in o.items.iter().enumerate() {
                        if i > 0 {
                            list.push(Work::Text(", "));
                        }
                        list.push(Work::Value(item));
                    }
                    list.push(Work::Text("]"));
                    parts[last] = list;
                }
                if !o.dict_items.is_empty() {
                    let mut map = vec![Work::Text("dict_items={")];
                    for (i, (k, v)) in o.dict_items.iter().enumerate() {
                        if i > 0 {
                            map.push(Work::Text(", "));
                        }
                        map.extend([Work::Value(k), Work::Text(": "), Work::Value(v)]);
                    }
                    map.push(Work::Text("}"));
                    parts.push(map);
                }
                if o.construct == Construct::New && parts.is_empty() {
                    // `cls.__new__(cls)` with no state: nothing more to show.
                }
                for (i, part) in parts.into_iter().enumerate().rev() {
                    stack.extend(part.into_iter().rev());
                    if i > 0 {
                        stack.push(Work::Text(", "));
                    }
                }
            }
        }
    }
}

/// `name=value` for a str key that is an identifier, `**{key: value}` otherwise.
fn keyword<'v>(k: &'v Value, v: &'v Value) -> Vec<Work<'v>> {
    match k {
        Value::Str(name)
            if !name.is_empty()
                && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            vec![Work::Owned(format!("{name}=")), Work::Value(v)]
        }
        _ => vec![
            Work::Text("**{"),
            Work::Value(k),
            Work::Text(": "),
            Work::Value(v),
            Work::Text("}"),
        ],
    }
}

/// A class name from the stream, with control characters escaped.
fn escape_name(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() || is_invisible(c) {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
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

fn dict<'v>(
    stack: &mut Vec<Work<'v>>,
    out: &mut String,
    open: &'static str,
    pairs: &'v [(Value, Value)],
    close: &'static str,
) {
    out.push_str(open);
    stack.push(Work::Text(close));
    for (i, (k, v)) in pairs.iter().enumerate().rev() {
        stack.push(Work::Value(v));
        stack.push(Work::Text(": "));
        stack.push(Work::Value(k));
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

/// A `str` from its code points (lone surrogates included).
fn string(out: &mut String, s: impl Iterator<Item = u32> + Clone) {
    let q = quote(
        s.clone().any(|c| c == u32::from('\'')),
        s.clone().any(|c| c == u32::from('"')),
    );
    out.push(q);
    for n in s {
        let Some(c) = char::from_u32(n) else {
            out.push_str(&format!("\\u{n:04x}"));
            continue;
        };
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

/// Python's `repr(complex)`: `1j`, `(1+2j)`, `(1.5-0j)`.
fn complex(re: f64, im: f64) -> String {
    // Python writes the parts with repr() but drops a trailing ".0".
    let part = |f: f64| {
        let s = float(f);
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    };
    let im_s = part(im);
    if re == 0.0 && re.is_sign_positive() {
        return format!("{im_s}j");
    }
    let sign = if im_s.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{im_s}j)", part(re))
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
    use crate::pickle::BigInt;

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
        check(Value::SurrogateStr(b"a\xed\xa0\x80".to_vec()), "'a\\ud800'");
        check(Value::Complex { re: 0.0, im: 1.0 }, "1j");
        check(Value::Complex { re: 1.0, im: -2.5 }, "(1-2.5j)");
        check(Value::Complex { re: -0.0, im: 0.0 }, "(-0+0j)");
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
