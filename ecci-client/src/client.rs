//! The [`Client`]: configuration, connecting, publishing, the inbound queues and the
//! readiness API. The background work lives in [`crate::task`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "files")]
use ecci_files::{ExchangeOptions, Identity};
use ecci_proto::ContainerName;
use ecci_proto::config::{AppType, Config, Target, vars};
use ecci_proto::envelope::{Envelope, MessageType};
use ecci_proto::pickle::{self, DecodeLimits, Protocol, to_value};
use ecci_proto::platform::{ReadyReport, ReadyType, SendData, to_python_json};
use ecci_proto::readiness::{Peer, Readiness, Role, State};
use ecci_proto::sequence::{Lane, Tracker};
use ecci_proto::topic::{AppTopic, PlatformTopic, inbound_filters};
use ecci_transport::{
    ConnectionError, Event, Events, Message, MqttConfig, MqttTransport, Priority, QoS, Transport,
};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::Error;
use crate::command::{Command, check_cmd_contents};
use crate::e2e::{E2eOptions, TargetMetrics};
#[cfg(feature = "files")]
use crate::files::Files;
use crate::inbound::{ErrorEvent, Inbox, QueueBytes, Received};
use crate::publish::{Delivery, Sequencer, Targets};
use crate::task::{Parked, Senders, Task};

/// The tunables of a [`Client`], as a plain struct with a documented [`Default`].
///
/// # Queues and backpressure
///
/// Inbound messages wait in bounded queues ([`Client::data`], [`Client::commands`],
/// the file messages of [`Client::files`]) from the moment the client connected, whether or not the application
/// has asked for them yet. When one is full (by count, or by the payload bytes of
/// [`data_queue_bytes`](ClientOptions::data_queue_bytes) and
/// [`command_queue_bytes`](ClientOptions::command_queue_bytes)), the messages for it are
/// parked, in order, in a buffer of the same bounds and move into the queue as the
/// application makes room;
/// meanwhile the client keeps reading, so that the other queues, the readiness handshake
/// and the file exchange keep moving (unread data never holds up a `start`). Only when a
/// parked buffer is full too does the client stop reading from the transport, which in
/// turn stops reading from the broker: nothing is dropped, but nothing else (commands, the
/// handshake) moves either until the application reads that queue. So a queue holds up to
/// twice its bounds (plus a message each) before it blocks the rest. Two exceptions keep an application that
/// does not read a queue from stalling itself:
///
/// - readiness commands (`ready`, `start`, `exit`, `req_ready`) are carried out by the
///   handshake first and then put in the command queue only if it has room and no other
///   command is parked (they are never parked); skipped ones are counted in
///   [`Metrics::handshake_commands_skipped`];
/// - error events are diagnostics: when their queue is full they are counted in
///   [`Metrics::errors_dropped`] instead.
///
/// [`Client::close`] discards the parked messages along with what the transport still
/// holds; the queues themselves can still be read.
///
/// Over MQTT, a client that stops reading holds at most its queues and their parked
/// buffers (plus the transport's event queue and a few hundred decoded messages), and stops acknowledging QoS 2
/// messages. The broker then keeps what its limits allow and drops the rest: mosquitto
/// keeps `max_inflight_messages` (20) plus `max_queued_messages` (1000) for the client and
/// logs "Outgoing messages are being dropped for client …". The publisher's [`Delivery`]
/// still succeeds (it means the broker got the message), and the dropped messages raise no
/// error event here: MQTT 3.1.1 does not tell the receiver. Size the queues for the bursts
/// you expect, or raise the broker's limits.
///
/// ```
/// use std::time::Duration;
/// use ecci_client::ClientOptions;
/// let options = ClientOptions { retry_interval: Duration::from_secs(1), ..ClientOptions::default() };
/// assert_eq!(options.data_queue, 1024);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// How often the handshake re-sends what is still unanswered (`req_ready` to silent
    /// targets, `ready` to a silent controller) until started. Default 5 s.
    pub retry_interval: Duration,
    /// How long [`ClientBuilder::connect`] waits for the inbound subscriptions (that is, for
    /// the broker). Default 30 s.
    pub subscribe_timeout: Duration,
    /// Capacity of the data queue, and of the buffer that parks data while it is full
    /// (see "Queues and backpressure" above). Default 1024.
    pub data_queue: usize,
    /// Capacity of the command queue, and of the buffer that parks commands while it is
    /// full. Default 1024.
    pub command_queue: usize,
    /// Bytes of the data queue, and again of the buffer that parks data while the queue is
    /// full, counting each message as the larger of its payload and its decoded contents
    /// (which a pickle of many small values makes larger, up to
    /// [`DecodeLimits::max_decoded`]): whichever bound, count or bytes, is reached first
    /// applies. Default 64 MiB.
    pub data_queue_bytes: usize,
    /// Bytes of the command queue, and again of its parked buffer, counted as
    /// [`data_queue_bytes`](Self::data_queue_bytes). Default 16 MiB.
    pub command_queue_bytes: usize,
    /// Capacity of the queue of file messages on their way to [`Client::files`], and of the
    /// buffer that parks them while it is full. Default 256.
    pub file_queue: usize,
    /// Largest `'file'` message accepted, in payload bytes; a larger one is an
    /// [`ErrorEvent`] ([`InboundError::FileTooLarge`](crate::InboundError::FileTooLarge)),
    /// so that the file queue and its parked buffer hold at most
    /// `2 × file_queue × max_file_message`. Default 64 KiB (a real one, with its presigned
    /// URL, is a few KiB).
    pub max_file_message: usize,
    /// The tunables of file transfers ([`Client::files`]): reply timeout, URL
    /// refreshes, checksums, the offer queue, retries. Default [`ExchangeOptions::default`].
    /// Only with the `files` feature.
    #[cfg(feature = "files")]
    pub files: ExchangeOptions,
    /// Capacity of the error event queue. Default 256.
    pub error_queue: usize,
    /// Payload bytes of the error event queue (each event carries the raw payload it is
    /// about). An event whose payload does not fit is queued without it (an empty
    /// [`ErrorEvent::payload`]) and counted in [`Metrics::error_payloads_dropped`]; a
    /// payload larger than the whole budget goes only into an empty queue. Default 64 MiB.
    pub error_queue_bytes: usize,
    /// Bounds for decoding inbound pickles. Default [`DecodeLimits::default`].
    pub decode_limits: DecodeLimits,
    /// The pickle protocol written. Default 4 (what Python 3.8+ writes).
    pub protocol: Protocol,
    /// The largest inbound MQTT packet of the client's own transport, in bytes. A larger
    /// message is skipped as it arrives (never buffered) and becomes an [`ErrorEvent`]
    /// naming its topic and size ([`InboundError::TooLarge`](crate::InboundError::TooLarge));
    /// the connection and the messages after it are kept. Default 256 MiB, MQTT's largest
    /// packet, as mosquitto and paho accept. A transport given to
    /// [`ClientBuilder::transport`] keeps its own setting
    /// ([`MqttConfig::max_inbound_packet`]).
    pub max_inbound_packet: usize,
    /// How long a message missing from a Rust sender's sequence may take to arrive before
    /// it is reported lost ([`InboundError::Lost`](crate::InboundError::Lost) and
    /// [`Metrics::lost`]). Messages from one sender arrive in order over MQTT; a later
    /// arrival within this time is only a reordering (two tasks publishing at once), not a
    /// loss. Default 5 s. A sender with end-to-end delivery repairs its gaps itself: those
    /// are reported when it gives them up (see [`E2eOptions::give_up`]).
    pub gap_grace: Duration,
    /// End-to-end delivery between Rust containers: acknowledgements, retransmission, a
    /// window per target, pacing of targets that do not acknowledge. Default
    /// [`E2eOptions::default`] (on as a sender, acknowledging as a receiver).
    pub e2e: E2eOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_secs(5),
            subscribe_timeout: Duration::from_secs(30),
            data_queue: 1024,
            command_queue: 1024,
            data_queue_bytes: 64 * 1024 * 1024,
            command_queue_bytes: 16 * 1024 * 1024,
            file_queue: 256,
            max_file_message: 64 * 1024,
            error_queue: 256,
            error_queue_bytes: 64 * 1024 * 1024,
            #[cfg(feature = "files")]
            files: ExchangeOptions::default(),
            decode_limits: DecodeLimits::default(),
            protocol: Protocol::default(),
            max_inbound_packet: MqttConfig::new("", 0).max_inbound_packet,
            gap_grace: Duration::from_secs(5),
            e2e: E2eOptions::default(),
        }
    }
}

