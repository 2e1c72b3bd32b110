//! The logger's pacing against the platform's slowest ordinary consumer: a 10,000-record
//! burst (an ordinary start-up, ten times over) logged at once, a default-config mosquitto
//! (`max_queued_messages 1000`, started by the test) and a `mosquitto_sub -q 2` consumer.
//! With the default [`Pacing`](ecci_logger::Pacing) all 10,000 arrive, in 5 runs out of 5;
//! unpaced, the broker dropped up to 980 of a 2,000-record burst for the same consumer.
//!
//! Without the mosquitto and mosquitto_sub binaries the test returns at once, unless
//! `ECCI_REQUIRE_BROKER=1`.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{blocking, config, log, mqtt, unique_broker};
use ecci_logger::{Connection, Stats};
use ecci_transport::mosquitto::Mosquitto;

const RECORDS: usize = 10_000;

/// `mosquitto_sub` on `PATH` or in `/usr/bin` (Debian's mosquitto-clients).
fn mosquitto_sub() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([std::path::PathBuf::from("/usr/bin")])
        .map(|d| d.join("mosquitto_sub"))
        .find(|p| p.is_file());
    if found.is_none() {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_BROKER",
            "no mosquitto_sub on PATH or in /usr/bin (install the mosquitto-clients package)",
        );
    }
    found
}

/// A `mosquitto_sub -q 2` on `topic`, subscribed, and a channel that gets each message's
/// payload (the lines that are JSON records) and then closes when it exits.
fn consumer(binary: &std::path::Path, port: u16, topic: &str) -> (Child, mpsc::Receiver<String>) {
    // mosquitto_sub buffers its output when it is a pipe; stdbuf (coreutils) makes it write
    // each line as it comes, so that SUBACK is seen at once.
    let mut child = Command::new("stdbuf")
        .arg("-oL")
        .arg(binary)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "2", "-d"])
        .args(["-t", topic, "-C", &RECORDS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto_sub");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // `-d` prints the protocol steps beside the payloads: SUBACK means subscribed.
            if line.contains("received SUBACK") {
                let _ = ready_tx.send(());
            } else if line.starts_with('{') && tx.send(line).is_err() {
                break;
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("mosquitto_sub subscribed in time");
    (child, rx)
}

/// One run: the burst, logged at once, and what the consumer received of it.
fn run(broker: &Mosquitto, sub: &std::path::Path) -> (usize, Duration, Stats) {
    let id = unique_broker();
    let topic = format!("toEdgeAI/{id}/log");
    let (mut child, rx) = consumer(sub, broker.port(), &topic);
    let (logger, guard) = ecci_logger::start(config(
        Connection::Mqtt(mqtt("127.0.0.1", broker.port())),
        &id,
    ))
    .expect("logger");
    let start = Instant::now();
    for i in 0..RECORDS {
        log(
            &logger,
            log::Level::Info,
            "app",
            &format!("record {i:05}"),
            &[],
        );
    }
    let mut received = 0;
    // At 1,000 records/s the burst takes 10 s; a lost record never comes: 30 s is the bound.
    let deadline = start + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                assert!(
                    line.contains(&format!("record {received:05}")),
                    "in order: {line}"
                );
                received += 1;
            }
            Err(_) => break,
        }
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    guard
        .flush_timeout(Duration::from_secs(10))
        .expect("flushed");
    let stats = guard.stats();
    drop(guard);
    (received, took, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the per-run figures are reported (and asserted)"
)]
async fn a_10000_record_burst_reaches_a_mosquitto_sub_consumer_whole() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let Some(sub) = mosquitto_sub() else {
        return;
    };
    for i in 1..=5 {
        let (received, took, stats) = blocking(|| run(&broker, &sub));
        eprintln!("logger burst run {i}: {received} of {RECORDS} received in {took:?}; {stats:?}");
        assert_eq!(received, RECORDS, "run {i}: {stats:?}");
        assert_eq!(
            (
                stats.logged,
                stats.acknowledged,
                stats.dropped,
                stats.failed
            ),
            (RECORDS as u64, RECORDS as u64, 0, 0),
            "run {i}"
        );
    }
}
