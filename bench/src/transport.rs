//! `transport`: [`MqttTransport`] sending A→B through a broker, next to raw rumqttc
//! (`AsyncClient` + `EventLoop`, in-flight 20, max packet 1 MiB) through the same broker in
//! the same run.
//!
//! The brokers: a mosquitto the suite starts itself on a free loopback port with its
//! **default** settings (only `listener PORT 127.0.0.1` and `allow_anonymous true`; the
//! binary from `PATH` or `/usr/sbin`), then the same with `set_tcp_nodelay true` for the
//! latency table only, then the embedded test broker (`ecci_transport::broker::Broker`).
//!
//! What the burst table compares is the **sender**: both senders publish to the same
//! receiver, our transport subscribed at QoS 2 (so each message arrives with the QoS it was
//! sent with), and the ratio ours/raw says what our sender costs. The receiver is ours
//! because it keeps up with either sender: a raw rumqttc receiver acknowledges more slowly,
//! and mosquitto then drops part of a 5,000-message QoS 1 burst from the faster sender (ours;
//! measured 2,300–3,100 of 5,000 delivered), which would measure the receiver instead. The
//! latency tables add raw rumqttc at both ends as the reference.
//!
//! Each payload starts with its sequence number and the time it was handed to the sender
//! (one process, one clock), so the receiver counts distinct messages and one-way latency.
//! msg/s is distinct messages delivered over the time from the first publish to the last
//! delivery. Every run is bounded: the receiver stops at the last message, 30 s after the
//! start, or 1 s after the sender has every acknowledgement and nothing more arrives. The
//! 5,000-message rows are short and run 3 times each (best rate, fewest deliveries shown).
//!
//! # What a mosquitto user should configure
//! - **Queue per subscriber.** mosquitto keeps at most `max_queued_messages` (default 1000)
//!   QoS 1/2 messages per subscriber beyond the 20 in flight to it, and drops the rest
//!   without telling anyone: MQTT 3.1.1 has no way to say so, so the sender cannot see it
//!   (it has its PUBACK / PUBCOMP), and the tables print delivered/sent for every row. A
//!   50,000-message burst at full speed outruns the receiver, so part of it is lost, with raw
//!   rumqttc as with ours (whichever sends faster loses more). Whoever sends bursts of more
//!   than about 1,000 messages to one subscriber should raise `max_queued_messages` in
//!   `mosquitto.conf` (0: no limit; `max_queued_bytes` is unlimited by default), keep the
//!   receiver at least as fast as the sender (a slow event consumer makes ours stop reading,
//!   which fills that queue), or pace the sender, e.g. on an application-level
//!   acknowledgement. The same limit drops QoS 0 messages that wait unwritten for a slow
//!   subscriber (seen now and then with 64 KiB). QoS ≥ 1 is still what keeps messages across
//!   a lost connection.
//! - **Latency.** mosquitto's default `set_tcp_nodelay false` leaves Nagle's algorithm on its
//!   sockets: about 1 % of messages at 200 msg/s wait for the receiving kernel's delayed ACK
//!   (≈ 40 ms, the max column), which puts p99 near or above 1 ms for every client. With
//!   `set_tcp_nodelay true` those stalls are gone. (Our transport sets `TCP_NODELAY` on its
//!   own socket; raw rumqttc runs with its defaults here, which leave it off.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ecci_transport::broker::Broker;
use ecci_transport::{Event, Events, Message, MqttConfig, MqttTransport, QoS, Transport};
use rumqttc::{AsyncClient, EventLoop, MqttOptions, Outgoing, Packet};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};

use crate::table::{Runs, SPREAD_NOTE, Table};

