//! The HTTP legs of a transfer: PUT to and GET from presigned URLs, with
//! retries, resume, checksums and progress.
//!
//! Each call owns its whole leg: it retries connection errors and 5xx answers
//! with exponential backoff, resumes an interrupted download with `Range`, and
//! reports a 403 as [`ErrorKind::Expired`] without retrying, because only the
//! fileManager can issue a fresh URL.
//!
//! Each leg is also bounded against a hostile server: a download never writes
//! more than [`TransferConfig::max_download`] bytes, checks the free space
//! first, restarts from zero at most once, and fails when it stops making
//! progress ([`TransferConfig::stall_timeout`]), as does an upload's body;
//! redirects are never followed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hash::Hasher;
use bytes::Bytes;
use ecci_proto::file::PresignedUrl;
use ecci_proto::pickle::{DecodeLimits, Protocol, Value};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};

use ecci_transport::{Backoff, BackoffConfig};
use tokio::sync::{mpsc, oneshot, watch};

use crate::body::{self, Source, UploadBody};
use crate::error::{ClientError, ErrorKind, Step, TransferError};

/// Retry tunables: how often and how patiently a leg is tried again after a
/// connection error or a 5xx answer.
///
/// The waits between retries come from [`Backoff`], the MQTT transport's
/// reconnect delays: `backoff.initial`, growing by `backoff.multiplier` up to
/// `backoff.max`, each shortened by a random part of up to `backoff.jitter`, so
/// that containers cut off together do not all retry in the same instant. A
/// download attempt that received bytes before failing resets the count and the
/// wait, so a slow but progressing link is never given up on.
///
/// ```
/// use std::time::Duration;
/// use ecci_files::{BackoffConfig, RetryConfig};
/// let retry = RetryConfig { max_retries: 2, ..RetryConfig::default() };
/// assert_eq!(retry.backoff.initial, Duration::from_millis(100));
/// assert_eq!(retry.backoff.max, Duration::from_secs(10));
/// let no_wait = RetryConfig {
///     backoff: BackoffConfig { initial: Duration::ZERO, ..BackoffConfig::default() },
///     ..RetryConfig::default()
/// };
/// # let _ = no_wait;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 5).
    pub max_retries: u32,
    /// The waits between them (default: 100 ms, ×2, capped at 10 s, jitter 0.5).
    pub backoff: BackoffConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 5,
            backoff: BackoffConfig {
                max: Duration::from_secs(10),
                ..BackoffConfig::default()
            },
        }
    }
}

/// The retries of one leg: how many so far, and the next wait.
#[derive(Debug)]
struct Retries {
    count: u32,
    backoff: Backoff,
}

impl Retries {
    fn new(config: &RetryConfig) -> Retries {
        Retries {
            count: 0,
            backoff: Backoff::new(config.backoff),
        }
    }

    /// Back to none, after progress.
    fn reset(&mut self) {
        self.count = 0;
        self.backoff.reset();
    }
}

/// The default [`TransferConfig::max_download`]: 4 GiB.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 4 << 30;

/// Tunables of a [`Transfers`] client.
///
/// ```
/// use std::time::Duration;
/// use ecci_files::{TransferConfig, DEFAULT_MAX_DOWNLOAD};
/// let config = TransferConfig { max_download: 256 << 20, ..TransferConfig::default() };
/// assert_eq!(TransferConfig::default().max_download, DEFAULT_MAX_DOWNLOAD);
/// assert_eq!(config.stall_timeout, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TransferConfig {
    /// Retries and backoff (see [`RetryConfig`]).
    pub retry: RetryConfig,
    /// Longest wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer (default 60 s). A silence
    /// this long counts as a connection error: retried, and a download resumes
    /// (within the download's [`stall_timeout`](Self::stall_timeout)).
    pub read_timeout: Duration,
    /// The largest object a download accepts, in bytes (default
    /// [`DEFAULT_MAX_DOWNLOAD`], 4 GiB). An answer announcing more
    /// (`Content-Length`, or the complete size of a `Content-Range`) is refused
    /// before a byte is written, and a body that goes past it is cut there: at
    /// most this many bytes ever reach the disk. In-memory downloads are bounded
    /// by the caller's `max` instead.
    pub max_download: u64,
    /// A download fails with [`ErrorKind::Stalled`] when fewer than
    /// [`stall_min_bytes`](Self::stall_min_bytes) arrive within this long
    /// (default 30 s), whatever the retries: a server that trickles bytes or
    /// never answers cannot hold a transfer open forever. An upload fails the
    /// same way while its body is being sent (a server that stops reading);
    /// after that, waiting for the answer is bounded by
    /// [`read_timeout`](Self::read_timeout). `Duration::MAX` turns it off.
    pub stall_timeout: Duration,
    /// The progress that resets the stall deadline, in bytes (default 64 KiB:
    /// slower than about 2 KiB/s for 30 s counts as stalled).
    pub stall_min_bytes: u64,
    /// Sync a downloaded file to the disk before renaming it into place
    /// (default off). The rename alone already makes a download appear whole
    /// or not at all to other programs; syncing also makes it survive a power
    /// loss, at the price of waiting for the disk.
    pub sync_downloads: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            retry: RetryConfig::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_download: DEFAULT_MAX_DOWNLOAD,
            stall_timeout: Duration::from_secs(30),
            stall_min_bytes: 64 * 1024,
            sync_downloads: false,
        }
    }
}

