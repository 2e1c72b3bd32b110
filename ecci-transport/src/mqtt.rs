//! [`MqttTransport`]: MQTT 3.1.1 over TCP on rumqttc's packet codec, with the connection
//! driven by one task the transport owns.
//!
//! Why not rumqttc's `EventLoop`: it forgets queued and unacknowledged publishes when the new
//! session is clean, reuses packet ids 1..=inflight (an out-of-order ack stalls it in
//! "collision"), and reports acknowledgements only as events that must be matched to requests
//! by order. Driving the codec ourselves gives each message its packet id directly, so the
//! outbox, the in-flight cap and the receipts are exact.
//!
//! The driver task is the only owner of the socket. Everything else talks to it through
//! channels: two bounded publish queues (control first), an unbounded command channel for the
//! rare subscribe/unsubscribe, and a watch for shutdown. It never awaits anything but its
//! `select!`, so a slow event consumer or a slow socket never blocks acknowledgements in the
//! other direction longer than the bounded stash allows.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4::{
    self, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, PubRel, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::Transport;
use crate::backoff::Backoff;
use crate::codec::{self, Decoded};
use crate::config::{MqttConfig, TAKEOVER_STREAK, TAKEOVER_WINDOW};
use crate::error::{ConnectionError, PublishError, SubscribeError, TryPublishError};
use crate::error::{check_filter, check_topic};
use crate::types::{ByteBudget, Event, Events, Message, Metrics, Priority, QoS, Receipt};

type Reply = oneshot::Sender<Result<(), PublishError>>;
type SubReply = oneshot::Sender<Result<(), SubscribeError>>;

/// Stop taking new messages while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Stop reading from the broker while this many events wait for room in the event queue.
const STASH_MAX: usize = 256;

/// The largest in-flight cap: half the 65,535 packet ids, leaving the rest to
/// subscribes and unsubscribes.
const MAX_IN_FLIGHT: usize = 32_768;

/// The most subscribes and unsubscribes awaiting an answer at once; with
/// [`MAX_IN_FLIGHT`] they never take every packet id.
const MAX_PENDING_ACKS: usize = 16_384;

/// The outbox's byte budget is kept in units of this many bytes, so that a semaphore
/// (whose `acquire_many` takes a `u32`) can count budgets beyond 4 GiB.
const OUTBOX_UNIT: usize = 1024;

/// A message on its way to the driver, with its share of the outbox's byte budget (given
/// back when the message is acknowledged or given up on).
#[derive(Debug)]
struct Outgoing {
    message: Message,
    reply: Reply,
    bytes: OwnedSemaphorePermit,
}

/// The outbox's byte budget: units of [`OUTBOX_UNIT`] bytes held by queued and in-flight
/// messages.
#[derive(Debug)]
struct Outbox {
    units: Arc<Semaphore>,
    max_units: usize,
}

impl Outbox {
    fn new(max_bytes: usize) -> Outbox {
        let max_units = max_bytes.div_ceil(OUTBOX_UNIT).clamp(1, u32::MAX as usize);
        Outbox {
            units: Arc::new(Semaphore::new(max_units)),
            max_units,
        }
    }

    /// The units `message` holds: its payload and topic, rounded up; a message larger than
    /// the whole budget takes all of it and so goes alone.
    fn units(&self, message: &Message) -> u32 {
        let bytes = message.payload.len() + message.topic.len();
        let units = bytes.div_ceil(OUTBOX_UNIT).clamp(1, self.max_units);
        u32::try_from(units).unwrap_or(u32::MAX)
    }

    fn held_bytes(&self) -> usize {
        (self.max_units - self.units.available_permits()) * OUTBOX_UNIT
    }
}

#[derive(Debug)]
enum Command {
    Subscribe {
        filter: String,
        qos: QoS,
        reply: SubReply,
    },
    Unsubscribe {
        filter: String,
        reply: SubReply,
    },
}

