//! The MQTT half of a transfer, for a container: ask the fileManager for a PUT
//! URL, upload, ask for the transfer (wire notes §6), and turn the plugin's
//! `resTransfer` messages into [`FileOffer`]s.
//!
//! The exchange does not read the transport's events itself: the owner of the
//! connection (the client) decodes `'file'` envelopes and feeds them in as
//! [`InboundFile`]s, so that one task keeps reading the broker.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ecci_proto::config::{ContainerType, Target, targets_by_broker, vars};
use ecci_proto::envelope::Envelope;
use ecci_proto::file::{FileMessage, FileNameError, PresignedUrl, validate_file_name};
use ecci_proto::pickle::{DecodeLimits, Protocol, Value};
use ecci_proto::topic::AppTopic;
use ecci_proto::{AppId, BrokerId, ContainerName};
use ecci_transport::{Message, Priority, PublishError, QoS, Transport};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

use crate::uri::origin_of;
use crate::{ClientError, Progress, TransferConfig, TransferError, TransferOptions, Transfers};

/// Who this container is, for file requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The app (`ECCI_APP_ID`).
    pub app: AppId,
    /// This container's broker (`ECCI_LOCAL_BROKER_ID`).
    pub broker: BrokerId,
    /// This container's name (`ECCI_CONTAINER_NAME`).
    pub me: ContainerName,
    /// `cloud` or `edge` (`ECCI_CONTAINER_TYPE`): where file requests go. A
    /// transfer without it fails with [`FileError::NoContainerType`].
    pub container_type: Option<ContainerType>,
}

/// Tunables of a [`FileExchange`].
///
/// ```
/// use std::time::Duration;
/// use ecci_files::ExchangeOptions;
/// let options = ExchangeOptions { reply_timeout: Duration::from_secs(5), ..ExchangeOptions::default() };
/// assert_eq!(options.url_refreshes, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeOptions {
    /// How long to wait for the fileManager's `resPutURL` (default 30 s).
    pub reply_timeout: Duration,
    /// How often a PUT URL refused as expired (403) is replaced by a fresh one
    /// before the transfer fails (default 3).
    pub url_refreshes: u32,
    /// Send the SHA-256 of the bytes with `reqTransfer` (an extra key Python
    /// peers ignore), for receivers to verify (default off: hashing costs a
    /// core's worth of time per GiB on both sides, about as much as the
    /// transfer itself on a fast link).
    pub sha256: bool,
    /// Offers waiting to be taken; when full, the exchange stops taking inbound
    /// file messages (default 64).
    pub offer_queue: usize,
    /// Bounds for decoding an in-memory object (its `max_input` bounds the download).
    pub object_limits: DecodeLimits,
    /// Origins (`scheme://host[:port]`) whose presigned URLs are always
    /// trusted; the client fills it from `ECCI_FILE_ORIGINS` (default empty).
    /// When it is not empty it also **pins** uploads: a PUT URL for any other
    /// origin is refused. An entry that is not an `http`/`https` URL matches
    /// nothing (`ECCI_FILE_ORIGINS` is checked when read). See
    /// [`FileExchange`]'s origin policy.
    pub trusted_origins: Vec<String>,
    /// The HTTP legs' tunables.
    pub transfer: TransferConfig,
}

impl Default for ExchangeOptions {
    fn default() -> Self {
        Self {
            reply_timeout: Duration::from_secs(30),
            url_refreshes: 3,
            sha256: false,
            offer_queue: 64,
            object_limits: DecodeLimits::default(),
            trusted_origins: Vec::new(),
            transfer: TransferConfig::default(),
        }
    }
}

/// A fileManager message that arrived for this container, with its topic's
/// sender and receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundFile {
    /// The sender segment of the topic (`fileManager` for the plugin).
    pub sender: ContainerName,
    /// The receiver segment: this container or one of its sub objects.
    pub receiver: ContainerName,
    /// The message.
    pub message: FileMessage,
}

/// What to send: a file on disk, bytes, or an in-memory object (pickled, as
/// Python's `putHandler(contents=…)` does).
#[derive(Debug, Clone, PartialEq)]
pub enum FileSource {
    /// A file, streamed from disk.
    Path(PathBuf),
    /// Bytes, sent as they are.
    Bytes(Bytes),
    /// A value, sent as its pickle (protocol 4); receivers `pickle.loads` it.
    Object(Value),
}