/// How far a transfer is: bytes done, and the total when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes sent or received and kept so far. It goes back to 0 when an
    /// attempt restarts from the beginning.
    pub done: u64,
    /// The size of the object, when known.
    pub total: Option<u64>,
}

/// Per-call options of a transfer.
///
/// ```
/// use ecci_files::{Progress, TransferOptions};
/// let (tx, rx) = tokio::sync::watch::channel(Progress::default());
/// let options = TransferOptions { sha256: true, progress: Some(tx), ..TransferOptions::default() };
/// # drop((options, rx));
/// ```
#[derive(Debug, Default)]
pub struct TransferOptions {
    /// Compute the SHA-256 of the bytes while they stream, reported in
    /// [`Transferred::sha256`].
    pub sha256: bool,
    /// Downloads: the SHA-256 (hex) the sender announced. When set, the digest
    /// is computed and a mismatch fails the download with
    /// [`ErrorKind::Checksum`]; a file download then leaves nothing behind.
    pub expected_sha256: Option<String>,
    /// Where to publish progress; updated after every chunk.
    pub progress: Option<watch::Sender<Progress>>,
}

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    /// The size of the object, in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex, when asked for.
    pub sha256: Option<String>,
}

/// The progress channel of one call, or nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProgressSink(Option<watch::Sender<Progress>>);

impl ProgressSink {
    pub(crate) fn set(&self, done: u64, total: Option<u64>) {
        if let Some(tx) = &self.0 {
            tx.send_replace(Progress { done, total });
        }
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The HTTP client for the presigned legs of file transfers.
///
/// Cheap to clone (the connection pool is shared). Every method streams: a
/// file is never held in memory, whatever its size.
///
/// ```no_run
/// # async fn f(put: ecci_proto::file::PresignedUrl) -> Result<(), Box<dyn std::error::Error>> {
/// use ecci_files::{TransferConfig, TransferOptions, Transfers};
/// let transfers = Transfers::new(TransferConfig::default())?;
/// let options = TransferOptions { sha256: true, ..TransferOptions::default() };
/// let done = transfers.upload_file("model.bin", &put, "/data/model.bin".as_ref(), options).await?;
/// println!("sent {} bytes, sha256 {:?}", done.bytes, done.sha256);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Transfers {
    client: reqwest::Client,
    config: TransferConfig,
}

/// A failure of one attempt: retried when `retry` is set.
struct Attempt {
    kind: ErrorKind,
    retry: bool,
}

impl Attempt {
    fn fatal(kind: ErrorKind) -> Self {
        Self { kind, retry: false }
    }

    fn status(status: StatusCode, location: Option<&reqwest::header::HeaderValue>) -> Self {
        if status.is_redirection() {
            let origin = location
                .and_then(|v| v.to_str().ok())
                .map(|l| {
                    crate::uri::origin_of(l).unwrap_or_else(|| "a relative location".to_owned())
                })
                .unwrap_or_else(|| "no location".to_owned());
            Self::fatal(ErrorKind::Redirect {
                status: status.as_u16(),
                origin,
            })
        } else if status == StatusCode::FORBIDDEN {
            Self::fatal(ErrorKind::Expired)
        } else {
            Self {
                kind: ErrorKind::Status {
                    status: status.as_u16(),
                },
                retry: status.is_server_error(),
            }
        }
    }

