//! Which records reach the platform: the logger's scope.
//!
//! Python's SDK logs through a named `logging.Logger`, so records of third-party libraries
//! never reach the platform. `log` has one process-wide logger instead, and the SDK's own
//! dependencies (rustls, hyper, reqwest, …) log through it too. The scope here is
//! "everything except the SDK's dependency tree", not "only the crate that called `init`":
//!
//! - it holds for every way of starting a logger (`init`, `init_from_env`, `start`, the
//!   client's `install_logger`), none of which can see the caller's crate;
//! - an application split into several crates (a binary and its libraries, `tracing`
//!   targets of its own) keeps every one of its records: a guessed allow-list would drop
//!   the records of the crates it did not guess, silently;
//! - the records the SDK causes (TLS, HTTP, the MQTT stack) are exactly the ones the
//!   application did not ask for, and [`SDK_TARGETS`] names them all (a test checks the
//!   list against the resolved dependency tree).
//!
//! A directive (`env_logger`'s syntax, through the `env_filter` crate) narrows or widens
//! it: `ECCI_LOG_FILTER=info,my_app=debug,hyper=off`.

use std::sync::Arc;

use env_filter::Filter;
use log::LevelFilter;

use crate::logger::is_internal_target;

/// The crates of the SDK's dependency tree that can log (they depend on `log`, or on
/// `tracing`, whose `log` feature turns events into `log` records). Their records are
/// not shipped unless a directive names them (`LoggerConfig::filter`, `ECCI_LOG_FILTER`),
/// e.g. `rustls=debug`.
///
/// The crates the logger itself publishes through ([`is_internal_target`]) are never
/// shipped, whatever a directive says.
pub const SDK_TARGETS: &[&str] = &[
    "env_filter",
    "h2",
    "hyper",
    "hyper_rustls",
    "hyper_util",
    "iana_time_zone",
    "icu_provider",
    "jni",
    "memchr",
    "reqwest",
    "rustls",
    "rustls_platform_verifier",
    "security_framework",
    "tokio_rustls",
    "tower",
    "tower_http",
    "tracing",
    "want",
    "webpki",
];

/// Whether `target` is a crate of [`SDK_TARGETS`] or a module of one.
///
/// ```
/// assert!(ecci_logger::is_sdk_target("rustls_platform_verifier::android"));
/// assert!(ecci_logger::is_sdk_target("hyper"));
/// assert!(!ecci_logger::is_sdk_target("hyperion"));
/// assert!(!ecci_logger::is_sdk_target("my_app::hyper"));
/// ```
pub fn is_sdk_target(target: &str) -> bool {
    SDK_TARGETS.iter().any(|p| target_under(target, p))
}

/// Whether `target` is `prefix` or a module of it.
pub(crate) fn target_under(target: &str, prefix: &str) -> bool {
    target
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Why a filter directive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

/// The compiled scope of one logger.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// `level` for every target, then the directive's own entries.
    filter: Filter,
    /// The names the directive mentions: only these re-enable an SDK target.
    named: Arc<[String]>,
    /// The directive has a `/message` part.
    by_message: bool,
    ignore: Arc<[String]>,
}

