//! The background thread: drains the buffer into the transport and counts what happened.
//!
//! It runs its own small tokio runtime, so programs without tokio work too: the `ecci-logger`
//! thread itself turns records into JSON and publishes them, and one runtime worker thread
//! runs the logger's own MQTT connection in parallel (measured: about 1.5× the records per
//! second at QoS 2 against mosquitto compared with one thread doing both). It owns
//! everything it starts: the runtime, the logger's own transport (closed on stop) and three
//! futures joined together: the publisher (buffer → transport, waiting on the transport's
//! backpressure), the acknowledger (awaits receipts in publishing order and signals flush
//! markers) and, for an own transport, a drain of its events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use ecci_proto::platform::{Level, LogInfo, LogRecord};
use ecci_proto::{AppId, ContainerName};
use ecci_transport::{Message, MqttTransport, Priority, QoS, Receipt, Transport};
use tokio::sync::{mpsc, watch};

use crate::buffer::{Counters, Entry, Flushed, Item, Shared};
use crate::config::{Connection, InitError, Pacing};

/// The target (`name`) of the records the logger writes itself.
pub(crate) const OWN_NAME: &str = "ecci_logger";

/// What every record of this container carries, and where it goes.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) app_id: AppId,
    pub(crate) container_name: ContainerName,
    pub(crate) agent_id: Option<String>,
    pub(crate) topic: String,
    pub(crate) qos: QoS,
}

impl Identity {
    fn encode(&self, entry: Entry) -> Message {
        let record = LogRecord {
            app_id: self.app_id.clone(),
            container_name: self.container_name.clone(),
            agent_id: self.agent_id.clone(),
            log_info: LogInfo {
                time: crate::time::local(entry.time),
                name: entry.target,
                level: entry.level,
                message: entry.message,
                kv: entry.kv,
            },
        };
        Message::new(self.topic.clone(), record.to_json(), self.qos)
            .with_priority(Priority::Background)
    }
}

/// The handle on the running thread.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    done: std_mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        connection: Connection,
        pacing: Option<Pacing>,
        identity: Identity,
    ) -> Result<Worker, InitError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ecci-logger-io")
            .enable_all()
            .build()
            .map_err(InitError::Thread)?;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ecci-logger".to_owned())
            .spawn(move || {
                runtime.block_on(run(&shared, connection, pacing, &identity, stop_rx));
                shared.stopped.store(true, Ordering::Relaxed);
                shared.discard();
                let _ = done_tx.send(());
            })
            .map_err(InitError::Thread)?;
        Ok(Worker {
            stop,
            done,
            thread: Some(thread),
        })
    }

    /// Stops the thread, waiting at most `timeout` for it (closing an own transport);
    /// a thread that does not end in time is left to end by itself.
    pub(crate) fn stop(&mut self, timeout: Duration) {
        let _ = self.stop.send(true);
        if self.done.recv_timeout(timeout).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

enum Ack {
    Receipt { receipt: Receipt, report: bool },
    Flush(Flushed),
}

async fn run(
    shared: &Shared,
    connection: Connection,
    pacing: Option<Pacing>,
    identity: &Identity,
    stop: watch::Receiver<bool>,
) {
    let (transport, owned): (Arc<dyn Transport>, bool) = match connection {
        Connection::Mqtt(config) => (Arc::new(MqttTransport::start(config)), true),
        Connection::Transport(t) => (t, false),
    };
    // An own transport's events are nobody else's: read them so that it never stops
    // reading from the broker for want of room in its event queue.
    let events = if owned { transport.take_events() } else { None };
    let (ack_tx, ack_rx) = mpsc::channel(1024);
    let mut pacer = pacing.map(Pacer::new);
    tokio::join!(
        publish(
            shared,
            &*transport,
            identity,
            &mut pacer,
            ack_tx,
            stop.clone()
        ),
        acknowledge(shared, ack_rx, stop.clone()),
        drain(events, stop),
    );
    if owned {
        transport.close().await;
    }
}

/// Resolves once the guard asked the worker to stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn publish(
    shared: &Shared,
    transport: &dyn Transport,
    identity: &Identity,
    pacer: &mut Option<Pacer>,
    acks: mpsc::Sender<Ack>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let item = match shared.pop() {
            Some(item) => item,
            None => {
                tokio::select! {
                    () = shared.wake.notified() => continue,
                    () = stopped(&mut stop) => return,
                }
            }
        };
        let entry = match item {
            Item::Flush(tx) => {
                if acks.send(Ack::Flush(tx)).await.is_err() {
                    return;
                }
                continue;
            }
            Item::Record(entry) => entry,
        };
        if let Some(pacer) = pacer.as_mut() {
            tokio::select! {
                () = pacer.take() => {}
                () = stopped(&mut stop) => {
                    // Left in the buffer's count of what the stop discards.
                    shared.counters.drop_records(1);
                    return;
                }
            }
        }
        let unreported = shared.counters.unreported.swap(0, Ordering::Relaxed);
        if unreported > 0 {
            let report = dropped_report(unreported);
            if !send(shared, transport, identity, &acks, &mut stop, report, true).await {
                return;
            }
        }
        if !send(shared, transport, identity, &acks, &mut stop, entry, false).await {
            return;
        }
    }
}

