//! What the client hands the application: received messages (sender and contents together),
//! the queues they wait in, and the error events for messages that could not be used.
//!
//! Why an [`Inbox`] is a tokio `mpsc` receiver behind a mutex rather than a kept
//! multi-consumer channel (async-channel, flume; ecci-files' offer queue is a flume
//! channel): the client's task reserves room in the queue *before* it takes a parked
//! message out (`Sender::reserve`), so that a message is never taken from the parked
//! buffer and then lost to a full queue or a cancelled send, and it reads the queue's
//! room (`capacity`, `max_capacity`) to keep the byte accounting exact. Neither crate can
//! reserve a slot. The cost, documented on [`Inbox`]: a consumer waiting in `recv` holds
//! the queue, so two consumers of one inbox take turns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use ecci_proto::ContainerName;
use ecci_proto::envelope::EnvelopeError;
use ecci_proto::pickle::{Value, from_value};
use ecci_proto::readiness::UnexpectedCommand;
use ecci_proto::topic::{AppTopic, TopicError};
use ecci_transport::TryPublishError;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, Notify, mpsc};

use crate::Error;

/// The `contents` of a received envelope: any Python data value, decoded safely.
///
/// Decode it into your own type with [`decode`](Self::decode), or look at the dynamic
/// [`Value`].
///
/// ```
/// use ecci_client::Contents;
/// use ecci_proto::pickle::Value;
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Reading { sensor: String, celsius: f64 }
///
/// let c = Contents::from(Value::dict([
///     ("sensor", Value::from("t1")),
///     ("celsius", Value::Float(21.5)),
/// ]));
/// assert_eq!(c.decode::<Reading>()?, Reading { sensor: "t1".into(), celsius: 21.5 });
/// assert!(c.decode::<Vec<i64>>().is_err());
/// # Ok::<(), ecci_client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contents(Value);

impl Contents {
    /// The dynamic value.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The dynamic value, owned.
    pub fn into_value(self) -> Value {
        self.0
    }

    /// Decodes a copy of the contents into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the value does not have `T`'s shape.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        from_value(self.0.clone()).map_err(Error::Decode)
    }

    /// Decodes the contents into `T` without copying them.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the value does not have `T`'s shape.
    pub fn into_decoded<T: DeserializeOwned>(self) -> Result<T, Error> {
        from_value(self.0).map_err(Error::Decode)
    }

    /// The command name, when the contents are `{'cmd': NAME, …}` with a string `NAME`.
    ///
    /// ```
    /// use ecci_client::Contents;
    /// use ecci_proto::pickle::Value;
    /// let c = Contents::from(Value::dict([("cmd", Value::from("start"))]));
    /// assert_eq!(c.cmd_name(), Some("start"));
    /// ```
    pub fn cmd_name(&self) -> Option<&str> {
        ecci_proto::envelope::cmd_name(&self.0)
    }
}

impl From<Value> for Contents {
    fn from(value: Value) -> Self {
        Contents(value)
    }
}

impl From<Contents> for Value {
    fn from(contents: Contents) -> Self {
        contents.0
    }
}

impl AsRef<Value> for Contents {
    fn as_ref(&self) -> &Value {
        &self.0
    }
}

/// One received message: who sent it and what it carries, never apart.
///
/// ```
/// use ecci_client::{Contents, Received};
/// use ecci_proto::pickle::Value;
/// use ecci_proto::topic::AppTopic;
///
/// let topic = AppTopic::parse("ECCI/b1/app/app/sender/me")?;
/// let m = Received::new(topic, Contents::from(Value::from(7)));
/// assert_eq!(m.sender(), "sender");
/// assert_eq!(m.contents.decode::<i64>().unwrap(), 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The topic it arrived on: sender, receiver (this container or a sub object), broker,
    /// kind and mountpoint.
    pub topic: AppTopic,
    /// The envelope's contents.
    pub contents: Contents,
}

