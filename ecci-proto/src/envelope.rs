//! The envelope on every `ECCI/…` topic: `{'type': T, 'contents': C}`, pickled.
//!
//! Python peers publish `pickle.dumps({'type': T, 'contents': C})` with `T` one
//! of `'data'`, `'cmd'`, `'file'`, and crash their network thread on anything
//! else. Here a malformed payload is an [`EnvelopeError`] that says what was
//! wrong, so the caller can report it and keep running.

use std::fmt;

use bytes::Bytes;

use crate::pickle::{self, DecodeError, DecodeLimits, Protocol, Value};

/// The longest prefix of an unknown `type` quoted in an error, in characters.
const MAX_QUOTED_TYPE: usize = 64;

/// What an envelope carries, from its `'type'` key.
///
/// ```
/// use ecci_proto::envelope::MessageType;
/// assert_eq!(MessageType::from_wire("cmd"), Some(MessageType::Cmd));
/// assert_eq!(MessageType::File.as_str(), "file");
/// assert_eq!(MessageType::from_wire("other"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Application data (`'data'`).
    Data,
    /// A command such as `ready` or `start` (`'cmd'`); see [`cmd_name`].
    Cmd,
    /// A fileManager plugin message (`'file'`); see [`crate::file`].
    File,
}

impl MessageType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Data => "data",
            MessageType::Cmd => "cmd",
            MessageType::File => "file",
        }
    }

    /// The type named `name` on the wire, if there is one.
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "data" => Some(MessageType::Data),
            "cmd" => Some(MessageType::Cmd),
            "file" => Some(MessageType::File),
            _ => None,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload is not a valid envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The payload is not a pickle this crate accepts.
    #[error("payload is not a valid data-only pickle")]
    NotPickle(#[source] DecodeError),
    /// The payload is a pickle of something other than a dict.
    #[error("envelope is a {found}, not a dict")]
    NotADict {
        /// The Python type found (`"list"`, `"str"`, …).
        found: &'static str,
    },
    /// The dict has no `'type'` key.
    #[error("envelope has no 'type' key")]
    MissingType,
    /// The `'type'` key is not a string.
    #[error("envelope key 'type' is a {found}, not a str")]
    TypeNotStr {
        /// The Python type found.
        found: &'static str,
    },
    /// The `'type'` is not `'data'`, `'cmd'` or `'file'`.
    #[error("unknown envelope type {name:?}")]
    UnknownType {
        /// The type found, cut to its first 64 characters.
        name: String,
    },
    /// The dict has no `'contents'` key.
    #[error("envelope has no 'contents' key")]
    MissingContents,
}

/// A decoded envelope: what it is and what it carries.
///
/// ```
/// use ecci_proto::envelope::{Envelope, MessageType};
/// use ecci_proto::pickle::Value;
///
/// let env = Envelope::cmd("ready");
/// let value = env.to_value();
/// assert_eq!(value.get("type").and_then(Value::as_str), Some("cmd"));
/// assert_eq!(Envelope::from_value(value).unwrap(), env);
/// assert_eq!(env.cmd_name(), Some("ready"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The `'type'` key.
    pub kind: MessageType,
    /// The `'contents'` key, any data value.
    pub contents: Value,
}

impl Envelope {
    /// An envelope of the given kind.
    pub fn new(kind: MessageType, contents: Value) -> Self {
        Self { kind, contents }
    }

    /// A `'data'` envelope.
    pub fn data(contents: Value) -> Self {
        Self::new(MessageType::Data, contents)
    }

    /// A `'cmd'` envelope with contents `{'cmd': name}`.
    ///
    /// ```
    /// use ecci_proto::envelope::Envelope;
    /// use ecci_proto::pickle::Value;
    /// assert_eq!(
    ///     Envelope::cmd("start").to_value(),
    ///     Value::dict([
    ///         ("type", Value::from("cmd")),
    ///         ("contents", Value::dict([("cmd", Value::from("start"))])),
    ///     ]),
    /// );
    /// ```
    pub fn cmd(name: &str) -> Self {
        Self::new(MessageType::Cmd, Value::dict([("cmd", Value::from(name))]))
    }

