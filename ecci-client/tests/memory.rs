//! The client over the in-memory hub, under paused time: messaging, targets, the readiness
//! handshake with restarts and reconnects, bad payloads, backpressure.

mod common;

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ecci_client::{ClientOptions, Error, InboundError, Targets};
use ecci_proto::envelope::{Envelope, EnvelopeError};
use ecci_proto::pickle::{Protocol, Value, encode};
use ecci_proto::readiness::{Reason, State};
use ecci_transport::memory::Hub;
use ecci_transport::{Message, QoS, Transport};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    name: String,
    payload: ecci_proto::pickle::Bytes,
}

#[tokio::test(start_paused = true)]
async fn data_and_commands_both_ways_with_sender() {
    let hub = Hub::new();
    let (a, _) = on_hub(&hub, plain("alice", "b1", &[("bob", "b2")])).await;
    let (b, _) = on_hub(&hub, plain("bob", "b2", &[("alice", "b1")])).await;

    let job = Job {
        id: 7,
        name: "resize".into(),
        payload: vec![0, 255, 10].into(),
    };
    a.publish(&job, Targets::All).await.unwrap().await.unwrap();
    let got = b.recv_data().await.unwrap();
    assert_eq!(got.sender(), "alice");
    assert_eq!(got.receiver(), "bob");
    assert_eq!(got.topic.to_string(), "ECCI/b2/app1/app/alice/bob");
    assert_eq!(got.decode::<Job>().unwrap(), job);

    b.publish(&("reply", 1.5), "alice")
        .await
        .unwrap()
        .await
        .unwrap();
    let got = a.recv_data().await.unwrap();
    assert_eq!(got.sender(), "bob");
    assert_eq!(
        got.decode::<(String, f64)>().unwrap(),
        ("reply".into(), 1.5)
    );

    a.publish_cmd("pause", "bob").await.unwrap().await.unwrap();
    let got = b.recv_cmd().await.unwrap();
    assert_eq!(
        (got.sender().as_str(), got.contents.cmd_name()),
        ("alice", Some("pause"))
    );

    b.publish_cmd("resume", None::<&str>)
        .await
        .unwrap()
        .await
        .unwrap();
    let got = a.recv_cmd().await.unwrap();
    assert_eq!(
        (got.sender().as_str(), got.contents.cmd_name()),
        ("bob", Some("resume"))
    );

    // A dynamic value keeps Python types serde has no words for.
    let value = Value::Set(vec![Value::from(1), Value::from(2)]);
    a.publish_envelope(Envelope::data(value.clone()), "bob")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(b.recv_data().await.unwrap().contents.into_value(), value);

    // Nothing went astray.
    assert!(a.data().is_empty() && b.data().is_empty());
    assert!(a.errors().is_empty() && b.errors().is_empty());
    let m = b.metrics();
    assert_eq!((m.data, m.commands, m.errors), (2, 1, 0));
    a.close().await;
    b.close().await;
}

