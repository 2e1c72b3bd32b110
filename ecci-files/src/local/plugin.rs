//! The fileManager plugin's side of wire notes §6 as a function: an incoming
//! [`FileMessage`] and its sender in, the messages to publish out.
//!
//! No IO happens here, so the MQTT runner stays a thin loop and the behaviour
//! is tested without a broker. The one effect that needs IO, copying an object
//! a cloud plugin relays to this edge plugin, is returned for the runner to do
//! before it publishes.

use std::time::Duration;

use ecci_proto::config::ContainerType;
use ecci_proto::file::{FileMessage, FileNameError, PresignedUrl, RelayCmd, validate_file_name};
use ecci_proto::topic::{AppTopic, file_manager};
use ecci_proto::{AppId, BrokerId, ContainerName};

use crate::local::{LocalError, LocalStore};
use crate::sigv4::{Method, PresignError, S3Presigner};

/// How long a PUT URL is valid, as the platform's plugin signs them.
pub const PUT_URL_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a GET URL is valid, as the platform's plugin signs them.
pub const GET_URL_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

/// Something that presigns object URLs: the [`LocalStore`] or an
/// [`S3Presigner`] for a real store.
pub trait Signer {
    /// A URL for `method` on `bucket/object`, valid for `ttl`.
    ///
    /// # Errors
    ///
    /// Why the URL cannot be signed.
    fn sign(
        &self,
        method: Method,
        bucket: &str,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, Box<dyn std::error::Error + Send + Sync>>;
}

impl<T: Signer + ?Sized> Signer for std::sync::Arc<T> {
    fn sign(
        &self,
        method: Method,
        bucket: &str,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, Box<dyn std::error::Error + Send + Sync>> {
        (**self).sign(method, bucket, object, ttl)
    }
}

impl Signer for LocalStore {
    fn sign(
        &self,
        method: Method,
        bucket: &str,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, Box<dyn std::error::Error + Send + Sync>> {
        self.presign(method, bucket, object, ttl)
            .map_err(|e: LocalError| e.into())
    }
}

impl Signer for S3Presigner {
    fn sign(
        &self,
        method: Method,
        bucket: &str,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, Box<dyn std::error::Error + Send + Sync>> {
        // S3 caps presigned URLs at 7 days; the plugin's TTLs are below it.
        self.presign(method, bucket, object, ttl)
            .map_err(|e: PresignError| e.into())
    }
}

/// Why a message was not handled. Nothing is published for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The message names a file that is a path, not a plain name.
    #[error("{cmd} names a file that is not a plain name")]
    BadName {
        /// The message's `cmd`.
        cmd: &'static str,
        /// Why.
        #[source]
        source: FileNameError,
    },
    /// A URL could not be signed.
    #[error("cannot sign a URL for {cmd}")]
    Sign {
        /// The message's `cmd`.
        cmd: &'static str,
        /// The signer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What handling one message asks the runner to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handled {
    /// First copy this object (name, source URL) into the local store: a cloud
    /// plugin relayed it from its own store.
    pub copy: Option<(String, PresignedUrl)>,
    /// Then publish these, in order.
    pub publish: Vec<(AppTopic, FileMessage)>,
}

/// The plugin of one broker for one app.
///
/// ```
/// use std::time::Duration;
/// use ecci_files::local::{FileManagerCore, Signer};
/// use ecci_files::sigv4::{Credentials, S3Presigner};
/// use ecci_proto::file::FileMessage;
/// use ecci_proto::{AppId, BrokerId, ContainerName};
///
/// let signer = S3Presigner::new("http://127.0.0.1:9000", "us-east-1", Credentials::new("a", "s")).unwrap();
/// let core = FileManagerCore::new(AppId::new("App1").unwrap(), BrokerId::new("cloud").unwrap(), signer);
/// let handled = core.handle(
///     &ContainerName::new("sender").unwrap(),
///     FileMessage::ReqPutUrl {
///         source_broker_id: BrokerId::new("cloud").unwrap(),
///         file_name: "f.bin".to_owned(),
///         file_path: None,
///     },
/// ).unwrap();
/// let (topic, reply) = &handled.publish[0];
/// assert_eq!(topic.to_string(), "ECCI/cloud/App1/plugin/fileManager/sender");
/// assert_eq!(reply.cmd(), "resPutURL");
/// ```
#[derive(Debug)]
pub struct FileManagerCore<S> {
    app: AppId,
    broker: BrokerId,
    bucket: String,
    signer: S,
    /// Validity of PUT URLs (default [`PUT_URL_TTL`]).
    pub put_ttl: Duration,
    /// Validity of GET URLs (default [`GET_URL_TTL`]).
    pub get_ttl: Duration,
    /// Whether this is the plugin of a cloud or an edge broker (default
    /// [`ContainerType::Cloud`]): only a cloud plugin relays (wire.md §6 step 5).
    pub mode: ContainerType,
}

impl<S: Signer> FileManagerCore<S> {
    /// The plugin of `broker` for `app`; objects go to the bucket
    /// `app.lower()`, as the platform's plugin names it.
    pub fn new(app: AppId, broker: BrokerId, signer: S) -> Self {
        let bucket = app.as_str().to_lowercase();
        Self {
            app,
            broker,
            bucket,
            signer,
            put_ttl: PUT_URL_TTL,
            get_ttl: GET_URL_TTL,
            mode: ContainerType::Cloud,
        }
    }

