//! The one error type of the facade: every fallible operation of [`Client`](crate::Client)
//! returns an [`Error`] users can match on, with the underlying cause in `source()`.

use std::fmt;
use std::time::Duration;

use ecci_proto::ContainerName;
use ecci_proto::config::{ConfigError, TargetError};
use ecci_proto::pickle::ValueError;
use ecci_transport::{ConnectionError, PublishError, SubscribeError};

/// What went wrong in a [`Client`](crate::Client) operation.
///
/// Display says what failed at this level; the cause (a configuration variable, the known
/// targets, the transport's reason) is in [`source()`](std::error::Error::source).
///
/// ```
/// use ecci_client::Error;
/// let e = Error::Closed;
/// assert_eq!(e.to_string(), "client is closed");
/// assert!(matches!(e, Error::Closed));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `ECCI_*` configuration is missing or invalid; Display names the variable and
    /// the problem (`ECCI_LOCAL_BROKER_IP is unset or empty`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker host (from `variable`, `ECCI_LOCAL_BROKER_IP`) does not resolve to an
    /// address: [`Client::connect`](crate::Client::connect) fails at once rather than
    /// retrying a name that does not exist.
    #[error("{variable}: cannot resolve the broker host {host:?}")]
    UnresolvableHost {
        /// The variable the host came from.
        variable: &'static str,
        /// The host name.
        host: String,
        /// The resolver's answer.
        #[source]
        source: ConnectionError,
    },
    /// A publish named targets that match no pub target (wire.md §5); the source names
    /// the known targets.
    #[error("publish refused: no such target")]
    Target(#[from] TargetError),
    /// A publish to an exact name that is not a pub target.
    #[error(
        "publish refused: {name:?} is not a pub target (known targets: {})",
        Names(known)
    )]
    NotATarget {
        /// The name asked for.
        name: String,
        /// Every configured pub target.
        known: Vec<ContainerName>,
    },
    /// A publish to all targets, but `ECCI_PUB_TARGETS` is empty.
    #[error("publish refused: no pub targets are configured")]
    NoPubTargets,
    /// Command contents that are not a dict: the Python `Client` indexes `contents['cmd']`
    /// catching only `KeyError`, so a string or a list would kill a Python receiver's
    /// network thread. Nothing was sent. [`Command`](crate::Command) always builds a dict.
    #[error(
        "publish refused: command contents must be a dict like {{'cmd': name}}, not a {found} (a python receiver dies on it)"
    )]
    CommandNotADict {
        /// The Python type of the contents given.
        found: &'static str,
    },
    /// The contents cannot be represented as a pickle value (e.g. a map with non-string
    /// keys that are not data).
    #[error("contents cannot be encoded as a pickle value")]
    Encode(#[source] ValueError),
    /// Received contents do not have the shape of the requested type.
    #[error("contents do not decode as the requested type")]
    Decode(#[source] ValueError),
    /// A report for the platform cannot be encoded as JSON.
    #[error("platform report cannot be encoded as json")]
    Json(#[source] serde_json::Error),
    /// The transport refused a message, or the broker never acknowledged it.
    #[error("publishing to {target} failed")]
    Publish {
        /// The receiver (a container name, or the platform topic).
        target: String,
        /// The transport's reason.
        #[source]
        source: PublishError,
    },
    /// The receiving container did not acknowledge the message end to end within
    /// [`E2eOptions::give_up`](crate::E2eOptions::give_up), though it had acknowledged
    /// earlier ones: it is down, or cut off (or this client was, for that long). The
    /// message is no longer sent again: it is lost, unless a copy still in flight (or in
    /// this client's outbox, while it was cut off) arrives after all.
    #[error(
        "{target} did not acknowledge the message within {after:.1?} (sent {attempts} times); it is no longer sent again and may be lost"
    )]
    NotDelivered {
        /// The receiving container.
        target: String,
        /// How long the sender tried.
        after: Duration,
        /// How many times it was sent.
        attempts: u32,
    },
    /// An inbound subscription could not be made.
    #[error("subscribing to {filter} failed")]
    Subscribe {
        /// The topic filter.
        filter: String,
        /// The transport's reason.
        #[source]
        source: SubscribeError,
    },
    /// The transport could not connect to the broker: it refused the connection in a way
    /// retrying cannot cure (bad credentials, an untrusted certificate), or no attempt
    /// succeeded in time. The source is the last attempt's reason.
    #[error("connecting to the broker failed; gave up after {after:?}")]
    Connect {
        /// How long the client tried.
        after: Duration,
        /// The transport's reason.
        #[source]
        source: ConnectionError,
    },
    /// An operation did not complete in time.
    #[error("{operation} timed out after {after:?}{}", WaitingFor(waiting_for))]
    Timeout {
        /// What was waited for, e.g. `"waiting for start"`.
        operation: &'static str,
        /// How long.
        after: Duration,
        /// For the readiness handshake of a controller: the targets that had not sent
        /// `ready` yet.
        waiting_for: Vec<ContainerName>,
    },
    /// The client was closed (or its background task ended) before the operation completed.
    #[error("client is closed")]
    Closed,
    /// A readiness operation on a container that takes no part in the handshake.
    #[error("this container takes no part in the readiness handshake (ECCI_APP_TYPE is unset)")]
    NoHandshake,
    /// The transport's event stream was already taken by someone else.
    #[error("the transport's event stream is already taken")]
    TransportInUse,
    /// A file transfer failed or was refused; the source names the file and the step.
    #[cfg(feature = "files")]
    #[error("file transfer failed")]
    File(#[from] ecci_files::FileError),
    /// A download failed; the source names the file and the step.
    #[cfg(feature = "files")]
    #[error("file download failed")]
    Download(#[source] Box<ecci_files::TransferError>),
    /// The HTTP client for file transfers could not be set up.
    #[cfg(feature = "files")]
    #[error("cannot set up file transfers")]
    FileSetup(#[source] ecci_files::ClientError),
    /// The blocking client could not start its runtime.
    #[error("cannot start the blocking client's runtime")]
    Runtime(#[source] std::io::Error),
}

#[cfg(feature = "files")]
impl From<ecci_files::TransferError> for Error {
    fn from(e: ecci_files::TransferError) -> Self {
        Error::Download(Box::new(e))
    }
}

/// Formats a list of names, or `none`.
struct Names<'a>(&'a [ContainerName]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name.as_str())?;
        }
        Ok(())
    }
}