    /// The command name, if this is a `'cmd'` envelope whose contents are
    /// `{'cmd': NAME, …}` with a string `NAME`.
    pub fn cmd_name(&self) -> Option<&str> {
        match self.kind {
            MessageType::Cmd => cmd_name(&self.contents),
            MessageType::Data | MessageType::File => None,
        }
    }

    /// The dict `{'type': T, 'contents': C}`, in that key order.
    pub fn to_value(&self) -> Value {
        self.clone().into_value()
    }

    /// Like [`Envelope::to_value`], without copying the contents.
    pub fn into_value(self) -> Value {
        // Room for the keys a Rust sender adds beside these two (`ecci_seq`, `ecci_e2e`),
        // so that adding them does not grow the vector.
        let mut pairs = Vec::with_capacity(4);
        pairs.push((Value::from("type"), Value::from(self.kind.as_str())));
        pairs.push((Value::from("contents"), self.contents));
        Value::Dict(pairs)
    }

    /// Reads an envelope from a decoded value.
    ///
    /// Extra keys are ignored, as Python ignores them. When a key repeats (only
    /// a hand-made pickle can do that), the last one counts, as in a Python dict.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] naming what is wrong: not a dict, no `'type'`, a
    /// `'type'` that is not a known string, or no `'contents'`.
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        let pairs = match value {
            Value::Dict(pairs) => pairs,
            other => {
                return Err(EnvelopeError::NotADict {
                    found: other.type_name(),
                });
            }
        };
        let mut kind = None;
        let mut contents = None;
        for (key, value) in pairs {
            match key.as_str() {
                Some("type") => kind = Some(value),
                Some("contents") => contents = Some(value),
                _ => {}
            }
        }
        let kind = match kind {
            None => return Err(EnvelopeError::MissingType),
            Some(Value::Str(name)) => {
                MessageType::from_wire(&name).ok_or_else(|| EnvelopeError::UnknownType {
                    name: name.chars().take(MAX_QUOTED_TYPE).collect(),
                })?
            }
            Some(other) => {
                return Err(EnvelopeError::TypeNotStr {
                    found: other.type_name(),
                });
            }
        };
        let contents = contents.ok_or(EnvelopeError::MissingContents)?;
        Ok(Self { kind, contents })
    }

    /// The envelope as a pickle of the given protocol, as Python's
    /// `pickle.dumps(envelope, protocol)` would write it.
    ///
    /// Like [`pickle::encode`], this never fails, and a Python peer can load
    /// the result only if the contents pass [`Value::check_encodable`]: check
    /// contents built by hand before publishing them.
    pub fn to_pickle(&self, protocol: Protocol) -> Vec<u8> {
        // A borrowed view would avoid this copy, but `Value` owns its data and
        // the encoder takes a `Value`; envelopes are built once per publish.
        pickle::encode(&self.to_value(), protocol)
    }

    /// Decodes an envelope from an untrusted payload.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::NotPickle`] (with the [`DecodeError`] as its source) when
    /// the payload is not an acceptable pickle within `limits`, otherwise what
    /// [`Envelope::from_value`] reports.
    pub fn from_pickle(payload: &[u8], limits: &DecodeLimits) -> Result<Self, EnvelopeError> {
        let value = pickle::decode(payload, limits).map_err(EnvelopeError::NotPickle)?;
        Self::from_value(value)
    }

    /// Like [`Envelope::from_pickle`], from the payload's [`Bytes`]: numpy array
    /// data in the contents stays a view on `payload` (no copy of the pixels).
    ///
    /// # Errors
    ///
    /// As [`Envelope::from_pickle`].
    pub fn from_bytes(payload: &Bytes, limits: &DecodeLimits) -> Result<Self, EnvelopeError> {
        let value = pickle::decode_bytes(payload, limits).map_err(EnvelopeError::NotPickle)?;
        Self::from_value(value)
    }
}