/// Why a transfer failed. Display names the file and the step; presigned URLs
/// never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The container type is needed to know where file requests go.
    #[error(
        "sending {file:?}: the container type is not set ({})",
        vars::CONTAINER_TYPE
    )]
    NoContainerType {
        /// The object's name.
        file: String,
    },
    /// No target was given.
    #[error("sending {file:?}: no targets")]
    NoTargets {
        /// The object's name.
        file: String,
    },
    /// The name is a path, not a plain file name.
    #[error("{file:?} is not a plain file name")]
    BadName {
        /// The name.
        file: String,
        /// Why.
        #[source]
        source: FileNameError,
    },
    /// A request to the fileManager could not be published.
    #[error("sending {file:?}: publishing {cmd} to the fileManager of {broker} failed")]
    Request {
        /// The object's name.
        file: String,
        /// `reqPutURL` or `reqTransfer`.
        cmd: &'static str,
        /// The plugin's broker.
        broker: BrokerId,
        /// The transport's reason.
        #[source]
        source: PublishError,
    },
    /// The fileManager did not answer `reqPutURL` in time.
    #[error("sending {file:?}: no resPutURL from the fileManager of {broker} within {after:?}")]
    Timeout {
        /// The object's name.
        file: String,
        /// The plugin's broker.
        broker: BrokerId,
        /// How long was waited.
        after: Duration,
    },
    /// Every PUT URL was refused as expired.
    #[error("sending {file:?}: {attempts} PUT URLs from the fileManager of {broker} were refused")]
    Expired {
        /// The object's name.
        file: String,
        /// The plugin's broker.
        broker: BrokerId,
        /// How many URLs were tried.
        attempts: u32,
        /// The last refusal.
        #[source]
        source: Box<TransferError>,
    },
    /// The upload or download failed; the source names the file and the leg.
    #[error("transfer failed")]
    Transfer(#[source] Box<TransferError>),
    /// The exchange was closed.
    #[error("the file exchange is closed")]
    Closed,
}

impl From<TransferError> for FileError {
    fn from(e: TransferError) -> Self {
        FileError::Transfer(Box::new(e))
    }
}

/// A presigned URL from the network that the exchange did not use, because
/// of the origin policy (see [`FileExchange`]). Display names the command, the
/// file and the origin; never the URL (its signature is a credential).
///
/// ```
/// use ecci_files::{Refusal, RefusalReason};
/// let refusal = Refusal {
///     topic: "ECCI/b1/app1/plugin/fileManager/r".into(),
///     cmd: "resTransfer",
///     file: "model.bin".into(),
///     origin: "http://10.0.0.9:9000".into(),
///     reason: RefusalReason::Untrusted,
/// };
/// assert_eq!(
///     refusal.to_string(),
///     "resTransfer of \"model.bin\" from origin http://10.0.0.9:9000 refused: \
///      the origin is not trusted (not in ECCI_FILE_ORIGINS, and not a store that answered this container)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cmd} of {file:?} from origin {origin} refused: {reason}")]
pub struct Refusal {
    /// The topic it came on (`ECCI/{broker}/{app}/plugin/{sender}/{receiver}`,
    /// without a mountpoint).
    pub topic: String,
    /// `resPutURL` or `resTransfer`.
    pub cmd: &'static str,
    /// The object's name, as it came from the network.
    pub file: String,
    /// The URL's origin (`scheme://host[:port]`), or `"(not an http URL)"`.
    pub origin: String,
    /// Why.
    pub reason: RefusalReason,
}

/// Why a [`Refusal`] was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefusalReason {
    /// A `resPutURL` for a name no send of this container is waiting for: it
    /// answers no request this container made.
    #[error("no send of this container asked for a PUT URL for it")]
    Unrequested,
    /// A `resPutURL` whose origin is not in the pinned list
    /// ([`ExchangeOptions::trusted_origins`], `ECCI_FILE_ORIGINS`).
    #[error("the origin is not in ECCI_FILE_ORIGINS")]
    NotAllowed,
    /// A `resTransfer` whose origin is neither in the list nor a store that
    /// answered this container before.
    #[error(
        "the origin is not trusted (not in ECCI_FILE_ORIGINS, and not a store that answered this container)"
    )]
    Untrusted,
}

/// The most origins an exchange learns.
const MAX_LEARNED: usize = 64;

/// What the origin policy knows: the pinned list and the learned origins.
#[derive(Debug, Default)]
struct Trust {
    /// [`ExchangeOptions::trusted_origins`], as origins.
    allowed: HashSet<String>,
    /// Origins of URLs the fileManager gave this container: PUT URLs in
    /// answer to its requests, and the first store of an offer.
    learned: HashSet<String>,
}

impl Trust {
    fn new(list: &[String]) -> Self {
        Self {
            allowed: list.iter().filter_map(|o| origin_of(o)).collect(),
            learned: HashSet::new(),
        }
    }

    /// Whether a PUT URL that answers a request of this container may be used.
    fn put(&self, origin: Option<&str>) -> Result<(), RefusalReason> {
        let origin = origin.ok_or(RefusalReason::NotAllowed)?;
        if !self.allowed.is_empty() && !self.allowed.contains(origin) {
            return Err(RefusalReason::NotAllowed);
        }
        Ok(())
    }

