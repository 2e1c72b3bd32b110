//! The value types of the public API: messages, receipts, events and metrics.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{ConnectionError, PublishError};

/// MQTT quality of service.
///
/// ```
/// use ecci_transport::QoS;
/// assert!(QoS::AtMostOnce < QoS::ExactlyOnce);
/// assert_eq!(QoS::from_u8(1), Some(QoS::AtLeastOnce));
/// assert_eq!(QoS::ExactlyOnce as u8, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// QoS 0: sent once, never acknowledged.
    AtMostOnce = 0,
    /// QoS 1: acknowledged by PUBACK; may arrive twice.
    AtLeastOnce = 1,
    /// QoS 2: acknowledged by PUBCOMP; the broker passes it on once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS with this wire value, if any.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Which outgoing queue a message waits in.
///
/// Control messages always leave before bulk ones, and bulk ones before background ones
/// (control ≫ data ≫ logs), so the SDK's handshake and file-transfer messages are never
/// stuck behind a backlog of data, and data never behind a log storm on a shared
/// connection. Messages of one priority leave
/// in the order they were queued: an application's data and commands share
/// [`Priority::Bulk`] so that a receiver sees them in publish order, as with Python. Local
/// only: it is not on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// The readiness handshake, file-transfer control, commands an application marks urgent.
    Control,
    /// Application data and commands.
    #[default]
    Bulk,
    /// Log records: sent only while no control or bulk message waits.
    Background,
}

/// An MQTT application message, outgoing or inbound.
///
/// ```
/// use ecci_transport::{Message, Priority, QoS};
/// let m = Message::new("a/b", "hi", QoS::ExactlyOnce).with_priority(Priority::Control);
/// assert_eq!(&m.payload[..], b"hi");
/// assert!(!m.retain);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The topic name (no wildcards).
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// Quality of service: for an outgoing message, the one it is sent with; for an inbound
    /// one, the one it was delivered with.
    pub qos: QoS,
    /// The retain flag.
    pub retain: bool,
    /// The queue it waits in when outgoing; [`Priority::Bulk`] for inbound messages.
    pub priority: Priority,
}

impl Message {
    /// A message with retain off and [`Priority::Bulk`].
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            priority: Priority::Bulk,
        }
    }

    /// The same message with the retain flag set to `retain`.
    #[must_use]
    pub fn with_retain(mut self, retain: bool) -> Message {
        self.retain = retain;
        self
    }

    /// The same message in the `priority` queue.
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Message {
        self.priority = priority;
        self
    }
}

/// Resolves when the broker acknowledged a published message, or with the reason it never
/// will be.
///
/// Dropping a receipt does not cancel the message.
#[derive(Debug)]
#[must_use = "a receipt tells whether the broker got the message"]
pub struct Receipt {
    rx: oneshot::Receiver<Result<(), PublishError>>,
}

impl Receipt {
    /// A receipt and the sender that resolves it.
    pub(crate) fn channel() -> (oneshot::Sender<Result<(), PublishError>>, Receipt) {
        let (tx, rx) = oneshot::channel();
        (tx, Receipt { rx })
    }
}

impl Future for Receipt {
    type Output = Result<(), PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PublishError::Closed)))
    }
}

/// What a transport reports, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An inbound message.
    Message(Message),
    /// Connected, and every remembered subscription is in place again. Emitted on every
    /// (re)connect.
    Connected,
    /// The connection was lost; the transport reconnects by itself.
    Disconnected(ConnectionError),
    /// An inbound PUBLISH larger than [`MqttConfig::max_inbound_packet`](crate::MqttConfig::max_inbound_packet)
    /// was skipped (and acknowledged); the connection and the messages after it are kept.
    TooLarge {
        /// Its topic.
        topic: String,
        /// The size of the PUBLISH packet, in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Inbound QoS 2 PUBLISHes were dropped because they reused a live packet id (see
    /// [`Metrics::duplicates_dropped`]). Reported once per burst: for the first drop after a
    /// message was accepted, a connect or the start.
    DuplicateDropped {
        /// The topic of the first message dropped in the burst.
        topic: String,
        /// The packet id it reused.
        pkid: u16,
    },
    /// A connection attempt failed; the transport tries again after a delay. Reported for the
    /// first failure after a connection or start, and whenever the reason changes (so a
    /// broker that stays down does not flood the stream, but a wrong password is seen).
    ConnectFailed(ConnectionError),
}

