//! Pickles written by the encoder load in CPython as the expected objects:
//! every shared case is encoded with protocols 2, 3 and 4 into a temporary
//! directory and checked by `fixtures/check_rust_pickles.py`.

mod common;

use std::path::Path;

use ecci_proto::pickle::{Protocol, encode};

#[test]
fn cpython_loads_what_the_encoder_writes() {
    let dir = tempfile::tempdir().expect("create temp dir");
    for (case, value) in common::cases() {
        for (protocol, n) in [(Protocol::V2, 2), (Protocol::V3, 3), (Protocol::V4, 4)] {
            let path = dir.path().join(format!("{case}.p{n}.pickle"));
            std::fs::write(&path, encode(&value, protocol)).expect("write pickle");
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check_rust_pickles.py");
    // The paths go through stdin, so that nothing needs quoting.
    let paths = format!("{}\n{}", script.display(), dir.path().display());
    common::python(
        "import runpy, sys\n\
         script, directory = sys.stdin.read().split('\\n')\n\
         sys.argv = [script, directory]\n\
         runpy.run_path(script, run_name='__main__')",
        paths.as_bytes(),
    );
}
