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
//!   connection errors and 5xx answers with the MQTT transport's jittered
//!   backoff ([`RetryConfig`]), resume an interrupted download with `Range`,
//!   compute SHA-256 on the fly and report [`Progress`]. A 403 is [`ErrorKind::Expired`]: ask for a fresh URL.
//!   Downloads are bounded in size and time ([`TransferConfig`]); redirects
//!   are never followed.
//! - [`sigv4`]: presigned URLs for an S3-compatible store such as MinIO.
//! - [`FileExchange`]: the MQTT half for a container. [`FileExchange::send`]
//!   asks the fileManager for a PUT URL, uploads and asks for the transfer
//!   (cloud and edge as wire notes §6 says), returning a [`SendHandle`] with
//!   progress; inbound `resTransfer`s become [`FileOffer`]s to download to a
//!   path or decode as an object. Presigned URLs are used only for trusted
//!   origins (see [`FileExchange`]'s origin policy). The client feeds it the
//!   `'file'` messages it receives ([`InboundFile`]); this crate does not
//!   depend on the client.
//! - `local` (feature `local`): a fileManager for local work and tests: an
//!   object store on `127.0.0.1` with signed, expiring URLs and fault
//!   injection, the plugin's logic as a function, and `LocalFileManager`, the
//!   plugin running on a broker (over a local store or real S3).
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
mod exchange;
mod hash;
#[cfg(feature = "local")]
pub mod local;
pub mod sigv4;
mod transfer;
mod uri;

pub use ecci_proto::file::PresignedUrl;
/// The retry waits of [`RetryConfig`]: the MQTT transport's, re-exported.
pub use ecci_transport::BackoffConfig;
pub use error::{ClientError, ErrorKind, Step, TransferError};
pub use exchange::{
    ExchangeOptions, FileError, FileExchange, FileOffer, FileSource, Identity, InboundFile, Offers,
    Refusal, RefusalReason, SendHandle, SendProgress, Sent,
};
pub use transfer::{
    DEFAULT_MAX_DOWNLOAD, Progress, RetryConfig, TransferConfig, TransferOptions, Transferred,
    Transfers,
};
