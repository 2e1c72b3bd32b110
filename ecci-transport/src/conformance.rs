//! The conformance suite every [`Transport`] passes, run by test files against the in-memory
//! transport, [`crate::MqttTransport`] with the embedded broker, and
//! `MqttTransport` with mosquitto.
//!
//! A test file implements [`Harness`] and expands [`conformance_tests!`](crate::conformance_tests)
//! with an async function returning `Option<impl Harness>` (`None`: skip, e.g. no broker
//! configured). Every case uses topics of its own, so cases can share a broker and run in
//! parallel. Waits are bounded: a case fails after [`WAIT`] without progress.
//!
//! The MQTT harnesses here ([`MqttHarness`]) drop connections the way any MQTT 3.1.1 broker
//! allows: by connecting a second client with the same client id, which makes the broker
//! close the first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::codec::{self, Decoded};
use crate::memory::{Hub, MemoryConfig};
use crate::{
    Event, Events, Message, MqttConfig, MqttTransport, PublishError, QoS, Transport,
    TryPublishError,
};

/// How long a case waits for any one thing before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// What the suite needs from the setup under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new transport of the kind under test, connected or connecting to the shared broker.
    async fn transport(&self) -> Arc<dyn Transport>;

    /// A transport that cannot reach a broker, with room for `queue` waiting messages.
    async fn unreachable(&self, queue: usize) -> Arc<dyn Transport>;

    /// Drops the connection of every transport this harness made; they reconnect by themselves
    /// (the in-memory hub reconnects them at once).
    async fn drop_connections(&self);
}

/// Expands to one `#[tokio::test]` per conformance case, each calling `$harness().await` and
/// skipping the case when it returns `None`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:path) => {
        $crate::conformance_tests!(@case $harness,
            round_trip_qos0 => |h| $crate::conformance::round_trip(h, $crate::QoS::AtMostOnce),
            round_trip_qos1 => |h| $crate::conformance::round_trip(h, $crate::QoS::AtLeastOnce),
            round_trip_qos2 => |h| $crate::conformance::round_trip(h, $crate::QoS::ExactlyOnce),
            wildcards => |h| $crate::conformance::wildcards(h),
            receipts_resolve => |h| $crate::conformance::receipts_resolve(h),
            try_publish_hands_back_when_full => |h| $crate::conformance::try_publish_when_full(h),
            unsubscribe_stops_delivery => |h| $crate::conformance::unsubscribe_stops_delivery(h),
            large_payload => |h| $crate::conformance::large_payload(h),
            too_large_payload => |h| $crate::conformance::too_large_payload(h),
            subscription_survives_reconnect => |h| $crate::conformance::subscription_survives_reconnect(h),
            burst_qos2_in_order => |h| $crate::conformance::burst_in_order(h, 5_000),
        );
    };
    (@case $harness:path, $($name:ident => |$h:ident| $body:expr),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(harness) = $harness().await {
                    let $h = &harness;
                    $body.await;
                }
            }
        )+
    };
}

/// A topic prefix no other case or run uses.
pub fn unique_prefix(case: &str) -> String {
    format!("conformance/{case}/{:016x}", crate::backoff::random_u64())
}

