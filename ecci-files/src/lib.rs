//! Streaming file transfer for ECCI containers.
//!
//! A file goes from one container to others through the platform's fileManager
//! plugin (wire notes §6): the sender gets a presigned PUT URL and uploads, each
//! receiver gets a presigned GET URL and downloads. This crate does the HTTP
//! legs of that exchange and the object-store side of it:
//!
//! - [`Transfers`]: PUT a file, a buffer or a pickled object to a presigned URL,
//!   and GET one back into a file (through a temporary file renamed when
//!   complete) or into memory. Both legs stream in constant memory, retry
//!   connection errors and 5xx answers with backoff ([`RetryConfig`]), resume an
//!   interrupted download with `Range`, compute SHA-256 on the fly and report
//!   [`Progress`]. A 403 is [`ErrorKind::Expired`]: ask for a fresh URL.
//! - [`sigv4`]: presigned URLs for an S3-compatible store such as MinIO.
//! - `local` (feature `local`): a fileManager's object store for local work and
//!   tests, an HTTP server on `127.0.0.1` with signed, expiring URLs and fault
//!   injection.
//!
//! Presigned URLs are credentials: they never appear in errors (see
//! [`TransferError`]) and [`PresignedUrl`] redacts them in `Debug`.
//!
//! # Features
//!
//! - `https` (default): `https://` URLs through rustls with the platform's root
//!   certificates. Without it only `http://` URLs work.
//! - `local`: the [`local`] module.

mod body;
mod error;
#[cfg(feature = "local")]
pub mod local;
pub mod sigv4;
mod transfer;
mod uri;

pub use ecci_proto::file::PresignedUrl;
pub use error::{ClientError, ErrorKind, Step, TransferError};
pub use transfer::{
    Progress, RetryConfig, TransferConfig, TransferOptions, Transferred, Transfers,
};