/// Longest a run may take, from the first publish to the last delivery.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long the receiver waits for more once the sender has every acknowledgement.
const IDLE: Duration = Duration::from_secs(1);
/// How long connecting and subscribing may take.
const SETUP: Duration = Duration::from_secs(10);
/// Payload header: sequence number (u32 LE), then nanoseconds since the run's start (u64 LE).
const HEADER: usize = 12;
/// In-flight cap of both senders: mosquitto's `max_inflight_messages`.
const IN_FLIGHT: usize = 20;
/// Requests rumqttc buffers before its `publish` waits; our bulk queue's default.
const RAW_QUEUE: usize = 4096;
const MAX_PACKET: usize = 1024 * 1024;
/// The paced run: messages per second and count.
const PACE_RATE: u32 = 200;
const PACE_COUNT: u32 = 1_000;

/// Which client sends or receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Raw,
}

/// How one run went.
#[derive(Debug, Default)]
struct Outcome {
    sent: u32,
    /// Distinct messages delivered.
    delivered: u32,
    duplicates: u32,
    /// Receipts (ours) or acknowledgements (raw) that did not arrive or failed.
    unacked: u32,
    /// From the first publish to the last delivery.
    elapsed: Duration,
    /// Distinct messages delivered per second of `elapsed` (of the best run, when merged).
    rate: f64,
    /// One-way latencies, sorted.
    latencies: Vec<Duration>,
}

impl Outcome {
    fn measured_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            f64::from(self.delivered) / secs
        } else {
            0.0
        }
    }

    fn delivered(&self) -> String {
        let mut s = format!("{}/{}", self.delivered, self.sent);
        if self.duplicates > 0 {
            s.push_str(&format!(" +{} dup", self.duplicates));
        }
        if self.unacked > 0 {
            s.push_str(&format!(" ({} unacked)", self.unacked));
        }
        s
    }

    fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        if n == 0 {
            return None;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.latencies.get(rank - 1).copied()
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3}", d.as_secs_f64() * 1e3))
}

fn payload(seq: u32, base: Instant, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size.max(HEADER));
    b.put_u32_le(seq);
    b.put_u64_le(base.elapsed().as_nanos() as u64);
    b.resize(size.max(HEADER), 0);
    b.freeze()
}

/// The sequence number and send time at the start of a payload made by [`payload`].
fn header(p: &[u8]) -> Option<(u32, u64)> {
    let seq = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
    let sent_ns = u64::from_le_bytes(p.get(4..HEADER)?.try_into().ok()?);
    Some((seq, sent_ns))
}

fn raw_qos(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn raw_options(port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(ecci_transport::client_id(), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(IN_FLIGHT as u16)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET);
    o
}

fn our_config(port: u16) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", port);
    c.max_in_flight = IN_FLIGHT;
    c
}

/// Polls a raw event loop until `done` says an event is the one awaited.
async fn raw_until(
    eventloop: &mut EventLoop,
    what: &str,
    done: impl Fn(&rumqttc::Event) -> bool,
) -> Result<(), String> {
    timeout(SETUP, async {
        loop {
            match eventloop.poll().await {
                Ok(e) if done(&e) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("raw rumqttc: {what}: {e}")),
            }
        }
    })
    .await
    .map_err(|_| format!("raw rumqttc: {what}: timed out"))?
}

async fn ours_connected(events: &mut Events) -> Result<(), String> {
    timeout(SETUP, async {
        while let Some(e) = events.recv().await {
            if e == Event::Connected {
                return Ok(());
            }
        }
        Err("our transport: closed before connecting".to_owned())
    })
    .await
    .map_err(|_| "our transport: connect timed out".to_owned())?
}

/// The subscribing end.
enum Receiver {
    Ours(MqttTransport, Events),
    Raw(AsyncClient, Box<EventLoop>),
}

