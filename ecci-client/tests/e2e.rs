//! End-to-end delivery between Rust containers (issue 15), against real mosquittos started
//! by the tests:
//!
//! - 3,000 messages at 200/s, the broker SIGKILLed mid-stream and restarted with
//!   `persistence false`, the receiver reconnecting late (so the broker drops what the
//!   sender flushes first): 0 lost, 0 duplicated, every `delivered()` is `Received`;
//!   `ECCI_E2E_CRASH_RUNS` runs (default 10).
//! - 5,000 × 64 KiB to a receiver that reads slowly, default mosquitto: 0 lost, and the
//!   sender never holds more unacknowledged than its window.
//! - Two bridged mosquittos (edge → cloud), the bridge's link cut for 10 s: 2,000
//!   messages, 0 lost.
//!
//! Without the mosquitto binary the tests return at once, unless `ECCI_REQUIRE_BROKER=1`.
//! The sleeps are the scenario's own timing, never a wait for a result.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, ClientOptions, Confirmation, E2eOptions};
use ecci_proto::config::Config;
use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::Value;
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{MqttTransport, Transport};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(120);

fn config(app: &str, broker: &str, port: u16, me: &str, targets: &[(&str, &str)]) -> Config {
    let mut b = Config::builder(
        "127.0.0.1",
        broker.parse().unwrap(),
        app.parse().unwrap(),
        me.parse().unwrap(),
    )
    .port(port);
    for (t, tb) in targets {
        b = b.pub_target(t.parse().unwrap(), tb.parse().unwrap());
    }
    b.build().unwrap()
}

fn e2e(timeout: Duration) -> ClientOptions {
    ClientOptions {
        e2e: E2eOptions {
            enabled: true,
            timeout,
            ..E2eOptions::default()
        },
        ..ClientOptions::default()
    }
}

