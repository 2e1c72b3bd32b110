//! The fileManager plugin on a broker: subscribes to the plugin's request
//! topics, feeds each request through [`FileManagerCore`], does the relay copy
//! a cloud plugin asks an edge plugin for, and publishes the replies.
//!
//! Each request is handled in its own task (a relay copy may take long and
//! must not hold up a `reqPutURL`); the messages of one request go out in order.
//! At most [`FileManagerOptions::max_requests`] tasks run at once: while they
//! all are busy the runner stops reading the transport's event stream, so that
//! a flood waits in the transport's bounded queue (and, past it, at the broker)
//! instead of growing tasks here.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ecci_proto::config::ContainerType;
use ecci_proto::envelope::{Envelope, MessageType};
use ecci_proto::file::FileMessage;
use ecci_proto::pickle::DecodeLimits;
use ecci_proto::topic::{AppTopic, ECCI_MARKER, FILE_MANAGER, Mountpoint, TopicKind};
use ecci_proto::{AppId, BrokerId};
use ecci_transport::{Event, Message, Priority, QoS, SubscribeError, Transport};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::exchange::envelope_bytes;
use crate::local::{FileManagerCore, LocalError, LocalStore, Signer};
use crate::sigv4::{Method, S3Presigner};
use crate::{ClientError, TransferConfig, TransferOptions, Transfers};

/// Where a [`LocalFileManager`] keeps objects.
#[derive(Debug)]
#[non_exhaustive]
pub enum Backend {
    /// Its own [`LocalStore`] (the default for local work and tests).
    Local(LocalStore),
    /// An S3-compatible store (MinIO, as the platform runs), through presigned
    /// SigV4 URLs; the bucket `app.lower()` must exist.
    S3(S3Presigner),
}