#[derive(Debug, Default)]
struct Counters {
    connected: AtomicBool,
    in_flight: AtomicUsize,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    resent: AtomicU64,
    dropped: AtomicU64,
    acknowledged: AtomicU64,
    received: AtomicU64,
    too_large: AtomicU64,
    duplicates_dropped: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// An MQTT 3.1.1 [`Transport`] over TCP that loses nothing it can keep.
///
/// - Connects in the background and reconnects for ever, with [`BackoffConfig`](crate::BackoffConfig)
///   delays, also when the broker is down at start.
/// - Remembers its subscriptions and makes them again after every reconnect.
/// - Keeps every QoS ≥ 1 message until the broker acknowledged it and sends it again after a
///   reconnect (with the DUP flag), also when the new session is clean; at most
///   [`MqttConfig::max_in_flight`] are unacknowledged at any time, the resend burst included.
/// - QoS 0 messages queued while disconnected wait for the next connection; one lost with
///   its connection fails its receipt with [`PublishError::ConnectionLost`].
/// - Inbound QoS 2 messages are passed on once per packet id until the broker releases it.
///
/// Dropping the transport stops its task at once; [`close`](Transport::close) disconnects
/// cleanly and waits for the task.
///
/// ```no_run
/// use std::sync::Arc;
/// use ecci_transport::{MqttConfig, MqttTransport, Transport};
/// # async fn demo() {
/// let transport: Arc<dyn Transport> = Arc::new(MqttTransport::start(MqttConfig::new("localhost", 1883)));
/// # }
/// ```
#[derive(Debug)]
pub struct MqttTransport {
    control_tx: mpsc::Sender<Outgoing>,
    bulk_tx: mpsc::Sender<Outgoing>,
    background_tx: mpsc::Sender<Outgoing>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    shutdown: watch::Sender<bool>,
    events: Mutex<Option<Events>>,
    counters: Arc<Counters>,
    max_packet_size: usize,
    queue_caps: [usize; 3],
    /// The byte budgets of the control messages and of the rest (bulk and background
    /// share one): a backlog of data or logs never takes the room the handshake needs.
    outbox: (Outbox, Outbox),
    task: Mutex<Option<JoinHandle<()>>>,
}

impl MqttTransport {
    /// Starts the transport's task, which connects in the background.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn start(config: MqttConfig) -> MqttTransport {
        let control_cap = config.control_queue.max(1);
        let bulk_cap = config.bulk_queue.max(1);
        let (control_tx, control_rx) = mpsc::channel(control_cap);
        let (bulk_tx, bulk_rx) = mpsc::channel(bulk_cap);
        let background_cap = config.background_queue.max(1);
        let (background_tx, background_rx) = mpsc::channel(background_cap);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::channel(config.event_queue.max(1));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let max_packet_size = config.max_packet_size;
        let budget = Arc::new(ByteBudget::new(config.event_queue_bytes));
        let outbox = (
            Outbox::new(config.control_outbox_bytes),
            Outbox::new(config.outbox_bytes),
        );
        let driver = Driver {
            budget: Arc::clone(&budget),
            max_in_flight: config.max_in_flight.clamp(1, MAX_IN_FLIGHT),
            config,
            control_rx,
            bulk_rx,
            background_rx,
            cmd_rx,
            shutdown: shutdown_rx,
            events_tx,
            counters: Arc::clone(&counters),
            subs: BTreeMap::new(),
            sub_waiters: Vec::new(),
            unsub_backlog: Vec::new(),
            in_flight: HashMap::new(),
            seq: 0,
            last_pkid: 0,
            pending_acks: HashMap::new(),
            incoming_qos2: HashSet::new(),
            in_duplicate_burst: false,
            stash: VecDeque::new(),
        };
        let task = tokio::spawn(driver.run());
        MqttTransport {
            control_tx,
            bulk_tx,
            background_tx,
            cmd_tx,
            shutdown,
            events: Mutex::new(Some(Events::new(events_rx, budget))),
            counters,
            max_packet_size,
            queue_caps: [control_cap, bulk_cap, background_cap],
            outbox,
            task: Mutex::new(Some(task)),
        }
    }

    fn check(&self, message: &Message) -> Result<(), PublishError> {
        check_topic(&message.topic)?;
        let size = codec::publish_size(&message.topic, message.qos, message.payload.len());
        if size > self.max_packet_size {
            return Err(PublishError::TooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        Ok(())
    }

    fn outbox(&self, priority: Priority) -> &Outbox {
        match priority {
            Priority::Control => &self.outbox.0,
            Priority::Bulk | Priority::Background => &self.outbox.1,
        }
    }

    fn queue(&self, priority: Priority) -> &mpsc::Sender<Outgoing> {
        match priority {
            Priority::Control => &self.control_tx,
            Priority::Bulk => &self.bulk_tx,
            Priority::Background => &self.background_tx,
        }
    }
}

#[async_trait]
impl Transport for MqttTransport {
    async fn publish(&self, message: Message) -> Result<Receipt, PublishError> {
        self.check(&message)?;
        let outbox = self.outbox(message.priority);
        let bytes = Arc::clone(&outbox.units)
            .acquire_many_owned(outbox.units(&message))
            .await
            .map_err(|_| PublishError::Closed)?;
        let (reply, receipt) = Receipt::channel();
        self.queue(message.priority)
            .send(Outgoing {
                message,
                reply,
                bytes,
            })
            .await
            .map_err(|_| PublishError::Closed)?;
        Ok(receipt)
    }

    fn try_publish(&self, message: Message) -> Result<Receipt, TryPublishError> {
        if let Err(e) = self.check(&message) {
            return Err(TryPublishError::Invalid(message, e));
        }
        let outbox = self.outbox(message.priority);
        let units = outbox.units(&message);
        let bytes = match Arc::clone(&outbox.units).try_acquire_many_owned(units) {
            Ok(bytes) => bytes,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(TryPublishError::Full(message));
            }
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(TryPublishError::Closed(message));
            }
        };
        let (reply, receipt) = Receipt::channel();
        match self.queue(message.priority).try_send(Outgoing {
            message,
            reply,
            bytes,
        }) {
            Ok(()) => Ok(receipt),
            Err(mpsc::error::TrySendError::Full(o)) => Err(TryPublishError::Full(o.message)),
            Err(mpsc::error::TrySendError::Closed(o)) => Err(TryPublishError::Closed(o.message)),
        }
    }

    async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), SubscribeError> {
        check_filter(filter)?;
        let (reply, rx) = oneshot::channel();
        let filter = filter.to_owned();
        self.cmd_tx
            .send(Command::Subscribe { filter, qos, reply })
            .map_err(|_| SubscribeError::Closed)?;
        rx.await.unwrap_or(Err(SubscribeError::Closed))
    }

    async fn unsubscribe(&self, filter: &str) -> Result<(), SubscribeError> {
        check_filter(filter)?;
        let (reply, rx) = oneshot::channel();
        let filter = filter.to_owned();
        self.cmd_tx
            .send(Command::Unsubscribe { filter, reply })
            .map_err(|_| SubscribeError::Closed)?;
        rx.await.unwrap_or(Err(SubscribeError::Closed))
    }

    fn take_events(&self) -> Option<Events> {
        self.events.lock().ok()?.take()
    }

    fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            connected: c.connected.load(Ordering::Relaxed),
            queued: (self.queue_caps[0] - self.control_tx.capacity())
                + (self.queue_caps[1] - self.bulk_tx.capacity())
                + (self.queue_caps[2] - self.background_tx.capacity()),
            outbox_bytes: self.outbox.0.held_bytes() + self.outbox.1.held_bytes(),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            reconnects: load(&c.reconnects),
            connect_failures: load(&c.connect_failures),
            resent: load(&c.resent),
            dropped: load(&c.dropped),
            acknowledged: load(&c.acknowledged),
            received: load(&c.received),
            too_large: load(&c.too_large),
            duplicates_dropped: load(&c.duplicates_dropped),
            bytes_sent: load(&c.bytes_sent),
            bytes_received: load(&c.bytes_received),
        }
    }

    async fn close(&self) {
        self.shutdown.send_replace(true);
        self.outbox.0.units.close();
        self.outbox.1.units.close();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            // The task only ends by itself; a panic in it has already been reported.
            let _ = task.await;
        }
    }
}

