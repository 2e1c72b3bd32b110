//! Any string, as the value of an `ECCI_*` variable holding a Python literal or as
//! `ecci send --data`: the parsers return a value or an error, never panic, and what they
//! accept is what Python would (checked by the unit tests against CPython; here: no panic,
//! keys of a parsed dict are unique, as in a Python dict, and a parsed value reads back
//! from its repr).
#![no_main]

use ecci_proto::config::pyliteral::{parse_dict, parse_list, parse_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pairs) = parse_dict(s) {
        let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys in {s:?}");
    }
    let _ = parse_list(s);
    if let Ok(value) = parse_value(s) {
        let repr = value.to_string();
        // `1e400` is Python's `inf` too, whose repr is not a literal.
        if !repr.contains("inf") {
            assert_eq!(parse_value(&repr).as_ref(), Ok(&value), "{s:?} -> {repr}");
        }
    }
});