/// Where the client stands: connection and readiness handshake.
///
/// ```no_run
/// # async fn demo(client: ecci_client::Client) {
/// let status = client.status();
/// if !status.started {
///     println!("still waiting for {:?}", status.waiting_for);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Status {
    /// Whether the transport is connected (and subscribed).
    pub connected: bool,
    /// Whether the handshake completed (`start` received, or, for the global controller,
    /// every target answered).
    pub started: bool,
    /// Whether an `exit` command arrived.
    pub exit_requested: bool,
    /// Whether the client is closed (or its background task ended).
    pub closed: bool,
    /// Where the handshake stands; `None` for a container without `ECCI_APP_TYPE`.
    pub handshake: Option<State>,
    /// For a controller: the targets that have not sent `ready` yet.
    pub waiting_for: Vec<ContainerName>,
    /// How often the connection was lost (the transport reconnects by itself).
    pub disconnects: u64,
    /// Why the connection was last lost (also logged as a warning), if it ever was.
    pub last_disconnect: Option<ecci_transport::ConnectionError>,
}

/// The client's counters (see [`Client::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Inbound messages read from the transport.
    pub received: u64,
    /// Data messages received.
    pub data: u64,
    /// Commands received (readiness ones included).
    pub commands: u64,
    /// File messages received.
    pub files: u64,
    /// Error events raised (bad topics, bad payloads, refused readiness commands).
    pub errors: u64,
    /// Error events not queued because the error queue was full.
    pub errors_dropped: u64,
    /// Error events queued without their payload because it did not fit in
    /// [`ClientOptions::error_queue_bytes`].
    pub error_payloads_dropped: u64,
    /// Readiness commands not queued for the application because the command queue was
    /// full (the handshake carried them out).
    pub handshake_commands_skipped: u64,
    /// Messages from Rust senders dropped because they had arrived already (same sender,
    /// incarnation and sequence number): each reaches the application once.
    pub duplicates: u64,
    /// Messages from Rust senders reported lost: missing from their sequence for longer
    /// than [`ClientOptions::gap_grace`]. Each gap is also an error event
    /// ([`InboundError::Lost`](crate::InboundError::Lost)).
    pub lost: u64,
    /// Gaps reported (each is one error event).
    pub gaps: u64,
    /// Messages that arrived after they had been reported lost (passed on all the same).
    pub late: u64,
    /// The transport's counters.
    pub transport: ecci_transport::Metrics,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) data: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) files: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) errors_dropped: AtomicU64,
    pub(crate) error_payloads_dropped: AtomicU64,
    pub(crate) handshake_skipped: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) late: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The MQTT settings the default transport uses for `config`: its broker host, port and
