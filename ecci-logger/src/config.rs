//! The logger's settings as a plain struct with documented defaults, and its init errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ecci_proto::config::{Config, ConfigError};
use ecci_proto::topic::{DEFAULT_LOG_PRE_TOPIC, TopicError};
use ecci_proto::{AppId, BrokerId, ContainerName};
use ecci_transport::{MqttConfig, QoS, Transport};

use crate::filter::FilterError;

/// The variable [`LoggerConfig::from_env`] reads [`LoggerConfig::filter`] from:
/// `ECCI_LOG_FILTER`, e.g. `info,my_app=debug,sqlx=off`. Unset or empty: no directive.
pub const FILTER_VAR: &str = "ECCI_LOG_FILTER";

/// Where the records go: a connection of the logger's own, or the application's.
#[derive(Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once at start; boxing would only burden the caller"
)]
pub enum Connection {
    /// The logger opens one long-lived connection of its own with these settings (a unique
    /// client id by default, so two containers of one app never kick each other off).
    Mqtt(MqttConfig),
    /// The logger shares the application's transport; it never closes it.
    Transport(Arc<dyn Transport>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Mqtt(config) => f.debug_tuple("Mqtt").field(config).finish(),
            Connection::Transport(t) => f.debug_tuple("Transport").field(t).finish(),
        }
    }
}

/// What to do with a record when the buffer is full (the broker is down or slower than the
/// program logs).
///
/// Either way the record is counted in [`Stats::dropped`](crate::Stats::dropped) and the
/// platform receives a `WARNING` record from `ecci_logger` saying how many were dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest buffered record and keep the new one (the default): after an outage
    /// the platform sees what the container is doing now, which is what an operator looks
    /// at first, and a steady stream of new records cannot be starved by a stale backlog.
    #[default]
    DropOldest,
    /// Drop the new record and keep the backlog: keeps the records that led up to the
    /// outage.
    DropNewest,
}

/// Everything the logger needs, as public fields with defaults from [`LoggerConfig::new`].
///
/// ```
/// use ecci_logger::{Connection, LoggerConfig};
/// use ecci_transport::{MqttConfig, QoS};
///
/// let config = LoggerConfig::new(
///     Connection::Mqtt(MqttConfig::new("127.0.0.1", 1883)),
///     "broker1".parse()?,
///     "app1".parse()?,
///     "worker".parse()?,
/// );
/// assert_eq!(config.pre_topic, "toEdgeAI");
/// assert_eq!(config.qos, QoS::AtLeastOnce);
/// assert_eq!(config.level, log::LevelFilter::Debug);
/// assert_eq!(config.capacity, 10_000);
/// assert_eq!(config.filter, None);
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LoggerConfig {
    /// Where the records go.
    pub connection: Connection,
    /// The broker id in the topic, `{pre_topic}/{broker_id}/log` (`ECCI_LOCAL_BROKER_ID`).
    pub broker_id: BrokerId,
    /// `app_id` of every record (`ECCI_APP_ID`).
    pub app_id: AppId,
    /// `container_name` of every record (`ECCI_CONTAINER_NAME`).
    pub container_name: ContainerName,
    /// `agent_id` of every record (`ECCI_AGENT_ID`); `null` when `None`. Default `None`.
    pub agent_id: Option<String>,
    /// The first part of the topic. Default `toEdgeAI`.
    pub pre_topic: String,
    /// Default [`QoS::AtLeastOnce`], where Python uses 2: a record is acknowledged in one
    /// round trip instead of two (about twice the records per second), and nothing is lost
    /// either way. The price is a possible duplicate after a reconnect, which QoS 2 does not
    /// avoid here either: unacknowledged messages are sent again on a new, clean session.
    pub qos: QoS,
    /// The most verbose level shipped for targets no [`filter`](LoggerConfig::filter)
    /// directive names. Default [`log::LevelFilter::Debug`], as the Python logger; `trace`
    /// records are shipped as `DEBUG` when enabled.
    pub level: log::LevelFilter,
    /// A directive in `env_logger`'s syntax (the `env_filter` crate) that narrows or widens
    /// which records are shipped; [`from_env`](LoggerConfig::from_env) reads it from
    /// `ECCI_LOG_FILTER` ([`FILTER_VAR`]). Default `None`.
    ///
    /// Without one, every target is shipped at [`level`](LoggerConfig::level) except the
    /// SDK's dependency tree ([`SDK_TARGETS`](crate::SDK_TARGETS): rustls, hyper, reqwest,
    /// …) and [`ignore_targets`](LoggerConfig::ignore_targets). With one, e.g.
    /// `info,my_app=debug,sqlx=off`: a target takes the level of the longest name it
    /// starts with, else the bare level (`info`), else `level`; a crate of the SDK's tree
    /// is shipped only when a name covers it (`rustls=debug`); `/text` ships only messages
    /// that contain `text`. The logger's own stack ([`is_internal_target`](crate::is_internal_target))
    /// is never shipped: it would feed the logger its own traffic.
    ///
    /// ```
    /// # use ecci_logger::{Connection, LoggerConfig};
    /// # let mut config = LoggerConfig::new(
    /// #     Connection::Mqtt(ecci_transport::MqttConfig::new("127.0.0.1", 1883)),
    /// #     "b".parse()?, "a".parse()?, "c".parse()?);
    /// // Only my_app's records, up to trace.
    /// config.filter = Some("off,my_app=trace".to_owned());
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub filter: Option<String>,
    /// Most records waiting in the logger's buffer (at least 1). Default 10,000. Records
    /// handed to the transport wait in its bulk queue as well.
    pub capacity: usize,
    /// Most bytes of records waiting in the logger's buffer (message, target and key-values,
    /// plus about 128 bytes each). Default 16 MiB. A full buffer, by count or by bytes,
    /// applies [`overflow`](Self::overflow); a record larger than the whole buffer is
    /// dropped and counted.
    pub capacity_bytes: usize,
    /// What a full buffer does. Default [`Overflow::DropOldest`].
    pub overflow: Overflow,
    /// Targets never shipped, besides the built-in ones (see [`is_internal_target`](crate::is_internal_target)):
    /// a target is ignored when it equals an entry or starts with an entry followed by `::`.
    pub ignore_targets: Vec<String>,
    /// How long dropping the [`LoggerGuard`](crate::LoggerGuard) waits for the records to be
    /// acknowledged. Default 2 s.
    pub shutdown_timeout: Duration,
    /// How fast records leave; `None` sends them as fast as the connection takes them.
    /// Default [`Pacing::default`]: a burst of 200, then 1,000 records per second.
    ///
    /// Why: the broker acknowledges a record when it has it, not when the platform's
    /// consumer read it, and it drops what a subscriber has not read beyond its queue
    /// (mosquitto: 1,000 messages) without telling anyone. Unpaced, a 2,000-record start-up
    /// burst reached a default mosquitto in 50–190 ms and a `mosquitto_sub -q 2` consumer
    /// lost up to 980 of them. That consumer read 3,100–6,600 records/s here (2 cores,
    /// records of 150–400 bytes), a Python one reads ~2,000–10,000/s: 1,000/s keeps every
    /// burst whole with room to spare, and a storm above it waits in the buffer
    /// ([`capacity`](LoggerConfig::capacity)) instead of overflowing the broker.
    pub pacing: Option<Pacing>,
}

