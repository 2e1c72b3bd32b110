//! ECCI topics: building, parsing and MQTT filter matching.
//!
//! Every topic the SDK publishes to or subscribes to is built and parsed here, so
//! that no other code splits topic strings by hand.
//!
//! # Anatomy
//!
//! Containers talk to each other (and to the fileManager plugin) on app topics:
//!
//! ```text
//! bridge/edge1/ECCI/broker1/app-7/app/worker1/controller
//!
//! bridge/edge1/ | ECCI   / broker1 / app-7 / app            / worker1 / controller
//! mountpoint    | marker / broker  / app   / kind           / sender  / receiver
//! (optional)    |                            (app or plugin)
//! ```
//!
//! - the *mountpoint* is the prefix under which a bridged broker mounts this
//!   broker's topics. It is prepended as it is, with no separator added: the
//!   mountpoint `mnt` gives `mntECCI/…`, the mountpoint `bridge/edge1/` gives
//!   `bridge/edge1/ECCI/…`;
//! - the *kind* is `app` between containers and `plugin` to and from the
//!   fileManager plugin (whose container name is [`FILE_MANAGER`]);
//! - the broker, app, sender and receiver are validated names
//!   ([`BrokerId`], [`AppId`], [`ContainerName`]) that never contain `/`.
//!
//! Because names never contain `/`, an app topic is parsed from the right: the
//! last five segments are broker, app, kind, sender and receiver, and the segment
//! before them is `ECCI` or ends with `ECCI`. This fixes the Python SDK, whose
//! greedy regex `^ECCI/.*/.*/.*/(.*)/.*` picks the wrong sender behind a
//! mountpoint with several segments.
//!
//! The platform's topics have a fixed shape:
//!
//! ```text
//!  toEdgeAI/broker1/con_cntr_ready      readiness and period reports   (PlatformTopic)
//!  toEdgeAI/broker1/send_data           algorithm data                 (PlatformTopic)
//!  toEdgeAI/broker1/log                 log records, `toEdgeAI` is     (LogTopic)
//!  \______/                             a configurable pre_topic
//! ```
//!
//! ```
//! use ecci_proto::topic::{AppTopic, TopicKind};
//!
//! let t = AppTopic::parse("bridge/edge1/ECCI/broker1/app-7/app/worker1/controller")?;
//! assert_eq!(t.mountpoint.as_ref().map(|m| m.as_str()), Some("bridge/edge1/"));
//! assert_eq!(t.broker, "broker1");
//! assert_eq!(t.kind, TopicKind::App);
//! assert_eq!(t.sender, "worker1");
//! assert_eq!(t.receiver, "controller");
//! assert_eq!(t.to_string(), "bridge/edge1/ECCI/broker1/app-7/app/worker1/controller");
//! # Ok::<(), ecci_proto::topic::TopicError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::name::{AppId, BrokerId, ContainerName, NameError};

/// The segment that marks an app topic, right after the (optional) mountpoint.
pub const ECCI_MARKER: &str = "ECCI";

/// The container name of the fileManager plugin, as it appears in topics.
///
/// ```
/// use ecci_proto::topic::{file_manager, FILE_MANAGER};
/// assert_eq!(file_manager(), FILE_MANAGER);
/// ```
pub const FILE_MANAGER: &str = "fileManager";

/// The first segment of the platform topics (`con_cntr_ready`, `send_data`).
pub const PLATFORM_PREFIX: &str = "toEdgeAI";

/// The default `pre_topic` of log topics (`toEdgeAI/{broker}/log`).
pub const DEFAULT_LOG_PRE_TOPIC: &str = "toEdgeAI";

/// The longest mountpoint or log `pre_topic` accepted, in bytes.
///
/// With three names of at most [`MAX_NAME_LEN`](crate::name::MAX_NAME_LEN) bytes
/// this keeps every topic far below MQTT's limit of 65,535 bytes.
pub const MAX_PREFIX_LEN: usize = 1024;

/// The fileManager plugin's name as a [`ContainerName`].
///
/// ```
/// use ecci_proto::topic::file_manager;
/// assert_eq!(file_manager().as_str(), "fileManager");
/// ```
pub fn file_manager() -> ContainerName {
    // A constant that the unit test `file_manager_is_a_valid_name` checks.
    ContainerName::new(FILE_MANAGER).expect("\"fileManager\" is a valid container name")
}

/// Why a topic string could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic has fewer `/`-separated segments than its form needs.
    #[error("topic has {found} segments, fewer than the {expected} required")]
    TooFewSegments {
        /// The least number of segments of this form.
        expected: usize,
        /// The number of segments found.
        found: usize,
    },
    /// The topic does not have exactly the number of segments its form needs.
    #[error("topic has {found} segments, expected {expected}")]
    WrongSegmentCount {
        /// The number of segments of this form.
        expected: usize,
        /// The number of segments found.
        found: usize,
    },
    /// The segment before the last five is neither `ECCI` nor ends with `ECCI`.
    #[error(
        "missing ECCI marker: the segment before the last five is {found:?}, not ECCI or a mountpoint followed by ECCI"
    )]
    MissingEcciMarker {
        /// The segment found where the marker belongs, cut to its first 64 characters.
        found: String,
    },
    /// The kind segment of an app topic is neither `app` nor `plugin`.
    #[error("bad kind {found:?} (expected app or plugin)")]
    BadKind {
        /// The kind segment found, cut to its first 64 characters.
        found: String,
    },
    /// A broker, app, sender or receiver segment is not a valid name.
    #[error("invalid {field} in topic")]
    InvalidName {
        /// Which segment: `"broker"`, `"app"`, `"sender"` or `"receiver"`.
        field: &'static str,
        /// Why the name is invalid.
        #[source]
        source: NameError,
    },
    /// The mountpoint before `ECCI` (or a log `pre_topic`) is not valid.
    #[error("invalid {field} in topic")]
    InvalidPrefix {
        /// Which prefix: `"mountpoint"` or `"log pre_topic"`.
        field: &'static str,
        /// Why the prefix is invalid.
        #[source]
        source: PrefixError,
    },
    /// The topic does not start with the expected prefix.
    #[error("topic does not start with {expected:?}")]
    WrongPrefix {
        /// The prefix a topic of this form starts with.
        expected: String,
    },
    /// A `toEdgeAI/{broker}/…` topic whose last segment is not a platform topic.
    #[error("unknown platform topic {found:?} (expected con_cntr_ready or send_data)")]
    UnknownPlatformTopic {
        /// The last segment found, cut to its first 64 characters.
        found: String,
    },
    /// A log topic whose last segment is not `log`.
    #[error("log topic ends in {found:?}, not log")]
    NotLog {
        /// The last segment found, cut to its first 64 characters.
        found: String,
    },
}

/// Why a string is not a valid mountpoint or log `pre_topic`.
///
/// Unlike names, these prefixes may contain `/`; like names, they must not contain
/// MQTT wildcards or NUL, which would turn a subscription into a different filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The prefix is the empty string.
    #[error("{kind} is empty (leave it out instead)")]
    Empty {
        /// What kind of prefix was being checked (`"mountpoint"`, `"log pre_topic"`).
        kind: &'static str,
    },
    /// The prefix is longer than [`MAX_PREFIX_LEN`] bytes.
    #[error("{kind} is {len} bytes long, more than the {MAX_PREFIX_LEN} allowed")]
    TooLong {
        /// What kind of prefix was being checked.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The prefix contains `+`, `#` or NUL.
    #[error("{kind} {prefix:?} contains {found:?}, which is not allowed in a topic")]
    ForbiddenChar {
        /// What kind of prefix was being checked.
        kind: &'static str,
        /// The offending prefix.
        prefix: String,
        /// The first forbidden character found.
        found: char,
    },
}

