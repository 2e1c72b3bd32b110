//! Any string: topic parsing returns a topic or an error, never panics, and
//! whatever it accepts formats back to the same string.
#![no_main]

use ecci_proto::topic::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topic) = Topic::parse(s) {
        assert_eq!(topic.to_string(), s);
    }
});