/// The command name of `'cmd'` contents `{'cmd': NAME, …}`, if `NAME` is a string.
///
/// ```
/// use ecci_proto::envelope::cmd_name;
/// use ecci_proto::pickle::Value;
/// assert_eq!(cmd_name(&Value::dict([("cmd", Value::from("exit"))])), Some("exit"));
/// assert_eq!(cmd_name(&Value::dict::<&str>([])), None);
/// assert_eq!(cmd_name(&Value::from("exit")), None);
/// ```
pub fn cmd_name(contents: &Value) -> Option<&str> {
    contents.get("cmd").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn check(input: Value, expected: Result<Envelope, &str>) {
        let got = Envelope::from_value(input.clone()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "input {input:?}");
    }

    fn s(text: &str) -> Value {
        Value::from(text)
    }

    #[test]
    fn from_value_table() {
        let cmd_ready = Value::dict([("cmd", s("ready"))]);
        check(
            Value::dict([("type", s("data")), ("contents", Value::from(3))]),
            Ok(Envelope::data(Value::from(3))),
        );
        check(
            Value::dict([("type", s("cmd")), ("contents", cmd_ready.clone())]),
            Ok(Envelope::cmd("ready")),
        );
        check(
            Value::dict([("contents", Value::None), ("type", s("file"))]),
            Ok(Envelope::new(MessageType::File, Value::None)),
        );
        // A valid envelope whose command has no name.
        check(
            Value::dict([("type", s("cmd")), ("contents", Value::dict::<&str>([]))]),
            Ok(Envelope::new(MessageType::Cmd, Value::dict::<&str>([]))),
        );
        // Extra keys are ignored; a repeated key counts last.
        check(
            Value::dict([
                ("type", s("cmd")),
                ("contents", Value::None),
                ("extra", s("x")),
                ("type", s("data")),
            ]),
            Ok(Envelope::data(Value::None)),
        );
        check(
            Value::List(vec![s("type"), s("data")]),
            Err("envelope is a list, not a dict"),
        );
        check(s("data"), Err("envelope is a str, not a dict"));
        check(Value::None, Err("envelope is a NoneType, not a dict"));
        check(
            Value::dict([("contents", s("x"))]),
            Err("envelope has no 'type' key"),
        );
        check(Value::dict::<&str>([]), Err("envelope has no 'type' key"));
        check(
            Value::Dict(vec![(Value::Bytes(b"type".to_vec()), s("data"))]),
            Err("envelope has no 'type' key"),
        );
        check(
            Value::dict([
                ("type", Value::Bytes(b"data".to_vec())),
                ("contents", s("x")),
            ]),
            Err("envelope key 'type' is a bytes, not a str"),
        );
        check(
            Value::dict([("type", Value::None), ("contents", s("x"))]),
            Err("envelope key 'type' is a NoneType, not a str"),
        );
        check(
            Value::dict([("type", s("Data")), ("contents", s("x"))]),
            Err("unknown envelope type \"Data\""),
        );
        check(
            Value::dict([("type", s(&"é".repeat(100))), ("contents", s("x"))]),
            Err(&format!("unknown envelope type {:?}", "é".repeat(64))),
        );
        check(
            Value::dict([("type", s("data"))]),
            Err("envelope has no 'contents' key"),
        );
    }

    #[test]
    fn to_value_key_order() {
        let env = Envelope::data(Value::List(vec![Value::from(1)]));
        let Value::Dict(pairs) = env.to_value() else {
            panic!("not a dict");
        };
        let keys: Vec<_> = pairs.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["type", "contents"]);
        assert_eq!(pairs[0].1, s("data"));
        assert_eq!(pairs[1].1, Value::List(vec![Value::from(1)]));
    }

    #[test]
    fn commands() {
        for name in ["ready", "start", "exit", "req_ready", "custom"] {
            assert_eq!(Envelope::cmd(name).cmd_name(), Some(name));
        }
        assert_eq!(
            Envelope::data(Value::dict([("cmd", s("start"))])).cmd_name(),
            None
        );
        assert_eq!(
            Envelope::new(MessageType::Cmd, Value::dict([("cmd", Value::from(1))])).cmd_name(),
            None
        );
        assert_eq!(
            Envelope::new(MessageType::Cmd, Value::None).cmd_name(),
            None
        );
    }

    #[test]
    fn not_a_pickle_keeps_its_source() {
        use std::error::Error;
        let err = Envelope::from_pickle(b"", &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.to_string(), "payload is not a valid data-only pickle");
        assert!(err.source().is_some());
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<String>().prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::vec((any::<String>(), inner), 0..4).prop_map(Value::dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn value_round_trip(
            kind in prop_oneof![Just(MessageType::Data), Just(MessageType::Cmd), Just(MessageType::File)],
            contents in value(),
        ) {
            let env = Envelope::new(kind, contents);
            prop_assert_eq!(Envelope::from_value(env.to_value()), Ok(env.clone()));
            prop_assert_eq!(Envelope::from_value(env.clone().into_value()), Ok(env));
        }
    }
}