impl Drop for MqttTransport {
    fn drop(&mut self) {
        // Publishes waiting for room in the outbox fail rather than wait for ever.
        self.outbox.0.units.close();
        self.outbox.1.units.close();
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// A QoS ≥ 1 message sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    seq: u64,
    message: Message,
    reply: Reply,
    /// PUBREC received: the broker has it, PUBCOMP pending.
    received: bool,
    /// Its share of the outbox's byte budget, given back before the receipt resolves.
    bytes: OwnedSemaphorePermit,
}

#[derive(Debug)]
enum PendingAck {
    Subscribe {
        filters: Vec<(String, Vec<SubReply>)>,
        /// The subscriptions made again on connect: the session is ready when it is granted.
        on_connect: bool,
    },
    /// The filters, each with the call waiting for it (none for one owed since an earlier
    /// connection).
    Unsubscribe(Vec<(String, Option<SubReply>)>),
}

/// State of one connection.
#[derive(Debug)]
struct Conn {
    wbuf: BytesMut,
    /// Bytes ever put into `wbuf` and written from it, on this connection.
    encoded: u64,
    written: u64,
    /// QoS 0 receipts, resolved once `written` reaches the offset, with their share of the
    /// outbox's byte budget.
    qos0: VecDeque<(u64, Reply, OwnedSemaphorePermit)>,
    ping_outstanding: bool,
    /// An inbound PUBLISH beyond the size limit whose bytes are being skipped.
    skip: Option<Skip>,
}

/// What is left of an oversized inbound PUBLISH, and how to acknowledge it once skipped.
#[derive(Debug)]
struct Skip {
    left: usize,
    qos: QoS,
    pkid: u16,
}

impl Conn {
    fn put(&mut self, packet: &Packet) -> Result<(), ConnectionError> {
        let before = self.wbuf.len();
        codec::encode(packet, &mut self.wbuf).map_err(ConnectionError::Protocol)?;
        self.encoded += (self.wbuf.len() - before) as u64;
        Ok(())
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    Shutdown,
    Lost(ConnectionError),
}

/// The task that owns the connection.
#[derive(Debug)]
struct Driver {
    config: MqttConfig,
    max_in_flight: usize,
    control_rx: mpsc::Receiver<Outgoing>,
    bulk_rx: mpsc::Receiver<Outgoing>,
    background_rx: mpsc::Receiver<Outgoing>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    shutdown: watch::Receiver<bool>,
    events_tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    /// The subscriptions to (re)make on every connect.
    subs: BTreeMap<String, QoS>,
    /// Subscribe calls made while disconnected, answered by the next connect's SUBACK.
    sub_waiters: Vec<(String, SubReply)>,
    /// Unsubscribes still owed to a persistent session.
    unsub_backlog: Vec<(String, Option<SubReply>)>,
    in_flight: HashMap<u16, InFlight>,
    seq: u64,
    last_pkid: u16,
    pending_acks: HashMap<u16, PendingAck>,
    /// Inbound QoS 2 packet ids passed on and not yet released.
    incoming_qos2: HashSet<u16>,
    /// A QoS 2 PUBLISH reusing a live packet id was dropped and reported, and no message
    /// was accepted since: further drops are only counted.
    in_duplicate_burst: bool,
    /// Events waiting for room in the event queue.
    stash: VecDeque<Event>,
    /// Payload bytes read and not yet taken by the consumer.
    budget: Arc<ByteBudget>,
}

async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // A dropped sender (the transport is gone) also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.backoff);
        let mut connected_before = false;
        let mut last_failure: Option<ConnectionError> = None;
        // Connections in a row that the broker closed right after they were made.
        let mut streak = 0u32;
        'life: loop {
            let mut pause = None;
            let attempt = tokio::select! {
                biased;
                () = shutdown_requested(&mut self.shutdown) => break 'life,
                r = connect(&self.config) => r,
            };
            match attempt {
                Ok((stream, session_present, rbuf)) => {
                    if connected_before {
                        bump(&self.counters.reconnects, 1);
                    }
                    connected_before = true;
                    last_failure = None;
                    backoff.reset();
                    let since = Instant::now();
                    let end = match stream {
                        Stream::Tcp(mut tcp) => {
                            let quick_ack = QuickAck::new(&tcp);
                            let (rd, wr) = tcp.split();
                            self.session(rd, wr, session_present, rbuf, &quick_ack)
                                .await
                        }
                        #[cfg(feature = "tls")]
                        Stream::Tls(tls) => {
                            let quick_ack = QuickAck::new(tls.get_ref().0);
                            let (rd, wr) = tokio::io::split(*tls);
                            self.session(rd, wr, session_present, rbuf, &quick_ack)
                                .await
                        }
                    };
                    match end {
                        End::Shutdown => break 'life,
                        End::Lost(reason) => {
                            // A takeover is a clean close by the broker (a reset is more
                            // likely the network's doing).
                            let closed = matches!(reason, ConnectionError::ClosedByBroker);
                            if closed && since.elapsed() < TAKEOVER_WINDOW {
                                streak += 1;
                            } else {
                                streak = 0;
                            }
                            if streak >= TAKEOVER_STREAK {
                                // Two processes with one client id kick each other off at
                                // every connect: stay away rather than fight.
                                self.stash.push_back(Event::Disconnected(
                                    ConnectionError::TakenOver {
                                        client_id: self.config.client_id.clone(),
                                        streak,
                                    },
                                ));
                                streak = 0;
                                pause = Some(self.config.takeover_pause);
                            } else {
                                self.stash.push_back(Event::Disconnected(reason));
                            }
                        }
                    }
                }
                Err(e) => {
                    streak = 0;
                    bump(&self.counters.connect_failures, 1);
                    // A wrong password or certificate does not heal in 100 ms: no retry storm.
                    if e.is_permanent() {
                        backoff.jump_to_max();
                    }
                    if last_failure.as_ref() != Some(&e) {
                        last_failure = Some(e.clone());
                        self.stash.push_back(Event::ConnectFailed(e));
                    }
                }
            }
            let events_tx = self.events_tx.clone();
            let sleep = tokio::time::sleep(pause.unwrap_or_else(|| backoff.next_delay()));
            tokio::pin!(sleep);
            loop {
                self.flush_stash();
                tokio::select! {
                    biased;
                    () = shutdown_requested(&mut self.shutdown) => break 'life,
                    () = &mut sleep => break,
                    permit = events_tx.reserve(), if !self.stash.is_empty() => {
                        self.send_stashed(permit.ok());
                    }
                    cmd = self.cmd_rx.recv() => match cmd {
                        Some(cmd) => self.command_offline(cmd),
                        None => break 'life,
                    },
                }
            }
        }
        self.finish();
    }

    /// One connection, until it is lost or the transport shuts down.
    async fn session<R, W>(
        &mut self,
        mut rd: R,
        mut wr: W,
        session_present: bool,
        mut rbuf: BytesMut,
        quick_ack: &QuickAck,
    ) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut conn = Conn {
            wbuf: BytesMut::with_capacity(64 * 1024),
            encoded: 0,
            written: 0,
            qos0: VecDeque::new(),
            ping_outstanding: false,
            skip: None,
        };
        let end = match self.on_connect(&mut conn, session_present) {
            Err(e) => End::Lost(e),
            Ok(()) => {
                let keep_alive = self.config.keep_alive.max(Duration::from_secs(1));
                let mut ping = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
                let events_tx = self.events_tx.clone();
                let mut result = self.incoming(&mut rbuf, &mut conn);
                while result.is_ok() {
                    self.flush_stash();
                    let can_take = self.in_flight.len() < self.max_in_flight
                        && conn.wbuf.len() < WRITE_HIGH_WATER;
                    // Nobody takes events any more: nothing to hold back for.
                    let bytes_full = self.budget.full() && !events_tx.is_closed();
                    let can_read = self.stash.len() < STASH_MAX && !bytes_full;
                    if rbuf.capacity() - rbuf.len() < 8 * 1024 {
                        rbuf.reserve(64 * 1024);
                    }
                    result = tokio::select! {
                        biased;
                        () = shutdown_requested(&mut self.shutdown) => {
                            let _ = conn.put(&Packet::Disconnect);
                            let _ = timeout(Duration::from_secs(1), wr.write_all(&conn.wbuf)).await;
                            Err(End::Shutdown)
                        }
                        r = wr.write_buf(&mut conn.wbuf), if !conn.wbuf.is_empty() => match r {
                            Ok(n) => {
                                self.wrote(&mut conn, n);
                                Ok(())
                            }
                            Err(e) => Err(End::Lost(e.into())),
                        },
                        r = rd.read_buf(&mut rbuf), if can_read => match r {
                            Ok(0) => Err(End::Lost(ConnectionError::ClosedByBroker)),
                            Ok(n) => {
                                quick_ack.rearm();
                                bump(&self.counters.bytes_received, n as u64);
                                self.incoming(&mut rbuf, &mut conn)
                            }
                            Err(e) => Err(End::Lost(e.into())),
                        },
                        permit = events_tx.reserve(), if !self.stash.is_empty() => {
                            self.send_stashed(permit.ok());
                            Ok(())
                        }
                        // The consumer took enough bytes: read again.
                        () = self.budget.room(), if bytes_full => Ok(()),
                        cmd = self.cmd_rx.recv() => match cmd {
                            Some(cmd) => self.command_online(cmd, &mut conn).map_err(End::Lost),
                            None => Err(End::Shutdown),
                        },
                        o = self.control_rx.recv(), if can_take => match o {
                            Some(o) => self.take(o, &mut conn).map_err(End::Lost),
                            None => Err(End::Shutdown),
                        },
                        o = self.bulk_rx.recv(), if can_take => match o {
                            Some(o) => self.take(o, &mut conn).map_err(End::Lost),
                            None => Err(End::Shutdown),
                        },
                        // Below the two others: `biased` takes it only when they are empty.
                        o = self.background_rx.recv(), if can_take => match o {
                            Some(o) => self.take(o, &mut conn).map_err(End::Lost),
                            None => Err(End::Shutdown),
                        },
                        _ = ping.tick() => {
                            // While reading is paused for a slow event consumer the PINGRESP
                            // cannot be seen; that is no reason to drop the connection.
                            if conn.ping_outstanding && can_read {
                                Err(End::Lost(ConnectionError::Timeout))
                            } else {
                                conn.ping_outstanding = true;
                                conn.put(&Packet::PingReq).map_err(End::Lost)
                            }
                        }
                    };
                }
                match result {
                    Err(end) => end,
                    Ok(()) => End::Shutdown,
                }
            }
        };
        self.on_disconnect(conn);
        end
    }

    /// After CONNACK: owed unsubscribes, the subscriptions again, then the outbox again.
    fn on_connect(
        &mut self,
        conn: &mut Conn,
        session_present: bool,
    ) -> Result<(), ConnectionError> {
        self.counters.connected.store(true, Ordering::Relaxed);
        self.in_duplicate_burst = false;
        if !session_present {
            self.incoming_qos2.clear();
        }
        // The acks pending before were dropped with the old connection, so ids are free here
        // (at most MAX_IN_FLIGHT are taken); were none free, the work waits for the next connect.
        let pkid = if self.unsub_backlog.is_empty() {
            None
        } else {
            self.next_pkid()
        };
        if let Some(pkid) = pkid {
            let backlog = std::mem::take(&mut self.unsub_backlog);
            let topics = backlog.iter().map(|(filter, _)| filter.clone()).collect();
            conn.put(&Packet::Unsubscribe(v4::Unsubscribe { pkid, topics }))?;
            self.pending_acks
                .insert(pkid, PendingAck::Unsubscribe(backlog));
        }
        if self.subs.is_empty() {
            for (_, reply) in self.sub_waiters.drain(..) {
                // Unsubscribed again before we could connect.
                let _ = reply.send(Ok(()));
            }
            self.stash.push_back(Event::Connected);
        } else if let Some(pkid) = self.next_pkid() {
            let mut waiters = std::mem::take(&mut self.sub_waiters);
            let mut filters = Vec::with_capacity(self.subs.len());
            let mut wire = Vec::with_capacity(self.subs.len());
            for (filter, qos) in &self.subs {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    waiters.into_iter().partition(|(f, _)| f == filter);
                waiters = rest;
                filters.push((filter.clone(), mine.into_iter().map(|(_, r)| r).collect()));
                wire.push(SubscribeFilter::new(filter.clone(), codec::to_wire(*qos)));
            }
            for (_, reply) in waiters {
                let _ = reply.send(Ok(()));
            }
            conn.put(&Packet::Subscribe(v4::Subscribe {
                pkid,
                filters: wire,
            }))?;
            self.pending_acks.insert(
                pkid,
                PendingAck::Subscribe {
                    filters,
                    on_connect: true,
                },
            );
        }
        let mut order: Vec<(u64, u16)> =
            self.in_flight.iter().map(|(id, m)| (m.seq, *id)).collect();
        order.sort_unstable();
        for (_, pkid) in order {
            let Some(entry) = self.in_flight.get_mut(&pkid) else {
                continue;
            };
            if session_present && entry.received {
                conn.put(&Packet::PubRel(PubRel::new(pkid)))?;
            } else {
                // A clean session forgot the message, even one it had PUBREC'd: send it again.
                entry.received = false;
                conn.put(&Packet::Publish(wire_publish(&entry.message, pkid, true)))?;
            }
            bump(&self.counters.resent, 1);
        }
        Ok(())
    }

    fn on_disconnect(&mut self, conn: Conn) {
        self.counters.connected.store(false, Ordering::Relaxed);
        for (_, reply, _) in conn.qos0 {
            bump(&self.counters.dropped, 1);
            let _ = reply.send(Err(PublishError::ConnectionLost));
        }
        for (_, pending) in self.pending_acks.drain() {
            match pending {
                PendingAck::Subscribe { filters, .. } => {
                    for (filter, replies) in filters {
                        self.sub_waiters
                            .extend(replies.into_iter().map(|r| (filter.clone(), r)));
                    }
                }
                PendingAck::Unsubscribe(entries) => {
                    if self.config.clean_session {
                        // A clean session drops subscriptions with the connection.
                        for reply in entries.into_iter().filter_map(|(_, r)| r) {
                            let _ = reply.send(Ok(()));
                        }
                    } else {
                        // The broker may not have seen it, and a persistent session keeps
                        // the subscription: unsubscribe again on the next connect.
                        self.unsub_backlog.extend(entries);
                    }
                }
            }
        }
    }

    /// Everything still pending fails: the transport is closing.
    fn finish(&mut self) {
        self.counters.connected.store(false, Ordering::Relaxed);
        for (_, entry) in self.in_flight.drain() {
            bump(&self.counters.dropped, 1);
            let _ = entry.reply.send(Err(PublishError::Closed));
        }
        self.counters.in_flight.store(0, Ordering::Relaxed);
        self.control_rx.close();
        self.bulk_rx.close();
        self.background_rx.close();
        for rx in [
            &mut self.control_rx,
            &mut self.bulk_rx,
            &mut self.background_rx,
        ] {
            while let Ok(o) = rx.try_recv() {
                bump(&self.counters.dropped, 1);
                let _ = o.reply.send(Err(PublishError::Closed));
            }
        }
        self.cmd_rx.close();
        while let Ok(cmd) = self.cmd_rx.try_recv() {
            let (Command::Subscribe { reply, .. } | Command::Unsubscribe { reply, .. }) = cmd;
            let _ = reply.send(Err(SubscribeError::Closed));
        }
        for (_, reply) in self.sub_waiters.drain(..) {
            let _ = reply.send(Err(SubscribeError::Closed));
        }
        self.flush_stash();
    }

    fn wrote(&mut self, conn: &mut Conn, n: usize) {
        conn.written += n as u64;
        bump(&self.counters.bytes_sent, n as u64);
        while conn
            .qos0
            .front()
            .is_some_and(|(end, _, _)| *end <= conn.written)
        {
            if let Some((_, reply, bytes)) = conn.qos0.pop_front() {
                drop(bytes);
                bump(&self.counters.acknowledged, 1);
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Takes `first` and as many more queued messages as the in-flight cap allows: control,
    /// then bulk, then background.
    fn take(&mut self, first: Outgoing, conn: &mut Conn) -> Result<(), ConnectionError> {
        self.send_new(first, conn)?;
        while self.in_flight.len() < self.max_in_flight && conn.wbuf.len() < WRITE_HIGH_WATER {
            let next = match self.control_rx.try_recv() {
                Ok(o) => o,
                Err(_) => match self.bulk_rx.try_recv() {
                    Ok(o) => o,
                    Err(_) => match self.background_rx.try_recv() {
                        Ok(o) => o,
                        Err(_) => break,
                    },
                },
            };
            self.send_new(next, conn)?;
        }
        Ok(())
    }

    fn send_new(&mut self, o: Outgoing, conn: &mut Conn) -> Result<(), ConnectionError> {
        if o.message.qos == QoS::AtMostOnce {
            conn.put(&Packet::Publish(wire_publish(&o.message, 0, false)))?;
            conn.qos0.push_back((conn.encoded, o.reply, o.bytes));
            return Ok(());
        }
        // Unreachable while the caps hold (in flight + pending acks < 65,535), but a message
        // without an id must fail rather than spin.
        let Some(pkid) = self.next_pkid() else {
            bump(&self.counters.dropped, 1);
            let _ = o.reply.send(Err(PublishError::NoPacketId));
            return Ok(());
        };
        conn.put(&Packet::Publish(wire_publish(&o.message, pkid, false)))?;
        self.seq += 1;
        self.in_flight.insert(
            pkid,
            InFlight {
                seq: self.seq,
                message: o.message,
                reply: o.reply,
                received: false,
                bytes: o.bytes,
            },
        );
        self.counters
            .in_flight
            .store(self.in_flight.len(), Ordering::Relaxed);
        Ok(())
    }

    /// The next free packet id, `None` when all 65,535 are taken (the caps
    /// [`MAX_IN_FLIGHT`] and [`MAX_PENDING_ACKS`] keep that from happening; the search is
    /// bounded all the same).
    fn next_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_pkid = self.last_pkid.wrapping_add(1);
            let id = self.last_pkid;
            if id != 0 && !self.in_flight.contains_key(&id) && !self.pending_acks.contains_key(&id)
            {
                return Some(id);
            }
        }
        None
    }

    /// A packet id for a subscribe or unsubscribe, unless too many already await an answer.
    fn ack_pkid(&mut self) -> Option<u16> {
        if self.pending_acks.len() >= MAX_PENDING_ACKS {
            return None;
        }
        self.next_pkid()
    }

    fn command_offline(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe { filter, qos, reply } => {
                self.subs.insert(filter.clone(), qos);
                self.sub_waiters.push((filter, reply));
            }
            Command::Unsubscribe { filter, reply } => {
                self.subs.remove(&filter);
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sub_waiters)
                    .into_iter()
                    .partition(|(f, _)| *f == filter);
                self.sub_waiters = kept;
                for (_, waiter) in gone {
                    let _ = waiter.send(Ok(()));
                }
                if self.config.clean_session {
                    let _ = reply.send(Ok(()));
                } else {
                    self.unsub_backlog.push((filter, Some(reply)));
                }
            }
        }
    }

    fn command_online(&mut self, cmd: Command, conn: &mut Conn) -> Result<(), ConnectionError> {
        match cmd {
            Command::Subscribe { filter, qos, reply } => {
                let Some(pkid) = self.ack_pkid() else {
                    let _ = reply.send(Err(SubscribeError::Busy));
                    return Ok(());
                };
                self.subs.insert(filter.clone(), qos);
                let wire = vec![SubscribeFilter::new(filter.clone(), codec::to_wire(qos))];
                conn.put(&Packet::Subscribe(v4::Subscribe {
                    pkid,
                    filters: wire,
                }))?;
                self.pending_acks.insert(
                    pkid,
                    PendingAck::Subscribe {
                        filters: vec![(filter, vec![reply])],
                        on_connect: false,
                    },
                );
            }
            Command::Unsubscribe { filter, reply } => {
                let Some(pkid) = self.ack_pkid() else {
                    let _ = reply.send(Err(SubscribeError::Busy));
                    return Ok(());
                };
                self.subs.remove(&filter);
                conn.put(&Packet::Unsubscribe(v4::Unsubscribe {
                    pkid,
                    topics: vec![filter.clone()],
                }))?;
                self.pending_acks
                    .insert(pkid, PendingAck::Unsubscribe(vec![(filter, Some(reply))]));
            }
        }
        Ok(())
    }

    /// Handles every whole packet in `rbuf`, and skips the bytes of an oversized PUBLISH
    /// as they arrive.
    fn incoming(&mut self, rbuf: &mut BytesMut, conn: &mut Conn) -> Result<(), End> {
        loop {
            if let Some(skip) = &mut conn.skip {
                let n = skip.left.min(rbuf.len());
                rbuf.advance(n);
                skip.left -= n;
                if skip.left > 0 {
                    return Ok(());
                }
                if let Some(skip) = conn.skip.take() {
                    self.ack_inbound(skip.qos, skip.pkid, conn)
                        .map_err(End::Lost)?;
                }
                continue;
            }
            let header =
                codec::peek_header(rbuf).map_err(|e| End::Lost(ConnectionError::Protocol(e)))?;
            match header {
                None => return Ok(()),
                Some(header) if header.size() > self.config.max_inbound_packet => {
                    if !self.oversized(header, rbuf, conn).map_err(End::Lost)? {
                        return Ok(());
                    }
                }
                Some(_) => match codec::decode(rbuf, self.config.max_inbound_packet) {
                    Ok(Decoded::Packet(packet)) => {
                        self.packet(packet, conn).map_err(End::Lost)?;
                    }
                    Ok(Decoded::NeedMore(n)) => {
                        rbuf.reserve(n);
                        return Ok(());
                    }
                    Err(e) => return Err(End::Lost(ConnectionError::Protocol(e))),
                },
            }
        }
    }

    /// Starts skipping an inbound packet beyond the size limit once its topic and packet
    /// id are in `rbuf` (at most 64 KiB); `false` while they are not. Only a PUBLISH can
    /// be skipped: the broker sends nothing else that large, and anything else that large
    /// is a protocol error.
    fn oversized(
        &mut self,
        header: codec::Header,
        rbuf: &mut BytesMut,
        conn: &mut Conn,
    ) -> Result<bool, ConnectionError> {
        let max = self.config.max_inbound_packet;
        let size = header.size();
        if !header.is_publish() {
            return Err(ConnectionError::Protocol(format!(
                "packet of type {} and {size} bytes exceeds the maximum inbound packet size of {max} bytes",
                header.byte0 >> 4
            )));
        }
        let Some(qos) = QoS::from_u8((header.byte0 >> 1) & 3) else {
            return Err(ConnectionError::Protocol("publish with qos 3".to_owned()));
        };
        let Some(len) = rbuf.get(header.len..header.len + 2) else {
            rbuf.reserve(header.len + 2);
            return Ok(false);
        };
        let topic_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
        let start = header.len + 2 + topic_len + id_len;
        if start > size {
            return Err(ConnectionError::Protocol(format!(
                "publish of {size} bytes with a topic of {topic_len} bytes"
            )));
        }
        if rbuf.len() < start {
            rbuf.reserve(start - rbuf.len());
            return Ok(false);
        }
        let topic_end = header.len + 2 + topic_len;
        let topic = String::from_utf8_lossy(&rbuf[header.len + 2..topic_end]).into_owned();
        let pkid = match qos {
            QoS::AtMostOnce => 0,
            _ => u16::from_be_bytes([rbuf[topic_end], rbuf[topic_end + 1]]),
        };
        rbuf.advance(start);
        // A QoS 2 message sent again before we acknowledged it is reported once.
        if qos != QoS::ExactlyOnce || self.incoming_qos2.insert(pkid) {
            bump(&self.counters.too_large, 1);
            self.stash.push_back(Event::TooLarge { topic, size, max });
        }
        conn.skip = Some(Skip {
            left: size - start,
            qos,
            pkid,
        });
        Ok(true)
    }

    /// Acknowledges an inbound PUBLISH as its QoS asks.
    fn ack_inbound(&mut self, qos: QoS, pkid: u16, conn: &mut Conn) -> Result<(), ConnectionError> {
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => conn.put(&Packet::PubAck(PubAck::new(pkid))),
            QoS::ExactlyOnce => conn.put(&Packet::PubRec(PubRec::new(pkid))),
        }
    }

    fn packet(&mut self, packet: Packet, conn: &mut Conn) -> Result<(), ConnectionError> {
        match packet {
            Packet::Publish(p) => {
                let qos = codec::from_wire(p.qos);
                let pkid = p.pkid;
                let fresh = qos != QoS::ExactlyOnce || self.incoming_qos2.insert(pkid);
                if !fresh && !p.dup {
                    // A new message with the id of one not yet released: MQTT 3.1.1 §4.3.3
                    // says drop it, so the broker's mistake is a loss; count it, and say so
                    // once per burst.
                    bump(&self.counters.duplicates_dropped, 1);
                    if !self.in_duplicate_burst {
                        self.in_duplicate_burst = true;
                        self.stash.push_back(Event::DuplicateDropped {
                            topic: p.topic.clone(),
                            pkid,
                        });
                    }
                }
                if fresh {
                    self.in_duplicate_burst = false;
                    bump(&self.counters.received, 1);
                    self.budget.add(p.payload.len());
                    self.stash.push_back(Event::Message(Message {
                        topic: p.topic,
                        payload: p.payload,
                        qos,
                        retain: p.retain,
                        priority: Priority::Bulk,
                    }));
                }
                self.ack_inbound(qos, pkid, conn)?;
            }
            Packet::PubAck(PubAck { pkid }) | Packet::PubComp(PubComp { pkid }) => {
                if let Some(entry) = self.in_flight.remove(&pkid) {
                    bump(&self.counters.acknowledged, 1);
                    self.counters
                        .in_flight
                        .store(self.in_flight.len(), Ordering::Relaxed);
                    drop(entry.bytes);
                    let _ = entry.reply.send(Ok(()));
                }
            }
            Packet::PubRec(PubRec { pkid }) => {
                if let Some(entry) = self.in_flight.get_mut(&pkid) {
                    entry.received = true;
                }
                conn.put(&Packet::PubRel(PubRel::new(pkid)))?;
            }
            Packet::PubRel(PubRel { pkid }) => {
                self.incoming_qos2.remove(&pkid);
                conn.put(&Packet::PubComp(PubComp::new(pkid)))?;
            }
            Packet::SubAck(ack) => {
                if let Some(PendingAck::Subscribe {
                    filters,
                    on_connect,
                }) = self.pending_acks.remove(&ack.pkid)
                {
                    for ((filter, replies), code) in filters.into_iter().zip(
                        ack.return_codes
                            .into_iter()
                            .chain(std::iter::repeat(SubscribeReasonCode::Failure)),
                    ) {
                        let result = match code {
                            SubscribeReasonCode::Success(_) => Ok(()),
                            SubscribeReasonCode::Failure => {
                                self.subs.remove(&filter);
                                Err(SubscribeError::Rejected { filter })
                            }
                        };
                        for reply in replies {
                            let _ = reply.send(result.clone());
                        }
                    }
                    if on_connect {
                        self.stash.push_back(Event::Connected);
                    }
                }
            }
            Packet::UnsubAck(ack) => {
                if let Some(PendingAck::Unsubscribe(entries)) = self.pending_acks.remove(&ack.pkid)
                {
                    for reply in entries.into_iter().filter_map(|(_, r)| r) {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Packet::PingResp => conn.ping_outstanding = false,
            other => {
                return Err(ConnectionError::Protocol(format!(
                    "unexpected packet from the broker: {other:?}"
                )));
            }
        }
        Ok(())
    }

    fn flush_stash(&mut self) {
        while let Some(event) = self.stash.pop_front() {
            match self.events_tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.stash.push_front(event);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // Nobody listens any more.
                    self.stash.clear();
                    return;
                }
            }
        }
    }

    fn send_stashed(&mut self, permit: Option<mpsc::Permit<'_, Event>>) {
        match (permit, self.stash.pop_front()) {
            (Some(permit), Some(event)) => permit.send(event),
            (None, _) => self.stash.clear(),
            (Some(_), None) => {}
        }
    }
}

