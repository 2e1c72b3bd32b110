//! The fileManager plugin's messages: the `contents` of `'file'` envelopes.
//!
//! A file goes from one container to others through the platform's fileManager
//! plugin and its MinIO store (wire notes §6): the sender asks for a presigned
//! PUT URL ([`FileMessage::ReqPutUrl`] → [`FileMessage::ResPutUrl`]), uploads,
//! asks the plugin to hand the object on ([`FileMessage::ReqTransfer`]), and each
//! receiver gets a presigned GET URL ([`FileMessage::ResTransfer`]). Presigned
//! URLs are credentials: [`PresignedUrl`] never shows its query string, and the
//! errors here never quote a URL. File names come from the network;
//! [`validate_file_name`] is what stands between them and the file system.

use std::fmt;

use crate::envelope::{Envelope, MessageType};
use crate::name::{BrokerId, ContainerName, NameError};
use crate::pickle::Value;

/// The longest prefix of an unknown `cmd` quoted in an error, in characters.
const MAX_QUOTED_CMD: usize = 64;

/// The longest file name accepted, in bytes (the usual file system limit).
pub const MAX_FILE_NAME_LEN: usize = 255;

/// A presigned URL: a URL whose query string carries credentials.
///
/// [`Debug`](fmt::Debug) and [`Display`](fmt::Display) show only
/// `scheme://host/path`, with `?<redacted>` in place of a query string or
/// fragment and `<redacted>@` in place of user info; [`PresignedUrl::expose`]
/// is the one way to the real URL.
///
/// ```
/// use ecci_proto::file::PresignedUrl;
/// let url = PresignedUrl::new("http://minio:9000/app/f.bin?X-Amz-Signature=s3cr3t");
/// assert_eq!(url.to_string(), "http://minio:9000/app/f.bin?<redacted>");
/// assert!(!format!("{url:?}").contains("s3cr3t"));
/// assert!(url.expose().ends_with("s3cr3t"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PresignedUrl(String);

impl PresignedUrl {
    /// Wraps a URL. It is not parsed or checked here: the HTTP client does that.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, credentials included. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The full URL as an owned string, credentials included. Do not log it.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0.as_str();
        let (base, secret_tail) = match url.find(['?', '#']) {
            Some(i) => (url.get(..i).unwrap_or(""), true),
            None => (url, false),
        };
        let (scheme, rest) = match base.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, base),
        };
        if let Some(scheme) = scheme {
            write!(f, "{scheme}://")?;
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        match authority.rsplit_once('@') {
            Some((_, host)) => write!(f, "<redacted>@{host}")?,
            None => f.write_str(authority)?,
        }
        f.write_str(path)?;
        if secret_tail {
            f.write_str("?<redacted>")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresignedUrl(\"{self}\")")
    }
}

/// A fileManager message: the `contents` of a `'file'` envelope.
///
/// [`FileMessage::to_value`] writes the keys in the order the Python SDK and
/// the plugin write them, `cmd` first; [`FileMessage::from_value`] ignores keys
/// it does not know, so newer peers can add some.
///
/// ```
/// use ecci_proto::file::FileMessage;
/// use ecci_proto::BrokerId;
///
/// let msg = FileMessage::ReqPutUrl {
///     source_broker_id: BrokerId::new("edge1").unwrap(),
///     file_name: "model.bin".to_owned(),
///     file_path: None,
/// };
/// let value = msg.to_value();
/// assert_eq!(value.get("cmd").and_then(|v| v.as_str()), Some("reqPutURL"));
/// assert_eq!(FileMessage::from_value(&value).unwrap(), msg);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMessage {
    /// Sender → plugin: `{'cmd': 'reqPutURL', 'source_broker_id': B, 'file_name': N[, 'file_path': P]}`.
    ReqPutUrl {
        /// The sender's broker, where the plugin sends its answer.
        source_broker_id: BrokerId,
        /// The object's name.
        file_name: String,
        /// The sender's path of the file; absent for an in-memory object.
        file_path: Option<String>,
    },
    /// Plugin → sender: `{'cmd': 'resPutURL', 'file_name': N, 'putURL': U[, 'file_path': P]}`.
    ResPutUrl {
        /// The object's name.
        file_name: String,
        /// Where to `PUT` the bytes.
        put_url: PresignedUrl,
        /// The `file_path` of the request, echoed.
        file_path: Option<String>,
    },
    /// Sender → plugin: `{'cmd': 'reqTransfer', 'file_name': N, 'target': {B: [C, …], …}[, 'sha256': H]}`.
    ReqTransfer {
        /// The object's name.
        file_name: String,
        /// The receiving containers, grouped by their broker, in wire order.
        target: Vec<(BrokerId, Vec<ContainerName>)>,
        /// Rust extension: the hex SHA-256 of the bytes, for an end-to-end check.
        /// Python peers ignore it; written only when set.
        sha256: Option<String>,
    },
    /// Cloud plugin → edge plugin (on `…/plugin/fileManager/fileManager`): copy
    /// the object, then send `resTransfer` to these local containers.
    ///
    /// Written as `{'cmd': C, 'file_name': N[, 'getURL': G], 'target': [C, …][, 'sha256': H]}`
    /// with `C` from `cmd`. The platform's plugin writes `resTransfer` (wire.md
    /// §6 step 5; its edge side treats a `reqTransfer` as a sender's request and
    /// dies on the list). Reading is lenient: any `reqTransfer` or `resTransfer`
    /// whose `target` is a list is this relay, with or without a `getURL`, and
    /// `cmd` keeps which it was so that it is written back as it came.
    RelayTransfer {
        /// The `cmd` it is written with; [`RelayCmd::ResTransfer`] by default.
        cmd: RelayCmd,
        /// The object's name.
        file_name: String,
        /// Where the edge plugin can `GET` the object, when given.
        get_url: Option<PresignedUrl>,
        /// The edge broker's receiving containers.
        target: Vec<ContainerName>,
        /// Rust extension, as in [`FileMessage::ReqTransfer`].
        sha256: Option<String>,
    },
    /// Plugin → receiver: `{'cmd': 'resTransfer', 'file_name': N, 'getURL': G[, 'sha256': H]}`.
    ResTransfer {
        /// The object's name.
        file_name: String,
        /// Where to `GET` the bytes.
        get_url: PresignedUrl,
        /// Rust extension: the hex SHA-256 the sender announced, when it did.
        sha256: Option<String>,
    },
}