    fn network(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_builder() {
            Self::fatal(ErrorKind::BadUrl { source: err })
        } else {
            Self {
                kind: ErrorKind::Connection {
                    attempts: 0,
                    source: err,
                },
                retry: true,
            }
        }
    }
}

impl Transfers {
    /// A client with these tunables.
    ///
    /// It speaks HTTP/1.1 only and ignores proxy settings: the object store
    /// sits inside the platform's network. Redirects are never followed: a
    /// `3xx` answer fails the leg with [`ErrorKind::Redirect`], naming the
    /// origin it pointed to.
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the TLS setup fails (the `https` feature reads the
    /// platform's root certificates).
    pub fn new(config: TransferConfig) -> Result<Self, ClientError> {
        let builder = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // A presigned URL names its store; a redirect would send the
            // request (and an upload's bytes) to an origin nobody vetted.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        let client = tls(builder)?
            .build()
            .map_err(|e| ClientError::new(e.without_url()))?;
        Ok(Self { client, config })
    }

    /// The tunables of this client.
    pub fn config(&self) -> &TransferConfig {
        &self.config
    }

    /// Uploads the file at `path` to `url` as the object `name`, streaming it
    /// with an explicit `Content-Length`. A retry sends the file again from the
    /// start (a presigned PUT cannot be resumed).
    ///
    /// # Errors
    ///
    /// A [`TransferError`] naming `name` and [`Step::Upload`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the upload; the object may be missing or
    /// partial on the server, so upload again before announcing it.
    pub async fn upload_file(
        &self,
        name: &str,
        url: &PresignedUrl,
        path: &Path,
        options: TransferOptions,
    ) -> Result<Transferred, TransferError> {
        let progress = ProgressSink(options.progress);
        self.upload(name, url, options.sha256, &progress, || async {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(ErrorKind::io("opening the source file"))?;
            let len = file
                .metadata()
                .await
                .map_err(ErrorKind::io("reading the source file's size"))?
                .len();
            let file = file.into_std().await;
            Ok((Source::Chunks(body::read_ahead(file, len)), len))
        })
        .await
    }

    /// Uploads `bytes` to `url` as the object `name`.
    ///
    /// # Errors
    ///
    /// As [`Transfers::upload_file`].
    ///
    /// # Cancel safety
    ///
    /// As [`Transfers::upload_file`].
    pub async fn upload_bytes(
        &self,
        name: &str,
        url: &PresignedUrl,
        bytes: Bytes,
        options: TransferOptions,
    ) -> Result<Transferred, TransferError> {
        let progress = ProgressSink(options.progress);
        let len = bytes.len() as u64;
        self.upload(name, url, options.sha256, &progress, || {
            let bytes = bytes.clone();
            async move { Ok((Source::Bytes(bytes), len)) }
        })
        .await
    }

    /// Uploads an in-memory object as its pickle (protocol 4, as Python's
    /// `pickle.dumps` writes it), which a Python receiver `pickle.loads`.
    ///
    /// # Errors
    ///
    /// As [`Transfers::upload_file`].
    ///
    /// # Cancel safety
    ///
    /// As [`Transfers::upload_file`].
    pub async fn upload_object(
        &self,
        name: &str,
        url: &PresignedUrl,
        object: &Value,
        options: TransferOptions,
    ) -> Result<Transferred, TransferError> {
        let bytes = Bytes::from(ecci_proto::pickle::encode(object, Protocol::V4));
        self.upload_bytes(name, url, bytes, options).await
    }

    async fn upload<F, Fut>(
        &self,
        name: &str,
        url: &PresignedUrl,
        sha256: bool,
        progress: &ProgressSink,
        mut open: F,
    ) -> Result<Transferred, TransferError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Source, u64), ErrorKind>>,
    {
        let err = |kind| TransferError::new(name, Step::Upload, kind);
        let mut retries = Retries::new(&self.config.retry);
        let mut stall = Stall::new(self.config.stall_timeout, self.config.stall_min_bytes);
        loop {
            let (source, len) = open().await.map_err(err)?;
            let (body, outcome) = UploadBody::new(source, len, sha256, progress.clone());
            let send = self
                .client
                .put(url.expose())
                .header(CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap(body))
                .send();
            let result = stall.watch_upload(send, &outcome, len).await.map_err(err)?;
            let local_error = outcome.lock().ok().and_then(|mut o| o.io_error.take());
            if let Some(source) = local_error {
                return Err(err(ErrorKind::Io {
                    doing: "reading the source file",
                    source,
                }));
            }
            let failure = match result {
                Ok(response) if response.status().is_success() => {
                    let digest = outcome.lock().ok().and_then(|mut o| o.sha256.take());
                    return Ok(Transferred {
                        bytes: len,
                        sha256: digest.map(|d| hex(&d)),
                    });
                }
                Ok(response) => {
                    Attempt::status(response.status(), response.headers().get(LOCATION))
                }
                Err(e) => self.probe_put(url, Attempt::network(e)).await,
            };
            self.give_up_or_wait(failure, &mut retries)
                .await
                .map_err(err)?;
        }
    }

    /// After a connection error on an upload, asks again with an empty body.
    ///
    /// A server that refuses a URL on its headers (403) may close the connection
    /// before it has read the body, and the client, still sending, then sees a
    /// reset instead of the answer. An empty PUT gets the answer: a 403 makes
    /// the failure [`ErrorKind::Expired`]; anything else keeps it a connection
    /// error to retry. When the URL is valid the empty PUT does create an empty
    /// object, which the retry then replaces; nobody is told of the object
    /// before the upload succeeds.
    async fn probe_put(&self, url: &PresignedUrl, failure: Attempt) -> Attempt {
        if !matches!(failure.kind, ErrorKind::Connection { .. }) {
            return failure;
        }
        let probe = self
            .client
            .put(url.expose())
            .header(CONTENT_LENGTH, 0)
            .body(reqwest::Body::from(Bytes::new()))
            .send()
            .await;
        match probe {
            Ok(response) if response.status() == StatusCode::FORBIDDEN => {
                Attempt::fatal(ErrorKind::Expired)
            }
            _ => failure,
        }
    }

