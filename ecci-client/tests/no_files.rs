//! Without the `files` feature (`cargo test -p ecci-client --no-default-features --test
//! no_files`, a step of `cargo xtask ci`): file messages are counted, logged without their
//! URLs and dropped, and never hold up the data behind them.
#![cfg(not(feature = "files"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecci_client::{Client, ClientOptions};
use ecci_proto::config::Config;
use ecci_proto::file::{FileMessage, PresignedUrl};
use ecci_transport::Transport;
use ecci_transport::memory::Hub;

/// The `warn` records of the process.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn config(me: &str, target: &str) -> Config {
    Config::builder(
        "unused",
        "b1".parse().unwrap(),
        "app1".parse().unwrap(),
        me.parse().unwrap(),
    )
    .pub_target(target.parse().unwrap(), "b1".parse().unwrap())
    .build()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn file_messages_are_dropped_with_a_warning_and_never_block_data() {
    let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
    log::set_logger(capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);

    let hub = Hub::new();
    let connect = |config: Config, options: ClientOptions| {
        Client::builder(config)
            .transport(Arc::new(hub.transport()) as Arc<dyn Transport>)
            .options(options)
            .connect()
    };
    let sender = connect(config("alice", "bob"), ClientOptions::default())
        .await
        .unwrap();
    let options = ClientOptions {
        file_queue: 2,
        ..ClientOptions::default()
    };
    let receiver = connect(config("bob", "alice"), options).await.unwrap();

    // Five times the file queue: were they queued for nobody, the client would stop reading.
    let sent = 10;
    for i in 0..sent {
        let offer = FileMessage::ResTransfer {
            file_name: format!("model{i}.bin"),
            get_url: PresignedUrl::new("http://store/model.bin?X-Amz-Signature=secret"),
            sha256: None,
        };
        sender
            .publish_envelope(offer.to_envelope(), "bob")
            .await
            .unwrap()
            .await
            .unwrap();
    }
    sender
        .publish(&"after", "bob")
        .await
        .unwrap()
        .await
        .unwrap();

    let data = tokio::time::timeout(Duration::from_secs(10), receiver.recv_data())
        .await
        .expect("the data behind the file messages arrives")
        .unwrap();
    assert_eq!(data.decode::<String>().unwrap(), "after");
    assert_eq!(receiver.metrics().files, sent);

    receiver.close().await;
    sender.close().await;
    let warnings = capture.0.lock().unwrap().clone();
    let dropped: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("built without its `files` feature"))
        .collect();
    assert_eq!(dropped.len(), sent as usize, "{warnings:?}");
    assert!(
        dropped[0].contains("resTransfer")
            && dropped[0].contains("model0.bin")
            && dropped[0].contains("alice")
    );
    assert!(
        warnings.iter().all(|w| !w.contains("secret")),
        "{warnings:?}"
    );
}