/// The next inbound message, skipping connection events; panics after [`WAIT`].
pub async fn next_message(events: &mut Events) -> Message {
    loop {
        match timeout(WAIT, events.recv()).await {
            Ok(Some(Event::Message(m))) => return m,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// Waits for `want`, skipping messages; panics after [`WAIT`].
pub async fn wait_for(events: &mut Events, want: fn(&Event) -> bool) {
    loop {
        match timeout(WAIT, events.recv()).await {
            Ok(Some(e)) if want(&e) => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("event not seen within {WAIT:?}"),
        }
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {WAIT:?}"),
    }
}

/// A subscriber on `filter` and a publisher.
async fn pair(
    h: &dyn Harness,
    filter: &str,
    qos: QoS,
) -> (Arc<dyn Transport>, Events, Arc<dyn Transport>) {
    let sub = h.transport().await;
    let events = sub.take_events().expect("events taken once");
    within("subscribe", sub.subscribe(filter, qos))
        .await
        .expect("subscribe");
    let publisher = h.transport().await;
    (sub, events, publisher)
}

/// A message published at `qos` arrives once, intact, at `qos`.
pub async fn round_trip(h: &dyn Harness, qos: QoS) {
    let topic = format!("{}/t", unique_prefix("round_trip"));
    let (sub, mut events, publisher) = pair(h, &topic, QoS::ExactlyOnce).await;
    let sent = Message::new(topic.clone(), Bytes::from_static(b"\x80\x04hello\x00"), qos);
    let receipt = within("publish", publisher.publish(sent.clone()))
        .await
        .expect("publish");
    within("receipt", receipt).await.expect("receipt");
    let got = next_message(&mut events).await;
    assert_eq!(
        (got.topic, got.payload, got.qos, got.retain),
        (sent.topic, sent.payload, qos, false)
    );
    if qos != QoS::AtMostOnce {
        // Sent once, so nothing else may follow; a marker proves the stream is drained.
        let marker = Message::new(topic, "marker", QoS::ExactlyOnce);
        let _unawaited = within("publish", publisher.publish(marker))
            .await
            .expect("publish");
        assert_eq!(&next_message(&mut events).await.payload[..], b"marker");
    }
    publisher.close().await;
    sub.close().await;
}

/// `+` and `#` match as MQTT says, and a delivery takes the lower of the two QoS.
pub async fn wildcards(h: &dyn Harness) {
    let p = unique_prefix("wildcards");
    let sub = h.transport().await;
    let mut events = sub.take_events().expect("events");
    within(
        "subscribe",
        sub.subscribe(&format!("{p}/+/x"), QoS::AtLeastOnce),
    )
    .await
    .expect("subscribe");
    within(
        "subscribe",
        sub.subscribe(&format!("{p}/deep/#"), QoS::ExactlyOnce),
    )
    .await
    .expect("subscribe");
    let publisher = h.transport().await;
    let topics = [
        ("a/x", true),
        ("a/y", false),
        ("a/b/x", false),
        ("deep", true),
        ("deep/1/2/3", true),
        ("deeper/1", false),
        ("b/x", true),
    ];
    for (t, _) in topics {
        let m = Message::new(format!("{p}/{t}"), t.to_owned(), QoS::ExactlyOnce);
        let _unawaited = within("publish", publisher.publish(m))
            .await
            .expect("publish");
    }
    for (t, _) in topics.iter().filter(|(_, matches)| *matches) {
        let got = next_message(&mut events).await;
        assert_eq!(got.topic, format!("{p}/{t}"));
        let want_qos = if t.ends_with("/x") {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        assert_eq!(got.qos, want_qos, "{t}");
    }
    // Nothing else was delivered: the next message is this marker.
    let marker = Message::new(format!("{p}/deep/end"), "end", QoS::ExactlyOnce);
    let _unawaited = within("publish", publisher.publish(marker))
        .await
        .expect("publish");
    assert_eq!(
        next_message(&mut events).await.topic,
        format!("{p}/deep/end")
    );
    publisher.close().await;
    sub.close().await;
}

/// Receipts resolve at every QoS, and the counters say so.
pub async fn receipts_resolve(h: &dyn Harness) {
    let p = unique_prefix("receipts");
    let t = h.transport().await;
    let mut receipts = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..50 {
            let m = Message::new(format!("{p}/{i}"), vec![1u8; 100], qos);
            receipts.push(within("publish", t.publish(m)).await.expect("publish"));
        }
    }
    for r in receipts {
        within("receipt", r).await.expect("receipt");
    }
    let m = t.metrics();
    assert!(m.acknowledged >= 150, "{m:?}");
    assert_eq!((m.in_flight, m.queued), (0, 0), "{m:?}");
    t.close().await;
}

/// With no broker, exactly `queue` messages are taken; the next one is handed back intact;
/// closing fails the queued receipts.
pub async fn try_publish_when_full(h: &dyn Harness) {
    let queue = 8;
    let t = h.unreachable(queue).await;
    let mut receipts = Vec::new();
    for i in 0..queue {
        let m = Message::new(format!("nowhere/{i}"), "x", QoS::ExactlyOnce);
        receipts.push(t.try_publish(m).expect("room in the queue"));
    }
    let extra = Message::new("nowhere/extra", "handed back", QoS::AtLeastOnce).with_retain(true);
    match t.try_publish(extra.clone()) {
        Err(TryPublishError::Full(m)) => assert_eq!(m, extra),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(t.metrics().queued, queue);
    within("close", t.close()).await;
    for r in receipts {
        assert_eq!(within("receipt", r).await, Err(PublishError::Closed));
    }
    match t.try_publish(extra.clone()) {
        Err(TryPublishError::Closed(m)) => assert_eq!(m, extra),
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// After unsubscribe returned, nothing matching only that filter arrives.
pub async fn unsubscribe_stops_delivery(h: &dyn Harness) {
    let p = unique_prefix("unsubscribe");
    let (sub, mut events, publisher) = pair(h, &format!("{p}/a"), QoS::ExactlyOnce).await;
    within(
        "subscribe",
        sub.subscribe(&format!("{p}/b"), QoS::ExactlyOnce),
    )
    .await
    .expect("subscribe");
    let send =
        |t: &str, body: &'static str| Message::new(format!("{p}/{t}"), body, QoS::ExactlyOnce);
    let _unawaited = within("publish", publisher.publish(send("a", "1")))
        .await
        .expect("publish");
    assert_eq!(&next_message(&mut events).await.payload[..], b"1");
    within("unsubscribe", sub.unsubscribe(&format!("{p}/a")))
        .await
        .expect("unsubscribe");
    let _unawaited = within("publish", publisher.publish(send("a", "2")))
        .await
        .expect("publish");
    let _unawaited = within("publish", publisher.publish(send("b", "3")))
        .await
        .expect("publish");
    // One publisher's messages arrive in order, so "2" would have come before "3".
    assert_eq!(&next_message(&mut events).await.payload[..], b"3");
    publisher.close().await;
    sub.close().await;
}

/// A 1 MiB payload arrives intact.
pub async fn large_payload(h: &dyn Harness) {
    let topic = format!("{}/big", unique_prefix("large"));
    let (sub, mut events, publisher) = pair(h, &topic, QoS::AtLeastOnce).await;
    let payload: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let receipt = within(
        "publish",
        publisher.publish(Message::new(topic, payload.clone(), QoS::AtLeastOnce)),
    )
    .await
    .expect("publish");
    within("receipt", receipt).await.expect("receipt");
    assert_eq!(next_message(&mut events).await.payload, payload);
    publisher.close().await;
    sub.close().await;
}

/// A payload over the maximum packet size is refused at once with a clear error.
pub async fn too_large_payload(h: &dyn Harness) {
    let t = h.transport().await;
    // One byte more than MQTT's largest packet holds: zeroed memory the OS maps lazily,
    // so the test costs no RAM.
    let m = Message::new("too/large", vec![0u8; 268_435_455], QoS::ExactlyOnce);
    match t.publish(m.clone()).await {
        Err(PublishError::TooLarge { size, max }) => assert!(size > max, "{size} <= {max}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match t.try_publish(m.clone()) {
        Err(TryPublishError::Invalid(back, PublishError::TooLarge { .. })) => assert_eq!(back, m),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let msg = PublishError::TooLarge { size: 2, max: 1 }.to_string();
    assert!(msg.contains("maximum packet size"), "{msg}");
    t.close().await;
}

/// After the connection drops, the subscription is made again and messages flow.
pub async fn subscription_survives_reconnect(h: &dyn Harness) {
    let topic = format!("{}/t", unique_prefix("resubscribe"));
    let (sub, mut events, publisher) = pair(h, &topic, QoS::ExactlyOnce).await;
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    h.drop_connections().await;
    wait_for(&mut events, |e| matches!(e, Event::Disconnected(_))).await;
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    let receipt = within(
        "publish",
        publisher.publish(Message::new(topic, "again", QoS::ExactlyOnce)),
    )
    .await
    .expect("publish");
    within("receipt", receipt).await.expect("receipt");
    assert_eq!(&next_message(&mut events).await.payload[..], b"again");
    assert!(sub.metrics().reconnects >= 1, "{:?}", sub.metrics());
    publisher.close().await;
    sub.close().await;
}

/// `count` QoS 2 messages published back to back all arrive, in order, once.
pub async fn burst_in_order(h: &dyn Harness, count: u32) {
    let topic = format!("{}/t", unique_prefix("burst"));
    let (sub, mut events, publisher) = pair(h, &topic, QoS::ExactlyOnce).await;
    let producer = {
        let publisher = Arc::clone(&publisher);
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut receipts = Vec::with_capacity(count as usize);
            for i in 0..count {
                let m = Message::new(topic.clone(), i.to_be_bytes().to_vec(), QoS::ExactlyOnce);
                receipts.push(publisher.publish(m).await);
            }
            for r in receipts {
                r?.await?;
            }
            Ok::<(), PublishError>(())
        })
    };
    for i in 0..count {
        let m = next_message(&mut events).await;
        assert_eq!(
            m.payload[..],
            i.to_be_bytes(),
            "message {i} out of order or lost"
        );
    }
    within("receipts", producer)
        .await
        .expect("producer task")
        .expect("receipts");
    let m = publisher.metrics();
    assert!(m.in_flight <= 20, "{m:?}");
    publisher.close().await;
    sub.close().await;
}

/// The harness for the in-memory transport.
#[derive(Debug, Default)]
pub struct MemoryHarness {
    hub: Hub,
}

#[async_trait]
impl Harness for MemoryHarness {
    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.hub.transport())
    }

    async fn unreachable(&self, queue: usize) -> Arc<dyn Transport> {
        let t = self.hub.transport_with(MemoryConfig {
            queue,
            ..MemoryConfig::default()
        });
        t.drop_connection();
        Arc::new(t)
    }

    async fn drop_connections(&self) {
        self.hub.disconnect_all();
        self.hub.reconnect_all();
    }
}

/// The harness for [`MqttTransport`] against a broker at `host:port`.
#[derive(Debug)]
pub struct MqttHarness {
    host: String,
    port: u16,
    client_ids: Mutex<Vec<String>>,
}

impl MqttHarness {
    /// A harness for the broker at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> MqttHarness {
        MqttHarness {
            host: host.into(),
            port,
            client_ids: Mutex::new(Vec::new()),
        }
    }

    /// A harness for `ECCI_TEST_BROKER=host:port`; `None` when it is unset (after printing
    /// `skipped: …` to stderr, see [`skip::missing`](crate::skip::missing)), and a panic when
    /// it is unset but `ECCI_REQUIRE_BROKER=1` (CI), or malformed.
    pub fn from_env() -> Option<MqttHarness> {
        match std::env::var("ECCI_TEST_BROKER") {
            Ok(addr) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h, p.parse().ok()?)))
                    .unwrap_or_else(|| panic!("ECCI_TEST_BROKER={addr:?} is not host:port"));
                Some(MqttHarness::new(host, port))
            }
            Err(_) => {
                crate::skip::missing(
                    "ECCI_REQUIRE_BROKER",
                    "ECCI_TEST_BROKER unset (start a mosquitto with .ci/start-mosquitto.sh)",
                );
                None
            }
        }
    }

    /// The configuration this harness gives its transports.
    pub fn config(&self) -> MqttConfig {
        let mut c = MqttConfig::new(self.host.clone(), self.port);
        c.backoff.max = Duration::from_millis(500);
        c
    }
}

