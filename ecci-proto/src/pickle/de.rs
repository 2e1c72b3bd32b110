//! Serde deserialization out of [`Value`]: how a Python value becomes a Rust type.
//!
//! [`Value`] is itself a [`serde::Deserializer`] that consumes the value, the
//! way `serde_json::Value` is. Every mismatch is an error that names what was
//! expected and the Python type that was found; no input panics. Recursion
//! follows the nesting of the value, which [`decode`](super::decode()) bounds.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};

use super::py::NdArray;
use super::ser::{Bytes, bigint_to_u128, int_from_i128, int_from_u128};
use super::value::{BigInt, Value};

/// The newtype-struct name through which a typed [`Value`] (a numpy array, a
/// datetime, …) passes serde between `Value` and `Value`/[`NdArray`] without
/// being converted or copied: the value itself waits in [`STASH`].
pub(crate) const VALUE_TOKEN: &str = "$ecci_proto::pickle::Value";

thread_local! {
    /// The value in transit under [`VALUE_TOKEN`].
    pub(crate) static STASH: std::cell::RefCell<Option<Value>> = const { std::cell::RefCell::new(None) };
}

impl Value {
    /// Whether this is one of the plain data variants (no typed value at the top).
    pub(crate) fn is_plain(&self) -> bool {
        matches!(
            self,
            Value::None
                | Value::Bool(_)
                | Value::Int(_)
                | Value::BigInt(_)
                | Value::Float(_)
                | Value::Str(_)
                | Value::Bytes(_)
                | Value::ByteArray(_)
                | Value::List(_)
                | Value::Tuple(_)
                | Value::Set(_)
                | Value::FrozenSet(_)
                | Value::Dict(_)
        )
    }

    /// The value as plain data, for a Rust type that asks serde for plain data:
    /// a `str` with lone surrogates as a lossy string, numpy scalars as their
    /// Python value, `Decimal` and the `datetime` values as their ISO strings, a
    /// `timedelta` as its seconds (as `total_seconds()`), `complex` as
    /// `(re, im)`, `range` as `(start, stop, step)`, the `collections` types as
    /// dict and list, a global as `'module.name'`, an array as
    /// `{'dtype', 'shape', 'order', 'data'}`, and an inert object as its state
    /// dict (when it has only that), its arguments (when it has only those:
    /// a namedtuple), or `{'__class__': …, 'args': …, …}`.
    pub(crate) fn into_plain(self) -> Value {
        match self {
            Value::SurrogateStr(b) => Value::Str(super::py::wtf8_lossy(&b)),
            Value::NumpyScalar(s) => s.to_value(),
            Value::Decimal(d) => Value::Str(d.as_str().to_owned()),
            Value::DateTime(d) => Value::Str(d.isoformat()),
            Value::Date(d) => Value::Str(d.to_string()),
            Value::Time(t) => Value::Str(t.isoformat()),
            #[expect(clippy::cast_precision_loss, reason = "as Python's total_seconds()")]
            Value::TimeDelta(d) => Value::Float(d.total_microseconds() as f64 / 1e6),
            Value::TimeZone(tz) => Value::Str(tz.to_string()),
            Value::Complex { re, im } => Value::Tuple(vec![Value::Float(re), Value::Float(im)]),
            Value::Range { start, stop, step } => {
                Value::Tuple(vec![Value::Int(start), Value::Int(stop), Value::Int(step)])
            }
            Value::Mapping(m) => Value::Dict(m.pairs),
            Value::Deque(d) => Value::List(d.items),
            Value::Global(g) => Value::Str(g.to_string()),
            Value::NdArray(a) => {
                let shape = a
                    .shape()
                    .iter()
                    .map(|&d| Value::Int(i64::try_from(d).unwrap_or(i64::MAX)))
                    .collect();
                Value::dict([
                    ("dtype", Value::Str(a.dtype().to_string())),
                    ("shape", Value::Tuple(shape)),
                    (
                        "order",
                        Value::from(match a.order() {
                            super::py::Order::C => "C",
                            super::py::Order::F => "F",
                        }),
                    ),
                    ("data", Value::Bytes(a.data().to_vec())),
                ])
            }
            Value::Object(o) => {
                let o = *o;
                let only_state = o.args.is_empty()
                    && o.kwargs.is_empty()
                    && o.items.is_empty()
                    && o.dict_items.is_empty();
                match o.state {
                    Some(state @ Value::Dict(_)) if only_state => state,
                    None if o.kwargs.is_empty()
                        && o.items.is_empty()
                        && o.dict_items.is_empty() =>
                    {
                        Value::Tuple(o.args)
                    }
                    state => {
                        let mut pairs = vec![
                            (Value::from("__class__"), Value::Str(o.class.to_string())),
                            (Value::from("args"), Value::Tuple(o.args)),
                        ];
                        if !o.kwargs.is_empty() {
                            pairs.push((Value::from("kwargs"), Value::Dict(o.kwargs)));
                        }
                        if let Some(state) = state {
                            pairs.push((Value::from("state"), state));
                        }
                        if !o.items.is_empty() {
                            pairs.push((Value::from("items"), Value::List(o.items)));
                        }
                        if !o.dict_items.is_empty() {
                            pairs.push((Value::from("dict_items"), Value::Dict(o.dict_items)));
                        }
                        Value::Dict(pairs)
                    }
                }
            }
            plain => plain,
        }
    }
}

