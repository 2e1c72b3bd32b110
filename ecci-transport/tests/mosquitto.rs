//! The conformance suite against `MqttTransport` and the broker at `ECCI_TEST_BROKER`
//! (mosquitto with its default config in CI). Without the variable every case returns at
//! once, unless `ECCI_REQUIRE_BROKER=1` makes that a failure.
#![cfg(feature = "test-util")]

use ecci_transport::conformance::MqttHarness;

async fn harness() -> Option<MqttHarness> {
    MqttHarness::from_env()
}

ecci_transport::conformance_tests!(harness);
