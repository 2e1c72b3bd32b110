//! `MqttTransport` over TLS (rustls) against the embedded broker with a self-signed
//! certificate: the conformance suite, and a refusal of an untrusted certificate.
#![cfg(all(feature = "test-util", feature = "tls"))]

use std::sync::Arc;

use ecci_transport::broker::Broker;
use ecci_transport::conformance::{Harness, MqttHarness, WAIT};
use ecci_transport::{ConnectionError, Event, MqttConfig, MqttTransport, TlsConfig, Transport};

struct Tls {
    ca_pem: Vec<u8>,
    plain: MqttHarness,
    broker: Broker,
}

fn certificate() -> (Vec<u8>, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    (
        ck.cert.pem().into_bytes(),
        ck.signing_key.serialize_pem().into_bytes(),
    )
}

impl Tls {
    fn config(&self, ca_pem: Vec<u8>) -> MqttConfig {
        let mut c = MqttConfig::new("127.0.0.1", self.broker.port());
        c.backoff.max = std::time::Duration::from_millis(300);
        c.tls = Some(TlsConfig {
            ca_pem,
            server_name: Some("localhost".to_owned()),
            ..TlsConfig::default()
        });
        c
    }
}

#[async_trait::async_trait]
impl Harness for Tls {
    async fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(MqttTransport::start(self.config(self.ca_pem.clone())))
    }
    async fn unreachable(&self, queue: usize) -> Arc<dyn Transport> {
        self.plain.unreachable(queue).await
    }
    async fn drop_connections(&self) {
        self.broker.kick_all();
    }
}

async fn harness() -> Option<Tls> {
    let (cert, key) = certificate();
    let broker = Broker::start_tls(&cert, &key).await.expect("tls broker");
    Some(Tls {
        ca_pem: cert,
        plain: MqttHarness::new("127.0.0.1", broker.port()),
        broker,
    })
}

ecci_transport::conformance_tests!(harness);

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let h = harness().await.unwrap();
    let (other_ca, _) = certificate();
    let t = MqttTransport::start(h.config(other_ca));
    let mut events = t.take_events().unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::ConnectFailed(ConnectionError::Io(e)))) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    t.close().await;
}

#[tokio::test]
async fn bad_pem_is_reported() {
    let h = harness().await.unwrap();
    let t = MqttTransport::start(h.config(b"not a certificate".to_vec()));
    let mut events = t.take_events().unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::ConnectFailed(ConnectionError::Tls(reason)))) => {
            assert!(reason.contains("CA certificate"), "{reason}");
        }
        other => panic!("expected a TLS setup error, got {other:?}"),
    }
    t.close().await;
}
