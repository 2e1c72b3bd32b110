//! Interop with a Python peer written from wire.md (`tests/python/peer.py`: paho-mqtt and
//! pickle), through the mosquitto at `ECCI_TEST_BROKER` (`host:port`).
//!
//! Without `ECCI_TEST_BROKER` the tests return early, unless `ECCI_REQUIRE_BROKER=1`
//! (CI: `.ci/start-mosquitto.sh` and `.ci/python-deps.sh`). Waits are bounded upper limits.

mod common;

use std::time::Duration;

use common::WAIT;
use common::mosquitto::{app_id, broker, config};
use common::python::{self, Peer};
use ecci_client::{Client, Command, InboundError, Targets};
use ecci_proto::config::AppType;
use ecci_proto::envelope::EnvelopeError;
use ecci_proto::pickle::{Bytes, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    n: i32,
    text: String,
    raw: Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echo<T> {
    echo: T,
}

#[tokio::test]
async fn python_peer_exchanges_data_and_commands_both_ways() {
    let Some(broker) = broker() else { return };
    let app = app_id("echo");
    let rust = Client::connect(config(&app, &broker, "rust", &["py"]).build().unwrap())
        .await
        .unwrap();
    let mut py = Peer::spawn(python::command(
        "peer.py",
        "echo",
        &app,
        &broker,
        "py",
        &["rust"],
        None,
    ));
    py.until("READY").await;

    // Python → Rust: first an object whose unpickling would run
    // os.system('echo pwned'): delivered as inert data, the call recorded, never made.
    let evil = tokio::time::timeout(WAIT, rust.recv_data())
        .await
        .unwrap()
        .unwrap();
    let obj = evil.contents.value().as_object().expect("an inert object");
    assert_eq!(
        (obj.class.name.as_str(), obj.args.as_slice()),
        ("system", &[Value::from("echo pwned")][..])
    );
    // Then data with Python's types, and a command.
    let hello = tokio::time::timeout(WAIT, rust.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hello.sender(), "py");
    let v = hello.contents.value();
    assert_eq!(v.get("hello").and_then(Value::as_str), Some("py"));
    assert_eq!(
        v.get("blob").and_then(Value::as_bytes),
        Some(&b"\x00\xff"[..])
    );
    assert_eq!(
        v.get("pair"),
        Some(&Value::Tuple(vec![Value::from(1), Value::from("a")]))
    );
    assert_eq!(v.get("x"), Some(&Value::Float(2.5)));
    assert_eq!(v.get("nothing"), Some(&Value::None));
    assert_eq!(
        v.get("nested").and_then(|n| n.get("list")),
        Some(&Value::List(vec![
            Value::from(1),
            Value::from(2),
            Value::from(3)
        ]))
    );
    let cmd = tokio::time::timeout(WAIT, rust.recv_cmd())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cmd.sender().as_str(), cmd.contents.cmd_name()),
        ("py", Some("py_hello"))
    );

    // The payload before them that is no envelope was reported, not fatal.
    let errors = rust.errors();
    let mut reasons = Vec::new();
    while let Some(e) = errors.try_recv() {
        assert_eq!(e.topic, format!("ECCI/b1/{app}/app/py/rust"));
        reasons.push(match e.error {
            InboundError::Envelope(EnvelopeError::NotADict { found }) => found.to_owned(),
            InboundError::Envelope(EnvelopeError::NotPickle(d)) => d.to_string(),
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(reasons, ["list"]);

    // Rust → Python and back: Python decoded exactly what was meant.
    let job = Job {
        n: 5,
        text: "héllo".into(),
        raw: vec![0, 1].into(),
    };
    rust.publish(&job, Targets::All)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        py.until("DATA").await,
        r"DATA rust {'n': 5, 'text': 'héllo', 'raw': b'\x00\x01'}"
    );
    let echo = tokio::time::timeout(WAIT, rust.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.decode::<Echo<Job>>().unwrap(), Echo { echo: job });

    rust.publish_cmd(Command::new("ping").with("k", 1), "py")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(py.until("CMD").await, "CMD rust {'cmd': 'ping', 'k': 1}");
    let ack = tokio::time::timeout(WAIT, rust.recv_cmd())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack.contents.cmd_name(), Some("ack"));
    assert_eq!(
        ack.contents.value().get("of").and_then(|of| of.get("k")),
        Some(&Value::from(1))
    );

    rust.publish_cmd("quit", "py").await.unwrap().await.unwrap();
    py.until("QUIT").await;
    py.exits_cleanly().await;
    assert_eq!(rust.metrics().errors, 1);
    rust.close().await;
}

#[tokio::test]
async fn python_controller_starts_rust_components() {
    let Some(broker) = broker() else { return };
    let app = app_id("pyctrl");
    let mut components = Vec::new();
    for name in ["r1", "r2"] {
        let c = config(&app, &broker, name, &["pyctrl"])
            .app_type(AppType::Component)
            .controller("pyctrl".parse().unwrap(), "b1".parse().unwrap())
            .build()
            .unwrap();
        components.push(Client::connect(c).await.unwrap());
    }
    // The components announced themselves to nobody; the controller asks them again.
    let mut py = Peer::spawn(python::command(
        "peer.py",
        "controller",
        &app,
        &broker,
        "pyctrl",
        &["r1", "r2"],
        None,
    ));
    py.until("STARTED").await;
    for c in &components {
        c.wait_started(WAIT).await.unwrap();
        c.publish(&format!("work of {}", c.name()), "pyctrl")
            .await
            .unwrap()
            .await
            .unwrap();
    }
    py.until("DONE").await;
    for c in &components {
        tokio::time::timeout(WAIT, c.exit_requested())
            .await
            .unwrap()
            .unwrap();
    }
    py.exits_cleanly().await;
    for c in components {
        assert_eq!(c.metrics().errors, 0);
        c.close().await;
    }
}

#[tokio::test]
async fn python_component_of_a_rust_controller() {
    let Some(broker) = broker() else { return };
    let app = app_id("rctrl");
    let ctrl = Client::connect(
        config(&app, &broker, "rctrl", &["pyc", "rc"])
            .app_type(AppType::Controller)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let rc = Client::connect(
        config(&app, &broker, "rc", &["rctrl"])
            .app_type(AppType::Component)
            .controller("rctrl".parse().unwrap(), "b1".parse().unwrap())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let err = ctrl
        .wait_started(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.to_string().ends_with("no `ready` from pyc"), "{err}");

    let mut py = Peer::spawn(python::command(
        "peer.py",
        "component",
        &app,
        &broker,
        "pyc",
        &[],
        Some("rctrl"),
    ));
    py.until("STARTED").await;
    ctrl.wait_started(WAIT).await.unwrap();
    rc.wait_started(WAIT).await.unwrap();

    // The Python component reports in once started.
    let m = tokio::time::timeout(WAIT, ctrl.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.sender(), "pyc");
    assert_eq!(m.contents.value().get("started"), Some(&Value::Bool(true)));

    ctrl.publish_cmd("exit", Targets::All)
        .await
        .unwrap()
        .await
        .unwrap();
    py.until("EXIT").await;
    py.exits_cleanly().await;
    tokio::time::timeout(WAIT, rc.exit_requested())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctrl.metrics().errors, 0);
    ctrl.close().await;
    rc.close().await;
}