/// credentials, a persistent session under a client id that is stable across restarts of
/// the container, everything else [`MqttConfig::new`]'s defaults. Change them and pass the
/// transport to [`ClientBuilder::transport`] to tune it.
///
/// The session: `clean_session = false`, and the client id is
/// [`stable_client_id`](ecci_transport::stable_client_id)`([app id, container name, broker
/// id])`, so that a restarted container (or a reconnect after a broker restart, with a
/// broker that saves its sessions) finds its subscriptions and the messages queued for it
/// while it was away. Two processes with the same app id, container name and broker id
/// share that id and would take the session from each other: the transport detects that
/// and stays away ([`ConnectionError::TakenOver`](ecci_transport::ConnectionError::TakenOver),
/// logged as an error and in [`Status::last_disconnect`]). To run two copies, give one
/// another `client_id`.
///
/// ```
/// let config = ecci_proto::Config::builder("10.0.0.5", "b1".parse()?, "app".parse()?, "me".parse()?)
///     .port(1884)
///     .build()?;
/// let mqtt = ecci_client::mqtt_config(&config);
/// assert_eq!((mqtt.host.as_str(), mqtt.port), ("10.0.0.5", 1884));
/// assert!(!mqtt.clean_session);
/// assert_eq!(mqtt.client_id, ecci_transport::stable_client_id(&["app", "me", "b1"]));
/// assert_eq!(mqtt.client_id, ecci_client::mqtt_config(&config).client_id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn mqtt_config(config: &Config) -> MqttConfig {
    let mut mqtt = MqttConfig::new(config.broker_host(), config.broker_port());
    mqtt.credentials = config
        .credentials()
        .map(|c| (c.username().to_owned(), c.password().to_owned()));
    mqtt.client_id = ecci_transport::stable_client_id(&[
        config.app_id().as_str(),
        config.container_name().as_str(),
        config.broker_id().as_str(),
    ]);
    mqtt.clean_session = false;
    mqtt
}

/// Builds a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `connect` is awaited"]
pub struct ClientBuilder {
    config: Config,
    transport: Option<Arc<dyn Transport>>,
    options: ClientOptions,
}

impl ClientBuilder {
    /// Uses `transport` instead of an [`MqttTransport`] to the configured broker (tests use
    /// the in-memory hub of `ecci-transport`'s `test-util` feature). The client takes its
    /// event stream and closes it in [`Client::close`].
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sets the tunables.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts the client: makes the inbound subscriptions (wire.md §2) and, once the broker
    /// granted them, starts the background task that dispatches inbound messages and drives
    /// the readiness handshake.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a component without a controller, [`Error::TransportInUse`]
    /// when the transport's events were taken already, [`Error::Connect`] when the broker
    /// refused the connection in a way retrying cannot cure (bad credentials, an untrusted
    /// certificate: at once) or no connection attempt succeeded within
    /// [`ClientOptions::subscribe_timeout`] (with the last attempt's reason),
    /// [`Error::Subscribe`] or [`Error::Timeout`] when the subscriptions cannot be made.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub async fn connect(self) -> Result<Client, Error> {
        let ClientBuilder {
            config,
            transport,
            options,
        } = self;
        let role = role(&config)?;
        for warning in config.warnings() {
            log::warn!("{}: {warning}", config.container_name());
        }
        let owned = transport.is_none();
        let transport: Arc<dyn Transport> = match transport {
            Some(t) => t,
            None => {
                let mut mqtt = mqtt_config(&config);
                mqtt.max_inbound_packet = options.max_inbound_packet;
                Arc::new(MqttTransport::start(mqtt))
            }
        };
        let Some(mut events) = transport.take_events() else {
            return Err(Error::TransportInUse);
        };
        let mut early = VecDeque::new();
        let subscribed = subscribe(
            &*transport,
            &mut events,
            &mut early,
            &config,
            options.subscribe_timeout,
        )
        .await;
        if let Err(e) = subscribed {
            if owned {
                transport.close().await;
            }
            return Err(e);
        }

