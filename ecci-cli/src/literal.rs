//! Reads `ecci send --data` text: a Python literal or JSON, into a [`Value`].
//!
//! One grammar covers both, since JSON is nearly a subset of Python's literals: `None`,
//! `True`, `False` (and JSON's `null`, `true`, `false`), integers, floats, strings with
//! single or double quotes (prefixes `b`, `r`, `u`, `br`, `rb`), lists, tuples, dicts and
//! sets. Escapes are Python's (`\n`, `\xhh`, `\uhhhh`, `\Uhhhhhhhh`, …); a JSON surrogate
//! pair `\ud83d\ude00` becomes its one character. The parser never recurses.

use ecci_proto::pickle::{BigInt, Value};

/// Most nesting accepted; deeper input is refused rather than built.
const MAX_DEPTH: usize = 100;

/// Why the text is not a literal: what was expected at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiteralError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for LiteralError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

/// An open bracket and what was read inside it so far.
enum Frame {
    List(Vec<Value>),
    Tuple {
        items: Vec<Value>,
        comma: bool,
    },
    /// `{` whose first item is not read yet, or read and not yet followed by `:` or `,`.
    Brace,
    Dict {
        pairs: Vec<(Value, Value)>,
        key: Option<Value>,
    },
    Set(Vec<Value>),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// Parses `src` as one literal.
pub(crate) fn parse(src: &str) -> Result<Value, LiteralError> {
    let mut p = Parser { src, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        p.skip_ws();
        // A value starts here: an opening bracket or an atom.
        let mut value = match p.peek() {
            Some(open @ ('[' | '(' | '{')) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(p.error(format!("nesting deeper than {MAX_DEPTH}")));
                }
                p.pos += 1;
                p.skip_ws();
                let (frame, close) = match open {
                    '[' => (Frame::List(Vec::new()), ']'),
                    '(' => (
                        Frame::Tuple {
                            items: Vec::new(),
                            comma: false,
                        },
                        ')',
                    ),
                    _ => (Frame::Brace, '}'),
                };
                if p.peek() != Some(close) {
                    stack.push(frame);
                    continue 'value;
                }
                p.pos += 1;
                match frame {
                    Frame::List(_) => Value::List(Vec::new()),
                    Frame::Tuple { .. } => Value::Tuple(Vec::new()),
                    _ => Value::Dict(Vec::new()),
                }
            }
            _ => p.atom()?,
        };
        // A value is complete: hand it to the innermost open bracket, closing brackets as
        // long as they end here.
        loop {
            p.skip_ws();
            let Some(frame) = stack.last_mut() else {
                return match p.peek() {
                    None => Ok(value),
                    Some(c) => Err(p.error(format!("unexpected {c:?} after the value"))),
                };
            };
            let next = p.peek();
            let (close, items_done) = match frame {
                Frame::List(items) => {
                    items.push(value);
                    (']', "',' or ']'")
                }
                Frame::Tuple { items, .. } => {
                    items.push(value);
                    (')', "',' or ')'")
                }
                Frame::Brace if next == Some(':') => {
                    *frame = Frame::Dict {
                        pairs: Vec::new(),
                        key: Some(value),
                    };
                    p.pos += 1;
                    continue 'value;
                }
                Frame::Brace => {
                    *frame = Frame::Set(vec![value]);
                    ('}', "',', ':' or '}'")
                }
                Frame::Set(items) => {
                    items.push(value);
                    ('}', "',' or '}'")
                }
                Frame::Dict {
                    key: key @ None, ..
                } => {
                    if next != Some(':') {
                        return Err(p.expected("':'"));
                    }
                    *key = Some(value);
                    p.pos += 1;
                    continue 'value;
                }
                Frame::Dict { pairs, key } => {
                    if let Some(k) = key.take() {
                        pairs.push((k, value));
                    }
                    ('}', "',' or '}'")
                }
            };
            match next {
                Some(',') => {
                    p.pos += 1;
                    if let Frame::Tuple { comma, .. } = frame {
                        *comma = true;
                    }
                    p.skip_ws();
                    if p.peek() != Some(close) {
                        continue 'value;
                    }
                    p.pos += 1;
                }
                Some(c) if c == close => p.pos += 1,
                _ => return Err(p.expected(items_done)),
            }
            value = match stack.pop() {
                Some(Frame::List(items)) => Value::List(items),
                // `(x)` is x itself; `(x,)` is a tuple.
                Some(Frame::Tuple { mut items, comma }) if !comma && items.len() == 1 => {
                    items.pop().unwrap_or_default()
                }
                Some(Frame::Tuple { items, .. }) => Value::Tuple(items),
                Some(Frame::Set(items)) => Value::Set(items),
                Some(Frame::Dict { pairs, .. }) => Value::Dict(pairs),
                Some(Frame::Brace) | None => return Err(p.error("internal parser state".into())),
            };
        }
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, message: String) -> LiteralError {
        LiteralError {
            offset: self.pos,
            message,
        }
    }

    fn expected(&self, what: &str) -> LiteralError {
        let found = match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_owned(),
        };
        self.error(format!("expected {what}, found {found}"))
    }

    fn atom(&mut self) -> Result<Value, LiteralError> {
        let rest = self.rest();
        let word_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..word_len];
        let keyword = match word {
            "None" | "null" => Some(Value::None),
            "True" | "true" => Some(Value::Bool(true)),
            "False" | "false" => Some(Value::Bool(false)),
            _ => None,
        };
        if let Some(v) = keyword {
            self.pos += word_len;
            return Ok(v);
        }
        let after_word = rest[word_len..].chars().next();
        if matches!(after_word, Some('\'' | '"'))
            && matches!(
                word.to_ascii_lowercase().as_str(),
                "" | "b" | "r" | "u" | "br" | "rb"
            )
        {
            let lower = word.to_ascii_lowercase();
            self.pos += word_len;
            return self.string(lower.contains('b'), lower.contains('r'));
        }
        match rest.chars().next() {
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            _ => Err(self.expected("a value")),
        }
    }

    fn number(&mut self) -> Result<Value, LiteralError> {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                let sign_ok = (c == '-' || c == '+') && (i == 0 || rest[..i].ends_with(['e', 'E']));
                !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '_') || sign_ok)
            })
            .map_or(rest.len(), |(i, _)| i);
        let text: String = rest[..len].chars().filter(|&c| c != '_').collect();
        self.pos += len;
        let bad = || LiteralError {
            offset: start,
            message: format!("invalid number {:?}", &rest[..len]),
        };
        if text.contains(['.', 'e', 'E']) {
            let f: f64 = text.parse().map_err(|_| bad())?;
            return Ok(Value::Float(f));
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        let big: i128 = text.parse().map_err(|_| LiteralError {
            offset: start,
            message: format!("invalid or too large integer {:?}", &rest[..len]),
        })?;
        Ok(Value::BigInt(BigInt::from_i128(big)))
    }

    fn string(&mut self, bytes: bool, raw: bool) -> Result<Value, LiteralError> {
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.expected("a quote"));
        };
        self.pos += 1;
        let mut out = String::new();
        let mut raw_bytes = Vec::new();
        let unterminated = || LiteralError {
            offset: start,
            message: "unterminated string".into(),
        };
        loop {
            let c = self.peek().ok_or_else(unterminated)?;
            let at = self.pos;
            self.pos += c.len_utf8();
            let ch = match c {
                c if c == quote => break,
                '\\' if raw => {
                    // A raw string keeps the backslash, and an escaped quote does not end it.
                    let next = self.peek().ok_or_else(unterminated)?;
                    self.pos += next.len_utf8();
                    push(&mut out, &mut raw_bytes, bytes, '\\', at)?;
                    next
                }
                '\\' => match self.escape(bytes, &mut raw_bytes)? {
                    Some(ch) => ch,
                    None => continue,
                },
                c => c,
            };
            push(&mut out, &mut raw_bytes, bytes, ch, at)?;
        }
        Ok(if bytes {
            Value::Bytes(raw_bytes)
        } else {
            Value::Str(out)
        })
    }

    /// After a backslash: the character it stands for, or `None` when it wrote a byte
    /// (`\xhh` in bytes) into `raw_bytes` itself.
    fn escape(
        &mut self,
        bytes: bool,
        raw_bytes: &mut Vec<u8>,
    ) -> Result<Option<char>, LiteralError> {
        let at = self.pos - 1;
        let c = self
            .peek()
            .ok_or_else(|| self.error("unterminated string".into()))?;
        self.pos += c.len_utf8();
        let simple = match c {
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            '0' => Some('\0'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '/' => Some(c),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok(Some(ch));
        }
        let digits = match c {
            'x' => 2,
            'u' if !bytes => 4,
            'U' if !bytes => 8,
            _ => {
                return Err(LiteralError {
                    offset: at,
                    message: format!("unknown escape \\{c}"),
                });
            }
        };
        let mut n = self.hex(digits, at)?;
        if bytes {
            raw_bytes.push(u8::try_from(n).unwrap_or(0));
            return Ok(None);
        }
        // A JSON surrogate pair: \ud83d\ude00.
        if (0xd800..0xdc00).contains(&n) && self.rest().starts_with("\\u") {
            let save = self.pos;
            self.pos += 2;
            let low = self.hex(4, at)?;
            if (0xdc00..0xe000).contains(&low) {
                n = 0x10000 + ((n - 0xd800) << 10) + (low - 0xdc00);
            } else {
                self.pos = save;
            }
        }
        char::from_u32(n).map(Some).ok_or(LiteralError {
            offset: at,
            message: format!("escape \\{c}{n:x} is not a character"),
        })
    }

    fn hex(&mut self, digits: usize, at: usize) -> Result<u32, LiteralError> {
        let text = self.rest().get(..digits).unwrap_or("");
        let bad = || LiteralError {
            offset: at,
            message: format!("escape needs {digits} hex digits"),
        };
        if text.len() != digits || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        self.pos += digits;
        u32::from_str_radix(text, 16).map_err(|_| bad())
    }
}

