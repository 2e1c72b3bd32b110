//! Typed Python values through serde: what CPython pickled (the typed golden
//! vectors) read straight into Rust types.

use std::path::Path;

use bytes::Bytes;
use ecci_proto::pickle::{DecodeLimits, NdArray, Value, decode_bytes, from_value, to_value};
use serde::{Deserialize, Serialize};

fn vector(name: &str) -> (Bytes, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pickle/typed")
        .join(format!("{name}.pickle"));
    let payload = Bytes::from(std::fs::read(&path).expect("typed vector"));
    let value = decode_bytes(&payload, &DecodeLimits::default()).expect(name);
    (payload, value)
}

#[derive(Debug, Deserialize, Serialize)]
struct Msg {
    frame: NdArray,
    ts: f64,
}

#[test]
fn a_frame_message_reads_into_a_struct_without_copying_the_pixels() {
    for name in [
        "frame_envelope.np1.p2",
        "frame_envelope.np1.p4",
        "frame_envelope.np2.p5",
    ] {
        let (payload, value) = vector(name);
        let contents = value.get("contents").expect("contents").clone();
        let msg: Msg = from_value(contents.clone()).expect(name);
        assert_eq!((msg.frame.shape(), msg.ts), (&[2, 2, 3][..], 1.5), "{name}");
        assert_eq!(msg.frame.to_vec::<u8>(), Some((0..12).collect()), "{name}");
        if !name.ends_with("p2") {
            // Protocol 2 carries bytes as Latin-1 text: only there is a copy needed.
            assert!(
                payload.as_ptr_range().contains(&msg.frame.data().as_ptr()),
                "{name}"
            );
        }
        // And back: the same typed value.
        assert_eq!(to_value(&msg).expect("to_value"), contents, "{name}");
        // Any other serde format sees the plain form.
        let json = serde_json::to_value(&msg).expect("json");
        assert_eq!(json["frame"]["shape"], serde_json::json!([2, 2, 3]));
        let back: Msg = serde_json::from_value(json).expect("from json");
        assert_eq!(back.frame, msg.frame);
    }
}

#[test]
fn scalars_decimals_and_datetimes_read_as_plain_rust_types() {
    let (_, v) = vector("np_float32.np2.p4");
    assert_eq!(from_value::<f64>(v).expect("f64"), 1.5);
    let (_, v) = vector("np_int64.np1.p2");
    assert_eq!(from_value::<i64>(v).expect("i64"), -7);
    let (_, v) = vector("np_bool.np2.p5");
    assert!(from_value::<bool>(v).expect("bool"));
    let (_, v) = vector("decimal.np2.p4");
    assert_eq!(from_value::<String>(v.clone()).expect("str"), "1.10");
    assert_eq!(from_value::<f64>(v).expect("f64"), 1.1);
    let (_, v) = vector("dt_offset.np2.p4");
    assert_eq!(
        from_value::<String>(v).expect("iso"),
        "1999-12-31T12:00:00+05:30"
    );
    let (_, v) = vector("timedelta.np2.p4");
    assert_eq!(from_value::<f64>(v).expect("seconds"), -86_394.999_993);
    let (_, v) = vector("complex.np2.p2");
    assert_eq!(from_value::<(f64, f64)>(v).expect("pair"), (1.0, -2.5));
    let (_, v) = vector("deque.np2.p4");
    assert_eq!(from_value::<Vec<i32>>(v).expect("list"), [1, 2, 3]);
    let (_, v) = vector("ordered_dict.np2.p4");
    let map: Vec<(String, i32)> = from_value::<std::collections::BTreeMap<String, i32>>(v)
        .expect("map")
        .into_iter()
        .collect();
    assert_eq!(map, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
}

#[test]
fn user_objects_read_by_field_name_or_position() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Plain {
        x: i32,
        label: String,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Reading {
        sensor: String,
        celsius: f64,
    }
    for p in ["np1.p2", "np2.p4", "np2.p5"] {
        let (_, v) = vector(&format!("namedtuple.{p}"));
        assert_eq!(from_value::<Point>(v).expect("point"), Point { x: 1, y: 2 });
        let (_, v) = vector(&format!("plain_object.{p}"));
        assert_eq!(
            from_value::<Plain>(v).expect("plain"),
            Plain {
                x: 1,
                label: "one".into()
            }
        );
        let (_, v) = vector(&format!("dataclass.{p}"));
        assert_eq!(
            from_value::<Reading>(v).expect("dataclass"),
            Reading {
                sensor: "t1".into(),
                celsius: 21.5
            }
        );
    }
}

#[test]
fn a_value_passes_through_serde_with_its_types() {
    let (_, v) = vector("frame_envelope.np2.p4");
    assert_eq!(from_value::<Value>(v.clone()).expect("value"), v);
    assert_eq!(to_value(&v).expect("value"), v);
}