/// The most characters of a topic segment quoted in a [`TopicError`]: topics
/// come from the network, and an error should not carry a megabyte of one.
const MAX_QUOTED_SEGMENT: usize = 64;

/// `segment`, cut to [`MAX_QUOTED_SEGMENT`] characters.
fn excerpt(segment: &str) -> String {
    segment.chars().take(MAX_QUOTED_SEGMENT).collect()
}

/// Checks `s` as a topic prefix of the given kind.
fn validate_prefix(kind: &'static str, s: &str) -> Result<(), PrefixError> {
    if s.is_empty() {
        return Err(PrefixError::Empty { kind });
    }
    if s.len() > MAX_PREFIX_LEN {
        return Err(PrefixError::TooLong { kind, len: s.len() });
    }
    if let Some(found) = s.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        return Err(PrefixError::ForbiddenChar {
            kind,
            prefix: s.to_owned(),
            found,
        });
    }
    Ok(())
}

/// A bridge mountpoint: a prefix prepended to app topics as it is (`{M}ECCI/…`).
///
/// A mountpoint is any non-empty string of at most [`MAX_PREFIX_LEN`] bytes without
/// `+`, `#` or NUL; it may contain `/` and need not end with one. "No mountpoint"
/// is `None`, never the empty string, so that every topic has one representation.
///
/// ```
/// use ecci_proto::topic::Mountpoint;
/// assert_eq!(Mountpoint::new("bridge/edge1/")?.as_str(), "bridge/edge1/");
/// assert!(Mountpoint::new("mnt").is_ok());
/// assert!(Mountpoint::new("").is_err());
/// assert!(Mountpoint::new("bridge/+/").is_err());
/// # Ok::<(), ecci_proto::topic::PrefixError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mountpoint(String);

impl Mountpoint {
    /// Validates `mountpoint`.
    ///
    /// # Errors
    ///
    /// A [`PrefixError`] if it is empty, longer than [`MAX_PREFIX_LEN`] bytes, or
    /// contains `+`, `#` or NUL.
    pub fn new(mountpoint: impl Into<String>) -> Result<Self, PrefixError> {
        let mountpoint = mountpoint.into();
        validate_prefix("mountpoint", &mountpoint)?;
        Ok(Self(mountpoint))
    }

    /// The mountpoint as a string slice.
    ///
    /// ```
    /// use ecci_proto::topic::Mountpoint;
    /// assert_eq!(Mountpoint::new("mnt")?.as_str(), "mnt");
    /// # Ok::<(), ecci_proto::topic::PrefixError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Mountpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Mountpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Mountpoint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Mountpoint {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Mountpoint {
    type Error = PrefixError;
    fn try_from(s: &str) -> Result<Self, PrefixError> {
        Self::new(s)
    }
}

impl TryFrom<String> for Mountpoint {
    type Error = PrefixError;
    fn try_from(s: String) -> Result<Self, PrefixError> {
        Self::new(s)
    }
}

impl PartialEq<str> for Mountpoint {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Mountpoint {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl serde::Serialize for Mountpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Mountpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// Whether an app topic runs between containers or to/from the fileManager plugin.
///
/// ```
/// use ecci_proto::topic::TopicKind;
/// assert_eq!("plugin".parse::<TopicKind>()?, TopicKind::Plugin);
/// assert_eq!(TopicKind::App.to_string(), "app");
/// assert!("apps".parse::<TopicKind>().is_err());
/// # Ok::<(), ecci_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicKind {
    /// `app`: data and commands between containers.
    App,
    /// `plugin`: file requests to, and replies from, the fileManager plugin.
    Plugin,
}

impl TopicKind {
    /// The kind's topic segment, `app` or `plugin`.
    ///
    /// ```
    /// use ecci_proto::topic::TopicKind;
    /// assert_eq!(TopicKind::Plugin.as_str(), "plugin");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Plugin => "plugin",
        }
    }
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TopicKind {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        match s {
            "app" => Ok(Self::App),
            "plugin" => Ok(Self::Plugin),
            _ => Err(TopicError::BadKind { found: excerpt(s) }),
        }
    }
}

/// An app topic: `{mountpoint}ECCI/{broker}/{app}/{kind}/{sender}/{receiver}`.
///
/// `Display` writes the topic; [`AppTopic::parse`] reads it back.
///
/// ```
/// use ecci_proto::{AppId, BrokerId, ContainerName};
/// use ecci_proto::topic::AppTopic;
///
/// let t = AppTopic::app_message(
///     BrokerId::new("broker2")?,
///     AppId::new("app-7")?,
///     ContainerName::new("controller")?,
///     ContainerName::new("worker1")?,
/// );
/// assert_eq!(t.to_string(), "ECCI/broker2/app-7/app/controller/worker1");
/// assert_eq!(AppTopic::parse(&t.to_string()).unwrap(), t);
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppTopic {
    /// The bridge mountpoint the topic was published under, if any.
    pub mountpoint: Option<Mountpoint>,
    /// The broker of the receiver.
    pub broker: BrokerId,
    /// The app both containers belong to.
    pub app: AppId,
    /// `app` between containers, `plugin` to or from the fileManager plugin.
    pub kind: TopicKind,
    /// The container that publishes on this topic.
    pub sender: ContainerName,
    /// The container this topic is addressed to.
    pub receiver: ContainerName,
}

