//! Wire fidelity with a Python peer that handles messages as the published Python `Client`
//! does (`tests/python/wire_peer.py`: reads only `type` and `contents`, indexes
//! `contents['cmd']` catching only `KeyError`), through the mosquitto at `ECCI_TEST_BROKER`:
//!
//! - data and commands to a target arrive in publish order ("results…, then `exit`");
//! - command contents a Python receiver cannot survive are refused before sending;
//! - messages far beyond 16 MiB arrive, and one beyond a configured limit is an error event
//!   while the connection and the next message are kept.
//!
//! Without `ECCI_TEST_BROKER` the tests return early, unless `ECCI_REQUIRE_BROKER=1`
//! (CI: `.ci/start-mosquitto.sh` and `.ci/python-deps.sh`). Waits are bounded upper limits.

mod common;

use common::WAIT;
use common::mosquitto::{app_id, broker, config};
use common::python::{self, Peer};
use ecci_client::{Client, ClientOptions, Command, Error, InboundError};
use ecci_proto::envelope::{Envelope, MessageType};
use ecci_proto::pickle::{BigInt, Value};

const MIB: usize = 1024 * 1024;

fn wire_peer(
    mode: &str,
    args: &[&str],
    app: &str,
    b: &(String, u16),
    me: &str,
    targets: &[&str],
) -> Peer {
    let mut command = python::command("wire_peer.py", mode, app, b, me, targets, None);
    command.args(args);
    Peer::spawn(command)
}

/// Publishes 500 data messages and then `exit` without waiting in between, ten times: the
/// Python receiver sees all 500, in order, before each `exit`. Every message carries the
/// sequence extension beside `type` and `contents`, and the receiver, reading only those
/// two, behaves as with a Python sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_follow_data_in_publish_order() {
    let Some(b) = broker() else { return };
    let app = app_id("order");
    let rust = Client::connect(config(&app, &b, "rsend", &["pyrecv"]).build().unwrap())
        .await
        .unwrap();
    let mut py = wire_peer("receiver", &[], &app, &b, "pyrecv", &[]);
    py.until("READY").await;
    for run in 0..10 {
        for i in 0..500 {
            // Queued, not awaited: the data is still waiting when the command comes.
            rust.publish(&(run, i), "pyrecv").await.unwrap();
        }
        let exit = rust
            .publish_cmd(Command::new("exit").with("run", run), "pyrecv")
            .await
            .unwrap();
        tokio::time::timeout(WAIT, exit).await.unwrap().unwrap();
        if run == 0 {
            // The sequence extension and the end-to-end announcement (on by default): two
            // keys a Python peer ignores.
            assert_eq!(
                py.until("KEYS").await,
                "KEYS contents,ecci_e2e,ecci_seq,type"
            );
        }
        assert_eq!(
            py.until("EXIT").await,
            format!("EXIT {run} 500 1"),
            "run {run}"
        );
    }
    py.exits_cleanly().await;
    assert_eq!(rust.metrics().errors, 0);
    // The Python receiver never acknowledged: the sender took it for one that does not
    // (plain QoS 2), and nothing waits for it.
    let e2e = rust.e2e_metrics();
    assert_eq!(e2e.len(), 1);
    assert_eq!(
        (e2e[0].acknowledging, e2e[0].unacked, e2e[0].retransmissions),
        (Some(false), 0, 0)
    );
    rust.close().await;
}