/// The logger's pace: a token bucket of `burst` records, refilled at `rate` per second.
///
/// ```
/// let p = ecci_logger::Pacing::default();
/// assert_eq!((p.rate, p.burst), (1_000, 200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Records per second, sustained (at least 1).
    pub rate: u32,
    /// Records that may leave at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            rate: 1_000,
            burst: 200,
        }
    }
}

impl LoggerConfig {
    /// The defaults for a container called `container_name` of `app_id`, logging through
    /// `connection` under broker `broker_id`.
    pub fn new(
        connection: Connection,
        broker_id: BrokerId,
        app_id: AppId,
        container_name: ContainerName,
    ) -> LoggerConfig {
        LoggerConfig {
            connection,
            broker_id,
            app_id,
            container_name,
            agent_id: None,
            pre_topic: DEFAULT_LOG_PRE_TOPIC.to_owned(),
            qos: QoS::AtLeastOnce,
            level: log::LevelFilter::Debug,
            filter: None,
            capacity: 10_000,
            capacity_bytes: 16 * 1024 * 1024,
            overflow: Overflow::DropOldest,
            ignore_targets: Vec::new(),
            shutdown_timeout: Duration::from_secs(2),
            pacing: Some(Pacing::default()),
        }
    }

    /// The settings an ECCI container gets from its `ECCI_*` variables: its own connection
    /// to the local broker (with the credentials when both are set), its broker id, app id,
    /// container name and agent id.
    ///
    /// ```
    /// use ecci_logger::{Connection, LoggerConfig};
    /// let env = [
    ///     ("ECCI_LOCAL_BROKER_IP", "10.0.0.5"),
    ///     ("ECCI_LOCAL_BROKER_ID", "b1"),
    ///     ("ECCI_APP_ID", "app"),
    ///     ("ECCI_CONTAINER_NAME", "worker"),
    ///     ("ECCI_AGENT_ID", "agent-3"),
    /// ];
    /// let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    /// let ecci = ecci_proto::Config::from_lookup(lookup)?;
    /// let config = LoggerConfig::from_config(&ecci);
    /// assert_eq!(config.container_name.as_str(), "worker");
    /// assert_eq!(config.agent_id.as_deref(), Some("agent-3"));
    /// let Connection::Mqtt(mqtt) = &config.connection else { unreachable!() };
    /// assert_eq!((mqtt.host.as_str(), mqtt.port), ("10.0.0.5", 1883));
    /// # Ok::<(), ecci_proto::config::ConfigError>(())
    /// ```
    pub fn from_config(config: &Config) -> LoggerConfig {
        let mut mqtt = MqttConfig::new(config.broker_host(), config.broker_port());
        mqtt.credentials = config
            .credentials()
            .map(|c| (c.username().to_owned(), c.password().to_owned()));
        let mut out = LoggerConfig::new(
            Connection::Mqtt(mqtt),
            config.broker_id().clone(),
            config.app_id().clone(),
            config.container_name().clone(),
        );
        out.agent_id = config.agent_id().map(str::to_owned);
        out
    }