async fn connect(config: Config, options: ClientOptions, first_retry: Option<Duration>) -> Client {
    let mut mqtt = ecci_client::mqtt_config(&config);
    if let Some(initial) = first_retry {
        mqtt.backoff.initial = initial;
        mqtt.backoff.jitter = 0.0;
    }
    let transport: Arc<dyn Transport> = Arc::new(MqttTransport::start(mqtt));
    timeout(
        WAIT,
        Client::builder(config)
            .transport(transport)
            .options(options)
            .connect(),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// Receives numbers until all of `0..count` arrived (then 500 ms more, to catch
/// duplicates) or nothing came for `quiet`; returns how often each arrived.
async fn collect(me: &Client, count: u32, quiet: Duration) -> BTreeMap<u32, usize> {
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    loop {
        let wait = if seen.len() == count as usize {
            Duration::from_millis(500)
        } else {
            quiet
        };
        match timeout(wait, me.recv_data()).await {
            Ok(m) => {
                let n = m
                    .expect("client running")
                    .decode::<u32>()
                    .expect("a number");
                assert!(n < count, "unexpected message {n}");
                *seen.entry(n).or_default() += 1;
            }
            Err(_) => return seen,
        }
    }
}

fn lost_and_duplicated(seen: &BTreeMap<u32, usize>, count: u32) -> (usize, usize) {
    (
        count as usize - seen.len(),
        seen.values().map(|c| c - 1).sum(),
    )
}

/// One crash run; returns (lost, duplicated, retransmissions).
async fn crash_run(broker: &mut Mosquitto, app: &str) -> (usize, usize, u64) {
    const COUNT: u32 = 3_000;
    const RATE: u32 = 200;
    let port = broker.port();
    // The receiver comes back 4 s after the crash (the broker after 2 s): the sender's
    // flush reaches a broker that has no session for it, and is dropped there.
    let me = connect(
        config(app, "b1", port, "me", &[]),
        e2e(Duration::from_secs(1)),
        Some(Duration::from_secs(4)),
    )
    .await;
    let peer = connect(
        config(app, "b1", port, "peer", &[("me", "b1")]),
        e2e(Duration::from_secs(1)),
        None,
    )
    .await;
    let producer = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
            let mut deliveries = Vec::new();
            for i in 0..COUNT {
                tick.tick().await;
                deliveries.push(peer.publish(&i, "me").await.expect("publish"));
            }
            for d in deliveries {
                assert_eq!(
                    d.delivered().await.expect("delivered"),
                    Confirmation::Received
                );
            }
        })
    };
    let collector = {
        let me = me.clone();
        tokio::spawn(async move { collect(&me, COUNT, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.up();
    timeout(WAIT, producer)
        .await
        .expect("every message acknowledged in time")
        .expect("producer");
    let seen = collector.await.expect("collector");
    let (lost, duplicated) = lost_and_duplicated(&seen, COUNT);
    let retransmissions = peer.e2e_metrics().iter().map(|t| t.retransmissions).sum();
    assert!(peer.metrics().transport.reconnects >= 1);
    // What the broker dropped was the sender's to repair, and it did: the receiver never
    // reported it lost (nor counted a retransmission as late).
    let m = me.metrics();
    assert_eq!(
        (m.lost, m.gaps, m.late),
        (0, 0, 0),
        "receiver's gap reports"
    );
    peer.close().await;
    me.close().await;
    (lost, duplicated, retransmissions)
}

/// Broker SIGKILLed mid-stream, `persistence false`: 0 lost, 0 duplicated in every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the per-run figures are reported (and asserted)"
)]
async fn a_broker_crash_without_persistence_loses_nothing_end_to_end() {
    let Some(mut broker) = Mosquitto::prepare() else {
        return;
    };
    broker.configure("allow_anonymous true\npersistence false\n");
    broker.up();
    let runs: usize = std::env::var("ECCI_E2E_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut resent = 0;
    for i in 0..runs {
        let app = format!("crash-{}-{i}", std::process::id());
        let (lost, duplicated, retransmissions) = crash_run(&mut broker, &app).await;
        eprintln!(
            "run {}: lost {lost}, duplicated {duplicated}, retransmissions {retransmissions}",
            i + 1
        );
        assert_eq!((lost, duplicated), (0, 0), "run {}", i + 1);
        resent += retransmissions;
    }
    // The scenario must have lost messages at the broker for the check to mean anything.
    assert!(resent > 0, "nothing was ever sent again");
}

/// 5,000 × 64 KiB to a receiver that reads slowly, on a default mosquitto: nothing lost,
/// and the sender's unacknowledged messages stay within its window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_slows_its_sender_instead_of_losing() {
    const COUNT: u32 = 5_000;
    let Some(mut broker) = Mosquitto::prepare() else {
        return;
    };
    broker.configure("allow_anonymous true\n");
    broker.up();
    let app = format!("slow-{}", std::process::id());
    let port = broker.port();
    let options = ClientOptions {
        e2e: E2eOptions {
            enabled: true,
            window: 200,
            window_bytes: 8 * 1024 * 1024,
            ..E2eOptions::default()
        },
        ..ClientOptions::default()
    };
    let window = options.e2e.clone();
    let me = connect(
        config(&app, "b1", port, "me", &[]),
        ClientOptions {
            data_queue: 64,
            data_queue_bytes: 4 * 1024 * 1024,
            ..ClientOptions::default()
        },
        None,
    )
    .await;
    let peer = connect(
        config(&app, "b1", port, "peer", &[("me", "b1")]),
        options,
        None,
    )
    .await;
    let producer = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut most = (0, 0);
            for i in 0..COUNT {
                let contents = Value::Tuple(vec![
                    Value::Int(i64::from(i)),
                    Value::Bytes(vec![7u8; 64 * 1024]),
                ]);
                let d = peer
                    .publish_envelope(Envelope::data(contents), "me")
                    .await
                    .expect("publish");
                drop(d);
                for t in peer.e2e_metrics() {
                    most = (most.0.max(t.unacked), most.1.max(t.unacked_bytes));
                }
            }
            most
        })
    };
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    loop {
        let wait = if seen.len() == COUNT as usize {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(30)
        };
        match timeout(wait, me.recv_data()).await {
            Ok(m) => {
                let m = m.unwrap();
                let Value::Tuple(items) = m.contents.value() else {
                    panic!("not a tuple");
                };
                let (Value::Int(n), Value::Bytes(b)) = (&items[0], &items[1]) else {
                    panic!("not (int, bytes)");
                };
                assert_eq!(b.len(), 64 * 1024);
                let n = u32::try_from(*n).unwrap();
                *seen.entry(n).or_default() += 1;
                // A slow consumer: 5,000 messages take over 5 s.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => break,
        }
    }
    let most = producer.await.unwrap();
    let (lost, duplicated) = lost_and_duplicated(&seen, COUNT);
    assert_eq!((lost, duplicated), (0, 0));
    assert!(most.0 <= window.window, "unacked {} > window", most.0);
    assert!(
        most.1 <= window.window_bytes + 70 * 1024,
        "unacked bytes {} > window",
        most.1
    );
    assert!(
        !broker.log().contains("dropped"),
        "the broker dropped messages:\n{}",
        broker.log()
    );
    peer.close().await;
    me.close().await;
}