/// Every contents that is not a dict is refused as a command before anything is sent; a
/// dict without `'cmd'` is not (Python catches that `KeyError`), and the Python peer still
/// answers a ping afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_a_python_receiver_cannot_survive_are_refused() {
    let Some(b) = broker() else { return };
    let app = app_id("cmdshape");
    let rust = Client::connect(config(&app, &b, "rsend", &["pyrecv"]).build().unwrap())
        .await
        .unwrap();
    let mut py = wire_peer("receiver", &[], &app, &b, "pyrecv", &["rsend"]);
    py.until("READY").await;

    let not_dicts = [
        Value::from("start"),
        Value::List(vec![Value::from("exit")]),
        Value::Tuple(vec![Value::from("cmd"), Value::from("exit")]),
        Value::None,
        Value::Bool(true),
        Value::from(1),
        Value::BigInt(BigInt::from_i128(1 << 70)),
        Value::Float(1.5),
        Value::Bytes(b"exit".to_vec()),
        Value::ByteArray(b"exit".to_vec()),
        Value::Set(vec![Value::from("cmd")]),
        Value::FrozenSet(vec![Value::from("cmd")]),
    ];
    let sent_before = rust.metrics().transport.acknowledged;
    for value in not_dicts {
        let found = value.type_name();
        let err = rust
            .publish_envelope(Envelope::new(MessageType::Cmd, value), "pyrecv")
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::CommandNotADict { found: f } if f == found),
            "{err:?}"
        );
        assert!(err.to_string().contains(found), "{err}");
    }
    assert_eq!(
        rust.metrics().transport.acknowledged,
        sent_before,
        "nothing was sent"
    );
    assert_eq!(rust.metrics().transport.queued, 0, "nothing was queued");

    // A dict without 'cmd' goes: the Python Client survives its KeyError.
    let no_cmd = Value::dict([("other", Value::from(1))]);
    let d = rust
        .publish_envelope(Envelope::new(MessageType::Cmd, no_cmd), "pyrecv")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, d).await.unwrap().unwrap();
    // The peer's network thread is alive: it answers.
    let d = rust.publish_cmd("ping", "pyrecv").await.unwrap();
    tokio::time::timeout(WAIT, d).await.unwrap().unwrap();
    assert_eq!(py.until("PING").await, "PING");
    let pong = tokio::time::timeout(WAIT, rust.recv_cmd())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (pong.sender().as_str(), pong.contents.cmd_name()),
        ("pyrecv", Some("pong"))
    );
    py.exits_cleanly().await;
    rust.close().await;
}

fn bytes_len(message: &ecci_client::Received) -> usize {
    match message.contents.value() {
        Value::Bytes(b) => b.len(),
        other => panic!("expected bytes, got a {}", other.type_name()),
    }
}

/// 17 MiB and 60 MiB from Python arrive whole with the default limit (MQTT's 256 MiB); with
/// the limit at 16 MiB, the 17 MiB one is an error event naming its topic and size, the
/// small message right after it arrives, and the connection was never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_from_python() {
    let Some(b) = broker() else { return };
    let app = app_id("sizes");
    let big = Client::connect(config(&app, &b, "rbig", &[]).build().unwrap())
        .await
        .unwrap();
    let limited = Client::builder(config(&app, &b, "rsmall", &[]).build().unwrap())
        .options(ClientOptions {
            max_inbound_packet: 16 * MIB,
            ..ClientOptions::default()
        })
        .connect()
        .await
        .unwrap();
    let mut py = wire_peer(
        "sender",
        &["rbig:17", "rbig:60", "rbig:0", "rsmall:17", "rsmall:0"],
        &app,
        &b,
        "pybig",
        &["rbig", "rsmall"],
    );
    py.until("SENT").await;

    for expected in [17 * MIB, 60 * MIB, 5] {
        let m = tokio::time::timeout(WAIT, big.recv_data())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.sender().as_str(), bytes_len(&m)), ("pybig", expected));
    }
    let small = tokio::time::timeout(WAIT, limited.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes_len(&small), 5);
    let e = limited
        .errors()
        .try_recv()
        .expect("an error event for the 17 MiB message");
    assert_eq!(e.topic, format!("ECCI/b1/{app}/app/pybig/rsmall"));
    match e.error {
        InboundError::TooLarge { size, max } => {
            assert!(size > 17 * MIB && size < 17 * MIB + 1024, "{size}");
            assert_eq!(max, 16 * MIB);
        }
        other => panic!("{other:?}"),
    }
    for c in [&big, &limited] {
        let status = c.status();
        assert!(status.connected);
        assert_eq!(
            (status.disconnects, status.last_disconnect.clone()),
            (0, None)
        );
        assert_eq!(c.metrics().transport.reconnects, 0);
    }
    assert_eq!(big.metrics().errors, 0);
    assert_eq!(limited.metrics().errors, 1);
    assert_eq!(limited.metrics().transport.too_large, 1);
    py.exits_cleanly().await;
    big.close().await;
    limited.close().await;
}

/// A raw 4K RGB frame (24.9 MB, over the old 16 MiB limit) goes from Rust to Python whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4k_frame_to_python() {
    let Some(b) = broker() else { return };
    let app = app_id("frame");
    let rust = Client::connect(config(&app, &b, "rsend", &["pyrecv"]).build().unwrap())
        .await
        .unwrap();
    let mut py = wire_peer("receiver", &[], &app, &b, "pyrecv", &[]);
    py.until("READY").await;
    let frame = Value::Bytes(vec![7u8; 3840 * 2160 * 3]);
    let d = rust
        .publish_envelope(Envelope::data(frame), "pyrecv")
        .await
        .unwrap();
    tokio::time::timeout(WAIT, d).await.unwrap().unwrap();
    assert_eq!(py.until("BYTES").await, "BYTES 24883200");
    py.exits_cleanly().await;
    rust.close().await;
}
