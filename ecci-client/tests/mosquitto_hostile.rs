//! Hostile input through the facade, against the mosquitto at `ECCI_TEST_BROKER`: while a
//! peer sends 1,000 data messages to a client, a raw MQTT publisher sends it, on every topic
//! it subscribes to, payloads that are not envelopes (garbage, JSON, pickles of the wrong
//! shape, pickles that would run code, truncated pickles, depth and length bombs, 10 MiB),
//! and messages on topics with odd or invalid sender segments.
//!
//! The client keeps running, the valid stream arrives complete and in order, every bad
//! message is one error event with its topic and reason, nothing runs, and the process's
//! memory stays bounded. The in-memory `bad_payloads_on_every_topic_are_error_events` checks
//! the error kinds one by one; this is the full-size version over a real broker.
//!
//! Alone in its file: it measures the process's RSS, which other tests would disturb.
//! Without `ECCI_TEST_BROKER` it returns at once, unless `ECCI_REQUIRE_BROKER=1`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::WAIT;
use common::mosquitto::broker;
use ecci_client::{Client, ClientOptions, InboundError};
use ecci_proto::config::Config;
use ecci_proto::envelope::EnvelopeError;
use ecci_proto::pickle::{Protocol, Value, encode};
use ecci_proto::topic::AppTopic;
use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};

const VALID: u32 = 1_000;

/// This process's resident set size, in KiB (`VmRSS` in /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pickled(value: Value) -> Vec<u8> {
    encode(&value, Protocol::V4)
}

fn envelope(kind: &str, contents: Value) -> Vec<u8> {
    pickled(Value::dict([
        ("type", Value::from(kind)),
        ("contents", contents),
    ]))
}

/// What a bad message must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// An error event: the topic is not an ECCI app topic.
    BadTopic,
    /// An error event: not a pickle the decoder accepts.
    NotPickle,
    NotADict,
    MissingType,
    UnknownType,
    /// Not an error: a command with empty contents is a command.
    Command,
}

/// The payloads that are not data envelopes, with what each must become.
fn hostile_payloads(marker: &std::path::Path) -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let touch = format!("touch {}", marker.display());
    // What `pickle.dumps` writes for objects whose __reduce__ calls os.system (protocol 0),
    // and the same with protocol 2 opcodes and with builtins.eval.
    let mut system_p0 = b"cos\nsystem\n(S'".to_vec();
    system_p0.extend_from_slice(touch.as_bytes());
    system_p0.extend_from_slice(b"'\ntR.");
    let mut system_p2 = b"\x80\x02cposix\nsystem\nq\x00X".to_vec();
    system_p2.extend_from_slice(&(touch.len() as u32).to_le_bytes());
    system_p2.extend_from_slice(touch.as_bytes());
    system_p2.extend_from_slice(b"q\x01\x85q\x02Rq\x03.");
    let mut eval =
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93\x8c"
            .to_vec();
    let code = format!("__import__('os').system('{touch}')");
    eval.push(code.len() as u8);
    eval.extend_from_slice(code.as_bytes());
    eval.extend_from_slice(b"\x85R.");
    // 100,000 nested lists: EMPTY_LIST × n, then APPEND × (n - 1).
    let n = 100_000;
    let mut depth_bomb = b"\x80\x02".to_vec();
    depth_bomb.extend(std::iter::repeat_n(b']', n));
    depth_bomb.extend(std::iter::repeat_n(b'a', n - 1));
    depth_bomb.push(b'.');
    // A million MARKs: the mark stack, not the value stack.
    let mut mark_bomb = b"\x80\x02".to_vec();
    mark_bomb.extend(std::iter::repeat_n(b'(', 1_000_000));
    mark_bomb.push(b'.');
    // BINBYTES8 claiming a terabyte.
    let mut length_bomb = b"\x80\x04\x8e".to_vec();
    length_bomb.extend_from_slice(&(1u64 << 40).to_le_bytes());
    length_bomb.extend_from_slice(b"tiny");
    let valid = envelope("data", Value::from("a complete envelope"));
    let truncated = valid[..valid.len() / 2].to_vec();
    // 10 MiB that is no pickle.
    let big: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
    vec![
        (
            "garbage",
            b"\xde\xad\xbe\xef not a pickle".to_vec(),
            Outcome::NotPickle,
        ),
        ("empty", Vec::new(), Outcome::NotPickle),
        (
            "json",
            br#"{"type": "data", "contents": 1}"#.to_vec(),
            Outcome::NotPickle,
        ),
        (
            "pickled list",
            pickled(Value::List(vec![Value::from(1), Value::from("x")])),
            Outcome::NotADict,
        ),
        (
            "dict without type",
            pickled(Value::dict([("contents", Value::from(1))])),
            Outcome::MissingType,
        ),
        (
            "cmd with empty contents",
            envelope("cmd", Value::dict::<&str>([])),
            Outcome::Command,
        ),
        (
            "unknown type",
            envelope("exec", Value::from("x")),
            Outcome::UnknownType,
        ),
        // Decoded as inert objects (the call recorded, never made): not envelopes.
        ("os.system, protocol 0", system_p0, Outcome::NotADict),
        ("os.system, protocol 2", system_p2, Outcome::NotADict),
        ("builtins.eval", eval, Outcome::NotADict),
        ("truncated", truncated, Outcome::NotPickle),
        ("depth bomb", depth_bomb, Outcome::NotPickle),
        ("mark bomb", mark_bomb, Outcome::NotPickle),
        ("length bomb", length_bomb, Outcome::NotPickle),
        ("10 MiB", big, Outcome::NotPickle),
    ]
}

