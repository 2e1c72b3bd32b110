//! The dynamic value carried in an envelope's `contents`: the data subset of Python.

use std::fmt;

/// A Python value of the data-only subset that ECCI peers exchange.
///
/// Dicts keep their pairs in wire order, as Python dicts keep insertion order. A
/// pickle never repeats a key, but a hostile one may: the pairs are kept as they
/// came and [`Value::get`] returns the last match, which is what Python's
/// `dict` would hold.
///
/// ```
/// use ecci_proto::pickle::Value;
/// let v = Value::dict([("type", Value::from("data")), ("contents", Value::from(3))]);
/// assert_eq!(v.get("type").and_then(Value::as_str), Some("data"));
/// assert_eq!(v.get("contents").and_then(Value::as_i64), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `None`.
    #[default]
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in an `i64`.
    Int(i64),
    /// An `int` that does not fit in an `i64`.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `set`, in wire order.
    Set(Vec<Value>),
    /// A `frozenset`, in wire order.
    FrozenSet(Vec<Value>),
    /// A `dict`, as `(key, value)` pairs in wire order.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// Builds a dict with string keys.
    pub fn dict<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// The value under the string key `key`, if this is a dict that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes, if this is `bytes` or a `bytearray`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// The pairs, if this is a dict.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// The items, if this is a list or a tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The Python type name of this value (`"dict"`, `"str"`, …), for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(_) => "dict",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

/// A Python `int` too large for an `i64`, as the minimal little-endian two's
/// complement bytes that pickle's `LONG1`/`LONG4` opcodes carry.
///
/// ```
/// use ecci_proto::pickle::BigInt;
/// let big = BigInt::from_i128(1 << 100);
/// assert_eq!(big.to_string(), "1267650600228229401496703205376");
/// assert_eq!(big.to_i128(), Some(1 << 100));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    le_bytes: Vec<u8>,
}

impl BigInt {
    /// From little-endian two's complement bytes (any length; normalized).
    pub fn from_le_bytes(bytes: &[u8]) -> Self {
        let mut le_bytes = bytes.to_vec();
        // Drop redundant sign-extension bytes, keeping the sign bit intact.
        while le_bytes.len() > 1 {
            let last = le_bytes[le_bytes.len() - 1];
            let prev_sign = le_bytes[le_bytes.len() - 2] & 0x80;
            if (last == 0 && prev_sign == 0) || (last == 0xff && prev_sign != 0) {
                le_bytes.pop();
            } else {
                break;
            }
        }
        if le_bytes.is_empty() {
            le_bytes.push(0);
        }
        Self { le_bytes }
    }

    /// From an `i128`.
    pub fn from_i128(i: i128) -> Self {
        Self::from_le_bytes(&i.to_le_bytes())
    }

    /// The minimal little-endian two's complement bytes.
    pub fn to_le_bytes(&self) -> &[u8] {
        &self.le_bytes
    }

    /// Whether the value is negative.
    pub fn is_negative(&self) -> bool {
        self.le_bytes.last().is_some_and(|b| b & 0x80 != 0)
    }

    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.le_bytes.len() > 16 {
            return None;
        }
        let fill = if self.is_negative() { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[..self.le_bytes.len()].copy_from_slice(&self.le_bytes);
        Some(i128::from_le_bytes(buf))
    }

    /// The magnitude as little-endian base-2^32 limbs.
    fn magnitude_limbs(&self) -> Vec<u32> {
        let mut bytes = self.le_bytes.clone();
        if self.is_negative() {
            // Two's complement negation: invert and add one.
            let mut carry = true;
            for b in &mut bytes {
                let (v, c) = (!*b).overflowing_add(u8::from(carry));
                *b = v;
                carry = c;
            }
        }
        bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    }
}

impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limbs = self.magnitude_limbs();
        let mut chunks = Vec::new(); // base 10^9, least significant first
        while limbs.iter().any(|&l| l != 0) {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 32) | u64::from(*limb);
                *limb = u32::try_from(cur / 1_000_000_000).unwrap_or(u32::MAX);
                rem = cur % 1_000_000_000;
            }
            chunks.push(rem);
        }
        if self.is_negative() {
            f.write_str("-")?;
        }
        match chunks.split_last() {
            None => f.write_str("0"),
            Some((most, rest)) => {
                write!(f, "{most}")?;
                for c in rest.iter().rev() {
                    write!(f, "{c:09}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_display_matches_i128() {
        for i in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            1 << 100,
            -(1 << 100),
            i128::MAX,
            i128::MIN,
            999_999_999_999_999_999,
            1_000_000_000_000_000_000,
        ] {
            let b = BigInt::from_i128(i);
            assert_eq!(b.to_string(), i.to_string());
            assert_eq!(b.to_i128(), Some(i));
            assert_eq!(b.is_negative(), i < 0);
        }
    }

    #[test]
    fn bigint_normalizes() {
        assert_eq!(
            BigInt::from_le_bytes(&[0xff, 0x00, 0x00]).to_le_bytes(),
            [0xff, 0x00]
        );
        assert_eq!(BigInt::from_le_bytes(&[0x7f, 0x00]).to_le_bytes(), [0x7f]);
        assert_eq!(
            BigInt::from_le_bytes(&[0x80, 0xff, 0xff]).to_le_bytes(),
            [0x80]
        );
        assert_eq!(BigInt::from_le_bytes(&[]).to_le_bytes(), [0]);
        assert_eq!(BigInt::from_le_bytes(&[0u8; 40]).to_i128(), Some(0));
    }
}