        let (data_tx, data_rx) = mpsc::channel(options.data_queue.max(1));
        let (cmd_tx, cmd_rx) = mpsc::channel(options.command_queue.max(1));
        let (file_tx, file_rx) = mpsc::channel(options.file_queue.max(1));
        let (error_tx, error_rx) = mpsc::channel(options.error_queue.max(1));
        let data_bytes = QueueBytes::new(options.data_queue_bytes);
        let command_bytes = QueueBytes::new(options.command_queue_bytes);
        let error_bytes = QueueBytes::new(options.error_queue_bytes);
        let handshake = role.is_some();
        let readiness = role.map(Readiness::new);
        let (status_tx, status_rx) = watch::channel(Status {
            handshake: readiness.as_ref().map(Readiness::state),
            ..Status::default()
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let sequencer = Sequencer::new();
        let e2e = Arc::new(crate::e2e::Sender::new(
            options.e2e.clone(),
            sequencer.incarnation(),
            config.broker_id().to_string(),
            options.protocol,
        ));
        let task = Task {
            e2e: Arc::clone(&e2e),
            e2e_options: options.e2e.clone(),
            acks: std::collections::HashMap::new(),
            reply_topics: std::collections::HashMap::new(),
            ack_deadline: None,
            acks_gathered: 0,
            transport: Arc::clone(&transport),
            early,
            events,
            me: config.container_name().clone(),
            app: config.app_id().clone(),
            broker: config.broker_id().clone(),
            agent_id: config.agent_id().map(str::to_owned),
            readiness,
            status: status_tx,
            senders: Senders {
                data: data_tx,
                commands: cmd_tx,
                files: file_tx,
                errors: error_tx,
                data_bytes: Arc::clone(&data_bytes),
                command_bytes: Arc::clone(&command_bytes),
                error_bytes: Arc::clone(&error_bytes),
            },
            parked: Parked::default(),
            counters: Arc::clone(&counters),
            shutdown: shutdown_rx,
            limits: options.decode_limits.clone(),
            protocol: options.protocol,
            retry_interval: options.retry_interval,
            max_file_message: options.max_file_message,
            tracker: Tracker::new(options.gap_grace),
        };
        #[cfg(feature = "files")]
        let identity = Identity {
            app: config.app_id().clone(),
            broker: config.broker_id().clone(),
            me: config.container_name().clone(),
            container_type: config.container_type(),
        };
        #[cfg(feature = "files")]
        let exchange = match crate::files::start_exchange(
            identity,
            &config,
            options.files.clone(),
            Arc::clone(&transport),
            file_rx,
            (task.senders.errors.clone(), Arc::clone(&counters)),
        ) {
            Ok(exchange) => exchange,
            Err(e) => {
                if owned {
                    transport.close().await;
                }
                return Err(Error::FileSetup(e));
            }
        };
        #[cfg(feature = "files")]
        let files = Files {
            exchange,
            config: Arc::new(config.clone()),
        };
        #[cfg(not(feature = "files"))]
        let files = Mutex::new(Some(tokio::spawn(crate::no_files::drain(file_rx))));
        let handle = tokio::spawn(task.run());
        Ok(Client {
            inner: Arc::new(Inner {
                topics: config
                    .pub_targets()
                    .iter()
                    .map(|t| (t.name.to_string(), target_topic(&config, t)))
                    .collect(),
                config,
                options,
                transport,
                handshake,
                status: status_rx,
                data: Inbox::new(data_rx, data_bytes),
                commands: Inbox::new(cmd_rx, command_bytes),
                files,
                errors: Inbox::new(error_rx, error_bytes),
                counters,
                sequencer,
                e2e,
                shutdown: shutdown_tx,
                task: Mutex::new(Some(handle)),
            }),
        })
    }
}

/// The readiness role `config` describes (wire.md §4), if any.
fn role(config: &Config) -> Result<Option<Role>, Error> {
    let peer = |t: &ecci_proto::config::Target| Peer::new(t.name.clone(), t.broker.clone());
    Ok(match config.app_type() {
        None => None,
        Some(AppType::Component) => {
            let Some(controller) = config.controller() else {
                return Err(Error::Config(ecci_proto::config::ConfigError::Missing {
                    variable: vars::APP_CONTROLLER_CONTAINER,
                }));
            };
            Some(Role::Component {
                controller: peer(controller),
            })
        }
        Some(AppType::Controller) => Some(Role::Controller {
            targets: config.pub_targets().iter().map(peer).collect(),
            upstream: config.controller().map(peer),
        }),
    })
}

/// Makes the inbound subscriptions, watching the connection meanwhile: a refusal that
/// retrying cannot cure (credentials, TLS) fails at once, and a timeout names the last
/// reason a connection attempt failed. Events read on the way are kept in `early`, in order,
/// for the task; reading stops at the first `Connected`, after which only messages could
/// follow.
async fn subscribe(
    transport: &dyn Transport,
    events: &mut Events,
    early: &mut VecDeque<Event>,
    config: &Config,
    limit: Duration,
) -> Result<(), Error> {
    let filters = inbound_filters(
        config.broker_id(),
        config.app_id(),
        config.container_name(),
        config.bridge_mountpoints(),
        config.sub_objects(),
    );
    let all = async {
        for filter in &filters {
            transport
                .subscribe(filter, QoS::ExactlyOnce)
                .await
                .map_err(|source| Error::Subscribe {
                    filter: filter.clone(),
                    source,
                })?;
        }
        Ok(())
    };
    tokio::pin!(all);
    let started = tokio::time::Instant::now();
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    let mut watching = true;
    let mut last_failure = None;
    loop {
        tokio::select! {
            biased;
            result = &mut all => return result,
            event = events.recv(), if watching => match event {
                Some(Event::ConnectFailed(e)) if e.is_permanent() => {
                    return Err(match &e {
                        ConnectionError::Resolve { host, .. } if host == config.broker_host() => {
                            Error::UnresolvableHost {
                                variable: vars::LOCAL_BROKER_IP,
                                host: host.clone(),
                                source: e,
                            }
                        }
                        _ => Error::Connect { after: started.elapsed(), source: e },
                    });
                }
                Some(event) => {
                    if let Event::ConnectFailed(e) = &event {
                        last_failure = Some(e.clone());
                    }
                    watching = !matches!(event, Event::Connected);
                    early.push_back(event);
                }
                None => watching = false,
            },
            () = &mut deadline => break,
        }
    }
    // Subscriptions wait for a connection: say which of the two never came, and why.
    Err(match last_failure {
        Some(source) if !transport.metrics().connected => Error::Connect {
            after: limit,
            source,
        },
        _ if !transport.metrics().connected => Error::Timeout {
            operation: "connecting to the broker",
            after: limit,
            waiting_for: Vec::new(),
        },
        _ => Error::Timeout {
            operation: "subscribing",
            after: limit,
            waiting_for: Vec::new(),
        },
    })
}

struct Inner {
    config: Config,
    /// The topic of each pub target (`ECCI/{its broker}/{app}/app/{me}/{target}`), made
    /// once rather than per publish.
    topics: HashMap<String, String>,
    options: ClientOptions,
    transport: Arc<dyn Transport>,
    handshake: bool,
    status: watch::Receiver<Status>,
    data: Inbox<Received>,
    commands: Inbox<Received>,
    #[cfg(feature = "files")]
    files: Files,
    /// The drain of file messages, which ends with the task.
    #[cfg(not(feature = "files"))]
    files: Mutex<Option<JoinHandle<()>>>,
    errors: Inbox<ErrorEvent>,
    counters: Arc<Counters>,
    sequencer: Sequencer,
    e2e: Arc<crate::e2e::Sender>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A connection of one ECCI container to its app: publish to targets, receive data and
/// commands, take part in the readiness handshake.
///
/// Cheap to clone (clones share one connection and one background task) and usable from
/// any number of tasks. Not generic: any [`Transport`] sits behind it.
///
/// ```no_run
/// use std::time::Duration;
/// use ecci_client::Client;
///
/// # async fn demo() -> Result<(), ecci_client::Error> {
/// let client = Client::from_env().await?; // ECCI_* variables, MQTT to the local broker
/// client.wait_started(Duration::from_secs(60)).await?;
/// client.publish(&("hello", 1), "worker").await?.await?;
/// while let Ok(message) = client.recv_data().await {
///     println!("{} sent {:?}", message.sender(), message.contents.value());
/// }
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("container", self.inner.config.container_name())
            .field("app", self.inner.config.app_id())
            .field("status", &*self.inner.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Reads the `ECCI_*` variables (wire.md §1) and connects to the local broker over MQTT.
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`] and [`ClientBuilder::connect`].
    pub async fn from_env() -> Result<Client, Error> {
        Client::builder(Config::from_env()?).connect().await
    }

    /// Connects with `config` over MQTT to the broker it names.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    pub async fn connect(config: Config) -> Result<Client, Error> {
        Client::builder(config).connect().await
    }

    /// A builder for a client with `config`, to choose the transport or the options.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use ecci_client::Client;
    /// use ecci_proto::Config;
    /// use ecci_transport::memory::Hub;
    ///
    /// let hub = Hub::new();
    /// let config = |me: &str, to: &str| -> Result<Config, Box<dyn std::error::Error>> {
    ///     Ok(Config::builder("unused", "b1".parse()?, "app".parse()?, me.parse()?)
    ///         .pub_target(to.parse()?, "b1".parse()?)
    ///         .build()?)
    /// };
    /// let a = Client::builder(config("a", "b")?).transport(Arc::new(hub.transport())).connect().await?;
    /// let b = Client::builder(config("b", "a")?).transport(Arc::new(hub.transport())).connect().await?;
    ///
    /// a.publish(&[1, 2, 3], "b").await?.await?;
    /// let got = b.recv_data().await?;
    /// assert_eq!(got.sender(), "a");
    /// assert_eq!(got.decode::<Vec<u8>>()?, [1, 2, 3]);
    /// # a.close().await; b.close().await;
    /// # Ok(()) }
    /// ```
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            transport: None,
            options: ClientOptions::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The tunables.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// This container's name (`{me}`).
    pub fn name(&self) -> &ContainerName {
        self.inner.config.container_name()
    }

    /// The transport, shared with the client (for the logger and file transfers).
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The settings of an [`ecci_logger`] that ships this container's log records over
    /// the client's own connection (as [`Priority::Bulk`](ecci_transport::Priority), so
    /// they never hold up commands), with its broker id, app id, name and agent id.
    /// Adjust the fields, then [`ecci_logger::init`] (or use
    /// [`install_logger`](Self::install_logger)).
    ///
    /// ```no_run
    /// # async fn demo(client: ecci_client::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut logs = client.logger_config();
    /// logs.level = log::LevelFilter::Info;
    /// let _guard = ecci_logger::init(logs)?;
    /// log::info!("shipped over the client's connection");
    /// # Ok(()) }
    /// ```
    pub fn logger_config(&self) -> ecci_logger::LoggerConfig {
        let mut config = ecci_logger::LoggerConfig::from_config(&self.inner.config);
        config.connection = ecci_logger::Connection::Transport(Arc::clone(&self.inner.transport));
        config
    }

    /// Installs the process's `log` logger, shipping records over the client's
    /// connection ([`logger_config`](Self::logger_config) with its defaults, and the
    /// directive in `ECCI_LOG_FILTER` when it is set). Keep the
    /// guard: dropping it flushes with a bounded wait. Flush or drop the guard before
    /// [`close`](Self::close): closing the client closes the shared connection, and records
    /// still buffered then are counted as dropped.
    ///
    /// # Errors
    ///
    /// [`ecci_logger::InitError::AlreadyInstalled`] when a `log` logger is already set, or
    /// a bad `ECCI_LOG_FILTER`.
    pub fn install_logger(&self) -> Result<ecci_logger::LoggerGuard, ecci_logger::InitError> {
        let mut config = self.logger_config();
        config.filter = ecci_logger::LoggerConfig::filter_from_env()?;
        ecci_logger::init(config)
    }

    /// Publishes `contents` as data to `targets` (wire.md §5): topic
    /// `ECCI/{Bt}/{app}/app/{me}/{T}` for each selected target `T`, QoS 2.
    ///
    /// Each target's message carries this process's sequence extension beside `type` and
    /// `contents` (`'ecci_seq'`, see [`ecci_proto::sequence`]; Python peers ignore it), by
    /// which a Rust receiver drops duplicates and reports losses.
    ///
    /// `contents` is anything serde can serialize (see [`ecci_proto::pickle::to_value`]);
    /// for a dynamic [`Value`](ecci_proto::pickle::Value) with sets or bytearrays use
    /// [`publish_envelope`](Self::publish_envelope). Waits while the transport's queue is
    /// full; returns a [`Delivery`] that resolves when every target's broker acknowledged.
    ///
    /// # Errors
    ///
    /// [`Error::Target`] when a name matches no pub target (its source names the known
    /// ones), [`Error::NoPubTargets`], [`Error::Encode`], [`Error::Publish`], or
    /// [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: when dropped midway, the message may have been queued for some
    /// targets and not others.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        contents: &T,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        let value = to_value(contents).map_err(Error::Encode)?;
        self.publish_envelope(Envelope::data(value), targets).await
    }

