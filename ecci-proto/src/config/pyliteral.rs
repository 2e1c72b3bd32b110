//! The workspace's one parser of Python literals (what `ast.literal_eval` reads).
//!
//! The platform writes some variables as Python source (`ECCI_PUB_TARGETS` is
//! `{'worker1': 'broker1'}`) and the Python SDK reads them with
//! `ast.literal_eval`. For those, [`parse_dict`] and [`parse_list`] accept the subset
//! of that syntax the variables use: one dict of strings to strings, or one list (or
//! tuple) of strings, with comments. [`parse_str_dict`] also takes numbers, `True`,
//! `False` and `None` as values and turns them into what Python's `str()` shows, as the
//! Python SDK does when it puts a broker id into a topic. Anything else (nesting, sets,
//! bytes, f-strings) is an error that says where the input went wrong and what was
//! expected there.
//!
//! [`parse_value`] reads any literal into a pickle [`Value`] (what `ecci send --data`
//! takes): `None`, booleans, ints, floats, strings, bytes, lists, tuples, dicts and
//! sets, nested up to [`MAX_DEPTH`], and JSON's `null`, `true` and `false` too, so that
//! JSON text reads as well. `Value`'s `Display` is the reverse: Python's `repr`.
//!
//! Strings follow Python 3: single, double or triple quotes; `u`, `r`, and (for
//! [`parse_value`]) `b`, `br`, `rb` prefixes; the escapes
//! `\\ \' \" \a \b \f \n \r \t \v \ooo \xhh \uhhhh \Uhhhhhhhh` and
//! backslash-newline; a JSON surrogate pair `\ud83d\ude00` is its one character; an
//! unknown escape such as `\d` keeps its backslash; adjacent literals are concatenated
//! (`'a' "b"` is `'ab'`). `\N{…}` escapes are refused.
//!
//! The parser never recurses and never panics; offsets in errors are byte offsets
//! into the input.
//!
//! ```
//! use ecci_proto::config::pyliteral::{parse_dict, parse_list};
//! assert_eq!(parse_dict("{'a': 'b'}  # the targets").unwrap(), [("a".into(), "b".into())]);
//! let d = parse_dict(r#"{'containerB': 'broker1', "worker2": "broker2",}"#).unwrap();
//! assert_eq!(d, [("containerB".into(), "broker1".into()), ("worker2".into(), "broker2".into())]);
//! assert_eq!(parse_list("['a', \"b\"]").unwrap(), ["a", "b"]);
//! let e = parse_dict("{'a': 'b' x}").unwrap_err();
//! assert_eq!(e.to_string(), "expected ',' or '}' at offset 10, found 'x'");
//!
//! use ecci_proto::config::pyliteral::parse_value;
//! let v = parse_value(r#"{'a': [1, b'x', None], "b": {"c": true}}"#).unwrap();
//! assert_eq!(v.to_string(), "{'a': [1, b'x', None], 'b': {'c': True}}");
//! ```

use std::collections::HashMap;
use std::fmt;

use crate::pickle::{BigInt, Value};