    /// Trusts `origin` from now on, up to [`MAX_LEARNED`] origins: answers
    /// that race a store's cannot grow the set without bound.
    fn learn(&mut self, origin: &str) {
        if self.learned.len() < MAX_LEARNED {
            self.learned.insert(origin.to_owned());
        }
    }

    /// A GET URL offered by a `resTransfer`.
    fn get(&mut self, origin: Option<&str>) -> Result<(), RefusalReason> {
        let origin = origin.ok_or(RefusalReason::Untrusted)?;
        if self.allowed.contains(origin) || self.learned.contains(origin) {
            return Ok(());
        }
        // Nothing pinned and nothing learned yet: the first store a
        // fileManager names is learned (trust on first use).
        if self.allowed.is_empty() && self.learned.is_empty() {
            self.learn(origin);
            return Ok(());
        }
        Err(RefusalReason::Untrusted)
    }
}

/// Called with every [`Refusal`]; see [`FileExchange::start_reporting`].
type Report = Box<dyn Fn(Refusal) + Send + Sync>;

/// Receivers grouped by broker: the `target` of a `reqTransfer`.
type Groups = Vec<(BrokerId, Vec<ContainerName>)>;

/// Where a send stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendProgress {
    /// The broker whose store the bytes go to now.
    pub broker: Option<BrokerId>,
    /// The upload's progress to that store.
    pub upload: Progress,
    /// Stores done (edge containers upload once per target broker).
    pub stores_done: usize,
    /// Stores to upload to.
    pub stores: usize,
}

/// What a finished send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The object's name.
    pub file_name: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256 (lowercase hex), when computed.
    pub sha256: Option<String>,
    /// The receivers, by broker, as requested from the fileManager.
    pub targets: Vec<(BrokerId, Vec<ContainerName>)>,
}

/// A send in progress: [`progress`](Self::progress) to watch it, `.await` for
/// the outcome. Dropping the handle does not stop the send; [`abort`](Self::abort) and
/// [`FileExchange::close`] do.
#[derive(Debug)]
#[must_use = "a send handle tells whether the transfer succeeded"]
pub struct SendHandle {
    progress: watch::Receiver<SendProgress>,
    task: JoinHandle<Result<Sent, FileError>>,
}

impl SendHandle {
    /// The progress, updated as bytes go out.
    pub fn progress(&self) -> watch::Receiver<SendProgress> {
        self.progress.clone()
    }

    /// Stops the send. The object may be left partial in a store; no
    /// `reqTransfer` is sent for it unless one was already.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Future for SendHandle {
    type Output = Result<Sent, FileError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map(|r| match r {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(FileError::Closed),
        })
    }
}

/// A file another container sent to this one: the plugin's `resTransfer`.
///
/// Download it to a path, into a directory under its (checked) name, or into
/// memory as an object. When the sender announced a SHA-256, every download
/// verifies it.
#[derive(Clone)]
pub struct FileOffer {
    /// Who published the `resTransfer` (the topic's sender: `fileManager`).
    pub sender: ContainerName,
    /// The receiver segment of the topic: this container or a sub object.
    pub receiver: ContainerName,
    /// The object's name, as it came from the network (not checked: see
    /// [`download_into`](Self::download_into)).
    pub file_name: String,
    /// The presigned GET URL (redacted in `Debug`).
    pub url: PresignedUrl,
    /// The SHA-256 the sender announced, if it did.
    pub sha256: Option<String>,
    transfers: Transfers,
    limits: DecodeLimits,
}

