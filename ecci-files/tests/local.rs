//! The HTTP legs against the local store: round trips, resume, retries,
//! expiry, names from the network, concurrency, and the store's own rules.

mod common;

use common::TempDir;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ecci_files::local::{LocalError, LocalStore, RequestRecord};
use ecci_files::sigv4::Method;
use ecci_files::{
    BackoffConfig, PresignedUrl, Progress, RetryConfig, Step, TransferConfig, TransferError,
    TransferOptions, Transfers,
};
use ecci_proto::pickle::{DecodeLimits, Value};
use sha2::{Digest, Sha256};

const BUCKET: &str = "app1";
const TTL: Duration = Duration::from_secs(3600);
const MIB: usize = 1024 * 1024;

/// A store, a client and a scratch directory.
struct Fixture {
    store: LocalStore,
    transfers: Transfers,
    work: TempDir,
    _root: TempDir,
}

impl Fixture {
    async fn new(tag: &str) -> Self {
        Self::with_retries(tag, 3).await
    }

    async fn with_retries(tag: &str, max_retries: u32) -> Self {
        let root = TempDir::new(&format!("{tag}-store"));
        let store = LocalStore::start(root.path()).await.unwrap();
        let transfers = Transfers::new(TransferConfig {
            retry: RetryConfig {
                max_retries,
                backoff: BackoffConfig {
                    initial: Duration::ZERO,
                    ..BackoffConfig::default()
                },
            },
            ..TransferConfig::default()
        })
        .unwrap();
        Self {
            store,
            transfers,
            work: TempDir::new(tag),
            _root: root,
        }
    }

    fn url(&self, method: Method, object: &str) -> PresignedUrl {
        self.store.presign(method, BUCKET, object, TTL).unwrap()
    }

    /// Writes `data` to a file in the scratch directory.
    fn source(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.work.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn stored(&self, object: &str) -> Vec<u8> {
        std::fs::read(self.store.object_path(BUCKET, object).unwrap()).unwrap()
    }

    /// Statuses the store answered for `object`, in order.
    fn statuses(&self, object: &str) -> Vec<(String, Option<String>, u16)> {
        self.store
            .requests()
            .into_iter()
            .filter(|r| r.object.as_deref() == Some(object))
            .map(
                |RequestRecord {
                     method,
                     range,
                     status,
                     ..
                 }| (method, range, status),
            )
            .collect()
    }

    async fn shutdown(self) {
        self.store.shutdown().await.unwrap();
    }
}

/// Deterministic, non-repeating-looking bytes.
fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn with_sha() -> TransferOptions {
    TransferOptions {
        sha256: true,
        ..TransferOptions::default()
    }
}

/// Files in `dir` (to see that no temporary file is left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks that an error names the file and step, has the expected kind, and
/// never shows the URL's credentials.
#[track_caller]
fn check_error(err: &TransferError, file: &str, step: Step, kind: &str) {
    assert_eq!(err.file(), file);
    assert_eq!(err.step(), step);
    let mut chain = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        chain.push_str(&format!(" / {s}"));
        source = s.source();
    }
    assert!(!chain.contains("signature="), "URL leaked: {chain}");
    let debug = format!("{:?}", err.kind());
    assert!(debug.starts_with(kind), "kind {debug}, expected {kind}");
}

