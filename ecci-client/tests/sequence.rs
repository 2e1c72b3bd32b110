//! The sequence extension end to end: a Rust receiver drops duplicates and reports gaps
//! (after the grace period) for Rust senders, and leaves messages without the extension
//! (Python senders) alone.
//!
//! - On the in-memory hub with paused time: hand-made envelopes with numbers 1, 2, 2, 5,
//!   then 3 late: one duplicate dropped, one gap of 1 reported.
//! - Over the embedded broker, which drops every connection again and again while QoS 2
//!   handshakes are under way, with a clean-session sender that publishes cut messages
//!   again: the application sees each message exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_client::{Client, ClientOptions, InboundError};
use ecci_proto::config::Config;
use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::{self, Protocol, Value};
use ecci_proto::sequence::{Lane, Seq};
use ecci_transport::broker::Broker;
use ecci_transport::memory::Hub;
use ecci_transport::{Message, MqttTransport, QoS, Transport};
use tokio::time::timeout;

fn numbered(n: u64, seq: Option<Seq>) -> Vec<u8> {
    let value = Envelope::data(Value::from(n as i64)).into_value();
    let value = match seq {
        Some(seq) => seq.add_to(value),
        None => value,
    };
    pickle::encode(&value, Protocol::default())
}

#[tokio::test(start_paused = true)]
async fn duplicates_are_dropped_and_gaps_reported_after_the_grace() {
    let hub = Hub::new();
    let options = ClientOptions {
        gap_grace: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let (me, _) = on_hub_with(&hub, plain("me", "b1", &[]), options).await;
    let sender = hub.transport();
    let topic = "ECCI/b1/app1/app/rust/me";
    let seq = |n| Seq {
        incarnation: 77,
        lane: Lane::Ordered,
        seq: n,
    };
    for n in [1, 2, 2, 5] {
        let m = Message::new(topic, numbered(n, Some(seq(n))), QoS::ExactlyOnce);
        sender.publish(m).await.unwrap().await.unwrap();
    }
    // A Python sender: no extension, nothing filtered, the same value twice arrives twice.
    for _ in 0..2 {
        let m = Message::new(
            "ECCI/b1/app1/app/py/me",
            numbered(9, None),
            QoS::ExactlyOnce,
        );
        sender.publish(m).await.unwrap().await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = timeout(WAIT, me.recv_data()).await.unwrap().unwrap();
        got.push((m.sender().to_string(), m.decode::<u64>().unwrap()));
    }
    let rust: Vec<u64> = got
        .iter()
        .filter(|(s, _)| s == "rust")
        .map(|g| g.1)
        .collect();
    assert_eq!(rust, [1, 2, 5]);
    assert_eq!(got.iter().filter(|(s, _)| s == "py").count(), 2);
    assert_eq!(me.metrics().duplicates, 1);

    // 3 arrives within the grace: a reordering, not a loss.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = Message::new(topic, numbered(3, Some(seq(3))), QoS::ExactlyOnce);
    sender.publish(m).await.unwrap().await.unwrap();
    assert_eq!(
        timeout(WAIT, me.recv_data())
            .await
            .unwrap()
            .unwrap()
            .decode::<u64>()
            .unwrap(),
        3
    );
    assert!(
        me.errors().try_recv().is_none(),
        "nothing reported within the grace"
    );

    // 4 never comes.
    let event = timeout(Duration::from_secs(10), me.errors().recv())
        .await
        .expect("the gap is reported after the grace")
        .unwrap();
    assert_eq!(event.topic, topic);
    match &event.error {
        InboundError::Lost {
            sender,
            count,
            first,
            last,
        } => assert_eq!((sender.as_str(), *count, *first, *last), ("rust", 1, 4, 4)),
        other => panic!("not a gap: {other:?}"),
    }
    assert_eq!(
        event.error.to_string(),
        "lost 1 messages from rust (seq 4..4)"
    );
    let m = me.metrics();
    assert_eq!((m.lost, m.gaps, m.late), (1, 1, 0), "{m:?}");
    // 4 after all: passed on, counted as late.
    let m = Message::new(topic, numbered(4, Some(seq(4))), QoS::ExactlyOnce);
    sender.publish(m).await.unwrap().await.unwrap();
    assert_eq!(
        timeout(WAIT, me.recv_data())
            .await
            .unwrap()
            .unwrap()
            .decode::<u64>()
            .unwrap(),
        4
    );
    assert_eq!(me.metrics().late, 1);
    me.close().await;
}

fn on_port(config: Config, port: u16) -> Config {
    let mut b = Config::builder(
        "127.0.0.1",
        config.broker_id().clone(),
        config.app_id().clone(),
        config.container_name().clone(),
    )
    .port(port);
    for t in config.pub_targets() {
        b = b.pub_target(t.name.clone(), t.broker.clone());
    }
    b.build().unwrap()
}

/// The embedded broker drops every connection 10 times while 1,000 QoS 2 messages stream
/// through; the sender has a clean session, so the broker forgets its half-done handshakes
/// and it publishes those messages again. The receiver (the default persistent session)
/// passes each on once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the figures are reported (and asserted)"
)]
async fn reconnects_in_the_middle_of_qos2_handshakes_reach_the_app_once() {
    const COUNT: u32 = 1_000;
    let broker = Broker::start().await.unwrap();
    let port = broker.port();
    let me_config = on_port(plain("me", "b1", &[]), port);
    let mut me_mqtt = ecci_client::mqtt_config(&me_config);
    me_mqtt.backoff.initial = Duration::from_millis(10);
    me_mqtt.backoff.max = Duration::from_millis(100);
    // Kicks every 30 ms look like a session takeover: no pause (see MqttConfig::takeover_pause).
    me_mqtt.takeover_pause = Duration::from_millis(10);
    let me = Client::builder(me_config)
        .transport(Arc::new(MqttTransport::start(me_mqtt)))
        .connect()
        .await
        .unwrap();
    let peer_config = on_port(plain("peer", "b1", &[("me", "b1")]), port);
    let mut peer_mqtt = ecci_client::mqtt_config(&peer_config);
    peer_mqtt.clean_session = true;
    peer_mqtt.backoff.initial = Duration::from_millis(10);
    peer_mqtt.backoff.max = Duration::from_millis(100);
    peer_mqtt.takeover_pause = Duration::from_millis(10);
    let peer = Client::builder(peer_config)
        .transport(Arc::new(MqttTransport::start(peer_mqtt)))
        .connect()
        .await
        .unwrap();

    let producer = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..COUNT {
                deliveries.push(peer.publish(&i, "me").await.expect("queued"));
            }
            for d in deliveries {
                d.await.expect("acknowledged");
            }
        })
    };
    let kicks = async {
        // The scenario's own timing: connections rarely live longer than 30 ms.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            broker.kick_all();
        }
    };
    let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
    let collect = async {
        while seen.len() < COUNT as usize {
            let m = me.recv_data().await.expect("client running");
            *seen.entry(m.decode::<u32>().unwrap()).or_default() += 1;
        }
    };
    timeout(WAIT, async { tokio::join!(kicks, collect) })
        .await
        .expect("every message in time");
    timeout(WAIT, producer).await.unwrap().unwrap();
    // Anything sent again after the last one arrived would be here by now.
    while let Ok(Ok(m)) = timeout(Duration::from_millis(500), me.recv_data()).await {
        *seen.entry(m.decode::<u32>().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    let m = me.metrics();
    eprintln!(
        "kicked 10 times: {} messages, {} filtered as duplicates, sender resent {}",
        seen.len(),
        m.duplicates,
        peer.metrics().transport.resent
    );
    assert!(twice.is_empty(), "the app saw these twice: {twice:?}");
    assert_eq!((m.lost, m.gaps), (0, 0), "{m:?}");
    assert!(peer.metrics().transport.reconnects >= 1);
    peer.close().await;
    me.close().await;
}
