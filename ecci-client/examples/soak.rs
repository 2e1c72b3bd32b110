//! The soak test (`cargo xtask soak [--minutes N]`, not in CI): one client sends numbered
//! data messages to another through the facade, 1,000 per second, over a mosquitto this
//! program starts and restarts (SIGTERM, then up again) every 30 seconds. Every 30 seconds it
//! prints a line: messages sent, delivered, duplicated, still missing, and the process's
//! resident memory; at the end, after a grace period for the last messages, the totals.
//! Exits with failure when a message was lost.
//!
//! The receiver has a persistent session (see `tests/mosquitto_faults.rs` for why); the
//! broker runs with `persistence true`.
//!
//! Options: `--minutes N` (default 10), `--rate N` messages per second (default 1000),
//! `--restart-every S` seconds (default 30), `--crash`: the broker is SIGKILLed instead
//! (it loses what it had not saved), and both clients use end-to-end delivery
//! (`E2eOptions::enabled`): every message must be acknowledged by the receiver
//! (`Delivery::delivered` is `Received`), none lost, none duplicated, and the resident
//! memory at the last report at most 16 MiB above the first.
#![expect(clippy::print_stdout, reason = "a command-line program that reports")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ecci_client::{Client, ClientOptions};
use ecci_proto::config::Config;
use ecci_transport::MqttTransport;
use ecci_transport::mosquitto::Mosquitto;
use tokio::sync::{Mutex, mpsc};

