//! Inbound size limit: a PUBLISH beyond `max_inbound_packet` is skipped as it arrives and
//! reported as `Event::TooLarge` (topic and size); the connection and the messages after
//! it are kept, at every QoS. Against the embedded broker always, and against the mosquitto
//! of `ECCI_TEST_BROKER` when it is set (CI).
#![cfg(feature = "test-util")]

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{WAIT, next_message};
use ecci_transport::{Event, Events, Message, MqttConfig, MqttTransport, QoS, Transport};
use tokio::time::timeout;

const LIMIT: usize = 64 * 1024;

fn mosquitto() -> Option<(String, u16)> {
    let Ok(addr) = std::env::var("ECCI_TEST_BROKER") else {
        // Past libtest's capture, so the skip shows for a passing test too.
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_BROKER",
            "ECCI_TEST_BROKER unset (mosquitto half)",
        );
        return None;
    };
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    Some((host.to_owned(), port.parse().expect("a port")))
}

/// The next event that is not a message's: what the transport reports besides data.
async fn next_event(events: &mut Events) -> Event {
    timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("transport open")
}

async fn oversized_messages_are_skipped_and_the_connection_kept(host: &str, port: u16) {
    let prefix = format!(
        "sizes/{}/{}",
        std::process::id(),
        ecci_transport::client_id()
    );
    let mut sub_config = MqttConfig::new(host, port);
    sub_config.max_inbound_packet = LIMIT;
    let sub = MqttTransport::start(sub_config);
    let mut events = sub.take_events().unwrap();
    timeout(
        WAIT,
        sub.subscribe(&format!("{prefix}/#"), QoS::ExactlyOnce),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(next_event(&mut events).await, Event::Connected);

    let publisher = MqttTransport::start(MqttConfig::new(host, port));
    // Per QoS: one just under the limit (kept), one far over it (skipped), one small.
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let q = qos as u8;
        let fits = LIMIT - 200;
        let over = 3 * 1024 * 1024 + 17;
        for (name, len) in [("fits", fits), ("over", over), ("small", 10)] {
            let m = Message::new(format!("{prefix}/{q}/{name}"), vec![q; len], qos);
            let receipt = publisher.publish(m).await.unwrap();
            timeout(WAIT, receipt).await.unwrap().unwrap();
        }
        let fits_msg = next_message(&mut events).await;
        assert_eq!(fits_msg.topic, format!("{prefix}/{q}/fits"));
        assert_eq!(fits_msg.payload.len(), fits);
        match next_event(&mut events).await {
            Event::TooLarge { topic, size, max } => {
                assert_eq!(topic, format!("{prefix}/{q}/over"));
                assert!(size > over && size < over + 200, "{size}");
                assert_eq!(max, LIMIT);
            }
            other => panic!("expected TooLarge at qos {q}, got {other:?}"),
        }
        let small = next_message(&mut events).await;
        assert_eq!(small.topic, format!("{prefix}/{q}/small"));
        assert_eq!(&small.payload[..], &[q; 10][..]);
    }
    let m = sub.metrics();
    assert_eq!((m.too_large, m.reconnects), (3, 0), "{m:?}");
    assert!(m.connected);
    // Nothing else happened: no disconnect, no duplicate.
    assert_eq!(events.try_recv(), None);
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_oversized_inbound() {
    let broker = Broker::start().await.unwrap();
    oversized_messages_are_skipped_and_the_connection_kept("127.0.0.1", broker.port()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_oversized_inbound() {
    let Some((host, port)) = mosquitto() else {
        return;
    };
    oversized_messages_are_skipped_and_the_connection_kept(&host, port).await;
}

/// The remaining-length bytes of MQTT (§2.2.3).
fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A QoS 2 PUBLISH of `payload` bytes on `topic` with packet id `pkid`.
fn publish_qos2(topic: &str, pkid: u16, payload: usize, dup: bool) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + topic.len() + payload);
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&pkid.to_be_bytes());
    body.resize(body.len() + payload, 0xab);
    let mut packet = vec![if dup { 0x3c } else { 0x34 }];
    packet.extend(remaining_length(body.len()));
    packet.extend(body);
    packet
}

/// Reads one whole packet the client sent.
async fn read_packet(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut header = vec![stream.read_u8().await.unwrap()];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = stream.read_u8().await.unwrap();
        header.push(b);
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    header.extend(body);
    header
}

