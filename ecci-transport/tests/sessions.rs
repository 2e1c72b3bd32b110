//! Persistent sessions against the embedded broker: QoS 2 handshakes cut by reconnects
//! resume without duplicates (PUBREL for what the broker PUBREC'd, remembered inbound ids),
//! and two processes with one client id are reported, not fought over. And the lanes of one
//! connection: data before logs.
#![cfg(feature = "test-util")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{WAIT, next_message, wait_for};
use ecci_transport::{
    ConnectionError, Event, Events, Message, MqttConfig, MqttTransport, Priority, QoS, Transport,
};
use tokio::time::timeout;

fn config(broker: &Broker, client_id: &str) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", broker.port());
    c.client_id = client_id.to_owned();
    c.clean_session = false;
    c.backoff.initial = Duration::from_millis(10);
    c.backoff.max = Duration::from_millis(100);
    // Kicks every 15 ms look like a session takeover (connections closed by the broker right
    // after they were made): no pause here; the takeover test sets its own.
    c.takeover_pause = Duration::from_millis(10);
    c
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {WAIT:?}"))
}

/// Both sides persistent; the broker drops every connection again and again while 5,000
/// QoS 2 messages stream through it, so handshakes are cut at every step (PUBLISH sent,
/// PUBREC sent or lost, PUBREL sent or lost) in both directions. Each message arrives
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_handshakes_cut_by_reconnects_resume_without_duplicates() {
    const COUNT: u32 = 5_000;
    let broker = Broker::start().await.unwrap();
    let sub = MqttTransport::start(config(&broker, "resume-sub"));
    let mut events = sub.take_events().unwrap();
    bounded("subscribe", sub.subscribe("resume/#", QoS::ExactlyOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    let publisher = Arc::new(MqttTransport::start(config(&broker, "resume-pub")));
    let producer = {
        let publisher = Arc::clone(&publisher);
        tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..COUNT {
                let m = Message::new("resume/t", i.to_be_bytes().to_vec(), QoS::ExactlyOnce);
                receipts.push(publisher.publish(m).await.expect("queued"));
            }
            for r in receipts {
                r.await.expect("delivered");
            }
        })
    };
    let kicker = async {
        // The scenario's own timing: a connection rarely lives longer than 15 ms.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(15)).await;
            broker.kick_all();
        }
    };
    let mut seen = BTreeMap::new();
    let collect = async {
        while seen.len() < COUNT as usize {
            let m = next_message(&mut events).await;
            let n = u32::from_be_bytes(m.payload[..].try_into().expect("4 bytes"));
            assert!(n < COUNT, "unexpected message {n}");
            *seen.entry(n).or_insert(0u32) += 1;
        }
    };
    bounded("every message", async { tokio::join!(kicker, collect) }).await;
    bounded("every receipt", producer).await.unwrap();
    // Anything sent again after the last one arrived would be here by now.
    while let Ok(Some(event)) = timeout(Duration::from_millis(500), events.recv()).await {
        if let Event::Message(m) = event {
            let n = u32::from_be_bytes(m.payload[..].try_into().expect("4 bytes"));
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "received more than once: {twice:?}");
    let (p, s) = (publisher.metrics(), sub.metrics());
    assert!(p.reconnects >= 1 && s.reconnects >= 1, "{p:?} {s:?}");
    assert!(p.resent >= 1, "no handshake was cut: {p:?}");
    publisher.close().await;
    sub.close().await;
}

/// The next takeover report.
async fn taken_over(events: &mut Events) -> ConnectionError {
    loop {
        match events.recv().await {
            Some(Event::Disconnected(e @ ConnectionError::TakenOver { .. })) => return e,
            Some(_) => {}
            None => panic!("event stream ended"),
        }
    }
}

/// Two transports with one client id: each connect makes the broker close the other's
/// connection. One of them notices, reports it and stays away; the other keeps the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_client_with_the_same_id_is_reported_not_fought_over() {
    let broker = Broker::start().await.unwrap();
    let mut c = config(&broker, "twin");
    c.takeover_pause = Duration::from_secs(600);
    let a = MqttTransport::start(c.clone());
    let b = MqttTransport::start(c);
    let (mut ea, mut eb) = (a.take_events().unwrap(), b.take_events().unwrap());
    let (e, other) = bounded("a takeover report", async {
        tokio::select! {
            e = taken_over(&mut ea) => (e, &b),
            e = taken_over(&mut eb) => (e, &a),
        }
    })
    .await;
    let text = e.to_string();
    assert!(
        text.contains("\"twin\"") && text.contains("another client"),
        "{text}"
    );
    // The one that stepped back stays away: the other connects once more and then keeps
    // its connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = other.metrics();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = other.metrics();
    assert!(after.connected, "{after:?}");
    assert_eq!(before.reconnects, after.reconnects, "still fighting");
    a.close().await;
    b.close().await;
}

/// 500 log records queued before one data message: the data message goes out with the
/// first batch (control ≫ data ≫ logs), the records after it, in order.
#[tokio::test(flavor = "current_thread")]
async fn data_overtakes_queued_logs() {
    let broker = Broker::start().await.unwrap();
    let sub = MqttTransport::start(config(&broker, "lanes-sub"));
    let mut events = sub.take_events().unwrap();
    bounded("subscribe", sub.subscribe("lanes/#", QoS::ExactlyOnce))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Connected)).await;
    let publisher = MqttTransport::start(config(&broker, "lanes-pub"));
    let mut pub_events = publisher.take_events().unwrap();
    wait_for(&mut pub_events, |e| matches!(e, Event::Connected)).await;
    // On this single-threaded runtime the transport's task cannot run during the loop, so
    // all 500 records are queued before the data message.
    let mut receipts = Vec::new();
    for i in 0..500u32 {
        let m = Message::new("lanes/log", i.to_be_bytes().to_vec(), QoS::AtLeastOnce)
            .with_priority(Priority::Background);
        receipts.push(publisher.try_publish(m).unwrap());
    }
    let data = Message::new("lanes/data", "d", QoS::AtLeastOnce);
    receipts.push(publisher.try_publish(data).unwrap());
    let mut position = None;
    let mut logs = Vec::new();
    for i in 0..501 {
        let m = next_message(&mut events).await;
        if m.topic == "lanes/data" {
            position = Some(i);
        } else {
            logs.push(u32::from_be_bytes(m.payload[..].try_into().unwrap()));
        }
    }
    let position = position.expect("data message delivered");
    assert!(position <= 20, "data message delivered at {position}");
    assert!(logs.windows(2).all(|w| w[0] < w[1]), "records in order");
    for r in receipts {
        bounded("receipt", r).await.unwrap();
    }
    publisher.close().await;
    sub.close().await;
}