    /// Publishes the command `{'cmd': name, …}` (`{'type': 'cmd', …}`) to `targets`:
    /// a name (`publish_cmd("exit", …)`) or a [`Command`] with extra fields.
    ///
    /// Commands leave in publish order with the data to the same targets, as in Python:
    /// "results…, then `exit`" reaches the receiver in that order. A
    /// [`Command::urgent`] one jumps ahead of data still queued. See
    /// [`publish`](Self::publish) for the rest.
    ///
    /// ```no_run
    /// # async fn demo(client: ecci_client::Client) -> Result<(), ecci_client::Error> {
    /// use ecci_client::{Command, Targets};
    /// for i in 0..500 {
    ///     client.publish(&i, "worker").await?;
    /// }
    /// // Arrives after the 500 results.
    /// client.publish_cmd("exit", "worker").await?.await?;
    /// // Goes ahead of anything still queued.
    /// client.publish_cmd(Command::new("pause").with("seconds", 5).urgent(), Targets::All).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Cancel safety
    ///
    /// As [`publish`](Self::publish).
    #[doc(alias = "publish_command")]
    pub async fn publish_cmd(
        &self,
        command: impl Into<Command>,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        let command = command.into();
        let priority = if command.is_urgent() {
            Priority::Control
        } else {
            Priority::Bulk
        };
        let envelope = Envelope::new(MessageType::Cmd, command.to_value());
        self.publish_with(envelope, targets.into(), priority).await
    }