impl fmt::Debug for FileOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileOffer")
            .field("sender", &self.sender)
            .field("receiver", &self.receiver)
            .field("file_name", &self.file_name)
            .field("url", &self.url)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl FileOffer {
    fn options(&self, progress: Option<watch::Sender<Progress>>) -> TransferOptions {
        TransferOptions {
            sha256: false,
            expected_sha256: self.sha256.clone(),
            progress,
        }
    }

    /// Downloads the file to `path` (a temporary file next to it, renamed when
    /// complete and verified), resuming interrupted connections.
    ///
    /// # Errors
    ///
    /// A [`TransferError`] naming the file and the download step.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future removes the temporary file and leaves `path` as it was.
    pub async fn download_to(&self, path: &Path) -> Result<u64, TransferError> {
        self.download_to_with(path, None).await
    }

    /// As [`download_to`](Self::download_to), publishing progress to `progress`.
    ///
    /// # Errors
    ///
    /// As [`download_to`](Self::download_to).
    ///
    /// # Cancel safety
    ///
    /// As [`download_to`](Self::download_to).
    pub async fn download_to_with(
        &self,
        path: &Path,
        progress: Option<watch::Sender<Progress>>,
    ) -> Result<u64, TransferError> {
        let done = self
            .transfers
            .download_file(&self.file_name, &self.url, path, self.options(progress))
            .await?;
        Ok(done.bytes)
    }

    /// Downloads the file into `dir` under its name, after checking that the
    /// name is a plain file name (no `..`, separators or absolute paths).
    /// Returns where it landed.
    ///
    /// # Errors
    ///
    /// As [`download_to`](Self::download_to); a name that is a path fails with
    /// [`ErrorKind::BadName`](crate::ErrorKind::BadName) before any request.
    ///
    /// # Cancel safety
    ///
    /// As [`download_to`](Self::download_to).
    pub async fn download_into(&self, dir: &Path) -> Result<PathBuf, TransferError> {
        let (path, _) = self
            .transfers
            .download_into(dir, &self.file_name, &self.url, self.options(None))
            .await?;
        Ok(path)
    }

    /// Downloads an in-memory object (a pickle) and decodes it with the
    /// data-only codec, within the exchange's
    /// [`object_limits`](ExchangeOptions::object_limits).
    ///
    /// # Errors
    ///
    /// A [`TransferError`]; [`ErrorKind::Decode`](crate::ErrorKind::Decode) when
    /// it is not a data-only pickle.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn download_object(&self) -> Result<Value, TransferError> {
        self.transfers
            .download_object(&self.file_name, &self.url, &self.limits, self.options(None))
            .await
    }

    /// Downloads the raw bytes, refusing more than `max`.
    ///
    /// # Errors
    ///
    /// A [`TransferError`]; [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) beyond `max`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn download_bytes(&self, max: u64) -> Result<Vec<u8>, TransferError> {
        let (bytes, _) = self
            .transfers
            .download_bytes(&self.file_name, &self.url, max, self.options(None))
            .await?;
        Ok(bytes)
    }
}

type Waiters = Mutex<HashMap<String, mpsc::Sender<PresignedUrl>>>;

struct Shared {
    identity: Identity,
    options: ExchangeOptions,
    transport: Arc<dyn Transport>,
    transfers: Transfers,
    waiters: Waiters,
    /// One lock per file name in use: transfers of one name never interleave,
    /// because the protocol correlates by name only.
    names: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Many consumers (clones, streams) take from it, each offer once.
    offers: flume::Receiver<FileOffer>,
    closed: watch::Sender<bool>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    /// The sends running, by number: [`close`](FileExchange::close) aborts them and waits
    /// until the map is empty. An entry is made before its task is spawned (its handle is
    /// filled in after), and each task's [`SendGuard`] removes it when the task ends or is
    /// aborted.
    sends: watch::Sender<HashMap<u64, Option<AbortHandle>>>,
    next_send: AtomicU64,
    trust: Mutex<Trust>,
    report: Report,
    refused: AtomicU64,
}

impl Shared {
    /// Counts and reports a refused URL of `cmd` about `file`, which came from
    /// `sender` to `receiver`.
    fn refuse(
        &self,
        (sender, receiver): (&ContainerName, &ContainerName),
        cmd: &'static str,
        file: String,
        origin: Option<String>,
        reason: RefusalReason,
    ) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let identity = &self.identity;
        (self.report)(Refusal {
            topic: format!(
                "ECCI/{}/{}/plugin/{sender}/{receiver}",
                identity.broker, identity.app
            ),
            cmd,
            file,
            origin: origin.unwrap_or_else(|| "(not an http URL)".to_owned()),
            reason,
        });
    }

    fn trust(&self) -> std::sync::MutexGuard<'_, Trust> {
        self.trust
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes a send from [`Shared::sends`] when its task ends, however it ends.
struct SendGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for SendGuard {
    fn drop(&mut self) {
        self.shared.sends.send_modify(|sends| {
            sends.remove(&self.id);
        });
    }
}

/// The file side of a container: sends files and objects through the
/// fileManager and receives offers.
///
/// Cheap to clone. One dispatcher task reads the [`InboundFile`]s fed to it;
/// [`close`](Self::close) stops and joins it.
///
/// # Origin policy
///
/// A presigned URL from the network is used only for an origin
/// (`scheme://host[:port]`) the exchange trusts; every other one becomes a
/// [`Refusal`] (for the reporter of [`start_reporting`](Self::start_reporting),
/// counted in [`refused`](Self::refused)) and no connection is made to it:
///
/// - a `resPutURL` is taken only by a send waiting for that name: one that
///   answers no request of this container is refused as
///   [`RefusalReason::Unrequested`];
/// - when [`ExchangeOptions::trusted_origins`] is not empty, a `resPutURL` for
///   another origin is refused ([`RefusalReason::NotAllowed`]) and the send
///   keeps waiting for a trusted answer;
/// - a `resTransfer` is taken when its origin is listed or **learned**: the
///   origins of the PUT URLs this container took, and, while nothing is
///   listed or learned, the first origin offered (trust on first use);
///   otherwise [`RefusalReason::Untrusted`].
///
/// The HTTP legs never follow redirects.
///
/// ```no_run
/// # async fn demo(exchange: ecci_files::FileExchange, targets: Vec<ecci_proto::Target>) -> Result<(), Box<dyn std::error::Error>> {
/// use ecci_files::FileSource;
/// let sent = exchange.send(FileSource::Path("model.bin".into()), "model.bin", targets)?.await?;
/// println!("sent {} bytes", sent.bytes);
/// while let Some(offer) = exchange.next_offer().await {
///     let path = offer.download_into("/data".as_ref()).await?;
///     println!("received {}", path.display());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileExchange {
    shared: Arc<Shared>,
}

