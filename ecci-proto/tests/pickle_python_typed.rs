//! Typed values the encoder writes load in CPython, with numpy 1.26 and with
//! numpy 2.x, as the very values CPython pickled: every typed golden vector is
//! decoded, re-encoded with protocols 2, 4 and 5, and compared with CPython's own
//! pickle by `fixtures/check_rust_typed_pickles.py` (`np.array_equal`, dtype,
//! shape and layout for arrays; type and repr for the rest).
//!
//! The interpreters come from `ECCI_PYTHON_NUMPY1` and `ECCI_PYTHON_NUMPY2`
//! (`.ci/python-venvs.sh`); a missing one is a visible skip, and a failure when
//! `ECCI_REQUIRE_SERVICES` is set.

use std::path::Path;
use std::process::Command;

use ecci_proto::pickle::{DecodeLimits, Protocol, Value, decode, encode};

/// Whether the value holds an inert object (those are not re-encoded as objects).
fn has_object(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Dict(pairs) => pairs.iter().any(|(k, v)| has_object(k) || has_object(v)),
        _ => false,
    }
}

#[expect(clippy::print_stderr, reason = "a skip is reported")]
/// The interpreter named by `var`, or `None` after printing why the check is skipped.
fn interpreter(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var_os("ECCI_REQUIRE_SERVICES").is_none(),
                "{var} unset but ECCI_REQUIRE_SERVICES is set"
            );
            eprintln!("skipped: {var} unset (run .ci/python-venvs.sh)");
            None
        }
    }
}

#[test]
fn cpython_with_numpy_1_and_2_loads_the_typed_values_we_write() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().expect("create temp dir");
    let mut written = 0;
    for entry in std::fs::read_dir(fixtures.join("pickle/typed")).expect("typed vectors") {
        let path = entry.expect("read_dir").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        // Two CPython pickles per case are the references: numpy 2 with
        // protocol 4, and numpy 1 with protocol 2 (Python 2 names, Latin-1 bytes).
        let Some(case) = name
            .strip_suffix(".np2.p4.pickle")
            .map(|c| format!("{c}-np2p4"))
            .or_else(|| {
                name.strip_suffix(".np1.p2.pickle")
                    .map(|c| format!("{c}-np1p2"))
            })
        else {
            continue;
        };
        let original = std::fs::read(&path).expect("pickle");
        let value = decode(&original, &DecodeLimits::default()).expect(name);
        if has_object(&value) {
            continue;
        }
        std::fs::write(dir.path().join(format!("{case}.orig.pickle")), &original).expect("write");
        for (protocol, n) in [(Protocol::V2, 2), (Protocol::V4, 4), (Protocol::V5, 5)] {
            let ours = encode(&value, protocol);
            std::fs::write(dir.path().join(format!("{case}.p{n}.ours.pickle")), ours)
                .expect("write");
            written += 1;
        }
    }
    assert!(written > 150, "{written} pickles written");
    let script = fixtures.join("check_rust_typed_pickles.py");
    for var in ["ECCI_PYTHON_NUMPY1", "ECCI_PYTHON_NUMPY2"] {
        let Some(python) = interpreter(var) else {
            continue;
        };
        let out = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{var}={python}: {e}"));
        assert!(
            out.status.success(),
            "{var}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
