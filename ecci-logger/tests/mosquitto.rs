//! The logger against the broker at `ECCI_TEST_BROKER` (mosquitto with its default limits in
//! CI). Without the variable every case returns at once, unless `ECCI_REQUIRE_BROKER=1`
//! makes that a failure.

mod common;

use common::*;
use ecci_transport::QoS;
use ecci_transport::conformance::MqttHarness;

/// `host:port` of the broker under test, if any.
fn broker() -> Option<(String, u16)> {
    let config = MqttHarness::from_env()?.config();
    Some((config.host, config.port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_qos1() {
    if let Some((host, port)) = broker() {
        formats(&host, port, QoS::AtLeastOnce).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_qos2() {
    if let Some((host, port)) = broker() {
        formats(&host, port, QoS::ExactlyOnce).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_everything() {
    // More than mosquitto's 20 in flight and its 1000 queued per subscriber: the transport
    // keeps the in-flight limit and the consumer keeps up.
    if let Some((host, port)) = broker() {
        shutdown_delivers_all(&host, port, 5_000).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_at_start_then_up() {
    if let Some((host, port)) = broker() {
        down_then_up(&host, port).await;
    }
}
