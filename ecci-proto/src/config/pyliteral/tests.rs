//! Tests for the Python literal parser: tables, round trips, and CPython itself.

use super::*;
use proptest::prelude::*;

mod dict {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&[(&str, &str)], &str>) {
        let got = parse_dict(input).map_err(|e| e.to_string());
        let expected = expected
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<Vec<_>>()
            })
            .map_err(str::to_owned);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn valid() {
        check("{}", Ok(&[]));
        check(" \t{ \n}\n ", Ok(&[]));
        check("{'a': 'b'}", Ok(&[("a", "b")]));
        check(r#"{"a": "b"}"#, Ok(&[("a", "b")]));
        check(
            r#"{'containerB': 'broker1', "worker2": "broker2",}"#,
            Ok(&[("containerB", "broker1"), ("worker2", "broker2")]),
        );
        check("{'a':'b','c':'d'}", Ok(&[("a", "b"), ("c", "d")]));
        check("{\n\t'a' :\r\n 'b' ,\x0c\n}", Ok(&[("a", "b")]));
        // Python keeps the last value, at the key's first position.
        check(
            "{'a': '1', 'b': '2', 'a': '3'}",
            Ok(&[("a", "3"), ("b", "2")]),
        );
        check(r"{'a': '1', '\x61': '2'}", Ok(&[("a", "2")]));
        check("{'': ''}", Ok(&[("", "")]));
        check("{'名字': 'ブローカー😀'}", Ok(&[("名字", "ブローカー😀")]));
    }

    #[test]
    fn strings() {
        check(r#"{'it\'s': "say \"hi\""}"#, Ok(&[("it's", "say \"hi\"")]));
        check(r#"{'"': "'"}"#, Ok(&[("\"", "'")]));
        check(r"{'\\': '\n\t\r'}", Ok(&[("\\", "\n\t\r")]));
        check(r"{'\a\b\f\v': ''}", Ok(&[("\x07\x08\x0c\x0b", "")]));
        check(r"{'\x41\x7e': '\u00e9\U0001F600'}", Ok(&[("A~", "é😀")]));
        check(r"{'\101\0\08': '\777'}", Ok(&[("A\0\08", "\u{1ff}")]));
        check(r"{'\d\w': '\ '}", Ok(&[("\\d\\w", "\\ ")]));
        check("{'a\\\nb': 'c'}", Ok(&[("ab", "c")]));
        check("{'a\\\r\nb': 'c'}", Ok(&[("ab", "c")]));
        check(r"{r'\n': R'\''}", Ok(&[("\\n", "\\'")]));
        check(r"{r'\\': 'x'}", Ok(&[("\\\\", "x")]));
        check(r#"{u'a': U"b"}"#, Ok(&[("a", "b")]));
        check(r#"{'a' "b" : 'c'  'd'}"#, Ok(&[("ab", "cd")]));
        check(r"{'a' r'\n' u'b': 'c'}", Ok(&[("a\\nb", "c")]));
        check(
            "{'''it's''': \"\"\"a\"b\nc\"\"\"}",
            Ok(&[("it's", "a\"b\nc")]),
        );
        check("{'''''': ''}", Ok(&[("", "")]));
        check(
            "{'''a'''': ''}",
            Err("unterminated string starting at offset 12"),
        );
    }

    #[test]
    fn invalid() {
        check("", Err("expected '{' at offset 0, found end of input"));
        check("  ", Err("expected '{' at offset 2, found end of input"));
        check("[]", Err("expected '{' at offset 0, found '['"));
        check(
            "{",
            Err("expected a string or '}' at offset 1, found end of input"),
        );
        check(
            "{'a': 'b' x}",
            Err("expected ',' or '}' at offset 10, found 'x'"),
        );
        check(
            "{'a': 'b'",
            Err("expected ',' or '}' at offset 9, found end of input"),
        );
        check("{'a' 'b'}", Err("expected ':' at offset 8, found '}'"));
        check("{'a'}", Err("expected ':' at offset 4, found '}'"));
        check("{'a', 'b'}", Err("expected ':' at offset 4, found ','"));
        check("{'a':}", Err("expected a string at offset 5, found '}'"));
        check(
            "{,}",
            Err("expected a string or '}' at offset 1, found ','"),
        );
        check(
            "{'a': 'b',,}",
            Err("expected a string or '}' at offset 10, found ','"),
        );
        check(
            "{'a': 'b'} x",
            Err("expected end of input at offset 11, found 'x'"),
        );
        check(
            "{'a': 'b'}}",
            Err("expected end of input at offset 10, found '}'"),
        );
        check("{}{}", Err("expected end of input at offset 2, found '{'"));
        check(
            "{\u{a0}}",
            Err("expected a string or '}' at offset 1, found '\\u{a0}'"),
        );
        check(
            "{a: 'b'}",
            Err("expected a string or '}' at offset 1, found 'a'"),
        );
    }

    #[test]
    fn non_string_values() {
        check("{'a': 1}", Err("expected a string at offset 6, found '1'"));
        check(
            "{1: 'a'}",
            Err("expected a string or '}' at offset 1, found '1'"),
        );
        check(
            "{'a': None}",
            Err("expected a string at offset 6, found 'N'"),
        );
        check(
            "{'a': True}",
            Err("expected a string at offset 6, found 'T'"),
        );
        check(
            "{'a': {'b': 'c'}}",
            Err("expected a string at offset 6, found '{'"),
        );
        check(
            "{'a': ['b']}",
            Err("expected a string at offset 6, found '['"),
        );
        check(
            "{'a': ('b',)}",
            Err("expected a string at offset 6, found '('"),
        );
        check(
            "{b'a': 'b'}",
            Err("expected a string or '}' at offset 1, found 'b'"),
        );
        check(
            "{'a': f'b'}",
            Err("expected a string at offset 6, found 'f'"),
        );
        check(
            "{'a': br'b'}",
            Err("expected a string at offset 6, found 'b'"),
        );
        check(
            "{'a': 'b' + 'c'}",
            Err("expected ',' or '}' at offset 10, found '+'"),
        );
    }

    #[test]
    fn unterminated_and_escapes() {
        check("{'a", Err("unterminated string starting at offset 1"));
        check("{'a\": 'b'}", Err("expected ':' at offset 7, found 'b'"));
        check(
            "{'a\n': 'b'}",
            Err("unterminated string starting at offset 1"),
        );
        check(
            "{'a\r': 'b'}",
            Err("unterminated string starting at offset 1"),
        );
        check(r"{'a\'}", Err("unterminated string starting at offset 1"));
        check("{'a\\", Err("unterminated string starting at offset 1"));
        check("{'''a\\", Err("unterminated string starting at offset 1"));
        check("{r'a\\", Err("unterminated string starting at offset 1"));
        check(
            "{r'a\\\n'}",
            Err("unterminated string starting at offset 1"),
        );
        check(
            "{'''a'': 'b'}",
            Err("unterminated string starting at offset 1"),
        );
        check("{'a': u'", Err("unterminated string starting at offset 6"));
        check(
            r"{'\x4': ''}",
            Err("invalid escape at offset 2: \\x needs two hex digits"),
        );
        check(
            r"{'\xg0': ''}",
            Err("invalid escape at offset 2: \\x needs two hex digits"),
        );
        check(
            r"{'\x",
            Err("invalid escape at offset 2: \\x needs two hex digits"),
        );
        check(
            r"{'ab\u12': ''}",
            Err("invalid escape at offset 4: \\u needs four hex digits naming a character"),
        );
        check(
            r"{'\ud800': ''}",
            Err("invalid escape at offset 2: \\u needs four hex digits naming a character"),
        );
        check(
            r"{'\U00110000': ''}",
            Err("invalid escape at offset 2: \\U needs eight hex digits naming a character"),
        );
        check(
            r"{'\x4é': ''}",
            Err("invalid escape at offset 2: \\x needs two hex digits"),
        );
        check(
            r"{'\N{BULLET}': ''}",
            Err("invalid escape at offset 2: \\N{...} escapes are not supported"),
        );
    }
}

mod list {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&[&str], &str>) {
        let got = parse_list(input).map_err(|e| e.to_string());
        let expected = expected
            .map(|items| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .map_err(str::to_owned);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn lists_and_tuples() {
        check("[]", Ok(&[]));
        check("()", Ok(&[]));
        check(" [ ] ", Ok(&[]));
        check("['a']", Ok(&[("a")]));
        check(r#"['a', "b"]"#, Ok(&["a", "b"]));
        check("['a', 'b',]", Ok(&["a", "b"]));
        check("['a', 'a']", Ok(&["a", "a"]));
        check("('a',)", Ok(&["a"]));
        check("('a', 'b')", Ok(&["a", "b"]));
        check("( 'a' , 'b' , )", Ok(&["a", "b"]));
        check("['edge1/', 'cloud/x/']", Ok(&["edge1/", "cloud/x/"]));
        check(r"['\u540d', 'a' 'b']", Ok(&["名", "ab"]));
    }

    #[test]
    fn invalid() {
        check(
            "",
            Err("expected '[' or '(' at offset 0, found end of input"),
        );
        check("'a'", Err("expected '[' or '(' at offset 0, found '\\''"));
        check("{}", Err("expected '[' or '(' at offset 0, found '{'"));
        check("('a')", Err("expected ',' at offset 4, found ')'"));
        check("['a')", Err("expected ',' or ']' at offset 4, found ')'"));
        check(
            "('a', 'b']",
            Err("expected ',' or ')' at offset 9, found ']'"),
        );
        check(
            "['a' 'b' 1]",
            Err("expected ',' or ']' at offset 9, found '1'"),
        );
        check(
            "['a', 1]",
            Err("expected a string or ']' at offset 6, found '1'"),
        );
        check(
            "[['a']]",
            Err("expected a string or ']' at offset 1, found '['"),
        );
        check(
            "[(), 'a']",
            Err("expected a string or ']' at offset 1, found '('"),
        );
        check(
            "(,)",
            Err("expected a string or ')' at offset 1, found ','"),
        );
        check(
            "['a',,]",
            Err("expected a string or ']' at offset 5, found ','"),
        );
        check(
            "['a'] []",
            Err("expected end of input at offset 6, found '['"),
        );
        check("['a", Err("unterminated string starting at offset 1"));
        check(
            "[",
            Err("expected a string or ']' at offset 1, found end of input"),
        );
    }
}

/// Writes `s` as a Python string literal with the given quote, escaping what
/// must be escaped and, when `escape_all`, every non-ASCII-alphanumeric char.
fn py_quote(s: &str, quote: char, escape_all: bool) -> String {
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if escape_all && !c.is_ascii_alphanumeric() => match u32::from(c) {
                n @ 0..=0xff => out.push_str(&format!("\\x{n:02x}")),
                n @ 0x100..=0xffff => out.push_str(&format!("\\u{n:04X}")),
                n => out.push_str(&format!("\\U{n:08x}")),
            },
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A string made of characters that need care in a literal.
fn tricky_string() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_ .'\"\\\\\n\u{e9}\u{540d}\u{1F600}-]{0,12}")
        .expect("valid regex")
}

fn quoted(s: String) -> impl Strategy<Value = String> {
    (prop_oneof![Just('\''), Just('"')], any::<bool>())
        .prop_map(move |(q, all)| py_quote(&s, q, all))
}

fn space() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ \t\n]{0,3}").expect("valid regex")
}

proptest! {
    #[test]
    fn dict_round_trip(
        pairs in proptest::collection::vec((tricky_string(), tricky_string()), 0..8),
        quotes in proptest::collection::vec((any::<(bool, bool)>(), any::<(bool, bool)>()), 8),
        spaces in proptest::collection::vec(space(), 40),
        trailing_comma in any::<bool>(),
    ) {
        let q = |s: &str, (dq, all): (bool, bool)| py_quote(s, if dq { '"' } else { '\'' }, all);
        let mut sp = spaces.iter().cycle();
        let mut src = format!("{}{{", sp.next().map_or("", |s| s));
        for (i, ((k, v), (qk, qv))) in pairs.iter().zip(&quotes).enumerate() {
            if i > 0 {
                src.push(',');
            }
            let (s1, s2, s3) = (sp.next(), sp.next(), sp.next());
            src.push_str(&format!(
                "{}{}{}:{}{}",
                s1.map_or("", |s| s), q(k, *qk), s2.map_or("", |s| s), s3.map_or("", |s| s), q(v, *qv)
            ));
        }
        if trailing_comma && !pairs.is_empty() {
            src.push(',');
        }
        src.push_str(&format!("{}}}{}", sp.next().map_or("", |s| s), sp.next().map_or("", |s| s)));

        let mut expected: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            match expected.iter_mut().find(|(ek, _)| *ek == k) {
                Some(e) => e.1 = v,
                None => expected.push((k, v)),
            }
        }
        prop_assert_eq!(parse_dict(&src), Ok(expected), "source {:?}", src);
    }

    #[test]
    fn list_round_trip(
        items in proptest::collection::vec(tricky_string().prop_flat_map(quoted), 0..8),
        tuple in any::<bool>(),
        trailing_comma in any::<bool>(),
    ) {
        let (open, close) = if tuple { ('(', ')') } else { ('[', ']') };
        let trailing = trailing_comma || (tuple && items.len() == 1);
        let src = format!(
            "{open}{}{}{close}",
            items.join(", "),
            if trailing && !items.is_empty() { "," } else { "" }
        );
        let got = parse_list(&src);
        prop_assert!(got.is_ok(), "source {:?}: {:?}", src, got);
        prop_assert_eq!(got.map(|v| v.len()), Ok(items.len()));
    }

    #[test]
    fn never_panics(src in "[{}\\[\\]()'\":, \\\\xuUN0-9abrf\n\u{e9}]{0,40}") {
        let _ = parse_dict(&src);
        let _ = parse_list(&src);
    }

    #[test]
    fn never_panics_on_any_string(src in any::<String>()) {
        let _ = parse_dict(&src);
        let _ = parse_list(&src);
        let _ = parse_str_dict(&src);
    }

    #[test]
    fn numbers_never_panic(src in "\\{'a': [-+ ]{0,2}[0-9a-fA-FxXoObBeEjJ_.+-]{0,12}\\}") {
        let _ = parse_str_dict(&src);
    }
}

/// Compares the parser with CPython's `ast.literal_eval` on tricky inputs:
/// whatever Python reads as a dict (list) of strings must parse to the same
/// pairs (items), and everything else must be refused.
#[test]
fn agrees_with_cpython() {
    let inputs: &[&str] = &[
        "{}",
        "{'a': 'b', 'a': 'c', 'b': 'd'}",
        r#"{'it\'s': "say \"hi\"",}"#,
        r"{'\x41\101\u00e9\U0001F600': '\d\ \0'}",
        "{'a\\\nb': 'c'}",
        r"{r'\n\'': u'x'}",
        r#"{'a' "b" : 'c'  r'\d'}"#,
        "{'''it's''': \"\"\"a\"b\nc\"\"\"}",
        "\n{\n\t'a' :\r\n 'b' ,\x0c\n}\n",
        "{'名字': 'ブローカー'}",
        "{'a': 1}",
        "{'a': {'b': 'c'}}",
        "{'a'}",
        "{'a', 'b'}",
        "{b'a': 'b'}",
        "{'a\n': 'b'}",
        "{'a': 'b' x}",
        "{'a': 'b'} {}",
        "{'\\x4': ''}",
        "['a', \"b\",]",
        "('a',)",
        "('a')",
        "()",
        "[['a']]",
        "['a', 1]",
        "['''a''' 'b']",
        "{'''a'''': ''}",
        "{'a': 'b' 'c', '\\x61': 'd'}",
        "{'a': 'b'}  # trailing comment",
        "# leading comment\n{'a': 'b'}",
        "{'a': 'b', # why\n 'c': 'd'}",
        "{'a#': '#b'} # c",
        "['a', # x\n 'b'] # y",
        "{'a': 'b' # unterminated bracket }",
    ];
    let script = r#"
import ast, json, sys
out = []
for src in json.load(sys.stdin):
    try:
        v = ast.literal_eval(src)
    except Exception:
        out.append(None)
        continue
    if isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        out.append({"dict": list(v.items())})
    elif isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        out.append({"list": list(v)})
    else:
        out.append(None)
json.dump(out, sys.stdout)
"#;
    let input = serde_json::to_vec(inputs).expect("inputs as JSON");
    let output = crate::testutil::python(script, &input);
    let python: Vec<serde_json::Value> =
        serde_json::from_slice(&output).expect("python3 prints JSON");
    assert_eq!(python.len(), inputs.len());
    for (src, py) in inputs.iter().zip(python) {
        let ours = match (parse_dict(src), parse_list(src)) {
            (Ok(pairs), _) => serde_json::json!({ "dict": pairs }),
            (_, Ok(items)) => serde_json::json!({ "list": items }),
            _ => serde_json::Value::Null,
        };
        assert_eq!(ours, py, "input {src:?}");
    }
}

/// Values that are not strings become Python's `str()` of them: compared with CPython's
/// `{k: str(v) for k, v in ast.literal_eval(src).items()}` (what the Python SDK puts in
/// a topic), and refused where Python's value is not a string, number, bool or None.
#[test]
fn str_values_agree_with_cpython() {
    let inputs: &[&str] = &[
        "{'a': 1}",
        "{'a': 1, 'b': 'b2'}",
        "{'a': -7}",
        "{'a': +7}",
        "{'a': - 7}",
        "{'a': 0}",
        "{'a': -0}",
        "{'a': 000}",
        "{'a': 007}",
        "{'a': 1_000}",
        "{'a': 1__0}",
        "{'a': 0x1F}",
        "{'a': 0o17}",
        "{'a': 0b101}",
        "{'a': 0x_ff}",
        "{'a': 123456789012345678901234567890}",
        "{'a': 1.0}",
        "{'a': 2.50}",
        "{'a': -0.0}",
        "{'a': 1.}",
        "{'a': .5}",
        "{'a': 1e5}",
        "{'a': 1e16}",
        "{'a': 1e15}",
        "{'a': 1.5e-5}",
        "{'a': 0.0001}",
        "{'a': 0.00001}",
        "{'a': 1234567890123456789.0}",
        "{'a': 0.1}",
        "{'a': 1/3}",
        "{'a': 1e999}",
        "{'a': 1E+3}",
        "{'a': True, 'b': False, 'c': None}",
        "{'a': Truth}",
        "{'a': 1j}",
        "{'a': [1]}",
        "{'a': (1,)}",
        "{'a': {'b': 1}}",
        "{'a': 1,} # comment",
        "{'a': 1 2}",
        "{'a': 'b1'}",
    ];
    let script = r#"
import ast, json, sys
out = []
for src in json.load(sys.stdin):
    try:
        v = ast.literal_eval(src)
    except Exception:
        out.append(None)
        continue
    ok = isinstance(v, dict) and all(
        isinstance(k, str) and (x is None or type(x) in (str, int, float, bool))
        for k, x in v.items())
    out.append([[k, str(x), type(x).__name__] for k, x in v.items()] if ok else None)
json.dump(out, sys.stdout)
"#;
    let input = serde_json::to_vec(inputs).expect("inputs as JSON");
    let output = crate::testutil::python(script, &input);
    let python: Vec<serde_json::Value> =
        serde_json::from_slice(&output).expect("python3 prints JSON");
    assert_eq!(python.len(), inputs.len());
    for (src, py) in inputs.iter().zip(python) {
        let ours = match parse_str_dict(src) {
            Ok(pairs) => serde_json::json!(
                pairs
                    .iter()
                    .map(|(k, v)| [k.as_str(), v.text.as_str(), v.kind])
                    .collect::<Vec<_>>()
            ),
            Err(_) => serde_json::Value::Null,
        };
        assert_eq!(ours, py, "input {src:?}");
    }
}

/// `parse_value`: any literal (or JSON) into a `Value`, shown back by its `Display`
/// (Python's `repr`).
mod value {
    use super::*;
    use crate::pickle::Value;

    /// Parses `src` and shows it as Python would (`repr`), or the error.
    #[track_caller]
    fn check(src: &str, expected: &str) {
        let got = match parse_value(src) {
            Ok(v) => v.to_string(),
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
        check("- 7", "-7");
        check("+7", "7");
        check("1_000", "1000");
        check("0x1F", "31");
        check("0o17", "15");
        check("0b101", "5");
        check("1.5", "1.5");
        check("-2e3", "-2000.0");
        check("1e-7", "1e-07");
        check(".5", "0.5");
        check("5.", "5.0");
        check("-0.0", "-0.0");
        check("9223372036854775808", "9223372036854775808");
        check(
            "170141183460469231731687303715884105727",
            "170141183460469231731687303715884105727",
        );
        check("'hi'", "'hi'");
        check(r#""it's""#, r#""it's""#);
        check(r"'a\nb\x41\u00e9'", r"'a\nbAé'");
        check(r"'\101\0\012'", r"'A\x00\n'");
        check(r#""\ud83d\ude00""#, "'😀'");
        check(r"'\q\/'", r"'\\q\\/'");
        check("'a' \"b\" '''c'''", "'abc'");
        check("'''a\nb'''", r"'a\nb'");
        check(r"b'\x00ab'", r"b'\x00ab'");
        check(
            r"b'\u00e9\777'",
            "error: invalid escape at offset 8: octal escape beyond \\377",
        );
        check(r"b'\u00e9'", r"b'\\u00e9'");
        check(r"b'a' B'b'", "b'ab'");
        check(r"r'a\nb'", r"'a\\nb'");
        check(r"Rb'\d'", r"b'\\d'");
        check("u'é'", "'é'");
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
        check("# the job\n[1, # one\n 2] # done", "[1, 2]");
        check(
            &format!("{}{}", "[".repeat(100), "]".repeat(100)),
            &format!("{}{}", "[".repeat(100), "]".repeat(100)),
        );
    }

    #[test]
    fn errors() {
        check(
            "",
            "error: expected a value at offset 0, found end of input",
        );
        check(
            "   ",
            "error: expected a value at offset 3, found end of input",
        );
        check("[1 2]", "error: expected ',' or ']' at offset 3, found '2'");
        check("(1 2)", "error: expected ',' or ')' at offset 3, found '2'");
        check(
            "{'a' 1}",
            "error: expected ',', ':' or '}' at offset 5, found '1'",
        );
        check(
            "{'a': 1 'b'}",
            "error: expected ',' or '}' at offset 8, found '\\''",
        );
        check(
            "{'a': 1, 'b'}",
            "error: expected ':' at offset 12, found '}'",
        );
        check(
            "{1, 2: 3}",
            "error: expected ',' or '}' at offset 5, found ':'",
        );
        check("'abc", "error: unterminated string starting at offset 0");
        check("'a\nb'", "error: unterminated string starting at offset 0");
        check("1 2", "error: expected end of input at offset 2, found '2'");
        check("hello", "error: expected a value at offset 0, found 'h'");
        check(
            "-",
            "error: expected a value at offset 1, found end of input",
        );
        check(
            "b'é'",
            "error: invalid bytes literal at offset 2: a bytes literal holds ASCII characters only",
        );
        check(
            "'a' b'b'",
            "error: invalid bytes literal at offset 4: a str and a bytes literal side by side",
        );
        check(
            "1.2.3",
            "error: expected a Python int or float at offset 0, found '1'",
        );
        check(
            "0777",
            "error: expected a Python int or float at offset 0, found '0'",
        );
        check(
            "1j",
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
        check(
            r"'\N{BULLET}'",
            "error: invalid escape at offset 1: \\N{...} escapes are not supported",
        );
        check(
            r"'\ud800'",
            "error: invalid escape at offset 1: \\u needs four hex digits naming a character",
        );
        check("f'x'", "error: expected a value at offset 0, found 'f'");
    }

    /// What CPython's `ast.literal_eval` makes of the same text, shown by `repr`.
    #[test]
    fn agrees_with_cpython() {
        let cases: &[&str] = &[
            "None",
            "[1, -2, +3, - 4, 1_000, 0.5, -1e-7, 1E16, 12345678901234567890, 0x1F, 0o7, 0b11]",
            r#"{'a': (1,), "b": (), 'c': {1, 2}, 'd': {}}"#,
            r"'tab\there\x41\u00e9\U0001F600\\ \'q\' \a\b\f\v\0\101\d'",
            r#""it's""#,
            r"b'\x00\xff\n\'\101\u00e9' ",
            r"rb'\d+' ",
            r"R'\n'",
            "u'unicode é'",
            "'a' \"b\" '''c\nd''' \"\"\"e\"\"\"",
            "[[1, [2, [3, []]]], ((1, 2), 3)]",
            "{(1, 'a'): [b'x', None, True, False]}",
            "(1)",
            "( 1 , 2 , )",
            "{ 'k' : 1 , }",
            ".5",
            "5.",
            "-0.0",
            "# c\n[1, # d\n 2]",
            "'a\\\nb'",
        ];
        let script = r#"
import ast, json, sys
for s in json.load(sys.stdin):
    print(repr(ast.literal_eval(s.strip())))
"#;
        let input = serde_json::to_vec(cases).expect("cases as JSON");
        let output = crate::testutil::python(script, &input);
        let expected = String::from_utf8(output).expect("utf-8");
        assert_eq!(expected.lines().count(), cases.len());
        for (case, want) in cases.iter().zip(expected.lines()) {
            let value = parse_value(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(value.to_string(), want, "{case}");
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Float),
            any::<String>().prop_map(Value::Str),
            any::<Vec<u8>>().prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
                prop::collection::vec((any::<String>(), inner), 0..4).prop_map(|pairs| {
                    Value::Dict(pairs.into_iter().map(|(k, v)| (Value::Str(k), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        /// `parse_value` reads back what `Display` (Python's `repr`) writes.
        #[test]
        fn reads_repr(v in value()) {
            let text = v.to_string();
            prop_assert_eq!(parse_value(&text), Ok(v), "{}", text);
        }

        #[test]
        fn never_panics(src in "[{}\\[\\]()'\":, \\\\xuUN0-9abrf#\n\u{e9}.eE+-]{0,40}") {
            let _ = parse_value(&src);
        }

        #[test]
        fn never_panics_on_any_string(src in any::<String>()) {
            let _ = parse_value(&src);
        }
    }
}