#[tokio::test(start_paused = true)]
async fn prefix_targets_select_every_match() {
    let hub = Hub::new();
    let targets = [("worker1", "b1"), ("worker2", "b2"), ("store", "b1")];
    let (ctrl, _) = on_hub(&hub, plain("ctrl", "b1", &targets)).await;
    let mut clients = Vec::new();
    for (name, broker) in targets {
        clients.push(on_hub(&hub, plain(name, broker, &[])).await.0);
    }

    let d = ctrl.publish(&"to workers", "worker").await.unwrap();
    assert_eq!(d.targets(), ["worker1", "worker2"]);
    d.await.unwrap();
    let d = ctrl.publish(&"to all", Targets::All).await.unwrap();
    assert_eq!(d.targets(), ["worker1", "worker2", "store"]);
    d.await.unwrap();
    let d = ctrl
        .publish(&"two names", ["store", "worker2"])
        .await
        .unwrap();
    assert_eq!(d.targets(), ["worker2", "store"]);
    d.await.unwrap();

    let d = ctrl
        .publish(&"exactly", Targets::exact(clients[1].name()))
        .await
        .unwrap();
    assert_eq!(d.targets(), ["worker2"]);
    d.await.unwrap();
    let d = ctrl
        .publish(&"prefix", Targets::prefix("worker"))
        .await
        .unwrap();
    assert_eq!(d.targets(), ["worker1", "worker2"]);
    d.await.unwrap();

    let mut got = Vec::new();
    for (c, n) in clients.iter().zip([3, 5, 2]) {
        let mut mine = Vec::new();
        for _ in 0..n {
            let m = tokio::time::timeout(WAIT, c.recv_data())
                .await
                .unwrap()
                .unwrap();
            mine.push(m.decode::<String>().unwrap());
        }
        got.push((c.name().to_string(), mine));
    }
    ctrl.publish(&"last", Targets::All).await.unwrap();
    for c in &clients {
        // Nothing else came before the last message.
        let m = tokio::time::timeout(WAIT, c.recv_data())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.decode::<String>().unwrap(), "last");
    }
    assert_eq!(
        got,
        [
            (
                "worker1".into(),
                vec!["to workers".to_owned(), "to all".into(), "prefix".into()]
            ),
            (
                "worker2".into(),
                vec![
                    "to workers".into(),
                    "to all".into(),
                    "two names".into(),
                    "exactly".into(),
                    "prefix".into()
                ]
            ),
            ("store".into(), vec!["to all".into(), "two names".into()]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn refused_targets_name_the_known_ones() {
    let hub = Hub::new();
    let (c, _) = on_hub(
        &hub,
        plain("me", "b1", &[("worker1", "b1"), ("store", "b2")]),
    )
    .await;
    let err = c.publish(&1, "nobody").await.unwrap_err();
    assert!(matches!(err, Error::Target(_)), "{err:?}");
    assert_eq!(err.to_string(), "publish refused: no such target");
    assert_eq!(
        err.source().map(ToString::to_string).as_deref(),
        Some("no pub target starts with \"nobody\"; known targets: worker1, store")
    );
    // An empty list selects every target, as Python's falsy `targets=[]` does.
    let all = c.publish_cmd("x", Vec::<String>::new()).await.unwrap();
    assert_eq!(all.targets().len(), 2);

    let (lonely, _) = on_hub(&hub, plain("lonely", "b1", &[])).await;
    let err = lonely.publish(&1, Targets::All).await.unwrap_err();
    assert!(matches!(err, Error::NoPubTargets), "{err:?}");

    c.close().await;
    let err = c.publish(&1, "worker").await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
}

/// Global controller `g` on broker `cloud`, components `c1`, `c2` on `edge`, connected in
/// that order (each once the one before has handled its connection).
async fn small_app(hub: &Hub) -> [ecci_client::Client; 3] {
    let g = on_hub(
        hub,
        controller("g", "cloud", &[("c1", "edge"), ("c2", "edge")], None),
    )
    .await
    .0;
    connected(&g).await;
    let c1 = on_hub(hub, component("c1", "edge", ("g", "cloud"))).await.0;
    let c2 = on_hub(hub, component("c2", "edge", ("g", "cloud"))).await.0;
    [g, c1, c2]
}

#[tokio::test(start_paused = true)]
async fn global_controller_and_two_components_start() {
    let hub = Hub::new();
    let (_spy, mut reports) = spy(&hub, "toEdgeAI/#").await;
    let [g, c1, c2] = small_app(&hub).await;
    for c in [&g, &c1, &c2] {
        started(c).await;
    }
    assert_eq!(g.status().handshake, Some(State::Started));
    assert!(g.status().waiting_for.is_empty());

    // The platform heard the controller come up, then the app start, as Python writes it.
    let reports: Vec<(String, String)> = drain(&mut reports)
        .into_iter()
        .map(|m| (m.topic, String::from_utf8(m.payload.to_vec()).unwrap()))
        .collect();
    assert_eq!(
        reports,
        [
            (
                "toEdgeAI/cloud/con_cntr_ready".to_owned(),
                r#"{"app_id": "app1", "container_name": "g", "agent_id": null, "ready_type": "controller"}"#.to_owned()
            ),
            (
                "toEdgeAI/cloud/con_cntr_ready".to_owned(),
                r#"{"app_id": "app1", "container_name": "g", "agent_id": null, "ready_type": "app"}"#.to_owned()
            ),
        ]
    );
    // Every command is also handed to the application.
    assert_eq!(cmd_names(&c1), [("g".to_owned(), "start".to_owned())]);
    let mut g_cmds = cmd_names(&g);
    g_cmds.sort();
    assert_eq!(
        g_cmds,
        [
            ("c1".to_owned(), "ready".to_owned()),
            ("c2".to_owned(), "ready".to_owned())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn local_controller_tier_starts() {
    let hub = Hub::new();
    // g → [l, c3]; l → [c1, c2]. Started in the least convenient order: leaves first.
    let c1 = on_hub(&hub, component("c1", "edge", ("l", "edge"))).await.0;
    let c2 = on_hub(&hub, component("c2", "edge", ("l", "edge"))).await.0;
    let c3 = on_hub(&hub, component("c3", "cloud", ("g", "cloud")))
        .await
        .0;
    let l = on_hub(
        &hub,
        controller(
            "l",
            "edge",
            &[("c1", "edge"), ("c2", "edge")],
            Some(("g", "cloud")),
        ),
    )
    .await
    .0;
    assert!(!l.is_started());
    let g = on_hub(
        &hub,
        controller("g", "cloud", &[("l", "edge"), ("c3", "cloud")], None),
    )
    .await
    .0;
    for c in [&g, &l, &c1, &c2, &c3] {
        started(c).await;
    }
}

#[tokio::test(start_paused = true)]
async fn controller_waits_and_times_out_naming_the_missing() {
    let hub = Hub::new();
    let g = on_hub(
        &hub,
        controller("g", "cloud", &[("c1", "edge"), ("c2", "edge")], None),
    )
    .await
    .0;
    let _c1 = on_hub(&hub, component("c1", "edge", ("g", "cloud")))
        .await
        .0;
    let err = g.wait_started(Duration::from_secs(20)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "waiting for start timed out after 20s; no `ready` from c2"
    );

    // The late one announces itself and the app starts.
    let c2 = on_hub(&hub, component("c2", "edge", ("g", "cloud")))
        .await
        .0;
    started(&g).await;
    started(&c2).await;
}

/// The readiness commands among `messages`, as `(topic, cmd)`.
fn cmds(messages: Vec<Message>) -> Vec<(String, String)> {
    messages
        .into_iter()
        .map(|m| {
            let env = Envelope::from_pickle(&m.payload, &Default::default()).unwrap();
            (m.topic, env.cmd_name().unwrap_or("?").to_owned())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retry_ticks_resend_what_is_unanswered() {
    let hub = Hub::new();
    let options = ClientOptions {
        retry_interval: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    // Stand-ins for the peers: they listen and never answer.
    let (_g, mut to_g) = spy(&hub, "ECCI/cloud/app1/app/+/g").await;
    let (_c2, mut to_c2) = spy(&hub, "ECCI/edge/app1/app/+/c2").await;

    let (c1, _) = on_hub_with(
        &hub,
        component("c1", "edge", ("g", "cloud")),
        options.clone(),
    )
    .await;
    connected(&c1).await;
    let (ctrl, _) = on_hub_with(
        &hub,
        controller("ctrl", "cloud", &[("c2", "edge")], None),
        options,
    )
    .await;
    connected(&ctrl).await;
    let ready = || ("ECCI/cloud/app1/app/c1/g".to_owned(), "ready".to_owned());
    let req_ready = || {
        (
            "ECCI/edge/app1/app/ctrl/c2".to_owned(),
            "req_ready".to_owned(),
        )
    };
    assert_eq!(cmds(drain(&mut to_g)), [ready()]);
    assert_eq!(cmds(drain(&mut to_c2)), [req_ready()]);

    // Each tick sends again; the paused clock makes this exact (checked just after each
    // tick is due).
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(5001)).await;
        assert_eq!(cmds(drain(&mut to_g)), [ready()]);
        assert_eq!(cmds(drain(&mut to_c2)), [req_ready()]);
    }
}

#[tokio::test(start_paused = true)]
async fn component_without_handshake_role_and_missing_controller() {
    let hub = Hub::new();
    let (plain_client, _) = on_hub(&hub, plain("p", "b", &[])).await;
    let err = plain_client.wait_started(WAIT).await.unwrap_err();
    assert!(matches!(err, Error::NoHandshake), "{err:?}");

    let config = builder("c", "b", &[])
        .app_type(ecci_proto::config::AppType::Component)
        .build()
        .unwrap();
    let err = ecci_client::Client::builder(config)
        .transport(Arc::new(hub.transport()))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    // Display names the variable and the problem (issue 13), not only "invalid configuration".
    assert_eq!(
        err.to_string(),
        "ECCI_APP_CONTROLLER_CONTAINER is unset or empty"
    );
}

#[tokio::test(start_paused = true)]
async fn restarted_component_starts_and_others_start_once() {
    let hub = Hub::new();
    let [g, c1, c2] = small_app(&hub).await;
    for c in [&g, &c1, &c2] {
        started(c).await;
    }
    let mut c2_status = c2.watch_status();
    c2_status.mark_unchanged();
    cmd_names(&c2);

    c1.close().await;
    let c1 = on_hub(&hub, component("c1", "edge", ("g", "cloud")))
        .await
        .0;
    started(&c1).await;
    // c2 heard the second `start` (as in Python) and ignored it. (Its events are in order:
    // once it has this message, it has handled the `start` sent before.)
    g.publish(&"sync", "c2").await.unwrap().await.unwrap();
    c2.recv_data().await.unwrap();
    assert_eq!(cmd_names(&c2), [("g".to_owned(), "start".to_owned())]);
    assert!(!c2_status.has_changed().unwrap());
    assert!(c2.is_started());
}

#[tokio::test(start_paused = true)]
async fn restarted_controller_collects_started_components_again() {
    let hub = Hub::new();
    let [g, c1, c2] = small_app(&hub).await;
    for c in [&g, &c1, &c2] {
        started(c).await;
    }
    g.close().await;
    let g = on_hub(
        &hub,
        controller("g", "cloud", &[("c1", "edge"), ("c2", "edge")], None),
    )
    .await
    .0;
    started(&g).await;
    assert!(c1.is_started() && c2.is_started());
}

#[tokio::test(start_paused = true)]
async fn component_announces_again_after_a_reconnect() {
    let hub = Hub::new();
    // No retry tick in this test's time frame: only the reconnect can complete it.
    let options = ClientOptions {
        retry_interval: Duration::from_secs(24 * 3600),
        ..ClientOptions::default()
    };
    let (c1, t1) = on_hub_with(
        &hub,
        component("c1", "edge", ("g", "cloud")),
        options.clone(),
    )
    .await;
    // c1's `ready` went nowhere (no controller yet); now it is offline when `g` asks.
    t1.drop_connection();
    let (g, _) = on_hub_with(
        &hub,
        controller("g", "cloud", &[("c1", "edge")], None),
        options,
    )
    .await;
    let err = g.wait_started(Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(!c1.status().connected);

    t1.reconnect();
    started(&g).await;
    started(&c1).await;
    assert!(c1.status().connected);
}

#[tokio::test(start_paused = true)]
async fn exit_command_is_observable() {
    let hub = Hub::new();
    let [g, c1, c2] = small_app(&hub).await;
    started(&c1).await;
    let waiter = {
        let c1 = c1.clone();
        tokio::spawn(async move { c1.exit_requested().await })
    };
    g.publish_cmd("exit", "c1").await.unwrap().await.unwrap();
    tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(c1.status().exit_requested);
    assert!(!c2.status().exit_requested);

    c2.close().await;
    let err = c2.exit_requested().await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert!(matches!(c2.recv_data().await, Err(Error::Closed)));
}

#[tokio::test(start_paused = true)]
async fn platform_reports_are_the_python_json() {
    let hub = Hub::new();
    let (_spy, mut events) = spy(&hub, "toEdgeAI/#").await;
    let config = builder("me", "b1", &[])
        .agent_id("agent-7")
        .build()
        .unwrap();
    let (c, _) = on_hub(&hub, config).await;
    c.send_complete("epoch 1").await.unwrap().await.unwrap();
    // JSON has no words for a map with tuple keys.
    let err = c
        .send_data(&BTreeMap::from([((1, 2), 3)]), "detect")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Json(_)), "{err:?}");
    c.send_data(&BTreeMap::from([("boxes", 3)]), "detect")
        .await
        .unwrap()
        .await
        .unwrap();
    let got: Vec<(String, String)> = drain(&mut events)
        .into_iter()
        .map(|m| (m.topic, String::from_utf8(m.payload.to_vec()).unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "toEdgeAI/b1/con_cntr_ready".to_owned(),
                r#"{"app_id": "app1", "container_name": "me", "agent_id": "agent-7", "ready_type": "epoch 1"}"#.to_owned()
            ),
            (
                "toEdgeAI/b1/send_data".to_owned(),
                r#"{"type": "data", "algorithm_type": "detect", "data": {"boxes": 3}, "app_id": "app1"}"#.to_owned()
            ),
        ]
    );
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

#[derive(Debug, PartialEq)]
enum Expect {
    NotPickle,
    NotADict,
    MissingType,
    UnknownType,
    MissingContents,
}

#[tokio::test(start_paused = true)]
async fn bad_payloads_on_every_topic_are_error_events() {
    let hub = Hub::new();
    let config = builder("me", "b1", &[])
        .bridge_mountpoint("mnt/")
        .sub_object("sub1".parse().unwrap())
        .build()
        .unwrap();
    let (c, _) = on_hub(&hub, config).await;
    let raw = hub.transport();

    let topics = [
        "ECCI/b1/app1/app/x/me",
        "ECCI/b1/app1/plugin/x/me",
        "mnt/ECCI/b1/app1/app/x/me",
        "mnt/ECCI/b1/app1/plugin/x/me",
        "ECCI/b1/app1/app/x/sub1",
        "ECCI/b1/app1/plugin/x/sub1",
    ];
    let bad: Vec<(Vec<u8>, Expect)> = vec![
        (b"hello, not a pickle".to_vec(), Expect::NotPickle),
        (Vec::new(), Expect::NotPickle),
        // What `pickle.dumps` writes for a call to os.system: an inert object
        // (never run), which is not an envelope.
        (
            b"cos\nsystem\n(S'echo pwned'\ntR.".to_vec(),
            Expect::NotADict,
        ),
        (
            envelope("data", Value::from(1))[..10].to_vec(),
            Expect::NotPickle,
        ),
        (pickled(Value::List(vec![Value::from(1)])), Expect::NotADict),
        (
            pickled(Value::dict([("contents", Value::from(1))])),
            Expect::MissingType,
        ),
        (envelope("weird", Value::None), Expect::UnknownType),
        (
            pickled(Value::dict([("type", Value::from("data"))])),
            Expect::MissingContents,
        ),
    ];
    let mut sent = 0i64;
    let mut expected_errors = Vec::new();
    for topic in topics {
        for (payload, expect) in &bad {
            raw.publish(Message::new(topic, payload.clone(), QoS::ExactlyOnce))
                .await
                .unwrap()
                .await
                .unwrap();
            expected_errors.push((topic.to_owned(), format!("{expect:?}"), payload.clone()));
            raw.publish(Message::new(
                topic,
                envelope("data", Value::from(sent)),
                QoS::ExactlyOnce,
            ))
            .await
            .unwrap()
            .await
            .unwrap();
            sent += 1;
        }
    }
    // A sender segment that is not a valid name (empty) cannot be parsed.
    raw.publish(Message::new(
        "ECCI/b1/app1/app//me",
        envelope("data", Value::None),
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    expected_errors.push((
        "ECCI/b1/app1/app//me".to_owned(),
        "Topic".to_owned(),
        envelope("data", Value::None),
    ));
    raw.publish(Message::new(
        topics[0],
        envelope("data", Value::from(sent)),
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    sent += 1;

    // The valid stream is complete and in order.
    for i in 0..sent {
        let m = tokio::time::timeout(WAIT, c.recv_data())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.decode::<i64>().unwrap(), i);
    }
    let errors = c.errors();
    let mut got = Vec::new();
    while let Some(e) = errors.try_recv() {
        let kind = match &e.error {
            InboundError::Topic(_) => "Topic",
            InboundError::Envelope(EnvelopeError::NotPickle(_)) => "NotPickle",
            InboundError::Envelope(EnvelopeError::NotADict { .. }) => "NotADict",
            InboundError::Envelope(EnvelopeError::MissingType) => "MissingType",
            InboundError::Envelope(EnvelopeError::UnknownType { .. }) => "UnknownType",
            InboundError::Envelope(EnvelopeError::MissingContents) => "MissingContents",
            other => panic!("unexpected {other:?}"),
        };
        assert!(e.source().is_some());
        // The event carries the raw payload: nothing is lost.
        got.push((e.topic, kind.to_owned(), e.payload.to_vec()));
    }
    assert_eq!(got, expected_errors);
    let m = c.metrics();
    assert_eq!(m.errors as usize, expected_errors.len());
    assert_eq!((m.data as i64, m.errors_dropped), (sent, 0));

    // Still working.
    let (peer, _) = on_hub(&hub, plain("peer", "b1", &[("me", "b1")])).await;
    peer.publish(&"still here", "me")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        c.recv_data().await.unwrap().decode::<String>().unwrap(),
        "still here"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_commands_from_strangers_are_error_events() {
    let hub = Hub::new();
    let [g, c1, _c2] = small_app(&hub).await;
    started(&g).await;
    let (stranger, _) = on_hub(
        &hub,
        plain("stranger", "cloud", &[("g", "cloud"), ("c1", "edge")]),
    )
    .await;
    stranger
        .publish_cmd("ready", "g")
        .await
        .unwrap()
        .await
        .unwrap();
    stranger
        .publish_cmd("start", "c1")
        .await
        .unwrap()
        .await
        .unwrap();
    let e = tokio::time::timeout(WAIT, g.errors().recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.topic, "ECCI/cloud/app1/app/stranger/g");
    match e.error {
        InboundError::Readiness(u) => assert_eq!(u.reason, Reason::NotATarget),
        other => panic!("{other:?}"),
    }
    let e = tokio::time::timeout(WAIT, c1.errors().recv())
        .await
        .unwrap()
        .unwrap();
    match e.error {
        InboundError::Readiness(u) => assert_eq!(u.reason, Reason::NotTheController),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_holds_back_instead_of_dropping() {
    let hub = Hub::new();
    let options = ClientOptions {
        data_queue: 2,
        ..ClientOptions::default()
    };
    let (slow, _) = on_hub_with(&hub, plain("slow", "b1", &[]), options).await;
    let (fast, _) = on_hub(&hub, plain("fast", "b1", &[("slow", "b1")])).await;
    for i in 0..50 {
        fast.publish(&i, "slow").await.unwrap().await.unwrap();
    }
    // With paused time this returns once every task is idle: the client has filled its
    // queue and waits instead of reading further.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(slow.data().len(), 2);
    for i in 0..50 {
        assert_eq!(slow.recv_data().await.unwrap().decode::<i32>().unwrap(), i);
    }
}

#[tokio::test(start_paused = true)]
async fn an_app_that_never_reads_commands_still_starts() {
    let hub = Hub::new();
    let options = ClientOptions {
        command_queue: 1,
        ..ClientOptions::default()
    };
    let targets = [("c1", "edge"), ("c2", "edge"), ("c3", "edge")];
    let (g, _) = on_hub_with(&hub, controller("g", "cloud", &targets, None), options).await;
    connected(&g).await;
    let mut cs = Vec::new();
    for (name, _) in targets {
        cs.push(
            on_hub(&hub, component(name, "edge", ("g", "cloud")))
                .await
                .0,
        );
    }
    started(&g).await;
    for c in &cs {
        started(c).await;
    }
    assert_eq!(g.metrics().handshake_commands_skipped, 2);
    assert_eq!(g.commands().len(), 1);
}

async fn next(
    inbox: &mut ecci_client::Inbox<ecci_client::Received>,
) -> Option<ecci_client::Received> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *inbox).poll_next(cx)).await
}

#[tokio::test(start_paused = true)]
async fn inbox_is_a_stream() {
    let hub = Hub::new();
    let (c, _) = on_hub(&hub, plain("me", "b1", &[("me", "b1")])).await;
    c.publish(&1, "me").await.unwrap().await.unwrap();
    c.publish(&2, "me").await.unwrap().await.unwrap();
    let mut data = c.data();
    assert_eq!(next(&mut data).await.unwrap().decode::<i32>().unwrap(), 1);
    assert_eq!(next(&mut data).await.unwrap().decode::<i32>().unwrap(), 2);
    c.close().await;
    assert!(next(&mut data).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_ships_over_the_clients_connection() {
    let hub = Hub::new();
    let (_spy, mut events) = spy(&hub, "toEdgeAI/+/log").await;
    let (c, _) = on_hub(&hub, plain("me", "b1", &[])).await;
    let (logger, guard) = ecci_client::ecci_logger::start(c.logger_config()).unwrap();
    log::Log::log(
        &logger,
        &log::Record::builder()
            .target("detector")
            .level(log::Level::Warn)
            .args(format_args!("it's \"late\""))
            .build(),
    );
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap()
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await.expect("the stream is open") {
                ecci_transport::Event::Message(m) => break m,
                _ => continue,
            }
        }
    })
    .await
    .expect("a log record in time");
    assert_eq!(message.topic, "toEdgeAI/b1/log");
    let json = String::from_utf8(message.payload.to_vec()).unwrap();
    assert!(
        json.starts_with(
            r#"{"app_id": "app1", "container_name": "me", "agent_id": null, "log_info": {"time": ""#
        ),
        "{json}"
    );
    assert!(
        json.ends_with(
            r#"", "name": "detector", "level": "WARNING", "message": "it's \"late\""}}"#
        ),
        "{json}"
    );
    // The logger shared the connection and left it open.
    c.send_complete("after the logger")
        .await
        .unwrap()
        .await
        .unwrap();
    c.close().await;
}

#[tokio::test(start_paused = true)]
async fn a_payload_refused_by_policy_is_an_error_event_with_its_raw_bytes() {
    use ecci_proto::pickle::{DecodeLimits, ObjectPolicy, decode};
    let hub = Hub::new();
    let options = ClientOptions {
        decode_limits: DecodeLimits {
            objects: ObjectPolicy::Refuse,
            ..DecodeLimits::default()
        },
        ..ClientOptions::default()
    };
    let (c, _) = on_hub_with(&hub, plain("me", "b1", &[]), options).await;
    let raw = hub.transport();
    // {'type': 'data', 'contents': collections.OrderedDict([('a', 1)])}.
    let ordered = Value::Mapping(Box::new(ecci_proto::pickle::Mapping {
        kind: ecci_proto::pickle::MappingKind::OrderedDict,
        pairs: vec![(Value::from("a"), Value::from(1))],
    }));
    let payload = envelope("data", ordered);
    raw.publish(Message::new(
        "ECCI/b1/app1/app/x/me",
        payload.clone(),
        QoS::ExactlyOnce,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    let e = tokio::time::timeout(WAIT, c.errors().recv())
        .await
        .unwrap()
        .unwrap();
    let InboundError::Envelope(EnvelopeError::NotPickle(reason)) = &e.error else {
        panic!("{:?}", e.error)
    };
    assert!(
        reason
            .to_string()
            .starts_with("refused global collections.OrderedDict at byte "),
        "{reason}"
    );
    // Nothing lost: the application still has the payload and may decode it otherwise.
    assert_eq!(e.payload, payload);
    let value = decode(&e.payload, &DecodeLimits::default()).unwrap();
    assert_eq!(
        value.get("contents").map(Value::to_string).as_deref(),
        Some("OrderedDict([('a', 1)])")
    );
}
