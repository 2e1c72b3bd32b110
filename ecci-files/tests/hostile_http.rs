//! Downloads from a hostile HTTP server (raw TCP on 127.0.0.1, in the test):
//! a `Content-Length` over the cap, a body longer than its `Content-Length`,
//! an endless body, a server that ignores `Range`, one that trickles bytes,
//! one that redirects to another port, and one whose object cannot fit on
//! the disk. Each case must end with a clear error within the configured
//! limits, with at most the cap written and no temporary file left.

mod common;

use common::TempDir;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecci_files::{
    BackoffConfig, ErrorKind, PresignedUrl, Progress, RetryConfig, TransferConfig, TransferError,
    TransferOptions, Transfers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// The download cap of these tests.
const CAP: u64 = 4 * MIB;
/// The stall timeout of these tests.
const STALL: Duration = Duration::from_secs(2);

/// How the server answers one request (`ranged`: it carried a `Range`).
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// `200`, `Content-Length: claimed`, then `sent` bytes, then close.
    Lie { claimed: u64, sent: u64 },
    /// `200`, `Content-Length: claimed` and chunked, then `sent` bytes in
    /// chunks: a body longer than its `Content-Length`.
    ChunkedLie { claimed: u64, sent: u64 },
    /// `200`, chunked, never ending.
    Endless,
    /// `200` with the whole object for every request, `Range` or not; the
    /// connection drops after half of it.
    IgnoreRange { len: u64 },
    /// `200`, `Content-Length: len`, one byte every `every`.
    Trickle { len: u64, every: Duration },
    /// Reads the request and never answers.
    Silent,
    /// `302` to `http://127.0.0.1:port/elsewhere?X-Amz-Signature=secret`.
    Redirect { port: u16 },
}

