//! The conformance suite against `MqttTransport` and the embedded broker.
#![cfg(feature = "test-util")]

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{Harness, MqttHarness};
use std::sync::Arc;

struct Embedded {
    // Dropped last: stops the broker after the harness.
    mqtt: MqttHarness,
    _broker: Broker,
}

#[async_trait::async_trait]
impl Harness for Embedded {
    async fn transport(&self) -> Arc<dyn ecci_transport::Transport> {
        self.mqtt.transport().await
    }
    async fn unreachable(&self, queue: usize) -> Arc<dyn ecci_transport::Transport> {
        self.mqtt.unreachable(queue).await
    }
    async fn drop_connections(&self) {
        self.mqtt.drop_connections().await;
    }
}

async fn harness() -> Option<Embedded> {
    let broker = Broker::start().await.expect("embedded broker");
    Some(Embedded {
        mqtt: MqttHarness::new("127.0.0.1", broker.port()),
        _broker: broker,
    })
}

ecci_transport::conformance_tests!(harness);
