//! The embedded broker's memory stays bounded: a subscriber that stops reading gets at
//! most the queue limit kept for it (plus 20 in flight at QoS ≥ 1); the rest is dropped,
//! counted and noticed once per overflow, while the publisher is never held up and a
//! subscriber that keeps up still gets everything.
#![cfg(feature = "test-util")]

use std::sync::{Mutex, OnceLock};

use bytes::BytesMut;
use ecci_transport::broker::Broker;
use ecci_transport::conformance::{WAIT, next_message, wait_for};
use ecci_transport::{Event, Events, Message, MqttConfig, MqttTransport, QoS, Transport};
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::{self, QoS as WireQoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// The queue limit of these tests, far below the default so that floods stay small.
const LIMIT: usize = 100;
/// Messages per batch: fewer than `LIMIT`, so that a subscriber that keeps up between
/// batches never comes near it.
const BATCH: usize = 50;

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

/// Keeps every record logged in this test binary.
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        records.push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

/// How many warnings name `client`.
fn warnings_about(client: &str) -> usize {
    let records = capture().0.lock().unwrap_or_else(|e| e.into_inner());
    records
        .iter()
        .filter(|(level, text)| *level == log::Level::Warn && text.contains(client))
        .count()
}

/// A hand-driven MQTT client on a small receive buffer, so that it can stop reading.
struct RawClient {
    stream: TcpStream,
    rbuf: BytesMut,
}

impl RawClient {
    async fn subscribe(broker: &Broker, client_id: &str, filter: &str, qos: WireQoS) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = bounded("connect", socket.connect(broker.addr()))
            .await
            .unwrap();
        let mut client = RawClient {
            stream,
            rbuf: BytesMut::new(),
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 0;
        client.send(Packet::Connect(connect)).await;
        assert!(matches!(client.next().await, Packet::ConnAck(_)));
        let mut subscribe = Subscribe::new(filter, qos);
        subscribe.pkid = 1;
        client.send(Packet::Subscribe(subscribe)).await;
        assert!(matches!(client.next().await, Packet::SubAck(_)));
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, usize::MAX).unwrap();
        bounded("write", self.stream.write_all(&buf)).await.unwrap();
    }

    async fn next(&mut self) -> Packet {
        loop {
            match Packet::read(&mut self.rbuf, 1 << 20) {
                Ok(packet) => return packet,
                Err(mqttbytes::Error::InsufficientBytes(_)) => {
                    let n = bounded("read", self.stream.read_buf(&mut self.rbuf))
                        .await
                        .unwrap();
                    assert!(n > 0, "the broker closed the connection");
                }
                Err(e) => panic!("bad packet from the broker: {e}"),
            }
        }
    }

    /// The next PUBLISH, acknowledged when `ack`.
    async fn next_publish(&mut self, ack: bool) -> Publish {
        loop {
            if let Packet::Publish(p) = self.next().await {
                if ack && p.qos == WireQoS::AtLeastOnce {
                    self.send(Packet::PubAck(PubAck::new(p.pkid))).await;
                }
                return p;
            }
        }
    }
}

fn config(broker: &Broker) -> MqttConfig {
    MqttConfig::new("127.0.0.1", broker.port())
}

