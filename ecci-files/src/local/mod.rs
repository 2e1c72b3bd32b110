//! A fileManager for local work and tests (feature `local`).
//!
//! - [`LocalStore`]: the object store side, an HTTP server on `127.0.0.1` that
//!   keeps objects in a directory and serves signed, expiring PUT and GET URLs,
//!   with faults to inject.
//! - [`FileManagerCore`]: the plugin's side of wire notes §6 as a function
//!   from an incoming message to the messages to publish, over any [`Signer`]
//!   (the local store, or [`S3Presigner`](crate::sigv4::S3Presigner) for a
//!   real S3-compatible store).
//! - [`LocalFileManager`]: the MQTT runner around the core, one per broker,
//!   backed by a [`LocalStore`] or an S3-compatible store.

mod plugin;
mod runner;
mod store;

pub use runner::{
    Backend, DEFAULT_MAX_REQUESTS, FileManagerError, FileManagerOptions, FileManagerStats,
    LocalFileManager,
};

pub use plugin::{FileManagerCore, GET_URL_TTL, Handled, PUT_URL_TTL, PluginError, Signer};
pub use store::{Faults, LocalError, LocalStore, RequestRecord};
