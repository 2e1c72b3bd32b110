//! A small client of chromedriver's WebDriver HTTP API: a session with a headless
//! Chromium, navigation, scripts and screenshots. A dozen requests, so a client over
//! tokio's `TcpStream` rather than fantoccini or thirtyfour (each a second HTTP stack and a
//! dozen crates). Shared by the web test and the `web_load` example.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request to 127.0.0.1:`port`, `Connection: close`; the JSON answer.
pub(crate) async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects");
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, length) = loop {
        let n = stream.read(&mut chunk).await.expect("reads");
        assert!(n > 0, "{method} {path}: the connection closed early");
        answer.extend_from_slice(&chunk[..n]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a Content-Length");
            answer.drain(..end + 4);
            break (head, length);
        }
    };
    while answer.len() < length {
        let n = stream.read(&mut chunk).await.expect("reads");
        assert!(n > 0, "{method} {path}: the connection closed early");
        answer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&answer[..length]);
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {head}\n{body}"));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {head}\n{json}"
    );
    json
}

/// A free port on 127.0.0.1 (bound, read back, released).
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    l.local_addr().expect("addr").port()
}

/// A chromedriver with one headless Chromium session.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Driver {
    pub(crate) async fn start(chromium: &str, chromedriver: &str) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver does not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }}}});
        let session = http(port, "POST", "/session", Some(&caps)).await;
        let session = session["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Driver {
            child,
            port,
            session,
        }
    }

    pub(crate) async fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        http(self.port, method, &path, body).await["value"].take()
    }

    /// A PNG of the window.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let png = self.call("GET", "screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a base64 screenshot")
    }

    pub(crate) async fn stop(mut self) {
        let path = format!("/session/{}", self.session);
        http(self.port, "DELETE", &path, None).await;
        let _ = self.child.kill().await;
    }
}
