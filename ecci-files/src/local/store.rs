//! The local object store: an HTTP/1.1 server on loopback that keeps objects
//! as files (`root/bucket/object`) and accepts only URLs it signed itself.
//!
//! It behaves like a presigned S3 endpoint where the SDK can tell: PUT needs a
//! `Content-Length` (chunked bodies get 411) and lands atomically, GET honours a
//! single `Range`, an expired or tampered URL gets 403. Faults can be injected
//! to exercise the client's retry and resume paths, and the server can be
//! stopped and restarted on its port (with the same key, so URLs stay valid),
//! as a crashed and restarted object store.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ecci_proto::file::{FileNameError, PresignedUrl, validate_file_name};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::body::{Source, UploadBody};
use crate::sigv4::{Method, hmac};
use crate::transfer::{ProgressSink, hex};
use crate::uri;

/// Why the local store could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// Binding the listener or creating the root directory failed.
    #[error("cannot start the local store")]
    Start(#[source] io::Error),
    /// A bucket or object name is not a plain file name.
    #[error("invalid bucket or object name")]
    Name(#[source] FileNameError),
    /// The server task panicked or was cancelled.
    #[error("the local store's task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// One request the store answered, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The object's name, when the path named one.
    pub object: Option<String>,
    /// The `Range` header, when sent.
    pub range: Option<String>,
    /// The status answered; 0 when the connection was dropped instead.
    pub status: u16,
}

/// Faults to inject into the store's answers. All are off by default.
#[derive(Debug, Default)]
pub struct Faults {
    fail_next: AtomicU32,
    cut_next: Mutex<Option<u64>>,
    expired: AtomicBool,
    ignore_range: AtomicBool,
    misrange: AtomicBool,
    refuse_early: AtomicBool,
    stall_upload: Mutex<Option<u64>>,
    stall_download: Mutex<Option<u64>>,
    stalled: Arc<Notify>,
}

impl Faults {
    /// Answer the next `n` requests with `500 Internal Server Error`.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Cut the connection of the next successful GET after `bytes` bytes of its body.
    pub fn cut_next_download_after(&self, bytes: u64) {
        if let Ok(mut cut) = self.cut_next.lock() {
            *cut = Some(bytes);
        }
    }

    /// Treat every URL as expired (403) while `on`.
    pub fn expire_urls(&self, on: bool) {
        self.expired.store(on, Ordering::SeqCst);
    }

    /// Ignore `Range` headers (answer `200` with the whole object) while `on`.
    pub fn ignore_range(&self, on: bool) {
        self.ignore_range.store(on, Ordering::SeqCst);
    }

    /// Answer the next `Range` request with `206` for the whole object, a
    /// range other than the one asked for.
    pub fn misrange_next(&self) {
        self.misrange.store(true, Ordering::SeqCst);
    }

    /// While `on`, drop the connection of a refused request that has a body
    /// instead of answering, as a server that answers before reading the body
    /// and closes looks to a client still sending: a reset, no answer.
    /// Refused requests without a body are answered as usual.
    pub fn refuse_early(&self, on: bool) {
        self.refuse_early.store(on, Ordering::SeqCst);
    }

    /// Stop reading the body of the next PUT once `bytes` bytes of it arrived
    /// and hang, as a server that froze mid-upload, until the store is stopped.
    /// [`Faults::stalled`] tells when it happened.
    pub fn stall_next_upload_after(&self, bytes: u64) {
        if let Ok(mut stall) = self.stall_upload.lock() {
            *stall = Some(bytes);
        }
    }

    /// Send `bytes` bytes of the body of the next successful GET, then hang
    /// until the store is stopped. [`Faults::stalled`] tells when those bytes
    /// were handed to the socket.
    pub fn stall_next_download_after(&self, bytes: u64) {
        if let Ok(mut stall) = self.stall_download.lock() {
            *stall = Some(bytes);
        }
    }

    /// Waits until a transfer stalled by [`Faults::stall_next_upload_after`] or
    /// [`Faults::stall_next_download_after`] reached its stall point; returns at
    /// once when one did since the last call.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn stalled(&self) {
        self.stalled.notified().await;
    }

    fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn take_cut(&self) -> Option<u64> {
        self.cut_next.lock().ok().and_then(|mut c| c.take())
    }

    fn take_stall(slot: &Mutex<Option<u64>>) -> Option<u64> {
        slot.lock().ok().and_then(|mut s| s.take())
    }
}

struct Shared {
    root: PathBuf,
    key: [u8; 32],
    base: String,
    faults: Faults,
    log: Mutex<Vec<RequestRecord>>,
    temp_counter: AtomicU64,
}

