//! `datetime.datetime`, `date`, `time`, `timedelta` and fixed-offset `timezone`.
//!
//! CPython pickles `date`, `time` and `datetime` as the class called with a packed
//! byte string (`bytes`, or a Latin-1 `str` below protocol 3) and an optional
//! `tzinfo`; `timedelta` as `timedelta(days, seconds, microseconds)`; and
//! `timezone` as `timezone(offset[, name])`. A `tzinfo` of another class (a
//! `zoneinfo.ZoneInfo`) keeps the whole value an inert object: nothing is lost.

use std::fmt;

use crate::pickle::Value;
use crate::pickle::py::object::{Global, Object};

/// A `datetime.timedelta`, normalized as Python keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeDelta {
    /// Days, `-999999999..=999999999`.
    pub days: i32,
    /// Seconds, `0..86400`.
    pub seconds: i32,
    /// Microseconds, `0..1000000`.
    pub microseconds: i32,
}

impl TimeDelta {
    /// The total length in microseconds (an `i128`: `timedelta.max` has more
    /// microseconds than an `i64` holds).
    pub fn total_microseconds(self) -> i128 {
        (i128::from(self.days) * 86_400 + i128::from(self.seconds)) * 1_000_000
            + i128::from(self.microseconds)
    }

    /// From a total in microseconds, normalized as Python does; `None` beyond
    /// `timedelta.max` or `timedelta.min`.
    pub fn from_microseconds(total: i128) -> Option<Self> {
        let days = total.div_euclid(86_400_000_000);
        let rest = total.rem_euclid(86_400_000_000);
        Some(Self {
            days: i32::try_from(days)
                .ok()
                .filter(|d| d.abs() <= 999_999_999)?,
            seconds: (rest / 1_000_000) as i32,
            microseconds: (rest % 1_000_000) as i32,
        })
    }
}

/// A fixed-offset `datetime.timezone` (`timezone.utc` has offset 0 and no name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeZone {
    /// The offset from UTC, strictly between -24 h and 24 h.
    pub offset: TimeDelta,
    /// The name given to `timezone(offset, name)`, if any.
    pub name: Option<String>,
}

impl TimeZone {
    /// UTC, as `datetime.timezone.utc`.
    pub fn utc() -> Self {
        Self {
            offset: TimeDelta::default(),
            name: None,
        }
    }
}

/// A `datetime.date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    /// 1..=9999.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
}

/// A `datetime.time` (also the time part of a [`DateTime`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Time {
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// 0..=999999.
    pub microsecond: u32,
    /// PEP 495's `fold` (the second of two equal wall times).
    pub fold: bool,
    /// The time zone; `None` for a naive value.
    pub tz: Option<TimeZone>,
}

/// A `datetime.datetime`, naive or with a fixed-offset time zone.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, Value, decode};
/// // pickle.dumps(datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), 4) without the frame
/// let v = decode(b"\x80\x04\x8c\x08datetime\x8c\x08datetime\x93C\n\x07\xe8\x01\x02\x03\x04\x05\x00\x00\x06\
///     \x8c\x08datetime\x8c\x08timezone\x93\x8c\x08datetime\x8c\ttimedelta\x93K\x00K\x00K\x00\x87R\x85R\x86R.",
///     &DecodeLimits::default())?;
/// assert_eq!(v.to_string(), "datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)");
/// let Value::DateTime(dt) = v else { panic!() };
/// assert_eq!(dt.isoformat(), "2024-01-02T03:04:05.000006+00:00");
/// # Ok::<(), ecci_proto::pickle::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// The time of day and the time zone.
    pub time: Time,
}

impl DateTime {
    /// ISO 8601 as Python's `isoformat()`: `2024-01-02T03:04:05.000006+00:00`.
    pub fn isoformat(&self) -> String {
        format!("{}T{}", self.date, self.time.isoformat())
    }
}

impl Time {
    /// ISO 8601 as Python's `isoformat()`.
    pub fn isoformat(&self) -> String {
        let mut s = format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second);
        if self.microsecond != 0 {
            s += &format!(".{:06}", self.microsecond);
        }
        if let Some(tz) = &self.tz {
            s += &offset_string(tz.offset);
        }
        s
    }
}

