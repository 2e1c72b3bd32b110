//! Every typed golden vector (`fixtures/pickle/typed`, written by
//! `gen_typed_pickles.py` with numpy 1.26 and 2.x, protocols 2, 4 and 5) decodes to
//! what CPython says the value is: an array's dtype, shape, order and bytes, a
//! scalar's dtype and bytes, an object's class and fields, or Python's `repr()`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ecci_proto::pickle::{
    ByteOrder, DType, DecodeLimits, NdArray, Order, Scalar, Value, decode_bytes,
};

fn typed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle/typed")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn dtype(s: &str) -> DType {
    let (order, code) = s.split_at(1);
    let order = if order == ">" {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    DType::new(Scalar::from_code(code).expect(s), order)
}

#[track_caller]
fn check(name: &str, got: &Value, want: &serde_json::Value) {
    let s = |k: &str| want[k].as_str().unwrap_or_default().to_owned();
    match s("kind").as_str() {
        "ndarray" => {
            let shape: Vec<usize> = want["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let order = if s("order") == "F" {
                Order::F
            } else {
                Order::C
            };
            let expected =
                NdArray::new(dtype(&s("dtype")), shape, order, unhex(&s("data"))).expect(name);
            // numpy may load a big-endian array as little-endian: compare values.
            let got = got
                .as_ndarray()
                .unwrap_or_else(|| panic!("{name}: {got:?}"));
            assert_eq!(
                got.to_little_endian(),
                expected.to_little_endian(),
                "{name}"
            );
        }
        "scalar" => {
            let Value::NumpyScalar(scalar) = got else {
                panic!("{name}: {got:?}")
            };
            assert_eq!(scalar.dtype(), dtype(&s("dtype")), "{name}");
            assert_eq!(scalar.data(), unhex(&s("data")), "{name}");
        }
        "object_array" => {
            let obj = got.as_object().unwrap_or_else(|| panic!("{name}: {got:?}"));
            assert_eq!(obj.class.name, "_reconstruct", "{name}");
        }
        "object" => {
            let obj = got.as_object().unwrap_or_else(|| panic!("{name}: {got:?}"));
            assert_eq!(obj.class.to_string(), s("class"), "{name}");
            if let Some(args) = want["args"].as_array() {
                let got: Vec<String> = obj.args.iter().map(Value::to_string).collect();
                let want: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
                assert_eq!(got, want, "{name}");
            }
            if let Some(fields) = want["fields"].as_object() {
                for (field, repr) in fields {
                    let value = obj.field(field).unwrap_or_else(|| panic!("{name}.{field}"));
                    assert_eq!(
                        value.to_string(),
                        repr.as_str().unwrap_or_default(),
                        "{name}"
                    );
                }
            }
        }
        "envelope" => {
            let contents = got.get("contents").unwrap_or_else(|| panic!("{name}"));
            for (key, desc) in want["contents"].as_object().expect("contents") {
                check(name, contents.get(key).expect(key), desc);
            }
        }
        "repr" => assert_eq!(got.to_string(), s("repr"), "{name}"),
        other => panic!("{name}: unknown kind {other}"),
    }
}

#[test]
fn typed_vectors_decode_to_what_cpython_says() {
    let mut expected: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut pickles = Vec::new();
    for entry in std::fs::read_dir(typed_dir()).expect("run gen_typed_pickles.py") {
        let path = entry.expect("read_dir").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        match name.strip_suffix(".json") {
            Some(case) => {
                let text = std::fs::read_to_string(&path).expect("json");
                expected.insert(case.to_owned(), serde_json::from_str(&text).expect("json"));
            }
            None => pickles.push((name, path)),
        }
    }
    assert!(expected.len() > 50, "{} cases", expected.len());
    let mut per_case: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, path) in &pickles {
        let mut parts = name.split('.');
        let case = parts.next().unwrap_or_default();
        let protocol = parts.nth(1).unwrap_or_default();
        let (case, want) = expected
            .get_key_value(case)
            .unwrap_or_else(|| panic!("{name}: no {case}.json"));
        let want = expected.get(&format!("{case}.{protocol}")).unwrap_or(want);
        let payload = Bytes::from(std::fs::read(path).expect("pickle"));
        let got = decode_bytes(&payload, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check(name, &got, want);
        *per_case.entry(case.as_str()).or_default() += 1;
    }
    // Two numpy versions times protocols 2, 4 and 5.
    for case in expected.keys().filter(|c| !c.contains('.')) {
        assert_eq!(per_case.get(case.as_str()), Some(&6), "pickles of {case}");
    }
}

#[test]
fn frame_data_is_a_view_on_the_payload() {
    for name in [
        "array_frame.np1.p4",
        "array_frame.np2.p5",
        "frame_envelope.np2.p4",
    ] {
        let payload =
            Bytes::from(std::fs::read(typed_dir().join(format!("{name}.pickle"))).expect("pickle"));
        let value = decode_bytes(&payload, &DecodeLimits::default()).expect(name);
        let array = match value.get("contents") {
            Some(contents) => contents.get("frame").and_then(Value::as_ndarray),
            None => value.as_ndarray(),
        }
        .unwrap_or_else(|| panic!("{name}: {value:?}"));
        let range = payload.as_ptr_range();
        assert!(
            range.contains(&array.data().as_ptr()),
            "{name}: the pixel data was copied"
        );
    }
}

#[test]
fn the_well_known_policy_takes_typed_values_and_refuses_other_classes() {
    use ecci_proto::pickle::ObjectPolicy;
    let limits = DecodeLimits {
        objects: ObjectPolicy::WellKnown,
        ..DecodeLimits::default()
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(typed_dir()).expect("typed vectors") {
        let path = entry.expect("read_dir").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".pickle") {
            continue;
        }
        let case = name.split('.').next().unwrap_or_default();
        let user_class = matches!(
            case,
            "namedtuple" | "plain_object" | "dataclass" | "object_array"
        );
        let got = decode_bytes(&Bytes::from(std::fs::read(&path).expect("pickle")), &limits);
        match (user_class, got) {
            (false, Ok(_)) => {}
            (true, Err(e)) => assert!(e.to_string().starts_with("refused"), "{name}: {e}"),
            (false, Err(e)) => panic!("{name}: {e}"),
            (true, Ok(v)) => panic!("{name}: decoded to {v}"),
        }
        checked += 1;
    }
    assert!(checked > 300, "{checked}");
}
