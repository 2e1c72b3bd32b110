//! End-to-end delivery between Rust containers: the sender's window of unacknowledged
//! messages per target, their retransmission, and the pacing of targets that never
//! acknowledge (Python peers, or Rust ones with [`E2eOptions::acknowledge`] off).
//!
//! The wire is in [`ecci_proto::sequence`]: a sender with [`E2eOptions::enabled`] adds
//! `'ecci_e2e': (its broker, base)` to each message beside `'ecci_seq'`; a Rust receiver
//! answers with cumulative `'ecci_ack'` envelopes (batched every [`E2eOptions::ack_delay`])
//! on the ordinary app topic toward the sender's broker. Only messages that carry the
//! announcement are acknowledged, so a Python sender never receives an acknowledgement.
//!
//! A target starts *unknown*: its messages count against the window but are not
//! retransmitted (a Python receiver would see them twice). Its first acknowledgement makes
//! it *acknowledging*: from then on what is not acknowledged within
//! [`E2eOptions::timeout`] (doubling per attempt, at most 30 s) and everything
//! unacknowledged after each reconnect is sent again, oldest first and at most 16 per
//! target every `min(timeout, probe) / 10` (a larger burst would hit a broker's in-flight
//! quota of 20 and be dropped again), and the receiver drops the duplicates. A message
//! still unacknowledged [`E2eOptions::give_up`] after it was first sent is given up: its
//! [`Delivery::delivered`] fails with [`Error::NotDelivered`], it leaves the window, and the
//! next messages' `base` tells the receiver to report it lost rather than wait for it.
//!
//! A target that has not acknowledged anything [`E2eOptions::probe`] after its first
//! message is *plain* (a Python receiver: the absence of acknowledgements is the
//! capability test, so no handshake is needed and a Python peer sees nothing new):
//! plain QoS 2, its [`Delivery::delivered`] resolve [`Confirmation::Unconfirmed`], paced at
//! [`E2eOptions::pace`] messages per second if set; a later acknowledgement makes it
//! acknowledging again. The probe costs a Python target nothing unless the sender fills
//! the window (256 messages) within the probe's 3 s of its first message: then that one
//! burst waits for the rest of the 3 s, once.
//!
//! [`Delivery::delivered`]: crate::Delivery::delivered
//! [`Error::NotDelivered`]: crate::Error::NotDelivered

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ecci_proto::pickle::{self, Protocol, Value};
use ecci_proto::sequence::{Ack, E2e as Announcement, Lane, Seq};
use ecci_transport::{Message, Priority, QoS};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// Settings of end-to-end delivery (see [`ClientOptions::e2e`](crate::ClientOptions::e2e)).
///
/// ```
/// use ecci_client::{ClientOptions, E2eOptions};
/// let options = ClientOptions {
///     e2e: E2eOptions { enabled: true, pace: Some(1_000), ..E2eOptions::default() },
///     ..ClientOptions::default()
/// };
/// assert_eq!(options.e2e.window, 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2eOptions {
    /// Whether this client's messages to containers ask for end-to-end
    /// acknowledgements (and are retransmitted and flow-controlled). Default on.
    pub enabled: bool,
    /// Whether this client acknowledges the messages of senders that ask for it.
    /// Default on.
    pub acknowledge: bool,
    /// Most unacknowledged messages per target; a publish beyond waits. Default 256 (below
    /// mosquitto's 1,000 queued messages per subscriber).
    pub window: usize,
    /// Most unacknowledged payload bytes per target (one message always fits). Default
    /// 16 MiB.
    pub window_bytes: usize,
    /// How long a message may stay unacknowledged before it is sent again (doubling with
    /// each attempt, at most 30 s). Default 3 s.
    pub timeout: Duration,
    /// How long a message may stay unacknowledged by a target that acknowledges before
    /// it is given up ([`Error::NotDelivered`](crate::Error::NotDelivered)): it is no longer
    /// sent again and leaves the window, so a sender to a container that is down waits at
    /// most this long per window. Default 60 s.
    pub give_up: Duration,
    /// How long a target may stay silent after its first message before it counts as one
    /// that never acknowledges (a Python receiver). Default 3 s.
    pub probe: Duration,
    /// Messages per second to each target that does not acknowledge (unknown or plain);
    /// `None`: unpaced. Keeps a burst whole at a slow Python receiver, whose broker
    /// queue holds 1,000 messages. Default `None`.
    pub pace: Option<u32>,
    /// How long a receiver gathers acknowledgements before sending them (one cumulative
    /// acknowledgement per sender and lane; at the latest after 32 messages). Default
    /// 10 ms.
    pub ack_delay: Duration,
}

