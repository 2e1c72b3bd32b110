//! Python's `repr()` of a decoded [`Value`], cut to a length, for one-line display.
//!
//! The repr itself is `ecci_proto`'s (`impl Display for Value`, one repr for the
//! workspace); the cut (`…` after `max` characters) is a display decision kept here.
//! Control characters are always escaped, so a hostile payload cannot move the cursor or
//! break the one-line-per-message output. A numpy frame shows as
//! `ndarray(uint8, 480×640×3)`, never its bytes.

use ecci_proto::pickle::Value;

/// The repr of `value`, cut after about `max` characters with a trailing `…`.
///
/// Iterative, so a deeply nested value costs heap, not stack.
pub(crate) fn repr(value: &Value, max: usize) -> String {
    ecci_proto::pickle::repr(value, max)
}

/// `s` cut to `max` characters, with `…` when something was cut.
pub(crate) fn cut(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => {
            let mut s = s;
            s.truncate(at);
            s.push('…');
            s
        }
        None => s,
    }
}

/// Characters that are not `is_control` but reorder or hide text on a terminal.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_show_type_and_shape() {
        use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
        let frame = NdArray::new(
            DType::new(Scalar::U8, ByteOrder::Little),
            vec![480, 640, 3],
            Order::C,
            vec![0u8; 480 * 640 * 3],
        )
        .expect("a frame");
        let v = Value::dict([
            ("frame", Value::NdArray(Box::new(frame))),
            ("ts", Value::Float(1.5)),
        ]);
        assert_eq!(
            repr(&v, 1000),
            "{'frame': ndarray(uint8, 480×640×3), 'ts': 1.5}"
        );
        assert_eq!(cut("abcd".to_owned(), 3), "abc…");
    }
}

/// The repr of every valid golden pickle of `ecci-proto` is CPython's `repr()` of it.
#[cfg(test)]
mod cpython {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use ecci_proto::pickle::{DecodeLimits, decode};

    #[test]
    fn matches_cpython_on_the_golden_pickles() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ecci-proto/tests/fixtures/pickle/valid");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("the golden pickles")
            .map(|e| e.expect("dir entry").path())
            .collect();
        paths.sort();
        assert!(paths.len() > 50, "{} pickles", paths.len());
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import pickle, sys\n\
                 for p in sys.stdin.read().split('\\n'):\n\
                 \x20   print(repr(pickle.load(open(p, 'rb'))))",
            ])
            // Sets of str print in hash order; the golden pickles were written with seed 0.
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(list.join("\n").as_bytes())
            .expect("paths written");
        let out = child.wait_with_output().expect("python3 ends");
        assert!(out.status.success(), "python3 failed");
        let expected = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(expected.lines().count(), paths.len(), "one repr per pickle");
        let mut mismatches = Vec::new();
        for (path, want) in paths.iter().zip(expected.lines()) {
            let bytes = std::fs::read(path).expect("pickle");
            let value = decode(&bytes, &DecodeLimits::default()).expect("decodes");
            let got = super::repr(&value, usize::MAX / 8);
            if got != want {
                mismatches.push(format!(
                    "{}\n  rust:   {got}\n  python: {want}",
                    path.display()
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
