//! The one-line global install, in its own test binary: `log` allows one logger per process.

mod common;

use common::*;
use ecci_logger::{Connection, InitError};
use ecci_transport::broker::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_installs_the_global_logger() {
    let b = Broker::start().await.expect("embedded broker");
    let broker = unique_broker();
    let topic = format!("toEdgeAI/{broker}/log");
    let (_sub, mut events) = consumer("127.0.0.1", b.port(), &topic).await;
    let mut c = config(Connection::Mqtt(mqtt("127.0.0.1", b.port())), &broker);
    c.level = log::LevelFilter::Info;
    let guard = ecci_logger::init(c.clone()).expect("installed");
    assert_eq!(log::max_level(), log::LevelFilter::Info);

    let from = now();
    log::debug!("filtered by level");
    log::info!("an info message");
    log::warn!(target: "camera", "a warning message");
    ecci_logger::critical!("a critical message: {}", 42);
    ecci_logger::critical!(target: "camera", device = 3, ok = true; "lost {}", "it");
    log::error!(code = 7; "an error message");
    log::info!(target: "rumqttc::state", "never shipped");
    blocking(|| guard.flush()).expect("flushed");
    let to = now();

    let me = module_path!();
    for expected in [
        expected("null", me, "INFO", "an info message", ""),
        expected("null", "camera", "WARNING", "a warning message", ""),
        expected("null", me, "CRITICAL", "a critical message: 42", ""),
        expected(
            "null",
            "camera",
            "CRITICAL",
            "lost it",
            r#", "kv": {"device": 3, "ok": true}"#,
        ),
        expected(
            "null",
            me,
            "ERROR",
            "an error message",
            r#", "kv": {"code": 7}"#,
        ),
    ] {
        check(&next(&mut events).await.1, from, to, &expected);
    }
    assert_eq!(guard.stats().logged, 5);

    // A second logger cannot be installed; the first keeps working.
    match ecci_logger::init(c) {
        Err(InitError::AlreadyInstalled) => {}
        other => panic!("{other:?}"),
    }
    log::info!("still here");
    blocking(|| guard.shutdown()).expect("shut down");
    check(
        &next(&mut events).await.1,
        from,
        now(),
        &expected("null", me, "INFO", "still here", ""),
    );
}