struct Options {
    minutes: f64,
    rate: u32,
    restart_every: Duration,
    crash: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        minutes: 10.0,
        rate: 1_000,
        restart_every: Duration::from_secs(30),
        crash: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .and_then(|v| {
                    v.parse::<f64>()
                        .map_err(|_| format!("{name}: {v:?} is not a number"))
                })
        };
        match arg.as_str() {
            "--crash" => o.crash = true,
            "--minutes" => o.minutes = value("--minutes")?,
            "--rate" => o.rate = value("--rate")? as u32,
            "--restart-every" => {
                o.restart_every = Duration::from_secs_f64(value("--restart-every")?)
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.rate == 0 || o.minutes <= 0.0 {
        return Err("--rate and --minutes must be positive".into());
    }
    Ok(o)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn config(port: u16, me: &str, targets: &[&str]) -> Config {
    let mut b = Config::builder(
        "127.0.0.1",
        "b1".parse().expect("name"),
        "soak".parse().expect("name"),
        me.parse().expect("name"),
    )
    .port(port);
    for t in targets {
        b = b.pub_target(t.parse().expect("name"), "b1".parse().expect("name"));
    }
    b.build().expect("config")
}

async fn client(broker: &Mosquitto, config: Config, persistent: bool, e2e: bool) -> Client {
    let mut mqtt = broker.mqtt_config();
    mqtt.clean_session = !persistent;
    let mut options = ClientOptions::default();
    options.e2e.enabled = e2e;
    Client::builder(config)
        .transport(Arc::new(MqttTransport::start(mqtt)))
        .options(options)
        .connect()
        .await
        .expect("connect")
}

/// What the receiver saw, in memory that does not grow with the run: every number
/// below `below` has arrived, and `above` holds the ones that arrived ahead of a gap
/// (at most the in-flight window), so the reported RSS is the SDK's alone.
#[derive(Default)]
struct Seen {
    below: u64,
    above: BTreeSet<u64>,
    delivered: u64,
    duplicates: u64,
}

impl Seen {
    fn record(&mut self, n: u64) {
        if n < self.below || !self.above.insert(n) {
            self.duplicates += 1;
            return;
        }
        self.delivered += 1;
        while self.above.remove(&self.below) {
            self.below += 1;
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            println!("soak: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let Some(mut broker) = Mosquitto::start() else {
        println!("soak: no mosquitto binary found (install the mosquitto package)");
        return std::process::ExitCode::FAILURE;
    };
    println!(
        "soak: {} msg/s for {} min, mosquitto on port {} {} every {:?}",
        o.rate,
        o.minutes,
        broker.port(),
        if o.crash {
            "killed (SIGKILL; end-to-end delivery on)"
        } else {
            "restarted"
        },
        o.restart_every
    );
    let receiver = client(&broker, config(broker.port(), "sink", &[]), true, o.crash).await;
    let sender = client(
        &broker,
        config(broker.port(), "source", &["sink"]),
        false,
        o.crash,
    )
    .await;

    let sent = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let run_for = Duration::from_secs_f64(o.minutes * 60.0);

    let (delivery_tx, mut delivery_rx) = mpsc::channel(1 << 20);
    let producer = {
        let sender = sender.clone();
        let sent = Arc::clone(&sent);
        let rate = o.rate;
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            let mut n = 0u64;
            while start.elapsed() < run_for {
                tick.tick().await;
                let delivery = sender.publish(&n, "sink").await.expect("publish");
                sent.store(n + 1, Ordering::Relaxed);
                n += 1;
                if delivery_tx.send(delivery).await.is_err() {
                    break;
                }
            }
        })
    };
    let crash = o.crash;
    let acknowledger = tokio::spawn(async move {
        let mut failed = 0u64;
        while let Some(d) = delivery_rx.recv().await {
            let ok = if crash {
                // End to end: the receiving container has it.
                matches!(d.delivered().await, Ok(ecci_client::Confirmation::Received))
            } else {
                d.await.is_ok()
            };
            if !ok {
                failed += 1;
            }
        }
        failed
    });
    let consumer = {
        let receiver = receiver.clone();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok(m) = receiver.recv_data().await {
                match m.decode::<u64>() {
                    Ok(n) => seen.lock().await.record(n),
                    Err(e) => println!("soak: undecodable message: {e}"),
                }
            }
        })
    };

    let started = Instant::now();
    let report = |label: &str, seen: &Seen, sent: u64| {
        println!(
            "{label:>6}  sent {sent:>8}  delivered {:>8}  duplicates {:>5}  missing {:>6}  rss {:>6.1} MiB",
            seen.delivered,
            seen.duplicates,
            sent.saturating_sub(seen.delivered),
            rss_mib()
        );
    };
    let mut rss = Vec::new();
    let mut restarts = 0;
    while started.elapsed() < run_for {
        tokio::time::sleep(
            o.restart_every
                .min(run_for.saturating_sub(started.elapsed())),
        )
        .await;
        if started.elapsed() >= run_for {
            break;
        }
        report(
            &format!("{:.0}s", started.elapsed().as_secs_f64()),
            &*seen.lock().await,
            sent.load(Ordering::Relaxed),
        );
        rss.push(rss_mib());
        if o.crash {
            broker.kill();
        } else {
            broker.down().await;
        }
        broker.up();
        restarts += 1;
    }
    producer.await.expect("producer");
    let failed = acknowledger.await.expect("acknowledger");
    let total = sent.load(Ordering::Relaxed);
    // The last messages: wait until all arrived, at most a minute.
    let grace = Instant::now();
    while seen.lock().await.delivered < total && grace.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().await;
    report("end", &seen, total);
    let lost = total - seen.delivered;
    println!(
        "soak: {restarts} broker restarts; sent {total}, delivered {}, lost {lost}, duplicated {}, \
         deliveries failed {failed}; rss at the reports (MiB): {:?}",
        seen.delivered,
        seen.duplicates,
        rss.iter()
            .map(|r| (r * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    let seen_duplicates = if o.crash { seen.duplicates } else { 0 };
    drop(seen);
    sender.close().await;
    receiver.close().await;
    consumer.abort();
    let grew = match (rss.first(), rss.last()) {
        (Some(first), Some(last)) if o.crash => last - first,
        _ => 0.0,
    };
    if grew > 16.0 {
        println!("soak: resident memory grew by {grew:.1} MiB");
    }
    if lost == 0 && failed == 0 && seen_duplicates == 0 && grew <= 16.0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
