//! Helpers shared by the ecci-files test binaries.

use std::path::Path;

/// A directory removed when the test ends (tempfile's).
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A fresh, empty directory with a unique, unpredictable name starting with `tag`.
    pub(crate) fn new(tag: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("ecci-files-{tag}-"))
                .tempdir()
                .unwrap(),
        )
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}
