//! Helpers and cases shared by the embedded-broker and mosquitto test binaries.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ecci_logger::{Connection, EcciLogger, LoggerConfig};
use ecci_proto::BrokerId;
use ecci_proto::platform::LogTime;
use ecci_transport::{Event, Events, MqttConfig, MqttTransport, QoS, Transport};
use log::Log;
use log::kv::Value;
use tokio::net::TcpListener;

/// How long a test waits for something that should happen at once.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A broker id no other test or run uses, so that tests can share a broker.
pub(crate) fn unique_broker() -> BrokerId {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id = format!(
        "b{:x}-{:x}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    BrokerId::new(id).expect("valid broker id")
}

/// Client settings that retry quickly.
pub(crate) fn mqtt(host: &str, port: u16) -> MqttConfig {
    let mut c = MqttConfig::new(host, port);
    c.backoff.initial = Duration::from_millis(20);
    c.backoff.max = Duration::from_millis(200);
    c
}

/// The logger settings of container `worker` of app `app1` on `broker`.
pub(crate) fn config(connection: Connection, broker: &BrokerId) -> LoggerConfig {
    let mut c = LoggerConfig::new(
        connection,
        broker.clone(),
        "app1".parse().expect("app id"),
        "worker".parse().expect("container name"),
    );
    c.shutdown_timeout = WAIT;
    c.level = log::LevelFilter::Trace;
    c
}

/// A subscriber to `filter` on the broker at `host:port`.
pub(crate) async fn consumer(host: &str, port: u16, filter: &str) -> (Arc<dyn Transport>, Events) {
    let t: Arc<dyn Transport> = Arc::new(MqttTransport::start(mqtt(host, port)));
    let events = t.take_events().expect("events");
    tokio::time::timeout(WAIT, t.subscribe(filter, QoS::ExactlyOnce))
        .await
        .expect("subscribed in time")
        .expect("subscribed");
    (t, events)
}

/// The next message's topic and payload.
pub(crate) async fn next(events: &mut Events) -> (String, String) {
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Event::Message(m))) => {
                return (
                    m.topic,
                    String::from_utf8(m.payload.to_vec()).expect("utf-8 json"),
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }
}

/// The next `n` payloads.
pub(crate) async fn next_n(events: &mut Events, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(events).await.1);
    }
    out
}

/// The local time now, as the logger writes it.
pub(crate) fn now() -> LogTime {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S,%3f")
        .to_string()
        .parse()
        .expect("log time")
}

/// `json` with its `"time"` value replaced by `TIME`, after checking the value is a local
/// time in Python's format between `from` and `to`.
#[track_caller]
pub(crate) fn without_time(json: &str, from: LogTime, to: LogTime) -> String {
    let key = "\"time\": \"";
    let at = json.find(key).expect("a time key") + key.len();
    let time: LogTime = json[at..at + 23].parse().expect("python time format");
    assert!(
        from <= time && time <= to,
        "time {time} not within {from}..{to}"
    );
    format!("{}TIME{}", &json[..at], &json[at + 23..])
}