#[tokio::test]
async fn file_round_trip_streams_with_checksums_and_progress() {
    let fx = Fixture::new("file").await;
    let payload = data(3 * MIB + 12_345);
    let src = fx.source("big.bin", &payload);
    let (tx, rx) = tokio::sync::watch::channel(Progress::default());
    let options = TransferOptions {
        sha256: true,
        progress: Some(tx),
        ..TransferOptions::default()
    };
    let up = fx
        .transfers
        .upload_file("big.bin", &fx.url(Method::Put, "big.bin"), &src, options)
        .await
        .unwrap();
    let expected_sha = sha256_hex(&payload);
    assert_eq!(up.bytes, payload.len() as u64);
    assert_eq!(up.sha256.as_deref(), Some(expected_sha.as_str()));
    let total = payload.len() as u64;
    assert_eq!(
        *rx.borrow(),
        Progress {
            done: total,
            total: Some(total)
        }
    );
    assert_eq!(fx.stored("big.bin"), payload);

    let out_dir = TempDir::new("file-out");
    let dest = out_dir.path().join("copy.bin");
    let (tx, rx) = tokio::sync::watch::channel(Progress::default());
    let down = fx
        .transfers
        .download_file(
            "big.bin",
            &fx.url(Method::Get, "big.bin"),
            &dest,
            TransferOptions {
                expected_sha256: Some(expected_sha.to_uppercase()),
                progress: Some(tx),
                ..TransferOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(down.bytes, total);
    assert_eq!(down.sha256.as_deref(), Some(expected_sha.as_str()));
    assert_eq!(
        *rx.borrow(),
        Progress {
            done: total,
            total: Some(total)
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    assert_eq!(listing(out_dir.path()), ["copy.bin"]);
    fx.shutdown().await;
}

#[tokio::test]
async fn object_and_bytes_round_trip() {
    let fx = Fixture::new("object").await;
    let object = Value::dict([
        ("name", Value::from("frame")),
        ("jpeg", Value::Bytes(data(70_000))),
        ("ids", Value::List(vec![Value::from(1), Value::from(2)])),
    ]);
    fx.transfers
        .upload_object("obj", &fx.url(Method::Put, "obj"), &object, with_sha())
        .await
        .unwrap();
    let back = fx
        .transfers
        .download_object(
            "obj",
            &fx.url(Method::Get, "obj"),
            &DecodeLimits::default(),
            TransferOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(back, object);
    // What lands in the store is the pickle a Python peer would `pickle.loads`.
    assert_eq!(
        ecci_proto::pickle::decode(&fx.stored("obj"), &DecodeLimits::default()).unwrap(),
        object
    );

    fx.transfers
        .upload_bytes(
            "raw",
            &fx.url(Method::Put, "raw"),
            "not a pickle".into(),
            with_sha(),
        )
        .await
        .unwrap();
    let err = fx
        .transfers
        .download_object(
            "raw",
            &fx.url(Method::Get, "raw"),
            &DecodeLimits::default(),
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    check_error(&err, "raw", Step::Download, "Decode");
    let err = fx
        .transfers
        .download_bytes(
            "raw",
            &fx.url(Method::Get, "raw"),
            5,
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    check_error(&err, "raw", Step::Download, "TooLarge");
    let (empty, done) = {
        fx.transfers
            .upload_bytes(
                "empty",
                &fx.url(Method::Put, "empty"),
                "".into(),
                with_sha(),
            )
            .await
            .unwrap();
        fx.transfers
            .download_bytes("empty", &fx.url(Method::Get, "empty"), 5, with_sha())
            .await
            .unwrap()
    };
    assert!(empty.is_empty());
    assert_eq!(done.sha256.as_deref(), Some(sha256_hex(b"").as_str()));
    fx.shutdown().await;
}

/// What a download sees when the server misbehaves: each case sets faults on
/// a store holding a 2 MiB object, downloads it, and lists the GETs answered.
#[tokio::test]
async fn downloads_resume_retry_and_restart() {
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        /// Cut the body after this many bytes.
        Cut(u64),
        /// Cut, and ignore the `Range` of the retry.
        CutIgnoringRange(u64),
        /// Cut, and answer the retry's `Range` with another range.
        CutThenMisrange(u64),
        /// Fail this many requests with 500.
        Fail(u32),
    }

    #[track_caller]
    fn check(fault: Fault, gets: &[(bool, u16)], log: &[(String, Option<String>, u16)]) {
        let got: Vec<(bool, u16)> = log
            .iter()
            .filter(|(m, _, _)| m == "GET")
            .map(|(_, range, status)| (range.is_some(), *status))
            .collect();
        assert_eq!(got, gets, "fault {fault:?}, log {log:?}");
    }

    let cases: &[(Fault, &[(bool, u16)])] = &[
        (Fault::Cut(MIB as u64), &[(false, 200), (true, 206)]),
        (Fault::Cut(1), &[(false, 200), (true, 206)]),
        (
            Fault::CutIgnoringRange(MIB as u64),
            &[(false, 200), (true, 200)],
        ),
        (
            Fault::CutThenMisrange(MIB as u64),
            &[(false, 200), (true, 206), (false, 200)],
        ),
        (Fault::Fail(2), &[(false, 500), (false, 500), (false, 200)]),
    ];
    let payload = data(2 * MIB + 7);
    for &(fault, gets) in cases {
        let fx = Fixture::new("resume").await;
        let src = fx.source("src.bin", &payload);
        fx.transfers
            .upload_file(
                "f.bin",
                &fx.url(Method::Put, "f.bin"),
                &src,
                TransferOptions::default(),
            )
            .await
            .unwrap();
        match fault {
            Fault::Cut(n) => fx.store.faults().cut_next_download_after(n),
            Fault::CutIgnoringRange(n) => {
                fx.store.faults().cut_next_download_after(n);
                fx.store.faults().ignore_range(true);
            }
            Fault::CutThenMisrange(n) => {
                fx.store.faults().cut_next_download_after(n);
                fx.store.faults().misrange_next();
            }
            Fault::Fail(n) => fx.store.faults().fail_next(n),
        }
        let dest = fx.work.path().join("out.bin");
        let done = fx
            .transfers
            .download_file(
                "f.bin",
                &fx.url(Method::Get, "f.bin"),
                &dest,
                TransferOptions {
                    expected_sha256: Some(sha256_hex(&payload)),
                    ..TransferOptions::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(done.bytes, payload.len() as u64);
        assert!(std::fs::read(&dest).unwrap() == payload, "fault {fault:?}");
        check(fault, gets, &fx.statuses("f.bin"));
        // The resumed request starts where the kept bytes end, past zero.
        if let Fault::Cut(_) = fault {
            let log = fx.statuses("f.bin");
            let range = log.iter().find_map(|(_, r, _)| r.clone()).unwrap();
            let start: u64 = range
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse().ok())
                .unwrap();
            assert!(start > 0 && start < payload.len() as u64, "{range}");
        }
        assert_eq!(listing(fx.work.path()), ["out.bin", "src.bin"]);
        fx.shutdown().await;
    }
}

#[tokio::test]
async fn uploads_retry_5xx_then_give_up() {
    let fx = Fixture::with_retries("retry", 2).await;
    let payload = data(300_000);
    let src = fx.source("src.bin", &payload);

    fx.store.faults().fail_next(2);
    fx.transfers
        .upload_file("ok.bin", &fx.url(Method::Put, "ok.bin"), &src, with_sha())
        .await
        .unwrap();
    let statuses: Vec<u16> = fx.statuses("ok.bin").iter().map(|s| s.2).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(fx.stored("ok.bin"), payload);

    fx.store.faults().fail_next(3);
    let err = fx
        .transfers
        .upload_file("no.bin", &fx.url(Method::Put, "no.bin"), &src, with_sha())
        .await
        .unwrap_err();
    check_error(&err, "no.bin", Step::Upload, "Status { status: 500 }");
    assert_eq!(
        fx.statuses("no.bin").len(),
        3,
        "one attempt and two retries"
    );

    fx.store.faults().fail_next(3);
    let err = fx
        .transfers
        .download_file(
            "ok.bin",
            &fx.url(Method::Get, "ok.bin"),
            &fx.work.path().join("out.bin"),
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    check_error(&err, "ok.bin", Step::Download, "Status { status: 500 }");
    assert_eq!(
        listing(fx.work.path()),
        ["src.bin"],
        "no temporary file left"
    );
    fx.shutdown().await;
}

#[tokio::test]
async fn refused_urls_are_expired_errors_and_not_retried() {
    let fx = Fixture::new("expired").await;
    let src = fx.source("src.bin", b"payload");
    let put = fx.url(Method::Put, "f");
    fx.transfers
        .upload_file("f", &put, &src, TransferOptions::default())
        .await
        .unwrap();

    fx.store.faults().expire_urls(true);
    let err = fx
        .transfers
        .upload_file("f", &put, &src, TransferOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_expired());
    check_error(&err, "f", Step::Upload, "Expired");
    let err = fx
        .transfers
        .download_bytes(
            "f",
            &fx.url(Method::Get, "f"),
            100,
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_expired());
    check_error(&err, "f", Step::Download, "Expired");
    fx.store.faults().expire_urls(false);

    // A URL signed for another method, object or time is refused the same way.
    let get = fx.url(Method::Get, "f").into_exposed();
    let tampered = [
        fx.url(Method::Put, "f").into_exposed(),
        get.replace("/f?", "/g?"),
        get.replace("expires=", "expires=9"),
        get.replace("signature=", "signature=0"),
        get.split('&').next().unwrap().to_owned(),
    ];
    for url in tampered {
        let err = fx
            .transfers
            .download_bytes(
                "f",
                &PresignedUrl::new(url),
                100,
                TransferOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(err.is_expired(), "{err:?}");
    }
    let refused = fx
        .store
        .requests()
        .iter()
        .filter(|r| r.status == 403)
        .count();
    assert_eq!(refused, 7, "each refusal is a single request");

    // A server that refuses before reading a large body and closes looks like
    // a reset to the client; the refusal is still reported as such.
    let before = fx.store.requests().len();
    fx.store.faults().expire_urls(true);
    fx.store.faults().refuse_early(true);
    let big = fx.source("big.bin", &data(8 * MIB));
    let err = fx
        .transfers
        .upload_file("f", &put, &big, TransferOptions::default())
        .await
        .unwrap_err();
    check_error(&err, "f", Step::Upload, "Expired");
    fx.store.faults().refuse_early(false);
    fx.store.faults().expire_urls(false);
    let requests = fx.store.requests();
    let answers: Vec<_> = requests[before..]
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    // The upload got no answer, then one empty PUT found the refusal.
    assert_eq!(answers, [("PUT", 0), ("PUT", 403)]);
    fx.shutdown().await;
}

#[tokio::test]
async fn names_from_the_network_are_not_paths() {
    #[track_caller]
    fn check(result: Result<(), &'static str>, expected: Result<(), &'static str>) {
        assert_eq!(result, expected);
    }
    let fx = Fixture::new("names").await;
    let get = fx.url(Method::Get, "ok");
    for name in ["..", "../escape", "/etc/passwd", "a/b", "a\\b", "", "C:x"] {
        let result = fx
            .transfers
            .download_into(fx.work.path(), name, &get, TransferOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| {
                check_error(&e, name, Step::Download, "BadName");
                "refused"
            });
        check(result, Err("refused"));
        let presigned = fx.store.presign(Method::Put, BUCKET, name, TTL);
        assert!(matches!(presigned, Err(LocalError::Name(_))), "{name:?}");
        assert!(matches!(
            fx.store.object_path(name, "f"),
            Err(LocalError::Name(_))
        ));
    }
    assert!(fx.store.requests().is_empty(), "refused before any request");

    // The server refuses encoded traversal in the path itself.
    for path in ["/app1/..%2Fx", "/app1/%2E%2E", "/%2E%2E/x", "/app1/a/b"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let status = raw_request(fx.store.addr(), &request).await;
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{path}");
    }

    // A plain name lands in the directory.
    fx.transfers
        .upload_bytes(
            "ok",
            &fx.url(Method::Put, "ok"),
            "x".into(),
            TransferOptions::default(),
        )
        .await
        .unwrap();
    let (dest, _) = fx
        .transfers
        .download_into(fx.work.path(), "ok", &get, TransferOptions::default())
        .await
        .unwrap();
    assert_eq!(dest, fx.work.path().join("ok"));
    fx.shutdown().await;
}

/// Sends a raw HTTP/1.1 request and returns the status line.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn the_store_refuses_chunked_or_unsized_uploads() {
    #[track_caller]
    fn check(status_line: String, expected: &str) {
        assert_eq!(status_line, expected);
    }
    let fx = Fixture::new("chunked").await;
    let url = fx.url(Method::Put, "f").into_exposed();
    let path = url
        .split_once(&fx.store.addr().to_string())
        .unwrap()
        .1
        .to_owned();
    let chunked = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    );
    check(
        raw_request(fx.store.addr(), &chunked).await,
        "HTTP/1.1 411 Length Required",
    );
    let no_length = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    check(
        raw_request(fx.store.addr(), &no_length).await,
        "HTTP/1.1 411 Length Required",
    );
    let short = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nab"
    );
    check(
        raw_request(fx.store.addr(), &short).await,
        "HTTP/1.1 200 OK",
    );
    assert_eq!(fx.stored("f"), b"ab");
    fx.shutdown().await;
}

#[tokio::test]
async fn local_failures_name_the_file_and_step() {
    let fx = Fixture::with_retries("local-errors", 1).await;
    let err = fx
        .transfers
        .upload_file(
            "missing",
            &fx.url(Method::Put, "missing"),
            &fx.work.path().join("missing"),
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    check_error(&err, "missing", Step::Upload, "Io");
    assert_eq!(err.to_string(), "upload of \"missing\" failed");

    fx.transfers
        .upload_bytes(
            "f",
            &fx.url(Method::Put, "f"),
            "abc".into(),
            TransferOptions::default(),
        )
        .await
        .unwrap();
    let err = fx
        .transfers
        .download_file(
            "f",
            &fx.url(Method::Get, "f"),
            &fx.work.path().join("out"),
            TransferOptions {
                expected_sha256: Some(sha256_hex(b"abd")),
                ..TransferOptions::default()
            },
        )
        .await
        .unwrap_err();
    check_error(&err, "f", Step::Download, "Checksum");
    assert!(listing(fx.work.path()).is_empty(), "nothing left behind");

    let err = fx
        .transfers
        .download_bytes(
            "nope",
            &fx.url(Method::Get, "nope"),
            10,
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    check_error(&err, "nope", Step::Download, "Status { status: 404 }");
    fx.shutdown().await;

    // Nothing listens on the port any more: a connection error, retried once.
    let fx = Fixture::with_retries("refused", 1).await;
    let url = fx.url(Method::Get, "f");
    fx.store.shutdown().await.unwrap();
    let err = fx
        .transfers
        .download_bytes("f", &url, 10, TransferOptions::default())
        .await
        .unwrap_err();
    check_error(&err, "f", Step::Download, "Connection { attempts: 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_of_different_names() {
    let fx = std::sync::Arc::new(Fixture::new("concurrent").await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8usize {
        let fx = fx.clone();
        tasks.spawn(async move {
            let name = format!("f{i}.bin");
            let payload = data(MIB / 2 + i * 1000);
            let src = fx.source(&name, &payload);
            let up = fx
                .transfers
                .upload_file(&name, &fx.url(Method::Put, &name), &src, with_sha())
                .await
                .unwrap();
            let dest = fx.work.path().join(format!("{name}.out"));
            fx.transfers
                .download_file(
                    &name,
                    &fx.url(Method::Get, &name),
                    &dest,
                    TransferOptions {
                        expected_sha256: up.sha256,
                        ..TransferOptions::default()
                    },
                )
                .await
                .unwrap();
            assert!(std::fs::read(&dest).unwrap() == payload, "{name}");
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let fx = std::sync::Arc::into_inner(fx).unwrap();
    assert_eq!(fx.store.requests().len(), 16);
    fx.shutdown().await;
}
