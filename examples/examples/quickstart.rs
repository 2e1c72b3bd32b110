//! The whole ECCI flow in one process, with nothing installed:
//!
//! ```text
//! cargo run -p examples --example quickstart
//! ```
//!
//! It starts what the platform would provide — an MQTT broker (the embedded
//! one) and a fileManager (the local one, objects in a temporary directory) —
//! and a view of what the platform receives. Then three containers run as
//! tasks, each with its own MQTT connection and its own logger, exactly as
//! they would in separate containers:
//!
//! 1. `ctrl`, a global controller, and `worker1`, `worker2`, its components,
//!    go through the readiness handshake;
//! 2. the controller sends each worker a task (the target `worker` selects
//!    both by prefix), the workers answer;
//! 3. the controller sends `worker1` a file through the fileManager, with a
//!    progress bar; `worker1` downloads it and confirms;
//! 4. the controller reports the period to the platform and sends `exit`.
//!
//! Every log record and readiness report is printed as the platform receives
//! it, and a summary at the end. It exits 0 when everything arrived.
//!
//! With `--platform HOST:PORT [--app APP] [--broker-id B]` the three
//! containers run against a platform already running there instead (for
//! example `ecci dev`, whose `export` lines give the three values; defaults
//! `demo` and `local`, as `ecci dev`'s) and nothing is started:
//!
//! ```text
//! cargo run -p examples --example quickstart -- --platform 127.0.0.1:41883
//! ```
#![expect(clippy::print_stdout, reason = "an example shows what happens")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ecci_client::{Client, Targets};
use ecci_files::local::LocalFileManager;
use ecci_logger::{Connection, EcciLogger, LoggerConfig, LoggerGuard};
use ecci_proto::config::{AppType, Config, ContainerType};
use ecci_proto::platform::{LogRecord, ReadyReport};
use ecci_proto::{AppId, BrokerId, ContainerName};
use ecci_transport::broker::Broker;
use ecci_transport::{Event, MqttConfig, MqttTransport, QoS, Transport};
use serde::{Deserialize, Serialize};

/// Every wait in the quickstart gives up after this long.
const WAIT: Duration = Duration::from_secs(30);
/// The size of the file the controller sends.
const FILE_SIZE: usize = 24 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A task the controller hands a worker.
#[derive(Debug, Serialize, Deserialize)]
struct Task {
    id: u32,
    numbers: Vec<i64>,
}

/// What a worker answers.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Sum { id: u32, sum: i64 },
    GotFile { name: String, bytes: u64 },
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let work_dir = tempfile::Builder::new()
        .prefix("ecci-quickstart-")
        .tempdir()?;
    let platform = Platform::from_args(std::env::args().skip(1))?;
    let outcome = run(work_dir.path(), platform).await;
    work_dir.close()?;
    let summary = outcome?;
    println!();
    println!("summary ({:.1} s)", started.elapsed().as_secs_f64());
    println!("  handshake: ctrl and 2 workers started");
    println!(
        "  messages: 2 tasks out, {} answers back, commands start and exit",
        summary.answers
    );
    println!(
        "  file: {} MiB sent to worker1 and verified",
        FILE_SIZE >> 20
    );
    println!(
        "  platform received {} log records and {} readiness reports",
        summary.logs, summary.reports
    );
    Ok(())
}

/// What the run saw, for the summary.
struct Summary {
    answers: usize,
    logs: usize,
    reports: usize,
}

/// Where the platform is: started here (the default), or given with `--platform`.
enum Platform {
    Embedded,
    Running {
        host: String,
        port: u16,
        app: AppId,
        broker_id: BrokerId,
    },
}

impl Platform {
    fn from_args(mut args: impl Iterator<Item = String>) -> Result<Platform, BoxError> {
        let (mut at, mut app, mut broker_id) = (None, "demo".to_owned(), "local".to_owned());
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--platform" => at = Some(value("--platform")?),
                "--app" => app = value("--app")?,
                "--broker-id" => broker_id = value("--broker-id")?,
                other => {
                    return Err(format!(
                        "unexpected argument {other:?} (usage: quickstart [--platform HOST:PORT [--app APP] [--broker-id B]])"
                    )
                    .into());
                }
            }
        }
        let Some(at) = at else {
            return Ok(Platform::Embedded);
        };
        let (host, port) = at
            .rsplit_once(':')
            .ok_or(format!("--platform {at:?}: not HOST:PORT"))?;
        Ok(Platform::Running {
            host: host.to_owned(),
            port: port
                .parse()
                .map_err(|_| format!("--platform {at:?}: {port:?} is not a port number"))?,
            app: app.parse().map_err(|e| format!("--app {app:?}: {e}"))?,
            broker_id: broker_id
                .parse()
                .map_err(|e| format!("--broker-id {broker_id:?}: {e}"))?,
        })
    }
}

