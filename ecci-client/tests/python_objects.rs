//! Python objects, live: a Python container (`tests/python/objects_peer.py`: paho-mqtt,
//! pickle, numpy) sends a 480×640×3 uint8 frame with plain fields, a datetime with a
//! time zone and a Decimal to a Rust container through the mosquitto at
//! `ECCI_TEST_BROKER`, pickled with protocols 4 and 5; Rust reads it (the frame as a
//! view on the payload, through serde into `NdArray`) and sends it back; Python checks
//! that what comes back equals what it sent. Run with numpy 1.26 and numpy 2.x
//! (`ECCI_PYTHON_NUMPY1`, `ECCI_PYTHON_NUMPY2`).
//!
//! A missing broker or interpreter is a visible skip, and a failure when
//! `ECCI_REQUIRE_BROKER`/`ECCI_REQUIRE_SERVICES` is set.

mod common;

use std::path::PathBuf;

use common::WAIT;
use common::mosquitto::{app_id, broker, config};
use common::python::Peer;
use ecci_client::Client;
use ecci_proto::pickle::{NdArray, Scalar, Value};
use serde::Deserialize;
use tokio::process::Command;

/// What the Rust app reads: a frame and plain fields, through serde.
#[derive(Debug, Deserialize)]
struct Frame {
    frame: NdArray,
    ts: f64,
    label: String,
    seq: i64,
}

#[expect(clippy::print_stderr, reason = "a skip is reported")]
fn interpreter(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var_os("ECCI_REQUIRE_SERVICES").is_none(),
                "{var} unset but ECCI_REQUIRE_SERVICES is set"
            );
            eprintln!("skipped: {var} unset (run .ci/python-venvs.sh)");
            None
        }
    }
}

fn peer(python: &str, app: &str, broker: &(String, u16), me: &str, target: &str) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/objects_peer.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .env("ECCI_LOCAL_BROKER_IP", &broker.0)
        .env("ECCI_LOCAL_BROKER_PORT", broker.1.to_string())
        .env("ECCI_LOCAL_BROKER_ID", "b1")
        .env("ECCI_APP_ID", app)
        .env("ECCI_CONTAINER_NAME", me)
        .env("ECCI_PUB_TARGETS", format!("{{'{target}': 'b1'}}"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

#[tokio::test]
async fn frames_datetimes_and_decimals_go_python_rust_python_unchanged() {
    let Some(broker) = broker() else { return };
    for var in ["ECCI_PYTHON_NUMPY1", "ECCI_PYTHON_NUMPY2"] {
        let Some(python) = interpreter(var) else {
            continue;
        };
        let app = app_id("objects");
        let rust = Client::connect(config(&app, &broker, "rust", &["py"]).build().unwrap())
            .await
            .unwrap();
        let mut py = Peer::spawn(peer(&python, &app, &broker, "py", "rust"));
        py.until("READY").await;

        let mut seen = Vec::new();
        for _ in 0..2 {
            let got = tokio::time::timeout(WAIT, rust.recv_data())
                .await
                .expect("the frame in time")
                .expect("client running");
            // Typed, through serde: the frame is an NdArray, the rest plain fields.
            let frame: Frame = got.decode().expect("a frame message");
            assert_eq!(frame.frame.shape(), &[480, 640, 3], "{var}");
            assert_eq!(frame.frame.dtype().scalar, Scalar::U8);
            assert_eq!((frame.ts, frame.label.as_str()), (1.5, "cam0"));
            assert_eq!(frame.frame.to_string(), "ndarray(uint8, 480×640×3)");
            let pixels = frame.frame.data();
            assert!(
                pixels
                    .iter()
                    .enumerate()
                    .take(10_000)
                    .all(|(i, &p)| u32::from(p) == (i as u32 * 7) % 251),
                "{var}: pixels"
            );
            // The datetime and the Decimal, typed.
            let v = got.contents.value();
            assert_eq!(
                v.get("when").map(Value::to_string).as_deref(),
                Some(
                    "datetime.datetime(2026, 12, 2, 7, 30, 15, 250000, \
                     tzinfo=datetime.timezone(datetime.timedelta(seconds=7200)))"
                ),
                "{var}"
            );
            assert_eq!(
                v.get("price").map(Value::to_string).as_deref(),
                Some("Decimal('12.34')")
            );
            seen.push(frame.seq);
            // Back to Python, as it came.
            let echo = Value::dict([("echo", got.contents.into_value())]);
            rust.publish(&echo, "py").await.unwrap().await.unwrap();
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1], "{var}");
        for _ in 0..2 {
            py.until("EQUAL").await;
        }
        py.until("DONE").await;
        py.exits_cleanly().await;
        assert_eq!(rust.metrics().errors, 0, "{var}");
        rust.close().await;
    }
}
