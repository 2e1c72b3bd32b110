//! Pickle encoding (placeholder until the encoder lands).

use super::Value;

/// The pickle protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Protocol 2: readable by Python 2.3+ and every Python 3.
    V2,
    /// Protocol 3: Python 3.0+.
    V3,
    /// Protocol 4: Python 3.4+, the default of Python 3.8+.
    #[default]
    V4,
}

/// Encodes `value` as a pickle of the given protocol.
pub fn encode(value: &Value, protocol: Protocol) -> Vec<u8> {
    let _ = (value, protocol);
    Vec::new()
}
