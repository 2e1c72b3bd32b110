//! Property tests: `decode(encode(v, p)) == v` for every protocol when `v` is
//! encodable (and the same error otherwise), and no input makes the decoder panic.

use ecci_proto::pickle::{BigInt, DecodeLimits, Protocol, Value, decode, encode};
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        // Ints past i64 are BigInt; those that fit decode as Int, so normalize here.
        prop::collection::vec(any::<u8>(), 9..40).prop_map(|bytes| {
            let big = BigInt::from_le_bytes(&bytes);
            match big.to_i128().and_then(|i| i64::try_from(i).ok()) {
                Some(i) => Value::Int(i),
                None => Value::BigInt(big),
            }
        }),
        any::<f64>().prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bytes),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteArray),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 200, 8, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..8);
        prop_oneof![
            items.clone().prop_map(Value::List),
            items.clone().prop_map(Value::Tuple),
            items.clone().prop_map(Value::Set),
            items.prop_map(Value::FrozenSet),
            prop::collection::vec((inner.clone(), inner), 0..8).prop_map(Value::Dict),
        ]
    })
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![Just(Protocol::V2), Just(Protocol::V3), Just(Protocol::V4)]
}

proptest! {
    #[test]
    fn decode_inverts_encode(v in value(), p in protocol()) {
        let decoded = decode(&encode(&v, p), &DecodeLimits::default());
        match v.check_encodable() {
            // Debug tells -0.0 from 0.0 and matches NaN with NaN, where == would not.
            Ok(()) => prop_assert_eq!(format!("{decoded:?}"), format!("{:?}", Ok::<_, ()>(v))),
            // What Python could not load, the decoder refuses for the same reason.
            Err(e) => prop_assert_eq!(decoded.map_err(|d| d.to_string()), Err(e.to_string())),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&input, &DecodeLimits::default());
    }

    #[test]
    fn mutated_pickles_never_panic(
        v in value(),
        p in protocol(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&v, p);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode(&bytes, &DecodeLimits::default());
    }
}
