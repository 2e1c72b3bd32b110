//! Faults through the facade, against a real mosquitto each test starts, stops and restarts
//! itself (`ecci_transport::mosquitto`, with `persistence true` as Debian ships it): a broker
//! restart mid-stream, a broker down at start, a controller restarted during and after the
//! readiness handshake, and a consumer that does not read.
//!
//! Without the mosquitto binary the tests return at once, unless `ECCI_REQUIRE_BROKER=1`.
//! Waits are bounded upper limits; the sleeps are the scenarios' own timing (when the
//! broker goes down), never a wait for a result.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{component, controller, plain};
use ecci_client::{Client, ClientOptions};
use ecci_proto::config::Config;
use ecci_transport::MqttTransport;
use ecci_transport::mosquitto::Mosquitto;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(60);

/// `config` with the broker's address; everything else stays.
fn on_port(config: Config, port: u16) -> Config {
    let mut b = Config::builder(
        "127.0.0.1",
        config.broker_id().clone(),
        config.app_id().clone(),
        config.container_name().clone(),
    )
    .port(port);
    for t in config.pub_targets() {
        b = b.pub_target(t.name.clone(), t.broker.clone());
    }
    if let Some(t) = config.app_type() {
        b = b.app_type(t);
    }
    if let Some(c) = config.controller() {
        b = b.controller(c.name.clone(), c.broker.clone());
    }
    b.build().unwrap()
}

/// A client of `broker` over the default transport, but with short reconnect delays.
async fn client(broker: &Mosquitto, config: Config) -> Client {
    client_with(broker, config, false, ClientOptions::default()).await
}

/// As [`client`]; `persistent`: a persistent session (`clean_session = false`).
async fn client_with(
    broker: &Mosquitto,
    config: Config,
    persistent: bool,
    options: ClientOptions,
) -> Client {
    let config = on_port(config, broker.port());
    let mut mqtt = broker.mqtt_config();
    mqtt.credentials = ecci_client::mqtt_config(&config).credentials;
    mqtt.clean_session = !persistent;
    timeout(
        WAIT,
        Client::builder(config)
            .transport(Arc::new(MqttTransport::start(mqtt)))
            .options(options)
            .connect(),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// Publishes `0..count` as data to `to`, `rate` per second, then awaits every delivery.
fn paced_producer(
    sender: &Client,
    to: &'static str,
    count: u32,
    rate: u32,
) -> tokio::task::JoinHandle<()> {
    let sender = sender.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        let mut deliveries = Vec::new();
        for i in 0..count {
            tick.tick().await;
            deliveries.push(sender.publish(&i, to).await.expect("publish"));
        }
        for d in deliveries {
            d.await.expect("delivered");
        }
    })
}

/// Receives data until all of `0..count` were seen; returns the number of duplicates.
async fn collect_all(receiver: &Client, count: u32) -> usize {
    let mut seen = BTreeMap::new();
    while seen.len() < count as usize {
        let m = receiver.recv_data().await.expect("client running");
        let n = m.decode::<u32>().expect("a number");
        assert!(n < count, "unexpected message {n}");
        *seen.entry(n).or_insert(0usize) += 1;
    }
    seen.values().map(|c| c - 1).sum()
}

