//! The MQTT half of transfers: containers' [`FileExchange`]s and the
//! [`LocalFileManager`] on embedded brokers (two of them, joined by a tiny
//! bridge), and hand-written plugins on the in-memory hub where exact
//! sequences matter: expired URLs, hostile names, serialization by name.

mod common;

use common::TempDir;

use std::sync::Arc;
use std::time::Duration;

use ecci_files::local::{Backend, FileManagerOptions, LocalFileManager, LocalStore};
use ecci_files::sigv4::Method;
use ecci_files::{
    BackoffConfig, ErrorKind, ExchangeOptions, FileExchange, FileOffer, FileSource, Identity,
    InboundFile, PresignedUrl, Refusal, RefusalReason, RetryConfig, TransferConfig,
};
use ecci_proto::config::{ContainerType, Target};
use ecci_proto::envelope::{Envelope, MessageType};
use ecci_proto::file::FileMessage;
use ecci_proto::pickle::{DecodeLimits, Protocol, Value};
use ecci_proto::topic::AppTopic;
use ecci_proto::{AppId, BrokerId, ContainerName};
use ecci_transport::broker::Broker;
use ecci_transport::memory::Hub;
use ecci_transport::{Event, Message, MqttConfig, MqttTransport, QoS, Transport};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const APP: &str = "app1";
const WAIT: Duration = Duration::from_secs(60);

fn b(s: &str) -> BrokerId {
    s.parse().unwrap()
}

fn c(s: &str) -> ContainerName {
    s.parse().unwrap()
}

fn target(name: &str, broker: &str) -> Target {
    Target::new(c(name), b(broker))
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mqtt(broker: &Broker) -> Arc<dyn Transport> {
    Arc::new(MqttTransport::start(MqttConfig::new(
        "127.0.0.1",
        broker.port(),
    )))
}

fn quick() -> ExchangeOptions {
    ExchangeOptions {
        reply_timeout: Duration::from_secs(20),
        sha256: true,
        transfer: TransferConfig {
            retry: RetryConfig {
                backoff: BackoffConfig {
                    initial: Duration::ZERO,
                    ..BackoffConfig::default()
                },
                ..RetryConfig::default()
            },
            ..TransferConfig::default()
        },
        ..ExchangeOptions::default()
    }
}

/// A container: its exchange, fed by a pump that decodes the `'file'`
/// messages of its topics as the client does.
struct Container {
    exchange: FileExchange,
    pump: JoinHandle<()>,
    /// What the origin policy refused.
    refusals: mpsc::UnboundedReceiver<Refusal>,
}

impl Container {
    async fn start(
        transport: Arc<dyn Transport>,
        me: &str,
        broker: &str,
        kind: Option<ContainerType>,
    ) -> Self {
        Self::start_in(APP, transport, me, broker, kind).await
    }

    async fn start_in(
        app: &str,
        transport: Arc<dyn Transport>,
        me: &str,
        broker: &str,
        kind: Option<ContainerType>,
    ) -> Self {
        Self::start_with(app, transport, me, broker, kind, quick()).await
    }

    async fn start_with(
        app: &str,
        transport: Arc<dyn Transport>,
        me: &str,
        broker: &str,
        kind: Option<ContainerType>,
        options: ExchangeOptions,
    ) -> Self {
        let identity = Identity {
            app: app.parse().unwrap(),
            broker: b(broker),
            me: c(me),
            container_type: kind,
        };
        let mut events = transport.take_events().unwrap();
        transport
            .subscribe(
                &format!("ECCI/{broker}/{app}/plugin/+/{me}"),
                QoS::ExactlyOnce,
            )
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (report, refusals) = mpsc::unbounded_channel();
        let exchange = FileExchange::start_reporting(identity, options, transport, rx, move |r| {
            let _ = report.send(r);
        })
        .unwrap();
        let pump = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Event::Message(m) = event else { continue };
                let Ok(topic) = AppTopic::parse(&m.topic) else {
                    continue;
                };
                let Ok(env) = Envelope::from_pickle(&m.payload, &DecodeLimits::default()) else {
                    continue;
                };
                if env.kind != MessageType::File {
                    continue;
                }
                let Ok(message) = FileMessage::from_value(&env.contents) else {
                    continue;
                };
                let inbound = InboundFile {
                    sender: topic.sender,
                    receiver: topic.receiver,
                    message,
                };
                if tx.send(inbound).await.is_err() {
                    return;
                }
            }
        });
        Self {
            exchange,
            pump,
            refusals,
        }
    }

    async fn refusal(&mut self) -> Refusal {
        tokio::time::timeout(WAIT, self.refusals.recv())
            .await
            .expect("a refusal in time")
            .unwrap()
    }

    async fn offer(&self) -> FileOffer {
        tokio::time::timeout(WAIT, self.exchange.next_offer())
            .await
            .expect("an offer in time")
            .expect("the exchange is open")
    }

    async fn close(self) {
        self.exchange.close().await;
        self.pump.abort();
    }
}

