//! The logger against the embedded broker (real MQTT) and the in-memory hub (faults on cue).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_logger::{Connection, FlushError, InitError, Overflow};
use ecci_transport::broker::Broker;
use ecci_transport::memory::{Hub, MemoryConfig, MemoryTransport};
use ecci_transport::{Events, Message, QoS, Transport};
use log::Level::Info;
use log::Log;

async fn broker() -> Broker {
    Broker::start().await.expect("embedded broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_qos1() {
    let b = broker().await;
    formats("127.0.0.1", b.port(), QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_qos2() {
    let b = broker().await;
    formats("127.0.0.1", b.port(), QoS::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_everything() {
    let b = broker().await;
    shutdown_delivers_all("127.0.0.1", b.port(), 2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_then_up() {
    let b = broker().await;
    down_then_up("127.0.0.1", b.port()).await;
}

/// A consumer of every log topic on `hub`.
async fn hub_consumer(hub: &Hub) -> (MemoryTransport, Events) {
    let t = hub.transport();
    let events = t.take_events().expect("events");
    t.subscribe("+/+/log", QoS::ExactlyOnce)
        .await
        .expect("subscribed");
    (t, events)
}

/// What a `dropped N` report says, if `json` is one.
fn report_count(json: &str) -> Option<u64> {
    let rest = json.split(r#""message": "ecci_logger dropped "#).nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

/// The index `i` of a `record i` message.
fn record_index(json: &str) -> Option<usize> {
    let rest = json.split(r#""message": "record "#).nth(1)?;
    rest.split('"').next()?.parse().ok()
}

/// Logs 100 records into a buffer of 8 while the link is down, brings it up, and returns
/// the indexes delivered, the dropped count of the reports, and the stats.
async fn overflow(policy: Overflow) -> (Vec<usize>, u64, ecci_logger::Stats) {
    let hub = Hub::new();
    let (_sub, mut events) = hub_consumer(&hub).await;
    let link = Arc::new(hub.transport_with(MemoryConfig {
        queue: 4,
        ..MemoryConfig::default()
    }));
    link.drop_connection();
    let broker = unique_broker();
    let mut c = config(Connection::Transport(link.clone()), &broker);
    c.capacity = 8;
    c.overflow = policy;
    let (logger, guard) = ecci_logger::start(c).expect("logger");
    for i in 0..100 {
        log(&logger, Info, "app", &format!("record {i}"), &[]);
    }
    assert_eq!(
        blocking(|| guard.flush_timeout(Duration::from_millis(50))),
        Err(FlushError::Timeout(Duration::from_millis(50)))
    );
    link.reconnect();
    blocking(|| guard.flush()).expect("flushed");
    let stats = guard.stats();
    let mut delivered = Vec::new();
    let mut reported = 0;
    let mut reports = 0;
    for _ in 0..stats.acknowledged + stats.reports {
        let (_, json) = next(&mut events).await;
        if let Some(n) = report_count(&json) {
            let plural = if n == 1 { "record" } else { "records" };
            let message =
                format!("ecci_logger dropped {n} log {plural} (buffer full or broker unreachable)");
            let json = json.replacen(&without_time_value(&json), "TIME", 1);
            assert_eq!(
                json,
                expected("null", "ecci_logger", "WARNING", &message, "")
            );
            reported += n;
            reports += 1;
        } else {
            delivered.push(record_index(&json).expect("a record"));
        }
    }
    assert_eq!(reports, stats.reports);
    assert!(reports >= 1, "at least one report");
    assert_eq!(stats.logged, 100);
    assert_eq!(stats.acknowledged + stats.dropped, 100, "{stats:?}");
    assert_eq!(delivered.len() as u64, stats.acknowledged);
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "in order: {delivered:?}"
    );
    blocking(|| guard.shutdown()).expect("shut down");
    (delivered, reported, stats)
}

/// The `"time"` value of `json`.
fn without_time_value(json: &str) -> String {
    let key = "\"time\": \"";
    let at = json.find(key).expect("time") + key.len();
    let value = &json[at..at + 23];
    value
        .parse::<ecci_proto::platform::LogTime>()
        .expect("python time");
    value.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drops_oldest_and_reports() {
    let (delivered, reported, stats) = overflow(Overflow::DropOldest).await;
    assert_eq!(reported, stats.dropped);
    assert!(stats.dropped >= 100 - 8 - 4 - 2, "{stats:?}");
    // The newest records are kept.
    assert!(
        delivered.ends_with(&[92, 93, 94, 95, 96, 97, 98, 99]),
        "{delivered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drops_newest_and_reports() {
    let (delivered, reported, stats) = overflow(Overflow::DropNewest).await;
    assert_eq!(reported, stats.dropped);
    // The first records fill the empty buffer and are always kept; later ones get in only
    // when the worker has made room (how soon depends on when its thread runs).
    let first: Vec<usize> = (0..8).collect();
    assert!(delivered.starts_with(&first), "{delivered:?}");
    assert!(stats.dropped >= 100 - 8 - 4 - 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_record_is_reported() {
    let hub = Hub::new();
    let (_sub, mut events) = hub_consumer(&hub).await;
    let link: Arc<dyn Transport> = Arc::new(hub.transport_with(MemoryConfig {
        max_packet_size: 400,
        ..MemoryConfig::default()
    }));
    let broker = unique_broker();
    let (logger, guard) =
        ecci_logger::start(config(Connection::Transport(link), &broker)).expect("logger");
    let from = now();
    log(&logger, Info, "app", &"x".repeat(1_000), &[]);
    log(&logger, Info, "app", "small", &[]);
    blocking(|| guard.flush()).expect("flushed");
    let to = now();
    let report = expected(
        "null",
        "ecci_logger",
        "WARNING",
        "ecci_logger dropped 1 log record (buffer full or broker unreachable)",
        "",
    );
    check(&next(&mut events).await.1, from, to, &report);
    check(
        &next(&mut events).await.1,
        from,
        to,
        &expected("null", "app", "INFO", "small", ""),
    );
    let stats = guard.stats();
    assert_eq!(
        (
            stats.logged,
            stats.acknowledged,
            stats.dropped,
            stats.reports
        ),
        (2, 1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_and_dependency_records_are_not_shipped() {
    let hub = Hub::new();
    let (_sub, mut events) = hub_consumer(&hub).await;
    let link: Arc<dyn Transport> = Arc::new(hub.transport());
    let broker = unique_broker();
    let mut c = config(Connection::Transport(link), &broker);
    c.ignore_targets = vec!["noisy".to_owned()];
    c.level = log::LevelFilter::Info;
    let (logger, guard) = ecci_logger::start(c).expect("logger");
    for target in [
        "ecci_logger",
        "ecci_logger::worker",
        "ecci_transport::mqtt",
        "rumqttc::state",
        "tokio::runtime",
        "mio::poll",
        "noisy",
        "noisy::inner",
        "rustls_platform_verifier::verification",
        "rustls::client::hs",
        "hyper_util::client::legacy::pool",
        "reqwest::connect",
    ] {
        let metadata = log::Metadata::builder().level(Info).target(target).build();
        assert!(!logger.enabled(&metadata), "{target}");
        log(&logger, log::Level::Error, target, "loop", &[]);
    }
    log(&logger, log::Level::Debug, "app", "too verbose", &[]);
    let from = now();
    log(&logger, Info, "noisy_neighbour", "shipped", &[]);
    blocking(|| guard.flush()).expect("flushed");
    let to = now();
    check(
        &next(&mut events).await.1,
        from,
        to,
        &expected("null", "noisy_neighbour", "INFO", "shipped", ""),
    );
    assert_eq!(guard.stats().logged, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_transport_stays_open_and_pre_topic_applies() {
    let hub = Hub::new();
    let (_sub, mut events) = hub_consumer(&hub).await;
    let app: Arc<dyn Transport> = Arc::new(hub.transport());
    let broker = unique_broker();
    let mut c = config(Connection::Transport(app.clone()), &broker);
    c.pre_topic = "testMQTTLogging".to_owned();
    let (logger, guard) = ecci_logger::start(c).expect("logger");
    log(&logger, Info, "app", "hi", &[]);
    blocking(|| guard.shutdown()).expect("shut down");
    assert_eq!(
        next(&mut events).await.0,
        format!("testMQTTLogging/{broker}/log")
    );
    // The application's connection still works.
    app.publish(Message::new("x/y/log", "still open", QoS::AtLeastOnce))
        .await
        .expect("queued")
        .await
        .expect("acknowledged");
    assert_eq!(next(&mut events).await.1, "still open");
}

/// A directive turns targets on and off: here only `my_app` (at debug) and `rustls` (at
/// warn) are shipped; the SDK's other crates and the rest stay off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directive_turns_targets_on_and_off() {
    let hub = Hub::new();
    let (_sub, mut events) = hub_consumer(&hub).await;
    let link: Arc<dyn Transport> = Arc::new(hub.transport());
    let mut c = config(Connection::Transport(link), &unique_broker());
    c.filter = Some("off,my_app=debug,rustls=warn".to_owned());
    let (logger, guard) = ecci_logger::start(c).expect("logger");
    assert_eq!(logger.level(), log::LevelFilter::Debug);
    let from = now();
    for (level, target, shipped) in [
        (log::Level::Debug, "my_app::camera", true),
        (log::Level::Trace, "my_app", false),
        (log::Level::Error, "sqlx::query", false),
        (log::Level::Info, "rustls::client", false),
        (log::Level::Warn, "rustls::client", true),
        (log::Level::Error, "hyper::proto", false),
        (log::Level::Error, "rumqttc::state", false),
    ] {
        log(
            &logger,
            level,
            target,
            if shipped { "in" } else { "out" },
            &[],
        );
    }
    blocking(|| guard.flush()).expect("flushed");
    let to = now();
    for expected in [
        expected("null", "my_app::camera", "DEBUG", "in", ""),
        expected("null", "rustls::client", "WARNING", "in", ""),
    ] {
        check(&next(&mut events).await.1, from, to, &expected);
    }
    assert_eq!(guard.stats().logged, 2);
}

#[test]
fn invalid_filter_is_refused() {
    let hub = Hub::new();
    let mut c = config(
        Connection::Transport(Arc::new(hub.transport())),
        &unique_broker(),
    );
    c.filter = Some("my_app=loud".to_owned());
    match ecci_logger::start(c) {
        Err(e @ InitError::Filter { .. }) => {
            assert_eq!(e.to_string(), r#"invalid log filter "my_app=loud""#);
            let source = std::error::Error::source(&e).expect("a source").to_string();
            assert!(source.contains("loud"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}

/// Every crate of the SDK's dependency tree that can log (it depends on `log` or
/// `tracing`, optionally or not) is in `SDK_TARGETS` or never shipped anyway, read from
/// `cargo metadata`: a new dependency cannot start shipping its records unnoticed.
#[test]
fn sdk_targets_cover_the_dependency_tree() {
    // Offline first; a fresh machine's build downloaded only its own platform's crates,
    // and the metadata of every platform's needs the rest (cargo fetches them).
    let metadata = |offline: bool| {
        let mut args = vec!["metadata", "--format-version", "1"];
        if offline {
            args.push("--offline");
        }
        std::process::Command::new(env!("CARGO"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs")
    };
    let out = match metadata(true) {
        out if out.status.success() => out,
        _ => metadata(false),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let packages: std::collections::HashMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p))
        .collect();
    let nodes: std::collections::HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let sdk = [
        "ecci-proto",
        "ecci-transport",
        "ecci-logger",
        "ecci-files",
        "ecci-client",
    ];
    let mut stack: Vec<&str> = packages
        .iter()
        .filter(|(_, p)| sdk.contains(&p["name"].as_str().expect("name")))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(stack.len(), sdk.len());
    let mut seen = std::collections::HashSet::new();
    let mut missing = Vec::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let package = packages[id];
        let name = package["name"].as_str().expect("name");
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .expect("kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().expect("pkg"));
            }
        }
        let logs = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .any(|d| d["kind"].is_null() && matches!(d["name"].as_str(), Some("log" | "tracing")));
        let lib = name.replace('-', "_");
        if logs
            && !sdk.contains(&name)
            && !ecci_logger::is_sdk_target(&lib)
            && !ecci_logger::is_internal_target(&lib)
        {
            missing.push(lib);
        }
    }
    assert!(missing.is_empty(), "add to SDK_TARGETS: {missing:?}");
}

#[test]
fn invalid_pre_topic_is_refused() {
    let hub = Hub::new();
    let mut c = config(
        Connection::Transport(Arc::new(hub.transport())),
        &unique_broker(),
    );
    c.pre_topic = "logs/#".to_owned();
    match ecci_logger::start(c) {
        Err(InitError::PreTopic(_)) => {}
        other => panic!("{other:?}"),
    }
}

/// On a current-thread runtime a logger sharing the application's transport is flushed by
/// awaiting: the blocking flush would stall the transport's only thread (it used to time
/// out), so it refuses at once instead, and dropping the guard does not hang.
#[tokio::test(flavor = "current_thread")]
async fn current_thread_runtime_with_a_shared_transport() {
    let b = broker().await;
    let broker_id = unique_broker();
    let (_sub, mut events) = consumer("127.0.0.1", b.port(), "+/+/log").await;
    let t: Arc<dyn Transport> = Arc::new(ecci_transport::MqttTransport::start(mqtt(
        "127.0.0.1",
        b.port(),
    )));
    let (logger, guard) =
        ecci_logger::start(config(Connection::Transport(t.clone()), &broker_id)).expect("start");

    log(&logger, Info, "app", "first", &[]);
    let started = std::time::Instant::now();
    assert_eq!(guard.flush(), Err(FlushError::WouldBlock));
    assert!(started.elapsed() < Duration::from_secs(1));
    tokio::time::timeout(WAIT, guard.flush_async())
        .await
        .expect("flushed in time")
        .expect("flushed");
    assert_eq!(guard.stats().acknowledged, 1);
    assert!(next(&mut events).await.1.contains("\"message\": \"first\""));

    log(&logger, Info, "app", "second", &[]);
    tokio::time::timeout(WAIT, guard.shutdown_async())
        .await
        .expect("shut down in time")
        .expect("flushed before stopping");
    assert!(
        next(&mut events)
            .await
            .1
            .contains("\"message\": \"second\"")
    );
}

/// Dropping the guard there stops the logger without waiting for the broker.
#[tokio::test(flavor = "current_thread")]
async fn current_thread_drop_does_not_wait() {
    let b = broker().await;
    let t: Arc<dyn Transport> = Arc::new(ecci_transport::MqttTransport::start(mqtt(
        "127.0.0.1",
        b.port(),
    )));
    let (logger, guard) =
        ecci_logger::start(config(Connection::Transport(t), &unique_broker())).expect("start");
    log(&logger, Info, "app", "lost", &[]);
    let started = std::time::Instant::now();
    drop(guard);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