/// `+HH:MM[:SS[.ffffff]]`, as Python's `utcoffset` formatting.
fn offset_string(offset: TimeDelta) -> String {
    let total = offset.total_microseconds();
    let sign = if total < 0 { '-' } else { '+' };
    let total = total.unsigned_abs();
    let (secs, micros) = (total / 1_000_000, total % 1_000_000);
    let mut s = format!("{sign}{:02}:{:02}", secs / 3600, secs / 60 % 60);
    if secs % 60 != 0 || micros != 0 {
        s += &format!(":{:02}", secs % 60);
    }
    if micros != 0 {
        s += &format!(".{micros:06}");
    }
    s
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Python's `repr`: `datetime.timedelta(days=1, seconds=5)`.
impl fmt::Display for TimeDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.days != 0 {
            parts.push(format!("days={}", self.days));
        }
        if self.seconds != 0 {
            parts.push(format!("seconds={}", self.seconds));
        }
        if self.microseconds != 0 {
            parts.push(format!("microseconds={}", self.microseconds));
        }
        if parts.is_empty() {
            parts.push("0".to_owned());
        }
        write!(f, "datetime.timedelta({})", parts.join(", "))
    }
}

/// Python's `repr` of a `timezone`.
impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            None if self.offset == TimeDelta::default() => f.write_str("datetime.timezone.utc"),
            None => write!(f, "datetime.timezone({})", self.offset),
            Some(name) => write!(
                f,
                "datetime.timezone({}, {})",
                self.offset,
                Value::Str(name.clone())
            ),
        }
    }
}

fn time_fields(t: &Time) -> String {
    let mut s = String::new();
    let fields = [
        u32::from(t.hour),
        u32::from(t.minute),
        u32::from(t.second),
        t.microsecond,
    ];
    // Python drops trailing zero seconds and microseconds, never hour and minute.
    let keep = if t.microsecond != 0 {
        4
    } else if t.second != 0 {
        3
    } else {
        2
    };
    for (i, v) in fields[..keep].iter().enumerate() {
        if i > 0 {
            s += ", ";
        }
        s += &v.to_string();
    }
    if let Some(tz) = &t.tz {
        s += &format!(", tzinfo={tz}");
    }
    if t.fold {
        s += ", fold=1";
    }
    s
}

/// Python's `repr`: `datetime.datetime(2024, 1, 2, 3, 4)`.
impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.date;
        write!(
            f,
            "datetime.datetime({}, {}, {}, {})",
            d.year,
            d.month,
            d.day,
            time_fields(&self.time)
        )
    }
}

/// Python's `repr`: `datetime.time(3, 4, 5)`.
impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "datetime.time({})", time_fields(self))
    }
}

/// The packed state bytes: `bytes`, or a `str` of Latin-1 code points (protocol < 3).
fn packed(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        Value::Str(s) => s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
        _ => None,
    }
}

fn timezone_of(v: &Value) -> Option<Option<TimeZone>> {
    match v {
        Value::None => Some(None),
        Value::TimeZone(tz) => Some(Some((**tz).clone())),
        _ => None,
    }
}

fn valid_date(year: u16, month: u8, day: u8) -> Option<Date> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=9999).contains(&year) && (1..=days).contains(&day)).then_some(Date { year, month, day })
}

fn valid_time(h: u8, m: u8, s: u8, us: u32, fold: bool, tz: Option<TimeZone>) -> Option<Time> {
    (h < 24 && m < 60 && s < 60 && us < 1_000_000).then_some(Time {
        hour: h,
        minute: m,
        second: s,
        microsecond: us,
        fold,
        tz,
    })
}

fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// The typed value for a `datetime` module object, or `None` to keep it inert.
pub(crate) fn from_object(obj: &Object) -> Option<Value> {
    let class: &Global = &obj.class;
    if class.module != "datetime" || obj.state.is_some() || !obj.items.is_empty() {
        return None;
    }
    if !obj.dict_items.is_empty() || !obj.kwargs.is_empty() {
        return None;
    }
    let args = obj.args.as_slice();
    match (class.name.as_str(), args) {
        ("timedelta", _) if args.len() <= 3 => {
            let mut parts = [0i64; 3];
            for (p, a) in parts.iter_mut().zip(args) {
                *p = int_arg(a)?;
            }
            let [days, seconds, micros] = parts;
            // CPython pickles the normalized fields; anything else is hand-made.
            let delta = TimeDelta {
                days: i32::try_from(days).ok()?,
                seconds: i32::try_from(seconds).ok()?,
                microseconds: i32::try_from(micros).ok()?,
            };
            let normal = TimeDelta::from_microseconds(delta.total_microseconds())?;
            (normal == delta).then(|| Value::TimeDelta(delta))
        }
        ("timezone", [offset, rest @ ..]) if rest.len() <= 1 => {
            let Value::TimeDelta(offset) = offset else {
                return None;
            };
            if offset.total_microseconds().abs() >= 86_400_000_000 {
                return None;
            }
            let name = match rest {
                [] => None,
                [Value::Str(name)] => Some(name.clone()),
                _ => return None,
            };
            Some(Value::TimeZone(Box::new(TimeZone {
                offset: *offset,
                name,
            })))
        }
        ("date", [state]) => {
            let b = packed(state)?;
            let [y1, y2, m, d] = b[..] else { return None };
            let date = valid_date(u16::from_be_bytes([y1, y2]), m, d)?;
            Some(Value::Date(date))
        }
        ("time", [state, tz @ ..]) if tz.len() <= 1 => {
            let b = packed(state)?;
            let [h, m, s, u1, u2, u3] = b[..] else {
                return None;
            };
            let tz = match tz {
                [] => None,
                [tz] => timezone_of(tz)?,
                _ => return None,
            };
            let us = u32::from_be_bytes([0, u1, u2, u3]);
            let time = valid_time(h & 0x7f, m, s, us, h & 0x80 != 0, tz)?;
            Some(Value::Time(Box::new(time)))
        }
        ("datetime", [state, tz @ ..]) if tz.len() <= 1 => {
            let b = packed(state)?;
            let [y1, y2, mo, d, h, mi, s, u1, u2, u3] = b[..] else {
                return None;
            };
            let tz = match tz {
                [] => None,
                [tz] => timezone_of(tz)?,
                _ => return None,
            };
            let date = valid_date(u16::from_be_bytes([y1, y2]), mo & 0x7f, d)?;
            let us = u32::from_be_bytes([0, u1, u2, u3]);
            let time = valid_time(h, mi, s, us, mo & 0x80 != 0, tz)?;
            Some(Value::DateTime(Box::new(DateTime { date, time })))
        }
        _ => None,
    }
}

/// The packed state CPython writes for a date.
pub(crate) fn pack_date(d: Date) -> Vec<u8> {
    let [y1, y2] = d.year.to_be_bytes();
    vec![y1, y2, d.month, d.day]
}

/// The packed state CPython writes for a time.
pub(crate) fn pack_time(t: &Time) -> Vec<u8> {
    let [_, u1, u2, u3] = t.microsecond.to_be_bytes();
    vec![
        t.hour | if t.fold { 0x80 } else { 0 },
        t.minute,
        t.second,
        u1,
        u2,
        u3,
    ]
}

/// The packed state CPython writes for a datetime.
pub(crate) fn pack_datetime(dt: &DateTime) -> Vec<u8> {
    let [y1, y2] = dt.date.year.to_be_bytes();
    let t = &dt.time;
    let [_, u1, u2, u3] = t.microsecond.to_be_bytes();
    vec![
        y1,
        y2,
        dt.date.month | if t.fold { 0x80 } else { 0 },
        dt.date.day,
        t.hour,
        t.minute,
        t.second,
        u1,
        u2,
        u3,
    ]
}

#[cfg(feature = "chrono")]
mod chrono_impls {
    //! Conversions to and from chrono, the time crate most of the ecosystem
    //! (serde, sqlx, arrow) speaks; `FixedOffset` is exactly `datetime.timezone`.

    use super::{Date, DateTime, Time, TimeDelta, TimeZone};
    use chrono::{Datelike, Timelike};

