//! File transfer (wire.md §6) with Python written from wire.md alone
//! (`tests/python/file_peer.py`: paho-mqtt, pickle, urllib, http.server), through the mosquitto
//! at `ECCI_TEST_BROKER` (`host:port`):
//!
//! - a Python sender to a Rust receiver, and a Rust sender to a Python receiver, through our
//!   `LocalFileManager`;
//! - Rust to Rust through a fileManager plugin written in Python, with its own HTTP store.
//!
//! Each checks the bytes of a few MiB file and the value of an in-memory object on arrival.
//! Without `ECCI_TEST_BROKER` the tests return early, unless `ECCI_REQUIRE_BROKER=1`
//! (CI: `.ci/start-mosquitto.sh` and `.ci/python-deps.sh`). Waits are bounded upper limits.

mod common;

use std::sync::Arc;

use common::mosquitto::{app_id, broker, config};
use common::python::{self, Peer};
use common::{WAIT, temp_dir};
use ecci_client::{Client, ClientOptions, FileOffer};
use ecci_files::ExchangeOptions;
use ecci_files::local::LocalFileManager;
use ecci_proto::config::ContainerType;
use ecci_proto::pickle::{BigInt, Value};
use ecci_transport::{MqttConfig, MqttTransport};

/// The name the files go by: a space and a non-ASCII letter, which URLs must encode.
const FILE_NAME: &str = "modèle v2.bin";