/// A TCP relay from a local port to `to`, whose link can be cut (every connection closed,
/// new ones refused) and restored: the bridge's network going away.
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    continue; // dropped: refused
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Relay { port, cut }
    }
}

/// Edge → cloud through a mosquitto bridge whose link is cut for 10 s mid-stream (the
/// cloud broker with its default in-flight quota): 2,000 messages, 0 lost, 0 duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the figures are reported (and asserted)"
)]
async fn a_bridge_link_cut_loses_nothing_end_to_end() {
    const COUNT: u32 = 2_000;
    const RATE: u32 = 200;
    let Some(mut cloud) = Mosquitto::prepare() else {
        return;
    };
    cloud.configure("allow_anonymous true\n");
    cloud.up();
    let relay = Relay::start(cloud.port()).await;
    let Some(mut edge) = Mosquitto::prepare() else {
        return;
    };
    edge.configure(&format!(
        "allow_anonymous true\n\
         connection edge1-to-cloud\n\
         address 127.0.0.1:{}\n\
         bridge_protocol_version mqttv311\n\
         cleansession true\n\
         restart_timeout 1\n\
         topic ECCI/cloud/# out 2\n\
         topic ECCI/edge1/# in 2\n",
        relay.port
    ));
    edge.up();
    let app = format!("bridge-{}", std::process::id());
    let me = connect(
        config(&app, "cloud", cloud.port(), "me", &[]),
        e2e(Duration::from_secs(1)),
        None,
    )
    .await;
    let peer = connect(
        config(&app, "edge1", edge.port(), "peer", &[("me", "cloud")]),
        e2e(Duration::from_secs(1)),
        None,
    )
    .await;
    // The bridge is up once a first message went through (it is sent again meanwhile).
    let first = peer.publish(&0u32, "me").await.unwrap();
    assert_eq!(
        timeout(WAIT, first.delivered()).await.unwrap().unwrap(),
        Confirmation::Received
    );
    let collector = {
        let me = me.clone();
        tokio::spawn(async move { collect(&me, COUNT, Duration::from_secs(40)).await })
    };
    let producer = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
            let mut deliveries = Vec::new();
            for i in 1..COUNT {
                tick.tick().await;
                deliveries.push(peer.publish(&i, "me").await.expect("publish"));
            }
            for d in deliveries {
                assert_eq!(
                    d.delivered().await.expect("delivered"),
                    Confirmation::Received
                );
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.cut.send_replace(true);
    tokio::time::sleep(Duration::from_secs(10)).await;
    relay.cut.send_replace(false);
    timeout(WAIT, producer)
        .await
        .expect("every message acknowledged in time")
        .expect("producer");
    let seen = collector.await.unwrap();
    let (lost, duplicated) = lost_and_duplicated(&seen, COUNT);
    let retransmissions: u64 = peer.e2e_metrics().iter().map(|t| t.retransmissions).sum();
    eprintln!(
        "bridge cut: lost {lost}, duplicated {duplicated}, retransmissions {retransmissions}"
    );
    assert_eq!((lost, duplicated), (0, 0));
    peer.close().await;
    me.close().await;
    drop(edge);
}

/// Whether python3 with paho-mqtt is here; when not, `skipped: …` (a failure with
/// `ECCI_REQUIRE_SERVICES` set).
fn paho() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_SERVICES",
            "python3 with paho-mqtt is not installed (.ci/python-deps.sh)",
        );
    }
    ok
}