impl fmt::Debug for FileExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileExchange")
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

impl FileExchange {
    /// Starts the exchange for `identity` over `transport`, reading the file
    /// messages addressed to this container from `inbound`.
    ///
    /// # Errors
    ///
    /// [`ClientError`] when the HTTP client cannot be set up.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(
        identity: Identity,
        options: ExchangeOptions,
        transport: Arc<dyn Transport>,
        inbound: mpsc::Receiver<InboundFile>,
    ) -> Result<Self, ClientError> {
        Self::start_reporting(identity, options, transport, inbound, |_| {})
    }

    /// As [`start`](Self::start), calling `report` with every [`Refusal`] of
    /// the origin policy (the client turns them into error events). It is
    /// called from the dispatcher: it must not block.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start_reporting(
        identity: Identity,
        options: ExchangeOptions,
        transport: Arc<dyn Transport>,
        inbound: mpsc::Receiver<InboundFile>,
        report: impl Fn(Refusal) + Send + Sync + 'static,
    ) -> Result<Self, ClientError> {
        let transfers = Transfers::new(options.transfer.clone())?;
        let trust = Mutex::new(Trust::new(&options.trusted_origins));
        let (offer_tx, offer_rx) = flume::bounded(options.offer_queue.max(1));
        let (closed, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            identity,
            options,
            transport,
            transfers,
            waiters: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            offers: offer_rx,
            closed,
            dispatcher: Mutex::new(None),
            sends: watch::Sender::new(HashMap::new()),
            next_send: AtomicU64::new(0),
            trust,
            report: Box::new(report),
            refused: AtomicU64::new(0),
        });
        let task = tokio::spawn(dispatch(
            Arc::downgrade(&shared),
            inbound,
            offer_tx,
            closed_rx,
        ));
        if let Ok(mut slot) = shared.dispatcher.lock() {
            *slot = Some(task);
        }
        Ok(Self { shared })
    }

    /// Who this container is.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// How many presigned URLs the origin policy refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The HTTP client of the exchange.
    pub fn transfers(&self) -> &Transfers {
        &self.shared.transfers
    }

    /// Sends `source` as the object `name` to `targets` (already selected, see
    /// [`Config::select_targets`](ecci_proto::Config::select_targets)), as
    /// wire notes §6 says:
    ///
    /// - a **cloud** container asks its own broker's fileManager for a PUT URL,
    ///   uploads, and sends one `reqTransfer` naming every target broker;
    /// - an **edge** container does that with the fileManager of each broker
    ///   hosting a target, one after the other (the replies all arrive on this
    ///   container's topic, correlated by name only), each `reqTransfer`
    ///   naming that broker alone.
    ///
    /// A PUT URL refused as expired is replaced by a fresh one
    /// ([`ExchangeOptions::url_refreshes`] times). Sends of the same name wait
    /// for each other; different names run concurrently. The file is streamed:
    /// memory use does not grow with its size.
    ///
    /// # Errors
    ///
    /// [`FileError::BadName`], [`FileError::NoTargets`] and
    /// [`FileError::NoContainerType`] at once; everything else through the
    /// handle.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn send(
        &self,
        source: FileSource,
        name: &str,
        targets: Vec<Target>,
    ) -> Result<SendHandle, FileError> {
        validate_file_name(name).map_err(|source| FileError::BadName {
            file: name.to_owned(),
            source,
        })?;
        if targets.is_empty() {
            return Err(FileError::NoTargets {
                file: name.to_owned(),
            });
        }
        let Some(container_type) = self.shared.identity.container_type else {
            return Err(FileError::NoContainerType {
                file: name.to_owned(),
            });
        };
        if *self.shared.closed.borrow() {
            return Err(FileError::Closed);
        }
        let groups: Groups = targets_by_broker(&targets)
            .into_iter()
            .map(|(b, cs)| (b.clone(), cs.into_iter().cloned().collect()))
            .collect();
        let stores = match container_type {
            ContainerType::Cloud => 1,
            ContainerType::Edge => groups.len(),
        };
        let (progress_tx, progress) = watch::channel(SendProgress {
            stores,
            ..SendProgress::default()
        });
        let job = Job {
            shared: Arc::clone(&self.shared),
            name: name.to_owned(),
            source,
            groups,
            container_type,
            progress: progress_tx,
        };
        let id = self.shared.next_send.fetch_add(1, Ordering::Relaxed);
        self.shared.sends.send_modify(|sends| {
            sends.insert(id, None);
        });
        let guard = SendGuard {
            shared: Arc::clone(&self.shared),
            id,
        };
        let task = tokio::spawn(async move {
            let _guard = guard;
            job.run().await
        });
        let abort = task.abort_handle();
        // Filling in the handle changes nothing `close` waits for: no wake-up.
        self.shared.sends.send_if_modified(|sends| {
            if let Some(slot) = sends.get_mut(&id) {
                *slot = Some(abort.clone());
            }
            false
        });
        // A close that ran while the entry had no handle yet did not abort this send.
        if *self.shared.closed.borrow() {
            abort.abort();
        }
        Ok(SendHandle { progress, task })
    }

    /// The next offer, or `None` once the exchange is closed and none is left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no offer is lost.
    pub async fn next_offer(&self) -> Option<FileOffer> {
        self.shared.offers.recv_async().await.ok()
    }

    /// The offer waiting first, if any; `None` when none is waiting (or the
    /// exchange is closed and none is left).
    pub fn try_next_offer(&self) -> Option<FileOffer> {
        self.shared.offers.try_recv().ok()
    }

    /// The offers as a [`Stream`](futures_core::Stream). Clones of the
    /// exchange and streams compete for the same offers, each taken once, in
    /// the order they arrived.
    ///
    /// A stream waiting for an offer holds nothing: other streams and
    /// [`next_offer`](Self::next_offer) take offers meanwhile (the queue is a
    /// multi-consumer [`flume`] channel, not a locked receiver). No offer is
    /// lost when a stream or a `next_offer` future is dropped.
    pub fn offers(&self) -> Offers {
        Offers {
            rx: self.shared.offers.clone(),
            stream: self.shared.offers.clone().into_stream(),
        }
    }

    /// Stops the dispatcher and the sends in progress, and waits for them to end.
    /// The stopped sends' handles resolve to [`FileError::Closed`]; their objects may be
    /// left partial in a store, and no `reqTransfer` is sent for them unless one was
    /// already.
    pub async fn close(&self) {
        self.shared.closed.send_replace(true);
        self.shared.sends.send_if_modified(|sends| {
            for abort in sends.values().flatten() {
                abort.abort();
            }
            false
        });
        let mut running = self.shared.sends.subscribe();
        // The sender lives in `shared`, which `self` keeps alive.
        let _ = running.wait_for(HashMap::is_empty).await;
        let task = self
            .shared
            .dispatcher
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(task) = task {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
}

/// The offers of a [`FileExchange`] as a stream; see [`FileExchange::offers`].
pub struct Offers {
    rx: flume::Receiver<FileOffer>,
    stream: flume::r#async::RecvStream<'static, FileOffer>,
}

impl fmt::Debug for Offers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offers").finish_non_exhaustive()
    }
}

