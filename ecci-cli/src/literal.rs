//! Reads `ecci send --data` text: a Python literal or JSON, into a [`Value`].
//!
//! The parser is `ecci_proto`'s, the workspace's one ([`parse_value`], tested there
//! against CPython's `ast.literal_eval` and for round trips with `Value`'s `repr`): one
//! grammar covers both, since JSON is nearly a subset of Python's literals: `None`,
//! `True`, `False` (and JSON's `null`, `true`, `false`), integers, floats, strings with
//! single, double or triple quotes (prefixes `b`, `r`, `u`, `br`, `rb`), lists, tuples,
//! dicts and sets. Escapes are Python's (`\n`, `\xhh`, `\uhhhh`, `\Uhhhhhhhh`, …); a JSON
//! surrogate pair `\ud83d\ude00` becomes its one character. The parser never recurses.
//!
//! [`Value`]: ecci_proto::pickle::Value
//! [`parse_value`]: ecci_proto::config::pyliteral::parse_value

pub(crate) use ecci_proto::config::pyliteral::parse_value as parse;
