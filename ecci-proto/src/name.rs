//! Validated names: broker ids, app ids and container names.
//!
//! Every name ends up as one segment of an MQTT topic, so a name that contains a
//! topic separator or wildcard would silently address the wrong containers (the
//! Python SDK's greedy topic regex picks the wrong segment in exactly that case).
//! These newtypes make such names unrepresentable.

use std::borrow::Borrow;
use std::fmt;

/// The longest name accepted, in bytes.
///
/// MQTT allows topics of up to 65,535 bytes; a topic holds up to three names plus
/// a mountpoint, so 256 bytes per name keeps every topic far below that bound.
pub const MAX_NAME_LEN: usize = 256;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("{kind} is empty")]
    Empty {
        /// What kind of name was being checked (`"broker id"`, `"app id"`, `"container name"`).
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("{kind} is {len} bytes long, more than the {MAX_NAME_LEN} allowed")]
    TooLong {
        /// What kind of name was being checked.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character that has a meaning in MQTT topics.
    #[error("{kind} {name:?} contains {found:?}, which is not allowed in a topic segment")]
    ForbiddenChar {
        /// What kind of name was being checked.
        kind: &'static str,
        /// The offending name.
        name: String,
        /// The first forbidden character found.
        found: char,
    },
}

/// Checks `s` as a name of the given kind.
fn validate(kind: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { kind, len: s.len() });
    }
    if let Some(found) = s.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Err(NameError::ForbiddenChar {
            kind,
            name: s.to_owned(),
            found,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$meta:meta])* $ty:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            #[doc = concat!("Validates `name` as a ", $kind, ".")]
            ///
            /// # Errors
            ///
            /// A [`NameError`] if the name is empty, longer than [`MAX_NAME_LEN`]
            /// bytes, or contains `/`, `+`, `#` or NUL.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate($kind, &name)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The id of an MQTT broker in an ECCI deployment (`{myB}` in the wire notes).
    ///
    /// ```
    /// use ecci_proto::BrokerId;
    /// let b = BrokerId::new("broker1").unwrap();
    /// assert_eq!(b.as_str(), "broker1");
    /// assert!(BrokerId::new("a/b").is_err());
    /// ```
    BrokerId,
    "broker id"
);

name_type!(
    /// The id of an ECCI app (`{app}` in the wire notes).
    ///
    /// ```
    /// use ecci_proto::AppId;
    /// assert!(AppId::new("app-1").is_ok());
    /// assert!(AppId::new("").is_err());
    /// ```
    AppId,
    "app id"
);

name_type!(
    /// The name of a container of an app (`{me}` in the wire notes).
    ///
    /// ```
    /// use ecci_proto::ContainerName;
    /// assert!(ContainerName::new("worker1").is_ok());
    /// assert!(ContainerName::new("worker#").is_err());
    /// ```
    ContainerName,
    "container name"
);

impl ContainerName {
    /// Validates a container name as the platform hands it out, stripping the
    /// platform prefix `edgeai_<anything>_` when present.
    ///
    /// The older Python SDK turns `edgeai_<x>_<name>` into `<name>`, cutting at the
    /// first `_` after `edgeai_`; names without that prefix are kept as they are.
    /// This is an explicit option (see `Config`'s `strip_platform_prefix`) because a
    /// container may legitimately be called `edgeai_something`.
    ///
    /// ```
    /// use ecci_proto::ContainerName;
    /// let n = ContainerName::from_platform_name("edgeai_3f9a_worker_1").unwrap();
    /// assert_eq!(n.as_str(), "worker_1");
    /// assert_eq!(ContainerName::from_platform_name("worker").unwrap().as_str(), "worker");
    /// ```
    ///
    /// # Errors
    ///
    /// A [`NameError`] if the stripped name is not a valid container name.
    pub fn from_platform_name(name: &str) -> Result<Self, NameError> {
        Self::new(strip_platform_prefix(name))
    }
}

/// Strips the `edgeai_<x>_` platform prefix, if present.
fn strip_platform_prefix(name: &str) -> &str {
    name.strip_prefix("edgeai_")
        .and_then(|rest| rest.split_once('_'))
        .map_or(name, |(_, tail)| tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&str, &str>) {
        let got = ContainerName::new(input)
            .map(ContainerName::into_string)
            .map_err(|e| e.to_string());
        assert_eq!(
            got.as_deref().map_err(String::as_str),
            expected,
            "input {input:?}"
        );
    }

    #[test]
    fn container_names() {
        check("worker1", Ok("worker1"));
        check("名字", Ok("名字"));
        check("a b", Ok("a b"));
        check("", Err("container name is empty"));
        check(
            "a/b",
            Err("container name \"a/b\" contains '/', which is not allowed in a topic segment"),
        );
        check(
            "a+",
            Err("container name \"a+\" contains '+', which is not allowed in a topic segment"),
        );
        check(
            "#",
            Err("container name \"#\" contains '#', which is not allowed in a topic segment"),
        );
        check(
            "a\0",
            Err("container name \"a\\0\" contains '\\0', which is not allowed in a topic segment"),
        );
        check(&"x".repeat(MAX_NAME_LEN), Ok(&"x".repeat(MAX_NAME_LEN)));
        check(
            &"x".repeat(MAX_NAME_LEN + 1),
            Err("container name is 257 bytes long, more than the 256 allowed"),
        );
    }

    #[test]
    fn platform_prefix() {
        for (input, expected) in [
            ("edgeai_abc_worker", "worker"),
            ("edgeai_abc_worker_2", "worker_2"),
            ("edgeai_abc", "edgeai_abc"),
            ("edgeai_", "edgeai_"),
            ("worker", "worker"),
            ("xedgeai_a_b", "xedgeai_a_b"),
        ] {
            assert_eq!(strip_platform_prefix(input), expected, "input {input:?}");
        }
        assert!(ContainerName::from_platform_name("edgeai_abc_").is_err());
    }

    #[test]
    fn kinds_are_named_in_errors() {
        assert_eq!(
            BrokerId::new("").unwrap_err().to_string(),
            "broker id is empty"
        );
        assert_eq!(AppId::new("").unwrap_err().to_string(), "app id is empty");
    }
}