/// Why a Rust value could not be converted to or from a [`Value`].
///
/// The message says what was expected and what was found, using Python type
/// names for what came from the wire, and, when the problem is inside a
/// container, where: dict keys and list indices from the top (`.a[2].b`).
///
/// ```
/// use ecci_proto::pickle::{Value, from_value};
/// let err = from_value::<u8>(Value::from("x")).unwrap_err();
/// assert_eq!(err.to_string(), "invalid type: expected u8, found str");
/// let err = from_value::<Vec<u8>>(Value::List(vec![Value::Int(1), Value::Int(300)])).unwrap_err();
/// assert_eq!(err.to_string(), "integer 300 out of range for u8 at [1]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", PathDisplay(.path))]
pub struct ValueError {
    message: String,
    /// Where the error is, innermost segment first (pushed while unwinding).
    path: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Int(i64),
    Index(usize),
}

struct PathDisplay<'a>(&'a [Segment]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" at ")?;
        for segment in self.0.iter().rev() {
            match segment {
                Segment::Key(k)
                    if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    write!(f, ".{k}")?;
                }
                Segment::Key(k) => write!(f, "[{k:?}]")?,
                Segment::Int(i) => write!(f, "[{i}]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl ValueError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            path: Vec::new(),
        }
    }

    fn at(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }

    fn invalid_type(expected: &str, found: &Value) -> Self {
        Self::new(format!(
            "invalid type: expected {expected}, found {}",
            found.type_name()
        ))
    }
}

impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }

    // serde's own wording is "invalid type: X, expected Y"; keep one order.
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("invalid type: expected {exp}, found {unexp}"))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(format!("invalid value: expected {exp}, found {unexp}"))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Self::new(format!("invalid length: expected {exp}, found {len}"))
    }
}

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(msg.to_string())
    }
}

/// Converts a [`Value`] into any type that implements [`Deserialize`].
///
/// The inverse of [`to_value`](super::to_value), and lenient where Python is
/// loose: a `list`, `tuple`, `set` or `frozenset` reads as a sequence (and a
/// `bytes`/`bytearray` as a sequence of integers, so a `Vec<u8>` field accepts
/// Python `bytes`); a `dict` or a sequence reads as a struct; an `int` reads as a
/// float; `{'A': x}` or `'A'` reads as an enum variant. Integers are
/// range-checked.
///
/// # Errors
///
/// When the value does not have the shape `T` expects: the message names both,
/// and where in the value the mismatch is, e.g. `invalid type: expected u8,
/// found str` or `integer 300 out of range for u8 at .readings[2]`. Keys are not
/// converted: a dict with `int` keys does not read as a map with `String` keys
/// (to get JSON with string keys, serialize the `Value` with `serde_json`).
///
/// ```
/// use ecci_proto::pickle::{Value, from_value};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// enum Cmd { Stop, Move { x: i32, y: i32 } }
///
/// let v = Value::dict([("Move", Value::dict([("x", Value::Int(1)), ("y", Value::Int(-2))]))]);
/// assert_eq!(from_value::<Cmd>(v)?, Cmd::Move { x: 1, y: -2 });
/// assert_eq!(from_value::<Cmd>(Value::from("Stop"))?, Cmd::Stop);
/// assert_eq!(from_value::<Vec<u8>>(Value::Bytes(vec![7]))?, vec![7]);
/// # Ok::<(), ecci_proto::pickle::ValueError>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

