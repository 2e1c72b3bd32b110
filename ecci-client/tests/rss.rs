//! Memory under a flood, measured: 100 data messages of 8 MB through the mosquitto at
//! `ECCI_TEST_BROKER` to a receiver that does not read. Each side runs in a child process
//! of its own (this binary, run again with `ECCI_RSS_ROLE`), so that its peak resident
//! memory (`VmHWM` in `/proc/self/status`) is its own. The receiver stops reading from the
//! broker once its queues are full in bytes (the broker keeps the rest), the sender waits
//! for room in its outbox (end-to-end delivery off: with it, the sender would wait at its
//! window); both peaks stay under the bounds the README states for the
//! defaults, and once the receiver reads, all 100 arrive in order.
//!
//! `harness = false`: `main` is the parent, or a child when `ECCI_RSS_ROLE` is set.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecci_client::{Client, ClientOptions};
use ecci_proto::config::Config;
use ecci_proto::pickle::Value;
use ecci_transport::MqttConfig;

const COUNT: usize = 100;
const SIZE: usize = 8_000_000;
const MIB: u64 = 1024 * 1024;
/// Code, libraries, runtime and the allocator's retention, over the baseline measured after
/// connecting: what the formulas below do not count. glibc's dynamic mmap threshold serves
/// 8 MB buffers from its arenas after the first is freed, and keeps some freed ones: the
/// sender's peak was 207 MiB with glibc's defaults and 55 MiB with
/// `MALLOC_MMAP_THRESHOLD_=1048576` (README, "Memory").
const SLACK: u64 = 64 * MIB;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    match std::env::var("ECCI_RSS_ROLE").as_deref() {
        Ok("receiver") => child(receiver),
        Ok("sender") => child(sender),
        _ => parent(),
    }
}

/// `(VmHWM, VmRSS)` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in /proc/self/status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        kib * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

fn child(role: fn(Config) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let broker = std::env::var("ECCI_TEST_BROKER").expect("ECCI_TEST_BROKER");
    let name = std::env::var("ECCI_RSS_NAME").expect("ECCI_RSS_NAME");
    let app = std::env::var("ECCI_RSS_APP").expect("ECCI_RSS_APP");
    let (host, port) = broker.rsplit_once(':').expect("host:port");
    let config = Config::builder(
        host,
        "b1".parse().unwrap(),
        app.parse().unwrap(),
        name.parse().unwrap(),
    )
    .port(port.parse().expect("a port"))
    .pub_target("receiver".parse().unwrap(), "b1".parse().unwrap())
    .build()
    .unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(role(config));
}

fn receiver(config: Config) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async move {
        let client = Client::connect(config).await.expect("connect");
        let (_, baseline) = memory();
        say(&format!("ready {baseline}"));
        // Stalled until the sender is done.
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).expect("stdin");
        // Then until the client stopped taking messages from the broker: its queues and
        // the transport's are full in bytes.
        let mut last = (client.metrics().transport.received, Instant::now());
        let started = Instant::now();
        while last.1.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let received = client.metrics().transport.received;
            if received != last.0 {
                last = (received, Instant::now());
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "still reading"
            );
        }
        let (hwm, rss) = memory();
        say(&format!("measured {hwm} {rss} {}", last.0));
        for i in 0..COUNT {
            let m = tokio::time::timeout(Duration::from_secs(60), client.recv_data())
                .await
                .unwrap_or_else(|_| panic!("message {i} did not arrive"))
                .expect("data");
            match m.contents.value() {
                Value::Bytes(b) => assert!(b.len() == SIZE && b[0] == i as u8, "message {i}"),
                other => panic!("message {i}: {:?}", std::mem::discriminant(other)),
            }
        }
        assert!(
            client.errors().is_empty(),
            "{:?}",
            client.errors().try_recv()
        );
        say("drained");
        client.close().await;
    })
}

