//! An in-memory [`Transport`]: a [`Hub`] plays the broker for any number of
//! [`MemoryTransport`]s, with MQTT `+`/`#` matching, QoS semantics, clean and persistent
//! sessions, and fault injection (drop a connection, withhold acknowledgements).
//!
//! Everything happens synchronously under the hub's lock; no task is spawned.
//!
//! ```
//! use ecci_transport::memory::Hub;
//! use ecci_transport::{Event, Message, QoS, Transport};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let hub = Hub::new();
//! let (a, b) = (hub.transport(), hub.transport());
//! let mut events = b.take_events().unwrap();
//! b.subscribe("x/+", QoS::ExactlyOnce).await.unwrap();
//! a.publish(Message::new("x/1", "hi", QoS::AtLeastOnce)).await.unwrap().await.unwrap();
//! assert_eq!(events.recv().await, Some(Event::Connected));
//! match events.recv().await {
//!     Some(Event::Message(m)) => assert_eq!(&m.payload[..], b"hi"),
//!     other => panic!("{other:?}"),
//! }
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ecci_proto::topic::filter_matches;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::Transport;
use crate::codec;
use crate::error::{ConnectionError, PublishError, SubscribeError, TryPublishError};
use crate::error::{check_filter, check_topic};
use crate::types::{Event, Events, Message, Metrics, Priority, QoS, Receipt};

type Reply = oneshot::Sender<Result<(), PublishError>>;

/// Settings of one [`MemoryTransport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Whether the hub forgets the session when the connection drops. Default `true`.
    pub clean_session: bool,
    /// Most messages waiting to be sent (while disconnected, or while `max_in_flight`
    /// are unacknowledged). Default 4096.
    pub queue: usize,
    /// Most QoS ≥ 1 messages delivered and not yet acknowledged. Default 20.
    pub max_in_flight: usize,
    /// Largest PUBLISH packet, in bytes. Default as [`MqttConfig`](crate::MqttConfig).
    pub max_packet_size: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            clean_session: true,
            queue: 4096,
            max_in_flight: 20,
            max_packet_size: crate::codec::MAX_PACKET,
        }
    }
}

/// The in-memory broker. Cheap to clone; clones share the same broker.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    state: Arc<Mutex<HubState>>,
}

#[derive(Debug, Default)]
struct HubState {
    clients: HashMap<u64, Client>,
    retained: BTreeMap<String, Message>,
    next_id: u64,
}

#[derive(Debug)]
struct Client {
    config: MemoryConfig,
    online: bool,
    withhold_acks: bool,
    events: mpsc::UnboundedSender<Event>,
    /// The broker's side: what it has this client subscribed to.
    broker_subs: Vec<(String, QoS)>,
    /// The broker's side: messages kept for a disconnected persistent session.
    broker_queue: VecDeque<Message>,
    /// The client's side: subscriptions to make again on reconnect.
    wanted: BTreeMap<String, QoS>,
    sub_waiters: Vec<oneshot::Sender<Result<(), SubscribeError>>>,
    /// Delivered, acknowledgement withheld.
    unacked: VecDeque<(Message, Reply)>,
    /// Waiting to be sent, control before bulk.
    control: VecDeque<(Message, Reply)>,
    bulk: VecDeque<(Message, Reply)>,
    metrics: Metrics,
    room: Arc<Notify>,
}

fn lock(state: &Arc<Mutex<HubState>>) -> MutexGuard<'_, HubState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// A hub with no clients.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A new connected transport with the default [`MemoryConfig`].
    pub fn transport(&self) -> MemoryTransport {
        self.transport_with(MemoryConfig::default())
    }

    /// A new connected transport.
    pub fn transport_with(&self, config: MemoryConfig) -> MemoryTransport {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Notify::new());
        let mut st = lock(&self.state);
        st.next_id += 1;
        let id = st.next_id;
        let _ = tx.send(Event::Connected);
        st.clients.insert(
            id,
            Client {
                config,
                online: true,
                withhold_acks: false,
                events: tx,
                broker_subs: Vec::new(),
                broker_queue: VecDeque::new(),
                wanted: BTreeMap::new(),
                sub_waiters: Vec::new(),
                unacked: VecDeque::new(),
                control: VecDeque::new(),
                bulk: VecDeque::new(),
                metrics: Metrics {
                    connected: true,
                    ..Metrics::default()
                },
                room: Arc::clone(&room),
            },
        );
        MemoryTransport {
            hub: self.clone(),
            id,
            config,
            events: Mutex::new(Some(Events::unbounded(rx))),
            room,
        }
    }

    /// Drops every connection, as when the broker restarts: clean sessions are forgotten.
    /// The clients stay disconnected until [`reconnect_all`](Hub::reconnect_all).
    pub fn disconnect_all(&self) {
        let mut st = lock(&self.state);
        let ids: Vec<u64> = st.clients.keys().copied().collect();
        for id in ids {
            disconnect(&mut st, id);
        }
    }

    /// Connects every disconnected client again.
    pub fn reconnect_all(&self) {
        let mut st = lock(&self.state);
        let ids: Vec<u64> = st.clients.keys().copied().collect();
        for id in ids {
            reconnect(&mut st, id);
        }
    }
}