impl Receiver {
    async fn start(side: Side, port: u16, topic: &str) -> Result<Receiver, String> {
        match side {
            Side::Ours => {
                let t = MqttTransport::start(our_config(port));
                let mut events = t.take_events().ok_or("events taken")?;
                timeout(SETUP, t.subscribe(topic, QoS::ExactlyOnce))
                    .await
                    .map_err(|_| "our transport: subscribe timed out")?
                    .map_err(|e| format!("our transport: subscribe: {e}"))?;
                ours_connected(&mut events).await?;
                Ok(Receiver::Ours(t, events))
            }
            Side::Raw => {
                let (client, mut eventloop) = AsyncClient::new(raw_options(port), RAW_QUEUE);
                client
                    .subscribe(topic, rumqttc::QoS::ExactlyOnce)
                    .await
                    .map_err(|e| format!("raw rumqttc: subscribe: {e}"))?;
                raw_until(&mut eventloop, "subscribe", |e| {
                    matches!(e, rumqttc::Event::Incoming(Packet::SubAck(_)))
                })
                .await?;
                Ok(Receiver::Raw(client, Box::new(eventloop)))
            }
        }
    }

    /// The next payload; `None` when the connection failed.
    async fn next(&mut self) -> Option<Bytes> {
        match self {
            Receiver::Ours(_, events) => loop {
                match events.recv().await? {
                    Event::Message(m) => return Some(m.payload),
                    Event::Disconnected(_) => return None,
                    _ => {}
                }
            },
            Receiver::Raw(_, eventloop) => loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => return Some(p.payload),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            },
        }
    }

    async fn stop(self) {
        match self {
            Receiver::Ours(t, _) => t.close().await,
            Receiver::Raw(client, mut eventloop) => {
                let _ = client.disconnect().await;
                let _ = timeout(Duration::from_secs(1), eventloop.poll()).await;
            }
        }
    }
}

/// Counts deliveries until every message arrived, the run's limit, or `IDLE` after the
/// sender finished.
async fn receive(
    mut receiver: Receiver,
    count: u32,
    base: Instant,
    mut sender_done: watch::Receiver<bool>,
) -> (Outcome, Receiver) {
    let mut seen = vec![false; count as usize];
    let mut out = Outcome::default();
    let mut last_delivery = base;
    let mut done_at: Option<Instant> = None;
    let limit = base + RUN_LIMIT;
    while out.delivered < count {
        let now = Instant::now();
        if done_at.is_none() && *sender_done.borrow_and_update() {
            done_at = Some(now);
        }
        let give_up = match done_at {
            Some(d) => limit.min(d.max(last_delivery) + IDLE),
            None => limit,
        };
        if now >= give_up {
            break;
        }
        let wake = give_up.min(now + Duration::from_millis(50));
        let Ok(next) = timeout_at(wake, receiver.next()).await else {
            continue;
        };
        let Some(p) = next else { break };
        let received = base.elapsed();
        let Some((seq, sent_ns)) = header(&p) else {
            continue;
        };
        match seen.get_mut(seq as usize) {
            Some(s) if !*s => {
                *s = true;
                out.delivered += 1;
                last_delivery = Instant::now();
                out.latencies
                    .push(received.saturating_sub(Duration::from_nanos(sent_ns)));
            }
            Some(_) => out.duplicates += 1,
            None => {}
        }
    }
    out.elapsed = last_delivery - base;
    out.latencies.sort_unstable();
    out.rate = out.measured_rate();
    (out, receiver)
}

/// The publishing end, connected.
enum Sender {
    Ours(MqttTransport),
    Raw(AsyncClient, Box<EventLoop>),
}

impl Sender {
    async fn connect(side: Side, port: u16) -> Result<Sender, String> {
        match side {
            Side::Ours => {
                let t = MqttTransport::start(our_config(port));
                let mut events = t.take_events().ok_or("events taken")?;
                ours_connected(&mut events).await?;
                Ok(Sender::Ours(t))
            }
            Side::Raw => {
                let (client, mut eventloop) = AsyncClient::new(raw_options(port), RAW_QUEUE);
                raw_until(&mut eventloop, "connect", |e| {
                    matches!(e, rumqttc::Event::Incoming(Packet::ConnAck(_)))
                })
                .await?;
                Ok(Sender::Raw(client, Box::new(eventloop)))
            }
        }
    }

