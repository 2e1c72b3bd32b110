//! `client`: a 20,000 × 100 B QoS 2 burst A→B through a mosquitto the suite starts itself
//! (defaults plus `max_queued_messages 0`, so that the rows measure the sides, not the
//! broker's queue), three ways: the project's raw transport ([`MqttTransport`] to
//! [`MqttTransport`]), the client ([`Client`] to [`Client`]) with end-to-end delivery off,
//! and with it on (issue 15: every message acknowledged by the receiving SDK, at most 256
//! unacknowledged). Sender and receiver are two containers: each side runs on a tokio
//! runtime of its own with 2 workers (what `#[tokio::main]` gives a container on a 2-core
//! machine), never in one task, where each side's work would wait for the other's.
//!
//! The run is 31 rounds (about a second each). Each round runs the three kinds back to
//! back, in an order that rotates from round to round (so that no kind always goes first),
//! and yields two *paired ratios*: e2e off / raw and e2e on / raw of that round. A busy
//! moment of the shared machine then hurts the runs it is compared with, not one row's
//! best. Each row: the best and the median rate (msg/s from the first publish, both sides
//! connected, to the last delivery), the fewest deliveries, the median of its paired ratios
//! with their range, the runs and their spread. Targets, judged on the median paired ratio:
//! e2e off ≥ 95 % of the transport, e2e on ≥ 80 %.
//!
//! For profiling (e.g. `valgrind --tool=callgrind target/release/bench client`),
//! `BENCH_CLIENT_ROUNDS=n` sets the number of rounds and `BENCH_CLIENT_KINDS=raw,off,on`
//! (a subset) the kinds run; a ratio needs the raw kind.

use std::sync::Arc;
use std::time::Duration;

use ecci_client::{Client, ClientOptions, E2eOptions};
use ecci_proto::config::Config;
use ecci_transport::mosquitto::Mosquitto;
use ecci_transport::{Event, Message, MqttTransport, QoS, Transport};
use tokio::time::{Instant, timeout};

use crate::table::{Runs, SPREAD_NOTE, Table, median};

const COUNT: u32 = 20_000;
const ROUNDS: usize = 31;
const LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sides = Sides::new()?;
    rt.block_on(suite(&sides))
}

const KINDS: [(&str, &str, Kind); 3] = [
    ("raw", "transport (raw)", Kind::Transport),
    ("off", "client, e2e off", Kind::Client(false)),
    ("on", "client, e2e on", Kind::Client(true)),
];

