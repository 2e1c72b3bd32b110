//! An oracle for the memory bound: whatever the decoder accepts holds at most
//! `DECODED_PER_INPUT_BYTE · n + DECODED_BASE` bytes for an input of `n` bytes
//! (decoded from `Bytes`, so numpy data that is a view costs nothing), and a
//! value it accepts re-encodes, objects included, to a pickle it accepts again.
#![no_main]

use bytes::Bytes;
use ecci_proto::pickle::{
    DECODED_BASE, DECODED_PER_INPUT_BYTE, DecodeLimits, Protocol, decode_bytes,
    encode_with_objects,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let payload = Bytes::copy_from_slice(data);
    if let Ok(value) = decode_bytes(&payload, &limits) {
        let held = value.heap_size(&payload);
        let bound = DECODED_PER_INPUT_BYTE * data.len() + DECODED_BASE;
        assert!(held <= bound, "{held} bytes held for {} bytes of input", data.len());
        let again = Bytes::from(encode_with_objects(&value, Protocol::V5));
        let _ = decode_bytes(&again, &limits);
    }
});
