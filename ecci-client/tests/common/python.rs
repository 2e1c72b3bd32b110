//! A Python peer (`tests/python/*.py`, paho-mqtt and pickle) as a child process that tells
//! the test what happens, one line per event on its stdout.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::WAIT;

/// The command running `tests/python/{script}` in `mode` as container `me` of `app` on
/// broker id `b1`, with `targets` and `controller` (all on `b1`) as wire.md §1 variables.
pub fn command(
    script: &str,
    mode: &str,
    app: &str,
    broker: &(String, u16),
    me: &str,
    targets: &[&str],
    controller: Option<&str>,
) -> Command {
    let dict = |names: &[&str]| {
        let items: Vec<String> = names.iter().map(|n| format!("'{n}': 'b1'")).collect();
        format!("{{{}}}", items.join(", "))
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(mode)
        .env("ECCI_LOCAL_BROKER_IP", &broker.0)
        .env("ECCI_LOCAL_BROKER_PORT", broker.1.to_string())
        .env("ECCI_LOCAL_BROKER_ID", "b1")
        .env("ECCI_APP_ID", app)
        .env("ECCI_CONTAINER_NAME", me)
        .env("ECCI_PUB_TARGETS", dict(targets))
        .env("ECCI_APP_CONTROLLER_CONTAINER", dict(controller.as_slice()))
        .env("ECCI_APP_TYPE", mode)
        // No __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// A running Python peer, killed when dropped.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    /// Starts `command` with its stdin and stdout piped to the test.
    pub fn spawn(mut command: Command) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("piped");
        Peer {
            stdin: child.stdin.take(),
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The peer's next line of output, or `None` once it closed its stdout.
    async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the python peer answers in time")
            .expect("its stdout is readable")
    }

    /// The peer's next line of output.
    pub async fn line(&mut self) -> String {
        self.next_line()
            .await
            .expect("the python peer is still running (is paho-mqtt installed? .ci/python-deps.sh)")
    }

    /// Reads lines until one starts with `prefix`, and returns it.
    pub async fn until(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line().await;
            assert!(!line.starts_with("ERROR"), "python peer: {line}");
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Closes the peer's stdin (which ends a peer that runs until then), checks that what
    /// it printed until its end has no error, and that it exits with success.
    pub async fn exits_cleanly(mut self) {
        drop(self.stdin.take());
        while let Some(line) = self.next_line().await {
            assert!(!line.starts_with("ERROR"), "python peer: {line}");
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the python peer exits in time")
            .expect("waitable");
        assert!(status.success(), "python peer exited with {status}");
    }
}
