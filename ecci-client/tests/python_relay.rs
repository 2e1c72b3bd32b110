//! The fileManager relay of wire.md §6 step 5 across two bridged mosquittos (`cloud` and
//! `edge1`, the edge one bridging `ECCI/cloud/#` out and `ECCI/edge1/#` in), with a
//! fileManager plugin written in Python from wire.md alone (`tests/python/file_peer.py
//! filemanager cloud|edge`: paho, a dict as the store, http.server for the URLs) in one
//! role and our `LocalFileManager` in the other:
//!
//! - Python cloud plugin → our edge plugin: what we accept and do as the edge side;
//! - our cloud plugin → Python edge plugin: what we send as the cloud side. The Python plugin
//!   iterates a `reqTransfer`'s target as a dict, as the platform's does, so the relay we
//!   used to send (`reqTransfer` with a list) would kill it.
//!
//! A Rust cloud container sends a file to two containers on `edge1`; both download the same
//! bytes from the edge plugin's store. Needs mosquitto (skipped without it unless
//! `ECCI_REQUIRE_BROKER=1`) and python3 with paho-mqtt.

mod common;

use std::sync::Arc;

use common::python::{self, Peer};
use common::{WAIT, temp_dir};
use ecci_client::{Client, FileOffer};
use ecci_files::local::{Backend, FileManagerOptions, LocalFileManager, LocalStore};
use ecci_proto::config::{Config, ContainerType};
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{Event, Message, MqttTransport, QoS, Transport};

const FILE_NAME: &str = "relayed model.bin";

/// Two mosquittos, the edge one bridged to the cloud one as the platform does.
struct Brokers {
    cloud: Mosquitto,
    edge: Mosquitto,
}

impl Brokers {
    async fn start() -> Option<Brokers> {
        let mut cloud = Mosquitto::prepare()?;
        cloud.configure("allow_anonymous true\n");
        cloud.up();
        let mut edge = Mosquitto::prepare()?;
        edge.configure(&format!(
            "allow_anonymous true\n\
             connection edge1-to-cloud\n\
             address 127.0.0.1:{}\n\
             bridge_protocol_version mqttv311\n\
             cleansession true\n\
             topic ECCI/cloud/# out 2\n\
             topic ECCI/edge1/# in 2\n",
            cloud.port()
        ));
        edge.up();
        let brokers = Brokers { cloud, edge };
        brokers.bridged("cloud", "edge1").await;
        brokers.bridged("edge1", "cloud").await;
        Some(brokers)
    }

    fn port(&self, id: &str) -> u16 {
        if id == "cloud" {
            self.cloud.port()
        } else {
            self.edge.port()
        }
    }

    fn transport(&self, id: &str) -> Arc<dyn Transport> {
        let m = if id == "cloud" {
            &self.cloud
        } else {
            &self.edge
        };
        Arc::new(MqttTransport::start(m.mqtt_config()))
    }

