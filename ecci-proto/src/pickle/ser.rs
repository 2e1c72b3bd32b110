//! Serde serialization into [`Value`]: how a Rust type becomes a Python value.
//!
//! The mapping follows serde_json's data model so that a type's pickled form reads
//! in Python the way its JSON form reads in JavaScript: structs and maps become
//! dicts, sequences lists, tuples tuples, and enums are externally tagged.

use serde::ser::{self, Serialize};

use super::de::{PlainArray, STASH, VALUE_TOKEN, ValueError};
use super::py::{NdArray, Order};
use super::value::{BigInt, Value};

/// Converts any [`Serialize`] type into a [`Value`], ready to be pickled.
///
/// | Rust (serde data model)                   | Python                             |
/// |-------------------------------------------|------------------------------------|
/// | `bool`                                    | `bool`                             |
/// | integers                                  | `int`                              |
/// | `f32`, `f64`                              | `float`                            |
/// | `char`, `str`                             | `str`                              |
/// | bytes (see [`Bytes`])                     | `bytes`                            |
/// | `()`, `None`, unit struct                 | `None`                             |
/// | `Some(x)`, newtype struct                 | `x`                                |
/// | sequence (`Vec<T>`, `HashSet<T>`, …)      | `list`                             |
/// | tuple, tuple struct                       | `tuple`                            |
/// | map, struct                               | `dict` (struct: `str` keys, in field order) |
/// | unit variant `E::A`                       | `'A'`                              |
/// | other variant `E::A(..)`/`E::A { .. }`    | `{'A': inner}`                     |
///
/// Note that serde serializes a `Vec<u8>` as a sequence, which becomes a Python
/// `list` of ints; wrap it in [`Bytes`] to send a Python `bytes`.
///
/// # Errors
///
/// When the value's [`Serialize`] implementation fails, or when a map key would
/// be unhashable in Python (a `list`, `dict`, `set` or `bytearray`, or a tuple
/// holding one), since Python could not load such a dict.
///
/// ```
/// use ecci_proto::pickle::{Value, to_value};
/// #[derive(serde::Serialize)]
/// struct Reading { sensor: String, celsius: f64, tags: (u8, bool) }
///
/// let v = to_value(&Reading { sensor: "t1".into(), celsius: 21.5, tags: (3, true) })?;
/// assert_eq!(v, Value::dict([
///     ("sensor", Value::from("t1")),
///     ("celsius", Value::Float(21.5)),
///     ("tags", Value::Tuple(vec![Value::Int(3), Value::Bool(true)])),
/// ]));
/// # Ok::<(), ecci_proto::pickle::ValueError>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ValueSerializer)
}

/// Bytes that serialize as serde bytes, hence as a Python `bytes`.
///
/// serde has no specialization, so a plain `Vec<u8>` serializes as a sequence
/// of integers (a Python `list`). Use this newtype for fields that a Python peer
/// should see as `bytes`. It deserializes from `bytes`, `bytearray`, or a
/// sequence of integers in `0..=255`.
///
/// ```
/// use ecci_proto::pickle::{Bytes, Value, from_value, to_value};
/// let v = to_value(&Bytes(vec![1, 2, 3]))?;
/// assert_eq!(v, Value::Bytes(vec![1, 2, 3]));
/// // A plain Vec<u8> becomes a list.
/// assert_eq!(to_value(&vec![1u8])?, Value::List(vec![Value::Int(1)]));
/// assert_eq!(from_value::<Bytes>(v)?, Bytes(vec![1, 2, 3]));
/// # Ok::<(), ecci_proto::pickle::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bytes(pub Vec<u8>);

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Bytes {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Serialize for Bytes {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

/// Serializes a [`Value`] through serde, e.g. to JSON with `serde_json`.
///
/// `bytes` and `bytearray` serialize as serde bytes (a JSON array of numbers),
/// `set` and `frozenset` as sequences, `tuple` as a tuple, `dict` as a map, and an
/// `int` too large for an `i128` (or `u128`) as its decimal string.
///
/// ```
/// use ecci_proto::pickle::Value;
/// let v = Value::dict([
///     ("n", Value::Int(1)),
///     ("b", Value::Bytes(b"hi".to_vec())),
///     ("t", Value::Tuple(vec![Value::None, Value::Float(0.5)])),
/// ]);
/// assert_eq!(serde_json::to_string(&v)?, r#"{"n":1,"b":[104,105],"t":[null,0.5]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap as _, SerializeSeq as _, SerializeTuple as _};
        if !self.is_plain() {
            // Typed: into a Value unchanged, into other formats as plain data.
            return serialize_typed(self.clone(), serializer);
        }
        match self {
            Value::None => serializer.serialize_none(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::BigInt(big) => match (big.to_i128(), bigint_to_u128(big)) {
                (Some(i), _) => serializer.serialize_i128(i),
                (None, Some(u)) => serializer.serialize_u128(u),
                (None, None) => serializer.collect_str(big),
            },
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) | Value::ByteArray(b) => serializer.serialize_bytes(b),
            Value::List(items) | Value::Set(items) | Value::FrozenSet(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Tuple(items) => {
                let mut tuple = serializer.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(item)?;
                }
                tuple.end()
            }
            Value::Dict(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            typed => typed.clone().into_plain().serialize(serializer),
        }
    }
}

/// Serializes a typed value under [`VALUE_TOKEN`]: [`to_value`] takes it from
/// the stash as it is; other serializers see its plain form.
fn serialize_typed<S: ser::Serializer>(value: Value, serializer: S) -> Result<S::Ok, S::Error> {
    let plain = Plain(value.clone());
    STASH.with(|s| *s.borrow_mut() = Some(value));
    let out = serializer.serialize_newtype_struct(VALUE_TOKEN, &plain);
    STASH.with(|s| s.borrow_mut().take());
    out
}

/// A typed value's plain form, for serializers other than [`to_value`].
struct Plain(Value);

impl Serialize for Plain {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Value::NdArray(a) => PlainArray {
                dtype: a.dtype().to_string(),
                shape: a.shape().to_vec(),
                order: match a.order() {
                    Order::C => "C",
                    Order::F => "F",
                }
                .to_owned(),
                data: Bytes(a.data().to_vec()),
            }
            .serialize(serializer),
            other => other.clone().into_plain().serialize(serializer),
        }
    }
}

