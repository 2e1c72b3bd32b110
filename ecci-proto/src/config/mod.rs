//! Everything the `ECCI_*` variables say, parsed and validated.
//!
//! The platform configures a container through environment variables (wire notes
//! §1). [`Config::from_lookup`] reads them through any lookup function, so that
//! tests never touch the process environment; [`Config::from_env`] is the one
//! place that reads the real environment. Programs that configure themselves use
//! [`Config::builder`].
//!
//! | variable | field | when unset |
//! |---|---|---|
//! | `ECCI_LOCAL_BROKER_IP` | [`Config::broker_host`] | error |
//! | `ECCI_LOCAL_BROKER_PORT` | [`Config::broker_port`] | 1883 |
//! | `ECCI_LOCAL_BROKER_ID` | [`Config::broker_id`] | error |
//! | `ECCI_LOCAL_BROKER_USERNAME`, `ECCI_LOCAL_BROKER_PASSWORD` | [`Config::credentials`] | `None` (also when only one is set) |
//! | `ECCI_APP_ID` | [`Config::app_id`] | error |
//! | `ECCI_CONTAINER_NAME` | [`Config::container_name`] | error |
//! | `ECCI_PUB_TARGETS` | [`Config::pub_targets`] | none |
//! | `ECCI_SUB_OBJECTS` | [`Config::sub_objects`] | none |
//! | `ECCI_BRIDGE_MOUNTPOINTS` | [`Config::bridge_mountpoints`] | none |
//! | `ECCI_CONTAINER_TYPE` | [`Config::container_type`] | `None` |
//! | `ECCI_APP_TYPE` | [`Config::app_type`] | `None` |
//! | `ECCI_APP_CONTROLLER_CONTAINER` | [`Config::controller`] | `None` |
//! | `ECCI_AGENT_ID` | [`Config::agent_id`] | `None` (set but empty: `""`, as Python) |
//! | `ECCI_FILE_ORIGINS` | [`Config::file_origins`] | none (Rust only: the object stores whose presigned URLs are trusted) |
//!
//! A variable set to the empty string counts as unset (except `ECCI_AGENT_ID`, which
//! Python reports as `""`): deployment templates
//! often write `VAR=""` for "no value", and Python's SDK treats empty credentials
//! the same way. Values are used as given (no trimming), except the port and the
//! literals, which may have surrounding whitespace as in Python.
//!
//! `ECCI_CONTAINER_TYPE` is optional because only file transfer needs it (a
//! Python container without it silently sends no file requests); the file code
//! reports its absence when it matters. Reading stops at the first bad variable.
//!
//! What the Python SDK starts with, this starts with too: a broker id that is not a
//! string (`{'a': 1}` → `1`, Python's `str()`), comments in the literals, an
//! `ECCI_APP_TYPE` other than `controller`/`component` (no handshake), two or more
//! controllers (the last one); each value that looks like a mistake adds a
//! [`ConfigWarning`]. `ECCI_CONTAINER_NAME` is used as given unless
//! [`EnvOptions::strip_platform_prefix`] asks to strip the `edgeai_<x>_` prefix.

pub mod pyliteral;

use std::fmt;

use crate::name::{AppId, BrokerId, ContainerName, NameError};
use crate::readiness::Role;
use crate::topic::{Mountpoint, PrefixError};
use pyliteral::LiteralError;

/// The names of the `ECCI_*` variables, as [`ConfigError`]s name them.
pub mod vars {
    /// Host of the local broker.
    pub const LOCAL_BROKER_IP: &str = "ECCI_LOCAL_BROKER_IP";
    /// Port of the local broker.
    pub const LOCAL_BROKER_PORT: &str = "ECCI_LOCAL_BROKER_PORT";
    /// Id of the local broker.
    pub const LOCAL_BROKER_ID: &str = "ECCI_LOCAL_BROKER_ID";
    /// User name for the local broker.
    pub const LOCAL_BROKER_USERNAME: &str = "ECCI_LOCAL_BROKER_USERNAME";
    /// Password for the local broker.
    pub const LOCAL_BROKER_PASSWORD: &str = "ECCI_LOCAL_BROKER_PASSWORD";
    /// The app id.
    pub const APP_ID: &str = "ECCI_APP_ID";
    /// This container's name, possibly with the platform prefix.
    pub const CONTAINER_NAME: &str = "ECCI_CONTAINER_NAME";
    /// Python dict literal: target container name → broker id.
    pub const PUB_TARGETS: &str = "ECCI_PUB_TARGETS";
    /// Python list literal: extra container names to subscribe for.
    pub const SUB_OBJECTS: &str = "ECCI_SUB_OBJECTS";
    /// Python list literal: topic prefixes of bridged brokers.
    pub const BRIDGE_MOUNTPOINTS: &str = "ECCI_BRIDGE_MOUNTPOINTS";
    /// `cloud` or `edge`.
    pub const CONTAINER_TYPE: &str = "ECCI_CONTAINER_TYPE";
    /// `controller` or `component`.
    pub const APP_TYPE: &str = "ECCI_APP_TYPE";
    /// Python dict literal with at most one entry: controller name → broker id.
    pub const APP_CONTROLLER_CONTAINER: &str = "ECCI_APP_CONTROLLER_CONTAINER";
    /// Agent id reported to the platform.
    pub const AGENT_ID: &str = "ECCI_AGENT_ID";
    /// Origins (`scheme://host[:port]`, separated by commas or spaces) whose
    /// presigned URLs file transfers trust. Rust SDK only.
    pub const FILE_ORIGINS: &str = "ECCI_FILE_ORIGINS";

