//! Test helpers shared by the unit tests: CPython as the reference peer.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `python3 -c script` with `stdin` as its standard input and returns its
/// standard output, failing the test if Python is missing or exits non-zero.
///
/// The input is written from a thread so that a large output cannot deadlock
/// the pipes.
pub(crate) fn python(script: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("these tests need python3 on PATH: CPython is the reference peer");
    let mut pipe = child.stdin.take().expect("piped stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().expect("python3 runs");
    writer
        .join()
        .expect("writer thread")
        .expect("write to python3");
    assert!(output.status.success(), "python3 failed: {output:?}");
    output.stdout
}