fn wire_publish(message: &Message, pkid: u16, dup: bool) -> v4::Publish {
    v4::Publish {
        dup,
        qos: codec::to_wire(message.qos),
        retain: message.retain,
        topic: message.topic.clone(),
        pkid,
        payload: message.payload.clone(),
    }
}

/// Acknowledges what the broker sent at once, rather than after the delayed-ACK timer.
///
/// mosquitto writes with Nagle's algorithm on (`set_tcp_nodelay false`, its default), so
/// it holds a small write back while an earlier one is unacknowledged; a QoS 0
/// subscriber sends nothing back that could carry the ACK, and Linux may delay it up
/// to 40 ms: the next message then waits that long (seen as ~1 % of messages at 40 ms in
/// `cargo xtask bench transport`). `TCP_QUICKACK` is not sticky, so it is set again after
/// every read: one `setsockopt` per read. A handle on the same socket (a duplicated
/// descriptor), dropped with the connection; a no-op where the option does not exist.
#[derive(Debug)]
struct QuickAck {
    #[cfg(target_os = "linux")]
    socket: Option<socket2::Socket>,
}

impl QuickAck {
    fn new(tcp: &TcpStream) -> QuickAck {
        #[cfg(target_os = "linux")]
        {
            QuickAck {
                socket: socket2::SockRef::from(tcp).try_clone().ok(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = tcp;
            QuickAck {}
        }
    }

    fn rearm(&self) {
        #[cfg(target_os = "linux")]
        if let Some(socket) = &self.socket {
            // Only latency depends on it: a failure changes nothing else.
            let _ = socket.set_tcp_quickack(true);
        }
    }
}

/// A connection to the broker, plain or TLS.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// TCP connect, TLS handshake if configured, CONNECT, CONNACK, within the connect timeout.
async fn connect(config: &MqttConfig) -> Result<(Stream, bool, BytesMut), ConnectionError> {
    let attempt = async {
        let tcp = TcpStream::connect(resolve(config).await?.as_slice()).await?;
        tcp.set_nodelay(true)?;
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let mut stream = tls.connect(&config.host, tcp).await?;
            let (present, rbuf) = handshake(&mut stream, config).await?;
            return Ok((Stream::Tls(Box::new(stream)), present, rbuf));
        }
        let mut tcp = tcp;
        let (present, rbuf) = handshake(&mut tcp, config).await?;
        Ok((Stream::Tcp(tcp), present, rbuf))
    };
    timeout(config.connect_timeout, attempt)
        .await
        .unwrap_or(Err(ConnectionError::Timeout))
}

/// The broker's addresses; a host that does not resolve is a [`ConnectionError::Resolve`].
async fn resolve(config: &MqttConfig) -> Result<Vec<std::net::SocketAddr>, ConnectionError> {
    let failed = |reason: String| ConnectionError::Resolve {
        host: config.host.clone(),
        reason,
    };
    let addrs: Vec<_> = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .map_err(|e| failed(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(failed("no addresses".to_owned()));
    }
    Ok(addrs)
}

/// CONNECT, then CONNACK: whether the session was present, and any bytes read past it.
async fn handshake<S>(
    stream: &mut S,
    config: &MqttConfig,
) -> Result<(bool, BytesMut), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    {
        let mut connect = v4::Connect::new(config.client_id.clone());
        connect.keep_alive = u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = config.clean_session;
        if let Some((user, password)) = &config.credentials {
            connect.set_login(user.clone(), password.clone());
        }
        let mut buf = BytesMut::new();
        codec::encode(&Packet::Connect(connect), &mut buf).map_err(ConnectionError::Protocol)?;
        stream.write_all(&buf).await?;
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        loop {
            match codec::decode(&mut rbuf, config.max_inbound_packet)
                .map_err(ConnectionError::Protocol)?
            {
                Decoded::Packet(Packet::ConnAck(ack)) => {
                    if ack.code != ConnectReturnCode::Success {
                        return Err(ConnectionError::Refused(ack.code as u8));
                    }
                    return Ok((ack.session_present, rbuf));
                }
                Decoded::Packet(other) => {
                    return Err(ConnectionError::Protocol(format!(
                        "expected CONNACK, got {other:?}"
                    )));
                }
                Decoded::NeedMore(n) => {
                    rbuf.reserve(n);
                    if stream.read_buf(&mut rbuf).await? == 0 {
                        return Err(ConnectionError::ClosedByBroker);
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod quick_ack_tests {
    use super::*;

    #[tokio::test]
    async fn quick_ack_is_set_again_after_each_read_and_closes_with_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tcp, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (tcp, (mut peer, _)) = (tcp.unwrap(), accepted.unwrap());
        let quick_ack = QuickAck::new(&tcp);
        let socket = socket2::SockRef::from(&tcp);
        // The kernel leaves quick-ack mode by itself; rearm puts it back.
        socket.set_tcp_quickack(false).unwrap();
        assert!(!socket.tcp_quickack().unwrap());
        quick_ack.rearm();
        assert!(socket.tcp_quickack().unwrap());
        // Its duplicate descriptor goes with it: the peer sees the close.
        drop(tcp);
        drop(quick_ack);
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
            .await
            .expect("the close reaches the peer")
            .unwrap();
        assert_eq!(n, 0);
    }
}
