//! Local time in the form Python's `logging` writes `asctime`, computed on the worker thread.

use std::time::SystemTime;

use chrono::{DateTime, Datelike, Local, Timelike};
use ecci_proto::platform::LogTime;

/// `time` in the local time zone (TZ, else /etc/localtime), milliseconds truncated as
/// Python's `record.msecs` is.
pub(crate) fn local(time: SystemTime) -> LogTime {
    log_time(&DateTime::<Local>::from(time))
}

fn log_time<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> LogTime {
    let small = |n: u32| u8::try_from(n).unwrap_or(u8::MAX);
    LogTime {
        year: u16::try_from(t.year()).unwrap_or(0),
        month: small(t.month()),
        day: small(t.day()),
        hour: small(t.hour()),
        minute: small(t.minute()),
        // chrono shows a leap second as nanoseconds ≥ 1e9 of second 59.
        second: small(t.second()),
        millis: u16::try_from((t.nanosecond() / 1_000_000).min(999)).unwrap_or(999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, TimeZone};

    #[track_caller]
    fn check(offset_secs: i32, unix_ms: i64, expected: &str) {
        let tz = FixedOffset::east_opt(offset_secs).unwrap();
        let t = tz.timestamp_millis_opt(unix_ms).unwrap();
        assert_eq!(log_time(&t).to_string(), expected);
    }

    #[test]
    fn python_asctime() {
        check(0, 0, "1970-01-01 00:00:00,000");
        check(0, 1_795_487_170_087, "2026-11-24 02:26:10,087");
        check(8 * 3600, 1_795_487_170_999, "2026-11-24 10:26:10,999");
        check(-5 * 3600, 1_795_487_170_001, "2026-11-23 21:26:10,001");
        // Before the epoch, milliseconds still count forward within the second.
        check(0, -1, "1969-12-31 23:59:59,999");
    }

    #[test]
    fn local_matches_the_system_offset() {
        let now = SystemTime::now();
        let expected = DateTime::<Local>::from(now)
            .format("%Y-%m-%d %H:%M:%S,%3f")
            .to_string();
        assert_eq!(local(now).to_string(), expected);
    }
}