async fn run(work_dir: &Path, platform: Platform) -> Result<Summary, BoxError> {
    // --- What the platform provides: a broker and a fileManager. ---
    let (mut broker, file_manager, host, port, app, broker_id) = match platform {
        Platform::Embedded => {
            let broker = Broker::start().await?;
            let port = broker.port();
            let app: AppId = "quickstart".parse()?;
            let broker_id: BrokerId = "local".parse()?;
            println!("platform  embedded MQTT broker on 127.0.0.1:{port}, broker id {broker_id}");
            let file_manager = LocalFileManager::start_local(
                Arc::new(MqttTransport::start(MqttConfig::new("127.0.0.1", port))),
                app.clone(),
                broker_id.clone(),
                work_dir.join("objects"),
            )
            .await?;
            println!(
                "platform  fileManager keeping objects in {}",
                work_dir.join("objects").display()
            );
            let host = "127.0.0.1".to_owned();
            (Some(broker), Some(file_manager), host, port, app, broker_id)
        }
        Platform::Running {
            host,
            port,
            app,
            broker_id,
        } => {
            println!("platform  running on {host}:{port}: app {app}, broker id {broker_id}");
            (None, None, host, port, app, broker_id)
        }
    };
    let view = PlatformView::start(&host, port).await?;

    // --- Three containers, each configured as its ECCI_* variables would. ---
    let ctrl_config = Config::builder(&*host, broker_id.clone(), app.clone(), name("ctrl"))
        .port(port)
        .app_type(AppType::Controller)
        .container_type(ContainerType::Cloud)
        .pub_target(name("worker1"), broker_id.clone())
        .pub_target(name("worker2"), broker_id.clone())
        .build()?;
    let worker_config = |me: &str| {
        Config::builder(&*host, broker_id.clone(), app.clone(), name(me))
            .port(port)
            .app_type(AppType::Component)
            .container_type(ContainerType::Cloud)
            .controller(name("ctrl"), broker_id.clone())
            .pub_target(name("ctrl"), broker_id.clone())
            .build()
    };
    let configs = [
        ctrl_config,
        worker_config("worker1")?,
        worker_config("worker2")?,
    ];
    let guards = install_loggers(&configs, &host, port)?;
    let [ctrl_config, w1_config, w2_config] = configs;

    let ctrl = Client::connect(ctrl_config).await?;
    let workers = [
        tokio::spawn(worker(
            Client::connect(w1_config).await?,
            work_dir.join("worker1"),
        )),
        tokio::spawn(worker(
            Client::connect(w2_config).await?,
            work_dir.join("worker2"),
        )),
    ];
    let answers = controller(&ctrl, work_dir).await?;
    for w in workers {
        w.await??;
    }
    ctrl.close().await;

    // --- Shut down: flush the loggers, then the platform. ---
    let shipped = tokio::task::spawn_blocking(move || {
        let mut shipped = 0;
        for guard in guards {
            guard.flush()?;
            shipped += guard.stats().acknowledged;
            guard.shutdown()?;
        }
        Ok::<_, ecci_logger::FlushError>(shipped)
    })
    .await??;
    let (logs, reports) = view.finish(shipped).await?;
    if let Some(file_manager) = file_manager {
        file_manager.shutdown().await?;
    }
    if let Some(broker) = broker.as_mut() {
        broker.stop().await;
    }
    Ok(Summary {
        answers,
        logs,
        reports,
    })
}