/// As a [`Value::NdArray`] into a [`Value`] (no copy of the data), and as
/// `{dtype, shape, order, data}` into other formats.
impl Serialize for NdArray {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_typed(Value::NdArray(Box::new(self.clone())), serializer)
    }
}

/// The value as a `u128`, if it is non-negative and fits.
pub(super) fn bigint_to_u128(big: &BigInt) -> Option<u128> {
    if big.is_negative() {
        return None;
    }
    let bytes = big.to_le_bytes();
    // A non-negative value up to u128::MAX needs 16 bytes plus, at most, a zero
    // sign byte.
    let (low, high) = bytes.split_at(bytes.len().min(16));
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let mut buf = [0u8; 16];
    buf.get_mut(..low.len())?.copy_from_slice(low);
    Some(u128::from_le_bytes(buf))
}

pub(super) fn int_from_i128(i: i128) -> Value {
    i64::try_from(i).map_or_else(|_| Value::BigInt(BigInt::from_i128(i)), Value::Int)
}

pub(super) fn int_from_u128(u: u128) -> Value {
    match i128::try_from(u) {
        Ok(i) => int_from_i128(i),
        Err(_) => {
            // Above i128::MAX: append a zero byte so the top bit is not read as a sign.
            let mut bytes = [0u8; 17];
            let (low, _) = bytes.split_at_mut(16);
            low.copy_from_slice(&u.to_le_bytes());
            Value::BigInt(BigInt::from_le_bytes(&bytes))
        }
    }
}

/// The [`ser::Serializer`] behind [`to_value`].
struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder<SeqBuilder>;
    type SerializeMap = DictBuilder;
    type SerializeStruct = DictBuilder;
    type SerializeStructVariant = VariantBuilder<DictBuilder>;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }

    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }

    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        Ok(int_from_i128(v))
    }

    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }

    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(int_from_i128(v.into()))
    }

    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        Ok(int_from_u128(v))
    }

    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::None)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::None)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::from(variant))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        if name == VALUE_TOKEN {
            if let Some(typed) = STASH.with(|s| s.borrow_mut().take()) {
                return Ok(typed);
            }
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(Value::dict([(variant, value.serialize(self)?)]))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len.unwrap_or(0), false))
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len, true))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder::new(len, true))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<SeqBuilder>, ValueError> {
        Ok(VariantBuilder {
            variant,
            inner: SeqBuilder::new(len, true),
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<DictBuilder, ValueError> {
        Ok(DictBuilder::new(len.unwrap_or(0)))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<DictBuilder, ValueError> {
        Ok(DictBuilder::new(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<DictBuilder>, ValueError> {
        Ok(VariantBuilder {
            variant,
            inner: DictBuilder::new(len),
        })
    }
}

/// Collects a sequence into a `list`, or a `tuple` when `tuple` is set.
struct SeqBuilder {
    items: Vec<Value>,
    tuple: bool,
}

impl SeqBuilder {
    fn new(len: usize, tuple: bool) -> Self {
        Self {
            items: Vec::with_capacity(len),
            tuple,
        }
    }

    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }

    fn finish(self) -> Value {
        if self.tuple {
            Value::Tuple(self.items)
        } else {
            Value::List(self.items)
        }
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

/// Collects map entries or struct fields into a `dict`.
struct DictBuilder {
    pairs: Vec<(Value, Value)>,
    next_key: Option<Value>,
}

impl DictBuilder {
    fn new(len: usize) -> Self {
        Self {
            pairs: Vec::with_capacity(len),
            next_key: None,
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), ValueError> {
        self.pairs
            .push((Value::from(key), value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn finish(self) -> Value {
        Value::Dict(self.pairs)
    }
}

impl ser::SerializeMap for DictBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        let key = key.serialize(ValueSerializer)?;
        if !key.is_hashable() {
            return Err(ValueError::new(format!(
                "dict key must be hashable in python, found {}",
                key.type_name()
            )));
        }
        self.next_key = Some(key);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| ValueError::new("map value serialized before its key"))?;
        self.pairs.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for DictBuilder {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.field(key, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

/// Wraps a tuple or struct variant's contents as `{variant: inner}`.
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl ser::SerializeTupleVariant for VariantBuilder<SeqBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.inner.push(value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::dict([(self.variant, self.inner.finish())]))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<DictBuilder> {
    type Ok = Value;
    type Error = ValueError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.inner.field(key, value)
    }

    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::dict([(self.variant, self.inner.finish())]))
    }
}