    /// Waits until a message published on broker `from` for broker `to` reaches `to`:
    /// the bridge is up (probes are sent again until one arrives, bounded by WAIT).
    async fn bridged(&self, from: &str, to: &str) {
        let sink = self.transport(to);
        let mut events = sink.take_events().unwrap();
        let topic = format!("ECCI/{to}/probe/{from}");
        sink.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
        let source = self.transport(from);
        let arrived = async {
            loop {
                let receipt = source
                    .publish(Message::new(topic.clone(), "probe", QoS::AtLeastOnce))
                    .await
                    .unwrap();
                receipt.await.unwrap();
                let next = tokio::time::timeout(std::time::Duration::from_millis(200), async {
                    loop {
                        if let Some(Event::Message(_)) = events.recv().await {
                            return;
                        }
                    }
                });
                if next.await.is_ok() {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, arrived)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "bridge {from} → {to} not up; edge log:\n{}",
                    self.edge.log()
                )
            });
        source.close().await;
        sink.close().await;
    }

    /// A client of container `me` on broker `broker` of `app`.
    async fn client(&self, app: &str, broker: &str, me: &str, targets: &[(&str, &str)]) -> Client {
        let mut b = Config::builder(
            "127.0.0.1",
            broker.parse().unwrap(),
            app.parse().unwrap(),
            me.parse().unwrap(),
        )
        .port(self.port(broker))
        .container_type(ContainerType::Cloud);
        for (name, broker) in targets {
            b = b.pub_target(name.parse().unwrap(), broker.parse().unwrap());
        }
        Client::connect(b.build().unwrap()).await.unwrap()
    }

    /// The Python fileManager of broker `id` in `role`.
    async fn python_plugin(&self, app: &str, id: &str, role: &str) -> Peer {
        let broker = ("127.0.0.1".to_owned(), self.port(id));
        let mut command = python::command(
            "file_peer.py",
            "filemanager",
            app,
            &broker,
            "fileManager",
            &[],
            None,
        );
        command.arg(role).env("ECCI_LOCAL_BROKER_ID", id);
        let mut peer = Peer::spawn(command);
        peer.until("READY").await;
        peer
    }

    /// Our fileManager of broker `id` in `mode`, with a local store under `dir`.
    async fn our_plugin(
        &self,
        app: &str,
        id: &str,
        mode: ContainerType,
        dir: &std::path::Path,
    ) -> LocalFileManager {
        LocalFileManager::start(
            self.transport(id),
            app.parse().unwrap(),
            id.parse().unwrap(),
            Backend::Local(LocalStore::start(dir).await.unwrap()),
            FileManagerOptions {
                mode,
                ..FileManagerOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

/// A few MiB that no reordering leaves unchanged.
fn content() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..2 * 1024 * 1024 + 13)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn offer(client: &Client) -> FileOffer {
    let offer = tokio::time::timeout(WAIT, client.files().next_offer())
        .await
        .expect("an offer in time")
        .unwrap();
    assert_eq!(
        (offer.sender.as_str(), offer.file_name.as_str()),
        ("fileManager", FILE_NAME)
    );
    offer
}

/// Sends [`content`] from a cloud container to `r1` and `r2` on `edge1`; both download it.
async fn send_to_two_edge_receivers(brokers: &Brokers, app: &str, dir: &std::path::Path) {
    let sender = brokers
        .client(app, "cloud", "rsend", &[("r1", "edge1"), ("r2", "edge1")])
        .await;
    let receivers = [
        brokers.client(app, "edge1", "r1", &[]).await,
        brokers.client(app, "edge1", "r2", &[]).await,
    ];
    let bytes = content();
    let src = dir.join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let sent = sender.files().send_file(&src, FILE_NAME, "r").unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    for (i, r) in receivers.iter().enumerate() {
        let path = dir.join(format!("got-{i}.bin"));
        offer(r).await.download_to(&path).await.unwrap();
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "r{} got other bytes",
            i + 1
        );
        assert_eq!(r.metrics().errors, 0);
    }
    sender.close().await;
    for r in receivers {
        r.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloud_plugin_relays_to_our_edge_plugin() {
    let Some(brokers) = Brokers::start().await else {
        return;
    };
    let app = common::mosquitto::app_id("relay-in");
    let dir = temp_dir("relay-in");
    let mut cloud = brokers.python_plugin(&app, "cloud", "cloud").await;
    let edge = brokers
        .our_plugin(&app, "edge1", ContainerType::Edge, &dir.join("edge-store"))
        .await;

    send_to_two_edge_receivers(&brokers, &app, &dir).await;
    assert!(
        cloud
            .until("STORED")
            .await
            .starts_with(&format!("STORED {FILE_NAME} "))
    );
    assert_eq!(
        cloud.until("RELAYED").await,
        format!("RELAYED {FILE_NAME} edge1 r1 r2")
    );
    // Our edge plugin took the relay, copied the object once and offered its own URLs.
    let store = edge.store().unwrap();
    let copy = store.object_path(&app, FILE_NAME).unwrap();
    assert!(std::fs::read(copy).unwrap() == content());
    let count = |method: &str| {
        store
            .requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    };
    assert_eq!((count("PUT"), count("GET")), (1, 2));
    let stats = edge.stats();
    assert_eq!((stats.handled, stats.refused, stats.failed), (1, 0, 0));
    cloud.exits_cleanly().await;
    edge.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_cloud_plugin_relays_to_a_python_edge_plugin() {
    let Some(brokers) = Brokers::start().await else {
        return;
    };
    let app = common::mosquitto::app_id("relay-out");
    let dir = temp_dir("relay-out");
    let cloud = brokers
        .our_plugin(
            &app,
            "cloud",
            ContainerType::Cloud,
            &dir.join("cloud-store"),
        )
        .await;
    let mut edge = brokers.python_plugin(&app, "edge1", "edge").await;

    send_to_two_edge_receivers(&brokers, &app, &dir).await;
    // The Python edge plugin understood our relay: it copied the object and offered it.
    assert_eq!(
        edge.until("COPIED").await,
        format!("COPIED {FILE_NAME} {} r1 r2", content().len())
    );
    let stats = cloud.stats();
    // reqPutURL and reqTransfer, answered; the relay was one message to the edge plugin.
    assert_eq!((stats.handled, stats.refused, stats.failed), (2, 0, 0));
    let gets = cloud
        .store()
        .unwrap()
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(
        gets, 1,
        "only the edge plugin downloaded from the cloud store"
    );
    // Still alive and without an error: it exits cleanly when told.
    edge.exits_cleanly().await;
    cloud.shutdown().await.unwrap();
}
