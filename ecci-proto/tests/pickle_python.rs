//! Pickles written by the encoder load in CPython as the expected objects:
//! every shared case is encoded with protocols 2, 3 and 4 into a temporary
//! directory and checked by `fixtures/check_rust_pickles.py`.

mod common;

use std::path::{Path, PathBuf};

use ecci_proto::pickle::{Protocol, encode};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("ecci-proto-pickle-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn cpython_loads_what_the_encoder_writes() {
    let dir = TempDir::new();
    for (case, value) in common::cases() {
        for (protocol, n) in [(Protocol::V2, 2), (Protocol::V3, 3), (Protocol::V4, 4)] {
            let path = dir.0.join(format!("{case}.p{n}.pickle"));
            std::fs::write(&path, encode(&value, protocol)).expect("write pickle");
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check_rust_pickles.py");
    // The paths go through stdin, so that nothing needs quoting.
    let paths = format!("{}\n{}", script.display(), dir.0.display());
    common::python(
        "import runpy, sys\n\
         script, directory = sys.stdin.read().split('\\n')\n\
         sys.argv = [script, directory]\n\
         runpy.run_path(script, run_name='__main__')",
        paths.as_bytes(),
    );
}