/// Why a string is not an accepted Python literal.
///
/// ```
/// use ecci_proto::config::pyliteral::{parse_list, Found, LiteralError};
/// assert_eq!(
///     parse_list("[1]"),
///     Err(LiteralError::Unexpected { offset: 1, expected: "a string or ']'", found: Found::Char('1') }),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiteralError {
    /// Something other than what the grammar allows at `offset`.
    #[error("expected {expected} at offset {offset}, found {found}")]
    Unexpected {
        /// Byte offset of the unexpected input.
        offset: usize,
        /// What would have been accepted there, e.g. `"',' or '}'"`.
        expected: &'static str,
        /// What was there instead.
        found: Found,
    },
    /// A string literal whose closing quote is missing (a line break ends a
    /// single-quoted string, as in Python).
    #[error("unterminated string starting at offset {offset}")]
    UnterminatedString {
        /// Byte offset of the string's opening quote (or prefix).
        offset: usize,
    },
    /// A backslash escape that Python rejects or that has no Rust `char`.
    #[error("invalid escape at offset {offset}: {reason}")]
    InvalidEscape {
        /// Byte offset of the backslash.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Brackets nested deeper than [`MAX_DEPTH`] ([`parse_value`]).
    #[error("nesting deeper than {max} at offset {offset}")]
    TooDeep {
        /// Byte offset of the bracket that opens one level too many.
        offset: usize,
        /// The most nesting accepted.
        max: usize,
    },
    /// An int beyond 128 bits ([`parse_value`]; Python's are unbounded).
    #[error("integer at offset {offset} is beyond 128 bits")]
    IntTooLarge {
        /// Byte offset of the number (after its sign).
        offset: usize,
    },
    /// A bytes literal with a character that is not ASCII, or a str and a bytes literal
    /// side by side ([`parse_value`]).
    #[error("invalid bytes literal at offset {offset}: {reason}")]
    InvalidBytes {
        /// Byte offset of the offending character or literal.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// What the parser found where it expected something else.
///
/// ```
/// use ecci_proto::config::pyliteral::Found;
/// assert_eq!(Found::Char('x').to_string(), "'x'");
/// assert_eq!(Found::End.to_string(), "end of input");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// This character.
    Char(char),
    /// The end of the input.
    End,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Char(c) => write!(f, "{c:?}"),
            Found::End => f.write_str("end of input"),
        }
    }
}

/// Parses a Python dict literal whose keys and values are strings.
///
/// The pairs come back in source order. A repeated key keeps the value written
/// last, at the position where the key first appeared: exactly what Python's
/// `dict` does, so a variable means the same to Rust and Python containers.
///
/// ```
/// use ecci_proto::config::pyliteral::parse_dict;
/// let d = parse_dict("{'a': '1', 'b': '2', 'a': '3'}").unwrap();
/// assert_eq!(d, [("a".into(), "3".into()), ("b".into(), "2".into())]);
/// assert_eq!(parse_dict(" {} ").unwrap(), []);
/// assert!(parse_dict("{'a': 1}").is_err());
/// ```
///
/// # Errors
///
/// A [`LiteralError`] if `src` is anything but one such dict, surrounded by
/// optional whitespace.
pub fn parse_dict(src: &str) -> Result<Vec<(String, String)>, LiteralError> {
    dict(src, false).map(|pairs| pairs.into_iter().map(|(k, v)| (k, v.text)).collect())
}

/// A dict value as Python's `str()` shows it, and what kind of literal it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrValue {
    /// `str(value)`: the string itself, or e.g. `1`, `2.5`, `True`, `None`.
    pub text: String,
    /// The Python type of the literal: `str`, `int`, `float`, `bool` or `NoneType`.
    pub kind: &'static str,
}

/// Parses a Python dict literal with string keys whose values are strings, numbers
/// (`int` and `float`, with an optional sign), `True`, `False` or `None`; each value
/// comes back as Python's `str()` of it (`{'a': 0x1F}` → `"31"`, `{'a': 1e16}` →
/// `"1e+16"`) with its kind. Keys as in [`parse_dict`].
///
/// ```
/// use ecci_proto::config::pyliteral::parse_str_dict;
/// let d = parse_str_dict("{'a': 1, 'b': 'x', 'c': 2.50, 'd': None}").unwrap();
/// let shown: Vec<(&str, &str, &str)> =
///     d.iter().map(|(k, v)| (k.as_str(), v.text.as_str(), v.kind)).collect();
/// assert_eq!(
///     shown,
///     [("a", "1", "int"), ("b", "x", "str"), ("c", "2.5", "float"), ("d", "None", "NoneType")]
/// );
/// assert!(parse_str_dict("{'a': [1]}").is_err());
/// ```
///
/// # Errors
///
/// A [`LiteralError`] if `src` is anything but one such dict, surrounded by
/// optional whitespace.
pub fn parse_str_dict(src: &str) -> Result<Vec<(String, StrValue)>, LiteralError> {
    dict(src, true)
}