/// Deserializes any type from a [`Value`], consuming it; see [`from_value`].
///
/// `deserialize_any` maps `None` to unit, `bool`, `int` (as `i64`, or `u64`,
/// `i128`, `u128` when larger), `float`, `str` (as a string), `bytes` and
/// `bytearray` (as a byte buffer), `list`/`tuple`/`set`/`frozenset` (as a
/// sequence) and `dict` (as a map). An `int` beyond the `u128` range is then an
/// error.
///
/// ```
/// use ecci_proto::pickle::Value;
/// use serde::Deserialize;
/// let v = Value::List(vec![Value::Int(1), Value::None]);
/// let json = serde_json::Value::deserialize(v)?;
/// assert_eq!(json, serde_json::json!([1, null]));
/// # Ok::<(), ecci_proto::pickle::ValueError>(())
/// ```
impl<'de> Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visitor.visit_i64(i),
            Value::BigInt(big) => {
                if let Some(i) = big.to_i128() {
                    match u64::try_from(i) {
                        Ok(u) => visitor.visit_u64(u),
                        Err(_) => visitor.visit_i128(i),
                    }
                } else if let Some(u) = bigint_to_u128(&big) {
                    visitor.visit_u128(u)
                } else {
                    Err(big_out_of_range(&big, "i128"))
                }
            }
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) | Value::ByteArray(b) => visitor.visit_byte_buf(b),
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_seq(items, visitor),
            Value::Dict(pairs) => visit_dict(pairs, visitor),
            other => Err(ValueError::invalid_type("plain data", &other)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(ValueError::invalid_type("bool", &other)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i8(integer(&self, "i8")?)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i16(integer(&self, "i16")?)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i32(integer(&self, "i32")?)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i64(integer(&self, "i64")?)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_i128(integer(&self, "i128")?)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_u8(integer(&self, "u8")?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_u16(integer(&self, "u16")?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_u32(integer(&self, "u32")?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_u64(integer(&self, "u64")?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_u128(integer(&self, "u128")?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_f32(float(&self, "f32")? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_f64(float(&self, "f64")?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(ValueError::new(format!(
                        "invalid value: expected a str of one character, found {} characters",
                        s.chars().count()
                    ))),
                }
            }
            other => Err(ValueError::invalid_type("char", &other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::Str(s) => visitor.visit_string(s),
            other => Err(ValueError::invalid_type("str", &other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => visitor.visit_byte_buf(b),
            // Bytes that went through JSON come back as a list of integers.
            Value::List(items) | Value::Tuple(items) => visit_seq(items, visitor),
            other => Err(ValueError::invalid_type("bytes", &other)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_unit(),
            other => Err(ValueError::invalid_type("None", &other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name == VALUE_TOKEN && !self.is_plain() {
            // A `Value` or an `NdArray` takes a typed value as it is.
            STASH.with(|s| *s.borrow_mut() = Some(self));
            let out = visitor.visit_unit();
            STASH.with(|s| s.borrow_mut().take());
            return out;
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => visit_seq(items, visitor),
            Value::Bytes(b) | Value::ByteArray(b) => {
                let mut access = ByteSeqAccess {
                    iter: b.into_iter(),
                    index: 0,
                };
                let out = visitor.visit_seq(&mut access)?;
                check_seq_end(access.iter.len(), out)
            }
            other => Err(ValueError::invalid_type("a sequence", &other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::Dict(pairs) => visit_dict(pairs, visitor),
            other => Err(ValueError::invalid_type("dict", &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.into_plain() {
            Value::Dict(pairs) => visit_dict(pairs, visitor),
            Value::List(items) | Value::Tuple(items) => visit_seq(items, visitor),
            other => Err(ValueError::invalid_type(
                &format!("dict (struct {name})"),
                &other,
            )),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(variant) => visitor.visit_enum(EnumAccess {
                variant: Value::Str(variant),
                contents: None,
            }),
            Value::Dict(pairs) => {
                let count = pairs.len();
                let mut pairs = pairs.into_iter();
                match (pairs.next(), pairs.next()) {
                    (Some((variant, contents)), None) => visitor.visit_enum(EnumAccess {
                        variant,
                        contents: Some(contents),
                    }),
                    _ => Err(ValueError::new(format!(
                        "invalid value: expected a dict with one key (enum {name}), found a dict with {count} keys"
                    ))),
                }
            }
            other => Err(ValueError::invalid_type(
                &format!("str or dict (enum {name})"),
                &other,
            )),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        drop(self);
        visitor.visit_unit()
    }
}

impl IntoDeserializer<'_, ValueError> for Value {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// The integer as `N`, or an error naming `N` (`what`).
fn integer<N>(value: &Value, what: &str) -> Result<N, ValueError>
where
    N: TryFrom<i128> + TryFrom<u128>,
{
    if let Value::NumpyScalar(s) = value {
        return integer(&s.to_value(), what);
    }
    let converted = match value {
        Value::Int(i) => N::try_from(i128::from(*i)).ok(),
        Value::BigInt(big) => match big.to_i128() {
            Some(i) => N::try_from(i).ok(),
            None => bigint_to_u128(big).and_then(|u| N::try_from(u).ok()),
        },
        other => return Err(ValueError::invalid_type(what, other)),
    };
    converted.ok_or_else(|| match value {
        Value::Int(i) => out_of_range(i, what),
        Value::BigInt(big) => big_out_of_range(big, what),
        other => ValueError::invalid_type(what, other),
    })
}

fn out_of_range(n: &dyn fmt::Display, what: &str) -> ValueError {
    ValueError::new(format!("integer {n} out of range for {what}"))
}

/// An out-of-range error for an int that may be huge: the decimal when it is
/// short, the bit length otherwise (an int from the wire may have millions of digits).
fn big_out_of_range(big: &BigInt, what: &str) -> ValueError {
    const MAX_QUOTED_BITS: u64 = 256;
    let bits = big.bits();
    if bits <= MAX_QUOTED_BITS {
        return out_of_range(big, what);
    }
    let sign = if big.is_negative() { "negative " } else { "" };
    ValueError::new(format!(
        "{sign}integer of {bits} bits out of range for {what}"
    ))
}

/// The number as an `f64`: Python code freely passes `1` where `1.0` is meant.
fn float(value: &Value, what: &str) -> Result<f64, ValueError> {
    match value {
        Value::NumpyScalar(s) => float(&s.to_value(), what),
        Value::TimeDelta(_) => float(&value.clone().into_plain(), what),
        // `Decimal` to float, as Python's float(Decimal) (nearest).
        Value::Decimal(d) => d
            .as_str()
            .to_ascii_lowercase()
            .replace("infinity", "inf")
            .parse()
            .map_err(|_| ValueError::new(format!("decimal {} is not a {what}", d.as_str()))),
        Value::Float(f) => Ok(*f),
        #[expect(clippy::cast_precision_loss, reason = "as Python's float(int)")]
        Value::Int(i) => Ok(*i as f64),
        // Python raises OverflowError where the int rounds beyond f64::MAX.
        Value::BigInt(big) => big.to_f64().ok_or_else(|| {
            let sign = if big.is_negative() { "negative " } else { "" };
            ValueError::new(format!(
                "{sign}integer of {} bits too large for {what}",
                big.bits()
            ))
        }),
        other => Err(ValueError::invalid_type(what, other)),
    }
}

fn visit_seq<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, ValueError> {
    let mut access = SeqAccess {
        iter: items.into_iter(),
        index: 0,
    };
    let out = visitor.visit_seq(&mut access)?;
    check_seq_end(access.iter.len(), out)
}

fn visit_dict<'de, V: Visitor<'de>>(
    pairs: Vec<(Value, Value)>,
    visitor: V,
) -> Result<V::Value, ValueError> {
    let total = pairs.len();
    let mut access = MapAccess {
        iter: pairs.into_iter(),
        value: None,
        key: None,
    };
    let out = visitor.visit_map(&mut access)?;
    match access.iter.len() {
        0 => Ok(out),
        left => Err(ValueError::new(format!(
            "invalid length: expected a dict of {} keys, found {total}",
            total - left
        ))),
    }
}

/// Fails when the visitor stopped before the end, as for a tuple given too many items.
fn check_seq_end<T>(left: usize, out: T) -> Result<T, ValueError> {
    match left {
        0 => Ok(out),
        left => Err(ValueError::new(format!(
            "invalid length: {left} more items than expected"
        ))),
    }
}

struct SeqAccess {
    iter: std::vec::IntoIter<Value>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqAccess {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        let Some(item) = self.iter.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|e| e.at(Segment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Python `bytes` read as a sequence of `int`s.
struct ByteSeqAccess {
    iter: std::vec::IntoIter<u8>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for ByteSeqAccess {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        let Some(byte) = self.iter.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(Value::Int(byte.into()))
            .map(Some)
            .map_err(|e| e.at(Segment::Index(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapAccess {
    iter: std::vec::IntoIter<(Value, Value)>,
    value: Option<Value>,
    /// The current key, to say where an error in its value is.
    key: Option<Segment>,
}

/// How an error path names a dict key (only `str` and `int` keys are named).
fn key_segment(key: &Value) -> Option<Segment> {
    // A key from the wire may be huge; an error message needs only its start.
    const MAX_KEY_CHARS: usize = 64;
    match key {
        Value::Str(s) => Some(Segment::Key(match s.char_indices().nth(MAX_KEY_CHARS) {
            None => s.clone(),
            Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        })),
        Value::Int(i) => Some(Segment::Int(*i)),
        _ => None,
    }
}

fn at_key(error: ValueError, key: Option<Segment>) -> ValueError {
    match key {
        Some(segment) => error.at(segment),
        None => error,
    }
}

impl<'de> de::MapAccess<'de> for MapAccess {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                self.key = key_segment(&key);
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        match self.value.take() {
            Some(value) => seed
                .deserialize(value)
                .map_err(|e| at_key(e, self.key.take())),
            None => Err(ValueError::new("dict value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An enum variant: `'A'` (no contents) or `{'A': contents}`.
struct EnumAccess {
    variant: Value,
    contents: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for EnumAccess {
    type Error = ValueError;
    type Variant = VariantAccess;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, VariantAccess), ValueError> {
        let key = self.contents.as_ref().and(key_segment(&self.variant));
        let variant = seed.deserialize(self.variant)?;
        Ok((
            variant,
            VariantAccess {
                contents: self.contents,
                key,
            },
        ))
    }
}

struct VariantAccess {
    contents: Option<Value>,
    /// The variant's key in `{'A': contents}`, to say where an error in the contents is.
    key: Option<Segment>,
}

impl VariantAccess {
    fn contents(self, kind: &str) -> Result<(Value, Option<Segment>), ValueError> {
        match self.contents {
            Some(contents) => Ok((contents, self.key)),
            None => Err(ValueError::new(format!(
                "invalid type: expected a dict with one key ({kind} variant), found str"
            ))),
        }
    }
}

impl<'de> de::VariantAccess<'de> for VariantAccess {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.contents {
            None | Some(Value::None) => Ok(()),
            Some(other) => Err(at_key(
                ValueError::invalid_type("None (unit variant)", &other),
                self.key,
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        let (contents, key) = self.contents("newtype")?;
        seed.deserialize(contents).map_err(|e| at_key(e, key))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let (contents, key) = self.contents("tuple")?;
        contents
            .deserialize_seq(visitor)
            .map_err(|e| at_key(e, key))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let (contents, key) = self.contents("struct")?;
        contents
            .deserialize_struct("variant", fields, visitor)
            .map_err(|e| at_key(e, key))
    }
}

/// Deserializes a [`Value`] from any self-describing format, e.g. JSON.
///
/// Sequences become `list`, maps `dict`, bytes `bytes`, unit and `None` `None`;
/// integers beyond `i64` become [`BigInt`](super::BigInt).
///
/// ```
/// use ecci_proto::pickle::Value;
/// let v: Value = serde_json::from_str(r#"{"a": [1, 2.5, null], "big": 18446744073709551615}"#)?;
/// assert_eq!(v.get("a"), Some(&Value::List(vec![Value::Int(1), Value::Float(2.5), Value::None])));
/// assert_eq!(v.get("big").map(Value::type_name), Some("int"));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        // From a `Value`, typed values come through unchanged (see VALUE_TOKEN);
        // every other deserializer treats the newtype as transparent.
        deserializer.deserialize_newtype_struct(VALUE_TOKEN, ValueVisitor)
    }
}

/// An array from a [`Value::NdArray`] (no copy), or from its plain form
/// `{'dtype': '<u2', 'shape': [..], 'order': 'C', 'data': bytes}` as any other
/// serde format carries it.
///
/// ```
/// use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar, Value, from_value, to_value};
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Msg { frame: NdArray, ts: f64 }
///
/// let frame = NdArray::new(DType::new(Scalar::U8, ByteOrder::Little), vec![2, 2, 3], Order::C, vec![7u8; 12])?;
/// let v = Value::dict([("frame", Value::NdArray(Box::new(frame.clone()))), ("ts", Value::Float(1.5))]);
/// let msg: Msg = from_value(v.clone())?;
/// assert_eq!((msg.frame.shape(), msg.ts), (&[2, 2, 3][..], 1.5));
/// assert_eq!(to_value(&msg)?, v);
/// let json = serde_json::to_string(&msg)?;
/// let back: Msg = serde_json::from_str(&json)?;
/// assert_eq!(back.frame, frame);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<'de> Deserialize<'de> for NdArray {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NdArray, D::Error> {
        deserializer.deserialize_newtype_struct(VALUE_TOKEN, NdArrayVisitor)
    }
}

/// The plain form of an array, for serde formats other than [`Value`].
#[derive(serde::Deserialize, serde::Serialize)]
pub(crate) struct PlainArray {
    pub(crate) dtype: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) order: String,
    pub(crate) data: Bytes,
}

impl PlainArray {
    fn into_array<E: de::Error>(self) -> Result<NdArray, E> {
        use super::py::{ByteOrder, DType, Order, Scalar};
        let (order_char, code) = self.dtype.split_at(self.dtype.len().min(1));
        let order = match order_char {
            "<" | "|" | "=" => ByteOrder::Little,
            ">" => ByteOrder::Big,
            _ => return Err(E::custom(format!("unknown dtype {:?}", self.dtype))),
        };
        let scalar = Scalar::from_code(code)
            .ok_or_else(|| E::custom(format!("unknown dtype {:?}", self.dtype)))?;
        let layout = match self.order.as_str() {
            "C" => Order::C,
            "F" => Order::F,
            other => return Err(E::custom(format!("unknown order {other:?}"))),
        };
        NdArray::new(DType::new(scalar, order), self.shape, layout, self.data.0).map_err(E::custom)
    }
}

struct NdArrayVisitor;

impl<'de> Visitor<'de> for NdArrayVisitor {
    type Value = NdArray;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a numpy ndarray")
    }

    fn visit_unit<E: de::Error>(self) -> Result<NdArray, E> {
        match STASH.with(|s| s.borrow_mut().take()) {
            Some(Value::NdArray(a)) => Ok(*a),
            Some(other) => {
                let found = other.type_name();
                PlainArray::deserialize(other)
                    .map_err(|_| {
                        E::custom(format!("invalid type: expected ndarray, found {found}"))
                    })?
                    .into_array()
            }
            None => Err(E::custom("invalid type: expected ndarray, found None")),
        }
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<NdArray, D::Error> {
        PlainArray::deserialize(d)?.into_array()
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<NdArray, A::Error> {
        PlainArray::deserialize(de::value::MapAccessDeserializer::new(map))?.into_array()
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(int_from_i128(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(int_from_i128(v.into()))
    }

    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(int_from_u128(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        // Under VALUE_TOKEN the value waits in the stash, typed as it was.
        Ok(STASH.with(|s| s.borrow_mut().take()).unwrap_or(Value::None))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // The hint comes from the input: trust it only so far.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Value::Dict(pairs))
    }
}

/// Deserializes from `bytes`, `bytearray`, or a sequence of integers in `0..=255`.
///
/// ```
/// use ecci_proto::pickle::{Bytes, Value, from_value};
/// assert_eq!(from_value::<Bytes>(Value::ByteArray(vec![1]))?, Bytes(vec![1]));
/// assert_eq!(from_value::<Bytes>(Value::List(vec![Value::Int(2)]))?, Bytes(vec![2]));
/// # Ok::<(), ecci_proto::pickle::ValueError>(())
/// ```
impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(Bytes(bytes))
    }
}
