//! The client's one background task: reads the transport's events, decodes envelopes with
//! the data-only codec, dispatches them to the inbound queues, and drives the readiness
//! state machine (connect events, commands, retry ticks) and carries out its actions.
//!
//! It never waits for room in an inbound queue either: a message whose queue is full (by
//! count, or by the bytes of `ClientOptions::data_queue_bytes` and
//! `command_queue_bytes`) is parked in that queue's [`Parked`] buffer, bounded the same
//! way, and moved on as room appears, so that an unread data queue cannot hold up the
//! commands, the handshake or the file messages behind it. Only when a parked buffer is full
//! too does the task stop reading events (backpressure), and resume as soon as it has room
//! again.
//!
//! It never publishes with a waiting call: handshake messages go out with `try_publish`,
//! so a full outgoing queue can never block the reader of the event stream (the retry tick
//! and the peers' retries make up for a skipped one).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ecci_proto::envelope::{Envelope, EnvelopeError, MessageType};
use ecci_proto::pickle;
use ecci_proto::pickle::{DecodeLimits, Protocol};
use ecci_proto::platform::ReadyReport;
use ecci_proto::readiness::{Action, Cmd, Event as HandshakeEvent, Readiness};
use ecci_proto::sequence::{Ack, E2e, Lane as SeqLane, Seq, Tracker, Verdict};
use ecci_proto::topic::{AppTopic, PlatformTopic};
use ecci_proto::{AppId, BrokerId, ContainerName};
use ecci_transport::{Event, Events, Message, Priority, QoS, Transport};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Counters, Status, bump};
use crate::inbound::{Contents, ErrorEvent, InboundError, QueueBytes, Received, Weighed};
#[cfg(feature = "files")]
use ecci_files::InboundFile;
// Without `files`, file messages go to the drain in `no_files`, with a stand-in of the type.
#[cfg(not(feature = "files"))]
use crate::no_files::InboundFile;
use ecci_proto::file::FileMessage;

/// An error and its sources, for the log: `a: b: c`.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The sending ends of the inbound queues.
pub(crate) struct Senders {
    pub(crate) data: mpsc::Sender<Weighed<Received>>,
    pub(crate) commands: mpsc::Sender<Weighed<Received>>,
    pub(crate) files: mpsc::Sender<InboundFile>,
    pub(crate) errors: mpsc::Sender<Weighed<ErrorEvent>>,
    /// The bytes in the data, command and error queues (not those parked).
    pub(crate) data_bytes: Arc<QueueBytes>,
    pub(crate) command_bytes: Arc<QueueBytes>,
    pub(crate) error_bytes: Arc<QueueBytes>,
}

