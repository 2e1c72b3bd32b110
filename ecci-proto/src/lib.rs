//! The ECCI wire as types, with no IO.
//!
//! `ecci-proto` is the stable core every other `ecci-*` crate builds on. It knows
//! what the Python SDK and the ECCI platform put on the wire and nothing about how
//! bytes move:
//!
//! - [`name`]: validated broker ids, app ids and container names;
//! - [`topic`]: building and parsing every ECCI topic, and a container's
//!   subscription filters;
//! - [`pickle`]: a pickle codec that never runs code from the network: objects
//!   decode to inert data, numpy arrays and the other well-known types to
//!   typed values;
//! - [`envelope`]: the `{'type': …, 'contents': …}` envelope on `ECCI/…` topics;
//! - [`platform`]: the JSON sent to the platform (ready reports, `send_data`, log
//!   records), byte-compatible with Python's `json.dumps`;
//! - [`file`](mod@file): the fileManager plugin's messages;
//! - [`readiness`]: the controller/component handshake as a sans-IO state machine;
//! - [`config`]: everything the `ECCI_*` variables say, parsed and validated.
//!
//! A tour: read the configuration, address a message, and decode what arrives,
//! all without a broker.
//!
//! ```
//! use ecci_proto::config::Config;
//! use ecci_proto::envelope::{Envelope, MessageType};
//! use ecci_proto::pickle::{DecodeLimits, Protocol, Value};
//! use ecci_proto::topic::{AppTopic, inbound_filters};
//!
//! let env = [
//!     ("ECCI_LOCAL_BROKER_IP", "127.0.0.1"),
//!     ("ECCI_LOCAL_BROKER_ID", "b1"),
//!     ("ECCI_APP_ID", "app"),
//!     ("ECCI_CONTAINER_NAME", "sender"),
//!     ("ECCI_PUB_TARGETS", "{'worker1': 'b1', \"worker2\": 'b2',}"),
//! ];
//! let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
//! let config = Config::from_lookup(lookup)?;
//! assert_eq!(config.container_name().as_str(), "sender");
//!
//! // `worker` reaches every target whose name starts with it.
//! let targets = config.select_targets(&["worker"])?;
//! let to = &targets[1];
//! let topic = AppTopic::app_message(
//!     to.broker.clone(),
//!     config.app_id().clone(),
//!     config.container_name().clone(),
//!     to.name.clone(),
//! );
//! assert_eq!(topic.to_string(), "ECCI/b2/app/app/sender/worker2");
//!
//! // The payload is the pickle a Python peer expects; decoding never runs code.
//! let payload = Envelope::data(Value::from("hello")).to_pickle(Protocol::default());
//! let received = Envelope::from_pickle(&payload, &DecodeLimits::default())?;
//! assert_eq!(received.kind, MessageType::Data);
//!
//! // What the receiver subscribes to matches what the sender publishes.
//! let filters = inbound_filters(&to.broker, config.app_id(), &to.name, &[], &[]);
//! assert!(filters.iter().any(|f| ecci_proto::topic::filter_matches(f, &topic.to_string())));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod envelope;
pub mod file;
pub mod name;
pub mod pickle;
pub mod platform;
pub mod readiness;
pub mod sequence;
pub mod topic;

#[cfg(test)]
mod testutil;

pub use config::{Config, Target};
pub use envelope::{Envelope, MessageType};
pub use file::FileMessage;
pub use name::{AppId, BrokerId, ContainerName, NameError};
pub use pickle::{DecodeLimits, Protocol, Value};
pub use readiness::{Readiness, Role};
pub use topic::{AppTopic, Topic, TopicKind};