/// Forwards `ECCI/{to_id}/#` from one broker to the other, both ways: what a
/// platform bridge does for the file topics.
struct Bridge {
    tasks: Vec<JoinHandle<()>>,
}

impl Bridge {
    async fn start(a: &Broker, a_id: &str, z: &Broker, z_id: &str) -> Self {
        let mut tasks = Vec::new();
        for (from, to, to_id) in [(a, z, z_id), (z, a, a_id)] {
            let source = mqtt(from);
            let sink = mqtt(to);
            let mut events = source.take_events().unwrap();
            source
                .subscribe(&format!("ECCI/{to_id}/#"), QoS::ExactlyOnce)
                .await
                .unwrap();
            tasks.push(tokio::spawn(async move {
                let _keep = source;
                while let Some(event) = events.recv().await {
                    if let Event::Message(m) = event {
                        let forward = Message::new(m.topic, m.payload, QoS::ExactlyOnce);
                        let Ok(receipt) = sink.publish(forward).await else {
                            return;
                        };
                        drop(receipt);
                    }
                }
            }));
        }
        Self { tasks }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Two brokers, `cloud` and `edge1`, each with its fileManager, bridged.
struct Platform {
    cloud: Broker,
    edge: Broker,
    cloud_fm: LocalFileManager,
    edge_fm: LocalFileManager,
    _bridge: Bridge,
    _dirs: (TempDir, TempDir),
}

impl Platform {
    async fn start(tag: &str) -> Self {
        let cloud = Broker::start().await.unwrap();
        let edge = Broker::start().await.unwrap();
        let bridge = Bridge::start(&cloud, "cloud", &edge, "edge1").await;
        let dirs = (
            TempDir::new(&format!("{tag}-cloud")),
            TempDir::new(&format!("{tag}-edge")),
        );
        let cloud_fm = LocalFileManager::start_local(
            mqtt(&cloud),
            APP.parse().unwrap(),
            b("cloud"),
            dirs.0.path(),
        )
        .await
        .unwrap();
        let edge_fm = LocalFileManager::start(
            mqtt(&edge),
            APP.parse().unwrap(),
            b("edge1"),
            Backend::Local(LocalStore::start(dirs.1.path()).await.unwrap()),
            FileManagerOptions {
                mode: ContainerType::Edge,
                ..FileManagerOptions::default()
            },
        )
        .await
        .unwrap();
        Self {
            cloud,
            edge,
            cloud_fm,
            edge_fm,
            _bridge: bridge,
            _dirs: dirs,
        }
    }

    fn broker(&self, id: &str) -> &Broker {
        if id == "cloud" {
            &self.cloud
        } else {
            &self.edge
        }
    }

    async fn container(&self, me: &str, broker: &str, kind: Option<ContainerType>) -> Container {
        Container::start(mqtt(self.broker(broker)), me, broker, kind).await
    }

    fn cloud_store(&self) -> &LocalStore {
        self.cloud_fm.store().unwrap()
    }

    fn edge_store(&self) -> &LocalStore {
        self.edge_fm.store().unwrap()
    }

    async fn shutdown(self) {
        self.cloud_fm.shutdown().await.unwrap();
        self.edge_fm.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_file_to_three_targets_on_two_brokers() {
    let platform = Platform::start("cloud2").await;
    let sender = platform
        .container("sender", "cloud", Some(ContainerType::Cloud))
        .await;
    let r1 = platform.container("r1", "cloud", None).await;
    let r2 = platform.container("r2", "edge1", None).await;
    let r3 = platform.container("r3", "edge1", None).await;
    let work = TempDir::new("cloud2-work");
    let bytes = data(3 * 1024 * 1024 + 17, 7);
    let src = work.path().join("src.bin");
    std::fs::write(&src, &bytes).unwrap();

    let handle = sender
        .exchange
        .send(
            FileSource::Path(src.clone()),
            "model.bin",
            vec![
                target("r1", "cloud"),
                target("r2", "edge1"),
                target("r3", "edge1"),
            ],
        )
        .unwrap();
    let progress = handle.progress();
    let sent = tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(sent.bytes, bytes.len() as u64);
    assert_eq!(sent.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    assert_eq!(progress.borrow().upload.done, bytes.len() as u64);
    assert_eq!(progress.borrow().stores_done, 1);

    for (r, dir) in [(&r1, "r1"), (&r2, "r2"), (&r3, "r3")] {
        let offer = r.offer().await;
        assert_eq!(offer.file_name, "model.bin");
        assert_eq!(offer.sender, "fileManager");
        assert_eq!(offer.sha256, sent.sha256);
        assert!(!format!("{offer:?}").contains("signature="), "{offer:?}");
        let out = TempDir::new(dir);
        let path = offer.download_into(out.path()).await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), bytes);
    }
    // The edge receivers got the object from their own broker's store: the
    // cloud plugin relayed one resTransfer for the two of them (wire.md §6 step
    // 5) and the edge plugin copied the object once before offering it.
    let edge_copy = platform.edge_store().object_path(APP, "model.bin").unwrap();
    assert_eq!(std::fs::read(edge_copy).unwrap(), bytes);
    let edge_puts = platform
        .edge_store()
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(edge_puts, 1, "one relay copy for two targets");
    let cloud_puts = platform
        .cloud_store()
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(cloud_puts, 1, "a cloud sender uploads once");

    sender.close().await;
    r1.close().await;
    r2.close().await;
    r3.close().await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_file_to_a_lone_target_on_another_broker_goes_directly() {
    let platform = Platform::start("cloud1").await;
    let sender = platform
        .container("sender", "cloud", Some(ContainerType::Cloud))
        .await;
    let r2 = platform.container("r2", "edge1", None).await;
    let handle = sender
        .exchange
        .send(
            FileSource::Object(Value::from("lone")),
            "lone",
            vec![target("r2", "edge1")],
        )
        .unwrap();
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    let offer = r2.offer().await;
    assert_eq!(offer.download_object().await.unwrap(), Value::from("lone"));
    // No relay: the cloud plugin offered its own URL across the bridge, as the
    // platform's plugin does for one target on a broker.
    assert!(platform.edge_store().requests().is_empty());
    assert_eq!(platform.edge_fm.stats().handled, 0);
    sender.close().await;
    r2.close().await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_object_to_two_targets_on_two_brokers() {
    let platform = Platform::start("edge2").await;
    let sender = platform
        .container("sender", "edge1", Some(ContainerType::Edge))
        .await;
    let r1 = platform.container("r1", "cloud", None).await;
    let r2 = platform.container("r2", "edge1", None).await;
    let object = Value::List(vec![Value::from("2"), Value::from("33")]);

    let sent = sender
        .exchange
        .send(
            FileSource::Object(object.clone()),
            "contents",
            vec![target("r1", "cloud"), target("r2", "edge1")],
        )
        .unwrap();
    let progress = sent.progress();
    let sent = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    assert_eq!(progress.borrow().stores, 2);
    assert_eq!(sent.targets.len(), 2);
    for r in [&r1, &r2] {
        let offer = r.offer().await;
        assert_eq!(offer.download_object().await.unwrap(), object);
    }
    // An edge sender uploads to the store of each target broker itself.
    for store in [platform.cloud_store(), platform.edge_store()] {
        let puts = store
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count();
        assert_eq!(puts, 1);
    }
    // A Python receiver reads the object with pickle.loads: protocol 4 as Python writes it.
    let stored =
        std::fs::read(platform.edge_store().object_path(APP, "contents").unwrap()).unwrap();
    assert_eq!(stored, ecci_proto::pickle::encode(&object, Protocol::V4));

    sender.close().await;
    r1.close().await;
    r2.close().await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_then_success_and_interrupted_download_resumed() {
    let platform = Platform::start("faults").await;
    let sender = platform
        .container("sender", "cloud", Some(ContainerType::Cloud))
        .await;
    let r1 = platform.container("r1", "cloud", None).await;
    let bytes = data(2 * 1024 * 1024, 3);
    let store = platform.cloud_store();
    store.faults().fail_next(1);
    let sent = sender
        .exchange
        .send(
            FileSource::Bytes(bytes.clone().into()),
            "f.bin",
            vec![target("r1", "cloud")],
        )
        .unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let statuses: Vec<_> = store
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(statuses, [("PUT".to_owned(), 500), ("PUT".to_owned(), 200)]);

    let offer = r1.offer().await;
    store.faults().cut_next_download_after(300_000);
    let out = TempDir::new("faults-out");
    let path = out.path().join("got.bin");
    assert_eq!(offer.download_to(&path).await.unwrap(), bytes.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let gets: Vec<_> = store
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| (r.range, r.status))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[1].1, 206, "resumed with a range: {gets:?}");

    sender.close().await;
    r1.close().await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_leaves_nothing() {
    let platform = Platform::start("sha").await;
    let sender = platform
        .container("sender", "cloud", Some(ContainerType::Cloud))
        .await;
    let r1 = platform.container("r1", "cloud", None).await;
    let sent = sender
        .exchange
        .send(
            FileSource::Bytes(b"original".to_vec().into()),
            "s.bin",
            vec![target("r1", "cloud")],
        )
        .unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let offer = r1.offer().await;
    // Someone replaces the object after the transfer was announced.
    let object = platform.cloud_store().object_path(APP, "s.bin").unwrap();
    std::fs::write(&object, b"tampered").unwrap();
    let out = TempDir::new("sha-out");
    let err = offer.download_into(out.path()).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Checksum { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    sender.close().await;
    r1.close().await;
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_without_container_type_names_the_variable() {
    let hub = Hub::new();
    let sender = Container::start(Arc::new(hub.transport()), "s", "b1", None).await;
    let err = sender
        .exchange
        .send(
            FileSource::Bytes(vec![1].into()),
            "x",
            vec![target("r", "b1")],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sending \"x\": the container type is not set (ECCI_CONTAINER_TYPE)"
    );
    let err = sender
        .exchange
        .send(
            FileSource::Bytes(vec![1].into()),
            "../x",
            vec![target("r", "b1")],
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "\"../x\" is not a plain file name");
    sender.close().await;
}

/// A hand-written plugin on the hub: every request it receives goes to the
/// test, which answers as it likes.
struct FakePlugin {
    transport: Arc<dyn Transport>,
    requests: mpsc::UnboundedReceiver<(ContainerName, FileMessage)>,
    task: JoinHandle<()>,
}

impl FakePlugin {
    async fn start(hub: &Hub, broker: &str) -> Self {
        let transport: Arc<dyn Transport> = Arc::new(hub.transport());
        let mut events = transport.take_events().unwrap();
        transport
            .subscribe(
                &format!("ECCI/{broker}/{APP}/plugin/+/fileManager"),
                QoS::ExactlyOnce,
            )
            .await
            .unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Event::Message(m) = event else { continue };
                let topic = AppTopic::parse(&m.topic).unwrap();
                let env = Envelope::from_pickle(&m.payload, &DecodeLimits::default()).unwrap();
                let msg = FileMessage::from_value(&env.contents).unwrap();
                if tx.send((topic.sender, msg)).is_err() {
                    return;
                }
            }
        });
        Self {
            transport,
            requests,
            task,
        }
    }

    async fn next(&mut self) -> FileMessage {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request in time")
            .unwrap()
            .1
    }

    async fn reply(&self, broker: &str, to: &str, message: FileMessage) {
        let topic = AppTopic::file_reply(b(broker), APP.parse::<AppId>().unwrap(), c(to));
        let payload = message.to_envelope().to_pickle(Protocol::V4);
        self.transport
            .publish(Message::new(topic.to_string(), payload, QoS::ExactlyOnce))
            .await
            .unwrap()
            .await
            .unwrap();
    }

    async fn put_url(&self, name: &str, url: PresignedUrl) {
        let reply = FileMessage::ResPutUrl {
            file_name: name.to_owned(),
            put_url: url,
            file_path: None,
        };
        self.reply("b1", "s", reply).await;
    }
}

impl Drop for FakePlugin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_put_url_is_replaced_by_a_fresh_one() {
    let hub = Hub::new();
    let root = TempDir::new("expired");
    let store = LocalStore::start(root.path()).await.unwrap();
    let mut plugin = FakePlugin::start(&hub, "b1").await;
    let sender = Container::start(
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
    )
    .await;
    let handle = sender
        .exchange
        .send(
            FileSource::Bytes(b"fresh".to_vec().into()),
            "e.bin",
            vec![target("r", "b1")],
        )
        .unwrap();
    let good = store
        .presign(Method::Put, APP, "e.bin", Duration::from_secs(60))
        .unwrap();
    // A URL whose signature the store refuses, as it refuses an expired one: 403.
    let stale = PresignedUrl::new(format!("{}0", good.expose()));
    assert!(matches!(plugin.next().await, FileMessage::ReqPutUrl { .. }));
    plugin.put_url("e.bin", stale).await;
    assert!(matches!(plugin.next().await, FileMessage::ReqPutUrl { .. }));
    plugin.put_url("e.bin", good).await;
    let FileMessage::ReqTransfer { target, sha256, .. } = plugin.next().await else {
        panic!("expected reqTransfer");
    };
    assert_eq!(target, [(b("b1"), vec![c("r")])]);
    assert_eq!(sha256.as_deref(), Some(sha256_hex(b"fresh").as_str()));
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(
        std::fs::read(store.object_path(APP, "e.bin").unwrap()).unwrap(),
        b"fresh"
    );
    sender.close().await;
    store.shutdown().await.unwrap();
}

/// Closing the exchange stops the sends in progress and waits for them: an upload stuck
/// on a frozen store used to go on after `close` (until the transfer timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stops_a_send_in_progress() {
    let hub = Hub::new();
    let root = TempDir::new("close-send");
    let store = LocalStore::start(root.path()).await.unwrap();
    let mut plugin = FakePlugin::start(&hub, "b1").await;
    let sender = Container::start(
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
    )
    .await;
    store.faults().stall_next_upload_after(64 * 1024);
    let handle = sender
        .exchange
        .send(
            FileSource::Bytes(data(4 << 20, 7).into()),
            "big.bin",
            vec![target("r", "b1")],
        )
        .unwrap();
    assert!(matches!(plugin.next().await, FileMessage::ReqPutUrl { .. }));
    let url = store
        .presign(Method::Put, APP, "big.bin", Duration::from_secs(60))
        .unwrap();
    plugin.put_url("big.bin", url).await;
    tokio::time::timeout(WAIT, store.faults().stalled())
        .await
        .expect("the upload reached the store");

    tokio::time::timeout(WAIT, sender.exchange.close())
        .await
        .expect("closed in time");
    let outcome = tokio::time::timeout(Duration::from_secs(1), handle)
        .await
        .expect("the send ended with the exchange");
    assert!(
        matches!(outcome, Err(ecci_files::FileError::Closed)),
        "{outcome:?}"
    );
    assert!(matches!(
        sender.exchange.send(
            FileSource::Bytes(b"late".to_vec().into()),
            "late.bin",
            vec![target("r", "b1")],
        ),
        Err(ecci_files::FileError::Closed)
    ));
    sender.close().await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_expired_urls_fail_naming_file_and_broker() {
    let hub = Hub::new();
    let root = TempDir::new("expired2");
    let store = LocalStore::start(root.path()).await.unwrap();
    let mut plugin = FakePlugin::start(&hub, "b1").await;
    let sender = Container::start(
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
    )
    .await;
    let handle = sender
        .exchange
        .send(
            FileSource::Bytes(b"x".to_vec().into()),
            "e.bin",
            vec![target("r", "b1")],
        )
        .unwrap();
    store.faults().expire_urls(true);
    for _ in 0..4 {
        assert!(matches!(plugin.next().await, FileMessage::ReqPutUrl { .. }));
        let url = store
            .presign(Method::Put, APP, "e.bin", Duration::from_secs(60))
            .unwrap();
        plugin.put_url("e.bin", url).await;
    }
    let err = tokio::time::timeout(WAIT, handle)
        .await
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        "sending \"e.bin\": 4 PUT URLs from the fileManager of b1 were refused"
    );
    let chain = format!("{:?}", std::error::Error::source(&err));
    assert!(!chain.contains("signature="), "{chain}");
    sender.close().await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused() {
    let hub = Hub::new();
    let plugin = FakePlugin::start(&hub, "b1").await;
    let receiver = Container::start(Arc::new(hub.transport()), "r", "b1", None).await;
    let work = TempDir::new("hostile");
    let inbox = work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for name in ["../x", "/etc/x", "a/b", ".."] {
        let offer = FileMessage::ResTransfer {
            file_name: name.to_owned(),
            get_url: PresignedUrl::new("http://127.0.0.1:9/app1/x?signature=s"),
            sha256: None,
        };
        plugin.reply("b1", "r", offer).await;
        let offer = receiver.offer().await;
        assert_eq!(offer.file_name, name);
        let err = offer.download_into(&inbox).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::BadName { .. }),
            "{name}: {err:?}"
        );
    }
    assert!(!work.path().join("x").exists());
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0);
    receiver.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_names_run_concurrently_and_one_name_is_serialized() {
    let hub = Hub::new();
    let root = TempDir::new("concurrent");
    let store = LocalStore::start(root.path()).await.unwrap();
    let mut plugin = FakePlugin::start(&hub, "b1").await;
    let sender = Container::start(
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
    )
    .await;
    let send = |name: &str| {
        sender
            .exchange
            .send(
                FileSource::Bytes(name.as_bytes().to_vec().into()),
                name,
                vec![target("r", "b1")],
            )
            .unwrap()
    };
    // Different names: both requests arrive before either is answered, so
    // neither waits for the other.
    let a = send("a");
    let b_ = send("b");
    let mut names = Vec::new();
    for _ in 0..2 {
        let FileMessage::ReqPutUrl { file_name, .. } = plugin.next().await else {
            panic!("expected reqPutURL");
        };
        names.push(file_name);
    }
    names.sort();
    assert_eq!(names, ["a", "b"]);
    for name in ["a", "b"] {
        let url = store
            .presign(Method::Put, APP, name, Duration::from_secs(60))
            .unwrap();
        plugin.put_url(name, url).await;
    }
    for _ in 0..2 {
        assert!(matches!(
            plugin.next().await,
            FileMessage::ReqTransfer { .. }
        ));
    }
    tokio::time::timeout(WAIT, a).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, b_).await.unwrap().unwrap();

    // One name twice: the second reqPutURL comes only after the first reqTransfer.
    let first = send("same");
    let second = send("same");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let request = plugin.next().await;
        seen.push(request.cmd());
        assert_eq!(request.cmd(), "reqPutURL");
        let url = store
            .presign(Method::Put, APP, "same", Duration::from_secs(60))
            .unwrap();
        plugin.put_url("same", url).await;
        let request = plugin.next().await;
        seen.push(request.cmd());
    }
    assert_eq!(
        seen,
        ["reqPutURL", "reqTransfer", "reqPutURL", "reqTransfer"]
    );
    tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    sender.close().await;
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_times_out_naming_the_broker() {
    let hub = Hub::new();
    let transport: Arc<dyn Transport> = Arc::new(hub.transport());
    let identity = Identity {
        app: APP.parse().unwrap(),
        broker: b("b1"),
        me: c("s"),
        container_type: Some(ContainerType::Edge),
    };
    let (_tx, rx) = mpsc::channel(1);
    let options = ExchangeOptions {
        reply_timeout: Duration::from_millis(50),
        ..quick()
    };
    let exchange = FileExchange::start(identity, options, transport, rx).unwrap();
    let err = exchange
        .send(
            FileSource::Bytes(vec![1].into()),
            "t.bin",
            vec![target("r", "b7")],
        )
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sending \"t.bin\": no resPutURL from the fileManager of b7 within 50ms"
    );
    exchange.close().await;
}

/// The fileManager backed by a real S3-compatible server (`ECCI_TEST_S3`, see
/// `tests/s3.rs`); the app is named after the test bucket, since the plugin
/// keeps an app's objects in the bucket `app.lower()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_manager_over_s3() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("ECCI_TEST_S3") else {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_SERVICES",
            "ECCI_TEST_S3 unset (start an S3 server with .ci/start-s3.sh)",
        );
        return;
    };
    let need = |name: &str| var(name).unwrap_or_else(|| panic!("{name} is not set"));
    let bucket = need("ECCI_TEST_S3_BUCKET");
    let presigner = ecci_files::sigv4::S3Presigner::new(
        endpoint.as_str(),
        var("ECCI_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        ecci_files::sigv4::Credentials::new(
            need("ECCI_TEST_S3_ACCESS_KEY"),
            need("ECCI_TEST_S3_SECRET_KEY"),
        ),
    )
    .unwrap();
    let broker = Broker::start().await.unwrap();
    let app: AppId = bucket.parse().unwrap();
    let fm = LocalFileManager::start(
        mqtt(&broker),
        app.clone(),
        b("cloud"),
        Backend::S3(presigner),
        FileManagerOptions::default(),
    )
    .await
    .unwrap();
    let sender = Container::start_in(
        &bucket,
        mqtt(&broker),
        "sender",
        "cloud",
        Some(ContainerType::Cloud),
    )
    .await;
    let receiver = Container::start_in(&bucket, mqtt(&broker), "r1", "cloud", None).await;
    let bytes = data(3 * 1024 * 1024 + 5, 11);
    let name = format!("xchg-{}.bin", std::process::id());
    let sent = sender
        .exchange
        .send(
            FileSource::Bytes(bytes.clone().into()),
            &name,
            vec![target("r1", "cloud")],
        )
        .unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let offer = receiver.offer().await;
    assert_eq!(offer.download_bytes(u64::MAX).await.unwrap(), bytes);
    sender.close().await;
    receiver.close().await;
    fm.shutdown().await.unwrap();
}

