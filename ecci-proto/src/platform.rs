//! The JSON the SDK sends to the platform, byte for byte as Python writes it.
//!
//! Readiness and period reports (`toEdgeAI/{broker}/con_cntr_ready`), algorithm
//! data (`toEdgeAI/{broker}/send_data`) and log records (`{pre_topic}/{broker}/log`)
//! are JSON produced in Python by a plain `json.dumps(obj)`. Platform consumers
//! may compare or hash those payloads, so this module reproduces `json.dumps`'
//! defaults exactly: `", "` and `": "` separators, `ensure_ascii=True` escaping
//! and Python's `repr(float)`. [`to_python_json`] does that for any
//! [`Serialize`] value; the types here serialize their keys in the order the
//! Python SDK writes them.
//!
//! One deliberate difference: Python writes a non-finite float as `NaN` or
//! `Infinity`, which is not JSON; this module writes `null`, as `serde_json` does.

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter};

use crate::name::{AppId, ContainerName};

/// A [`serde_json`] [`Formatter`] that writes what Python's `json.dumps(obj)`
/// writes with its default arguments.
///
/// ```
/// use ecci_proto::platform::PythonFormatter;
/// use serde::Serialize;
///
/// let mut out = Vec::new();
/// let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
/// serde_json::json!({"a": [1, 2.5, "é"]}).serialize(&mut ser).unwrap();
/// assert_eq!(out, br#"{"a": [1, 2.5, "\u00e9"]}"#);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(&shortest_f64(value)).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(python_float_repr(&shortest_f32(value)).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // `ensure_ascii=True`: everything outside ' '..='~' becomes `\uXXXX`,
        // characters beyond the BMP as a UTF-16 surrogate pair. serde_json has
        // already escaped quotes, backslashes and C0 controls, but not DEL (0x7f).
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if matches!(c, ' '..='~') {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            // Python never escapes '/'; serde_json does not ask to either.
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(writer, "\\u{byte:04x}"),
        };
        writer.write_all(s)
    }
}

/// Rewrites the shortest round-trip decimal form of a finite float, as
/// `serde_json` writes it (`1e16`, `-1.5e-7`, `0.1`, `0.0`), the way Python's
/// `repr(float)` writes it.
///
/// Both pick the shortest digit string that reads back as the same float, the
/// closest one to the exact value, ties to even (Rust's own `{:e}` breaks ties
/// differently, hence `serde_json`'s digits). Only the layout differs: Python
/// uses positional notation when the decimal exponent is in `-4..16` (`0.0001`,
/// `1e-05`, `1000000000000000.0`, `1e+16`), always shows a fractional part in
/// positional notation, and writes at least two exponent digits with a sign.
fn python_float_repr(shortest: &str) -> String {
    let (negative, body) = match shortest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shortest),
    };
    let (mantissa, exp) = body.split_once(['e', 'E']).unwrap_or((body, "0"));
    let exp: i32 = exp.trim_start_matches('+').parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    let to_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    // Python's `decpt`: the value is 0.DIGITS × 10^decpt.
    let (digits, decpt) = if digits.is_empty() {
        ("0", 1)
    } else {
        (digits, to_i32(int.len()) - to_i32(leading) + exp)
    };
    let n = to_i32(digits.len());

    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
            out.push_str(digits);
        } else if decpt >= n {
            out.push_str(digits);
            out.extend(std::iter::repeat_n(
                '0',
                (decpt - n).unsigned_abs() as usize,
            ));
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(decpt.unsigned_abs() as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sci_exp = decpt - 1;
        out.push('e');
        out.push(if sci_exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", sci_exp.unsigned_abs()));
    }
    out
}

/// The shortest round-trip digits of `value`, as `serde_json` writes them.
fn shortest_f64(value: f64) -> String {
    let mut buf = Vec::with_capacity(24);
    // Writing to a Vec cannot fail.
    let _ = serde_json::ser::CompactFormatter.write_f64(&mut buf, value);
    String::from_utf8(buf).unwrap_or_default()
}

/// The shortest round-trip digits of `value`, as `serde_json` writes them.
fn shortest_f32(value: f32) -> String {
    let mut buf = Vec::with_capacity(16);
    let _ = serde_json::ser::CompactFormatter.write_f32(&mut buf, value);
    String::from_utf8(buf).unwrap_or_default()
}

/// Serializes `value` exactly as Python's `json.dumps(value)` would write the
/// same data.
///
/// ```
/// use ecci_proto::platform::to_python_json;
/// let json = to_python_json(&serde_json::json!(["it's", "a\nb", 1e16, 0.1, null])).unwrap();
/// assert_eq!(json, br#"["it's", "a\nb", 1e+16, 0.1, null]"#);
/// ```
///
/// # Errors
///
/// The [`serde_json::Error`] raised by `value`'s [`Serialize`] implementation,
/// e.g. for a map whose keys are not strings or numbers. [`ReadyReport`] and
/// [`LogRecord`] never fail: their `to_json` methods are infallible.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// Serializes a value whose [`Serialize`] implementation cannot fail: string
/// keys only, and no user-supplied `Serialize` inside.
fn to_python_json_infallible<T: Serialize>(value: &T) -> Vec<u8> {
    to_python_json(value).unwrap_or_else(|e| {
        unreachable!("platform JSON types have string keys and serialize infallibly: {e}")
    })
}

/// What a report on `toEdgeAI/{broker}/con_cntr_ready` announces.
///
/// Serialized as a bare string: `"controller"`, `"app"`, or the period string
/// given to `send_complete`. A period that is literally `"controller"` or
/// `"app"` reads back as [`ReadyType::Controller`] or [`ReadyType::App`],
/// as the platform would read it.
///
/// ```
/// use ecci_proto::platform::ReadyType;
/// assert_eq!(ReadyType::from("app"), ReadyType::App);
/// assert_eq!(ReadyType::from("epoch 3"), ReadyType::Period("epoch 3".to_owned()));
/// assert_eq!(ReadyType::Controller.as_str(), "controller");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadyType {
    /// A controller is up and waiting for its components (`"controller"`).
    Controller,
    /// The global controller saw every container ready: the app started (`"app"`).
    App,
    /// A period completed (`send_complete(period)`).
    Period(String),
}

