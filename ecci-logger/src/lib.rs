//! A [`log`] backend that ships a container's records to the ECCI platform over MQTT
//! (`{pre_topic}/{broker}/log`, JSON byte for byte as the Python SDK writes it), without
//! ever blocking the caller and without losing records silently.
//!
//! A tour:
//! - [`init_from_env`] installs the logger in one line from the `ECCI_*` variables;
//!   [`init`] takes a [`LoggerConfig`] (your own broker settings, or the application's
//!   `Arc<dyn Transport>` to share its connection). Both return a [`LoggerGuard`]: keep it
//!   alive; dropping it flushes with a bounded wait. [`start`] builds an [`EcciLogger`]
//!   without installing it.
//! - A call to `log::info!` and friends formats the message and buffers it; a background
//!   thread (with its own small tokio runtime of one worker thread, so synchronous programs
//!   work too) publishes
//!   the records through `ecci-transport` as [`Priority::Background`](ecci_transport::Priority)
//!   messages, so control traffic and data on a shared connection always go first
//!   (control ≫ data ≫ logs), waiting for room when the transport's queue is full rather
//!   than spinning. It paces them ([`LoggerConfig::pacing`], default 1,000 records/s after
//!   a burst of 200) so that a burst reaches a slow consumer whole instead of overflowing
//!   the broker's queue for it.
//! - When the buffer is full ([`LoggerConfig::capacity`] records or
//!   [`LoggerConfig::capacity_bytes`], e.g. while the broker is down)
//!   the [`Overflow`] policy drops the oldest record by default; the drops are counted
//!   ([`Stats::dropped`]) and a `WARNING` record from `ecci_logger` tells the platform how
//!   many were lost, delivered once the connection is back. Records still buffered are
//!   delivered after the broker returns.
//! - Only the application's records are shipped: not those of the SDK's dependency tree
//!   (rustls, hyper, reqwest, …; [`SDK_TARGETS`]), unless a directive names them, and never
//!   those of the logger itself and the crates it publishes through (`rumqttc`,
//!   `ecci_transport`, `tokio`, …; [`is_internal_target`]). A directive in
//!   `env_logger`'s syntax narrows or widens the scope: [`LoggerConfig::filter`], or the
//!   `ECCI_LOG_FILTER` variable ([`FILTER_VAR`]), e.g. `info,my_app=debug,sqlx=off`.
//! - Python's `CRITICAL`: [`critical!`]. Key-values (`log`'s `kv`) travel as an extra
//!   `"kv"` object after `"message"`, left out when there are none.
//!
//! ```no_run
//! fn main() -> Result<(), ecci_logger::InitError> {
//!     let _guard = ecci_logger::init_from_env()?;
//!     log::info!("started");
//!     log::warn!(frame = 42, score = 0.93; "slow frame");
//!     ecci_logger::critical!("cannot open the camera");
//!     Ok(())
//! } // the guard flushes here, waiting at most LoggerConfig::shutdown_timeout
//! ```
//!
//! # The record
//! `{"app_id": A, "container_name": C, "agent_id": G|null, "log_info": {"time":
//! "2026-11-24 02:26:10,087", "name": TARGET, "level": LEVEL, "message": MSG}}`, with
//! `"kv": {...}` after `"message"` when the record has key-values. `time` is local time
//! (`TZ`, else `/etc/localtime`), `level` one of `DEBUG` (`debug` and `trace`), `INFO`,
//! `WARNING`, `ERROR`, `CRITICAL`. Key-values that are booleans or numbers stay JSON
//! booleans and numbers; anything else is written as its `Display` text.
//!
//! # `tracing`
//! Enable `tracing`'s `log` feature (`tracing = { version = "0.1", features = ["log"] }`):
//! when no `tracing` subscriber is installed, its events are emitted as `log` records and
//! reach this logger, with the event's target as `name` (use `log-always` to get both when a
//! subscriber is installed). Span fields are not carried.
//!
//! # Blocking
//! Only [`LoggerGuard::flush`], [`LoggerGuard::shutdown`] and dropping the guard wait, each
//! at most its timeout. They block the calling thread: in async code, call them from
//! `tokio::task::spawn_blocking` or at the end of `main`.