    /// [`LoggerConfig::from_config`] of [`Config::identity_from_env`], with
    /// [`filter`](LoggerConfig::filter) from `ECCI_LOG_FILTER`: only the variables the
    /// logger needs are read, so a bad `ECCI_PUB_TARGETS` (say) cannot keep the logger from
    /// starting and reporting.
    ///
    /// # Errors
    /// The [`ConfigError`] naming the first missing or bad identity variable
    /// (broker host, port, id and credentials, app id, container name, agent id), or
    /// `ECCI_LOG_FILTER` when it is not Unicode (a bad directive is reported by
    /// [`init`](crate::init)).
    pub fn from_env() -> Result<LoggerConfig, InitError> {
        let mut config = LoggerConfig::from_config(&Config::identity_from_env()?);
        config.filter = LoggerConfig::filter_from_env()?;
        Ok(config)
    }

    /// The directive in `ECCI_LOG_FILTER` ([`FILTER_VAR`]); `None` when it is unset or
    /// empty.
    ///
    /// # Errors
    /// [`ConfigError::NotUnicode`] naming the variable when its value is not Unicode.
    pub fn filter_from_env() -> Result<Option<String>, InitError> {
        match std::env::var_os(FILTER_VAR) {
            None => Ok(None),
            Some(v) => Ok(Some(v.into_string().map_err(|_| ConfigError::NotUnicode {
                variable: FILTER_VAR,
            })?)
            .filter(|v| !v.is_empty())),
        }
    }
}

/// Why the logger could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The `ECCI_*` variables are missing or wrong.
    #[error("invalid ECCI configuration")]
    Config(#[from] ConfigError),
    /// `pre_topic` is not a valid topic prefix.
    #[error("invalid log pre_topic")]
    PreTopic(#[source] TopicError),
    /// [`LoggerConfig::filter`] (`ECCI_LOG_FILTER`) is not a valid directive.
    #[error("invalid log filter {directive:?}")]
    Filter {
        /// The directive.
        directive: String,
        /// What is wrong with it.
        #[source]
        source: FilterError,
    },
    /// The background thread or its runtime could not be started.
    #[error("could not start the logger thread")]
    Thread(#[source] std::io::Error),
    /// Another global logger is installed already (the `log` crate allows one per process).
    #[error("a global logger is already installed")]
    AlreadyInstalled,
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// [`child`]'s output in a copy of this test binary with `ECCI_LOG_FILTER` set to
    /// `value` (unset: `None`).
    fn filter_in_child(value: Option<&str>) -> String {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", "config::tests::child", "--nocapture"])
            .env("ECCI_LOGGER_TEST_CHILD", "1")
            .env_remove(super::FILTER_VAR);
        if let Some(value) = value {
            command.env(super::FILTER_VAR, value);
        }
        let out = command.output().expect("test binary runs");
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("filter: "))
            .expect("the child reports")
            .to_owned()
    }

    /// The child's side of [`reads_ecci_log_filter`]; does nothing in a normal run.
    #[test]
    fn child() {
        use std::io::Write as _;
        if std::env::var_os("ECCI_LOGGER_TEST_CHILD").is_some() {
            let filter = super::LoggerConfig::filter_from_env().expect("unicode");
            let _ = writeln!(std::io::stderr(), "filter: {filter:?}");
        }
    }

    #[test]
    fn reads_ecci_log_filter() {
        assert_eq!(
            filter_in_child(Some("info,my_app=debug,hyper=off")),
            r#"Some("info,my_app=debug,hyper=off")"#
        );
        assert_eq!(filter_in_child(Some("")), "None");
        assert_eq!(filter_in_child(None), "None");
    }
}