    /// Publishes `count` messages (every `1/rate` s when paced) and waits for their
    /// acknowledgements, until the run's limit. Returns how many were never acknowledged.
    async fn send(&mut self, job: &Job, base: Instant) -> Result<u32, String> {
        let limit = base + RUN_LIMIT;
        let mut tick = job
            .rate
            .map(|r| tokio::time::interval(Duration::from_secs(1) / r));
        match self {
            Sender::Ours(t) => {
                let mut receipts = Vec::with_capacity(job.count as usize);
                let publish_all = async {
                    for seq in 0..job.count {
                        if let Some(tick) = &mut tick {
                            tick.tick().await;
                        }
                        let m = Message::new(&*job.topic, payload(seq, base, job.size), job.qos);
                        let receipt = t
                            .publish(m)
                            .await
                            .map_err(|e| format!("our transport: publish: {e}"))?;
                        receipts.push(receipt);
                    }
                    Ok::<(), String>(())
                };
                if let Ok(r) = timeout_at(limit, publish_all).await {
                    r?;
                }
                let mut acked = 0u32;
                for receipt in receipts {
                    match timeout_at(limit, receipt).await {
                        Ok(Ok(())) => acked += 1,
                        Ok(Err(_)) => {}
                        Err(_) => break,
                    }
                }
                Ok(job.count - acked)
            }
            Sender::Raw(client, eventloop) => {
                let publisher = {
                    let client = client.clone();
                    let topic = job.topic.clone();
                    let (count, size, qos) = (job.count, job.size, raw_qos(job.qos));
                    tokio::spawn(async move {
                        for seq in 0..count {
                            if let Some(tick) = &mut tick {
                                tick.tick().await;
                            }
                            let p = payload(seq, base, size);
                            if client.publish_bytes(&*topic, qos, false, p).await.is_err() {
                                return;
                            }
                        }
                    })
                };
                let mut acked = 0u32;
                let qos0 = job.qos == QoS::AtMostOnce;
                while acked < job.count {
                    match timeout_at(limit, eventloop.poll()).await {
                        Ok(Ok(rumqttc::Event::Incoming(
                            Packet::PubAck(_) | Packet::PubComp(_),
                        ))) if !qos0 => acked += 1,
                        Ok(Ok(rumqttc::Event::Outgoing(Outgoing::Publish(_)))) if qos0 => {
                            acked += 1;
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            publisher.abort();
                            return Err(format!("raw rumqttc: {e}"));
                        }
                        Err(_) => break,
                    }
                }
                publisher.abort();
                Ok(job.count - acked)
            }
        }
    }

    async fn stop(self) {
        match self {
            Sender::Ours(t) => t.close().await,
            Sender::Raw(client, mut eventloop) => {
                let _ = client.disconnect().await;
                let _ = timeout(Duration::from_secs(1), eventloop.poll()).await;
            }
        }
    }
}

/// What one run sends.
#[derive(Debug)]
struct Job {
    topic: String,
    qos: QoS,
    size: usize,
    count: u32,
    rate: Option<u32>,
}

/// One run: receiver up, sender connected, then the clock starts.
async fn run_job(
    port: u16,
    sender: Side,
    receiver: Side,
    qos: QoS,
    size: usize,
    count: u32,
    rate: Option<u32>,
) -> Result<Outcome, String> {
    let job = Job {
        topic: format!("bench/{}/t", ecci_transport::client_id()),
        qos,
        size,
        count,
        rate,
    };
    let rx = Receiver::start(receiver, port, &job.topic).await?;
    let mut tx = Sender::connect(sender, port).await?;
    let (done_tx, done_rx) = watch::channel(false);
    let base = Instant::now();
    let receiving = tokio::spawn(receive(rx, count, base, done_rx));
    let sent = tx.send(&job, base).await;
    done_tx.send_replace(true);
    let (mut outcome, rx) = receiving.await.map_err(|e| format!("receiver: {e}"))?;
    tx.stop().await;
    rx.stop().await;
    outcome.sent = count;
    outcome.unacked = sent?;
    Ok(outcome)
}