/// A flood of requests far beyond `max_requests` is all answered, and the
/// fileManager never handles more than `max_requests` at once: the rest wait in
/// the transport's event queue. On one thread, with the whole flood queued before
/// the fileManager runs, it fills every slot, so the peak is exactly the limit.
#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_requests_is_answered_within_the_concurrency_limit() {
    const LIMIT: usize = 4;
    const REQUESTS: usize = 300;
    let hub = Hub::new();
    let dir = TempDir::new("fm-flood");
    let store = LocalStore::start(dir.path()).await.unwrap();
    let app: AppId = APP.parse().unwrap();
    let fm = LocalFileManager::start(
        Arc::new(hub.transport()),
        app.clone(),
        b("b1"),
        Backend::Local(store),
        FileManagerOptions {
            max_requests: LIMIT,
            ..FileManagerOptions::default()
        },
    )
    .await
    .unwrap();
    let sender: Arc<dyn Transport> = Arc::new(hub.transport());
    let mut events = sender.take_events().unwrap();
    let replies = AppTopic::file_reply(b("b1"), app.clone(), c("s"));
    sender
        .subscribe(&replies.to_string(), QoS::ExactlyOnce)
        .await
        .unwrap();
    let requests = AppTopic::file_request(b("b1"), app, c("s")).to_string();
    let mut receipts = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let request = FileMessage::ReqPutUrl {
            source_broker_id: b("b1"),
            file_name: format!("f{i}"),
            file_path: None,
        };
        let payload = request.to_envelope().to_pickle(Protocol::V4);
        let message = Message::new(requests.clone(), payload, QoS::ExactlyOnce);
        receipts.push(sender.publish(message).await.unwrap());
    }
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < REQUESTS {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("every request answered in time")
            .unwrap();
        let Event::Message(m) = event else { continue };
        let env = Envelope::from_pickle(&m.payload, &DecodeLimits::default()).unwrap();
        match FileMessage::from_value(&env.contents).unwrap() {
            FileMessage::ResPutUrl { file_name, .. } => assert!(answered.insert(file_name)),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    for receipt in receipts {
        receipt.await.unwrap();
    }
    // The last handlers count themselves once their reply is acknowledged.
    tokio::time::timeout(WAIT, async {
        while (fm.stats().handled, fm.stats().in_progress) != (REQUESTS as u64, 0) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("handlers still counted as running: {:?}", fm.stats()));
    let stats = fm.stats();
    assert_eq!(stats.peak_in_progress, LIMIT as u64, "{stats:?}");
    assert_eq!((stats.refused, stats.failed), (0, 0), "{stats:?}");
    fm.shutdown().await.unwrap();
}

/// A server that only counts the connections made to it: the foreign origin
/// of a forged URL.
struct Foreign {
    port: u16,
    connections: Arc<std::sync::atomic::AtomicU64>,
    task: JoinHandle<()>,
}

impl Foreign {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            port,
            connections,
            task,
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, name: &str) -> PresignedUrl {
        PresignedUrl::new(format!(
            "{}/{APP}/{name}?X-Amz-Signature=secret",
            self.origin()
        ))
    }

    fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[track_caller]
fn check_refusal(refusal: &Refusal, cmd: &str, file: &str, origin: &str, reason: RefusalReason) {
    assert_eq!(
        (refusal.cmd, refusal.file.as_str(), refusal.origin.as_str()),
        (cmd, file, origin)
    );
    assert_eq!(refusal.reason, reason);
    let shown = refusal.to_string();
    assert!(shown.contains(file) && shown.contains(origin), "{shown}");
    assert!(!shown.contains("secret"), "the signature leaked: {shown}");
}

fn pinned(origins: &[String]) -> ExchangeOptions {
    ExchangeOptions {
        trusted_origins: origins.to_vec(),
        ..quick()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_put_url_is_ignored_and_reported() {
    let hub = Hub::new();
    let foreign = Foreign::start().await;
    let plugin = FakePlugin::start(&hub, "b1").await;
    let mut sender = Container::start(
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
    )
    .await;
    plugin.put_url("f.bin", foreign.url("f.bin")).await;
    let refusal = sender.refusal().await;
    check_refusal(
        &refusal,
        "resPutURL",
        "f.bin",
        &foreign.origin(),
        RefusalReason::Unrequested,
    );
    assert_eq!(refusal.topic, "ECCI/b1/app1/plugin/fileManager/s");
    assert_eq!(sender.exchange.refused(), 1);
    assert_eq!(foreign.connections(), 0);
    sender.close().await;
}

/// With `trusted_origins` set, a PUT URL for another origin is refused even
/// while a send waits for one; the send takes the next, trusted answer. The
/// request carries no local path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_url_outside_the_pinned_origins_is_refused() {
    let hub = Hub::new();
    let root = TempDir::new("pinned-put");
    let store = LocalStore::start(root.path()).await.unwrap();
    let store_origin = format!("http://{}", store.addr());
    let foreign = Foreign::start().await;
    let mut plugin = FakePlugin::start(&hub, "b1").await;
    let mut sender = Container::start_with(
        APP,
        Arc::new(hub.transport()),
        "s",
        "b1",
        Some(ContainerType::Cloud),
        pinned(std::slice::from_ref(&store_origin)),
    )
    .await;
    let work = TempDir::new("pinned-put-src");
    let path = work.path().join("source.bin");
    std::fs::write(&path, b"pinned").unwrap();
    let handle = sender
        .exchange
        .send(FileSource::Path(path), "p.bin", vec![target("r", "b1")])
        .unwrap();
    let request = plugin.next().await;
    assert!(
        matches!(&request, FileMessage::ReqPutUrl { file_name, file_path: None, .. } if file_name == "p.bin"),
        "{request:?}"
    );
    plugin.put_url("p.bin", foreign.url("p.bin")).await;
    let refusal = sender.refusal().await;
    check_refusal(
        &refusal,
        "resPutURL",
        "p.bin",
        &foreign.origin(),
        RefusalReason::NotAllowed,
    );
    let good = store
        .presign(Method::Put, APP, "p.bin", Duration::from_secs(60))
        .unwrap();
    plugin.put_url("p.bin", good).await;
    assert!(matches!(
        plugin.next().await,
        FileMessage::ReqTransfer { .. }
    ));
    tokio::time::timeout(WAIT, handle).await.unwrap().unwrap();
    assert_eq!(
        std::fs::read(store.object_path(APP, "p.bin").unwrap()).unwrap(),
        b"pinned"
    );
    assert_eq!(foreign.connections(), 0);
    sender.close().await;
    store.shutdown().await.unwrap();
}

/// A receiver with `trusted_origins` refuses an offer from another origin and
/// takes the next, trusted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_from_an_untrusted_origin_is_refused() {
    let hub = Hub::new();
    let foreign = Foreign::start().await;
    let trusted = "http://127.0.0.1:9".to_owned();
    let plugin = FakePlugin::start(&hub, "b1").await;
    let mut receiver = Container::start_with(
        APP,
        Arc::new(hub.transport()),
        "r",
        "b1",
        None,
        pinned(std::slice::from_ref(&trusted)),
    )
    .await;
    let offer = |name: &str, url: PresignedUrl| FileMessage::ResTransfer {
        file_name: name.to_owned(),
        get_url: url,
        sha256: None,
    };
    plugin
        .reply("b1", "r", offer("evil.bin", foreign.url("evil.bin")))
        .await;
    let good = PresignedUrl::new(format!("{trusted}/{APP}/good.bin?X-Amz-Signature=s"));
    plugin.reply("b1", "r", offer("good.bin", good)).await;
    let refusal = receiver.refusal().await;
    check_refusal(
        &refusal,
        "resTransfer",
        "evil.bin",
        &foreign.origin(),
        RefusalReason::Untrusted,
    );
    assert_eq!(receiver.offer().await.file_name, "good.bin");
    assert_eq!(foreign.connections(), 0);
    receiver.close().await;
}

/// Without `trusted_origins`, a receiver learns the store of the first offer
/// (and of every PUT URL its fileManager gave it); an offer from another
/// origin after that is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_learns_its_store_and_refuses_others() {
    let hub = Hub::new();
    let foreign = Foreign::start().await;
    let plugin = FakePlugin::start(&hub, "b1").await;
    let mut receiver = Container::start(Arc::new(hub.transport()), "r", "b1", None).await;
    let store = "http://127.0.0.1:9";
    for (name, url) in [
        (
            "a.bin",
            PresignedUrl::new(format!("{store}/{APP}/a.bin?X-Amz-Signature=s")),
        ),
        ("evil.bin", foreign.url("evil.bin")),
        (
            "b.bin",
            PresignedUrl::new(format!("{store}/{APP}/b.bin?X-Amz-Signature=s")),
        ),
    ] {
        let offer = FileMessage::ResTransfer {
            file_name: name.to_owned(),
            get_url: url,
            sha256: None,
        };
        plugin.reply("b1", "r", offer).await;
    }
    assert_eq!(receiver.offer().await.file_name, "a.bin");
    assert_eq!(receiver.offer().await.file_name, "b.bin");
    let refusal = receiver.refusal().await;
    check_refusal(
        &refusal,
        "resTransfer",
        "evil.bin",
        &foreign.origin(),
        RefusalReason::Untrusted,
    );
    assert_eq!(receiver.exchange.refused(), 1);
    assert_eq!(foreign.connections(), 0);
    receiver.close().await;
}

/// The polled offers stream, as a future: the next offer, or `None` once closed.
async fn next_of(offers: &mut ecci_files::Offers) -> Option<FileOffer> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *offers), cx))
        .await
}