impl AppTopic {
    /// An app topic without a mountpoint.
    ///
    /// ```
    /// use ecci_proto::{AppId, BrokerId, ContainerName};
    /// use ecci_proto::topic::{AppTopic, TopicKind};
    ///
    /// let t = AppTopic::new(
    ///     BrokerId::new("b")?,
    ///     AppId::new("a")?,
    ///     TopicKind::Plugin,
    ///     ContainerName::new("s")?,
    ///     ContainerName::new("r")?,
    /// );
    /// assert_eq!(t.to_string(), "ECCI/b/a/plugin/s/r");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn new(
        broker: BrokerId,
        app: AppId,
        kind: TopicKind,
        sender: ContainerName,
        receiver: ContainerName,
    ) -> Self {
        Self {
            mountpoint: None,
            broker,
            app,
            kind,
            sender,
            receiver,
        }
    }

    /// The topic of data and commands from `sender` to `receiver` on `broker`
    /// (the receiver's broker): `ECCI/{broker}/{app}/app/{sender}/{receiver}`.
    ///
    /// ```
    /// use ecci_proto::{AppId, BrokerId, ContainerName};
    /// use ecci_proto::topic::AppTopic;
    ///
    /// let t = AppTopic::app_message(
    ///     BrokerId::new("b1")?,
    ///     AppId::new("a")?,
    ///     ContainerName::new("me")?,
    ///     ContainerName::new("you")?,
    /// );
    /// assert_eq!(t.to_string(), "ECCI/b1/a/app/me/you");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn app_message(
        broker: BrokerId,
        app: AppId,
        sender: ContainerName,
        receiver: ContainerName,
    ) -> Self {
        Self::new(broker, app, TopicKind::App, sender, receiver)
    }

    /// The topic of a file request from `sender` to the fileManager plugin of
    /// `broker`: `ECCI/{broker}/{app}/plugin/{sender}/fileManager`.
    ///
    /// ```
    /// use ecci_proto::{AppId, BrokerId, ContainerName};
    /// use ecci_proto::topic::AppTopic;
    ///
    /// let t = AppTopic::file_request(
    ///     BrokerId::new("b1")?,
    ///     AppId::new("a")?,
    ///     ContainerName::new("me")?,
    /// );
    /// assert_eq!(t.to_string(), "ECCI/b1/a/plugin/me/fileManager");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn file_request(broker: BrokerId, app: AppId, sender: ContainerName) -> Self {
        Self::new(broker, app, TopicKind::Plugin, sender, file_manager())
    }

    /// The topic of a fileManager reply to `receiver` on `broker`:
    /// `ECCI/{broker}/{app}/plugin/fileManager/{receiver}`.
    ///
    /// With [`file_manager()`] as the receiver this is the topic on which a cloud
    /// plugin relays a transfer to an edge plugin.
    ///
    /// ```
    /// use ecci_proto::{AppId, BrokerId, ContainerName};
    /// use ecci_proto::topic::AppTopic;
    ///
    /// let t = AppTopic::file_reply(
    ///     BrokerId::new("b1")?,
    ///     AppId::new("a")?,
    ///     ContainerName::new("me")?,
    /// );
    /// assert_eq!(t.to_string(), "ECCI/b1/a/plugin/fileManager/me");
    /// assert!(t.is_from_file_manager());
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn file_reply(broker: BrokerId, app: AppId, receiver: ContainerName) -> Self {
        Self::new(broker, app, TopicKind::Plugin, file_manager(), receiver)
    }

    /// The same topic under `mountpoint`.
    ///
    /// ```
    /// use ecci_proto::topic::{AppTopic, Mountpoint};
    ///
    /// let t = AppTopic::parse("ECCI/b/a/app/s/r")?.with_mountpoint(Mountpoint::new("mnt").unwrap());
    /// assert_eq!(t.to_string(), "mntECCI/b/a/app/s/r");
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    #[must_use]
    pub fn with_mountpoint(mut self, mountpoint: Mountpoint) -> Self {
        self.mountpoint = Some(mountpoint);
        self
    }

    /// Whether this is a `plugin` topic sent by the fileManager plugin.
    ///
    /// ```
    /// use ecci_proto::topic::AppTopic;
    /// assert!(AppTopic::parse("ECCI/b/a/plugin/fileManager/me")?.is_from_file_manager());
    /// assert!(!AppTopic::parse("ECCI/b/a/app/fileManager/me")?.is_from_file_manager());
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    pub fn is_from_file_manager(&self) -> bool {
        self.kind == TopicKind::Plugin && self.sender == FILE_MANAGER
    }

    /// Parses an app topic, with or without a mountpoint.
    ///
    /// The last five segments are broker, app, kind, sender and receiver; the
    /// segment before them must be `ECCI` or end with `ECCI`, and whatever
    /// precedes that `ECCI` is the mountpoint.
    ///
    /// ```
    /// use ecci_proto::topic::{AppTopic, TopicKind};
    ///
    /// let t = AppTopic::parse("mntECCI/b/a/plugin/fileManager/me")?;
    /// assert_eq!(t.mountpoint.unwrap(), "mnt");
    /// assert_eq!(t.kind, TopicKind::Plugin);
    /// assert_eq!(t.sender, "fileManager");
    ///
    /// let err = AppTopic::parse("ECCI/b/a/other/s/r").unwrap_err();
    /// assert_eq!(err.to_string(), "bad kind \"other\" (expected app or plugin)");
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TopicError`] if the topic has fewer than six segments, lacks the `ECCI`
    /// marker, has a kind other than `app` or `plugin`, or a name or mountpoint
    /// that is not valid.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let mut rest = topic;
        let mut segments = [""; 5];
        for slot in segments.iter_mut().rev() {
            let (head, segment) =
                rest.rsplit_once('/')
                    .ok_or_else(|| TopicError::TooFewSegments {
                        expected: 6,
                        found: segment_count(topic),
                    })?;
            *slot = segment;
            rest = head;
        }
        let [broker, app, kind, sender, receiver] = segments;
        let mountpoint = match rest.strip_suffix(ECCI_MARKER) {
            Some("") => None,
            Some(m) => Some(
                Mountpoint::new(m).map_err(|source| TopicError::InvalidPrefix {
                    field: "mountpoint",
                    source,
                })?,
            ),
            None => {
                let found = rest.rsplit('/').next().unwrap_or(rest);
                return Err(TopicError::MissingEcciMarker {
                    found: excerpt(found),
                });
            }
        };
        Ok(Self {
            mountpoint,
            broker: name(BrokerId::new(broker), "broker")?,
            app: name(AppId::new(app), "app")?,
            kind: kind.parse()?,
            sender: name(ContainerName::new(sender), "sender")?,
            receiver: name(ContainerName::new(receiver), "receiver")?,
        })
    }
}

/// Tags a name error with the topic segment it came from.
fn name<T>(result: Result<T, NameError>, field: &'static str) -> Result<T, TopicError> {
    result.map_err(|source| TopicError::InvalidName { field, source })
}

fn segment_count(topic: &str) -> usize {
    topic.split('/').count()
}

impl fmt::Display for AppTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.mountpoint {
            f.write_str(m.as_str())?;
        }
        write!(
            f,
            "{ECCI_MARKER}/{}/{}/{}/{}/{}",
            self.broker, self.app, self.kind, self.sender, self.receiver
        )
    }
}

impl FromStr for AppTopic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::parse(s)
    }
}

/// Which of the platform's topics a [`PlatformTopic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlatformTopicKind {
    /// `con_cntr_ready`: readiness and period reports.
    ContainerReady,
    /// `send_data`: algorithm data.
    SendData,
}

impl PlatformTopicKind {
    /// The kind's last topic segment.
    ///
    /// ```
    /// use ecci_proto::topic::PlatformTopicKind;
    /// assert_eq!(PlatformTopicKind::ContainerReady.as_str(), "con_cntr_ready");
    /// assert_eq!(PlatformTopicKind::SendData.as_str(), "send_data");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerReady => "con_cntr_ready",
            Self::SendData => "send_data",
        }
    }
}

impl fmt::Display for PlatformTopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topic on which a container reports to the platform:
/// `toEdgeAI/{broker}/con_cntr_ready` or `toEdgeAI/{broker}/send_data`.
///
/// ```
/// use ecci_proto::BrokerId;
/// use ecci_proto::topic::{PlatformTopic, PlatformTopicKind};
///
/// let t = PlatformTopic::ready(BrokerId::new("broker1")?);
/// assert_eq!(t.to_string(), "toEdgeAI/broker1/con_cntr_ready");
/// let t = PlatformTopic::parse("toEdgeAI/broker1/send_data").unwrap();
/// assert_eq!(t.kind, PlatformTopicKind::SendData);
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformTopic {
    /// The broker of the reporting container.
    pub broker: BrokerId,
    /// Which report.
    pub kind: PlatformTopicKind,
}