/// A few MiB that no off-by-one or reordering leaves unchanged: xorshift64, not a multiple of
/// any buffer size.
fn content() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..3 * 1024 * 1024 + 7)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Writes [`content`] to a file in `dir`; returns its path and the bytes.
fn source(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("source.bin");
    let bytes = content();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// `OBJECT` of file_peer.py: the types Python applications pass around.
fn object() -> Value {
    Value::dict([
        ("weights", Value::Bytes(vec![0x00, 0x01, 0xfe, 0xff])),
        ("shape", Value::Tuple(vec![Value::from(2), Value::from(3)])),
        ("lr", Value::Float(0.125)),
        ("bias", Value::None),
        ("name", Value::from("modèle")),
        (
            "layers",
            Value::List(vec![Value::from(1), Value::from(-2), Value::from(3)]),
        ),
        ("big", Value::BigInt(BigInt::from_i128(1 << 70))),
        ("nested", Value::dict([("ok", Value::Bool(true))])),
        (
            "blob",
            Value::Bytes((0..=255).cycle().take(256 * 400).collect()),
        ),
    ])
}

/// How the Python receiver prints [`object`].
const OBJECT_REPR: &str = "{'weights': b'\\x00\\x01\\xfe\\xff', 'shape': (2, 3), 'lr': 0.125, \
     'bias': None, 'name': 'modèle', 'layers': [1, -2, 3], 'big': 1180591620717411303424, \
     'nested': {'ok': True}, 'blob': <102400 bytes, sha256 \
     27783e87963a4efb6829b531c9ba57b44f45797f6770bd637fbf0d807cbdbae0>}";

/// `file_peer.py` in `mode` with `args`, as container `me` with `targets`, in a cloud container.
fn peer(
    mode: &str,
    args: &[&str],
    app: &str,
    broker: &(String, u16),
    me: &str,
    targets: &[&str],
) -> Peer {
    let mut command = python::command("file_peer.py", mode, app, broker, me, targets, None);
    command.args(args).env("ECCI_CONTAINER_TYPE", "cloud");
    Peer::spawn(command)
}

/// Our fileManager for `app` on broker id `b1`, on a connection of its own.
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

/// Checks that our fileManager answered the two requests of each of two sends, refused
/// nothing, and stops it.
async fn two_sends_handled(fm: LocalFileManager) {
    let stats = fm.stats();
    assert_eq!((stats.handled, stats.refused, stats.failed), (4, 0, 0));
    fm.shutdown().await.unwrap();
}

/// A Rust container that receives files.
async fn rust_receiver(app: &str, broker: &(String, u16)) -> Client {
    Client::connect(config(app, broker, "rrecv", &[]).build().unwrap())
        .await
        .unwrap()
}

/// A Rust cloud container that sends files, announcing their SHA-256 when `sha256` is set.
async fn rust_sender(app: &str, broker: &(String, u16), targets: &[&str], sha256: bool) -> Client {
    let options = ClientOptions {
        files: ExchangeOptions {
            sha256,
            ..ExchangeOptions::default()
        },
        ..ClientOptions::default()
    };
    Client::builder(
        config(app, broker, "rsend", targets)
            .container_type(ContainerType::Cloud)
            .build()
            .unwrap(),
    )
    .options(options)
    .connect()
    .await
    .unwrap()
}

async fn next_offer(client: &Client) -> FileOffer {
    let offer = tokio::time::timeout(WAIT, client.files().next_offer())
        .await
        .expect("an offer in time")
        .unwrap();
    assert_eq!(offer.sender, "fileManager");
    offer
}

/// Receives [`FILE_NAME`] and checks that its bytes are `expected`.
async fn receive_file(client: &Client, dir: &std::path::Path, expected: &[u8]) -> FileOffer {
    let offer = next_offer(client).await;
    assert_eq!(offer.file_name, FILE_NAME);
    let path = dir.join("received.bin");
    assert_eq!(
        offer.download_to(&path).await.unwrap(),
        expected.len() as u64
    );
    assert!(std::fs::read(&path).unwrap() == expected, "other bytes");
    offer
}

/// Receives `obj` and checks that it decodes to [`object`].
async fn receive_object(client: &Client) -> FileOffer {
    let offer = next_offer(client).await;
    assert_eq!(offer.file_name, "obj");
    assert_eq!(offer.download_object().await.unwrap(), object());
    offer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sender_to_rust_receiver_through_our_file_manager() {
    let Some(broker) = broker() else { return };
    let app = app_id("pysend");
    let dir = temp_dir("pyfiles-send");
    let fm = file_manager(&app, &broker, &dir.join("store")).await;
    let rust = rust_receiver(&app, &broker).await;
    let (src, bytes) = source(&dir);

    let src = src.to_str().unwrap();
    let mut py = peer("sender", &[src], &app, &broker, "pysend", &["rrecv"]);
    let offer = receive_file(&rust, &dir, &bytes).await;
    assert_eq!(offer.sha256, None, "Python announces no digest");
    assert_eq!(
        py.until("SENT").await,
        format!("SENT {FILE_NAME} {}", bytes.len())
    );
    receive_object(&rust).await;
    assert!(py.until("SENT").await.starts_with("SENT obj "));
    py.exits_cleanly().await;

    rust.close().await;
    two_sends_handled(fm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sender_to_python_receiver_through_our_file_manager() {
    let Some(broker) = broker() else { return };
    let app = app_id("pyrecv");
    let dir = temp_dir("pyfiles-recv");
    let fm = file_manager(&app, &broker, &dir.join("store")).await;
    // With the digest on: Python, which reads file_name and getURL only, must not mind it.
    let rust = rust_sender(&app, &broker, &["pyrecv"], true).await;
    let mut py = peer("receiver", &["2"], &app, &broker, "pyrecv", &[]);
    py.until("READY").await;

    let (src, bytes) = source(&dir);
    let sent = rust.files().send_file(&src, FILE_NAME, "pyrecv").unwrap();
    let sent = tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    let sha = sent.sha256.expect("the digest option is on");
    // Python's hashlib agrees with the digest we announced, which reached it unharmed.
    assert_eq!(
        py.until("FILE").await,
        format!("FILE {FILE_NAME} {} {sha} {sha}", bytes.len())
    );

    let sent = rust.files().send_value(object(), "obj", "pyrecv").unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    assert_eq!(
        py.until("OBJECT").await,
        format!("OBJECT obj {OBJECT_REPR}")
    );
    py.exits_cleanly().await;

    rust.close().await;
    two_sends_handled(fm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_rust_through_a_python_file_manager() {
    let Some(broker) = broker() else { return };
    let app = app_id("pyfm");
    let dir = temp_dir("pyfiles-fm");
    let mut fm = peer("filemanager", &[], &app, &broker, "fileManager", &[]);
    fm.until("READY").await;
    // The digest goes with reqTransfer; a plugin that does not know it drops it.
    let sender = rust_sender(&app, &broker, &["rrecv"], true).await;
    let receiver = rust_receiver(&app, &broker).await;

    let (src, bytes) = source(&dir);
    let sent = sender.files().send_file(&src, FILE_NAME, "rrecv").unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    // It stored exactly what we put, through a PUT with an explicit length (or it says ERROR).
    assert_eq!(
        fm.until("STORED").await,
        format!("STORED {FILE_NAME} {}", bytes.len())
    );
    assert_eq!(
        fm.until("TRANSFER").await,
        format!("TRANSFER {FILE_NAME} rrecv")
    );
    let offer = receive_file(&receiver, &dir, &bytes).await;
    assert_eq!(offer.sha256, None);

    let sent = sender.files().send_value(object(), "obj", "rrecv").unwrap();
    tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    assert_eq!(fm.until("TRANSFER").await, "TRANSFER obj rrecv");
    receive_object(&receiver).await;
    fm.exits_cleanly().await;

    for c in [sender, receiver] {
        assert_eq!(c.metrics().errors, 0);
        c.close().await;
    }
}
