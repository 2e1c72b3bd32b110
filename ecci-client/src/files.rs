//! File transfer from the facade: [`Files`] selects targets as a publish does
//! (wire.md §5) and hands the rest to `ecci-files`' exchange, which the
//! client's task feeds with the `'file'` messages it receives.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use ecci_files::{
    ClientError, ExchangeOptions, FileExchange, FileOffer, FileSource, Identity, InboundFile,
    Offers, SendHandle,
};
use ecci_proto::pickle::{Value, to_value};
use ecci_transport::Transport;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::client::{Counters, bump};
use crate::inbound::{ErrorEvent, InboundError, Weighed};
use crate::{Error, Targets};

/// Starts the client's file exchange: trusts the origins of `ECCI_FILE_ORIGINS` beside
/// [`ExchangeOptions::trusted_origins`], and raises every refusal of the origin policy
/// as an [`ErrorEvent`] (counted as the client's errors; never waits).
pub(crate) fn start_exchange(
    identity: Identity,
    config: &ecci_proto::Config,
    mut options: ExchangeOptions,
    transport: Arc<dyn Transport>,
    inbound: mpsc::Receiver<InboundFile>,
    (errors, counters): (mpsc::Sender<Weighed<ErrorEvent>>, Arc<Counters>),
) -> Result<FileExchange, ClientError> {
    options
        .trusted_origins
        .extend(config.file_origins().iter().cloned());
    FileExchange::start_reporting(identity, options, transport, inbound, move |refusal| {
        bump(&counters.errors);
        let event = ErrorEvent {
            topic: refusal.topic.clone(),
            // The message holds a presigned URL, a credential: the refusal
            // names its file and origin, and the payload is not kept.
            payload: bytes::Bytes::new(),
            error: InboundError::FileUrl(refusal),
        };
        // Without a payload, it weighs nothing against `error_queue_bytes`.
        if errors.try_send((event, 0)).is_err() {
            bump(&counters.errors_dropped);
        }
    })
}

/// The file side of a [`Client`](crate::Client): send files and objects to
/// targets through the platform's fileManager, and receive the files others
/// send as [`FileOffer`]s. Get it with [`Client::files`](crate::Client::files);
/// cheap to clone.
///
/// Where requests go depends on `ECCI_CONTAINER_TYPE` (`cloud` or `edge`, wire.md §6):
/// sending without it fails with an error naming the variable.
///
/// ```no_run
/// # async fn demo(client: ecci_client::Client) -> Result<(), ecci_client::Error> {
/// let files = client.files();
/// // Python: putHandler('model', 'containerB', filepath='./model.bin')
/// let sent = files.send_file("./model.bin", "model", "containerB")?;
/// let mut progress = sent.progress();
/// tokio::spawn(async move {
///     while progress.changed().await.is_ok() {
///         let p = progress.borrow().upload;
///         println!("{} of {:?} bytes", p.done, p.total);
///     }
/// });
/// sent.await?;
///
/// // On the receiving side: download_file / download_contents.
/// let offer = files.next_offer().await?;
/// offer.download_to("/data/model.bin".as_ref()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Files {
    pub(crate) exchange: FileExchange,
    pub(crate) config: std::sync::Arc<ecci_proto::Config>,
}

impl Files {
    /// Sends the file at `path` as the object `name` to `targets`, streaming
    /// it from disk. The handle reports progress and resolves when every
    /// fileManager concerned has the `reqTransfer`.
    ///
    /// # Errors
    ///
    /// At once: [`Error::Target`]/[`Error::NotATarget`]/[`Error::NoPubTargets`]
    /// as for a publish, [`Error::File`] for a name that is a path or an unset
    /// `ECCI_CONTAINER_TYPE`. Through the handle: [`ecci_files::FileError`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn send_file(
        &self,
        path: impl AsRef<Path>,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<SendHandle, Error> {
        let path: PathBuf = path.as_ref().to_path_buf();
        self.send(FileSource::Path(path), name, targets)
    }

    /// Sends `object` (any serde type) pickled, as Python's
    /// `putHandler(contents=…)` does; a receiver decodes it with
    /// [`FileOffer::download_object`] or Python's `pickle.loads`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], or as [`send_file`](Self::send_file).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn send_object<T: Serialize + ?Sized>(
        &self,
        object: &T,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<SendHandle, Error> {
        let value = to_value(object).map_err(Error::Encode)?;
        self.send_value(value, name, targets)
    }

    /// Sends a dynamic [`Value`] pickled; see [`send_object`](Self::send_object).
    ///
    /// # Errors
    ///
    /// As [`send_file`](Self::send_file).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn send_value(
        &self,
        value: Value,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<SendHandle, Error> {
        self.send(FileSource::Object(value), name, targets)
    }

    /// Sends `source` as `name` to `targets`.
    ///
    /// # Errors
    ///
    /// As [`send_file`](Self::send_file).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn send(
        &self,
        source: FileSource,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<SendHandle, Error> {
        let selected = crate::client::select(&self.config, targets.into())?
            .into_iter()
            .cloned()
            .collect();
        Ok(self.exchange.send(source, name, selected)?)
    }

    /// The next file another container sent to this one.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and no offer is left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn next_offer(&self) -> Result<FileOffer, Error> {
        self.exchange.next_offer().await.ok_or(Error::Closed)
    }

    /// The offers as a [`Stream`](futures_core::Stream); clones and streams compete for
    /// them, each offer taken once, and a waiting stream holds nothing (see
    /// [`FileExchange::offers`]).
    pub fn offers(&self) -> Offers {
        self.exchange.offers()
    }

    /// The exchange underneath.
    pub fn exchange(&self) -> &FileExchange {
        &self.exchange
    }
}