/// The `cmd` of a [`FileMessage::RelayTransfer`].
///
/// The default is `resTransfer`, what the platform's cloud plugin sends to an
/// edge plugin (wire.md §6 step 5). `reqTransfer` is still read, from older
/// ecci-rs relays, but never written by default: the real edge plugin takes it
/// for a sender's request and dies.
///
/// ```
/// use ecci_proto::file::RelayCmd;
/// assert_eq!(RelayCmd::default().as_str(), "resTransfer");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RelayCmd {
    /// `reqTransfer`: how older ecci-rs relays wrote it; read, not written by default.
    ReqTransfer,
    /// `resTransfer`: the relay as the platform's plugin writes it.
    #[default]
    ResTransfer,
}

impl RelayCmd {
    /// The `cmd` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayCmd::ReqTransfer => "reqTransfer",
            RelayCmd::ResTransfer => "resTransfer",
        }
    }
}

/// What a `target` of [`FileMessage::ReqTransfer`] must be.
const TARGET_DICT: &str = "a dict of broker id to list of container names";
/// What a `target` of [`FileMessage::RelayTransfer`] must be.
const TARGET_LIST: &str = "a list of container names";

/// Why a `'file'` envelope's contents are not a fileManager message.
///
/// Messages never quote a URL (or any value but an unknown `cmd`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileMessageError {
    /// The contents are not a dict.
    #[error("file message is a {found}, not a dict")]
    NotADict {
        /// The Python type found.
        found: &'static str,
    },
    /// The dict has no `'cmd'` key.
    #[error("file message has no 'cmd' key")]
    MissingCmd,
    /// The `'cmd'` key is not a string.
    #[error("file message key 'cmd' is a {found}, not a str")]
    CmdNotStr {
        /// The Python type found.
        found: &'static str,
    },
    /// The `'cmd'` is not one of the fileManager's.
    #[error("unknown file message cmd {cmd:?}")]
    UnknownCmd {
        /// The command found, cut to its first 64 characters.
        cmd: String,
    },
    /// A key the message needs is missing.
    #[error("{message}: missing key '{key}'")]
    MissingKey {
        /// The message's `cmd`.
        message: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type.
    #[error("{message}: key '{key}' is not {expected}")]
    WrongType {
        /// The message's `cmd`.
        message: &'static str,
        /// The key.
        key: &'static str,
        /// What it should hold (`"a str"`, …).
        expected: &'static str,
    },
    /// A key holds a broker id or container name that is not a valid name.
    #[error("{message}: key '{key}' holds an invalid name")]
    BadName {
        /// The message's `cmd`.
        message: &'static str,
        /// The key.
        key: &'static str,
        /// Why the name is invalid.
        #[source]
        source: NameError,
    },
}