impl Offers {
    /// The next offer; see [`FileExchange::next_offer`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn recv(&self) -> Option<FileOffer> {
        self.rx.recv_async().await.ok()
    }
}

impl futures_core::Stream for Offers {
    type Item = FileOffer;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FileOffer>> {
        Pin::new(&mut self.stream).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

/// Routes inbound file messages: PUT URLs to the send waiting for them,
/// transfers to the offer queue (waiting for room).
async fn dispatch(
    shared: std::sync::Weak<Shared>,
    mut inbound: mpsc::Receiver<InboundFile>,
    offers: flume::Sender<FileOffer>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return,
            next = inbound.recv() => next,
        };
        let Some(InboundFile {
            sender,
            receiver,
            message,
        }) = next
        else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match message {
            FileMessage::ResPutUrl {
                file_name, put_url, ..
            } => {
                let origin = origin_of(put_url.expose());
                let waiter = shared
                    .waiters
                    .lock()
                    .ok()
                    .and_then(|w| w.get(&file_name).cloned());
                // Nobody waiting: not an answer to a request of this container
                // (or a late one, to a request that timed out).
                let Some(waiter) = waiter else {
                    let reason = RefusalReason::Unrequested;
                    shared.refuse((&sender, &receiver), "resPutURL", file_name, origin, reason);
                    continue;
                };
                let checked = shared.trust().put(origin.as_deref());
                let reason = match checked {
                    // Taken by the send: its origin is learned.
                    Ok(()) if waiter.try_send(put_url).is_ok() => {
                        if let Some(origin) = &origin {
                            shared.trust().learn(origin);
                        }
                        continue;
                    }
                    // The send has more answers waiting than it asked for.
                    Ok(()) => RefusalReason::Unrequested,
                    Err(reason) => reason,
                };
                let from = (&sender, &receiver);
                shared.refuse(from, "resPutURL", file_name, origin, reason);
            }
            FileMessage::ResTransfer {
                file_name,
                get_url,
                sha256,
            } => {
                let origin = origin_of(get_url.expose());
                let checked = shared.trust().get(origin.as_deref());
                if let Err(reason) = checked {
                    let from = (&sender, &receiver);
                    shared.refuse(from, "resTransfer", file_name, origin, reason);
                    continue;
                }
                let offer = FileOffer {
                    sender,
                    receiver,
                    file_name,
                    url: get_url,
                    sha256,
                    transfers: shared.transfers.clone(),
                    limits: shared.options.object_limits.clone(),
                };
                drop(shared);
                tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => return,
                    sent = offers.send_async(offer) => if sent.is_err() { return },
                }
            }
            // Requests and relays are for plugins, not containers.
            FileMessage::ReqPutUrl { .. }
            | FileMessage::ReqTransfer { .. }
            | FileMessage::RelayTransfer { .. } => {}
        }
    }
}

