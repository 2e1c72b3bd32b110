//! Benchmarks, run in release mode through `cargo xtask bench [SUITE…]`.
//!
//! Each suite measures one component against a reference measured in the same
//! run (raw rumqttc, curl, …) and prints a table. Suites talk only to servers
//! they start on 127.0.0.1 and stop by themselves.

#![expect(clippy::print_stdout, reason = "a benchmark prints its table")]

mod files;
mod logger;
mod proto;
mod table;
mod transport;

use std::process::ExitCode;

/// A suite: its name and the function that runs it.
type Suite = (&'static str, fn() -> Result<(), String>);

/// Every suite, in the order `cargo xtask bench` runs them.
const SUITES: &[Suite] = &[
    ("proto", proto::run),
    ("transport", transport::run),
    ("logger", logger::run),
    ("files", files::run),
];

fn main() -> ExitCode {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = wanted.iter().find(|w| !SUITES.iter().any(|(n, _)| n == w)) {
        let names: Vec<&str> = SUITES.iter().map(|(n, _)| *n).collect();
        println!("unknown suite {unknown:?}; suites: {}", names.join(", "));
        return ExitCode::FAILURE;
    }
    for (name, run) in SUITES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        println!("## {name}\n");
        if let Err(e) = run() {
            println!("suite {name} failed: {e}");
            return ExitCode::FAILURE;
        }
        println!();
    }
    ExitCode::SUCCESS
}