    impl From<Date> for chrono::NaiveDate {
        fn from(d: Date) -> Self {
            chrono::NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                .unwrap_or_default()
        }
    }

    impl From<chrono::NaiveDate> for Date {
        fn from(d: chrono::NaiveDate) -> Self {
            Date {
                year: u16::try_from(d.year()).unwrap_or(1),
                month: d.month() as u8,
                day: d.day() as u8,
            }
        }
    }

    impl DateTime {
        /// The naive date and time (ignoring the time zone).
        pub fn to_naive(&self) -> chrono::NaiveDateTime {
            let t = &self.time;
            chrono::NaiveDate::from(self.date)
                .and_hms_micro_opt(
                    t.hour.into(),
                    t.minute.into(),
                    t.second.into(),
                    t.microsecond,
                )
                .unwrap_or_default()
        }

        /// The aware date and time, if it has a time zone.
        pub fn to_chrono(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
            let tz = self.time.tz.as_ref()?;
            let secs = i32::try_from(tz.offset.total_microseconds() / 1_000_000).ok()?;
            let offset = chrono::FixedOffset::east_opt(secs)?;
            self.to_naive().and_local_timezone(offset).single()
        }
    }

    impl From<chrono::NaiveDateTime> for DateTime {
        fn from(dt: chrono::NaiveDateTime) -> Self {
            DateTime {
                date: dt.date().into(),
                time: Time {
                    hour: dt.hour() as u8,
                    minute: dt.minute() as u8,
                    second: dt.second() as u8,
                    microsecond: dt.nanosecond() / 1000 % 1_000_000,
                    fold: false,
                    tz: None,
                },
            }
        }
    }

    impl<Tz: chrono::TimeZone> From<chrono::DateTime<Tz>> for DateTime {
        fn from(dt: chrono::DateTime<Tz>) -> Self {
            use chrono::Offset;
            let secs = dt.offset().fix().local_minus_utc();
            let mut out = DateTime::from(dt.naive_local());
            out.time.tz = Some(TimeZone {
                offset: TimeDelta::from_microseconds(i128::from(secs) * 1_000_000)
                    .unwrap_or_default(),
                name: None,
            });
            out
        }
    }

    impl From<TimeDelta> for chrono::TimeDelta {
        fn from(d: TimeDelta) -> Self {
            // Each part fits chrono's range (±2^63 ms) even at timedelta.max.
            chrono::TimeDelta::days(d.days.into())
                + chrono::TimeDelta::seconds(d.seconds.into())
                + chrono::TimeDelta::microseconds(d.microseconds.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_round_trips() {
        use chrono::TimeZone as _;
        let offset = chrono::FixedOffset::east_opt(7200).expect("offset");
        let when = offset
            .with_ymd_and_hms(2026, 12, 2, 7, 30, 15)
            .single()
            .expect("a time");
        let dt = DateTime::from(when);
        assert_eq!(dt.isoformat(), "2026-12-02T07:30:15+02:00");
        assert_eq!(dt.to_chrono(), Some(when));
        let naive = when.naive_local();
        assert_eq!(DateTime::from(naive).to_naive(), naive);
        let delta = TimeDelta {
            days: -1,
            seconds: 5,
            microseconds: 7,
        };
        assert_eq!(
            chrono::TimeDelta::from(delta),
            chrono::TimeDelta::microseconds(-86_400_000_000 + 5_000_007)
        );
    }

    #[test]
    fn offsets_format_as_python() {
        let d = |s: i128| TimeDelta::from_microseconds(s * 1_000_000).unwrap();
        assert_eq!(offset_string(d(0)), "+00:00");
        assert_eq!(offset_string(d(-5400)), "-01:30");
        assert_eq!(offset_string(d(3661)), "+01:01:01");
        assert_eq!(d(-1).days, -1);
        assert_eq!(d(-1).seconds, 86399);
        let max = TimeDelta {
            days: 999_999_999,
            seconds: 86_399,
            microseconds: 999_999,
        };
        assert_eq!(
            TimeDelta::from_microseconds(max.total_microseconds()),
            Some(max)
        );
        assert_eq!(
            TimeDelta::from_microseconds(max.total_microseconds() + 1),
            None
        );
    }
}