/// Messages waiting for room in one full queue, oldest first, with the bytes they count for.
pub(crate) struct Lane<T> {
    items: VecDeque<Weighed<T>>,
    bytes: usize,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Lane {
            items: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<T> Lane<T> {
    fn push(&mut self, item: T, weight: usize) {
        self.bytes += weight;
        self.items.push_back((item, weight));
    }

    fn pop(&mut self) -> Option<Weighed<T>> {
        let (item, weight) = self.items.pop_front()?;
        self.bytes -= weight;
        Some((item, weight))
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Full: as many messages as its queue holds, or as many bytes as its queue's
    /// byte bound.
    fn full(&self, capacity: usize, max_bytes: usize) -> bool {
        self.items.len() >= capacity || self.bytes >= max_bytes
    }
}

/// Messages waiting for room in their full queue; each buffer holds at most as many
/// messages, and as many bytes (plus one message), as its queue.
#[derive(Default)]
pub(crate) struct Parked {
    data: Lane<Received>,
    commands: Lane<Received>,
    files: Lane<InboundFile>,
}

impl Parked {
    /// Whether a buffer is full, so that no more events may be read.
    fn any_full(&self, senders: &Senders) -> bool {
        self.data
            .full(senders.data.max_capacity(), senders.data_bytes.max())
            || self
                .commands
                .full(senders.commands.max_capacity(), senders.command_bytes.max())
            // File messages are bounded by count and by `ClientOptions::max_file_message`.
            || self.files.full(senders.files.max_capacity(), usize::MAX)
    }
}

/// Queues `item` without waiting: straight into `tx` when nothing is parked before it and
/// `tx` has room (by count and by bytes), else behind the parked ones (keeping the order).
/// Only called while `parked` is not full.
fn put<T>(
    parked: &mut Lane<T>,
    tx: &mpsc::Sender<Weighed<T>>,
    bytes: &QueueBytes,
    item: T,
    weight: usize,
) {
    if !parked.is_empty() || bytes.full() {
        parked.push(item, weight);
        return;
    }
    // Counted before it is sent: the inbox may take it at once.
    bytes.add(weight);
    match tx.try_send((item, weight)) {
        Ok(()) => {}
        Err(TrySendError::Full((item, weight))) => {
            bytes.take(weight);
            parked.push(item, weight);
        }
        // The receivers live as long as any `Client`: every client is gone, and the
        // shutdown ends the task right after.
        Err(TrySendError::Closed(_)) => bytes.take(weight),
    }
}

/// As [`put`], for the file messages (bounded by count and size, not tracked in bytes).
fn put_file(parked: &mut Lane<InboundFile>, tx: &mpsc::Sender<InboundFile>, item: InboundFile) {
    if !parked.is_empty() {
        parked.push(item, 0);
        return;
    }
    match tx.try_send(item) {
        Ok(()) => {}
        Err(TrySendError::Full(item)) => parked.push(item, 0),
        // See `put`.
        Err(TrySendError::Closed(_)) => {}
    }
}

/// Moves the oldest parked item into the room `permit` reserved.
fn forward<T>(
    permit: Result<mpsc::Permit<'_, Weighed<T>>, SendError<()>>,
    parked: &mut Lane<T>,
    bytes: &QueueBytes,
) {
    match permit {
        Ok(permit) => {
            if let Some((item, weight)) = parked.pop() {
                bytes.add(weight);
                permit.send((item, weight));
            }
        }
        // Every client is gone (see `put`).
        Err(_) => parked.clear(),
    }
}

/// As [`forward`], for the file messages.
fn forward_file(
    permit: Result<mpsc::Permit<'_, InboundFile>, SendError<()>>,
    parked: &mut Lane<InboundFile>,
) {
    match permit {
        Ok(permit) => {
            if let Some((item, _)) = parked.pop() {
                permit.send(item);
            }
        }
        Err(_) => parked.clear(),
    }
}

pub(crate) struct Task {
    /// The sender's end-to-end state (shared with the publishing calls).
    pub(crate) e2e: Arc<crate::e2e::Sender>,
    pub(crate) e2e_options: crate::e2e::E2eOptions,
    /// Acknowledgements gathered and not sent yet: (topic toward the sender, its
    /// incarnation, lane) → through. At most [`MAX_ACKS`].
    pub(crate) acks: HashMap<(Arc<str>, u64, SeqLane), u64>,
    /// The topic acknowledgements of a stream go to: stream topic → (the sender's reply
    /// broker, the topic toward it), so that it is formatted once, not per message. At
    /// most [`MAX_ACKS`] (then it starts afresh).
    pub(crate) reply_topics: HashMap<String, (String, Arc<str>)>,
    /// When the gathered acknowledgements go out.
    pub(crate) ack_deadline: Option<Instant>,
    /// Messages acknowledged since the last acknowledgements went out.
    pub(crate) acks_gathered: usize,
    pub(crate) transport: Arc<dyn Transport>,
    /// Events read while connecting, handled before `events`.
    pub(crate) early: VecDeque<Event>,
    pub(crate) events: Events,
    pub(crate) me: ContainerName,
    pub(crate) app: AppId,
    pub(crate) broker: BrokerId,
    pub(crate) agent_id: Option<String>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) senders: Senders,
    pub(crate) parked: Parked,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) limits: DecodeLimits,
    pub(crate) protocol: Protocol,
    pub(crate) retry_interval: Duration,
    pub(crate) max_file_message: usize,
    /// Duplicates and gaps of Rust senders' sequences.
    pub(crate) tracker: Tracker,
}

/// What woke the task up.
enum Step {
    Stop,
    Event(Option<Event>),
    Tick,
    /// A parked message went into its queue.
    Forwarded,
    /// A gap's grace period is over.
    Gaps,
    /// Gathered acknowledgements are due.
    Acks,
    /// Time to look for unacknowledged messages to send again.
    Resend,
}

/// Most acknowledgements gathered before they are sent at once.
const MAX_ACKS: usize = 1024;
/// Most events handled one after the other before the task looks at its timers and
/// queues again.
const EVENT_BATCH: usize = 64;
/// Messages acknowledged at once at the latest (well below the sender's window, so that
/// a fast stream never waits for the ack delay).
const ACK_BATCH: usize = 32;

/// Which queue an inbound message goes to.
impl Task {
    pub(crate) async fn run(mut self) {
        let period = self.retry_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let e2e_on = self.e2e_options.enabled;
        let e2e_period = (self.e2e_options.timeout.min(self.e2e_options.probe) / 10)
            .max(Duration::from_millis(10));
        let mut resend = tokio::time::interval_at(Instant::now() + e2e_period, e2e_period);
        resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let ack_deadline = self.ack_deadline;
            let ticking = self.ticking();
            let gap_deadline = self.tracker.next_deadline();
            // Backpressure: with a parked buffer full, no event may be read (and so no
            // message parked) until a parked message moved on.
            let reading = !self.parked.any_full(&self.senders);
            let early = if reading {
                self.early.pop_front()
            } else {
                None
            };
            let step = match early {
                Some(event) => Step::Event(Some(event)),
                // Every branch is cancel-safe: `wait_for`, `reserve`, `notified`, `recv` and
                // `tick`.
                None => tokio::select! {
                    biased;
                    _ = self.shutdown.wait_for(|stop| *stop) => Step::Stop,
                    () = sleep_until(gap_deadline), if gap_deadline.is_some() => Step::Gaps,
                    () = sleep_until(ack_deadline.map(Instant::into_std)), if ack_deadline.is_some() => Step::Acks,
                    permit = self.senders.commands.reserve(),
                        if !self.parked.commands.is_empty() && !self.senders.command_bytes.full() => {
                        forward(permit, &mut self.parked.commands, &self.senders.command_bytes);
                        Step::Forwarded
                    }
                    () = self.senders.command_bytes.room(),
                        if !self.parked.commands.is_empty() && self.senders.command_bytes.full() => {
                        Step::Forwarded
                    }
                    permit = self.senders.files.reserve(), if !self.parked.files.is_empty() => {
                        forward_file(permit, &mut self.parked.files);
                        Step::Forwarded
                    }
                    permit = self.senders.data.reserve(),
                        if !self.parked.data.is_empty() && !self.senders.data_bytes.full() => {
                        forward(permit, &mut self.parked.data, &self.senders.data_bytes);
                        Step::Forwarded
                    }
                    () = self.senders.data_bytes.room(),
                        if !self.parked.data.is_empty() && self.senders.data_bytes.full() => {
                        Step::Forwarded
                    }
                    event = self.events.recv(), if reading => Step::Event(event),
                    _ = tick.tick(), if ticking => Step::Tick,
                    _ = resend.tick(), if e2e_on => Step::Resend,
                },
            };
            match step {
                Step::Stop | Step::Event(None) => break,
                Step::Event(Some(event)) => {
                    self.on_event(event);
                    self.drain_ready();
                }
                Step::Tick => self.drive(HandshakeEvent::Timeout, ""),
                Step::Forwarded => {}
                Step::Gaps => self.report_gaps(),
                Step::Acks => self.send_acks(),
                Step::Resend => self.resend(false),
            }
        }
        self.status.send_modify(|s| {
            s.closed = true;
            s.connected = false;
        });
    }