/// 5,000 × 100 B from a Rust sender with end-to-end delivery and pacing on to a Python
/// paho receiver on a default mosquitto: the sender finds that the receiver never
/// acknowledges, falls back to plain QoS 2 paced at 1,000/s, and all 5,000 arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_burst_to_a_python_receiver_arrives_whole() {
    const COUNT: u32 = 5_000;
    let Some(mut broker) = Mosquitto::prepare() else {
        return;
    };
    if !paho() {
        return;
    }
    broker.configure("allow_anonymous true\n");
    broker.up();
    let app = format!("paced-{}", std::process::id());
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/counting_receiver.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(COUNT.to_string())
        .env("ECCI_LOCAL_BROKER_IP", "127.0.0.1")
        .env("ECCI_LOCAL_BROKER_PORT", broker.port().to_string())
        .env("ECCI_LOCAL_BROKER_ID", "b1")
        .env("ECCI_APP_ID", &app)
        .env("ECCI_CONTAINER_NAME", "py")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(ready.as_deref(), Some("READY"));
    let options = ClientOptions {
        e2e: E2eOptions {
            enabled: true,
            pace: Some(1_000),
            ..E2eOptions::default()
        },
        ..ClientOptions::default()
    };
    let peer = connect(
        config(&app, "b1", broker.port(), "rust", &[("py", "b1")]),
        options,
        None,
    )
    .await;
    let mut deliveries = Vec::new();
    for i in 0..COUNT {
        // 100 B of contents.
        let contents = format!("{i:0>100}");
        deliveries.push(peer.publish(&contents, "py").await.unwrap());
    }
    for d in deliveries {
        assert_eq!(
            timeout(WAIT, d.delivered()).await.unwrap().unwrap(),
            Confirmation::Unconfirmed
        );
    }
    let metrics = peer.e2e_metrics();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].acknowledging, Some(false), "{metrics:?}");
    assert_eq!(
        metrics[0].retransmissions, 0,
        "a python receiver must not get copies"
    );
    let done = timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(done.as_deref(), Some("DONE 5000 5000 0"));
    peer.close().await;
}

/// A receiver that acknowledged and then goes away for good: each message it does not
/// acknowledge within `give_up` fails `delivered()` with `Error::NotDelivered`, leaves the
/// window (so the sender is not held there), and is counted per target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_goes_away_is_given_up_and_the_sender_told() {
    const WINDOW: usize = 4;
    const AFTER: u32 = 12;
    let Some(mut broker) = Mosquitto::prepare() else {
        return;
    };
    broker.configure("allow_anonymous true\n");
    broker.up();
    let port = broker.port();
    let app = format!("giveup-{}", std::process::id());
    let me = connect(
        config(&app, "b1", port, "me", &[]),
        ClientOptions::default(),
        None,
    )
    .await;
    let options = ClientOptions {
        e2e: E2eOptions {
            window: WINDOW,
            timeout: Duration::from_millis(300),
            give_up: Duration::from_secs(2),
            ..E2eOptions::default()
        },
        ..ClientOptions::default()
    };
    let peer = connect(
        config(&app, "b1", port, "peer", &[("me", "b1")]),
        options,
        None,
    )
    .await;
    // The default is on: the first message is confirmed by the receiving container.
    let first = peer.publish(&0u32, "me").await.expect("publish");
    assert_eq!(
        timeout(WAIT, first.delivered())
            .await
            .expect("in time")
            .expect("delivered"),
        Confirmation::Received
    );
    assert_eq!(
        me.recv_data()
            .await
            .expect("data")
            .decode::<u32>()
            .expect("n"),
        0
    );
    me.close().await;
    // Three windows' worth: the publishes go on as the oldest are given up.
    let mut deliveries = Vec::new();
    for i in 1..=AFTER {
        let d = timeout(WAIT, peer.publish(&i, "me"))
            .await
            .expect("a publish is held at most until the window's oldest is given up")
            .expect("publish");
        deliveries.push(d);
    }
    for d in deliveries {
        match timeout(WAIT, d.delivered()).await.expect("settled in time") {
            Err(e @ ecci_client::Error::NotDelivered { .. }) => {
                let ecci_client::Error::NotDelivered {
                    target, attempts, ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(target, "me");
                assert!(*attempts >= 2, "sent again before giving up: {attempts}");
                let text = e.to_string();
                assert!(
                    text.starts_with("me did not acknowledge the message within 2.")
                        && text.ends_with("it is no longer sent again and may be lost"),
                    "{text}"
                );
            }
            other => panic!("expected NotDelivered, got {other:?}"),
        }
    }
    let m = &peer.e2e_metrics()[0];
    assert_eq!((m.target.as_str(), m.acknowledging), ("me", Some(true)));
    assert_eq!(
        (m.given_up, m.unacked, m.unacked_bytes),
        (u64::from(AFTER), 0, 0)
    );
    assert!(m.retransmissions >= u64::from(AFTER));
    peer.close().await;
}