/// One send, run as its own task.
struct Job {
    shared: Arc<Shared>,
    name: String,
    source: FileSource,
    groups: Groups,
    container_type: ContainerType,
    progress: watch::Sender<SendProgress>,
}

/// Unregisters the PUT URL waiter of a name when the send ends, however it ends.
struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    name: &'a str,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(self.name);
        }
    }
}

impl Job {
    async fn run(self) -> Result<Sent, FileError> {
        let lock = {
            let mut names = self
                .shared
                .names
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(names.entry(self.name.clone()).or_default())
        };
        let outcome = {
            let _turn = lock.lock().await;
            self.run_locked().await
        };
        let mut names = self
            .shared
            .names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Ours and the map's: nobody else waits for this name.
        if Arc::strong_count(&lock) == 2 {
            names.remove(&self.name);
        }
        outcome
    }

    async fn run_locked(&self) -> Result<Sent, FileError> {
        let (url_tx, mut urls) = mpsc::channel(4);
        if let Ok(mut w) = self.shared.waiters.lock() {
            w.insert(self.name.clone(), url_tx);
        }
        let _guard = WaiterGuard {
            waiters: &self.shared.waiters,
            name: &self.name,
        };
        let me = &self.shared.identity.broker;
        let rounds: Vec<(BrokerId, Groups)> = match self.container_type {
            ContainerType::Cloud => vec![(me.clone(), self.groups.clone())],
            ContainerType::Edge => self
                .groups
                .iter()
                .map(|g| (g.0.clone(), vec![g.clone()]))
                .collect(),
        };
        let mut last = None;
        for (done, (broker, target)) in rounds.into_iter().enumerate() {
            self.progress.send_modify(|p| {
                p.broker = Some(broker.clone());
                p.stores_done = done;
            });
            let sent = self.upload_to(&broker, &mut urls).await?;
            let request = FileMessage::ReqTransfer {
                file_name: self.name.clone(),
                target,
                sha256: sent.sha256.clone(),
            };
            self.request(&broker, &request).await?;
            last = Some(sent);
        }
        self.progress.send_modify(|p| p.stores_done = p.stores);
        let sent = last.unwrap_or(crate::Transferred {
            bytes: 0,
            sha256: None,
        });
        Ok(Sent {
            file_name: self.name.clone(),
            bytes: sent.bytes,
            sha256: sent.sha256,
            targets: self.groups.clone(),
        })
    }