async fn subscriber(broker: &Broker, filter: &str) -> (MqttTransport, Events) {
    let t = MqttTransport::start(config(broker));
    let mut events = t.take_events().unwrap();
    bounded("subscribe", t.subscribe(filter, QoS::AtLeastOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    (t, events)
}

/// Publishes `count` messages numbered from `first` (each `size` bytes, the number first),
/// `BATCH` at a time, waiting after each batch until the broker acknowledged it and
/// `follower` received it, in order.
/// Reads `kept` messages from `stuck`, each numbered higher than the one before, then
/// publishes a marker and checks that it is the very next message: the broker kept
/// exactly `kept` for it.
async fn read_kept_then_marker(
    stuck: &mut RawClient,
    kept: u64,
    publisher: &MqttTransport,
    follower: &mut Events,
    topic: &str,
) {
    let mut last = None;
    for _ in 0..kept {
        let p = stuck.next_publish(true).await;
        let n = u32::from_be_bytes(p.payload[..4].try_into().unwrap());
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
    }
    flood(publisher, follower, topic, u32::MAX - 1, 1, 4).await;
    let marker = stuck.next_publish(true).await;
    assert_eq!(marker.payload[..4], (u32::MAX - 1).to_be_bytes());
}

async fn flood(
    publisher: &MqttTransport,
    follower: &mut Events,
    topic: &str,
    first: u32,
    count: u32,
    size: usize,
) {
    let mut next = first;
    while next < first + count {
        let batch = (first + count - next).min(BATCH as u32);
        let mut receipts = Vec::new();
        for n in next..next + batch {
            let mut payload = n.to_be_bytes().to_vec();
            payload.resize(size.max(4), 0);
            let m = Message::new(topic, payload, QoS::AtLeastOnce);
            receipts.push(bounded("publish", publisher.publish(m)).await.unwrap());
        }
        for r in receipts {
            bounded("receipt", r).await.unwrap();
        }
        for n in next..next + batch {
            let m = next_message(follower).await;
            assert_eq!(m.payload[..4], n.to_be_bytes(), "the follower missed {n}");
        }
        next += batch;
    }
}

/// A QoS 1 subscriber that neither reads nor acknowledges has 20 messages in flight and
/// `LIMIT` queued; everything else is dropped and counted, with one warning per overflow,
/// and once it reads again it gets exactly what was not dropped. Twice, for two overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_qos1_subscriber_costs_at_most_the_limit() {
    const SENT: u32 = 500;
    const STUCK: &str = "stalled-qos1";
    capture();
    let broker = Broker::start().await.unwrap();
    broker.set_max_queued_messages(LIMIT);
    let topic = "bounds/qos1";
    let mut stuck = RawClient::subscribe(&broker, STUCK, topic, WireQoS::AtLeastOnce).await;
    let (follower, mut follower_events) = subscriber(&broker, topic).await;
    let publisher = MqttTransport::start(config(&broker));

    let mut dropped_before = 0;
    for episode in 0..2u32 {
        let first = episode * SENT;
        flood(&publisher, &mut follower_events, topic, first, SENT, 4).await;
        // In flight is capped at 20 even though the socket has room for many more small
        // messages: the broker holds the rest back, so its queue is full.
        let mut in_flight = Vec::new();
        for _ in 0..20 {
            in_flight.push(stuck.next_publish(false).await);
        }
        assert!(
            timeout(std::time::Duration::from_millis(200), stuck.next())
                .await
                .is_err(),
            "a 21st message was sent before the first was acknowledged"
        );
        assert_eq!(broker.queued_messages(), LIMIT);
        assert_eq!(broker.max_queued_seen(), LIMIT);
        let dropped = broker.dropped_messages() - dropped_before;
        assert_eq!(dropped, u64::from(SENT) - 20 - LIMIT as u64);
        assert_eq!(warnings_about(STUCK), episode as usize + 1);

        // Reading again: the held-back messages come, in order, and nothing else.
        for p in &in_flight {
            stuck.send(Packet::PubAck(PubAck::new(p.pkid))).await;
        }
        read_kept_then_marker(
            &mut stuck,
            LIMIT as u64,
            &publisher,
            &mut follower_events,
            topic,
        )
        .await;
        assert_eq!(broker.queued_messages(), 0);
        dropped_before = broker.dropped_messages();
    }
    let m = publisher.metrics();
    assert_eq!((m.reconnects, m.dropped), (0, 0), "{m:?}");
    publisher.close().await;
    follower.close().await;
}

/// A QoS 0 subscriber that stops reading fills its socket, then at most 64 KiB of write
/// buffer, then `LIMIT` queued messages; the rest is dropped and counted, and when it
/// reads again it gets exactly the messages that were not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_qos0_subscriber_costs_at_most_the_limit() {
    // Far more than the kernel's socket buffers hold (a few MiB on loopback).
    const SENT: u32 = 1_500;
    const SIZE: usize = 8 * 1024;
    const STUCK: &str = "stalled-qos0";
    capture();
    let broker = Broker::start().await.unwrap();
    broker.set_max_queued_messages(LIMIT);
    let topic = "bounds/qos0";
    let mut stuck = RawClient::subscribe(&broker, STUCK, topic, WireQoS::AtMostOnce).await;
    let (follower, mut follower_events) = subscriber(&broker, topic).await;
    let publisher = MqttTransport::start(config(&broker));

    flood(&publisher, &mut follower_events, topic, 0, SENT, SIZE).await;
    assert!(broker.queued_messages() <= LIMIT);
    assert_eq!(broker.max_queued_seen(), LIMIT);
    let dropped = broker.dropped_messages();
    assert!(dropped > 0, "the flood did not overflow the queue");
    assert_eq!(warnings_about(STUCK), 1);

    // Reading again, it gets every message that was not dropped, in order, then nothing
    // more: the next one is a marker sent now.
    read_kept_then_marker(
        &mut stuck,
        u64::from(SENT) - dropped,
        &publisher,
        &mut follower_events,
        topic,
    )
    .await;
    assert_eq!(broker.dropped_messages(), dropped);
    assert_eq!(broker.queued_messages(), 0);
    let m = publisher.metrics();
    assert_eq!((m.reconnects, m.dropped), (0, 0), "{m:?}");
    publisher.close().await;
    follower.close().await;
}

/// A persistent session's queue is bounded while it is away, too, and it gets what was
/// kept when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_persistent_session_keeps_at_most_the_limit() {
    const SENT: u32 = 300;
    let broker = Broker::start().await.unwrap();
    broker.set_max_queued_messages(LIMIT);
    let topic = "bounds/away";
    let mut away = config(&broker);
    away.clean_session = false;
    away.client_id = "bounds-away".to_owned();
    let t = MqttTransport::start(away.clone());
    let mut events = t.take_events().unwrap();
    bounded("subscribe", t.subscribe(topic, QoS::AtLeastOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    t.close().await;
    let (follower, mut follower_events) = subscriber(&broker, topic).await;
    let publisher = MqttTransport::start(config(&broker));

    flood(&publisher, &mut follower_events, topic, 0, SENT, 4).await;
    assert_eq!(broker.queued_messages(), LIMIT);
    assert_eq!(broker.dropped_messages(), u64::from(SENT) - LIMIT as u64);

    let back = MqttTransport::start(away);
    let mut events = back.take_events().unwrap();
    for n in 0..LIMIT as u32 {
        let m = next_message(&mut events).await;
        assert_eq!(m.payload[..4], n.to_be_bytes());
    }
    back.close().await;
    publisher.close().await;
    follower.close().await;
}
