//! The mosquitto at `ECCI_TEST_BROKER` (`host:port`), shared by the tests that need a real
//! broker: without it they say `skipped: …` on stderr and return early, unless `ECCI_REQUIRE_BROKER=1` (CI:
//! `.ci/start-mosquitto.sh`).

use std::sync::atomic::{AtomicU32, Ordering};

use ecci_proto::config::{Config, ConfigBuilder};

/// The broker to use, or `None` to skip.
pub fn broker() -> Option<(String, u16)> {
    let Ok(addr) = std::env::var("ECCI_TEST_BROKER") else {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_BROKER",
            "ECCI_TEST_BROKER unset (start a mosquitto with .ci/start-mosquitto.sh)",
        );
        return None;
    };
    let (host, port) = addr
        .rsplit_once(':')
        .expect("ECCI_TEST_BROKER is host:port");
    Some((host.to_owned(), port.parse().expect("a port number")))
}

/// An app id of its own per test, so that tests sharing the broker never hear each other.
pub fn app_id(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Rust container's configuration: `me` on broker id `b1`, all on the one test broker.
pub fn config(app: &str, broker: &(String, u16), me: &str, targets: &[&str]) -> ConfigBuilder {
    let mut b = Config::builder(
        broker.0.clone(),
        "b1".parse().unwrap(),
        app.parse().unwrap(),
        me.parse().unwrap(),
    )
    .port(broker.1);
    for t in targets {
        b = b.pub_target(t.parse().unwrap(), "b1".parse().unwrap());
    }
    b
}