    /// The variables that say who this container is and how it reaches its broker:
    /// all a logger needs (see [`Config::identity_from_env`](super::Config::identity_from_env)).
    pub const IDENTITY: [&str; 8] = [
        LOCAL_BROKER_IP,
        LOCAL_BROKER_PORT,
        LOCAL_BROKER_ID,
        LOCAL_BROKER_USERNAME,
        LOCAL_BROKER_PASSWORD,
        APP_ID,
        CONTAINER_NAME,
        AGENT_ID,
    ];
}

/// The MQTT port used when `ECCI_LOCAL_BROKER_PORT` is unset.
pub const DEFAULT_PORT: u16 = 1883;

/// Why the configuration could not be built. Each error names the variable
/// that holds the bad value.
///
/// ```
/// use ecci_proto::config::{Config, ConfigError};
/// let err = Config::from_lookup(|_| None).unwrap_err();
/// assert_eq!(err, ConfigError::Missing { variable: "ECCI_LOCAL_BROKER_IP" });
/// assert_eq!(err.to_string(), "ECCI_LOCAL_BROKER_IP is unset or empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{variable} is unset or empty")]
    Missing {
        /// The variable.
        variable: &'static str,
    },
    /// A variable's value is not valid Unicode.
    #[error("{variable} is not valid unicode")]
    NotUnicode {
        /// The variable.
        variable: &'static str,
    },
    /// The port is not a number from 1 to 65535.
    #[error("{variable}: {value:?} is not a port number")]
    Port {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// A value outside a fixed set of words.
    #[error("{variable}: {value:?} is not one of {expected}")]
    NotOneOf {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// The accepted words, e.g. `"cloud, edge"`.
        expected: &'static str,
    },
    /// A variable that must hold a Python literal does not.
    #[error("{variable} is not a Python {shape} literal of strings")]
    Literal {
        /// The variable.
        variable: &'static str,
        /// `"dict"` or `"list"`.
        shape: &'static str,
        /// Where and how the literal is wrong.
        #[source]
        source: LiteralError,
    },
    /// A broker id, app id or container name is invalid.
    #[error("{variable} holds an invalid name")]
    Name {
        /// The variable.
        variable: &'static str,
        /// Which name and what is wrong with it.
        #[source]
        source: NameError,
    },
    /// A bridge mountpoint is not a valid topic prefix.
    #[error("{variable} holds an invalid mountpoint")]
    Mountpoint {
        /// The variable.
        variable: &'static str,
        /// What is wrong with the mountpoint.
        #[source]
        source: PrefixError,
    },
    /// An entry of `ECCI_FILE_ORIGINS` is not an `http`/`https` origin.
    #[error("{variable}: {value:?} is not an origin like http://host:port ({reason})")]
    Origin {
        /// The variable.
        variable: &'static str,
        /// The entry.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than one controller is configured. No longer raised by reading the
    /// variables: the last entry is used with a [`ConfigWarning::SeveralControllers`],
    /// as Python does.
    #[error("{variable} has {count} entries, but a container has at most one controller")]
    TooManyControllers {
        /// The variable.
        variable: &'static str,
        /// How many entries it has.
        count: usize,
    },
    /// `ECCI_APP_TYPE` is `component` but no controller is configured: the
    /// component would have no one to report `ready` to.
    #[error("{app_type} is component but {controller} is empty")]
    ComponentWithoutController {
        /// The app type variable.
        app_type: &'static str,
        /// The controller variable.
        controller: &'static str,
    },
}

/// Where a container runs; decides where its file requests go (wire notes §6).
///
/// ```
/// use ecci_proto::config::ContainerType;
/// assert_eq!("edge".parse::<ContainerType>(), Ok(ContainerType::Edge));
/// assert_eq!(ContainerType::Cloud.as_str(), "cloud");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerType {
    /// In the cloud: file requests go to its own broker's fileManager.
    Cloud,
    /// On an edge node: file requests go to the fileManager of every broker that
    /// hosts a target.
    Edge,
}

impl ContainerType {
    /// The word the platform uses: `cloud` or `edge`.
    ///
    /// ```
    /// use ecci_proto::config::ContainerType;
    /// assert_eq!(ContainerType::Edge.as_str(), "edge");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerType::Cloud => "cloud",
            ContainerType::Edge => "edge",
        }
    }
}

impl fmt::Display for ContainerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ContainerType {
    type Err = ConfigError;

    /// Parses `cloud` or `edge`, as Python compares them: exactly.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "cloud" => Ok(ContainerType::Cloud),
            "edge" => Ok(ContainerType::Edge),
            _ => Err(ConfigError::NotOneOf {
                variable: vars::CONTAINER_TYPE,
                value: s.to_owned(),
                expected: "cloud, edge",
            }),
        }
    }
}

/// A container's role in the readiness handshake (wire notes §4).
///
/// ```
/// use ecci_proto::config::AppType;
/// assert_eq!("controller".parse::<AppType>(), Ok(AppType::Controller));
/// assert!("ctrl".parse::<AppType>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppType {
    /// Waits for `ready` from its targets, then starts them.
    Controller,
    /// Reports `ready` to its controller and waits for `start`.
    Component,
}

impl AppType {
    /// The word the platform uses: `controller` or `component`.
    ///
    /// ```
    /// use ecci_proto::config::AppType;
    /// assert_eq!(AppType::Component.as_str(), "component");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Controller => "controller",
            AppType::Component => "component",
        }
    }
}

impl fmt::Display for AppType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AppType {
    type Err = ConfigError;

