//! A blocking [`Client`] for synchronous programs, the habit of the Python SDK's users:
//! no `async`, no Tokio in sight.
//!
//! It owns a small Tokio runtime (one worker thread) that runs the async
//! [`crate::Client`]; every method blocks the calling thread until done.
//!
//! ```no_run
//! use std::time::Duration;
//! use ecci_client::blocking::Client;
//!
//! let client = Client::from_env()?;
//! client.wait_started(Duration::from_secs(60))?;
//! client.publish(&"hello", "worker")?.wait()?; // until the brokers have it
//! let message = client.recv_data()?;
//! println!("{} sent {:?}", message.sender(), message.contents.value());
//! # Ok::<(), ecci_client::Error>(())
//! ```
//!
//! Do not call it from inside an async context (a Tokio task): blocking there panics. Use
//! the async [`crate::Client`] instead.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ecci_proto::Config;
use ecci_proto::envelope::Envelope;
use serde::Serialize;
use tokio::runtime::Runtime;

#[cfg(feature = "files")]
use ecci_files::{FileOffer, Sent};
#[cfg(feature = "files")]
use ecci_proto::pickle::Value;

use crate::{ClientBuilder, Error, ErrorEvent, Metrics, Received, Status, Targets};

struct Inner {
    // `Option` so that `Drop` can shut the runtime down without blocking.
    runtime: Option<Runtime>,
    client: crate::Client,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Outside any runtime, close cleanly; inside one, blocking would panic.
            if tokio::runtime::Handle::try_current().is_err() {
                runtime.block_on(self.client.close());
            }
            runtime.shutdown_background();
        }
    }
}

/// A blocking ECCI client; see the [module docs](self). Cheap to clone; clones share the
/// connection. Dropping the last clone closes it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Client")
            .field(&self.inner.client)
            .finish()
    }
}

/// The receipt of a blocking publish; [`wait`](Self::wait) until every target's broker
/// acknowledged it, or drop it to not wait. A message not yet acknowledged when the
/// client closes (also when the last clone is dropped, e.g. at the end of `main`) may be
/// lost: wait for the last ones before exiting.
#[derive(Debug)]
pub struct Delivery {
    delivery: crate::Delivery,
    handle: tokio::runtime::Handle,
}

impl Delivery {
    /// Where the message went.
    pub fn targets(&self) -> &[String] {
        self.delivery.targets()
    }

    /// Blocks until every target's broker acknowledged the message.
    ///
    /// # Errors
    ///
    /// [`Error::Publish`] with the transport's reason.
    pub fn wait(self) -> Result<(), Error> {
        self.handle.block_on(self.delivery)
    }

    /// Blocks until every receiving container has the message (end-to-end delivery): see
    /// [`crate::Delivery::delivered`].
    ///
    /// # Errors
    ///
    /// As [`crate::Delivery::delivered`]: [`Error::NotDelivered`] when a receiving
    /// container did not acknowledge it in time.
    pub fn delivered(self) -> Result<crate::Confirmation, Error> {
        self.handle.block_on(self.delivery.delivered())
    }

    /// Like [`wait`](Self::wait), for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or as [`wait`](Self::wait).
    pub fn wait_timeout(self, timeout: Duration) -> Result<(), Error> {
        let delivery = self.delivery;
        self.handle.block_on(async move {
            tokio::time::timeout(timeout, delivery)
                .await
                .unwrap_or(Err(Error::Timeout {
                    operation: "waiting for acknowledgement",
                    after: timeout,
                    waiting_for: Vec::new(),
                }))
        })
    }
}

impl Client {
    /// Reads the `ECCI_*` variables and connects to the local broker over MQTT.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::from_env`], or [`Error::Runtime`].
    pub fn from_env() -> Result<Client, Error> {
        Client::connect(Config::from_env()?)
    }

    /// Connects with `config` over MQTT.
    ///
    /// # Errors
    ///
    /// As [`crate::ClientBuilder::connect`], or [`Error::Runtime`].
    pub fn connect(config: Config) -> Result<Client, Error> {
        Client::with_builder(|| crate::Client::builder(config))
    }