fn disconnect(st: &mut HubState, id: u64) {
    let Some(c) = st.clients.get_mut(&id) else {
        return;
    };
    if !c.online {
        return;
    }
    c.online = false;
    c.metrics.connected = false;
    let _ = c.events.send(Event::Disconnected(ConnectionError::Dropped));
    if c.config.clean_session {
        c.broker_subs.clear();
        c.broker_queue.clear();
    }
    // Unacknowledged messages are sent again on reconnect, ahead of the rest.
    while let Some(entry) = c.unacked.pop_back() {
        if entry.0.priority == Priority::Control {
            c.control.push_front(entry);
        } else {
            c.bulk.push_front(entry);
        }
        c.metrics.resent += 1;
    }
}

fn reconnect(st: &mut HubState, id: u64) {
    let Some(c) = st.clients.get_mut(&id) else {
        return;
    };
    if c.online {
        return;
    }
    c.online = true;
    c.metrics.connected = true;
    c.metrics.reconnects += 1;
    c.broker_subs = c.wanted.iter().map(|(f, q)| (f.clone(), *q)).collect();
    for waiter in c.sub_waiters.drain(..) {
        let _ = waiter.send(Ok(()));
    }
    let _ = c.events.send(Event::Connected);
    while let Some(m) = c.broker_queue.pop_front() {
        c.metrics.received += 1;
        let _ = c.events.send(Event::Message(m));
    }
    pump(st, id);
}

/// Sends what the client has queued, as far as the in-flight cap allows.
fn pump(st: &mut HubState, id: u64) {
    loop {
        let Some(c) = st.clients.get_mut(&id) else {
            return;
        };
        if !c.online || c.unacked.len() >= c.config.max_in_flight {
            return;
        }
        let Some((m, reply)) = c.control.pop_front().or_else(|| c.bulk.pop_front()) else {
            return;
        };
        c.room.notify_waiters();
        c.metrics.bytes_sent += m.payload.len() as u64;
        let withhold = c.withhold_acks && m.qos != QoS::AtMostOnce;
        if withhold {
            c.unacked.push_back((m.clone(), reply));
        } else {
            c.metrics.acknowledged += 1;
            let _ = reply.send(Ok(()));
        }
        c.metrics.in_flight = c.unacked.len();
        route(st, &m);
    }
}

fn route(st: &mut HubState, m: &Message) {
    if m.retain {
        if m.payload.is_empty() {
            st.retained.remove(&m.topic);
        } else {
            st.retained.insert(m.topic.clone(), m.clone());
        }
    }
    for c in st.clients.values_mut() {
        let granted = c
            .broker_subs
            .iter()
            .filter(|(f, _)| filter_matches(f, &m.topic))
            .map(|(_, q)| *q)
            .max();
        let Some(granted) = granted else { continue };
        let copy = Message {
            qos: m.qos.min(granted),
            retain: false,
            priority: Priority::Bulk,
            ..m.clone()
        };
        if c.online {
            c.metrics.received += 1;
            c.metrics.bytes_received += copy.payload.len() as u64;
            let _ = c.events.send(Event::Message(copy));
        } else if !c.config.clean_session && copy.qos != QoS::AtMostOnce {
            c.broker_queue.push_back(copy);
        }
    }
}

/// One client of a [`Hub`]; see the module docs.
#[derive(Debug)]
pub struct MemoryTransport {
    hub: Hub,
    id: u64,
    config: MemoryConfig,
    events: Mutex<Option<Events>>,
    room: Arc<Notify>,
}

impl MemoryTransport {
    /// Drops this client's connection: it emits [`Event::Disconnected`], a clean session loses
    /// its subscriptions on the hub, and messages wait until [`reconnect`](Self::reconnect).
    pub fn drop_connection(&self) {
        disconnect(&mut lock(&self.hub.state), self.id);
    }