mod buffer;
mod config;
mod filter;
mod logger;
mod time;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{Connection, FILTER_VAR, InitError, LoggerConfig, Overflow, Pacing};
pub use filter::{FilterError, SDK_TARGETS, is_sdk_target};
pub use logger::{EcciLogger, is_internal_target};

use buffer::{Counters, Shared};
use ecci_proto::topic::LogTopic;
use worker::{Identity, Worker};

#[doc(hidden)]
pub use log as __log;

/// The key-value key that [`critical!`] sets to `"CRITICAL"`. A record that carries it is
/// shipped with level `CRITICAL`, and the key itself is left out of `"kv"`.
///
/// ```
/// assert_eq!(ecci_logger::CRITICAL_KEY, "ecci_level");
/// ```
pub const CRITICAL_KEY: &str = "ecci_level";

/// Logs at Python's `CRITICAL` level, which `log` does not have.
///
/// Takes what `log::error!` takes (`target:`, key-values before a `;`, the format string
/// and its arguments). The record is an `error` record with the key-value
/// [`CRITICAL_KEY`]` = "CRITICAL"`, which this logger ships as `CRITICAL`; other loggers
/// see an error with that key-value.
///
/// ```
/// # let reason = "no signal";
/// ecci_logger::critical!("camera lost: {reason}");
/// ecci_logger::critical!(target: "camera", "camera lost");
/// ecci_logger::critical!(device = 3; "camera lost: {}", reason);
/// ```
#[macro_export]
macro_rules! critical {
    (target: $target:expr, $($key:tt $(:$capture:tt)? $(= $value:expr)?),+; $($arg:tt)+) => {
        $crate::__log::log!(
            target: $target,
            $crate::__log::Level::Error,
            ecci_level = "CRITICAL", $($key $(:$capture)? $(= $value)?),+;
            $($arg)+
        )
    };
    (target: $target:expr, $($arg:tt)+) => {
        $crate::__log::log!(
            target: $target,
            $crate::__log::Level::Error,
            ecci_level = "CRITICAL";
            $($arg)+
        )
    };
    ($($key:tt $(:$capture:tt)? $(= $value:expr)?),+; $($arg:tt)+) => {
        $crate::__log::log!(
            $crate::__log::Level::Error,
            ecci_level = "CRITICAL", $($key $(:$capture)? $(= $value)?),+;
            $($arg)+
        )
    };
    ($($arg:tt)+) => {
        $crate::__log::log!($crate::__log::Level::Error, ecci_level = "CRITICAL"; $($arg)+)
    };
}

/// Starts a logger from the `ECCI_*` variables ([`LoggerConfig::from_env`]) and installs
/// it as the global `log` logger.
///
/// # Errors
/// A bad or missing variable, a thread that could not start, or another global logger.
pub fn init_from_env() -> Result<LoggerGuard, InitError> {
    init(LoggerConfig::from_env()?)
}

/// Starts a logger and installs it as the global `log` logger, with `log`'s maximum level
/// set to [`LoggerConfig::level`].
///
/// ```no_run
/// use ecci_logger::{Connection, LoggerConfig};
/// # fn demo(app_transport: std::sync::Arc<dyn ecci_transport::Transport>) -> Result<(), Box<dyn std::error::Error>> {
/// // Share the application's connection instead of opening a second one.
/// let config = LoggerConfig::new(
///     Connection::Transport(app_transport),
///     "broker1".parse()?,
///     "app1".parse()?,
///     "worker".parse()?,
/// );
/// let guard = ecci_logger::init(config)?;
/// log::info!("hello");
/// guard.shutdown()?; // waits until the broker acknowledged "hello" (bounded)
/// # Ok(()) }
/// ```
///
/// # Errors
/// An invalid `pre_topic` or filter directive, a thread that could not start, or another
/// global logger (the `log` crate allows one per process).
pub fn init(config: LoggerConfig) -> Result<LoggerGuard, InitError> {
    let (logger, guard) = start(config)?;
    let level = logger.level();
    log::set_boxed_logger(Box::new(logger)).map_err(|_| InitError::AlreadyInstalled)?;
    log::set_max_level(level);
    Ok(guard)
}