impl Default for E2eOptions {
    fn default() -> Self {
        E2eOptions {
            enabled: true,
            acknowledge: true,
            window: 256,
            window_bytes: 16 * 1024 * 1024,
            timeout: Duration::from_secs(3),
            give_up: Duration::from_secs(60),
            probe: Duration::from_secs(3),
            pace: None,
            ack_delay: Duration::from_millis(10),
        }
    }
}

/// What [`Delivery::delivered`](crate::Delivery::delivered) found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Every receiving container acknowledged the message: its SDK took it off the wire
    /// into the queue its application reads (a container that crashes before its
    /// application takes the message loses it with the rest of its memory).
    Received,
    /// Some target does not acknowledge (a Python peer, end-to-end delivery off, or not a
    /// container): its broker has the message, no more is known.
    Unconfirmed,
}

/// End-to-end figures for one target (see [`Client::e2e_metrics`](crate::Client::e2e_metrics)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetMetrics {
    /// The target container.
    pub target: String,
    /// Whether it acknowledges (`Some(true)`), does not (`Some(false)`), or is not known
    /// yet (`None`).
    pub acknowledging: Option<bool>,
    /// Messages sent and not acknowledged yet.
    pub unacked: usize,
    /// Their payload bytes.
    pub unacked_bytes: usize,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages sent again.
    pub retransmissions: u64,
    /// Messages given up (not acknowledged within [`E2eOptions::give_up`]).
    pub given_up: u64,
}

/// How a message to one target was settled (what its confirmation channel carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Acknowledged, or released as unconfirmable.
    Confirmed(Confirmation),
    /// Not acknowledged within the give-up time.
    GaveUp { after: Duration, attempts: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unknown { since: Option<Instant> },
    Acking,
    Plain,
}

#[derive(Debug)]
struct Pending {
    /// Shared by the target's pending messages.
    topic: Arc<str>,
    /// The envelope with its `ecci_seq`, for sending again with a newer base.
    value: Value,
    priority: Priority,
    size: usize,
    /// When it was first sent (the give-up time counts from there).
    first: Instant,
    /// When it was last sent.
    sent: Instant,
    attempts: u32,
    timeout: Duration,
    done: Option<oneshot::Sender<Settled>>,
}

#[derive(Debug)]
struct Target {
    mode: Mode,
    /// The topic of its messages, shared by the pending ones.
    topic: Option<Arc<str>>,
    /// The announcement's dict entry, built once and lent to each encoding.
    announcement: Option<(Value, Value)>,
    pending: BTreeMap<(u8, u64), Pending>,
    bytes: usize,
    acked: u64,
    retransmissions: u64,
    given_up: u64,
    next_slot: Option<Instant>,
}

impl Target {
    fn new() -> Self {
        Target {
            mode: Mode::Unknown { since: None },
            topic: None,
            announcement: None,
            pending: BTreeMap::new(),
            bytes: 0,
            acked: 0,
            retransmissions: 0,
            given_up: 0,
            next_slot: None,
        }
    }

    fn base(&self, lane: Lane, otherwise: u64) -> u64 {
        let l = lane_key(lane);
        self.pending
            .range((l, 0)..=(l, u64::MAX))
            .next()
            .map_or(otherwise, |((_, n), _)| (*n).min(otherwise))
    }

    /// Resolves every pending message as unconfirmed (the target does not acknowledge).
    fn release(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.pending) {
            if let Some(done) = p.done.take() {
                let _ = done.send(Settled::Confirmed(Confirmation::Unconfirmed));
            }
        }
        self.bytes = 0;
    }
}