fn sender(config: Config) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    Box::pin(async move {
        // End-to-end delivery off: with it (the default) the stalled receiver would hold the
        // sender at its window (e2e.rs shows that); here the outbox is what may pile up.
        let options = ClientOptions {
            e2e: ecci_client::E2eOptions {
                enabled: false,
                ..ecci_client::E2eOptions::default()
            },
            ..ClientOptions::default()
        };
        let client = Client::builder(config)
            .options(options)
            .connect()
            .await
            .expect("connect");
        let (_, baseline) = memory();
        let mut deliveries = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            // Made one at a time, as an application would: only the outbox may pile up.
            let contents = Value::Bytes(vec![i as u8; SIZE]);
            deliveries.push(
                client
                    .publish(&contents, "receiver")
                    .await
                    .expect("publish"),
            );
        }
        for d in deliveries {
            tokio::time::timeout(Duration::from_secs(120), d)
                .await
                .expect("acknowledged in time")
                .expect("acknowledged");
        }
        let (hwm, rss) = memory();
        say(&format!("measured {hwm} {rss} {baseline}"));
        client.close().await;
    })
}

struct Child {
    process: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn start(role: &str, name: &str, app: &str, broker: &str) -> Child {
        let mut process = Command::new(std::env::current_exe().unwrap())
            .env("ECCI_RSS_ROLE", role)
            .env("ECCI_RSS_NAME", name)
            .env("ECCI_RSS_APP", app)
            .env("ECCI_TEST_BROKER", broker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child");
        let lines = BufReader::new(process.stdout.take().unwrap()).lines();
        Child { process, lines }
    }

    /// The numbers on the next line, which starts with `word`.
    fn expect(&mut self, word: &str) -> Vec<u64> {
        let line = self
            .lines
            .next()
            .unwrap_or_else(|| panic!("the child ended before {word:?}"))
            .unwrap();
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some(word), "{line}");
        parts.map(|n| n.parse().unwrap()).collect()
    }

    fn wait(mut self) {
        let status = self.process.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / MIB as f64)
}

fn parent() {
    let Ok(broker) = std::env::var("ECCI_TEST_BROKER") else {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_BROKER",
            "ECCI_TEST_BROKER unset (start a mosquitto with .ci/start-mosquitto.sh) [rss]",
        );
        return;
    };
    let app = format!("rss{}", std::process::id());
    let mut receiver = Child::start("receiver", "receiver", &app, &broker);
    let receiver_baseline = receiver.expect("ready")[0];
    let mut sender = Child::start("sender", "sender", &app, &broker);
    let sent = sender.expect("measured");
    sender.wait();
    writeln!(receiver.process.stdin.as_mut().unwrap(), "sent").unwrap();
    let received = receiver.expect("measured");
    receiver.expect("drained");
    receiver.wait();

    // The bounds the README states ("Memory"), for these messages (payload ≈ SIZE): the
    // receiver holds the transport's event queue, the data queue and its parked buffer,
    // each up to its byte bound plus one message, and one message being decoded (its pickle
    // and its value): 256 + 2 × 64 MiB + 5 × SIZE; the sender its outbox and the encoded
    // copy being written, and the message being published (the value, its copy and its
    // pickle): 2 × (64 + 16) MiB + 3 × SIZE (end-to-end delivery is off for it: its window
    // would add 16 MiB and one message).
    let mqtt = MqttConfig::new("", 0);
    let options = ClientOptions::default();
    let msg = SIZE as u64;
    let receiver_bound = receiver_baseline
        + SLACK
        + mqtt.event_queue_bytes as u64
        + 2 * options.data_queue_bytes as u64
        + 5 * msg;
    let outbox = (mqtt.outbox_bytes + mqtt.control_outbox_bytes) as u64;
    let sender_bound = sent[2] + SLACK + 2 * outbox + 3 * msg;
    // The figures, for the record (stderr: cargo shows them).
    #[expect(clippy::print_stderr, reason = "the test reports what it measured")]
    {
        eprintln!(
            "rss: receiver VmHWM {} (VmRSS {}, baseline {}, {} of {COUNT} messages taken from the broker while stalled; bound {}); \
         sender VmHWM {} (VmRSS {}, baseline {}; bound {})",
            mib(received[0]),
            mib(received[1]),
            mib(receiver_baseline),
            received[2],
            mib(receiver_bound),
            mib(sent[0]),
            mib(sent[1]),
            mib(sent[2]),
            mib(sender_bound),
        );
    }
    assert!(
        received[2] < COUNT as u64,
        "the stalled receiver took every message from the broker"
    );
    assert!(
        received[0] <= receiver_bound,
        "receiver peak {} over the bound {}",
        mib(received[0]),
        mib(receiver_bound)
    );
    assert!(
        sent[0] <= sender_bound,
        "sender peak {} over the bound {}",
        mib(sent[0]),
        mib(sender_bound)
    );
}