/// The receiver needs a persistent session: after a restart, mosquitto only delivers to it
/// the messages that reached the broker before it subscribed again if its session (with
/// the subscriptions and the queue) was saved. With a clean session, messages published in
/// that gap have no subscriber and are dropped by the broker, whatever either client does.
/// The sender's side needs nothing: its transport keeps every message until acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the figures are reported (and asserted)"
)]
async fn broker_restart_mid_stream_loses_nothing() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    let me = client_with(
        &broker,
        plain("me", "b1", &[]),
        true,
        ClientOptions::default(),
    )
    .await;
    let peer = client(&broker, plain("peer", "b1", &[("me", "b1")])).await;
    let producer = paced_producer(&peer, "me", 3_000, 300);
    let collector = {
        let me = me.clone();
        tokio::spawn(async move { collect_all(&me, 3_000).await })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.down().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.up();

    let duplicates = timeout(WAIT, collector)
        .await
        .expect("all 3,000 within the limit")
        .expect("collector");
    timeout(WAIT, producer)
        .await
        .expect("deliveries in time")
        .expect("producer");
    eprintln!(
        "facade restart mid-stream: 3000 delivered, {duplicates} duplicates; sender {:?}",
        peer.metrics().transport
    );
    // The sender's clean session may publish a cut QoS 2 message again; the receiver's
    // sequence filter drops it: the application sees each message once.
    assert_eq!(duplicates, 0, "{:?}", me.metrics());
    assert!(peer.metrics().transport.reconnects >= 1);
    assert!(me.metrics().transport.reconnects >= 1);
    peer.close().await;
    me.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_then_up() {
    let Some(mut broker) = Mosquitto::start() else {
        return;
    };
    broker.down().await;
    // Both connect while the broker is down: connect() waits for it (subscribe_timeout).
    let me = tokio::spawn({
        let config = on_port(plain("me", "b1", &[]), broker.port());
        async move { Client::connect(config).await }
    });
    let peer = tokio::spawn({
        let config = on_port(plain("peer", "b1", &[("me", "b1")]), broker.port());
        async move { Client::connect(config).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!me.is_finished() && !peer.is_finished());
    broker.up();
    let me = timeout(WAIT, me).await.unwrap().unwrap().expect("connects");
    let peer = timeout(WAIT, peer)
        .await
        .unwrap()
        .unwrap()
        .expect("connects");
    assert!(me.metrics().transport.connect_failures >= 1);

    let producer = paced_producer(&peer, "me", 500, 1_000);
    let duplicates = timeout(WAIT, collect_all(&me, 500)).await.expect("all 500");
    assert_eq!(duplicates, 0);
    timeout(WAIT, producer).await.unwrap().unwrap();
    peer.close().await;
    me.close().await;
}

/// Counts the times `client`'s status goes to started, until it is closed.
fn count_starts(client: &Client) -> tokio::task::JoinHandle<usize> {
    let mut status = client.watch_status();
    tokio::spawn(async move {
        let mut starts = 0;
        let mut was = status.borrow_and_update().started;
        if was {
            starts += 1;
        }
        while status.changed().await.is_ok() {
            let s = status.borrow_and_update().clone();
            if s.started && !was {
                starts += 1;
            }
            was = s.started;
            if s.closed {
                break;
            }
        }
        starts
    })
}

async fn started(client: &Client) {
    client
        .wait_started(WAIT)
        .await
        .unwrap_or_else(|e| panic!("{} did not start: {e}", client.name()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restarted_during_and_after_the_handshake() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    // No retry tick in the test's time frame: the re-announcements must come from the
    // handshake itself (req_ready on connect), not from timers.
    let options = ClientOptions {
        retry_interval: Duration::from_secs(3600),
        ..ClientOptions::default()
    };
    let ctrl = || controller("g", "b1", &[("c1", "b1"), ("c2", "b1")], None);
    let c1 = client_with(
        &broker,
        component("c1", "b1", ("g", "b1")),
        false,
        options.clone(),
    )
    .await;
    let c1_starts = count_starts(&c1);

    // During: g has c1's `ready` and waits for c2 when it goes away.
    let g = client_with(&broker, ctrl(), false, options.clone()).await;
    let mut status = g.watch_status();
    timeout(WAIT, status.wait_for(|s| s.waiting_for.len() == 1))
        .await
        .expect("c1 answered in time")
        .unwrap();
    assert!(!g.is_started());
    g.close().await;

    let c2 = client_with(
        &broker,
        component("c2", "b1", ("g", "b1")),
        false,
        options.clone(),
    )
    .await;
    let c2_starts = count_starts(&c2);
    let g = client_with(&broker, ctrl(), false, options.clone()).await;
    for c in [&g, &c1, &c2] {
        started(c).await;
    }

    // After: a new controller collects the started components again; they stay started.
    g.close().await;
    let g = client_with(&broker, ctrl(), false, options).await;
    started(&g).await;
    // Each component has handled everything g sent before this message.
    for c in [&c1, &c2] {
        g.publish(&"sync", c.name().as_str())
            .await
            .unwrap()
            .await
            .unwrap();
        let m = timeout(WAIT, c.recv_data()).await.unwrap().unwrap();
        assert_eq!(m.decode::<String>().unwrap(), "sync");
        assert!(c.is_started());
    }
    g.close().await;
    c1.close().await;
    c2.close().await;
    // The application of each component started exactly once.
    assert_eq!(timeout(WAIT, c1_starts).await.unwrap().unwrap(), 1);
    assert_eq!(timeout(WAIT, c2_starts).await.unwrap().unwrap(), 1);
}

/// A consumer that stops reading: its data queue and then its parked buffer fill, the client stops reading the
/// transport, whose event queue fills, and the transport stops reading the socket, so it
/// stops acknowledging QoS 2 messages. Memory stays bounded by those queues. mosquitto
/// then keeps up to `max_inflight_messages` (20) plus `max_queued_messages` (1000) for the
/// client and drops the rest, logging it; the sender's deliveries still succeed (they mean
/// the broker got the message). This test shows that documented behaviour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::print_stderr, reason = "the figures are reported")]
async fn a_slow_consumer_is_bounded_and_the_broker_drops_beyond_its_queue() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    const DATA_QUEUE: usize = 100;
    const EVENT_QUEUE: usize = 100;
    const SENT: u32 = 3_000;
    let config = on_port(plain("me", "b1", &[]), broker.port());
    let mut mqtt = broker.mqtt_config();
    mqtt.event_queue = EVENT_QUEUE;
    let me = Client::builder(config)
        .transport(Arc::new(MqttTransport::start(mqtt)))
        .options(ClientOptions {
            data_queue: DATA_QUEUE,
            ..ClientOptions::default()
        })
        .connect()
        .await
        .unwrap();
    // Plain QoS 2, as a Python sender or a Rust one with end-to-end delivery off: with it
    // on (the default), the sender would wait at its window instead and nothing would be
    // dropped (e2e.rs, `a_slow_receiver_slows_its_sender_instead_of_losing`).
    let plain_qos2 = ClientOptions {
        e2e: ecci_client::E2eOptions {
            enabled: false,
            ..ecci_client::E2eOptions::default()
        },
        ..ClientOptions::default()
    };
    let peer = client_with(
        &broker,
        plain("peer", "b1", &[("me", "b1")]),
        false,
        plain_qos2,
    )
    .await;

    // Everything is accepted by the broker while `me` reads nothing.
    let mut deliveries = Vec::new();
    for i in 0..SENT {
        deliveries.push(peer.publish(&i, "me").await.unwrap());
    }
    for d in deliveries {
        timeout(WAIT, d).await.expect("in time").expect("delivered");
    }
    // The client holds no more than its queues: the data queue and its parked buffer (as
    // large), the transport's event queue, and what the transport decoded before it paused
    // reading (it stops at 256 waiting events, and a read brings at most the broker's 20
    // in-flight messages).
    let held = me.metrics().transport.received;
    assert!(
        held as usize <= 2 * DATA_QUEUE + EVENT_QUEUE + 256 + 20,
        "the client read {held} messages while nobody consumed"
    );

    // Now it reads: what the broker kept arrives, in order; the rest was dropped by it.
    let mut got = Vec::new();
    while let Ok(Ok(m)) = timeout(Duration::from_secs(2), me.recv_data()).await {
        got.push(m.decode::<u32>().unwrap());
    }
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    let kept = got.len();
    eprintln!(
        "slow consumer: {SENT} sent and acknowledged by the broker, {kept} received, {} dropped by mosquitto",
        SENT as usize - kept
    );
    assert!(
        kept >= 1_000 && kept < SENT as usize,
        "{kept} of {SENT} received"
    );
    assert_eq!(got.first(), Some(&0), "the oldest are kept");
    assert!(me.errors().try_recv().is_none(), "no error events");
    // What the operator sees: mosquitto says it dropped messages.
    let log = broker.log();
    assert!(log.contains("Outgoing messages are being dropped"), "{log}");
    peer.close().await;
    me.close().await;
}