    /// Parses `controller` or `component`, exactly.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "controller" => Ok(AppType::Controller),
            "component" => Ok(AppType::Component),
            _ => Err(ConfigError::NotOneOf {
                variable: vars::APP_TYPE,
                value: s.to_owned(),
                expected: "controller, component",
            }),
        }
    }
}

/// User name and password for the local broker. The password never appears in
/// `Debug` output.
///
/// ```
/// use ecci_proto::config::Credentials;
/// let c = Credentials::new("user", "s3cret");
/// assert_eq!(c.password(), "s3cret");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Credentials from a user name and a password.
    ///
    /// ```
    /// use ecci_proto::config::Credentials;
    /// assert_eq!(Credentials::new("u", "p").username(), "u");
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    ///
    /// ```
    /// use ecci_proto::config::Credentials;
    /// assert_eq!(Credentials::new("u", "p").username(), "u");
    /// ```
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password.
    ///
    /// ```
    /// use ecci_proto::config::Credentials;
    /// assert_eq!(Credentials::new("u", "p").password(), "p");
    /// ```
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Another container and the broker it is attached to: a pub target, the
/// controller, or a [`Peer`](crate::readiness::Peer) of the readiness handshake
/// (the same type).
///
/// ```
/// use ecci_proto::config::Target;
/// use ecci_proto::{BrokerId, ContainerName};
/// let t = Target::new(ContainerName::new("worker1").unwrap(), BrokerId::new("b1").unwrap());
/// assert_eq!(t.name, "worker1");
/// assert_eq!(t.broker, "b1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The container's name.
    pub name: ContainerName,
    /// The id of the broker it is attached to.
    pub broker: BrokerId,
}

impl Target {
    /// A target from its name and broker.
    ///
    /// ```
    /// use ecci_proto::config::Target;
    /// use ecci_proto::{BrokerId, ContainerName};
    /// let t = Target::new(ContainerName::new("c").unwrap(), BrokerId::new("b").unwrap());
    /// assert_eq!(t.name.as_str(), "c");
    /// ```
    pub fn new(name: ContainerName, broker: BrokerId) -> Self {
        Self { name, broker }
    }
}

/// How [`Config::from_lookup_with`] reads the variables.
///
/// ```
/// use ecci_proto::config::{Config, EnvOptions};
/// let vars = [
///     ("ECCI_LOCAL_BROKER_IP", "10.0.0.1"),
///     ("ECCI_LOCAL_BROKER_ID", "b1"),
///     ("ECCI_APP_ID", "app"),
///     ("ECCI_CONTAINER_NAME", "edgeai_x_worker"),
/// ];
/// let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
/// assert_eq!(Config::from_lookup(lookup).unwrap().container_name(), "edgeai_x_worker");
/// let strip = EnvOptions { strip_platform_prefix: true };
/// let c = Config::from_lookup_with(&strip, lookup).unwrap();
/// assert_eq!(c.container_name(), "worker");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvOptions {
    /// Whether `ECCI_CONTAINER_NAME` loses an `edgeai_<x>_` prefix (see
    /// [`ContainerName::from_platform_name`]). Default `false`: the name is used as
    /// given, as the newer Python `Client` (the one with the readiness handshake) does;
    /// a Rust component that strips under a Python controller that does not is never
    /// started. Turn it on to talk to containers of the older `MqttClient`, which strips.
    pub strip_platform_prefix: bool,
}

/// A value the Python SDK starts with but that looks like a mistake: the configuration
/// is used as Python would use it, and the client logs the warning
/// ([`Config::warnings`]).
///
/// ```
/// use ecci_proto::config::Config;
/// let c = Config::from_lookup(|k| match k {
///     "ECCI_LOCAL_BROKER_IP" => Some("localhost".into()),
///     "ECCI_LOCAL_BROKER_ID" => Some("b1".into()),
///     "ECCI_APP_ID" => Some("app".into()),
///     "ECCI_CONTAINER_NAME" => Some("me".into()),
///     "ECCI_APP_TYPE" => Some("worker".into()),
///     _ => None,
/// })
/// .unwrap();
/// assert_eq!(c.app_type(), None);
/// assert_eq!(
///     c.warnings()[0].to_string(),
///     "ECCI_APP_TYPE is \"worker\", neither controller nor component: this container takes no part in the readiness handshake (as in Python)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A dict value that is not a string, used as Python's `str()` of it.
    #[error(
        "{variable}: the value of {key:?} is the {kind} {text}, not a string; used as {text:?} (as in Python)"
    )]
    NotAString {
        /// The variable.
        variable: &'static str,
        /// The key whose value it is.
        key: String,
        /// The Python type of the value.
        kind: &'static str,
        /// `str(value)`, as used.
        text: String,
    },
    /// `ECCI_APP_TYPE` is neither `controller` nor `component`: no handshake, as in Python.
    #[error(
        "{variable} is {value:?}, neither controller nor component: this container takes no part in the readiness handshake (as in Python)"
    )]
    UnknownAppType {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// More than one controller: the last one is used, as in Python.
    #[error(
        "{variable} has {count} entries, but a container has one controller; using the last, {used:?} (as in Python)"
    )]
    SeveralControllers {
        /// The variable.
        variable: &'static str,
        /// How many entries it has.
        count: usize,
        /// The controller used.
        used: String,
    },
}