    /// Returns the final error when `failure` is not retried or retries are
    /// exhausted; otherwise waits the backoff.
    async fn give_up_or_wait(
        &self,
        failure: Attempt,
        retries: &mut Retries,
    ) -> Result<(), ErrorKind> {
        if !failure.retry || retries.count >= self.config.retry.max_retries {
            return Err(match failure.kind {
                ErrorKind::Connection { source, .. } => ErrorKind::Connection {
                    attempts: retries.count + 1,
                    source,
                },
                kind => kind,
            });
        }
        tokio::time::sleep(retries.backoff.next_delay()).await;
        retries.count += 1;
        Ok(())
    }

    /// Downloads the object `name` from `url` to `dest`.
    ///
    /// The bytes go to a temporary file next to `dest`, which is synced and
    /// renamed to `dest` only when complete (and its digest matches, when
    /// [`TransferOptions::expected_sha256`] is set); on failure it is removed.
    /// An interrupted connection resumes with `Range` from the bytes already
    /// written; a server that answers `200` instead of `206` restarts it.
    ///
    /// `name` is only used in errors: the caller chooses `dest` (after checking a
    /// name from the network with [`ecci_proto::file::validate_file_name`]).
    ///
    /// # Errors
    ///
    /// A [`TransferError`] naming `name` and [`Step::Download`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future removes the temporary file and leaves `dest` as it was.
    pub async fn download_file(
        &self,
        name: &str,
        url: &PresignedUrl,
        dest: &Path,
        options: TransferOptions,
    ) -> Result<Transferred, TransferError> {
        let err = |kind| TransferError::new(name, Step::Download, kind);
        let (temp, file) = temp_file(dest).await.map_err(err)?;
        let mut sink = FileSink::start(file, temp.path().to_path_buf());
        let max = self.config.max_download;
        // `temp` is removed when dropped: on every error below, and when the
        // future is dropped.
        let done = self
            .download(url, &mut sink, max, &options)
            .await
            .map_err(err)?;
        let file = sink.finish().await.map_err(err)?;
        if self.config.sync_downloads {
            let synced = tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            synced
                .map_err(ErrorKind::io("syncing the temporary file"))
                .map_err(err)?;
        }
        persist(temp, dest, self.config.sync_downloads)
            .await
            .map_err(err)?;
        Ok(done)
    }

    /// Downloads the object `name`, as received from the network, into `dir`,
    /// after checking that it is a plain file name and not a path (no `..`,
    /// separators or absolute paths: see [`ecci_proto::file::validate_file_name`]).
    /// Returns where the file landed.
    ///
    /// # Errors
    ///
    /// As [`Transfers::download_file`]; a name that is a path is refused with
    /// [`ErrorKind::BadName`] before any request is made.
    ///
    /// # Cancel safety
    ///
    /// As [`Transfers::download_file`].
    pub async fn download_into(
        &self,
        dir: &Path,
        name: &str,
        url: &PresignedUrl,
        options: TransferOptions,
    ) -> Result<(PathBuf, Transferred), TransferError> {
        let checked = ecci_proto::file::validate_file_name(name).map_err(|source| {
            TransferError::new(name, Step::Download, ErrorKind::BadName { source })
        })?;
        let dest = dir.join(checked);
        let done = self.download_file(name, url, &dest, options).await?;
        Ok((dest, done))
    }

    /// Downloads the object `name` into memory, refusing more than `max` bytes.
    ///
    /// # Errors
    ///
    /// As [`Transfers::download_file`], and [`ErrorKind::TooLarge`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing but the bytes so far.
    pub async fn download_bytes(
        &self,
        name: &str,
        url: &PresignedUrl,
        max: u64,
        options: TransferOptions,
    ) -> Result<(Vec<u8>, Transferred), TransferError> {
        let mut sink = Vec::new();
        let done = self
            .download(url, &mut sink, max, &options)
            .await
            .map_err(|kind| TransferError::new(name, Step::Download, kind))?;
        Ok((sink, done))
    }

    /// Downloads an in-memory object sent as a pickle and decodes it with the
    /// safe codec (objects inert, nothing called), within `limits` (its
    /// `max_input` bounds the download). numpy array data stays a view on the
    /// downloaded bytes.
    ///
    /// # Errors
    ///
    /// As [`Transfers::download_bytes`], and [`ErrorKind::Decode`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn download_object(
        &self,
        name: &str,
        url: &PresignedUrl,
        limits: &DecodeLimits,
        options: TransferOptions,
    ) -> Result<Value, TransferError> {
        let max = u64::try_from(limits.max_input).unwrap_or(u64::MAX);
        let (bytes, _) = self.download_bytes(name, url, max, options).await?;
        // The Vec becomes Bytes without a copy.
        let bytes = bytes::Bytes::from(bytes);
        ecci_proto::pickle::decode_bytes(&bytes, limits).map_err(|source| {
            TransferError::new(name, Step::Download, ErrorKind::Decode { source })
        })
    }