/// The receiving end of a transport's [`Event`]s; see [`Transport::take_events`](crate::Transport::take_events).
#[derive(Debug)]
pub struct Events {
    rx: EventsRx,
    budget: Option<Arc<ByteBudget>>,
}

/// The payload bytes of the messages a transport has read and its consumer has not taken
/// yet; the transport stops reading from the broker while they reach the budget.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    held: AtomicUsize,
    max: usize,
    /// Woken when taking a message brings the bytes back under the budget.
    room: Notify,
}

impl ByteBudget {
    pub(crate) fn new(max: usize) -> ByteBudget {
        ByteBudget {
            held: AtomicUsize::new(0),
            max: max.max(1),
            room: Notify::new(),
        }
    }

    pub(crate) fn add(&self, n: usize) {
        self.held.fetch_add(n, Ordering::Relaxed);
    }

    fn take(&self, n: usize) {
        let before = self.held.fetch_sub(n, Ordering::Relaxed);
        if before >= self.max && before - n < self.max {
            self.room.notify_one();
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.max
    }

    /// Resolves once a taken message brought the bytes under the budget (or at once, if
    /// that happened since the last call).
    pub(crate) async fn room(&self) {
        self.room.notified().await;
    }
}

#[derive(Debug)]
enum EventsRx {
    Bounded(mpsc::Receiver<Event>),
    #[cfg_attr(
        not(feature = "test-util"),
        expect(dead_code, reason = "used by the memory transport")
    )]
    Unbounded(mpsc::UnboundedReceiver<Event>),
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>, budget: Arc<ByteBudget>) -> Events {
        Events {
            rx: EventsRx::Bounded(rx),
            budget: Some(budget),
        }
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn unbounded(rx: mpsc::UnboundedReceiver<Event>) -> Events {
        Events {
            rx: EventsRx::Unbounded(rx),
            budget: None,
        }
    }

    fn taken(&self, event: Option<Event>) -> Option<Event> {
        if let (Some(Event::Message(m)), Some(budget)) = (&event, &self.budget) {
            budget.take(m.payload.len());
        }
        event
    }

    /// The next event, or `None` once the transport is closed and every event was received.
    ///
    /// # Cancel safety
    /// Cancel-safe: no event is lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = match &mut self.rx {
            EventsRx::Bounded(rx) => rx.recv().await,
            EventsRx::Unbounded(rx) => rx.recv().await,
        };
        self.taken(event)
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<Event> {
        let event = match &mut self.rx {
            EventsRx::Bounded(rx) => rx.try_recv().ok(),
            EventsRx::Unbounded(rx) => rx.try_recv().ok(),
        };
        self.taken(event)
    }
}

/// A snapshot of a transport's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Whether the transport is connected now.
    pub connected: bool,
    /// Messages waiting in the queues, not yet sent.
    pub queued: usize,
    /// Bytes (payload and topic, in 1 KiB units) of the messages queued or in flight,
    /// counted against [`MqttConfig::outbox_bytes`](crate::MqttConfig::outbox_bytes).
    pub outbox_bytes: usize,
    /// QoS ≥ 1 messages sent (or to be sent again) and not yet acknowledged.
    pub in_flight: usize,
    /// Connections made after the first one.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Messages sent again after a reconnect.
    pub resent: u64,
    /// Messages given up on: QoS 0 messages lost with a connection, and messages still queued
    /// or in flight at close.
    pub dropped: u64,
    /// Messages acknowledged (QoS 0: written).
    pub acknowledged: u64,
    /// Inbound messages received (duplicates of QoS 2 messages not counted).
    pub received: u64,
    /// Inbound messages skipped because they exceeded the maximum inbound packet size
    /// (each reported as an [`Event::TooLarge`]).
    pub too_large: u64,
    /// Inbound QoS 2 PUBLISHes dropped because they reused the packet id of a message not
    /// yet released, without the DUP flag: a new message the broker numbered wrongly
    /// (mosquitto does, with `max_queued_messages 0` and a slow subscriber). MQTT requires
    /// dropping them, so they are lost; each burst is reported as an
    /// [`Event::DuplicateDropped`]. Resends (DUP set) are not counted: they are not losses.
    pub duplicates_dropped: u64,
    /// Bytes written to the broker.
    pub bytes_sent: u64,
    /// Bytes read from the broker.
    pub bytes_received: u64,
}