impl FileMessage {
    /// The message's `cmd` on the wire.
    pub fn cmd(&self) -> &'static str {
        match self {
            FileMessage::ReqPutUrl { .. } => "reqPutURL",
            FileMessage::ResPutUrl { .. } => "resPutURL",
            FileMessage::ReqTransfer { .. } => "reqTransfer",
            FileMessage::RelayTransfer { cmd, .. } => cmd.as_str(),
            FileMessage::ResTransfer { .. } => "resTransfer",
        }
    }

    /// The name of the object the message is about.
    pub fn file_name(&self) -> &str {
        match self {
            FileMessage::ReqPutUrl { file_name, .. }
            | FileMessage::ResPutUrl { file_name, .. }
            | FileMessage::ReqTransfer { file_name, .. }
            | FileMessage::RelayTransfer { file_name, .. }
            | FileMessage::ResTransfer { file_name, .. } => file_name,
        }
    }

    /// The `'file'` envelope carrying this message.
    ///
    /// ```
    /// use ecci_proto::envelope::MessageType;
    /// use ecci_proto::file::{FileMessage, PresignedUrl};
    /// let msg = FileMessage::ResTransfer {
    ///     file_name: "f".to_owned(),
    ///     get_url: PresignedUrl::new("http://h/f?sig"),
    ///     sha256: None,
    /// };
    /// assert_eq!(msg.to_envelope().kind, MessageType::File);
    /// ```
    pub fn to_envelope(&self) -> Envelope {
        Envelope::new(MessageType::File, self.to_value())
    }

    /// The contents dict, keys in wire order with `cmd` first; optional keys
    /// only when set.
    pub fn to_value(&self) -> Value {
        let mut pairs: Vec<(&str, Value)> = vec![("cmd", Value::from(self.cmd()))];
        let str_value = |s: &str| Value::from(s);
        match self {
            FileMessage::ReqPutUrl {
                source_broker_id,
                file_name,
                file_path,
            } => {
                pairs.push(("source_broker_id", str_value(source_broker_id.as_str())));
                pairs.push(("file_name", str_value(file_name)));
                if let Some(path) = file_path {
                    pairs.push(("file_path", str_value(path)));
                }
            }
            FileMessage::ResPutUrl {
                file_name,
                put_url,
                file_path,
            } => {
                pairs.push(("file_name", str_value(file_name)));
                pairs.push(("putURL", str_value(put_url.expose())));
                if let Some(path) = file_path {
                    pairs.push(("file_path", str_value(path)));
                }
            }
            FileMessage::ReqTransfer {
                file_name,
                target,
                sha256,
            } => {
                pairs.push(("file_name", str_value(file_name)));
                let target = target
                    .iter()
                    .map(|(broker, containers)| {
                        (str_value(broker.as_str()), container_list(containers))
                    })
                    .collect();
                pairs.push(("target", Value::Dict(target)));
                if let Some(sha) = sha256 {
                    pairs.push(("sha256", str_value(sha)));
                }
            }
            FileMessage::RelayTransfer {
                cmd: _,
                file_name,
                get_url,
                target,
                sha256,
            } => {
                pairs.push(("file_name", str_value(file_name)));
                if let Some(url) = get_url {
                    pairs.push(("getURL", str_value(url.expose())));
                }
                pairs.push(("target", container_list(target)));
                if let Some(sha) = sha256 {
                    pairs.push(("sha256", str_value(sha)));
                }
            }
            FileMessage::ResTransfer {
                file_name,
                get_url,
                sha256,
            } => {
                pairs.push(("file_name", str_value(file_name)));
                pairs.push(("getURL", str_value(get_url.expose())));
                if let Some(sha) = sha256 {
                    pairs.push(("sha256", str_value(sha)));
                }
            }
        }
        Value::dict(pairs)
    }

    /// Reads a message from a `'file'` envelope's contents.
    ///
    /// Unknown keys are ignored. An optional key holding `None` counts as absent.
    ///
    /// # Errors
    ///
    /// A [`FileMessageError`] naming the message and the missing or bad key.
    pub fn from_value(contents: &Value) -> Result<Self, FileMessageError> {
        if contents.as_dict().is_none() {
            return Err(FileMessageError::NotADict {
                found: contents.type_name(),
            });
        }
        let cmd = match contents.get("cmd") {
            None => return Err(FileMessageError::MissingCmd),
            Some(Value::Str(cmd)) => cmd.as_str(),
            Some(other) => {
                return Err(FileMessageError::CmdNotStr {
                    found: other.type_name(),
                });
            }
        };
        match cmd {
            "reqPutURL" => {
                let m = Fields::new("reqPutURL", contents);
                Ok(FileMessage::ReqPutUrl {
                    source_broker_id: m.name("source_broker_id", BrokerId::new)?,
                    file_name: m.string("file_name")?,
                    file_path: m.opt_string("file_path")?,
                })
            }
            "resPutURL" => {
                let m = Fields::new("resPutURL", contents);
                Ok(FileMessage::ResPutUrl {
                    file_name: m.string("file_name")?,
                    put_url: PresignedUrl::new(m.string("putURL")?),
                    file_path: m.opt_string("file_path")?,
                })
            }
            "reqTransfer" | "resTransfer" => {
                let relay_cmd = if cmd == "reqTransfer" {
                    RelayCmd::ReqTransfer
                } else {
                    RelayCmd::ResTransfer
                };
                let message = relay_cmd.as_str();
                let m = Fields::new(message, contents);
                let file_name = m.string("file_name")?;
                let sha256 = m.opt_string("sha256")?;
                let target = contents.get("target");
                if let Some(list) = target.and_then(Value::as_seq) {
                    return Ok(FileMessage::RelayTransfer {
                        cmd: relay_cmd,
                        file_name,
                        get_url: m.opt_string("getURL")?.map(PresignedUrl::new),
                        target: m.containers("target", list, TARGET_LIST)?,
                        sha256,
                    });
                }
                if message == "resTransfer" {
                    return Ok(FileMessage::ResTransfer {
                        file_name,
                        get_url: PresignedUrl::new(m.string("getURL")?),
                        sha256,
                    });
                }
                let pairs = match target {
                    None => return Err(m.missing("target")),
                    Some(Value::Dict(pairs)) => pairs,
                    Some(_) => return Err(m.wrong_type("target", TARGET_DICT)),
                };
                let mut groups = Vec::new();
                for (broker, containers) in pairs {
                    let broker = broker
                        .as_str()
                        .ok_or_else(|| m.wrong_type("target", TARGET_DICT))?;
                    let broker = BrokerId::new(broker).map_err(|e| m.bad_name("target", e))?;
                    let list = containers
                        .as_seq()
                        .ok_or_else(|| m.wrong_type("target", TARGET_DICT))?;
                    groups.push((broker, m.containers("target", list, TARGET_DICT)?));
                }
                Ok(FileMessage::ReqTransfer {
                    file_name,
                    target: groups,
                    sha256,
                })
            }
            other => Err(FileMessageError::UnknownCmd {
                cmd: other.chars().take(MAX_QUOTED_CMD).collect(),
            }),
        }
    }
}

