//! `ecci dev`'s web view in a real browser: headless Chromium driven over chromedriver's
//! WebDriver HTTP API (a few requests, so a small client here rather than a WebDriver crate).
//!
//! The test starts `ecci dev`, runs the quickstart's three containers against it
//! (`cargo run -p examples --example quickstart -- --platform …`), loads the page, and
//! asserts that the graph shows the controller and both components as started, the file
//! transfer at 100 % and a log record; the screenshot is saved as
//! `target/tmp/ecci-web/ecci-dev.png`. It reads `ECCI_CHROMIUM` and `ECCI_CHROMEDRIVER`
//! (set by `.ci/install-chromium.sh`); without them it says `skipped: …` on stderr, or fails
//! when `ECCI_REQUIRE_SERVICES` is set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

mod webdriver;
use webdriver::Driver;

const ECCI: &str = env!("CARGO_BIN_EXE_ecci");
const WAIT: Duration = Duration::from_secs(30);

/// Chromium and chromedriver, from the environment; `None` (after saying why) to skip.
fn browser() -> Option<(String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("ECCI_CHROMIUM"), get("ECCI_CHROMEDRIVER")) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            let why = "ECCI_CHROMIUM or ECCI_CHROMEDRIVER unset (run .ci/install-chromium.sh)";
            assert!(
                std::env::var_os("ECCI_REQUIRE_SERVICES").is_none(),
                "ECCI_REQUIRE_SERVICES is set but {why}"
            );
            #[expect(clippy::print_stderr, reason = "a skipped test says so")]
            {
                eprintln!("skipped: {why}");
            }
            None
        }
    }
}

/// What the page shows, read from its DOM.
const READ_PAGE: &str = r##"
const nodes = [...document.querySelectorAll("#graph .node")].map((g) => ({
  name: g.dataset.name, role: g.dataset.role, state: g.dataset.state,
  started: g.dataset.started === "true", text: g.textContent }));
const files = [...document.querySelectorAll("#files tbody tr")].map((r) => ({
  name: r.dataset.file, percent: Number(r.dataset.percent), text: r.textContent }));
const logs = [...document.querySelectorAll("#logs tbody tr")].map((r) => r.textContent);
const edges = document.querySelectorAll("#graph .edge").length;
const errors = [...document.querySelectorAll("#errors tbody tr")].map((r) => r.textContent);
return { status: document.getElementById("status").dataset.status, nodes, files, logs, edges, errors };
"##;

