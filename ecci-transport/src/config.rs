//! The tunables of [`MqttTransport`](crate::MqttTransport), as plain structs.

use std::time::Duration;

/// Delays between attempts (MQTT reconnects here, HTTP retries in `ecci-files`; see
/// [`Backoff`](crate::Backoff)): `initial`, then multiplied by `multiplier` up to
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
    /// A container keeps one id across restarts ([`stable_client_id`]) so that the broker
    /// keeps its session: `ecci_client::mqtt_config` does that.
    pub client_id: String,
    /// User name and password, sent only when set. Never shown by `Debug`.
    pub credentials: Option<(String, String)>,
    /// Clean session. Default `true` here, because the default [`client_id`] is new in every
    /// process and a persistent session under it would be left behind at the broker, with
    /// its subscriptions and queue, on every restart; `ecci_client::mqtt_config` sets a
    /// [`stable_client_id`] and `false`.
    ///
    /// - Persistent (`false`): the broker keeps the subscriptions and the messages queued
    ///   for them while the client is away (across a broker restart too, when the broker
    ///   saves its sessions). After a reconnect with the session present, QoS 2 messages the
    ///   broker had acknowledged with PUBREC are completed with PUBREL, not sent again, and
    ///   inbound QoS 2 packet ids stay remembered: no duplicates from either side.
    /// - Clean (`true`): the broker forgets both. Unacknowledged messages are still sent
    ///   again and the subscriptions made again, but a QoS 2 message whose PUBREC was lost
    ///   with the connection is sent as a new PUBLISH, so the receiver may get it twice
    ///   (an `ecci_client` receiver drops such duplicates by their sequence number), and
    ///   messages published while the subscriber was away are not kept.
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
    /// Capacity of the [`Priority::Background`](crate::Priority::Background) queue (log
    /// records). Default 1024.
    pub background_queue: usize,
    /// Capacity of the event stream; when it is full the transport stops reading from the
    /// broker until there is room. Default 4096.
    pub event_queue: usize,
    /// Payload bytes of inbound messages read and not yet taken from the event stream;
    /// while they reach it, the transport stops reading from the broker until the consumer
    /// takes some (backpressure, never a loss). With the message being read, the
    /// transport holds at most this plus [`max_inbound_packet`](Self::max_inbound_packet)
    /// of inbound payloads. Default 256 MiB.
    pub event_queue_bytes: usize,
    /// Bytes of outbound [`Priority::Bulk`](crate::Priority::Bulk) and
    /// [`Priority::Background`](crate::Priority::Background) messages (payload and
    /// topic, counted in 1 KiB units) queued or sent and not yet acknowledged. When they
    /// reach it, [`publish`](crate::Transport::publish) waits for room and
    /// [`try_publish`](crate::Transport::try_publish) hands the message back
    /// ([`TryPublishError::Full`](crate::TryPublishError::Full)). A message larger than the
    /// whole budget waits until the outbox is empty and then goes alone. The encoded copy
    /// being written can add as much again (after a reconnect, the resend burst). Default
    /// 64 MiB.
    pub outbox_bytes: usize,
    /// The same for [`Priority::Control`](crate::Priority::Control) messages, which have a
    /// budget of their own so that a backlog of data never holds up the handshake. Default
    /// 16 MiB.
    pub control_outbox_bytes: usize,
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
    /// How long to stay away after the broker closed the connection right after it was made
    /// [`TAKEOVER_STREAK`] times in a row: the sign of another client with the same client
    /// id (each connect makes the broker close the other's connection). The transport
    /// reports [`ConnectionError::TakenOver`](crate::ConnectionError::TakenOver) and waits
    /// this long instead of fighting over the session. Default 60 s.
    pub takeover_pause: Duration,
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
            background_queue: 1024,
            event_queue: 4096,
            event_queue_bytes: 256 * 1024 * 1024,
            outbox_bytes: 64 * 1024 * 1024,
            control_outbox_bytes: 16 * 1024 * 1024,
            max_packet_size: crate::codec::MAX_PACKET,
            max_inbound_packet: crate::codec::MAX_PACKET,
            takeover_pause: Duration::from_secs(60),
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
            .field("background_queue", &self.background_queue)
            .field("event_queue", &self.event_queue)
            .field("event_queue_bytes", &self.event_queue_bytes)
            .field("outbox_bytes", &self.outbox_bytes)
            .field("control_outbox_bytes", &self.control_outbox_bytes)
            .field("max_packet_size", &self.max_packet_size)
            .field("max_inbound_packet", &self.max_inbound_packet)
            .field("takeover_pause", &self.takeover_pause);
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

/// How many connections in a row, each closed by the broker within
/// [`TAKEOVER_WINDOW`] of being made, count as a session takeover (see
/// [`MqttConfig::takeover_pause`]).
pub const TAKEOVER_STREAK: u32 = 3;

/// A connection the broker closes sooner than this after CONNACK counts towards
/// [`TAKEOVER_STREAK`].
pub const TAKEOVER_WINDOW: Duration = Duration::from_secs(5);

/// A client id that is the same every time for the same `parts` (say app id, container
/// name and broker id), so that a restarted container finds its persistent session again:
/// `ecci-` and 16 hex digits of a 64-bit FNV-1a hash of the parts (21 characters, within the
/// 23 that MQTT 3.1.1 brokers must accept). The hash is fixed by this function, not by the
/// Rust version, so ids stay the same across builds.
///
/// ```
/// use ecci_transport::stable_client_id;
/// let a = stable_client_id(&["app", "camera", "b1"]);
/// assert_eq!(a, stable_client_id(&["app", "camera", "b1"]));
/// assert_ne!(a, stable_client_id(&["app", "camera", "b2"]));
/// assert_ne!(stable_client_id(&["ab", "c"]), stable_client_id(&["a", "bc"]));
/// assert!(a.len() <= 23 && a.starts_with("ecci-"));
/// ```
pub fn stable_client_id(parts: &[&str]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        // The length first, so that the parts' boundaries count.
        for byte in (part.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(part.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("ecci-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::{client_id, stable_client_id};

    #[test]
    fn stable_client_ids_do_not_change_between_builds() {
        // Fixed values: a persistent session is found again only if the id is the same.
        assert_eq!(stable_client_id(&[]), "ecci-cbf29ce484222325");
        // FNV-1a 64 over (len as u64 LE, bytes) per part, computed with Python.
        assert_eq!(
            stable_client_id(&["app", "me", "b1"]),
            "ecci-fab290995368f01e"
        );
    }

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
