//! `proto`: the codecs on the hot path of every message (pickle envelope in and
//! out, topic parsing, log record JSON).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::{ByteOrder, DType, DecodeLimits, NdArray, Order, Protocol, Scalar, Value};
use ecci_proto::platform::{Level, LogInfo, LogRecord, LogTime};
use ecci_proto::topic::AppTopic;

use crate::table::Table;

/// Runs `f` repeatedly for about `budget` and returns (iterations, ns per iteration).
fn measure(budget: Duration, mut f: impl FnMut()) -> (u64, f64) {
    // Warm up, then time whole batches so the clock is read rarely.
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            f();
        }
        iterations += 1_000;
    }
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    (iterations, ns)
}

pub(crate) fn run() -> Result<(), String> {
    let budget = Duration::from_millis(500);
    let limits = DecodeLimits::default();
    let small = Envelope::data(Value::dict([
        ("frame", Value::from(42)),
        ("label", Value::from("person")),
        ("score", Value::from(0.93)),
    ]));
    let big = Envelope::data(Value::Bytes(vec![7u8; 64 * 1024]));
    let small_wire = small.to_pickle(Protocol::V4);
    let big_wire = big.to_pickle(Protocol::V4);
    let topic = "bridge/edge1/ECCI/broker1/app-7/app/camera/detector";
    let record = LogRecord {
        app_id: "app-7".parse().map_err(|e| format!("{e}"))?,
        container_name: "detector".parse().map_err(|e| format!("{e}"))?,
        agent_id: None,
        log_info: LogInfo {
            time: LogTime {
                year: 2026,
                month: 11,
                day: 24,
                hour: 2,
                minute: 26,
                second: 10,
                millis: 87,
            },
            name: "detector::model".into(),
            level: Level::Info,
            message: "frame 42: person (0.93) said \"hi\"\n".into(),
            kv: Vec::new(),
        },
    };

    let mut table = Table::new(&["operation", "iterations", "ns/op", "MiB/s"]);
    let mut add = |name: &str, bytes: usize, (n, ns): (u64, f64)| {
        let mibs = bytes as f64 / ns * 1e9 / (1024.0 * 1024.0);
        table.row(vec![
            name.to_owned(),
            n.to_string(),
            format!("{ns:.0}"),
            format!("{mibs:.0}"),
        ]);
    };
    add(
        "encode small envelope",
        small_wire.len(),
        measure(budget, || {
            black_box(black_box(&small).to_pickle(Protocol::V4));
        }),
    );
    add(
        "decode small envelope",
        small_wire.len(),
        measure(budget, || {
            black_box(Envelope::from_pickle(black_box(&small_wire), &limits).ok());
        }),
    );
    add(
        "encode 64 KiB bytes envelope",
        big_wire.len(),
        measure(budget, || {
            black_box(black_box(&big).to_pickle(Protocol::V4));
        }),
    );
    add(
        "decode 64 KiB bytes envelope",
        big_wire.len(),
        measure(budget, || {
            black_box(Envelope::from_pickle(black_box(&big_wire), &limits).ok());
        }),
    );
    add(
        "parse app topic",
        topic.len(),
        measure(budget, || {
            black_box(AppTopic::parse(black_box(topic)).ok());
        }),
    );
    let json_len = record.to_json().len();
    add(
        "log record to JSON",
        json_len,
        measure(budget, || {
            black_box(black_box(&record).to_json());
        }),
    );
    table.print();
    println!();
    frames()
}

/// Runs `f` one call at a time for about `budget` (for calls of milliseconds)
/// and returns (iterations, ns per iteration).
fn measure_each(budget: Duration, mut f: impl FnMut()) -> (u64, f64) {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < budget || iterations < 10 {
        f();
        iterations += 1;
    }
    (
        iterations,
        start.elapsed().as_nanos() as f64 / iterations as f64,
    )
}

/// numpy frame envelopes `{'frame': uint8 H×W×3, 'ts': 1.5}`: decoded from the
/// payload's `Bytes` (the pixels a view) and encoded, beside a memcpy of the
/// same number of bytes in the same run. Target: at least 50 % of memcpy.
fn frames() -> Result<(), String> {
    let budget = Duration::from_millis(700);
    let limits = DecodeLimits::default();
    let mut table = Table::new(&[
        "operation",
        "bytes",
        "iterations",
        "µs/op",
        "GB/s",
        "% of memcpy",
    ]);
    for (h, w) in [(480usize, 640usize), (1080, 1920)] {
        let len = h * w * 3;
        let pixels: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let frame = NdArray::new(
            DType::new(Scalar::U8, ByteOrder::Little),
            vec![h, w, 3],
            Order::C,
            pixels.clone(),
        )
        .map_err(|e| e.to_string())?;
        let envelope = Envelope::data(Value::dict([
            ("frame", Value::NdArray(Box::new(frame))),
            ("ts", Value::Float(1.5)),
        ]));
        // memcpy of the frame's bytes, the reference.
        let mut dst = vec![0u8; len];
        let (n, ns) = measure_each(budget, || {
            black_box(&mut dst).copy_from_slice(black_box(&pixels));
        });
        let memcpy_gbs = len as f64 / ns;
        let gbs = |ns: f64| len as f64 / ns;
        table.row(vec![
            format!("memcpy {h}×{w}×3"),
            len.to_string(),
            n.to_string(),
            format!("{:.0}", ns / 1e3),
            format!("{memcpy_gbs:.2}"),
            "100".to_owned(),
        ]);
        for (protocol, p) in [(Protocol::V4, 4), (Protocol::V5, 5)] {
            let wire = bytes::Bytes::from(envelope.to_pickle(protocol));
            let decoded = Envelope::from_bytes(&wire, &limits).map_err(|e| e.to_string())?;
            if decoded != envelope {
                return Err(format!("protocol {p}: the frame did not decode to itself"));
            }
            let (n, ns) = measure_each(budget, || {
                black_box(Envelope::from_bytes(black_box(&wire), &limits).ok());
            });
            table.row(vec![
                format!("decode {h}×{w}×3 frame envelope, protocol {p}"),
                wire.len().to_string(),
                n.to_string(),
                format!("{:.1}", ns / 1e3),
                format!("{:.2}", gbs(ns)),
                format!("{:.0}", gbs(ns) / memcpy_gbs * 100.0),
            ]);
            let (n, ns) = measure_each(budget, || {
                black_box(black_box(&envelope).to_pickle(protocol));
            });
            table.row(vec![
                format!("encode {h}×{w}×3 frame envelope, protocol {p}"),
                wire.len().to_string(),
                n.to_string(),
                format!("{:.0}", ns / 1e3),
                format!("{:.2}", gbs(ns)),
                format!("{:.0}", gbs(ns) / memcpy_gbs * 100.0),
            ]);
        }
    }
    table.print();
    Ok(())
}
