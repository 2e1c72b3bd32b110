//! Pickle decoding (placeholder until the decoder lands).

use super::Value;

/// Bounds applied while decoding untrusted input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes.
    pub max_input: usize,
    /// Deepest accepted nesting of containers.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_input: 64 << 20,
            max_depth: 128,
        }
    }
}

/// Why a pickle could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is empty.
    #[error("empty input")]
    Empty,
}

/// Decodes a data-only pickle.
///
/// # Errors
///
/// A [`DecodeError`] saying why the input was refused.
pub fn decode(input: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
    let _ = (input, limits);
    Err(DecodeError::Empty)
}
