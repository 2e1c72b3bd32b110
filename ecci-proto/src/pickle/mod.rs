//! A data-only pickle codec for the ECCI envelope.
//!
//! Python peers put `pickle.dumps({'type': …, 'contents': …})` on every `ECCI/…`
//! topic. Python's `pickle.loads` runs code named by the stream; this decoder
//! never does: it understands the data subset of pickle (protocols 0–5) and
//! refuses everything that would load code, with bounds on input size, nesting
//! depth and decoded size so that a hostile stream cannot exhaust memory.
//!
//! [`encode`] writes protocol 2, 3 or 4 (default 4, what Python 3.8+ writes)
//! in the forms CPython itself uses, so any Python 3 `pickle.loads` reads it.
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
