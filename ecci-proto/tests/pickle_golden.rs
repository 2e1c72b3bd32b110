//! Every golden vector CPython wrote (`fixtures/gen_pickles.py`) decodes to the
//! expected value, for every protocol 0–5.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ecci_proto::pickle::{DecodeLimits, Value, decode};

fn valid_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle/valid")
}

#[track_caller]
fn check(path: &Path, expected: &Value) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match decode(&bytes, &DecodeLimits::default()) {
        Ok(got) => common::assert_same(&got, expected, &path.display().to_string()),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

#[test]
fn golden_vectors_decode_to_expected_values() {
    let expected: BTreeMap<&str, Value> = common::cases()
        .into_iter()
        .chain(common::hand_cases())
        .collect();
    let mut files_per_case: BTreeMap<&str, usize> = expected.keys().map(|&k| (k, 0)).collect();
    let entries = std::fs::read_dir(valid_dir()).expect("golden vectors: run gen_pickles.py");
    for entry in entries {
        let path = entry.expect("read_dir").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let case = name.split('.').next().unwrap_or_default();
        let Some((&case, value)) = expected.get_key_value(case) else {
            panic!("{name}: no expected value for case {case:?}");
        };
        check(&path, value);
        *files_per_case.entry(case).or_default() += 1;
    }
    for (case, count) in files_per_case {
        let want = if common::hand_cases().iter().any(|(c, _)| *c == case) {
            1
        } else {
            6
        };
        assert_eq!(count, want, "files for case {case}");
    }
}