fn container_list(containers: &[ContainerName]) -> Value {
    Value::List(containers.iter().map(|c| Value::from(c.as_str())).collect())
}

/// Reads the keys of one message, naming it in errors.
struct Fields<'a> {
    message: &'static str,
    contents: &'a Value,
}

impl<'a> Fields<'a> {
    fn new(message: &'static str, contents: &'a Value) -> Self {
        Self { message, contents }
    }

    fn missing(&self, key: &'static str) -> FileMessageError {
        FileMessageError::MissingKey {
            message: self.message,
            key,
        }
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str) -> FileMessageError {
        FileMessageError::WrongType {
            message: self.message,
            key,
            expected,
        }
    }

    fn bad_name(&self, key: &'static str, source: NameError) -> FileMessageError {
        FileMessageError::BadName {
            message: self.message,
            key,
            source,
        }
    }

    fn string(&self, key: &'static str) -> Result<String, FileMessageError> {
        match self.contents.get(key) {
            None => Err(self.missing(key)),
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(_) => Err(self.wrong_type(key, "a str")),
        }
    }

    fn opt_string(&self, key: &'static str) -> Result<Option<String>, FileMessageError> {
        match self.contents.get(key) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong_type(key, "a str")),
        }
    }

    fn name<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(String) -> Result<T, NameError>,
    ) -> Result<T, FileMessageError> {
        parse(self.string(key)?).map_err(|e| self.bad_name(key, e))
    }

    fn containers(
        &self,
        key: &'static str,
        list: &[Value],
        expected: &'static str,
    ) -> Result<Vec<ContainerName>, FileMessageError> {
        list.iter()
            .map(|c| {
                let c = c.as_str().ok_or_else(|| self.wrong_type(key, expected))?;
                ContainerName::new(c).map_err(|e| self.bad_name(key, e))
            })
            .collect()
    }
}

/// Why a string from the network cannot be used as a file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileNameError {
    /// The name is empty.
    #[error("file name is empty")]
    Empty,
    /// The name is longer than [`MAX_FILE_NAME_LEN`] bytes.
    #[error("file name is {len} bytes long, more than the {MAX_FILE_NAME_LEN} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name is `.` or `..`.
    #[error("file name {name:?} names a directory")]
    Dots {
        /// The name.
        name: String,
    },
    /// The name contains a path separator or NUL, so it is a path, not a name.
    #[error("file name {name:?} contains {found:?}")]
    ForbiddenChar {
        /// The name.
        name: String,
        /// The first forbidden character.
        found: char,
    },
    /// The name starts with a Windows drive prefix such as `C:`.
    #[error("file name {name:?} starts with a drive prefix")]
    DrivePrefix {
        /// The name.
        name: String,
    },
}

