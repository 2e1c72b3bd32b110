//! Measures `ecci dev`'s web view under load: 20 containers sending 1,000 messages a
//! second in all, the page open in headless Chromium. Prints the page's update latency
//! (from a message's publication to the page showing it), its update rate, its JS heap and
//! render time, and `ecci dev`'s resident memory.
//!
//! ```text
//! cargo build -p ecci-cli && cargo run -p ecci-cli --example web_load -- [SECONDS]
//! ```
//!
//! Needs `ECCI_CHROMIUM` and `ECCI_CHROMEDRIVER` (`eval "$(bash .ci/install-chromium.sh)"`).
#![expect(clippy::print_stdout, reason = "an example prints its measurements")]

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecci_proto::envelope::Envelope;
use ecci_proto::pickle::{Protocol, Value};
use ecci_transport::{Message, MqttConfig, MqttTransport, QoS, Transport};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[path = "../tests/webdriver/mod.rs"]
mod webdriver;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CONTAINERS: usize = 20;
const RATE: u64 = 1000;

/// Installed in the page: records, at every update, how old the newest message it shows is.
const HOOK: &str = r#"
window.__lat = []; window.__updates = 0;
const original = window.render;
window.render = (s) => {
  original(s);
  window.__updates += 1;
  let newest = 0;
  for (const e of s.edges) for (const m of e.latest) {
    const t = /'t': (\d+)/.exec(m.repr); if (t) newest = Math.max(newest, Number(t[1]));
  }
  if (newest) window.__lat.push(Date.now() - newest);
  if (window.__lat.length > 100000) window.__lat.shift();
};
return true;
"#;

const READ: &str = r#"
const lat = [...window.__lat].sort((a, b) => a - b);
const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : -1;
return { n: lat.length, updates: window.__updates, p50: q(0.5), p95: q(0.95), max: q(1),
  heap: performance.memory ? performance.memory.usedJSHeapSize : -1,
  render_ms: Number(document.body.dataset.renderedMs || -1),
  nodes: document.getElementsByTagName("*").length };
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(20), |s| s.parse())?;
    let chromium = std::env::var("ECCI_CHROMIUM").map_err(|_| "ECCI_CHROMIUM unset")?;
    let chromedriver = std::env::var("ECCI_CHROMEDRIVER").map_err(|_| "ECCI_CHROMEDRIVER unset")?;
    // target/<profile>/examples/web_load → target/<profile>/ecci
    let ecci = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .ok_or("no target directory")?
        .join("ecci");
    let mut dev = Command::new(&ecci)
        .args(["dev", "--web-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e} (cargo build -p ecci-cli first)", ecci.display()))?;
    let mut lines = BufReader::new(dev.stdout.take().ok_or("stdout")?).lines();
    let (mut page, mut port) = (None, None);
    while page.is_none() || port.is_none() {
        let line = lines.next_line().await?.ok_or("ecci dev ended")?;
        if let Some(url) = line.strip_prefix("# Live web view: ") {
            page = Some(url.to_owned());
        }
        if let Some(p) = line.strip_prefix("export ECCI_LOCAL_BROKER_PORT=") {
            port = Some(p.parse::<u16>()?);
        }
    }
    let (page, port) = (page.ok_or("url")?, port.ok_or("port")?);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let driver = webdriver::Driver::start(&chromium, &chromedriver).await;
    driver
        .call("POST", "url", Some(&json!({ "url": page })))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hook = json!({ "script": HOOK, "args": [] });
    driver.call("POST", "execute/sync", Some(&hook)).await;

    // 20 containers in a ring, each sending 50 messages a second to the next.
    let transport = MqttTransport::start(MqttConfig::new("127.0.0.1", port));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let blob = Value::Bytes(vec![7u8; 1024]);
    let total = seconds * RATE;
    let (mut sent, mut refused) = (0u64, 0u64);
    for i in 0..total {
        tick.tick().await;
        let from = usize::try_from(i).unwrap_or(0) % CONTAINERS;
        let to = (from + 1) % CONTAINERS;
        let contents = Value::dict([("t", Value::from(now_ms())), ("frame", blob.clone())]);
        let payload = Envelope::data(contents).to_pickle(Protocol::default());
        let topic = format!("ECCI/local/demo/app/c{from:02}/c{to:02}");
        match transport.try_publish(Message::new(topic, payload, QoS::AtMostOnce)) {
            Ok(_) => sent += 1,
            Err(_) => refused += 1,
        }
    }
    let read = json!({ "script": READ, "args": [] });
    let read = driver.call("POST", "execute/sync", Some(&read)).await;
    let rss = dev.id().map_or(0, rss_kib);
    let shot = std::env::temp_dir().join("ecci-web-load.png");
    std::fs::write(&shot, driver.screenshot().await)?;
    driver.stop().await;
    transport.close().await;
    let _ = dev.kill().await;

    println!(
        "web view under load: {CONTAINERS} containers, {RATE} msg/s for {seconds} s ({sent} sent, {refused} refused by the queue)"
    );
    let updates = read["updates"].as_f64().unwrap_or(0.0);
    println!(
        "  page updates: {updates} ({:.1}/s)",
        updates / seconds as f64
    );
    println!(
        "  update latency (publish → shown): p50 {} ms, p95 {} ms, max {} ms over {} updates",
        read["p50"], read["p95"], read["max"], read["n"]
    );
    println!(
        "  page JS heap: {:.1} MiB, last render {} ms, {} DOM elements",
        read["heap"].as_f64().unwrap_or(-1.0) / 1_048_576.0,
        read["render_ms"],
        read["nodes"]
    );
    println!("  ecci dev resident memory: {:.1} MiB", rss as f64 / 1024.0);
    println!("  screenshot: {}", shot.display());
    Ok(())
}
