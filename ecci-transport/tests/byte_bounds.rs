//! Bounds in bytes, against the embedded broker: the outbox holds at most
//! `MqttConfig::outbox_bytes` (a full one hands a message back or makes `publish` wait), the
//! broker's per-subscriber queue at most its byte limit (the rest dropped and counted), and
//! QoS 2 PUBLISHes that reuse a live packet id are dropped, counted and reported once per
//! burst.
#![cfg(feature = "test-util")]

use std::time::Duration;

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{WAIT, next_message, wait_for};
use ecci_transport::{
    Event, Events, Message, MqttConfig, MqttTransport, Priority, QoS, Transport, TryPublishError,
};
use tokio::time::timeout;

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

fn config(broker: &Broker) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", broker.port());
    c.backoff.max = Duration::from_millis(300);
    c
}

async fn subscriber(config: MqttConfig, filter: &str) -> (MqttTransport, Events) {
    let t = MqttTransport::start(config);
    let mut events = t.take_events().unwrap();
    bounded("subscribe", t.subscribe(filter, QoS::ExactlyOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    (t, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_hands_back_or_waits_and_frees_on_ack() {
    let broker = Broker::start().await.unwrap();
    let mut c = config(&broker);
    c.outbox_bytes = 1024 * 1024;
    let t = MqttTransport::start(c);
    broker.withhold_acks(true);
    // 256 KiB each (payload and topic): four fill the outbox.
    let message = || Message::new("a/b", vec![7u8; 256 * 1024 - 3], QoS::AtLeastOnce);
    let mut receipts = Vec::new();
    for _ in 0..4 {
        receipts.push(t.try_publish(message()).expect("room for four"));
    }
    assert_eq!(t.metrics().outbox_bytes, 1024 * 1024);
    match t.try_publish(message()) {
        Err(TryPublishError::Full(back)) => assert_eq!(back.payload.len(), 256 * 1024 - 3),
        other => panic!("expected Full, got {other:?}"),
    }
    // Control messages have a budget of their own: a bulk backlog does not hold them up.
    receipts.push(
        t.try_publish(message().with_priority(Priority::Control))
            .expect("room for control"),
    );
    // `publish` waits while the acknowledgements are withheld …
    let waiting = t.publish(message());
    tokio::pin!(waiting);
    assert!(
        timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "publish went past a full outbox"
    );
    // … and goes on once they come.
    bounded("withheld", broker.wait_withheld(5)).await;
    broker.withhold_acks(false);
    for r in receipts {
        bounded("ack", r).await.unwrap();
    }
    let receipt = bounded("publish", waiting).await.unwrap();
    bounded("ack", receipt).await.unwrap();
    assert_eq!(t.metrics().outbox_bytes, 0);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_outbox_goes_alone() {
    let broker = Broker::start().await.unwrap();
    let mut c = config(&broker);
    c.outbox_bytes = 64 * 1024;
    let t = MqttTransport::start(c);
    let (_sub, mut events) = subscriber(config(&broker), "big").await;
    let receipt = t
        .publish(Message::new(
            "big",
            vec![1u8; 1024 * 1024],
            QoS::ExactlyOnce,
        ))
        .await
        .unwrap();
    bounded("ack", receipt).await.unwrap();
    assert_eq!(next_message(&mut events).await.payload.len(), 1024 * 1024);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_drops_beyond_its_queue_bytes_and_counts() {
    let broker = Broker::start().await.unwrap();
    broker.set_max_queued_bytes(1024 * 1024);
    let mut c = config(&broker);
    c.clean_session = false;
    c.client_id = "stalled-by-bytes".into();
    let (sub, events) = subscriber(c.clone(), "q").await;
    drop(events);
    sub.close().await;
    // Away with a persistent session: 10 × 256 KiB are routed to its queue; 4 fit.
    let publisher = MqttTransport::start(config(&broker));
    for _ in 0..10 {
        let r = publisher
            .publish(Message::new("q", vec![0u8; 256 * 1024], QoS::AtLeastOnce))
            .await
            .unwrap();
        bounded("ack", r).await.unwrap();
    }
    assert_eq!(broker.queued_messages(), 4);
    assert_eq!(broker.dropped_messages(), 6);
    let (_sub, mut events) = subscriber(c, "q").await;
    for _ in 0..4 {
        next_message(&mut events).await;
    }
    publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_live_packet_ids_are_dropped_counted_and_reported_once_per_burst() {
    let broker = Broker::start().await.unwrap();
    let mut c = config(&broker);
    c.clean_session = false;
    c.client_id = "reused-ids".into();
    let (sub, events) = subscriber(c.clone(), "dup").await;
    drop(events);
    sub.close().await;
    // Twenty messages wait for the absent session; on its return they go out in one
    // batch, the 2nd to 6th with the 1st's packet id.
    let publisher = MqttTransport::start(config(&broker));
    for i in 0..20u8 {
        let r = publisher
            .publish(Message::new("dup", vec![i], QoS::ExactlyOnce))
            .await
            .unwrap();
        bounded("ack", r).await.unwrap();
    }
    broker.reuse_live_packet_ids(5);
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    let mut got = Vec::new();
    let mut reports = Vec::new();
    while got.len() < 15 {
        match bounded("events", events.recv()).await {
            Some(Event::Message(m)) => got.push(m.payload[0]),
            Some(Event::DuplicateDropped { topic, pkid }) => reports.push((topic, pkid)),
            Some(_) => {}
            None => panic!("event stream ended"),
        }
    }
    let mut expected = vec![0u8];
    expected.extend(6..20);
    assert_eq!(got, expected, "the 2nd to 6th messages are lost");
    assert_eq!(reports.len(), 1, "one report per burst: {reports:?}");
    assert_eq!(reports[0].0, "dup");
    assert_eq!(t.metrics().duplicates_dropped, 5);
    assert_eq!(t.metrics().received, 15);
    t.close().await;
    publisher.close().await;
}