fn lane_key(lane: Lane) -> u8 {
    match lane {
        Lane::Ordered => 0,
        Lane::Urgent => 1,
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Most messages sent again to one target at a time (each resend tick), oldest first:
/// below a broker's (or a bridge's remote broker's) in-flight quota of 20, which would
/// drop a larger burst again.
const MAX_BURST: usize = 16;

/// The sender's end-to-end state, shared by the publishing calls and the background task.
#[derive(Debug)]
pub(crate) struct Sender {
    options: E2eOptions,
    incarnation: u64,
    reply_broker: String,
    protocol: Protocol,
    targets: Mutex<HashMap<String, Target>>,
    room: Notify,
}

/// What a publish to one target carries: the payload and, while the target may
/// acknowledge, the receiver of its confirmation.
pub(crate) struct Prepared {
    pub(crate) payload: Bytes,
    pub(crate) done: Option<oneshot::Receiver<Settled>>,
}

impl Sender {
    pub(crate) fn new(
        options: E2eOptions,
        incarnation: u64,
        reply_broker: String,
        protocol: Protocol,
    ) -> Self {
        Sender {
            options,
            incarnation,
            reply_broker,
            protocol,
            targets: Mutex::new(HashMap::new()),
            room: Notify::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.options.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Target>> {
        self.targets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `value` with the announcement, pickled; the announcement's entry (kept in `cached`,
    /// built at the first use) is added for the encoding and taken off again, so neither
    /// the value nor the entry is copied.
    fn encode(&self, cached: &mut Option<(Value, Value)>, value: &mut Value, base: u64) -> Bytes {
        let Value::Dict(pairs) = value else {
            // Not an envelope dict: nothing to add the announcement to (as `add_to`).
            return Bytes::from(pickle::encode(value, self.protocol));
        };
        let mut entry = cached.take().unwrap_or_else(|| self.announcement(base));
        // The entry is `(E2E_KEY, (reply_broker, base))`: only the base changes.
        if let (_, Value::Tuple(items)) = &mut entry {
            if let Some(Value::Int(b)) = items.get_mut(1) {
                *b = i64::try_from(base).unwrap_or(i64::MAX);
            }
        }
        debug_assert_eq!(entry, self.announcement(base));
        pairs.push(entry);
        let payload = Bytes::from(pickle::encode(value, self.protocol));
        if let Value::Dict(pairs) = value {
            *cached = pairs.pop();
        }
        payload
    }

    /// The dict entry [`Announcement::add_to`] adds for `base`.
    fn announcement(&self, base: u64) -> (Value, Value) {
        let announced = Announcement {
            reply_broker: self.reply_broker.clone(),
            base,
        }
        .add_to(Value::Dict(Vec::new()));
        match announced {
            Value::Dict(mut pairs) if pairs.len() == 1 => pairs.pop().unwrap_or_default(),
            _ => Default::default(),
        }
    }

    /// Waits for room in `target`'s window (and for its pacing slot), then registers the
    /// message `value` (an envelope with `seq` added) to `topic`.
    pub(crate) async fn prepare(
        &self,
        target: &str,
        topic: &str,
        seq: Seq,
        value: Value,
        priority: Priority,
    ) -> Prepared {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut targets = self.lock();
                // Looked up before inserting: no key to allocate per message.
                let t = match targets.get_mut(target) {
                    Some(t) => t,
                    None => targets.entry(target.to_owned()).or_insert_with(Target::new),
                };
                self.check_probe(t, Instant::now());
                let full = t.mode != Mode::Plain
                    && !t.pending.is_empty()
                    && (t.pending.len() >= self.options.window.max(1)
                        || t.bytes >= self.options.window_bytes);
                if !full {
                    None
                } else {
                    Some(match t.mode {
                        Mode::Unknown { since: Some(s) } => Some(s + self.options.probe),
                        _ => None,
                    })
                }
            };
            match wait {
                None => break,
                Some(Some(deadline)) => {
                    let _ = tokio::time::timeout_at(deadline, notified).await;
                }
                Some(None) => notified.await,
            }
        }
        // Pacing of targets that do not acknowledge.
        if let Some(rate) = self.options.pace.filter(|r| *r > 0) {
            let slot = {
                let mut targets = self.lock();
                let t = targets.entry(target.to_owned()).or_insert_with(Target::new);
                if t.mode == Mode::Acking {
                    None
                } else {
                    let now = Instant::now();
                    let slot = t.next_slot.map_or(now, |s| s.max(now));
                    t.next_slot = Some(slot + Duration::from_secs(1) / rate);
                    Some(slot)
                }
            };
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }
        }
        let mut targets = self.lock();
        let t = match targets.get_mut(target) {
            Some(t) => t,
            None => targets.entry(target.to_owned()).or_insert_with(Target::new),
        };
        let now = Instant::now();
        let base = t.base(seq.lane, seq.seq);
        let mut value = value;
        let payload = self.encode(&mut t.announcement, &mut value, base);
        if t.mode == Mode::Plain {
            return Prepared {
                payload,
                done: None,
            };
        }
        if let Mode::Unknown { since: None } = t.mode {
            t.mode = Mode::Unknown { since: Some(now) };
        }
        let (tx, rx) = oneshot::channel();
        t.bytes += payload.len();
        let shared = match &t.topic {
            Some(shared) if **shared == *topic => Arc::clone(shared),
            _ => {
                let shared: Arc<str> = Arc::from(topic);
                t.topic = Some(Arc::clone(&shared));
                shared
            }
        };
        t.pending.insert(
            (lane_key(seq.lane), seq.seq),
            Pending {
                topic: shared,
                value,
                priority,
                size: payload.len(),
                first: now,
                sent: now,
                attempts: 1,
                timeout: self.options.timeout,
                done: Some(tx),
            },
        );
        Prepared {
            payload,
            done: Some(rx),
        }
    }

    /// An unknown target silent for longer than the probe becomes plain.
    fn check_probe(&self, t: &mut Target, now: Instant) {
        if let Mode::Unknown { since: Some(s) } = t.mode {
            if now >= s + self.options.probe {
                t.mode = Mode::Plain;
                t.release();
                self.room.notify_waiters();
            }
        }
    }

    /// Takes an acknowledgement from `target`.
    pub(crate) fn on_ack(&self, target: &str, ack: Ack) {
        if ack.incarnation != self.incarnation {
            return; // for an earlier run of this container
        }
        let mut targets = self.lock();
        let Some(t) = targets.get_mut(target) else {
            return;
        };
        t.mode = Mode::Acking;
        let l = lane_key(ack.lane);
        while let Some(key) = t
            .pending
            .range((l, 0)..=(l, ack.through))
            .next()
            .map(|(k, _)| *k)
        {
            if let Some(mut p) = t.pending.remove(&key) {
                t.bytes -= p.size;
                t.acked += 1;
                if let Some(tx) = p.done.take() {
                    let _ = tx.send(Settled::Confirmed(Confirmation::Received));
                }
            }
        }
        drop(targets);
        self.room.notify_waiters();
    }

    /// The messages to send again at `now`: those of acknowledging targets past their
    /// timeout, or all of them after a reconnect (`all`). Gives up those past
    /// [`E2eOptions::give_up`].
    pub(crate) fn due(&self, now: Instant, all: bool) -> Vec<Message> {
        let mut out = Vec::new();
        let mut targets = self.lock();
        let mut released = false;
        for t in targets.values_mut() {
            if let Mode::Unknown { since: Some(s) } = t.mode {
                if now >= s + self.options.probe {
                    t.mode = Mode::Plain;
                    t.release();
                    released = true;
                }
            }
            if t.mode != Mode::Acking {
                continue;
            }
            let give_up = self.options.give_up;
            let expired: Vec<(u8, u64)> = t
                .pending
                .iter()
                .filter(|(_, p)| now >= p.first + give_up)
                .map(|(k, _)| *k)
                .collect();
            for key in expired {
                if let Some(mut p) = t.pending.remove(&key) {
                    t.bytes -= p.size;
                    t.given_up += 1;
                    released = true;
                    if let Some(tx) = p.done.take() {
                        let _ = tx.send(Settled::GaveUp {
                            after: now - p.first,
                            attempts: p.attempts,
                        });
                    }
                }
            }
            let mut bases = [None, None];
            let mut burst = 0;
            for ((l, n), p) in &mut t.pending {
                let base = *bases[usize::from(*l)].get_or_insert(*n);
                if all {
                    // Due now, and sent MAX_BURST at a time below.
                    p.sent = now.checked_sub(p.timeout).unwrap_or(now);
                }
                if now < p.sent + p.timeout {
                    continue;
                }
                if burst >= MAX_BURST {
                    continue;
                }
                burst += 1;
                p.sent = now;
                p.attempts = p.attempts.saturating_add(1);
                p.timeout = (p.timeout * 2).min(MAX_BACKOFF);
                t.retransmissions += 1;
                let payload = self.encode(&mut t.announcement, &mut p.value, base);
                out.push(
                    Message::new(p.topic.to_string(), payload, QoS::ExactlyOnce)
                        .with_priority(p.priority),
                );
            }
        }
        drop(targets);
        if released {
            self.room.notify_waiters();
        }
        out
    }

    /// Drops every pending confirmation (the client closes: they resolve with
    /// [`Error::Closed`](crate::Error::Closed)).
    pub(crate) fn close(&self) {
        let mut targets = self.lock();
        for t in targets.values_mut() {
            t.pending.clear();
            t.bytes = 0;
        }
        drop(targets);
        self.room.notify_waiters();
    }

    pub(crate) fn metrics(&self) -> Vec<TargetMetrics> {
        let targets = self.lock();
        let mut out: Vec<TargetMetrics> = targets
            .iter()
            .map(|(name, t)| TargetMetrics {
                target: name.clone(),
                acknowledging: match t.mode {
                    Mode::Unknown { .. } => None,
                    Mode::Acking => Some(true),
                    Mode::Plain => Some(false),
                },
                unacked: t.pending.len(),
                unacked_bytes: t.bytes,
                acked: t.acked,
                retransmissions: t.retransmissions,
                given_up: t.given_up,
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}