/// A broker that sends an oversized QoS 2 PUBLISH in odd-sized pieces (the fixed header
/// split too), then the same again with DUP before releasing it, then a small message:
/// the client reports it once, acknowledges both copies, completes the QoS 2 flow, and
/// keeps the connection for the small message.
#[tokio::test]
async fn an_oversized_qos2_publish_split_anywhere_is_skipped_once() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = MqttConfig::new("127.0.0.1", port);
    config.max_inbound_packet = 1000;
    let client = MqttTransport::start(config);
    let mut events = client.take_events().unwrap();
    let (mut broker, _) = timeout(WAIT, listener.accept()).await.unwrap().unwrap();
    assert_eq!(read_packet(&mut broker).await[0], 0x10, "CONNECT");
    broker.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
    assert_eq!(next_event(&mut events).await, Event::Connected);

    let big = publish_qos2("t/big", 7, 5000, false);
    let size = big.len();
    // Pieces of 1, 2, 3, … bytes: every boundary lands somewhere new.
    let mut rest = &big[..];
    let mut n = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        broker.write_all(piece).await.unwrap();
        broker.flush().await.unwrap();
        rest = tail;
        n = n % 97 + 1;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        read_packet(&mut broker).await,
        [0x50, 0x02, 0x00, 0x07],
        "PUBREC"
    );
    broker
        .write_all(&publish_qos2("t/big", 7, 5000, true))
        .await
        .unwrap();
    assert_eq!(
        read_packet(&mut broker).await,
        [0x50, 0x02, 0x00, 0x07],
        "PUBREC again"
    );
    broker.write_all(&[0x62, 0x02, 0x00, 0x07]).await.unwrap();
    assert_eq!(
        read_packet(&mut broker).await,
        [0x70, 0x02, 0x00, 0x07],
        "PUBCOMP"
    );
    // A QoS 0 message right behind it.
    let mut small = vec![0x30, 0x0b, 0x00, 0x07];
    small.extend_from_slice(b"t/smallhi");
    broker.write_all(&small).await.unwrap();

    assert_eq!(
        next_event(&mut events).await,
        Event::TooLarge {
            topic: "t/big".to_owned(),
            size,
            max: 1000
        }
    );
    match next_event(&mut events).await {
        Event::Message(m) => {
            assert_eq!((m.topic.as_str(), &m.payload[..]), ("t/small", &b"hi"[..]))
        }
        other => panic!("expected the small message, got {other:?}"),
    }
    assert_eq!(events.try_recv(), None, "reported once, no disconnect");
    let m = client.metrics();
    assert_eq!((m.too_large, m.received, m.reconnects), (1, 1, 0));
    assert!(m.connected);
    drop(broker);
    client.close().await;
}

/// A consumer that does not take its events holds the transport to its byte budget: it
/// stops reading from the broker (which keeps the rest), and everything arrives, in order,
/// once the consumer reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_events_are_bounded_in_bytes() {
    const MESSAGE: usize = 10_000;
    const COUNT: usize = 60;
    let broker = Broker::start().await.unwrap();
    let mut sub_config = MqttConfig::new("127.0.0.1", broker.port());
    sub_config.event_queue_bytes = 100_000;
    let sub = MqttTransport::start(sub_config);
    let mut events = sub.take_events().unwrap();
    timeout(WAIT, sub.subscribe("budget/#", QoS::AtLeastOnce))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_event(&mut events).await, Event::Connected);

    let publisher = MqttTransport::start(MqttConfig::new("127.0.0.1", broker.port()));
    for i in 0..COUNT {
        let m = Message::new("budget/x", vec![i as u8; MESSAGE], QoS::AtLeastOnce);
        let receipt = publisher.publish(m).await.unwrap();
        timeout(WAIT, receipt).await.unwrap().unwrap();
    }
    // The broker has them all; wait until it holds what the subscriber does not read.
    timeout(WAIT, async {
        while broker.queued_messages() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the broker queues what the subscriber does not take");
    let read = sub.metrics().received as usize;
    // The budget (10 messages) plus what one read of the socket held (64 KiB: 7 more).
    assert!(
        read <= 100_000 / MESSAGE + 8,
        "read {read} messages past the budget"
    );
    for i in 0..COUNT {
        let m = next_message(&mut events).await;
        assert_eq!((m.payload.len(), m.payload[0]), (MESSAGE, i as u8));
    }
    assert_eq!(sub.metrics().received as usize, COUNT);
    publisher.close().await;
    sub.close().await;
}