/// Checks that `name`, received from the network, is a plain file name and not a
/// path: not empty, not `.` or `..`, no `/`, `\` or NUL, no drive prefix such as
/// `C:`, at most [`MAX_FILE_NAME_LEN`] bytes. Returns it unchanged when it is.
///
/// Receivers call this before joining a received name to a directory.
///
/// ```
/// use ecci_proto::file::validate_file_name;
/// assert_eq!(validate_file_name("model.bin"), Ok("model.bin"));
/// assert!(validate_file_name("../etc/passwd").is_err());
/// assert!(validate_file_name("/etc/passwd").is_err());
/// ```
///
/// # Errors
///
/// A [`FileNameError`] saying what makes `name` unusable.
pub fn validate_file_name(name: &str) -> Result<&str, FileNameError> {
    if name.is_empty() {
        return Err(FileNameError::Empty);
    }
    if name.len() > MAX_FILE_NAME_LEN {
        return Err(FileNameError::TooLong { len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(FileNameError::Dots {
            name: name.to_owned(),
        });
    }
    if let Some(found) = name.chars().find(|c| matches!(c, '/' | '\\' | '\0')) {
        return Err(FileNameError::ForbiddenChar {
            name: name.to_owned(),
            found,
        });
    }
    let mut chars = name.chars();
    if let (Some(drive), Some(':')) = (chars.next(), chars.next()) {
        if drive.is_ascii_alphabetic() {
            return Err(FileNameError::DrivePrefix {
                name: name.to_owned(),
            });
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "X-Amz-Credential=AKIA%2Fsecret&X-Amz-Signature=deadbeef";

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    fn url(path: &str) -> PresignedUrl {
        PresignedUrl::new(format!("http://minio:9000/app1/{path}?{SECRET}"))
    }

    fn broker(name: &str) -> BrokerId {
        BrokerId::new(name).unwrap()
    }

    fn container(name: &str) -> ContainerName {
        ContainerName::new(name).unwrap()
    }

    /// Decodes `input` and compares with `expected`; on success also checks
    /// that encoding gives back exactly `input`.
    #[track_caller]
    fn check(input: Value, expected: Result<FileMessage, &str>) {
        let got = FileMessage::from_value(&input);
        match (&got, &expected) {
            (Ok(msg), Ok(want)) => {
                assert_eq!(msg, want, "input {input:?}");
                assert_eq!(msg.to_value(), input, "re-encoding {msg:?}");
            }
            (Err(err), Err(want)) => {
                let text = err.to_string();
                assert_eq!(text, *want, "input {input:?}");
                assert!(!text.contains("deadbeef") && !format!("{err:?}").contains("deadbeef"));
            }
            _ => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
        }
    }

    /// Decodes `input`, which has extra or reordered keys, to `expected`.
    #[track_caller]
    fn check_lenient(input: Value, expected: FileMessage) {
        assert_eq!(
            FileMessage::from_value(&input),
            Ok(expected),
            "input {input:?}"
        );
    }

    #[test]
    fn round_trips() {
        check(
            Value::dict([
                ("cmd", s("reqPutURL")),
                ("source_broker_id", s("edge1")),
                ("file_name", s("f.bin")),
                ("file_path", s("/data/f.bin")),
            ]),
            Ok(FileMessage::ReqPutUrl {
                source_broker_id: broker("edge1"),
                file_name: "f.bin".to_owned(),
                file_path: Some("/data/f.bin".to_owned()),
            }),
        );
        check(
            Value::dict([
                ("cmd", s("reqPutURL")),
                ("source_broker_id", s("edge1")),
                ("file_name", s("obj")),
            ]),
            Ok(FileMessage::ReqPutUrl {
                source_broker_id: broker("edge1"),
                file_name: "obj".to_owned(),
                file_path: None,
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resPutURL")),
                ("file_name", s("f.bin")),
                ("putURL", s(url("f.bin").expose())),
                ("file_path", s("/data/f.bin")),
            ]),
            Ok(FileMessage::ResPutUrl {
                file_name: "f.bin".to_owned(),
                put_url: url("f.bin"),
                file_path: Some("/data/f.bin".to_owned()),
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resPutURL")),
                ("file_name", s("obj")),
                ("putURL", s(url("obj").expose())),
            ]),
            Ok(FileMessage::ResPutUrl {
                file_name: "obj".to_owned(),
                put_url: url("obj"),
                file_path: None,
            }),
        );
        check(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f.bin")),
                (
                    "target",
                    Value::dict([
                        ("edge2", Value::List(vec![s("w1"), s("w2")])),
                        ("cloud", Value::List(vec![s("agg")])),
                    ]),
                ),
            ]),
            Ok(FileMessage::ReqTransfer {
                file_name: "f.bin".to_owned(),
                target: vec![
                    (broker("edge2"), vec![container("w1"), container("w2")]),
                    (broker("cloud"), vec![container("agg")]),
                ],
                sha256: None,
            }),
        );
        check(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f.bin")),
                ("target", Value::dict::<&str>([])),
                ("sha256", s("ab12")),
            ]),
            Ok(FileMessage::ReqTransfer {
                file_name: "f.bin".to_owned(),
                target: Vec::new(),
                sha256: Some("ab12".to_owned()),
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f.bin")),
                ("getURL", s(url("f.bin").expose())),
            ]),
            Ok(FileMessage::ResTransfer {
                file_name: "f.bin".to_owned(),
                get_url: url("f.bin"),
                sha256: None,
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f.bin")),
                ("getURL", s(url("f.bin").expose())),
                ("sha256", s("ab12")),
            ]),
            Ok(FileMessage::ResTransfer {
                file_name: "f.bin".to_owned(),
                get_url: url("f.bin"),
                sha256: Some("ab12".to_owned()),
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f.bin")),
                ("getURL", s(url("f.bin").expose())),
                ("target", Value::List(vec![s("w1"), s("w2")])),
            ]),
            Ok(FileMessage::RelayTransfer {
                cmd: RelayCmd::ResTransfer,
                file_name: "f.bin".to_owned(),
                get_url: Some(url("f.bin")),
                target: vec![container("w1"), container("w2")],
                sha256: None,
            }),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f.bin")),
                ("target", Value::List(Vec::new())),
                ("sha256", s("ab12")),
            ]),
            Ok(FileMessage::RelayTransfer {
                cmd: RelayCmd::ResTransfer,
                file_name: "f.bin".to_owned(),
                get_url: None,
                target: Vec::new(),
                sha256: Some("ab12".to_owned()),
            }),
        );
        // The relay written as a forwarded request reads back as one.
        check(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f.bin")),
                ("target", Value::List(vec![s("w1")])),
            ]),
            Ok(FileMessage::RelayTransfer {
                cmd: RelayCmd::ReqTransfer,
                file_name: "f.bin".to_owned(),
                get_url: None,
                target: vec![container("w1")],
                sha256: None,
            }),
        );
    }

    #[test]
    fn lenient_reading() {
        // Unknown keys, other key orders, None for optional keys, tuples for lists.
        check_lenient(
            Value::dict([
                ("file_name", s("f")),
                ("extra", Value::from(7)),
                ("source_broker_id", s("b")),
                ("file_path", Value::None),
                ("cmd", s("reqPutURL")),
            ]),
            FileMessage::ReqPutUrl {
                source_broker_id: broker("b"),
                file_name: "f".to_owned(),
                file_path: None,
            },
        );
        check_lenient(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f")),
                ("target", Value::dict([("b", Value::Tuple(vec![s("c")]))])),
                ("priority", s("high")),
            ]),
            FileMessage::ReqTransfer {
                file_name: "f".to_owned(),
                target: vec![(broker("b"), vec![container("c")])],
                sha256: None,
            },
        );
        // The relay form, however its cmd is spelled.
        check_lenient(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f")),
                ("target", Value::Tuple(vec![s("c")])),
            ]),
            FileMessage::RelayTransfer {
                cmd: RelayCmd::ReqTransfer,
                file_name: "f".to_owned(),
                get_url: None,
                target: vec![container("c")],
                sha256: None,
            },
        );
        // A resTransfer whose target is not a list is a plain resTransfer.
        check_lenient(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f")),
                ("getURL", s("http://h/p")),
                ("target", Value::None),
            ]),
            FileMessage::ResTransfer {
                file_name: "f".to_owned(),
                get_url: PresignedUrl::new("http://h/p"),
                sha256: None,
            },
        );
    }

    #[test]
    fn errors() {
        let req_transfer = |target: Value| {
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f")),
                ("target", target),
            ])
        };
        check(
            Value::List(vec![s("cmd")]),
            Err("file message is a list, not a dict"),
        );
        check(
            Value::dict([("file_name", s("f"))]),
            Err("file message has no 'cmd' key"),
        );
        check(
            Value::dict([("cmd", Value::Bytes(b"reqPutURL".to_vec()))]),
            Err("file message key 'cmd' is a bytes, not a str"),
        );
        check(
            Value::dict([("cmd", s("reqGetURL"))]),
            Err("unknown file message cmd \"reqGetURL\""),
        );
        check(
            Value::dict([("cmd", s(&"x".repeat(500)))]),
            Err(&format!("unknown file message cmd {:?}", "x".repeat(64))),
        );
        check(
            Value::dict([("cmd", s("reqPutURL")), ("file_name", s("f"))]),
            Err("reqPutURL: missing key 'source_broker_id'"),
        );
        check(
            Value::dict([("cmd", s("reqPutURL")), ("source_broker_id", s("b"))]),
            Err("reqPutURL: missing key 'file_name'"),
        );
        check(
            Value::dict([
                ("cmd", s("reqPutURL")),
                ("source_broker_id", s("a/b")),
                ("file_name", s("f")),
            ]),
            Err("reqPutURL: key 'source_broker_id' holds an invalid name"),
        );
        check(
            Value::dict([
                ("cmd", s("reqPutURL")),
                ("source_broker_id", s("b")),
                ("file_name", s("f")),
                ("file_path", Value::from(3)),
            ]),
            Err("reqPutURL: key 'file_path' is not a str"),
        );
        check(
            Value::dict([("cmd", s("resPutURL")), ("file_name", s("f"))]),
            Err("resPutURL: missing key 'putURL'"),
        );
        check(
            Value::dict([
                ("cmd", s("resPutURL")),
                ("file_name", s("f")),
                (
                    "putURL",
                    Value::Bytes(url("f").expose().as_bytes().to_vec()),
                ),
            ]),
            Err("resPutURL: key 'putURL' is not a str"),
        );
        check(
            Value::dict([
                ("cmd", s("resPutURL")),
                ("file_name", Value::from(1)),
                ("putURL", s(url("f").expose())),
            ]),
            Err("resPutURL: key 'file_name' is not a str"),
        );
        check(
            Value::dict([("cmd", s("reqTransfer")), ("file_name", s("f"))]),
            Err("reqTransfer: missing key 'target'"),
        );
        let not_dict =
            "reqTransfer: key 'target' is not a dict of broker id to list of container names";
        check(req_transfer(s("b")), Err(not_dict));
        check(req_transfer(Value::None), Err(not_dict));
        check(
            req_transfer(Value::Dict(vec![(Value::from(1), Value::List(vec![]))])),
            Err(not_dict),
        );
        check(req_transfer(Value::dict([("b", s("c"))])), Err(not_dict));
        check(
            req_transfer(Value::dict([("b", Value::List(vec![Value::from(1)]))])),
            Err(not_dict),
        );
        check(
            req_transfer(Value::dict([("b#", Value::List(vec![]))])),
            Err("reqTransfer: key 'target' holds an invalid name"),
        );
        check(
            req_transfer(Value::dict([("b", Value::List(vec![s("c+")]))])),
            Err("reqTransfer: key 'target' holds an invalid name"),
        );
        check(
            req_transfer(Value::List(vec![Value::None])),
            Err("reqTransfer: key 'target' is not a list of container names"),
        );
        check(
            Value::dict([
                ("cmd", s("reqTransfer")),
                ("file_name", s("f")),
                ("target", Value::dict::<&str>([])),
                ("sha256", Value::Bytes(vec![1])),
            ]),
            Err("reqTransfer: key 'sha256' is not a str"),
        );
        check(
            Value::dict([("cmd", s("resTransfer")), ("file_name", s("f"))]),
            Err("resTransfer: missing key 'getURL'"),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f")),
                ("getURL", Value::List(vec![s(url("f").expose())])),
            ]),
            Err("resTransfer: key 'getURL' is not a str"),
        );
        check(
            Value::dict([
                ("cmd", s("resTransfer")),
                ("file_name", s("f")),
                ("getURL", Value::from(0)),
                ("target", Value::List(vec![])),
            ]),
            Err("resTransfer: key 'getURL' is not a str"),
        );
    }

    #[test]
    fn name_errors_keep_their_source() {
        use std::error::Error;
        let err = FileMessage::from_value(&Value::dict([
            ("cmd", s("reqPutURL")),
            ("source_broker_id", s("")),
            ("file_name", s("f")),
        ]))
        .unwrap_err();
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("broker id is empty")
        );
    }

    #[test]
    fn urls_are_redacted() {
        #[track_caller]
        fn check_url(input: &str, shown: &str) {
            let url = PresignedUrl::new(input);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("PresignedUrl(\"{shown}\")"));
            assert_eq!(url.expose(), input);
        }
        check_url(
            &format!("http://minio:9000/app1/f.bin?{SECRET}"),
            "http://minio:9000/app1/f.bin?<redacted>",
        );
        check_url("https://h/p", "https://h/p");
        check_url("https://h", "https://h");
        check_url("https://h?sig=1", "https://h?<redacted>");
        check_url("https://h/p#token", "https://h/p?<redacted>");
        check_url("https://user:pw@h/p?x", "https://<redacted>@h/p?<redacted>");
        check_url("https://h/a@b", "https://h/a@b");
        check_url("h/p?sig", "h/p?<redacted>");
        check_url("?sig", "?<redacted>");
        check_url("", "");

        let msg = FileMessage::ResTransfer {
            file_name: "f".to_owned(),
            get_url: url("f"),
            sha256: None,
        };
        let debug = format!("{msg:?}");
        assert!(!debug.contains("deadbeef"), "{debug}");
        assert!(
            debug.contains("http://minio:9000/app1/f?<redacted>"),
            "{debug}"
        );
    }

    #[test]
    fn file_names() {
        #[track_caller]
        fn check_name(input: &str, expected: Result<(), &str>) {
            let got = validate_file_name(input).map_err(|e| e.to_string());
            let input_str = input;
            match expected {
                Ok(()) => assert_eq!(got, Ok(input), "input {input:?}"),
                Err(want) => assert_eq!(got, Err(want.to_owned()), "input {input_str:?}"),
            }
        }
        check_name("model.bin", Ok(()));
        check_name(".hidden", Ok(()));
        check_name("...", Ok(()));
        check_name("a b (1).tar.gz", Ok(()));
        check_name("名字.txt", Ok(()));
        check_name("ab:c", Ok(()));
        check_name("1:x", Ok(()));
        check_name(&"x".repeat(255), Ok(()));
        check_name("", Err("file name is empty"));
        check_name(
            &"x".repeat(256),
            Err("file name is 256 bytes long, more than the 255 allowed"),
        );
        check_name(
            &"é".repeat(128),
            Err("file name is 256 bytes long, more than the 255 allowed"),
        );
        check_name(".", Err("file name \".\" names a directory"));
        check_name("..", Err("file name \"..\" names a directory"));
        check_name("/etc/passwd", Err("file name \"/etc/passwd\" contains '/'"));
        check_name("../x", Err("file name \"../x\" contains '/'"));
        check_name("a/b", Err("file name \"a/b\" contains '/'"));
        check_name("..\\x", Err("file name \"..\\\\x\" contains '\\\\'"));
        check_name("a\0b", Err("file name \"a\\0b\" contains '\\0'"));
        check_name("C:x", Err("file name \"C:x\" starts with a drive prefix"));
        check_name("c:", Err("file name \"c:\" starts with a drive prefix"));
        check_name("a:b", Err("file name \"a:b\" starts with a drive prefix"));
    }

    fn name_strategy() -> impl Strategy<Value = String> + Clone {
        "[a-zA-Z0-9_.-]{1,12}"
    }

    fn message_strategy() -> impl Strategy<Value = FileMessage> {
        let cname = name_strategy().prop_map(|n| ContainerName::new(n).unwrap());
        let bname = name_strategy().prop_map(|n| BrokerId::new(n).unwrap());
        let text = any::<String>();
        let opt_text = proptest::option::of(any::<String>());
        let url = any::<String>().prop_map(PresignedUrl::new);
        prop_oneof![
            (bname.clone(), text, opt_text.clone()).prop_map(|(b, f, p)| {
                FileMessage::ReqPutUrl {
                    source_broker_id: b,
                    file_name: f,
                    file_path: p,
                }
            }),
            (text, url.clone(), opt_text.clone()).prop_map(|(f, u, p)| {
                FileMessage::ResPutUrl {
                    file_name: f,
                    put_url: u,
                    file_path: p,
                }
            }),
            (
                text,
                proptest::collection::vec(
                    (bname, proptest::collection::vec(cname.clone(), 0..3)),
                    0..3
                ),
                opt_text.clone()
            )
                .prop_map(|(f, t, h)| FileMessage::ReqTransfer {
                    file_name: f,
                    target: t,
                    sha256: h,
                }),
            (
                text,
                proptest::option::of(url.clone()),
                proptest::collection::vec(cname, 0..3),
                opt_text.clone(),
                proptest::prop_oneof![Just(RelayCmd::ReqTransfer), Just(RelayCmd::ResTransfer)],
            )
                .prop_map(|(f, u, t, h, cmd)| FileMessage::RelayTransfer {
                    cmd,
                    file_name: f,
                    get_url: u,
                    target: t,
                    sha256: h,
                }),
            (text, url, opt_text).prop_map(|(f, u, h)| FileMessage::ResTransfer {
                file_name: f,
                get_url: u,
                sha256: h,
            }),
        ]
    }

    proptest! {
        #[test]
        fn value_round_trip(msg in message_strategy()) {
            prop_assert_eq!(FileMessage::from_value(&msg.to_value()), Ok(msg));
        }

        #[test]
        fn redaction_hides_query(base in "[a-z]{1,8}://[a-z0-9.:]{1,12}(/[a-z0-9]{0,6}){0,3}", query in "[a-zA-Z0-9=&%]{1,40}") {
            let url = PresignedUrl::new(format!("{base}?{query}"));
            prop_assert_eq!(url.to_string(), format!("{base}?<redacted>"));
        }

        #[test]
        fn validated_names_are_single_components(name in any::<String>()) {
            if let Ok(name) = validate_file_name(&name) {
                let path = std::path::Path::new(name);
                let mut components = path.components();
                prop_assert!(matches!(components.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(components.next().is_none());
            }
        }
    }
}