impl ReadyType {
    /// The string on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ReadyType::Controller => "controller",
            ReadyType::App => "app",
            ReadyType::Period(p) => p,
        }
    }
}

impl From<crate::readiness::ReadyType> for ReadyType {
    fn from(report: crate::readiness::ReadyType) -> Self {
        match report {
            crate::readiness::ReadyType::Controller => ReadyType::Controller,
            crate::readiness::ReadyType::App => ReadyType::App,
        }
    }
}

impl From<&str> for ReadyType {
    fn from(s: &str) -> Self {
        match s {
            "controller" => ReadyType::Controller,
            "app" => ReadyType::App,
            other => ReadyType::Period(other.to_owned()),
        }
    }
}

impl From<String> for ReadyType {
    fn from(s: String) -> Self {
        match s.as_str() {
            "controller" => ReadyType::Controller,
            "app" => ReadyType::App,
            _ => ReadyType::Period(s),
        }
    }
}

impl fmt::Display for ReadyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReadyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReadyType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ReadyType::from)
    }
}

/// A readiness or period report, published as JSON on
/// `toEdgeAI/{broker}/con_cntr_ready`.
///
/// ```
/// use ecci_proto::platform::{ReadyReport, ReadyType};
/// use ecci_proto::{AppId, ContainerName};
///
/// let report = ReadyReport {
///     app_id: AppId::new("app1").unwrap(),
///     container_name: ContainerName::new("ctrl").unwrap(),
///     agent_id: None,
///     ready_type: ReadyType::Controller,
/// };
/// assert_eq!(
///     report.to_json(),
///     br#"{"app_id": "app1", "container_name": "ctrl", "agent_id": null, "ready_type": "controller"}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyReport {
    /// The app id (`ECCI_APP_ID`).
    pub app_id: AppId,
    /// The reporting container (`ECCI_CONTAINER_NAME`).
    pub container_name: ContainerName,
    /// The agent id (`ECCI_AGENT_ID`); `null` when unset.
    pub agent_id: Option<String>,
    /// What is being reported.
    pub ready_type: ReadyType,
}

impl ReadyReport {
    /// The report as the Python SDK writes it.
    pub fn to_json(&self) -> Vec<u8> {
        to_python_json_infallible(self)
    }
}