    async fn download<S: Sink>(
        &self,
        url: &PresignedUrl,
        sink: &mut S,
        max: u64,
        options: &TransferOptions,
    ) -> Result<Transferred, ErrorKind> {
        let digest_wanted = options.sha256 || options.expected_sha256.is_some();
        let mut state = Download {
            sink,
            max,
            written: 0,
            total: None,
            restarts: 0,
            stall: Stall::new(self.config.stall_timeout, self.config.stall_min_bytes),
            hasher: digest_wanted.then(Hasher::new),
            progress: ProgressSink(options.progress.clone()),
        };
        let mut retries = Retries::new(&self.config.retry);
        loop {
            let before = state.written;
            match state.attempt(&self.client, url).await {
                Ok(()) => break,
                Err(failure) => {
                    state.progress.set(state.written, state.total);
                    if state.written > before {
                        retries.reset();
                    }
                    let wait = self.give_up_or_wait(failure, &mut retries);
                    state.stall.run(wait).await??;
                }
            }
        }
        let written = state.written;
        state.progress.set(written, Some(written));
        let actual = state.hasher.take().map(|h| hex(&h.finish()));
        if let (Some(expected), Some(actual)) = (&options.expected_sha256, &actual) {
            if !expected.eq_ignore_ascii_case(actual) {
                return Err(ErrorKind::Checksum {
                    expected: expected.to_ascii_lowercase(),
                    actual: actual.clone(),
                });
            }
        }
        Ok(Transferred {
            bytes: written,
            sha256: actual,
        })
    }
}

/// The stall deadline of a download: it moves forward each time
/// `min_bytes` more have arrived, across attempts and retries.
struct Stall {
    timeout: Duration,
    min_bytes: u64,
    deadline: tokio::time::Instant,
    /// Bytes received since the deadline last moved.
    since: u64,
    /// Bytes received in all, restarts included.
    received: u64,
}

impl Stall {
    fn new(timeout: Duration, min_bytes: u64) -> Self {
        Self {
            timeout,
            min_bytes: min_bytes.max(1),
            deadline: Self::from_now(timeout),
            since: 0,
            received: 0,
        }
    }

    /// Now plus `timeout`; a timeout too large for the clock (`Duration::MAX`
    /// to turn the deadline off) is a century.
    fn from_now(timeout: Duration) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        now.checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
    }

    fn got(&mut self, len: u64) {
        self.received += len;
        self.since += len;
        if self.since >= self.min_bytes {
            self.since = 0;
            self.deadline = Self::from_now(self.timeout);
        }
    }

    fn error(&self) -> ErrorKind {
        ErrorKind::Stalled {
            after: self.timeout,
            min_bytes: self.min_bytes,
            received: self.received,
        }
    }

    /// Runs the request `send` of an upload of `len` bytes, whose body counts
    /// what it sent in `outcome`, until the body is sent and the answer comes.
    /// While the body is being sent, a server that takes fewer than
    /// `min_bytes` within the timeout is the stall error; once it is all sent,
    /// waiting for the answer is the read timeout's business (a store may take
    /// a while to finish a large object).
    async fn watch_upload<T>(
        &mut self,
        send: impl Future<Output = T>,
        outcome: &std::sync::Mutex<body::Outcome>,
        len: u64,
    ) -> Result<T, ErrorKind> {
        let mut send = std::pin::pin!(send);
        let sent = || outcome.lock().map(|o| o.sent).unwrap_or(0);
        let mut seen = 0;
        loop {
            if let Ok(out) = tokio::time::timeout_at(self.deadline, send.as_mut()).await {
                return Ok(out);
            }
            let now = sent();
            self.got(now.saturating_sub(seen));
            seen = now;
            if now >= len {
                return Ok(send.await);
            }
            if self.deadline <= tokio::time::Instant::now() {
                return Err(self.error());
            }
        }
    }

    /// Runs `fut` until the deadline; past it, the stall error.
    async fn run<T>(&self, fut: impl Future<Output = T>) -> Result<T, ErrorKind> {
        tokio::time::timeout_at(self.deadline, fut)
            .await
            .map_err(|_| self.error())
    }
}

/// A download in progress: what is kept so far, across attempts.
struct Download<'a, S> {
    sink: &'a mut S,
    max: u64,
    /// Bytes in the sink.
    written: u64,
    /// The object's size, once a response said.
    total: Option<u64>,
    /// Restarts from the first byte so far (a server that ignored `Range`).
    restarts: u32,
    stall: Stall,
    hasher: Option<Hasher>,
    progress: ProgressSink,
}

