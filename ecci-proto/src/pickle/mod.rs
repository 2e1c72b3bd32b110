//! The pickle codec of the ECCI envelope: every Python value, never any code.
//!
//! Python peers put `pickle.dumps({'type': …, 'contents': …})` on every `ECCI/…`
//! topic. Python's `pickle.loads` runs code named by the stream; this decoder
//! never calls or looks up anything: plain data becomes plain [`Value`]s, every
//! class-building opcode an inert [`Object`] (class name, arguments, state,
//! items), and the types edge-AI apps send become typed values ([`py`]: numpy
//! [`NdArray`]s, whose data is a view on a [`decode_bytes`] payload, and numpy
//! scalars; `datetime` values; [`Decimal`]; `complex`; the `collections`
//! types; `range`). [`DecodeLimits`] bounds input size, nesting depth and the
//! memory a payload can make the decoder hold ([`DECODED_PER_INPUT_BYTE`]), and
//! [`ObjectPolicy`] can refuse objects.
//!
//! [`encode`] writes protocol 2–5 in the forms CPython itself uses, so any
//! Python 3 `pickle.loads` reads it, typed values as their own types; inert
//! objects go out as data unless [`encode_with_objects`] is asked for.
//!
//! ```
//! use ecci_proto::pickle::{DecodeLimits, Protocol, Value, decode, encode};
//! let envelope = Value::dict([
//!     ("type", Value::from("data")),
//!     ("contents", Value::from(vec![Value::from(1), Value::Bytes(b"jpeg".to_vec())])),
//! ]);
//! let wire = encode(&envelope, Protocol::default());
//! assert_eq!(decode(&wire, &DecodeLimits::default()), Ok(envelope));
//! ```

mod de;
mod decode;
mod encode;
mod op;
pub mod py;
mod repr;
mod ser;
mod value;

pub use de::{ValueError, from_value};
pub use decode::{
    COPIES_PER_INPUT_BYTE, DECODED_BASE, DECODED_PER_INPUT_BYTE, DecodeError, DecodeLimits,
    ObjectPolicy, decode, decode_bytes,
};
pub use encode::{Protocol, encode, encode_with_objects};
pub use py::{
    ByteOrder, Construct, DType, Date, DateTime, Decimal, Deque, Element, Global, Mapping,
    MappingKind, NdArray, NdArrayError, NumpyScalar, Object, Order, Scalar, Time, TimeDelta,
    TimeZone,
};
pub use repr::repr;
pub use ser::{Bytes, to_value};
pub use value::{BigInt, MAX_ENCODABLE_DEPTH, UnencodableError, Value};