impl Scope {
    /// `level` for targets no directive names; `directive` in `env_logger`'s syntax.
    pub(crate) fn new(
        level: LevelFilter,
        directive: Option<&str>,
        ignore: Vec<String>,
    ) -> Result<Scope, FilterError> {
        let mut builder = env_filter::Builder::new();
        builder.filter_level(level);
        let mut named = Vec::new();
        let mut by_message = false;
        if let Some(directive) = directive {
            builder
                .try_parse(directive)
                .map_err(|e| FilterError(e.to_string()))?;
            let (modules, message) = match directive.split_once('/') {
                Some((modules, message)) => (modules, Some(message)),
                None => (directive, None),
            };
            by_message = message.is_some();
            // env_filter's rule: an entry without `=` that parses as a level is the
            // default level; anything else names a module.
            for entry in modules.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let name = match entry.split_once('=') {
                    Some((name, _)) => name.trim(),
                    None if entry.parse::<LevelFilter>().is_ok() => continue,
                    None => entry,
                };
                named.push(name.to_owned());
            }
        }
        Ok(Scope {
            filter: builder.build(),
            named: named.into(),
            by_message,
            ignore: ignore.into(),
        })
    }

    /// The most verbose level any target may ship.
    pub(crate) fn max_level(&self) -> LevelFilter {
        self.filter.filter()
    }

    pub(crate) fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let target = metadata.target();
        if is_internal_target(target) || self.ignore.iter().any(|p| target_under(target, p)) {
            return false;
        }
        // As env_filter matches: a name covers every target that starts with it.
        if is_sdk_target(target) && !self.named.iter().any(|n| target.starts_with(&**n)) {
            return false;
        }
        self.filter.enabled(metadata)
    }

    /// [`Scope::enabled`], and the directive's `/message` part when it has one.
    pub(crate) fn matches(&self, record: &log::Record<'_>) -> bool {
        self.enabled(record.metadata()) && (!self.by_message || self.filter.matches(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[track_caller]
    fn check(level: LevelFilter, directive: Option<&str>, cases: &[(&str, Level, bool)]) {
        let scope = Scope::new(level, directive, vec!["ignored".to_owned()]).expect("valid");
        for &(target, level, expected) in cases {
            let metadata = log::Metadata::builder().target(target).level(level).build();
            assert_eq!(
                scope.enabled(&metadata),
                expected,
                "{directive:?}: {target} at {level}"
            );
        }
    }

    #[test]
    fn default_scope_is_everything_but_the_sdk() {
        check(
            LevelFilter::Debug,
            None,
            &[
                ("my_app", Level::Debug, true),
                ("my_app::camera", Level::Info, true),
                ("my_app", Level::Trace, false),
                ("sqlx::query", Level::Info, true),
                ("rustls_platform_verifier::verifier", Level::Debug, false),
                ("rustls::client::hs", Level::Error, false),
                ("hyper_util::client", Level::Info, false),
                ("reqwest::connect", Level::Debug, false),
                ("rumqttc::state", Level::Error, false),
                ("hyperion", Level::Debug, true),
                ("httpd", Level::Debug, true),
                ("ignored::inner", Level::Error, false),
            ],
        );
    }

    #[test]
    fn directives_turn_targets_on_and_off() {
        let directive = Some("info,my_app=debug,hyper=off,rustls=warn,sqlx=off");
        check(
            LevelFilter::Debug,
            directive,
            &[
                ("my_app", Level::Debug, true),
                ("my_app::camera", Level::Trace, false),
                ("other", Level::Info, true),
                ("other", Level::Debug, false),
                ("sqlx::query", Level::Error, false),
                ("hyper::proto", Level::Error, false),
                ("rustls::client", Level::Warn, true),
                ("rustls::client", Level::Info, false),
                // Named by `rustls`, as env_filter matches names: a prefix.
                ("rustls_platform_verifier", Level::Warn, true),
                ("reqwest::connect", Level::Error, false),
                ("rumqttc::state", Level::Error, false),
                ("ecci_transport::mqtt", Level::Error, false),
                ("ignored", Level::Error, false),
            ],
        );
        // Only my_app: every other target is off.
        check(
            LevelFilter::Debug,
            Some("off,my_app=trace"),
            &[
                ("my_app::x", Level::Trace, true),
                ("other", Level::Error, false),
            ],
        );
        // No default level in the directive: the rest keeps `level`.
        check(
            LevelFilter::Info,
            Some("my_app=trace"),
            &[
                ("my_app", Level::Trace, true),
                ("other", Level::Info, true),
                ("other", Level::Debug, false),
            ],
        );
    }

    #[test]
    fn max_level_covers_every_directive() {
        let scope = Scope::new(LevelFilter::Info, Some("my_app=trace"), Vec::new()).unwrap();
        assert_eq!(scope.max_level(), LevelFilter::Trace);
        let scope = Scope::new(LevelFilter::Debug, Some("warn"), Vec::new()).unwrap();
        assert_eq!(scope.max_level(), LevelFilter::Warn);
    }

    #[test]
    fn message_filter() {
        let scope = Scope::new(LevelFilter::Info, Some("info/camera"), Vec::new()).unwrap();
        let matches = |message: std::fmt::Arguments<'_>| {
            scope.matches(
                &log::Record::builder()
                    .target("my_app")
                    .level(Level::Info)
                    .args(message)
                    .build(),
            )
        };
        assert!(matches(format_args!("camera lost")));
        assert!(!matches(format_args!("frame done")));
    }

    #[test]
    fn bad_directives_are_refused() {
        for bad in ["my_app=loud", "a/b/c", "=debug,x=y"] {
            let err = Scope::new(LevelFilter::Info, Some(bad), Vec::new()).unwrap_err();
            assert!(
                err.to_string().starts_with("error parsing logger filter"),
                "{bad}: {err}"
            );
        }
    }
}