/// A container's whole configuration: wire notes §1, validated.
///
/// Read it from the environment with [`Config::from_env`], from any lookup with
/// [`Config::from_lookup`], or build it with [`Config::builder`].
///
/// ```
/// use ecci_proto::config::Config;
/// use std::collections::HashMap;
/// let env: HashMap<&str, &str> = HashMap::from([
///     ("ECCI_LOCAL_BROKER_IP", "10.0.0.1"),
///     ("ECCI_LOCAL_BROKER_ID", "b1"),
///     ("ECCI_APP_ID", "app"),
///     ("ECCI_CONTAINER_NAME", "edgeai_app_ctrl"),
///     ("ECCI_PUB_TARGETS", "{'worker1': 'b1', 'worker2': 'b2'}"),
///     ("ECCI_APP_TYPE", "controller"),
/// ]);
/// let c = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
/// assert_eq!(c.container_name(), "edgeai_app_ctrl"); // as given, as the Python `Client`
/// assert_eq!(c.broker_port(), 1883);
/// assert_eq!(c.pub_targets().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    broker_host: String,
    broker_port: u16,
    broker_id: BrokerId,
    credentials: Option<Credentials>,
    app_id: AppId,
    container_name: ContainerName,
    pub_targets: Vec<Target>,
    sub_objects: Vec<ContainerName>,
    bridge_mountpoints: Vec<Mountpoint>,
    container_type: Option<ContainerType>,
    app_type: Option<AppType>,
    controller: Option<Target>,
    agent_id: Option<String>,
    file_origins: Vec<String>,
    warnings: Vec<ConfigWarning>,
}