/// Restarts from the first byte allowed per download: a server that ignores
/// `Range` once may have lost the object's state; twice, it will again.
const MAX_RESTARTS: u32 = 1;

impl<S: Sink> Download<'_, S> {
    /// One GET, resuming after the bytes kept.
    async fn attempt(
        &mut self,
        client: &reqwest::Client,
        url: &PresignedUrl,
    ) -> Result<(), Attempt> {
        let mut request = client.get(url.expose());
        if self.written > 0 {
            request = request.header(RANGE, format!("bytes={}-", self.written));
        }
        let sent = self
            .stall
            .run(request.send())
            .await
            .map_err(Attempt::fatal)?;
        let mut response = sent.map_err(Attempt::network)?;
        let status = response.status();
        // The length of this body, as announced. The header itself, not the
        // framing's view: a server that sends it beside chunked encoding (which
        // the framing follows) has announced a size the body must keep to.
        let announced = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or(response.content_length());
        if status == StatusCode::PARTIAL_CONTENT && self.written > 0 {
            let range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            match range {
                Some((start, complete)) if start == self.written => {
                    if complete.is_some() {
                        self.total = complete;
                    }
                }
                // Not the range asked for: start again from nothing.
                _ => {
                    self.restart().await?;
                    return Err(Attempt {
                        kind: ErrorKind::BadRange,
                        retry: true,
                    });
                }
            }
            if let (Some(total), Some(len)) = (self.total, announced) {
                if self.written.saturating_add(len) > total {
                    return Err(Attempt::fatal(ErrorKind::TooLong { expected: total }));
                }
            }
        } else if status == StatusCode::OK {
            if self.written > 0 {
                self.restart().await?;
            }
            self.total = announced;
        } else {
            return Err(Attempt::status(status, response.headers().get(LOCATION)));
        }
        if self.total.is_some_and(|t| t > self.max) {
            return Err(Attempt::fatal(ErrorKind::TooLarge { max: self.max }));
        }
        if let Some(total) = self.total {
            let needed = total.saturating_sub(self.written);
            self.sink
                .check_space(needed)
                .await
                .map_err(Attempt::fatal)?;
        }
        loop {
            let next = self.stall.run(response.chunk()).await;
            let chunk = match next {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    self.sink.flush().await.map_err(Attempt::fatal)?;
                    return Err(Attempt::network(e));
                }
                Err(stalled) => return Err(Attempt::fatal(stalled)),
            };
            let len = chunk.len() as u64;
            self.stall.got(len);
            let after = self.written.saturating_add(len);
            if after > self.max {
                return Err(Attempt::fatal(ErrorKind::TooLarge { max: self.max }));
            }
            if self.total.is_some_and(|t| after > t) {
                return Err(Attempt::fatal(ErrorKind::TooLong {
                    expected: self.total.unwrap_or_default(),
                }));
            }
            self.sink.write(&chunk).await.map_err(Attempt::fatal)?;
            if let Some(h) = &mut self.hasher {
                h.update(&chunk);
            }
            self.written = after;
            self.progress.set(self.written, self.total);
        }
        self.sink.flush().await.map_err(Attempt::fatal)?;
        match self.total {
            Some(expected) if self.written < expected => Err(Attempt {
                kind: ErrorKind::Incomplete {
                    received: self.written,
                    expected,
                },
                retry: true,
            }),
            _ => Ok(()),
        }
    }

    /// Drops what was written to start again from the first byte, at most
    /// [`MAX_RESTARTS`] times.
    async fn restart(&mut self) -> Result<(), Attempt> {
        if self.restarts >= MAX_RESTARTS {
            return Err(Attempt::fatal(ErrorKind::RangeIgnored {
                restarts: self.restarts,
            }));
        }
        self.restarts += 1;
        self.sink.reset().await.map_err(Attempt::fatal)?;
        self.written = 0;
        if let Some(h) = &mut self.hasher {
            *h = Hasher::new();
        }
        Ok(())
    }
}

/// Parses `bytes START-END/COMPLETE` (COMPLETE may be `*`) into START and COMPLETE.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, complete) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    if end < start {
        return None;
    }
    let complete = match complete.trim() {
        "*" => None,
        n => {
            let n: u64 = n.parse().ok()?;
            if end >= n {
                return None;
            }
            Some(n)
        }
    };
    Some((start, complete))
}

/// Where downloaded bytes go.
trait Sink {
    async fn write(&mut self, chunk: &Bytes) -> Result<(), ErrorKind>;
    async fn flush(&mut self) -> Result<(), ErrorKind>;
    /// Drops everything written, for a restart from the first byte.
    async fn reset(&mut self) -> Result<(), ErrorKind>;
    /// Fails when `needed` more bytes will not fit where the sink writes.
    async fn check_space(&mut self, needed: u64) -> Result<(), ErrorKind>;
}