/// The rounds and kinds to run: all of them unless the profiling variables say otherwise.
fn selection() -> Result<(usize, Vec<usize>), String> {
    let rounds = match std::env::var("BENCH_CLIENT_ROUNDS") {
        Ok(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(format!("BENCH_CLIENT_ROUNDS={n}: not a positive number"))?,
        Err(_) => ROUNDS,
    };
    let kinds = match std::env::var("BENCH_CLIENT_KINDS") {
        Ok(list) => list
            .split(',')
            .map(|k| {
                KINDS
                    .iter()
                    .position(|(short, _, _)| *short == k.trim())
                    .ok_or(format!(
                        "BENCH_CLIENT_KINDS: unknown kind {k:?} (raw, off, on)"
                    ))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Err(_) => (0..KINDS.len()).collect(),
    };
    Ok((rounds, kinds))
}

async fn suite(sides: &Sides) -> Result<(), String> {
    let (rounds, selected) = selection()?;
    let Some(mut broker) = Mosquitto::prepare() else {
        return Err("no mosquitto binary".into());
    };
    broker.configure("allow_anonymous true\nmax_queued_messages 0\n");
    broker.up();
    let mut rows: Vec<Row> = KINDS.iter().map(|_| Row::default()).collect();
    for round in 0..rounds {
        // Rotated each round: raw, off, on; then off, on, raw; then on, raw, off; …
        let mut rates = [None; KINDS.len()];
        for i in 0..selected.len() {
            let k = selected[(i + round) % selected.len()];
            // A fresh app per burst: the clients' persistent sessions never carry over.
            let (rate, delivered) =
                burst(sides, &broker, KINDS[k].2, round * KINDS.len() + k).await?;
            rows[k].add(rate, delivered);
            rates[k] = Some(rate);
        }
        if let Some(raw) = rates[0].filter(|r| *r > 0.0) {
            for (row, rate) in rows.iter_mut().zip(rates).skip(1) {
                if let Some(rate) = rate {
                    row.ratios.push(rate / raw);
                }
            }
        }
    }
    let mut table = Table::new(&[
        "sender → receiver",
        "msg/s (best)",
        "msg/s (median)",
        "delivered (fewest)",
        "vs raw (median paired, min..max)",
        "runs",
        "spread",
    ]);
    for &k in &selected {
        let (_, name, kind) = KINDS[k];
        let row = &rows[k];
        let target = match kind {
            Kind::Transport => None,
            Kind::Client(false) => Some(0.95),
            Kind::Client(true) => Some(0.80),
        };
        let cell = match (target, median(&row.ratios)) {
            (None, _) => "–".to_owned(),
            (Some(_), None) => "– (no raw run)".to_owned(),
            (Some(t), Some(ratio)) => {
                let min = row.ratios.iter().copied().fold(f64::MAX, f64::min);
                let max = row.ratios.iter().copied().fold(f64::MIN, f64::max);
                let mut cell = format!(
                    "{:.1} % ({:.0}..{:.0} %)",
                    ratio * 100.0,
                    min * 100.0,
                    max * 100.0
                );
                if ratio < t {
                    cell.push_str(&format!(" (MISSED ≥ {:.0} %)", t * 100.0));
                    crate::missed(format!(
                        "client: {name} at {:.1} % of raw (median paired ratio)",
                        ratio * 100.0
                    ));
                }
                cell
            }
        };
        table.row(vec![
            name.into(),
            format!("{:.0}", row.best),
            format!("{:.0}", row.rates.median().unwrap_or(0.0)),
            format!("{}/{COUNT}", row.fewest.unwrap_or(0)),
            cell,
            row.rates.count(),
            row.rates.spread(),
        ]);
    }
    table.print();
    println!(
        "\nEach row: best and median rate and fewest deliveries of {rounds} rounds, each round \
         running the kinds back to back in a rotating order; vs raw: the median over the rounds \
         of the row's rate / the raw transport's rate in the same round (targets are judged on \
         it). {SPREAD_NOTE}"
    );
    Ok(())
}

/// One row's runs: the best rate, the fewest deliveries, every rate for the spread and
/// median, and the paired ratios to the raw transport's rate of the same round.
#[derive(Default)]
struct Row {
    best: f64,
    fewest: Option<u32>,
    rates: Runs,
    ratios: Vec<f64>,
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

/// The two containers of a burst: each side runs on a runtime of its own (2 workers, what
/// `#[tokio::main]` gives a container on this 2-core machine), as separate containers do;
/// the suite's own runtime only starts them and collects the figures.
pub(crate) struct Sides {
    tx: tokio::runtime::Runtime,
    rx: tokio::runtime::Runtime,
}

impl Sides {
    fn new() -> Result<Self, String> {
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        };
        Ok(Sides {
            tx: runtime()?,
            rx: runtime()?,
        })
    }
}

/// The receiving side of a burst, ready: it counts messages until `COUNT` arrived (or
/// nothing came for `LIMIT`) and returns how many and when the last one came.
type Receiving = tokio::task::JoinHandle<Result<(u32, Option<Instant>), String>>;

/// One burst; (msg/s, distinct delivered). The clock runs from the first publish (both
/// sides connected) to the last delivery.
async fn burst(
    sides: &Sides,
    broker: &Mosquitto,
    kind: Kind,
    run: usize,
) -> Result<(f64, u32), String> {
    let port = broker.port();
    let app = format!("bench{}x{run}", std::process::id());
    let (ready_tx, ready) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
    let receiving: Receiving = match kind {
        Kind::Transport => {
            let config = broker.mqtt_config();
            let topic = format!("bench/{app}");
            sides.rx.spawn(async move {
                let rx = MqttTransport::start(config);
                let mut events = rx.take_events().ok_or("events")?;
                rx.subscribe(&topic, QoS::ExactlyOnce)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = ready_tx.send(());
                let (mut n, mut last) = (0, None);
                while n < COUNT {
                    match timeout(LIMIT, events.recv()).await {
                        Ok(Some(Event::Message(_))) => {
                            n += 1;
                            last = Some(Instant::now());
                        }
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
                rx.close().await;
                Ok((n, last))
            })
        }
        Kind::Client(e2e) => {
            let config = config(port, &app, "sink", &[])?;
            sides.rx.spawn(async move {
                let rx = client(config, e2e).await?;
                let _ = ready_tx.send(());
                let (mut n, mut last) = (0, None);
                while n < COUNT {
                    match timeout(LIMIT, rx.recv_data()).await {
                        Ok(Ok(_)) => {
                            n += 1;
                            last = Some(Instant::now());
                        }
                        _ => break,
                    }
                }
                rx.close().await;
                Ok((n, last))
            })
        }
    };
    if ready.await.is_err() {
        // The receiver failed before it was ready: its error says why.
        return Err(receiving
            .await
            .map_err(|e| e.to_string())?
            .err()
            .unwrap_or_else(|| "receiver stopped".into()));
    }
    let sending: tokio::task::JoinHandle<Result<Instant, String>> = match kind {
        Kind::Transport => {
            let config = broker.mqtt_config();
            let topic = format!("bench/{app}");
            sides.tx.spawn(async move {
                let tx = MqttTransport::start(config);
                let mut events = tx.take_events().ok_or("events")?;
                // Connected first, as the client is once `connect` returns.
                loop {
                    match timeout(LIMIT, events.recv()).await {
                        Ok(Some(Event::Connected)) => break,
                        Ok(Some(_)) => {}
                        _ => return Err("raw sender did not connect".into()),
                    }
                }
                let start = Instant::now();
                for i in 0..COUNT {
                    let m = Message::new(topic.clone(), vec![i as u8; 100], QoS::ExactlyOnce);
                    let _ = tx.publish(m).await;
                }
                let _ = done.await;
                tx.close().await;
                Ok(start)
            })
        }
        Kind::Client(e2e) => {
            let config = config(port, &app, "source", &["sink"])?;
            sides.tx.spawn(async move {
                let tx = client(config, e2e).await?;
                let contents = "x".repeat(100);
                let start = Instant::now();
                for _ in 0..COUNT {
                    let _ = tx.publish(&contents, "sink").await;
                }
                let _ = done.await;
                tx.close().await;
                Ok(start)
            })
        }
    };
    let (n, last) = receiving.await.map_err(|e| e.to_string())??;
    let _ = done_tx.send(());
    let start = sending.await.map_err(|e| e.to_string())??;
    let secs = last
        .map_or(0.0, |last| last.duration_since(start).as_secs_f64())
        .max(1e-9);
    Ok((f64::from(n) / secs, n))
}

/// A client connected to the bench's broker, with end-to-end delivery on or off.
async fn client(config: Config, e2e: bool) -> Result<Client, String> {
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
}