/// A hostile server: counts requests and the body bytes it sent.
struct Hostile {
    port: u16,
    requests: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Hostile {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (r, s) = (Arc::clone(&requests), Arc::clone(&sent));
        // The connections belong to the accepting task: aborting it (on drop)
        // aborts them too.
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (r, s) = (Arc::clone(&r), Arc::clone(&s));
                connections.spawn(async move {
                    let _ = serve(stream, behaviour, &r, &s).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            port,
            requests,
            sent,
            task,
        }
    }

    fn url(&self) -> PresignedUrl {
        PresignedUrl::new(format!(
            "http://127.0.0.1:{}/app1/obj?X-Amz-Signature=secret",
            self.port
        ))
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request's head; true when it carried a `Range`.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<bool> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("\r\nrange:"))
}

/// Writes `n` (≤ 64 KiB) body bytes and counts them.
async fn body(stream: &mut TcpStream, sent: &AtomicU64, n: u64) -> std::io::Result<()> {
    static BLOCK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
    sent.fetch_add(n, Ordering::SeqCst);
    stream.write_all(&BLOCK[..n as usize]).await
}

async fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    requests: &AtomicU64,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    let _ranged = read_head(&mut stream).await?;
    requests.fetch_add(1, Ordering::SeqCst);
    match behaviour {
        Behaviour::Lie { claimed, sent: len } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let mut left = len;
            while left > 0 {
                let n = left.min(64 * KIB);
                body(&mut stream, sent, n).await?;
                left -= n;
            }
        }
        Behaviour::ChunkedLie { claimed, sent: len } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {claimed}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let mut left = len;
            while left > 0 {
                let n = left.min(64 * KIB);
                stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                body(&mut stream, sent, n).await?;
                stream.write_all(b"\r\n").await?;
                left -= n;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Behaviour::Endless => {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            loop {
                stream.write_all(b"10000\r\n").await?;
                body(&mut stream, sent, 64 * KIB).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
        Behaviour::IgnoreRange { len } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let mut left = len / 2;
            while left > 0 {
                let n = left.min(64 * KIB);
                body(&mut stream, sent, n).await?;
                left -= n;
            }
            stream.flush().await?;
            // Drop the connection in the middle of the body.
        }
        Behaviour::Trickle { len, every } => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            for _ in 0..len {
                body(&mut stream, sent, 1).await?;
                stream.flush().await?;
                tokio::time::sleep(every).await;
            }
        }
        Behaviour::Silent => std::future::pending().await,
        Behaviour::Redirect { port } => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/elsewhere?X-Amz-Signature=secret\r\nContent-Length: 0\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}

fn transfers(max_download: u64) -> Transfers {
    Transfers::new(TransferConfig {
        retry: RetryConfig {
            max_retries: 5,
            backoff: BackoffConfig {
                initial: Duration::from_millis(10),
                ..RetryConfig::default().backoff
            },
        },
        max_download,
        stall_timeout: STALL,
        stall_min_bytes: 64 * KIB,
        ..TransferConfig::default()
    })
    .unwrap()
}

/// What a failed download did.
struct Outcome {
    error: TransferError,
    /// The most bytes the download ever held (its progress).
    written: u64,
    elapsed: Duration,
}

/// Downloads `url` into a fresh directory with `transfers`; the download must
/// fail and leave the directory empty.
async fn fail(tag: &str, transfers: &Transfers, url: &PresignedUrl) -> Outcome {
    let dir = TempDir::new(tag);
    let (tx, mut rx) = watch::channel(Progress::default());
    let most = tokio::spawn(async move {
        let mut most = 0;
        while rx.changed().await.is_ok() {
            most = most.max(rx.borrow_and_update().done);
        }
        most
    });
    let started = Instant::now();
    let options = TransferOptions {
        progress: Some(tx),
        ..TransferOptions::default()
    };
    let result = transfers
        .download_file("obj.bin", url, &dir.path().join("obj.bin"), options)
        .await;
    let elapsed = started.elapsed();
    let error = result.expect_err("the hostile download must fail");
    let written = most.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{tag}: files left behind: {left:?}");
    let shown = format!("{error}: {}", error.kind());
    assert!(shown.contains("\"obj.bin\""), "{tag}: {shown}");
    assert!(
        !shown.contains("secret"),
        "{tag}: the signature leaked: {shown}"
    );
    report(tag, &error, written, elapsed);
    Outcome {
        error,
        written,
        elapsed,
    }
}

#[expect(clippy::print_stderr, reason = "the figures are reported")]
fn report(tag: &str, error: &TransferError, written: u64, elapsed: Duration) {
    eprintln!(
        "{tag}: {error}: {}; {written} bytes written; error after {elapsed:?}",
        error.kind()
    );
}

#[tokio::test]
async fn content_length_over_the_cap_is_refused_before_writing() {
    let server = Hostile::start(Behaviour::Lie {
        claimed: 10 << 30,
        sent: 8 * MIB,
    })
    .await;
    let out = fail("over-cap", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::TooLarge { max } if *max == CAP),
        "{:?}",
        out.error
    );
    assert_eq!(out.written, 0);
    assert_eq!(server.requests(), 1, "refused without retrying");
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_cut_at_it() {
    // HTTP/1.1 framing ends the body at the Content-Length: the extra bytes
    // are never read as the object's and never reach the disk (a body that
    // goes past a size announced otherwise, by a `Content-Range`, is
    // `ErrorKind::TooLong`; a sender's SHA-256 catches a wrong object).
    let server = Hostile::start(Behaviour::Lie {
        claimed: MIB,
        sent: 3 * MIB,
    })
    .await;
    let transfers = transfers(CAP);
    let dir = TempDir::new("longer");
    let dest = dir.path().join("obj.bin");
    let result = transfers
        .download_file("obj.bin", &server.url(), &dest, TransferOptions::default())
        .await;
    match result {
        // The framing cut it: exactly the announced bytes, nothing more.
        Ok(done) => {
            assert_eq!(done.bytes, MIB);
            assert_eq!(std::fs::metadata(&dest).unwrap().len(), MIB);
        }
        Err(e) => panic!("unexpected error {e}: {}", e.kind()),
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["obj.bin"], "only the object is left");
}

#[tokio::test]
async fn a_chunked_body_longer_than_its_content_length_is_an_error() {
    let server = Hostile::start(Behaviour::ChunkedLie {
        claimed: MIB,
        sent: 3 * MIB,
    })
    .await;
    let out = fail("chunked-longer", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::TooLong { expected } if *expected == MIB),
        "{:?}",
        out.error
    );
    assert!(out.written <= MIB, "{} bytes written", out.written);
}

#[tokio::test]
async fn an_endless_body_stops_at_the_cap() {
    let server = Hostile::start(Behaviour::Endless).await;
    let out = fail("endless", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::TooLarge { max } if *max == CAP),
        "{:?}",
        out.error
    );
    assert!(out.written <= CAP, "{} bytes written", out.written);
    assert_eq!(server.requests(), 1, "not retried");
}