#[async_trait]
impl Harness for MqttHarness {
    async fn transport(&self) -> Arc<dyn Transport> {
        let config = self.config();
        if let Ok(mut ids) = self.client_ids.lock() {
            ids.push(config.client_id.clone());
        }
        Arc::new(MqttTransport::start(config))
    }

    async fn unreachable(&self, queue: usize) -> Arc<dyn Transport> {
        // A port nobody listens on: bound, read back, released.
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => panic!("cannot find a free port: {e}"),
        };
        let mut config = MqttConfig::new("127.0.0.1", port);
        config.bulk_queue = queue;
        Arc::new(MqttTransport::start(config))
    }

    async fn drop_connections(&self) {
        let ids = self
            .client_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default();
        for id in ids {
            within("take over a session", take_over(&self.host, self.port, &id))
                .await
                .unwrap_or_else(|e| panic!("cannot take over {id}: {e}"));
        }
    }
}

/// Connects with `client_id` and disconnects at once: the broker closes the other
/// connection with that id (MQTT 3.1.1 §3.1.4).
async fn take_over(host: &str, port: u16, client_id: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = BytesMut::new();
    codec::encode(&Packet::Connect(Connect::new(client_id)), &mut buf)?;
    stream.write_all(&buf).await.map_err(|e| e.to_string())?;
    let mut rbuf = BytesMut::with_capacity(1024);
    loop {
        match codec::decode(&mut rbuf, 1024)? {
            Decoded::Packet(Packet::ConnAck(_)) => break,
            Decoded::Packet(other) => return Err(format!("expected CONNACK, got {other:?}")),
            Decoded::NeedMore(_) => {
                if stream
                    .read_buf(&mut rbuf)
                    .await
                    .map_err(|e| e.to_string())?
                    == 0
                {
                    return Err("closed before CONNACK".into());
                }
            }
        }
    }
    buf.clear();
    codec::encode(&Packet::Disconnect, &mut buf)?;
    stream.write_all(&buf).await.map_err(|e| e.to_string())?;
    Ok(())
}