/// Why a [`LocalFileManager`] could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileManagerError {
    /// The transport's event stream was taken already: the fileManager needs a
    /// connection of its own.
    #[error("the transport's event stream is already taken")]
    TransportInUse,
    /// Subscribing to the request topics failed.
    #[error("subscribing to {filter} failed")]
    Subscribe {
        /// The topic filter.
        filter: String,
        /// The transport's reason.
        #[source]
        source: SubscribeError,
    },
    /// The HTTP client for relay copies could not be set up.
    #[error("cannot set up the relay client")]
    Client(#[from] ClientError),
    /// The local store failed to start or stop.
    #[error("local store failure")]
    Store(#[from] LocalError),
    /// The runner's task panicked.
    #[error("the fileManager's task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// Tunables of a [`LocalFileManager`].
#[derive(Debug, Clone, PartialEq)]
pub struct FileManagerOptions {
    /// Mountpoints under which bridges deliver this broker's topics to it, to
    /// subscribe to as well (default none).
    pub mountpoints: Vec<Mountpoint>,
    /// Validity of PUT URLs (default [`PUT_URL_TTL`](crate::local::PUT_URL_TTL)).
    pub put_ttl: Duration,
    /// Validity of GET URLs (default [`GET_URL_TTL`](crate::local::GET_URL_TTL)).
    pub get_ttl: Duration,
    /// Where relay copies are staged (default the system's temporary directory).
    pub scratch: PathBuf,
    /// Bounds for decoding request envelopes.
    pub limits: DecodeLimits,
    /// The HTTP tunables of relay copies.
    pub transfer: TransferConfig,
    /// Most requests handled at once (default [`DEFAULT_MAX_REQUESTS`]; 0 is
    /// taken as 1). Further requests are not refused: they wait in the
    /// transport's event queue until a handler is free, and past that queue at
    /// the broker (mosquitto keeps `max_queued_messages` per subscriber). A
    /// relay copy holds its slot for as long as it takes, so leave room for
    /// quick requests (`reqPutURL`) beside the copies.
    pub max_requests: usize,
    /// Whether it is the plugin of a cloud or an edge broker, as the platform
    /// runs it (default [`ContainerType::Cloud`]); see
    /// [`FileManagerCore::mode`]: only a cloud plugin relays.
    pub mode: ContainerType,
}

/// The default [`FileManagerOptions::max_requests`]: enough for every container
/// of a busy app to have a request and a relay copy going, few enough that a
/// flood of requests costs a bounded number of tasks, HTTP transfers and
/// scratch files.
pub const DEFAULT_MAX_REQUESTS: usize = 64;

impl Default for FileManagerOptions {
    fn default() -> Self {
        Self {
            mountpoints: Vec::new(),
            put_ttl: crate::local::PUT_URL_TTL,
            get_ttl: crate::local::GET_URL_TTL,
            scratch: std::env::temp_dir(),
            limits: DecodeLimits::default(),
            transfer: TransferConfig::default(),
            max_requests: DEFAULT_MAX_REQUESTS,
            mode: ContainerType::Cloud,
        }
    }
}

/// Counters of a running [`LocalFileManager`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileManagerStats {
    /// Requests handled and answered.
    pub handled: u64,
    /// Messages refused: bad topic, not a file envelope, bad message, bad name.
    pub refused: u64,
    /// Relay copies or publishes that failed.
    pub failed: u64,
    /// Requests being handled now.
    pub in_progress: u64,
    /// The most requests handled at once so far; never more than
    /// [`FileManagerOptions::max_requests`].
    pub peak_in_progress: u64,
}

#[derive(Debug, Default)]
struct Counters {
    handled: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    in_progress: AtomicU64,
    peak_in_progress: AtomicU64,
}

type DynSigner = Arc<dyn Signer + Send + Sync>;

/// The fileManager plugin of one broker for one app, for local work and tests.
///
/// It connects as the `fileManager` container: subscribes to
/// `ECCI/{B}/{app}/plugin/+/fileManager` (and the same under each mountpoint),
/// answers `reqPutURL` and `reqTransfer` as the platform's plugin does (in
/// cloud mode, a broker with several targets gets one `resTransfer` relay to
/// its plugin), and, as an edge plugin, copies relayed objects into its own
/// store before offering them. Run one per broker.
///
/// The handle owns the task: [`shutdown`](Self::shutdown) stops and joins it
/// (and the local store); dropping the handle aborts it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use ecci_files::local::LocalFileManager;
/// use ecci_transport::memory::Hub;
///
/// let hub = Hub::new();
/// let dir = std::env::temp_dir().join(format!("ecci-doc-fm-{}", std::process::id()));
/// let fm = LocalFileManager::start_local(Arc::new(hub.transport()), "app".parse()?, "b1".parse()?, &dir).await?;
/// assert!(fm.store().is_some());
/// fm.shutdown().await?;
/// # std::fs::remove_dir_all(dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalFileManager {
    store: Option<Arc<LocalStore>>,
    transport: Arc<dyn Transport>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl LocalFileManager {
    /// Starts a fileManager for `app` on `broker` with a [`LocalStore`] keeping
    /// objects under `dir`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), and [`FileManagerError::Store`].
    pub async fn start_local(
        transport: Arc<dyn Transport>,
        app: AppId,
        broker: BrokerId,
        dir: impl AsRef<std::path::Path>,
    ) -> Result<Self, FileManagerError> {
        let store = LocalStore::start(dir).await?;
        Self::start(
            transport,
            app,
            broker,
            Backend::Local(store),
            FileManagerOptions::default(),
        )
        .await
    }

    /// Starts a fileManager for `app` on `broker` over `transport` (a
    /// connection of its own: it takes the event stream), keeping objects in
    /// `backend`. Returns once subscribed.
    ///
    /// # Errors
    ///
    /// [`FileManagerError::TransportInUse`], [`FileManagerError::Subscribe`],
    /// [`FileManagerError::Client`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub async fn start(
        transport: Arc<dyn Transport>,
        app: AppId,
        broker: BrokerId,
        backend: Backend,
        options: FileManagerOptions,
    ) -> Result<Self, FileManagerError> {
        let (store, signer): (Option<Arc<LocalStore>>, DynSigner) = match backend {
            Backend::Local(store) => {
                let store = Arc::new(store);
                (Some(Arc::clone(&store)), store)
            }
            Backend::S3(presigner) => (None, Arc::new(presigner)),
        };
        let transfers = Transfers::new(options.transfer.clone())?;
        let events = transport
            .take_events()
            .ok_or(FileManagerError::TransportInUse)?;
        let mountpoints = std::iter::once("").chain(options.mountpoints.iter().map(|m| m.as_str()));
        for mountpoint in mountpoints {
            let filter = format!(
                "{mountpoint}{ECCI_MARKER}/{broker}/{app}/{}/+/{FILE_MANAGER}",
                TopicKind::Plugin
            );
            transport
                .subscribe(&filter, QoS::ExactlyOnce)
                .await
                .map_err(|source| FileManagerError::Subscribe {
                    filter: filter.clone(),
                    source,
                })?;
        }
        let mut core = FileManagerCore::new(app, broker, signer);
        core.put_ttl = options.put_ttl;
        core.get_ttl = options.get_ttl;
        core.mode = options.mode;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = watch::channel(false);
        let runner = Runner {
            core: Arc::new(core),
            transport: Arc::clone(&transport),
            transfers,
            scratch: options.scratch,
            limits: options.limits,
            max_requests: options.max_requests.max(1),
            counters: Arc::clone(&counters),
        };
        let task = tokio::spawn(runner.run(events, stopped));
        Ok(Self {
            store,
            transport,
            counters,
            stop,
            task: Some(task),
        })
    }

    /// The local store, for a [`Backend::Local`] fileManager (its faults can be
    /// switched on in tests).
    pub fn store(&self) -> Option<&LocalStore> {
        self.store.as_deref()
    }

    /// The counters so far.
    pub fn stats(&self) -> FileManagerStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FileManagerStats {
            handled: get(&self.counters.handled),
            refused: get(&self.counters.refused),
            failed: get(&self.counters.failed),
            in_progress: get(&self.counters.in_progress),
            peak_in_progress: get(&self.counters.peak_in_progress),
        }
    }

    /// Stops the task (requests in progress are abandoned), closes the
    /// transport and shuts the local store down, waiting for each.
    ///
    /// # Errors
    ///
    /// [`FileManagerError::Join`] or [`FileManagerError::Store`] when a task panicked.
    pub async fn shutdown(mut self) -> Result<(), FileManagerError> {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            task.await.map_err(FileManagerError::Join)?;
        }
        self.transport.close().await;
        if let Some(store) = self.store.take() {
            // The task and its requests are gone, so this is the last reference.
            if let Ok(store) = Arc::try_unwrap(store) {
                store.shutdown().await?;
            }
        }
        Ok(())
    }
}