/// The controller: waits for its components, hands out work, sends a file,
/// reports to the platform and tells everyone to exit. Returns how many
/// answers came back.
async fn controller(ctrl: &Client, work_dir: &Path) -> Result<usize, BoxError> {
    log::info!(target: "ctrl", "waiting for worker1 and worker2");
    ctrl.wait_started(WAIT).await?;
    log::info!(target: "ctrl", "all components ready: the app started");

    for (id, worker) in [(1u32, "worker1"), (2, "worker2")] {
        let task = Task {
            id,
            numbers: (1..=10 * i64::from(id)).collect(),
        };
        // `delivered()`: the worker's SDK acknowledged it end to end (on by default
        // between Rust containers); awaiting the `Delivery` itself means "the broker has it".
        let confirmed = ctrl.publish(&task, worker).await?.delivered().await?;
        println!("ctrl      task {id} to {worker}: {confirmed:?}");
    }
    let mut answers = 0;
    while answers < 2 {
        let answer = tokio::time::timeout(WAIT, ctrl.recv_data()).await??;
        if let Answer::Sum { id, sum } = answer.decode()? {
            println!("ctrl      {} answered task {id}: {sum}", answer.sender());
            answers += 1;
        }
    }

    // A file through the fileManager: reqPutURL, PUT, reqTransfer, and the
    // worker gets a presigned GET URL.
    let path = work_dir.join("frames.bin");
    std::fs::write(&path, pattern(FILE_SIZE))?;
    let send = ctrl.files().send_file(&path, "frames.bin", "worker1")?;
    let mut progress = send.progress();
    let bar = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow().upload;
            let total = p.total.unwrap_or(FILE_SIZE as u64);
            if p.done < total {
                draw_bar(p.done, total);
            }
        }
    });
    let sent = send.await?;
    bar.abort();
    draw_bar(sent.bytes, sent.bytes);
    println!();
    log::info!(target: "ctrl", "sent {} ({} bytes) to worker1", sent.file_name, sent.bytes);
    loop {
        let answer = tokio::time::timeout(WAIT, ctrl.recv_data()).await??;
        if let Answer::GotFile { name, bytes } = answer.decode()? {
            println!(
                "ctrl      {} confirmed {name}: {bytes} bytes",
                answer.sender()
            );
            break;
        }
    }

    ctrl.send_complete("period-1").await?.await?;
    ctrl.send_data(&BTreeMap::from([("tasks", 2), ("files", 1)]), "quickstart")
        .await?
        .await?;
    ctrl.publish_cmd("exit", Targets::All).await?.await?;
    log::warn!(target: "ctrl", "asked every component to exit");
    Ok(answers)
}

/// A component: announces itself, waits for `start`, answers its task,
/// downloads a file if one comes, and stops on `exit`.
async fn worker(client: Client, download_dir: PathBuf) -> Result<(), BoxError> {
    let me = client.name().to_string();
    client.wait_started(WAIT).await?;
    log::info!(target: &me, "started by the controller");

    let task = tokio::time::timeout(WAIT, client.recv_data()).await??;
    let Task { id, numbers } = task.decode()?;
    let sum = numbers.iter().sum();
    log::info!(target: &me, "task {id}: summed {} numbers", numbers.len());
    client
        .publish(&Answer::Sum { id, sum }, Targets::exact(task.sender()))
        .await?
        .await?;

    if me == "worker1" {
        let offer = tokio::time::timeout(WAIT, client.files().next_offer()).await??;
        std::fs::create_dir_all(&download_dir)?;
        let path = offer.download_into(&download_dir).await?;
        let bytes = std::fs::read(&path)?;
        if bytes != pattern(FILE_SIZE) {
            return Err(format!("{} arrived corrupted", offer.file_name).into());
        }
        // The offer comes from the fileManager; the answer goes to the controller.
        log::info!(target: &me, "downloaded {} through the {}", offer.file_name, offer.sender);
        let answer = Answer::GotFile {
            name: offer.file_name.clone(),
            bytes: bytes.len() as u64,
        };
        client.publish(&answer, "ctrl").await?.await?;
    }

    tokio::time::timeout(WAIT, client.exit_requested()).await??;
    log::info!(target: &me, "exit requested: bye");
    client.close().await;
    Ok(())
}

