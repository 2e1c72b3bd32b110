//! TLS and password authentication through the facade, against a real mosquitto started by
//! the test with a TLS listener, certificates generated here, a `password_file` made with
//! `mosquitto_passwd` and `allow_anonymous false`.
//!
//! The right CA and credentials connect; a wrong CA, a wrong password, or plain TCP to the
//! TLS port each fail `connect()` with the transport's reason (not just a timeout), and the
//! transport does not storm the broker with attempts meanwhile.
#![cfg(unix)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, ClientOptions, Error};
use ecci_proto::Config;
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{ConnectionError, MqttConfig, MqttTransport, TlsConfig, Transport};

const USER: &str = "edge";
const PASSWORD: &str = "s3cret pass";

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// mosquitto with a TLS listener and password authentication only; and its CA PEM.
fn tls_broker() -> Option<(Mosquitto, String)> {
    let broker = Mosquitto::prepare()?;
    let dir = broker.dir().to_owned();
    let (cert, key) = certificate();
    std::fs::write(dir.join("server.crt"), &cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let passwd = dir.join("passwd");
    let status = Command::new("mosquitto_passwd")
        .arg("-b")
        .arg("-c")
        .arg(&passwd)
        .arg(USER)
        .arg(PASSWORD)
        .status()
        .expect("mosquitto_passwd (from the mosquitto package)");
    assert!(status.success());
    // mosquitto drops root for its own user, which must be able to read it.
    std::process::Command::new("chmod")
        .arg("644")
        .arg(&passwd)
        .status()
        .unwrap();
    broker.configure(&format!(
        "allow_anonymous false\npassword_file {}\ncertfile {}\nkeyfile {}\n",
        passwd.display(),
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
    ));
    let mut broker = broker;
    broker.up();
    Some((broker, cert))
}

fn config(port: u16) -> Config {
    Config::builder(
        "127.0.0.1",
        "b1".parse().unwrap(),
        "app1".parse().unwrap(),
        "me".parse().unwrap(),
    )
    .port(port)
    .pub_target("me".parse().unwrap(), "b1".parse().unwrap())
    .build()
    .unwrap()
}

/// The transport: default backoff (what users get), TLS with `ca` when given.
fn mqtt(port: u16, ca: Option<&str>, password: &str) -> Arc<MqttTransport> {
    let mut c = MqttConfig::new("127.0.0.1", port);
    c.credentials = Some((USER.to_owned(), password.to_owned()));
    c.tls = ca.map(|ca| TlsConfig {
        ca_pem: ca.as_bytes().to_vec(),
        server_name: Some("localhost".to_owned()),
        ..TlsConfig::default()
    });
    Arc::new(MqttTransport::start(c))
}

async fn connect(port: u16, transport: &Arc<MqttTransport>) -> Result<Client, Error> {
    let options = ClientOptions {
        subscribe_timeout: Duration::from_secs(3),
        ..ClientOptions::default()
    };
    Client::builder(config(port))
        .transport(Arc::clone(transport) as Arc<dyn Transport>)
        .options(options)
        .connect()
        .await
}

/// `connect()` fails with `Error::Connect`; then, over a 3 s window from the start, the
/// transport made few attempts. Returns the reason.
async fn refused(port: u16, transport: Arc<MqttTransport>) -> ConnectionError {
    let start = tokio::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), connect(port, &transport))
        .await
        .expect("connect() returns")
        .expect_err("connect() must fail");
    let Error::Connect { source, .. } = err else {
        panic!("expected Error::Connect, got {err:?}");
    };
    tokio::time::sleep_until(start + Duration::from_secs(3)).await;
    let attempts = transport.metrics().connect_failures;
    assert!(
        (1..=10).contains(&attempts),
        "{attempts} connection attempts in 3 s"
    );
    transport.close().await;
    source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_ca_and_password_connect() {
    let Some((broker, ca)) = tls_broker() else {
        return;
    };
    let t = mqtt(broker.port(), Some(&ca), PASSWORD);
    let client = connect(broker.port(), &t).await.expect("connects");
    client
        .publish(&"over tls", "me")
        .await
        .unwrap()
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), client.recv_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.decode::<String>().unwrap(), "over tls");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_at_once_with_the_certificate_error() {
    let Some((broker, _)) = tls_broker() else {
        return;
    };
    let (other_ca, _) = certificate();
    let reason = refused(
        broker.port(),
        mqtt(broker.port(), Some(&other_ca), PASSWORD),
    )
    .await;
    match &reason {
        ConnectionError::Io(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(e.to_string().contains("certificate"), "{e}");
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }
    // Refusals that retrying cannot cure wait the longest delay (5 s): one attempt.
    assert!(reason.is_permanent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_at_once_with_the_refusal() {
    let Some((broker, ca)) = tls_broker() else {
        return;
    };
    let reason = refused(broker.port(), mqtt(broker.port(), Some(&ca), "wrong")).await;
    // mosquitto 2 answers a bad password with 5 (not authorised), 1.x with 4.
    assert!(
        matches!(reason, ConnectionError::Refused(4 | 5)),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_to_the_tls_port_fails_with_the_broker_closing() {
    let Some((broker, _)) = tls_broker() else {
        return;
    };
    let reason = refused(broker.port(), mqtt(broker.port(), None, PASSWORD)).await;
    // mosquitto reads garbage where it expects a TLS ClientHello and hangs up.
    assert!(
        matches!(
            &reason,
            ConnectionError::ClosedByBroker | ConnectionError::Io(_)
        ),
        "{reason:?}"
    );
}