impl Config {
    /// What looked like a mistake in the variables, though Python starts with it
    /// (see [`ConfigWarning`]); empty for a configuration built in code. The client logs
    /// each one when it connects.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Reads the `ECCI_*` variables from the process environment, with default
    /// [`EnvOptions`].
    ///
    /// This, [`Config::from_env_with`] and [`Config::identity_from_env`] are the only code in
    /// the workspace that reads the environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is missing or wrong.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&EnvOptions::default())
    }

    /// Reads the `ECCI_*` variables from the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is missing or wrong.
    pub fn from_env_with(options: &EnvOptions) -> Result<Self, ConfigError> {
        load(options, &env_var)
    }

    /// Reads only the [`vars::IDENTITY`] variables from the process environment (with
    /// default [`EnvOptions`]); the others (targets, readiness, mountpoints, container
    /// type) take their defaults and are not looked at.
    ///
    /// For a logger: it should start, and report, even when a variable it does not need
    /// is wrong; the client that needs that variable reports it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first identity variable that is missing or wrong.
    pub fn identity_from_env() -> Result<Self, ConfigError> {
        load(&EnvOptions::default(), &|variable| {
            if vars::IDENTITY.contains(&variable) {
                env_var(variable)
            } else {
                Ok(None)
            }
        })
    }

    /// [`Config::identity_from_env`] through `lookup` (`None` = unset).
    ///
    /// ```
    /// use ecci_proto::config::Config;
    /// let c = Config::identity_from_lookup(|k| match k {
    ///     "ECCI_LOCAL_BROKER_IP" => Some("localhost".into()),
    ///     "ECCI_LOCAL_BROKER_ID" => Some("b1".into()),
    ///     "ECCI_APP_ID" => Some("app".into()),
    ///     "ECCI_CONTAINER_NAME" => Some("me".into()),
    ///     "ECCI_PUB_TARGETS" => Some("{'unclosed".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(c.container_name(), "me");
    /// assert!(c.pub_targets().is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first identity variable that is missing or wrong.
    pub fn identity_from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::from_lookup(|variable| {
            if vars::IDENTITY.contains(&variable) {
                lookup(variable)
            } else {
                None
            }
        })
    }

    /// Reads the `ECCI_*` variables through `lookup` (`None` = unset), with
    /// default [`EnvOptions`].
    ///
    /// ```
    /// use ecci_proto::config::Config;
    /// let c = Config::from_lookup(|k| match k {
    ///     "ECCI_LOCAL_BROKER_IP" => Some("localhost".into()),
    ///     "ECCI_LOCAL_BROKER_ID" => Some("b1".into()),
    ///     "ECCI_APP_ID" => Some("app".into()),
    ///     "ECCI_CONTAINER_NAME" => Some("me".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert!(c.pub_targets().is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is missing or wrong.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_with(&EnvOptions::default(), lookup)
    }

    /// Reads the `ECCI_*` variables through `lookup` (`None` = unset).
    ///
    /// See [`EnvOptions`] for an example.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is missing or wrong.
    pub fn from_lookup_with(
        options: &EnvOptions,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        load(options, &|variable| Ok(lookup(variable)))
    }

    /// Starts building a configuration in code, from the four values every
    /// container needs; everything else starts empty or at its default.
    ///
    /// ```
    /// use ecci_proto::config::{AppType, Config};
    /// use ecci_proto::{AppId, BrokerId, ContainerName};
    /// let name = |s: &str| ContainerName::new(s).unwrap();
    /// let b1 = BrokerId::new("b1").unwrap();
    /// let c = Config::builder("localhost", b1.clone(), AppId::new("app").unwrap(), name("ctrl"))
    ///     .port(1884)
    ///     .pub_target(name("worker1"), b1.clone())
    ///     .app_type(AppType::Controller)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.broker_port(), 1884);
    /// assert_eq!(c.pub_targets()[0].name, "worker1");
    /// ```
    pub fn builder(
        broker_host: impl Into<String>,
        broker_id: BrokerId,
        app_id: AppId,
        container_name: ContainerName,
    ) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                broker_host: broker_host.into(),
                broker_port: DEFAULT_PORT,
                broker_id,
                credentials: None,
                app_id,
                container_name,
                pub_targets: Vec::new(),
                sub_objects: Vec::new(),
                bridge_mountpoints: Vec::new(),
                container_type: None,
                app_type: None,
                controller: None,
                agent_id: None,
                file_origins: Vec::new(),
                warnings: Vec::new(),
            },
            mountpoints: Vec::new(),
            origins: Vec::new(),
        }
    }

    /// Host name or IP address of the local broker (`ECCI_LOCAL_BROKER_IP`).
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("10.0.0.1", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.broker_host(), "10.0.0.1");
    /// ```
    pub fn broker_host(&self) -> &str {
        &self.broker_host
    }

    /// Port of the local broker (`ECCI_LOCAL_BROKER_PORT`, default
    /// [`DEFAULT_PORT`]).
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.broker_port(), 1883);
    /// ```
    pub fn broker_port(&self) -> u16 {
        self.broker_port
    }

    /// Id of the local broker (`ECCI_LOCAL_BROKER_ID`).
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b1".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.broker_id(), "b1");
    /// ```
    pub fn broker_id(&self) -> &BrokerId {
        &self.broker_id
    }

    /// Credentials for the local broker, present only when both
    /// `ECCI_LOCAL_BROKER_USERNAME` and `ECCI_LOCAL_BROKER_PASSWORD` are set.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert!(c.credentials().is_none());
    /// ```
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The app id (`ECCI_APP_ID`).
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "app".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.app_id(), "app");
    /// ```
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }

    /// This container's name (`ECCI_CONTAINER_NAME`, prefix stripped per
    /// [`EnvOptions::strip_platform_prefix`]).
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "me".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.container_name(), "me");
    /// ```
    pub fn container_name(&self) -> &ContainerName {
        &self.container_name
    }

    /// The containers this one sends to (`ECCI_PUB_TARGETS`), in the literal's
    /// order, each name once.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert!(c.pub_targets().is_empty());
    /// ```
    pub fn pub_targets(&self) -> &[Target] {
        &self.pub_targets
    }

    /// The pub target called exactly `name`, if any.
    ///
    /// ```
    /// use ecci_proto::config::Config;
    /// let c = Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap())
    ///     .pub_target("w1".parse().unwrap(), "b2".parse().unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.pub_target("w1").map(|t| t.broker.as_str()), Some("b2"));
    /// assert!(c.pub_target("w").is_none());
    /// ```
    pub fn pub_target(&self, name: &str) -> Option<&Target> {
        self.pub_targets.iter().find(|t| t.name == name)
    }

    /// Extra container names whose inbound topics this one also subscribes to
    /// (`ECCI_SUB_OBJECTS`), each once.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert!(c.sub_objects().is_empty());
    /// ```
    pub fn sub_objects(&self) -> &[ContainerName] {
        &self.sub_objects
    }

    /// Topic prefixes under which bridged brokers mount this broker's topics
    /// (`ECCI_BRIDGE_MOUNTPOINTS`), each once; none is empty or holds `+`, `#`
    /// or NUL.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).bridge_mountpoint("edge1/").build().unwrap();
    /// assert_eq!(c.bridge_mountpoints(), ["edge1/"]);
    /// ```
    pub fn bridge_mountpoints(&self) -> &[Mountpoint] {
        &self.bridge_mountpoints
    }

    /// Where this container runs (`ECCI_CONTAINER_TYPE`), if known.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.container_type(), None);
    /// ```
    pub fn container_type(&self) -> Option<ContainerType> {
        self.container_type
    }

    /// This container's role in the readiness handshake (`ECCI_APP_TYPE`), if
    /// it takes part.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.app_type(), None);
    /// ```
    pub fn app_type(&self) -> Option<AppType> {
        self.app_type
    }

    /// This container's controller (`ECCI_APP_CONTROLLER_CONTAINER`), if any.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).build().unwrap();
    /// assert!(c.controller().is_none());
    /// ```
    pub fn controller(&self) -> Option<&Target> {
        self.controller.as_ref()
    }

    /// This container's part in the readiness handshake (wire notes §4), from
    /// `ECCI_APP_TYPE`, its controller and its pub targets: `None` when it
    /// takes no part (no `ECCI_APP_TYPE`).
    ///
    /// A controller waits for every pub target and, when it has a controller
    /// of its own, reports to it (a *local* controller).
    ///
    /// ```
    /// use ecci_proto::config::{AppType, Config};
    /// use ecci_proto::readiness::Role;
    /// let c = Config::builder("h", "b".parse()?, "a".parse()?, "me".parse()?)
    ///     .app_type(AppType::Component)
    ///     .controller("ctrl".parse()?, "cloud".parse()?)
    ///     .build()?;
    /// let Some(Role::Component { controller }) = c.readiness_role()? else { panic!() };
    /// assert_eq!(controller.name, "ctrl");
    ///
    /// let lonely = Config::builder("h", "b".parse()?, "a".parse()?, "me".parse()?)
    ///     .app_type(AppType::Component)
    ///     .build()?;
    /// assert_eq!(
    ///     lonely.readiness_role().unwrap_err().to_string(),
    ///     "ECCI_APP_TYPE is component but ECCI_APP_CONTROLLER_CONTAINER is empty"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::ComponentWithoutController`] for a component without a
    /// controller.
    pub fn readiness_role(&self) -> Result<Option<Role>, ConfigError> {
        match self.app_type {
            None => Ok(None),
            Some(AppType::Component) => match &self.controller {
                Some(controller) => Ok(Some(Role::Component {
                    controller: controller.clone(),
                })),
                None => Err(ConfigError::ComponentWithoutController {
                    app_type: vars::APP_TYPE,
                    controller: vars::APP_CONTROLLER_CONTAINER,
                }),
            },
            Some(AppType::Controller) => Ok(Some(Role::Controller {
                targets: self.pub_targets.clone(),
                upstream: self.controller.clone(),
            })),
        }
    }

    /// The agent id reported to the platform (`ECCI_AGENT_ID`); `None` is
    /// reported as JSON `null`.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).agent_id("ag1").build().unwrap();
    /// assert_eq!(c.agent_id(), Some("ag1"));
    /// ```
    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }

    /// The object stores whose presigned URLs file transfers trust
    /// (`ECCI_FILE_ORIGINS`), as `scheme://host[:port]` (lowercase, the port
    /// only when not the scheme's default), each once. Empty when unset.
    ///
    /// ```
    /// # let c = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap()).file_origin("HTTP://MinIO:9000/").file_origin("https://s3.example:443").build().unwrap();
    /// assert_eq!(c.file_origins(), ["http://minio:9000", "https://s3.example"]);
    /// ```
    pub fn file_origins(&self) -> &[String] {
        &self.file_origins
    }

    /// The pub targets a publish addresses (wire notes §5): every target whose
    /// name starts with one of `names`, in configuration order, each once.
    ///
    /// No names (an empty slice) select every target, as a publish without
    /// targets does (possibly none, when none is configured). An empty name
    /// matches every target, as in Python.
    ///
    /// ```
    /// use ecci_proto::config::Config;
    /// let c = Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap())
    ///     .pub_target("worker1".parse().unwrap(), "b1".parse().unwrap())
    ///     .pub_target("worker2".parse().unwrap(), "b2".parse().unwrap())
    ///     .pub_target("store".parse().unwrap(), "b1".parse().unwrap())
    ///     .build()
    ///     .unwrap();
    /// let names: Vec<_> = c.select_targets(&["worker"]).unwrap().iter().map(|t| t.name.as_str()).collect();
    /// assert_eq!(names, ["worker1", "worker2"]);
    /// assert_eq!(
    ///     c.select_targets(&["nobody"]).unwrap_err().to_string(),
    ///     "no pub target starts with \"nobody\"; known targets: worker1, worker2, store",
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// A [`TargetError`] if `names` is not empty and no target matches.
    pub fn select_targets<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<&Target>, TargetError> {
        if names.is_empty() {
            return Ok(self.pub_targets.iter().collect());
        }
        let selected: Vec<&Target> = self
            .pub_targets
            .iter()
            .filter(|t| {
                names
                    .iter()
                    .any(|n| t.name.as_str().starts_with(n.as_ref()))
            })
            .collect();
        if selected.is_empty() {
            return Err(TargetError {
                requested: names.iter().map(|n| n.as_ref().to_owned()).collect(),
                known: self.pub_targets.iter().map(|t| t.name.clone()).collect(),
            });
        }
        Ok(selected)
    }
}