    /// Handles the events that are ready already (at most [`EVENT_BATCH`]), without a trip
    /// through the `select!` and its timers for each; stops where that loop would not read
    /// (a parked buffer full, events read while connecting still first, shutdown).
    fn drain_ready(&mut self) {
        for _ in 1..EVENT_BATCH {
            if !self.early.is_empty()
                || self.parked.any_full(&self.senders)
                || *self.shutdown.borrow()
            {
                return;
            }
            let Some(event) = self.events.try_recv() else {
                return;
            };
            self.on_event(event);
        }
    }

    /// Whether retry ticks can still do anything: only until started or exit requested,
    /// so that an idle started client has no timer (and paused-time tests do not spin).
    fn ticking(&self) -> bool {
        self.readiness
            .as_ref()
            .is_some_and(|r| !r.is_started() && !r.exit_requested())
    }

    /// Handles one transport event.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.status
                    .send_if_modified(|s| !std::mem::replace(&mut s.connected, true));
                // The subscriptions are in place: the first ones were made before this task
                // started, and the transport makes them again before every later Connected.
                self.drive(HandshakeEvent::Connected, "");
                // What the receivers have not acknowledged may have been lost with the
                // connection or the broker: send it all again.
                self.resend(true);
            }
            Event::Disconnected(reason) => {
                if matches!(reason, ecci_transport::ConnectionError::TakenOver { .. }) {
                    log::error!("{}: {}", self.me, Chain(&reason));
                } else {
                    log::warn!(
                        "{}: disconnected from the broker: {}; reconnecting",
                        self.me,
                        Chain(&reason)
                    );
                }
                self.status.send_modify(|s| {
                    s.connected = false;
                    s.disconnects += 1;
                    s.last_disconnect = Some(reason);
                });
            }
            Event::ConnectFailed(reason) => {
                log::warn!(
                    "{}: cannot connect to the broker: {}; retrying",
                    self.me,
                    Chain(&reason)
                );
            }
            Event::TooLarge { topic, size, max } => {
                log::warn!(
                    "{}: skipped a message of {size} bytes on {topic:?} (maximum {max})",
                    self.me
                );
                bump(&self.counters.received);
                // Its bytes were skipped as they arrived, never held: no payload to carry.
                self.report(
                    topic,
                    bytes::Bytes::new(),
                    InboundError::TooLarge { size, max },
                );
            }
            Event::DuplicateDropped { topic, pkid } => {
                log::warn!(
                    "{}: the broker reused the live packet id {pkid} for a new qos 2 message \
                     on {topic:?}; dropped as mqtt requires (lost)",
                    self.me
                );
                // The message was dropped unread: there is no payload to carry.
                self.report(
                    topic,
                    bytes::Bytes::new(),
                    InboundError::DuplicatePacketId { pkid },
                );
            }
            Event::Message(message) => self.on_message(message),
            _ => {}
        }
    }

    fn on_message(&mut self, message: Message) {
        bump(&self.counters.received);
        let weight = message.payload.len();
        let topic = match AppTopic::parse(&message.topic) {
            Ok(topic) => topic,
            Err(e) => {
                self.report(message.topic, message.payload, InboundError::Topic(e));
                return;
            }
        };
        // From the payload's `Bytes`: a numpy frame's pixels stay a view on it.
        let value = match pickle::decode_bytes(&message.payload, &self.limits) {
            Ok(value) => value,
            Err(e) => {
                self.report(
                    message.topic,
                    message.payload,
                    InboundError::Envelope(EnvelopeError::NotPickle(e)),
                );
                return;
            }
        };
        if let Some(ack) = Ack::read(&value) {
            // An end-to-end acknowledgement from the receiver (the topic's sender).
            self.e2e.on_ack(topic.sender.as_str(), ack);
            return;
        }
        let seq = Seq::read(&value);
        let announced = E2e::read(&value);
        let envelope = match Envelope::from_value(value) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.report(message.topic, message.payload, InboundError::Envelope(e));
                return;
            }
        };
        if let Some(seq) = seq {
            // One stream per sender and receiver, whichever mountpoint it came through:
            // the topic without its mountpoint (a parsed topic is the mountpoint followed
            // by the canonical `ECCI/…`, so this is the topic the parts would format to).
            let stream =
                &message.topic[topic.mountpoint.as_ref().map_or(0, |m| m.as_str().len())..];
            debug_assert_eq!(
                stream,
                AppTopic {
                    mountpoint: None,
                    ..topic.clone()
                }
                .to_string()
            );
            // A sender asking for acknowledgements repairs its stream: what is missing
            // there is lost only once it gives it up (or restarts).
            let verdict = match &announced {
                Some(a) => self.tracker.receive_e2e(stream, seq, a.base, now()),
                None => self.tracker.receive(stream, seq, now()),
            };
            if let Some(announced) = announced {
                // Duplicates too: their first acknowledgement may have been lost.
                self.gather_ack(stream, &topic, seq, &announced);
            }
            match verdict {
                Verdict::New => {}
                Verdict::Duplicate => {
                    bump(&self.counters.duplicates);
                    return;
                }
                Verdict::Late => bump(&self.counters.late),
            }
            if self.tracker.has_due() {
                self.report_gaps();
            }
        }
        // What the queues count: the payload, or the decoded value if that is larger.
        let weight = crate::inbound::weight(&envelope.contents, weight);
        let received = Received::new(topic, Contents::from(envelope.contents));
        match envelope.kind {
            MessageType::Data => {
                bump(&self.counters.data);
                put(
                    &mut self.parked.data,
                    &self.senders.data,
                    &self.senders.data_bytes,
                    received,
                    weight,
                );
            }
            MessageType::File => {
                bump(&self.counters.files);
                let size = message.payload.len();
                if size > self.max_file_message {
                    let max = self.max_file_message;
                    self.report(
                        message.topic,
                        message.payload,
                        InboundError::FileTooLarge { size, max },
                    );
                    return;
                }
                match FileMessage::from_value(received.contents.value()) {
                    Ok(file) => {
                        let inbound = InboundFile {
                            sender: received.topic.sender,
                            receiver: received.topic.receiver,
                            message: file,
                        };
                        put_file(&mut self.parked.files, &self.senders.files, inbound);
                    }
                    Err(e) => self.report(message.topic, message.payload, InboundError::File(e)),
                }
            }
            MessageType::Cmd => {
                bump(&self.counters.commands);
                let handshake = self.readiness.is_some()
                    && received.topic.receiver == self.me
                    && received
                        .contents
                        .cmd_name()
                        .and_then(Cmd::from_wire)
                        .is_some();
                if !handshake {
                    put(
                        &mut self.parked.commands,
                        &self.senders.commands,
                        &self.senders.command_bytes,
                        received,
                        weight,
                    );
                    return;
                }
                if let Some(name) = received.contents.cmd_name() {
                    let event = HandshakeEvent::Command {
                        from: &received.topic.sender,
                        cmd: name,
                    };
                    self.drive(event, &message.topic);
                }
                // Carried out already; the application gets it only if it has room, so an
                // application that never reads commands cannot stall its own handshake. Never
                // parked: that could fill the parked buffer and stop the reading; and never
                // ahead of parked commands, to keep the order.
                let bytes = &self.senders.command_bytes;
                let queued = self.parked.commands.is_empty() && !bytes.full() && {
                    bytes.add(weight);
                    let sent = self.senders.commands.try_send((received, weight)).is_ok();
                    if !sent {
                        bytes.take(weight);
                    }
                    sent
                };
                if !queued {
                    bump(&self.counters.handshake_skipped);
                }
            }
        }
    }

    /// Notes that the message `seq` on `stream` (from `topic`) is to be acknowledged to
    /// the sender's broker `announced.reply_broker`.
    fn gather_ack(&mut self, stream: &str, topic: &AppTopic, seq: Seq, announced: &E2e) {
        if !self.e2e_options.acknowledge {
            return;
        }
        let through = self
            .tracker
            .through(stream, seq.incarnation, seq.lane, announced.base);
        if through < announced.base {
            return; // nothing new from the base on
        }
        let reply = match self.reply_topics.get(stream) {
            Some((broker, reply)) if *broker == announced.reply_broker => Arc::clone(reply),
            _ => {
                let Ok(broker) = announced.reply_broker.parse::<BrokerId>() else {
                    return;
                };
                let reply: Arc<str> = AppTopic::app_message(
                    broker,
                    self.app.clone(),
                    self.me.clone(),
                    topic.sender.clone(),
                )
                .to_string()
                .into();
                if self.reply_topics.len() >= MAX_ACKS {
                    self.reply_topics.clear();
                }
                self.reply_topics.insert(
                    stream.to_owned(),
                    (announced.reply_broker.clone(), Arc::clone(&reply)),
                );
                reply
            }
        };
        let entry = self
            .acks
            .entry((reply, seq.incarnation, seq.lane))
            .or_insert(0);
        *entry = (*entry).max(through);
        self.acks_gathered += 1;
        if self.acks.len() >= MAX_ACKS || self.acks_gathered >= ACK_BATCH {
            self.send_acks();
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(Instant::now() + self.e2e_options.ack_delay);
        }
    }

    /// Sends the gathered acknowledgements (never waits: one that does not fit in the
    /// outgoing queue is made up for by the sender's retransmission and the next one).
    fn send_acks(&mut self) {
        self.ack_deadline = None;
        self.acks_gathered = 0;
        for ((topic, incarnation, lane), through) in self.acks.drain() {
            let ack = Ack {
                incarnation,
                lane,
                through,
            };
            let payload = pickle::encode(&ack.to_value(), self.protocol);
            // QoS 1: a repeated acknowledgement is harmless.
            let message = Message::new(topic.to_string(), payload, QoS::AtLeastOnce)
                .with_priority(Priority::Control);
            let _ = self.transport.try_publish(message);
        }
    }

    /// Sends again the messages the receivers have not acknowledged in time (`all`:
    /// every one, after a reconnect).
    fn resend(&mut self, all: bool) {
        if !self.e2e_options.enabled {
            return;
        }
        for message in self.e2e.due(Instant::now(), all) {
            // Never waits; a message that does not fit now goes at the next attempt.
            let _ = self.transport.try_publish(message);
        }
    }

    /// Reports the gaps whose grace period is over, as error events and in the metrics.
    fn report_gaps(&mut self) {
        for gap in self.tracker.expire(now()) {
            let Ok(topic) = AppTopic::parse(&gap.topic) else {
                continue; // made from a parsed topic
            };
            log::error!(
                "{}: lost {} messages from {} (seq {}..{}, incarnation {:x})",
                self.me,
                gap.count,
                topic.sender,
                gap.first,
                gap.last,
                gap.incarnation
            );
            self.counters.lost.fetch_add(gap.count, Ordering::Relaxed);
            bump(&self.counters.gaps);
            // A gap has no payload: it is about messages that never came.
            self.report(
                gap.topic,
                bytes::Bytes::new(),
                InboundError::Lost {
                    sender: topic.sender,
                    count: gap.count,
                    first: gap.first,
                    last: gap.last,
                },
            );
        }
    }

    /// Raises an error event carrying the raw payload concerned; never waits. A payload
    /// beyond the error queue's bytes (one larger than the whole budget goes only into an
    /// empty queue) is left out, and counted; an event beyond its count is dropped, and
    /// counted.
    fn report(&self, topic: String, mut payload: bytes::Bytes, error: InboundError) {
        bump(&self.counters.errors);
        let bytes = &self.senders.error_bytes;
        if !bytes.has_room(payload.len()) {
            payload = bytes::Bytes::new();
            bump(&self.counters.error_payloads_dropped);
        }
        let weight = payload.len();
        bytes.add(weight);
        let event = ErrorEvent {
            topic,
            payload,
            error,
        };
        if self.senders.errors.try_send((event, weight)).is_err() {
            bytes.take(weight);
            bump(&self.counters.errors_dropped);
        }
    }

    /// Feeds the handshake one event and carries out its actions. `topic` is the topic of
    /// the inbound command, for error events.
    fn drive(&mut self, event: HandshakeEvent<'_>, topic: &str) {
        let Some(readiness) = self.readiness.as_mut() else {
            return;
        };
        let actions = readiness.handle(event);
        let status = Status {
            started: readiness.is_started(),
            exit_requested: readiness.exit_requested(),
            closed: false,
            handshake: Some(readiness.state()),
            waiting_for: readiness.pending().cloned().collect(),
            ..self.status.borrow().clone()
        };
        for action in actions {
            self.execute(action, topic);
        }
        // After the actions: a controller's `start`s are queued before the application,
        // released here, can publish anything.
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn execute(&self, action: Action, topic: &str) {
        match action {
            Action::Send { to, cmd } => {
                let topic =
                    AppTopic::app_message(to.broker, self.app.clone(), self.me.clone(), to.name);
                let payload = cmd.to_envelope().to_pickle(self.protocol);
                self.send(topic.to_string(), payload);
            }
            Action::Report(ready_type) => {
                let report = ReadyReport {
                    app_id: self.app.clone(),
                    container_name: self.me.clone(),
                    agent_id: self.agent_id.clone(),
                    ready_type: ready_type.into(),
                };
                let topic = PlatformTopic::ready(self.broker.clone());
                self.send(topic.to_string(), report.to_json());
            }
            Action::Unexpected(unexpected) => {
                self.report(
                    topic.to_owned(),
                    bytes::Bytes::new(),
                    InboundError::Readiness(unexpected),
                );
            }
            // Reflected in the status by `drive`.
            Action::Started | Action::ExitRequested => {}
        }
    }

    fn send(&self, topic: String, payload: Vec<u8>) {
        let message =
            Message::new(topic.clone(), payload, QoS::ExactlyOnce).with_priority(Priority::Control);
        // The receipt is not awaited: a lost handshake message is made up for by retries.
        if let Err(e) = self.transport.try_publish(message) {
            self.report(topic, bytes::Bytes::new(), InboundError::Queue(e));
        }
    }
}

/// Now, as the tracker counts time (tokio's clock, so that paused-time tests can move it).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Sleeps until `deadline` (never called without one).
async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(Instant::from_std(deadline)).await;
    }
}
