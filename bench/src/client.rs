//! `client`: a 5,000 × 100 B QoS 2 burst A→B through a mosquitto the suite starts itself
//! (defaults plus `max_queued_messages 0`, so that the rows measure the sender, not the
//! broker's queue), three ways in the same run: the project's raw transport
//! ([`MqttTransport`] to [`MqttTransport`]), the client ([`Client`] to [`Client`]) with
//! end-to-end delivery off, and with it on (issue 15: every message acknowledged by the
//! receiving SDK, at most 256 unacknowledged). The three kinds run interleaved, 5 runs each,
//! so that load on a shared machine falls on all rows alike. Each row: the best rate (msg/s
//! over the time from the first publish to the last delivery), the fewest deliveries, the
//! ratio of the best rate to the raw transport's best, and the spread of the runs. Targets:
//! e2e off ≥ 95 % of the transport, e2e on ≥ 80 %.

use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, ClientOptions, E2eOptions};
use ecci_proto::config::Config;
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{Event, Message, MqttTransport, QoS, Transport};
use tokio::time::{Instant, timeout};

use crate::table::{Runs, SPREAD_NOTE, Table};

const COUNT: u32 = 5_000;
const RUNS: usize = 5;
const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(suite())
}

async fn suite() -> Result<(), String> {
    let Some(mut broker) = Mosquitto::prepare() else {
        return Err("no mosquitto binary".into());
    };
    broker.configure("allow_anonymous true\nmax_queued_messages 0\n");
    broker.up();
    let kinds = [
        ("transport (raw)", Kind::Transport),
        ("client, e2e off", Kind::Client(false)),
        ("client, e2e on", Kind::Client(true)),
    ];
    // Interleaved (raw, off, on, raw, off, on, …) so that a busy moment of the shared
    // machine hurts every row alike rather than one row's runs.
    let mut rows: Vec<Row> = kinds.iter().map(|_| Row::default()).collect();
    for run in 0..RUNS {
        for ((_, kind), row) in kinds.iter().zip(&mut rows) {
            let (rate, delivered) = burst(&broker, *kind, run).await?;
            row.add(rate, delivered);
        }
    }
    let raw = rows[0].best.max(1.0);
    let mut table = Table::new(&[
        "sender → receiver",
        "msg/s (best)",
        "delivered (fewest)",
        "vs raw",
        "runs",
        "spread",
    ]);
    for ((name, kind), row) in kinds.iter().zip(&rows) {
        let ratio = row.best / raw;
        let target = match kind {
            Kind::Transport => None,
            Kind::Client(false) => Some(0.95),
            Kind::Client(true) => Some(0.80),
        };
        let mut cell = format!("{:.0} %", ratio * 100.0);
        if let Some(t) = target {
            if ratio < t {
                cell.push_str(&format!(" (MISSED ≥ {:.0} %)", t * 100.0));
                crate::missed(format!("client: {name} at {:.0} % of raw", ratio * 100.0));
            }
        }
        table.row(vec![
            (*name).into(),
            format!("{:.0}", row.best),
            format!("{}/{COUNT}", row.fewest.unwrap_or(0)),
            cell,
            row.rates.count(),
            row.rates.spread(),
        ]);
    }
    table.print();
    println!(
        "\nEach row: best rate and fewest deliveries of {RUNS} runs, the kinds interleaved; \
         vs raw: best against best. {SPREAD_NOTE}"
    );
    Ok(())
}

/// One row's runs: the best rate, the fewest deliveries, every rate for the spread.
#[derive(Default)]
struct Row {
    best: f64,
    fewest: Option<u32>,
    rates: Runs,
}

impl Row {
    fn add(&mut self, rate: f64, delivered: u32) {
        self.fewest = Some(self.fewest.map_or(delivered, |f| f.min(delivered)));
        self.best = self.best.max(rate);
        self.rates.push(rate);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Transport,
    /// With end-to-end delivery on or off.
    Client(bool),
}

fn config(port: u16, app: &str, me: &str, targets: &[&str]) -> Result<Config, String> {
    fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
        s.parse().map_err(|e| format!("{s}: {e}"))
    }
    let mut b = Config::builder("127.0.0.1", parse("b1")?, parse(app)?, parse(me)?).port(port);
    for t in targets {
        b = b.pub_target(parse(t)?, parse("b1")?);
    }
    b.build().map_err(|e| e.to_string())
}

/// One burst; (msg/s, distinct delivered).
async fn burst(broker: &Mosquitto, kind: Kind, run: usize) -> Result<(f64, u32), String> {
    let port = broker.port();
    let app = format!("bench{}x{run}", std::process::id());
    match kind {
        Kind::Transport => {
            let rx = MqttTransport::start(broker.mqtt_config());
            let mut events = rx.take_events().ok_or("events")?;
            let topic = format!("bench/{app}");
            rx.subscribe(&topic, QoS::ExactlyOnce)
                .await
                .map_err(|e| e.to_string())?;
            let tx = MqttTransport::start(broker.mqtt_config());
            let start = Instant::now();
            let sender = async {
                for i in 0..COUNT {
                    let m = Message::new(topic.clone(), vec![i as u8; 100], QoS::ExactlyOnce);
                    let _ = tx.publish(m).await;
                }
            };
            let receiver = async {
                let mut n = 0;
                while n < COUNT {
                    match timeout(LIMIT, events.recv()).await {
                        Ok(Some(Event::Message(_))) => n += 1,
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
                n
            };
            let ((), n) = tokio::join!(sender, receiver);
            let secs = start.elapsed().as_secs_f64();
            tx.close().await;
            rx.close().await;
            Ok((f64::from(n) / secs, n))
        }
        Kind::Client(e2e) => {
            let client = |config: Config| async {
                let transport: Arc<dyn Transport> =
                    Arc::new(MqttTransport::start(ecci_client::mqtt_config(&config)));
                let options = ClientOptions {
                    e2e: E2eOptions {
                        enabled: e2e,
                        ..E2eOptions::default()
                    },
                    ..ClientOptions::default()
                };
                Client::builder(config)
                    .transport(transport)
                    .options(options)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())
            };
            let rx = client(config(port, &app, "sink", &[])?).await?;
            let tx = client(config(port, &app, "source", &["sink"])?).await?;
            let contents = "x".repeat(100);
            let start = Instant::now();
            let sender = async {
                for _ in 0..COUNT {
                    let _ = tx.publish(&contents, "sink").await;
                }
            };
            let receiver = async {
                let mut n = 0;
                while n < COUNT {
                    match timeout(LIMIT, rx.recv_data()).await {
                        Ok(Ok(_)) => n += 1,
                        _ => break,
                    }
                }
                n
            };
            let ((), n) = tokio::join!(sender, receiver);
            let secs = start.elapsed().as_secs_f64();
            tx.close().await;
            rx.close().await;
            Ok((f64::from(n) / secs, n))
        }
    }
}