/// Groups targets by the broker they are attached to, brokers and containers in
/// first-seen order: the `{broker_id: [container, …]}` shape of a fileManager
/// `reqTransfer` and the set of brokers an edge container sends file requests to.
///
/// ```
/// use ecci_proto::config::{targets_by_broker, Target};
/// let t = |n: &str, b: &str| Target::new(n.parse().unwrap(), b.parse().unwrap());
/// let targets = [t("w1", "b1"), t("w2", "b2"), t("w3", "b1")];
/// let groups = targets_by_broker(&targets);
/// assert_eq!(groups.len(), 2);
/// assert_eq!(groups[0].0, "b1");
/// assert_eq!(groups[0].1, ["w1", "w3"]);
/// assert_eq!(groups[1].1, ["w2"]);
/// ```
pub fn targets_by_broker<'a>(
    targets: impl IntoIterator<Item = &'a Target>,
) -> Vec<(&'a BrokerId, Vec<&'a ContainerName>)> {
    let mut groups: Vec<(&BrokerId, Vec<&ContainerName>)> = Vec::new();
    for t in targets {
        match groups.iter_mut().find(|(b, _)| *b == &t.broker) {
            Some((_, names)) => {
                if !names.contains(&&t.name) {
                    names.push(&t.name);
                }
            }
            None => groups.push((&t.broker, vec![&t.name])),
        }
    }
    groups
}

/// No pub target matches the names a publish asked for.
///
/// ```
/// use ecci_proto::config::TargetError;
/// let e = TargetError { requested: vec!["x".into()], known: vec![] };
/// assert_eq!(e.to_string(), "no pub target starts with \"x\"; known targets: none");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TargetError {
    /// The names asked for.
    pub requested: Vec<String>,
    /// Every configured pub target.
    pub known: Vec<ContainerName>,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requested.is_empty() {
            f.write_str("no target names given")?;
        } else {
            f.write_str("no pub target starts with ")?;
            for (i, n) in self.requested.iter().enumerate() {
                if i > 0 {
                    f.write_str(" or ")?;
                }
                write!(f, "{n:?}")?;
            }
        }
        f.write_str("; known targets: ")?;
        if self.known.is_empty() {
            return f.write_str("none");
        }
        for (i, n) in self.known.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n.as_str())?;
        }
        Ok(())
    }
}

/// Builds a [`Config`] in code; see [`Config::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
    /// Checked and deduplicated by [`ConfigBuilder::build`].
    mountpoints: Vec<String>,
    /// Checked and normalized by [`ConfigBuilder::build`].
    origins: Vec<String>,
}