fn dict(src: &str, scalars: bool) -> Result<Vec<(String, StrValue)>, LiteralError> {
    let mut p = Parser::new(src);
    p.skip_ws();
    p.expect('{', "'{'")?;
    let mut pairs: Vec<(String, StrValue)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    loop {
        p.skip_ws();
        if p.eat('}') {
            break;
        }
        let key = p.string("a string or '}'")?;
        p.skip_ws();
        p.expect(':', "':'")?;
        p.skip_ws();
        let value = if scalars && p.string_start().is_none() {
            p.scalar()?
        } else {
            StrValue {
                text: p.string(if scalars {
                    "a string, number, True, False or None"
                } else {
                    "a string"
                })?,
                kind: "str",
            }
        };
        match index.get(&key) {
            Some(&i) => {
                if let Some(pair) = pairs.get_mut(i) {
                    pair.1 = value;
                }
            }
            None => {
                index.insert(key.clone(), pairs.len());
                pairs.push((key, value));
            }
        }
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        if p.eat('}') {
            break;
        }
        return Err(p.unexpected("',' or '}'"));
    }
    p.end()?;
    Ok(pairs)
}

/// Parses a Python list or tuple literal of strings.
///
/// Duplicates are kept; the caller decides what they mean. A parenthesised
/// single string without a comma, `('a')`, is a string in Python, not a tuple,
/// and is refused.
///
/// ```
/// use ecci_proto::config::pyliteral::parse_list;
/// assert_eq!(parse_list("['a', 'b',]").unwrap(), ["a", "b"]);
/// assert_eq!(parse_list("('a',)").unwrap(), ["a"]);
/// assert_eq!(parse_list("()").unwrap(), Vec::<String>::new());
/// assert!(parse_list("('a')").is_err());
/// ```
///
/// # Errors
///
/// A [`LiteralError`] if `src` is anything but one such list or tuple,
/// surrounded by optional whitespace.
pub fn parse_list(src: &str) -> Result<Vec<String>, LiteralError> {
    let mut p = Parser::new(src);
    p.skip_ws();
    let (close, item_or_close, sep_or_close) = if p.eat('[') {
        (']', "a string or ']'", "',' or ']'")
    } else if p.eat('(') {
        (')', "a string or ')'", "',' or ')'")
    } else {
        return Err(p.unexpected("'[' or '('"));
    };
    let mut items = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(close) {
            break;
        }
        items.push(p.string(item_or_close)?);
        p.skip_ws();
        if p.eat(',') {
            continue;
        }
        if close == ')' && items.len() == 1 {
            // `('a')` is the string 'a' in Python; only `('a',)` is a tuple.
            return Err(p.unexpected("','"));
        }
        if p.eat(close) {
            break;
        }
        return Err(p.unexpected(sep_or_close));
    }
    p.end()?;
    Ok(items)
}

/// The most nesting [`parse_value`] accepts; deeper input is refused rather than built.
pub const MAX_DEPTH: usize = 100;