/// Formats the tail of a readiness timeout: who has not answered.
struct WaitingFor<'a>(&'a [ContainerName]);

impl fmt::Display for WaitingFor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { "; no `ready` from " } else { ", " })?;
            f.write_str(name.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(error: Error, expected: &str) {
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn display() {
        check(Error::Closed, "client is closed");
        check(
            Error::Timeout {
                operation: "waiting for start",
                after: Duration::from_secs(3),
                waiting_for: vec!["c1".parse().unwrap(), "c2".parse().unwrap()],
            },
            "waiting for start timed out after 3s; no `ready` from c1, c2",
        );
        check(
            Error::Timeout {
                operation: "subscribing",
                after: Duration::from_millis(1500),
                waiting_for: vec![],
            },
            "subscribing timed out after 1.5s",
        );
        check(
            Error::Target(TargetError {
                requested: vec!["x".into()],
                known: vec![],
            }),
            "publish refused: no such target",
        );
        check(
            Error::NotATarget {
                name: "worker".into(),
                known: vec!["worker1".parse().unwrap(), "store".parse().unwrap()],
            },
            "publish refused: \"worker\" is not a pub target (known targets: worker1, store)",
        );
    }

    #[test]
    fn target_error_names_known_targets_in_source() {
        let e = Error::Target(TargetError {
            requested: vec!["x".into()],
            known: vec!["w1".parse().unwrap()],
        });
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("no pub target starts with \"x\"; known targets: w1")
        );
    }
}