    /// Publishes a ready-made envelope to `targets`, in publish order with the
    /// application's other messages.
    ///
    /// # Errors
    ///
    /// [`Error::CommandNotADict`] for a `'cmd'` envelope whose contents are not a dict
    /// (a Python receiver dies on it; nothing is sent); otherwise as
    /// [`publish`](Self::publish).
    ///
    /// # Cancel safety
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_envelope(
        &self,
        envelope: Envelope,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        self.publish_with(envelope, targets.into(), Priority::Bulk)
            .await
    }

    async fn publish_with(
        &self,
        envelope: Envelope,
        targets: Targets,
        priority: Priority,
    ) -> Result<Delivery, Error> {
        if envelope.kind == MessageType::Cmd {
            check_cmd_contents(&envelope.contents)?;
        }
        let config = &self.inner.config;
        let selected = select(config, targets)?;
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        let lane = match priority {
            Priority::Control => Lane::Urgent,
            Priority::Bulk | Priority::Background => Lane::Ordered,
        };
        let mut value = Some(envelope.into_value());
        let count = selected.len();
        let mut delivery = Delivery::with_capacity(count);
        for (i, target) in selected.into_iter().enumerate() {
            // Each target has its own sequence: the extension differs per target.
            let seq = self.inner.sequencer.next(target.name.as_str(), lane);
            let topic = self.inner.topic(target);
            // The last (usually the only) target takes the value itself, the others a copy.
            let value = if i + 1 == count {
                value.take().unwrap_or_default()
            } else {
                value.clone().unwrap_or_default()
            };
            let e2e = &self.inner.e2e;
            let (payload, done) = if e2e.enabled() {
                let prepared = e2e
                    .prepare(
                        target.name.as_str(),
                        &topic,
                        seq,
                        seq.add_to(value),
                        priority,
                    )
                    .await;
                (prepared.payload, prepared.done)
            } else {
                let payload = bytes_of(pickle::encode(
                    &seq.add_to(value),
                    self.inner.options.protocol,
                ));
                (payload, None)
            };
            let message = Message::new(topic, payload, QoS::ExactlyOnce).with_priority(priority);
            let receipt = self
                .inner
                .transport
                .publish(message)
                .await
                .map_err(|source| Error::Publish {
                    target: target.name.to_string(),
                    source,
                })?;
            delivery.push(target.name.to_string(), receipt, done);
        }
        Ok(delivery)
    }

