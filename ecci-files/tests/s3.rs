//! The HTTP legs and the SigV4 presigner against a real S3-compatible server.
//!
//! Runs when `ECCI_TEST_S3` names an endpoint (`http://127.0.0.1:PORT`), with
//! `ECCI_TEST_S3_ACCESS_KEY`, `ECCI_TEST_S3_SECRET_KEY`, `ECCI_TEST_S3_BUCKET`
//! (an existing bucket) and optionally `ECCI_TEST_S3_REGION` (default
//! `us-east-1`); `.ci/start-s3.sh` starts such a server and prints them. When
//! `ECCI_TEST_S3` is unset the test says `skipped: …` on stderr and does nothing, unless
//! `ECCI_REQUIRE_SERVICES=1`, when it fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ecci_files::sigv4::{Credentials, Method, S3Presigner};
use ecci_files::{
    BackoffConfig, PresignedUrl, RetryConfig, TransferConfig, TransferOptions, Transfers,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: usize = 1024 * 1024;

struct S3 {
    endpoint: String,
    bucket: String,
    region: String,
    credentials: Credentials,
}

/// The server from the environment; `None` when there is none and none is required.
fn s3_from_env() -> Option<S3> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("ECCI_TEST_S3") else {
        ecci_transport::skip::missing(
            "ECCI_REQUIRE_SERVICES",
            "ECCI_TEST_S3 unset (start an S3 server with .ci/start-s3.sh)",
        );
        return None;
    };
    let need =
        |name: &str| var(name).unwrap_or_else(|| panic!("ECCI_TEST_S3 is set but {name} is not"));
    Some(S3 {
        endpoint,
        bucket: need("ECCI_TEST_S3_BUCKET"),
        region: var("ECCI_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        credentials: Credentials::new(
            need("ECCI_TEST_S3_ACCESS_KEY"),
            need("ECCI_TEST_S3_SECRET_KEY"),
        ),
    })
}

impl S3 {
    fn presigner(&self, endpoint: &str) -> S3Presigner {
        S3Presigner::new(endpoint, self.region.clone(), self.credentials.clone()).unwrap()
    }

    fn addr(&self) -> SocketAddr {
        let authority = self
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        authority.parse().expect("ECCI_TEST_S3 is http://IP:PORT")
    }
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
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

fn transfers() -> Transfers {
    Transfers::new(TransferConfig {
        retry: RetryConfig {
            max_retries: 3,
            backoff: BackoffConfig {
                initial: Duration::ZERO,
                ..BackoffConfig::default()
            },
        },
        ..TransferConfig::default()
    })
    .unwrap()
}

/// A unique object name per run, so reruns against one server do not collide.
fn object_name(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ecci-test-{tag}-{}-{nanos}.bin", std::process::id())
}

/// A raw ranged GET: status, `Content-Range` and body.
async fn ranged_get(
    addr: SocketAddr,
    url: &PresignedUrl,
    range: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let target = url.expose().splitn(4, '/').nth(3).unwrap();
    let request = format!(
        "GET /{target} HTTP/1.1\r\nHost: {addr}\r\nRange: {range}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = answer[split + 4..].to_vec();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_range = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-range")
            .then(|| value.trim().to_owned())
    });
    (status, content_range, body)
}

/// A TCP relay to `upstream` that cuts its first connection's answer after
/// `cut` bytes and relays later connections whole. The URLs are presigned
/// for the relay's address, so the `Host` the server sees is the one signed.
struct CuttingRelay {
    addr: SocketAddr,
    /// The first bytes each connection sent (the request head of a GET).
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingRelay {
    async fn start(upstream: SocketAddr, cut: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            let mut first = true;
            while let Ok((client, _)) = listener.accept().await {
                let limit = if first { Some(cut) } else { None };
                first = false;
                connections.spawn(relay(client, upstream, limit, seen.clone()));
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }
}

impl CuttingRelay {
    /// Stops accepting and closes the relays (aborting the accept loop drops
    /// its JoinSet, which aborts them), then waits for the loop.
    async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    limit: Option<usize>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upload = async move {
        let mut head = vec![0; 16 * 1024];
        let n = client_read.read(&mut head).await.unwrap_or(0);
        requests
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&head[..n]).to_ascii_lowercase());
        if server_write.write_all(&head[..n]).await.is_err() {
            return;
        }
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let download = async move {
        let mut buf = vec![0; 64 * 1024];
        let mut sent = 0;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = limit.map_or(n, |l| n.min(l - sent));
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
            if limit.is_some_and(|l| sent >= l) {
                break;
            }
        }
    };
    // The cut side ends the relay; the client sees the connection close.
    tokio::select! {
        () = upload => {}
        () = download => {}
    }
}