impl Drop for LocalFileManager {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Runner {
    core: Arc<FileManagerCore<DynSigner>>,
    transport: Arc<dyn Transport>,
    transfers: Transfers,
    scratch: PathBuf,
    limits: DecodeLimits,
    max_requests: usize,
    counters: Arc<Counters>,
}

impl Runner {
    async fn run(self, mut events: ecci_transport::Events, mut stopped: watch::Receiver<bool>) {
        let runner = Arc::new(self);
        let mut requests = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                _ = stopped.wait_for(|s| *s) => break,
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                event = events.recv(), if requests.len() < runner.max_requests => match event {
                    None => break,
                    Some(Event::Message(message)) => {
                        let runner = Arc::clone(&runner);
                        requests.spawn(async move { runner.on_message(message).await });
                    }
                    Some(_) => {}
                },
            }
            let running = requests.len() as u64;
            runner
                .counters
                .in_progress
                .store(running, Ordering::Relaxed);
            runner
                .counters
                .peak_in_progress
                .fetch_max(running, Ordering::Relaxed);
        }
        requests.shutdown().await;
        runner.counters.in_progress.store(0, Ordering::Relaxed);
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    async fn on_message(&self, message: Message) {
        let Some((sender, request)) = self.parse(&message) else {
            Self::bump(&self.counters.refused);
            return;
        };
        let handled = match self.core.handle(&sender, request) {
            Ok(handled) => handled,
            Err(_) => {
                Self::bump(&self.counters.refused);
                return;
            }
        };
        if let Some((name, url)) = &handled.copy {
            if self.copy(name, url).await.is_err() {
                Self::bump(&self.counters.failed);
                return;
            }
        }
        for (topic, reply) in &handled.publish {
            if self.publish(topic, reply).await.is_err() {
                Self::bump(&self.counters.failed);
                return;
            }
        }
        Self::bump(&self.counters.handled);
    }

    fn parse(&self, message: &Message) -> Option<(ecci_proto::ContainerName, FileMessage)> {
        let topic = AppTopic::parse(&message.topic).ok()?;
        if topic.kind != TopicKind::Plugin || topic.receiver != FILE_MANAGER {
            return None;
        }
        let envelope = Envelope::from_pickle(&message.payload, &self.limits).ok()?;
        if envelope.kind != MessageType::File {
            return None;
        }
        let request = FileMessage::from_value(&envelope.contents).ok()?;
        Some((topic.sender, request))
    }

    /// Copies a relayed object into this plugin's store: download to a scratch
    /// file, then upload through a URL this plugin signs, so that it works the
    /// same for the local store and S3.
    async fn copy(
        &self,
        name: &str,
        from: &ecci_proto::file::PresignedUrl,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let n = COPIES.fetch_add(1, Ordering::Relaxed);
        let staged = self
            .scratch
            .join(format!(".ecci-relay-{}-{n}", std::process::id()));
        let result = async {
            self.transfers
                .download_file(name, from, &staged, TransferOptions::default())
                .await?;
            let put = self.core.signer().sign(
                Method::Put,
                self.core.bucket(),
                name,
                self.core.put_ttl,
            )?;
            self.transfers
                .upload_file(name, &put, &staged, TransferOptions::default())
                .await?;
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&staged).await;
        result
    }

    async fn publish(
        &self,
        topic: &AppTopic,
        reply: &FileMessage,
    ) -> Result<(), ecci_transport::PublishError> {
        let message = Message::new(topic.to_string(), envelope_bytes(reply), QoS::ExactlyOnce)
            .with_priority(Priority::Control);
        self.transport.publish(message).await?.await
    }
}
