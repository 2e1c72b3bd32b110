//! What a test does when the server it needs is missing: says so, or fails.
//!
//! A test that returns early without a word reports `ok` for work it never did. Every test
//! kit here (the conformance harness, [`Mosquitto`](crate::mosquitto::Mosquitto)) and the
//! suites with servers of their own (S3) call [`missing`] instead: `skipped: <why>` written
//! to the process's stderr (past libtest's capture, so `cargo test` shows it for a passing
//! test too), or a panic when the variable that makes the server required (CI:
//! `ECCI_REQUIRE_BROKER=1`, `ECCI_REQUIRE_SERVICES=1`) is set.

/// Reports that a server a test needs is missing: panics when `require_var` is `1`
/// (a required server), otherwise prints `skipped: {why}` to stderr and returns, so the
/// test can return.
///
/// ```
/// # // The variable is unset in doc tests.
/// ecci_transport::skip::missing("ECCI_REQUIRE_EXAMPLE", "ECCI_TEST_EXAMPLE unset");
/// ```
///
/// # Panics
/// When `require_var` is set to `1`.
pub fn missing(require_var: &str, why: &str) {
    use std::io::Write as _;
    if std::env::var(require_var).as_deref() == Ok("1") {
        panic!("{require_var}=1 but {why}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of a passing test and
    // never shows it, which would make the skip silent again.
    // libtest names each test's thread after the test.
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => format!(" [{name}]"),
        _ => String::new(),
    };
    let _ = writeln!(std::io::stderr().lock(), "skipped: {why}{test}");
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// Runs [`child`] in a copy of this test binary with `require` as the `require_var`'s
    /// value: its exit status and stderr.
    fn run_child(require: Option<&str>) -> (bool, String) {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "skip::tests::child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ECCI_SKIP_TEST_CHILD", "1")
            .env_remove("ECCI_REQUIRE_SKIP_TEST");
        if let Some(value) = require {
            command.env("ECCI_REQUIRE_SKIP_TEST", value);
        }
        let out = command.output().expect("test binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The child's side of [`a_missing_server_is_a_visible_skip_or_a_failure`]; does
    /// nothing in a normal run.
    #[test]
    fn child() {
        if std::env::var_os("ECCI_SKIP_TEST_CHILD").is_some() {
            super::missing("ECCI_REQUIRE_SKIP_TEST", "ECCI_TEST_THING unset");
        }
    }

    #[test]
    fn a_missing_server_is_a_visible_skip_or_a_failure() {
        let (ok, stderr) = run_child(None);
        assert!(ok, "{stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l == "skipped: ECCI_TEST_THING unset [skip::tests::child]"),
            "{stderr}"
        );
        let (ok, stderr) = run_child(Some("0"));
        assert!(ok && stderr.contains("skipped: "), "{stderr}");
        let (ok, stderr) = run_child(Some("1"));
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("ECCI_REQUIRE_SKIP_TEST=1 but ECCI_TEST_THING unset"),
            "{stderr}"
        );
        assert!(!stderr.contains("skipped: "), "{stderr}");
    }
}
