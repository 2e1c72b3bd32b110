//! Any string, as the value of an `ECCI_*` variable holding a Python literal: the dict and
//! list parsers return a value or an error, never panic, and what they accept is what
//! Python would (checked by the unit tests against CPython; here: no panic, and keys of a
//! parsed dict are unique, as in a Python dict).
#![no_main]

use ecci_proto::config::pyliteral::{parse_dict, parse_list};
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
});
