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

/// One trust store: without `ca_pem` the broker's certificate is checked against the
/// platform's store, the one `https://` transfers use. The self-signed certificate is refused
/// here, and trusted by a copy of this test binary whose platform store holds it
/// (`SSL_CERT_FILE`, as a private CA installed in the system would be).
#[tokio::test]
async fn without_ca_pem_the_platform_store_decides() {
    let h = harness().await.unwrap();
    let t = MqttTransport::start(h.config(Vec::new()));
    let mut events = t.take_events().unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::ConnectFailed(ConnectionError::Io(e)))) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    t.close().await;

    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &h.ca_pem).expect("write ca.pem");
    let child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "platform_store_child", "--nocapture"])
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR")
        .env("ECCI_TLS_CHILD_PORT", h.broker.port().to_string())
        .output();
    let out = tokio::time::timeout(WAIT * 2, child)
        .await
        .expect("the child ends in time")
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test platform_store_child ... ok"),
        "the child ran: {stderr}"
    );
}

/// The child's side of [`without_ca_pem_the_platform_store_decides`]: connects with no
/// `ca_pem`, trusting only the platform store. Does nothing in a normal run.
#[tokio::test]
async fn platform_store_child() {
    let Ok(port) = std::env::var("ECCI_TLS_CHILD_PORT") else {
        return;
    };
    let mut c = MqttConfig::new("127.0.0.1", port.parse().expect("a port"));
    c.tls = Some(TlsConfig {
        server_name: Some("localhost".to_owned()),
        ..TlsConfig::default()
    });
    let t = MqttTransport::start(c);
    let mut events = t.take_events().unwrap();
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::Connected)) => {}
        other => panic!("expected a connection trusted by the platform store, got {other:?}"),
    }
    t.close().await;
}
