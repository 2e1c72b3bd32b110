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

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::repr::repr;

    /// Parses `src` and shows it as Python would (`repr`), or the error.
    #[track_caller]
    fn check(src: &str, expected: &str) {
        let got = match parse(src) {
            Ok(v) => repr(&v, 10_000),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "{src:?}");
    }

    #[test]
    fn literals() {
        check("None", "None");
        check(" True ", "True");
        check("null", "None");
        check("false", "False");
        check("42", "42");
        check("-7", "-7");
        check("1_000", "1000");
        check("1.5", "1.5");
        check("-2e3", "-2000.0");
        check("1e-7", "1e-07");
        check(
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105727",
        );
        check("'hi'", "'hi'");
        check(r#""it's""#, r#""it's""#);
        check(r"'a\nb\x41\u00e9'", r"'a\nbAé'");
        check(r#""\ud83d\ude00""#, "'😀'");
        check(r"b'\x00ab'", r"b'\x00ab'");
        check(r"r'a\nb'", r"'a\\nb'");
        check("[1, 'a', None]", "[1, 'a', None]");
        check("[1, 2,]", "[1, 2]");
        check("[]", "[]");
        check("()", "()");
        check("(1)", "1");
        check("(1,)", "(1,)");
        check("(1, 2)", "(1, 2)");
        check("{}", "{}");
        check("{'a': [1, b'x', None]}", "{'a': [1, b'x', None]}");
        check(
            r#"{"a": {"b": [true, null]}, "c": 1.0}"#,
            "{'a': {'b': [True, None]}, 'c': 1.0}",
        );
        check("{1, 2}", "{1, 2}");
        check("{(1, 2): 'pair'}", "{(1, 2): 'pair'}");
        check("[[[]]]", "[[[]]]");
    }

    #[test]
    fn errors() {
        check(
            "",
            "error: expected a value at offset 0, found end of input",
        );
        check("[1 2]", "error: expected ',' or ']' at offset 3, found '2'");
        check(
            "{'a' 1}",
            "error: expected ',', ':' or '}' at offset 5, found '1'",
        );
        check(
            "{'a': 1 'b'}",
            "error: expected ',' or '}' at offset 8, found '\\''",
        );
        check("'abc", "error: unterminated string starting at offset 0");
        check("1 2", "error: expected end of input at offset 2, found '2'");
        check("hello", "error: expected a value at offset 0, found 'h'");
        // Python keeps an unknown escape as written.
        check(r"'\q'", r"'\\q'");
        check(
            "b'é'",
            "error: invalid bytes literal at offset 2: a bytes literal holds ASCII characters only",
        );
        check(
            "1.2.3",
            "error: expected a Python int or float at offset 0, found '1'",
        );
        check(
            &"9".repeat(50),
            "error: integer at offset 0 is beyond 128 bits",
        );
        check(
            &"[".repeat(101),
            "error: nesting deeper than 100 at offset 100",
        );
        check(
            "[1,",
            "error: expected a value at offset 3, found end of input",
        );
    }
}