/// Deterministic file contents, so the receiver can check every byte.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Draws the progress bar in place on a terminal; elsewhere (a pipe, a CI
/// log) only the finished bar is printed.
fn draw_bar(done: u64, total: u64) {
    use std::io::IsTerminal;
    if done < total && !std::io::stdout().is_terminal() {
        // Only the finished bar goes to a pipe or a CI log.
        return;
    }
    let width = 30;
    let filled = (done * width / total.max(1)).min(width) as usize;
    print!(
        "\rctrl      sending frames.bin [{}{}] {:>3} %",
        "#".repeat(filled),
        ".".repeat(width as usize - filled),
        done * 100 / total.max(1)
    );
    let _ = std::io::stdout().flush();
}

fn name(s: &str) -> ContainerName {
    s.parse().expect("a valid container name")
}

/// One `log` logger for the process that hands each record to the ECCI
/// logger of the container named by its target, as if each container ran
/// its own process with `ecci_logger::init_from_env()`.
#[derive(Debug)]
struct PerContainer(Vec<(String, EcciLogger)>);

impl log::Log for PerContainer {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.iter().any(|(n, _)| n == metadata.target())
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Some((_, logger)) = self.0.iter().find(|(n, _)| n == record.target()) {
            logger.log(record);
        }
    }

    fn flush(&self) {}
}

fn install_loggers(
    configs: &[Config],
    host: &str,
    port: u16,
) -> Result<Vec<LoggerGuard>, BoxError> {
    let mut loggers = Vec::new();
    let mut guards = Vec::new();
    for config in configs {
        let mut logger_config = LoggerConfig::from_config(config);
        logger_config.connection = Connection::Mqtt(MqttConfig::new(host, port));
        let (logger, guard) = ecci_logger::start(logger_config)?;
        loggers.push((config.container_name().to_string(), logger));
        guards.push(guard);
    }
    log::set_boxed_logger(Box::new(PerContainer(loggers)))?;
    log::set_max_level(log::LevelFilter::Info);
    Ok(guards)
}

/// What the platform's monitors would see: every log record and report on
/// `toEdgeAI/#`, printed as it arrives.
struct PlatformView {
    transport: MqttTransport,
    task: tokio::task::JoinHandle<()>,
    logs: Arc<AtomicUsize>,
    reports: Arc<AtomicUsize>,
}

impl PlatformView {
    async fn start(host: &str, port: u16) -> Result<Self, BoxError> {
        let transport = MqttTransport::start(MqttConfig::new(host, port));
        let mut events = transport
            .take_events()
            .ok_or("event stream already taken")?;
        transport.subscribe("toEdgeAI/#", QoS::AtLeastOnce).await?;
        let logs = Arc::new(AtomicUsize::new(0));
        let reports = Arc::new(AtomicUsize::new(0));
        let (l, r) = (Arc::clone(&logs), Arc::clone(&reports));
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Event::Message(message) = event else {
                    continue;
                };
                if message.topic.ends_with("/log") {
                    if let Ok(rec) = serde_json::from_slice::<LogRecord>(&message.payload) {
                        l.fetch_add(1, Ordering::Relaxed);
                        let info = rec.log_info;
                        println!(
                            "platform  log {} {:<7} {}: {}",
                            info.time, info.level, rec.container_name, info.message
                        );
                    }
                } else if message.topic.ends_with("/con_cntr_ready") {
                    if let Ok(report) = serde_json::from_slice::<ReadyReport>(&message.payload) {
                        r.fetch_add(1, Ordering::Relaxed);
                        println!(
                            "platform  ready report from {}: {}",
                            report.container_name, report.ready_type
                        );
                    }
                } else {
                    println!(
                        "platform  {}: {}",
                        message.topic,
                        String::from_utf8_lossy(&message.payload)
                    );
                }
            }
        });
        Ok(Self {
            transport,
            task,
            logs,
            reports,
        })
    }

    /// Waits until the `shipped` log records the loggers had acknowledged by
    /// the broker have arrived here, then stops; returns (logs, reports) seen.
    async fn finish(self, shipped: u64) -> Result<(usize, usize), BoxError> {
        let deadline = Instant::now() + WAIT;
        while (self.logs.load(Ordering::Relaxed) as u64) < shipped {
            if Instant::now() > deadline {
                return Err(format!(
                    "the platform saw {} of {shipped} log records",
                    self.logs.load(Ordering::Relaxed)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.transport.close().await;
        let _ = self.task.await;
        Ok((
            self.logs.load(Ordering::Relaxed),
            self.reports.load(Ordering::Relaxed),
        ))
    }
}
