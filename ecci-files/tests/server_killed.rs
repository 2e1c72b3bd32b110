//! The object store really stopped mid-transfer (its listener closed and its
//! connections dropped, as a crashed server), then either restarted on the same
//! port, where the transfer resumes or is retried and completes, or left down,
//! where it fails within the retry budget naming the file and the step and
//! leaves no file, whole or partial, behind.
//!
//! The kill point is made deterministic by the store's stall switches: the
//! transfer hangs after a known number of bytes and the store is stopped
//! then; nothing waits on a clock.

mod common;

use common::TempDir;

use std::path::Path;
use std::time::Duration;

use ecci_files::local::LocalStore;
use ecci_files::sigv4::Method;
use ecci_files::{
    BackoffConfig, ErrorKind, RetryConfig, Step, TransferConfig, TransferError, TransferOptions,
    Transferred, Transfers,
};

const BUCKET: &str = "app1";
const TTL: Duration = Duration::from_secs(3600);
const MIB: usize = 1024 * 1024;
/// The longest any step may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A client retrying `max_retries` times, `backoff` apart.
fn transfers(max_retries: u32, backoff: Duration) -> Transfers {
    Transfers::new(TransferConfig {
        retry: RetryConfig {
            max_retries,
            backoff: BackoffConfig {
                initial: backoff,
                max: backoff,
                ..BackoffConfig::default()
            },
        },
        ..TransferConfig::default()
    })
    .unwrap()
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// The store's life after the kill.
#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    Restart,
    StayDown,
}

/// Starts `transfer`, stops the store once it stalled, then restarts it or
/// not, and returns the transfer's outcome.
async fn kill_during(
    store: &mut LocalStore,
    after: After,
    transfer: impl Future<Output = Result<Transferred, TransferError>> + Send + 'static,
) -> Result<Transferred, TransferError> {
    let task = tokio::spawn(transfer);
    bounded("the stall", store.faults().stalled()).await;
    let port = store.addr().port();
    store.stop().await.unwrap();
    if after == After::Restart {
        store.restart().await.unwrap();
        assert_eq!(store.addr().port(), port, "restarted on the same port");
    }
    bounded("the transfer's end", task).await.unwrap()
}

#[track_caller]
fn check_failure(
    result: Result<Transferred, TransferError>,
    file: &str,
    step: Step,
    attempts: u32,
) {
    let err = result.expect_err("the transfer fails with the store down");
    assert_eq!(err.file(), file);
    assert_eq!(err.step(), step);
    assert_eq!(err.to_string(), format!("{step} of {file:?} failed"));
    match err.kind() {
        ErrorKind::Connection { attempts: a, .. } => assert_eq!(*a, attempts, "{err:?}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    let chain = format!("{err:?}");
    assert!(!chain.contains("signature="), "URL leaked: {chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_resumes_with_range_after_the_store_restarts() {
    let root = TempDir::new("dl-restart-store");
    let out = TempDir::new("dl-restart-out");
    let mut store = LocalStore::start(root.path()).await.unwrap();
    let payload = data(8 * MIB + 77);
    let object = store.object_path(BUCKET, "big.bin").unwrap();
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, &payload).unwrap();
    let stall_at = 3 * MIB as u64;
    store.faults().stall_next_download_after(stall_at);

    let url = store.presign(Method::Get, BUCKET, "big.bin", TTL).unwrap();
    let dest = out.path().join("big.bin");
    let client = transfers(10, Duration::from_millis(20));
    let (d, options) = (dest.clone(), TransferOptions::default());
    let done = kill_during(&mut store, After::Restart, async move {
        client.download_file("big.bin", &url, &d, options).await
    })
    .await
    .expect("the download completes after the restart");

    assert_eq!(done.bytes, payload.len() as u64);
    assert!(
        std::fs::read(&dest).unwrap() == payload,
        "the file is whole"
    );
    assert_eq!(listing(out.path()), ["big.bin"], "no temporary file left");
    let gets: Vec<_> = store
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| (r.range, r.status))
        .collect();
    assert_eq!(
        gets,
        [(None, 200), (Some(format!("bytes={stall_at}-")), 206)],
        "resumed after the bytes received before the kill"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_fails_clearly_when_the_store_stays_down() {
    let root = TempDir::new("dl-down-store");
    let out = TempDir::new("dl-down-out");
    let mut store = LocalStore::start(root.path()).await.unwrap();
    let object = store.object_path(BUCKET, "big.bin").unwrap();
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, data(8 * MIB)).unwrap();
    store.faults().stall_next_download_after(MIB as u64);

    let url = store.presign(Method::Get, BUCKET, "big.bin", TTL).unwrap();
    let dest = out.path().join("big.bin");
    let client = transfers(3, Duration::from_millis(10));
    let d = dest.clone();
    let result = kill_during(&mut store, After::StayDown, async move {
        client
            .download_file("big.bin", &url, &d, TransferOptions::default())
            .await
    })
    .await;

    // The interrupted attempt had made progress, which resets the count: then
    // 1 + 3 refused connections.
    check_failure(result, "big.bin", Step::Download, 4);
    assert!(!dest.exists(), "nothing at the destination");
    assert!(listing(out.path()).is_empty(), "no temporary file left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_is_retried_and_completes_after_the_store_restarts() {
    let root = TempDir::new("up-restart-store");
    let work = TempDir::new("up-restart-src");
    let mut store = LocalStore::start(root.path()).await.unwrap();
    let payload = data(8 * MIB + 5);
    let src = work.path().join("big.bin");
    std::fs::write(&src, &payload).unwrap();
    store.faults().stall_next_upload_after(2 * MIB as u64);

    let url = store.presign(Method::Put, BUCKET, "big.bin", TTL).unwrap();
    let client = transfers(10, Duration::from_millis(20));
    let options = TransferOptions {
        sha256: true,
        ..TransferOptions::default()
    };
    let done = kill_during(&mut store, After::Restart, async move {
        client.upload_file("big.bin", &url, &src, options).await
    })
    .await
    .expect("the upload completes after the restart");

    assert_eq!(done.bytes, payload.len() as u64);
    let object = store.object_path(BUCKET, "big.bin").unwrap();
    assert!(
        std::fs::read(&object).unwrap() == payload,
        "the object is whole"
    );
    let bucket = object.parent().unwrap();
    assert_eq!(listing(bucket), ["big.bin"], "no temporary upload left");
    let last_put = store
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(last_put.status, 200);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_fails_clearly_when_the_store_stays_down() {
    let root = TempDir::new("up-down-store");
    let work = TempDir::new("up-down-src");
    let mut store = LocalStore::start(root.path()).await.unwrap();
    let src = work.path().join("big.bin");
    std::fs::write(&src, data(8 * MIB)).unwrap();
    store.faults().stall_next_upload_after(MIB as u64);

    let url = store.presign(Method::Put, BUCKET, "big.bin", TTL).unwrap();
    let client = transfers(2, Duration::from_millis(10));
    let result = kill_during(&mut store, After::StayDown, async move {
        client
            .upload_file("big.bin", &url, &src, TransferOptions::default())
            .await
    })
    .await;

    check_failure(result, "big.bin", Step::Upload, 3);
    let object = store.object_path(BUCKET, "big.bin").unwrap();
    assert!(!object.exists(), "no object, whole or partial");
    assert!(
        listing(object.parent().unwrap()).is_empty(),
        "no temporary upload left in the store"
    );
}