fn qos_name(qos: QoS) -> &'static str {
    match qos {
        QoS::AtMostOnce => "QoS 0",
        QoS::AtLeastOnce => "QoS 1",
        QoS::ExactlyOnce => "QoS 2",
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

const QOS_ALL: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// Runs of each 5,000-message row: short runs are noisy on a shared machine, so the table
/// shows the best rate and the fewest deliveries of these.
const SHORT_REPEATS: usize = 3;

/// Of several runs of one row: the best rate, and the fewest deliveries, the most duplicates
/// and the most unacknowledged messages seen.
fn merge(best: Option<Outcome>, o: Outcome) -> Outcome {
    let Some(b) = best else { return o };
    let (delivered, unacked) = (b.delivered.min(o.delivered), b.unacked.max(o.unacked));
    let duplicates = b.duplicates.max(o.duplicates);
    let mut keep = if o.rate > b.rate { o } else { b };
    keep.delivered = delivered;
    keep.unacked = unacked;
    keep.duplicates = duplicates;
    keep
}

/// Bursts of 5,000 and 50,000 messages of 100 B and 64 KiB at each QoS, ours and raw.
async fn burst_table(port: u16, broker: &str) -> Result<(), String> {
    println!("### bursts through {broker} (receiver: our transport for both senders)\n");
    let mut table = Table::new(&[
        "case",
        "ours msg/s",
        "ours MiB/s",
        "ours delivered",
        "raw msg/s",
        "raw MiB/s",
        "raw delivered",
        "ours/raw",
        "runs",
        "spread ours / raw",
        "targets",
    ]);
    let mut lost = false;
    for size in [100, 64 * 1024] {
        for count in [5_000, 50_000] {
            let runs = if count <= 5_000 { SHORT_REPEATS } else { 1 };
            for qos in QOS_ALL {
                // Alternate so that a noisy moment hurts both sides alike.
                let (mut ours, mut raw) = (None, None);
                let (mut ours_rates, mut raw_rates) = (Runs::default(), Runs::default());
                for _ in 0..runs {
                    let o = run_job(port, Side::Ours, Side::Ours, qos, size, count, None).await?;
                    ours_rates.push(o.rate);
                    ours = Some(merge(ours, o));
                    let o = run_job(port, Side::Raw, Side::Ours, qos, size, count, None).await?;
                    raw_rates.push(o.rate);
                    raw = Some(merge(raw, o));
                }
                let (ours, raw) = (ours.unwrap_or_default(), raw.unwrap_or_default());
                let mib = |o: &Outcome| o.rate * size as f64 / (1024.0 * 1024.0);
                let ratio = if raw.rate > 0.0 {
                    ours.rate / raw.rate
                } else {
                    0.0
                };
                lost |= ours.delivered < ours.sent || raw.delivered < raw.sent;
                let mut missed = Vec::new();
                if ratio < 0.8 {
                    missed.push("< 80 % of raw".to_owned());
                }
                if count <= 5_000 && ours.delivered < ours.sent {
                    missed.push(format!("lost {}", ours.sent - ours.delivered));
                }
                let case = format!("{} × {}, {}", count, size_name(size), qos_name(qos));
                let verdict = if !missed.is_empty() {
                    crate::missed(format!(
                        "transport, {broker}, {case}: {}",
                        missed.join(", ")
                    ));
                    format!("missed: {}", missed.join(", "))
                } else if ours.delivered < ours.sent {
                    format!("met (lost {}: broker queue)", ours.sent - ours.delivered)
                } else {
                    "met".to_owned()
                };
                table.row(vec![
                    case,
                    format!("{:.0}", ours.rate),
                    format!("{:.1}", mib(&ours)),
                    ours.delivered(),
                    format!("{:.0}", raw.rate),
                    format!("{:.1}", mib(&raw)),
                    raw.delivered(),
                    format!("{:.0} %", ratio * 100.0),
                    ours_rates.count(),
                    format!("{} / {}", ours_rates.spread(), raw_rates.spread()),
                    verdict,
                ]);
            }
        }
    }
    table.print();
    println!(
        "\nTargets: ours ≥ 80 % of raw in every row; every message of a 5,000 burst delivered. \
         5,000-message rows: best rate and fewest deliveries of {SHORT_REPEATS} runs each. \
         {SPREAD_NOTE}"
    );
    if lost {
        println!(
            "Messages were lost in the broker, not in a client: every sender had all its \
             acknowledgements. mosquitto drops QoS 1/2 messages for a subscriber beyond \
             `max_queued_messages` (default 1000) without telling anyone; raise it (and \
             `max_queued_bytes`) for bursts larger than that, or pace the sender."
        );
    }
    Ok(())
}

/// `PACE_COUNT` messages of 100 B at `PACE_RATE` msg/s: one-way latency.
async fn paced_table(port: u16, broker: &str, combos: &[(Side, Side)]) -> Result<(), String> {
    println!(
        "\n### {PACE_COUNT} × 100 B at {PACE_RATE} msg/s through {broker}: one-way latency (ms)\n"
    );
    let mut table = Table::new(&[
        "case",
        "sender → receiver",
        "p50",
        "p90",
        "p99",
        "max",
        "> 1 ms",
        "delivered",
        "runs",
        "targets",
    ]);
    let name = |s: Side| match s {
        Side::Ours => "ours",
        Side::Raw => "raw",
    };
    for qos in QOS_ALL {
        for &(sender, receiver) in combos {
            let o = run_job(
                port,
                sender,
                receiver,
                qos,
                100,
                PACE_COUNT,
                Some(PACE_RATE),
            )
            .await?;
            let (p50, p99) = (o.percentile(0.5), o.percentile(0.99));
            let verdict = if sender == Side::Raw {
                "(reference)"
            } else if p50.is_some_and(|d| d <= Duration::from_micros(300))
                && p99.is_some_and(|d| d <= Duration::from_millis(1))
                && o.delivered == o.sent
            {
                "met"
            } else {
                crate::missed(format!(
                    "transport latency, {broker}, {}, {} → {}: p50 {} ms, p99 {} ms, {}",
                    qos_name(qos),
                    name(sender),
                    name(receiver),
                    ms(p50),
                    ms(p99),
                    o.delivered()
                ));
                "missed"
            };
            table.row(vec![
                qos_name(qos).to_owned(),
                format!("{} → {}", name(sender), name(receiver)),
                ms(p50),
                ms(o.percentile(0.9)),
                ms(p99),
                ms(o.latencies.last().copied()),
                o.latencies
                    .iter()
                    .filter(|d| **d > Duration::from_millis(1))
                    .count()
                    .to_string(),
                o.delivered(),
                "1".to_owned(),
                verdict.to_owned(),
            ]);
        }
    }
    table.print();
    println!(
        "\nTargets (ours as sender): p50 ≤ 0.3 ms, p99 ≤ 1 ms, all delivered. One run of \
         {PACE_COUNT} messages per row: the percentiles are its spread."
    );
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A mosquitto child process with its default settings on a loopback port, killed on drop.
struct Mosquitto {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Mosquitto {
    async fn start_blocking(extra: &'static str) -> Result<Mosquitto, String> {
        tokio::task::spawn_blocking(move || Mosquitto::start(extra))
            .await
            .map_err(|e| format!("starting mosquitto: {e}"))?
    }

    /// Starts mosquitto with its defaults plus the `extra` config lines, and waits until it
    /// listens.
    fn start(extra: &str) -> Result<Mosquitto, String> {
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        let binary = path
            .into_iter()
            .chain([PathBuf::from("/usr/sbin")])
            .map(|d| d.join("mosquitto"))
            .find(|p| p.is_file())
            .ok_or(
                "no mosquitto binary on PATH or in /usr/sbin; install it: apt-get install -y mosquitto",
            )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("ecci-bench-mosquitto-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}"),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let mut m = Mosquitto { child, dir, port };
        let ready = Instant::now() + SETUP;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(m);
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                return Err(format!("mosquitto exited at start: {status}"));
            }
            if Instant::now() >= ready {
                return Err(format!("mosquitto does not listen on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn run() -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "{cores} cores, load average {} at the start (other processes skew the tails).\n",
        load_average()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let all = [
        (Side::Ours, Side::Ours),
        (Side::Raw, Side::Ours),
        (Side::Raw, Side::Raw),
    ];
    runtime.block_on(async {
        let mosquitto = Mosquitto::start_blocking("").await?;
        let default = "mosquitto (default config)";
        burst_table(mosquitto.port, default).await?;
        paced_table(mosquitto.port, default, &all).await?;
        drop(mosquitto);

        let mosquitto = Mosquitto::start_blocking("set_tcp_nodelay true\n").await?;
        paced_table(
            mosquitto.port,
            "mosquitto with `set_tcp_nodelay true`",
            &[(Side::Raw, Side::Raw), (Side::Ours, Side::Ours)],
        )
        .await?;
        drop(mosquitto);

        println!();
        let broker = Broker::start()
            .await
            .map_err(|e| format!("embedded broker: {e}"))?;
        burst_table(broker.port(), "the embedded broker").await?;
        paced_table(broker.port(), "the embedded broker", &all).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(delivered: u32, elapsed_ms: u64, latencies_us: &[u64]) -> Outcome {
        let mut o = Outcome {
            sent: 10,
            delivered,
            elapsed: Duration::from_millis(elapsed_ms),
            latencies: latencies_us
                .iter()
                .map(|u| Duration::from_micros(*u))
                .collect(),
            ..Outcome::default()
        };
        o.rate = o.measured_rate();
        o
    }

    #[track_caller]
    fn check(latencies_us: &[u64], p: f64, expected_us: Option<u64>) {
        let o = outcome(0, 0, latencies_us);
        assert_eq!(o.percentile(p), expected_us.map(Duration::from_micros));
    }

    #[test]
    fn percentiles() {
        check(&[], 0.5, None);
        check(&[7], 0.0, Some(7));
        check(&[7], 0.99, Some(7));
        check(&[1, 2, 3, 4], 0.5, Some(2));
        check(&[1, 2, 3, 4], 0.99, Some(4));
        let hundred: Vec<u64> = (1..=100).collect();
        check(&hundred, 0.5, Some(50));
        check(&hundred, 0.99, Some(99));
        check(&hundred, 1.0, Some(100));
    }

    #[test]
    fn payload_header_round_trips() {
        let base = Instant::now();
        for size in [0, HEADER, 100, 64 * 1024] {
            let p = payload(42, base, size);
            assert_eq!(p.len(), size.max(HEADER));
            let (seq, sent_ns) = header(&p).expect("header");
            assert_eq!(seq, 42);
            assert!(Duration::from_nanos(sent_ns) <= base.elapsed());
        }
        assert_eq!(header(&[1, 2, 3]), None);
    }

    #[test]
    fn merge_keeps_best_rate_and_worst_delivery() {
        let fast_lossy = outcome(8, 100, &[]);
        let slow_complete = outcome(10, 1_000, &[]);
        let merged = merge(Some(slow_complete), fast_lossy);
        assert_eq!(merged.delivered, 8);
        assert_eq!(merged.rate, 80.0);
        assert_eq!(merge(None, outcome(3, 5, &[])).delivered, 3);
    }
}
