//! A data-only pickle codec for the ECCI envelope.
//!
//! Python peers put `pickle.dumps({'type': …, 'contents': …})` on every `ECCI/…`
//! topic. Python's `pickle.loads` runs code named by the stream; this decoder
//! never does: it understands the data subset of pickle (protocols 0–5) and
//! refuses everything that would load code, with bounds on input size, nesting
//! depth and decoded size so that a hostile stream cannot exhaust memory.

mod decode;
mod encode;
mod op;
mod value;

pub use decode::{DecodeError, DecodeLimits, decode};
pub use encode::{Protocol, encode};
pub use value::{BigInt, Value};