impl ConfigBuilder {
    /// Sets the broker port (default [`DEFAULT_PORT`]; 0 is refused by
    /// [`ConfigBuilder::build`]).
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// assert_eq!(b.port(8883).build().unwrap().broker_port(), 8883);
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.config.broker_port = port;
        self
    }

    /// Sets the broker credentials.
    ///
    /// ```
    /// use ecci_proto::config::Credentials;
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.credentials(Credentials::new("u", "p")).build().unwrap();
    /// assert_eq!(c.credentials().map(|c| c.username()), Some("u"));
    /// ```
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.config.credentials = Some(credentials);
        self
    }

    /// Adds a pub target; a name added again keeps its first position and takes
    /// the new broker, as a repeated key in a Python dict does.
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.pub_target("w".parse().unwrap(), "b1".parse().unwrap())
    ///     .pub_target("w".parse().unwrap(), "b2".parse().unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(c.pub_targets().len(), 1);
    /// assert_eq!(c.pub_targets()[0].broker, "b2");
    /// ```
    pub fn pub_target(mut self, name: ContainerName, broker: BrokerId) -> Self {
        match self.config.pub_targets.iter_mut().find(|t| t.name == name) {
            Some(t) => t.broker = broker,
            None => self.config.pub_targets.push(Target::new(name, broker)),
        }
        self
    }

    /// Adds an extra container name to subscribe for (once).
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.sub_object("x".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.sub_objects(), ["x"]);
    /// ```
    pub fn sub_object(mut self, name: ContainerName) -> Self {
        if !self.config.sub_objects.contains(&name) {
            self.config.sub_objects.push(name);
        }
        self
    }

    /// Adds a bridge mountpoint (once), checked by [`ConfigBuilder::build`].
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// assert!(b.bridge_mountpoint("edge/#").build().is_err());
    /// ```
    pub fn bridge_mountpoint(mut self, mountpoint: impl Into<String>) -> Self {
        self.mountpoints.push(mountpoint.into());
        self
    }

    /// Sets where the container runs.
    ///
    /// ```
    /// use ecci_proto::config::ContainerType;
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.container_type(ContainerType::Edge).build().unwrap();
    /// assert_eq!(c.container_type(), Some(ContainerType::Edge));
    /// ```
    pub fn container_type(mut self, container_type: ContainerType) -> Self {
        self.config.container_type = Some(container_type);
        self
    }

    /// Sets the container's role in the readiness handshake.
    ///
    /// ```
    /// use ecci_proto::config::AppType;
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.app_type(AppType::Component).build().unwrap();
    /// assert_eq!(c.app_type(), Some(AppType::Component));
    /// ```
    pub fn app_type(mut self, app_type: AppType) -> Self {
        self.config.app_type = Some(app_type);
        self
    }

    /// Sets the container's controller.
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// let c = b.controller("ctrl".parse().unwrap(), "b0".parse().unwrap()).build().unwrap();
    /// assert_eq!(c.controller().map(|t| t.name.as_str()), Some("ctrl"));
    /// ```
    pub fn controller(mut self, name: ContainerName, broker: BrokerId) -> Self {
        self.config.controller = Some(Target::new(name, broker));
        self
    }

    /// Sets the agent id reported to the platform.
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// assert_eq!(b.agent_id("a1").build().unwrap().agent_id(), Some("a1"));
    /// ```
    pub fn agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.config.agent_id = Some(agent_id.into());
        self
    }

    /// Trusts presigned URLs of `origin` (as one entry of `ECCI_FILE_ORIGINS`;
    /// checked by [`build`](Self::build)).
    pub fn file_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Checks what the types cannot: an empty broker host, port 0, and the
    /// mountpoints. Errors name the variable that would carry the value.
    ///
    /// ```
    /// # let b = ecci_proto::config::Config::builder("h", "b".parse().unwrap(), "a".parse().unwrap(), "c".parse().unwrap());
    /// assert_eq!(
    ///     b.port(0).build().unwrap_err().to_string(),
    ///     "ECCI_LOCAL_BROKER_PORT: \"0\" is not a port number",
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the first bad value.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.config;
        if c.broker_host.is_empty() {
            return Err(ConfigError::Missing {
                variable: vars::LOCAL_BROKER_IP,
            });
        }
        if c.broker_port == 0 {
            return Err(ConfigError::Port {
                variable: vars::LOCAL_BROKER_PORT,
                value: "0".to_owned(),
            });
        }
        c.bridge_mountpoints = check_mountpoints(self.mountpoints)?;
        c.file_origins = check_origins(self.origins)?;
        Ok(c)
    }
}

/// Normalizes the entries of `ECCI_FILE_ORIGINS`, each once.
fn check_origins(raw: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::with_capacity(raw.len());
    for entry in raw {
        let origin = origin(&entry).map_err(|reason| ConfigError::Origin {
            variable: vars::FILE_ORIGINS,
            value: entry.clone(),
            reason,
        })?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// `scheme://host[:port][/]` → `scheme://host[:port]`, lowercase, without the
/// scheme's default port (the form a URL's origin is compared in).
fn origin(entry: &str) -> Result<String, &'static str> {
    let (scheme, rest) = entry.split_once("://").ok_or("no scheme://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("the scheme is not http or https"),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query or user");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("bad port")?;
            (h, Some(port))
        }
        _ => (authority, None),
    };
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !bracketed && !plain {
        return Err("bad host");
    }
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn check_mountpoints(raw: Vec<String>) -> Result<Vec<Mountpoint>, ConfigError> {
    let mut mountpoints: Vec<Mountpoint> = Vec::with_capacity(raw.len());
    for m in raw {
        let m = Mountpoint::new(m).map_err(|source| ConfigError::Mountpoint {
            variable: vars::BRIDGE_MOUNTPOINTS,
            source,
        })?;
        if !mountpoints.contains(&m) {
            mountpoints.push(m);
        }
    }
    Ok(mountpoints)
}

