//! File transfer through the facade: clients on the embedded broker with the
//! local fileManager, async and blocking, and what the client does with bad
//! file messages and a missing container type.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_client::{Client, ClientOptions, Error, blocking};
use ecci_files::local::LocalFileManager;
use ecci_proto::config::{Config, ContainerType};
use ecci_proto::pickle::Value;
use ecci_transport::broker::Broker;
use ecci_transport::memory::Hub;
use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};

fn config(me: &str, kind: Option<ContainerType>, targets: &[(&str, &str)], port: u16) -> Config {
    let mut b = Config::builder(
        "127.0.0.1",
        "cloud".parse().unwrap(),
        APP.parse().unwrap(),
        me.parse().unwrap(),
    )
    .port(port);
    for (name, broker) in targets {
        b = b.pub_target(name.parse().unwrap(), broker.parse().unwrap());
    }
    if let Some(kind) = kind {
        b = b.container_type(kind);
    }
    b.build().unwrap()
}

async fn file_manager(broker: &Broker, dir: &std::path::Path) -> LocalFileManager {
    let transport = Arc::new(MqttTransport::start(MqttConfig::new(
        "127.0.0.1",
        broker.port(),
    )));
    LocalFileManager::start_local(
        transport,
        APP.parse().unwrap(),
        "cloud".parse().unwrap(),
        dir,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_object_to_prefix_selected_targets() {
    let broker = Broker::start().await.unwrap();
    let dir = temp_dir("files-async");
    let fm = file_manager(&broker, &dir.join("store")).await;
    let port = broker.port();
    let targets = [
        ("worker1", "cloud"),
        ("worker2", "cloud"),
        ("store", "cloud"),
    ];
    let sender = Client::connect(config("sender", Some(ContainerType::Cloud), &targets, port))
        .await
        .unwrap();
    let w1 = Client::connect(config("worker1", None, &[], port))
        .await
        .unwrap();
    let w2 = Client::connect(config("worker2", None, &[], port))
        .await
        .unwrap();
    let store = Client::connect(config("store", None, &[], port))
        .await
        .unwrap();

    let src = dir.join("model.bin");
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    // "worker" selects worker1 and worker2, not store (wire.md §5).
    let sent = sender
        .files()
        .send_file(&src, "model.bin", "worker")
        .unwrap();
    let sent = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    assert_eq!(sent.targets.len(), 1);
    assert_eq!(sent.targets[0].1, ["worker1", "worker2"]);
    for (i, w) in [&w1, &w2].into_iter().enumerate() {
        let offer = tokio::time::timeout(WAIT, w.files().next_offer())
            .await
            .unwrap()
            .unwrap();
        let path = dir.join(format!("got{i}.bin"));
        assert_eq!(offer.download_to(&path).await.unwrap(), bytes.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    let object = ("weights", vec![1.5, 2.5]);
    let sent = sender
        .files()
        .send_object(&object, "weights", "store")
        .unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let offer = tokio::time::timeout(WAIT, store.files().next_offer())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.file_name, "weights");
    let value = offer.download_object().await.unwrap();
    assert_eq!(
        value,
        Value::Tuple(vec![
            Value::from("weights"),
            Value::List(vec![Value::Float(1.5), Value::Float(2.5)])
        ])
    );

    let err = sender.files().send_file(&src, "x", "nobody").unwrap_err();
    assert!(matches!(err, Error::Target(_)), "{err:?}");
    for c in [sender, w1, w2, store] {
        c.close().await;
    }
    fm.shutdown().await.unwrap();
}

/// The fileManager's replies to the client's own sends get through while its data queue is
/// full and unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_completes_while_the_data_queue_is_full() {
    const QUEUE: usize = 4;
    let broker = Broker::start().await.unwrap();
    let dir = temp_dir("files-hol");
    let fm = file_manager(&broker, &dir.join("store")).await;
    let port = broker.port();
    let sender = Client::builder(config(
        "sender",
        Some(ContainerType::Cloud),
        &[("store", "cloud")],
        port,
    ))
    .options(ClientOptions {
        data_queue: QUEUE,
        ..ClientOptions::default()
    })
    .connect()
    .await
    .unwrap();
    let store = Client::connect(config("store", None, &[("sender", "cloud")], port))
        .await
        .unwrap();
    let sent = 2 * QUEUE - 1;
    for i in 0..sent {
        store.publish(&i, "sender").await.unwrap().await.unwrap();
    }
    // All of them read from the transport: the queue and its parked buffer hold them.
    tokio::time::timeout(WAIT, async {
        while sender.metrics().data < sent as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the client reads on while its data queue is full");

    let receipt = sender
        .files()
        .send_object(&("weights", 1), "weights", "store")
        .unwrap();
    tokio::time::timeout(WAIT, receipt)
        .await
        .expect("the send completes while the data queue is full")
        .unwrap();
    for i in 0..sent {
        assert_eq!(
            sender.recv_data().await.unwrap().decode::<usize>().unwrap(),
            i
        );
    }
    for c in [sender, store] {
        c.close().await;
    }
    fm.shutdown().await.unwrap();
}

#[test]
fn blocking_send_file_and_download() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(Broker::start()).unwrap();
    let dir = temp_dir("files-blocking");
    let fm = runtime.block_on(file_manager(&broker, &dir.join("store")));
    let port = broker.port();
    let sender = blocking::Client::connect(config(
        "sender",
        Some(ContainerType::Cloud),
        &[("containerB", "cloud")],
        port,
    ))
    .unwrap();
    let receiver = blocking::Client::connect(config("containerB", None, &[], port)).unwrap();

    let src = dir.join("test.py");
    std::fs::write(&src, b"print('hello')\n").unwrap();
    sender.send_file(&src, "test", "containerB").unwrap();
    let offer = receiver
        .next_offer_timeout(WAIT)
        .unwrap()
        .expect("an offer");
    let dest = dir.join("out.py");
    assert_eq!(receiver.download_to(&offer, &dest).unwrap(), 15);
    assert_eq!(std::fs::read(&dest).unwrap(), b"print('hello')\n");

    sender
        .send_object(&vec!["2", "33"], "contents", "containerB")
        .unwrap();
    let offer = receiver
        .next_offer_timeout(WAIT)
        .unwrap()
        .expect("an offer");
    assert_eq!(
        receiver.download_object(&offer).unwrap(),
        Value::List(vec![Value::from("2"), Value::from("33")])
    );
    assert!(
        receiver
            .next_offer_timeout(Duration::from_millis(10))
            .unwrap()
            .is_none()
    );
    sender.close();
    receiver.close();
    runtime.block_on(fm.shutdown()).unwrap();
}

#[tokio::test]
async fn missing_container_type_names_the_variable() {
    let hub = Hub::new();
    let (client, _t) = on_hub(&hub, plain("s", "b1", &[("r", "b1")])).await;
    let err = client.files().send_object(&1, "x", "r").unwrap_err();
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some("sending \"x\": the container type is not set (ECCI_CONTAINER_TYPE)")
    );
    client.close().await;
}

#[tokio::test]
async fn a_bad_file_message_is_an_error_event() {
    let hub = Hub::new();
    let (client, _t) = on_hub(&hub, plain("r", "b1", &[])).await;
    let raw = hub.transport();
    let envelope = ecci_proto::Envelope::new(
        ecci_proto::MessageType::File,
        Value::dict([
            ("cmd", Value::from("resTransfer")),
            ("file_name", Value::from("f")),
        ]),
    );
    let payload = envelope.to_pickle(ecci_proto::Protocol::V4);
    raw.publish(Message::new(
        "ECCI/b1/app1/plugin/fileManager/r",
        payload,
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    let event = tokio::time::timeout(WAIT, client.errors().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.topic, "ECCI/b1/app1/plugin/fileManager/r");
    assert_eq!(
        std::error::Error::source(&event.error)
            .map(ToString::to_string)
            .as_deref(),
        Some("resTransfer: missing key 'getURL'")
    );
    client.close().await;
}