/// Parses any Python literal (or JSON text) into a [`Value`]: `None`, `True`, `False`
/// (and JSON's `null`, `true`, `false`), ints (up to 128 bits), floats, str and bytes,
/// lists, tuples, dicts and sets, nested up to [`MAX_DEPTH`]. `(x)` is `x` and `(x,)` a
/// tuple, as in Python; `{}` is a dict. Dict pairs keep their order and repeats (the
/// receiver's `dict` keeps the last). The parser is iterative: depth costs heap, not stack.
///
/// ```
/// use ecci_proto::config::pyliteral::parse_value;
/// use ecci_proto::pickle::Value;
/// assert_eq!(parse_value("(1,)").unwrap(), Value::Tuple(vec![Value::Int(1)]));
/// assert_eq!(parse_value("{1, 2}").unwrap().to_string(), "{1, 2}");
/// assert_eq!(parse_value("[0x1F, -2.5e3, 'a' 'b']").unwrap().to_string(), "[31, -2500.0, 'ab']");
/// assert_eq!(
///     parse_value("[1 2]").unwrap_err().to_string(),
///     "expected ',' or ']' at offset 3, found '2'"
/// );
/// ```
///
/// # Errors
///
/// A [`LiteralError`] if `src` is anything but one literal, surrounded by optional
/// whitespace and comments.
pub fn parse_value(src: &str) -> Result<Value, LiteralError> {
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

    let mut p = Parser::new(src);
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        p.skip_ws();
        // A value starts here: an opening bracket or an atom.
        let mut value = match p.peek() {
            Some(open @ ('[' | '(' | '{')) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(LiteralError::TooDeep {
                        offset: p.pos,
                        max: MAX_DEPTH,
                    });
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
                if !p.eat(close) {
                    stack.push(frame);
                    continue 'value;
                }
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
                p.end()?;
                return Ok(value);
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
                        return Err(p.unexpected("':'"));
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
                    if !p.eat(close) {
                        continue 'value;
                    }
                }
                Some(c) if c == close => p.pos += 1,
                _ => return Err(p.unexpected(items_done)),
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
                // A `Brace` frame always becomes a `Dict` or `Set` above.
                Some(Frame::Brace) | None => return Err(p.unexpected("a value")),
            };
        }
    }
}

/// A string literal's opening at the cursor.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// The length of its prefix (`u`, `r`, `b`, `br`, `rb`, any case).
    prefix: usize,
    raw: bool,
    bytes: bool,
}

/// What string literals decode into.
enum Text {
    Str(String),
    Bytes(Vec<u8>),
}

impl Text {
    /// Appends the character written at `at`; a bytes literal takes ASCII only.
    fn push(&mut self, at: usize, c: char) -> Result<(), LiteralError> {
        match self {
            Text::Str(s) => s.push(c),
            Text::Bytes(b) => b.push(u8::try_from(c).ok().filter(u8::is_ascii).ok_or(
                LiteralError::InvalidBytes {
                    offset: at,
                    reason: "a bytes literal holds ASCII characters only",
                },
            )?),
        }
        Ok(())
    }
}

/// A number's value: the decimal digits of an int (any length), or a float.
enum Number {
    Int(String),
    Float(f64),
}