/// A token bucket: at most `burst` records at once, then `rate` per second.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Pacer {
    fn new(pacing: Pacing) -> Pacer {
        let burst = f64::from(pacing.burst.max(1));
        Pacer {
            rate: f64::from(pacing.rate.max(1)),
            burst,
            tokens: burst,
            last: tokio::time::Instant::now(),
        }
    }

    /// Waits until one more record may go. Cancel-safe: a token is taken only on return.
    async fn take(&mut self) {
        loop {
            let now = tokio::time::Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// The record telling the platform that `n` records were lost.
fn dropped_report(n: u64) -> Entry {
    let plural = if n == 1 { "record" } else { "records" };
    Entry {
        time: SystemTime::now(),
        level: Level::Warning,
        target: OWN_NAME.to_owned(),
        message: format!(
            "ecci_logger dropped {n} log {plural} (buffer full or broker unreachable)"
        ),
        kv: Vec::new(),
    }
}

/// Publishes one record, waiting while the transport's queue is full. Returns `false` when
/// the worker is stopping.
async fn send(
    shared: &Shared,
    transport: &dyn Transport,
    identity: &Identity,
    acks: &mpsc::Sender<Ack>,
    stop: &mut watch::Receiver<bool>,
    entry: Entry,
    report: bool,
) -> bool {
    let message = identity.encode(entry);
    let published = tokio::select! {
        biased;
        r = transport.publish(message) => r,
        () = stopped(stop) => {
            if !report {
                shared.counters.drop_records(1);
            }
            return false;
        }
    };
    match published {
        Ok(receipt) => acks.send(Ack::Receipt { receipt, report }).await.is_ok(),
        Err(_) => {
            // Too large, or the shared transport was closed: never deliverable.
            if !report {
                shared.counters.drop_records(1);
            }
            true
        }
    }
}

async fn acknowledge(
    shared: &Shared,
    mut acks: mpsc::Receiver<Ack>,
    mut stop: watch::Receiver<bool>,
) {
    let c = &shared.counters;
    loop {
        let ack = tokio::select! {
            biased;
            ack = acks.recv() => ack,
            () = stopped(&mut stop) => None,
        };
        match ack {
            None => return,
            Some(Ack::Flush(flushed)) => flushed.signal(),
            Some(Ack::Receipt { receipt, report }) => {
                let result = tokio::select! {
                    biased;
                    r = receipt => r,
                    () = stopped(&mut stop) => return,
                };
                match (result, report) {
                    (Ok(()), false) => Counters::add(&c.acknowledged, 1),
                    (Ok(()), true) => Counters::add(&c.reports, 1),
                    (Err(_), false) => Counters::add(&c.failed, 1),
                    (Err(_), true) => {}
                }
            }
        }
    }
}

async fn drain(events: Option<ecci_transport::Events>, mut stop: watch::Receiver<bool>) {
    let Some(mut events) = events else { return };
    loop {
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            () = stopped(&mut stop) => return,
        }
    }
}
