//! `MqttTransport` under faults, against the embedded broker: the in-flight cap holds,
//! unacknowledged messages are sent again after a reconnect, a broker restart mid-stream or
//! a broker down at start loses nothing, and control traffic overtakes bulk.
#![cfg(feature = "test-util")]

use std::collections::BTreeMap;
use std::sync::Arc;

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{WAIT, next_message, wait_for};
use ecci_transport::{
    ConnectionError, Event, Events, Message, MqttConfig, MqttTransport, Priority, PublishError,
    QoS, Transport,
};
use tokio::time::timeout;

fn config(broker: &Broker) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", broker.port());
    c.backoff.max = std::time::Duration::from_millis(300);
    c
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

async fn subscriber(broker: &Broker, filter: &str, clean_session: bool) -> (MqttTransport, Events) {
    let mut c = config(broker);
    c.clean_session = clean_session;
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    bounded("subscribe", t.subscribe(filter, QoS::ExactlyOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    (t, events)
}

/// Publishes `0..count` as big-endian numbers on `topic` at QoS 2, in a task, and returns
/// the task, which yields every receipt's result. It keeps at most about 100 messages
/// ahead of the broker, so a fault in the middle finds most of the stream still to send.
fn produce(
    t: &Arc<MqttTransport>,
    topic: &'static str,
    count: u32,
) -> tokio::task::JoinHandle<Result<(), PublishError>> {
    let t = Arc::clone(t);
    tokio::spawn(async move {
        let mut receipts = Vec::new();
        for i in 0..count {
            let m = Message::new(topic, i.to_be_bytes().to_vec(), QoS::ExactlyOnce);
            receipts.push(t.publish(m).await?);
            if receipts.len() == 100 {
                for r in receipts.drain(..) {
                    r.await?;
                }
            }
        }
        for r in receipts {
            r.await?;
        }
        Ok(())
    })
}

/// Receives until every number in `0..count` was seen; returns how many came twice or more.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_is_capped_and_the_outbox_is_resent_after_a_reconnect() {
    let broker = Broker::start().await.unwrap();
    let (sub, mut events) = subscriber(&broker, "outbox/#", true).await;
    let publisher = MqttTransport::start(config(&broker));
    let mut pub_events = publisher.take_events().unwrap();
    broker.withhold_acks(true);
    let mut receipts = Vec::new();
    for i in 0..100u32 {
        let m = Message::new("outbox/t", i.to_be_bytes().to_vec(), QoS::ExactlyOnce);
        receipts.push(publisher.publish(m).await.unwrap());
    }
    bounded("20 in flight", broker.wait_withheld(20)).await;
    let m = publisher.metrics();
    assert_eq!((m.in_flight, m.queued), (20, 80), "{m:?}");

    // The broker loses the connection and, with it, the 20 unacknowledged messages.
    broker.kick_all();
    wait_for(&mut pub_events, |e| matches!(e, Event::Disconnected(_))).await;
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    bounded("20 resent", broker.wait_withheld(20)).await;
    broker.withhold_acks(false);

    for i in 0..100u32 {
        let m = next_message(&mut events).await;
        assert_eq!(m.payload[..], i.to_be_bytes(), "message {i}");
    }
    for r in receipts {
        bounded("receipt", r).await.unwrap();
    }
    assert_eq!(broker.max_unacked_seen(), 20);
    let m = publisher.metrics();
    assert!(m.resent >= 20 && m.reconnects == 1, "{m:?}");
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let count = 3_000;
    let mut broker = Broker::start().await.unwrap();
    // Lossless across a broker restart needs a session that outlives it (clean_session off,
    // and a broker that persists sessions, which stop_keeping_sessions models).
    let (sub, mut events) = subscriber(&broker, "restart/t", false).await;
    // A persistent sender completes its cut QoS 2 handshakes: no duplicates either.
    let mut persistent = config(&broker);
    persistent.clean_session = false;
    let publisher = Arc::new(MqttTransport::start(persistent));
    let mut pub_events = publisher.take_events().unwrap();
    let producer = produce(&publisher, "restart/t", count);

    let mut seen = 0;
    while seen < 1_000 {
        next_message(&mut events).await;
        seen += 1;
    }
    broker.stop_keeping_sessions().await;
    wait_for(&mut pub_events, |e| matches!(e, Event::Disconnected(_))).await;
    broker.restart().await.unwrap();

    // The first 1,000 were counted above; collect the rest.
    let mut rest = BTreeMap::new();
    let mut again = 0;
    while rest.len() < (count - 1_000) as usize {
        let m = next_message(&mut events).await;
        let n = u32::from_be_bytes(m.payload[..].try_into().unwrap());
        if n >= 1_000 {
            *rest.entry(n).or_insert(0usize) += 1;
        } else {
            again += 1;
        }
    }
    let twice = rest.values().filter(|c| **c > 1).count();
    assert_eq!((again, twice), (0, 0), "duplicates");
    bounded("receipts", producer).await.unwrap().unwrap();
    let m = publisher.metrics();
    assert!(m.reconnects >= 1 && m.in_flight == 0, "{m:?}");
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_start_then_up_loses_nothing() {
    let mut broker = Broker::start().await.unwrap();
    let (sub, mut events) = subscriber(&broker, "late/t", false).await;
    broker.stop_keeping_sessions().await;

    let publisher = Arc::new(MqttTransport::start(config(&broker)));
    let producer = produce(&publisher, "late/t", 500);
    assert!(!publisher.metrics().connected);
    broker.restart().await.unwrap();

    let duplicates = collect_all(&mut events, 500).await;
    assert_eq!(duplicates, 0);
    bounded("receipts", producer).await.unwrap().unwrap();
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "current_thread")]
async fn control_overtakes_queued_bulk() {
    let broker = Broker::start().await.unwrap();
    let (sub, mut events) = subscriber(&broker, "prio/#", true).await;
    let publisher = MqttTransport::start(config(&broker));
    let mut pub_events = publisher.take_events().unwrap();
    wait_for(&mut pub_events, |e| matches!(e, Event::Connected)).await;
    // On this single-threaded runtime the transport's task cannot run during the loop, so
    // all 500 bulk messages are queued before the control one.
    let mut receipts = Vec::new();
    for i in 0..500u32 {
        let m = Message::new("prio/bulk", i.to_be_bytes().to_vec(), QoS::AtLeastOnce);
        receipts.push(publisher.try_publish(m).unwrap());
    }
    let control =
        Message::new("prio/control", "c", QoS::AtLeastOnce).with_priority(Priority::Control);
    receipts.push(publisher.try_publish(control).unwrap());
    let mut position = None;
    for i in 0..501 {
        if next_message(&mut events).await.topic == "prio/control" {
            position = Some(i);
        }
    }
    // Control goes out with the first batch.
    let position = position.expect("control message delivered");
    assert!(position <= 20, "control message delivered at {position}");
    for r in receipts {
        bounded("receipt", r).await.unwrap();
    }
    publisher.close().await;
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried_and_closing_ends_the_task() {
    // Nobody listens: the transport keeps trying and close() still returns.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let t = MqttTransport::start(MqttConfig::new("127.0.0.1", port));
    let receipt = t
        .publish(Message::new("x", "y", QoS::AtMostOnce))
        .await
        .unwrap();
    bounded("close", t.close()).await;
    assert_eq!(bounded("receipt", receipt).await, Err(PublishError::Closed));
    let m = t.metrics();
    assert!(!m.connected && m.dropped == 1, "{m:?}");
    assert_eq!(
        bounded("subscribe", t.subscribe("a", QoS::AtMostOnce)).await,
        Err(ecci_transport::SubscribeError::Closed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sent_and_a_refusal_is_reported() {
    let broker = Broker::start().await.unwrap();
    broker.require_credentials("user", "secret");

    let mut wrong = config(&broker);
    wrong.credentials = Some(("user".into(), "guess".into()));
    let t = MqttTransport::start(wrong);
    let mut events = t.take_events().unwrap();
    match bounded("refusal", events.recv()).await {
        Some(Event::ConnectFailed(ecci_transport::ConnectionError::Refused(4))) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    t.close().await;

    let mut right = config(&broker);
    right.credentials = Some(("user".into(), "secret".into()));
    let t = MqttTransport::start(right);
    let mut events = t.take_events().unwrap();
    assert_eq!(
        bounded("connect", events.recv()).await,
        Some(Event::Connected)
    );
    t.close().await;
    assert_eq!(bounded("end of events", events.recv()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_noticed_by_keep_alive() {
    let broker = Broker::start().await.unwrap();
    let mut c = config(&broker);
    c.keep_alive = std::time::Duration::from_secs(1);
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    // A half-open connection: nothing is closed, nothing answers.
    broker.freeze_all();
    match bounded("timeout", events.recv()).await {
        Some(Event::Disconnected(ecci_transport::ConnectionError::Timeout)) => {}
        other => panic!("expected a keep-alive timeout, got {other:?}"),
    }
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    let receipt = t
        .publish(Message::new("after/freeze", "x", QoS::AtLeastOnce))
        .await
        .unwrap();
    bounded("receipt", receipt).await.unwrap();
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_answers_connect_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = MqttConfig::new("127.0.0.1", listener.local_addr().unwrap().port());
    c.connect_timeout = std::time::Duration::from_millis(200);
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    // Accepted, then never a CONNACK.
    let (socket, _) = bounded("accept", listener.accept()).await.unwrap();
    match bounded("timeout", events.recv()).await {
        Some(Event::ConnectFailed(ecci_transport::ConnectionError::Timeout)) => {}
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    drop(socket);
    t.close().await;
}

#[tokio::test]
async fn a_refused_password_backs_off_to_the_longest_delay() {
    let broker = Broker::start().await.unwrap();
    broker.require_credentials("user", "right");
    let mut c = config(&broker);
    c.credentials = Some(("user".into(), "wrong".into()));
    c.backoff = ecci_transport::BackoffConfig {
        initial: std::time::Duration::from_millis(100),
        max: std::time::Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
    };
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    match bounded("refusal", events.recv()).await {
        Some(Event::ConnectFailed(e)) => {
            assert!(matches!(e, ConnectionError::Refused(4 | 5)), "{e:?}");
            assert!(e.is_permanent());
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Exponential from 100 ms would try 5 times in 2 s (0, 0.1, 0.3, 0.7, 1.5 s); a refusal
    // waits the full second each time: 0, 1, 2 s.
    tokio::time::sleep(std::time::Duration::from_millis(1_900)).await;
    let attempts = t.metrics().connect_failures;
    assert!((1..=2).contains(&attempts), "{attempts} attempts in 1.9 s");
    t.close().await;
}

/// An unsubscribe the broker never saw, because the connection dropped before UNSUBACK, is
/// made again on reconnect when the session persists: it used to be reported done at once
/// while the broker's session kept the subscription and kept delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribe_cut_off_is_made_again_in_a_persistent_session() {
    let broker = Broker::start().await.unwrap();
    let (sub, mut events) = subscriber(&broker, "unsub/gone", false).await;
    bounded("subscribe", sub.subscribe("unsub/marker", QoS::AtLeastOnce))
        .await
        .unwrap();
    let sub = Arc::new(sub);

    broker.freeze_all();
    // The freeze is a message to the connection's task: let it land before the UNSUBSCRIBE.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let unsubscribe = tokio::spawn({
        let sub = Arc::clone(&sub);
        async move { sub.unsubscribe("unsub/gone").await }
    });
    // Let the UNSUBSCRIBE reach the frozen connection, which drops it with the connection.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    broker.kick_all();
    wait_for(&mut events, |e| matches!(e, Event::Disconnected(_))).await;
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    bounded("unsubscribe", unsubscribe).await.unwrap().unwrap();

    let publisher = MqttTransport::start(config(&broker));
    for topic in ["unsub/gone", "unsub/marker"] {
        let receipt = bounded(
            "publish",
            publisher.publish(Message::new(topic, "x", QoS::AtLeastOnce)),
        )
        .await
        .unwrap();
        bounded("receipt", receipt).await.unwrap();
    }
    assert_eq!(next_message(&mut events).await.topic, "unsub/marker");
    publisher.close().await;
    sub.close().await;
}

/// Subscribes the broker never answers are capped, so that they cannot take every packet id
/// (the id search used to spin forever once all 65,535 were taken): the one past the cap
/// fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_subscribes_are_capped() {
    const CAP: usize = 16_384;
    let broker = Broker::start().await.unwrap();
    let t = Arc::new(MqttTransport::start(config(&broker)));
    let mut events = t.take_events().unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    broker.freeze_all();
    // The freeze is a message to the connection's task: let it land before the SUBSCRIBEs.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let (tx, mut results) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..=CAP)
        .map(|i| {
            let (t, tx) = (Arc::clone(&t), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(t.subscribe(&format!("capped/{i}"), QoS::AtLeastOnce).await);
            })
        })
        .collect();
    let first = bounded("a subscribe past the cap", results.recv()).await;
    assert_eq!(first, Some(Err(ecci_transport::SubscribeError::Busy)));
    for task in tasks {
        task.abort();
    }
    broker.kick_all();
    t.close().await;
}