impl PlatformTopic {
    /// `toEdgeAI/{broker}/con_cntr_ready`.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::PlatformTopic;
    /// let t = PlatformTopic::ready(BrokerId::new("b")?);
    /// assert_eq!(t.to_string(), "toEdgeAI/b/con_cntr_ready");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn ready(broker: BrokerId) -> Self {
        Self {
            broker,
            kind: PlatformTopicKind::ContainerReady,
        }
    }

    /// `toEdgeAI/{broker}/send_data`.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::PlatformTopic;
    /// let t = PlatformTopic::send_data(BrokerId::new("b")?);
    /// assert_eq!(t.to_string(), "toEdgeAI/b/send_data");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn send_data(broker: BrokerId) -> Self {
        Self {
            broker,
            kind: PlatformTopicKind::SendData,
        }
    }

    /// Parses a platform topic.
    ///
    /// ```
    /// use ecci_proto::topic::PlatformTopic;
    /// assert!(PlatformTopic::parse("toEdgeAI/b/con_cntr_ready").is_ok());
    /// assert!(PlatformTopic::parse("toEdgeAI/b/log").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TopicError`] if the topic does not have three segments, does not start
    /// with `toEdgeAI`, has an invalid broker, or ends in something other than
    /// `con_cntr_ready` or `send_data`.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let mut segments = topic.split('/');
        let (Some(prefix), Some(broker), Some(kind), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TopicError::WrongSegmentCount {
                expected: 3,
                found: segment_count(topic),
            });
        };
        if prefix != PLATFORM_PREFIX {
            return Err(TopicError::WrongPrefix {
                expected: PLATFORM_PREFIX.to_owned(),
            });
        }
        let broker = name(BrokerId::new(broker), "broker")?;
        let kind = match kind {
            "con_cntr_ready" => PlatformTopicKind::ContainerReady,
            "send_data" => PlatformTopicKind::SendData,
            _ => {
                return Err(TopicError::UnknownPlatformTopic {
                    found: excerpt(kind),
                });
            }
        };
        Ok(Self { broker, kind })
    }
}

impl fmt::Display for PlatformTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PLATFORM_PREFIX}/{}/{}", self.broker, self.kind)
    }
}

impl FromStr for PlatformTopic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Self::parse(s)
    }
}

/// The topic of log records: `{pre_topic}/{broker}/log`.
///
/// `pre_topic` defaults to [`DEFAULT_LOG_PRE_TOPIC`] (`toEdgeAI`) and may contain
/// `/` (the Python SDK README shows `testMQTTLogging`). It follows the same rules as a
/// [`Mountpoint`]: non-empty, no `+`, `#` or NUL.
///
/// ```
/// use ecci_proto::BrokerId;
/// use ecci_proto::topic::LogTopic;
///
/// let b = BrokerId::new("broker1").unwrap();
/// assert_eq!(LogTopic::new(b.clone()).to_string(), "toEdgeAI/broker1/log");
/// let t = LogTopic::with_pre_topic("testMQTTLogging", b)?;
/// assert_eq!(t.to_string(), "testMQTTLogging/broker1/log");
/// assert_eq!(LogTopic::parse("testMQTTLogging/broker1/log", "testMQTTLogging")?, t);
/// # Ok::<(), ecci_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogTopic {
    pre_topic: String,
    broker: BrokerId,
}

impl LogTopic {
    /// The log topic of `broker` under the default `pre_topic`, `toEdgeAI`.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::LogTopic;
    /// let t = LogTopic::new(BrokerId::new("b")?);
    /// assert_eq!(t.to_string(), "toEdgeAI/b/log");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn new(broker: BrokerId) -> Self {
        Self {
            pre_topic: DEFAULT_LOG_PRE_TOPIC.to_owned(),
            broker,
        }
    }

    /// The log topic of `broker` under `pre_topic`.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::LogTopic;
    /// let b = BrokerId::new("b").unwrap();
    /// assert_eq!(LogTopic::with_pre_topic("x/y", b.clone())?.to_string(), "x/y/b/log");
    /// assert!(LogTopic::with_pre_topic("x/#", b).is_err());
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TopicError::InvalidPrefix`] if `pre_topic` is empty, longer than
    /// [`MAX_PREFIX_LEN`] bytes, or contains `+`, `#` or NUL.
    pub fn with_pre_topic(
        pre_topic: impl Into<String>,
        broker: BrokerId,
    ) -> Result<Self, TopicError> {
        let pre_topic = pre_topic.into();
        validate_pre_topic(&pre_topic)?;
        Ok(Self { pre_topic, broker })
    }

    /// The `pre_topic`, everything before `/{broker}/log`.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::LogTopic;
    /// assert_eq!(LogTopic::new(BrokerId::new("b")?).pre_topic(), "toEdgeAI");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn pre_topic(&self) -> &str {
        &self.pre_topic
    }

    /// The broker whose containers log on this topic.
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// use ecci_proto::topic::LogTopic;
    /// assert_eq!(LogTopic::new(BrokerId::new("b")?).broker(), "b");
    /// # Ok::<(), ecci_proto::NameError>(())
    /// ```
    pub fn broker(&self) -> &BrokerId {
        &self.broker
    }

    /// Parses a log topic under a known `pre_topic`.
    ///
    /// The `pre_topic` has to be known because it may contain `/`.
    ///
    /// ```
    /// use ecci_proto::topic::{LogTopic, DEFAULT_LOG_PRE_TOPIC};
    /// let t = LogTopic::parse("toEdgeAI/b/log", DEFAULT_LOG_PRE_TOPIC)?;
    /// assert_eq!(t.broker(), "b");
    /// assert!(LogTopic::parse("toEdgeAI/b/log", "other").is_err());
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TopicError`] if `pre_topic` is not valid, the topic does not start with
    /// `{pre_topic}/`, is not followed by exactly two segments, has an invalid
    /// broker, or does not end in `log`.
    pub fn parse(topic: &str, pre_topic: &str) -> Result<Self, TopicError> {
        validate_pre_topic(pre_topic)?;
        let rest = topic
            .strip_prefix(pre_topic)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongPrefix {
                expected: format!("{pre_topic}/"),
            })?;
        let Some((broker, last)) = rest.split_once('/').filter(|(_, last)| !last.contains('/'))
        else {
            return Err(TopicError::WrongSegmentCount {
                expected: segment_count(pre_topic) + 2,
                found: segment_count(topic),
            });
        };
        let broker = name(BrokerId::new(broker), "broker")?;
        if last != "log" {
            return Err(TopicError::NotLog {
                found: excerpt(last),
            });
        }
        Ok(Self {
            pre_topic: pre_topic.to_owned(),
            broker,
        })
    }
}

fn validate_pre_topic(pre_topic: &str) -> Result<(), TopicError> {
    validate_prefix("log pre_topic", pre_topic).map_err(|source| TopicError::InvalidPrefix {
        field: "log pre_topic",
        source,
    })
}

impl fmt::Display for LogTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/log", self.pre_topic, self.broker)
    }
}

/// Any ECCI topic.
///
/// ```
/// use ecci_proto::topic::Topic;
/// assert!(matches!(Topic::parse("ECCI/b/a/app/s/r")?, Topic::App(_)));
/// assert!(matches!(Topic::parse("toEdgeAI/b/send_data")?, Topic::Platform(_)));
/// assert!(matches!(Topic::parse("toEdgeAI/b/log")?, Topic::Log(_)));
/// # Ok::<(), ecci_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `{M}ECCI/{broker}/{app}/{kind}/{sender}/{receiver}`.
    App(AppTopic),
    /// `toEdgeAI/{broker}/con_cntr_ready` or `toEdgeAI/{broker}/send_data`.
    Platform(PlatformTopic),
    /// `{pre_topic}/{broker}/log`.
    Log(LogTopic),
}

