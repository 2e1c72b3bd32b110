//! Whole apps over MQTT: the embedded broker of `ecci-transport` and the default
//! `MqttTransport`. Real time, bounded waits (a wait only fails a test that is stuck).

mod common;

use std::time::Duration;

use common::*;
use ecci_client::{Client, ClientOptions, Targets};
use ecci_proto::config::Config;
use ecci_transport::broker::Broker;

fn on_port(config: Config, port: u16) -> Config {
    // Rebuild with the broker's address; everything else stays.
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

async fn connect(config: Config, port: u16) -> Client {
    Client::connect(on_port(config, port)).await.unwrap()
}

async fn connect_with(config: Config, port: u16, options: ClientOptions) -> Client {
    Client::builder(on_port(config, port))
        .options(options)
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn whole_app_with_local_tier_starts_and_talks() {
    let broker = Broker::start().await.unwrap();
    let port = broker.port();
    // g → [l, c3]; l → [c1, c2].
    let g = connect(
        controller("g", "cloud", &[("l", "edge"), ("c3", "cloud")], None),
        port,
    )
    .await;
    let l = connect(
        controller(
            "l",
            "edge",
            &[("c1", "edge"), ("c2", "edge")],
            Some(("g", "cloud")),
        ),
        port,
    )
    .await;
    let c1 = connect(component("c1", "edge", ("l", "edge")), port).await;
    let c2 = connect(component("c2", "edge", ("l", "edge")), port).await;
    let c3 = connect(component("c3", "cloud", ("g", "cloud")), port).await;
    for c in [&g, &l, &c1, &c2, &c3] {
        started(c).await;
    }

    // Data down the tree and back up.
    l.publish(&("work", 1), Targets::All)
        .await
        .unwrap()
        .await
        .unwrap();
    for c in [&c1, &c2] {
        let m = tokio::time::timeout(WAIT, c.recv_data())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.sender(), "l");
        assert_eq!(m.decode::<(String, i32)>().unwrap(), ("work".into(), 1));
        c.publish(&format!("done by {}", c.name()), "l")
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut replies = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(WAIT, l.recv_data())
            .await
            .unwrap()
            .unwrap();
        replies.push((m.sender().to_string(), m.decode::<String>().unwrap()));
    }
    replies.sort();
    assert_eq!(
        replies,
        [
            ("c1".to_owned(), "done by c1".to_owned()),
            ("c2".to_owned(), "done by c2".to_owned())
        ]
    );
    for c in [g, l, c1, c2, c3] {
        c.close().await;
    }
}

#[tokio::test]
async fn handshake_completes_across_a_broker_restart() {
    let mut broker = Broker::start().await.unwrap();
    let port = broker.port();
    // No retry tick within the test: reconnects alone must complete the handshake.
    let options = ClientOptions {
        retry_interval: Duration::from_secs(3600),
        ..ClientOptions::default()
    };
    let c1 = connect_with(
        component("c1", "edge", ("g", "cloud")),
        port,
        options.clone(),
    )
    .await;
    connected(&c1).await;
    broker.stop().await;
    let g = tokio::spawn(connect_with(
        controller("g", "cloud", &[("c1", "edge")], None),
        port,
        options,
    ));
    broker.restart().await.unwrap();
    let g = tokio::time::timeout(WAIT, g).await.unwrap().unwrap();
    started(&g).await;
    started(&c1).await;
    assert!(c1.metrics().transport.reconnects >= 1);

    // And a controller restarted after the start finds its started component again.
    g.close().await;
    let g = connect(controller("g", "cloud", &[("c1", "edge")], None), port).await;
    started(&g).await;
    g.close().await;
    c1.close().await;
}

#[tokio::test]
async fn connect_times_out_without_a_broker() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = ClientOptions {
        subscribe_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let err = Client::builder(on_port(plain("me", "b1", &[]), port))
        .options(options)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "connecting to the broker failed; gave up after 300ms"
    );
    // The reason is the transport's, not just a timeout.
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("network error"));
}
