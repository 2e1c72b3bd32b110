//! Shared helpers of the integration tests: configurations of a small app and clients on
//! the in-memory hub, temporary directories; the mosquitto of `ECCI_TEST_BROKER` and Python
//! peers in their modules.

#![allow(dead_code, unreachable_pub)]

pub mod mosquitto;
pub mod python;

use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, ClientOptions};
use ecci_proto::config::{AppType, Config, ConfigBuilder};
use ecci_transport::memory::{Hub, MemoryTransport};
use ecci_transport::{Event, Events, Message, Transport};

pub const APP: &str = "app1";

/// An upper bound for anything a test waits for; with paused time it costs nothing.
pub const WAIT: Duration = Duration::from_secs(60);

/// A directory removed when the test ends, passed or failed (tempfile's).
pub struct TempDir(tempfile::TempDir);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A new empty directory with a unique, unpredictable name starting with `tag`.
pub fn temp_dir(tag: &str) -> TempDir {
    TempDir(
        tempfile::Builder::new()
            .prefix(&format!("ecci-client-{tag}-"))
            .tempdir()
            .unwrap(),
    )
}

/// The configuration of container `me` on broker `broker`, with `targets` as
/// `(name, broker)` pub targets.
pub fn builder(me: &str, broker: &str, targets: &[(&str, &str)]) -> ConfigBuilder {
    let mut b = Config::builder(
        "unused",
        broker.parse().unwrap(),
        APP.parse().unwrap(),
        me.parse().unwrap(),
    );
    for (name, broker) in targets {
        b = b.pub_target(name.parse().unwrap(), broker.parse().unwrap());
    }
    b
}

pub fn plain(me: &str, broker: &str, targets: &[(&str, &str)]) -> Config {
    builder(me, broker, targets).build().unwrap()
}

pub fn controller(
    me: &str,
    broker: &str,
    targets: &[(&str, &str)],
    upstream: Option<(&str, &str)>,
) -> Config {
    let mut b = builder(me, broker, targets).app_type(AppType::Controller);
    if let Some((name, broker)) = upstream {
        b = b.controller(name.parse().unwrap(), broker.parse().unwrap());
    }
    b.build().unwrap()
}

pub fn component(me: &str, broker: &str, ctrl: (&str, &str)) -> Config {
    builder(me, broker, &[ctrl])
        .app_type(AppType::Component)
        .controller(ctrl.0.parse().unwrap(), ctrl.1.parse().unwrap())
        .build()
        .unwrap()
}

/// A client on `hub`, and its transport for fault injection.
pub async fn on_hub(hub: &Hub, config: Config) -> (Client, Arc<MemoryTransport>) {
    on_hub_with(hub, config, ClientOptions::default()).await
}

pub async fn on_hub_with(
    hub: &Hub,
    config: Config,
    options: ClientOptions,
) -> (Client, Arc<MemoryTransport>) {
    let transport = Arc::new(hub.transport());
    let client = Client::builder(config)
        .transport(Arc::clone(&transport) as Arc<dyn Transport>)
        .options(options)
        .connect()
        .await
        .unwrap();
    (client, transport)
}

/// A raw transport on `hub` subscribed to `filter`, to watch what clients publish.
pub async fn spy(hub: &Hub, filter: &str) -> (MemoryTransport, Events) {
    let t = hub.transport();
    let events = t.take_events().unwrap();
    t.subscribe(filter, ecci_transport::QoS::ExactlyOnce)
        .await
        .unwrap();
    (t, events)
}

/// Every message the spy has received so far (without waiting).
pub fn drain(events: &mut Events) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(event) = events.try_recv() {
        if let Event::Message(m) = event {
            out.push(m);
        }
    }
    out
}

/// Waits (bounded) for `client` to start.
pub async fn started(client: &Client) {
    client
        .wait_started(WAIT)
        .await
        .unwrap_or_else(|e| panic!("{} did not start: {e}", client.name()));
}

/// The command names `client` has queued so far, without waiting.
pub fn cmd_names(client: &Client) -> Vec<(String, String)> {
    let inbox = client.commands();
    let mut out = Vec::new();
    while let Some(m) = inbox.try_recv() {
        out.push((
            m.sender().to_string(),
            m.contents.cmd_name().unwrap_or("?").to_owned(),
        ));
    }
    out
}

/// Waits (bounded) until `client`'s task has handled its connection: a controller has
/// sent its `req_ready`s, a component its `ready`.
pub async fn connected(client: &Client) {
    let mut status = client.watch_status();
    tokio::time::timeout(WAIT, status.wait_for(|s| s.connected))
        .await
        .expect("connected in time")
        .expect("client alive");
}