/// Starts a logger without installing it: the [`EcciLogger`] (a [`log::Log`]) and the
/// guard of its background thread.
///
/// # Errors
/// An invalid `pre_topic` or filter directive, or a thread that could not start.
pub fn start(config: LoggerConfig) -> Result<(EcciLogger, LoggerGuard), InitError> {
    let topic = LogTopic::with_pre_topic(config.pre_topic, config.broker_id)
        .map_err(InitError::PreTopic)?;
    let scope = filter::Scope::new(
        config.level,
        config.filter.as_deref(),
        config.ignore_targets,
    )
    .map_err(|source| InitError::Filter {
        directive: config.filter.clone().unwrap_or_default(),
        source,
    })?;
    let shared = Arc::new(Shared::new(
        config.capacity,
        config.capacity_bytes,
        config.overflow,
    ));
    let identity = Identity {
        app_id: config.app_id,
        container_name: config.container_name,
        agent_id: config.agent_id,
        topic: topic.to_string(),
        qos: config.qos,
    };
    let shares_transport = matches!(config.connection, Connection::Transport(_));
    let worker = Worker::spawn(shared.clone(), config.connection, config.pacing, identity)?;
    let logger = EcciLogger {
        shared: shared.clone(),
        scope,
    };
    let guard = LoggerGuard {
        shared,
        worker: Some(worker),
        timeout: config.shutdown_timeout,
        shares_transport,
    };
    Ok((logger, guard))
}

/// Counters of a logger since it started.
///
/// `logged` = `acknowledged` + `dropped` + `failed` + the records still on their way.
///
/// What the logger can know ends at the broker: `acknowledged` means the broker took the
/// record (PUBACK/PUBCOMP), not that a consumer read it. A broker drops messages beyond a
/// subscriber's queue (mosquitto: `max_queued_messages`, 1000) without telling the
/// publisher; [`LoggerConfig::pacing`] keeps a burst within what a consumer reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted by the level and target filters.
    pub logged: u64,
    /// Records acknowledged by the broker (not necessarily read by anyone yet).
    pub acknowledged: u64,
    /// Records dropped: evicted from a full buffer, refused by the transport (e.g. too
    /// large), or left when the logger stopped.
    pub dropped: u64,
    /// Records the transport accepted but lost (it was closed before the broker
    /// acknowledged them).
    pub failed: u64,
    /// "dropped N records" reports acknowledged by the broker.
    pub reports: u64,
    /// Records waiting in the buffer now.
    pub buffered: usize,
}

/// Why a flush did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// Some records were not acknowledged within the time allowed (the broker is down or
    /// slow); they stay buffered.
    #[error("log records not acknowledged within {0:?}")]
    Timeout(Duration),
    /// The logger's background thread has stopped.
    #[error("logger stopped")]
    Stopped,
    /// A blocking flush was called on a current-thread tokio runtime while the logger shares
    /// the application's transport: blocking the runtime's only thread would stop the very
    /// transport the records wait on. Nothing was waited for; use
    /// [`LoggerGuard::flush_async`] (or [`LoggerGuard::shutdown_async`]) there.
    #[error("flush would block the current-thread runtime that runs the shared transport")]
    WouldBlock,
}

/// Owns a logger's background thread: flushes and stops it when dropped, waiting at most
/// [`LoggerConfig::shutdown_timeout`] (plus up to a second to close its own connection).
///
/// On a current-thread tokio runtime a logger that shares the application's transport
/// ([`Connection::Transport`]) cannot be flushed by blocking: the transport runs on the
/// thread that would wait. There the blocking [`flush`](LoggerGuard::flush) and
/// [`shutdown`](LoggerGuard::shutdown) return [`FlushError::WouldBlock`] and dropping the
/// guard stops the logger without waiting (records not yet acknowledged are lost, and
/// counted); await [`flush_async`](LoggerGuard::flush_async) or
/// [`shutdown_async`](LoggerGuard::shutdown_async) instead.
///
/// After the guard is gone the logger drops every record (and counts it).
#[derive(Debug)]
#[must_use = "dropping the guard stops the logger"]
pub struct LoggerGuard {
    shared: Arc<Shared>,
    worker: Option<Worker>,
    timeout: Duration,
    /// The logger publishes on the application's transport (see [`Connection::Transport`]).
    shares_transport: bool,
}

