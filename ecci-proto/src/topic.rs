//! ECCI topics: building, parsing and MQTT filter matching.

/// Whether the MQTT topic filter `filter` (with `+` and `#` wildcards) matches
/// the topic name `topic`, following MQTT 3.1.1 §4.7.
///
/// Topics starting with `$` are not matched by a filter starting with a wildcard.
///
/// ```
/// use ecci_proto::topic::filter_matches;
/// assert!(filter_matches("ECCI/b/a/app/+/me", "ECCI/b/a/app/you/me"));
/// assert!(filter_matches("ECCI/#", "ECCI/b/a/app/you/me"));
/// assert!(!filter_matches("ECCI/+", "ECCI/b/a"));
/// assert!(!filter_matches("#", "$SYS/uptime"));
/// ```
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fs), Some(ts)) if fs == ts => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(filter: &str, topic: &str, expected: bool) {
        assert_eq!(
            filter_matches(filter, topic),
            expected,
            "{filter:?} vs {topic:?}"
        );
    }

    #[test]
    fn filters() {
        check("a/b", "a/b", true);
        check("a/b", "a/c", false);
        check("a/+", "a/b", true);
        check("a/+", "a/b/c", false);
        check("a/+", "a", false);
        check("a/+", "a/", true);
        check("a/#", "a", true);
        check("a/#", "a/b/c", true);
        check("#", "a/b", true);
        check("+/+", "/b", true);
        check("+", "$SYS", false);
        check("$SYS/#", "$SYS/x", true);
        check("a/b/c", "a/b", false);
        check("a", "a/b", false);
    }
}
