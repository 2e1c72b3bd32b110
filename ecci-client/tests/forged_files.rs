//! Forged fileManager answers from another client on the mosquitto at `ECCI_TEST_BROKER`
//! (`host:port`): a `resPutURL` nobody asked for, one racing the real plugin's answer, and a
//! `resTransfer` pointing at a foreign origin. Nothing is uploaded to or downloaded from the
//! foreign origin (a server that counts the connections made to it stays at 0), and each
//! forgery is an error event naming the file and the origin, never the signature.
//!
//! Without `ECCI_TEST_BROKER` the tests return early, unless `ECCI_REQUIRE_BROKER=1`
//! (CI: `.ci/start-mosquitto.sh`). Waits are bounded upper limits.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::mosquitto::{app_id, broker, config};
use common::{WAIT, temp_dir};
use ecci_client::{Client, ErrorEvent, InboundError};
use ecci_files::local::LocalFileManager;
use ecci_files::{PresignedUrl, RefusalReason};
use ecci_proto::config::ContainerType;
use ecci_proto::envelope::Envelope;
use ecci_proto::file::FileMessage;
use ecci_proto::pickle::{DecodeLimits, Protocol};
use ecci_transport::{Event, Message, MqttConfig, MqttTransport, QoS, Transport};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The foreign origin: counts connections, answers nothing.
struct Foreign {
    port: u16,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Foreign {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
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

    fn url(&self, app: &str, name: &str) -> PresignedUrl {
        PresignedUrl::new(format!(
            "{}/{app}/{name}?X-Amz-Signature=secret",
            self.origin()
        ))
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Another client on the broker: it publishes as the fileManager would.
struct Forger {
    transport: Arc<dyn Transport>,
    app: String,
}

impl Forger {
    fn start(app: &str, broker: &(String, u16)) -> Self {
        Self {
            transport: Arc::new(MqttTransport::start(MqttConfig::new(
                broker.0.clone(),
                broker.1,
            ))),
            app: app.to_owned(),
        }
    }

    async fn send(&self, to: &str, message: FileMessage) {
        let topic = format!("ECCI/b1/{}/plugin/fileManager/{to}", self.app);
        let payload = message.to_envelope().to_pickle(Protocol::V4);
        self.transport
            .publish(Message::new(topic, payload, QoS::ExactlyOnce))
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Our fileManager for `app` on broker id `b1`.
async fn file_manager(
    app: &str,
    broker: &(String, u16),
    dir: &std::path::Path,
) -> LocalFileManager {
    let transport = Arc::new(MqttTransport::start(MqttConfig::new(
        broker.0.clone(),
        broker.1,
    )));
    LocalFileManager::start_local(transport, app.parse().unwrap(), "b1".parse().unwrap(), dir)
        .await
        .unwrap()
}

/// The next error event, which must be a refused file URL; returns the refusal's parts.
async fn refusal(client: &Client) -> (String, String, String, RefusalReason) {
    let event: ErrorEvent = tokio::time::timeout(WAIT, client.errors().recv())
        .await
        .expect("an error event in time")
        .expect("the client is open");
    let shown = format!("{event}: {}", event.error);
    let InboundError::FileUrl(refusal) = event.error else {
        panic!("not a refused file URL: {shown}");
    };
    let detail = refusal.to_string();
    assert!(!detail.contains("secret"), "the signature leaked: {detail}");
    assert!(
        detail.contains(&refusal.file) && detail.contains(&refusal.origin),
        "{detail}"
    );
    (
        refusal.cmd.to_owned(),
        refusal.file,
        refusal.origin,
        refusal.reason,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_put_url_is_ignored_and_reported() {
    let Some(broker) = broker() else { return };
    let app = app_id("forged-put");
    let foreign = Foreign::start().await;
    let sender = Client::connect(
        config(&app, &broker, "rsend", &["rrecv"])
            .container_type(ContainerType::Cloud)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let forger = Forger::start(&app, &broker);
    forger
        .send(
            "rsend",
            FileMessage::ResPutUrl {
                file_name: "model.bin".to_owned(),
                put_url: foreign.url(&app, "model.bin"),
                file_path: Some("/etc/passwd".to_owned()),
            },
        )
        .await;
    let got = refusal(&sender).await;
    assert_eq!(
        got,
        (
            "resPutURL".to_owned(),
            "model.bin".to_owned(),
            foreign.origin(),
            RefusalReason::Unrequested
        )
    );
    assert_eq!(foreign.connections(), 0, "the foreign origin was contacted");
    assert_eq!(sender.files().exchange().refused(), 1);
    sender.close().await;
    forger.transport.close().await;
}

/// A sender pinned to its store (`ECCI_FILE_ORIGINS`): a forged `resPutURL` published the
/// moment the `reqPutURL` appears, racing the real plugin, is refused whichever arrives
/// first, and the file goes to the store. The `reqPutURL` the forger sees carries no path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_url_racing_the_plugin_is_refused_when_pinned() {
    let Some(broker) = broker() else { return };
    let app = app_id("forged-race");
    let dir = temp_dir("forged-race");
    let foreign = Foreign::start().await;
    let fm = file_manager(&app, &broker, &dir.join("store")).await;
    let store = format!("http://{}", fm.store().unwrap().addr());
    let forger = Forger::start(&app, &broker);
    let mut requests = forger.transport.take_events().unwrap();
    forger
        .transport
        .subscribe(
            &format!("ECCI/b1/{app}/plugin/rsend/fileManager"),
            QoS::ExactlyOnce,
        )
        .await
        .unwrap();
    let sender = Client::connect(
        config(&app, &broker, "rsend", &["rrecv"])
            .container_type(ContainerType::Cloud)
            .file_origin(&store)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let src = dir.join("model.bin");
    std::fs::write(&src, b"the real model").unwrap();
    let sent = sender
        .files()
        .send_file(&src, "model.bin", "rrecv")
        .unwrap();

    let request = loop {
        let event = tokio::time::timeout(WAIT, requests.recv())
            .await
            .expect("the reqPutURL in time")
            .unwrap();
        let Event::Message(m) = event else { continue };
        let envelope = Envelope::from_pickle(&m.payload, &DecodeLimits::default()).unwrap();
        break FileMessage::from_value(&envelope.contents).unwrap();
    };
    assert!(
        matches!(&request, FileMessage::ReqPutUrl { file_name, file_path: None, .. } if file_name == "model.bin"),
        "the request must carry no local path: {request:?}"
    );
    forger
        .send(
            "rsend",
            FileMessage::ResPutUrl {
                file_name: "model.bin".to_owned(),
                put_url: foreign.url(&app, "model.bin"),
                file_path: None,
            },
        )
        .await;
    let done = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    assert_eq!(done.bytes, 14);
    let (cmd, file, origin, reason) = refusal(&sender).await;
    assert_eq!((cmd.as_str(), file.as_str()), ("resPutURL", "model.bin"));
    assert_eq!(origin, foreign.origin());
    // Refused as not pinned while the send waited, or as unrequested once it had its URL.
    assert!(
        matches!(
            reason,
            RefusalReason::NotAllowed | RefusalReason::Unrequested
        ),
        "{reason:?}"
    );
    assert_eq!(
        std::fs::read(fm.store().unwrap().object_path(&app, "model.bin").unwrap()).unwrap(),
        b"the real model"
    );
    assert_eq!(foreign.connections(), 0, "the foreign origin was contacted");
    sender.close().await;
    forger.transport.close().await;
    fm.shutdown().await.unwrap();
}

/// A receiver refuses a `resTransfer` for a foreign origin: pinned, before anything else
/// arrived; then a real transfer through the fileManager arrives and downloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_transfer_is_refused_and_a_real_one_still_arrives() {
    let Some(broker) = broker() else { return };
    let app = app_id("forged-get");
    let dir = temp_dir("forged-get");
    let foreign = Foreign::start().await;
    let fm = file_manager(&app, &broker, &dir.join("store")).await;
    let store = format!("http://{}", fm.store().unwrap().addr());
    let receiver = Client::connect(
        config(&app, &broker, "rrecv", &[])
            .file_origin(&store)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let forger = Forger::start(&app, &broker);
    forger
        .send(
            "rrecv",
            FileMessage::ResTransfer {
                file_name: "model.bin".to_owned(),
                get_url: foreign.url(&app, "model.bin"),
                sha256: None,
            },
        )
        .await;
    let got = refusal(&receiver).await;
    assert_eq!(
        got,
        (
            "resTransfer".to_owned(),
            "model.bin".to_owned(),
            foreign.origin(),
            RefusalReason::Untrusted
        )
    );

    let sender = Client::connect(
        config(&app, &broker, "rsend", &["rrecv"])
            .container_type(ContainerType::Cloud)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let sent = sender
        .files()
        .send(
            ecci_files::FileSource::Bytes(b"the real model".to_vec().into()),
            "model.bin",
            "rrecv",
        )
        .unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let offer = tokio::time::timeout(WAIT, receiver.files().next_offer())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.file_name, "model.bin");
    assert_eq!(offer.download_bytes(1024).await.unwrap(), b"the real model");
    assert_eq!(foreign.connections(), 0, "the foreign origin was contacted");
    assert_eq!(receiver.files().exchange().refused(), 1);
    receiver.close().await;
    sender.close().await;
    forger.transport.close().await;
    fm.shutdown().await.unwrap();
}
