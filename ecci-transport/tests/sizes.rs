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
        assert!(
            std::env::var("ECCI_REQUIRE_BROKER").as_deref() != Ok("1"),
            "ECCI_REQUIRE_BROKER=1 but ECCI_TEST_BROKER is unset"
        );
        #[expect(clippy::print_stderr, reason = "a visible skip")]
        {
            eprintln!("skipped: ECCI_TEST_BROKER unset (mosquitto half)");
        }
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