#[tokio::test]
async fn a_server_that_ignores_range_is_restarted_once() {
    let len = 2 * MIB;
    let server = Hostile::start(Behaviour::IgnoreRange { len }).await;
    let out = fail("ignore-range", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::RangeIgnored { restarts: 1 }),
        "{:?}",
        out.error
    );
    assert!(out.written <= len / 2, "{} bytes written", out.written);
    // The first answer, the one restarted from zero, and the one refused.
    assert_eq!(server.requests(), 3);
    assert!(server.sent.load(Ordering::SeqCst) <= 3 * len / 2);
}

#[tokio::test]
async fn a_trickle_fails_at_the_stall_deadline() {
    let server = Hostile::start(Behaviour::Trickle {
        len: MIB,
        every: Duration::from_millis(50),
    })
    .await;
    let out = fail("trickle", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::Stalled { after, .. } if *after == STALL),
        "{:?}",
        out.error
    );
    assert!(out.written < 64 * KIB, "{} bytes written", out.written);
    assert!(out.elapsed >= STALL, "failed early: {:?}", out.elapsed);
    assert!(
        out.elapsed < STALL * 5,
        "failed long after the deadline: {:?}",
        out.elapsed
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_stall_deadline() {
    let server = Hostile::start(Behaviour::Silent).await;
    let out = fail("silent", &transfers(CAP), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::Stalled { received: 0, .. }),
        "{:?}",
        out.error
    );
    assert_eq!(out.written, 0);
    assert!(out.elapsed >= STALL, "failed early: {:?}", out.elapsed);
    assert!(
        out.elapsed < STALL * 5,
        "failed long after the deadline: {:?}",
        out.elapsed
    );
}

#[tokio::test]
async fn a_redirect_to_another_port_is_not_followed() {
    let target = Hostile::start(Behaviour::Endless).await;
    let server = Hostile::start(Behaviour::Redirect { port: target.port }).await;
    let out = fail("redirect", &transfers(CAP), &server.url()).await;
    let expected = format!("http://127.0.0.1:{}", target.port);
    assert!(
        matches!(out.error.kind(), ErrorKind::Redirect { status: 302, origin } if *origin == expected),
        "{:?}",
        out.error
    );
    assert_eq!(out.written, 0);
    assert_eq!(target.requests(), 0, "the redirect target was contacted");
}

#[tokio::test]
async fn an_upload_is_not_redirected_either() {
    let target = Hostile::start(Behaviour::Endless).await;
    let server = Hostile::start(Behaviour::Redirect { port: target.port }).await;
    let err = transfers(CAP)
        .upload_bytes(
            "obj.bin",
            &server.url(),
            bytes::Bytes::from_static(b"payload"),
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Redirect { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(target.requests(), 0, "the redirect target was contacted");
}

#[tokio::test]
async fn an_upload_to_a_server_that_stops_reading_fails_at_the_stall_deadline() {
    let server = Hostile::start(Behaviour::Silent).await;
    // More than the loopback socket buffers hold, so that the body must wait.
    let body = bytes::Bytes::from(vec![b'x'; 64 * MIB as usize]);
    let started = Instant::now();
    let err = transfers(CAP)
        .upload_bytes("obj.bin", &server.url(), body, TransferOptions::default())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    report("upload-silent", &err, 0, elapsed);
    assert!(
        matches!(err.kind(), ErrorKind::Stalled { received, .. } if *received < 64 * MIB),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "upload of \"obj.bin\" failed");
    assert!(elapsed >= STALL, "failed early: {elapsed:?}");
    assert!(
        elapsed < STALL * 5,
        "failed long after the deadline: {elapsed:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn an_object_larger_than_the_free_space_is_refused_before_writing() {
    let server = Hostile::start(Behaviour::Lie {
        claimed: 1 << 60,
        sent: MIB,
    })
    .await;
    let out = fail("no-space", &transfers(u64::MAX), &server.url()).await;
    assert!(
        matches!(out.error.kind(), ErrorKind::NoSpace { needed, .. } if *needed == 1 << 60),
        "{:?}",
        out.error
    );
    assert_eq!(out.written, 0);
}