/// A cursor over the input; `pos` is always on a char boundary.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, expected: &'static str) -> Result<(), LiteralError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn unexpected(&self, expected: &'static str) -> LiteralError {
        LiteralError::Unexpected {
            offset: self.pos,
            expected,
            found: self.peek().map_or(Found::End, Found::Char),
        }
    }

    /// Skips what Python's tokenizer treats as whitespace inside brackets, and
    /// comments (`#` to the end of the line).
    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r' | '\x0c') => self.pos += 1,
                Some('#') => {
                    let line = self.rest().find(['\n', '\r']).unwrap_or(self.rest().len());
                    self.pos += line;
                }
                _ => return,
            }
        }
    }

    /// A number, `True`, `False` or `None` at the cursor, as Python's `str()` shows it.
    fn scalar(&mut self) -> Result<StrValue, LiteralError> {
        let rest = self.rest();
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        for (word, kind) in [("True", "bool"), ("False", "bool"), ("None", "NoneType")] {
            if &rest[..word_len] == word {
                self.pos += word.len();
                return Ok(StrValue {
                    text: word.to_owned(),
                    kind,
                });
            }
        }
        let (negative, _, number) = self.number("a string, number, True, False or None")?;
        let (text, kind) = match number {
            Number::Int(digits) => (digits, "int"),
            Number::Float(f) => (python_float_repr(f), "float"),
        };
        let text = match (negative, text.strip_prefix('-')) {
            (false, _) => text,
            (true, Some(positive)) => positive.to_owned(),
            // Python's str(-0) is '0'; str(-0.0) is '-0.0'.
            (true, None) if text == "0" => text,
            (true, None) => format!("-{text}"),
        };
        Ok(StrValue { text, kind })
    }

    /// A literal at the cursor that is not a bracket ([`parse_value`]).
    fn atom(&mut self) -> Result<Value, LiteralError> {
        if let Some(start) = self.string_start() {
            return Ok(match self.literal(start, true)? {
                Text::Str(s) => Value::Str(s),
                Text::Bytes(b) => Value::Bytes(b),
            });
        }
        let rest = self.rest();
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let keyword = match &rest[..word_len] {
            "None" | "null" => Some(Value::None),
            "True" | "true" => Some(Value::Bool(true)),
            "False" | "false" => Some(Value::Bool(false)),
            _ => None,
        };
        if let Some(value) = keyword {
            self.pos += word_len;
            return Ok(value);
        }
        let (negative, start, number) = self.number("a value")?;
        Ok(match number {
            Number::Float(f) => Value::Float(if negative { -f } else { f }),
            Number::Int(digits) => {
                let n: i128 = digits
                    .parse()
                    .map_err(|_| LiteralError::IntTooLarge { offset: start })?;
                let n = if negative { -n } else { n };
                i64::try_from(n).map_or_else(|_| Value::BigInt(BigInt::from_i128(n)), Value::Int)
            }
        })
    }

    /// An optionally signed int or float at the cursor: whether it is negative, the
    /// offset of its digits, and its value; `expected` names what else would have done.
    fn number(&mut self, expected: &'static str) -> Result<(bool, usize, Number), LiteralError> {
        let negative = match self.peek() {
            Some(sign @ ('-' | '+')) => {
                self.pos += 1;
                // Python allows whitespace between a sign and its number.
                self.skip_ws();
                sign == '-'
            }
            _ => false,
        };
        let start = self.pos;
        if !matches!(self.peek(), Some('0'..='9' | '.')) {
            return Err(self.unexpected(expected));
        }
        // The token: digits, letters, `_`, `.`, and a sign right after the exponent's
        // `e` of a decimal number.
        let bytes = self.src.as_bytes();
        let hex = self.rest().starts_with("0x") || self.rest().starts_with("0X");
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            let sign_ok = !hex && end > start && matches!(bytes[end - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric()
                || b == b'_'
                || b == b'.'
                || (sign_ok && matches!(b, b'+' | b'-'))
            {
                end += 1;
            } else {
                break;
            }
        }
        let Some(number) = python_number(&self.src[start..end]) else {
            return Err(LiteralError::Unexpected {
                offset: start,
                expected: "a Python int or float",
                found: self.peek().map_or(Found::End, Found::Char),
            });
        };
        self.pos = end;
        Ok((negative, start, number))
    }

    fn end(&mut self) -> Result<(), LiteralError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of input")),
        }
    }

    /// The opening of a string literal at the cursor (prefix and quote), if one starts
    /// here.
    fn string_start(&self) -> Option<Start> {
        let b = self.rest().as_bytes();
        let letters = b
            .iter()
            .take(3)
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        if !matches!(b.get(letters), Some(b'\'' | b'"')) {
            return None;
        }
        let prefix = b.get(..letters)?.to_ascii_lowercase();
        let (raw, bytes) = match prefix.as_slice() {
            b"" | b"u" => (false, false),
            b"r" => (true, false),
            b"b" => (false, true),
            b"br" | b"rb" => (true, true),
            _ => return None,
        };
        Some(Start {
            prefix: letters,
            raw,
            bytes,
        })
    }

    /// One str literal, or several adjacent ones concatenated as Python does.
    fn string(&mut self, expected: &'static str) -> Result<String, LiteralError> {
        let Some(start) = self.string_start().filter(|s| !s.bytes) else {
            return Err(self.unexpected(expected));
        };
        match self.literal(start, false)? {
            Text::Str(s) => Ok(s),
            // `literal` started a str and takes no bytes after it.
            Text::Bytes(_) => Err(self.unexpected(expected)),
        }
    }

    /// The string literal that opens with `first` at the cursor, and the ones adjacent to
    /// it, concatenated; str and bytes do not mix. Without `bytes`, a bytes literal after
    /// a str one is not part of it (whatever follows the str says what is wrong).
    fn literal(&mut self, first: Start, bytes: bool) -> Result<Text, LiteralError> {
        let mut out = if first.bytes {
            Text::Bytes(Vec::new())
        } else {
            Text::Str(String::new())
        };
        self.string_piece(first, &mut out)?;
        loop {
            let before = self.pos;
            self.skip_ws();
            match self.string_start().filter(|next| bytes || !next.bytes) {
                Some(next) if next.bytes == first.bytes => self.string_piece(next, &mut out)?,
                Some(_) => {
                    return Err(LiteralError::InvalidBytes {
                        offset: self.pos,
                        reason: "a str and a bytes literal side by side",
                    });
                }
                None => {
                    self.pos = before;
                    return Ok(out);
                }
            }
        }
    }

    fn string_piece(&mut self, start: Start, out: &mut Text) -> Result<(), LiteralError> {
        let begin = self.pos;
        self.pos += start.prefix;
        let Some(quote) = self.bump() else {
            return Err(LiteralError::UnterminatedString { offset: begin });
        };
        let triple = {
            let mut rest = self.rest().chars();
            rest.next() == Some(quote) && rest.next() == Some(quote)
        };
        if triple {
            self.pos += 2 * quote.len_utf8();
        }
        let unterminated = LiteralError::UnterminatedString { offset: begin };
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                return Err(unterminated);
            };
            match c {
                c if c == quote => {
                    if !triple {
                        return Ok(());
                    }
                    let mut rest = self.rest().chars();
                    if rest.next() == Some(quote) && rest.next() == Some(quote) {
                        self.pos += 2 * quote.len_utf8();
                        return Ok(());
                    }
                    out.push(at, c)?;
                }
                '\n' | '\r' if !triple => return Err(unterminated),
                '\\' if start.raw => {
                    // A raw string keeps the backslash and the character after it,
                    // which therefore cannot end the string.
                    out.push(at, '\\')?;
                    let next_at = self.pos;
                    match self.bump() {
                        Some('\n' | '\r') if !triple => return Err(unterminated),
                        Some(next) => out.push(next_at, next)?,
                        None => return Err(unterminated),
                    }
                }
                '\\' if self.peek().is_none() => return Err(unterminated),
                '\\' => self.escape(at, out)?,
                c => out.push(at, c)?,
            }
        }
    }

    /// Decodes the escape whose backslash is at `at`; the cursor is after it.
    fn escape(&mut self, at: usize, out: &mut Text) -> Result<(), LiteralError> {
        let invalid = |reason| LiteralError::InvalidEscape { offset: at, reason };
        // The caller has checked that something follows the backslash.
        let Some(c) = self.bump() else {
            return Err(invalid("nothing follows the backslash"));
        };
        let ch = |n: u32, reason| char::from_u32(n).ok_or_else(|| invalid(reason));
        match (c, out) {
            ('\n', _) => {}
            ('\r', _) => {
                self.eat('\n');
            }
            ('\\' | '\'' | '"', out) => out.push(at, c)?,
            ('a', out) => out.push(at, '\x07')?,
            ('b', out) => out.push(at, '\x08')?,
            ('f', out) => out.push(at, '\x0c')?,
            ('n', out) => out.push(at, '\n')?,
            ('r', out) => out.push(at, '\r')?,
            ('t', out) => out.push(at, '\t')?,
            ('v', out) => out.push(at, '\x0b')?,
            ('0'..='7', out) => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                match out {
                    Text::Str(s) => s.push(ch(value, "not a character")?),
                    Text::Bytes(b) => b.push(
                        u8::try_from(value).map_err(|_| invalid("octal escape beyond \\377"))?,
                    ),
                }
            }
            ('x', out) => {
                let n = self
                    .hex(2)
                    .ok_or_else(|| invalid("\\x needs two hex digits"))?;
                match out {
                    Text::Str(s) => s.push(ch(n, "\\x needs two hex digits")?),
                    Text::Bytes(b) => b.push(u8::try_from(n).unwrap_or(0)),
                }
            }
            // Not escapes in bytes: kept as written, as unknown escapes are.
            ('u' | 'U' | 'N', out @ Text::Bytes(_)) => {
                out.push(at, '\\')?;
                out.push(at, c)?;
            }
            ('u', Text::Str(s)) => {
                let reason = "\\u needs four hex digits naming a character";
                let mut n = self.hex(4).ok_or_else(|| invalid(reason))?;
                // A JSON surrogate pair, `\ud83d\ude00`, is its one character.
                if (0xd800..0xdc00).contains(&n) && self.rest().starts_with("\\u") {
                    let save = self.pos;
                    self.pos += 2;
                    match self.hex(4) {
                        Some(low) if (0xdc00..0xe000).contains(&low) => {
                            n = 0x10000 + ((n - 0xd800) << 10) + (low - 0xdc00);
                        }
                        _ => self.pos = save,
                    }
                }
                s.push(ch(n, reason)?);
            }
            ('U', Text::Str(s)) => {
                let reason = "\\U needs eight hex digits naming a character";
                let n = self.hex(8).ok_or_else(|| invalid(reason))?;
                s.push(ch(n, reason)?);
            }
            ('N', Text::Str(_)) => return Err(invalid("\\N{...} escapes are not supported")),
            // Python keeps unknown escapes as written (with a warning).
            (c, out) => {
                out.push(at, '\\')?;
                out.push(at + 1, c)?;
            }
        }
        Ok(())
    }

    /// Reads exactly `n` hex digits; `None` if there are fewer.
    fn hex(&mut self, n: usize) -> Option<u32> {
        let digits = self.rest().get(..n)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = u32::from_str_radix(digits, 16).ok()?;
        self.pos += n;
        Some(value)
    }
}