/// Algorithm data for the platform, published as JSON on
/// `toEdgeAI/{broker}/send_data`: `{"type": "data", "algorithm_type": …, "data": …, "app_id": …}`.
///
/// `data` is any serializable value (by default a [`serde_json::Value`]). The
/// `"type": "data"` key is implied: it is written first and checked when reading.
///
/// ```
/// use ecci_proto::platform::{SendData, to_python_json};
/// use ecci_proto::AppId;
///
/// let msg = SendData {
///     algorithm_type: "detect".to_owned(),
///     data: serde_json::json!({"boxes": 3}),
///     app_id: AppId::new("app1").unwrap(),
/// };
/// assert_eq!(
///     to_python_json(&msg).unwrap(),
///     br#"{"type": "data", "algorithm_type": "detect", "data": {"boxes": 3}, "app_id": "app1"}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SendData<T = serde_json::Value> {
    /// The algorithm type the data belongs to.
    pub algorithm_type: String,
    /// The data itself.
    pub data: T,
    /// The app id (`ECCI_APP_ID`).
    pub app_id: AppId,
}

impl<T: Serialize> Serialize for SendData<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("SendData", 4)?;
        st.serialize_field("type", &DataTag::Data)?;
        st.serialize_field("algorithm_type", &self.algorithm_type)?;
        st.serialize_field("data", &self.data)?;
        st.serialize_field("app_id", &self.app_id)?;
        st.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SendData<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde's `tag` attribute on a struct does not check the tag's value;
        // a one-variant enum does.
        #[derive(Deserialize)]
        #[serde(rename = "SendData")]
        struct Repr<T> {
            #[serde(rename = "type")]
            _kind: DataTag,
            algorithm_type: String,
            data: T,
            app_id: AppId,
        }
        let Repr {
            _kind,
            algorithm_type,
            data,
            app_id,
        } = Repr::deserialize(d)?;
        Ok(SendData {
            algorithm_type,
            data,
            app_id,
        })
    }
}

/// The only `"type"` a [`SendData`] message has.
#[derive(Serialize, Deserialize)]
enum DataTag {
    #[serde(rename = "data")]
    Data,
}

/// The level of a [`LogRecord`], named as Python's `logging` names it.
///
/// ```
/// use ecci_proto::platform::Level;
/// assert_eq!(Level::Warning.as_str(), "WARNING");
/// assert_eq!("CRITICAL".parse::<Level>(), Ok(Level::Critical));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// `DEBUG` (Rust's `trace` and `debug` records).
    Debug,
    /// `INFO`.
    Info,
    /// `WARNING`.
    Warning,
    /// `ERROR`.
    Error,
    /// `CRITICAL`.
    Critical,
}

impl Level {
    /// The Python level name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of Python's five level names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}")]
pub struct ParseLevelError(String);

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, ParseLevelError> {
        match s {
            "DEBUG" => Ok(Level::Debug),
            "INFO" => Ok(Level::Info),
            "WARNING" => Ok(Level::Warning),
            "ERROR" => Ok(Level::Error),
            "CRITICAL" => Ok(Level::Critical),
            other => Err(ParseLevelError(other.chars().take(32).collect())),
        }
    }
}

/// The local time of a log record, broken down by the caller (this crate reads
/// no clock), written as Python's logging writes `asctime`:
/// `%Y-%m-%d %H:%M:%S,mmm`.
///
/// The fields are not checked when built; parsing checks their ranges.
///
/// ```
/// use ecci_proto::platform::LogTime;
/// let t = LogTime { year: 2026, month: 11, day: 24, hour: 2, minute: 26, second: 10, millis: 87 };
/// assert_eq!(t.to_string(), "2026-11-24 02:26:10,087");
/// assert_eq!("2026-11-24 02:26:10,087".parse::<LogTime>(), Ok(t));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogTime {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–60 (60 for a leap second).
    pub second: u8,
    /// Milliseconds, 0–999.
    pub millis: u16,
}

impl fmt::Display for LogTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// A string that is not a `%Y-%m-%d %H:%M:%S,mmm` time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log time {0:?} is not of the form YYYY-MM-DD HH:MM:SS,mmm")]
pub struct ParseLogTimeError(String);

impl FromStr for LogTime {
    type Err = ParseLogTimeError;