impl Sink for Vec<u8> {
    async fn write(&mut self, chunk: &Bytes) -> Result<(), ErrorKind> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
    async fn reset(&mut self) -> Result<(), ErrorKind> {
        self.clear();
        Ok(())
    }
    async fn check_space(&mut self, _needed: u64) -> Result<(), ErrorKind> {
        // Bounded by the caller's `max`, which is all the memory it spends.
        Ok(())
    }
}

/// Chunks waiting for the writing thread of a file download.
const WRITE_BEHIND: usize = 16;

enum WriteCmd {
    Data(Bytes),
    Flush(oneshot::Sender<std::io::Result<()>>),
    Reset(oneshot::Sender<std::io::Result<()>>),
}

/// A file written by a blocking thread behind the download, so that writing
/// the disk overlaps with reading the network (a `tokio::fs::File` takes
/// turns with it, and copies every chunk twice). A write error is kept and
/// reported by the next flush or reset.
struct FileSink {
    tx: mpsc::Sender<WriteCmd>,
    thread: tokio::task::JoinHandle<std::io::Result<std::fs::File>>,
    /// The temporary file, for the free-space check of its file system.
    path: PathBuf,
}

impl FileSink {
    fn start(file: std::fs::File, path: PathBuf) -> Self {
        let (tx, mut rx) = mpsc::channel(WRITE_BEHIND);
        let thread = tokio::task::spawn_blocking(move || {
            use std::io::{Seek, Write};
            let mut out = std::io::BufWriter::with_capacity(body::CHUNK, file);
            let mut failed: Option<std::io::Error> = None;
            while let Some(cmd) = rx.blocking_recv() {
                match cmd {
                    WriteCmd::Data(chunk) => {
                        if failed.is_none() {
                            failed = out.write_all(&chunk).err();
                        }
                    }
                    WriteCmd::Flush(reply) => {
                        let result = match failed.take() {
                            Some(e) => Err(e),
                            None => out.flush(),
                        };
                        let _ = reply.send(result);
                    }
                    WriteCmd::Reset(reply) => {
                        let result = match failed.take() {
                            Some(e) => Err(e),
                            None => out.flush().and_then(|()| {
                                let file = out.get_mut();
                                file.set_len(0)?;
                                file.seek(std::io::SeekFrom::Start(0)).map(drop)
                            }),
                        };
                        let _ = reply.send(result);
                    }
                }
            }
            out.into_inner().map_err(|e| e.into_error())
        });
        Self { tx, thread, path }
    }

