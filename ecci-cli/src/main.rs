//! `ecci`: a local ECCI platform for development, and tools to watch and talk to ECCI apps.
//!
//! - `ecci dev` runs an MQTT broker on 127.0.0.1 with the fileManager plugin on it (objects
//!   in a temporary directory removed on exit, or `--files-dir`), and shows what the platform
//!   receives (log records, readiness reports, `send_data`, and with `--all` the app's
//!   traffic); it prints the `ECCI_*` settings to give containers. It also serves a live web
//!   view on 127.0.0.1 (`--web-port`, `--no-web`): see the `web` module.
//! - `ecci watch` prints every message of an app on any broker, decoded safely (the
//!   data-only pickle decoder; a bad payload is a line saying why, never a crash). File
//!   messages are shown with the query (the signature) of their presigned URLs redacted.
//! - `ecci send` publishes one data or cmd envelope at QoS 2 and waits for the broker's ack.
//!
//! Exit codes: 0 success, 1 a failure after the arguments were accepted (connection,
//! publish), 2 a bad command line.

mod args;
mod literal;
mod repr;
mod run;
mod show;
mod web;

use std::io::Write;
use std::process::ExitCode;

use args::Command;

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let command = match args::parse(std::env::args_os().skip(1), &env) {
        Ok(command) => command,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "{e}");
            return ExitCode::from(2);
        }
    };
    let (name, result) = match command {
        Command::Help(text) => {
            let _ = write!(std::io::stdout().lock(), "{text}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "ecci {}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Command::Dev(a) => ("ecci dev", block_on(run::dev(a))),
        Command::Watch(a) => ("ecci watch", block_on(run::watch(a))),
        Command::Send(a) => ("ecci send", block_on(run::send(a))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(run::Failure(message)) => {
            let _ = writeln!(std::io::stderr().lock(), "{name}: {message}");
            ExitCode::from(1)
        }
    }
}

/// Runs `future` on a single-threaded runtime: the tool is one connection and a loop.
fn block_on<F: std::future::Future<Output = Result<(), run::Failure>>>(
    future: F,
) -> Result<(), run::Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| run::Failure(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(future)
}
