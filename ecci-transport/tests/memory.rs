//! The conformance suite against the in-memory transport, and its fault injection.
#![cfg(feature = "test-util")]

use ecci_transport::conformance::{MemoryHarness, next_message};
use ecci_transport::memory::{Hub, MemoryConfig};
use ecci_transport::{Event, Message, Priority, QoS, Transport};

async fn harness() -> Option<MemoryHarness> {
    Some(MemoryHarness::default())
}

ecci_transport::conformance_tests!(harness);

#[tokio::test]
async fn withheld_acks_are_resent_after_a_dropped_connection() {
    let hub = Hub::new();
    let (publisher, sub) = (hub.transport(), hub.transport());
    let mut events = sub.take_events().unwrap();
    sub.subscribe("w/#", QoS::ExactlyOnce).await.unwrap();
    publisher.withhold_acks(true);
    let mut receipt = publisher
        .publish(Message::new("w/1", "one", QoS::ExactlyOnce))
        .await
        .unwrap();
    assert_eq!(&next_message(&mut events).await.payload[..], b"one");
    assert!(futures_poll(&mut receipt).is_none(), "ack withheld");
    assert_eq!(publisher.metrics().in_flight, 1);
    publisher.drop_connection();
    publisher.withhold_acks(false);
    publisher.reconnect();
    // Sent again: a duplicate, as with a real broker that lost the ack.
    assert_eq!(&next_message(&mut events).await.payload[..], b"one");
    receipt.await.unwrap();
    assert_eq!(publisher.metrics().resent, 1);
}

#[tokio::test]
async fn control_leaves_before_queued_bulk() {
    let hub = Hub::new();
    let config = MemoryConfig {
        max_in_flight: 2,
        ..MemoryConfig::default()
    };
    let (publisher, sub) = (hub.transport_with(config), hub.transport());
    let mut events = sub.take_events().unwrap();
    sub.subscribe("p/#", QoS::ExactlyOnce).await.unwrap();
    publisher.withhold_acks(true);
    let mut receipts = Vec::new();
    for i in 0..10 {
        let m = Message::new(format!("p/bulk/{i}"), "b", QoS::AtLeastOnce);
        receipts.push(publisher.try_publish(m).unwrap());
    }
    let control = Message::new("p/control", "c", QoS::AtLeastOnce).with_priority(Priority::Control);
    receipts.push(publisher.try_publish(control).unwrap());
    publisher.withhold_acks(false);
    let mut topics = Vec::new();
    for _ in 0..11 {
        topics.push(next_message(&mut events).await.topic);
    }
    // Two were in flight before the control message was queued; it goes right after them.
    assert_eq!(topics[2], "p/control", "{topics:?}");
    for r in receipts {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn clean_and_persistent_sessions() {
    let hub = Hub::new();
    let publisher = hub.transport();
    let persistent = hub.transport_with(MemoryConfig {
        clean_session: false,
        ..MemoryConfig::default()
    });
    let clean = hub.transport();
    let (mut pe, mut ce) = (
        persistent.take_events().unwrap(),
        clean.take_events().unwrap(),
    );
    persistent.subscribe("s", QoS::ExactlyOnce).await.unwrap();
    clean.subscribe("s", QoS::ExactlyOnce).await.unwrap();
    persistent.drop_connection();
    clean.drop_connection();
    publisher
        .publish(Message::new("s", "while away", QoS::AtLeastOnce))
        .await
        .unwrap()
        .await
        .unwrap();
    persistent.reconnect();
    clean.reconnect();
    assert_eq!(&next_message(&mut pe).await.payload[..], b"while away");
    publisher
        .publish(Message::new("s", "back", QoS::AtLeastOnce))
        .await
        .unwrap()
        .await
        .unwrap();
    // The clean session lost the message sent while away but got its subscription back.
    assert_eq!(&next_message(&mut ce).await.payload[..], b"back");
    assert_eq!(&next_message(&mut pe).await.payload[..], b"back");
    assert!(matches!(ce.try_recv(), None | Some(Event::Connected)));
}

/// Polls a future once without a runtime waker dependency.
fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
