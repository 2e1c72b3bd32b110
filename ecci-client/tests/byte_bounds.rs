//! The client's inbound queues are bounded by payload bytes as well as by count, oversized
//! file messages are refused, and QoS 2 messages the broker numbered with a live packet id
//! are reported as an error event once per burst.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_client::{Client, ClientOptions, InboundError};
use ecci_proto::config::Config;
use ecci_proto::envelope::{Envelope, MessageType};
use ecci_proto::pickle::{Protocol, Value};
use ecci_transport::broker::Broker;
use ecci_transport::memory::Hub;
use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};

const KIB: usize = 1024;

#[tokio::test(start_paused = true)]
async fn a_queue_full_of_bytes_parks_then_stops_reading_and_loses_nothing() {
    let hub = Hub::new();
    let options = ClientOptions {
        data_queue_bytes: 1024 * KIB,
        ..ClientOptions::default()
    };
    let (worker, _w) = on_hub_with(&hub, plain("worker", "b1", &[]), options).await;
    let (peer, _p) = on_hub(&hub, plain("peer", "b1", &[("worker", "b1")])).await;
    // 256 KiB each: four fill the queue, four more its parked buffer; then the client
    // stops reading, and the command sent after them waits.
    for i in 0..10u8 {
        peer.publish(&Value::Bytes(vec![i; 256 * KIB]), "worker")
            .await
            .unwrap()
            .await
            .unwrap();
    }
    peer.publish_cmd("after", "worker")
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(worker.data().len(), 4, "the queue holds 1 MiB of payloads");
    assert!(
        worker.commands().is_empty(),
        "reading stopped at the full parked buffer"
    );
    // Reading the data lets everything through, in order, and nothing is lost.
    for i in 0..10u8 {
        let got = tokio::time::timeout(WAIT, worker.recv_data())
            .await
            .expect("data arrives")
            .unwrap();
        match got.contents.value() {
            Value::Bytes(b) => assert!(b.len() == 256 * KIB && b[0] == i, "message {i}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let cmd = tokio::time::timeout(WAIT, worker.recv_cmd())
        .await
        .expect("the command arrives")
        .unwrap();
    assert_eq!(cmd.contents.cmd_name(), Some("after"));
    assert!(worker.errors().is_empty());
}

#[tokio::test(start_paused = true)]
async fn small_payloads_that_decode_large_count_as_decoded() {
    let hub = Hub::new();
    let options = ClientOptions {
        data_queue_bytes: 8 * 1024 * KIB,
        ..ClientOptions::default()
    };
    let (worker, _w) = on_hub_with(&hub, plain("worker", "b1", &[]), options).await;
    let raw = hub.transport();
    // 100,000 empty lists: a few hundred KB of pickle, some MB once decoded.
    let contents = Value::List((0..100_000).map(|_| Value::List(Vec::new())).collect());
    let payload = Envelope::new(MessageType::Data, contents).to_pickle(Protocol::default());
    assert!(payload.len() < 512 * KIB, "{}", payload.len());
    let topic = "ECCI/b1/app1/app/peer/worker";
    for _ in 0..10 {
        raw.publish(Message::new(topic, payload.clone(), QoS::ExactlyOnce))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // By payload all ten would fit in 8 MiB; by decoded size only a few do.
    let queued = worker.data().len();
    assert!(
        queued <= 4,
        "{queued} decoded lists of 100,000 queued in 8 MiB"
    );
    for _ in 0..10 {
        let got = tokio::time::timeout(WAIT, worker.recv_data())
            .await
            .expect("every message arrives once read")
            .unwrap();
        assert!(matches!(got.contents.value(), Value::List(l) if l.len() == 100_000));
    }
    assert!(worker.errors().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_oversized_file_message_is_an_error_event() {
    let hub = Hub::new();
    let options = ClientOptions {
        max_file_message: 4 * KIB,
        ..ClientOptions::default()
    };
    let (worker, _w) = on_hub_with(&hub, plain("worker", "b1", &[]), options).await;
    let raw = hub.transport();
    let contents = Value::dict([
        ("cmd", Value::from("resTransfer")),
        ("pad", Value::Bytes(vec![0; 8 * KIB])),
    ]);
    let payload = Envelope::new(MessageType::File, contents).to_pickle(Protocol::default());
    let topic = "ECCI/b1/app1/plugin/fileManager/worker";
    raw.publish(Message::new(topic, payload.clone(), QoS::ExactlyOnce))
        .await
        .unwrap()
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, worker.errors().recv())
        .await
        .expect("an error event")
        .unwrap();
    assert_eq!(event.topic, topic);
    assert_eq!(
        event.error,
        InboundError::FileTooLarge {
            size: payload.len(),
            max: 4 * KIB
        }
    );
}

fn on_port(config: &Config, port: u16) -> Config {
    Config::builder(
        "127.0.0.1",
        config.broker_id().clone(),
        config.app_id().clone(),
        config.container_name().clone(),
    )
    .port(port)
    .build()
    .unwrap()
}

/// A client with a persistent session under a fixed client id.
async fn persistent(config: &Config, port: u16) -> Client {
    let config = on_port(config, port);
    let mut mqtt = MqttConfig::new("127.0.0.1", port);
    mqtt.clean_session = false;
    mqtt.client_id = "worker-persistent".into();
    Client::builder(config)
        .transport(Arc::new(MqttTransport::start(mqtt)))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_live_packet_ids_are_one_error_event_per_burst() {
    let broker = Broker::start().await.unwrap();
    let worker_config = plain("worker", "b1", &[]);
    let worker = persistent(&worker_config, broker.port()).await;
    worker.close().await;
    // Twenty messages wait for the absent session; on its return they go out in one
    // batch, the 2nd to 6th with the 1st's packet id.
    let publisher = MqttTransport::start(MqttConfig::new("127.0.0.1", broker.port()));
    for i in 0..20i64 {
        let payload =
            Envelope::new(MessageType::Data, Value::from(i)).to_pickle(Protocol::default());
        let topic = "ECCI/b1/app1/app/peer/worker";
        let r = publisher
            .publish(Message::new(topic, payload, QoS::ExactlyOnce))
            .await
            .unwrap();
        tokio::time::timeout(WAIT, r).await.unwrap().unwrap();
    }
    broker.reuse_live_packet_ids(5);
    let worker = persistent(&worker_config, broker.port()).await;
    let mut got = Vec::new();
    while got.len() < 15 {
        let m = tokio::time::timeout(WAIT, worker.recv_data())
            .await
            .expect("data arrives")
            .unwrap();
        got.push(m.decode::<i64>().unwrap());
    }
    let mut expected = vec![0];
    expected.extend(6..20);
    assert_eq!(got, expected);
    let event = worker.errors().try_recv().expect("one error event");
    assert_eq!(event.topic, "ECCI/b1/app1/app/peer/worker");
    assert!(
        matches!(event.error, InboundError::DuplicatePacketId { .. }),
        "{event:?}"
    );
    assert!(worker.errors().try_recv().is_none(), "one per burst");
    assert_eq!(worker.metrics().transport.duplicates_dropped, 5);
    worker.close().await;
    publisher.close().await;
}

#[tokio::test(start_paused = true)]
async fn error_events_carry_payloads_within_their_byte_bound() {
    let hub = Hub::new();
    let options = ClientOptions {
        error_queue_bytes: 1024 * KIB,
        ..ClientOptions::default()
    };
    let (worker, _w) = on_hub_with(&hub, plain("worker", "b1", &[]), options).await;
    let raw = hub.transport();
    // Not pickles: each an error event carrying its 400 KiB; two payloads fit in 1 MiB,
    // the other events come without theirs.
    for i in 0..5u8 {
        raw.publish(Message::new(
            "ECCI/b1/app1/app/peer/worker",
            vec![i; 400 * KIB],
            QoS::ExactlyOnce,
        ))
        .await
        .unwrap()
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = worker.metrics();
    assert_eq!(metrics.errors, 5);
    assert_eq!(metrics.errors_dropped, 0);
    assert_eq!(metrics.error_payloads_dropped, 3);
    let sizes: Vec<usize> = std::iter::from_fn(|| worker.errors().try_recv())
        .map(|e| e.payload.len())
        .collect();
    assert_eq!(sizes, [400 * KIB, 400 * KIB, 0, 0, 0]);
    // Taken, they make room for the next one's payload.
    raw.publish(Message::new(
        "ECCI/b1/app1/app/peer/worker",
        vec![9; 400 * KIB],
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = worker.errors().try_recv().unwrap();
    assert_eq!(last.payload.len(), 400 * KIB);
}
