//! The `log::Log` implementation: what runs on the caller's thread.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use ecci_proto::platform::Level;
use log::kv::{self, VisitSource};

use crate::CRITICAL_KEY;
use crate::buffer::{Entry, Shared};
use crate::filter::{Scope, target_under};

/// Targets of the logger's own records and of the crates it ships records with. Shipping
/// them would feed the logger its own traffic.
pub(crate) const INTERNAL_TARGETS: &[&str] = &[
    "ecci_logger",
    "ecci_transport",
    "rumqttc",
    "tokio",
    "tokio_util",
    "mio",
];

/// Whether `target` is one the logger never ships: its own, or that of a crate it ships
/// records with (`ecci_logger`, `ecci_transport`, `rumqttc`, `tokio`, `tokio_util`, `mio`),
/// or a module of one of them.
///
/// ```
/// assert!(ecci_logger::is_internal_target("rumqttc::state"));
/// assert!(ecci_logger::is_internal_target("ecci_logger"));
/// assert!(!ecci_logger::is_internal_target("tokio_postgres"));
/// assert!(!ecci_logger::is_internal_target("my_app::rumqttc"));
/// ```
pub fn is_internal_target(target: &str) -> bool {
    INTERNAL_TARGETS.iter().any(|p| target_under(target, p))
}

/// The [`log::Log`] backend that ships records to ECCI.
///
/// Usually installed by [`init`](crate::init) or [`init_from_env`](crate::init_from_env);
/// [`start`](crate::start) returns one without installing it, to call
/// [`Log::log`](log::Log::log) on directly or to wrap in a logger of your own.
///
/// [`log`](log::Log::log) formats the message, takes the local clock and buffers the
/// record; it never waits for the network, never takes an async lock and never panics
/// (unless a `Display` implementation in the message does).
#[derive(Debug, Clone)]
pub struct EcciLogger {
    pub(crate) shared: Arc<Shared>,
    pub(crate) scope: Scope,
}

impl EcciLogger {
    /// The most verbose level this logger ships for any target: [`LoggerConfig::level`]
    /// or a more verbose level a [`LoggerConfig::filter`] directive asks for.
    ///
    /// [`LoggerConfig::level`]: crate::LoggerConfig::level
    /// [`LoggerConfig::filter`]: crate::LoggerConfig::filter
    pub fn level(&self) -> log::LevelFilter {
        self.scope.max_level()
    }
}

impl log::Log for EcciLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.scope.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.scope.matches(record) {
            return;
        }
        let time = SystemTime::now();
        let message = match record.args().as_str() {
            Some(s) => s.to_owned(),
            None => {
                let mut s = String::with_capacity(64);
                // A `Display` that fails leaves what it wrote so far; ship that.
                let _ = s.write_fmt(*record.args());
                s
            }
        };
        let mut kv = Collect {
            pairs: Vec::new(),
            critical: false,
        };
        let _ = record.key_values().visit(&mut kv);
        let level = if kv.critical {
            Level::Critical
        } else {
            python_level(record.level())
        };
        self.shared.push(Entry {
            time,
            level,
            target: record.target().to_owned(),
            message,
            kv: kv.pairs,
        });
    }

    /// Does nothing: waiting for the broker here could block a caller. Use
    /// [`LoggerGuard::flush`](crate::LoggerGuard::flush), which waits with a bound.
    fn flush(&self) {}
}

/// Python's name for a `log` level; `trace` has none and ships as `DEBUG`.
fn python_level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug | log::Level::Trace => Level::Debug,
    }
}

/// Collects a record's key-values as JSON, picking out the `critical!` marker.
struct Collect {
    pairs: Vec<(String, serde_json::Value)>,
    critical: bool,
}

impl<'kvs> VisitSource<'kvs> for Collect {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        if key.as_str() == CRITICAL_KEY && value.to_borrowed_str() == Some("CRITICAL") {
            self.critical = true;
            return Ok(());
        }
        self.pairs
            .push((key.as_str().to_owned(), json_value(&value)));
        Ok(())
    }
}

/// Numbers and booleans stay JSON numbers and booleans; everything else is its `Display`.
fn json_value(value: &kv::Value<'_>) -> serde_json::Value {
    if let Some(b) = value.to_bool() {
        serde_json::Value::Bool(b)
    } else if let Some(n) = value.to_i64() {
        n.into()
    } else if let Some(n) = value.to_u64() {
        n.into()
    } else if let Some(f) = value.to_f64() {
        // Python writes NaN and infinities as non-JSON words; write them as text instead.
        serde_json::Number::from_f64(f).map_or_else(
            || serde_json::Value::String(f.to_string()),
            serde_json::Value::Number,
        )
    } else if let Some(s) = value.to_borrowed_str() {
        serde_json::Value::String(s.to_owned())
    } else {
        serde_json::Value::String(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_targets() {
        #[track_caller]
        fn check(target: &str, expected: bool) {
            assert_eq!(is_internal_target(target), expected, "{target:?}");
        }
        check("ecci_logger", true);
        check("ecci_logger::worker", true);
        check("ecci_transport::mqtt", true);
        check("rumqttc", true);
        check("rumqttc::state", true);
        check("tokio::runtime", true);
        check("tokio_util::codec", true);
        check("mio::poll", true);
        check("ecci_loggers", false);
        check("tokio_postgres", false);
        check("app::rumqttc", false);
        check("", false);
    }

    #[test]
    fn levels() {
        for (level, python) in [
            (log::Level::Error, Level::Error),
            (log::Level::Warn, Level::Warning),
            (log::Level::Info, Level::Info),
            (log::Level::Debug, Level::Debug),
            (log::Level::Trace, Level::Debug),
        ] {
            assert_eq!(python_level(level), python);
        }
    }
}