/// Whether `page` shows the quickstart's app: three containers started, the file delivered
/// and a log record.
fn shows_the_app(page: &Value) -> bool {
    let started = |name: &str, role: &str| {
        page["nodes"].as_array().is_some_and(|nodes| {
            nodes.iter().any(|n| {
                n["name"] == name
                    && n["role"] == role
                    && n["started"] == true
                    && n["text"].as_str().is_some_and(|t| t.contains("started"))
            })
        })
    };
    let delivered = page["files"].as_array().is_some_and(|files| {
        files
            .iter()
            .any(|f| f["name"] == "frames.bin" && f["percent"] == 100)
    });
    let logged = page["logs"].as_array().is_some_and(|logs| {
        logs.iter().any(|l| {
            l.as_str()
                .is_some_and(|l| l.contains("started by the controller"))
        })
    });
    page["status"] == "live"
        && started("ctrl", "controller")
        && started("worker1", "component")
        && started("worker2", "component")
        && delivered
        && logged
        && page["edges"].as_u64().is_some_and(|n| n >= 4)
}

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ecci-web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_quickstart_app() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let mut dev = Command::new(ECCI)
        .args(["dev", "--web-port", "0"])
        .env_remove("ECCI_APP_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ecci dev starts");
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let (mut page, mut broker_port) = (None, None);
    while page.is_none() || broker_port.is_none() {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("ecci dev prints its header")
            .expect("reads")
            .expect("a header line");
        if let Some(url) = line.strip_prefix("# Live web view: ") {
            page = Some(url.to_owned());
        }
        if let Some(port) = line.strip_prefix("export ECCI_LOCAL_BROKER_PORT=") {
            broker_port = Some(port.to_owned());
        }
    }
    let (page, broker_port) = (page.expect("url"), broker_port.expect("port"));
    // The terminal view keeps printing: read it so the pipe never fills.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The quickstart's containers against `ecci dev` (app demo, broker id local).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let quickstart = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "run",
            "-q",
            "-p",
            "examples",
            "--example",
            "quickstart",
            "--",
        ])
        .args(["--platform", &format!("127.0.0.1:{broker_port}")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let quickstart = tokio::time::timeout(Duration::from_secs(600), quickstart)
        .await
        .expect("the quickstart ends in time")
        .expect("the quickstart runs");
    assert!(
        quickstart.status.success(),
        "quickstart: {}\n{}\n{}",
        quickstart.status,
        String::from_utf8_lossy(&quickstart.stdout),
        String::from_utf8_lossy(&quickstart.stderr)
    );

    let driver = Driver::start(&chromium, &chromedriver).await;
    driver
        .call("POST", "url", Some(&json!({ "url": page })))
        .await;
    let script = json!({ "script": READ_PAGE, "args": [] });
    let deadline = Instant::now() + WAIT;
    let shown = loop {
        let shown = driver.call("POST", "execute/sync", Some(&script)).await;
        if shows_the_app(&shown) || Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let png = driver.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::create_dir_all(out_dir()).expect("output dir");
    let shot = out_dir().join("ecci-dev.png");
    std::fs::write(&shot, &png).expect("screenshot saved");
    driver.stop().await;
    assert!(
        shows_the_app(&shown),
        "the page ({page}) does not show the app; it shows {shown:#}; screenshot {}",
        shot.display()
    );

    // On a local broker the quickstart loses and repeats nothing, and every fileManager
    // URL is the local store's: no gap, duplicate or foreign-URL event.
    let false_alarms: Vec<&str> = shown["errors"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(Value::as_str)
                .filter(|r| {
                    r.contains("lost ")
                        || r.contains("duplicate from")
                        || r.contains("warning: the res")
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(false_alarms.is_empty(), "{false_alarms:#?}");

    let pid = dev.id().expect("running").to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().await;
    assert!(status.expect("kill runs").success());
    let status = tokio::time::timeout(WAIT, dev.wait()).await;
    assert!(status.expect("exits in time").expect("status").success());
    drain.await.expect("drained");
}

/// Starts `ecci dev` with `args`; the child and its header up to the `export` of the port
/// (the rest of its output is read and dropped until it exits).
async fn dev(args: &[&str]) -> (tokio::process::Child, Vec<String>) {
    let mut dev = Command::new(ECCI)
        .arg("dev")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ecci dev starts");
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let mut header = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("ecci dev prints its header")
            .expect("reads")
            .expect("a header line");
        let done = line.starts_with("export ECCI_LOCAL_BROKER_PORT=");
        header.push(line);
        if done {
            // Keep reading: `ecci dev` ends (and its page with it) when its stdout closes,
            // and the rest of its header is still to come.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (dev, header);
        }
    }
}

/// The raw answer to `request` sent to `addr`, read until `until` appears in it (or the
/// connection closes).
async fn raw(addr: &str, request: &str, until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut chunk).await.expect("reads");
            answer.extend_from_slice(&chunk[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains(until) {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("answers in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_server_answers_page_state_and_events() {
    let (mut child, header) = dev(&["--web-port", "0"]).await;
    let page = header
        .iter()
        .find_map(|l| l.strip_prefix("# Live web view: http://"))
        .expect("the page's address is printed");
    let addr = page.trim_end_matches('/');
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

    let index = raw(addr, &get("/"), "</html>").await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("<script src=\"/app.js\">"), "{index}");
    let js = raw(addr, &get("/app.js"), "onmessage").await;
    assert!(js.contains("text/javascript"), "{js}");
    let state = raw(addr, &get("/state"), "\"total\"").await;
    let body = state.split_once("\r\n\r\n").expect("a body").1;
    let json: Value = serde_json::from_str(body).expect("JSON state");
    assert_eq!(json["containers"], json!([]));
    // Server-sent events: the current snapshot at once.
    let events = raw(addr, &get("/events"), "\n\n").await;
    assert!(events.contains("text/event-stream"), "{events}");
    assert!(events.contains("\r\ndata: {\"containers\":[]"), "{events}");
    let missing = raw(addr, &get("/nothing"), "not found").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let post = "POST /state HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let refused = raw(addr, post, "only GET").await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");
    child.kill().await.expect("killed");

    let (mut child, header) = dev(&["--no-web"]).await;
    assert!(
        !header.iter().any(|l| l.contains("web view")),
        "{header:#?}"
    );
    child.kill().await.expect("killed");
}