    fn from_str(s: &str) -> Result<Self, ParseLogTimeError> {
        let err = || ParseLogTimeError(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 23 {
            return Err(err());
        }
        for (i, sep) in [
            (4, b'-'),
            (7, b'-'),
            (10, b' '),
            (13, b':'),
            (16, b':'),
            (19, b','),
        ] {
            if b.get(i) != Some(&sep) {
                return Err(err());
            }
        }
        let num = |from: usize, to: usize, max: u16, min: u16| -> Result<u16, ParseLogTimeError> {
            let digits = s.get(from..to).ok_or_else(err)?;
            if !digits.bytes().all(|d| d.is_ascii_digit()) {
                return Err(err());
            }
            let n: u16 = digits.parse().map_err(|_| err())?;
            if (min..=max).contains(&n) {
                Ok(n)
            } else {
                Err(err())
            }
        };
        let small = |n: u16| u8::try_from(n).map_err(|_| err());
        Ok(LogTime {
            year: num(0, 4, 9999, 0)?,
            month: small(num(5, 7, 12, 1)?)?,
            day: small(num(8, 10, 31, 1)?)?,
            hour: small(num(11, 13, 23, 0)?)?,
            minute: small(num(14, 16, 59, 0)?)?,
            second: small(num(17, 19, 60, 0)?)?,
            millis: num(20, 23, 999, 0)?,
        })
    }
}

impl Serialize for LogTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// The `log_info` object of a [`LogRecord`].
///
/// `kv` carries the record's structured key-values (from the `log` crate's
/// `kv` feature), in their order. It is a Rust extension: when non-empty it is
/// written as one extra key `"kv"` placed **after** `"message"`, so consumers that
/// read the Python keys by name see exactly what they expect; when empty it is
/// left out and the record is byte-identical to Python's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogInfo {
    /// Local time of the record.
    pub time: LogTime,
    /// The logger's name (in Rust, the record's target).
    pub name: String,
    /// The record's level.
    pub level: Level,
    /// The formatted message, kept exactly (quotes, newlines, any Unicode).
    pub message: String,
    /// Structured key-values, in order; omitted from the JSON when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "ser_pairs",
        deserialize_with = "de_pairs"
    )]
    pub kv: Vec<(String, serde_json::Value)>,
}

fn ser_pairs<S: Serializer>(
    pairs: &[(String, serde_json::Value)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

fn de_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, serde_json::Value)>, D::Error> {
    struct Pairs;

    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, serde_json::Value)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of key-values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            // No size hint: the count comes from the untrusted input.
            let mut pairs = Vec::new();
            while let Some(entry) = map.next_entry()? {
                pairs.push(entry);
            }
            Ok(pairs)
        }
    }

    d.deserialize_map(Pairs)
}

/// A log record, published as JSON on `{pre_topic}/{broker}/log`.
///
/// ```
/// use ecci_proto::platform::{Level, LogInfo, LogRecord, LogTime};
/// use ecci_proto::{AppId, ContainerName};
///
/// let record = LogRecord {
///     app_id: AppId::new("app1").unwrap(),
///     container_name: ContainerName::new("worker").unwrap(),
///     agent_id: Some("agent7".to_owned()),
///     log_info: LogInfo {
///         time: LogTime { year: 2026, month: 11, day: 24, hour: 2, minute: 26, second: 10, millis: 87 },
///         name: "worker::io".to_owned(),
///         level: Level::Info,
///         message: "it's done".to_owned(),
///         kv: Vec::new(),
///     },
/// };
/// assert_eq!(
///     String::from_utf8(record.to_json()).unwrap(),
///     r#"{"app_id": "app1", "container_name": "worker", "agent_id": "agent7", "log_info": {"time": "2026-11-24 02:26:10,087", "name": "worker::io", "level": "INFO", "message": "it's done"}}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The app id (`ECCI_APP_ID`).
    pub app_id: AppId,
    /// The logging container (`ECCI_CONTAINER_NAME`).
    pub container_name: ContainerName,
    /// The agent id (`ECCI_AGENT_ID`); `null` when unset.
    pub agent_id: Option<String>,
    /// The record itself.
    pub log_info: LogInfo,
}