#[tokio::test]
async fn presigned_round_trips_against_a_real_s3_server() {
    let Some(s3) = s3_from_env() else { return };
    let presigner = s3.presigner(&s3.endpoint);
    let transfers = transfers();
    let ttl = Duration::from_secs(600);
    let scratch = tempfile::Builder::new()
        .prefix("ecci-s3-")
        .tempdir()
        .unwrap();

    // A multi-MiB file, up and down, with checksums on both legs.
    let name = object_name("file");
    let payload = data(5 * MIB + 321, 7);
    let src = scratch.path().join("src.bin");
    std::fs::write(&src, &payload).unwrap();
    let put = presigner
        .presign(Method::Put, &s3.bucket, &name, ttl)
        .unwrap();
    let up = transfers
        .upload_file(
            &name,
            &put,
            &src,
            TransferOptions {
                sha256: true,
                ..TransferOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(up.sha256.as_deref(), Some(sha256_hex(&payload).as_str()));
    let get = presigner
        .presign(Method::Get, &s3.bucket, &name, ttl)
        .unwrap();
    let dest = scratch.path().join("dest.bin");
    let down = transfers
        .download_file(
            &name,
            &get,
            &dest,
            TransferOptions {
                expected_sha256: up.sha256.clone(),
                ..TransferOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(down.bytes, payload.len() as u64);
    assert!(std::fs::read(&dest).unwrap() == payload);

    // The server's Range answers are what the resume logic expects.
    let total = payload.len();
    let (status, content_range, body) = ranged_get(s3.addr(), &get, "bytes=1000-").await;
    assert_eq!(status, 206);
    assert_eq!(
        content_range,
        Some(format!("bytes 1000-{}/{total}", total - 1))
    );
    assert!(body == payload[1000..]);
    let (status, _, body) = ranged_get(s3.addr(), &get, "bytes=10-19").await;
    assert_eq!((status, body.as_slice()), (206, &payload[10..20]));

    // An interrupted download resumes with Range against the real server.
    let relay = CuttingRelay::start(s3.addr(), 2 * MIB).await;
    let via_relay = s3.presigner(&format!("http://{}", relay.addr));
    let get_relayed = via_relay
        .presign(Method::Get, &s3.bucket, &name, ttl)
        .unwrap();
    let resumed = scratch.path().join("resumed.bin");
    transfers
        .download_file(
            &name,
            &get_relayed,
            &resumed,
            TransferOptions {
                expected_sha256: up.sha256.clone(),
                ..TransferOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(std::fs::read(&resumed).unwrap() == payload);
    let requests = relay.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        2,
        "one cut connection, one resumed: {requests:?}"
    );
    assert!(!requests[0].contains("\r\nrange:"), "{}", requests[0]);
    let start: usize = requests[1]
        .split("\r\nrange: bytes=")
        .nth(1)
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .expect("the second request resumes with a Range");
    assert!(start > 0 && start <= 2 * MIB, "resumed at {start}");
    relay.shutdown().await;

    // An in-memory object.
    let object_key = object_name("object");
    let object = ecci_proto::pickle::Value::dict([(
        "frame",
        ecci_proto::pickle::Value::Bytes(data(MIB, 3)),
    )]);
    let put = presigner
        .presign(Method::Put, &s3.bucket, &object_key, ttl)
        .unwrap();
    transfers
        .upload_object(&object_key, &put, &object, TransferOptions::default())
        .await
        .unwrap();
    let get = presigner
        .presign(Method::Get, &s3.bucket, &object_key, ttl)
        .unwrap();
    let back = transfers
        .download_object(
            &object_key,
            &get,
            &Default::default(),
            TransferOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(back, object);

    // Expired and tampered URLs are refused, as expired errors.
    let long_ago = SystemTime::now() - Duration::from_secs(7200);
    let expired = presigner
        .presign_at(
            Method::Get,
            &s3.bucket,
            &name,
            Duration::from_secs(60),
            long_ago,
        )
        .unwrap();
    let good = presigner
        .presign(Method::Get, &s3.bucket, &name, ttl)
        .unwrap()
        .into_exposed();
    let (head, signature) = good.rsplit_once('=').unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let tampered_signature = format!("{head}={flipped}{}", &signature[1..]);
    let other_object = good.replacen(&name, &object_key, 1);
    let put_as_get = presigner
        .presign(Method::Put, &s3.bucket, &name, ttl)
        .unwrap();
    for (what, url) in [
        ("expired", expired),
        ("tampered signature", PresignedUrl::new(tampered_signature)),
        ("other object", PresignedUrl::new(other_object)),
        ("PUT URL used for GET", put_as_get),
    ] {
        let err = transfers
            .download_bytes(&name, &url, u64::MAX, TransferOptions::default())
            .await
            .unwrap_err();
        assert!(err.is_expired(), "{what}: {err:?}");
    }
    let wrong_secret = S3Presigner::new(
        &s3.endpoint,
        s3.region.clone(),
        Credentials::new(s3.credentials.access_key.clone(), "not-the-secret"),
    )
    .unwrap();
    let forged = wrong_secret
        .presign(Method::Put, &s3.bucket, &name, ttl)
        .unwrap();
    let err = transfers
        .upload_bytes(
            &name,
            &forged,
            data(4 * MIB, 9).into(),
            TransferOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_expired(), "forged PUT: {err:?}");
    // The forged PUT did not land.
    let get = presigner
        .presign(Method::Get, &s3.bucket, &name, ttl)
        .unwrap();
    let (bytes, _) = transfers
        .download_bytes(&name, &get, u64::MAX, TransferOptions::default())
        .await
        .unwrap();
    assert!(bytes == payload);
}