    /// The data queue: every `{'type': 'data'}` message, with its sender.
    pub fn data(&self) -> Inbox<Received> {
        self.inner.data.clone()
    }

    /// The command queue: every `{'type': 'cmd'}` message, with its sender, the readiness
    /// commands included (see [`ClientOptions`] for when those are skipped).
    pub fn commands(&self) -> Inbox<Received> {
        self.inner.commands.clone()
    }

    /// File transfer: send files and objects to targets through the fileManager, receive
    /// the files others send (wire.md §6). Every `{'type': 'file'}` message goes there;
    /// one that is not a fileManager message is an error event. Only with the `files` feature.
    #[cfg(feature = "files")]
    pub fn files(&self) -> Files {
        self.inner.files.clone()
    }

    /// The error event queue: messages that could not be used (bad topic, not a pickle, not
    /// an envelope, unknown type, refused readiness command), with the topic and the reason.
    /// They never stop the client.
    pub fn errors(&self) -> Inbox<ErrorEvent> {
        self.inner.errors.clone()
    }

    /// The next data message (Python: `get_sub_data_payload_queue().get()`, with the sender).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn recv_data(&self) -> Result<Received, Error> {
        self.inner.data.recv().await.ok_or(Error::Closed)
    }

    /// The next command.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn recv_cmd(&self) -> Result<Received, Error> {
        self.inner.commands.recv().await.ok_or(Error::Closed)
    }

    /// Where the client stands now.
    pub fn status(&self) -> Status {
        self.inner.status.borrow().clone()
    }

    /// A watch of the [`Status`], to react to changes.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.inner.status.clone()
    }

    /// Whether the handshake completed.
    pub fn is_started(&self) -> bool {
        self.inner.status.borrow().started
    }

    /// Waits until the readiness handshake completed (wire.md §4): for a component, `start`
    /// from its controller; for a controller, every target answered (and, for a local
    /// controller, `start` from upstream). Returns at once when already started.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] after `timeout` (naming the targets a controller still waits
    /// for), [`Error::NoHandshake`] without `ECCI_APP_TYPE`, [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn wait_started(&self, timeout: Duration) -> Result<(), Error> {
        if !self.inner.handshake {
            return Err(Error::NoHandshake);
        }
        let mut rx = self.inner.status.clone();
        let outcome = tokio::time::timeout(timeout, rx.wait_for(|s| s.started || s.closed))
            .await
            .map(|r| r.is_ok_and(|s| s.started));
        let started = match outcome {
            Ok(started) => started,
            Err(_) => {
                return Err(Error::Timeout {
                    operation: "waiting for start",
                    after: timeout,
                    waiting_for: rx.borrow().waiting_for.clone(),
                });
            }
        };
        if started { Ok(()) } else { Err(Error::Closed) }
    }

    /// Resolves when an `exit` command arrived.
    ///
    /// # Errors
    ///
    /// [`Error::NoHandshake`] without `ECCI_APP_TYPE`, [`Error::Closed`] when the client
    /// closes first.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn exit_requested(&self) -> Result<(), Error> {
        if !self.inner.handshake {
            return Err(Error::NoHandshake);
        }
        let mut rx = self.inner.status.clone();
        let exit = match rx.wait_for(|s| s.exit_requested || s.closed).await {
            Ok(s) => s.exit_requested,
            Err(_) => false,
        };
        if exit { Ok(()) } else { Err(Error::Closed) }
    }

    /// Reports a completed period to the platform: `{"app_id", "container_name",
    /// "agent_id", "ready_type": period}` on `toEdgeAI/{myB}/con_cntr_ready`.
    ///
    /// # Errors
    ///
    /// [`Error::Publish`], [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: when dropped before it returned, nothing was queued.
    pub async fn send_complete(&self, period: &str) -> Result<Delivery, Error> {
        let config = &self.inner.config;
        let report = ReadyReport {
            app_id: config.app_id().clone(),
            container_name: config.container_name().clone(),
            agent_id: config.agent_id().map(str::to_owned),
            ready_type: ReadyType::from(period),
        };
        let topic = PlatformTopic::ready(config.broker_id().clone()).to_string();
        self.publish_raw(topic, report.to_json(), Priority::Control)
            .await
    }

    /// Sends algorithm data to the platform: `{"type": "data", "algorithm_type": …,
    /// "data": …, "app_id": …}` on `toEdgeAI/{myB}/send_data`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when `data` cannot be JSON, [`Error::Publish`], [`Error::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: when dropped before it returned, nothing was queued.
    pub async fn send_data<T: Serialize + ?Sized>(
        &self,
        data: &T,
        algorithm_type: &str,
    ) -> Result<Delivery, Error> {
        let config = &self.inner.config;
        let message = SendData {
            algorithm_type: algorithm_type.to_owned(),
            data,
            app_id: config.app_id().clone(),
        };
        let json = to_python_json(&message).map_err(Error::Json)?;
        let topic = PlatformTopic::send_data(config.broker_id().clone()).to_string();
        self.publish_raw(topic, json, Priority::Bulk).await
    }

    async fn publish_raw(
        &self,
        topic: String,
        payload: Vec<u8>,
        priority: Priority,
    ) -> Result<Delivery, Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Closed);
        }
        let message = Message::new(topic.clone(), bytes_of(payload), QoS::ExactlyOnce)
            .with_priority(priority);
        let receipt = self
            .inner
            .transport
            .publish(message)
            .await
            .map_err(|source| Error::Publish {
                target: topic.clone(),
                source,
            })?;
        Ok(Delivery::new(vec![(topic, receipt)]))
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            received: get(&c.received),
            data: get(&c.data),
            commands: get(&c.commands),
            files: get(&c.files),
            errors: get(&c.errors),
            errors_dropped: get(&c.errors_dropped),
            error_payloads_dropped: get(&c.error_payloads_dropped),
            handshake_commands_skipped: get(&c.handshake_skipped),
            duplicates: get(&c.duplicates),
            lost: get(&c.lost),
            gaps: get(&c.gaps),
            late: get(&c.late),
            transport: self.inner.transport.metrics(),
        }
    }

    /// End-to-end figures per target this client sent to with
    /// [`E2eOptions::enabled`]: whether it acknowledges, what is unacknowledged (messages
    /// and bytes), what was acknowledged, sent again and given up.
    pub fn e2e_metrics(&self) -> Vec<TargetMetrics> {
        self.inner.e2e.metrics()
    }

    /// Stops the background task, waits for it, and closes the transport. Queued messages
    /// whose [`Delivery`] was not awaited may be lost; messages already in the inbound
    /// queues can still be received, those still parked (see [`ClientOptions`]) are
    /// discarded. Every clone sees the client closed. Calling it again
    /// does nothing.
    ///
    /// # Cancel safety
    ///
    /// The client is marked closed at once; dropping the future leaves the background task
    /// to end by itself and the transport open until the last clone is dropped.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.e2e.close();
        let handle = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            // The task never panics on input; a panic here is a bug worth surfacing.
            if let Err(e) = handle.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        #[cfg(feature = "files")]
        self.inner.files.exchange.close().await;
        #[cfg(not(feature = "files"))]
        {
            let drain = self
                .inner
                .files
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(drain) = drain {
                // Ends as the task (the sender's owner) has ended; it never panics.
                let _ = drain.await;
            }
        }
        self.inner.transport.close().await;
    }
}

