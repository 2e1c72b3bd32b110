//! [`Command`]: what [`Client::publish_cmd`](crate::Client::publish_cmd) sends, always a
//! dict `{'cmd': name, …}` (wire.md §4, §5).
//!
//! The Python `Client` reads `contents['cmd']` on its network thread and catches only
//! `KeyError`, so command contents that are not a dict (a string, a list) kill a Python
//! receiver for good. Building every command from a name makes that unrepresentable here;
//! [`check_cmd_contents`] refuses such contents where a raw value can still come in
//! ([`Client::publish_envelope`](crate::Client::publish_envelope)).

use ecci_proto::pickle::Value;

use crate::Error;

/// A command: a name and optional extra fields, sent as the dict `{'cmd': name, …}`.
///
/// By default a command leaves in publish order with the application's data to the same
/// targets, as in Python ("results…, then `exit`" arrives in that order);
/// [`urgent`](Self::urgent) lets it jump ahead of data still queued.
///
/// ```
/// use ecci_client::Command;
/// use ecci_proto::pickle::Value;
///
/// let exit = Command::from("exit");
/// assert_eq!(exit.to_value(), Value::dict([("cmd", Value::from("exit"))]));
///
/// let pause = Command::new("pause").with("seconds", 5).with("why", "maintenance");
/// assert_eq!(
///     pause.to_value(),
///     Value::dict([
///         ("cmd", Value::from("pause")),
///         ("seconds", Value::from(5)),
///         ("why", Value::from("maintenance")),
///     ]),
/// );
/// assert!(!pause.is_urgent());
/// assert!(pause.urgent().is_urgent());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `('cmd', name)` first, then the fields in the order they were set; keys are unique.
    fields: Vec<(String, Value)>,
    urgent: bool,
}

impl Command {
    /// The command `{'cmd': name}`.
    pub fn new(name: impl Into<String>) -> Command {
        Command {
            fields: vec![("cmd".to_owned(), Value::Str(name.into()))],
            urgent: false,
        }
    }

    /// Sets the field `key` to `value`, as Python's `contents[key] = value`: a key set again
    /// keeps its place and takes the new value (`"cmd"` included, which renames the
    /// command). Any data value fits; for a serde type use
    /// [`to_value`](ecci_proto::pickle::to_value) first.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Command {
        let key = key.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    /// The same command, sent ahead of the application's data still queued for sending
    /// (the transport's control queue, as the readiness handshake uses). Messages already
    /// handed to the broker are not overtaken.
    #[must_use]
    pub fn urgent(mut self) -> Command {
        self.urgent = true;
        self
    }

    /// Whether it jumps ahead of queued data.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// The command's name: the `'cmd'` field when it is a string.
    pub fn name(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == "cmd")
            .and_then(|(_, v)| v.as_str())
    }

    /// The contents sent: the dict `{'cmd': name, …}`.
    pub fn to_value(&self) -> Value {
        Value::dict(self.fields.iter().cloned())
    }
}

impl From<&str> for Command {
    fn from(name: &str) -> Command {
        Command::new(name)
    }
}

impl From<String> for Command {
    fn from(name: String) -> Command {
        Command::new(name)
    }
}

impl From<&String> for Command {
    fn from(name: &String) -> Command {
        Command::new(name.as_str())
    }
}

/// Refuses command contents a Python receiver cannot survive: anything but a dict.
pub(crate) fn check_cmd_contents(contents: &Value) -> Result<(), Error> {
    if contents.as_dict().is_some() {
        Ok(())
    } else {
        Err(Error::CommandNotADict {
            found: contents.type_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dicts_pass_as_command_contents() {
        assert!(check_cmd_contents(&Command::new("x").to_value()).is_ok());
        assert!(check_cmd_contents(&Value::dict([("other", Value::None)])).is_ok());
        for bad in [
            Value::from("start"),
            Value::List(vec![Value::from("exit")]),
            Value::Tuple(vec![]),
            Value::None,
            Value::from(1),
            Value::Bytes(b"cmd".to_vec()),
        ] {
            let err = check_cmd_contents(&bad).unwrap_err();
            assert!(
                err.to_string().contains(bad.type_name()),
                "{err} names {}",
                bad.type_name()
            );
        }
    }

    #[test]
    fn a_field_set_twice_keeps_its_place() {
        let c = Command::new("a").with("k", 1).with("cmd", "b").with("k", 2);
        assert_eq!(c.name(), Some("b"));
        assert_eq!(
            c.to_value(),
            Value::dict([("cmd", Value::from("b")), ("k", Value::from(2))])
        );
    }
}
