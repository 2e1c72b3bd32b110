//! The ECCI wire as types, with no IO.
//!
//! `ecci-proto` is the stable core every other `ecci-*` crate builds on. It knows
//! what the Python SDK and the ECCI platform put on the wire and nothing about how
//! bytes move:
//!
//! - [`name`]: validated broker ids, app ids and container names;
//! - [`topic`]: building and parsing every ECCI topic, and a container's
//!   subscription filters;
//! - [`pickle`]: a data-only pickle codec (never runs code from the network);
//! - [`envelope`]: the `{'type': …, 'contents': …}` envelope on `ECCI/…` topics;
//! - [`platform`]: the JSON sent to the platform (ready reports, `send_data`, log
//!   records), byte-compatible with Python's `json.dumps`;
//! - [`file`](mod@file): the fileManager plugin's messages;
//! - [`readiness`]: the controller/component handshake as a sans-IO state machine;
//! - [`config`]: everything the `ECCI_*` variables say, parsed and validated.

pub mod config;
pub mod envelope;
pub mod file;
pub mod name;
pub mod pickle;
pub mod platform;
pub mod readiness;
pub mod topic;

pub use name::{AppId, BrokerId, ContainerName, NameError};
