//! The ECCI SDK for Rust: what an ECCI container's code talks to.
//!
//! An ECCI app is a set of containers that exchange data and commands over MQTT brokers,
//! started together through a readiness handshake. [`Client`] does everything the Python
//! SDK's `Client` does, on the same wire, so Rust and Python containers work together
//! ("wire.md §N" below cites the project's wire notes; the repository's `ARCHITECTURE.md`
//! says what each section covers, and its `README.md` maps the Python API to this one):
//!
//! - **Configuration** from the `ECCI_*` variables ([`Client::from_env`]) or in code
//!   ([`Client::builder`] with an [`ecci_proto::Config`]);
//! - **Publishing** data or commands (any serde type) to targets selected by name prefix
//!   ([`Client::publish`], [`Client::publish_cmd`], [`Targets`]), with a [`Delivery`] that
//!   resolves when the brokers acknowledged, and [`Delivery::delivered`] when the receiving
//!   Rust containers did: end-to-end delivery ([`E2eOptions`], on by default) sends again
//!   what a broker lost, holds a fast sender to a slow receiver's pace, and tells the
//!   sender ([`Error::NotDelivered`]) what it could not deliver;
//! - **Receiving** data and commands as queues of [`Received`] messages, sender and
//!   contents together ([`Client::recv_data`], [`Client::data`], an [`Inbox`] that is also a
//!   `Stream`), decoded safely: a bad payload is an [`ErrorEvent`] on [`Client::errors`],
//!   never a crash;
//! - **Readiness**: [`Client::wait_started`] (with a timeout), [`Client::exit_requested`],
//!   [`Client::send_complete`], [`Client::send_data`], for components, local and global
//!   controllers, robust to reconnects and restarts;
//! - **Files**: send a file or an object to targets through the platform's fileManager and
//!   receive the files others send ([`Client::files`], [`Files`]: streaming, resumable,
//!   with progress; wire.md §6);
//! - **Logging**: [`Client::install_logger`] ships `log` records to the platform over the
//!   client's own connection ([`ecci_logger`]);
//! - a **blocking** API for synchronous programs ([`blocking::Client`]: the same names as
//!   the async API, `send_file`, `next_offer`, `download_object`…, each with the Python
//!   name as a search alias);
//! - one [`Error`] type.
//!
//! A tour on the in-memory hub (a real app uses [`Client::from_env`] and MQTT): a global
//! controller and a worker go through the handshake and exchange data and a command. Tests
//! of an app do the same: [`ClientBuilder::transport`] takes any
//! [`Transport`](ecci_transport::Transport), such as the hub or the embedded broker of
//! `ecci-transport`'s `test-util` feature, and [`Config::builder`] configures a client
//! without touching the environment.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ecci_client::Client;
//! use ecci_proto::config::{AppType, Config};
//! use ecci_transport::memory::Hub;
//!
//! let hub = Hub::new();
//! let ctrl_config = Config::builder("unused", "cloud".parse()?, "app".parse()?, "ctrl".parse()?)
//!     .app_type(AppType::Controller)
//!     .pub_target("worker1".parse()?, "edge".parse()?)
//!     .build()?;
//! let worker_config = Config::builder("unused", "edge".parse()?, "app".parse()?, "worker1".parse()?)
//!     .app_type(AppType::Component)
//!     .controller("ctrl".parse()?, "cloud".parse()?)
//!     .pub_target("ctrl".parse()?, "cloud".parse()?)
//!     .build()?;
//! let ctrl = Client::builder(ctrl_config).transport(Arc::new(hub.transport())).connect().await?;
//! let worker = Client::builder(worker_config).transport(Arc::new(hub.transport())).connect().await?;
//!
//! ctrl.wait_started(Duration::from_secs(10)).await?;
//! worker.wait_started(Duration::from_secs(10)).await?;
//!
//! // "worker" selects every target whose name starts with it.
//! ctrl.publish(&("job", 42), "worker").await?.await?;
//! let job = worker.recv_data().await?;
//! assert_eq!(job.sender(), "ctrl");
//! assert_eq!(job.decode::<(String, u32)>()?, ("job".to_owned(), 42));
//!
//! // Commands are (sender, contents) pairs too; the handshake's own commands come first.
//! ctrl.publish_cmd("pause", "worker1").await?;
//! loop {
//!     let cmd = worker.recv_cmd().await?;
//!     if cmd.contents.cmd_name() == Some("pause") {
//!         break;
//!     }
//! }
//! ctrl.close().await;
//! worker.close().await;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! - `files` (default): file transfer through the platform's fileManager
//!   ([`Client::files`], the blocking client's file methods, [`ClientOptions::files`], the
//!   [`ecci_files`] re-export). It brings the HTTP stack: reqwest, hyper, and rustls for
//!   HTTPS. Without it (`default-features = false`) none of these is compiled, and a file
//!   message another container sends is dropped with a `warn` record naming its sender
//!   (it still counts in [`Metrics::files`]).
//! - `tls`: MQTT over TLS (rustls with the ring provider):
//!   [`MqttConfig::tls`](ecci_transport::MqttConfig), given to the builder as a transport
//!   made from [`mqtt_config`].

pub mod blocking;
mod client;
mod command;
mod e2e;
mod error;
#[cfg(feature = "files")]
mod files;
mod inbound;
#[cfg(not(feature = "files"))]
mod no_files;
mod publish;
mod task;

pub use client::{Client, ClientBuilder, ClientOptions, Metrics, Status, mqtt_config};
pub use command::Command;
pub use e2e::{Confirmation, E2eOptions, TargetMetrics};
#[cfg(feature = "files")]
pub use ecci_files::{FileOffer, FileSource, Offers, SendHandle, SendProgress, Sent};
pub use error::Error;
#[cfg(feature = "files")]
pub use files::Files;
pub use inbound::{Contents, ErrorEvent, InboundError, Inbox, Received};
pub use publish::{Delivery, Targets};

#[cfg(feature = "files")]
pub use ecci_files;
pub use ecci_logger;
pub use ecci_proto;
pub use ecci_proto::Config;
pub use ecci_transport;