    /// Connects again: subscriptions are made again, unacknowledged messages sent again.
    pub fn reconnect(&self) {
        reconnect(&mut lock(&self.hub.state), self.id);
    }

    /// While `true`, QoS ≥ 1 messages are delivered but not acknowledged: their receipts stay
    /// pending, they count as in flight, and a dropped connection sends them again
    /// (duplicates, as with a real broker). Turning it off acknowledges them.
    pub fn withhold_acks(&self, withhold: bool) {
        let mut st = lock(&self.hub.state);
        let Some(c) = st.clients.get_mut(&self.id) else {
            return;
        };
        c.withhold_acks = withhold;
        if !withhold {
            for (_, reply) in c.unacked.drain(..) {
                c.metrics.acknowledged += 1;
                let _ = reply.send(Ok(()));
            }
            c.metrics.in_flight = 0;
            pump(&mut st, self.id);
        }
    }

    fn check(&self, m: &Message) -> Result<(), PublishError> {
        check_topic(&m.topic)?;
        let size = codec::publish_size(&m.topic, m.qos, m.payload.len());
        if size > self.config.max_packet_size {
            return Err(PublishError::TooLarge {
                size,
                max: self.config.max_packet_size,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    async fn publish(&self, mut message: Message) -> Result<Receipt, PublishError> {
        self.check(&message)?;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_publish(message) {
                Ok(receipt) => return Ok(receipt),
                Err(TryPublishError::Full(m)) => message = m,
                Err(TryPublishError::Closed(_)) => return Err(PublishError::Closed),
                Err(TryPublishError::Invalid(_, e)) => return Err(e),
            }
            room.await;
        }
    }

    fn try_publish(&self, message: Message) -> Result<Receipt, TryPublishError> {
        if let Err(e) = self.check(&message) {
            return Err(TryPublishError::Invalid(message, e));
        }
        let mut st = lock(&self.hub.state);
        let Some(c) = st.clients.get_mut(&self.id) else {
            return Err(TryPublishError::Closed(message));
        };
        if c.control.len() + c.bulk.len() >= c.config.queue {
            return Err(TryPublishError::Full(message));
        }
        let (reply, receipt) = Receipt::channel();
        if message.priority == Priority::Control {
            c.control.push_back((message, reply));
        } else {
            c.bulk.push_back((message, reply));
        }
        pump(&mut st, self.id);
        Ok(receipt)
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), SubscribeError> {
        check_filter(filter)?;
        let rx = {
            let mut st = lock(&self.hub.state);
            let st = &mut *st;
            let Some(c) = st.clients.get_mut(&self.id) else {
                return Err(SubscribeError::Closed);
            };
            c.wanted.insert(filter.to_owned(), qos);
            if c.online {
                c.broker_subs.retain(|(f, _)| f != filter);
                c.broker_subs.push((filter.to_owned(), qos));
                for m in st.retained.values() {
                    if filter_matches(filter, &m.topic) {
                        c.metrics.received += 1;
                        let copy = Message {
                            qos: m.qos.min(qos),
                            priority: Priority::Bulk,
                            ..m.clone()
                        };
                        let _ = c.events.send(Event::Message(copy));
                    }
                }
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            c.sub_waiters.push(tx);
            rx
        };
        rx.await.unwrap_or(Err(SubscribeError::Closed))
    }

    async fn unsubscribe(&self, filter: &str) -> Result<(), SubscribeError> {
        check_filter(filter)?;
        let mut st = lock(&self.hub.state);
        let Some(c) = st.clients.get_mut(&self.id) else {
            return Err(SubscribeError::Closed);
        };
        c.wanted.remove(filter);
        c.broker_subs.retain(|(f, _)| f != filter);
        Ok(())
    }

    fn take_events(&self) -> Option<Events> {
        self.events.lock().ok()?.take()
    }

    fn metrics(&self) -> Metrics {
        let st = lock(&self.hub.state);
        match st.clients.get(&self.id) {
            Some(c) => Metrics {
                queued: c.control.len() + c.bulk.len(),
                ..c.metrics
            },
            None => Metrics::default(),
        }
    }

    async fn close(&self) {
        let client = lock(&self.hub.state).clients.remove(&self.id);
        if let Some(c) = client {
            for (_, reply) in c.unacked.into_iter().chain(c.control).chain(c.bulk) {
                let _ = reply.send(Err(PublishError::Closed));
            }
        }
        self.room.notify_waiters();
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        lock(&self.hub.state).clients.remove(&self.id);
        self.room.notify_waiters();
    }
}