    /// The bucket holding this app's objects.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The signer.
    pub fn signer(&self) -> &S {
        &self.signer
    }

    /// Handles `message` from `sender` (the topic's sender segment).
    ///
    /// - `reqPutURL`: a PUT URL, answered on the requester's broker.
    /// - `reqTransfer`: exactly as the platform's plugin (wire.md §6 step 5): a
    ///   plugin in cloud [`mode`](Self::mode), for a broker that is not its own
    ///   and has more than one target container, relays one
    ///   `{'cmd': 'resTransfer', 'target': [containers], 'file_name', 'getURL'}` to
    ///   that broker's plugin (`ECCI/{b}/{app}/plugin/fileManager/fileManager`);
    ///   otherwise it sends each target container a `resTransfer` with a GET URL
    ///   directly, across brokers too. The relay's cmd is `resTransfer`: the
    ///   platform's edge plugin dies on a `reqTransfer` whose target is a list.
    /// - a relay from a cloud plugin (`resTransfer`, or an older `reqTransfer`,
    ///   with a list of targets, addressed to this plugin): copy the object here
    ///   (when it carries a URL), then a `resTransfer` with this plugin's GET URL
    ///   to each listed container on this broker.
    /// - anything else is not for a plugin and is ignored.
    ///
    /// # Errors
    ///
    /// [`PluginError`]; nothing is to be published then.
    pub fn handle(
        &self,
        sender: &ContainerName,
        message: FileMessage,
    ) -> Result<Handled, PluginError> {
        let cmd = message.cmd();
        let bad_name = |source| PluginError::BadName { cmd, source };
        match message {
            FileMessage::ReqPutUrl {
                source_broker_id,
                file_name,
                file_path,
            } => {
                validate_file_name(&file_name).map_err(bad_name)?;
                let put_url = self.sign(cmd, Method::Put, &file_name, self.put_ttl)?;
                let topic =
                    AppTopic::file_reply(source_broker_id, self.app.clone(), sender.clone());
                Ok(Handled {
                    copy: None,
                    publish: vec![(
                        topic,
                        FileMessage::ResPutUrl {
                            file_name,
                            put_url,
                            file_path,
                        },
                    )],
                })
            }
            FileMessage::ReqTransfer {
                file_name,
                target,
                sha256,
            } => {
                validate_file_name(&file_name).map_err(bad_name)?;
                let mut publish = Vec::new();
                for (broker, containers) in target {
                    let relay = self.mode == ContainerType::Cloud
                        && broker != self.broker
                        && containers.len() > 1;
                    if relay {
                        let get_url = self.sign(cmd, Method::Get, &file_name, self.get_ttl)?;
                        publish.push((
                            AppTopic::file_reply(broker, self.app.clone(), file_manager()),
                            FileMessage::RelayTransfer {
                                cmd: RelayCmd::ResTransfer,
                                file_name: file_name.clone(),
                                get_url: Some(get_url),
                                target: containers,
                                sha256: sha256.clone(),
                            },
                        ));
                        continue;
                    }
                    for container in containers {
                        let get_url = self.sign(cmd, Method::Get, &file_name, self.get_ttl)?;
                        publish.push((
                            AppTopic::file_reply(broker.clone(), self.app.clone(), container),
                            FileMessage::ResTransfer {
                                file_name: file_name.clone(),
                                get_url,
                                sha256: sha256.clone(),
                            },
                        ));
                    }
                }
                Ok(Handled {
                    copy: None,
                    publish,
                })
            }
            FileMessage::RelayTransfer {
                file_name,
                get_url,
                target,
                sha256,
                ..
            } => {
                validate_file_name(&file_name).map_err(bad_name)?;
                let mut publish = Vec::new();
                for container in target {
                    let get_url = self.sign(cmd, Method::Get, &file_name, self.get_ttl)?;
                    publish.push((
                        AppTopic::file_reply(self.broker.clone(), self.app.clone(), container),
                        FileMessage::ResTransfer {
                            file_name: file_name.clone(),
                            get_url,
                            sha256: sha256.clone(),
                        },
                    ));
                }
                Ok(Handled {
                    copy: get_url.map(|url| (file_name, url)),
                    publish,
                })
            }
            FileMessage::ResPutUrl { .. } | FileMessage::ResTransfer { .. } => {
                Ok(Handled::default())
            }
        }
    }