/// Offers have many consumers: a stream left waiting (a `select!` branch that
/// lost) holds nothing, so `next_offer` and other streams take offers
/// meanwhile, each once and in order; a dropped `next_offer` loses none; after
/// `close` every stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_have_many_consumers_and_none_is_lost() {
    let hub = Hub::new();
    let trusted = "http://127.0.0.1:9".to_owned();
    let plugin = FakePlugin::start(&hub, "b1").await;
    let receiver = Container::start_with(
        APP,
        Arc::new(hub.transport()),
        "r",
        "b1",
        None,
        pinned(std::slice::from_ref(&trusted)),
    )
    .await;
    let offer = |name: &str| FileMessage::ResTransfer {
        file_name: name.to_owned(),
        get_url: PresignedUrl::new(format!("{trusted}/{APP}/{name}?X-Amz-Signature=s")),
        sha256: None,
    };
    let mut idle = receiver.exchange.offers();
    let short = Duration::from_millis(50);
    assert!(
        tokio::time::timeout(short, next_of(&mut idle))
            .await
            .is_err()
    );
    let mut polled_once = receiver.exchange.offers();
    let first_poll = std::future::poll_fn(|cx| {
        let poll = futures_core::Stream::poll_next(std::pin::Pin::new(&mut polled_once), cx);
        std::task::Poll::Ready(poll.is_pending())
    });
    assert!(first_poll.await, "no offer yet");
    assert!(
        tokio::time::timeout(short, receiver.exchange.next_offer())
            .await
            .is_err()
    );
    assert!(receiver.exchange.try_next_offer().is_none());
    for name in ["1.bin", "2.bin", "3.bin", "4.bin"] {
        plugin.reply("b1", "r", offer(name)).await;
    }
    // `polled_once` is pending and never polled again: it holds nothing.
    assert_eq!(receiver.offer().await.file_name, "1.bin");
    let mut other = receiver.exchange.offers();
    let second = tokio::time::timeout(WAIT, next_of(&mut other)).await;
    assert_eq!(second.unwrap().unwrap().file_name, "2.bin");
    let third = tokio::time::timeout(WAIT, next_of(&mut idle)).await;
    assert_eq!(third.unwrap().unwrap().file_name, "3.bin");
    let fourth = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(offer) = receiver.exchange.try_next_offer() {
                return offer;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert_eq!(fourth.await.unwrap().file_name, "4.bin");
    let exchange = receiver.exchange.clone();
    receiver.close().await;
    for stream in [&mut idle, &mut other, &mut polled_once] {
        let end = tokio::time::timeout(WAIT, next_of(stream)).await;
        assert!(end.unwrap().is_none(), "the stream ends after close");
    }
    assert!(exchange.next_offer().await.is_none());
}
