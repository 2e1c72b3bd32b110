//! A parser for the Python literals found in `ECCI_*` variables.
//!
//! The platform writes some variables as Python source (`ECCI_PUB_TARGETS` is
//! `{'worker1': 'broker1'}`) and the Python SDK reads them with
//! `ast.literal_eval`. This module accepts the subset of that syntax the variables
//! use: one dict of strings to strings, or one list (or tuple) of strings, with
//! comments. [`parse_str_dict`] also takes numbers, `True`, `False` and `None` as
//! values and turns them into what Python's `str()` shows, as the Python SDK does when
//! it puts a broker id into a topic. Anything else (nesting, sets, bytes, f-strings)
//! is an error that says where the input went wrong and what was expected there.
//!
//! Strings follow Python 3: single, double or triple quotes; `u` and `r` prefixes;
//! the escapes `\\ \' \" \a \b \f \n \r \t \v \ooo \xhh \uhhhh \Uhhhhhhhh` and
//! backslash-newline; an unknown escape such as `\d` keeps its backslash; adjacent
//! literals are concatenated (`'a' "b"` is `'ab'`). `\N{…}` escapes are refused.
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
//! ```

use std::collections::HashMap;
use std::fmt;

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
            return Err(self.unexpected("a string, number, True, False or None"));
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
        let Some((text, kind)) = python_number(&self.src[start..end]) else {
            return Err(LiteralError::Unexpected {
                offset: start,
                expected: "a Python int or float",
                found: self.peek().map_or(Found::End, Found::Char),
            });
        };
        self.pos = end;
        let text = match (negative, text.strip_prefix('-')) {
            (false, _) => text,
            (true, Some(positive)) => positive.to_owned(),
            // Python's str(-0) is '0'; str(-0.0) is '-0.0'.
            (true, None) if text == "0" => text,
            (true, None) => format!("-{text}"),
        };
        Ok(StrValue { text, kind })
    }

    fn end(&mut self) -> Result<(), LiteralError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of input")),
        }
    }

    /// The length of a string prefix plus opening quote at the cursor, if a
    /// string starts here, and whether it is raw.
    fn string_start(&self) -> Option<(usize, bool)> {
        let mut chars = self.rest().chars();
        match chars.next()? {
            '\'' | '"' => Some((0, false)),
            'u' | 'U' if matches!(chars.next(), Some('\'' | '"')) => Some((1, false)),
            'r' | 'R' if matches!(chars.next(), Some('\'' | '"')) => Some((1, true)),
            _ => None,
        }
    }

    /// One string, or several adjacent ones concatenated as Python does.
    fn string(&mut self, expected: &'static str) -> Result<String, LiteralError> {
        let Some((prefix, raw)) = self.string_start() else {
            return Err(self.unexpected(expected));
        };
        let mut out = String::new();
        self.string_piece(prefix, raw, &mut out)?;
        loop {
            let before = self.pos;
            self.skip_ws();
            match self.string_start() {
                Some((prefix, raw)) => self.string_piece(prefix, raw, &mut out)?,
                None => {
                    self.pos = before;
                    return Ok(out);
                }
            }
        }
    }

    fn string_piece(
        &mut self,
        prefix: usize,
        raw: bool,
        out: &mut String,
    ) -> Result<(), LiteralError> {
        let start = self.pos;
        self.pos += prefix;
        let Some(quote) = self.bump() else {
            return Err(LiteralError::UnterminatedString { offset: start });
        };
        let triple = {
            let mut rest = self.rest().chars();
            rest.next() == Some(quote) && rest.next() == Some(quote)
        };
        if triple {
            self.pos += 2 * quote.len_utf8();
        }
        let unterminated = LiteralError::UnterminatedString { offset: start };
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
                    out.push(c);
                }
                '\n' | '\r' if !triple => return Err(unterminated),
                '\\' if raw => {
                    // A raw string keeps the backslash and the character after it,
                    // which therefore cannot end the string.
                    out.push('\\');
                    match self.bump() {
                        Some('\n' | '\r') if !triple => return Err(unterminated),
                        Some(next) => out.push(next),
                        None => return Err(unterminated),
                    }
                }
                '\\' if self.peek().is_none() => return Err(unterminated),
                '\\' => self.escape(at, out)?,
                c => out.push(c),
            }
        }
    }

    /// Decodes the escape whose backslash is at `at`; the cursor is after it.
    fn escape(&mut self, at: usize, out: &mut String) -> Result<(), LiteralError> {
        let invalid = |reason| LiteralError::InvalidEscape { offset: at, reason };
        // The caller has checked that something follows the backslash.
        let Some(c) = self.bump() else {
            return Err(invalid("nothing follows the backslash"));
        };
        match c {
            '\n' => {}
            '\r' => {
                self.eat('\n');
            }
            '\\' | '\'' | '"' => out.push(c),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '0'..='7' => {
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
                out.push(char::from_u32(value).ok_or_else(|| invalid("not a character"))?);
            }
            'x' => out.push(
                self.hex(2)
                    .ok_or_else(|| invalid("\\x needs two hex digits"))?,
            ),
            'u' => out.push(
                self.hex(4)
                    .ok_or_else(|| invalid("\\u needs four hex digits naming a character"))?,
            ),
            'U' => out.push(
                self.hex(8)
                    .ok_or_else(|| invalid("\\U needs eight hex digits naming a character"))?,
            ),
            'N' => return Err(invalid("\\N{...} escapes are not supported")),
            // Python keeps unknown escapes as written (with a warning).
            c => {
                out.push('\\');
                out.push(c);
            }
        }
        Ok(())
    }

    /// Reads exactly `n` hex digits as a character; `None` if there are fewer or
    /// they name a surrogate or a value beyond U+10FFFF.
    fn hex(&mut self, n: usize) -> Option<char> {
        let digits = self.rest().get(..n)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let c = char::from_u32(u32::from_str_radix(digits, 16).ok()?)?;
        self.pos += n;
        Some(c)
    }
}

#[cfg(test)]
mod tests;

/// Python's `str()` of the int or float literal `token` (no sign), and its type; `None`
/// for what is not one (or an int beyond 128 bits).
fn python_number(token: &str) -> Option<(String, &'static str)> {
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
                .map(|n| (n.to_string(), "int"));
        }
    }
    if lower.bytes().all(|b| b.is_ascii_digit()) {
        let digits = lower.trim_start_matches('0');
        // Python 3 refuses leading zeros in a non-zero decimal int.
        if digits.len() != lower.len() && !digits.is_empty() {
            return None;
        }
        let digits = if digits.is_empty() { "0" } else { digits };
        return Some((digits.to_owned(), "int"));
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
    let value: f64 = lower.parse().ok()?;
    Some((python_float_repr(value), "float"))
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