    fn sign(
        &self,
        cmd: &'static str,
        method: Method,
        object: &str,
        ttl: Duration,
    ) -> Result<PresignedUrl, PluginError> {
        self.signer
            .sign(method, &self.bucket, object, ttl)
            .map_err(|source| PluginError::Sign { cmd, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs `METHOD:bucket/object:ttl` so that tests see what was asked for.
    struct FakeSigner;

    impl Signer for FakeSigner {
        fn sign(
            &self,
            method: Method,
            bucket: &str,
            object: &str,
            ttl: Duration,
        ) -> Result<PresignedUrl, Box<dyn std::error::Error + Send + Sync>> {
            Ok(PresignedUrl::new(format!(
                "{}:{bucket}/{object}:{}",
                method.as_str(),
                ttl.as_secs()
            )))
        }
    }

    fn core() -> FileManagerCore<FakeSigner> {
        FileManagerCore::new(
            AppId::new("App1").unwrap(),
            BrokerId::new("cloud").unwrap(),
            FakeSigner,
        )
    }

    fn b(s: &str) -> BrokerId {
        BrokerId::new(s).unwrap()
    }

    fn c(s: &str) -> ContainerName {
        ContainerName::new(s).unwrap()
    }

    fn url(s: &str) -> PresignedUrl {
        PresignedUrl::new(s)
    }

    /// Handles `message` from `sender` and compares topics and messages.
    #[track_caller]
    fn check(message: FileMessage, expected: Result<Handled, &str>) {
        let got = core().handle(&c("sender"), message.clone());
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "message {message:?}"),
            (Err(got), Err(expected)) => assert_eq!(got.to_string(), expected),
            (got, expected) => panic!("message {message:?}: got {got:?}, expected {expected:?}"),
        }
    }

    fn reply(
        broker: &str,
        receiver: ContainerName,
        message: FileMessage,
    ) -> (AppTopic, FileMessage) {
        (
            AppTopic::file_reply(b(broker), AppId::new("App1").unwrap(), receiver),
            message,
        )
    }

    const PUT: &str = "PUT:app1/f.bin:86400";
    const GET: &str = "GET:app1/f.bin:172800";

    #[test]
    fn messages() {
        check(
            FileMessage::ReqPutUrl {
                source_broker_id: b("edge1"),
                file_name: "f.bin".to_owned(),
                file_path: Some("/data/f.bin".to_owned()),
            },
            Ok(Handled {
                copy: None,
                publish: vec![reply(
                    "edge1",
                    c("sender"),
                    FileMessage::ResPutUrl {
                        file_name: "f.bin".to_owned(),
                        put_url: url(PUT),
                        file_path: Some("/data/f.bin".to_owned()),
                    },
                )],
            }),
        );
        let res = |sha: Option<&str>| FileMessage::ResTransfer {
            file_name: "f.bin".to_owned(),
            get_url: url(GET),
            sha256: sha.map(str::to_owned),
        };
        let relay = |containers: Vec<ContainerName>| FileMessage::RelayTransfer {
            cmd: RelayCmd::ResTransfer,
            file_name: "f.bin".to_owned(),
            get_url: Some(url(GET)),
            target: containers,
            sha256: Some("ab".to_owned()),
        };
        let request = FileMessage::ReqTransfer {
            file_name: "f.bin".to_owned(),
            target: vec![
                (b("cloud"), vec![c("a"), c("b")]),
                (b("edge1"), vec![c("x"), c("y")]),
                (b("edge2"), vec![c("z")]),
                (b("edge3"), vec![]),
            ],
            sha256: Some("ab".to_owned()),
        };
        // Cloud: its own broker's targets and a lone target elsewhere directly, a
        // broker with two or more targets through its plugin, with cmd resTransfer.
        check(
            request.clone(),
            Ok(Handled {
                copy: None,
                publish: vec![
                    reply("cloud", c("a"), res(Some("ab"))),
                    reply("cloud", c("b"), res(Some("ab"))),
                    reply("edge1", file_manager(), relay(vec![c("x"), c("y")])),
                    reply("edge2", c("z"), res(Some("ab"))),
                ],
            }),
        );
        let wire = relay(vec![c("x"), c("y")]).to_value();
        assert_eq!(
            wire.get("cmd").and_then(|v| v.as_str()),
            Some("resTransfer")
        );
        // Edge: never relays.
        let mut edge = core();
        edge.mode = ContainerType::Edge;
        let handled = edge.handle(&c("sender"), request).unwrap();
        let receivers: Vec<String> = handled
            .publish
            .iter()
            .map(|(topic, m)| {
                assert_eq!(m.cmd(), "resTransfer");
                topic.to_string()
            })
            .collect();
        assert_eq!(
            receivers,
            [
                "ECCI/cloud/App1/plugin/fileManager/a",
                "ECCI/cloud/App1/plugin/fileManager/b",
                "ECCI/edge1/App1/plugin/fileManager/x",
                "ECCI/edge1/App1/plugin/fileManager/y",
                "ECCI/edge2/App1/plugin/fileManager/z",
            ]
        );
        check(
            FileMessage::RelayTransfer {
                cmd: RelayCmd::ResTransfer,
                file_name: "f.bin".to_owned(),
                get_url: Some(url("http://cloud-store/f.bin?sig")),
                target: vec![c("x")],
                sha256: None,
            },
            Ok(Handled {
                copy: Some(("f.bin".to_owned(), url("http://cloud-store/f.bin?sig"))),
                publish: vec![reply("cloud", c("x"), res(None))],
            }),
        );
        check(
            FileMessage::RelayTransfer {
                cmd: RelayCmd::default(),
                file_name: "f.bin".to_owned(),
                get_url: None,
                target: vec![c("x")],
                sha256: None,
            },
            Ok(Handled {
                copy: None,
                publish: vec![reply("cloud", c("x"), res(None))],
            }),
        );
        check(res(None), Ok(Handled::default()));
        check(
            FileMessage::ReqPutUrl {
                source_broker_id: b("edge1"),
                file_name: "../etc/passwd".to_owned(),
                file_path: None,
            },
            Err("reqPutURL names a file that is not a plain name"),
        );
        check(
            FileMessage::ReqTransfer {
                file_name: "..".to_owned(),
                target: vec![(b("cloud"), vec![c("a")])],
                sha256: None,
            },
            Err("reqTransfer names a file that is not a plain name"),
        );
    }
}
