//! A parser for the Python literals found in `ECCI_*` variables.
//!
//! The platform writes some variables as Python source (`ECCI_PUB_TARGETS` is
//! `{'worker1': 'broker1'}`) and the Python SDK reads them with
//! `ast.literal_eval`. This module accepts the subset of that syntax the variables
//! use: one dict of strings to strings, or one list (or tuple) of strings. Anything
//! else (numbers, nesting, sets, bytes, f-strings) is an error that says where the
//! input went wrong and what was expected there.
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
    let mut p = Parser::new(src);
    p.skip_ws();
    p.expect('{', "'{'")?;
    let mut pairs: Vec<(String, String)> = Vec::new();
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
        let value = p.string("a string")?;
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

    /// Skips what Python's tokenizer treats as whitespace inside brackets.
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r' | '\x0c')) {
            self.pos += 1;
        }
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
