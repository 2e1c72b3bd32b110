//! One error type per operation family: publishing, subscribing, the connection.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::types::Message;

/// Why a message cannot be published, or why its [`Receipt`](crate::Receipt) failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The PUBLISH packet would exceed the maximum packet size.
    #[error("message of {size} bytes exceeds the maximum packet size of {max} bytes")]
    TooLarge {
        /// The size of the PUBLISH packet.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The topic is empty, contains a wildcard or NUL, or is too long.
    #[error("invalid topic name {topic:?}")]
    InvalidTopic {
        /// The topic.
        topic: String,
    },
    /// The transport was closed before the message was acknowledged.
    #[error("transport closed")]
    Closed,
    /// A QoS 0 message was lost with its connection before it was written.
    #[error("connection lost before the qos 0 message was written")]
    ConnectionLost,
    /// Every MQTT packet id was taken by unacknowledged messages and requests; the message
    /// was not sent. The transport's caps keep this from happening.
    #[error("no free mqtt packet id")]
    NoPacketId,
}

/// [`Transport::try_publish`](crate::Transport::try_publish) did not queue the message; it is
/// handed back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryPublishError {
    /// The message's queue is full; try again later.
    #[error("publish queue is full")]
    Full(Message),
    /// The transport is closed.
    #[error("transport closed")]
    Closed(Message),
    /// The message can never be sent.
    #[error("message cannot be published")]
    Invalid(Message, #[source] PublishError),
}

impl TryPublishError {
    /// The message that was not queued.
    pub fn into_message(self) -> Message {
        match self {
            TryPublishError::Full(m)
            | TryPublishError::Closed(m)
            | TryPublishError::Invalid(m, _) => m,
        }
    }
}

/// Why a subscribe or unsubscribe failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The filter is empty, or misuses `+`/`#`, or contains NUL.
    #[error("invalid topic filter {filter:?}")]
    InvalidFilter {
        /// The filter.
        filter: String,
    },
    /// The broker refused the subscription (SUBACK failure); it is forgotten.
    #[error("broker refused the subscription to {filter:?}")]
    Rejected {
        /// The filter.
        filter: String,
    },
    /// The transport is closed.
    #[error("transport closed")]
    Closed,
    /// Too many subscribes and unsubscribes (16,384) already await the broker's answer; this
    /// one was not sent. Try again once some are answered.
    #[error("too many subscribes and unsubscribes awaiting the broker's answer")]
    Busy,
}

/// Why a connection ended or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A network error.
    #[error("network error")]
    Io(#[source] IoError),
    /// The broker refused the connection with this CONNACK return code (4: bad user name or
    /// password, 5: not authorised).
    #[error("broker refused the connection with return code {0}")]
    Refused(u8),
    /// The broker did not answer in time (CONNACK or PINGRESP).
    #[error("broker did not answer in time")]
    Timeout,
    /// The broker closed the connection.
    #[error("broker closed the connection")]
    ClosedByBroker,
    /// The broker sent something that is not valid MQTT 3.1.1 here.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The TLS settings cannot be used (bad PEM, bad server name).
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// The connection was dropped on purpose (fault injection, or the transport closing).
    #[error("connection dropped")]
    Dropped,
    /// The broker's host name does not resolve to an address.
    #[error("cannot resolve the broker host {host:?}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The broker closed the connection right after it was made, several times in a row
    /// ([`TAKEOVER_STREAK`](crate::TAKEOVER_STREAK)): most likely another process connects
    /// with the same client id (two copies of one container), and each connect takes the
    /// session over from the other. The transport stays away for
    /// [`MqttConfig::takeover_pause`](crate::MqttConfig::takeover_pause) instead of fighting.
    #[error(
        "broker closed the connection right after connecting {streak} times in a row: another client is using client id {client_id:?} (or the broker rejects what this client sends); pausing"
    )]
    TakenOver {
        /// The client id concerned.
        client_id: String,
        /// How many connections in a row were closed.
        streak: u32,
    },
}

impl ConnectionError {
    /// Whether trying again with the same settings is bound to fail the same way: the broker
    /// refused the client (CONNACK codes 1, 2, 4 and 5: protocol version, client id, bad user
    /// name or password, not authorised), the TLS settings are unusable, or the broker's
    /// certificate was not accepted. The transport still retries (an operator may fix the
    /// broker), but waits the longest backoff delay between such attempts.
    ///
    /// ```
    /// use ecci_transport::ConnectionError;
    /// assert!(ConnectionError::Refused(5).is_permanent());
    /// assert!(!ConnectionError::Refused(3).is_permanent()); // server unavailable
    /// assert!(!ConnectionError::Timeout.is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectionError::Refused(code) => *code != 3,
            ConnectionError::Tls(_) => true,
            // A name that does not exist stays so; only the resolver's "try again"
            // (EAI_AGAIN: a DNS server not reachable yet) may heal.
            ConnectionError::Resolve { reason, .. } => !reason.contains("Temporary failure"),
            // rustls reports a refused certificate as InvalidData.
            ConnectionError::Io(e) => e.kind() == io::ErrorKind::InvalidData,
            ConnectionError::Timeout
            | ConnectionError::ClosedByBroker
            | ConnectionError::Protocol(_)
            | ConnectionError::Dropped
            | ConnectionError::TakenOver { .. } => false,
        }
    }
}

impl From<io::Error> for ConnectionError {
    fn from(e: io::Error) -> Self {
        ConnectionError::Io(IoError(Arc::new(e)))
    }
}

/// A shared [`io::Error`], so that [`ConnectionError`] can be cloned and compared (by kind
/// and message).
#[derive(Clone, Debug)]
pub struct IoError(Arc<io::Error>);

impl IoError {
    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.0.kind()
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoError {}

/// Checks a topic name for publishing.
pub(crate) fn check_topic(topic: &str) -> Result<(), PublishError> {
    if topic.is_empty() || topic.len() > usize::from(u16::MAX) || topic.contains(['+', '#', '\0']) {
        return Err(PublishError::InvalidTopic {
            topic: topic.to_owned(),
        });
    }
    Ok(())
}

/// Checks a topic filter for subscribing (MQTT 3.1.1 §4.7.1).
pub(crate) fn check_filter(filter: &str) -> Result<(), SubscribeError> {
    let levels_ok = || {
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            let last = levels.peek().is_none();
            let ok = match level {
                "#" => last,
                "+" => true,
                other => !other.contains(['+', '#']),
            };
            if !ok {
                return false;
            }
        }
        true
    };
    if filter.is_empty()
        || filter.len() > usize::from(u16::MAX)
        || filter.contains('\0')
        || !levels_ok()
    {
        return Err(SubscribeError::InvalidFilter {
            filter: filter.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(filter: &str, expected: bool) {
        assert_eq!(check_filter(filter).is_ok(), expected, "{filter:?}");
    }

    #[test]
    fn filters() {
        check("a/b", true);
        check("a/+/c", true);
        check("#", true);
        check("a/#", true);
        check("+", true);
        check("/", true);
        check("", false);
        check("a/#/c", false);
        check("a#", false);
        check("a/b+", false);
        check("a\0", false);
    }

    #[test]
    fn topics() {
        assert!(check_topic("a/b").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a/+").is_err());
        assert!(check_topic("a/#").is_err());
    }
}