/// Needs the real pickle codec.
#[cfg(test)]
mod codec_tests {
    use super::*;

    fn python(script: &str, data: &[u8]) -> Vec<u8> {
        crate::testutil::python(script, data)
    }

    #[test]
    fn reads_what_cpython_writes() {
        for protocol in 2..=5 {
            let script = format!(
                "import pickle, sys\n\
                 sys.stdout.buffer.write(pickle.dumps({{'type': 'cmd', 'contents': {{'cmd': 'ready', 'n': [1, 2.5, None, b'x']}}}}, protocol={protocol}))"
            );
            let payload = python(&script, b"");
            let env = Envelope::from_pickle(&payload, &DecodeLimits::default()).unwrap();
            assert_eq!(env.kind, MessageType::Cmd);
            assert_eq!(env.cmd_name(), Some("ready"));
            assert_eq!(
                env.contents.get("n"),
                Some(&Value::List(vec![
                    Value::from(1),
                    Value::from(2.5),
                    Value::None,
                    Value::Bytes(b"x".to_vec())
                ]))
            );
        }
    }

    #[test]
    fn cpython_reads_what_we_write() {
        let env = Envelope::new(
            MessageType::Data,
            Value::dict([
                ("k", Value::from("é")),
                ("v", Value::Tuple(vec![Value::from(1)])),
            ]),
        );
        for protocol in [Protocol::V2, Protocol::V3, Protocol::V4] {
            let out = python(
                "import pickle, sys\nprint(repr(pickle.loads(sys.stdin.buffer.read())), end='')",
                &env.to_pickle(protocol),
            );
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "{'type': 'data', 'contents': {'k': 'é', 'v': (1,)}}"
            );
            assert_eq!(
                Envelope::from_pickle(&env.to_pickle(protocol), &DecodeLimits::default()),
                Ok(env.clone())
            );
        }
    }

    #[test]
    fn malformed_payloads() {
        #[track_caller]
        fn check_payload(python_expr: &str, expected: &str) {
            let payload = python(
                &format!(
                    "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps({python_expr}))"
                ),
                b"",
            );
            let got = Envelope::from_pickle(&payload, &DecodeLimits::default())
                .map_err(|e| e.to_string());
            assert_eq!(got.err().as_deref(), Some(expected), "{python_expr}");
        }
        check_payload("['type', 'data']", "envelope is a list, not a dict");
        check_payload("{'contents': 1}", "envelope has no 'type' key");
        check_payload(
            "{'type': 'nope', 'contents': 1}",
            "unknown envelope type \"nope\"",
        );
        check_payload(
            "{'type': 1, 'contents': 1}",
            "envelope key 'type' is a int, not a str",
        );
        check_payload("{'type': 'data'}", "envelope has no 'contents' key");
        let err = Envelope::from_pickle(b"not a pickle", &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.to_string(), "payload is not a valid data-only pickle");
    }
}