#[cfg(test)]
mod tests;

/// The int or float literal `token` (no sign); `None` for what is not one (or a hex,
/// octal or binary int beyond 128 bits).
fn python_number(token: &str) -> Option<Number> {
    // Underscores only between digits, or right after a base prefix (PEP 515).
    let b = token.as_bytes();
    let underscores_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0
                && i + 1 < b.len()
                && b[i - 1].is_ascii_alphanumeric()
                && b[i + 1].is_ascii_alphanumeric())
    });
    if !underscores_ok {
        return None;
    }
    let lower: String = token
        .chars()
        .filter(|&c| c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            if digits.is_empty() {
                return None;
            }
            return u128::from_str_radix(digits, radix)
                .ok()
                .map(|n| Number::Int(n.to_string()));
        }
    }
    if lower.bytes().all(|b| b.is_ascii_digit()) {
        let digits = lower.trim_start_matches('0');
        // Python 3 refuses leading zeros in a non-zero decimal int.
        if digits.len() != lower.len() && !digits.is_empty() {
            return None;
        }
        let digits = if digits.is_empty() { "0" } else { digits };
        return Some(Number::Int(digits.to_owned()));
    }
    // A float: digits with a point and/or an exponent, nothing else.
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let mantissa_ok = mantissa.bytes().any(|b| b.is_ascii_digit())
        && mantissa.bytes().filter(|&b| b == b'.').count() <= 1
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok || (exponent.is_none() && !mantissa.contains('.')) {
        return None;
    }
    lower.parse().ok().map(Number::Float)
}

/// Python's `repr()` (and `str()`) of a float: the shortest digits that read back to it,
/// in fixed notation when the decimal point falls within 16 digits of the first one
/// (with `.0` for a whole number), else as `d.ddde±XX`.
fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let decpt = exp + 1;
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let zeros = |k: i64| "0".repeat(usize::try_from(k).unwrap_or(0));
    let body = if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            format!("0.{}{digits}", zeros(-decpt))
        } else if decpt >= n {
            format!("{digits}{}.0", zeros(decpt - n))
        } else {
            let (int, frac) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}