/// One variable of the process environment; set but not Unicode is an error.
fn env_var(variable: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var_os(variable) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| ConfigError::NotUnicode { variable }),
    }
}

type Lookup<'a> = dyn Fn(&'static str) -> Result<Option<String>, ConfigError> + 'a;

/// Reads every variable through `lookup`, stopping at the first error.
fn load(options: &EnvOptions, lookup: &Lookup<'_>) -> Result<Config, ConfigError> {
    // Empty counts as unset (see the module docs).
    let get = |variable| -> Result<Option<String>, ConfigError> {
        Ok(lookup(variable)?.filter(|v| !v.is_empty()))
    };
    let required = |variable| get(variable)?.ok_or(ConfigError::Missing { variable });
    let name_err = |variable| move |source| ConfigError::Name { variable, source };

    let broker_host = required(vars::LOCAL_BROKER_IP)?;
    let broker_port = match get(vars::LOCAL_BROKER_PORT)? {
        None => DEFAULT_PORT,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(ConfigError::Port {
                    variable: vars::LOCAL_BROKER_PORT,
                    value: v,
                });
            }
        },
    };
    let broker_id =
        BrokerId::new(required(vars::LOCAL_BROKER_ID)?).map_err(name_err(vars::LOCAL_BROKER_ID))?;
    let credentials = match (
        get(vars::LOCAL_BROKER_USERNAME)?,
        get(vars::LOCAL_BROKER_PASSWORD)?,
    ) {
        (Some(u), Some(p)) => Some(Credentials::new(u, p)),
        _ => None,
    };
    let app_id = AppId::new(required(vars::APP_ID)?).map_err(name_err(vars::APP_ID))?;
    let raw_name = required(vars::CONTAINER_NAME)?;
    let container_name = if options.strip_platform_prefix {
        ContainerName::from_platform_name(&raw_name)
    } else {
        ContainerName::new(raw_name)
    }
    .map_err(name_err(vars::CONTAINER_NAME))?;

    let mut warnings = Vec::new();
    let pub_targets = targets(vars::PUB_TARGETS, get(vars::PUB_TARGETS)?, &mut warnings)?;
    let sub_objects = list(vars::SUB_OBJECTS, get(vars::SUB_OBJECTS)?)?
        .into_iter()
        .map(|n| ContainerName::new(n).map_err(name_err(vars::SUB_OBJECTS)))
        .collect::<Result<Vec<_>, _>>()?;
    let bridge_mountpoints = check_mountpoints(list(
        vars::BRIDGE_MOUNTPOINTS,
        get(vars::BRIDGE_MOUNTPOINTS)?,
    )?)?;
    let container_type = get(vars::CONTAINER_TYPE)?
        .map(|v| v.parse::<ContainerType>())
        .transpose()?;
    // Python compares with `==`: anything else means no handshake.
    let app_type = get(vars::APP_TYPE)?.and_then(|v| match v.parse::<AppType>() {
        Ok(t) => Some(t),
        Err(_) => {
            warnings.push(ConfigWarning::UnknownAppType {
                variable: vars::APP_TYPE,
                value: v,
            });
            None
        }
    });
    let mut controllers = targets(
        vars::APP_CONTROLLER_CONTAINER,
        get(vars::APP_CONTROLLER_CONTAINER)?,
        &mut warnings,
    )?;
    let count = controllers.len();
    let controller = controllers.pop();
    if let (true, Some(used)) = (count > 1, &controller) {
        warnings.push(ConfigWarning::SeveralControllers {
            variable: vars::APP_CONTROLLER_CONTAINER,
            count,
            used: used.name.to_string(),
        });
    }
    // Set but empty is `""`, as Python sends it; only unset is `None` (JSON null).
    let agent_id = lookup(vars::AGENT_ID)?;
    let file_origins = check_origins(
        get(vars::FILE_ORIGINS)?
            .unwrap_or_default()
            .split([',', ' ', '\t', '\n'])
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    )?;

    Ok(Config {
        broker_host,
        broker_port,
        broker_id,
        credentials,
        app_id,
        container_name,
        pub_targets,
        sub_objects: dedup(sub_objects),
        bridge_mountpoints,
        container_type,
        app_type,
        controller,
        agent_id,
        file_origins,
        warnings,
    })
}

/// Parses a `name → broker id` dict variable. A broker id that is not a string is
/// used as Python's `str()` of it (`{'a': 1}` → `1`), with a warning.
fn targets(
    variable: &'static str,
    value: Option<String>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<Target>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let pairs = pyliteral::parse_str_dict(&value).map_err(|source| ConfigError::Literal {
        variable,
        shape: "dict",
        source,
    })?;
    pairs
        .into_iter()
        .map(|(name, broker)| {
            let name_err = |source| ConfigError::Name { variable, source };
            if broker.kind != "str" {
                warnings.push(ConfigWarning::NotAString {
                    variable,
                    key: name.clone(),
                    kind: broker.kind,
                    text: broker.text.clone(),
                });
            }
            Ok(Target::new(
                ContainerName::new(name).map_err(name_err)?,
                BrokerId::new(broker.text).map_err(name_err)?,
            ))
        })
        .collect()
}

/// Parses a list variable.
fn list(variable: &'static str, value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    pyliteral::parse_list(&value).map_err(|source| ConfigError::Literal {
        variable,
        shape: "list",
        source,
    })
}

/// Removes repeats, keeping first occurrences in order.
fn dedup<T: Eq + std::hash::Hash + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
