//! The one error type of the HTTP legs: which file, which step, and why.
//!
//! Presigned URLs are credentials, so nothing here holds one: reqwest errors
//! are stored without their URL, and statuses are kept as numbers.

use std::fmt;
use std::io;

/// Which leg of a transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Sending the bytes to a presigned PUT URL.
    Upload,
    /// Fetching the bytes from a presigned GET URL.
    Download,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Upload => "upload",
            Step::Download => "download",
        })
    }
}

/// A failed upload or download.
///
/// Its [`Display`](fmt::Display) names the step and the file; why it failed is
/// [`TransferError::kind`], which is also its [`source`](std::error::Error::source).
/// The presigned URL never appears in either.
///
/// ```
/// use ecci_files::{ErrorKind, Step, TransferError};
/// let err = TransferError::new("model.bin", Step::Upload, ErrorKind::Expired);
/// assert_eq!(err.to_string(), "upload of \"model.bin\" failed");
/// assert!(err.is_expired());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{step} of {file:?} failed")]
pub struct TransferError {
    file: String,
    step: Step,
    #[source]
    kind: ErrorKind,
}

impl TransferError {
    /// An error about `file` (the object's name or the local path) in `step`.
    pub fn new(file: impl Into<String>, step: Step, kind: ErrorKind) -> Self {
        Self {
            file: file.into(),
            step,
            kind,
        }
    }

    /// The file the transfer was about, as the caller named it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The leg that failed.
    pub fn step(&self) -> Step {
        self.step
    }

    /// Why it failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Whether the server refused the URL as expired or invalid (HTTP 403): the
    /// caller should ask the fileManager for a fresh URL and try again.
    pub fn is_expired(&self) -> bool {
        matches!(self.kind, ErrorKind::Expired)
    }
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered 403: the presigned URL expired or its signature was
    /// refused. Not retried: ask for a fresh URL.
    #[error("the server refused the URL (403): it expired or is not valid")]
    Expired,
    /// The server answered with a status that is not retried (a 4xx other than
    /// 403), or with a 5xx on the last attempt.
    #[error("the server answered {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The connection failed, on the last attempt.
    #[error("connection failed after {attempts} attempts")]
    Connection {
        /// How many attempts were made.
        attempts: u32,
        /// The HTTP client's error, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The URL is not one the HTTP client can use.
    #[error("the URL is not valid")]
    BadUrl {
        /// The HTTP client's error, without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// Reading or writing the local file failed.
    #[error("local file error while {doing}")]
    Io {
        /// What was being done (`"opening the source"`, `"writing the temporary file"`, …).
        doing: &'static str,
        /// The IO error.
        #[source]
        source: io::Error,
    },
    /// A `206 Partial Content` answer did not carry the `Content-Range` asked for
    /// on the last attempt.
    #[error("the server answered a range request with a bad Content-Range")]
    BadRange,
    /// The answer ended before the size it announced, on the last attempt.
    #[error("the answer ended after {received} of {expected} bytes")]
    Incomplete {
        /// Bytes kept.
        received: u64,
        /// The announced size.
        expected: u64,
    },
    /// The object is larger than allowed: announced so (refused before a
    /// byte is written), or its body went past the limit (cut there).
    /// Downloads to a file are bounded by
    /// [`TransferConfig::max_download`](crate::TransferConfig::max_download),
    /// in-memory ones by the caller's `max`.
    #[error("the object is larger than the {max} bytes allowed")]
    TooLarge {
        /// The limit, in bytes.
        max: u64,
    },
    /// The body went on past the size the server announced for it.
    #[error("the answer is longer than the {expected} bytes it announced")]
    TooLong {
        /// The announced size of the object.
        expected: u64,
    },
    /// Fewer than the configured bytes moved within the stall timeout (see
    /// [`TransferConfig::stall_timeout`](crate::TransferConfig::stall_timeout)).
    #[error(
        "no progress: fewer than {min_bytes} bytes moved within {after:?} ({received} bytes in all)"
    )]
    Stalled {
        /// The stall timeout.
        after: std::time::Duration,
        /// The progress that would have reset it.
        min_bytes: u64,
        /// Bytes received (or, uploading, handed to the connection) in all,
        /// restarts and retries included.
        received: u64,
    },
    /// The server answered a `Range` request with the whole object again,
    /// after the download had already restarted from the first byte.
    #[error("the server ignores Range requests: the download restarted {restarts} time(s) already")]
    RangeIgnored {
        /// Restarts made before giving up.
        restarts: u32,
    },
    /// The destination's file system has less free space than the object needs.
    #[error("not enough disk space: {needed} bytes needed, {available} available")]
    NoSpace {
        /// Bytes still to write.
        needed: u64,
        /// Bytes available to this process.
        available: u64,
    },
    /// The server answered with a redirect, which is never followed.
    #[error("the server answered {status}, a redirect to {origin}; redirects are not followed")]
    Redirect {
        /// The HTTP status code.
        status: u16,
        /// The origin (`scheme://host:port`) of the `Location`, never its path or query.
        origin: String,
    },
    /// The bytes do not have the SHA-256 the sender announced.
    #[error("sha256 mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The announced digest, lowercase hex.
        expected: String,
        /// The digest of the bytes received, lowercase hex.
        actual: String,
    },
    /// A file name from the network is a path, not a plain name.
    #[error("the file name is not a plain name")]
    BadName {
        /// Why.
        #[source]
        source: ecci_proto::file::FileNameError,
    },
    /// The downloaded object is not a data-only pickle.
    #[error("the object is not a valid pickle")]
    Decode {
        /// The decoder's error.
        #[source]
        source: ecci_proto::pickle::DecodeError,
    },
}

/// The HTTP client could not be set up (TLS: the platform's root certificates).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client")]
pub struct ClientError {
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ClientError {
    pub(crate) fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl ErrorKind {
    pub(crate) fn io(doing: &'static str) -> impl FnOnce(io::Error) -> ErrorKind {
        move |source| ErrorKind::Io { doing, source }
    }
}
