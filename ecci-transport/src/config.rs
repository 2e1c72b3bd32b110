//! The tunables of [`MqttTransport`](crate::MqttTransport), as plain structs.

use std::time::Duration;

/// Delays between connection attempts: `initial`, then multiplied by `multiplier` up to
/// `max`; each delay is shortened by a random fraction of up to `jitter` so that many clients
/// do not reconnect in step.
///
/// The default: 100 ms, ×2, capped at 5 s, jitter 0.5 (the first retry comes after 50–100 ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The growth factor (values below 1 count as 1).
    pub multiplier: f64,
    /// The largest fraction taken off a delay at random, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

/// How to reach the broker and how to behave.
///
/// ```
/// use ecci_transport::MqttConfig;
/// let mut config = MqttConfig::new("127.0.0.1", 1883);
/// config.credentials = Some(("user".into(), "secret".into()));
/// assert_eq!(config.max_in_flight, 20);
/// assert_eq!(config.max_inbound_packet, 268_435_460); // MQTT's largest packet: 256 MiB
/// ```
#[derive(Clone, PartialEq)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The MQTT client id; default from [`client_id`], unique per process and instance.
    pub client_id: String,
    /// User name and password, sent only when set. Never shown by `Debug`.
    pub credentials: Option<(String, String)>,
    /// Clean session (default `true`, like the Python SDK). Either way, unacknowledged
    /// messages are sent again and subscriptions made again after a reconnect.
    pub clean_session: bool,
    /// Keep-alive interval; a PINGREQ goes out this often and a broker that does not answer
    /// before the next one is taken as gone. Default 30 s.
    pub keep_alive: Duration,
    /// How long to wait for the TCP connection and the CONNACK. Default 5 s.
    pub connect_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Most QoS ≥ 1 messages sent and not yet acknowledged, including those sent again after
    /// a reconnect. Default 20, mosquitto's `max_inflight_messages`: a broker drops QoS 2
    /// messages beyond its quota without telling an MQTT 3.1.1 client. At least 1, at most
    /// 32,768 (larger values count as 32,768: packet ids must stay free for subscribes).
    pub max_in_flight: usize,
    /// Capacity of the [`Priority::Control`](crate::Priority::Control) queue. Default 256.
    pub control_queue: usize,
    /// Capacity of the [`Priority::Bulk`](crate::Priority::Bulk) queue. Default 4096.
    pub bulk_queue: usize,
    /// Capacity of the event stream; when it is full the transport stops reading from the
    /// broker until there is room. Default 4096.
    pub event_queue: usize,
    /// Payload bytes of inbound messages read and not yet taken from the event stream;
    /// while they reach it, the transport stops reading from the broker until the consumer
    /// takes some (backpressure, never a loss). With the message being read, the
    /// transport holds at most this plus [`max_inbound_packet`](Self::max_inbound_packet)
    /// of inbound payloads. Default 256 MiB.
    pub event_queue_bytes: usize,
    /// Largest MQTT packet sent, in bytes; a larger message is refused at once with
    /// [`PublishError::TooLarge`](crate::PublishError::TooLarge). Default 256 MiB, MQTT's
    /// largest packet, which mosquitto and paho accept (a raw 4K RGB frame is 24.9 MB).
    pub max_packet_size: usize,
    /// Largest MQTT packet accepted from the broker, in bytes. A PUBLISH beyond it is not
    /// kept: its bytes are skipped as they arrive (never buffered), it is acknowledged, and
    /// an [`Event::TooLarge`](crate::Event::TooLarge) names its topic and size; the
    /// connection and the messages after it are kept. Any other packet beyond it ends the
    /// connection with a protocol error. Default 256 MiB, MQTT's largest packet: the
    /// memory one inbound message can take.
    pub max_inbound_packet: usize,
    /// TLS; `None` (the default): plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsConfig>,
}

impl MqttConfig {
    /// The defaults for the broker at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> MqttConfig {
        MqttConfig {
            host: host.into(),
            port,
            client_id: client_id(),
            credentials: None,
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
            max_in_flight: 20,
            control_queue: 256,
            bulk_queue: 4096,
            event_queue: 4096,
            event_queue_bytes: 256 * 1024 * 1024,
            max_packet_size: crate::codec::MAX_PACKET,
            max_inbound_packet: crate::codec::MAX_PACKET,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("MqttConfig");
        f.field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<hidden>")),
            )
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("connect_timeout", &self.connect_timeout)
            .field("backoff", &self.backoff)
            .field("max_in_flight", &self.max_in_flight)
            .field("control_queue", &self.control_queue)
            .field("bulk_queue", &self.bulk_queue)
            .field("event_queue", &self.event_queue)
            .field("event_queue_bytes", &self.event_queue_bytes)
            .field("max_packet_size", &self.max_packet_size)
            .field("max_inbound_packet", &self.max_inbound_packet);
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls);
        f.finish()
    }
}

/// A new client id: `ecci-` and 16 hex digits (21 characters, within the 23 that MQTT 3.1.1
/// brokers must accept). Ids never repeat within a process, and the 64 bits come from a
/// per-process random seed, so that containers sharing a broker (all pid 1, started together)
/// do not take over each other's session.
///
/// ```
/// let (a, b) = (ecci_transport::client_id(), ecci_transport::client_id());
/// assert_ne!(a, b);
/// assert!(a.len() <= 23 && a.starts_with("ecci-"));
/// ```
pub fn client_id() -> String {
    format!("ecci-{:016x}", crate::backoff::random_u64())
}

#[cfg(test)]
mod tests {
    use super::client_id;
    use std::collections::HashSet;

    #[test]
    fn client_ids_are_unique_short_and_plain() {
        let ids: Vec<String> = (0..10_000).map(|_| client_id()).collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let hex = id.strip_prefix("ecci-").expect("the ecci- prefix");
            assert!(id.len() <= 23, "{id}");
            // 16 hex digits carry 64 random bits: with 100 containers on a broker the chance
            // of a collision is about 3e-16 (16 bits gave ~7%).
            assert_eq!(hex.len(), 16, "{id}");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id}"
            );
        }
    }
}