fn push(
    out: &mut String,
    raw_bytes: &mut Vec<u8>,
    bytes: bool,
    ch: char,
    at: usize,
) -> Result<(), LiteralError> {
    if !bytes {
        out.push(ch);
        return Ok(());
    }
    let b = u8::try_from(u32::from(ch))
        .ok()
        .filter(u8::is_ascii)
        .ok_or(LiteralError {
            offset: at,
            message: "bytes can only contain ASCII characters".into(),
        })?;
    raw_bytes.push(b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repr::repr;

    /// Parses `src` and shows it as Python would (`repr`), or the error.
    #[track_caller]
    fn check(src: &str, expected: &str) {
        let got = match parse(src) {
            Ok(v) => repr(&v, 10_000),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{src:?}");
    }

    #[test]
    fn literals() {
        check("None", "None");
        check(" True ", "True");
        check("null", "None");
        check("false", "False");
        check("42", "42");
        check("-7", "-7");
        check("1_000", "1000");
        check("1.5", "1.5");
        check("-2e3", "-2000.0");
        check("1e-7", "1e-07");
        check(
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105727",
        );
        check("'hi'", "'hi'");
        check(r#""it's""#, r#""it's""#);
        check(r"'a\nb\x41\u00e9'", r"'a\nbAé'");
        check(r#""\ud83d\ude00""#, "'😀'");
        check(r"b'\x00ab'", r"b'\x00ab'");
        check(r"r'a\nb'", r"'a\\nb'");
        check("[1, 'a', None]", "[1, 'a', None]");
        check("[1, 2,]", "[1, 2]");
        check("[]", "[]");
        check("()", "()");
        check("(1)", "1");
        check("(1,)", "(1,)");
        check("(1, 2)", "(1, 2)");
        check("{}", "{}");
        check("{'a': [1, b'x', None]}", "{'a': [1, b'x', None]}");
        check(
            r#"{"a": {"b": [true, null]}, "c": 1.0}"#,
            "{'a': {'b': [True, None]}, 'c': 1.0}",
        );
        check("{1, 2}", "{1, 2}");
        check("{(1, 2): 'pair'}", "{(1, 2): 'pair'}");
        check("[[[]]]", "[[[]]]");
    }

    #[test]
    fn errors() {
        check(
            "",
            "error: expected a value, found end of input at offset 0",
        );
        check("[1 2]", "error: expected ',' or ']', found '2' at offset 3");
        check(
            "{'a' 1}",
            "error: expected ',', ':' or '}', found '1' at offset 5",
        );
        check(
            "{'a': 1 'b'}",
            "error: expected ',' or '}', found '\\'' at offset 8",
        );
        check("'abc", "error: unterminated string at offset 0");
        check("1 2", "error: unexpected '2' after the value at offset 2");
        check("hello", "error: expected a value, found 'h' at offset 0");
        check(r"'\q'", r"error: unknown escape \q at offset 1");
        check(
            "b'é'",
            "error: bytes can only contain ASCII characters at offset 2",
        );
        check("1.2.3", "error: invalid number \"1.2.3\" at offset 0");
        check(
            &"9".repeat(50),
            &format!(
                "error: invalid or too large integer \"{}\" at offset 0",
                "9".repeat(50)
            ),
        );
        check(
            &"[".repeat(101),
            "error: nesting deeper than 100 at offset 100",
        );
        check(
            "[1,",
            "error: expected a value, found end of input at offset 3",
        );
    }
}

/// What Python's `ast.literal_eval` makes of the same text, shown by `repr`.
#[cfg(test)]
mod cpython {
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn agrees_with_literal_eval() {
        let cases = [
            "None",
            "[1, -2, +3, 1_000, 0.5, -1e-7, 1E16, 12345678901234567890]",
            r#"{'a': (1,), "b": (), 'c': {1, 2}, 'd': {}}"#,
            r"'tab\there\x41\u00e9\U0001F600\\ \'q\' \a\b\f\v\0'",
            r#""it's""#,
            r"b'\x00\xff\n\'' ",
            r"rb'\d+' ",
            r"R'\n'",
            "u'unicode é'",
            "[[1, [2, [3, []]]], ((1, 2), 3)]",
            "{(1, 'a'): [b'x', None, True, False]}",
            "(1)",
            "( 1 , 2 , )",
            "{ 'k' : 1 , }",
            ".5",
            "5.",
        ];
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import ast, sys\n\
                 for s in sys.stdin.read().split('\\x00'):\n\
                 \x20   print(repr(ast.literal_eval(s.strip())))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(cases.join("\0").as_bytes())
            .expect("cases written");
        let out = child.wait_with_output().expect("python3 ends");
        assert!(out.status.success(), "python3 failed");
        let expected = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(expected.lines().count(), cases.len());
        for (case, want) in cases.iter().zip(expected.lines()) {
            let value = super::parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(crate::repr::repr(&value, 10_000), want, "{case}");
        }
    }
}

/// `parse` reads back what `repr` writes, for every value a literal can spell.
#[cfg(test)]
mod round_trip {
    use ecci_proto::pickle::Value;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<String>().prop_map(Value::Str),
            any::<Vec<u8>>().prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
                prop::collection::vec((any::<String>(), inner), 0..4).prop_map(
                    |pairs| Value::Dict(
                        pairs.into_iter().map(|(k, v)| (Value::Str(k), v)).collect()
                    )
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn parse_reads_repr(v in value()) {
            let text = crate::repr::repr(&v, usize::MAX / 8);
            prop_assert_eq!(super::parse(&text), Ok(v), "{}", text);
        }
    }
}