impl Topic {
    /// Parses any ECCI topic, with log topics under the default `pre_topic`.
    ///
    /// The forms cannot be confused: an app topic has at least six segments, the
    /// other two exactly three, and those differ in their last segment.
    ///
    /// ```
    /// use ecci_proto::topic::Topic;
    /// let t = Topic::parse("bridge/e1/ECCI/b/a/plugin/fileManager/me")?;
    /// assert_eq!(t.to_string(), "bridge/e1/ECCI/b/a/plugin/fileManager/me");
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of the form the topic looks most like: the platform form
    /// for topics under `toEdgeAI/`, otherwise the app form.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        Self::parse_with_log_pre_topic(topic, DEFAULT_LOG_PRE_TOPIC)
    }

    /// Parses any ECCI topic, with log topics under `pre_topic`.
    ///
    /// An app topic wins over a log topic whose custom `pre_topic` makes it look
    /// like one (`ECCI/b/a/app/s/log` with the `pre_topic` `ECCI/b/a/app`).
    ///
    /// ```
    /// use ecci_proto::topic::Topic;
    /// let t = Topic::parse_with_log_pre_topic("testMQTTLogging/b/log", "testMQTTLogging")?;
    /// assert!(matches!(t, Topic::Log(_)));
    /// # Ok::<(), ecci_proto::topic::TopicError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The [`TopicError`] of the form the topic looks most like: the platform form
    /// for topics under `toEdgeAI/`, then the log form for topics under
    /// `{pre_topic}/`, otherwise the app form.
    pub fn parse_with_log_pre_topic(topic: &str, pre_topic: &str) -> Result<Self, TopicError> {
        let app_error = match AppTopic::parse(topic) {
            Ok(t) => return Ok(Self::App(t)),
            Err(e) => e,
        };
        let log = LogTopic::parse(topic, pre_topic);
        if let Ok(t) = log {
            return Ok(Self::Log(t));
        }
        let under = |prefix: &str| {
            topic
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        if under(PLATFORM_PREFIX) {
            PlatformTopic::parse(topic).map(Self::Platform)
        } else if under(pre_topic) {
            log.map(Self::Log)
        } else {
            Err(app_error)
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App(t) => t.fmt(f),
            Self::Platform(t) => t.fmt(f),
            Self::Log(t) => t.fmt(f),
        }
    }
}

impl From<AppTopic> for Topic {
    fn from(t: AppTopic) -> Self {
        Self::App(t)
    }
}

impl From<PlatformTopic> for Topic {
    fn from(t: PlatformTopic) -> Self {
        Self::Platform(t)
    }
}

impl From<LogTopic> for Topic {
    fn from(t: LogTopic) -> Self {
        Self::Log(t)
    }
}

/// The filters a container subscribes to for its inbound messages (QoS 2, again
/// on every connect).
///
/// In this order, without duplicates:
///
/// 1. `ECCI/{broker}/{app}/app/+/{me}` and `ECCI/{broker}/{app}/plugin/+/{me}`;
/// 2. for each mountpoint `M`, the same two with `M` prepended;
/// 3. for each sub object `S`, `ECCI/{broker}/{app}/app/+/{S}` and
///    `ECCI/{broker}/{app}/plugin/+/{S}`.
///
/// Sub objects get no mountpoint variants, as in the Python SDK: messages to a
/// sub object that arrive through a bridge are not received.
///
/// ```
/// use ecci_proto::{AppId, BrokerId, ContainerName};
/// use ecci_proto::topic::{inbound_filters, Mountpoint};
///
/// let filters = inbound_filters(
///     &BrokerId::new("b1")?,
///     &AppId::new("a")?,
///     &ContainerName::new("me")?,
///     &[Mountpoint::new("bridge/e1/").unwrap()],
///     &[ContainerName::new("other")?],
/// );
/// assert_eq!(filters, [
///     "ECCI/b1/a/app/+/me",
///     "ECCI/b1/a/plugin/+/me",
///     "bridge/e1/ECCI/b1/a/app/+/me",
///     "bridge/e1/ECCI/b1/a/plugin/+/me",
///     "ECCI/b1/a/app/+/other",
///     "ECCI/b1/a/plugin/+/other",
/// ]);
/// # Ok::<(), ecci_proto::NameError>(())
/// ```
pub fn inbound_filters(
    broker: &BrokerId,
    app: &AppId,
    me: &ContainerName,
    mountpoints: &[Mountpoint],
    sub_objects: &[ContainerName],
) -> Vec<String> {
    let mine = std::iter::once(None)
        .chain(mountpoints.iter().map(Some))
        .map(|m| (m, me));
    let subs = sub_objects.iter().map(|s| (None, s));
    let mut filters: Vec<String> = Vec::new();
    for (mountpoint, receiver) in mine.chain(subs) {
        for kind in [TopicKind::App, TopicKind::Plugin] {
            let filter = format!(
                "{}{ECCI_MARKER}/{broker}/{app}/{kind}/+/{receiver}",
                mountpoint.map_or("", Mountpoint::as_str)
            );
            // Subscribing twice is harmless but noisy; a sub object equal to `me`
            // or a repeated mountpoint would do it.
            if !filters.contains(&filter) {
                filters.push(filter);
            }
        }
    }
    filters
}