    /// Gets a PUT URL from `broker`'s fileManager and uploads, with fresh URLs
    /// for expired ones.
    async fn upload_to(
        &self,
        broker: &BrokerId,
        urls: &mut mpsc::Receiver<PresignedUrl>,
    ) -> Result<crate::Transferred, FileError> {
        let identity = &self.shared.identity;
        // No `file_path`, whatever the source: the plugin only echoes it, and a
        // local path is nobody else's business. The request is the one Python
        // sends for an in-memory object.
        let request = FileMessage::ReqPutUrl {
            source_broker_id: identity.broker.clone(),
            file_name: self.name.clone(),
            file_path: None,
        };
        let limit = self.shared.options.url_refreshes;
        let mut attempt = 0;
        loop {
            // A stale answer (to a request that timed out) must not be taken
            // for the answer to this one.
            while urls.try_recv().is_ok() {}
            self.request(broker, &request).await?;
            let url = self.wait_url(broker, urls).await?;
            let (progress_tx, mut progress_rx) = watch::channel(Progress::default());
            let options = TransferOptions {
                sha256: self.shared.options.sha256,
                expected_sha256: None,
                progress: Some(progress_tx),
            };
            let forward = async {
                while progress_rx.changed().await.is_ok() {
                    let p = *progress_rx.borrow_and_update();
                    self.progress.send_modify(|s| s.upload = p);
                }
                std::future::pending::<()>().await
            };
            let upload = self.upload(&url, options);
            let result = tokio::select! {
                r = upload => r,
                () = forward => unreachable!("forwarding never ends by itself"),
            };
            match result {
                Ok(sent) => {
                    self.progress.send_modify(|s| {
                        s.upload = Progress {
                            done: sent.bytes,
                            total: Some(sent.bytes),
                        }
                    });
                    return Ok(sent);
                }
                Err(e) if e.is_expired() && attempt < limit => attempt += 1,
                Err(e) if e.is_expired() => {
                    return Err(FileError::Expired {
                        file: self.name.clone(),
                        broker: broker.clone(),
                        attempts: attempt + 1,
                        source: Box::new(e),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn upload(
        &self,
        url: &PresignedUrl,
        options: TransferOptions,
    ) -> Result<crate::Transferred, TransferError> {
        let t = &self.shared.transfers;
        match &self.source {
            FileSource::Path(path) => t.upload_file(&self.name, url, path, options).await,
            FileSource::Bytes(bytes) => {
                t.upload_bytes(&self.name, url, bytes.clone(), options)
                    .await
            }
            FileSource::Object(value) => {
                let bytes = Bytes::from(ecci_proto::pickle::encode(value, Protocol::V4));
                t.upload_bytes(&self.name, url, bytes, options).await
            }
        }
    }

    async fn wait_url(
        &self,
        broker: &BrokerId,
        urls: &mut mpsc::Receiver<PresignedUrl>,
    ) -> Result<PresignedUrl, FileError> {
        let after = self.shared.options.reply_timeout;
        let mut closed = self.shared.closed.subscribe();
        tokio::select! {
            _ = closed.wait_for(|c| *c) => Err(FileError::Closed),
            got = tokio::time::timeout(after, urls.recv()) => match got {
                Ok(Some(url)) => Ok(url),
                Ok(None) => Err(FileError::Closed),
                Err(_) => Err(FileError::Timeout {
                    file: self.name.clone(),
                    broker: broker.clone(),
                    after,
                }),
            },
        }
    }

    /// Publishes `message` to `broker`'s fileManager and waits for the broker's
    /// acknowledgement.
    async fn request(&self, broker: &BrokerId, message: &FileMessage) -> Result<(), FileError> {
        let identity = &self.shared.identity;
        let topic =
            AppTopic::file_request(broker.clone(), identity.app.clone(), identity.me.clone());
        let payload = envelope_bytes(message);
        let failed = |source| FileError::Request {
            file: self.name.clone(),
            cmd: message.cmd(),
            broker: broker.clone(),
            source,
        };
        let receipt = self
            .shared
            .transport
            .publish(
                Message::new(topic.to_string(), payload, QoS::ExactlyOnce)
                    .with_priority(Priority::Control),
            )
            .await
            .map_err(failed)?;
        receipt.await.map_err(failed)
    }
}

/// The pickled `'file'` envelope of `message`.
pub(crate) fn envelope_bytes(message: &FileMessage) -> Bytes {
    let envelope: Envelope = message.to_envelope();
    Bytes::from(envelope.to_pickle(Protocol::V4))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "http://minio:9000";
    const OTHER: &str = "http://evil:9000";

    #[test]
    fn unpinned_puts_are_taken_and_the_first_offer_is_learned() {
        let mut trust = Trust::new(&[]);
        assert_eq!(trust.put(Some(OTHER)), Ok(()));
        assert_eq!(trust.put(None), Err(RefusalReason::NotAllowed));
        assert_eq!(trust.get(None), Err(RefusalReason::Untrusted));
        assert_eq!(trust.get(Some(STORE)), Ok(()), "first use");
        assert_eq!(trust.get(Some(STORE)), Ok(()));
        assert_eq!(trust.get(Some(OTHER)), Err(RefusalReason::Untrusted));
    }

    #[test]
    fn a_learned_put_origin_is_trusted_for_offers() {
        let mut trust = Trust::new(&[]);
        trust.learn(STORE);
        assert_eq!(trust.get(Some(OTHER)), Err(RefusalReason::Untrusted));
        assert_eq!(trust.get(Some(STORE)), Ok(()));
    }

    #[test]
    fn a_list_pins_puts_and_admits_offers() {
        let mut trust = Trust::new(&["HTTP://MinIO:9000/".to_owned(), "not a url".to_owned()]);
        assert_eq!(trust.put(Some(STORE)), Ok(()));
        assert_eq!(trust.put(Some(OTHER)), Err(RefusalReason::NotAllowed));
        assert_eq!(
            trust.get(Some(OTHER)),
            Err(RefusalReason::Untrusted),
            "no first use when pinned"
        );
        assert_eq!(trust.get(Some(STORE)), Ok(()));
    }

    #[test]
    fn learning_is_bounded() {
        let mut trust = Trust::new(&[]);
        for port in 0..1000 {
            trust.learn(&format!("http://h:{port}"));
        }
        assert_eq!(trust.learned.len(), MAX_LEARNED);
    }
}