/// Logs one record through `logger` directly (the global logger is not involved).
pub(crate) fn log(
    logger: &EcciLogger,
    level: log::Level,
    target: &str,
    message: &str,
    kv: &[(&str, Value<'_>)],
) {
    logger.log(
        &log::Record::builder()
            .args(format_args!("{message}"))
            .level(level)
            .target(target)
            .key_values(&kv)
            .build(),
    );
}

/// Runs a blocking guard call without stalling the test's runtime.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The JSON a record of container `worker` of `app1` carries, time left out.
pub(crate) fn expected(agent: &str, name: &str, level: &str, message: &str, kv: &str) -> String {
    format!(
        r#"{{"app_id": "app1", "container_name": "worker", "agent_id": {agent}, "log_info": {{"time": "TIME", "name": "{name}", "level": "{level}", "message": "{message}"{kv}}}}}"#
    )
}

/// Every case of the record format: the consumer receives exactly the expected bytes.
pub(crate) async fn formats(host: &str, port: u16, qos: QoS) {
    let broker = unique_broker();
    let topic = format!("toEdgeAI/{broker}/log");
    let (_sub, mut events) = consumer(host, port, &topic).await;
    let mut c = config(Connection::Mqtt(mqtt(host, port)), &broker);
    c.agent_id = Some("agent-7".to_owned());
    c.qos = qos;
    let (logger, guard) = ecci_logger::start(c).expect("logger");

    use log::Level::*;
    type Case<'a> = (
        log::Level,
        &'a str,
        &'a str,
        Vec<(&'a str, Value<'a>)>,
        String,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            Info,
            "app",
            "plain",
            vec![],
            expected(r#""agent-7""#, "app", "INFO", "plain", ""),
        ),
        (
            Warn,
            "app::io",
            "it's a \"quoted\" 'word'",
            vec![],
            expected(
                r#""agent-7""#,
                "app::io",
                "WARNING",
                r#"it's a \"quoted\" 'word'"#,
                "",
            ),
        ),
        (
            Error,
            "app",
            "line one\nline two\ttab \\ backslash / slash\r",
            vec![],
            expected(
                r#""agent-7""#,
                "app",
                "ERROR",
                r"line one\nline two\ttab \\ backslash / slash\r",
                "",
            ),
        ),
        (
            Debug,
            "app",
            "é 中文 😀 \u{7f}",
            vec![],
            expected(
                r#""agent-7""#,
                "app",
                "DEBUG",
                r"\u00e9 \u4e2d\u6587 \ud83d\ude00 \u007f",
                "",
            ),
        ),
        (
            Trace,
            "app",
            "t",
            vec![],
            expected(r#""agent-7""#, "app", "DEBUG", "t", ""),
        ),
        (
            Error,
            "app",
            "down",
            vec![("ecci_level", Value::from("CRITICAL"))],
            expected(r#""agent-7""#, "app", "CRITICAL", "down", ""),
        ),
        (
            Info,
            "app",
            "frame",
            vec![
                ("frame", Value::from(42)),
                ("score", Value::from(0.5)),
                ("big", Value::from(u64::MAX)),
                ("neg", Value::from(-3i8)),
                ("label", Value::from("person \"p\"")),
                ("ok", Value::from(true)),
                ("ch", Value::from('x')),
            ],
            expected(
                r#""agent-7""#,
                "app",
                "INFO",
                "frame",
                r#", "kv": {"frame": 42, "score": 0.5, "big": 18446744073709551615, "neg": -3, "label": "person \"p\"", "ok": true, "ch": "x"}"#,
            ),
        ),
        (
            Error,
            "app",
            "gone",
            vec![
                ("ecci_level", Value::from("CRITICAL")),
                ("device", Value::from(3)),
            ],
            expected(
                r#""agent-7""#,
                "app",
                "CRITICAL",
                "gone",
                r#", "kv": {"device": 3}"#,
            ),
        ),
        (
            Error,
            "app",
            "not a marker",
            vec![("ecci_level", Value::from("LOUD"))],
            expected(
                r#""agent-7""#,
                "app",
                "ERROR",
                "not a marker",
                r#", "kv": {"ecci_level": "LOUD"}"#,
            ),
        ),
    ];
    let from = now();
    for (level, target, message, kv, _) in &cases {
        log(&logger, *level, target, message, kv);
    }
    blocking(|| guard.flush()).expect("flushed");
    let to = now();
    for (_, _, _, _, expected) in &cases {
        let (t, json) = next(&mut events).await;
        assert_eq!(t, topic);
        check(&json, from, to, expected);
    }
    let stats = guard.stats();
    assert_eq!((stats.logged, stats.acknowledged, stats.dropped), (9, 9, 0));
    blocking(|| guard.shutdown()).expect("shut down");
}

#[track_caller]
pub(crate) fn check(json: &str, from: LogTime, to: LogTime, expected: &str) {
    assert_eq!(without_time(json, from, to), expected);
}

/// Everything logged before `shutdown` is delivered, in order, before it returns.
pub(crate) async fn shutdown_delivers_all(host: &str, port: u16, count: usize) {
    let broker = unique_broker();
    let topic = format!("toEdgeAI/{broker}/log");
    let (_sub, mut events) = consumer(host, port, &topic).await;
    let (logger, guard) =
        ecci_logger::start(config(Connection::Mqtt(mqtt(host, port)), &broker)).expect("logger");
    for i in 0..count {
        log(
            &logger,
            log::Level::Info,
            "app",
            &format!("record {i}"),
            &[],
        );
    }
    let stats = guard.stats();
    blocking(|| guard.shutdown()).expect("shut down");
    assert_eq!(stats.logged, count as u64);
    for i in 0..count {
        let (_, json) = next(&mut events).await;
        assert!(
            json.ends_with(&format!(r#""message": "record {i}"}}}}"#)),
            "record {i}: {json}"
        );
    }
    // After shutdown, records are dropped without panicking.
    log(&logger, log::Level::Info, "app", "late", &[]);
}

/// A TCP forwarder to `port`, started later on a port the logger already tries: "the broker
/// is down at start, then up".
pub(crate) struct LateBroker {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LateBroker {
    /// Reserves a port nobody listens on yet.
    pub(crate) fn reserve() -> LateBroker {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        // Released and bound again in `up`: std cannot keep a port bound without listening.
        drop(l);
        LateBroker { port, task: None }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Starts forwarding every connection on the reserved port to `host:target`.
    pub(crate) async fn up(&mut self, host: &str, target: u16) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the reserved port");
        let host = host.to_owned();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let host = host.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect((host, target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for LateBroker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The broker is unreachable when the logger starts; once it is up, every record logged in
/// the meantime (fewer than the buffer holds) is delivered, in order, and none dropped.
pub(crate) async fn down_then_up(host: &str, port: u16) {
    let broker = unique_broker();
    let topic = format!("toEdgeAI/{broker}/log");
    let (_sub, mut events) = consumer(host, port, &topic).await;
    let mut late = LateBroker::reserve();
    let mut c = config(Connection::Mqtt(mqtt("127.0.0.1", late.port())), &broker);
    c.capacity = 100;
    let (logger, guard) = ecci_logger::start(c).expect("logger");
    for i in 0..100 {
        log(
            &logger,
            log::Level::Info,
            "app",
            &format!("record {i}"),
            &[],
        );
    }
    // Nothing can be acknowledged while the broker is unreachable.
    assert_eq!(
        blocking(|| guard.flush_timeout(Duration::from_millis(100))),
        Err(ecci_logger::FlushError::Timeout(Duration::from_millis(100)))
    );
    late.up(host, port).await;
    blocking(|| guard.flush()).expect("flushed once the broker is up");
    let stats = guard.stats();
    assert_eq!(
        (stats.logged, stats.acknowledged, stats.dropped),
        (100, 100, 0)
    );
    for i in 0..100 {
        let (_, json) = next(&mut events).await;
        assert!(
            json.ends_with(&format!(r#""message": "record {i}"}}}}"#)),
            "record {i}: {json}"
        );
    }
    blocking(|| guard.shutdown()).expect("shut down");
}