fn config(app: &str, broker: &(String, u16), me: &str, targets: &[&str]) -> Config {
    let mut b = Config::builder(
        broker.0.clone(),
        "b1".parse().unwrap(),
        app.parse().unwrap(),
        me.parse().unwrap(),
    )
    .port(broker.1)
    .bridge_mountpoint("mnt/")
    .sub_object("sub1".parse().unwrap());
    for t in targets {
        b = b.pub_target(t.parse().unwrap(), "b1".parse().unwrap());
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the RSS figures are reported besides the bound"
)]
async fn hostile_input_on_every_topic_is_reported_and_the_valid_stream_survives() {
    let Some(broker) = broker() else {
        return;
    };
    let app = format!("hostile-{}", std::process::id());
    // The file a payload would create if the client ran code from the network.
    let scratch = tempfile::Builder::new()
        .prefix("ecci-hostile-")
        .tempdir()
        .unwrap();
    let marker = scratch.path().join("marker");

    let options = ClientOptions {
        error_queue: 4096,
        ..ClientOptions::default()
    };
    let me = Client::builder(config(&app, &broker, "me", &[]))
        .options(options)
        .connect()
        .await
        .expect("client connects");
    let peer = Client::connect(config(&app, &broker, "peer", &["me"]))
        .await
        .expect("peer connects");
    let raw = Arc::new(MqttTransport::start(MqttConfig::new(
        broker.0.clone(),
        broker.1,
    )));
    let rss_before = rss_kib();

    // Every topic the client subscribes to, with an ordinary sender.
    let topics: Vec<String> = [
        "ECCI/b1/{app}/app/x/me",
        "ECCI/b1/{app}/plugin/x/me",
        "mnt/ECCI/b1/{app}/app/x/me",
        "mnt/ECCI/b1/{app}/plugin/x/me",
        "ECCI/b1/{app}/app/x/sub1",
        "ECCI/b1/{app}/plugin/x/sub1",
    ]
    .iter()
    .map(|t| t.replace("{app}", &app))
    .collect();
    // Matches of the filters with odd sender segments, carrying a valid data envelope:
    // an error event where the topic cannot be parsed, data from that sender where it can.
    let long = "s".repeat(5_000);
    let odd_senders = [
        "",
        " ",
        "ünï cødé 发送者",
        "edgeai_x_y",
        "a.b-c_d~e",
        "..",
        long.as_str(),
    ];
    let odd_topics: Vec<String> = odd_senders
        .iter()
        .flat_map(|s| {
            [
                format!("ECCI/b1/{app}/app/{s}/me"),
                format!("mnt/ECCI/b1/{app}/plugin/{s}/me"),
                format!("ECCI/b1/{app}/plugin/{s}/sub1"),
            ]
        })
        .collect();

    let payloads = hostile_payloads(&marker);
    let mut expected: Vec<(String, Outcome)> = Vec::new();
    // Bytes: the six copies of a payload share one buffer, so the RSS measures the client.
    let payloads: Vec<_> = payloads
        .into_iter()
        .map(|(name, payload, outcome)| (name, bytes::Bytes::from(payload), outcome))
        .collect();
    let mut plan: Vec<(String, bytes::Bytes)> = Vec::new();
    for topic in &topics {
        for (_, payload, outcome) in &payloads {
            plan.push((topic.clone(), payload.clone()));
            expected.push((topic.clone(), *outcome));
        }
    }
    let mut odd_data = BTreeMap::new();
    for topic in &odd_topics {
        plan.push((
            topic.clone(),
            envelope("data", Value::from("odd sender")).into(),
        ));
        match AppTopic::parse(topic) {
            Ok(parsed) => *odd_data.entry(parsed.sender.to_string()).or_insert(0) += 1,
            Err(_) => expected.push((topic.clone(), Outcome::BadTopic)),
        }
        // And a bad payload on the same topic: one error event either way.
        plan.push((topic.clone(), bytes::Bytes::from_static(b"not a pickle")));
        let outcome = if AppTopic::parse(topic).is_ok() {
            Outcome::NotPickle
        } else {
            Outcome::BadTopic
        };
        expected.push((topic.clone(), outcome));
    }
    drop(payloads);

    // The valid stream and the hostile one, at the same time.
    let producer = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let mut deliveries = Vec::new();
            for i in 0..VALID {
                deliveries.push(peer.publish(&i, "me").await.expect("publish"));
            }
            for d in deliveries {
                d.await.expect("delivered");
            }
        })
    };
    let hostile = {
        let raw = Arc::clone(&raw);
        tokio::spawn(async move {
            let mut receipts = Vec::new();
            for (topic, payload) in plan {
                let m = Message::new(topic, payload, QoS::ExactlyOnce);
                receipts.push(raw.publish(m).await.expect("raw publish"));
            }
            for r in receipts {
                r.await.expect("broker took it");
            }
        })
    };

    // The valid stream: complete and in order; odd senders' data counted apart.
    let receive = async {
        let mut next = 0;
        let mut odd = BTreeMap::new();
        let odd_total: usize = odd_data.values().sum();
        while next < VALID || odd.values().sum::<usize>() < odd_total {
            let m = me.recv_data().await.expect("client still running");
            if m.sender() == "peer" {
                assert_eq!(m.decode::<u32>().unwrap(), next, "out of order");
                next += 1;
            } else {
                assert_eq!(m.decode::<String>().unwrap(), "odd sender");
                *odd.entry(m.sender().to_string()).or_insert(0) += 1;
            }
        }
        odd
    };
    let odd = match tokio::time::timeout(WAIT, receive).await {
        Ok(odd) => odd,
        Err(_) => panic!(
            "the valid stream did not arrive in time; client {:?}; raw publisher {:?}",
            me.metrics(),
            raw.metrics()
        ),
    };
    assert_eq!(odd, odd_data);
    tokio::time::timeout(WAIT, producer).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, hostile).await.unwrap().unwrap();

    // Every bad message: one error event, with its topic and reason. Commands arrive as
    // commands. Both are waited for (bounded): they may trail the data.
    let commands = expected
        .iter()
        .filter(|(_, o)| *o == Outcome::Command)
        .count();
    let errors_expected = expected.len() - commands;
    let errors = me.errors();
    let mut got = Vec::new();
    for _ in 0..errors_expected {
        let e = tokio::time::timeout(WAIT, errors.recv())
            .await
            .expect("error event in time")
            .expect("client running");
        assert!(!e.to_string().is_empty() && std::error::Error::source(&e).is_some());
        let outcome = match &e.error {
            InboundError::Topic(_) => Outcome::BadTopic,
            InboundError::Envelope(EnvelopeError::NotPickle(_)) => Outcome::NotPickle,
            InboundError::Envelope(EnvelopeError::NotADict { .. }) => Outcome::NotADict,
            InboundError::Envelope(EnvelopeError::MissingType) => Outcome::MissingType,
            InboundError::Envelope(EnvelopeError::UnknownType { .. }) => Outcome::UnknownType,
            other => panic!("unexpected error event {other:?} on {}", e.topic),
        };
        got.push((e.topic, outcome));
    }
    for _ in 0..commands {
        let c = tokio::time::timeout(WAIT, me.recv_cmd())
            .await
            .expect("command in time")
            .expect("client running");
        assert_eq!(c.sender(), "x");
        got.push((c.topic.to_string(), Outcome::Command));
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Exactly once: nothing more trails.
    assert!(errors.try_recv().is_none());
    assert!(me.data().try_recv().is_none());
    let metrics = me.metrics();
    assert_eq!(metrics.errors as usize, errors_expected);
    assert_eq!(metrics.errors_dropped, 0);

    // Nothing ran.
    assert!(
        !marker.exists(),
        "a pickle ran code: {} exists",
        marker.display()
    );

    // Still working after all of it.
    peer.publish(&u32::MAX, "me").await.unwrap().await.unwrap();
    let last = tokio::time::timeout(WAIT, me.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.decode::<u32>().unwrap(), u32::MAX);

    let rss_after = rss_kib();
    let growth_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!(
        "hostile input: {} bad messages, RSS {rss_before} KiB before, {rss_after} KiB after",
        expected.len()
    );
    assert!(
        growth_mib < 200,
        "RSS grew by {growth_mib} MiB ({rss_before} KiB to {rss_after} KiB)"
    );

    raw.close().await;
    peer.close().await;
    me.close().await;
}