impl LogRecord {
    /// The record as the Python SDK writes it (plus `kv` when non-empty).
    pub fn to_json(&self) -> Vec<u8> {
        to_python_json_infallible(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check<T: Serialize + ?Sized>(value: &T, expected: &str) {
        let got = to_python_json(value).expect("serializes");
        assert_eq!(
            String::from_utf8_lossy(&got),
            expected,
            "bytes differ for {expected:?}"
        );
    }

    fn app() -> AppId {
        AppId::new("app1").unwrap()
    }

    fn me() -> ContainerName {
        ContainerName::new("worker").unwrap()
    }

    fn time() -> LogTime {
        LogTime {
            year: 2026,
            month: 11,
            day: 24,
            hour: 2,
            minute: 26,
            second: 10,
            millis: 87,
        }
    }

    fn record(message: &str, kv: Vec<(String, serde_json::Value)>) -> LogRecord {
        LogRecord {
            app_id: app(),
            container_name: me(),
            agent_id: None,
            log_info: LogInfo {
                time: time(),
                name: "worker::io".to_owned(),
                level: Level::Warning,
                message: message.to_owned(),
                kv,
            },
        }
    }

    #[test]
    fn python_json_values() {
        check(&json!(null), "null");
        check(&json!(true), "true");
        check(&json!(false), "false");
        check(&json!(0), "0");
        check(&json!(-17), "-17");
        check(&json!(u64::MAX), "18446744073709551615");
        check(&json!(i64::MIN), "-9223372036854775808");
        check(&json!([]), "[]");
        check(&json!({}), "{}");
        check(&json!([1, [2, []], {}]), "[1, [2, []], {}]");
        check(&json!({"a": {"b": [null]}}), r#"{"a": {"b": [null]}}"#);
        check(&json!("plain"), r#""plain""#);
        check(&json!("it's \"quoted\""), r#""it's \"quoted\"""#);
        check(&json!("back\\slash/"), r#""back\\slash/""#);
        check(&json!("a\nb\tc\rd\u{8}e\u{c}f"), r#""a\nb\tc\rd\be\ff""#);
        check(
            &json!("\u{0}\u{1}\u{1f}\u{7f}"),
            r#""\u0000\u0001\u001f\u007f""#,
        );
        check(&json!("é中"), r#""\u00e9\u4e2d""#);
        check(&json!("😀x"), r#""\ud83d\ude00x""#);
        check(&json!("\u{ffff}\u{10000}"), r#""\uffff\ud800\udc00""#);
        check(&json!({"é": "ü"}), r#"{"\u00e9": "\u00fc"}"#);
        check(&json!(f64::NAN), "null");
    }

    #[test]
    fn python_float_repr_table() {
        for (value, expected) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (0.00001, "1e-05"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (-1e-300, "-1e-300"),
            // A tie between two shortest candidates: Python rounds half to even.
            (1308548795726862.0 + 0.25, "1308548795726862.2"),
        ] {
            check(&value, expected);
        }
        check(&0.1f32, "0.1");
        check(&1e16f32, "1e+16");
    }

    #[test]
    fn ready_reports() {
        let mut report = ReadyReport {
            app_id: app(),
            container_name: me(),
            agent_id: None,
            ready_type: ReadyType::Controller,
        };
        check(
            &report,
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": null, "ready_type": "controller"}"#,
        );
        report.agent_id = Some("agent-1".to_owned());
        report.ready_type = ReadyType::App;
        check(
            &report,
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": "agent-1", "ready_type": "app"}"#,
        );
        report.ready_type = ReadyType::Period("epoch 3 \"done\"".to_owned());
        check(
            &report,
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": "agent-1", "ready_type": "epoch 3 \"done\""}"#,
        );
        assert_eq!(report.to_json(), to_python_json(&report).unwrap());
    }

    #[test]
    fn send_data() {
        let msg = SendData {
            algorithm_type: "yolo".to_owned(),
            data: json!({"boxes": [[1, 2.5]], "label": "猫"}),
            app_id: app(),
        };
        check(
            &msg,
            r#"{"type": "data", "algorithm_type": "yolo", "data": {"boxes": [[1, 2.5]], "label": "\u732b"}, "app_id": "app1"}"#,
        );
        let typed = SendData {
            algorithm_type: "n".to_owned(),
            data: vec![1u8, 2],
            app_id: app(),
        };
        check(
            &typed,
            r#"{"type": "data", "algorithm_type": "n", "data": [1, 2], "app_id": "app1"}"#,
        );
    }

    #[test]
    fn log_records() {
        check(
            &record("plain", Vec::new()),
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": null, "log_info": {"time": "2026-11-24 02:26:10,087", "name": "worker::io", "level": "WARNING", "message": "plain"}}"#,
        );
        check(
            &record("it's a \"line\"\nand\\more 😀", Vec::new()),
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": null, "log_info": {"time": "2026-11-24 02:26:10,087", "name": "worker::io", "level": "WARNING", "message": "it's a \"line\"\nand\\more \ud83d\ude00"}}"#,
        );
        check(
            &record(
                "m",
                vec![
                    ("zeta".to_owned(), json!(1)),
                    ("alpha".to_owned(), json!("x")),
                ],
            ),
            r#"{"app_id": "app1", "container_name": "worker", "agent_id": null, "log_info": {"time": "2026-11-24 02:26:10,087", "name": "worker::io", "level": "WARNING", "message": "m", "kv": {"zeta": 1, "alpha": "x"}}}"#,
        );
    }

    #[test]
    fn levels() {
        for (level, name) in [
            (Level::Debug, "DEBUG"),
            (Level::Info, "INFO"),
            (Level::Warning, "WARNING"),
            (Level::Error, "ERROR"),
            (Level::Critical, "CRITICAL"),
        ] {
            check(&level, &format!("\"{name}\""));
            assert_eq!(level.to_string(), name);
            assert_eq!(name.parse::<Level>(), Ok(level));
        }
        assert_eq!(
            "WARN".parse::<Level>().unwrap_err().to_string(),
            "unknown log level \"WARN\""
        );
    }

    #[test]
    fn log_time_parse() {
        #[track_caller]
        fn check_parse(input: &str, expected: Result<LogTime, &str>) {
            assert_eq!(
                input.parse::<LogTime>().map_err(|e| e.to_string()),
                expected.map_err(str::to_owned),
                "input {input:?}"
            );
        }
        check_parse("2026-11-24 02:26:10,087", Ok(time()));
        check_parse(
            "0001-01-01 00:00:00,000",
            Ok(LogTime {
                year: 1,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                millis: 0,
            }),
        );
        let bad = |s: &str| format!("log time {s:?} is not of the form YYYY-MM-DD HH:MM:SS,mmm");
        for input in [
            "",
            "2026-11-24 02:26:10.087",
            "2026-13-24 02:26:10,087",
            "2026-00-24 02:26:10,087",
            "2026-11-24 24:26:10,087",
            "2026-11-24 02:60:10,087",
            "2026-11-24 02:26:61,087",
            "2026-11-24T02:26:10,087",
            "2026-11-24 02:26:10,0870",
            "2026-11-+4 02:26:10,087",
            "2026-11-é 02:26:10,08",
        ] {
            check_parse(input, Err(&bad(input)));
        }
    }

    #[test]
    fn deserialize_round_trips() {
        let report = ReadyReport {
            app_id: app(),
            container_name: me(),
            agent_id: Some("g".to_owned()),
            ready_type: ReadyType::Period("p1".to_owned()),
        };
        let back: ReadyReport = serde_json::from_slice(&report.to_json()).unwrap();
        assert_eq!(back, report);

        let rec = record("x\ny", vec![("k".to_owned(), json!([1, {"a": null}]))]);
        let back: LogRecord = serde_json::from_slice(&rec.to_json()).unwrap();
        assert_eq!(back, rec);

        let msg = SendData {
            algorithm_type: "a".to_owned(),
            data: json!({"x": 0.5}),
            app_id: app(),
        };
        let back: SendData = serde_json::from_slice(&to_python_json(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);

        // What Python writes when ECCI_AGENT_ID is unset, and a missing key.
        let back: ReadyReport = serde_json::from_str(
            r#"{"app_id": "a", "container_name": "c", "agent_id": null, "ready_type": "app"}"#,
        )
        .unwrap();
        assert_eq!(back.agent_id, None);
        assert_eq!(back.ready_type, ReadyType::App);
        assert!(
            serde_json::from_str::<SendData>(
                r#"{"type": "cmd", "algorithm_type": "a", "data": 1, "app_id": "a"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<ReadyReport>(
                r#"{"app_id": "a/b", "container_name": "c", "agent_id": null, "ready_type": "app"}"#
            )
            .is_err()
        );
    }

    /// Runs `json.dumps(json.loads(line))` in CPython for each line and returns
    /// the output lines.
    fn cpython_dumps(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let script = "import sys, json\n\
            for line in sys.stdin.buffer.read().split(b'\\n'):\n    \
                if line:\n        \
                    sys.stdout.buffer.write(json.dumps(json.loads(line.decode('utf-8'))).encode('ascii') + b'\\n')\n";
        let input: Vec<u8> = lines.join(&b'\n');
        crate::testutil::python(script, &input)
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Deterministic pseudo-random f64 bit patterns (splitmix64), finite only.
    fn float_samples(n: usize) -> Vec<f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let bits = next();
            let f = f64::from_bits(bits);
            if f.is_finite() {
                out.push(f);
            }
            // Also values with few digits around the notation thresholds.
            let scaled = (bits % 100_000) as f64 * 10f64.powi((bits >> 32) as i32 % 24 - 12);
            out.push(scaled);
        }
        out
    }

    #[test]
    fn matches_cpython_byte_for_byte() {
        let mut values: Vec<serde_json::Value> = vec![
            json!(null),
            json!([true, false, 0, -1, 123456789012345_i64, u64::MAX]),
            json!("quotes ' \" and \\ backslash / slash"),
            json!("newline\n tab\t cr\r bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f}"),
            json!("unicode é ß 中文 € 😀 🇫🇷 \u{ffff} \u{10ffff}"),
            json!({"nested": {"list": [1, [2, [3, {}]], []], "empty": {}}, "z": null}),
            json!([
                1.0, 0.1, 1e16, 1e-7, 1e15, 0.0001, 0.00001, -0.0, 1e308, 5e-324, 2.5e-5
            ]),
            json!([1308548795726862.0 + 0.25, 9007199254740993.0, 123456789.125]),
        ];
        values.extend(float_samples(4000).into_iter().map(|f| json!([f])));
        let report = ReadyReport {
            app_id: app(),
            container_name: me(),
            agent_id: None,
            ready_type: ReadyType::Period("ép\"och\n".to_owned()),
        };
        let rec = record(
            "it's a \"line\"\nand\\more 😀",
            vec![("k".to_owned(), json!({"b": 1, "a": [0.5]}))],
        );
        let msg = SendData {
            algorithm_type: "t".to_owned(),
            data: json!({"x": [1e-7, "é"]}),
            app_id: app(),
        };

        // Feed CPython the same data as plain compact JSON (its dicts keep the
        // key order), and compare its `json.dumps` with ours.
        let mut inputs: Vec<Vec<u8>> = values
            .iter()
            .map(|v| serde_json::to_vec(v).unwrap())
            .collect();
        let mut ours: Vec<Vec<u8>> = values.iter().map(|v| to_python_json(v).unwrap()).collect();
        inputs.push(serde_json::to_vec(&report).unwrap());
        ours.push(report.to_json());
        inputs.push(serde_json::to_vec(&rec).unwrap());
        ours.push(rec.to_json());
        inputs.push(serde_json::to_vec(&msg).unwrap());
        ours.push(to_python_json(&msg).unwrap());

        let theirs = cpython_dumps(&inputs);
        assert_eq!(theirs.len(), ours.len());
        for ((ours, theirs), input) in ours.iter().zip(&theirs).zip(&inputs) {
            assert_eq!(
                String::from_utf8_lossy(ours),
                String::from_utf8_lossy(theirs),
                "input {}",
                String::from_utf8_lossy(input)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn float_repr_reads_back(bits in proptest::num::u64::ANY) {
            let f = f64::from_bits(bits);
            proptest::prop_assume!(f.is_finite());
            let json = to_python_json(&f).unwrap();
            let text = String::from_utf8(json).unwrap();
            let back: f64 = text.parse().unwrap();
            proptest::prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", text);
        }

        #[test]
        fn log_time_round_trips(
            year in 0u16..=9999, month in 1u8..=12, day in 1u8..=31, hour in 0u8..24,
            minute in 0u8..60, second in 0u8..=60, millis in 0u16..1000,
        ) {
            let t = LogTime { year, month, day, hour, minute, second, millis };
            proptest::prop_assert_eq!(t.to_string().parse::<LogTime>(), Ok(t));
        }

        #[test]
        fn strings_read_back(s in proptest::prelude::any::<String>()) {
            let json = to_python_json(&s).unwrap();
            proptest::prop_assert!(json.iter().all(|b| (0x20..0x7f).contains(b)));
            let back: String = serde_json::from_slice(&json).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }
}