/// The pub targets `targets` selects in `config` (wire.md §5).
pub(crate) fn select(config: &Config, targets: Targets) -> Result<Vec<&Target>, Error> {
    Ok(match targets {
        Targets::All if config.pub_targets().is_empty() => return Err(Error::NoPubTargets),
        Targets::All => config.pub_targets().iter().collect(),
        Targets::Prefixes(names) => config.select_targets(&names)?,
        Targets::Exact(names) => {
            let mut selected = Vec::with_capacity(names.len());
            for name in names {
                match config.pub_target(&name) {
                    Some(t) if !selected.contains(&t) => selected.push(t),
                    Some(_) => {}
                    None => {
                        return Err(Error::NotATarget {
                            name,
                            known: config
                                .pub_targets()
                                .iter()
                                .map(|t| t.name.clone())
                                .collect(),
                        });
                    }
                }
            }
            selected
        }
    })
}

impl Inner {
    /// The topic of messages to the pub target `target`.
    fn topic(&self, target: &Target) -> String {
        match self.topics.get(target.name.as_str()) {
            Some(topic) => topic.clone(),
            None => target_topic(&self.config, target),
        }
    }
}

/// The topic of messages from this container to the pub target `target`.
fn target_topic(config: &Config, target: &Target) -> String {
    AppTopic::app_message(
        target.broker.clone(),
        config.app_id().clone(),
        config.container_name().clone(),
        target.name.clone(),
    )
    .to_string()
}

fn bytes_of(payload: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(payload)
}