impl LoggerGuard {
    /// Waits until every record logged before the call was acknowledged by the broker (or
    /// given up on), at most [`LoggerConfig::shutdown_timeout`].
    ///
    /// # Errors
    /// [`FlushError::Timeout`] when the time ran out, [`FlushError::Stopped`] when the
    /// logger is stopped, [`FlushError::WouldBlock`] on a current-thread runtime when the
    /// logger shares the application's transport (see [`LoggerGuard`]).
    pub fn flush(&self) -> Result<(), FlushError> {
        self.flush_timeout(self.timeout)
    }

    /// [`flush`](LoggerGuard::flush) with its own time limit.
    ///
    /// # Errors
    /// As [`flush`](LoggerGuard::flush).
    pub fn flush_timeout(&self, timeout: Duration) -> Result<(), FlushError> {
        if self.is_stopped() {
            return Err(FlushError::Stopped);
        }
        if self.would_block() {
            return Err(FlushError::WouldBlock);
        }
        match self.shared.push_flush().recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(FlushError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(FlushError::Stopped),
        }
    }

    /// [`flush`](LoggerGuard::flush) for async code: waits (at most
    /// [`LoggerConfig::shutdown_timeout`]) without blocking the runtime, so it works on any
    /// runtime flavor, also when the logger shares the application's transport. Needs a
    /// runtime with the time driver enabled.
    ///
    /// # Errors
    /// [`FlushError::Timeout`] when the time ran out, [`FlushError::Stopped`] when the
    /// logger is stopped.
    pub async fn flush_async(&self) -> Result<(), FlushError> {
        if self.is_stopped() {
            return Err(FlushError::Stopped);
        }
        let flushed = self.shared.push_flush_async();
        match tokio::time::timeout(self.timeout, flushed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(FlushError::Stopped),
            Err(_) => Err(FlushError::Timeout(self.timeout)),
        }
    }

    /// Flushes (at most [`LoggerConfig::shutdown_timeout`]), then stops the background
    /// thread and closes the logger's own connection (never a shared one).
    ///
    /// # Errors
    /// The flush's error; the logger is stopped either way. On a current-thread runtime
    /// with a shared transport [`FlushError::WouldBlock`]: the logger stopped without
    /// flushing (use [`shutdown_async`](LoggerGuard::shutdown_async) there).
    pub fn shutdown(mut self) -> Result<(), FlushError> {
        self.finish()
    }

    /// [`shutdown`](LoggerGuard::shutdown) for async code: flushes with
    /// [`flush_async`](LoggerGuard::flush_async), then stops the background thread, waiting
    /// for it on tokio's blocking pool rather than on the runtime.
    ///
    /// # Errors
    /// The flush's error; the logger is stopped either way.
    pub async fn shutdown_async(mut self) -> Result<(), FlushError> {
        if self.worker.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let flushed = self.flush_async().await;
        if let Some(mut worker) = self.worker.take() {
            let left = self.timeout.saturating_sub(started.elapsed()) + Duration::from_secs(1);
            let _ = tokio::task::spawn_blocking(move || worker.stop(left)).await;
        }
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        flushed
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            logged: Counters::get(&c.logged),
            acknowledged: Counters::get(&c.acknowledged),
            dropped: Counters::get(&c.dropped),
            failed: Counters::get(&c.failed),
            reports: Counters::get(&c.reports),
            buffered: self.shared.buffered(),
        }
    }

    fn is_stopped(&self) -> bool {
        self.worker.is_none()
            || self
                .shared
                .stopped
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether waiting here would block the thread the shared transport needs.
    fn would_block(&self) -> bool {
        self.shares_transport
            && matches!(
                tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()),
                Ok(tokio::runtime::RuntimeFlavor::CurrentThread)
            )
    }

    fn finish(&mut self) -> Result<(), FlushError> {
        if self.worker.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let flushed = self.flush();
        if let Some(mut worker) = self.worker.take() {
            // Where the flush could not wait, the stop does not either: the thread ends by
            // itself once it sees the stop signal.
            let wait = if flushed == Err(FlushError::WouldBlock) {
                Duration::ZERO
            } else {
                self.timeout.saturating_sub(started.elapsed()) + Duration::from_secs(1)
            };
            worker.stop(wait);
        }
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        flushed
    }
}

impl Drop for LoggerGuard {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
