//! The MQTT seam of the ECCI SDK.
//!
//! A tour:
//! - [`Transport`] is the small, object-safe trait the rest of the SDK talks to
//!   (`Arc<dyn Transport>`): [`publish`](Transport::publish) returns a [`Receipt`] that
//!   resolves when the broker acknowledged the message, [`try_publish`](Transport::try_publish)
//!   hands the [`Message`] back when the queue is full, and [`take_events`](Transport::take_events)
//!   gives the one ordered stream of inbound messages and connection [`Event`]s.
//! - [`MqttTransport`] speaks MQTT 3.1.1 over TCP. It reconnects for ever with backoff and
//!   jitter, makes its subscriptions again after every reconnect, keeps every QoS ≥ 1 message
//!   until the broker acknowledged it (and sends it again after a reconnect, also when the new
//!   session is clean), and never has more than [`MqttConfig::max_in_flight`] messages in flight,
//!   so a broker's quota (mosquitto: 20) is never exceeded.
//! - With the `test-util` feature: `memory` (an in-memory hub with fault injection),
//!   `broker` (a small embedded MQTT broker), `conformance` (the suite every transport passes)
//!   and `mosquitto` (a real mosquitto that a test starts, stops and restarts itself; Unix).
//! - With the `tls` feature: [`MqttConfig`]'s `tls` field takes a `TlsConfig` (rustls with
//!   the ring provider, no OpenSSL), and the embedded broker can listen with TLS.
//!
//! ```no_run
//! use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let transport = MqttTransport::start(MqttConfig::new("127.0.0.1", 1883));
//! let mut events = transport.take_events().expect("taken once");
//! transport.subscribe("ECCI/b/app/app/+/me", QoS::ExactlyOnce).await?;
//! let receipt = transport
//!     .publish(Message::new("ECCI/b/app/app/me/you", "hello", QoS::ExactlyOnce))
//!     .await?;
//! receipt.await?; // the broker has it
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod codec;
mod config;
mod error;
mod mqtt;
#[cfg(feature = "tls")]
mod tls;
mod types;

#[cfg(feature = "test-util")]
pub mod broker;
#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
pub mod memory;
#[cfg(feature = "test-util")]
pub mod mock;
#[cfg(all(feature = "test-util", unix))]
pub mod mosquitto;
#[cfg(feature = "test-util")]
pub mod skip;

pub use backoff::Backoff;
pub use config::{
    BackoffConfig, MqttConfig, TAKEOVER_STREAK, TAKEOVER_WINDOW, client_id, stable_client_id,
};
pub use error::{ConnectionError, IoError, PublishError, SubscribeError, TryPublishError};
pub use mqtt::MqttTransport;
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
pub use types::{Event, Events, Message, Metrics, Priority, QoS, Receipt};

use async_trait::async_trait;

/// A connection to an MQTT broker, real or simulated.
///
/// Object-safe: the SDK holds an `Arc<dyn Transport>`. Every method takes `&self`, so one
/// transport is shared by all tasks of a process.
///
/// # Queues
/// Outgoing messages wait in one bounded queue per [`Priority`]: [`Priority::Control`]
/// messages (the handshake, file-transfer control, urgent commands) always go out before
/// [`Priority::Bulk`] ones (an application's data and commands, in publish order), and those
/// before [`Priority::Background`] ones (log records): control ≫ data ≫ logs. [`publish`](Transport::publish) waits for room; [`try_publish`](Transport::try_publish)
/// never waits and hands the message back.
#[async_trait]
pub trait Transport: std::fmt::Debug + Send + Sync {
    /// Queues `message`, waiting while its queue is full, and returns a [`Receipt`] that
    /// resolves when the broker acknowledged it (PUBACK for QoS 1, PUBCOMP for QoS 2; QoS 0:
    /// when it was written to the connection).
    ///
    /// Fails at once when the message can never be sent (too large, bad topic) or the
    /// transport is closed.
    ///
    /// # Cancel safety
    /// Cancel-safe: when the future is dropped before it returned, the message was not queued.
    async fn publish(&self, message: Message) -> Result<Receipt, PublishError>;

    /// Queues `message` without waiting; when its queue is full or the transport is closed,
    /// the message is handed back in the error.
    fn try_publish(&self, message: Message) -> Result<Receipt, TryPublishError>;

    /// Subscribes to `filter` (MQTT `+`/`#` wildcards) and remembers it: it is made again after
    /// every reconnect. Returns once the broker granted it; while disconnected, that is after
    /// the next connect.
    ///
    /// # Cancel safety
    /// The subscription is remembered as soon as the call started, whether or not it is awaited.
    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), SubscribeError>;

    /// Forgets `filter` and unsubscribes from it; no message that matches only this filter is
    /// delivered once this returned.
    ///
    /// # Cancel safety
    /// The filter is forgotten as soon as the call started, whether or not it is awaited.
    async fn unsubscribe(&self, filter: &str) -> Result<(), SubscribeError>;

    /// The stream of inbound messages and connection events, in order. It can be taken
    /// once; later calls return `None`. Until it is taken, events wait in it; when it is full,
    /// the transport stops reading from the broker (backpressure, never a silent loss).
    fn take_events(&self) -> Option<Events>;

    /// A snapshot of the counters.
    fn metrics(&self) -> Metrics;

    /// Disconnects and stops the transport's task, waiting for it to end. Messages still
    /// queued or in flight fail with [`PublishError::Closed`]; await their receipts first to
    /// deliver them. Calling it again does nothing.
    async fn close(&self);
}