    /// Connects with a builder made inside the client's runtime (so that it may create
    /// transports that need one).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ecci_client::blocking::Client;
    /// use ecci_transport::memory::Hub;
    ///
    /// let config = ecci_proto::Config::builder("unused", "b".parse()?, "app".parse()?, "me".parse()?)
    ///     .pub_target("me".parse()?, "b".parse()?)
    ///     .build()?;
    /// let hub = Hub::new();
    /// let client = Client::with_builder(|| {
    ///     ecci_client::Client::builder(config).transport(Arc::new(hub.transport()))
    /// })?;
    /// client.publish(&"to myself", "me")?.wait()?;
    /// assert_eq!(client.recv_data()?.decode::<String>()?, "to myself");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`crate::ClientBuilder::connect`], or [`Error::Runtime`].
    pub fn with_builder(builder: impl FnOnce() -> ClientBuilder) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ecci-client")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let client = runtime.block_on(async move { builder().connect().await })?;
        Ok(Client {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                client,
            }),
        })
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.inner.runtime {
            Some(runtime) => runtime.block_on(future),
            // Only `Drop` takes the runtime, and it has the last reference.
            None => unreachable!("the runtime lives as long as the client"),
        }
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.inner.runtime {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the runtime lives as long as the client"),
        }
    }

    /// The async client inside, to mix both styles.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner.client
    }

    /// Publishes data to `targets`; see [`crate::Client::publish`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::publish`].
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        contents: &T,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        let delivery = self.block_on(self.inner.client.publish(contents, targets))?;
        Ok(Delivery {
            delivery,
            handle: self.handle(),
        })
    }

    /// Publishes a command to `targets`; see [`crate::Client::publish_cmd`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::publish`].
    pub fn publish_cmd(
        &self,
        command: impl Into<crate::Command>,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        let delivery = self.block_on(self.inner.client.publish_cmd(command, targets))?;
        Ok(Delivery {
            delivery,
            handle: self.handle(),
        })
    }

    /// Publishes a ready-made envelope; see [`crate::Client::publish_envelope`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::publish`].
    pub fn publish_envelope(
        &self,
        envelope: Envelope,
        targets: impl Into<Targets>,
    ) -> Result<Delivery, Error> {
        let delivery = self.block_on(self.inner.client.publish_envelope(envelope, targets))?;
        Ok(Delivery {
            delivery,
            handle: self.handle(),
        })
    }

    /// Blocks until a data message arrives.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    pub fn recv_data(&self) -> Result<Received, Error> {
        self.block_on(self.inner.client.recv_data())
    }

    /// Like [`recv_data`](Self::recv_data), for at most `timeout`: `Ok(None)` when nothing
    /// came.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    pub fn recv_data_timeout(&self, timeout: Duration) -> Result<Option<Received>, Error> {
        self.block_on(async {
            match tokio::time::timeout(timeout, self.inner.client.recv_data()).await {
                Ok(received) => received.map(Some),
                Err(_) => Ok(None),
            }
        })
    }

    /// Blocks until a command arrives.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    pub fn recv_cmd(&self) -> Result<Received, Error> {
        self.block_on(self.inner.client.recv_cmd())
    }

    /// Like [`recv_cmd`](Self::recv_cmd), for at most `timeout`: `Ok(None)` when nothing
    /// came.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and the queue is empty.
    pub fn recv_cmd_timeout(&self, timeout: Duration) -> Result<Option<Received>, Error> {
        self.block_on(async {
            match tokio::time::timeout(timeout, self.inner.client.recv_cmd()).await {
                Ok(received) => received.map(Some),
                Err(_) => Ok(None),
            }
        })
    }

    /// The next error event if one is waiting.
    pub fn try_recv_error(&self) -> Option<ErrorEvent> {
        self.inner.client.errors().try_recv()
    }

    /// Blocks until the readiness handshake completed; see [`crate::Client::wait_started`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::wait_started`].
    pub fn wait_started(&self, timeout: Duration) -> Result<(), Error> {
        self.block_on(self.inner.client.wait_started(timeout))
    }

    /// Blocks until an `exit` command arrived, for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or as [`crate::Client::exit_requested`].
    pub fn wait_exit(&self, timeout: Duration) -> Result<(), Error> {
        self.block_on(async {
            tokio::time::timeout(timeout, self.inner.client.exit_requested())
                .await
                .unwrap_or(Err(Error::Timeout {
                    operation: "waiting for exit",
                    after: timeout,
                    waiting_for: Vec::new(),
                }))
        })
    }

    /// Whether an `exit` command arrived.
    pub fn is_exit_requested(&self) -> bool {
        self.inner.client.status().exit_requested
    }

    /// Where the client stands.
    pub fn status(&self) -> Status {
        self.inner.client.status()
    }

    /// Reports a completed period; see [`crate::Client::send_complete`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::send_complete`].
    pub fn send_complete(&self, period: &str) -> Result<Delivery, Error> {
        let delivery = self.block_on(self.inner.client.send_complete(period))?;
        Ok(Delivery {
            delivery,
            handle: self.handle(),
        })
    }

    /// Sends algorithm data to the platform; see [`crate::Client::send_data`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::send_data`].
    pub fn send_data<T: Serialize + ?Sized>(
        &self,
        data: &T,
        algorithm_type: &str,
    ) -> Result<Delivery, Error> {
        let delivery = self.block_on(self.inner.client.send_data(data, algorithm_type))?;
        Ok(Delivery {
            delivery,
            handle: self.handle(),
        })
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        self.inner.client.metrics()
    }

    /// Closes the client (every clone); see [`crate::Client::close`].
    pub fn close(&self) {
        self.block_on(self.inner.client.close());
    }
}