/// Whether the MQTT topic filter `filter` (with `+` and `#` wildcards) matches
/// the topic name `topic`, following MQTT 3.1.1 §4.7.
///
/// Topics starting with `$` are not matched by a filter starting with a wildcard.
///
/// ```
/// use ecci_proto::topic::filter_matches;
/// assert!(filter_matches("ECCI/b/a/app/+/me", "ECCI/b/a/app/you/me"));
/// assert!(filter_matches("ECCI/#", "ECCI/b/a/app/you/me"));
/// assert!(!filter_matches("ECCI/+", "ECCI/b/a"));
/// assert!(!filter_matches("#", "$SYS/uptime"));
/// ```
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fs), Some(ts)) if fs == ts => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::error::Error as _;

    #[track_caller]
    fn check_filter(filter: &str, topic: &str, expected: bool) {
        assert_eq!(
            filter_matches(filter, topic),
            expected,
            "{filter:?} vs {topic:?}"
        );
    }

    #[test]
    fn filters() {
        check_filter("a/b", "a/b", true);
        check_filter("a/b", "a/c", false);
        check_filter("a/+", "a/b", true);
        check_filter("a/+", "a/b/c", false);
        check_filter("a/+", "a", false);
        check_filter("a/+", "a/", true);
        check_filter("a/#", "a", true);
        check_filter("a/#", "a/b/c", true);
        check_filter("#", "a/b", true);
        check_filter("+/+", "/b", true);
        check_filter("+", "$SYS", false);
        check_filter("$SYS/#", "$SYS/x", true);
        check_filter("a/b/c", "a/b", false);
        check_filter("a", "a/b", false);
    }

    /// A rendering of a parse result that does not go through `Display`, so that
    /// the round trip checked in `check_with` means something.
    fn describe(result: &Result<Topic, TopicError>) -> String {
        match result {
            Ok(Topic::App(t)) => format!(
                "app {:?} {:?} {:?} {} {:?} {:?}",
                t.mountpoint.as_ref().map(Mountpoint::as_str),
                t.broker.as_str(),
                t.app.as_str(),
                t.kind.as_str(),
                t.sender.as_str(),
                t.receiver.as_str(),
            ),
            Ok(Topic::Platform(t)) => format!("platform {:?} {}", t.broker.as_str(), t.kind),
            Ok(Topic::Log(t)) => format!("log {:?} {:?}", t.pre_topic(), t.broker().as_str()),
            Err(e) => {
                let mut s = format!("error: {e}");
                let mut source = e.source();
                while let Some(cause) = source {
                    s.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                s
            }
        }
    }

    #[track_caller]
    fn check(input: &str, expected: &str) {
        check_with(DEFAULT_LOG_PRE_TOPIC, input, expected);
    }

    #[track_caller]
    fn check_with(pre_topic: &str, input: &str, expected: &str) {
        let got = Topic::parse_with_log_pre_topic(input, pre_topic);
        assert_eq!(describe(&got), expected, "input {input:?}");
        if let Ok(topic) = got {
            assert_eq!(topic.to_string(), input, "round trip of {input:?}");
            // The specific parsers agree with the general one.
            match topic {
                Topic::App(t) => assert_eq!(AppTopic::parse(input), Ok(t)),
                Topic::Platform(t) => assert_eq!(PlatformTopic::parse(input), Ok(t)),
                Topic::Log(t) => assert_eq!(LogTopic::parse(input, pre_topic), Ok(t)),
            }
        }
    }

    #[test]
    fn app_topics() {
        check(
            "ECCI/broker1/app-7/app/worker1/controller",
            r#"app None "broker1" "app-7" app "worker1" "controller""#,
        );
        check(
            "ECCI/b/a/plugin/me/fileManager",
            r#"app None "b" "a" plugin "me" "fileManager""#,
        );
        check(
            "ECCI/b/a/plugin/fileManager/me",
            r#"app None "b" "a" plugin "fileManager" "me""#,
        );
        check(
            "ECCI/b/a/app/ECCI/ECCI",
            r#"app None "b" "a" app "ECCI" "ECCI""#,
        );
        // Names with odd characters and unicode.
        check(
            "ECCI/b 1/äpp/app/a b.c-d_e$/名字",
            r#"app None "b 1" "äpp" app "a b.c-d_e$" "名字""#,
        );
        check(
            "ECCI/🦀/a/app/s\tx/r",
            r#"app None "🦀" "a" app "s\tx" "r""#,
        );
        // Mountpoints: glued on, with several segments, looking like ECCI itself.
        check(
            "mntECCI/b/a/app/s/r",
            r#"app Some("mnt") "b" "a" app "s" "r""#,
        );
        check(
            "bridge/edge1/ECCI/b/a/plugin/s/r",
            r#"app Some("bridge/edge1/") "b" "a" plugin "s" "r""#,
        );
        check(
            "x/y/z/w/v/u/ECCI/b/a/app/s/r",
            r#"app Some("x/y/z/w/v/u/") "b" "a" app "s" "r""#,
        );
        check(
            "ECCI/b/a/app/s/ECCI/b/a/app/s/r",
            r#"app Some("ECCI/b/a/app/s/") "b" "a" app "s" "r""#,
        );
        check("/ECCI/b/a/app/s/r", r#"app Some("/") "b" "a" app "s" "r""#);
        check(
            "ECCIECCI/b/a/app/s/r",
            r#"app Some("ECCI") "b" "a" app "s" "r""#,
        );
        check(
            "边缘/ECCI/b/a/app/s/r",
            r#"app Some("边缘/") "b" "a" app "s" "r""#,
        );
    }

    #[test]
    fn bad_app_topics() {
        check(
            "ECCI/b/a/other/s/r",
            r#"error: bad kind "other" (expected app or plugin)"#,
        );
        check(
            "ECCI/b/a/App/s/r",
            r#"error: bad kind "App" (expected app or plugin)"#,
        );
        check(
            "ECCI/b/a/app/s",
            "error: topic has 5 segments, fewer than the 6 required",
        );
        check("", "error: topic has 1 segments, fewer than the 6 required");
        check(
            "ECCI",
            "error: topic has 1 segments, fewer than the 6 required",
        );
        check(
            "ECCI/b/a/app/s/r/x",
            r#"error: missing ECCI marker: the segment before the last five is "b", not ECCI or a mountpoint followed by ECCI"#,
        );
        check(
            "ecci/b/a/app/s/r",
            r#"error: missing ECCI marker: the segment before the last five is "ecci", not ECCI or a mountpoint followed by ECCI"#,
        );
        check(
            "ECCIx/b/a/app/s/r",
            r#"error: missing ECCI marker: the segment before the last five is "ECCIx", not ECCI or a mountpoint followed by ECCI"#,
        );
        check(
            "mnt/ECCI/b/a/app/s/r/",
            r#"error: missing ECCI marker: the segment before the last five is "b", not ECCI or a mountpoint followed by ECCI"#,
        );
        // A segment from the network is quoted cut short, never whole.
        let long = "x".repeat(100_000);
        let quoted = format!("{:?}", "x".repeat(64));
        check(
            &format!("{long}/b/a/app/s/r"),
            &format!(
                "error: missing ECCI marker: the segment before the last five is {quoted}, not ECCI or a mountpoint followed by ECCI"
            ),
        );
        check(
            &format!("ECCI/b/a/{long}/s/r"),
            &format!("error: bad kind {quoted} (expected app or plugin)"),
        );
        check(
            &format!("toEdgeAI/b/{long}"),
            &format!(
                "error: unknown platform topic {quoted} (expected con_cntr_ready or send_data)"
            ),
        );
        // Empty segments are empty names.
        check(
            "ECCI//a/app/s/r",
            "error: invalid broker in topic: broker id is empty",
        );
        check(
            "ECCI/b//app/s/r",
            "error: invalid app in topic: app id is empty",
        );
        check(
            "ECCI/b/a/app//r",
            "error: invalid sender in topic: container name is empty",
        );
        check(
            "ECCI/b/a/app/s/",
            "error: invalid receiver in topic: container name is empty",
        );
        check(
            "ECCI/b/a//s/r",
            r#"error: bad kind "" (expected app or plugin)"#,
        );
        check(
            "ECCI/b/a/app/+/r",
            r#"error: invalid sender in topic: container name "+" contains '+', which is not allowed in a topic segment"#,
        );
        check(
            "ECCI/b/a/app/s/#",
            r##"error: invalid receiver in topic: container name "#" contains '#', which is not allowed in a topic segment"##,
        );
        check(
            "ECCI/b/a/app/s/r\0",
            r#"error: invalid receiver in topic: container name "r\0" contains '\0', which is not allowed in a topic segment"#,
        );
        check(
            "+/ECCI/b/a/app/s/r",
            r#"error: invalid mountpoint in topic: mountpoint "+/" contains '+', which is not allowed in a topic"#,
        );
        check(
            &format!("{}ECCI/b/a/app/s/r", "m".repeat(MAX_PREFIX_LEN + 1)),
            "error: invalid mountpoint in topic: mountpoint is 1025 bytes long, more than the 1024 allowed",
        );
        check(
            &format!("ECCI/b/a/app/s/{}", "r".repeat(257)),
            "error: invalid receiver in topic: container name is 257 bytes long, more than the 256 allowed",
        );
    }

    #[test]
    fn platform_and_log_topics() {
        check(
            "toEdgeAI/broker1/con_cntr_ready",
            r#"platform "broker1" con_cntr_ready"#,
        );
        check("toEdgeAI/b/send_data", r#"platform "b" send_data"#);
        check("toEdgeAI/b/log", r#"log "toEdgeAI" "b""#);
        check(
            "toEdgeAI/b/other",
            r#"error: unknown platform topic "other" (expected con_cntr_ready or send_data)"#,
        );
        check(
            "toEdgeAI//send_data",
            "error: invalid broker in topic: broker id is empty",
        );
        check(
            "toEdgeAI/b/c/send_data",
            "error: topic has 4 segments, expected 3",
        );
        check("toEdgeAI/b", "error: topic has 2 segments, expected 3");
        check(
            "toedgeai/b/send_data",
            "error: topic has 3 segments, fewer than the 6 required",
        );
        check_with(
            "testMQTTLogging",
            "testMQTTLogging/broker1/log",
            r#"log "testMQTTLogging" "broker1""#,
        );
        check_with("a/b/c", "a/b/c/broker1/log", r#"log "a/b/c" "broker1""#);
        check_with("日志", "日志/b/log", r#"log "日志" "b""#);
        check_with(
            "a/b",
            "a/b/broker1/logs",
            r#"error: log topic ends in "logs", not log"#,
        );
        check_with(
            "a/b",
            "a/b/broker1/x/log",
            "error: topic has 5 segments, expected 4",
        );
        check_with("a/b", "a/b/log", "error: topic has 3 segments, expected 4");
        check_with(
            "a/b",
            "a/b/+/log",
            r#"error: invalid broker in topic: broker id "+" contains '+', which is not allowed in a topic segment"#,
        );
        check_with(
            "a/#",
            "a/#/b/log",
            r#"error: invalid log pre_topic in topic: log pre_topic "a/#" contains '#', which is not allowed in a topic"#,
        );
        check_with(
            "",
            "/b/log",
            "error: invalid log pre_topic in topic: log pre_topic is empty (leave it out instead)",
        );
        // A custom pre_topic does not hide the platform topics or the app topics.
        check_with("logs", "toEdgeAI/b/send_data", r#"platform "b" send_data"#);
        check_with(
            "ECCI/b/a/app",
            "ECCI/b/a/app/s/log",
            r#"app None "b" "a" app "s" "log""#,
        );
        // With a custom pre_topic, the default one is just another topic.
        check_with(
            "logs",
            "toEdgeAI/b/log",
            r#"error: unknown platform topic "log" (expected con_cntr_ready or send_data)"#,
        );
    }

    #[test]
    fn mountpoint_validation() {
        #[track_caller]
        fn check_mountpoint(input: &str, expected: Result<&str, &str>) {
            let got = Mountpoint::new(input).map_err(|e| e.to_string());
            assert_eq!(
                got.as_ref().map(Mountpoint::as_str).map_err(String::as_str),
                expected,
                "input {input:?}"
            );
        }
        check_mountpoint("bridge/edge1/", Ok("bridge/edge1/"));
        check_mountpoint("mnt", Ok("mnt"));
        check_mountpoint("/", Ok("/"));
        check_mountpoint("$bridge/", Ok("$bridge/"));
        check_mountpoint("", Err("mountpoint is empty (leave it out instead)"));
        check_mountpoint(
            "a/+/",
            Err(r#"mountpoint "a/+/" contains '+', which is not allowed in a topic"#),
        );
        check_mountpoint(
            "#",
            Err(r##"mountpoint "#" contains '#', which is not allowed in a topic"##),
        );
        check_mountpoint(
            "a\0",
            Err(r#"mountpoint "a\0" contains '\0', which is not allowed in a topic"#),
        );
        check_mountpoint(&"m".repeat(MAX_PREFIX_LEN), Ok(&"m".repeat(MAX_PREFIX_LEN)));
    }

    #[test]
    fn file_manager_is_a_valid_name() {
        assert_eq!(file_manager().as_str(), FILE_MANAGER);
    }

    #[test]
    fn constructors() {
        let b = BrokerId::new("b").unwrap();
        let a = AppId::new("a").unwrap();
        let me = ContainerName::new("me").unwrap();
        let you = ContainerName::new("you").unwrap();
        let mnt = Mountpoint::new("bridge/e1/").unwrap();
        for (topic, expected) in [
            (
                AppTopic::app_message(b.clone(), a.clone(), me.clone(), you.clone()).to_string(),
                "ECCI/b/a/app/me/you",
            ),
            (
                AppTopic::file_request(b.clone(), a.clone(), me.clone()).to_string(),
                "ECCI/b/a/plugin/me/fileManager",
            ),
            (
                AppTopic::file_reply(b.clone(), a.clone(), me.clone()).to_string(),
                "ECCI/b/a/plugin/fileManager/me",
            ),
            (
                AppTopic::file_reply(b.clone(), a.clone(), file_manager()).to_string(),
                "ECCI/b/a/plugin/fileManager/fileManager",
            ),
            (
                AppTopic::app_message(b.clone(), a.clone(), me.clone(), you.clone())
                    .with_mountpoint(mnt)
                    .to_string(),
                "bridge/e1/ECCI/b/a/app/me/you",
            ),
            (
                PlatformTopic::ready(b.clone()).to_string(),
                "toEdgeAI/b/con_cntr_ready",
            ),
            (
                PlatformTopic::send_data(b.clone()).to_string(),
                "toEdgeAI/b/send_data",
            ),
            (LogTopic::new(b.clone()).to_string(), "toEdgeAI/b/log"),
        ] {
            assert_eq!(topic, expected);
        }
        assert!(AppTopic::file_reply(b.clone(), a.clone(), me.clone()).is_from_file_manager());
        assert!(!AppTopic::file_request(b.clone(), a.clone(), me.clone()).is_from_file_manager());
        assert!(!AppTopic::app_message(b, a, file_manager(), me).is_from_file_manager());
    }

    fn names(list: &[&str]) -> Vec<ContainerName> {
        list.iter()
            .map(|n| ContainerName::new(*n).unwrap())
            .collect()
    }

    fn mountpoints(list: &[&str]) -> Vec<Mountpoint> {
        list.iter().map(|m| Mountpoint::new(*m).unwrap()).collect()
    }

    #[test]
    fn inbound_filters_for_a_config() {
        let b = BrokerId::new("b1").unwrap();
        let a = AppId::new("app").unwrap();
        let me = ContainerName::new("me").unwrap();
        assert_eq!(
            inbound_filters(&b, &a, &me, &[], &[]),
            ["ECCI/b1/app/app/+/me", "ECCI/b1/app/plugin/+/me"]
        );
        assert_eq!(
            inbound_filters(
                &b,
                &a,
                &me,
                &mountpoints(&["bridge/edge1/", "mnt", "bridge/edge1/"]),
                &names(&["s1", "me", "s2"]),
            ),
            [
                "ECCI/b1/app/app/+/me",
                "ECCI/b1/app/plugin/+/me",
                "bridge/edge1/ECCI/b1/app/app/+/me",
                "bridge/edge1/ECCI/b1/app/plugin/+/me",
                "mntECCI/b1/app/app/+/me",
                "mntECCI/b1/app/plugin/+/me",
                "ECCI/b1/app/app/+/s1",
                "ECCI/b1/app/plugin/+/s1",
                "ECCI/b1/app/app/+/s2",
                "ECCI/b1/app/plugin/+/s2",
            ]
        );
    }

    /// Whether a topic string matches any of the filters.
    fn matched(filters: &[String], topic: &AppTopic) -> bool {
        let topic = topic.to_string();
        filters.iter().any(|f| filter_matches(f, &topic))
    }

    #[test]
    fn inbound_topics_match_the_filters() {
        let b = BrokerId::new("b1").unwrap();
        let other_b = BrokerId::new("b2").unwrap();
        let a = AppId::new("app").unwrap();
        let other_a = AppId::new("app2").unwrap();
        let me = ContainerName::new("me").unwrap();
        let mps = mountpoints(&["bridge/edge1/", "mnt"]);
        let subs = names(&["s1", "s2"]);
        let filters = inbound_filters(&b, &a, &me, &mps, &subs);

        let senders = names(&["controller", "fileManager", "me", "x y"]);
        let mut mountpoint_choices: Vec<Option<Mountpoint>> = vec![None];
        mountpoint_choices.extend(mps.iter().cloned().map(Some));
        let mut checked = 0;
        for mountpoint in &mountpoint_choices {
            for kind in [TopicKind::App, TopicKind::Plugin] {
                for sender in &senders {
                    let topic =
                        |broker: &BrokerId, app: &AppId, receiver: &ContainerName| AppTopic {
                            mountpoint: mountpoint.clone(),
                            broker: broker.clone(),
                            app: app.clone(),
                            kind,
                            sender: sender.clone(),
                            receiver: receiver.clone(),
                        };
                    let t = topic(&b, &a, &me);
                    assert!(matched(&filters, &t), "{t} is not received");
                    for s in &subs {
                        let t = topic(&b, &a, s);
                        // Python subscribes sub objects without mountpoints.
                        assert_eq!(matched(&filters, &t), mountpoint.is_none(), "{t}");
                    }
                    for t in [
                        topic(&other_b, &a, &me),
                        topic(&b, &other_a, &me),
                        topic(&b, &a, sender),
                    ] {
                        if t.receiver != me {
                            assert!(!matched(&filters, &t), "{t} is received");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 3 * 2 * 4);
        let unrelated = Mountpoint::new("elsewhere/").unwrap();
        let t = AppTopic::app_message(b, a, me.clone(), me).with_mountpoint(unrelated);
        assert!(!matched(&filters, &t), "{t} is received");
    }

    fn name_string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.-]{1,12}",
            "[^/+#\u{0}]{1,16}",
            Just("ECCI".to_owned()),
            Just("fileManager".to_owned()),
        ]
    }

    fn mountpoint() -> impl Strategy<Value = Option<Mountpoint>> {
        prop_oneof![
            Just(None),
            "[a-z/]{1,20}".prop_map(|m| Mountpoint::new(m).ok()),
            "[^+#\u{0}]{1,24}".prop_map(|m| Mountpoint::new(m).ok()),
            "(ECCI/|/|ECCI|x/ECCI)*[a-z]{0,3}/?".prop_map(|m| Mountpoint::new(m).ok()),
        ]
    }

    fn app_topic() -> impl Strategy<Value = AppTopic> {
        (
            mountpoint(),
            name_string(),
            name_string(),
            prop_oneof![Just(TopicKind::App), Just(TopicKind::Plugin)],
            name_string(),
            name_string(),
        )
            .prop_map(|(mountpoint, b, a, kind, s, r)| AppTopic {
                mountpoint,
                broker: BrokerId::new(b).unwrap(),
                app: AppId::new(a).unwrap(),
                kind,
                sender: ContainerName::new(s).unwrap(),
                receiver: ContainerName::new(r).unwrap(),
            })
    }

    fn topicish() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ECIa-z/+#\u{0}]{0,40}",
            "((ECCI|toEdgeAI|app|plugin|log|send_data|con_cntr_ready|x|)/){0,9}[a-zé]{0,3}",
        ]
    }

    proptest! {
        #[test]
        fn app_topic_round_trips(t in app_topic()) {
            let s = t.to_string();
            prop_assert_eq!(AppTopic::parse(&s), Ok(t.clone()));
            prop_assert_eq!(Topic::parse(&s), Ok(Topic::App(t)));
        }

        #[test]
        fn log_topic_round_trips(pre in "[^+#\u{0}]{1,24}", b in name_string()) {
            let t = LogTopic::with_pre_topic(pre.clone(), BrokerId::new(b).unwrap()).unwrap();
            prop_assert_eq!(LogTopic::parse(&t.to_string(), &pre), Ok(t));
        }

        #[test]
        fn platform_topic_round_trips(b in name_string(), ready in any::<bool>()) {
            let b = BrokerId::new(b).unwrap();
            let t = if ready { PlatformTopic::ready(b) } else { PlatformTopic::send_data(b) };
            prop_assert_eq!(PlatformTopic::parse(&t.to_string()), Ok(t.clone()));
            prop_assert_eq!(Topic::parse(&t.to_string()), Ok(Topic::Platform(t)));
        }

        #[test]
        fn parsing_never_panics(s in topicish(), pre in topicish()) {
            // A successful parse must also format back to the input.
            if let Ok(t) = Topic::parse_with_log_pre_topic(&s, &pre) {
                prop_assert_eq!(t.to_string(), s.clone());
            }
            if let Ok(t) = AppTopic::parse(&s) {
                prop_assert_eq!(t.to_string(), s.clone());
            }
            if let Ok(t) = PlatformTopic::parse(&s) {
                prop_assert_eq!(t.to_string(), s.clone());
            }
            if let Ok(t) = LogTopic::parse(&s, &pre) {
                prop_assert_eq!(t.to_string(), s.clone());
            }
            let _ = Topic::parse(&s);
            let _ = Mountpoint::new(s);
        }

        #[test]
        fn my_filters_receive_exactly_my_inbound_topics(
            t in app_topic(),
            me in name_string(),
            mps in proptest::collection::vec(mountpoint(), 0..3),
            subs in proptest::collection::vec(name_string(), 0..3),
            pick_receiver in any::<prop::sample::Index>(),
            pick_mountpoint in any::<prop::sample::Index>(),
        ) {
            let me = ContainerName::new(me).unwrap();
            let mps: Vec<Mountpoint> = mps.into_iter().flatten().collect();
            let subs: Vec<ContainerName> =
                subs.into_iter().map(|s| ContainerName::new(s).unwrap()).collect();
            let filters = inbound_filters(&t.broker, &t.app, &me, &mps, &subs);

            // Bias the topic towards my own names and mountpoints, or nothing
            // would ever match.
            let mut receivers = vec![me.clone(), t.receiver.clone()];
            receivers.extend(subs.iter().cloned());
            let mut mountpoints = vec![None, t.mountpoint.clone()];
            mountpoints.extend(mps.iter().cloned().map(Some));
            let t = AppTopic {
                receiver: pick_receiver.get(&receivers).clone(),
                mountpoint: pick_mountpoint.get(&mountpoints).clone(),
                ..t
            };

            let to_me = t.receiver == me
                && t.mountpoint.as_ref().is_none_or(|m| mps.contains(m));
            // Python subscribes sub objects without mountpoints.
            let to_sub = subs.contains(&t.receiver) && t.mountpoint.is_none();
            prop_assert_eq!(matched(&filters, &t), to_me || to_sub, "{} vs {:?}", t, filters);
        }
    }
}