impl Received {
    /// A received message (for tests and fakes).
    pub fn new(topic: AppTopic, contents: Contents) -> Self {
        Self { topic, contents }
    }

    /// The sender, parsed from the topic.
    pub fn sender(&self) -> &ContainerName {
        &self.topic.sender
    }

    /// The receiver: this container, or one of its sub objects (`ECCI_SUB_OBJECTS`).
    pub fn receiver(&self) -> &ContainerName {
        &self.topic.receiver
    }

    /// Decodes a copy of the contents; see [`Contents::decode`].
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the contents do not have `T`'s shape.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.contents.decode()
    }
}

/// Why an inbound message (or a message the handshake had to send) could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The topic is not an ECCI app topic.
    #[error("topic is not an ecci app topic")]
    Topic(#[source] TopicError),
    /// The payload is not a pickled envelope of a known type.
    #[error("payload is not an ecci envelope")]
    Envelope(#[source] EnvelopeError),
    /// A `'file'` envelope whose contents are not a fileManager message.
    #[error("file message is not valid")]
    File(#[source] ecci_proto::file::FileMessageError),
    /// A fileManager message whose presigned URL the origin policy refused
    /// (see [`ClientOptions::files`](crate::ClientOptions::files) and `ECCI_FILE_ORIGINS`):
    /// nothing was uploaded to or downloaded from that origin.
    #[cfg(feature = "files")]
    #[error("file URL refused")]
    FileUrl(#[source] ecci_files::Refusal),
    /// A readiness command that does not fit this container's role or sender.
    #[error("readiness command refused")]
    Readiness(#[source] UnexpectedCommand),
    /// A message larger than [`ClientOptions::max_inbound_packet`](crate::ClientOptions::max_inbound_packet):
    /// skipped as it arrived (never buffered); the connection and the messages after it
    /// were kept.
    #[error(
        "message of {size} bytes exceeds the maximum inbound packet size of {max} bytes; skipped"
    )]
    TooLarge {
        /// The size of the MQTT packet, in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Messages from a Rust sender that never arrived: numbers `first..=last` of its
    /// sequence to this receiver were still missing [`ClientOptions::gap_grace`](crate::ClientOptions::gap_grace)
    /// after a later one arrived (the broker dropped them: no subscriber at the time, a
    /// full queue, a crash; or the sender's publish of them failed, say as too large, which
    /// the sender was told). The event's topic is the sender's topic.
    #[error("lost {count} messages from {sender} (seq {first}..{last})")]
    Lost {
        /// The sender.
        sender: ContainerName,
        /// How many messages.
        count: u64,
        /// The first missing sequence number.
        first: u64,
        /// The last missing sequence number.
        last: u64,
    },
    /// A readiness message could not be queued (the retry tick sends it again).
    #[error("readiness message could not be queued")]
    Queue(#[source] TryPublishError),
    /// The broker sent QoS 2 messages with the packet id of one not yet released (and no
    /// DUP flag); MQTT 3.1.1 requires dropping them, so they are lost. Reported once per
    /// burst, for its first message; every one is counted in the transport's
    /// [`Metrics::duplicates_dropped`](ecci_transport::Metrics::duplicates_dropped).
    /// mosquitto does this with `max_queued_messages 0` and a slow subscriber.
    #[error(
        "the broker reused the live packet id {pkid} for a new qos 2 message; dropped as mqtt requires (lost)"
    )]
    DuplicatePacketId {
        /// The packet id reused.
        pkid: u16,
    },
    /// A `'file'` message larger than
    /// [`ClientOptions::max_file_message`](crate::ClientOptions::max_file_message): not
    /// decoded, so that file messages cannot fill memory (a real one is a few KiB).
    #[error("file message of {size} bytes exceeds the maximum of {max} bytes; skipped")]
    FileTooLarge {
        /// The payload's size, in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// A message the client could not use, reported instead of crashing; see
/// [`Client::errors`](crate::Client::errors).
///
/// ```
/// use ecci_client::{ErrorEvent, InboundError};
/// use ecci_proto::topic::AppTopic;
/// let err = AppTopic::parse("not/an/ecci/topic").unwrap_err();
/// let ev = ErrorEvent {
///     topic: "not/an/ecci/topic".into(),
///     payload: bytes::Bytes::from_static(b"raw"),
///     error: InboundError::Topic(err),
/// };
/// assert_eq!(ev.to_string(), "message on \"not/an/ecci/topic\" rejected");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("message on {topic:?} rejected")]
pub struct ErrorEvent {
    /// The topic of the message concerned.
    pub topic: String,
    /// The raw payload of the message concerned, exactly as it arrived, so that
    /// nothing is lost: a payload the decoder refused (say, under
    /// [`ObjectPolicy::Refuse`](ecci_proto::pickle::ObjectPolicy)) can still be
    /// kept, forwarded or decoded otherwise. Empty for an error about a message
    /// the handshake had to send or a command it could not accept, for a
    /// message over the size limit (its bytes were skipped, never held), for
    /// a refused file URL (the message is a credential; the error names its file
    /// and origin), and when the error queue had no room for it
    /// ([`ClientOptions::error_queue_bytes`](crate::ClientOptions::error_queue_bytes)).
    pub payload: bytes::Bytes,
    /// What was wrong.
    #[source]
    pub error: InboundError,
}

type Recv<T> = Pin<Box<dyn Future<Output = Option<T>> + Send>>;

/// The bytes the items of one inbound queue count for (see [`weight`]; an error event's
/// payload), shared by the client's task, which adds them, and the [`Inbox`], which takes
/// them out; the task parks messages while they reach `max`.
#[derive(Debug)]
pub(crate) struct QueueBytes {
    held: AtomicUsize,
    max: usize,
    /// Woken when a taken message brings `held` under `max`.
    room: Notify,
}

impl QueueBytes {
    pub(crate) fn new(max: usize) -> Arc<QueueBytes> {
        Arc::new(QueueBytes {
            held: AtomicUsize::new(0),
            max: max.max(1),
            room: Notify::new(),
        })
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn add(&self, n: usize) {
        self.held.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn take(&self, n: usize) {
        let before = self.held.fetch_sub(n, Ordering::Relaxed);
        if before >= self.max && before - n < self.max {
            self.room.notify_one();
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.max
    }

    /// Whether `n` more bytes fit: within `max`, or alone in an empty queue.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        let held = self.held.load(Ordering::Relaxed);
        held == 0 || held.saturating_add(n) <= self.max
    }

    /// Resolves once a taken message brought the bytes under `max` (or at once, if that
    /// happened since the last call).
    pub(crate) async fn room(&self) {
        self.room.notified().await;
    }
}

/// An item in an inbound queue, with the bytes it counts for.
pub(crate) type Weighed<T> = (T, usize);

/// About the memory a received message takes in a queue: the larger of its payload (which
/// a numpy array's data may still be a view on) and its decoded value, counted as one
/// [`Value`] per node plus the length of its text and bytes. The decoder lets a payload of
/// `n` bytes grow to about 160·`n` (many small values); counting the value, not only the
/// payload, keeps such messages within the queue's byte bound. Iterative: the depth of a
/// value is bounded only by the decode limits.
pub(crate) fn weight(value: &Value, payload: usize) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(NODE);
        match v {
            Value::Str(s) => total = total.saturating_add(s.len()),
            Value::Bytes(b) | Value::ByteArray(b) | Value::SurrogateStr(b) => {
                total = total.saturating_add(b.len());
            }
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => {
                stack.extend(items);
            }
            Value::Dict(pairs) => stack.extend(pairs.iter().flat_map(|(k, v)| [k, v])),
            Value::Mapping(m) => stack.extend(m.pairs.iter().flat_map(|(k, v)| [k, v])),
            Value::Deque(d) => stack.extend(&d.items),
            Value::Global(g) => total = total.saturating_add(g.module.len() + g.name.len()),
            Value::Object(o) => {
                total = total.saturating_add(o.class.module.len() + o.class.name.len());
                stack.extend(&o.args);
                stack.extend(o.kwargs.iter().flat_map(|(k, v)| [k, v]));
                stack.extend(&o.state);
                stack.extend(&o.items);
                stack.extend(o.dict_items.iter().flat_map(|(k, v)| [k, v]));
            }
            // Scalars, and values whose data is a view on the payload (numpy arrays) or
            // small and fixed (dates, times, decimals, numpy scalars): the node and the
            // payload count for them.
            _ => {}
        }
    }
    total.max(payload)
}

/// A queue of inbound items ([`Received`] messages or [`ErrorEvent`]s), shared by every
/// clone of the [`Client`](crate::Client) that filled it.
///
/// Clones of an `Inbox` compete for the same items, like consumers of one work queue.
/// It is a [`Stream`](futures_core::Stream) and has an async [`recv`](Self::recv).
///
/// Polling it as a `Stream` takes the queue until an item comes: an `Inbox` whose
/// `poll_next` returned `Pending` (say, a `select!` branch that lost) keeps the queue
/// while it lives, and every other consumer ([`recv`](Self::recv),
/// [`Client::recv_data`](crate::Client::recv_data), other clones) waits until it is
/// polled to an item or dropped. Nothing is lost either way. Use one style per queue, or
/// drop the `Stream` before calling `recv`.
///
/// The queue is bounded; see [`ClientOptions`](crate::ClientOptions) for what happens
/// when the application does not keep up.
pub struct Inbox<T> {
    rx: Arc<Mutex<mpsc::Receiver<Weighed<T>>>>,
    bytes: Arc<QueueBytes>,
    /// The `Stream`'s receive in progress. Behind a mutex only so that `Inbox` is `Sync`;
    /// `poll_next` has `&mut self` and never locks it.
    pending: std::sync::Mutex<Option<Recv<T>>>,
}

impl<T> fmt::Debug for Inbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

impl<T> Clone for Inbox<T> {
    fn clone(&self) -> Self {
        Self {
            rx: Arc::clone(&self.rx),
            bytes: Arc::clone(&self.bytes),
            pending: std::sync::Mutex::new(None),
        }
    }
}

impl<T: Send + 'static> Inbox<T> {
    pub(crate) fn new(rx: mpsc::Receiver<Weighed<T>>, bytes: Arc<QueueBytes>) -> Self {
        Self {
            rx: Arc::new(Mutex::new(rx)),
            bytes,
            pending: std::sync::Mutex::new(None),
        }
    }

    fn taken(&self, item: Option<Weighed<T>>) -> Option<T> {
        let (item, weight) = item?;
        self.bytes.take(weight);
        Some(item)
    }

    /// The next item, or `None` once the client is closed and the queue is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no item is lost when the future is dropped.
    pub async fn recv(&self) -> Option<T> {
        let item = self.rx.lock().await.recv().await;
        self.taken(item)
    }

    /// The next item if one is waiting (and no other consumer holds the queue).
    pub fn try_recv(&self) -> Option<T> {
        let item = self.rx.try_lock().ok()?.try_recv().ok();
        self.taken(item)
    }

    /// How many items are waiting (0 while another consumer is waiting in
    /// [`recv`](Self::recv), which holds the queue).
    pub fn len(&self) -> usize {
        self.rx.try_lock().map_or(0, |rx| rx.len())
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Send + 'static> futures_core::Stream for Inbox<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let rx = Arc::clone(&self.rx);
        let bytes = Arc::clone(&self.bytes);
        let slot = self
            .pending
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = slot.get_or_insert_with(|| {
            Box::pin(async move {
                let (item, weight) = rx.lock_owned().await.recv().await?;
                bytes.take(weight);
                Some(item)
            })
        });
        let out = pending.as_mut().poll(cx);
        if out.is_ready() {
            *slot = None;
        }
        out
    }
}