/// The local object store: an HTTP server on `127.0.0.1` serving signed,
/// expiring PUT and GET URLs for objects kept under a directory.
///
/// The handle owns the server task: [`LocalStore::shutdown`] stops it and
/// waits for it; dropping the handle aborts it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use ecci_files::local::LocalStore;
/// use ecci_files::sigv4::Method;
/// use ecci_files::{TransferConfig, TransferOptions, Transfers};
///
/// let dir = std::env::temp_dir().join(format!("ecci-doc-store-{}", std::process::id()));
/// let store = LocalStore::start(&dir).await?;
/// let put = store.presign(Method::Put, "app1", "hello.txt", Duration::from_secs(60))?;
/// let get = store.presign(Method::Get, "app1", "hello.txt", Duration::from_secs(60))?;
/// let transfers = Transfers::new(TransferConfig::default())?;
/// transfers.upload_bytes("hello.txt", &put, "hi".into(), TransferOptions::default()).await?;
/// let (bytes, _) = transfers.download_bytes("hello.txt", &get, 1024, TransferOptions::default()).await?;
/// assert_eq!(bytes, b"hi");
/// store.shutdown().await?;
/// # std::fs::remove_dir_all(dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalStore {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("root", &self.root)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Starts a store keeping its objects under `root` (created if missing),
    /// listening on `127.0.0.1` on a free port.
    ///
    /// # Errors
    ///
    /// [`LocalError::Start`].
    pub async fn start(root: impl AsRef<Path>) -> Result<Self, LocalError> {
        Self::start_on(root, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// As [`LocalStore::start`], listening on `addr`.
    ///
    /// # Errors
    ///
    /// [`LocalError::Start`].
    pub async fn start_on(root: impl AsRef<Path>, addr: SocketAddr) -> Result<Self, LocalError> {
        let root = root.as_ref().to_path_buf();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(LocalError::Start)?;
        let listener = TcpListener::bind(addr).await.map_err(LocalError::Start)?;
        let addr = listener.local_addr().map_err(LocalError::Start)?;
        let mut key = [0; 32];
        getrandom::getrandom(&mut key).map_err(|e| LocalError::Start(io::Error::other(e)))?;
        let shared = Arc::new(Shared {
            root,
            key,
            base: format!("http://{addr}"),
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            temp_counter: AtomicU64::new(0),
        });
        let mut store = Self {
            addr,
            shared,
            stop: None,
            task: None,
        };
        store.serve(listener);
        Ok(store)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(serve(listener, self.shared.clone(), stopped)));
    }

    /// The address the store listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Where the store keeps `bucket/object`.
    ///
    /// # Errors
    ///
    /// [`LocalError::Name`] when either is not a plain file name.
    pub fn object_path(&self, bucket: &str, object: &str) -> Result<PathBuf, LocalError> {
        object_path(&self.shared.root, bucket, object).map_err(LocalError::Name)
    }

    /// A URL for `method` on `bucket/object`, valid for `ttl`.
    ///
    /// # Errors
    ///
    /// [`LocalError::Name`] when either name is not a plain file name.
    pub fn presign(
        &self,
        method: Method,
        bucket: &str,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, LocalError> {
        validate_file_name(bucket).map_err(LocalError::Name)?;
        validate_file_name(object).map_err(LocalError::Name)?;
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(ttl)
            .as_secs();
        let signature = sign(&self.shared.key, method.as_str(), bucket, object, expires);
        Ok(PresignedUrl::new(format!(
            "{}/{}/{}?expires={expires}&signature={signature}",
            self.shared.base,
            uri::encode(bucket, false),
            uri::encode(object, false),
        )))
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Stops accepting, closes the open connections and waits for the task.
    ///
    /// # Errors
    ///
    /// [`LocalError::Join`] when the task panicked.
    pub async fn shutdown(mut self) -> Result<(), LocalError> {
        self.stop().await
    }

    /// Stops the server as a crash would: the listener closes and every open
    /// connection is dropped mid-transfer (an upload in progress is discarded,
    /// never stored half-written). The objects, the signing key and the fault
    /// switches stay, for [`LocalStore::restart`]; URLs can still be signed.
    /// Does nothing when already stopped.
    ///
    /// # Errors
    ///
    /// [`LocalError::Join`] when the task panicked.
    pub async fn stop(&mut self) -> Result<(), LocalError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(LocalError::Join),
            None => Ok(()),
        }
    }

    /// Serves again on the same address after [`LocalStore::stop`], with the
    /// same key: URLs signed before the stop are still accepted. Does nothing
    /// when running.
    ///
    /// # Errors
    ///
    /// [`LocalError::Start`] when the address cannot be bound again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use ecci_files::local::LocalStore;
    /// use ecci_files::sigv4::Method;
    /// use ecci_files::{TransferConfig, TransferOptions, Transfers};
    ///
    /// let dir = std::env::temp_dir().join(format!("ecci-doc-restart-{}", std::process::id()));
    /// let mut store = LocalStore::start(&dir).await?;
    /// let addr = store.addr();
    /// let put = store.presign(Method::Put, "app1", "a.txt", Duration::from_secs(60))?;
    /// let transfers = Transfers::new(TransferConfig::default())?;
    /// store.stop().await?;
    /// assert!(transfers.upload_bytes("a.txt", &put, "hi".into(), TransferOptions::default()).await.is_err());
    /// store.restart().await?;
    /// assert_eq!(store.addr(), addr);
    /// transfers.upload_bytes("a.txt", &put, "hi".into(), TransferOptions::default()).await?;
    /// store.shutdown().await?;
    /// # std::fs::remove_dir_all(dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn restart(&mut self) -> Result<(), LocalError> {
        if self.task.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(LocalError::Start)?;
        self.serve(listener);
        Ok(())
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn sign(key: &[u8], method: &str, bucket: &str, object: &str, expires: u64) -> String {
    let message = format!("{method}\n{bucket}\n{object}\n{expires}");
    hex(&hmac(key, message.as_bytes()))
}

fn object_path(root: &Path, bucket: &str, object: &str) -> Result<PathBuf, FileNameError> {
    Ok(root
        .join(validate_file_name(bucket)?)
        .join(validate_file_name(object)?))
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    // A client that goes away mid-request is its own business.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, io::Error> {
    let method = req.method().as_str().to_owned();
    let range = req
        .headers()
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = parse_target(req.uri().path());
    let object = target.as_ref().map(|(_, o)| o.clone());
    let response = answer(&shared, req, target).await;
    if let Ok(mut log) = shared.log.lock() {
        log.push(RequestRecord {
            method,
            object,
            range,
            status: response.as_ref().map_or(0, |r| r.status().as_u16()),
        });
    }
    // An error makes hyper close the connection without an answer.
    response.ok_or_else(|| io::Error::other("fault: refused early"))
}

/// `/bucket/object`, decoded, when both are plain names.
fn parse_target(path: &str) -> Option<(String, String)> {
    let (bucket, object) = path.strip_prefix('/')?.split_once('/')?;
    let bucket = uri::decode(bucket)?;
    let object = uri::decode(object)?;
    validate_file_name(&bucket).ok()?;
    validate_file_name(&object).ok()?;
    Some((bucket, object))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn status(code: StatusCode) -> Response<ServerBody> {
    let mut response = Response::new(ServerBody::Empty);
    *response.status_mut() = code;
    response
}

/// The answer, or `None` to drop the connection without one.
async fn answer(
    shared: &Shared,
    req: Request<Incoming>,
    target: Option<(String, String)>,
) -> Option<Response<ServerBody>> {
    match authorize(shared, &req, target) {
        Ok((Method::Put, path)) => Some(put(shared, req, &path).await),
        Ok((Method::Get, path)) => Some(get(shared, &req, &path).await),
        Err(code) => refuse(shared, req, code).await,
    }
}

/// The method and the object's path when the request may go ahead.
fn authorize(
    shared: &Shared,
    req: &Request<Incoming>,
    target: Option<(String, String)>,
) -> Result<(Method, PathBuf), StatusCode> {
    if shared.faults.take_failure() {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let (bucket, object) = target.ok_or(StatusCode::BAD_REQUEST)?;
    let method = match *req.method() {
        hyper::Method::GET => Method::Get,
        hyper::Method::PUT => Method::Put,
        _ => return Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    let query = req.uri().query().unwrap_or("");
    let expires = query_param(query, "expires").and_then(|e| e.parse::<u64>().ok());
    let signature = query_param(query, "signature");
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return Err(StatusCode::FORBIDDEN);
    };
    let expected = sign(&shared.key, method.as_str(), &bucket, &object, expires);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let valid = constant_time_eq(expected.as_bytes(), signature.as_bytes())
        && now <= expires
        && !shared.faults.expired.load(Ordering::SeqCst);
    if !valid {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok((method, shared.root.join(&bucket).join(&object)))
}

/// Answers `code`. The request body is read first, as Go's server (MinIO)
/// mostly does: a server that closes with unread bytes resets the connection,
/// and the client may lose the answer. [`Faults::refuse_early`] plays that
/// loss: a refused request with a body gets no answer at all.
async fn refuse(
    shared: &Shared,
    req: Request<Incoming>,
    code: StatusCode,
) -> Option<Response<ServerBody>> {
    let has_body = http_body::Body::size_hint(req.body()).lower() > 0;
    if has_body && shared.faults.refuse_early.load(Ordering::SeqCst) {
        return None;
    }
    let mut body = req.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    Some(status(code))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn put(shared: &Shared, req: Request<Incoming>, path: &Path) -> Response<ServerBody> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|_| !req.headers().contains_key(TRANSFER_ENCODING)) else {
        return status(StatusCode::LENGTH_REQUIRED);
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if tokio::fs::create_dir_all(dir).await.is_err() {
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let n = shared.temp_counter.fetch_add(1, Ordering::Relaxed);
    let temp = TempUpload(dir.join(format!(".{}.{n}.upload", name.to_string_lossy())));
    let stall = Faults::take_stall(&shared.faults.stall_upload)
        .map(|at| (at, Arc::clone(&shared.faults.stalled)));
    let result = receive(req.into_body(), &temp.0, declared, stall).await;
    let code = match result {
        Ok(()) => match tokio::fs::rename(&temp.0, path).await {
            Ok(()) => return status(StatusCode::OK),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Err(code) => code,
    };
    status(code)
}

/// The temporary file of an upload, removed however the request ends: a
/// connection dropped mid-body (the store stopped, the task aborted) leaves
/// nothing behind. After the rename there is nothing left to remove.
struct TempUpload(PathBuf);

impl Drop for TempUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn receive(
    mut body: Incoming,
    temp: &Path,
    declared: u64,
    stall: Option<(u64, Arc<Notify>)>,
) -> Result<(), StatusCode> {
    let internal = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let mut file = tokio::fs::File::create(temp).await.map_err(internal)?;
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            if received > declared {
                return Err(StatusCode::BAD_REQUEST);
            }
            file.write_all(&data).await.map_err(internal)?;
            if let Some((at, stalled)) = &stall {
                if received >= *at {
                    stalled.notify_one();
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    if received != declared {
        return Err(StatusCode::BAD_REQUEST);
    }
    file.sync_all().await.map_err(internal)
}

/// `bytes=START-[END]`, one range only, as `(start, end inclusive)` within `size`.
/// `Err(())` when unsatisfiable; `Ok(None)` when absent or not understood (the
/// whole object is sent, as RFC 9110 allows).
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let Ok(start) = start.trim().parse::<u64>() else {
        return Ok(None);
    };
    let end = match end.trim() {
        "" => size.saturating_sub(1),
        e => match e.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return Ok(None),
        },
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn get(shared: &Shared, req: &Request<Incoming>, path: &Path) -> Response<ServerBody> {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return status(StatusCode::NOT_FOUND);
    };
    let Ok(size) = file.metadata().await.map(|m| m.len()) else {
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let header = req.headers().get(RANGE).and_then(|v| v.to_str().ok());
    let range = if shared.faults.ignore_range.load(Ordering::SeqCst) {
        Ok(None)
    } else if header.is_some() && size > 0 && shared.faults.misrange.swap(false, Ordering::SeqCst) {
        // The whole object, labelled as a range, but not the one asked for.
        Ok(Some((0, size - 1)))
    } else {
        parse_range(header, size)
    };
    let (code, start, len, content_range) = match range {
        Err(()) => {
            let mut response = status(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = format!("bytes */{size}").parse() {
                response.headers_mut().insert(CONTENT_RANGE, v);
            }
            return response;
        }
        Ok(None) => (StatusCode::OK, 0, size, None),
        Ok(Some((start, end))) => (
            StatusCode::PARTIAL_CONTENT,
            start,
            end - start + 1,
            Some(format!("bytes {start}-{end}/{size}")),
        ),
    };
    if start > 0 && file.seek(io::SeekFrom::Start(start)).await.is_err() {
        return status(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let (body, _) = UploadBody::new(Source::File(file), len, false, ProgressSink::default());
    let mut response = Response::new(ServerBody::File {
        body: Box::new(body),
        cut_after: shared.faults.take_cut(),
        stall: Faults::take_stall(&shared.faults.stall_download)
            .map(|at| (at, Arc::clone(&shared.faults.stalled))),
        sent: 0,
        paused: false,
    });
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, len.into());
    if let Some(v) = content_range.and_then(|v| v.parse().ok()) {
        headers.insert(CONTENT_RANGE, v);
    }
    response
}

/// A response body: nothing, or a file range, possibly cut short on purpose.
enum ServerBody {
    Empty,
    File {
        body: Box<UploadBody>,
        cut_after: Option<u64>,
        /// Where to hang, and whom to tell.
        stall: Option<(u64, Arc<Notify>)>,
        sent: u64,
        /// Whether the body paused once at the cut, so that hyper flushed
        /// the bytes before it (it drops its buffer when a body fails).
        paused: bool,
    },
}

impl http_body::Body for ServerBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ServerBody::Empty => Poll::Ready(None),
            ServerBody::File {
                body,
                cut_after,
                stall,
                sent,
                paused,
            } => {
                if let Some((at, stalled)) = stall {
                    if *sent >= *at {
                        if !*paused {
                            *paused = true;
                            cx.waker().wake_by_ref();
                        } else {
                            // Flushed: tell, then hang (nothing wakes us) until stopped.
                            stalled.notify_one();
                        }
                        return Poll::Pending;
                    }
                }
                if let Some(cut) = *cut_after {
                    if *sent >= cut {
                        if !*paused {
                            *paused = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "fault: cut");
                        return Poll::Ready(Some(Err(cut)));
                    }
                }
                let frame = std::task::ready!(Pin::new(&mut **body).poll_frame(cx));
                let limit = match (&*stall, *cut_after) {
                    (Some((at, _)), cut) => Some(cut.map_or(*at, |c| c.min(*at))),
                    (None, cut) => cut,
                };
                let frame = match (frame, limit) {
                    (Some(Ok(frame)), Some(cut)) => match frame.into_data() {
                        Ok(mut data) => {
                            let room = usize::try_from(cut - *sent).unwrap_or(usize::MAX);
                            data.truncate(room);
                            Some(Ok(Frame::data(data)))
                        }
                        Err(frame) => Some(Ok(frame)),
                    },
                    (frame, _) => frame,
                };
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    *sent += data.map_or(0, |d| d.len() as u64);
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ServerBody::Empty => true,
            ServerBody::File { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServerBody::Empty => SizeHint::with_exact(0),
            ServerBody::File { body, .. } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: Option<&str>, size: u64, expected: Result<Option<(u64, u64)>, ()>) {
        assert_eq!(
            parse_range(header, size),
            expected,
            "header {header:?} size {size}"
        );
    }

    #[test]
    fn ranges() {
        check(None, 10, Ok(None));
        check(Some("bytes=0-"), 10, Ok(Some((0, 9))));
        check(Some("bytes=4-"), 10, Ok(Some((4, 9))));
        check(Some("bytes=4-6"), 10, Ok(Some((4, 6))));
        check(Some("bytes=4-100"), 10, Ok(Some((4, 9))));
        check(Some("bytes=10-"), 10, Err(()));
        check(Some("bytes=0-"), 0, Err(()));
        check(Some("bytes=6-4"), 10, Ok(None));
        check(Some("bytes=-4"), 10, Ok(None));
        check(Some("items=0-1"), 10, Ok(None));
        check(Some("bytes=x-"), 10, Ok(None));
    }

    proptest::proptest! {
        /// Whatever the header, an accepted range lies within the object.
        #[test]
        fn ranges_stay_within_the_object(header in "bytes=[0-9]{0,4}-[0-9]{0,4}|.{0,12}", size in 0u64..20_000) {
            if let Ok(Some((start, end))) = parse_range(Some(&header), size) {
                proptest::prop_assert!(start <= end && end < size, "{header} {size}: {start}-{end}");
            }
        }
    }

    #[test]
    fn targets() {
        #[track_caller]
        fn check_target(path: &str, expected: Option<(&str, &str)>) {
            let expected = expected.map(|(b, o)| (b.to_owned(), o.to_owned()));
            assert_eq!(parse_target(path), expected, "path {path:?}");
        }
        check_target("/app1/f.bin", Some(("app1", "f.bin")));
        check_target("/app1/a%20b", Some(("app1", "a b")));
        check_target("/app1/..", None);
        check_target("/app1/%2E%2E", None);
        check_target("/app1/a%2Fb", None);
        check_target("/app1/a/b", None);
        check_target("/%2E%2E/x", None);
        check_target("/app1", None);
        check_target("/app1/", None);
        check_target("app1/f", None);
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("expires=1&signature=ab", "expires"), Some("1"));
        assert_eq!(
            query_param("expires=1&signature=ab", "signature"),
            Some("ab")
        );
        assert_eq!(query_param("xexpires=1", "expires"), None);
        assert_eq!(query_param("", "expires"), None);
    }
}