    async fn call(
        &self,
        cmd: impl FnOnce(oneshot::Sender<std::io::Result<()>>) -> WriteCmd,
        doing: &'static str,
    ) -> Result<(), ErrorKind> {
        let gone = || ErrorKind::Io {
            doing,
            source: std::io::Error::other("the writing thread ended"),
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send(cmd(reply)).await.map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(ErrorKind::io(doing))
    }

    /// Flushes everything and hands the file back.
    async fn finish(mut self) -> Result<std::fs::File, ErrorKind> {
        self.flush().await?;
        drop(self.tx);
        match self.thread.await {
            Ok(file) => file.map_err(ErrorKind::io("writing the temporary file")),
            Err(e) => Err(ErrorKind::Io {
                doing: "writing the temporary file",
                source: std::io::Error::other(e),
            }),
        }
    }
}

impl Sink for FileSink {
    async fn write(&mut self, chunk: &Bytes) -> Result<(), ErrorKind> {
        self.tx
            .send(WriteCmd::Data(chunk.clone()))
            .await
            .map_err(|_| ErrorKind::Io {
                doing: "writing the temporary file",
                source: std::io::Error::other("the writing thread ended"),
            })
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.call(WriteCmd::Flush, "writing the temporary file")
            .await
    }
    async fn reset(&mut self) -> Result<(), ErrorKind> {
        self.call(WriteCmd::Reset, "truncating the temporary file")
            .await
    }
    async fn check_space(&mut self, needed: u64) -> Result<(), ErrorKind> {
        let path = self.path.clone();
        let available = tokio::task::spawn_blocking(move || free_space(&path))
            .await
            .ok()
            .flatten();
        match available {
            Some(available) if available < needed => Err(ErrorKind::NoSpace { needed, available }),
            _ => Ok(()),
        }
    }
}

/// The bytes an unprivileged process may still write on the file system of
/// `path` (`statvfs`: available blocks times the fragment size), or `None`
/// where the platform does not say.
#[cfg(unix)]
fn free_space(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_path: &Path) -> Option<u64> {
    None
}

/// A temporary file next to a download's destination (`.NAME.XXXXXX.part`,
/// tempfile's unpredictable name, created exclusively), removed when dropped
/// unless [`persist`]ed: on every failure and when the download is cancelled.
async fn temp_file(dest: &Path) -> Result<(tempfile::NamedTempFile, std::fs::File), ErrorKind> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ErrorKind::Io {
            doing: "naming the temporary file",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the destination has no file name",
            ),
        })?;
    let made = tokio::task::spawn_blocking(move || {
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{base}."))
            .suffix(".part")
            .tempfile_in(dir)?;
        let file = temp.as_file().try_clone()?;
        Ok::<_, std::io::Error>((temp, file))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    made.map_err(ErrorKind::io("creating the temporary file"))
}

/// Renames the temporary file to `dest`; on failure it is removed.
async fn persist(temp: tempfile::NamedTempFile, dest: &Path, sync: bool) -> Result<(), ErrorKind> {
    let target = dest.to_path_buf();
    let renamed = tokio::task::spawn_blocking(move || temp.persist(target).map(drop))
        .await
        .map_err(|e| ErrorKind::Io {
            doing: "renaming the temporary file into place",
            source: std::io::Error::other(e),
        })?;
    // A failed persist hands the temporary file back inside the error; dropping
    // the error removes it.
    renamed.map_err(|e| ErrorKind::Io {
        doing: "renaming the temporary file into place",
        source: e.error,
    })?;
    // The rename is durable once the directory is synced; where a directory
    // cannot be opened (not Unix) the data itself is already synced.
    if let Some(dir) = dest.parent().filter(|d| sync && !d.as_os_str().is_empty()) {
        if let Ok(dir) = tokio::fs::File::open(dir).await {
            let _ = dir.sync_all().await;
        }
    }
    Ok(())
}

#[cfg(feature = "https")]
fn tls(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, ClientError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    // ring rather than reqwest's default aws-lc-rs: no cmake or C toolchain
    // dance, a much quicker build, and no process-wide provider to install.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::new)?
        .with_platform_verifier()
        .map_err(ClientError::new)?
        .with_no_client_auth();
    Ok(builder.tls_backend_preconfigured(config))
}

#[cfg(not(feature = "https"))]
fn tls(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, ClientError> {
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Option<(u64, Option<u64>)>) {
        assert_eq!(parse_content_range(input), expected, "input {input:?}");
    }

    #[test]
    fn content_ranges() {
        check("bytes 0-9/10", Some((0, Some(10))));
        check("bytes 5-9/10", Some((5, Some(10))));
        check("bytes 5-9/*", Some((5, None)));
        check(" bytes 5-9/10 ", Some((5, Some(10))));
        check("bytes 5-10/10", None);
        check("bytes 9-5/10", None);
        check("bytes */10", None);
        check("bytes 5-9", None);
        check("items 5-9/10", None);
        check("bytes -5-9/10", None);
        check("bytes 5-9/x", None);
        check("", None);
    }

    proptest::proptest! {
        #[test]
        fn content_ranges_round_trip(start in 0u64..1 << 50, len in 1u64..1 << 20, extra in 0u64..1 << 20) {
            let end = start + len - 1;
            let complete = end + 1 + extra;
            let header = format!("bytes {start}-{end}/{complete}");
            proptest::prop_assert_eq!(parse_content_range(&header), Some((start, Some(complete))));
        }

        #[test]
        fn content_range_parsing_never_panics(input in ".*") {
            let _ = parse_content_range(&input);
        }
    }

    #[tokio::test]
    async fn a_stall_deadline_moves_with_progress_and_may_be_off() {
        let mut stall = Stall::new(Duration::from_secs(30), 10);
        let first = stall.deadline;
        stall.got(9);
        assert_eq!(stall.deadline, first, "less than min_bytes moves nothing");
        stall.got(1);
        assert!(stall.deadline >= first);
        assert_eq!((stall.since, stall.received), (0, 10));
        let off = Stall::new(Duration::MAX, 1);
        assert!(off.deadline > tokio::time::Instant::now() + Duration::from_secs(3600 * 24 * 365));
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let retry = RetryConfig {
            max_retries: 3,
            backoff: BackoffConfig {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(35),
                multiplier: 2.0,
                jitter: 0.5,
            },
        };
        let mut retries = Retries::new(&retry);
        for step in [10, 20, 35, 35] {
            let wait = retries.backoff.next_delay();
            let step = Duration::from_millis(step);
            assert!(wait <= step && wait >= step / 2, "{wait:?} vs {step:?}");
        }
        retries.count = 3;
        retries.reset();
        assert_eq!(retries.count, 0);
        assert!(retries.backoff.next_delay() <= Duration::from_millis(10));
        let silly = RetryConfig {
            backoff: BackoffConfig {
                multiplier: f64::NAN,
                jitter: 0.0,
                ..retry.backoff
            },
            ..retry
        };
        let mut retries = Retries::new(&silly);
        let waits: Vec<_> = (0..3).map(|_| retries.backoff.next_delay()).collect();
        assert_eq!(waits, [Duration::from_millis(10); 3]);
    }
}