/// File transfer (the `files` feature), under the async API's names: [`crate::Files`]'s
/// `send_file`, `send_object`, `next_offer` and [`FileOffer`]'s `download_to`,
/// `download_object`. The Python SDK's names are search aliases.
#[cfg(feature = "files")]
impl Client {
    /// Sends the file at `path` as the object `name` to `targets` and blocks until the
    /// fileManager has the transfer (Python: `putHandler(name, targets, filepath=path)`
    /// followed by `transfer`); see [`crate::Files::send_file`].
    ///
    /// # Errors
    ///
    /// As [`crate::Files::send_file`], and [`Error::File`] when the transfer fails.
    #[doc(alias = "put_file", alias = "putHandler", alias = "transfer")]
    pub fn send_file(
        &self,
        path: impl AsRef<std::path::Path>,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<Sent, Error> {
        self.block_on(async {
            let handle = self.inner.client.files().send_file(path, name, targets)?;
            Ok(handle.await?)
        })
    }

    /// Sends `object` pickled as the object `name` to `targets` and blocks until done
    /// (Python: `putHandler(name, targets, contents=object)`); see
    /// [`crate::Files::send_object`].
    ///
    /// # Errors
    ///
    /// As [`send_file`](Self::send_file), and [`Error::Encode`].
    #[doc(alias = "put_object", alias = "putHandler")]
    pub fn send_object<T: Serialize + ?Sized>(
        &self,
        object: &T,
        name: &str,
        targets: impl Into<Targets>,
    ) -> Result<Sent, Error> {
        self.block_on(async {
            let handle = self
                .inner
                .client
                .files()
                .send_object(object, name, targets)?;
            Ok(handle.await?)
        })
    }

    /// Blocks until another container sends this one a file (Python: polling
    /// `get_sub_get_file_dict()`), for at most `timeout`: `Ok(None)` when none came.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and no offer is left.
    #[doc(alias = "recv_offer_timeout", alias = "get_sub_get_file_dict")]
    pub fn next_offer_timeout(&self, timeout: Duration) -> Result<Option<FileOffer>, Error> {
        self.block_on(async {
            match tokio::time::timeout(timeout, self.inner.client.files().next_offer()).await {
                Ok(offer) => offer.map(Some),
                Err(_) => Ok(None),
            }
        })
    }

    /// Blocks until another container sends this one a file (Python: polling
    /// `get_sub_get_file_dict()`); see [`crate::Files::next_offer`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed and no offer is left.
    #[doc(alias = "recv_offer", alias = "get_sub_get_file_dict")]
    pub fn next_offer(&self) -> Result<FileOffer, Error> {
        self.block_on(self.inner.client.files().next_offer())
    }

    /// Downloads an offered file to `path` (Python: `download_file(path, info)`), through a
    /// temporary file renamed when complete; returns its size. See [`FileOffer::download_to`].
    ///
    /// # Errors
    ///
    /// [`Error::Download`], naming the file and the step.
    #[doc(alias = "download_file")]
    pub fn download_to(
        &self,
        offer: &FileOffer,
        path: impl AsRef<std::path::Path>,
    ) -> Result<u64, Error> {
        Ok(self.block_on(offer.download_to(path.as_ref()))?)
    }

    /// Downloads an offered in-memory object and decodes it safely (Python:
    /// `download_contents(info)`). See [`FileOffer::download_object`].
    ///
    /// # Errors
    ///
    /// [`Error::Download`], naming the file and the step.
    #[doc(alias = "download_contents")]
    pub fn download_object(&self, offer: &FileOffer) -> Result<Value, Error> {
        Ok(self.block_on(offer.download_object())?)
    }
}
