//! Fault tests against a real mosquitto that each test starts, stops and restarts itself
//! (the `mosquitto` binary on `PATH` or in `/usr/sbin`). Without the binary the tests return
//! at once, unless `ECCI_REQUIRE_BROKER=1` makes that a failure.
//!
//! The broker runs with its defaults (`max_inflight_messages 20`, `max_queued_messages
//! 1000`) plus `persistence true`, as Debian's packaged config has it: across a broker
//! restart, MQTT can only keep a subscription, and the messages queued for it, in a
//! persistent session that the broker saves. Without persistence, a message that reaches the
//! restarted broker before the receiver has subscribed again is lost whatever the client does.
#![cfg(all(feature = "test-util", unix))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ecci_transport::conformance::{WAIT, next_message, unique_prefix, wait_for};
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{Event, Events, Message, MqttTransport, PublishError, QoS, Transport};
use tokio::time::timeout;

async fn receiver(m: &Mosquitto, topic: &str) -> (MqttTransport, Events) {
    let mut c = m.mqtt_config();
    c.clean_session = false;
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    timeout(WAIT, t.subscribe(topic, QoS::ExactlyOnce))
        .await
        .expect("subscribe in time")
        .expect("subscribe");
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    (t, events)
}

/// Publishes `0..count` at QoS 2, `rate` per second, then waits for every receipt.
fn paced_producer(
    t: &Arc<MqttTransport>,
    topic: String,
    count: u32,
    rate: u32,
) -> tokio::task::JoinHandle<Result<(), PublishError>> {
    let t = Arc::clone(t);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        let mut receipts = Vec::new();
        for i in 0..count {
            tick.tick().await;
            let m = Message::new(topic.clone(), i.to_be_bytes().to_vec(), QoS::ExactlyOnce);
            receipts.push(t.publish(m).await?);
        }
        for r in receipts {
            r.await?;
        }
        Ok(())
    })
}

/// Receives until all of `0..count` were seen; returns the number of duplicates.
async fn collect_all(events: &mut Events, count: u32) -> usize {
    let mut seen = BTreeMap::new();
    while seen.len() < count as usize {
        let m = next_message(events).await;
        let n = u32::from_be_bytes(m.payload[..].try_into().expect("4 bytes"));
        assert!(n < count, "unexpected message {n}");
        *seen.entry(n).or_insert(0usize) += 1;
    }
    seen.values().map(|c| c - 1).sum()
}

/// Both sides persistent: the sender completes its cut QoS 2 handshakes (PUBREL for what
/// mosquitto had PUBREC'd) rather than publishing again, so nothing arrives twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the figures are reported (and asserted)"
)]
async fn restart_mid_stream_loses_nothing_and_duplicates_nothing() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let topic = format!("{}/t", unique_prefix("mosquitto-restart"));
    let (sub, mut events) = receiver(&broker, &topic).await;
    let mut persistent = broker.mqtt_config();
    persistent.clean_session = false;
    let publisher = Arc::new(MqttTransport::start(persistent));
    let producer = paced_producer(&publisher, topic, 3_000, 200);
    let collector = tokio::spawn(async move {
        let duplicates = collect_all(&mut events, 3_000).await;
        (duplicates, events)
    });

    // The scenario's own timing: killed 4 s in, back 3 s later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.up();

    let (duplicates, _events) = timeout(Duration::from_secs(60), collector)
        .await
        .expect("all 3,000 within 60 s")
        .expect("collector");
    eprintln!(
        "restart mid-stream: 3000 delivered, {duplicates} duplicates, {:?}",
        publisher.metrics()
    );
    assert_eq!(duplicates, 0);
    timeout(WAIT, producer)
        .await
        .expect("receipts in time")
        .unwrap()
        .unwrap();
    assert!(publisher.metrics().reconnects >= 1);
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_at_start_then_up_loses_nothing() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let topic = format!("{}/t", unique_prefix("mosquitto-late"));
    // The receiver's persistent session is saved, then the broker goes down.
    let (sub, mut events) = receiver(&broker, &topic).await;
    broker.down().await;

    let publisher = Arc::new(MqttTransport::start(broker.mqtt_config()));
    let producer = paced_producer(&publisher, topic, 400, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!publisher.metrics().connected);
    broker.up();

    let duplicates = timeout(Duration::from_secs(60), collect_all(&mut events, 400))
        .await
        .expect("all 400 within 60 s");
    assert_eq!(duplicates, 0);
    timeout(WAIT, producer)
        .await
        .expect("receipts in time")
        .unwrap()
        .unwrap();
    assert!(publisher.metrics().connect_failures >= 1);
    publisher.close().await;
    sub.close().await;
}
