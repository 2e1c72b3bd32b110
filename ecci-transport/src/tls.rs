//! TLS for [`MqttTransport`](crate::MqttTransport) with rustls (ring provider), behind the
//! `tls` feature.
//!
//! One trust store for MQTT and HTTPS: without `ca_pem`, the broker's certificate is checked
//! by the platform's verifier (rustls-platform-verifier), exactly as ecci-files checks the
//! object store's. A private CA installed in the system store (on Linux, or named by
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`) is trusted by both.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::error::ConnectionError;

/// How to secure the connection to the broker.
///
/// ```
/// use ecci_transport::{MqttConfig, TlsConfig};
/// let mut config = MqttConfig::new("broker.example", 8883);
/// config.tls = Some(TlsConfig {
///     ca_pem: b"-----BEGIN CERTIFICATE-----\n...".to_vec(),
///     ..TlsConfig::default()
/// });
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates to trust, PEM, and only these; empty: the platform's verifier and
    /// trust store, the same that `https://` file transfers use (on Linux the system's CA
    /// certificates, or those of `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and private key, PEM, for brokers that require them.
    /// The key is never shown by `Debug`.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the broker's certificate must carry; default: the host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field(
                "client_auth",
                &self.client_auth.as_ref().map(|_| "<hidden>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> ConnectionError {
    ConnectionError::Tls(format!("{what}: {e}"))
}

impl TlsConfig {
    fn client_config(&self) -> Result<ClientConfig, ConnectionError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?;
        let builder = if self.ca_pem.is_empty() {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| tls_error("the platform's certificate verifier", e))?
        } else {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
                let cert = cert.map_err(|e| tls_error("bad CA certificate PEM", e))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_error("unusable CA certificate", e))?;
            }
            if roots.is_empty() {
                return Err(ConnectionError::Tls("no CA certificate in ca_pem".into()));
            }
            builder.with_root_certificates(roots)
        };
        match &self.client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some((chain, key)) => {
                let chain = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_error("bad client certificate PEM", e))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| tls_error("bad client key PEM", e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error("unusable client certificate", e))
            }
        }
    }

    /// The TLS handshake over `tcp` with the broker at `host`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ConnectionError> {
        let config = self.client_config()?;
        let name = self.server_name.as_deref().unwrap_or(host).to_owned();
        let name = ServerName::try_from(name).map_err(|e| tls_error("bad server name", e))?;
        Ok(TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?)
    }
}
