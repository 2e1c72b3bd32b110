//! A fileManager for local work and tests (feature `local`).
//!
//! [`LocalStore`] is the object store side: an HTTP server on `127.0.0.1` that
//! keeps objects in a directory and serves signed, expiring PUT and GET URLs,
//! with faults to inject. The MQTT side of the plugin (wire notes §6) builds on
//! it once the transport is in place.

mod store;

pub use store::{Faults, LocalError, LocalStore, RequestRecord};
